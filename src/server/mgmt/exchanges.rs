//! `exchanges`, `exchanges/{vhost}`, `exchanges/{vhost}/{name}` (GET, PUT, DELETE) and
//! `.../publish`. The default exchange is `amq.default` in paths and `""` in bodies.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::listing::{Params, list};
use super::messages::{body_json, flag};
use super::{Mgmt, put_status};
use crate::broker::auth::{Access, Perm, ResourceKind};
use crate::broker::definitions_json::{json_to_table, table_to_json};
use crate::broker::exchange::Exchange;
use crate::broker::stats::EXCHANGE;
use crate::broker::vhost::ExchangeSpec;
use crate::protocol::ShortStr;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Mgmt>> {
    Router::new()
        .route("/api/exchanges", get(all))
        .route("/api/exchanges/{vhost}", get(in_vhost))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(one).put(declare).delete(remove),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/publish",
            post(super::messages::publish),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/source",
            get(super::bindings::from_exchange),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/destination",
            get(super::bindings::to_exchange),
        )
}

/// The exchange a path names (`amq.default` is the default exchange).
pub(super) fn path_name(name: &str) -> &str {
    if name == "amq.default" { "" } else { name }
}

pub(super) fn exchange_json(vhost: &str, e: &Exchange) -> Value {
    let mut v = json!({
        "name": e.name.to_string(),
        "vhost": vhost,
        "type": e.kind.name(),
        "durable": e.durable,
        "auto_delete": e.auto_delete,
        "internal": e.internal,
        "arguments": table_to_json(&e.arguments),
        "policy": e.policy(),
        "operator_policy": e.operator_policy(),
        "effective_policy_definition": e.effective_policy_definition(),
        "user_who_performed_action": "",
    });
    let stats = e.stats.json(EXCHANGE);
    if stats.as_object().is_some_and(|o| !o.is_empty()) {
        v["message_stats"] = stats;
    }
    v
}

fn listing(m: &Mgmt, caller: &Caller, vhost: Option<&str>) -> Vec<Value> {
    m.broker
        .vhosts()
        .iter()
        .filter(|v| vhost.is_none_or(|n| n == v.name))
        .filter(|v| caller.sees_objects_in(m, &v.name))
        .flat_map(|v| {
            v.exchanges()
                .iter()
                .map(|e| exchange_json(&v.name, e))
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn all(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    list(listing(&m, &caller, None), &p)
}

async fn in_vhost(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    caller.read_vhost_objects(&m, &vhost)?;
    list(listing(&m, &caller, Some(&vhost)), &p)
}

pub(super) fn find(m: &Mgmt, vhost: &str, name: &str) -> ApiResult<Arc<Exchange>> {
    m.broker
        .vhost(vhost)
        .and_then(|v| v.exchange(path_name(name).as_bytes()))
        .ok_or_else(ApiError::not_found)
}

async fn one(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    caller.read_vhost_objects(&m, &vhost)?;
    let e = find(&m, &vhost, &name)?;
    let mut v = exchange_json(&vhost, &e);
    v["incoming"] = json!([]);
    v["outgoing"] = json!([]);
    Ok(Json(v))
}

async fn declare(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.act_in_vhost(&m, &vhost)?;
    let req = body_json(&body)?;
    let kind = match req.get("type") {
        None | Some(Value::Null) => "direct",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(ApiError::bad_request("type must be a string")),
    };
    let arguments = json_to_table(req.get("arguments").unwrap_or(&Value::Null))
        .map_err(ApiError::bad_request)?;
    let v = m.broker.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    let name = path_name(&name);
    let existed = v.exchange(name.as_bytes()).is_some();
    let mut access = Access::new(m.broker.auth.clone(), caller.user.clone(), &vhost, "");
    v.declare_exchange(ExchangeSpec {
        name: &ShortStr::from(name),
        kind: &ShortStr::from(kind),
        passive: false,
        durable: flag(&req, "durable", false)?,
        auto_delete: flag(&req, "auto_delete", false)?,
        internal: flag(&req, "internal", false)?,
        arguments: &arguments,
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
    let e = find(&m, &vhost, &name)?;
    let mut access = Access::new(m.broker.auth.clone(), caller.user.clone(), &vhost, "");
    access.check(Perm::Configure, ResourceKind::Exchange, e.name.as_bytes())?;
    let v = m.broker.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    let if_unused = p.get("if-unused").is_some_and(|x| x == "true");
    v.delete_exchange(&e.name, if_unused)?;
    Ok(StatusCode::NO_CONTENT)
}
