//! The administrative operations on policies, operator policies, runtime parameters and
//! global parameters, socket-free, for every front end (the management API, the CLI, the
//! definitions import).
//!
//! As the other operations of `broker::admin`: the `Broker::admin` mutex first, then
//! validation, the change recorded in the definitions log (synced), then applied in memory
//! (for a policy: to every queue and exchange of its vhost before returning). A refused
//! operation changes nothing. Errors carry RabbitMQ's texts and the HTTP status of its
//! management API (404 for a vhost or an entry that does not exist, 400 otherwise).

use super::parameters::{
    OPERATOR_POLICY_COMPONENT, POLICY_COMPONENT, ParameterDef, VHOST_LIMITS_COMPONENT,
    VHOST_LIMITS_NAME, component_error, policy_parameter, vhost_limits, vhost_limits_value,
};
use super::{GlobalParameterDef, Policy, PolicyDef, PolicyKind, VHostPolicies, validate};
use crate::broker::Broker;
use crate::broker::admin::AdminError;
use crate::broker::vhost::VHost;
use crate::store::Recovery;
use crate::store::definitions::{AdminChange, ApplyTo, Change};
use serde_json::{Map, Value};
use std::sync::Arc;

/// The global parameter naming the cluster (`/api/overview`'s `cluster_name`).
pub const CLUSTER_NAME: &str = "cluster_name";
/// The global parameter RabbitMQ seeds with a random id on its first start.
pub const INTERNAL_CLUSTER_ID: &str = "internal_cluster_id";

fn no_vhost(vhost: &str) -> AdminError {
    AdminError::NotFound(format!("vhost '{vhost}' does not exist"))
}

/// RabbitMQ's management API's answer to a body without some required keys.
fn key_missing(missing: &[&str]) -> AdminError {
    let items: Vec<String> = missing
        .iter()
        .map(|k| format!("{{key_missing,{k}}}"))
        .collect();
    AdminError::BadRequest(format!("[{}]", items.join(",")))
}

/// A policy from a request body or a definitions file entry (`pattern`, `definition`,
/// optional `priority` (default 0) and `apply-to` (default `all`)), checked as RabbitMQ
/// checks it: missing keys first (`[{key_missing,pattern}]`), then every field
/// (`Validation failed ...`). The vhost is not looked at.
pub fn policy_from_json(
    kind: PolicyKind,
    vhost: &str,
    name: &str,
    body: &Value,
) -> Result<PolicyDef, AdminError> {
    let field = |k: &str| body.get(k);
    let missing: Vec<&str> = ["pattern", "definition"]
        .into_iter()
        .filter(|k| field(k).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(key_missing(&missing));
    }
    let zero = Value::from(0);
    let priority = field("priority").unwrap_or(&zero);
    let (pattern, definition) = (&body["pattern"], &body["definition"]);
    validate::fields(kind, priority, pattern, field("apply-to"), definition)
        .map_err(AdminError::BadRequest)?;
    let apply_to = match field("apply-to").and_then(Value::as_str) {
        Some("queues") => ApplyTo::Queues,
        Some("exchanges") => ApplyTo::Exchanges,
        _ => ApplyTo::All,
    };
    Ok(PolicyDef {
        vhost: vhost.to_string(),
        name: name.to_string(),
        pattern: pattern.as_str().unwrap_or_default().to_string(),
        apply_to,
        definition: match definition {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        },
        priority: match priority {
            Value::Number(n) => n.clone(),
            _ => 0.into(),
        },
    })
}

/// A global parameter from a request body (`{"value": ...}`).
pub fn global_parameter_from_json(
    name: &str,
    body: &Value,
) -> Result<GlobalParameterDef, AdminError> {
    let value = body.get("value").ok_or_else(|| key_missing(&["value"]))?;
    Ok(GlobalParameterDef {
        name: name.to_string(),
        value: value.clone(),
    })
}

/// A vhost's runtime parameter from a request body (`{"value": ...}`).
pub fn parameter_from_json(
    component: &str,
    vhost: &str,
    name: &str,
    body: &Value,
) -> Result<ParameterDef, AdminError> {
    let value = body.get("value").ok_or_else(|| key_missing(&["value"]))?;
    Ok(ParameterDef {
        vhost: vhost.to_string(),
        component: component.to_string(),
        name: name.to_string(),
        value: value.clone(),
    })
}

/// A policy from a runtime parameter's value (`{pattern, definition, priority,
/// apply-to}`, priority mandatory, nothing else), as RabbitMQ validates an
/// `operator_policy` parameter.
pub fn policy_from_parameter(
    kind: PolicyKind,
    vhost: &str,
    name: &str,
    value: &Value,
) -> Result<PolicyDef, AdminError> {
    validate::parameter_value(kind, name, value).map_err(AdminError::BadRequest)?;
    policy_from_json(kind, vhost, name, value)
}

/// Checks a typed policy as [`policy_from_json`] checks a body.
fn check(kind: PolicyKind, def: &PolicyDef) -> Result<Arc<Policy>, AdminError> {
    validate::fields(
        kind,
        &Value::Number(def.priority.clone()),
        &Value::String(def.pattern.clone()),
        None,
        &Value::Object(def.definition.clone()),
    )
    .map_err(AdminError::BadRequest)?;
    Policy::compile(def.clone())
        .map(Arc::new)
        .map_err(|e| AdminError::BadRequest(validate::validation_failed(&[e])))
}

impl Broker {
    /// Loads the stored policies into their vhosts (after the vhosts recovered their
    /// queues and exchanges) and applies them; entries that no longer compile are skipped
    /// with an error. Seeds `internal_cluster_id` on the first start.
    pub(crate) fn load_policies(&self, recovery: &Recovery) {
        let defs = &recovery.definitions;
        for v in self.vhosts() {
            let mut set = VHostPolicies::default();
            for (kind, list) in [
                (PolicyKind::Policy, &defs.policies),
                (PolicyKind::Operator, &defs.operator_policies),
            ] {
                for d in list.iter().filter(|d| d.vhost == v.name) {
                    match Policy::compile(d.clone()) {
                        Ok(p) => set.list_mut(kind).push(Arc::new(p)),
                        Err(e) => {
                            tracing::error!(policy = %d.name, vhost = %d.vhost, error = %e, "skipping a stored policy")
                        }
                    }
                }
            }
            v.set_policies(set);
        }
        let mut globals = self.globals.write().unwrap();
        for g in &defs.global_parameters {
            globals.insert(g.name.clone(), g.value.clone());
        }
        if !globals.contains_key(INTERNAL_CLUSTER_ID) {
            let id = Value::from(crate::broker::names::cluster_id());
            self.store
                .define(&Change::Admin(AdminChange::GlobalParameter(
                    GlobalParameterDef {
                        name: INTERNAL_CLUSTER_ID.into(),
                        value: id.clone(),
                    },
                )));
            globals.insert(INTERNAL_CLUSTER_ID.into(), id);
        }
    }

    fn existing_vhost(&self, vhost: &str) -> Result<Arc<VHost>, AdminError> {
        self.vhost(vhost).ok_or_else(|| no_vhost(vhost))
    }

    fn put_any_policy(&self, kind: PolicyKind, def: PolicyDef) -> Result<bool, AdminError> {
        self.existing_vhost(&def.vhost)?;
        let policy = check(kind, &def)?;
        let _g = self.admin.lock().unwrap();
        let v = self.existing_vhost(&def.vhost)?;
        if v.policy_defs(kind).contains(&def) {
            // As RabbitMQ: the same value again changes nothing.
            return Ok(false);
        }
        self.store.define(&Change::Admin(match kind {
            PolicyKind::Policy => AdminChange::Policy(def),
            PolicyKind::Operator => AdminChange::OperatorPolicy(def),
        }));
        Ok(v.put_policy(kind, policy))
    }

    fn delete_any_policy(
        &self,
        kind: PolicyKind,
        vhost: &str,
        name: &str,
    ) -> Result<(), AdminError> {
        let _g = self.admin.lock().unwrap();
        let v = self.existing_vhost(vhost)?;
        if !v.policy_defs(kind).iter().any(|p| p.name == name) {
            let what = match kind {
                PolicyKind::Policy => "policy",
                PolicyKind::Operator => "operator policy",
            };
            return Err(AdminError::NotFound(format!(
                "{what} '{name}' in vhost '{vhost}' does not exist"
            )));
        }
        let (vhost, name) = (vhost.to_string(), name.to_string());
        self.store.define(&Change::Admin(match kind {
            PolicyKind::Policy => AdminChange::DeletePolicy {
                vhost,
                name: name.clone(),
            },
            PolicyKind::Operator => AdminChange::DeleteOperatorPolicy {
                vhost,
                name: name.clone(),
            },
        }));
        v.delete_policy(kind, &name);
        Ok(())
    }

    fn list_policies(&self, kind: PolicyKind, vhost: Option<&str>) -> Vec<PolicyDef> {
        let vhosts = match vhost {
            Some(name) => self.vhost(name).into_iter().collect(),
            None => self.vhosts(),
        };
        vhosts.iter().flat_map(|v| v.policy_defs(kind)).collect()
    }

    /// Creates or replaces a policy (`PUT /api/policies/{vhost}/{name}`) and applies it to
    /// the vhost's queues and exchanges before returning. Returns whether it was created.
    /// 404 when the vhost does not exist; 400 with RabbitMQ's text when invalid.
    pub fn put_policy(&self, def: PolicyDef) -> Result<bool, AdminError> {
        self.put_any_policy(PolicyKind::Policy, def)
    }

    /// Deletes a policy; the queues and exchanges it applied to fall back to the next
    /// matching policy, or to their arguments. 404 when it (or the vhost) does not exist.
    pub fn delete_policy(&self, vhost: &str, name: &str) -> Result<(), AdminError> {
        self.delete_any_policy(PolicyKind::Policy, vhost, name)
    }

    /// The policies of one vhost, or of all (`None`), by vhost then name. An unknown
    /// vhost has none.
    pub fn policies(&self, vhost: Option<&str>) -> Vec<PolicyDef> {
        self.list_policies(PolicyKind::Policy, vhost)
    }

    pub fn policy(&self, vhost: &str, name: &str) -> Option<PolicyDef> {
        self.policies(Some(vhost))
            .into_iter()
            .find(|p| p.name == name)
    }

    /// Creates or replaces an operator policy (`PUT /api/operator-policies/{vhost}/{name}`):
    /// only `expires`, `message-ttl`, `max-length`, `max-length-bytes`,
    /// `max-in-memory-length`, `max-in-memory-bytes` and `delivery-limit`.
    pub fn put_operator_policy(&self, def: PolicyDef) -> Result<bool, AdminError> {
        self.put_any_policy(PolicyKind::Operator, def)
    }

    pub fn delete_operator_policy(&self, vhost: &str, name: &str) -> Result<(), AdminError> {
        self.delete_any_policy(PolicyKind::Operator, vhost, name)
    }

    pub fn operator_policies(&self, vhost: Option<&str>) -> Vec<PolicyDef> {
        self.list_policies(PolicyKind::Operator, vhost)
    }

    pub fn operator_policy(&self, vhost: &str, name: &str) -> Option<PolicyDef> {
        self.operator_policies(Some(vhost))
            .into_iter()
            .find(|p| p.name == name)
    }

    /// Sets a vhost's runtime parameter (`PUT /api/parameters/{component}/{vhost}/{name}`).
    /// The components known (see `parameters`): `vhost-limits` (parameter `limits`: it
    /// replaces the vhost's limits) and `operator_policy` (an operator policy). Returns
    /// whether the parameter was created.
    pub fn put_parameter(&self, def: ParameterDef) -> Result<bool, AdminError> {
        let v = self.existing_vhost(&def.vhost)?;
        if let Some(e) = component_error(&def.component) {
            return Err(AdminError::BadRequest(e));
        }
        if def.component == OPERATOR_POLICY_COMPONENT {
            let p = policy_from_parameter(PolicyKind::Operator, &def.vhost, &def.name, &def.value)?;
            return self.put_operator_policy(p);
        }
        if def.name != VHOST_LIMITS_NAME {
            // RabbitMQ stores it, then fails applying it (an internal error).
            return Err(AdminError::BadRequest(format!(
                "the vhost-limits parameter is named '{VHOST_LIMITS_NAME}', not '{}'",
                def.name
            )));
        }
        let limits = vhost_limits(&def.name, &def.value).map_err(AdminError::BadRequest)?;
        let created = v.def().limits.is_empty();
        self.set_vhost_limits(&def.vhost, limits)?;
        Ok(created)
    }

    /// Clears a vhost's runtime parameter. 404 when it does not exist.
    pub fn delete_parameter(
        &self,
        component: &str,
        vhost: &str,
        name: &str,
    ) -> Result<(), AdminError> {
        let v = self.existing_vhost(vhost)?;
        match component {
            OPERATOR_POLICY_COMPONENT => return self.delete_operator_policy(vhost, name),
            POLICY_COMPONENT => {
                return Err(AdminError::BadRequest(
                    "policies may not be cleared using this method".into(),
                ));
            }
            _ => {}
        }
        if component != VHOST_LIMITS_COMPONENT
            || name != VHOST_LIMITS_NAME
            || v.def().limits.is_empty()
        {
            return Err(AdminError::NotFound(format!(
                "parameter '{name}' of component '{component}' in vhost '{vhost}' does not exist"
            )));
        }
        self.set_vhost_limits(vhost, Vec::new())
    }

    /// The runtime parameters, of one component and one vhost or all (`None`), as
    /// RabbitMQ lists them: the `vhost-limits` of each vhost that has limits and the
    /// operator policies; policies only when asked for by their component.
    pub fn parameters(&self, component: Option<&str>, vhost: Option<&str>) -> Vec<ParameterDef> {
        let vhosts = match vhost {
            Some(name) => self.vhost(name).into_iter().collect(),
            None => self.vhosts(),
        };
        let wanted = |c: &str| component.map_or(c != POLICY_COMPONENT, |w| w == c);
        let mut out = Vec::new();
        for v in &vhosts {
            let d = v.def();
            if wanted(VHOST_LIMITS_COMPONENT) && !d.limits.is_empty() {
                out.push(ParameterDef {
                    vhost: d.name.clone(),
                    component: VHOST_LIMITS_COMPONENT.into(),
                    name: VHOST_LIMITS_NAME.into(),
                    value: vhost_limits_value(&d.limits),
                });
            }
            for (c, kind) in [
                (OPERATOR_POLICY_COMPONENT, PolicyKind::Operator),
                (POLICY_COMPONENT, PolicyKind::Policy),
            ] {
                if wanted(c) {
                    out.extend(v.policy_defs(kind).iter().map(|p| policy_parameter(c, p)));
                }
            }
        }
        out
    }

    pub fn parameter(&self, component: &str, vhost: &str, name: &str) -> Option<ParameterDef> {
        self.parameters(Some(component), Some(vhost))
            .into_iter()
            .find(|p| p.name == name)
    }

    /// Sets a global parameter (`PUT /api/global-parameters/{name}`; any JSON value).
    /// Returns whether it was created.
    pub fn put_global_parameter(&self, def: GlobalParameterDef) -> Result<bool, AdminError> {
        if def.name.is_empty() {
            return Err(AdminError::BadRequest(
                "parameter name must not be empty".into(),
            ));
        }
        let _g = self.admin.lock().unwrap();
        if self.globals.read().unwrap().get(&def.name) == Some(&def.value) {
            return Ok(false);
        }
        self.store
            .define(&Change::Admin(AdminChange::GlobalParameter(def.clone())));
        Ok(self
            .globals
            .write()
            .unwrap()
            .insert(def.name, def.value)
            .is_none())
    }

    /// Clears a global parameter. 404 when it does not exist.
    pub fn delete_global_parameter(&self, name: &str) -> Result<(), AdminError> {
        let _g = self.admin.lock().unwrap();
        if !self.globals.read().unwrap().contains_key(name) {
            return Err(AdminError::NotFound(format!(
                "global parameter '{name}' does not exist"
            )));
        }
        self.store
            .define(&Change::Admin(AdminChange::DeleteGlobalParameter {
                name: name.to_string(),
            }));
        self.globals.write().unwrap().remove(name);
        Ok(())
    }

    /// Every global parameter, by name (`internal_cluster_id` included, as RabbitMQ's
    /// `GET /api/global-parameters` and `/api/definitions` show it).
    pub fn global_parameters(&self) -> Vec<GlobalParameterDef> {
        self.globals
            .read()
            .unwrap()
            .iter()
            .map(|(name, value)| GlobalParameterDef {
                name: name.clone(),
                value: value.clone(),
            })
            .collect()
    }

    pub fn global_parameter(&self, name: &str) -> Option<GlobalParameterDef> {
        self.globals
            .read()
            .unwrap()
            .get(name)
            .map(|value| GlobalParameterDef {
                name: name.to_string(),
                value: value.clone(),
            })
    }

    /// The `internal_cluster_id` global parameter (seeded on the first start), as
    /// Prometheus' `rabbitmq_cluster_permanent_id` label shows it.
    pub fn internal_cluster_id(&self) -> Option<String> {
        match self.globals.read().unwrap().get(INTERNAL_CLUSTER_ID) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        }
    }

    /// The `cluster_name` global parameter, when set to a string (`rabbitmqctl
    /// set_cluster_name`, `PUT /api/cluster-name`); RabbitMQ falls back to the node's name.
    pub fn cluster_name(&self) -> Option<String> {
        match self.globals.read().unwrap().get(CLUSTER_NAME) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        }
    }
}
