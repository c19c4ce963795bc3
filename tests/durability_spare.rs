//! A busy queue's log writes into zero-filled spare segment files (`store::spare`), so that
//! syncing before a confirm does not journal a growing file. Killed with SIGKILL in the
//! middle of such a segment, the broker must come back with every confirmed message, read
//! the zeros after them as the log's clean end (no torn tail reported) and give them back.

mod durable;

use durable::{TempDir, confirmation, confirming_channel, durable_queue, message_count};
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const QUEUE: &str = "q.spare";
/// A spare's size (`store::spare::SPARE_SIZE`).
const SPARE_SIZE: u64 = 2 << 20;

fn body(id: u64, len: usize) -> Vec<u8> {
    let mut b = vec![(id % 251) as u8; len];
    b[..8].copy_from_slice(&id.to_le_bytes());
    b
}

async fn publish_confirmed(ch: &Channel, ids: std::ops::Range<u64>, len: usize) {
    let persistent = BasicProperties::default().with_delivery_mode(2);
    let mut confirms = Vec::new();
    for id in ids {
        let c = ch
            .basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                &body(id, len),
                persistent.clone(),
            )
            .await
            .unwrap();
        confirms.push(c);
    }
    for c in confirms {
        assert_eq!(confirmation(c).await, Confirmation::Ack(None));
    }
}

/// The queue's segment files and their lengths (the only queue's log directory).
fn segments(storage: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for log in std::fs::read_dir(storage.join("queues")).unwrap().flatten() {
        for f in std::fs::read_dir(log.path()).unwrap().flatten() {
            if f.path().extension().is_some_and(|e| e == "seg") {
                out.push((f.path(), f.metadata().unwrap().len()));
            }
        }
    }
    out
}

fn spare_ready(storage: &Path) -> bool {
    std::fs::read_dir(storage.join("spare")).is_ok_and(|d| {
        d.flatten()
            .any(|f| f.path().extension().is_some_and(|e| e == "zero"))
    })
}

#[tokio::test]
async fn a_spare_segment_killed_mid_way_recovers_every_confirmed_message() {
    durable::bounded(Duration::from_secs(120), killed_mid_spare()).await;
}

async fn killed_mid_spare() {
    let dir = TempDir::new("spare");
    let broker = durable::start(dir.path()).await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    ch.queue_declare(QUEUE.into(), durable_queue(), FieldTable::default())
        .await
        .unwrap();

    // Busy: over a megabyte through one segment, all of it acknowledged, so that segment
    // goes and the log's next one is a spare.
    let big = 64 << 10;
    publish_confirmed(&ch, 0..20, big).await;
    let getter = conn.create_channel().await.unwrap();
    for id in 0..20 {
        let m = getter
            .basic_get(QUEUE.into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .expect("a message");
        assert_eq!(m.delivery.data, body(id, big));
        m.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
    }
    assert_eq!(message_count(&conn, QUEUE).await, 0);
    // The spare thread started half-way through that megabyte, and the writer deletes the
    // emptied segment when it writes the acknowledgements: wait for both (the broker's own
    // work, visible only on disk), so that the next publish starts a new segment.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !spare_ready(dir.path()) || !segments(dir.path()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no spare was prepared, or the emptied segment stayed: {:?}",
            segments(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Into the spare, then SIGKILL mid-segment.
    publish_confirmed(&ch, 20..70, 1000).await;
    let segs = segments(dir.path());
    assert_eq!(segs.len(), 1, "one segment: {segs:?}");
    assert_eq!(
        segs[0].1, SPARE_SIZE,
        "the segment is the spare, written in place"
    );
    drop(getter);
    drop(ch);
    drop(conn);
    broker.kill9().await;

    let broker = durable::start(dir.path()).await;
    let log = std::fs::read_to_string(format!("{}.log", dir.path().display())).unwrap();
    assert!(
        !log.contains("torn"),
        "a zero tail is a clean end, not a torn one:\n{log}"
    );
    let segs = segments(dir.path());
    assert!(
        segs.iter().all(|(_, len)| *len < SPARE_SIZE),
        "the zeros are given back: {segs:?}"
    );
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    for id in 20..70 {
        let m = ch
            .basic_get(QUEUE.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("message {id} is lost"));
        assert_eq!(m.delivery.data, body(id, 1000), "message {id}");
        assert!(
            m.delivery.redelivered,
            "after a crash every message may have been delivered"
        );
    }
    assert_eq!(message_count(&conn, QUEUE).await, 0);
    conn.close(200, "OK".into()).await.unwrap();
    broker.terminate().await;
}
