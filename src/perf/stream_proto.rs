//! Publishers and consumers of the stream mode over RabbitMQ's stream protocol
//! (`--protocol stream`), counting into the same [`Stats`] as the AMQP ones.
//!
//! A message is what RabbitMQ's stream clients write: an AMQP 1.0 message with one data
//! section holding the body, whose first 8 octets are the send time (as in every mode).
//! Publish frames are written here, straight into the client's buffer (a frame of a hundred
//! messages built without a `Bytes` per message; bodies of 4 KiB and more are shared, not
//! copied); a test checks them against the codec's decoder.

use super::args::Args;
use super::client::Uri;
use super::stream_client::StreamClient;
use super::throughput::{Stats, err, now_ns};
use crate::protocol::stream::{OffsetSpec, ServerCommand, key};
use crate::protocol::{Output, output};
use crate::store::stream::chunk::{CHUNK_USER, ChunkHeader, records};
use bytes::{BufMut, Bytes};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Messages per publish frame at most (RabbitMQ's stream-perf-test batches 100 too).
const BATCH: u64 = 100;

/// The AMQP 1.0 data-section header before a body of `len` octets: descriptor 0x75, then
/// vbin8 (short bodies) or vbin32.
fn data_section_header(len: usize) -> Vec<u8> {
    let mut h = vec![0x00, 0x53, 0x75];
    if len <= u8::MAX as usize {
        h.push(0xa0);
        h.push(len as u8);
    } else {
        h.push(0xb0);
        h.extend_from_slice(&(len as u32).to_be_bytes());
    }
    h
}

/// The body inside a record written by [`data_section_header`]; `None` for other records.
fn data_section_body(record: &[u8]) -> Option<&[u8]> {
    match record {
        [0x00, 0x53, 0x75, 0xa0, _, body @ ..] => Some(body),
        [0x00, 0x53, 0x75, 0xb0, _, _, _, _, body @ ..] => Some(body),
        _ => None,
    }
}

/// The message every publish carries: its AMQP 1.0 header and filler after the timestamp.
struct Message {
    header: Vec<u8>,
    /// Body size, timestamp included (at least 8).
    size: usize,
    filler: Vec<u8>,
    shared_tail: Bytes,
}

impl Message {
    fn new(size: usize) -> Message {
        let size = size.max(8);
        Message {
            header: data_section_header(size),
            size,
            filler: vec![0u8; size - 8],
            shared_tail: Bytes::from(vec![0u8; size - 8]),
        }
    }

    /// Octets of one message in a publish frame: publishing id, entry size, the record.
    fn entry_len(&self) -> usize {
        8 + 4 + self.header.len() + self.size
    }

    /// Writes one publish frame (version 1) for publisher 0 with publishing ids
    /// `first_id..first_id + n`, each body stamped with the time now.
    fn put_frame(&self, out: &mut Output, first_id: u64, n: u64) {
        let b = out.buf();
        b.put_u32((2 + 2 + 1 + 4 + n as usize * self.entry_len()) as u32);
        b.put_u16(key::PUBLISH);
        b.put_u16(1);
        b.put_u8(0);
        b.put_u32(n as u32);
        for id in first_id..first_id + n {
            let b = out.buf();
            b.put_u64(id);
            b.put_u32((self.header.len() + self.size) as u32);
            b.put_slice(&self.header);
            b.put_u64(now_ns());
            if self.size < output::SHARE_MIN {
                b.put_slice(&self.filler);
            } else {
                out.share(self.shared_tail.clone());
            }
        }
    }
}

/// Publishes into `stream` until the run stops, or `limit` messages have been published
/// and confirmed; at most `-c` unconfirmed at any time.
pub async fn publisher(
    uri: Arc<Uri>,
    args: Arc<Args>,
    stream: String,
    stats: Arc<Stats>,
    limit: Option<u64>,
) -> Result<(), String> {
    let mut c = StreamClient::connect(&uri).await.map_err(err)?;
    c.declare_publisher(0, &stream).await.map_err(err)?;
    let message = Message::new(args.size);
    let per_frame = ((c.frame_max as usize).saturating_sub(64) / message.entry_len()).max(1) as u64;
    let window = args.confirms.max(1);
    let (mut sent, mut confirmed) = (0u64, 0u64);
    while !stats.stop.load(Ordering::Relaxed) {
        let mut n = BATCH.min(per_frame).min(window - (sent - confirmed));
        if let Some(limit) = limit {
            n = n.min(limit - sent);
            if n == 0 {
                break;
            }
        }
        message.put_frame(&mut c.wbuf, sent, n);
        sent += n;
        c.flush().await.map_err(err)?;
        stats.published.fetch_add(n, Ordering::Relaxed);
        read_confirms(&mut c, sent, &mut confirmed, window - 1, &stats).await?;
    }
    if limit.is_some() {
        read_confirms(&mut c, sent, &mut confirmed, 0, &stats).await?;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), c.close()).await;
    Ok(())
}

/// Takes every confirm already read, and reads more while more than `max_outstanding`
/// publishes are unconfirmed (unless the run is stopping). A publish error fails the run.
async fn read_confirms(
    c: &mut StreamClient,
    sent: u64,
    confirmed: &mut u64,
    max_outstanding: u64,
    stats: &Stats,
) -> Result<(), String> {
    loop {
        let command = match c.try_command().map_err(err)? {
            Some(command) => command,
            None if sent - *confirmed <= max_outstanding || stats.stop.load(Ordering::Relaxed) => {
                return Ok(());
            }
            None => {
                if !c.read_more().await.map_err(err)? {
                    return Err("connection closed".into());
                }
                continue;
            }
        };
        match command {
            ServerCommand::PublishConfirm { publishing_ids, .. } => {
                let n = publishing_ids.len() as u64;
                *confirmed += n;
                stats.confirmed.fetch_add(n, Ordering::Relaxed);
            }
            ServerCommand::PublishError { errors, .. } => {
                let code = errors.first().map_or(0, |e| e.1);
                return Err(format!("publish error, code {code}"));
            }
            ServerCommand::Close { code, reason, .. } => {
                return Err(format!("the server closed the connection: {code} {reason}"));
            }
            _ => {}
        }
    }
}

/// Reads `stream` from `offset` until the run stops, or until all consumers together have
/// read `until` records (then sets `stop` and wakes `done`). One credit goes back per chunk
/// read, after every chunk already received has been counted.
pub async fn consumer(
    uri: Arc<Uri>,
    args: Arc<Args>,
    stream: String,
    stats: Arc<Stats>,
    until: Option<u64>,
    offset: OffsetSpec,
) -> Result<(), String> {
    let mut c = StreamClient::connect(&uri).await.map_err(err)?;
    c.subscribe(0, &stream, offset, args.credit.max(1))
        .await
        .map_err(err)?;
    stats.mark_subscribed();
    let skip_below = match offset {
        OffsetSpec::Offset(n) => n,
        _ => 0,
    };
    let mut lat = Vec::new();
    let mut credit = 0u16;
    while !stats.stop.load(Ordering::Relaxed) {
        let command = match c.try_command().map_err(err)? {
            Some(command) => command,
            None => {
                if credit > 0 {
                    c.credit(0, credit);
                    credit = 0;
                    c.flush().await.map_err(err)?;
                }
                // Wake up now and then to notice the end of the run.
                if let Ok(r) = tokio::time::timeout(Duration::from_millis(200), c.read_more()).await
                    && !r.map_err(err)?
                {
                    break;
                }
                continue;
            }
        };
        let chunk = match command {
            ServerCommand::Deliver { chunk, .. } => chunk,
            ServerCommand::Close { code, reason, .. } => {
                return Err(format!("the server closed the connection: {code} {reason}"));
            }
            _ => continue,
        };
        credit += 1;
        let n = count(
            &chunk,
            skip_below,
            (!stats.skip_latency).then_some(&mut lat),
        )?;
        let before = stats.consumed.fetch_add(n, Ordering::Relaxed);
        if let Some(until) = until
            && before < until
            && before + n >= until
        {
            stats.stop.store(true, Ordering::Relaxed);
            stats.done.notify_one();
        }
    }
    stats.latencies_us.lock().unwrap().extend(lat);
    c.unsubscribe(0);
    let _ = tokio::time::timeout(Duration::from_secs(2), c.close()).await;
    Ok(())
}

/// The user records of `chunk` (as Deliver carries it) at or past `skip_below`: from its
/// header alone, or, with `lat`, by reading each record for its latency (µs).
fn count(chunk: &Bytes, skip_below: u64, lat: Option<&mut Vec<u32>>) -> Result<u64, String> {
    let h = ChunkHeader::decode(chunk).map_err(|e| format!("delivered chunk: {e}"))?;
    if h.chunk_type != CHUNK_USER {
        return Ok(0);
    }
    let Some(lat) = lat else {
        let end = h.first_offset + h.num_records as u64;
        return Ok(end.saturating_sub(h.first_offset.max(skip_below)));
    };
    let now = now_ns();
    let mut n = 0;
    for (_, record) in records(chunk).filter(|(o, _)| *o >= skip_below) {
        n += 1;
        if let Some(body) = data_section_body(&record)
            && body.len() >= 8
        {
            let sent = u64::from_be_bytes(body[..8].try_into().unwrap());
            lat.push((now.saturating_sub(sent) / 1000).min(u32::MAX as u64) as u32);
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::stream::{ClientCommand, Entry};

    #[test]
    fn data_section_round_trip() {
        for len in [8usize, 16, 255, 256, 1024, 70_000] {
            let mut rec = data_section_header(len);
            rec.extend(std::iter::repeat_n(7u8, len));
            assert_eq!(data_section_body(&rec).map(|b| b.len()), Some(len));
        }
        assert_eq!(data_section_body(&[0x00, 0x53, 0x70]), None);
    }

    /// The publish frames written by hand are what the codec decodes: ids, one simple
    /// entry each holding the AMQP 1.0 data section, small bodies copied and large shared.
    #[test]
    fn publish_frames_decode_with_the_codec() {
        for size in [16usize, 1024, 8192] {
            let message = Message::new(size);
            let mut out = Output::with_capacity(1 << 16);
            message.put_frame(&mut out, 40, 3);
            let mut wire = Vec::new();
            futures_lite::future::block_on(out.write_to(&mut wire)).unwrap();
            assert_eq!(
                u32::from_be_bytes(wire[..4].try_into().unwrap()) as usize,
                wire.len() - 4
            );
            let ClientCommand::Publish(p) =
                ClientCommand::decode(Bytes::from(wire).slice(4..)).unwrap()
            else {
                panic!("a publish frame");
            };
            assert_eq!((p.publisher_id, p.count()), (0, 3));
            let ids: Vec<u64> = p.messages().map(|m| m.publishing_id).collect();
            assert_eq!(ids, vec![40, 41, 42]);
            for m in p.messages() {
                let Entry::Simple(record) = m.entry else {
                    panic!("a simple entry")
                };
                assert_eq!(data_section_body(&record).map(|b| b.len()), Some(size));
            }
        }
    }
}
