//! Who is calling: HTTP basic auth against the broker's users, and RabbitMQ's tag rules.
//!
//! Tags, weakest first: `management` (own vhosts, own connections), `policymaker` (plus
//! policies and parameters in those vhosts), `monitoring` (sees every vhost, connection
//! and node), `administrator` (everything). A user with none of them cannot use the API
//! at all. Failures answer as RabbitMQ: 401 `not_authorized` with a challenge for a
//! failed login, 401 `not_authorised` for a missing tag or vhost access.

use super::Mgmt;
use super::error::{ApiError, ApiResult};
use crate::broker::auth::User;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use std::sync::Arc;

const MANAGEMENT_TAGS: [&str; 4] = ["management", "policymaker", "monitoring", "administrator"];

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: Arc<User>,
}

impl Caller {
    pub fn name(&self) -> &str {
        &self.user.name
    }

    pub fn is_admin(&self) -> bool {
        self.user.has_tag("administrator")
    }

    /// Sees everything (RabbitMQ's `monitoring` and `administrator`).
    pub fn is_monitor(&self) -> bool {
        self.is_admin() || self.user.has_tag("monitoring")
    }

    pub fn is_policymaker(&self) -> bool {
        self.is_admin() || self.user.has_tag("policymaker")
    }

    pub fn require_admin(&self) -> ApiResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::not_authorised("Not administrator user"))
        }
    }

    pub fn require_monitor(&self) -> ApiResult<()> {
        if self.is_monitor() {
            Ok(())
        } else {
            Err(ApiError::not_authorised("Not monitor user"))
        }
    }

    pub fn require_policymaker(&self) -> ApiResult<()> {
        if self.is_policymaker() {
            Ok(())
        } else {
            Err(ApiError::not_authorised("Not policymaker user"))
        }
    }

    /// The user has permissions in the vhost (what acting in it takes, administrators
    /// included, as RabbitMQ).
    pub fn has_vhost(&self, m: &Mgmt, vhost: &str) -> bool {
        m.broker.auth.permissions(&self.user.name, vhost).is_some()
    }

    /// May see the vhost's objects: monitoring users see every vhost, others those they
    /// have permissions in.
    pub fn sees_vhost(&self, m: &Mgmt, vhost: &str) -> bool {
        self.is_monitor() || self.has_vhost(m, vhost)
    }

    /// May see the vhost's queues, exchanges and bindings: as RabbitMQ 3.10's
    /// `filter_vhost`, administrators see every vhost's, others (monitoring users
    /// included) those of the vhosts they have permissions in.
    pub fn sees_objects_in(&self, m: &Mgmt, vhost: &str) -> bool {
        self.is_admin() || self.has_vhost(m, vhost)
    }

    /// Reading one vhost's queues, exchanges or bindings: the vhost must exist (404),
    /// and its objects be visible (401).
    pub fn read_vhost_objects(&self, m: &Mgmt, vhost: &str) -> ApiResult<()> {
        self.visible(m, vhost, self.sees_objects_in(m, vhost))
    }

    /// Reading one vhost's objects: the vhost must exist (404), and be visible (401).
    pub fn read_vhost(&self, m: &Mgmt, vhost: &str) -> ApiResult<()> {
        self.visible(m, vhost, self.sees_vhost(m, vhost))
    }

    fn visible(&self, m: &Mgmt, vhost: &str, sees: bool) -> ApiResult<()> {
        if m.broker.vhost(vhost).is_none() {
            return Err(ApiError::not_found());
        }
        if !sees {
            return Err(ApiError::not_authorised(
                "User not authorised to access virtual host",
            ));
        }
        Ok(())
    }

    /// Acting in a vhost (declare, delete, publish, get): it must exist and the user
    /// must have permissions in it.
    pub fn act_in_vhost(&self, m: &Mgmt, vhost: &str) -> ApiResult<()> {
        if m.broker.vhost(vhost).is_none() {
            return Err(ApiError::not_found());
        }
        if !self.has_vhost(m, vhost) {
            // An administrator passes RabbitMQ's vhost check but is then refused by
            // the operation itself, with its text.
            return Err(ApiError::not_authorised(if self.is_admin() {
                ACCESS_REFUSED
            } else {
                "User not authorised to access virtual host"
            }));
        }
        Ok(())
    }
}

/// RabbitMQ's reason for an operation refused by the caller's permissions.
pub const ACCESS_REFUSED: &str = "Access refused.";

/// Decodes `Authorization: Basic base64(user:password)`.
fn basic_credentials(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

impl FromRequestParts<Arc<Mgmt>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, m: &Arc<Mgmt>) -> Result<Self, ApiError> {
        let Some((name, pass)) = basic_credentials(parts) else {
            return Err(ApiError::challenge());
        };
        let user = match m.broker.auth.login(&name, &pass) {
            Ok(u) => u,
            Err(e) => {
                tracing::info!(user = %name, reason = ?e, "management API login failed");
                return Err(ApiError::login_failed("Login failed"));
            }
        };
        let peer = parts
            .extensions
            .get::<ConnectInfo<super::PeerAddr>>()
            .map(|c| c.0.0);
        let loopback_only = m.config.auth.loopback_users.contains(&name);
        if loopback_only && peer.is_some_and(|p| !p.ip().to_canonical().is_loopback()) {
            return Err(ApiError::login_failed("User can only log in via localhost"));
        }
        if !MANAGEMENT_TAGS.iter().any(|t| user.has_tag(t)) {
            return Err(ApiError::not_authorised("Not management user"));
        }
        Ok(Caller { user })
    }
}
