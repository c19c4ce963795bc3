//! Setting up users, vhosts, permissions, limits and policies for a test, the same way against both
//! brokers: Warren's admin operations in-process, or RabbitMQ's management HTTP API when
//! the tests run against it (`AMQP_TEST_URL` set; `AMQP_TEST_MGMT_URL`, default
//! `http://127.0.0.1:15673`, with guest/guest).
#![allow(dead_code)]

use base64::Engine;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren::broker::Broker;
use warren::broker::admin::{AdminError, Credential};
use warren::broker::policy::PolicyKind;
use warren::broker::policy::admin::policy_from_json;
use warren::store::definitions::{PermissionDef, TopicPermissionDef, VHostDef};

pub enum Admin {
    Warren(Arc<Broker>),
    Http { host: String },
}

/// URL path segment encoding (RabbitMQ's API takes `%2F` for the default vhost).
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Admin {
    pub fn http_from_env() -> Admin {
        let url = std::env::var("AMQP_TEST_MGMT_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:15673".to_string());
        Admin::Http {
            host: url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
        }
    }

    /// One HTTP/1.1 request with basic auth as guest; panics unless it answers 2xx.
    async fn http(&self, method: &str, path: &str, body: Option<serde_json::Value>) {
        let (status, resp) = self.http_status(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path} answered {status} {resp}"
        );
    }

    /// One HTTP/1.1 request with basic auth as guest: the status and the body.
    async fn http_status(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, String) {
        let Admin::Http { host } = self else {
            unreachable!()
        };
        let mut s = tokio::net::TcpStream::connect(host.as_str()).await.unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = base64::engine::general_purpose::STANDARD.encode("guest:guest");
        let req = format!(
            "{method} /api{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).await.unwrap();
        let resp = String::from_utf8_lossy(&resp);
        let status: u16 = resp
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, body.to_string())
    }

    pub async fn add_vhost(&self, name: &str) {
        match self {
            Admin::Warren(b) => {
                b.put_vhost(VHostDef {
                    name: name.into(),
                    description: String::new(),
                    tags: vec![],
                    limits: vec![],
                })
                .unwrap();
            }
            Admin::Http { .. } => {
                self.http("PUT", &format!("/vhosts/{}", seg(name)), None)
                    .await
            }
        }
        // The admin (guest) may use every vhost it makes, as RabbitMQ grants its creator.
        self.set_permissions("guest", name, ".*", ".*", ".*").await;
    }

    pub async fn delete_vhost(&self, name: &str) {
        match self {
            Admin::Warren(b) => b.delete_vhost(name).unwrap(),
            Admin::Http { .. } => {
                self.http("DELETE", &format!("/vhosts/{}", seg(name)), None)
                    .await
            }
        }
    }

    pub async fn add_user(&self, name: &str, password: &str, tags: &str) {
        match self {
            Admin::Warren(b) => {
                b.put_user(
                    name,
                    Credential::Password(password.into()),
                    warren::broker::admin::parse_tags(tags),
                )
                .unwrap();
            }
            Admin::Http { .. } => {
                self.http(
                    "PUT",
                    &format!("/users/{}", seg(name)),
                    Some(serde_json::json!({"password": password, "tags": tags})),
                )
                .await
            }
        }
    }

    pub async fn delete_user(&self, name: &str) {
        match self {
            Admin::Warren(b) => b.delete_user(name).unwrap(),
            Admin::Http { .. } => {
                self.http("DELETE", &format!("/users/{}", seg(name)), None)
                    .await
            }
        }
    }

    pub async fn set_permissions(&self, user: &str, vhost: &str, c: &str, w: &str, r: &str) {
        match self {
            Admin::Warren(b) => b
                .set_permissions(PermissionDef {
                    user: user.into(),
                    vhost: vhost.into(),
                    configure: c.into(),
                    write: w.into(),
                    read: r.into(),
                })
                .unwrap(),
            Admin::Http { .. } => {
                self.http(
                    "PUT",
                    &format!("/permissions/{}/{}", seg(vhost), seg(user)),
                    Some(serde_json::json!({"configure": c, "write": w, "read": r})),
                )
                .await
            }
        }
    }

    pub async fn clear_permissions(&self, user: &str, vhost: &str) {
        match self {
            Admin::Warren(b) => b.clear_permissions(user, vhost).unwrap(),
            Admin::Http { .. } => {
                self.http(
                    "DELETE",
                    &format!("/permissions/{}/{}", seg(vhost), seg(user)),
                    None,
                )
                .await
            }
        }
    }

    pub async fn set_topic_permissions(
        &self,
        user: &str,
        vhost: &str,
        exchange: &str,
        w: &str,
        r: &str,
    ) {
        match self {
            Admin::Warren(b) => b
                .set_topic_permissions(TopicPermissionDef {
                    user: user.into(),
                    vhost: vhost.into(),
                    exchange: exchange.into(),
                    write: w.into(),
                    read: r.into(),
                })
                .unwrap(),
            Admin::Http { .. } => {
                self.http(
                    "PUT",
                    &format!("/topic-permissions/{}/{}", seg(vhost), seg(user)),
                    Some(serde_json::json!({"exchange": exchange, "write": w, "read": r})),
                )
                .await
            }
        }
    }

    pub async fn set_vhost_limit(&self, vhost: &str, limit: &str, value: i64) {
        match self {
            Admin::Warren(b) => {
                let v = b.vhost(vhost).unwrap();
                let mut limits: Vec<_> = v
                    .def()
                    .limits
                    .into_iter()
                    .filter(|(n, _)| n != limit)
                    .collect();
                limits.push((limit.to_string(), value));
                b.set_vhost_limits(vhost, limits).unwrap()
            }
            Admin::Http { .. } => {
                self.http(
                    "PUT",
                    &format!("/vhost-limits/{}/{limit}", seg(vhost)),
                    Some(serde_json::json!({"value": value})),
                )
                .await
            }
        }
    }

    pub async fn set_user_limit(&self, user: &str, limit: &str, value: i64) {
        match self {
            Admin::Warren(b) => {
                let u = b.auth.user(user).unwrap();
                let mut limits: Vec<_> = warren::broker::admin::user_limits(&u)
                    .into_iter()
                    .filter(|(n, _)| n != limit)
                    .collect();
                limits.push((limit.to_string(), value));
                b.set_user_limits(user, limits).unwrap()
            }
            Admin::Http { .. } => {
                self.http(
                    "PUT",
                    &format!("/user-limits/{}/{limit}", seg(user)),
                    Some(serde_json::json!({"value": value})),
                )
                .await
            }
        }
    }
}

/// The HTTP path of a kind of policy.
fn policy_path(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Policy => "policies",
        PolicyKind::Operator => "operator-policies",
    }
}

impl Admin {
    /// Sets a policy or an operator policy from its JSON body (`pattern`, `definition`,
    /// `priority`, `apply-to`), as `PUT /api/policies/{vhost}/{name}`. Against RabbitMQ,
    /// waits a moment after the request: its queues apply a policy asynchronously.
    pub async fn put_any_policy(
        &self,
        kind: PolicyKind,
        vhost: &str,
        name: &str,
        body: serde_json::Value,
    ) {
        if let Err((status, text)) = self.try_put_any_policy(kind, vhost, name, body).await {
            panic!("policy '{name}' refused: {status} {text}");
        }
    }

    pub async fn put_policy(&self, vhost: &str, name: &str, body: serde_json::Value) {
        self.put_any_policy(PolicyKind::Policy, vhost, name, body)
            .await
    }

    pub async fn put_operator_policy(&self, vhost: &str, name: &str, body: serde_json::Value) {
        self.put_any_policy(PolicyKind::Operator, vhost, name, body)
            .await
    }

    /// As [`Admin::put_any_policy`], returning a refusal as (HTTP status, reason text):
    /// RabbitMQ's `reason` (with the `&lt;`/`&gt;` its policy API escapes turned back), or
    /// Warren's error text.
    pub async fn try_put_any_policy(
        &self,
        kind: PolicyKind,
        vhost: &str,
        name: &str,
        body: serde_json::Value,
    ) -> Result<(), (u16, String)> {
        match self {
            Admin::Warren(b) => {
                let refused = |e: AdminError| (e.status(), e.to_string());
                let def = policy_from_json(kind, vhost, name, &body).map_err(refused)?;
                match kind {
                    PolicyKind::Policy => b.put_policy(def),
                    PolicyKind::Operator => b.put_operator_policy(def),
                }
                .map(drop)
                .map_err(refused)
            }
            Admin::Http { .. } => {
                let path = format!("/{}/{}/{}", policy_path(kind), seg(vhost), seg(name));
                let (status, text) = self.http_status("PUT", &path, Some(body)).await;
                if (200..300).contains(&status) {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    return Ok(());
                }
                let reason = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["reason"].as_str().map(String::from))
                    .unwrap_or(text)
                    .replace("&lt;", "<")
                    .replace("&gt;", ">");
                Err((status, reason))
            }
        }
    }

    pub async fn delete_any_policy(&self, kind: PolicyKind, vhost: &str, name: &str) {
        match self {
            Admin::Warren(b) => match kind {
                PolicyKind::Policy => b.delete_policy(vhost, name),
                PolicyKind::Operator => b.delete_operator_policy(vhost, name),
            }
            .unwrap(),
            Admin::Http { .. } => {
                let path = format!("/{}/{}/{}", policy_path(kind), seg(vhost), seg(name));
                self.http("DELETE", &path, None).await;
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
        }
    }

    pub async fn delete_policy(&self, vhost: &str, name: &str) {
        self.delete_any_policy(PolicyKind::Policy, vhost, name)
            .await
    }
}
