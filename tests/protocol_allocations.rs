//! The codec allocates nothing per frame: decoding a stream of small publishes (method,
//! header, body) into whole messages costs no heap allocation beyond the shared read
//! buffer. Counted with a global allocator wrapper, in its own test binary.

use bytes::BytesMut;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio_util::codec::Decoder;
use warren::protocol::content::Assembled;
use warren::protocol::*;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Only the test's own thread is counted: the harness allocates on other threads.
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decoding_small_messages_does_not_allocate_per_frame() {
    const N: usize = 1000;
    let method: Method = BasicPublish {
        exchange: "amq.direct".into(),
        routing_key: "rk".into(),
        ..Default::default()
    }
    .into();
    let props = BasicProperties {
        content_type: Some("text/plain".into()),
        delivery_mode: Some(2),
        ..Default::default()
    };
    let mut buf = BytesMut::new();
    for _ in 0..N {
        encode_content(
            &mut buf,
            1,
            &method,
            &EncodedProperties::from(&props),
            b"0123456789abcdef",
            131072,
        );
    }
    let mut codec = FrameCodec::new(131072);
    let mut asm = ContentAssembler::default();
    let mut messages = Vec::with_capacity(N);
    COUNTING.with(|c| c.set(true));
    let before = ALLOCS.load(Ordering::Relaxed);
    while let Some(frame) = codec.decode(&mut buf).unwrap() {
        if let Some(Assembled::Content(c)) = asm.push(frame).unwrap() {
            messages.push(c);
        }
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    COUNTING.with(|c| c.set(false));
    assert_eq!(messages.len(), N);
    assert_eq!(&messages[N - 1].body[..], b"0123456789abcdef");
    // The first split of the read buffer turns it into a shared one: one allocation in all.
    assert!(allocs <= 2, "{allocs} allocations for {N} messages");
}
