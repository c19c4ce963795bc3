//! `--client lapin`: the throughput mode's publishers and consumers on lapin, a widely used
//! Rust AMQP client, called the way its documentation shows: one `basic_publish` call per
//! message whose confirm is a future (at most `-c` of them outstanding), and a consumer
//! that is a stream of deliveries, each acked (multiple, every `-a`) through its `Acker`.
//!
//! The tool's own client (`super::throughput`) pipelines frames and shares bodies, so it
//! measures what the broker can do; this one spends what an ordinary client spends per
//! message, so on one machine, where client and broker share the cores, it measures what a
//! user will see. Counters, latencies and the stop flag are the same `Stats`.

use super::args::Args;
use super::throughput::{Stats, err, now_ns};
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties, PublisherConfirm};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long a consumer waits for a delivery before it looks at the stop flag again (and
/// acks what it holds).
const IDLE: Duration = Duration::from_millis(200);

async fn connect(args: &Args) -> Result<Connection, String> {
    Connection::connect(&args.uri, ConnectionProperties::default())
        .await
        .map_err(|e| format!("lapin cannot connect to {}: {e}", args.uri))
}

/// Closes the connection, giving up after a second (a broker still pushing deliveries
/// must not hold the end of the run).
async fn close(conn: Connection) {
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(200, "OK".into())).await;
}

/// Counts one settled confirm.
fn settle(c: Result<Confirmation, lapin::Error>, stats: &Stats) -> Result<(), String> {
    match c.map_err(err)? {
        Confirmation::Ack(_) => {
            stats.confirmed.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Confirmation::Nack(_) => Ok(()),
        Confirmation::NotRequested => Err("publish confirm not requested".into()),
    }
}

/// Publishes until the run stops (or `limit` messages are published and confirmed), with
/// at most `-c` confirms outstanding when `-c` is given. `-r` is not supported here.
pub async fn publisher(
    args: Arc<Args>,
    queue: String,
    stats: Arc<Stats>,
    limit: Option<u64>,
) -> Result<(), String> {
    let conn = connect(&args).await?;
    let ch = conn.create_channel().await.map_err(err)?;
    if args.confirms > 0 {
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(err)?;
    }
    let props = BasicProperties::default().with_delivery_mode(if args.persistent { 2 } else { 1 });
    let exchange = args.exchange.clone();
    let key = args.routing_key.clone().unwrap_or(queue);
    let mut body = vec![0u8; args.size.max(8)];
    let mut pending: VecDeque<PublisherConfirm> = VecDeque::new();
    let mut sent = 0u64;
    while !stats.stop.load(Ordering::Relaxed) && limit.is_none_or(|l| sent < l) {
        body[..8].copy_from_slice(&now_ns().to_be_bytes());
        let confirm = ch
            .basic_publish(
                exchange.as_str().into(),
                key.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                props.clone(),
            )
            .await
            .map_err(err)?;
        sent += 1;
        stats.published.fetch_add(1, Ordering::Relaxed);
        if args.confirms > 0 {
            pending.push_back(confirm);
            if pending.len() as u64 >= args.confirms {
                settle(pending.pop_front().unwrap().await, &stats)?;
            }
        }
    }
    if limit.is_some() {
        for c in pending {
            settle(c.await, &stats)?;
        }
    }
    close(conn).await;
    Ok(())
}

/// Consumes until the run stops, or until all consumers together have consumed `until`
/// messages (then sets `stop` and wakes `done`), acking with `multiple` every `-a`
/// deliveries (no-ack when `-a` is 0) and what it holds when deliveries pause.
pub async fn consumer(
    args: Arc<Args>,
    queue: String,
    stats: Arc<Stats>,
    until: Option<u64>,
) -> Result<(), String> {
    let conn = connect(&args).await?;
    let ch = conn.create_channel().await.map_err(err)?;
    let no_ack = args.ack_every == 0;
    if !no_ack {
        ch.basic_qos(args.prefetch, BasicQosOptions::default())
            .await
            .map_err(err)?;
    }
    let options = BasicConsumeOptions {
        no_ack,
        ..Default::default()
    };
    let mut deliveries = ch
        .basic_consume(queue.into(), "".into(), options, FieldTable::default())
        .await
        .map_err(err)?;
    stats.mark_subscribed();
    let (mut unacked, mut last): (u64, Option<lapin::message::Delivery>) = (0, None);
    let multiple = BasicAckOptions { multiple: true };
    let mut lat = Vec::new();
    while !stats.stop.load(Ordering::Relaxed) {
        let d = match tokio::time::timeout(IDLE, deliveries.next()).await {
            Err(_) => {
                if let Some(d) = last.take().filter(|_| unacked > 0) {
                    d.ack(multiple).await.map_err(err)?;
                    unacked = 0;
                }
                continue;
            }
            Ok(None) => break,
            Ok(Some(d)) => d.map_err(err)?,
        };
        if d.data.len() >= 8 && !stats.skip_latency {
            let sent = u64::from_be_bytes(d.data[..8].try_into().unwrap());
            lat.push((now_ns().saturating_sub(sent) / 1000).min(u32::MAX as u64) as u32);
        }
        let total = stats.consumed.fetch_add(1, Ordering::Relaxed) + 1;
        if !no_ack {
            unacked += 1;
            if unacked >= args.ack_every {
                d.ack(multiple).await.map_err(err)?;
                (unacked, last) = (0, None);
            } else {
                last = Some(d);
            }
        }
        if until == Some(total) {
            stats.stop.store(true, Ordering::Relaxed);
            stats.done.notify_one();
        }
    }
    if let Some(d) = last.filter(|_| unacked > 0) {
        let _ = d.ack(multiple).await;
    }
    stats.latencies_us.lock().unwrap().extend(lat);
    close(conn).await;
    Ok(())
}
