//! Content: a method that carries a message (basic.publish, basic.deliver, ...), its
//! header frame and its body frames, assembled on input and split on output.

use super::error::AmqpError;
use super::frame::{FRAME_OVERHEAD, Frame, encode_body, encode_header, encode_method};
use super::generated::*;
use super::properties::EncodedProperties;
use bytes::{BufMut, Bytes, BytesMut};

/// A complete content-bearing method.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub method: Method,
    pub properties: EncodedProperties,
    pub body: Bytes,
}

/// What the assembler produced from a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Assembled {
    /// A method without content, ready to handle.
    Method(Method),
    /// A content method with its properties and whole body.
    Content(Content),
}

/// Where the assembler is. The pending method, properties and body live in the
/// assembler's own fields and are moved out once, when the content is complete.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Stage {
    #[default]
    Idle,
    Header,
    Body,
}

/// The most a multi-frame body reserves before its octets arrive.
const PREALLOCATE_MAX: u64 = 1 << 20;

/// RabbitMQ's default `max_message_size` (128 MiB): larger content is refused with
/// PRECONDITION_FAILED, which closes the channel.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 128 << 20;

/// Body parts received so far. A body that fits in one frame stays the frame's own `Bytes`;
/// only bodies spread over several frames are gathered into one buffer. That buffer is
/// sized from the announced size, but never more than [`PREALLOCATE_MAX`] up front: the
/// announcement is the peer's word, and memory is only committed as octets arrive.
#[derive(Debug, Default)]
enum Body {
    #[default]
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Empty => 0,
            Body::One(b) => b.len(),
            Body::Many(b) => b.len(),
        }
    }

    fn push(&mut self, part: Bytes, size: u64) {
        *self = match std::mem::take(self) {
            Body::Empty => Body::One(part),
            Body::One(first) => {
                let mut all = BytesMut::with_capacity(size.min(PREALLOCATE_MAX) as usize);
                all.put_slice(&first);
                all.put_slice(&part);
                Body::Many(all)
            }
            Body::Many(mut all) => {
                all.put_slice(&part);
                Body::Many(all)
            }
        }
    }

    fn finish(self) -> Bytes {
        match self {
            Body::Empty => Bytes::new(),
            Body::One(b) => b,
            Body::Many(b) => b.freeze(),
        }
    }
}

/// Per-channel state machine: method, then a header, then bodies until body-size is
/// reached. Any other frame in between is UNEXPECTED_FRAME (505), as in RabbitMQ.
#[derive(Debug)]
pub struct ContentAssembler {
    stage: Stage,
    method: Option<Method>,
    properties: EncodedProperties,
    size: u64,
    body: Body,
    max_size: u64,
}

impl Default for ContentAssembler {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE_SIZE)
    }
}

impl ContentAssembler {
    /// An assembler that refuses content larger than `max_size` octets.
    pub fn new(max_size: u64) -> Self {
        Self {
            stage: Stage::Idle,
            method: None,
            properties: EncodedProperties::default(),
            size: 0,
            body: Body::Empty,
            max_size,
        }
    }

    /// Whether content is half-received.
    pub fn is_busy(&self) -> bool {
        self.stage != Stage::Idle
    }

    fn pending_class(&self) -> u16 {
        self.method.as_ref().map_or(0, Method::class_id)
    }

    fn fail(&mut self, e: AmqpError) -> AmqpError {
        let e = match &self.method {
            Some(m) => e.caused_by(m),
            None => e,
        };
        *self = Self::new(self.max_size);
        e
    }

    #[inline]
    fn complete(&mut self, body: Bytes) -> Assembled {
        self.stage = Stage::Idle;
        let method = match self.method.take() {
            Some(m) => m,
            None => unreachable!("a pending content method"),
        };
        Assembled::Content(Content {
            method,
            properties: std::mem::take(&mut self.properties),
            body,
        })
    }

    /// Feeds one frame of this channel. `Ok(None)` means more frames are needed. A
    /// [`Frame::Content`] (from a codec decoding whole contents) is handed on as it is.
    #[inline]
    pub fn push(&mut self, frame: Frame) -> Result<Option<Assembled>, AmqpError> {
        // Matched on the frame alone (not a `(stage, frame)` tuple, which would copy it).
        match frame {
            Frame::Method { method, .. } if self.stage == Stage::Idle => {
                if method.has_content() {
                    self.method = Some(method);
                    self.stage = Stage::Header;
                    Ok(None)
                } else {
                    Ok(Some(Assembled::Method(method)))
                }
            }
            Frame::Content { content, .. } if self.stage == Stage::Idle => {
                let size = content.body.len() as u64;
                if size > self.max_size {
                    return Err(self.too_large(size).caused_by(&content.method));
                }
                Ok(Some(Assembled::Content(content)))
            }
            Frame::Header {
                class_id,
                body_size,
                properties,
                ..
            } if self.stage == Stage::Header => {
                let expected = self.pending_class();
                if class_id != expected {
                    return Err(self.wrong_class(expected, class_id));
                }
                self.properties = properties;
                if body_size == 0 {
                    return Ok(Some(self.complete(Bytes::new())));
                }
                if body_size > self.max_size {
                    // Refused before its body arrives: the channel closes, and the body
                    // frames that follow are dropped with everything else it receives.
                    let e = self.too_large(body_size);
                    return Err(self.fail(e));
                }
                self.size = body_size;
                self.stage = Stage::Body;
                Ok(None)
            }
            Frame::Body { payload, .. } if self.stage == Stage::Body => {
                // The usual case: the whole body in one frame.
                if matches!(self.body, Body::Empty) && payload.len() as u64 == self.size {
                    return Ok(Some(self.complete(payload)));
                }
                let have = self.body.len() as u64 + payload.len() as u64;
                if have > self.size {
                    return Err(self.too_long(have));
                }
                self.body.push(payload, self.size);
                if have == self.size {
                    let body = std::mem::take(&mut self.body).finish();
                    Ok(Some(self.complete(body)))
                } else {
                    Ok(None)
                }
            }
            _ => Err(self.unexpected()),
        }
    }

    #[cold]
    #[inline(never)]
    fn wrong_class(&mut self, expected: u16, class_id: u16) -> AmqpError {
        self.fail(AmqpError::unexpected_frame(format!(
            "expected content header for class {expected}, got one for class {class_id} instead"
        )))
    }

    #[cold]
    #[inline(never)]
    fn too_long(&mut self, have: u64) -> AmqpError {
        let size = self.size;
        self.fail(AmqpError::unexpected_frame(format!(
            "content body of {have} octets exceeds the announced body size {size}"
        )))
    }

    #[cold]
    #[inline(never)]
    fn too_large(&self, size: u64) -> AmqpError {
        AmqpError::channel(
            reply_code::PRECONDITION_FAILED,
            format!(
                "message size {size} is larger than configured max size {}",
                self.max_size
            ),
        )
    }

    /// A frame of the wrong kind for the stage.
    #[cold]
    #[inline(never)]
    fn unexpected(&mut self) -> AmqpError {
        match self.stage {
            Stage::Idle => {
                AmqpError::unexpected_frame("expected method frame, got non method frame instead")
            }
            Stage::Header => {
                let expected = self.pending_class();
                self.fail(AmqpError::unexpected_frame(format!(
                    "expected content header for class {expected}, got non content header frame instead"
                )))
            }
            Stage::Body => self.fail(AmqpError::unexpected_frame(
                "expected content body, got non content body frame instead",
            )),
        }
    }
}

/// Appends a content method, its header and its body split into frames of at most
/// `frame_max` octets (0: no limit). Written contiguously, as AMQP requires.
pub fn encode_content(
    buf: &mut BytesMut,
    channel: u16,
    method: &Method,
    properties: &EncodedProperties,
    body: &[u8],
    frame_max: u32,
) {
    encode_method(buf, channel, method);
    encode_header(buf, channel, body.len() as u64, properties);
    let chunk = if frame_max == 0 {
        body.len().max(1)
    } else {
        frame_max as usize - FRAME_OVERHEAD
    };
    for part in body.chunks(chunk) {
        encode_body(buf, channel, part);
    }
}
