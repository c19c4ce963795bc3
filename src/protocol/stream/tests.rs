//! Round trips for every command both ways, the frame splitter's limits, and decoding
//! arbitrary octets without panicking.

use super::*;
use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

fn s() -> impl Strategy<Value = Str> {
    proptest::collection::vec(any::<u8>(), 0..40).prop_map(|v| Str(Bytes::from(v)))
}

fn map() -> impl Strategy<Value = Vec<(Str, Str)>> {
    proptest::collection::vec((s(), s()), 0..5)
}

fn strs() -> impl Strategy<Value = Vec<Str>> {
    proptest::collection::vec(s(), 0..5)
}

fn blob() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn offset() -> impl Strategy<Value = OffsetSpec> {
    prop_oneof![
        Just(OffsetSpec::First),
        Just(OffsetSpec::Last),
        Just(OffsetSpec::Next),
        any::<u64>().prop_map(OffsetSpec::Offset),
        any::<i64>().prop_map(OffsetSpec::Timestamp),
    ]
}

fn versions() -> impl Strategy<Value = Vec<CommandVersion>> {
    proptest::collection::vec(
        (any::<u16>(), any::<u16>(), any::<u16>()).prop_map(|(key, min, max)| CommandVersion {
            key,
            min,
            max,
        }),
        0..5,
    )
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        blob().prop_map(Entry::Simple),
        (0u8..8, any::<u16>(), any::<u32>(), blob()).prop_map(
            |(compression, count, uncompressed_size, data)| Entry::SubBatch {
                compression,
                count,
                uncompressed_size,
                data
            }
        ),
    ]
}

fn publish() -> impl Strategy<Value = (u8, u16, Vec<PublishedMessage>)> {
    (any::<u8>(), 1u16..=2).prop_flat_map(|(id, version)| {
        let filter = if version == 2 {
            proptest::option::of(s()).boxed()
        } else {
            Just(None).boxed()
        };
        let msg =
            (any::<u64>(), filter, entry()).prop_map(|(publishing_id, filter_value, entry)| {
                PublishedMessage {
                    publishing_id,
                    filter_value,
                    entry,
                }
            });
        (
            Just(id),
            Just(version),
            proptest::collection::vec(msg, 0..6),
        )
    })
}

fn client_command() -> impl Strategy<Value = ClientCommand> {
    use ClientCommand as C;
    let a = prop_oneof![
        (any::<u32>(), map()).prop_map(|(correlation_id, properties)| C::PeerProperties {
            correlation_id,
            properties
        }),
        any::<u32>().prop_map(|correlation_id| C::SaslHandshake { correlation_id }),
        (any::<u32>(), s(), blob()).prop_map(|(correlation_id, mechanism, data)| {
            C::SaslAuthenticate {
                correlation_id,
                mechanism,
                data,
            }
        }),
        (any::<u32>(), any::<u32>()).prop_map(|(frame_max, heartbeat)| C::Tune {
            frame_max,
            heartbeat
        }),
        (any::<u32>(), s()).prop_map(|(correlation_id, vhost)| C::Open {
            correlation_id,
            vhost
        }),
        (any::<u32>(), any::<u16>(), s()).prop_map(|(correlation_id, code, reason)| C::Close {
            correlation_id,
            code,
            reason
        }),
        (any::<u32>(), any::<u16>()).prop_map(|(correlation_id, code)| C::CloseResponse {
            correlation_id,
            code
        }),
        Just(C::Heartbeat),
        (any::<u32>(), any::<u8>(), s(), s()).prop_map(
            |(correlation_id, publisher_id, reference, stream)| C::DeclarePublisher {
                correlation_id,
                publisher_id,
                reference,
                stream
            }
        ),
        publish().prop_map(|(id, v, m)| C::Publish(Publish::new(id, v, &m))),
        (any::<u32>(), s(), s()).prop_map(|(correlation_id, reference, stream)| {
            C::QueryPublisherSequence {
                correlation_id,
                reference,
                stream,
            }
        }),
        (any::<u32>(), any::<u8>()).prop_map(|(correlation_id, publisher_id)| {
            C::DeletePublisher {
                correlation_id,
                publisher_id,
            }
        }),
    ];
    let b = prop_oneof![
        (
            any::<u32>(),
            any::<u8>(),
            s(),
            offset(),
            any::<u16>(),
            map()
        )
            .prop_map(
                |(correlation_id, subscription_id, stream, offset, credit, properties)| {
                    C::Subscribe {
                        correlation_id,
                        subscription_id,
                        stream,
                        offset,
                        credit,
                        properties,
                    }
                }
            ),
        (any::<u8>(), any::<u16>()).prop_map(|(subscription_id, credit)| C::Credit {
            subscription_id,
            credit
        }),
        (s(), s(), any::<u64>()).prop_map(|(reference, stream, offset)| C::StoreOffset {
            reference,
            stream,
            offset
        }),
        (any::<u32>(), s(), s()).prop_map(|(correlation_id, reference, stream)| {
            C::QueryOffset {
                correlation_id,
                reference,
                stream,
            }
        }),
        (any::<u32>(), any::<u8>()).prop_map(|(correlation_id, subscription_id)| {
            C::Unsubscribe {
                correlation_id,
                subscription_id,
            }
        }),
        (any::<u32>(), s(), map()).prop_map(|(correlation_id, stream, arguments)| C::Create {
            correlation_id,
            stream,
            arguments
        }),
        (any::<u32>(), s()).prop_map(|(correlation_id, stream)| C::Delete {
            correlation_id,
            stream
        }),
        (any::<u32>(), strs()).prop_map(|(correlation_id, streams)| C::Metadata {
            correlation_id,
            streams
        }),
        (any::<u32>(), s(), s()).prop_map(|(correlation_id, routing_key, super_stream)| {
            C::Route {
                correlation_id,
                routing_key,
                super_stream,
            }
        }),
        (any::<u32>(), s()).prop_map(|(correlation_id, super_stream)| C::Partitions {
            correlation_id,
            super_stream
        }),
        (any::<u32>(), any::<u16>(), proptest::option::of(offset())).prop_map(
            |(correlation_id, code, offset)| C::ConsumerUpdateResponse {
                correlation_id,
                code,
                offset
            }
        ),
        (any::<u32>(), versions()).prop_map(|(correlation_id, versions)| {
            C::ExchangeCommandVersions {
                correlation_id,
                versions,
            }
        }),
        (any::<u32>(), s()).prop_map(|(correlation_id, stream)| C::StreamStats {
            correlation_id,
            stream
        }),
    ];
    let c = prop_oneof![
        (any::<u32>(), s(), strs(), strs(), map()).prop_map(
            |(correlation_id, super_stream, partitions, binding_keys, arguments)| {
                C::CreateSuperStream {
                    correlation_id,
                    super_stream,
                    partitions,
                    binding_keys,
                    arguments,
                }
            }
        ),
        (any::<u32>(), s()).prop_map(|(correlation_id, super_stream)| C::DeleteSuperStream {
            correlation_id,
            super_stream
        }),
    ];
    prop_oneof![a, b, c]
}

fn server_command() -> impl Strategy<Value = ServerCommand> {
    use ServerCommand as S;
    let code_only = prop_oneof![
        Just(key::DECLARE_PUBLISHER),
        Just(key::DELETE_PUBLISHER),
        Just(key::SUBSCRIBE),
        Just(key::UNSUBSCRIBE),
        Just(key::CREATE),
        Just(key::DELETE),
        Just(key::CREATE_SUPER_STREAM),
        Just(key::DELETE_SUPER_STREAM),
    ];
    let broker = (any::<u16>(), s(), any::<u32>()).prop_map(|(reference, host, port)| Broker {
        reference,
        host,
        port,
    });
    let meta = (
        s(),
        any::<u16>(),
        any::<u16>(),
        proptest::collection::vec(any::<u16>(), 0..4),
    )
        .prop_map(|(stream, code, leader, replicas)| StreamMetadata {
            stream,
            code,
            leader,
            replicas,
        });
    let a = prop_oneof![
        (any::<u32>(), any::<u16>(), map()).prop_map(|(correlation_id, code, properties)| {
            S::PeerPropertiesResponse {
                correlation_id,
                code,
                properties,
            }
        }),
        (any::<u32>(), any::<u16>(), strs()).prop_map(|(correlation_id, code, mechanisms)| {
            S::SaslHandshakeResponse {
                correlation_id,
                code,
                mechanisms,
            }
        }),
        (any::<u32>(), any::<u16>(), blob()).prop_map(|(correlation_id, code, challenge)| {
            S::SaslAuthenticateResponse {
                correlation_id,
                code,
                challenge,
            }
        }),
        (any::<u32>(), any::<u32>()).prop_map(|(frame_max, heartbeat)| S::Tune {
            frame_max,
            heartbeat
        }),
        (any::<u32>(), any::<u16>(), map()).prop_map(|(correlation_id, c, properties)| {
            S::OpenResponse {
                correlation_id,
                code: c,
                // Properties go out only with OK.
                properties: if c == code::OK {
                    properties
                } else {
                    Vec::new()
                },
            }
        }),
        (any::<u32>(), any::<u16>(), s()).prop_map(|(correlation_id, code, reason)| S::Close {
            correlation_id,
            code,
            reason
        }),
        (any::<u32>(), any::<u16>()).prop_map(|(correlation_id, code)| S::CloseResponse {
            correlation_id,
            code
        }),
        Just(S::Heartbeat),
        (code_only, any::<u32>(), any::<u16>()).prop_map(|(key, correlation_id, code)| {
            S::Response {
                key,
                correlation_id,
                code,
            }
        }),
        (any::<u32>(), any::<u16>(), any::<u64>()).prop_map(|(correlation_id, code, sequence)| {
            S::QueryPublisherSequenceResponse {
                correlation_id,
                code,
                sequence,
            }
        }),
        (any::<u32>(), any::<u16>(), any::<u64>()).prop_map(|(correlation_id, code, offset)| {
            S::QueryOffsetResponse {
                correlation_id,
                code,
                offset,
            }
        }),
        (
            any::<u32>(),
            proptest::collection::vec(broker, 0..3),
            proptest::collection::vec(meta, 0..3)
        )
            .prop_map(|(correlation_id, brokers, streams)| S::MetadataResponse {
                correlation_id,
                brokers,
                streams
            }),
    ];
    let b = prop_oneof![
        (any::<u16>(), s()).prop_map(|(code, stream)| S::MetadataUpdate { code, stream }),
        (any::<u8>(), proptest::collection::vec(any::<u64>(), 0..8)).prop_map(
            |(publisher_id, publishing_ids)| S::PublishConfirm {
                publisher_id,
                publishing_ids
            }
        ),
        (
            any::<u8>(),
            proptest::collection::vec((any::<u64>(), any::<u16>()), 0..8)
        )
            .prop_map(|(publisher_id, errors)| S::PublishError {
                publisher_id,
                errors
            }),
        (any::<u8>(), proptest::option::of(any::<u64>()), blob()).prop_map(
            |(subscription_id, committed_chunk_id, chunk)| S::Deliver {
                subscription_id,
                committed_chunk_id,
                chunk
            }
        ),
        (any::<u16>(), any::<u8>()).prop_map(|(code, subscription_id)| S::CreditResponse {
            code,
            subscription_id
        }),
        (any::<u32>(), any::<u8>(), any::<bool>()).prop_map(
            |(correlation_id, subscription_id, active)| S::ConsumerUpdate {
                correlation_id,
                subscription_id,
                active
            }
        ),
        (any::<u32>(), any::<u16>(), strs()).prop_map(|(correlation_id, code, streams)| {
            S::RouteResponse {
                correlation_id,
                code,
                streams,
            }
        }),
        (any::<u32>(), any::<u16>(), strs()).prop_map(|(correlation_id, code, streams)| {
            S::PartitionsResponse {
                correlation_id,
                code,
                streams,
            }
        }),
        (any::<u32>(), any::<u16>(), versions()).prop_map(|(correlation_id, code, versions)| {
            S::ExchangeCommandVersionsResponse {
                correlation_id,
                code,
                versions,
            }
        }),
        (
            any::<u32>(),
            any::<u16>(),
            proptest::collection::vec((s(), any::<i64>()), 0..4)
        )
            .prop_map(|(correlation_id, code, stats)| S::StreamStatsResponse {
                correlation_id,
                code,
                stats
            }),
    ];
    prop_oneof![a, b]
}

/// Splits `buf` into frames with an unlimited codec.
fn frames(mut buf: BytesMut) -> Vec<Bytes> {
    let mut codec = FrameCodec::new(0);
    let mut out = Vec::new();
    while let Some(f) = codec.decode_frame(&mut buf).unwrap() {
        out.push(f);
    }
    assert!(buf.is_empty(), "octets left after the last frame");
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Every client command decodes to itself, through the frame splitter, fed in pieces.
    #[test]
    fn client_commands_round_trip(cmds in proptest::collection::vec(client_command(), 1..4),
                                  piece in 1usize..64) {
        let mut wire = BytesMut::new();
        for c in &cmds {
            c.encode(&mut wire);
        }
        let mut codec = FrameCodec::new(0);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for part in wire.chunks(piece) {
            buf.extend_from_slice(part);
            while let Some(c) = codec.decode(&mut buf).unwrap() {
                got.push(c);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, cmds);
    }

    /// A publish frame's messages come back as they were put in, the filter values of
    /// version 2 included.
    #[test]
    fn publish_messages_round_trip((id, version, msgs) in publish()) {
        let mut wire = BytesMut::new();
        ClientCommand::Publish(Publish::new(id, version, &msgs)).encode(&mut wire);
        let [frame] = &frames(wire)[..] else { panic!("one frame") };
        let ClientCommand::Publish(p) = ClientCommand::decode(frame.clone()).unwrap() else {
            panic!("a publish")
        };
        prop_assert_eq!(p.publisher_id, id);
        prop_assert_eq!(p.version, version);
        prop_assert_eq!(p.count() as usize, msgs.len());
        prop_assert_eq!(p.messages().collect::<Vec<_>>(), msgs);
    }

    #[test]
    fn server_commands_round_trip(cmd in server_command()) {
        let mut wire = BytesMut::new();
        cmd.encode(&mut wire);
        let [frame] = &frames(wire)[..] else { panic!("one frame") };
        prop_assert_eq!(ServerCommand::decode(frame.clone()).unwrap(), cmd);
    }

    /// Cutting a frame short or adding an octet makes it an error, never a panic.
    #[test]
    fn damaged_frames_are_errors(cmd in client_command(), cut in any::<prop::sample::Index>()) {
        let mut wire = BytesMut::new();
        cmd.encode(&mut wire);
        let frame = frames(wire).pop().unwrap();
        let at = cut.index(frame.len());
        // A shorter frame may still parse as a command with a shorter optional tail
        // (subscribe properties); it must not panic.
        let _ = ClientCommand::decode(frame.slice(..at));
        let mut longer = BytesMut::from(&frame[..]);
        longer.put_u8(0);
        prop_assert!(ClientCommand::decode(longer.freeze()).is_err());
    }

    #[test]
    fn arbitrary_octets_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200),
                                    frame_max in prop_oneof![Just(0u32), 1u32..300]) {
        let mut codec = FrameCodec::new(frame_max);
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(_)) = codec.decode(&mut buf) {}
        let b = Bytes::from(data);
        let _ = ClientCommand::decode(b.clone());
        let _ = ServerCommand::decode(b);
    }

    /// Key and version followed by arbitrary octets: reaches every command's decoder.
    #[test]
    fn arbitrary_bodies_never_panic(k in 0u16..0x20, response in any::<bool>(),
                                    version in 0u16..3,
                                    body in proptest::collection::vec(any::<u8>(), 0..80)) {
        let mut f = BytesMut::new();
        f.put_u16(if response { k | 0x8000 } else { k });
        f.put_u16(version);
        f.put_slice(&body);
        let f = f.freeze();
        if let Ok(ClientCommand::Publish(p)) = ClientCommand::decode(f.clone()) {
            prop_assert_eq!(p.messages().count(), p.count() as usize);
        }
        let _ = ServerCommand::decode(f);
    }
}

#[test]
fn oversized_frame_is_refused_before_buffering() {
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::new();
    buf.put_u32(codes::INITIAL_FRAME_MAX + 1);
    buf.put_u32(0x0011_0001);
    let cap = buf.capacity();
    let err = codec.decode_frame(&mut buf).unwrap_err();
    assert_eq!(
        err,
        StreamError::FrameTooLarge {
            size: codes::INITIAL_FRAME_MAX + 1,
            max: codes::INITIAL_FRAME_MAX
        }
    );
    assert_eq!(err.response_code(), code::FRAME_TOO_LARGE);
    assert_eq!(buf.capacity(), cap, "nothing reserved for a refused frame");
    // Exactly frame_max is accepted (RabbitMQ compares the size without its prefix).
    codec.set_frame_max(8);
    let mut ok = BytesMut::new();
    ClientCommand::Tune {
        frame_max: 0,
        heartbeat: 0,
    }
    .encode(&mut ok);
    assert_eq!(ok.len(), 4 + 12);
    assert!(codec.decode_frame(&mut ok).is_err());
    codec.set_frame_max(12);
    assert!(codec.decode_frame(&mut ok).unwrap().is_some());
}

/// Found by the fuzzer: without a frame_max, a 4 GiB size prefix must not reserve 4 GiB.
#[test]
fn huge_size_prefix_without_frame_max_reserves_little() {
    let mut codec = FrameCodec::new(0);
    let mut buf = BytesMut::from(&[0xe1, 0x4b, 0x4b, 0x4b, 0x4b][..]);
    assert_eq!(codec.decode_frame(&mut buf), Ok(None));
    assert!(buf.capacity() <= 2 << 20, "capacity {}", buf.capacity());
}

#[test]
fn unknown_commands_and_versions() {
    let frame = |k: u16, v: u16| Bytes::from([k.to_be_bytes(), v.to_be_bytes()].concat());
    assert_eq!(
        ClientCommand::decode(frame(0x7fff, 1)).unwrap_err(),
        StreamError::UnknownCommand {
            key: 0x7fff,
            version: 1
        }
    );
    assert!(matches!(
        ClientCommand::decode(frame(key::HEARTBEAT, 2)),
        Err(StreamError::UnknownCommand { .. })
    ));
    assert_eq!(
        ClientCommand::decode(frame(key::HEARTBEAT, 1)).unwrap(),
        ClientCommand::Heartbeat
    );
    // Deliver is the server's: a client sending it is unknown to the server.
    assert_eq!(
        ClientCommand::decode(frame(key::DELIVER, 1))
            .unwrap_err()
            .response_code(),
        code::UNKNOWN_FRAME
    );
}

/// Octets as RabbitMQ writes them (rabbit_stream_core:frame/1).
#[test]
fn wire_vectors() {
    let mut b = BytesMut::new();
    encode_deliver_prefix(&mut b, 7, None, 100);
    assert_eq!(&b[..], &[0, 0, 0, 105, 0, 8, 0, 1, 7]);
    b.clear();
    encode_deliver_prefix(&mut b, 7, Some(0x0102), 100);
    assert_eq!(
        &b[..],
        &[0, 0, 0, 113, 0, 8, 0, 2, 7, 0, 0, 0, 0, 0, 0, 1, 2]
    );
    assert_eq!(b.len(), deliver_prefix_len(true));
    b.clear();
    encode_publish_confirm(&mut b, 3, &[1, 2]);
    assert_eq!(
        &b[..],
        &[
            0, 0, 0, 25, 0, 3, 0, 1, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2
        ]
    );
    b.clear();
    ServerCommand::CreditResponse {
        code: code::SUBSCRIPTION_ID_DOES_NOT_EXIST,
        subscription_id: 9,
    }
    .encode(&mut b);
    assert_eq!(&b[..], &[0, 0, 0, 7, 0x80, 9, 0, 1, 0, 4, 9]);
    b.clear();
    // A metadata entry for an unknown stream: leader -1, no replicas.
    ServerCommand::MetadataResponse {
        correlation_id: 1,
        brokers: vec![],
        streams: vec![StreamMetadata {
            stream: Str::from("s"),
            code: code::STREAM_DOES_NOT_EXIST,
            leader: 0xffff,
            replicas: vec![],
        }],
    }
    .encode(&mut b);
    assert_eq!(
        &b[4..],
        &[
            0x80, 0x0f, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, b's', 0, 2, 0xff, 0xff, 0,
            0, 0, 0
        ]
    );
    // A null string (-1) reads as empty; a subscribe without properties is accepted.
    let mut f = BytesMut::new();
    f.put_u16(key::SUBSCRIBE);
    f.put_u16(1);
    f.put_u32(5);
    f.put_u8(1);
    f.put_i16(-1);
    f.put_u16(codes::offset_type::FIRST);
    f.put_u16(10);
    assert_eq!(
        ClientCommand::decode(f.freeze()).unwrap(),
        ClientCommand::Subscribe {
            correlation_id: 5,
            subscription_id: 1,
            stream: Str::default(),
            offset: OffsetSpec::First,
            credit: 10,
            properties: vec![],
        }
    );
}
