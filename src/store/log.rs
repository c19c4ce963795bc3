//! One queue's message log on disk, owned by the store's writer thread.
//!
//! A queue's directory holds segment files named by the first sequence number they hold
//! (`{seq:016x}.seg`), appended to until they pass [`SEGMENT_SIZE`], and beside each one an
//! acknowledgement file (`.ack`) of fixed-size marks (acknowledged / delivered) for the
//! messages of that segment. Acknowledging never rewrites a segment; once every message of
//! a segment is acknowledged, both files are deleted and the disk space comes back.
//!
//! The log also carries a queue's paged-out tail: messages written here and dropped from
//! memory, read back in order from `cursor` when the queue runs low.
//!
//! Busy logs overwrite instead of appending: once a log has written [`DROP_EMPTY_CURRENT`]
//! bytes to one segment, its next segments are spare files already filled with zeros
//! ([`super::spare`]), written with positional writes, so a sync does not have to journal
//! a new file size (the latency of every confirm round). A segment's size is therefore
//! its logical size (records written), never its file's length; recovery reads records
//! up to the first that does not check, takes a tail of zeros after them as the clean end
//! (and gives the space back), and anything else as a torn or corrupt tail to cut off.

use super::record::{
    self, MARK_ACK, MARK_DELIVERED, MARK_DISCARD, MARK_DISCARDED, MARK_DISCARDED_LAST,
    MARK_RETURNED, StoredMessage,
};
use super::spare::{SPARE_SIZE, Spares};
use crate::broker::message::{HELD_OVERHEAD, held_size};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::warn;

/// Segment files roll over past this size (those made from spares past [`SPARE_SIZE`]).
pub const SEGMENT_SIZE: u64 = 8 << 20;
/// A page-in reads at most this much at a time: the messages it loads share the buffer, so
/// what is read past the last one taken stays in memory with them.
pub(super) const PAGE_READ: u64 = 1 << 20;
/// An empty current segment larger than this is deleted rather than kept for appends
/// (unless it is a spare: that one is kept until it is full, so that each zero the spare
/// thread wrote is overwritten once by a record). A log that wrote this much to one
/// segment is busy: its next segments are spares.
pub const DROP_EMPTY_CURRENT: u64 = 1 << 20;

#[derive(Debug, Default)]
struct Segment {
    /// Messages not yet acknowledged.
    live: u64,
    last_seq: u64,
    /// Marks not yet written to the `.ack` file.
    marks: Vec<u8>,
    /// Bytes of records in the `.seg` file (written and buffered): its logical size,
    /// less than the file's length when the file is a spare.
    size: u64,
    /// Made from a zero-filled spare: the file is longer than `size`, zeros after it.
    spare: bool,
    /// Written before the last start: its transient messages are dead.
    recovered: bool,
    /// Recovered after a crash: its messages may have been delivered.
    maybe_delivered: bool,
    /// Its marks, loaded when the paging cursor enters it.
    page_marks: Option<Marks>,
}

/// A message read back from the log (recovery or page-in).
#[derive(Debug)]
pub struct LoggedMessage {
    pub stored: StoredMessage,
    /// Delivered before (a delivered mark exists): redelivered when delivered again.
    pub delivered: bool,
    /// Returned marks: how many times it was given back unsettled (quorum queues).
    pub delivery_count: u32,
    /// Discarded for at-least-once dead-lettering, with the reason's code: it belongs
    /// among the queue's discards, not its ready messages.
    pub discarded: Option<u8>,
}

/// A segment's marks, replayed in order: acknowledged, delivered and returned seqs.
#[derive(Debug, Default)]
struct Marks {
    acked: HashSet<u64>,
    delivered: HashSet<u64>,
    returns: HashMap<u64, u32>,
    /// Discarded (at-least-once dead-lettering), by seq: the reason's code.
    discarded: HashMap<u64, u8>,
}

impl Marks {
    fn apply(&mut self, kind: u8, seq: u64) {
        match kind {
            MARK_ACK | MARK_DISCARD => {
                self.acked.insert(seq);
            }
            MARK_DELIVERED => {
                self.delivered.insert(seq);
            }
            MARK_RETURNED => *self.returns.entry(seq).or_default() += 1,
            MARK_DISCARDED..=MARK_DISCARDED_LAST => {
                self.discarded.insert(seq, kind - MARK_DISCARDED);
            }
            _ => {}
        }
    }

    fn returns(&self, seq: u64) -> u32 {
        self.returns.get(&seq).copied().unwrap_or(0)
    }
}

#[derive(Debug)]
pub struct QueueFiles {
    dir: PathBuf,
    dir_created: bool,
    segments: BTreeMap<u64, Segment>,
    /// First seq of the segment being appended to, its file, and the offset its buffered
    /// records go to (the segment's size less `buf`'s length).
    current: Option<(u64, File, u64)>,
    /// Message records not yet written to the current segment.
    buf: Vec<u8>,
    /// Where the paged-out tail continues: (segment, offset).
    cursor: Option<(u64, u64)>,
    /// The `.ack` file last appended to, kept open so that each flush appends its marks with
    /// one `write` instead of `openat` + `write` + `close` (three syscalls and a path lookup
    /// per flush of an acknowledging queue). Closing it whenever the queue ran empty did not
    /// help: a consumer that keeps up empties the queue at nearly every flush. So a queue
    /// whose messages were acknowledged holds at most two descriptors (this and `current`).
    /// Invariant: names a segment still in `segments`; closed before that segment's files
    /// are deleted (and with the queue's files).
    ack_file: Option<(u64, File)>,
    /// Whether a persistent message was ever appended. A log of transient messages only (a
    /// non-durable queue's paged-out tail, or a durable queue's transient messages) holds
    /// nothing that outlives a restart, so it is written but never fdatasynced: paging under
    /// load costs no disk flush, and no confirm waits on one (nor takes a spare segment).
    has_persistent: bool,
    /// Where spare segment files come from (`None`: ordinary appended files only).
    spares: Option<Arc<Spares>>,
    /// This log filled [`DROP_EMPTY_CURRENT`] of one segment: new segments are spares.
    busy: bool,
}

fn seg_path(dir: &Path, first: u64, ext: &str) -> PathBuf {
    dir.join(format!("{first:016x}.{ext}"))
}

impl QueueFiles {
    pub fn new(dir: PathBuf) -> QueueFiles {
        QueueFiles {
            dir,
            dir_created: false,
            segments: BTreeMap::new(),
            current: None,
            buf: Vec::new(),
            cursor: None,
            ack_file: None,
            has_persistent: false,
            spares: None,
            busy: false,
        }
    }

    /// Lets the log take zero-filled spares for its segments once it is busy.
    pub fn set_spares(&mut self, spares: Arc<Spares>) {
        self.spares = Some(spares);
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

    /// Appends a message record (written at the next [`flush`](Self::flush)). `tail`: the
    /// message is paged out, so the paging cursor starts here if it has nowhere to be.
    /// `target`: the vhost and exchange a delayed message's record names.
    #[allow(clippy::too_many_arguments)] // the record's fields, as the writer holds them
    pub fn append(
        &mut self,
        seq: u64,
        persistent: bool,
        expires: u64,
        target: Option<(&crate::protocol::ShortStr, &crate::protocol::ShortStr)>,
        m: &crate::broker::message::Message,
        tail: bool,
        sync: bool,
    ) -> io::Result<()> {
        self.has_persistent |= persistent;
        let sync = sync && self.has_persistent;
        let roll = match &self.current {
            None => true,
            Some((first, _, _)) => {
                let seg = &self.segments[first];
                seg.size >= if seg.spare { SPARE_SIZE } else { SEGMENT_SIZE }
            }
        };
        if roll {
            self.roll(seq, sync)?;
        }
        let first = self.current.as_ref().unwrap().0;
        let seg = self.segments.get_mut(&first).unwrap();
        if tail && self.cursor.is_none() {
            self.cursor = Some((first, seg.size));
        }
        let n = record::put_message_in(&mut self.buf, seq, persistent, expires, target, m);
        let before = seg.size;
        seg.size += n as u64;
        seg.live += 1;
        seg.last_seq = seq;
        // Half-way to busy: have a spare made now, so it is ready when this segment ends.
        if !self.busy
            && self.has_persistent
            && before < DROP_EMPTY_CURRENT / 2
            && seg.size >= DROP_EMPTY_CURRENT / 2
            && let Some(spares) = &self.spares
        {
            spares.want();
        }
        Ok(())
    }

    /// Starts a new segment at `seq`, writing out (and syncing) the one before. A busy
    /// log's new segment is a spare if one is ready.
    fn roll(&mut self, seq: u64, sync: bool) -> io::Result<()> {
        self.ensure_dir()?;
        if let Some((_, file, at)) = self.current.take() {
            file.write_all_at(&self.buf, at)?;
            self.buf.clear();
            if sync {
                file.sync_data()?;
            }
            self.busy = true;
        }
        let path = seg_path(&self.dir, seq, "seg");
        // Only a log that syncs gains from a spare (a transient-only one never syncs).
        let spare =
            self.busy && self.has_persistent && self.spares.as_ref().is_some_and(|s| s.take(&path));
        let file = OpenOptions::new().create(!spare).write(true).open(&path)?;
        sync_dir(&self.dir);
        self.segments.insert(
            seq,
            Segment {
                last_seq: seq,
                spare,
                ..Default::default()
            },
        );
        self.current = Some((seq, file, 0));
        Ok(())
    }

    fn segment_of(&mut self, seq: u64) -> Option<(u64, &mut Segment)> {
        let (first, seg) = self.segments.range_mut(..=seq).next_back()?;
        (seq <= seg.last_seq).then_some((*first, seg))
    }

    /// Records an acknowledgement (or a delivery) of `seq`. Unknown seqs (their segment is
    /// gone) are ignored.
    pub fn mark(&mut self, kind: u8, seq: u64) {
        if let Some((_, seg)) = self.segment_of(seq) {
            record::put_mark(&mut seg.marks, kind, seq);
            if kind == MARK_ACK || kind == MARK_DISCARD {
                seg.live = seg.live.saturating_sub(1);
            }
        }
    }

    /// Writes what is buffered and, with `sync`, makes it durable; then deletes segments
    /// whose messages are all acknowledged. Returns whether it synced.
    pub fn flush(&mut self, sync: bool) -> io::Result<bool> {
        let sync = sync && self.has_persistent;
        let mut synced = false;
        if let Some((_, file, at)) = &mut self.current
            && !self.buf.is_empty()
        {
            file.write_all_at(&self.buf, *at)?;
            *at += self.buf.len() as u64;
            self.buf.clear();
            if sync {
                file.sync_data()?;
                synced = true;
            }
        }
        let current = self.current.as_ref().map(|(f, _, _)| *f);
        let mut dead = Vec::new();
        for (first, seg) in self.segments.iter_mut() {
            let is_current = Some(*first) == current;
            // An empty spare stays current until it is full: deleting it early would have
            // the spare thread write 8 MiB of zeros per megabyte of records.
            let drop_current = seg.size > DROP_EMPTY_CURRENT && !seg.spare;
            if seg.live == 0 && (!is_current || drop_current) {
                if is_current {
                    self.busy = true;
                }
                dead.push(*first);
                continue;
            }
            if !seg.marks.is_empty() {
                let f = match &mut self.ack_file {
                    Some((at, f)) if at == first => f,
                    slot => {
                        let f = OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(seg_path(&self.dir, *first, "ack"))?;
                        &mut slot.insert((*first, f)).1
                    }
                };
                // Not synced: a mark only decides whether a message comes back (redelivered)
                // after a power loss, and written to the OS it survives a crash of Warren.
                io::Write::write_all(f, &seg.marks)?;
                if let Some(page_marks) = &mut seg.page_marks {
                    let (marks, _) = record::read_marks(&seg.marks);
                    for (k, s) in marks {
                        page_marks.apply(k, s);
                    }
                }
                seg.marks.clear();
            }
        }
        for first in dead {
            if self.ack_file.as_ref().is_some_and(|(f, _)| *f == first) {
                self.ack_file = None;
            }
            self.segments.remove(&first);
            if current == Some(first) {
                self.current = None;
            }
            if self.cursor.is_some_and(|(c, _)| c == first) {
                self.cursor = None;
            }
            let _ = fs::remove_file(seg_path(&self.dir, first, "seg"));
            let _ = fs::remove_file(seg_path(&self.dir, first, "ack"));
        }
        Ok(synced)
    }

    /// Reads the paged-out tail onwards from the cursor: messages worth up to `max_bytes`
    /// held in memory (their records and [`HELD_OVERHEAD`] each; at least one). Skips
    /// acknowledged messages, and transient ones from before a restart.
    /// Call after [`flush`](Self::flush).
    pub fn page_in(&mut self, max_bytes: u64, out: &mut Vec<LoggedMessage>) -> io::Result<()> {
        let mut taken = 0u64;
        while let Some((first, offset)) = self.cursor {
            let Some(seg) = self.segments.get(&first) else {
                self.cursor = self.segments.range(first..).next().map(|(f, _)| (*f, 0));
                continue;
            };
            if offset >= seg.size {
                // End of this segment: on to the next one, or wait at the end of the log.
                match self.segments.range(first + 1..).next() {
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
            let want = (max_bytes - taken)
                .clamp(64 << 10, PAGE_READ)
                .min(seg.size - offset);
            let path = seg_path(&self.dir, first, "seg");
            let file = File::open(&path)?;
            let data = read_at(&file, offset, want)?;
            let mut at = 0usize;
            let mut data = Bytes::from(data);
            if record::read_message(&data, 0).is_none() && data.len() >= 4 {
                // One record larger than what was read: read all of it.
                // A corrupt length must not make it allocate more than the segment holds.
                let len = u32::from_be_bytes(data[0..4].try_into().unwrap()) as u64 + 8;
                data = Bytes::from(read_at(&file, offset, len.min(seg.size - offset))?);
            }
            let seg = self.segments.get_mut(&first).unwrap();
            if seg.page_marks.is_none() {
                seg.page_marks = Some(load_marks(&seg_path(&self.dir, first, "ack")));
            }
            let marks = seg.page_marks.as_ref().unwrap();
            while taken < max_bytes
                && let Some(stored) = record::read_message(&data, at)
            {
                at += stored.len;
                // Discarded messages were loaded at recovery (they never wait in the tail).
                let skip = marks.acked.contains(&stored.seq)
                    || marks.discarded.contains_key(&stored.seq)
                    || (seg.recovered && !stored.persistent);
                if !skip {
                    taken += stored.len as u64 + HELD_OVERHEAD;
                    let delivered = seg.maybe_delivered || marks.delivered.contains(&stored.seq);
                    let delivery_count = marks.returns(stored.seq);
                    out.push(LoggedMessage {
                        stored,
                        delivered,
                        delivery_count,
                        discarded: None,
                    });
                }
            }
            if at == 0 {
                warn!(path = %path.display(), offset, "unreadable record in paged-out tail; skipping the rest of the segment");
                at = (seg.size - offset) as usize;
            }
            self.cursor = Some((first, offset + at as u64));
        }
        // At the very end of the log the cursor goes: what is appended next is only part
        // of the tail if it says so.
        if let Some((first, offset)) = self.cursor
            && self.segments.range(first + 1..).next().is_none()
            && self.segments.get(&first).is_none_or(|s| offset >= s.size)
        {
            self.cursor = None;
        }
        Ok(())
    }

    /// Acknowledges every message of the paged-out tail (a purge).
    pub fn drop_tail(&mut self) -> io::Result<()> {
        let mut all = Vec::new();
        self.page_in(u64::MAX, &mut all)?;
        for m in all {
            self.mark(MARK_ACK, m.stored.seq);
        }
        Ok(())
    }

    /// Deletes the whole log (queue deleted).
    pub fn destroy(self) {
        if self.dir_created || self.dir.exists() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    /// Recovers a queue's log after a restart (`clean`: after a graceful stop; otherwise
    /// every message may have been delivered): valid records in seq order (up to
    /// `memory_budget` bytes of them, the rest left on disk behind the paging cursor),
    /// with torn or corrupt tails cut off. Returns the files, the messages loaded, and the
    /// count and bytes of the paged-out rest, and the highest seq seen.
    pub fn recover(dir: PathBuf, memory_budget: u64, clean: bool) -> io::Result<Recovered> {
        let mut files = QueueFiles::new(dir);
        let mut rec = Recovered::default();
        if !files.dir.exists() {
            rec.files = Some(files);
            return Ok(rec);
        }
        files.dir_created = true;
        let mut firsts: Vec<u64> = Vec::new();
        for entry in fs::read_dir(&files.dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(hex) = name.strip_suffix(".seg")
                && let Ok(first) = u64::from_str_radix(hex, 16)
            {
                firsts.push(first);
            }
        }
        firsts.sort_unstable();
        let mut budget = memory_budget;
        for first in firsts {
            let seg_file = seg_path(&files.dir, first, "seg");
            let ack_file = seg_path(&files.dir, first, "ack");
            let marks = load_marks(&ack_file);
            let data = Bytes::from(fs::read(&seg_file)?);
            let mut at = 0usize;
            let mut seg = Segment {
                last_seq: first,
                recovered: true,
                maybe_delivered: !clean,
                ..Default::default()
            };
            while let Some(stored) = record::read_message(&data, at) {
                let offset = at as u64;
                at += stored.len;
                seg.last_seq = seg.last_seq.max(stored.seq);
                rec.max_seq = Some(rec.max_seq.map_or(stored.seq, |m| m.max(stored.seq)));
                if !stored.persistent || marks.acked.contains(&stored.seq) {
                    continue;
                }
                seg.live += 1;
                let discarded = marks.discarded.get(&stored.seq).copied();
                // Discarded ones always come back in memory (the paging cursor skips them):
                // the queue retries them, and they are bounded by its length limits.
                if discarded.is_some()
                    || (rec.tail_count == 0
                        && budget >= held_size(stored.message.body.len() as u64))
                {
                    if discarded.is_none() {
                        budget -= held_size(stored.message.body.len() as u64);
                    }
                    let delivered = !clean || marks.delivered.contains(&stored.seq);
                    let delivery_count = marks.returns(stored.seq);
                    rec.messages.push(LoggedMessage {
                        stored,
                        delivered,
                        delivery_count,
                        discarded,
                    });
                } else {
                    if rec.tail_count == 0 {
                        files.cursor = Some((first, offset));
                    }
                    rec.tail_count += 1;
                    rec.tail_bytes += stored.message.body.len() as u64;
                }
            }
            if at < data.len() {
                // Zeros after the last record: the clean end of a spare (never appended to
                // again after a restart, so its space comes back). Anything else: a crash
                // mid-write or corruption, cut off.
                let torn = data[at..].iter().any(|b| *b != 0);
                if torn {
                    warn!(path = %seg_file.display(), valid = at, size = data.len(), "cutting off a torn or corrupt segment tail");
                    rec.torn += 1;
                }
                let f = OpenOptions::new().write(true).open(&seg_file)?;
                f.set_len(at as u64)?;
                if torn {
                    f.sync_all()?;
                }
            }
            seg.size = at as u64;
            if seg.live == 0 {
                let _ = fs::remove_file(&seg_file);
                let _ = fs::remove_file(&ack_file);
                continue;
            }
            files.segments.insert(first, seg);
        }
        rec.files = Some(files);
        Ok(rec)
    }
}

#[derive(Debug, Default)]
pub struct Recovered {
    pub files: Option<QueueFiles>,
    pub messages: Vec<LoggedMessage>,
    pub tail_count: u64,
    pub tail_bytes: u64,
    pub max_seq: Option<u64>,
    /// Segments whose torn or corrupt tail was cut off (a zero tail is a clean end).
    pub torn: u32,
}

pub(super) fn read_at(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut v = vec![0u8; len as usize];
    let mut done = 0;
    while done < v.len() {
        let n = file.read_at(&mut v[done..], offset + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    v.truncate(done);
    Ok(v)
}

/// Reads an acknowledgement file (cutting off a torn tail) and replays its marks.
fn load_marks(path: &Path) -> Marks {
    let mut out = Marks::default();
    let Ok(mut f) = OpenOptions::new().read(true).write(true).open(path) else {
        return out;
    };
    let mut data = Vec::new();
    if f.read_to_end(&mut data).is_err() {
        return out;
    }
    let (marks, valid) = record::read_marks(&data);
    if valid < data.len() {
        warn!(path = %path.display(), "cutting off a torn acknowledgement file tail");
        let _ = f.set_len(valid as u64);
        let _ = f.seek(SeekFrom::End(0));
    }
    for (k, s) in marks {
        out.apply(k, s);
    }
    out
}

/// Makes a directory's entries (created or removed files) durable.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::message::Message;
    use crate::protocol::{EncodedProperties, ShortStr};

    fn message(seq: u64) -> Message {
        Message {
            exchange: ShortStr::from(""),
            routing_key: ShortStr::from("q"),
            properties: EncodedProperties::default(),
            body: Bytes::from(vec![seq as u8; 10]),
            bcc: Vec::new(),
        }
    }

    fn big_message(seq: u64, len: usize) -> Message {
        Message {
            body: Bytes::from(vec![seq as u8; len]),
            ..message(seq)
        }
    }

    /// A log that has written past [`DROP_EMPTY_CURRENT`] (all acknowledged, so its
    /// current segment was dropped) with a spare ready: its next segment is the spare.
    /// Returns the files, the spares and the next seq.
    fn busy_log(root: &Path) -> (QueueFiles, Arc<Spares>, u64) {
        let _ = fs::remove_dir_all(root);
        let spares = Spares::open(root);
        let mut files = QueueFiles::new(root.join("queues").join("1"));
        files.set_spares(spares.clone());
        let mut seq = 0;
        while seq * (64 << 10) <= DROP_EMPTY_CURRENT {
            files
                .append(seq, true, 0, None, &big_message(seq, 64 << 10), false, true)
                .unwrap();
            files.mark(MARK_ACK, seq);
            seq += 1;
        }
        files.flush(true).unwrap();
        assert!(
            files.busy,
            "the log counts as busy once it dropped a full current"
        );
        assert!(files.segments.is_empty(), "and its segment is gone");
        spares.prepare_now().unwrap();
        (files, spares, seq)
    }

    fn seg_len(files: &QueueFiles, first: u64) -> u64 {
        fs::metadata(seg_path(&files.dir, first, "seg"))
            .unwrap()
            .len()
    }

    /// A busy log writes into a zero-filled spare (the file keeps the spare's length while
    /// the segment's size counts records only); a crash (no clean close) leaves records
    /// then zeros, which recovery reads as the clean end: every message back, nothing
    /// reported torn, and the zeros given back. The paging cursor works within it too.
    #[test]
    fn a_spare_segment_ends_at_its_zeros_after_a_crash() {
        let root = std::env::temp_dir().join(format!("warren-log-spare-{}", std::process::id()));
        let (mut files, spares, first) = busy_log(&root);
        for seq in first..first + 5 {
            files
                .append(seq, true, 0, None, &message(seq), seq >= first + 3, true)
                .unwrap();
        }
        assert!(files.flush(true).unwrap(), "synced");
        let seg = &files.segments[&first];
        assert!(seg.spare, "the new segment is the spare");
        assert_eq!(seg_len(&files, first), SPARE_SIZE, "written in place");
        let logical = seg.size;
        assert!(logical < 1024);
        let mut tail = Vec::new();
        files.page_in(u64::MAX, &mut tail).unwrap();
        let tail: Vec<u64> = tail.iter().map(|m| m.stored.seq).collect();
        assert_eq!(
            tail,
            [first + 3, first + 4],
            "paged-out tail read within the spare"
        );
        let dir = files.dir.clone();
        drop(files); // a crash: nothing more is written
        spares.close();
        let rec = QueueFiles::recover(dir.clone(), u64::MAX, false).unwrap();
        let got: Vec<u64> = rec.messages.iter().map(|m| m.stored.seq).collect();
        assert_eq!(got, (first..first + 5).collect::<Vec<_>>());
        assert_eq!(rec.torn, 0, "a zero tail is a clean end");
        assert_eq!(
            seg_len(rec.files.as_ref().unwrap(), first),
            logical,
            "the zeros are given back"
        );
        let _ = fs::remove_dir_all(&root);
    }

    /// A record torn mid-write inside a spare (its first bytes written, zeros after) is
    /// still a torn tail: cut off and reported; the records before it survive.
    #[test]
    fn a_torn_record_before_a_zero_tail_is_cut_off() {
        let root = std::env::temp_dir().join(format!("warren-log-torn-{}", std::process::id()));
        let (mut files, spares, first) = busy_log(&root);
        for seq in first..first + 3 {
            files
                .append(seq, true, 0, None, &message(seq), false, true)
                .unwrap();
        }
        files.flush(true).unwrap();
        let logical = files.segments[&first].size;
        // The start of one more record, as a crash mid-write would leave it.
        let mut record = Vec::new();
        record::put_message(&mut record, first + 3, true, 0, &message(first + 3));
        let (_, file, _) = files.current.as_ref().unwrap();
        file.write_all_at(&record[..record.len() / 2], logical)
            .unwrap();
        assert_eq!(seg_len(&files, first), SPARE_SIZE);
        let dir = files.dir.clone();
        drop(files);
        spares.close();
        let rec = QueueFiles::recover(dir, u64::MAX, false).unwrap();
        let got: Vec<u64> = rec.messages.iter().map(|m| m.stored.seq).collect();
        assert_eq!(got, (first..first + 3).collect::<Vec<_>>());
        assert_eq!(rec.torn, 1, "the torn record is reported");
        assert_eq!(seg_len(rec.files.as_ref().unwrap(), first), logical);
        let _ = fs::remove_dir_all(&root);
    }

    /// A spare segment rolls at [`SPARE_SIZE`] into the next spare; an empty spare stays
    /// current (its zeros are there to be overwritten) where an ordinary segment past
    /// [`DROP_EMPTY_CURRENT`] would be deleted.
    #[test]
    fn spare_segments_roll_at_their_size_and_stay_while_empty() {
        let root = std::env::temp_dir().join(format!("warren-log-roll-{}", std::process::id()));
        let (mut files, spares, first) = busy_log(&root);
        let mut seq = first;
        while files
            .segments
            .get(&first)
            .is_none_or(|s| s.size < SPARE_SIZE)
        {
            files
                .append(seq, true, 0, None, &big_message(seq, 64 << 10), false, true)
                .unwrap();
            files.mark(MARK_ACK, seq);
            files.flush(true).unwrap();
            assert_eq!(
                files.current.as_ref().map(|c| c.0),
                Some(first),
                "kept while empty"
            );
            seq += 1;
        }
        spares.prepare_now().unwrap();
        files
            .append(seq, true, 0, None, &message(seq), false, true)
            .unwrap();
        files.flush(true).unwrap();
        assert_eq!(files.current.as_ref().map(|c| c.0), Some(seq), "rolled");
        assert!(files.segments[&seq].spare, "into the next spare");
        assert!(
            !files.segments.contains_key(&first),
            "the full, empty one is deleted"
        );
        spares.close();
        let _ = fs::remove_dir_all(&root);
    }

    /// A quorum queue still in the `.seg`/`.ack` format: a discarded mark (4 + reason)
    /// brings the message back among the discards with its reason, whatever the budget,
    /// and the final discard (8) that follows its target's copy ends it, as an
    /// acknowledgement does.
    #[test]
    fn discarded_marks_come_back_as_discards_until_discarded_for_good() {
        let dir = std::env::temp_dir().join(format!("warren-log-discards-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut files = QueueFiles::new(dir.clone());
        for seq in 0..4 {
            files
                .append(seq, true, 0, None, &message(seq), false, true)
                .unwrap();
        }
        files.mark(MARK_DISCARDED + 2, 1);
        files.mark(MARK_DISCARDED + 3, 2);
        files.mark(MARK_DISCARD, 2);
        files.mark(MARK_ACK, 3);
        files.flush(true).unwrap();
        drop(files);
        let rec = QueueFiles::recover(dir.clone(), 0, true).unwrap();
        let got: Vec<(u64, Option<u8>)> = rec
            .messages
            .iter()
            .map(|m| (m.stored.seq, m.discarded))
            .collect();
        assert_eq!(got, [(1, Some(2))], "the discard, loaded past the budget");
        assert_eq!(rec.tail_count, 1, "seq 0 waits in the tail");
        let mut tail = Vec::new();
        rec.files.unwrap().page_in(u64::MAX, &mut tail).unwrap();
        let tail: Vec<u64> = tail.iter().map(|m| m.stored.seq).collect();
        assert_eq!(tail, [0], "the paging cursor skips the discard");
        let _ = fs::remove_dir_all(&dir);
    }

    /// A paged-out tail of transient messages is written but never fdatasynced: nothing in
    /// it outlives a restart. The first persistent message makes every later flush sync.
    #[test]
    fn transient_only_logs_are_never_synced() {
        let dir = std::env::temp_dir().join(format!("warren-log-transient-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut files = QueueFiles::new(dir.clone());
        for seq in 0..3 {
            files
                .append(seq, false, 0, None, &message(seq), true, true)
                .unwrap();
            assert!(!files.flush(true).unwrap(), "transient seq {seq} synced");
        }
        files
            .append(3, true, 0, None, &message(3), true, true)
            .unwrap();
        assert!(files.flush(true).unwrap(), "a persistent message is synced");
        files
            .append(4, false, 0, None, &message(4), true, true)
            .unwrap();
        assert!(
            files.flush(true).unwrap(),
            "so is what follows it in the log"
        );
        let mut tail = Vec::new();
        files.page_in(u64::MAX, &mut tail).unwrap();
        let tail: Vec<u64> = tail.iter().map(|m| m.stored.seq).collect();
        assert_eq!(tail, [0, 1, 2, 3, 4], "every record was written");
        let _ = fs::remove_dir_all(&dir);
    }
}
