//! A blocking client for the management HTTP API (ureq): basic authentication, JSON
//! bodies, and HTTP failures turned into [`CtlError`]s with their exit codes.

use super::args::Global;
use super::error::{self, CtlError, Result};
use base64::Engine;
use serde_json::Value;
use std::time::Duration;

/// Largest response body read (a whole broker's definitions can be large).
const BODY_LIMIT: u64 = 1 << 30;

pub struct Client {
    agent: ureq::Agent,
    /// `scheme://host:port[/prefix]/api`, no trailing slash.
    api: String,
    /// The URL as given, for messages.
    url: String,
    username: String,
    authorization: String,
}

/// HTTP methods the API uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
    Post,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// Percent-encodes one path segment: everything but RFC 3986's unreserved characters,
/// so the default vhost `/` becomes `%2F` as the API expects.
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A readable one-line text for the API's `reason`: RabbitMQ HTML-escapes it, and
/// policy validation errors span lines.
fn unescape(s: &str) -> String {
    let s = s
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines.join(": ")
}

/// The `reason` (else `error`) of an API error body `{"error": ..., "reason": ...}`, or
/// the body itself when it is not one.
fn reason(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => {
            let field = |k: &str| v.get(k).and_then(Value::as_str).map(unescape);
            match (field("error"), field("reason")) {
                (_, Some(r)) if !r.is_empty() => r,
                (Some(e), _) => e,
                _ => body.trim().to_string(),
            }
        }
        Err(_) => body.trim().to_string(),
    }
}

impl Client {
    pub fn new(g: &Global) -> Result<Client> {
        let url = g.url.trim_end_matches('/').to_string();
        let https = if url.starts_with("https://") {
            true
        } else if url.starts_with("http://") {
            false
        } else {
            return Err(CtlError::usage(format!(
                "--url {url}: expected an http:// or https:// URL"
            )));
        };
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("warren-ctl/", env!("CARGO_PKG_VERSION")))
            .timeout_global(Some(Duration::from_secs(g.timeout.max(1))));
        if https {
            let mut tls = ureq::tls::TlsConfig::builder().disable_verification(g.insecure);
            if let Some(path) = &g.cacert {
                tls = tls.root_certs(read_ca(path)?);
            }
            config = config.tls_config(tls.build());
        }
        let credentials = format!("{}:{}", g.username, g.password);
        Ok(Client {
            agent: config.build().into(),
            api: format!("{url}/api"),
            url,
            username: g.username.clone(),
            authorization: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            ),
        })
    }

    /// One request; `path` starts after `/api` and has its segments encoded ([`seg`]).
    /// 2xx answers give their body; every other answer is an error.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<String> {
        let uri = format!("{}{path}", self.api);
        let result = match (method, body) {
            (Method::Get | Method::Delete, _) => {
                let mut req = match method {
                    Method::Get => self.agent.get(&uri),
                    _ => self.agent.delete(&uri),
                };
                req = req.header("authorization", &self.authorization);
                for (k, v) in headers {
                    req = req.header_raw(k, v.as_bytes());
                }
                req.call()
            }
            (Method::Put | Method::Post, body) => {
                let mut req = match method {
                    Method::Put => self.agent.put(&uri),
                    _ => self.agent.post(&uri),
                };
                req = req
                    .header("authorization", &self.authorization)
                    .header("content-type", "application/json");
                for (k, v) in headers {
                    req = req.header_raw(k, v.as_bytes());
                }
                req.send(body.unwrap_or(""))
            }
        };
        let mut resp = result.map_err(|e| self.transport_error(e))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_string()
            .map_err(|e| self.transport_error(e))?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        Err(self.status_error(method, path, status, &text))
    }

    fn transport_error(&self, e: ureq::Error) -> CtlError {
        match e {
            ureq::Error::Timeout(_) => CtlError::new(
                error::TEMP_FAIL,
                format!("no answer from the broker at {} in time: {e}", self.url),
            ),
            ureq::Error::Io(io) => CtlError::new(
                error::UNAVAILABLE,
                format!("cannot reach the broker at {}: {io}", self.url),
            ),
            other => CtlError::new(
                error::UNAVAILABLE,
                format!("cannot reach the broker at {}: {other}", self.url),
            ),
        }
    }

    fn status_error(&self, method: Method, path: &str, status: u16, body: &str) -> CtlError {
        let why = reason(body);
        match status {
            400 => CtlError::data(why),
            401 => CtlError::new(
                error::NO_PERM,
                format!("authentication failed for user '{}'", self.username),
            ),
            403 => CtlError::new(
                error::NO_PERM,
                format!("access refused for user '{}': {why}", self.username),
            ),
            404 => CtlError {
                not_found: true,
                ..CtlError::data(format!("not found: {} {}{path}", method.as_str(), self.api))
            },
            405 => CtlError::new(
                error::SOFTWARE,
                format!(
                    "the broker does not support {} {}{path}",
                    method.as_str(),
                    self.api
                ),
            ),
            503 => CtlError::new(
                error::UNAVAILABLE,
                format!("the broker at {} is unavailable: {why}", self.url),
            ),
            _ => CtlError::new(
                error::SOFTWARE,
                format!(
                    "the broker answered {status} to {} {}{path}: {why}",
                    method.as_str(),
                    self.api
                ),
            ),
        }
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        let text = self.request(Method::Get, path, None, &[])?;
        serde_json::from_str(&text).map_err(|e| {
            CtlError::new(
                error::SOFTWARE,
                format!("GET {}{path} did not answer JSON: {e}", self.api),
            )
        })
    }

    /// GET of a list: a JSON array (or a paged answer's `items`).
    pub fn get_list(&self, path: &str) -> Result<Vec<Value>> {
        match self.get(path)? {
            Value::Array(items) => Ok(items),
            Value::Object(mut o) if o.get("items").is_some_and(Value::is_array) => {
                match o.remove("items") {
                    Some(Value::Array(items)) => Ok(items),
                    _ => unreachable!(),
                }
            }
            _ => Err(CtlError::new(
                error::SOFTWARE,
                format!("GET {}{path} did not answer a JSON array", self.api),
            )),
        }
    }

    pub fn put(&self, path: &str, body: &Value) -> Result<()> {
        self.request(Method::Put, path, Some(&body.to_string()), &[])
            .map(drop)
    }

    pub fn post_raw(&self, path: &str, body: &str) -> Result<()> {
        self.request(Method::Post, path, Some(body), &[]).map(drop)
    }

    pub fn delete(&self, path: &str) -> Result<()> {
        self.request(Method::Delete, path, None, &[]).map(drop)
    }

    /// Whether a GET of `path` finds something (404: no).
    pub fn exists(&self, path: &str) -> Result<bool> {
        match self.request(Method::Get, path, None, &[]) {
            Ok(_) => Ok(true),
            Err(e) if e.not_found => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The CA certificates of a PEM file, for `--cacert`.
fn read_ca(path: &std::path::Path) -> Result<ureq::tls::RootCerts> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let bad =
        |e: &dyn std::fmt::Display| CtlError::data(format!("--cacert {}: {e}", path.display()));
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(&e))?
        .map(|c| c.map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(&e))?;
    if certs.is_empty() {
        return Err(bad(&"no PEM certificate in the file"));
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(seg("/"), "%2F");
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        assert_eq!(seg("q-1_x.y~"), "q-1_x.y~");
        assert_eq!(
            seg("127.0.0.1:5 -> 127.0.0.1:6"),
            "127.0.0.1%3A5%20-%3E%20127.0.0.1%3A6"
        );
        assert_eq!(seg("é"), "%C3%A9");
    }

    #[test]
    fn reasons_come_from_the_error_body() {
        assert_eq!(
            reason(
                r#"{"error":"bad_request","reason":"Validation failed\n\n[{&lt;&lt;\"x\"&gt;&gt;,1}] bad\n"}"#
            ),
            r#"Validation failed: [{<<"x">>,1}] bad"#
        );
        assert_eq!(
            reason(r#"{"error":"Object Not Found","reason":""}"#),
            "Object Not Found"
        );
        assert_eq!(reason("plain text\n"), "plain text");
    }
}
