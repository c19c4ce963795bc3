//! A whole AMQP 1.0 message: its sections as typed fields.
//!
//! Absent fields are `None` (a field encoded as `null` decodes to `None` as well). String
//! fields accept any of string, symbol and binary on decode, since clients are not all
//! strict about which they send; encoding writes each field's defined type. Decoding keeps
//! binary data (the body included) as slices of the input.

use super::error::Amqp10Error;
use super::section::{SectionCode, put_descriptor, sections};
use super::value::{Result, Value, encode_list, encode_map};
use bytes::{Bytes, BytesMut};

/// Annotations and application properties: pairs in wire order.
pub type Pairs = Vec<(Value, Value)>;

/// The header section (0x70): delivery details for intermediaries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Header {
    pub durable: Option<bool>,
    pub priority: Option<u8>,
    /// Milliseconds.
    pub ttl: Option<u32>,
    pub first_acquirer: Option<bool>,
    pub delivery_count: Option<u32>,
}

/// The properties section (0x73): the bare message's immutable properties.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Properties {
    /// ulong, uuid, binary or string.
    pub message_id: Option<Value>,
    pub user_id: Option<Bytes>,
    pub to: Option<Bytes>,
    pub subject: Option<Bytes>,
    pub reply_to: Option<Bytes>,
    /// ulong, uuid, binary or string.
    pub correlation_id: Option<Value>,
    /// A symbol.
    pub content_type: Option<Bytes>,
    /// A symbol.
    pub content_encoding: Option<Bytes>,
    /// Milliseconds since the epoch.
    pub absolute_expiry_time: Option<i64>,
    /// Milliseconds since the epoch.
    pub creation_time: Option<i64>,
    pub group_id: Option<Bytes>,
    pub group_sequence: Option<u32>,
    pub reply_to_group_id: Option<Bytes>,
}

/// The body: one or more data sections, one or more amqp-sequence sections, or one
/// amqp-value section. `Data(vec![])` is a message without a body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Data(Vec<Bytes>),
    Sequence(Vec<Vec<Value>>),
    Value(Value),
}

impl Default for Body {
    fn default() -> Self {
        Body::Data(Vec::new())
    }
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    pub header: Option<Header>,
    pub delivery_annotations: Option<Pairs>,
    pub message_annotations: Option<Pairs>,
    pub properties: Option<Properties>,
    pub application_properties: Option<Pairs>,
    pub body: Body,
    pub footer: Option<Pairs>,
}

impl Message {
    /// Decodes the sections of `entry`, in any order; a repeated non-body section replaces
    /// the earlier one. Errors on malformed input, unknown sections, fields of the wrong
    /// type and bodies mixing section kinds.
    pub fn decode(entry: &Bytes) -> Result<Message> {
        let mut m = Message::default();
        let mut body_kind = None;
        for s in sections(entry) {
            let s = s?;
            if s.code.is_body() {
                if body_kind.is_some_and(|k| k != s.code)
                    || body_kind == Some(SectionCode::AmqpValue)
                {
                    return Err(Amqp10Error::MixedBody);
                }
                body_kind = Some(s.code);
            }
            match s.code {
                SectionCode::Header => m.header = Some(header(s.value)?),
                SectionCode::DeliveryAnnotations => {
                    m.delivery_annotations = Some(pairs(s.value, "delivery-annotations")?)
                }
                SectionCode::MessageAnnotations => {
                    m.message_annotations = Some(pairs(s.value, "message-annotations")?)
                }
                SectionCode::Properties => m.properties = Some(properties(s.value)?),
                SectionCode::ApplicationProperties => {
                    m.application_properties = Some(pairs(s.value, "application-properties")?)
                }
                SectionCode::Footer => m.footer = Some(pairs(s.value, "footer")?),
                SectionCode::Data => match (&mut m.body, s.value) {
                    (Body::Data(d), Value::Binary(b)) => d.push(b),
                    _ => return Err(field_type("data", "content")),
                },
                SectionCode::AmqpSequence => {
                    let items = match s.value {
                        Value::List(items) => items,
                        _ => return Err(field_type("amqp-sequence", "content")),
                    };
                    match &mut m.body {
                        Body::Sequence(seq) => seq.push(items),
                        body => *body = Body::Sequence(vec![items]),
                    }
                }
                SectionCode::AmqpValue => m.body = Body::Value(s.value),
            }
        }
        Ok(m)
    }

    /// Appends the message's sections to `buf`, in the order the specification gives.
    pub fn encode(&self, buf: &mut BytesMut) {
        if let Some(h) = &self.header {
            put_list(buf, SectionCode::Header, header_fields(h));
        }
        let maps = [
            (SectionCode::DeliveryAnnotations, &self.delivery_annotations),
            (SectionCode::MessageAnnotations, &self.message_annotations),
        ];
        for (code, map) in maps {
            if let Some(p) = map {
                put_map(buf, code, p);
            }
        }
        if let Some(p) = &self.properties {
            put_list(buf, SectionCode::Properties, properties_fields(p));
        }
        if let Some(p) = &self.application_properties {
            put_map(buf, SectionCode::ApplicationProperties, p);
        }
        match &self.body {
            Body::Data(d) => {
                for b in d {
                    put_descriptor(buf, SectionCode::Data);
                    Value::Binary(b.clone()).encode(buf);
                }
            }
            Body::Sequence(seq) => {
                for items in seq {
                    put_descriptor(buf, SectionCode::AmqpSequence);
                    encode_list(buf, items);
                }
            }
            Body::Value(v) => {
                put_descriptor(buf, SectionCode::AmqpValue);
                v.encode(buf);
            }
        }
        if let Some(p) = &self.footer {
            put_map(buf, SectionCode::Footer, p);
        }
    }
}

fn field_type(section: &'static str, field: &'static str) -> Amqp10Error {
    Amqp10Error::FieldType { section, field }
}

fn pairs(v: Value, section: &'static str) -> Result<Pairs> {
    match v {
        Value::Map(p) => Ok(p),
        Value::Null => Ok(Vec::new()),
        _ => Err(field_type(section, "map")),
    }
}

fn list(v: Value, section: &'static str) -> Result<Vec<Value>> {
    match v {
        Value::List(items) => Ok(items),
        _ => Err(field_type(section, "list")),
    }
}

/// Typed readers of list fields: `null` and a missing field are `None`.
macro_rules! field {
    ($section:literal, $name:literal, $v:expr, $($pat:pat => $out:expr),+) => {
        match $v {
            None | Some(Value::Null) => None,
            $(Some($pat) => Some($out),)+
            Some(_) => return Err(field_type($section, $name)),
        }
    };
}

fn header(v: Value) -> Result<Header> {
    let mut f = list(v, "header")?.into_iter();
    Ok(Header {
        durable: field!("header", "durable", f.next(), Value::Bool(b) => b),
        priority: field!("header", "priority", f.next(), Value::Ubyte(p) => p),
        ttl: field!("header", "ttl", f.next(), Value::Uint(t) => t),
        first_acquirer: field!("header", "first-acquirer", f.next(), Value::Bool(b) => b),
        delivery_count: field!("header", "delivery-count", f.next(), Value::Uint(c) => c),
    })
}

fn properties(v: Value) -> Result<Properties> {
    let mut f = list(v, "properties")?.into_iter();
    macro_rules! text {
        ($name:literal) => {
            field!("properties", $name, f.next(),
                Value::String(b) => b, Value::Symbol(b) => b, Value::Binary(b) => b)
        };
    }
    macro_rules! id {
        ($name:literal) => {
            field!("properties", $name, f.next(),
                v @ (Value::Ulong(_) | Value::Uuid(_) | Value::Binary(_) | Value::String(_)) => v)
        };
    }
    Ok(Properties {
        message_id: id!("message-id"),
        user_id: text!("user-id"),
        to: text!("to"),
        subject: text!("subject"),
        reply_to: text!("reply-to"),
        correlation_id: id!("correlation-id"),
        content_type: text!("content-type"),
        content_encoding: text!("content-encoding"),
        absolute_expiry_time: field!("properties", "absolute-expiry-time", f.next(),
            Value::Timestamp(t) => t),
        creation_time: field!("properties", "creation-time", f.next(), Value::Timestamp(t) => t),
        group_id: text!("group-id"),
        group_sequence: field!("properties", "group-sequence", f.next(), Value::Uint(s) => s),
        reply_to_group_id: text!("reply-to-group-id"),
    })
}

fn header_fields(h: &Header) -> Vec<Value> {
    vec![
        h.durable.map(Value::Bool).unwrap_or(Value::Null),
        h.priority.map(Value::Ubyte).unwrap_or(Value::Null),
        h.ttl.map(Value::Uint).unwrap_or(Value::Null),
        h.first_acquirer.map(Value::Bool).unwrap_or(Value::Null),
        h.delivery_count.map(Value::Uint).unwrap_or(Value::Null),
    ]
}

fn properties_fields(p: &Properties) -> Vec<Value> {
    let s = |b: &Option<Bytes>, f: fn(Bytes) -> Value| b.clone().map(f).unwrap_or(Value::Null);
    vec![
        p.message_id.clone().unwrap_or(Value::Null),
        s(&p.user_id, Value::Binary),
        s(&p.to, Value::String),
        s(&p.subject, Value::String),
        s(&p.reply_to, Value::String),
        p.correlation_id.clone().unwrap_or(Value::Null),
        s(&p.content_type, Value::Symbol),
        s(&p.content_encoding, Value::Symbol),
        p.absolute_expiry_time
            .map(Value::Timestamp)
            .unwrap_or(Value::Null),
        p.creation_time.map(Value::Timestamp).unwrap_or(Value::Null),
        s(&p.group_id, Value::String),
        p.group_sequence.map(Value::Uint).unwrap_or(Value::Null),
        s(&p.reply_to_group_id, Value::String),
    ]
}

/// Writes a list section, leaving out trailing `null` fields (the specification allows
/// it and it is what the clients do).
fn put_list(buf: &mut BytesMut, code: SectionCode, mut fields: Vec<Value>) {
    while fields.last() == Some(&Value::Null) {
        fields.pop();
    }
    put_descriptor(buf, code);
    encode_list(buf, &fields);
}

fn put_map(buf: &mut BytesMut, code: SectionCode, pairs: &Pairs) {
    put_descriptor(buf, code);
    encode_map(buf, pairs);
}
