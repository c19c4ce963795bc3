//! Delayed messages (x-delayed-message exchanges) across kill -9, with the real binary.
//!
//! Warren only: the delayed-message plugin is not shipped with Debian's RabbitMQ; this
//! follows its README ("delayed messages ... will survive a node restart") and goes
//! further: Warren keeps them in its own store, confirms them after the fsync, and
//! transient messages are not kept across a restart (the plugin keeps every one).
//!
//! Persistent messages published to a durable delayed exchange, confirmed, then the
//! broker is SIGKILLed: after the restart each is delivered once, in due order; one
//! that fell due while the broker was down is delivered promptly after the restart;
//! transient ones are gone; the bucket logs are deleted once routed.

mod durable;

use durable::{Stop, TempDir, bounded, confirming_channel, message_count};
use lapin::message::DeliveryResult;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Confirmation, ExchangeKind};
use std::time::{Duration, Instant};

const EXCHANGE: &str = "delayed.crash";
const QUEUE: &str = "delayed.crash.q";

fn delayed(ms: i32, persistent: bool) -> BasicProperties {
    let mut h = FieldTable::default();
    h.insert("x-delay".into(), AMQPValue::LongInt(ms));
    BasicProperties::default()
        .with_headers(h)
        .with_delivery_mode(if persistent { 2 } else { 1 })
}

#[tokio::test]
async fn persistent_delayed_messages_survive_kill_9() {
    bounded(Duration::from_secs(120), async {
        let dir = TempDir::new("delayed-kill");
        let broker = durable::start(dir.path()).await;
        let conn = broker.connect().await;
        let ch = confirming_channel(&conn).await;
        let mut args = FieldTable::default();
        args.insert(
            "x-delayed-type".into(),
            AMQPValue::LongString(LongString::from("direct")),
        );
        ch.exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Custom("x-delayed-message".into()),
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .unwrap();
        ch.queue_declare(
            QUEUE.into(),
            durable::durable_queue(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            QUEUE.into(),
            EXCHANGE.into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let published = Instant::now();
        // (body, delay, persistent): 1000 ms falls due while the broker is down; 5000 and
        // 7000 wait on disk (beyond the in-memory horizon) when it is killed.
        let plan = [
            ("p-1000", 1000, true),
            ("t-1200", 1200, false),
            ("p-7000", 7000, true),
            ("t-5500", 5500, false),
            ("p-5000", 5000, true),
        ];
        for (body, ms, persistent) in plan {
            let c = ch
                .basic_publish(
                    EXCHANGE.into(),
                    "k".into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    delayed(ms, persistent),
                )
                .await
                .unwrap()
                .await
                .unwrap();
            assert_eq!(c, Confirmation::Ack(None), "{body} confirmed");
        }
        drop(conn);
        broker.kill9().await;
        // A scenario step, not synchronisation: the broker stays down past the first due
        // time.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let broker = durable::start(dir.path()).await;
        let restarted = Instant::now();
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let consumer = ch
            .basic_consume(
                QUEUE.into(),
                "c".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        consumer.set_delegate(move |d: DeliveryResult| {
            let _ = tx.send(d);
            async {}
        });
        let mut got = Vec::new();
        for _ in 0..3 {
            let d = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("a delivery within 20 s")
                .unwrap()
                .unwrap()
                .unwrap();
            let body = String::from_utf8(d.data.clone()).unwrap();
            let ms: u64 = body[2..].parse().unwrap();
            if ms == 1000 {
                assert!(
                    restarted.elapsed() < Duration::from_secs(3),
                    "due during the downtime: delivered promptly ({:?})",
                    restarted.elapsed()
                );
            } else {
                assert!(
                    published.elapsed() >= Duration::from_millis(ms),
                    "{body} early"
                );
            }
            d.ack(BasicAckOptions::default()).await.unwrap();
            got.push(body);
        }
        assert_eq!(
            got,
            ["p-1000", "p-5000", "p-7000"],
            "transient ones are gone"
        );
        // The acks are processed (a round trip on their channel), then a confirmed
        // persistent publish: the store's batch that synced it wrote every mark before it.
        ch.basic_qos(0, Default::default()).await.unwrap();
        let sync = confirming_channel(&conn).await;
        sync.queue_declare(
            "delayed.sync".into(),
            durable::durable_queue(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let c = sync
            .basic_publish(
                "".into(),
                "delayed.sync".into(),
                BasicPublishOptions::default(),
                b"sync",
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(c, Confirmation::Ack(None));
        drop(ch);
        drop(conn);
        // Nothing comes back after another crash: the routed records are marked.
        let broker = broker.restart(Stop::Kill).await;
        let conn = broker.connect().await;
        assert_eq!(message_count(&conn, QUEUE).await, 0);
        let ch = conn.create_channel().await.unwrap();
        ch.queue_declare(
            QUEUE.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        // Bucket logs go once their time has passed and all is routed (within ~a second).
        let queues = dir.path().join("queues");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let buckets: Vec<String> = std::fs::read_dir(&queues)
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('8'))
                .collect();
            if buckets.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "bucket logs left: {buckets:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}
