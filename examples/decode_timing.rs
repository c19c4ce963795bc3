//! Decode timing without criterion, for quick looks and for callgrind.
//!
//! Decodes N small messages (method + header + 16-octet body) from wire bytes into
//! `Content`s, as `benches/codec.rs` does, and prints the time per message (best of R
//! rounds). `KIND=deliver` decodes basic.deliver instead of basic.publish; `WHOLE=0` turns
//! off the codec's whole-content fast path (frame by frame, as the broker decodes today).
//!
//! Stable instruction counts per message, only the decoding loop counted:
//!
//! ```text
//! N=20000 R=1 valgrind --tool=callgrind --toggle-collect='*decode_all*' \
//!     target/release/examples/decode_timing
//! ```
//! then divide the `I refs` by N.

use bytes::BytesMut;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_util::codec::Decoder;
use warren::protocol::content::Assembled;
use warren::protocol::*;

/// Counts heap allocations, to show that decoding makes none per frame.
struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The measured loop: bytes in, `Content`s out (and dropped), as in the criterion bench.
#[inline(never)]
fn decode_all(mut buf: BytesMut, whole: bool) -> usize {
    let mut codec = FrameCodec::new(131072);
    codec.set_whole_content(whole);
    let mut asm = ContentAssembler::default();
    let mut n = 0;
    // Matched as the broker's connection loop does (`Ok(Some(frame))`), not unwrapped.
    loop {
        let frame = match codec.decode(&mut buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => panic!("{e}"),
        };
        match asm.push(frame) {
            Ok(Some(Assembled::Content(c))) => {
                std::hint::black_box(&c);
                n += 1;
            }
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
    n
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let props = EncodedProperties::from(&BasicProperties {
        content_type: Some("application/octet-stream".into()),
        delivery_mode: Some(1),
        ..Default::default()
    });
    let deliver = std::env::var("KIND").is_ok_and(|k| k == "deliver");
    let m: Method = if deliver {
        BasicDeliver {
            consumer_tag: "amq.ctag-0123456789abcdef".into(),
            delivery_tag: 42,
            redelivered: false,
            exchange: "amq.direct".into(),
            routing_key: "bench".into(),
        }
        .into()
    } else {
        BasicPublish {
            exchange: "amq.direct".into(),
            routing_key: "bench".into(),
            ..Default::default()
        }
        .into()
    };
    let mut one = BytesMut::new();
    encode_content(&mut one, 1, &m, &props, b"0123456789abcdef", 131072);
    let n = env("N", 1_000_000);
    let rounds = env("R", 5);
    let whole = env("WHOLE", 1) != 0;
    let mut input = BytesMut::with_capacity(one.len() * n);
    for _ in 0..n {
        input.extend_from_slice(&one);
    }
    let mut best = Duration::MAX;
    let mut allocs = 0;
    for _ in 0..rounds {
        let buf = input.clone();
        let before = ALLOCS.load(Ordering::Relaxed);
        let t = Instant::now();
        let c = decode_all(buf, whole);
        best = best.min(t.elapsed());
        allocs = ALLOCS.load(Ordering::Relaxed) - before;
        assert_eq!(c, n);
    }
    let kind = if deliver { "deliver" } else { "publish" };
    let path = if whole {
        "whole content"
    } else {
        "frame by frame"
    };
    println!(
        "{kind} ({path}): {n} msgs, best {:?}/msg, {allocs} heap allocations in all",
        best / n as u32
    );
}
