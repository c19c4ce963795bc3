//! Headers-exchange matching, as RabbitMQ does it: `x-match` = `all` (default), `any`,
//! `all-with-x` or `any-with-x`; keys starting with `x-` are ignored unless `-with-x`; a
//! void binding value matches any value of a present header; integers compare by value
//! whatever their width, a long string equals a byte array of the same octets.

use crate::broker::vhost::type_name;
use crate::protocol::frame::erlang_binary;
use crate::protocol::{AmqpError, FieldTable, FieldValue, reply_code};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XMatch {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

impl XMatch {
    pub fn from_args(args: &FieldTable) -> Result<XMatch, AmqpError> {
        match args.get("x-match") {
            None => Ok(XMatch::All),
            Some(FieldValue::LongStr(s)) => match s.as_bytes() {
                b"all" => Ok(XMatch::All),
                b"any" => Ok(XMatch::Any),
                b"all-with-x" => Ok(XMatch::AllWithX),
                b"any-with-x" => Ok(XMatch::AnyWithX),
                other => Err(invalid(&String::from_utf8_lossy(other))),
            },
            Some(other) => Err(AmqpError::channel(
                reply_code::PRECONDITION_FAILED,
                format!(
                    "Invalid x-match field type {} (value {}); expected longstr",
                    type_name(other),
                    erlang_value(other)
                ),
            )),
        }
    }
}

fn invalid(v: &str) -> AmqpError {
    AmqpError::channel(
        reply_code::PRECONDITION_FAILED,
        format!(
            "Invalid x-match field value <<\"{v}\">>; expected all, any, all-with-x, or any-with-x"
        ),
    )
}

/// A field value as Erlang prints it (`~p`), for the few types error texts show.
fn erlang_value(v: &FieldValue) -> String {
    match v {
        FieldValue::Bool(b) => b.to_string(),
        FieldValue::ByteArray(b) => erlang_binary(b),
        v => match v.as_i64() {
            Some(i) => i.to_string(),
            None => format!("{v:?}"),
        },
    }
}

fn same_value(a: &FieldValue, b: &FieldValue) -> bool {
    match (a, b) {
        // RabbitMQ compares a long string and a byte array by their octets.
        (FieldValue::LongStr(s), FieldValue::ByteArray(x))
        | (FieldValue::ByteArray(x), FieldValue::LongStr(s)) => s.as_bytes() == &x[..],
        _ => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

/// Whether message `headers` match a binding's `args` under `mode`.
pub fn matches(mode: XMatch, args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let with_x = matches!(mode, XMatch::AllWithX | XMatch::AnyWithX);
    let all = matches!(mode, XMatch::All | XMatch::AllWithX);
    let empty = FieldTable::new();
    let headers = headers.unwrap_or(&empty);
    for (k, v) in args.iter() {
        if k.as_bytes() == b"x-match" || (!with_x && k.as_bytes().starts_with(b"x-")) {
            continue;
        }
        let hit = match headers.0.iter().find(|(hk, _)| hk == k) {
            None => false,
            Some((_, hv)) => matches!(v, FieldValue::Void) || same_value(v, hv),
        };
        if all && !hit {
            return false;
        }
        if !all && hit {
            return true;
        }
    }
    // Every key hit under all (vacuously true with none); no key hit under any.
    all
}
