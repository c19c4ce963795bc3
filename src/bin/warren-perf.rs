//! warren-perf: an AMQP 0-9-1 load generator in the spirit of RabbitMQ PerfTest and
//! lavinmqperf, built on Warren's own codec. Publishers pipeline their frames into one
//! buffer per batch; consumers read every frame available before acking (multiple).
//!
//! Mode `throughput` (the only one so far): `-x` publishers and `-y` consumers on one queue
//! for `-z` seconds; a progress line per second, a summary, and one JSON line at the end.

use bytes::BufMut;
use clap::Parser;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use warren::perf::client::{Client, Uri};
use warren::protocol::*;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "warren-perf",
    about = "AMQP 0-9-1 load generator (PerfTest-style flags)"
)]
struct Args {
    /// Mode: throughput.
    #[arg(default_value = "throughput")]
    mode: String,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    uri: String,
    /// Publishers.
    #[arg(short = 'x', default_value_t = 1)]
    publishers: usize,
    /// Consumers.
    #[arg(short = 'y', default_value_t = 1)]
    consumers: usize,
    /// Message size in bytes (at least 8: the send timestamp).
    #[arg(short = 's', default_value_t = 16)]
    size: usize,
    /// Ack every N messages (multiple); 0 consumes with no-ack.
    #[arg(short = 'a', default_value_t = 0)]
    ack_every: u64,
    /// Publisher confirms with at most N outstanding; 0 disables confirms.
    #[arg(short = 'c', default_value_t = 0)]
    confirms: u64,
    /// Consumer prefetch (basic.qos).
    #[arg(short = 'P', default_value_t = 1000)]
    prefetch: u16,
    /// Persistent messages (delivery-mode 2) to a durable queue.
    #[arg(short = 'p')]
    persistent: bool,
    /// Queue name (default: a fresh one, deleted at the end).
    #[arg(short = 'u')]
    queue: Option<String>,
    /// Exchange to publish to (default: the default exchange, routing by queue name).
    #[arg(short = 'e', default_value = "")]
    exchange: String,
    /// Routing key (default: the queue name).
    #[arg(short = 'k')]
    routing_key: Option<String>,
    /// Publish rate limit per publisher, messages/s (0: unlimited).
    #[arg(short = 'r', default_value_t = 0)]
    rate: u64,
    /// Duration in seconds.
    #[arg(short = 'z', default_value_t = 10)]
    seconds: u64,
    /// Queue arguments as a JSON object of integers and strings, e.g. '{"x-max-length": 1000}'.
    #[arg(long)]
    queue_args: Option<String>,
    /// Number of queues (named QUEUE-0..N-1 when N > 1); publisher i routes to queue i mod N
    /// on the default exchange, consumer j consumes from queue j mod N.
    #[arg(long, default_value_t = 1)]
    queues: usize,
    /// Declare the exchange given with -e with this type (direct, fanout, topic, headers).
    #[arg(short = 't', long = "type")]
    exchange_type: Option<String>,
    /// Extra non-matching bindings per queue on the exchange (routing-table size tests).
    #[arg(long, default_value_t = 0)]
    bindings: usize,
    /// Print only the final JSON line.
    #[arg(long)]
    json: bool,
}

#[derive(Default)]
struct Stats {
    published: AtomicU64,
    confirmed: AtomicU64,
    consumed: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
    stop: AtomicBool,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn parse_queue_args(s: &str) -> Result<FieldTable, String> {
    // A tiny parser for flat JSON objects of integers and strings.
    let body = s
        .trim()
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or("expected a JSON object")?;
    let mut t = FieldTable::new();
    for pair in body.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = pair.split_once(':').ok_or("expected \"key\": value")?;
        let k = k.trim().trim_matches('"');
        let v = v.trim();
        if let Some(sv) = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
            t.insert(k, FieldValue::LongStr(sv.into()));
        } else if v == "true" || v == "false" {
            t.insert(k, FieldValue::Bool(v == "true"));
        } else {
            t.insert(
                k,
                FieldValue::I64(v.parse().map_err(|_| format!("bad value for {k}"))?),
            );
        }
    }
    Ok(t)
}

async fn publisher(
    uri: Arc<Uri>,
    args: Arc<Args>,
    queue: String,
    stats: Arc<Stats>,
) -> Result<(), String> {
    let mut c = Client::connect(&uri).await.map_err(|e| e.to_string())?;
    if args.confirms > 0 {
        c.send(1, ConfirmSelect { nowait: false }.into())
            .await
            .map_err(|e| e.to_string())?;
        c.expect(|m| matches!(m, Method::ConfirmSelectOk(_)))
            .await
            .map_err(|e| e.to_string())?;
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
    let mut body = vec![0u8; args.size.max(8)];
    let (mut sent, mut acked) = (0u64, 0u64);
    let start = Instant::now();
    let batch = if args.confirms > 0 {
        args.confirms.min(100)
    } else {
        100
    };
    while !stats.stop.load(Ordering::Relaxed) {
        let mut n = batch;
        if args.confirms > 0 {
            n = n.min(args.confirms - (sent - acked));
        }
        if args.rate > 0 {
            let allowed = (start.elapsed().as_secs_f64() * args.rate as f64) as u64;
            n = n.min(allowed.saturating_sub(sent));
            if n == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        }
        for _ in 0..n {
            (&mut body[..8]).put_u64(now_ns());
            encode_content(&mut c.wbuf, 1, &method, &props, &body, c.frame_max);
        }
        sent += n;
        c.flush().await.map_err(|e| e.to_string())?;
        stats.published.fetch_add(n, Ordering::Relaxed);
        if args.confirms > 0 {
            // Take every confirm already read; wait for more only when the window is full.
            loop {
                let f = match c.try_frame().map_err(|e| e.to_string())? {
                    Some(f) => f,
                    None if sent - acked < args.confirms || stats.stop.load(Ordering::Relaxed) => {
                        break;
                    }
                    None => {
                        if !c.read_more().await.map_err(|e| e.to_string())? {
                            return Err("connection closed".into());
                        }
                        continue;
                    }
                };
                if let Frame::Method {
                    method: Method::BasicAck(a),
                    ..
                } = f
                {
                    let newly = if a.multiple {
                        a.delivery_tag - acked
                    } else {
                        1
                    };
                    acked = if a.multiple {
                        a.delivery_tag
                    } else {
                        acked + 1
                    };
                    stats.confirmed.fetch_add(newly, Ordering::Relaxed);
                }
            }
        }
    }
    Ok(())
}

async fn consumer(
    uri: Arc<Uri>,
    args: Arc<Args>,
    queue: String,
    stats: Arc<Stats>,
) -> Result<(), String> {
    let mut c = Client::connect(&uri).await.map_err(|e| e.to_string())?;
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
        .map_err(|e| e.to_string())?;
        c.expect(|m| matches!(m, Method::BasicQosOk(_)))
            .await
            .map_err(|e| e.to_string())?;
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
            arguments: FieldTable::new(),
        }
        .into(),
    )
    .await
    .map_err(|e| e.to_string())?;
    c.expect(|m| matches!(m, Method::BasicConsumeOk(_)))
        .await
        .map_err(|e| e.to_string())?;
    let mut asm = ContentAssembler::new();
    let (mut unacked, mut last_tag) = (0u64, 0u64);
    let mut lat = Vec::new();
    while !stats.stop.load(Ordering::Relaxed) {
        let f = match c.try_frame().map_err(|e| e.to_string())? {
            Some(f) => f,
            None => {
                if unacked > 0 && !no_ack {
                    c.send(
                        1,
                        BasicAck {
                            delivery_tag: last_tag,
                            multiple: true,
                        }
                        .into(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    unacked = 0;
                }
                // Wake up now and then to notice the end of the run.
                if let Ok(r) = tokio::time::timeout(Duration::from_millis(200), c.read_more()).await
                    && !r.map_err(|e| e.to_string())?
                {
                    break;
                }
                continue;
            }
        };
        if let Some(content::Assembled::Content(m)) = asm.push(f).map_err(|e| e.to_string())? {
            if let Method::BasicDeliver(d) = &m.method {
                last_tag = d.delivery_tag;
            }
            if m.body.len() >= 8 {
                let sent = u64::from_be_bytes(m.body[..8].try_into().unwrap());
                lat.push((now_ns().saturating_sub(sent) / 1000).min(u32::MAX as u64) as u32);
            }
            stats.consumed.fetch_add(1, Ordering::Relaxed);
            unacked += 1;
            if !no_ack && unacked >= args.ack_every {
                encode_method(
                    &mut c.wbuf,
                    1,
                    &BasicAck {
                        delivery_tag: last_tag,
                        multiple: true,
                    }
                    .into(),
                );
                unacked = 0;
                c.flush().await.map_err(|e| e.to_string())?;
            }
        }
    }
    stats.latencies_us.lock().unwrap().extend(lat);
    Ok(())
}

/// Sends a synchronous method and waits for its reply.
async fn call(c: &mut Client, m: Method, ok: fn(&Method) -> bool) -> Result<Method, String> {
    c.send(1, m).await.map_err(|e| e.to_string())?;
    c.expect(ok).await.map_err(|e| e.to_string())
}

/// Declares the exchange (with -t), the queues and their bindings; returns queue names.
async fn declare_topology(
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
            encode_method(&mut c.wbuf, 1, &m);
        }
        c.flush().await.map_err(|e| e.to_string())?;
        for _ in &keys {
            c.expect(|m| matches!(m, Method::QueueBindOk(_)))
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(queues)
}

/// Deletes what `declare_topology` made (queues only when the tool named them).
async fn delete_topology(c: &mut Client, args: &Args, queues: &[String]) -> Result<(), String> {
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

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

#[tokio::main]
async fn main() {
    let args = Arc::new(Args::parse());
    if args.mode != "throughput" {
        eprintln!(
            "warren-perf: mode {:?} is not implemented yet (throughput is)",
            args.mode
        );
        std::process::exit(2);
    }
    let uri = Arc::new(Uri::parse(&args.uri).unwrap_or_else(|e| {
        eprintln!("warren-perf: {e}");
        std::process::exit(2)
    }));
    let queue_args = match &args.queue_args {
        Some(s) => parse_queue_args(s).unwrap_or_else(|e| {
            eprintln!("warren-perf: --queue-args: {e}");
            std::process::exit(2)
        }),
        None => FieldTable::new(),
    };
    let mut setup = Client::connect(&uri).await.unwrap_or_else(|e| {
        eprintln!("warren-perf: cannot connect to {}: {e}", args.uri);
        std::process::exit(1)
    });
    let queues = declare_topology(&mut setup, &args, &queue_args)
        .await
        .unwrap_or_else(|e| {
            eprintln!("warren-perf: setting up queues failed: {e}");
            std::process::exit(1)
        });
    let stats = Arc::new(Stats::default());
    let mut tasks = Vec::new();
    for j in 0..args.consumers {
        let q = queues[j % queues.len()].clone();
        tasks.push(tokio::spawn(consumer(
            uri.clone(),
            args.clone(),
            q,
            stats.clone(),
        )));
    }
    for i in 0..args.publishers {
        let q = queues[i % queues.len()].clone();
        tasks.push(tokio::spawn(publisher(
            uri.clone(),
            args.clone(),
            q,
            stats.clone(),
        )));
    }
    let start = Instant::now();
    let (mut last_p, mut last_c) = (0, 0);
    for s in 1..=args.seconds {
        tokio::time::sleep_until((start + Duration::from_secs(s)).into()).await;
        let (p, c) = (
            stats.published.load(Ordering::Relaxed),
            stats.consumed.load(Ordering::Relaxed),
        );
        if !args.json {
            println!(
                "time {s}s, sent {} msg/s, received {} msg/s",
                p - last_p,
                c - last_c
            );
        }
        (last_p, last_c) = (p, c);
    }
    stats.stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    let _ = delete_topology(&mut setup, &args, &queues).await;
    let mut lat = std::mem::take(&mut *stats.latencies_us.lock().unwrap());
    lat.sort_unstable();
    let (p, c, k) = (
        stats.published.load(Ordering::Relaxed),
        stats.consumed.load(Ordering::Relaxed),
        stats.confirmed.load(Ordering::Relaxed),
    );
    let (sent_rate, recv_rate) = (p as f64 / elapsed, c as f64 / elapsed);
    if !args.json {
        println!(
            "summary: sent {sent_rate:.0} msg/s, received {recv_rate:.0} msg/s, confirmed {k}, latency us p50 {} p95 {} p99 {} max {}",
            percentile(&lat, 0.5),
            percentile(&lat, 0.95),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or(0)
        );
    }
    println!(
        "{{\"mode\":\"throughput\",\"seconds\":{elapsed:.3},\"published\":{p},\"confirmed\":{k},\"consumed\":{c},\"sent_rate\":{sent_rate:.0},\"received_rate\":{recv_rate:.0},\"latency_us\":{{\"p50\":{},\"p95\":{},\"p99\":{},\"max\":{}}}}}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0)
    );
}
