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
//! - `at-least-once` dead-lettering first moves a message to the queue's discards
//!   ([`Command::DeadLettering`], rabbit_fifo's `discard` into its dlx state), where it
//!   stays, in the log and in snapshots, until the dead-letter targets have synced their
//!   copies; only then is it discarded for good (`Persisted::settle_after`).
//!
//! The commands are what the queue's command log holds, in the order the queue issued them
//! (`store::qlog`): an enqueue is a message record, the others fixed-size records, and
//! each segment starts with a snapshot of the [`Replica`]. The store's writer applies
//! every command to the queue's replica as it logs it, and recovery replays the log
//! through [`Replica::apply`]; the live queue applies the same [`Machine::apply`] to a
//! message's [`MessageState`] under its lock when it returns one. That log is what a Raft
//! implementation replicates: see docs/ARCHITECTURE.md, "Quorum queues".

use super::effects::DeathReason;
use super::message::{Message, MessageRef};
use crate::protocol::{EncodedProperties, FieldValue};
use std::collections::{HashMap, VecDeque};
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
    /// Dropped or dead-lettered (TTL, overflow, rejection, delivery limit): gone. Also
    /// what ends a [`DeadLettering`](Command::DeadLettering) message once its dead-letter
    /// targets have their copies synced (rabbit_fifo_dlx's settle).
    Discard { seq: u64 },
    /// Moved to the queue's discards for `reason`, to be dead-lettered at least once
    /// (rabbit_fifo's `discard` with the `at_least_once` strategy): still in the queue,
    /// no longer ready, until a [`Discard`](Command::Discard) ends it.
    DeadLettering { seq: u64, reason: DeathReason },
}

impl Command {
    /// The message the command is about.
    pub fn seq(self) -> u64 {
        match self {
            Command::Enqueue { seq }
            | Command::Checkout { seq }
            | Command::Settle { seq }
            | Command::Return { seq }
            | Command::Discard { seq }
            | Command::DeadLettering { seq, .. } => seq,
        }
    }
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
    /// Among the discards, waiting for its dead-letter target, and why it died.
    pub discarded: Option<DeathReason>,
}

/// What applying a command did to its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The message is (still) in the queue.
    Kept,
    /// The message left the queue (settled or discarded), or was not in it.
    Gone,
    /// A return took the message past the delivery limit: it is dead-lettered with
    /// reason `delivery_limit` (or dropped without a dead-letter exchange).
    DeliveryLimit,
}

/// The rules a quorum queue applies to its messages: one deterministic function from a
/// message's state and a command to its next state (no clock, no I/O, no randomness), so
/// that every replica applying the same commands in the same order reaches the same state.
/// The live queue applies it under its lock ([`Queue`](super::queue::Queue)'s returns);
/// the store's writer applies it to its [`Replica`] as it logs each command; recovery
/// replays the log through it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    /// `x-delivery-limit` (argument or policy). The store's replica runs without one: the
    /// queue logs the return and then a `Discard`, so the limit, which a policy may
    /// change, is decided once, by the queue.
    pub delivery_limit: Option<i64>,
}

impl Machine {
    pub fn new(delivery_limit: Option<i64>) -> Machine {
        Machine { delivery_limit }
    }

    /// Applies one command to one message's state.
    pub fn apply(&self, m: &mut MessageState, cmd: Command) -> Applied {
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
                if self
                    .delivery_limit
                    .is_some_and(|l| i64::from(m.delivery_count) > l)
                {
                    Applied::DeliveryLimit
                } else {
                    Applied::Kept
                }
            }
            Command::DeadLettering { reason, .. } => {
                m.checked_out = false;
                m.discarded = Some(reason);
                Applied::Kept
            }
            Command::Settle { .. } | Command::Discard { .. } => Applied::Gone,
        }
    }
}

/// A quorum queue's state as its command log defines it, without the bodies: which
/// messages are in the queue, and the state of each. This is what a Raft follower would
/// hold (and what a snapshot carries); the store's writer keeps one per quorum queue and
/// recovery rebuilds it by replay.
///
/// Memory: one bit per seq between the oldest live message and the newest (a bitmap of
/// 64-bit words), plus an entry per message whose state is not the initial one (checked
/// out or returned: bounded by prefetch and by returns, not by the queue's length).
#[derive(Debug, Default, Clone)]
pub struct Replica {
    pub machine: Machine,
    /// Live seqs: bit `seq % 64` of word `seq / 64 - base`.
    words: VecDeque<u64>,
    base: u64,
    len: u64,
    /// States other than `MessageState::default()`, of live messages only.
    states: HashMap<u64, MessageState>,
}

/// Two replicas are equal when they hold the same messages in the same states.
impl PartialEq for Replica {
    fn eq(&self, other: &Replica) -> bool {
        self.len == other.len && self.states == other.states && self.seqs().eq(other.seqs())
    }
}

impl Eq for Replica {}

impl Replica {
    pub fn new(machine: Machine) -> Replica {
        Replica {
            machine,
            ..Default::default()
        }
    }

    /// Messages in the queue.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn contains(&self, seq: u64) -> bool {
        let w = seq / 64;
        w >= self.base
            && self
                .words
                .get((w - self.base) as usize)
                .is_some_and(|b| b & (1 << (seq % 64)) != 0)
    }

    /// A live message's state (the initial one for a message not in the queue).
    pub fn state(&self, seq: u64) -> MessageState {
        self.states.get(&seq).copied().unwrap_or_default()
    }

    fn insert(&mut self, seq: u64) -> bool {
        let w = seq / 64;
        if self.words.is_empty() {
            self.base = w;
        }
        if w < self.base {
            // Older than anything live (replaying a log whose head was truncated).
            for _ in w..self.base {
                self.words.push_front(0);
            }
            self.base = w;
        }
        let i = (w - self.base) as usize;
        if i >= self.words.len() {
            self.words.resize(i + 1, 0);
        }
        let bit = 1 << (seq % 64);
        let fresh = self.words[i] & bit == 0;
        self.words[i] |= bit;
        self.len += fresh as u64;
        fresh
    }

    fn remove(&mut self, seq: u64) {
        self.states.remove(&seq);
        let w = seq / 64;
        if w < self.base {
            return;
        }
        let i = (w - self.base) as usize;
        let Some(word) = self.words.get_mut(i) else {
            return;
        };
        let bit = 1 << (seq % 64);
        if *word & bit != 0 {
            *word &= !bit;
            self.len -= 1;
        }
        while self.words.front() == Some(&0) {
            self.words.pop_front();
            self.base += 1;
        }
        while self.words.back() == Some(&0) {
            self.words.pop_back();
        }
    }

    /// Applies one command: the [`Machine`]'s rule on the message's state. A command about
    /// a message not in the queue changes nothing ([`Applied::Gone`]).
    pub fn apply(&mut self, cmd: Command) -> Applied {
        let seq = cmd.seq();
        if let Command::Enqueue { .. } = cmd {
            if self.insert(seq) {
                self.states.remove(&seq);
            }
            return Applied::Kept;
        }
        if !self.contains(seq) {
            return Applied::Gone;
        }
        let mut m = self.state(seq);
        let applied = self.machine.apply(&mut m, cmd);
        if applied != Applied::Kept {
            self.remove(seq);
        } else if m == MessageState::default() {
            self.states.remove(&seq);
        } else {
            self.states.insert(seq, m);
        }
        applied
    }

    /// Puts a message back with a state (recovery).
    pub fn restore(&mut self, seq: u64, state: MessageState) {
        self.insert(seq);
        if state != MessageState::default() {
            self.states.insert(seq, state);
        }
    }

    /// Live seqs, in order.
    pub fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(move |(i, &w)| {
            let base = (self.base + i as u64) * 64;
            (0..64)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| base + b)
        })
    }

    /// The state as a snapshot: `u32 n | n × (u64 word index | u64 bits)` for the non-zero
    /// words, then `u32 m | m × (u64 seq | u32 delivery count | u8 flags)` (bit 0:
    /// delivered, bit 1: checked out, bit 2: among the discards, bits 3-4: its reason's
    /// code), states in seq order. Deterministic: the same state
    /// always encodes to the same octets.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let words: Vec<(u64, u64)> = self
            .words
            .iter()
            .enumerate()
            .filter(|(_, w)| **w != 0)
            .map(|(i, w)| (self.base + i as u64, *w))
            .collect();
        out.extend_from_slice(&(words.len() as u32).to_be_bytes());
        for (i, w) in words {
            out.extend_from_slice(&i.to_be_bytes());
            out.extend_from_slice(&w.to_be_bytes());
        }
        let mut states: Vec<(&u64, &MessageState)> = self.states.iter().collect();
        states.sort_unstable_by_key(|(s, _)| **s);
        out.extend_from_slice(&(states.len() as u32).to_be_bytes());
        for (seq, m) in states {
            out.extend_from_slice(&seq.to_be_bytes());
            out.extend_from_slice(&m.delivery_count.to_be_bytes());
            let discarded = m.discarded.map_or(0, |r| 4 | (r.code() & 3) << 3);
            out.push(m.delivered as u8 | (m.checked_out as u8) << 1 | discarded);
        }
    }

    /// Reads a snapshot written by [`encode`](Self::encode); `None` when it is malformed
    /// (never panics: the octets come from disk).
    pub fn decode(machine: Machine, mut src: &[u8]) -> Option<Replica> {
        fn take<const N: usize>(src: &mut &[u8]) -> Option<[u8; N]> {
            let (head, rest) = src.split_first_chunk::<N>()?;
            *src = rest;
            Some(*head)
        }
        let mut r = Replica::new(machine);
        let n = u32::from_be_bytes(take(&mut src)?);
        let mut last: Option<u64> = None;
        for _ in 0..n {
            let i = u64::from_be_bytes(take(&mut src)?);
            let w = u64::from_be_bytes(take(&mut src)?);
            // Word indices ascend; a gap larger than the snapshot could describe is corrupt
            // (and must not make the bitmap allocate without bound).
            if last.is_some_and(|l| i <= l || i - l > (1 << 24)) || i > u64::MAX / 64 {
                return None;
            }
            last = Some(i);
            for b in 0..64 {
                if w & (1 << b) != 0 {
                    r.insert(i * 64 + b);
                }
            }
        }
        let m = u32::from_be_bytes(take(&mut src)?);
        for _ in 0..m {
            let seq = u64::from_be_bytes(take(&mut src)?);
            let delivery_count = u32::from_be_bytes(take(&mut src)?);
            let [flags] = take(&mut src)?;
            let state = MessageState {
                delivery_count,
                delivered: flags & 1 != 0,
                checked_out: flags & 2 != 0,
                discarded: (flags & 4 != 0).then(|| DeathReason::from_code((flags >> 3) & 3)),
            };
            if r.contains(seq) && state != MessageState::default() {
                r.states.insert(seq, state);
            }
        }
        src.is_empty().then_some(r)
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
        let mut m = Replica::new(Machine::new(Some(2)));
        m.apply(Command::Enqueue { seq: 7 });
        for expected in [Applied::Kept, Applied::Kept, Applied::DeliveryLimit] {
            assert_eq!(m.apply(Command::Checkout { seq: 7 }), Applied::Kept);
            assert_eq!(m.apply(Command::Return { seq: 7 }), expected);
        }
        assert!(m.is_empty());
    }

    #[test]
    fn replay_restores_counts_and_drops_settled() {
        let mut m = Replica::new(Machine::new(None));
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
        let s = m.state(1);
        assert_eq!(
            (s.delivery_count, s.delivered, s.checked_out),
            (2, true, false)
        );
        assert!(!m.contains(2));
        assert_eq!(m.seqs().collect::<Vec<_>>(), [1]);
    }

    /// At least once: the message stays, among the discards with its reason, through a
    /// snapshot, until the discard that follows its target's copy.
    #[test]
    fn a_dead_lettering_message_stays_with_its_reason_until_discarded() {
        let mut m = Replica::new(Machine::new(None));
        m.apply(Command::Enqueue { seq: 3 });
        m.apply(Command::Checkout { seq: 3 });
        let reason = DeathReason::DeliveryLimit;
        let cmd = Command::DeadLettering { seq: 3, reason };
        assert_eq!(m.apply(cmd), Applied::Kept);
        let s = m.state(3);
        assert_eq!((s.discarded, s.checked_out), (Some(reason), false));
        let mut buf = Vec::new();
        m.encode(&mut buf);
        let back = Replica::decode(Machine::default(), &buf).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.state(3).discarded, Some(reason));
        assert_eq!(m.apply(Command::Discard { seq: 3 }), Applied::Gone);
        assert!(m.is_empty());
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
