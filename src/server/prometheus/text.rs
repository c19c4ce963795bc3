//! Prometheus' text exposition format (version 0.0.4), written as RabbitMQ's
//! rabbitmq_prometheus plugin writes it: `# TYPE` before `# HELP`, help texts as they are
//! (no added full stop), `untyped` where RabbitMQ says so, integers without a fraction.
//!
//! A small writer rather than a client library: the exposition is generated from live
//! objects on each scrape (10 000 queues are 10 000 label sets), so there is no registry
//! to keep in step with the broker, and the output must match RabbitMQ's byte for byte.

use std::fmt::Write;

/// A metric's type, as `# TYPE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Untyped,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Untyped => "untyped",
            Kind::Histogram => "histogram",
        }
    }
}

/// The exposition being written.
#[derive(Debug, Default)]
pub struct Text {
    pub out: String,
}

impl Text {
    pub fn with_capacity(n: usize) -> Text {
        Text {
            out: String::with_capacity(n),
        }
    }

    /// Starts a metric family: its `# TYPE` and `# HELP` lines.
    pub fn family(&mut self, prefix: &str, name: &str, kind: Kind, help: &str) {
        let o = &mut self.out;
        o.push_str("# TYPE ");
        o.push_str(prefix);
        o.push_str(name);
        o.push(' ');
        o.push_str(kind.name());
        o.push_str("\n# HELP ");
        o.push_str(prefix);
        o.push_str(name);
        o.push(' ');
        o.push_str(help);
        o.push('\n');
    }

    /// One sample; `labels` is a label set as [`labels`] renders it (empty: none).
    pub fn sample(&mut self, prefix: &str, name: &str, labels: &str, value: f64) {
        let o = &mut self.out;
        o.push_str(prefix);
        o.push_str(name);
        o.push_str(labels);
        o.push(' ');
        push_value(o, value);
        o.push('\n');
    }
}

/// A sample's value: integers as integers (as RabbitMQ prints counters and gauges),
/// other numbers in their shortest form, `NaN`, `+Inf`, `-Inf`.
fn push_value(o: &mut String, v: f64) {
    if v.is_nan() {
        o.push_str("NaN");
    } else if v.is_infinite() {
        o.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15 {
        let _ = write!(o, "{}", v as i64);
    } else {
        let _ = write!(o, "{v}");
    }
}

/// Renders a label set, `{name="value",...}`, values escaped as the format requires
/// (backslash, double quote, line feed); empty for no labels.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let mut o = String::with_capacity(
        16 + pairs
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>(),
    );
    o.push('{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str(k);
        o.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => o.push_str("\\\\"),
                '"' => o.push_str("\\\""),
                '\n' => o.push_str("\\n"),
                c => o.push(c),
            }
        }
        o.push('"');
    }
    o.push('}');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_rabbitmqs_layout() {
        let mut t = Text::default();
        t.family("rabbitmq_", "queues", Kind::Gauge, "Queues available");
        t.sample("rabbitmq_", "queues", "", 3.0);
        t.sample(
            "rabbitmq_",
            "queues",
            &labels(&[("vhost", "/"), ("queue", "a\"b\\c\nd")]),
            0.5,
        );
        assert_eq!(
            t.out,
            "# TYPE rabbitmq_queues gauge\n# HELP rabbitmq_queues Queues available\n\
             rabbitmq_queues 3\n\
             rabbitmq_queues{vhost=\"/\",queue=\"a\\\"b\\\\c\\nd\"} 0.5\n"
        );
    }

    #[test]
    fn values() {
        let cases = [
            (0.0, "0"),
            (21.0, "21"),
            (81.973, "81.973"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (1e20, "100000000000000000000"),
        ];
        for (v, want) in cases {
            let mut s = String::new();
            push_value(&mut s, v);
            assert_eq!(s, want);
        }
    }
}
