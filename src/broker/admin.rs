//! Administrative operations on users, vhosts, permissions and limits, socket-free, for
//! every front end: start-up definitions import, the management HTTP API, the CLI.
//!
//! Each operation validates everything first, then records the change in the definitions
//! log (synced), then applies it in memory: a refused operation changes nothing, and an
//! applied one survives a crash. Errors carry the HTTP status the management API answers
//! with.

use super::auth::password::{HashingAlgorithm, PasswordHash};
use super::auth::{Limit, Permissions, TopicPermissions, User};
use super::vhost::VHost;
use super::{Broker, Seed};
use crate::store::Recovery;
use crate::store::definitions::{
    AdminChange, Change, Definitions, PermissionDef, TopicPermissionDef, UserDef, VHostDef,
};
use std::sync::Arc;
use tracing::info;

/// Why an administrative operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The user, vhost or permission named does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed or invalid (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
}

impl AdminError {
    pub fn status(&self) -> u16 {
        match self {
            AdminError::NotFound(_) => 404,
            AdminError::BadRequest(_) => 400,
        }
    }
}

fn bad(text: impl Into<String>) -> AdminError {
    AdminError::BadRequest(text.into())
}

/// How a user's password is given.
#[derive(Debug, Clone)]
pub enum Credential {
    /// Hashed here with SHA-256 (RabbitMQ's default).
    Password(String),
    /// An existing hash, as RabbitMQ exports it.
    Hash {
        password_hash: String,
        algorithm: String,
    },
    /// No password: the user can log in only by certificate.
    None,
}

/// The limits a vhost knows.
pub const VHOST_LIMITS: [&str; 2] = ["max-connections", "max-queues"];
/// The limits a user knows.
pub const USER_LIMITS: [&str; 2] = ["max-connections", "max-channels"];

fn check_limits(limits: &[(String, i64)], known: &[&str]) -> Result<(), AdminError> {
    for (name, _) in limits {
        if !known.contains(&name.as_str()) {
            return Err(bad(format!(
                "unknown limit '{name}' (known: {})",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

/// The value of a named limit in a list.
pub fn limit(limits: &[(String, i64)], name: &str) -> Limit {
    limits
        .iter()
        .find(|(n, _)| n == name)
        .map_or(Limit(None), |(_, v)| Limit::from_i64(*v))
}

/// Builds the in-memory user from its stored form.
pub fn user_from_def(d: &UserDef) -> Result<User, String> {
    let password = if d.password_hash.is_empty() {
        None
    } else {
        let algorithm = HashingAlgorithm::parse(&d.hashing_algorithm).ok_or_else(|| {
            format!(
                "unknown hashing_algorithm '{}' for user '{}' (known: rabbit_password_hashing_sha256, rabbit_password_hashing_sha512, rabbit_password_hashing_md5)",
                d.hashing_algorithm, d.name
            )
        })?;
        Some(
            PasswordHash::from_base64(algorithm, &d.password_hash)
                .map_err(|e| format!("user '{}': {e}", d.name))?,
        )
    };
    Ok(User {
        name: d.name.clone(),
        password,
        tags: d.tags.clone(),
        max_connections: limit(&d.limits, "max-connections"),
        max_channels: limit(&d.limits, "max-channels"),
    })
}

/// RabbitMQ's tag lists come comma-separated ("administrator,management") or as a list.
pub fn parse_tags(tags: &str) -> Vec<String> {
    tags.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

/// The changes that create the default vhost and user with full permissions on it.
pub fn seed_changes(seed: &Seed, defs: &Definitions) -> Vec<Change> {
    let mut out = Vec::new();
    if !defs.vhosts.iter().any(|v| v.name == seed.vhost) {
        out.push(AdminChange::VHost(VHostDef {
            name: seed.vhost.clone(),
            description: "Default virtual host".into(),
            tags: Vec::new(),
            limits: Vec::new(),
        }));
    }
    if !defs.users.iter().any(|u| u.name == seed.user) {
        out.push(AdminChange::User(UserDef {
            name: seed.user.clone(),
            password_hash: PasswordHash::new(HashingAlgorithm::Sha256, &seed.password).to_base64(),
            hashing_algorithm: HashingAlgorithm::Sha256.name().into(),
            tags: vec!["administrator".into()],
            limits: Vec::new(),
        }));
        out.push(AdminChange::Permission(PermissionDef {
            user: seed.user.clone(),
            vhost: seed.vhost.clone(),
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        }));
    }
    out.push(AdminChange::Seeded);
    out.into_iter().map(Change::Admin).collect()
}

impl Broker {
    /// Builds vhosts, users and permissions from recovered definitions. Entries that no
    /// longer parse (a hash algorithm unknown to this build) are skipped with an error.
    pub(super) fn load(&self, recovery: &mut Recovery) {
        let defs = recovery.definitions.clone();
        for v in &defs.vhosts {
            let vh = Arc::new(VHost::new(
                &v.name,
                self.store.clone(),
                self.delayed.clone(),
                self.dead_letters.clone(),
                self.connections.activity.clone(),
            ));
            vh.set_def(v.clone());
            vh.recover(recovery);
            self.vhosts.insert(v.name.clone(), vh);
        }
        for u in &defs.users {
            match user_from_def(u) {
                Ok(user) => self.auth.put_user(user),
                Err(e) => tracing::error!(error = %e, "skipping a stored user"),
            }
        }
        for p in &defs.permissions {
            match Permissions::new(&p.configure, &p.write, &p.read) {
                Ok(perms) => self.auth.set_permissions(&p.user, &p.vhost, perms),
                Err(e) => tracing::error!(error = %e, "skipping stored permissions"),
            }
        }
        for t in &defs.topic_permissions {
            self.auth.set_topic_permissions(
                &t.user,
                &t.vhost,
                TopicPermissions {
                    exchange: t.exchange.clone(),
                    write: t.write.clone(),
                    read: t.read.clone(),
                },
            );
        }
    }

    /// Records that the first start is over without creating the default user and vhost
    /// (definitions were imported instead): a later start without an import file then
    /// does not create them either, as RabbitMQ seeds only an empty database.
    pub fn mark_seeded(&self) {
        let _g = self.admin.lock().unwrap();
        self.record(AdminChange::Seeded);
    }

    fn record(&self, a: AdminChange) {
        self.store.define(&Change::Admin(a));
    }

    /// Creates a vhost (with its `amq.*` exchanges) or updates its description, tags and
    /// limits. Returns whether it was created.
    pub fn put_vhost(&self, def: VHostDef) -> Result<bool, AdminError> {
        if def.name.is_empty() {
            return Err(bad("vhost name must not be empty"));
        }
        check_limits(&def.limits, &VHOST_LIMITS)?;
        let _g = self.admin.lock().unwrap();
        self.record(AdminChange::VHost(def.clone()));
        if let Some(v) = self.vhost(&def.name) {
            v.set_def(def);
            return Ok(false);
        }
        let v = Arc::new(VHost::new(
            &def.name,
            self.store.clone(),
            self.delayed.clone(),
            self.dead_letters.clone(),
            self.connections.activity.clone(),
        ));
        info!(vhost = %def.name, "vhost created");
        v.set_def(def.clone());
        self.vhosts.insert(def.name, v);
        Ok(true)
    }

    /// Deletes a vhost: its connections are closed (320), its queues, messages and files
    /// removed, and every permission on it forgotten.
    pub fn delete_vhost(&self, name: &str) -> Result<(), AdminError> {
        let _g = self.admin.lock().unwrap();
        let Some((_, v)) = self.vhosts.remove(name) else {
            return Err(AdminError::NotFound(format!(
                "vhost '{name}' does not exist"
            )));
        };
        self.record(AdminChange::DeleteVHost {
            name: name.to_string(),
        });
        self.connections
            .close_where(|c| c.vhost == name, &format!("vhost '{name}' is deleted"));
        v.destroy();
        self.retired_queues.absorb(&v.retired);
        self.auth.forget_vhost(name);
        info!(vhost = %name, "vhost deleted");
        Ok(())
    }

    /// Creates or updates a user. Tags replace the old ones; limits are kept.
    pub fn put_user(
        &self,
        name: &str,
        credential: Credential,
        tags: Vec<String>,
    ) -> Result<bool, AdminError> {
        if name.is_empty() {
            return Err(bad("user name must not be empty"));
        }
        let (password_hash, hashing_algorithm) = match credential {
            Credential::Password(p) => (
                PasswordHash::new(HashingAlgorithm::Sha256, &p).to_base64(),
                HashingAlgorithm::Sha256.name().to_string(),
            ),
            Credential::Hash {
                password_hash,
                algorithm,
            } => (password_hash, algorithm),
            Credential::None => (String::new(), HashingAlgorithm::Sha256.name().to_string()),
        };
        let _g = self.admin.lock().unwrap();
        let existing = self.auth.user(name);
        let limits = existing
            .as_ref()
            .map(|u| user_limits(u))
            .unwrap_or_default();
        let def = UserDef {
            name: name.to_string(),
            password_hash,
            hashing_algorithm,
            tags,
            limits,
        };
        let user = user_from_def(&def).map_err(bad)?;
        self.record(AdminChange::User(def));
        self.auth.put_user(user);
        Ok(existing.is_none())
    }

    /// Deletes a user, its permissions, and closes its connections (320).
    pub fn delete_user(&self, name: &str) -> Result<(), AdminError> {
        let _g = self.admin.lock().unwrap();
        if self.auth.user(name).is_none() {
            return Err(AdminError::NotFound(format!(
                "user '{name}' does not exist"
            )));
        }
        self.record(AdminChange::DeleteUser {
            name: name.to_string(),
        });
        self.auth.delete_user(name);
        self.connections
            .close_where(|c| c.user == name, &format!("user '{name}' is deleted"));
        Ok(())
    }

    fn user_and_vhost_exist(&self, user: &str, vhost: &str) -> Result<(), AdminError> {
        if self.auth.user(user).is_none() {
            return Err(bad(format!("no user '{user}'")));
        }
        if self.vhost(vhost).is_none() {
            return Err(bad(format!("no vhost '{vhost}'")));
        }
        Ok(())
    }

    /// Sets a user's configure, write and read expressions in a vhost.
    pub fn set_permissions(&self, p: PermissionDef) -> Result<(), AdminError> {
        self.user_and_vhost_exist(&p.user, &p.vhost)?;
        let perms = Permissions::new(&p.configure, &p.write, &p.read).map_err(bad)?;
        let _g = self.admin.lock().unwrap();
        let (user, vhost) = (p.user.clone(), p.vhost.clone());
        self.record(AdminChange::Permission(p));
        self.auth.set_permissions(&user, &vhost, perms);
        Ok(())
    }

    pub fn clear_permissions(&self, user: &str, vhost: &str) -> Result<(), AdminError> {
        let _g = self.admin.lock().unwrap();
        if self.auth.permissions(user, vhost).is_none() {
            return Err(AdminError::NotFound(format!(
                "no permissions for user '{user}' in vhost '{vhost}'"
            )));
        }
        self.record(AdminChange::ClearPermission {
            user: user.into(),
            vhost: vhost.into(),
        });
        self.auth.clear_permissions(user, vhost);
        Ok(())
    }

    /// Sets a user's topic permissions on one exchange of a vhost.
    pub fn set_topic_permissions(&self, p: TopicPermissionDef) -> Result<(), AdminError> {
        self.user_and_vhost_exist(&p.user, &p.vhost)?;
        if p.exchange.is_empty() {
            return Err(bad("topic permissions need an exchange"));
        }
        // Validate the expressions as they will be expanded (the variables are literal
        // text as far as the syntax goes).
        for re in [&p.write, &p.read] {
            super::auth::Pattern::new(re).map_err(bad)?;
        }
        let _g = self.admin.lock().unwrap();
        let t = TopicPermissions {
            exchange: p.exchange.clone(),
            write: p.write.clone(),
            read: p.read.clone(),
        };
        let (user, vhost) = (p.user.clone(), p.vhost.clone());
        self.record(AdminChange::TopicPermission(p));
        self.auth.set_topic_permissions(&user, &vhost, t);
        Ok(())
    }

    pub fn clear_topic_permissions(
        &self,
        user: &str,
        vhost: &str,
        exchange: Option<&str>,
    ) -> Result<(), AdminError> {
        let _g = self.admin.lock().unwrap();
        let has = self
            .auth
            .topic_permissions(user, vhost)
            .iter()
            .any(|t| exchange.is_none_or(|e| e == t.exchange));
        if !has {
            return Err(AdminError::NotFound(format!(
                "no topic permissions for user '{user}' in vhost '{vhost}'"
            )));
        }
        self.record(AdminChange::ClearTopicPermission {
            user: user.into(),
            vhost: vhost.into(),
            exchange: exchange.map(String::from),
        });
        self.auth.clear_topic_permissions(user, vhost, exchange);
        Ok(())
    }

    /// Replaces a vhost's limits (`max-connections`, `max-queues`; negative: none).
    pub fn set_vhost_limits(
        &self,
        vhost: &str,
        limits: Vec<(String, i64)>,
    ) -> Result<(), AdminError> {
        check_limits(&limits, &VHOST_LIMITS)?;
        let v = self
            .vhost(vhost)
            .ok_or_else(|| AdminError::NotFound(format!("vhost '{vhost}' does not exist")))?;
        let mut def = v.def();
        def.limits = limits;
        self.put_vhost(def).map(|_| ())
    }

    /// Replaces a user's limits (`max-connections`, `max-channels`; negative: none).
    pub fn set_user_limits(
        &self,
        user: &str,
        limits: Vec<(String, i64)>,
    ) -> Result<(), AdminError> {
        check_limits(&limits, &USER_LIMITS)?;
        let _g = self.admin.lock().unwrap();
        let u = self
            .auth
            .user(user)
            .ok_or_else(|| AdminError::NotFound(format!("user '{user}' does not exist")))?;
        let mut def = user_def(&u);
        def.limits = limits;
        let updated = user_from_def(&def).map_err(bad)?;
        self.record(AdminChange::User(def));
        self.auth.put_user(updated);
        Ok(())
    }
}

/// A user's limits as stored.
pub fn user_limits(u: &User) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for (name, l) in [
        ("max-connections", u.max_connections),
        ("max-channels", u.max_channels),
    ] {
        if let Some(v) = l.0 {
            out.push((name.to_string(), v as i64));
        }
    }
    out
}

/// A user as stored (and exported).
pub fn user_def(u: &User) -> UserDef {
    UserDef {
        name: u.name.clone(),
        password_hash: u
            .password
            .as_ref()
            .map(|p| p.to_base64())
            .unwrap_or_default(),
        hashing_algorithm: u
            .password
            .as_ref()
            .map_or(HashingAlgorithm::Sha256, |p| p.algorithm)
            .name()
            .to_string(),
        tags: u.tags.clone(),
        limits: user_limits(u),
    }
}
