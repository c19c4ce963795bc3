//! An open stream connection's reader task: decodes every whole frame in the buffer and
//! handles it inline (publishes are appended to the stream's log right here), holds each
//! publish's confirm until the store has synced its ticket, then confirms in batches
//! (one PublishConfirm per publisher per sync), sends heartbeats, and notices streams
//! deleted under its publishers and subscribers (MetadataUpdate).
//!
//! The reader owns the connection's state (publishers, subscriptions, permission cache):
//! no lock. What the writer task needs is in [`Out`].
//!
//! Single active consumers (`single-active-consumer=true`, `name=<group>`): the vhost's
//! [`sac::Coordinator`] decides which member of a group reads and tells this connection
//! on its mailbox; the reader asks the client with a ConsumerUpdate and, when the client
//! answers, starts reading from the offset it gave (or stops). A waiting member is a
//! subscription with no [`Sub`] in the writer: the writer, and so every non-SAC
//! consumer's delivery path, knows nothing of groups.
//!
//! Two things stop the reader from reading the socket, and so the client from sending
//! more (TCP flow control does the rest):
//! - the outbound buffer holds more than [`OUT_LIMIT`] bytes not yet written (a client
//!   that sends requests but does not read their responses cannot grow it further);
//! - a disk alarm is raised and the connection has publishers (RabbitMQ 3.10's stream
//!   reader reacts to disk alarms only; a connection without publishers is read on).
//!   DeclarePublisher meanwhile is answered PRECONDITION_FAILED, as RabbitMQ does.

use super::Ctx;
use super::handshake::Opened;
use super::streams::{self, Stream};
use super::writer::{Out, Sub};
use crate::broker::auth::{Perm, ResourceKind};
use crate::broker::connections::ConnectionEntry;
use crate::broker::sac::{self, GroupId, Update};
use crate::broker::stream_clients::{StreamConsumer, StreamPublisher};
use crate::broker::super_stream::{self, SuperStreamError};
use crate::protocol::ShortStr;
use crate::protocol::stream::{
    Broker, ClientCommand, CommandVersion, Entry, FrameCodec, OffsetSpec, Publish, ServerCommand,
    Str, StreamError, StreamMetadata, code, encode_publish_confirm, encode_publish_error, key,
};
use crate::server::alarm::{Alarm, LOW_ON_DISK};
use crate::store::stream as store;
use bytes::BytesMut;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long the client may take to answer a close we sent.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the client may take to answer a request of ours (ConsumerUpdate) before the
/// connection is closed: RabbitMQ's `request_timeout` default. Its subscriptions then
/// leave their groups, so a member stepping down that never answers holds its group up
/// for this long at most.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Encoded frames waiting for the writer above which the reader stops reading the
/// socket until the writer has drained them (responses and confirms of a client that
/// does not read). Deliveries are not counted: the writer pulls chunks only when the
/// socket takes them.
pub(crate) const OUT_LIMIT: usize = 1 << 20;

struct Publisher {
    stream_name: Str,
    stream: Stream,
    /// The publisher reference (deduplication), when it gave one.
    reference: Option<String>,
    /// Its entry in the registry, with the counters the management API shows.
    stats: Arc<StreamPublisher>,
}

struct Subscription {
    /// The writer's side; None while a single active consumer is not reading.
    sub: Option<Arc<Sub>>,
    name: Str,
    stream: Stream,
    sac: Option<Sac>,
}

/// A subscription's place in a single active consumer group.
struct Sac {
    group: GroupId,
    /// The subscription's own offset: where it starts when the client's ConsumerUpdate
    /// response gives none.
    offset: OffsetSpec,
    /// As the coordinator last said (it reads only once the client has answered).
    active: bool,
    /// Credit held while not reading (the initial credit, and credit the client gave
    /// meanwhile, as RabbitMQ keeps it).
    credit: u32,
    /// The subscribe properties, listed by the management API once it reads.
    properties: Vec<(String, String)>,
}

/// A ConsumerUpdate sent and not yet answered.
struct Pending {
    subscription: u8,
    group: GroupId,
    active: bool,
    stepping_down: bool,
    sent: Instant,
}

/// Why the connection ended (logged once).
enum End {
    Client,
    Vanished,
    Heartbeat,
    RequestTimeout,
    Protocol(StreamError),
    Shutdown,
    WriteFailed,
    /// Closed through the registry (management API, user or vhost deleted): as
    /// RabbitMQ 3.10, the socket is closed without a Close frame.
    Forced(String),
}

pub(crate) struct Session {
    ctx: Arc<Ctx>,
    id: u64,
    o: Opened,
    out: Arc<Out>,
    stop: CancellationToken,
    publishers: HashMap<u8, Publisher>,
    subs: HashMap<u8, Subscription>,
    /// (store ticket, publisher id, publishing id), in ticket order.
    unconfirmed: VecDeque<(u64, u8, u64)>,
    /// Where the vhost's SAC coordinator tells this connection's members what to do.
    sac_tx: sac::Mailbox,
    sac_rx: UnboundedReceiver<Update>,
    /// ConsumerUpdates awaiting the client's answer, by correlation id.
    requests: HashMap<u32, Pending>,
    next_request: u32,
    /// This connection in the broker's registry.
    entry: Arc<ConnectionEntry>,
}

/// What a handled command asks of the loop.
enum Flow {
    Go,
    End(End),
}

impl Session {
    pub(crate) fn new(
        ctx: Arc<Ctx>,
        id: u64,
        o: Opened,
        out: Arc<Out>,
        stop: CancellationToken,
    ) -> Session {
        let (sac_tx, sac_rx) = unbounded_channel();
        Session {
            ctx,
            id,
            out,
            stop,
            publishers: HashMap::new(),
            subs: HashMap::new(),
            unconfirmed: VecDeque::new(),
            sac_tx,
            sac_rx,
            requests: HashMap::new(),
            next_request: 0,
            entry: o.presence.entry.clone(),
            o,
        }
    }

    /// Whether `alarm` stops this connection from being read (see the module doc).
    fn blocked_by(&self, alarm: Alarm) -> bool {
        alarm == Some(LOW_ON_DISK) && !self.publishers.is_empty()
    }

    pub(crate) async fn run<R: AsyncRead + Unpin>(mut self, mut rd: R, mut buf: BytesMut) {
        info!(
            user = %self.o.user.name,
            vhost = %self.o.vhost.name,
            client_name = %self.o.client_name,
            "stream connection opened"
        );
        let mut codec = FrameCodec::new(self.o.frame_max);
        let mut synced = self.ctx.shared.store.synced();
        let heartbeat = Duration::from_secs(self.o.heartbeat.into());
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_read = Instant::now();
        let mut last_sent = Instant::now();
        let shutdown = self.ctx.shared.shutdown.clone();
        let mut alarm = self.ctx.shared.alarm.clone();
        let entry = self.entry.clone();
        let end = 'main: loop {
            // Frames already buffered (those read with open, then each read's).
            loop {
                match codec.decode_frame(&mut buf) {
                    Ok(Some(frame)) => {
                        let flow = match ClientCommand::decode(frame) {
                            Ok(cmd) => self.handle(cmd),
                            Err(e) => Flow::End(End::Protocol(e)),
                        };
                        if let Flow::End(e) = flow {
                            break 'main e;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => break 'main End::Protocol(e),
                }
            }
            self.release(*synced.borrow());
            let blocked = self.blocked_by(*alarm.borrow_and_update());
            if blocked != entry.blocked.load(Ordering::Relaxed) {
                entry.blocked.store(blocked, Ordering::Relaxed);
                info!(
                    blocked,
                    "stream connection {} by the disk alarm",
                    if blocked { "blocked" } else { "unblocked" }
                );
            }
            let full = self.out.backlog() > OUT_LIMIT;
            if blocked || full {
                // Not read meanwhile: the heartbeat monitor is paused, as RabbitMQ's.
                last_read = Instant::now();
            }
            // Biased, reading last: an alarm (or a close) seen at the same time as new
            // bytes is acted on before they are read.
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break End::Shutdown,
                _ = self.stop.cancelled() => break End::WriteFailed,
                reason = entry.closed() => break End::Forced(reason),
                r = alarm.changed() => {
                    if r.is_err() {
                        break End::Shutdown;
                    }
                }
                _ = self.out.drained.notified(), if full => {}
                r = synced.changed(), if !self.unconfirmed.is_empty() => {
                    if r.is_err() {
                        break End::Shutdown;
                    }
                    self.release(*synced.borrow_and_update());
                }
                Some(u) = self.sac_rx.recv() => self.sac_update(u),
                _ = tick.tick() => {
                    if blocked || full {
                        last_read = Instant::now();
                    }
                    if !heartbeat.is_zero() {
                        if last_read.elapsed() > 2 * heartbeat {
                            break End::Heartbeat;
                        }
                        if last_sent.elapsed() >= heartbeat {
                            self.out.push(|b| ServerCommand::Heartbeat.encode(b));
                            last_sent = Instant::now();
                        }
                    }
                    self.check_deleted();
                    if self.requests.values().any(|p| p.sent.elapsed() > REQUEST_TIMEOUT) {
                        break End::RequestTimeout;
                    }
                }
                r = rd.read_buf(&mut buf), if !blocked && !full => match r {
                    Ok(0) | Err(_) => break End::Vanished,
                    Ok(n) => {
                        last_read = Instant::now();
                        entry.traffic.received(n);
                    }
                },
            }
        };
        self.finish(end, &mut rd).await;
    }

    /// Ends the connection: a close of ours is sent and answered (or timed out), the
    /// subscriptions are stopped, the writer flushes, and one line is logged.
    async fn finish<R: AsyncRead + Unpin>(&mut self, end: End, rd: &mut R) {
        let close = match &end {
            End::Protocol(e) => Some(e.response_code()),
            _ => None,
        };
        if let Some(c) = &close {
            let reason = if *c == code::FRAME_TOO_LARGE {
                "frame too large"
            } else {
                "unknown frame"
            };
            self.out.push(|b| {
                ServerCommand::Close {
                    correlation_id: 1,
                    code: *c,
                    reason: Str::from(reason),
                }
                .encode(b)
            });
        }
        // Every subscription leaves (its group moves on to another connection's member).
        let ids: Vec<u8> = self.subs.keys().copied().collect();
        for id in ids {
            self.unsubscribe(id);
        }
        self.out.close();
        if close.is_some() {
            // Whatever comes now is ignored; wait for the client to answer or go.
            let mut sink = BytesMut::with_capacity(4096);
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                while let Ok(n) = rd.read_buf(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                    sink.clear();
                }
            })
            .await;
        }
        let (user, vhost, name) = (&self.o.user.name, &self.o.vhost.name, &self.o.client_name);
        match end {
            End::Client => {
                info!(%user, %vhost, client_name = %name, "stream connection closed by the client")
            }
            End::Shutdown => {
                info!(%user, %vhost, client_name = %name, "stream connection closed: broker shutting down")
            }
            End::Vanished => {
                warn!(%user, %vhost, client_name = %name, "stream client closed the TCP connection without close")
            }
            End::Heartbeat => {
                warn!(%user, %vhost, client_name = %name, "missed heartbeats from the stream client, connection dropped")
            }
            End::RequestTimeout => {
                warn!(%user, %vhost, client_name = %name, "stream client did not answer a consumer update in time, connection dropped")
            }
            End::WriteFailed => {
                warn!(%user, %vhost, client_name = %name, "stream connection lost: writing the socket failed")
            }
            End::Protocol(e) => {
                warn!(%user, %vhost, client_name = %name, error = %e, code = e.response_code(), "stream connection closed on a protocol error")
            }
            End::Forced(reason) => {
                info!(%user, %vhost, client_name = %name, %reason, "stream connection closed by the broker")
            }
        }
    }

    fn respond(&self, cmd: ServerCommand) {
        self.out.push(|b| cmd.encode(b));
    }

    fn code_only(&self, k: u16, correlation_id: u32, c: u16) {
        self.respond(ServerCommand::Response {
            key: k,
            correlation_id,
            code: c,
        });
    }

    fn lookup(&self, name: &Str) -> Option<Stream> {
        streams::lookup(&self.o.vhost, &self.ctx.shared.store, name)
    }

    fn allowed(&mut self, perm: Perm, name: &Str) -> bool {
        self.o
            .access
            .check(perm, ResourceKind::Queue, name.as_bytes())
            .is_ok()
    }

    fn handle(&mut self, cmd: ClientCommand) -> Flow {
        use ClientCommand as C;
        match cmd {
            C::Publish(p) => self.publish(p),
            C::Heartbeat | C::Tune { .. } => {}
            C::ConsumerUpdateResponse {
                correlation_id,
                code: c,
                offset,
            } => self.consumer_update_response(correlation_id, c, offset),
            C::CreateSuperStream {
                correlation_id,
                super_stream,
                partitions,
                binding_keys,
                arguments,
            } => {
                let c =
                    self.create_super_stream(&super_stream, &partitions, &binding_keys, &arguments);
                self.code_only(key::CREATE_SUPER_STREAM, correlation_id, c);
            }
            C::DeleteSuperStream {
                correlation_id,
                super_stream,
            } => {
                let c = self.delete_super_stream(&super_stream);
                self.code_only(key::DELETE_SUPER_STREAM, correlation_id, c);
                self.check_deleted();
            }
            C::DeclarePublisher {
                correlation_id,
                publisher_id,
                reference,
                stream,
            } => {
                let c = self.declare_publisher(publisher_id, reference, stream);
                self.code_only(key::DECLARE_PUBLISHER, correlation_id, c);
            }
            C::DeletePublisher {
                correlation_id,
                publisher_id,
            } => {
                let c = match self.publishers.remove(&publisher_id) {
                    Some(_) => {
                        self.entry.stream.remove_publisher(publisher_id);
                        code::OK
                    }
                    None => code::PUBLISHER_DOES_NOT_EXIST,
                };
                self.code_only(key::DELETE_PUBLISHER, correlation_id, c);
            }
            C::QueryPublisherSequence {
                correlation_id,
                reference,
                stream,
            } => {
                let (c, sequence) = match self.lookup(&stream) {
                    None => (code::STREAM_DOES_NOT_EXIST, 0),
                    Some(s) => (
                        code::OK,
                        reference
                            .as_str()
                            .and_then(|r| s.log.publisher_sequence(r))
                            .unwrap_or(0),
                    ),
                };
                self.respond(ServerCommand::QueryPublisherSequenceResponse {
                    correlation_id,
                    code: c,
                    sequence,
                });
            }
            C::Subscribe {
                correlation_id,
                subscription_id,
                stream,
                offset,
                credit,
                properties,
            } => self.subscribe(
                correlation_id,
                subscription_id,
                stream,
                offset,
                credit,
                &properties,
            ),
            C::Credit {
                subscription_id,
                credit,
            } => match self.subs.get_mut(&subscription_id) {
                Some(Subscription { sub: Some(sub), .. }) => {
                    sub.stats.credit.fetch_add(credit.into(), Ordering::AcqRel);
                    self.out.wake.notify_one();
                }
                // A single active consumer not reading: the credit is kept for when it
                // does, and the client told (RabbitMQ answers so).
                Some(Subscription { sac: Some(sac), .. }) => {
                    sac.credit = sac.credit.saturating_add(credit.into());
                    self.respond(ServerCommand::CreditResponse {
                        code: code::PRECONDITION_FAILED,
                        subscription_id,
                    });
                }
                _ => self.respond(ServerCommand::CreditResponse {
                    code: code::SUBSCRIPTION_ID_DOES_NOT_EXIST,
                    subscription_id,
                }),
            },
            C::Unsubscribe {
                correlation_id,
                subscription_id,
            } => {
                let c = if self.unsubscribe(subscription_id) {
                    code::OK
                } else {
                    code::SUBSCRIPTION_ID_DOES_NOT_EXIST
                };
                self.code_only(key::UNSUBSCRIBE, correlation_id, c);
            }
            C::StoreOffset {
                reference,
                stream,
                offset,
            } => {
                if self.allowed(Perm::Read, &stream)
                    && let (Some(s), Some(r)) = (self.lookup(&stream), reference.as_str())
                {
                    s.log.store_offset(r, offset);
                }
            }
            C::QueryOffset {
                correlation_id,
                reference,
                stream,
            } => {
                let (c, offset) = match self.lookup(&stream) {
                    None => (code::STREAM_DOES_NOT_EXIST, 0),
                    Some(s) => match reference.as_str().and_then(|r| s.log.query_offset(r)) {
                        Some(o) => (code::OK, o),
                        None => (code::NO_OFFSET, 0),
                    },
                };
                self.respond(ServerCommand::QueryOffsetResponse {
                    correlation_id,
                    code: c,
                    offset,
                });
            }
            C::Create {
                correlation_id,
                stream,
                arguments,
            } => {
                let c = streams::create(
                    &self.o.vhost,
                    &mut self.o.access,
                    self.id,
                    &stream,
                    &arguments,
                );
                self.code_only(key::CREATE, correlation_id, c);
            }
            C::Delete {
                correlation_id,
                stream,
            } => {
                let c = streams::delete(
                    &self.o.vhost,
                    &self.ctx.shared.store,
                    &mut self.o.access,
                    self.id,
                    &stream,
                );
                self.code_only(key::DELETE, correlation_id, c);
                self.check_deleted();
            }
            C::Metadata {
                correlation_id,
                streams,
            } => self.metadata(correlation_id, streams),
            C::ExchangeCommandVersions { correlation_id, .. } => {
                self.respond(ServerCommand::ExchangeCommandVersionsResponse {
                    correlation_id,
                    code: code::OK,
                    versions: command_versions(),
                })
            }
            C::StreamStats {
                correlation_id,
                stream,
            } => {
                let (c, stats) = match self.lookup(&stream) {
                    None => (code::STREAM_DOES_NOT_EXIST, Vec::new()),
                    Some(s) => {
                        let committed = *s.log.committed().borrow();
                        let first = s.log.first_offset();
                        let last = if committed > first {
                            committed as i64 - 1
                        } else {
                            -1
                        };
                        (
                            code::OK,
                            vec![
                                (Str::from("first_chunk_id"), first as i64),
                                (Str::from("committed_chunk_id"), last),
                            ],
                        )
                    }
                };
                self.respond(ServerCommand::StreamStatsResponse {
                    correlation_id,
                    code: c,
                    stats,
                });
            }
            C::Route {
                correlation_id,
                routing_key,
                super_stream,
            } => {
                let (code, streams) = self.route(&routing_key, &super_stream);
                self.respond(ServerCommand::RouteResponse {
                    correlation_id,
                    code,
                    streams,
                })
            }
            C::Partitions {
                correlation_id,
                super_stream,
            } => {
                let (code, streams) = self.partitions(&super_stream);
                self.respond(ServerCommand::PartitionsResponse {
                    correlation_id,
                    code,
                    streams,
                })
            }
            C::Close { correlation_id, .. } => {
                self.respond(ServerCommand::CloseResponse {
                    correlation_id,
                    code: code::OK,
                });
                return Flow::End(End::Client);
            }
            C::CloseResponse { .. } => return Flow::End(End::Client),
            // The handshake's commands again after open: RabbitMQ closes with unknown frame.
            C::PeerProperties { .. }
            | C::SaslHandshake { .. }
            | C::SaslAuthenticate { .. }
            | C::Open { .. } => {
                return Flow::End(End::Protocol(StreamError::UnknownCommand {
                    key: 0,
                    version: 1,
                }));
            }
        }
        Flow::Go
    }

    /// Route: write on the super stream's exchange, then on every stream it routes to
    /// (RabbitMQ's reader on main, rabbitmq-server 53af22f; 3.10 checked nothing). No
    /// match is OK with no streams.
    fn route(&mut self, routing_key: &Str, super_stream: &Str) -> (u16, Vec<Str>) {
        let x = super_stream.as_bytes();
        if !self.allowed_on(Perm::Write, ResourceKind::Exchange, x) {
            return (code::ACCESS_REFUSED, Vec::new());
        }
        match super_stream::route(&self.o.vhost, x, routing_key.as_bytes()) {
            Err(_) => (code::STREAM_DOES_NOT_EXIST, Vec::new()),
            Ok(names) => self.all_allowed(&[Perm::Write], names),
        }
    }

    /// Partitions: read or write on the super stream's exchange, then on every partition
    /// (as RabbitMQ's reader on main).
    fn partitions(&mut self, super_stream: &Str) -> (u16, Vec<Str>) {
        let x = super_stream.as_bytes();
        let either = [Perm::Read, Perm::Write];
        if !either
            .iter()
            .any(|&p| self.allowed_on(p, ResourceKind::Exchange, x))
        {
            return (code::ACCESS_REFUSED, Vec::new());
        }
        match super_stream::partitions(&self.o.vhost, x) {
            Err(_) => (code::STREAM_DOES_NOT_EXIST, Vec::new()),
            Ok(names) => self.all_allowed(&either, names),
        }
    }

    /// OK with `names` when the user holds one of `perms` on every one of them (queues),
    /// else ACCESS_REFUSED with none.
    fn all_allowed(&mut self, perms: &[Perm], names: Vec<ShortStr>) -> (u16, Vec<Str>) {
        let ok = names.iter().all(|n| {
            perms
                .iter()
                .any(|&p| self.allowed_on(p, ResourceKind::Queue, n.as_bytes()))
        });
        if !ok {
            return (code::ACCESS_REFUSED, Vec::new());
        }
        (code::OK, names.into_iter().map(|n| Str(n.0)).collect())
    }

    fn allowed_on(&mut self, perm: Perm, kind: ResourceKind, name: &[u8]) -> bool {
        self.o.access.check(perm, kind, name).is_ok()
    }

    fn declare_publisher(&mut self, id: u8, reference: Str, stream: Str) -> u16 {
        if *self.ctx.shared.alarm.borrow() == Some(LOW_ON_DISK) {
            info!(publisher = id, stream = %stream, "cannot create publisher: the connection is blocked by the disk alarm");
            return code::PRECONDITION_FAILED;
        }
        if !self.allowed(Perm::Write, &stream) {
            return code::ACCESS_REFUSED;
        }
        let reference = (!reference.is_empty()).then(|| reference.to_string_lossy().into_owned());
        let taken = self.publishers.contains_key(&id)
            || reference.as_ref().is_some_and(|r| {
                self.publishers
                    .values()
                    .any(|p| p.stream_name == stream && p.reference.as_ref() == Some(r))
            });
        if taken {
            return code::PRECONDITION_FAILED;
        }
        let Some(s) = self.lookup(&stream) else {
            return code::STREAM_DOES_NOT_EXIST;
        };
        let stats = Arc::new(StreamPublisher::new(
            id,
            stream.to_string_lossy().into_owned(),
            reference.clone().unwrap_or_default(),
        ));
        self.entry.stream.add_publisher(stats.clone());
        self.publishers.insert(
            id,
            Publisher {
                stream_name: stream,
                stream: s,
                reference,
                stats,
            },
        );
        code::OK
    }

    /// Appends each message to the publisher's stream; confirms wait for the store.
    fn publish(&mut self, p: Publish) {
        let pid = p.publisher_id;
        if self
            .publishers
            .get(&pid)
            .is_some_and(|p| p.stream.queue.is_deleted())
        {
            // Drops the publisher (with its MetadataUpdate): refused below.
            self.check_deleted();
        }
        let Some(pb) = self.publishers.get(&pid) else {
            let ids: Vec<u64> = p.messages().map(|m| m.publishing_id).collect();
            self.out
                .push(|b| encode_publish_error(b, pid, code::PUBLISHER_DOES_NOT_EXIST, &ids));
            return;
        };
        let log = &pb.stream.log;
        let mut refused = Vec::new();
        let mut published = 0u64;
        for m in p.messages() {
            published += 1;
            let writer = pb.reference.as_deref().map(|r| (r, m.publishing_id));
            let entry = match m.entry {
                Entry::Simple(body) => store::Entry::Simple(body),
                // A sub-entry batch is stored whole as one entry, as osiris stores it
                // (clients decompress; the chunk is delivered as is), taking an offset per
                // record. An uncompressed one is checked first (Warren only: its records
                // must fill it exactly, so AMQP consumers can read them); a batch of no
                // records would take no offset. Either is refused whole.
                Entry::SubBatch {
                    compression,
                    count,
                    uncompressed_size,
                    data,
                } if count > 0 && (compression != 0 || sub_batch_is_whole(&data, count)) => {
                    store::Entry::SubBatch {
                        compression,
                        records: count,
                        uncompressed_len: uncompressed_size,
                        data,
                    }
                }
                Entry::SubBatch { .. } => {
                    refused.push(m.publishing_id);
                    continue;
                }
            };
            let ticket = log.append_entry(entry, writer).map_or(0, |a| a.ticket);
            // Ticket 0: a duplicate (or a deleted stream), confirmed at once as osiris
            // confirms what deduplication drops.
            self.unconfirmed.push_back((ticket, pid, m.publishing_id));
        }
        pb.stats.published.fetch_add(published, Ordering::Relaxed);
        if !refused.is_empty() {
            pb.stats
                .errored
                .fetch_add(refused.len() as u64, Ordering::Relaxed);
            self.out
                .push(|b| encode_publish_error(b, pid, code::PRECONDITION_FAILED, &refused));
        }
    }

    /// Confirms every publish whose ticket the store has synced: one PublishConfirm per
    /// publisher for the whole batch.
    fn release(&mut self, synced: u64) {
        if self.unconfirmed.front().is_none_or(|f| f.0 > synced) {
            return;
        }
        let mut by_publisher: Vec<(u8, Vec<u64>)> = Vec::new();
        while let Some(&(t, pid, id)) = self.unconfirmed.front() {
            if t > synced {
                break;
            }
            self.unconfirmed.pop_front();
            match by_publisher.iter_mut().find(|(p, _)| *p == pid) {
                Some((_, ids)) => ids.push(id),
                None => by_publisher.push((pid, vec![id])),
            }
        }
        for (pid, ids) in &by_publisher {
            if let Some(p) = self.publishers.get(pid) {
                p.stats
                    .confirmed
                    .fetch_add(ids.len() as u64, Ordering::Relaxed);
            }
        }
        self.out.push(|b| {
            for (pid, ids) in &by_publisher {
                encode_publish_confirm(b, *pid, ids);
            }
        });
    }

    fn subscribe(
        &mut self,
        cid: u32,
        id: u8,
        stream: Str,
        offset: OffsetSpec,
        credit: u16,
        properties: &[(Str, Str)],
    ) {
        let c = if self.subs.contains_key(&id) {
            code::SUBSCRIPTION_ID_ALREADY_EXISTS
        } else if !self.allowed(Perm::Read, &stream) {
            code::ACCESS_REFUSED
        } else {
            match self.lookup(&stream) {
                None => code::STREAM_DOES_NOT_EXIST,
                Some(s) => {
                    let property = |k: &str| properties.iter().find(|(n, _)| n == k).map(|p| &p.1);
                    // As the management API lists them.
                    let listed: Vec<(String, String)> = properties
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.to_string_lossy().into_owned(),
                                v.to_string_lossy().into_owned(),
                            )
                        })
                        .collect();
                    let sac = property("single-active-consumer").is_some_and(|v| v == "true");
                    match (sac, property("name")) {
                        // RabbitMQ: a single active consumer must have a name.
                        (true, None) => code::PRECONDITION_FAILED,
                        (true, Some(group)) => {
                            let super_stream = property("super-stream").cloned();
                            let group = group.clone();
                            self.join_group(
                                cid,
                                id,
                                stream,
                                s,
                                offset,
                                credit,
                                group,
                                super_stream,
                                listed,
                            );
                            return;
                        }
                        (false, _) => {
                            let sub = self.start_reading(
                                id,
                                &stream,
                                &s,
                                offset,
                                credit.into(),
                                Some(cid),
                                listed,
                            );
                            self.subs.insert(
                                id,
                                Subscription {
                                    sub: Some(sub),
                                    name: stream,
                                    stream: s,
                                    sac: None,
                                },
                            );
                            return;
                        }
                    }
                }
            }
        };
        self.code_only(key::SUBSCRIBE, cid, c);
    }

    /// A single active consumer's subscribe: answered OK, then registered with the
    /// vhost's coordinator; it reads nothing until the coordinator makes it active and
    /// the client has answered the ConsumerUpdate (which comes after the response, from
    /// the mailbox).
    #[allow(clippy::too_many_arguments)]
    fn join_group(
        &mut self,
        cid: u32,
        id: u8,
        stream: Str,
        s: Stream,
        offset: OffsetSpec,
        credit: u16,
        name: Str,
        super_stream: Option<Str>,
        properties: Vec<(String, String)>,
    ) {
        let partition_index = super_stream.map_or(-1, |ss| {
            super_stream::partition_index(&self.o.vhost, ss.as_bytes(), stream.as_bytes())
        });
        let group = GroupId {
            stream: stream.to_string_lossy().into_owned(),
            name: name.to_string_lossy().into_owned(),
        };
        self.code_only(key::SUBSCRIBE, cid, code::OK);
        let active = self
            .o
            .vhost
            .sac
            .register(&group, partition_index, self.id, id, &self.sac_tx);
        self.subs.insert(
            id,
            Subscription {
                sub: None,
                name: stream,
                stream: s,
                sac: Some(Sac {
                    group,
                    offset,
                    active,
                    credit: credit.into(),
                    properties,
                }),
            },
        );
    }

    /// Starts delivering stream `s` to subscription `id` from `offset`: the writer gets
    /// the subscription (with the subscribe response for `cid`, under the same lock, so
    /// that its first chunk never overtakes it) and a small task wakes the writer
    /// whenever the stream commits more.
    #[allow(clippy::too_many_arguments)]
    fn start_reading(
        &mut self,
        id: u8,
        name: &Str,
        s: &Stream,
        offset: OffsetSpec,
        credit: u32,
        cid: Option<u32>,
        properties: Vec<(String, String)>,
    ) -> Arc<Sub> {
        let spec = match offset {
            OffsetSpec::First => store::OffsetSpec::First,
            OffsetSpec::Last => store::OffsetSpec::Last,
            OffsetSpec::Next => store::OffsetSpec::Next,
            OffsetSpec::Offset(n) => store::OffsetSpec::Offset(n),
            OffsetSpec::Timestamp(t) => store::OffsetSpec::Timestamp(t),
        };
        let resolved = s.log.resolve(spec);
        // An offset past the end waits for it.
        let start = match offset {
            OffsetSpec::Offset(n) => n.max(resolved),
            _ => resolved,
        };
        let stats = Arc::new(StreamConsumer::new(
            id,
            name.to_string_lossy().into_owned(),
            properties,
            credit,
            s.log.clone(),
        ));
        stats.offset.store(start, Ordering::Relaxed);
        self.entry.stream.add_consumer(stats.clone());
        let sub = Arc::new(Sub {
            id,
            stream: name.clone(),
            reader: Mutex::new(s.log.reader(start)),
            stats,
            stop: self.stop.child_token(),
        });
        {
            let mut st = self.out.state.lock().unwrap();
            if let Some(correlation_id) = cid {
                ServerCommand::Response {
                    key: key::SUBSCRIBE,
                    correlation_id,
                    code: code::OK,
                }
                .encode(&mut st.buf);
            }
            st.subs.push(sub.clone());
        }
        self.out.wake.notify_one();
        let mut committed = s.log.committed();
        let (out, stop) = (self.out.clone(), sub.stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = committed.changed() => {
                        if r.is_err() {
                            return;
                        }
                        out.wake.notify_one();
                    }
                    _ = stop.cancelled() => return,
                }
            }
        });
        sub
    }

    /// Takes a subscription away from the writer; returns the credit it had left.
    fn stop_reading(&self, sub: &Arc<Sub>) -> u32 {
        sub.stop.cancel();
        self.out
            .state
            .lock()
            .unwrap()
            .subs
            .retain(|x| !Arc::ptr_eq(x, sub));
        self.entry.stream.remove_consumer(sub.id);
        sub.stats.credit.load(Ordering::Acquire)
    }

    fn unsubscribe(&mut self, id: u8) -> bool {
        let Some(s) = self.subs.remove(&id) else {
            return false;
        };
        if let Some(sub) = &s.sub {
            self.stop_reading(sub);
        }
        if let Some(sac) = s.sac {
            // A step-down not yet answered will never be: the next member goes ahead
            // (RabbitMQ's `maybe_unregister_consumer`).
            let stepping_down: Vec<u32> = self
                .requests
                .iter()
                .filter(|(_, p)| p.subscription == id && !p.active && p.stepping_down)
                .map(|(k, _)| *k)
                .collect();
            for k in stepping_down {
                self.requests.remove(&k);
                self.o.vhost.sac.activate(&sac.group);
            }
            self.o.vhost.sac.unregister(&sac.group, self.id, id);
        }
        true
    }

    /// What the coordinator decided for one of this connection's members: the client is
    /// told with a ConsumerUpdate; a member told to stop stops reading at once (its
    /// credit kept), one told to start waits for the client's answer.
    fn sac_update(&mut self, u: Update) {
        let member = self
            .subs
            .get_mut(&u.subscription)
            .filter(|s| s.sac.as_ref().is_some_and(|sac| sac.group == u.group));
        let Some(s) = member else {
            // Gone meanwhile: a step-down nobody will answer lets the next one go ahead.
            if !u.active && u.stepping_down {
                self.o.vhost.sac.activate(&u.group);
            }
            return;
        };
        let stopped = if u.active { None } else { s.sub.take() };
        if let Some(sac) = s.sac.as_mut() {
            sac.active = u.active;
        }
        if let Some(sub) = stopped {
            let left = self.stop_reading(&sub);
            if let Some(sac) = self
                .subs
                .get_mut(&u.subscription)
                .and_then(|s| s.sac.as_mut())
            {
                sac.credit = sac.credit.saturating_add(left);
            }
        }
        self.next_request = self.next_request.wrapping_add(1);
        let correlation_id = self.next_request;
        self.requests.insert(
            correlation_id,
            Pending {
                subscription: u.subscription,
                group: u.group,
                active: u.active,
                stepping_down: u.stepping_down,
                sent: Instant::now(),
            },
        );
        self.respond(ServerCommand::ConsumerUpdate {
            correlation_id,
            subscription_id: u.subscription,
            active: u.active,
        });
    }

    /// The client answered a ConsumerUpdate: an active member starts reading from the
    /// offset it gave (or its subscription's); a member that stepped down lets the
    /// coordinator activate the next one. The code is not checked (RabbitMQ only logs
    /// one that is not OK).
    fn consumer_update_response(&mut self, cid: u32, c: u16, offset: Option<OffsetSpec>) {
        let Some(p) = self.requests.remove(&cid) else {
            warn!(
                correlation_id = cid,
                "consumer update response to no request"
            );
            return;
        };
        if c != code::OK {
            info!(code = c, "consumer update response code is not OK");
        }
        let Some(s) = self.subs.get(&p.subscription) else {
            return;
        };
        let Some(sac) = s.sac.as_ref().filter(|sac| sac.group == p.group) else {
            return;
        };
        if sac.active {
            if s.sub.is_some() {
                return;
            }
            let (name, stream) = (s.name.clone(), s.stream.clone());
            let (start, credit) = (offset.unwrap_or(sac.offset), sac.credit);
            let properties = sac.properties.clone();
            let sub = self.start_reading(
                p.subscription,
                &name,
                &stream,
                start,
                credit,
                None,
                properties,
            );
            if let Some(s) = self.subs.get_mut(&p.subscription) {
                s.sub = Some(sub);
                if let Some(sac) = s.sac.as_mut() {
                    sac.credit = 0;
                }
            }
        } else if p.stepping_down {
            self.o.vhost.sac.activate(&p.group);
        }
    }

    /// CreateSuperStream (RabbitMQ 3.13): a correct name, then the permissions, then
    /// [`super_stream::create`].
    fn create_super_stream(
        &mut self,
        name: &Str,
        partitions: &[Str],
        binding_keys: &[Str],
        arguments: &[(Str, Str)],
    ) -> u16 {
        let Some(name) = super_stream::correct_name(name.as_bytes()) else {
            return code::PRECONDITION_FAILED;
        };
        let partitions: Vec<ShortStr> = partitions.iter().map(|p| ShortStr(p.0.clone())).collect();
        let keys: Vec<ShortStr> = binding_keys.iter().map(|k| ShortStr(k.0.clone())).collect();
        if !self.super_stream_management_permitted(&name, &partitions) {
            return code::ACCESS_REFUSED;
        }
        let vhost = self.o.vhost.clone();
        if let Err(e) = super_stream::validate(&vhost, &name, &partitions, &keys) {
            return super_stream_code(&e);
        }
        // Partitions are placed `balanced` unless told otherwise (RabbitMQ's
        // `default_super_stream_arguments`).
        let mut arguments = arguments.to_vec();
        if !arguments.iter().any(|(k, _)| k == "queue-leader-locator") {
            arguments.push((Str::from("queue-leader-locator"), Str::from("balanced")));
        }
        // RabbitMQ creates the streams one by one and answers a refused argument with
        // INTERNAL_ERROR after undoing them; nothing is created here in that case.
        let Some(queue_arguments) = streams::queue_arguments(&arguments) else {
            return code::INTERNAL_ERROR;
        };
        match super_stream::create(&vhost, &name, &partitions, &keys, &queue_arguments, self.id) {
            Ok(()) => code::OK,
            Err(e) => {
                warn!(super_stream = %name, error = %e, "cannot create super stream");
                super_stream_code(&e)
            }
        }
    }

    /// DeleteSuperStream (RabbitMQ's reader on main): configure on the exchange, the
    /// partitions it has now, the permissions on them, then the exchange and those
    /// streams go.
    fn delete_super_stream(&mut self, name: &Str) -> u16 {
        if !self.allowed_on(Perm::Configure, ResourceKind::Exchange, name.as_bytes()) {
            return code::ACCESS_REFUSED;
        }
        let vhost = self.o.vhost.clone();
        let Ok(partitions) = super_stream::partitions(&vhost, name.as_bytes()) else {
            return code::STREAM_DOES_NOT_EXIST;
        };
        let x = ShortStr(name.0.clone());
        if !self.super_stream_management_permitted(&x, &partitions) {
            return code::ACCESS_REFUSED;
        }
        super_stream::delete(&vhost, &x, &partitions);
        code::OK
    }

    /// RabbitMQ's `check_super_stream_management_permitted`: configure on the exchange
    /// and every partition, read on the exchange (the bindings' source), write on every
    /// partition (their destination).
    fn super_stream_management_permitted(&mut self, x: &ShortStr, partitions: &[ShortStr]) -> bool {
        let queues = |s: &mut Self, perm| {
            partitions
                .iter()
                .all(|p| s.allowed_on(perm, ResourceKind::Queue, p.as_bytes()))
        };
        self.allowed_on(Perm::Configure, ResourceKind::Exchange, x.as_bytes())
            && queues(self, Perm::Configure)
            && self.allowed_on(Perm::Read, ResourceKind::Exchange, x.as_bytes())
            && queues(self, Perm::Write)
    }

    fn metadata(&mut self, correlation_id: u32, names: Vec<Str>) {
        let brokers = vec![Broker {
            reference: 0,
            host: Str::from(self.ctx.advertised_host.as_str()),
            port: self.ctx.advertised_port.into(),
        }];
        let streams = names
            .into_iter()
            .map(|name| match self.lookup(&name) {
                Some(_) => StreamMetadata {
                    stream: name,
                    code: code::OK,
                    leader: 0,
                    replicas: Vec::new(),
                },
                None => StreamMetadata {
                    stream: name,
                    code: code::STREAM_DOES_NOT_EXIST,
                    leader: 0xffff,
                    replicas: Vec::new(),
                },
            })
            .collect();
        self.respond(ServerCommand::MetadataResponse {
            correlation_id,
            brokers,
            streams,
        });
    }

    /// Streams deleted under this connection (by anyone): a MetadataUpdate for each, and
    /// their publishers and subscriptions dropped, as RabbitMQ does.
    fn check_deleted(&mut self) {
        let mut gone: Vec<Str> = Vec::new();
        for p in self.publishers.values() {
            if p.stream.queue.is_deleted() && !gone.contains(&p.stream_name) {
                gone.push(p.stream_name.clone());
            }
        }
        for s in self.subs.values() {
            if s.stream.queue.is_deleted() && !gone.contains(&s.name) {
                gone.push(s.name.clone());
            }
        }
        if gone.is_empty() {
            return;
        }
        let entry = &self.entry;
        self.publishers.retain(|id, p| {
            let keep = !p.stream.queue.is_deleted();
            if !keep {
                entry.stream.remove_publisher(*id);
            }
            keep
        });
        let dead: Vec<u8> = self
            .subs
            .iter()
            .filter(|(_, s)| s.stream.queue.is_deleted())
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            self.unsubscribe(id);
        }
        self.out.push(|b| {
            for stream in gone {
                ServerCommand::MetadataUpdate {
                    code: code::STREAM_NOT_AVAILABLE,
                    stream,
                }
                .encode(b);
            }
        });
    }
}

/// Whether an uncompressed sub-entry batch's data is exactly `count` records, each a
/// 4-octet size (its top bit clear, as a simple entry's) and that many octets.
fn sub_batch_is_whole(data: &[u8], count: u16) -> bool {
    let mut rest = data;
    let mut n = 0u32;
    while !rest.is_empty() {
        let Some((head, tail)) = rest.split_first_chunk::<4>() else {
            return false;
        };
        let size = u32::from_be_bytes(*head);
        if size & 0x8000_0000 != 0 || size as usize > tail.len() {
            return false;
        }
        rest = &tail[size as usize..];
        n += 1;
    }
    n == u32::from(count)
}

/// ExchangeCommandVersions: what this server speaks (Publish 1 and 2; Deliver 1 only,
/// so that clients do not expect a committed chunk id; the super stream commands, as
/// RabbitMQ 3.13 lists them).
fn command_versions() -> Vec<CommandVersion> {
    let mut v: Vec<CommandVersion> = [
        key::DECLARE_PUBLISHER,
        key::PUBLISH,
        key::QUERY_PUBLISHER_SEQUENCE,
        key::DELETE_PUBLISHER,
        key::SUBSCRIBE,
        key::DELIVER,
        key::CREDIT,
        key::STORE_OFFSET,
        key::QUERY_OFFSET,
        key::UNSUBSCRIBE,
        key::CREATE,
        key::DELETE,
        key::METADATA,
        key::METADATA_UPDATE,
        key::PEER_PROPERTIES,
        key::SASL_HANDSHAKE,
        key::SASL_AUTHENTICATE,
        key::TUNE,
        key::OPEN,
        key::CLOSE,
        key::HEARTBEAT,
        key::EXCHANGE_COMMAND_VERSIONS,
        key::STREAM_STATS,
        key::CREATE_SUPER_STREAM,
        key::DELETE_SUPER_STREAM,
    ]
    .iter()
    .map(|&k| CommandVersion {
        key: k,
        min: 1,
        max: 1,
    })
    .collect();
    if let Some(p) = v.iter_mut().find(|c| c.key == key::PUBLISH) {
        p.max = 2;
    }
    v
}

/// The response code of a super stream operation's failure.
fn super_stream_code(e: &SuperStreamError) -> u16 {
    match e {
        SuperStreamError::NotFound(_) => code::STREAM_DOES_NOT_EXIST,
        SuperStreamError::Invalid(_) => code::PRECONDITION_FAILED,
        SuperStreamError::AlreadyExists(_) => code::STREAM_ALREADY_EXISTS,
        SuperStreamError::Internal(_) => code::INTERNAL_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::sub_batch_is_whole;

    #[test]
    fn sub_batches_must_be_whole() {
        let rec = |b: &[u8]| {
            let mut v = (b.len() as u32).to_be_bytes().to_vec();
            v.extend_from_slice(b);
            v
        };
        let two = [rec(b"ab"), rec(b"c")].concat();
        let cases: &[(&[u8], u16, bool)] = &[
            (&two, 2, true),
            (&two, 1, false),
            (&two, 3, false),
            (&two[..two.len() - 1], 2, false),
            (&[two.as_slice(), &[0, 0]].concat(), 2, false),
            (&[], 0, true),
            (&[0x80, 0, 0, 1, 0], 1, false),
        ];
        for (data, count, ok) in cases {
            assert_eq!(sub_batch_is_whole(data, *count), *ok, "{data:?} {count}");
        }
    }
}
