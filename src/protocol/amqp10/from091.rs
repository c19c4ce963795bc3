//! AMQP 0-9-1 → AMQP 1.0: the entry a stream stores for a message published over 0-9-1,
//! octet for octet what RabbitMQ 3.10 writes (`rabbit_stream_queue:msg_to_iodata/1`, built
//! on `rabbit_msg_record:from_amqp091/2`, `add_message_annotations/2` and `to_iodata/1`,
//! with `amqp10_binary_generator`'s encodings).
//!
//! The entry is, in order:
//!
//! 1. message-annotations (0x72), always: `x-routing-key` and `x-exchange` (utf8), then
//!    `x-basic-priority` and `x-basic-delivery-mode` (ubyte) and `x-basic-expiration`
//!    (utf8) for those 0-9-1 properties that are set. Keys are symbols.
//! 2. properties (0x73), when any of message-id, user-id, reply-to, correlation-id,
//!    content-type, content-encoding, timestamp is set: all 13 fields, absent ones `null`.
//!    message-id, reply-to, correlation-id are utf8; user-id binary; content-type and
//!    content-encoding symbols; timestamp becomes creation-time in milliseconds.
//! 3. application-properties (0x74), when not empty: `x-basic-type` and `x-basic-app-id`
//!    (utf8) when set, then the headers in their order, each value by
//!    [`put_header_value`]'s mapping. Array (`A`) and table (`F`) headers are left out, as
//!    RabbitMQ does. cluster-id is dropped, as RabbitMQ does.
//! 4. one data section (0x75) with the body.
//!
//! RabbitMQ's encoder choices kept here: strings and binaries shorter than 255 octets are
//! `str8`/`vbin8`, longer ones (255 included) `str32`/`vbin32`; symbols are always `sym8`;
//! a map or list is the 8-bit form when it has fewer than 255 elements and its size with
//! the count octet is below 256; `int` and `long` in -128..=127 are `smallint` and
//! `smalllong`; `uint` 0 is `uint0` and below 256 `smalluint`; booleans are `0x56 b`.
//!
//! Nothing is allocated but the output buffer's growth.

use super::section::{SectionCode, put_descriptor};
use super::value::put_compound;
use crate::protocol::{BasicProperties, FieldTable, FieldValue};
use bytes::{BufMut, BytesMut};

/// Appends to `out` the AMQP 1.0 entry RabbitMQ 3.10 stores in a stream for a message
/// published over 0-9-1 to `exchange` with `routing_key`.
pub fn from_amqp091(
    exchange: &[u8],
    routing_key: &[u8],
    props: &BasicProperties,
    body: &[u8],
    out: &mut BytesMut,
) {
    out.reserve(body.len() + 64 + exchange.len() + routing_key.len());
    put_message_annotations(out, exchange, routing_key, props);
    put_properties(out, props);
    put_application_properties(out, props);
    put_descriptor(out, SectionCode::Data);
    put_binary(out, body);
}

fn put_message_annotations(
    out: &mut BytesMut,
    exchange: &[u8],
    routing_key: &[u8],
    p: &BasicProperties,
) {
    put_descriptor(out, SectionCode::MessageAnnotations);
    let count = 2
        + usize::from(p.priority.is_some())
        + usize::from(p.delivery_mode.is_some())
        + usize::from(p.expiration.is_some());
    put_compound(out, 0xc1, 0xd1, count * 2, 255, |out| {
        put_symbol(out, b"x-routing-key");
        put_utf8(out, routing_key);
        put_symbol(out, b"x-exchange");
        put_utf8(out, exchange);
        if let Some(v) = p.priority {
            put_symbol(out, b"x-basic-priority");
            out.put_slice(&[0x50, v]);
        }
        if let Some(v) = p.delivery_mode {
            put_symbol(out, b"x-basic-delivery-mode");
            out.put_slice(&[0x50, v]);
        }
        if let Some(v) = &p.expiration {
            put_symbol(out, b"x-basic-expiration");
            put_utf8(out, v.as_bytes());
        }
    });
}

fn put_properties(out: &mut BytesMut, p: &BasicProperties) {
    let any = p.message_id.is_some()
        || p.user_id.is_some()
        || p.reply_to.is_some()
        || p.correlation_id.is_some()
        || p.content_type.is_some()
        || p.content_encoding.is_some()
        || p.timestamp.is_some();
    if !any {
        return;
    }
    put_descriptor(out, SectionCode::Properties);
    put_compound(out, 0xc0, 0xd0, 13, 255, |out| {
        let null = |out: &mut BytesMut| out.put_u8(0x40);
        match &p.message_id {
            Some(v) => put_utf8(out, v.as_bytes()),
            None => null(out),
        }
        match &p.user_id {
            Some(v) => put_binary(out, v.as_bytes()),
            None => null(out),
        }
        null(out); // to
        null(out); // subject
        match &p.reply_to {
            Some(v) => put_utf8(out, v.as_bytes()),
            None => null(out),
        }
        match &p.correlation_id {
            Some(v) => put_utf8(out, v.as_bytes()),
            None => null(out),
        }
        match &p.content_type {
            Some(v) => put_symbol(out, v.as_bytes()),
            None => null(out),
        }
        match &p.content_encoding {
            Some(v) => put_symbol(out, v.as_bytes()),
            None => null(out),
        }
        null(out); // absolute-expiry-time
        match p.timestamp {
            Some(t) => put_timestamp_secs(out, t),
            None => null(out),
        }
        out.put_bytes(0x40, 3); // group-id, group-sequence, reply-to-group-id
    });
}

/// Whether RabbitMQ 3.10 carries a header of this type into application-properties
/// (`unsupported_header_value_type/1` drops arrays and tables; a decimal makes RabbitMQ
/// 3.10 fail the publish with an internal error, so Warren drops it instead).
fn header_carried(v: &FieldValue) -> bool {
    !matches!(
        v,
        FieldValue::Array(_) | FieldValue::Table(_) | FieldValue::Decimal(_)
    )
}

fn put_application_properties(out: &mut BytesMut, p: &BasicProperties) {
    let empty = FieldTable::new();
    let headers = p.headers.as_ref().unwrap_or(&empty);
    let carried = headers.iter().filter(|(_, v)| header_carried(v)).count();
    let count = carried + usize::from(p.kind.is_some()) + usize::from(p.app_id.is_some());
    if count == 0 {
        return;
    }
    put_descriptor(out, SectionCode::ApplicationProperties);
    put_compound(out, 0xc1, 0xd1, count * 2, 255, |out| {
        if let Some(v) = &p.kind {
            put_utf8(out, b"x-basic-type");
            put_utf8(out, v.as_bytes());
        }
        if let Some(v) = &p.app_id {
            put_utf8(out, b"x-basic-app-id");
            put_utf8(out, v.as_bytes());
        }
        for (k, v) in headers.iter().filter(|(_, v)| header_carried(v)) {
            put_utf8(out, k.as_bytes());
            put_header_value(out, v);
        }
    });
}

/// A header value as RabbitMQ 3.10's `from_091/2` maps it: longstr → utf8, byte array →
/// binary, timestamp (seconds) → timestamp (milliseconds), void → null, each integer and
/// float type to the AMQP 1.0 type of the same width and signedness, boolean → boolean.
/// Only called for the types [`header_carried`] accepts.
fn put_header_value(out: &mut BytesMut, v: &FieldValue) {
    match v {
        FieldValue::Bool(b) => out.put_slice(&[0x56, u8::from(*b)]),
        FieldValue::I8(x) => out.put_slice(&[0x51, *x as u8]),
        FieldValue::U8(x) => out.put_slice(&[0x50, *x]),
        FieldValue::I16(x) => {
            out.put_u8(0x61);
            out.put_i16(*x);
        }
        FieldValue::U16(x) => {
            out.put_u8(0x60);
            out.put_u16(*x);
        }
        FieldValue::I32(x) => match i8::try_from(*x) {
            Ok(small) => out.put_slice(&[0x54, small as u8]),
            Err(_) => {
                out.put_u8(0x71);
                out.put_i32(*x);
            }
        },
        FieldValue::U32(x) => match *x {
            0 => out.put_u8(0x43),
            1..=255 => out.put_slice(&[0x52, *x as u8]),
            _ => {
                out.put_u8(0x70);
                out.put_u32(*x);
            }
        },
        FieldValue::I64(x) => match i8::try_from(*x) {
            Ok(small) => out.put_slice(&[0x55, small as u8]),
            Err(_) => {
                out.put_u8(0x81);
                out.put_i64(*x);
            }
        },
        FieldValue::F32(x) => {
            out.put_u8(0x72);
            out.put_u32(x.to_bits());
        }
        FieldValue::F64(x) => {
            out.put_u8(0x82);
            out.put_u64(x.to_bits());
        }
        FieldValue::LongStr(s) => put_utf8(out, s.as_bytes()),
        FieldValue::ByteArray(b) => put_binary(out, b),
        FieldValue::Timestamp(t) => put_timestamp_secs(out, *t),
        FieldValue::Void => out.put_u8(0x40),
        FieldValue::Decimal(_) | FieldValue::Array(_) | FieldValue::Table(_) => out.put_u8(0x40),
    }
}

/// A 0-9-1 timestamp (seconds) as an AMQP 1.0 timestamp (milliseconds). RabbitMQ
/// multiplies an Erlang integer and writes its low 64 bits, which wrapping arithmetic
/// reproduces.
fn put_timestamp_secs(out: &mut BytesMut, secs: u64) {
    out.put_u8(0x83);
    out.put_u64(secs.wrapping_mul(1000));
}

fn put_utf8(out: &mut BytesMut, s: &[u8]) {
    put_var(out, 0xa1, 0xb1, s)
}

fn put_binary(out: &mut BytesMut, b: &[u8]) {
    put_var(out, 0xa0, 0xb0, b)
}

/// `sym8`, always: RabbitMQ's symbols here (content type and encoding, annotation keys)
/// are at most 255 octets. A longer one (impossible from a 0-9-1 shortstr) is cut.
fn put_symbol(out: &mut BytesMut, s: &[u8]) {
    let s = &s[..s.len().min(255)];
    out.put_slice(&[0xa3, s.len() as u8]);
    out.put_slice(s);
}

/// The 8-bit form below 255 octets, else the 32-bit form (RabbitMQ's `?VAR_1_LIMIT`).
fn put_var(out: &mut BytesMut, small: u8, large: u8, b: &[u8]) {
    if b.len() < 255 {
        out.put_slice(&[small, b.len() as u8]);
    } else {
        out.put_u8(large);
        out.put_u32(b.len() as u32);
    }
    out.put_slice(b);
}
