//! Many objects (issue 15): the broker's periodic work visits the objects that move, not
//! every object. With 10 000 idle queues and idle connections in place, a pass of the
//! statistics sampler visits nothing once they have settled, and a few objects (the busy
//! pair's queue, exchange, channels, connection) while one pair has traffic; the consumer
//! timeout sweeper visits no idle channel. A full scan coming back fails these counts.
//!
//! Warren only: the passes are Warren's internals (`broker::stats::Activity::pass`,
//! `broker::ack_timeout::sweep`), called here directly; the server's own sampler is held
//! off by the longest `mgmt.stats_interval` allowed (an hour).

mod common;

use common::{TestBroker, unique, within};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use warren::broker::stats::{Activity, Stat};

const IDLE_QUEUES: usize = 10_000;
const IDLE_CONNECTIONS: usize = 50;
/// What one busy pair may make a pass visit: its queue, the default exchange, its two
/// channels and one connection, with room to spare (but far below the idle objects).
const BUSY_OBJECTS: usize = 10;
const MESSAGES: usize = 100;

/// Passes until one visits nothing (the objects that moved get one more pass, for their
/// rates to fall back to zero; late socket writes one more); every pass must stay under
/// `most`. Returns the visits of each pass.
fn settle(activity: &Activity, most: usize) -> Vec<usize> {
    let mut visits = Vec::new();
    for _ in 0..6 {
        let n = activity.pass(1.0);
        visits.push(n);
        assert!(
            n <= most,
            "a pass visited {n} objects (at most {most}): {visits:?}"
        );
        if n == 0 {
            return visits;
        }
    }
    panic!("the sampler never settled: visits {visits:?}");
}

async fn connect(b: &TestBroker) -> Connection {
    Connection::connect(b.url(), ConnectionProperties::default())
        .await
        .expect("connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_passes_visit_only_active_objects() {
    let b = TestBroker::start_warren_with(|c| {
        c.mgmt.stats_interval = 3_600_000;
        c.amqp.consumer_timeout = 600_000;
    })
    .await;
    let broker = b.warren().expect("in-process Warren");
    let activity = broker.connections.activity.clone();

    // 10 000 idle queues, declared over 20 channels at once.
    let conn = connect(&b).await;
    let prefix = format!("mo-{}", unique());
    let mut tasks = Vec::new();
    for t in 0..20 {
        let ch = conn.create_channel().await.unwrap();
        let prefix = prefix.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..IDLE_QUEUES).step_by(20) {
                let name = format!("{prefix}-{i}");
                ch.queue_declare(
                    name.as_str().into(),
                    QueueDeclareOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        within("idle queues declared", t).await.unwrap();
    }
    // Idle connections with an open channel each.
    let mut idle = Vec::new();
    for _ in 0..IDLE_CONNECTIONS {
        let c = connect(&b).await;
        let ch = c.create_channel().await.unwrap();
        idle.push((c, ch));
    }

    // New objects are sampled once (a full pass, once), then leave the list.
    let first = activity.pass(1.0);
    assert!(first >= IDLE_QUEUES, "first pass visited {first}");
    settle(&activity, IDLE_CONNECTIONS + 30);
    assert_eq!(activity.pass(1.0), 0, "idle objects visited");
    let swept = warren::broker::ack_timeout::sweep(&broker.connections);
    assert_eq!(swept.visited, 0, "idle channels swept");

    // One busy pair: a publisher with confirms, a consumer acknowledging each message.
    let busy = connect(&b).await;
    let q = format!("{prefix}-busy");
    let publisher = busy.create_channel().await.unwrap();
    let consumer = busy.create_channel().await.unwrap();
    consumer
        .queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    consumer
        .basic_qos(10, BasicQosOptions::default())
        .await
        .unwrap();
    let mut deliveries = consumer
        .basic_consume(
            q.as_str().into(),
            "busy".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for _ in 0..MESSAGES {
        publisher
            .basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                b"busy",
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    use futures_lite::StreamExt;
    for i in 0..MESSAGES {
        let d = within("a delivery", deliveries.next())
            .await
            .expect("delivery")
            .expect("delivery ok");
        if i == 0 {
            // A delivery that can time out is pending: its channel, and only it, is
            // on the sweeper's list (the server's own sweep may hold it meanwhile).
            let swept = warren::broker::ack_timeout::sweep(&broker.connections);
            assert!(swept.visited <= 1, "sweep visited {}", swept.visited);
        }
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    // A round trip after the last ack: the broker has handled it.
    consumer
        .queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();

    let queue = broker.vhost("/").unwrap().queue(q.as_bytes()).unwrap();
    let visited = activity.pass(1.0);
    assert!(
        (1..=BUSY_OBJECTS).contains(&visited),
        "a pass after the busy pair's traffic visited {visited}"
    );
    assert_eq!(queue.stats.rate(Stat::Publish), MESSAGES as f64);
    assert_eq!(queue.stats.rate(Stat::Ack), MESSAGES as f64);
    // Idle again: the busy objects' rates fall to zero, then nothing is visited.
    settle(&activity, BUSY_OBJECTS);
    assert_eq!(queue.stats.rate(Stat::Publish), 0.0);
    assert_eq!(queue.depth.ready.rate(), 0.0);
    assert_eq!(activity.pass(1.0), 0);
    // The channel leaves the sweeper's list at the first sweep after its last ack (this
    // one, or the server's own), whatever its stale deadline says.
    let sweep = || warren::broker::ack_timeout::sweep(&broker.connections).visited;
    assert!(sweep() <= 1);
    assert_eq!(sweep(), 0, "the busy channel stayed on the sweeper's list");
    drop(idle);
}
