//! Fuzzes what a stream-protocol peer's bytes reach: frame splitting with frame_max, every
//! client command's decoder (publish messages iterated to the end), and the client-side
//! decoder of server frames. Any panic, hang or out-of-bounds access is a bug.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use warren::protocol::stream::{ClientCommand, FrameCodec, ServerCommand};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // The first octet picks frame_max: unlimited, the pre-open ceiling, or small values
    // that make the oversize path reachable.
    let frame_max = match mode % 4 {
        0 => 0,
        1 => 8192,
        2 => 1_048_576,
        _ => u32::from(mode),
    };
    let mut codec = FrameCodec::new(frame_max);
    let mut buf = BytesMut::from(rest);
    while let Ok(Some(frame)) = codec.decode_frame(&mut buf) {
        if let Ok(ClientCommand::Publish(p)) = ClientCommand::decode(frame.clone()) {
            assert_eq!(p.messages().count(), p.count() as usize);
        }
        let _ = ServerCommand::decode(frame);
    }
    // The whole input as one frame body, so short inputs reach the command decoders.
    let whole = Bytes::copy_from_slice(rest);
    let _ = ClientCommand::decode(whole.clone());
    let _ = ServerCommand::decode(whole);
});
