//! The store's writer thread's side of stream logs: one writer batch of a stream becomes
//! one chunk (or a few, past [`MAX_CHUNK_ENTRIES`] / [`MAX_CHUNK_DATA`]), written to the
//! active segment, fdatasynced, then put in the index and announced as committed.

use super::chunk::{
    self, CHUNK_TRACKING_DELTA, CHUNK_TRACKING_SNAPSHOT, CHUNK_USER, ChunkHeader, EPOCH, Entry,
    HEADER_LEN, TRACK_OFFSET, TRACK_SEQUENCE,
};
use super::index::{ChunkEntry, SEGMENT_HEADER, Segment, segment_path};
use super::segment::TrackingState;
use super::{StreamLog, now_ms};
use crate::store::log::sync_dir;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::error;

/// Most entries in one chunk (its entry count has 16 bits).
pub const MAX_CHUNK_ENTRIES: usize = u16::MAX as usize;
/// A chunk is closed once its entries pass this many bytes (one larger entry still gets a
/// chunk of its own).
pub const MAX_CHUNK_DATA: usize = 4 << 20;
/// Publisher sequences a tracking snapshot keeps, the most recently updated first
/// (osiris's `max_sequences`).
pub const MAX_SNAPSHOT_SEQUENCES: usize = 255;

/// What the writer thread keeps of one stream: the active segment and the tracking state
/// as written (what the next segment's snapshot records).
#[derive(Debug)]
pub struct StreamWriter {
    pub dir: PathBuf,
    /// The segment being written: its first offset, file, bytes written, and whether a
    /// user chunk is in it (a segment never rolls before it holds one, so names are unique).
    pub active: Option<Active>,
    pub tracking: TrackingState,
    /// The offset after the last user chunk written.
    pub next: u64,
    /// Segments started and not yet in the index (it gets them with their first
    /// committed chunks, so the segment being written is the index's last one only once
    /// what is in it is durable).
    unindexed: Vec<Segment>,
}

#[derive(Debug)]
pub struct Active {
    pub first: u64,
    pub file: Arc<File>,
    pub size: u64,
    pub has_user_chunk: bool,
}

impl StreamWriter {
    pub fn new(
        dir: PathBuf,
        tracking: TrackingState,
        next: u64,
        active: Option<Active>,
    ) -> StreamWriter {
        StreamWriter {
            dir,
            active,
            tracking,
            next,
            unindexed: Vec::new(),
        }
    }
}

/// An entry handed to the writer: its first offset, the entry, and publisher reference
/// and publishing id.
type PendingEntry = (u64, Entry, Option<(Arc<str>, u64)>);

/// One stream's share of a writer batch.
pub struct StreamBatch {
    stream: Arc<StreamLog>,
    /// In offset order.
    entries: Vec<PendingEntry>,
    /// Consumer offsets stored in this batch (latest last).
    offsets: Vec<(Arc<str>, u64)>,
}

/// Every stream's share of one writer batch.
#[derive(Default)]
pub struct Batches {
    batches: Vec<StreamBatch>,
    by_id: HashMap<u64, usize>,
    /// Chunk bytes not yet written (one buffer for every stream: written out past
    /// [`FLUSH_BYTES`], so its size does not grow with batches).
    buf: Vec<u8>,
}

/// Buffered chunk bytes are written out past this size.
const FLUSH_BYTES: usize = 4 << 20;

impl Batches {
    fn of(&mut self, stream: Arc<StreamLog>) -> &mut StreamBatch {
        let n = self.batches.len();
        let i = *self.by_id.entry(stream.id).or_insert(n);
        if i == n {
            self.batches.push(StreamBatch {
                stream,
                entries: Vec::new(),
                offsets: Vec::new(),
            });
        }
        &mut self.batches[i]
    }

    pub fn append(
        &mut self,
        stream: Arc<StreamLog>,
        offset: u64,
        entry: Entry,
        writer: Option<(Arc<str>, u64)>,
    ) {
        self.of(stream).entries.push((offset, entry, writer));
    }

    pub fn store_offset(&mut self, stream: Arc<StreamLog>, reference: Arc<str>, offset: u64) {
        self.of(stream).offsets.push((reference, offset));
    }

    /// Deletes a stream's files, dropping what this batch had for it.
    pub fn delete(&mut self, stream: Arc<StreamLog>) {
        if let Some(i) = self.by_id.get(&stream.id) {
            let b = &mut self.batches[*i];
            b.entries.clear();
            b.offsets.clear();
        }
        stream.destroy();
    }

    /// Writes every stream's chunks and syncs them; returns the fsyncs made.
    pub fn write(&mut self, sync: bool) -> u64 {
        let mut fsyncs = 0;
        let now = now_ms();
        for b in self.batches.drain(..) {
            if b.entries.is_empty() && b.offsets.is_empty() {
                continue;
            }
            match write_stream(&b, &mut self.buf, sync, now) {
                Ok(n) => fsyncs += n,
                Err(e) => {
                    self.buf.clear();
                    error!(stream = b.stream.id, error = %e, "cannot write a stream; check free disk space")
                }
            }
        }
        self.by_id.clear();
        fsyncs
    }
}

/// A segment written to in a batch: first offset, file, bytes written, not yet synced.
type Written = (u64, Arc<File>, u64, bool);

/// A chunk placed in the buffer, committed to the index once synced.
struct Placed {
    segment: u64,
    entry: ChunkEntry,
}

/// Writes one stream's batch: chunks, syncs, then the index and the committed offset.
fn write_stream(b: &StreamBatch, buf: &mut Vec<u8>, sync: bool, now: i64) -> io::Result<u64> {
    let stream = &b.stream;
    let mut w = stream.writer.lock().unwrap();
    let w = &mut *w;
    if stream.is_deleted() {
        return Ok(0);
    }
    let max_segment = stream.retention().max_segment_bytes;
    // Segments written to in this batch: (first offset, file, size written, not synced).
    let mut to_sync: Vec<Written> = Vec::new();
    let mut placed: Vec<Placed> = Vec::new();
    let mut rolled = false;
    let mut fsyncs = 0;
    let mut trailer = Vec::new();
    let mut i = 0;
    while i < b.entries.len() || (i == 0 && b.entries.is_empty()) {
        // The chunk's extent: entries [i, j).
        let mut j = i;
        let mut data_len = 0usize;
        while j < b.entries.len()
            && j - i < MAX_CHUNK_ENTRIES
            && (j == i || data_len + b.entries[j].1.stored_len() <= MAX_CHUNK_DATA)
        {
            data_len += b.entries[j].1.stored_len();
            j += 1;
        }
        // Its trailer: the last publishing id of each publisher in it, and (in the last
        // chunk) the consumer offsets stored in the batch.
        trailer.clear();
        let mut writers: Vec<(&Arc<str>, u64)> = Vec::new();
        for (_, _, wr) in &b.entries[i..j] {
            if let Some((r, seq)) = wr {
                match writers.iter_mut().find(|(w, _)| *w == r) {
                    Some(w) => w.1 = *seq,
                    None => writers.push((r, *seq)),
                }
            }
        }
        for (r, seq) in &writers {
            chunk::put_tracking(&mut trailer, TRACK_SEQUENCE, r, *seq);
        }
        let last = j == b.entries.len();
        if last {
            for (k, (r, o)) in b.offsets.iter().enumerate() {
                // Only the latest of each reference.
                if !b.offsets[k + 1..].iter().any(|(r2, _)| r2 == r) {
                    chunk::put_tracking(&mut trailer, TRACK_OFFSET, r, *o);
                }
            }
        }
        let (chunk_type, first_offset) = if j > i {
            (CHUNK_USER, b.entries[i].0)
        } else {
            // Offsets stored with nothing appended: a tracking delta chunk, at the next offset.
            (CHUNK_TRACKING_DELTA, w.next)
        };
        let stored = if chunk_type == CHUNK_USER {
            HEADER_LEN + data_len + trailer.len()
        } else {
            HEADER_LEN + 4 + trailer.len()
        } as u64;
        // Roll when this chunk would take the segment past its size, or start one.
        let roll = match &w.active {
            None => true,
            Some(a) => {
                a.has_user_chunk
                    && chunk_type == CHUNK_USER
                    && a.size + buf.len() as u64 + stored > max_segment
            }
        };
        if roll {
            flush(w, buf, &mut to_sync)?;
            // The segment is complete on disk before the next one gets anything: only the
            // last segment can end torn.
            if sync && let Some(t) = to_sync.last_mut().filter(|t| t.3) {
                t.1.sync_data()?;
                t.3 = false;
                fsyncs += 1;
            }
            start_segment(w, buf, first_offset, now)?;
            rolled = true;
        }
        let pos = w.active.as_ref().unwrap().size + buf.len() as u64;
        let start = buf.len();
        buf.resize(start + HEADER_LEN, 0);
        let (num_entries, num_records) = if chunk_type == CHUNK_USER {
            let mut records = 0u32;
            for (_, e, _) in &b.entries[i..j] {
                e.put(buf);
                records += e.records();
            }
            buf.extend_from_slice(&trailer);
            ((j - i) as u16, records)
        } else {
            chunk::put_simple_entry(buf, &trailer);
            (1, 0)
        };
        let (data_len, trailer_len) = if chunk_type == CHUNK_USER {
            (data_len, trailer.len())
        } else {
            (4 + trailer.len(), 0)
        };
        let data = &buf[start + HEADER_LEN..start + HEADER_LEN + data_len];
        let header = ChunkHeader {
            chunk_type,
            num_entries,
            num_records,
            timestamp: now,
            epoch: EPOCH,
            first_offset,
            crc: crc32fast::hash(data),
            data_len: data_len as u32,
            trailer_len: trailer_len as u32,
        };
        buf[start..start + HEADER_LEN].copy_from_slice(&header.encode());
        let a = w.active.as_mut().unwrap();
        if chunk_type == CHUNK_USER {
            a.has_user_chunk = true;
            w.next = first_offset + num_records as u64;
            placed.push(Placed {
                segment: a.first,
                entry: ChunkEntry {
                    first_offset,
                    pos,
                    timestamp: now,
                    num_records,
                    data_len: data_len as u32,
                    num_entries,
                },
            });
        }
        for (r, seq) in writers {
            w.tracking.sequences.insert(r.clone(), (first_offset, seq));
        }
        if last {
            for (r, o) in &b.offsets {
                w.tracking.offsets.insert(r.clone(), *o);
            }
        }
        if buf.len() >= FLUSH_BYTES {
            flush(w, buf, &mut to_sync)?;
        }
        if j == i {
            break;
        }
        i = j;
    }
    flush(w, buf, &mut to_sync)?;
    if sync {
        for (_, f, _, dirty) in &to_sync {
            if *dirty {
                f.sync_data()?;
                fsyncs += 1;
            }
        }
        if rolled {
            sync_dir(&w.dir);
        }
    }
    // Durable: into the index, then tell the readers.
    let committed = {
        let mut index = stream.index.lock().unwrap();
        if index.deleted {
            return Ok(fsyncs);
        }
        index.segments.extend(w.unindexed.drain(..));
        for p in placed {
            // Its segment is in the index (registered above, or in an earlier batch).
            if let Some(seg) = index
                .segments
                .iter_mut()
                .rev()
                .find(|s| s.first == p.segment)
            {
                seg.chunks.push(p.entry);
            }
            index.committed = index.committed.max(p.entry.end());
        }
        for (first, _, size, _) in &to_sync {
            if let Some(s) = index.segments.iter_mut().rev().find(|s| s.first == *first) {
                s.size = *size;
            }
        }
        index.disk_bytes = index.segments.iter().map(|s| s.size).sum();
        index.committed
    };
    stream.committed.send_if_modified(|c| {
        let changed = *c != committed;
        *c = committed;
        changed
    });
    if rolled {
        stream.enforce_retention_at(now);
    }
    Ok(fsyncs)
}

/// Writes the buffered chunks to the active segment (to be synced with `to_sync`).
fn flush(w: &mut StreamWriter, buf: &mut Vec<u8>, to_sync: &mut Vec<Written>) -> io::Result<()> {
    let Some(a) = &mut w.active else {
        return Ok(());
    };
    if !buf.is_empty() {
        a.file.write_all_at(buf, a.size)?;
        a.size += buf.len() as u64;
        buf.clear();
        match to_sync.iter_mut().find(|t| t.0 == a.first) {
            Some(t) => {
                t.2 = a.size;
                t.3 = true;
            }
            None => to_sync.push((a.first, a.file.clone(), a.size, true)),
        }
    }
    Ok(())
}

/// Starts a segment at `first`: its header, and a snapshot of the tracking state when
/// there is any (so deleting older segments loses none of it), into `buf` (empty).
fn start_segment(w: &mut StreamWriter, buf: &mut Vec<u8>, first: u64, now: i64) -> io::Result<()> {
    if !w.dir.exists() {
        // A new stream: its directory (and the streams directory) made durable too.
        std::fs::create_dir_all(&w.dir)?;
        if let Some(streams) = w.dir.parent() {
            sync_dir(streams);
            if let Some(root) = streams.parent() {
                sync_dir(root);
            }
        }
    }
    let path = segment_path(&w.dir, first);
    let file = Arc::new(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?,
    );
    buf.clear();
    buf.extend_from_slice(&SEGMENT_HEADER);
    if !w.tracking.is_empty() {
        trim_sequences(&mut w.tracking);
        let mut snap = Vec::new();
        for (r, (chunk_id, seq)) in &w.tracking.sequences {
            chunk::put_snapshot_sequence(&mut snap, r, *chunk_id, *seq);
        }
        for (r, o) in &w.tracking.offsets {
            chunk::put_tracking(&mut snap, TRACK_OFFSET, r, *o);
        }
        let start = buf.len();
        buf.resize(start + HEADER_LEN, 0);
        chunk::put_simple_entry(buf, &snap);
        let data = &buf[start + HEADER_LEN..];
        let header = ChunkHeader {
            chunk_type: CHUNK_TRACKING_SNAPSHOT,
            num_entries: 1,
            num_records: 0,
            timestamp: now,
            epoch: EPOCH,
            first_offset: first,
            crc: crc32fast::hash(data),
            data_len: data.len() as u32,
            trailer_len: 0,
        };
        buf[start..start + HEADER_LEN].copy_from_slice(&header.encode());
    }
    w.unindexed.push(Segment {
        first,
        file: Arc::downgrade(&file),
        size: 0,
        chunks: Vec::new(),
    });
    w.active = Some(Active {
        first,
        file,
        size: 0,
        has_user_chunk: false,
    });
    Ok(())
}

/// Keeps the [`MAX_SNAPSHOT_SEQUENCES`] most recently updated publishers (osiris's rule).
fn trim_sequences(t: &mut TrackingState) {
    if t.sequences.len() <= MAX_SNAPSHOT_SEQUENCES {
        return;
    }
    let mut by_chunk: Vec<(u64, Arc<str>)> = t
        .sequences
        .iter()
        .map(|(r, (c, _))| (*c, r.clone()))
        .collect();
    by_chunk.sort_unstable_by(|a, b| b.cmp(a));
    for (_, r) in &by_chunk[MAX_SNAPSHOT_SEQUENCES..] {
        t.sequences.remove(r);
    }
}
