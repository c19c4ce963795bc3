use bytes::{Bytes, BytesMut};
use std::time::Instant;
use warren::protocol::*;
fn main() {
    let m: Method = BasicPublish {
        exchange: "amq.direct".into(),
        routing_key: "bench".into(),
        ..Default::default()
    }
    .into();
    let mut b = BytesMut::new();
    m.encode(&mut b);
    let payload: Bytes = b.freeze();
    let props = EncodedProperties::from(&BasicProperties {
        content_type: Some("application/octet-stream".into()),
        delivery_mode: Some(1),
        ..Default::default()
    });
    let raw = props.as_bytes().clone();
    let n = 3_000_000u32;
    let t = Instant::now();
    for _ in 0..n {
        let r = frame::decode_method(std::hint::black_box(&payload));
        std::hint::black_box(&r);
    }
    println!("decode_method {:?}", t.elapsed() / n);
    let t = Instant::now();
    for _ in 0..n {
        let r = EncodedProperties::from_wire(std::hint::black_box(raw.clone()));
        std::hint::black_box(&r);
    }
    println!("props from_wire {:?}", t.elapsed() / n);
    let t = Instant::now();
    for _ in 0..n {
        let r = frame::decode_payload(1, 1, std::hint::black_box(payload.clone()));
        std::hint::black_box(&r);
    }
    println!("decode_payload(method) {:?}", t.elapsed() / n);
    let t = Instant::now();
    for _ in 0..n {
        let p = std::hint::black_box(&payload);
        let a = p.slice_ref(&p[7..17]);
        let b = p.slice_ref(&p[18..23]);
        std::hint::black_box((&a, &b));
    }
    println!("2x slice_ref+drop {:?}", t.elapsed() / n);
    let t = Instant::now();
    for _ in 0..n {
        let p = std::hint::black_box(&payload);
        let a = p.slice(7..17);
        std::hint::black_box(&a);
    }
    println!("1x slice+drop {:?}", t.elapsed() / n);
}
#[allow(dead_code)]
fn x() {}
