//! Segment files and recovery.
//!
//! A stream's directory holds `{first offset:020}.segment` files: the 8-byte header
//! [`SEGMENT_HEADER`] and chunks back to back. Only the last segment is ever written to;
//! a segment is fdatasynced before the next one is started, so only the last one can end
//! in a torn chunk.
//!
//! Recovery walks every segment's chunk headers (one 48-byte read per chunk) to rebuild the
//! index; it reads the entries and checks their CRC in the last segment, where a crash can
//! have left a torn or corrupt tail, which it cuts off. Tracking (publisher sequences,
//! consumer offsets) is replayed from the last segment that starts with a tracking snapshot
//! onwards: a snapshot holds everything written before it, and a segment started without
//! one had nothing to carry over.

use super::chunk::{
    self, CHUNK_TRACKING_DELTA, CHUNK_TRACKING_SNAPSHOT, CHUNK_USER, ChunkHeader, HEADER_LEN,
    TRACK_OFFSET, TRACK_SEQUENCE,
};
use super::index::{ChunkEntry, Index, SEGMENT_HEADER, Segment, segment_path};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::warn;

/// Publisher sequences (reference → (chunk that last updated it, last publishing id)) and
/// stored consumer offsets (reference → offset).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TrackingState {
    pub sequences: HashMap<Arc<str>, (u64, u64)>,
    pub offsets: HashMap<Arc<str>, u64>,
}

impl TrackingState {
    pub fn is_empty(&self) -> bool {
        self.sequences.is_empty() && self.offsets.is_empty()
    }

    /// Applies tracking entries read back (a trailer of chunk `chunk_id`, a delta, or a
    /// snapshot).
    fn apply(&mut self, entries: &[chunk::Tracking<'_>], chunk_id: u64) {
        for t in entries {
            let Ok(id) = std::str::from_utf8(t.id) else {
                continue;
            };
            match t.kind {
                TRACK_SEQUENCE => {
                    self.sequences
                        .insert(id.into(), (t.chunk_id.unwrap_or(chunk_id), t.value));
                }
                TRACK_OFFSET => {
                    self.offsets.insert(id.into(), t.value);
                }
                _ => {}
            }
        }
    }
}

/// What recovery found: the index, the tracking state, the next offset, and the last
/// segment's file opened for writing with its valid length.
#[derive(Debug)]
pub struct Recovered {
    pub index: Index,
    pub tracking: TrackingState,
    pub next: u64,
    pub active: Option<(u64, Arc<File>, u64)>,
}

impl Recovered {
    /// An empty stream in `dir`.
    pub fn empty(dir: PathBuf) -> Recovered {
        Recovered {
            index: Index::new(dir),
            tracking: TrackingState::default(),
            next: 0,
            active: None,
        }
    }
}

/// One chunk found in a segment.
struct Found {
    header: ChunkHeader,
    pos: u64,
}

/// Reads a segment's chunks. `verify`: read every chunk's entries and check their CRC
/// (and that its trailer parses). Returns the chunks and the length of the valid prefix.
fn scan(file: &File, len: u64, verify: bool) -> io::Result<(Vec<Found>, u64)> {
    let mut out = Vec::new();
    let mut pos = SEGMENT_HEADER.len() as u64;
    let mut head = [0u8; HEADER_LEN];
    let mut body = Vec::new();
    while pos + HEADER_LEN as u64 <= len {
        file.read_exact_at(&mut head, pos)?;
        let Ok(h) = ChunkHeader::decode(&head) else {
            break;
        };
        if pos + h.stored_len() > len {
            break;
        }
        if verify {
            body.resize(h.data_len as usize + h.trailer_len as usize, 0);
            file.read_exact_at(&mut body, pos + HEADER_LEN as u64)?;
            let (data, trailer) = body.split_at(h.data_len as usize);
            if crc32fast::hash(data) != h.crc {
                break;
            }
            if chunk::parse_tracking(trailer, false).is_none() {
                break;
            }
        }
        out.push(Found { header: h, pos });
        pos += h.stored_len();
    }
    Ok((out, pos))
}

/// Reads the tracking a chunk carries (trailer, delta or snapshot) into `t`.
fn replay(file: &File, f: &Found, t: &mut TrackingState) -> io::Result<()> {
    let h = &f.header;
    let (at, len, snapshot) = match h.chunk_type {
        CHUNK_USER if h.trailer_len > 0 => (
            f.pos + HEADER_LEN as u64 + h.data_len as u64,
            h.trailer_len,
            false,
        ),
        CHUNK_TRACKING_DELTA | CHUNK_TRACKING_SNAPSHOT => (
            f.pos + HEADER_LEN as u64,
            h.data_len,
            h.chunk_type == CHUNK_TRACKING_SNAPSHOT,
        ),
        _ => return Ok(()),
    };
    let mut b = vec![0u8; len as usize];
    file.read_exact_at(&mut b, at)?;
    let b = if h.chunk_type == CHUNK_USER {
        &b[..]
    } else {
        // One simple entry holds the tracking data.
        match b.get(4..) {
            Some(rest) if b[0] & 0x80 == 0 => rest,
            _ => return Ok(()),
        }
    };
    if let Some(entries) = chunk::parse_tracking(b, snapshot) {
        if snapshot {
            *t = TrackingState::default();
        }
        t.apply(&entries, h.first_offset);
    }
    Ok(())
}

/// Recovers a stream's directory (absent: an empty stream).
pub fn recover(dir: &Path) -> io::Result<Recovered> {
    let mut rec = Recovered::empty(dir.to_path_buf());
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(rec),
        Err(e) => return Err(e),
    };
    let mut firsts = Vec::new();
    for e in entries {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_suffix(".segment")
            && let Ok(first) = n.parse::<u64>()
        {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    let mut found: Vec<(u64, File, Vec<Found>, u64)> = Vec::new();
    for (i, &first) in firsts.iter().enumerate() {
        let path = segment_path(dir, first);
        let last = i + 1 == firsts.len();
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let len = file.metadata()?.len();
        let mut header = [0u8; 8];
        if len < 8 || file.read_exact_at(&mut header, 0).is_err() || header != SEGMENT_HEADER {
            // Torn while being created (only the last one can be): nothing in it.
            warn!(path = %path.display(), "removing a stream segment without a valid header");
            drop(file);
            fs::remove_file(&path)?;
            continue;
        }
        let (chunks, valid) = scan(&file, len, last)?;
        if valid < len {
            warn!(path = %path.display(), valid, size = len, "cutting off a torn or corrupt stream segment tail");
            file.set_len(valid)?;
            file.sync_all()?;
        }
        found.push((first, file, chunks, valid));
    }
    // Tracking: from the last segment that starts with a snapshot.
    let from = found
        .iter()
        .rposition(|(_, _, c, _)| {
            c.first()
                .is_some_and(|f| f.header.chunk_type == CHUNK_TRACKING_SNAPSHOT)
        })
        .unwrap_or(0);
    let count = found.len();
    for (i, (first, file, chunks, valid)) in found.into_iter().enumerate() {
        rec.next = rec.next.max(first);
        let mut entries = Vec::new();
        for f in &chunks {
            let h = &f.header;
            rec.next = rec.next.max(h.first_offset + h.num_records as u64);
            if i >= from {
                replay(&file, f, &mut rec.tracking)?;
            }
            if h.chunk_type == CHUNK_USER && h.num_records > 0 {
                entries.push(ChunkEntry {
                    first_offset: h.first_offset,
                    pos: f.pos,
                    timestamp: h.timestamp,
                    num_records: h.num_records,
                    data_len: h.data_len,
                    num_entries: h.num_entries,
                });
            }
        }
        let file = Arc::new(file);
        rec.index.disk_bytes += valid;
        rec.index.segments.push_back(Segment {
            first,
            file: Arc::downgrade(&file),
            size: valid,
            chunks: entries,
        });
        if i + 1 == count {
            rec.active = Some((first, file, valid));
        }
    }
    rec.index.committed = rec.next;
    Ok(rec)
}
