//! Fuzzes everything a peer's bytes reach before the broker acts on them: frame splitting
//! (sizes, frame-end, frame_max), method decoding, content-header properties (every
//! property, read through the accessors and decoded whole), field tables, the content
//! assembler, and the codec's whole-content fast path. Any panic, hang or out-of-bounds access is a bug.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use warren::protocol::table::decode_table;
use warren::protocol::{ContentAssembler, Frame, FrameCodec};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // The first octet picks frame_max: unlimited, the pre-tune minimum, or small values
    // that make oversize-frame handling reachable.
    let frame_max = match mode % 4 {
        0 => 0,
        1 => 4096,
        2 => 131072,
        _ => 8 + u32::from(mode),
    };
    let mut codec = FrameCodec::new(frame_max);
    // Half the inputs go through the whole-content fast path.
    codec.set_whole_content(mode & 4 != 0);
    let mut buf = BytesMut::from(rest);
    let mut assembler = ContentAssembler::default();
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => {
                if let Frame::Header { properties, .. }
                | Frame::Content {
                    content: warren::protocol::Content { properties, .. },
                    ..
                } = &frame
                {
                    let _ = properties.decode().expect("checked properties decode");
                    let _ = properties.headers();
                    let _ = properties.cluster_id();
                }
                let _ = assembler.push(frame);
            }
            Ok(None) | Err(_) => break,
        }
    }
    let _ = decode_table(&bytes::Bytes::copy_from_slice(rest));
});
