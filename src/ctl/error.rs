//! Errors and exit codes. The codes are the sysexits(3) ones that rabbitmqctl uses, so
//! scripts written for it read warren-ctl's the same way (docs/CTL.md lists them).

use std::fmt;

/// Bad command line: unknown subcommand, option or column, missing argument.
pub const USAGE: u8 = 64;
/// Bad data: the broker refused the input (HTTP 400), a vhost, queue, policy or other
/// object that does not exist, a file that cannot be read, written or parsed.
pub const DATA: u8 = 65;
/// The user named does not exist.
pub const NO_USER: u8 = 67;
/// The broker cannot be reached, or answered 503.
pub const UNAVAILABLE: u8 = 69;
/// The broker answered something unexpected (a 5xx, a body that is not JSON).
pub const SOFTWARE: u8 = 70;
/// The request timed out (`--timeout`).
pub const TEMP_FAIL: u8 = 75;
/// Authentication failed (HTTP 401) or the user may not do this (HTTP 403).
pub const NO_PERM: u8 = 77;

/// What went wrong, with the exit code it earns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlError {
    pub code: u8,
    pub message: String,
    /// The broker answered 404 (the command may replace the message with one naming
    /// what is missing).
    pub not_found: bool,
}

impl CtlError {
    pub fn new(code: u8, message: impl Into<String>) -> CtlError {
        CtlError {
            code,
            message: message.into(),
            not_found: false,
        }
    }

    pub fn usage(message: impl Into<String>) -> CtlError {
        CtlError::new(USAGE, message)
    }

    pub fn data(message: impl Into<String>) -> CtlError {
        CtlError::new(DATA, message)
    }

    pub fn no_user(user: &str) -> CtlError {
        CtlError::new(NO_USER, format!("user '{user}' does not exist"))
    }

    pub fn no_vhost(vhost: &str) -> CtlError {
        CtlError::data(format!("vhost '{vhost}' does not exist"))
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CtlError {}

pub type Result<T> = std::result::Result<T, CtlError>;

/// Replaces a 404 with the error `missing` builds; other errors pass through.
pub trait OrMissing<T> {
    fn or_missing(self, missing: impl FnOnce() -> CtlError) -> Result<T>;
}

impl<T> OrMissing<T> for Result<T> {
    fn or_missing(self, missing: impl FnOnce() -> CtlError) -> Result<T> {
        match self {
            Err(e) if e.not_found => Err(missing()),
            other => other,
        }
    }
}
