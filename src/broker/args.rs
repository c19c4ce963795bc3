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
        let unacceptable = |key: &str, v: &FieldValue| {
            invalid(
                key,
                queue,
                vhost,
                format!("{{unacceptable_type,{}}}", type_name(v)),
            )
        };
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
                other => Err(unacceptable(key, other)),
            }
        };
        // RabbitMQ's largest timer: 2^32-1 ms.
        let timer = |key: &str, v: &FieldValue, min: i64| -> Result<Duration, AmqpError> {
            let n = int(key, v, min)?;
            if n > 4_294_967_295 {
                return Err(invalid(
                    key,
                    queue,
                    vhost,
                    format!("{{value_too_large,{n}}}"),
                ));
            }
            Ok(Duration::from_millis(n as u64))
        };
        for (k, v) in args.iter() {
            let key = &*k.to_string_lossy();
            match key {
                "x-message-ttl" => a.message_ttl = Some(timer(key, v, 0)?),
                "x-expires" => a.expires = Some(timer(key, v, 1)?),
                "x-max-length" => a.max_length = Some(int(key, v, 0)? as u64),
                "x-max-length-bytes" => a.max_length_bytes = Some(int(key, v, 0)? as u64),
                "x-max-priority" => {
                    let n = int(key, v, 0)?;
                    if n > 255 {
                        return Err(invalid(
                            key,
                            queue,
                            vhost,
                            format!("{{max_value_exceeded,{n}}}"),
                        ));
                    }
                    a.max_priority = Some(n as u8);
                }
                "x-overflow" => {
                    a.overflow = match string(key, v)?.as_bytes() {
                        b"drop-head" => Overflow::DropHead,
                        b"reject-publish" => Overflow::RejectPublish,
                        b"reject-publish-dlx" => Overflow::RejectPublishDlx,
                        _ => return Err(invalid(key, queue, vhost, "invalid_overflow".into())),
                    }
                }
                "x-dead-letter-exchange" => match v {
                    FieldValue::LongStr(s) => a.dead_letter_exchange = Some(ShortStr(s.0.clone())),
                    other => {
                        return Err(AmqpError::channel(
                            reply_code::PRECONDITION_FAILED,
                            format!(
                                "invalid type '{}' for arg '{key}' in queue '{queue}' in vhost '{vhost}'",
                                type_name(other)
                            ),
                        ));
                    }
                },
                "x-dead-letter-routing-key" => a.dead_letter_routing_key = Some(string(key, v)?),
                "x-single-active-consumer" => {
                    a.single_active_consumer = v.as_bool().ok_or_else(|| unacceptable(key, v))?
                }
                _ => {}
            }
        }
        if a.dead_letter_routing_key.is_some() && a.dead_letter_exchange.is_none() {
            return Err(invalid(
                "x-dead-letter-routing-key",
                queue,
                vhost,
                "routing_key_but_no_dlx_defined".into(),
            ));
        }
        Ok(a)
    }
}

/// The per-message `expiration` property in milliseconds, validated as RabbitMQ does
/// (its texts: `no_integer`, `{value_negative,-1}`, `{leftover_string,".5"}`).
pub fn message_expiration(expiration: &ShortStr) -> Result<Duration, AmqpError> {
    let s = expiration.as_bytes();
    let digits_start = usize::from(s.first() == Some(&b'-'));
    let digits = s[digits_start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let detail = if digits == 0 {
        "no_integer".to_string()
    } else if digits_start + digits < s.len() {
        format!(
            "{{leftover_string,\"{}\"}}",
            String::from_utf8_lossy(&s[digits_start + digits..])
        )
    } else if digits_start == 1 {
        format!("{{value_negative,{}}}", String::from_utf8_lossy(s))
    } else {
        match std::str::from_utf8(s)
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
        {
            Some(ms) => return Ok(Duration::from_millis(ms)),
            None => "no_integer".to_string(),
        }
    };
    Err(AmqpError::channel(
        reply_code::PRECONDITION_FAILED,
        format!("invalid expiration '{expiration}': {detail}"),
    ))
}
