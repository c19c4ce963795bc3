//! Flow control between a queue's publishers and its consumers: a publisher that fills a
//! queue past its paging threshold while a consumer is draining it waits for the consumer
//! instead of sending everything after that point through the disk.
//!
//! Why: paging is sticky. Once part of a queue is paged out, every later message must be
//! paged out too (it belongs behind the paged-out ones) until the consumer has read the
//! whole tail back. With a consumer about as fast as the publisher (the usual benchmark,
//! and a healthy system) the tail never drains: one hiccup of the consumer worth the
//! threshold (16 MiB, a thousand 16 KiB messages) turns every later message into a file
//! write, a read and two extra copies, and the consumer then waits on page-ins. RabbitMQ's
//! credit flow holds such a publisher back instead; so does this, within bounds:
//!
//! - only while the queue has consumers (a queue nobody reads takes messages at full
//!   speed and pages them, as before);
//! - at most [`FLOW_SLACK`] bytes past the threshold are kept in memory (publishers that
//!   never wait, such as a dead-lettering queue or the management API, cannot grow it
//!   further: past that, messages are paged out);
//! - a publisher waits at most [`FLOW_WAIT`] for the consumers to take [`RESUME_BYTES`] or
//!   [`RESUME_MESSAGES`] off the queue. A consumer slower than that (or stuck, or a client
//!   that does not read its deliveries while it publishes) ends the hold: the queue pages
//!   as before until its paged-out tail is read back, and no publisher waits on it
//!   meanwhile.

use std::time::Duration;

/// How far past its paging threshold a queue keeps held-back publishers' messages in
/// memory: a read batch per publisher, with room to spare.
pub const FLOW_SLACK: u64 = 4 << 20;

/// The longest a publisher waits for a queue's consumers to make room.
pub const FLOW_WAIT: Duration = Duration::from_millis(250);

/// Room is made once consumers have taken this many bytes off the queue...
pub const RESUME_BYTES: u64 = 1 << 20;

/// ... or this many messages.
pub const RESUME_MESSAGES: usize = 256;

/// A queue's hold on its publishers (in the queue's state, under its lock).
#[derive(Debug, Default)]
pub struct Flow {
    /// Publishers are held back until ready messages fall to these marks.
    pub holding: Option<Resume>,
    /// The last hold ran out of time: no hold until the queue is back under its threshold
    /// with nothing paged out.
    pub gave_up: bool,
}

/// Where a hold ends: ready bytes or ready messages at or below these.
#[derive(Debug, Clone, Copy)]
pub struct Resume {
    pub bytes: u64,
    pub messages: usize,
}

impl Resume {
    /// The marks for a queue holding `bytes` in `messages` ready messages now.
    pub fn from(bytes: u64, messages: usize) -> Resume {
        Resume {
            bytes: bytes.saturating_sub(RESUME_BYTES),
            messages: messages.saturating_sub(RESUME_MESSAGES),
        }
    }

    pub fn reached(&self, bytes: u64, messages: usize) -> bool {
        bytes <= self.bytes || messages <= self.messages
    }
}
