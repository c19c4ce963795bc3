//! The connection handshake: start/start-ok (SASL PLAIN or AMQPLAIN), tune/tune-ok, open.

use super::Shared;
use super::tls::TlsPeer;
use crate::broker::auth::{Access, LoginError, User};
use crate::broker::vhost::VHost;
use crate::protocol::frame::CodecError;
use crate::protocol::*;
use bytes::{BufMut, Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::warn;

/// What the handshake settled.
pub(crate) struct Handshake {
    pub user: Arc<User>,
    /// The user's access to the vhost, with its decision cache.
    pub access: Access,
    pub vhost: Arc<VHost>,
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
    pub cancel_notify: bool,
    pub blocked_notify: bool,
    /// On an `amqps` connection, the TLS client (and its verified certificate, if any).
    pub tls_peer: Option<TlsPeer>,
    /// The SASL mechanism used, and the client's properties (for the management API).
    pub mechanism: String,
    pub client_properties: FieldTable,
}

/// The RabbitMQ release whose behaviour Warren implements, reported as `version`.
pub const RABBITMQ_COMPATIBLE_VERSION: &str = "3.10.8";

/// connection.start with RabbitMQ's server properties and capabilities. A capability is
/// announced only when it works. `external`: offer SASL EXTERNAL too (a TLS client that
/// presented a certificate).
pub(crate) fn start_method(external: bool, cluster_name: &str) -> ConnectionStart {
    let mut caps = FieldTable::new();
    for (name, on) in [
        ("publisher_confirms", true),
        ("exchange_exchange_bindings", true),
        ("basic.nack", true),
        ("consumer_cancel_notify", true),
        ("connection.blocked", true),
        ("consumer_priorities", true),
        ("authentication_failure_close", true),
        ("per_consumer_qos", true),
        ("direct_reply_to", true),
    ] {
        caps.insert(name, on);
    }
    let mut props = FieldTable::new();
    // Clients and their test suites read `product` and `version` to tell which broker
    // they talk to and what it supports (amqplib's own suite asserts "RabbitMQ"): Warren
    // presents the RabbitMQ release whose behaviour it implements, and names itself in
    // `platform` and `information`.
    props.insert("product", "RabbitMQ");
    props.insert("version", RABBITMQ_COMPATIBLE_VERSION);
    props.insert(
        "platform",
        concat!("Warren ", env!("CARGO_PKG_VERSION"), " (Rust)"),
    );
    props.insert("copyright", "The Warren authors");
    props.insert(
        "information",
        concat!(
            "Warren ",
            env!("CARGO_PKG_VERSION"),
            ", an AMQP 0-9-1 broker compatible with RabbitMQ 3.10"
        ),
    );
    props.insert("cluster_name", cluster_name);
    props.insert("capabilities", caps);
    ConnectionStart {
        version_major: 0,
        version_minor: 9,
        server_properties: props,
        mechanisms: if external {
            "PLAIN AMQPLAIN EXTERNAL"
        } else {
            "PLAIN AMQPLAIN"
        }
        .into(),
        locales: "en_US".into(),
    }
}

/// Next non-heartbeat frame: RabbitMQ accepts heartbeat frames at any point of the
/// handshake.
async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    codec: &mut FrameCodec,
) -> Result<Frame, CodecError> {
    loop {
        match super::connection_read_frame(rd, buf, codec).await? {
            Frame::Heartbeat => continue,
            f => return Ok(f),
        }
    }
}

async fn send<W: AsyncWrite + Unpin>(wr: &mut W, method: Method) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    encode_method(&mut out, 0, &method);
    wr.write_all(&out).await?;
    wr.flush().await
}

/// Sends connection.close and gives the client a moment to answer. Logs the refusal
/// unless the caller already did (each refusal is logged once).
async fn refuse<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    wr: &mut W,
    rd: &mut R,
    buf: &mut BytesMut,
    codec: &mut FrameCodec,
    e: AmqpError,
    logged: bool,
) -> Result<Option<Handshake>, CodecError> {
    if !logged {
        warn!(code = e.code, text = %e.text, "refusing connection");
    }
    send(wr, e.connection_close()).await?;
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        super::connection_read_frame(rd, buf, codec),
    )
    .await;
    Ok(None)
}

pub(crate) fn credentials(mechanism: &[u8], response: &Bytes) -> Option<(String, String)> {
    match mechanism {
        b"PLAIN" => {
            let mut parts = response.split(|&b| b == 0);
            let _authzid = parts.next()?;
            let user = parts.next()?;
            let pass = parts.next()?;
            Some((
                String::from_utf8_lossy(user).into_owned(),
                String::from_utf8_lossy(pass).into_owned(),
            ))
        }
        b"AMQPLAIN" => {
            // A field table without its length prefix.
            let mut t = BytesMut::with_capacity(response.len() + 4);
            t.put_u32(response.len() as u32);
            t.put_slice(response);
            let table = table::decode_table(&t.freeze()).ok()?;
            let user = table.get("LOGIN")?.as_str()?.to_string();
            let pass = table.get("PASSWORD")?.as_str()?.to_string();
            Some((user, pass))
        }
        _ => None,
    }
}

pub(crate) async fn negotiate<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    rd: &mut R,
    wr: &mut W,
    buf: &mut BytesMut,
    codec: &mut FrameCodec,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    tls: Option<TlsPeer>,
) -> Result<Option<Handshake>, CodecError> {
    let cfg = &shared.config;
    let Frame::Method {
        channel: 0,
        method: Method::ConnectionStartOk(start_ok),
    } = read_frame(rd, buf, codec).await?
    else {
        return Ok(None);
    };
    let caps = match start_ok.client_properties.get("capabilities") {
        Some(FieldValue::Table(t)) => t.clone(),
        _ => FieldTable::new(),
    };
    let cap = |name: &str| caps.get(name).and_then(|v| v.as_bool()).unwrap_or(false);
    let mechanism = start_ok.mechanism.as_bytes().to_vec();
    let client_id = start_ok
        .client_properties
        .get("client_id")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let (name, login) = if mechanism == b"EXTERNAL" {
        // rabbitmq_auth_mechanism_ssl: the user is named by the verified client
        // certificate's subject CN; the response (an authorisation id) is ignored.
        let cn = tls.as_ref().and_then(|t| t.subject_cn.clone());
        let login = match &cn {
            Some(cn) => certificate_login(shared, cn, peer),
            None => Err(("no verified client certificate", None)),
        };
        (cn.unwrap_or_default(), login)
    } else {
        let Some((name, pass)) = credentials(&mechanism, &start_ok.response.0) else {
            warn!(mechanism = %start_ok.mechanism, "unsupported or malformed login");
            return Ok(None);
        };
        let login = login(shared, &name, &pass, peer);
        (name, login)
    };
    let user = match login {
        Ok(u) => u,
        Err((why, text)) => {
            warn!(user = %name, why, "login refused");
            if !cap("authentication_failure_close") {
                return Ok(None);
            }
            let text = text.unwrap_or_else(|| {
                format!(
                    "Login was refused using authentication mechanism {}. For details see the broker logfile.",
                    start_ok.mechanism
                )
            });
            return refuse(
                wr,
                rd,
                buf,
                codec,
                AmqpError::connection(reply_code::ACCESS_REFUSED, text),
                true,
            )
            .await;
        }
    };
    send(
        wr,
        ConnectionTune {
            channel_max: cfg.amqp.channel_max,
            frame_max: cfg.amqp.frame_max,
            heartbeat: cfg.amqp.heartbeat,
        }
        .into(),
    )
    .await?;
    let Frame::Method {
        channel: 0,
        method: Method::ConnectionTuneOk(tune),
    } = read_frame(rd, buf, codec).await?
    else {
        return Ok(None);
    };
    // RabbitMQ's rule: 0 means "no limit", which is higher than any server limit; a
    // value above the server's limit (or a frame_max below the minimum) fails the
    // negotiation, and the socket is dropped without a connection.close.
    let exceeds = |client: u32, server: u32| server != 0 && (client == 0 || client > server);
    let frame_max = tune.frame_max;
    if (frame_max != 0 && frame_max < FRAME_MIN_SIZE) || exceeds(frame_max, cfg.amqp.frame_max) {
        warn!(
            frame_max,
            server_frame_max = cfg.amqp.frame_max,
            "client proposed an unacceptable frame_max, closing: configure the client for \
             {FRAME_MIN_SIZE}..=amqp.frame_max, or raise amqp.frame_max"
        );
        return Ok(None);
    }
    if exceeds(tune.channel_max.into(), cfg.amqp.channel_max.into()) {
        warn!(
            channel_max = tune.channel_max,
            server_channel_max = cfg.amqp.channel_max,
            "client proposed an unacceptable channel_max, closing: configure the client \
             for at most amqp.channel_max, or raise amqp.channel_max"
        );
        return Ok(None);
    }
    let frame_max = if frame_max == 0 {
        cfg.amqp.frame_max
    } else {
        frame_max
    };
    let channel_max = match tune.channel_max {
        0 => cfg.amqp.channel_max,
        n => n,
    };
    codec.set_frame_max(frame_max);
    let open = match read_frame(rd, buf, codec).await? {
        Frame::Method {
            channel: 0,
            method: Method::ConnectionOpen(open),
        } => open,
        Frame::Method { channel: 0, method } => {
            let e = AmqpError::connection(
                reply_code::CHANNEL_ERROR,
                "unexpected method in connection state opening",
            )
            .caused_by(&method);
            return refuse(wr, rd, buf, codec, e, false).await;
        }
        _ => return Ok(None),
    };
    let vhost_name = String::from_utf8_lossy(open.virtual_host.as_bytes()).into_owned();
    let (vhost, access) = match open_vhost(shared, &user, &vhost_name, &client_id) {
        Ok(ok) => ok,
        Err(text) => {
            let e = AmqpError::connection(reply_code::NOT_ALLOWED, text).on(10, 40);
            return refuse(wr, rd, buf, codec, e, false).await;
        }
    };
    send(wr, ConnectionOpenOk {}.into()).await?;
    Ok(Some(Handshake {
        user,
        access,
        vhost,
        channel_max,
        frame_max,
        heartbeat: tune.heartbeat,
        cancel_notify: cap("consumer_cancel_notify"),
        blocked_notify: cap("connection.blocked"),
        tls_peer: tls,
        mechanism: String::from_utf8_lossy(&mechanism).into_owned(),
        client_properties: start_ok.client_properties.clone(),
    }))
}

/// Checks a password login against the user database and `auth.loopback_users`. The
/// error says why (for the log) and, when given, the text is what the client hears instead of RabbitMQ's generic
/// refusal; the generic one never says whether the user exists.
pub(crate) fn login(
    shared: &Shared,
    name: &str,
    pass: &str,
    peer: SocketAddr,
) -> Result<Arc<User>, (&'static str, Option<String>)> {
    let user = shared.broker.auth.login(name, pass).map_err(|e| {
        let why = match e {
            LoginError::NoSuchUser => "no such user",
            LoginError::WrongPassword => "wrong password",
            LoginError::NoPassword => "user has no password (certificate login only)",
        };
        (why, None)
    })?;
    check_loopback(shared, user, peer)
}

/// SASL EXTERNAL: the certificate was verified by the TLS layer; the user it names must
/// exist (password or not), as with RabbitMQ's internal backend.
fn certificate_login(
    shared: &Shared,
    name: &str,
    peer: SocketAddr,
) -> Result<Arc<User>, (&'static str, Option<String>)> {
    let user = shared
        .broker
        .auth
        .user(name)
        .ok_or(("no user named by the certificate", None))?;
    check_loopback(shared, user, peer)
}

/// `auth.loopback_users` may connect only from a loopback address.
fn check_loopback(
    shared: &Shared,
    user: Arc<User>,
    peer: SocketAddr,
) -> Result<Arc<User>, (&'static str, Option<String>)> {
    // On a dual-stack listener ("[::]:5672", RabbitMQ's default) IPv4 clients arrive as
    // IPv4-mapped addresses (::ffff:127.0.0.1); like RabbitMQ, judge those as IPv4.
    let loopback_only = shared
        .config
        .auth
        .loopback_users
        .iter()
        .any(|u| *u == user.name);
    if loopback_only && !peer.ip().to_canonical().is_loopback() {
        return Err((
            "loopback only",
            Some(format!(
                "User '{}' can only connect via localhost",
                user.name
            )),
        ));
    }
    Ok(user)
}

/// connection.open's checks, in RabbitMQ's order: the vhost exists, its connection
/// limit, the user's connection limit, then the user's access to the vhost. Each refusal
/// is 530 NOT_ALLOWED with RabbitMQ's text.
pub(crate) fn open_vhost(
    shared: &Shared,
    user: &Arc<User>,
    vhost: &str,
    client_id: &str,
) -> Result<(Arc<VHost>, Access), String> {
    let broker = &shared.broker;
    let v = broker
        .vhost(vhost)
        .ok_or_else(|| format!("vhost {vhost} not found"))?;
    let max = v.limit("max-connections");
    if max.reached(v.connections.load(std::sync::atomic::Ordering::Relaxed)) {
        return Err(format!(
            "access to vhost '{vhost}' refused for user '{}': connection limit ({}) is reached",
            user.name,
            max.0.unwrap_or(0)
        ));
    }
    let usage = broker.auth.usage(&user.name);
    if user
        .max_connections
        .reached(usage.connections.load(std::sync::atomic::Ordering::Relaxed))
    {
        return Err(format!(
            "connection refused for user '{}': user connection limit ({}) is reached",
            user.name,
            user.max_connections.0.unwrap_or(0)
        ));
    }
    let mut access = Access::new(broker.auth.clone(), user.clone(), vhost, client_id);
    if !access.may_open() {
        return Err(format!(
            "access to vhost '{vhost}' refused for user '{}'",
            user.name
        ));
    }
    Ok((v, access))
}
