//! Mode `connections`: open `-n` connections with `--channels` channels each, at most
//! `--concurrency` handshakes in flight, hold them idle for `-z` seconds, then close them.
//! Reports how long opening took and, with `--pid`, the broker's VmRSS before and after.

use super::args::Args;
use super::client::{Client, Uri};
use super::progress;
use super::rss::{json_opt, vm_rss_kib};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Read and write buffers of an idle connection start this small.
pub const BUFFER: usize = 2048;

pub async fn run(args: Arc<Args>, uri: Arc<Uri>) -> Result<(), String> {
    let (n, channels) = (args.connections, args.channels);
    let opened = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let rss_before = vm_rss_kib(&args.pid);

    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let open_all = {
        let (uri, opened, first_error, gate) = (
            uri.clone(),
            opened.clone(),
            first_error.clone(),
            gate.clone(),
        );
        async move {
            let mut tasks = Vec::with_capacity(n);
            for _ in 0..n {
                let permit = gate.clone().acquire_owned().await.unwrap();
                let (uri, opened, first_error) = (uri.clone(), opened.clone(), first_error.clone());
                tasks.push(tokio::spawn(async move {
                    let r = Client::connect_with(&uri, channels, BUFFER).await;
                    drop(permit);
                    match r {
                        Ok(c) => {
                            opened.fetch_add(1, Ordering::Relaxed);
                            Some(c)
                        }
                        Err(e) => {
                            first_error.lock().unwrap().get_or_insert(e.to_string());
                            None
                        }
                    }
                }));
            }
            let mut clients = Vec::with_capacity(n);
            for t in tasks {
                if let Ok(Some(c)) = t.await {
                    clients.push(c);
                }
            }
            clients
        }
    };
    let mut last = 0;
    let (clients, open_seconds) = progress::run(open_all, args.json, None, |s| {
        let o = opened.load(Ordering::Relaxed);
        let line = format!("time {s}s, opened {o} connections, {} /s", o - last);
        last = o;
        line
    })
    .await;
    let clients = clients.unwrap_or_default();
    let ok = clients.len() as u64;

    let hold = args.seconds.unwrap_or(0);
    progress::run(
        tokio::time::sleep(Duration::from_secs(hold)),
        args.json,
        None,
        |s| {
            let rss = vm_rss_kib(&args.pid).map_or(String::new(), |k| format!(", broker {k} KiB"));
            format!("time {s}s, holding {ok} connections{rss}")
        },
    )
    .await;
    let rss_after = vm_rss_kib(&args.pid);

    let closed = Arc::new(AtomicU64::new(0));
    let close_all = {
        let closed = closed.clone();
        async move {
            let mut tasks = Vec::with_capacity(clients.len());
            for c in clients {
                let permit = gate.clone().acquire_owned().await.unwrap();
                let closed = closed.clone();
                tasks.push(tokio::spawn(async move {
                    if tokio::time::timeout(Duration::from_secs(10), c.close())
                        .await
                        .is_ok_and(|r| r.is_ok())
                    {
                        closed.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(permit);
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        }
    };
    let (_, close_seconds) = progress::run(close_all, args.json, None, |s| {
        format!(
            "time {s}s, closed {} connections",
            closed.load(Ordering::Relaxed)
        )
    })
    .await;

    let failed = n as u64 - ok;
    if let Some(e) = first_error.lock().unwrap().take() {
        eprintln!("warren-perf: {failed} connections failed, the first with: {e}");
    }
    let open_rate = ok as f64 / open_seconds;
    let per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a)) if ok > 0 => Some(a.saturating_sub(b) * 1024 / ok),
        _ => None,
    };
    let closed = closed.load(Ordering::Relaxed);
    if !args.json {
        let mem = match (rss_before, rss_after, per_conn) {
            (Some(b), Some(a), Some(p)) => {
                format!(", broker RSS {b} KiB before, {a} KiB after, {p} B per connection")
            }
            _ => String::new(),
        };
        println!(
            "summary: opened {ok} of {n} connections x {channels} channels in {open_seconds:.3} s ({open_rate:.0} connections/s){mem}, closed {closed} in {close_seconds:.3} s"
        );
    }
    println!(
        "{{\"mode\":\"connections\",\"connections\":{n},\"channels_per_connection\":{channels},\"opened\":{ok},\"channels_opened\":{},\"failed\":{failed},\"open_seconds\":{open_seconds:.3},\"open_rate\":{open_rate:.0},\"hold_seconds\":{hold},\"closed\":{closed},\"close_seconds\":{close_seconds:.3},\"rss_before_kib\":{},\"rss_after_kib\":{},\"rss_per_connection_bytes\":{}}}",
        ok * channels as u64,
        json_opt(rss_before),
        json_opt(rss_after),
        json_opt(per_conn)
    );
    Ok(())
}
