//! Consumer timeouts: a delivery not acknowledged within its timeout closes its channel
//! with 406 PRECONDITION_FAILED, and the channel's unacknowledged messages go back to
//! their queues, as RabbitMQ's `consumer_timeout` (`amqp.consumer_timeout` here; a
//! queue's `x-consumer-timeout` argument overrides it, as RabbitMQ 3.12+ accepts it).
//!
//! No timer per delivery, and no clock read on the message path. Each delivery stores a
//! deadline computed from a coarse clock ([`deadline`]: one relaxed load) that the single
//! sweeper ([`sweep`], every [`TICK_MS`]) advances. Each channel keeps a lower bound of
//! its deliveries' deadlines in [`ChannelLink::next_deadline`], so the sweeper looks at a
//! channel's deliveries only when that bound has passed; it then flags the channel
//! ([`ChannelLink::timed_out`]) and nudges its connection, whose reader closes the channel
//! (the reader owns the channel: nothing else closes it).
//!
//! Invariant: `next_deadline` is at most the earliest deadline of the channel's unacked
//! deliveries. It is lowered by the delivering side and recomputed by the sweeper, both
//! under the channel's deliveries lock; acknowledgements leave it low (stale), which
//! costs the sweeper one look at the deliveries, never a missed timeout.

use super::connections::Registry;
use super::consumer::ChannelLink;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The sweeper's period: a delivery is noticed at most about two ticks after its timeout
/// (RabbitMQ 3.10 checks once a minute).
pub const TICK_MS: u64 = 1000;

static START: OnceLock<Instant> = OnceLock::new();
/// Milliseconds since START as of the sweeper's last tick: lags the real time by up to a
/// tick.
static NOW_MS: AtomicU64 = AtomicU64::new(0);

/// Advances the coarse clock to the real time and returns it.
pub fn advance() -> u64 {
    let ms = START.get_or_init(Instant::now).elapsed().as_millis() as u64;
    NOW_MS.fetch_max(ms, Ordering::Relaxed);
    ms
}

/// The deadline of a delivery made now, for a timeout of `timeout_ms` (0: none). Never
/// early: the coarse clock lags by up to a tick, so a tick is added.
#[inline]
pub fn deadline(timeout_ms: u64) -> u64 {
    if timeout_ms == 0 {
        u64::MAX
    } else {
        NOW_MS
            .load(Ordering::Relaxed)
            .saturating_add(timeout_ms)
            .saturating_add(TICK_MS)
    }
}

/// Records a new delivery's deadline on its channel. Called with the channel's
/// deliveries lock held.
#[inline]
pub fn note_delivery(link: &ChannelLink, deadline: u64) {
    if deadline < link.next_deadline.load(Ordering::Relaxed) {
        link.next_deadline.store(deadline, Ordering::Relaxed);
    }
}

/// One pass over every open channel: flags those holding a delivery past its deadline
/// and nudges their connections. Returns how many channels it flagged.
pub fn sweep(registry: &Registry) -> usize {
    let now = advance();
    let mut flagged = 0;
    for entry in registry.all() {
        let mut nudge = false;
        for link in entry.channels() {
            if link.next_deadline.load(Ordering::Relaxed) > now {
                continue;
            }
            let d = link.deliveries.lock().unwrap();
            match d.unacked.iter().find(|u| u.deadline <= now) {
                Some(u) => {
                    let timeout = u
                        .queue
                        .args
                        .consumer_timeout
                        .unwrap_or(link.consumer_timeout);
                    link.timed_out.store(timeout.max(1), Ordering::Relaxed);
                    // Flagged once: the channel is about to close.
                    link.next_deadline.store(u64::MAX, Ordering::Relaxed);
                    nudge = true;
                    flagged += 1;
                }
                None => {
                    let earliest = d.unacked.iter().map(|u| u.deadline).min();
                    link.next_deadline
                        .store(earliest.unwrap_or(u64::MAX), Ordering::Relaxed);
                }
            }
        }
        if nudge {
            entry.nudge();
        }
    }
    flagged
}
