//! Mode `many-objects` (issue 15, "Many objects"): does the cost per message of a busy
//! publisher/consumer pair grow with the idle objects beside it? One throughput measure
//! with nothing else on the broker, then `--idle-queues` idle queues and
//! `--idle-connections` idle connections (one channel each), `--settle` seconds for the
//! broker's periodic work to see them, and the same measure again. With `--pid`, the
//! broker's CPU time per consumed message of both and their ratio: robust to a loaded
//! machine, where the throughput is not.

use super::args::Args;
use super::client::{Client, Uri};
use super::connections::BUFFER;
use super::footprint::pipelined;
use super::progress;
use super::rss::json_opt;
use super::throughput::{Measured, measure};
use crate::protocol::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

pub async fn run(args: Arc<Args>, uri: Arc<Uri>) -> Result<(), String> {
    let base = measure(args.clone(), uri.clone()).await?;
    say(&args, &format!("0 idle objects: {}", line(&base)));

    let mut c = Client::connect(&uri)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.uri))?;
    let prefix = format!("warren-perf-many-{}", std::process::id());
    let name = |i: usize| format!("{prefix}-{i}");
    let declared = AtomicU64::new(0);
    let declares = (0..args.idle_queues).map(|i| {
        QueueDeclare {
            queue: name(i).as_str().into(),
            ..Default::default()
        }
        .into()
    });
    let ok = |m: &Method| matches!(m, Method::QueueDeclareOk(_));
    let work = pipelined(&mut c, declares, 100, ok, &declared);
    let (res, _) = progress::run(work, args.json, None, |s| {
        format!(
            "time {s}s, declared {} idle queues",
            declared.load(Ordering::Relaxed)
        )
    })
    .await;
    res.expect("not capped")?;

    let opened = Arc::new(AtomicU64::new(0));
    let open = open_idle(&uri, args.idle_connections, args.concurrency, &opened);
    let (conns, _) = progress::run(open, args.json, None, |s| {
        format!(
            "time {s}s, opened {} idle connections",
            opened.load(Ordering::Relaxed)
        )
    })
    .await;
    let conns = conns.expect("not capped")?;
    let (queues, connections) = (declared.load(Ordering::Relaxed), conns.len());
    progress::run(
        tokio::time::sleep(Duration::from_secs(args.settle)),
        args.json,
        None,
        |s| {
            format!("time {s}s, settling with {queues} idle queues, {connections} idle connections")
        },
    )
    .await;

    let loaded = measure(args.clone(), uri.clone()).await;

    // Clean up whatever the second measure did.
    for cl in conns {
        let _ = tokio::time::timeout(Duration::from_secs(10), cl.close()).await;
    }
    let deletes = (0..args.idle_queues).map(|i| {
        QueueDelete {
            queue: name(i).as_str().into(),
            ..Default::default()
        }
        .into()
    });
    let ok = |m: &Method| matches!(m, Method::QueueDeleteOk(_));
    let _ = pipelined(&mut c, deletes, 100, ok, &AtomicU64::new(0)).await;
    let _ = c.close().await;
    let loaded = loaded?;
    say(
        &args,
        &format!(
            "{queues} idle queues, {connections} idle connections: {}",
            line(&loaded)
        ),
    );

    let cpu_ratio = base
        .cpu_us_per_msg
        .zip(loaded.cpu_us_per_msg)
        .filter(|(b, _)| *b > 0.0)
        .map(|(b, l)| l / b);
    let rate_ratio = (base.received_rate > 0.0).then(|| loaded.received_rate / base.received_rate);
    let ratio = |r: Option<f64>| r.map_or_else(|| "null".into(), |r| format!("{r:.3}"));
    if !args.json {
        println!(
            "summary: with {queues} idle queues and {connections} idle connections, broker CPU per message x{}, throughput x{}",
            ratio(cpu_ratio),
            ratio(rate_ratio)
        );
    }
    println!(
        "{{\"mode\":\"many-objects\",\"idle_queues\":{queues},\"idle_connections\":{connections},\"base\":{},\"loaded\":{},\"cpu_ratio\":{},\"rate_ratio\":{},\"received_rate\":{:.0},\"cpu_us_per_msg\":{}}}",
        json(&base),
        json(&loaded),
        ratio(cpu_ratio),
        ratio(rate_ratio),
        loaded.received_rate,
        per_msg(&loaded)
    );
    Ok(())
}

fn per_msg(m: &Measured) -> String {
    m.cpu_us_per_msg
        .map_or_else(|| "null".into(), |u| format!("{u:.3}"))
}

fn json(m: &Measured) -> String {
    format!(
        "{{\"seconds\":{:.3},\"consumed\":{},\"received_rate\":{:.0},\"broker_cpu_us\":{},\"cpu_us_per_msg\":{}}}",
        m.elapsed,
        m.consumed,
        m.received_rate,
        json_opt(m.cpu_us),
        per_msg(m)
    )
}

fn line(m: &Measured) -> String {
    format!(
        "received {:.0} msg/s, broker CPU {} us/msg",
        m.received_rate,
        per_msg(m)
    )
}

fn say(args: &Args, s: &str) {
    if !args.json {
        println!("{s}");
    }
}

/// Opens `n` connections with one channel each, `concurrency` handshakes in flight.
async fn open_idle(
    uri: &Arc<Uri>,
    n: usize,
    concurrency: usize,
    opened: &Arc<AtomicU64>,
) -> Result<Vec<Client>, String> {
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let permit = gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let (uri, opened) = (uri.clone(), opened.clone());
        tasks.push(tokio::spawn(async move {
            let r = Client::connect_with(&uri, 1, BUFFER).await;
            drop(permit);
            if r.is_ok() {
                opened.fetch_add(1, Ordering::Relaxed);
            }
            r.map_err(|e| e.to_string())
        }));
    }
    let mut clients = Vec::with_capacity(n);
    for t in tasks {
        clients.push(t.await.map_err(|e| e.to_string())??);
    }
    Ok(clients)
}
