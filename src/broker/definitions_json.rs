//! Definitions in RabbitMQ's JSON export format (`rabbitmqctl export_definitions`,
//! `GET /api/definitions`): [`import`] at start-up (RabbitMQ's `load_definitions`) and
//! [`export`] for the management API.
//!
//! Import is all or nothing: the whole file is parsed and validated against the broker as
//! it is (vhosts and users the file does not name must exist already) before anything is
//! applied, so a bad file changes nothing. Then it is applied through the administrative
//! operations and the vhost declares, which write the definitions log as AMQP declares do.
//!
//! As RabbitMQ, import is repeated at every boot and is idempotent: users, vhosts,
//! permissions and limits are overwritten with the file's; an exchange or queue that
//! already exists is left as it is (not redeclared, not checked for equivalence); a
//! binding that exists is not added twice. Exchanges and queues named `amq.*` (and the
//! default exchange) are skipped with a warning, as RabbitMQ skips them.
//!
//! Policies are validated as `PUT /api/policies` validates them and set through
//! `Broker::put_policy` (an identical one is left as it is); global parameters
//! (`cluster_name`, `internal_cluster_id`, ...) are set as given. Of runtime parameters,
//! `vhost-limits` set the vhost's limits and `operator_policy` ones are operator policies
//! (RabbitMQ 3.10 exports them there); other components belong to plugins Warren does not
//! have: they are reported as skipped (one warning), where a RabbitMQ without the plugin
//! would refuse the whole file. A top-level `operator_policies` list, which RabbitMQ 3.10
//! neither writes nor reads, is reported as skipped too.

use super::Broker;
use super::admin::{Credential, USER_LIMITS, VHOST_LIMITS, parse_tags, user_def, user_from_def};
use super::args::QueueArgs;
use super::auth::{Pattern, Permissions};
use super::exchange::{Binding, Destination, Exchange, ExchangeKind};
use super::policy::admin::{policy_from_json, policy_from_parameter};
use super::policy::{GlobalParameterDef, PolicyDef, PolicyKind};
use super::vhost::{ExchangeSpec, QueueSpec};
use crate::protocol::{FieldTable, FieldValue, LongStr, ShortStr};
use crate::store::definitions::{PermissionDef, TopicPermissionDef, UserDef, VHostDef};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use tracing::{info, warn};

/// The RabbitMQ release whose format [`export`] writes.
pub const RABBIT_VERSION: &str = "3.10.8";

/// Why a definitions file was refused. Nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ImportError(pub String);

fn err<T>(text: impl Into<String>) -> Result<T, ImportError> {
    Err(ImportError(text.into()))
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub users: usize,
    pub vhosts: usize,
    pub permissions: usize,
    pub topic_permissions: usize,
    pub exchanges: usize,
    pub queues: usize,
    pub bindings: usize,
    pub policies: usize,
    /// Operator policies, which RabbitMQ 3.10 exports among the `parameters`.
    pub operator_policies: usize,
    pub global_parameters: usize,
    /// Entries not imported, each named (`policy 'p' in vhost 'v'`, `exchange 'amq.x'
    /// in vhost 'v'`, ...).
    pub skipped: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct File {
    rabbit_version: Option<String>,
    rabbitmq_version: Option<String>,
    users: Vec<JUser>,
    vhosts: Vec<JVHost>,
    permissions: Vec<PermissionDef>,
    topic_permissions: Vec<TopicPermissionDef>,
    parameters: Vec<JParameter>,
    global_parameters: Vec<GlobalParameterDef>,
    /// Kept as JSON: checked field by field, as the management API checks a body.
    policies: Vec<Value>,
    operator_policies: Vec<JPolicy>,
    queues: Vec<JQueue>,
    exchanges: Vec<JExchange>,
    bindings: Vec<JBinding>,
}

#[derive(Debug, Deserialize)]
struct JUser {
    name: String,
    #[serde(default)]
    password_hash: Option<String>,
    /// A clear-text password (accepted by RabbitMQ's import too), hashed with SHA-256.
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    hashing_algorithm: Option<String>,
    /// "a,b" (3.10) or ["a", "b"] (3.11+).
    #[serde(default)]
    tags: Value,
    #[serde(default)]
    limits: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct JMetadata {
    description: Option<String>,
    tags: Value,
}

#[derive(Debug, Deserialize)]
struct JVHost {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: Value,
    #[serde(default)]
    metadata: Option<JMetadata>,
    #[serde(default)]
    limits: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct JParameter {
    vhost: String,
    component: String,
    name: String,
    #[serde(default)]
    value: Value,
}

#[derive(Debug, Deserialize)]
struct JPolicy {
    vhost: String,
    name: String,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct JQueue {
    name: String,
    vhost: String,
    #[serde(default = "yes")]
    durable: bool,
    #[serde(default)]
    auto_delete: bool,
    #[serde(default)]
    arguments: Value,
}

#[derive(Debug, Deserialize)]
struct JExchange {
    name: String,
    vhost: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "yes")]
    durable: bool,
    #[serde(default)]
    auto_delete: bool,
    #[serde(default)]
    internal: bool,
    #[serde(default)]
    arguments: Value,
}

#[derive(Debug, Deserialize)]
struct JBinding {
    source: String,
    vhost: String,
    destination: String,
    destination_type: String,
    #[serde(default)]
    routing_key: String,
    #[serde(default)]
    arguments: Value,
}

/// A JSON value as an AMQP field value, as RabbitMQ converts it (`rabbit_misc:
/// to_amqp_table`): integers are signed 64-bit (`l`), other numbers doubles (`d`),
/// strings long strings (`S`), booleans `t`, arrays `A`, objects tables `F`, null void.
pub fn json_to_field_value(v: &Value) -> Result<FieldValue, String> {
    Ok(match v {
        Value::Null => FieldValue::Void,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::I64(i),
            None if n.is_u64() => return Err(format!("integer {n} does not fit in 64 bits")),
            None => FieldValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => FieldValue::LongStr(LongStr::from(s.as_str())),
        Value::Array(a) => FieldValue::Array(
            a.iter()
                .map(json_to_field_value)
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => FieldValue::Table(json_to_table_map(o)?),
    })
}

fn json_to_table_map(o: &Map<String, Value>) -> Result<FieldTable, String> {
    let mut t = FieldTable::new();
    for (k, v) in o {
        if k.len() > 255 {
            return Err(format!("argument name '{k}' is longer than 255 octets"));
        }
        let v = json_to_field_value(v).map_err(|e| format!("argument '{k}': {e}"))?;
        t.insert(ShortStr::from(k.as_str()), v);
    }
    Ok(t)
}

/// A JSON `arguments` object as a field table (null or absent: empty).
pub fn json_to_table(v: &Value) -> Result<FieldTable, String> {
    match v {
        Value::Null => Ok(FieldTable::new()),
        Value::Object(o) => json_to_table_map(o),
        // RabbitMQ's own exports never have it, but an empty list is an empty table.
        Value::Array(a) if a.is_empty() => Ok(FieldTable::new()),
        other => Err(format!("arguments must be an object, not {other}")),
    }
}

/// An AMQP field value as JSON, as RabbitMQ's management API renders it.
pub fn field_value_to_json(v: &FieldValue) -> Value {
    match v {
        FieldValue::Bool(b) => json!(b),
        FieldValue::I8(i) => json!(i),
        FieldValue::U8(i) => json!(i),
        FieldValue::I16(i) => json!(i),
        FieldValue::U16(i) => json!(i),
        FieldValue::I32(i) => json!(i),
        FieldValue::U32(i) => json!(i),
        FieldValue::I64(i) => json!(i),
        FieldValue::F32(f) => json!(f),
        FieldValue::F64(f) => json!(f),
        FieldValue::Decimal(d) => json!(d.value as f64 / 10f64.powi(d.scale as i32)),
        FieldValue::LongStr(s) => json!(s.to_string_lossy()),
        FieldValue::ByteArray(b) => json!(String::from_utf8_lossy(b)),
        FieldValue::Array(a) => Value::Array(a.iter().map(field_value_to_json).collect()),
        FieldValue::Timestamp(t) => json!(t),
        FieldValue::Table(t) => table_to_json(t),
        FieldValue::Void => Value::Null,
    }
}

/// A field table as a JSON object.
pub fn table_to_json(t: &FieldTable) -> Value {
    Value::Object(
        t.iter()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), field_value_to_json(v)))
            .collect(),
    )
}

fn tags(v: &Value, what: &str) -> Result<Vec<String>, ImportError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(parse_tags(s)),
        Value::Array(a) => a
            .iter()
            .map(|t| match t {
                Value::String(s) => Ok(s.trim().to_string()),
                other => err(format!("{what}: tag {other} is not a string")),
            })
            .collect(),
        other => err(format!(
            "{what}: tags must be a string or a list, not {other}"
        )),
    }
}

/// Limits as `{"max-connections": 10}` (also accepted: `[]`, and a list of such objects).
fn limits(v: &Value, known: &[&str], what: &str) -> Result<Vec<(String, i64)>, ImportError> {
    let mut out = Vec::new();
    let mut add = |o: &Map<String, Value>| -> Result<(), ImportError> {
        for (name, value) in o {
            if !known.contains(&name.as_str()) {
                return err(format!(
                    "{what}: unknown limit '{name}' (known: {})",
                    known.join(", ")
                ));
            }
            let Some(n) = value.as_i64() else {
                return err(format!(
                    "{what}: limit '{name}' must be an integer, not {value}"
                ));
            };
            out.retain(|(k, _): &(String, i64)| k != name);
            out.push((name.clone(), n));
        }
        Ok(())
    };
    match v {
        Value::Null => {}
        Value::Object(o) => add(o)?,
        Value::Array(a) => {
            for item in a {
                match item {
                    Value::Object(o) => add(o)?,
                    other => return err(format!("{what}: bad limits entry {other}")),
                }
            }
        }
        other => return err(format!("{what}: limits must be an object, not {other}")),
    }
    Ok(out)
}

/// Named limits, as stored (`("max-connections", 10)`).
type Limits = Vec<(String, i64)>;

/// The file, validated, in the form it is applied.
struct Plan {
    /// Each user, with the limits the file gives (None: the user's are kept).
    users: Vec<(UserDef, Option<Limits>)>,
    vhosts: Vec<VHostDef>,
    /// vhost-limits parameters for vhosts the file does not list.
    vhost_limits: Vec<(String, Vec<(String, i64)>)>,
    permissions: Vec<PermissionDef>,
    topic_permissions: Vec<TopicPermissionDef>,
    exchanges: Vec<(JExchange, ExchangeKind, FieldTable)>,
    queues: Vec<(JQueue, FieldTable)>,
    bindings: Vec<(JBinding, FieldTable)>,
    policies: Vec<PolicyDef>,
    operator_policies: Vec<PolicyDef>,
    global_parameters: Vec<GlobalParameterDef>,
    skipped: Vec<String>,
}

/// The exchanges every vhost has from its creation.
const PREDECLARED: [&str; 7] = [
    "",
    "amq.direct",
    "amq.fanout",
    "amq.topic",
    "amq.headers",
    "amq.match",
    "amq.rabbitmq.trace",
];

fn predeclared_kind(name: &str) -> Option<ExchangeKind> {
    Some(match name {
        "" | "amq.direct" => ExchangeKind::Direct,
        "amq.fanout" => ExchangeKind::Fanout,
        "amq.topic" | "amq.rabbitmq.trace" => ExchangeKind::Topic,
        "amq.headers" | "amq.match" => ExchangeKind::Headers,
        _ => return None,
    })
}

/// Parses and validates a definitions file against the broker; changes nothing.
fn plan(broker: &Broker, text: &str) -> Result<Plan, ImportError> {
    let file: File = serde_json::from_str(text).map_err(|e| ImportError(format!("{e}")))?;
    let _ = (&file.rabbit_version, &file.rabbitmq_version);
    let mut skipped = Vec::new();

    // Users.
    let mut users = Vec::new();
    let mut user_names: HashSet<String> =
        broker.auth.users().iter().map(|u| u.name.clone()).collect();
    for u in &file.users {
        let what = format!("user '{}'", u.name);
        if u.name.is_empty() {
            return err("a user has an empty name");
        }
        let credential = match (&u.password_hash, &u.password) {
            (Some(h), _) if !h.is_empty() => Credential::Hash {
                password_hash: h.clone(),
                algorithm: u
                    .hashing_algorithm
                    .clone()
                    .unwrap_or_else(|| "rabbit_password_hashing_sha256".into()),
            },
            (_, Some(p)) => Credential::Password(p.clone()),
            _ => Credential::None,
        };
        let def = UserDef {
            name: u.name.clone(),
            password_hash: match &credential {
                Credential::Hash { password_hash, .. } => password_hash.clone(),
                Credential::Password(p) => super::auth::password::PasswordHash::new(
                    super::auth::password::HashingAlgorithm::Sha256,
                    p,
                )
                .to_base64(),
                Credential::None => String::new(),
            },
            hashing_algorithm: match &credential {
                Credential::Hash { algorithm, .. } => algorithm.clone(),
                _ => "rabbit_password_hashing_sha256".into(),
            },
            tags: tags(&u.tags, &what)?,
            limits: Vec::new(),
        };
        // The algorithm is checked even for a user without a password.
        if let Some(a) = &u.hashing_algorithm
            && super::auth::password::HashingAlgorithm::parse(a).is_none()
        {
            return err(format!(
                "unknown hashing_algorithm '{a}' for user '{}' (known: rabbit_password_hashing_sha256, rabbit_password_hashing_sha512, rabbit_password_hashing_md5)",
                u.name
            ));
        }
        user_from_def(&def).map_err(ImportError)?;
        let lim = match &u.limits {
            Some(v) => Some(limits(v, &USER_LIMITS, &what)?),
            None => None,
        };
        user_names.insert(u.name.clone());
        users.push((def, lim));
    }

    // Vhosts, with the limits from `vhost-limits` parameters.
    let mut param_limits: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    let mut vhost_names: HashSet<String> = broker.vhosts().iter().map(|v| v.name.clone()).collect();
    for v in &file.vhosts {
        if v.name.is_empty() {
            return err("a vhost has an empty name");
        }
        vhost_names.insert(v.name.clone());
    }
    let known_vhost = |vhost: &str, what: &str| -> Result<(), ImportError> {
        if vhost_names.contains(vhost) {
            Ok(())
        } else {
            err(format!(
                "{what} refers to vhost '{vhost}', which is neither in the file nor existing"
            ))
        }
    };
    let mut operator_policies = Vec::new();
    for p in &file.parameters {
        let what = format!(
            "parameter '{}' of component '{}' in vhost '{}'",
            p.name, p.component, p.vhost
        );
        match p.component.as_str() {
            "vhost-limits" => {
                known_vhost(&p.vhost, &what)?;
                let l = limits(&p.value, &VHOST_LIMITS, &what)?;
                param_limits.entry(p.vhost.clone()).or_default().extend(l);
            }
            // How RabbitMQ 3.10 exports operator policies.
            "operator_policy" => {
                known_vhost(&p.vhost, &what)?;
                let def = policy_from_parameter(PolicyKind::Operator, &p.vhost, &p.name, &p.value)
                    .map_err(|e| ImportError(format!("{what}: {e}")))?;
                operator_policies.push(def);
            }
            "policy" => {
                return err(format!("{what}: policies may not be set using this method"));
            }
            _ => skipped.push(what),
        }
    }
    for g in &file.global_parameters {
        if g.name.is_empty() {
            return err("a global parameter has an empty name");
        }
    }
    let mut policies = Vec::new();
    for p in &file.policies {
        let text = |k: &str| p.get(k).and_then(Value::as_str);
        let Some(vhost) = text("vhost") else {
            return err(format!("a policy has no vhost: {p}"));
        };
        let Some(name) = text("name").filter(|n| !n.is_empty()) else {
            return err(format!(
                "policy in virtual host '{vhost}' has undefined name"
            ));
        };
        let what = format!("policy '{name}' in vhost '{vhost}'");
        known_vhost(vhost, &what)?;
        let def = policy_from_json(PolicyKind::Policy, vhost, name, p)
            .map_err(|e| ImportError(format!("{what}: {e}")))?;
        policies.push(def);
    }
    for p in &file.operator_policies {
        skipped.push(format!(
            "operator policy '{}' in vhost '{}'",
            p.name, p.vhost
        ));
    }
    let mut vhosts = Vec::new();
    let mut limits_of: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    for v in &file.vhosts {
        let what = format!("vhost '{}'", v.name);
        let existing = broker.vhost(&v.name).map(|x| x.def());
        let meta = v.metadata.as_ref();
        let description = v
            .description
            .clone()
            .or_else(|| meta.and_then(|m| m.description.clone()))
            .or_else(|| existing.as_ref().map(|e| e.description.clone()))
            .unwrap_or_default();
        let tag_value = if !v.tags.is_null() {
            &v.tags
        } else {
            meta.map_or(&Value::Null, |m| &m.tags)
        };
        let vtags = if tag_value.is_null() {
            existing
                .as_ref()
                .map(|e| e.tags.clone())
                .unwrap_or_default()
        } else {
            tags(tag_value, &what)?
        };
        let mut lim = match &v.limits {
            Some(l) => limits(l, &VHOST_LIMITS, &what)?,
            None => existing
                .as_ref()
                .map(|e| e.limits.clone())
                .unwrap_or_default(),
        };
        if let Some(p) = param_limits.remove(&v.name) {
            lim = p;
        }
        limits_of.insert(v.name.clone(), lim.clone());
        vhosts.push(VHostDef {
            name: v.name.clone(),
            description,
            tags: vtags,
            limits: lim,
        });
    }
    let vhost_limits: Vec<_> = param_limits.into_iter().collect();
    for (v, l) in &vhost_limits {
        limits_of.insert(v.clone(), l.clone());
    }

    // Permissions.
    let known_user = |user: &str, what: &str| -> Result<(), ImportError> {
        if user_names.contains(user) {
            Ok(())
        } else {
            err(format!(
                "{what} refers to user '{user}', who is neither in the file nor existing"
            ))
        }
    };
    for p in &file.permissions {
        let what = format!("permissions of user '{}' in vhost '{}'", p.user, p.vhost);
        known_user(&p.user, &what)?;
        known_vhost(&p.vhost, &what)?;
        Permissions::new(&p.configure, &p.write, &p.read)
            .map_err(|e| ImportError(format!("{what}: {e}")))?;
    }
    for p in &file.topic_permissions {
        let what = format!(
            "topic permissions of user '{}' in vhost '{}' on exchange '{}'",
            p.user, p.vhost, p.exchange
        );
        known_user(&p.user, &what)?;
        known_vhost(&p.vhost, &what)?;
        if p.exchange.is_empty() {
            return err(format!("{what}: topic permissions need an exchange"));
        }
        for re in [&p.write, &p.read] {
            Pattern::new(re).map_err(|e| ImportError(format!("{what}: {e}")))?;
        }
    }

    // Exchanges: what each vhost will have, to check bindings against.
    let mut kinds: HashMap<(String, String), ExchangeKind> = HashMap::new();
    let mut exchanges = Vec::new();
    for e in file.exchanges {
        let what = format!("exchange '{}' in vhost '{}'", e.name, e.vhost);
        known_vhost(&e.vhost, &what)?;
        let Some(kind) = ExchangeKind::parse(e.kind.as_bytes()) else {
            return err(format!("{what}: unknown exchange type '{}'", e.kind));
        };
        let args = json_to_table(&e.arguments).map_err(|x| ImportError(format!("{what}: {x}")))?;
        if let Some(ae) = args.get("alternate-exchange")
            && ae.as_str().is_none()
        {
            return err(format!(
                "{what}: invalid type '{}' for arg 'alternate-exchange'",
                super::vhost::type_name(ae)
            ));
        }
        kind.check_arguments(&args)
            .map_err(|x| ImportError(format!("{what}: {}", x.text)))?;
        if e.name.is_empty() || e.name.starts_with("amq.") {
            skipped.push(format!("{what} (reserved name)"));
            continue;
        }
        kinds.insert((e.vhost.clone(), e.name.clone()), kind);
        exchanges.push((e, kind, args));
    }
    let exchange_kind = |vhost: &str, name: &str| -> Option<ExchangeKind> {
        if let Some(k) = kinds.get(&(vhost.to_string(), name.to_string())) {
            return Some(*k);
        }
        if let Some(v) = broker.vhost(vhost)
            && let Some(e) = v.exchange(name.as_bytes())
        {
            return Some(e.kind);
        }
        predeclared_kind(name)
    };

    // Queues: run the checks the declare runs on a new queue.
    let mut queue_names: HashSet<(String, String)> = HashSet::new();
    let mut new_queues: HashMap<String, u64> = HashMap::new();
    let mut queues = Vec::new();
    for q in file.queues {
        let what = format!("queue '{}' in vhost '{}'", q.name, q.vhost);
        known_vhost(&q.vhost, &what)?;
        if q.name.is_empty() {
            return err(format!("a queue in vhost '{}' has an empty name", q.vhost));
        }
        let args = json_to_table(&q.arguments).map_err(|x| ImportError(format!("{what}: {x}")))?;
        if q.name.starts_with("amq.") {
            skipped.push(format!("{what} (reserved name)"));
            continue;
        }
        let name = ShortStr::from(q.name.as_str());
        let parsed = QueueArgs::parse(&args, &name, &q.vhost)
            .map_err(|x| ImportError(format!("{what}: {}", x.text)))?;
        parsed
            .queue_type
            .check_properties(&name, &q.vhost, q.durable, false, q.auto_delete)
            .map_err(|x| ImportError(format!("{what}: {}", x.text)))?;
        let exists = broker
            .vhost(&q.vhost)
            .is_some_and(|v| v.queue(q.name.as_bytes()).is_some());
        if !exists && queue_names.insert((q.vhost.clone(), q.name.clone())) {
            *new_queues.entry(q.vhost.clone()).or_default() += 1;
        }
        queues.push((q, args));
    }
    for (vhost, added) in &new_queues {
        let current = broker.vhost(vhost).map_or(0, |v| v.queue_count()) as u64;
        let lim = limits_of
            .get(vhost)
            .map(|l| super::admin::limit(l, "max-queues"))
            .or_else(|| broker.vhost(vhost).map(|v| v.limit("max-queues")))
            .unwrap_or(super::auth::Limit(None));
        if let Some(max) = lim.0
            && current + added > max
        {
            return err(format!(
                "vhost '{vhost}' would have {} queues, over its max-queues limit ({max})",
                current + added
            ));
        }
    }
    let queue_known = |vhost: &str, name: &str| {
        queue_names.contains(&(vhost.to_string(), name.to_string()))
            || queues
                .iter()
                .any(|(q, _)| q.vhost == vhost && q.name == name)
            || broker
                .vhost(vhost)
                .is_some_and(|v| v.queue(name.as_bytes()).is_some())
    };

    // Bindings.
    let mut bindings = Vec::new();
    for b in file.bindings {
        let what = format!(
            "binding from exchange '{}' to {} '{}' in vhost '{}'",
            b.source, b.destination_type, b.destination, b.vhost
        );
        known_vhost(&b.vhost, &what)?;
        let args = json_to_table(&b.arguments).map_err(|x| ImportError(format!("{what}: {x}")))?;
        if b.source.is_empty() {
            return err(format!(
                "{what}: operation not permitted on the default exchange"
            ));
        }
        let Some(kind) = exchange_kind(&b.vhost, &b.source) else {
            return err(format!(
                "{what}: no exchange '{}' in the file or in vhost '{}'",
                b.source, b.vhost
            ));
        };
        match b.destination_type.as_str() {
            "queue" => {
                if !queue_known(&b.vhost, &b.destination) {
                    return err(format!(
                        "{what}: no queue '{}' in the file or in vhost '{}'",
                        b.destination, b.vhost
                    ));
                }
            }
            "exchange" => {
                if b.destination.is_empty() {
                    return err(format!(
                        "{what}: operation not permitted on the default exchange"
                    ));
                }
                if exchange_kind(&b.vhost, &b.destination).is_none() {
                    return err(format!(
                        "{what}: no exchange '{}' in the file or in vhost '{}'",
                        b.destination, b.vhost
                    ));
                }
            }
            other => {
                return err(format!(
                    "{what}: destination_type must be 'queue' or 'exchange', not '{other}'"
                ));
            }
        }
        // The binding's own checks (x-match of a headers binding).
        let probe = Destination::Exchange(Arc::new(Exchange::new(
            ShortStr::from_static("probe"),
            ExchangeKind::Fanout,
            false,
            false,
            false,
            FieldTable::new(),
        )));
        Binding::new(
            probe,
            ShortStr::from(b.routing_key.as_str()),
            args.clone(),
            kind,
        )
        .map_err(|x| ImportError(format!("{what}: {}", x.text)))?;
        bindings.push((b, args));
    }

    Ok(Plan {
        users,
        vhosts,
        vhost_limits,
        permissions: file.permissions,
        topic_permissions: file.topic_permissions,
        exchanges,
        queues,
        bindings,
        policies,
        operator_policies,
        global_parameters: file.global_parameters,
        skipped,
    })
}

/// Imports a definitions file (its text): validates all of it, then applies it. On error
/// nothing has been applied (save a failure of the apply step itself, which validation
/// is meant to rule out; its error says so).
pub fn import(broker: &Broker, text: &str) -> Result<ImportReport, ImportError> {
    let plan = plan(broker, text)?;
    let failed = |e: String| {
        ImportError(format!(
            "{e} (the file validated, but applying it failed part way)"
        ))
    };
    let mut report = ImportReport {
        skipped: plan.skipped.clone(),
        ..ImportReport::default()
    };
    for v in plan.vhosts {
        broker.put_vhost(v).map_err(|e| failed(e.to_string()))?;
        report.vhosts += 1;
    }
    for (v, l) in plan.vhost_limits {
        broker
            .set_vhost_limits(&v, l)
            .map_err(|e| failed(e.to_string()))?;
    }
    for (u, lim) in plan.users {
        let name = u.name.clone();
        let credential = if u.password_hash.is_empty() {
            Credential::None
        } else {
            Credential::Hash {
                password_hash: u.password_hash,
                algorithm: u.hashing_algorithm,
            }
        };
        broker
            .put_user(&name, credential, u.tags)
            .map_err(|e| failed(e.to_string()))?;
        if let Some(l) = lim {
            broker
                .set_user_limits(&name, l)
                .map_err(|e| failed(e.to_string()))?;
        }
        report.users += 1;
    }
    for p in plan.permissions {
        broker
            .set_permissions(p)
            .map_err(|e| failed(e.to_string()))?;
        report.permissions += 1;
    }
    for p in plan.topic_permissions {
        broker
            .set_topic_permissions(p)
            .map_err(|e| failed(e.to_string()))?;
        report.topic_permissions += 1;
    }
    for g in plan.global_parameters {
        broker
            .put_global_parameter(g)
            .map_err(|e| failed(e.to_string()))?;
        report.global_parameters += 1;
    }
    // Before the queues, which then get them at declaration.
    for p in plan.policies {
        broker.put_policy(p).map_err(|e| failed(e.to_string()))?;
        report.policies += 1;
    }
    for p in plan.operator_policies {
        broker
            .put_operator_policy(p)
            .map_err(|e| failed(e.to_string()))?;
        report.operator_policies += 1;
    }
    for (e, _kind, args) in &plan.exchanges {
        let v = broker
            .vhost(&e.vhost)
            .ok_or_else(|| failed(format!("vhost '{}' vanished", e.vhost)))?;
        if v.exchange(e.name.as_bytes()).is_some() {
            continue;
        }
        v.declare_exchange(ExchangeSpec {
            name: &ShortStr::from(e.name.as_str()),
            kind: &ShortStr::from(e.kind.as_str()),
            passive: false,
            durable: e.durable,
            auto_delete: e.auto_delete,
            internal: e.internal,
            arguments: args,
            access: None,
        })
        .map_err(|x| failed(format!("exchange '{}': {}", e.name, x.text)))?;
        report.exchanges += 1;
    }
    for (q, args) in &plan.queues {
        let v = broker
            .vhost(&q.vhost)
            .ok_or_else(|| failed(format!("vhost '{}' vanished", q.vhost)))?;
        if v.queue(q.name.as_bytes()).is_some() {
            continue;
        }
        v.declare_queue(QueueSpec {
            name: &ShortStr::from(q.name.as_str()),
            passive: false,
            durable: q.durable,
            exclusive: false,
            auto_delete: q.auto_delete,
            arguments: args,
            connection: 0,
            access: None,
        })
        .map_err(|x| failed(format!("queue '{}': {}", q.name, x.text)))?;
        report.queues += 1;
    }
    for (b, args) in &plan.bindings {
        let v = broker
            .vhost(&b.vhost)
            .ok_or_else(|| failed(format!("vhost '{}' vanished", b.vhost)))?;
        let dest = if b.destination_type == "queue" {
            v.queue(b.destination.as_bytes()).map(Destination::Queue)
        } else {
            v.exchange(b.destination.as_bytes())
                .map(Destination::Exchange)
        }
        .ok_or_else(|| failed(format!("binding destination '{}' vanished", b.destination)))?;
        v.bind(
            &ShortStr::from(b.source.as_str()),
            dest,
            &ShortStr::from(b.routing_key.as_str()),
            args,
        )
        .map_err(|x| failed(format!("binding from '{}': {}", b.source, x.text)))?;
        report.bindings += 1;
    }
    if !report.skipped.is_empty() {
        warn!(
            count = report.skipped.len(),
            "definitions not imported (not supported yet, or reserved names): {}",
            report.skipped.join(", ")
        );
    }
    info!(
        users = report.users,
        vhosts = report.vhosts,
        permissions = report.permissions,
        topic_permissions = report.topic_permissions,
        exchanges = report.exchanges,
        queues = report.queues,
        bindings = report.bindings,
        policies = report.policies,
        operator_policies = report.operator_policies,
        global_parameters = report.global_parameters,
        "definitions imported"
    );
    Ok(report)
}

/// Every definition of the broker in RabbitMQ 3.10's export format (`GET
/// /api/definitions`): users with their hashes, tags and limits, vhosts, permissions,
/// topic permissions, vhost limits and operator policies as `vhost-limits` and
/// `operator_policy` parameters, global parameters, policies, and each vhost's durable
/// exchanges (not the default and `amq.*` ones), durable queues and the bindings between
/// durable ends.
pub fn export(broker: &Broker) -> Value {
    let mut users: Vec<_> = broker.auth.users();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    let users: Vec<Value> = users
        .iter()
        .map(|u| {
            let d = user_def(u);
            let limits: Map<String, Value> = d
                .limits
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            json!({
                "name": d.name,
                "password_hash": d.password_hash,
                "hashing_algorithm": d.hashing_algorithm,
                "tags": d.tags,
                "limits": limits,
            })
        })
        .collect();
    let vhosts = broker.vhosts();
    let mut parameters = Vec::new();
    let mut vhost_list = Vec::new();
    let mut queues = Vec::new();
    let mut exchanges = Vec::new();
    let mut bindings = Vec::new();
    for v in &vhosts {
        let d = v.def();
        vhost_list.push(json!({
            "name": d.name,
            "description": d.description,
            "tags": d.tags,
            "metadata": {"description": d.description, "tags": d.tags},
        }));
        // vhost-limits and operator policies, as RabbitMQ lists its parameters.
        parameters.extend(broker.parameters(None, Some(&v.name)));
        for q in v.queues() {
            if !q.is_durable_definition() {
                continue;
            }
            queues.push(json!({
                "name": q.name.to_string_lossy(),
                "vhost": v.name,
                "durable": true,
                "auto_delete": q.auto_delete,
                "arguments": table_to_json(&q.arguments),
            }));
        }
        for e in v.exchanges() {
            if !e.durable {
                continue;
            }
            let name = e.name.to_string_lossy();
            if !PREDECLARED.contains(&name.as_ref()) {
                exchanges.push(json!({
                    "name": name,
                    "vhost": v.name,
                    "type": e.kind.name(),
                    "durable": true,
                    "auto_delete": e.auto_delete,
                    "internal": e.internal,
                    "arguments": table_to_json(&e.arguments),
                }));
            }
            for b in e.bindings() {
                let (destination, kind) = match &b.destination {
                    Destination::Queue(q) if q.is_durable_definition() => (&q.name, "queue"),
                    Destination::Exchange(x) if x.durable => (&x.name, "exchange"),
                    _ => continue,
                };
                bindings.push(json!({
                    "source": name,
                    "vhost": v.name,
                    "destination": destination.to_string_lossy(),
                    "destination_type": kind,
                    "routing_key": b.routing_key.to_string_lossy(),
                    "arguments": table_to_json(&b.arguments),
                }));
            }
        }
    }
    let mut permissions = broker.auth.all_permissions();
    permissions.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let permissions: Vec<Value> = permissions
        .iter()
        .map(|(user, vhost, p)| {
            json!({
                "user": user,
                "vhost": vhost,
                "configure": p.configure.source,
                "write": p.write.source,
                "read": p.read.source,
            })
        })
        .collect();
    let mut topic = broker.auth.all_topic_permissions();
    topic.sort_by(|a, b| (&a.0, &a.1, &a.2.exchange).cmp(&(&b.0, &b.1, &b.2.exchange)));
    let topic: Vec<Value> = topic
        .iter()
        .map(|(user, vhost, t)| {
            json!({
                "user": user,
                "vhost": vhost,
                "exchange": t.exchange,
                "write": t.write,
                "read": t.read,
            })
        })
        .collect();
    json!({
        "rabbit_version": RABBIT_VERSION,
        "rabbitmq_version": RABBIT_VERSION,
        "product_name": "RabbitMQ",
        "product_version": RABBIT_VERSION,
        "users": users,
        "vhosts": vhost_list,
        "permissions": permissions,
        "topic_permissions": topic,
        "parameters": parameters,
        "global_parameters": broker.global_parameters(),
        "policies": broker.policies(None),
        "queues": queues,
        "exchanges": exchanges,
        "bindings": bindings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_becomes_field_values_as_rabbitmq_converts_them() {
        let v: Value = serde_json::from_str(
            r#"{"x-max-length": 100, "neg": -5, "big": 9007199254740993, "ttl": 1.5,
                "s": "text", "t": true, "n": null, "a": [1, "two", false],
                "o": {"inner": 7}}"#,
        )
        .unwrap();
        let t = json_to_table(&v).unwrap();
        assert_eq!(t.get("x-max-length"), Some(&FieldValue::I64(100)));
        assert_eq!(t.get("neg"), Some(&FieldValue::I64(-5)));
        assert_eq!(t.get("big"), Some(&FieldValue::I64(9007199254740993)));
        assert_eq!(t.get("ttl"), Some(&FieldValue::F64(1.5)));
        assert_eq!(
            t.get("s"),
            Some(&FieldValue::LongStr(LongStr::from("text")))
        );
        assert_eq!(t.get("t"), Some(&FieldValue::Bool(true)));
        assert_eq!(t.get("n"), Some(&FieldValue::Void));
        assert_eq!(
            t.get("a"),
            Some(&FieldValue::Array(vec![
                FieldValue::I64(1),
                FieldValue::LongStr(LongStr::from("two")),
                FieldValue::Bool(false)
            ]))
        );
        let mut inner = FieldTable::new();
        inner.insert("inner", FieldValue::I64(7));
        assert_eq!(t.get("o"), Some(&FieldValue::Table(inner)));
        // And back.
        assert_eq!(table_to_json(&t), v);
    }

    #[test]
    fn bad_json_arguments_are_refused() {
        assert!(json_to_table(&json!("x")).is_err());
        assert!(json_to_table(&json!({"big": u64::MAX})).is_err());
        assert!(json_to_table(&json!({"k".repeat(256): 1})).is_err());
        assert_eq!(json_to_table(&Value::Null).unwrap(), FieldTable::new());
        assert_eq!(json_to_table(&json!([])).unwrap(), FieldTable::new());
    }

    #[test]
    fn narrow_integers_export_as_numbers() {
        let mut t = FieldTable::new();
        t.insert("a", FieldValue::I32(-3));
        t.insert("b", FieldValue::U8(4));
        t.insert("c", FieldValue::LongStr(LongStr::from("s")));
        assert_eq!(table_to_json(&t), json!({"a": -3, "b": 4, "c": "s"}));
    }

    #[test]
    fn tags_are_a_string_or_a_list() {
        assert_eq!(
            tags(&json!("administrator, management"), "u").unwrap(),
            vec!["administrator", "management"]
        );
        assert_eq!(
            tags(&json!(["monitoring"]), "u").unwrap(),
            vec!["monitoring"]
        );
        assert!(tags(&json!(3), "u").is_err());
    }

    #[test]
    fn limits_accept_objects_and_lists() {
        assert_eq!(
            limits(&json!({"max-connections": 3}), &VHOST_LIMITS, "v").unwrap(),
            vec![("max-connections".to_string(), 3)]
        );
        assert_eq!(limits(&json!([]), &VHOST_LIMITS, "v").unwrap(), vec![]);
        let e = limits(&json!({"max-bananas": 3}), &VHOST_LIMITS, "vhost 'v'").unwrap_err();
        assert!(
            e.0.contains("max-bananas") && e.0.contains("vhost 'v'"),
            "{e}"
        );
        assert!(limits(&json!({"max-queues": "x"}), &VHOST_LIMITS, "v").is_err());
    }
}
