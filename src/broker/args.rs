//! Queue arguments (`x-message-ttl`, `x-max-length`, ...) parsed and validated once, at
//! declaration, with RabbitMQ's names, types, ranges and error texts. Kept apart from the
//! queue so that a policy can later supply the same settings.

use super::vhost::type_name;
use crate::protocol::{AmqpError, FieldTable, FieldValue, ShortStr, reply_code};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    #[default]
    DropHead,
    RejectPublish,
    RejectPublishDlx,
}

#[derive(Debug, Clone, Default)]
pub struct QueueArgs {
    pub message_ttl: Option<Duration>,
    pub expires: Option<Duration>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    pub dead_letter_exchange: Option<ShortStr>,
    pub dead_letter_routing_key: Option<ShortStr>,
    pub max_priority: Option<u8>,
    pub single_active_consumer: bool,
}

fn invalid(arg: &str, queue: &ShortStr, vhost: &str, detail: String) -> AmqpError {
    AmqpError::channel(
        reply_code::PRECONDITION_FAILED,
        format!("invalid arg '{arg}' for queue '{queue}' in vhost '{vhost}': {detail}"),
    )
}

impl QueueArgs {
    pub fn parse(args: &FieldTable, queue: &ShortStr, vhost: &str) -> Result<QueueArgs, AmqpError> {
        let mut a = QueueArgs::default();
        let int = |key: &str, v: &FieldValue, min: i64| -> Result<i64, AmqpError> {
            let n = v.as_i64().ok_or_else(|| {
                invalid(
                    key,
                    queue,
                    vhost,
                    format!("\"expected integer, got {}\"", type_name(v)),
                )
            })?;
            if n < min {
                let detail = if n < 0 {
                    format!("{{value_negative,{n}}}")
                } else {
                    format!("{{value_zero,{n}}}")
                };
                return Err(invalid(key, queue, vhost, detail));
            }
            Ok(n)
        };
        let string = |key: &str, v: &FieldValue| -> Result<ShortStr, AmqpError> {
            match v {
                FieldValue::LongStr(s) => Ok(ShortStr(s.0.clone())),
                other => Err(invalid(
                    key,
                    queue,
                    vhost,
                    format!("\"expected string, got {}\"", type_name(other)),
                )),
            }
        };
        for (k, v) in args.iter() {
            let key = &*k.to_string_lossy();
            match key {
                "x-message-ttl" => {
                    a.message_ttl = Some(Duration::from_millis(int(key, v, 0)? as u64))
                }
                "x-expires" => a.expires = Some(Duration::from_millis(int(key, v, 1)? as u64)),
                "x-max-length" => a.max_length = Some(int(key, v, 0)? as u64),
                "x-max-length-bytes" => a.max_length_bytes = Some(int(key, v, 0)? as u64),
                "x-max-priority" => {
                    let n = int(key, v, 0)?;
                    if n > 255 {
                        return Err(invalid(
                            key,
                            queue,
                            vhost,
                            format!("{{value_too_large,{n},255}}"),
                        ));
                    }
                    a.max_priority = Some(n as u8);
                }
                "x-overflow" => {
                    a.overflow = match string(key, v)?.as_bytes() {
                        b"drop-head" => Overflow::DropHead,
                        b"reject-publish" => Overflow::RejectPublish,
                        b"reject-publish-dlx" => Overflow::RejectPublishDlx,
                        other => {
                            return Err(invalid(
                                key,
                                queue,
                                vhost,
                                format!(
                                    "{{unknown_overflow_type,<<\"{}\">>}}",
                                    String::from_utf8_lossy(other)
                                ),
                            ));
                        }
                    }
                }
                "x-dead-letter-exchange" => a.dead_letter_exchange = Some(string(key, v)?),
                "x-dead-letter-routing-key" => a.dead_letter_routing_key = Some(string(key, v)?),
                "x-single-active-consumer" => {
                    a.single_active_consumer = v.as_bool().ok_or_else(|| {
                        invalid(
                            key,
                            queue,
                            vhost,
                            format!("\"expected bool, got {}\"", type_name(v)),
                        )
                    })?
                }
                _ => {}
            }
        }
        if a.dead_letter_routing_key.is_some() && a.dead_letter_exchange.is_none() {
            return Err(invalid(
                "x-dead-letter-routing-key",
                queue,
                vhost,
                "{missing_dead_letter_exchange}".into(),
            ));
        }
        Ok(a)
    }
}

/// The per-message `expiration` property in milliseconds, validated as RabbitMQ does.
pub fn message_expiration(expiration: &ShortStr) -> Result<Duration, AmqpError> {
    expiration
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_millis)
        .ok_or_else(|| {
            AmqpError::channel(
                reply_code::PRECONDITION_FAILED,
                format!("invalid expiration '{expiration}': {{invalid_value}}"),
            )
        })
}
