//! RabbitMQ's binary stream protocol (the `rabbitmq_stream` plugin's, port 5552), with no
//! sockets: frame splitting with frame_max, the commands a client sends
//! ([`ClientCommand`]) and those the server sends ([`ServerCommand`]), both ways each
//! (the server decodes the first and encodes the second; clients the reverse).
//!
//! The reference is rabbitmq-server's `deps/rabbitmq_stream/docs/PROTOCOL.adoc` and
//! `rabbit_stream_core.erl`: RabbitMQ 3.10's commands, plus what 3.11+ added (Route,
//! Partitions, ConsumerUpdate, ExchangeCommandVersions, StreamStats, Deliver v2 with the
//! committed chunk id, Publish v2 with filter values).
//!
//! Decoding copies nothing: strings and message payloads are `Bytes` slices of the frame,
//! and a publish frame's messages are read one by one from it ([`Publish::messages`]).

pub mod client;
pub mod codes;
pub mod frame;
pub mod publish;
pub mod server;
pub mod wire;

pub use client::{ClientCommand, CommandVersion, OffsetSpec};
pub use codes::{code, key};
pub use frame::FrameCodec;
pub use publish::{Entry, Publish, PublishedMessage};
pub use server::{
    Broker, ServerCommand, StreamMetadata, deliver_prefix_len, encode_deliver_prefix,
    encode_publish_confirm, encode_publish_error,
};
pub use wire::{Str, StreamError};

#[cfg(test)]
mod tests;
