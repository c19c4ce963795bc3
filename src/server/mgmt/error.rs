//! The one place where failures become HTTP answers: a status and RabbitMQ's JSON body
//! `{"error": ..., "reason": ...}`. Handlers return `Result<_, ApiError>`; broker errors
//! (`AdminError`, `AmqpError`) convert here with the status RabbitMQ's API gives them.

use crate::broker::admin::AdminError;
use crate::protocol::{AmqpError, reply_code};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub reason: String,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, reason: impl Into<String>) -> Self {
        ApiError {
            status,
            error,
            reason: reason.into(),
        }
    }

    /// RabbitMQ's 404 for a path naming something that does not exist.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Object Not Found", "Not Found")
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }

    /// 401 for a user who is logged in but lacks the tag or vhost access needed.
    pub fn not_authorised(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "not_authorised", reason)
    }

    /// 401 for a failed login; carries the WWW-Authenticate challenge.
    pub fn login_failed(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "not_authorized", reason)
    }

    /// 401 for a request with no credentials at all: RabbitMQ sends only the
    /// WWW-Authenticate challenge, with an empty body.
    pub fn challenge() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "not_authorized", "")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method Not Allowed",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let challenge_only = self.status == StatusCode::UNAUTHORIZED && self.reason.is_empty();
        let body = if challenge_only {
            String::new()
        } else {
            json!({ "error": self.error, "reason": self.reason }).to_string()
        };
        let mut r = (self.status, body).into_response();
        let h = r.headers_mut();
        if challenge_only {
            h.remove(header::CONTENT_TYPE);
        } else {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        if self.status == StatusCode::UNAUTHORIZED && self.error == "not_authorized" {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"RabbitMQ Management\""),
            );
        }
        r
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NotFound(_) => ApiError::not_found(),
            AdminError::BadRequest(reason) => ApiError::bad_request(reason),
        }
    }
}

impl From<AmqpError> for ApiError {
    /// As RabbitMQ's API reports a failed AMQP operation: 400 for a refused declaration
    /// (406, 405, 404 ...) with the AMQP text, 401 for an access refusal.
    fn from(e: AmqpError) -> Self {
        let text = e.text.to_string();
        match e.code {
            // RabbitMQ's API reports every permission refusal with the same text.
            reply_code::ACCESS_REFUSED => ApiError::not_authorised(super::auth::ACCESS_REFUSED),
            reply_code::NOT_FOUND => ApiError::new(StatusCode::NOT_FOUND, "not_found", text),
            _ => ApiError::bad_request(text),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
