//! Deduplication caches across restarts: an `x-message-deduplication` exchange declared
//! durable with `x-cache-persistence: disk` keeps the values it has seen through Warren's
//! store, as the rabbitmq-message-deduplication plugin keeps such a cache in a Mnesia
//! `disc_copies` table (which survives a node's crash: Mnesia logs each transaction before
//! it commits). Entries expire with their TTL across the restart; the file stays bounded as
//! the cache is; a `memory` cache starts empty.
//!
//! The plugin is not shipped with Debian's RabbitMQ: written from its README and source
//! (`cache.ex`: disc_copies for `disk`), run on Warren only.

mod common;
mod durable;

use durable::{Stop, TempDir, bounded, confirming_channel, message_count};
use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, ExchangeKind};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// A durable deduplication exchange bound to a durable queue of the same name + "-q".
async fn declare(ch: &Channel, x: &str, size: i64, persistence: &str) {
    let mut args = FieldTable::default();
    args.insert("x-cache-size".into(), AMQPValue::LongLongInt(size));
    args.insert(
        "x-cache-persistence".into(),
        AMQPValue::LongString(persistence.into()),
    );
    ch.exchange_declare(
        x.into(),
        ExchangeKind::Custom("x-message-deduplication".into()),
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();
    let q = format!("{x}-q");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        q.as_str().into(),
        x.into(),
        "".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

/// Publishes persistent messages with deduplication header `id` (and a per-message
/// `x-cache-ttl`), awaiting each confirm.
async fn publish(ch: &Channel, x: &str, ids: &[&str], ttl: Option<i64>) {
    for id in ids {
        let mut h = FieldTable::default();
        h.insert(
            "x-deduplication-header".into(),
            AMQPValue::LongString(LongString::from(*id)),
        );
        if let Some(t) = ttl {
            h.insert("x-cache-ttl".into(), AMQPValue::LongLongInt(t));
        }
        let ok = ch
            .basic_publish(
                x.into(),
                "".into(),
                BasicPublishOptions::default(),
                id.as_bytes(),
                BasicProperties::default()
                    .with_headers(h)
                    .with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap()
            .is_ack();
        assert!(ok, "{id} confirmed");
    }
}

#[tokio::test]
async fn a_disk_cache_survives_sigkill_and_its_entries_keep_their_ttl() {
    bounded(LIMIT, async {
        let dir = TempDir::new("dedup-kill");
        let broker = durable::start(dir.path()).await;
        let conn = broker.connect().await;
        let ch = confirming_channel(&conn).await;
        declare(&ch, "disk", 100, "disk").await;
        declare(&ch, "memory", 100, "memory").await;
        for x in ["disk", "memory"] {
            publish(&ch, x, &["a", "b"], None).await;
            // Expires long before the broker is back.
            publish(&ch, x, &["brief"], Some(1)).await;
            assert_eq!(message_count(&conn, &format!("{x}-q")).await, 3);
        }
        let broker = broker.restart(Stop::Kill).await;
        drop(conn);
        let conn = broker.connect().await;
        let ch = confirming_channel(&conn).await;
        // On disk: "a" and "b" are still duplicates; "brief" has expired; "c" is new.
        publish(&ch, "disk", &["a", "b", "brief", "c"], None).await;
        assert_eq!(message_count(&conn, "disk-q").await, 3 + 2);
        // In memory: everything is new again.
        publish(&ch, "memory", &["a", "b"], None).await;
        assert_eq!(message_count(&conn, "memory-q").await, 3 + 2);
        // And what was seen since the restart is kept through a graceful restart too.
        let broker = broker.restart(Stop::Term).await;
        drop(conn);
        let conn = broker.connect().await;
        let ch = confirming_channel(&conn).await;
        publish(&ch, "disk", &["a", "c", "brief"], None).await;
        assert_eq!(message_count(&conn, "disk-q").await, 5);
    })
    .await;
}

/// The file is rewritten from the live entries as the cache evicts, so its size follows
/// `x-cache-size`, not the number of messages; after a restart the cache holds the newest
/// values, as it did.
#[tokio::test]
async fn a_disk_cache_stays_bounded_and_comes_back_with_its_newest_values() {
    bounded(LIMIT, async {
        const SIZE: usize = 10;
        let dir = TempDir::new("dedup-bounded");
        let broker = durable::start(dir.path()).await;
        let conn = broker.connect().await;
        let ch = confirming_channel(&conn).await;
        declare(&ch, "bounded", SIZE as i64, "disk").await;
        let ids: Vec<String> = (0..5000).map(|i| format!("v{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        publish(&ch, "bounded", &refs, None).await;
        let files: Vec<u64> = std::fs::read_dir(dir.path().join("dedup"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .collect();
        assert_eq!(files.len(), 1, "one file for the one disk cache");
        // Header plus at most SIZE live and SIZE + 1024 appended entries of 28 octets.
        assert!(
            files[0] <= 64 + 28 * (2 * SIZE as u64 + 1025),
            "{} octets",
            files[0]
        );
        let broker = broker.restart(Stop::Kill).await;
        drop(conn);
        let conn = broker.connect().await;
        let ch = confirming_channel(&conn).await;
        let before = message_count(&conn, "bounded-q").await;
        assert_eq!(before, 5000);
        publish(&ch, "bounded", &refs[5000 - SIZE..], None).await;
        assert_eq!(
            message_count(&conn, "bounded-q").await,
            before,
            "the newest are duplicates"
        );
        publish(&ch, "bounded", &refs[..1], None).await;
        assert_eq!(
            message_count(&conn, "bounded-q").await,
            before + 1,
            "the oldest was evicted"
        );
    })
    .await;
}

/// Deleting the exchange deletes its cache: a namesake declared later, even after a
/// restart, starts empty.
#[tokio::test]
async fn a_deleted_exchanges_disk_cache_goes_with_it() {
    bounded(LIMIT, async {
        let dir = TempDir::new("dedup-delete");
        let broker = durable::start(dir.path()).await;
        let conn = broker.connect().await;
        let ch = confirming_channel(&conn).await;
        declare(&ch, "gone", 10, "disk").await;
        publish(&ch, "gone", &["a"], None).await;
        ch.exchange_delete("gone".into(), Default::default())
            .await
            .unwrap();
        let broker = broker.restart(Stop::Kill).await;
        drop(conn);
        let conn = broker.connect().await;
        let ch = confirming_channel(&conn).await;
        assert!(
            std::fs::read_dir(dir.path().join("dedup"))
                .map(|d| d.count())
                .unwrap_or(0)
                == 0,
            "no file left"
        );
        declare(&ch, "gone", 10, "disk").await;
        publish(&ch, "gone", &["a"], None).await;
        assert_eq!(message_count(&conn, "gone-q").await, 2);
    })
    .await;
}
