//! A quorum queue's command log: one ordered log per queue, owned by the store's writer
//! thread, holding every command the queue issued (`Enqueue` with its message, `Checkout`,
//! `Return`, `Settle`, `DeadLettering`, `Discard`) in the order it issued them, plus
//! snapshots.
//!
//! Files: `{id:016x}.qlog` segments in the queue's directory, numbered in the order they
//! were started. Entries:
//!
//! ```text
//! 0x10 | message record (record.rs)                               Enqueue
//! kind | u64 seq | u32 crc  (a mark record: 1 Settle, 2 Checkout,  a command
//!                            3 Return, 4 + reason DeadLettering,
//!                            8 Discard)
//! 0x20 | u32 len | u32 crc | u64 delivered-below | Replica        snapshot
//! ```
//!
//! Every segment starts with a snapshot of the queue's [`Replica`] (which messages are
//! live, and each one's delivery count and flags, and for those among the discards of
//! at-least-once dead-lettering, their reason) as it was when the segment was started,
//! so a segment's state never depends on the segments before it, only their message
//! records do. Replaying the log (recovery) means: for each segment in order, take its
//! snapshot, then apply its commands through the same [`Machine`](crate::broker::quorum::Machine)
//! the queue uses.
//!
//! Truncation: a segment other than the one being appended to is deleted as soon as every
//! message it enqueued is settled or discarded, wherever it stands in the log: the
//! commands it holds about older messages are covered by the next segment's snapshot. A
//! long-lived message therefore pins only its own segment, not the log behind it. When the
//! queue is empty, the current segment goes too once it is past [`DROP_EMPTY_CURRENT`].
//! The writer keeps the replica (one bit per seq, and an entry per message checked out or
//! returned) to make these decisions and to write the snapshots.
//!
//! Durability is the classic log's: an enqueue is synced before its confirm (group commit:
//! one fdatasync per touched log per batch); a batch of commands only is written to the OS
//! (it survives a crash of Warren) and synced with the next enqueue or segment.

use super::log::{LoggedMessage, PAGE_READ, read_at, sync_dir};
use super::record::{
    self, MARK_ACK, MARK_DELIVERED, MARK_DISCARD, MARK_DISCARDED, MARK_DISCARDED_LAST, MARK_LEN,
    MARK_RETURNED,
};
use crate::broker::effects::DeathReason;
use crate::broker::message::{HELD_OVERHEAD, held_size};
use crate::broker::quorum::{Applied, Command, Machine, Replica};
use bytes::{BufMut, Bytes};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use tracing::warn;

/// File extension of command-log segments.
pub const EXT: &str = "qlog";
/// Segments roll over past this size.
pub const SEGMENT_SIZE: u64 = 8 << 20;
/// The current segment of an empty queue is deleted once it is larger than this.
pub const DROP_EMPTY_CURRENT: u64 = 1 << 20;
const TAG_ENQUEUE: u8 = 0x10;
const TAG_SNAPSHOT: u8 = 0x20;

/// The command a mark kind stands for in a command log.
pub fn command_of(kind: u8, seq: u64) -> Option<Command> {
    Some(match kind {
        MARK_ACK => Command::Settle { seq },
        MARK_DELIVERED => Command::Checkout { seq },
        MARK_RETURNED => Command::Return { seq },
        MARK_DISCARD => Command::Discard { seq },
        MARK_DISCARDED..=MARK_DISCARDED_LAST => Command::DeadLettering {
            seq,
            reason: DeathReason::from_code(kind - MARK_DISCARDED),
        },
        _ => return None,
    })
}

/// The mark kind a command is written as (`None` for `Enqueue`, written as a message).
pub fn kind_of(cmd: Command) -> Option<u8> {
    Some(match cmd {
        Command::Enqueue { .. } => return None,
        Command::Settle { .. } => MARK_ACK,
        Command::Checkout { .. } => MARK_DELIVERED,
        Command::Return { .. } => MARK_RETURNED,
        Command::Discard { .. } => MARK_DISCARD,
        Command::DeadLettering { reason, .. } => MARK_DISCARDED + reason.code(),
    })
}

/// One entry read back.
#[derive(Debug)]
pub enum Entry {
    Enqueue(record::StoredMessage),
    Command(Command),
    Snapshot {
        delivered_below: u64,
        replica: Replica,
    },
}

/// Reads the entry at `at`, with its length. `None` when it is torn, corrupt or unknown:
/// the log ends there. Never panics (the octets come from disk).
pub fn read_entry(src: &Bytes, at: usize) -> Option<(Entry, usize)> {
    match *src.get(at)? {
        TAG_ENQUEUE => {
            let m = record::read_message(src, at + 1)?;
            let n = m.len + 1;
            Some((Entry::Enqueue(m), n))
        }
        TAG_SNAPSHOT => {
            let body = record::checked(src, at + 1)?;
            let (below, rest) = body.split_first_chunk::<8>()?;
            let replica = Replica::decode(Machine::default(), rest)?;
            let entry = Entry::Snapshot {
                delivered_below: u64::from_be_bytes(*below),
                replica,
            };
            Some((entry, 1 + 8 + body.len()))
        }
        kind => {
            let r = src.get(at..at + MARK_LEN)?;
            let crc = u32::from_be_bytes(r[9..13].try_into().ok()?);
            if crc32fast::hash(&r[..9]) != crc {
                return None;
            }
            let seq = u64::from_be_bytes(r[1..9].try_into().ok()?);
            Some((Entry::Command(command_of(kind, seq)?), MARK_LEN))
        }
    }
}

/// The length of the entry starting `data` says it has (to read a whole one), if known.
fn entry_len(data: &[u8]) -> Option<u64> {
    match *data.first()? {
        TAG_ENQUEUE | TAG_SNAPSHOT => {
            let len = u32::from_be_bytes(data.get(1..5)?.try_into().ok()?);
            Some(1 + 8 + u64::from(len))
        }
        _ => Some(MARK_LEN as u64),
    }
}

#[derive(Debug, Default)]
struct Segment {
    /// Messages enqueued in this segment and still live.
    live: u64,
    /// Octets (written and buffered).
    size: u64,
}

/// A quorum queue's command log, as the writer thread holds it.
#[derive(Debug)]
pub struct QuorumFiles {
    dir: PathBuf,
    dir_created: bool,
    sync: bool,
    /// Roll-over size ([`SEGMENT_SIZE`]; smaller in tests).
    pub segment_size: u64,
    segments: BTreeMap<u64, Segment>,
    /// First seq enqueued in a segment → the segment (seqs ascend through the log).
    by_seq: BTreeMap<u64, u64>,
    next_id: u64,
    current: Option<(u64, File)>,
    /// Entries not yet written to the current segment.
    buf: Vec<u8>,
    /// An enqueue or a snapshot is buffered or written but not synced.
    need_sync: bool,
    /// The queue's state as the log defines it.
    replica: Replica,
    /// Messages below this seq may have been delivered before a crash: they come back
    /// flagged redelivered.
    delivered_below: u64,
    /// Where the paged-out tail continues: (segment, offset).
    cursor: Option<(u64, u64)>,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.{EXT}"))
}

/// Whether a queue directory holds a command log.
pub fn is_command_log(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".qlog"))
    })
}

impl QuorumFiles {
    pub fn new(dir: PathBuf, sync: bool) -> QuorumFiles {
        QuorumFiles {
            dir,
            dir_created: false,
            sync,
            segment_size: SEGMENT_SIZE,
            segments: BTreeMap::new(),
            by_seq: BTreeMap::new(),
            next_id: 0,
            current: None,
            buf: Vec::new(),
            need_sync: false,
            replica: Replica::default(),
            delivered_below: 0,
            cursor: None,
        }
    }

    /// The state the log defines now (what a follower would hold).
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Segment files on disk (ids, oldest first).
    pub fn segment_ids(&self) -> Vec<u64> {
        self.segments.keys().copied().collect()
    }

    fn ensure_dir(&mut self) -> io::Result<()> {
        if !self.dir_created {
            fs::create_dir_all(&self.dir)?;
            if let Some(parent) = self.dir.parent() {
                sync_dir(parent);
            }
            self.dir_created = true;
        }
        Ok(())
    }

    /// Makes sure there is a current segment with room, starting one if not.
    fn prepare(&mut self) -> io::Result<u64> {
        match &self.current {
            Some((id, _)) if self.segments[id].size < self.segment_size => Ok(*id),
            _ => self.roll(),
        }
    }

    /// Starts a new segment, writing out (and syncing) the one before; the new one starts
    /// with a snapshot of the replica as it is now.
    fn roll(&mut self) -> io::Result<u64> {
        self.ensure_dir()?;
        if let Some((_, mut file)) = self.current.take() {
            file.write_all(&self.buf)?;
            self.buf.clear();
            if self.sync {
                file.sync_data()?;
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(seg_path(&self.dir, id))?;
        sync_dir(&self.dir);
        self.buf.push(TAG_SNAPSHOT);
        let start = self.buf.len();
        self.buf.put_u64(0); // length and crc: sealed below
        self.buf.put_u64(self.delivered_below);
        self.replica.encode(&mut self.buf);
        record::seal(&mut self.buf, start);
        self.segments.insert(
            id,
            Segment {
                live: 0,
                size: self.buf.len() as u64,
            },
        );
        self.current = Some((id, file));
        self.need_sync = true;
        Ok(id)
    }

    /// Appends an `Enqueue` (written at the next [`flush`](Self::flush)). `tail`: the
    /// message is paged out, so the paging cursor starts here if it has nowhere to be.
    pub fn append(
        &mut self,
        seq: u64,
        persistent: bool,
        expires: u64,
        m: &crate::broker::message::Message,
        tail: bool,
    ) -> io::Result<()> {
        let id = self.prepare()?;
        let seg = self.segments.get_mut(&id).unwrap();
        if tail && self.cursor.is_none() {
            self.cursor = Some((id, seg.size));
        }
        self.buf.push(TAG_ENQUEUE);
        let n = record::put_message_in(&mut self.buf, seq, persistent, expires, None, m);
        seg.size += n as u64 + 1;
        if !self.replica.contains(seq) {
            seg.live += 1;
        }
        self.replica.apply(Command::Enqueue { seq });
        if self.by_seq.last_key_value().is_none_or(|(_, i)| *i != id) {
            self.by_seq.insert(seq, id);
        }
        self.need_sync = true;
        Ok(())
    }

    /// Appends a command about a live message (one about a message that is not in the
    /// queue changes nothing and is not written).
    pub fn command(&mut self, cmd: Command) -> io::Result<()> {
        let seq = cmd.seq();
        let Some(kind) = kind_of(cmd) else {
            return Ok(());
        };
        if !self.replica.contains(seq) {
            return Ok(());
        }
        let id = self.prepare()?;
        record::put_mark(&mut self.buf, kind, seq);
        self.segments.get_mut(&id).unwrap().size += MARK_LEN as u64;
        if self.replica.apply(cmd) != Applied::Kept
            && let Some((_, id)) = self.by_seq.range(..=seq).next_back()
            && let Some(seg) = self.segments.get_mut(id)
        {
            seg.live = seg.live.saturating_sub(1);
        }
        Ok(())
    }

    /// A mark kind as the classic log names it, as a command.
    pub fn mark(&mut self, kind: u8, seq: u64) -> io::Result<()> {
        match command_of(kind, seq) {
            Some(cmd) => self.command(cmd),
            None => Ok(()),
        }
    }

    /// Writes what is buffered and, with `sync`, makes enqueues and snapshots durable;
    /// then deletes the segments nothing live needs. Returns whether it synced.
    pub fn flush(&mut self) -> io::Result<bool> {
        let mut synced = false;
        if let Some((_, file)) = &mut self.current {
            if !self.buf.is_empty() {
                file.write_all(&self.buf)?;
                self.buf.clear();
            }
            if self.sync && self.need_sync {
                file.sync_data()?;
                synced = true;
            }
        }
        self.need_sync = false;
        self.truncate();
        Ok(synced)
    }

    /// Deletes every segment but the current one whose enqueued messages are all gone (the
    /// next segment's snapshot covers its commands), and the current one too when the
    /// queue is empty and it has grown past [`DROP_EMPTY_CURRENT`]. Call with the buffer
    /// written (and any snapshot that supersedes them synced: `flush` does both first).
    fn truncate(&mut self) {
        let current = self.current.as_ref().map(|(id, _)| *id);
        let dead: Vec<u64> = self
            .segments
            .iter()
            .filter(|(id, seg)| {
                seg.live == 0
                    && (Some(**id) != current
                        || (self.replica.is_empty() && seg.size > DROP_EMPTY_CURRENT))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            self.segments.remove(&id);
            self.by_seq.retain(|_, i| *i != id);
            if current == Some(id) {
                self.current = None;
            }
            if self.cursor.is_some_and(|(c, _)| c == id) {
                self.cursor = self.segments.range(id..).next().map(|(n, _)| (*n, 0));
            }
            let _ = fs::remove_file(seg_path(&self.dir, id));
        }
    }

    /// Reads the paged-out tail onwards from the cursor: messages worth up to `max_bytes`
    /// held in memory (their records and [`HELD_OVERHEAD`] each; at least one), skipping commands, messages no longer live and those among
    /// the discards (recovery loaded them; they never wait in the tail). Call after
    /// [`flush`](Self::flush).
    pub fn page_in(&mut self, max_bytes: u64, out: &mut Vec<LoggedMessage>) -> io::Result<()> {
        let mut taken = 0u64;
        while let Some((id, offset)) = self.cursor {
            let Some(seg) = self.segments.get(&id) else {
                self.cursor = self.segments.range(id..).next().map(|(n, _)| (*n, 0));
                continue;
            };
            if offset >= seg.size {
                match self.segments.range(id + 1..).next() {
                    Some((next, _)) => self.cursor = Some((*next, 0)),
                    None => {
                        self.cursor = None;
                        break;
                    }
                }
                continue;
            }
            if taken >= max_bytes {
                break;
            }
            let size = seg.size;
            let want = (max_bytes - taken)
                .clamp(64 << 10, PAGE_READ)
                .min(size - offset);
            let path = seg_path(&self.dir, id);
            let file = File::open(&path)?;
            let mut data = Bytes::from(read_at(&file, offset, want)?);
            if read_entry(&data, 0).is_none()
                && let Some(len) = entry_len(&data)
            {
                // One entry larger than what was read: read all of it (no more than the
                // segment holds, whatever a corrupt length says).
                data = Bytes::from(read_at(&file, offset, len.min(size - offset))?);
            }
            let mut at = 0usize;
            while taken < max_bytes
                && let Some((entry, n)) = read_entry(&data, at)
            {
                at += n;
                if let Entry::Enqueue(stored) = entry
                    && self.replica.contains(stored.seq)
                    && self.replica.state(stored.seq).discarded.is_none()
                {
                    taken += stored.len as u64 + HELD_OVERHEAD;
                    let state = self.replica.state(stored.seq);
                    out.push(LoggedMessage {
                        delivered: state.delivered || stored.seq < self.delivered_below,
                        delivery_count: state.delivery_count,
                        discarded: None,
                        stored,
                    });
                }
            }
            if at == 0 {
                warn!(path = %path.display(), offset, "unreadable entry in a quorum queue's paged-out tail; skipping the rest of the segment");
                at = (size - offset) as usize;
            }
            self.cursor = Some((id, offset + at as u64));
        }
        if let Some((id, offset)) = self.cursor
            && self.segments.range(id + 1..).next().is_none()
            && self.segments.get(&id).is_none_or(|s| offset >= s.size)
        {
            self.cursor = None;
        }
        Ok(())
    }

    /// Discards every message of the paged-out tail (a purge).
    pub fn drop_tail(&mut self) -> io::Result<()> {
        let mut all = Vec::new();
        self.page_in(u64::MAX, &mut all)?;
        for m in all {
            self.command(Command::Discard { seq: m.stored.seq })?;
        }
        Ok(())
    }

    /// Deletes the whole log (queue deleted).
    pub fn destroy(self) {
        if self.dir_created || self.dir.exists() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    /// Recovers a queue's command log after a restart (`clean`: after a graceful stop;
    /// otherwise every message may have been delivered) by replaying it: each segment's
    /// snapshot, then its commands, through the queue's state machine. Torn or corrupt
    /// tails are cut off. Live messages come back in seq order, up to `memory_budget`
    /// bytes of bodies loaded, the rest left on disk behind the paging cursor; messages
    /// among the discards (at-least-once dead-lettering) always come back loaded, with
    /// their reason, for the queue to put back among its discards and retry. Then a new
    /// segment starts with a snapshot of what was recovered, and the segments it makes
    /// unnecessary are deleted.
    pub fn recover(
        dir: PathBuf,
        memory_budget: u64,
        clean: bool,
        sync: bool,
    ) -> io::Result<QuorumRecovered> {
        let mut files = QuorumFiles::new(dir, sync);
        let mut rec = QuorumRecovered::default();
        if !files.dir.exists() {
            rec.files = Some(files);
            return Ok(rec);
        }
        files.dir_created = true;
        let mut ids: Vec<u64> = Vec::new();
        for entry in fs::read_dir(&files.dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(hex) = name.strip_suffix(".qlog")
                && let Ok(id) = u64::from_str_radix(hex, 16)
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        // Pass 1: replay, noting where each message record is.
        struct At {
            seq: u64,
            id: u64,
            offset: usize,
            body: u64,
            persistent: bool,
        }
        let mut replica = Replica::default();
        let mut delivered_below = 0u64;
        let mut index: Vec<At> = Vec::new();
        for &id in &ids {
            let path = seg_path(&files.dir, id);
            let data = Bytes::from(fs::read(&path)?);
            let mut at = 0usize;
            while let Some((entry, n)) = read_entry(&data, at) {
                match entry {
                    Entry::Snapshot {
                        delivered_below: below,
                        replica: r,
                    } => {
                        replica = r;
                        delivered_below = delivered_below.max(below);
                    }
                    Entry::Enqueue(m) => {
                        rec.max_seq = Some(rec.max_seq.map_or(m.seq, |s| s.max(m.seq)));
                        if files.by_seq.last_key_value().is_none_or(|(_, i)| *i != id) {
                            files.by_seq.insert(m.seq, id);
                        }
                        replica.apply(Command::Enqueue { seq: m.seq });
                        index.push(At {
                            seq: m.seq,
                            id,
                            offset: at,
                            body: m.message.body.len() as u64,
                            persistent: m.persistent,
                        });
                    }
                    Entry::Command(cmd) => {
                        replica.apply(cmd);
                    }
                }
                at += n;
            }
            if at < data.len() {
                warn!(path = %path.display(), valid = at, size = data.len(), "cutting off a torn or corrupt command log tail");
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(at as u64)?;
                f.sync_all()?;
            }
            files.segments.insert(
                id,
                Segment {
                    live: 0,
                    size: at as u64,
                },
            );
            files.next_id = id + 1;
        }
        if !clean {
            delivered_below = rec.max_seq.map_or(0, |s| s + 1);
        }
        // Pass 2: the live messages (transient ones, from before the restart, are not),
        // loaded within the budget.
        let mut kept = Replica::default();
        let mut budget = memory_budget;
        let mut loaded: Option<(u64, Bytes)> = None;
        for at in index {
            if !at.persistent || !replica.contains(at.seq) || kept.contains(at.seq) {
                continue;
            }
            let mut state = replica.state(at.seq);
            // Nothing is checked out after a restart: its consumer is gone.
            state.checked_out = false;
            kept.restore(at.seq, state);
            if let Some(seg) = files.segments.get_mut(&at.id) {
                seg.live += 1;
            }
            // Discards are bounded by the queue's length limits and retried from memory.
            let discarded = state.discarded;
            if discarded.is_some() || (rec.tail_count == 0 && budget >= held_size(at.body)) {
                if loaded.as_ref().is_none_or(|(id, _)| *id != at.id) {
                    let data = Bytes::from(fs::read(seg_path(&files.dir, at.id))?);
                    loaded = Some((at.id, data));
                }
                let (_, data) = loaded.as_ref().unwrap();
                if let Some((Entry::Enqueue(stored), _)) = read_entry(data, at.offset) {
                    if discarded.is_none() {
                        budget -= held_size(at.body);
                    }
                    rec.messages.push(LoggedMessage {
                        delivered: state.delivered || at.seq < delivered_below,
                        delivery_count: state.delivery_count,
                        discarded: discarded.map(DeathReason::code),
                        stored,
                    });
                    continue;
                }
            }
            if rec.tail_count == 0 {
                files.cursor = Some((at.id, at.offset as u64));
            }
            rec.tail_count += 1;
            rec.tail_bytes += at.body;
        }
        files.replica = kept;
        files.delivered_below = delivered_below;
        if !files.replica.is_empty() {
            files.roll()?;
        }
        files.flush()?;
        rec.files = Some(files);
        Ok(rec)
    }
}

/// What [`QuorumFiles::recover`] found.
#[derive(Debug, Default)]
pub struct QuorumRecovered {
    pub files: Option<QuorumFiles>,
    pub messages: Vec<LoggedMessage>,
    pub tail_count: u64,
    pub tail_bytes: u64,
    pub max_seq: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::message::Message;
    use crate::broker::quorum::MessageState;
    use crate::protocol::{EncodedProperties, ShortStr};
    use proptest::prelude::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("warren-qlog-{tag}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn message(seq: u64, size: usize) -> Message {
        Message {
            exchange: ShortStr::from(""),
            routing_key: ShortStr::from("q"),
            properties: EncodedProperties::default(),
            body: Bytes::from(vec![seq as u8; size]),
            bcc: Vec::new(),
        }
    }

    /// What a queue does to its log, as a test drives it.
    #[derive(Debug, Clone)]
    enum Step {
        Enqueue {
            size: usize,
            tail: bool,
        },
        /// A mark kind (1..=8) about the message at this position among those enqueued.
        Command {
            kind: u8,
            pick: usize,
        },
        /// The writer's end of batch.
        Flush,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (1usize..300, any::<bool>()).prop_map(|(size, tail)| Step::Enqueue { size, tail }),
            6 => (1u8..=MARK_DISCARD, any::<usize>()).prop_map(|(kind, pick)| Step::Command { kind, pick }),
            1 => Just(Step::Flush),
        ]
    }

    /// Runs the steps through a command log (tiny segments, so that it rolls, snapshots
    /// and truncates often) and through a bare replica: the live state.
    fn run(dir: &Path, steps: &[Step], segment_size: u64) -> (QuorumFiles, Replica, u64) {
        let mut files = QuorumFiles::new(dir.to_path_buf(), true);
        files.segment_size = segment_size;
        let mut live = Replica::default();
        let mut next = 0u64;
        for s in steps {
            match *s {
                Step::Enqueue { size, tail } => {
                    files
                        .append(next, true, 0, &message(next, size), tail)
                        .unwrap();
                    live.apply(Command::Enqueue { seq: next });
                    next += 1;
                }
                Step::Command { kind, pick } => {
                    if next == 0 {
                        continue;
                    }
                    let cmd = command_of(kind, pick as u64 % next).unwrap();
                    files.command(cmd).unwrap();
                    live.apply(cmd);
                }
                Step::Flush => {
                    files.flush().unwrap();
                }
            }
        }
        files.flush().unwrap();
        (files, live, next)
    }

    /// The live state as recovery gives it back: nothing checked out.
    fn after_restart(live: &Replica) -> Vec<(u64, MessageState)> {
        live.seqs()
            .map(|s| {
                let mut st = live.state(s);
                st.checked_out = false;
                (s, st)
            })
            .collect()
    }

    /// What recovery gave back, by seq: the ready messages (loaded, then paged in) come
    /// in seq order; the discards are loaded whatever the budget, so they may come before
    /// paged-out ones.
    fn recovered(rec: &mut QuorumRecovered) -> Vec<(u64, MessageState)> {
        let mut all: Vec<LoggedMessage> = std::mem::take(&mut rec.messages);
        let files = rec.files.as_mut().unwrap();
        files.page_in(u64::MAX, &mut all).unwrap();
        let ready: Vec<u64> = all
            .iter()
            .filter(|m| m.discarded.is_none())
            .map(|m| m.stored.seq)
            .collect();
        assert!(ready.is_sorted(), "ready messages in order: {ready:?}");
        let mut got: Vec<(u64, MessageState)> = all
            .iter()
            .map(|m| {
                assert_eq!(m.stored.message.body[0], m.stored.seq as u8, "its own body");
                let st = MessageState {
                    delivery_count: m.delivery_count,
                    delivered: m.delivered,
                    checked_out: false,
                    discarded: m.discarded.map(DeathReason::from_code),
                };
                (m.stored.seq, st)
            })
            .collect();
        got.sort_by_key(|(s, _)| *s);
        got
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Replaying the log (snapshots and commands, whatever was truncated) gives back
        /// the live state: the same messages, with their delivery counts and flags, in
        /// order, loaded or paged out.
        #[test]
        fn replay_reproduces_the_live_state(
            steps in prop::collection::vec(step(), 0..300),
            segment in 200u64..4000,
            budget in prop_oneof![Just(0u64), Just(u64::MAX), 0u64..5000],
        ) {
            let dir = TempDir::new("replay");
            let (files, live, _) = run(&dir.0, &steps, segment);
            prop_assert_eq!(files.replica(), &live, "the writer's replica is the live state");
            drop(files);
            let mut rec = QuorumFiles::recover(dir.0.clone(), budget, true, true).unwrap();
            prop_assert_eq!(recovered(&mut rec), after_restart(&live));
            // And again, from the log recovery itself left behind.
            drop(rec);
            let mut rec = QuorumFiles::recover(dir.0.clone(), budget, true, true).unwrap();
            prop_assert_eq!(recovered(&mut rec), after_restart(&live));
        }

        /// Snapshots read back as written.
        #[test]
        fn snapshots_round_trip(steps in prop::collection::vec(step(), 0..200)) {
            let dir = TempDir::new("snap");
            let (_, live, _) = run(&dir.0, &steps, 1 << 20);
            let mut buf = Vec::new();
            live.encode(&mut buf);
            let back = Replica::decode(Machine::default(), &buf).unwrap();
            prop_assert_eq!(&back, &live);
        }

        /// No input makes the entry reader panic.
        #[test]
        fn reading_garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
            let src = Bytes::from(data);
            let mut at = 0;
            while let Some((_, n)) = read_entry(&src, at) {
                at += n;
            }
        }
    }

    fn dir_size(dir: &Path) -> u64 {
        fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    #[test]
    fn a_settled_log_is_truncated_and_a_long_lived_head_pins_only_its_segment() {
        let dir = TempDir::new("truncate");
        let mut files = QuorumFiles::new(dir.0.clone(), true);
        files.segment_size = 64 << 10;
        // The head message is checked out and returned three times, and stays.
        files.append(0, true, 0, &message(0, 100), false).unwrap();
        for _ in 0..3 {
            files.command(Command::Checkout { seq: 0 }).unwrap();
            files.command(Command::Return { seq: 0 }).unwrap();
        }
        // Then 2000 messages of 1 KiB go through: enqueued, checked out, settled.
        for seq in 1..2001 {
            files
                .append(seq, true, 0, &message(seq, 1024), false)
                .unwrap();
            files.command(Command::Checkout { seq }).unwrap();
            files.command(Command::Settle { seq }).unwrap();
            if seq % 50 == 0 {
                files.flush().unwrap();
            }
        }
        files.flush().unwrap();
        // 2 MB went through; what is left is the head's segment and the current one.
        assert!(files.segment_ids().len() <= 2, "{:?}", files.segment_ids());
        assert!(
            dir_size(&dir.0) < 2 * (64 << 10) + 4096,
            "{}",
            dir_size(&dir.0)
        );
        drop(files);
        let mut rec = QuorumFiles::recover(dir.0.clone(), u64::MAX, true, true).unwrap();
        let st = MessageState {
            delivery_count: 3,
            delivered: true,
            checked_out: false,
            discarded: None,
        };
        assert_eq!(recovered(&mut rec), vec![(0, st)]);
        // Once the head is settled too, the segment it pinned goes; what is left is the
        // small current one recovery started (dropped once past DROP_EMPTY_CURRENT).
        let mut files = rec.files.take().unwrap();
        files.command(Command::Settle { seq: 0 }).unwrap();
        files.flush().unwrap();
        assert_eq!(files.segment_ids().len(), 1);
        assert!(dir_size(&dir.0) < 1024, "{}", dir_size(&dir.0));
        assert!(files.replica().is_empty());
    }

    #[test]
    fn a_torn_tail_is_cut_off() {
        let dir = TempDir::new("torn");
        let mut files = QuorumFiles::new(dir.0.clone(), true);
        for seq in 0..3 {
            files
                .append(seq, true, 0, &message(seq, 10), false)
                .unwrap();
        }
        files.command(Command::Checkout { seq: 1 }).unwrap();
        files.command(Command::Return { seq: 1 }).unwrap();
        files.flush().unwrap();
        drop(files);
        let path = seg_path(&dir.0, 0);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[TAG_ENQUEUE, 0, 0, 1]).unwrap();
        drop(f);
        let mut rec = QuorumFiles::recover(dir.0.clone(), u64::MAX, false, true).unwrap();
        let got = recovered(&mut rec);
        assert_eq!(got.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [0, 1, 2]);
        // After a crash every message may have been delivered.
        assert!(got.iter().all(|(_, st)| st.delivered));
        assert_eq!(got[1].1.delivery_count, 1);
    }
}
