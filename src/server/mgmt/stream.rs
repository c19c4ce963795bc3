//! The rabbitmq_stream_management plugin's endpoints: stream-protocol connections, their
//! publishers and consumers (`/api/stream/...`), read from the connection registry where
//! the stream listener keeps them. Field by field as RabbitMQ 3.10 answers; monitoring
//! users see everyone's, others their own. DELETE on a connection closes it the way
//! deleting its user or vhost does (RabbitMQ closes the socket without a Close frame).

use super::Mgmt;
use super::auth::Caller;
use super::conns::{close_entry, connection_json, visible};
use super::error::{ApiError, ApiResult};
use super::listing::{Params, list};
use crate::broker::connections::ConnectionEntry;
use crate::broker::stream_clients::{StreamConsumer, StreamPublisher};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

pub(super) fn routes() -> Router<Arc<Mgmt>> {
    Router::new()
        .route("/api/stream/connections", get(connections))
        .route("/api/stream/connections/{vhost}", get(vhost_connections))
        .route(
            "/api/stream/connections/{vhost}/{name}",
            get(connection).delete(close_connection),
        )
        .route(
            "/api/stream/connections/{vhost}/{name}/publishers",
            get(connection_publishers),
        )
        .route(
            "/api/stream/connections/{vhost}/{name}/consumers",
            get(connection_consumers),
        )
        .route("/api/stream/publishers", get(publishers))
        .route("/api/stream/publishers/{vhost}", get(vhost_publishers))
        .route(
            "/api/stream/publishers/{vhost}/{stream}",
            get(stream_publishers),
        )
        .route("/api/stream/consumers", get(consumers))
        .route("/api/stream/consumers/{vhost}", get(vhost_consumers))
}

/// The stream connections the caller may see, optionally of one vhost.
fn streams_visible(m: &Mgmt, caller: &Caller, vhost: Option<&str>) -> Vec<Arc<ConnectionEntry>> {
    visible(m, caller)
        .into_iter()
        .filter(|c| c.info.is_stream() && vhost.is_none_or(|v| v == c.vhost))
        .collect()
}

/// The stream connection `/api/stream/connections/{vhost}/{name}` names: 404 when there
/// is none in that vhost (or it is not a stream connection), 401 when it is someone
/// else's and the caller may not see it.
fn find(m: &Mgmt, caller: &Caller, vhost: &str, name: &str) -> ApiResult<Arc<ConnectionEntry>> {
    let c = m
        .broker
        .connections
        .all()
        .into_iter()
        .find(|c| c.info.is_stream() && c.vhost == vhost && c.info.name() == name)
        .ok_or_else(ApiError::not_found)?;
    if !(caller.is_monitor() || c.user == caller.name()) {
        return Err(ApiError::not_authorised(
            "User not authorised to access object",
        ));
    }
    Ok(c)
}

/// `connection_details` of a publisher or consumer.
fn details(m: &Mgmt, c: &ConnectionEntry) -> Value {
    json!({
        "name": c.info.name(),
        "node": m.node,
        "peer_host": c.info.peer.ip().to_string(),
        "peer_port": c.info.peer.port(),
        "user": c.user,
    })
}

fn publisher_json(m: &Mgmt, c: &ConnectionEntry, p: &StreamPublisher) -> Value {
    json!({
        "confirmed": p.confirmed.load(Relaxed),
        "connection_details": details(m, c),
        "errored": p.errored.load(Relaxed),
        "published": p.published.load(Relaxed),
        "publisher_id": p.id,
        "queue": {"name": p.stream, "vhost": c.vhost},
        "reference": p.reference,
    })
}

fn consumer_json(m: &Mgmt, c: &ConnectionEntry, k: &StreamConsumer) -> Value {
    let properties: Map<String, Value> = k
        .properties
        .iter()
        .map(|(a, b)| (a.clone(), json!(b)))
        .collect();
    json!({
        "connection_details": details(m, c),
        "consumed": k.consumed.load(Relaxed),
        "credits": k.credit.load(Relaxed),
        "offset": k.offset.load(Relaxed),
        "offset_lag": k.offset_lag(),
        "properties": properties,
        "queue": {"name": k.stream, "vhost": c.vhost},
        "subscription_id": k.id,
    })
}

fn all_publishers(m: &Mgmt, conns: &[Arc<ConnectionEntry>], stream: Option<&str>) -> Vec<Value> {
    conns
        .iter()
        .flat_map(|c| {
            c.stream
                .publishers()
                .iter()
                .filter(|p| stream.is_none_or(|s| s == p.stream))
                .map(|p| publisher_json(m, c, p))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn all_consumers(m: &Mgmt, conns: &[Arc<ConnectionEntry>]) -> Vec<Value> {
    conns
        .iter()
        .flat_map(|c| {
            c.stream
                .consumers()
                .iter()
                .map(|k| consumer_json(m, c, k))
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn connections(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    let items = streams_visible(&m, &caller, None)
        .iter()
        .map(|c| connection_json(&m, c))
        .collect();
    list(items, &p)
}

async fn vhost_connections(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    caller.read_vhost(&m, &vhost)?;
    let items = streams_visible(&m, &caller, Some(&vhost))
        .iter()
        .map(|c| connection_json(&m, c))
        .collect();
    list(items, &p)
}

/// One connection: as listed, except that RabbitMQ 3.10 answers the unset TLS fields
/// with "" here (null in lists).
async fn connection(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let c = find(&m, &caller, &vhost, &name)?;
    let mut v = connection_json(&m, &c);
    if let Value::Object(o) = &mut v {
        for (k, f) in o.iter_mut() {
            if f.is_null() && (k.starts_with("ssl_") || k.starts_with("peer_cert_")) {
                *f = json!("");
            }
        }
    }
    Ok(Json(v))
}

async fn close_connection(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let c = find(&m, &caller, &vhost, &name)?;
    close_entry(&caller, &c, &headers)
}

async fn connection_publishers(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    let c = find(&m, &caller, &vhost, &name)?;
    list(all_publishers(&m, &[c], None), &p)
}

async fn connection_consumers(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    let c = find(&m, &caller, &vhost, &name)?;
    list(all_consumers(&m, &[c]), &p)
}

async fn publishers(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    let conns = streams_visible(&m, &caller, None);
    list(all_publishers(&m, &conns, None), &p)
}

async fn vhost_publishers(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    caller.read_vhost(&m, &vhost)?;
    let conns = streams_visible(&m, &caller, Some(&vhost));
    list(all_publishers(&m, &conns, None), &p)
}

/// A stream's publishers: 404 when the vhost or the queue does not exist, as RabbitMQ.
async fn stream_publishers(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, stream)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    caller.read_vhost(&m, &vhost)?;
    let exists = m
        .broker
        .vhost(&vhost)
        .and_then(|v| v.queue(stream.as_bytes()))
        .is_some();
    if !exists {
        return Err(ApiError::not_found());
    }
    let conns = streams_visible(&m, &caller, Some(&vhost));
    list(all_publishers(&m, &conns, Some(&stream)), &p)
}

async fn consumers(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    let conns = streams_visible(&m, &caller, None);
    list(all_consumers(&m, &conns), &p)
}

async fn vhost_consumers(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    caller.read_vhost(&m, &vhost)?;
    let conns = streams_visible(&m, &caller, Some(&vhost));
    list(all_consumers(&m, &conns), &p)
}
