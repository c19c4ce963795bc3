use bytes::BytesMut;
use std::time::Instant;
use tokio_util::codec::Decoder;
use warren::protocol::content::Assembled;
use warren::protocol::*;
fn main() {
    let props = EncodedProperties::from(&BasicProperties {
        content_type: Some("application/octet-stream".into()),
        delivery_mode: Some(1),
        ..Default::default()
    });
    let m: Method = BasicPublish {
        exchange: "amq.direct".into(),
        routing_key: "bench".into(),
        ..Default::default()
    }
    .into();
    let mut one = BytesMut::new();
    encode_content(&mut one, 1, &m, &props, b"0123456789abcdef", 131072);
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut buf = BytesMut::with_capacity(one.len() * n);
    for _ in 0..n {
        buf.extend_from_slice(&one);
    }
    let mut b2 = buf.clone();
    let t = Instant::now();
    let mut codec = FrameCodec::new(131072);
    let mut c = 0;
    while let Some(f) = codec.decode(&mut b2).unwrap() {
        std::hint::black_box(&f);
        c += 1;
    }
    println!("{c} frames only {:?}/msg", t.elapsed() / n as u32);
    let t = Instant::now();
    let mut asm = ContentAssembler::new();
    let mut c = 0;
    while let Some(f) = codec.decode(&mut buf).unwrap() {
        if let Some(Assembled::Content(x)) = asm.push(f).unwrap() {
            std::hint::black_box(&x);
            c += 1;
        }
    }
    println!("{c} msgs {:?}/msg", t.elapsed() / n as u32);
}
