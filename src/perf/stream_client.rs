//! A minimal client for RabbitMQ's binary stream protocol, for the load tool: the handshake
//! (peer properties, SASL PLAIN, tune, open), create and delete stream, declare publisher,
//! batched publish, subscribe and credit, close. Like the AMQP client beside it, requests are
//! encoded into one buffer and written in batches; frames are read from one large buffer
//! and handed out as `Bytes` slices of it (no copy).
//!
//! Frames are `size:u32` then `key:u16 version:u16 body`; a response has the request's key
//! with the top bit set, its correlation id and a response code (1 is OK).

use super::client::Uri;
use super::transport::Stream;
use crate::protocol::Output;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const PUBLISH: u16 = 0x0002;
pub const PUBLISH_CONFIRM: u16 = 0x0003;
pub const PUBLISH_ERROR: u16 = 0x0004;
pub const DELIVER: u16 = 0x0008;
pub const HEARTBEAT: u16 = 0x0017;
const DECLARE_PUBLISHER: u16 = 0x0001;
const SUBSCRIBE: u16 = 0x0007;
const CREDIT: u16 = 0x0009;
const UNSUBSCRIBE: u16 = 0x000c;
const CREATE: u16 = 0x000d;
const DELETE: u16 = 0x000e;
const PEER_PROPERTIES: u16 = 0x0011;
const SASL_HANDSHAKE: u16 = 0x0012;
const SASL_AUTHENTICATE: u16 = 0x0013;
const TUNE: u16 = 0x0014;
const OPEN: u16 = 0x0015;
const CLOSE: u16 = 0x0016;
/// The bit a response sets in its request's key.
const RESPONSE: u16 = 0x8000;
const OK: u16 = 1;
/// `create`'s answer for a stream that is there already.
pub const STREAM_ALREADY_EXISTS: u16 = 5;
/// The largest frame the client accepts (what it tells the server in tune).
const CLIENT_FRAME_MAX: u32 = 8 << 20;

/// The Deliver chunk header after the subscription id: magic/version, chunk type, entries,
/// records, timestamp, epoch, first offset, CRC, data length, trailer length, reserved.
pub const CHUNK_HEADER: usize = 48;

/// Where a subscription starts reading (the protocol's offset specification).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    First,
    Last,
    Next,
    Offset(u64),
}

impl OffsetSpec {
    /// `first`, `last`, `next` or a number.
    pub fn parse(s: &str) -> Result<OffsetSpec, String> {
        Ok(match s {
            "first" => OffsetSpec::First,
            "last" => OffsetSpec::Last,
            "next" => OffsetSpec::Next,
            n => OffsetSpec::Offset(
                n.parse()
                    .map_err(|_| format!("--offset {n:?}: first, last, next or a number"))?,
            ),
        })
    }
}

/// Errors of the stream client; the tool prints them.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{what} failed: response code {code}")]
    Refused { what: &'static str, code: u16 },
    #[error("malformed frame from the server (key {0:#06x})")]
    Malformed(u16),
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(u32),
    #[error("the server closed the connection (code {0})")]
    Closed(u16),
}

/// One frame from the server: its key, version and the bytes after them.
pub struct Frame {
    pub key: u16,
    pub version: u16,
    pub body: Bytes,
}

pub struct StreamClient {
    socket: Stream,
    rbuf: BytesMut,
    pub wbuf: Output,
    /// The frame size both sides agreed in tune.
    pub frame_max: u32,
    correlation: u32,
}

impl StreamClient {
    /// Connects and runs the handshake: peer properties, SASL PLAIN, tune (the server's
    /// frame size, no heartbeats) and open of the URI's vhost.
    pub async fn connect(uri: &Uri) -> Result<StreamClient, StreamError> {
        let socket = Stream::connect(&uri.addr, uri.tls).await?;
        let mut c = StreamClient {
            socket,
            rbuf: BytesMut::with_capacity(1 << 16),
            wbuf: Output::with_capacity(1 << 16),
            frame_max: CLIENT_FRAME_MAX,
            correlation: 0,
        };
        let corr = c.request(PEER_PROPERTIES);
        let b = c.wbuf.buf();
        b.put_i32(1);
        put_str(b, "product");
        put_str(b, "warren-perf");
        c.finish_request(corr, "peer properties").await?;
        let corr = c.request(SASL_HANDSHAKE);
        c.finish_request(corr, "sasl handshake").await?;
        let corr = c.request(SASL_AUTHENTICATE);
        let b = c.wbuf.buf();
        put_str(b, "PLAIN");
        let response = format!("\0{}\0{}", uri.user, uri.pass);
        b.put_i32(response.len() as i32);
        b.put_slice(response.as_bytes());
        c.finish_request(corr, "authentication").await?;
        // The server proposes; the client answers with what it keeps.
        let tune = loop {
            let f = c.next_frame().await?;
            if f.key == TUNE {
                break f;
            }
        };
        let mut b = tune.body;
        if b.len() < 8 {
            return Err(StreamError::Malformed(TUNE));
        }
        let server_max = b.get_u32();
        c.frame_max = match server_max {
            0 => CLIENT_FRAME_MAX,
            n => n.min(CLIENT_FRAME_MAX),
        };
        let at = c.start(TUNE);
        let b = c.wbuf.buf();
        b.put_u32(c.frame_max);
        b.put_u32(0);
        c.end(at);
        let corr = c.request(OPEN);
        put_str(c.wbuf.buf(), &uri.vhost);
        c.finish_request(corr, "open").await?;
        Ok(c)
    }

    /// Creates `stream` with `args` (string pairs); an existing one is fine.
    pub async fn create(
        &mut self,
        stream: &str,
        args: &[(String, String)],
    ) -> Result<(), StreamError> {
        let corr = self.request(CREATE);
        let b = self.wbuf.buf();
        put_str(b, stream);
        b.put_i32(args.len() as i32);
        for (k, v) in args {
            put_str(b, k);
            put_str(b, v);
        }
        match self.finish_request(corr, "create stream").await {
            Err(StreamError::Refused {
                code: STREAM_ALREADY_EXISTS,
                ..
            }) => Ok(()),
            r => r.map(drop),
        }
    }

    pub async fn delete(&mut self, stream: &str) -> Result<(), StreamError> {
        let corr = self.request(DELETE);
        put_str(self.wbuf.buf(), stream);
        self.finish_request(corr, "delete stream").await.map(drop)
    }

    /// Declares publisher `id` on `stream` (no name: no deduplication).
    pub async fn declare_publisher(&mut self, id: u8, stream: &str) -> Result<(), StreamError> {
        let corr = self.request(DECLARE_PUBLISHER);
        let b = self.wbuf.buf();
        b.put_u8(id);
        put_str(b, "");
        put_str(b, stream);
        self.finish_request(corr, "declare publisher")
            .await
            .map(drop)
    }

    /// Subscribes `id` to `stream` from `offset` with `credit` chunks.
    pub async fn subscribe(
        &mut self,
        id: u8,
        stream: &str,
        offset: OffsetSpec,
        credit: u16,
    ) -> Result<(), StreamError> {
        let corr = self.request(SUBSCRIBE);
        let b = self.wbuf.buf();
        b.put_u8(id);
        put_str(b, stream);
        match offset {
            OffsetSpec::First => b.put_u16(1),
            OffsetSpec::Last => b.put_u16(2),
            OffsetSpec::Next => b.put_u16(3),
            OffsetSpec::Offset(n) => {
                b.put_u16(4);
                b.put_u64(n);
            }
        }
        b.put_u16(credit);
        b.put_i32(0); // no properties
        self.finish_request(corr, "subscribe").await.map(drop)
    }

    /// Buffers a credit of `n` chunks for subscription `id`.
    pub fn credit(&mut self, id: u8, n: u16) {
        let at = self.start(CREDIT);
        let b = self.wbuf.buf();
        b.put_u8(id);
        b.put_u16(n);
        self.end(at);
    }

    /// Buffers an unsubscribe (its response is not waited for).
    pub fn unsubscribe(&mut self, id: u8) {
        let corr = self.request(UNSUBSCRIBE);
        self.wbuf.buf().put_u8(id);
        let _ = corr;
    }

    /// Starts a publish frame for publisher `id` holding `count` messages; add each with
    /// [`StreamClient::publish_message`], then [`StreamClient::end`] the frame.
    pub fn start_publish(&mut self, id: u8, count: u32) -> usize {
        let at = self.start(PUBLISH);
        let b = self.wbuf.buf();
        b.put_u8(id);
        b.put_u32(count);
        at
    }

    /// Closes the connection politely: close, then its response.
    pub async fn close(mut self) -> Result<(), StreamError> {
        let corr = self.request(CLOSE);
        let b = self.wbuf.buf();
        b.put_u16(OK);
        put_str(b, "bye");
        self.finish_request(corr, "close").await.map(drop)
    }

    /// Begins a frame: a size placeholder, the key and version 1. Returns where the size
    /// goes, for [`StreamClient::end`].
    pub fn start(&mut self, key: u16) -> usize {
        let b = self.wbuf.buf();
        let at = b.len();
        b.put_u32(0);
        b.put_u16(key);
        b.put_u16(1);
        at
    }

    /// Writes the size of the frame begun at `at`. Only bytes in the buffer count, so a
    /// frame must not hold shared segments.
    pub fn end(&mut self, at: usize) {
        let b = self.wbuf.buf();
        let size = (b.len() - at - 4) as u32;
        b[at..at + 4].copy_from_slice(&size.to_be_bytes());
    }

    /// Begins a request frame with a fresh correlation id; returns the id.
    fn request(&mut self, key: u16) -> (usize, u32) {
        let at = self.start(key);
        self.correlation = self.correlation.wrapping_add(1);
        self.wbuf.buf().put_u32(self.correlation);
        (at, self.correlation)
    }

    /// Ends the request, sends everything buffered, and waits for the response; returns
    /// the bytes after its response code.
    async fn finish_request(
        &mut self,
        (at, corr): (usize, u32),
        what: &'static str,
    ) -> Result<Bytes, StreamError> {
        self.end(at);
        let key = u16::from_be_bytes([self.wbuf.buf()[at + 4], self.wbuf.buf()[at + 5]]);
        self.flush().await?;
        loop {
            let f = self.next_frame().await?;
            if f.key == key | RESPONSE {
                let mut b = f.body;
                if b.len() < 6 {
                    return Err(StreamError::Malformed(f.key));
                }
                let (got, code) = (b.get_u32(), b.get_u16());
                if got != corr {
                    continue;
                }
                if code != OK {
                    return Err(StreamError::Refused { what, code });
                }
                return Ok(b);
            }
            if f.key == CLOSE {
                let mut b = f.body;
                let code = if b.len() >= 6 {
                    b.advance(4);
                    b.get_u16()
                } else {
                    0
                };
                return Err(StreamError::Closed(code));
            }
        }
    }

    /// Writes everything buffered.
    pub async fn flush(&mut self) -> Result<(), StreamError> {
        if !self.wbuf.is_empty() {
            self.wbuf.write_to(&mut self.socket).await?;
            self.socket.flush().await?;
        }
        Ok(())
    }

    /// The next frame, reading more when the buffer holds none.
    pub async fn next_frame(&mut self) -> Result<Frame, StreamError> {
        loop {
            if let Some(f) = self.try_frame()? {
                return Ok(f);
            }
            if !self.read_more().await? {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
        }
    }

    /// The next complete frame already read, without waiting.
    pub fn try_frame(&mut self) -> Result<Option<Frame>, StreamError> {
        if self.rbuf.len() < 4 {
            return Ok(None);
        }
        let size = u32::from_be_bytes(self.rbuf[..4].try_into().unwrap());
        if size > self.frame_max.max(CLIENT_FRAME_MAX) {
            return Err(StreamError::TooLarge(size));
        }
        if size < 4 {
            return Err(StreamError::Malformed(0));
        }
        if self.rbuf.len() < 4 + size as usize {
            self.rbuf.reserve(4 + size as usize - self.rbuf.len());
            return Ok(None);
        }
        self.rbuf.advance(4);
        let mut body = self.rbuf.split_to(size as usize).freeze();
        let (key, version) = (body.get_u16(), body.get_u16());
        Ok(Some(Frame { key, version, body }))
    }

    /// Waits for more input; false at end of stream.
    pub async fn read_more(&mut self) -> Result<bool, StreamError> {
        if self.rbuf.capacity() - self.rbuf.len() < 64 << 10 {
            self.rbuf.reserve(256 << 10);
        }
        Ok(self.socket.read_buf(&mut self.rbuf).await? > 0)
    }
}

/// A protocol string: i16 length, then UTF-8.
fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

/// Reads a Deliver frame's body (version 1: subscription id, then the chunk): the chunk's
/// type, first offset, record count, and its data (the entries), or `None` when the frame
/// is too short for its header or the data it announces.
pub fn parse_deliver(mut body: Bytes) -> Option<Chunk> {
    if body.len() < 1 + CHUNK_HEADER {
        return None;
    }
    body.advance(1); // subscription id
    let _magic = body.get_u8();
    let kind = body.get_u8();
    let _entries = body.get_u16();
    let records = body.get_u32();
    body.advance(16); // timestamp, epoch
    let first_offset = body.get_u64();
    body.advance(4); // crc
    let data_len = body.get_u32() as usize;
    body.advance(8); // trailer length, bloom size, reserved
    if body.len() < data_len {
        return None;
    }
    body.truncate(data_len);
    Some(Chunk {
        kind,
        first_offset,
        records,
        data: body,
    })
}

/// A chunk as Deliver carries it.
pub struct Chunk {
    /// 0: user records; others carry offset tracking, not messages.
    pub kind: u8,
    pub first_offset: u64,
    pub records: u32,
    pub data: Bytes,
}

impl Chunk {
    /// Calls `f` with each record of a simple entry (sub-batches, which the tool never
    /// publishes, are skipped) and its offset; stops at the first malformed entry.
    pub fn for_each_record(&self, mut f: impl FnMut(u64, &[u8])) {
        let (mut d, mut offset) = (&self.data[..], self.first_offset);
        while d.len() >= 4 {
            let head = u32::from_be_bytes(d[..4].try_into().unwrap());
            if head & 0x8000_0000 == 0 {
                let size = head as usize;
                if d.len() < 4 + size {
                    return;
                }
                f(offset, &d[4..4 + size]);
                d = &d[4 + size..];
                offset += 1;
            } else {
                // Sub-batch: type/compression byte, records u16, uncompressed u32, size u32.
                if d.len() < 11 {
                    return;
                }
                let records = u16::from_be_bytes([d[1], d[2]]) as u64;
                let size = u32::from_be_bytes(d[7..11].try_into().unwrap()) as usize;
                if d.len() < 11 + size {
                    return;
                }
                d = &d[11..][size..];
                offset += records;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A Deliver body (version 1) for subscription 7: a user chunk at `first` holding
    /// `entries` (already encoded), announcing `records` records.
    fn deliver(first: u64, records: u32, entries: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(7);
        b.put_u8(0x50);
        b.put_u8(0);
        b.put_u16(1);
        b.put_u32(records);
        b.put_i64(1_700_000_000_000);
        b.put_u64(1);
        b.put_u64(first);
        b.put_i32(0);
        b.put_u32(entries.len() as u32);
        b.put_u32(0);
        b.put_u32(0);
        b.put_slice(entries);
        b.freeze()
    }

    fn simple(data: &[u8]) -> Vec<u8> {
        let mut e = (data.len() as u32).to_be_bytes().to_vec();
        e.extend_from_slice(data);
        e
    }

    #[test]
    fn reads_a_chunk_of_simple_entries() {
        let mut entries = simple(b"one");
        entries.extend(simple(b"two!"));
        let chunk = parse_deliver(deliver(40, 2, &entries)).unwrap();
        assert_eq!((chunk.kind, chunk.first_offset, chunk.records), (0, 40, 2));
        let mut seen = Vec::new();
        chunk.for_each_record(|o, r| seen.push((o, r.to_vec())));
        assert_eq!(seen, vec![(40, b"one".to_vec()), (41, b"two!".to_vec())]);
    }

    #[test]
    fn skips_sub_batches_but_counts_their_offsets() {
        // A sub-batch of 3 records (uncompressed, 5 bytes of data), then a simple entry.
        let mut entries = vec![0x80, 0, 3, 0, 0, 0, 5, 0, 0, 0, 5, 1, 2, 3, 4, 5];
        entries.extend(simple(b"after"));
        let chunk = parse_deliver(deliver(10, 4, &entries)).unwrap();
        let mut seen = Vec::new();
        chunk.for_each_record(|o, r| seen.push((o, r.to_vec())));
        assert_eq!(seen, vec![(13, b"after".to_vec())]);
    }

    #[test]
    fn refuses_a_chunk_shorter_than_it_says() {
        let body = deliver(0, 1, &simple(b"data"));
        assert!(parse_deliver(body.slice(..body.len() - 1)).is_none());
        assert!(parse_deliver(body.slice(..20)).is_none());
    }

    #[test]
    fn offset_specs() {
        assert_eq!(OffsetSpec::parse("first"), Ok(OffsetSpec::First));
        assert_eq!(OffsetSpec::parse("last"), Ok(OffsetSpec::Last));
        assert_eq!(OffsetSpec::parse("next"), Ok(OffsetSpec::Next));
        assert_eq!(OffsetSpec::parse("123"), Ok(OffsetSpec::Offset(123)));
        assert!(OffsetSpec::parse("10m").is_err());
    }

    proptest! {
        /// Whatever the server sends, reading a Deliver frame never panics, and every
        /// record handed out lies inside the chunk's data.
        #[test]
        fn deliver_parsing_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Some(chunk) = parse_deliver(Bytes::from(body)) {
                let mut total = 0;
                chunk.for_each_record(|_, r| total += r.len() + 4);
                prop_assert!(total <= chunk.data.len());
            }
        }
    }
}
