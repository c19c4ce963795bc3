//! AMQP 1.0 primitive and described values (part 1 of the AMQP 1.0 specification, "Types").
//!
//! Decoding is zero-copy: binary, string and symbol values are `Bytes` slices of the input.
//! Strings are not checked for UTF-8 (RabbitMQ does not check them either); they are
//! carried as the octets that came. Decoding never panics, bounds its recursion at
//! [`MAX_DEPTH`], and never allocates more elements than the input has octets for.
//!
//! Encoding picks the smallest encoding of each value (`uint0`, `smallulong`, `str8`,
//! `list8`, ...), so `decode(encode(v)) == v` for every value, though not every input is
//! reproduced octet for octet (a `str32` holding three octets comes back as `str8`).

use super::error::Amqp10Error;
use bytes::{BufMut, Bytes, BytesMut};

/// How deep lists, maps, arrays and described values may nest. Bounds the decoder's
/// recursion so that hostile input cannot exhaust the stack; messages nest a few levels.
pub const MAX_DEPTH: usize = 32;

/// Most elements an array of zero-width elements (`null`, `true`, `uint0`, `list0`, ...)
/// may claim: such arrays cost no input octets per element, so their count is otherwise
/// unbounded by the input's size.
const MAX_ZERO_WIDTH_ELEMENTS: u32 = 4096;

pub type Result<T> = std::result::Result<T, Amqp10Error>;

/// One AMQP 1.0 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Ubyte(u8),
    Ushort(u16),
    Uint(u32),
    Ulong(u64),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    /// IEEE 754 decimal32, kept opaque (big-endian octets).
    Decimal32([u8; 4]),
    /// IEEE 754 decimal64, kept opaque.
    Decimal64([u8; 8]),
    /// IEEE 754 decimal128, kept opaque.
    Decimal128([u8; 16]),
    /// A UTF-32BE code point (not checked).
    Char(u32),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
    Binary(Bytes),
    /// UTF-8 text as it came (not checked).
    String(Bytes),
    Symbol(Bytes),
    List(Vec<Value>),
    /// Pairs in wire order (duplicate keys are kept).
    Map(Vec<(Value, Value)>),
    /// Elements of one type. Encoding takes the element constructor from the first
    /// element, so every element must be of the first one's variant (and described
    /// elements must share its descriptor).
    Array(Vec<Value>),
    /// `(descriptor, value)`.
    Described(Box<(Value, Value)>),
}

impl Value {
    /// A string value from text.
    pub fn string(s: &str) -> Self {
        Value::String(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// A symbol value from text.
    pub fn symbol(s: &str) -> Self {
        Value::Symbol(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// The octets of a string, symbol or binary value.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Value::String(b) | Value::Symbol(b) | Value::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// Decodes one value from the whole of `src` (trailing octets are an error).
    pub fn decode(src: &Bytes) -> Result<Value> {
        let mut r = Reader::new(src);
        let v = decode_value(&mut r, 0)?;
        if !r.is_empty() {
            return Err(Amqp10Error::Malformed("trailing octets after value"));
        }
        Ok(v)
    }

    /// Appends the value's smallest encoding to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) {
        encode_value(buf, self)
    }
}

/// A cursor over a `Bytes`, handing out slices of it.
pub(crate) struct Reader<'a> {
    src: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(src: &'a Bytes) -> Self {
        Reader {
            src,
            pos: 0,
            end: src.len(),
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.end
    }

    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    fn u8(&mut self) -> Result<u8> {
        if self.pos >= self.end {
            return Err(Amqp10Error::Truncated);
        }
        let b = self.src[self.pos];
        self.pos += 1;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        if self.remaining() < N {
            return Err(Amqp10Error::Truncated);
        }
        let mut a = [0u8; N];
        a.copy_from_slice(&self.src[self.pos..self.pos + N]);
        self.pos += N;
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_be_bytes)
    }

    /// The next `n` octets as a slice of the source.
    fn take(&mut self, n: usize) -> Result<Bytes> {
        if self.remaining() < n {
            return Err(Amqp10Error::Truncated);
        }
        let b = self.src.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(b)
    }

    /// A reader over the next `n` octets; `self` moves past them.
    fn sub(&mut self, n: usize) -> Result<Reader<'a>> {
        if self.remaining() < n {
            return Err(Amqp10Error::Truncated);
        }
        let r = Reader {
            src: self.src,
            pos: self.pos,
            end: self.pos + n,
        };
        self.pos += n;
        Ok(r)
    }
}

/// An element constructor: a format code, possibly with a descriptor (arrays of
/// described values share one).
enum Ctor {
    Code(u8),
    Described(Value, u8),
}

/// Decodes the value at the reader. `depth` counts enclosing compound values.
pub(crate) fn decode_value(r: &mut Reader<'_>, depth: usize) -> Result<Value> {
    let code = r.u8()?;
    if code == 0x00 {
        return decode_described(r, depth);
    }
    decode_payload(r, code, depth)
}

fn decode_described(r: &mut Reader<'_>, depth: usize) -> Result<Value> {
    if depth >= MAX_DEPTH {
        return Err(Amqp10Error::TooDeep);
    }
    let descriptor = decode_value(r, depth + 1)?;
    let value = decode_value(r, depth + 1)?;
    Ok(Value::Described(Box::new((descriptor, value))))
}

/// Decodes the payload that follows format code `code`.
fn decode_payload(r: &mut Reader<'_>, code: u8, depth: usize) -> Result<Value> {
    Ok(match code {
        0x40 => Value::Null,
        0x41 => Value::Bool(true),
        0x42 => Value::Bool(false),
        0x56 => Value::Bool(r.u8()? != 0),
        0x50 => Value::Ubyte(r.u8()?),
        0x60 => Value::Ushort(u16::from_be_bytes(r.array()?)),
        0x70 => Value::Uint(r.u32()?),
        0x52 => Value::Uint(r.u8()?.into()),
        0x43 => Value::Uint(0),
        0x80 => Value::Ulong(u64::from_be_bytes(r.array()?)),
        0x53 => Value::Ulong(r.u8()?.into()),
        0x44 => Value::Ulong(0),
        0x51 => Value::Byte(r.u8()? as i8),
        0x61 => Value::Short(i16::from_be_bytes(r.array()?)),
        0x71 => Value::Int(i32::from_be_bytes(r.array()?)),
        0x54 => Value::Int((r.u8()? as i8).into()),
        0x81 => Value::Long(i64::from_be_bytes(r.array()?)),
        0x55 => Value::Long((r.u8()? as i8).into()),
        0x72 => Value::Float(f32::from_be_bytes(r.array()?)),
        0x82 => Value::Double(f64::from_be_bytes(r.array()?)),
        0x74 => Value::Decimal32(r.array()?),
        0x84 => Value::Decimal64(r.array()?),
        0x94 => Value::Decimal128(r.array()?),
        0x73 => Value::Char(r.u32()?),
        0x83 => Value::Timestamp(i64::from_be_bytes(r.array()?)),
        0x98 => Value::Uuid(r.array()?),
        0xa0 => Value::Binary(var8(r)?),
        0xb0 => Value::Binary(var32(r)?),
        0xa1 => Value::String(var8(r)?),
        0xb1 => Value::String(var32(r)?),
        0xa3 => Value::Symbol(var8(r)?),
        0xb3 => Value::Symbol(var32(r)?),
        0x45 => Value::List(Vec::new()),
        0xc0 | 0xd0 | 0xc1 | 0xd1 | 0xe0 | 0xf0 => {
            if depth >= MAX_DEPTH {
                return Err(Amqp10Error::TooDeep);
            }
            let (mut body, count) = if matches!(code, 0xd0 | 0xd1 | 0xf0) {
                let size = r.u32()? as usize;
                let mut body = r.sub(size)?;
                let count = body.u32()?;
                (body, count)
            } else {
                let size = r.u8()? as usize;
                let mut body = r.sub(size)?;
                let count = body.u8()?.into();
                (body, count)
            };
            let v = match code {
                0xc0 | 0xd0 => Value::List(decode_items(&mut body, count, depth + 1)?),
                0xc1 | 0xd1 => Value::Map(decode_pairs(&mut body, count, depth + 1)?),
                _ => Value::Array(decode_array(&mut body, count, depth + 1)?),
            };
            if !body.is_empty() {
                return Err(Amqp10Error::Malformed("compound size exceeds its elements"));
            }
            v
        }
        other => return Err(Amqp10Error::UnknownCode(other)),
    })
}

fn var8(r: &mut Reader<'_>) -> Result<Bytes> {
    let n = r.u8()? as usize;
    r.take(n)
}

fn var32(r: &mut Reader<'_>) -> Result<Bytes> {
    let n = r.u32()? as usize;
    r.take(n)
}

/// Each element takes at least one octet, so a count above the octets left is a lie.
fn check_count(body: &Reader<'_>, count: u32) -> Result<usize> {
    let count = count as usize;
    if count > body.remaining() {
        return Err(Amqp10Error::Malformed("count exceeds size"));
    }
    Ok(count)
}

fn decode_items(body: &mut Reader<'_>, count: u32, depth: usize) -> Result<Vec<Value>> {
    let count = check_count(body, count)?;
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        items.push(decode_value(body, depth)?);
    }
    Ok(items)
}

fn decode_pairs(body: &mut Reader<'_>, count: u32, depth: usize) -> Result<Vec<(Value, Value)>> {
    let count = check_count(body, count)?;
    if count % 2 != 0 {
        return Err(Amqp10Error::Malformed("map with an odd element count"));
    }
    let mut pairs = Vec::with_capacity(count / 2);
    for _ in 0..count / 2 {
        let k = decode_value(body, depth)?;
        let v = decode_value(body, depth)?;
        pairs.push((k, v));
    }
    Ok(pairs)
}

fn decode_array(body: &mut Reader<'_>, count: u32, depth: usize) -> Result<Vec<Value>> {
    let ctor = match body.u8()? {
        0x00 => {
            let descriptor = decode_value(body, depth)?;
            match body.u8()? {
                0x00 => return Err(Amqp10Error::Malformed("nested described array constructor")),
                code => Ctor::Described(descriptor, code),
            }
        }
        code => Ctor::Code(code),
    };
    let code = match &ctor {
        Ctor::Code(c) | Ctor::Described(_, c) => *c,
    };
    let count = if matches!(code, 0x40..=0x45) {
        if count > MAX_ZERO_WIDTH_ELEMENTS {
            return Err(Amqp10Error::Malformed("too many zero-width array elements"));
        }
        count as usize
    } else {
        check_count(body, count)?
    };
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let v = decode_payload(body, code, depth)?;
        items.push(match &ctor {
            Ctor::Code(_) => v,
            Ctor::Described(d, _) => Value::Described(Box::new((d.clone(), v))),
        });
    }
    Ok(items)
}

// ---------------------------------------------------------------------------------------
// Encoding

fn encode_value(buf: &mut BytesMut, v: &Value) {
    if let Value::Described(dv) = v {
        buf.put_u8(0x00);
        encode_value(buf, &dv.0);
        encode_value(buf, &dv.1);
        return;
    }
    match v {
        Value::Null => buf.put_u8(0x40),
        Value::Bool(true) => buf.put_u8(0x41),
        Value::Bool(false) => buf.put_u8(0x42),
        Value::Uint(0) => buf.put_u8(0x43),
        Value::Uint(x) if *x < 256 => buf.put_slice(&[0x52, *x as u8]),
        Value::Ulong(0) => buf.put_u8(0x44),
        Value::Ulong(x) if *x < 256 => buf.put_slice(&[0x53, *x as u8]),
        Value::Int(x) if i8::try_from(*x).is_ok() => buf.put_slice(&[0x54, *x as u8]),
        Value::Long(x) if i8::try_from(*x).is_ok() => buf.put_slice(&[0x55, *x as u8]),
        Value::Binary(b) | Value::String(b) | Value::Symbol(b) if b.len() < 256 => {
            buf.put_u8(match v {
                Value::Binary(_) => 0xa0,
                Value::String(_) => 0xa1,
                _ => 0xa3,
            });
            buf.put_u8(b.len() as u8);
            buf.put_slice(b);
        }
        Value::List(items) => encode_list(buf, items),
        Value::Map(pairs) => encode_map(buf, pairs),
        Value::Array(items) => put_compound(buf, 0xe0, 0xf0, items.len(), 256, |buf| {
            put_array_body(buf, items)
        }),
        _ => {
            buf.put_u8(wide_code(v));
            put_payload(buf, v);
        }
    }
}

/// Encodes `items` as a list (smallest form), without building a [`Value::List`].
pub(crate) fn encode_list(buf: &mut BytesMut, items: &[Value]) {
    if items.is_empty() {
        return buf.put_u8(0x45);
    }
    put_compound(buf, 0xc0, 0xd0, items.len(), 256, |buf| {
        items.iter().for_each(|i| encode_value(buf, i))
    })
}

/// Encodes `pairs` as a map (smallest form), without building a [`Value::Map`].
pub(crate) fn encode_map(buf: &mut BytesMut, pairs: &[(Value, Value)]) {
    put_compound(buf, 0xc1, 0xd1, pairs.len() * 2, 256, |buf| {
        for (k, v) in pairs {
            encode_value(buf, k);
            encode_value(buf, v);
        }
    })
}

/// The one format code that can encode every value of `v`'s type: what arrays use.
fn wide_code(v: &Value) -> u8 {
    match v {
        Value::Null => 0x40,
        Value::Bool(_) => 0x56,
        Value::Ubyte(_) => 0x50,
        Value::Ushort(_) => 0x60,
        Value::Uint(_) => 0x70,
        Value::Ulong(_) => 0x80,
        Value::Byte(_) => 0x51,
        Value::Short(_) => 0x61,
        Value::Int(_) => 0x71,
        Value::Long(_) => 0x81,
        Value::Float(_) => 0x72,
        Value::Double(_) => 0x82,
        Value::Decimal32(_) => 0x74,
        Value::Decimal64(_) => 0x84,
        Value::Decimal128(_) => 0x94,
        Value::Char(_) => 0x73,
        Value::Timestamp(_) => 0x83,
        Value::Uuid(_) => 0x98,
        Value::Binary(_) => 0xb0,
        Value::String(_) => 0xb1,
        Value::Symbol(_) => 0xb3,
        Value::List(_) => 0xd0,
        Value::Map(_) => 0xd1,
        Value::Array(_) => 0xf0,
        Value::Described(dv) => wide_code(&dv.1),
    }
}

/// Writes `v`'s payload in the format of [`wide_code`] (no constructor).
fn put_payload(buf: &mut BytesMut, v: &Value) {
    match v {
        Value::Null => {}
        Value::Bool(b) => buf.put_u8(u8::from(*b)),
        Value::Ubyte(x) => buf.put_u8(*x),
        Value::Ushort(x) => buf.put_u16(*x),
        Value::Uint(x) => buf.put_u32(*x),
        Value::Ulong(x) => buf.put_u64(*x),
        Value::Byte(x) => buf.put_i8(*x),
        Value::Short(x) => buf.put_i16(*x),
        Value::Int(x) => buf.put_i32(*x),
        Value::Long(x) => buf.put_i64(*x),
        Value::Float(x) => buf.put_u32(x.to_bits()),
        Value::Double(x) => buf.put_u64(x.to_bits()),
        Value::Decimal32(x) => buf.put_slice(x),
        Value::Decimal64(x) => buf.put_slice(x),
        Value::Decimal128(x) => buf.put_slice(x),
        Value::Char(x) => buf.put_u32(*x),
        Value::Timestamp(x) => buf.put_i64(*x),
        Value::Uuid(x) => buf.put_slice(x),
        Value::Binary(b) | Value::String(b) | Value::Symbol(b) => {
            buf.put_u32(b.len() as u32);
            buf.put_slice(b);
        }
        Value::List(items) => put_wide(buf, items.len(), |buf| {
            items.iter().for_each(|i| encode_value(buf, i))
        }),
        Value::Map(pairs) => put_wide(buf, pairs.len() * 2, |buf| {
            for (k, v) in pairs {
                encode_value(buf, k);
                encode_value(buf, v);
            }
        }),
        Value::Array(items) => put_wide(buf, items.len(), |buf| put_array_body(buf, items)),
        Value::Described(dv) => put_payload(buf, &dv.1),
    }
}

/// An array's element constructor and elements (after its size and count).
fn put_array_body(buf: &mut BytesMut, items: &[Value]) {
    match items.first() {
        None => buf.put_u8(0x40),
        Some(Value::Described(dv)) => {
            buf.put_u8(0x00);
            encode_value(buf, &dv.0);
            buf.put_u8(wide_code(&dv.1));
        }
        Some(first) => buf.put_u8(wide_code(first)),
    }
    items.iter().for_each(|i| put_payload(buf, i));
}

/// A 32-bit size and count, then what `body` writes.
fn put_wide(buf: &mut BytesMut, count: usize, body: impl FnOnce(&mut BytesMut)) {
    let at = buf.len();
    buf.put_u32(0);
    buf.put_u32(count as u32);
    body(buf);
    let size = (buf.len() - at - 4) as u32;
    buf[at..at + 4].copy_from_slice(&size.to_be_bytes());
}

/// Writes a list, map or array: the 8-bit form (`small`) when `count < count_limit` and
/// the size (count octet included) is below 256, else the 32-bit form (`large`). The
/// elements are written once, after a 9-octet placeholder, and moved back 6 octets when the
/// short form fits (a memmove of the compound, no second buffer).
pub(crate) fn put_compound(
    buf: &mut BytesMut,
    small: u8,
    large: u8,
    count: usize,
    count_limit: usize,
    body: impl FnOnce(&mut BytesMut),
) {
    let at = buf.len();
    buf.put_bytes(0, 9);
    body(buf);
    let size = buf.len() - at - 9;
    if count < count_limit && size + 1 < 256 {
        buf[at] = small;
        buf[at + 1] = (size + 1) as u8;
        buf[at + 2] = count as u8;
        buf.copy_within(at + 9.., at + 3);
        buf.truncate(buf.len() - 6);
    } else {
        buf[at] = large;
        buf[at + 1..at + 5].copy_from_slice(&((size + 4) as u32).to_be_bytes());
        buf[at + 5..at + 9].copy_from_slice(&(count as u32).to_be_bytes());
    }
}
