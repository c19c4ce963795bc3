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

/// How a quorum queue dead-letters (`x-dead-letter-strategy`, RabbitMQ 3.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeadLetterStrategy {
    /// Dropped from the source queue as it is republished (classic queues' way).
    #[default]
    AtMostOnce,
    /// Kept in the source queue's log until the dead-letter targets have it on disk.
    AtLeastOnce,
}

/// `x-queue-type`. Classic and quorum queues run with their own semantics (quorum ones on
/// one node: see `broker::quorum`); the stream type is accepted (with RabbitMQ's argument
/// and property checks) and runs as a classic queue so that clients declaring it keep
/// working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    #[default]
    Classic,
    Quorum,
    Stream,
}

impl QueueType {
    /// The type's name, as `x-queue-type` and the management API write it.
    pub fn name(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
            QueueType::Stream => "stream",
        }
    }

    /// RabbitMQ's module name, as its error texts print it.
    pub(crate) fn module(self) -> &'static str {
        match self {
            QueueType::Classic => "rabbit_classic_queue",
            QueueType::Quorum => "rabbit_quorum_queue",
            QueueType::Stream => "rabbit_stream_queue",
        }
    }

    /// The known queue arguments this type refuses.
    fn unsupported(self) -> &'static [&'static str] {
        match self {
            QueueType::Classic => &[
                "x-max-in-memory-length",
                "x-max-in-memory-bytes",
                "x-quorum-initial-group-size",
                "x-max-age",
                "x-stream-max-segment-size-bytes",
                "x-initial-cluster-size",
                "x-queue-leader-locator",
                "x-delivery-limit",
                "x-dead-letter-strategy",
            ],
            QueueType::Quorum => &[
                "x-max-priority",
                "x-queue-mode",
                "x-queue-version",
                "x-max-age",
                "x-stream-max-segment-size-bytes",
                "x-initial-cluster-size",
                "x-queue-leader-locator",
                "x-queue-master-locator",
            ],
            QueueType::Stream => &[
                "x-expires",
                "x-message-ttl",
                "x-dead-letter-exchange",
                "x-dead-letter-routing-key",
                "x-max-length",
                "x-max-in-memory-length",
                "x-max-in-memory-bytes",
                "x-max-priority",
                "x-overflow",
                "x-queue-mode",
                "x-queue-version",
                "x-single-active-consumer",
                "x-quorum-initial-group-size",
                "x-delivery-limit",
                "x-dead-letter-strategy",
                "x-queue-master-locator",
            ],
        }
    }

    /// Every message is kept on disk (and synced before its confirm), whatever its
    /// delivery mode: quorum queues log every message, as RabbitMQ's Raft log does.
    pub fn always_persistent(self) -> bool {
        self == QueueType::Quorum
    }

    /// Quorum and stream queues are durable, never exclusive or auto-delete: RabbitMQ's
    /// check (and its order) when one is declared.
    pub fn check_properties(
        self,
        queue: &ShortStr,
        vhost: &str,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
    ) -> Result<(), AmqpError> {
        if self == QueueType::Classic {
            return Ok(());
        }
        let property = if auto_delete {
            "auto-delete"
        } else if exclusive {
            "exclusive-owner"
        } else if !durable {
            "non-durable"
        } else {
            return Ok(());
        };
        Err(AmqpError::channel(
            reply_code::PRECONDITION_FAILED,
            format!("invalid property '{property}' for queue '{queue}' in vhost '{vhost}'"),
        ))
    }
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
    pub queue_type: QueueType,
    /// `x-consumer-timeout` in milliseconds (0: none), over `amqp.consumer_timeout`.
    pub consumer_timeout: Option<u64>,
    /// `x-delivery-limit` (quorum queues): returns a message may take before it is
    /// dead-lettered. RabbitMQ 3.10 takes any integer (a negative one dead-letters at the
    /// first return) and ignores a value of another type.
    pub delivery_limit: Option<i64>,
    /// `x-dead-letter-strategy` as declared (quorum queues).
    pub dead_letter_strategy: DeadLetterStrategy,
    /// `x-message-deduplication: true` (the rabbitmq-message-deduplication plugin's queue
    /// argument): a message is not enqueued while one with the same
    /// `x-deduplication-header` value is in the queue.
    pub message_deduplication: bool,
}

fn invalid(arg: &str, queue: &ShortStr, vhost: &str, detail: String) -> AmqpError {
    AmqpError::channel(
        reply_code::PRECONDITION_FAILED,
        format!("invalid arg '{arg}' for queue '{queue}' in vhost '{vhost}': {detail}"),
    )
}

/// The arguments RabbitMQ validates, in the order it validates them (after
/// `x-queue-type`, which it looks at first): with several invalid arguments, the first
/// in this order is the one reported. RabbitMQ also compares them in this order on
/// redeclaration, and checks in this order that the queue's type supports them.
pub const VALIDATION_ORDER: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
];

/// The stream queues' own arguments, in RabbitMQ's order of validating and comparing
/// them (after [`VALIDATION_ORDER`]).
pub const STREAM_ARGS: &[&str] = &[
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
];

/// The arguments of other queue types that RabbitMQ knows, after [`VALIDATION_ORDER`] in
/// its order of checking that the declared type supports them.
const OTHER_TYPES_ARGS: &[&str] = &[
    "x-quorum-initial-group-size",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
    "x-delivery-limit",
    "x-queue-master-locator",
];

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
        let timer = |key: &str, v: &FieldValue, min: i64| -> Result<Duration, AmqpError> {
            let n = int(key, v, min)?;
            if n > MAX_EXPIRY_MS as i64 {
                return Err(invalid(
                    key,
                    queue,
                    vhost,
                    format!("{{value_too_large,{n}}}"),
                ));
            }
            Ok(Duration::from_millis(n as u64))
        };
        // The queue type comes first: RabbitMQ picks the type before anything else.
        if let Some(v) = args.get("x-queue-type") {
            let key = "x-queue-type";
            a.queue_type = match string(key, v)?.as_bytes() {
                b"classic" => QueueType::Classic,
                b"quorum" => QueueType::Quorum,
                b"stream" => QueueType::Stream,
                other => {
                    let detail = format!(
                        "\"unsupported queue type '{}'\"",
                        String::from_utf8_lossy(other)
                    );
                    return Err(invalid(key, queue, vhost, detail));
                }
            };
        }
        for &key in VALIDATION_ORDER {
            let Some(v) = args.get(key) else {
                continue;
            };
            match key {
                "x-message-ttl" => a.message_ttl = Some(timer(key, v, 0)?),
                "x-expires" => a.expires = Some(timer(key, v, 1)?),
                "x-max-length" => a.max_length = Some(int(key, v, 0)? as u64),
                "x-max-length-bytes" => a.max_length_bytes = Some(int(key, v, 0)? as u64),
                // Only quorum queues take these; other types refuse them below.
                "x-max-in-memory-length" | "x-max-in-memory-bytes"
                    if a.queue_type == QueueType::Quorum =>
                {
                    int(key, v, 0)?;
                }
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
                "x-queue-mode" => match string(key, v)?.as_bytes() {
                    b"default" | b"lazy" => {}
                    other => {
                        let detail = format!(
                            "\"unsupported queue mode '{}'\"",
                            String::from_utf8_lossy(other)
                        );
                        return Err(invalid(key, queue, vhost, detail));
                    }
                },
                "x-queue-version" => {
                    let n = int(key, v, 0)?;
                    if n != 1 && n != 2 {
                        let detail = format!("\"unsupported queue version '{n}'\"");
                        return Err(invalid(key, queue, vhost, detail));
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
                "x-dead-letter-routing-key" => {
                    a.dead_letter_routing_key = Some(string(key, v)?);
                    // A stream refuses the argument outright (below), as RabbitMQ does.
                    if a.dead_letter_exchange.is_none() && a.queue_type != QueueType::Stream {
                        return Err(invalid(
                            key,
                            queue,
                            vhost,
                            "routing_key_but_no_dlx_defined".into(),
                        ));
                    }
                }
                // Only quorum queues take it; other types refuse it below.
                "x-dead-letter-strategy" if a.queue_type == QueueType::Quorum => {
                    a.dead_letter_strategy = match string(key, v)?.as_bytes() {
                        b"at-most-once" => DeadLetterStrategy::AtMostOnce,
                        b"at-least-once" => DeadLetterStrategy::AtLeastOnce,
                        _ => {
                            return Err(invalid(key, queue, vhost, "invalid_dlx_strategy".into()));
                        }
                    }
                }
                "x-single-active-consumer" => {
                    a.single_active_consumer = v.as_bool().ok_or_else(|| unacceptable(key, v))?
                }
                _ => {}
            }
        }
        // The stream arguments, validated whatever the type (a type that does not take
        // them refuses them below), in RabbitMQ's order.
        for &key in STREAM_ARGS {
            let Some(v) = args.get(key) else {
                continue;
            };
            match key {
                "x-max-age" => {
                    let s = string(key, v)?;
                    if super::stream::parse_max_age(s.as_bytes()).is_none() {
                        return Err(invalid(key, queue, vhost, "invalid_max_age".into()));
                    }
                }
                "x-stream-max-segment-size-bytes" => {
                    int(key, v, 0)?;
                }
                "x-initial-cluster-size" => {
                    int(key, v, 1)?;
                }
                "x-queue-leader-locator" => match string(key, v)?.as_bytes() {
                    b"client-local" | b"balanced" | b"random" | b"least-leaders" => {}
                    _ => {
                        return Err(invalid(
                            key,
                            queue,
                            vhost,
                            "invalid_queue_locator_arg".into(),
                        ));
                    }
                },
                _ => {}
            }
        }
        // Not part of RabbitMQ 3.10, which ignores it; validated as later versions do
        // (outside VALIDATION_ORDER: 3.10 leaves it out of the redeclare equivalence).
        if let Some(v) = args.get("x-consumer-timeout") {
            a.consumer_timeout = Some(int("x-consumer-timeout", v, 0)? as u64);
        }
        // The plugin's argument; like the plugin, anything but boolean true leaves the
        // queue as it is (RabbitMQ itself ignores the argument).
        a.message_deduplication = args
            .get("x-message-deduplication")
            .and_then(FieldValue::as_bool)
            == Some(true);
        if a.queue_type == QueueType::Quorum {
            a.delivery_limit = args.get("x-delivery-limit").and_then(FieldValue::as_i64);
        }
        let unsupported = a.queue_type.unsupported();
        if let Some(key) = VALIDATION_ORDER
            .iter()
            .chain(OTHER_TYPES_ARGS)
            .find(|k| unsupported.contains(k) && args.get(k).is_some())
        {
            return Err(AmqpError::channel(
                reply_code::PRECONDITION_FAILED,
                format!(
                    "invalid arg '{key}' for queue '{queue}' in vhost '{vhost}' of queue type {}",
                    a.queue_type.module()
                ),
            ));
        }
        Ok(a)
    }
}

/// RabbitMQ's longest TTL / expiry (10 years, in milliseconds).
pub const MAX_EXPIRY_MS: u64 = 315_360_000_000;

/// `{Tag,Value}` as Erlang's `~p` prints it after `col` characters of text: on one line
/// when it fits (RabbitMQ's line width), else broken after the comma with the value
/// aligned under the tuple's first element.
pub(crate) fn pretty_tuple(col: usize, tag: &str, value: &str) -> String {
    let flat = format!("{{{tag},{value}}}");
    if col + flat.len() <= 78 {
        flat
    } else {
        format!("{{{tag},\n{}{value}}}", " ".repeat(col + 1))
    }
}

/// The per-message `expiration` property in milliseconds, validated as RabbitMQ does
/// (Erlang's `string:to_integer`: an optional sign, digits, nothing after; its texts:
/// `no_integer`, `{value_negative,-1}`, `{value_too_large,N}`, `{leftover_string,".5"}`).
pub fn message_expiration(expiration: &ShortStr) -> Result<Duration, AmqpError> {
    let s = expiration.as_bytes();
    let digits_start = usize::from(matches!(s.first(), Some(b'-' | b'+')));
    let digits = s[digits_start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let col = "invalid expiration '".len() + s.len() + "': ".len();
    let number = String::from_utf8_lossy(&s[..digits_start + digits]);
    let detail = if digits == 0 {
        "no_integer".to_string()
    } else if digits_start + digits < s.len() {
        let rest = String::from_utf8_lossy(&s[digits_start + digits..]);
        pretty_tuple(col, "leftover_string", &format!("\"{rest}\""))
    } else {
        // Erlang prints the integer without a '+' sign or leading zeros.
        let magnitude = number[digits_start..].trim_start_matches('0');
        let magnitude = if magnitude.is_empty() { "0" } else { magnitude };
        let negative = s[0] == b'-' && magnitude != "0";
        match magnitude.parse::<u64>() {
            Ok(ms) if !negative && ms <= MAX_EXPIRY_MS => return Ok(Duration::from_millis(ms)),
            _ if negative => pretty_tuple(col, "value_negative", &format!("-{magnitude}")),
            _ => pretty_tuple(col, "value_too_large", magnitude),
        }
    };
    Err(AmqpError::channel(
        reply_code::PRECONDITION_FAILED,
        format!("invalid expiration '{expiration}': {detail}"),
    ))
}
