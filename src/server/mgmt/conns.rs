//! `connections`, `channels` and `consumers`: what is connected now. Monitoring users see
//! everyone's; others their own. DELETE on a connection closes it with 320
//! CONNECTION_FORCED and the `X-Reason` header's text, as RabbitMQ. Stream-protocol
//! connections are listed here too (as RabbitMQ 3.10 with rabbitmq_stream lists them),
//! with the stream plugin's fields.

use super::Mgmt;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::listing::{Params, list, list_lazy};
use crate::broker::connections::ConnectionEntry;
use crate::broker::consumer::ChannelLink;
use crate::broker::definitions_json::{field_value_to_json, table_to_json};
use crate::broker::stats::CHANNEL;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

pub(super) fn routes() -> Router<Arc<Mgmt>> {
    Router::new()
        .route("/api/connections", get(connections))
        .route(
            "/api/connections/{name}",
            get(connection).delete(close_connection),
        )
        .route("/api/connections/{name}/channels", get(connection_channels))
        .route(
            "/api/connections/username/{user}",
            get(user_connections).delete(close_user_connections),
        )
        .route("/api/vhosts/{vhost}/connections", get(vhost_connections))
        .route("/api/channels", get(channels))
        .route("/api/channels/{name}", get(channel))
        .route("/api/vhosts/{vhost}/channels", get(vhost_channels))
        .route("/api/consumers", get(consumers))
        .route("/api/consumers/{vhost}", get(vhost_consumers))
}

/// The connections the caller may see, in the order they opened.
pub(super) fn visible(m: &Mgmt, caller: &Caller) -> Vec<Arc<ConnectionEntry>> {
    m.broker
        .connections
        .all()
        .into_iter()
        .filter(|c| caller.is_monitor() || c.user == caller.name())
        .collect()
}

pub(super) fn connection_json(m: &Mgmt, c: &ConnectionEntry) -> Value {
    if c.info.is_stream() {
        return stream_connection_json(m, c);
    }
    let i = &c.info;
    let connected_at = i
        .connected_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut o = Map::new();
    let props = match table_to_json(&i.client_properties) {
        Value::Object(p) => Value::Object(p),
        _ => json!({}),
    };
    let mut put = |k: &str, v: Value| {
        o.insert(k.to_string(), v);
    };
    put("name", json!(i.name()));
    put("node", json!(m.node));
    put("type", json!("network"));
    put("state", json!(connection_state(m, c)));
    put("protocol", json!(i.protocol));
    put("auth_mechanism", json!(i.auth_mechanism));
    put("user", json!(c.user));
    put("user_who_performed_action", json!(c.user));
    put("vhost", json!(c.vhost));
    put("host", json!(i.local.ip().to_string()));
    put("port", json!(i.local.port()));
    put("peer_host", json!(i.peer.ip().to_string()));
    put("peer_port", json!(i.peer.port()));
    put("ssl", json!(i.tls.is_some()));
    put("ssl_protocol", json!(i.tls));
    put("ssl_cipher", Value::Null);
    put("ssl_hash", Value::Null);
    put("ssl_key_exchange", Value::Null);
    put("peer_cert_subject", json!(i.peer_cert_subject));
    put("peer_cert_issuer", Value::Null);
    put("peer_cert_validity", Value::Null);
    put("channels", json!(c.channels().len()));
    put("channel_max", json!(i.channel_max));
    put("frame_max", json!(i.frame_max));
    put("timeout", json!(i.timeout));
    put("connected_at", json!(connected_at));
    put("client_properties", props);
    put("send_pend", json!(0));
    c.traffic.json(&mut o);
    if let Some(name) = i.client_properties.get("connection_name") {
        o.insert("user_provided_name".into(), field_value_to_json(name));
    }
    Value::Object(o)
}

/// A stream-protocol connection, with exactly the fields RabbitMQ 3.10's stream plugin
/// gives (no state, channels or traffic).
fn stream_connection_json(m: &Mgmt, c: &ConnectionEntry) -> Value {
    let i = &c.info;
    let connected_at = i
        .connected_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let props = match table_to_json(&i.client_properties) {
        Value::Object(p) => Value::Object(p),
        _ => json!({}),
    };
    let mut v = json!({
        "auth_mechanism": i.auth_mechanism,
        "channel_max": i.channel_max,
        "client_properties": props,
        "connected_at": connected_at,
        "frame_max": i.frame_max,
        "host": i.local.ip().to_string(),
        "name": i.name(),
        "node": m.node,
        "peer_cert_issuer": Value::Null,
        "peer_cert_subject": i.peer_cert_subject,
        "peer_cert_validity": Value::Null,
        "peer_host": i.peer.ip().to_string(),
        "peer_port": i.peer.port(),
        "port": i.local.port(),
        "protocol": i.protocol,
        "ssl": i.tls.is_some(),
        "ssl_cipher": Value::Null,
        "ssl_hash": Value::Null,
        "ssl_key_exchange": Value::Null,
        "ssl_protocol": i.tls,
        "timeout": i.timeout,
        "user": c.user,
        "user_who_performed_action": c.user,
        "vhost": c.vhost,
    });
    if let Some(name) = i.client_properties.get("connection_name") {
        v["user_provided_name"] = field_value_to_json(name);
    }
    v
}

/// As RabbitMQ: `blocked` when a resource alarm stopped the connection while it
/// published, `blocking` when an alarm is raised and it has not published since (it will
/// be blocked when it does), else `running`.
fn connection_state(m: &Mgmt, c: &ConnectionEntry) -> &'static str {
    if c.blocked.load(Relaxed) {
        "blocked"
    } else if m.shared.alarm.borrow().is_some() {
        "blocking"
    } else {
        "running"
    }
}

fn channel_name(c: &ConnectionEntry, l: &ChannelLink) -> String {
    format!("{} ({})", c.info.name(), l.id)
}

fn channel_json(m: &Mgmt, c: &ConnectionEntry, l: &ChannelLink) -> Value {
    let d = l.deliveries.lock().unwrap();
    let (unacked, consumers, global) = (d.unacked.len(), d.consumers.len(), d.global_prefetch);
    drop(d);
    json!({
        "name": channel_name(c, l),
        "node": m.node,
        "number": l.id,
        "user": c.user,
        "user_who_performed_action": c.user,
        "vhost": c.vhost,
        "state": "running",
        "confirm": l.confirm.load(Relaxed),
        "transactional": l.transactional.load(Relaxed),
        "prefetch_count": l.prefetch.load(Relaxed),
        "global_prefetch_count": global,
        "consumer_count": consumers,
        "messages_unacknowledged": unacked,
        "messages_unconfirmed": 0,
        "messages_uncommitted": 0,
        "acks_uncommitted": 0,
        "pending_raft_commands": 0,
        "connection_details": {
            "name": c.info.name(),
            "peer_host": c.info.peer.ip().to_string(),
            "peer_port": c.info.peer.port(),
        },
        "message_stats": l.stats.json(CHANNEL),
    })
}

fn consumers_json(m: &Mgmt, c: &ConnectionEntry, out: &mut Vec<Value>) {
    for l in c.channels() {
        // Copied out first: the queue's lock is taken below, and the queue takes a
        // channel's deliveries lock under its own (lock order).
        let entries: Vec<_> = l
            .deliveries
            .lock()
            .unwrap()
            .consumers
            .iter()
            .map(|e| (e.consumer.clone(), e.queue.clone()))
            .collect();
        for (k, queue) in &entries {
            // With x-single-active-consumer, the queue's first subscriber is the active
            // one and the others wait, as RabbitMQ shows them.
            let (active, status) = if queue.args.single_active_consumer {
                let first = queue.snapshot().consumers.first().cloned();
                if first.is_some_and(|f| Arc::ptr_eq(&f, k)) {
                    (true, "single_active")
                } else {
                    (false, "waiting")
                }
            } else {
                (true, "up")
            };
            out.push(json!({
                "consumer_tag": k.tag.to_string(),
                "ack_required": !k.no_ack,
                "exclusive": k.exclusive,
                "prefetch_count": k.prefetch,
                "active": active,
                "activity_status": status,
                // RabbitMQ 3.12+'s delivery acknowledgement timeout, which strict clients
                // require; Warren enforces none (0).
                "consumer_timeout": 0,
                "arguments": if k.priority != 0 { json!({"x-priority": k.priority}) } else { json!({}) },
                "queue": {"name": queue.name.to_string(), "vhost": c.vhost},
                "channel_details": {
                    "name": channel_name(c, &l),
                    "number": l.id,
                    "node": m.node,
                    "connection_name": c.info.name(),
                    "peer_host": c.info.peer.ip().to_string(),
                    "peer_port": c.info.peer.port(),
                    "user": c.user,
                },
            }));
        }
    }
}

/// The connection a path names: 404 when there is none, 401 when it is someone
/// else's and the caller may not see it (RabbitMQ's texts).
fn find(m: &Mgmt, caller: &Caller, name: &str) -> ApiResult<Arc<ConnectionEntry>> {
    let c = m
        .broker
        .connections
        .all()
        .into_iter()
        .find(|c| c.info.name() == name)
        .ok_or_else(ApiError::not_found)?;
    if !(caller.is_monitor() || c.user == caller.name()) {
        return Err(ApiError::not_authorised(
            "User not authorised to access object",
        ));
    }
    Ok(c)
}

async fn connections(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    list_lazy(
        visible(&m, &caller),
        |c| c.info.name(),
        |c| connection_json(&m, c),
        &p,
    )
}

async fn vhost_connections(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    caller.read_vhost(&m, &vhost)?;
    let items = visible(&m, &caller)
        .iter()
        .filter(|c| c.vhost == vhost)
        .map(|c| connection_json(&m, c))
        .collect();
    list(items, &p)
}

async fn user_connections(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(user): Path<String>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    if user != caller.name() {
        caller.require_monitor()?;
    }
    let items = visible(&m, &caller)
        .iter()
        .filter(|c| c.user == user)
        .map(|c| connection_json(&m, c))
        .collect();
    list(items, &p)
}

async fn connection(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = find(&m, &caller, &name)?;
    Ok(Json(connection_json(&m, &c)))
}

fn reason(headers: &HeaderMap) -> String {
    headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Closed via management plugin")
        .to_string()
}

async fn close_connection(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let c = find(&m, &caller, &name)?;
    close_entry(&caller, &c, &headers)
}

/// DELETE on a connection (either protocol): its owner or an administrator closes it
/// with the `X-Reason` text.
pub(super) fn close_entry(
    caller: &Caller,
    c: &ConnectionEntry,
    headers: &HeaderMap,
) -> ApiResult<StatusCode> {
    if c.user != caller.name() && !caller.is_admin() {
        return Err(ApiError::not_authorised(
            "User not authorised to access object",
        ));
    }
    tracing::info!(connection = %c.info.name(), by = %caller.name(), "closing connection via the management API");
    c.close(reason(headers));
    Ok(StatusCode::NO_CONTENT)
}

async fn close_user_connections(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    if user != caller.name() {
        caller.require_admin()?;
    }
    let why = reason(&headers);
    m.broker.connections.close_where(|c| c.user == user, &why);
    Ok(StatusCode::NO_CONTENT)
}

async fn connection_channels(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    let c = find(&m, &caller, &name)?;
    let items = c
        .channels()
        .iter()
        .map(|l| channel_json(&m, &c, l))
        .collect();
    list(items, &p)
}

fn all_channels(m: &Mgmt, caller: &Caller, vhost: Option<&str>) -> Vec<Value> {
    visible(m, caller)
        .iter()
        .filter(|c| vhost.is_none_or(|v| v == c.vhost))
        .flat_map(|c| {
            c.channels()
                .iter()
                .map(|l| channel_json(m, c, l))
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn channels(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    list(all_channels(&m, &caller, None), &p)
}

async fn vhost_channels(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    caller.read_vhost(&m, &vhost)?;
    list(all_channels(&m, &caller, Some(&vhost)), &p)
}

async fn channel(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    for c in m.broker.connections.all() {
        for l in c.channels() {
            if channel_name(&c, &l) == name {
                if !(caller.is_monitor() || c.user == caller.name()) {
                    return Err(ApiError::not_authorised(
                        "User not authorised to access object",
                    ));
                }
                let mut v = channel_json(&m, &c, &l);
                let mut consumers = Vec::new();
                consumers_json(&m, &c, &mut consumers);
                consumers.retain(|k| k["channel_details"]["number"] == l.id);
                v["consumer_details"] = Value::Array(consumers);
                v["publishes"] = json!([]);
                v["deliveries"] = json!([]);
                return Ok(Json(v));
            }
        }
    }
    Err(ApiError::not_found())
}

async fn consumers(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    let mut out = Vec::new();
    for c in visible(&m, &caller) {
        consumers_json(&m, &c, &mut out);
    }
    list(out, &p)
}

async fn vhost_consumers(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    caller.read_vhost(&m, &vhost)?;
    let mut out = Vec::new();
    for c in visible(&m, &caller).iter().filter(|c| c.vhost == vhost) {
        consumers_json(&m, c, &mut out);
    }
    list(out, &p)
}

/// The consumers of one queue, as `consumer_details` in a queue object shows them.
pub(super) fn queue_consumers(m: &Mgmt, vhost: &str, queue: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for c in m
        .broker
        .connections
        .all()
        .iter()
        .filter(|c| c.vhost == vhost)
    {
        consumers_json(m, c, &mut out);
    }
    out.retain(|v| v["queue"]["name"] == queue);
    out
}
