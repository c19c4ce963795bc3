//! Splitting the byte stream into frames: a u32 size prefix (not counting itself), then
//! that many octets. The size is checked against the connection's frame_max before
//! anything is reserved, so a peer cannot make the broker allocate a frame it will refuse;
//! a whole frame is cut off the read buffer with `split_to(..).freeze()`, so everything
//! decoded from it (publish payloads included) shares the read buffer's memory.

use super::client::ClientCommand;
use super::codes::INITIAL_FRAME_MAX;
use super::wire::StreamError;
use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// Decodes frames sent by a client. `frame_max` bounds the size field (RabbitMQ compares
/// the size without its own four octets); 0 means no limit. It starts at
/// [`INITIAL_FRAME_MAX`] and is raised to the tuned value once `open` succeeded.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    frame_max: u32,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(INITIAL_FRAME_MAX)
    }
}

impl FrameCodec {
    pub fn new(frame_max: u32) -> Self {
        Self { frame_max }
    }

    pub fn frame_max(&self) -> u32 {
        self.frame_max
    }

    pub fn set_frame_max(&mut self, frame_max: u32) {
        self.frame_max = frame_max;
    }

    /// The next whole frame (without its size prefix), None when more octets are needed.
    /// An error leaves `src` as it was: the connection is to be closed.
    pub fn decode_frame(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, StreamError> {
        let Some(head) = src.first_chunk::<4>() else {
            return Ok(None);
        };
        let size = u32::from_be_bytes(*head);
        if self.frame_max != 0 && size > self.frame_max {
            return Err(StreamError::FrameTooLarge {
                size,
                max: self.frame_max,
            });
        }
        let total = size as usize + 4;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(src.split_to(size as usize).freeze()))
    }
}

impl Decoder for FrameCodec {
    type Item = ClientCommand;
    type Error = StreamError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<ClientCommand>, StreamError> {
        match self.decode_frame(src)? {
            Some(frame) => ClientCommand::decode(frame).map(Some),
            None => Ok(None),
        }
    }
}

impl From<std::io::Error> for StreamError {
    /// tokio-util's `Decoder` wants errors built from I/O errors; an I/O error reaching a
    /// decoder is the stream ending mid-frame.
    fn from(_: std::io::Error) -> Self {
        StreamError::Malformed {
            key: 0,
            what: "I/O error",
        }
    }
}
