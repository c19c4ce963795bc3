//! Primitive types of the stream protocol: big-endian integers, `string` (int16 length,
//! -1 for null), `bytes` (int32 length, -1 for null), arrays (int32 count); the one
//! decoding error; a reader over a frame that hands out zero-copy slices.

use super::codes::code;
use bytes::{BufMut, Bytes, BytesMut};

crate::protocol::types::string_type!(
    /// A stream-protocol `string`, kept as the bytes it was decoded from (a slice of the
    /// frame). A null string (length -1) decodes as the empty string: RabbitMQ treats both
    /// alike (an empty publisher reference is no reference). Invariant for encoding: at
    /// most `i16::MAX` octets (anything decoded is); a longer one is cut when encoded.
    Str
);

/// Why a frame could not be decoded. Each kind maps to the response code the server
/// closes the connection with ([`StreamError::response_code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The size prefix announces more than the connection's frame_max: refused before any
    /// of it is buffered.
    #[error("frame size ({size} bytes) exceeds maximum ({max} bytes)")]
    FrameTooLarge { size: u32, max: u32 },
    /// A key (or a version of it) this codec does not know, in this direction.
    #[error("unknown command key {key:#06x} version {version}")]
    UnknownCommand { key: u16, version: u16 },
    /// A known command whose body does not parse (truncated, trailing octets, a length or
    /// count that does not add up, an unknown offset type).
    #[error("malformed frame (key {key:#06x}): {what}")]
    Malformed { key: u16, what: &'static str },
}

impl StreamError {
    /// The code of the close the server sends (RabbitMQ: `frame too large` for the first,
    /// `unknown frame` for anything it cannot parse).
    pub fn response_code(&self) -> u16 {
        match self {
            StreamError::FrameTooLarge { .. } => code::FRAME_TOO_LARGE,
            _ => code::UNKNOWN_FRAME,
        }
    }
}

/// Reads a frame body front to back. Every read checks the length first; slices share the
/// frame's buffer.
pub(crate) struct Reader {
    frame: Bytes,
    pos: usize,
    key: u16,
}

pub(crate) type Res<T> = Result<T, StreamError>;

impl Reader {
    pub(crate) fn new(frame: Bytes, pos: usize, key: u16) -> Self {
        Self { frame, pos, key }
    }

    pub(crate) fn malformed(&self, what: &'static str) -> StreamError {
        StreamError::Malformed {
            key: self.key,
            what,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.frame.len() - self.pos
    }

    fn take<const N: usize>(&mut self) -> Res<[u8; N]> {
        match self.frame.get(self.pos..self.pos + N) {
            Some(s) => {
                self.pos += N;
                let mut a = [0; N];
                a.copy_from_slice(s);
                Ok(a)
            }
            None => Err(self.malformed("truncated")),
        }
    }

    pub(crate) fn u8(&mut self) -> Res<u8> {
        Ok(self.take::<1>()?[0])
    }
    pub(crate) fn u16(&mut self) -> Res<u16> {
        Ok(u16::from_be_bytes(self.take()?))
    }
    pub(crate) fn peek_u16(&self) -> Res<u16> {
        match self.frame.get(self.pos..self.pos + 2) {
            Some(s) => Ok(u16::from_be_bytes([s[0], s[1]])),
            None => Err(self.malformed("truncated")),
        }
    }
    pub(crate) fn u32(&mut self) -> Res<u32> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    pub(crate) fn u64(&mut self) -> Res<u64> {
        Ok(u64::from_be_bytes(self.take()?))
    }
    pub(crate) fn i64(&mut self) -> Res<i64> {
        Ok(i64::from_be_bytes(self.take()?))
    }

    /// `n` octets as a slice of the frame.
    pub(crate) fn slice(&mut self, n: usize) -> Res<Bytes> {
        if n > self.remaining() {
            return Err(self.malformed("truncated"));
        }
        let s = self.frame.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(s)
    }

    /// `string`: int16 length, -1 = null (read as empty).
    pub(crate) fn str(&mut self) -> Res<Str> {
        match self.u16()? as i16 {
            -1 => Ok(Str::default()),
            n if n < 0 => Err(self.malformed("negative string length")),
            n => Ok(Str(self.slice(n as usize)?)),
        }
    }

    /// `bytes`: int32 length, -1 = null (read as empty).
    pub(crate) fn bytes(&mut self) -> Res<Bytes> {
        match self.u32()? as i32 {
            -1 => Ok(Bytes::new()),
            n if n < 0 => Err(self.malformed("negative bytes length")),
            n => self.slice(n as usize),
        }
    }

    /// An array count, bounded by what is left: each element takes at least `min_size`
    /// octets, so a count the frame cannot hold is refused before anything is allocated.
    pub(crate) fn count(&mut self, min_size: usize) -> Res<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size.max(1)) > self.remaining() {
            return Err(self.malformed("array count larger than the frame"));
        }
        Ok(n)
    }

    /// `[Key Value]` with string keys and values.
    pub(crate) fn map(&mut self) -> Res<Vec<(Str, Str)>> {
        let n = self.count(4)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push((self.str()?, self.str()?));
        }
        Ok(v)
    }

    pub(crate) fn strings(&mut self) -> Res<Vec<Str>> {
        let n = self.count(2)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.str()?);
        }
        Ok(v)
    }

    /// The rest of the frame.
    pub(crate) fn rest(&mut self) -> Bytes {
        let s = self.frame.slice(self.pos..);
        self.pos = self.frame.len();
        s
    }

    /// Ends a decode: RabbitMQ matches each frame whole, so trailing octets make it
    /// unparsable.
    pub(crate) fn finish<T>(self, value: T) -> Res<T> {
        if self.remaining() != 0 {
            return Err(self.malformed("trailing octets"));
        }
        Ok(value)
    }
}

/// Writes a frame: reserves the size prefix, lets `body` write key, version and content,
/// then fills the size in.
pub(crate) fn frame(buf: &mut BytesMut, key: u16, version: u16, body: impl FnOnce(&mut BytesMut)) {
    let start = buf.len();
    buf.put_u32(0);
    buf.put_u16(key);
    buf.put_u16(version);
    body(buf);
    let size = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

pub(crate) fn put_str(buf: &mut BytesMut, s: &[u8]) {
    let n = s.len().min(i16::MAX as usize);
    buf.put_u16(n as u16);
    buf.put_slice(&s[..n]);
}

pub(crate) fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_u32(b.len() as u32);
    buf.put_slice(b);
}

pub(crate) fn put_map(buf: &mut BytesMut, m: &[(Str, Str)]) {
    buf.put_u32(m.len() as u32);
    for (k, v) in m {
        put_str(buf, k.as_bytes());
        put_str(buf, v.as_bytes());
    }
}

pub(crate) fn put_strings(buf: &mut BytesMut, v: &[Str]) {
    buf.put_u32(v.len() as u32);
    for s in v {
        put_str(buf, s.as_bytes());
    }
}
