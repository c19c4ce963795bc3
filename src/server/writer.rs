//! The writer task of a connection: waits for the outbox's doorbell, swaps the buffer out
//! and writes it in one (vectored) call; sends heartbeats when the connection is otherwise idle.

use crate::broker::connections::ConnectionEntry;
use crate::broker::deadletter::dead_letter_all;
use crate::broker::effects::Effects;
use crate::broker::outbox::Outbox;
use crate::protocol::Output;
use crate::protocol::encode_heartbeat;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Runs until the outbox is closed and drained, or the socket fails. `W` is a TCP socket's
/// write half (vectored writes reach `writev`) or a TLS stream's.
pub async fn run<W: AsyncWrite + Unpin>(
    mut socket: W,
    outbox: Arc<Outbox>,
    heartbeat: Arc<std::sync::atomic::AtomicU32>,
    entry: Arc<ConnectionEntry>,
) {
    let mut spare = Output::with_capacity(1024);
    let mut last_write = Instant::now();
    loop {
        let hb = heartbeat.load(std::sync::atomic::Ordering::Relaxed);
        if hb == 0 {
            outbox.rung().await;
        } else {
            // Heartbeats at half the negotiated interval, as RabbitMQ sends them.
            let every = Duration::from_millis(u64::from(hb) * 500);
            tokio::select! {
                _ = outbox.rung() => {}
                _ = tokio::time::sleep_until(last_write + every) => {
                    if last_write.elapsed() >= every {
                        outbox.push(|buf, _| encode_heartbeat(buf));
                    }
                }
            }
        }
        outbox.take(&mut spare);
        if !spare.is_empty() {
            // The flush is a no-op on TCP; TLS may keep the last records buffered until it.
            let bytes = spare.len();
            if spare.write_to(&mut socket).await.is_err() || socket.flush().await.is_err() {
                outbox.close();
                return;
            }
            entry.traffic.sent(bytes);
            last_write = Instant::now();
            redeliver_stalled(&outbox);
            // Keep a modest buffer between bursts rather than the largest one ever needed.
            if spare.capacity() > 1 << 20 {
                spare = Output::with_capacity(1024);
            }
        }
        if outbox.is_closed() && outbox.is_empty() {
            let _ = socket.shutdown().await;
            return;
        }
    }
}

/// Queues that held deliveries back while this outbox was full deliver again now that the
/// writer has caught up.
fn redeliver_stalled(outbox: &Outbox) {
    let stalled = outbox.take_stalled();
    if stalled.is_empty() {
        return;
    }
    let mut fx = Effects::default();
    for q in stalled.iter().filter_map(|w| w.upgrade()) {
        q.dispatch(&mut fx);
        if !fx.dead.is_empty()
            && let Some(v) = q.vhost()
        {
            dead_letter_all(&v, &mut fx);
        }
    }
    fx.bells.ring();
}
