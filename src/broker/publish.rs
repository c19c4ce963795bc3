//! Publishing from outside AMQP (the management API's `exchanges/{vhost}/{name}/publish`):
//! the same routing and enqueueing as basic.publish, without a channel.

use super::deadletter::dead_letter_all;
use super::effects::Effects;
use super::exchange::{Props, RouteInfo};
use super::message::Message;
use super::vhost::VHost;
use crate::protocol::{AmqpError, BasicProperties, EncodedProperties, ShortStr, reply_code};
use bytes::Bytes;
use std::sync::Arc;

/// Routes a message through `exchange` (the default exchange when empty) and enqueues it.
/// Returns whether it reached a queue. The exchange must exist and not be internal.
pub fn publish(
    vhost: &Arc<VHost>,
    exchange: &str,
    routing_key: &str,
    properties: &BasicProperties,
    body: Bytes,
) -> Result<bool, AmqpError> {
    let name = ShortStr::from(exchange);
    let ex = vhost.existing_exchange(&name)?;
    if ex.internal {
        return Err(AmqpError::channel(
            reply_code::ACCESS_REFUSED,
            format!(
                "cannot publish to internal exchange '{exchange}' in vhost '{}'",
                vhost.name
            ),
        ));
    }
    let key = ShortStr::from(routing_key);
    let mut out = Vec::new();
    let mut delayed = Vec::new();
    vhost.route_delaying(
        &ex,
        &[key.as_bytes()],
        RouteInfo::new(properties.headers.as_ref(), Props::Decoded(properties)),
        &mut out,
        &mut delayed,
    );
    let message = Arc::new(Message {
        exchange: name,
        routing_key: key,
        properties: EncodedProperties::encode(properties),
        body,
        bcc: Vec::new(),
    });
    use super::stats::Stat;
    ex.stats.incr(Stat::PublishIn);
    // Held by an x-delayed-message exchange: routed when due (counted as routed now).
    for (dx, delay) in &delayed {
        let m = Arc::new(Message {
            properties: super::delayed::routed_properties(&message.properties, *delay),
            exchange: message.exchange.clone(),
            routing_key: message.routing_key.clone(),
            body: message.body.clone(),
            bcc: Vec::new(),
        });
        vhost.delayed.schedule(vhost, dx, m, *delay, None);
    }
    let routed = !out.is_empty() || !delayed.is_empty();
    if !out.is_empty() {
        ex.stats.incr(Stat::PublishOut);
    }
    let mut fx = Effects::default();
    for q in &out {
        q.publish(message.clone(), &mut fx);
    }
    dead_letter_all(vhost, &mut fx);
    fx.bells.ring();
    Ok(routed)
}
