//! AMQP 0-9-1 as RabbitMQ speaks it, with no sockets: frames, the generated methods and
//! properties, field tables, the content assembler and the one error type.
//!
//! Everything here is synchronous and allocation-conscious: decoded strings and bodies are
//! `Bytes` slices of the frame they came from, never copies.

pub mod content;
pub mod error;
pub mod frame;
pub mod properties;
mod generated;
pub mod table;
pub mod types;
pub mod wire;

pub use content::{encode_content, Content, ContentAssembler};
pub use error::{AmqpError, Scope};
pub use frame::{check_protocol_header, encode_heartbeat, encode_method, Frame, FrameCodec, HeaderCheck};
pub use generated::*;
pub use properties::EncodedProperties;
pub use table::{Decimal, FieldTable, FieldValue};
pub use types::{LongStr, ShortStr};

#[cfg(test)]
mod tests;
