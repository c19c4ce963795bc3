//! Publishers and consumers of the stream mode over RabbitMQ's stream protocol
//! (`--protocol stream`), counting into the same [`Stats`] as the AMQP ones.
//!
//! A message is what RabbitMQ's stream clients write: an AMQP 1.0 message with one data
//! section holding the body, whose first 8 octets are the send time (as in every mode).

use super::args::Args;
use super::client::Uri;
use super::stream_client::{
    Chunk, DELIVER, OffsetSpec, PUBLISH_CONFIRM, PUBLISH_ERROR, StreamClient, parse_deliver,
};
use super::throughput::{Stats, err, now_ns};
use crate::protocol::output;
use bytes::{Buf, BufMut, Bytes};
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
    let size = args.size.max(8);
    let header = data_section_header(size);
    let record = header.len() + size;
    // publishing id, record length, record
    let entry = 8 + 4 + record;
    let per_frame = ((c.frame_max as usize).saturating_sub(64) / entry).max(1) as u64;
    let filler = vec![0u8; size - 8];
    let shared_tail = Bytes::from(filler.clone());
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
        // The frame's size is known up front, so large bodies can be shared segments.
        let b = c.wbuf.buf();
        b.put_u32((2 + 2 + 1 + 4 + n as usize * entry) as u32);
        b.put_u16(super::stream_client::PUBLISH);
        b.put_u16(1);
        b.put_u8(0);
        b.put_u32(n as u32);
        for i in 0..n {
            let b = c.wbuf.buf();
            b.put_u64(sent + i);
            b.put_u32(record as u32);
            b.put_slice(&header);
            b.put_u64(now_ns());
            if size < output::SHARE_MIN {
                b.put_slice(&filler);
            } else {
                c.wbuf.share(shared_tail.clone());
            }
        }
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
        let f = match c.try_frame().map_err(err)? {
            Some(f) => f,
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
        let mut b = f.body;
        match f.key {
            PUBLISH_CONFIRM if b.len() >= 5 => {
                b.advance(1);
                let ids = (b.get_u32() as u64).min(b.len() as u64 / 8);
                *confirmed += ids;
                stats.confirmed.fetch_add(ids, Ordering::Relaxed);
            }
            PUBLISH_ERROR if b.len() >= 15 => {
                b.advance(1 + 4 + 8);
                return Err(format!("publish error, code {}", b.get_u16()));
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
        let f = match c.try_frame().map_err(err)? {
            Some(f) => f,
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
        if f.key != DELIVER {
            continue;
        }
        let chunk = parse_deliver(f.body).ok_or("malformed deliver frame")?;
        credit += 1;
        if chunk.kind != 0 {
            continue;
        }
        let n = count(
            &chunk,
            skip_below,
            (!stats.skip_latency).then_some(&mut lat),
        );
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

/// The records of `chunk` at or past `skip_below`; with `lat`, each one's latency (µs).
fn count(chunk: &Chunk, skip_below: u64, lat: Option<&mut Vec<u32>>) -> u64 {
    let end = chunk.first_offset + chunk.records as u64;
    let Some(lat) = lat else {
        return end.saturating_sub(chunk.first_offset.max(skip_below));
    };
    let now = now_ns();
    let mut n = 0;
    chunk.for_each_record(|offset, record| {
        if offset < skip_below {
            return;
        }
        n += 1;
        if let Some(body) = data_section_body(record)
            && body.len() >= 8
        {
            let sent = u64::from_be_bytes(body[..8].try_into().unwrap());
            lat.push((now.saturating_sub(sent) / 1000).min(u32::MAX as u64) as u32);
        }
    });
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_section_round_trip() {
        for len in [8usize, 16, 255, 256, 1024, 70_000] {
            let mut rec = data_section_header(len);
            rec.extend(std::iter::repeat_n(7u8, len));
            assert_eq!(data_section_body(&rec).map(|b| b.len()), Some(len));
        }
        assert_eq!(data_section_body(&[0x00, 0x53, 0x70]), None);
    }
}
