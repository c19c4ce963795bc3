//! Round-trip properties of the codec, for every method, the properties and every field
//! value type; and robustness: arbitrary bytes decode to an error, never a panic.

use super::content::Assembled;
use super::frame::decode_payload;
use super::table::{decode_table, encode_table};
use super::*;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proptest::strategy::Union;
use tokio_util::codec::{Decoder, Encoder};

fn short_str() -> impl Strategy<Value = ShortStr> {
    proptest::collection::vec(any::<u8>(), 0..=255).prop_map(|v| ShortStr(Bytes::from(v)))
}

fn long_str() -> impl Strategy<Value = LongStr> {
    proptest::collection::vec(any::<u8>(), 0..300).prop_map(|v| LongStr(Bytes::from(v)))
}

/// Every field value type, nested tables and arrays included. Floats are never NaN, so
/// that `==` can check the round trip.
fn field_value() -> impl Strategy<Value = FieldValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i8>().prop_map(FieldValue::I8),
        any::<u8>().prop_map(FieldValue::U8),
        any::<i16>().prop_map(FieldValue::I16),
        any::<u16>().prop_map(FieldValue::U16),
        any::<i32>().prop_map(FieldValue::I32),
        any::<u32>().prop_map(FieldValue::U32),
        any::<i64>().prop_map(FieldValue::I64),
        proptest::num::f32::NORMAL.prop_map(FieldValue::F32),
        proptest::num::f64::NORMAL.prop_map(FieldValue::F64),
        (any::<u8>(), any::<u32>())
            .prop_map(|(scale, value)| FieldValue::Decimal(Decimal { scale, value })),
        long_str().prop_map(FieldValue::LongStr),
        long_str().prop_map(|s| FieldValue::ByteArray(s.0)),
        any::<u64>().prop_map(FieldValue::Timestamp),
        Just(FieldValue::Void),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(FieldValue::Array),
            proptest::collection::vec((short_str(), inner), 0..6)
                .prop_map(|e| FieldValue::Table(FieldTable(e))),
        ]
    })
}

fn field_table() -> impl Strategy<Value = FieldTable> {
    proptest::collection::vec((short_str(), field_value()), 0..6).prop_map(FieldTable)
}

include!(concat!(env!("OUT_DIR"), "/amqp_strategies.rs"));

fn decode_all(codec: &mut FrameCodec, buf: &mut BytesMut) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(f) = codec.decode(buf).expect("decodes") {
        frames.push(f);
    }
    assert!(buf.is_empty(), "left {} octets undecoded", buf.len());
    frames
}

/// Everything a stream of octets assembles to, per channel as the broker keeps assemblers,
/// in order, and the error that ended it (from the codec or an assembler), if any. The
/// octets arrive `chunk` at a time, so frames are also seen incomplete.
fn assemble(
    data: &[u8],
    frame_max: u32,
    whole: bool,
    chunk: usize,
) -> (Vec<(u16, Assembled)>, Option<AmqpError>) {
    let mut codec = FrameCodec::new(frame_max);
    codec.set_whole_content(whole);
    let mut asms: std::collections::HashMap<u16, ContentAssembler> = Default::default();
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    for part in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(part);
        loop {
            let frame = match codec.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(frame::CodecError::Amqp(e)) => return (out, Some(e)),
                Err(e) => panic!("{e}"),
            };
            let channel = frame.channel();
            match asms.entry(channel).or_default().push(frame) {
                Ok(Some(a)) => out.push((channel, a)),
                Ok(None) => {}
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

/// A content method, its properties and body, or a method without content.
fn message() -> impl Strategy<Value = (u16, Method, BasicProperties, Vec<u8>)> {
    (
        prop_oneof![Just(0u16), Just(1u16), Just(2u16), any::<u16>()],
        prop_oneof![3 => any_content_method(), 1 => any_method()],
        any_basic_properties(),
        proptest::collection::vec(any::<u8>(), 0..400),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The whole-content fast path assembles exactly what frame-by-frame decoding does,
    /// errors included: well-formed streams, streams with one octet changed, split bodies,
    /// frames arriving in pieces, frame_max exceeded.
    #[test]
    fn whole_content_assembles_as_frame_by_frame(
        messages in proptest::collection::vec(message(), 1..4),
        encode_max in prop_oneof![Just(0u32), 9u32..600],
        decode_max in prop_oneof![Just(0u32), Just(131072u32), 9u32..600],
        corrupt in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
        chunk in prop_oneof![Just(usize::MAX), 1usize..200],
    ) {
        let mut buf = BytesMut::new();
        for (channel, method, props, body) in &messages {
            if method.has_content() {
                encode_content(&mut buf, *channel, method, &EncodedProperties::from(props), body, encode_max);
            } else {
                encode_method(&mut buf, *channel, method);
            }
        }
        if let Some((at, octet)) = corrupt {
            let at = at.index(buf.len());
            buf[at] = octet;
        }
        let by_frame = assemble(&buf, decode_max, false, chunk);
        let whole = assemble(&buf, decode_max, true, chunk);
        prop_assert_eq!(whole, by_frame);
    }

    #[test]
    fn whole_content_of_arbitrary_octets_as_frame_by_frame(
        data in proptest::collection::vec(any::<u8>(), 0..512),
        frame_max in prop_oneof![Just(0u32), 8u32..1024],
    ) {
        prop_assert_eq!(assemble(&data, frame_max, true, usize::MAX), assemble(&data, frame_max, false, usize::MAX));
    }

    #[test]
    fn every_method_round_trips(method in any_method(), channel in any::<u16>()) {
        let mut buf = BytesMut::new();
        encode_method(&mut buf, channel, &method);
        let mut codec = FrameCodec::new(0);
        let frames = decode_all(&mut codec, &mut buf);
        prop_assert_eq!(frames, vec![Frame::Method { channel, method }]);
    }

    #[test]
    fn properties_round_trip(props in any_basic_properties(), size in any::<u64>()) {
        let encoded = EncodedProperties::from(&props);
        let frame = Frame::Header { channel: 1, class_id: 60, body_size: size, properties: encoded };
        let mut buf = BytesMut::new();
        FrameCodec::new(0).encode(&frame, &mut buf).unwrap();
        let frames = decode_all(&mut FrameCodec::new(0), &mut buf);
        prop_assert_eq!(&frames, &vec![frame]);
        let Frame::Header { properties, .. } = &frames[0] else { unreachable!() };
        prop_assert_eq!(properties.decode().unwrap(), props.clone());
        // Single-property accessors read the same values as the whole decode.
        prop_assert_eq!(properties.headers(), props.headers);
        prop_assert_eq!(properties.delivery_mode(), props.delivery_mode);
        prop_assert_eq!(properties.priority(), props.priority);
        prop_assert_eq!(properties.expiration(), props.expiration);
        prop_assert_eq!(properties.cluster_id(), props.cluster_id);
    }

    #[test]
    fn field_values_round_trip(value in field_value(), key in short_str()) {
        let mut t = FieldTable::new();
        t.0.push((key, value));
        let mut buf = BytesMut::new();
        encode_table(&t, &mut buf);
        prop_assert_eq!(buf.len(), 4 + t.encoded_len());
        prop_assert_eq!(decode_table(&buf.freeze()).unwrap(), t);
    }

    #[test]
    fn content_splits_and_reassembles(
        body in proptest::collection::vec(any::<u8>(), 0..3000),
        frame_max in 9u32..600,
        props in any_basic_properties(),
    ) {
        let method: Method = BasicPublish { exchange: "x".into(), routing_key: "k".into(), ..Default::default() }.into();
        let mut buf = BytesMut::new();
        let props = EncodedProperties::from(&props);
        encode_content(&mut buf, 3, &method, &props, &body, frame_max);
        // Only the body frames are bound by frame_max here; the header may be larger.
        let mut codec = FrameCodec::new(0);
        let mut asm = ContentAssembler::default();
        let mut out = None;
        for f in decode_all(&mut codec, &mut buf) {
            if let Frame::Body { payload, .. } = &f {
                prop_assert!(payload.len() + 8 <= frame_max as usize);
                prop_assert!(!payload.is_empty());
            }
            prop_assert!(out.is_none());
            out = asm.push(f).unwrap();
        }
        prop_assert_eq!(out, Some(Assembled::Content(Content { method, properties: props, body: Bytes::from(body) })));
    }

    #[test]
    fn arbitrary_frames_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512), frame_max in prop_oneof![Just(0u32), 8u32..1024]) {
        let mut codec = FrameCodec::new(frame_max);
        let mut buf = BytesMut::from(&data[..]);
        let mut asm = ContentAssembler::default();
        while let Ok(Some(f)) = codec.decode(&mut buf) {
            let _ = asm.push(f);
        }
    }

    #[test]
    fn arbitrary_payloads_never_panic(kind in prop_oneof![Just(1u8), Just(2u8), 0u8..10], data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_payload(kind, 1, Bytes::from(data.clone()));
        let _ = decode_table(&Bytes::from(data));
    }

    /// Valid method frames with a random prefix of their arguments cut: always an error.
    #[test]
    fn truncated_methods_are_frame_errors(method in any_method(), cut in any::<prop::sample::Index>()) {
        let mut buf = BytesMut::new();
        method.encode(&mut buf);
        if buf.len() > 4 {
            let keep = 4 + cut.index(buf.len() - 4);
            let payload = buf.freeze().slice(..keep);
            let err = frame::decode_method(&payload).unwrap_err();
            prop_assert!(err.code == reply_code::FRAME_ERROR || err.code == reply_code::SYNTAX_ERROR);
            prop_assert!(err.is_hard());
        }
    }
}

#[test]
fn unknown_field_type_is_syntax_error() {
    // table { "a": 'Z' ... }
    let raw = Bytes::from_static(b"\x00\x00\x00\x03\x01aZ");
    assert_eq!(
        decode_table(&raw),
        Err(wire::WireError::UnknownFieldType(b'Z'))
    );
    let mut payload = BytesMut::new();
    payload.extend_from_slice(&[0, 60, 0, 20]); // basic.consume
    payload.extend_from_slice(&[0, 0, 1, b'q', 0, 0]); // ticket, queue, tag, bits
    payload.extend_from_slice(&raw);
    let err = frame::decode_method(&payload.freeze()).unwrap_err();
    assert_eq!(err.code, reply_code::SYNTAX_ERROR);
    assert_eq!((err.class_id, err.method_id), (60, 20));
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    // 10 000 nested arrays: far beyond MAX_DEPTH.
    let depth = 10_000;
    let mut v = Vec::new();
    for i in 0..depth {
        let inner = (depth - i - 1) * 5;
        v.push(b'A');
        v.extend_from_slice(&(inner as u32).to_be_bytes());
    }
    let mut t = vec![0, 0, 0, 0, 1, b'k'];
    t.extend_from_slice(&v);
    let len = (t.len() - 4) as u32;
    t[..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(decode_table(&Bytes::from(t)), Err(wire::WireError::TooDeep));
}

#[test]
fn oversized_frame_is_frame_error() {
    let mut codec = FrameCodec::new(4096);
    let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 0, 0x10, 0x01][..]); // 4097-octet payload
    match codec.decode(&mut buf) {
        Err(frame::CodecError::Amqp(e)) => {
            assert_eq!(e.code, reply_code::FRAME_ERROR);
            assert_eq!(
                e.text,
                "type 3, all octets = <<>>: {frame_too_large,4097,4088}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// RabbitMQ's FRAME_SIZE_FUDGE: a payload of frame_max octets (eight over the limit the
/// frame overhead leaves) is accepted.
#[test]
fn frame_of_frame_max_payload_is_accepted() {
    let mut codec = FrameCodec::new(4096);
    let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 0, 0x10, 0x00][..]); // 4096-octet payload
    buf.extend_from_slice(&[b'x'; 4096]);
    buf.extend_from_slice(&[FRAME_END]);
    match codec.decode(&mut buf) {
        Ok(Some(Frame::Body { payload, .. })) => assert_eq!(payload.len(), 4096),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_frame_end_is_frame_error() {
    let mut codec = FrameCodec::new(4096);
    let mut buf = BytesMut::from(&[8u8, 0, 0, 0, 0, 0, 0, 0xCD][..]);
    match codec.decode(&mut buf) {
        Err(frame::CodecError::Amqp(e)) => assert_eq!(e.code, reply_code::FRAME_ERROR),
        other => panic!("{other:?}"),
    }
}

#[test]
fn method_between_header_and_body_is_unexpected_frame() {
    let mut asm = ContentAssembler::default();
    let publish: Method = BasicPublish::default().into();
    assert_eq!(
        asm.push(Frame::Method {
            channel: 1,
            method: publish.clone()
        }),
        Ok(None)
    );
    let err = asm
        .push(Frame::Method {
            channel: 1,
            method: publish,
        })
        .unwrap_err();
    assert_eq!(err.code, reply_code::UNEXPECTED_FRAME);
    assert_eq!((err.class_id, err.method_id), (60, 40));
    let mut asm = ContentAssembler::default();
    let err = asm
        .push(Frame::Body {
            channel: 1,
            payload: Bytes::new(),
        })
        .unwrap_err();
    assert_eq!(err.code, reply_code::UNEXPECTED_FRAME);
}

fn header(body_size: u64) -> Frame {
    Frame::Header {
        channel: 1,
        class_id: 60,
        body_size,
        properties: EncodedProperties::default(),
    }
}

fn publish_frame() -> Frame {
    Frame::Method {
        channel: 1,
        method: BasicPublish::default().into(),
    }
}

/// A header announcing more than the maximum message size is refused at once, as a soft
/// PRECONDITION_FAILED on basic.publish (RabbitMQ's reply), and the assembler is ready for
/// the next method.
#[test]
fn oversized_content_is_precondition_failed() {
    let mut asm = ContentAssembler::new(1000);
    assert_eq!(asm.push(publish_frame()), Ok(None));
    let err = asm.push(header(1001)).unwrap_err();
    assert_eq!(err.code, reply_code::PRECONDITION_FAILED);
    assert!(!err.is_hard());
    assert_eq!((err.class_id, err.method_id), (60, 40));
    assert!(err.text.contains("message size 1001"), "{}", err.text);
    assert!(!asm.is_busy());
    assert_eq!(asm.push(publish_frame()), Ok(None));
    assert_eq!(asm.push(header(1000)), Ok(None));
}

/// The announced body size is the peer's word: a multi-frame body reserves at most a
/// bounded buffer up front (this test aborts on an allocation of the announced size).
#[test]
fn announced_body_size_is_not_preallocated() {
    let mut asm = ContentAssembler::new(u64::MAX);
    assert_eq!(asm.push(publish_frame()), Ok(None));
    assert_eq!(asm.push(header(1 << 55)), Ok(None));
    for _ in 0..3 {
        let body = Frame::Body {
            channel: 1,
            payload: Bytes::from_static(b"part"),
        };
        assert_eq!(asm.push(body), Ok(None));
    }
}

#[test]
fn reply_codes_have_rabbitmq_scopes() {
    assert!(!AmqpError::new(reply_code::NOT_FOUND, "x").is_hard());
    assert!(!AmqpError::new(reply_code::PRECONDITION_FAILED, "x").is_hard());
    assert!(AmqpError::new(reply_code::NOT_ALLOWED, "x").is_hard());
    assert!(AmqpError::new(reply_code::FRAME_ERROR, "x").is_hard());
    assert!(AmqpError::connection(reply_code::ACCESS_REFUSED, "x").is_hard());
    let e = AmqpError::new(reply_code::NOT_FOUND, "no queue 'q' in vhost '/'").on(50, 10);
    assert_eq!(e.reply_text(), "NOT_FOUND - no queue 'q' in vhost '/'");
}

#[test]
fn protocol_header_check() {
    assert_eq!(
        check_protocol_header(&PROTOCOL_HEADER),
        HeaderCheck::Accepted
    );
    assert_eq!(
        check_protocol_header(b"AMQP\x01\x01\x08\x00"),
        HeaderCheck::Refused
    );
    assert_eq!(check_protocol_header(b"GET / HT"), HeaderCheck::Refused);
}

#[test]
fn small_content_is_one_frame_with_whole_content() {
    let method: Method = BasicPublish {
        exchange: "x".into(),
        routing_key: "k".into(),
        ..Default::default()
    }
    .into();
    let props = EncodedProperties::from(&BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    });
    let mut codec = FrameCodec::new(131072);
    codec.set_whole_content(true);
    for (channel, body, frame_max, frames) in [
        (1, &b"body"[..], 131072, 1),
        (1, &b""[..], 131072, 1),
        // Channel 0 carries no content: decoded frame by frame (the broker refuses it).
        (0, &b"body"[..], 131072, 3),
        // A body over several frames: frame by frame.
        (1, &b"body"[..], 10, 4),
    ] {
        let mut buf = BytesMut::new();
        encode_content(&mut buf, channel, &method, &props, body, frame_max);
        let decoded = decode_all(&mut codec, &mut buf);
        assert_eq!(
            decoded.len(),
            frames,
            "channel {channel}, frame_max {frame_max}"
        );
        if frames == 1 {
            let content = Content {
                method: method.clone(),
                properties: props.clone(),
                body: Bytes::copy_from_slice(body),
            };
            assert_eq!(
                decoded,
                vec![Frame::Content {
                    channel,
                    content: content.clone()
                }]
            );
            // It encodes back to the same frames.
            let mut again = BytesMut::new();
            codec.encode(&decoded[0], &mut again).unwrap();
            let mut expected = BytesMut::new();
            encode_content(&mut expected, channel, &method, &props, body, 131072);
            assert_eq!(again, expected);
            let mut asm = ContentAssembler::default();
            assert_eq!(
                asm.push(decoded.into_iter().next().unwrap()),
                Ok(Some(Assembled::Content(content)))
            );
        }
    }
}
