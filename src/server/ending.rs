//! How an open AMQP connection ended, logged once when it is gone.
//!
//! RabbitMQ logs a connection's close with its peer, vhost and user, and says why when
//! the close was not the client's own; operators grep for exactly that. A connection
//! records the first cause it sees ([`Ending::first`]) and its reader logs one line
//! after cleanup ([`Ending::log`]), whichever way the connection went: the client's
//! connection.close, an error of ours, a forced close (shutdown, the management API, a
//! deleted vhost or user), missed heartbeats, or a socket that just went away.

use crate::protocol::*;
use tracing::{info, warn};

/// Why a connection ended.
#[derive(Debug)]
pub(crate) enum Ending {
    /// The client sent connection.close.
    Client { code: u16, text: String },
    /// We closed it with 320 CONNECTION_FORCED: shutdown, an operator, a deleted vhost or
    /// user.
    Forced { text: String },
    /// We closed it for a protocol error (a hard error, connection.close with the code).
    Error {
        code: u16,
        text: String,
        class: u16,
        method: u16,
    },
    /// Nothing came from the client for two heartbeat intervals.
    Heartbeat { timeout: u16 },
    /// The socket reached EOF without a connection.close.
    Vanished,
    /// Reading or writing the socket failed.
    Io { error: String },
}

impl Ending {
    /// The cause of a connection.close we send.
    pub fn of_close(e: &AmqpError) -> Ending {
        if e.code == reply_code::CONNECTION_FORCED {
            Ending::Forced {
                text: e.text.to_string(),
            }
        } else {
            Ending::Error {
                code: e.code,
                text: e.text.to_string(),
                class: e.class_id,
                method: e.method_id,
            }
        }
    }

    /// Keeps the first cause: once we have closed (or the client has), what follows (the
    /// socket's EOF, a close-ok that never comes) is a consequence, not the reason.
    pub fn first(slot: &mut Option<Ending>, cause: Ending) {
        if slot.is_none() {
            *slot = Some(cause);
        }
    }

    /// The one log line of a connection's end. `client_name` is the client's
    /// `connection_name` property ("" when it gave none). A close the client asked for
    /// is information; every other end is a warning that says what to look at.
    pub fn log(&self, user: &str, vhost: &str, client_name: &str) {
        match self {
            Ending::Client { code, text } => info!(
                user = %user,
                vhost = %vhost,
                client_name,
                code,
                text = %text,
                "connection closed by the client"
            ),
            Ending::Forced { text } => info!(
                user = %user,
                vhost = %vhost,
                client_name,
                reason = %text,
                "connection closed by the broker (320 CONNECTION_FORCED)"
            ),
            Ending::Error {
                code,
                text,
                class,
                method,
            } => warn!(
                user = %user,
                vhost = %vhost,
                client_name,
                code,
                text = %text,
                class,
                method,
                "connection closed on a protocol error: the client sent something it must not; \
                 the text says what"
            ),
            Ending::Heartbeat { timeout } => warn!(
                user = %user,
                vhost = %vhost,
                client_name,
                timeout,
                "missed heartbeats from the client, connection dropped: the client stopped \
                 sending for two heartbeat intervals (a blocked client thread, or the network)"
            ),
            Ending::Vanished => warn!(
                user = %user,
                vhost = %vhost,
                client_name,
                "client unexpectedly closed the TCP connection (without connection.close): \
                 check that the client closes its connections, or why it died"
            ),
            Ending::Io { error } => warn!(
                user = %user,
                vhost = %vhost,
                client_name,
                error = %error,
                "connection lost: the socket failed"
            ),
        }
    }
}
