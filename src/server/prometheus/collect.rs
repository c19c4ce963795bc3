//! What a scrape shows: RabbitMQ's metric families (rabbitmq_prometheus'
//! `prometheus_rabbitmq_core_metrics_collector`, `..._global_metrics_collector`,
//! `..._alarm_metrics_collector` and, from RabbitMQ 4.0, the message size histogram),
//! read from the broker's own counters.
//!
//! Nothing here is kept between scrapes and nothing is counted for Prometheus alone: each
//! scrape walks the connections, channels, vhosts and queues, loads their atomic
//! counters (closed channels' and deleted queues' totals come from the `retired`
//! counters), and takes each queue's lock only to read its levels
//! ([`Queue::levels`](crate::broker::queue::Queue::levels)).

use super::Prom;
use super::text::{Kind, Text, labels};
use crate::broker::connections::ConnectionEntry;
use crate::broker::consumer::ChannelLink;
use crate::broker::queue::{Queue, QueueLevels};
use crate::broker::stats::{self, ByQueueType, Counters, SIZE_BOUNDS, SizeHistogram, Stat};
use crate::broker::vhost::VHost;
use crate::server::alarm;
use crate::server::handshake::RABBITMQ_COMPATIBLE_VERSION;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// One metric of a family table.
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    /// Shown summed on `/metrics` (RabbitMQ leaves a few families without a value there).
    pub aggregate: bool,
}

const fn m(name: &'static str, kind: Kind, help: &'static str) -> Metric {
    Metric {
        name,
        kind,
        help,
        aggregate: true,
    }
}

const fn per_object(name: &'static str, kind: Kind, help: &'static str) -> Metric {
    Metric {
        name,
        kind,
        help,
        aggregate: false,
    }
}

use Kind::{Counter as C, Gauge as G};

/// Where a table's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    ConnectionChurn,
    NodeCoarse,
    Node,
    QueueCoarse,
    QueueConsumerCount,
    Queue,
    Channel,
    ChannelExchange,
    ChannelQueue,
    ConnectionCoarse,
    Connection,
    QueueExchange,
    VHostStatus,
    ExchangeBindings,
    ExchangeNames,
}

/// A family table: RabbitMQ's ETS table name (what `/metrics/detailed?family=` names)
/// and its metrics, in RabbitMQ's order.
pub struct Table {
    pub family: &'static str,
    pub metrics: &'static [Metric],
    source: Source,
}

/// RabbitMQ's `METRICS_RAW`, as far as Warren has the facts: Erlang-specific metrics
/// (reductions, garbage collection, Raft, Mnesia, the message store's I/O) are left out.
pub const TABLES: &[Table] = &[
    Table {
        family: "connection_churn_metrics",
        source: Source::ConnectionChurn,
        metrics: &[
            m(
                "connections_opened_total",
                C,
                "Total number of connections opened",
            ),
            m(
                "connections_closed_total",
                C,
                "Total number of connections closed or terminated",
            ),
            m(
                "channels_opened_total",
                C,
                "Total number of channels opened",
            ),
            m(
                "channels_closed_total",
                C,
                "Total number of channels closed",
            ),
            m(
                "queues_declared_total",
                C,
                "Total number of queues declared",
            ),
            m("queues_created_total", C, "Total number of queues created"),
            m("queues_deleted_total", C, "Total number of queues deleted"),
        ],
    },
    Table {
        family: "node_coarse_metrics",
        source: Source::NodeCoarse,
        metrics: &[
            m("process_open_fds", G, "Open file descriptors"),
            m("process_open_tcp_sockets", G, "Open TCP sockets"),
            m("process_resident_memory_bytes", G, "Memory used in bytes"),
            m(
                "disk_space_available_bytes",
                G,
                "Disk space available in bytes",
            ),
            m("erlang_processes_used", G, "Erlang processes used"),
        ],
    },
    Table {
        family: "node_metrics",
        source: Source::Node,
        metrics: &[
            m("process_max_fds", G, "Open file descriptors limit"),
            m("process_max_tcp_sockets", G, "Open TCP sockets limit"),
            m(
                "resident_memory_limit_bytes",
                G,
                "Memory high watermark in bytes",
            ),
            m(
                "disk_space_available_limit_bytes",
                G,
                "Free disk space low watermark in bytes",
            ),
            m("erlang_processes_limit", G, "Erlang processes limit"),
            m(
                "erlang_scheduler_run_queue",
                G,
                "Erlang scheduler run queue",
            ),
            m(
                "erlang_net_ticktime_seconds",
                G,
                "Inter-node heartbeat interval",
            ),
            m("erlang_uptime_seconds", G, "Node uptime"),
        ],
    },
    Table {
        family: "queue_coarse_metrics",
        source: Source::QueueCoarse,
        metrics: &[
            m(
                "queue_messages_ready",
                G,
                "Messages ready to be delivered to consumers",
            ),
            m(
                "queue_messages_unacked",
                G,
                "Messages delivered to consumers but not yet acknowledged",
            ),
            m(
                "queue_messages",
                G,
                "Sum of ready and unacknowledged messages - total queue depth",
            ),
        ],
    },
    Table {
        family: "queue_consumer_count",
        source: Source::QueueConsumerCount,
        metrics: &[m("queue_consumers", G, "Consumers on a queue")],
    },
    Table {
        family: "queue_metrics",
        source: Source::Queue,
        metrics: &[
            m("queue_consumers", G, "Consumers on a queue"),
            per_object("queue_consumer_capacity", G, "Consumer capacity"),
            m("queue_consumer_utilisation", G, "Same as consumer capacity"),
            m(
                "queue_messages_ram",
                G,
                "Ready and unacknowledged messages stored in memory",
            ),
            m(
                "queue_messages_ram_bytes",
                G,
                "Size of ready and unacknowledged messages stored in memory",
            ),
            m(
                "queue_messages_ready_ram",
                G,
                "Ready messages stored in memory",
            ),
            m(
                "queue_messages_unacked_ram",
                G,
                "Unacknowledged messages stored in memory",
            ),
            m(
                "queue_messages_bytes",
                G,
                "Size in bytes of ready and unacknowledged messages",
            ),
            m(
                "queue_messages_ready_bytes",
                G,
                "Size in bytes of ready messages",
            ),
            m("queue_messages_paged_out", G, "Messages paged out to disk"),
            m(
                "queue_messages_paged_out_bytes",
                G,
                "Size in bytes of messages paged out to disk",
            ),
        ],
    },
    Table {
        family: "channel_metrics",
        source: Source::Channel,
        metrics: &[
            m("channel_consumers", G, "Consumers on a channel"),
            m(
                "channel_messages_unacked",
                G,
                "Delivered but not yet acknowledged messages",
            ),
            m(
                "channel_messages_unconfirmed",
                G,
                "Published but not yet confirmed messages",
            ),
            m(
                "consumer_prefetch",
                G,
                "Limit of unacknowledged messages for each consumer",
            ),
            m(
                "channel_prefetch",
                G,
                "Total limit of unacknowledged messages for all consumers on a channel",
            ),
        ],
    },
    Table {
        family: "channel_exchange_metrics",
        source: Source::ChannelExchange,
        metrics: &[
            m(
                "channel_messages_published_total",
                C,
                "Total number of messages published into an exchange on a channel",
            ),
            m(
                "channel_messages_confirmed_total",
                C,
                "Total number of messages published into an exchange and confirmed on the channel",
            ),
            m(
                "channel_messages_unroutable_returned_total",
                C,
                "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
            ),
            m(
                "channel_messages_unroutable_dropped_total",
                C,
                "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
            ),
        ],
    },
    Table {
        family: "channel_queue_metrics",
        source: Source::ChannelQueue,
        metrics: &[
            m(
                "channel_get_ack_total",
                C,
                "Total number of messages fetched with basic.get in manual acknowledgement mode",
            ),
            m(
                "channel_get_total",
                C,
                "Total number of messages fetched with basic.get in automatic acknowledgement mode",
            ),
            m(
                "channel_messages_delivered_ack_total",
                C,
                "Total number of messages delivered to consumers in manual acknowledgement mode",
            ),
            m(
                "channel_messages_delivered_total",
                C,
                "Total number of messages delivered to consumers in automatic acknowledgement mode",
            ),
            m(
                "channel_messages_redelivered_total",
                C,
                "Total number of messages redelivered to consumers",
            ),
            m(
                "channel_messages_acked_total",
                C,
                "Total number of messages acknowledged by consumers",
            ),
            m(
                "channel_get_empty_total",
                C,
                "Total number of times basic.get operations fetched no message",
            ),
        ],
    },
    Table {
        family: "connection_coarse_metrics",
        source: Source::ConnectionCoarse,
        metrics: &[
            m(
                "connection_incoming_bytes_total",
                C,
                "Total number of bytes received on a connection",
            ),
            m(
                "connection_outgoing_bytes_total",
                C,
                "Total number of bytes sent on a connection",
            ),
        ],
    },
    Table {
        family: "connection_metrics",
        source: Source::Connection,
        metrics: &[
            m(
                "connection_incoming_packets_total",
                C,
                "Total number of packets received on a connection",
            ),
            m(
                "connection_outgoing_packets_total",
                C,
                "Total number of packets sent on a connection",
            ),
            m("connection_channels", G, "Channels on a connection"),
        ],
    },
    Table {
        family: "channel_queue_exchange_metrics",
        source: Source::QueueExchange,
        metrics: &[m(
            "queue_messages_published_total",
            C,
            "Total number of messages published to queues",
        )],
    },
];

/// RabbitMQ's `METRICS_CLUSTER` (`/metrics/detailed` only, prefix `rabbitmq_cluster_`).
pub const CLUSTER_TABLES: &[Table] = &[
    Table {
        family: "vhost_status",
        source: Source::VHostStatus,
        metrics: &[m("vhost_status", G, "Whether a given vhost is running")],
    },
    Table {
        family: "exchange_bindings",
        source: Source::ExchangeBindings,
        metrics: &[m(
            "exchange_bindings",
            G,
            "Number of bindings for an exchange. This value is cluster-wide.",
        )],
    },
    Table {
        family: "exchange_names",
        source: Source::ExchangeNames,
        metrics: &[m(
            "exchange_name",
            G,
            "Enumerates exchanges without any additional info. This value is cluster-wide. A cheaper alternative to `exchange_bindings`",
        )],
    },
];

/// RabbitMQ's `TOTALS`.
const TOTALS: [(&str, &str); 4] = [
    ("connections", "Connections currently open"),
    ("channels", "Channels currently open"),
    ("consumers", "Consumers currently connected"),
    ("queues", "Queues available"),
];

/// The queue types as RabbitMQ's `queue_type` label names them (`QueueType as usize`).
const QUEUE_TYPES: [&str; 3] = [
    "rabbit_classic_queue",
    "rabbit_quorum_queue",
    "rabbit_stream_queue",
];

/// A `rabbitmq_global_*` counter and where its value comes from.
enum Global {
    /// Summed over channels (live and closed), `protocol` label only.
    Channel(Stat),
    /// Received minus unroutable.
    Routed,
    /// Summed over queues (live and deleted) per queue type.
    ByType(&'static [Stat]),
    /// Dead-lettered (with a dead-letter exchange) and dropped (without one).
    Dead(Stat, Stat),
    /// Families RabbitMQ has for quorum queues' at-least-once dead-lettering and delivery
    /// limits, which Warren does not count: zeros with RabbitMQ's label sets.
    DeadQuorumOnly(&'static [&'static str]),
    /// Quorum queues' deaths by delivery limit: dead-lettered (at most once) and dropped.
    /// (At-least-once deaths are counted as at most once.)
    DeadQuorum(Stat, Stat),
    Publishers,
    Consumers,
}

const GLOBALS: &[(&str, Kind, &str, Global)] = &[
    (
        "messages_delivered_consume_auto_ack_total",
        C,
        "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment",
        Global::ByType(&[Stat::DeliverNoAck]),
    ),
    (
        "messages_dead_lettered_expired_total",
        C,
        "Total number of messages dead-lettered due to message TTL exceeded",
        Global::Dead(Stat::DeadLetteredExpired, Stat::DroppedExpired),
    ),
    (
        "messages_dead_lettered_maxlen_total",
        C,
        "Total number of messages dead-lettered due to overflow drop-head or reject-publish-dlx",
        Global::Dead(Stat::DeadLetteredMaxlen, Stat::DroppedMaxlen),
    ),
    (
        "messages_dead_lettered_confirmed_total",
        C,
        "Total number of messages dead-lettered and confirmed by target queues",
        Global::DeadQuorumOnly(&["at_least_once"]),
    ),
    (
        "messages_received_total",
        C,
        "Total number of messages received from publishers",
        Global::Channel(Stat::Publish),
    ),
    (
        "messages_confirmed_total",
        C,
        "Total number of messages confirmed to publishers",
        Global::Channel(Stat::ConfirmSent),
    ),
    (
        "messages_unroutable_dropped_total",
        C,
        "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
        Global::Channel(Stat::DropUnroutable),
    ),
    (
        "publishers",
        G,
        "Current number of publishers",
        Global::Publishers,
    ),
    (
        "messages_acknowledged_total",
        C,
        "Total number of messages acknowledged by consumers",
        Global::ByType(&[Stat::Ack]),
    ),
    (
        "messages_routed_total",
        C,
        "Total number of messages routed to queues or streams",
        Global::Routed,
    ),
    (
        "messages_delivered_get_auto_ack_total",
        C,
        "Total number of messages delivered to consumers using basic.get with automatic acknowledgment",
        Global::ByType(&[Stat::GetNoAck]),
    ),
    (
        "messages_received_confirm_total",
        C,
        "Total number of messages received from publishers expecting confirmations",
        Global::Channel(Stat::Confirm),
    ),
    (
        "messages_dead_lettered_rejected_total",
        C,
        "Total number of messages dead-lettered due to basic.reject or basic.nack",
        Global::Dead(Stat::DeadLetteredRejected, Stat::DroppedRejected),
    ),
    (
        "messages_get_empty_total",
        C,
        "Total number of times basic.get operations fetched no message",
        Global::ByType(&[Stat::GetEmpty]),
    ),
    (
        "messages_delivered_total",
        C,
        "Total number of messages delivered to consumers",
        Global::ByType(&[Stat::Deliver, Stat::DeliverNoAck, Stat::Get, Stat::GetNoAck]),
    ),
    (
        "messages_delivered_consume_manual_ack_total",
        C,
        "Total number of messages delivered to consumers using basic.consume with manual acknowledgment",
        Global::ByType(&[Stat::Deliver]),
    ),
    (
        "messages_delivered_get_manual_ack_total",
        C,
        "Total number of messages delivered to consumers using basic.get with manual acknowledgment",
        Global::ByType(&[Stat::Get]),
    ),
    (
        "consumers",
        G,
        "Current number of consumers",
        Global::Consumers,
    ),
    (
        "messages_unroutable_returned_total",
        C,
        "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
        Global::Channel(Stat::ReturnUnroutable),
    ),
    (
        "messages_dead_lettered_delivery_limit_total",
        C,
        "Total number of messages dead-lettered due to delivery-limit exceeded",
        Global::DeadQuorum(Stat::DeadLetteredDeliveryLimit, Stat::DroppedDeliveryLimit),
    ),
    (
        "messages_redelivered_total",
        C,
        "Total number of messages redelivered to consumers",
        Global::ByType(&[Stat::Redeliver]),
    ),
];

/// Which endpoint a scrape serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Aggregated,
    PerObject,
    Detailed,
}

impl Endpoint {
    /// `rabbitmq_identity_info`'s `rabbitmq_endpoint` label (RabbitMQ 3.11 and later).
    fn label(self) -> &'static str {
        match self {
            Endpoint::Aggregated => "aggregated",
            Endpoint::PerObject => "per-object",
            Endpoint::Detailed => "detailed",
        }
    }
}

/// `/metrics/detailed`'s query: the families asked for and the vhosts (`None`: all).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filter {
    pub families: Vec<String>,
    pub vhosts: Option<Vec<String>>,
}

impl Filter {
    fn vhost(&self, v: &str) -> bool {
        self.vhosts
            .as_ref()
            .is_none_or(|vs| vs.iter().any(|x| x == v))
    }
}

/// A vhost's queues, each with its levels as the scrape read them.
type VHostQueues = (Arc<VHost>, Vec<(Arc<Queue>, QueueLevels)>);

/// What one scrape read of the broker, gathered once and shared by every family.
struct Objects {
    conns: Vec<(Arc<ConnectionEntry>, Vec<Arc<ChannelLink>>)>,
    queues: Vec<VHostQueues>,
}

impl Objects {
    fn read(p: &Prom, filter: Option<&Filter>) -> Objects {
        let keep = |v: &str| filter.is_none_or(|f| f.vhost(v));
        let conns = p
            .broker
            .connections
            .all()
            .into_iter()
            .filter(|c| keep(&c.vhost))
            .map(|c| {
                let chans = c.channels();
                (c, chans)
            })
            .collect();
        let queues = p
            .broker
            .vhosts()
            .into_iter()
            .filter(|v| keep(&v.name))
            .map(|v| {
                let qs = v.queues().into_iter().map(|q| {
                    let l = q.levels();
                    (q, l)
                });
                let qs = qs.collect();
                (v, qs)
            })
            .collect();
        Objects { conns, queues }
    }

    fn channels(&self) -> impl Iterator<Item = (&ConnectionEntry, &ChannelLink)> {
        self.conns
            .iter()
            .flat_map(|(c, chans)| chans.iter().map(move |l| (&**c, &**l)))
    }

    fn all_queues(&self) -> impl Iterator<Item = (&VHost, &Queue, &QueueLevels)> {
        self.queues
            .iter()
            .flat_map(|(v, qs)| qs.iter().map(move |(q, l)| (&**v, &**q, l)))
    }
}

/// A channel's label value: RabbitMQ names channels (and, in the connection families,
/// connections) by their Erlang process id; Warren writes `<0.{connection}.{channel}>`
/// (channel 0 for the connection itself), unique per node as a pid is.
fn pid(connection: u64, channel: u16) -> String {
    format!("<0.{connection}.{channel}>")
}

type Rows = Vec<(String, Vec<f64>)>;

fn rows(p: &Prom, source: Source, o: &Objects) -> Rows {
    let one = |v: Vec<f64>| vec![(String::new(), v)];
    let f = |n: u64| n as f64;
    match source {
        Source::ConnectionChurn => {
            let c = &p.broker.connections.churn;
            let vhosts = p.broker.vhosts();
            let q = |pick: fn(&stats::QueueChurn) -> &stats::Counter| {
                vhosts.iter().map(|v| pick(&v.churn).get()).sum::<u64>() as f64
            };
            one(vec![
                f(c.connection_created.get()),
                f(c.connection_closed.get()),
                f(c.channel_created.get()),
                f(c.channel_closed.get()),
                q(|c| &c.declared),
                q(|c| &c.created),
                q(|c| &c.deleted),
            ])
        }
        Source::NodeCoarse => {
            let (fds, _) = alarm::fds();
            one(vec![
                f(fds),
                f(p.broker.connections.len() as u64),
                f(alarm::resident_bytes().unwrap_or(0)),
                f(alarm::disk_free(&p.shared.config.storage.dir).unwrap_or(0)),
                f(
                    tokio::runtime::Handle::try_current()
                        .map_or(0, |h| h.metrics().num_alive_tasks()) as u64,
                ),
            ])
        }
        Source::Node => {
            let cfg = &p.shared.config;
            let (_, fd_total) = alarm::fds();
            one(vec![
                f(fd_total),
                f(fd_total),
                f(cfg
                    .memory
                    .high_watermark_bytes(alarm::total_ram())
                    .unwrap_or(0)),
                f(cfg.storage.disk_free_limit_bytes().unwrap_or(0)),
                1_048_576.0,
                0.0,
                60.0,
                p.started.elapsed().as_secs_f64(),
            ])
        }
        Source::QueueCoarse => queue_rows(o, |q, l| {
            let unacked = q.unacked.load(Relaxed);
            // `messages` counts a quorum queue's discards, as RabbitMQ's does.
            vec![f(l.ready), f(unacked), f(l.ready + unacked + l.dlx)]
        }),
        Source::QueueConsumerCount => queue_rows(o, |_, l| vec![f(l.consumers)]),
        Source::Queue => queue_rows(o, |q, l| {
            let unacked = q.unacked.load(Relaxed);
            let capacity = if l.consumers > 0 { 1.0 } else { 0.0 };
            let in_ram = l.ready - l.paged_out;
            let ram_bytes = l.ready_bytes - l.paged_out_bytes;
            vec![
                f(l.consumers),
                capacity,
                capacity,
                f(in_ram + unacked),
                f(ram_bytes),
                f(in_ram),
                f(unacked),
                f(l.ready_bytes),
                f(l.ready_bytes),
                f(l.paged_out),
                f(l.paged_out_bytes),
            ]
        }),
        Source::Channel => o
            .channels()
            .map(|(c, l)| {
                let d = l.deliveries.lock().unwrap();
                let (consumers, unacked, global) =
                    (d.consumers.len(), d.unacked.len(), d.global_prefetch);
                drop(d);
                let s = &l.stats;
                let unconfirmed = s
                    .get(Stat::Confirm)
                    .saturating_sub(s.get(Stat::ConfirmSent));
                (
                    labels(&[("channel", &pid(c.id, l.id))]),
                    vec![
                        consumers as f64,
                        unacked as f64,
                        f(unconfirmed),
                        f(l.prefetch.load(Relaxed) as u64),
                        f(global as u64),
                    ],
                )
            })
            .collect(),
        Source::ChannelExchange => channel_rows(
            o,
            &[
                Stat::Publish,
                Stat::ConfirmSent,
                Stat::ReturnUnroutable,
                Stat::DropUnroutable,
            ],
        ),
        Source::ChannelQueue => channel_rows(
            o,
            &[
                Stat::Get,
                Stat::GetNoAck,
                Stat::Deliver,
                Stat::DeliverNoAck,
                Stat::Redeliver,
                Stat::Ack,
                Stat::GetEmpty,
            ],
        ),
        Source::ConnectionCoarse => o
            .conns
            .iter()
            .map(|(c, _)| {
                let t = &c.traffic;
                (
                    labels(&[("channel", &pid(c.id, 0))]),
                    vec![f(t.recv_oct.load(Relaxed)), f(t.send_oct.load(Relaxed))],
                )
            })
            .collect(),
        Source::Connection => o
            .conns
            .iter()
            .map(|(c, chans)| {
                let t = &c.traffic;
                (
                    labels(&[("channel", &pid(c.id, 0))]),
                    vec![
                        f(t.recv_cnt.load(Relaxed)),
                        f(t.send_cnt.load(Relaxed)),
                        chans.len() as f64,
                    ],
                )
            })
            .collect(),
        Source::QueueExchange => o
            .all_queues()
            .map(|(v, q, _)| {
                (
                    labels(&[("queue_vhost", &v.name), ("queue", &q.name.to_string())]),
                    vec![f(q.stats.get(Stat::Publish))],
                )
            })
            .collect(),
        Source::VHostStatus => o
            .queues
            .iter()
            .map(|(v, _)| (labels(&[("vhost", &v.name)]), vec![1.0]))
            .collect(),
        Source::ExchangeBindings | Source::ExchangeNames => {
            let mut out = Vec::new();
            for (v, _) in &o.queues {
                for e in v.exchanges() {
                    if e.name.is_empty() {
                        continue;
                    }
                    let value = if source == Source::ExchangeBindings {
                        e.bindings().len() as f64
                    } else {
                        1.0
                    };
                    let name = e.name.to_string();
                    let l = labels(&[
                        ("vhost", &v.name),
                        ("exchange", &name),
                        ("type", e.kind.name()),
                    ]);
                    out.push((l, vec![value]));
                }
            }
            out
        }
    }
}

fn queue_rows(o: &Objects, values: impl Fn(&Queue, &QueueLevels) -> Vec<f64>) -> Rows {
    o.all_queues()
        .map(|(v, q, l)| {
            (
                labels(&[("vhost", &v.name), ("queue", &q.name.to_string())]),
                values(q, l),
            )
        })
        .collect()
}

/// RabbitMQ labels these per (channel, exchange) and per (channel, queue); Warren counts
/// per channel, labelled `channel` and `vhost`.
fn channel_rows(o: &Objects, which: &[Stat]) -> Rows {
    o.channels()
        .map(|(c, l)| {
            (
                labels(&[("channel", &pid(c.id, l.id)), ("vhost", &c.vhost)]),
                which.iter().map(|s| l.stats.get(*s) as f64).collect(),
            )
        })
        .collect()
}

/// Writes one table: each metric's family header, then its samples (per object, or
/// summed into one unlabelled sample).
fn write_table(t: &mut Text, prefix: &str, table: &Table, rows: &Rows, per_object: bool) {
    for (i, metric) in table.metrics.iter().enumerate() {
        t.family(prefix, metric.name, metric.kind, metric.help);
        if per_object {
            for (l, values) in rows {
                t.sample(prefix, metric.name, l, values[i]);
            }
        } else if metric.aggregate {
            t.sample(
                prefix,
                metric.name,
                "",
                rows.iter().map(|(_, v)| v[i]).sum(),
            );
        }
    }
}

/// The scrape for `endpoint` (`filter`: `/metrics/detailed`'s query).
pub fn scrape(p: &Prom, endpoint: Endpoint, filter: &Filter) -> String {
    let detailed = endpoint == Endpoint::Detailed;
    let objects = Objects::read(p, detailed.then_some(filter));
    let mut t = Text::with_capacity(
        16 * 1024 + 2048 * objects.queues.iter().map(|(_, q)| q.len()).sum::<usize>(),
    );
    if detailed {
        let asked = |family: &str| filter.families.iter().any(|f| f == family);
        for table in TABLES {
            // queue_consumer_count is the part of queue_metrics it names.
            let skip = table.source == Source::QueueConsumerCount && asked("queue_metrics");
            if asked(table.family) && !skip {
                let r = rows(p, table.source, &objects);
                write_table(&mut t, "rabbitmq_detailed_", table, &r, true);
            }
        }
        for table in CLUSTER_TABLES {
            if asked(table.family) {
                let r = rows(p, table.source, &objects);
                write_table(&mut t, "rabbitmq_cluster_", table, &r, true);
            }
        }
        identity(p, &mut t, endpoint);
        return t.out;
    }
    alarms(p, &mut t);
    let per_object = endpoint == Endpoint::PerObject;
    for table in TABLES {
        if table.source == Source::QueueConsumerCount {
            continue;
        }
        let r = rows(p, table.source, &objects);
        write_table(&mut t, "rabbitmq_", table, &r, per_object);
    }
    totals(&mut t, &objects);
    identity(p, &mut t, endpoint);
    globals(p, &mut t, &objects);
    message_sizes(p, &mut t, &objects);
    t.out
}

fn alarms(p: &Prom, t: &mut Text) {
    let raised = *p.shared.alarm.borrow();
    let alarms = [
        (
            "alarms_file_descriptor_limit",
            "is 1 if file descriptor limit alarm is in effect",
            false,
        ),
        (
            "alarms_free_disk_space_watermark",
            "is 1 if free disk space watermark alarm is in effect",
            raised == Some(alarm::LOW_ON_DISK),
        ),
        (
            "alarms_memory_used_watermark",
            "is 1 if VM memory watermark alarm is in effect",
            raised == Some(alarm::LOW_ON_MEMORY),
        ),
    ];
    for (name, help, on) in alarms {
        t.family("rabbitmq_", name, Kind::Untyped, help);
        t.sample("rabbitmq_", name, "", if on { 1.0 } else { 0.0 });
    }
}

fn totals(t: &mut Text, o: &Objects) {
    let channels: usize = o.conns.iter().map(|(_, c)| c.len()).sum();
    let consumers: u64 = o.all_queues().map(|(_, _, l)| l.consumers).sum();
    let queues: usize = o.queues.iter().map(|(_, q)| q.len()).sum();
    let values = [
        o.conns.len() as f64,
        channels as f64,
        consumers as f64,
        queues as f64,
    ];
    for ((name, help), v) in TOTALS.iter().zip(values) {
        t.family("rabbitmq_", name, Kind::Gauge, help);
        t.sample("rabbitmq_", name, "", v);
    }
}

/// `rabbitmq_build_info` and `rabbitmq_identity_info`, which every dashboard panel
/// joins on (`* on(instance) group_left(rabbitmq_cluster, rabbitmq_node)`).
fn identity(p: &Prom, t: &mut Text, endpoint: Endpoint) {
    t.family(
        "rabbitmq_",
        "build_info",
        Kind::Untyped,
        "RabbitMQ & Erlang/OTP version info",
    );
    let version = env!("CARGO_PKG_VERSION");
    let build = labels(&[
        ("product_name", "Warren"),
        ("product_version", version),
        ("rabbitmq_version", RABBITMQ_COMPATIBLE_VERSION),
        ("prometheus_plugin_version", RABBITMQ_COMPATIBLE_VERSION),
        ("prometheus_client_version", version),
        ("erlang_version", "none"),
    ]);
    t.sample("rabbitmq_", "build_info", &build, 1.0);
    t.family(
        "rabbitmq_",
        "identity_info",
        Kind::Untyped,
        "RabbitMQ node & cluster identity info",
    );
    let id = p.broker.internal_cluster_id().unwrap_or_default();
    let identity = labels(&[
        ("rabbitmq_node", &p.node),
        ("rabbitmq_cluster", &p.shared.cluster_name()),
        ("rabbitmq_cluster_permanent_id", &id),
        ("rabbitmq_endpoint", endpoint.label()),
    ]);
    t.sample("rabbitmq_", "identity_info", &identity, 1.0);
}

/// Live channels' counters plus closed ones'.
fn channel_totals(p: &Prom, o: &Objects) -> Counters {
    let all = stats::sum(o.channels().map(|(_, l)| &l.stats));
    all.absorb(&p.broker.connections.retired);
    all
}

/// Live queues' counters plus deleted ones', per queue type.
fn queue_totals(p: &Prom, o: &Objects) -> ByQueueType {
    let out = ByQueueType::default();
    out.absorb(&p.broker.retired_queues);
    for (v, qs) in &o.queues {
        out.absorb(&v.retired);
        for (q, _) in qs {
            out.0[q.args.queue_type as usize].absorb(&q.stats);
        }
    }
    out
}

fn globals(p: &Prom, t: &mut Text, o: &Objects) {
    let ch = channel_totals(p, o);
    let by_type = queue_totals(p, o);
    let amqp = labels(&[("protocol", "amqp091")]);
    let typed: Vec<String> = QUEUE_TYPES
        .iter()
        .map(|q| labels(&[("protocol", "amqp091"), ("queue_type", q)]))
        .collect();
    const PREFIX: &str = "rabbitmq_global_";
    for (name, kind, help, source) in GLOBALS {
        t.family(PREFIX, name, *kind, help);
        match source {
            Global::Channel(s) => t.sample(PREFIX, name, &amqp, ch.get(*s) as f64),
            Global::Routed => {
                let unroutable = ch.get(Stat::ReturnUnroutable) + ch.get(Stat::DropUnroutable);
                t.sample(
                    PREFIX,
                    name,
                    &amqp,
                    ch.get(Stat::Publish).saturating_sub(unroutable) as f64,
                )
            }
            Global::ByType(stats) => {
                for (l, c) in typed.iter().zip(&by_type.0) {
                    t.sample(
                        PREFIX,
                        name,
                        l,
                        stats.iter().map(|s| c.get(*s)).sum::<u64>() as f64,
                    );
                }
            }
            Global::Dead(dlx, dropped) => {
                let [classic, quorum, _] = &by_type.0;
                let rows: &[(&str, &str, f64)] = &[
                    (
                        "rabbit_classic_queue",
                        "at_most_once",
                        classic.get(*dlx) as f64,
                    ),
                    (
                        "rabbit_classic_queue",
                        "disabled",
                        classic.get(*dropped) as f64,
                    ),
                    ("rabbit_quorum_queue", "at_least_once", 0.0),
                    (
                        "rabbit_quorum_queue",
                        "at_most_once",
                        quorum.get(*dlx) as f64,
                    ),
                    (
                        "rabbit_quorum_queue",
                        "disabled",
                        quorum.get(*dropped) as f64,
                    ),
                ];
                for (qt, strategy, v) in rows {
                    // Overflow never dead-letters at-least-once in RabbitMQ: no such row.
                    if *strategy == "at_least_once" && *dlx == Stat::DeadLetteredMaxlen {
                        continue;
                    }
                    let l = labels(&[("queue_type", qt), ("dead_letter_strategy", strategy)]);
                    t.sample(PREFIX, name, &l, *v);
                }
            }
            Global::DeadQuorum(dlx, dropped) => {
                let quorum = &by_type.0[1];
                for (strategy, v) in [
                    ("at_least_once", 0),
                    ("at_most_once", quorum.get(*dlx)),
                    ("disabled", quorum.get(*dropped)),
                ] {
                    let l = labels(&[
                        ("queue_type", "rabbit_quorum_queue"),
                        ("dead_letter_strategy", strategy),
                    ]);
                    t.sample(PREFIX, name, &l, v as f64);
                }
            }
            Global::DeadQuorumOnly(strategies) => {
                for s in *strategies {
                    let l = labels(&[
                        ("queue_type", "rabbit_quorum_queue"),
                        ("dead_letter_strategy", s),
                    ]);
                    t.sample(PREFIX, name, &l, 0.0);
                }
            }
            Global::Publishers => {
                let n = o
                    .channels()
                    .filter(|(_, l)| l.stats.get(Stat::Publish) > 0)
                    .count();
                t.sample(PREFIX, name, &amqp, n as f64)
            }
            Global::Consumers => {
                let n: u64 = o.all_queues().map(|(_, _, l)| l.consumers).sum();
                t.sample(PREFIX, name, &amqp, n as f64)
            }
        }
    }
}

/// `le` values as the dashboard's queries write them (Prometheus' normalised form),
/// so that they match whichever Prometheus version scrapes.
const LE: [&str; 9] = [
    "100.0", "1000.0", "10000.0", "100000.0", "1e+06", "1e+07", "5e+07", "1e+08", "+Inf",
];

/// The message size histogram (RabbitMQ 4.0's `rabbitmq_message_size_bytes`): live
/// channels' plus closed ones'.
fn message_sizes(p: &Prom, t: &mut Text, o: &Objects) {
    let all = SizeHistogram::default();
    all.absorb(&p.broker.connections.retired_sizes);
    for (_, l) in o.channels() {
        all.absorb(&l.sizes);
    }
    let (buckets, sum) = all.read();
    const NAME: &str = "message_size_bytes";
    t.family(
        "rabbitmq_",
        NAME,
        Kind::Histogram,
        "Size of messages received from publishers",
    );
    let mut cumulative = 0;
    for (i, le) in LE.iter().enumerate() {
        cumulative += buckets[i];
        let l = labels(&[("protocol", "amqp091"), ("le", le)]);
        t.sample(
            "rabbitmq_",
            "message_size_bytes_bucket",
            &l,
            cumulative as f64,
        );
    }
    let amqp = labels(&[("protocol", "amqp091")]);
    t.sample(
        "rabbitmq_",
        "message_size_bytes_count",
        &amqp,
        cumulative as f64,
    );
    t.sample("rabbitmq_", "message_size_bytes_sum", &amqp, sum as f64);
    debug_assert_eq!(LE.len(), SIZE_BOUNDS.len() + 1);
}
