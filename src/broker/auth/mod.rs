//! The internal user database and access control, as RabbitMQ's internal auth backend:
//! users (password hashes, tags, limits), per user and vhost the configure/write/read
//! regular expressions, and topic permissions on routing keys.
//!
//! The database sits behind one `RwLock`, written only by administrative operations
//! (`broker::admin`). Every change bumps [`Auth::generation`]; a connection's [`Access`]
//! caches its decisions and drops them when the generation moves, so that the per-message
//! path (basic.publish) costs one atomic load and a short scan of cached names, never a
//! regex match, and a permission change still applies to open connections.

pub mod access;
pub mod password;

pub use access::{Access, Perm, ResourceKind};
use password::PasswordHash;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// A regular expression of a permission, with RabbitMQ's rule that "" matches nothing
/// (it stands for `^$`). Matching is unanchored, as Erlang's `re:run`.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    regex: fancy_regex::Regex,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Pattern, String> {
        let effective = if source.is_empty() { "^$" } else { source };
        let regex = fancy_regex::Regex::new(effective)
            .map_err(|e| format!("invalid regular expression '{source}': {e}"))?;
        Ok(Pattern {
            source: source.to_string(),
            regex,
        })
    }

    pub fn matches(&self, name: &str) -> bool {
        self.regex.is_match(name).unwrap_or(false)
    }
}

/// A user's configure, write and read expressions in one vhost.
#[derive(Debug, Clone)]
pub struct Permissions {
    pub configure: Pattern,
    pub write: Pattern,
    pub read: Pattern,
}

impl Permissions {
    pub fn new(configure: &str, write: &str, read: &str) -> Result<Permissions, String> {
        Ok(Permissions {
            configure: Pattern::new(configure)?,
            write: Pattern::new(write)?,
            read: Pattern::new(read)?,
        })
    }

    pub fn get(&self, p: Perm) -> &Pattern {
        match p {
            Perm::Configure => &self.configure,
            Perm::Write => &self.write,
            Perm::Read => &self.read,
        }
    }
}

/// Write and read expressions on the routing keys of one topic exchange. They may use
/// `{username}`, `{vhost}` and `{client_id}`, expanded when checked.
#[derive(Debug, Clone)]
pub struct TopicPermissions {
    pub exchange: String,
    pub write: String,
    pub read: String,
}

/// Limits of a user or a vhost; `None` is unlimited (RabbitMQ's -1 or absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limit(pub Option<u64>);

impl Limit {
    /// RabbitMQ's convention: a negative value means no limit.
    pub fn from_i64(v: i64) -> Limit {
        Limit((v >= 0).then_some(v as u64))
    }

    /// Would one more on top of `current` go over it?
    pub fn reached(self, current: u64) -> bool {
        self.0.is_some_and(|max| current >= max)
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    /// `None`: the user can only log in by certificate (SASL EXTERNAL).
    pub password: Option<PasswordHash>,
    pub tags: Vec<String>,
    pub max_connections: Limit,
    pub max_channels: Limit,
}

impl User {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// Connections and channels a user has open now, for the user limits.
#[derive(Debug, Default)]
pub struct Usage {
    pub connections: AtomicU64,
    pub channels: AtomicU64,
}

#[derive(Debug, Default)]
struct Db {
    users: HashMap<String, Arc<User>>,
    /// By (user, vhost).
    permissions: HashMap<(String, String), Arc<Permissions>>,
    /// By (user, vhost), one entry per exchange.
    topic_permissions: HashMap<(String, String), Vec<Arc<TopicPermissions>>>,
}

/// The user database.
#[derive(Debug, Default)]
pub struct Auth {
    db: RwLock<Db>,
    /// Moves on every change; caches compare it.
    generation: AtomicU64,
    usage: dashmap::DashMap<String, Arc<Usage>>,
}

/// Why a login failed (the text for the log; the client hears RabbitMQ's generic one).
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    NoSuchUser,
    WrongPassword,
    NoPassword,
}

impl Auth {
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.db.read().unwrap().users.get(name).cloned()
    }

    pub fn users(&self) -> Vec<Arc<User>> {
        let mut v: Vec<_> = self.db.read().unwrap().users.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Checks a password login (SASL PLAIN and AMQPLAIN).
    pub fn login(&self, name: &str, password: &str) -> Result<Arc<User>, LoginError> {
        let user = self.user(name).ok_or(LoginError::NoSuchUser)?;
        match &user.password {
            None => Err(LoginError::NoPassword),
            Some(h) if h.verify(password) => Ok(user),
            Some(_) => Err(LoginError::WrongPassword),
        }
    }

    pub fn put_user(&self, user: User) {
        let mut db = self.db.write().unwrap();
        db.users.insert(user.name.clone(), Arc::new(user));
        drop(db);
        self.changed();
    }

    /// Removes a user and every permission it had; false when there was none.
    pub fn delete_user(&self, name: &str) -> bool {
        let mut db = self.db.write().unwrap();
        let existed = db.users.remove(name).is_some();
        db.permissions.retain(|(u, _), _| u != name);
        db.topic_permissions.retain(|(u, _), _| u != name);
        drop(db);
        // Its open connections keep their own handle on the counts until they close.
        self.usage.remove(name);
        self.changed();
        existed
    }

    pub fn permissions(&self, user: &str, vhost: &str) -> Option<Arc<Permissions>> {
        self.db
            .read()
            .unwrap()
            .permissions
            .get(&(user.to_string(), vhost.to_string()))
            .cloned()
    }

    /// Every (user, vhost, permissions), sorted.
    pub fn all_permissions(&self) -> Vec<(String, String, Arc<Permissions>)> {
        let db = self.db.read().unwrap();
        let mut v: Vec<_> = db
            .permissions
            .iter()
            .map(|((u, vh), p)| (u.clone(), vh.clone(), p.clone()))
            .collect();
        v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        v
    }

    pub fn set_permissions(&self, user: &str, vhost: &str, p: Permissions) {
        self.db
            .write()
            .unwrap()
            .permissions
            .insert((user.to_string(), vhost.to_string()), Arc::new(p));
        self.changed();
    }

    pub fn clear_permissions(&self, user: &str, vhost: &str) -> bool {
        let removed = self
            .db
            .write()
            .unwrap()
            .permissions
            .remove(&(user.to_string(), vhost.to_string()))
            .is_some();
        self.changed();
        removed
    }

    pub fn topic_permissions(&self, user: &str, vhost: &str) -> Vec<Arc<TopicPermissions>> {
        self.db
            .read()
            .unwrap()
            .topic_permissions
            .get(&(user.to_string(), vhost.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// Every (user, vhost, topic permission), sorted.
    pub fn all_topic_permissions(&self) -> Vec<(String, String, Arc<TopicPermissions>)> {
        let db = self.db.read().unwrap();
        let mut v: Vec<_> = db
            .topic_permissions
            .iter()
            .flat_map(|((u, vh), ps)| ps.iter().map(|p| (u.clone(), vh.clone(), p.clone())))
            .collect();
        v.sort_by(|a, b| (&a.0, &a.1, &a.2.exchange).cmp(&(&b.0, &b.1, &b.2.exchange)));
        v
    }

    pub fn set_topic_permissions(&self, user: &str, vhost: &str, p: TopicPermissions) {
        let mut db = self.db.write().unwrap();
        let list = db
            .topic_permissions
            .entry((user.to_string(), vhost.to_string()))
            .or_default();
        list.retain(|x| x.exchange != p.exchange);
        list.push(Arc::new(p));
        drop(db);
        self.changed();
    }

    /// Clears one exchange's topic permissions, or all of them (`None`).
    pub fn clear_topic_permissions(&self, user: &str, vhost: &str, exchange: Option<&str>) {
        let mut db = self.db.write().unwrap();
        let key = (user.to_string(), vhost.to_string());
        if let Some(list) = db.topic_permissions.get_mut(&key) {
            list.retain(|x| exchange.is_some_and(|e| e != x.exchange));
            if list.is_empty() {
                db.topic_permissions.remove(&key);
            }
        }
        drop(db);
        self.changed();
    }

    /// Forgets every permission in a vhost (it was deleted).
    pub fn forget_vhost(&self, vhost: &str) {
        let mut db = self.db.write().unwrap();
        db.permissions.retain(|(_, v), _| v != vhost);
        db.topic_permissions.retain(|(_, v), _| v != vhost);
        drop(db);
        self.changed();
    }

    /// The live connection and channel counts of a user.
    pub fn usage(&self, user: &str) -> Arc<Usage> {
        self.usage.entry(user.to_string()).or_default().clone()
    }
}
