//! Reading committed chunks.

use std::fs::File;
use std::sync::Arc;

/// One committed user chunk (type 0), located in its segment file.
#[derive(Debug, Clone)]
pub struct ChunkRef {
    pub first_offset: u64,
    pub num_entries: u16,
    pub num_records: u32,
    pub timestamp: i64,
    /// Segment file (kept open: a segment deleted by retention stays readable while a
    /// reader holds it).
    pub file: Arc<File>,
    /// Position of the chunk header in `file`, and the chunk's length: header + data +
    /// trailer, exactly the bytes a stream-protocol Deliver frame carries after its
    /// subscription id (so the server can sendfile them).
    pub pos: u64,
    pub len: u32,
}

impl ChunkRef {
    /// The whole chunk (header + data + trailer) read into memory (pread).
    pub fn read(&self) -> std::io::Result<bytes::Bytes> {
        todo!()
    }
}

/// A cursor over a stream's committed user chunks.
pub struct StreamReader {
    position: u64,
}

impl StreamReader {
    /// The next committed user chunk containing offsets >= position (skipping tracking
    /// chunks), advancing past it; None when nothing committed is there yet. When retention
    /// removed the position, continues from the first kept chunk.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<ChunkRef>> {
        todo!()
    }

    /// The position (next offset this reader wants).
    pub fn position(&self) -> u64 {
        self.position
    }
}
