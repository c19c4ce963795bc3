//! Fuzzes what the stream log reads back from disk: chunk headers, the records of a chunk
//! (simple entries and sub-batches, gzip ones inflated), the gzip decoder on its own,
//! tracking trailers and snapshots, and recovery of a
//! segment file made of arbitrary bytes (after the segment header). Any panic, hang or
//! out-of-bounds access is a bug: a corrupt segment must be cut, never crash the broker.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use std::sync::atomic::{AtomicU64, Ordering};
use warren::store::stream::chunk::{ChunkHeader, MAGIC_VERSION, parse_tracking};
use warren::store::stream::index::{SEGMENT_HEADER, segment_path};
use warren::store::stream::{gzip, records, segment};

fuzz_target!(|data: &[u8]| {
    let _ = ChunkHeader::decode(data);
    let _ = parse_tracking(data, false);
    let _ = parse_tracking(data, true);
    // As a chunk: make the header valid often enough to reach the entries.
    let mut chunk = data.to_vec();
    if chunk.len() >= 2 {
        chunk[0] = MAGIC_VERSION;
        chunk[1] %= 3;
    }
    let chunk = Bytes::from(chunk);
    // Offsets only go up (a sub-batch's records, inflated or not, stay within its count).
    let mut last = None;
    for (o, _) in records(&chunk).take(1 << 20) {
        assert!(last.is_none_or(|l| o > l));
        last = Some(o);
    }
    // As a gzip member, its stated size in the first two bytes.
    if let [a, b, rest @ ..] = data {
        let _ = gzip::inflate(rest, u16::from_be_bytes([*a, *b]) as usize);
    }
    // As a segment file.
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "warren-fuzz-stream-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut file = SEGMENT_HEADER.to_vec();
    file.extend_from_slice(data);
    std::fs::write(segment_path(&dir, 0), &file).unwrap();
    if let Ok(rec) = segment::recover(&dir) {
        assert!(rec.index.disk_bytes <= file.len() as u64);
    }
    let _ = std::fs::remove_dir_all(&dir);
});
