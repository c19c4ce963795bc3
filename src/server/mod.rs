//! The AMQP server: listener, connections (a reader task and a writer task each), channels
//! and the handlers of each AMQP class (`exchange`, `queue`, `basic`, `tx`/`confirm`).

mod alarm;
mod basic;
mod channel;
mod connection;
mod ending;
mod exchange;
mod handshake;
mod mgmt;
pub mod prometheus;
mod queue;
mod stream;
mod tls;
mod writer;

use crate::broker::{Broker, Seed, definitions_json};
use crate::config::Config;
use crate::protocol::frame::CodecError;
use crate::protocol::{Frame, FrameCodec};
use crate::store::Store;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

/// What every connection shares.
pub(crate) struct Shared {
    pub config: Config,
    pub broker: Arc<Broker>,
    pub shutdown: CancellationToken,
    /// The resource alarm raised (memory or disk), if any.
    pub alarm: tokio::sync::watch::Receiver<alarm::Alarm>,
    pub store: Arc<Store>,
    ids: AtomicU64,
    /// Client connections whose task is running, handshakes included: what
    /// `amqp.max_connections` bounds. Only the accept loop adds; [`ConnectionSlot`]
    /// takes away.
    connections: AtomicUsize,
}

impl Shared {
    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// The cluster's name, as connection.start and the management API give it: the
    /// `cluster_name` global parameter, else the node's name (as RabbitMQ).
    pub fn cluster_name(&self) -> String {
        self.broker.cluster_name().unwrap_or_else(node_name)
    }
}

/// `warren@<hostname>`, as RabbitMQ's `rabbit@<hostname>`.
pub(crate) fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("warren@{host}")
}

/// One counted client connection. Dropping it (when the connection's task ends, however it
/// ends, a panic included) gives its place back under `amqp.max_connections`.
pub(crate) struct ConnectionSlot(Arc<Shared>);

impl ConnectionSlot {
    pub(crate) fn take(shared: &Arc<Shared>) -> Self {
        shared.connections.fetch_add(1, Ordering::AcqRel);
        ConnectionSlot(shared.clone())
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A running broker.
pub struct ServerHandle {
    pub local_addr: SocketAddr,
    /// The broker's socket-free operations (administration: users, vhosts, permissions).
    pub broker: Arc<Broker>,
    /// The `amqps` listener's address, when `tls.listen` is set.
    pub tls_addr: Option<SocketAddr>,
    /// The management API's HTTP listener, when `mgmt.listen` is set.
    pub mgmt_addr: Option<SocketAddr>,
    /// The management API's HTTPS listener, when `mgmt.tls_listen` is set.
    pub mgmt_tls_addr: Option<SocketAddr>,
    /// The Prometheus endpoint's listener, when `prometheus.listen` is set.
    pub prometheus_addr: Option<SocketAddr>,
    /// The stream protocol listener, when `stream.listen` is set.
    pub stream_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    store: Arc<Store>,
}

impl ServerHandle {
    /// Graceful shutdown: stop accepting, send connection.close 320 CONNECTION_FORCED to
    /// every client, and wait for the connections to end.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.store.close();
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Binds the listener that config key `key` names, with an error that says what to do:
/// which key (and environment variable) moves it, and why binding can fail.
pub(crate) async fn bind_listener(key: &str, addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        let env = format!("WARREN_{}", key.to_uppercase().replace('.', "__"));
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "another process (another broker?) listens there: stop it, or set {key} \
                 (or {env}) to another address"
            ),
            std::io::ErrorKind::PermissionDenied => format!(
                "ports below 1024 need privileges (CAP_NET_BIND_SERVICE): use a higher port \
                 in {key} (or {env})"
            ),
            std::io::ErrorKind::AddrNotAvailable => format!(
                "no interface of this machine has that address: set {key} (or {env}) to one \
                 of its addresses, or 0.0.0.0"
            ),
            _ => format!("check {key} (or {env})"),
        };
        std::io::Error::new(e.kind(), format!("{key} {addr}: cannot bind: {e}; {hint}"))
    })
}

/// Binds `config.amqp.listen` (port 0 picks a free port), and `config.tls.listen` when set,
/// and serves AMQP in the background.
pub async fn start(config: Config) -> std::io::Result<ServerHandle> {
    let tls_listen = config.tls.listen_addr().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("tls.listen: {e}"))
    })?;
    // Certificate problems are reported before anything is bound or opened.
    let tls_acceptor = match tls_listen {
        Some(_) => Some(tls::acceptor(&config.tls)?),
        None => None,
    };
    let watermark = config
        .memory
        .high_watermark_bytes(alarm::total_ram())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let invalid = |e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let disk_limit = config.storage.disk_free_limit_bytes().map_err(invalid)?;
    let paging = config.memory.paging_threshold_bytes().map_err(invalid)?;
    let listener = bind_listener("amqp.listen", config.amqp.listen).await?;
    let local_addr = listener.local_addr()?;
    let tls_listener = match tls_listen {
        Some(addr) => Some(bind_listener("tls.listen", addr).await?),
        None => None,
    };
    let tls_addr = match &tls_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let mgmt_bound = mgmt::bind(&config).await?;
    let (mgmt_addr, mgmt_tls_addr) = (mgmt_bound.plain_addr, mgmt_bound.tls_addr);
    let prometheus_bound = prometheus::bind(&config).await?;
    let prometheus_addr = prometheus_bound.as_ref().map(|(_, a)| *a);
    let stream_listener = match config.stream.listen_addr().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("stream.listen: {e}"),
        )
    })? {
        Some(addr) => Some(bind_listener("stream.listen", addr).await?),
        None => None,
    };
    let stream_addr = match &stream_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    // Read before the storage is opened: a missing file stops start-up at once.
    let import = match config.definitions.import_file.as_str() {
        "" => None,
        path => Some((
            path.to_string(),
            std::fs::read_to_string(path).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot read the definitions file {path}: {e}"),
                )
            })?,
        )),
    };
    let (store, mut recovery) = Store::open(&config.storage.dir, config.storage.sync, paging)
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot open the storage directory {}: {e}",
                    config.storage.dir.display()
                ),
            )
        })?;
    let seed = Seed {
        user: config.auth.default_user.clone(),
        password: config.auth.default_pass.clone(),
        vhost: config.auth.default_vhost.clone(),
    };
    // As RabbitMQ: with definitions to import, the default user and vhost are not created.
    let seeded = recovery.definitions.seeded;
    let broker = Arc::new(Broker::new(
        import.is_none().then_some(&seed),
        store.clone(),
        &mut recovery,
    ));
    if let Some((path, text)) = import {
        if let Err(e) = definitions_json::import(&broker, &text) {
            drop(broker);
            store.close();
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("cannot import the definitions file {path}: {e}"),
            ));
        }
        if !seeded {
            broker.mark_seeded();
        }
    }
    // Sampled once now so that the alarm is right from the first connection on.
    let dir = config.storage.dir.clone();
    let (alarm_tx, alarm) = tokio::sync::watch::channel(alarm::sample(watermark, &dir, disk_limit));
    let broker_handle = broker.clone();
    let shared = Arc::new(Shared {
        broker,
        config,
        shutdown: CancellationToken::new(),
        alarm,
        store: store.clone(),
        ids: AtomicU64::new(1),
        connections: AtomicUsize::new(0),
    });
    let tracker = TaskTracker::new();
    tracker.spawn(alarm::run(
        watermark,
        dir,
        disk_limit,
        alarm_tx,
        shared.shutdown.clone(),
    ));
    tracker.spawn(
        shared
            .broker
            .delayed
            .clone()
            .run(Arc::downgrade(&shared.broker), shared.shutdown.clone()),
    );
    // Discards recovered from the log go to their targets before any client connects.
    shared.broker.dead_letters.pass();
    tracker.spawn(shared.broker.dead_letters.clone().run(
        std::time::Duration::from_millis(shared.config.amqp.dead_letter_retry_interval),
        shared.shutdown.clone(),
    ));
    tracker.spawn(sweep_consumer_timeouts(
        shared.broker.clone(),
        shared.shutdown.clone(),
    ));
    let token = shared.shutdown.clone();
    if let (Some(l), Some(acceptor), Some(addr)) = (tls_listener, tls_acceptor, tls_addr) {
        tracker.spawn(accept_loop(
            l,
            shared.clone(),
            tracker.clone(),
            Some(acceptor),
        ));
        info!(local_addr = %addr, "listening for AMQP 0-9-1 over TLS");
    }
    let mut amqp_listeners = vec![("amqp".to_string(), local_addr)];
    if let Some(a) = tls_addr {
        amqp_listeners.push(("amqp/ssl".to_string(), a));
    }
    mgmt::serve(
        mgmt_bound,
        shared.clone(),
        amqp_listeners,
        &tracker,
        token.clone(),
    );
    if let Some((l, _)) = prometheus_bound {
        prometheus::serve(l, shared.clone(), &tracker, token.clone());
    }
    if let (Some(l), Some(addr)) = (stream_listener, stream_addr) {
        let ctx = Arc::new(stream::Ctx::new(shared.clone(), addr));
        info!(local_addr = %addr, advertised_host = %ctx.advertised_host, advertised_port = ctx.advertised_port, "listening for the stream protocol");
        tracker.spawn(stream::accept_loop(l, ctx, tracker.clone()));
    }
    tracker.spawn(accept_loop(listener, shared, tracker.clone(), None));
    info!(%local_addr, "listening for AMQP 0-9-1");
    Ok(ServerHandle {
        local_addr,
        broker: broker_handle,
        tls_addr,
        mgmt_addr,
        mgmt_tls_addr,
        prometheus_addr,
        stream_addr,
        shutdown: token,
        tracker,
        store,
    })
}

/// The one timer behind every consumer timeout (see `broker::ack_timeout`): a sweep a
/// tick, whatever the number of deliveries in flight.
async fn sweep_consumer_timeouts(broker: Arc<Broker>, stop: CancellationToken) {
    let period = std::time::Duration::from_millis(crate::broker::ack_timeout::TICK_MS);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                crate::broker::ack_timeout::sweep(&broker.connections);
            }
            _ = stop.cancelled() => return,
        }
    }
}

/// Accepts connections and gives each its own task; with `tls`, that task does the TLS
/// handshake first, so a slow or silent TLS client never holds up the loop.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tracker: TaskTracker,
    tls: Option<TlsAcceptor>,
) {
    let mut backoff = std::time::Duration::from_millis(1);
    let max = shared.config.amqp.max_connections as usize;
    // Whether the last socket accepted was refused: the limit is logged once per episode.
    let mut refusing = false;
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok((socket, peer)) => {
                    backoff = std::time::Duration::from_millis(1);
                    // The count RabbitMQ's connection_max bounds. Past the limit a new
                    // socket is closed at once, before any read or write: it costs no
                    // task, no buffer and no handshake timer, and the client fails fast.
                    // (RabbitMQ 3.10's ranch listener instead stops accepting, leaving
                    // new sockets in the listen backlog until a place frees.)
                    if max != 0 && shared.connections.load(Ordering::Acquire) >= max {
                        if !refusing {
                            warn!(max, "amqp.max_connections reached: closing new connections");
                            refusing = true;
                        }
                        debug!(%peer, "connection refused: amqp.max_connections reached");
                        drop(socket);
                        continue;
                    }
                    refusing = false;
                    let slot = ConnectionSlot::take(&shared);
                    let id = shared.next_id();
                    match &tls {
                        None => tracker.spawn(connection::serve(socket, peer, shared.clone(), id, slot)),
                        Some(acceptor) => tracker.spawn(connection::serve_tls(
                            socket,
                            peer,
                            shared.clone(),
                            id,
                            slot,
                            acceptor.clone(),
                        )),
                    };
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    error!(error = %e, "accept failed; raise the open-file limit if this repeats");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(1));
                }
            }
        }
    }
}

/// Reads until one whole frame is decoded (handshake use; the main loop batches).
pub(crate) async fn connection_read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    codec: &mut FrameCodec,
) -> Result<Frame, CodecError> {
    use tokio_util::codec::Decoder;
    loop {
        if let Some(f) = codec.decode(buf)? {
            return Ok(f);
        }
        if rd.read_buf(buf).await? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
}
