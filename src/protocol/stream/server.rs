//! What the server sends: [`ServerCommand`], encoded by the server and decoded by
//! clients (Warren's tests and tools). The two hot ones have encoders of their own that
//! build nothing first: [`encode_publish_confirm`] and [`encode_deliver_prefix`] (a Deliver
//! frame's head, so that the chunk can follow straight from its segment file).

use super::client::CommandVersion;
use super::codes::{RESPONSE_BIT, code, key};
use super::wire::{Reader, Res, Str, StreamError, frame, put_bytes, put_map, put_str, put_strings};
use bytes::{BufMut, Bytes, BytesMut};

/// A broker in a metadata response: clients connect to `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub reference: u16,
    pub host: Str,
    pub port: u32,
}

/// A stream in a metadata response. For a stream that does not exist (or may not be
/// seen), `code` says why, `leader` is 0xffff and `replicas` is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMetadata {
    pub stream: Str,
    pub code: u16,
    pub leader: u16,
    pub replicas: Vec<u16>,
}

/// Every frame the server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCommand {
    PeerPropertiesResponse {
        correlation_id: u32,
        code: u16,
        properties: Vec<(Str, Str)>,
    },
    SaslHandshakeResponse {
        correlation_id: u32,
        code: u16,
        mechanisms: Vec<Str>,
    },
    /// `challenge` is sent only when non-empty.
    SaslAuthenticateResponse {
        correlation_id: u32,
        code: u16,
        challenge: Bytes,
    },
    /// The server's tune (a request; the client answers with its own).
    Tune {
        frame_max: u32,
        heartbeat: u32,
    },
    /// `properties` (advertised host and port) are sent only with OK, and then always
    /// with their count, which clients read whenever the code is OK.
    OpenResponse {
        correlation_id: u32,
        code: u16,
        properties: Vec<(Str, Str)>,
    },
    /// A close the server starts (bad frame, forced close...).
    Close {
        correlation_id: u32,
        code: u16,
        reason: Str,
    },
    CloseResponse {
        correlation_id: u32,
        code: u16,
    },
    Heartbeat,
    /// A response that carries only a code: DeclarePublisher, DeletePublisher,
    /// Subscribe, Unsubscribe, Create, Delete, CreateSuperStream, DeleteSuperStream. `key` is the request's key.
    Response {
        key: u16,
        correlation_id: u32,
        code: u16,
    },
    QueryPublisherSequenceResponse {
        correlation_id: u32,
        code: u16,
        sequence: u64,
    },
    QueryOffsetResponse {
        correlation_id: u32,
        code: u16,
        offset: u64,
    },
    MetadataResponse {
        correlation_id: u32,
        brokers: Vec<Broker>,
        streams: Vec<StreamMetadata>,
    },
    MetadataUpdate {
        code: u16,
        stream: Str,
    },
    PublishConfirm {
        publisher_id: u8,
        publishing_ids: Vec<u64>,
    },
    PublishError {
        publisher_id: u8,
        /// (publishing id, code)
        errors: Vec<(u64, u16)>,
    },
    /// A whole Deliver frame (the server writes only its head with
    /// [`encode_deliver_prefix`]; this variant is for clients and tests). Version 2
    /// carries the committed chunk id.
    Deliver {
        subscription_id: u8,
        committed_chunk_id: Option<u64>,
        chunk: Bytes,
    },
    /// Sent only for a problem (credit for an unknown subscription); no correlation id.
    CreditResponse {
        code: u16,
        subscription_id: u8,
    },
    /// Single active consumer: tells a consumer it became active or inactive.
    ConsumerUpdate {
        correlation_id: u32,
        subscription_id: u8,
        active: bool,
    },
    RouteResponse {
        correlation_id: u32,
        code: u16,
        streams: Vec<Str>,
    },
    PartitionsResponse {
        correlation_id: u32,
        code: u16,
        streams: Vec<Str>,
    },
    ExchangeCommandVersionsResponse {
        correlation_id: u32,
        code: u16,
        versions: Vec<CommandVersion>,
    },
    StreamStatsResponse {
        correlation_id: u32,
        code: u16,
        stats: Vec<(Str, i64)>,
    },
}

/// Keys whose response is [`ServerCommand::Response`].
const CODE_ONLY: [u16; 8] = [
    key::DECLARE_PUBLISHER,
    key::DELETE_PUBLISHER,
    key::SUBSCRIBE,
    key::UNSUBSCRIBE,
    key::CREATE,
    key::DELETE,
    key::CREATE_SUPER_STREAM,
    key::DELETE_SUPER_STREAM,
];

/// Octets of a Deliver frame before the chunk: size, key, version, subscription id and,
/// in version 2, the committed chunk id.
pub const fn deliver_prefix_len(v2: bool) -> usize {
    if v2 { 4 + 4 + 1 + 8 } else { 4 + 4 + 1 }
}

/// Writes the head of a Deliver frame for a chunk of `chunk_len` octets (its header,
/// entries and trailer, as the segment file holds them); the caller sends exactly those
/// octets next. Version 2 (with `committed_chunk_id`) is for clients that announced it in
/// ExchangeCommandVersions.
pub fn encode_deliver_prefix(
    buf: &mut BytesMut,
    subscription_id: u8,
    committed_chunk_id: Option<u64>,
    chunk_len: u32,
) {
    let head = deliver_prefix_len(committed_chunk_id.is_some()) as u32 - 4;
    buf.put_u32(head + chunk_len);
    buf.put_u16(key::DELIVER);
    match committed_chunk_id {
        Some(id) => {
            buf.put_u16(2);
            buf.put_u8(subscription_id);
            buf.put_u64(id);
        }
        None => {
            buf.put_u16(1);
            buf.put_u8(subscription_id);
        }
    }
}

/// One PublishConfirm for a batch of publishing ids.
pub fn encode_publish_confirm(buf: &mut BytesMut, publisher_id: u8, ids: &[u64]) {
    frame(buf, key::PUBLISH_CONFIRM, 1, |b| {
        b.put_u8(publisher_id);
        b.put_u32(ids.len() as u32);
        for id in ids {
            b.put_u64(*id);
        }
    });
}

/// One PublishError for a batch of publishing ids refused with the same code.
pub fn encode_publish_error(buf: &mut BytesMut, publisher_id: u8, code: u16, ids: &[u64]) {
    frame(buf, key::PUBLISH_ERROR, 1, |b| {
        b.put_u8(publisher_id);
        b.put_u32(ids.len() as u32);
        for id in ids {
            b.put_u64(*id);
            b.put_u16(code);
        }
    });
}

fn response(buf: &mut BytesMut, k: u16, correlation_id: u32, body: impl FnOnce(&mut BytesMut)) {
    frame(buf, k | RESPONSE_BIT, 1, |b| {
        b.put_u32(correlation_id);
        body(b);
    });
}

impl ServerCommand {
    /// Encodes the frame, size prefix included.
    pub fn encode(&self, buf: &mut BytesMut) {
        use ServerCommand as S;
        match self {
            S::PeerPropertiesResponse {
                correlation_id,
                code,
                properties,
            } => response(buf, key::PEER_PROPERTIES, *correlation_id, |b| {
                b.put_u16(*code);
                put_map(b, properties);
            }),
            S::SaslHandshakeResponse {
                correlation_id,
                code,
                mechanisms,
            } => response(buf, key::SASL_HANDSHAKE, *correlation_id, |b| {
                b.put_u16(*code);
                put_strings(b, mechanisms);
            }),
            S::SaslAuthenticateResponse {
                correlation_id,
                code,
                challenge,
            } => response(buf, key::SASL_AUTHENTICATE, *correlation_id, |b| {
                b.put_u16(*code);
                if !challenge.is_empty() {
                    put_bytes(b, challenge);
                }
            }),
            S::Tune {
                frame_max,
                heartbeat,
            } => frame(buf, key::TUNE, 1, |b| {
                b.put_u32(*frame_max);
                b.put_u32(*heartbeat);
            }),
            S::OpenResponse {
                correlation_id,
                code: c,
                properties,
            } => response(buf, key::OPEN, *correlation_id, |b| {
                b.put_u16(*c);
                if *c == code::OK {
                    put_map(b, properties);
                }
            }),
            S::Close {
                correlation_id,
                code,
                reason,
            } => frame(buf, key::CLOSE, 1, |b| {
                b.put_u32(*correlation_id);
                b.put_u16(*code);
                put_str(b, reason.as_bytes());
            }),
            S::CloseResponse {
                correlation_id,
                code,
            } => response(buf, key::CLOSE, *correlation_id, |b| b.put_u16(*code)),
            S::Heartbeat => frame(buf, key::HEARTBEAT, 1, |_| {}),
            S::Response {
                key,
                correlation_id,
                code,
            } => response(buf, *key, *correlation_id, |b| b.put_u16(*code)),
            S::QueryPublisherSequenceResponse {
                correlation_id,
                code,
                sequence,
            } => response(buf, key::QUERY_PUBLISHER_SEQUENCE, *correlation_id, |b| {
                b.put_u16(*code);
                b.put_u64(*sequence);
            }),
            S::QueryOffsetResponse {
                correlation_id,
                code,
                offset,
            } => response(buf, key::QUERY_OFFSET, *correlation_id, |b| {
                b.put_u16(*code);
                b.put_u64(*offset);
            }),
            S::MetadataResponse {
                correlation_id,
                brokers,
                streams,
            } => response(buf, key::METADATA, *correlation_id, |b| {
                b.put_u32(brokers.len() as u32);
                for br in brokers {
                    b.put_u16(br.reference);
                    put_str(b, br.host.as_bytes());
                    b.put_u32(br.port);
                }
                b.put_u32(streams.len() as u32);
                for s in streams {
                    put_str(b, s.stream.as_bytes());
                    b.put_u16(s.code);
                    b.put_u16(s.leader);
                    b.put_u32(s.replicas.len() as u32);
                    for r in &s.replicas {
                        b.put_u16(*r);
                    }
                }
            }),
            S::MetadataUpdate { code, stream } => frame(buf, key::METADATA_UPDATE, 1, |b| {
                b.put_u16(*code);
                put_str(b, stream.as_bytes());
            }),
            S::PublishConfirm {
                publisher_id,
                publishing_ids,
            } => encode_publish_confirm(buf, *publisher_id, publishing_ids),
            S::PublishError {
                publisher_id,
                errors,
            } => frame(buf, key::PUBLISH_ERROR, 1, |b| {
                b.put_u8(*publisher_id);
                b.put_u32(errors.len() as u32);
                for (id, code) in errors {
                    b.put_u64(*id);
                    b.put_u16(*code);
                }
            }),
            S::Deliver {
                subscription_id,
                committed_chunk_id,
                chunk,
            } => {
                encode_deliver_prefix(
                    buf,
                    *subscription_id,
                    *committed_chunk_id,
                    chunk.len() as u32,
                );
                buf.put_slice(chunk);
            }
            S::CreditResponse {
                code,
                subscription_id,
            } => frame(buf, key::CREDIT | RESPONSE_BIT, 1, |b| {
                b.put_u16(*code);
                b.put_u8(*subscription_id);
            }),
            S::ConsumerUpdate {
                correlation_id,
                subscription_id,
                active,
            } => frame(buf, key::CONSUMER_UPDATE, 1, |b| {
                b.put_u32(*correlation_id);
                b.put_u8(*subscription_id);
                b.put_u8(u8::from(*active));
            }),
            S::RouteResponse {
                correlation_id,
                code,
                streams,
            } => response(buf, key::ROUTE, *correlation_id, |b| {
                b.put_u16(*code);
                put_strings(b, streams);
            }),
            S::PartitionsResponse {
                correlation_id,
                code,
                streams,
            } => response(buf, key::PARTITIONS, *correlation_id, |b| {
                b.put_u16(*code);
                put_strings(b, streams);
            }),
            S::ExchangeCommandVersionsResponse {
                correlation_id,
                code,
                versions,
            } => response(buf, key::EXCHANGE_COMMAND_VERSIONS, *correlation_id, |b| {
                b.put_u16(*code);
                CommandVersion::write_all(b, versions);
            }),
            S::StreamStatsResponse {
                correlation_id,
                code,
                stats,
            } => response(buf, key::STREAM_STATS, *correlation_id, |b| {
                b.put_u16(*code);
                b.put_u32(stats.len() as u32);
                for (k, v) in stats {
                    put_str(b, k.as_bytes());
                    b.put_i64(*v);
                }
            }),
        }
    }

    /// Decodes one frame (the octets after the size prefix), as a client does.
    pub fn decode(frame: Bytes) -> Result<ServerCommand, StreamError> {
        let mut r = Reader::new(frame, 0, 0);
        let (k, version) = match (r.u16(), r.u16()) {
            (Ok(k), Ok(v)) => (k, v),
            _ => return Err(r.malformed("frame shorter than key and version")),
        };
        let mut r = Reader::new(r.rest(), 0, k);
        let unknown = StreamError::UnknownCommand { key: k, version };
        if k == key::DELIVER && (version == 1 || version == 2) {
            let subscription_id = r.u8()?;
            let committed_chunk_id = if version == 2 { Some(r.u64()?) } else { None };
            return Ok(ServerCommand::Deliver {
                subscription_id,
                committed_chunk_id,
                chunk: r.rest(),
            });
        }
        if version != 1 {
            return Err(unknown);
        }
        use ServerCommand as S;
        let is_response = k & RESPONSE_BIT != 0;
        let base = k & !RESPONSE_BIT;
        let cmd = if is_response {
            if base == key::CREDIT {
                let cmd = S::CreditResponse {
                    code: r.u16()?,
                    subscription_id: r.u8()?,
                };
                return r.finish(cmd);
            }
            let correlation_id = r.u32()?;
            match base {
                b if CODE_ONLY.contains(&b) => S::Response {
                    key: b,
                    correlation_id,
                    code: r.u16()?,
                },
                key::PEER_PROPERTIES => S::PeerPropertiesResponse {
                    correlation_id,
                    code: r.u16()?,
                    properties: r.map()?,
                },
                key::SASL_HANDSHAKE => S::SaslHandshakeResponse {
                    correlation_id,
                    code: r.u16()?,
                    mechanisms: r.strings()?,
                },
                key::SASL_AUTHENTICATE => S::SaslAuthenticateResponse {
                    correlation_id,
                    code: r.u16()?,
                    challenge: if r.remaining() == 0 {
                        Bytes::new()
                    } else {
                        r.bytes()?
                    },
                },
                key::OPEN => {
                    let c = r.u16()?;
                    let properties = if c == code::OK { r.map()? } else { Vec::new() };
                    S::OpenResponse {
                        correlation_id,
                        code: c,
                        properties,
                    }
                }
                key::CLOSE => S::CloseResponse {
                    correlation_id,
                    code: r.u16()?,
                },
                key::QUERY_PUBLISHER_SEQUENCE => S::QueryPublisherSequenceResponse {
                    correlation_id,
                    code: r.u16()?,
                    sequence: r.u64()?,
                },
                key::QUERY_OFFSET => S::QueryOffsetResponse {
                    correlation_id,
                    code: r.u16()?,
                    offset: r.u64()?,
                },
                key::METADATA => read_metadata(&mut r, correlation_id)?,
                key::ROUTE => S::RouteResponse {
                    correlation_id,
                    code: r.u16()?,
                    streams: r.strings()?,
                },
                key::PARTITIONS => S::PartitionsResponse {
                    correlation_id,
                    code: r.u16()?,
                    streams: r.strings()?,
                },
                key::EXCHANGE_COMMAND_VERSIONS => S::ExchangeCommandVersionsResponse {
                    correlation_id,
                    code: r.u16()?,
                    versions: CommandVersion::read_all(&mut r)?,
                },
                key::STREAM_STATS => {
                    let code = r.u16()?;
                    let n = r.count(10)?;
                    let mut stats = Vec::with_capacity(n);
                    for _ in 0..n {
                        stats.push((r.str()?, r.i64()?));
                    }
                    S::StreamStatsResponse {
                        correlation_id,
                        code,
                        stats,
                    }
                }
                _ => return Err(unknown),
            }
        } else {
            match k {
                key::TUNE => S::Tune {
                    frame_max: r.u32()?,
                    heartbeat: r.u32()?,
                },
                key::CLOSE => S::Close {
                    correlation_id: r.u32()?,
                    code: r.u16()?,
                    reason: r.str()?,
                },
                key::HEARTBEAT => S::Heartbeat,
                key::METADATA_UPDATE => S::MetadataUpdate {
                    code: r.u16()?,
                    stream: r.str()?,
                },
                key::PUBLISH_CONFIRM => {
                    let publisher_id = r.u8()?;
                    let n = r.count(8)?;
                    let mut publishing_ids = Vec::with_capacity(n);
                    for _ in 0..n {
                        publishing_ids.push(r.u64()?);
                    }
                    S::PublishConfirm {
                        publisher_id,
                        publishing_ids,
                    }
                }
                key::PUBLISH_ERROR => {
                    let publisher_id = r.u8()?;
                    let n = r.count(10)?;
                    let mut errors = Vec::with_capacity(n);
                    for _ in 0..n {
                        errors.push((r.u64()?, r.u16()?));
                    }
                    S::PublishError {
                        publisher_id,
                        errors,
                    }
                }
                key::CONSUMER_UPDATE => S::ConsumerUpdate {
                    correlation_id: r.u32()?,
                    subscription_id: r.u8()?,
                    active: match r.u8()? {
                        0 => false,
                        1 => true,
                        _ => return Err(r.malformed("active is not 0 or 1")),
                    },
                },
                _ => return Err(unknown),
            }
        };
        r.finish(cmd)
    }
}

fn read_metadata(r: &mut Reader, correlation_id: u32) -> Res<ServerCommand> {
    let n = r.count(8)?;
    let mut brokers = Vec::with_capacity(n);
    for _ in 0..n {
        brokers.push(Broker {
            reference: r.u16()?,
            host: r.str()?,
            port: r.u32()?,
        });
    }
    let n = r.count(10)?;
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let stream = r.str()?;
        let code = r.u16()?;
        let leader = r.u16()?;
        let m = r.count(2)?;
        let mut replicas = Vec::with_capacity(m);
        for _ in 0..m {
            replicas.push(r.u16()?);
        }
        streams.push(StreamMetadata {
            stream,
            code,
            leader,
            replicas,
        });
    }
    Ok(ServerCommand::MetadataResponse {
        correlation_id,
        brokers,
        streams,
    })
}
