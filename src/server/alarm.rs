//! The memory alarm: resident memory sampled twice a second against
//! `memory.high_watermark`. While it is raised, connections that publish are sent
//! connection.blocked and are not read from until it clears (then connection.unblocked),
//! as RabbitMQ does.

use std::time::Duration;
use tokio::sync::watch;
use tracing::warn;

/// Resident set size of this process, from /proc/self/statm.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The machine's RAM, from /proc/meminfo.
pub fn total_ram() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(8 << 30)
}

/// Samples memory until `stop` and publishes whether the alarm is raised.
pub async fn run(
    watermark: u64,
    tx: watch::Sender<bool>,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let used = resident_bytes().unwrap_or(0);
        let raised = used > watermark;
        if raised != *tx.borrow() {
            if raised {
                warn!(
                    used,
                    watermark, "memory alarm raised: blocking publishers until usage drops"
                );
            } else {
                warn!(
                    used,
                    watermark, "memory alarm cleared: unblocking publishers"
                );
            }
            tx.send_replace(raised);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
