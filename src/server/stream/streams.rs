//! Streams as the stream protocol sees them: a queue with `x-queue-type: stream` in the
//! connection's vhost. Create and delete go through the vhost's queue operations (so the
//! definitions log, AMQP clients and the management API see the same queue); reading and
//! writing go to the queue's [`StreamLog`].

use crate::broker::auth::{Access, Perm, ResourceKind};
use crate::broker::queue::Queue;
use crate::broker::stream::parse_max_age;
use crate::broker::vhost::{QueueSpec, VHost};
use crate::protocol::stream::{Str, code};
use crate::protocol::{FieldTable, FieldValue, LongStr, ShortStr, reply_code};
use crate::store::Store;
use crate::store::stream::StreamLog;
use std::sync::Arc;

/// A stream the connection uses: the queue (to notice its deletion) and its log.
#[derive(Clone)]
pub(crate) struct Stream {
    pub queue: Arc<Queue>,
    pub log: Arc<StreamLog>,
}

/// The stream named `name` in `vhost`, if there is one (a queue of another type is no
/// stream: STREAM_DOES_NOT_EXIST, as RabbitMQ).
pub(crate) fn lookup(vhost: &VHost, store: &Arc<Store>, name: &Str) -> Option<Stream> {
    let queue = vhost.queue(name.as_bytes())?;
    if queue.is_deleted() {
        return None;
    }
    let log = log_of(store, &queue)?;
    Some(Stream { queue, log })
}

/// The log behind a stream queue (`Queue::stream`: the one owner of a stream's log).
fn log_of(_store: &Arc<Store>, queue: &Queue) -> Option<Arc<StreamLog>> {
    queue.stream().map(|s| s.log().clone())
}

/// Create's arguments as queue arguments (rabbit_stream_manager's
/// `stream_queue_arguments`): the known keys with their `x-` names and types; others are
/// ignored. None when a numeric one is not a number or a value is out of range
/// (PRECONDITION_FAILED, as RabbitMQ's `validation_failed`).
pub(crate) fn queue_arguments(arguments: &[(Str, Str)]) -> Option<FieldTable> {
    let mut t = FieldTable::new();
    t.insert("x-queue-type", FieldValue::LongStr(LongStr::from("stream")));
    for (k, v) in arguments {
        let text = v.as_str()?;
        match k.as_bytes() {
            b"max-length-bytes" | b"stream-max-segment-size-bytes" | b"initial-cluster-size" => {
                let n: i64 = text.parse().ok()?;
                if k.as_bytes() == b"initial-cluster-size" && n <= 0 {
                    return None;
                }
                let key = format!("x-{}", k.as_str()?);
                t.insert(key, FieldValue::I64(n));
            }
            b"max-age" => {
                parse_max_age(text.as_bytes())?;
                t.insert("x-max-age", FieldValue::LongStr(LongStr::from(text)));
            }
            b"queue-leader-locator" => {
                if !matches!(
                    text,
                    "client-local" | "balanced" | "random" | "least-leaders"
                ) {
                    return None;
                }
                t.insert(
                    "x-queue-leader-locator",
                    FieldValue::LongStr(LongStr::from(text)),
                );
            }
            _ => {}
        }
    }
    Some(t)
}

/// A name RabbitMQ accepts for a stream (`enforce_correct_name`): not empty, not `amq.`,
/// newlines removed.
fn correct_name(name: &Str) -> Option<ShortStr> {
    crate::broker::super_stream::correct_name(name.as_bytes())
}

/// The Create command: the response code (configure permission first, as RabbitMQ).
pub(crate) fn create(
    vhost: &Arc<VHost>,
    access: &mut Access,
    connection: u64,
    name: &Str,
    arguments: &[(Str, Str)],
) -> u16 {
    let Some(name) = correct_name(name) else {
        return code::PRECONDITION_FAILED;
    };
    if access
        .check(Perm::Configure, ResourceKind::Queue, name.as_bytes())
        .is_err()
    {
        return code::ACCESS_REFUSED;
    }
    let Some(arguments) = queue_arguments(arguments) else {
        return code::PRECONDITION_FAILED;
    };
    let spec = QueueSpec {
        name: &name,
        passive: false,
        durable: true,
        exclusive: false,
        auto_delete: false,
        arguments: &arguments,
        connection,
        access: Some(access),
    };
    // As RabbitMQ: an existing stream declared with the same arguments is
    // STREAM_ALREADY_EXISTS, with other arguments (or a queue of another type)
    // PRECONDITION_FAILED (the declare's equivalence check).
    let existed = vhost.queue(name.as_bytes()).is_some();
    match vhost.declare_queue(spec) {
        Ok(_) if existed => code::STREAM_ALREADY_EXISTS,
        Ok(_) => code::OK,
        Err(e) if e.code == reply_code::ACCESS_REFUSED => code::ACCESS_REFUSED,
        Err(e) if e.code == reply_code::PRECONDITION_FAILED => code::PRECONDITION_FAILED,
        Err(e) => {
            tracing::warn!(stream = %name, error = %e, "cannot create stream");
            code::INTERNAL_ERROR
        }
    }
}

/// The Delete command: the response code. The stream's files go with it.
pub(crate) fn delete(
    vhost: &Arc<VHost>,
    store: &Arc<Store>,
    access: &mut Access,
    connection: u64,
    name: &Str,
) -> u16 {
    if access
        .check(Perm::Configure, ResourceKind::Queue, name.as_bytes())
        .is_err()
    {
        return code::ACCESS_REFUSED;
    }
    let Some(stream) = lookup(vhost, store, name) else {
        return code::STREAM_DOES_NOT_EXIST;
    };
    match vhost.delete_queue(&ShortStr(name.0.clone()), false, false, connection) {
        Ok(_) => {
            stream.log.delete();
            code::OK
        }
        Err(_) => code::STREAM_DOES_NOT_EXIST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_arguments_map_to_queue_arguments() {
        let a = |k: &str, v: &str| (Str::from(k), Str::from(v));
        let t = queue_arguments(&[
            a("max-length-bytes", "1000"),
            a("max-age", "10m"),
            a("stream-max-segment-size-bytes", "500"),
            a("unknown", "x"),
        ])
        .unwrap();
        assert_eq!(
            t.get("x-max-length-bytes").and_then(|v| v.as_i64()),
            Some(1000)
        );
        assert_eq!(t.get("x-max-age").and_then(|v| v.as_str()), Some("10m"));
        assert_eq!(
            t.get("x-queue-type").and_then(|v| v.as_str()),
            Some("stream")
        );
        assert!(t.get("unknown").is_none());
        assert!(queue_arguments(&[a("max-length-bytes", "ten")]).is_none());
        assert!(queue_arguments(&[a("initial-cluster-size", "0")]).is_none());
        assert!(queue_arguments(&[a("max-age", "10x")]).is_none());
        assert!(correct_name(&Str::from("amq.s")).is_none());
        assert!(correct_name(&Str::from("")).is_none());
    }
}
