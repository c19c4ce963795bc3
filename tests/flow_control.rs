//! Flow control between a queue's publishers and its consumers (`broker::flow`): a
//! publisher that runs ahead of a consumer that keeps draining the queue is held back,
//! instead of the queue paging out everything after that point. Paging is sticky (later
//! messages belong behind the paged-out ones), so without the hold a consumer about as fast
//! as its publisher would be fed through the disk from the first lag on: with 16 KiB
//! bodies that made Warren slower than RabbitMQ with lavinmqperf (docs/BENCHMARKS.md,
//! "16 KiB stall").

mod common;

use common::{Deliveries, TestBroker, unique};
use lapin::BasicProperties;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;

/// 32 MiB through a queue paging past 1 MiB: thirty-two times its threshold.
const THRESHOLD: &str = "1MiB";
const BODY: usize = 64 << 10;
const COUNT: u64 = 512;
/// The consumer drains at the pace of its acknowledgements, far slower than a publisher
/// that does not wait for confirms: without flow control the queue pages within a few
/// messages.
const PREFETCH: u16 = 16;

fn body(id: u64) -> Vec<u8> {
    let mut b = id.to_le_bytes().to_vec();
    b.resize(BODY, (id % 251) as u8);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_ahead_of_a_draining_consumer_waits_instead_of_paging() {
    let dir = std::env::temp_dir().join(format!("warren-flow-{}", unique()));
    let broker = TestBroker::start_warren_with(|c| {
        c.memory.paging_threshold = THRESHOLD.into();
        c.storage.dir = dir.clone();
    })
    .await;
    let queue = format!("flow-{}", unique());

    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .unwrap();
    let mut deliveries = Deliveries::new(
        ch.basic_consume(
            queue.as_str().into(),
            "flow".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap(),
    );

    // The publisher, on its own connection, publishes everything without waiting.
    let publisher = {
        let conn = broker.connect().await;
        let queue = queue.clone();
        tokio::spawn(async move {
            let ch = conn.create_channel().await.unwrap();
            for id in 0..COUNT {
                ch.basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &body(id),
                    BasicProperties::default(),
                )
                .await
                .unwrap();
            }
            conn
        })
    };

    // Everything arrives, in order and intact.
    for id in 0..COUNT {
        let d = deliveries.next().await;
        assert!(d.data == body(id), "message {id} out of order or damaged");
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    let _publisher_conn = publisher.await.unwrap();

    // And nothing went through the disk: a transient queue's log directory is made at its
    // first page-out and stays until the queue is deleted.
    let logs: Vec<_> = std::fs::read_dir(dir.join("queues"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert!(logs.is_empty(), "the queue paged out: {logs:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
