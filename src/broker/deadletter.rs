//! Dead-lettering, as RabbitMQ does it: the message is republished to the queue's
//! dead-letter exchange with the dead-letter routing key (or its original routing keys,
//! CC included, BCC never), carrying an `x-death` history and the `x-first-death-*`
//! headers; cycles that no rejection broke are dropped.

use super::args::DeadLetterStrategy;
use super::effects::{DeadLetter, DeathReason, Effects};
use super::exchange::{Props, RouteInfo};
use super::message::Message;
use super::queue::Queue;
use super::vhost::VHost;
use crate::protocol::{EncodedProperties, FieldTable, FieldValue, LongStr, ShortStr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::debug;

/// Dead-letters everything `fx` holds, including what dead-lettering itself causes
/// (a dead-letter queue that overflows, say), up to a bounded depth.
pub fn dead_letter_all(vhost: &VHost, fx: &mut Effects) {
    for _ in 0..16 {
        if fx.dead.is_empty() {
            return;
        }
        for dl in std::mem::take(&mut fx.dead) {
            dead_letter_one(vhost, dl, fx);
        }
    }
    fx.dead.clear();
}

fn str_value(s: &[u8]) -> FieldValue {
    FieldValue::LongStr(LongStr(bytes::Bytes::copy_from_slice(s)))
}

fn entry_str<'a>(t: &'a FieldTable, key: &str) -> Option<&'a [u8]> {
    match t.get(key) {
        Some(FieldValue::LongStr(s)) => Some(s.as_bytes()),
        _ => None,
    }
}

fn dead_letter_one(vhost: &VHost, dl: DeadLetter, fx: &mut Effects) {
    let queue = &dl.queue;
    // The queue's settings now (argument or policy): one short lock, taken with no other
    // held, once per dead-lettered message.
    let Some(target) = queue.dead_letter_target() else {
        return;
    };
    let dlx_name = &target.exchange;
    let dead_letter_routing_key = target.routing_key;
    let Some(dlx) = vhost.exchange(dlx_name.as_bytes()) else {
        debug!(queue = %queue.name, dlx = %dlx_name, "dead-letter exchange missing; message dropped");
        return;
    };
    let original = &dl.message.message;
    let mut props = original.properties.decode().unwrap_or_default();
    let mut headers = props.headers.take().unwrap_or_default();
    if target.delivery_count_header {
        headers.remove(super::quorum::DELIVERY_COUNT);
    }
    // The routing keys it was published with: routing key and CC (recorded in x-death);
    // without a dead-letter routing key it is routed again by those and BCC.
    let bcc: Vec<FieldValue> = original
        .bcc
        .iter()
        .map(|k| FieldValue::LongStr(k.clone()))
        .collect();
    let mut routing_keys = vec![str_value(original.routing_key.as_bytes())];
    if let Some(FieldValue::Array(cc)) = headers.get("CC") {
        routing_keys.extend(cc.iter().cloned());
    }
    if dead_letter_routing_key.is_some() {
        headers.remove("CC");
    }
    let reason = dl.reason.as_str();
    // RabbitMQ's three cases: no x-death yet (a first entry, fields in its own order,
    // plus the x-first-death-* headers), an x-death array (the matching entry counted
    // up or a new one, with sorted fields), or an x-death of another type (replaced by a
    // first entry, without x-first-death-*).
    let previous = headers.remove("x-death");
    let first_death = previous.is_none();
    let had_array = matches!(previous, Some(FieldValue::Array(_)));
    let mut deaths: Vec<FieldValue> = match previous {
        Some(FieldValue::Array(a)) => a,
        _ => Vec::new(),
    };
    let same = |t: &FieldTable| {
        entry_str(t, "queue") == Some(queue.name.as_bytes())
            && entry_str(t, "reason") == Some(reason.as_bytes())
    };
    let existing = deaths
        .iter()
        .position(|d| matches!(d, FieldValue::Table(t) if same(t)));
    let expiration = props.expiration.take();
    let sort = |t: &mut FieldTable| t.0.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    match existing {
        Some(i) => {
            let mut d = deaths.remove(i);
            if let FieldValue::Table(t) = &mut d {
                // Counted up as a long, whatever type the client sent.
                let n = t.get("count").and_then(|c| c.as_i64()).unwrap_or(0);
                let count = FieldValue::I64(n + 1);
                t.insert("count", count);
                sort(t);
            }
            deaths.insert(0, d);
        }
        None => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut t = FieldTable::new();
            t.insert("count", FieldValue::I64(1));
            t.insert("reason", str_value(reason.as_bytes()));
            t.insert("queue", str_value(queue.name.as_bytes()));
            t.insert("time", FieldValue::Timestamp(now));
            t.insert("exchange", str_value(original.exchange.as_bytes()));
            t.insert("routing-keys", FieldValue::Array(routing_keys.clone()));
            if let Some(e) = &expiration {
                t.insert("original-expiration", str_value(e.as_bytes()));
            }
            if had_array {
                sort(&mut t);
            }
            deaths.insert(0, FieldValue::Table(t));
        }
    }
    if first_death {
        headers.insert("x-first-death-queue", str_value(queue.name.as_bytes()));
        headers.insert("x-first-death-reason", str_value(reason.as_bytes()));
        headers.insert(
            "x-first-death-exchange",
            str_value(original.exchange.as_bytes()),
        );
    }
    // Queues this message already died in, and whether a rejection is in its history.
    let mut died_in: Vec<Vec<u8>> = Vec::new();
    let mut rejected = dl.reason == DeathReason::Rejected;
    for d in &deaths {
        if let FieldValue::Table(t) = d {
            if let Some(q) = entry_str(t, "queue") {
                died_in.push(q.to_vec());
            }
            rejected |= entry_str(t, "reason") == Some(b"rejected");
        }
    }
    headers.insert("x-death", FieldValue::Array(deaths));
    // RabbitMQ sorts a dead-lettered message's headers by name (a stable sort).
    sort(&mut headers);
    let routing_key = dead_letter_routing_key
        .clone()
        .unwrap_or_else(|| original.routing_key.clone());
    let keys: Vec<Vec<u8>> = match &dead_letter_routing_key {
        Some(k) => vec![k.as_bytes().to_vec()],
        None => routing_keys
            .iter()
            .chain(bcc.iter())
            .filter_map(|v| match v {
                FieldValue::LongStr(s) => Some(s.as_bytes().to_vec()),
                _ => None,
            })
            .collect(),
    };
    props.headers = Some(headers);
    let key_refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
    let mut targets: Vec<Arc<Queue>> = Vec::new();
    vhost.route(
        &dlx,
        &key_refs,
        RouteInfo::new(props.headers.as_ref(), Props::Decoded(&props)),
        &mut targets,
    );
    // A cycle (back into a queue it died in) with no rejection in it is dropped.
    targets.retain(|q| rejected || !died_in.iter().any(|n| n == q.name.as_bytes()));
    if targets.is_empty() {
        return;
    }
    let message = Arc::new(Message {
        exchange: ShortStr(dlx_name.0.clone()),
        routing_key,
        properties: EncodedProperties::from(&props),
        body: original.body.clone(),
        bcc: Vec::new(),
    });
    // At least once: the source acknowledges its copy only after the targets' copies are
    // synced (the publishes' store ticket), so a crash in between keeps it there.
    let before = std::mem::take(&mut fx.ticket);
    for q in targets {
        q.publish(message.clone(), fx);
    }
    let ticket = fx.ticket;
    fx.ticket = fx.ticket.max(before);
    if target.strategy == DeadLetterStrategy::AtLeastOnce
        && let Some(p) = dl.message.persisted
    {
        p.settle_after(ticket);
    }
}
