//! Mode `backlog`: `-x` publishers publish `-C` messages each with confirms (window `-c`,
//! 1000 when not given) and no consumer; then, with the backlog in place, the broker's VmRSS
//! (`--pid`); then `-y` consumers (at least one) drain every queue. Reports the publish
//! rate, the drain rate, and the broker's memory before, with the backlog, and after (and
//! the growth per queued message).

use super::args::Args;
use super::client::Uri;
use super::progress;
use super::rss::{json_opt, vm_rss_kib};
use super::throughput::{Stats, call, consumer, delete_topology, publisher, setup};
use crate::protocol::*;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Confirm window when `-c` is not given: the backlog must be in the queue when measured.
const DEFAULT_WINDOW: u64 = 1000;

pub async fn run(args: Arc<Args>, uri: Arc<Uri>) -> Result<(), String> {
    let args = if args.confirms == 0 {
        let mut a = (*args).clone();
        a.confirms = DEFAULT_WINDOW;
        Arc::new(a)
    } else {
        args
    };
    let (mut setup, queues) = setup(&args, &uri).await?;
    let cap = args.seconds.map(Duration::from_secs);
    let rss_before = vm_rss_kib(&args.pid);

    // Publish phase.
    let stats = Arc::new(Stats::default());
    let mut tasks = Vec::new();
    for i in 0..args.publishers {
        let q = queues[i % queues.len()].clone();
        let (uri, a, stats) = (uri.clone(), args.clone(), stats.clone());
        tasks.push(tokio::spawn(publisher(
            uri,
            a,
            q,
            stats,
            Some(args.pmessages_or_default()),
        )));
    }
    let publish_all = async {
        let mut first_error = None;
        for t in tasks {
            match t.await {
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                Err(e) => first_error = first_error.or(Some(e.to_string())),
                Ok(Ok(())) => {}
            }
        }
        first_error
    };
    let (mut last_p, mut last_k) = (0, 0);
    let (res, publish_seconds) = progress::run(publish_all, args.json, cap, |s| {
        let (p, k) = (
            stats.published.load(Ordering::Relaxed),
            stats.confirmed.load(Ordering::Relaxed),
        );
        let line = format!(
            "time {s}s, sent {} msg/s, confirmed {} msg/s, backlog {k}",
            p - last_p,
            k - last_k
        );
        (last_p, last_k) = (p, k);
        line
    })
    .await;
    stats.stop.store(true, Ordering::Relaxed);
    if let Some(Some(e)) = res {
        return Err(format!("a publisher failed: {e}"));
    }
    let published = stats.published.load(Ordering::Relaxed);
    let confirmed = stats.confirmed.load(Ordering::Relaxed);

    // The backlog in place: every queue's depth, then the broker's memory.
    let mut depth = 0u64;
    for q in &queues {
        let m = QueueDeclare {
            queue: q.as_str().into(),
            passive: true,
            ..Default::default()
        };
        if let Method::QueueDeclareOk(ok) = call(&mut setup, m.into(), |m| {
            matches!(m, Method::QueueDeclareOk(_))
        })
        .await?
        {
            depth += ok.message_count as u64;
        }
    }
    let rss_backlog = vm_rss_kib(&args.pid);
    if !args.json {
        let mem = rss_backlog.map_or(String::new(), |k| format!(", broker {k} KiB"));
        println!(
            "backlog: {depth} messages in {} queue(s){mem}",
            queues.len()
        );
    }

    // Drain phase.
    let drain = Arc::new(Stats::default());
    let mut tasks = Vec::new();
    let drain_start = Instant::now();
    if depth > 0 {
        for j in 0..args.consumers.max(1) {
            let q = queues[j % queues.len()].clone();
            let (uri, a, d) = (uri.clone(), args.clone(), drain.clone());
            tasks.push(tokio::spawn(consumer(
                uri,
                a,
                q,
                d,
                Some(depth),
                FieldTable::new(),
            )));
        }
    }
    let mut last_c = 0;
    let wait = async {
        if depth > 0 {
            drain.done.notified().await
        }
    };
    let (finished, _) = progress::run(wait, args.json, cap, |s| {
        let c = drain.consumed.load(Ordering::Relaxed);
        let line = format!(
            "time {s}s, received {} msg/s, left {}",
            c - last_c,
            depth.saturating_sub(c)
        );
        last_c = c;
        line
    })
    .await;
    let drain_seconds = drain_start.elapsed().as_secs_f64();
    drain.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    let consumed = drain.consumed.load(Ordering::Relaxed);
    let rss_after = vm_rss_kib(&args.pid);
    let _ = delete_topology(&mut setup, &args, &queues).await;
    let _ = setup.close().await;

    let publish_rate = confirmed as f64 / publish_seconds;
    let per_message = match (rss_before, rss_backlog) {
        (Some(b), Some(k)) if depth > 0 => Some(k.saturating_sub(b) * 1024 / depth),
        _ => None,
    };
    let drain_rate = consumed as f64 / drain_seconds;
    if !args.json {
        let mem = match (rss_before, rss_backlog, rss_after) {
            (Some(b), Some(k), Some(a)) => {
                format!(", broker RSS {b} KiB before, {k} KiB with the backlog, {a} KiB after")
            }
            _ => String::new(),
        };
        println!(
            "summary: published {published} (confirmed {confirmed}) in {publish_seconds:.3} s, {publish_rate:.0} msg/s; drained {consumed} of {depth} in {drain_seconds:.3} s, {drain_rate:.0} msg/s{mem}{}",
            if finished.is_none() {
                " (capped by -z)"
            } else {
                ""
            }
        );
    }
    println!(
        "{{\"mode\":\"backlog\",\"messages\":{},\"published\":{published},\"confirmed\":{confirmed},\"publish_seconds\":{publish_seconds:.3},\"publish_rate\":{publish_rate:.0},\"backlog\":{depth},\"consumed\":{consumed},\"drain_seconds\":{drain_seconds:.3},\"drain_rate\":{drain_rate:.0},\"rss_before_kib\":{},\"rss_backlog_kib\":{},\"rss_after_kib\":{},\"rss_per_message_bytes\":{}}}",
        args.pmessages_or_default() * args.publishers as u64,
        json_opt(rss_before),
        json_opt(rss_backlog),
        json_opt(rss_after),
        json_opt(per_message)
    );
    Ok(())
}
