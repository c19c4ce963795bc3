//! Quorum queues (`x-queue-type: quorum`) as RabbitMQ 3.10 runs them on one node: the
//! declarations it refuses, the delivery count and `x-delivery-limit`, dead-lettering,
//! `reject-publish` as a soft limit, `drop-head`, message TTL and single active consumer.
//! Every test also passes against RabbitMQ 3.10 (`AMQP_TEST_URL`).

mod common;

use common::{
    Deliveries, TestBroker, body, confirming_channel, expect_code, passive, table, unique, within,
};
use lapin::message::{BasicGetMessage, Delivery};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, BasicRejectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation};
use std::time::Duration;

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

fn int(n: i32) -> AMQPValue {
    AMQPValue::LongInt(n)
}

const DURABLE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

/// Declares a durable quorum queue with `extra` arguments; returns its name.
async fn quorum(ch: &Channel, extra: &[(&str, AMQPValue)]) -> String {
    let name = format!("qq-{}", unique());
    let mut args = vec![("x-queue-type", text("quorum"))];
    args.extend(extra.iter().cloned());
    ch.queue_declare(name.as_str().into(), DURABLE, table(&args))
        .await
        .unwrap();
    name
}

/// A durable classic queue to dead-letter into; returns its name.
async fn dead_letter_queue(ch: &Channel) -> String {
    let name = format!("qq-dlq-{}", unique());
    ch.queue_declare(name.as_str().into(), DURABLE, FieldTable::default())
        .await
        .unwrap();
    name
}

/// A quorum queue with `extra` arguments dead-lettering into a new classic queue;
/// returns both names.
async fn quorum_dead_lettering(ch: &Channel, extra: &[(&str, AMQPValue)]) -> (String, String) {
    let dlq = dead_letter_queue(ch).await;
    let mut args = vec![
        ("x-dead-letter-exchange", text("")),
        ("x-dead-letter-routing-key", text(&dlq)),
    ];
    args.extend(extra.iter().cloned());
    (quorum(ch, &args).await, dlq)
}

async fn publish(ch: &Channel, queue: &str, body: &str) -> Confirmation {
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
    .unwrap()
}

async fn get(ch: &Channel, queue: &str) -> Option<BasicGetMessage> {
    ch.basic_get(queue.into(), BasicGetOptions::default())
        .await
        .unwrap()
}

/// Polls the queue with basic.get (no ack) until a message comes, within a deadline
/// (dead-lettering and expiry happen after the operation that causes them returns).
async fn get_soon(ch: &Channel, queue: &str) -> BasicGetMessage {
    within("a message", async {
        loop {
            let got = ch
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap();
            if let Some(m) = got {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn header<'a>(d: &'a Delivery, key: &str) -> Option<&'a AMQPValue> {
    d.properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(key))
}

/// `x-delivery-count` as RabbitMQ writes it (a long-long), or None without the header.
fn delivery_count(d: &Delivery) -> Option<i64> {
    header(d, "x-delivery-count").map(|v| match v {
        AMQPValue::LongLongInt(n) => *n,
        other => panic!("x-delivery-count should be a long-long, got {other:?}"),
    })
}

fn first_death_reason(d: &Delivery) -> String {
    match header(d, "x-first-death-reason") {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("expected x-first-death-reason, got {other:?}"),
    }
}

async fn message_count(ch: &Channel, queue: &str) -> u32 {
    ch.queue_declare(queue.into(), passive(), FieldTable::default())
        .await
        .unwrap()
        .message_count()
}

#[tokio::test]
async fn declarations_are_checked_as_rabbitmq_checks_quorum_queues() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    // (arguments besides x-queue-type, durable, exclusive, auto-delete, the refusal's text
    // after "invalid ..." or None when RabbitMQ takes it).
    let refused = |arg: &str| {
        format!("arg '{arg}' for queue 'Q' in vhost '/' of queue type rabbit_quorum_queue")
    };
    type Case<'a> = (Vec<(&'a str, AMQPValue)>, bool, bool, bool, Option<String>);
    let cases: Vec<Case> = vec![
        (vec![], true, false, false, None),
        (vec![], false, false, false, Some("property 'non-durable' for queue 'Q' in vhost '/'".into())),
        (vec![], true, true, false, Some("property 'exclusive-owner' for queue 'Q' in vhost '/'".into())),
        (vec![], true, false, true, Some("property 'auto-delete' for queue 'Q' in vhost '/'".into())),
        (vec![("x-max-priority", int(5))], true, false, false, Some(refused("x-max-priority"))),
        (vec![("x-queue-mode", text("lazy"))], true, false, false, Some(refused("x-queue-mode"))),
        (vec![("x-queue-version", int(2))], true, false, false, Some(refused("x-queue-version"))),
        (vec![("x-dead-letter-strategy", text("bogus"))], true, false, false,
            Some("arg 'x-dead-letter-strategy' for queue 'Q' in vhost '/': invalid_dlx_strategy".into())),
        (vec![("x-dead-letter-strategy", int(1))], true, false, false,
            Some("arg 'x-dead-letter-strategy' for queue 'Q' in vhost '/': {unacceptable_type,signedint}".into())),
        (vec![("x-max-in-memory-length", int(-1))], true, false, false,
            Some("arg 'x-max-in-memory-length' for queue 'Q' in vhost '/': {value_negative,-1}".into())),
        // Taken (and ignored, or applied) as RabbitMQ 3.10 takes them.
        (vec![("x-max-in-memory-length", int(5))], true, false, false, None),
        (vec![("x-overflow", text("reject-publish-dlx"))], true, false, false, None),
        (vec![("x-dead-letter-strategy", text("at-least-once"))], true, false, false, None),
        (vec![("x-delivery-limit", int(-1))], true, false, false, None),
        (vec![("x-delivery-limit", text("x"))], true, false, false, None),
        (vec![("x-quorum-initial-group-size", int(3))], true, false, false, None),
    ];
    for (extra, durable, exclusive, auto_delete, expected) in cases {
        let name = format!("qq-decl-{}", unique());
        let ch = conn.create_channel().await.unwrap();
        let mut args = vec![("x-queue-type", text("quorum"))];
        args.extend(extra.iter().cloned());
        let opts = QueueDeclareOptions {
            durable,
            exclusive,
            auto_delete,
            ..Default::default()
        };
        let res = ch
            .queue_declare(name.as_str().into(), opts, table(&args))
            .await;
        match expected {
            None => {
                res.unwrap_or_else(|e| panic!("{extra:?} refused: {e}"));
                ch.queue_delete(name.as_str().into(), Default::default())
                    .await
                    .unwrap();
            }
            Some(t) => {
                let got = expect_code(res, 406);
                let want = format!(
                    "PRECONDITION_FAILED - invalid {}",
                    t.replace("'Q'", &format!("'{name}'"))
                );
                assert_eq!(got, want, "{extra:?}");
            }
        }
    }
}

#[tokio::test]
async fn the_queue_type_is_part_of_redeclare_equivalence() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let classic = format!("qq-classic-{}", unique());
    ch.queue_declare(classic.as_str().into(), DURABLE, FieldTable::default())
        .await
        .unwrap();
    let q = quorum(&ch, &[("x-dead-letter-strategy", text("at-least-once"))]).await;
    let cases = [
        (
            classic.clone(),
            table(&[("x-queue-type", text("quorum"))]),
            "received the value 'quorum' of type 'longstr' but current is none".to_string(),
            "x-queue-type",
        ),
        (
            q.clone(),
            table(&[
                ("x-queue-type", text("classic")),
                ("x-dead-letter-strategy", text("at-least-once")),
            ]),
            "received 'classic' but current is 'quorum'".to_string(),
            "x-queue-type",
        ),
        (
            q.clone(),
            table(&[("x-queue-type", text("quorum"))]),
            "received none but current is the value 'at-least-once' of type 'longstr'".to_string(),
            "x-dead-letter-strategy",
        ),
        (
            q.clone(),
            table(&[
                ("x-queue-type", text("quorum")),
                ("x-dead-letter-strategy", text("at-least-once")),
                ("x-delivery-limit", int(3)),
            ]),
            "received the value '3' of type 'signedint' but current is none".to_string(),
            "x-delivery-limit",
        ),
    ];
    for (name, args, detail, arg) in cases {
        let ch = conn.create_channel().await.unwrap();
        let got = expect_code(
            ch.queue_declare(name.as_str().into(), DURABLE, args).await,
            406,
        );
        assert_eq!(
            got,
            format!(
                "PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{name}' in vhost '/': {detail}"
            )
        );
    }
}

#[tokio::test]
async fn each_return_counts_and_redeliveries_carry_x_delivery_count() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = quorum(&ch, &[]).await;
    publish(&ch, &q, "m").await;
    let c = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut deliveries = Deliveries::new(c);
    // Returned by nack, then by reject: the count goes up with each.
    let first = deliveries.next().await;
    assert_eq!((first.redelivered, delivery_count(&first)), (false, None));
    first
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let second = deliveries.next().await;
    assert_eq!(
        (second.redelivered, delivery_count(&second)),
        (true, Some(1))
    );
    second
        .reject(BasicRejectOptions { requeue: true })
        .await
        .unwrap();
    let third = deliveries.next().await;
    assert_eq!((third.redelivered, delivery_count(&third)), (true, Some(2)));
    assert_eq!(body(&third), "m");
    third.ack(BasicAckOptions::default()).await.unwrap();
}

#[tokio::test]
async fn basic_get_carries_x_delivery_count_from_zero_and_a_closed_channel_counts() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = quorum(&ch, &[]).await;
    publish(&ch, &q, "m").await;
    let got = get(&ch, &q).await.expect("a message");
    assert_eq!(delivery_count(&got.delivery), Some(0));
    // Closing the channel with the message unacknowledged returns it: that counts.
    ch.close(200, "bye".into()).await.unwrap();
    let ch = confirming_channel(&conn).await;
    let got = get(&ch, &q).await.expect("the message back");
    assert_eq!(
        (got.delivery.redelivered, delivery_count(&got.delivery)),
        (true, Some(1))
    );
    got.delivery.ack(BasicAckOptions::default()).await.unwrap();
}

#[tokio::test]
async fn past_the_delivery_limit_a_message_is_dead_lettered_with_reason_delivery_limit() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let (q, dlq) = quorum_dead_lettering(&ch, &[("x-delivery-limit", int(2))]).await;
    publish(&ch, &q, "m").await;
    // A limit of 2 delivers the message three times.
    for expected in [0, 1, 2] {
        let got = get(&ch, &q).await.expect("the message");
        assert_eq!(delivery_count(&got.delivery), Some(expected));
        got.delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let dead = get_soon(&ch, &dlq).await;
    assert_eq!(first_death_reason(&dead.delivery), "delivery_limit");
    // The copy goes without the source queue's delivery count.
    assert_eq!(delivery_count(&dead.delivery), None);
    assert_eq!(message_count(&ch, &q).await, 0);
}

#[tokio::test]
async fn past_the_delivery_limit_without_a_dead_letter_exchange_the_message_is_dropped() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = quorum(&ch, &[("x-delivery-limit", int(0))]).await;
    publish(&ch, &q, "m").await;
    let got = get(&ch, &q).await.expect("the message");
    got.delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(get(&ch, &q).await.is_none(), "dropped at its first return");
}

#[tokio::test]
async fn reject_publish_is_a_soft_limit_until_under_eighty_percent() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = quorum(
        &ch,
        &[
            ("x-max-length", int(2)),
            ("x-overflow", text("reject-publish")),
        ],
    )
    .await;
    let mut acked = Vec::new();
    for i in 0..5 {
        acked.push(publish(&ch, &q, &i.to_string()).await.is_ack());
    }
    // As RabbitMQ's rabbit_fifo: the publish that takes the queue over is still taken.
    assert_eq!(acked, [true, true, true, false, false]);
    assert_eq!(message_count(&ch, &q).await, 3);
    // Two left of two: still blocked; one left (under 80%): taken again.
    get_soon(&ch, &q).await;
    assert!(!publish(&ch, &q, "5").await.is_ack());
    get_soon(&ch, &q).await;
    assert!(publish(&ch, &q, "6").await.is_ack());
}

#[tokio::test]
async fn drop_head_and_reject_publish_dlx_drop_the_oldest() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    // RabbitMQ 3.10 runs reject-publish-dlx on a quorum queue as drop-head.
    for overflow in ["drop-head", "reject-publish-dlx"] {
        let q = quorum(
            &ch,
            &[("x-max-length", int(1)), ("x-overflow", text(overflow))],
        )
        .await;
        assert!(publish(&ch, &q, "old").await.is_ack());
        assert!(publish(&ch, &q, "new").await.is_ack(), "{overflow}");
        assert_eq!(message_count(&ch, &q).await, 1, "{overflow}");
        assert_eq!(body(&get_soon(&ch, &q).await.delivery), "new", "{overflow}");
    }
}

#[tokio::test]
async fn message_ttl_expires_and_dead_letters() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let (q, dlq) = quorum_dead_lettering(&ch, &[("x-message-ttl", int(50))]).await;
    publish(&ch, &q, "m").await;
    let dead = get_soon(&ch, &dlq).await;
    assert_eq!(first_death_reason(&dead.delivery), "expired");
    assert_eq!(message_count(&ch, &q).await, 0);
}

#[tokio::test]
async fn single_active_consumer_delivers_to_the_first_until_it_goes() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = quorum(
        &ch,
        &[("x-single-active-consumer", AMQPValue::Boolean(true))],
    )
    .await;
    let subscribe = |ch: Channel, q: String| async move {
        ch.basic_qos(10, BasicQosOptions::default()).await.unwrap();
        let c = ch
            .basic_consume(
                q.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        Deliveries::new(c)
    };
    let first_ch = conn.create_channel().await.unwrap();
    let mut first = subscribe(first_ch.clone(), q.clone()).await;
    let mut second = subscribe(conn.create_channel().await.unwrap(), q.clone()).await;
    for i in 0..3 {
        publish(&ch, &q, &i.to_string()).await;
    }
    let got: Vec<String> = first.take(3).await.iter().map(body).collect();
    assert_eq!(got, ["0", "1", "2"]);
    second.expect_quiet().await;
    first_ch.close(200, "bye".into()).await.unwrap();
    publish(&ch, &q, "3").await;
    assert_eq!(body(&second.next().await), "3");
}

/// Declares a quorum queue dead-lettering at least once (`reject-publish`, as the strategy
/// requires) into `dlx` with `extra` arguments; returns its name.
async fn at_least_once(ch: &Channel, dlx: &str, extra: &[(&str, AMQPValue)]) -> String {
    let mut args = vec![
        ("x-dead-letter-exchange", text(dlx)),
        ("x-dead-letter-strategy", text("at-least-once")),
        ("x-overflow", text("reject-publish")),
    ];
    args.extend(extra.iter().cloned());
    quorum(ch, &args).await
}

/// Takes `n` messages from `queue` with basic.get and rejects them (dead-lettering them).
async fn reject_all(ch: &Channel, queue: &str, n: usize) {
    for _ in 0..n {
        let m = get(ch, queue).await.expect("a message to reject");
        m.delivery
            .reject(BasicRejectOptions { requeue: false })
            .await
            .unwrap();
    }
}

/// Waits until the management API shows `queue` holding `dlx` discards (RabbitMQ samples
/// its statistics every few seconds); returns the queue's JSON.
async fn wait_for_discards(broker: &TestBroker, queue: &str, dlx: u64) -> serde_json::Value {
    broker
        .mgmt()
        .wait_for(&format!("/queues/%2F/{queue}"), "the discards", |q| {
            q["messages_dlx"] == dlx
        })
        .await
}

/// RabbitMQ's dead-letter worker looks at its discards again when the queue's policy
/// changes (or after 3 minutes): against RabbitMQ a policy is put on `queue`, and its name
/// returned for [`unnudge`]. Warren retries as soon as the topology changes: nothing to do.
async fn nudge_rabbitmq(broker: &TestBroker, queue: &str) -> Option<String> {
    if broker.is_warren() {
        return None;
    }
    let policy = format!("qq-policy-{}", unique());
    broker
        .admin()
        .put_policy(
            "/",
            &policy,
            serde_json::json!({"pattern": format!("^{queue}$"), "apply-to": "queues",
                "definition": {"delivery-limit": 50}}),
        )
        .await;
    Some(policy)
}

async fn unnudge(broker: &TestBroker, policy: Option<String>) {
    if let Some(p) = policy {
        broker.admin().delete_policy("/", &p).await;
    }
}

/// A fanout exchange bound to a new durable queue; returns the queue's name.
async fn fanout_into_new_queue(ch: &Channel, exchange: &str, args: &[(&str, AMQPValue)]) -> String {
    ch.exchange_declare(
        exchange.into(),
        lapin::ExchangeKind::Fanout,
        lapin::options::ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let q = format!("qq-target-{}", unique());
    ch.queue_declare(q.as_str().into(), DURABLE, table(args))
        .await
        .unwrap();
    ch.queue_bind(
        q.as_str().into(),
        exchange.into(),
        "".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    q
}

#[tokio::test]
async fn at_least_once_keeps_what_a_missing_dead_letter_exchange_cannot_take() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let dlx = format!("qq-dlx-{}", unique());
    let q = at_least_once(&ch, &dlx, &[]).await;
    for body in ["hello0", "hello1"] {
        assert!(publish(&ch, &q, body).await.is_ack());
    }
    reject_all(&ch, &q, 2).await;
    // Kept in the source as rabbit_fifo keeps its discards: counted in `messages` and
    // `message_bytes` (bodies), not as ready nor in declare-ok's count.
    // (RabbitMQ samples these at different moments: waited for together.)
    let info = broker
        .mgmt()
        .wait_for(&format!("/queues/%2F/{q}"), "the discards", |info| {
            info["messages_dlx"] == 2
                && info["messages"] == 2
                && info["message_bytes_dlx"] == 12
                && info["message_bytes"] == 12
        })
        .await;
    assert_eq!(info["messages_ready"], 0, "{info}");
    assert_eq!(message_count(&ch, &q).await, 0);
    assert!(
        get(&ch, &q).await.is_none(),
        "not deliverable from the source"
    );
    // The exchange appears, bound to a queue. Warren retries at once; RabbitMQ on its
    // worker's timer (3 minutes) or when the queue's policy changes, which this test then
    // does.
    let target = fanout_into_new_queue(&ch, &dlx, &[]).await;
    let nudge = nudge_rabbitmq(&broker, &q).await;
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let m = get_soon(&ch, &target).await;
        assert_eq!(first_death_reason(&m.delivery), "rejected");
        bodies.push(body(&m.delivery));
    }
    bodies.sort();
    assert_eq!(bodies, ["hello0", "hello1"]);
    wait_for_discards(&broker, &q, 0).await;
    unnudge(&broker, nudge).await;
}

#[tokio::test]
async fn at_least_once_discards_count_toward_reject_publish() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let dlx = format!("qq-dlx-{}", unique());
    let q = at_least_once(&ch, &dlx, &[("x-max-length", int(3))]).await;
    for body in ["a", "b"] {
        assert!(publish(&ch, &q, body).await.is_ack());
    }
    reject_all(&ch, &q, 2).await;
    wait_for_discards(&broker, &q, 2).await;
    // Two discards and no ready message: the next publish is taken (3 of 3), the one
    // after takes the queue over (soft limit), and then publishes are refused.
    let mut acked = Vec::new();
    for i in 0..4 {
        acked.push(publish(&ch, &q, &i.to_string()).await.is_ack());
    }
    assert_eq!(acked, [true, true, false, false]);
    assert_eq!(message_count(&ch, &q).await, 2);
}

#[tokio::test]
async fn at_least_once_routing_nowhere_keeps_the_message_until_a_binding_takes_it() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let dlx = format!("qq-dlx-{}", unique());
    ch.exchange_declare(
        dlx.as_str().into(),
        lapin::ExchangeKind::Direct,
        lapin::options::ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let q = at_least_once(&ch, &dlx, &[("x-dead-letter-routing-key", text("dead"))]).await;
    assert!(publish(&ch, &q, "m").await.is_ack());
    reject_all(&ch, &q, 1).await;
    wait_for_discards(&broker, &q, 1).await;
    let target = dead_letter_queue(&ch).await;
    ch.queue_bind(
        target.as_str().into(),
        dlx.as_str().into(),
        "dead".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let nudge = nudge_rabbitmq(&broker, &q).await;
    let m = get_soon(&ch, &target).await;
    assert_eq!(body(&m.delivery), "m");
    assert_eq!(first_death_reason(&m.delivery), "rejected");
    wait_for_discards(&broker, &q, 0).await;
    unnudge(&broker, nudge).await;
}

/// A target that refuses the copy (`reject-publish`, full) keeps the message in the source;
/// the retry, once the target has room, sends it only to the targets that have not taken
/// it. Warren only: RabbitMQ retries a refused copy after its worker's confirm timeout
/// (`dead_letter_worker_publisher_confirm_timeout`, 3 minutes).
#[tokio::test]
async fn at_least_once_retries_a_refused_copy_on_the_timer_without_duplicating_the_others() {
    let broker = TestBroker::start_warren_with(|c| c.amqp.dead_letter_retry_interval = 100).await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let dlx = format!("qq-dlx-{}", unique());
    let q = at_least_once(&ch, &dlx, &[]).await;
    let open = fanout_into_new_queue(&ch, &dlx, &[]).await;
    let full = format!("qq-full-{}", unique());
    ch.queue_declare(
        full.as_str().into(),
        DURABLE,
        table(&[
            ("x-max-length", int(1)),
            ("x-overflow", text("reject-publish")),
        ]),
    )
    .await
    .unwrap();
    ch.queue_bind(
        full.as_str().into(),
        dlx.as_str().into(),
        "".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    assert!(publish(&ch, &full, "filler").await.is_ack());
    assert!(publish(&ch, &q, "m").await.is_ack());
    reject_all(&ch, &q, 1).await;
    assert_eq!(body(&get_soon(&ch, &open).await.delivery), "m");
    wait_for_discards(&broker, &q, 1).await;
    // Room in the full target: the timer's retry fills it, and only it.
    assert_eq!(body(&get_soon(&ch, &full).await.delivery), "filler");
    assert_eq!(body(&get_soon(&ch, &full).await.delivery), "m");
    wait_for_discards(&broker, &q, 0).await;
    assert_eq!(message_count(&ch, &open).await, 0, "no second copy");
}

/// Switching the queue away from at-least-once (here: its policy's dead-letter exchange
/// goes) deletes what it kept, as RabbitMQ's `rabbit_fifo_dlx` does.
#[tokio::test]
async fn at_least_once_discards_go_when_the_queue_stops_dead_lettering() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = quorum(
        &ch,
        &[
            ("x-dead-letter-strategy", text("at-least-once")),
            ("x-overflow", text("reject-publish")),
        ],
    )
    .await;
    let admin = broker.admin();
    let policy = format!("qq-policy-{}", unique());
    let put = |dlx: &'static str| {
        serde_json::json!({"pattern": format!("^{q}$"), "apply-to": "queues",
            "definition": {"dead-letter-exchange": dlx}})
    };
    admin.put_policy("/", &policy, put("qq-nowhere")).await;
    assert!(publish(&ch, &q, "m").await.is_ack());
    reject_all(&ch, &q, 1).await;
    wait_for_discards(&broker, &q, 1).await;
    admin.delete_policy("/", &policy).await;
    // (RabbitMQ samples `messages` and `messages_dlx` at different moments.)
    broker
        .mgmt()
        .wait_for(&format!("/queues/%2F/{q}"), "no discards", |info| {
            info["messages_dlx"] == 0 && info["messages"] == 0
        })
        .await;
}
