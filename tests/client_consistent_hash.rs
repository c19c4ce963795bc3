//! The `x-consistent-hash` exchange, as RabbitMQ's rabbitmq_consistent_hash_exchange
//! plugin defines it: binding keys are weights, each message goes to exactly one queue,
//! picked by a hash of its routing key (or a header, or a property), in proportion to the
//! weights; the same key keeps going to the same queue, and adding a queue moves only
//! its fair share of keys.
//!
//! Every test also passes against RabbitMQ 3.10 with the plugin enabled (`AMQP_TEST_URL`),
//! except where noted. Which queue a given key lands on differs between the two (each
//! uses its own hash function); the spread and the stability do not.

mod common;

use common::{TestBroker, amqp_error, unique};
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, ExchangeKind};
use std::collections::{HashMap, HashSet};

fn consistent_hash() -> ExchangeKind {
    ExchangeKind::Custom("x-consistent-hash".into())
}

async fn exchange(ch: &Channel, args: FieldTable) -> String {
    let name = format!("chx-{}", unique());
    ch.exchange_declare(
        name.as_str().into(),
        consistent_hash(),
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();
    name
}

/// A queue bound to `exchange` with `weight` as the binding key.
async fn weighted_queue(ch: &Channel, exchange: &str, weight: &str) -> String {
    common::bound_exclusive_queue(ch, exchange, weight).await
}

/// Publishes one message per key (the key as routing key and body), waiting for every
/// confirm.
async fn publish_keys(ch: &Channel, exchange: &str, keys: impl Iterator<Item = String>) {
    let mut confirms = Vec::new();
    for k in keys {
        confirms.push(
            ch.basic_publish(
                exchange.into(),
                k.as_str().into(),
                Default::default(),
                k.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap(),
        );
    }
    for c in confirms {
        assert!(c.await.unwrap().is_ack());
    }
}

/// Takes every message out of `queue`; returns their bodies.
async fn drain(ch: &Channel, queue: &str) -> HashSet<String> {
    let mut bodies = HashSet::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        bodies.insert(String::from_utf8(m.delivery.data.clone()).unwrap());
    }
    bodies
}

#[tokio::test]
async fn messages_spread_over_the_queues_by_their_weights() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = common::confirming_channel(&conn).await;
    let x = exchange(&ch, FieldTable::default()).await;
    let weights = [1u32, 2, 3, 4];
    let mut queues = Vec::new();
    for w in weights {
        queues.push(weighted_queue(&ch, &x, &w.to_string()).await);
    }

    const N: u32 = 100_000;
    publish_keys(&ch, &x, (0..N).map(|i| format!("order-{i}"))).await;

    let total_weight: u32 = weights.iter().sum();
    let mut total = 0;
    for (q, w) in queues.iter().zip(weights) {
        let got = common::ready_count(&ch, q).await;
        let expected = f64::from(N) * f64::from(w) / f64::from(total_weight);
        let off = (f64::from(got) - expected).abs() / expected;
        assert!(
            off < 0.05,
            "weight {w}: {got} messages, expected {expected} within 5%"
        );
        total += got;
    }
    assert_eq!(total, N, "each message goes to exactly one queue");
}

#[tokio::test]
async fn a_key_stays_on_its_queue_and_a_new_queue_takes_only_its_share() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = common::confirming_channel(&conn).await;
    let x = exchange(&ch, FieldTable::default()).await;
    let mut queues = Vec::new();
    for _ in 0..3 {
        queues.push(weighted_queue(&ch, &x, "1").await);
    }
    let keys = || (0..10_000).map(|i| format!("customer-{i}"));

    // Where each key goes, twice: the same both times.
    let mut first: Vec<HashSet<String>> = Vec::new();
    publish_keys(&ch, &x, keys()).await;
    for q in &queues {
        first.push(drain(&ch, q).await);
    }
    publish_keys(&ch, &x, keys()).await;
    for (q, before) in queues.iter().zip(&first) {
        assert_eq!(&drain(&ch, q).await, before, "keys stay on their queue");
    }

    // A fourth queue of the same weight takes about a quarter of the keys, each from one
    // of the others; no key moves between the old queues.
    let newcomer = weighted_queue(&ch, &x, "1").await;
    publish_keys(&ch, &x, keys()).await;
    let moved = drain(&ch, &newcomer).await;
    for (q, before) in queues.iter().zip(&first) {
        let now = drain(&ch, q).await;
        assert!(now.is_subset(before), "a key moved between old queues");
        assert_eq!(before.difference(&now).count(), before.len() - now.len());
    }
    let share = moved.len() as f64 / 10_000.0;
    assert!(
        (0.20..0.30).contains(&share),
        "the new queue took {share} of the keys, expected about 0.25"
    );
}

/// The properties of a message of one tenant.
type PropsFor = fn(&str) -> BasicProperties;

#[tokio::test]
async fn hash_header_and_hash_property_pick_what_is_hashed() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = common::confirming_channel(&conn).await;
    let cases: [(&str, PropsFor); 2] = [
        ("hash-header", |v| {
            let mut h = FieldTable::default();
            h.insert("tenant".into(), AMQPValue::LongString(v.into()));
            BasicProperties::default().with_headers(h)
        }),
        ("hash-property", |v| {
            BasicProperties::default().with_message_id(v.into())
        }),
    ];
    for (arg, props) in cases {
        let mut args = FieldTable::default();
        let value = if arg == "hash-header" {
            "tenant"
        } else {
            "message_id"
        };
        args.insert(arg.into(), AMQPValue::LongString(value.into()));
        let x = exchange(&ch, args).await;
        let mut queues = Vec::new();
        for _ in 0..4 {
            queues.push(weighted_queue(&ch, &x, "1").await);
        }
        // 200 messages of 20 tenants, each with a different routing key: each tenant's
        // messages all land in one queue, whatever their routing keys.
        let mut confirms = Vec::new();
        for i in 0..200 {
            let tenant = format!("tenant-{}", i % 20);
            confirms.push(
                ch.basic_publish(
                    x.as_str().into(),
                    format!("rk-{i}").as_str().into(),
                    Default::default(),
                    tenant.as_bytes(),
                    props(&tenant),
                )
                .await
                .unwrap(),
            );
        }
        for c in confirms {
            c.await.unwrap();
        }
        let mut home: HashMap<String, usize> = HashMap::new();
        let mut used = 0;
        for (i, q) in queues.iter().enumerate() {
            let mut n = 0;
            while let Some(m) = ch
                .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                let tenant = String::from_utf8(m.delivery.data.clone()).unwrap();
                assert_eq!(
                    *home.entry(tenant.clone()).or_insert(i),
                    i,
                    "{arg}: {tenant} split"
                );
                n += 1;
            }
            used += usize::from(n > 0);
        }
        assert_eq!(home.len(), 20, "{arg}: every tenant arrived");
        assert!(used >= 2, "{arg}: the tenants spread over the queues");
        for q in &queues {
            ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default())
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn bad_weights_and_arguments_get_the_plugins_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let x = exchange(&ch, FieldTable::default()).await;
    let mut cases = vec![
        ("abc", "The binding key must be an integer: <<\"abc\">>"),
        ("", "The binding key must be an integer: <<>>"),
        ("0", "The binding key must be greater than 0"),
        ("-3", "The binding key must be greater than 0"),
    ];
    if broker.is_warren() {
        // RabbitMQ 3.10 takes any weight (and allocates that many buckets); Warren has
        // RabbitMQ 3.13's limit.
        cases.push(("10001", "The binding key must not exceed 10000"));
    }
    for (key, text) in cases {
        let ch = conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let err = ch
            .queue_bind(
                q.name().as_str().into(),
                x.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect_err("refused");
        assert_eq!(
            amqp_error(&err),
            (406, format!("PRECONDITION_FAILED - {text}")),
            "binding key {key:?}"
        );
    }

    let arg_cases: [(&[(&str, &str)], &str); 2] = [
        (
            &[("hash-header", "h"), ("hash-property", "message_id")],
            "hash-header and hash-property are mutually exclusive",
        ),
        (
            &[("hash-property", "app_id")],
            "Unsupported property: app_id",
        ),
    ];
    for (pairs, text) in arg_cases {
        let ch = conn.create_channel().await.unwrap();
        let mut args = FieldTable::default();
        for (k, v) in pairs {
            args.insert((*k).into(), AMQPValue::LongString(LongString::from(*v)));
        }
        let err = ch
            .exchange_declare(
                format!("chx-bad-{}", unique()).as_str().into(),
                consistent_hash(),
                ExchangeDeclareOptions::default(),
                args,
            )
            .await
            .expect_err("refused");
        assert_eq!(
            amqp_error(&err),
            (406, format!("PRECONDITION_FAILED - {text}"))
        );
    }
}
