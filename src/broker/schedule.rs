//! The schedule of delayed messages (x-delayed-message exchanges): one per broker, one
//! timer task for all of them.
//!
//! - **Near**: messages due before `loaded_until` (the end of the bucket that holds
//!   now + [`LEAD_MS`]) wait in memory in one binary heap ordered by (due time, sequence
//!   number). The timer task sleeps until the earliest of them, or until a publisher
//!   schedules one earlier than that (a `Notify`), pops everything due in one batch and
//!   routes it outside the lock.
//! - **Far**: later messages go only to disk, to the log of their time bucket
//!   (`store::delayed`); memory keeps a count per bucket. [`LEAD_MS`] before a bucket's
//!   time the task asks the store's writer for the whole bucket and moves it into the heap.
//!   So memory is proportional to what is due within about `LEAD_MS + BUCKET_MS`.
//! - **Durability**: a persistent message scheduled on a durable exchange is appended to
//!   its bucket's log even when it waits in memory, and its confirm waits for the store's
//!   group commit like a queue's. Routing it leaves an acknowledgement mark; the bucket's
//!   log is deleted once its time has passed and nothing of it is left to route.
//! - **Routing when due**: through the exchange's own bindings, with its underlying type,
//!   then exchange-to-exchange bindings and the alternate exchange, enqueued as
//!   basic.publish does (dead-lettering included). A message published with `mandatory`
//!   that nothing takes is returned (312 NO_ROUTE) to its publishing channel if that is
//!   still open; after a restart, or once the channel closed, it is dropped.
//! - **Deleted exchanges**: a message whose exchange is gone (or was deleted and declared
//!   again) is dropped when due. Deletion records a tombstone (the sequence number then;
//!   on disk too for a durable exchange) so that its far messages are never routed by a
//!   namesake.
//!
//! Lock: `Scheduler::state` is taken by publishers, by the timer task and by exchange
//! deletion. While it is held only the store's pending operations (a leaf) are taken:
//! never a vhost map, an exchange, a queue or an outbox.

use super::Broker;
use super::consumer::ChannelLink;
use super::deadletter::dead_letter_all;
use super::effects::Effects;
use super::exchange::{Exchange, Props, RouteInfo};
use super::message::{Message, MessageRef};
use super::queue::Queue;
use super::stats::Stat;
use super::vhost::VHost;
use crate::protocol::{BasicReturn, EncodedProperties, FieldValue, Method, ShortStr, reply_code};
use crate::store::delayed::{self as disk, BUCKET_MS, RecoveredBucket, TOMBSTONES};
use crate::store::log::LoggedMessage;
use crate::store::{Persisted, QueueLog, Store};
use bytes::Bytes;
use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long before a bucket's time it is read back from disk.
pub const LEAD_MS: u64 = 2000;

/// Milliseconds since the Unix epoch: due times survive a restart.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A message waiting in memory.
struct Entry {
    due: u64,
    seq: u64,
    vhost: Weak<VHost>,
    exchange: Arc<Exchange>,
    message: MessageRef,
    /// Its record in a bucket's log: held for its `Drop`, which marks the record routed
    /// when the entry goes (routed or dropped).
    _record: Option<Persisted>,
    /// The publishing channel, for basic.return (mandatory only).
    mandatory: Option<Weak<ChannelLink>>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed: the heap's top is the earliest.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// The vhost and exchange a record read back names, if they still exist.
type Resolved = Option<(Weak<VHost>, Arc<Exchange>)>;

/// One time bucket with a log on disk.
struct Bucket {
    log: Arc<QueueLog>,
    /// Messages only on disk, not yet read back.
    on_disk: u64,
    /// Read back already by recovery (see `RecoveredBucket::head`).
    head: Vec<LoggedMessage>,
    /// Read back (or being read back): new messages of this bucket wait in memory.
    loaded: bool,
    /// Sequence numbers from here on were scheduled after reading back began: they are in
    /// the heap already.
    load_seq: u64,
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Entry>,
    next_seq: u64,
    /// Messages due before this (a bucket boundary) wait in memory.
    loaded_until: u64,
    buckets: BTreeMap<u64, Bucket>,
    /// Per (vhost, exchange) deleted: messages scheduled before this sequence number are
    /// dropped.
    tombstones: HashMap<(ShortStr, ShortStr), u64>,
    /// Mandatory messages waiting on disk: their publishing channels.
    returns: HashMap<u64, Weak<ChannelLink>>,
    /// When the timer task will next wake (u64::MAX: when notified).
    wake_at: u64,
    /// Messages scheduled and not yet routed or dropped.
    scheduled: u64,
}

/// The broker's schedule of delayed messages.
pub struct Scheduler {
    store: Arc<Store>,
    state: Mutex<State>,
    wake: Notify,
    broker: OnceLock<Weak<Broker>>,
    tombstone_log: OnceLock<Arc<QueueLog>>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scheduler")
    }
}

impl Scheduler {
    /// The schedule as the store recovered it: each bucket's count (its messages stay on
    /// disk until their time) and the tombstones.
    pub fn new(store: Arc<Store>, recovered: Vec<RecoveredBucket>, next_seq: u64) -> Scheduler {
        let mut st = State {
            next_seq: next_seq.max(1),
            wake_at: u64::MAX,
            ..Default::default()
        };
        for b in recovered {
            if b.bucket == TOMBSTONES {
                for t in b.head {
                    if let Some((vhost, exchange)) = t.stored.target {
                        let e = st.tombstones.entry((vhost, exchange)).or_default();
                        *e = (*e).max(t.stored.seq);
                    }
                }
                continue;
            }
            st.scheduled += b.count;
            st.buckets.insert(
                b.bucket,
                Bucket {
                    log: store.log_with_id(disk::log_id(b.bucket), false),
                    on_disk: b.count,
                    head: b.head,
                    loaded: false,
                    load_seq: 0,
                },
            );
        }
        Scheduler {
            store,
            state: Mutex::new(st),
            wake: Notify::new(),
            broker: OnceLock::new(),
            tombstone_log: OnceLock::new(),
        }
    }

    /// Messages scheduled and not yet routed (or dropped).
    pub fn scheduled(&self) -> u64 {
        self.state.lock().unwrap().scheduled
    }

    /// Schedules `message` (its properties already as they will be routed) to be routed
    /// through `exchange` in `delay` ms. Returns the store ticket its confirm waits for
    /// (0: none): a persistent message on a durable exchange is confirmed once on disk.
    pub fn schedule(
        &self,
        vhost: &Arc<VHost>,
        exchange: &Arc<Exchange>,
        message: MessageRef,
        delay: u64,
        mandatory: Option<&Arc<ChannelLink>>,
    ) -> u64 {
        let persistent = exchange.durable && message.persistent();
        let vhost_name = ShortStr::from(vhost.name.as_str());
        let mut st = self.state.lock().unwrap();
        let now = now_ms();
        let due = now + delay;
        let seq = st.next_seq;
        st.next_seq += 1;
        st.scheduled += 1;
        let bucket = due / BUCKET_MS;
        if due < st.loaded_until {
            let mut ticket = 0;
            let persisted = persistent.then(|| {
                let b = st.buckets.entry(bucket).or_insert_with(|| Bucket {
                    log: self.store.log_with_id(disk::log_id(bucket), false),
                    on_disk: 0,
                    head: Vec::new(),
                    loaded: true,
                    load_seq: seq,
                });
                let target = (&vhost_name, &exchange.name);
                ticket = b.log.append_delayed(seq, target, &message, true, due);
                Persisted::new(b.log.clone(), seq)
            });
            st.heap.push(Entry {
                due,
                seq,
                vhost: Arc::downgrade(vhost),
                exchange: exchange.clone(),
                message,
                _record: persisted,
                mandatory: mandatory.map(Arc::downgrade),
            });
            if due < st.wake_at {
                st.wake_at = due;
                self.wake.notify_one();
            }
            ticket
        } else {
            let b = st.buckets.entry(bucket).or_insert_with(|| Bucket {
                log: self.store.log_with_id(disk::log_id(bucket), false),
                on_disk: 0,
                head: Vec::new(),
                loaded: false,
                load_seq: 0,
            });
            b.on_disk += 1;
            let target = (&vhost_name, &exchange.name);
            let ticket = b.log.append_delayed(seq, target, &message, persistent, due);
            if let Some(link) = mandatory {
                st.returns.insert(seq, Arc::downgrade(link));
            }
            if persistent { ticket } else { 0 }
        }
    }

    /// An x-delayed-message exchange was deleted: what it holds is dropped (in memory now,
    /// on disk when its bucket is read back).
    pub fn forget(&self, vhost: &VHost, exchange: &Exchange) {
        let vhost_name = ShortStr::from(vhost.name.as_str());
        let mut st = self.state.lock().unwrap();
        let threshold = st.next_seq;
        st.next_seq += 1;
        st.tombstones
            .insert((vhost_name.clone(), exchange.name.clone()), threshold);
        let before = st.heap.len();
        st.heap
            .retain(|e| !std::ptr::eq(Arc::as_ptr(&e.exchange), exchange));
        st.scheduled -= (before - st.heap.len()) as u64;
        if exchange.durable {
            let log = self
                .tombstone_log
                .get_or_init(|| self.store.log_with_id(disk::log_id(TOMBSTONES), false));
            let m = Arc::new(Message {
                exchange: exchange.name.clone(),
                routing_key: ShortStr::from(""),
                properties: EncodedProperties::default(),
                body: Bytes::new(),
                bcc: Vec::new(),
            });
            log.append_delayed(threshold, (&vhost_name, &exchange.name), &m, true, 0);
        }
    }

    /// Runs the timer until `shutdown`: reads buckets back as their time approaches and
    /// routes what is due, in batches.
    pub async fn run(self: Arc<Self>, broker: Weak<Broker>, shutdown: CancellationToken) {
        let _ = self.broker.set(broker);
        let mut batch: Vec<Entry> = Vec::new();
        let mut out: Vec<Arc<Queue>> = Vec::new();
        loop {
            let now = now_ms();
            let wake_at = {
                let mut st = self.state.lock().unwrap();
                self.start_loads(&mut st, now);
                while st.heap.peek().is_some_and(|e| e.due <= now) {
                    batch.push(st.heap.pop().unwrap());
                }
                st.scheduled -= batch.len() as u64;
                // Next: the earliest message, or the next bucket to read back.
                let next_load = st.loaded_until.saturating_sub(LEAD_MS);
                let next = st.heap.peek().map_or(u64::MAX, |e| e.due).min(next_load);
                st.wake_at = if batch.is_empty() { next } else { now };
                // Bucket logs left to delete are looked at every second.
                let cap = if st.buckets.is_empty() { 60_000 } else { 1000 };
                (st.wake_at, cap)
            };
            if !batch.is_empty() {
                self.route(&mut batch, &mut out);
                continue;
            }
            self.finish_buckets(now);
            let sleep = wake_at.0.saturating_sub(now_ms()).min(wake_at.1);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(sleep)) => {}
            }
        }
    }

    /// Moves the in-memory horizon forward; buckets it now covers are read back (by the
    /// store's writer; a task hands the result to [`Scheduler::loaded`]).
    fn start_loads(self: &Arc<Self>, st: &mut State, now: u64) {
        let until = ((now + LEAD_MS) / BUCKET_MS + 1) * BUCKET_MS;
        if until <= st.loaded_until {
            return;
        }
        st.loaded_until = until;
        let next_seq = st.next_seq;
        for (bucket, b) in st.buckets.range_mut(..until / BUCKET_MS) {
            if b.loaded {
                continue;
            }
            b.loaded = true;
            b.load_seq = next_seq;
            let head = std::mem::take(&mut b.head);
            let me = self.clone();
            let bucket = *bucket;
            let rx = (b.on_disk > head.len() as u64).then(|| {
                let (tx, rx) = tokio::sync::oneshot::channel();
                b.log.load_bucket(tx);
                rx
            });
            tokio::spawn(async move {
                let mut all = head;
                if let Some(rx) = rx {
                    all.extend(rx.await.unwrap_or_default());
                }
                me.loaded(bucket, all);
            });
        }
    }

    /// A bucket read back: its messages join the heap (resolved to their exchanges; those
    /// whose exchange is gone are dropped).
    fn loaded(&self, bucket: u64, messages: Vec<LoggedMessage>) {
        let Some(broker) = self.broker.get().and_then(|b| b.upgrade()) else {
            return;
        };
        let Some(log) = self
            .state
            .lock()
            .unwrap()
            .buckets
            .get(&bucket)
            .map(|b| b.log.clone())
        else {
            return;
        };
        // Resolved without the schedule's lock (vhost maps come first in the lock order).
        let mut resolved: Vec<(LoggedMessage, Resolved)> = Vec::with_capacity(messages.len());
        let mut last: Option<((ShortStr, ShortStr), Resolved)> = None;
        for m in messages {
            let Some(target) = m.stored.target.clone() else {
                resolved.push((m, None));
                continue;
            };
            let to = match &last {
                Some((t, to)) if *t == target => to.clone(),
                _ => {
                    let to = broker
                        .vhost(&String::from_utf8_lossy(target.0.as_bytes()))
                        .and_then(|v| {
                            let e = v.exchange(target.1.as_bytes())?;
                            Some((Arc::downgrade(&v), e))
                        });
                    last = Some((target, to.clone()));
                    to
                }
            };
            resolved.push((m, to));
        }
        let mut st = self.state.lock().unwrap();
        let Some(load_seq) = st.buckets.get(&bucket).map(|b| b.load_seq) else {
            return;
        };
        let mut dropped = 0;
        for (m, to) in resolved {
            let seq = m.stored.seq;
            if seq >= load_seq {
                // Scheduled while this bucket was read back: in the heap already.
                continue;
            }
            let persisted = Some(Persisted::new(log.clone(), seq));
            let mandatory = st.returns.remove(&seq);
            let alive = to.filter(|(_, e)| {
                let t = m.stored.target.as_ref().unwrap();
                st.tombstones.get(t).is_none_or(|below| seq >= *below)
                    && e.kind == super::exchange::ExchangeKind::Delayed
            });
            let Some((vhost, exchange)) = alive else {
                dropped += 1;
                drop(persisted);
                continue;
            };
            let due = m.stored.expires;
            st.heap.push(Entry {
                due,
                seq,
                vhost,
                exchange,
                message: Arc::new(m.stored.message),
                _record: persisted,
                mandatory,
            });
            if due < st.wake_at {
                st.wake_at = due;
                self.wake.notify_one();
            }
        }
        st.scheduled = st.scheduled.saturating_sub(dropped);
        if let Some(b) = st.buckets.get_mut(&bucket) {
            b.on_disk = 0;
        }
    }

    /// Routes a batch of due messages, in due order; rings every outbox once at the end.
    fn route(&self, batch: &mut Vec<Entry>, out: &mut Vec<Arc<Queue>>) {
        let mut fx = Effects::default();
        for e in batch.drain(..) {
            let Some(vhost) = e.vhost.upgrade() else {
                continue;
            };
            // Deleted (or deleted and declared again) since: dropped.
            if !vhost
                .exchange(e.exchange.name.as_bytes())
                .is_some_and(|x| Arc::ptr_eq(&x, &e.exchange))
            {
                continue;
            }
            let m = &e.message;
            let headers = m.properties.headers();
            let mut cc: Vec<Bytes> = Vec::new();
            if let Some(FieldValue::Array(items)) = headers.as_ref().and_then(|h| h.get("CC")) {
                cc.extend(items.iter().filter_map(|v| match v {
                    FieldValue::LongStr(s) => Some(s.0.clone()),
                    _ => None,
                }));
            }
            let mut keys: Vec<&[u8]> = vec![m.routing_key.as_bytes()];
            keys.extend(cc.iter().map(|k| &k[..]));
            keys.extend(m.bcc.iter().map(|k| k.as_bytes()));
            out.clear();
            let info = RouteInfo::new(headers.as_ref(), Props::Encoded(&m.properties));
            vhost.route(&e.exchange, &keys, info, out);
            if out.is_empty() {
                if let Some(link) = e.mandatory.as_ref().and_then(|l| l.upgrade())
                    && !link.deliveries.lock().unwrap().closed
                {
                    link.stats.incr(Stat::ReturnUnroutable);
                    let r = Method::BasicReturn(BasicReturn {
                        reply_code: reply_code::NO_ROUTE,
                        reply_text: ShortStr::from_static("NO_ROUTE"),
                        exchange: m.exchange.clone(),
                        routing_key: m.routing_key.clone(),
                    });
                    if link
                        .outbox
                        .push_content(link.id, &r, &m.properties, &m.body)
                    {
                        fx.bells.add(&link.outbox);
                    }
                }
                continue;
            }
            e.exchange.stats.incr(Stat::PublishOut);
            for q in out.iter() {
                q.publish(e.message.clone(), &mut fx);
            }
            if !fx.dead.is_empty() {
                dead_letter_all(&vhost, &mut fx);
            }
            // `e` drops here: its record is marked routed after the queues' appends.
        }
        fx.bells.ring();
    }

    /// Deletes the logs of buckets whose time has passed and that hold nothing more.
    fn finish_buckets(&self, now: u64) {
        let mut st = self.state.lock().unwrap();
        let done: Vec<u64> = st
            .buckets
            .iter()
            .take_while(|(b, _)| (*b + 1) * BUCKET_MS <= now)
            .filter(|(_, b)| b.loaded && b.on_disk == 0 && Arc::strong_count(&b.log) == 1)
            .map(|(k, _)| *k)
            .collect();
        for k in done {
            if let Some(b) = st.buckets.remove(&k) {
                b.log.delete();
            }
        }
    }
}
