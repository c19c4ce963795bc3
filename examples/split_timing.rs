use bytes::{Buf, BytesMut};
use std::time::Instant;
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
    let n = 1_000_000usize;
    let mut buf = BytesMut::with_capacity(one.len() * n);
    for _ in 0..n {
        buf.extend_from_slice(&one);
    }
    let t = Instant::now();
    let mut c = 0;
    while buf.len() >= 7 {
        let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
        buf.advance(7);
        let p = buf.split_to(size).freeze();
        buf.advance(1);
        std::hint::black_box(&p);
        c += 1;
    }
    println!("{c} frames split only {:?}/msg", t.elapsed() / n as u32);
}
