//! A queue: ready messages in order, its consumers, and delivery to them, with RabbitMQ's
//! queue arguments (TTL, length limits and overflow, priorities, single active consumer,
//! expiry).
//!
//! State sits behind one short std mutex (never held across an await). Whoever enqueues a
//! message delivers it right away, inline, to a consumer with credit: no queue task, no
//! extra hop between the publisher's socket and the consumer's outbox. Only queues with
//! expiring messages or `x-expires` get a timer task (`expiry_loop`), which sleeps until the
//! earliest deadline: no polling.
//!
//! What the queue does about TTL, expiry, length limits and dead-lettering is
//! `QueueState::settings`: its arguments resolved against the policies applied to it.
//! Every path that reads them already holds the state lock, so a policy change replaces
//! them at no cost to the message path (see `apply_policies`).

use super::args::{Overflow, QueueArgs, message_expiration};
use super::consumer::{Consumer, Unacked};
use super::discards::{Discarded, Discards};
use super::effects::{DeathReason, Effects};
use super::flow::{FLOW_SLACK, FLOW_WAIT, Flow};
use super::message::{HELD_OVERHEAD, MessageRef, held_size};
use super::policy::Applied;
use super::policy::effective::QueueSettings;
use super::quorum::{self, Admission, Command, Machine, MessageState};
use super::stats::{Counters, Stat};
use super::stream::StreamQueue;
use super::vhost::VHost;
use crate::protocol::{AmqpError, FieldTable, ShortStr};
use crate::store::log::LoggedMessage;
use crate::store::record::{MARK_DELIVERED, MARK_RETURNED};
use crate::store::{Persisted, QueueLog};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A message waiting in a queue (or delivered and not yet acknowledged).
#[derive(Debug)]
pub struct QueuedMessage {
    /// Position in the queue's arrival order: requeued messages go back where they were.
    pub seq: u64,
    pub message: MessageRef,
    pub redelivered: bool,
    /// When it expires (queue TTL or per-message expiration, whichever is sooner).
    pub expires_at: Option<Instant>,
    /// Priority level (0 unless the queue has x-max-priority).
    pub level: u8,
    /// Times it was returned unsettled (counted by quorum queues: `x-delivery-count`).
    pub delivery_count: u32,
    /// Its record in the queue's log (persistent messages in durable queues, and paged
    /// ones): dropping the message acknowledges it there.
    pub persisted: Option<Persisted>,
    /// Its value in a deduplicating queue's set: dropping the message takes it out.
    pub dedup: Option<Box<super::dedup::Token>>,
}

impl QueuedMessage {
    fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// Records a delivery in the log, so that a restart redelivers it flagged: the first
    /// one in a classic queue's log, every one (a `Checkout`) in a quorum queue's.
    pub fn mark_delivered(&self) {
        if let Some(p) = &self.persisted
            && (!self.redelivered || p.log.quorum)
        {
            p.log.mark(MARK_DELIVERED, p.seq);
        }
    }
}

/// Converts a deadline to unix milliseconds (how the log keeps it across restarts).
fn deadline_to_unix_ms(t: Option<Instant>) -> u64 {
    let Some(t) = t else { return 0 };
    let left = t.saturating_duration_since(Instant::now());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (now + left).as_millis().max(1) as u64
}

fn unix_ms_to_deadline(ms: u64) -> Option<Instant> {
    if ms == 0 {
        return None;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let at = Duration::from_millis(ms);
    Some(Instant::now() + at.saturating_sub(now))
}

/// Messages paged out to the queue's log: only their count and size are in memory. They
/// follow every ready message in arrival order.
#[derive(Debug, Default)]
struct Tail {
    count: u64,
    bytes: u64,
    /// A page-in is on its way.
    paging: bool,
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

    /// The memory the ready messages hold, as paging counts it (bodies and
    /// [`HELD_OVERHEAD`] each).
    fn held(&self) -> u64 {
        self.bytes + self.len as u64 * HELD_OVERHEAD
    }

    fn clear(&mut self) -> usize {
        let n = self.len;
        self.levels.iter_mut().for_each(VecDeque::clear);
        self.len = 0;
        self.bytes = 0;
        n
    }
}

/// A queue's message and consumer counts (see [`Queue::levels`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueLevels {
    pub ready: u64,
    pub ready_bytes: u64,
    pub paged_out: u64,
    pub paged_out_bytes: u64,
    pub consumers: u64,
    /// Discards waiting for their dead-letter target (RabbitMQ's `messages_dlx`).
    pub dlx: u64,
    pub dlx_bytes: u64,
}

impl QueueLevels {
    fn of(s: &QueueState) -> QueueLevels {
        QueueLevels {
            ready: s.ready.len as u64 + s.tail.count,
            ready_bytes: s.ready.bytes + s.tail.bytes,
            paged_out: s.tail.count,
            paged_out_bytes: s.tail.bytes,
            consumers: s.consumers.len() as u64,
            dlx: s.discards.len(),
            dlx_bytes: s.discards.bytes(),
        }
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
    /// The declared arguments, parsed. Those a policy can override are read from
    /// `QueueState::settings` instead.
    pub args: QueueArgs,
    vhost: Weak<VHost>,
    /// The queue's message log (persistent messages and paged-out ones).
    pub log: Arc<QueueLog>,
    /// The store's paging threshold (see `QueueState::paging_threshold`).
    store_paging_threshold: u64,
    /// Mirrors `settings.dead_letter_exchange.is_some()`, for the one reader without the
    /// state lock: a consumer's reject, deciding whether to keep the message for
    /// dead-lettering.
    has_dlx: AtomicBool,
    state: Mutex<QueueState>,
    /// Wakes the expiry task when an earlier deadline appears.
    timer: Notify,
    /// Wakes publishers held back until consumers make room (`broker::flow`).
    room: Notify,
    /// Message statistics (management API).
    pub stats: Counters,
    /// Deliveries not yet acknowledged (channels hold them; they count them here).
    pub unacked: std::sync::atomic::AtomicU64,
    /// Returns count toward a delivery limit and show in `x-delivery-count`, and the
    /// header is on every basic.get (quorum queues: `broker::quorum`).
    counts_returns: bool,
    /// How fast the ready and unacknowledged counts move (sampled, management API).
    pub depth: super::stats::Depth,
    /// A stream queue's log and readers (`x-queue-type: stream`): the operations below
    /// hand over to it at their top, so the handlers never ask a queue's type.
    stream: Option<Arc<StreamQueue>>,
}

impl super::stats::Sampled for Queue {
    fn mark(&self) -> &super::stats::Mark {
        &self.stats.active
    }

    fn sample(&self, seconds: f64) -> bool {
        let counted = self.stats.sample(seconds);
        let ready = self.snapshot().ready;
        let unacked = self.unacked.load(std::sync::atomic::Ordering::Relaxed);
        // Both gauges sampled (no short circuit): each keeps its last level.
        let r = self.depth.ready.sample(ready, seconds);
        let u = self.depth.unacked.sample(unacked, seconds);
        counted | r | u
    }
}

#[derive(Debug)]
struct QueueState {
    /// TTL, expiry, length limits, overflow and dead-lettering in force: the arguments
    /// resolved against `applied`. Replaced whole by `apply_policies`.
    settings: QueueSettings,
    /// The policy and operator policy applied.
    applied: Applied,
    /// Bytes of ready bodies kept in memory before new messages are paged out (u64::MAX:
    /// never, for queues whose settings need every message at hand).
    paging_threshold: u64,
    ready: Ready,
    tail: Tail,
    /// The hold on publishers while consumers drain a queue past its threshold.
    flow: Flow,
    /// Something was written to the log (it has files to delete with the queue).
    logged: bool,
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
    /// `reject-publish` as a soft limit (quorum queues); `None`: refuse what would exceed.
    admission: Option<Admission>,
    /// Single active consumer: a cancelled active consumer whose deliveries are still
    /// unacknowledged. The next consumer takes over only once they are settled, so that
    /// requeued ones reach it first.
    sac_draining: Option<Arc<Consumer>>,
    /// Dead messages waiting for their dead-letter target (at-least-once dead-lettering;
    /// always empty otherwise): see `broker::discards`.
    discards: Discards,
    /// The deduplication header values of the messages in the queue
    /// (`x-message-deduplication`, argument or policy).
    dedup: Option<Arc<super::dedup::QueueSet>>,
}

/// Where and how a queue dead-letters now.
#[derive(Debug)]
pub struct DeadLetterTarget {
    pub exchange: ShortStr,
    pub routing_key: Option<ShortStr>,
    pub strategy: super::args::DeadLetterStrategy,
    /// The queue adds `x-delivery-count`, which dead-lettered copies go without.
    pub delivery_count_header: bool,
}

/// A queue's state as the management API shows it.
#[derive(Debug)]
pub struct QueueSnapshot {
    pub ready: u64,
    pub ready_bytes: u64,
    pub paged_out: u64,
    pub paged_out_bytes: u64,
    pub consumers: Vec<Arc<Consumer>>,
    pub idle_since: Instant,
    /// Discards waiting for their dead-letter target, and their bytes.
    pub dlx: u64,
    pub dlx_bytes: u64,
}

/// Why a consumer could not subscribe.
pub enum ConsumeRefused {
    /// The queue has an exclusive consumer, or `exclusive` was asked with consumers present.
    ExclusiveInUse,
    Deleted,
    /// The queue type refuses the consumer (a stream's checks), with RabbitMQ's error.
    Refused(AmqpError),
}

impl Queue {
    // The declaration's parts, kept apart because a redeclare compares them one by one.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: ShortStr,
        durable: bool,
        exclusive_owner: Option<u64>,
        auto_delete: bool,
        arguments: FieldTable,
        args: QueueArgs,
        vhost: Weak<VHost>,
        log: Arc<QueueLog>,
        paging_threshold: u64,
    ) -> Self {
        let levels = args.max_priority.map_or(1, |p| p as usize + 1);
        let settings = QueueSettings::from_args(&args);
        let threshold = pageable_below(&args, &settings, paging_threshold);
        let quorum = args.queue_type.always_persistent();
        Self {
            name,
            durable,
            exclusive_owner,
            auto_delete,
            arguments,
            has_dlx: AtomicBool::new(settings.dead_letter_exchange.is_some()),
            args,
            vhost,
            log,
            store_paging_threshold: paging_threshold,
            state: Mutex::new(QueueState {
                settings,
                applied: Applied::default(),
                paging_threshold: threshold,
                ready: Ready::new(levels),
                tail: Tail::default(),
                flow: Flow::default(),
                logged: false,
                consumers: Vec::new(),
                next_seq: 0,
                rr: 0,
                deleted: false,
                had_consumer: false,
                earliest: None,
                last_used: Instant::now(),
                timer_running: false,
                admission: quorum.then(Admission::default),
                sac_draining: None,
                discards: Discards::default(),
                dedup: None,
            }),
            timer: Notify::new(),
            room: Notify::new(),
            stats: Counters::default(),
            unacked: Default::default(),
            depth: Default::default(),
            counts_returns: quorum,
            stream: None,
        }
        .with_dedup()
    }

    /// Sets up the deduplication set of a queue declared with `x-message-deduplication`.
    fn with_dedup(mut self) -> Self {
        if self.args.message_deduplication {
            self.state.get_mut().unwrap().dedup = Some(Arc::default());
        }
        self
    }

    /// Opens a stream queue's log (`x-queue-type: stream`; other types are left as they
    /// are). The log keeps the queue's log id, under the store's `streams/` directory.
    pub(crate) fn with_stream(mut self, store: &Arc<crate::store::Store>) -> Self {
        if self.args.queue_type == super::args::QueueType::Stream {
            let retention = super::stream::retention(&self.arguments, self.args.max_length_bytes);
            let log = store.stream_log(self.log.id, retention);
            self.stream = Some(Arc::new(StreamQueue::new(log)));
        }
        self
    }

    /// Whether the queue's type supports `operation` (`basic.get`, `queue.purge`, ...):
    /// streams refuse those that would take messages out, with RabbitMQ's 540.
    pub fn supports(&self, operation: &str) -> Result<(), AmqpError> {
        if self.stream.is_none() {
            return Ok(());
        }
        let vhost = self
            .vhost
            .upgrade()
            .map(|v| v.name.clone())
            .unwrap_or_default();
        Err(AmqpError::connection(
            crate::protocol::reply_code::NOT_IMPLEMENTED,
            format!(
                "{operation} not supported by stream queues queue '{}' in vhost '{vhost}'",
                self.name
            ),
        ))
    }

    /// The stream behind a stream queue (what the stream protocol's front end uses).
    pub fn stream(&self) -> Option<&Arc<StreamQueue>> {
        self.stream.as_ref()
    }

    /// A new queue with the policies that match it (before anyone else can see it).
    pub(crate) fn with_policies(mut self, applied: Applied) -> Self {
        let settings = QueueSettings::resolve(&self.args, &self.arguments, &applied);
        let s = self.state.get_mut().unwrap();
        s.paging_threshold = pageable_below(&self.args, &settings, self.store_paging_threshold);
        self.has_dlx = AtomicBool::new(settings.dead_letter_exchange.is_some());
        if let Some(stream) = &self.stream {
            stream.apply_retention(&self.arguments, &settings, &applied);
        }
        s.settings = settings;
        s.applied = applied;
        Self::toggle_dedup(s, &self.args, self.stream.is_some());
        self
    }

    /// The state, for a change: the queue joins the sampler's list (its levels may
    /// move). Readers that change nothing use [`read`](Self::read).
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.stats.active.touch();
        self.state.lock().unwrap()
    }

    /// The state, to read only: the queue stays off the sampler's list, so that the
    /// sampler's own reads, listings and Prometheus scrapes leave idle queues idle.
    fn read(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap()
    }

    /// Starts the expiry task if the queue needs one (x-expires; done at declaration).
    pub fn start_timer_if_needed(self: &Arc<Self>) {
        let mut s = self.lock();
        if s.settings.expires.is_some() {
            self.ensure_timer(&mut s);
        }
    }

    /// Applies the policies that now match (a policy was put or deleted), as RabbitMQ's
    /// `process_args_policy` does: the settings are resolved again and replace the old
    /// ones; a lower length limit drops (or dead-letters) the excess head at once under
    /// `drop-head`; a new `expires` restarts the expiry timer from now; a new
    /// `message-ttl` applies to messages published from now on (those queued keep their
    /// deadline, as in RabbitMQ, whose messages carry theirs from publication); a new
    /// dead-letter exchange receives what dies from now on. Nothing happens when the same
    /// policies are applied already.
    pub(crate) fn apply_policies(self: &Arc<Self>, applied: Applied, fx: &mut Effects) {
        let settings = QueueSettings::resolve(&self.args, &self.arguments, &applied);
        {
            let mut s = self.lock();
            if s.deleted || s.applied.same(&applied) {
                return;
            }
            if let Some(stream) = &self.stream {
                stream.apply_retention(&self.arguments, &settings, &applied);
            }
            s.applied = applied;
            s.paging_threshold = pageable_below(&self.args, &settings, self.store_paging_threshold);
            self.has_dlx
                .store(settings.dead_letter_exchange.is_some(), Ordering::Relaxed);
            let expires = settings.expires.is_some();
            s.settings = settings;
            if expires {
                s.last_used = Instant::now();
                self.ensure_timer(&mut s);
            }
            // The timer task looks again at its deadlines (expires may have changed).
            self.timer.notify_one();
            if !s.discards.is_empty() {
                self.discards_after_policy_change(&mut s);
            }
            Self::toggle_dedup(&mut s, &self.args, self.stream.is_some());
        }
        self.enforce_length_limit(fx);
    }

    /// Drops the head while the queue is over its length limits (drop-head only), paging
    /// the tail back in as needed: a queue that just got a limit may have some on disk.
    fn enforce_length_limit(self: &Arc<Self>, fx: &mut Effects) {
        loop {
            let mut s = self.lock();
            if s.deleted || s.settings.overflow != Overflow::DropHead {
                return;
            }
            while over_limit(&s, 0, 0) {
                match s.ready.pop_front() {
                    Some(head) => fx.dead_letter(self, head, DeathReason::Maxlen),
                    None => break,
                }
            }
            if s.tail.count == 0 || !over_limit(&s, 0, 0) {
                return;
            }
            let below = page_in_below(s.paging_threshold);
            drop(s);
            if !self.page_in_now(below) {
                return;
            }
        }
    }

    /// The policy applied, by name (RabbitMQ's `policy` in `/api/queues`).
    pub fn policy(&self) -> Option<String> {
        let s = self.read();
        s.applied.policy.as_ref().map(|p| p.name().to_string())
    }

    /// The operator policy applied, by name.
    pub fn operator_policy(&self) -> Option<String> {
        let s = self.read();
        s.applied.operator.as_ref().map(|p| p.name().to_string())
    }

    /// Both policies' definitions merged (`effective_policy_definition`; `{}` without).
    pub fn effective_policy_definition(&self) -> serde_json::Value {
        let applied = self.read().applied.clone();
        serde_json::Value::Object(applied.effective_definition())
    }

    /// The settings in force (arguments resolved against the policies).
    pub fn settings(&self) -> QueueSettings {
        self.lock().settings.clone()
    }

    /// Whether a dead-letter exchange is set (argument or policy); no lock taken.
    pub fn has_dead_letter_exchange(&self) -> bool {
        self.has_dlx.load(Ordering::Relaxed)
    }

    /// Where dead-lettered messages go now: the exchange and the routing key, if any.
    pub fn dead_letter_target(&self) -> Option<DeadLetterTarget> {
        let s = self.lock();
        Some(DeadLetterTarget {
            exchange: s.settings.dead_letter_exchange.clone()?,
            routing_key: s.settings.dead_letter_routing_key.clone(),
            strategy: s.settings.dead_letter_strategy,
            delivery_count_header: self.counts_returns,
        })
    }

    fn ensure_timer(self: &Arc<Self>, s: &mut QueueState) {
        if !s.timer_running && tokio::runtime::Handle::try_current().is_ok() {
            s.timer_running = true;
            tokio::spawn(expiry_loop(Arc::downgrade(self), self.vhost.clone()));
        }
    }

    /// Enqueues a message and delivers what can be delivered. Returns false when the
    /// queue refused it (x-overflow reject-publish / reject-publish-dlx on a full queue).
    pub fn publish(self: &Arc<Self>, message: MessageRef, fx: &mut Effects) -> bool {
        self.stats.incr(Stat::Publish);
        if let Some(stream) = &self.stream {
            return stream.publish(&message, fx);
        }
        let mut s = self.lock();
        if s.deleted {
            return true;
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        let ttl = match message.properties.expiration() {
            Some(e) => match message_expiration(&e) {
                Ok(d) => Some(s.settings.message_ttl.map_or(d, |q| q.min(d))),
                Err(_) => s.settings.message_ttl,
            },
            None => s.settings.message_ttl,
        };
        let level = self.level_of(&message);
        let persistent =
            self.durable && (message.persistent() || self.args.queue_type.always_persistent());
        let dedup = match &s.dedup {
            None => None,
            Some(set) => match super::dedup::key_of(message.properties.headers().as_ref()) {
                // Another message with this value is in the queue: this one is not
                // stored (its publisher still gets a confirm).
                Some(key) => match set.admit(key) {
                    Some(token) => Some(token),
                    None => return true,
                },
                None => None,
            },
        };
        let qm = QueuedMessage {
            seq,
            expires_at: ttl.map(|d| Instant::now() + d),
            message,
            redelivered: false,
            level,
            delivery_count: 0,
            persisted: None,
            dedup,
        };
        let size = qm.message.size() as u64;
        if s.settings.overflow != Overflow::DropHead && !admit(&mut s, size) {
            if s.settings.overflow == Overflow::RejectPublishDlx {
                fx.dead_letter(self, qm, DeathReason::Maxlen);
            }
            return false;
        }
        if ttl == Some(Duration::ZERO) {
            // TTL 0: delivered now or never.
            if s.ready.len == 0
                && s.tail.count == 0
                && let Err(qm) = self.deliver_one(&mut s, qm, fx)
            {
                fx.dead_letter(self, qm, DeathReason::Expired);
            }
            return true;
        }
        let paging = s.tail.count > 0;
        let over = s.ready.len > 0 && s.ready.held() + held_size(size) > s.paging_threshold;
        let held = (paging || over) && self.hold_publishers(&mut s, size, paging, fx);
        if paging || (over && !held) {
            // Paged out: behind everything else, on disk only.
            self.page_out(&mut s, qm, persistent, fx);
            return true;
        }
        let mut qm = qm;
        if persistent {
            s.logged = true;
            let t = self.log.append(
                seq,
                &qm.message,
                true,
                deadline_to_unix_ms(qm.expires_at),
                false,
            );
            fx.ticket = fx.ticket.max(t);
            qm.persisted = Some(Persisted::new(self.log.clone(), seq));
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
        // Only drop-head drops: a quorum queue's reject-publish may go over its limit.
        while s.settings.overflow == Overflow::DropHead && over_limit(&s, 0, 0) {
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
        if let Some(stream) = &self.stream {
            return stream.wake();
        }
        let mut s = self.lock();
        self.dispatch_locked(&mut s, fx);
    }

    fn dispatch_locked(self: &Arc<Self>, s: &mut QueueState, fx: &mut Effects) {
        if s.consumers.is_empty() {
            return;
        }
        let (len, bytes) = (s.ready.len, s.ready.bytes);
        // Read the clock only for a message that can expire: most carry no TTL, and a
        // consumer that keeps up makes this a pass per publish.
        let mut now = None;
        while let Some(qm) = s.ready.pop_front() {
            if qm.expires_at.is_some() && qm.expired(*now.get_or_insert_with(Instant::now)) {
                fx.dead_letter(self, qm, DeathReason::Expired);
                continue;
            }
            if let Err(qm) = self.deliver_one(s, qm, fx) {
                s.ready.push_front(qm);
                break;
            }
        }
        if s.flow.taken(
            len.saturating_sub(s.ready.len),
            bytes.saturating_sub(s.ready.bytes),
        ) {
            self.release_publishers(s);
        }
        self.maybe_page_in(s);
    }

    /// Holds the publisher of a message that takes the queue past its paging threshold, or
    /// arrives while it is `paging`, until consumers make room, when that is allowed (see
    /// `broker::flow`). True: the message may stay in memory (unless the queue is paging).
    fn hold_publishers(
        self: &Arc<Self>,
        s: &mut QueueState,
        size: u64,
        paging: bool,
        fx: &mut Effects,
    ) -> bool {
        if s.consumers.is_empty()
            || (!paging
                && s.ready.held() + held_size(size) > s.paging_threshold.saturating_add(FLOW_SLACK))
            || !s.flow.may_hold()
        {
            return false;
        }
        s.flow.hold();
        fx.hold(self);
        true
    }

    /// Ends a hold on publishers: they read on.
    fn release_publishers(&self, s: &mut QueueState) {
        if s.flow.holding.take().is_some() {
            self.room.notify_waiters();
        }
    }

    /// Waits until consumers have made room for publishes this queue held back, at most
    /// [`FLOW_WAIT`]; if they have not by then, the queue holds no publisher for a while
    /// and pages instead (`broker::flow`).
    pub async fn room(&self) {
        let notified = self.room.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.lock().flow.holding.is_none() {
            return;
        }
        if tokio::time::timeout(FLOW_WAIT, notified).await.is_err() {
            let mut s = self.lock();
            if s.flow.holding.is_some() {
                s.flow.give_up();
                self.room.notify_waiters();
            }
        }
    }

    /// Moves a message to the paged-out tail: written to the log, dropped from memory.
    fn page_out(
        self: &Arc<Self>,
        s: &mut QueueState,
        qm: QueuedMessage,
        persistent: bool,
        fx: &mut Effects,
    ) {
        s.logged = true;
        s.tail.count += 1;
        s.tail.bytes += qm.message.size() as u64;
        let mut qm = qm;
        // On disk only now: its value stays in the set until it is read back.
        if let Some(mut token) = qm.dedup.take() {
            token.keep();
        }
        let expires = deadline_to_unix_ms(qm.expires_at);
        let t = self
            .log
            .append(qm.seq, &qm.message, persistent, expires, true);
        if persistent {
            fx.ticket = fx.ticket.max(t);
        }
        self.maybe_page_in(s);
    }

    /// Asks the log for more of the tail when ready messages run low.
    fn maybe_page_in(self: &Arc<Self>, s: &mut QueueState) {
        let below = page_in_below(s.paging_threshold);
        if s.tail.count > 0 && !s.tail.paging && s.ready.held() < below {
            s.tail.paging = true;
            self.log
                .page_in(Arc::downgrade(self), below.max(64 << 10), None);
        }
    }

    /// Reads the next stretch of the paged-out tail back, waiting for it (the state lock
    /// must not be held). False when the store could not answer.
    fn page_in_now(self: &Arc<Self>, below: u64) -> bool {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        self.log
            .page_in(Arc::downgrade(self), below.max(64 << 10), Some(done));
        wait_for_store(&wait).is_ok()
    }

    /// Takes back messages read from the paged-out tail (called by the store's writer).
    pub fn page_in(self: &Arc<Self>, messages: Vec<LoggedMessage>) {
        let mut fx = Effects::default();
        {
            let mut s = self.lock();
            s.tail.paging = false;
            if s.deleted {
                return;
            }
            if messages.is_empty() && s.tail.count > 0 {
                tracing::warn!(queue = %self.name, lost = s.tail.count, "paged-out messages could not be read back");
                s.tail = Tail::default();
            }
            let before = s.ready.bytes;
            let n = messages.len() as u64;
            self.load(&mut s, messages);
            let loaded = s.ready.bytes - before;
            s.tail.count = s.tail.count.saturating_sub(n);
            s.tail.bytes = s.tail.bytes.saturating_sub(loaded);
            self.dispatch_locked(&mut s, &mut fx);
            self.maybe_page_in(&mut s);
        }
        if let Some(v) = self.vhost() {
            super::deadletter::dead_letter_all(&v, &mut fx);
        }
        fx.bells.ring();
    }

    /// Appends messages read from the log to the ready ones (after everything in memory:
    /// they come from the tail, or are all there is at start-up).
    fn load(self: &Arc<Self>, s: &mut QueueState, messages: Vec<LoggedMessage>) {
        let mut earliest = s.earliest;
        for m in messages {
            let (qm, expires_at) = self.logged_message(s.dedup.as_ref(), m);
            if let Some(t) = expires_at {
                earliest = Some(earliest.map_or(t, |e: Instant| e.min(t)));
            }
            s.ready.push_back(qm);
        }
        if earliest != s.earliest {
            s.earliest = earliest;
            self.ensure_timer(s);
            self.timer.notify_one();
        }
    }

    /// A message read from the log as the queue keeps it, and its expiry.
    fn logged_message(
        &self,
        dedup: Option<&Arc<super::dedup::QueueSet>>,
        m: LoggedMessage,
    ) -> (QueuedMessage, Option<Instant>) {
        let stored = m.stored;
        let message = Arc::new(stored.message);
        let expires_at = unix_ms_to_deadline(stored.expires);
        let message = if self.counts_returns && m.delivery_count > 0 {
            quorum::with_delivery_count(&message, m.delivery_count)
        } else {
            message
        };
        let dedup = dedup.and_then(|set| {
            let key = super::dedup::key_of(message.properties.headers().as_ref())?;
            Some(set.readmit(key))
        });
        let qm = QueuedMessage {
            dedup,
            seq: stored.seq,
            level: self.level_of(&message),
            message,
            redelivered: m.delivered,
            delivery_count: m.delivery_count,
            expires_at,
            persisted: Some(Persisted::new(self.log.clone(), stored.seq)),
        };
        (qm, expires_at)
    }

    /// The priority level a message waits at (0 unless the queue has x-max-priority).
    fn level_of(&self, message: &super::message::Message) -> u8 {
        match self.args.max_priority {
            Some(max) => message.properties.priority().unwrap_or(0).min(max),
            None => 0,
        }
    }

    /// Recovered from the log at start-up: the messages loaded, and the rest left paged out.
    pub fn recover(self: &Arc<Self>, rq: crate::store::RecoveredQueue) {
        let mut s = self.lock();
        s.next_seq = rq.next_seq;
        s.logged = true;
        let (discarded, ready): (Vec<_>, Vec<_>) =
            rq.messages.into_iter().partition(|m| m.discarded.is_some());
        self.load(&mut s, ready);
        for m in discarded {
            // Back among the discards: retried once the vhost is up (`VHost::recover`
            // registers the queue with the retrier).
            let reason = DeathReason::from_code(m.discarded.unwrap_or(0));
            let (mut qm, _) = self.logged_message(s.dedup.as_ref(), m);
            // However it ends (dead-lettered or dropped), its log records a `Discard`.
            if let Some(p) = &mut qm.persisted {
                p.discard();
            }
            s.discards.push(Discarded::new(qm, reason));
        }
        s.tail.count = rq.tail_count;
        s.tail.bytes = rq.tail_bytes;
        self.maybe_page_in(&mut s);
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
        if self.stream.is_some() {
            // Refused before this by the handler (`Queue::refuses_get`).
            return None;
        }
        let mut s = self.lock();
        s.last_used = Instant::now();
        let now = Instant::now();
        loop {
            let Some(qm) = s.ready.pop_front() else {
                if s.tail.count == 0 {
                    return None;
                }
                // Everything left is paged out: read some back, waiting for it (rare:
                // consumers and earlier gets page in ahead of time).
                let below = page_in_below(s.paging_threshold);
                drop(s);
                if !self.page_in_now(below) {
                    return None;
                }
                s = self.lock();
                if s.ready.len == 0 {
                    return None;
                }
                continue;
            };
            if qm.expired(now) {
                fx.dead_letter(self, qm, DeathReason::Expired);
                continue;
            }
            self.maybe_page_in(&mut s);
            let mut qm = qm;
            if self.counts_returns && qm.delivery_count == 0 {
                // RabbitMQ 3.10 puts the header on every basic.get from a quorum queue.
                qm.message = quorum::with_delivery_count(&qm.message, 0);
            }
            return Some((qm, (s.ready.len as u64 + s.tail.count) as u32));
        }
    }

    /// Puts unacknowledged messages back at their original positions, marked redelivered,
    /// and delivers again.
    pub fn requeue(self: &Arc<Self>, messages: Vec<QueuedMessage>, fx: &mut Effects) {
        if let Some(stream) = &self.stream {
            // A stream keeps every message: giving one back only returns credit.
            drop(messages);
            return stream.wake();
        }
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
            if self.counts_returns && !self.count_return(&s.settings, &mut qm) {
                fx.dead_letter(self, qm, DeathReason::DeliveryLimit);
                continue;
            }
            s.ready.insert_by_seq(qm);
        }
        // As RabbitMQ: requeued messages count against x-max-length (drop-head only),
        // and the head goes before anything is delivered again.
        if s.settings.overflow == Overflow::DropHead {
            while over_limit(&s, 0, 0) {
                match s.ready.pop_front() {
                    Some(head) => fx.dead_letter(self, head, DeathReason::Maxlen),
                    None => break,
                }
            }
        }
        self.dispatch_locked(&mut s, fx);
    }

    /// A quorum queue's return of `qm` (`quorum::Command::Return`): its delivery count goes
    /// up, in memory (with the header) and in the log. False when that takes it past the
    /// delivery limit: it is to be dead-lettered instead.
    ///
    /// The return goes through the same [`Machine::apply`] the store's replica and
    /// recovery apply to the logged command, and is logged whatever it decides: past the
    /// limit, the dead-lettering that follows logs a `Discard`.
    fn count_return(&self, settings: &QueueSettings, qm: &mut QueuedMessage) -> bool {
        let mut state = MessageState {
            delivery_count: qm.delivery_count,
            delivered: true,
            checked_out: true,
            discarded: None,
        };
        let cmd = Command::Return { seq: qm.seq };
        let applied = Machine::new(settings.delivery_limit).apply(&mut state, cmd);
        if let Some(p) = &qm.persisted {
            p.log.mark(MARK_RETURNED, p.seq);
        }
        if applied != quorum::Applied::Kept {
            return false;
        }
        qm.delivery_count = state.delivery_count;
        qm.message = quorum::with_delivery_count(&qm.message, state.delivery_count);
        true
    }

    /// Keeps a dead message its target did not take (at-least-once dead-lettering) and
    /// registers the queue with the broker's retrier. Dropped if the queue is deleted.
    pub fn keep_discarded(self: &Arc<Self>, d: Discarded) {
        {
            let mut s = self.lock();
            if s.deleted {
                return;
            }
            s.discards.push(d);
        }
        if let Some(v) = self.vhost() {
            v.dead_letters.register(self);
        }
    }

    /// Whether dead messages wait for their target here.
    pub fn has_discards(&self) -> bool {
        !self.lock().discards.is_empty()
    }

    /// Tries every discard again (the retrier's pass). A dead-letter exchange that is still
    /// missing is noticed once for the whole pass, not once per discard.
    pub fn retry_discards(self: &Arc<Self>) {
        if let (Some(t), Some(v)) = (self.dead_letter_target(), self.vhost())
            && t.strategy == super::args::DeadLetterStrategy::AtLeastOnce
            && v.exchange(t.exchange.as_bytes()).is_none()
        {
            return;
        }
        let taken = {
            let mut s = self.lock();
            if s.deleted || s.discards.is_empty() {
                return;
            }
            s.discards.take()
        };
        super::discards::retry(self, taken);
    }

    /// Queue-level deduplication as the policy (first) or the argument asks, as the
    /// plugin's `maybe_toggle_dedup_queue`: turned on, the set starts empty (messages
    /// already queued are not in it, as the plugin flushes its cache); turned off, it goes.
    fn toggle_dedup(s: &mut QueueState, args: &QueueArgs, stream: bool) {
        if stream {
            return;
        }
        let wanted = match s.applied.get("x-message-deduplication") {
            Some(serde_json::Value::Bool(b)) => b,
            _ => args.message_deduplication,
        };
        match (wanted, s.dedup.is_some()) {
            (true, false) => s.dedup = Some(Arc::default()),
            (false, true) => s.dedup = None,
            _ => {}
        }
    }

    /// After a policy change with discards waiting: retried at once while the queue still
    /// dead-letters at least once; otherwise deleted, as RabbitMQ's `rabbit_fifo_dlx`
    /// deletes them when a queue switches away from at-least-once.
    fn discards_after_policy_change(&self, s: &mut QueueState) {
        let keeps = s.settings.dead_letter_exchange.is_some()
            && s.settings.dead_letter_strategy == super::args::DeadLetterStrategy::AtLeastOnce;
        if keeps {
            if let Some(v) = self.vhost() {
                v.dead_letters.topology_changed();
            }
            return;
        }
        let (n, bytes) = (s.discards.len(), s.discards.bytes());
        drop(s.discards.take());
        tracing::info!(queue = %self.name, messages = n, bytes, "deleted dead-lettered messages: the queue no longer dead-letters at least once");
    }

    /// Subscribes a consumer and delivers to it.
    ///
    /// `on_added` runs once the consumer is in, before anything is delivered to it: the
    /// place to write consume-ok, which must precede the first delivery.
    pub fn add_consumer(
        self: &Arc<Self>,
        consumer: Arc<Consumer>,
        arguments: &FieldTable,
        on_added: impl FnOnce(),
        fx: &mut Effects,
    ) -> Result<(), ConsumeRefused> {
        if let Some(stream) = &self.stream {
            let vhost = self
                .vhost
                .upgrade()
                .map(|v| v.name.clone())
                .unwrap_or_default();
            let start = super::stream::check_consumer(&consumer, arguments, &self.name, &vhost)
                .map_err(ConsumeRefused::Refused)?;
            if self.is_deleted() {
                return Err(ConsumeRefused::Deleted);
            }
            self.lock().had_consumer = true;
            stream.add_consumer(self, consumer, start, on_added);
            return Ok(());
        }
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
        if let Some(stream) = &self.stream {
            stream.remove_consumer(consumer);
            return false;
        }
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
        if s.consumers.is_empty() {
            if s.settings.expires.is_some() {
                self.timer.notify_one();
            }
            // Nobody left to make room.
            self.release_publishers(&mut s);
        }
        // With a single active consumer, the next one takes over.
        self.dispatch_locked(&mut s, fx);
        self.auto_delete && s.had_consumer && s.consumers.is_empty() && !s.deleted
    }

    /// Durable and not exclusive: the queue outlives a restart.
    pub fn is_durable_definition(&self) -> bool {
        self.durable && self.exclusive_owner.is_none()
    }

    /// The vhost the queue lives in (for dead-lettering from tasks outside a connection).
    pub fn vhost(&self) -> Option<Arc<VHost>> {
        self.vhost.upgrade()
    }

    /// The counts queue.delete's `if-empty` and `if-unused` look at: nothing holds a
    /// stream (RabbitMQ deletes one whatever it holds).
    pub fn delete_counts(&self) -> (u32, u32) {
        if self.stream.is_some() {
            return (0, 0);
        }
        self.counts()
    }

    /// Marks the queue used (a redeclare or passive declare), for x-expires.
    pub fn touch(&self) {
        self.lock().last_used = Instant::now();
    }

    /// Message and consumer counts, as declare-ok reports them (a stream reports its
    /// messages and, as RabbitMQ, no consumers).
    pub fn counts(&self) -> (u32, u32) {
        if let Some(stream) = &self.stream {
            return (stream.message_count().min(u32::MAX as u64) as u32, 0);
        }
        let s = self.lock();
        (
            (s.ready.len as u64 + s.tail.count) as u32,
            s.consumers.len() as u32,
        )
    }

    /// The queue's levels, read under its lock and nothing else (no copy of the
    /// consumers): what a Prometheus scrape reads of each queue.
    pub fn levels(&self) -> QueueLevels {
        match &self.stream {
            Some(stream) => stream.levels(),
            None => QueueLevels::of(&self.read()),
        }
    }

    /// What the management API shows of the queue's state, read under one short lock.
    pub fn snapshot(&self) -> QueueSnapshot {
        let s = self.read();
        if let Some(stream) = &self.stream {
            let l = stream.levels();
            return QueueSnapshot {
                ready: l.ready,
                ready_bytes: l.ready_bytes,
                paged_out: 0,
                paged_out_bytes: 0,
                consumers: stream.consumers(),
                idle_since: s.last_used,
                dlx: 0,
                dlx_bytes: 0,
            };
        }
        let l = QueueLevels::of(&s);
        QueueSnapshot {
            ready: l.ready,
            ready_bytes: l.ready_bytes,
            paged_out: l.paged_out,
            paged_out_bytes: l.paged_out_bytes,
            consumers: s.consumers.clone(),
            idle_since: s.last_used,
            dlx: l.dlx,
            dlx_bytes: l.dlx_bytes,
        }
    }

    /// Drops every ready message (paged out ones too); returns how many.
    pub fn purge(&self) -> u32 {
        let mut s = self.lock();
        self.release_publishers(&mut s);
        let n = s.ready.clear() as u64 + s.tail.count;
        if s.tail.count > 0 {
            s.tail.count = 0;
            s.tail.bytes = 0;
            self.log.drop_tail();
        }
        n as u32
    }

    /// Marks the queue deleted; returns its ready count and its consumers (to notify).
    pub fn mark_deleted(&self) -> (u32, Vec<Arc<Consumer>>) {
        let mut s = self.lock();
        s.deleted = true;
        self.release_publishers(&mut s);
        if let Some(stream) = &self.stream {
            // RabbitMQ's delete-ok for a stream counts no messages.
            drop(s);
            return (0, stream.delete());
        }
        if s.logged {
            self.log.delete();
        }
        let n = (s.ready.clear() as u64 + s.tail.count) as u32;
        s.tail = Tail::default();
        drop(s.discards.take());
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
        if !expired.is_empty() {
            // Expiry made room: read on into the paged-out tail, whose messages may have
            // expired too (a loaded page sets `earliest` and wakes this timer again).
            self.maybe_page_in(&mut s);
        }
        for m in expired {
            fx.dead_letter(self, m, DeathReason::Expired);
        }
        let mut queue_deadline = None;
        let mut queue_expired = false;
        if let Some(ttl) = s.settings.expires
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

/// Whether a publish of `size` bytes may be enqueued under `reject-publish`: classic
/// queues refuse what would go over the limits; quorum queues apply rabbit_fifo's soft
/// limit (and note that this one may take them over it).
fn admit(s: &mut QueueState, size: u64) -> bool {
    // rabbit_fifo counts the discards waiting for their target (`is_over_limit`).
    let len = s.ready.len as u64 + s.tail.count + s.discards.len();
    let bytes = s.ready.bytes + s.tail.bytes + s.discards.bytes();
    let (max_len, max_bytes) = (s.settings.max_length, s.settings.max_length_bytes);
    match &mut s.admission {
        Some(a) => {
            let ok = a.admit(len, bytes, max_len, max_bytes);
            if ok {
                a.enqueued(len + 1, bytes + size, max_len, max_bytes);
            }
            ok
        }
        None => !over_limit(s, 1, size),
    }
}

/// Whether the queue is over its length limits with `extra_len` more messages of
/// `extra_bytes` more bytes; paged-out messages count.
fn over_limit(s: &QueueState, extra_len: usize, extra_bytes: u64) -> bool {
    let len = s.ready.len as u64 + s.tail.count + extra_len as u64;
    let bytes = s.ready.bytes + s.tail.bytes + extra_bytes;
    s.settings.max_length.is_some_and(|m| len > m)
        || s.settings.max_length_bytes.is_some_and(|m| bytes > m)
}

/// The paging threshold for these settings: length limits and priorities act on the
/// messages themselves, so such queues keep them all in memory (their limits bound them
/// anyway); others keep `store` bytes of ready bodies.
fn pageable_below(args: &QueueArgs, settings: &QueueSettings, store: u64) -> u64 {
    if args.max_priority.is_some() || settings.limits_length() {
        u64::MAX
    } else {
        store
    }
}

/// Below how many ready bytes (as [`Ready::held`] counts them) the tail is read back.
fn page_in_below(threshold: u64) -> u64 {
    if threshold == u64::MAX {
        64 << 20
    } else {
        threshold / 2
    }
}

impl Drop for Queue {
    /// A queue object is dropped after it was deleted, or when the broker itself stops:
    /// either way its messages must not be acknowledged in the log as they are dropped.
    fn drop(&mut self) {
        self.log.detach();
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

/// Waits for the store's writer thread. On a worker of the multi-threaded runtime the wait
/// goes through `block_in_place`, so the worker's other tasks move to another thread
/// instead of stalling behind a disk read.
fn wait_for_store(wait: &std::sync::mpsc::Receiver<()>) -> Result<(), std::sync::mpsc::RecvError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| wait.recv())
        }
        _ => wait.recv(),
    }
}
