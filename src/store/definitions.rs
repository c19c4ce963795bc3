//! Durable definitions: exchanges, queues (with their arguments) and the bindings between
//! durable ends; users, vhosts, permissions, policies, operator policies and global
//! parameters (JSON records). Kept in `definitions.log` under the storage directory.
//!
//! Each change is appended as one checksummed record and synced before the client hears
//! declare-ok / bind-ok. On start-up the log is replayed into a model (a torn last record,
//! from a crash mid-append, is ignored), and the model is written out compacted to a new
//! file that atomically replaces the old one (write, fsync, rename, fsync the directory),
//! so no crash leaves a torn or half-compacted file behind.

use crate::protocol::wire::{self, be_u8, be_u64};
use crate::protocol::{FieldTable, ShortStr};
use bytes::{BufMut, Bytes, BytesMut};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use tracing::warn;

#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeDef {
    pub vhost: ShortStr,
    pub name: ShortStr,
    pub kind: ShortStr,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueDef {
    pub vhost: ShortStr,
    pub name: ShortStr,
    /// Names the queue's message log directory.
    pub log_id: u64,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BindingDef {
    pub vhost: ShortStr,
    pub source: ShortStr,
    /// The destination is a queue (else an exchange).
    pub to_queue: bool,
    pub destination: ShortStr,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
}

/// A user of the internal database, as stored: the hash as RabbitMQ exports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UserDef {
    pub name: String,
    /// base64 of salt ++ digest; empty for a user without a password (certificate only).
    pub password_hash: String,
    pub hashing_algorithm: String,
    pub tags: Vec<String>,
    /// `max-connections`, `max-channels`.
    #[serde(default)]
    pub limits: Vec<(String, i64)>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VHostDef {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// `max-connections`, `max-queues`.
    #[serde(default)]
    pub limits: Vec<(String, i64)>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PermissionDef {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TopicPermissionDef {
    pub user: String,
    pub vhost: String,
    pub exchange: String,
    pub write: String,
    pub read: String,
}

/// Where a policy applies (RabbitMQ 3.10's `apply-to`: 3.12 added `classic_queues`,
/// `quorum_queues` and `streams`, which 3.10 refuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyTo {
    Queues,
    Exchanges,
    All,
}

impl ApplyTo {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyTo::Queues => "queues",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::All => "all",
        }
    }
}

/// A policy or an operator policy, validated, as stored, listed and exported: its fields
/// serialise under RabbitMQ's JSON names (`GET /api/policies`, definitions export).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PolicyDef {
    pub vhost: String,
    pub name: String,
    /// A regular expression matched (unanchored) against queue and exchange names.
    pub pattern: String,
    #[serde(rename = "apply-to")]
    pub apply_to: ApplyTo,
    /// The settings (`message-ttl`, `max-length`, ...), keys sorted.
    pub definition: serde_json::Map<String, serde_json::Value>,
    /// Any JSON number, as RabbitMQ takes it (integers in practice; 1.5 is accepted and
    /// kept as given). The highest wins.
    pub priority: serde_json::Number,
}

/// A global runtime parameter (`cluster_name`, `internal_cluster_id`, ...): any JSON value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GlobalParameterDef {
    pub name: String,
    pub value: serde_json::Value,
}

/// A change to users, vhosts, permissions, limits, policies or global parameters (stored
/// as one JSON record, kind 7).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum AdminChange {
    User(UserDef),
    DeleteUser {
        name: String,
    },
    VHost(VHostDef),
    /// Removes the vhost and everything in it: exchanges, queues, bindings, permissions.
    DeleteVHost {
        name: String,
    },
    Permission(PermissionDef),
    ClearPermission {
        user: String,
        vhost: String,
    },
    TopicPermission(TopicPermissionDef),
    /// `exchange: None` clears every topic permission of the user in the vhost.
    ClearTopicPermission {
        user: String,
        vhost: String,
        exchange: Option<String>,
    },
    /// The default user and vhost were created (done once, on the first start).
    Seeded,
    /// Creates or replaces the policy `(vhost, name)`.
    Policy(PolicyDef),
    DeletePolicy {
        vhost: String,
        name: String,
    },
    /// Creates or replaces the operator policy `(vhost, name)` (a namespace of its own).
    OperatorPolicy(PolicyDef),
    DeleteOperatorPolicy {
        vhost: String,
        name: String,
    },
    GlobalParameter(GlobalParameterDef),
    DeleteGlobalParameter {
        name: String,
    },
}

/// One change to the durable definitions.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Admin(AdminChange),
    Exchange(ExchangeDef),
    DeleteExchange { vhost: ShortStr, name: ShortStr },
    Queue(QueueDef),
    DeleteQueue { vhost: ShortStr, name: ShortStr },
    Bind(BindingDef),
    Unbind(BindingDef),
}

/// Every durable definition, in declaration order.
#[derive(Debug, Default, Clone)]
pub struct Definitions {
    pub exchanges: Vec<ExchangeDef>,
    pub queues: Vec<QueueDef>,
    pub bindings: Vec<BindingDef>,
    pub users: Vec<UserDef>,
    pub vhosts: Vec<VHostDef>,
    pub permissions: Vec<PermissionDef>,
    pub topic_permissions: Vec<TopicPermissionDef>,
    pub policies: Vec<PolicyDef>,
    pub operator_policies: Vec<PolicyDef>,
    pub global_parameters: Vec<GlobalParameterDef>,
    /// The default user and vhost have been created once.
    pub seeded: bool,
}

impl Definitions {
    /// Applies one change to the model (replay, and the broker's own bookkeeping).
    pub fn apply(&mut self, c: Change) {
        match c {
            Change::Admin(a) => self.apply_admin(a),
            Change::Exchange(e) => {
                self.exchanges
                    .retain(|x| !(x.vhost == e.vhost && x.name == e.name));
                self.exchanges.push(e);
            }
            Change::DeleteExchange { vhost, name } => {
                self.exchanges
                    .retain(|x| !(x.vhost == vhost && x.name == name));
                self.bindings.retain(|b| {
                    !(b.vhost == vhost
                        && (b.source == name || (!b.to_queue && b.destination == name)))
                });
            }
            Change::Queue(q) => {
                self.queues
                    .retain(|x| !(x.vhost == q.vhost && x.name == q.name));
                self.queues.push(q);
            }
            Change::DeleteQueue { vhost, name } => {
                self.queues
                    .retain(|x| !(x.vhost == vhost && x.name == name));
                self.bindings
                    .retain(|b| !(b.vhost == vhost && b.to_queue && b.destination == name));
            }
            Change::Bind(b) => {
                if !self.bindings.contains(&b) {
                    self.bindings.push(b);
                }
            }
            Change::Unbind(b) => self.bindings.retain(|x| *x != b),
        }
    }

    fn apply_admin(&mut self, a: AdminChange) {
        match a {
            AdminChange::User(u) => {
                self.users.retain(|x| x.name != u.name);
                self.users.push(u);
            }
            AdminChange::DeleteUser { name } => {
                self.users.retain(|x| x.name != name);
                self.permissions.retain(|p| p.user != name);
                self.topic_permissions.retain(|p| p.user != name);
            }
            AdminChange::VHost(v) => {
                self.vhosts.retain(|x| x.name != v.name);
                self.vhosts.push(v);
            }
            AdminChange::DeleteVHost { name } => {
                let mine = |v: &ShortStr| v.as_bytes() == name.as_bytes();
                self.vhosts.retain(|x| x.name != name);
                self.exchanges.retain(|x| !mine(&x.vhost));
                self.queues.retain(|x| !mine(&x.vhost));
                self.bindings.retain(|x| !mine(&x.vhost));
                self.permissions.retain(|p| p.vhost != name);
                self.topic_permissions.retain(|p| p.vhost != name);
                self.policies.retain(|p| p.vhost != name);
                self.operator_policies.retain(|p| p.vhost != name);
            }
            AdminChange::Permission(p) => {
                self.permissions
                    .retain(|x| !(x.user == p.user && x.vhost == p.vhost));
                self.permissions.push(p);
            }
            AdminChange::ClearPermission { user, vhost } => self
                .permissions
                .retain(|x| !(x.user == user && x.vhost == vhost)),
            AdminChange::TopicPermission(p) => {
                self.topic_permissions.retain(|x| {
                    !(x.user == p.user && x.vhost == p.vhost && x.exchange == p.exchange)
                });
                self.topic_permissions.push(p);
            }
            AdminChange::ClearTopicPermission {
                user,
                vhost,
                exchange,
            } => self.topic_permissions.retain(|x| {
                !(x.user == user
                    && x.vhost == vhost
                    && exchange.as_ref().is_none_or(|e| *e == x.exchange))
            }),
            AdminChange::Seeded => self.seeded = true,
            AdminChange::Policy(p) => put_policy(&mut self.policies, p),
            AdminChange::DeletePolicy { vhost, name } => self
                .policies
                .retain(|x| !(x.vhost == vhost && x.name == name)),
            AdminChange::OperatorPolicy(p) => put_policy(&mut self.operator_policies, p),
            AdminChange::DeleteOperatorPolicy { vhost, name } => self
                .operator_policies
                .retain(|x| !(x.vhost == vhost && x.name == name)),
            AdminChange::GlobalParameter(g) => {
                self.global_parameters.retain(|x| x.name != g.name);
                self.global_parameters.push(g);
            }
            AdminChange::DeleteGlobalParameter { name } => {
                self.global_parameters.retain(|x| x.name != name)
            }
        }
    }

    fn changes(&self) -> impl Iterator<Item = Change> + '_ {
        let admin = self
            .seeded
            .then_some(AdminChange::Seeded)
            .into_iter()
            .chain(self.vhosts.iter().cloned().map(AdminChange::VHost))
            .chain(self.users.iter().cloned().map(AdminChange::User))
            .chain(
                self.permissions
                    .iter()
                    .cloned()
                    .map(AdminChange::Permission),
            )
            .chain(
                self.topic_permissions
                    .iter()
                    .cloned()
                    .map(AdminChange::TopicPermission),
            )
            .chain(self.policies.iter().cloned().map(AdminChange::Policy))
            .chain(
                self.operator_policies
                    .iter()
                    .cloned()
                    .map(AdminChange::OperatorPolicy),
            )
            .chain(
                self.global_parameters
                    .iter()
                    .cloned()
                    .map(AdminChange::GlobalParameter),
            )
            .map(Change::Admin);
        admin
            .chain(self.exchanges.iter().cloned().map(Change::Exchange))
            .chain(self.queues.iter().cloned().map(Change::Queue))
            .chain(self.bindings.iter().cloned().map(Change::Bind))
    }
}

fn put_policy(list: &mut Vec<PolicyDef>, p: PolicyDef) {
    list.retain(|x| !(x.vhost == p.vhost && x.name == p.name));
    list.push(p);
}

/// The open definitions log.
#[derive(Debug)]
pub struct DefinitionsLog {
    file: File,
    sync: bool,
}

const FILE: &str = "definitions.log";

impl DefinitionsLog {
    /// Replays and compacts the log in `dir`; returns it open for appends, with the
    /// definitions it held.
    pub fn open(dir: &Path, sync: bool) -> io::Result<(DefinitionsLog, Definitions)> {
        let path = dir.join(FILE);
        let mut defs = Definitions::default();
        match fs::read(&path) {
            Ok(data) => {
                let data = Bytes::from(data);
                let mut at = 0;
                while let Some((change, len)) = read_record(&data, at) {
                    defs.apply(change);
                    at += len;
                }
                if at < data.len() {
                    warn!(path = %path.display(), "ignoring a torn last definitions record");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Compact: write the model to a new file and swap it in atomically.
        let tmp: PathBuf = dir.join(format!("{FILE}.tmp"));
        let mut buf = BytesMut::new();
        for c in defs.changes() {
            put_record(&mut buf, &c);
        }
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        super::log::sync_dir(dir);
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok((DefinitionsLog { file, sync }, defs))
    }

    /// Appends a change and makes it durable.
    pub fn append(&mut self, c: &Change) -> io::Result<()> {
        let mut buf = BytesMut::new();
        put_record(&mut buf, c);
        self.file.write_all(&buf)?;
        if self.sync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

// Record: u32 length | u32 crc32 | u8 kind | fields (AMQP wire encodings).
fn put_record(buf: &mut BytesMut, c: &Change) {
    let start = buf.len();
    buf.put_u32(0);
    buf.put_u32(0);
    let s = |buf: &mut BytesMut, v: &ShortStr| wire::put_short_str(buf, v);
    let t = |buf: &mut BytesMut, v: &FieldTable| wire::put_field_table(buf, v);
    match c {
        Change::Admin(a) => {
            buf.put_u8(7);
            buf.put_slice(&serde_json::to_vec(a).expect("admin changes serialise"));
        }
        Change::Exchange(e) => {
            buf.put_u8(1);
            s(buf, &e.vhost);
            s(buf, &e.name);
            s(buf, &e.kind);
            buf.put_u8(u8::from(e.auto_delete) | (u8::from(e.internal) << 1));
            t(buf, &e.arguments);
        }
        Change::DeleteExchange { vhost, name } => {
            buf.put_u8(2);
            s(buf, vhost);
            s(buf, name);
        }
        Change::Queue(q) => {
            buf.put_u8(3);
            s(buf, &q.vhost);
            s(buf, &q.name);
            buf.put_u64(q.log_id);
            buf.put_u8(u8::from(q.auto_delete));
            t(buf, &q.arguments);
        }
        Change::DeleteQueue { vhost, name } => {
            buf.put_u8(4);
            s(buf, vhost);
            s(buf, name);
        }
        Change::Bind(b) | Change::Unbind(b) => {
            buf.put_u8(if matches!(c, Change::Bind(_)) { 5 } else { 6 });
            s(buf, &b.vhost);
            s(buf, &b.source);
            buf.put_u8(u8::from(b.to_queue));
            s(buf, &b.destination);
            s(buf, &b.routing_key);
            t(buf, &b.arguments);
        }
    }
    super::record::seal(buf, start);
}

fn read_record(data: &Bytes, at: usize) -> Option<(Change, usize)> {
    let src = super::record::checked(data, at)?;
    let change = parse_change(&src).ok()?;
    Some((change, 8 + src.len()))
}

type R<'a, T> = wire::WireResult<'a, T>;

fn parse_change(src: &Bytes) -> Result<Change, nom::Err<wire::WireError>> {
    let i: &[u8] = src;
    let s = |i| -> R<'_, ShortStr> { wire::short_str(i, src) };
    let t = |i| -> R<'_, FieldTable> { wire::field_table(i, src, 0) };
    let (i, kind) = be_u8(i)?;
    Ok(match kind {
        7 => Change::Admin(
            serde_json::from_slice(i).map_err(|_| nom::Err::Error(wire::WireError::Truncated))?,
        ),
        1 => {
            let (i, vhost) = s(i)?;
            let (i, name) = s(i)?;
            let (i, k) = s(i)?;
            let (i, flags) = be_u8(i)?;
            let (_, arguments) = t(i)?;
            Change::Exchange(ExchangeDef {
                vhost,
                name,
                kind: k,
                auto_delete: flags & 1 != 0,
                internal: flags & 2 != 0,
                arguments,
            })
        }
        2 | 4 => {
            let (i, vhost) = s(i)?;
            let (_, name) = s(i)?;
            if kind == 2 {
                Change::DeleteExchange { vhost, name }
            } else {
                Change::DeleteQueue { vhost, name }
            }
        }
        3 => {
            let (i, vhost) = s(i)?;
            let (i, name) = s(i)?;
            let (i, log_id) = be_u64(i)?;
            let (i, flags) = be_u8(i)?;
            let (_, arguments) = t(i)?;
            Change::Queue(QueueDef {
                vhost,
                name,
                log_id,
                auto_delete: flags & 1 != 0,
                arguments,
            })
        }
        5 | 6 => {
            let (i, vhost) = s(i)?;
            let (i, source) = s(i)?;
            let (i, to_queue) = be_u8(i)?;
            let (i, destination) = s(i)?;
            let (i, routing_key) = s(i)?;
            let (_, arguments) = t(i)?;
            let b = BindingDef {
                vhost,
                source,
                to_queue: to_queue != 0,
                destination,
                routing_key,
                arguments,
            };
            if kind == 5 {
                Change::Bind(b)
            } else {
                Change::Unbind(b)
            }
        }
        _ => return Err(nom::Err::Error(wire::WireError::Truncated)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_compacts_and_ignores_a_torn_tail() {
        let dir = std::env::temp_dir().join(format!("warren-defs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let v = ShortStr::from("/");
        let mut args = FieldTable::new();
        args.insert("x-max-length", crate::protocol::FieldValue::I32(5));
        {
            let (mut log, defs) = DefinitionsLog::open(&dir, true).unwrap();
            assert!(defs.queues.is_empty());
            log.append(&Change::Queue(QueueDef {
                vhost: v.clone(),
                name: "q1".into(),
                log_id: 7,
                auto_delete: false,
                arguments: args.clone(),
            }))
            .unwrap();
            log.append(&Change::Queue(QueueDef {
                vhost: v.clone(),
                name: "q2".into(),
                log_id: 8,
                auto_delete: false,
                arguments: FieldTable::new(),
            }))
            .unwrap();
            log.append(&Change::Bind(BindingDef {
                vhost: v.clone(),
                source: "amq.direct".into(),
                to_queue: true,
                destination: "q2".into(),
                routing_key: "k".into(),
                arguments: FieldTable::new(),
            }))
            .unwrap();
            log.append(&Change::DeleteQueue {
                vhost: v.clone(),
                name: "q2".into(),
            })
            .unwrap();
        }
        // A crash mid-append leaves half a record.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join(FILE))
            .unwrap();
        f.write_all(&[0, 0, 0, 40, 1, 2]).unwrap();
        let (_, defs) = DefinitionsLog::open(&dir, true).unwrap();
        assert_eq!(defs.queues.len(), 1);
        assert_eq!(defs.queues[0].log_id, 7);
        assert_eq!(defs.queues[0].arguments, args);
        assert!(
            defs.bindings.is_empty(),
            "bindings to a deleted queue go with it"
        );
        let (_, again) = DefinitionsLog::open(&dir, true).unwrap();
        assert_eq!(again.queues, defs.queues);
        let _ = fs::remove_dir_all(&dir);
    }
}
