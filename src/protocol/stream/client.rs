//! What a client sends: [`ClientCommand`], decoded by the server from one frame (after
//! the size prefix) and encoded by clients (Warren's tests and tools).
//!
//! Layouts follow rabbitmq-server's `rabbit_stream_core`: each command is matched whole
//! (trailing octets make it malformed), version 1 everywhere except Publish (1 and 2).

use super::codes::{RESPONSE_BIT, key, offset_type};
use super::publish::Publish;
use super::wire::{Reader, Res, Str, StreamError, frame, put_bytes, put_map, put_str, put_strings};
use bytes::{BufMut, Bytes, BytesMut};

/// Where a subscription starts (`OffsetSpecification`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    First,
    Last,
    Next,
    Offset(u64),
    /// Milliseconds since the epoch.
    Timestamp(i64),
}

impl OffsetSpec {
    fn read(r: &mut Reader) -> Res<OffsetSpec> {
        Ok(match r.u16()? {
            offset_type::FIRST => OffsetSpec::First,
            offset_type::LAST => OffsetSpec::Last,
            offset_type::NEXT => OffsetSpec::Next,
            offset_type::OFFSET => OffsetSpec::Offset(r.u64()?),
            offset_type::TIMESTAMP => OffsetSpec::Timestamp(r.i64()?),
            _ => return Err(r.malformed("unknown offset type")),
        })
    }

    fn write(&self, buf: &mut BytesMut) {
        match *self {
            OffsetSpec::First => buf.put_u16(offset_type::FIRST),
            OffsetSpec::Last => buf.put_u16(offset_type::LAST),
            OffsetSpec::Next => buf.put_u16(offset_type::NEXT),
            OffsetSpec::Offset(o) => {
                buf.put_u16(offset_type::OFFSET);
                buf.put_u64(o);
            }
            OffsetSpec::Timestamp(t) => {
                buf.put_u16(offset_type::TIMESTAMP);
                buf.put_i64(t);
            }
        }
    }
}

/// One entry of ExchangeCommandVersions: a command key and the versions a side speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandVersion {
    pub key: u16,
    pub min: u16,
    pub max: u16,
}

impl CommandVersion {
    pub(crate) fn read_all(r: &mut Reader) -> Res<Vec<CommandVersion>> {
        let n = r.count(6)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(CommandVersion {
                key: r.u16()?,
                min: r.u16()?,
                max: r.u16()?,
            });
        }
        Ok(v)
    }

    pub(crate) fn write_all(buf: &mut BytesMut, v: &[CommandVersion]) {
        buf.put_u32(v.len() as u32);
        for c in v {
            buf.put_u16(c.key);
            buf.put_u16(c.min);
            buf.put_u16(c.max);
        }
    }
}

/// Every frame a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCommand {
    PeerProperties {
        correlation_id: u32,
        properties: Vec<(Str, Str)>,
    },
    SaslHandshake {
        correlation_id: u32,
    },
    SaslAuthenticate {
        correlation_id: u32,
        mechanism: Str,
        /// The SASL response (empty when null).
        data: Bytes,
    },
    /// The client's answer to the server's tune.
    Tune {
        frame_max: u32,
        heartbeat: u32,
    },
    Open {
        correlation_id: u32,
        vhost: Str,
    },
    Close {
        correlation_id: u32,
        code: u16,
        reason: Str,
    },
    /// The client's answer to a close the server sent.
    CloseResponse {
        correlation_id: u32,
        code: u16,
    },
    Heartbeat,
    DeclarePublisher {
        correlation_id: u32,
        publisher_id: u8,
        /// Empty: no reference (no deduplication).
        reference: Str,
        stream: Str,
    },
    Publish(Publish),
    QueryPublisherSequence {
        correlation_id: u32,
        reference: Str,
        stream: Str,
    },
    DeletePublisher {
        correlation_id: u32,
        publisher_id: u8,
    },
    Subscribe {
        correlation_id: u32,
        subscription_id: u8,
        stream: Str,
        offset: OffsetSpec,
        credit: u16,
        properties: Vec<(Str, Str)>,
    },
    Credit {
        subscription_id: u8,
        credit: u16,
    },
    StoreOffset {
        reference: Str,
        stream: Str,
        offset: u64,
    },
    QueryOffset {
        correlation_id: u32,
        reference: Str,
        stream: Str,
    },
    Unsubscribe {
        correlation_id: u32,
        subscription_id: u8,
    },
    Create {
        correlation_id: u32,
        stream: Str,
        arguments: Vec<(Str, Str)>,
    },
    Delete {
        correlation_id: u32,
        stream: Str,
    },
    Metadata {
        correlation_id: u32,
        streams: Vec<Str>,
    },
    Route {
        correlation_id: u32,
        routing_key: Str,
        super_stream: Str,
    },
    Partitions {
        correlation_id: u32,
        super_stream: Str,
    },
    /// The client's answer to a ConsumerUpdate (single active consumer): where the newly
    /// active consumer starts, or None to keep its subscription's offset.
    ConsumerUpdateResponse {
        correlation_id: u32,
        code: u16,
        offset: Option<OffsetSpec>,
    },
    ExchangeCommandVersions {
        correlation_id: u32,
        versions: Vec<CommandVersion>,
    },
    StreamStats {
        correlation_id: u32,
        stream: Str,
    },
    /// 3.13+: `partitions[i]` is bound with `binding_keys[i]` (RabbitMQ refuses lists of
    /// different lengths, so the codec keeps both as sent); `arguments` are Create's.
    CreateSuperStream {
        correlation_id: u32,
        super_stream: Str,
        partitions: Vec<Str>,
        binding_keys: Vec<Str>,
        arguments: Vec<(Str, Str)>,
    },
    /// 3.13+.
    DeleteSuperStream {
        correlation_id: u32,
        super_stream: Str,
    },
}

impl ClientCommand {
    /// Decodes one frame (the octets after the size prefix).
    pub fn decode(frame: Bytes) -> Result<ClientCommand, StreamError> {
        let mut r = Reader::new(frame, 0, 0);
        let (k, version) = match (r.u16(), r.u16()) {
            (Ok(k), Ok(v)) => (k, v),
            _ => return Err(r.malformed("frame shorter than key and version")),
        };
        let mut r = Reader::new(r.rest(), 0, k);
        let unknown = StreamError::UnknownCommand { key: k, version };
        if k == key::PUBLISH && (version == 1 || version == 2) {
            return Ok(ClientCommand::Publish(Publish::decode(r, version)?));
        }
        if version != 1 {
            return Err(unknown);
        }
        use ClientCommand as C;
        let cmd = match k {
            key::PEER_PROPERTIES => C::PeerProperties {
                correlation_id: r.u32()?,
                properties: r.map()?,
            },
            key::SASL_HANDSHAKE => C::SaslHandshake {
                correlation_id: r.u32()?,
            },
            key::SASL_AUTHENTICATE => C::SaslAuthenticate {
                correlation_id: r.u32()?,
                mechanism: r.str()?,
                data: r.bytes()?,
            },
            // Clients answer tune with the request key or the response key (the Erlang
            // parser takes both).
            key::TUNE | 0x8014 => C::Tune {
                frame_max: r.u32()?,
                heartbeat: r.u32()?,
            },
            key::OPEN => C::Open {
                correlation_id: r.u32()?,
                vhost: r.str()?,
            },
            key::CLOSE => C::Close {
                correlation_id: r.u32()?,
                code: r.u16()?,
                reason: r.str()?,
            },
            0x8016 => C::CloseResponse {
                correlation_id: r.u32()?,
                code: r.u16()?,
            },
            key::HEARTBEAT => C::Heartbeat,
            key::DECLARE_PUBLISHER => C::DeclarePublisher {
                correlation_id: r.u32()?,
                publisher_id: r.u8()?,
                reference: r.str()?,
                stream: r.str()?,
            },
            key::QUERY_PUBLISHER_SEQUENCE => C::QueryPublisherSequence {
                correlation_id: r.u32()?,
                reference: r.str()?,
                stream: r.str()?,
            },
            key::DELETE_PUBLISHER => C::DeletePublisher {
                correlation_id: r.u32()?,
                publisher_id: r.u8()?,
            },
            key::SUBSCRIBE => {
                let correlation_id = r.u32()?;
                let subscription_id = r.u8()?;
                let stream = r.str()?;
                let offset = OffsetSpec::read(&mut r)?;
                let credit = r.u16()?;
                // The properties are optional: absent when there are none (Erlang and
                // Java clients), or a count of zero (the Rust client).
                let properties = if r.remaining() == 0 {
                    Vec::new()
                } else {
                    r.map()?
                };
                C::Subscribe {
                    correlation_id,
                    subscription_id,
                    stream,
                    offset,
                    credit,
                    properties,
                }
            }
            key::CREDIT => C::Credit {
                subscription_id: r.u8()?,
                credit: r.u16()?,
            },
            key::STORE_OFFSET => C::StoreOffset {
                reference: r.str()?,
                stream: r.str()?,
                offset: r.u64()?,
            },
            key::QUERY_OFFSET => C::QueryOffset {
                correlation_id: r.u32()?,
                reference: r.str()?,
                stream: r.str()?,
            },
            key::UNSUBSCRIBE => C::Unsubscribe {
                correlation_id: r.u32()?,
                subscription_id: r.u8()?,
            },
            key::CREATE => C::Create {
                correlation_id: r.u32()?,
                stream: r.str()?,
                arguments: r.map()?,
            },
            key::DELETE => C::Delete {
                correlation_id: r.u32()?,
                stream: r.str()?,
            },
            key::METADATA => C::Metadata {
                correlation_id: r.u32()?,
                streams: r.strings()?,
            },
            key::ROUTE => C::Route {
                correlation_id: r.u32()?,
                routing_key: r.str()?,
                super_stream: r.str()?,
            },
            key::PARTITIONS => C::Partitions {
                correlation_id: r.u32()?,
                super_stream: r.str()?,
            },
            0x801a => C::ConsumerUpdateResponse {
                correlation_id: r.u32()?,
                code: r.u16()?,
                offset: if r.peek_u16()? == offset_type::NONE {
                    r.u16()?;
                    None
                } else {
                    Some(OffsetSpec::read(&mut r)?)
                },
            },
            key::EXCHANGE_COMMAND_VERSIONS => C::ExchangeCommandVersions {
                correlation_id: r.u32()?,
                versions: CommandVersion::read_all(&mut r)?,
            },
            key::STREAM_STATS => C::StreamStats {
                correlation_id: r.u32()?,
                stream: r.str()?,
            },
            key::CREATE_SUPER_STREAM => C::CreateSuperStream {
                correlation_id: r.u32()?,
                super_stream: r.str()?,
                partitions: r.strings()?,
                binding_keys: r.strings()?,
                arguments: r.map()?,
            },
            key::DELETE_SUPER_STREAM => C::DeleteSuperStream {
                correlation_id: r.u32()?,
                super_stream: r.str()?,
            },
            _ => return Err(unknown),
        };
        r.finish(cmd)
    }

    /// Encodes the frame, size prefix included.
    pub fn encode(&self, buf: &mut BytesMut) {
        use ClientCommand as C;
        match self {
            C::PeerProperties {
                correlation_id,
                properties,
            } => frame(buf, key::PEER_PROPERTIES, 1, |b| {
                b.put_u32(*correlation_id);
                put_map(b, properties);
            }),
            C::SaslHandshake { correlation_id } => {
                frame(buf, key::SASL_HANDSHAKE, 1, |b| b.put_u32(*correlation_id))
            }
            C::SaslAuthenticate {
                correlation_id,
                mechanism,
                data,
            } => frame(buf, key::SASL_AUTHENTICATE, 1, |b| {
                b.put_u32(*correlation_id);
                put_str(b, mechanism.as_bytes());
                put_bytes(b, data);
            }),
            C::Tune {
                frame_max,
                heartbeat,
            } => frame(buf, key::TUNE | RESPONSE_BIT, 1, |b| {
                b.put_u32(*frame_max);
                b.put_u32(*heartbeat);
            }),
            C::Open {
                correlation_id,
                vhost,
            } => frame(buf, key::OPEN, 1, |b| {
                b.put_u32(*correlation_id);
                put_str(b, vhost.as_bytes());
            }),
            C::Close {
                correlation_id,
                code,
                reason,
            } => frame(buf, key::CLOSE, 1, |b| {
                b.put_u32(*correlation_id);
                b.put_u16(*code);
                put_str(b, reason.as_bytes());
            }),
            C::CloseResponse {
                correlation_id,
                code,
            } => frame(buf, key::CLOSE | RESPONSE_BIT, 1, |b| {
                b.put_u32(*correlation_id);
                b.put_u16(*code);
            }),
            C::Heartbeat => frame(buf, key::HEARTBEAT, 1, |_| {}),
            C::DeclarePublisher {
                correlation_id,
                publisher_id,
                reference,
                stream,
            } => frame(buf, key::DECLARE_PUBLISHER, 1, |b| {
                b.put_u32(*correlation_id);
                b.put_u8(*publisher_id);
                put_str(b, reference.as_bytes());
                put_str(b, stream.as_bytes());
            }),
            C::Publish(p) => frame(buf, key::PUBLISH, p.version, |b| p.write(b)),
            C::QueryPublisherSequence {
                correlation_id,
                reference,
                stream,
            } => frame(buf, key::QUERY_PUBLISHER_SEQUENCE, 1, |b| {
                b.put_u32(*correlation_id);
                put_str(b, reference.as_bytes());
                put_str(b, stream.as_bytes());
            }),
            C::DeletePublisher {
                correlation_id,
                publisher_id,
            } => frame(buf, key::DELETE_PUBLISHER, 1, |b| {
                b.put_u32(*correlation_id);
                b.put_u8(*publisher_id);
            }),
            C::Subscribe {
                correlation_id,
                subscription_id,
                stream,
                offset,
                credit,
                properties,
            } => frame(buf, key::SUBSCRIBE, 1, |b| {
                b.put_u32(*correlation_id);
                b.put_u8(*subscription_id);
                put_str(b, stream.as_bytes());
                offset.write(b);
                b.put_u16(*credit);
                if !properties.is_empty() {
                    put_map(b, properties);
                }
            }),
            C::Credit {
                subscription_id,
                credit,
            } => frame(buf, key::CREDIT, 1, |b| {
                b.put_u8(*subscription_id);
                b.put_u16(*credit);
            }),
            C::StoreOffset {
                reference,
                stream,
                offset,
            } => frame(buf, key::STORE_OFFSET, 1, |b| {
                put_str(b, reference.as_bytes());
                put_str(b, stream.as_bytes());
                b.put_u64(*offset);
            }),
            C::QueryOffset {
                correlation_id,
                reference,
                stream,
            } => frame(buf, key::QUERY_OFFSET, 1, |b| {
                b.put_u32(*correlation_id);
                put_str(b, reference.as_bytes());
                put_str(b, stream.as_bytes());
            }),
            C::Unsubscribe {
                correlation_id,
                subscription_id,
            } => frame(buf, key::UNSUBSCRIBE, 1, |b| {
                b.put_u32(*correlation_id);
                b.put_u8(*subscription_id);
            }),
            C::Create {
                correlation_id,
                stream,
                arguments,
            } => frame(buf, key::CREATE, 1, |b| {
                b.put_u32(*correlation_id);
                put_str(b, stream.as_bytes());
                put_map(b, arguments);
            }),
            C::Delete {
                correlation_id,
                stream,
            } => frame(buf, key::DELETE, 1, |b| {
                b.put_u32(*correlation_id);
                put_str(b, stream.as_bytes());
            }),
            C::Metadata {
                correlation_id,
                streams,
            } => frame(buf, key::METADATA, 1, |b| {
                b.put_u32(*correlation_id);
                put_strings(b, streams);
            }),
            C::Route {
                correlation_id,
                routing_key,
                super_stream,
            } => frame(buf, key::ROUTE, 1, |b| {
                b.put_u32(*correlation_id);
                put_str(b, routing_key.as_bytes());
                put_str(b, super_stream.as_bytes());
            }),
            C::Partitions {
                correlation_id,
                super_stream,
            } => frame(buf, key::PARTITIONS, 1, |b| {
                b.put_u32(*correlation_id);
                put_str(b, super_stream.as_bytes());
            }),
            C::ConsumerUpdateResponse {
                correlation_id,
                code,
                offset,
            } => frame(buf, key::CONSUMER_UPDATE | RESPONSE_BIT, 1, |b| {
                b.put_u32(*correlation_id);
                b.put_u16(*code);
                match offset {
                    Some(o) => o.write(b),
                    None => b.put_u16(offset_type::NONE),
                }
            }),
            C::ExchangeCommandVersions {
                correlation_id,
                versions,
            } => frame(buf, key::EXCHANGE_COMMAND_VERSIONS, 1, |b| {
                b.put_u32(*correlation_id);
                CommandVersion::write_all(b, versions);
            }),
            C::StreamStats {
                correlation_id,
                stream,
            } => frame(buf, key::STREAM_STATS, 1, |b| {
                b.put_u32(*correlation_id);
                put_str(b, stream.as_bytes());
            }),
            C::CreateSuperStream {
                correlation_id,
                super_stream,
                partitions,
                binding_keys,
                arguments,
            } => frame(buf, key::CREATE_SUPER_STREAM, 1, |b| {
                b.put_u32(*correlation_id);
                put_str(b, super_stream.as_bytes());
                put_strings(b, partitions);
                put_strings(b, binding_keys);
                put_map(b, arguments);
            }),
            C::DeleteSuperStream {
                correlation_id,
                super_stream,
            } => frame(buf, key::DELETE_SUPER_STREAM, 1, |b| {
                b.put_u32(*correlation_id);
                put_str(b, super_stream.as_bytes());
            }),
        }
    }
}
