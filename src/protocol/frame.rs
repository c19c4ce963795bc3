//! Frames: the protocol header, and a tokio-util codec for method, header, body and
//! heartbeat frames.
//!
//! Splitting needs no parser: read the 7-octet header, check the size against `frame_max`,
//! wait for the whole frame, check the frame-end octet, then `split_to(..).freeze()`. Method
//! and header payloads are decoded from that `Bytes`; body payloads are handed on as slices
//! of it, never copied.

use super::error::AmqpError;
use super::generated::*;
use super::properties::EncodedProperties;
use super::wire::WireError;
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
}

impl Frame {
    pub fn channel(&self) -> u16 {
        match self {
            Frame::Method { channel, .. }
            | Frame::Header { channel, .. }
            | Frame::Body { channel, .. } => *channel,
            Frame::Heartbeat => 0,
        }
    }
}

/// Frame header (type, channel, size) plus the frame-end octet.
pub const FRAME_OVERHEAD: usize = 8;
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
/// `frame_max` is the largest whole frame accepted (header and frame-end included); larger
/// frames are a FRAME_ERROR. Before tuning it is [`FRAME_MIN_SIZE`], as in RabbitMQ.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    frame_max: u32,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self {
            frame_max: FRAME_MIN_SIZE,
        }
    }
}

impl FrameCodec {
    pub fn new(frame_max: u32) -> Self {
        Self { frame_max }
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
        if src.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let kind = src[0];
        let channel = u16::from_be_bytes([src[1], src[2]]);
        let size = u32::from_be_bytes([src[3], src[4], src[5], src[6]]) as usize;
        if self.frame_max != 0 && size > self.frame_max as usize - FRAME_OVERHEAD {
            return Err(AmqpError::frame_error(format!(
                "type {kind}, all octets = <<>>: {{frame_too_large,{size},{}}}",
                self.frame_max as usize - FRAME_OVERHEAD
            ))
            .into());
        }
        let total = size + FRAME_OVERHEAD;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        if src[total - 1] != FRAME_END {
            return Err(AmqpError::frame_error(format!(
                "type {kind}, all octets = {}: {{invalid_frame_end_marker,{}}}",
                erlang_binary(&src[FRAME_HEADER_LEN..total - 1]),
                src[total - 1]
            ))
            .into());
        }
        src.advance(FRAME_HEADER_LEN);
        let payload = src.split_to(size).freeze();
        src.advance(1);
        decode_payload(kind, channel, payload)
            .map(Some)
            .map_err(Into::into)
    }
}

/// Decodes one frame's payload.
#[inline]
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
    if payload.len() < 4 {
        return Err(AmqpError::frame_error("method frame too short"));
    }
    let class_id = u16::from_be_bytes([payload[0], payload[1]]);
    let method_id = u16::from_be_bytes([payload[2], payload[3]]);
    let args = &payload[4..];
    // RabbitMQ's text: "cannot decode <<the argument octets>>".
    let bad = |e| AmqpError::from_wire(e, &erlang_binary(args)).on(class_id, method_id);
    match Method::decode_args(class_id, method_id, args, payload) {
        None => Err(AmqpError::new(
            reply_code::COMMAND_INVALID,
            format!("unknown method {class_id}/{method_id}"),
        )
        .on(class_id, method_id)),
        Some(Ok(([], method))) => Ok(method),
        Some(Ok(_)) | Some(Err(nom::Err::Incomplete(_))) => Err(bad(WireError::Truncated)),
        Some(Err(nom::Err::Error(e) | nom::Err::Failure(e))) => Err(bad(e)),
    }
}

#[inline]
fn decode_header(channel: u16, mut payload: Bytes) -> Result<Frame, AmqpError> {
    let bad = |e| AmqpError::from_wire(e, "content header");
    if payload.len() < 14 {
        return Err(bad(WireError::Truncated));
    }
    let class_id = payload.get_u16();
    let _weight = payload.get_u16();
    let body_size = payload.get_u64();
    // What is left is the flags and properties: kept as they are, no new reference.
    let properties = EncodedProperties::from_wire(payload).map_err(bad)?;
    Ok(Frame::Header {
        channel,
        class_id,
        body_size,
        properties,
    })
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
