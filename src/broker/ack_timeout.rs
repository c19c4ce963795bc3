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
//! The sweeper visits only the channels on the broker's [`Watch`] list: those holding a
//! delivery that can time out. Channels without one (no timeout configured, nothing
//! unacked, or only auto-ack consumers) cost it nothing, however many are open.
//!
//! Invariants, all under the channel's deliveries lock:
//! - `next_deadline` is at most the earliest deadline of the channel's unacked
//!   deliveries. It is lowered by the delivering side and recomputed by the sweeper;
//!   acknowledgements leave it low (stale), which costs the sweeper one look at the
//!   deliveries, never a missed timeout.
//! - [`Deliveries::watched`] is set exactly while the channel is on the watch list (or
//!   in the hands of a sweep, which puts it back). A delivery with a finite deadline
//!   finds it set or sets it and joins the list; the sweeper clears it and drops the
//!   channel when nothing is unacked (at the first tick after the last acknowledgement),
//!   when no unacked delivery has a finite deadline, or when it flags the channel (which
//!   then closes; a later delivery would join again). So the sweeper's work per tick is
//!   proportional to the channels with deliveries in flight, not to the open channels.

use super::connections::Registry;
use super::consumer::{ChannelLink, Deliveries};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
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

/// The channels of one broker holding deliveries that can time out.
#[derive(Debug, Default)]
pub struct Watch {
    channels: Mutex<Vec<Weak<ChannelLink>>>,
}

impl Watch {
    /// How many channels are on the list.
    pub fn len(&self) -> usize {
        self.channels.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Records a new delivery's deadline on its channel, whose deliveries lock `d` is.
/// The first delivery that can time out puts the channel on the watch list.
#[inline]
pub fn note_delivery(link: &Arc<ChannelLink>, d: &mut Deliveries, deadline: u64) {
    if deadline < link.next_deadline.load(Ordering::Relaxed) {
        link.next_deadline.store(deadline, Ordering::Relaxed);
    }
    if deadline != u64::MAX && !d.watched {
        d.watched = true;
        link.deadlines
            .channels
            .lock()
            .unwrap()
            .push(Arc::downgrade(link));
    }
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Channels looked at: those on the watch list.
    pub visited: usize,
    /// Channels flagged for closing.
    pub flagged: usize,
}

/// One pass over the channels on the watch list: flags those holding a delivery past
/// its deadline and nudges their connections; drops from the list those left without a
/// delivery that can time out.
pub fn sweep(registry: &Registry) -> Swept {
    let now = advance();
    let watch = &registry.deadlines;
    let taken = std::mem::take(&mut *watch.channels.lock().unwrap());
    let mut swept = Swept {
        visited: taken.len(),
        flagged: 0,
    };
    let mut keep = Vec::with_capacity(taken.len());
    for w in taken {
        let Some(link) = w.upgrade() else { continue };
        if link.next_deadline.load(Ordering::Relaxed) > now {
            // Not due. Acknowledgements leave `next_deadline` stale: a channel left with
            // nothing unacked leaves the list now rather than when it falls due (never
            // waiting on a channel that is busy delivering).
            if let Ok(mut d) = link.deliveries.try_lock()
                && d.unacked.is_empty()
            {
                link.next_deadline.store(u64::MAX, Ordering::Relaxed);
                d.watched = false;
                continue;
            }
            keep.push(w);
            continue;
        }
        let mut d = link.deliveries.lock().unwrap();
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
                d.watched = false;
                drop(d);
                swept.flagged += 1;
                if let Some(entry) = registry.get(link.connection_id) {
                    entry.nudge();
                }
            }
            None => {
                let earliest = d
                    .unacked
                    .iter()
                    .map(|u| u.deadline)
                    .min()
                    .unwrap_or(u64::MAX);
                link.next_deadline.store(earliest, Ordering::Relaxed);
                if earliest == u64::MAX {
                    d.watched = false;
                } else {
                    keep.push(w);
                }
            }
        }
    }
    if !keep.is_empty() {
        watch.channels.lock().unwrap().extend(keep);
    }
    swept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::outbox::Outbox;

    fn channel(registry: &Registry, id: u16) -> Arc<ChannelLink> {
        registry.new_channel(ChannelLink::new(
            id,
            1,
            Arc::new(Outbox::new(4096)),
            false,
            60_000,
            registry.deadlines.clone(),
        ))
    }

    /// Notes a delivery due at `deadline` on `link` (as a queue delivering does, without
    /// the delivery itself).
    fn deliver(link: &Arc<ChannelLink>, deadline: u64) {
        let mut d = link.deliveries.lock().unwrap();
        note_delivery(link, &mut d, deadline);
    }

    #[test]
    fn a_sweep_visits_only_channels_with_deliveries_that_can_time_out() {
        let registry = Registry::default();
        let idle: Vec<_> = (0..10_000).map(|i| channel(&registry, i as u16)).collect();
        assert_eq!(sweep(&registry).visited, 0);

        let busy: Vec<_> = (0..3).map(|i| channel(&registry, i)).collect();
        for b in &busy {
            deliver(b, deadline(60_000));
            deliver(b, deadline(60_000)); // joins once
        }
        // Deliveries that cannot time out (timeout 0) leave a channel off the list.
        deliver(&idle[0], deadline(0));
        assert_eq!(registry.deadlines.len(), 3);
        // Visited; nothing is unacked (these channels never held the deliveries noted),
        // so they leave the list at once although not due.
        assert_eq!(
            sweep(&registry),
            Swept {
                visited: 3,
                flagged: 0
            }
        );
        assert_eq!(sweep(&registry).visited, 0);
        assert!(busy.iter().all(|b| !b.deliveries.lock().unwrap().watched));
        assert!(
            busy.iter()
                .all(|b| b.next_deadline.load(Ordering::Relaxed) == u64::MAX)
        );

        // A due bound with nothing past its deadline: looked at, then off the list.
        deliver(&busy[1], 0);
        assert_eq!(
            sweep(&registry),
            Swept {
                visited: 1,
                flagged: 0
            }
        );
        assert_eq!(sweep(&registry).visited, 0);
        drop(idle);
    }
}
