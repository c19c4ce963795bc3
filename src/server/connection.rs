//! One client connection: the handshake, then the reader loop that decodes every complete
//! frame in the buffer, handles it inline (routing and enqueueing included), and rings the
//! outboxes it wrote to once per batch.
//!
//! The reader task owns the connection's and its channels' private state; what queues and
//! other connections reach lives in `ChannelLink`s (see `broker::consumer`).

use super::channel::Channel;
use super::ending::Ending;
use super::read_size::ReadSize;
use super::tls::TlsPeer;
use super::{ConnectionSlot, Shared};
use crate::broker::auth::{Access, Usage, User};
use crate::broker::connections::{ConnectionInfo, Registration};
use crate::broker::deadletter::dead_letter_all;
use crate::broker::effects::Effects;
use crate::broker::outbox::Outbox;
use crate::broker::queue::Queue;
use crate::broker::vhost::VHost;
use crate::config::MAX_HANDSHAKE_TIMEOUT_MS;
use crate::protocol::frame::{CodecError, erlang_binary};
use crate::protocol::*;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Decoder;
use tracing::{Instrument, debug, info, warn};

/// How long a client may take to answer our connection.close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a peer that broke the framing during the handshake waits before its socket is
/// closed: RabbitMQ's SILENT_CLOSE_DELAY, some relief from connection storms.
const SILENT_CLOSE_DELAY: Duration = Duration::from_secs(3);

pub(crate) struct Connection {
    pub id: u64,
    pub shared: Arc<Shared>,
    pub vhost: Arc<VHost>,
    pub user: Arc<User>,
    /// Permission checks with their cache (the reader task owns it: no lock).
    pub access: Access,
    /// In the broker's registry while open; closing it from outside (vhost or user
    /// deleted) ends this connection with 320.
    presence: Presence,
    pub outbox: Arc<Outbox>,
    pub channels: Vec<Option<Box<Channel>>>,
    pub open_channels: u16,
    pub channel_max: u16,
    pub fx: Effects,
    /// The exchange of the last publish: consecutive publishes to one exchange (the
    /// common case) skip the vhost's name lookup (a hash and a map probe per message).
    /// Stale once the exchange [`is_removed`](crate::broker::exchange::Exchange::is_removed).
    pub last_exchange: Option<Arc<crate::broker::exchange::Exchange>>,
    /// Reused per publish: the queues a message routes to.
    pub route_scratch: Vec<Arc<Queue>>,
    /// Channels with confirms to send at the end of this batch.
    pub confirm_dirty: Vec<u16>,
    /// Client announced consumer_cancel_notify.
    pub cancel_notify: bool,
    /// Client announced connection.blocked.
    pub blocked_notify: bool,
    /// A publish arrived while the memory alarm was raised: stop reading after this batch.
    pub must_block: bool,
    /// Some channel has confirms, or the connection replies, waiting for the store to sync.
    pub store_waiting: bool,
    /// Replies held until the store has synced a ticket (tx.commit-ok).
    pub deferred: Vec<(u64, u16, Method)>,
    /// Highest store ticket of the publishes handled since the last tx.commit began.
    pub tx_ticket: u64,
    /// Why the connection is ending: the first cause seen, logged once at the end.
    ending: Option<Ending>,
}

/// A connection's place in the broker's counts: the registry, its vhost's connection count
/// and its user's connection and channel counts. [`release`](Presence::release) (or drop)
/// gives them back; the connection releases as soon as it is closed at the AMQP level,
/// before its close-ok goes out, so a client that has seen close-ok may count on its
/// place under a connection limit being free.
pub(crate) struct Presence {
    registration: Option<Registration>,
    pub entry: Arc<crate::broker::connections::ConnectionEntry>,
    vhost: Arc<VHost>,
    usage: Arc<Usage>,
}

impl Presence {
    pub(crate) fn new(
        shared: &Shared,
        id: u64,
        user: &str,
        vhost: &Arc<VHost>,
        info: ConnectionInfo,
    ) -> Presence {
        use std::sync::atomic::Ordering::Relaxed;
        let usage = shared.broker.auth.usage(user);
        usage.connections.fetch_add(1, Relaxed);
        vhost.connections.fetch_add(1, Relaxed);
        let registration = shared
            .broker
            .connections
            .register(id, user, &vhost.name, info);
        Presence {
            entry: registration.entry.clone(),
            registration: Some(registration),
            vhost: vhost.clone(),
            usage,
        }
    }

    /// Gives the counts back (once).
    pub(crate) fn release(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        // The counts first: once the registry no longer lists the connection, its
        // place under the limits is free.
        if let Some(registration) = self.registration.take() {
            self.usage.connections.fetch_sub(1, Relaxed);
            self.vhost.connections.fetch_sub(1, Relaxed);
            drop(registration);
        }
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.release();
    }
}

/// How the reader loop ends.
enum End {
    /// The peer closed, the socket failed, or a close handshake completed.
    Done,
    /// We answered the client's connection.close: like RabbitMQ, leave the socket for the
    /// client to close (some clients treat an early EOF as an error).
    AwaitClientEof,
}

/// One deadline from accept to connection.open, as RabbitMQ's handshake_timeout (the TLS
/// handshake included): a socket that never sends the header, or stops anywhere in the
/// handshake, is closed.
fn handshake_deadline(shared: &Shared) -> tokio::time::Instant {
    let timeout = Duration::from_millis(
        shared
            .config
            .amqp
            .handshake_timeout
            .min(MAX_HANDSHAKE_TIMEOUT_MS),
    );
    tokio::time::Instant::now() + timeout
}

fn timed_out<E>(_: E) -> std::io::Error {
    info!("handshake not completed in time, closing the socket");
    std::io::Error::from(std::io::ErrorKind::TimedOut)
}

/// Serves a plain TCP connection. The reader and writer tasks own the socket's halves
/// directly: the same code as for TLS, monomorphised, so plain TCP pays no indirection and
/// keeps `writev`.
///
/// `slot` is this connection's place under `amqp.max_connections`: released when the
/// connection ends, before its socket is closed once it was open, so that a client that
/// has seen the close may count on the place being free.
pub(crate) async fn serve(
    socket: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    id: u64,
    slot: ConnectionSlot,
) {
    let span = tracing::info_span!("connection", id, %peer);
    async move {
        let deadline = handshake_deadline(&shared);
        let _ = socket.set_nodelay(true);
        let local = socket.local_addr().unwrap_or(peer);
        let (rd, wr) = socket.into_split();
        let ends = (peer, local);
        match handshake_and_run(rd, wr, ends, shared, id, slot, None, deadline).await {
            Ok(()) => debug!("connection closed"),
            Err(e) => debug!(error = %e, "connection ended"),
        }
    }
    .instrument(span)
    .await
}

/// Serves an `amqps` connection: the TLS handshake (within the handshake deadline, in
/// this connection's own task), then AMQP over the two halves of the TLS stream.
pub(crate) async fn serve_tls(
    socket: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    id: u64,
    slot: ConnectionSlot,
    acceptor: TlsAcceptor,
) {
    let span = tracing::info_span!("connection", id, %peer, tls = true);
    async move {
        let deadline = handshake_deadline(&shared);
        let _ = socket.set_nodelay(true);
        let local = socket.local_addr().unwrap_or(peer);
        let handshake = tokio::time::timeout_at(deadline, acceptor.accept(socket));
        let stream = tokio::select! {
            r = handshake => match r {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    info!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    info!("TLS handshake timed out");
                    return;
                }
            },
            // A graceful stop does not wait for a client that is slow to do TLS.
            _ = shared.shutdown.cancelled() => return,
        };
        let tls = TlsPeer::of(stream.get_ref().1);
        debug!(protocol = ?tls.protocol, subject = ?tls.subject_dn, "TLS established");
        let (rd, wr) = tokio::io::split(stream);
        let ends = (peer, local);
        match handshake_and_run(rd, wr, ends, shared, id, slot, Some(tls), deadline).await {
            Ok(()) => debug!("connection closed"),
            Err(e) => debug!(error = %e, "connection ended"),
        }
    }
    .instrument(span)
    .await
}

#[allow(clippy::too_many_arguments)]
async fn handshake_and_run<R, W>(
    mut rd: R,
    mut wr: W,
    (peer, local): (SocketAddr, SocketAddr),
    shared: Arc<Shared>,
    id: u64,
    slot: ConnectionSlot,
    tls: Option<TlsPeer>,
    deadline: tokio::time::Instant,
) -> Result<(), CodecError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut header = [0u8; 8];
    tokio::time::timeout_at(deadline, rd.read_exact(&mut header))
        .await
        .map_err(timed_out)??;
    if check_protocol_header(&header) == HeaderCheck::Refused {
        debug!(?header, "refused protocol header");
        tokio::time::timeout_at(deadline, async {
            wr.write_all(&PROTOCOL_HEADER).await?;
            wr.flush().await
        })
        .await
        .map_err(timed_out)??;
        return Ok(());
    }
    // Until tune-ok settles frame_max, frames may not exceed FRAME_MIN_SIZE, as in
    // RabbitMQ: an unauthenticated peer cannot make the broker buffer more than that.
    let mut codec = FrameCodec::new(FRAME_MIN_SIZE);
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = BytesMut::new();
    // EXTERNAL only where it could work: a TLS client that presented a certificate.
    let external = tls.as_ref().is_some_and(TlsPeer::has_cert);
    encode_method(
        &mut out,
        0,
        &super::handshake::start_method(external, &shared.cluster_name()).into(),
    );
    tokio::time::timeout_at(deadline, async {
        wr.write_all(&out).await?;
        wr.flush().await
    })
    .await
    .map_err(timed_out)??;
    out.clear();

    let hs = tokio::time::timeout_at(
        deadline,
        super::handshake::negotiate(&mut rd, &mut wr, &mut buf, &mut codec, peer, &shared, tls),
    )
    .await
    .map_err(timed_out)?;
    let hs = match hs {
        Err(CodecError::Amqp(e)) => {
            silent_close(e, &shared).await;
            return Ok(());
        }
        hs => hs?,
    };
    let Some(mut hs) = hs else {
        return Ok(());
    };
    let client_name = hs
        .client_properties
        .get("connection_name")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    match &hs.tls_peer {
        None => info!(user = %hs.user.name, vhost = %hs.vhost.name, client_name, "connection open"),
        Some(t) => info!(
            user = %hs.user.name,
            vhost = %hs.vhost.name,
            client_name,
            tls = t.protocol.as_deref().unwrap_or("TLS"),
            peer_cn = t.subject_cn.as_deref().unwrap_or(""),
            "connection open"
        ),
    }
    let heartbeat = Arc::new(AtomicU32::new(u32::from(hs.heartbeat)));
    let outbox = Arc::new(Outbox::new(hs.frame_max));
    let info = ConnectionInfo {
        peer,
        local,
        protocol: "AMQP 0-9-1",
        auth_mechanism: std::mem::take(&mut hs.mechanism),
        client_properties: std::mem::take(&mut hs.client_properties),
        frame_max: hs.frame_max,
        channel_max: hs.channel_max,
        timeout: hs.heartbeat,
        tls: hs
            .tls_peer
            .as_ref()
            .map(|t| t.protocol.clone().unwrap_or_default()),
        peer_cert_subject: hs.tls_peer.as_ref().and_then(|t| t.subject_dn.clone()),
        connected_at: std::time::SystemTime::now(),
    };
    let presence = Presence::new(&shared, id, &hs.user.name, &hs.vhost, info);
    let writer = tokio::spawn(super::writer::run(
        wr,
        outbox.clone(),
        heartbeat.clone(),
        presence.entry.clone(),
    ));
    let mut conn = Connection {
        id,
        shared: shared.clone(),
        vhost: hs.vhost,
        user: hs.user,
        access: hs.access,
        presence,
        outbox: outbox.clone(),
        channels: Vec::new(),
        open_channels: 0,
        channel_max: hs.channel_max,
        fx: Effects::default(),
        last_exchange: None,
        route_scratch: Vec::new(),
        confirm_dirty: Vec::new(),
        cancel_notify: hs.cancel_notify,
        blocked_notify: hs.blocked_notify,
        must_block: false,
        store_waiting: false,
        deferred: Vec::new(),
        tx_ticket: 0,
        ending: None,
    };
    codec.set_frame_max(hs.frame_max);
    // Decode a publish whose header and body arrived with it in one go (the usual case).
    codec.set_whole_content(true);
    let result = conn.run(&mut rd, &mut buf, &mut codec, hs.heartbeat).await;
    conn.cleanup();
    let ending = conn.ending.take().unwrap_or_else(|| match &result {
        Ok(()) => Ending::Vanished,
        Err(e) => Ending::Io {
            error: e.to_string(),
        },
    });
    ending.log(&conn.user.name, &conn.vhost.name, &client_name);
    // Before the writer closes the socket: see above.
    drop(slot);
    outbox.close();
    let _ = writer.await;
    result
}

/// A frame error before the connection is open (a frame over the pre-tune limit, a bad
/// frame-end...): as RabbitMQ, no connection.close; the socket is closed after
/// [`SILENT_CLOSE_DELAY`], during which nothing more is read from it.
async fn silent_close(e: AmqpError, shared: &Shared) {
    warn!(code = e.code, text = %e.text, "frame error during the handshake, closing the socket");
    tokio::select! {
        _ = tokio::time::sleep(SILENT_CLOSE_DELAY) => {}
        _ = shared.shutdown.cancelled() => {}
    }
}

impl Connection {
    async fn run<R: AsyncRead + Unpin>(
        &mut self,
        rd: &mut R,
        buf: &mut BytesMut,
        codec: &mut FrameCodec,
        heartbeat: u16,
    ) -> Result<(), CodecError> {
        // A silent peer is dropped after two missed heartbeat intervals.
        let read_timeout = (heartbeat > 0).then(|| Duration::from_secs(u64::from(heartbeat) * 2));
        let shutdown = self.shared.shutdown.clone();
        let entry = self.presence.entry.clone();
        let mut synced = self.shared.store.synced();
        let mut closing = false;
        let mut read_size = ReadSize::default();
        loop {
            // Decode and handle every complete frame in the buffer.
            loop {
                let frame = match codec.decode(buf) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(CodecError::Amqp(e)) => {
                        self.flush_batch();
                        if closing {
                            // The stream cannot be parsed any further: discard what the
                            // client still sends (its close-ok among it) until it closes,
                            // as RabbitMQ does, rather than resetting the connection under
                            // it.
                            buf.clear();
                            let mut sink = [0u8; 512];
                            let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                                while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
                            })
                            .await;
                            return Ok(());
                        }
                        self.close_connection(e);
                        closing = true;
                        break;
                    }
                    Err(CodecError::Io(e)) => return Err(e.into()),
                };
                match self.handle_frame(frame, closing) {
                    Ok(None) => {}
                    Ok(Some(End::Done)) => {
                        self.flush_batch();
                        return Ok(());
                    }
                    Ok(Some(End::AwaitClientEof)) => {
                        self.cleanup();
                        self.flush_batch();
                        let mut sink = [0u8; 512];
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                            while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
                        })
                        .await;
                        return Ok(());
                    }
                    Err(e) => {
                        self.close_connection(e);
                        closing = true;
                    }
                }
                if closing {
                    // Ignore the rest of this buffer until close-ok arrives.
                    continue;
                }
            }
            self.flush_batch();
            // Queues that this batch took past their paging threshold while consumers
            // drain them: read on once those make room (bounded, see `broker::flow`).
            while let Some(q) = self.fx.held.pop() {
                if !closing {
                    q.room().await;
                }
            }
            if self.must_block && !closing {
                self.block_until_alarm_clears().await;
            }
            // The store's writer is behind: read no more until it catches up (a writer
            // slower than the network must not grow memory).
            while self.shared.store.backlogged() && !closing {
                if synced.changed().await.is_err() {
                    break;
                }
                self.release_synced_confirms(*synced.borrow_and_update());
            }
            let deadline = if closing {
                Some(CLOSE_TIMEOUT)
            } else {
                read_timeout
            };
            read_size.prepare(buf);
            let read = async {
                match deadline {
                    Some(d) => tokio::time::timeout(d, rd.read_buf(buf)).await,
                    None => Ok(rd.read_buf(buf).await),
                }
            };
            tokio::select! {
                r = read => match r {
                    Ok(Ok(0)) => return Ok(()),
                    Ok(Ok(n)) => {
                        read_size.read(n);
                        self.presence.entry.traffic.received(n);
                    }
                    Ok(Err(e)) => return Err(e.into()),
                    Err(_) => {
                        Ending::first(&mut self.ending, Ending::Heartbeat { timeout: heartbeat });
                        return Ok(());
                    }
                },
                _ = synced.changed(), if self.store_waiting => {
                    self.release_synced_confirms(*synced.borrow_and_update());
                }
                _ = shutdown.cancelled(), if !closing => {
                    self.close_connection(AmqpError::connection(
                        reply_code::CONNECTION_FORCED,
                        "broker forced connection closure with reason 'shutdown'",
                    ));
                    closing = true;
                }
                _ = entry.nudged(), if !closing => self.close_timed_out_channels(),
                reason = entry.closed(), if !closing => {
                    self.close_connection(AmqpError::connection(
                        reply_code::CONNECTION_FORCED,
                        reason,
                    ));
                    closing = true;
                }
            }
        }
    }

    /// Stops reading from a publisher while a resource alarm is raised, telling it with
    /// connection.blocked / unblocked when it asked to know.
    async fn block_until_alarm_clears(&mut self) {
        self.must_block = false;
        let mut alarm = self.shared.alarm.clone();
        let Some(reason) = *alarm.borrow() else {
            return;
        };
        if self.blocked_notify {
            self.send(
                0,
                ConnectionBlocked {
                    reason: reason.into(),
                }
                .into(),
            );
            self.outbox.ring();
        }
        self.presence
            .entry
            .blocked
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let shutdown = self.shared.shutdown.clone();
        let mut synced = self.shared.store.synced();
        // Confirms already promised still go out while blocked.
        loop {
            tokio::select! {
                _ = alarm.wait_for(|a| a.is_none()) => break,
                _ = shutdown.cancelled() => break,
                _ = synced.changed(), if self.store_waiting => {
                    self.release_synced_confirms(*synced.borrow_and_update());
                }
            }
        }
        self.presence
            .entry
            .blocked
            .store(false, std::sync::atomic::Ordering::Relaxed);
        if self.blocked_notify {
            self.send(0, ConnectionUnblocked {}.into());
            self.outbox.ring();
        }
    }

    /// Sends the confirms of publishes that the store has now made durable.
    fn release_synced_confirms(&mut self, synced: u64) {
        let mut still = false;
        for (_, ch, m) in self.deferred.extract_if(.., |(t, _, _)| *t <= synced) {
            self.outbox.push(|buf, _| encode_method(buf, ch, &m));
        }
        still |= !self.deferred.is_empty();
        for ch in self.channels.iter_mut().flatten() {
            ch.release_durable_confirms(synced, &self.outbox);
            still |= ch.confirms.as_ref().is_some_and(|c| !c.waiting.is_empty());
        }
        self.store_waiting = still;
        self.outbox.ring();
    }

    /// Ends a batch: sends pending confirms, rings every outbox written to.
    fn flush_batch(&mut self) {
        for id in std::mem::take(&mut self.confirm_dirty) {
            if let Some(Some(ch)) = self.channels.get_mut(id as usize) {
                ch.flush_confirms(&self.outbox);
            }
        }
        dead_letter_all(&self.vhost, &mut self.fx);
        self.outbox.ring();
        self.fx.bells.ring();
    }

    fn handle_frame(&mut self, frame: Frame, closing: bool) -> Result<Option<End>, AmqpError> {
        let channel = frame.channel();
        if closing {
            // After our connection.close, only close-ok (or the peer's own close) matters.
            return Ok(match frame {
                Frame::Method {
                    method: Method::ConnectionCloseOk(_),
                    ..
                } => Some(End::Done),
                Frame::Method {
                    method: Method::ConnectionClose(_),
                    ..
                } => {
                    self.send(0, ConnectionCloseOk {}.into());
                    Some(End::Done)
                }
                _ => None,
            });
        }
        if let Frame::Heartbeat = frame {
            return Ok(None);
        }
        if channel == 0 {
            // A content method on channel 0 fails as its method frame alone would.
            let frame = match frame {
                Frame::Content { content, .. } => Frame::Method {
                    channel,
                    method: content.method,
                },
                f => f,
            };
            // A content header or body: RabbitMQ's UNEXPECTED_FRAME with the octets.
            let (kind, octets) = match frame {
                Frame::Method { method, .. } => return self.handle_connection_method(method),
                Frame::Header {
                    class_id,
                    body_size,
                    properties,
                    ..
                } => {
                    let mut o = Vec::with_capacity(12 + properties.as_bytes().len());
                    o.extend_from_slice(&class_id.to_be_bytes());
                    o.extend_from_slice(&[0, 0]); // weight
                    o.extend_from_slice(&body_size.to_be_bytes());
                    o.extend_from_slice(properties.as_bytes());
                    (2, o)
                }
                Frame::Body { payload, .. } => (3, payload.to_vec()),
                _ => {
                    return Err(AmqpError::unexpected_frame(
                        "expected method frame, got non method frame instead",
                    ));
                }
            };
            return Err(AmqpError::unexpected_frame(format!(
                "type {kind}, all octets = {}",
                erlang_binary(&octets)
            )));
        }
        self.handle_channel_frame(channel, frame).map(|()| None)
    }

    fn handle_connection_method(&mut self, method: Method) -> Result<Option<End>, AmqpError> {
        match method {
            Method::ConnectionClose(c) => {
                Ending::first(
                    &mut self.ending,
                    Ending::Client {
                        code: c.reply_code,
                        text: c.reply_text.to_string(),
                    },
                );
                // Free this connection's place under the limits before close-ok can reach
                // the client.
                self.presence.release();
                self.send(0, ConnectionCloseOk {}.into());
                Ok(Some(End::AwaitClientEof))
            }
            Method::ConnectionUpdateSecret(_) => {
                self.send(0, ConnectionUpdateSecretOk {}.into());
                Ok(None)
            }
            // close-ok without our close, blocked/unblocked (server-to-client only)
            // and everything else: RabbitMQ's "unexpected method" hard error.
            m => Err(AmqpError::new(
                reply_code::CHANNEL_ERROR,
                "unexpected method in connection state running",
            )
            .caused_by(&m)),
        }
    }

    fn handle_channel_frame(&mut self, id: u16, frame: Frame) -> Result<(), AmqpError> {
        let slot = id as usize;
        let exists = matches!(self.channels.get(slot), Some(Some(_)));
        if !exists {
            return match frame {
                Frame::Method {
                    method: Method::ChannelOpen(_),
                    ..
                } => self.open_channel(id),
                Frame::Method { method, .. }
                | Frame::Content {
                    content: Content { method, .. },
                    ..
                } => Err(
                    AmqpError::new(reply_code::CHANNEL_ERROR, "expected 'channel.open'")
                        .caused_by(&method),
                ),
                _ => Err(AmqpError::new(
                    reply_code::CHANNEL_ERROR,
                    "expected 'channel.open'",
                )),
            };
        }
        let ch = self.channels[slot].as_mut().unwrap();
        if ch.closing {
            // We closed this channel: drop everything until the client's close-ok.
            match frame {
                Frame::Method {
                    method: Method::ChannelCloseOk(_),
                    ..
                } => self.drop_channel(id),
                // The client's own close crossed ours: answer it, and keep waiting for
                // the close-ok to ours (the spec's handshake, and RabbitMQ's), which
                // would otherwise arrive on a dead channel and close the connection.
                Frame::Method {
                    method: Method::ChannelClose(_),
                    ..
                } => self.send(id, ChannelCloseOk {}.into()),
                // RabbitMQ checks channel.open before the closing state.
                Frame::Method {
                    method: m @ Method::ChannelOpen(_),
                    ..
                } => {
                    return Err(AmqpError::new(
                        reply_code::CHANNEL_ERROR,
                        "second 'channel.open' seen",
                    )
                    .caused_by(&m));
                }
                _ => {}
            }
            return Ok(());
        }
        let span = tracing::debug_span!("channel", id);
        let _enter = span.enter();
        let result = match ch.assembler.push(frame) {
            Ok(None) => return Ok(()),
            Ok(Some(content::Assembled::Method(m))) => {
                let r = self.handle_method(id, &m);
                r.map_err(|e| e.caused_by(&m))
            }
            Ok(Some(content::Assembled::Content(c))) => self.handle_content(id, c),
            Err(e) => Err(e),
        };
        match result {
            Err(e) if !e.is_hard() => {
                warn!(code = e.code, text = %e.text, "closing channel");
                self.close_channel(id, e);
                Ok(())
            }
            r => r,
        }
    }

    fn open_channel(&mut self, id: u16) -> Result<(), AmqpError> {
        if self.open_channels >= self.channel_max {
            return Err(AmqpError::new(
                reply_code::NOT_ALLOWED,
                format!(
                    "number of channels opened ({}) has reached the negotiated channel_max ({})",
                    self.open_channels, self.channel_max
                ),
            ));
        }
        let usage = &self.presence.usage;
        let max = self.user.max_channels;
        if max.reached(usage.channels.load(std::sync::atomic::Ordering::Relaxed)) {
            return Err(AmqpError::new(
                reply_code::NOT_ALLOWED,
                format!(
                    "number of channels opened for user '{}' has reached the maximum allowed user limit of ({})",
                    self.user.name,
                    max.0.unwrap_or(0)
                ),
            ));
        }
        usage
            .channels
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slot = id as usize;
        if self.channels.len() <= slot {
            self.channels.resize_with(slot + 1, || None);
        }
        let channel = Channel::new(
            id,
            self.id,
            self.outbox.clone(),
            self.cancel_notify,
            self.shared.config.amqp.max_message_size,
            self.shared.config.amqp.consumer_timeout,
            &self.shared.broker.connections,
        );
        self.presence.entry.add_channel(channel.link.clone());
        self.shared.broker.connections.churn.channel_created.incr();
        self.channels[slot] = Some(Box::new(channel));
        self.open_channels += 1;
        self.send(id, ChannelOpenOk {}.into());
        Ok(())
    }

    /// Releases a channel's consumers and requeues its unacked deliveries.
    fn release_channel(&mut self, id: u16) {
        if let Some(Some(ch)) = self.channels.get_mut(id as usize) {
            ch.release(&self.vhost, &mut self.fx);
        }
    }

    fn drop_channel(&mut self, id: u16) {
        self.release_channel(id);
        if let Some(slot) = self.channels.get_mut(id as usize)
            && slot.take().is_some()
        {
            self.forget_channel(id);
            self.open_channels -= 1;
            self.presence
                .usage
                .channels
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Soft error: channel.close to the client; the channel waits for close-ok.
    fn close_channel(&mut self, id: u16, e: AmqpError) {
        self.release_channel(id);
        if let Some(Some(ch)) = self.channels.get_mut(id as usize) {
            ch.closing = true;
        }
        self.send(id, e.channel_close());
    }

    /// Closes the channels the consumer-timeout sweeper flagged, with RabbitMQ's 406; their
    /// unacknowledged deliveries go back to their queues.
    fn close_timed_out_channels(&mut self) {
        for id in 0..self.channels.len() as u16 {
            let Some(Some(ch)) = self.channels.get(id as usize) else {
                continue;
            };
            let timeout = ch
                .link
                .timed_out
                .swap(0, std::sync::atomic::Ordering::Relaxed);
            if timeout == 0 || ch.closing {
                continue;
            }
            warn!(
                channel = id,
                timeout,
                "a delivery on this channel was not acknowledged in time: closing the \
                 channel, its unacknowledged messages go back to their queues (raise \
                 amqp.consumer_timeout or the queue's x-consumer-timeout if the consumer \
                 needs longer)"
            );
            self.close_channel(
                id,
                AmqpError::channel(
                    reply_code::PRECONDITION_FAILED,
                    format!(
                        "delivery acknowledgement on channel {id} timed out. Timeout value \
                         used: {timeout} ms. This timeout value can be configured, see \
                         consumers doc guide to learn more"
                    ),
                ),
            );
        }
        self.flush_batch();
    }

    /// Hard error (or shutdown): connection.close to the client.
    fn close_connection(&mut self, e: AmqpError) {
        Ending::first(&mut self.ending, Ending::of_close(&e));
        for id in 0..self.channels.len() as u16 {
            self.release_channel(id);
        }
        self.send(0, e.connection_close());
    }

    /// Everything the connection holds goes when it ends: channels (requeueing unacked
    /// deliveries, cancelling consumers) and its exclusive queues.
    fn cleanup(&mut self) {
        for id in 0..self.channels.len() as u16 {
            self.release_channel(id);
            self.forget_channel(id);
        }
        self.channels.clear();
        self.presence.usage.channels.fetch_sub(
            u64::from(self.open_channels),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.open_channels = 0;
        self.presence.release();
        for q in self.vhost.exclusive_queues_of(self.id) {
            self.vhost.remove_queue(&q);
        }
        dead_letter_all(&self.vhost, &mut self.fx);
        self.fx.bells.ring();
    }

    /// The management API stops listing a closed channel; its statistics stay in the
    /// broker's totals.
    pub(crate) fn forget_channel(&self, id: u16) {
        if let Some(link) = self.presence.entry.remove_channel(id) {
            self.shared.broker.connections.retire(&link);
        }
    }

    /// Appends a method frame to this connection's outbox (rung at the end of the batch).
    pub fn send(&self, channel: u16, method: Method) {
        self.outbox
            .push(|buf, _| encode_method(buf, channel, &method));
    }

    pub fn channel(&mut self, id: u16) -> &mut Channel {
        self.channels[id as usize].as_mut().unwrap()
    }
}
