//! Consumer timeouts, as RabbitMQ's `consumer_timeout`: a delivery left unacknowledged
//! longer than `amqp.consumer_timeout` (or the queue's `x-consumer-timeout`) closes its
//! channel with 406 PRECONDITION_FAILED, and the message goes back to the queue,
//! redelivered.
//!
//! The tests set the timeout to 1 s in Warren's config. They also pass against RabbitMQ
//! 3.10 (`AMQP_TEST_URL`) once it runs with that timeout and checks every second:
//! `rabbitmqctl eval 'application:set_env(rabbit, consumer_timeout, 1000),
//! application:set_env(rabbit, channel_tick_interval, 1000).'` (x-consumer-timeout, which
//! 3.10 validates but ignores, is checked on Warren only).

mod common;

use common::{Deliveries, TestBroker, amqp_error, unique, within};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use std::time::Instant;

const TIMEOUT_MS: u64 = 1000;

fn timed_out_text(channel: u16, timeout_ms: u64) -> String {
    format!(
        "PRECONDITION_FAILED - delivery acknowledgement on channel {channel} timed out. \
         Timeout value used: {timeout_ms} ms. This timeout value can be configured, see \
         consumers doc guide to learn more"
    )
}

async fn broker_with_timeout(ms: u64) -> TestBroker {
    TestBroker::start_with(|c| c.amqp.consumer_timeout = ms).await
}

async fn queue_with(ch: &Channel, args: FieldTable) -> String {
    let name = format!("ct-{}", unique());
    ch.queue_declare(name.as_str().into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    name
}

async fn publish(ch: &Channel, queue: &str, body: &str) {
    ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        body.as_bytes(),
        BasicProperties::default(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

/// A manual-ack consumer with prefetch 1 on a channel of its own.
async fn consumer(conn: &Connection, queue: &str) -> (Channel, Deliveries) {
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let c = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    (ch, Deliveries::new(c))
}

/// Waits for the consumer's channel to be closed by the broker; returns (code, text).
async fn channel_closed(deliveries: &mut Deliveries) -> (u16, String) {
    within("the channel to be closed", async {
        loop {
            match deliveries.event_within(common::TIMEOUT).await {
                Some(Err(e)) => return amqp_error(&e),
                Some(Ok(Some(d))) => panic!("unexpected delivery {d:?}"),
                Some(Ok(None)) | None => continue,
            }
        }
    })
    .await
}

#[tokio::test]
async fn an_unacknowledged_delivery_closes_its_channel_and_goes_back_to_the_queue() {
    let broker = broker_with_timeout(TIMEOUT_MS).await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let queue = queue_with(&ch, FieldTable::default()).await;
    publish(&ch, &queue, "slow job").await;

    let (slow, mut deliveries) = consumer(&conn, &queue).await;
    let started = Instant::now();
    let d = deliveries.next().await;
    assert!(!d.redelivered);

    // The consumer never acknowledges it.
    let (code, text) = channel_closed(&mut deliveries).await;
    assert!(started.elapsed().as_millis() >= u128::from(TIMEOUT_MS));
    assert_eq!((code, text), (406, timed_out_text(slow.id(), TIMEOUT_MS)));

    // The message is back, marked redelivered; the connection and its other channels
    // are unharmed.
    let got = ch
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the message is back in the queue");
    assert_eq!(got.delivery.data, b"slow job");
    assert!(got.delivery.redelivered);
    assert!(conn.status().connected());
}

#[tokio::test]
async fn a_basic_get_left_unacknowledged_times_out_too() {
    let broker = broker_with_timeout(TIMEOUT_MS).await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let queue = queue_with(&ch, FieldTable::default()).await;
    publish(&ch, &queue, "polled").await;

    // The getter's channel also consumes from an empty queue, whose consumer hears of
    // the channel's close.
    let idle = queue_with(&ch, FieldTable::default()).await;
    let (getter, mut watch) = consumer(&conn, &idle).await;
    let got = getter
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap();
    assert!(got.is_some());

    let (code, text) = channel_closed(&mut watch).await;
    assert_eq!((code, text), (406, timed_out_text(getter.id(), TIMEOUT_MS)));
    // (RabbitMQ requeues it a moment after the close.)
    within("the message to be back in the queue", async {
        while ch
            .queue_declare(
                queue.as_str().into(),
                common::passive(),
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
            != 1
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn x_consumer_timeout_overrides_the_broker_setting_per_queue() {
    // The broker's timeout is long; one queue sets a short one. (RabbitMQ 3.10 accepts
    // the argument but ignores it: Warren only.)
    let broker = TestBroker::start_warren_with(|c| c.amqp.consumer_timeout = 1_800_000).await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-consumer-timeout".into(), AMQPValue::LongLongInt(1000));
    let short = queue_with(&ch, args).await;
    let long = queue_with(&ch, FieldTable::default()).await;
    publish(&ch, &long, "may take its time").await;
    publish(&ch, &short, "must hurry").await;

    // Both deliveries are made before the short one times out.
    let (patient, mut long_deliveries) = consumer(&conn, &long).await;
    let held = long_deliveries.next().await;
    let (hasty, mut short_deliveries) = consumer(&conn, &short).await;
    short_deliveries.next().await;

    let (code, text) = channel_closed(&mut short_deliveries).await;
    assert_eq!((code, text), (406, timed_out_text(hasty.id(), 1000)));
    // The delivery from the other queue, older than the one that timed out, is still
    // held: its channel is open and can acknowledge it.
    held.ack(BasicAckOptions::default()).await.unwrap();
    patient
        .basic_qos(5, BasicQosOptions::default())
        .await
        .unwrap();
    assert!(patient.status().connected());
}

#[tokio::test]
async fn deliveries_acknowledged_in_time_keep_the_channel_open() {
    let broker = broker_with_timeout(TIMEOUT_MS).await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let queue = queue_with(&ch, FieldTable::default()).await;
    let (worker, mut deliveries) = consumer(&conn, &queue).await;
    // Three rounds, each acknowledged at once, spanning more than the timeout.
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed().as_millis() < u128::from(3 * TIMEOUT_MS) {
        publish(&ch, &queue, &format!("job {n}")).await;
        let d = deliveries.next().await;
        d.ack(BasicAckOptions::default()).await.unwrap();
        n += 1;
    }
    assert!(n > 3);
    worker
        .basic_qos(1, BasicQosOptions::default())
        .await
        .unwrap();
    assert!(worker.status().connected());
}

#[tokio::test]
async fn x_consumer_timeout_must_be_a_non_negative_integer() {
    let broker = TestBroker::start_warren_with(|_| {}).await;
    let conn = broker.connect().await;
    for (value, detail) in [
        (AMQPValue::LongLongInt(-1), "{value_negative,-1}"),
        (
            AMQPValue::LongString("soon".into()),
            "\"expected integer, got longstr\"",
        ),
    ] {
        let ch = conn.create_channel().await.unwrap();
        let name = format!("ct-{}", unique());
        let mut args = FieldTable::default();
        args.insert("x-consumer-timeout".into(), value);
        let err = ch
            .queue_declare(name.as_str().into(), QueueDeclareOptions::default(), args)
            .await
            .expect_err("refused");
        assert_eq!(
            amqp_error(&err),
            (
                406,
                format!(
                    "PRECONDITION_FAILED - invalid arg 'x-consumer-timeout' for queue '{name}' \
                     in vhost '/': {detail}"
                )
            )
        );
    }
}

#[tokio::test]
async fn a_timed_out_delivery_of_a_quorum_queue_counts_toward_its_delivery_limit() {
    let broker = broker_with_timeout(TIMEOUT_MS).await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let dlq = queue_with(&ch, FieldTable::default()).await;
    let queue = format!("ct-qq-{}", unique());
    let mut args = FieldTable::default();
    for (k, v) in [
        ("x-queue-type", AMQPValue::LongString("quorum".into())),
        ("x-delivery-limit", AMQPValue::LongInt(0)),
        ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
        (
            "x-dead-letter-routing-key",
            AMQPValue::LongString(dlq.as_str().into()),
        ),
    ] {
        args.insert(k.into(), v);
    }
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(queue.as_str().into(), durable, args)
        .await
        .unwrap();
    publish(&ch, &queue, "slow job").await;

    let (_slow, mut deliveries) = consumer(&conn, &queue).await;
    deliveries.next().await;
    // Never acknowledged: the timeout returns it, its first return, past a limit of 0.
    channel_closed(&mut deliveries).await;
    let dead = within("the message to be dead-lettered", async {
        loop {
            let got = ch
                .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap();
            if let Some(m) = got {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let reason = dead
        .delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-first-death-reason").cloned());
    assert_eq!(reason, Some(AMQPValue::LongString("delivery_limit".into())));
}
