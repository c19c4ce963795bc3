//! Quorum queues across `kill -9`: nothing confirmed is lost whatever its delivery mode,
//! delivery counts come back (RabbitMQ keeps them in its log), and at-least-once
//! dead-lettering keeps a message in its source queue until the dead-letter target has it
//! on disk, so a crash in the middle of dead-lettering loses nothing.

mod common;
mod durable;

use common::{Deliveries, table};
use durable::{Stop, TempDir, bounded, confirming_channel, message_count};
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use std::collections::HashSet;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

async fn declare_quorum(ch: &Channel, name: &str, extra: &[(&str, AMQPValue)]) {
    let mut args = vec![("x-queue-type", text("quorum"))];
    args.extend(extra.iter().cloned());
    let opts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(name.into(), opts, table(&args))
        .await
        .unwrap();
}

/// Publishes `ids` as bodies without waiting in between, then awaits every confirm.
async fn publish_all(ch: &Channel, queue: &str, ids: impl Iterator<Item = u64>, mode: u8) {
    let mut confirms = Vec::new();
    for id in ids {
        let c = ch
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                id.to_string().as_bytes(),
                BasicProperties::default().with_delivery_mode(mode),
            )
            .await
            .unwrap();
        confirms.push(c);
    }
    for c in confirms {
        assert!(c.await.unwrap().is_ack());
    }
}

/// Takes every message of `queue` (no ack); returns their bodies as ids.
async fn drain(conn: &Connection, queue: &str) -> Vec<u64> {
    let ch = conn.create_channel().await.unwrap();
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        out.push(String::from_utf8_lossy(&m.delivery.data).parse().unwrap());
    }
    out
}

async fn nack_requeue(d: &lapin::message::Delivery) {
    let requeue = BasicNackOptions {
        requeue: true,
        ..Default::default()
    };
    d.nack(requeue).await.unwrap();
}

fn delivery_count(d: &lapin::message::Delivery) -> Option<i64> {
    match d
        .properties
        .headers()
        .as_ref()?
        .inner()
        .get("x-delivery-count")?
    {
        AMQPValue::LongLongInt(n) => Some(*n),
        other => panic!("x-delivery-count should be a long-long, got {other:?}"),
    }
}

#[tokio::test]
async fn confirmed_messages_survive_sigkill_whatever_their_delivery_mode() {
    bounded(LIMIT, async {
        let dir = TempDir::new("quorum-kill");
        let broker = durable::start(dir.path()).await;
        let conn = broker.connect().await;
        let ch = confirming_channel(&conn).await;
        declare_quorum(&ch, "qq", &[]).await;
        // Transient and persistent messages alike: a quorum queue logs every one.
        publish_all(&ch, "qq", 0..500, 1).await;
        publish_all(&ch, "qq", 500..1000, 2).await;
        let broker = broker.restart(Stop::Kill).await;
        drop(conn);
        let conn = broker.connect().await;
        let ids = drain(&conn, "qq").await;
        assert_eq!(
            ids,
            (0..1000).collect::<Vec<u64>>(),
            "every confirmed message, in order"
        );
    })
    .await;
}

#[tokio::test]
async fn delivery_counts_survive_sigkill() {
    bounded(LIMIT, async {
        let dir = TempDir::new("quorum-count");
        let broker = durable::start(dir.path()).await;
        let conn = broker.connect().await;
        let ch = confirming_channel(&conn).await;
        declare_quorum(&ch, "qq", &[("x-delivery-limit", AMQPValue::LongInt(2))]).await;
        publish_all(&ch, "qq", 0..1, 2).await;
        for _ in 0..2 {
            let m = ch
                .basic_get("qq".into(), BasicGetOptions::default())
                .await
                .unwrap()
                .expect("the message");
            nack_requeue(&m.delivery).await;
        }
        // A confirm after the returns: the store has written them (they come first).
        declare_quorum(&ch, "barrier", &[]).await;
        publish_all(&ch, "barrier", 0..1, 2).await;
        let broker = broker.restart(Stop::Kill).await;
        drop(conn);
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let m = ch
            .basic_get("qq".into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("the message, after the crash");
        assert_eq!(delivery_count(&m.delivery), Some(2));
        // A third return passes the limit of 2: without a dead-letter exchange, dropped.
        nack_requeue(&m.delivery).await;
        assert_eq!(message_count(&conn, "qq").await, 0);
    })
    .await;
}

#[tokio::test]
async fn at_least_once_dead_lettering_loses_nothing_across_sigkill() {
    bounded(LIMIT, async {
        const N: u64 = 3000;
        let dir = TempDir::new("quorum-dlx");
        let broker = durable::start(dir.path()).await;
        let conn = broker.connect().await;
        let ch = confirming_channel(&conn).await;
        declare_quorum(&ch, "target", &[]).await;
        declare_quorum(
            &ch,
            "source",
            &[
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", text("target")),
                ("x-dead-letter-strategy", text("at-least-once")),
                ("x-overflow", text("reject-publish")),
            ],
        )
        .await;
        publish_all(&ch, "source", 0..N, 2).await;
        // A consumer rejects everything (dead-lettering it); the broker is killed while
        // it is at it.
        let cch = conn.create_channel().await.unwrap();
        cch.basic_qos(200, BasicQosOptions::default())
            .await
            .unwrap();
        let consumer = cch
            .basic_consume(
                "source".into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut deliveries = Deliveries::new(consumer);
        for _ in 0..N / 3 {
            let d = common::next_slow_delivery(&mut deliveries).await;
            d.reject(BasicRejectOptions { requeue: false })
                .await
                .unwrap();
        }
        let broker = broker.restart(Stop::Kill).await;
        drop(conn);
        let conn = broker.connect().await;
        let source = drain(&conn, "source").await;
        let target = drain(&conn, "target").await;
        let seen: HashSet<u64> = source.iter().chain(&target).copied().collect();
        let missing: Vec<u64> = (0..N).filter(|id| !seen.contains(id)).collect();
        assert!(
            missing.is_empty(),
            "lost {} messages: {:?}...",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        assert!(
            !target.is_empty(),
            "some were dead-lettered before the crash"
        );
    })
    .await;
}

/// Polls `queue`'s ready count until it is `n` (dead-lettering happens after the operation
/// that causes it returns).
async fn wait_for_count(conn: &Connection, queue: &str, n: u32) {
    while message_count(conn, queue).await != n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn at_least_once_discards_survive_sigkill_and_reach_a_dead_letter_exchange_declared_later() {
    bounded(LIMIT, async {
        const N: u64 = 50;
        let dir = TempDir::new("quorum-discards");
        let broker = durable::start(dir.path()).await;
        let conn = broker.connect().await;
        let ch = confirming_channel(&conn).await;
        declare_quorum(
            &ch,
            "source",
            &[
                ("x-dead-letter-exchange", text("late-dlx")),
                ("x-dead-letter-strategy", text("at-least-once")),
                ("x-overflow", text("reject-publish")),
            ],
        )
        .await;
        publish_all(&ch, "source", 0..N, 2).await;
        for _ in 0..N {
            let m = ch
                .basic_get("source".into(), BasicGetOptions::default())
                .await
                .unwrap()
                .expect("a message to reject");
            m.delivery
                .reject(BasicRejectOptions { requeue: false })
                .await
                .unwrap();
        }
        // The exchange is missing: every one waits among the source's discards. A confirm
        // after the rejections: their discarded marks are written.
        declare_quorum(&ch, "barrier", &[]).await;
        publish_all(&ch, "barrier", 0..1, 2).await;
        let broker = broker.restart(Stop::Kill).await;
        drop(conn);
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        assert_eq!(
            message_count(&conn, "source").await,
            0,
            "discards are not ready messages"
        );
        ch.exchange_declare(
            "late-dlx".into(),
            lapin::ExchangeKind::Fanout,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        declare_quorum(&ch, "dlq", &[]).await;
        ch.queue_bind(
            "dlq".into(),
            "late-dlx".into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        wait_for_count(&conn, "dlq", N as u32).await;
        let mut ids = drain(&conn, "dlq").await;
        ids.sort_unstable();
        assert_eq!(ids, (0..N).collect::<Vec<u64>>(), "every discard, once");
        // Settled in the source once the copies were on disk: another crash brings none
        // back (they would go straight to the bound queue at start-up). The source's
        // settlements are collected by the writer in the batch after the one that synced
        // the copies and written once that batch is synced, just after its confirms go
        // out: three confirmed barriers, one after the other, get past that point.
        let ch = confirming_channel(&conn).await;
        for id in 1..4 {
            publish_all(&ch, "barrier", id..id + 1, 2).await;
        }
        let broker = broker.restart(Stop::Kill).await;
        drop(conn);
        let conn = broker.connect().await;
        assert_eq!(message_count(&conn, "dlq").await, 0);
        assert_eq!(message_count(&conn, "source").await, 0);
    })
    .await;
}
