//! JSON values printed as Erlang's `~p` prints the terms RabbitMQ decodes them into, for
//! its validation messages (`<<"a">> is not a valid message TTL`): strings are binaries,
//! objects maps, `null`/`true`/`false` atoms, floats in Erlang's shortest form.
//!
//! Terms are printed on one line; Erlang breaks terms longer than its line width, which
//! only the (short) shapes RabbitMQ's messages usually hold never reach.

use serde_json::Value;

/// `~p` of the term RabbitMQ's JSON decoder makes of `v`.
pub fn term(v: &Value) -> String {
    let mut out = String::new();
    write_term(&mut out, v);
    out
}

/// `~p` of a list of `{Key, Value}` tuples (a definition's entries, in key order).
pub fn pairs<'a>(entries: impl Iterator<Item = (&'a String, &'a Value)>) -> String {
    let items: Vec<String> = entries
        .map(|(k, v)| format!("{{{},{}}}", binary(k), term(v)))
        .collect();
    format!("[{}]", items.join(","))
}

fn write_term(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (None, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => out.push_str(&binary(s)),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_term(out, x);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push_str("#{");
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&binary(k));
                out.push_str(" => ");
                write_term(out, x);
            }
            out.push('}');
        }
    }
}

/// `<<"text">>`, or the bytes (`<<1,2>>`) when the text has control characters, which
/// Erlang does not print as a string.
pub fn binary(s: &str) -> String {
    if s.chars().any(char::is_control) {
        let bytes: Vec<String> = s.bytes().map(|b| b.to_string()).collect();
        return format!("<<{}>>", bytes.join(","));
    }
    format!("<<{}>>", string(s))
}

/// `"text"` with Erlang's escapes for `"` and `\`.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Erlang's shortest round-trip float text: `1.5`, `100.0`, `1.0e20`, `1.0e-5`.
fn float(f: f64) -> String {
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        // Rust's `{:e}`: "1e20", "1.5e-5"; Erlang always has a fraction digit.
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        return format!("{mantissa}e{exp}");
    }
    let s = format!("{f}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn terms_print_as_erlang_prints_them() {
        for (v, text) in [
            (json!("a"), r#"<<"a">>"#),
            (json!("café"), r#"<<"café">>"#),
            (json!("q\"\\"), r#"<<"q\"\\">>"#),
            (json!("\n"), "<<10>>"),
            (json!(-1), "-1"),
            (json!(1.5), "1.5"),
            (json!(100.0), "100.0"),
            (json!(0.0001), "0.0001"),
            (json!(1e20), "1.0e20"),
            (json!(null), "null"),
            (json!(true), "true"),
            (json!([1, "a"]), r#"[1,<<"a">>]"#),
            (json!({"a": 1}), r#"#{<<"a">> => 1}"#),
        ] {
            assert_eq!(term(&v), text, "{v}");
        }
        let m = json!({"foo": "bar", "zzz": 1});
        assert_eq!(
            pairs(m.as_object().unwrap().iter()),
            r#"[{<<"foo">>,<<"bar">>},{<<"zzz">>,1}]"#
        );
    }
}
