//! The RabbitMQ stream protocol listeners (`stream.listen`, the rabbitmq_stream plugin's
//! port, and `stream.tls_listen`, its TLS port): one task per connection for reading and
//! handling, one for writing. Over plain TCP chunks go out with sendfile(2); over TLS
//! they are read and encrypted (the copy encryption makes anyway).
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

use super::tls::TlsPeer;
use super::{ConnectionSlot, Shared};
use crate::config::MAX_HANDSHAKE_TIMEOUT_MS;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info};

/// What every stream connection of one listener shares.
pub(crate) struct Ctx {
    pub shared: Arc<Shared>,
    /// What metadata and open tell clients to connect to: on the TLS listener, the TLS
    /// port (as RabbitMQ's `advertised_tls_port`).
    pub advertised_host: String,
    pub advertised_port: u16,
    /// The TLS listener's acceptor (None: plain TCP).
    pub tls: Option<TlsAcceptor>,
}

impl Ctx {
    /// `stream.advertised_host` / `_port`, else the bound address (the host name when
    /// bound to every interface).
    pub(crate) fn new(shared: Arc<Shared>, bound: SocketAddr) -> Ctx {
        Self::for_listener(shared, bound, None)
    }

    /// The TLS listener's: `stream.advertised_tls_port`, else its bound port.
    pub(crate) fn new_tls(shared: Arc<Shared>, bound: SocketAddr, tls: TlsAcceptor) -> Ctx {
        Self::for_listener(shared, bound, Some(tls))
    }

    fn for_listener(shared: Arc<Shared>, bound: SocketAddr, tls: Option<TlsAcceptor>) -> Ctx {
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
        let configured = if tls.is_some() {
            cfg.advertised_tls_port
        } else {
            cfg.advertised_port
        };
        let advertised_port = match configured {
            0 => bound.port(),
            p => p,
        };
        Ctx {
            shared,
            advertised_host,
            advertised_port,
            tls,
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
    let tls = ctx.tls.is_some();
    let span = tracing::info_span!("stream_connection", id, %peer, tls);
    async move {
        let _ = socket.set_nodelay(true);
        let local = socket.local_addr().unwrap_or(peer);
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(
                ctx.shared
                    .config
                    .amqp
                    .handshake_timeout
                    .min(MAX_HANDSHAKE_TIMEOUT_MS),
            );
        match ctx.tls.clone() {
            None => {
                let (rd, wr) = socket.into_split();
                run(rd, wr, (peer, local), None, ctx, id, deadline).await
            }
            Some(acceptor) => {
                let handshake = tokio::time::timeout_at(deadline, acceptor.accept(socket));
                let stream = tokio::select! {
                    r = handshake => match r {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            info!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            info!("TLS handshake timed out");
                            return;
                        }
                    },
                    _ = ctx.shared.shutdown.cancelled() => return,
                };
                let peer_info = TlsPeer::of(stream.get_ref().1);
                let (rd, wr) = tokio::io::split(stream);
                run(rd, wr, (peer, local), Some(peer_info), ctx, id, deadline).await
            }
        }
    }
    .instrument(span)
    .await
}

/// The stream protocol over a transport's two halves: the handshake (within the deadline
/// that started at accept, the TLS handshake included), then the reader here and the
/// writer in its own task.
async fn run<R, W>(
    mut rd: R,
    mut wr: W,
    ends: (SocketAddr, SocketAddr),
    tls: Option<TlsPeer>,
    ctx: Arc<Ctx>,
    id: u64,
    deadline: tokio::time::Instant,
) where
    R: AsyncRead + Unpin + Send,
    W: writer::ChunkSink + AsyncWrite + Unpin + Send + 'static,
{
    let mut buf = BytesMut::with_capacity(8192);
    let mut codec = crate::protocol::stream::FrameCodec::default();
    let handshake =
        handshake::negotiate(&ctx, &mut rd, &mut wr, &mut buf, &mut codec, ends, tls, id);
    let opened = tokio::select! {
        r = tokio::time::timeout_at(deadline, handshake) => match r {
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
    let entry = opened.presence.entry.clone();
    let mut writer = tokio::spawn(writer::run(wr, out.clone(), stop.clone(), entry));
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
