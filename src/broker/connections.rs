//! Every open client connection, whatever its protocol, as the broker sees it: who it is,
//! where it is, and a way to close it (deleting its vhost or user, and later the
//! management API's DELETE).
//!
//! A connection registers after its handshake and is removed when its [`Registration`]
//! drops, so the registry never outlives the connection task.

use dashmap::DashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub struct ConnectionEntry {
    pub id: u64,
    pub user: String,
    pub vhost: String,
    pub peer: String,
    kill: CancellationToken,
    reason: Mutex<Option<String>>,
}

impl ConnectionEntry {
    /// Asks the connection to close with 320 CONNECTION_FORCED and `reason` as its text.
    pub fn close(&self, reason: String) {
        let mut r = self.reason.lock().unwrap();
        if r.is_none() {
            *r = Some(reason);
        }
        drop(r);
        self.kill.cancel();
    }

    /// Resolves when [`close`](Self::close) was called; yields the reason.
    pub async fn closed(&self) -> String {
        self.kill.cancelled().await;
        self.reason.lock().unwrap().clone().unwrap_or_default()
    }
}

#[derive(Debug, Default)]
pub struct Registry {
    map: DashMap<u64, Arc<ConnectionEntry>>,
}

/// Keeps a connection in the registry while it lives.
#[derive(Debug)]
pub struct Registration {
    pub entry: Arc<ConnectionEntry>,
    registry: Arc<Registry>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.map.remove(&self.entry.id);
    }
}

impl Registry {
    pub fn register(
        self: &Arc<Self>,
        id: u64,
        user: &str,
        vhost: &str,
        peer: String,
    ) -> Registration {
        let entry = Arc::new(ConnectionEntry {
            id,
            user: user.to_string(),
            vhost: vhost.to_string(),
            peer,
            kill: CancellationToken::new(),
            reason: Mutex::new(None),
        });
        self.map.insert(id, entry.clone());
        Registration {
            entry,
            registry: self.clone(),
        }
    }

    pub fn all(&self) -> Vec<Arc<ConnectionEntry>> {
        self.map.iter().map(|e| e.clone()).collect()
    }

    /// Closes every connection `pick` selects, with `reason`.
    pub fn close_where(&self, pick: impl Fn(&ConnectionEntry) -> bool, reason: &str) {
        for e in self.all().into_iter().filter(|e| pick(e)) {
            e.close(reason.to_string());
        }
    }
}
