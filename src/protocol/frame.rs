//! Frames: the protocol header, and a tokio-util codec for method, header, body and
//! heartbeat frames.
//!
//! Splitting needs no parser: read the 7-octet header, check the size against `frame_max`,
//! wait for the whole frame, check the frame-end octet, then `split_to(..).freeze()`. Method
//! and header payloads are decoded from that `Bytes`; body payloads are handed on as slices
//! of it, never copied.

use super::content::{Content, encode_content};
use super::error::AmqpError;
use super::generated::*;
use super::properties::EncodedProperties;
use super::wire::{ArgsError, WireError};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// A decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Method {
        channel: u16,
        method: Method,
    },
    Header {
        channel: u16,
        class_id: u16,
        body_size: u64,
        properties: EncodedProperties,
    },
    Body {
        channel: u16,
        payload: Bytes,
    },
    Heartbeat,
    /// A content method with its header and whole body, decoded at once: only from a codec
    /// with [`FrameCodec::set_whole_content`] on, when the three frames (or two, for an
    /// empty body) have arrived together. [`ContentAssembler::push`] hands it on as it is.
    ///
    /// [`ContentAssembler::push`]: super::content::ContentAssembler::push
    Content {
        channel: u16,
        content: Content,
    },
}

impl Frame {
    pub fn channel(&self) -> u16 {
        match self {
            Frame::Method { channel, .. }
            | Frame::Header { channel, .. }
            | Frame::Body { channel, .. }
            | Frame::Content { channel, .. } => *channel,
            Frame::Heartbeat => 0,
        }
    }
}

/// Frame header (type, channel, size) plus the frame-end octet.
pub const FRAME_OVERHEAD: usize = 8;

/// How far past `frame_max - FRAME_OVERHEAD` an incoming payload may go: RabbitMQ's
/// `?FRAME_SIZE_FUDGE` in rabbit_reader. Several clients compare their payloads with
/// frame_max itself, forgetting the frame's own eight octets, and RabbitMQ accepts them;
/// so does Warren, to work with those clients. What Warren sends stays within frame_max.
pub const FRAME_SIZE_FUDGE: usize = FRAME_OVERHEAD;
const FRAME_HEADER_LEN: usize = 7;

/// What the first eight octets of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderCheck {
    /// AMQP 0-9-1 (or 0-9, which RabbitMQ also serves as 0-9-1).
    Accepted,
    /// Anything else: answer with [`PROTOCOL_HEADER`] and close the socket.
    Refused,
}

pub fn check_protocol_header(h: &[u8; 8]) -> HeaderCheck {
    match h {
        b"AMQP\x00\x00\x09\x01" | b"AMQP\x01\x01\x00\x09" => HeaderCheck::Accepted,
        _ => HeaderCheck::Refused,
    }
}

/// Decodes frames on input and encodes them on output.
///
/// `frame_max` bounds the frames accepted: a payload may have up to `frame_max` octets, that
/// is `frame_max - FRAME_OVERHEAD` plus RabbitMQ's [`FRAME_SIZE_FUDGE`]; a larger one is a
/// FRAME_ERROR whose text names `frame_max - FRAME_OVERHEAD`, as RabbitMQ's does. Before
/// tuning it is [`FRAME_MIN_SIZE`], as in RabbitMQ: an unauthenticated peer cannot make
/// the broker wait for (and buffer) a larger frame.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    frame_max: u32,
    whole_content: bool,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(FRAME_MIN_SIZE)
    }
}

impl FrameCodec {
    pub fn new(frame_max: u32) -> Self {
        Self {
            frame_max,
            whole_content: false,
        }
    }

    /// With `on`, a content method (basic.publish, basic.deliver...) on a channel other
    /// than 0 whose header frame and single body frame are already in the buffer is
    /// decoded as one [`Frame::Content`], without building the three frames: the fast
    /// path for small messages. Anything else (a body over several frames, frames still
    /// missing, a malformed header, another channel's frame in between) is decoded frame
    /// by frame as without it, so the assembler sees the same stream and raises the same
    /// errors. One difference: when the content method's own arguments cannot be
    /// decoded, the error is returned after the header and body frames too are consumed
    /// (the error closes the connection either way). Off by default.
    pub fn set_whole_content(&mut self, on: bool) {
        self.whole_content = on;
    }

    /// Whether a frame payload of `size` octets is within frame_max, with RabbitMQ's
    /// tolerance (`frame_max - FRAME_OVERHEAD + FRAME_SIZE_FUDGE`).
    #[inline]
    fn fits(&self, size: usize) -> bool {
        self.frame_max == 0 || size <= self.frame_max as usize - FRAME_OVERHEAD + FRAME_SIZE_FUDGE
    }

    /// Sets the negotiated frame_max (0 means no limit).
    pub fn set_frame_max(&mut self, frame_max: u32) {
        self.frame_max = frame_max;
    }

    pub fn frame_max(&self) -> u32 {
        self.frame_max
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = CodecError;

    #[inline]
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let Some(head) = src.first_chunk::<FRAME_HEADER_LEN>() else {
            return Ok(None);
        };
        let kind = head[0];
        let channel = u16::from_be_bytes([head[1], head[2]]);
        let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
        if !self.fits(size) {
            return Err(too_large(kind, size, self.frame_max).into());
        }
        let total = size + FRAME_OVERHEAD;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        if src[total - 1] != FRAME_END {
            return Err(bad_frame_end(kind, &src[FRAME_HEADER_LEN..total]).into());
        }
        if self.whole_content
            && kind == FRAME_METHOD
            && channel != 0
            && let Some(at) = self.whole_content_at(src, channel, size)
        {
            return decode_whole_content(src, channel, size, &at);
        }
        src.advance(FRAME_HEADER_LEN);
        let payload = src.split_to(size).freeze();
        src.advance(1);
        // Each arm builds the frame where the caller will find it: no intermediate
        // `Result<Frame, _>` to move (a `Method` is over a hundred octets).
        match kind {
            FRAME_METHOD => match decode_method(&payload) {
                Ok(method) => Ok(Some(Frame::Method { channel, method })),
                Err(e) => Err(e.into()),
            },
            FRAME_HEADER => match decode_header(channel, payload) {
                Ok(frame) => Ok(Some(frame)),
                Err(e) => Err(e.into()),
            },
            FRAME_BODY => Ok(Some(Frame::Body { channel, payload })),
            _ => match decode_payload(kind, channel, payload) {
                Ok(frame) => Ok(Some(frame)),
                Err(e) => Err(e.into()),
            },
        }
    }
}

/// Where the parts of a whole content are, as offsets from the method frame's start.
struct WholeContent {
    properties: std::ops::Range<usize>,
    body: std::ops::Range<usize>,
    /// Octets of all the frames, frame-ends included.
    len: usize,
}

impl FrameCodec {
    /// If `src` starts with a complete content method frame of `size` octets (checked by
    /// the caller) followed by its complete header frame, well-formed properties and,
    /// unless the body is empty, one complete body frame of exactly the announced size,
    /// all on `channel` and within frame_max: where their parts are.
    #[inline]
    fn whole_content_at(&self, src: &[u8], channel: u16, size: usize) -> Option<WholeContent> {
        let ids = src.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + 4)?;
        let class_id = u16::from_be_bytes([ids[0], ids[1]]);
        if !Method::carries_content(class_id, u16::from_be_bytes([ids[2], ids[3]])) {
            return None;
        }
        let header_at = size + FRAME_OVERHEAD;
        let (header, header_end) = self.next_frame(src, header_at, FRAME_HEADER, channel)?;
        if header.len() < 14 || u16::from_be_bytes([header[0], header[1]]) != class_id {
            return None;
        }
        let body_size = u64::from_be_bytes(header[4..12].try_into().ok()?);
        let properties = header_at + FRAME_HEADER_LEN + 12..header_end - 1;
        if !matches!(EncodedProperties::check(&header[12..]), Ok(([], ()))) {
            return None;
        }
        if body_size == 0 {
            return Some(WholeContent {
                properties,
                body: 0..0,
                len: header_end,
            });
        }
        let (body, body_end) = self.next_frame(src, header_end, FRAME_BODY, channel)?;
        if body.len() as u64 != body_size {
            return None;
        }
        Some(WholeContent {
            properties,
            body: header_end + FRAME_HEADER_LEN..body_end - 1,
            len: body_end,
        })
    }

    /// The payload of the complete frame of `kind` on `channel` at `at`, and where that
    /// frame ends; `None` if it is another frame, incomplete, too large or badly ended.
    #[inline(always)]
    fn next_frame<'a>(
        &self,
        src: &'a [u8],
        at: usize,
        kind: u8,
        channel: u16,
    ) -> Option<(&'a [u8], usize)> {
        let head = src.get(at..)?.first_chunk::<FRAME_HEADER_LEN>()?;
        let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
        if head[0] != kind || u16::from_be_bytes([head[1], head[2]]) != channel || !self.fits(size)
        {
            return None;
        }
        let start = at + FRAME_HEADER_LEN;
        let end = start + size + 1;
        match src.get(start..end)?.split_last() {
            Some((&FRAME_END, payload)) => Some((payload, end)),
            _ => None,
        }
    }
}

/// Splits a whole content (see [`FrameCodec::whole_content_at`]) off `src` and decodes it:
/// one reference taken on the read buffer for all the frames, which the body then keeps.
/// Returns the decoder's own result type, built in place.
#[inline(always)]
fn decode_whole_content(
    src: &mut BytesMut,
    channel: u16,
    size: usize,
    at: &WholeContent,
) -> Result<Option<Frame>, CodecError> {
    let mut all = src.split_to(at.len).freeze();
    let properties = EncodedProperties(all.slice(at.properties.clone()));
    // `whole_content_at` checked the ids are there.
    let payload = &all[FRAME_HEADER_LEN..FRAME_HEADER_LEN + size];
    let class_id = u16::from_be_bytes([payload[0], payload[1]]);
    let method_id = u16::from_be_bytes([payload[2], payload[3]]);
    let args = &payload[4..];
    // The frame is made first, with a placeholder method (no fields, nothing to drop), and
    // the method decoded into it: built in place rather than moved (over 100 octets).
    let mut out = Ok(Some(Frame::Content {
        channel,
        content: Content {
            method: Method::BasicQosOk(BasicQosOk {}),
            properties,
            body: Bytes::new(),
        },
    }));
    let Ok(Some(Frame::Content { content, .. })) = &mut out else {
        unreachable!("just made")
    };
    match Method::decode_content_into(class_id, method_id, args, &all, &mut content.method) {
        Ok(()) if at.body.is_empty() => {}
        Ok(()) => {
            // The body keeps the reference taken on the read buffer.
            all.truncate(at.body.end);
            all.advance(at.body.start);
            content.body = all;
        }
        Err(e) => out = Err(bad_method(class_id, method_id, args, e).into()),
    }
    out
}

#[cold]
#[inline(never)]
fn too_large(kind: u8, size: usize, frame_max: u32) -> AmqpError {
    AmqpError::frame_error(format!(
        "type {kind}, all octets = <<>>: {{frame_too_large,{size},{}}}",
        (frame_max as usize).saturating_sub(FRAME_OVERHEAD)
    ))
}

/// `frame` is the payload and the (wrong) frame-end octet.
#[cold]
#[inline(never)]
fn bad_frame_end(kind: u8, frame: &[u8]) -> AmqpError {
    let (end, payload) = frame.split_last().expect("a frame-end octet");
    AmqpError::frame_error(format!(
        "type {kind}, all octets = {}: {{invalid_frame_end_marker,{end}}}",
        erlang_binary(payload),
    ))
}

/// Decodes one frame's payload.
pub fn decode_payload(kind: u8, channel: u16, payload: Bytes) -> Result<Frame, AmqpError> {
    match kind {
        FRAME_METHOD => decode_method(&payload).map(|method| Frame::Method { channel, method }),
        FRAME_HEADER => decode_header(channel, payload),
        FRAME_BODY => Ok(Frame::Body { channel, payload }),
        FRAME_HEARTBEAT if !payload.is_empty() => Err(AmqpError::frame_error(format!(
            "type {kind}, all octets = {}: unknown_frame",
            erlang_binary(&payload)
        ))),
        FRAME_HEARTBEAT if channel == 0 => Ok(Frame::Heartbeat),
        // RabbitMQ: UNEXPECTED_FRAME for a heartbeat on a channel other than 0.
        FRAME_HEARTBEAT => Err(AmqpError::unexpected_frame(format!(
            "type {kind}, all octets = <<>>"
        ))),
        other => Err(AmqpError::frame_error(format!(
            "type {other}, all octets = {}: unknown_frame",
            erlang_binary(&payload)
        ))),
    }
}

/// Octets as Erlang prints a binary (`<<"text">>` or `<<0,10>>`), for RabbitMQ's error
/// texts; long inputs are cut.
pub fn erlang_binary(octets: &[u8]) -> String {
    let cut = &octets[..octets.len().min(64)];
    let more = if cut.len() < octets.len() { ",..." } else { "" };
    if !cut.is_empty()
        && cut
            .iter()
            .all(|b| (0x20..0x7f).contains(b) && *b != b'"' && *b != b'\\')
    {
        format!("<<\"{}\"{more}>>", String::from_utf8_lossy(cut))
    } else {
        let nums: Vec<String> = cut.iter().map(|b| b.to_string()).collect();
        format!("<<{}{more}>>", nums.join(","))
    }
}

/// Decodes a method frame payload: class id, method id, arguments. Every octet must be used.
#[inline]
pub fn decode_method(payload: &Bytes) -> Result<Method, AmqpError> {
    decode_method_in(payload, payload)
}

/// Decodes a method frame `payload` that lies within `src` (strings become slices of it).
#[inline]
fn decode_method_in(payload: &[u8], src: &Bytes) -> Result<Method, AmqpError> {
    let Some((ids, args)) = payload.split_first_chunk::<4>() else {
        return Err(method_too_short());
    };
    let class_id = u16::from_be_bytes([ids[0], ids[1]]);
    let method_id = u16::from_be_bytes([ids[2], ids[3]]);
    match Method::decode_args(class_id, method_id, args, src) {
        Ok(method) => Ok(method),
        Err(e) => Err(bad_method(class_id, method_id, args, e)),
    }
}

#[cold]
#[inline(never)]
fn method_too_short() -> AmqpError {
    AmqpError::frame_error("method frame too short")
}

#[cold]
#[inline(never)]
fn bad_method(class_id: u16, method_id: u16, args: &[u8], e: ArgsError) -> AmqpError {
    match e {
        ArgsError::UnknownMethod => AmqpError::new(
            reply_code::COMMAND_INVALID,
            format!("unknown method {class_id}/{method_id}"),
        ),
        // RabbitMQ's text: "cannot decode <<the argument octets>>".
        ArgsError::Wire(e) => AmqpError::from_wire(e, &erlang_binary(args)),
    }
    .on(class_id, method_id)
}

#[inline]
fn decode_header(channel: u16, mut payload: Bytes) -> Result<Frame, AmqpError> {
    if payload.len() < 14 {
        return Err(bad_header(WireError::Truncated));
    }
    let class_id = payload.get_u16();
    let _weight = payload.get_u16();
    let body_size = payload.get_u64();
    // What is left is the flags and properties: kept as they are, no new reference.
    match EncodedProperties::from_wire(payload) {
        Ok(properties) => Ok(Frame::Header {
            channel,
            class_id,
            body_size,
            properties,
        }),
        Err(e) => Err(bad_header(e)),
    }
}

#[cold]
#[inline(never)]
fn bad_header(e: WireError) -> AmqpError {
    AmqpError::from_wire(e, "content header")
}

/// Starts a frame; returns where its size field is, for [`end_frame`].
#[inline]
fn begin_frame(buf: &mut BytesMut, kind: u8, channel: u16) -> usize {
    buf.put_u8(kind);
    buf.put_u16(channel);
    let at = buf.len();
    buf.put_u32(0);
    at
}

#[inline]
fn end_frame(buf: &mut BytesMut, size_at: usize) {
    let size = (buf.len() - size_at - 4) as u32;
    buf[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
    buf.put_u8(FRAME_END);
}

/// Appends a method frame.
pub fn encode_method(buf: &mut BytesMut, channel: u16, method: &Method) {
    let at = begin_frame(buf, FRAME_METHOD, channel);
    method.encode(buf);
    end_frame(buf, at);
}

/// Appends a content header frame of class basic.
pub fn encode_header(buf: &mut BytesMut, channel: u16, body_size: u64, props: &EncodedProperties) {
    let raw = props.as_bytes();
    buf.reserve(FRAME_OVERHEAD + 12 + raw.len());
    buf.put_u8(FRAME_HEADER);
    buf.put_u16(channel);
    buf.put_u32(12 + raw.len() as u32);
    buf.put_u16(BasicPublish::CLASS_ID);
    buf.put_u16(0);
    buf.put_u64(body_size);
    buf.put_slice(raw);
    buf.put_u8(FRAME_END);
}

/// Appends one body frame.
pub fn encode_body(buf: &mut BytesMut, channel: u16, payload: &[u8]) {
    buf.reserve(payload.len() + FRAME_OVERHEAD);
    buf.put_u8(FRAME_BODY);
    buf.put_u16(channel);
    buf.put_u32(payload.len() as u32);
    buf.put_slice(payload);
    buf.put_u8(FRAME_END);
}

pub fn encode_heartbeat(buf: &mut BytesMut) {
    buf.put_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

impl Encoder<&Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: &Frame, buf: &mut BytesMut) -> Result<(), CodecError> {
        match frame {
            Frame::Method { channel, method } => encode_method(buf, *channel, method),
            Frame::Header {
                channel,
                body_size,
                properties,
                ..
            } => encode_header(buf, *channel, *body_size, properties),
            Frame::Body { channel, payload } => encode_body(buf, *channel, payload),
            Frame::Heartbeat => encode_heartbeat(buf),
            Frame::Content { channel, content } => encode_content(
                buf,
                *channel,
                &content.method,
                &content.properties,
                &content.body,
                self.frame_max,
            ),
        }
        Ok(())
    }
}

/// Why the frame stream failed: the socket, or the peer breaking the protocol.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Amqp(#[from] AmqpError),
}
