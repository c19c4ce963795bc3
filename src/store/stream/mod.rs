//! Stream logs (issue #13): an append-only, offset-addressed log per stream, stored in
//! osiris's chunk format (RabbitMQ's stream storage) so that a chunk's bytes on disk are
//! exactly what a stream-protocol Deliver frame carries after its subscription id.
//!
//! Layout: `storage.dir/streams/{log id:016x}/{first offset:020}.segment`.

pub mod chunk;
pub mod reader;
pub mod segment;

pub use chunk::records;
pub use reader::{ChunkRef, StreamReader};

use super::Store;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::watch;

/// Retention and segment settings of one stream (from x-max-length-bytes, x-max-age,
/// x-stream-max-segment-size-bytes; RabbitMQ's default segment size is 500 MB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_bytes: Option<u64>,
    pub max_age: Option<std::time::Duration>,
    pub max_segment_bytes: u64,
}

/// RabbitMQ's default segment size (x-stream-max-segment-size-bytes).
pub const DEFAULT_MAX_SEGMENT_BYTES: u64 = 500_000_000;

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_bytes: None,
            max_age: None,
            max_segment_bytes: DEFAULT_MAX_SEGMENT_BYTES,
        }
    }
}

/// Where a reader starts (the stream protocol's OffsetSpecification, AMQP's x-stream-offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    First,
    Last,
    Next,
    Offset(u64),
    /// Unix milliseconds.
    Timestamp(i64),
}

/// Where an appended entry went, and the store ticket that says when it is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub offset: u64,
    pub ticket: u64,
}

/// One stream's log.
pub struct StreamLog {
    id: u64,
}

impl std::fmt::Debug for StreamLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamLog").field("id", &self.id).finish()
    }
}

impl Store {
    /// Opens (creating if absent) the stream log with this id; recovery of existing files
    /// happens here or in Store::open (recovered streams are handed back the same way).
    pub fn stream_log(self: &Arc<Self>, id: u64, retention: Retention) -> Arc<StreamLog> {
        let _ = (id, retention);
        todo!()
    }
}

impl StreamLog {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Appends one entry (one AMQP 1.0 encoded message, exactly as the stream protocol
    /// carries it: it is stored as a "simple entry" of an osiris chunk). Offsets are dense
    /// and assigned in call order. `writer`: (publisher reference, publishing id) for
    /// stream-protocol deduplication: returns None (nothing stored) when that publisher
    /// already has an id >= this one. The ticket is what the confirm waits for
    /// (Store::synced() >= ticket means fsynced and readable), like QueueLog::append.
    pub fn append(&self, entry: Bytes, writer: Option<(&str, u64)>) -> Option<Appended> {
        let _ = (entry, writer);
        todo!()
    }

    /// Stores a named consumer's offset (stream protocol StoreOffset). Durable once the
    /// returned ticket is synced.
    pub fn store_offset(&self, reference: &str, offset: u64) -> u64 {
        let _ = (reference, offset);
        todo!()
    }

    pub fn query_offset(&self, reference: &str) -> Option<u64> {
        let _ = reference;
        todo!()
    }

    /// Last publishing id stored for a publisher reference (QueryPublisherSequence).
    pub fn publisher_sequence(&self, reference: &str) -> Option<u64> {
        let _ = reference;
        todo!()
    }

    /// The next offset not yet durable: every offset below it is readable. Changes are
    /// signalled on the watch channel (one send per writer batch, not per message).
    pub fn committed(&self) -> watch::Receiver<u64> {
        todo!()
    }

    /// First offset still kept (after retention).
    pub fn first_offset(&self) -> u64 {
        todo!()
    }

    /// The next offset to be assigned.
    pub fn next_offset(&self) -> u64 {
        todo!()
    }

    /// Bytes on disk (management API, retention tests).
    pub fn disk_bytes(&self) -> u64 {
        todo!()
    }

    /// Segment files on disk.
    pub fn segment_count(&self) -> usize {
        todo!()
    }

    /// Resolves an offset spec to the first offset a new reader reads (RabbitMQ's rules:
    /// First = first kept; Last = first offset of the last user chunk; Next = next_offset;
    /// Offset(n) clamped into [first, next]; Timestamp(t) = first chunk whose timestamp >= t,
    /// else next).
    pub fn resolve(&self, spec: OffsetSpec) -> u64 {
        let _ = spec;
        todo!()
    }

    /// A reader positioned at `offset` (which may be inside a chunk).
    pub fn reader(self: &Arc<Self>, offset: u64) -> StreamReader {
        let _ = offset;
        todo!()
    }

    /// Changes retention (a policy change); applied at the next segment roll / sweep.
    pub fn set_retention(&self, r: Retention) {
        let _ = r;
        todo!()
    }

    /// Deletes every file (stream deleted).
    pub fn delete(&self) {
        todo!()
    }
}
