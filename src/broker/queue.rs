//! A queue: ready messages in order, its consumers, and delivery to them, with RabbitMQ's
//! queue arguments (TTL, length limits and overflow, priorities, single active consumer,
//! expiry).
//!
//! State sits behind one short std mutex (never held across an await). Whoever enqueues a
//! message delivers it right away, inline, to a consumer with credit: no queue task, no
//! extra hop between the publisher's socket and the consumer's outbox. Only queues with
//! expiring messages or `x-expires` get a timer task (`expiry_loop`), which sleeps until the
//! earliest deadline: no polling.

use super::args::{Overflow, QueueArgs, message_expiration};
use super::consumer::{Consumer, Unacked};
use super::effects::{DeathReason, Effects};
use super::message::MessageRef;
use super::vhost::VHost;
use crate::protocol::{FieldTable, ShortStr};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A message waiting in a queue (or delivered and not yet acknowledged).
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    /// Position in the queue's arrival order: requeued messages go back where they were.
    pub seq: u64,
    pub message: MessageRef,
    pub redelivered: bool,
    /// When it expires (queue TTL or per-message expiration, whichever is sooner).
    pub expires_at: Option<Instant>,
    /// Priority level (0 unless the queue has x-max-priority).
    pub level: u8,
}

impl QueuedMessage {
    fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// Ready messages: one FIFO per priority level, highest level first.
#[derive(Debug)]
struct Ready {
    levels: Vec<VecDeque<QueuedMessage>>,
    len: usize,
    bytes: u64,
}

impl Ready {
    fn new(levels: usize) -> Ready {
        Ready {
            levels: (0..levels).map(|_| VecDeque::new()).collect(),
            len: 0,
            bytes: 0,
        }
    }

    fn push_back(&mut self, m: QueuedMessage) {
        self.len += 1;
        self.bytes += m.message.size() as u64;
        self.levels[m.level as usize].push_back(m);
    }

    fn push_front(&mut self, m: QueuedMessage) {
        self.len += 1;
        self.bytes += m.message.size() as u64;
        self.levels[m.level as usize].push_front(m);
    }

    /// Puts a message back at its original position (by arrival order).
    fn insert_by_seq(&mut self, m: QueuedMessage) {
        self.len += 1;
        self.bytes += m.message.size() as u64;
        let level = &mut self.levels[m.level as usize];
        let pos = level.partition_point(|x| x.seq < m.seq);
        level.insert(pos, m);
    }

    fn pop_front(&mut self) -> Option<QueuedMessage> {
        let m = self.levels.iter_mut().rev().find_map(|l| l.pop_front())?;
        self.len -= 1;
        self.bytes -= m.message.size() as u64;
        Some(m)
    }

    /// Removes expired messages anywhere in the queue; returns the next deadline.
    fn remove_expired(&mut self, now: Instant, out: &mut Vec<QueuedMessage>) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for level in &mut self.levels {
            if !level.iter().any(|m| m.expired(now)) {
                for m in level.iter() {
                    if let Some(t) = m.expires_at {
                        next = Some(next.map_or(t, |n| n.min(t)));
                    }
                }
                continue;
            }
            let mut kept = VecDeque::with_capacity(level.len());
            for m in level.drain(..) {
                if m.expired(now) {
                    out.push(m);
                } else {
                    if let Some(t) = m.expires_at {
                        next = Some(next.map_or(t, |n| n.min(t)));
                    }
                    kept.push_back(m);
                }
            }
            *level = kept;
        }
        for m in out.iter() {
            self.len -= 1;
            self.bytes -= m.message.size() as u64;
        }
        next
    }

    fn clear(&mut self) -> usize {
        let n = self.len;
        self.levels.iter_mut().for_each(VecDeque::clear);
        self.len = 0;
        self.bytes = 0;
        n
    }
}

#[derive(Debug)]
pub struct Queue {
    pub name: ShortStr,
    pub durable: bool,
    /// Connection id owning an exclusive queue.
    pub exclusive_owner: Option<u64>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    pub args: QueueArgs,
    vhost: Weak<VHost>,
    state: Mutex<QueueState>,
    /// Wakes the expiry task when an earlier deadline appears.
    timer: Notify,
}

#[derive(Debug)]
struct QueueState {
    ready: Ready,
    /// Sorted by priority, highest first; subscription order within a priority (plain
    /// subscription order for single-active-consumer queues).
    consumers: Vec<Arc<Consumer>>,
    next_seq: u64,
    /// Round-robin position among equal-priority consumers.
    rr: usize,
    deleted: bool,
    /// Whether a consumer ever subscribed (auto-delete applies only then).
    had_consumer: bool,
    /// Earliest expiry deadline of a ready message (a lower bound).
    earliest: Option<Instant>,
    /// Last time the queue was used (x-expires).
    last_used: Instant,
    timer_running: bool,
    /// Single active consumer: a cancelled active consumer whose deliveries are still
    /// unacknowledged. The next consumer takes over only once they are settled, so that
    /// requeued ones reach it first.
    sac_draining: Option<Arc<Consumer>>,
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
        args: QueueArgs,
        vhost: Weak<VHost>,
    ) -> Self {
        let levels = args.max_priority.map_or(1, |p| p as usize + 1);
        Self {
            name,
            durable,
            exclusive_owner,
            auto_delete,
            arguments,
            args,
            vhost,
            state: Mutex::new(QueueState {
                ready: Ready::new(levels),
                consumers: Vec::new(),
                next_seq: 0,
                rr: 0,
                deleted: false,
                had_consumer: false,
                earliest: None,
                last_used: Instant::now(),
                timer_running: false,
                sac_draining: None,
            }),
            timer: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap()
    }

    /// Starts the expiry task if the queue needs one (x-expires; done at declaration).
    pub fn start_timer_if_needed(self: &Arc<Self>) {
        if self.args.expires.is_some() {
            let mut s = self.lock();
            self.ensure_timer(&mut s);
        }
    }

    fn ensure_timer(self: &Arc<Self>, s: &mut QueueState) {
        if !s.timer_running && tokio::runtime::Handle::try_current().is_ok() {
            s.timer_running = true;
            tokio::spawn(expiry_loop(Arc::downgrade(self), self.vhost.clone()));
        }
    }

    fn over_limit(&self, r: &Ready, extra_len: usize, extra_bytes: u64) -> bool {
        self.args
            .max_length
            .is_some_and(|m| (r.len + extra_len) as u64 > m)
            || self
                .args
                .max_length_bytes
                .is_some_and(|m| r.bytes + extra_bytes > m)
    }

    /// Enqueues a message and delivers what can be delivered. Returns false when the
    /// queue refused it (x-overflow reject-publish / reject-publish-dlx on a full queue).
    pub fn publish(self: &Arc<Self>, message: MessageRef, fx: &mut Effects) -> bool {
        let mut s = self.lock();
        if s.deleted {
            return true;
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        let ttl = match message.properties.expiration() {
            Some(e) => match message_expiration(&e) {
                Ok(d) => Some(self.args.message_ttl.map_or(d, |q| q.min(d))),
                Err(_) => self.args.message_ttl,
            },
            None => self.args.message_ttl,
        };
        let level = match self.args.max_priority {
            Some(max) => message.properties.priority().unwrap_or(0).min(max),
            None => 0,
        };
        let qm = QueuedMessage {
            seq,
            expires_at: ttl.map(|d| Instant::now() + d),
            message,
            redelivered: false,
            level,
        };
        let size = qm.message.size() as u64;
        if self.args.overflow != Overflow::DropHead && self.over_limit(&s.ready, 1, size) {
            if self.args.overflow == Overflow::RejectPublishDlx {
                fx.dead_letter(self, qm, DeathReason::Maxlen);
            }
            return false;
        }
        if ttl == Some(Duration::ZERO) {
            // TTL 0: delivered now or never.
            if s.ready.len == 0
                && let Err(qm) = self.deliver_one(&mut s, qm, fx)
            {
                fx.dead_letter(self, qm, DeathReason::Expired);
            }
            return true;
        }
        let deadline = qm.expires_at;
        if s.ready.len == 0 {
            // Fast path: hand it straight to a consumer.
            if let Err(qm) = self.deliver_one(&mut s, qm, fx) {
                s.ready.push_back(qm);
            }
        } else {
            s.ready.push_back(qm);
            self.dispatch_locked(&mut s, fx);
        }
        while self.over_limit(&s.ready, 0, 0) {
            match s.ready.pop_front() {
                Some(head) => fx.dead_letter(self, head, DeathReason::Maxlen),
                None => break,
            }
        }
        if let Some(t) = deadline
            && s.ready.len > 0
            && s.earliest.is_none_or(|e| t < e)
        {
            s.earliest = Some(t);
            self.ensure_timer(&mut s);
            self.timer.notify_one();
        }
        true
    }

    /// Delivers ready messages while some consumer has credit.
    pub fn dispatch(self: &Arc<Self>, fx: &mut Effects) {
        let mut s = self.lock();
        self.dispatch_locked(&mut s, fx);
    }

    fn dispatch_locked(self: &Arc<Self>, s: &mut QueueState, fx: &mut Effects) {
        if s.consumers.is_empty() {
            return;
        }
        let now = Instant::now();
        while let Some(qm) = s.ready.pop_front() {
            if qm.expired(now) {
                fx.dead_letter(self, qm, DeathReason::Expired);
                continue;
            }
            if let Err(qm) = self.deliver_one(s, qm, fx) {
                s.ready.push_front(qm);
                break;
            }
        }
    }

    /// Offers one message to consumers: highest priority first, round-robin among equals;
    /// with single-active-consumer, only the first subscriber.
    fn deliver_one(
        self: &Arc<Self>,
        s: &mut QueueState,
        mut qm: QueuedMessage,
        fx: &mut Effects,
    ) -> Result<(), QueuedMessage> {
        if self.args.single_active_consumer {
            if let Some(d) = &s.sac_draining {
                if d.in_flight.load(Ordering::Relaxed) > 0
                    && !d.channel.deliveries.lock().unwrap().closed
                {
                    return Err(qm);
                }
                s.sac_draining = None;
            }
            return match s.consumers.first() {
                Some(c) => c.clone().try_deliver(self, qm, &mut fx.bells),
                None => Err(qm),
            };
        }
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
                match consumer.try_deliver(self, qm, &mut fx.bells) {
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
    pub fn get(self: &Arc<Self>, fx: &mut Effects) -> Option<(QueuedMessage, u32)> {
        let mut s = self.lock();
        s.last_used = Instant::now();
        let now = Instant::now();
        loop {
            let qm = s.ready.pop_front()?;
            if qm.expired(now) {
                fx.dead_letter(self, qm, DeathReason::Expired);
                continue;
            }
            return Some((qm, s.ready.len as u32));
        }
    }

    /// Puts unacknowledged messages back at their original positions, marked redelivered,
    /// and delivers again.
    pub fn requeue(self: &Arc<Self>, messages: Vec<QueuedMessage>, fx: &mut Effects) {
        let mut s = self.lock();
        if s.deleted {
            return;
        }
        let now = Instant::now();
        for mut qm in messages {
            if qm.expired(now) {
                // Expired while unacknowledged: it does not come back.
                fx.dead_letter(self, qm, DeathReason::Expired);
                continue;
            }
            qm.redelivered = true;
            s.ready.insert_by_seq(qm);
        }
        self.dispatch_locked(&mut s, fx);
    }

    /// Subscribes a consumer and delivers to it.
    ///
    /// `on_added` runs once the consumer is in, before anything is delivered to it: the
    /// place to write consume-ok, which must precede the first delivery.
    pub fn add_consumer(
        self: &Arc<Self>,
        consumer: Arc<Consumer>,
        on_added: impl FnOnce(),
        fx: &mut Effects,
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
        if self.args.single_active_consumer {
            s.consumers.push(consumer);
        } else {
            let pos = s
                .consumers
                .partition_point(|c| c.priority >= consumer.priority);
            s.consumers.insert(pos, consumer);
        }
        s.had_consumer = true;
        s.last_used = Instant::now();
        on_added();
        self.dispatch_locked(&mut s, fx);
        Ok(())
    }

    /// Unsubscribes a consumer. Returns true when the queue should now be auto-deleted.
    pub fn remove_consumer(self: &Arc<Self>, consumer: &Arc<Consumer>, fx: &mut Effects) -> bool {
        consumer.cancelled.store(true, Ordering::Relaxed);
        let mut s = self.lock();
        if self.args.single_active_consumer
            && s.consumers
                .first()
                .is_some_and(|c| Arc::ptr_eq(c, consumer))
            && consumer.in_flight.load(Ordering::Relaxed) > 0
        {
            s.sac_draining = Some(consumer.clone());
        }
        s.consumers.retain(|c| !Arc::ptr_eq(c, consumer));
        s.last_used = Instant::now();
        if s.consumers.is_empty() && self.args.expires.is_some() {
            self.timer.notify_one();
        }
        // With a single active consumer, the next one takes over.
        self.dispatch_locked(&mut s, fx);
        self.auto_delete && s.had_consumer && s.consumers.is_empty() && !s.deleted
    }

    /// The vhost the queue lives in (for dead-lettering from tasks outside a connection).
    pub fn vhost(&self) -> Option<Arc<VHost>> {
        self.vhost.upgrade()
    }

    /// Marks the queue used (a redeclare or passive declare), for x-expires.
    pub fn touch(&self) {
        self.lock().last_used = Instant::now();
    }

    pub fn counts(&self) -> (u32, u32) {
        let s = self.lock();
        (s.ready.len as u32, s.consumers.len() as u32)
    }

    /// Drops every ready message; returns how many.
    pub fn purge(&self) -> u32 {
        self.lock().ready.clear() as u32
    }

    /// Marks the queue deleted; returns its ready count and its consumers (to notify).
    pub fn mark_deleted(&self) -> (u32, Vec<Arc<Consumer>>) {
        let mut s = self.lock();
        s.deleted = true;
        let n = s.ready.clear() as u32;
        let consumers = std::mem::take(&mut s.consumers);
        for c in &consumers {
            c.cancelled.store(true, Ordering::Relaxed);
        }
        self.timer.notify_one();
        (n, consumers)
    }

    pub fn is_deleted(&self) -> bool {
        self.lock().deleted
    }

    /// Whether `connection` may use this queue (exclusive queues belong to one connection).
    pub fn accessible_by(&self, connection: u64) -> bool {
        self.exclusive_owner.is_none_or(|o| o == connection)
    }

    /// Removes expired messages; returns the next time to look again (message deadlines
    /// and the x-expires deadline), and whether the queue itself has expired.
    fn expire(self: &Arc<Self>, fx: &mut Effects) -> (Option<Instant>, bool) {
        let mut s = self.lock();
        if s.deleted {
            return (None, false);
        }
        let now = Instant::now();
        let mut expired = Vec::new();
        let next = if s.earliest.is_some_and(|e| e <= now) {
            let next = s.ready.remove_expired(now, &mut expired);
            s.earliest = next;
            next
        } else {
            s.earliest
        };
        for m in expired {
            fx.dead_letter(self, m, DeathReason::Expired);
        }
        let mut queue_deadline = None;
        let mut queue_expired = false;
        if let Some(ttl) = self.args.expires
            && s.consumers.is_empty()
        {
            let at = s.last_used + ttl;
            if at <= now {
                queue_expired = true;
            } else {
                queue_deadline = Some(at);
            }
        }
        let wake = match (next, queue_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        (wake, queue_expired)
    }
}

/// Sleeps until the queue's next deadline, expires messages (dead-lettering them) and
/// deletes the queue when x-expires passes unused. Ends with the queue.
async fn expiry_loop(queue: Weak<Queue>, vhost: Weak<VHost>) {
    loop {
        let Some(q) = queue.upgrade() else { return };
        let mut fx = Effects::default();
        let (wake, expired) = q.expire(&mut fx);
        if let Some(v) = vhost.upgrade() {
            super::deadletter::dead_letter_all(&v, &mut fx);
            if expired {
                v.remove_queue(&q);
            }
        }
        fx.bells.ring();
        if expired || q.is_deleted() {
            return;
        }
        // Deleting the queue notifies the timer, which then ends; a Notify permit stored
        // between the pass and this wait is not lost.
        let timer = Arc::clone(&q);
        drop(q);
        let notified = timer.timer.notified();
        match wake {
            Some(t) => {
                // Passes at most every 10 ms: with many distinct deadlines, one pass
                // expires a whole batch instead of one pass per message.
                let t = t.max(Instant::now() + Duration::from_millis(10));
                tokio::select! {
                    _ = tokio::time::sleep_until(t) => {}
                    _ = notified => {}
                }
            }
            None => notified.await,
        }
    }
}

/// Requeues a batch of unacknowledged deliveries, grouped by queue, keeping their order.
pub fn requeue_unacked(unacked: Vec<Unacked>, fx: &mut Effects) {
    let mut groups: Vec<(Arc<Queue>, Vec<QueuedMessage>)> = Vec::new();
    for u in unacked {
        match groups.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
            Some((_, v)) => v.push(u.message),
            None => groups.push((u.queue, vec![u.message])),
        }
    }
    for (q, msgs) in groups {
        q.requeue(msgs, fx);
    }
}
