//! Stream logs (issue #13): an append-only, offset-addressed log per stream, stored in
//! osiris's chunk format (RabbitMQ's stream storage) so that a chunk's bytes on disk are
//! exactly what a stream-protocol Deliver frame carries after its subscription id.
//!
//! Layout: `storage.dir/streams/{log id:016x}/{first offset:020}.segment`.
//!
//! - `chunk`: the chunk format (header, entries, tracking), and [`records`].
//! - `writer`: the store writer thread's side: a stream's share of a batch becomes one
//!   chunk (or a few), written, fdatasynced, indexed, then announced on
//!   [`StreamLog::committed`], all before the batch's store ticket is published.
//! - `index`: the in-memory index of committed user chunks (memory grows with chunks,
//!   not messages), offset resolution, retention.
//! - `segment`: recovery of a stream's files at [`Store::stream_log`].
//! - `reader`: [`StreamReader`] and [`ChunkRef`] (file, position, length: sendfile them).
//!
//! Nothing per message stays in memory once it is written: data at rest costs the index's
//! 40 bytes per chunk, and readers hold only a position.

pub mod chunk;
pub mod gzip;
pub mod index;
pub mod reader;
pub mod segment;
pub mod writer;

#[cfg(test)]
mod tests;

pub use chunk::{Entry, records};
pub use reader::{ChunkRef, StreamReader};

use super::{Inner, Op, Store};
use bytes::Bytes;
use chunk::{MAX_ENTRY_LEN, MAX_REFERENCE_LEN};
use index::Index;
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::watch;
use tracing::error;
use writer::{Active, StreamWriter};

/// Retention and segment settings of one stream (from x-max-length-bytes, x-max-age,
/// x-stream-max-segment-size-bytes; RabbitMQ's default segment size is 500 MB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_bytes: Option<u64>,
    pub max_age: Option<std::time::Duration>,
    pub max_segment_bytes: u64,
}

/// RabbitMQ's default segment size (x-stream-max-segment-size-bytes).
pub const DEFAULT_MAX_SEGMENT_BYTES: u64 = 500_000_000;

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_bytes: None,
            max_age: None,
            max_segment_bytes: DEFAULT_MAX_SEGMENT_BYTES,
        }
    }
}

/// Where a reader starts (the stream protocol's OffsetSpecification, AMQP's x-stream-offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    First,
    Last,
    Next,
    Offset(u64),
    /// Unix milliseconds.
    Timestamp(i64),
}

/// Where an appended entry went, and the store ticket that says when it is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub offset: u64,
    pub ticket: u64,
}

/// One stream's log.
///
/// Locks, in order: `assign` (the stream lock: offsets are assigned and operations handed
/// to the store's writer under it, so the writer gets them in offset order), then the
/// store's pending lock (a leaf). The writer thread takes `writer`, then `index`; readers
/// take only `index`, for a lookup.
pub struct StreamLog {
    id: u64,
    me: Weak<StreamLog>,
    inner: Arc<Inner>,
    dir: PathBuf,
    assign: Mutex<Assign>,
    index: Mutex<Index>,
    committed: watch::Sender<u64>,
    retention: Mutex<Retention>,
    writer: Mutex<StreamWriter>,
    /// Set when the writer has removed the files.
    deleted: AtomicBool,
}

/// What appends see: the next offset, and the latest tracking handed to the writer.
#[derive(Debug, Default)]
struct Assign {
    next: u64,
    sequences: HashMap<Arc<str>, u64>,
    offsets: HashMap<Arc<str>, u64>,
    deleted: bool,
}

impl std::fmt::Debug for StreamLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamLog").field("id", &self.id).finish()
    }
}

/// Unix time in milliseconds (chunk timestamps).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The interned copy of `r` in `map`'s keys, or a new one.
fn intern<V>(map: &HashMap<Arc<str>, V>, r: &str) -> Arc<str> {
    map.get_key_value(r)
        .map_or_else(|| Arc::from(r), |(k, _)| k.clone())
}

impl Store {
    /// Opens (creating if absent) the stream log with this id; recovery of existing files
    /// happens here: a stream found on disk is scanned, its torn tail cut off, its index,
    /// next offset, publisher sequences and stored consumer offsets rebuilt. Calling it
    /// again while the log is open returns the same log (with `retention` applied).
    ///
    /// `id` must be the stream queue's `log_id` in the definitions (from
    /// [`Store::new_log_id`]): at start-up [`Store::open`] removes the directories of
    /// streams no durable queue names. Files live in `storage.dir/streams/{id:016x}/`.
    ///
    /// A directory that cannot be read is logged and gives a log that stores nothing
    /// (appends return None): use [`open_stream_log`](Self::open_stream_log) to get the
    /// error instead.
    pub fn stream_log(self: &Arc<Self>, id: u64, retention: Retention) -> Arc<StreamLog> {
        match self.open_stream_log(id, retention) {
            Ok(s) => s,
            Err(e) => {
                error!(stream = id, error = %e, "cannot recover a stream's files; it stores nothing until restarted");
                let s = self.new_stream(
                    id,
                    retention,
                    segment::Recovered::empty(self.stream_dir(id)),
                );
                s.assign.lock().unwrap().deleted = true;
                s
            }
        }
    }

    /// [`stream_log`](Self::stream_log), with recovery's I/O error.
    pub fn open_stream_log(
        self: &Arc<Self>,
        id: u64,
        retention: Retention,
    ) -> io::Result<Arc<StreamLog>> {
        let open = |streams: &HashMap<u64, Weak<StreamLog>>| {
            let s = streams.get(&id).and_then(Weak::upgrade)?;
            s.set_retention(retention);
            Some(s)
        };
        if let Some(s) = open(&self.inner.streams.lock().unwrap()) {
            return Ok(s);
        }
        // Recovery reads files: not under the registry's lock, which the writer's
        // retention sweep takes.
        let rec = segment::recover(&self.stream_dir(id))?;
        let mut streams = self.inner.streams.lock().unwrap();
        if let Some(s) = open(&streams) {
            return Ok(s); // opened meanwhile
        }
        let s = self.new_stream(id, retention, rec);
        streams.insert(id, Arc::downgrade(&s));
        Ok(s)
    }

    fn stream_dir(&self, id: u64) -> PathBuf {
        self.root.join(STREAMS_DIR).join(format!("{id:016x}"))
    }

    fn new_stream(&self, id: u64, retention: Retention, rec: segment::Recovered) -> Arc<StreamLog> {
        let dir = self.stream_dir(id);
        let has_user_chunk = rec
            .index
            .segments
            .back()
            .is_some_and(|s| !s.chunks.is_empty());
        let active = rec.active.map(|(first, file, size)| Active {
            first,
            file,
            size,
            has_user_chunk,
        });
        let assign = Assign {
            next: rec.next,
            sequences: rec
                .tracking
                .sequences
                .iter()
                .map(|(k, (_, s))| (k.clone(), *s))
                .collect(),
            offsets: rec.tracking.offsets.clone(),
            deleted: false,
        };
        let writer = StreamWriter::new(dir.clone(), rec.tracking, rec.next, active);
        let (committed, _) = watch::channel(rec.next);
        Arc::new_cyclic(|me| StreamLog {
            id,
            me: me.clone(),
            inner: self.inner.clone(),
            dir,
            assign: Mutex::new(assign),
            index: Mutex::new(rec.index),
            committed,
            retention: Mutex::new(retention),
            writer: Mutex::new(writer),
            deleted: AtomicBool::new(false),
        })
    }
}

/// Under `storage.dir`: one directory per stream.
pub(crate) const STREAMS_DIR: &str = "streams";

impl StreamLog {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Appends one entry (one AMQP 1.0 encoded message, exactly as the stream protocol
    /// carries it: it is stored as a "simple entry" of an osiris chunk). Offsets are dense
    /// and assigned in call order. `writer`: (publisher reference, publishing id) for
    /// stream-protocol deduplication: returns None (nothing stored) when that publisher
    /// already has an id >= this one (references longer than 255 bytes are not tracked).
    /// The ticket is what the confirm waits for (`Store::synced() >= ticket` means fsynced
    /// and readable), like `QueueLog::append`; the chunk's timestamp is the time its
    /// batch is written. Also None when the stream is deleted or the entry is over 2 GiB.
    pub fn append(&self, entry: Bytes, writer: Option<(&str, u64)>) -> Option<Appended> {
        self.append_entry(Entry::Simple(entry), writer)
    }

    /// [`append`](Self::append) for any chunk entry: a sub-entry batch is stored whole, as
    /// one entry (compressed or not, never looked into: clients decompress), and takes as
    /// many offsets as it has records; `offset` in the result is its first. Its publishing
    /// id is deduplicated as one (a batch has one). None also for a batch of no records
    /// (it would take no offset) or over 4 GiB.
    pub fn append_entry(&self, entry: Entry, writer: Option<(&str, u64)>) -> Option<Appended> {
        let too_big = match &entry {
            Entry::Simple(b) => b.len() > MAX_ENTRY_LEN,
            Entry::SubBatch { data, .. } => data.len() > u32::MAX as usize,
        };
        if too_big || entry.records() == 0 {
            return None;
        }
        let stream = self.me.upgrade()?;
        let mut a = self.assign.lock().unwrap();
        if a.deleted {
            return None;
        }
        let writer = match writer {
            Some((r, seq)) if r.len() <= MAX_REFERENCE_LEN => {
                if a.sequences.get(r).is_some_and(|last| *last >= seq) {
                    return None;
                }
                let k = intern(&a.sequences, r);
                a.sequences.insert(k.clone(), seq);
                Some((k, seq))
            }
            _ => None,
        };
        let offset = a.next;
        a.next += u64::from(entry.records());
        self.inner
            .pending_bytes
            .fetch_add(entry.payload_len() as u64, Ordering::Relaxed);
        let ticket = self.inner.push(Op::StreamAppend {
            stream,
            offset,
            entry,
            writer,
        });
        Some(Appended { offset, ticket })
    }

    /// Stores a named consumer's offset (stream protocol StoreOffset). Durable once the
    /// returned ticket is synced; 0 (nothing stored) for a reference over 255 bytes or a
    /// deleted stream.
    pub fn store_offset(&self, reference: &str, offset: u64) -> u64 {
        if reference.len() > MAX_REFERENCE_LEN {
            return 0;
        }
        let Some(stream) = self.me.upgrade() else {
            return 0;
        };
        let mut a = self.assign.lock().unwrap();
        if a.deleted {
            return 0;
        }
        let k = intern(&a.offsets, reference);
        a.offsets.insert(k.clone(), offset);
        self.inner.push(Op::StreamOffset {
            stream,
            reference: k,
            offset,
        })
    }

    /// The offset last stored for a consumer reference.
    pub fn query_offset(&self, reference: &str) -> Option<u64> {
        self.assign.lock().unwrap().offsets.get(reference).copied()
    }

    /// Last publishing id stored for a publisher reference (QueryPublisherSequence).
    pub fn publisher_sequence(&self, reference: &str) -> Option<u64> {
        self.assign
            .lock()
            .unwrap()
            .sequences
            .get(reference)
            .copied()
    }

    /// The next offset not yet durable: every offset below it is readable. Changes are
    /// signalled on the watch channel (one send per writer batch, not per message).
    pub fn committed(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// First offset still kept (after retention).
    pub fn first_offset(&self) -> u64 {
        self.index.lock().unwrap().first_offset()
    }

    /// The next offset to be assigned.
    pub fn next_offset(&self) -> u64 {
        self.assign.lock().unwrap().next
    }

    /// Bytes on disk (segment headers, chunks of every type; what retention counts).
    pub fn disk_bytes(&self) -> u64 {
        self.index.lock().unwrap().disk_bytes
    }

    /// Segment files on disk.
    pub fn segment_count(&self) -> usize {
        self.index.lock().unwrap().segments.len()
    }

    /// Resolves an offset spec to the first offset a new reader reads (RabbitMQ's rules:
    /// First = first kept; Last = first offset of the last user chunk; Next = next_offset;
    /// Offset(n) clamped into [first, next]; Timestamp(t) = first chunk whose timestamp >= t,
    /// else next).
    pub fn resolve(&self, spec: OffsetSpec) -> u64 {
        let next = self.next_offset();
        self.index.lock().unwrap().resolve(spec, next)
    }

    /// A reader positioned at `offset` (which may be inside a chunk).
    pub fn reader(self: &Arc<Self>, offset: u64) -> StreamReader {
        StreamReader {
            log: self.clone(),
            position: offset,
        }
    }

    /// Changes retention (a policy change); applied at the next segment roll / sweep.
    pub fn set_retention(&self, r: Retention) {
        *self.retention.lock().unwrap() = r;
    }

    fn retention(&self) -> Retention {
        *self.retention.lock().unwrap()
    }

    /// Deletes every file (stream deleted): the writer removes the directory in its next
    /// batch; readers get None from then on (a chunk already handed out stays readable).
    pub fn delete(&self) {
        let Some(stream) = self.me.upgrade() else {
            return;
        };
        {
            let mut a = self.assign.lock().unwrap();
            if a.deleted {
                return;
            }
            a.deleted = true;
            self.inner.push(Op::StreamDelete { stream });
        }
        let mut streams = self.inner.streams.lock().unwrap();
        if streams
            .get(&self.id)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), self))
        {
            streams.remove(&self.id);
        }
    }

    fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Relaxed)
    }

    /// Removes the files (the writer thread, handling a delete).
    fn destroy(&self) {
        let mut w = self.writer.lock().unwrap();
        self.deleted.store(true, Ordering::Relaxed);
        w.active = None;
        {
            let mut index = self.index.lock().unwrap();
            index.deleted = true;
            index.segments.clear();
            index.disk_bytes = 0;
        }
        if self.dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                error!(stream = self.id, error = %e, "cannot remove a deleted stream's files");
            }
            if let Some(parent) = self.dir.parent() {
                super::log::sync_dir(parent);
            }
        }
    }

    /// Deletes the oldest segments while the stream is over its retention (never the
    /// active one). The writer runs it after each segment roll, and a periodic sweep for
    /// streams with a maximum age.
    pub fn enforce_retention(&self) {
        self.enforce_retention_at(now_ms());
    }

    /// [`enforce_retention`](Self::enforce_retention) as if it were `now` (unix ms).
    pub fn enforce_retention_at(&self, now: i64) {
        if self.is_deleted() {
            return;
        }
        let r = self.retention();
        if r.max_bytes.is_none() && r.max_age.is_none() {
            return;
        }
        let gone = self.index.lock().unwrap().expire(&r, now);
        for p in &gone {
            if let Err(e) = std::fs::remove_file(p) {
                error!(path = %p.display(), error = %e, "cannot remove an expired stream segment");
            }
        }
        if !gone.is_empty() {
            super::log::sync_dir(&self.dir);
        }
    }

    /// Whether a periodic sweep has anything to check (a maximum age).
    pub(crate) fn has_max_age(&self) -> bool {
        self.retention().max_age.is_some()
    }
}
