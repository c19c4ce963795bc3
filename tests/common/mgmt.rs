//! A small client of the management HTTP API for tests: basic auth, JSON bodies, and the
//! status, headers and JSON of each answer. Built on reqwest (the HTTP stack that the
//! `rabbitmq_http_client` crate, also tested here, uses), so over TLS with rustls and
//! the ring provider Warren itself uses.
#![allow(dead_code)]

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::time::{Duration, Instant};

/// One answer of the API.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON (`Null` when empty or not JSON).
    pub json: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts RabbitMQ's error body `{"error": error, "reason": reason}` with `status`.
    #[track_caller]
    pub fn expect_error(self, status: u16, error: &str, reason: &str) -> Resp {
        let r = self.expect(status);
        assert_eq!(r.json["error"], error, "body: {}", r.text);
        assert_eq!(r.json["reason"], reason, "body: {}", r.text);
        r
    }

    /// Asserts RabbitMQ's 404 for a path naming nothing.
    #[track_caller]
    pub fn expect_not_found(self) -> Resp {
        self.expect_error(404, "Object Not Found", "Not Found")
    }
}

/// The API of one broker, as one user.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    credentials: Option<(String, String)>,
    client: reqwest::Client,
}

/// Installs ring as rustls' provider (reqwest is built without one of its own).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Encodes one path segment as RabbitMQ's API takes it (`%2F` for the default vhost).
pub fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Api {
    /// `base` is the server's root URL, such as `http://127.0.0.1:15672`.
    pub fn new(base: &str, user: &str, pass: &str) -> Api {
        install_crypto_provider();
        Api {
            base: base.trim_end_matches('/').to_string(),
            credentials: Some((user.into(), pass.into())),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
        }
    }

    /// The same API over HTTPS, trusting the CA certificates of `roots`.
    pub fn with_tls(base: &str, user: &str, pass: &str, roots: rustls::RootCertStore) -> Api {
        install_crypto_provider();
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Api {
            base: base.trim_end_matches('/').to_string(),
            credentials: Some((user.into(), pass.into())),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .tls_backend_preconfigured(tls)
                .build()
                .expect("HTTPS client"),
        }
    }

    /// The same API as another user.
    pub fn as_user(&self, user: &str, pass: &str) -> Api {
        Api {
            credentials: Some((user.into(), pass.into())),
            ..self.clone()
        }
    }

    /// The same API with no credentials at all.
    pub fn anonymous(&self) -> Api {
        Api {
            credentials: None,
            ..self.clone()
        }
    }

    /// One request to `/api{path}`, with a JSON body and extra headers.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = format!("{}/api{path}", self.base);
        let mut req = self.client.request(method.clone(), &url);
        if let Some((u, p)) = &self.credentials {
            req = req.basic_auth(u, Some(p));
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            json,
        }
    }

    /// GET that may fail below HTTP (a refused TLS handshake, say).
    pub async fn try_get(&self, path: &str) -> Result<reqwest::Response, reqwest::Error> {
        let mut req = self.client.get(format!("{}/api{path}", self.base));
        if let Some((u, p)) = &self.credentials {
            req = req.basic_auth(u, Some(p));
        }
        req.send().await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.request(Method::GET, path, None, &[]).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.request(Method::PUT, path, Some(&body), &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.request(Method::POST, path, Some(&body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.request(Method::DELETE, path, None, &[]).await
    }

    /// GET that must answer 200; its JSON.
    pub async fn json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text);
        r.json
    }

    /// Polls GET `path` until `ready` holds for its JSON (the statistics are sampled, and
    /// a close takes effect asynchronously), failing after 15 s; the last JSON.
    pub async fn wait_for(&self, path: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r = self.get(path).await;
            if r.status == 200 && ready(&r.json) {
                return r.json;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what} in GET {path}: {}", r.text);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The names in a listing.
pub fn names(listing: &Value) -> Vec<String> {
    listing
        .as_array()
        .unwrap_or_else(|| panic!("not a listing: {listing}"))
        .iter()
        .filter_map(|i| i["name"].as_str().map(str::to_string))
        .collect()
}
