//! Health checks as RabbitMQ 3.10 serves them, for load balancers and Kubernetes probes:
//! 200 `{"status":"ok"}` when healthy, 503 `{"status":"failed","reason":...}` when not.

use super::Mgmt;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use crate::broker::publish::publish;
use crate::broker::vhost::QueueSpec;
use crate::protocol::{BasicProperties, FieldTable, ShortStr};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Mgmt>> {
    Router::new()
        .route("/api/aliveness-test/{vhost}", get(aliveness))
        .route("/api/health/checks/alarms", get(alarms))
        .route("/api/health/checks/local-alarms", get(alarms))
        .route(
            "/api/health/checks/port-listener/{port}",
            get(port_listener),
        )
        .route(
            "/api/health/checks/protocol-listener/{protocol}",
            get(protocol_listener),
        )
        .route("/api/health/checks/virtual-hosts", get(ok))
        .route(
            "/api/health/checks/node-is-quorum-critical",
            get(single_node),
        )
        .route(
            "/api/health/checks/node-is-mirror-sync-critical",
            get(single_node),
        )
        .route(
            "/api/health/checks/certificate-expiration/{within}/{unit}",
            get(ok),
        )
}

fn failed(body: Value) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn ok(_caller: Caller) -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn single_node(_caller: Caller) -> Json<Value> {
    Json(json!({"status": "ok", "reason": "single node cluster"}))
}

async fn alarms(State(m): State<Arc<Mgmt>>, _caller: Caller) -> Response {
    match *m.shared.alarm.borrow() {
        None => Json(json!({"status": "ok"})).into_response(),
        Some(which) => {
            let resource = if which == crate::server::alarm::LOW_ON_MEMORY {
                "memory"
            } else {
                "disk"
            };
            failed(json!({
                "status": "failed",
                "reason": "resource alarm(s) in effect in the cluster",
                "alarms": [{"node": m.node, "resource": resource}],
            }))
        }
    }
}

async fn port_listener(
    State(m): State<Arc<Mgmt>>,
    _caller: Caller,
    Path(port): Path<String>,
) -> ApiResult<Response> {
    let port: u16 = port
        .parse()
        .map_err(|_| ApiError::bad_request("Invalid port"))?;
    let ports: Vec<u16> = m.listeners.iter().map(|(_, a)| a.port()).collect();
    Ok(if ports.contains(&port) {
        Json(json!({"status": "ok", "port": port})).into_response()
    } else {
        failed(json!({
            "status": "failed", "reason": "No active listener", "missing": port, "ports": ports,
        }))
    })
}

async fn protocol_listener(
    State(m): State<Arc<Mgmt>>,
    _caller: Caller,
    Path(protocol): Path<String>,
) -> Response {
    let protocols: Vec<&str> = m.listeners.iter().map(|(p, _)| p.as_str()).collect();
    // RabbitMQ accepts a few spellings of each.
    let wanted = match protocol.as_str() {
        "amqp091" | "amqp0.9.1" | "amqp0-9-1" => "amqp",
        "amqps" | "amqp/ssl" => "amqp/ssl",
        "https" => "https",
        other => other,
    };
    if protocols.contains(&wanted) {
        Json(json!({"status": "ok", "protocol": wanted})).into_response()
    } else {
        failed(json!({
            "status": "failed", "reason": "No active listener", "missing": protocol,
            "protocols": protocols,
        }))
    }
}

/// Declares `aliveness-test` in the vhost, publishes a message to it and reads it back.
async fn aliveness(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult<Response> {
    caller.act_in_vhost(&m, &vhost)?;
    let v = m.broker.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    let name = ShortStr::from("aliveness-test");
    let (q, _, _) = v.declare_queue(QueueSpec {
        name: &name,
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        arguments: &FieldTable::new(),
        connection: 0,
        access: None,
    })?;
    publish(
        &v,
        "",
        "aliveness-test",
        &BasicProperties::default(),
        Bytes::from_static(b"test_message"),
    )?;
    let got = tokio::task::spawn_blocking(move || {
        let mut fx = crate::broker::effects::Effects::default();
        let got = q.get(&mut fx).map(|(qm, _)| qm.message.body.clone());
        fx.bells.ring();
        got
    })
    .await
    .ok()
    .flatten();
    Ok(match got {
        Some(body) if &body[..] == b"test_message" => Json(json!({"status": "ok"})).into_response(),
        _ => failed(json!({"status": "failed", "reason": "aliveness test message not received"})),
    })
}
