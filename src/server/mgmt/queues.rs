//! `queues`, `queues/{vhost}`, `queues/{vhost}/{name}` (GET, PUT, DELETE), `.../contents`
//! (purge) and `.../get`. Declarations go through the same `VHost::declare_queue` as
//! queue.declare, with the caller's permissions checked at the same points.

use super::auth::Caller;
use super::conns::queue_consumers;
use super::error::{ApiError, ApiResult};
use super::listing::{Params, list_lazy};
use super::messages::{body_json, flag};
use super::{Mgmt, put_status};
use crate::broker::auth::{Access, Perm, ResourceKind};
use crate::broker::definitions_json::{json_to_table, table_to_json};
use crate::broker::queue::Queue;
use crate::broker::stats::QUEUE;
use crate::broker::vhost::QueueSpec;
use crate::protocol::ShortStr;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

pub(super) fn routes() -> Router<Arc<Mgmt>> {
    Router::new()
        .route("/api/queues", get(all))
        .route("/api/queues/{vhost}", get(in_vhost))
        .route(
            "/api/queues/{vhost}/{name}",
            get(one).put(declare).delete(remove),
        )
        .route("/api/queues/{vhost}/{name}/contents", delete(purge))
        .route("/api/queues/{vhost}/{name}/get", post(super::messages::get))
        .route(
            "/api/queues/{vhost}/{name}/bindings",
            get(super::bindings::of_queue),
        )
}

fn rate(r: f64) -> Value {
    json!({ "rate": (r * 100.0).round() / 100.0 })
}

/// A queue as RabbitMQ's API shows it in listings (`detail` adds its consumers).
pub(super) fn queue_json(m: &Mgmt, vhost: &str, q: &Queue, detail: bool) -> Value {
    let s = q.snapshot();
    let unacked = q.unacked.load(Relaxed);
    let idle = s.consumers.is_empty().then(|| {
        let ago = s.idle_since.elapsed();
        let at = std::time::SystemTime::now() - ago;
        super::time::rfc3339(at)
    });
    let exclusive_tag = s
        .consumers
        .iter()
        .find(|c| c.exclusive)
        .map(|c| c.tag.to_string());
    let mut v = json!({
        "name": q.name.to_string(),
        "vhost": vhost,
        "durable": q.durable,
        "auto_delete": q.auto_delete,
        "exclusive": q.exclusive_owner.is_some(),
        "arguments": table_to_json(&q.arguments),
        "node": m.node,
        "type": q.args.queue_type.name(),
        "state": "running",
        "policy": q.policy(),
        "operator_policy": q.operator_policy(),
        "effective_policy_definition": q.effective_policy_definition(),
        "consumers": s.consumers.len(),
        "consumer_utilisation": if s.consumers.is_empty() { 0.0 } else { 1.0 },
        "consumer_capacity": if s.consumers.is_empty() { 0.0 } else { 1.0 },
        "exclusive_consumer_tag": exclusive_tag,
        // With x-single-active-consumer, the first subscriber is the active one.
        "single_active_consumer_tag": if q.args.single_active_consumer {
            s.consumers.first().map(|c| c.tag.to_string())
        } else {
            None
        },
        "recoverable_slaves": null,
        // rabbit_fifo counts the discards waiting for their dead-letter target.
        "messages": s.ready + unacked + s.dlx,
        "messages_details": rate(q.depth.ready.rate() + q.depth.unacked.rate()),
        "messages_ready": s.ready,
        "messages_ready_details": rate(q.depth.ready.rate()),
        "messages_unacknowledged": unacked,
        "messages_unacknowledged_details": rate(q.depth.unacked.rate()),
        "messages_ram": s.ready - s.paged_out + unacked,
        "messages_ready_ram": s.ready - s.paged_out,
        "messages_unacknowledged_ram": unacked,
        "messages_paged_out": s.paged_out,
        "message_bytes": s.ready_bytes + s.dlx_bytes,
        "message_bytes_ready": s.ready_bytes,
        "message_bytes_unacknowledged": 0,
        "message_bytes_paged_out": s.paged_out_bytes,
        "message_bytes_ram": s.ready_bytes - s.paged_out_bytes,
        "memory": 0,
        "head_message_timestamp": null,
        "idle_since": idle,
        "backing_queue_status": {"mode": "default", "len": s.ready, "version": 2},
        "message_stats": q.stats.json(QUEUE),
    });
    if q.args.queue_type == crate::broker::args::QueueType::Quorum {
        v["messages_dlx"] = json!(s.dlx);
        v["message_bytes_dlx"] = json!(s.dlx_bytes);
    }
    if detail {
        v["consumer_details"] = Value::Array(queue_consumers(m, vhost, &q.name.to_string()));
        v["incoming"] = json!([]);
        v["deliveries"] = json!([]);
    }
    v
}

/// The queues the caller may see, by vhost then name.
fn visible(m: &Mgmt, caller: &Caller, vhost: Option<&str>) -> Vec<(String, Arc<Queue>)> {
    let mut out = Vec::new();
    for v in m.broker.vhosts() {
        if vhost.is_some_and(|n| n != v.name) || !caller.sees_objects_in(m, &v.name) {
            continue;
        }
        let mut qs = v.queues();
        qs.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        out.extend(qs.into_iter().map(|q| (v.name.clone(), q)));
    }
    out
}

fn listing(m: &Mgmt, caller: &Caller, vhost: Option<&str>, p: &Params) -> ApiResult<Json<Value>> {
    list_lazy(
        visible(m, caller, vhost),
        |(_, q)| q.name.to_string(),
        |(v, q)| queue_json(m, v, q, false),
        p,
    )
}

async fn all(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    listing(&m, &caller, None, &p)
}

async fn in_vhost(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    caller.read_vhost_objects(&m, &vhost)?;
    listing(&m, &caller, Some(&vhost), &p)
}

pub(super) fn find(m: &Mgmt, vhost: &str, name: &str) -> ApiResult<Arc<Queue>> {
    m.broker
        .vhost(vhost)
        .and_then(|v| v.queue(name.as_bytes()))
        .ok_or_else(ApiError::not_found)
}

async fn one(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    caller.read_vhost_objects(&m, &vhost)?;
    let q = find(&m, &vhost, &name)?;
    Ok(Json(queue_json(&m, &vhost, &q, true)))
}

async fn declare(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.act_in_vhost(&m, &vhost)?;
    let req = body_json(&body)?;
    let durable = flag(&req, "durable", false)?;
    let auto_delete = flag(&req, "auto_delete", false)?;
    let arguments = json_to_table(req.get("arguments").unwrap_or(&Value::Null))
        .map_err(ApiError::bad_request)?;
    let v = m.broker.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    if name.is_empty() || name.len() > 255 {
        return Err(ApiError::bad_request("queue names must be 1 to 255 octets"));
    }
    let existed = v.queue(name.as_bytes()).is_some();
    let mut access = Access::new(m.broker.auth.clone(), caller.user.clone(), &vhost, "");
    v.declare_queue(QueueSpec {
        name: &ShortStr::from(name.as_str()),
        passive: false,
        durable,
        exclusive: false,
        auto_delete,
        arguments: &arguments,
        connection: 0,
        access: Some(&mut access),
    })?;
    Ok(put_status(!existed))
}

async fn remove(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> ApiResult<StatusCode> {
    caller.act_in_vhost(&m, &vhost)?;
    let q = find(&m, &vhost, &name)?;
    let mut access = Access::new(m.broker.auth.clone(), caller.user.clone(), &vhost, "");
    access.check(Perm::Configure, ResourceKind::Queue, name.as_bytes())?;
    let v = m.broker.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    let if_unused = p.get("if-unused").is_some_and(|x| x == "true");
    let if_empty = p.get("if-empty").is_some_and(|x| x == "true");
    // The API acts as no connection: an exclusive queue is deleted all the same, as
    // RabbitMQ's API does.
    let owner = q.exclusive_owner.unwrap_or(0);
    v.delete_queue(&q.name, if_unused, if_empty, owner)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn purge(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.act_in_vhost(&m, &vhost)?;
    let q = find(&m, &vhost, &name)?;
    let mut access = Access::new(m.broker.auth.clone(), caller.user.clone(), &vhost, "");
    access.check(Perm::Read, ResourceKind::Queue, name.as_bytes())?;
    q.purge();
    Ok(StatusCode::NO_CONTENT)
}
