//! Reading committed chunks.

use super::StreamLog;
use bytes::Bytes;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
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
    /// Position of the chunk header in `file`, and the chunk's length: the header and the
    /// entries, exactly the bytes a stream-protocol Deliver frame carries after its
    /// subscription id (so the server can sendfile them). A trailer (the publisher
    /// sequences and consumer offsets of the chunk's batch) may follow in the file; like
    /// RabbitMQ 3.10 with its default `user_data` chunk selector, it is not sent, though
    /// the header states its length.
    pub pos: u64,
    pub len: u32,
}

impl ChunkRef {
    /// The chunk (header and entries) read into memory with one pread.
    pub fn read(&self) -> io::Result<Bytes> {
        let mut v = vec![0u8; self.len as usize];
        self.file.read_exact_at(&mut v, self.pos)?;
        Ok(Bytes::from(v))
    }
}

/// A cursor over a stream's committed user chunks. Holds no segment open between calls.
pub struct StreamReader {
    pub(super) log: Arc<StreamLog>,
    pub(super) position: u64,
}

impl std::fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReader")
            .field("stream", &self.log.id())
            .field("position", &self.position)
            .finish()
    }
}

impl StreamReader {
    /// The next committed user chunk containing offsets >= position (skipping tracking
    /// chunks), advancing past it; None when nothing committed is there yet (wait on
    /// [`StreamLog::committed`]) or the stream is deleted. When retention removed the
    /// position, continues from the first kept chunk. The chunk may start before the
    /// position (a reader positioned inside a chunk): skip the records below it.
    pub fn next_chunk(&mut self) -> io::Result<Option<ChunkRef>> {
        let mut index = self.log.index.lock().unwrap();
        if index.deleted {
            return Ok(None);
        }
        let Some(at) = index.locate(self.position) else {
            return Ok(None);
        };
        let c = index.chunk(at);
        let file = index.file(at.0)?;
        drop(index);
        self.position = self.position.max(c.end());
        Ok(Some(ChunkRef {
            first_offset: c.first_offset,
            num_entries: c.num_entries,
            num_records: c.num_records,
            timestamp: c.timestamp,
            file,
            pos: c.pos,
            len: super::chunk::HEADER_LEN as u32 + c.data_len,
        }))
    }

    /// The position (next offset this reader wants).
    pub fn position(&self) -> u64 {
        self.position
    }
}
