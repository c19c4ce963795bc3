//! Message statistics, as the management API shows them (`message_stats` with `publish`,
//! `deliver_get`, ... and each one's `*_details.rate`).
//!
//! Cost on the message path: one relaxed atomic add per counted event, on counters that
//! belong to the object where the event happens (a queue, a channel, an exchange). No
//! lock, no allocation, no clock read. Rates are never computed per message: a sampler
//! task ([`Counters::sample`], every `mgmt.stats_interval`) turns the difference between
//! two samples into a per-second rate, kept beside the counters.
//!
//! The sampler visits only the objects that moved ([`Activity`]): an object's first
//! counted event after a sample flips its [`Mark`] (a relaxed load that finds the flag
//! clear, then one swap) and puts it on its broker's active list; every later event of
//! the interval costs the load only. A sampled object whose rates are not all zero stays
//! on the list one more interval, so that its rates fall back to zero. Idle objects cost
//! the sampler nothing, however many there are.

use serde_json::{Map, Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// An object the sampler can visit: a queue, an exchange, a channel, a connection.
pub trait Sampled: Send + Sync {
    /// The mark that puts the object on the active list.
    fn mark(&self) -> &Mark;
    /// Turns the counters into rates over the last `seconds`; returns whether any rate
    /// (or level change) is non-zero.
    fn sample(&self, seconds: f64) -> bool;
}

/// The objects of one broker whose statistics moved since the sampler's last pass.
///
/// Invariant: an object is on the list at most once, exactly while its mark's flag is
/// set (the flag is set before the push, cleared by [`pass`](Self::pass) after the take,
/// both ordered by the list's lock).
#[derive(Debug, Default)]
pub struct Activity {
    list: Mutex<Vec<Weak<dyn Sampled>>>,
}

impl Activity {
    /// One sampler pass: samples every object that moved since the last pass (and those
    /// whose rates were not yet zero), nothing else. Returns how many objects it visited.
    pub fn pass(&self, seconds: f64) -> usize {
        let taken = std::mem::take(&mut *self.list.lock().unwrap());
        let visited = taken.len();
        for w in taken {
            let Some(o) = w.upgrade() else { continue };
            let mark = o.mark();
            // Cleared before sampling: an event from now on puts it back on the list.
            mark.dirty.store(false, Relaxed);
            if o.sample(seconds) {
                mark.touch();
            }
        }
        visited
    }

    /// How many objects wait for the next pass.
    pub fn len(&self) -> usize {
        self.list.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An object's place on its broker's [`Activity`] list: unattached (a sum, the retired
/// totals) it does nothing.
#[derive(Debug, Default)]
pub struct Mark {
    dirty: AtomicBool,
    hook: OnceLock<(Arc<Activity>, Weak<dyn Sampled>)>,
}

impl Mark {
    /// Something moved: puts the object on the active list unless it is there already.
    /// One relaxed load when it is (every event after the first of an interval).
    #[inline]
    pub fn touch(&self) {
        if !self.dirty.load(Relaxed) {
            self.flip();
        }
    }

    #[cold]
    #[inline(never)]
    fn flip(&self) {
        if let Some((activity, me)) = self.hook.get() {
            let mut list = activity.list.lock().unwrap();
            if !self.dirty.swap(true, Relaxed) {
                list.push(me.clone());
            }
        }
    }

    /// Ties the mark to its object and its broker's list (once, after the object is
    /// shared); the object is sampled at the next pass.
    pub fn attach(&self, activity: &Arc<Activity>, me: Weak<dyn Sampled>) {
        let _ = self.hook.set((activity.clone(), me));
        self.touch();
    }
}

/// What is counted. RabbitMQ's names; each object kind counts a subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Stat {
    Publish,
    Confirm,
    ReturnUnroutable,
    DropUnroutable,
    Deliver,
    DeliverNoAck,
    Get,
    GetNoAck,
    GetEmpty,
    Ack,
    Redeliver,
    PublishIn,
    PublishOut,
    /// Publishes confirmed to the publisher (basic.ack sent; `Confirm` counts the
    /// publishes made in confirm mode). Counted per ack sent, not per message.
    ConfirmSent,
    /// Messages that died (TTL, length limit, reject) in a queue with a dead-letter
    /// exchange (RabbitMQ's `dead_letter_strategy="at_most_once"`)...
    DeadLetteredExpired,
    DeadLetteredMaxlen,
    DeadLetteredRejected,
    /// ... and in a queue without one: dropped (`dead_letter_strategy="disabled"`).
    DroppedExpired,
    DroppedMaxlen,
    DroppedRejected,
    /// Quorum queues' messages past their delivery limit, dead-lettered or dropped.
    DeadLetteredDeliveryLimit,
    DroppedDeliveryLimit,
}

const COUNT: usize = 22;

const NAMES: [&str; COUNT] = [
    "publish",
    "confirm",
    "return_unroutable",
    "drop_unroutable",
    "deliver",
    "deliver_no_ack",
    "get",
    "get_no_ack",
    "get_empty",
    "ack",
    "redeliver",
    "publish_in",
    "publish_out",
    "confirm_sent",
    "dead_lettered_expired",
    "dead_lettered_maxlen",
    "dead_lettered_rejected",
    "dropped_expired",
    "dropped_maxlen",
    "dropped_rejected",
    "dead_lettered_delivery_limit",
    "dropped_delivery_limit",
];

/// The stats a queue shows.
pub const QUEUE: &[Stat] = &[
    Stat::Publish,
    Stat::Deliver,
    Stat::DeliverNoAck,
    Stat::Get,
    Stat::GetNoAck,
    Stat::GetEmpty,
    Stat::Ack,
    Stat::Redeliver,
];
/// The stats a channel, a vhost and the whole broker show.
pub const CHANNEL: &[Stat] = &[
    Stat::Publish,
    Stat::Confirm,
    Stat::ReturnUnroutable,
    Stat::DropUnroutable,
    Stat::Deliver,
    Stat::DeliverNoAck,
    Stat::Get,
    Stat::GetNoAck,
    Stat::GetEmpty,
    Stat::Ack,
    Stat::Redeliver,
];
/// The stats an exchange shows.
pub const EXCHANGE: &[Stat] = &[Stat::PublishIn, Stat::PublishOut];

/// Monotonic counters of one object and their last sampled rates.
#[derive(Debug, Default)]
pub struct Counters {
    /// Puts the owner on the sampler's list at its first event of an interval.
    pub active: Mark,
    totals: [AtomicU64; COUNT],
    /// Totals at the last sample.
    last: [AtomicU64; COUNT],
    /// Per-second rates from the last two samples (f64 bits).
    rates: [AtomicU64; COUNT],
}

impl Counters {
    #[inline]
    pub fn add(&self, s: Stat, n: u64) {
        self.totals[s as usize].fetch_add(n, Relaxed);
        self.active.touch();
    }

    #[inline]
    pub fn incr(&self, s: Stat) {
        self.add(s, 1);
    }

    pub fn get(&self, s: Stat) -> u64 {
        self.totals[s as usize].load(Relaxed)
    }

    pub fn rate(&self, s: Stat) -> f64 {
        f64::from_bits(self.rates[s as usize].load(Relaxed))
    }

    /// Adds another object's totals (a channel that closed, folded into its broker's).
    pub fn absorb(&self, other: &Counters) {
        for i in 0..COUNT {
            let n = other.totals[i].load(Relaxed);
            if n > 0 {
                self.totals[i].fetch_add(n, Relaxed);
                self.last[i].fetch_add(n, Relaxed);
            }
        }
    }

    /// Takes a sample: the rates become the increase since the previous sample divided
    /// by `seconds`. Called by the sampler only (one writer), so plain loads and stores.
    /// Returns whether any rate is non-zero.
    pub fn sample(&self, seconds: f64) -> bool {
        let mut moved = false;
        for i in 0..COUNT {
            let now = self.totals[i].load(Relaxed);
            let before = self.last[i].swap(now, Relaxed);
            moved |= now != before;
            let rate = now.saturating_sub(before) as f64 / seconds.max(1e-3);
            self.rates[i].store(rate.to_bits(), Relaxed);
        }
        moved
    }

    /// `message_stats` as RabbitMQ shows it for an object of the kind `which` lists, with
    /// `deliver_get` (every delivery and get) where deliveries are counted. Empty when
    /// nothing happened yet (RabbitMQ then shows no counters at all).
    pub fn json(&self, which: &[Stat]) -> Value {
        let mut m = Map::new();
        if which.iter().all(|s| self.get(*s) == 0) {
            return Value::Object(m);
        }
        let mut put = |name: &str, total: u64, rate: f64| {
            m.insert(name.to_string(), json!(total));
            m.insert(format!("{name}_details"), json!({ "rate": round(rate) }));
        };
        for s in which {
            put(NAMES[*s as usize], self.get(*s), self.rate(*s));
        }
        if which.contains(&Stat::Deliver) {
            let parts = [Stat::Deliver, Stat::DeliverNoAck, Stat::Get, Stat::GetNoAck];
            let total = parts.iter().map(|s| self.get(*s)).sum();
            let rate = parts.iter().map(|s| self.rate(*s)).sum();
            put("deliver_get", total, rate);
        }
        Value::Object(m)
    }
}

/// Counters kept per queue type (classic, quorum, stream: `QueueType as usize`): the
/// totals of deleted queues, so that the broker's per-type totals never go backwards.
#[derive(Debug, Default)]
pub struct ByQueueType(pub [Counters; 3]);

impl ByQueueType {
    pub fn absorb(&self, other: &ByQueueType) {
        for (a, b) in self.0.iter().zip(&other.0) {
            a.absorb(b);
        }
    }
}

/// Upper bounds of the message size histogram's buckets, as RabbitMQ (4.0 and later)
/// has them (`rabbit_msg_size_metrics`); the last bucket is `+Inf`.
pub const SIZE_BOUNDS: [u64; 8] = [
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    50_000_000,
    100_000_000,
];

/// Sizes of the messages one channel received, as a histogram: a count per bucket
/// (not cumulative) and the sum of the sizes.
///
/// Written only by the channel's own reader task (a publish), so an observation is two
/// plain relaxed load/store pairs on cache lines no other task writes: no locked
/// instruction, no contention. Readers (a scrape, retiring the channel) only load.
#[derive(Debug, Default)]
pub struct SizeHistogram {
    buckets: [AtomicU64; SIZE_BOUNDS.len() + 1],
    sum: AtomicU64,
}

impl SizeHistogram {
    /// The bucket of `size`: the number of bounds below it, without a branch.
    #[inline]
    pub fn bucket(size: u64) -> usize {
        SIZE_BOUNDS.iter().map(|b| (size > *b) as usize).sum()
    }

    /// Records one message of `size` bytes. Single writer (see the type's comment).
    #[inline]
    pub fn observe(&self, size: u64) {
        let b = &self.buckets[Self::bucket(size)];
        b.store(b.load(Relaxed) + 1, Relaxed);
        self.sum.store(self.sum.load(Relaxed) + size, Relaxed);
    }

    /// Adds another histogram into this one (any number of writers).
    pub fn absorb(&self, other: &SizeHistogram) {
        for (a, b) in self.buckets.iter().zip(&other.buckets) {
            a.fetch_add(b.load(Relaxed), Relaxed);
        }
        self.sum.fetch_add(other.sum.load(Relaxed), Relaxed);
    }

    /// Per-bucket counts (not cumulative) and the sum.
    pub fn read(&self) -> ([u64; SIZE_BOUNDS.len() + 1], u64) {
        (
            std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            self.sum.load(Relaxed),
        )
    }
}

/// Sums several objects' counters into one (a vhost's channels, the broker's).
pub fn sum<'a>(all: impl IntoIterator<Item = &'a Counters>) -> Counters {
    let out = Counters::default();
    for c in all {
        for i in 0..COUNT {
            out.totals[i].fetch_add(c.totals[i].load(Relaxed), Relaxed);
            out.rates[i].store(
                (f64::from_bits(out.rates[i].load(Relaxed))
                    + f64::from_bits(c.rates[i].load(Relaxed)))
                .to_bits(),
                Relaxed,
            );
        }
    }
    out
}

/// Rates to one decimal place would hide slow queues; RabbitMQ shows floats as they are,
/// we keep two decimals so that listings stay readable.
fn round(r: f64) -> f64 {
    (r * 100.0).round() / 100.0
}

/// One event counter and its last sampled rate: churn (connections and channels opened
/// and closed, queues declared, created and deleted), counted where the event happens.
#[derive(Debug, Default)]
pub struct Counter {
    total: AtomicU64,
    last: AtomicU64,
    rate: AtomicU64,
}

impl Counter {
    #[inline]
    pub fn incr(&self) {
        self.total.fetch_add(1, Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.total.load(Relaxed)
    }

    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate.load(Relaxed))
    }

    pub fn sample(&self, seconds: f64) {
        let now = self.total.load(Relaxed);
        let before = self.last.swap(now, Relaxed);
        let r = now.saturating_sub(before) as f64 / seconds.max(1e-3);
        self.rate.store(r.to_bits(), Relaxed);
    }
}

/// How fast a level (a queue's ready or unacknowledged messages) moves: the sampler
/// gives it the level every interval; the rate is the change per second, negative when
/// the level falls.
#[derive(Debug, Default)]
pub struct Gauge {
    last: AtomicU64,
    rate: AtomicU64,
}

impl Gauge {
    /// Returns whether the level moved.
    pub fn sample(&self, level: u64, seconds: f64) -> bool {
        let before = self.last.swap(level, Relaxed);
        let r = (level as f64 - before as f64) / seconds.max(1e-3);
        self.rate.store(r.to_bits(), Relaxed);
        level != before
    }

    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate.load(Relaxed))
    }
}

/// A queue's message levels, as the sampler last saw them move.
#[derive(Debug, Default)]
pub struct Depth {
    pub ready: Gauge,
    pub unacked: Gauge,
}

/// Queue churn of one vhost.
#[derive(Debug, Default)]
pub struct QueueChurn {
    pub declared: Counter,
    pub created: Counter,
    pub deleted: Counter,
}

impl QueueChurn {
    pub fn sample(&self, seconds: f64) {
        for c in [&self.declared, &self.created, &self.deleted] {
            c.sample(seconds);
        }
    }
}

/// Traffic of one connection, counted per socket read and write (not per message).
#[derive(Debug, Default)]
pub struct Traffic {
    /// Puts the connection on the sampler's list at its first read or write of an
    /// interval.
    pub active: Mark,
    pub recv_oct: AtomicU64,
    pub recv_cnt: AtomicU64,
    pub send_oct: AtomicU64,
    pub send_cnt: AtomicU64,
    last_recv: AtomicU64,
    last_send: AtomicU64,
    recv_rate: AtomicU64,
    send_rate: AtomicU64,
}

impl Traffic {
    #[inline]
    pub fn received(&self, bytes: usize) {
        self.recv_oct.fetch_add(bytes as u64, Relaxed);
        self.recv_cnt.fetch_add(1, Relaxed);
        self.active.touch();
    }

    #[inline]
    pub fn sent(&self, bytes: usize) {
        self.send_oct.fetch_add(bytes as u64, Relaxed);
        self.send_cnt.fetch_add(1, Relaxed);
        self.active.touch();
    }

    /// Returns whether any byte moved.
    pub fn sample(&self, seconds: f64) -> bool {
        let mut moved = false;
        for (total, last, rate) in [
            (&self.recv_oct, &self.last_recv, &self.recv_rate),
            (&self.send_oct, &self.last_send, &self.send_rate),
        ] {
            let now = total.load(Relaxed);
            let before = last.swap(now, Relaxed);
            moved |= now != before;
            let r = now.saturating_sub(before) as f64 / seconds.max(1e-3);
            rate.store(r.to_bits(), Relaxed);
        }
        moved
    }

    /// Bytes received and sent per second, as last sampled.
    pub fn rates(&self) -> (f64, f64) {
        (
            f64::from_bits(self.recv_rate.load(Relaxed)),
            f64::from_bits(self.send_rate.load(Relaxed)),
        )
    }

    /// The fields RabbitMQ's connection objects carry for traffic.
    pub fn json(&self, m: &mut Map<String, Value>) {
        let get = |a: &AtomicU64| a.load(Relaxed);
        let rate = |a: &AtomicU64| round(f64::from_bits(a.load(Relaxed)));
        m.insert("recv_oct".into(), json!(get(&self.recv_oct)));
        m.insert("recv_cnt".into(), json!(get(&self.recv_cnt)));
        m.insert("send_oct".into(), json!(get(&self.send_oct)));
        m.insert("send_cnt".into(), json!(get(&self.send_cnt)));
        m.insert(
            "recv_oct_details".into(),
            json!({"rate": rate(&self.recv_rate)}),
        );
        m.insert(
            "send_oct_details".into(),
            json!({"rate": rate(&self.send_rate)}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_two_samples() {
        let c = Counters::default();
        c.add(Stat::Publish, 10);
        c.sample(2.0);
        assert_eq!(c.rate(Stat::Publish), 5.0);
        c.sample(2.0);
        assert_eq!(c.rate(Stat::Publish), 0.0);
        assert_eq!(c.get(Stat::Publish), 10);
    }

    struct Object(Counters);

    impl Sampled for Object {
        fn mark(&self) -> &Mark {
            &self.0.active
        }
        fn sample(&self, seconds: f64) -> bool {
            self.0.sample(seconds)
        }
    }

    #[test]
    fn a_pass_visits_only_objects_that_moved() {
        let activity = Arc::new(Activity::default());
        let objects: Vec<Arc<Object>> = (0..10_000)
            .map(|_| {
                let o = Arc::new(Object(Counters::default()));
                let me: Weak<dyn Sampled> = Arc::downgrade(&o) as _;
                o.0.active.attach(&activity, me);
                o
            })
            .collect();
        // Attached objects are sampled once, then only those that move.
        assert_eq!(activity.pass(1.0), 10_000);
        assert_eq!(activity.pass(1.0), 0);
        for _ in 0..5 {
            objects[7].0.incr(Stat::Publish);
        }
        assert_eq!(activity.len(), 1);
        assert_eq!(activity.pass(2.0), 1);
        assert_eq!(objects[7].0.rate(Stat::Publish), 2.5);
        // One more pass brings the rate back to zero, then the object is left alone.
        assert_eq!(activity.pass(1.0), 1);
        assert_eq!(objects[7].0.rate(Stat::Publish), 0.0);
        assert_eq!(activity.pass(1.0), 0);
        // A dropped object is skipped.
        objects[8].0.incr(Stat::Ack);
        drop(objects);
        assert_eq!(activity.pass(1.0), 1);
        assert!(activity.is_empty());
    }

    #[test]
    fn size_buckets_are_rabbitmqs() {
        let cases = [
            (0, 0),
            (100, 0),
            (101, 1),
            (1_000, 1),
            (1_001, 2),
            (99_999, 3),
            (1_000_000, 4),
            (10_000_001, 6),
            (50_000_000, 6),
            (100_000_000, 7),
            (100_000_001, 8),
            (u64::MAX, 8),
        ];
        for (size, bucket) in cases {
            assert_eq!(SizeHistogram::bucket(size), bucket, "size {size}");
        }
        let h = SizeHistogram::default();
        h.observe(10);
        h.observe(5000);
        let (b, sum) = h.read();
        assert_eq!((b[0], b[2], sum), (1, 1, 5010));
    }

    #[test]
    fn json_has_deliver_get_and_details() {
        let c = Counters::default();
        assert_eq!(c.json(QUEUE), json!({}));
        c.incr(Stat::Deliver);
        c.incr(Stat::Get);
        let j = c.json(QUEUE);
        assert_eq!(j["deliver_get"], 2);
        assert_eq!(j["deliver_details"]["rate"], 0.0);
        assert!(j.get("publish_in").is_none());
    }
}
