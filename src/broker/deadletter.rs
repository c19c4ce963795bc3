//! Dead-lettering, as RabbitMQ does it: the message is republished to the queue's
//! dead-letter exchange with the dead-letter routing key (or its original routing keys,
//! CC included, BCC never), carrying an `x-death` history and the `x-first-death-*`
//! headers; cycles that no rejection broke are dropped.
//!
//! At most once (classic queues, and quorum queues by default) the copy is sent and the
//! message is gone. At least once (a quorum queue's `x-dead-letter-strategy`) the message
//! stays in its queue's log until every target has its copy synced, and is kept among the
//! queue's discards while it cannot be delivered (`broker::discards`).

use super::args::DeadLetterStrategy;
use super::discards::Discarded;
use super::effects::{DeadLetter, DeathReason, Effects};
use super::exchange::{Props, RouteInfo};
use super::message::Message;
use super::queue::{DeadLetterTarget, Queue, QueuedMessage};
use super::vhost::VHost;
use crate::protocol::{EncodedProperties, FieldTable, FieldValue, LongStr, ShortStr};
use crate::store::record::MARK_DISCARDED;
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
    let queue = dl.queue.clone();
    // The queue's settings now (argument or policy): one short lock, taken with no other
    // held, once per dead-lettered message.
    let Some(target) = queue.dead_letter_target() else {
        return;
    };
    if target.strategy != DeadLetterStrategy::AtLeastOnce {
        // At most once: whatever happens to the copy, the message is gone.
        let _ = send_copy(vhost, &queue, &target, &dl.message, dl.reason, &[], fx);
        return;
    }
    // At least once: the move to the discards is a `DeadLettering` command of the queue's
    // log (rabbit_fifo's discard into its dlx state), so that a crash before a target has
    // the copy brings it back among the discards; the final `Discard` follows the copies.
    if let Some(p) = &dl.message.persisted {
        p.log.mark(MARK_DISCARDED + dl.reason.code(), p.seq);
    }
    let d = Discarded::new(dl.message, dl.reason);
    at_least_once(vhost, &queue, &target, d, fx);
}

/// Another attempt at a discard kept by `queue` (see `broker::discards`). Dropped when the
/// queue no longer dead-letters at least once (no dead-letter exchange, another strategy),
/// as RabbitMQ deletes its discards when the queue switches away from at-least-once.
pub(super) fn retry_one(vhost: &VHost, queue: &Arc<Queue>, d: Discarded, fx: &mut Effects) {
    match queue.dead_letter_target() {
        Some(t) if t.strategy == DeadLetterStrategy::AtLeastOnce => {
            at_least_once(vhost, queue, &t, d, fx)
        }
        _ => drop(d),
    }
}

/// Sends a discard's copy to the targets that have not taken one yet. Settles it in the
/// source's log once every target took it (after their copies are synced: the store
/// applies the acknowledgement after the ticket); keeps it among the queue's discards when
/// the exchange is missing, nothing took it, or a target refused it.
fn at_least_once(
    vhost: &VHost,
    queue: &Arc<Queue>,
    target: &DeadLetterTarget,
    mut d: Discarded,
    fx: &mut Effects,
) {
    let before = std::mem::take(&mut fx.ticket);
    let sent = send_copy(vhost, queue, target, &d.message, d.reason, &d.settled, fx);
    d.ticket = d.ticket.max(fx.ticket);
    fx.ticket = fx.ticket.max(before);
    let done = match sent {
        None => false,
        Some(s) => {
            d.settled.extend(s.took);
            !s.refused && !d.settled.is_empty()
        }
    };
    if !done {
        queue.keep_discarded(d);
        return;
    }
    if let Some(p) = d.message.persisted.take() {
        p.settle_after(d.ticket);
    }
}

/// What sending a dead-lettered copy did.
struct Sent {
    /// Target queues that took the copy (by name; collected for at-least-once only).
    took: Vec<ShortStr>,
    /// A target refused it (`reject-publish` on a full queue).
    refused: bool,
}

/// Builds the dead-lettered copy of `qm` (x-death and the x-first-death-* headers) and
/// publishes it to what the queue's dead-letter exchange routes it to, minus `skip` and
/// minus a cycle no rejection broke. None when the exchange does not exist.
fn send_copy(
    vhost: &VHost,
    queue: &Arc<Queue>,
    target: &DeadLetterTarget,
    qm: &QueuedMessage,
    reason: DeathReason,
    skip: &[ShortStr],
    fx: &mut Effects,
) -> Option<Sent> {
    let dlx_name = &target.exchange;
    let dead_letter_routing_key = target.routing_key.clone();
    let Some(dlx) = vhost.exchange(dlx_name.as_bytes()) else {
        debug!(queue = %queue.name, dlx = %dlx_name, "dead-letter exchange missing");
        return None;
    };
    let original = &qm.message;
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
    let death = reason;
    let reason = death.as_str();
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
    let mut rejected = death == DeathReason::Rejected;
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
    // A cycle (back into a queue it died in) with no rejection in it is dropped; targets
    // that took a copy before are not sent another.
    targets.retain(|q| {
        (rejected || !died_in.iter().any(|n| n == q.name.as_bytes()))
            && !skip.iter().any(|n| n.as_bytes() == q.name.as_bytes())
    });
    let mut sent = Sent {
        took: Vec::new(),
        refused: false,
    };
    if targets.is_empty() {
        return Some(sent);
    }
    let message = Arc::new(Message {
        exchange: ShortStr(dlx_name.0.clone()),
        routing_key,
        properties: EncodedProperties::from(&props),
        body: original.body.clone(),
        bcc: Vec::new(),
    });
    let collect = target.strategy == DeadLetterStrategy::AtLeastOnce;
    for q in targets {
        if q.publish(message.clone(), fx) {
            if collect {
                sent.took.push(q.name.clone());
            }
        } else {
            sent.refused = true;
        }
    }
    Some(sent)
}
