//! Quorum queues on one node: RabbitMQ 3.10's `rabbit_fifo` semantics, as a deterministic
//! state machine over a log of commands.
//!
//! A quorum queue is a [`Queue`](super::queue::Queue) whose type rules come from here:
//!
//! - every message is logged and synced before its confirm, whatever its delivery mode
//!   ([`QueueType::always_persistent`](super::args::QueueType::always_persistent));
//! - each [`Command::Return`] of a message counts: past `x-delivery-limit` the message is
//!   discarded with reason `delivery_limit` ([`Machine::apply`]); redeliveries carry the
//!   count in `x-delivery-count` ([`with_delivery_count`]);
//! - `reject-publish` is rabbit_fifo's soft limit ([`Admission`]);
//! - `at-least-once` dead-lettering settles a message in the source's log only once the
//!   dead-letter targets have synced it (`Persisted::settle_after`).
//!
//! The commands are what the queue's log holds (see `store::record`): an enqueue is a
//! message record, a checkout a delivered mark, a settle or discard an acknowledged mark,
//! a return a returned mark. Replaying such a log through [`Machine::apply`] gives back
//! every message's state (settled or not, delivered, its delivery count); the store's
//! recovery replays the marks the same way (`store::log::Marks`). The live queue applies
//! the same rule ([`Machine::transition`] on a message's [`MessageState`]) under its lock,
//! and hands each command to the store, which makes it durable by group commit. That log
//! is what a Raft implementation replicates: see docs/ARCHITECTURE.md, "Quorum queues".

use super::message::{Message, MessageRef};
use crate::protocol::{EncodedProperties, FieldValue};
use std::collections::HashMap;
use std::sync::Arc;

/// A command of a quorum queue's log, about one message (by its seq).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Published into the queue.
    Enqueue { seq: u64 },
    /// Handed to a consumer (or basic.get) awaiting settlement.
    Checkout { seq: u64 },
    /// Acknowledged (or delivered without acknowledgement): gone.
    Settle { seq: u64 },
    /// Given back unsettled (reject or nack with requeue, channel closed, consumer timeout).
    Return { seq: u64 },
    /// Dropped or dead-lettered (TTL, overflow, rejection, delivery limit): gone.
    Discard { seq: u64 },
}

/// One message's state in the machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageState {
    /// Returns so far (RabbitMQ's `delivery_count`).
    pub delivery_count: u32,
    /// Checked out at least once (a later delivery is flagged redelivered).
    pub delivered: bool,
    /// Checked out now, awaiting settlement.
    pub checked_out: bool,
}

/// What applying a command did to its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The message is (still) in the queue.
    Kept,
    /// The message left the queue (settled or discarded).
    Gone,
    /// A return took the message past the delivery limit: it is dead-lettered with
    /// reason `delivery_limit` (or dropped without a dead-letter exchange).
    DeliveryLimit,
}

/// The rules a quorum queue applies to its messages, and the state replayed from a log.
#[derive(Debug, Default)]
pub struct Machine {
    /// `x-delivery-limit` (argument or policy).
    pub delivery_limit: Option<i64>,
    /// Messages not settled nor discarded, by seq.
    pub messages: HashMap<u64, MessageState>,
}

impl Machine {
    pub fn new(delivery_limit: Option<i64>) -> Machine {
        Machine {
            delivery_limit,
            messages: HashMap::new(),
        }
    }

    /// Applies one command to one message's state: deterministic, no clock, no I/O.
    pub fn transition(limit: Option<i64>, m: &mut MessageState, cmd: Command) -> Applied {
        match cmd {
            Command::Enqueue { .. } => Applied::Kept,
            Command::Checkout { .. } => {
                m.delivered = true;
                m.checked_out = true;
                Applied::Kept
            }
            Command::Return { .. } => {
                m.checked_out = false;
                m.delivery_count = m.delivery_count.saturating_add(1);
                // rabbit_fifo: dead-lettered once the count passes the limit (a limit
                // of 2 delivers a message three times).
                if limit.is_some_and(|l| i64::from(m.delivery_count) > l) {
                    Applied::DeliveryLimit
                } else {
                    Applied::Kept
                }
            }
            Command::Settle { .. } | Command::Discard { .. } => Applied::Gone,
        }
    }

    /// Applies a command to the replayed state.
    pub fn apply(&mut self, cmd: Command) -> Applied {
        let seq = match cmd {
            Command::Enqueue { seq }
            | Command::Checkout { seq }
            | Command::Settle { seq }
            | Command::Return { seq }
            | Command::Discard { seq } => seq,
        };
        if let Command::Enqueue { .. } = cmd {
            self.messages.insert(seq, MessageState::default());
            return Applied::Kept;
        }
        let Some(m) = self.messages.get_mut(&seq) else {
            return Applied::Gone;
        };
        let applied = Self::transition(self.delivery_limit, m, cmd);
        if applied != Applied::Kept {
            self.messages.remove(&seq);
        }
        applied
    }
}

/// `reject-publish` as rabbit_fifo does it: a soft limit. A publish is taken while the
/// queue is not blocked; once the ready messages pass `x-max-length` (or their bytes
/// `x-max-length-bytes`) the queue blocks, and rejects publishes until it is back under 80%
/// of the limits.
#[derive(Debug, Default, Clone, Copy)]
pub struct Admission {
    blocked: bool,
}

impl Admission {
    /// Whether a publish is taken, with `len` ready messages of `bytes` bytes queued.
    pub fn admit(
        &mut self,
        len: u64,
        bytes: u64,
        max_length: Option<u64>,
        max_bytes: Option<u64>,
    ) -> bool {
        if self.blocked {
            let below = |v: u64, m: Option<u64>| m.is_none_or(|m| (v as f64) < m as f64 * 0.8);
            if below(len, max_length) && below(bytes, max_bytes) {
                self.blocked = false;
            }
        }
        !self.blocked
    }

    /// After an enqueue: blocks when the queue is now over its limits.
    pub fn enqueued(
        &mut self,
        len: u64,
        bytes: u64,
        max_length: Option<u64>,
        max_bytes: Option<u64>,
    ) {
        if max_length.is_some_and(|m| len > m) || max_bytes.is_some_and(|m| bytes > m) {
            self.blocked = true;
        }
    }
}

/// The header RabbitMQ 3.10 adds to a quorum queue's redeliveries (and to every basic.get).
pub const DELIVERY_COUNT: &str = "x-delivery-count";

/// The message with `x-delivery-count` set to `count` (a long, as RabbitMQ writes it). The
/// body is shared; only the properties are encoded again. Costs an allocation per
/// redelivery, never on a first delivery to a consumer.
pub fn with_delivery_count(message: &MessageRef, count: u32) -> MessageRef {
    let mut props = message.properties.decode().unwrap_or_default();
    let mut headers = props.headers.take().unwrap_or_default();
    headers.insert(DELIVERY_COUNT, FieldValue::I64(i64::from(count)));
    props.headers = Some(headers);
    Arc::new(Message {
        exchange: message.exchange.clone(),
        routing_key: message.routing_key.clone(),
        properties: EncodedProperties::from(&props),
        body: message.body.clone(),
        bcc: message.bcc.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_of_two_allows_two_returns() {
        let mut m = Machine::new(Some(2));
        m.apply(Command::Enqueue { seq: 7 });
        for expected in [Applied::Kept, Applied::Kept, Applied::DeliveryLimit] {
            assert_eq!(m.apply(Command::Checkout { seq: 7 }), Applied::Kept);
            assert_eq!(m.apply(Command::Return { seq: 7 }), expected);
        }
        assert!(m.messages.is_empty());
    }

    #[test]
    fn replay_restores_counts_and_drops_settled() {
        let mut m = Machine::new(None);
        for cmd in [
            Command::Enqueue { seq: 1 },
            Command::Enqueue { seq: 2 },
            Command::Checkout { seq: 1 },
            Command::Return { seq: 1 },
            Command::Checkout { seq: 1 },
            Command::Return { seq: 1 },
            Command::Checkout { seq: 2 },
            Command::Settle { seq: 2 },
        ] {
            m.apply(cmd);
        }
        let s = m.messages[&1];
        assert_eq!(
            (s.delivery_count, s.delivered, s.checked_out),
            (2, true, false)
        );
        assert!(!m.messages.contains_key(&2));
    }

    #[test]
    fn reject_publish_blocks_past_the_limit_until_under_eighty_percent() {
        let mut a = Admission::default();
        let mut len = 0;
        let mut taken = Vec::new();
        for _ in 0..5 {
            let ok = a.admit(len, 0, Some(2), None);
            taken.push(ok);
            if ok {
                len += 1;
                a.enqueued(len, 0, Some(2), None);
            }
        }
        // As RabbitMQ 3.10: the third publish is taken (the queue goes over), then refused.
        assert_eq!(taken, [true, true, true, false, false]);
        assert!(!a.admit(2, 0, Some(2), None));
        assert!(a.admit(1, 0, Some(2), None));
    }
}
