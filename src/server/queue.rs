//! queue.declare, bind, unbind, purge and delete.

use super::connection::Connection;
use crate::broker::auth::{Perm, ResourceKind};
use crate::broker::exchange::{Destination, ExchangeKind};
use crate::broker::names::strip_cr_lf;
use crate::broker::vhost::{DIRECT_REPLY_TO, QueueSpec};
use crate::protocol::*;

impl Connection {
    pub(crate) fn queue_declare(&mut self, ch: u16, m: &QueueDeclare) -> Result<(), AmqpError> {
        let m = &QueueDeclare {
            queue: strip_cr_lf(&m.queue),
            ..m.clone()
        };
        if m.passive && m.queue == DIRECT_REPLY_TO {
            // The direct reply-to pseudo-queue always "exists"; RabbitMQ reports one
            // consumer, whether or not the channel consumes from it.
            if !m.nowait {
                self.send(
                    ch,
                    QueueDeclareOk {
                        queue: m.queue.clone(),
                        message_count: 0,
                        consumer_count: 1,
                    }
                    .into(),
                );
            }
            return Ok(());
        }
        // A passive declare never means "the last declared queue": '' is 404.
        let (q, message_count, consumer_count) = self.vhost.declare_queue(QueueSpec {
            name: &m.queue,
            passive: m.passive,
            durable: m.durable,
            exclusive: m.exclusive,
            auto_delete: m.auto_delete,
            arguments: &m.arguments,
            connection: self.id,
            access: Some(&mut self.access),
        })?;
        self.channel(ch).last_queue = Some(q.name.clone());
        if !m.nowait {
            self.send(
                ch,
                QueueDeclareOk {
                    queue: q.name.clone(),
                    message_count,
                    consumer_count,
                }
                .into(),
            );
        }
        Ok(())
    }

    pub(crate) fn queue_bind(&mut self, ch: u16, m: &QueueBind) -> Result<(), AmqpError> {
        let m = &QueueBind {
            queue: strip_cr_lf(&m.queue),
            exchange: strip_cr_lf(&m.exchange),
            ..m.clone()
        };
        let (name, key) = self.binding_queue(ch, &m.queue, &m.routing_key)?;
        // RabbitMQ's order: write on the queue, default exchange (403), read on the
        // exchange (and its topic permissions), source (404), queue (404), then exclusive
        // access (405).
        self.authorize_binding(ResourceKind::Queue, &name, &m.exchange, &key)?;
        self.vhost.existing_exchange(&m.exchange)?;
        let q = self.vhost.existing_queue(&name, self.id)?;
        self.vhost
            .bind(&m.exchange, Destination::Queue(q), &key, &m.arguments)?;
        if !m.nowait {
            self.send(ch, QueueBindOk {}.into());
        }
        Ok(())
    }

    pub(crate) fn queue_unbind(&mut self, ch: u16, m: &QueueUnbind) -> Result<(), AmqpError> {
        let m = &QueueUnbind {
            queue: strip_cr_lf(&m.queue),
            exchange: strip_cr_lf(&m.exchange),
            ..m.clone()
        };
        let (name, key) = self.binding_queue(ch, &m.queue, &m.routing_key)?;
        self.authorize_binding(ResourceKind::Queue, &name, &m.exchange, &key)?;
        if let Some(q) = self.vhost.queue(name.as_bytes()) {
            // Unbinding what does not exist is fine, even on another connection's
            // exclusive queue; removing an existing binding of one is 405.
            let id = self.id;
            let vhost = &self.vhost;
            vhost.unbind(
                &m.exchange,
                Destination::Queue(q.clone()),
                &key,
                &m.arguments,
                || vhost.existing_queue(&name, id).map(|_| ()),
            )?;
        }
        self.send(ch, QueueUnbindOk {}.into());
        Ok(())
    }

    pub(crate) fn queue_purge(&mut self, ch: u16, m: &QueuePurge) -> Result<(), AmqpError> {
        let name = self.queue_name(ch, &m.queue)?;
        self.access
            .check(Perm::Read, ResourceKind::Queue, name.as_bytes())?;
        let q = self.vhost.existing_queue(&name, self.id)?;
        q.supports("queue.purge")?;
        let message_count = q.purge();
        if !m.nowait {
            self.send(ch, QueuePurgeOk { message_count }.into());
        }
        Ok(())
    }

    pub(crate) fn queue_delete(&mut self, ch: u16, m: &QueueDelete) -> Result<(), AmqpError> {
        let name = self.queue_name(ch, &strip_cr_lf(&m.queue))?;
        self.access
            .check(Perm::Configure, ResourceKind::Queue, name.as_bytes())?;
        let message_count = self
            .vhost
            .delete_queue(&name, m.if_unused, m.if_empty, self.id)?;
        if !m.nowait {
            self.send(ch, QueueDeleteOk { message_count }.into());
        }
        Ok(())
    }

    /// RabbitMQ's binding_action checks, for queue and exchange (un)binds: write on the
    /// destination, the default exchange refused at either end, read on the source, and,
    /// when the source is a topic exchange, the topic read permission on the key.
    pub(crate) fn authorize_binding(
        &mut self,
        kind: ResourceKind,
        destination: &ShortStr,
        source: &ShortStr,
        key: &ShortStr,
    ) -> Result<(), AmqpError> {
        self.access
            .check(Perm::Write, kind, destination.as_bytes())?;
        let dest_exchange = (kind == ResourceKind::Exchange).then_some(destination);
        self.vhost.check_binding_ends(source, dest_exchange)?;
        self.access
            .check(Perm::Read, ResourceKind::Exchange, source.as_bytes())?;
        if let Some(ex) = self.vhost.exchange(source.as_bytes())
            && ex.kind == ExchangeKind::Topic
        {
            self.access
                .check_topic(Perm::Read, source.as_bytes(), key.as_bytes())?;
        }
        Ok(())
    }
}
