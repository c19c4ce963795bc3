//! `policies`, `operator-policies`, `parameters/{component}/{vhost}/{name}`,
//! `global-parameters` and `cluster-name` (PUT): the broker's policy and parameter
//! operations (validated with RabbitMQ's texts, logged durably, applied at once to the
//! queues and exchanges they match). Policies and parameters need the `policymaker` tag
//! (or `administrator`) and access to the vhost; operator policies and global parameters
//! need `administrator`.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::listing::{Params, list};
use super::messages::body_json;
use super::{Mgmt, put_status};
use crate::broker::policy::PolicyKind;
use crate::broker::policy::admin::{
    global_parameter_from_json, parameter_from_json, policy_from_json,
};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Mgmt>> {
    Router::new()
        .merge(kind_routes("policies", PolicyKind::Policy))
        .merge(kind_routes("operator-policies", PolicyKind::Operator))
        .route("/api/parameters", get(parameters))
        .route("/api/parameters/{component}", get(component_parameters))
        .route("/api/parameters/{component}/{vhost}", get(vhost_parameters))
        .route(
            "/api/parameters/{component}/{vhost}/{name}",
            get(parameter).put(put_parameter).delete(delete_parameter),
        )
        .route("/api/global-parameters", get(global_parameters))
        .route(
            "/api/global-parameters/{name}",
            get(global_parameter)
                .put(put_global_parameter)
                .delete(delete_global_parameter),
        )
}

type S = State<Arc<Mgmt>>;
type VName = Path<(String, String)>;

/// The routes of one kind of policy under `/api/{base}`.
fn kind_routes(base: &str, kind: PolicyKind) -> Router<Arc<Mgmt>> {
    Router::new()
        .route(
            &format!("/api/{base}"),
            get(move |s: S, c: Caller, q: Query<Params>| all(s, c, q, kind)),
        )
        .route(
            &format!("/api/{base}/{{vhost}}"),
            get(move |s: S, c: Caller, p: Path<String>, q: Query<Params>| {
                in_vhost(s, c, p, q, kind)
            }),
        )
        .route(
            &format!("/api/{base}/{{vhost}}/{{name}}"),
            get(move |s: S, c: Caller, p: VName| one(s, c, p, kind))
                .put(move |s: S, c: Caller, p: VName, b: Bytes| put(s, c, p, b, kind))
                .delete(move |s: S, c: Caller, p: VName| remove(s, c, p, kind)),
        )
}

/// Who may read and write policies of this kind in a vhost.
fn require(m: &Mgmt, caller: &Caller, kind: PolicyKind, vhost: Option<&str>) -> ApiResult<()> {
    match kind {
        PolicyKind::Operator => caller.require_admin()?,
        PolicyKind::Policy => caller.require_policymaker()?,
    }
    if let Some(v) = vhost {
        caller.act_in_vhost(m, v)?;
    }
    Ok(())
}

fn defs(m: &Mgmt, kind: PolicyKind, vhost: Option<&str>) -> Vec<Value> {
    let list = match kind {
        PolicyKind::Policy => m.broker.policies(vhost),
        PolicyKind::Operator => m.broker.operator_policies(vhost),
    };
    list.iter()
        .filter_map(|d| serde_json::to_value(d).ok())
        .collect()
}

async fn all(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Query(p): Query<Params>,
    kind: PolicyKind,
) -> ApiResult<Json<Value>> {
    require(&m, &caller, kind, None)?;
    let items = defs(&m, kind, None)
        .into_iter()
        .filter(|d| {
            caller.is_admin() || d["vhost"].as_str().is_some_and(|v| caller.has_vhost(&m, v))
        })
        .collect();
    list(items, &p)
}

async fn in_vhost(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(p): Query<Params>,
    kind: PolicyKind,
) -> ApiResult<Json<Value>> {
    require(&m, &caller, kind, Some(&vhost))?;
    list(defs(&m, kind, Some(&vhost)), &p)
}

async fn one(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    kind: PolicyKind,
) -> ApiResult<Json<Value>> {
    require(&m, &caller, kind, Some(&vhost))?;
    let def = match kind {
        PolicyKind::Policy => m.broker.policy(&vhost, &name),
        PolicyKind::Operator => m.broker.operator_policy(&vhost, &name),
    };
    def.and_then(|d| serde_json::to_value(d).ok())
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

async fn put(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
    kind: PolicyKind,
) -> ApiResult<StatusCode> {
    require(&m, &caller, kind, Some(&vhost))?;
    let def = policy_from_json(kind, &vhost, &name, &body_json(&body)?).map_err(|e| {
        let mut e = ApiError::from(e);
        // RabbitMQ's /api/policies (not its operator-policies) HTML-escapes the reason.
        if kind == PolicyKind::Policy {
            e.reason = e.reason.replace('<', "&lt;").replace('>', "&gt;");
        }
        e
    })?;
    let created = match kind {
        PolicyKind::Policy => m.broker.put_policy(def)?,
        PolicyKind::Operator => m.broker.put_operator_policy(def)?,
    };
    Ok(put_status(created))
}

async fn remove(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    kind: PolicyKind,
) -> ApiResult<StatusCode> {
    require(&m, &caller, kind, Some(&vhost))?;
    match kind {
        PolicyKind::Policy => m.broker.delete_policy(&vhost, &name)?,
        PolicyKind::Operator => m.broker.delete_operator_policy(&vhost, &name)?,
    }
    Ok(StatusCode::NO_CONTENT)
}

// ---- runtime parameters ----

fn parameter_rows(
    m: &Mgmt,
    caller: &Caller,
    component: Option<&str>,
    vhost: Option<&str>,
) -> Vec<Value> {
    m.broker
        .parameters(component, vhost)
        .iter()
        .filter(|d| caller.is_admin() || caller.has_vhost(m, &d.vhost))
        .filter_map(|d| serde_json::to_value(d).ok())
        .collect()
}

async fn parameters(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    caller.require_policymaker()?;
    list(parameter_rows(&m, &caller, None, None), &p)
}

async fn component_parameters(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(component): Path<String>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    caller.require_policymaker()?;
    list(parameter_rows(&m, &caller, Some(&component), None), &p)
}

async fn vhost_parameters(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((component, vhost)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    caller.require_policymaker()?;
    caller.act_in_vhost(&m, &vhost)?;
    list(
        parameter_rows(&m, &caller, Some(&component), Some(&vhost)),
        &p,
    )
}

async fn parameter(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((component, vhost, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    caller.require_policymaker()?;
    caller.act_in_vhost(&m, &vhost)?;
    m.broker
        .parameter(&component, &vhost, &name)
        .and_then(|d| serde_json::to_value(d).ok())
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

async fn put_parameter(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((component, vhost, name)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_policymaker()?;
    caller.act_in_vhost(&m, &vhost)?;
    let def = parameter_from_json(&component, &vhost, &name, &body_json(&body)?)?;
    Ok(put_status(m.broker.put_parameter(def)?))
}

async fn delete_parameter(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((component, vhost, name)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_policymaker()?;
    caller.act_in_vhost(&m, &vhost)?;
    m.broker.delete_parameter(&component, &vhost, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- global parameters ----

async fn global_parameters(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let items = m
        .broker
        .global_parameters()
        .iter()
        .filter_map(|d| serde_json::to_value(d).ok())
        .collect();
    list(items, &p)
}

async fn global_parameter(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    m.broker
        .global_parameter(&name)
        .and_then(|d| serde_json::to_value(d).ok())
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

async fn put_global_parameter(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let def = global_parameter_from_json(&name, &body_json(&body)?)?;
    Ok(put_status(m.broker.put_global_parameter(def)?))
}

async fn delete_global_parameter(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    m.broker.delete_global_parameter(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// PUT /api/cluster-name: the `cluster_name` global parameter.
pub(super) async fn put_cluster_name(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let req = body_json(&body)?;
    let name = req
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("[{key_missing,name}]"))?;
    let def = global_parameter_from_json("cluster_name", &json!({ "value": name }))?;
    m.broker.put_global_parameter(def)?;
    Ok(StatusCode::NO_CONTENT)
}
