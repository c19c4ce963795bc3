//! What broker operations leave to do once their locks are released: outboxes to ring and
//! messages to dead-letter (routing them needs the vhost's maps, which come before queue
//! locks in the lock order).

use super::outbox::Bells;
use super::queue::{Queue, QueuedMessage};
use super::stats::Stat;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathReason {
    Rejected,
    Expired,
    Maxlen,
    /// Returned more often than a quorum queue's `x-delivery-limit` allows.
    DeliveryLimit,
}

impl DeathReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::Maxlen => "maxlen",
            DeathReason::DeliveryLimit => "delivery_limit",
        }
    }

    /// The reason's code in a discarded mark (`store::record::MARK_DISCARDED` + code).
    pub fn code(self) -> u8 {
        match self {
            DeathReason::Rejected => 0,
            DeathReason::Expired => 1,
            DeathReason::Maxlen => 2,
            DeathReason::DeliveryLimit => 3,
        }
    }

    /// The reason of a discarded mark's code; unknown codes read as `rejected`.
    pub fn from_code(code: u8) -> DeathReason {
        match code {
            1 => DeathReason::Expired,
            2 => DeathReason::Maxlen,
            3 => DeathReason::DeliveryLimit,
            _ => DeathReason::Rejected,
        }
    }
}

#[derive(Debug)]
pub struct DeadLetter {
    pub queue: Arc<Queue>,
    pub message: QueuedMessage,
    pub reason: DeathReason,
}

#[derive(Debug, Default)]
pub struct Effects {
    pub bells: Bells,
    pub dead: Vec<DeadLetter>,
    /// Highest store ticket a publish is waiting for (0: none): its confirm waits until
    /// the store has synced that far.
    pub ticket: u64,
    /// Queues that took a message past their paging threshold and hold its publisher back
    /// until their consumers make room (`broker::flow`): a connection waits on each
    /// ([`Queue::room`]) before it reads more; others may ignore them.
    pub held: Vec<Arc<Queue>>,
}

impl Effects {
    /// Records that `queue` holds this publisher back.
    pub fn hold(&mut self, queue: &Arc<Queue>) {
        if !self.held.iter().any(|q| Arc::ptr_eq(q, queue)) {
            self.held.push(queue.clone());
        }
    }

    /// Records a message leaving `queue` for `reason`; kept only if the queue has a
    /// dead-letter exchange, by argument or policy (otherwise the message is simply
    /// dropped). The exchange itself is read when the message is dead-lettered.
    pub fn dead_letter(
        &mut self,
        queue: &Arc<Queue>,
        mut message: QueuedMessage,
        reason: DeathReason,
    ) {
        // However it ends (dead-lettered or dropped), a quorum queue's log records a
        // `Discard` for it, not a `Settle`.
        if let Some(p) = &mut message.persisted {
            p.discard();
        }
        let dlx = queue.has_dead_letter_exchange();
        queue.stats.incr(match (reason, dlx) {
            (DeathReason::Expired, true) => Stat::DeadLetteredExpired,
            (DeathReason::Maxlen, true) => Stat::DeadLetteredMaxlen,
            (DeathReason::Rejected, true) => Stat::DeadLetteredRejected,
            (DeathReason::Expired, false) => Stat::DroppedExpired,
            (DeathReason::Maxlen, false) => Stat::DroppedMaxlen,
            (DeathReason::Rejected, false) => Stat::DroppedRejected,
            (DeathReason::DeliveryLimit, true) => Stat::DeadLetteredDeliveryLimit,
            (DeathReason::DeliveryLimit, false) => Stat::DroppedDeliveryLimit,
        });
        if dlx {
            self.dead.push(DeadLetter {
                queue: queue.clone(),
                message,
                reason,
            });
        }
    }
}
