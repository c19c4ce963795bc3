//! `bindings`, `bindings/{vhost}`, `bindings/{vhost}/e/{source}/{q|e}/{destination}`
//! (GET, POST) and `.../{props}` (GET, DELETE), with RabbitMQ's `properties_key`: the
//! routing key URL-quoted ("~" when empty), followed by "~" and a hash of the arguments
//! when there are any. (RabbitMQ hashes the arguments' Erlang term; Warren hashes their
//! JSON. Clients read the key from listings or the Location header, never compute it.)

use super::Mgmt;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::exchanges::path_name;
use super::listing::{Params, list};
use super::messages::body_json;
use crate::broker::auth::{Access, Perm, ResourceKind};
use crate::broker::definitions_json::{json_to_table, table_to_json};
use crate::broker::exchange::Destination;
use crate::broker::vhost::VHost;
use crate::protocol::{FieldTable, ShortStr};
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Value, json};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Mgmt>> {
    Router::new()
        .route("/api/bindings", get(all))
        .route("/api/bindings/{vhost}", get(in_vhost))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}",
            get(between).post(create),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}",
            get(one).delete(remove),
        )
}

/// mochiweb's `quote_plus`, as RabbitMQ's API quotes path segments ("~" stays).
fn quote_plus(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// RabbitMQ's `quote_binding`: `quote_plus`, then "~" escaped, since "~" separates the
/// routing key from the arguments' hash in a properties key.
fn quote(s: &str) -> String {
    quote_plus(s).replace('~', "%7E")
}

fn args_hash(args: &FieldTable) -> String {
    let text = table_to_json(args).to_string();
    let crc = crc32fast::hash(text.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crc.to_be_bytes())
}

pub(super) fn properties_key(routing_key: &str, args: &FieldTable) -> String {
    match (routing_key.is_empty(), args.is_empty()) {
        (true, true) => "~".to_string(),
        (false, true) => quote(routing_key),
        _ => format!("{}~{}", quote(routing_key), args_hash(args)),
    }
}

fn binding_json(
    vhost: &str,
    source: &str,
    dest: &str,
    dest_kind: &str,
    rk: &str,
    args: &FieldTable,
) -> Value {
    json!({
        "source": source,
        "vhost": vhost,
        "destination": dest,
        "destination_type": dest_kind,
        "routing_key": rk,
        "arguments": table_to_json(args),
        "properties_key": properties_key(rk, args),
    })
}

/// Every binding of a vhost, the default exchange's implicit ones first (one per queue,
/// keyed by its name), as RabbitMQ lists them.
fn vhost_bindings(v: &VHost) -> Vec<Value> {
    let empty = FieldTable::new();
    let mut out: Vec<Value> = v
        .queues()
        .iter()
        .map(|q| {
            let n = q.name.to_string();
            binding_json(&v.name, "", &n, "queue", &n, &empty)
        })
        .collect();
    for e in v.exchanges() {
        let source = e.name.to_string();
        for b in e.bindings() {
            let (dest, kind) = match &b.destination {
                Destination::Queue(q) => (q.name.to_string(), "queue"),
                Destination::Exchange(x) => (x.name.to_string(), "exchange"),
            };
            out.push(binding_json(
                &v.name,
                &source,
                &dest,
                kind,
                &b.routing_key.to_string(),
                &b.arguments,
            ));
        }
    }
    out
}

async fn all(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    let items = m
        .broker
        .vhosts()
        .iter()
        .filter(|v| caller.sees_objects_in(&m, &v.name))
        .flat_map(|v| vhost_bindings(v))
        .collect();
    list(items, &p)
}

async fn in_vhost(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    caller.read_vhost_objects(&m, &vhost)?;
    let v = m.broker.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    list(vhost_bindings(&v), &p)
}

fn filtered(
    m: &Mgmt,
    caller: &Caller,
    vhost: &str,
    keep: impl Fn(&Value) -> bool,
) -> ApiResult<Vec<Value>> {
    caller.read_vhost_objects(m, vhost)?;
    let v = m.broker.vhost(vhost).ok_or_else(ApiError::not_found)?;
    Ok(vhost_bindings(&v).into_iter().filter(|b| keep(b)).collect())
}

pub(super) async fn of_queue(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    super::queues::find(&m, &vhost, &name)?;
    let items = filtered(&m, &caller, &vhost, |b| {
        b["destination"] == name.as_str() && b["destination_type"] == "queue"
    })?;
    list(items, &p)
}

pub(super) async fn from_exchange(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    super::exchanges::find(&m, &vhost, &name)?;
    let source = path_name(&name).to_string();
    let items = filtered(&m, &caller, &vhost, |b| b["source"] == source.as_str())?;
    list(items, &p)
}

pub(super) async fn to_exchange(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    super::exchanges::find(&m, &vhost, &name)?;
    let items = filtered(&m, &caller, &vhost, |b| {
        b["destination"] == name.as_str() && b["destination_type"] == "exchange"
    })?;
    list(items, &p)
}

fn dest_kind(kind: &str) -> ApiResult<&'static str> {
    match kind {
        "q" => Ok("queue"),
        "e" => Ok("exchange"),
        _ => Err(ApiError::not_found()),
    }
}

async fn between(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, source, kind, dest)): Path<(String, String, String, String)>,
    Query(p): Query<Params>,
) -> ApiResult<Json<Value>> {
    let kind = dest_kind(&kind)?;
    let source = path_name(&source).to_string();
    let items = filtered(&m, &caller, &vhost, |b| {
        b["source"] == source.as_str()
            && b["destination"] == dest.as_str()
            && b["destination_type"] == kind
    })?;
    list(items, &p)
}

async fn one(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, source, kind, dest, props)): Path<(String, String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    let kind = dest_kind(&kind)?;
    let source = path_name(&source).to_string();
    filtered(&m, &caller, &vhost, |b| {
        b["source"] == source.as_str()
            && b["destination"] == dest.as_str()
            && b["destination_type"] == kind
            && b["properties_key"] == props.as_str()
    })?
    .into_iter()
    .next()
    .map(Json)
    .ok_or_else(ApiError::not_found)
}

/// The destination a path names, with the permission RabbitMQ checks on it (write on
/// the destination, read on the source).
fn resolve(
    m: &Mgmt,
    caller: &Caller,
    vhost: &str,
    source: &str,
    kind: &str,
    dest: &str,
) -> ApiResult<(Arc<VHost>, Destination)> {
    caller.act_in_vhost(m, vhost)?;
    let v = m.broker.vhost(vhost).ok_or_else(ApiError::not_found)?;
    let mut access = Access::new(m.broker.auth.clone(), caller.user.clone(), vhost, "");
    let d = match dest_kind(kind)? {
        "queue" => {
            access.check(Perm::Write, ResourceKind::Queue, dest.as_bytes())?;
            Destination::Queue(v.existing_queue(&ShortStr::from(dest), 0).map_err(|_| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no queue '{dest}' in vhost '{vhost}'"),
                )
            })?)
        }
        _ => {
            access.check(Perm::Write, ResourceKind::Exchange, dest.as_bytes())?;
            Destination::Exchange(v.existing_exchange(&ShortStr::from(path_name(dest)))?)
        }
    };
    access.check(Perm::Read, ResourceKind::Exchange, source.as_bytes())?;
    Ok((v, d))
}

/// `rabbit_web_dispatch_util:relativise/2`: the path `to` relative to `from`.
fn relativise(from: &str, to: &str) -> String {
    let from: Vec<&str> = from.split('/').filter(|s| !s.is_empty()).collect();
    let to: Vec<&str> = to.split('/').filter(|s| !s.is_empty()).collect();
    let (mut f, mut t) = (&from[..], &to[..]);
    loop {
        match (f, t) {
            ([a], [b, ..]) if a == b => return t.join("/"),
            ([a, fr @ ..], [b, tr @ ..]) if a == b => (f, t) = (fr, tr),
            (_, []) => return vec![".."; f.len()].join("/"),
            ([_, fr @ ..], _) => {
                let mut out = vec![".."; fr.len()];
                out.extend_from_slice(t);
                return out.join("/");
            }
            ([], _) => return t.join("/"),
        }
    }
}

async fn create(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Path((vhost, source, kind, dest)): Path<(String, String, String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let req = body_json(&body)?;
    let rk = match req.get("routing_key") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(ApiError::bad_request("routing_key must be a string")),
    };
    let args = json_to_table(req.get("arguments").unwrap_or(&Value::Null))
        .map_err(ApiError::bad_request)?;
    let source = path_name(&source).to_string();
    let (v, d) = resolve(&m, &caller, &vhost, &source, &kind, &dest)?;
    v.check_binding_ends(&ShortStr::from(source.as_str()), None)?;
    v.bind(
        &ShortStr::from(source.as_str()),
        d,
        &ShortStr::from(rk),
        &args,
    )?;
    // RabbitMQ's Location: the new binding's path, each segment quoted (the properties
    // key once more), made relative to the path of the request as it was sent.
    let target = format!(
        "/api/bindings/{}/e/{}/{kind}/{}/{}",
        quote_plus(&vhost),
        quote_plus(&source),
        quote_plus(&dest),
        quote_plus(&properties_key(rk, &args))
    );
    let location = relativise(uri.path(), &target);
    let mut r = StatusCode::CREATED.into_response();
    if let Ok(h) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, h);
    }
    Ok(r)
}

async fn remove(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, source, kind, dest, props)): Path<(String, String, String, String, String)>,
) -> ApiResult<StatusCode> {
    let source = path_name(&source).to_string();
    let (v, d) = resolve(&m, &caller, &vhost, &source, &kind, &dest)?;
    let ex = v
        .exchange(source.as_bytes())
        .ok_or_else(ApiError::not_found)?;
    let found = ex
        .bindings()
        .into_iter()
        .find(|b| {
            b.destination == d && properties_key(&b.routing_key.to_string(), &b.arguments) == props
        })
        .ok_or_else(ApiError::not_found)?;
    v.unbind(
        &ShortStr::from(source.as_str()),
        d,
        &found.routing_key,
        &found.arguments,
        || Ok(()),
    )?;
    Ok(StatusCode::NO_CONTENT)
}
