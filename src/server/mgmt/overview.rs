//! `overview`, `whoami`, `nodes`, `nodes/{name}`, `extensions`, `cluster-name`: the broker
//! as a whole, with the fields RabbitMQ 3.10 serves (those that strict clients such as
//! rabbitmqadmin-ng require among them).

use super::Mgmt;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use crate::broker::stats::{self, CHANNEL};
use crate::server::alarm;
use crate::server::handshake::RABBITMQ_COMPATIBLE_VERSION;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Mgmt>> {
    Router::new()
        .route("/api/overview", get(overview))
        .route("/api/whoami", get(whoami))
        .route("/api/nodes", get(nodes))
        .route("/api/nodes/{name}", get(node))
        .route("/api/nodes/{name}/memory", get(node_memory))
        .route("/api/feature-flags", get(feature_flags))
        .route("/api/extensions", get(extensions))
        .route(
            "/api/cluster-name",
            get(cluster_name).put(super::policies::put_cluster_name),
        )
}

const EXCHANGE_TYPES: [(&str, &str); 7] = [
    (
        "direct",
        "AMQP direct exchange, as per the AMQP specification",
    ),
    (
        "fanout",
        "AMQP fanout exchange, as per the AMQP specification",
    ),
    (
        "headers",
        "AMQP headers exchange, as per the AMQP specification",
    ),
    (
        "topic",
        "AMQP topic exchange, as per the AMQP specification",
    ),
    ("x-consistent-hash", "Consistent Hashing Exchange"),
    ("x-message-deduplication", "Message Deduplication Exchange."),
    // The delayed-message plugin's description/0.
    ("x-delayed-message", "Delayed Message Exchange."),
];

fn exchange_types() -> Value {
    EXCHANGE_TYPES
        .iter()
        .map(|(n, d)| json!({"name": n, "description": d, "enabled": true}))
        .collect()
}

fn rate0() -> Value {
    json!({"rate": 0.0})
}

/// The cluster's name: the `cluster_name` global parameter when set, else the node's.
pub(super) fn cluster_name_of(m: &Mgmt) -> String {
    m.shared.cluster_name()
}

impl Mgmt {
    /// The broker's message statistics: closed channels' plus the open ones'.
    pub(super) fn message_stats(&self, vhost: Option<&str>) -> Value {
        let conns = self.broker.connections.all();
        let links: Vec<_> = conns
            .iter()
            .filter(|c| vhost.is_none_or(|v| v == c.vhost))
            .flat_map(|c| c.channels())
            .collect();
        let live = stats::sum(links.iter().map(|l| &l.stats));
        if vhost.is_none() {
            live.absorb(&self.broker.connections.retired);
        }
        live.json(CHANNEL)
    }

    pub(super) fn listeners_json(&self) -> Value {
        self.listeners
            .iter()
            .map(|(protocol, addr)| {
                json!({
                    "node": self.node,
                    "protocol": protocol,
                    "ip_address": addr.ip().to_string(),
                    "port": addr.port(),
                    "socket_opts": {},
                })
            })
            .collect()
    }
}

async fn overview(State(m): State<Arc<Mgmt>>, caller: Caller) -> ApiResult<Json<Value>> {
    let vhosts: Vec<_> = m
        .broker
        .vhosts()
        .into_iter()
        .filter(|v| caller.sees_vhost(&m, &v.name))
        .collect();
    let (mut ready, mut unacked, mut queues, mut exchanges, mut consumers) = (0u64, 0u64, 0, 0, 0);
    // Quorum queues' discards waiting for their dead-letter target: in `messages`, as
    // RabbitMQ's queue totals count them.
    let mut dlx = 0u64;
    let (mut ready_rate, mut unacked_rate) = (0.0, 0.0);
    for v in &vhosts {
        for q in v.queues() {
            let s = q.snapshot();
            ready += s.ready;
            dlx += s.dlx;
            unacked += q.unacked.load(std::sync::atomic::Ordering::Relaxed);
            ready_rate += q.depth.ready.rate();
            unacked_rate += q.depth.unacked.rate();
            consumers += s.consumers.len();
            queues += 1;
        }
        exchanges += v.exchanges().len();
    }
    let conns: Vec<_> = m
        .broker
        .connections
        .all()
        .into_iter()
        .filter(|c| caller.is_monitor() || c.user == caller.name())
        .collect();
    let channels: usize = conns.iter().map(|c| c.channels().len()).sum();
    let version = RABBITMQ_COMPATIBLE_VERSION;
    Ok(Json(json!({
        "management_version": version,
        "rates_mode": "basic",
        "sample_retention_policies": {
            "global": [600, 3600, 28800, 86400],
            "basic": [600, 3600],
            "detailed": [600],
        },
        "exchange_types": exchange_types(),
        "product_version": env!("CARGO_PKG_VERSION"),
        "product_name": "Warren",
        "rabbitmq_version": version,
        "cluster_name": cluster_name_of(&m),
        "erlang_version": "none (Warren is written in Rust)",
        "erlang_full_version": "none (Warren is written in Rust)",
        "release_series_support_status": "supported",
        "disable_stats": false,
        "enable_queue_totals": false,
        "message_stats": m.message_stats(None),
        "churn_rates": churn_rates(&m, &vhosts),
        "queue_totals": {
            "messages": ready + unacked + dlx,
            "messages_details": {"rate": ready_rate + unacked_rate},
            "messages_ready": ready,
            "messages_ready_details": {"rate": ready_rate},
            "messages_unacknowledged": unacked,
            "messages_unacknowledged_details": {"rate": unacked_rate},
        },
        "object_totals": {
            "channels": channels,
            "connections": conns.len(),
            "consumers": consumers,
            "exchanges": exchanges,
            "queues": queues,
        },
        "statistics_db_event_queue": 0,
        "node": m.node,
        "listeners": m.listeners_json(),
        "contexts": [],
    })))
}

/// Connections and channels opened and closed, queues declared, created and deleted,
/// with their rates.
fn churn_rates(m: &Mgmt, vhosts: &[Arc<crate::broker::vhost::VHost>]) -> Value {
    let c = &m.broker.connections.churn;
    let mut out = serde_json::Map::new();
    let mut put = |name: &str, total: u64, rate: f64| {
        out.insert(name.into(), json!(total));
        out.insert(format!("{name}_details"), json!({"rate": rate}));
    };
    for (name, counter) in [
        ("connection_created", &c.connection_created),
        ("connection_closed", &c.connection_closed),
        ("channel_created", &c.channel_created),
        ("channel_closed", &c.channel_closed),
    ] {
        put(name, counter.get(), counter.rate());
    }
    type Pick = fn(&crate::broker::stats::QueueChurn) -> &crate::broker::stats::Counter;
    let picks: [(&str, Pick); 3] = [
        ("queue_declared", |q| &q.declared),
        ("queue_created", |q| &q.created),
        ("queue_deleted", |q| &q.deleted),
    ];
    for (name, pick) in picks {
        let total = vhosts.iter().map(|v| pick(&v.churn).get()).sum();
        let rate = vhosts.iter().map(|v| pick(&v.churn).rate()).sum();
        put(name, total, rate);
    }
    Value::Object(out)
}

async fn whoami(caller: Caller) -> Json<Value> {
    Json(json!({"name": caller.user.name, "tags": caller.user.tags}))
}

fn node_json(m: &Mgmt) -> Value {
    let cfg = &m.config;
    let mem_limit = cfg
        .memory
        .high_watermark_bytes(alarm::total_ram())
        .unwrap_or(0);
    let disk_limit = cfg.storage.disk_free_limit_bytes().unwrap_or(0);
    let raised = *m.shared.alarm.borrow();
    let (fd_used, fd_total) = alarm::fds();
    let processors = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tasks = tokio::runtime::Handle::try_current().map_or(0, |h| h.metrics().num_alive_tasks());
    let auth = ["PLAIN", "AMQPLAIN", "EXTERNAL"]
        .iter()
        .map(|n| json!({"name": n, "description": format!("SASL {n}"), "enabled": true}))
        .collect::<Vec<_>>();
    json!({
        "name": m.node,
        "type": "disc",
        "running": true,
        "being_drained": false,
        "os_pid": std::process::id().to_string(),
        "uptime": m.started.elapsed().as_millis() as u64,
        "run_queue": 0,
        "processors": processors,
        "fd_total": fd_total,
        "fd_used": fd_used,
        "fd_used_details": rate0(),
        "sockets_total": fd_total,
        "sockets_used": m.broker.connections.len(),
        "sockets_used_details": rate0(),
        "proc_total": 1048576,
        "proc_used": tasks,
        "proc_used_details": rate0(),
        "mem_limit": mem_limit,
        "mem_used": alarm::resident_bytes().unwrap_or(0),
        "mem_used_details": rate0(),
        "mem_alarm": raised == Some(alarm::LOW_ON_MEMORY),
        "mem_calculation_strategy": "rss",
        "disk_free_limit": disk_limit,
        "disk_free": alarm::disk_free(&cfg.storage.dir).unwrap_or(0),
        "disk_free_details": rate0(),
        "disk_free_alarm": raised == Some(alarm::LOW_ON_DISK),
        "rates_mode": "basic",
        "net_ticktime": 60,
        "enabled_plugins": ["rabbitmq_management"],
        "exchange_types": exchange_types(),
        "auth_mechanisms": auth,
        "applications": [{"name": "warren", "description": "Warren", "version": env!("CARGO_PKG_VERSION")}],
        "contexts": [],
        "log_files": [],
        "db_dir": cfg.storage.dir.display().to_string(),
        "config_files": [],
        "partitions": [],
        "cluster_links": [],
        "gc_num": 0,
        "gc_num_details": rate0(),
        "gc_bytes_reclaimed": 0,
        "gc_bytes_reclaimed_details": rate0(),
        "context_switches": 0,
        "context_switches_details": rate0(),
        "metrics_gc_queue_length": {},
    })
}

async fn nodes(State(m): State<Arc<Mgmt>>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_monitor()?;
    Ok(Json(json!([node_json(&m)])))
}

async fn node(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_monitor()?;
    if name != m.node {
        return Err(ApiError::not_found());
    }
    Ok(Json(node_json(&m)))
}

/// RabbitMQ 3.10's feature flags, all enabled: Warren behaves as a 3.10 node with every
/// one of them on (clients and tools check them before using what they gate).
const FEATURE_FLAGS: [(&str, &str, &str); 9] = [
    (
        "classic_mirrored_queue_version",
        "Support setting version for classic mirrored queues",
        "rabbit",
    ),
    (
        "drop_unroutable_metric",
        "Count unroutable publishes to be dropped in stats",
        "rabbitmq_management_agent",
    ),
    (
        "empty_basic_get_metric",
        "Count AMQP `basic.get` on empty queues in stats",
        "rabbitmq_management_agent",
    ),
    (
        "implicit_default_bindings",
        "Default bindings are now implicit, instead of being stored in the database",
        "rabbit",
    ),
    (
        "maintenance_mode_status",
        "Maintenance mode status",
        "rabbit",
    ),
    ("quorum_queue", "Support queues of type `quorum`", "rabbit"),
    ("stream_queue", "Support queues of type `stream`", "rabbit"),
    (
        "user_limits",
        "Configure connection and channel limits for a user",
        "rabbit",
    ),
    (
        "virtual_host_metadata",
        "Virtual host metadata (description, tags, etc)",
        "rabbit",
    ),
];

async fn feature_flags(caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_monitor()?;
    Ok(Json(
        FEATURE_FLAGS
            .iter()
            .map(|(name, desc, by)| {
                json!({"name": name, "desc": desc, "doc_url": "", "state": "enabled",
                       "stability": "stable", "provided_by": by})
            })
            .collect(),
    ))
}

/// The node's memory in RabbitMQ's breakdown: message bodies held by queues under
/// `queue_procs`, the rest of the resident set under `other_system`.
async fn node_memory(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_monitor()?;
    if name != m.node {
        return Err(ApiError::not_found());
    }
    let rss = alarm::resident_bytes().unwrap_or(0);
    let queues: u64 = m
        .broker
        .vhosts()
        .iter()
        .flat_map(|v| v.queues())
        .map(|q| {
            let s = q.snapshot();
            s.ready_bytes.saturating_sub(s.paged_out_bytes)
        })
        .sum();
    let mut mem = serde_json::Map::new();
    for k in [
        "connection_readers",
        "connection_writers",
        "connection_channels",
        "connection_other",
        "queue_slave_procs",
        "quorum_queue_procs",
        "quorum_queue_dlx_procs",
        "stream_queue_procs",
        "stream_queue_replica_reader_procs",
        "stream_queue_coordinator_procs",
        "plugins",
        "other_proc",
        "metrics",
        "mgmt_db",
        "mnesia",
        "quorum_ets",
        "other_ets",
        "binary",
        "msg_index",
        "code",
        "atom",
        "allocated_unused",
        "reserved_unallocated",
    ] {
        mem.insert(k.into(), json!(0));
    }
    mem.insert("queue_procs".into(), json!(queues.min(rss)));
    mem.insert("other_system".into(), json!(rss.saturating_sub(queues)));
    mem.insert("strategy".into(), json!("rss"));
    mem.insert(
        "total".into(),
        json!({"erlang": rss, "rss": rss, "allocated": rss}),
    );
    Ok(Json(json!({ "memory": mem })))
}

async fn extensions(_caller: Caller) -> Json<Value> {
    Json(json!([]))
}

async fn cluster_name(State(m): State<Arc<Mgmt>>, _caller: Caller) -> Json<Value> {
    Json(json!({"name": cluster_name_of(&m)}))
}
