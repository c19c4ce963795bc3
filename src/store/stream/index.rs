//! The in-memory index of a stream's committed user chunks, segment by segment.
//!
//! Memory grows with chunks, not messages: one [`ChunkEntry`] (40 bytes) per user chunk,
//! and a chunk holds every entry of one writer batch (up to 65 535 entries and a few MB).
//! A stream written in large batches costs a few kB of index per GB; one written a
//! message at a time (a chunk per message) costs 40 bytes per message, which is what
//! osiris's on-disk index costs too.

use super::{OffsetSpec, Retention};
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

/// Bytes of a segment file's header: "OSIL" and version 1 (osiris's log header).
pub const SEGMENT_HEADER: [u8; 8] = *b"OSIL\x00\x00\x00\x01";

/// A segment's file name: its first offset, zero-padded (osiris's naming).
pub fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.segment"))
}

/// One committed user chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkEntry {
    pub first_offset: u64,
    /// Position of the chunk header in the segment file.
    pub pos: u64,
    pub timestamp: i64,
    pub num_records: u32,
    pub data_len: u32,
    pub num_entries: u16,
}

impl ChunkEntry {
    pub fn end(&self) -> u64 {
        self.first_offset + self.num_records as u64
    }
}

#[derive(Debug)]
pub struct Segment {
    /// The offset in its name: every user chunk in it starts at or after it, and every one
    /// in the segments before it starts before it.
    pub first: u64,
    /// The open file while anyone holds it (the writer holds the active one); reopened on
    /// demand otherwise, so a stream with many segments holds few descriptors.
    pub file: Weak<File>,
    /// Bytes of the file that are durable (header, chunks of every type).
    pub size: u64,
    pub chunks: Vec<ChunkEntry>,
}

#[derive(Debug)]
pub struct Index {
    pub dir: PathBuf,
    /// Oldest first; the last one is the segment being written.
    pub segments: VecDeque<Segment>,
    /// Every offset below it is durable and readable.
    pub committed: u64,
    pub disk_bytes: u64,
    /// The stream was deleted: nothing is readable any more.
    pub deleted: bool,
}

impl Index {
    pub fn new(dir: PathBuf) -> Index {
        Index {
            dir,
            segments: VecDeque::new(),
            committed: 0,
            disk_bytes: 0,
            deleted: false,
        }
    }

    /// The first offset still kept: the first chunk's, or the committed end when no chunk
    /// is left.
    pub fn first_offset(&self) -> u64 {
        self.segments
            .iter()
            .find_map(|s| s.chunks.first())
            .map_or(self.committed, |c| c.first_offset)
    }

    /// The first chunk holding offsets >= `position`, as (segment index, chunk index).
    pub fn locate(&self, position: u64) -> Option<(usize, usize)> {
        let start = self
            .segments
            .partition_point(|s| s.first <= position)
            .saturating_sub(1);
        for (si, seg) in self.segments.iter().enumerate().skip(start) {
            let ci = seg.chunks.partition_point(|c| c.end() <= position);
            if ci < seg.chunks.len() {
                return Some((si, ci));
            }
        }
        None
    }

    pub fn chunk(&self, at: (usize, usize)) -> ChunkEntry {
        self.segments[at.0].chunks[at.1]
    }

    /// The segment's file: open already, or reopened (read-only) for a reader.
    pub fn file(&mut self, seg: usize) -> io::Result<Arc<File>> {
        let s = &mut self.segments[seg];
        if let Some(f) = s.file.upgrade() {
            return Ok(f);
        }
        let f = Arc::new(File::open(segment_path(&self.dir, s.first))?);
        s.file = Arc::downgrade(&f);
        Ok(f)
    }

    /// RabbitMQ's rules for where a new reader starts; `next` is the next offset to be
    /// assigned.
    pub fn resolve(&self, spec: OffsetSpec, next: u64) -> u64 {
        let first = self.first_offset();
        match spec {
            OffsetSpec::First => first,
            OffsetSpec::Next => next,
            OffsetSpec::Last => self
                .segments
                .iter()
                .rev()
                .find_map(|s| s.chunks.last())
                .map_or(next, |c| c.first_offset),
            OffsetSpec::Offset(n) => n.clamp(first, next.max(first)),
            OffsetSpec::Timestamp(t) => self
                .segments
                .iter()
                .filter(|s| s.chunks.last().is_some_and(|c| c.timestamp >= t))
                .find_map(|s| s.chunks.iter().find(|c| c.timestamp >= t))
                .map_or(next, |c| c.first_offset),
        }
    }

    /// Takes the oldest segments out of the index while the stream is over its retention
    /// (`now`: unix ms), never the last (active) one; returns their paths to unlink. Readers
    /// holding their files keep reading them.
    pub fn expire(&mut self, r: &Retention, now: i64) -> Vec<PathBuf> {
        let mut gone = Vec::new();
        while self.segments.len() > 1 {
            let oldest = &self.segments[0];
            let over_bytes = r.max_bytes.is_some_and(|m| self.disk_bytes > m);
            let too_old = r.max_age.is_some_and(|age| {
                let limit = now.saturating_sub(age.as_millis().min(i64::MAX as u128) as i64);
                oldest.chunks.last().is_none_or(|c| c.timestamp < limit)
            });
            if !over_bytes && !too_old {
                break;
            }
            let s = self.segments.pop_front().unwrap();
            self.disk_bytes = self.disk_bytes.saturating_sub(s.size);
            gone.push(segment_path(&self.dir, s.first));
        }
        gone
    }
}
