//! The Prometheus endpoint: RabbitMQ's rabbitmq_prometheus plugin's paths and output on
//! `prometheus.listen`, served by axum on the broker's tokio runtime.
//!
//! - `/metrics`: every family summed over objects (no per-object labels);
//! - `/metrics/per-object`: the same families per queue, channel and connection;
//! - `/metrics/detailed?family=...&vhost=...`: only the families asked for, per object,
//!   prefixed `rabbitmq_detailed_` (and `rabbitmq_cluster_`), for the vhosts asked for.
//!
//! A scrape reads the broker's counters (see [`collect`]); it is generated on a blocking
//! thread so that a large one (10 000 queues) never holds up a runtime worker.

mod collect;
mod text;

pub use collect::Filter;

use super::Shared;
use crate::broker::Broker;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use collect::Endpoint;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

/// What every scrape reaches.
pub(crate) struct Prom {
    pub broker: Arc<Broker>,
    pub shared: Arc<Shared>,
    pub started: Instant,
    /// `rabbitmq_identity_info`'s `rabbitmq_node`.
    pub node: String,
}

/// RabbitMQ's content type (the text format's version 0.0.4).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Binds `prometheus.listen` (`None` when it is empty: no endpoint).
pub(crate) async fn bind(
    config: &crate::config::Config,
) -> std::io::Result<Option<(TcpListener, SocketAddr)>> {
    let invalid = |e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let Some(addr) = config.prometheus.listen_addr().map_err(invalid)? else {
        return Ok(None);
    };
    let l = TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("prometheus.listen {addr}: cannot bind: {e}"),
        )
    })?;
    let local = l.local_addr()?;
    Ok(Some((l, local)))
}

/// Serves the endpoint on `listener` until `shutdown`.
pub(crate) fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) {
    let p = Arc::new(Prom {
        broker: shared.broker.clone(),
        shared,
        started: Instant::now(),
        node: super::node_name(),
    });
    let app = router(p);
    info!(local_addr = ?listener.local_addr().ok(), "Prometheus metrics listening (HTTP)");
    tracker.spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    });
}

fn router(p: Arc<Prom>) -> Router {
    Router::new()
        .route("/metrics", get(aggregated))
        .route("/metrics/{registry}", get(registry))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                [(header::ALLOW, "HEAD, GET, OPTIONS")],
            )
        })
        .with_state(p)
}

async fn aggregated(State(p): State<Arc<Prom>>) -> Response {
    scrape(p, Endpoint::Aggregated, Filter::default()).await
}

async fn registry(
    State(p): State<Arc<Prom>>,
    Path(registry): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    match registry.as_str() {
        "per-object" => scrape(p, Endpoint::PerObject, Filter::default()).await,
        "detailed" => match parse_filter(query.as_deref().unwrap_or("")) {
            Some(filter) => scrape(p, Endpoint::Detailed, filter).await,
            // RabbitMQ (cowboy) answers a query it cannot decode with an empty 400.
            None => StatusCode::BAD_REQUEST.into_response(),
        },
        _ => (StatusCode::NOT_FOUND, "Unknown Registry").into_response(),
    }
}

async fn scrape(p: Arc<Prom>, endpoint: Endpoint, filter: Filter) -> Response {
    let body = tokio::task::spawn_blocking(move || collect::scrape(&p, endpoint, &filter)).await;
    match body {
        Ok(body) => {
            let mut r = body.into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            r
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `/metrics/detailed`'s query: every `family=` and `vhost=` (repeatable, in any order;
/// other keys are ignored, as RabbitMQ does). `None` when the query is not valid
/// percent-encoding (or not UTF-8 once decoded).
pub fn parse_filter(query: &str) -> Option<Filter> {
    let mut f = Filter::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k)?, decode(v)?);
        match k.as_str() {
            "family" => f.families.push(v),
            "vhost" => f.vhosts.get_or_insert_with(Vec::new).push(v),
            _ => {}
        }
    }
    Some(f)
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XY` a byte.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn filter_cases() {
        let f = |fams: &[&str], vhosts: Option<&[&str]>| Filter {
            families: fams.iter().map(|s| s.to_string()).collect(),
            vhosts: vhosts.map(|v| v.iter().map(|s| s.to_string()).collect()),
        };
        let cases: &[(&str, Option<Filter>)] = &[
            ("", Some(f(&[], None))),
            (
                "family=queue_coarse_metrics",
                Some(f(&["queue_coarse_metrics"], None)),
            ),
            (
                "family=a&family=b&vhost=%2F",
                Some(f(&["a", "b"], Some(&["/"]))),
            ),
            (
                "vhost=my+vhost&vhost=x&other=1",
                Some(f(&[], Some(&["my vhost", "x"]))),
            ),
            ("vhost", Some(f(&[], Some(&[""])))),
            ("family=queue_coarse_metrics&vhost=%ZZ", None),
            ("vhost=%2", None),
            ("vhost=%FF", None),
        ];
        for (q, want) in cases {
            assert_eq!(&parse_filter(q), want, "query {q:?}");
        }
    }

    proptest! {
        #[test]
        fn any_query_parses_or_is_refused(q in ".*") {
            let _ = parse_filter(&q);
        }

        #[test]
        fn encoded_values_round_trip(v in "[^\\x00]*") {
            let enc: String = v.bytes().map(|b| format!("%{b:02X}")).collect();
            let f = parse_filter(&format!("vhost={enc}")).unwrap();
            prop_assert_eq!(f.vhosts, Some(vec![v]));
        }
    }
}
