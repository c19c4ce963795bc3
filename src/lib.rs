//! Warren: an AMQP 0-9-1 message broker, a drop-in replacement for RabbitMQ.

pub mod protocol;
