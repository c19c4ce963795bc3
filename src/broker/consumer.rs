//! Consumers and the per-channel delivery state that queues deliver into.
//!
//! A channel's reader task owns most channel state, but deliveries are made by whichever
//! task enqueues a message (usually the publisher's reader), so what deliveries need is
//! shared here: the next delivery tag, the unacknowledged deliveries, the prefetch limits
//! and the connection's [`Outbox`].
//!
//! Lock order (never take an earlier lock while holding a later one):
//! vhost maps → exchange bindings → queue state → channel deliveries → outbox buffer.

use super::ack_timeout;
use super::message::MessageRef;
use super::outbox::{Bells, Outbox};
use super::queue::{Queue, QueuedMessage};
use super::stats::{Counters, SizeHistogram, Stat};
use crate::protocol::{BasicDeliver, Method, ShortStr};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The part of a channel that queues and other connections reach.
#[derive(Debug)]
pub struct ChannelLink {
    pub id: u16,
    pub connection_id: u64,
    pub outbox: Arc<Outbox>,
    /// The client handles server-sent basic.cancel (capability consumer_cancel_notify).
    pub cancel_notify: bool,
    pub deliveries: Mutex<Deliveries>,
    /// Message statistics (management API); folded into the broker's when it closes.
    pub stats: Counters,
    /// The channel is in confirm mode (for the management API).
    pub confirm: AtomicBool,
    /// The channel is transactional (for the management API).
    pub transactional: AtomicBool,
    /// basic.qos prefetch_count for new consumers (for the management API).
    pub prefetch: AtomicU32,
    /// The connection's consumer timeout in milliseconds (`amqp.consumer_timeout`, 0:
    /// none), for deliveries from queues without `x-consumer-timeout`.
    pub consumer_timeout: u64,
    /// At most the earliest deadline of the unacked deliveries (see
    /// [`ack_timeout`](super::ack_timeout)); u64::MAX when none can time out.
    pub next_deadline: AtomicU64,
    /// Set by the sweeper to the timeout (ms) a delivery exceeded: the reader closes the
    /// channel with 406.
    pub timed_out: AtomicU64,
    /// Sizes of the messages published on the channel (Prometheus' histogram); folded
    /// into the broker's when it closes.
    pub sizes: SizeHistogram,
    /// The broker's list of channels with deliveries that can time out: the channel
    /// joins it at its first such delivery (see [`ack_timeout`](super::ack_timeout)).
    pub deadlines: Arc<ack_timeout::Watch>,
}

/// Deliveries in flight on one channel.
#[derive(Debug, Default)]
pub struct Deliveries {
    pub next_tag: u64,
    /// Unacknowledged deliveries in tag order.
    pub unacked: VecDeque<Unacked>,
    /// basic.qos global=true: limit over all the channel's consumers (0: none).
    pub global_prefetch: u16,
    /// Unacked deliveries counted against `global_prefetch`.
    pub global_in_flight: u32,
    /// Set when the channel closes: queues stop delivering to it.
    pub closed: bool,
    /// The channel is on its broker's consumer-timeout list ([`ChannelLink::deadlines`]).
    pub watched: bool,
    /// The channel's consumers and the queues they consume from.
    pub consumers: Vec<ConsumerEntry>,
}

#[derive(Debug)]
pub struct ConsumerEntry {
    pub consumer: Arc<Consumer>,
    pub queue: Arc<Queue>,
}

#[derive(Debug)]
pub struct Unacked {
    pub tag: u64,
    pub queue: Arc<Queue>,
    pub message: QueuedMessage,
    /// The consumer it went to (None for basic.get).
    pub consumer: Option<Arc<Consumer>>,
    /// When it times out, on the [`ack_timeout`](super::ack_timeout) clock.
    pub deadline: u64,
}

impl ChannelLink {
    pub fn new(
        id: u16,
        connection_id: u64,
        outbox: Arc<Outbox>,
        cancel_notify: bool,
        consumer_timeout: u64,
        deadlines: Arc<ack_timeout::Watch>,
    ) -> Self {
        Self {
            id,
            connection_id,
            outbox,
            cancel_notify,
            deliveries: Mutex::new(Deliveries {
                next_tag: 1,
                ..Default::default()
            }),
            stats: Counters::default(),
            confirm: AtomicBool::new(false),
            transactional: AtomicBool::new(false),
            prefetch: AtomicU32::new(0),
            consumer_timeout,
            next_deadline: AtomicU64::new(u64::MAX),
            timed_out: AtomicU64::new(0),
            sizes: SizeHistogram::default(),
            deadlines,
        }
    }
}

impl Deliveries {
    /// Removes unacked deliveries by tag (`multiple`: every tag up to it; tag 0 with
    /// multiple: all). `None` when a tag is unknown, as RabbitMQ's 406 requires.
    pub fn take(&mut self, tag: u64, multiple: bool) -> Option<Vec<Unacked>> {
        if multiple {
            let n = if tag == 0 {
                self.unacked.len()
            } else {
                if !self.unacked.iter().any(|u| u.tag == tag) {
                    return None;
                }
                self.unacked.partition_point(|u| u.tag <= tag)
            };
            let taken: Vec<Unacked> = self.unacked.drain(..n).collect();
            self.release(&taken);
            Some(taken)
        } else {
            let pos = self.unacked.binary_search_by_key(&tag, |u| u.tag).ok()?;
            let u = self.unacked.remove(pos).unwrap();
            self.release(std::slice::from_ref(&u));
            Some(vec![u])
        }
    }

    /// Takes every unacked delivery (channel closing, basic.recover).
    pub fn take_all(&mut self) -> Vec<Unacked> {
        let taken: Vec<Unacked> = self.unacked.drain(..).collect();
        self.release(&taken);
        taken
    }

    fn release(&mut self, taken: &[Unacked]) {
        for u in taken {
            u.queue.unacked.fetch_sub(1, Ordering::Relaxed);
            // The level moved: the sampler looks at the queue.
            u.queue.stats.active.touch();
            if let Some(c) = &u.consumer {
                c.in_flight.fetch_sub(1, Ordering::Relaxed);
                self.global_in_flight = self.global_in_flight.saturating_sub(1);
            }
        }
    }
}

/// A basic.consume subscription.
#[derive(Debug)]
pub struct Consumer {
    pub tag: ShortStr,
    pub no_ack: bool,
    pub exclusive: bool,
    /// x-priority: higher goes first.
    pub priority: i64,
    /// basic.qos prefetch_count in force when it subscribed (0: unlimited).
    pub prefetch: u16,
    pub in_flight: AtomicU32,
    pub channel: Arc<ChannelLink>,
    pub cancelled: AtomicBool,
}

impl Consumer {
    /// Delivers `message` from `queue` if this consumer has credit; otherwise gives it back.
    /// Called with the queue's lock held.
    pub(crate) fn try_deliver(
        self: &Arc<Self>,
        queue: &Arc<Queue>,
        message: QueuedMessage,
        bells: &mut Bells,
    ) -> Result<(), QueuedMessage> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(message);
        }
        let outbox = &self.channel.outbox;
        if outbox.is_full() && outbox.wait_for_room(queue) {
            return Err(message);
        }
        let mut d = self.channel.deliveries.lock().unwrap();
        if d.closed
            || (!self.no_ack
                && ((self.prefetch != 0
                    && self.in_flight.load(Ordering::Relaxed) >= u32::from(self.prefetch))
                    || (d.global_prefetch != 0
                        && d.global_in_flight >= u32::from(d.global_prefetch))))
        {
            return Err(message);
        }
        let tag = d.next_tag;
        d.next_tag += 1;
        write_deliver(
            &self.channel,
            &self.tag,
            tag,
            message.redelivered,
            &message.message,
        );
        let kind = if self.no_ack {
            Stat::DeliverNoAck
        } else {
            Stat::Deliver
        };
        queue.stats.incr(kind);
        self.channel.stats.incr(kind);
        if message.redelivered {
            queue.stats.incr(Stat::Redeliver);
            self.channel.stats.incr(Stat::Redeliver);
        }
        bells.add(&self.channel.outbox);
        if !self.no_ack {
            message.mark_delivered();
            queue.unacked.fetch_add(1, Ordering::Relaxed);
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            d.global_in_flight += 1;
            let deadline = ack_timeout::deadline(
                queue
                    .args
                    .consumer_timeout
                    .unwrap_or(self.channel.consumer_timeout),
            );
            ack_timeout::note_delivery(&self.channel, &mut d, deadline);
            d.unacked.push_back(Unacked {
                tag,
                queue: queue.clone(),
                message,
                consumer: Some(self.clone()),
                deadline,
            });
        }
        Ok(())
    }

    /// Delivers without acknowledgement tracking (direct reply-to consumers are no-ack).
    pub fn deliver_no_ack(&self, message: &MessageRef, bells: &mut Bells) -> bool {
        let mut d = self.channel.deliveries.lock().unwrap();
        if d.closed || self.cancelled.load(Ordering::Relaxed) {
            return false;
        }
        let tag = d.next_tag;
        d.next_tag += 1;
        write_deliver(&self.channel, &self.tag, tag, false, message);
        self.channel.stats.incr(Stat::DeliverNoAck);
        bells.add(&self.channel.outbox);
        true
    }
}

/// Appends basic.deliver with the message's header and body to the channel's outbox.
fn write_deliver(
    link: &ChannelLink,
    consumer_tag: &ShortStr,
    delivery_tag: u64,
    redelivered: bool,
    message: &MessageRef,
) {
    let method = Method::BasicDeliver(BasicDeliver {
        consumer_tag: consumer_tag.clone(),
        delivery_tag,
        redelivered,
        exchange: message.exchange.clone(),
        routing_key: message.routing_key.clone(),
    });
    link.outbox
        .push_content(link.id, &method, &message.properties, &message.body);
}
