//! Modes `queue-churn` (declare + delete queues in a loop) and `bind-churn` (bind + unbind
//! on one exchange in a loop): `-x` client connections for `-z` seconds, each with
//! `--inflight` pairs written at once before their replies are read (1: request/reply).

use super::args::Args;
use super::client::{Client, Uri};
use super::progress;
use super::throughput::call;
use crate::protocol::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Churn {
    Queues,
    Bindings,
}

impl Churn {
    fn mode(self) -> &'static str {
        match self {
            Churn::Queues => "queue-churn",
            Churn::Bindings => "bind-churn",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Churn::Queues => "queues",
            Churn::Bindings => "bindings",
        }
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// One client: its own queue for bind-churn, then pairs until `stop`.
async fn client(
    uri: Arc<Uri>,
    args: Arc<Args>,
    kind: Churn,
    id: usize,
    exchange: String,
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let mut c = Client::connect(&uri).await.map_err(err)?;
    let prefix = format!("warren-perf-churn-{}-{id}", std::process::id());
    if kind == Churn::Bindings {
        let m = QueueDeclare {
            queue: prefix.as_str().into(),
            durable: args.persistent,
            ..Default::default()
        };
        call(&mut c, m.into(), |m| matches!(m, Method::QueueDeclareOk(_))).await?;
    }
    let inflight = args.inflight.max(1);
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for i in seq..seq + inflight as u64 {
            let name = format!("{prefix}-{i}");
            let (first, second): (Method, Method) = match kind {
                Churn::Queues => (
                    QueueDeclare {
                        queue: name.as_str().into(),
                        durable: args.persistent,
                        ..Default::default()
                    }
                    .into(),
                    QueueDelete {
                        queue: name.as_str().into(),
                        ..Default::default()
                    }
                    .into(),
                ),
                Churn::Bindings => (
                    QueueBind {
                        queue: prefix.as_str().into(),
                        exchange: exchange.as_str().into(),
                        routing_key: name.as_str().into(),
                        ..Default::default()
                    }
                    .into(),
                    QueueUnbind {
                        queue: prefix.as_str().into(),
                        exchange: exchange.as_str().into(),
                        routing_key: name.as_str().into(),
                        ..Default::default()
                    }
                    .into(),
                ),
            };
            encode_method(c.wbuf.buf(), 1, &first);
            encode_method(c.wbuf.buf(), 1, &second);
        }
        c.flush().await.map_err(err)?;
        for _ in 0..2 * inflight {
            c.expect(|m| {
                matches!(
                    m,
                    Method::QueueDeclareOk(_)
                        | Method::QueueDeleteOk(_)
                        | Method::QueueBindOk(_)
                        | Method::QueueUnbindOk(_)
                )
            })
            .await
            .map_err(err)?;
        }
        seq += inflight as u64;
        done.fetch_add(inflight as u64, Ordering::Relaxed);
    }
    if kind == Churn::Bindings {
        let m = QueueDelete {
            queue: prefix.as_str().into(),
            ..Default::default()
        };
        call(&mut c, m.into(), |m| matches!(m, Method::QueueDeleteOk(_))).await?;
    }
    let _ = c.close().await;
    Ok(())
}

pub async fn run(args: Arc<Args>, uri: Arc<Uri>, kind: Churn) -> Result<(), String> {
    let mut setup = Client::connect(&uri)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.uri))?;
    // bind-churn: the exchange (a fresh direct one unless -e names one; declared when the
    // tool names it or -t is given), and --bindings bindings already in place on it.
    let exchange = if args.exchange.is_empty() {
        format!("warren-perf-churn-{}", std::process::id())
    } else {
        args.exchange.clone()
    };
    let declare_exchange = args.exchange.is_empty() || args.exchange_type.is_some();
    let fill = format!("warren-perf-churn-{}-fill", std::process::id());
    if kind == Churn::Bindings {
        if declare_exchange {
            let m = ExchangeDeclare {
                exchange: exchange.as_str().into(),
                kind: args.exchange_type.as_deref().unwrap_or("direct").into(),
                ..Default::default()
            };
            call(&mut setup, m.into(), |m| {
                matches!(m, Method::ExchangeDeclareOk(_))
            })
            .await?;
        }
        if args.bindings > 0 {
            let m = QueueDeclare {
                queue: fill.as_str().into(),
                ..Default::default()
            };
            call(&mut setup, m.into(), |m| {
                matches!(m, Method::QueueDeclareOk(_))
            })
            .await?;
            for i in 0..args.bindings {
                let m: Method = QueueBind {
                    queue: fill.as_str().into(),
                    exchange: exchange.as_str().into(),
                    routing_key: format!("fill.{i}").as_str().into(),
                    ..Default::default()
                }
                .into();
                encode_method(setup.wbuf.buf(), 1, &m);
            }
            setup.flush().await.map_err(err)?;
            for _ in 0..args.bindings {
                setup
                    .expect(|m| matches!(m, Method::QueueBindOk(_)))
                    .await
                    .map_err(err)?;
            }
        }
    }

    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for id in 0..args.publishers.max(1) {
        tasks.push(tokio::spawn(client(
            uri.clone(),
            args.clone(),
            kind,
            id,
            exchange.clone(),
            done.clone(),
            stop.clone(),
        )));
    }
    let seconds = args.seconds.unwrap_or(10);
    let mut last = 0;
    let (_, elapsed) = progress::run(
        tokio::time::sleep(Duration::from_secs(seconds)),
        args.json,
        None,
        |s| {
            let d = done.load(Ordering::Relaxed);
            let line = format!("time {s}s, {} {} churned/s", d - last, kind.noun());
            last = d;
            line
        },
    )
    .await;
    // Count what finished within the run, not the pairs still in flight at its end.
    let total = done.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut first_error = None;
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(10), t).await {
            Ok(Ok(Err(e))) => first_error = first_error.or(Some(e)),
            Ok(Err(e)) => first_error = first_error.or(Some(e.to_string())),
            _ => {}
        }
    }
    if kind == Churn::Bindings {
        if args.bindings > 0 {
            let m = QueueDelete {
                queue: fill.as_str().into(),
                ..Default::default()
            };
            let _ = call(&mut setup, m.into(), |m| {
                matches!(m, Method::QueueDeleteOk(_))
            })
            .await;
        }
        if declare_exchange {
            let m = ExchangeDelete {
                exchange: exchange.as_str().into(),
                ..Default::default()
            };
            let _ = call(&mut setup, m.into(), |m| {
                matches!(m, Method::ExchangeDeleteOk(_))
            })
            .await;
        }
    }
    let _ = setup.close().await;
    if let Some(e) = &first_error {
        eprintln!("warren-perf: a client failed: {e}");
    }
    let rate = total as f64 / elapsed;
    let (mode, noun) = (kind.mode(), kind.noun());
    if !args.json {
        println!(
            "summary: {total} {noun} churned in {elapsed:.3} s, {rate:.0} {noun}/s ({} clients, {} in flight each)",
            args.publishers.max(1),
            args.inflight.max(1)
        );
    }
    println!(
        "{{\"mode\":\"{mode}\",\"seconds\":{elapsed:.3},\"clients\":{},\"inflight\":{},\"{noun}_churned\":{total},\"rate\":{rate:.0}}}",
        args.publishers.max(1),
        args.inflight.max(1)
    );
    if first_error.is_some() && total == 0 {
        return Err("no work done".into());
    }
    Ok(())
}
