//! The REST way to move messages, as RabbitMQ's API offers it to HTTP-only services:
//! `POST exchanges/{vhost}/{name}/publish` and `POST queues/{vhost}/{name}/get`, with
//! message properties as JSON and payloads as strings or base64.

use super::Mgmt;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use crate::broker::auth::{Access, Perm, ResourceKind};
use crate::broker::deadletter::dead_letter_all;
use crate::broker::definitions_json::{json_to_table, table_to_json};
use crate::broker::effects::{DeathReason, Effects};
use crate::broker::publish::publish as broker_publish;
use crate::broker::stats::Stat;
use crate::protocol::{BasicProperties, ShortStr};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use base64::Engine;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// A request body as JSON, whatever its content type says (RabbitMQ parses it so too);
/// an empty body is an empty object.
pub(super) fn body_json(body: &Bytes) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("Invalid JSON: {e}")))
}

/// RabbitMQ's 400 for a required key missing from a request body.
pub(super) fn key_missing(key: &str) -> ApiError {
    ApiError::bad_request(format!("[{{key_missing,{key}}}]"))
}

/// A boolean field of a request body (`true`, `false`, or those words as strings, as
/// RabbitMQ's form posts send them); `default` when absent or null.
pub(super) fn flag(req: &Value, key: &str, default: bool) -> ApiResult<bool> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(other) => Err(ApiError::bad_request(format!(
            "{key} must be a boolean, not {other}"
        ))),
    }
}

fn short(v: &Value, key: &str) -> ApiResult<Option<ShortStr>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(ShortStr::from(s.as_str()))),
        Some(other) => Err(ApiError::bad_request(format!(
            "property '{key}' must be a string, not {other}"
        ))),
    }
}

fn number(v: &Value, key: &str) -> ApiResult<Option<u64>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(n) => n.as_u64().map(Some).ok_or_else(|| {
            ApiError::bad_request(format!("property '{key}' must be a non-negative integer"))
        }),
    }
}

/// Message properties from RabbitMQ's JSON form.
pub(super) fn json_to_properties(v: &Value) -> ApiResult<BasicProperties> {
    if !v.is_object() && !v.is_null() {
        return Err(ApiError::bad_request("properties must be an object"));
    }
    let small = |key: &str| -> ApiResult<Option<u8>> {
        number(v, key)?
            .map(|n| {
                u8::try_from(n)
                    .map_err(|_| ApiError::bad_request(format!("property '{key}' is too large")))
            })
            .transpose()
    };
    Ok(BasicProperties {
        content_type: short(v, "content_type")?,
        content_encoding: short(v, "content_encoding")?,
        headers: match v.get("headers") {
            None | Some(Value::Null) => None,
            Some(h) => Some(json_to_table(h).map_err(ApiError::bad_request)?),
        },
        delivery_mode: small("delivery_mode")?,
        priority: small("priority")?,
        correlation_id: short(v, "correlation_id")?,
        reply_to: short(v, "reply_to")?,
        expiration: short(v, "expiration")?,
        message_id: short(v, "message_id")?,
        timestamp: number(v, "timestamp")?,
        kind: short(v, "type")?,
        user_id: short(v, "user_id")?,
        app_id: short(v, "app_id")?,
        cluster_id: short(v, "cluster_id")?,
    })
}

/// Message properties in RabbitMQ's JSON form (absent ones left out).
pub(super) fn properties_to_json(p: &BasicProperties) -> Value {
    let mut m = Map::new();
    let mut s = |k: &str, v: &Option<ShortStr>| {
        if let Some(v) = v {
            m.insert(k.into(), json!(v.to_string()));
        }
    };
    s("content_type", &p.content_type);
    s("content_encoding", &p.content_encoding);
    s("correlation_id", &p.correlation_id);
    s("reply_to", &p.reply_to);
    s("expiration", &p.expiration);
    s("message_id", &p.message_id);
    s("type", &p.kind);
    s("user_id", &p.user_id);
    s("app_id", &p.app_id);
    s("cluster_id", &p.cluster_id);
    if let Some(h) = &p.headers {
        m.insert("headers".into(), table_to_json(h));
    }
    if let Some(d) = p.delivery_mode {
        m.insert("delivery_mode".into(), json!(d));
    }
    if let Some(x) = p.priority {
        m.insert("priority".into(), json!(x));
    }
    if let Some(t) = p.timestamp {
        m.insert("timestamp".into(), json!(t));
    }
    Value::Object(m)
}

fn access(m: &Mgmt, caller: &Caller, vhost: &str) -> Access {
    Access::new(m.broker.auth.clone(), caller.user.clone(), vhost, "")
}

pub(super) async fn publish(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, exchange)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    caller.act_in_vhost(&m, &vhost)?;
    let req = body_json(&body)?;
    let field = |k: &str| req.get(k).ok_or_else(|| key_missing(k));
    let routing_key = field("routing_key")?
        .as_str()
        .ok_or_else(|| ApiError::bad_request("routing_key must be a string"))?;
    let payload = field("payload")?
        .as_str()
        .ok_or_else(|| ApiError::bad_request("payload must be a string"))?;
    let encoding = field("payload_encoding")?.as_str().unwrap_or("");
    let body = match encoding {
        "string" => Bytes::copy_from_slice(payload.as_bytes()),
        "base64" => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(payload)
                .map_err(|_| ApiError::bad_request("payload is not valid base64"))?,
        ),
        other => {
            return Err(ApiError::bad_request(format!(
                "payload_encoding must be 'string' or 'base64', not '{other}'"
            )));
        }
    };
    let props = json_to_properties(field("properties")?)?;
    // The default exchange is named amq.default in the API's paths.
    let name = if exchange == "amq.default" {
        ""
    } else {
        exchange.as_str()
    };
    access(&m, &caller, &vhost).check(Perm::Write, ResourceKind::Exchange, name.as_bytes())?;
    let v = m.broker.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    // RabbitMQ's API publishes over an internal channel and reports its closing as a
    // 400 with the AMQP code and text: "404 NOT_FOUND - no exchange 'x' in vhost '/'".
    let routed = broker_publish(&v, name, routing_key, &props, body).map_err(|e| {
        if e.code == crate::protocol::reply_code::ACCESS_REFUSED {
            ApiError::from(e)
        } else {
            ApiError::bad_request(format!("{} {e}", e.code))
        }
    })?;
    Ok(Json(json!({ "routed": routed })))
}

/// What `get` does with each message it reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AckMode {
    Requeue,
    Ack,
    RejectRequeue,
    Reject,
}

pub(super) async fn get(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, queue)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    caller.act_in_vhost(&m, &vhost)?;
    let req = body_json(&body)?;
    let count = req
        .get("count")
        .ok_or_else(|| key_missing("count"))?
        .as_u64()
        .ok_or_else(|| ApiError::bad_request("count must be a non-negative integer"))?;
    let mode = match req
        .get("ackmode")
        .ok_or_else(|| key_missing("ackmode"))?
        .as_str()
    {
        Some("ack_requeue_true") => AckMode::Requeue,
        Some("ack_requeue_false") => AckMode::Ack,
        Some("reject_requeue_true") => AckMode::RejectRequeue,
        Some("reject_requeue_false") => AckMode::Reject,
        // RabbitMQ answers 500 here (a crash); a 400 says what is wrong.
        _ => return Err(ApiError::bad_request("Unsupported ackmode")),
    };
    let encoding = match req
        .get("encoding")
        .ok_or_else(|| key_missing("encoding"))?
        .as_str()
    {
        Some("auto") => false,
        Some("base64") => true,
        _ => {
            return Err(ApiError::bad_request(
                "Unsupported encoding. Please use auto or base64.",
            ));
        }
    };
    let truncate = req.get("truncate").and_then(Value::as_u64);
    access(&m, &caller, &vhost).check(Perm::Read, ResourceKind::Queue, queue.as_bytes())?;
    let v = m.broker.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    let q = v.queue(queue.as_bytes()).ok_or_else(ApiError::not_found)?;
    if q.exclusive_owner.is_some() {
        return Err(ApiError::bad_request(format!(
            "cannot obtain exclusive access to locked queue '{queue}' in vhost '{vhost}'"
        )));
    }
    // A get may wait for paged-out messages to be read back: off the async threads.
    let out = tokio::task::spawn_blocking(move || {
        let mut fx = Effects::default();
        let mut taken = Vec::new();
        let mut out = Vec::new();
        for _ in 0..count {
            let Some((qm, left)) = q.get(&mut fx) else {
                break;
            };
            q.stats.incr(Stat::Get);
            let props = qm.message.properties.decode().unwrap_or_default();
            let mut payload = qm.message.body.clone();
            let payload_bytes = payload.len();
            if let Some(t) = truncate {
                payload.truncate(t as usize);
            }
            let (text, enc) = match std::str::from_utf8(&payload) {
                Ok(s) if !encoding => (s.to_string(), "string"),
                _ => (
                    base64::engine::general_purpose::STANDARD.encode(&payload),
                    "base64",
                ),
            };
            out.push(json!({
                "payload_bytes": payload_bytes,
                "redelivered": qm.redelivered,
                "exchange": qm.message.exchange.to_string(),
                "routing_key": qm.message.routing_key.to_string(),
                "message_count": left,
                "properties": properties_to_json(&props),
                "payload": text,
                "payload_encoding": enc,
            }));
            taken.push(qm);
        }
        match mode {
            AckMode::Requeue | AckMode::RejectRequeue => q.requeue(taken, &mut fx),
            AckMode::Ack => drop(taken),
            AckMode::Reject => {
                for qm in taken {
                    fx.dead_letter(&q, qm, DeathReason::Rejected);
                }
            }
        }
        if let Some(v) = q.vhost() {
            dead_letter_all(&v, &mut fx);
        }
        fx.bells.ring();
        out
    })
    .await
    .map_err(|_| ApiError::bad_request("get failed"))?;
    Ok(Json(Value::Array(out)))
}
