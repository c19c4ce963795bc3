//! Paging and the disk alarm.
//!
//! - With memory.paging_threshold = 4MiB, a queue holding 400 MiB of messages keeps their
//!   bodies on disk: the broker's resident memory stays under 150 MiB, and every message is
//!   delivered afterwards, in order and intact. DURABLE_PAGING_MIB (default 400) sets the
//!   amount, DURABLE_PAGING_MSG_BYTES (default 8192) the message size: 1 KiB messages
//!   (409 600 of them) work too but take about 3 minutes with a debug build.
//! - Below storage.disk_free_limit of free space, publishing connections get
//!   connection.blocked with reason "low on disk" and are no longer read from.

mod common;
mod durable;
mod raw;

use common::Deliveries;
use durable::{
    Sampler, TempDir, confirmation, confirming_channel, durable_queue, message_count, rss_of,
};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, PublisherConfirm};
use raw::RawClient;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use warren::protocol::*;

const QUEUE: &str = "q.paging";
const WINDOW: usize = 512;
const PREFETCH: u16 = 1000;
const ACK_EVERY: u64 = 500;
const RSS_LIMIT: u64 = 150 << 20;

/// Body of message `id`: its id, then a pattern that depends on it.
fn body(id: u64, size: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(size);
    b.extend_from_slice(&id.to_le_bytes());
    let fill = (id % 251) as u8;
    b.resize(size, fill);
    b
}

#[tokio::test]
async fn paged_queue_keeps_memory_bounded_and_delivers_everything() {
    durable::bounded(Duration::from_secs(300), fill_and_drain_a_paged_queue()).await;
}

async fn fill_and_drain_a_paged_queue() {
    let total = durable::env_mib("DURABLE_PAGING_MIB", 400);
    let size: usize = std::env::var("DURABLE_PAGING_MSG_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8192)
        .max(8);
    let count = total / size as u64;
    let dir = TempDir::new("paging");
    let broker =
        durable::start_with(dir.path(), &[("WARREN_MEMORY__PAGING_THRESHOLD", "4MiB")]).await;
    let pid = broker.pid();
    let began = Instant::now();

    // Sample the broker's resident memory throughout.
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        Sampler::start(Duration::from_millis(50), move || {
            if let Some(rss) = rss_of(pid) {
                peak.fetch_max(rss, Ordering::Relaxed);
            }
        })
    };
    let baseline = broker.rss_bytes().unwrap_or(0);

    // Publish everything with confirms, no consumer: half persistent, half transient (both
    // are paged out).
    let conn = broker.connect().await;
    let publisher = confirming_channel(&conn).await;
    publisher
        .queue_declare(QUEUE.into(), durable_queue(), FieldTable::default())
        .await
        .unwrap();
    let mut in_flight: VecDeque<PublisherConfirm> = VecDeque::new();
    for id in 0..count {
        let mode = if id % 2 == 0 { 2 } else { 1 };
        let confirm = publisher
            .basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                &body(id, size),
                BasicProperties::default().with_delivery_mode(mode),
            )
            .await
            .unwrap();
        in_flight.push_back(confirm);
        if in_flight.len() >= WINDOW {
            let c = in_flight.pop_front().unwrap();
            assert_eq!(confirmation(c).await, Confirmation::Ack(None));
        }
    }
    for c in in_flight {
        assert_eq!(confirmation(c).await, Confirmation::Ack(None));
    }
    let published = began.elapsed();
    assert_eq!(message_count(&conn, QUEUE).await as u64, count);
    let after_publish = broker.rss_bytes().unwrap_or(0);
    peak.fetch_max(after_publish, Ordering::Relaxed);

    // Consume everything: in order, intact.
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .unwrap();
    let mut deliveries = Deliveries::new(
        ch.basic_consume(
            QUEUE.into(),
            "paging".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap(),
    );
    for id in 0..count {
        let d = common::next_slow_delivery(&mut deliveries).await;
        let got = u64::from_le_bytes(d.data[..8].try_into().unwrap());
        assert_eq!(got, id, "messages arrive in order");
        assert!(d.data == body(id, size), "message {id}: body intact");
        let mode = if id % 2 == 0 { 2 } else { 1 };
        assert_eq!(*d.properties.delivery_mode(), Some(mode), "message {id}");
        if (id + 1) % ACK_EVERY == 0 || id + 1 == count {
            ch.basic_ack(d.delivery_tag, BasicAckOptions { multiple: true })
                .await
                .unwrap();
        }
    }
    assert_eq!(message_count(&conn, QUEUE).await, 0);
    drop(sampler);
    let peak = peak.load(Ordering::Relaxed);
    eprintln!(
        "{} MiB in {count} messages: published in {published:.1?}, consumed in {:.1?}; \
         broker RSS {} MiB at start, {} MiB with the queue full, {} MiB at peak",
        total >> 20,
        began.elapsed() - published,
        baseline >> 20,
        after_publish >> 20,
        peak >> 20
    );
    assert!(
        peak < RSS_LIMIT,
        "broker RSS peaked at {} MiB (limit {} MiB) with a 4MiB paging threshold",
        peak >> 20,
        RSS_LIMIT >> 20
    );
    conn.close(200, "OK".into()).await.unwrap();
    broker.terminate().await;
}

/// basic.get drains a queue whose messages are almost all paged out, in order: each get
/// past the in-memory part waits for the store to read the next messages back.
#[tokio::test]
async fn basic_get_drains_a_paged_out_queue_in_order() {
    durable::bounded(Duration::from_secs(120), async {
        let dir = TempDir::new("paging-get");
        let broker =
            durable::start_with(dir.path(), &[("WARREN_MEMORY__PAGING_THRESHOLD", "64KiB")]).await;
        let conn = broker.connect().await;
        let publisher = confirming_channel(&conn).await;
        let queue = "q.paging-get";
        publisher
            .queue_declare(queue.into(), durable_queue(), FieldTable::default())
            .await
            .unwrap();
        let (count, size) = (400u64, 4096);
        let mut confirms = Vec::new();
        for id in 0..count {
            let confirm = publisher
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    &body(id, size),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap();
            confirms.push(confirm);
        }
        for c in confirms {
            assert_eq!(confirmation(c).await, Confirmation::Ack(None));
        }
        let ch = conn.create_channel().await.unwrap();
        for id in 0..count {
            let got = ch
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("message {id} missing"));
            assert!(
                got.delivery.data == body(id, size),
                "message {id}: in order, intact"
            );
            assert_eq!(got.message_count as u64, count - id - 1);
        }
        let empty = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        assert!(empty.is_none());
        conn.close(200, "OK".into()).await.unwrap();
        broker.terminate().await;
    })
    .await;
}

#[tokio::test]
async fn publisher_is_blocked_when_disk_is_low() {
    let dir = TempDir::new("disk-alarm");
    // No filesystem has this much free: the disk alarm is raised at once.
    let broker = durable::start_with(
        dir.path(),
        &[("WARREN_STORAGE__DISK_FREE_LIMIT", "1000TiB")],
    )
    .await;
    let mut c = RawClient::handshake_at(broker.addr(), &["connection.blocked"]).await;
    c.publish(1, "", "nowhere", b"x").await;
    let (ch, m) = c.expect_method().await;
    assert_eq!(ch, 0);
    let Method::ConnectionBlocked(b) = m else {
        panic!("expected connection.blocked, got {m:?}")
    };
    assert_eq!(b.reason, "low on disk");
    // While blocked the broker does not read: a channel.flow request gets no answer.
    c.send(1, ChannelFlow { active: true }.into()).await;
    let quiet = tokio::time::timeout(Duration::from_millis(700), c.next_frame()).await;
    assert!(quiet.is_err(), "a blocked connection is not read from");
    // (How a graceful stop treats a connection it does not read from is not the point here.)
    broker.kill9().await;
}

#[tokio::test]
async fn publisher_is_not_blocked_with_enough_disk() {
    let dir = TempDir::new("disk-ok");
    // The default limit (50MiB) is far below what the test machine has free.
    let broker = durable::start(dir.path()).await;
    let mut c = RawClient::handshake_at(broker.addr(), &["connection.blocked"]).await;
    c.publish(1, "", "nowhere", b"x").await;
    c.send(1, ChannelFlow { active: true }.into()).await;
    let (_, m) = c.expect_method().await;
    assert!(matches!(m, Method::ChannelFlowOk(_)), "got {m:?}");
    drop(c);
    broker.terminate().await;
}
