//! Per-message cost of the stream conversions: `from_amqp091` (a 0-9-1 publish into a
//! stream becomes an AMQP 1.0 entry) and `to_amqp091` (a stream entry delivered to a 0-9-1
//! consumer), for a 1 KiB body with a few properties and headers.
//!
//! Run: `cargo bench --bench amqp10`.
//!
//! First figures (shared 2-core machine, load ~3, lto off): from_amqp091 ~130 ns (most of
//! it the 1 KiB body copy into the entry), to_amqp091 ~1.1 us (decoding the annotation,
//! properties and application-properties sections into `Value`s, then building the
//! `FieldTable`: a handful of small allocations; the body is a slice, not copied).

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use warren::protocol::amqp10::{from_amqp091, set_stream_offset, to_amqp091};
use warren::protocol::{BasicProperties, FieldTable, FieldValue, ShortStr};

fn props() -> BasicProperties {
    let mut headers = FieldTable::new();
    headers.insert("tenant", "acme");
    headers.insert("attempt", FieldValue::I32(3));
    headers.insert("trace", FieldValue::I64(1_234_567_890_123));
    BasicProperties {
        content_type: Some(ShortStr::from_static("application/json")),
        delivery_mode: Some(2),
        message_id: Some(ShortStr::from_static(
            "7f7d0d5e-1f7c-4c6e-9a3b-0d2f3c4b5a69",
        )),
        timestamp: Some(1_700_000_000),
        headers: Some(headers),
        ..Default::default()
    }
}

fn conversions(c: &mut Criterion) {
    let p = props();
    let body = Bytes::from(vec![b'x'; 1024]);
    let mut g = c.benchmark_group("amqp10");
    g.throughput(Throughput::Elements(1));
    let mut out = BytesMut::with_capacity(4096);
    g.bench_function("from_amqp091_1k", |b| {
        b.iter(|| {
            out.clear();
            from_amqp091(
                b"amq.direct",
                b"orders",
                black_box(&p),
                black_box(&body),
                &mut out,
            );
            black_box(out.len())
        })
    });
    let mut entry = BytesMut::new();
    from_amqp091(b"amq.direct", b"orders", &p, &body, &mut entry);
    let entry = entry.freeze();
    g.bench_function("to_amqp091_1k", |b| {
        b.iter(|| black_box(to_amqp091(black_box(&entry)).unwrap()))
    });
    g.bench_function("to_amqp091_1k_with_offset", |b| {
        b.iter(|| {
            let mut c = to_amqp091(black_box(&entry)).unwrap();
            set_stream_offset(&mut c.properties, 42);
            black_box(c)
        })
    });
    g.finish();
}

criterion_group!(benches, conversions);
criterion_main!(benches);
