//! At-least-once dead-lettering's waiting room: RabbitMQ 3.10's `rabbit_fifo_dlx` discards
//! and the retries of its `rabbit_fifo_dlx_worker`.
//!
//! A quorum queue with `x-dead-letter-strategy: at-least-once` (and `x-overflow:
//! reject-publish`) that cannot hand a dead message to its target, because the dead-letter
//! exchange is missing, routes it nowhere (a cycle included), or a target queue refused it,
//! keeps the message in its [`Discards`] instead of dropping it. There it:
//!
//! - counts toward the queue's limits as rabbit_fifo counts it (`reject-publish` admission
//!   adds the discards to the ready messages and bytes), and in the management API's
//!   `messages`, `message_bytes`, `messages_dlx` and `message_bytes_dlx` (not in
//!   `messages_ready`, nor in queue.declare-ok's count);
//! - stays in the queue's log, moved to the discards by a `DeadLettering` command
//!   (`quorum::Command`, written as `store::record::MARK_DISCARDED` + its reason; a marks
//!   file holds the same record for a queue in the older format), so after `kill -9` it
//!   comes back among the discards and is still dead-lettered;
//! - is retried by the broker's one [`Retrier`] task: at once when the vhost's topology
//!   changes (an exchange or queue declared, a binding added, a policy put or deleted),
//!   and every `amqp.dead_letter_retry_interval` for what a target refused. RabbitMQ
//!   retries on its worker's timer (`dead_letter_worker_publisher_confirm_timeout`, 3
//!   minutes) and when the queue's own policy changes; Warren notices a declared exchange or
//!   binding at once as well.
//!
//! Nothing here costs a queue that never keeps a discard: the discards are an empty
//! `VecDeque` in the queue's state, and the retrier looks only at queues that registered.
//! Lock order: the retrier's list is a leaf, taken with no queue lock held.

use super::effects::{DeathReason, Effects};
use super::queue::{Queue, QueuedMessage};
use crate::protocol::ShortStr;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A message waiting to be dead-lettered at least once.
#[derive(Debug)]
pub struct Discarded {
    pub message: QueuedMessage,
    pub reason: DeathReason,
    /// Target queues (by name) that took a copy on an earlier attempt: not sent again, as
    /// rabbit_fifo_dlx_worker skips the targets that confirmed.
    pub settled: Vec<ShortStr>,
    /// The highest store ticket of those copies: the source settles after it.
    pub ticket: u64,
}

impl Discarded {
    pub fn new(message: QueuedMessage, reason: DeathReason) -> Discarded {
        Discarded {
            message,
            reason,
            settled: Vec::new(),
            ticket: 0,
        }
    }

    fn size(&self) -> u64 {
        self.message.message.size() as u64
    }
}

/// A queue's discards, in the order they died, with their body bytes.
#[derive(Debug, Default)]
pub struct Discards {
    items: VecDeque<Discarded>,
    bytes: u64,
}

impl Discards {
    pub fn push(&mut self, d: Discarded) {
        self.bytes += d.size();
        self.items.push_back(d);
    }

    pub fn len(&self) -> u64 {
        self.items.len() as u64
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Takes every discard out (for a retry, or to drop them all).
    pub fn take(&mut self) -> VecDeque<Discarded> {
        self.bytes = 0;
        std::mem::take(&mut self.items)
    }
}

/// The broker's one task that retries every queue's discards.
#[derive(Debug, Default)]
pub struct Retrier {
    /// Queues that kept discards since the last pass.
    waiting: Mutex<Vec<Weak<Queue>>>,
    wake: Notify,
}

impl Retrier {
    /// Registers a queue that now has discards (once; it stays until a pass empties it).
    pub fn register(&self, queue: &Arc<Queue>) {
        let mut w = self.waiting.lock().unwrap();
        let me = Arc::downgrade(queue);
        if !w.iter().any(|q| q.ptr_eq(&me)) {
            w.push(me);
        }
    }

    /// Something that may route a discard now exists: retry at once. One lock and an
    /// emptiness test when no queue waits.
    pub fn topology_changed(&self) {
        if !self.waiting.lock().unwrap().is_empty() {
            self.wake.notify_one();
        }
    }

    /// Retries now and after every `interval` until `stop`.
    pub async fn run(self: Arc<Self>, interval: Duration, stop: CancellationToken) {
        let interval = interval.max(Duration::from_millis(10));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => return,
            }
            self.pass();
        }
    }

    /// One attempt at every waiting queue's discards; queues left without any leave the
    /// list (they register again when they keep one).
    pub fn pass(&self) {
        let queues: Vec<Arc<Queue>> = {
            let mut w = self.waiting.lock().unwrap();
            w.retain(|q| q.strong_count() > 0);
            w.iter().filter_map(Weak::upgrade).collect()
        };
        for q in &queues {
            q.retry_discards();
        }
        let mut w = self.waiting.lock().unwrap();
        w.retain(|q| q.upgrade().is_some_and(|q| q.has_discards()));
    }
}

/// Retries `queue`'s discards: each is dead-lettered again; what still cannot be is kept
/// (by `deadletter`), behind anything discarded meanwhile.
pub(super) fn retry(queue: &Arc<Queue>, taken: VecDeque<Discarded>) {
    let Some(vhost) = queue.vhost() else { return };
    let mut fx = Effects::default();
    for d in taken {
        super::deadletter::retry_one(&vhost, queue, d, &mut fx);
    }
    // Copies may die in turn (a target overflowing): dead-lettered as any other death.
    super::deadletter::dead_letter_all(&vhost, &mut fx);
    fx.bells.ring();
}
