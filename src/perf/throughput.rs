//! Publishers, consumers and topology shared by the `throughput` and `backlog` modes, and
//! the `throughput` mode itself: `-x` publishers and `-y` consumers for `-z` seconds.
//!
//! Publishers pipeline their frames into one buffer per batch; consumers read every frame
//! available before acking (multiple).

use super::args::Args;
use super::client::{Client, Uri};
use super::progress;
use super::rss::{cpu_us, json_opt};
use crate::protocol::frame::{FRAME_OVERHEAD, encode_header};
use crate::protocol::*;
use bytes::{BufMut, Bytes};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Default)]
pub struct Stats {
    pub published: AtomicU64,
    pub confirmed: AtomicU64,
    pub consumed: AtomicU64,
    pub latencies_us: Mutex<Vec<u32>>,
    pub stop: AtomicBool,
    /// Woken when consumers reach their target count.
    pub done: tokio::sync::Notify,
    /// Consumers whose subscription the broker has confirmed (consume-ok); `subscribed_one`
    /// is woken at each.
    pub subscribed: AtomicU64,
    pub subscribed_one: tokio::sync::Notify,
    /// Consumers record no latency (a catch-up read of old data, where it means nothing and
    /// one entry per message would grow without bound).
    pub skip_latency: bool,
}

impl Stats {
    /// Marks one consumer subscribed.
    pub fn mark_subscribed(&self) {
        self.subscribed.fetch_add(1, Ordering::Relaxed);
        self.subscribed_one.notify_waiters();
    }

    /// Waits until `n` consumers are subscribed.
    pub async fn all_subscribed(&self, n: u64) {
        loop {
            let notified = self.subscribed_one.notified();
            if self.subscribed.load(Ordering::Relaxed) >= n {
                return;
            }
            notified.await;
        }
    }
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

pub fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Takes every confirm already read, and reads more while more than `max_outstanding`
/// publishes are unconfirmed (unless the run is stopping).
async fn read_confirms(
    c: &mut Client,
    sent: u64,
    acked: &mut u64,
    max_outstanding: u64,
    stats: &Stats,
) -> Result<(), String> {
    loop {
        let f = match c.try_frame().map_err(err)? {
            Some(f) => f,
            None if sent - *acked <= max_outstanding || stats.stop.load(Ordering::Relaxed) => {
                return Ok(());
            }
            None => {
                if !c.read_more().await.map_err(err)? {
                    return Err("connection closed".into());
                }
                continue;
            }
        };
        let (tag, multiple, ack) = match f {
            Frame::Method {
                method: Method::BasicAck(a),
                ..
            } => (a.delivery_tag, a.multiple, true),
            Frame::Method {
                method: Method::BasicNack(n),
                ..
            } => (n.delivery_tag, n.multiple, false),
            Frame::Method {
                method: Method::ChannelClose(c),
                ..
            } => return Err(format!("channel closed: {} {}", c.reply_code, c.reply_text)),
            _ => continue,
        };
        let newly = if multiple { tag - *acked } else { 1 };
        *acked += newly;
        if ack {
            stats.confirmed.fetch_add(newly, Ordering::Relaxed);
        }
    }
}

/// Publishes until the run stops, or `limit` messages have been published (and, with
/// confirms, confirmed).
///
/// With `-r`, messages are spread over time: each millisecond tick sends what is due by
/// then, at most 2 ms worth (a stall is caught up over the next ticks, one of over 100 ms is
/// skipped), so a rate limited run never bursts and latency percentiles measure the broker,
/// not the tool.
pub async fn publisher(
    uri: Arc<Uri>,
    args: Arc<Args>,
    queue: String,
    stats: Arc<Stats>,
    limit: Option<u64>,
) -> Result<(), String> {
    let mut c = Client::connect(&uri).await.map_err(err)?;
    if args.confirms > 0 {
        c.send(1, ConfirmSelect { nowait: false }.into())
            .await
            .map_err(err)?;
        c.expect(|m| matches!(m, Method::ConfirmSelectOk(_)))
            .await
            .map_err(err)?;
    }
    let props = EncodedProperties::from(&BasicProperties {
        delivery_mode: Some(if args.persistent { 2 } else { 1 }),
        ..Default::default()
    });
    let method: Method = BasicPublish {
        exchange: args.exchange.as_str().into(),
        routing_key: args.routing_key.clone().unwrap_or(queue).into(),
        mandatory: false,
        immediate: false,
    }
    .into();
    let mut body = Body::new(args.size.max(8));
    let (mut sent, mut acked, mut scheduled) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let mut ticks = (args.rate > 0).then(|| {
        let mut i = tokio::time::interval(Duration::from_millis(1));
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let batch = if args.confirms > 0 {
        args.confirms.min(100)
    } else {
        100
    };
    while !stats.stop.load(Ordering::Relaxed) {
        let mut n = batch;
        if let Some(limit) = limit {
            n = n.min(limit - sent);
            if n == 0 {
                break;
            }
        }
        if args.confirms > 0 {
            n = n.min(args.confirms - (sent - acked));
        }
        if let Some(ticks) = ticks.as_mut() {
            // One small batch per millisecond tick: what is due by now, at most 2 ms worth.
            ticks.tick().await;
            let due = (start.elapsed().as_secs_f64() * args.rate as f64) as u64;
            let slack = (args.rate / 500).max(1);
            if due > scheduled + args.rate / 10 {
                scheduled = due - slack; // a stall of over 100 ms: skip, don't burst
            }
            n = n.min(due - scheduled).min(slack);
            if n == 0 {
                continue;
            }
            scheduled += n;
        }
        for _ in 0..n {
            publish_timestamped(&mut c, &method, &props, &mut body);
        }
        sent += n;
        c.flush().await.map_err(err)?;
        stats.published.fetch_add(n, Ordering::Relaxed);
        if args.confirms > 0 {
            // Wait for more confirms only when the window is full.
            read_confirms(&mut c, sent, &mut acked, args.confirms - 1, &stats).await?;
        }
    }
    if args.confirms > 0 && limit.is_some() {
        read_confirms(&mut c, sent, &mut acked, 0, &stats).await?;
    }
    Ok(())
}

/// A message body: a send timestamp in the first 8 octets, then filler. Large bodies keep
/// the filler as shared `Bytes` and write only the timestamp per message, as a broker
/// shares bodies: copying 16 KiB per message would make the tool the bottleneck.
struct Body {
    whole: Vec<u8>,
    tail: Bytes,
}

impl Body {
    fn new(size: usize) -> Body {
        Body {
            whole: vec![0u8; size],
            tail: Bytes::from(vec![0u8; size - 8]),
        }
    }
}

fn publish_timestamped(
    c: &mut Client,
    method: &Method,
    props: &EncodedProperties,
    body: &mut Body,
) {
    let now = now_ns();
    let len = body.whole.len();
    if len < output::SHARE_MIN || len + FRAME_OVERHEAD > c.frame_max as usize {
        (&mut body.whole[..8]).put_u64(now);
        encode_content(c.wbuf.buf(), 1, method, props, &body.whole, c.frame_max);
        return;
    }
    let buf = c.wbuf.buf();
    encode_method(buf, 1, method);
    encode_header(buf, 1, len as u64, props);
    buf.put_u8(FRAME_BODY);
    buf.put_u16(1);
    buf.put_u32(len as u32);
    buf.put_u64(now);
    c.wbuf.share(body.tail.clone());
    c.wbuf.buf().put_u8(FRAME_END);
}

/// Consumes until the run stops, or until all consumers together have consumed `until`
/// messages (then sets `stop` and wakes `done`). Acks what it holds before leaving.
/// `arguments` go with basic.consume (a stream's `x-stream-offset`).
pub async fn consumer(
    uri: Arc<Uri>,
    args: Arc<Args>,
    queue: String,
    stats: Arc<Stats>,
    until: Option<u64>,
    arguments: FieldTable,
) -> Result<(), String> {
    let mut c = Client::connect(&uri).await.map_err(err)?;
    let no_ack = args.ack_every == 0;
    if !no_ack {
        c.send(
            1,
            BasicQos {
                prefetch_size: 0,
                prefetch_count: args.prefetch,
                global: false,
            }
            .into(),
        )
        .await
        .map_err(err)?;
        c.expect(|m| matches!(m, Method::BasicQosOk(_)))
            .await
            .map_err(err)?;
    }
    c.send(
        1,
        BasicConsume {
            queue: queue.as_str().into(),
            consumer_tag: "".into(),
            no_local: false,
            no_ack,
            exclusive: false,
            nowait: false,
            arguments,
        }
        .into(),
    )
    .await
    .map_err(err)?;
    c.expect(|m| matches!(m, Method::BasicConsumeOk(_)))
        .await
        .map_err(err)?;
    stats.mark_subscribed();
    let mut asm = ContentAssembler::default();
    let (mut unacked, mut last_tag) = (0u64, 0u64);
    let mut lat = Vec::new();
    // --consume-rate: message n is taken no earlier than n / rate seconds after the start.
    let (paced_from, mut taken) = (tokio::time::Instant::now(), 0u64);
    let ack = |tag| -> Method {
        BasicAck {
            delivery_tag: tag,
            multiple: true,
        }
        .into()
    };
    while !stats.stop.load(Ordering::Relaxed) {
        let f = match c.try_frame().map_err(err)? {
            Some(f) => f,
            None => {
                if unacked > 0 && !no_ack {
                    c.send(1, ack(last_tag)).await.map_err(err)?;
                    unacked = 0;
                }
                // Wake up now and then to notice the end of the run.
                if let Ok(r) = tokio::time::timeout(Duration::from_millis(200), c.read_more()).await
                    && !r.map_err(err)?
                {
                    break;
                }
                continue;
            }
        };
        if let Some(content::Assembled::Content(m)) = asm.push(f).map_err(err)? {
            if let Method::BasicDeliver(d) = &m.method {
                last_tag = d.delivery_tag;
            }
            if m.body.len() >= 8 && !stats.skip_latency {
                let sent = u64::from_be_bytes(m.body[..8].try_into().unwrap());
                lat.push((now_ns().saturating_sub(sent) / 1000).min(u32::MAX as u64) as u32);
            }
            let total = stats.consumed.fetch_add(1, Ordering::Relaxed) + 1;
            unacked += 1;
            if !no_ack && unacked >= args.ack_every {
                encode_method(c.wbuf.buf(), 1, &ack(last_tag));
                unacked = 0;
                c.flush().await.map_err(err)?;
            }
            if until == Some(total) {
                stats.stop.store(true, Ordering::Relaxed);
                stats.done.notify_one();
            }
            if args.consume_rate > 0 {
                taken += 1;
                // Settle what was taken, then wait for the next message's turn.
                if unacked > 0 && !no_ack {
                    c.send(1, ack(last_tag)).await.map_err(err)?;
                    unacked = 0;
                }
                let due =
                    paced_from + Duration::from_secs_f64(taken as f64 / args.consume_rate as f64);
                tokio::time::sleep_until(due).await;
            }
        }
    }
    if unacked > 0 && !no_ack {
        c.send(1, ack(last_tag)).await.map_err(err)?;
    }
    stats.latencies_us.lock().unwrap().extend(lat);
    Ok(())
}

/// Sends a synchronous method and waits for its reply.
pub async fn call(c: &mut Client, m: Method, ok: fn(&Method) -> bool) -> Result<Method, String> {
    c.send(1, m).await.map_err(err)?;
    c.expect(ok).await.map_err(err)
}

/// Declares the exchange (with -t), the queues and their bindings; returns queue names.
pub async fn declare_topology(
    c: &mut Client,
    args: &Args,
    queue_args: &FieldTable,
) -> Result<Vec<String>, String> {
    let base = args
        .queue
        .clone()
        .unwrap_or_else(|| format!("warren-perf-{}", std::process::id()));
    let queues: Vec<String> = if args.queues <= 1 {
        vec![base]
    } else {
        (0..args.queues).map(|i| format!("{base}-{i}")).collect()
    };
    if let Some(kind) = &args.exchange_type {
        let m = ExchangeDeclare {
            exchange: args.exchange.as_str().into(),
            kind: kind.as_str().into(),
            ..Default::default()
        };
        call(c, m.into(), |m| matches!(m, Method::ExchangeDeclareOk(_))).await?;
    }
    for queue in &queues {
        let m = QueueDeclare {
            queue: queue.as_str().into(),
            durable: args.persistent,
            arguments: queue_args.clone(),
            ..Default::default()
        };
        call(c, m.into(), |m| matches!(m, Method::QueueDeclareOk(_))).await?;
        if args.exchange.is_empty() {
            continue;
        }
        let key = args.routing_key.clone().unwrap_or_else(|| queue.clone());
        let extra = (0..args.bindings).map(|i| format!("nomatch.{queue}.{i}"));
        let keys: Vec<String> = std::iter::once(key).chain(extra).collect();
        for key in &keys {
            let m: Method = QueueBind {
                queue: queue.as_str().into(),
                exchange: args.exchange.as_str().into(),
                routing_key: key.as_str().into(),
                ..Default::default()
            }
            .into();
            encode_method(c.wbuf.buf(), 1, &m);
        }
        c.flush().await.map_err(err)?;
        for _ in &keys {
            c.expect(|m| matches!(m, Method::QueueBindOk(_)))
                .await
                .map_err(err)?;
        }
    }
    Ok(queues)
}

/// Deletes what `declare_topology` made (queues only when the tool named them).
pub async fn delete_topology(c: &mut Client, args: &Args, queues: &[String]) -> Result<(), String> {
    if args.queue.is_none() {
        for queue in queues {
            let m = QueueDelete {
                queue: queue.as_str().into(),
                ..Default::default()
            };
            call(c, m.into(), |m| matches!(m, Method::QueueDeleteOk(_))).await?;
        }
    }
    if args.exchange_type.is_some() {
        let m = ExchangeDelete {
            exchange: args.exchange.as_str().into(),
            ..Default::default()
        };
        call(c, m.into(), |m| matches!(m, Method::ExchangeDeleteOk(_))).await?;
    }
    Ok(())
}

pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

/// Connects the setup client and declares the topology (exits on failure).
pub async fn setup(args: &Args, uri: &Uri) -> Result<(Client, Vec<String>), String> {
    let queue_args = match &args.queue_args {
        Some(s) => super::args::parse_queue_args(s).map_err(|e| format!("--queue-args: {e}"))?,
        None => FieldTable::new(),
    };
    let mut setup = Client::connect(uri)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.uri))?;
    let queues = declare_topology(&mut setup, args, &queue_args)
        .await
        .map_err(|e| format!("setting up queues failed: {e}"))?;
    Ok((setup, queues))
}

/// Consumers must subscribe within this long before the measured window starts anyway.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Mode `throughput`. The measured window starts once every consumer is subscribed (a
/// client library's handshake is not counted against the broker) and lasts `-z` seconds;
/// the rates and the broker's CPU time per consumed message (`--pid`) are over that window.
/// What one throughput measure found (over the measured window, after subscribing).
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    pub elapsed: f64,
    pub published: u64,
    pub confirmed: u64,
    pub consumed: u64,
    pub sent_rate: f64,
    pub received_rate: f64,
    pub p50: u32,
    pub p95: u32,
    pub p99: u32,
    pub max: u32,
    /// The broker's CPU time over the window (with `--pid`).
    pub cpu_us: Option<u64>,
    pub cpu_us_per_msg: Option<f64>,
}

/// Mode `throughput`: one measure, a summary and the JSON line.
pub async fn run(args: Arc<Args>, uri: Arc<Uri>) -> Result<(), String> {
    let Measured {
        elapsed,
        published: p,
        confirmed: k,
        consumed: c,
        sent_rate,
        received_rate: recv_rate,
        p50,
        p95,
        p99,
        max,
        cpu_us: cpu,
        cpu_us_per_msg: per_msg,
    } = measure(args.clone(), uri).await?;
    if !args.json {
        let cpu_line = per_msg.map_or(String::new(), |u| format!(", broker CPU {u:.2} us/msg"));
        println!(
            "summary: sent {sent_rate:.0} msg/s, received {recv_rate:.0} msg/s, confirmed {k}, latency us p50 {p50} p95 {p95} p99 {p99} max {max}{cpu_line}"
        );
    }
    println!(
        "{{\"mode\":\"throughput\",\"client\":\"{}\",\"seconds\":{elapsed:.3},\"published\":{p},\"confirmed\":{k},\"consumed\":{c},\"sent_rate\":{sent_rate:.0},\"received_rate\":{recv_rate:.0},\"latency_us\":{{\"p50\":{p50},\"p95\":{p95},\"p99\":{p99},\"max\":{max}}},\"broker_cpu_us\":{},\"cpu_us_per_msg\":{}}}",
        args.client,
        json_opt(cpu),
        per_msg.map_or_else(|| "null".into(), |u| format!("{u:.2}"))
    );
    Ok(())
}

/// One throughput measure: `-x` publishers and `-y` consumers for `-z` seconds.
pub async fn measure(args: Arc<Args>, uri: Arc<Uri>) -> Result<Measured, String> {
    if args.client == "lapin" && args.rate > 0 {
        return Err("-r is not supported with --client lapin".into());
    }
    let (mut setup, queues) = setup(&args, &uri).await?;
    let stats = Arc::new(Stats::default());
    let lapin = args.client == "lapin";
    let mut tasks = Vec::new();
    for j in 0..args.consumers {
        let q = queues[j % queues.len()].clone();
        let (uri, args, stats) = (uri.clone(), args.clone(), stats.clone());
        tasks.push(if lapin {
            tokio::spawn(super::lapin_client::consumer(args, q, stats, None))
        } else {
            tokio::spawn(consumer(uri, args, q, stats, None, FieldTable::new()))
        });
    }
    for i in 0..args.publishers {
        let q = queues[i % queues.len()].clone();
        let (uri, args, stats) = (uri.clone(), args.clone(), stats.clone());
        tasks.push(if lapin {
            tokio::spawn(super::lapin_client::publisher(args, q, stats, None))
        } else {
            tokio::spawn(publisher(uri, args, q, stats, None))
        });
    }
    let subscribed = stats.all_subscribed(args.consumers as u64);
    if tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribed)
        .await
        .is_err()
    {
        stats.stop.store(true, Ordering::Relaxed);
        for t in tasks {
            if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(2), t).await {
                return Err(e);
            }
        }
        return Err("consumers did not subscribe".into());
    }
    let counts = || {
        (
            stats.published.load(Ordering::Relaxed),
            stats.consumed.load(Ordering::Relaxed),
            stats.confirmed.load(Ordering::Relaxed),
        )
    };
    let (p0, c0, k0) = counts();
    let cpu0 = cpu_us(&args.pid);
    let seconds = args.seconds.unwrap_or(10);
    let (mut last_p, mut last_c) = (p0, c0);
    let (_, elapsed) = progress::run(
        tokio::time::sleep(Duration::from_secs(seconds)),
        args.json,
        None,
        |s| {
            let (p, c, _) = counts();
            let line = format!(
                "time {s}s, sent {} msg/s, received {} msg/s",
                p - last_p,
                c - last_c
            );
            (last_p, last_c) = (p, c);
            line
        },
    )
    .await;
    let (p1, c1, k1) = counts();
    let cpu1 = cpu_us(&args.pid);
    stats.stop.store(true, Ordering::Relaxed);
    let mut failure = None;
    for t in tasks {
        if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(2), t).await {
            failure.get_or_insert(e);
        }
    }
    let _ = delete_topology(&mut setup, &args, &queues).await;
    let _ = setup.close().await;
    if let Some(e) = failure {
        eprintln!("warren-perf: a client failed: {e}");
    }
    let mut lat = std::mem::take(&mut *stats.latencies_us.lock().unwrap());
    lat.sort_unstable();
    let (p, c, k) = (p1 - p0, c1 - c0, k1 - k0);
    let (sent_rate, recv_rate) = (p as f64 / elapsed, c as f64 / elapsed);
    let cpu = cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a));
    let per_msg = cpu.filter(|_| c > 0).map(|us| us as f64 / c as f64);
    let (p50, p95, p99, max) = (
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0),
    );
    Ok(Measured {
        elapsed,
        published: p,
        confirmed: k,
        consumed: c,
        sent_rate,
        received_rate: recv_rate,
        p50,
        p95,
        p99,
        max,
        cpu_us: cpu,
        cpu_us_per_msg: per_msg,
    })
}
