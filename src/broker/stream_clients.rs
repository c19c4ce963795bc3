//! The publishers and subscriptions of a stream-protocol connection, as the registry
//! keeps them for the management API (`/api/stream/publishers`, `/api/stream/consumers`,
//! and per connection), with RabbitMQ's counters.
//!
//! Socket-free records: the stream listener creates one per DeclarePublisher / Subscribe
//! and drops it on delete / unsubscribe (a short lock on the connection's list, never per
//! message). The counters are relaxed atomics bumped once per frame or per chunk with the
//! frame's or chunk's message count, so the publish and deliver paths pay one add per
//! batch, not per message.

use crate::store::stream::{OffsetSpec, StreamLog};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// A declared publisher (rabbit_stream_reader's `#publisher{}` and its counters).
#[derive(Debug)]
pub struct StreamPublisher {
    pub id: u8,
    pub stream: String,
    /// The publisher reference ("" when it gave none).
    pub reference: String,
    /// Messages received in Publish frames (RabbitMQ's `messages_published`).
    pub published: AtomicU64,
    pub confirmed: AtomicU64,
    pub errored: AtomicU64,
}

impl StreamPublisher {
    pub fn new(id: u8, stream: String, reference: String) -> StreamPublisher {
        StreamPublisher {
            id,
            stream,
            reference,
            published: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            errored: AtomicU64::new(0),
        }
    }
}

/// A subscription (rabbit_stream_reader's `#consumer{}` and its counters).
#[derive(Debug)]
pub struct StreamConsumer {
    pub id: u8,
    pub stream: String,
    /// The Subscribe command's properties, as given.
    pub properties: Vec<(String, String)>,
    /// Chunks the client still accepts: the one credit counter, read and written by
    /// the listener (Credit adds, each Deliver takes one).
    pub credit: AtomicU32,
    /// Messages (entries) delivered, added per chunk.
    pub consumed: AtomicU64,
    /// First offset of the last chunk delivered (RabbitMQ's consumer `offset`).
    pub offset: AtomicU64,
    /// For `offset_lag`: the stream's last committed chunk, read when listed.
    pub log: Arc<StreamLog>,
}

impl StreamConsumer {
    pub fn new(
        id: u8,
        stream: String,
        properties: Vec<(String, String)>,
        credit: u32,
        log: Arc<StreamLog>,
    ) -> StreamConsumer {
        StreamConsumer {
            id,
            stream,
            properties,
            credit: AtomicU32::new(credit),
            consumed: AtomicU64::new(0),
            offset: AtomicU64::new(0),
            log,
        }
    }

    /// A chunk of `entries` starting at `first` went out.
    #[inline]
    pub fn delivered(&self, first: u64, entries: u64) {
        self.consumed.fetch_add(entries, Relaxed);
        self.offset.store(first, Relaxed);
    }

    /// RabbitMQ's `offset_lag`: the stream's last committed chunk id minus the offset
    /// of the last chunk delivered (0 when caught up or nothing is stored).
    pub fn offset_lag(&self) -> u64 {
        let committed = *self.log.committed().borrow();
        if committed == 0 {
            return 0;
        }
        let last = self.log.resolve(OffsetSpec::Last);
        last.saturating_sub(self.offset.load(Relaxed))
    }
}

/// A stream connection's publishers and consumers (empty for other protocols).
#[derive(Debug, Default)]
pub struct StreamClients {
    publishers: Mutex<Vec<Arc<StreamPublisher>>>,
    consumers: Mutex<Vec<Arc<StreamConsumer>>>,
}

impl StreamClients {
    pub fn add_publisher(&self, p: Arc<StreamPublisher>) {
        self.publishers.lock().unwrap().push(p);
    }

    pub fn remove_publisher(&self, id: u8) {
        self.publishers.lock().unwrap().retain(|p| p.id != id);
    }

    pub fn add_consumer(&self, c: Arc<StreamConsumer>) {
        self.consumers.lock().unwrap().push(c);
    }

    pub fn remove_consumer(&self, id: u8) {
        self.consumers.lock().unwrap().retain(|c| c.id != id);
    }

    /// The publishers, in the order declared.
    pub fn publishers(&self) -> Vec<Arc<StreamPublisher>> {
        self.publishers.lock().unwrap().clone()
    }

    /// The subscriptions, in the order made.
    pub fn consumers(&self) -> Vec<Arc<StreamConsumer>> {
        self.consumers.lock().unwrap().clone()
    }

    pub fn has_publishers(&self) -> bool {
        !self.publishers.lock().unwrap().is_empty()
    }
}
