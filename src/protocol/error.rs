//! The one protocol error: a reply code, RabbitMQ-style text, the offending method and
//! whether it closes the channel (soft) or the whole connection (hard).
//!
//! Every failure that the peer must hear about is an `AmqpError`; the server turns it into
//! channel.close or connection.close in one place.

use super::generated::{
    ChannelClose, ConnectionClose, Method, reply_code, reply_code_is_hard, reply_code_name,
};
use super::wire::WireError;
use std::borrow::Cow;
use std::fmt;

/// What an error closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Soft error: channel.close; the connection and its other channels go on.
    Channel,
    /// Hard error: connection.close.
    Connection,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AmqpError {
    pub code: u16,
    pub text: Cow<'static, str>,
    /// Class and method that caused the error (0, 0 when none did).
    pub class_id: u16,
    pub method_id: u16,
    pub scope: Scope,
}

impl fmt::Display for AmqpError {
    /// RabbitMQ's reply-text form: `NOT_FOUND - no queue 'q' in vhost '/'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} - {}",
            reply_code_name(self.code).unwrap_or("UNKNOWN"),
            self.text
        )
    }
}

impl AmqpError {
    /// An error whose scope is the reply code's usual one (see `amqp-spec/`).
    pub fn new(code: u16, text: impl Into<Cow<'static, str>>) -> Self {
        let scope = if reply_code_is_hard(code) {
            Scope::Connection
        } else {
            Scope::Channel
        };
        Self {
            code,
            text: text.into(),
            class_id: 0,
            method_id: 0,
            scope,
        }
    }

    /// A soft error: closes the channel.
    pub fn channel(code: u16, text: impl Into<Cow<'static, str>>) -> Self {
        Self {
            scope: Scope::Channel,
            ..Self::new(code, text)
        }
    }

    /// A hard error: closes the connection, whatever the code's usual scope
    /// (RabbitMQ closes the connection with 403 on a failed login, for instance).
    pub fn connection(code: u16, text: impl Into<Cow<'static, str>>) -> Self {
        Self {
            scope: Scope::Connection,
            ..Self::new(code, text)
        }
    }

    /// Records the method that caused the error.
    pub fn on(mut self, class_id: u16, method_id: u16) -> Self {
        self.class_id = class_id;
        self.method_id = method_id;
        self
    }

    /// Records `method` as the cause, unless a cause is already set.
    pub fn caused_by(self, method: &Method) -> Self {
        if self.class_id == 0 {
            self.on(method.class_id(), method.method_id())
        } else {
            self
        }
    }

    pub fn is_hard(&self) -> bool {
        self.scope == Scope::Connection
    }

    /// The reply-text to send: code name and text. Like RabbitMQ, text beyond a
    /// shortstr's 255 octets is cut to 252 and marked with `...`.
    pub fn reply_text(&self) -> String {
        let mut s = self.to_string();
        if s.len() > 255 {
            let mut end = 252;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            s.push_str("...");
        }
        s
    }

    /// The connection.close that reports this error.
    pub fn connection_close(&self) -> Method {
        Method::ConnectionClose(ConnectionClose {
            reply_code: self.code,
            reply_text: self.reply_text().into(),
            class_id: self.class_id,
            method_id: self.method_id,
        })
    }

    /// The channel.close that reports this error.
    pub fn channel_close(&self) -> Method {
        Method::ChannelClose(ChannelClose {
            reply_code: self.code,
            reply_text: self.reply_text().into(),
            class_id: self.class_id,
            method_id: self.method_id,
        })
    }

    pub fn frame_error(text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(reply_code::FRAME_ERROR, text)
    }

    pub fn unexpected_frame(text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(reply_code::UNEXPECTED_FRAME, text)
    }

    /// Converts a decoding failure of `what` (a method name, "content header"...).
    pub(crate) fn from_wire(e: WireError, what: &str) -> Self {
        match e {
            WireError::Truncated => Self::frame_error(format!("cannot decode {what}")),
            WireError::UnknownFieldType(t) => Self::new(
                reply_code::SYNTAX_ERROR,
                format!("unknown field type {:?} in a table of {what}", t as char),
            ),
            WireError::TooDeep => Self::new(
                reply_code::SYNTAX_ERROR,
                format!("tables nested too deeply in {what}"),
            ),
        }
    }
}
