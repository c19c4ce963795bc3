//! Resource alarms: resident memory sampled twice a second against
//! `memory.high_watermark`, and free space on the storage filesystem against
//! `storage.disk_free_limit`. While one is raised, connections that publish are sent
//! connection.blocked (with the alarm's reason) and are not read from until it clears
//! (then connection.unblocked), as RabbitMQ does.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;
use tracing::warn;

/// Resident set size of this process, from /proc/self/statm.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Open file descriptors of this process, and the limit.
pub fn fds() -> (u64, u64) {
    let used = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    // SAFETY: getrlimit only writes the struct it is given.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let total = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        1024
    };
    (used, total)
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

/// Free bytes available to unprivileged users on the filesystem holding `dir`.
pub fn disk_free(dir: &Path) -> Option<u64> {
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a valid statvfs to fill in.
    let r = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    (r == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// Why publishers are blocked (the reason connection.blocked carries), if they are.
pub type Alarm = Option<&'static str>;

pub const LOW_ON_MEMORY: &str = "low on memory";
pub const LOW_ON_DISK: &str = "low on disk";

/// Which alarm is raised now, if any.
pub fn sample(watermark: u64, dir: &Path, disk_limit: u64) -> Alarm {
    if resident_bytes().unwrap_or(0) > watermark {
        Some(LOW_ON_MEMORY)
    } else if disk_free(dir).is_some_and(|free| free < disk_limit) {
        Some(LOW_ON_DISK)
    } else {
        None
    }
}

/// Samples memory and disk until `stop` and publishes which alarm is raised.
pub async fn run(
    watermark: u64,
    dir: PathBuf,
    disk_limit: u64,
    tx: watch::Sender<Alarm>,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let alarm = sample(watermark, &dir, disk_limit);
        if alarm != *tx.borrow() {
            match alarm {
                Some(reason) => warn!(
                    reason,
                    memory_watermark = watermark,
                    disk_free_limit = disk_limit,
                    "resource alarm raised: blocking publishers until it clears (free memory or disk space, or raise memory.high_watermark / lower storage.disk_free_limit)"
                ),
                None => warn!("resource alarm cleared: unblocking publishers"),
            }
            tx.send_replace(alarm);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
