#![recursion_limit = "256"]
//! Warren: an AMQP 0-9-1 message broker, a drop-in replacement for RabbitMQ.

pub mod broker;
pub mod config;
pub mod ctl;
pub mod perf;
pub mod protocol;
pub mod server;
pub mod store;
