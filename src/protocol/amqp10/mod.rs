//! The AMQP 1.0 *message format* (not the AMQP 1.0 protocol): the encoding streams store
//! every message in.
//!
//! Stream clients publish AMQP 1.0 encoded messages; a message published over AMQP 0-9-1
//! into a stream is stored as the AMQP 1.0 message RabbitMQ 3.10 makes of it
//! ([`from_amqp091`]), and a 0-9-1 consumer of a stream receives each entry converted back
//! ([`to_amqp091`], then [`set_stream_offset`]).
//!
//! - [`value`]: the type system (primitive, compound and described values), zero-copy
//!   decoding, smallest-form encoding.
//! - [`section`]: message sections and a walker over an encoded message.
//! - [`message`]: [`Message`], every section typed.
//! - [`from091`] / [`to091`]: the conversions, RabbitMQ 3.10's choices.
//!
//! No decoder here panics on any input; recursion is bounded by [`MAX_DEPTH`].

pub mod error;
pub mod from091;
pub mod message;
pub mod section;
pub mod to091;
pub mod value;

pub use error::Amqp10Error;
pub use from091::from_amqp091;
pub use message::{Body, Header, Message, Pairs, Properties};
pub use section::{RawSection, SectionCode, sections};
pub use to091::{AMQP10_TYPE, Converted, set_stream_offset, to_amqp091};
pub use value::{MAX_DEPTH, Value};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
