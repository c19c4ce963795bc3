//! Stream queues (`x-queue-type: stream`) over AMQP 0-9-1 with lapin, as RabbitMQ 3.10
//! runs them: declaration rules and argument validation, consuming with each form of the
//! `x-stream-offset` argument, the `x-stream-offset` header (a long-long) on every
//! delivery, acknowledgements that move credit and remove nothing, several consumers
//! reading independently, the operations streams refuse, and retention by size.
//! docs/STREAM-BEHAVIOUR.md is the table these encode.
//!
//! Every test passes against RabbitMQ 3.10.8 with the stream plugin:
//!
//!     AMQP_TEST_URL=amqp://guest:guest@127.0.0.1:5673/%2f cargo test --test client_stream
//!
//! Without `AMQP_TEST_URL` the tests start an in-process Warren, which does not have
//! streams yet: this file is not part of any default run until it does.

mod common;

use common::{Deliveries, TestBroker, amqp_error, body, confirming_channel, expect_code, table};
use common::{passive, unique, within};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, BasicRejectOptions, QueueDeclareOptions, QueueDeleteOptions,
    QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::{BasicProperties, Channel, Connection};

const DURABLE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

fn int(n: i32) -> AMQPValue {
    AMQPValue::LongInt(n)
}

fn long(n: i64) -> AMQPValue {
    AMQPValue::LongLongInt(n)
}

fn stream_args(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut args = vec![("x-queue-type", text("stream"))];
    args.extend(extra.iter().cloned());
    table(&args)
}

/// Declares a durable stream with `extra` arguments; returns its name.
async fn stream(ch: &Channel, extra: &[(&str, AMQPValue)]) -> String {
    let name = format!("stream-{}", unique());
    ch.queue_declare(name.as_str().into(), DURABLE, stream_args(extra))
        .await
        .unwrap();
    name
}

/// Deletes a stream the test made (the tests share a broker when run against RabbitMQ).
async fn delete(conn: &Connection, name: &str) {
    let ch = conn.create_channel().await.unwrap();
    ch.queue_delete(name.into(), QueueDeleteOptions::default())
        .await
        .unwrap();
}

/// Publishes `bodies` one at a time, each confirmed before the next (so each is stored,
/// and on RabbitMQ written as its own chunk, before the next is sent).
async fn publish_all(ch: &Channel, queue: &str, bodies: &[String]) {
    for b in bodies {
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            b.as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
}

fn bodies(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

/// A consumer on its own channel with `prefetch` and an optional `x-stream-offset`.
async fn reader(
    conn: &Connection,
    queue: &str,
    prefetch: u16,
    offset: Option<AMQPValue>,
) -> (Channel, Deliveries) {
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(prefetch, BasicQosOptions::default())
        .await
        .unwrap();
    let d = consume(&ch, queue, offset).await.expect("consume-ok");
    (ch, d)
}

async fn consume(
    ch: &Channel,
    queue: &str,
    offset: Option<AMQPValue>,
) -> Result<Deliveries, lapin::Error> {
    let args = match offset {
        Some(v) => table(&[("x-stream-offset", v)]),
        None => FieldTable::default(),
    };
    let c = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            args,
        )
        .await?;
    Ok(Deliveries::new(c))
}

/// The delivery's `x-stream-offset` header, which must be a long-long.
fn offset(d: &Delivery) -> i64 {
    match d
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-stream-offset"))
    {
        Some(AMQPValue::LongLongInt(n)) => *n,
        other => panic!("x-stream-offset should be a long-long, got {other:?}"),
    }
}

fn offsets(ds: &[Delivery]) -> Vec<i64> {
    ds.iter().map(offset).collect()
}

fn invalid_arg(arg: &str, q: &str, suffix: &str) -> String {
    format!("PRECONDITION_FAILED - invalid arg '{arg}' for queue '{q}' in vhost '/': {suffix}")
}

fn refused_for_streams(arg: &str, q: &str) -> String {
    format!(
        "PRECONDITION_FAILED - invalid arg '{arg}' for queue '{q}' in vhost '/' of queue type rabbit_stream_queue"
    )
}

fn not_implemented(what: &str, q: &str) -> String {
    format!("NOT_IMPLEMENTED - {what} not supported by stream queues queue '{q}' in vhost '/'")
}

/// Declares stream `q` and returns the 406 reply text it gets.
async fn refused_declaration(
    conn: &Connection,
    q: &str,
    opts: QueueDeclareOptions,
    args: FieldTable,
) -> String {
    let ch = conn.create_channel().await.unwrap();
    let res = ch.queue_declare(q.into(), opts, args).await;
    expect_code(res, 406)
}

#[tokio::test]
async fn declarations_are_checked_as_rabbitmq_checks_streams() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    // (durable, exclusive, auto-delete, the property named in the refusal): auto-delete is
    // reported before exclusive, exclusive before non-durable.
    let properties = [
        (false, false, false, "non-durable"),
        (true, true, false, "exclusive-owner"),
        (true, false, true, "auto-delete"),
        (true, true, true, "auto-delete"),
        (false, true, false, "exclusive-owner"),
    ];
    for (durable, exclusive, auto_delete, property) in properties {
        let q = format!("stream-{}", unique());
        let opts = QueueDeclareOptions {
            durable,
            exclusive,
            auto_delete,
            ..Default::default()
        };
        assert_eq!(
            refused_declaration(&conn, &q, opts, stream_args(&[])).await,
            format!(
                "PRECONDITION_FAILED - invalid property '{property}' for queue '{q}' in vhost '/'"
            )
        );
    }
    // (argument, value, the refusal's suffix; None: refused for streams whatever the value)
    let arguments: [(&str, AMQPValue, Option<&str>); 16] = [
        ("x-max-length-bytes", int(-1), Some("{value_negative,-1}")),
        (
            "x-max-length-bytes",
            text("abc"),
            Some("\"expected integer, got longstr\""),
        ),
        (
            "x-stream-max-segment-size-bytes",
            int(-1),
            Some("{value_negative,-1}"),
        ),
        ("x-initial-cluster-size", int(0), Some("{value_zero,0}")),
        (
            "x-queue-leader-locator",
            text("abc"),
            Some("invalid_queue_locator_arg"),
        ),
        ("x-max-age", text("0s"), Some("invalid_max_age")),
        ("x-max-age", text("1d"), Some("invalid_max_age")),
        ("x-max-age", int(10), Some("{unacceptable_type,signedint}")),
        ("x-max-length", int(1), None),
        ("x-message-ttl", int(1000), None),
        ("x-dead-letter-exchange", text("amq.direct"), None),
        ("x-overflow", text("reject-publish"), None),
        ("x-max-priority", int(5), None),
        ("x-single-active-consumer", AMQPValue::Boolean(true), None),
        ("x-expires", int(10000), None),
        ("x-queue-mode", text("lazy"), None),
    ];
    for (arg, value, suffix) in arguments {
        let q = format!("stream-{}", unique());
        let expected = match suffix {
            Some(suffix) => invalid_arg(arg, &q, suffix),
            None => refused_for_streams(arg, &q),
        };
        let args = stream_args(&[(arg, value)]);
        assert_eq!(
            refused_declaration(&conn, &q, DURABLE, args).await,
            expected
        );
    }
    // Argument errors come before property errors.
    let q = format!("stream-{}", unique());
    let args = stream_args(&[("x-max-length", int(1))]);
    let non_durable = QueueDeclareOptions::default();
    assert_eq!(
        refused_declaration(&conn, &q, non_durable, args).await,
        refused_for_streams("x-max-length", &q)
    );
    assert_eq!(
        refused_declaration(&conn, "", DURABLE, stream_args(&[])).await,
        "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_stream_queue"
    );
}

#[tokio::test]
async fn accepted_arguments_and_redeclaration() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let accepted: Vec<(&str, AMQPValue)> = vec![
        ("x-max-length-bytes", long(1 << 40)),
        ("x-max-length-bytes", int(0)),
        ("x-stream-max-segment-size-bytes", int(1000)),
        ("x-initial-cluster-size", int(3)),
        ("x-queue-leader-locator", text("balanced")),
        ("x-max-age", text("7D")),
        ("x-max-age", text("1Y")),
        ("x-max-age", text("1M")),
        ("x-max-age", text("12h")),
        ("x-max-age", text("10m")),
        ("x-max-age", text("30s")),
    ];
    for (arg, value) in accepted {
        let q = stream(&ch, &[(arg, value.clone())]).await;
        // The same declaration again is fine; a different value of the argument is not.
        ch.queue_declare(q.as_str().into(), DURABLE, stream_args(&[(arg, value)]))
            .await
            .unwrap();
        let ch2 = conn.create_channel().await.unwrap();
        let res = ch2
            .queue_declare(q.as_str().into(), DURABLE, stream_args(&[]))
            .await;
        let got = expect_code(res, 406);
        assert!(
            got.starts_with(&format!(
                "PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{q}' in vhost '/': received none but current is"
            )),
            "{got}"
        );
        delete(&conn, &q).await;
    }
    let q = stream(&ch, &[]).await;
    let ch2 = conn.create_channel().await.unwrap();
    let res = ch2
        .queue_declare(
            q.as_str().into(),
            DURABLE,
            table(&[("x-queue-type", text("classic"))]),
        )
        .await;
    assert_eq!(
        expect_code(res, 406),
        format!(
            "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' in vhost '/': received 'classic' but current is 'stream'"
        )
    );
    let ok = ch
        .queue_declare(q.as_str().into(), passive(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!((ok.message_count(), ok.consumer_count()), (0, 0));
    delete(&conn, &q).await;
}

#[tokio::test]
async fn consume_from_each_offset_form() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let publisher = confirming_channel(&conn).await;
    let all = vec![0, 1, 2, 3, 4, 5];
    // (x-stream-offset, the offsets read: 0-4 exist when the consumer starts, 5 comes after)
    let cases: Vec<(Option<AMQPValue>, Vec<i64>)> = vec![
        (None, vec![5]),
        (Some(text("first")), all.clone()),
        (Some(text("last")), vec![4, 5]),
        (Some(text("next")), vec![5]),
        (Some(long(0)), all.clone()),
        (Some(long(3)), vec![3, 4, 5]),
        (Some(int(3)), vec![3, 4, 5]),
        (Some(AMQPValue::ShortShortInt(4)), vec![4, 5]),
        (Some(long(5)), vec![5]),
        (Some(long(-1)), all.clone()),
        (Some(text("10m")), all.clone()),
        (Some(text("1h")), all.clone()),
        (Some(text("2D")), all.clone()),
        (Some(text("1Y")), all.clone()),
        (Some(AMQPValue::Timestamp(946_684_800)), all.clone()), // 2000-01-01
    ];
    for (arg, expected) in cases {
        let q = stream(&publisher, &[]).await;
        publish_all(&publisher, &q, &bodies(0..5)).await;
        let (ch, mut d) = reader(&conn, &q, 100, arg.clone()).await;
        let mut got = d.take(expected.len() - 1).await;
        publish_all(&publisher, &q, &bodies(5..6)).await;
        got.push(d.next().await);
        d.expect_quiet().await;
        assert_eq!(offsets(&got), expected, "x-stream-offset {arg:?}");
        let want: Vec<String> = expected.iter().map(|o| format!("m{o}")).collect();
        assert_eq!(got.iter().map(body).collect::<Vec<_>>(), want);
        drop(ch);
        delete(&conn, &q).await;
    }
}

#[tokio::test]
async fn bad_offsets_and_consumer_arguments_are_refused() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let setup = conn.create_channel().await.unwrap();
    let q = stream(&setup, &[]).await;
    for bad in ["0s", "10x", "1d"] {
        let ch = conn.create_channel().await.unwrap();
        ch.basic_qos(10, BasicQosOptions::default()).await.unwrap();
        let res = consume(&ch, &q, Some(text(bad))).await;
        assert_eq!(
            expect_code(res.map(drop), 406),
            invalid_arg(
                "x-stream-offset",
                &q,
                &format!("{{invalid_stream_offset_arg,{{longstr,<<\"{bad}\">>}}}}")
            )
        );
    }
    // RabbitMQ 3.10 crashes on these (connection.close 541); a correct broker refuses the
    // argument on the channel.
    for bad in [
        text("abc"),
        text(""),
        AMQPValue::Boolean(true),
        AMQPValue::FieldArray(FieldArray::from(vec![long(1)])),
    ] {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        ch.basic_qos(10, BasicQosOptions::default()).await.unwrap();
        let err = consume(&ch, &q, Some(bad.clone()))
            .await
            .map(drop)
            .expect_err("refused");
        let (code, reply) = amqp_error(&err);
        assert!(
            (code, reply.as_str()) == (541, "INTERNAL_ERROR")
                || (code == 406
                    && reply.starts_with(&format!(
                        "PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue '{q}'"
                    ))),
            "{bad:?}: {code} {reply}"
        );
    }
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(10, BasicQosOptions::default()).await.unwrap();
    let c = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            table(&[("x-priority", int(5))]),
        )
        .await;
    assert_eq!(expect_code(c, 406), refused_for_streams("x-priority", &q));
    // x-stream-offset on a classic queue.
    let classic = format!("classic-{}", unique());
    setup
        .queue_declare(classic.as_str().into(), DURABLE, FieldTable::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(10, BasicQosOptions::default()).await.unwrap();
    let res = consume(&ch, &classic, Some(text("first"))).await.map(drop);
    assert_eq!(
        expect_code(res, 406),
        format!(
            "PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue '{classic}' in vhost '/' of queue type rabbit_classic_queue"
        )
    );
    delete(&conn, &classic).await;
    delete(&conn, &q).await;
}

#[tokio::test]
async fn consuming_needs_a_prefetch_and_acknowledgements() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let setup = conn.create_channel().await.unwrap();
    let q = stream(&setup, &[]).await;
    let not_set = format!(
        "PRECONDITION_FAILED - consumer prefetch count is not set for 'queue '{q}' in vhost '/''"
    );
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        expect_code(consume(&ch, &q, None).await.map(drop), 406),
        not_set
    );
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(5, BasicQosOptions { global: true })
        .await
        .unwrap();
    assert_eq!(
        expect_code(consume(&ch, &q, None).await.map(drop), 406),
        not_set
    );

    let other = broker.connect().await;
    let ch = other.create_channel().await.unwrap();
    ch.basic_qos(10, BasicQosOptions::default()).await.unwrap();
    let res = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    let err = res.expect_err("no-ack is refused");
    assert_eq!(
        amqp_error(&err),
        (540, not_implemented("automatic acknowledgement", &q))
    );
    assert!(err.is_amqp_hard_error());
    delete(&conn, &q).await;
}

#[tokio::test]
async fn deliveries_carry_their_offset_exchange_and_routing_key() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let publisher = confirming_channel(&conn).await;
    let q = stream(&publisher, &[]).await;
    publisher
        .queue_bind(
            q.as_str().into(),
            "amq.direct".into(),
            "rk1".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_message_id("mid".into())
        .with_delivery_mode(2)
        .with_headers(table(&[("app", text("v"))]));
    publisher
        .basic_publish(
            "amq.direct".into(),
            "rk1".into(),
            BasicPublishOptions::default(),
            b"via-direct",
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    publish_all(&publisher, &q, &["plain".to_string()]).await;
    let (_ch, mut d) = reader(&conn, &q, 10, Some(text("first"))).await;
    let got = d.take(2).await;
    let (a, b) = (&got[0], &got[1]);
    assert_eq!(
        (
            a.delivery_tag,
            a.redelivered,
            a.exchange.as_str(),
            a.routing_key.as_str()
        ),
        (1, false, "amq.direct", "rk1")
    );
    assert_eq!(
        (
            b.delivery_tag,
            b.redelivered,
            b.exchange.as_str(),
            b.routing_key.as_str()
        ),
        (2, false, "", q.as_str())
    );
    let headers = a.properties.headers().as_ref().unwrap().inner();
    assert_eq!(headers.get("app"), Some(&text("v")));
    assert_eq!(headers.get("x-stream-offset"), Some(&long(0)));
    assert_eq!(
        a.properties.content_type().as_ref().map(|s| s.as_str()),
        Some("text/plain")
    );
    assert_eq!(*a.properties.delivery_mode(), Some(2));
    assert_eq!(
        b.properties.headers().as_ref().unwrap().inner().len(),
        1,
        "only x-stream-offset"
    );
    assert_eq!(offset(b), 1);
    delete(&conn, &q).await;
}

#[tokio::test]
async fn acks_move_credit_and_remove_nothing() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let publisher = confirming_channel(&conn).await;
    let q = stream(&publisher, &[]).await;
    publish_all(&publisher, &q, &bodies(0..8)).await;
    let (ch, mut d) = reader(&conn, &q, 2, Some(text("first"))).await;
    let first = d.take(2).await;
    d.expect_quiet().await;
    assert_eq!(offsets(&first), vec![0, 1]);
    // One ack, one more delivery.
    ch.basic_ack(first[0].delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    let third = d.next().await;
    assert_eq!(offset(&third), 2);
    d.expect_quiet().await;
    // An ack of several gives as many credits back.
    ch.basic_ack(third.delivery_tag, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    let next = d.take(2).await;
    assert_eq!(offsets(&next), vec![3, 4]);
    // A consumer that acks each delivery as it comes reads everything.
    let mut rest = Vec::new();
    let mut to_ack = next;
    while let Some(m) = to_ack.pop() {
        ch.basic_ack(m.delivery_tag, BasicAckOptions::default())
            .await
            .unwrap();
        if rest.len() < 3 {
            let got = d.next().await;
            rest.push(offset(&got));
            to_ack.push(got);
        }
    }
    d.expect_quiet().await;
    assert_eq!(rest, vec![5, 6, 7]);
    // Nothing was removed: another consumer reads all eight from the start.
    let (_ch2, mut again) = reader(&conn, &q, 100, Some(text("first"))).await;
    assert_eq!(offsets(&again.take(8).await), (0..8).collect::<Vec<_>>());
    delete(&conn, &q).await;
}

#[tokio::test]
async fn several_consumers_read_independently() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let publisher = confirming_channel(&conn).await;
    let q = stream(&publisher, &[]).await;
    publish_all(&publisher, &q, &bodies(0..4)).await;
    // Two consumers on one channel and two on their own channels.
    let shared = conn.create_channel().await.unwrap();
    shared
        .basic_qos(100, BasicQosOptions::default())
        .await
        .unwrap();
    let mut a = consume(&shared, &q, Some(text("first"))).await.unwrap();
    let mut b = consume(&shared, &q, Some(long(2))).await.unwrap();
    let (_c, mut c) = reader(&conn, &q, 100, Some(text("last"))).await;
    let (_e, mut e) = reader(&conn, &q, 100, Some(text("next"))).await;
    assert_eq!(offsets(&a.take(4).await), vec![0, 1, 2, 3]);
    assert_eq!(offsets(&b.take(2).await), vec![2, 3]);
    assert_eq!(offsets(&c.take(1).await), vec![3]);
    publish_all(&publisher, &q, &bodies(4..5)).await;
    for d in [&mut a, &mut b, &mut c, &mut e] {
        assert_eq!(offset(&d.next().await), 4);
        d.expect_quiet().await;
    }
    delete(&conn, &q).await;
}

#[tokio::test]
async fn get_purge_nack_and_reject_are_not_implemented() {
    let broker = TestBroker::start().await;
    let setup_conn = broker.connect().await;
    let publisher = confirming_channel(&setup_conn).await;
    let q = stream(&publisher, &[]).await;
    publish_all(&publisher, &q, &bodies(0..1)).await;

    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .basic_get(q.as_str().into(), BasicGetOptions::default())
        .await
        .expect_err("basic.get is refused");
    assert_eq!(amqp_error(&err), (540, not_implemented("basic.get", &q)));

    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
        .await
        .expect_err("queue.purge is refused");
    assert_eq!(amqp_error(&err), (540, not_implemented("queue.purge", &q)));

    for settle in ["nack", "nack-requeue", "reject", "reject-requeue"] {
        let conn = broker.connect().await;
        let (ch, mut d) = reader(&conn, &q, 1, Some(text("first"))).await;
        let tag = d.next().await.delivery_tag;
        let requeue = settle.ends_with("requeue");
        let sent = if settle.starts_with("nack") {
            ch.basic_nack(
                tag,
                BasicNackOptions {
                    multiple: false,
                    requeue,
                },
            )
            .await
        } else {
            ch.basic_reject(tag, BasicRejectOptions { requeue }).await
        };
        // nack and reject have no answer: the close arrives on the next round trip.
        let err = match sent {
            Err(e) => e,
            Ok(()) => within(
                "connection.close",
                ch.queue_declare(q.as_str().into(), passive(), FieldTable::default()),
            )
            .await
            .expect_err("the connection is closed"),
        };
        assert_eq!(
            amqp_error(&err),
            (540, not_implemented("basic.nack and basic.reject", &q)),
            "{settle}"
        );
    }
    delete(&setup_conn, &q).await;
}

#[tokio::test]
async fn retention_drops_whole_old_segments() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let publisher = confirming_channel(&conn).await;
    let q = stream(
        &publisher,
        &[
            ("x-max-length-bytes", int(2000)),
            ("x-stream-max-segment-size-bytes", int(500)),
        ],
    )
    .await;
    let payloads: Vec<String> = (0..100)
        .map(|i| format!("{i:03}{}", "x".repeat(100)))
        .collect();
    publish_all(&publisher, &q, &payloads).await;
    let (_ch, mut d) = reader(&conn, &q, 1000, Some(text("first"))).await;
    let mut kept = vec![d.next().await];
    while !body(kept.last().unwrap()).starts_with("099") {
        kept.push(d.next().await);
    }
    d.expect_quiet().await;
    assert!(offset(&kept[0]) > 0, "the oldest segments are gone");
    assert!(kept.len() < 100);
    // What remains is the newest messages, in publish order, ending with the last.
    let numbers: Vec<usize> = kept.iter().map(|m| body(m)[..3].parse().unwrap()).collect();
    assert_eq!(numbers, (numbers[0]..100).collect::<Vec<_>>());
    delete(&conn, &q).await;
}

#[tokio::test]
async fn a_policy_limits_retention_as_the_lower_of_argument_and_policy() {
    let broker = TestBroker::start().await;
    let admin = broker.admin();
    let vhost = format!("stream-policy-{}", unique());
    admin.add_vhost(&vhost).await;
    let conn = broker.connect_as("guest", "guest", &vhost).await.unwrap();
    let publisher = confirming_channel(&conn).await;
    let q = stream(&publisher, &[("x-stream-max-segment-size-bytes", int(500))]).await;
    let payloads: Vec<String> = (0..100)
        .map(|i| format!("{i:03}{}", "x".repeat(100)))
        .collect();
    publish_all(&publisher, &q, &payloads[..50]).await;
    // No limit yet: everything is kept.
    let (_ch, mut d) = reader(&conn, &q, 1000, Some(text("first"))).await;
    assert_eq!(offset(&d.next().await), 0);

    admin
        .put_policy(
            &vhost,
            "small-streams",
            serde_json::json!({
                "pattern": "^stream-",
                "apply-to": "queues",
                "definition": {"max-length-bytes": 2000}
            }),
        )
        .await;
    publish_all(&publisher, &q, &payloads[50..]).await;
    let (_ch, mut d) = reader(&conn, &q, 1000, Some(text("first"))).await;
    let first = d.next().await;
    assert!(
        offset(&first) > 0,
        "the policy's limit removed old segments"
    );
    assert!(body(&first)[..3].parse::<usize>().unwrap() > 0);
    drop(conn);
    admin.delete_vhost(&vhost).await;
}
