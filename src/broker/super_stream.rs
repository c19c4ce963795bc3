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
/// bindings with an order before those without, ties in binding order). As RabbitMQ, a
/// stream bound twice is listed twice, and a binding to a queue that is not a stream (or
/// to an exchange) is left out.
pub fn partitions(vhost: &VHost, super_stream: &[u8]) -> Result<Vec<ShortStr>, SuperStreamError> {
    let exchange = vhost
        .exchange(super_stream)
        .ok_or_else(|| not_found(super_stream))?;
    let mut bound: Vec<(Option<i64>, ShortStr)> = exchange
        .bindings()
        .into_iter()
        .filter_map(|b| match b.destination {
            Destination::Queue(q) if q.stream().is_some() && !q.is_deleted() => {
                Some((partition_order(&b.arguments), q.name.clone()))
            }
            _ => None,
        })
        .collect();
    // Stable: `None` (no order) sorts after every `Some`.
    bound.sort_by_key(|(order, _)| (order.is_none(), *order));
    Ok(bound.into_iter().map(|(_, name)| name).collect())
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
