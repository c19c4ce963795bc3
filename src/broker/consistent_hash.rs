//! The `x-consistent-hash` exchange type, as RabbitMQ's rabbitmq_consistent_hash_exchange
//! plugin defines it: each binding's key is its destination's weight; a message goes to
//! exactly one destination, picked by hashing its routing key (or the header named by the
//! exchange's `hash-header` argument, or the property named by `hash-property`) onto the
//! destinations in proportion to their weights.
//!
//! Like the plugin, the ring has one bucket per unit of weight, numbered in binding order,
//! and a message's bucket is picked by jump consistent hashing (Lamping and Veach) of its
//! key's hash: the same key reaches the same destination while the bindings stay the same,
//! and a binding added with weight w moves only the share w / (total + w) of keys, all to
//! the new destination. Removing a binding shifts the buckets after it down, as the plugin
//! does. The key's hash is Warren's own (FNV-1a, then a 64-bit finaliser): stable across
//! restarts and versions, not the plugin's `erlang:phash2`, so the same key may land on a
//! different queue than under RabbitMQ; the distribution and stability are the same.
//!
//! Routing reads the ring under the exchange's bindings read lock: a binary search over
//! the destinations, no allocation.

use super::exchange::Destination;
use crate::protocol::frame::erlang_binary;
use crate::protocol::{AmqpError, BasicProperties, FieldTable, FieldValue, ShortStr, reply_code};

/// The largest binding weight (RabbitMQ 3.13's limit; 3.10 had none, so one binding could
/// make the plugin allocate buckets without bound).
pub const MAX_WEIGHT: u32 = 10_000;

/// What a message is hashed on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HashOn {
    #[default]
    RoutingKey,
    Header(ShortStr),
    Property(Property),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Property {
    MessageId,
    CorrelationId,
    Timestamp,
}

fn precondition(text: String) -> AmqpError {
    AmqpError::channel(reply_code::PRECONDITION_FAILED, text)
}

impl HashOn {
    /// Reads and checks the exchange's `hash-header` / `hash-property` arguments, with the
    /// plugin's 406 texts. (A non-string value crashes the plugin's channel with 541; a 406
    /// here.)
    pub fn from_args(args: &FieldTable) -> Result<HashOn, AmqpError> {
        let string = |key: &str| -> Result<Option<ShortStr>, AmqpError> {
            match args.get(key) {
                None => Ok(None),
                Some(FieldValue::LongStr(s)) => Ok(Some(ShortStr(s.0.clone()))),
                Some(_) => Err(precondition(format!("{key} must be a string"))),
            }
        };
        match (string("hash-header")?, string("hash-property")?) {
            (None, None) => Ok(HashOn::RoutingKey),
            (Some(h), None) => Ok(HashOn::Header(h)),
            (None, Some(p)) => Ok(HashOn::Property(match p.as_bytes() {
                b"message_id" => Property::MessageId,
                b"correlation_id" => Property::CorrelationId,
                b"timestamp" => Property::Timestamp,
                _ => return Err(precondition(format!("Unsupported property: {p}"))),
            })),
            (Some(_), Some(_)) => Err(precondition(
                "hash-header and hash-property are mutually exclusive".into(),
            )),
        }
    }

    /// Whether hashing needs the message's properties decoded.
    pub fn needs_properties(&self) -> bool {
        matches!(self, HashOn::Property(_))
    }
}

/// A binding key as a weight, with the plugin's 406 texts.
pub fn weight(key: &ShortStr) -> Result<u32, AmqpError> {
    let text = std::str::from_utf8(key.as_bytes()).ok();
    let n: Option<i64> = text.and_then(|t| {
        let digits = t.strip_prefix('-').unwrap_or(t);
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| {
            t.parse::<i64>().unwrap_or(if t.starts_with('-') {
                i64::MIN
            } else {
                i64::MAX
            })
        })
    });
    match n {
        None => Err(precondition(format!(
            "The binding key must be an integer: {}",
            erlang_binary(key.as_bytes())
        ))),
        Some(n) if n < 1 => Err(precondition(
            "The binding key must be greater than 0".into(),
        )),
        Some(n) if n > i64::from(MAX_WEIGHT) => Err(precondition(format!(
            "The binding key must not exceed {MAX_WEIGHT}"
        ))),
        Some(n) => Ok(n as u32),
    }
}

/// The destinations in binding order, each with the end of its bucket range.
#[derive(Debug, Default)]
pub struct Ring {
    /// (destination, cumulative weight up to and including it).
    members: Vec<(Destination, u64)>,
}

impl Ring {
    /// Adds a destination with `weight` buckets at the end of the ring. A destination
    /// already on the ring keeps its buckets (the plugin ignores a second binding to it).
    pub fn add(&mut self, dest: &Destination, weight: u32) {
        if self.members.iter().any(|(d, _)| d == dest) {
            return;
        }
        let end = self.total() + u64::from(weight);
        self.members.push((dest.clone(), end));
    }

    /// Takes a destination's buckets off the ring; those after it shift down.
    pub fn remove(&mut self, dest: &Destination) {
        let Some(i) = self.members.iter().position(|(d, _)| d == dest) else {
            return;
        };
        let start = if i == 0 { 0 } else { self.members[i - 1].1 };
        let width = self.members[i].1 - start;
        self.members.remove(i);
        for m in &mut self.members[i..] {
            m.1 -= width;
        }
    }

    fn total(&self) -> u64 {
        self.members.last().map_or(0, |m| m.1)
    }

    /// The destination of a message whose hash key is `key`.
    pub fn pick(&self, key: u64) -> Option<&Destination> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let bucket = jump_hash(key, total);
        let i = self.members.partition_point(|(_, end)| *end <= bucket);
        self.members.get(i).map(|(d, _)| d)
    }
}

/// Jump consistent hash: the bucket in `0..buckets` for `key`.
pub fn jump_hash(mut key: u64, buckets: u64) -> u64 {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while (j as u64) < buckets {
        b = j;
        key = key.wrapping_mul(2862933555777941757).wrapping_add(1);
        j = (((b + 1) as f64) * ((1u64 << 31) as f64 / (((key >> 33) + 1) as f64))) as i64;
    }
    b as u64
}

/// A 64-bit hash of bytes: FNV-1a, then the splitmix64 finaliser so that short keys that
/// differ in one byte spread over all 64 bits.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = Fnv::default();
    h.write(bytes);
    h.finish()
}

/// FNV-1a with a 64-bit finaliser: a small, stable, allocation-free hasher.
#[derive(Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Another offset basis: an independent hash of the same bytes.
    pub(crate) fn seeded(seed: u64) -> Self {
        Fnv(0xcbf2_9ce4_8422_2325 ^ seed)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub(crate) fn finish(self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl std::fmt::Write for Fnv {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.write(s.as_bytes());
        Ok(())
    }
}

/// The hash key of a message with nothing to hash on (a missing header or property): a
/// constant, so such messages all go to one destination, as with the plugin.
const UNDEFINED: &[u8] = b"undefined";

/// The hash key of a message, by what the exchange hashes on. `properties` is needed
/// (decoded) only for [`HashOn::Property`].
pub fn message_key(
    on: &HashOn,
    routing_key: &[u8],
    headers: Option<&FieldTable>,
    properties: Option<&BasicProperties>,
) -> u64 {
    match on {
        HashOn::RoutingKey => hash_bytes(routing_key),
        HashOn::Header(name) => {
            match headers.and_then(|h| h.get(std::str::from_utf8(name.as_bytes()).ok()?)) {
                Some(FieldValue::LongStr(s)) => hash_bytes(&s.0),
                Some(v) => {
                    // Any other type, hashed by its rendering (no allocation).
                    let mut h = Fnv::default();
                    let _ = std::fmt::Write::write_fmt(&mut h, format_args!("{v:?}"));
                    h.finish()
                }
                None => hash_bytes(UNDEFINED),
            }
        }
        HashOn::Property(p) => {
            let props = properties;
            let v = match p {
                Property::MessageId => props
                    .and_then(|p| p.message_id.as_ref())
                    .map(|s| s.as_bytes()),
                Property::CorrelationId => props
                    .and_then(|p| p.correlation_id.as_ref())
                    .map(|s| s.as_bytes()),
                Property::Timestamp => {
                    return match props.and_then(|p| p.timestamp) {
                        Some(t) => {
                            let mut h = Fnv::default();
                            let _ = std::fmt::Write::write_fmt(&mut h, format_args!("{t}"));
                            h.finish()
                        }
                        None => hash_bytes(UNDEFINED),
                    };
                }
            };
            hash_bytes(v.unwrap_or(UNDEFINED))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_hash_spreads_evenly_and_moves_only_to_new_buckets() {
        let mut counts = [0u32; 10];
        let mut moved = 0;
        for i in 0..100_000u64 {
            let k = hash_bytes(format!("key-{i}").as_bytes());
            let b = jump_hash(k, 10);
            counts[b as usize] += 1;
            let after = jump_hash(k, 11);
            if after != b {
                assert_eq!(after, 10, "a key only ever moves to the new bucket");
                moved += 1;
            }
        }
        for c in counts {
            assert!((9_500..=10_500).contains(&c), "{counts:?}");
        }
        assert!(
            (8_600..=9_600).contains(&moved),
            "{moved} keys moved, expected ~9091"
        );
    }

    #[test]
    fn weights_are_checked_with_the_plugins_texts() {
        let cases: &[(&str, Result<u32, &str>)] = &[
            ("5", Ok(5)),
            ("10000", Ok(10_000)),
            (
                "abc",
                Err("The binding key must be an integer: <<\"abc\">>"),
            ),
            ("", Err("The binding key must be an integer: <<>>")),
            (" 7", Err("The binding key must be an integer: <<\" 7\">>")),
            ("0", Err("The binding key must be greater than 0")),
            ("-1", Err("The binding key must be greater than 0")),
            ("10001", Err("The binding key must not exceed 10000")),
            (
                "99999999999999999999999",
                Err("The binding key must not exceed 10000"),
            ),
        ];
        for (key, want) in cases {
            let got = weight(&ShortStr::from(*key)).map_err(|e| e.text.to_string());
            assert_eq!(got, want.map_err(str::to_string), "key {key:?}");
        }
    }
}
