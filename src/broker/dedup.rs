//! Message deduplication at the exchange, as the rabbitmq-message-deduplication plugin's
//! `x-message-deduplication` exchange type: a message whose `x-deduplication-header`
//! value was seen within the cache's TTL is not routed (the publisher still gets its
//! confirm, as for any unroutable message); every other message goes to every bound
//! queue, as with fanout.
//!
//! The cache is bounded: `x-cache-size` entries of fixed size (a 128-bit hash of the
//! header value, its expiry and an insertion number), whatever the header values; when
//! full, the oldest entry makes room, as the plugin drops "unspecified existing entries".
//! An entry expires after `x-cache-ttl` ms (the exchange argument, or the message's own
//! `x-cache-ttl` header), checked when the same value comes again.
//!
//! `x-cache-persistence: disk` on a durable exchange keeps the cache through Warren's store
//! (`store::dedup`: the entries appended in insertion order, the file rewritten from the
//! live entries whenever it grows `x-cache-size` + 1024 past its last rewrite, so it is
//! bounded as the cache is): after a restart, `kill -9` included, the values seen are still
//! duplicates until their TTL (kept as unix time) runs out. The plugin keeps such a cache
//! in a Mnesia `disc_copies` table. `memory` (the default), and a transient exchange,
//! start empty after a restart.
//!
//! Policies set `x-cache-size` and `x-cache-ttl` over the exchange's arguments, as the
//! plugin's `policy_changed` does (the arguments again once the policy goes);
//! `x-cache-persistence` in a policy is validated and, as in the plugin (its cache cannot
//! change storage type), has no effect.
//!
//! The plugin's queue-level deduplication (`x-message-deduplication: true` on a queue) is
//! [`QueueSet`]: a message is not enqueued while another with the same header value is in
//! the queue (ready, paged out or delivered and unacknowledged). Each enqueued message
//! holds a [`Token`] whose drop takes its value out of the set: the value leaves with the
//! message whichever way it goes (acknowledged, delivered without acknowledgement,
//! dropped, expired, purged, dead-lettered), and a requeue keeps it, since the message
//! itself stays. Lock order: the set's mutex is a leaf, taken under the queue's lock or
//! with no lock.

use super::consistent_hash::Fnv;
use crate::protocol::{AmqpError, FieldTable, FieldValue, reply_code};
use crate::store::DedupLog;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// The header whose value identifies a message.
pub const HEADER: &str = "x-deduplication-header";

fn precondition(text: &str) -> AmqpError {
    AmqpError::channel(reply_code::PRECONDITION_FAILED, text.to_string())
}

/// A positive integer argument, as the plugin reads it: any integer type, or a string of
/// digits.
fn positive(v: &FieldValue) -> Option<u64> {
    let n = match v {
        FieldValue::LongStr(s) => std::str::from_utf8(&s.0).ok()?.trim().parse::<i64>().ok()?,
        v => v.as_i64()?,
    };
    (n > 0).then_some(n as u64)
}

/// The exchange's settings, from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub size: u64,
    pub ttl_ms: Option<u64>,
    /// `x-cache-persistence: disk`.
    pub disk: bool,
}

impl Settings {
    /// Reads and checks `x-cache-size` (required), `x-cache-ttl` and
    /// `x-cache-persistence` with the plugin's 406 texts (its source's line-continuation
    /// whitespace collapsed).
    pub fn from_args(args: &FieldTable) -> Result<Settings, AmqpError> {
        let size = args.get("x-cache-size").and_then(positive).ok_or_else(|| {
            precondition(
                "Missing or invalid argument, 'x-cache-size' must be an integer greater than 0",
            )
        })?;
        let ttl_ms = match args.get("x-cache-ttl") {
            None => None,
            Some(v) => Some(positive(v).ok_or_else(|| {
                precondition("Invalid argument, 'x-cache-ttl' must be an integer greater than 0")
            })?),
        };
        let disk = match args.get("x-cache-persistence") {
            None => false,
            Some(FieldValue::LongStr(s)) if &s.0[..] == b"disk" => true,
            Some(FieldValue::LongStr(s)) if &s.0[..] == b"memory" => false,
            Some(_) => {
                return Err(precondition(
                    "Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'",
                ));
            }
        };
        Ok(Settings { size, ttl_ms, disk })
    }
}

/// Unix time in milliseconds: expiries outlive a restart.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A 128-bit identity of a header value: two differently seeded 64-bit hashes of its
/// type and contents (no allocation; a false duplicate needs a 128-bit collision).
fn identity(v: &FieldValue) -> u128 {
    let mut a = Fnv::seeded(0x6a09_e667_f3bc_c908);
    let mut b = Fnv::seeded(0xbb67_ae85_84ca_a73b);
    for h in [&mut a, &mut b] {
        h.write(&[v.tag()]);
        match v {
            FieldValue::LongStr(s) => h.write(&s.0),
            FieldValue::ByteArray(s) => h.write(s),
            other => {
                let _ = std::fmt::Write::write_fmt(h, format_args!("{other:?}"));
            }
        }
    }
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// The identity of a message's deduplication header value, if it has one.
pub fn key_of(headers: Option<&FieldTable>) -> Option<u128> {
    headers.and_then(|h| h.get(HEADER)).map(identity)
}

/// The header values of the messages in a deduplicating queue.
#[derive(Debug, Default)]
pub struct QueueSet {
    keys: Mutex<HashSet<u128>>,
}

impl QueueSet {
    /// Adds a message's value: a token that holds it, or None when a message with that
    /// value is in the queue already (a duplicate).
    pub fn admit(self: &Arc<Self>, key: u128) -> Option<Box<Token>> {
        self.keys
            .lock()
            .unwrap()
            .insert(key)
            .then(|| self.token(key))
    }

    /// A token for a message read back from the queue's log (at start-up or from its
    /// paged-out tail): its value is in the set from now on, whatever was there.
    pub fn readmit(self: &Arc<Self>, key: u128) -> Box<Token> {
        self.keys.lock().unwrap().insert(key);
        self.token(key)
    }

    fn token(self: &Arc<Self>, key: u128) -> Box<Token> {
        Box::new(Token {
            set: self.clone(),
            key,
            armed: true,
        })
    }

    pub fn len(&self) -> usize {
        self.keys.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A message's hold on its value in a [`QueueSet`]: dropping it takes the value out.
#[derive(Debug)]
pub struct Token {
    set: Arc<QueueSet>,
    key: u128,
    armed: bool,
}

impl Token {
    /// Lets go of the token but keeps the value in the set: the message stays in the
    /// queue without it (paged out to the log; read back with [`QueueSet::readmit`]).
    pub fn keep(&mut self) {
        self.armed = false;
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        if self.armed {
            self.set.keys.lock().unwrap().remove(&self.key);
        }
    }
}

#[derive(Debug, Default)]
struct Entries {
    /// identity → (expiry in unix ms, u64::MAX for none; insertion number).
    map: HashMap<u128, (u64, u64)>,
    /// Insertion order, with the insertion number: an entry whose number no longer
    /// matches the map's was replaced or removed, and is skipped.
    order: VecDeque<(u128, u64)>,
    next: u64,
    /// Size and TTL in force: the arguments, or a policy's.
    size: u64,
    ttl_ms: Option<u64>,
    /// The disk cache (`x-cache-persistence: disk`, durable exchange).
    log: Option<DedupLog>,
    /// Entries appended to the disk cache since its last rewrite.
    appended: u64,
}

impl Entries {
    /// Adds a value (replacing an expired one), making room by dropping the oldest.
    fn insert(&mut self, key: u128, expiry: u64) {
        // Room for one more: drop the oldest live entries (and skip stale order slots).
        while self.map.len() as u64 >= self.size
            && let Some((old, n)) = self.order.pop_front()
        {
            if self.map.get(&old).is_some_and(|&(_, m)| m == n) {
                self.map.remove(&old);
            }
        }
        let n = self.next;
        self.next += 1;
        self.map.insert(key, (expiry, n));
        self.order.push_back((key, n));
        // Stale slots (values re-added after expiring) are bounded by the map's size.
        if self.order.len() > 2 * self.map.len() + 16 {
            let Entries { map, order, .. } = self;
            order.retain(|(k, n)| map.get(k).is_some_and(|&(_, m)| m == *n));
        }
    }

    /// The live entries in insertion order, as the disk cache stores them (0: no expiry).
    fn snapshot(&self) -> Vec<(u128, u64)> {
        self.order
            .iter()
            .filter_map(|&(k, n)| {
                let &(expiry, m) = self.map.get(&k)?;
                (m == n).then_some((k, if expiry == u64::MAX { 0 } else { expiry }))
            })
            .collect()
    }
}

/// Entries the disk cache may hold beyond the live ones before it is rewritten.
const REWRITE_SLACK: u64 = 1024;

/// One exchange's cache of recently seen header values.
#[derive(Debug)]
pub struct Cache {
    /// From the exchange's arguments.
    settings: Settings,
    entries: Mutex<Entries>,
}

impl Cache {
    pub fn new(settings: Settings) -> Cache {
        Cache {
            settings,
            entries: Mutex::new(Entries {
                size: settings.size,
                ttl_ms: settings.ttl_ms,
                ..Default::default()
            }),
        }
    }

    /// Whether the cache is to be kept on disk (`x-cache-persistence: disk`).
    pub fn wants_disk(&self) -> bool {
        self.settings.disk
    }

    /// Keeps the cache on disk through `open`, which is handed the entries to start the
    /// file with: `recovered` (what the store found at start-up, in insertion order)
    /// replayed through the insertion rule, expired ones left out.
    pub fn persist(
        &self,
        recovered: Vec<(u128, u64)>,
        open: impl FnOnce(Vec<(u128, u64)>) -> DedupLog,
    ) {
        let now = now_ms();
        let mut e = self.entries.lock().unwrap();
        for (key, expiry) in recovered {
            if expiry == 0 || expiry > now {
                e.insert(key, if expiry == 0 { u64::MAX } else { expiry });
            }
        }
        let log = open(e.snapshot());
        e.log = Some(log);
        e.appended = 0;
    }

    /// The exchange is deleted: its disk cache goes.
    pub fn delete(&self) {
        if let Some(log) = self.entries.lock().unwrap().log.take() {
            log.delete();
        }
    }

    /// Applies a policy's `x-cache-size` and `x-cache-ttl` over the arguments (the
    /// arguments alone without one), as the plugin's `policy_changed` does. A smaller size
    /// drops the oldest values at the next insertion.
    pub fn apply_policy(&self, applied: &super::policy::Applied) {
        let positive = |key: &str| applied.get(key).and_then(|v| v.as_u64()).filter(|n| *n > 0);
        let mut e = self.entries.lock().unwrap();
        e.size = positive("x-cache-size").unwrap_or(self.settings.size);
        e.ttl_ms = positive("x-cache-ttl").or(self.settings.ttl_ms);
    }

    /// Whether a message with these headers is to be routed: true without the header,
    /// or when its value is not in the cache (it is then added).
    pub fn admit(&self, headers: Option<&FieldTable>) -> bool {
        let Some(value) = headers.and_then(|h| h.get(HEADER)) else {
            return true;
        };
        let key = identity(value);
        let header_ttl = headers
            .and_then(|h| h.get("x-cache-ttl"))
            .and_then(positive);
        let now = now_ms();
        let mut e = self.entries.lock().unwrap();
        if let Some(&(until, _)) = e.map.get(&key)
            && until > now
        {
            return false;
        }
        let expiry = header_ttl
            .or(e.ttl_ms)
            .map_or(u64::MAX, |t| now.saturating_add(t));
        e.insert(key, expiry);
        if e.log.is_some() {
            e.appended += 1;
            // Pushed under the cache's lock, so the store sees appends and rewrites in
            // the order they happened.
            if e.appended > e.size.saturating_add(REWRITE_SLACK) {
                let snapshot = e.snapshot();
                e.appended = 0;
                if let Some(log) = &e.log {
                    log.rewrite(snapshot);
                }
            } else if let Some(log) = &e.log {
                log.append(key, if expiry == u64::MAX { 0 } else { expiry });
            }
        }
        true
    }

    /// How many values the cache holds (expired ones included until replaced).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::LongStr;

    fn headers(id: &str) -> FieldTable {
        let mut t = FieldTable::new();
        t.insert(HEADER, FieldValue::LongStr(LongStr::from(id)));
        t
    }

    #[test]
    fn a_full_cache_drops_its_oldest_value_and_stays_bounded() {
        let c = Cache::new(Settings {
            size: 2,
            ttl_ms: None,
            disk: false,
        });
        assert!(c.admit(Some(&headers("a"))));
        assert!(c.admit(Some(&headers("b"))));
        assert!(!c.admit(Some(&headers("a"))));
        assert!(c.admit(Some(&headers("c")))); // "a" makes room
        assert!(c.admit(Some(&headers("a"))));
        assert!(!c.admit(Some(&headers("c"))));
        for i in 0..10_000 {
            c.admit(Some(&headers(&format!("v{i}"))));
        }
        assert_eq!(c.len(), 2);
        assert!(c.entries.lock().unwrap().order.len() <= 2 * 2 + 16);
        assert!(c.admit(None), "no header: always routed");
    }

    #[test]
    fn arguments_are_checked_as_the_plugin_does() {
        let table = |pairs: &[(&str, FieldValue)]| {
            let mut t = FieldTable::new();
            for (k, v) in pairs {
                t.insert(*k, v.clone());
            }
            t
        };
        let ok = Settings::from_args(&table(&[
            ("x-cache-size", FieldValue::LongStr("10".into())),
            ("x-cache-ttl", FieldValue::I32(1000)),
            ("x-cache-persistence", FieldValue::LongStr("disk".into())),
        ]));
        assert_eq!(
            ok.unwrap(),
            Settings {
                size: 10,
                ttl_ms: Some(1000),
                disk: true,
            }
        );
        for (args, text) in [
            (
                table(&[]),
                "'x-cache-size' must be an integer greater than 0",
            ),
            (
                table(&[("x-cache-size", FieldValue::LongStr("foo".into()))]),
                "'x-cache-size' must be an integer greater than 0",
            ),
            (
                table(&[
                    ("x-cache-size", FieldValue::I64(5)),
                    ("x-cache-ttl", FieldValue::I64(0)),
                ]),
                "'x-cache-ttl' must be an integer greater than 0",
            ),
            (
                table(&[
                    ("x-cache-size", FieldValue::I64(5)),
                    ("x-cache-persistence", FieldValue::LongStr("tape".into())),
                ]),
                "'x-cache-persistence' must be either 'disk' or 'memory'",
            ),
        ] {
            let e = Settings::from_args(&args).unwrap_err();
            assert_eq!(e.code, 406);
            assert!(e.text.contains(text), "{}", e.text);
        }
    }
}
