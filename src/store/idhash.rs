//! A cheap hasher for the store writer's per-message lookups, whose keys are integers the
//! broker assigns itself (log ids and sequence numbers).
//!
//! The writer thread looks up a queue's files and checks its acknowledged set once or twice
//! per message; with the standard library's SipHash those hashes were about 2% of the
//! broker's CPU in the persistent and paging scenarios (docs/BENCHMARKS.md, "CPU per
//! message: profiles"). SipHash resists collision attacks on keys an attacker chooses; no
//! client chooses these keys, so a multiply-rotate hash (the one rustc uses, "Fx") is safe
//! here. Do not use it for keys taken from the wire (names, headers).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Fx hash: each word is mixed in with a rotate, an xor and a multiply by an odd constant,
/// which puts the key's entropy in the high bits hashbrown uses for its control bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl IdHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
pub type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys that differ only in one word hash apart, and consecutive seqs spread over the
    /// high bits (hashbrown's control bytes) rather than colliding there.
    #[test]
    fn sequential_keys_spread() {
        let mut set = IdSet::default();
        let mut tops = std::collections::HashSet::new();
        for seq in 0..10_000u64 {
            assert!(set.insert((7u64, seq)));
            let mut h = IdHasher::default();
            h.write_u64(seq);
            tops.insert(h.finish() >> 57);
        }
        assert_eq!(set.len(), 10_000);
        assert!(set.contains(&(7, 9_999)) && !set.contains(&(8, 9_999)));
        assert!(
            tops.len() > 100,
            "only {} distinct top-7-bit values",
            tops.len()
        );
    }
}
