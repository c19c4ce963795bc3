//! HTTPS for the API: the certificate of `mgmt.tls_cert_file`/`mgmt.tls_key_file` (or the
//! AMQP listener's, `tls.*`), and a listener that does each TLS handshake in its own task
//! so that a slow client never holds up the others.

use super::PeerAddr;
use crate::config::Config;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A client has this long to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn acceptor(config: &Config) -> std::io::Result<TlsAcceptor> {
    let mut tls = config.tls.clone();
    if !config.mgmt.tls_cert_file.as_os_str().is_empty() {
        tls.cert_file = config.mgmt.tls_cert_file.clone();
    }
    if !config.mgmt.tls_key_file.as_os_str().is_empty() {
        tls.key_file = config.mgmt.tls_key_file.clone();
    }
    // Browsers and HTTP tools authenticate with basic auth, not client certificates.
    tls.verify_peer = false;
    tls.fail_if_no_peer_cert = false;
    crate::server::tls::acceptor(&tls)
}

/// Established TLS connections, handed over by the accepting task.
pub(crate) struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn spawn(
        l: TcpListener,
        acceptor: TlsAcceptor,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> TlsListener {
        let (tx, rx) = mpsc::channel(64);
        let local = l.local_addr().unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
        let t = tracker.clone();
        tracker.spawn(async move {
            loop {
                let (socket, peer) = tokio::select! {
                    r = l.accept() => match r {
                        Ok(x) => x,
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    _ = shutdown.cancelled() => return,
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                t.spawn(async move {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await
                    {
                        let _ = tx.send((stream, peer)).await;
                    }
                });
            }
        });
        TlsListener { rx, local }
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accepting task ended (shutdown): wait for the server to stop.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}
