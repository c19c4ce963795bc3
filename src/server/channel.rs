//! A channel's private state (owned by its connection's reader task) and the dispatch of
//! its methods to the handlers of each class.

use super::connection::Connection;
use crate::broker::consumer::{ChannelLink, Consumer};
use crate::broker::effects::Effects;
use crate::broker::outbox::Outbox;
use crate::broker::queue::requeue_unacked;
use crate::broker::stats::Stat;
use crate::broker::vhost::VHost;
use crate::protocol::*;
use std::sync::Arc;

/// Publisher-confirm state.
#[derive(Debug, Default)]
pub(crate) struct Confirms {
    /// Sequence number of the last publish.
    pub last_seq: u64,
    /// Highest sequence number not yet acknowledged to the client.
    pub pending: Option<u64>,
    /// Highest sequence number acknowledged so far.
    pub acked: u64,
    /// Confirms waiting for the store, in sequence order: (seq, store ticket, ack or
    /// nack). While any wait, later confirms queue behind them, so that a multiple ack
    /// never covers a message not yet on disk.
    pub waiting: std::collections::VecDeque<(u64, u64, bool)>,
}

/// A publish or acknowledgement held back by a transaction until commit. Acks name
/// the delivery tags they settle, checked when the ack arrives (as RabbitMQ does): the
/// deliveries stay unacked (holding their prefetch credit) until the commit.
pub(crate) enum TxOp {
    Publish(Box<(BasicPublish, Content)>),
    Ack { tags: Vec<u64> },
    Nack { tags: Vec<u64>, requeue: bool },
}

impl TxOp {
    fn tags(&self) -> &[u64] {
        match self {
            TxOp::Publish(_) => &[],
            TxOp::Ack { tags } | TxOp::Nack { tags, .. } => tags,
        }
    }
}

pub(crate) struct Channel {
    pub link: Arc<ChannelLink>,
    pub assembler: ContentAssembler,
    /// We sent channel.close and wait for close-ok.
    pub closing: bool,
    pub confirms: Option<Confirms>,
    pub tx: Option<Vec<TxOp>>,
    /// basic.qos prefetch_count for consumers created from now on (global=false).
    pub prefetch_count: u16,
    /// A global (per-channel) prefetch limit is set: the reader's copy of
    /// `global_prefetch != 0` in the link's deliveries, so that an ack needs no lock to
    /// know whether credit is shared between the channel's queues.
    pub global_prefetch: bool,
    /// The last queue declared on this channel: what an empty queue name means.
    pub last_queue: Option<ShortStr>,
    /// Direct reply-to: this channel's reply address and its consumer.
    pub direct_reply: Option<(ShortStr, Arc<Consumer>)>,
}

impl Channel {
    pub fn new(
        id: u16,
        connection_id: u64,
        outbox: Arc<Outbox>,
        cancel_notify: bool,
        max_message_size: u64,
        consumer_timeout: u64,
        registry: &crate::broker::connections::Registry,
    ) -> Self {
        Self {
            link: registry.new_channel(ChannelLink::new(
                id,
                connection_id,
                outbox,
                cancel_notify,
                consumer_timeout,
                registry.deadlines.clone(),
            )),
            assembler: ContentAssembler::new(max_message_size),
            closing: false,
            confirms: None,
            tx: None,
            prefetch_count: 0,
            global_prefetch: false,
            last_queue: None,
            direct_reply: None,
        }
    }

    /// Cancels the channel's consumers (auto-deleting queues left without any) and
    /// requeues its unacknowledged deliveries in order. Idempotent.
    pub fn release(&mut self, vhost: &VHost, fx: &mut Effects) {
        let (consumers, unacked) = {
            let mut d = self.link.deliveries.lock().unwrap();
            d.closed = true;
            (std::mem::take(&mut d.consumers), d.take_all())
        };
        // Unacked deliveries go back first (the channel is marked closed, so they are not
        // delivered to it again): a single active consumer's successor gets them before
        // anything else.
        requeue_unacked(unacked, fx);
        for e in consumers {
            if e.queue.remove_consumer(&e.consumer, fx) {
                vhost.remove_queue(&e.queue);
            }
        }
        self.tx = None;
        if let Some((address, consumer)) = self.direct_reply.take() {
            consumer
                .cancelled
                .store(true, std::sync::atomic::Ordering::Relaxed);
            vhost.direct_reply.remove(&address);
        }
    }

    /// Releases the waiting confirms whose store ticket is now synced.
    pub fn release_durable_confirms(&mut self, synced: u64, outbox: &Outbox) {
        loop {
            let Some(c) = &mut self.confirms else { return };
            match c.waiting.front() {
                Some(&(seq, ticket, ack)) if ticket <= synced => {
                    c.waiting.pop_front();
                    if ack {
                        c.pending = Some(seq);
                    } else {
                        self.nack_confirm(seq, outbox);
                    }
                }
                _ => break,
            }
        }
        self.flush_confirms(outbox);
    }

    /// Sends the acks so far, then a nack for `seq` (a queue refused the message).
    pub fn nack_confirm(&mut self, seq: u64, outbox: &Outbox) {
        self.flush_confirms(outbox);
        if let Some(c) = &mut self.confirms {
            // Every earlier publish is confirmed by now, so RabbitMQ's coalescing makes
            // this a multiple nack; requeue is its record default (true).
            let m = Method::BasicNack(BasicNack {
                delivery_tag: seq,
                multiple: true,
                requeue: true,
            });
            c.acked = seq;
            outbox.push(|buf, _| encode_method(buf, self.link.id, &m));
        }
    }

    /// Sends one basic.ack (multiple) covering every publish confirmed so far.
    pub fn flush_confirms(&mut self, outbox: &Outbox) {
        if let Some(c) = &mut self.confirms
            && let Some(seq) = c.pending.take()
        {
            // One ack covers the batch; a lone publish gets a plain ack, as RabbitMQ sends.
            let m = Method::BasicAck(BasicAck {
                delivery_tag: seq,
                multiple: seq - c.acked > 1,
            });
            self.link.stats.add(Stat::ConfirmSent, seq - c.acked);
            c.acked = seq;
            outbox.push(|buf, _| encode_method(buf, self.link.id, &m));
        }
    }
}

impl Connection {
    /// Handles a method (without content) on an open channel.
    pub(crate) fn handle_method(&mut self, ch: u16, method: &Method) -> Result<(), AmqpError> {
        if !method.sent_by_client() {
            return Err(AmqpError::new(
                reply_code::COMMAND_INVALID,
                "unimplemented method",
            ));
        }
        match method {
            Method::ChannelOpen(_) => Err(AmqpError::new(
                reply_code::CHANNEL_ERROR,
                "second 'channel.open' seen",
            )),
            Method::ChannelClose(_) => {
                self.send(ch, ChannelCloseOk {}.into());
                self.drop_channel_now(ch);
                Ok(())
            }
            // Close-ok for a close we never sent, or a flow-ok (we never send
            // channel.flow): RabbitMQ's catch-all.
            Method::ChannelCloseOk(_) | Method::ChannelFlowOk(_) => Err(AmqpError::new(
                reply_code::COMMAND_INVALID,
                "unimplemented method",
            )),
            Method::ChannelFlow(f) => {
                if !f.active {
                    return Err(AmqpError::new(reply_code::NOT_IMPLEMENTED, "active=false"));
                }
                self.send(ch, ChannelFlowOk { active: true }.into());
                Ok(())
            }
            Method::AccessRequest(_) => {
                self.send(ch, AccessRequestOk { ticket: 1 }.into());
                Ok(())
            }
            Method::ExchangeDeclare(m) => self.exchange_declare(ch, m),
            Method::ExchangeDelete(m) => self.exchange_delete(ch, m),
            Method::ExchangeBind(m) => self.exchange_bind(ch, m),
            Method::ExchangeUnbind(m) => self.exchange_unbind(ch, m),
            Method::QueueDeclare(m) => self.queue_declare(ch, m),
            Method::QueueBind(m) => self.queue_bind(ch, m),
            Method::QueueUnbind(m) => self.queue_unbind(ch, m),
            Method::QueuePurge(m) => self.queue_purge(ch, m),
            Method::QueueDelete(m) => self.queue_delete(ch, m),
            Method::BasicQos(m) => self.basic_qos(ch, m),
            Method::BasicConsume(m) => self.basic_consume(ch, m),
            Method::BasicCancel(m) => self.basic_cancel(ch, m),
            Method::BasicGet(m) => self.basic_get(ch, m),
            Method::BasicAck(m) => self.basic_ack(ch, m.delivery_tag, m.multiple),
            Method::BasicNack(m) => self.basic_nack(ch, m.delivery_tag, m.multiple, m.requeue),
            Method::BasicReject(m) => self.basic_nack(ch, m.delivery_tag, false, m.requeue),
            Method::BasicRecover(m) => self.basic_recover(ch, m.requeue, true),
            Method::BasicRecoverAsync(m) => self.basic_recover(ch, m.requeue, false),
            Method::ConfirmSelect(m) => self.confirm_select(ch, m),
            Method::TxSelect(_) => self.tx_select(ch),
            Method::TxCommit(_) => self.tx_commit(ch),
            Method::TxRollback(_) => self.tx_rollback(ch),
            // Connection-class methods on a channel.
            _ => Err(AmqpError::new(
                reply_code::COMMAND_INVALID,
                "unimplemented method",
            )),
        }
    }

    /// Handles a content-bearing method from the client (basic.publish).
    pub(crate) fn handle_content(&mut self, ch: u16, c: Content) -> Result<(), AmqpError> {
        match &c.method {
            Method::BasicPublish(p) => {
                let p = p.clone();
                self.basic_publish(ch, p, c)
                    .map_err(|e| e.on(BasicPublish::CLASS_ID, BasicPublish::METHOD_ID))
            }
            m => Err(
                AmqpError::new(reply_code::COMMAND_INVALID, "unimplemented method").caused_by(m),
            ),
        }
    }

    /// Client-initiated channel.close: release and forget the channel now.
    fn drop_channel_now(&mut self, id: u16) {
        if let Some(Some(ch)) = self.channels.get_mut(id as usize) {
            ch.release(&self.vhost, &mut self.fx);
        }
        if let Some(slot) = self.channels.get_mut(id as usize)
            && slot.take().is_some()
        {
            self.open_channels -= 1;
            self.forget_channel(id);
        }
    }

    pub(crate) fn confirm_select(&mut self, ch: u16, m: &ConfirmSelect) -> Result<(), AmqpError> {
        let c = self.channel(ch);
        if c.tx.is_some() {
            return Err(AmqpError::channel(
                reply_code::PRECONDITION_FAILED,
                "cannot switch from tx to confirm mode",
            ));
        }
        if c.confirms.is_none() {
            c.confirms = Some(Confirms::default());
            c.link
                .confirm
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if !m.nowait {
            self.send(ch, ConfirmSelectOk {}.into());
        }
        Ok(())
    }

    pub(crate) fn tx_select(&mut self, ch: u16) -> Result<(), AmqpError> {
        let c = self.channel(ch);
        if c.confirms.is_some() {
            return Err(AmqpError::channel(
                reply_code::PRECONDITION_FAILED,
                "cannot switch from confirm to tx mode",
            ));
        }
        if c.tx.is_none() {
            c.tx = Some(Vec::new());
            c.link
                .transactional
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.send(ch, TxSelectOk {}.into());
        Ok(())
    }

    fn not_transactional() -> AmqpError {
        AmqpError::channel(
            reply_code::PRECONDITION_FAILED,
            "channel is not transactional",
        )
    }

    pub(crate) fn tx_commit(&mut self, ch: u16) -> Result<(), AmqpError> {
        self.tx_ticket = 0;
        let ops = match &mut self.channel(ch).tx {
            Some(ops) => std::mem::take(ops),
            None => return Err(Self::not_transactional()),
        };
        for op in ops {
            match op {
                TxOp::Publish(pc) => {
                    let (p, c) = *pc;
                    // The exchange may have gone since the publish: 404 at commit.
                    let ex = self.vhost.existing_exchange(&p.exchange)?;
                    self.route_and_enqueue(ch, &p, c, ex)?
                }
                TxOp::Ack { tags } => {
                    let taken = self.take_tags(ch, &tags);
                    self.redispatch(ch, &taken);
                }
                TxOp::Nack { tags, requeue } => {
                    let taken = self.take_tags(ch, &tags);
                    self.settle_nack(ch, taken, requeue);
                }
            }
        }
        // Persistent messages of the transaction are on disk before commit-ok goes out.
        match std::mem::take(&mut self.tx_ticket) {
            0 => self.send(ch, TxCommitOk {}.into()),
            ticket => {
                self.deferred.push((ticket, ch, TxCommitOk {}.into()));
                self.store_waiting = true;
            }
        }
        Ok(())
    }

    pub(crate) fn tx_rollback(&mut self, ch: u16) -> Result<(), AmqpError> {
        match &mut self.channel(ch).tx {
            Some(ops) => ops.clear(),
            None => return Err(Self::not_transactional()),
        }
        self.send(ch, TxRollbackOk {}.into());
        Ok(())
    }

    /// The delivery tags a transactional ack/nack/reject settles, checked now: 406 for
    /// a tag that is not unacked or that the transaction already settles.
    pub(crate) fn claim_tags(
        &mut self,
        ch: u16,
        tag: u64,
        multiple: bool,
    ) -> Result<Vec<u64>, AmqpError> {
        let channel = self.channel(ch);
        let held: Vec<u64> = channel
            .tx
            .iter()
            .flatten()
            .flat_map(|op| op.tags().iter().copied())
            .collect();
        let d = channel.link.deliveries.lock().unwrap();
        let open = |t: u64| !held.contains(&t);
        let known = d.unacked.iter().any(|u| u.tag == tag) && open(tag);
        let everything = multiple && tag == 0;
        if !known && !everything {
            return Err(AmqpError::channel(
                reply_code::PRECONDITION_FAILED,
                format!("unknown delivery tag {tag}"),
            ));
        }
        Ok(if multiple {
            d.unacked
                .iter()
                .map(|u| u.tag)
                .filter(|&t| (tag == 0 || t <= tag) && open(t))
                .collect()
        } else {
            vec![tag]
        })
    }

    /// Resolves a queue name argument: empty means the channel's last declared queue.
    pub(crate) fn queue_name(&mut self, ch: u16, name: &ShortStr) -> Result<ShortStr, AmqpError> {
        if !name.is_empty() {
            return Ok(name.clone());
        }
        self.channel(ch).last_queue.clone().ok_or_else(|| {
            AmqpError::channel(reply_code::NOT_FOUND, "no previously declared queue")
        })
    }

    /// The queue and routing key of a queue.bind/unbind: an empty queue name means the
    /// channel's last declared queue, and then an empty routing key means its name too.
    pub(crate) fn binding_queue(
        &mut self,
        ch: u16,
        queue: &ShortStr,
        routing_key: &ShortStr,
    ) -> Result<(ShortStr, ShortStr), AmqpError> {
        let name = self.queue_name(ch, queue)?;
        let key = if queue.is_empty() && routing_key.is_empty() {
            name.clone()
        } else {
            routing_key.clone()
        };
        Ok((name, key))
    }
}
