//! Field tables and field arrays, in RabbitMQ's dialect of the type tags:
//!
//! | tag | type | tag | type |
//! |---|---|---|---|
//! | `t` | boolean | `d` | f64 |
//! | `b` | i8 | `D` | decimal (scale u8, value u32) |
//! | `B` | u8 | `S` | longstr |
//! | `s` | i16 (RabbitMQ; the 0-9-1 text says shortstr) | `x` | byte array |
//! | `u` | u16 | `A` | field array |
//! | `I` | i32 | `T` | timestamp u64 |
//! | `i` | u32 | `F` | nested table |
//! | `l` | i64 | `V` | void |
//! | `f` | f32 | | |
//!
//! A table keeps its entries in wire order (a `Vec`), so decode→encode reproduces the
//! input octet for octet; lookups scan, which is fastest for the few entries tables carry.

use super::types::{LongStr, ShortStr};
use super::wire::{
    WireError, WireResult, be_u8, be_u16, be_u32, be_u64, fail, long_bytes, put_long_str,
    put_short_str, short_str, take,
};
use bytes::{BufMut, Bytes, BytesMut};

/// How deep tables and arrays may nest. Bounds the decoder's recursion so that a hostile
/// frame cannot exhaust the stack; RabbitMQ's own headers nest two or three levels.
pub const MAX_DEPTH: usize = 64;

/// AMQP `decimal`: `value / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decimal {
    pub scale: u8,
    pub value: u32,
}

/// One typed value of a field table or array.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Bool(bool),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    F32(f32),
    F64(f64),
    Decimal(Decimal),
    LongStr(LongStr),
    ByteArray(Bytes),
    Array(Vec<FieldValue>),
    Timestamp(u64),
    Table(FieldTable),
    Void,
}

impl FieldValue {
    /// The type tag this value is written with.
    pub fn tag(&self) -> u8 {
        match self {
            FieldValue::Bool(_) => b't',
            FieldValue::I8(_) => b'b',
            FieldValue::U8(_) => b'B',
            FieldValue::I16(_) => b's',
            FieldValue::U16(_) => b'u',
            FieldValue::I32(_) => b'I',
            FieldValue::U32(_) => b'i',
            FieldValue::I64(_) => b'l',
            FieldValue::F32(_) => b'f',
            FieldValue::F64(_) => b'd',
            FieldValue::Decimal(_) => b'D',
            FieldValue::LongStr(_) => b'S',
            FieldValue::ByteArray(_) => b'x',
            FieldValue::Array(_) => b'A',
            FieldValue::Timestamp(_) => b'T',
            FieldValue::Table(_) => b'F',
            FieldValue::Void => b'V',
        }
    }

    /// The value as an integer, whatever its integer width (RabbitMQ accepts any integer
    /// type for numeric arguments such as `x-message-ttl`).
    pub fn as_i64(&self) -> Option<i64> {
        Some(match *self {
            FieldValue::I8(v) => v.into(),
            FieldValue::U8(v) => v.into(),
            FieldValue::I16(v) => v.into(),
            FieldValue::U16(v) => v.into(),
            FieldValue::I32(v) => v.into(),
            FieldValue::U32(v) => v.into(),
            FieldValue::I64(v) => v,
            _ => return None,
        })
    }

    /// The value as text, when it is a longstr.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::LongStr(s) => s.as_str(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            FieldValue::Bool(b) => Some(b),
            _ => None,
        }
    }
}

impl From<&str> for FieldValue {
    fn from(s: &str) -> Self {
        FieldValue::LongStr(s.into())
    }
}

impl From<bool> for FieldValue {
    fn from(b: bool) -> Self {
        FieldValue::Bool(b)
    }
}

impl From<FieldTable> for FieldValue {
    fn from(t: FieldTable) -> Self {
        FieldValue::Table(t)
    }
}

/// A field table: named values in wire order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldTable(pub Vec<(ShortStr, FieldValue)>);

impl FieldTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key`, replacing an existing entry in place.
    pub fn insert(&mut self, key: impl Into<ShortStr>, value: impl Into<FieldValue>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(e) => e.1 = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<FieldValue> {
        let pos = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(pos).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ShortStr, &FieldValue)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Same entries regardless of order (the equivalence RabbitMQ applies to arguments).
    pub fn same_entries(&self, other: &FieldTable) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get_bytes(k) == Some(v))
    }

    fn get_bytes(&self, key: &ShortStr) -> Option<&FieldValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Size of the encoded table, without its 4-octet length prefix.
    pub fn encoded_len(&self) -> usize {
        self.0
            .iter()
            .map(|(k, v)| 1 + k.len().min(255) + value_len(v))
            .sum()
    }
}

fn value_len(v: &FieldValue) -> usize {
    1 + match v {
        FieldValue::Bool(_) | FieldValue::I8(_) | FieldValue::U8(_) => 1,
        FieldValue::I16(_) | FieldValue::U16(_) => 2,
        FieldValue::I32(_) | FieldValue::U32(_) | FieldValue::F32(_) => 4,
        FieldValue::I64(_) | FieldValue::F64(_) | FieldValue::Timestamp(_) => 8,
        FieldValue::Decimal(_) => 5,
        FieldValue::LongStr(s) => 4 + s.len(),
        FieldValue::ByteArray(b) => 4 + b.len(),
        FieldValue::Array(a) => 4 + a.iter().map(value_len).sum::<usize>(),
        FieldValue::Table(t) => 4 + t.encoded_len(),
        FieldValue::Void => 0,
    }
}

/// Decodes a length-prefixed table. `depth` counts enclosing tables and arrays.
pub(crate) fn field_table<'a>(
    i: &'a [u8],
    src: &Bytes,
    depth: usize,
) -> WireResult<'a, FieldTable> {
    if depth > MAX_DEPTH {
        return fail(WireError::TooDeep);
    }
    let (i, len) = be_u32(i)?;
    let (rest, mut body) = take(i, len as usize)?;
    let mut entries = Vec::new();
    while !body.is_empty() {
        let (b, key) = short_str(body, src)?;
        let (b, value) = field_value(b, src, depth)?;
        entries.push((key, value));
        body = b;
    }
    Ok((rest, FieldTable(entries)))
}

fn field_array<'a>(i: &'a [u8], src: &Bytes, depth: usize) -> WireResult<'a, Vec<FieldValue>> {
    if depth > MAX_DEPTH {
        return fail(WireError::TooDeep);
    }
    let (i, len) = be_u32(i)?;
    let (rest, mut body) = take(i, len as usize)?;
    let mut values = Vec::new();
    while !body.is_empty() {
        let (b, value) = field_value(body, src, depth)?;
        values.push(value);
        body = b;
    }
    Ok((rest, values))
}

fn field_value<'a>(i: &'a [u8], src: &Bytes, depth: usize) -> WireResult<'a, FieldValue> {
    let (i, tag) = be_u8(i)?;
    Ok(match tag {
        b't' => {
            let (i, v) = be_u8(i)?;
            (i, FieldValue::Bool(v != 0))
        }
        b'b' => be_u8(i).map(|(i, v)| (i, FieldValue::I8(v as i8)))?,
        b'B' => be_u8(i).map(|(i, v)| (i, FieldValue::U8(v)))?,
        b's' => be_u16(i).map(|(i, v)| (i, FieldValue::I16(v as i16)))?,
        b'u' => be_u16(i).map(|(i, v)| (i, FieldValue::U16(v)))?,
        b'I' => be_u32(i).map(|(i, v)| (i, FieldValue::I32(v as i32)))?,
        b'i' => be_u32(i).map(|(i, v)| (i, FieldValue::U32(v)))?,
        b'l' => be_u64(i).map(|(i, v)| (i, FieldValue::I64(v as i64)))?,
        b'f' => be_u32(i).map(|(i, v)| (i, FieldValue::F32(f32::from_bits(v))))?,
        b'd' => be_u64(i).map(|(i, v)| (i, FieldValue::F64(f64::from_bits(v))))?,
        b'D' => {
            let (i, scale) = be_u8(i)?;
            let (i, value) = be_u32(i)?;
            (i, FieldValue::Decimal(Decimal { scale, value }))
        }
        b'S' => long_bytes(i, src).map(|(i, v)| (i, FieldValue::LongStr(LongStr(v))))?,
        b'x' => long_bytes(i, src).map(|(i, v)| (i, FieldValue::ByteArray(v)))?,
        b'A' => field_array(i, src, depth + 1).map(|(i, v)| (i, FieldValue::Array(v)))?,
        b'T' => be_u64(i).map(|(i, v)| (i, FieldValue::Timestamp(v)))?,
        b'F' => field_table(i, src, depth + 1).map(|(i, v)| (i, FieldValue::Table(v)))?,
        b'V' => (i, FieldValue::Void),
        other => return fail(WireError::UnknownFieldType(other)),
    })
}

/// Walks a length-prefixed table without building it: the checks of [`field_table`], no
/// allocation. Used to validate message headers that are forwarded as they came.
pub(crate) fn check_field_table(i: &[u8], depth: usize) -> WireResult<'_, ()> {
    if depth > MAX_DEPTH {
        return fail(WireError::TooDeep);
    }
    let (i, len) = be_u32(i)?;
    let (rest, mut body) = take(i, len as usize)?;
    while !body.is_empty() {
        let (b, klen) = be_u8(body)?;
        let (b, _) = take(b, klen as usize)?;
        body = check_field_value(b, depth)?.0;
    }
    Ok((rest, ()))
}

fn check_field_value(i: &[u8], depth: usize) -> WireResult<'_, ()> {
    let (i, tag) = be_u8(i)?;
    let fixed = match tag {
        b't' | b'b' | b'B' => 1,
        b's' | b'u' => 2,
        b'I' | b'i' | b'f' => 4,
        b'l' | b'd' | b'T' => 8,
        b'D' => 5,
        b'V' => 0,
        b'S' | b'x' => {
            let (i, len) = be_u32(i)?;
            return take(i, len as usize).map(|(i, _)| (i, ()));
        }
        b'F' => return check_field_table(i, depth + 1),
        b'A' => {
            if depth + 1 > MAX_DEPTH {
                return fail(WireError::TooDeep);
            }
            let (i, len) = be_u32(i)?;
            let (rest, mut body) = take(i, len as usize)?;
            while !body.is_empty() {
                body = check_field_value(body, depth + 1)?.0;
            }
            return Ok((rest, ()));
        }
        other => return fail(WireError::UnknownFieldType(other)),
    };
    take(i, fixed).map(|(i, _)| (i, ()))
}

/// Writes a table with its length prefix.
pub(crate) fn put_field_table(buf: &mut BytesMut, t: &FieldTable) {
    let len_at = buf.len();
    buf.put_u32(0);
    for (k, v) in &t.0 {
        put_short_str(buf, k);
        put_field_value(buf, v);
    }
    patch_len(buf, len_at);
}

/// Overwrites the 4-octet length placeholder at `at` with the length of what follows it.
fn patch_len(buf: &mut BytesMut, at: usize) {
    let len = (buf.len() - at - 4) as u32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_field_value(buf: &mut BytesMut, v: &FieldValue) {
    buf.put_u8(v.tag());
    match v {
        FieldValue::Bool(b) => buf.put_u8(u8::from(*b)),
        FieldValue::I8(x) => buf.put_i8(*x),
        FieldValue::U8(x) => buf.put_u8(*x),
        FieldValue::I16(x) => buf.put_i16(*x),
        FieldValue::U16(x) => buf.put_u16(*x),
        FieldValue::I32(x) => buf.put_i32(*x),
        FieldValue::U32(x) => buf.put_u32(*x),
        FieldValue::I64(x) => buf.put_i64(*x),
        FieldValue::F32(x) => buf.put_u32(x.to_bits()),
        FieldValue::F64(x) => buf.put_u64(x.to_bits()),
        FieldValue::Decimal(d) => {
            buf.put_u8(d.scale);
            buf.put_u32(d.value);
        }
        FieldValue::LongStr(s) => put_long_str(buf, s),
        FieldValue::ByteArray(b) => {
            buf.put_u32(b.len() as u32);
            buf.put_slice(b);
        }
        FieldValue::Array(a) => {
            let len_at = buf.len();
            buf.put_u32(0);
            for v in a {
                put_field_value(buf, v);
            }
            patch_len(buf, len_at);
        }
        FieldValue::Timestamp(t) => buf.put_u64(*t),
        FieldValue::Table(t) => put_field_table(buf, t),
        FieldValue::Void => {}
    }
}

/// Decodes a standalone length-prefixed table (for stores and tests).
pub fn decode_table(src: &Bytes) -> Result<FieldTable, WireError> {
    match field_table(src, src, 0) {
        Ok(([], t)) => Ok(t),
        Ok(_) => Err(WireError::Truncated),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(e),
        Err(nom::Err::Incomplete(_)) => Err(WireError::Truncated),
    }
}

/// Encodes a standalone length-prefixed table.
pub fn encode_table(t: &FieldTable, buf: &mut BytesMut) {
    put_field_table(buf, t)
}
