//! One connection's access to its vhost: the permission checks RabbitMQ makes, with a
//! small cache of decisions owned by the connection's reader task (no lock).
//!
//! Invariant: every cached decision was made at `generation`; when the user database's
//! generation moves, the cache is dropped and the user's permissions are read again, so a
//! change made through the admin operations applies to open connections at their next
//! check.

use super::{Auth, Permissions, TopicPermissions, User};
use crate::protocol::{AmqpError, reply_code};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perm {
    Configure,
    Write,
    Read,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Queue,
    Exchange,
}

impl ResourceKind {
    fn name(self) -> &'static str {
        match self {
            ResourceKind::Queue => "queue",
            ResourceKind::Exchange => "exchange",
        }
    }
}

/// As many decisions as RabbitMQ's channel keeps (its permission cache holds 12).
const CACHE: usize = 16;

#[derive(Debug)]
pub struct Access {
    auth: Arc<Auth>,
    pub user: Arc<User>,
    pub vhost: String,
    /// The `client_id` client property, for topic permission expansion.
    client_id: String,
    generation: u64,
    permissions: Option<Arc<Permissions>>,
    topics: Vec<Arc<TopicPermissions>>,
    /// (perm, kind, name, allowed), most recent last.
    cache: Vec<(Perm, ResourceKind, Box<[u8]>, bool)>,
    /// Topic expressions expanded and compiled, by (perm, exchange).
    topic_cache: Vec<(Perm, Box<[u8]>, Option<super::Pattern>)>,
}

impl Access {
    pub fn new(auth: Arc<Auth>, user: Arc<User>, vhost: &str, client_id: &str) -> Access {
        let mut a = Access {
            auth,
            user,
            vhost: vhost.to_string(),
            client_id: client_id.to_string(),
            generation: u64::MAX,
            permissions: None,
            topics: Vec::new(),
            cache: Vec::with_capacity(CACHE),
            topic_cache: Vec::new(),
        };
        a.refresh();
        a
    }

    /// Re-reads the user's permissions when the database changed since the last check.
    fn refresh(&mut self) {
        let g = self.auth.generation();
        if g == self.generation {
            return;
        }
        self.generation = g;
        self.cache.clear();
        self.topic_cache.clear();
        if let Some(u) = self.auth.user(&self.user.name) {
            self.user = u;
        }
        self.permissions = self.auth.permissions(&self.user.name, &self.vhost);
        self.topics = self.auth.topic_permissions(&self.user.name, &self.vhost);
    }

    /// Whether the user has any permissions in the vhost (connection.open's check).
    pub fn may_open(&mut self) -> bool {
        self.refresh();
        self.permissions.is_some()
    }

    /// RabbitMQ's check_resource_access: 403 ACCESS_REFUSED, closing the channel.
    pub fn check(&mut self, perm: Perm, kind: ResourceKind, name: &[u8]) -> Result<(), AmqpError> {
        self.refresh();
        // The default exchange is checked under RabbitMQ's name for it.
        let name: &[u8] = if kind == ResourceKind::Exchange && name.is_empty() {
            b"amq.default"
        } else {
            name
        };
        let cached = self
            .cache
            .iter()
            .rev()
            .find(|(p, k, n, _)| *p == perm && *k == kind && &n[..] == name)
            .map(|c| c.3);
        let allowed = match cached {
            Some(a) => a,
            None => {
                let text = String::from_utf8_lossy(name);
                let a = self
                    .permissions
                    .as_ref()
                    .is_some_and(|p| p.get(perm).matches(&text));
                if self.cache.len() == CACHE {
                    self.cache.remove(0);
                }
                self.cache.push((perm, kind, name.into(), a));
                a
            }
        };
        if allowed {
            return Ok(());
        }
        Err(AmqpError::channel(
            reply_code::ACCESS_REFUSED,
            format!(
                "access to {} '{}' in vhost '{}' refused for user '{}'",
                kind.name(),
                String::from_utf8_lossy(name),
                self.vhost,
                self.user.name
            ),
        ))
    }

    /// RabbitMQ's topic authorisation on a topic exchange: without topic permissions for
    /// the exchange anything goes; with them the routing key must match the (expanded)
    /// write or read expression.
    pub fn check_topic(
        &mut self,
        perm: Perm,
        exchange: &[u8],
        routing_key: &[u8],
    ) -> Result<(), AmqpError> {
        self.refresh();
        let Some(t) = self
            .topics
            .iter()
            .find(|t| t.exchange.as_bytes() == exchange)
        else {
            return Ok(());
        };
        let at = match self
            .topic_cache
            .iter()
            .position(|(p, e, _)| *p == perm && &e[..] == exchange)
        {
            Some(i) => i,
            None => {
                let source = match perm {
                    Perm::Write => &t.write,
                    _ => &t.read,
                };
                let expanded = source
                    .replace("{username}", &self.user.name)
                    .replace("{vhost}", &self.vhost)
                    .replace("{client_id}", &self.client_id);
                let pattern = super::Pattern::new(&expanded).ok();
                self.topic_cache.push((perm, exchange.into(), pattern));
                self.topic_cache.len() - 1
            }
        };
        let key = String::from_utf8_lossy(routing_key);
        let allowed = self.topic_cache[at]
            .2
            .as_ref()
            .is_some_and(|p| p.matches(&key));
        if allowed {
            return Ok(());
        }
        Err(AmqpError::channel(
            reply_code::ACCESS_REFUSED,
            format!(
                "access to topic '{key}' in exchange '{}' in vhost '{}' refused for user '{}'",
                String::from_utf8_lossy(exchange),
                self.vhost,
                self.user.name
            ),
        ))
    }
}
