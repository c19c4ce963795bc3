//! Super streams, as the stream protocol's Route and Partitions commands see them
//! (RabbitMQ's `rabbit_stream_manager:route/3` and `partitions/2`).
//!
//! A super stream is no object of its own: it is an exchange (named as the super stream,
//! usually direct) whose bindings lead to its partition streams, each binding carrying an
//! `x-stream-partition-order` argument. Everything here reads the vhost's exchanges and
//! bindings; nothing is stored. Socket-free, so the stream listener only maps the answers
//! to response codes.

use super::exchange::{Destination, Props, RouteInfo};
use super::vhost::VHost;
use crate::protocol::{EncodedProperties, FieldTable, ShortStr};

/// The binding argument that orders a super stream's partitions.
pub const PARTITION_ORDER: &str = "x-stream-partition-order";

/// Why a super stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuperStreamError {
    /// No exchange of that name in the vhost (RabbitMQ: `stream_not_found`, answered as
    /// STREAM_DOES_NOT_EXIST).
    #[error("no exchange named {0} (super stream)")]
    NotFound(ShortStr),
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
