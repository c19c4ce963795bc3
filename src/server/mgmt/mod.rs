//! The management HTTP API: RabbitMQ's management plugin's paths, methods, status codes
//! and JSON under `/api`, served by axum on the broker's tokio runtime (plain HTTP on
//! `mgmt.listen`, HTTPS on `mgmt.tls_listen`), and the web UI (`ui`) at `/`.
//!
//! One file per resource, each with its own `routes()`; handlers call the broker's
//! socket-free operations (`broker::admin`, `VHost::declare_queue`, ...) exactly as the
//! AMQP front end does, and errors become HTTP answers in one place (`error`). Statistics
//! are read from per-object atomic counters; a sampler task turns them into rates every
//! `mgmt.stats_interval`, so that the API costs the message path nothing.

mod access;
mod auth;
mod bindings;
mod conns;
mod definitions;
mod error;
mod exchanges;
mod health;
mod listing;
mod messages;
mod overview;
mod policies;
mod queues;
mod stream;
mod time;
mod tls;
mod ui;

use super::Shared;
use crate::broker::Broker;
use crate::config::Config;
use axum::Router;
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use error::ApiError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

/// What every handler reaches.
pub(crate) struct Mgmt {
    pub broker: Arc<Broker>,
    pub config: Config,
    pub shared: Arc<Shared>,
    pub started: Instant,
    /// This node's name, as `overview.node` and `nodes/{name}` show it.
    pub node: String,
    /// The listeners, as `overview.listeners` shows them.
    pub listeners: Vec<(String, SocketAddr)>,
}

/// A PUT's answer, as RabbitMQ's API gives it: 201 when it created the object, 204 when
/// it updated one.
pub(crate) fn put_status(created: bool) -> axum::http::StatusCode {
    if created {
        axum::http::StatusCode::CREATED
    } else {
        axum::http::StatusCode::NO_CONTENT
    }
}

/// The peer of an HTTP connection (plain or TLS), for the loopback rule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

/// The listeners bound for the API, before serving.
pub(crate) struct Bound {
    plain: Option<TcpListener>,
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    pub plain_addr: Option<SocketAddr>,
    pub tls_addr: Option<SocketAddr>,
}

/// Binds `mgmt.listen` and `mgmt.tls_listen` (errors name the key).
pub(crate) async fn bind(config: &Config) -> std::io::Result<Bound> {
    let invalid = |e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let plain = match config.mgmt.listen_addr().map_err(invalid)? {
        Some(addr) => Some(super::bind_listener("mgmt.listen", addr).await?),
        None => None,
    };
    let tls = match config.mgmt.tls_listen_addr().map_err(invalid)? {
        Some(addr) => {
            let acceptor = tls::acceptor(config)?;
            let l = super::bind_listener("mgmt.tls_listen", addr).await?;
            Some((l, acceptor))
        }
        None => None,
    };
    Ok(Bound {
        plain_addr: plain.as_ref().and_then(|l| l.local_addr().ok()),
        tls_addr: tls.as_ref().and_then(|(l, _)| l.local_addr().ok()),
        plain,
        tls,
    })
}

/// The API's routes.
fn router(m: Arc<Mgmt>) -> Router {
    Router::new()
        .merge(overview::routes())
        .merge(conns::routes())
        .merge(stream::routes())
        .merge(exchanges::routes())
        .merge(queues::routes())
        .merge(bindings::routes())
        .merge(access::routes())
        .merge(definitions::routes())
        .merge(health::routes())
        .merge(policies::routes())
        .merge(ui::routes())
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(m)
}

/// Serves the API on the bound listeners and starts the statistics sampler, until
/// `shutdown`.
pub(crate) fn serve(
    bound: Bound,
    shared: Arc<Shared>,
    amqp: Vec<(String, SocketAddr)>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) {
    let mut listeners = amqp;
    if let Some(a) = bound.plain_addr {
        listeners.push(("http".into(), a));
    }
    if let Some(a) = bound.tls_addr {
        listeners.push(("https".into(), a));
    }
    let m = Arc::new(Mgmt {
        broker: shared.broker.clone(),
        config: shared.config.clone(),
        shared: shared.clone(),
        started: Instant::now(),
        node: super::node_name(),
        listeners,
    });
    tracker.spawn(sample_loop(
        m.broker.clone(),
        Duration::from_millis(m.config.mgmt.stats_interval),
        shutdown.clone(),
    ));
    let app = router(m);
    if let Some(l) = bound.plain {
        if let Ok(addr) = l.local_addr() {
            info!(local_addr = %addr, "management API listening (HTTP)");
        }
        let app = app.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            let service = app.into_make_service_with_connect_info::<PeerAddr>();
            let _ = axum::serve(l, service)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
    }
    if let Some((l, acceptor)) = bound.tls {
        if let Ok(addr) = l.local_addr() {
            info!(local_addr = %addr, "management API listening (HTTPS)");
        }
        let listener = tls::TlsListener::spawn(l, acceptor, tracker, shutdown.clone());
        let stop = shutdown;
        tracker.spawn(async move {
            let service = app.into_make_service_with_connect_info::<PeerAddr>();
            let _ = axum::serve(listener, service)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
    }
}

/// Every `interval`, turns counters into rates: the broker's and each vhost's churn
/// (O(vhosts)), and the queues, exchanges, channels and connections that moved since the
/// last pass (`broker::stats::Activity`): idle objects cost nothing, nothing is done per
/// message.
async fn sample_loop(broker: Arc<Broker>, interval: Duration, shutdown: CancellationToken) {
    let mut last = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
        let seconds = last.elapsed().as_secs_f64();
        last = Instant::now();
        broker.connections.churn.sample(seconds);
        for v in broker.vhosts() {
            v.churn.sample(seconds);
        }
        broker.connections.activity.pass(seconds);
    }
}
