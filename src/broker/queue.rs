//! A queue: ready messages in order, its consumers, and delivery to them.
//!
//! State sits behind one short std mutex (never held across an await). Whoever enqueues a
//! message delivers it right away, inline, to a consumer with credit: no queue task, no
//! extra hop between the publisher's socket and the consumer's outbox.

use super::consumer::{ChannelLink, Consumer, Unacked};
use super::message::MessageRef;
use super::outbox::Bells;
use crate::protocol::{FieldTable, ShortStr};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

/// A message waiting in a queue (or delivered and not yet acknowledged).
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    /// Position in the queue's arrival order: requeued messages go back where they were.
    pub seq: u64,
    pub message: MessageRef,
    pub redelivered: bool,
}

#[derive(Debug)]
pub struct Queue {
    pub name: ShortStr,
    pub durable: bool,
    /// Connection id owning an exclusive queue.
    pub exclusive_owner: Option<u64>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    ready: VecDeque<QueuedMessage>,
    /// Sorted by priority, highest first; subscription order within a priority.
    consumers: Vec<Arc<Consumer>>,
    next_seq: u64,
    /// Round-robin position among equal-priority consumers.
    rr: usize,
    deleted: bool,
    /// Whether a consumer ever subscribed (auto-delete applies only then).
    had_consumer: bool,
}

/// Why a consumer could not subscribe.
pub enum ConsumeRefused {
    /// The queue has an exclusive consumer, or `exclusive` was asked with consumers present.
    ExclusiveInUse,
    Deleted,
}

impl Queue {
    pub fn new(
        name: ShortStr,
        durable: bool,
        exclusive_owner: Option<u64>,
        auto_delete: bool,
        arguments: FieldTable,
    ) -> Self {
        Self {
            name,
            durable,
            exclusive_owner,
            auto_delete,
            arguments,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap()
    }

    /// Enqueues a message and delivers what can be delivered.
    pub fn publish(self: &Arc<Self>, message: MessageRef, bells: &mut Bells) {
        let mut s = self.lock();
        if s.deleted {
            return;
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        let qm = QueuedMessage {
            seq,
            message,
            redelivered: false,
        };
        if s.ready.is_empty() {
            // Fast path: hand it straight to a consumer.
            if let Err(qm) = self.deliver_one(&mut s, qm, bells) {
                s.ready.push_back(qm);
            }
        } else {
            s.ready.push_back(qm);
            self.dispatch_locked(&mut s, bells);
        }
    }

    /// Delivers ready messages while some consumer has credit.
    pub fn dispatch(self: &Arc<Self>, bells: &mut Bells) {
        let mut s = self.lock();
        self.dispatch_locked(&mut s, bells);
    }

    fn dispatch_locked(self: &Arc<Self>, s: &mut QueueState, bells: &mut Bells) {
        while let Some(qm) = s.ready.pop_front() {
            if let Err(qm) = self.deliver_one(s, qm, bells) {
                s.ready.push_front(qm);
                break;
            }
        }
    }

    /// Offers one message to consumers: highest priority first, round-robin among equals.
    fn deliver_one(
        self: &Arc<Self>,
        s: &mut QueueState,
        mut qm: QueuedMessage,
        bells: &mut Bells,
    ) -> Result<(), QueuedMessage> {
        let n = s.consumers.len();
        let mut start = 0;
        while start < n {
            let p = s.consumers[start].priority;
            let mut end = start;
            while end < n && s.consumers[end].priority == p {
                end += 1;
            }
            let len = end - start;
            for k in 0..len {
                let idx = start + (s.rr + k) % len;
                let consumer = s.consumers[idx].clone();
                match consumer.try_deliver(self, qm, bells) {
                    Ok(()) => {
                        s.rr = s.rr.wrapping_add(k + 1);
                        return Ok(());
                    }
                    Err(back) => qm = back,
                }
            }
            start = end;
        }
        Err(qm)
    }

    /// basic.get: takes the head message. Returns it with the count left behind.
    pub fn get(&self) -> Option<(QueuedMessage, u32)> {
        let mut s = self.lock();
        let qm = s.ready.pop_front()?;
        Some((qm, s.ready.len() as u32))
    }

    /// Puts unacknowledged messages back at their original positions, marked redelivered,
    /// and delivers again.
    pub fn requeue(self: &Arc<Self>, messages: Vec<QueuedMessage>, bells: &mut Bells) {
        let mut s = self.lock();
        if s.deleted {
            return;
        }
        for mut qm in messages {
            qm.redelivered = true;
            let pos = s.ready.partition_point(|m| m.seq < qm.seq);
            s.ready.insert(pos, qm);
        }
        self.dispatch_locked(&mut s, bells);
    }

    /// Subscribes a consumer and delivers to it.
    ///
    /// `on_added` runs once the consumer is in, before anything is delivered to it: the
    /// place to write consume-ok, which must precede the first delivery.
    pub fn add_consumer(
        self: &Arc<Self>,
        consumer: Arc<Consumer>,
        on_added: impl FnOnce(),
        bells: &mut Bells,
    ) -> Result<(), ConsumeRefused> {
        let mut s = self.lock();
        if s.deleted {
            return Err(ConsumeRefused::Deleted);
        }
        if s.consumers.iter().any(|c| c.exclusive)
            || (consumer.exclusive && !s.consumers.is_empty())
        {
            return Err(ConsumeRefused::ExclusiveInUse);
        }
        let pos = s
            .consumers
            .partition_point(|c| c.priority >= consumer.priority);
        s.consumers.insert(pos, consumer);
        s.had_consumer = true;
        on_added();
        self.dispatch_locked(&mut s, bells);
        Ok(())
    }

    /// Unsubscribes a consumer. Returns true when the queue should now be auto-deleted.
    pub fn remove_consumer(&self, consumer: &Arc<Consumer>) -> bool {
        consumer.cancelled.store(true, Ordering::Relaxed);
        let mut s = self.lock();
        s.consumers.retain(|c| !Arc::ptr_eq(c, consumer));
        self.auto_delete && s.had_consumer && s.consumers.is_empty() && !s.deleted
    }

    pub fn message_count(&self) -> u32 {
        self.lock().ready.len() as u32
    }

    pub fn consumer_count(&self) -> u32 {
        self.lock().consumers.len() as u32
    }

    pub fn counts(&self) -> (u32, u32) {
        let s = self.lock();
        (s.ready.len() as u32, s.consumers.len() as u32)
    }

    /// Drops every ready message; returns how many.
    pub fn purge(&self) -> u32 {
        let mut s = self.lock();
        let n = s.ready.len();
        s.ready.clear();
        n as u32
    }

    /// Marks the queue deleted; returns its ready count and its consumers (to notify).
    pub fn mark_deleted(&self) -> (u32, Vec<Arc<Consumer>>) {
        let mut s = self.lock();
        s.deleted = true;
        let n = s.ready.len() as u32;
        s.ready.clear();
        let consumers = std::mem::take(&mut s.consumers);
        for c in &consumers {
            c.cancelled.store(true, Ordering::Relaxed);
        }
        (n, consumers)
    }

    pub fn is_deleted(&self) -> bool {
        self.lock().deleted
    }

    /// Whether `connection` may use this queue (exclusive queues belong to one connection).
    pub fn accessible_by(&self, connection: u64) -> bool {
        self.exclusive_owner.is_none_or(|o| o == connection)
    }
}

/// Requeues a batch of unacknowledged deliveries, grouped by queue, keeping their order.
pub fn requeue_unacked(unacked: Vec<Unacked>, bells: &mut Bells) {
    let mut groups: Vec<(Arc<Queue>, Vec<QueuedMessage>)> = Vec::new();
    for u in unacked {
        match groups.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
            Some((_, v)) => v.push(u.message),
            None => groups.push((u.queue, vec![u.message])),
        }
    }
    for (q, msgs) in groups {
        q.requeue(msgs, bells);
    }
}

/// The channel a consumer belongs to, for identity checks.
pub fn same_channel(a: &ChannelLink, b: &ChannelLink) -> bool {
    std::ptr::eq(a, b)
}
