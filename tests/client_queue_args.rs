//! Queue arguments and the features built on them: message TTL and per-message
//! expiration, queue expiry, length limits and overflow, dead-lettering (and the
//! `x-death` header), priority queues, single active consumer, consumer priorities,
//! direct reply-to, and the validation RabbitMQ applies to all of these.

mod common;

use common::{
    Deliveries, QUIET, TestBroker, body, confirming_channel, expect_code, passive, unique, within,
};
use lapin::message::{BasicGetMessage, Delivery};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, BasicRejectOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A queue-arguments table from `(name, value)` pairs.
fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn long_str(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// Declares a queue named `name` with `arguments`.
async fn declare(ch: &Channel, name: &str, arguments: FieldTable) {
    ch.queue_declare(name.into(), QueueDeclareOptions::default(), arguments)
        .await
        .unwrap();
}

/// Declares a fanout exchange with a queue bound to it; returns (exchange, queue).
async fn fanout_with_queue(ch: &Channel, prefix: &str) -> (String, String) {
    let x = format!("{prefix}-x-{}", unique());
    let q = format!("{prefix}-q-{}", unique());
    ch.exchange_declare(
        x.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare(ch, &q, FieldTable::default()).await;
    ch.queue_bind(
        q.as_str().into(),
        x.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    (x, q)
}

/// Publishes through `exchange` on a confirming channel and returns the confirmation.
async fn publish_to(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &str,
    props: BasicProperties,
) -> Confirmation {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            payload.as_bytes(),
            props,
        )
        .await
        .unwrap();
    within("publisher confirm", confirm).await.unwrap()
}

/// Publishes to `queue` through the default exchange and expects an ack.
async fn publish(ch: &Channel, queue: &str, payload: &str, props: BasicProperties) {
    let c = publish_to(ch, "", queue, payload, props).await;
    assert_eq!(c, Confirmation::Ack(None), "publish of {payload:?}");
}

async fn consume(ch: &Channel, queue: &str, no_ack: bool, arguments: FieldTable) -> Deliveries {
    Deliveries::new(
        ch.basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack,
                ..Default::default()
            },
            arguments,
        )
        .await
        .unwrap(),
    )
}

async fn get(ch: &Channel, queue: &str) -> Option<BasicGetMessage> {
    within(
        "basic.get",
        ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap()
}

async fn get_with_ack(ch: &Channel, queue: &str) -> BasicGetMessage {
    within(
        "basic.get",
        ch.basic_get(queue.into(), BasicGetOptions { no_ack: false }),
    )
    .await
    .unwrap()
    .expect("a message")
}

/// Takes every ready message from `queue` (no-ack) and returns the bodies in order.
async fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = get(ch, queue).await {
        out.push(body(&m.delivery));
    }
    out
}

async fn message_count(ch: &Channel, queue: &str) -> u32 {
    ch.queue_declare(queue.into(), passive(), FieldTable::default())
        .await
        .unwrap()
        .message_count()
}

/// Polls the queue's message count (a passive declare every 20ms) until it drops to
/// `n`.
async fn wait_for_count(ch: &Channel, queue: &str, n: u32) {
    within(&format!("{queue} to hold {n} messages"), async {
        while message_count(ch, queue).await != n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Waits until `queue` no longer exists. It probes with mandatory publishes, which
/// (unlike a declare or basic.get) do not count as using the queue and so do not
/// renew its `x-expires` lease.
async fn wait_until_deleted(ch: &Channel, queue: &str) {
    within(&format!("{queue} to be deleted"), async {
        loop {
            let confirm = ch
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    b"probe",
                    BasicProperties::default(),
                )
                .await
                .unwrap();
            match confirm.await.unwrap() {
                Confirmation::Ack(Some(returned)) => {
                    assert_eq!(returned.reply_code, 312);
                    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
                    return;
                }
                Confirmation::Ack(None) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => panic!("unexpected confirmation {other:?}"),
            }
        }
    })
    .await;
}

async fn delete_queues(ch: &Channel, queues: &[&str]) {
    for q in queues {
        ch.queue_delete((*q).into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
}

async fn delete_exchange(ch: &Channel, x: &str) {
    ch.exchange_delete(x.into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
}

/// The value of a long-string AMQP field as text. Panics on any other type.
fn text(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).unwrap(),
        other => panic!("expected a long string, got {other:?}"),
    }
}

fn header<'a>(d: &'a Delivery, key: &str) -> Option<&'a AMQPValue> {
    d.properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(key))
}

/// One entry of the `x-death` header, as RabbitMQ writes it: `count` is a long-long,
/// `time` a timestamp, `routing-keys` an array of long strings, the rest long strings.
#[derive(Debug, PartialEq)]
struct Death {
    queue: String,
    reason: String,
    count: i64,
    exchange: String,
    routing_keys: Vec<String>,
    original_expiration: Option<String>,
}

/// The `x-death` entries of a dead-lettered message, most recent first. Checks each
/// entry has exactly RabbitMQ's fields with RabbitMQ's types, and a `time` within a
/// minute of now.
fn x_death(d: &Delivery) -> Vec<Death> {
    let entries = match header(d, "x-death") {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
        other => panic!("expected an x-death array, got {other:?}"),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    entries
        .iter()
        .map(|entry| {
            let AMQPValue::FieldTable(t) = entry else {
                panic!("x-death entry is not a table: {entry:?}");
            };
            let t = t.inner();
            let mut keys: Vec<&str> = t.keys().map(|k| k.as_str()).collect();
            keys.sort();
            let mut expected = vec![
                "count",
                "exchange",
                "queue",
                "reason",
                "routing-keys",
                "time",
            ];
            if t.contains_key("original-expiration") {
                expected.push("original-expiration");
                expected.sort();
            }
            assert_eq!(keys, expected, "x-death entry fields");
            match &t["time"] {
                AMQPValue::Timestamp(secs) => assert!(
                    secs.abs_diff(now) < 60,
                    "x-death time {secs} is not close to now ({now})"
                ),
                other => panic!("x-death time should be a timestamp, got {other:?}"),
            }
            Death {
                queue: text(&t["queue"]),
                reason: text(&t["reason"]),
                count: match &t["count"] {
                    AMQPValue::LongLongInt(n) => *n,
                    other => panic!("x-death count should be a long-long, got {other:?}"),
                },
                exchange: text(&t["exchange"]),
                routing_keys: match &t["routing-keys"] {
                    AMQPValue::FieldArray(a) => a.as_slice().iter().map(text).collect(),
                    other => panic!("x-death routing-keys should be an array, got {other:?}"),
                },
                original_expiration: t.get("original-expiration").map(text),
            }
        })
        .collect()
}

/// The `x-first-death-queue`, `-reason` and `-exchange` headers.
fn first_death(d: &Delivery) -> (String, String, String) {
    let get = |k: &str| text(header(d, k).unwrap_or_else(|| panic!("missing header {k}")));
    (
        get("x-first-death-queue"),
        get("x-first-death-reason"),
        get("x-first-death-exchange"),
    )
}

fn death(queue: &str, reason: &str, count: i64, exchange: &str, routing_keys: &[&str]) -> Death {
    Death {
        queue: queue.into(),
        reason: reason.into(),
        count,
        exchange: exchange.into(),
        routing_keys: routing_keys.iter().map(|k| k.to_string()).collect(),
        original_expiration: None,
    }
}

/// The reply (code, text) of a queue.declare with `arguments` on a fresh channel,
/// which must fail.
async fn declare_error(conn: &Connection, name: &str, arguments: FieldTable) -> (u16, String) {
    let ch = conn.create_channel().await.unwrap();
    match ch
        .queue_declare(name.into(), QueueDeclareOptions::default(), arguments)
        .await
    {
        Ok(_) => panic!("declaring {name} should have failed"),
        Err(e) => common::amqp_error(&e),
    }
}

fn invalid_arg(arg: &str, queue: &str, detail: &str) -> (u16, String) {
    (
        406,
        format!(
            "PRECONDITION_FAILED - invalid arg '{arg}' for queue '{queue}' in vhost '/': {detail}"
        ),
    )
}

// ---------------------------------------------------------------------------
// Message TTL
// ---------------------------------------------------------------------------

#[tokio::test]
async fn x_message_ttl_expires_messages_left_in_the_queue() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("ttl-{}", unique());
    declare(&ch, &q, args(&[("x-message-ttl", AMQPValue::LongInt(200))])).await;

    let start = Instant::now();
    publish(&ch, &q, "short-lived", BasicProperties::default()).await;
    wait_for_count(&ch, &q, 0).await;
    assert!(
        start.elapsed() >= Duration::from_millis(180),
        "expired too early: after {:?}",
        start.elapsed()
    );
    assert!(get(&ch, &q).await.is_none());

    delete_queues(&ch, &[&q]).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn x_message_ttl_does_not_set_the_expiration_property() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("ttl-consumed-{}", unique());
    declare(
        &ch,
        &q,
        args(&[("x-message-ttl", AMQPValue::LongInt(60_000))]),
    )
    .await;
    let mut consumer = consume(&ch, &q, false, FieldTable::default()).await;
    publish(&ch, &q, "fresh", BasicProperties::default()).await;
    let d = consumer.next().await;
    assert_eq!(body(&d), "fresh");
    // The queue TTL is not copied into the message's expiration property.
    assert_eq!(d.properties.expiration(), &None);
    d.ack(BasicAckOptions::default()).await.unwrap();

    delete_queues(&ch, &[&q]).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn per_message_expiration_expires_only_that_message() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("expiration-{}", unique());
    declare(&ch, &q, FieldTable::default()).await;

    let start = Instant::now();
    publish(
        &ch,
        &q,
        "brief",
        BasicProperties::default().with_expiration("100".into()),
    )
    .await;
    publish(&ch, &q, "lasting", BasicProperties::default()).await;
    wait_for_count(&ch, &q, 1).await;
    assert!(
        start.elapsed() >= Duration::from_millis(90),
        "expired too early: after {:?}",
        start.elapsed()
    );
    assert_eq!(drain(&ch, &q).await, ["lasting"]);

    delete_queues(&ch, &[&q]).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn the_lower_of_queue_ttl_and_message_expiration_wins() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;

    // A long queue TTL with a short per-message expiration...
    let long_queue_ttl = format!("ttl-long-{}", unique());
    declare(
        &ch,
        &long_queue_ttl,
        args(&[("x-message-ttl", AMQPValue::LongInt(60_000))]),
    )
    .await;
    publish(
        &ch,
        &long_queue_ttl,
        "expiration 100",
        BasicProperties::default().with_expiration("100".into()),
    )
    .await;

    // ...and a short queue TTL with a long per-message expiration.
    let short_queue_ttl = format!("ttl-short-{}", unique());
    declare(
        &ch,
        &short_queue_ttl,
        args(&[("x-message-ttl", AMQPValue::LongInt(100))]),
    )
    .await;
    publish(
        &ch,
        &short_queue_ttl,
        "expiration 60000",
        BasicProperties::default().with_expiration("60000".into()),
    )
    .await;

    // Both expire after about 100ms.
    wait_for_count(&ch, &long_queue_ttl, 0).await;
    wait_for_count(&ch, &short_queue_ttl, 0).await;

    delete_queues(&ch, &[&long_queue_ttl, &short_queue_ttl]).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn expired_messages_are_dead_lettered_with_reason_expired() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let (dlx, dlq) = fanout_with_queue(&ch, "expired-dlx").await;
    let q = format!("expiring-{}", unique());
    declare(
        &ch,
        &q,
        args(&[
            ("x-message-ttl", AMQPValue::LongInt(100)),
            ("x-dead-letter-exchange", long_str(&dlx)),
        ]),
    )
    .await;
    let mut dead = consume(&ch, &dlq, true, FieldTable::default()).await;

    publish(
        &ch,
        &q,
        "too slow",
        BasicProperties::default().with_headers(args(&[("app", long_str("demo"))])),
    )
    .await;
    let d = dead.next().await;
    assert_eq!(body(&d), "too slow");
    // Republished to the dead-letter exchange with its original routing key.
    assert_eq!(d.exchange.as_str(), dlx);
    assert_eq!(d.routing_key.as_str(), q);
    assert!(!d.redelivered);
    // The application's headers are kept; the death is recorded next to them.
    assert_eq!(header(&d, "app").map(text).as_deref(), Some("demo"));
    assert_eq!(x_death(&d), [death(&q, "expired", 1, "", &[&q])]);
    assert_eq!(
        first_death(&d),
        (q.clone(), "expired".to_string(), "".to_string())
    );

    delete_queues(&ch, &[&q, &dlq]).await;
    delete_exchange(&ch, &dlx).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn dead_lettered_message_keeps_its_expiration_in_x_death() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let (dlx, dlq) = fanout_with_queue(&ch, "orig-exp-dlx").await;
    let q = format!("per-message-expiring-{}", unique());
    declare(&ch, &q, args(&[("x-dead-letter-exchange", long_str(&dlx))])).await;
    let mut dead = consume(&ch, &dlq, true, FieldTable::default()).await;

    publish(
        &ch,
        &q,
        "brief",
        BasicProperties::default().with_expiration("50".into()),
    )
    .await;
    let d = dead.next().await;
    assert_eq!(body(&d), "brief");
    // The expiration property is removed (so the message does not expire again in
    // the dead-letter queue) and kept in x-death as original-expiration.
    assert_eq!(d.properties.expiration(), &None);
    assert_eq!(
        x_death(&d),
        [Death {
            original_expiration: Some("50".into()),
            ..death(&q, "expired", 1, "", &[&q])
        }]
    );

    delete_queues(&ch, &[&q, &dlq]).await;
    delete_exchange(&ch, &dlx).await;
    conn.close(200, "OK".into()).await.unwrap();
}

// ---------------------------------------------------------------------------
// Queue expiry
// ---------------------------------------------------------------------------

#[tokio::test]
async fn x_expires_deletes_an_unused_queue() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("expires-{}", unique());
    let start = Instant::now();
    declare(&ch, &q, args(&[("x-expires", AMQPValue::LongInt(200))])).await;

    wait_until_deleted(&ch, &q).await;
    assert!(
        start.elapsed() >= Duration::from_millis(180),
        "deleted too early: after {:?}",
        start.elapsed()
    );
    let checker = conn.create_channel().await.unwrap();
    let text = expect_code(
        checker
            .queue_declare(q.as_str().into(), passive(), FieldTable::default())
            .await,
        404,
    );
    assert_eq!(text, format!("NOT_FOUND - no queue '{q}' in vhost '/'"));
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn x_expires_spares_a_queue_while_it_has_consumers() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("expires-consumed-{}", unique());
    declare(&ch, &q, args(&[("x-expires", AMQPValue::LongInt(100))])).await;
    let consumer = consume(&ch, &q, true, FieldTable::default()).await;

    // Three times the expiry with a consumer attached: still there.
    tokio::time::sleep(QUIET).await;
    ch.queue_declare(q.as_str().into(), passive(), FieldTable::default())
        .await
        .unwrap();

    // Once the consumer goes, the queue expires.
    ch.basic_cancel(
        consumer.tag().as_str().into(),
        BasicCancelOptions::default(),
    )
    .await
    .unwrap();
    wait_until_deleted(&ch, &q).await;
    conn.close(200, "OK".into()).await.unwrap();
}

// ---------------------------------------------------------------------------
// Length limits and overflow
// ---------------------------------------------------------------------------

#[tokio::test]
async fn max_length_drop_head_dead_letters_the_oldest_with_reason_maxlen() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let (dlx, dlq) = fanout_with_queue(&ch, "maxlen-dlx").await;
    let q = format!("maxlen-{}", unique());
    declare(
        &ch,
        &q,
        args(&[
            ("x-max-length", AMQPValue::LongInt(2)),
            ("x-dead-letter-exchange", long_str(&dlx)),
        ]),
    )
    .await;
    let mut dead = consume(&ch, &dlq, true, FieldTable::default()).await;

    for m in ["m0", "m1", "m2", "m3"] {
        publish(&ch, &q, m, BasicProperties::default()).await;
    }
    let dropped = dead.take(2).await;
    assert_eq!(dropped.iter().map(body).collect::<Vec<_>>(), ["m0", "m1"]);
    for d in &dropped {
        assert_eq!(x_death(d), [death(&q, "maxlen", 1, "", &[&q])]);
        assert_eq!(
            first_death(d),
            (q.clone(), "maxlen".to_string(), "".to_string())
        );
    }
    assert_eq!(drain(&ch, &q).await, ["m2", "m3"]);

    delete_queues(&ch, &[&q, &dlq]).await;
    delete_exchange(&ch, &dlx).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn max_length_bytes_limits_the_total_body_size() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("maxbytes-{}", unique());
    declare(
        &ch,
        &q,
        args(&[("x-max-length-bytes", AMQPValue::LongInt(10))]),
    )
    .await;

    // Two 4-byte bodies fit in 10 bytes; the third pushes the oldest out.
    for m in ["aaaa", "bbbb", "cccc"] {
        publish(&ch, &q, m, BasicProperties::default()).await;
    }
    assert_eq!(drain(&ch, &q).await, ["bbbb", "cccc"]);

    delete_queues(&ch, &[&q]).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn overflow_reject_publish_nacks_publishes_to_a_full_queue() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let (dlx, dlq) = fanout_with_queue(&ch, "reject-publish-dlx").await;
    let q = format!("reject-publish-{}", unique());
    declare(
        &ch,
        &q,
        args(&[
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-overflow", long_str("reject-publish")),
            ("x-dead-letter-exchange", long_str(&dlx)),
        ]),
    )
    .await;
    let mut dead = consume(&ch, &dlq, true, FieldTable::default()).await;

    assert_eq!(
        publish_to(&ch, "", &q, "first", BasicProperties::default()).await,
        Confirmation::Ack(None)
    );
    assert_eq!(
        publish_to(&ch, "", &q, "second", BasicProperties::default()).await,
        Confirmation::Nack(None)
    );
    // The oldest message stays, and the refused one is not dead-lettered.
    assert_eq!(drain(&ch, &q).await, ["first"]);
    dead.expect_quiet().await;

    // With room again, publishes are accepted.
    assert_eq!(
        publish_to(&ch, "", &q, "third", BasicProperties::default()).await,
        Confirmation::Ack(None)
    );
    assert_eq!(drain(&ch, &q).await, ["third"]);

    delete_queues(&ch, &[&q, &dlq]).await;
    delete_exchange(&ch, &dlx).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn overflow_reject_publish_dlx_nacks_and_dead_letters() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let (dlx, dlq) = fanout_with_queue(&ch, "reject-publish-dlx-dlx").await;
    let q = format!("reject-publish-dlx-{}", unique());
    declare(
        &ch,
        &q,
        args(&[
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-overflow", long_str("reject-publish-dlx")),
            ("x-dead-letter-exchange", long_str(&dlx)),
        ]),
    )
    .await;
    let mut dead = consume(&ch, &dlq, true, FieldTable::default()).await;

    assert_eq!(
        publish_to(&ch, "", &q, "first", BasicProperties::default()).await,
        Confirmation::Ack(None)
    );
    assert_eq!(
        publish_to(&ch, "", &q, "second", BasicProperties::default()).await,
        Confirmation::Nack(None)
    );
    let d = dead.next().await;
    assert_eq!(body(&d), "second");
    assert_eq!(x_death(&d), [death(&q, "maxlen", 1, "", &[&q])]);
    assert_eq!(drain(&ch, &q).await, ["first"]);

    delete_queues(&ch, &[&q, &dlq]).await;
    delete_exchange(&ch, &dlx).await;
    conn.close(200, "OK".into()).await.unwrap();
}

// ---------------------------------------------------------------------------
// Dead-lettering on reject / nack
// ---------------------------------------------------------------------------

#[tokio::test]
async fn rejected_message_is_dead_lettered_with_the_dead_letter_routing_key() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;

    // orders --"new"--> work queue; rejects go to dead-letters --"dead"--> parked.
    let orders = format!("orders-{}", unique());
    let dead_letters = format!("dead-letters-{}", unique());
    for x in [&orders, &dead_letters] {
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    let work = format!("work-{}", unique());
    declare(
        &ch,
        &work,
        args(&[
            ("x-dead-letter-exchange", long_str(&dead_letters)),
            ("x-dead-letter-routing-key", long_str("dead")),
        ]),
    )
    .await;
    let parked = format!("parked-{}", unique());
    declare(&ch, &parked, FieldTable::default()).await;
    for (q, x, key) in [(&work, &orders, "new"), (&parked, &dead_letters, "dead")] {
        ch.queue_bind(
            q.as_str().into(),
            x.as_str().into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }

    let worker_ch = conn.create_channel().await.unwrap();
    let mut worker = consume(&worker_ch, &work, false, FieldTable::default()).await;
    let mut dead = consume(&ch, &parked, true, FieldTable::default()).await;

    assert_eq!(
        publish_to(&ch, &orders, "new", "order-1", BasicProperties::default()).await,
        Confirmation::Ack(None)
    );
    let d = worker.next().await;
    assert_eq!(body(&d), "order-1");
    assert!(
        d.reject(BasicRejectOptions { requeue: false })
            .await
            .unwrap()
    );

    let d = dead.next().await;
    assert_eq!(body(&d), "order-1");
    assert_eq!(d.exchange.as_str(), dead_letters);
    assert_eq!(d.routing_key.as_str(), "dead", "x-dead-letter-routing-key");
    // x-death records where the message was before: the original exchange and keys.
    assert_eq!(
        x_death(&d),
        [death(&work, "rejected", 1, &orders, &["new"])]
    );
    assert_eq!(
        first_death(&d),
        (work.clone(), "rejected".to_string(), orders.clone())
    );

    delete_queues(&ch, &[&work, &parked]).await;
    delete_exchange(&ch, &orders).await;
    delete_exchange(&ch, &dead_letters).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn nacked_messages_are_dead_lettered_with_reason_rejected() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let (dlx, dlq) = fanout_with_queue(&ch, "nack-dlx").await;
    let q = format!("nacked-{}", unique());
    declare(&ch, &q, args(&[("x-dead-letter-exchange", long_str(&dlx))])).await;
    let worker_ch = conn.create_channel().await.unwrap();
    let mut worker = consume(&worker_ch, &q, false, FieldTable::default()).await;
    let mut dead = consume(&ch, &dlq, true, FieldTable::default()).await;

    publish(&ch, &q, "a", BasicProperties::default()).await;
    publish(&ch, &q, "b", BasicProperties::default()).await;
    let got = worker.take(2).await;
    // One nack with multiple=true covers both deliveries.
    assert!(
        got[1]
            .nack(BasicNackOptions {
                multiple: true,
                requeue: false
            })
            .await
            .unwrap()
    );
    let dl = dead.take(2).await;
    assert_eq!(dl.iter().map(body).collect::<Vec<_>>(), ["a", "b"]);
    for d in &dl {
        assert_eq!(x_death(d), [death(&q, "rejected", 1, "", &[&q])]);
    }
    assert_eq!(message_count(&ch, &q).await, 0);

    delete_queues(&ch, &[&q, &dlq]).await;
    delete_exchange(&ch, &dlx).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn requeued_rejections_are_not_dead_lettered() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let (dlx, dlq) = fanout_with_queue(&ch, "requeue-dlx").await;
    let q = format!("requeued-{}", unique());
    declare(&ch, &q, args(&[("x-dead-letter-exchange", long_str(&dlx))])).await;
    let mut dead = consume(&ch, &dlq, true, FieldTable::default()).await;
    let worker_ch = conn.create_channel().await.unwrap();
    let mut worker = consume(&worker_ch, &q, false, FieldTable::default()).await;

    publish(&ch, &q, "retry me", BasicProperties::default()).await;
    let d = worker.next().await;
    d.reject(BasicRejectOptions { requeue: true })
        .await
        .unwrap();
    let again = worker.next().await;
    assert_eq!(body(&again), "retry me");
    assert!(again.redelivered);
    assert!(header(&again, "x-death").is_none());
    again.ack(BasicAckOptions::default()).await.unwrap();
    dead.expect_quiet().await;

    delete_queues(&ch, &[&q, &dlq]).await;
    delete_exchange(&ch, &dlx).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn x_death_count_increments_when_a_message_dies_again_the_same_way() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    // A retry loop: rejected messages are dead-lettered through the default exchange
    // straight back into the same queue.
    let q = format!("retry-loop-{}", unique());
    declare(
        &ch,
        &q,
        args(&[
            ("x-dead-letter-exchange", long_str("")),
            ("x-dead-letter-routing-key", long_str(&q)),
        ]),
    )
    .await;
    let worker_ch = conn.create_channel().await.unwrap();
    let mut worker = consume(&worker_ch, &q, false, FieldTable::default()).await;
    publish(&ch, &q, "flaky", BasicProperties::default()).await;

    let first = worker.next().await;
    assert!(header(&first, "x-death").is_none());
    first
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();

    let second = worker.next().await;
    assert_eq!(body(&second), "flaky");
    assert!(
        !second.redelivered,
        "dead-lettering publishes a new message"
    );
    assert_eq!(x_death(&second), [death(&q, "rejected", 1, "", &[&q])]);
    second
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();

    // Same queue, same reason: still one entry, with the count bumped.
    let third = worker.next().await;
    assert_eq!(x_death(&third), [death(&q, "rejected", 2, "", &[&q])]);
    assert_eq!(
        first_death(&third),
        (q.clone(), "rejected".to_string(), "".to_string())
    );
    third.ack(BasicAckOptions::default()).await.unwrap();

    delete_queues(&ch, &[&q]).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn x_death_adds_an_entry_per_queue_most_recent_first() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    // inbox --rejected--> holding (TTL 50ms) --expired--> graveyard
    let graveyard = format!("graveyard-{}", unique());
    declare(&ch, &graveyard, FieldTable::default()).await;
    let holding = format!("holding-{}", unique());
    declare(
        &ch,
        &holding,
        args(&[
            ("x-message-ttl", AMQPValue::LongInt(50)),
            ("x-dead-letter-exchange", long_str("")),
            ("x-dead-letter-routing-key", long_str(&graveyard)),
        ]),
    )
    .await;
    let inbox = format!("inbox-{}", unique());
    declare(
        &ch,
        &inbox,
        args(&[
            ("x-dead-letter-exchange", long_str("")),
            ("x-dead-letter-routing-key", long_str(&holding)),
        ]),
    )
    .await;
    let mut dead = consume(&ch, &graveyard, true, FieldTable::default()).await;

    publish(&ch, &inbox, "twice dead", BasicProperties::default()).await;
    let m = get_with_ack(&ch, &inbox).await;
    m.delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();

    let d = dead.next().await;
    assert_eq!(body(&d), "twice dead");
    assert_eq!(
        x_death(&d),
        [
            death(&holding, "expired", 1, "", &[&holding]),
            death(&inbox, "rejected", 1, "", &[&inbox]),
        ]
    );
    // The first death is remembered separately.
    assert_eq!(
        first_death(&d),
        (inbox.clone(), "rejected".to_string(), "".to_string())
    );

    delete_queues(&ch, &[&inbox, &holding, &graveyard]).await;
    conn.close(200, "OK".into()).await.unwrap();
}

// ---------------------------------------------------------------------------
// Priority queues
// ---------------------------------------------------------------------------

#[tokio::test]
async fn priority_queue_delivers_higher_priority_first_and_fifo_within_a_priority() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("priority-{}", unique());
    declare(&ch, &q, args(&[("x-max-priority", AMQPValue::LongInt(5))])).await;

    for (m, p) in [
        ("low-1", Some(1)),
        ("high-1", Some(5)),
        ("none", None),
        ("low-2", Some(1)),
        ("high-2", Some(5)),
        ("mid", Some(3)),
    ] {
        let props = match p {
            Some(p) => BasicProperties::default().with_priority(p),
            None => BasicProperties::default(),
        };
        publish(&ch, &q, m, props).await;
    }
    // A consumer attached afterwards sees them by priority; no priority counts as 0.
    let mut consumer = consume(&ch, &q, true, FieldTable::default()).await;
    let order: Vec<String> = consumer.take(6).await.iter().map(body).collect();
    assert_eq!(order, ["high-1", "high-2", "mid", "low-1", "low-2", "none"]);

    delete_queues(&ch, &[&q]).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn priorities_above_x_max_priority_count_as_the_maximum() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("priority-capped-{}", unique());
    declare(&ch, &q, args(&[("x-max-priority", AMQPValue::LongInt(2))])).await;

    for (m, p) in [("at-1", 1), ("at-2", 2), ("at-9", 9), ("at-2-again", 2)] {
        publish(&ch, &q, m, BasicProperties::default().with_priority(p)).await;
    }
    // 9 is treated as 2, so it keeps its place among the priority-2 messages, and
    // the message still carries the priority it was published with.
    let mut got = Vec::new();
    while let Some(m) = get(&ch, &q).await {
        got.push((body(&m.delivery), *m.delivery.properties.priority()));
    }
    assert_eq!(
        got,
        [
            ("at-2".to_string(), Some(2)),
            ("at-9".to_string(), Some(9)),
            ("at-2-again".to_string(), Some(2)),
            ("at-1".to_string(), Some(1)),
        ]
    );

    delete_queues(&ch, &[&q]).await;
    conn.close(200, "OK".into()).await.unwrap();
}

// ---------------------------------------------------------------------------
// Single active consumer
// ---------------------------------------------------------------------------

fn single_active() -> FieldTable {
    args(&[("x-single-active-consumer", AMQPValue::Boolean(true))])
}

#[tokio::test]
async fn single_active_consumer_second_consumer_waits_until_the_first_cancels() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("sac-{}", unique());
    declare(&ch, &q, single_active()).await;

    let first_ch = conn.create_channel().await.unwrap();
    let mut first = consume(&first_ch, &q, true, FieldTable::default()).await;
    let second_ch = conn.create_channel().await.unwrap();
    let mut second = consume(&second_ch, &q, true, FieldTable::default()).await;
    let state = ch
        .queue_declare(q.as_str().into(), passive(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(state.consumer_count(), 2, "both are registered");

    for m in ["m0", "m1", "m2"] {
        publish(&ch, &q, m, BasicProperties::default()).await;
    }
    let got: Vec<String> = first.take(3).await.iter().map(body).collect();
    assert_eq!(got, ["m0", "m1", "m2"]);
    second.expect_quiet().await;

    // When the active consumer cancels, the next one takes over.
    first_ch
        .basic_cancel(first.tag().as_str().into(), BasicCancelOptions::default())
        .await
        .unwrap();
    for m in ["m3", "m4"] {
        publish(&ch, &q, m, BasicProperties::default()).await;
    }
    let got: Vec<String> = second.take(2).await.iter().map(body).collect();
    assert_eq!(got, ["m3", "m4"]);

    delete_queues(&ch, &[&q]).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn single_active_consumer_unacked_messages_go_to_the_next_consumer_first() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("sac-unacked-{}", unique());
    declare(&ch, &q, single_active()).await;

    let first_ch = conn.create_channel().await.unwrap();
    first_ch
        .basic_qos(2, BasicQosOptions::default())
        .await
        .unwrap();
    let mut first = consume(&first_ch, &q, false, FieldTable::default()).await;
    let second_ch = conn.create_channel().await.unwrap();
    let mut second = consume(&second_ch, &q, false, FieldTable::default()).await;

    for m in ["m0", "m1", "m2", "m3"] {
        publish(&ch, &q, m, BasicProperties::default()).await;
    }
    // The active consumer holds two unacked messages; the others wait in the queue,
    // not for the second consumer.
    let held: Vec<String> = first.take(2).await.iter().map(body).collect();
    assert_eq!(held, ["m0", "m1"]);
    second.expect_quiet().await;

    // Its channel closes: the unacked messages are requeued ahead of the rest, and the
    // second consumer becomes active and gets everything in order.
    first_ch.close(200, "OK".into()).await.unwrap();
    let got = second.take(4).await;
    assert_eq!(
        got.iter()
            .map(|d| (body(d), d.redelivered))
            .collect::<Vec<_>>(),
        [
            ("m0".to_string(), true),
            ("m1".to_string(), true),
            ("m2".to_string(), false),
            ("m3".to_string(), false),
        ]
    );
    second_ch
        .basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .unwrap();

    delete_queues(&ch, &[&q]).await;
    conn.close(200, "OK".into()).await.unwrap();
}

// ---------------------------------------------------------------------------
// Consumer priorities
// ---------------------------------------------------------------------------

fn consumer_priority(p: i32) -> FieldTable {
    args(&[("x-priority", AMQPValue::LongInt(p))])
}

#[tokio::test]
async fn higher_priority_consumer_gets_every_message_while_it_has_credit() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("consumer-priority-{}", unique());
    declare(&ch, &q, FieldTable::default()).await;

    // The low-priority consumer registers first; without priorities it would get
    // every other message.
    let low_ch = conn.create_channel().await.unwrap();
    let mut low = consume(&low_ch, &q, true, consumer_priority(1)).await;
    let high_ch = conn.create_channel().await.unwrap();
    let mut high = consume(&high_ch, &q, true, consumer_priority(10)).await;

    for i in 0..5 {
        publish(&ch, &q, &format!("m{i}"), BasicProperties::default()).await;
    }
    let got: Vec<String> = high.take(5).await.iter().map(body).collect();
    assert_eq!(got, ["m0", "m1", "m2", "m3", "m4"]);
    low.expect_quiet().await;

    delete_queues(&ch, &[&q]).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn lower_priority_consumer_gets_messages_only_while_the_higher_one_is_full() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("consumer-priority-credit-{}", unique());
    declare(&ch, &q, FieldTable::default()).await;

    let low_ch = conn.create_channel().await.unwrap();
    let mut low = consume(&low_ch, &q, true, consumer_priority(-5)).await;
    let high_ch = conn.create_channel().await.unwrap();
    high_ch
        .basic_qos(1, BasicQosOptions::default())
        .await
        .unwrap();
    let mut high = consume(&high_ch, &q, false, consumer_priority(5)).await;

    // The high-priority consumer can hold one unacked message; the rest overflow.
    for m in ["m0", "m1", "m2"] {
        publish(&ch, &q, m, BasicProperties::default()).await;
    }
    let held = high.next().await;
    assert_eq!(body(&held), "m0");
    let got: Vec<String> = low.take(2).await.iter().map(body).collect();
    assert_eq!(got, ["m1", "m2"]);

    // Once it acks, it has credit again and is preferred.
    held.ack(BasicAckOptions::default()).await.unwrap();
    publish(&ch, &q, "m3", BasicProperties::default()).await;
    let next = high.next().await;
    assert_eq!(body(&next), "m3");
    low.expect_quiet().await;
    next.ack(BasicAckOptions::default()).await.unwrap();

    delete_queues(&ch, &[&q]).await;
    conn.close(200, "OK".into()).await.unwrap();
}

// ---------------------------------------------------------------------------
// Direct reply-to
// ---------------------------------------------------------------------------

#[tokio::test]
async fn direct_reply_to_rpc_round_trip() {
    let broker = TestBroker::start().await;

    // The responder serves a request queue.
    let server_conn = broker.connect().await;
    let server = server_conn.create_channel().await.unwrap();
    let requests = format!("rpc-requests-{}", unique());
    declare(&server, &requests, FieldTable::default()).await;

    // The client consumes the pseudo-queue in no-ack mode, then publishes a request
    // asking for replies to amq.rabbitmq.reply-to.
    let client_conn = broker.connect().await;
    let client = client_conn.create_channel().await.unwrap();
    let mut replies = consume(
        &client,
        "amq.rabbitmq.reply-to",
        true,
        FieldTable::default(),
    )
    .await;
    client
        .basic_publish(
            "".into(),
            requests.as_str().into(),
            BasicPublishOptions::default(),
            b"ping",
            BasicProperties::default()
                .with_reply_to("amq.rabbitmq.reply-to".into())
                .with_correlation_id("req-1".into()),
        )
        .await
        .unwrap();

    // The responder sees reply_to rewritten to a routable, client-specific name.
    let request = within("the request", async {
        loop {
            if let Some(m) = get(&server, &requests).await {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(body(&request.delivery), "ping");
    let reply_to = request
        .delivery
        .properties
        .reply_to()
        .as_ref()
        .expect("reply_to")
        .as_str()
        .to_string();
    assert!(
        reply_to.starts_with("amq.rabbitmq.reply-to.") && reply_to.len() > 22,
        "{reply_to}"
    );

    // It replies through the default exchange to that name.
    server
        .basic_publish(
            "".into(),
            reply_to.as_str().into(),
            BasicPublishOptions::default(),
            b"pong",
            BasicProperties::default().with_correlation_id("req-1".into()),
        )
        .await
        .unwrap();
    let reply = replies.next().await;
    assert_eq!(body(&reply), "pong");
    assert_eq!(reply.exchange.as_str(), "");
    assert_eq!(reply.routing_key.as_str(), reply_to);
    assert_eq!(
        reply
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str()),
        Some("req-1")
    );

    server
        .queue_delete(requests.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    client_conn.close(200, "OK".into()).await.unwrap();
    server_conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn direct_reply_to_without_a_reply_consumer_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("rpc-no-consumer-{}", unique());
    declare(&ch, &q, FieldTable::default()).await;

    // The broker refuses the publish by closing the channel; the pending confirm
    // reports why.
    let client = confirming_channel(&conn).await;
    let confirm = client
        .basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"ping",
            BasicProperties::default().with_reply_to("amq.rabbitmq.reply-to".into()),
        )
        .await
        .unwrap();
    let text = expect_code(within("the channel error", confirm).await, 406);
    assert_eq!(
        text,
        "PRECONDITION_FAILED - fast reply consumer does not exist"
    );
    assert_eq!(
        message_count(&ch, &q).await,
        0,
        "the request was not routed"
    );

    delete_queues(&ch, &[&q]).await;
    conn.close(200, "OK".into()).await.unwrap();
}

// ---------------------------------------------------------------------------
// Argument validation
// ---------------------------------------------------------------------------

#[tokio::test]
async fn x_message_ttl_must_be_a_non_negative_integer() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let q = format!("bad-ttl-{}", unique());
    let arg = "x-message-ttl";
    assert_eq!(
        declare_error(&conn, &q, args(&[(arg, long_str("1000"))])).await,
        invalid_arg(arg, &q, "\"expected integer, got longstr\"")
    );
    assert_eq!(
        declare_error(&conn, &q, args(&[(arg, AMQPValue::Boolean(true))])).await,
        invalid_arg(arg, &q, "\"expected integer, got bool\"")
    );
    assert_eq!(
        declare_error(&conn, &q, args(&[(arg, AMQPValue::LongInt(-1))])).await,
        invalid_arg(arg, &q, "{value_negative,-1}")
    );
    assert_eq!(
        declare_error(&conn, &q, args(&[(arg, AMQPValue::LongLongInt(1 << 40))])).await,
        invalid_arg(arg, &q, "{value_too_large,1099511627776}")
    );
    // The connection survives: these are channel errors.
    assert!(conn.status().connected());
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn x_expires_must_be_a_positive_integer() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let q = format!("bad-expires-{}", unique());
    let arg = "x-expires";
    assert_eq!(
        declare_error(&conn, &q, args(&[(arg, AMQPValue::LongInt(0))])).await,
        invalid_arg(arg, &q, "{value_zero,0}")
    );
    assert_eq!(
        declare_error(&conn, &q, args(&[(arg, AMQPValue::LongInt(-5))])).await,
        invalid_arg(arg, &q, "{value_negative,-5}")
    );
    assert_eq!(
        declare_error(&conn, &q, args(&[(arg, long_str("100"))])).await,
        invalid_arg(arg, &q, "\"expected integer, got longstr\"")
    );
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn length_limits_must_be_non_negative_integers() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let q = format!("bad-length-{}", unique());
    assert_eq!(
        declare_error(&conn, &q, args(&[("x-max-length", AMQPValue::LongInt(-1))])).await,
        invalid_arg("x-max-length", &q, "{value_negative,-1}")
    );
    assert_eq!(
        declare_error(&conn, &q, args(&[("x-max-length", long_str("10"))])).await,
        invalid_arg("x-max-length", &q, "\"expected integer, got longstr\"")
    );
    assert_eq!(
        declare_error(
            &conn,
            &q,
            args(&[("x-max-length-bytes", AMQPValue::LongInt(-1))])
        )
        .await,
        invalid_arg("x-max-length-bytes", &q, "{value_negative,-1}")
    );
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn x_overflow_must_be_a_known_behaviour() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let q = format!("bad-overflow-{}", unique());
    assert_eq!(
        declare_error(&conn, &q, args(&[("x-overflow", long_str("drop-tail"))])).await,
        invalid_arg("x-overflow", &q, "invalid_overflow")
    );
    assert_eq!(
        declare_error(&conn, &q, args(&[("x-overflow", AMQPValue::LongInt(1))])).await,
        invalid_arg("x-overflow", &q, "{unacceptable_type,signedint}")
    );
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn x_max_priority_must_be_between_0_and_255() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let q = format!("bad-max-priority-{}", unique());
    assert_eq!(
        declare_error(
            &conn,
            &q,
            args(&[("x-max-priority", AMQPValue::LongInt(256))])
        )
        .await,
        invalid_arg("x-max-priority", &q, "{max_value_exceeded,256}")
    );
    assert_eq!(
        declare_error(
            &conn,
            &q,
            args(&[("x-max-priority", AMQPValue::LongInt(-1))])
        )
        .await,
        invalid_arg("x-max-priority", &q, "{value_negative,-1}")
    );
    assert_eq!(
        declare_error(&conn, &q, args(&[("x-max-priority", long_str("5"))])).await,
        invalid_arg("x-max-priority", &q, "\"expected integer, got longstr\"")
    );
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn x_single_active_consumer_must_be_a_boolean() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let q = format!("bad-sac-{}", unique());
    let arg = "x-single-active-consumer";
    assert_eq!(
        declare_error(&conn, &q, args(&[(arg, long_str("true"))])).await,
        invalid_arg(arg, &q, "{unacceptable_type,longstr}")
    );
    assert_eq!(
        declare_error(&conn, &q, args(&[(arg, AMQPValue::LongInt(1))])).await,
        invalid_arg(arg, &q, "{unacceptable_type,signedint}")
    );
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn dead_letter_arguments_are_checked() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let q = format!("bad-dlx-{}", unique());
    // A routing key without an exchange to use it with.
    assert_eq!(
        declare_error(
            &conn,
            &q,
            args(&[("x-dead-letter-routing-key", long_str("k"))])
        )
        .await,
        invalid_arg(
            "x-dead-letter-routing-key",
            &q,
            "routing_key_but_no_dlx_defined"
        )
    );
    assert_eq!(
        declare_error(
            &conn,
            &q,
            args(&[
                ("x-dead-letter-exchange", long_str("")),
                ("x-dead-letter-routing-key", AMQPValue::LongInt(3)),
            ])
        )
        .await,
        invalid_arg(
            "x-dead-letter-routing-key",
            &q,
            "{unacceptable_type,signedint}"
        )
    );
    // The exchange name must be a string (note RabbitMQ's different wording here).
    assert_eq!(
        declare_error(
            &conn,
            &q,
            args(&[("x-dead-letter-exchange", AMQPValue::LongInt(1))])
        )
        .await,
        (
            406,
            format!(
                "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue '{q}' in vhost '/'"
            )
        )
    );
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn redeclare_with_a_different_x_message_ttl_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = format!("redeclare-ttl-{}", unique());
    declare(
        &ch,
        &q,
        args(&[("x-message-ttl", AMQPValue::LongInt(1000))]),
    )
    .await;

    // The same value is equivalent, even when sent as another integer type.
    declare(
        &ch,
        &q,
        args(&[("x-message-ttl", AMQPValue::LongInt(1000))]),
    )
    .await;
    declare(
        &ch,
        &q,
        args(&[("x-message-ttl", AMQPValue::LongLongInt(1000))]),
    )
    .await;

    assert_eq!(
        declare_error(
            &conn,
            &q,
            args(&[("x-message-ttl", AMQPValue::LongInt(2000))])
        )
        .await,
        (
            406,
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{q}' in vhost '/': received '2000' but current is '1000'"
            )
        )
    );
    assert_eq!(
        declare_error(&conn, &q, FieldTable::default()).await,
        (
            406,
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{q}' in vhost '/': received none but current is the value '1000' of type 'signedint'"
            )
        )
    );

    delete_queues(&ch, &[&q]).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn invalid_per_message_expiration_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("bad-expiration-{}", unique());
    declare(&ch, &q, FieldTable::default()).await;

    for (expiration, detail) in [
        ("soon", "no_integer"),
        ("-1", "{value_negative,-1}"),
        ("1.5", "{leftover_string,\".5\"}"),
    ] {
        let publisher = confirming_channel(&conn).await;
        let confirm = publisher
            .basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                b"x",
                BasicProperties::default().with_expiration(expiration.into()),
            )
            .await
            .unwrap();
        let text = expect_code(within("the channel error", confirm).await, 406);
        assert_eq!(
            text,
            format!("PRECONDITION_FAILED - invalid expiration '{expiration}': {detail}")
        );
    }
    assert_eq!(message_count(&ch, &q).await, 0);

    delete_queues(&ch, &[&q]).await;
    conn.close(200, "OK".into()).await.unwrap();
}
