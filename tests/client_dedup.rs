//! Deduplication at the exchange, as the rabbitmq-message-deduplication plugin's
//! `x-message-deduplication` exchange type defines it: a message whose
//! `x-deduplication-header` value was seen within the cache's TTL is confirmed but not
//! routed; the cache holds at most `x-cache-size` values. Policies carry the plugin's keys
//! (`x-cache-size`, `x-cache-ttl` over an exchange's arguments; `x-message-deduplication`
//! for queues), validated with its texts. Disk caches across restarts:
//! `durability_dedup.rs`.
//!
//! The plugin is not shipped with Debian's RabbitMQ, so these tests are written from its
//! README and its own test suite (exchange_SUITE: deduplicate_message,
//! deduplicate_message_ttl, deduplicate_message_cache_overflow, declare_exchanges) and run
//! on Warren only.

mod common;

use common::{TestBroker, amqp_error, unique};
use lapin::options::{BasicGetOptions, BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, ExchangeKind};
use std::time::Duration;

fn dedup_kind() -> ExchangeKind {
    ExchangeKind::Custom("x-message-deduplication".into())
}

fn cache_args(size: i64, ttl_ms: Option<i64>) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-cache-size".into(), AMQPValue::LongLongInt(size));
    if let Some(t) = ttl_ms {
        args.insert("x-cache-ttl".into(), AMQPValue::LongLongInt(t));
    }
    args
}

/// A deduplication exchange with one queue bound to it; returns (exchange, queue).
async fn exchange_and_queue(ch: &Channel, args: FieldTable) -> (String, String) {
    let x = format!("dedup-{}", unique());
    ch.exchange_declare(
        x.as_str().into(),
        dedup_kind(),
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();
    // Like fanout: the binding key does not matter.
    let q = common::bound_exclusive_queue(ch, &x, "#").await;
    (x, q)
}

/// Publishes with confirms; `id` is the deduplication header, `ttl` a per-message
/// `x-cache-ttl`. Returns whether the broker acked.
async fn publish(ch: &Channel, x: &str, id: Option<&str>, ttl: Option<i64>) -> bool {
    let mut h = FieldTable::default();
    if let Some(id) = id {
        h.insert(
            "x-deduplication-header".into(),
            AMQPValue::LongString(LongString::from(id)),
        );
    }
    if let Some(t) = ttl {
        h.insert("x-cache-ttl".into(), AMQPValue::LongLongInt(t));
    }
    ch.basic_publish(
        x.into(),
        "any".into(),
        BasicPublishOptions::default(),
        b"payload",
        BasicProperties::default().with_headers(h),
    )
    .await
    .unwrap()
    .await
    .unwrap()
    .is_ack()
}

async fn confirming(b: &TestBroker) -> (lapin::Connection, Channel) {
    let conn = b.connect().await;
    let ch = common::confirming_channel(&conn).await;
    (conn, ch)
}

#[tokio::test]
async fn a_duplicate_is_confirmed_but_not_routed() {
    let b = TestBroker::start_warren_with(|_| {}).await;
    let (_conn, ch) = confirming(&b).await;
    let (x, q) = exchange_and_queue(&ch, cache_args(10, Some(10_000))).await;

    for _ in 0..5 {
        assert!(publish(&ch, &x, Some("deduplicate-this"), None).await);
    }
    assert_eq!(common::ready_count(&ch, &q).await, 1);

    // Without the header nothing is checked.
    for _ in 0..2 {
        assert!(publish(&ch, &x, None, None).await);
    }
    assert_eq!(common::ready_count(&ch, &q).await, 3);
    let first = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.delivery.data, b"payload");
}

#[tokio::test]
async fn a_value_is_new_again_once_its_ttl_has_passed() {
    let b = TestBroker::start_warren_with(|_| {}).await;
    let (_conn, ch) = confirming(&b).await;
    let (x, q) = exchange_and_queue(&ch, cache_args(10, Some(300))).await;

    // The exchange's TTL.
    publish(&ch, &x, Some("deduplicate-this"), None).await;
    publish(&ch, &x, Some("deduplicate-this"), None).await;
    assert_eq!(common::ready_count(&ch, &q).await, 1);
    // Time passing is the behaviour under test, not a synchronisation.
    tokio::time::sleep(Duration::from_millis(400)).await;
    publish(&ch, &x, Some("deduplicate-this"), None).await;
    assert_eq!(common::ready_count(&ch, &q).await, 2);

    // A message's own x-cache-ttl overrides it.
    publish(&ch, &x, Some("deduplicate-that"), Some(60_000)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    publish(&ch, &x, Some("deduplicate-that"), Some(60_000)).await;
    assert_eq!(common::ready_count(&ch, &q).await, 3);
}

#[tokio::test]
async fn a_full_cache_forgets_its_oldest_value() {
    let b = TestBroker::start_warren_with(|_| {}).await;
    let (_conn, ch) = confirming(&b).await;
    let (x, q) = exchange_and_queue(&ch, cache_args(1, None)).await;
    for id in ["deduplicate-this", "deduplicate-that", "deduplicate-this"] {
        publish(&ch, &x, Some(id), None).await;
    }
    assert_eq!(common::ready_count(&ch, &q).await, 3);
}

#[tokio::test]
async fn a_mandatory_duplicate_comes_back_as_unroutable() {
    let b = TestBroker::start_warren_with(|_| {}).await;
    let (_conn, ch) = confirming(&b).await;
    let (x, q) = exchange_and_queue(&ch, cache_args(10, None)).await;
    let mut h = FieldTable::default();
    h.insert(
        "x-deduplication-header".into(),
        AMQPValue::LongString("once".into()),
    );
    let mut returned = Vec::new();
    for _ in 0..2 {
        let confirm = ch
            .basic_publish(
                x.as_str().into(),
                "k".into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                b"m",
                BasicProperties::default().with_headers(h.clone()),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        returned.push(confirm.take_message().is_some());
    }
    // The plugin's route gives no queue for a duplicate: the broker returns it.
    assert_eq!(returned, [false, true]);
    assert_eq!(common::ready_count(&ch, &q).await, 1);
}

#[tokio::test]
async fn cache_arguments_are_checked_at_declaration() {
    let b = TestBroker::start_warren_with(|_| {}).await;
    let conn = b.connect().await;
    let text = |t: &str| format!("PRECONDITION_FAILED - {t}");
    let size_text =
        text("Missing or invalid argument, 'x-cache-size' must be an integer greater than 0");
    let mut strings = FieldTable::default();
    strings.insert("x-cache-size".into(), AMQPValue::LongString("foo".into()));
    strings.insert("x-cache-ttl".into(), AMQPValue::LongString("bar".into()));
    let mut bad_ttl = cache_args(5, Some(0));
    bad_ttl.insert("x-cache-ttl".into(), AMQPValue::LongLongInt(-5));
    let mut bad_persistence = cache_args(5, None);
    bad_persistence.insert(
        "x-cache-persistence".into(),
        AMQPValue::LongString("tape".into()),
    );
    let cases = [
        (FieldTable::default(), size_text.clone()),
        (cache_args(0, None), size_text.clone()),
        (strings, size_text),
        (
            bad_ttl,
            text("Invalid argument, 'x-cache-ttl' must be an integer greater than 0"),
        ),
        (
            bad_persistence,
            text("Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'"),
        ),
    ];
    for (args, want) in cases {
        let ch = conn.create_channel().await.unwrap();
        let err = ch
            .exchange_declare(
                format!("dedup-bad-{}", unique()).as_str().into(),
                dedup_kind(),
                ExchangeDeclareOptions::default(),
                args,
            )
            .await
            .expect_err("refused");
        assert_eq!(amqp_error(&err), (406, want));
    }
    // Strings of digits and every integer type are accepted, as by the plugin.
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-cache-size".into(), AMQPValue::LongString("10".into()));
    args.insert("x-cache-ttl".into(), AMQPValue::ShortInt(1000));
    args.insert(
        "x-cache-persistence".into(),
        AMQPValue::LongString("disk".into()),
    );
    ch.exchange_declare(
        format!("dedup-ok-{}", unique()).as_str().into(),
        dedup_kind(),
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();
}

// ---------------------------------------------------------------------------
// Queue level: `x-message-deduplication: true` (the plugin's queue_SUITE and README)
// ---------------------------------------------------------------------------

/// A deduplicating queue; returns its name.
async fn dedup_queue(ch: &Channel) -> String {
    let mut args = FieldTable::default();
    args.insert("x-message-deduplication".into(), AMQPValue::Boolean(true));
    ch.queue_declare(
        "".into(),
        lapin::options::QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap()
    .name()
    .as_str()
    .to_string()
}

#[tokio::test]
async fn a_queue_holds_one_message_per_value_until_it_is_consumed() {
    let b = TestBroker::start_warren_with(|_| {}).await;
    let (_conn, ch) = confirming(&b).await;
    let q = dedup_queue(&ch).await;

    // Duplicates are confirmed, not stored.
    let send = |id: Option<&'static str>| {
        let ch = ch.clone();
        let q = q.clone();
        async move {
            let mut h = FieldTable::default();
            if let Some(id) = id {
                h.insert(
                    "x-deduplication-header".into(),
                    AMQPValue::LongString(id.into()),
                );
            }
            ch.basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                b"payload",
                BasicProperties::default().with_headers(h),
            )
            .await
            .unwrap()
            .await
            .unwrap()
            .is_ack()
        }
    };
    for _ in 0..3 {
        assert!(send(Some("order-1")).await);
    }
    assert!(send(Some("order-2")).await);
    assert!(send(None).await);
    assert!(send(None).await);
    assert_eq!(
        common::ready_count(&ch, &q).await,
        4,
        "order-1 once, order-2, two without"
    );

    // Delivered but not yet acknowledged, the message is still in the queue: a
    // duplicate is still refused. A requeue keeps it; only the ack lets the value go.
    let held = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .unwrap();
    assert!(send(Some("order-1")).await);
    assert_eq!(common::ready_count(&ch, &q).await, 3);
    held.delivery
        .nack(lapin::options::BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(send(Some("order-1")).await);
    assert_eq!(common::ready_count(&ch, &q).await, 4);
    let held = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .unwrap();
    held.delivery
        .ack(lapin::options::BasicAckOptions::default())
        .await
        .unwrap();
    assert!(send(Some("order-1")).await);
    assert_eq!(
        common::ready_count(&ch, &q).await,
        4,
        "order-1 is new again once acked"
    );

    // A purge empties the set too.
    ch.queue_purge(q.as_str().into(), Default::default())
        .await
        .unwrap();
    assert!(send(Some("order-2")).await);
    assert_eq!(common::ready_count(&ch, &q).await, 1);
}

#[tokio::test]
async fn values_of_paged_out_messages_stay_in_the_queues_set() {
    // Past 4 KiB of ready bodies, new messages wait on disk only.
    let b = TestBroker::start_warren_with(|c| c.memory.paging_threshold = "4KiB".into()).await;
    let (_conn, ch) = confirming(&b).await;
    let q = dedup_queue(&ch).await;
    let body = vec![b'x'; 1024];
    let send = |id: String| {
        let (ch, q, body) = (ch.clone(), q.clone(), body.clone());
        async move {
            let mut h = FieldTable::default();
            h.insert(
                "x-deduplication-header".into(),
                AMQPValue::LongString(id.into()),
            );
            ch.basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default().with_headers(h),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
    };
    for round in 0..2 {
        for i in 0..50 {
            send(format!("job-{i}")).await;
        }
        assert_eq!(common::ready_count(&ch, &q).await, 50, "round {round}");
    }
    // Read everything back (paging in as it goes), then every value is new again.
    let mut got = 0;
    while ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .is_some()
    {
        got += 1;
    }
    assert_eq!(got, 50);
    for i in 0..50 {
        send(format!("job-{i}")).await;
    }
    assert_eq!(common::ready_count(&ch, &q).await, 50);
}

/// Publishes `id` as a deduplication header to the default exchange's `queue`.
async fn send_to_queue(ch: &Channel, queue: &str, id: &str) -> bool {
    let mut h = FieldTable::default();
    h.insert(
        "x-deduplication-header".into(),
        AMQPValue::LongString(id.into()),
    );
    ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        b"payload",
        BasicProperties::default().with_headers(h),
    )
    .await
    .unwrap()
    .await
    .unwrap()
    .is_ack()
}

/// The plugin's policy keys (its `RabbitMQMessageDeduplication.Policies` validator and
/// `policy_changed` callback): `x-cache-size` and `x-cache-ttl` replace the exchange's
/// arguments while the policy applies, and the arguments come back when it goes.
#[tokio::test]
async fn a_policy_sets_the_exchange_caches_size_and_ttl_over_its_arguments() {
    let b = TestBroker::start_warren_with(|_| {}).await;
    let (_conn, ch) = confirming(&b).await;
    let (x, q) = exchange_and_queue(&ch, cache_args(100, None)).await;
    let admin = b.admin();
    let policy = format!("dedup-{}", unique());
    admin
        .put_policy(
            "/",
            &policy,
            serde_json::json!({"pattern": format!("^{x}$"), "apply-to": "exchanges",
                "definition": {"x-cache-size": 1}}),
        )
        .await;
    // A cache of one: the second value pushes the first out.
    for id in ["a", "b", "a"] {
        assert!(publish(&ch, &x, Some(id), None).await);
    }
    assert_eq!(common::ready_count(&ch, &q).await, 3);
    admin.delete_policy("/", &policy).await;
    // The argument's 100 again.
    for id in ["c", "d", "c"] {
        publish(&ch, &x, Some(id), None).await;
    }
    assert_eq!(common::ready_count(&ch, &q).await, 5);
    admin
        .put_policy(
            "/",
            &policy,
            serde_json::json!({"pattern": format!("^{x}$"), "apply-to": "exchanges",
                "definition": {"x-cache-ttl": 100}}),
        )
        .await;
    publish(&ch, &x, Some("e"), None).await;
    publish(&ch, &x, Some("e"), None).await;
    assert_eq!(common::ready_count(&ch, &q).await, 6);
    // Time passing is the behaviour under test, not a synchronisation.
    tokio::time::sleep(Duration::from_millis(200)).await;
    publish(&ch, &x, Some("e"), None).await;
    assert_eq!(common::ready_count(&ch, &q).await, 7);
}

#[tokio::test]
async fn a_policy_turns_queue_level_deduplication_on_and_off() {
    let b = TestBroker::start_warren_with(|_| {}).await;
    let (_conn, ch) = confirming(&b).await;
    let q = format!("dedup-q-{}", unique());
    ch.queue_declare(
        q.as_str().into(),
        lapin::options::QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let admin = b.admin();
    let policy = format!("dedup-{}", unique());
    let put = |on: bool| {
        serde_json::json!({"pattern": format!("^{q}$"), "apply-to": "queues",
            "definition": {"x-message-deduplication": on}})
    };
    admin.put_policy("/", &policy, put(true)).await;
    for _ in 0..3 {
        assert!(send_to_queue(&ch, &q, "order-1").await);
    }
    assert_eq!(common::ready_count(&ch, &q).await, 1);
    admin.put_policy("/", &policy, put(false)).await;
    send_to_queue(&ch, &q, "order-1").await;
    assert_eq!(common::ready_count(&ch, &q).await, 2);
    // Back on: the set starts empty (the plugin flushes its cache), then deduplicates.
    admin.put_policy("/", &policy, put(true)).await;
    send_to_queue(&ch, &q, "order-1").await;
    send_to_queue(&ch, &q, "order-1").await;
    assert_eq!(common::ready_count(&ch, &q).await, 3);
    admin.delete_policy("/", &policy).await;
    send_to_queue(&ch, &q, "order-1").await;
    assert_eq!(common::ready_count(&ch, &q).await, 4);
}

#[tokio::test]
async fn the_plugins_policy_settings_are_checked_with_its_texts() {
    let b = TestBroker::start_warren_with(|_| {}).await;
    let admin = b.admin();
    for (definition, text) in [
        (
            serde_json::json!({"x-cache-size": 0}),
            "\"x-cache-size\" must be an integer greater than 0, got 0",
        ),
        (
            serde_json::json!({"x-cache-ttl": -5}),
            "\"x-cache-ttl\" must be an integer greater than 0, got -5",
        ),
        (
            serde_json::json!({"x-cache-persistence": "tape"}),
            "\"x-cache-persistence\" must be either \"disk\" or \"memory\", got <<\"tape\">>",
        ),
        (
            serde_json::json!({"x-message-deduplication": "yes"}),
            "\"x-message-deduplication\" must be a boolean, got <<\"yes\">>",
        ),
    ] {
        let (status, reason) = admin
            .try_put_any_policy(
                warren::broker::policy::PolicyKind::Policy,
                "/",
                "bad",
                serde_json::json!({"pattern": ".*", "definition": definition}),
            )
            .await
            .expect_err("refused");
        assert_eq!(status, 400);
        assert!(reason.contains(text), "{reason}");
    }
}
