//! Primitive decoders (nom, complete input) and encoders shared by the generated code,
//! field tables and frames.
//!
//! Decoders take the input slice plus the `Bytes` it lives in, so strings are returned as
//! `Bytes::slice_ref` views: zero copies, zero allocations.

use super::types::{LongStr, ShortStr};
use bytes::{BufMut, Bytes, BytesMut};
use nom::error::{ErrorKind, ParseError};

pub(crate) use super::table::{field_table, put_field_table};
pub(crate) use nom::number::complete::{be_u8, be_u16, be_u32, be_u64};

/// Why a method, properties or table could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The input ended before a value did (or a length points past it).
    Truncated,
    /// A field-table value carried a type tag RabbitMQ does not know.
    UnknownFieldType(u8),
    /// Tables or arrays nested deeper than [`super::table::MAX_DEPTH`].
    TooDeep,
}

impl<I> ParseError<I> for WireError {
    fn from_error_kind(_: I, _: ErrorKind) -> Self {
        WireError::Truncated
    }
    fn append(_: I, _: ErrorKind, other: Self) -> Self {
        other
    }
}

pub(crate) type WireResult<'a, T> = nom::IResult<&'a [u8], T, WireError>;

/// Why a method's arguments could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArgsError {
    /// No method has this (class, method) pair.
    UnknownMethod,
    /// The arguments are malformed, or octets are left after them.
    Wire(WireError),
}

/// A whole-input decode: the value if every octet was used.
#[inline(always)]
pub(crate) fn whole<T>(r: WireResult<'_, T>) -> Result<T, ArgsError> {
    match r {
        Ok(([], v)) => Ok(v),
        Ok(_) | Err(nom::Err::Incomplete(_)) => Err(ArgsError::Wire(WireError::Truncated)),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(ArgsError::Wire(e)),
    }
}

pub(crate) fn fail<T>(e: WireError) -> Result<T, nom::Err<WireError>> {
    Err(nom::Err::Error(e))
}

/// Splits `n` octets off the front of `i`.
pub(crate) fn take(i: &[u8], n: usize) -> WireResult<'_, &[u8]> {
    if i.len() < n {
        return fail(WireError::Truncated);
    }
    let (a, b) = i.split_at(n);
    Ok((b, a))
}

/// `s`, which lies within `src`, as a slice of `src` (no copy; one reference count).
#[inline(always)]
fn sub_bytes(src: &Bytes, s: &[u8]) -> Bytes {
    // Cheaper than `slice_ref`, which checks the bounds twice; `slice` still checks them.
    let at = (s.as_ptr() as usize).wrapping_sub(src.as_ptr() as usize);
    debug_assert!(at <= src.len() && s.len() <= src.len() - at);
    src.slice(at..at + s.len())
}

#[inline(always)]
pub(crate) fn short_str<'a>(i: &'a [u8], src: &Bytes) -> WireResult<'a, ShortStr> {
    let Some((&len, i)) = i.split_first() else {
        return fail(WireError::Truncated);
    };
    let Some((s, i)) = i.split_at_checked(len as usize) else {
        return fail(WireError::Truncated);
    };
    Ok((i, ShortStr(sub_bytes(src, s))))
}

pub(crate) fn long_bytes<'a>(i: &'a [u8], src: &Bytes) -> WireResult<'a, Bytes> {
    let (i, len) = be_u32(i)?;
    let (i, s) = take(i, len as usize)?;
    Ok((i, sub_bytes(src, s)))
}

pub(crate) fn long_str<'a>(i: &'a [u8], src: &Bytes) -> WireResult<'a, LongStr> {
    long_bytes(i, src).map(|(i, b)| (i, LongStr(b)))
}

/// Writes a shortstr; values longer than 255 octets are cut (see [`ShortStr`]).
pub(crate) fn put_short_str(buf: &mut BytesMut, s: &ShortStr) {
    let b = &s.0[..s.0.len().min(255)];
    buf.put_u8(b.len() as u8);
    buf.put_slice(b);
}

pub(crate) fn put_long_str(buf: &mut BytesMut, s: &LongStr) {
    buf.put_u32(s.0.len() as u32);
    buf.put_slice(&s.0);
}

pub(crate) fn skip(i: &[u8], n: usize) -> WireResult<'_, ()> {
    take(i, n).map(|(i, _)| (i, ()))
}

pub(crate) fn skip_short_str(i: &[u8]) -> WireResult<'_, ()> {
    let (i, len) = be_u8(i)?;
    skip(i, len as usize)
}

/// For longstr properties; the basic class has none today.
#[allow(dead_code)]
pub(crate) fn skip_long_str(i: &[u8]) -> WireResult<'_, ()> {
    let (i, len) = be_u32(i)?;
    skip(i, len as usize)
}
