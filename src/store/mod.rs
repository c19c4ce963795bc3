//! Durable storage under `storage.dir`: the definitions log (`definitions`), one message
//! log per queue (`log`; a quorum queue's is a command log, `qlog`), in checksummed
//! records (`record`), and one log per stream
//! (`stream`, osiris chunks written by the same writer with the same tickets).
//!
//! One writer thread owns every message-log file. Queues hand it operations (append,
//! delivered, acknowledged, page in, delete) through one short mutex; it takes them all at
//! once, writes them, syncs each touched file once, and then publishes how far it got as
//! a ticket on a watch channel: group commit. Publisher confirms of persistent messages
//! wait for their ticket, so one fsync confirms every message that arrived meanwhile. A
//! message acknowledged in the same batch it was published in never reaches the disk.
//!
//! Layout:
//! ```text
//! storage.dir/definitions.log
//! storage.dir/queues/{log id:016x}/{first seq:016x}.seg   message records
//! storage.dir/queues/{log id:016x}/{first seq:016x}.ack   acknowledged/delivered marks
//! storage.dir/queues/{log id:016x}/{segment:016x}.qlog      a quorum queue's command log (`qlog`)
//! storage.dir/queues/{8000000000000000 | bucket:016x}/...   delayed messages (`delayed`)
//! storage.dir/streams/{log id:016x}/{first offset:020}.segment   stream chunks (`stream`)
//! storage.dir/dedup/{id:016x}.cache   deduplication exchanges' disk caches (`dedup`)
//! storage.dir/spare/{n:016x}.zero   zero-filled files that busy logs take as segments (`spare`)
//! ```

pub mod dedup;
pub mod definitions;
pub mod delayed;
mod idhash;
pub mod log;
pub mod qlog;
pub mod record;
pub mod spare;
pub mod stream;

use crate::broker::message::{MessageRef, held_size};
use crate::broker::queue::Queue;
use crate::protocol::ShortStr;
use definitions::{Change, Definitions, DefinitionsLog};
use idhash::{IdMap, IdSet};
use log::{LoggedMessage, QueueFiles};
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use tokio::sync::watch;
use tracing::{error, info, warn};

/// What a queue asks of its log.
enum Op {
    Append {
        log: u64,
        seq: u64,
        /// The vhost and exchange named in the record (delayed messages).
        target: Option<(ShortStr, ShortStr)>,
        message: MessageRef,
        persistent: bool,
        expires: u64,
        tail: bool,
        /// The log is a quorum queue's command log (`qlog`), if the writer has to create it.
        quorum: bool,
    },
    Mark {
        log: u64,
        kind: u8,
        seq: u64,
    },
    /// An acknowledgement to record once the store has synced `ticket` (at-least-once
    /// dead-lettering: the copies the message was republished as).
    AckAfter {
        log: u64,
        seq: u64,
        ticket: u64,
    },
    PageIn {
        log: u64,
        queue: Weak<Queue>,
        max_bytes: u64,
        done: Option<std::sync::mpsc::SyncSender<()>>,
    },
    DropTail {
        log: u64,
    },
    /// Reads a delayed bucket's whole log back (after the batch is written).
    LoadBucket {
        log: u64,
        reply: tokio::sync::oneshot::Sender<Vec<LoggedMessage>>,
    },
    Delete {
        log: u64,
    },
    /// A stream entry, its offset assigned under the stream's lock.
    StreamAppend {
        stream: Arc<stream::StreamLog>,
        offset: u64,
        entry: stream::chunk::Entry,
        writer: Option<(Arc<str>, u64)>,
    },
    StreamOffset {
        stream: Arc<stream::StreamLog>,
        reference: Arc<str>,
        offset: u64,
    },
    StreamDelete {
        stream: Arc<stream::StreamLog>,
    },
    /// A deduplication cache's file replaced by these entries (created, recovered,
    /// compacted).
    DedupRewrite {
        id: u64,
        vhost: Arc<str>,
        exchange: bytes::Bytes,
        entries: Vec<(u128, u64)>,
    },
    DedupAppend {
        id: u64,
        key: u128,
        expiry: u64,
    },
    DedupDelete {
        id: u64,
    },
}

#[derive(Default)]
struct Pending {
    ops: Vec<Op>,
    /// Ticket of the last append handed over.
    ticket: u64,
    writer_waiting: bool,
    closed: bool,
}

struct Inner {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Message records written and fsync calls made (reported when the store closes).
    appended: AtomicU64,
    fsyncs: AtomicU64,
    /// Bytes handed to the writer and not yet written (a message's body and
    /// `HELD_OVERHEAD`, what it holds in memory until written; a stream entry's payload):
    /// publishers wait while it is above [`PENDING_LIMIT`], so a writer slower than the
    /// network cannot grow memory.
    pending_bytes: AtomicU64,
    /// Open stream logs, for `Store::stream_log` to hand out the same one and for the
    /// writer's periodic retention sweep.
    streams: Mutex<HashMap<u64, Weak<stream::StreamLog>>>,
}

/// How often the writer applies streams' maximum age when nothing else triggers it.
const RETENTION_SWEEP: std::time::Duration = std::time::Duration::from_secs(60);

/// Bytes (as `pending_bytes` counts them) the writer may lag behind by before publishers
/// are held back.
const PENDING_LIMIT: u64 = 8 << 20;

impl Inner {
    fn push(&self, op: Op) -> u64 {
        let mut p = self.pending.lock().unwrap();
        if p.closed {
            return 0;
        }
        if matches!(
            op,
            Op::Append { .. }
                | Op::StreamAppend { .. }
                | Op::StreamOffset { .. }
                | Op::DedupAppend { .. }
        ) {
            p.ticket += 1;
        }
        p.ops.push(op);
        if p.writer_waiting {
            p.writer_waiting = false;
            self.wake.notify_one();
        }
        p.ticket
    }
}

/// The broker's storage.
pub struct Store {
    root: PathBuf,
    inner: Arc<Inner>,
    definitions: Mutex<DefinitionsLog>,
    /// fsync before confirming (storage.sync).
    pub sync: bool,
    /// Per queue, bytes of message bodies kept in memory before paging to disk.
    pub paging_threshold: u64,
    synced: watch::Receiver<u64>,
    thread: Mutex<Option<JoinHandle<()>>>,
    spares: Arc<spare::Spares>,
    next_log: AtomicU64,
    /// Holds the directory's lock for as long as the store is open.
    _lock: std::fs::File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.root).finish()
    }
}

/// What start-up found on disk.
#[derive(Debug, Default)]
pub struct Recovery {
    pub definitions: Definitions,
    /// By queue log id.
    pub queues: HashMap<u64, RecoveredQueue>,
    /// Delayed messages' buckets (tombstones included), in bucket order.
    pub delayed: Vec<delayed::RecoveredBucket>,
    /// The next sequence number for delayed messages: above every one on disk.
    pub delayed_seq: u64,
    /// Deduplication caches on disk, by (vhost, exchange): their entries in order.
    pub dedup: HashMap<(String, Vec<u8>), dedup::Entries>,
}

#[derive(Debug, Default)]
pub struct RecoveredQueue {
    pub messages: Vec<LoggedMessage>,
    pub tail_count: u64,
    pub tail_bytes: u64,
    pub next_seq: u64,
}

impl Store {
    /// Opens (creating) the storage directory, recovers definitions and message logs, and
    /// starts the writer thread.
    pub fn open(
        dir: &Path,
        sync: bool,
        paging_threshold: u64,
    ) -> io::Result<(Arc<Store>, Recovery)> {
        let started = std::time::Instant::now();
        std::fs::create_dir_all(dir)?;
        let lock = lock_dir(dir)?;
        // Written by a graceful stop, removed now: without it the last run crashed, and
        // any recovered message may have been delivered (its delivered mark may not have
        // reached the disk), so every one comes back flagged redelivered.
        let clean = std::fs::remove_file(dir.join(CLEAN)).is_ok();
        if clean {
            log::sync_dir(dir);
        }
        let queues_dir = dir.join("queues");
        std::fs::create_dir_all(&queues_dir)?;
        let (definitions, defs) = DefinitionsLog::open(dir, sync)?;
        let spares = spare::Spares::open(dir);
        let durable: HashSet<u64> = defs.queues.iter().map(|q| q.log_id).collect();
        let quorum: HashSet<u64> = defs
            .queues
            .iter()
            .filter(|q| is_quorum(&q.arguments))
            .map(|q| q.log_id)
            .collect();
        // Logs of queues that are gone (transient queues' paged messages, deleted queues).
        let mut buckets = Vec::new();
        for entry in std::fs::read_dir(&queues_dir)? {
            let entry = entry?;
            let id = u64::from_str_radix(&entry.file_name().to_string_lossy(), 16).ok();
            if let Some(bucket) = id.and_then(delayed::bucket_of) {
                buckets.push(bucket);
                continue;
            }
            let keep = id.is_some_and(|id| durable.contains(&id));
            if !keep {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        // Streams no durable queue names (deleted while the store was down or mid-delete).
        let streams_dir = dir.join(stream::STREAMS_DIR);
        if let Ok(entries) = std::fs::read_dir(&streams_dir) {
            for entry in entries.flatten() {
                let id = u64::from_str_radix(&entry.file_name().to_string_lossy(), 16).ok();
                if !id.is_some_and(|id| durable.contains(&id)) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let mut files = IdMap::default();
        let mut recovery = Recovery::default();
        buckets.sort_unstable();
        for bucket in buckets {
            let dir = log_dir(&queues_dir, delayed::log_id(bucket));
            let (f, found, max_seq) = delayed::recover(&dir, bucket, clean)?;
            if let Some(m) = max_seq {
                recovery.delayed_seq = recovery.delayed_seq.max(m + 1);
            }
            if found.count == 0 {
                f.destroy();
                continue;
            }
            files.insert(delayed::log_id(bucket), Files::Classic(f));
            recovery.delayed.push(found);
        }
        // Deduplication caches of durable exchanges; the others' files go.
        let dedup_dir = dir.join(dedup::DEDUP_DIR);
        let exchanges: HashSet<(&[u8], &[u8])> = defs
            .exchanges
            .iter()
            .map(|e| (e.vhost.as_bytes(), e.name.as_bytes()))
            .collect();
        for (id, f) in dedup::recover(&dedup_dir) {
            let known = exchanges.contains(&(f.vhost.as_bytes(), f.exchange.as_slice()))
                && dedup::file_id(&f.vhost, &f.exchange) == id;
            if known {
                recovery.dedup.insert((f.vhost, f.exchange), f.entries);
            } else {
                let _ = std::fs::remove_file(dedup::path(&dedup_dir, id));
            }
        }
        let mut total = 0usize;
        for id in &durable {
            let dir = log_dir(&queues_dir, *id);
            // A quorum queue's command log; a quorum queue written before command logs
            // existed keeps its segments and marks.
            let command_log =
                qlog::is_command_log(&dir) || (quorum.contains(id) && !has_extension(&dir, "seg"));
            let (f, rq) = if command_log {
                let rec = qlog::QuorumFiles::recover(dir, paging_threshold, clean, sync)?;
                let rq = RecoveredQueue {
                    messages: rec.messages,
                    tail_count: rec.tail_count,
                    tail_bytes: rec.tail_bytes,
                    next_seq: rec.max_seq.map_or(0, |s| s + 1),
                };
                (Files::Quorum(rec.files.unwrap()), rq)
            } else {
                let rec = QueueFiles::recover(dir, paging_threshold, clean)?;
                let rq = RecoveredQueue {
                    messages: rec.messages,
                    tail_count: rec.tail_count,
                    tail_bytes: rec.tail_bytes,
                    next_seq: rec.max_seq.map_or(0, |s| s + 1),
                };
                (Files::Classic(rec.files.unwrap()), rq)
            };
            total += rq.messages.len() + rq.tail_count as usize;
            files.insert(*id, f);
            recovery.queues.insert(*id, rq);
        }
        for f in files.values_mut() {
            if let Files::Classic(f) = f {
                f.set_spares(spares.clone());
            }
        }
        recovery.definitions = defs;
        if total > 0 || !durable.is_empty() {
            info!(
                queues = durable.len(),
                messages = total,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "recovered durable queues"
            );
        }
        let inner = Arc::new(Inner {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            appended: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            pending_bytes: AtomicU64::new(0),
            streams: Mutex::new(HashMap::new()),
        });
        let (synced_tx, synced) = watch::channel(0u64);
        let runtime = tokio::runtime::Handle::try_current().ok();
        let writer = Writer {
            inner: inner.clone(),
            root: queues_dir,
            files,
            sync,
            synced: synced_tx,
            deleted: IdSet::default(),
            dedup_dir,
            caches: HashMap::new(),
            spares: spares.clone(),
            failures: Failures::default(),
        };
        let thread = std::thread::Builder::new()
            .name("warren-store".into())
            .spawn(move || {
                let _guard = runtime.as_ref().map(|r| r.enter());
                // A writer that died would leave every confirm hanging: better to stop and
                // recover from the log on restart.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer.run())).is_err() {
                    error!("the store's writer thread failed; aborting (the log is recovered on restart)");
                    std::process::abort();
                }
            })?;
        let next = durable.iter().max().map_or(1, |m| m + 1);
        Ok((
            Arc::new(Store {
                root: dir.to_path_buf(),
                inner,
                definitions: Mutex::new(definitions),
                sync,
                paging_threshold,
                synced,
                thread: Mutex::new(Some(thread)),
                spares,
                next_log: AtomicU64::new(next),
                _lock: lock,
            }),
            recovery,
        ))
    }

    /// A fresh log id (a new stream's, recorded as its queue's `log_id`).
    pub fn new_log_id(&self) -> u64 {
        self.next_log.fetch_add(1, Ordering::Relaxed)
    }

    /// A message log for a new queue (`quorum`: a command log, see [`qlog`]).
    pub fn new_log(self: &Arc<Self>, quorum: bool) -> Arc<QueueLog> {
        self.log_with_id(self.next_log.fetch_add(1, Ordering::Relaxed), quorum)
    }

    /// The message log of a recovered queue (`quorum`: a command log, see [`qlog`]).
    pub fn log_with_id(self: &Arc<Self>, id: u64, quorum: bool) -> Arc<QueueLog> {
        Arc::new(QueueLog {
            id,
            quorum,
            inner: self.inner.clone(),
            deleted: Default::default(),
        })
    }

    /// The disk cache of deduplication exchange `exchange` in `vhost`, its file replaced
    /// by `entries` (empty for a new exchange; what recovery found, replayed, otherwise).
    pub fn dedup_log(&self, vhost: &str, exchange: &[u8], entries: Vec<(u128, u64)>) -> DedupLog {
        let log = DedupLog {
            id: dedup::file_id(vhost, exchange),
            vhost: Arc::from(vhost),
            exchange: bytes::Bytes::copy_from_slice(exchange),
            inner: self.inner.clone(),
        };
        log.rewrite(entries);
        log
    }

    /// Records a change to the durable definitions, synced before returning.
    pub fn define(&self, change: &Change) {
        if let Err(e) = self.definitions.lock().unwrap().append(change) {
            error!(error = %e, dir = %self.root.display(), "cannot write definitions; check the storage directory's permissions and free space");
        }
    }

    /// The writer is behind by more than it may be: publishers should wait for it (on
    /// [`synced`](Self::synced), which moves with every batch written).
    pub fn backlogged(&self) -> bool {
        self.inner.pending_bytes.load(Ordering::Relaxed) > PENDING_LIMIT
    }

    /// The highest ticket made durable so far.
    pub fn synced(&self) -> watch::Receiver<u64> {
        self.synced.clone()
    }

    /// Writes out what is pending and stops the writer. Later operations are ignored:
    /// messages dropped while the process exits are not acknowledged on disk.
    pub fn close(&self) {
        {
            let mut p = self.inner.pending.lock().unwrap();
            p.closed = true;
            self.inner.wake.notify_one();
        }
        if let Some(t) = self.thread.lock().unwrap().take() {
            let _ = t.join();
            self.spares.close();
            info!(
                appended = self.inner.appended.load(Ordering::Relaxed),
                fsyncs = self.inner.fsyncs.load(Ordering::Relaxed),
                "message store closed"
            );
            if std::fs::File::create(self.root.join(CLEAN)).is_ok() {
                log::sync_dir(&self.root);
            }
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

/// Takes the storage directory's lock: two brokers on one directory would corrupt it.
fn lock_dir(dir: &Path) -> io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "the directory is in use by another Warren (stop it, or set storage.dir to another directory)",
        ));
    }
    Ok(f)
}

/// Marks a graceful stop.
const CLEAN: &str = "CLEAN";

fn log_dir(root: &Path, id: u64) -> PathBuf {
    root.join(format!("{id:016x}"))
}

/// Whether a queue's definition makes it a quorum queue (`x-queue-type: quorum`).
fn is_quorum(arguments: &crate::protocol::FieldTable) -> bool {
    matches!(
        arguments.get("x-queue-type"),
        Some(crate::protocol::FieldValue::LongStr(s)) if s.0.as_ref() == b"quorum"
    )
}

/// Whether `dir` holds a file named `*.{ext}`.
fn has_extension(dir: &Path, ext: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == ext))
    })
}

/// A log as the writer holds it: a classic queue's (or a delayed bucket's) segments and
/// marks, or a quorum queue's command log.
#[derive(Debug)]
enum Files {
    Classic(QueueFiles),
    Quorum(qlog::QuorumFiles),
}

impl Files {
    #[allow(clippy::too_many_arguments)] // the record's fields, as the writer holds them
    fn append(
        &mut self,
        seq: u64,
        persistent: bool,
        expires: u64,
        target: Option<(&ShortStr, &ShortStr)>,
        m: &crate::broker::message::Message,
        tail: bool,
        sync: bool,
    ) -> io::Result<()> {
        match self {
            Files::Classic(f) => f.append(seq, persistent, expires, target, m, tail, sync),
            Files::Quorum(f) => f.append(seq, persistent, expires, m, tail),
        }
    }

    fn mark(&mut self, kind: u8, seq: u64) -> io::Result<()> {
        match self {
            Files::Classic(f) => {
                f.mark(kind, seq);
                Ok(())
            }
            Files::Quorum(f) => f.mark(kind, seq),
        }
    }

    fn flush(&mut self, sync: bool) -> io::Result<bool> {
        match self {
            Files::Classic(f) => f.flush(sync),
            Files::Quorum(f) => f.flush(),
        }
    }

    fn page_in(&mut self, max_bytes: u64, out: &mut Vec<LoggedMessage>) -> io::Result<()> {
        match self {
            Files::Classic(f) => f.page_in(max_bytes, out),
            Files::Quorum(f) => f.page_in(max_bytes, out),
        }
    }

    fn drop_tail(&mut self) -> io::Result<()> {
        match self {
            Files::Classic(f) => f.drop_tail(),
            Files::Quorum(f) => f.drop_tail(),
        }
    }

    fn destroy(self) {
        match self {
            Files::Classic(f) => f.destroy(),
            Files::Quorum(f) => f.destroy(),
        }
    }
}

/// A queue's handle on its message log.
#[derive(Debug)]
pub struct QueueLog {
    pub id: u64,
    /// A quorum queue's command log: every checkout is logged (not only the first), and
    /// the writer keeps the commands in one ordered log ([`qlog`]).
    pub quorum: bool,
    inner: Arc<Inner>,
    /// Set when the queue is deleted: its messages' marks no longer matter.
    deleted: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inner")
    }
}

impl QueueLog {
    /// Appends a message; returns the ticket that says when it is durable.
    pub fn append(
        &self,
        seq: u64,
        message: &MessageRef,
        persistent: bool,
        expires: u64,
        tail: bool,
    ) -> u64 {
        self.append_in(seq, None, message, persistent, expires, tail)
    }

    /// Appends a delayed message (or a tombstone) to a bucket's log: it names its vhost
    /// and the exchange that routes it when due, and `due` goes where a queue's message
    /// keeps its expiry.
    pub fn append_delayed(
        &self,
        seq: u64,
        target: (&ShortStr, &ShortStr),
        message: &MessageRef,
        persistent: bool,
        due: u64,
    ) -> u64 {
        let target = Some((target.0.clone(), target.1.clone()));
        self.append_in(seq, target, message, persistent, due, true)
    }

    fn append_in(
        &self,
        seq: u64,
        target: Option<(ShortStr, ShortStr)>,
        message: &MessageRef,
        persistent: bool,
        expires: u64,
        tail: bool,
    ) -> u64 {
        self.inner
            .pending_bytes
            .fetch_add(held_size(message.body.len() as u64), Ordering::Relaxed);
        self.inner.push(Op::Append {
            log: self.id,
            seq,
            target,
            message: message.clone(),
            persistent,
            expires,
            tail,
            quorum: self.quorum,
        })
    }

    pub fn mark(&self, kind: u8, seq: u64) {
        if self.deleted.load(Ordering::Relaxed) {
            return;
        }
        self.inner.push(Op::Mark {
            log: self.id,
            kind,
            seq,
        });
    }

    /// Asks for up to `max_bytes` of the paged-out tail to be read back and handed to
    /// `queue.page_in`. With `done`, signals it when finished.
    pub fn page_in(
        &self,
        queue: Weak<Queue>,
        max_bytes: u64,
        done: Option<std::sync::mpsc::SyncSender<()>>,
    ) {
        self.inner.push(Op::PageIn {
            log: self.id,
            queue,
            max_bytes,
            done,
        });
    }

    pub fn drop_tail(&self) {
        self.inner.push(Op::DropTail { log: self.id });
    }

    /// Asks for a delayed bucket's whole log (what is not yet marked routed), sent to
    /// `reply` once every operation handed over before this one is written.
    pub fn load_bucket(&self, reply: tokio::sync::oneshot::Sender<Vec<LoggedMessage>>) {
        self.inner.push(Op::LoadBucket {
            log: self.id,
            reply,
        });
    }

    /// Stops recording marks without deleting anything: the queue object goes away with
    /// the process, its messages stay on disk.
    pub fn detach(&self) {
        self.deleted.store(true, Ordering::Relaxed);
    }

    pub fn delete(&self) {
        self.deleted.store(true, Ordering::Relaxed);
        self.inner.push(Op::Delete { log: self.id });
    }
}

/// A deduplication exchange's handle on its disk cache (see [`dedup`]).
#[derive(Debug)]
pub struct DedupLog {
    id: u64,
    vhost: Arc<str>,
    exchange: bytes::Bytes,
    inner: Arc<Inner>,
}

impl DedupLog {
    /// Appends an entry (expiry in unix ms, 0: never); the ticket that says when it is
    /// written.
    pub fn append(&self, key: u128, expiry: u64) -> u64 {
        self.inner.push(Op::DedupAppend {
            id: self.id,
            key,
            expiry,
        })
    }

    /// Replaces the file's entries with `entries` (the cache's live ones, in order).
    pub fn rewrite(&self, entries: Vec<(u128, u64)>) {
        self.inner.push(Op::DedupRewrite {
            id: self.id,
            vhost: self.vhost.clone(),
            exchange: self.exchange.clone(),
            entries,
        });
    }

    /// The exchange is deleted: so is its file.
    pub fn delete(&self) {
        self.inner.push(Op::DedupDelete { id: self.id });
    }
}

/// A message's place in its queue's log: acknowledged there when the message is dropped
/// (acked, expired, purged, dead-lettered...). Moving it around (requeue, delivery) keeps it.
#[derive(Debug)]
pub struct Persisted {
    pub log: Arc<QueueLog>,
    pub seq: u64,
    /// Dropping it discards the message (dead-lettered or dropped) rather than settling it.
    discard: bool,
}

/// A [`Persisted`] whose acknowledgement has been handed over already.
const SETTLED: u64 = u64::MAX;

impl Persisted {
    pub fn new(log: Arc<QueueLog>, seq: u64) -> Persisted {
        Persisted {
            log,
            seq,
            discard: false,
        }
    }

    /// The message is being dead-lettered or dropped: its log records a `Discard`.
    pub fn discard(&mut self) {
        self.discard = true;
    }

    /// Acknowledges the message in its log only once the store has synced `ticket` (what a
    /// dead-lettered copy of it waits for), so that a crash in between loses neither: it
    /// comes back in this queue. Ticket 0 (nothing to wait for) acknowledges it now.
    pub fn settle_after(mut self, ticket: u64) {
        if ticket == 0 || self.log.deleted.load(Ordering::Relaxed) {
            return;
        }
        self.log.inner.push(Op::AckAfter {
            log: self.log.id,
            seq: self.seq,
            ticket,
        });
        self.seq = SETTLED;
    }
}

impl Drop for Persisted {
    fn drop(&mut self) {
        if self.seq != SETTLED {
            let kind = if self.discard {
                record::MARK_DISCARD
            } else {
                record::MARK_ACK
            };
            self.log.mark(kind, self.seq);
        }
    }
}

struct Writer {
    inner: Arc<Inner>,
    root: PathBuf,
    files: IdMap<u64, Files>,
    sync: bool,
    synced: watch::Sender<u64>,
    deleted: IdSet<u64>,
    dedup_dir: PathBuf,
    /// Deduplication cache files, by id.
    caches: HashMap<u64, dedup::CacheWriter>,
    spares: Arc<spare::Spares>,
    /// Queue-log write errors, logged once per run of failures (a full disk or a removed
    /// storage directory fails every op: one line, not one per message).
    failures: Failures,
}

/// Write errors of the queue logs: the first of a run is logged, the rest counted, and the
/// count logged when a batch writes without error again.
#[derive(Default)]
struct Failures {
    count: u64,
    in_batch: bool,
}

impl Failures {
    fn report(&mut self, e: &io::Error) {
        self.in_batch = true;
        if self.count == 0 {
            error!(error = %e, "cannot write to a queue log; check free disk space and the storage directory (later failures are counted, not logged, until writes succeed again)");
        }
        self.count += 1;
    }

    /// End of a batch: a batch without failures ends the run.
    fn batch_done(&mut self) {
        if !std::mem::take(&mut self.in_batch) && self.count > 0 {
            warn!(failures = self.count, "queue log writes succeed again");
            self.count = 0;
        }
    }
}

impl Writer {
    fn run(mut self) {
        let mut ops = Vec::new();
        let mut acked: IdSet<(u64, u64)> = IdSet::default();
        let mut skipped: IdSet<(u64, u64)> = IdSet::default();
        let mut dirty: Vec<u64> = Vec::new();
        let mut dirty_caches: Vec<u64> = Vec::new();
        let mut after: Vec<Op> = Vec::new();
        // Acknowledgements waiting for a ticket to be synced: (ticket, log, seq).
        let mut deferred: Vec<(u64, u64, u64)> = Vec::new();
        let mut streams = stream::writer::Batches::default();
        let mut last_sweep = std::time::Instant::now();
        loop {
            if last_sweep.elapsed() >= RETENTION_SWEEP {
                self.sweep_streams();
                last_sweep = std::time::Instant::now();
            }
            let (ticket, closed) = {
                let mut p = self.inner.pending.lock().unwrap();
                while p.ops.is_empty() && !p.closed {
                    let left = RETENTION_SWEEP.saturating_sub(last_sweep.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    p.writer_waiting = true;
                    p = self.inner.wake.wait_timeout(p, left).unwrap().0;
                }
                if p.ops.is_empty() && !p.closed {
                    continue; // time for the retention sweep
                }
                std::mem::swap(&mut ops, &mut p.ops);
                (p.ticket, p.closed)
            };
            acked.clear();
            skipped.clear();
            let mut batch_bytes = 0u64;
            for op in &ops {
                if let Op::Mark {
                    log,
                    kind: record::MARK_ACK | record::MARK_DISCARD,
                    seq,
                } = op
                {
                    acked.insert((*log, *seq));
                }
            }
            for op in ops.drain(..) {
                match op {
                    Op::Append {
                        log,
                        seq,
                        target,
                        message,
                        persistent,
                        expires,
                        tail,
                        quorum,
                    } => {
                        batch_bytes += held_size(message.body.len() as u64);
                        if self.deleted.contains(&log) {
                            continue;
                        }
                        if !tail && acked.contains(&(log, seq)) {
                            // Published and acknowledged within one batch: nothing to keep.
                            skipped.insert((log, seq));
                            continue;
                        }
                        let (root, sync, spares) = (&self.root, self.sync, &self.spares);
                        let f = self.files.entry(log).or_insert_with(|| {
                            let dir = log_dir(root, log);
                            if quorum {
                                Files::Quorum(qlog::QuorumFiles::new(dir, sync))
                            } else {
                                let mut f = QueueFiles::new(dir);
                                f.set_spares(spares.clone());
                                Files::Classic(f)
                            }
                        });
                        self.inner.appended.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = f.append(
                            seq,
                            persistent,
                            expires,
                            target.as_ref().map(|(v, e)| (v, e)),
                            &message,
                            tail,
                            self.sync,
                        ) {
                            self.failures.report(&e);
                        }
                        if !dirty.contains(&log) {
                            dirty.push(log);
                        }
                    }
                    Op::Mark { log, kind, seq } => {
                        if skipped.contains(&(log, seq)) {
                            continue;
                        }
                        if let Some(f) = self.files.get_mut(&log) {
                            if let Err(e) = f.mark(kind, seq) {
                                self.failures.report(&e);
                            }
                            if !dirty.contains(&log) {
                                dirty.push(log);
                            }
                        }
                    }
                    Op::AckAfter { log, seq, ticket } => deferred.push((ticket, log, seq)),
                    Op::StreamAppend {
                        stream,
                        offset,
                        entry,
                        writer,
                    } => {
                        batch_bytes += entry.payload_len() as u64;
                        self.inner.appended.fetch_add(1, Ordering::Relaxed);
                        streams.append(stream, offset, entry, writer);
                    }
                    Op::StreamOffset {
                        stream,
                        reference,
                        offset,
                    } => streams.store_offset(stream, reference, offset),
                    Op::StreamDelete { stream } => streams.delete(stream),
                    Op::DedupRewrite {
                        id,
                        vhost,
                        exchange,
                        entries,
                    } => {
                        match dedup::CacheWriter::rewrite(
                            &self.dedup_dir,
                            id,
                            &vhost,
                            &exchange,
                            &entries,
                            self.sync,
                        ) {
                            Ok(w) => {
                                self.caches.insert(id, w);
                            }
                            Err(e) => {
                                error!(error = %e, "cannot write a deduplication cache; check free disk space")
                            }
                        }
                    }
                    Op::DedupAppend { id, key, expiry } => {
                        if let Some(w) = self.caches.get_mut(&id) {
                            w.append(key, expiry);
                            if !dirty_caches.contains(&id) {
                                dirty_caches.push(id);
                            }
                        }
                    }
                    Op::DedupDelete { id } => {
                        dirty_caches.retain(|c| *c != id);
                        match self.caches.remove(&id) {
                            Some(w) => w.delete(),
                            None => {
                                let _ = std::fs::remove_file(dedup::path(&self.dedup_dir, id));
                            }
                        }
                    }
                    Op::Delete { log } => {
                        self.deleted.insert(log);
                        dirty.retain(|l| *l != log);
                        if let Some(f) = self.files.remove(&log) {
                            f.destroy();
                        } else {
                            let _ = std::fs::remove_dir_all(log_dir(&self.root, log));
                        }
                    }
                    op => after.push(op),
                }
            }
            // Streams: chunks written and synced, then indexed and announced as committed,
            // all before the ticket is.
            let n = streams.write(self.sync);
            self.inner.fsyncs.fetch_add(n, Ordering::Relaxed);
            for id in dirty_caches.drain(..) {
                if let Some(w) = self.caches.get_mut(&id) {
                    match w.flush(self.sync) {
                        Ok(true) => {
                            self.inner.fsyncs.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(false) => {}
                        Err(e) => {
                            error!(error = %e, "cannot write a deduplication cache; check free disk space")
                        }
                    }
                }
            }
            // Delayed buckets last: a routed delayed message's mark must not reach the disk
            // before the queue records it was routed to.
            dirty.sort_by_key(|l| delayed::bucket_of(*l).is_some());
            for log in dirty.drain(..) {
                if let Some(f) = self.files.get_mut(&log) {
                    match f.flush(self.sync) {
                        Ok(true) => {
                            self.inner.fsyncs.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(false) => {}
                        Err(e) => self.failures.report(&e),
                    }
                }
            }
            self.failures.batch_done();
            self.inner
                .pending_bytes
                .fetch_sub(batch_bytes, Ordering::Relaxed);
            self.synced.send_replace(ticket);
            if !deferred.is_empty() {
                self.settle_deferred(&mut deferred, ticket);
            }
            for op in after.drain(..) {
                self.page(op);
            }
            if closed {
                let p = self.inner.pending.lock().unwrap();
                if p.ops.is_empty() {
                    return;
                }
            }
        }
    }

    /// Applies the maximum age of every open stream that has one (segments also expire
    /// when a stream rolls to a new one; this catches streams that stopped growing).
    fn sweep_streams(&self) {
        let open: Vec<Arc<stream::StreamLog>> = {
            let mut streams = self.inner.streams.lock().unwrap();
            streams.retain(|_, s| s.strong_count() > 0);
            streams.values().filter_map(Weak::upgrade).collect()
        };
        for s in open {
            if s.has_max_age() {
                s.enforce_retention();
            }
        }
    }

    /// Writes the deferred acknowledgements whose ticket is now synced (after the batch
    /// that synced it: the copies are on disk before the original is acknowledged).
    fn settle_deferred(&mut self, deferred: &mut Vec<(u64, u64, u64)>, synced: u64) {
        let mut touched: Vec<u64> = Vec::new();
        deferred.retain(|&(ticket, log, seq)| {
            if ticket > synced {
                return true;
            }
            if let Some(f) = self.files.get_mut(&log) {
                // Dead-lettered: a `Discard` in a quorum queue's log.
                if let Err(e) = f.mark(record::MARK_DISCARD, seq) {
                    self.failures.report(&e);
                }
                if !touched.contains(&log) {
                    touched.push(log);
                }
            }
            false
        });
        for log in touched {
            if let Some(f) = self.files.get_mut(&log)
                && let Err(e) = f.flush(self.sync)
            {
                self.failures.report(&e);
            }
        }
    }

    /// Page-in and tail drops run after the batch is written: what they read is on disk.
    fn page(&mut self, op: Op) {
        match op {
            Op::PageIn {
                log,
                queue,
                max_bytes,
                done,
            } => {
                let mut out = Vec::new();
                if let Some(f) = self.files.get_mut(&log)
                    && let Err(e) = f.page_in(max_bytes, &mut out)
                {
                    error!(error = %e, "cannot read a queue's paged-out messages");
                }
                if let Some(q) = queue.upgrade() {
                    q.page_in(out);
                }
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Op::LoadBucket { log, reply } => {
                let mut out = Vec::new();
                if let Some(f) = self.files.get_mut(&log)
                    && let Err(e) = f.page_in(u64::MAX, &mut out)
                {
                    error!(error = %e, "cannot read delayed messages back");
                }
                let _ = reply.send(out);
            }
            Op::DropTail { log } => {
                if let Some(f) = self.files.get_mut(&log) {
                    if let Err(e) = f.drop_tail() {
                        error!(error = %e, "cannot read a queue's paged-out messages");
                    }
                    let _ = f.flush(self.sync);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod failure_tests {
    use super::Failures;

    /// A run of write errors is one log line and a count; a clean batch ends the run.
    #[test]
    fn a_run_of_write_errors_is_counted_until_a_clean_batch() {
        let mut f = Failures::default();
        let e = std::io::Error::from(std::io::ErrorKind::NotFound);
        for _ in 0..1000 {
            f.report(&e);
        }
        f.batch_done();
        assert_eq!(f.count, 1000, "a failing batch keeps the run going");
        f.report(&e);
        f.batch_done();
        assert_eq!(f.count, 1001);
        f.batch_done();
        assert_eq!(f.count, 0, "a batch without failures ends the run");
    }
}
