//! Super streams, as the stream protocol's Route and Partitions commands see them
//! (RabbitMQ's `rabbit_stream_manager:route/3` and `partitions/2`).
//!
//! A super stream is no object of its own: it is an exchange (named as the super stream,
//! usually direct) whose bindings lead to its partition streams, each binding carrying an
//! `x-stream-partition-order` argument. Everything here reads the vhost's exchanges and
//! bindings; nothing is stored. Socket-free, so the stream listener only maps the answers
//! to response codes. [`create`] and [`delete`] are RabbitMQ 3.13's CreateSuperStream
//! and DeleteSuperStream (`rabbit_stream_manager:create_super_stream/6`): they declare
//! and remove that exchange, its streams and its bindings through the vhost's ordinary
//! operations, so the definitions log, AMQP clients and the management API see them.

use super::exchange::{Destination, Props, RouteInfo};
use super::vhost::{ExchangeSpec, QueueSpec, VHost};
use crate::protocol::{EncodedProperties, FieldTable, FieldValue, ShortStr};
use std::collections::HashSet;
use std::sync::Arc;

/// RabbitMQ's default `max_super_stream_partitions`.
pub const MAX_PARTITIONS: usize = 1000;

/// The binding argument that orders a super stream's partitions.
pub const PARTITION_ORDER: &str = "x-stream-partition-order";

/// Why a super stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuperStreamError {
    /// No exchange of that name in the vhost (RabbitMQ: `stream_not_found`, answered as
    /// STREAM_DOES_NOT_EXIST).
    #[error("no exchange named {0} (super stream)")]
    NotFound(ShortStr),
    /// RabbitMQ's `validation_failed` (PRECONDITION_FAILED): a bad name, duplicate
    /// partitions, lists of different lengths, too many partitions, the vhost's queue
    /// limit.
    #[error("{0}")]
    Invalid(String),
    /// RabbitMQ's `reference_already_exists` (STREAM_ALREADY_EXISTS): the exchange or one
    /// of the streams exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// Anything else (INTERNAL_ERROR), after undoing what was created.
    #[error("{0}")]
    Internal(String),
}

/// A name RabbitMQ's stream plugin accepts (`enforce_correct_name`): CR and LF removed,
/// then not empty and not `amq.`.
pub fn correct_name(name: &[u8]) -> Option<ShortStr> {
    let cleaned: Vec<u8> = name
        .iter()
        .copied()
        .filter(|b| *b != b'\n' && *b != b'\r')
        .collect();
    if cleaned.is_empty() || cleaned.starts_with(b"amq.") || cleaned.len() > 255 {
        return None;
    }
    Some(ShortStr::from(bytes::Bytes::from(cleaned)))
}

/// Creates super stream `name`: a durable direct exchange with `x-super-stream: true`,
/// one stream per partition declared with `queue_arguments`, and a binding from the
/// exchange to `partitions[i]` with key `binding_keys[i]` and `x-stream-partition-order`
/// `i`. Validated first as RabbitMQ validates (nothing is created when it fails); when a
/// step fails after that, what was created is removed again. Permissions are the
/// caller's to check (they are the stream protocol's rule).
pub fn create(
    vhost: &Arc<VHost>,
    name: &ShortStr,
    partitions: &[ShortStr],
    binding_keys: &[ShortStr],
    queue_arguments: &FieldTable,
    connection: u64,
) -> Result<(), SuperStreamError> {
    validate(vhost, name, partitions, binding_keys)?;
    let mut arguments = FieldTable::new();
    arguments.insert("x-super-stream", FieldValue::Bool(true));
    vhost
        .declare_exchange(ExchangeSpec {
            name,
            kind: &ShortStr::from("direct"),
            passive: false,
            durable: true,
            auto_delete: false,
            internal: false,
            arguments: &arguments,
            access: None,
        })
        .map_err(|e| SuperStreamError::Internal(e.text.to_string()))?;
    // Validated above: every name is correct.
    let names: Vec<ShortStr> = partitions
        .iter()
        .filter_map(|p| correct_name(p.as_bytes()))
        .collect();
    let mut created = Vec::new();
    let result = (|| {
        for p in &names {
            let (q, _, _) = vhost
                .declare_queue(QueueSpec {
                    name: p,
                    passive: false,
                    durable: true,
                    exclusive: false,
                    auto_delete: false,
                    arguments: queue_arguments,
                    connection,
                    access: None,
                })
                .map_err(|e| SuperStreamError::Internal(e.text.to_string()))?;
            created.push(q);
        }
        for (order, (q, key)) in created.iter().zip(binding_keys).enumerate() {
            let mut args = FieldTable::new();
            args.insert(PARTITION_ORDER, FieldValue::I64(order as i64));
            vhost
                .bind(name, Destination::Queue(q.clone()), key, &args)
                .map_err(|e| SuperStreamError::Internal(e.text.to_string()))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = vhost.delete_exchange(name, false);
        for q in &created {
            vhost.remove_queue(q);
        }
    }
    result
}

/// `validate_super_stream_creation`, in RabbitMQ's order.
pub fn validate(
    vhost: &VHost,
    name: &ShortStr,
    partitions: &[ShortStr],
    binding_keys: &[ShortStr],
) -> Result<(), SuperStreamError> {
    use SuperStreamError::{AlreadyExists, Invalid};
    if partitions.len() != binding_keys.len() {
        return Err(Invalid(
            "There must be the same number of partitions and binding keys".into(),
        ));
    }
    let distinct: HashSet<&[u8]> = partitions.iter().map(|p| p.as_bytes()).collect();
    if distinct.len() != partitions.len() {
        return Err(Invalid("Duplicate partition names found".into()));
    }
    if let Some(bad) = partitions
        .iter()
        .find(|p| correct_name(p.as_bytes()).is_none())
    {
        return Err(Invalid(format!("{bad} is not a correct partition name")));
    }
    if partitions.len() > MAX_PARTITIONS {
        return Err(Invalid(format!(
            "The partition number must not exceed {MAX_PARTITIONS}"
        )));
    }
    let n = partitions.len() as u64;
    if n > 0
        && vhost
            .limit("max-queues")
            .reached(vhost.queue_count() as u64 + n - 1)
    {
        return Err(Invalid(format!(
            "Cannot declare super stream {name} with {n} partition(s) because queue limit in vhost '{}' is reached",
            vhost.name
        )));
    }
    if vhost.exchange(name.as_bytes()).is_some() {
        return Err(AlreadyExists(format!(
            "there is already an exchange named {name}"
        )));
    }
    if let Some(p) = partitions
        .iter()
        .find(|p| vhost.queue(p.as_bytes()).is_some())
    {
        return Err(AlreadyExists(format!("there is already a queue named {p}")));
    }
    Ok(())
}

/// Deletes super stream `name`: its exchange, then every partition listed (the caller
/// read them with [`partitions`] and checked its permissions on them, so a binding added
/// in between deletes nothing it did not check). A partition already gone is skipped, as
/// RabbitMQ logs and goes on.
pub fn delete(vhost: &VHost, name: &ShortStr, partitions: &[ShortStr]) {
    let _ = vhost.delete_exchange(name, false);
    for p in partitions {
        if let Some(q) = vhost.queue(p.as_bytes())
            && q.stream().is_some()
        {
            vhost.remove_queue(&q);
        }
    }
}

/// The index of `stream` in super stream `super_stream`, for single active consumer
/// groups (`rabbit_stream_manager:partition_index/3`): the `x-stream-partition-order` of
/// the first of its bindings (in partition order), else the number after the name's last
/// `-`, else -1. -1 too when the super stream does not exist or does not lead to `stream`
/// (the group is then a plain stream's).
pub fn partition_index(vhost: &VHost, super_stream: &[u8], stream: &[u8]) -> i64 {
    let Some(exchange) = vhost.exchange(super_stream) else {
        return -1;
    };
    let mut bound: Vec<(Option<i64>, ShortStr)> = exchange
        .bindings()
        .into_iter()
        .filter_map(|b| match b.destination {
            Destination::Queue(q)
                if q.stream().is_some() && !q.is_deleted() && q.name.as_bytes() == stream =>
            {
                Some((partition_order(&b.arguments), b.routing_key))
            }
            _ => None,
        })
        .collect();
    bound.sort_by(|(o1, k1), (o2, k2)| (o1.is_none(), o1, k1).cmp(&(o2.is_none(), o2, k2)));
    match bound.first() {
        None => -1,
        Some((Some(order), _)) => *order,
        Some((None, _)) => std::str::from_utf8(stream)
            .ok()
            .and_then(|s| s.rsplit_once('-'))
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(-1),
    }
}

/// The streams a message published to super stream `super_stream` with `routing_key`
/// reaches: the exchange's own routing (its type, exchange-to-exchange bindings and the
/// alternate exchange, as `rabbit_exchange:route/2`), keeping only queues that are
/// streams, each once, sorted by name (RabbitMQ's route `usort`s the queue names). An
/// empty list when nothing matches: RabbitMQ answers `no_route` with OK and no streams.
pub fn route(
    vhost: &VHost,
    super_stream: &[u8],
    routing_key: &[u8],
) -> Result<Vec<ShortStr>, SuperStreamError> {
    let exchange = vhost
        .exchange(super_stream)
        .ok_or_else(|| not_found(super_stream))?;
    let properties = EncodedProperties::default();
    let info = RouteInfo::new(None, Props::Encoded(&properties));
    let mut queues = Vec::new();
    vhost.route(&exchange, &[routing_key], info, &mut queues);
    let mut names: Vec<ShortStr> = queues
        .iter()
        .filter(|q| q.stream().is_some() && !q.is_deleted())
        .map(|q| q.name.clone())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Every stream bound to super stream `super_stream`, one entry per binding, ordered by
/// the binding's `x-stream-partition-order` (RabbitMQ's `sort_partitions`: a stable sort,
/// bindings with an order before those without), ties by routing key then stream name (the
/// order RabbitMQ 3.10 lists a source's bindings in, its route table being an ordered set
/// keyed on source, key, destination). As RabbitMQ, a
/// stream bound twice is listed twice, and a binding to a queue that is not a stream (or
/// to an exchange) is left out.
pub fn partitions(vhost: &VHost, super_stream: &[u8]) -> Result<Vec<ShortStr>, SuperStreamError> {
    let exchange = vhost
        .exchange(super_stream)
        .ok_or_else(|| not_found(super_stream))?;
    let bound: Vec<Partition> = exchange
        .bindings()
        .into_iter()
        .filter_map(|b| match b.destination {
            Destination::Queue(q) if q.stream().is_some() && !q.is_deleted() => {
                Some((partition_order(&b.arguments), b.routing_key, q.name.clone()))
            }
            _ => None,
        })
        .collect();
    Ok(in_partition_order(bound))
}

/// A binding to a partition: its order, routing key and stream.
type Partition = (Option<i64>, ShortStr, ShortStr);

/// By order, those without one last, then by routing key and stream name.
fn in_partition_order(mut bound: Vec<Partition>) -> Vec<ShortStr> {
    bound.sort_by(|(o1, k1, n1), (o2, k2, n2)| {
        (o1.is_none(), o1, k1, n1).cmp(&(o2.is_none(), o2, k2, n2))
    });
    bound.into_iter().map(|(_, _, name)| name).collect()
}

/// A binding's `x-stream-partition-order`: any integer type, or text holding an integer
/// (RabbitMQ coerces with `rabbit_data_coercion:to_integer`). Anything else counts as
/// absent.
fn partition_order(arguments: &FieldTable) -> Option<i64> {
    let v = arguments.get(PARTITION_ORDER)?;
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn not_found(name: &[u8]) -> SuperStreamError {
    SuperStreamError::NotFound(ShortStr::from(bytes::Bytes::copy_from_slice(name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{FieldValue, LongStr};

    #[test]
    fn ordered_by_partition_order_then_unordered_then_key_and_name() {
        let p = |o: Option<i64>, k: &str, n: &str| (o, ShortStr::from(k), ShortStr::from(n));
        let bound = vec![
            p(None, "k", "y"),
            p(Some(2), "k", "c"),
            p(None, "k", "x"),
            p(Some(0), "k", "a"),
            p(Some(1), "k2", "b1"),
            p(Some(1), "k1", "b2"),
            p(Some(1), "k1", "b1"),
        ];
        let names: Vec<String> = in_partition_order(bound)
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, ["a", "b1", "b2", "b1", "c", "x", "y"]);
    }

    #[test]
    fn partition_order_takes_any_integer_or_integer_text() {
        let order = |v: FieldValue| {
            let mut t = FieldTable::new();
            t.insert(PARTITION_ORDER, v);
            partition_order(&t)
        };
        assert_eq!(order(FieldValue::I8(3)), Some(3));
        assert_eq!(order(FieldValue::I64(-1)), Some(-1));
        assert_eq!(order(FieldValue::LongStr(LongStr::from("7"))), Some(7));
        assert_eq!(order(FieldValue::LongStr(LongStr::from("seven"))), None);
        assert_eq!(partition_order(&FieldTable::new()), None);
    }
}
