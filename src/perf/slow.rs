//! Mode `slow-consumer`: whether a broker's memory stays flat while publishers outrun a
//! slow consumer. `-x` publishers publish into one queue at full speed (or `-r`), `-y`
//! consumers (at least one) take `--consume-rate` messages/s each (default 100),
//! acknowledging each, for `-z` seconds (default 60). The broker's VmRSS (`--pid`) is read
//! every second; the report gives it at the start, at most and at the end, and its slope
//! (least squares) over the samples after `--warmup` seconds: a broker that pages its
//! backlog out or holds its publishers back levels off; one that keeps the backlog in
//! memory grows at the publishers' rate times what a message costs it.

use super::args::Args;
use super::client::Uri;
use super::progress;
use super::rss::{json_opt, vm_rss_kib};
use super::throughput::{Stats, call, consumer, delete_topology, publisher, setup};
use crate::protocol::*;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Consume rate per consumer when `--consume-rate` is not given.
const DEFAULT_CONSUME_RATE: u64 = 100;
/// Run length when `-z` is not given.
const DEFAULT_SECONDS: u64 = 60;

pub async fn run(args: Arc<Args>, uri: Arc<Uri>) -> Result<(), String> {
    let mut a = (*args).clone();
    if a.consume_rate == 0 {
        a.consume_rate = DEFAULT_CONSUME_RATE;
    }
    // The consumer acknowledges: messages wait in the queue, not in its socket.
    a.ack_every = 1;
    a.consumers = a.consumers.max(1);
    let args = Arc::new(a);
    let seconds = args.seconds.unwrap_or(DEFAULT_SECONDS);
    let (mut setup, queues) = setup(&args, &uri).await?;
    let queue = queues[0].clone();
    let rss_start = vm_rss_kib(&args.pid);

    let stats = Arc::new(Stats {
        skip_latency: true,
        ..Default::default()
    });
    let mut tasks = Vec::new();
    for _ in 0..args.consumers {
        let (uri, a, s, q) = (uri.clone(), args.clone(), stats.clone(), queue.clone());
        tasks.push(tokio::spawn(consumer(
            uri,
            a,
            q,
            s,
            None,
            FieldTable::new(),
        )));
    }
    stats.all_subscribed(args.consumers as u64).await;
    for _ in 0..args.publishers {
        let (uri, a, s, q) = (uri.clone(), args.clone(), stats.clone(), queue.clone());
        tasks.push(tokio::spawn(publisher(uri, a, q, s, None)));
    }

    // (second, KiB) each second.
    let samples = Mutex::new(Vec::<(f64, u64)>::new());
    let (mut last_p, mut last_c) = (0, 0);
    progress::run(
        tokio::time::sleep(Duration::from_secs(seconds)),
        args.json,
        None,
        |s| {
            let rss = vm_rss_kib(&args.pid);
            if let Some(k) = rss {
                samples.lock().unwrap().push((s as f64, k));
            }
            let (p, c) = (
                stats.published.load(Ordering::Relaxed),
                stats.consumed.load(Ordering::Relaxed),
            );
            let line = format!(
                "time {s}s, sent {} msg/s, received {} msg/s, published {p}{}",
                p - last_p,
                c - last_c,
                rss.map_or(String::new(), |k| format!(", broker {k} KiB"))
            );
            (last_p, last_c) = (p, c);
            line
        },
    )
    .await;
    let rss_end = vm_rss_kib(&args.pid);
    stats.stop.store(true, Ordering::Relaxed);
    let mut failure = None;
    for t in tasks {
        if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(5), t).await {
            failure.get_or_insert(e);
        }
    }
    let m = QueueDeclare {
        queue: queue.as_str().into(),
        passive: true,
        ..Default::default()
    };
    let backlog = match call(&mut setup, m.into(), |m| {
        matches!(m, Method::QueueDeclareOk(_))
    })
    .await
    {
        Ok(Method::QueueDeclareOk(ok)) => Some(ok.message_count as u64),
        _ => None,
    };
    let _ = delete_topology(&mut setup, &args, &queues).await;
    let _ = setup.close().await;
    if let Some(e) = failure {
        eprintln!("warren-perf: a client failed: {e}");
    }

    let samples = samples.into_inner().unwrap();
    let rss_max = samples.iter().map(|s| s.1).chain(rss_start).max();
    let growth = rss_start.zip(rss_max).map(|(a, b)| b.saturating_sub(a));
    let later: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.0 > args.warmup as f64)
        .map(|&(t, k)| (t, k as f64))
        .collect();
    let slope = slope(&later);
    let published = stats.published.load(Ordering::Relaxed);
    let consumed = stats.consumed.load(Ordering::Relaxed);
    let publish_rate = published as f64 / seconds as f64;
    if !args.json {
        let mem = match (rss_start, rss_max, rss_end) {
            (Some(a), Some(m), Some(e)) => format!(
                "; broker RSS {a} KiB at start, {m} KiB at most, {e} KiB at the end, {} KiB/s after {} s",
                slope.map_or("?".into(), |s| format!("{s:.1}")),
                args.warmup
            ),
            _ => String::new(),
        };
        println!(
            "summary: published {published} ({publish_rate:.0} msg/s), consumed {consumed}, backlog {}{mem}",
            json_opt(backlog)
        );
    }
    println!(
        "{{\"mode\":\"slow-consumer\",\"seconds\":{seconds},\"size\":{},\"consume_rate\":{},\"published\":{published},\"publish_rate\":{publish_rate:.0},\"consumed\":{consumed},\"backlog\":{},\"rss_start_kib\":{},\"rss_max_kib\":{},\"rss_end_kib\":{},\"rss_growth_kib\":{},\"rss_slope_kib_per_s\":{},\"samples_kib\":[{}]}}",
        args.size,
        args.consume_rate,
        json_opt(backlog),
        json_opt(rss_start),
        json_opt(rss_max),
        json_opt(rss_end),
        json_opt(growth),
        slope.map_or_else(|| "null".into(), |s| format!("{s:.1}")),
        samples
            .iter()
            .map(|s| s.1.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    Ok(())
}

/// Least-squares slope of `y` over `x`; `None` with fewer than two distinct `x`.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    #[test]
    fn slope_of_a_line_and_of_too_little() {
        let line: Vec<(f64, f64)> = (0..10).map(|x| (x as f64, 3.0 * x as f64 + 7.0)).collect();
        assert!((super::slope(&line).unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(super::slope(&[(1.0, 5.0)]), None);
        assert_eq!(super::slope(&[(1.0, 5.0), (1.0, 6.0)]), None);
        let flat: Vec<(f64, f64)> = (0..10).map(|x| (x as f64, 100.0)).collect();
        assert_eq!(super::slope(&flat), Some(0.0));
    }
}
