//! Memory per object: modes `idle-queues` (declare `--queues` idle queues) and `consumers`
//! (`-y` consumers on one queue over one channel). Each holds its objects for `-z` seconds
//! (default 0), reads the broker's VmRSS (`--pid`) before and with them in place, removes
//! them, and reports the growth per object. And `delete-queue`, to clean up after another
//! load tool.

use super::args::Args;
use super::client::{Client, Uri};
use super::progress;
use super::rss::{json_opt, vm_rss_kib};
use super::throughput::{call, err};
use crate::protocol::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Writes `methods` on channel 1 in batches of `inflight`, reading as many replies
/// matching `ok` after each batch; counts them in `done`.
pub(super) async fn pipelined(
    c: &mut Client,
    methods: impl Iterator<Item = Method>,
    inflight: usize,
    ok: fn(&Method) -> bool,
    done: &AtomicU64,
) -> Result<(), String> {
    let mut methods = methods.peekable();
    while methods.peek().is_some() {
        let mut n = 0;
        for m in methods.by_ref().take(inflight.max(1)) {
            encode_method(c.wbuf.buf(), 1, &m);
            n += 1;
        }
        c.flush().await.map_err(err)?;
        for _ in 0..n {
            c.expect(ok).await.map_err(err)?;
        }
        done.fetch_add(n, Ordering::Relaxed);
    }
    Ok(())
}

/// Holds for `-z` seconds, printing the broker's memory each second.
async fn hold(args: &Args, what: &str) {
    let secs = args.seconds.unwrap_or(0);
    progress::run(
        tokio::time::sleep(Duration::from_secs(secs)),
        args.json,
        None,
        |s| {
            let rss = vm_rss_kib(&args.pid).map_or(String::new(), |k| format!(", broker {k} KiB"));
            format!("time {s}s, holding {what}{rss}")
        },
    )
    .await;
}

/// Growth per object in bytes, when both readings and at least one object exist.
fn per_object(before: Option<u64>, with: Option<u64>, n: u64) -> Option<u64> {
    match (before, with) {
        (Some(b), Some(w)) if n > 0 => Some(w.saturating_sub(b) * 1024 / n),
        _ => None,
    }
}

/// Mode `idle-queues`.
pub async fn idle_queues(args: Arc<Args>, uri: Arc<Uri>) -> Result<(), String> {
    let mut c = Client::connect(&uri)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.uri))?;
    let n = args.queues;
    let prefix = format!("warren-perf-idle-{}", std::process::id());
    let name = |i: usize| format!("{prefix}-{i}");
    let rss_before = vm_rss_kib(&args.pid);
    let declared = AtomicU64::new(0);
    let declares = (0..n).map(|i| {
        QueueDeclare {
            queue: name(i).as_str().into(),
            durable: args.persistent,
            ..Default::default()
        }
        .into()
    });
    let ok = |m: &Method| matches!(m, Method::QueueDeclareOk(_));
    let work = pipelined(&mut c, declares, args.inflight, ok, &declared);
    let mut last = 0;
    let (res, declare_seconds) = progress::run(work, args.json, None, |s| {
        let d = declared.load(Ordering::Relaxed);
        let line = format!("time {s}s, declared {d} queues, {} /s", d - last);
        last = d;
        line
    })
    .await;
    res.expect("not capped")?;
    let made = declared.load(Ordering::Relaxed);
    hold(&args, &format!("{made} queues")).await;
    let rss_with = vm_rss_kib(&args.pid);
    let deletes = (0..n).map(|i| {
        QueueDelete {
            queue: name(i).as_str().into(),
            ..Default::default()
        }
        .into()
    });
    let deleted = AtomicU64::new(0);
    let ok = |m: &Method| matches!(m, Method::QueueDeleteOk(_));
    pipelined(&mut c, deletes, args.inflight, ok, &deleted).await?;
    let _ = c.close().await;
    let per_queue = per_object(rss_before, rss_with, made);
    let rate = made as f64 / declare_seconds;
    if !args.json {
        let mem = per_queue.map_or(String::new(), |b| {
            format!(", {b} B of broker RSS per queue")
        });
        println!("summary: declared {made} queues in {declare_seconds:.3} s ({rate:.0}/s){mem}");
    }
    println!(
        "{{\"mode\":\"idle-queues\",\"queues\":{made},\"declare_seconds\":{declare_seconds:.3},\"declare_rate\":{rate:.0},\"deleted\":{},\"rss_before_kib\":{},\"rss_with_kib\":{},\"rss_per_queue_bytes\":{}}}",
        deleted.load(Ordering::Relaxed),
        json_opt(rss_before),
        json_opt(rss_with),
        json_opt(per_queue)
    );
    Ok(())
}

/// Mode `delete-queue`: deletes the queue named with `-u` (one another load tool left
/// behind), whatever it holds; `--queues N` deletes QUEUE-0..N-1 as the other modes name them.
pub async fn delete_queue(args: Arc<Args>, uri: Arc<Uri>) -> Result<(), String> {
    let base = args.queue.clone().ok_or("delete-queue needs -u QUEUE")?;
    let mut c = Client::connect(&uri)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.uri))?;
    let names: Vec<String> = if args.queues <= 1 {
        vec![base]
    } else {
        (0..args.queues).map(|i| format!("{base}-{i}")).collect()
    };
    let mut messages = 0u64;
    for q in &names {
        let delete = QueueDelete {
            queue: q.as_str().into(),
            ..Default::default()
        };
        if let Method::QueueDeleteOk(ok) = call(&mut c, delete.into(), |m| {
            matches!(m, Method::QueueDeleteOk(_))
        })
        .await?
        {
            messages += ok.message_count as u64;
        }
    }
    let _ = c.close().await;
    println!(
        "{{\"mode\":\"delete-queue\",\"deleted\":{},\"messages\":{messages}}}",
        names.len()
    );
    Ok(())
}

/// Mode `consumers`: the queue and the connection exist before the first reading, so the
/// growth is the consumers' alone.
pub async fn consumers(args: Arc<Args>, uri: Arc<Uri>) -> Result<(), String> {
    let mut c = Client::connect(&uri)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.uri))?;
    let queue = args
        .queue
        .clone()
        .unwrap_or_else(|| format!("warren-perf-consumers-{}", std::process::id()));
    let declare = QueueDeclare {
        queue: queue.as_str().into(),
        durable: args.persistent,
        ..Default::default()
    };
    call(&mut c, declare.into(), |m| {
        matches!(m, Method::QueueDeclareOk(_))
    })
    .await?;
    let n = args.consumers;
    let rss_before = vm_rss_kib(&args.pid);
    let subscribed = AtomicU64::new(0);
    let consumes = (0..n).map(|i| {
        BasicConsume {
            queue: queue.as_str().into(),
            consumer_tag: format!("c{i}").as_str().into(),
            no_local: false,
            no_ack: false,
            exclusive: false,
            nowait: false,
            arguments: FieldTable::new(),
        }
        .into()
    });
    let ok = |m: &Method| matches!(m, Method::BasicConsumeOk(_));
    let work = pipelined(&mut c, consumes, args.inflight, ok, &subscribed);
    let (res, subscribe_seconds) = progress::run(work, args.json, None, |s| {
        format!(
            "time {s}s, {} consumers",
            subscribed.load(Ordering::Relaxed)
        )
    })
    .await;
    res.expect("not capped")?;
    let made = subscribed.load(Ordering::Relaxed);
    hold(&args, &format!("{made} consumers")).await;
    let rss_with = vm_rss_kib(&args.pid);
    // Deleting the queue cancels every consumer on it.
    let delete = QueueDelete {
        queue: queue.as_str().into(),
        ..Default::default()
    };
    call(&mut c, delete.into(), |m| {
        matches!(m, Method::QueueDeleteOk(_))
    })
    .await?;
    let _ = c.close().await;
    let per_consumer = per_object(rss_before, rss_with, made);
    let rate = made as f64 / subscribe_seconds;
    if !args.json {
        let mem = per_consumer.map_or(String::new(), |b| {
            format!(", {b} B of broker RSS per consumer")
        });
        println!("summary: {made} consumers in {subscribe_seconds:.3} s ({rate:.0}/s){mem}");
    }
    println!(
        "{{\"mode\":\"consumers\",\"consumers\":{made},\"subscribe_seconds\":{subscribe_seconds:.3},\"subscribe_rate\":{rate:.0},\"rss_before_kib\":{},\"rss_with_kib\":{},\"rss_per_consumer_bytes\":{}}}",
        json_opt(rss_before),
        json_opt(rss_with),
        json_opt(per_consumer)
    );
    Ok(())
}
