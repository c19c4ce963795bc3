//! The crash test: a publisher with confirms and an acking consumer on a durable queue, the
//! broker SIGKILLed at a random moment, started again on the same directory; many times.
//!
//! What must hold over all the cycles:
//! - every confirmed message is eventually consumed and acked (before a crash, or after it
//!   is recovered), none is lost;
//! - nothing is corrupted: every body is exactly what was published under its id (a
//!   checksum in the body, and the body regenerated from the id);
//! - no duplicates: within one run of the broker a message is delivered at most once (the
//!   consumer never rejects or requeues); a message whose ack is known durable never comes
//!   back; a message delivered and not acked (or whose ack may not have reached the disk)
//!   may come back after the crash, with redelivered=true;
//! - the queue keeps its order: within one run, ids arrive in increasing order;
//! - unconfirmed messages may be there or not, but intact.
//!
//! When is an ack durable? Nothing in AMQP says. Here: when the broker had processed it (a
//! round trip on the consumer's channel returned) before the publisher sent a message that
//! was then confirmed before the crash. A confirm covers everything the broker did before
//! it; an ack younger than the last confirm may be lost in the crash (RabbitMQ does not
//! sync acks either), and then the message comes back, redelivered.
//!
//! At the end the queue is drained on a fresh broker, and a graceful restart shows it empty.
//!
//! DURABLE_CRASH_CYCLES (default 20) sets the number of crashes, DURABLE_CRASH_SEED replays
//! a run (the seed is printed).

mod durable;

use durable::{Rng, TempDir, fnv1a};
use lapin::message::DeliveryResult;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, PublisherConfirm};
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

const QUEUE: &str = "q.crash";

/// Publishes not yet confirmed, at most.
const WINDOW: usize = 64;

/// The consumer proves its acks (with a round trip) at least every this many.
const SETTLE_EVERY: usize = 16;

/// Percentage of deliveries the consumer acks; the rest stay unacked until the crash.
const ACK_PERCENT: u64 = 80;

/// Bound on any single wait that should be prompt.
const PROMPT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Message bodies: id, payload, checksum.
// ---------------------------------------------------------------------------

/// The body published under `id`: the id, the payload length, a payload derived from the
/// id, and an FNV-1a checksum of all that. About 1 in 100 is larger than a frame.
fn make_body(id: u64) -> Vec<u8> {
    let mut rng = Rng::new(id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66_D1CE_4E5B);
    let len = if id % 97 == 13 {
        rng.range(131_000, 200_000)
    } else {
        rng.range(0, 2048)
    } as usize;
    let mut b = Vec::with_capacity(24 + len);
    b.extend_from_slice(&id.to_le_bytes());
    b.extend_from_slice(&(len as u64).to_le_bytes());
    while b.len() < 16 + len {
        let word = rng.next_u64().to_le_bytes();
        let n = (16 + len - b.len()).min(8);
        b.extend_from_slice(&word[..n]);
    }
    let sum = fnv1a(&b);
    b.extend_from_slice(&sum.to_le_bytes());
    b
}

/// The id of a delivered body, if it is intact.
fn check_body(data: &[u8], props: &BasicProperties) -> Result<u64, String> {
    if data.len() < 24 {
        return Err(format!("a body of {} bytes is too short", data.len()));
    }
    let (content, sum) = data.split_at(data.len() - 8);
    if fnv1a(content) != u64::from_le_bytes(sum.try_into().unwrap()) {
        return Err(format!(
            "checksum mismatch in a body of {} bytes starting {:02x?}",
            data.len(),
            &data[..16]
        ));
    }
    let id = u64::from_le_bytes(data[..8].try_into().unwrap());
    if data != make_body(id).as_slice() {
        return Err(format!(
            "body of message {id} differs from the one published"
        ));
    }
    let message_id = props.message_id().as_ref().map(|s| s.to_string());
    if message_id != Some(id.to_string()) {
        return Err(format!(
            "message {id} carries message_id {message_id:?} (properties mixed up?)"
        ));
    }
    if *props.delivery_mode() != Some(2) {
        return Err(format!(
            "message {id} has delivery_mode {:?}",
            props.delivery_mode()
        ));
    }
    Ok(id)
}

// ---------------------------------------------------------------------------
// One cycle: a publisher and a consumer until the broker is killed.
// ---------------------------------------------------------------------------

#[derive(Default)]
struct PublisherLog {
    /// Ids `start..end` were (perhaps) sent.
    end: u64,
    confirmed: Vec<u64>,
    nacked: Vec<u64>,
    /// When the last confirmed message was handed to the client library: everything the
    /// broker did before then is on disk.
    durable_before: Option<Instant>,
}

async fn publisher(conn: Connection, start: u64, started: oneshot::Sender<()>) -> PublisherLog {
    let mut log = PublisherLog {
        end: start,
        ..Default::default()
    };
    let Ok(ch) = conn.create_channel().await else {
        return log;
    };
    if ch
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .is_err()
    {
        return log;
    }
    let mut in_flight: VecDeque<(u64, Instant, PublisherConfirm)> = VecDeque::new();
    let mut id = start;
    let _ = started.send(());
    loop {
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(id.to_string().into());
        // Counted as sent before the attempt: a failed publish may have reached the broker.
        log.end = id + 1;
        let sent_at = Instant::now();
        let sent = ch
            .basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                &make_body(id),
                props,
            )
            .await;
        match sent {
            Ok(confirm) => in_flight.push_back((id, sent_at, confirm)),
            Err(_) => break,
        }
        id += 1;
        if in_flight.len() >= WINDOW {
            let (id, sent_at, confirm) = in_flight.pop_front().unwrap();
            if !settle_confirm(&mut log, id, sent_at, confirm).await {
                break;
            }
        }
    }
    // Confirms that arrived before the broker died still count.
    for (id, sent_at, confirm) in in_flight {
        settle_confirm(&mut log, id, sent_at, confirm).await;
    }
    log
}

/// Records the outcome of one confirm; false when the connection is gone.
async fn settle_confirm(
    log: &mut PublisherLog,
    id: u64,
    sent_at: Instant,
    confirm: PublisherConfirm,
) -> bool {
    match tokio::time::timeout(PROMPT, confirm).await {
        Ok(Ok(Confirmation::Ack(_))) => {
            log.confirmed.push(id);
            log.durable_before = log.durable_before.max(Some(sent_at));
            true
        }
        Ok(Ok(_)) => {
            log.nacked.push(id);
            true
        }
        Ok(Err(_)) | Err(_) => false,
    }
}

#[derive(Default)]
struct ConsumerLog {
    /// (id, redelivered) in the order received.
    delivered: Vec<(u64, bool)>,
    /// Acks sent.
    acked: Vec<u64>,
    /// Acks the broker is known to have processed, and since when.
    settled: Vec<(u64, Instant)>,
    /// Corrupted deliveries.
    corrupt: Vec<String>,
}

impl ConsumerLog {
    fn record(&mut self, d: &lapin::message::Delivery) -> Option<u64> {
        match check_body(&d.data, &d.properties) {
            Ok(id) => {
                self.delivered.push((id, d.redelivered));
                Some(id)
            }
            Err(e) => {
                self.corrupt.push(e);
                None
            }
        }
    }
}

/// A round trip on `ch`: once it returns, the broker has processed everything sent before.
async fn round_trip(ch: &Channel) -> bool {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    matches!(
        tokio::time::timeout(
            PROMPT,
            ch.queue_declare(QUEUE.into(), passive, FieldTable::default()),
        )
        .await,
        Ok(Ok(_))
    )
}

async fn consumer(
    conn: Connection,
    mut rng: Rng,
    mut stop: oneshot::Receiver<()>,
    ready: oneshot::Sender<()>,
) -> ConsumerLog {
    let mut log = ConsumerLog::default();
    let Ok(ch) = conn.create_channel().await else {
        return log;
    };
    let Ok(consumer) = ch
        .basic_consume(
            QUEUE.into(),
            "crash-consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
    else {
        return log;
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<DeliveryResult>();
    consumer.set_delegate(move |delivery: DeliveryResult| {
        let _ = tx.send(delivery);
        async {}
    });
    let _ = ready.send(());
    let mut unsettled: Vec<u64> = Vec::new();
    'run: loop {
        let event = tokio::select! {
            biased;
            _ = &mut stop => break 'run,
            event = rx.recv() => event,
        };
        let Some(Ok(Some(d))) = event else { break };
        let Some(id) = log.record(&d) else { continue };
        if rng.percent(ACK_PERCENT) {
            if ch
                .basic_ack(d.delivery_tag, BasicAckOptions::default())
                .await
                .is_err()
            {
                break;
            }
            log.acked.push(id);
            unsettled.push(id);
        }
        if !unsettled.is_empty() && (unsettled.len() >= SETTLE_EVERY || rx.is_empty()) {
            if !round_trip(&ch).await {
                break;
            }
            let now = Instant::now();
            log.settled.extend(unsettled.drain(..).map(|id| (id, now)));
        }
    }
    // Deliveries that reached us before the broker died (not acked).
    while let Ok(Ok(Some(d))) = rx.try_recv() {
        log.record(&d);
    }
    drop(consumer);
    log
}

// ---------------------------------------------------------------------------
// The ledger: what happened over all cycles, and the checks.
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Ledger {
    /// Every id below this was (perhaps) published.
    next_id: u64,
    confirmed: HashSet<u64>,
    nacked: Vec<u64>,
    /// Delivered at least once, in an earlier run.
    seen: HashSet<u64>,
    /// Acks sent, in any run.
    acked: HashSet<u64>,
    /// Acks known durable (see the module doc), from an earlier run.
    settled: HashSet<u64>,
    failures: Vec<String>,
    // Statistics.
    deliveries: u64,
    redelivered: u64,
    came_back_unacked: u64,
    came_back_after_unsettled_ack: u64,
    /// Acks processed but not known durable when the broker was killed.
    acks_at_risk: u64,
}

impl Ledger {
    fn fail(&mut self, run: &str, what: String) {
        if self.failures.len() < 50 {
            self.failures.push(format!("{run}: {what}"));
        }
    }

    /// Checks one broker run's deliveries against everything before it, then folds it in.
    /// Acks processed before `durable_before` are durable.
    fn merge_run(&mut self, run: &str, log: ConsumerLog, durable_before: Option<Instant>) {
        for e in log.corrupt {
            self.fail(run, format!("corrupted delivery: {e}"));
        }
        let mut this_run = HashSet::new();
        let mut last: Option<u64> = None;
        for &(id, redelivered) in &log.delivered {
            self.deliveries += 1;
            if redelivered {
                self.redelivered += 1;
            }
            if id >= self.next_id {
                self.fail(run, format!("message {id} was never published"));
            }
            if !this_run.insert(id) {
                self.fail(run, format!("message {id} delivered twice in one run"));
            }
            if let Some(prev) = last
                && id <= prev
            {
                self.fail(
                    run,
                    format!("message {id} delivered after {prev}: out of order"),
                );
            }
            last = Some(id);
            if self.settled.contains(&id) {
                self.fail(
                    run,
                    format!(
                        "message {id} came back although its ack had been processed before a later publish was confirmed"
                    ),
                );
            } else if self.seen.contains(&id) {
                if self.acked.contains(&id) {
                    self.came_back_after_unsettled_ack += 1;
                } else {
                    self.came_back_unacked += 1;
                }
                if !redelivered {
                    self.fail(
                        run,
                        format!(
                            "message {id} was delivered before the crash and came back with redelivered=false"
                        ),
                    );
                }
            }
        }
        self.seen.extend(this_run);
        self.acked.extend(log.acked);
        for (id, at) in log.settled {
            if durable_before.is_some_and(|d| at <= d) {
                self.settled.insert(id);
            } else {
                self.acks_at_risk += 1;
            }
        }
    }

    fn merge_publisher(&mut self, log: PublisherLog) {
        self.next_id = self.next_id.max(log.end);
        self.confirmed.extend(log.confirmed);
        self.nacked.extend(log.nacked);
    }
}

async fn connect(url: &str) -> Connection {
    tokio::time::timeout(
        PROMPT,
        Connection::connect(url, lapin::ConnectionProperties::default()),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn confirmed_messages_survive_repeated_sigkill() {
    durable::bounded(Duration::from_secs(300), crash_cycles()).await;
}

async fn crash_cycles() {
    let cycles: usize = std::env::var("DURABLE_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let mut rng = Rng::from_env("DURABLE_CRASH_SEED");
    let dir = TempDir::new("crash");
    let began = Instant::now();
    let mut ledger = Ledger::default();

    for cycle in 0..cycles {
        let run = format!("run {cycle}");
        let broker = durable::start(dir.path()).await;
        let url = broker.url();

        // The queue survived the previous crash; declare it (again).
        let consumer_conn = connect(&url).await;
        let setup = consumer_conn.create_channel().await.unwrap();
        if cycle > 0 {
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            if let Err(e) = setup
                .queue_declare(QUEUE.into(), passive, FieldTable::default())
                .await
            {
                panic!("{run}: the durable queue did not survive the crash: {e}");
            }
        } else {
            setup
                .queue_declare(QUEUE.into(), durable(), FieldTable::default())
                .await
                .unwrap();
        }
        let _ = setup.close(200, "OK".into()).await;

        let (stop_tx, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let consuming = tokio::spawn(consumer(
            consumer_conn,
            Rng::new(rng.next_u64()),
            stop_rx,
            ready_tx,
        ));
        let _ = ready_rx.await;
        let publisher_conn = connect(&url).await;
        let (started_tx, started_rx) = oneshot::channel();
        let publishing = tokio::spawn(publisher(publisher_conn, ledger.next_id, started_tx));
        let _ = started_rx.await;

        // The crash, at a random point while publishing and consuming.
        tokio::time::sleep(Duration::from_millis(rng.range(50, 300))).await;
        broker.kill9().await;
        let _ = stop_tx.send(());

        let pub_log = tokio::time::timeout(PROMPT, publishing)
            .await
            .unwrap_or_else(|_| panic!("{run}: the publisher did not stop after the crash"))
            .unwrap();
        let con_log = tokio::time::timeout(PROMPT, consuming)
            .await
            .unwrap_or_else(|_| panic!("{run}: the consumer did not stop after the crash"))
            .unwrap();
        eprintln!(
            "{run}: published up to {}, {} confirmed, {} delivered, {} acked ({} settled)",
            pub_log.end,
            pub_log.confirmed.len(),
            con_log.delivered.len(),
            con_log.acked.len(),
            con_log.settled.len()
        );
        let durable_before = pub_log.durable_before;
        ledger.merge_publisher(pub_log);
        ledger.merge_run(&run, con_log, durable_before);
        if !ledger.failures.is_empty() {
            break;
        }
    }

    // Drain what is left on a fresh broker, acking everything.
    if ledger.failures.is_empty() {
        let broker = durable::start(dir.path()).await;
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let mut log = ConsumerLog::default();
        loop {
            let got = tokio::time::timeout(
                PROMPT,
                ch.basic_get(QUEUE.into(), BasicGetOptions { no_ack: false }),
            )
            .await
            .expect("basic.get in time")
            .expect("basic.get");
            let Some(m) = got else { break };
            if let Some(id) = log.record(&m.delivery) {
                log.acked.push(id);
            }
            ch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default())
                .await
                .unwrap();
        }
        assert!(round_trip(&ch).await, "final drain: round trip");
        let now = Instant::now();
        log.settled = log.acked.iter().map(|id| (*id, now)).collect();
        let drained = log.delivered.len();
        // A graceful stop follows: every ack of the drain is durable.
        ledger.merge_run("final drain", log, Some(now));
        eprintln!("final drain: {drained} messages");

        // Acked messages do not come back over a graceful restart either.
        let broker = broker.restart(durable::Stop::Term).await;
        drop(conn);
        let conn = broker.connect().await;
        let left = durable::message_count(&conn, QUEUE).await;
        if left != 0 {
            ledger.fail(
                "after the final graceful restart",
                format!("{left} messages are back in the drained queue"),
            );
        }
        conn.close(200, "OK".into()).await.unwrap();
        broker.terminate().await;
    }

    // Totals: every confirmed message was consumed and acked, once the dust settled.
    let mut lost: Vec<u64> = ledger
        .confirmed
        .iter()
        .filter(|id| !ledger.acked.contains(id))
        .copied()
        .collect();
    lost.sort_unstable();
    let unconfirmed_seen = ledger
        .seen
        .iter()
        .filter(|id| !ledger.confirmed.contains(id))
        .count();
    eprintln!(
        "{cycles} crashes in {:.1?}: {} published, {} confirmed, {} nacked, {} deliveries \
         ({} redelivered; {} came back unacked, {} came back after an ack not known durable), \
         {} unconfirmed but delivered, {} acked, {} acks not known durable at a crash",
        began.elapsed(),
        ledger.next_id,
        ledger.confirmed.len(),
        ledger.nacked.len(),
        ledger.deliveries,
        ledger.redelivered,
        ledger.came_back_unacked,
        ledger.came_back_after_unsettled_ack,
        unconfirmed_seen,
        ledger.acked.len(),
        ledger.acks_at_risk,
    );
    if ledger.failures.is_empty() {
        if !ledger.nacked.is_empty() {
            let first: Vec<_> = ledger.nacked.iter().take(20).collect();
            ledger.fail("totals", format!("messages were nacked: {first:?}"));
        }
        if !lost.is_empty() {
            ledger.fail(
                "totals",
                format!(
                    "{} confirmed messages were lost, first: {:?}",
                    lost.len(),
                    &lost[..lost.len().min(20)]
                ),
            );
        }
        if ledger.confirmed.is_empty() && cycles > 0 {
            ledger.fail("totals", "nothing was ever confirmed".to_string());
        }
    }
    assert!(
        ledger.failures.is_empty(),
        "durability violations:\n{}",
        ledger.failures.join("\n")
    );
}
