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
//!   that does not read its deliveries while it publishes) ends the hold, and for
//!   [`FLOW_PAUSE`] the queue holds no publisher: it pages as before. Each hold that runs
//!   out doubles that pause, up to [`FLOW_PAUSE_MAX`] (a queue whose consumer is slow
//!   costs its publishers at most 250 ms every 30 s); a hold that ends in time resets it.
//!
//! A queue that is already paging holds its publishers the same way (the message goes to
//! the disk all the same): with consumers faster than the hold's floor, the paged-out tail
//! then drains and the queue returns to memory, instead of paging for as long as the
//! publisher keeps pace.

use std::time::{Duration, Instant};

/// How far past its paging threshold a queue keeps held-back publishers' messages in
/// memory: a read batch per publisher, with room to spare.
pub const FLOW_SLACK: u64 = 4 << 20;

/// The longest a publisher waits for a queue's consumers to make room.
pub const FLOW_WAIT: Duration = Duration::from_millis(250);

/// After a hold ran out of time, how long the queue holds no publisher...
pub const FLOW_PAUSE: Duration = Duration::from_secs(1);

/// ... doubled after each hold that runs out, up to this.
pub const FLOW_PAUSE_MAX: Duration = Duration::from_secs(30);

/// A hold ends once consumers have taken this many bytes off the queue...
pub const RESUME_BYTES: u64 = 1 << 20;

/// ... or this many messages.
pub const RESUME_MESSAGES: usize = 256;

/// A queue's hold on its publishers (in the queue's state, under its lock).
#[derive(Debug, Default)]
pub struct Flow {
    /// Publishers are held back until consumers take this much more off the queue.
    pub holding: Option<Drain>,
    /// The last hold ran out of time: no hold before this.
    pub paused_until: Option<Instant>,
    /// The next pause (zero: [`FLOW_PAUSE`]).
    pub pause: Duration,
}

impl Flow {
    /// Whether a publisher may be held now.
    pub fn may_hold(&mut self) -> bool {
        match self.paused_until {
            Some(t) if Instant::now() < t => false,
            Some(_) => {
                self.paused_until = None;
                true
            }
            None => true,
        }
    }

    /// Starts a hold, or keeps the one in force.
    pub fn hold(&mut self) {
        self.holding.get_or_insert(Drain {
            bytes: RESUME_BYTES,
            messages: RESUME_MESSAGES,
        });
    }

    /// Counts `messages` of `bytes` taken off the queue; true if that ends the hold.
    pub fn taken(&mut self, messages: usize, bytes: u64) -> bool {
        match &mut self.holding {
            Some(d) => {
                d.bytes = d.bytes.saturating_sub(bytes);
                d.messages = d.messages.saturating_sub(messages);
                let done = d.bytes == 0 || d.messages == 0;
                if done {
                    self.pause = FLOW_PAUSE;
                }
                done
            }
            None => false,
        }
    }

    /// The hold ran out of time.
    pub fn give_up(&mut self) {
        self.holding = None;
        let pause = self.pause.max(FLOW_PAUSE);
        self.paused_until = Some(Instant::now() + pause);
        self.pause = (pause * 2).min(FLOW_PAUSE_MAX);
    }
}

/// What consumers still have to take off the queue before a hold ends.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    pub bytes: u64,
    pub messages: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hold ends after RESUME_BYTES or RESUME_MESSAGES taken; holds that run out pause
    /// holding for doubling times up to FLOW_PAUSE_MAX, and one that ends in time resets
    /// the pause.
    #[test]
    fn holds_end_on_drain_and_pauses_double_until_one_succeeds() {
        let mut f = Flow::default();
        assert!(f.may_hold());
        f.hold();
        assert!(!f.taken(RESUME_MESSAGES - 1, RESUME_BYTES - 1));
        assert!(f.taken(1, 0));
        f.holding = None;
        f.hold();
        assert!(f.taken(0, RESUME_BYTES));
        f.holding = None;
        let mut pauses = Vec::new();
        for _ in 0..7 {
            f.hold();
            f.give_up();
            assert!(!f.may_hold());
            pauses.push(f.paused_until.unwrap() - Instant::now());
            f.paused_until = Some(Instant::now());
            assert!(f.may_hold());
        }
        // Measured against the clock, so a capped pause read later looks a little shorter:
        // non-decreasing within a margin.
        for w in pauses.windows(2) {
            assert!(w[1] + Duration::from_millis(100) >= w[0], "{pauses:?}");
        }
        assert!(pauses[0] <= FLOW_PAUSE && pauses[0] > FLOW_PAUSE / 2);
        assert!(pauses[6] <= FLOW_PAUSE_MAX && pauses[6] > FLOW_PAUSE_MAX / 2);
        f.hold();
        assert!(f.taken(RESUME_MESSAGES, 0));
        f.give_up();
        assert!(f.paused_until.unwrap() - Instant::now() <= FLOW_PAUSE);
    }
}
