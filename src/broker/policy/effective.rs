//! The settings a queue acts on, from its arguments and the policies applied to it, as
//! RabbitMQ 3.10's classic queue computes them (`rabbit_amqqueue_process:
//! process_args_policy` with `rabbit_queue_type_util:args_policy_lookup`): for each
//! setting, the policies' value (see [`Applied::get`]) against the `x-` argument:
//!
//! | setting | both given |
//! |---|---|
//! | `expires`, `message-ttl`, `max-length`, `max-length-bytes` | the lower |
//! | `dead-letter-exchange`, `dead-letter-routing-key`, `overflow` | the argument |
//!
//! (`queue-mode` and `queue-version` resolve the same way, argument first, and change
//! nothing in Warren.) An exchange's `alternate-exchange` is its argument, else the policy's
//! (`rabbit_policy:get_arg`).

use super::Applied;
use crate::broker::args::{DeadLetterStrategy, MAX_EXPIRY_MS, Overflow, QueueArgs, QueueType};
use crate::protocol::{FieldTable, ShortStr};
use serde_json::Value;
use std::time::Duration;

/// What a queue does about TTL, expiry, length limits and dead-lettering. Held in the
/// queue's state (behind the lock publishing already takes), replaced as a whole when a
/// policy changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueSettings {
    pub message_ttl: Option<Duration>,
    pub expires: Option<Duration>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    pub dead_letter_exchange: Option<ShortStr>,
    pub dead_letter_routing_key: Option<ShortStr>,
    /// Quorum queues: returns allowed before a message is dead-lettered (`None`: any).
    pub delivery_limit: Option<i64>,
    /// Quorum queues: at-least-once only with `reject-publish` overflow (RabbitMQ 3.10
    /// falls back to at-most-once otherwise).
    pub dead_letter_strategy: DeadLetterStrategy,
}

/// A validated non-negative integer setting.
fn uint(v: &Value) -> Option<u64> {
    v.as_u64()
}

/// Milliseconds, capped at RabbitMQ's argument maximum (10 years): a policy's TTL has no
/// maximum, and any longer one behaves the same.
fn millis(v: &Value) -> Option<Duration> {
    uint(v).map(|ms| Duration::from_millis(ms.min(MAX_EXPIRY_MS)))
}

fn lower<T: Ord>(policy: Option<T>, arg: Option<T>) -> Option<T> {
    match (policy, arg) {
        (Some(p), Some(a)) => Some(p.min(a)),
        (p, a) => p.or(a),
    }
}

fn text(v: &Value) -> Option<ShortStr> {
    v.as_str().map(ShortStr::from)
}

fn overflow(s: &str) -> Overflow {
    match s {
        "reject-publish" => Overflow::RejectPublish,
        "reject-publish-dlx" => Overflow::RejectPublishDlx,
        _ => Overflow::DropHead,
    }
}

impl QueueSettings {
    /// From the declared arguments alone (no policy).
    pub fn from_args(args: &QueueArgs) -> QueueSettings {
        QueueSettings {
            message_ttl: args.message_ttl,
            expires: args.expires,
            max_length: args.max_length,
            max_length_bytes: args.max_length_bytes,
            overflow: args.overflow,
            dead_letter_exchange: args.dead_letter_exchange.clone(),
            dead_letter_routing_key: args.dead_letter_routing_key.clone(),
            delivery_limit: args.delivery_limit,
            dead_letter_strategy: args.dead_letter_strategy,
        }
        .for_type(args.queue_type)
    }

    /// What a queue type makes of the settings: a quorum queue knows only `drop-head` and
    /// `reject-publish` (RabbitMQ 3.10 runs `reject-publish-dlx` as `drop-head`) and
    /// dead-letters at least once only when it rejects publishes; other types have no
    /// delivery limit nor strategy.
    fn for_type(mut self, queue_type: QueueType) -> QueueSettings {
        if queue_type == QueueType::Quorum {
            if self.overflow == Overflow::RejectPublishDlx {
                self.overflow = Overflow::DropHead;
            }
            if self.overflow != Overflow::RejectPublish {
                self.dead_letter_strategy = DeadLetterStrategy::AtMostOnce;
            }
        } else {
            self.delivery_limit = None;
            self.dead_letter_strategy = DeadLetterStrategy::AtMostOnce;
        }
        self
    }

    /// The arguments (`args` parsed from `arguments`) resolved against the policies.
    pub fn resolve(args: &QueueArgs, arguments: &FieldTable, applied: &Applied) -> QueueSettings {
        let mut s = QueueSettings::from_args(args);
        if applied.policy.is_none() && applied.operator.is_none() {
            return s;
        }
        let get = |k: &str| applied.get(k);
        s.message_ttl = lower(get("message-ttl").as_ref().and_then(millis), s.message_ttl);
        s.expires = lower(get("expires").as_ref().and_then(millis), s.expires);
        s.max_length = lower(get("max-length").as_ref().and_then(uint), s.max_length);
        s.max_length_bytes = lower(
            get("max-length-bytes").as_ref().and_then(uint),
            s.max_length_bytes,
        );
        if arguments.get("x-overflow").is_none()
            && let Some(o) = get("overflow")
            && let Some(o) = o.as_str()
        {
            s.overflow = overflow(o);
        }
        if s.dead_letter_exchange.is_none() {
            s.dead_letter_exchange = get("dead-letter-exchange").as_ref().and_then(text);
        }
        if s.dead_letter_routing_key.is_none() {
            s.dead_letter_routing_key = get("dead-letter-routing-key").as_ref().and_then(text);
        }
        s.delivery_limit = lower(
            get("delivery-limit").as_ref().and_then(Value::as_i64),
            args.delivery_limit,
        );
        s.dead_letter_strategy = args.dead_letter_strategy;
        if arguments.get("x-dead-letter-strategy").is_none()
            && let Some(d) = get("dead-letter-strategy")
        {
            s.dead_letter_strategy = match d.as_str() {
                Some("at-least-once") => DeadLetterStrategy::AtLeastOnce,
                _ => DeadLetterStrategy::AtMostOnce,
            };
        }
        s.for_type(args.queue_type)
    }

    /// Whether length limits apply (such a queue keeps its messages in memory).
    pub fn limits_length(&self) -> bool {
        self.max_length.is_some() || self.max_length_bytes.is_some()
    }
}

/// An exchange's alternate exchange from its policies (its argument, when it has one,
/// comes first and is read without this).
pub fn alternate_exchange(applied: &Applied) -> Option<ShortStr> {
    applied.get("alternate-exchange").as_ref().and_then(text)
}

#[cfg(test)]
mod tests {
    use super::super::{ApplyTo, Policy, PolicyDef};
    use super::*;
    use crate::protocol::FieldValue;
    use serde_json::json;
    use std::sync::Arc;

    fn applied(policy: Value, operator: Option<Value>) -> Applied {
        let p = |name: &str, d: Value| {
            Arc::new(
                Policy::compile(PolicyDef {
                    vhost: "/".into(),
                    name: name.into(),
                    pattern: "".into(),
                    apply_to: ApplyTo::All,
                    definition: d.as_object().unwrap().clone(),
                    priority: 0.into(),
                })
                .unwrap(),
            )
        };
        Applied {
            policy: Some(p("p", policy)),
            operator: operator.map(|o| p("o", o)),
        }
    }

    fn args(pairs: &[(&str, FieldValue)]) -> (QueueArgs, FieldTable) {
        let mut t = FieldTable::new();
        for (k, v) in pairs {
            t.insert(*k, v.clone());
        }
        let a = QueueArgs::parse(&t, &ShortStr::from("q"), "/").unwrap();
        (a, t)
    }

    #[test]
    fn limits_take_the_lower_and_the_rest_the_argument() {
        let (a, t) = args(&[
            ("x-max-length", FieldValue::I32(3)),
            ("x-message-ttl", FieldValue::I32(5000)),
            ("x-overflow", FieldValue::from("reject-publish")),
            ("x-dead-letter-exchange", FieldValue::from("arg-dlx")),
        ]);
        let s = QueueSettings::resolve(
            &a,
            &t,
            &applied(
                json!({"max-length": 10, "message-ttl": 100, "overflow": "drop-head",
                       "dead-letter-exchange": "pol-dlx", "dead-letter-routing-key": "k",
                       "expires": 60000}),
                Some(json!({"max-length": 2})),
            ),
        );
        assert_eq!(s.max_length, Some(2));
        assert_eq!(s.message_ttl, Some(Duration::from_millis(100)));
        assert_eq!(s.overflow, Overflow::RejectPublish);
        assert_eq!(s.dead_letter_exchange, Some(ShortStr::from("arg-dlx")));
        assert_eq!(s.dead_letter_routing_key, Some(ShortStr::from("k")));
        assert_eq!(s.expires, Some(Duration::from_secs(60)));
    }

    #[test]
    fn without_arguments_the_policy_decides() {
        let (a, t) = args(&[]);
        let s = QueueSettings::resolve(
            &a,
            &t,
            &applied(
                json!({"overflow": "reject-publish-dlx", "max-length-bytes": 7}),
                None,
            ),
        );
        assert_eq!(s.overflow, Overflow::RejectPublishDlx);
        assert_eq!(s.max_length_bytes, Some(7));
        assert!(s.limits_length());
        assert_eq!(
            QueueSettings::resolve(&a, &t, &Applied::default()),
            QueueSettings::default()
        );
    }
}
