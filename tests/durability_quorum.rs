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

/// Total size of the quorum queues' command logs (`*.qlog`) under the data directory.
fn command_log_size(data: &std::path::Path) -> u64 {
    let mut total = 0;
    for q in std::fs::read_dir(data.join("queues")).unwrap().flatten() {
        for f in std::fs::read_dir(q.path()).into_iter().flatten().flatten() {
            if f.path().extension().is_some_and(|x| x == "qlog") {
                total += f.metadata().map_or(0, |m| m.len());
            }
        }
    }
    total
}

/// Publishes `n` messages of 1 KiB to `queue`, then consumes and acknowledges them all.
async fn pass_through(ch: &Channel, queue: &str, n: usize) {
    let body = vec![b'x'; 1024];
    let mut confirms = Vec::new();
    for _ in 0..n {
        let c = ch
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default(),
            )
            .await
            .unwrap();
        confirms.push(c);
    }
    for c in confirms {
        assert!(c.await.unwrap().is_ack());
    }
    let consumer = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let tag = consumer.tag();
    let mut deliveries = Deliveries::new(consumer);
    // One by one: a multiple ack would settle the message the test holds on this channel.
    for _ in 0..n {
        let d = deliveries.next().await;
        d.ack(Default::default()).await.unwrap();
    }
    ch.basic_cancel(tag, Default::default()).await.unwrap();
}

/// A confirmed publish to another queue after the acknowledgements on the same channel:
/// the store has written (and truncated) everything before it once it is confirmed.
async fn barrier(ch: &Channel) {
    declare_quorum(ch, "barrier", &[]).await;
    publish_all(ch, "barrier", 0..1, 2).await;
}

/// The command log keeps a message's delivery count across kill -9 while it is checked
/// out, and stays bounded: 33 MB passing through leave at most the held message's segment
/// and the current one (8 MB each) behind, and once that one is settled too, next to
/// nothing.
#[tokio::test]
async fn the_command_log_keeps_counts_and_is_truncated_once_settled() {
    bounded(LIMIT, async {
        let dir = TempDir::new("quorum-qlog");
        let broker = durable::start(dir.path()).await;
        let conn = broker.connect().await;
        let ch = confirming_channel(&conn).await;
        ch.basic_qos(1000, BasicQosOptions::default())
            .await
            .unwrap();
        declare_quorum(&ch, "qq", &[]).await;
        publish_all(&ch, "qq", 0..1, 2).await;
        // Returned three times, then checked out and held.
        for _ in 0..3 {
            let m = ch
                .basic_get("qq".into(), BasicGetOptions::default())
                .await
                .unwrap()
                .expect("the message");
            nack_requeue(&m.delivery).await;
        }
        let held = ch
            .basic_get("qq".into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("the message");
        assert_eq!(delivery_count(&held.delivery), Some(3));
        pass_through(&ch, "qq", 30_000).await;
        barrier(&ch).await;
        let size = command_log_size(broker.dir());
        assert!(
            size < 17 << 20,
            "33 MB went through a queue holding one message: {size} bytes left"
        );
        let broker = broker.restart(Stop::Kill).await;
        drop(conn);
        let conn = broker.connect().await;
        let ch = confirming_channel(&conn).await;
        let m = ch
            .basic_get("qq".into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("the held message, after the crash");
        assert_eq!(delivery_count(&m.delivery), Some(3), "its count came back");
        assert!(m.delivery.redelivered);
        assert_eq!(String::from_utf8_lossy(&m.delivery.data), "0");
        m.delivery.ack(Default::default()).await.unwrap();
        barrier(&ch).await;
        let size = command_log_size(broker.dir());
        assert!(
            size < 64 << 10,
            "everything settled: {size} bytes of command log left"
        );
    })
    .await;
}

/// A quorum queue past the paging threshold keeps its tail in the command log only, and
/// reads it back from there, in order, live and after kill -9 (where a returned message
/// among them keeps its count).
#[tokio::test]
async fn a_paged_out_quorum_queue_reads_its_tail_back_from_the_command_log() {
    bounded(LIMIT, async {
        const N: u64 = 3000;
        let dir = TempDir::new("quorum-paging");
        // 3000 bodies of 300 bytes: about 200 fit under the threshold, the rest is paged out.
        let env = [("WARREN_MEMORY__PAGING_THRESHOLD", "64KiB")];
        let broker = durable::start_with(dir.path(), &env).await;
        let conn = broker.connect().await;
        let ch = confirming_channel(&conn).await;
        declare_quorum(&ch, "qq", &[]).await;
        let mut confirms = Vec::new();
        for id in 0..N {
            let body = format!("{id}:{}", "x".repeat(300));
            let c = ch
                .basic_publish(
                    "".into(),
                    "qq".into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    BasicProperties::default(),
                )
                .await
                .unwrap();
            confirms.push(c);
        }
        for c in confirms {
            assert!(c.await.unwrap().is_ack());
        }
        let id = |d: &lapin::message::Delivery| -> u64 {
            let body = String::from_utf8_lossy(&d.data).into_owned();
            body.split(':').next().unwrap().parse().unwrap()
        };
        // The head is returned once; the first half is taken (paged in as it goes).
        let m = ch
            .basic_get("qq".into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("the head");
        nack_requeue(&m.delivery).await;
        let mut got = Vec::new();
        for _ in 0..N / 2 {
            let m = ch
                .basic_get("qq".into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
                .expect("a message");
            if got.is_empty() {
                assert_eq!(delivery_count(&m.delivery), Some(1));
            }
            got.push(id(&m.delivery));
        }
        assert_eq!(got, (0..N / 2).collect::<Vec<u64>>());
        // Return one of the rest (paged in for the get) and crash.
        let m = ch
            .basic_get("qq".into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("a message");
        assert_eq!(id(&m.delivery), N / 2);
        nack_requeue(&m.delivery).await;
        barrier(&ch).await;
        let broker = broker.restart(Stop::Kill).await;
        drop(conn);
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let m = ch
            .basic_get("qq".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("the returned message");
        assert_eq!(
            (id(&m.delivery), delivery_count(&m.delivery)),
            (N / 2, Some(1))
        );
        let mut rest = Vec::new();
        while let Some(m) = ch
            .basic_get("qq".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            rest.push(id(&m.delivery));
        }
        assert_eq!(rest, (N / 2 + 1..N).collect::<Vec<u64>>());
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
