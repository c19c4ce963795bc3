//! A connection's outgoing bytes: an [`Output`] that any task may append frames to, and a
//! doorbell that wakes the connection's writer task, which swaps it out wholesale and
//! writes it with one (vectored) syscall. Frames are appended whole under the lock, so a
//! message's method, header and body frames are never interleaved with another's. Large
//! bodies are shared with the queue's message, not copied (see [`Output`]).

use super::queue::Queue;
use crate::protocol::{EncodedProperties, Method, Output};
use bytes::{Bytes, BytesMut};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Bytes buffered for a connection beyond which queues stop delivering to it until its
/// writer catches up: a consumer that reads slowly (no-ack consumers have no prefetch
/// bound) leaves messages in the queue instead of growing this buffer without bound.
pub const OUTBOX_LIMIT: usize = 8 << 20;
use tokio::sync::Notify;

#[derive(Debug)]
pub struct Outbox {
    buf: Mutex<Output>,
    bell: Notify,
    closed: AtomicBool,
    frame_max: AtomicU32,
    /// Bytes buffered and not yet taken by the writer.
    pending: AtomicUsize,
    /// Queues that held back deliveries because this outbox was full.
    stalled: Mutex<Vec<Weak<Queue>>>,
}

impl Outbox {
    pub fn new(frame_max: u32) -> Self {
        Self {
            buf: Mutex::new(Output::with_capacity(4096)),
            bell: Notify::new(),
            closed: AtomicBool::new(false),
            frame_max: AtomicU32::new(frame_max),
            pending: AtomicUsize::new(0),
            stalled: Mutex::new(Vec::new()),
        }
    }

    /// Appends frames with `f`. Does not wake the writer: call [`Outbox::ring`] once per
    /// batch. Returns false (and appends nothing) once the connection is closed.
    pub fn push(&self, f: impl FnOnce(&mut BytesMut, u32)) -> bool {
        self.with_output(|out, frame_max| f(out.buf(), frame_max))
    }

    /// Appends a content method with its header and body (shared, not copied, when large).
    /// Like [`Outbox::push`], does not wake the writer.
    pub fn push_content(
        &self,
        channel: u16,
        method: &Method,
        properties: &EncodedProperties,
        body: &Bytes,
    ) -> bool {
        self.with_output(|out, frame_max| {
            out.push_content(channel, method, properties, body, frame_max)
        })
    }

    fn with_output(&self, f: impl FnOnce(&mut Output, u32)) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        let mut out = self.buf.lock().unwrap();
        f(&mut out, self.frame_max.load(Ordering::Relaxed));
        self.pending.store(out.len(), Ordering::SeqCst);
        true
    }

    /// Whether the writer is more than [`OUTBOX_LIMIT`] behind.
    pub fn is_full(&self) -> bool {
        self.pending.load(Ordering::SeqCst) >= OUTBOX_LIMIT
    }

    /// Records that `queue` held deliveries back; the writer asks it to deliver again once
    /// it has written. Returns whether the outbox is still full (if not, deliver now: the
    /// writer may have drained it before the queue was recorded).
    pub fn wait_for_room(&self, queue: &Arc<Queue>) -> bool {
        {
            let mut s = self.stalled.lock().unwrap();
            if !s.iter().any(|w| w.as_ptr() == Arc::as_ptr(queue)) {
                s.push(Arc::downgrade(queue));
            }
        }
        self.is_full()
    }

    /// The queues waiting for room, emptied.
    pub fn take_stalled(&self) -> Vec<Weak<Queue>> {
        std::mem::take(&mut *self.stalled.lock().unwrap())
    }

    /// Wakes the writer task, if there is anything to write: a connection rings after
    /// every batch it reads, and a publisher's batch usually leaves nothing for its own
    /// writer (waking it for nothing costs a task switch, often a thread wake-up, per
    /// batch). `pending` is updated under the buffer's lock with every append and take,
    /// so a zero here means the writer has already taken everything appended.
    pub fn ring(&self) {
        if self.pending.load(Ordering::SeqCst) > 0 {
            self.bell.notify_one();
        }
    }

    /// Appends and rings.
    pub fn send(&self, f: impl FnOnce(&mut BytesMut, u32)) {
        if self.push(f) {
            self.ring();
        }
    }

    /// Takes everything buffered, leaving an empty buffer (keeping its capacity when the
    /// taken part is the whole allocation).
    pub fn take(&self, spare: &mut Output) {
        let mut buf = self.buf.lock().unwrap();
        std::mem::swap(&mut *buf, spare);
        self.pending.store(0, Ordering::SeqCst);
    }

    pub async fn rung(&self) {
        self.bell.notified().await
    }

    pub fn is_empty(&self) -> bool {
        self.buf.lock().unwrap().is_empty()
    }

    pub fn set_frame_max(&self, frame_max: u32) {
        self.frame_max.store(frame_max, Ordering::Relaxed);
    }

    pub fn frame_max(&self) -> u32 {
        self.frame_max.load(Ordering::Relaxed)
    }

    /// Stops accepting frames (the connection is going away); wakes the writer.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.bell.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// Outboxes written to during one batch of work, rung once at its end so that a writer
/// wakes once per batch rather than once per frame.
#[derive(Debug, Default)]
pub struct Bells(Vec<Arc<Outbox>>);

impl Bells {
    pub fn add(&mut self, outbox: &Arc<Outbox>) {
        if !self.0.iter().any(|o| Arc::ptr_eq(o, outbox)) {
            self.0.push(outbox.clone());
        }
    }

    pub fn ring(&mut self) {
        for o in self.0.drain(..) {
            o.ring();
        }
    }
}

impl Drop for Bells {
    fn drop(&mut self) {
        self.ring();
    }
}
