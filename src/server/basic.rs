//! The basic class: publish (routing and enqueueing inline), consume, cancel, get, ack,
//! nack, reject, recover and qos.

use super::channel::TxOp;
use super::connection::Connection;
use crate::broker::ack_timeout;
use crate::broker::args::{QueueType, message_expiration};
use crate::broker::auth::{Perm, ResourceKind};
use crate::broker::consumer::{Consumer, ConsumerEntry, Unacked};
use crate::broker::effects::DeathReason;
use crate::broker::exchange::Exchange;
use crate::broker::exchange::ExchangeKind;
use crate::broker::exchange::{Props, RouteInfo};
use crate::broker::message::Message;
use crate::broker::names;
use crate::broker::queue::{ConsumeRefused, Queue, requeue_unacked};
use crate::broker::stats::Stat;
use crate::broker::vhost::{DIRECT_REPLY_TO, type_name};
use crate::protocol::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32};

/// CC and BCC routing keys (sender-selected distribution), if the headers carry any.
fn extra_keys(headers: &FieldTable, name: &str) -> Result<Vec<LongStr>, AmqpError> {
    match headers.get(name) {
        None => Ok(Vec::new()),
        Some(FieldValue::Array(items)) => Ok(items
            .iter()
            .filter_map(|v| match v {
                FieldValue::LongStr(s) => Some(s.clone()),
                _ => None,
            })
            .collect()),
        Some(other) => Err(AmqpError::channel(
            reply_code::PRECONDITION_FAILED,
            format!(
                "invalid message: {{unacceptable_type_in_header,\"{name}\",{}}}",
                type_name(other)
            ),
        )),
    }
}

impl Connection {
    /// The exchange a publish names: the last one published to when the name matches and
    /// it is still in its vhost, else a lookup (404 when missing) that becomes the cached one.
    fn publish_exchange(&mut self, name: &ShortStr) -> Result<Arc<Exchange>, AmqpError> {
        if let Some(ex) = &self.last_exchange
            && ex.name.as_bytes() == name.as_bytes()
            && !ex.is_removed()
        {
            return Ok(ex.clone());
        }
        let ex = self.vhost.existing_exchange(name)?;
        self.last_exchange = Some(ex.clone());
        Ok(ex)
    }

    pub(crate) fn basic_publish(
        &mut self,
        ch: u16,
        p: BasicPublish,
        content: Content,
    ) -> Result<(), AmqpError> {
        if p.immediate {
            return Err(AmqpError::connection(
                reply_code::NOT_IMPLEMENTED,
                "immediate=true",
            ));
        }
        if self.shared.alarm.borrow().is_some() {
            self.must_block = true;
        }
        self.access
            .check(Perm::Write, ResourceKind::Exchange, p.exchange.as_bytes())?;
        let ex = self.publish_exchange(&p.exchange)?;
        if ex.internal {
            return Err(AmqpError::channel(
                reply_code::ACCESS_REFUSED,
                format!(
                    "cannot publish to internal exchange '{}' in vhost '{}'",
                    p.exchange, self.vhost.name
                ),
            ));
        }
        if ex.kind == ExchangeKind::Topic {
            self.access
                .check_topic(Perm::Write, ex.name.as_bytes(), p.routing_key.as_bytes())?;
        }
        if let Some(user_id) = content.properties.user_id()
            && user_id != self.user.name.as_str()
            && !self.user.has_tag("impersonator")
        {
            return Err(AmqpError::channel(
                reply_code::PRECONDITION_FAILED,
                format!(
                    "user_id property set to '{user_id}' but authenticated user was '{}'",
                    self.user.name
                ),
            ));
        }
        // RabbitMQ's order: exchange (404), internal (403), user_id, expiration, then
        // the message itself (delivery mode).
        if let Some(e) = content.properties.expiration() {
            message_expiration(&e)?;
        }
        if let Some(mode) = content.properties.delivery_mode()
            && mode != 1
            && mode != 2
        {
            return Err(AmqpError::channel(
                reply_code::PRECONDITION_FAILED,
                format!("invalid message: {{delivery_mode_unknown,{mode}}}"),
            ));
        }
        let mut content = content;
        if content
            .properties
            .reply_to()
            .is_some_and(|r| r == DIRECT_REPLY_TO)
        {
            // The reply address of this channel's direct reply-to consumer.
            let Some((address, _)) = &self.channel(ch).direct_reply else {
                return Err(AmqpError::channel(
                    reply_code::PRECONDITION_FAILED,
                    "fast reply consumer does not exist",
                ));
            };
            let mut all = content.properties.decode().unwrap_or_default();
            all.reply_to = Some(address.clone());
            content.properties = EncodedProperties::from(&all);
        }
        if let Some(ops) = &mut self.channel(ch).tx {
            ops.push(TxOp::Publish(Box::new((p, content))));
            return Ok(());
        }
        self.route_and_enqueue(ch, &p, content, ex)
    }

    /// Routes a message, enqueues it (delivering inline), returns it if mandatory and
    /// unroutable, and records its confirm.
    pub(crate) fn route_and_enqueue(
        &mut self,
        ch: u16,
        p: &BasicPublish,
        content: Content,
        ex: Arc<Exchange>,
    ) -> Result<(), AmqpError> {
        let mut properties = content.properties;
        let headers = properties.headers();
        let mut out = std::mem::take(&mut self.route_scratch);
        out.clear();
        // x-delayed-message exchanges that hold the message back, with the delay.
        let mut delayed = Vec::new();
        let mut bcc_keys = Vec::new();
        match &headers {
            Some(h) if h.get("CC").is_some() || h.get("BCC").is_some() => {
                let cc = extra_keys(h, "CC")?;
                let bcc = extra_keys(h, "BCC")?;
                let mut keys: Vec<&[u8]> = vec![p.routing_key.as_bytes()];
                keys.extend(cc.iter().chain(bcc.iter()).map(|k| k.as_bytes()));
                let info = RouteInfo::new(Some(h), Props::Encoded(&properties));
                self.vhost
                    .route_delaying(&ex, &keys, info, &mut out, &mut delayed);
                if !bcc.is_empty() || h.get("BCC").is_some() {
                    // BCC never reaches consumers.
                    let mut all = properties.decode().unwrap_or_default();
                    if let Some(t) = &mut all.headers {
                        t.remove("BCC");
                    }
                    properties = EncodedProperties::from(&all);
                }
                bcc_keys = bcc;
            }
            _ => {
                let info = RouteInfo::new(headers.as_ref(), Props::Encoded(&properties));
                let keys = [p.routing_key.as_bytes()];
                self.vhost
                    .route_delaying(&ex, &keys, info, &mut out, &mut delayed)
            }
        }
        let message = Arc::new(Message {
            exchange: p.exchange.clone(),
            routing_key: p.routing_key.clone(),
            properties,
            body: content.body,
            bcc: bcc_keys,
        });
        // Scheduled counts as routed now; `mandatory` is honoured when it falls due.
        let scheduled = !delayed.is_empty();
        for (dx, delay) in delayed {
            let m = Arc::new(Message {
                properties: crate::broker::delayed::routed_properties(&message.properties, delay),
                exchange: message.exchange.clone(),
                routing_key: message.routing_key.clone(),
                body: message.body.clone(),
                bcc: message.bcc.clone(),
            });
            let link = p.mandatory.then(|| self.channel(ch).link.clone());
            let ticket = self
                .vhost
                .delayed
                .schedule(&self.vhost, &dx, m, delay, link.as_ref());
            self.fx.ticket = self.fx.ticket.max(ticket);
        }
        let mut routed = !out.is_empty();
        if !routed
            && p.exchange.is_empty()
            && p.routing_key
                .as_bytes()
                .starts_with(DIRECT_REPLY_TO.as_bytes())
            && let Some(consumer) = self
                .vhost
                .direct_reply
                .get(&p.routing_key)
                .map(|c| c.clone())
        {
            routed = consumer.deliver_no_ack(&message, &mut self.fx.bells);
        }
        let link = &self.channel(ch).link;
        link.sizes.observe(message.body.len() as u64);
        let link_stats = &link.stats;
        link_stats.incr(Stat::Publish);
        ex.stats.incr(Stat::PublishIn);
        if routed {
            ex.stats.incr(Stat::PublishOut);
        } else if scheduled {
        } else if p.mandatory {
            link_stats.incr(Stat::ReturnUnroutable);
        } else {
            link_stats.incr(Stat::DropUnroutable);
        }
        if !routed && !scheduled && p.mandatory {
            let m = Method::BasicReturn(BasicReturn {
                reply_code: reply_code::NO_ROUTE,
                reply_text: ShortStr::from_static("NO_ROUTE"),
                exchange: p.exchange.clone(),
                routing_key: p.routing_key.clone(),
            });
            self.outbox
                .push_content(ch, &m, &message.properties, &message.body);
        }
        let mut accepted = true;
        for q in &out {
            accepted &= q.publish(message.clone(), &mut self.fx);
        }
        self.route_scratch = out;
        // The store ticket this publish waits for before its confirm (0: none).
        let ticket = std::mem::take(&mut self.fx.ticket);
        let ticket = if self.shared.store.sync { ticket } else { 0 };
        // A transaction's commit-ok waits for the same (see tx_commit).
        self.tx_ticket = self.tx_ticket.max(ticket);
        let outbox = self.outbox.clone();
        let channel = self.channel(ch);
        if let Some(c) = &mut channel.confirms {
            channel.link.stats.incr(Stat::Confirm);
            c.last_seq += 1;
            let seq = c.last_seq;
            if ticket > 0 || !c.waiting.is_empty() {
                let after = c.waiting.back().map_or(0, |w| w.1);
                c.waiting.push_back((seq, ticket.max(after), accepted));
                self.store_waiting = true;
            } else if accepted {
                c.pending = Some(seq);
                if !self.confirm_dirty.contains(&ch) {
                    self.confirm_dirty.push(ch);
                }
            } else {
                // A queue refused it (x-overflow reject-publish): acks so far, then a nack.
                channel.nack_confirm(seq, &outbox);
            }
        }
        Ok(())
    }

    /// basic.consume from `amq.rabbitmq.reply-to`: a no-ack consumer with a private reply
    /// address instead of a queue.
    fn consume_direct_reply(&mut self, ch: u16, m: &BasicConsume) -> Result<(), AmqpError> {
        if !m.no_ack {
            return Err(AmqpError::channel(
                reply_code::PRECONDITION_FAILED,
                "reply consumer cannot acknowledge",
            ));
        }
        let tag = if m.consumer_tag.is_empty() {
            ShortStr::from(names::consumer_tag())
        } else {
            m.consumer_tag.clone()
        };
        let link = self.channel(ch).link.clone();
        if self.channel(ch).direct_reply.is_some() {
            return Err(AmqpError::channel(
                reply_code::PRECONDITION_FAILED,
                "reply consumer already set",
            ));
        }
        let consumer = Arc::new(Consumer {
            tag: tag.clone(),
            no_ack: true,
            exclusive: false,
            priority: 0,
            prefetch: 0,
            in_flight: AtomicU32::new(0),
            channel: link,
            cancelled: AtomicBool::new(false),
        });
        let address = ShortStr::from(format!("{DIRECT_REPLY_TO}.{}", names::reply_token()));
        self.vhost
            .direct_reply
            .insert(address.clone(), consumer.clone());
        self.channel(ch).direct_reply = Some((address, consumer));
        if !m.nowait {
            self.send(ch, BasicConsumeOk { consumer_tag: tag }.into());
        }
        Ok(())
    }

    pub(crate) fn basic_consume(&mut self, ch: u16, m: &BasicConsume) -> Result<(), AmqpError> {
        if m.queue == DIRECT_REPLY_TO {
            return self.consume_direct_reply(ch, m);
        }
        let name = self.queue_name(ch, &m.queue)?;
        self.access
            .check(Perm::Read, ResourceKind::Queue, name.as_bytes())?;
        let q = self.vhost.existing_queue(&name, self.id)?;
        let tag = if m.consumer_tag.is_empty() {
            ShortStr::from(names::consumer_tag())
        } else {
            m.consumer_tag.clone()
        };
        let priority = match m.arguments.get("x-priority") {
            None => 0,
            Some(v) => v.as_i64().ok_or_else(|| {
                AmqpError::channel(
                    reply_code::PRECONDITION_FAILED,
                    format!(
                        "invalid arg 'x-priority' for queue '{name}' in vhost '{}': \"expected integer, got {}\"",
                        self.vhost.name,
                        type_name(v)
                    ),
                )
            })?,
        };
        // RabbitMQ's other consumer argument checks, in its order: the type of
        // x-cancel-on-ha-failover, then the queue type's own refusals.
        if let Some(v) = m.arguments.get("x-cancel-on-ha-failover")
            && !matches!(v, FieldValue::Bool(_))
        {
            return Err(AmqpError::channel(
                reply_code::PRECONDITION_FAILED,
                format!(
                    "invalid arg 'x-cancel-on-ha-failover' for queue '{name}' in vhost '{}': {{unacceptable_type,{}}}",
                    self.vhost.name,
                    type_name(v)
                ),
            ));
        }
        let queue_type = q.args.queue_type;
        if queue_type != QueueType::Stream && m.arguments.get("x-stream-offset").is_some() {
            return Err(AmqpError::channel(
                reply_code::PRECONDITION_FAILED,
                format!(
                    "invalid arg 'x-stream-offset' for queue '{name}' in vhost '{}' of queue type {}",
                    self.vhost.name,
                    queue_type.module()
                ),
            ));
        }
        let channel = self.channel(ch);
        let prefetch = channel.prefetch_count;
        let link = channel.link.clone();
        let consumer = Arc::new(Consumer {
            tag: tag.clone(),
            no_ack: m.no_ack,
            exclusive: m.exclusive,
            priority,
            prefetch,
            in_flight: AtomicU32::new(0),
            channel: link.clone(),
            cancelled: AtomicBool::new(false),
        });
        {
            let mut d = link.deliveries.lock().unwrap();
            if d.consumers.iter().any(|e| e.consumer.tag == tag) {
                return Err(AmqpError::connection(
                    reply_code::NOT_ALLOWED,
                    format!("attempt to reuse consumer tag '{tag}'"),
                ));
            }
            d.consumers.push(ConsumerEntry {
                consumer: consumer.clone(),
                queue: q.clone(),
            });
        }
        let outbox = self.outbox.clone();
        let ok = (!m.nowait).then(|| Method::BasicConsumeOk(BasicConsumeOk { consumer_tag: tag }));
        let added = q.add_consumer(
            consumer.clone(),
            &m.arguments,
            || {
                if let Some(ok) = &ok {
                    outbox.push(|buf, _| encode_method(buf, ch, ok));
                }
            },
            &mut self.fx,
        );
        if let Err(refused) = added {
            link.deliveries
                .lock()
                .unwrap()
                .consumers
                .retain(|e| !Arc::ptr_eq(&e.consumer, &consumer));
            return Err(match refused {
                ConsumeRefused::ExclusiveInUse => AmqpError::channel(
                    reply_code::ACCESS_REFUSED,
                    format!(
                        "queue '{name}' in vhost '{}' in exclusive use",
                        self.vhost.name
                    ),
                ),
                ConsumeRefused::Deleted => AmqpError::channel(
                    reply_code::NOT_FOUND,
                    format!("no queue '{name}' in vhost '{}'", self.vhost.name),
                ),
                ConsumeRefused::Refused(e) => e,
            });
        }
        Ok(())
    }

    pub(crate) fn basic_cancel(&mut self, ch: u16, m: &BasicCancel) -> Result<(), AmqpError> {
        let channel = self.channel(ch);
        if matches!(&channel.direct_reply, Some((_, c)) if c.tag == m.consumer_tag) {
            let (address, consumer) = channel.direct_reply.take().unwrap();
            consumer
                .cancelled
                .store(true, std::sync::atomic::Ordering::Relaxed);
            self.vhost.direct_reply.remove(&address);
        }
        let link = self.channel(ch).link.clone();
        let entry = {
            let mut d = link.deliveries.lock().unwrap();
            d.consumers
                .iter()
                .position(|e| e.consumer.tag == m.consumer_tag)
                .map(|i| d.consumers.remove(i))
        };
        if let Some(e) = entry
            && e.queue.remove_consumer(&e.consumer, &mut self.fx)
        {
            self.vhost.remove_queue(&e.queue);
        }
        if !m.nowait {
            self.send(
                ch,
                BasicCancelOk {
                    consumer_tag: m.consumer_tag.clone(),
                }
                .into(),
            );
        }
        Ok(())
    }

    pub(crate) fn basic_get(&mut self, ch: u16, m: &BasicGet) -> Result<(), AmqpError> {
        let name = self.queue_name(ch, &m.queue)?;
        self.access
            .check(Perm::Read, ResourceKind::Queue, name.as_bytes())?;
        let q = self.vhost.existing_queue(&name, self.id)?;
        q.supports("basic.get")?;
        let link = self.channel(ch).link.clone();
        let Some((qm, message_count)) = q.get(&mut self.fx) else {
            q.stats.incr(Stat::GetEmpty);
            link.stats.incr(Stat::GetEmpty);
            self.send(ch, BasicGetEmpty {}.into());
            return Ok(());
        };
        let kind = if m.no_ack { Stat::GetNoAck } else { Stat::Get };
        q.stats.incr(kind);
        link.stats.incr(kind);
        if qm.redelivered {
            q.stats.incr(Stat::Redeliver);
            link.stats.incr(Stat::Redeliver);
        }
        let mut d = link.deliveries.lock().unwrap();
        let tag = d.next_tag;
        d.next_tag += 1;
        let method = Method::BasicGetOk(BasicGetOk {
            delivery_tag: tag,
            redelivered: qm.redelivered,
            exchange: qm.message.exchange.clone(),
            routing_key: qm.message.routing_key.clone(),
            message_count,
        });
        self.outbox
            .push_content(ch, &method, &qm.message.properties, &qm.message.body);
        if !m.no_ack {
            qm.mark_delivered();
            q.unacked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let deadline =
                ack_timeout::deadline(q.args.consumer_timeout.unwrap_or(link.consumer_timeout));
            ack_timeout::note_delivery(&link, &mut d, deadline);
            d.unacked.push_back(Unacked {
                tag,
                queue: q,
                message: qm,
                consumer: None,
                deadline,
            });
        }
        Ok(())
    }

    pub(crate) fn basic_ack(&mut self, ch: u16, tag: u64, multiple: bool) -> Result<(), AmqpError> {
        if self.channel(ch).tx.is_some() {
            let tags = self.claim_tags(ch, tag, multiple)?;
            if let Some(ops) = &mut self.channel(ch).tx {
                ops.push(TxOp::Ack { tags });
            }
            return Ok(());
        }
        self.apply_ack(ch, tag, multiple)
    }

    pub(crate) fn basic_nack(
        &mut self,
        ch: u16,
        tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> Result<(), AmqpError> {
        if self.channel(ch).tx.is_some() {
            let tags = self.claim_tags(ch, tag, multiple)?;
            if let Some(ops) = &mut self.channel(ch).tx {
                ops.push(TxOp::Nack { tags, requeue });
            }
            return Ok(());
        }
        self.apply_nack(ch, tag, multiple, requeue)
    }

    fn take_unacked(
        &mut self,
        ch: u16,
        tag: u64,
        multiple: bool,
    ) -> Result<Vec<Unacked>, AmqpError> {
        let link = self.channel(ch).link.clone();
        let taken = link.deliveries.lock().unwrap().take(tag, multiple);
        taken.ok_or_else(|| {
            AmqpError::channel(
                reply_code::PRECONDITION_FAILED,
                format!("unknown delivery tag {tag}"),
            )
        })
    }

    /// Credit came back: let the queues these deliveries came from deliver again (and,
    /// under a global prefetch, the channel's other queues).
    pub(crate) fn redispatch(&mut self, ch: u16, taken: &[Unacked]) {
        let mut seen: Vec<&Arc<Queue>> = Vec::new();
        for u in taken {
            if u.consumer.is_some() && !seen.iter().any(|q| Arc::ptr_eq(q, &u.queue)) {
                seen.push(&u.queue);
            }
        }
        for q in &seen {
            q.dispatch(&mut self.fx);
        }
        if !seen.is_empty() && self.channel(ch).global_prefetch {
            let done: Vec<*const Queue> = seen.iter().map(|q| Arc::as_ptr(q)).collect();
            self.wake_global_prefetch(ch, &done);
        }
    }

    /// The queues of `taken`, when a global prefetch shares credit between the channel's
    /// queues (empty otherwise: nothing to compare against).
    fn queues_of(&mut self, ch: u16, taken: &[Unacked]) -> Vec<*const Queue> {
        if !self.channel(ch).global_prefetch {
            return Vec::new();
        }
        taken.iter().map(|u| Arc::as_ptr(&u.queue)).collect()
    }

    /// Under a global (per-channel) prefetch the credit is shared: every queue this
    /// channel consumes from may deliver again, except those in `done` (already woken,
    /// or requeued into, which dispatches them).
    fn wake_global_prefetch(&mut self, ch: u16, done: &[*const Queue]) {
        let channel = self.channel(ch);
        if !channel.global_prefetch {
            return;
        }
        let queues: Vec<Arc<Queue>> = {
            let d = channel.link.deliveries.lock().unwrap();
            d.consumers
                .iter()
                .filter(|e| !done.contains(&Arc::as_ptr(&e.queue)))
                .map(|e| e.queue.clone())
                .collect()
        };
        for q in queues {
            q.dispatch(&mut self.fx);
        }
    }

    /// Takes the unacked deliveries with these tags (those still there).
    pub(crate) fn take_tags(&mut self, ch: u16, tags: &[u64]) -> Vec<Unacked> {
        let link = self.channel(ch).link.clone();
        let mut d = link.deliveries.lock().unwrap();
        tags.iter()
            .filter_map(|&t| d.take(t, false))
            .flatten()
            .collect()
    }

    pub(crate) fn apply_ack(&mut self, ch: u16, tag: u64, multiple: bool) -> Result<(), AmqpError> {
        let taken = self.take_unacked(ch, tag, multiple)?;
        let link_stats = &self.channel(ch).link.stats;
        link_stats.add(Stat::Ack, taken.len() as u64);
        for u in &taken {
            u.queue.stats.incr(Stat::Ack);
        }
        self.redispatch(ch, &taken);
        Ok(())
    }

    pub(crate) fn apply_nack(
        &mut self,
        ch: u16,
        tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> Result<(), AmqpError> {
        let taken = self.take_unacked(ch, tag, multiple)?;
        for u in &taken {
            u.queue.supports("basic.nack and basic.reject")?;
        }
        self.settle_nack(ch, taken, requeue);
        Ok(())
    }

    pub(crate) fn settle_nack(&mut self, ch: u16, taken: Vec<Unacked>, requeue: bool) {
        if requeue {
            let queues = self.queues_of(ch, &taken);
            requeue_unacked(taken, &mut self.fx);
            self.wake_global_prefetch(ch, &queues);
        } else {
            self.redispatch(ch, &taken);
            for u in taken {
                self.fx
                    .dead_letter(&u.queue, u.message, DeathReason::Rejected);
            }
        }
    }

    pub(crate) fn basic_recover(
        &mut self,
        ch: u16,
        requeue: bool,
        reply: bool,
    ) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::connection(
                reply_code::NOT_IMPLEMENTED,
                "requeue=false",
            ));
        }
        // RabbitMQ answers recover-ok before it redelivers.
        if reply {
            self.send(ch, BasicRecoverOk {}.into());
        }
        let link = self.channel(ch).link.clone();
        let taken = link.deliveries.lock().unwrap().take_all();
        let queues = self.queues_of(ch, &taken);
        requeue_unacked(taken, &mut self.fx);
        self.wake_global_prefetch(ch, &queues);
        Ok(())
    }

    pub(crate) fn basic_qos(&mut self, ch: u16, m: &BasicQos) -> Result<(), AmqpError> {
        if m.prefetch_size != 0 {
            return Err(AmqpError::connection(
                reply_code::NOT_IMPLEMENTED,
                format!("prefetch_size!=0 ({})", m.prefetch_size),
            ));
        }
        let channel = self.channel(ch);
        let link = channel.link.clone();
        let wake = {
            let mut d = link.deliveries.lock().unwrap();
            let wake = if m.global {
                d.global_prefetch = m.prefetch_count;
                channel.global_prefetch = m.prefetch_count != 0;
                true
            } else {
                channel.prefetch_count = m.prefetch_count;
                link.prefetch.store(
                    u32::from(m.prefetch_count),
                    std::sync::atomic::Ordering::Relaxed,
                );
                channel.global_prefetch = false;
                // As RabbitMQ: a per-consumer qos lifts the channel's global limit.
                std::mem::take(&mut d.global_prefetch) != 0
            };
            if wake {
                d.consumers.iter().map(|e| e.queue.clone()).collect()
            } else {
                Vec::new()
            }
        };
        // qos-ok first: deliveries the new limit allows follow it.
        self.send(ch, BasicQosOk {}.into());
        for q in wake {
            q.dispatch(&mut self.fx);
        }
        Ok(())
    }
}
