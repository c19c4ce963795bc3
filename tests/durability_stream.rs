//! Streams across `kill -9`: every confirmed message comes back at its offset with its
//! body and properties, offsets continue where they stopped, and retention (whole segments
//! by size) still holds after the restart.

mod common;
mod durable;

use common::{Deliveries, table};
use durable::{Stop, TempDir, bounded, confirming_channel, message_count};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

async fn declare_stream(ch: &Channel, name: &str, extra: &[(&str, AMQPValue)]) {
    let mut args = vec![("x-queue-type", AMQPValue::LongString("stream".into()))];
    args.extend(extra.iter().cloned());
    let opts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(name.into(), opts, table(&args))
        .await
        .unwrap();
}

/// Publishes `ids` as bodies (transient: a stream keeps every message), each with an
/// `id` header and a content type, then awaits every confirm.
async fn publish_all(ch: &Channel, stream: &str, ids: impl Iterator<Item = u64>, size: usize) {
    let mut confirms = Vec::new();
    for id in ids {
        let mut body = id.to_string().into_bytes();
        body.resize(size.max(body.len()), b' ');
        let props = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_headers(table(&[("id", AMQPValue::LongLongInt(id as i64))]));
        let c = ch
            .basic_publish(
                "".into(),
                stream.into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await
            .unwrap();
        confirms.push(c);
    }
    for c in confirms {
        assert!(c.await.unwrap().is_ack());
    }
}

/// [`publish_all`] of 1 KiB messages, 40 at a time, each group confirmed before the next.
async fn publish_grouped(ch: &Channel, stream: &str, ids: std::ops::Range<u64>) {
    for start in ids.clone().step_by(40) {
        publish_all(ch, stream, start..(start + 40).min(ids.end), 1024).await;
    }
}

fn header(d: &lapin::message::Delivery, name: &str) -> Option<i64> {
    match d.properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongLongInt(n) => Some(*n),
        other => panic!("{name} should be a long-long, got {other:?}"),
    }
}

/// Reads `n` messages from `offset` (acknowledging each); returns (x-stream-offset, id
/// header, body) of each.
async fn read(conn: &Connection, stream: &str, offset: AMQPValue, n: usize) -> Vec<(i64, i64)> {
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(100, BasicQosOptions::default()).await.unwrap();
    let consumer = ch
        .basic_consume(
            stream.into(),
            "".into(),
            BasicConsumeOptions::default(),
            table(&[("x-stream-offset", offset)]),
        )
        .await
        .unwrap();
    let mut deliveries = Deliveries::new(consumer);
    let mut out = Vec::new();
    while out.len() < n {
        let d = deliveries.next().await;
        assert_eq!(
            d.properties.content_type().as_ref(),
            Some(&ShortString::from("text/plain"))
        );
        let offset = header(&d, "x-stream-offset").expect("x-stream-offset");
        let id = header(&d, "id").expect("the id header");
        let body = String::from_utf8_lossy(&d.data).trim_end().to_string();
        assert_eq!(body, id.to_string(), "body and header of offset {offset}");
        out.push((offset, id));
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    let _ = ch.close(200, "OK".into()).await;
    out
}

#[tokio::test]
async fn confirmed_messages_survive_sigkill_at_their_offsets() {
    bounded(LIMIT, async {
        let dir = TempDir::new("stream-kill");
        let broker = durable::start(dir.path()).await;
        let conn = broker.connect().await;
        let ch = confirming_channel(&conn).await;
        declare_stream(&ch, "events", &[]).await;
        publish_all(&ch, "events", 0..1000, 16).await;
        let broker = broker.restart(Stop::Kill).await;
        drop(conn);

        let conn = broker.connect().await;
        let got = read(&conn, "events", AMQPValue::LongString("first".into()), 1000).await;
        let want: Vec<(i64, i64)> = (0..1000).map(|i| (i, i)).collect();
        assert_eq!(got, want, "every confirmed message at its offset");

        // Offsets go on from where they stopped.
        let ch = confirming_channel(&conn).await;
        publish_all(&ch, "events", 1000..1010, 16).await;
        let got = read(&conn, "events", AMQPValue::LongLongInt(1000), 10).await;
        let want: Vec<(i64, i64)> = (1000..1010).map(|i| (i, i)).collect();
        assert_eq!(got, want);
    })
    .await;
}

#[tokio::test]
async fn retention_holds_across_a_restart() {
    bounded(LIMIT, async {
        let dir = TempDir::new("stream-retention");
        let broker = durable::start(dir.path()).await;
        let conn = broker.connect().await;
        let ch = confirming_channel(&conn).await;
        // Segments of ~64 KiB, at most ~256 KiB kept: old segments go, whole.
        let args = [
            ("x-max-length-bytes", AMQPValue::LongLongInt(256 << 10)),
            (
                "x-stream-max-segment-size-bytes",
                AMQPValue::LongLongInt(64 << 10),
            ),
        ];
        declare_stream(&ch, "logs", &args).await;
        // In confirmed groups of 40 (~45 KiB): a chunk holds at most what one group commit
        // took, and a segment rolls only between chunks, so without the groups a loaded
        // machine could put most of the messages into one chunk in the active segment,
        // which retention never removes.
        publish_grouped(&ch, "logs", 0..2000).await;
        let first_before = read(&conn, "logs", AMQPValue::LongString("first".into()), 1).await[0].0;
        assert!(first_before > 0, "retention removed the oldest segments");

        let broker = broker.restart(Stop::Kill).await;
        drop(conn);
        let conn = broker.connect().await;
        let first_after = read(&conn, "logs", AMQPValue::LongString("first".into()), 1).await[0].0;
        assert_eq!(first_after, first_before, "what was removed stays removed");
        let kept = message_count(&conn, "logs").await as i64;
        assert_eq!(kept, 2000 - first_after, "the rest is all there");

        // Retention still applies to what is published after the restart.
        let ch = confirming_channel(&conn).await;
        publish_grouped(&ch, "logs", 2000..4000).await;
        let first_later = read(&conn, "logs", AMQPValue::LongString("first".into()), 1).await[0].0;
        assert!(first_later > 3000, "first offset moved on: {first_later}");
        let last = read(&conn, "logs", AMQPValue::LongString("last".into()), 1).await[0].0;
        assert!(last <= 3999 && last >= first_later);
    })
    .await;
}

/// A gzip member of `data` (what the stream clients' gzip codecs write).
fn gzip(data: &[u8]) -> bytes::Bytes {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
    out.extend(crc32fast::hash(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    bytes::Bytes::from(out)
}

/// A confirmed gzip sub-entry batch (stream protocol, named publisher) survives `kill -9`:
/// delivered whole at its offset over the stream protocol, inflated into its records over
/// AMQP 0-9-1, its publishing id still deduplicated, and offsets go on after its records.
#[tokio::test]
async fn a_compressed_sub_entry_batch_survives_sigkill() {
    use common::stream_raw::{StreamConn, amqp_message};
    use warren::protocol::stream::{
        ClientCommand, Entry, OffsetSpec, Publish, PublishedMessage, ServerCommand, Str, code,
    };
    bounded(LIMIT, async {
        let dir = TempDir::new("stream-subbatch");
        let stream_addr = format!("127.0.0.1:{}", durable::free_port());
        let broker = durable::start_with(
            dir.path(),
            &[("WARREN_STREAM__LISTEN", stream_addr.as_str())],
        )
        .await;
        let connect = || async {
            let sock = tokio::net::TcpStream::connect(&stream_addr).await.unwrap();
            let mut c = StreamConn::new(sock);
            c.open_guest("durability").await;
            c
        };
        let s = Str::from("batched");
        let mut c = connect().await;
        let created = c
            .call(|id| ClientCommand::Create {
                correlation_id: id,
                stream: s.clone(),
                arguments: vec![],
            })
            .await;
        assert_eq!(created, code::OK);
        let declare = |id| ClientCommand::DeclarePublisher {
            correlation_id: id,
            publisher_id: 1,
            reference: Str::from("writer"),
            stream: s.clone(),
        };
        assert_eq!(c.call(declare).await, code::OK);
        let mut plain = Vec::new();
        for i in 0..100 {
            let m = amqp_message(format!("record {i}").as_bytes());
            plain.extend((m.len() as u32).to_be_bytes());
            plain.extend(&m[..]);
        }
        let batch = Entry::SubBatch {
            compression: 1,
            count: 100,
            uncompressed_size: plain.len() as u32,
            data: gzip(&plain),
        };
        let publish = |id, entry| {
            ClientCommand::Publish(Publish::new(
                1,
                1,
                &[PublishedMessage {
                    publishing_id: id,
                    filter_value: None,
                    entry,
                }],
            ))
        };
        c.send(publish(7, Entry::Simple(amqp_message(b"first"))))
            .await;
        c.send(publish(8, batch.clone())).await;
        let mut confirmed = Vec::new();
        while confirmed.len() < 2 {
            match c.recv().await.unwrap() {
                ServerCommand::PublishConfirm { publishing_ids, .. } => {
                    confirmed.extend(publishing_ids)
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(confirmed, [7, 8]);
        let broker = broker.restart(Stop::Kill).await;

        // The stream protocol: the batch whole, after "first", at offset 1.
        let mut c = connect().await;
        assert_eq!(c.call(declare).await, code::OK);
        let id = c.id();
        c.send(ClientCommand::QueryPublisherSequence {
            correlation_id: id,
            reference: Str::from("writer"),
            stream: s.clone(),
        })
        .await;
        match c.recv().await.unwrap() {
            ServerCommand::QueryPublisherSequenceResponse { sequence, .. } => {
                assert_eq!(sequence, 8)
            }
            other => panic!("{other:?}"),
        }
        // Its id again: confirmed, not stored; then one more message, at offset 101.
        c.send(publish(8, batch.clone())).await;
        c.send(publish(9, Entry::Simple(amqp_message(b"after"))))
            .await;
        let mut confirmed = Vec::new();
        while confirmed.len() < 2 {
            match c.recv().await.unwrap() {
                ServerCommand::PublishConfirm { publishing_ids, .. } => {
                    confirmed.extend(publishing_ids)
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(confirmed, [8, 9]);
        let id = c.id();
        c.send(ClientCommand::Subscribe {
            correlation_id: id,
            subscription_id: 1,
            stream: s.clone(),
            offset: OffsetSpec::Offset(1),
            credit: 10,
            properties: vec![],
        })
        .await;
        // The batch, byte for byte as published (one entry: flags, record count,
        // uncompressed size, size, the gzip data).
        let mut want = vec![0x90, 0, 100];
        want.extend((plain.len() as u32).to_be_bytes());
        let Entry::SubBatch { data, .. } = &batch else {
            unreachable!()
        };
        want.extend((data.len() as u32).to_be_bytes());
        want.extend(&data[..]);
        let (mut starts, mut found) = (Vec::new(), false);
        while starts.last() != Some(&101) {
            match c.recv().await.unwrap() {
                ServerCommand::Response { code: 1, .. } => {}
                ServerCommand::Deliver { chunk, .. } => {
                    found |= chunk.windows(want.len()).any(|w| w == &want[..]);
                    starts.push(u64::from_be_bytes(chunk[24..32].try_into().unwrap()));
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(found, "the batch is delivered whole");
        assert!(starts[0] <= 1, "{starts:?}");
        drop(c);

        // AMQP 0-9-1: the records, inflated, at offsets 1..=100, then "after".
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        ch.basic_qos(200, BasicQosOptions::default()).await.unwrap();
        let consumer = ch
            .basic_consume(
                "batched".into(),
                "".into(),
                BasicConsumeOptions::default(),
                table(&[("x-stream-offset", AMQPValue::LongLongInt(1))]),
            )
            .await
            .unwrap();
        let mut deliveries = Deliveries::new(consumer);
        for i in 1..=101 {
            let d = deliveries.next().await;
            assert_eq!(header(&d, "x-stream-offset"), Some(i));
            let want = if i == 101 {
                "after".to_string()
            } else {
                format!("record {}", i - 1)
            };
            assert_eq!(String::from_utf8_lossy(&d.data), want);
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
    })
    .await;
}
