//! Fuzzes the AMQP 1.0 message-format codec a stream entry reaches: value and section
//! decoding, typed `Message` decoding and its re-encoding, and the conversion to 0-9-1 that
//! every 0-9-1 delivery from a stream makes. Also checks that a decoded message re-encodes
//! to something that decodes to the same message, and that converting a 0-9-1 message and
//! back never fails. Any panic, hang or out-of-bounds access is a bug.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use warren::protocol::amqp10::{Message, Value, from_amqp091, set_stream_offset, to_amqp091};

fuzz_target!(|data: &[u8]| {
    let input = Bytes::copy_from_slice(data);
    let _ = Value::decode(&input);
    if let Ok(m) = Message::decode(&input) {
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        let again = Message::decode(&buf.freeze()).expect("re-encoded message decodes");
        // NaN floats compare unequal; compare the encodings instead.
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        m.encode(&mut a);
        again.encode(&mut b);
        assert_eq!(a, b);
    }
    if let Ok(mut c) = to_amqp091(&input) {
        set_stream_offset(&mut c.properties, 1);
        // What a 0-9-1 consumer got, published again over 0-9-1 into a stream.
        let mut out = BytesMut::new();
        let ex = c.exchange.as_ref().map(|e| e.as_bytes()).unwrap_or(b"");
        let rk = c.routing_key.as_ref().map(|r| r.as_bytes()).unwrap_or(b"");
        from_amqp091(ex, rk, &c.properties, &c.body, &mut out);
        to_amqp091(&out.freeze()).expect("Warren's own entry converts");
    }
});
