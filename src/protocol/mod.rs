//! AMQP 0-9-1 as RabbitMQ speaks it, with no sockets: frames, the generated methods and
//! properties, field tables, the content assembler and the one error type.
//!
//! Everything here is synchronous and allocation-conscious: decoded strings and bodies are
//! `Bytes` slices of the frame they came from, never copies.

pub mod content;
pub mod error;
pub mod frame;
mod generated;
pub mod output;
pub mod properties;
pub mod stream;
pub mod table;
pub mod types;
pub mod wire;

pub use content::{Content, ContentAssembler, encode_content};
pub use error::{AmqpError, Scope};
pub use frame::{
    Frame, FrameCodec, HeaderCheck, check_protocol_header, encode_heartbeat, encode_method,
};
pub use generated::*;
pub use output::Output;
pub use properties::EncodedProperties;
pub use table::{Decimal, FieldTable, FieldValue};
pub use types::{LongStr, ShortStr};

#[cfg(test)]
mod tests;
