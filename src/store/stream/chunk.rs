//! osiris's chunk format (RabbitMQ's stream storage, osiris 1.3 as RabbitMQ 3.10 ships it).
//!
//! A chunk is a 48-byte header, `data_len` bytes of entries and `trailer_len` bytes of
//! trailer. All integers are big-endian.
//!
//! ```text
//! MagicVersion u8 (0x50: magic 5, version 0)   ChunkType u8 (0 user, 1 tracking delta,
//! NumEntries u16   NumRecords u32   Timestamp i64 (unix ms)   Epoch u64                 2 snapshot)
//! ChunkFirstOffset u64   DataCrc u32 (crc32 of the entries)   DataLength u32
//! TrailerLength u32   Reserved u32
//! ```
//!
//! Entries: a simple entry is `0b0` + a 31-bit size + the bytes (one record); a sub-batch
//! entry is `0b1`, a 3-bit compression type, 4 reserved bits, NumRecords u16,
//! UncompressedLength u32, Length u32 and the (possibly compressed) records.
//!
//! Tracking data (a user chunk's trailer, a delta chunk's single entry) is a list of
//! `Type u8 (0 publisher sequence, 1 consumer offset), IdSize u8, Id, Value u64`; a
//! snapshot chunk's single entry holds sequences as `0, IdSize, Id, ChunkId u64, Seq u64`
//! and offsets as `1, IdSize, Id, Offset u64`.
//!
//! How Warren uses it: user chunks carry the publisher sequences (deduplication) and
//! consumer offsets of their batch in their trailer, as osiris does, so a chunk and the
//! sequences that say it was written become durable together. The bytes a stream-protocol
//! Deliver carries are the header and the entries, without the trailer (what RabbitMQ 3.10
//! sends with its default `user_data` chunk selector; the header still states the trailer's
//! length). Tracking chunks (delta, snapshot) are never delivered: unlike osiris's, they
//! claim no offset (`NumRecords` 0, `ChunkFirstOffset` = the next user offset), so the
//! offsets users see are dense.

use bytes::{BufMut, Bytes};
use thiserror::Error;

/// Bytes of a chunk header.
pub const HEADER_LEN: usize = 48;
/// Magic 5, version 0.
pub const MAGIC_VERSION: u8 = 0x50;
pub const CHUNK_USER: u8 = 0;
pub const CHUNK_TRACKING_DELTA: u8 = 1;
pub const CHUNK_TRACKING_SNAPSHOT: u8 = 2;
/// The epoch every chunk is written in (a single node: leadership never changes).
pub const EPOCH: u64 = 1;
/// Largest simple entry: its size has 31 bits.
pub const MAX_ENTRY_LEN: usize = (1 << 31) - 1;

pub const TRACK_SEQUENCE: u8 = 0;
pub const TRACK_OFFSET: u8 = 1;
/// Longest tracking id (publisher or consumer reference): its size is one byte.
pub const MAX_REFERENCE_LEN: usize = 255;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("chunk header truncated")]
    Truncated,
    #[error("bad chunk magic/version {0:#04x}")]
    BadMagic(u8),
    #[error("unknown chunk type {0}")]
    BadType(u8),
}

/// A decoded chunk header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    pub chunk_type: u8,
    pub num_entries: u16,
    pub num_records: u32,
    pub timestamp: i64,
    pub epoch: u64,
    pub first_offset: u64,
    pub crc: u32,
    pub data_len: u32,
    pub trailer_len: u32,
}

impl ChunkHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        let mut w = &mut b[..];
        w.put_u8(MAGIC_VERSION);
        w.put_u8(self.chunk_type);
        w.put_u16(self.num_entries);
        w.put_u32(self.num_records);
        w.put_i64(self.timestamp);
        w.put_u64(self.epoch);
        w.put_u64(self.first_offset);
        w.put_u32(self.crc);
        w.put_u32(self.data_len);
        w.put_u32(self.trailer_len);
        w.put_u32(0);
        b
    }

    pub fn decode(b: &[u8]) -> Result<ChunkHeader, ChunkError> {
        let Some(b) = b.get(..HEADER_LEN) else {
            return Err(ChunkError::Truncated);
        };
        if b[0] != MAGIC_VERSION {
            return Err(ChunkError::BadMagic(b[0]));
        }
        if b[1] > CHUNK_TRACKING_SNAPSHOT {
            return Err(ChunkError::BadType(b[1]));
        }
        let u32_at = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().unwrap());
        Ok(ChunkHeader {
            chunk_type: b[1],
            num_entries: u16::from_be_bytes([b[2], b[3]]),
            num_records: u32_at(4),
            timestamp: u64_at(8) as i64,
            epoch: u64_at(16),
            first_offset: u64_at(24),
            crc: u32_at(32),
            data_len: u32_at(36),
            trailer_len: u32_at(40),
        })
    }

    /// Header, entries and trailer: the chunk's whole extent in its segment.
    pub fn stored_len(&self) -> u64 {
        HEADER_LEN as u64 + self.data_len as u64 + self.trailer_len as u64
    }
}

/// Appends a simple entry (size prefix and bytes).
pub fn put_simple_entry(out: &mut Vec<u8>, entry: &[u8]) {
    debug_assert!(entry.len() <= MAX_ENTRY_LEN);
    out.put_u32(entry.len() as u32);
    out.extend_from_slice(entry);
}

/// Bytes of a sub-batch entry's header: flags, NumRecords u16, UncompressedLength u32,
/// Length u32.
pub const SUB_BATCH_HEADER_LEN: usize = 11;

/// One entry of a user chunk, as a stream-protocol publisher sent it and as osiris stores
/// it: the server never looks inside a sub-batch (clients decompress), it only counts its
/// records in the chunk's record count and offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// One record (an AMQP 1.0 encoded message).
    Simple(Bytes),
    /// A sub-entry batch: `records` records, `data` holds them as simple entries,
    /// compressed with `compression` (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd; 3 bits)
    /// from `uncompressed_len` bytes.
    SubBatch {
        compression: u8,
        records: u16,
        uncompressed_len: u32,
        data: Bytes,
    },
}

impl Entry {
    /// Offsets it takes.
    pub fn records(&self) -> u32 {
        match self {
            Entry::Simple(_) => 1,
            Entry::SubBatch { records, .. } => u32::from(*records),
        }
    }

    /// Its payload's size (what the size limits count).
    pub fn payload_len(&self) -> usize {
        match self {
            Entry::Simple(b) | Entry::SubBatch { data: b, .. } => b.len(),
        }
    }

    /// Bytes it takes in a chunk, header included.
    pub fn stored_len(&self) -> usize {
        match self {
            Entry::Simple(b) => 4 + b.len(),
            Entry::SubBatch { data, .. } => SUB_BATCH_HEADER_LEN + data.len(),
        }
    }

    /// Appends it in osiris's layout (`make_chunk`).
    pub fn put(&self, out: &mut Vec<u8>) {
        match self {
            Entry::Simple(b) => put_simple_entry(out, b),
            Entry::SubBatch {
                compression,
                records,
                uncompressed_len,
                data,
            } => {
                debug_assert!(data.len() <= u32::MAX as usize);
                out.put_u8(0x80 | (compression & 0x7) << 4);
                out.put_u16(*records);
                out.put_u32(*uncompressed_len);
                out.put_u32(data.len() as u32);
                out.extend_from_slice(data);
            }
        }
    }
}

/// Appends one tracking entry of a trailer or delta chunk. References longer than
/// [`MAX_REFERENCE_LEN`] are never handed here (the log refuses to track them).
pub fn put_tracking(out: &mut Vec<u8>, kind: u8, id: &str, value: u64) {
    debug_assert!(id.len() <= MAX_REFERENCE_LEN);
    out.put_u8(kind);
    out.put_u8(id.len() as u8);
    out.extend_from_slice(id.as_bytes());
    out.put_u64(value);
}

/// Appends a snapshot's publisher sequence: it also names the chunk that last updated it.
pub fn put_snapshot_sequence(out: &mut Vec<u8>, id: &str, chunk_id: u64, seq: u64) {
    debug_assert!(id.len() <= MAX_REFERENCE_LEN);
    out.put_u8(TRACK_SEQUENCE);
    out.put_u8(id.len() as u8);
    out.extend_from_slice(id.as_bytes());
    out.put_u64(chunk_id);
    out.put_u64(seq);
}

/// One tracking entry read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking<'a> {
    pub kind: u8,
    pub id: &'a [u8],
    /// The chunk that last updated a sequence (snapshots only).
    pub chunk_id: Option<u64>,
    pub value: u64,
}

/// Parses tracking data (a trailer, a delta entry, or with `snapshot` a snapshot entry).
/// None when it is malformed (a corrupt trailer: its chunk is not trusted).
pub fn parse_tracking(mut b: &[u8], snapshot: bool) -> Option<Vec<Tracking<'_>>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let kind = *b.first()?;
        let n = *b.get(1)? as usize;
        let id = b.get(2..2 + n)?;
        b = &b[2 + n..];
        let chunk_id = match (kind, snapshot) {
            (TRACK_SEQUENCE, true) => {
                let c = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
                b = &b[8..];
                Some(c)
            }
            (TRACK_SEQUENCE | TRACK_OFFSET, _) => None,
            _ => return None,
        };
        let value = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
        b = &b[8..];
        out.push(Tracking {
            kind,
            id,
            chunk_id,
            value,
        });
    }
    Some(out)
}

/// The entries section of a chunk read whole, or None if it does not hold one.
fn data_of(chunk: &Bytes) -> Option<(ChunkHeader, Bytes)> {
    let h = ChunkHeader::decode(chunk).ok()?;
    let end = (HEADER_LEN + h.data_len as usize).min(chunk.len());
    Some((h, chunk.slice(HEADER_LEN..end)))
}

/// Iterates the records of a chunk read with [`ChunkRef::read`](super::ChunkRef::read):
/// (offset, record bytes). Simple entries and uncompressed sub-batches yield zero-copy
/// slices of `chunk`; a gzip sub-batch is inflated (AMQP 0-9-1 consumers cannot do it
/// themselves) and yields slices of its inflated bytes. A sub-batch of another codec, or
/// one that does not inflate or parse, yields nothing, its offsets skipped. A sub-batch
/// yields at most its stated record count, and the entry after it always starts at its
/// first offset plus that count (as osiris's `parse_records` counts). A malformed or
/// truncated chunk yields the records before the damage.
pub fn records(chunk: &Bytes) -> impl Iterator<Item = (u64, Bytes)> + use<> {
    let (offset, data) = match data_of(chunk) {
        Some((h, data)) => (h.first_offset, data),
        None => (0, Bytes::new()),
    };
    Records {
        data,
        at: 0,
        offset,
        batch: None,
    }
}

struct Records {
    data: Bytes,
    at: usize,
    offset: u64,
    /// Inside a sub-batch: its (uncompressed) records, the position in them, and the
    /// offset after the batch.
    batch: Option<Batch>,
}

struct Batch {
    data: Bytes,
    at: usize,
    end_offset: u64,
}

fn u32_at(data: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        data.get(i..i.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The simple entry at `at` in `data`: (its bytes' range, the position after it).
fn simple_at(data: &[u8], at: usize) -> Option<(std::ops::Range<usize>, usize)> {
    let head = u32_at(data, at)?;
    if head & 0x8000_0000 != 0 {
        return None;
    }
    let start = at + 4;
    let stop = start.checked_add(head as usize)?;
    (stop <= data.len()).then_some((start..stop, stop))
}

impl Records {
    fn step(&mut self) -> Option<(u64, Bytes)> {
        loop {
            if let Some(b) = &mut self.batch {
                if self.offset < b.end_offset
                    && let Some((range, next)) = simple_at(&b.data, b.at)
                {
                    b.at = next;
                    let o = self.offset;
                    self.offset = o.checked_add(1)?;
                    return Some((o, b.data.slice(range)));
                }
                // Done, or the rest is damaged: the next entry's offsets follow the
                // batch's stated count either way.
                self.offset = b.end_offset;
                self.batch = None;
            }
            if self.at >= self.data.len() {
                return None;
            }
            if self.data[self.at] & 0x80 == 0 {
                let (range, next) = simple_at(&self.data, self.at)?;
                self.at = next;
                let o = self.offset;
                self.offset = o.checked_add(1)?;
                return Some((o, self.data.slice(range)));
            }
            // Sub-batch: flags, NumRecords u16, UncompressedLength u32, Length u32.
            let compression = (self.data[self.at] >> 4) & 0x7;
            let n = u16::from_be_bytes(self.data.get(self.at + 1..self.at + 3)?.try_into().ok()?);
            let uncompressed = u32_at(&self.data, self.at + 3)? as usize;
            let len = u32_at(&self.data, self.at + 7)? as usize;
            let start = self.at + SUB_BATCH_HEADER_LEN;
            let stop = start.checked_add(len)?;
            if stop > self.data.len() {
                return None;
            }
            self.at = stop;
            let records = match compression {
                0 => Some(self.data.slice(start..stop)),
                super::gzip::GZIP => {
                    super::gzip::inflate(&self.data[start..stop], uncompressed).map(Bytes::from)
                }
                _ => None,
            };
            self.batch = Some(Batch {
                data: records.unwrap_or_default(),
                at: 0,
                end_offset: self.offset.checked_add(u64::from(n))?,
            });
        }
    }
}

impl Iterator for Records {
    type Item = (u64, Bytes);

    fn next(&mut self) -> Option<(u64, Bytes)> {
        let r = self.step();
        if r.is_none() {
            // Stop for good (a malformed entry must not be retried).
            self.at = self.data.len();
            self.batch = None;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunk(first: u64, entries: &[Vec<u8>], trailer: &[u8]) -> Bytes {
        let mut data = Vec::new();
        for e in entries {
            put_simple_entry(&mut data, e);
        }
        let h = ChunkHeader {
            chunk_type: CHUNK_USER,
            num_entries: entries.len() as u16,
            num_records: entries.len() as u32,
            timestamp: 1_700_000_000_000,
            epoch: EPOCH,
            first_offset: first,
            crc: crc32fast::hash(&data),
            data_len: data.len() as u32,
            trailer_len: trailer.len() as u32,
        };
        let mut out = h.encode().to_vec();
        out.extend_from_slice(&data);
        out.extend_from_slice(trailer);
        Bytes::from(out)
    }

    #[test]
    fn header_layout_is_osiris() {
        let c = chunk(7, &[b"ab".to_vec()], b"");
        assert_eq!(c[0], 0x50);
        assert_eq!(c[1], 0);
        assert_eq!(&c[2..4], &[0, 1]);
        assert_eq!(&c[4..8], &[0, 0, 0, 1]);
        assert_eq!(&c[24..32], &7u64.to_be_bytes());
        assert_eq!(&c[36..40], &6u32.to_be_bytes());
        assert_eq!(&c[44..48], &[0, 0, 0, 0]);
        assert_eq!(&c[48..], &[0, 0, 0, 2, b'a', b'b']);
    }

    #[test]
    fn sub_batches_uncompressed_and_compressed() {
        let mut data = Vec::new();
        put_simple_entry(&mut data, b"a");
        // Uncompressed sub-batch of two records.
        let mut body = Vec::new();
        put_simple_entry(&mut body, b"b");
        put_simple_entry(&mut body, b"cc");
        data.push(0x80);
        data.put_u16(2);
        data.put_u32(body.len() as u32);
        data.put_u32(body.len() as u32);
        data.extend_from_slice(&body);
        // A gzip sub-batch of two records: inflated.
        let mut plain = Vec::new();
        put_simple_entry(&mut plain, b"g1");
        put_simple_entry(&mut plain, b"g2");
        Entry::SubBatch {
            compression: 1,
            records: 2,
            uncompressed_len: plain.len() as u32,
            data: Bytes::from(super::super::gzip::tests::gzip(&plain)),
        }
        .put(&mut data);
        // A damaged gzip sub-batch and a zstd one of three records each: skipped, their
        // offsets counted.
        for flags in [0x90, 0xc0] {
            data.push(flags);
            data.put_u16(3);
            data.put_u32(10);
            data.put_u32(4);
            data.extend_from_slice(b"zzzz");
        }
        put_simple_entry(&mut data, b"d");
        let h = ChunkHeader {
            chunk_type: CHUNK_USER,
            num_entries: 6,
            num_records: 12,
            timestamp: 0,
            epoch: 1,
            first_offset: 10,
            crc: crc32fast::hash(&data),
            data_len: data.len() as u32,
            trailer_len: 0,
        };
        let mut c = h.encode().to_vec();
        c.extend_from_slice(&data);
        let got: Vec<(u64, Bytes)> = records(&Bytes::from(c)).collect();
        let want: Vec<(u64, Bytes)> = vec![
            (10, Bytes::from_static(b"a")),
            (11, Bytes::from_static(b"b")),
            (12, Bytes::from_static(b"cc")),
            (13, Bytes::from_static(b"g1")),
            (14, Bytes::from_static(b"g2")),
            (21, Bytes::from_static(b"d")),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn tracking_round_trip() {
        let mut t = Vec::new();
        put_tracking(&mut t, TRACK_SEQUENCE, "pub", 42);
        put_tracking(&mut t, TRACK_OFFSET, "cons", 7);
        let got = parse_tracking(&t, false).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].kind, got[0].id, got[0].value), (0, &b"pub"[..], 42));
        assert_eq!((got[1].kind, got[1].id, got[1].value), (1, &b"cons"[..], 7));
        let mut s = Vec::new();
        put_snapshot_sequence(&mut s, "p", 100, 5);
        put_tracking(&mut s, TRACK_OFFSET, "c", 9);
        let got = parse_tracking(&s, true).unwrap();
        assert_eq!(got[0].chunk_id, Some(100));
        assert_eq!(got[0].value, 5);
        assert_eq!(got[1].value, 9);
        assert!(parse_tracking(&t[..t.len() - 1], false).is_none());
        assert!(parse_tracking(&[9, 0], false).is_none());
    }

    proptest! {
        #[test]
        fn simple_entries_round_trip(
            first in any::<u64>().prop_map(|o| o >> 1),
            entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..40),
        ) {
            let c = chunk(first, &entries, b"\x00\x01p\x00\x00\x00\x00\x00\x00\x00\x05");
            let h = ChunkHeader::decode(&c).unwrap();
            prop_assert_eq!(h.num_records as usize, entries.len());
            prop_assert_eq!(h.stored_len() as usize, c.len());
            let data = &c[HEADER_LEN..HEADER_LEN + h.data_len as usize];
            prop_assert_eq!(crc32fast::hash(data), h.crc);
            let got: Vec<(u64, Bytes)> = records(&c).collect();
            prop_assert_eq!(got.len(), entries.len());
            for (i, (o, b)) in got.iter().enumerate() {
                prop_assert_eq!(*o, first + i as u64);
                prop_assert_eq!(&b[..], &entries[i][..]);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut c = b.clone();
            if c.len() >= 2 {
                c[0] = MAGIC_VERSION;
                c[1] %= 3;
            }
            let c = Bytes::from(c);
            let _ = records(&c).count();
            let _ = parse_tracking(&b, false);
            let _ = parse_tracking(&b, true);
        }
    }
}
