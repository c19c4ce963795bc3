//! Mode `stream`: a stream queue, over AMQP 0-9-1 (`--protocol amqp`: declared with
//! `x-queue-type: stream`, consumed with `x-stream-offset`, qos and acks) or over RabbitMQ's
//! stream protocol (`--protocol stream`: created, published with publish-confirm, read by
//! subscription with credit).
//!
//! - Live: consumers subscribe from `--offset` first; then `-x` publishers publish with at
//!   most `-c` unconfirmed for `-z` seconds, or `-C` messages each (then the run ends when
//!   every consumer has read them all). Reports publish, confirm and consume rates and
//!   latency (send time to receipt).
//! - Catch-up (`--prefill N` or `--prefill-bytes SIZE`): the publishers write N messages
//!   with no consumer; then `-y` consumers (at least one) read them all from `--offset`.
//!   Reports the read rate in msg/s and MB/s (bodies, 10^6 bytes) and the broker's VmRSS
//!   (`--pid`) before, with the data written, at its highest during the read, and after.
//!
//! Publishers and consumers are `throughput`'s (AMQP) and `stream_proto`'s (stream
//! protocol), counting into one [`Stats`].

use super::args::{Args, parse_queue_args};
use super::client::Uri;
use super::progress;
use super::rss::{json_opt, vm_rss_kib};
use super::stream_client::{StreamClient, parse_offset};
use super::stream_proto;
use super::throughput::{self, Stats, declare_topology, delete_topology, percentile};
use crate::protocol::stream::OffsetSpec;
use crate::protocol::{FieldTable, FieldValue};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Confirm window when `-c` is not given: stream publishers always wait for confirms.
const DEFAULT_WINDOW: u64 = 1000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Amqp,
    Stream,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Amqp => "amqp",
            Protocol::Stream => "stream",
        }
    }
}

/// The setup connection, kept to delete the streams at the end.
enum Setup {
    Amqp(super::client::Client),
    Stream(StreamClient),
}

type Tasks = JoinSet<Result<(), String>>;

/// The mode's settings, checked.
struct Plan {
    args: Arc<Args>,
    uri: Arc<Uri>,
    protocol: Protocol,
    offset: OffsetSpec,
}

impl Plan {
    fn new(args: Arc<Args>, uri: Arc<Uri>) -> Result<Plan, String> {
        let protocol = match args.protocol.as_str() {
            "amqp" => Protocol::Amqp,
            "stream" => Protocol::Stream,
            p => return Err(format!("--protocol {p:?}: amqp or stream")),
        };
        match (protocol, uri.stream) {
            (Protocol::Amqp, true) => {
                return Err("--protocol amqp needs an amqp:// or amqps:// --uri".into());
            }
            (Protocol::Stream, false) => {
                return Err("--protocol stream needs a rabbitmq-stream:// --uri".into());
            }
            _ => {}
        }
        let offset = parse_offset(&args.offset)?;
        let mut a = (*args).clone();
        if a.confirms == 0 {
            a.confirms = DEFAULT_WINDOW;
        }
        // Streams are durable, and refuse consumers that do not acknowledge.
        a.persistent = true;
        if a.ack_every == 0 {
            a.ack_every = (a.prefetch as u64 / 2).max(1);
        }
        Ok(Plan {
            args: Arc::new(a),
            uri,
            protocol,
            offset,
        })
    }

    /// Declares (AMQP) or creates (stream protocol) the streams; returns their names.
    async fn setup(&self) -> Result<(Setup, Vec<String>), String> {
        let mut queue_args = match &self.args.queue_args {
            Some(s) => parse_queue_args(s).map_err(|e| format!("--queue-args: {e}"))?,
            None => FieldTable::new(),
        };
        if queue_args.get("x-queue-type").is_none() {
            queue_args.insert("x-queue-type", FieldValue::LongStr("stream".into()));
        }
        let cannot = |e: String| format!("cannot connect to {}: {e}", self.args.uri);
        match self.protocol {
            Protocol::Amqp => {
                let mut c = super::client::Client::connect(&self.uri)
                    .await
                    .map_err(|e| cannot(e.to_string()))?;
                let queues = declare_topology(&mut c, &self.args, &queue_args)
                    .await
                    .map_err(|e| format!("declaring the stream failed: {e}"))?;
                Ok((Setup::Amqp(c), queues))
            }
            Protocol::Stream => {
                let mut c = StreamClient::connect(&self.uri)
                    .await
                    .map_err(|e| cannot(e.to_string()))?;
                let queues = stream_names(&self.args);
                let create_args = stream_create_args(&queue_args);
                for q in &queues {
                    c.create(q, &create_args)
                        .await
                        .map_err(|e| format!("creating stream {q} failed: {e}"))?;
                }
                Ok((Setup::Stream(c), queues))
            }
        }
    }

    /// Deletes the streams the tool named itself, and closes the setup connection.
    async fn teardown(&self, setup: Setup, queues: &[String]) {
        match setup {
            Setup::Amqp(mut c) => {
                let _ = delete_topology(&mut c, &self.args, queues).await;
                let _ = c.close().await;
            }
            Setup::Stream(mut c) => {
                if self.args.queue.is_none() {
                    for q in queues {
                        let _ = c.delete(q).await;
                    }
                }
                let _ = c.close().await;
            }
        }
    }

    fn spawn_publisher(
        &self,
        tasks: &mut Tasks,
        queue: String,
        stats: Arc<Stats>,
        limit: Option<u64>,
    ) {
        let (uri, args) = (self.uri.clone(), self.args.clone());
        match self.protocol {
            Protocol::Amqp => {
                tasks.spawn(throughput::publisher(uri, args, queue, stats, limit));
            }
            Protocol::Stream => {
                tasks.spawn(stream_proto::publisher(uri, args, queue, stats, limit));
            }
        }
    }

    fn spawn_consumer(
        &self,
        tasks: &mut Tasks,
        queue: String,
        stats: Arc<Stats>,
        until: Option<u64>,
    ) {
        let (uri, args) = (self.uri.clone(), self.args.clone());
        match self.protocol {
            Protocol::Amqp => {
                let mut arguments = FieldTable::new();
                let offset = match self.offset {
                    OffsetSpec::First => FieldValue::LongStr("first".into()),
                    OffsetSpec::Last => FieldValue::LongStr("last".into()),
                    OffsetSpec::Next => FieldValue::LongStr("next".into()),
                    OffsetSpec::Offset(n) => FieldValue::I64(n as i64),
                    // AMQP's timestamp is in seconds.
                    OffsetSpec::Timestamp(ms) => FieldValue::Timestamp(ms.max(0) as u64 / 1000),
                };
                arguments.insert("x-stream-offset", offset);
                tasks.spawn(throughput::consumer(
                    uri, args, queue, stats, until, arguments,
                ));
            }
            Protocol::Stream => {
                let offset = self.offset;
                tasks.spawn(stream_proto::consumer(
                    uri, args, queue, stats, until, offset,
                ));
            }
        }
    }

    /// How many of `published` messages a consumer reads from the offset (numbered from 0
    /// on a fresh stream).
    fn readable(&self, published: u64) -> u64 {
        match self.offset {
            OffsetSpec::Offset(n) => published.saturating_sub(n),
            _ => published,
        }
    }
}

/// QUEUE, or QUEUE-0..N-1 with `--queues N`, as `declare_topology` names them.
fn stream_names(args: &Args) -> Vec<String> {
    let base = args
        .queue
        .clone()
        .unwrap_or_else(|| format!("warren-perf-{}", std::process::id()));
    if args.queues <= 1 {
        vec![base]
    } else {
        (0..args.queues).map(|i| format!("{base}-{i}")).collect()
    }
}

/// `--queue-args` as the stream protocol's create arguments: `x-max-length-bytes` becomes
/// `max-length-bytes` and so on; `x-queue-type` is implied.
fn stream_create_args(t: &FieldTable) -> Vec<(String, String)> {
    t.iter()
        .filter_map(|(k, v)| {
            let k = k.as_str()?;
            if k == "x-queue-type" {
                return None;
            }
            let v = match v {
                FieldValue::LongStr(s) => s.to_string(),
                FieldValue::Bool(b) => b.to_string(),
                v => v.as_i64()?.to_string(),
            };
            Some((k.trim_start_matches("x-").to_string(), v))
        })
        .collect()
}

/// Waits until `n` consumers are subscribed; a consumer that ends before is an error.
async fn subscribed(stats: &Stats, consumers: &mut Tasks, n: u64) -> Result<(), String> {
    tokio::select! {
        _ = stats.all_subscribed(n) => Ok(()),
        Some(r) = consumers.join_next() => Err(match r {
            Ok(Err(e)) => format!("a consumer failed: {e}"),
            Ok(Ok(())) => "a consumer ended before subscribing".into(),
            Err(e) => format!("a consumer failed: {e}"),
        }),
    }
}

/// A finished task's error, if it failed.
fn failure(r: Result<Result<(), String>, tokio::task::JoinError>) -> Option<String> {
    match r {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(e) => Some(e.to_string()),
    }
}

/// The first error of `tasks`; pending for ever while none fails.
async fn first_failure(tasks: &mut Tasks, who: &str) -> String {
    while let Some(r) = tasks.join_next().await {
        if let Some(e) = failure(r) {
            return format!("a {who} failed: {e}");
        }
    }
    std::future::pending().await
}

/// Waits for every task (each at most 2 s once the run stops); the first error.
async fn join_all(tasks: &mut Tasks, who: &str) -> Option<String> {
    let mut first = None;
    while let Ok(Some(r)) = tokio::time::timeout(Duration::from_secs(2), tasks.join_next()).await {
        if let Some(e) = failure(r) {
            first = first.or(Some(format!("a {who} failed: {e}")));
        }
    }
    tasks.abort_all();
    first
}

pub async fn run(args: Arc<Args>, uri: Arc<Uri>) -> Result<(), String> {
    let plan = Plan::new(args, uri)?;
    let (setup, queues) = plan.setup().await?;
    let prefill = match (plan.args.prefill, plan.args.prefill_bytes) {
        (Some(n), _) => Some(n),
        (None, Some(b)) => Some(b.div_ceil(plan.args.size.max(8) as u64)),
        (None, None) => None,
    };
    let result = match prefill {
        Some(n) => catch_up(&plan, &queues, n).await,
        None => live(&plan, &queues).await,
    };
    plan.teardown(setup, &queues).await;
    result
}

/// Live publishing and consuming.
///
/// Publishers and consumers count into separate [`Stats`]: with `-C`, consumers that have
/// read everything stop themselves, and must not stop the publishers before every confirm
/// is in.
async fn live(plan: &Plan, queues: &[String]) -> Result<(), String> {
    let args = &plan.args;
    let (pubs, cons) = (Arc::new(Stats::default()), Arc::new(Stats::default()));
    let (mut consumers, mut publishers) = (Tasks::new(), Tasks::new());
    // With -C, the run ends when each consumer has read what was published to its stream.
    let per_queue = |q: usize| {
        (0..args.publishers)
            .filter(|i| i % queues.len() == q)
            .count() as u64
    };
    let until = args.pmessages.map(|c| {
        (0..args.consumers)
            .map(|j| plan.readable(c * per_queue(j % queues.len())))
            .sum::<u64>()
    });
    for j in 0..args.consumers {
        plan.spawn_consumer(
            &mut consumers,
            queues[j % queues.len()].clone(),
            cons.clone(),
            until,
        );
    }
    subscribed(&cons, &mut consumers, args.consumers as u64).await?;
    for i in 0..args.publishers {
        plan.spawn_publisher(
            &mut publishers,
            queues[i % queues.len()].clone(),
            pubs.clone(),
            args.pmessages,
        );
    }
    let (cap, seconds) = match args.pmessages {
        Some(_) => (args.seconds.map(Duration::from_secs), None),
        None => (None, Some(args.seconds.unwrap_or(10))),
    };
    let work = async {
        match seconds {
            Some(s) => tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(s)) => None,
                e = first_failure(&mut publishers, "publisher") => Some(e),
                e = first_failure(&mut consumers, "consumer") => Some(e),
            },
            None => {
                // -C: every publisher done (all confirmed), and every consumer done.
                let wrote = async {
                    while let Some(r) = publishers.join_next().await {
                        if let Some(e) = failure(r) {
                            return Some(format!("a publisher failed: {e}"));
                        }
                    }
                    if until.is_some_and(|u| u > 0) {
                        cons.done.notified().await;
                    }
                    None
                };
                tokio::select! {
                    e = wrote => e,
                    e = first_failure(&mut consumers, "consumer") => Some(e),
                }
            }
        }
    };
    let (mut last_p, mut last_k, mut last_c) = (0, 0, 0);
    let (finished, elapsed) = progress::run(work, args.json, cap, |s| {
        let (p, k, c) = (
            pubs.published.load(Ordering::Relaxed),
            pubs.confirmed.load(Ordering::Relaxed),
            cons.consumed.load(Ordering::Relaxed),
        );
        let line = format!(
            "time {s}s, sent {} msg/s, confirmed {} msg/s, received {} msg/s",
            p - last_p,
            k - last_k,
            c - last_c
        );
        (last_p, last_k, last_c) = (p, k, c);
        line
    })
    .await;
    pubs.stop.store(true, Ordering::Relaxed);
    cons.stop.store(true, Ordering::Relaxed);
    if let Some(Some(e)) = finished {
        return Err(e);
    }
    let failed = join_all(&mut publishers, "publisher").await;
    let failed = failed.or(join_all(&mut consumers, "consumer").await);
    if let Some(e) = failed {
        return Err(e);
    }
    let mut lat = std::mem::take(&mut *cons.latencies_us.lock().unwrap());
    lat.sort_unstable();
    let (p, k, c) = (
        pubs.published.load(Ordering::Relaxed),
        pubs.confirmed.load(Ordering::Relaxed),
        cons.consumed.load(Ordering::Relaxed),
    );
    let (sent_rate, confirm_rate, recv_rate) =
        (p as f64 / elapsed, k as f64 / elapsed, c as f64 / elapsed);
    let (p50, p95, p99, max) = (
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0),
    );
    let proto = plan.protocol.name();
    if !args.json {
        println!(
            "summary ({proto}, from {}): sent {sent_rate:.0} msg/s, confirmed {confirm_rate:.0} msg/s, received {recv_rate:.0} msg/s, latency us p50 {p50} p95 {p95} p99 {p99} max {max}{}",
            args.offset,
            if finished.is_none() {
                " (capped by -z)"
            } else {
                ""
            }
        );
    }
    println!(
        "{{\"mode\":\"stream\",\"protocol\":\"{proto}\",\"offset\":\"{}\",\"size\":{},\"seconds\":{elapsed:.3},\"published\":{p},\"confirmed\":{k},\"consumed\":{c},\"sent_rate\":{sent_rate:.0},\"confirm_rate\":{confirm_rate:.0},\"received_rate\":{recv_rate:.0},\"latency_us\":{{\"p50\":{p50},\"p95\":{p95},\"p99\":{p99},\"max\":{max}}}}}",
        args.offset,
        args.size.max(8)
    );
    Ok(())
}

/// Publishes `n` messages (spread over the publishers and streams) with no consumer, then
/// reads them all back.
async fn catch_up(plan: &Plan, queues: &[String], n: u64) -> Result<(), String> {
    let args = &plan.args;
    if matches!(plan.offset, OffsetSpec::Last | OffsetSpec::Next) {
        return Err("a catch-up read starts from first or an offset number".into());
    }
    let cap = args.seconds.map(Duration::from_secs);
    let size = args.size.max(8) as u64;
    let rss_before = vm_rss_kib(&args.pid);

    // Write phase: publisher i writes its share to stream i mod N.
    let stats = Arc::new(Stats::default());
    let mut publishers = Tasks::new();
    let x = args.publishers.max(1) as u64;
    let mut per_queue = vec![0u64; queues.len()];
    for i in 0..x {
        let share = n / x + u64::from(i < n % x);
        per_queue[i as usize % queues.len()] += share;
        plan.spawn_publisher(
            &mut publishers,
            queues[i as usize % queues.len()].clone(),
            stats.clone(),
            Some(share),
        );
    }
    let write = async {
        let mut first = None;
        while let Some(r) = publishers.join_next().await {
            first = first.or(failure(r));
        }
        first
    };
    let (mut last_p, mut last_k) = (0, 0);
    let (written, publish_seconds) = progress::run(write, args.json, cap, |s| {
        let (p, k) = (
            stats.published.load(Ordering::Relaxed),
            stats.confirmed.load(Ordering::Relaxed),
        );
        let line = format!(
            "time {s}s, sent {} msg/s, confirmed {} msg/s, written {k} of {n}",
            p - last_p,
            k - last_k
        );
        (last_p, last_k) = (p, k);
        line
    })
    .await;
    stats.stop.store(true, Ordering::Relaxed);
    match written {
        None => return Err(format!("writing {n} messages took longer than -z")),
        Some(Some(e)) => return Err(format!("a publisher failed: {e}")),
        Some(None) => {}
    }
    let confirmed = stats.confirmed.load(Ordering::Relaxed);
    let rss_written = vm_rss_kib(&args.pid);
    if !args.json {
        let mem = rss_written.map_or(String::new(), |k| format!(", broker {k} KiB"));
        println!("written: {confirmed} messages of {size} B in {publish_seconds:.3} s{mem}");
    }

    // Read phase.
    let read = Arc::new(Stats {
        skip_latency: true,
        ..Default::default()
    });
    let y = args.consumers.max(1);
    let expected: u64 = (0..y)
        .map(|j| plan.readable(per_queue[j % queues.len()]))
        .sum();
    let mut consumers = Tasks::new();
    let start = Instant::now();
    for j in 0..y {
        plan.spawn_consumer(
            &mut consumers,
            queues[j % queues.len()].clone(),
            read.clone(),
            Some(expected),
        );
    }
    let mut rss_max = vm_rss_kib(&args.pid);
    let mut last_c = 0;
    let wait = async {
        if expected > 0 {
            read.done.notified().await
        }
    };
    let wait = async {
        tokio::select! {
            _ = wait => None,
            e = first_failure(&mut consumers, "consumer") => Some(e),
        }
    };
    let (finished, _) = progress::run(wait, args.json, cap, |s| {
        let c = read.consumed.load(Ordering::Relaxed);
        let rss = vm_rss_kib(&args.pid);
        rss_max = rss_max.max(rss);
        let line = format!(
            "time {s}s, read {} msg/s, {:.1} MB/s, left {}{}",
            c - last_c,
            ((c - last_c) * size) as f64 / 1e6,
            expected.saturating_sub(c),
            rss.map_or(String::new(), |k| format!(", broker {k} KiB"))
        );
        last_c = c;
        line
    })
    .await;
    let read_seconds = start.elapsed().as_secs_f64();
    read.stop.store(true, Ordering::Relaxed);
    let failed = join_all(&mut consumers, "consumer").await;
    if let Some(Some(e)) = finished {
        return Err(e);
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let consumed = read.consumed.load(Ordering::Relaxed);
    let rss_after = vm_rss_kib(&args.pid);
    rss_max = rss_max.max(rss_after);
    let publish_rate = confirmed as f64 / publish_seconds;
    let read_rate = consumed as f64 / read_seconds;
    let read_mb_s = read_rate * size as f64 / 1e6;
    let proto = plan.protocol.name();
    if !args.json {
        let mem = match (rss_before, rss_written, rss_max, rss_after) {
            (Some(b), Some(w), Some(m), Some(a)) => format!(
                ", broker RSS {b} KiB before, {w} KiB written, {m} KiB at most while reading, {a} KiB after"
            ),
            _ => String::new(),
        };
        println!(
            "summary ({proto}, catch-up from {}): wrote {confirmed} in {publish_seconds:.3} s, {publish_rate:.0} msg/s; read {consumed} of {expected} in {read_seconds:.3} s, {read_rate:.0} msg/s, {read_mb_s:.1} MB/s{mem}{}",
            args.offset,
            if finished.is_none() {
                " (capped by -z)"
            } else {
                ""
            }
        );
    }
    println!(
        "{{\"mode\":\"stream-catch-up\",\"protocol\":\"{proto}\",\"offset\":\"{}\",\"size\":{size},\"messages\":{n},\"bytes\":{},\"confirmed\":{confirmed},\"publish_seconds\":{publish_seconds:.3},\"publish_rate\":{publish_rate:.0},\"consumers\":{y},\"expected\":{expected},\"consumed\":{consumed},\"read_seconds\":{read_seconds:.3},\"read_rate\":{read_rate:.0},\"read_mb_s\":{read_mb_s:.1},\"rss_before_kib\":{},\"rss_written_kib\":{},\"rss_read_max_kib\":{},\"rss_after_kib\":{}}}",
        args.offset,
        n * size,
        json_opt(rss_before),
        json_opt(rss_written),
        json_opt(rss_max),
        json_opt(rss_after)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_args_become_create_arguments() {
        let t = parse_queue_args(
            r#"{"x-queue-type": "stream", "x-max-length-bytes": 1000, "x-max-age": "1h"}"#,
        )
        .unwrap();
        let mut got = stream_create_args(&t);
        got.sort();
        assert_eq!(
            got,
            vec![
                ("max-age".to_string(), "1h".to_string()),
                ("max-length-bytes".to_string(), "1000".to_string())
            ]
        );
    }
}
