//! Policies and operator policies (RabbitMQ's `rabbit_policy`): settings applied to queues
//! and exchanges in bulk by name, durable, re-applied whenever a policy changes.
//!
//! - A vhost keeps its policies and its operator policies (two namespaces) compiled and
//!   sorted, highest priority first ([`VHostPolicies`]). A queue or exchange gets the first
//!   of each list that matches it ([`Applied`]): `apply-to` covers its kind, the pattern
//!   matches its name (unanchored), and, for a queue, its type supports every setting of
//!   the policy (RabbitMQ's `is_policy_applicable`: a policy with `delivery-limit` does not
//!   apply to a classic queue at all). RabbitMQ leaves the choice between equal priorities
//!   to its table's order; Warren takes the name that sorts first.
//! - What a queue does then is [`effective::QueueSettings`]: policy and operator policy
//!   merged (the lower of two limits), then against the queue's arguments (the lower for
//!   limits and TTLs, the argument for the rest), as `rabbit_amqqueue_process`'s
//!   `process_args_policy` computes it.
//! - The administrative operations ([`admin`]) validate ([`validate`]), record the change
//!   in the definitions log, then re-match every queue and exchange of the vhost.

pub mod admin;
pub mod apply;
pub mod effective;
pub mod erlang;
pub mod parameters;
pub mod validate;

pub use crate::store::definitions::{ApplyTo, GlobalParameterDef, PolicyDef};

use super::args::QueueType;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Which namespace a policy lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// `rabbitmqctl set_policy`, `/api/policies`.
    Policy,
    /// `rabbitmqctl set_operator_policy`, `/api/operator-policies`: limits an operator
    /// imposes, merged with (never replaced by) the users' policy.
    Operator,
}

/// A validated policy with its pattern compiled.
#[derive(Debug)]
pub struct Policy {
    pub def: PolicyDef,
    regex: fancy_regex::Regex,
}

/// What a policy may be applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A queue of the given (declared) type.
    Queue(QueueType),
    Exchange,
}

/// Settings each queue type refuses (RabbitMQ 3.10's `unsupported_policies` capability):
/// a policy holding one of them does not apply to queues of that type.
fn unsupported(t: QueueType) -> &'static [&'static str] {
    match t {
        QueueType::Classic => &[
            "max-age",
            "stream-max-segment-size-bytes",
            "queue-leader-locator",
            "initial-cluster-size",
            "delivery-limit",
            "dead-letter-strategy",
        ],
        QueueType::Quorum => &[
            "max-priority",
            "queue-mode",
            "single-active-consumer",
            "ha-mode",
            "ha-params",
            "ha-sync-mode",
            "ha-promote-on-shutdown",
            "ha-promote-on-failure",
            "queue-master-locator",
            "max-age",
            "stream-max-segment-size-bytes",
            "initial-cluster-size",
        ],
        QueueType::Stream => &[
            "expires",
            "message-ttl",
            "dead-letter-exchange",
            "dead-letter-routing-key",
            "max-length",
            "max-in-memory-length",
            "max-in-memory-bytes",
            "max-priority",
            "overflow",
            "queue-mode",
            "single-active-consumer",
            "delivery-limit",
            "ha-mode",
            "ha-params",
            "ha-sync-mode",
            "ha-promote-on-shutdown",
            "ha-promote-on-failure",
            "queue-master-locator",
            "dead-letter-strategy",
        ],
    }
}

impl Policy {
    /// Compiles a policy; the definition is assumed validated (see [`validate`]).
    pub fn compile(def: PolicyDef) -> Result<Policy, String> {
        let regex = validate::regex(&def.pattern)?;
        Ok(Policy { def, regex })
    }

    pub fn name(&self) -> &str {
        &self.def.name
    }

    fn priority(&self) -> f64 {
        self.def.priority.as_f64().unwrap_or(0.0)
    }

    /// Whether this policy applies to `target` named `name` (RabbitMQ's `matches`).
    pub fn matches(&self, target: Target, name: &[u8]) -> bool {
        let kind_ok = matches!(
            (target, self.def.apply_to),
            (_, ApplyTo::All)
                | (Target::Queue(_), ApplyTo::Queues)
                | (Target::Exchange, ApplyTo::Exchanges)
        );
        if !kind_ok {
            return false;
        }
        if let Target::Queue(t) = target {
            let refused = unsupported(t);
            if self
                .def
                .definition
                .keys()
                .any(|k| refused.contains(&k.as_str()))
            {
                return false;
            }
        }
        self.regex
            .is_match(String::from_utf8_lossy(name).as_ref())
            .unwrap_or(false)
    }

    /// A setting of the definition.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.def.definition.get(key)
    }
}

/// The policy and the operator policy applied to one queue or exchange. Compared by
/// identity: a policy put again (even unchanged) is a new `Arc`, and is applied again, as
/// RabbitMQ re-applies a changed policy record.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub policy: Option<Arc<Policy>>,
    pub operator: Option<Arc<Policy>>,
}

fn same(a: &Option<Arc<Policy>>, b: &Option<Arc<Policy>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

impl Applied {
    pub fn same(&self, other: &Applied) -> bool {
        same(&self.policy, &other.policy) && same(&self.operator, &other.operator)
    }

    /// A setting as the two policies give it together (RabbitMQ's `rabbit_policy:get`):
    /// present in one, that value; in both, the lower for limits and TTLs (the only
    /// settings an operator policy has), the operator's for booleans.
    pub fn get(&self, key: &str) -> Option<Value> {
        let p = self.policy.as_ref().and_then(|p| p.get(key));
        let o = self.operator.as_ref().and_then(|p| p.get(key));
        match (p, o) {
            (None, None) => None,
            (Some(v), None) | (None, Some(v)) => Some(v.clone()),
            (Some(v), Some(w)) => Some(merge(key, v, w)),
        }
    }

    /// The merged definition (`effective_policy_definition` in the management API; `{}`
    /// without policies): every setting of either policy, merged as [`Applied::get`].
    pub fn effective_definition(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for p in [&self.policy, &self.operator].into_iter().flatten() {
            for k in p.def.definition.keys() {
                if !out.contains_key(k)
                    && let Some(v) = self.get(k)
                {
                    out.insert(k.clone(), v);
                }
            }
        }
        out
    }
}

/// RabbitMQ's `merge_policy_value` for a setting both policies have.
fn merge(key: &str, policy: &Value, operator: &Value) -> Value {
    match key {
        "message-ttl"
        | "max-length"
        | "max-length-bytes"
        | "max-in-memory-length"
        | "max-in-memory-bytes"
        | "expires"
        | "delivery-limit" => {
            let n = |v: &Value| v.as_f64().unwrap_or(f64::INFINITY);
            if n(operator) < n(policy) {
                operator.clone()
            } else {
                policy.clone()
            }
        }
        _ if policy.is_boolean() && operator.is_boolean() => operator.clone(),
        // Unreachable with 3.10's settings (an operator policy only has limits).
        _ => policy.clone(),
    }
}

/// A vhost's policies and operator policies, each sorted highest priority first, ties by
/// name.
#[derive(Debug, Clone, Default)]
pub struct VHostPolicies {
    pub policies: Vec<Arc<Policy>>,
    pub operator: Vec<Arc<Policy>>,
}

fn first_match(list: &[Arc<Policy>], target: Target, name: &[u8]) -> Option<Arc<Policy>> {
    list.iter().find(|p| p.matches(target, name)).cloned()
}

/// Sorts as RabbitMQ's `priority_comparator` (highest first), ties by name.
pub fn sort(list: &mut [Arc<Policy>]) {
    list.sort_by(|a, b| {
        b.priority()
            .total_cmp(&a.priority())
            .then_with(|| a.name().cmp(b.name()))
    });
}

impl VHostPolicies {
    /// The policies that apply to `target` named `name`.
    pub fn matching(&self, target: Target, name: &[u8]) -> Applied {
        Applied {
            policy: first_match(&self.policies, target, name),
            operator: first_match(&self.operator, target, name),
        }
    }

    pub fn list(&self, kind: PolicyKind) -> &[Arc<Policy>] {
        match kind {
            PolicyKind::Policy => &self.policies,
            PolicyKind::Operator => &self.operator,
        }
    }

    pub fn list_mut(&mut self, kind: PolicyKind) -> &mut Vec<Arc<Policy>> {
        match kind {
            PolicyKind::Policy => &mut self.policies,
            PolicyKind::Operator => &mut self.operator,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(
        name: &str,
        pattern: &str,
        apply_to: ApplyTo,
        priority: i64,
        d: Value,
    ) -> Arc<Policy> {
        Arc::new(
            Policy::compile(PolicyDef {
                vhost: "/".into(),
                name: name.into(),
                pattern: pattern.into(),
                apply_to,
                definition: d.as_object().unwrap().clone(),
                priority: priority.into(),
            })
            .unwrap(),
        )
    }

    const CLASSIC: Target = Target::Queue(QueueType::Classic);

    #[test]
    fn the_highest_priority_match_wins_ties_by_name() {
        let mut ps = VHostPolicies {
            policies: vec![
                policy("b", "^q", ApplyTo::All, 1, json!({"max-length": 2})),
                policy("a", "^q", ApplyTo::All, 1, json!({"max-length": 1})),
                policy("low", "", ApplyTo::All, 0, json!({"max-length": 9})),
                policy(
                    "ex",
                    "^q",
                    ApplyTo::Exchanges,
                    5,
                    json!({"alternate-exchange": "ae"}),
                ),
            ],
            operator: vec![],
        };
        sort(&mut ps.policies);
        assert_eq!(ps.matching(CLASSIC, b"q1").policy.unwrap().name(), "a");
        assert_eq!(ps.matching(CLASSIC, b"other").policy.unwrap().name(), "low");
        assert_eq!(
            ps.matching(Target::Exchange, b"q1").policy.unwrap().name(),
            "ex"
        );
    }

    #[test]
    fn a_policy_with_a_setting_the_queue_type_refuses_does_not_apply() {
        let p = policy(
            "p",
            ".*",
            ApplyTo::Queues,
            0,
            json!({"max-length": 1, "delivery-limit": 3}),
        );
        assert!(!p.matches(CLASSIC, b"q"));
        assert!(p.matches(Target::Queue(QueueType::Quorum), b"q"));
        assert!(!p.matches(Target::Exchange, b"q"));
    }

    #[test]
    fn operator_limits_merge_lower_wins() {
        let a = Applied {
            policy: Some(policy(
                "p",
                "",
                ApplyTo::All,
                0,
                json!({"max-length": 10, "overflow": "reject-publish"}),
            )),
            operator: Some(policy(
                "o",
                "",
                ApplyTo::All,
                0,
                json!({"max-length": 5, "message-ttl": 1000}),
            )),
        };
        assert_eq!(a.get("max-length"), Some(json!(5)));
        assert_eq!(
            Value::Object(a.effective_definition()),
            json!({"max-length": 5, "message-ttl": 1000, "overflow": "reject-publish"})
        );
        assert!(Applied::default().effective_definition().is_empty());
    }
}
