//! Table output: one header line and one line per row, columns padded to a common width
//! and separated by two spaces (the last column is not padded).

use serde_json::Value;
use std::io::{self, Write};

/// How a JSON value reads in a table cell: strings bare, scalars as JSON, arrays of
/// scalars as `[a, b]` (rabbitmqctl's way of showing tags), objects as compact JSON,
/// null or absent as nothing.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            let parts: Vec<String> = items.iter().map(|i| cell(Some(i))).collect();
            format!("[{}]", parts.join(", "))
        }
        Some(other) => other.to_string(),
    }
}

/// Writes `rows` under `header` (no header line when `None`).
pub fn write(
    out: &mut dyn Write,
    header: Option<&[String]>,
    rows: &[Vec<String>],
) -> io::Result<()> {
    let ncols = header
        .map(<[String]>::len)
        .into_iter()
        .chain(rows.iter().map(Vec::len))
        .max()
        .unwrap_or(0);
    let mut widths = vec![0usize; ncols];
    for row in header.into_iter().chain(rows.iter().map(Vec::as_slice)) {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(display_width(c));
        }
    }
    for row in header.into_iter().chain(rows.iter().map(Vec::as_slice)) {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            let c = one_line(c);
            line.push_str(&c);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(widths[i] - display_width(&c) + 2));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Newlines and tabs inside a cell would break the columns.
fn one_line(s: &str) -> String {
    if s.contains(['\n', '\r', '\t']) {
        s.replace('\n', "\\n")
            .replace('\r', "\\r")
            .replace('\t', "\\t")
    } else {
        s.to_string()
    }
}

fn display_width(s: &str) -> usize {
    one_line(s).chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells() {
        assert_eq!(cell(None), "");
        assert_eq!(cell(Some(&json!(null))), "");
        assert_eq!(cell(Some(&json!("q"))), "q");
        assert_eq!(cell(Some(&json!(12))), "12");
        assert_eq!(cell(Some(&json!(true))), "true");
        assert_eq!(
            cell(Some(&json!(["administrator", "monitoring"]))),
            "[administrator, monitoring]"
        );
        assert_eq!(cell(Some(&json!([]))), "[]");
        assert_eq!(
            cell(Some(&json!({"x-max-length": 5}))),
            r#"{"x-max-length":5}"#
        );
    }

    #[test]
    fn columns_are_aligned() {
        let header = vec!["name".to_string(), "messages".to_string()];
        let rows = vec![
            vec!["a-long-queue".to_string(), "1".to_string()],
            vec!["q".to_string(), "200".to_string()],
            vec!["".to_string(), "".to_string()],
        ];
        let mut out = Vec::new();
        write(&mut out, Some(&header), &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "name          messages\na-long-queue  1\nq             200\n\n"
        );
        let mut out = Vec::new();
        write(&mut out, None, &rows[1..2]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "q  200\n");
    }
}
