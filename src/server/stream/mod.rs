//! The RabbitMQ stream protocol listener (`stream.listen`, the rabbitmq_stream plugin's
//! port): plain TCP, one task per connection for reading and handling, one for writing.
//!
//! - `handshake`: peer properties, SASL, tune, open (before open, frames of 8192 octets).
//! - `session`: the open connection's reader: publishers, subscriptions, confirms,
//!   heartbeats, create / delete / metadata.
//! - `writer`: the only writer of the socket; chunks go out with sendfile(2).
//! - `streams`: streams as queues of type stream in the vhost.

mod handshake;
mod session;
mod streams;
mod writer;

use super::{ConnectionSlot, Shared};
use crate::config::MAX_HANDSHAKE_TIMEOUT_MS;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info};

/// What every stream connection shares.
pub(crate) struct Ctx {
    pub shared: Arc<Shared>,
    /// What metadata and open tell clients to connect to.
    pub advertised_host: String,
    pub advertised_port: u16,
}

impl Ctx {
    /// `stream.advertised_host` / `_port`, else the bound address (the host name when
    /// bound to every interface).
    pub(crate) fn new(shared: Arc<Shared>, bound: SocketAddr) -> Ctx {
        let cfg = &shared.config.stream;
        let advertised_host = if !cfg.advertised_host.is_empty() {
            cfg.advertised_host.clone()
        } else if bound.ip().is_unspecified() {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into())
        } else {
            bound.ip().to_string()
        };
        let advertised_port = match cfg.advertised_port {
            0 => bound.port(),
            p => p,
        };
        Ctx {
            shared,
            advertised_host,
            advertised_port,
        }
    }
}

/// Accepts stream connections, each in its own task (counted under
/// `amqp.max_connections` with the AMQP ones).
pub(crate) async fn accept_loop(listener: TcpListener, ctx: Arc<Ctx>, tracker: TaskTracker) {
    let mut backoff = Duration::from_millis(1);
    loop {
        tokio::select! {
            _ = ctx.shared.shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok((socket, peer)) => {
                    backoff = Duration::from_millis(1);
                    let slot = ConnectionSlot::take(&ctx.shared);
                    let id = ctx.shared.next_id();
                    tracker.spawn(serve(socket, peer, ctx.clone(), id, slot));
                }
                Err(e) => {
                    error!(error = %e, "stream listener: accept failed; raise the open-file limit if this repeats");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

async fn serve(socket: TcpStream, peer: SocketAddr, ctx: Arc<Ctx>, id: u64, _slot: ConnectionSlot) {
    let span = tracing::info_span!("stream_connection", id, %peer);
    async move {
        let _ = socket.set_nodelay(true);
        let (mut rd, mut wr) = socket.into_split();
        let mut buf = BytesMut::with_capacity(8192);
        let mut codec = crate::protocol::stream::FrameCodec::default();
        let timeout = Duration::from_millis(
            ctx.shared
                .config
                .amqp
                .handshake_timeout
                .min(MAX_HANDSHAKE_TIMEOUT_MS),
        );
        let handshake = handshake::negotiate(&ctx, &mut rd, &mut wr, &mut buf, &mut codec, peer);
        let opened = tokio::select! {
            r = tokio::time::timeout(timeout, handshake) => match r {
                Ok(Some(o)) => o,
                Ok(None) => return,
                Err(_) => {
                    info!("stream handshake not completed in time, closing the socket");
                    return;
                }
            },
            _ = ctx.shared.shutdown.cancelled() => return,
        };
        let out = Arc::new(writer::Out::default());
        let stop = CancellationToken::new();
        let mut writer = tokio::spawn(writer::run(wr, out.clone(), stop.clone()));
        session::Session::new(ctx, id, opened, out, stop.clone())
            .run(rd, buf)
            .await;
        // The writer flushes what is pending (a close of ours included), then ends; a
        // client that stopped reading does not keep it (and the socket) alive.
        if tokio::time::timeout(Duration::from_secs(5), &mut writer)
            .await
            .is_err()
        {
            debug!("stream writer did not finish in time, dropping the socket");
            writer.abort();
        }
        stop.cancel();
    }
    .instrument(span)
    .await
}
