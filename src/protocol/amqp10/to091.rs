//! AMQP 1.0 → AMQP 0-9-1: what a 0-9-1 consumer of a stream receives for an entry, as
//! RabbitMQ 3.10 converts it (`rabbit_stream_queue:binary_to_msg/2`, built on
//! `rabbit_msg_record:init/1`, `message_annotation/3` and `to_amqp091/1`).
//!
//! - exchange and routing key: the `x-exchange` and `x-routing-key` message annotations
//!   (utf8) when present; the caller defaults them to `""` and the stream's name, as
//!   RabbitMQ does for entries written by stream clients.
//! - properties: message-id and correlation-id (see [`message_id`]), user-id, reply-to,
//!   content-type, content-encoding, creation-time (ms → s). `to`, `subject`,
//!   absolute-expiry-time and the group fields have no 0-9-1 home and are dropped.
//! - message annotations `x-basic-priority`, `x-basic-delivery-mode`, `x-basic-expiration`
//!   become priority, delivery-mode, expiration; application properties `x-basic-type`
//!   and `x-basic-app-id` become type and app-id.
//! - the other application properties become headers, in order (see [`header_value`]),
//!   after `x-correlation-id-type` / `x-message-id-type` when those are added.
//! - body: a single data section's content, as a slice of the entry.
//!
//! Where RabbitMQ 3.10 fails (the consumer's connection is closed with INTERNAL_ERROR),
//! Warren delivers instead, choosing what later RabbitMQ versions do:
//! - a header section, delivery annotations or a footer (3.10 cannot read them) are
//!   ignored, except that a header's `durable` and `priority` give delivery-mode 2 and
//!   priority when the annotations do not (RabbitMQ 3.13).
//! - an amqp-value or amqp-sequence body, or several data sections (3.10 keeps only the
//!   last data section): the body is the AMQP 1.0 encoding of the body sections (a slice
//!   of the entry) and type is `amqp-1.0` unless `x-basic-type` says otherwise
//!   (RabbitMQ 3.11's convention).
//! - application-property values 3.10 cannot map: symbol → longstr, ulong → long (when it
//!   fits), list and array → field array, map → table (RabbitMQ 3.13); char, uuid,
//!   decimals and described values are left out.
//! - a message-id or correlation-id string longer than 255 octets goes to the
//!   `x-message-id` / `x-correlation-id` header (3.10 does that above 256 octets and fails
//!   at exactly 256).
//! - fields of the wrong type are ignored.

use super::error::Amqp10Error;
use super::section::{SectionCode, sections};
use super::value::Value;
use crate::protocol::{BasicProperties, FieldTable, FieldValue, LongStr, ShortStr};
use base64::Engine;
use bytes::Bytes;

/// A stream entry as a 0-9-1 message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Converted {
    pub properties: BasicProperties,
    pub body: Bytes,
    /// The `x-exchange` annotation, if the entry has one.
    pub exchange: Option<ShortStr>,
    /// The `x-routing-key` annotation, if the entry has one.
    pub routing_key: Option<ShortStr>,
}

/// The 0-9-1 `type` given to messages whose body is AMQP 1.0 encoded sections.
pub const AMQP10_TYPE: &str = "amqp-1.0";

/// Converts a stream entry to what a 0-9-1 consumer receives (without the
/// `x-stream-offset` header; see [`set_stream_offset`]). Fails only on entries that are
/// not a sequence of well-formed sections.
pub fn to_amqp091(entry: &Bytes) -> Result<Converted, Amqp10Error> {
    let mut header = None;
    let mut ma = Vec::new();
    let mut props = Vec::new();
    let mut ap = Vec::new();
    let mut data: Option<Bytes> = None;
    let mut body_sections = 0usize;
    let mut body_range = (0, 0);
    for s in sections(entry) {
        let s = s?;
        match (s.code, s.value) {
            (SectionCode::Header, Value::List(l)) => header = Some(l),
            (SectionCode::MessageAnnotations, Value::Map(m)) => ma = m,
            (SectionCode::Properties, Value::List(l)) => props = l,
            (SectionCode::ApplicationProperties, Value::Map(m)) => ap = m,
            (code, value) if code.is_body() => {
                if body_sections == 0 {
                    body_range.0 = s.start;
                }
                body_range.1 = s.end;
                body_sections += 1;
                data = match (code, value) {
                    (SectionCode::Data, Value::Binary(b)) => Some(b),
                    _ => None,
                };
            }
            _ => {}
        }
    }
    let (body, amqp10_body) = match (body_sections, data) {
        (0, _) => (Bytes::new(), false),
        (1, Some(b)) => (b, false),
        _ => (entry.slice(body_range.0..body_range.1), true),
    };

    let mut p = BasicProperties::default();
    let mut c = Converted {
        exchange: annotation(&ma, b"x-exchange").and_then(utf8_short),
        routing_key: annotation(&ma, b"x-routing-key").and_then(utf8_short),
        ..Converted::default()
    };
    p.priority = annotation(&ma, b"x-basic-priority").and_then(small_uint);
    p.delivery_mode = annotation(&ma, b"x-basic-delivery-mode").and_then(small_uint);
    p.expiration = annotation(&ma, b"x-basic-expiration").and_then(short);
    if let Some(h) = header {
        if p.delivery_mode.is_none() && h.first() == Some(&Value::Bool(true)) {
            p.delivery_mode = Some(2);
        }
        if p.priority.is_none() {
            p.priority = h.get(1).and_then(small_uint);
        }
    }

    let field = |i: usize| props.get(i).filter(|v| **v != Value::Null);
    p.user_id = field(1).and_then(short);
    p.reply_to = field(4).and_then(short);
    p.content_type = field(6).and_then(short);
    p.content_encoding = field(7).and_then(short);
    p.timestamp = field(9).and_then(|v| match v {
        Value::Timestamp(ms) => Some((ms / 1000) as u64),
        _ => None,
    });

    let mut kind = None;
    let mut app_id = None;
    let mut headers = Vec::with_capacity(ap.len());
    for (k, v) in &ap {
        let Value::String(key) = k else {
            if let Some(entry) = header_entry(k, v) {
                headers.push(entry);
            }
            continue;
        };
        // RabbitMQ takes the first `x-basic-type` / `x-basic-app-id` out of the map.
        if kind.is_none() && &key[..] == b"x-basic-type" {
            kind = Some(short(v));
        } else if app_id.is_none() && &key[..] == b"x-basic-app-id" {
            app_id = Some(short(v));
        } else if let Some(entry) = header_entry(k, v) {
            headers.push(entry);
        }
    }
    p.kind = kind.flatten();
    p.app_id = app_id.flatten();
    if p.kind.is_none() && amqp10_body {
        p.kind = Some(ShortStr::from_static(AMQP10_TYPE));
    }
    let mut front = Vec::new();
    p.message_id = field(0).and_then(|v| message_id(v, "x-message-id", &mut front));
    p.correlation_id = field(5).and_then(|v| message_id(v, "x-correlation-id", &mut front));
    if !front.is_empty() {
        front.reverse();
        front.extend(headers);
        headers = front;
    }
    if !headers.is_empty() {
        p.headers = Some(FieldTable(headers));
    }
    c.properties = p;
    c.body = body;
    Ok(c)
}

/// Adds the `x-stream-offset` header (a long) as RabbitMQ 3.10 does for each delivery
/// from a stream (`rabbit_basic:add_header/4`): it replaces an `x-stream-offset` already
/// there, and the headers are then sorted by name (a stable sort, octet order), which is
/// the order a 0-9-1 consumer of a stream sees.
pub fn set_stream_offset(props: &mut BasicProperties, offset: u64) {
    let headers = props.headers.get_or_insert_with(FieldTable::new);
    headers.insert("x-stream-offset", FieldValue::I64(offset as i64));
    headers.0.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
}

/// The value of the first message annotation whose key is the symbol `key`.
fn annotation<'a>(ma: &'a [(Value, Value)], key: &[u8]) -> Option<&'a Value> {
    ma.iter()
        .find(|(k, _)| matches!(k, Value::Symbol(s) if &s[..] == key))
        .map(|(_, v)| v)
}

fn utf8_short(v: &Value) -> Option<ShortStr> {
    match v {
        Value::String(s) if s.len() <= 255 => Some(ShortStr(s.clone())),
        _ => None,
    }
}

/// A string-like value as a shortstr; longer than 255 octets is no shortstr and dropped.
fn short(v: &Value) -> Option<ShortStr> {
    v.as_bytes()
        .filter(|b| b.len() <= 255)
        .map(|b| ShortStr(b.clone()))
}

fn small_uint(v: &Value) -> Option<u8> {
    let n: i128 = match *v {
        Value::Ubyte(x) => x.into(),
        Value::Ushort(x) => x.into(),
        Value::Uint(x) => x.into(),
        Value::Ulong(x) => x.into(),
        Value::Byte(x) => x.into(),
        Value::Short(x) => x.into(),
        Value::Int(x) => x.into(),
        Value::Long(x) => x.into(),
        _ => return None,
    };
    u8::try_from(n).ok()
}

/// A message-id or correlation-id as RabbitMQ 3.10's `message_id/3` converts it: a
/// string stays; a ulong becomes its decimal text and a uuid its hyphenated lowercase hex,
/// noted in a `<key>-type` header (`ulong`, `uuid`); a binary becomes base64 noted as
/// `binary`. A string, or a binary's base64, too long for a shortstr goes instead, raw, to
/// the `<key>` header. Headers are pushed to `front` in the order RabbitMQ prepends them.
fn message_id(
    v: &Value,
    key: &'static str,
    front: &mut Vec<(ShortStr, FieldValue)>,
) -> Option<ShortStr> {
    let typed = |front: &mut Vec<_>, t: &'static str| {
        front.push((
            ShortStr(Bytes::from(format!("{key}-type"))),
            FieldValue::LongStr(LongStr::from(t)),
        ))
    };
    let raw = |front: &mut Vec<_>, b: &Bytes| {
        front.push((ShortStr::from(key), FieldValue::LongStr(LongStr(b.clone()))))
    };
    match v {
        Value::String(s) if s.len() > 255 => {
            raw(front, s);
            None
        }
        Value::String(s) => Some(ShortStr(s.clone())),
        Value::Symbol(s) => (s.len() <= 255).then(|| ShortStr(s.clone())),
        Value::Ulong(n) => {
            typed(front, "ulong");
            Some(ShortStr::from(n.to_string()))
        }
        Value::Uuid(u) => {
            typed(front, "uuid");
            Some(ShortStr::from(uuid_text(u)))
        }
        Value::Binary(b) => {
            let e = base64::engine::general_purpose::STANDARD.encode(b);
            if e.len() > 255 {
                raw(front, b);
                None
            } else {
                typed(front, "binary");
                Some(ShortStr::from(e))
            }
        }
        _ => None,
    }
}

fn uuid_text(u: &[u8; 16]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// An application property as a header, when its key is a string or symbol of at most
/// 255 octets and its value has a 0-9-1 form.
fn header_entry(k: &Value, v: &Value) -> Option<(ShortStr, FieldValue)> {
    let key = match k {
        Value::String(s) | Value::Symbol(s) if s.len() <= 255 => ShortStr(s.clone()),
        _ => return None,
    };
    Some((key, header_value(v)?))
}

/// RabbitMQ 3.10's `to_091/2` (string → longstr, binary → byte array, timestamp ms → s,
/// null → void, numbers to the 0-9-1 type of the same width and signedness), extended
/// with RabbitMQ 3.13's mappings for what 3.10 fails on.
fn header_value(v: &Value) -> Option<FieldValue> {
    Some(match v {
        Value::Null => FieldValue::Void,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Ubyte(x) => FieldValue::U8(*x),
        Value::Ushort(x) => FieldValue::U16(*x),
        Value::Uint(x) => FieldValue::U32(*x),
        Value::Ulong(x) => FieldValue::I64(i64::try_from(*x).ok()?),
        Value::Byte(x) => FieldValue::I8(*x),
        Value::Short(x) => FieldValue::I16(*x),
        Value::Int(x) => FieldValue::I32(*x),
        Value::Long(x) => FieldValue::I64(*x),
        Value::Float(x) => FieldValue::F32(*x),
        Value::Double(x) => FieldValue::F64(*x),
        Value::Timestamp(ms) => FieldValue::Timestamp((ms / 1000) as u64),
        Value::Binary(b) => FieldValue::ByteArray(b.clone()),
        Value::String(s) | Value::Symbol(s) => FieldValue::LongStr(LongStr(s.clone())),
        Value::List(items) | Value::Array(items) => {
            FieldValue::Array(items.iter().filter_map(header_value).collect())
        }
        Value::Map(pairs) => FieldValue::Table(FieldTable(
            pairs
                .iter()
                .filter_map(|(k, v)| header_entry(k, v))
                .collect(),
        )),
        Value::Decimal32(_)
        | Value::Decimal64(_)
        | Value::Decimal128(_)
        | Value::Char(_)
        | Value::Uuid(_)
        | Value::Described(_) => return None,
    })
}
