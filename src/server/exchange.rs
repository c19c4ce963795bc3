//! exchange.declare, delete, bind and unbind.

use super::connection::Connection;
use crate::broker::auth::{Perm, ResourceKind};
use crate::broker::exchange::Destination;
use crate::broker::names::strip_cr_lf;
use crate::broker::vhost::ExchangeSpec;
use crate::protocol::*;

impl Connection {
    pub(crate) fn exchange_declare(
        &mut self,
        ch: u16,
        m: &ExchangeDeclare,
    ) -> Result<(), AmqpError> {
        self.vhost.declare_exchange(ExchangeSpec {
            name: &strip_cr_lf(&m.exchange),
            kind: &m.kind,
            passive: m.passive,
            durable: m.durable,
            auto_delete: m.auto_delete,
            internal: m.internal,
            arguments: &m.arguments,
            access: Some(&mut self.access),
        })?;
        if !m.nowait {
            self.send(ch, ExchangeDeclareOk {}.into());
        }
        Ok(())
    }

    pub(crate) fn exchange_delete(&mut self, ch: u16, m: &ExchangeDelete) -> Result<(), AmqpError> {
        let name = strip_cr_lf(&m.exchange);
        // The default and amq.* exchanges are refused (403) before configure is checked.
        if !name.is_empty() && !name.as_bytes().starts_with(b"amq.") {
            self.access
                .check(Perm::Configure, ResourceKind::Exchange, name.as_bytes())?;
        }
        self.vhost.delete_exchange(&name, m.if_unused)?;
        if !m.nowait {
            self.send(ch, ExchangeDeleteOk {}.into());
        }
        Ok(())
    }

    pub(crate) fn exchange_bind(&mut self, ch: u16, m: &ExchangeBind) -> Result<(), AmqpError> {
        let m = &ExchangeBind {
            source: strip_cr_lf(&m.source),
            destination: strip_cr_lf(&m.destination),
            ..m.clone()
        };
        self.authorize_binding(
            ResourceKind::Exchange,
            &m.destination,
            &m.source,
            &m.routing_key,
        )?;
        // The source is looked up (404) before the destination, as RabbitMQ does.
        self.vhost.existing_exchange(&m.source)?;
        let dest = self.vhost.existing_exchange(&m.destination)?;
        self.vhost.bind(
            &m.source,
            Destination::Exchange(dest),
            &m.routing_key,
            &m.arguments,
        )?;
        if !m.nowait {
            self.send(ch, ExchangeBindOk {}.into());
        }
        Ok(())
    }

    pub(crate) fn exchange_unbind(&mut self, ch: u16, m: &ExchangeUnbind) -> Result<(), AmqpError> {
        let m = &ExchangeUnbind {
            source: strip_cr_lf(&m.source),
            destination: strip_cr_lf(&m.destination),
            ..m.clone()
        };
        self.authorize_binding(
            ResourceKind::Exchange,
            &m.destination,
            &m.source,
            &m.routing_key,
        )?;
        if let Some(dest) = self.vhost.exchange(m.destination.as_bytes()) {
            self.vhost.unbind(
                &m.source,
                Destination::Exchange(dest),
                &m.routing_key,
                &m.arguments,
                || Ok(()),
            )?;
        }
        if !m.nowait {
            self.send(ch, ExchangeUnbindOk {}.into());
        }
        Ok(())
    }
}
