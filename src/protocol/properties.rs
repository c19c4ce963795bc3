//! Content properties kept as their wire octets.
//!
//! A broker reads few properties of a message (delivery-mode, priority, expiration,
//! headers) and forwards all of them unchanged, so a content header frame's properties are
//! kept as the `Bytes` they arrived in (flags word included): decoding a header costs a
//! structure check and no allocation, and encoding a delivery copies the octets once.
//! Generated accessors (`delivery_mode()`, `headers()`, ...) read single properties;
//! [`EncodedProperties::decode`] builds the whole [`BasicProperties`].

use super::generated::BasicProperties;
use super::wire::{WireError, WireResult, be_u16};
use bytes::{Bytes, BytesMut};

/// Encoded basic properties: the property flags word(s) and the present properties.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedProperties(pub(crate) Bytes);

impl EncodedProperties {
    /// Checks `raw` (flags and properties, as in a content header after the body size).
    pub fn from_wire(raw: Bytes) -> Result<Self, WireError> {
        match Self::check(&raw) {
            Ok(([], ())) => Ok(Self(raw)),
            Ok(_) => Err(WireError::Truncated),
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(e),
            Err(nom::Err::Incomplete(_)) => Err(WireError::Truncated),
        }
    }

    /// Encodes `props` (one allocation: for messages the broker itself creates).
    pub fn encode(props: &BasicProperties) -> Self {
        let mut buf = BytesMut::new();
        props.encode(&mut buf);
        Self(buf.freeze())
    }

    /// Decodes every property. Cannot fail on values made by `from_wire` or `encode`.
    pub fn decode(&self) -> Result<BasicProperties, WireError> {
        match BasicProperties::decode(&self.0, &self.0) {
            Ok((_, p)) => Ok(p),
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(e),
            Err(nom::Err::Incomplete(_)) => Err(WireError::Truncated),
        }
    }

    /// The wire octets, flags first.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Whether no property is present.
    pub fn is_empty(&self) -> bool {
        self.0.len() < 2 || (self.0[0] == 0 && self.0[1] == 0)
    }
}

impl Default for EncodedProperties {
    fn default() -> Self {
        Self(Bytes::from_static(&[0, 0]))
    }
}

impl From<&BasicProperties> for EncodedProperties {
    fn from(p: &BasicProperties) -> Self {
        Self::encode(p)
    }
}

impl std::fmt::Debug for EncodedProperties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.decode() {
            Ok(p) => p.fmt(f),
            Err(e) => write!(f, "EncodedProperties({e:?})"),
        }
    }
}

/// Reads the first flags word and skips continuation words (0-9-1's basic class has 14
/// properties, so those carry nothing Warren knows).
pub(crate) fn property_flags(i: &[u8]) -> WireResult<'_, u16> {
    let (mut i, flags) = be_u16(i)?;
    let mut more = flags & 1 != 0;
    while more {
        let (rest, f) = be_u16(i)?;
        i = rest;
        more = f & 1 != 0;
    }
    Ok((i, flags))
}
