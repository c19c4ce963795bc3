//! Byte-exact test vectors, written by hand from the AMQP 0-9-1 specification (and
//! RabbitMQ's field-table dialect), checked in both directions: decode and encode.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;
use warren::protocol::table::{decode_table, encode_table};
use warren::protocol::*;

fn decode_one(bytes: &[u8]) -> Frame {
    let mut codec = FrameCodec::new(0);
    let mut buf = BytesMut::from(bytes);
    let frame = codec.decode(&mut buf).unwrap().expect("a whole frame");
    assert!(buf.is_empty());
    frame
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn connection_start() {
    let wire = concat(&[
        &[1, 0, 0, 0, 0, 0, 56], // method frame, channel 0, size 56
        &[0, 10, 0, 10],         // connection.start
        &[0, 9],                 // version 0-9
        &[0, 0, 0, 19, 7],       // server-properties: 19 octets; key of 7
        b"productS\x00\x00\x00\x06Warren",
        &[0, 0, 0, 14],
        b"PLAIN AMQPLAIN",
        &[0, 0, 0, 5],
        b"en_US",
        &[0xCE],
    ]);
    let mut props = FieldTable::new();
    props.insert("product", "Warren");
    let method: Method = ConnectionStart {
        version_major: 0,
        version_minor: 9,
        server_properties: props,
        mechanisms: "PLAIN AMQPLAIN".into(),
        locales: "en_US".into(),
    }
    .into();
    let mut out = BytesMut::new();
    encode_method(&mut out, 0, &method);
    assert_eq!(&out[..], &wire[..]);
    assert_eq!(decode_one(&wire), Frame::Method { channel: 0, method });
}

#[test]
fn connection_tune() {
    let wire = [
        1, 0, 0, 0, 0, 0, 12, // method frame, channel 0, size 12
        0, 10, 0, 30, // connection.tune
        0x07, 0xFF, // channel-max 2047
        0, 2, 0, 0, // frame-max 131072
        0, 60, // heartbeat 60
        0xCE,
    ];
    let method: Method = ConnectionTune {
        channel_max: 2047,
        frame_max: 131072,
        heartbeat: 60,
    }
    .into();
    let mut out = BytesMut::new();
    encode_method(&mut out, 0, &method);
    assert_eq!(&out[..], &wire[..]);
    assert_eq!(decode_one(&wire), Frame::Method { channel: 0, method });
}

#[test]
fn basic_publish_header_and_body() {
    let body = b"0123456789abcdef";
    let wire = concat(&[
        &[1, 0, 1, 0, 0, 0, 10], // method frame, channel 1, size 10
        &[0, 60, 0, 40],         // basic.publish
        &[0, 0],                 // ticket
        &[0],                    // exchange ""
        &[1, b'q'],              // routing-key "q"
        &[0b01],                 // mandatory=1, immediate=0
        &[0xCE],
        &[2, 0, 1, 0, 0, 0, 26],    // header frame, channel 1, size 26
        &[0, 60, 0, 0],             // class basic, weight 0
        &[0, 0, 0, 0, 0, 0, 0, 16], // body size 16
        &[0x90, 0x00],              // flags: content-type (bit 15), delivery-mode (bit 12)
        &[10],
        b"text/plain",
        &[2], // persistent
        &[0xCE],
        &[3, 0, 1, 0, 0, 0, 16], // body frame, channel 1, size 16
        body,
        &[0xCE],
    ]);
    let method: Method = BasicPublish {
        exchange: "".into(),
        routing_key: "q".into(),
        mandatory: true,
        immediate: false,
    }
    .into();
    let props = EncodedProperties::from(&BasicProperties {
        content_type: Some("text/plain".into()),
        delivery_mode: Some(2),
        ..Default::default()
    });
    let mut out = BytesMut::new();
    encode_content(&mut out, 1, &method, &props, body, 131072);
    assert_eq!(&out[..], &wire[..]);

    let mut codec = FrameCodec::new(131072);
    let mut buf = BytesMut::from(&wire[..]);
    let mut asm = ContentAssembler::default();
    let mut got = None;
    while let Some(f) = codec.decode(&mut buf).unwrap() {
        got = asm.push(f).unwrap();
    }
    assert_eq!(
        got,
        Some(content::Assembled::Content(Content {
            method,
            properties: props,
            body: Bytes::from_static(body),
        }))
    );
}

#[test]
fn basic_deliver() {
    let wire = concat(&[
        &[1, 0, 1, 0, 0, 0, 24],
        &[0, 60, 0, 60], // basic.deliver
        &[4],
        b"ctag",
        &[0, 0, 0, 0, 0, 0, 0, 1], // delivery-tag 1
        &[1],                      // redelivered
        &[2],
        b"ex",
        &[2],
        b"rk",
        &[0xCE],
    ]);
    let method: Method = BasicDeliver {
        consumer_tag: "ctag".into(),
        delivery_tag: 1,
        redelivered: true,
        exchange: "ex".into(),
        routing_key: "rk".into(),
    }
    .into();
    let mut out = BytesMut::new();
    encode_method(&mut out, 1, &method);
    assert_eq!(&out[..], &wire[..]);
    assert_eq!(decode_one(&wire), Frame::Method { channel: 1, method });
}

#[test]
fn table_with_every_value_type() {
    let entries: Vec<(&[u8], FieldValue)> = vec![
        (b"\x01tt\x01", FieldValue::Bool(true)),
        (b"\x01bb\xFE", FieldValue::I8(-2)),
        (b"\x01BB\xFE", FieldValue::U8(254)),
        (b"\x01ss\xFF\xFE", FieldValue::I16(-2)),
        (b"\x01uu\xFF\xFE", FieldValue::U16(65534)),
        (b"\x01II\xFF\xFF\xFF\xFE", FieldValue::I32(-2)),
        (b"\x01ii\xFF\xFF\xFF\xFE", FieldValue::U32(4294967294)),
        (
            b"\x01ll\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFE",
            FieldValue::I64(-2),
        ),
        (b"\x01ff\x3F\xC0\x00\x00", FieldValue::F32(1.5)),
        (
            b"\x01dd\x3F\xF8\x00\x00\x00\x00\x00\x00",
            FieldValue::F64(1.5),
        ),
        (
            b"\x01DD\x02\x00\x00\x01\x3B",
            FieldValue::Decimal(Decimal {
                scale: 2,
                value: 315,
            }),
        ),
        (
            b"\x01SS\x00\x00\x00\x02hi",
            FieldValue::LongStr("hi".into()),
        ),
        (
            b"\x01xx\x00\x00\x00\x02\x00\xFF",
            FieldValue::ByteArray(Bytes::from_static(b"\x00\xFF")),
        ),
        (
            b"\x01AA\x00\x00\x00\x04b\x01VV",
            FieldValue::Array(vec![FieldValue::I8(1), FieldValue::Void, FieldValue::Void]),
        ),
        (
            b"\x01TT\x00\x00\x00\x00\x65\x53\xF1\x00",
            FieldValue::Timestamp(1_700_000_000),
        ),
        (
            b"\x01FF\x00\x00\x00\x04\x01kt\x00",
            FieldValue::Table({
                let mut t = FieldTable::new();
                t.insert("k", false);
                t
            }),
        ),
        (b"\x01VV", FieldValue::Void),
    ];
    let body: Vec<u8> = entries
        .iter()
        .flat_map(|(b, _)| b.iter().copied())
        .collect();
    let mut wire = (body.len() as u32).to_be_bytes().to_vec();
    wire.extend_from_slice(&body);
    let table = FieldTable(
        entries
            .iter()
            .map(|(b, v)| {
                (
                    ShortStr::from(std::str::from_utf8(&b[1..2]).unwrap()),
                    v.clone(),
                )
            })
            .collect(),
    );
    assert_eq!(decode_table(&Bytes::from(wire.clone())).unwrap(), table);
    let mut out = BytesMut::new();
    encode_table(&table, &mut out);
    assert_eq!(&out[..], &wire[..]);
}

#[test]
fn heartbeat() {
    let wire = [8, 0, 0, 0, 0, 0, 0, 0xCE];
    let mut out = BytesMut::new();
    encode_heartbeat(&mut out);
    assert_eq!(&out[..], &wire[..]);
    assert_eq!(decode_one(&wire), Frame::Heartbeat);
}
