//! Delayed messages on disk (the `x-delayed-message` exchange type): message logs like a
//! queue's, one per time bucket, owned by the store's writer thread like every other log.
//!
//! A delayed message due at unix time `due` ms belongs to bucket `due / BUCKET_MS`; its
//! record (the ordinary message record, naming its vhost, with the due time in the
//! `expires` field) goes to that bucket's log, `queues/{DELAYED_BIT | bucket:016x}/`. So
//! what is due later waits on disk, and the schedule reads one bucket back (the whole
//! log, as a queue pages in its tail) shortly before its time: memory holds what is due
//! soon, not what is scheduled. A bucket's log is deleted once every message in it has
//! been routed (each routed message leaves an acknowledgement mark, as in a queue log).
//!
//! Bucket 0 is never due: it holds tombstones, one record per deleted durable delayed
//! exchange (its vhost and name, and in `seq` the schedule's sequence number at the
//! deletion), so that messages it left on disk are not routed by a namesake declared
//! later, even after a restart.
//!
//! Persistent records survive a restart; transient ones (a transient message, or any
//! message of a transient exchange) are written only when they must wait on disk, flagged
//! transient, and skipped by recovery, as a queue's paged-out transient messages are.

use super::log::{LoggedMessage, QueueFiles};
use std::io;
use std::path::Path;

/// Log ids of delayed buckets have this bit set; queue logs count up from 1.
pub const DELAYED_BIT: u64 = 1 << 63;
/// The bucket holding tombstones.
pub const TOMBSTONES: u64 = 0;
/// Width of a bucket, in milliseconds.
pub const BUCKET_MS: u64 = 1000;

/// The log id of a bucket.
pub fn log_id(bucket: u64) -> u64 {
    DELAYED_BIT | bucket
}

/// The bucket of a log id, if it is a delayed bucket's.
pub fn bucket_of(log_id: u64) -> Option<u64> {
    (log_id & DELAYED_BIT != 0).then_some(log_id & !DELAYED_BIT)
}

/// What start-up found of one bucket.
#[derive(Debug, Default)]
pub struct RecoveredBucket {
    pub bucket: u64,
    /// Persistent messages still to route, left on disk.
    pub count: u64,
    /// Messages recovery already read (only zero-length bodies ahead of the rest, or every
    /// tombstone): routed with the bucket when it is read back.
    pub head: Vec<LoggedMessage>,
}

/// Recovers one bucket's log: nothing is kept in memory but its count (tombstones are read
/// whole). Returns the files for the writer, what was found, and the highest seq seen.
pub fn recover(
    dir: &Path,
    bucket: u64,
    clean: bool,
) -> io::Result<(QueueFiles, RecoveredBucket, Option<u64>)> {
    let budget = if bucket == TOMBSTONES { u64::MAX } else { 0 };
    let rec = QueueFiles::recover(dir.to_path_buf(), budget, clean)?;
    let found = RecoveredBucket {
        bucket,
        count: rec.tail_count + rec.messages.len() as u64,
        head: rec.messages,
    };
    Ok((rec.files.unwrap(), found, rec.max_seq))
}
