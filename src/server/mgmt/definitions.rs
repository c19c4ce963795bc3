//! `definitions` and `definitions/{vhost}`: GET exports and POST imports RabbitMQ's
//! definitions format, for the whole broker or one vhost (whose export holds only that
//! vhost's objects, with no `vhost` fields, and whose import puts everything into it).

use super::Mgmt;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::messages::body_json;
use crate::broker::definitions_json::{export, import};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Mgmt>> {
    Router::new()
        .route("/api/definitions", get(export_all).post(import_all))
        .route(
            "/api/definitions/{vhost}",
            get(export_vhost).post(import_vhost),
        )
}

/// The sections that belong to a vhost.
const VHOST_SECTIONS: [&str; 5] = ["parameters", "policies", "queues", "exchanges", "bindings"];

async fn export_all(State(m): State<Arc<Mgmt>>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    Ok(Json(export(&m.broker)))
}

async fn export_vhost(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    m.broker
        .vhost(&vhost)
        .ok_or_else(|| ApiError::bad_request("vhost_not_found"))?;
    let all = export(&m.broker);
    let mut out = Map::new();
    out.insert("rabbit_version".into(), all["rabbit_version"].clone());
    for section in VHOST_SECTIONS {
        let items: Vec<Value> = all[section]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["vhost"] == vhost.as_str())
            .map(|i| {
                let mut i = i.clone();
                if let Some(o) = i.as_object_mut() {
                    o.remove("vhost");
                }
                i
            })
            .collect();
        out.insert(section.into(), Value::Array(items));
    }
    Ok(Json(Value::Object(out)))
}

/// The uploaded file: a JSON body, or RabbitMQ's UI form (`file=<json>` in a url-encoded
/// or multipart body).
fn uploaded(body: &Bytes) -> ApiResult<Value> {
    if let Ok(v) = body_json(body) {
        return Ok(v);
    }
    let text = String::from_utf8_lossy(body);
    if let Some(start) = text.find('{')
        && let Some(end) = text.rfind('}')
        && let Ok(v) = serde_json::from_str::<Value>(&text[start..=end])
    {
        return Ok(v);
    }
    Err(ApiError::bad_request("the definitions are not valid JSON"))
}

fn run_import(m: &Mgmt, file: &Value) -> ApiResult<StatusCode> {
    import(&m.broker, &file.to_string())
        .map_err(|e| ApiError::bad_request(e.0))
        .map(|_| StatusCode::NO_CONTENT)
}

async fn import_all(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let file = uploaded(&body)?;
    run_import(&m, &file)
}

async fn import_vhost(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    m.broker
        .vhost(&vhost)
        .ok_or_else(|| ApiError::bad_request("vhost_not_found"))?;
    let file = uploaded(&body)?;
    let mut scoped = json!({});
    for section in VHOST_SECTIONS {
        let items: Vec<Value> = file[section]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                let mut i = i.clone();
                if let Some(o) = i.as_object_mut() {
                    o.insert("vhost".into(), json!(vhost));
                }
                i
            })
            .collect();
        scoped[section] = Value::Array(items);
    }
    run_import(&m, &scoped)
}
