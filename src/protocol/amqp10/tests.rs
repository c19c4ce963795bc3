//! Checks against entries captured from RabbitMQ 3.10.8 (tests/fixtures/amqp10, see its
//! README): what it stores for 0-9-1 publishes, and what pika received for entries that
//! rstream published.

use super::*;
use crate::protocol::{BasicProperties, FieldTable, FieldValue, LongStr, ShortStr};
use bytes::{Bytes, BytesMut};

macro_rules! fixture {
    ($name:literal) => {
        Bytes::from_static(include_bytes!(concat!(
            "../../../tests/fixtures/amqp10/",
            $name,
            ".bin"
        )))
    };
}

/// The queue the 0-9-1 fixtures were published to (the routing key of most of them).
const Q: &[u8] = b"a10-fixtures-091";

fn s(v: &str) -> Option<ShortStr> {
    Some(ShortStr::from(v))
}

fn table(entries: Vec<(&str, FieldValue)>) -> FieldTable {
    FieldTable(
        entries
            .into_iter()
            .map(|(k, v)| (ShortStr::from(k), v))
            .collect(),
    )
}

fn long(v: &str) -> FieldValue {
    FieldValue::LongStr(LongStr::from(v))
}

fn encode091(exchange: &[u8], rk: &[u8], p: &BasicProperties, body: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    from_amqp091(exchange, rk, p, body, &mut out);
    out.freeze()
}

fn all_props() -> BasicProperties {
    BasicProperties {
        content_type: s("application/json"),
        content_encoding: s("gzip"),
        headers: Some(table(vec![("h", long("v"))])),
        delivery_mode: Some(2),
        priority: Some(7),
        correlation_id: s("corr-1"),
        reply_to: s("replies"),
        expiration: s("60000"),
        message_id: s("msg-1"),
        timestamp: Some(1_700_000_000),
        kind: s("kind"),
        user_id: s("guest"),
        app_id: s("app-1"),
        cluster_id: s("clu"),
    }
}

/// The headers of the `all_headers` fixture, in the order they were published; `arr` and
/// `tbl` are not stored by RabbitMQ.
fn all_headers(with_unstored: bool) -> FieldTable {
    let mut h = vec![
        ("bool", FieldValue::Bool(true)),
        ("i8", FieldValue::I8(-2)),
        ("u8", FieldValue::U8(250)),
        ("i16", FieldValue::I16(-300)),
        ("u16", FieldValue::U16(60000)),
        ("i32", FieldValue::I32(-70000)),
        ("u32", FieldValue::U32(4_000_000_000)),
        ("i64", FieldValue::I64(-5_000_000_000)),
        ("i64small", FieldValue::I64(5)),
        ("f32", FieldValue::F32(1.5)),
        ("f64", FieldValue::F64(-2.25)),
        ("str", long("abc")),
        (
            "bytes",
            FieldValue::ByteArray(Bytes::from_static(b"\x00\xff")),
        ),
        ("ts", FieldValue::Timestamp(1_700_000_000)),
        ("void", FieldValue::Void),
    ];
    if with_unstored {
        h.push(("arr", FieldValue::Array(vec![FieldValue::I32(1)])));
        h.push((
            "tbl",
            FieldValue::Table(table(vec![("k", FieldValue::I32(1))])),
        ));
    }
    h.extend([
        ("i32small", FieldValue::I32(100)),
        ("u32zero", FieldValue::U32(0)),
        ("u32small", FieldValue::U32(200)),
    ]);
    table(h)
}

fn long_strings() -> BasicProperties {
    BasicProperties {
        message_id: Some(ShortStr::from("m".repeat(255))),
        correlation_id: Some(ShortStr::from("c".repeat(254))),
        headers: Some(table(vec![
            ("s254", long(&"a".repeat(254))),
            ("s255", long(&"b".repeat(255))),
        ])),
        ..Default::default()
    }
}

#[test]
fn from_amqp091_matches_rabbitmq_octet_for_octet() {
    let d = BasicProperties::default();
    assert_eq!(encode091(b"", Q, &d, b"hello"), fixture!("minimal"));
    assert_eq!(encode091(b"", Q, &d, b""), fixture!("empty_body"));
    let body = [b'x'; 300];
    assert_eq!(
        encode091(b"a10-x", b"rk-a10", &all_props(), &body),
        fixture!("all_props")
    );
    let p = BasicProperties {
        headers: Some(all_headers(true)),
        ..Default::default()
    };
    assert_eq!(encode091(b"", Q, &p, b"body"), fixture!("all_headers"));
    assert_eq!(
        encode091(b"", Q, &long_strings(), &[b'y'; 254]),
        fixture!("long_strings")
    );
}

/// What pika received for each 0-9-1 fixture, without the `x-stream-offset` header, is
/// what was published minus what RabbitMQ does not store (cluster-id, array and table
/// headers).
#[test]
fn to_amqp091_gives_back_the_0_9_1_message() {
    let c = to_amqp091(&fixture!("all_props")).unwrap();
    let mut expected = all_props();
    expected.cluster_id = None;
    assert_eq!(c.properties, expected);
    assert_eq!(c.body, Bytes::from(vec![b'x'; 300]));
    assert_eq!(c.exchange, s("a10-x"));
    assert_eq!(c.routing_key, s("rk-a10"));

    let c = to_amqp091(&fixture!("minimal")).unwrap();
    assert_eq!(c.properties, BasicProperties::default());
    assert_eq!(c.body, Bytes::from_static(b"hello"));
    assert_eq!(c.exchange, s(""));
    assert_eq!(c.routing_key.unwrap().as_bytes(), Q);

    let c = to_amqp091(&fixture!("all_headers")).unwrap();
    assert_eq!(c.properties.headers, Some(all_headers(false)));

    let c = to_amqp091(&fixture!("long_strings")).unwrap();
    assert_eq!(c.properties, long_strings());
    assert_eq!(
        to_amqp091(&fixture!("empty_body")).unwrap().body,
        Bytes::new()
    );
}

#[test]
fn body_is_a_slice_of_the_entry() {
    let entry = fixture!("all_props");
    let c = to_amqp091(&entry).unwrap();
    let at = c.body.as_ptr() as usize - entry.as_ptr() as usize;
    assert_eq!(at + c.body.len(), entry.len());
}

/// pika's headers are sorted by name once `x-stream-offset` is added, as RabbitMQ does.
#[test]
fn stream_offset_header_sorts_headers() {
    let mut p = to_amqp091(&fixture!("all_headers")).unwrap().properties;
    set_stream_offset(&mut p, 3);
    let names: Vec<_> = p
        .headers
        .as_ref()
        .unwrap()
        .iter()
        .map(|(k, _)| k.to_string())
        .collect();
    let pika = "bool bytes f32 f64 i16 i32 i32small i64 i64small i8 str ts u16 u32 u32small \
                u32zero u8 void x-stream-offset";
    assert_eq!(names.join(" "), pika);
    assert_eq!(
        p.headers.unwrap().get("x-stream-offset"),
        Some(&FieldValue::I64(3))
    );

    let mut p = BasicProperties::default();
    set_stream_offset(&mut p, 0);
    set_stream_offset(&mut p, 7);
    assert_eq!(
        p.headers,
        Some(table(vec![("x-stream-offset", FieldValue::I64(7))]))
    );
}

/// An rstream message with every property and many application-property types, as pika
/// received it from RabbitMQ 3.10.
#[test]
fn stream_client_message_as_rabbitmq_delivers_it() {
    let c = to_amqp091(&fixture!("stream_props_ap")).unwrap();
    assert_eq!(c.exchange, None);
    assert_eq!(c.routing_key, None);
    assert_eq!(c.body, Bytes::from_static(b"payload"));
    let mut p = c.properties;
    set_stream_offset(&mut p, 0);
    let expected = BasicProperties {
        content_type: s("text/plain"),
        content_encoding: s("utf-8"),
        headers: Some(table(vec![
            ("b", FieldValue::Bool(true)),
            ("big", FieldValue::I64(5_000_000_000)),
            (
                "bin",
                FieldValue::ByteArray(Bytes::from_static(b"\x00\x01")),
            ),
            ("by", FieldValue::I8(-5)),
            ("d", FieldValue::F64(1.25)),
            ("f", FieldValue::Bool(false)),
            ("fl", FieldValue::F32(0.5)),
            ("i", FieldValue::I32(7)),
            ("neg", FieldValue::I32(-3)),
            ("nul", FieldValue::Void),
            ("s", long("str")),
            ("sh", FieldValue::I16(-1000)),
            ("ts", FieldValue::Timestamp(1_700_000_000)),
            ("ub", FieldValue::U8(200)),
            ("ui", FieldValue::U32(4_000_000_000)),
            ("us", FieldValue::U16(65000)),
            ("x-stream-offset", FieldValue::I64(0)),
        ])),
        correlation_id: s("c-1"),
        reply_to: s("rt"),
        message_id: s("id-1"),
        timestamp: Some(1_700_000_000),
        kind: s("tt"),
        user_id: s("guest"),
        app_id: s("aa"),
        ..Default::default()
    };
    assert_eq!(p, expected);
}

#[test]
fn message_ids_as_rabbitmq_converts_them() {
    let p = to_amqp091(&fixture!("stream_ids_ulong_uuid"))
        .unwrap()
        .properties;
    assert_eq!(p.message_id, s("12345"));
    assert_eq!(p.correlation_id, s("01234567-89ab-cdef-0123-456789abcdef"));
    assert_eq!(
        p.headers,
        Some(table(vec![
            ("x-correlation-id-type", long("uuid")),
            ("x-message-id-type", long("ulong")),
        ]))
    );

    let p = to_amqp091(&fixture!("stream_ids_binary"))
        .unwrap()
        .properties;
    assert_eq!(p.message_id, s("AQL/"));
    assert_eq!(p.correlation_id, None);
    assert_eq!(
        p.headers,
        Some(table(vec![
            ("x-correlation-id", long(&"z".repeat(200))),
            ("x-message-id-type", long("binary")),
        ]))
    );

    let p = to_amqp091(&fixture!("stream_ids_long_str2"))
        .unwrap()
        .properties;
    assert_eq!((p.message_id, p.correlation_id), (None, None));
    assert_eq!(
        p.headers,
        Some(table(vec![
            ("x-correlation-id", long(&"c".repeat(257))),
            ("x-message-id", long(&"m".repeat(300))),
        ]))
    );

    let c = to_amqp091(&fixture!("stream_body_only")).unwrap();
    assert_eq!(c.properties, BasicProperties::default());
    assert_eq!(c.body, Bytes::from_static(b"just a body"));
}

/// Entries RabbitMQ 3.10 cannot deliver over 0-9-1 (it closes the consumer's connection):
/// Warren's documented choices.
#[test]
fn entries_rabbitmq_3_10_fails_on() {
    let c = to_amqp091(&fixture!("stream_header")).unwrap();
    assert_eq!(
        (c.properties.delivery_mode, c.properties.priority),
        (Some(2), Some(5))
    );
    assert_eq!(c.body, Bytes::from_static(b"h"));

    let c = to_amqp091(&fixture!("stream_ap_symbol")).unwrap();
    assert_eq!(
        c.properties.headers,
        Some(table(vec![("sym", long("abc"))]))
    );
    let c = to_amqp091(&fixture!("stream_ap_ulong")).unwrap();
    assert_eq!(
        c.properties.headers,
        Some(table(vec![("ul", FieldValue::I64(5))]))
    );

    let entry = fixture!("stream_value");
    let c = to_amqp091(&entry).unwrap();
    assert_eq!(c.properties.kind, s(AMQP10_TYPE));
    assert_eq!(c.body, entry);
    assert_eq!(
        Message::decode(&entry).unwrap().body,
        Body::Value(Value::string("an amqp-value string"))
    );
}

#[test]
fn every_fixture_decodes_and_reencodes() {
    for entry in [
        fixture!("minimal"),
        fixture!("empty_body"),
        fixture!("all_props"),
        fixture!("all_headers"),
        fixture!("long_strings"),
        fixture!("stream_props_ap"),
        fixture!("stream_ids_ulong_uuid"),
        fixture!("stream_ids_binary"),
        fixture!("stream_ids_long_str2"),
        fixture!("stream_body_only"),
        fixture!("stream_header"),
        fixture!("stream_ap_symbol"),
        fixture!("stream_ap_ulong"),
        fixture!("stream_value"),
    ] {
        let m = Message::decode(&entry).unwrap();
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        assert_eq!(Message::decode(&buf.freeze()).unwrap(), m);
    }
}

#[test]
fn stream_client_properties_decode_typed() {
    let m = Message::decode(&fixture!("stream_props_ap")).unwrap();
    let p = m.properties.unwrap();
    assert_eq!(p.message_id, Some(Value::string("id-1")));
    assert_eq!(p.to.as_deref(), Some(&b"dest"[..]));
    assert_eq!(p.subject.as_deref(), Some(&b"subj"[..]));
    assert_eq!(p.absolute_expiry_time, Some(1_700_000_999_000));
    assert_eq!(p.creation_time, Some(1_700_000_000_123));
    assert_eq!(p.group_sequence, Some(3));
    assert_eq!(p.reply_to_group_id.as_deref(), Some(&b"rg"[..]));
    let h = Message::decode(&fixture!("stream_header"))
        .unwrap()
        .header
        .unwrap();
    assert_eq!((h.durable, h.priority), (Some(true), Some(5)));
}

#[test]
fn malformed_input_is_a_typed_error() {
    let err = |b: &'static [u8]| Value::decode(&Bytes::from_static(b)).unwrap_err();
    assert_eq!(err(b""), Amqp10Error::Truncated);
    assert_eq!(err(b"\xa1\x05ab"), Amqp10Error::Truncated);
    assert_eq!(err(b"\x99"), Amqp10Error::UnknownCode(0x99));
    // A list claiming a million elements in four octets.
    assert!(matches!(
        err(b"\xd0\x00\x00\x00\x04\x00\x0f\x42\x40"),
        Amqp10Error::Malformed(_)
    ));
    assert!(matches!(
        err(b"\xc1\x02\x01\x40"),
        Amqp10Error::Malformed(_)
    ));
    // An array of four billion nulls in one octet.
    assert!(matches!(
        err(b"\xf0\x00\x00\x00\x05\xff\xff\xff\xff\x40"),
        Amqp10Error::Malformed(_)
    ));
    let mut deep = vec![0x45u8];
    for _ in 0..100 {
        let mut outer = vec![0xd0];
        outer.extend(((deep.len() + 4) as u32).to_be_bytes());
        outer.extend(1u32.to_be_bytes());
        outer.extend(deep);
        deep = outer;
    }
    assert_eq!(
        Value::decode(&Bytes::from(deep)).unwrap_err(),
        Amqp10Error::TooDeep
    );
    let deep: Vec<u8> = std::iter::repeat_n([0x00u8, 0x40], 100_000)
        .flatten()
        .collect();
    assert_eq!(
        Value::decode(&Bytes::from(deep)).unwrap_err(),
        Amqp10Error::TooDeep
    );
    // A described value that is no section.
    let e = to_amqp091(&Bytes::from_static(b"\x00\x53\x10\x40")).unwrap_err();
    assert_eq!(e, Amqp10Error::NotASection);
    let e = Message::decode(&Bytes::from_static(b"\x00\x53\x77\x40\x00\x53\x75\xa0\x00"));
    assert_eq!(e.unwrap_err(), Amqp10Error::MixedBody);
}

#[test]
fn values_encode_in_their_smallest_form() {
    let enc = |v: Value| {
        let mut b = BytesMut::new();
        v.encode(&mut b);
        b.to_vec()
    };
    assert_eq!(enc(Value::Ulong(0)), [0x44]);
    assert_eq!(enc(Value::Ulong(0x75)), [0x53, 0x75]);
    assert_eq!(enc(Value::Uint(300)), [0x70, 0, 0, 1, 0x2c]);
    assert_eq!(enc(Value::Long(-1)), [0x55, 0xff]);
    assert_eq!(enc(Value::List(vec![])), [0x45]);
    assert_eq!(enc(Value::List(vec![Value::Null])), [0xc0, 2, 1, 0x40]);
    assert_eq!(
        enc(Value::Array(vec![Value::Int(1)])),
        [0xe0, 6, 1, 0x71, 0, 0, 0, 1]
    );
    let big = Value::Binary(Bytes::from(vec![0; 300]));
    assert_eq!(
        &enc(Value::List(vec![big]))[..9],
        [0xd0, 0, 0, 1, 0x35, 0, 0, 0, 1]
    );
    // Sections found by symbolic descriptor too.
    let mut b = BytesMut::new();
    Value::Described(Box::new((
        Value::symbol("amqp:data:binary"),
        Value::Binary(Bytes::from_static(b"x")),
    )))
    .encode(&mut b);
    let m = Message::decode(&b.freeze()).unwrap();
    assert_eq!(m.body, Body::Data(vec![Bytes::from_static(b"x")]));
}
