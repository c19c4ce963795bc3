//! Codec micro-benchmarks: the per-message cost of decoding a small publish (method +
//! header + 16-octet body) into a `Content`, and of encoding a publish and a deliver.
//!
//! Run: `cargo bench --bench codec`. Figures are per message (Throughput::Elements).
//! The `decode` group uses the codec's whole-content fast path
//! (`FrameCodec::set_whole_content`); `decode_by_frame` is the same without it, frame by
//! frame (as the broker's connection loop decodes today).

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tokio_util::codec::Decoder;
use warren::protocol::content::Assembled;
use warren::protocol::*;

const BATCH: usize = 1000;
const BODY: &[u8; 16] = b"0123456789abcdef";

fn props() -> EncodedProperties {
    EncodedProperties::from(&BasicProperties {
        content_type: Some(ShortStr::from_static("application/octet-stream")),
        delivery_mode: Some(1),
        ..Default::default()
    })
}

fn publish() -> Method {
    BasicPublish {
        exchange: ShortStr::from_static("amq.direct"),
        routing_key: ShortStr::from_static("bench"),
        mandatory: false,
        immediate: false,
    }
    .into()
}

fn wire(method: &Method, n: usize) -> BytesMut {
    let mut buf = BytesMut::new();
    for _ in 0..n {
        encode_content(&mut buf, 1, method, &props(), BODY, 131072);
    }
    buf
}

fn decode(c: &mut Criterion) {
    decode_group(c, "decode", true);
    decode_group(c, "decode_by_frame", false);
}

/// Bytes in, `Content`s out, per message; `whole`: the codec's whole-content fast path.
fn decode_group(c: &mut Criterion, group: &str, whole: bool) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, method) in [("publish_16B", publish()), ("deliver_16B", deliver())] {
        let input = wire(&method, BATCH);
        g.bench_function(name, |b| {
            b.iter_batched(
                || input.clone(),
                |mut buf| {
                    let mut codec = FrameCodec::new(131072);
                    codec.set_whole_content(whole);
                    let mut asm = ContentAssembler::default();
                    let mut n = 0;
                    // Matched as the broker's connection loop does: `Ok(Some(frame))`.
                    loop {
                        let frame = match codec.decode(&mut buf) {
                            Ok(Some(frame)) => frame,
                            Ok(None) => break,
                            Err(e) => panic!("{e}"),
                        };
                        match asm.push(frame) {
                            Ok(Some(Assembled::Content(c))) => {
                                black_box(&c);
                                n += 1;
                            }
                            Ok(_) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                    assert_eq!(n, BATCH);
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn deliver() -> Method {
    BasicDeliver {
        consumer_tag: ShortStr::from_static("amq.ctag-0123456789abcdef"),
        delivery_tag: 42,
        redelivered: false,
        exchange: ShortStr::from_static("amq.direct"),
        routing_key: ShortStr::from_static("bench"),
    }
    .into()
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    let props = props();
    let body = Bytes::from_static(BODY);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let exchange = ShortStr::from_static("amq.direct");
    let rk = ShortStr::from_static("bench");
    let tag = ShortStr::from_static("amq.ctag-0123456789abcdef");
    g.bench_function("publish_16B", |b| {
        b.iter(|| {
            if buf.len() > 60 * 1024 {
                buf.clear();
            }
            let m: Method = BasicPublish {
                exchange: exchange.clone(),
                routing_key: rk.clone(),
                mandatory: false,
                immediate: false,
            }
            .into();
            encode_content(&mut buf, 1, &m, &props, &body, 131072);
        })
    });
    let mut tag_no = 0u64;
    g.bench_function("deliver_16B", |b| {
        b.iter(|| {
            if buf.len() > 60 * 1024 {
                buf.clear();
            }
            tag_no += 1;
            let m: Method = BasicDeliver {
                consumer_tag: tag.clone(),
                delivery_tag: tag_no,
                redelivered: false,
                exchange: exchange.clone(),
                routing_key: rk.clone(),
            }
            .into();
            encode_content(&mut buf, 1, &m, &props, &body, 131072);
        })
    });
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
