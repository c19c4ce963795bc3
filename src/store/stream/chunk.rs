//! osiris's chunk format: a 48-byte header, entries, a trailer.

use bytes::Bytes;

/// Iterates the records of a chunk read with [`ChunkRef::read`](super::ChunkRef::read):
/// (offset, entry bytes as zero-copy slices). Handles simple entries; sub-batch entries
/// with compression 0 too.
pub fn records(chunk: &Bytes) -> impl Iterator<Item = (u64, Bytes)> + use<> {
    let _ = chunk;
    std::iter::from_fn(|| todo!())
}
