//! Disk space is given back: a gibibyte of persistent messages through a durable queue
//! (published with confirms, consumed and acked as it goes) leaves the storage directory
//! close to empty afterwards, while running and after a restart.
//!
//! DURABLE_DISK_MIB (default 1024) sets how much is sent.

mod common;
mod durable;

use common::Deliveries;
use durable::{
    Rng, Sampler, TempDir, confirmation, confirming_channel, dir_size, durable_queue, message_count,
};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, PublisherConfirm};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const QUEUE: &str = "q.disk";
const SIZE: usize = 64 * 1024;
const WINDOW: usize = 64;
const PREFETCH: u16 = 64;
const ACK_EVERY: u64 = 16;

/// What the storage directory may hold once everything is acked.
const LEFT_OVER: u64 = 16 << 20;

/// How long the broker may take to give the space back once the last ack is processed.
const RECLAIM_TIMEOUT: Duration = Duration::from_secs(30);

fn body(base: &[u8], id: u64) -> Vec<u8> {
    let mut b = base.to_vec();
    b[..8].copy_from_slice(&id.to_le_bytes());
    b
}

#[tokio::test]
async fn a_gibibyte_through_a_durable_queue_leaves_the_disk_empty() {
    durable::bounded(Duration::from_secs(300), gibibyte_round_trip()).await;
}

async fn gibibyte_round_trip() {
    let total = durable::env_mib("DURABLE_DISK_MIB", 1024);
    let count = total / SIZE as u64;
    let dir = TempDir::new("disk");
    let broker = durable::start(dir.path()).await;
    let began = Instant::now();

    let mut rng = Rng::new(0x00D1_5C0D_E5EE_D5ED);
    let base: Arc<Vec<u8>> = Arc::new(
        (0..SIZE / 8)
            .flat_map(|_| rng.next_u64().to_le_bytes())
            .collect(),
    );

    // Watch the storage directory's size while the data flows.
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (peak, path) = (peak.clone(), dir.path().to_path_buf());
        Sampler::start(Duration::from_millis(200), move || {
            peak.fetch_max(dir_size(&path), Ordering::Relaxed);
        })
    };

    // The consumer: in order, intact, acked in batches.
    let consumer_conn = broker.connect().await;
    let ch = consumer_conn.create_channel().await.unwrap();
    ch.queue_declare(QUEUE.into(), durable_queue(), FieldTable::default())
        .await
        .unwrap();
    ch.basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .unwrap();
    let mut deliveries = Deliveries::new(
        ch.basic_consume(
            QUEUE.into(),
            "disk".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap(),
    );
    let consuming = {
        let base = base.clone();
        tokio::spawn(async move {
            for id in 0..count {
                let d = common::next_slow_delivery(&mut deliveries).await;
                assert_eq!(d.data.len(), SIZE, "message {id}: length");
                let got = u64::from_le_bytes(d.data[..8].try_into().unwrap());
                assert_eq!(got, id, "messages arrive in order");
                assert!(d.data[8..] == base[8..], "message {id}: body intact");
                if (id + 1) % ACK_EVERY == 0 || id + 1 == count {
                    ch.basic_ack(d.delivery_tag, BasicAckOptions { multiple: true })
                        .await
                        .unwrap();
                }
            }
            // A round trip: every ack has been processed.
            ch.basic_qos(PREFETCH, BasicQosOptions::default())
                .await
                .unwrap();
            (ch, deliveries)
        })
    };

    // The publisher: persistent, with confirms, a window of them in flight.
    let publisher_conn = broker.connect().await;
    let publisher = confirming_channel(&publisher_conn).await;
    let mut in_flight: VecDeque<PublisherConfirm> = VecDeque::new();
    let persistent = BasicProperties::default().with_delivery_mode(2);
    for id in 0..count {
        let confirm = publisher
            .basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                &body(&base, id),
                persistent.clone(),
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
    let (_ch, _deliveries) = consuming.await.unwrap();
    let consumed = began.elapsed();
    assert_eq!(message_count(&publisher_conn, QUEUE).await, 0);

    // Everything is acked: the space comes back (compaction may take a moment).
    let deadline = Instant::now() + RECLAIM_TIMEOUT;
    let mut size = dir_size(dir.path());
    while size >= LEFT_OVER && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        size = dir_size(dir.path());
    }
    drop(sampler);
    eprintln!(
        "{} MiB in {count} messages: published in {published:.1?}, consumed in {consumed:.1?}; \
         storage peaked at {} MiB, {} KiB once all acked ({:.1?} after the last ack)",
        total >> 20,
        peak.load(Ordering::Relaxed) >> 20,
        size >> 10,
        began.elapsed() - consumed,
    );
    assert!(
        size < LEFT_OVER,
        "the storage dir still holds {size} bytes {RECLAIM_TIMEOUT:?} after every message was acked"
    );

    // And after a graceful restart: still small, and the queue is empty.
    drop(publisher_conn);
    let broker = broker.restart(durable::Stop::Term).await;
    drop(consumer_conn);
    let size = dir_size(dir.path());
    assert!(
        size < LEFT_OVER,
        "the storage dir holds {size} bytes after a restart"
    );
    let conn = broker.connect().await;
    assert_eq!(message_count(&conn, QUEUE).await, 0);
    conn.close(200, "OK".into()).await.unwrap();
    broker.terminate().await;
}
