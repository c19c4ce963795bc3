//! The one error type of the AMQP 1.0 message-format codec.

use super::value::MAX_DEPTH;

/// Why bytes are not an AMQP 1.0 value or message. Every decoder returns one of these on
/// bad input; none panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Amqp10Error {
    /// The input ended before a value did, or a size points past the input.
    #[error("AMQP 1.0 value truncated")]
    Truncated,
    /// A constructor byte that is no AMQP 1.0 format code.
    #[error("unknown AMQP 1.0 format code 0x{0:02x}")]
    UnknownCode(u8),
    /// Lists, maps, arrays or described values nested deeper than [`MAX_DEPTH`].
    #[error("AMQP 1.0 values nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A compound value whose size, count or content do not agree.
    #[error("malformed AMQP 1.0 {0}")]
    Malformed(&'static str),
    /// A top-level value that is not a described message section (0x70..0x78).
    #[error("not an AMQP 1.0 message section")]
    NotASection,
    /// A section field of a type its definition does not allow.
    #[error("AMQP 1.0 {section} field `{field}` has the wrong type")]
    FieldType {
        section: &'static str,
        field: &'static str,
    },
    /// Body sections of different kinds (data, amqp-sequence, amqp-value) in one message.
    #[error("AMQP 1.0 message mixes body section kinds")]
    MixedBody,
}
