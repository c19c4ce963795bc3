//! Message sections (AMQP 1.0 part 3.2): each a described value whose descriptor is the
//! section's code (`0x70`..`0x78`, usually as `smallulong`) or its symbolic name.
//!
//! [`sections`] walks an encoded message section by section without interpreting the
//! sections' contents beyond decoding their values; [`super::Message`] and the 0-9-1
//! conversion are both built on it.

use super::error::Amqp10Error;
use super::value::{Reader, Result, Value, decode_value};
use bytes::{BufMut, Bytes, BytesMut};

/// The section kinds, with their descriptor codes as discriminants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SectionCode {
    Header = 0x70,
    DeliveryAnnotations = 0x71,
    MessageAnnotations = 0x72,
    Properties = 0x73,
    ApplicationProperties = 0x74,
    Data = 0x75,
    AmqpSequence = 0x76,
    AmqpValue = 0x77,
    Footer = 0x78,
}

impl SectionCode {
    const ALL: [(SectionCode, &'static [u8]); 9] = [
        (SectionCode::Header, b"amqp:header:list"),
        (
            SectionCode::DeliveryAnnotations,
            b"amqp:delivery-annotations:map",
        ),
        (
            SectionCode::MessageAnnotations,
            b"amqp:message-annotations:map",
        ),
        (SectionCode::Properties, b"amqp:properties:list"),
        (
            SectionCode::ApplicationProperties,
            b"amqp:application-properties:map",
        ),
        (SectionCode::Data, b"amqp:data:binary"),
        (SectionCode::AmqpSequence, b"amqp:amqp-sequence:list"),
        (SectionCode::AmqpValue, b"amqp:amqp-value:*"),
        (SectionCode::Footer, b"amqp:footer:map"),
    ];

    fn from_descriptor(d: &Value) -> Option<SectionCode> {
        match d {
            Value::Ulong(code) => Self::ALL
                .iter()
                .find(|(c, _)| *c as u64 == *code)
                .map(|(c, _)| *c),
            Value::Symbol(name) => Self::ALL
                .iter()
                .find(|(_, n)| *n == &name[..])
                .map(|(c, _)| *c),
            _ => None,
        }
    }

    /// Whether the section is (part of) the body.
    pub fn is_body(self) -> bool {
        matches!(
            self,
            SectionCode::Data | SectionCode::AmqpSequence | SectionCode::AmqpValue
        )
    }
}

/// One decoded section: its kind, its value (the described value's inner value) and where
/// it lies in the message.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSection {
    pub code: SectionCode,
    pub value: Value,
    /// Offset of the section's first octet (the `0x00` of its descriptor).
    pub start: usize,
    /// Offset just past the section.
    pub end: usize,
}

/// Iterates over the sections of an encoded message. Yields an error (and then nothing)
/// when a top-level value is malformed or not a known section.
pub fn sections(entry: &Bytes) -> Sections<'_> {
    Sections {
        r: Reader::new(entry),
        failed: false,
    }
}

/// See [`sections`].
pub struct Sections<'a> {
    r: Reader<'a>,
    failed: bool,
}

impl Iterator for Sections<'_> {
    type Item = Result<RawSection>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.r.is_empty() {
            return None;
        }
        let start = self.r.pos();
        let section = match decode_value(&mut self.r, 0) {
            Ok(Value::Described(dv)) => {
                let (descriptor, value) = *dv;
                match SectionCode::from_descriptor(&descriptor) {
                    Some(code) => Ok(RawSection {
                        code,
                        value,
                        start,
                        end: self.r.pos(),
                    }),
                    None => Err(Amqp10Error::NotASection),
                }
            }
            Ok(_) => Err(Amqp10Error::NotASection),
            Err(e) => Err(e),
        };
        self.failed = section.is_err();
        Some(section)
    }
}

/// Writes a section's descriptor (`0x00 0x53 code`, the form RabbitMQ and the clients
/// write); its value follows.
pub(crate) fn put_descriptor(buf: &mut BytesMut, code: SectionCode) {
    buf.put_slice(&[0x00, 0x53, code as u8]);
}
