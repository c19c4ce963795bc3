//! Listing endpoints' query parameters, as RabbitMQ's API takes them: `sort` and
//! `sort_reverse` (any field, dotted paths into nested objects), `columns` (keep only
//! these, dotted paths too), and pagination (`page`, `page_size` up to 500, with `name`
//! filtering, case-insensitive, or by regular expression with `use_regex=true`), which
//! answers in RabbitMQ's paginated shape.

use super::error::{ApiError, ApiResult};
use axum::Json;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use std::cmp::Ordering;
use std::collections::HashMap;

pub type Params = HashMap<String, String>;

const MAX_PAGE_SIZE: usize = 500;
const DEFAULT_PAGE_SIZE: usize = 100;

/// Answers a listing of objects that are costly to render (queues, connections): when
/// the order asked for is the natural one (`items` come sorted by name, or by what the
/// resource lists by) only the requested page is rendered, so a page of 100 among 10 000
/// objects costs 100 renderings; any other `sort` renders everything first.
pub fn list_lazy<T>(
    items: Vec<T>,
    name: impl Fn(&T) -> String,
    render: impl Fn(&T) -> Value,
    p: &Params,
) -> ApiResult<Json<Value>> {
    let natural = p.get("sort").is_none_or(|s| s.is_empty() || s == "name");
    if !natural || !p.contains_key("page") {
        return list(items.iter().map(render).collect(), p);
    }
    let mut items = items;
    if p.get("sort_reverse").is_some_and(|v| v == "true") {
        items.reverse();
    }
    let (page, page_size) = page_params(p)?;
    let total = items.len();
    if let Some(re) = name_filter(p)? {
        items.retain(|i| re.is_match(&name(i)).unwrap_or(false));
    }
    let columns = columns(p);
    let rendered = page_slice(&items, page, page_size)?
        .iter()
        .map(|i| cut(render(i), &columns))
        .collect();
    Ok(Json(paged(rendered, page, page_size, items.len(), total)))
}

/// Answers a listing: `items` sorted, filtered, paginated and cut to `columns` as the
/// parameters ask.
pub fn list(mut items: Vec<Value>, p: &Params) -> ApiResult<Json<Value>> {
    if let Some(key) = p.get("sort").filter(|s| !s.is_empty()) {
        let path: Vec<&str> = key.split('.').collect();
        items.sort_by(|a, b| compare(lookup(a, &path), lookup(b, &path)));
    }
    if p.get("sort_reverse").is_some_and(|v| v == "true") {
        items.reverse();
    }
    let columns = columns(p);
    if !p.contains_key("page") {
        return Ok(Json(Value::Array(
            items.into_iter().map(|v| cut(v, &columns)).collect(),
        )));
    }
    let (page, page_size) = page_params(p)?;
    let total = items.len();
    if let Some(re) = name_filter(p)? {
        items.retain(|v| {
            v.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| re.is_match(n).unwrap_or(false))
        });
    }
    let filtered = items.len();
    let slice = page_slice(&items, page, page_size)?
        .iter()
        .map(|v| cut(v.clone(), &columns))
        .collect();
    Ok(Json(paged(slice, page, page_size, filtered, total)))
}

type Columns = Option<Vec<Vec<String>>>;

fn columns(p: &Params) -> Columns {
    p.get("columns").filter(|c| !c.is_empty()).map(|c| {
        c.split(',')
            .map(|col| col.trim().split('.').map(String::from).collect())
            .collect()
    })
}

fn cut(v: Value, columns: &Columns) -> Value {
    match columns {
        Some(cols) => select(&v, cols),
        None => v,
    }
}

/// `page` and `page_size`, checked as RabbitMQ checks them.
fn page_params(p: &Params) -> ApiResult<(usize, usize)> {
    let page = parse_pos(p, "page")?;
    let asked_size = parse_pos(p, "page_size")?;
    let page_size = match p.get("page_size") {
        Some(_) => asked_size,
        None => Some(DEFAULT_PAGE_SIZE),
    };
    match (page, page_size) {
        (Some(n), Some(s)) if n >= 1 && (1..=MAX_PAGE_SIZE).contains(&s) => Ok((n, s)),
        // RabbitMQ names the page size as asked: "undefined" when it was not given.
        (n, _) => {
            let s = asked_size;
            let show = |x: Option<usize>| x.map_or("undefined".to_string(), |v| v.to_string());
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_pagination_parameters",
                format!(
                    "Invalid pagination parameters: page number {}, page size {}",
                    show(n),
                    show(s)
                ),
            ))
        }
    }
}

/// The `name` filter: a case-insensitive substring, or a regular expression with
/// `use_regex=true`.
fn name_filter(p: &Params) -> ApiResult<Option<fancy_regex::Regex>> {
    let Some(name) = p.get("name").filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let pattern = if p.get("use_regex").is_some_and(|v| v == "true") {
        format!("(?i){name}")
    } else {
        format!("(?i){}", fancy_regex::escape(name))
    };
    fancy_regex::Regex::new(&pattern)
        .map(Some)
        .map_err(|_| ApiError::bad_request("Pagination parameters are invalid"))
}

fn page_slice<T>(items: &[T], page: usize, page_size: usize) -> ApiResult<&[T]> {
    // As RabbitMQ: an empty listing has no pages, and its page 1 is empty.
    let page_count = items.len().div_ceil(page_size);
    if page > page_count.max(1) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "page_out_of_range",
            format!(
                "Page out of range, page: {page} page size: {page_size}, len: {}",
                items.len()
            ),
        ));
    }
    let start = ((page - 1) * page_size).min(items.len());
    Ok(&items[start..(start + page_size).min(items.len())])
}

fn paged(items: Vec<Value>, page: usize, page_size: usize, filtered: usize, total: usize) -> Value {
    json!({
        "filtered_count": filtered,
        "item_count": items.len(),
        "items": items,
        "page": page,
        "page_count": filtered.div_ceil(page_size),
        "page_size": page_size,
        "total_count": total,
    })
}

/// A positive integer parameter (None when it is not one).
fn parse_pos(p: &Params, key: &str) -> ApiResult<Option<usize>> {
    match p.get(key).map(|v| v.parse::<i64>()) {
        None => Ok(None),
        Some(Ok(n)) => Ok(usize::try_from(n).ok()),
        Some(Err(_)) => Err(ApiError::bad_request("Pagination parameters are invalid")),
    }
}

fn lookup<'a, S: AsRef<str>>(v: &'a Value, path: &[S]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k.as_ref()))
}

/// Orders values of one field: missing first, then numbers, then strings, then the rest
/// by their text.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, _) => Ordering::Less,
        (_, None) => Ordering::Greater,
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Number(_)), _) => Ordering::Less,
        (_, Some(Value::Number(_))) => Ordering::Greater,
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
    }
}

/// Keeps only the given (dotted) columns of an object, nested objects rebuilt.
fn select(v: &Value, columns: &[Vec<String>]) -> Value {
    let mut out = Value::Object(Map::new());
    for path in columns {
        if let Some(found) = lookup(v, path) {
            let mut at = &mut out;
            for (i, k) in path.iter().enumerate() {
                let obj = at.as_object_mut().expect("built as objects");
                if i + 1 == path.len() {
                    obj.insert(k.clone(), found.clone());
                    break;
                }
                at = obj
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !at.is_object() {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn items() -> Vec<Value> {
        vec![
            json!({"name": "b", "messages": 2, "message_stats": {"publish": 5}}),
            json!({"name": "a", "messages": 10}),
            json!({"name": "Ca", "messages": 1}),
        ]
    }

    #[test]
    fn sorts_by_numbers_and_reverses() {
        let Json(v) = list(
            items(),
            &params(&[("sort", "messages"), ("sort_reverse", "true")]),
        )
        .unwrap();
        let names: Vec<_> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].clone())
            .collect();
        assert_eq!(names, vec![json!("a"), json!("b"), json!("Ca")]);
    }

    #[test]
    fn columns_keep_nested_paths() {
        let Json(v) = list(
            items(),
            &params(&[("columns", "name,message_stats.publish")]),
        )
        .unwrap();
        assert_eq!(v[0], json!({"name": "b", "message_stats": {"publish": 5}}));
        assert_eq!(v[1], json!({"name": "a"}));
    }

    #[test]
    fn pages_and_filters_case_insensitively() {
        let Json(v) = list(
            items(),
            &params(&[("page", "1"), ("page_size", "1"), ("name", "A")]),
        )
        .unwrap();
        assert_eq!(v["filtered_count"], 2);
        assert_eq!(v["total_count"], 3);
        assert_eq!(v["page_count"], 2);
        assert_eq!(v["items"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn bad_pages_are_refused_as_rabbitmq() {
        for (q, error) in [
            (vec![("page", "0")], "invalid_pagination_parameters"),
            (
                vec![("page", "1"), ("page_size", "600")],
                "invalid_pagination_parameters",
            ),
            (vec![("page", "9")], "page_out_of_range"),
            (vec![("page", "x")], "bad_request"),
        ] {
            let e = list(items(), &params(&q)).unwrap_err();
            assert_eq!(e.error, error, "{q:?}");
        }
    }
}
