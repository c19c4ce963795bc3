//! The `x-delayed-message` exchange type, as the rabbitmq-delayed-message-exchange plugin
//! defines it: the exchange routes as its `x-delayed-type` (direct, fanout, topic,
//! headers, x-consistent-hash), but a message whose `x-delay` header holds a positive
//! number of milliseconds is first held until it falls due (see `broker::schedule`).
//!
//! What this file decides, with the plugin's rules and texts:
//! - the declare-time check of `x-delayed-type` ([`underlying_kind`]);
//! - how `x-delay` is read ([`delay_of`]): integer types, and as the plugin also does,
//!   strings holding an integer and floats (truncated); a delay that is missing, not a
//!   number, zero, negative or above 2^32-1 ms (Erlang's timer limit) means no delay, and
//!   the message is routed at once;
//! - what a delayed message carries when it is routed ([`routed_properties`]): as the
//!   plugin's `swap_delay_header`, `x-delay` becomes minus the delay, so that consumers
//!   can tell it was delayed and no delayed exchange further on delays it again.

use super::exchange::ExchangeKind;
use crate::protocol::{
    AmqpError, BasicProperties, EncodedProperties, FieldTable, FieldValue, reply_code,
};

/// The longest delay (ms) the plugin accepts: longer ones are routed at once.
pub const MAX_DELAY: u64 = 4_294_967_295;

fn precondition(text: &str) -> AmqpError {
    AmqpError::channel(reply_code::PRECONDITION_FAILED, text.to_string())
}

/// The exchange kind an x-delayed-message exchange routes as, from its `x-delayed-type`
/// argument; the plugin's `validate/1` errors otherwise.
pub fn underlying_kind(args: &FieldTable) -> Result<ExchangeKind, AmqpError> {
    let Some(FieldValue::LongStr(t)) = args.get("x-delayed-type") else {
        return Err(precondition(
            "Invalid argument, 'x-delayed-type' must be an existing exchange type",
        ));
    };
    if t.as_bytes() == b"x-delayed-message" {
        return Err(precondition(
            "Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'",
        ));
    }
    match ExchangeKind::parse(t.as_bytes()) {
        Some(k) => Ok(k),
        // rabbit_exchange:check_type, as for exchange.declare's own type.
        None => Err(AmqpError::connection(
            reply_code::COMMAND_INVALID,
            format!(
                "{} exchange type '{}'",
                if t.as_bytes().is_empty() {
                    "invalid"
                } else {
                    "unknown"
                },
                String::from_utf8_lossy(t.as_bytes())
            ),
        )),
    }
}

/// The delay a message asks for, in milliseconds: None to route it at once.
pub fn delay_of(headers: Option<&FieldTable>) -> Option<u64> {
    let delay: i128 = match headers?.get("x-delay")? {
        FieldValue::I8(v) => *v as i128,
        FieldValue::U8(v) => *v as i128,
        FieldValue::I16(v) => *v as i128,
        FieldValue::U16(v) => *v as i128,
        FieldValue::I32(v) => *v as i128,
        FieldValue::U32(v) => *v as i128,
        FieldValue::I64(v) => *v as i128,
        // The plugin truncates floats and reads strings with binary_to_integer (which
        // crashes its channel on anything else: here such a string means no delay).
        FieldValue::F32(v) if v.is_finite() => v.trunc() as i128,
        FieldValue::F64(v) if v.is_finite() => v.trunc() as i128,
        FieldValue::Decimal(d) => (d.value as i128) / 10i128.pow(d.scale.min(30) as u32),
        FieldValue::LongStr(s) => std::str::from_utf8(s.as_bytes()).ok()?.parse().ok()?,
        _ => return None,
    };
    (delay > 0 && delay <= MAX_DELAY as i128).then_some(delay as u64)
}

/// The properties a delayed message is routed with when due: `x-delay` set to minus the
/// delay (a signed 32-bit integer, as the plugin writes it, or 64-bit past its range).
pub fn routed_properties(properties: &EncodedProperties, delay: u64) -> EncodedProperties {
    let mut all: BasicProperties = properties.decode().unwrap_or_default();
    let value = match i32::try_from(delay) {
        Ok(d) => FieldValue::I32(-d),
        Err(_) => FieldValue::I64(-(delay as i64)),
    };
    all.headers
        .get_or_insert_with(FieldTable::new)
        .insert("x-delay", value);
    EncodedProperties::from(&all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Decimal, LongStr};

    fn s(x: &str) -> FieldValue {
        FieldValue::LongStr(LongStr(bytes::Bytes::copy_from_slice(x.as_bytes())))
    }

    fn headers(v: FieldValue) -> FieldTable {
        let mut t = FieldTable::new();
        t.insert("x-delay", v);
        t
    }

    #[test]
    fn x_delay_is_read_as_the_plugin_reads_it() {
        assert_eq!(delay_of(None), None);
        assert_eq!(delay_of(Some(&FieldTable::new())), None);
        for (v, want) in [
            (FieldValue::I32(1500), Some(1500)),
            (FieldValue::I64(7), Some(7)),
            (FieldValue::U8(3), Some(3)),
            (FieldValue::I16(-5), None),
            (FieldValue::I32(0), None),
            (FieldValue::I64(MAX_DELAY as i64), Some(MAX_DELAY)),
            (FieldValue::I64(MAX_DELAY as i64 + 1), None),
            (FieldValue::F64(250.9), Some(250)),
            (
                FieldValue::Decimal(Decimal {
                    scale: 1,
                    value: 25,
                }),
                Some(2),
            ),
            (s("1200"), Some(1200)),
            (s("soon"), None),
            (FieldValue::Bool(true), None),
            (FieldValue::Timestamp(5), None),
        ] {
            assert_eq!(delay_of(Some(&headers(v.clone()))), want, "{v:?}");
        }
    }

    #[test]
    fn x_delayed_type_is_checked_with_the_plugins_texts() {
        let args = |t: Option<FieldValue>| {
            let mut a = FieldTable::new();
            if let Some(t) = t {
                a.insert("x-delayed-type", t);
            }
            a
        };
        let text = |a: &FieldTable| underlying_kind(a).unwrap_err().text.to_string();
        assert_eq!(
            text(&args(None)),
            "Invalid argument, 'x-delayed-type' must be an existing exchange type"
        );
        assert_eq!(
            text(&args(Some(FieldValue::I32(1)))),
            "Invalid argument, 'x-delayed-type' must be an existing exchange type"
        );
        assert_eq!(
            text(&args(Some(s("x-delayed-message")))),
            "Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'"
        );
        let e = underlying_kind(&args(Some(s("nope")))).unwrap_err();
        assert_eq!(e.code, reply_code::COMMAND_INVALID);
        assert_eq!(e.text.to_string(), "unknown exchange type 'nope'");
        assert_eq!(
            underlying_kind(&args(Some(s("topic")))).unwrap(),
            ExchangeKind::Topic
        );
    }

    #[test]
    fn a_routed_message_carries_minus_its_delay() {
        let props = EncodedProperties::from(&BasicProperties {
            headers: Some(headers(FieldValue::I64(1500))),
            ..Default::default()
        });
        let routed = routed_properties(&props, 1500);
        let h = routed.headers().unwrap();
        assert_eq!(h.get("x-delay"), Some(&FieldValue::I32(-1500)));
        assert_eq!(delay_of(Some(&h)), None);
    }
}
