//! Stream queues (`x-queue-type: stream`): an append-only, retained log that consumers
//! read from an offset of their choosing, as RabbitMQ 3.10's `rabbit_stream_queue`.
//!
//! A stream is a [`Queue`](super::queue::Queue) like any other to the handlers: publish,
//! consume, cancel, ack and delete go through the queue's interface, which hands them here
//! when the queue was declared as a stream (`Queue::stream`). What differs:
//!
//! - **Publish** converts the 0-9-1 message to the AMQP 1.0 format streams store
//!   (`protocol::amqp10::from_amqp091`, as RabbitMQ's `rabbit_msg_record`) and appends it
//!   to the stream's log (`store::stream`), once, whatever its delivery mode. The confirm
//!   waits for the store's ticket: group commit, as for persistent messages.
//! - **Consumers** read; nothing is removed. Each AMQP consumer of a stream has a small
//!   task ([`run_consumer`]) with its own reader position: it reads committed chunks from
//!   the segment files, converts each record back to 0-9-1 with its `x-stream-offset`
//!   header, and delivers through the ordinary `Consumer::try_deliver` (delivery tags,
//!   prefetch, the channel's outbox). An acknowledgement only returns credit: the channel
//!   asks the queue to dispatch, which wakes the stream's consumer tasks.
//! - **Retention** belongs to the log (whole segments, by size and age).
//!
//! Invariant: a consumer task holds no lock across an await; it takes the channel's
//! deliveries lock (inside `try_deliver`) and the outbox's, nothing else.

use super::consumer::Consumer;
use super::effects::Effects;
use super::message::{Message, MessageRef};
use super::queue::{Queue, QueuedMessage};
use crate::protocol::amqp10;
use crate::protocol::{AmqpError, EncodedProperties, FieldTable, FieldValue, ShortStr, reply_code};
use crate::store::stream::{OffsetSpec, Retention, StreamLog};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// RabbitMQ's default segment size for streams (`x-stream-max-segment-size-bytes`).
pub const DEFAULT_SEGMENT_BYTES: u64 = 500_000_000;

/// A stream queue's own part: its log and its consumers' wake-ups.
#[derive(Debug)]
pub struct StreamQueue {
    log: Arc<StreamLog>,
    consumers: Mutex<Vec<Subscription>>,
}

#[derive(Debug)]
struct Subscription {
    consumer: Arc<Consumer>,
    wake: Arc<Notify>,
}

impl StreamQueue {
    pub fn new(log: Arc<StreamLog>) -> Self {
        Self {
            log,
            consumers: Mutex::new(Vec::new()),
        }
    }

    /// The stream's log: what the stream protocol's publishers and readers use directly.
    pub fn log(&self) -> &Arc<StreamLog> {
        &self.log
    }

    /// Appends a message published over AMQP 0-9-1. Always taken (a stream has no
    /// length limit that refuses: retention removes old data instead).
    pub fn publish(&self, message: &MessageRef, fx: &mut Effects) -> bool {
        let props = message.properties.decode().unwrap_or_default();
        let mut entry = bytes::BytesMut::new();
        amqp10::from_amqp091(
            message.exchange.as_bytes(),
            message.routing_key.as_bytes(),
            &props,
            &message.body,
            &mut entry,
        );
        let entry = entry.freeze();
        if let Some(a) = self.log.append(entry, None) {
            fx.ticket = fx.ticket.max(a.ticket);
        }
        true
    }

    /// Applies the retention the arguments and the policies give together: the lower of
    /// argument and policy for `max-length-bytes` (already in `settings`), `max-age` and
    /// `stream-max-segment-size-bytes`, as RabbitMQ's `update_stream_conf`. A lower limit
    /// takes effect at once (whole segments, as always).
    pub fn apply_retention(
        &self,
        arguments: &FieldTable,
        settings: &super::policy::effective::QueueSettings,
        applied: &super::policy::Applied,
    ) {
        let mut r = retention(arguments, settings.max_length_bytes);
        if let Some(age) = applied
            .get("max-age")
            .and_then(|v| v.as_str().and_then(|s| parse_max_age(s.as_bytes())))
        {
            r.max_age = Some(r.max_age.map_or(age, |a| a.min(age)));
        }
        if let Some(n) = applied
            .get("stream-max-segment-size-bytes")
            .and_then(|v| v.as_u64())
            .filter(|n| *n > 0)
        {
            r.max_segment_bytes = r.max_segment_bytes.min(n);
        }
        self.log.set_retention(r);
        self.log.enforce_retention();
    }

    /// Messages in the stream (kept after retention), as declare-ok and the management
    /// API count them.
    pub fn message_count(&self) -> u64 {
        self.log
            .next_offset()
            .saturating_sub(self.log.first_offset())
    }

    /// The levels the management API and Prometheus read: every kept message is ready.
    pub fn levels(&self) -> super::queue::QueueLevels {
        super::queue::QueueLevels {
            ready: self.message_count(),
            ready_bytes: self.log.disk_bytes(),
            paged_out: 0,
            paged_out_bytes: 0,
            consumers: self.consumer_count() as u64,
            dlx: 0,
            dlx_bytes: 0,
        }
    }

    pub fn consumer_count(&self) -> usize {
        self.consumers.lock().unwrap().len()
    }

    pub fn consumers(&self) -> Vec<Arc<Consumer>> {
        self.consumers
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.consumer.clone())
            .collect()
    }

    /// Subscribes an AMQP consumer from the offset its `x-stream-offset` argument names
    /// (default `next`) and starts its task.
    pub fn add_consumer(
        &self,
        queue: &Arc<Queue>,
        consumer: Arc<Consumer>,
        start: OffsetSpec,
        on_added: impl FnOnce(),
    ) {
        let wake = Arc::new(Notify::new());
        let offset = self.log.resolve(start);
        // An offset past the end waits for it: nothing before it is delivered.
        let from = match start {
            OffsetSpec::Offset(n) => n.max(offset),
            _ => offset,
        };
        self.consumers.lock().unwrap().push(Subscription {
            consumer: consumer.clone(),
            wake: wake.clone(),
        });
        on_added();
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(run_consumer(
                Arc::downgrade(queue),
                self.log.clone(),
                consumer,
                wake,
                offset,
                from,
            ));
        }
    }

    pub fn remove_consumer(&self, consumer: &Arc<Consumer>) {
        consumer.cancelled.store(true, Ordering::Relaxed);
        let mut subs = self.consumers.lock().unwrap();
        if let Some(i) = subs.iter().position(|s| Arc::ptr_eq(&s.consumer, consumer)) {
            subs.remove(i).wake.notify_one();
        }
    }

    /// Credit came back (an ack, a drained outbox) or the stream is going away: every
    /// consumer task looks again. `notify_one` keeps a permit, so no wake-up is lost.
    pub fn wake(&self) {
        for s in self.consumers.lock().unwrap().iter() {
            s.wake.notify_one();
        }
    }

    /// The stream is deleted: consumers stop, files go.
    pub fn delete(&self) -> Vec<Arc<Consumer>> {
        let subs = std::mem::take(&mut *self.consumers.lock().unwrap());
        for s in &subs {
            s.consumer.cancelled.store(true, Ordering::Relaxed);
            s.wake.notify_one();
        }
        self.log.delete();
        subs.into_iter().map(|s| s.consumer).collect()
    }
}

/// One AMQP consumer's reading loop: read the next committed chunk, deliver its records
/// while the consumer has credit, wait for credit or for more data.
async fn run_consumer(
    queue: Weak<Queue>,
    log: Arc<StreamLog>,
    consumer: Arc<Consumer>,
    wake: Arc<Notify>,
    start: u64,
    from: u64,
) {
    let mut reader = log.reader(start);
    let mut committed = log.committed();
    // Records of the chunk being delivered, and the next one to deliver.
    let mut records: Vec<(u64, bytes::Bytes)> = Vec::new();
    let mut next = 0usize;
    loop {
        if consumer.cancelled.load(Ordering::Relaxed) {
            return;
        }
        if next == records.len() {
            records.clear();
            next = 0;
            match reader.next_chunk() {
                Ok(Some(chunk)) => match chunk.read() {
                    Ok(bytes) => {
                        records.extend(
                            crate::store::stream::records(&bytes).filter(|(o, _)| *o >= from),
                        );
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read a stream's segment");
                        return;
                    }
                },
                Ok(None) => {
                    tokio::select! {
                        r = committed.changed() => if r.is_err() { return },
                        _ = wake.notified() => {}
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read a stream's segment");
                    return;
                }
            }
        }
        let Some(q) = queue.upgrade() else { return };
        let mut fx = Effects::default();
        let mut stalled = false;
        while next < records.len() {
            let (offset, entry) = &records[next];
            let message = to_delivery(*offset, entry, &q.name);
            let qm = QueuedMessage {
                seq: *offset,
                message,
                redelivered: false,
                expires_at: None,
                level: 0,
                delivery_count: 0,
                persisted: None,
                dedup: None,
            };
            match consumer.try_deliver(&q, qm, &mut fx.bells) {
                Ok(()) => next += 1,
                Err(_) => {
                    stalled = true;
                    break;
                }
            }
        }
        drop(fx);
        drop(q);
        if stalled {
            if consumer.channel.deliveries.lock().unwrap().closed {
                return;
            }
            wake.notified().await;
        }
    }
}

/// A stream record as a 0-9-1 message: its properties with the `x-stream-offset` header
/// added, the body shared with the chunk read. A message that names no exchange and
/// routing key (published over the stream protocol) comes from the default exchange with
/// the stream's name, as RabbitMQ delivers it. A record that is not an AMQP 1.0 message
/// (a stream client may publish any bytes) is delivered whole as the body, with only the
/// offset header, rather than lost (RabbitMQ 3.10 closes the consumer's connection).
fn to_delivery(offset: u64, entry: &bytes::Bytes, stream: &ShortStr) -> MessageRef {
    let c = amqp10::to_amqp091(entry).unwrap_or_else(|_| amqp10::Converted {
        body: entry.clone(),
        ..Default::default()
    });
    let mut props = c.properties;
    amqp10::set_stream_offset(&mut props, offset);
    Arc::new(Message {
        exchange: c.exchange.unwrap_or_default(),
        routing_key: c.routing_key.unwrap_or_else(|| stream.clone()),
        properties: EncodedProperties::encode(&props),
        body: c.body,
        bcc: Vec::new(),
    })
}

/// The stream's retention and segment settings from its declared arguments.
pub fn retention(args: &FieldTable, max_length_bytes: Option<u64>) -> Retention {
    Retention {
        max_bytes: max_length_bytes,
        max_age: args
            .get("x-max-age")
            .and_then(|v| v.as_str())
            .and_then(|s| parse_max_age(s.as_bytes())),
        max_segment_bytes: args
            .get("x-stream-max-segment-size-bytes")
            .and_then(FieldValue::as_i64)
            .filter(|n| *n > 0)
            .map_or(DEFAULT_SEGMENT_BYTES, |n| n as u64),
    }
}

/// `x-max-age`: a positive integer and one unit of `Y M D h m s` (RabbitMQ's
/// `rabbit_amqqueue:check_max_age`).
pub fn parse_max_age(s: &[u8]) -> Option<Duration> {
    let (&unit, digits) = s.split_last()?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    if n == 0 {
        return None;
    }
    let secs = match unit {
        b'Y' => 365 * 86_400,
        b'M' => 30 * 86_400,
        b'D' => 86_400,
        b'h' => 3_600,
        b'm' => 60,
        b's' => 1,
        _ => return None,
    };
    Some(Duration::from_secs(n.saturating_mul(secs)))
}

/// RabbitMQ's checks of a consumer on a stream: acknowledgements and a prefetch are
/// required (credit is what paces a reader); then its `x-stream-offset`.
pub fn check_consumer(
    consumer: &Consumer,
    args: &FieldTable,
    queue: &ShortStr,
    vhost: &str,
) -> Result<OffsetSpec, AmqpError> {
    let resource = format!("queue '{queue}' in vhost '{vhost}'");
    if consumer.prefetch == 0 {
        return Err(AmqpError::channel(
            reply_code::PRECONDITION_FAILED,
            format!("consumer prefetch count is not set for '{resource}'"),
        ));
    }
    if consumer.channel.deliveries.lock().unwrap().global_prefetch != 0 {
        return Err(AmqpError::connection(
            reply_code::NOT_IMPLEMENTED,
            format!("{resource} does not support global qos"),
        ));
    }
    if consumer.no_ack {
        return Err(AmqpError::connection(
            reply_code::NOT_IMPLEMENTED,
            format!("automatic acknowledgement not supported by stream queues {resource}"),
        ));
    }
    if args.get("x-priority").is_some() {
        return Err(AmqpError::channel(
            reply_code::PRECONDITION_FAILED,
            format!("invalid arg 'x-priority' for {resource} of queue type rabbit_stream_queue"),
        ));
    }
    offset_spec(args, queue, vhost)
}

/// Reads a consumer's `x-stream-offset` argument (absent: `next`).
pub fn offset_spec(
    args: &FieldTable,
    queue: &ShortStr,
    vhost: &str,
) -> Result<OffsetSpec, AmqpError> {
    let Some(v) = args.get("x-stream-offset") else {
        return Ok(OffsetSpec::Next);
    };
    let invalid = || {
        let value = match v {
            FieldValue::LongStr(s) => format!("<<\"{}\">>", String::from_utf8_lossy(s.as_bytes())),
            other => format!("{other:?}"),
        };
        AmqpError::channel(
            reply_code::PRECONDITION_FAILED,
            format!(
                "invalid arg 'x-stream-offset' for queue '{queue}' in vhost '{vhost}': {{invalid_stream_offset_arg,{{{},{value}}}}}",
                super::vhost::type_name(v)
            ),
        )
    };
    Ok(match v {
        FieldValue::LongStr(s) => match s.as_bytes() {
            b"first" => OffsetSpec::First,
            b"last" => OffsetSpec::Last,
            b"next" => OffsetSpec::Next,
            other => {
                let age = parse_max_age(other).ok_or_else(invalid)?;
                OffsetSpec::Timestamp(now_ms().saturating_sub(age.as_millis() as i64))
            }
        },
        FieldValue::Timestamp(secs) => OffsetSpec::Timestamp((*secs as i64).saturating_mul(1000)),
        FieldValue::Bool(_) => return Err(invalid()),
        other => match other.as_i64() {
            Some(n) if n >= 0 => OffsetSpec::Offset(n as u64),
            Some(_) => OffsetSpec::First,
            None => return Err(invalid()),
        },
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_that_is_not_amqp_1_0_is_delivered_whole() {
        let raw = bytes::Bytes::from_static(b"\xffnot an AMQP 1.0 message");
        let m = to_delivery(7, &raw, &ShortStr::from("s"));
        assert_eq!(m.body, raw);
        assert_eq!(&m.routing_key, &ShortStr::from("s"));
        let props = m.properties.decode().unwrap();
        let headers = props.headers.unwrap();
        assert_eq!(headers.get("x-stream-offset"), Some(&FieldValue::I64(7)));
    }

    #[test]
    fn max_age_units() {
        for (s, secs) in [
            ("1Y", 365 * 86_400),
            ("2M", 60 * 86_400),
            ("7D", 7 * 86_400),
            ("3h", 10_800),
            ("10m", 600),
            ("30s", 30),
        ] {
            assert_eq!(
                parse_max_age(s.as_bytes()),
                Some(Duration::from_secs(secs)),
                "{s}"
            );
        }
        for bad in [
            "", "s", "0s", "0D", "10", "10x", "-1h", "1.5h", "h1", "1d", "1H", "10 m",
        ] {
            assert_eq!(parse_max_age(bad.as_bytes()), None, "{bad}");
        }
    }
}
