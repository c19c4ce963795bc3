//! queue.declare, bind, unbind, purge and delete.

use super::connection::Connection;
use crate::broker::exchange::Destination;
use crate::broker::vhost::{DIRECT_REPLY_TO, QueueSpec};
use crate::protocol::*;

impl Connection {
    pub(crate) fn queue_declare(&mut self, ch: u16, m: &QueueDeclare) -> Result<(), AmqpError> {
        if m.passive && m.queue == DIRECT_REPLY_TO {
            // The direct reply-to pseudo-queue always "exists".
            if !m.nowait {
                self.send(
                    ch,
                    QueueDeclareOk {
                        queue: m.queue.clone(),
                        message_count: 0,
                        consumer_count: 0,
                    }
                    .into(),
                );
            }
            return Ok(());
        }
        let name = if m.passive && m.queue.is_empty() {
            self.queue_name(ch, &m.queue).unwrap_or_default()
        } else {
            m.queue.clone()
        };
        let (q, message_count, consumer_count) = self.vhost.declare_queue(&QueueSpec {
            name: &name,
            passive: m.passive,
            durable: m.durable,
            exclusive: m.exclusive,
            auto_delete: m.auto_delete,
            arguments: &m.arguments,
            connection: self.id,
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
        let name = self.queue_name(ch, &m.queue)?;
        let q = self.vhost.existing_queue(&name, self.id)?;
        self.vhost.bind(
            &m.exchange,
            Destination::Queue(q),
            &m.routing_key,
            &m.arguments,
        )?;
        if !m.nowait {
            self.send(ch, QueueBindOk {}.into());
        }
        Ok(())
    }

    pub(crate) fn queue_unbind(&mut self, ch: u16, m: &QueueUnbind) -> Result<(), AmqpError> {
        let name = self.queue_name(ch, &m.queue)?;
        if let Some(q) = self.vhost.queue(name.as_bytes()) {
            if !q.accessible_by(self.id) {
                self.vhost.existing_queue(&name, self.id)?;
            }
            self.vhost.unbind(
                &m.exchange,
                Destination::Queue(q),
                &m.routing_key,
                &m.arguments,
            )?;
        }
        self.send(ch, QueueUnbindOk {}.into());
        Ok(())
    }

    pub(crate) fn queue_purge(&mut self, ch: u16, m: &QueuePurge) -> Result<(), AmqpError> {
        let name = self.queue_name(ch, &m.queue)?;
        let q = self.vhost.existing_queue(&name, self.id)?;
        let message_count = q.purge();
        if !m.nowait {
            self.send(ch, QueuePurgeOk { message_count }.into());
        }
        Ok(())
    }

    pub(crate) fn queue_delete(&mut self, ch: u16, m: &QueueDelete) -> Result<(), AmqpError> {
        let name = self.queue_name(ch, &m.queue)?;
        let message_count = self
            .vhost
            .delete_queue(&name, m.if_unused, m.if_empty, self.id)?;
        if !m.nowait {
            self.send(ch, QueueDeleteOk { message_count }.into());
        }
        Ok(())
    }
}
