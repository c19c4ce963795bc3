//! Property tests: values and messages survive encode → decode; no input makes a decoder
//! panic; a 0-9-1 message survives `from_amqp091` → `to_amqp091`.

use super::*;
use crate::protocol::{BasicProperties, Decimal, FieldTable, FieldValue, LongStr, ShortStr};
use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn f32_num() -> impl Strategy<Value = f32> {
    any::<f32>().prop_filter("NaN is not equal to itself", |f| !f.is_nan())
}

fn f64_num() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("NaN is not equal to itself", |f| !f.is_nan())
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u8>().prop_map(Value::Ubyte),
        any::<u16>().prop_map(Value::Ushort),
        any::<u32>().prop_map(Value::Uint),
        any::<u64>().prop_map(Value::Ulong),
        any::<i8>().prop_map(Value::Byte),
        any::<i16>().prop_map(Value::Short),
        any::<i32>().prop_map(Value::Int),
        any::<i64>().prop_map(Value::Long),
        f32_num().prop_map(Value::Float),
        f64_num().prop_map(Value::Double),
        any::<[u8; 4]>().prop_map(Value::Decimal32),
        any::<[u8; 8]>().prop_map(Value::Decimal64),
        any::<[u8; 16]>().prop_map(Value::Decimal128),
        any::<u32>().prop_map(Value::Char),
        any::<i64>().prop_map(Value::Timestamp),
        any::<[u8; 16]>().prop_map(Value::Uuid),
        bytes(300).prop_map(Value::Binary),
        bytes(40).prop_map(Value::String),
        bytes(40).prop_map(Value::Symbol),
    ]
}

/// Arrays hold elements of one type: one scalar strategy repeated.
fn array() -> impl Strategy<Value = Value> {
    prop_oneof![
        vec(any::<i32>().prop_map(Value::Int), 0..10),
        vec(any::<u64>().prop_map(Value::Ulong), 1..10),
        vec(bytes(20).prop_map(Value::Symbol), 1..10),
        vec(any::<bool>().prop_map(Value::Bool), 1..300),
        vec(
            bytes(8).prop_map(|b| Value::Described(Box::new((Value::Ulong(9), Value::String(b))))),
            1..5
        ),
    ]
    .prop_map(Value::Array)
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![scalar(), array()].prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(Value::List),
            vec((inner.clone(), inner.clone()), 0..6).prop_map(Value::Map),
            (
                prop_oneof![
                    any::<u64>().prop_map(Value::Ulong),
                    bytes(10).prop_map(Value::Symbol)
                ],
                inner
            )
                .prop_map(|(d, v)| Value::Described(Box::new((d, v)))),
        ]
    })
}

fn opt<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    proptest::option::of(s)
}

fn pairs() -> impl Strategy<Value = Pairs> {
    vec((bytes(12).prop_map(Value::Symbol), value()), 0..5)
}

fn message_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::Ulong),
        any::<[u8; 16]>().prop_map(Value::Uuid),
        bytes(30).prop_map(Value::Binary),
        bytes(30).prop_map(Value::String),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let header = (
        opt(any::<bool>()),
        opt(any::<u8>()),
        opt(any::<u32>()),
        opt(any::<bool>()),
        opt(any::<u32>()),
    )
        .prop_map(
            |(durable, priority, ttl, first_acquirer, delivery_count)| Header {
                durable,
                priority,
                ttl,
                first_acquirer,
                delivery_count,
            },
        );
    let props = (
        (
            opt(message_id()),
            opt(bytes(10)),
            opt(bytes(10)),
            opt(bytes(10)),
            opt(bytes(10)),
        ),
        (
            opt(message_id()),
            opt(bytes(10)),
            opt(bytes(10)),
            opt(any::<i64>()),
            opt(any::<i64>()),
        ),
        (opt(bytes(10)), opt(any::<u32>()), opt(bytes(10))),
    )
        .prop_map(
            |((mid, user, to, subject, reply_to), (cid, ct, ce, exp, ctime), (gid, gseq, rtg))| {
                Properties {
                    message_id: mid,
                    user_id: user,
                    to,
                    subject,
                    reply_to,
                    correlation_id: cid,
                    content_type: ct,
                    content_encoding: ce,
                    absolute_expiry_time: exp,
                    creation_time: ctime,
                    group_id: gid,
                    group_sequence: gseq,
                    reply_to_group_id: rtg,
                }
            },
        );
    let body = prop_oneof![
        vec(bytes(400), 0..3).prop_map(Body::Data),
        vec(vec(value(), 0..4), 1..3).prop_map(Body::Sequence),
        value().prop_map(Body::Value),
    ];
    let ap = vec((bytes(12).prop_map(Value::String), scalar()), 0..6);
    (
        opt(header),
        opt(pairs()),
        opt(pairs()),
        opt(props),
        opt(ap),
        body,
        opt(pairs()),
    )
        .prop_map(
            |(
                header,
                delivery_annotations,
                message_annotations,
                properties,
                application_properties,
                body,
                footer,
            )| {
                Message {
                    header,
                    delivery_annotations,
                    message_annotations,
                    properties,
                    application_properties,
                    body,
                    footer,
                }
            },
        )
}

fn short(max: usize) -> impl Strategy<Value = ShortStr> {
    bytes(max).prop_map(ShortStr)
}

/// Header values RabbitMQ stores (no decimal, array or table) with values that survive
/// the seconds → milliseconds → seconds trip.
fn header_value() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i8>().prop_map(FieldValue::I8),
        any::<u8>().prop_map(FieldValue::U8),
        any::<i16>().prop_map(FieldValue::I16),
        any::<u16>().prop_map(FieldValue::U16),
        any::<i32>().prop_map(FieldValue::I32),
        any::<u32>().prop_map(FieldValue::U32),
        any::<i64>().prop_map(FieldValue::I64),
        f32_num().prop_map(FieldValue::F32),
        f64_num().prop_map(FieldValue::F64),
        bytes(300).prop_map(|b| FieldValue::LongStr(LongStr(b))),
        bytes(300).prop_map(FieldValue::ByteArray),
        (0..=i64::MAX as u64 / 1000).prop_map(FieldValue::Timestamp),
        Just(FieldValue::Void),
    ]
}

/// Header names that are not RabbitMQ's own (`x-basic-*`, `x-message-id*`, ...).
fn header_name() -> impl Strategy<Value = ShortStr> {
    "[a-w][a-z0-9-]{0,20}".prop_map(ShortStr::from)
}

fn basic_properties() -> impl Strategy<Value = BasicProperties> {
    (
        (
            opt(short(255)),
            opt(short(255)),
            opt(vec((header_name(), header_value()), 1..30)),
        ),
        (
            opt(any::<u8>()),
            opt(any::<u8>()),
            opt(short(255)),
            opt(short(255)),
            opt(short(255)),
        ),
        (
            opt(short(255)),
            opt(0..=i64::MAX as u64 / 1000),
            opt(short(255)),
            opt(short(255)),
            opt(short(255)),
        ),
    )
        .prop_map(
            |((ct, ce, headers), (dm, prio, cid, rt, exp), (mid, ts, kind, uid, app))| {
                BasicProperties {
                    content_type: ct,
                    content_encoding: ce,
                    headers: headers.map(FieldTable),
                    delivery_mode: dm,
                    priority: prio,
                    correlation_id: cid,
                    reply_to: rt,
                    expiration: exp,
                    message_id: mid,
                    timestamp: ts,
                    kind,
                    user_id: uid,
                    app_id: app,
                    cluster_id: None,
                }
            },
        )
}

proptest! {
    #[test]
    fn value_round_trips(v in value()) {
        let mut buf = BytesMut::new();
        v.encode(&mut buf);
        prop_assert_eq!(Value::decode(&buf.freeze()).unwrap(), v);
    }

    #[test]
    fn message_round_trips(m in message()) {
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        prop_assert_eq!(Message::decode(&buf.freeze()).unwrap(), m);
    }

    #[test]
    fn decoders_never_panic(input in vec(any::<u8>(), 0..512)) {
        let input = Bytes::from(input);
        let _ = Value::decode(&input);
        let _ = Message::decode(&input);
        let _ = to_amqp091(&input);
    }

    /// Arbitrary octets after a valid section prefix reach the section decoders.
    #[test]
    fn section_decoders_never_panic(code in 0x70u8..0x79, tail in vec(any::<u8>(), 0..256)) {
        let mut input = vec![0x00, 0x53, code];
        input.extend(tail);
        let input = Bytes::from(input);
        let _ = Message::decode(&input);
        let _ = to_amqp091(&input);
    }

    #[test]
    fn amqp091_round_trips(
        p in basic_properties(),
        exchange in bytes(255),
        rk in bytes(255),
        body in bytes(600),
    ) {
        let mut out = BytesMut::new();
        from_amqp091(&exchange, &rk, &p, &body, &mut out);
        let entry = out.freeze();
        let c = to_amqp091(&entry).unwrap();
        prop_assert_eq!(c.exchange, Some(ShortStr(exchange)));
        prop_assert_eq!(c.routing_key, Some(ShortStr(rk)));
        prop_assert_eq!(c.body, body);
        prop_assert_eq!(c.properties, p);
        // What Warren stores is a valid message for every decoder.
        prop_assert!(Message::decode(&entry).is_ok());
    }

    /// Headers RabbitMQ does not store are the only thing dropped.
    #[test]
    fn unstored_headers_are_dropped(p in basic_properties()) {
        let mut with = p.clone();
        let h = with.headers.get_or_insert_with(FieldTable::new);
        h.insert("zdec", FieldValue::Decimal(Decimal { scale: 1, value: 5 }));
        h.insert("zarr", FieldValue::Array(vec![FieldValue::I32(1)]));
        h.insert("ztbl", FieldValue::Table(FieldTable::new()));
        let mut out = BytesMut::new();
        from_amqp091(b"", b"", &with, b"", &mut out);
        prop_assert_eq!(to_amqp091(&out.freeze()).unwrap().properties, p);
    }
}
