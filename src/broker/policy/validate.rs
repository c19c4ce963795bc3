//! Validation of policies and operator policies, with RabbitMQ 3.10's checks and texts
//! (`rabbit_policy:policy_validation`, `rabbit_policies:validate_policy0`,
//! `rabbit_mirror_queue_misc:validate_policy`, `rabbit_queue_location_validator`).
//!
//! As RabbitMQ, every field is checked and every failing field reported, one line each, in
//! its order (definition, apply-to, pattern, priority), under "Validation failed". Within a
//! definition the first invalid setting is reported (`rabbit_policies` keys in key order,
//! then the `ha-*` group, then `queue-master-locator`); only a definition whose known
//! settings are all valid reports its unknown ones ("... are not recognised policy
//! settings"). Settings of plugins (federation, sharding) are unknown, as on a RabbitMQ
//! without those plugins.

use super::PolicyKind;
use super::erlang::{pairs, string, term};
use serde_json::{Map, Value};

/// The settings `rabbit_policies` validates for policies.
const POLICY_KEYS: &[&str] = &[
    "alternate-exchange",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "dead-letter-strategy",
    "message-ttl",
    "expires",
    "max-length",
    "max-length-bytes",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "queue-mode",
    "queue-version",
    "overflow",
    "delivery-limit",
    "max-age",
    "stream-max-segment-size-bytes",
    "queue-leader-locator",
    "initial-cluster-size",
];

/// The settings an operator policy may have (RabbitMQ 3.10's `operator_policy_validator`s).
pub const OPERATOR_KEYS: &[&str] = &[
    "expires",
    "message-ttl",
    "max-length",
    "max-length-bytes",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "delivery-limit",
];

/// Classic mirrored queue settings: validated as a group, and without effect (Warren has
/// no mirrors, as a single RabbitMQ node has none).
const HA_KEYS: &[&str] = &[
    "ha-mode",
    "ha-params",
    "ha-sync-mode",
    "ha-sync-batch-size",
    "ha-promote-on-shutdown",
    "ha-promote-on-failure",
];

const QUEUE_MASTER_LOCATOR: &str = "queue-master-locator";

/// The rabbitmq-message-deduplication plugin's policy settings (its
/// `RabbitMQMessageDeduplication.Policies` validator): cache size, TTL and persistence for
/// x-message-deduplication exchanges, and queue-level deduplication.
const DEDUP_KEYS: &[&str] = &[
    "x-cache-size",
    "x-cache-ttl",
    "x-cache-persistence",
    "x-message-deduplication",
];

/// One of the deduplication plugin's settings, with its texts.
fn dedup_setting(key: &str, v: &Value) -> Result<(), String> {
    let (ok, what) = match key {
        "x-message-deduplication" => (v.is_boolean(), "must be a boolean"),
        "x-cache-size" => (at_least(v, 1), "must be an integer greater than 0"),
        "x-cache-ttl" => (at_least(v, 1), "must be an integer greater than 0"),
        "x-cache-persistence" => (
            one_of(v, &["disk", "memory"]),
            "must be either \"disk\" or \"memory\"",
        ),
        _ => (true, ""),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("\"{key}\" {what}, got {}", term(v)))
    }
}

/// RabbitMQ's `?MAX_STREAM_MAX_SEGMENT_SIZE`.
const MAX_SEGMENT_SIZE: u64 = 3_000_000_000;

fn integer(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        _ => None,
    }
}

fn at_least(v: &Value, min: i128) -> bool {
    integer(v).is_some_and(|n| n >= min)
}

fn one_of(v: &Value, options: &[&str]) -> bool {
    v.as_str().is_some_and(|s| options.contains(&s))
}

/// `rabbit_amqqueue:check_max_age`: digits (more than zero) and one unit of Y, M, D, h, m
/// or s.
pub fn valid_max_age(s: &str) -> bool {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (value, unit) = s.split_at(digits);
    value.parse::<u128>().is_ok_and(|n| n > 0) && ["Y", "M", "D", "h", "m", "s"].contains(&unit)
}

/// One `rabbit_policies` setting.
fn setting(key: &str, v: &Value) -> Result<(), String> {
    let (ok, what) = match key {
        "alternate-exchange" => (v.is_string(), "is not a valid alternate exchange name"),
        "dead-letter-exchange" => (v.is_string(), "is not a valid dead letter exchange name"),
        "dead-letter-routing-key" => (v.is_string(), "is not a valid dead letter routing key"),
        "dead-letter-strategy" => (
            one_of(v, &["at-most-once", "at-least-once"]),
            "is not a valid dead letter strategy",
        ),
        "message-ttl" => (at_least(v, 0), "is not a valid message TTL"),
        "expires" => (at_least(v, 1), "is not a valid queue expiry"),
        "max-length" => (at_least(v, 0), "is not a valid maximum length"),
        "max-length-bytes" => (at_least(v, 0), "is not a valid maximum length in bytes"),
        // RabbitMQ says "bytes" for both.
        "max-in-memory-length" | "max-in-memory-bytes" => {
            (at_least(v, 0), "is not a valid maximum memory in bytes")
        }
        "queue-mode" => (
            one_of(v, &["default", "lazy"]),
            "is not a valid queue-mode value",
        ),
        "queue-version" => (
            matches!(integer(v), Some(1 | 2)),
            "is not a valid queue-version value",
        ),
        "overflow" => (
            one_of(v, &["drop-head", "reject-publish", "reject-publish-dlx"]),
            "is not a valid overflow value",
        ),
        "delivery-limit" => (at_least(v, 0), "is not a valid delivery limit"),
        "max-age" => (
            v.as_str().is_some_and(valid_max_age),
            "is not a valid max age",
        ),
        "stream-max-segment-size-bytes" => (
            integer(v).is_some_and(|n| (0..=MAX_SEGMENT_SIZE as i128).contains(&n)),
            "is not a valid segment size",
        ),
        "queue-leader-locator" => (
            one_of(v, &["client-local", "balanced", "random", "least-leaders"]),
            "is not a valid queue leader locator value",
        ),
        "initial-cluster-size" => (at_least(v, 0), "is not a valid cluster size"),
        _ => (true, ""),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{} {what}", term(v)))
    }
}

/// `rabbit_mirror_queue_misc:validate_policy` over the `ha-*` settings.
fn ha(d: &Map<String, Value>) -> Result<(), String> {
    let Some(mode) = d.get("ha-mode") else {
        return Err(
            "ha-mode must be specified to specify ha-params, ha-sync-mode or ha-promote-on-shutdown"
                .into(),
        );
    };
    let params = d.get("ha-params");
    match mode.as_str() {
        Some("all") => {
            if params.is_some() {
                return Err("ha-mode=\"all\" does not take parameters".into());
            }
        }
        Some("exactly") => match params {
            Some(p) if at_least(p, 1) => {}
            Some(p) => {
                return Err(format!(
                    "ha-mode=\"exactly\" takes an integer, {} given",
                    term(p)
                ));
            }
            None => return Err("ha-mode=\"exactly\" takes an integer, none given".into()),
        },
        Some("nodes") => match params {
            Some(Value::Array(a)) if a.is_empty() => {
                return Err("ha-mode=\"nodes\" list must be non-empty".into());
            }
            Some(Value::Array(a)) => {
                let bad: Vec<Value> = a.iter().filter(|x| !x.is_string()).cloned().collect();
                if !bad.is_empty() {
                    return Err(format!(
                        "ha-mode=\"nodes\" takes a list of strings, {} was not a string",
                        term(&Value::Array(bad))
                    ));
                }
            }
            Some(p) => return Err(format!("ha-mode=\"nodes\" takes a list, {} given", term(p))),
            None => return Err("ha-mode=\"nodes\" takes a list, none given".into()),
        },
        _ => return Err(format!("{} is not a valid ha-mode value", term(mode))),
    }
    if let Some(m) = d.get("ha-sync-mode")
        && !one_of(m, &["automatic", "manual"])
    {
        return Err(format!(
            "ha-sync-mode must be \"manual\" or \"automatic\", got {}",
            term(m)
        ));
    }
    if let Some(n) = d.get("ha-sync-batch-size")
        && !at_least(n, 1)
    {
        return Err(format!(
            "ha-sync-batch-size takes an integer greater than 0, {} given",
            term(n)
        ));
    }
    for key in ["ha-promote-on-shutdown", "ha-promote-on-failure"] {
        if let Some(v) = d.get(key)
            && !one_of(v, &["always", "when-synced"])
        {
            return Err(format!(
                "{key} must be \"always\" or \"when-synced\", got {}",
                term(v)
            ));
        }
    }
    Ok(())
}

/// A definition: its settings for `kind`, RabbitMQ's checks, its first error.
pub fn definition(kind: PolicyKind, d: &Value) -> Result<(), String> {
    let d = match d {
        Value::Object(m) if m.is_empty() => return Err("no policy provided".into()),
        Value::Array(a) if a.is_empty() => return Err("no policy provided".into()),
        Value::Object(m) => m,
        other => return Err(format!("definition must be a dictionary: {}", term(other))),
    };
    let own: &[&str] = match kind {
        PolicyKind::Policy => POLICY_KEYS,
        PolicyKind::Operator => OPERATOR_KEYS,
    };
    for (k, v) in d.iter().filter(|(k, _)| own.contains(&k.as_str())) {
        setting(k, v)?;
    }
    let mut known: Vec<&str> = own.to_vec();
    if kind == PolicyKind::Policy {
        if d.keys().any(|k| HA_KEYS.contains(&k.as_str())) {
            ha(d)?;
        }
        if let Some(v) = d.get(QUEUE_MASTER_LOCATOR)
            && !one_of(v, &["min-masters", "client-local", "random"])
        {
            return Err(format!("{} invalid queue-master-locator value", term(v)));
        }
        for (k, v) in d.iter().filter(|(k, _)| DEDUP_KEYS.contains(&k.as_str())) {
            dedup_setting(k, v)?;
        }
        known.extend(HA_KEYS);
        known.push(QUEUE_MASTER_LOCATOR);
        known.extend(DEDUP_KEYS);
    }
    let unknown: Vec<(&String, &Value)> = d
        .iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "{} are not recognised policy settings",
            pairs(unknown.into_iter())
        ));
    }
    Ok(())
}

/// Compiles a policy's pattern (PCRE-like; unanchored, as Erlang's `re:run`; `""` matches
/// every name). The error is RabbitMQ's, with PCRE's message and offset for the common
/// mistakes and the regex crate's text otherwise.
pub fn regex(pattern: &str) -> Result<fancy_regex::Regex, String> {
    fancy_regex::Regex::new(pattern).map_err(|e| {
        let (message, offset) = pcre_error(pattern, &e);
        let col = "pattern should be regular expression but is invalid: ".len();
        format!(
            "pattern should be regular expression but is invalid: {}",
            crate::broker::args::pretty_tuple(col, &string(&message), &offset.to_string())
        )
    })
}

/// PCRE's message and offset for what fancy-regex refused.
fn pcre_error(pattern: &str, e: &fancy_regex::Error) -> (String, usize) {
    use fancy_regex::{Error, ParseError};
    let len = pattern.len();
    match e {
        Error::ParseError(_, ParseError::UnclosedOpenParen) => ("missing )".into(), len),
        Error::ParseError(_, ParseError::TrailingBackslash) => ("\\ at end of pattern".into(), len),
        Error::ParseError(at, ParseError::InvalidRepeat | ParseError::TargetNotRepeatable) => {
            ("nothing to repeat".into(), *at)
        }
        Error::ParseError(_, ParseError::InvalidClass) => {
            ("missing terminating ] for character class".into(), len)
        }
        Error::ParseError(at, ParseError::GeneralParseError(m))
            if m == "end of string not reached" =>
        {
            ("unmatched parentheses".into(), *at)
        }
        other => {
            let text = other.to_string();
            if text.contains("invalid character class range") {
                ("range out of order in character class".into(), 0)
            } else {
                (text, 0)
            }
        }
    }
}

/// The fields of a policy as a client gives them (JSON), checked as RabbitMQ's
/// `rabbit_parameter_validation:proplist` checks them: every failing field reported, in
/// RabbitMQ's order. `apply_to` is optional (absent: `all`); `priority` is always given (the
/// API and the import default it to 0).
pub fn fields(
    kind: PolicyKind,
    priority: &Value,
    pattern: &Value,
    apply_to: Option<&Value>,
    definition: &Value,
) -> Result<(), String> {
    let errors = field_errors(
        kind,
        "",
        Some(priority),
        Some(pattern),
        apply_to,
        Some(definition),
    );
    if errors.is_empty() {
        Ok(())
    } else {
        Err(validation_failed(&errors))
    }
}

/// A policy given as a runtime parameter's value (`PUT /api/parameters/operator_policy/
/// {vhost}/{name}`, an `operator_policy` entry of a definitions file's `parameters`): an
/// object whose `priority`, `pattern` and `definition` are mandatory, `apply-to` optional,
/// and nothing else allowed.
pub fn parameter_value(kind: PolicyKind, name: &str, value: &Value) -> Result<(), String> {
    let Value::Object(m) = value else {
        return Err(validation_failed(&[format!(
            "{name} not a list {}",
            term(value)
        )]));
    };
    let mut errors = field_errors(
        kind,
        name,
        m.get("priority"),
        m.get("pattern"),
        m.get("apply-to"),
        m.get("definition"),
    );
    let unknown: Vec<(&String, &Value)> = m
        .iter()
        .filter(|(k, _)| !["priority", "pattern", "apply-to", "definition"].contains(&k.as_str()))
        .collect();
    if !unknown.is_empty() {
        errors.insert(
            0,
            format!(
                "Unrecognised terms {} in {name}",
                pairs(unknown.into_iter())
            ),
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(validation_failed(&errors))
    }
}

/// Every field's error, in RabbitMQ's order (the reverse of its constraint list:
/// definition, apply-to, pattern, priority). A missing mandatory field (None) is
/// reported as RabbitMQ's proplist validation reports it, naming `name`.
fn field_errors(
    kind: PolicyKind,
    name: &str,
    priority: Option<&Value>,
    pattern: Option<&Value>,
    apply_to: Option<&Value>,
    definition: Option<&Value>,
) -> Vec<String> {
    let missing = |key: &str| format!("Key \"{key}\" not found in {name}");
    let mut errors = Vec::new();
    match definition {
        Some(d) => {
            if let Err(e) = self::definition(kind, d) {
                errors.push(e);
            }
        }
        None => errors.push(missing("definition")),
    }
    if let Some(a) = apply_to
        && !one_of(a, &["queues", "exchanges", "all"])
    {
        let shown = match a {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        errors.push(format!(
            "apply-to '{shown}' unrecognised; should be 'queues', 'exchanges' or 'all'"
        ));
    }
    match pattern {
        Some(Value::String(p)) => {
            if let Err(e) = regex(p) {
                errors.push(e);
            }
        }
        Some(other) => errors.push(format!(
            "pattern should be a binary but was {}",
            term(other)
        )),
        None => errors.push(missing("pattern")),
    }
    match priority {
        Some(p) if p.is_number() => {}
        Some(p) => errors.push(format!(
            "priority should be a number, actually was {}",
            term(p)
        )),
        None => errors.push(missing("priority")),
    }
    errors
}

/// RabbitMQ's `format_error`: "Validation failed", a blank line, each error on its line.
pub fn validation_failed(errors: &[String]) -> String {
    let mut out = String::from("Validation failed\n\n");
    for e in errors {
        out.push_str(e);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(kind: PolicyKind, d: Value) -> Result<(), String> {
        definition(kind, &d)
    }

    #[test]
    fn settings_are_checked_with_rabbitmqs_texts() {
        use PolicyKind::*;
        for (d, text) in [
            (json!({}), "no policy provided"),
            (json!({"message-ttl": -1}), "-1 is not a valid message TTL"),
            (
                json!({"message-ttl": "a"}),
                r#"<<"a">> is not a valid message TTL"#,
            ),
            (
                json!({"message-ttl": 1.5}),
                "1.5 is not a valid message TTL",
            ),
            (json!({"expires": 0}), "0 is not a valid queue expiry"),
            (
                json!({"overflow": "x"}),
                r#"<<"x">> is not a valid overflow value"#,
            ),
            (
                json!({"dead-letter-exchange": 1}),
                "1 is not a valid dead letter exchange name",
            ),
            (
                json!({"queue-version": 3}),
                "3 is not a valid queue-version value",
            ),
            (
                json!({"max-age": "0D"}),
                r#"<<"0D">> is not a valid max age"#,
            ),
            (
                json!({"stream-max-segment-size-bytes": 3000000001u64}),
                "3000000001 is not a valid segment size",
            ),
            (
                json!({"ha-params": 2}),
                "ha-mode must be specified to specify ha-params, ha-sync-mode or ha-promote-on-shutdown",
            ),
            (
                json!({"ha-mode": "exactly"}),
                "ha-mode=\"exactly\" takes an integer, none given",
            ),
            (
                json!({"ha-mode": "nodes", "ha-params": ["a", 1]}),
                "ha-mode=\"nodes\" takes a list of strings, [1] was not a string",
            ),
            (
                json!({"ha-mode": "x", "message-ttl": -1}),
                "-1 is not a valid message TTL",
            ),
            (
                json!({"queue-master-locator": "x"}),
                r#"<<"x">> invalid queue-master-locator value"#,
            ),
            (
                json!({"foo": "bar", "zzz": 1, "message-ttl": 5}),
                r#"[{<<"foo">>,<<"bar">>},{<<"zzz">>,1}] are not recognised policy settings"#,
            ),
            (
                json!({"federation-upstream": "x"}),
                r#"[{<<"federation-upstream">>,<<"x">>}] are not recognised policy settings"#,
            ),
        ] {
            assert_eq!(def(Policy, d.clone()), Err(text.to_string()), "{d}");
        }
        for d in [
            json!({"message-ttl": 0, "max-length": 10, "overflow": "reject-publish-dlx"}),
            json!({"ha-mode": "exactly", "ha-params": 2, "ha-sync-mode": "automatic"}),
            json!({"max-age": "7D", "queue-master-locator": "min-masters", "queue-version": 2}),
        ] {
            assert_eq!(def(Policy, d.clone()), Ok(()), "{d}");
        }
        assert_eq!(
            def(Operator, json!({"overflow": "drop-head"})),
            Err(r#"[{<<"overflow">>,<<"drop-head">>}] are not recognised policy settings"#.into())
        );
        assert_eq!(
            def(Operator, json!({"max-length": 5, "delivery-limit": 3})),
            Ok(())
        );
    }

    #[test]
    fn the_deduplication_plugins_settings_are_checked_with_its_texts() {
        use PolicyKind::*;
        assert!(def(Policy, json!({"x-cache-size": 10, "x-cache-ttl": 1000})).is_ok());
        assert!(def(Policy, json!({"x-message-deduplication": true})).is_ok());
        assert!(def(Policy, json!({"x-cache-persistence": "disk"})).is_ok());
        for (d, text) in [
            (
                json!({"x-cache-size": 0}),
                "\"x-cache-size\" must be an integer greater than 0, got 0",
            ),
            (
                json!({"x-cache-ttl": "x"}),
                "\"x-cache-ttl\" must be an integer greater than 0, got <<\"x\">>",
            ),
            (
                json!({"x-message-deduplication": 1}),
                "\"x-message-deduplication\" must be a boolean, got 1",
            ),
            (
                json!({"x-cache-persistence": "tape"}),
                "\"x-cache-persistence\" must be either \"disk\" or \"memory\", got <<\"tape\">>",
            ),
        ] {
            assert_eq!(def(Policy, d).unwrap_err(), text);
        }
        // The plugin registers no operator policy validator.
        assert!(def(Operator, json!({"x-cache-size": 10})).is_err());
    }

    #[test]
    fn every_failing_field_is_reported_in_rabbitmqs_order() {
        let e = fields(
            PolicyKind::Policy,
            &json!("x"),
            &json!("("),
            Some(&json!("foo")),
            &json!({"message-ttl": -1}),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "Validation failed\n\n-1 is not a valid message TTL\napply-to 'foo' unrecognised; should be 'queues', 'exchanges' or 'all'\npattern should be regular expression but is invalid: {\"missing )\",1}\npriority should be a number, actually was <<\"x\">>\n"
        );
    }

    #[test]
    fn a_policy_as_a_parameter_value_needs_its_fields_and_no_others() {
        let op = PolicyKind::Operator;
        assert_eq!(
            parameter_value(
                op,
                "o",
                &json!({"pattern": "^q", "definition": {"max-length": 5}})
            ),
            Err("Validation failed\n\nKey \"priority\" not found in o\n".into())
        );
        assert_eq!(
            parameter_value(
                op,
                "o",
                &json!({"pattern": "^q", "definition": {"max-length": 5}, "priority": 0, "extra": 1})
            ),
            Err("Validation failed\n\nUnrecognised terms [{<<\"extra\">>,1}] in o\n".into())
        );
        assert_eq!(
            parameter_value(op, "o", &json!(5)),
            Err("Validation failed\n\no not a list 5\n".into())
        );
        assert!(
            parameter_value(
                op,
                "o",
                &json!({"pattern": "^q", "definition": {"max-length": 5}, "priority": 0, "apply-to": "queues"})
            )
            .is_ok()
        );
    }

    #[test]
    fn regex_errors_carry_pcres_message_and_offset() {
        for (p, text) in [
            ("(", "{\"missing )\",1}"),
            ("x(", "{\"missing )\",2}"),
            ("*", "{\"nothing to repeat\",0}"),
            ("a**", "{\"nothing to repeat\",2}"),
            (
                ")",
                "{\"unmatched parentheses\",\n                                                      0}",
            ),
            (
                "[",
                "{\"missing terminating ] for character class\",\n                                                      1}",
            ),
            (
                "\\",
                "{\"\\\\ at end of pattern\",\n                                                      1}",
            ),
        ] {
            let e = regex(p).unwrap_err();
            assert_eq!(
                e,
                format!("pattern should be regular expression but is invalid: {text}"),
                "{p}"
            );
        }
        assert!(regex("").unwrap().is_match("anything").unwrap());
        assert!(regex("^amq\\.").unwrap().is_match("amq.gen-1").unwrap());
    }
}
