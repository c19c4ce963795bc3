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
//! `x-cache-persistence` is accepted and validated as the plugin does, but the cache is
//! kept in memory only: after a restart every value is new again.
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
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

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
        match args.get("x-cache-persistence") {
            None => {}
            Some(FieldValue::LongStr(s)) if &s.0[..] == b"disk" || &s.0[..] == b"memory" => {}
            Some(_) => {
                return Err(precondition(
                    "Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'",
                ));
            }
        }
        Ok(Settings { size, ttl_ms })
    }
}

/// Milliseconds on a process-wide monotonic clock.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
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
    /// identity → (expiry in ms, u64::MAX for none; insertion number).
    map: HashMap<u128, (u64, u64)>,
    /// Insertion order, with the insertion number: an entry whose number no longer
    /// matches the map's was replaced or removed, and is skipped.
    order: VecDeque<(u128, u64)>,
    next: u64,
}

/// One exchange's cache of recently seen header values.
#[derive(Debug)]
pub struct Cache {
    settings: Settings,
    entries: Mutex<Entries>,
}

impl Cache {
    pub fn new(settings: Settings) -> Cache {
        Cache {
            settings,
            entries: Mutex::default(),
        }
    }

    /// Whether a message with these headers is to be routed: true without the header,
    /// or when its value is not in the cache (it is then added).
    pub fn admit(&self, headers: Option<&FieldTable>) -> bool {
        let Some(value) = headers.and_then(|h| h.get(HEADER)) else {
            return true;
        };
        let key = identity(value);
        let ttl = headers
            .and_then(|h| h.get("x-cache-ttl"))
            .and_then(positive)
            .or(self.settings.ttl_ms);
        let now = now_ms();
        let expiry = ttl.map_or(u64::MAX, |t| now.saturating_add(t));
        let mut e = self.entries.lock().unwrap();
        if let Some(&(until, _)) = e.map.get(&key)
            && until > now
        {
            return false;
        }
        // Room for one more: drop the oldest live entries (and skip stale order slots).
        while e.map.len() as u64 >= self.settings.size
            && let Some((old, n)) = e.order.pop_front()
        {
            if e.map.get(&old).is_some_and(|&(_, m)| m == n) {
                e.map.remove(&old);
            }
        }
        let n = e.next;
        e.next += 1;
        e.map.insert(key, (expiry, n));
        e.order.push_back((key, n));
        // Stale slots (values re-added after expiring) are bounded by the map's size.
        if e.order.len() > 2 * e.map.len() + 16 {
            let Entries { map, order, .. } = &mut *e;
            order.retain(|(k, n)| map.get(k).is_some_and(|&(_, m)| m == *n));
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
                ttl_ms: Some(1000)
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
