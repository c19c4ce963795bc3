//! Before a stream connection is open: peer properties, SASL (PLAIN, AMQPLAIN against
//! Warren's users, `auth.loopback_users` applied), tune and open (the vhost's checks,
//! as the AMQP port's connection.open). Frames are limited to 8192 octets until open
//! succeeds. A failure answers with its response code and ends the connection, as
//! RabbitMQ's reader does (`connection_step = failure`).

use super::Ctx;
use crate::broker::auth::{Access, User};
use crate::broker::connections::{ConnectionInfo, STREAM_PROTOCOL};
use crate::broker::vhost::VHost;
use crate::protocol::stream::{ClientCommand, FrameCodec, ServerCommand, Str, code};
use crate::protocol::{FieldTable, FieldValue, LongStr};
use crate::server::connection::Presence;
use crate::server::handshake::{RABBITMQ_COMPATIBLE_VERSION, credentials, login, open_vhost};
use crate::server::tls::TlsPeer;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, warn};

/// What an open connection settled.
pub(crate) struct Opened {
    pub user: Arc<User>,
    pub access: Access,
    pub vhost: Arc<VHost>,
    /// In the broker's registry (and the vhost's and user's connection counts) from
    /// open on: listed by the management API, closed by it or by deleting the user or
    /// vhost.
    pub presence: Presence,
    /// Negotiated (0: no limit).
    pub frame_max: u32,
    pub heartbeat: u32,
    pub client_name: String,
}

/// Mechanisms offered, as RabbitMQ 3.10's defaults.
const MECHANISMS: [&str; 2] = ["PLAIN", "AMQPLAIN"];

async fn next<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    codec: &mut FrameCodec,
) -> Option<ClientCommand> {
    loop {
        match codec.decode_frame(buf) {
            Ok(Some(frame)) => match ClientCommand::decode(frame) {
                Ok(ClientCommand::Heartbeat) => continue,
                Ok(c) => return Some(c),
                Err(e) => {
                    debug!(error = %e, "unparsable frame before open, closing");
                    return None;
                }
            },
            Ok(None) => {}
            Err(e) => {
                warn!(error = %e, "frame too large before open, closing");
                return None;
            }
        }
        match rd.read_buf(buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn send<W: AsyncWrite + Unpin>(wr: &mut W, cmd: ServerCommand) -> Option<()> {
    let mut out = BytesMut::new();
    cmd.encode(&mut out);
    wr.write_all(&out).await.ok()?;
    // TLS keeps records buffered until flushed.
    wr.flush().await.ok()
}

fn s(v: &str) -> Str {
    Str::from(v)
}

/// Runs the handshake; None when the connection is to be closed (already answered).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn negotiate<R, W>(
    ctx: &Arc<Ctx>,
    rd: &mut R,
    wr: &mut W,
    buf: &mut BytesMut,
    codec: &mut FrameCodec,
    (peer, local): (SocketAddr, SocketAddr),
    tls: Option<TlsPeer>,
    id: u64,
) -> Option<Opened>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let cfg = &ctx.shared.config.stream;
    let mut user: Option<Arc<User>> = None;
    let mut tuned: Option<(u32, u32)> = None;
    let mut client_name = String::new();
    let mut client_properties = FieldTable::new();
    let mut auth_mechanism = String::new();
    loop {
        match next(rd, buf, codec).await? {
            ClientCommand::PeerProperties {
                correlation_id,
                properties,
            } => {
                if let Some((_, v)) = properties
                    .iter()
                    .find(|(k, _)| k.as_bytes() == b"connection_name")
                {
                    client_name = v.to_string_lossy().into_owned();
                }
                // As RabbitMQ lists them: every property a string.
                client_properties = FieldTable::new();
                for (k, v) in &properties {
                    client_properties.insert(
                        k.to_string_lossy().into_owned(),
                        FieldValue::LongStr(LongStr::from(v.to_string_lossy().as_ref())),
                    );
                }
                let cluster = ctx.shared.cluster_name();
                let properties = vec![
                    (s("product"), s("RabbitMQ")),
                    (s("version"), s(RABBITMQ_COMPATIBLE_VERSION)),
                    (s("cluster_name"), s(&cluster)),
                    (
                        s("platform"),
                        s(concat!("Warren ", env!("CARGO_PKG_VERSION"), " (Rust)")),
                    ),
                    (s("copyright"), s("The Warren authors")),
                    (
                        s("information"),
                        s(concat!("Warren ", env!("CARGO_PKG_VERSION"))),
                    ),
                ];
                send(
                    wr,
                    ServerCommand::PeerPropertiesResponse {
                        correlation_id,
                        code: code::OK,
                        properties,
                    },
                )
                .await?;
            }
            ClientCommand::SaslHandshake { correlation_id } => {
                send(
                    wr,
                    ServerCommand::SaslHandshakeResponse {
                        correlation_id,
                        code: code::OK,
                        mechanisms: MECHANISMS.iter().map(|m| s(m)).collect(),
                    },
                )
                .await?;
            }
            ClientCommand::SaslAuthenticate {
                correlation_id,
                mechanism,
                data,
            } => {
                let reply = |code| ServerCommand::SaslAuthenticateResponse {
                    correlation_id,
                    code,
                    challenge: bytes::Bytes::new(),
                };
                if !MECHANISMS.iter().any(|m| mechanism == *m) {
                    warn!(mechanism = %mechanism, "unsupported SASL mechanism");
                    send(wr, reply(code::SASL_MECHANISM_NOT_SUPPORTED)).await?;
                    return None;
                }
                let Some((name, pass)) = credentials(mechanism.as_bytes(), &data) else {
                    warn!(mechanism = %mechanism, "malformed SASL response");
                    send(wr, reply(code::SASL_ERROR)).await?;
                    return None;
                };
                match login(&ctx.shared, &name, &pass, peer) {
                    Ok(u) => {
                        user = Some(u);
                        auth_mechanism = mechanism.to_string_lossy().into_owned();
                        send(wr, reply(code::OK)).await?;
                        send(
                            wr,
                            ServerCommand::Tune {
                                frame_max: cfg.frame_max,
                                heartbeat: cfg.heartbeat,
                            },
                        )
                        .await?;
                    }
                    Err((why, text)) => {
                        warn!(user = %name, why, "login refused");
                        let c = if text.is_some() {
                            code::SASL_AUTHENTICATION_FAILURE_LOOPBACK
                        } else {
                            code::AUTHENTICATION_FAILURE
                        };
                        send(wr, reply(c)).await?;
                        return None;
                    }
                }
            }
            ClientCommand::Tune {
                frame_max,
                heartbeat,
            } if user.is_some() => {
                // 0 on either side is "no limit": the other side's value holds.
                let min = |a: u32, b: u32| match (a, b) {
                    (0, x) | (x, 0) => x,
                    (a, b) => a.min(b),
                };
                tuned = Some((min(frame_max, cfg.frame_max), min(heartbeat, cfg.heartbeat)));
            }
            ClientCommand::Open {
                correlation_id,
                vhost,
            } if user.is_some() => {
                let u = user.clone()?;
                let name = vhost.to_string_lossy().into_owned();
                match open_vhost(&ctx.shared, &u, &name, "") {
                    Ok((vhost, access)) => {
                        let (frame_max, heartbeat) =
                            tuned.unwrap_or((cfg.frame_max, cfg.heartbeat));
                        // Counted (vhost and user limits) and listed before the client
                        // hears OK, as AMQP's connection.open.
                        let info = ConnectionInfo {
                            peer,
                            local,
                            protocol: STREAM_PROTOCOL,
                            auth_mechanism: std::mem::take(&mut auth_mechanism),
                            client_properties: std::mem::take(&mut client_properties),
                            frame_max,
                            channel_max: 0,
                            timeout: heartbeat.min(u16::MAX.into()) as u16,
                            tls: tls.as_ref().map(|t| t.protocol.clone().unwrap_or_default()),
                            peer_cert_subject: tls.as_ref().and_then(|t| t.subject_dn.clone()),
                            connected_at: std::time::SystemTime::now(),
                        };
                        let presence = Presence::new(&ctx.shared, id, &u.name, &vhost, info);
                        let properties = vec![
                            (s("advertised_host"), s(&ctx.advertised_host)),
                            (s("advertised_port"), s(&ctx.advertised_port.to_string())),
                        ];
                        send(
                            wr,
                            ServerCommand::OpenResponse {
                                correlation_id,
                                code: code::OK,
                                properties,
                            },
                        )
                        .await?;
                        return Some(Opened {
                            user: u,
                            access,
                            vhost,
                            presence,
                            frame_max,
                            heartbeat,
                            client_name,
                        });
                    }
                    Err(text) => {
                        warn!(user = %u.name, vhost = %name, reason = %text, "open refused");
                        send(
                            wr,
                            ServerCommand::OpenResponse {
                                correlation_id,
                                code: code::VIRTUAL_HOST_ACCESS_FAILURE,
                                properties: Vec::new(),
                            },
                        )
                        .await?;
                        return None;
                    }
                }
            }
            ClientCommand::Close { correlation_id, .. } => {
                send(
                    wr,
                    ServerCommand::CloseResponse {
                        correlation_id,
                        code: code::OK,
                    },
                )
                .await?;
                return None;
            }
            other => {
                warn!(command = ?other, "unexpected command before open, closing");
                return None;
            }
        }
    }
}
