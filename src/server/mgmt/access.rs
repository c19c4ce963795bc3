//! Users, vhosts, permissions, topic permissions and limits: `vhosts`, `users`,
//! `permissions`, `topic-permissions`, `vhost-limits`, `user-limits`, through the broker's
//! admin operations (validated, logged durably, then applied). Administrators only, but
//! for reading the vhosts one may see.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::listing::{Params, list};
use super::messages::{body_json, key_missing};
use super::{Mgmt, put_status};
use crate::broker::admin::{Credential, parse_tags, user_def};
use crate::broker::auth::User;
use crate::store::definitions::{PermissionDef, TopicPermissionDef, VHostDef};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

pub(super) fn routes() -> Router<Arc<Mgmt>> {
    Router::new()
        .merge(permission_listings("permissions", permission_rows))
        .merge(permission_listings("topic-permissions", topic_rows))
        .route("/api/vhosts", get(vhosts))
        .route(
            "/api/vhosts/{vhost}",
            get(vhost).put(put_vhost).delete(delete_vhost),
        )
        .route("/api/users", get(users))
        .route(
            "/api/users/without-permissions",
            get(users_without_permissions),
        )
        .route("/api/users/bulk-delete", post(bulk_delete_users))
        .route(
            "/api/users/{user}",
            get(user).put(put_user).delete(delete_user),
        )
        .route(
            "/api/permissions/{vhost}/{user}",
            get(permission)
                .put(put_permission)
                .delete(delete_permission),
        )
        .route(
            "/api/topic-permissions/{vhost}/{user}",
            get(topic_permission)
                .put(put_topic_permission)
                .delete(delete_topic_permission),
        )
        .route(
            "/api/topic-permissions/{vhost}/{user}/{exchange}",
            axum::routing::delete(delete_exchange_topic_permission),
        )
        .route("/api/vhost-limits", get(vhost_limits))
        .route("/api/vhost-limits/{vhost}", get(one_vhost_limits))
        .route(
            "/api/vhost-limits/{vhost}/{name}",
            put(put_vhost_limit).delete(delete_vhost_limit),
        )
        .route("/api/user-limits", get(user_limits))
        .route("/api/user-limits/{user}", get(one_user_limits))
        .route(
            "/api/user-limits/{user}/{name}",
            put(put_user_limit).delete(delete_user_limit),
        )
}

/// Tags as RabbitMQ takes them: a comma-separated string or a list.
fn tags_of(v: Option<&Value>) -> ApiResult<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(parse_tags(s)),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .map(|s| s.trim().to_string())
                    .ok_or_else(|| ApiError::bad_request("tags must be strings"))
            })
            .filter(|t| !matches!(t, Ok(s) if s.is_empty()))
            .collect(),
        Some(_) => Err(ApiError::bad_request("tags must be a string or a list")),
    }
}

fn limits_json(limits: &[(String, i64)]) -> Value {
    Value::Object(limits.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

// ---- vhosts ----

fn vhost_json(m: &Mgmt, def: &VHostDef) -> Value {
    let mut v = json!({
        "name": def.name,
        "description": def.description,
        "tags": def.tags,
        "default_queue_type": "undefined",
        "metadata": {"description": def.description, "tags": def.tags},
        "tracing": false,
        "cluster_state": {m.node.clone(): "running"},
    });
    if let Some(vh) = m.broker.vhost(&def.name) {
        let (mut ready, mut unacked) = (0u64, 0u64);
        let (mut ready_rate, mut unacked_rate) = (0.0, 0.0);
        for q in vh.queues() {
            ready += q.snapshot().ready;
            unacked += q.unacked.load(Relaxed);
            ready_rate += q.depth.ready.rate();
            unacked_rate += q.depth.unacked.rate();
        }
        v["messages"] = json!(ready + unacked);
        v["messages_details"] = json!({"rate": ready_rate + unacked_rate});
        v["messages_ready"] = json!(ready);
        v["messages_ready_details"] = json!({"rate": ready_rate});
        v["messages_unacknowledged"] = json!(unacked);
        v["messages_unacknowledged_details"] = json!({"rate": unacked_rate});
        // Traffic of the vhost's open connections.
        let (mut recv, mut send, mut recv_rate, mut send_rate) = (0u64, 0u64, 0.0, 0.0);
        for c in m
            .broker
            .connections
            .all()
            .iter()
            .filter(|c| c.vhost == def.name)
        {
            recv += c.traffic.recv_oct.load(Relaxed);
            send += c.traffic.send_oct.load(Relaxed);
            let (r, s) = c.traffic.rates();
            recv_rate += r;
            send_rate += s;
        }
        v["recv_oct"] = json!(recv);
        v["recv_oct_details"] = json!({"rate": recv_rate});
        v["send_oct"] = json!(send);
        v["send_oct_details"] = json!({"rate": send_rate});
        let stats = m.message_stats(Some(&def.name));
        if stats.as_object().is_some_and(|o| !o.is_empty()) {
            v["message_stats"] = stats;
        }
    }
    v
}

async fn vhosts(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    let items = m
        .broker
        .vhosts()
        .iter()
        .filter(|v| caller.sees_vhost(&m, &v.name))
        .map(|v| vhost_json(&m, &v.def()))
        .collect();
    list(items, &p)
}

async fn vhost(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.read_vhost(&m, &name)?;
    let v = m.broker.vhost(&name).ok_or_else(ApiError::not_found)?;
    Ok(Json(vhost_json(&m, &v.def())))
}

async fn put_vhost(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let req = body_json(&body)?;
    let existing = m.broker.vhost(&name).map(|v| v.def());
    let description = match req.get("description") {
        Some(Value::String(s)) => s.clone(),
        _ => existing
            .as_ref()
            .map(|d| d.description.clone())
            .unwrap_or_default(),
    };
    let tags = match req.get("tags") {
        None => existing
            .as_ref()
            .map(|d| d.tags.clone())
            .unwrap_or_default(),
        t => tags_of(t)?,
    };
    let limits = existing.map(|d| d.limits).unwrap_or_default();
    let created = m.broker.put_vhost(VHostDef {
        name: name.clone(),
        description,
        tags,
        limits,
    })?;
    if created {
        // As RabbitMQ: whoever creates a vhost gets full permissions in it.
        m.broker.set_permissions(PermissionDef {
            user: caller.name().to_string(),
            vhost: name,
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        })?;
        Ok(StatusCode::CREATED)
    } else {
        Ok(StatusCode::NO_CONTENT)
    }
}

async fn delete_vhost(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    m.broker.delete_vhost(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- users ----

fn user_json(u: &User) -> Value {
    let d = user_def(u);
    json!({
        "name": d.name,
        "password_hash": d.password_hash,
        "hashing_algorithm": d.hashing_algorithm,
        "tags": d.tags,
        "limits": limits_json(&d.limits),
    })
}

async fn users(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    list(
        m.broker.auth.users().iter().map(|u| user_json(u)).collect(),
        &p,
    )
}

async fn users_without_permissions(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let with: std::collections::HashSet<String> = m
        .broker
        .auth
        .all_permissions()
        .into_iter()
        .map(|(u, _, _)| u)
        .collect();
    Ok(Json(
        m.broker
            .auth
            .users()
            .iter()
            .filter(|u| !with.contains(&u.name))
            .map(|u| user_json(u))
            .collect(),
    ))
}

async fn user(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let u = m.broker.auth.user(&name).ok_or_else(ApiError::not_found)?;
    Ok(Json(user_json(&u)))
}

async fn put_user(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let req = body_json(&body)?;
    let existing = m.broker.auth.user(&name);
    let credential = match (req.get("password"), req.get("password_hash")) {
        (Some(Value::String(p)), _) => Credential::Password(p.clone()),
        (_, Some(Value::String(h))) => Credential::Hash {
            password_hash: h.clone(),
            algorithm: req
                .get("hashing_algorithm")
                .and_then(Value::as_str)
                .unwrap_or("rabbit_password_hashing_sha256")
                .to_string(),
        },
        (Some(_), _) | (_, Some(_)) => {
            return Err(ApiError::bad_request(
                "password and password_hash must be strings",
            ));
        }
        // Neither: no password, for an existing user too (RabbitMQ's put_user clears
        // it: "clear password, update tags if needed").
        (None, None) => Credential::None,
    };
    let tags = match req.get("tags") {
        None => existing
            .as_ref()
            .map(|u| u.tags.clone())
            .unwrap_or_default(),
        t => tags_of(t)?,
    };
    let created = m.broker.put_user(&name, credential, tags)?;
    Ok(put_status(created))
}

async fn delete_user(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    m.broker.delete_user(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn bulk_delete_users(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let req = body_json(&body)?;
    let names = req
        .get("users")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("users must be a list"))?;
    for n in names.iter().filter_map(Value::as_str) {
        // Users that do not exist are skipped, as RabbitMQ does.
        let _ = m.broker.delete_user(n);
    }
    Ok(StatusCode::NO_CONTENT)
}

// ---- permissions ----

/// The rows of permissions (or topic permissions) that a filter on (user, vhost) keeps.
type Rows = fn(&Mgmt, &dyn Fn(&str, &str) -> bool) -> Vec<Value>;

/// `/api/{kind}`, `/api/vhosts/{vhost}/{kind}` and `/api/users/{user}/{kind}`: the same
/// rows, all of them, a vhost's or a user's (administrators only; the vhost or user must
/// exist).
fn permission_listings(kind: &str, rows: Rows) -> Router<Arc<Mgmt>> {
    Router::new()
        .route(
            &format!("/api/{kind}"),
            get(
                move |State(m): State<Arc<Mgmt>>, c: Caller, Query(p): Query<Params>| async move {
                    c.require_admin()?;
                    list(rows(&m, &|_, _| true), &p)
                },
            ),
        )
        .route(
            &format!("/api/vhosts/{{vhost}}/{kind}"),
            get(
                move |State(m): State<Arc<Mgmt>>,
                      c: Caller,
                      Path(vhost): Path<String>,
                      Query(p): Query<Params>| async move {
                    c.require_admin()?;
                    m.broker.vhost(&vhost).ok_or_else(ApiError::not_found)?;
                    list(rows(&m, &|_, v| v == vhost), &p)
                },
            ),
        )
        .route(
            &format!("/api/users/{{user}}/{kind}"),
            get(
                move |State(m): State<Arc<Mgmt>>,
                      c: Caller,
                      Path(user): Path<String>,
                      Query(p): Query<Params>| async move {
                    c.require_admin()?;
                    m.broker.auth.user(&user).ok_or_else(ApiError::not_found)?;
                    list(rows(&m, &|u, _| u == user), &p)
                },
            ),
        )
}

fn permission_rows(m: &Mgmt, keep: &dyn Fn(&str, &str) -> bool) -> Vec<Value> {
    m.broker
        .auth
        .all_permissions()
        .into_iter()
        .filter(|(u, v, _)| keep(u, v))
        .map(|(u, v, p)| {
            json!({
                "user": u, "vhost": v,
                "configure": p.configure.source,
                "write": p.write.source,
                "read": p.read.source,
            })
        })
        .collect()
}

fn topic_rows(m: &Mgmt, keep: &dyn Fn(&str, &str) -> bool) -> Vec<Value> {
    m.broker
        .auth
        .all_topic_permissions()
        .into_iter()
        .filter(|(u, v, _)| keep(u, v))
        .map(|(u, v, t)| {
            json!({"user": u, "vhost": v, "exchange": t.exchange, "write": t.write, "read": t.read})
        })
        .collect()
}

async fn permission(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    permission_rows(&m, &|u, v| u == user && v == vhost)
        .into_iter()
        .next()
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

fn pattern(req: &Value, key: &str) -> ApiResult<String> {
    match req.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None => Err(key_missing(key)),
        _ => Err(ApiError::bad_request(format!("{key} must be a string"))),
    }
}

fn user_and_vhost(m: &Mgmt, user: &str, vhost: &str) -> ApiResult<()> {
    if m.broker.auth.user(user).is_none() || m.broker.vhost(vhost).is_none() {
        return Err(ApiError::bad_request("vhost_or_user_not_found"));
    }
    Ok(())
}

async fn put_permission(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let req = body_json(&body)?;
    user_and_vhost(&m, &user, &vhost)?;
    let existed = m.broker.auth.permissions(&user, &vhost).is_some();
    m.broker.set_permissions(PermissionDef {
        user,
        vhost,
        configure: pattern(&req, "configure")?,
        write: pattern(&req, "write")?,
        read: pattern(&req, "read")?,
    })?;
    Ok(put_status(!existed))
}

async fn delete_permission(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    m.broker.clear_permissions(&user, &vhost)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn topic_permission(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let rows = topic_rows(&m, &|u, v| u == user && v == vhost);
    if rows.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Json(Value::Array(rows)))
}

async fn put_topic_permission(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let req = body_json(&body)?;
    user_and_vhost(&m, &user, &vhost)?;
    let exchange = pattern(&req, "exchange")?;
    let existed = m
        .broker
        .auth
        .topic_permissions(&user, &vhost)
        .iter()
        .any(|t| t.exchange == exchange);
    m.broker.set_topic_permissions(TopicPermissionDef {
        user,
        vhost,
        exchange,
        write: pattern(&req, "write")?,
        read: pattern(&req, "read")?,
    })?;
    Ok(put_status(!existed))
}

async fn delete_topic_permission(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    m.broker.clear_topic_permissions(&user, &vhost, None)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_exchange_topic_permission(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, user, exchange)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    m.broker
        .clear_topic_permissions(&user, &vhost, Some(&exchange))?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- limits ----

fn limit_value(req: &Value) -> ApiResult<i64> {
    req.get("value")
        .ok_or_else(|| key_missing("value"))?
        .as_i64()
        .ok_or_else(|| ApiError::bad_request("value must be an integer"))
}

fn vhost_limit_rows(m: &Mgmt, caller: &Caller, only: Option<&str>) -> Vec<Value> {
    m.broker
        .vhosts()
        .iter()
        .filter(|v| only.is_none_or(|o| o == v.name) && caller.sees_vhost(m, &v.name))
        .filter_map(|v| {
            let d = v.def();
            (!d.limits.is_empty())
                .then(|| json!({"vhost": d.name, "value": limits_json(&d.limits)}))
        })
        .collect()
}

async fn vhost_limits(State(m): State<Arc<Mgmt>>, caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(Value::Array(vhost_limit_rows(&m, &caller, None))))
}

async fn one_vhost_limits(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.read_vhost(&m, &vhost)?;
    Ok(Json(Value::Array(vhost_limit_rows(
        &m,
        &caller,
        Some(&vhost),
    ))))
}

fn limit_error(name: &str, value: i64) -> ApiError {
    ApiError::bad_request(format!(
        "Validation failed\n\nUnrecognised terms [{{<<\"{name}\">>,{value}}}] in limits\n"
    ))
}

async fn put_vhost_limit(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let value = limit_value(&body_json(&body)?)?;
    let v = m.broker.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    if !crate::broker::admin::VHOST_LIMITS.contains(&name.as_str()) {
        return Err(limit_error(&name, value));
    }
    let mut limits = v.def().limits;
    limits.retain(|(n, _)| *n != name);
    limits.push((name, value));
    m.broker.set_vhost_limits(&vhost, limits)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_vhost_limit(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let v = m.broker.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    let mut limits = v.def().limits;
    limits.retain(|(n, _)| *n != name);
    m.broker.set_vhost_limits(&vhost, limits)?;
    Ok(StatusCode::NO_CONTENT)
}

fn user_limit_rows(m: &Mgmt, only: Option<&str>) -> Vec<Value> {
    m.broker
        .auth
        .users()
        .iter()
        .filter(|u| only.is_none_or(|o| o == u.name))
        .filter_map(|u| {
            let l = crate::broker::admin::user_limits(u);
            (!l.is_empty()).then(|| json!({"user": u.name, "value": limits_json(&l)}))
        })
        .collect()
}

async fn user_limits(State(m): State<Arc<Mgmt>>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    Ok(Json(Value::Array(user_limit_rows(&m, None))))
}

async fn one_user_limits(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    if user != caller.name() {
        caller.require_admin()?;
    }
    Ok(Json(Value::Array(user_limit_rows(&m, Some(&user)))))
}

async fn put_user_limit(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let value = limit_value(&body_json(&body)?)?;
    let u = m.broker.auth.user(&user).ok_or_else(ApiError::not_found)?;
    if !crate::broker::admin::USER_LIMITS.contains(&name.as_str()) {
        return Err(limit_error(&name, value));
    }
    let mut limits = crate::broker::admin::user_limits(&u);
    limits.retain(|(n, _)| *n != name);
    limits.push((name, value));
    m.broker.set_user_limits(&user, limits)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_user_limit(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let u = m.broker.auth.user(&user).ok_or_else(ApiError::not_found)?;
    let mut limits = crate::broker::admin::user_limits(&u);
    limits.retain(|(n, _)| *n != name);
    m.broker.set_user_limits(&user, limits)?;
    Ok(StatusCode::NO_CONTENT)
}
