//! Delayed messages at scale: schedules N messages (default 1,000,000) on an
//! x-delayed-message exchange with random delays over 60 s, consumes them, and reports
//! how late each arrived (arrival minus the due time the publisher computed: publish
//! time + x-delay, in the body) as p50/p99/max, and the broker's resident memory
//! (VmRSS of `WARREN_PID`) once everything is scheduled and at its peak while waiting.
//!
//! ```text
//! cargo build --release && target/release/warren &   # storage on a real disk
//! WARREN_PID=$! cargo run --release --example delayed_bench -- [N] [SPREAD_MS]
//! ```
//!
//! `AMQP_URL` (default amqp://guest:guest@127.0.0.1:5672/%2f) names the broker.

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn rss_kib(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(1_000_000, |a| a.parse().unwrap());
    let spread: u64 = args.next().map_or(60_000, |a| a.parse().unwrap());
    let url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string());
    let pid = std::env::var("WARREN_PID").ok();
    let props = ConnectionProperties::default();
    let publisher = Connection::connect(&url, props.clone()).await.unwrap();
    let consumer = Connection::connect(&url, props).await.unwrap();
    let pch = publisher.create_channel().await.unwrap();
    let cch = consumer.create_channel().await.unwrap();
    let mut xargs = FieldTable::default();
    xargs.insert(
        "x-delayed-type".into(),
        AMQPValue::LongString(LongString::from("direct")),
    );
    let ex = format!("bench.delayed.{}", std::process::id());
    pch.exchange_declare(
        ex.as_str().into(),
        ExchangeKind::Custom("x-delayed-message".into()),
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        xargs,
    )
    .await
    .unwrap();
    let q = cch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
        .name()
        .as_str()
        .to_string();
    cch.queue_bind(
        q.as_str().into(),
        ex.as_str().into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let lateness = Arc::new(Mutex::new(Vec::with_capacity(n as usize)));
    let received = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let done_tx = Mutex::new(Some(done_tx));
    let c = cch
        .basic_consume(
            q.as_str().into(),
            "bench".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    {
        let lateness = lateness.clone();
        let received = received.clone();
        c.set_delegate(move |d: lapin::message::DeliveryResult| {
            if let Ok(Some(d)) = d {
                let due = u64::from_be_bytes(d.data[..8].try_into().unwrap());
                lateness.lock().unwrap().push(now_ms() as i64 - due as i64);
                if received.fetch_add(1, Ordering::Relaxed) + 1 == n
                    && let Some(tx) = done_tx.lock().unwrap().take()
                {
                    let _ = tx.send(());
                }
            }
            async {}
        });
    }
    let peak = Arc::new(AtomicU64::new(0));
    if let Some(pid) = pid.clone() {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(r) = rss_kib(&pid) {
                    peak.fetch_max(r, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
    let rss_before = pid.as_deref().and_then(rss_kib);
    let started = std::time::Instant::now();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..n {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = 1 + rng % spread;
        let mut h = FieldTable::default();
        h.insert("x-delay".into(), AMQPValue::LongLongInt(delay as i64));
        let mut body = (now_ms() + delay).to_be_bytes().to_vec();
        body.extend_from_slice(&[0u8; 24]);
        // The confirm future is dropped: no confirms (the channel is not in confirm mode).
        drop(
            pch.basic_publish(
                ex.as_str().into(),
                "k".into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default().with_headers(h),
            )
            .await
            .unwrap(),
        );
    }
    let publish_s = started.elapsed().as_secs_f64();
    // Give the broker a moment to take in what the client buffered.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_scheduled = pid.as_deref().and_then(rss_kib);
    let left = n - received.load(Ordering::Relaxed);
    tokio::time::timeout(Duration::from_millis(spread + 60_000), done_rx)
        .await
        .expect("every message arrives")
        .unwrap();
    let mut l = lateness.lock().unwrap().clone();
    l.sort_unstable();
    let pct = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)];
    println!(
        "messages {n}, delays 1..{spread} ms, published in {publish_s:.1} s ({:.0}/s)",
        n as f64 / publish_s
    );
    println!(
        "lateness ms: p50 {} p99 {} p99.9 {} max {} (min {})",
        pct(0.5),
        pct(0.99),
        pct(0.999),
        l[l.len() - 1],
        l[0]
    );
    if pid.is_some() {
        let mib =
            |k: Option<u64>| k.map_or("?".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0));
        println!(
            "broker RSS: before {}, all scheduled ({left} waiting) {}, peak {}",
            mib(rss_before),
            mib(rss_scheduled),
            mib(Some(peak.load(Ordering::Relaxed)))
        );
    }
}
