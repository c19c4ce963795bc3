//! Memory stays bounded under a slow consumer: a publisher at full speed sends far more
//! than fits in memory through a queue whose consumer takes about a thousand messages a
//! second, and the broker's resident memory (a `warren` process with the default
//! settings, sampled from /proc) stays under a bound far below what the messages would
//! hold in memory. What keeps it there: publisher flow control (`broker::flow`), paging
//! past `memory.paging_threshold` counting each message's memory and not only its body
//! (`broker::message::HELD_OVERHEAD`), and the store's limit on what its writer may lag
//! behind by.
//!
//! Small bodies are the hard case: a queue or a writer's backlog that counted bodies only
//! kept a million 16 B messages (330 MB) under a 16 MiB threshold. MEMORY_SLOW_MESSAGES
//! (default 1 000 000) and MEMORY_SLOW_BODY (default 64 bytes) set the load.

mod durable;
mod raw;

use durable::{Sampler, TempDir, rss_of};
use raw::RawClient;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use warren::protocol::*;

const QUEUE: &str = "q.slow-consumer";
const PREFETCH: u16 = 10;
/// Messages per write of the publisher.
const BATCH: u64 = 1000;
/// Far below what the messages hold in memory (a million 64 B messages: about 380 MB at
/// the 380 bytes each costs in a queue), above the default threshold (16 MiB), the flow
/// slack (4 MiB), the writer's allowed lag (8 MiB) and a debug build's baseline (22 MiB).
/// Measured: 56 MiB at peak; 137 MiB when paging and the writer's lag counted bodies only.
const RSS_LIMIT: u64 = 96 << 20;

fn env_u64(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_under_a_slow_consumer() {
    durable::bounded(Duration::from_secs(300), publish_past_a_slow_consumer()).await;
}

async fn publish_past_a_slow_consumer() {
    let count = env_u64("MEMORY_SLOW_MESSAGES", 1_000_000);
    let size = env_u64("MEMORY_SLOW_BODY", 64) as usize;
    let dir = TempDir::new("slow-consumer");
    let broker = durable::start(dir.path()).await;
    let pid = broker.pid();
    let baseline = broker.rss_bytes().unwrap_or(0);
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        Sampler::start(Duration::from_millis(50), move || {
            if let Some(rss) = rss_of(pid) {
                peak.fetch_max(rss, Ordering::Relaxed);
            }
        })
    };

    let mut publisher = RawClient::handshake_at(broker.addr(), &[]).await;
    publisher
        .send(
            1,
            QueueDeclare {
                queue: QUEUE.into(),
                ..Default::default()
            }
            .into(),
        )
        .await;
    assert!(matches!(
        publisher.expect_method().await.1,
        Method::QueueDeclareOk(_)
    ));

    // The slow consumer: one message at a time (prefetch 10), acknowledged 1 ms after it
    // arrived.
    let stop = Arc::new(AtomicBool::new(false));
    let consumed = Arc::new(AtomicU64::new(0));
    let mut consumer = RawClient::handshake_at(broker.addr(), &[]).await;
    consumer
        .send(
            1,
            BasicQos {
                prefetch_size: 0,
                prefetch_count: PREFETCH,
                global: false,
            }
            .into(),
        )
        .await;
    assert!(matches!(
        consumer.expect_method().await.1,
        Method::BasicQosOk(_)
    ));
    consumer
        .send(
            1,
            BasicConsume {
                queue: QUEUE.into(),
                consumer_tag: "slow".into(),
                ..Default::default()
            }
            .into(),
        )
        .await;
    assert!(matches!(
        consumer.expect_method().await.1,
        Method::BasicConsumeOk(_)
    ));
    let slow = {
        let (stop, consumed) = (stop.clone(), consumed.clone());
        tokio::spawn(async move {
            let mut tag = 0;
            while !stop.load(Ordering::Relaxed) {
                match consumer.next_frame().await.expect("connection open") {
                    Frame::Method {
                        method: Method::BasicDeliver(d),
                        ..
                    } => tag = d.delivery_tag,
                    Frame::Body { .. } => {
                        consumed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        let ack = BasicAck {
                            delivery_tag: tag,
                            multiple: false,
                        };
                        consumer.send(1, ack.into()).await;
                    }
                    _ => {}
                }
            }
        })
    };

    // The publisher, at full speed: batches of a thousand messages per write, no confirms.
    let began = Instant::now();
    let publish: Method = BasicPublish {
        exchange: "".into(),
        routing_key: QUEUE.into(),
        ..Default::default()
    }
    .into();
    let props = EncodedProperties::default();
    let body = vec![7u8; size];
    let mut out = bytes::BytesMut::new();
    let mut sent = 0;
    while sent < count {
        let n = BATCH.min(count - sent);
        for _ in 0..n {
            encode_content(&mut out, 1, &publish, &props, &body, 131072);
        }
        publisher.send_raw(&out).await;
        out.clear();
        sent += n;
    }
    // The consumer stops (after the frame it waits for: deliveries keep coming), so that
    // what it took is final before the queue is counted.
    stop.store(true, Ordering::Relaxed);
    slow.await.unwrap();
    // Declare-ok comes after every publish before it has been routed.
    publisher
        .send(
            1,
            QueueDeclare {
                queue: QUEUE.into(),
                passive: true,
                ..Default::default()
            }
            .into(),
        )
        .await;
    let Method::QueueDeclareOk(ok) = publisher.expect_method().await.1 else {
        panic!("expected declare-ok")
    };
    let published = began.elapsed();
    let at_end = broker.rss_bytes().unwrap_or(0);
    drop(sampler);
    let peak = peak.load(Ordering::Relaxed).max(at_end);
    let (ready, taken) = (
        u64::from(ok.message_count),
        consumed.load(Ordering::Relaxed),
    );
    eprintln!(
        "{count} messages of {size} B published in {published:.1?}: {ready} ready, {taken} consumed; \
         broker RSS {} MiB at start, {} MiB at the end, {} MiB at peak",
        baseline >> 20,
        at_end >> 20,
        peak >> 20
    );
    // Every message is in the queue, taken and acknowledged by the consumer, or delivered
    // to it and not read (unacknowledged: at most the prefetch).
    assert!(ready + taken <= count && count - ready - taken <= u64::from(PREFETCH));
    assert!(
        ready > count / 2,
        "the consumer was slow: most messages wait in the queue"
    );
    assert!(
        peak < RSS_LIMIT,
        "broker RSS peaked at {} MiB (limit {} MiB) with {count} messages of {size} B queued",
        peak >> 20,
        RSS_LIMIT >> 20
    );
    broker.terminate().await;
}
