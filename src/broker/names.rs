//! Server-generated names (`amq.gen-…` queues and `amq.ctag-…` consumer tags, 22 URL-safe
//! base64 characters of randomness as RabbitMQ makes them) and name normalisation.

use crate::protocol::ShortStr;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// 128 random bits: SipHash with per-process random keys over a counter.
fn random_u128() -> u128 {
    static STATE: OnceLock<RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = STATE.get_or_init(RandomState::new);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h1 = state.build_hasher();
    h1.write_u64(n);
    h1.write_u8(1);
    let mut h2 = state.build_hasher();
    h2.write_u64(n);
    h2.write_u8(2);
    (u128::from(h1.finish()) << 64) | u128::from(h2.finish())
}

fn random_suffix() -> String {
    let mut r = random_u128();
    (0..22)
        .map(|_| {
            let c = ALPHABET[(r & 63) as usize] as char;
            r >>= 6;
            c
        })
        .collect()
}

pub fn queue_name() -> String {
    format!("amq.gen-{}", random_suffix())
}

pub fn consumer_tag() -> String {
    format!("amq.ctag-{}", random_suffix())
}

/// The `internal_cluster_id` global parameter RabbitMQ seeds on its first start.
pub fn cluster_id() -> String {
    format!("rabbitmq-cluster-id-{}", random_suffix())
}

/// The private part of a direct reply-to address.
pub fn reply_token() -> String {
    format!("g2d{}", random_suffix())
}

/// A queue or exchange name without CR and LF, which RabbitMQ strips from the names in
/// declare, delete, bind and unbind (but not in publish, get, consume or purge).
pub fn strip_cr_lf(name: &ShortStr) -> ShortStr {
    if !name.as_bytes().iter().any(|b| *b == b'\r' || *b == b'\n') {
        return name.clone();
    }
    let kept: Vec<u8> = name
        .as_bytes()
        .iter()
        .copied()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    ShortStr(kept.into())
}
