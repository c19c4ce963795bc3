//! Runtime parameters (RabbitMQ's `rabbit_runtime_parameters`): per-vhost values of a
//! component, and global ones.
//!
//! Components belong to plugins in RabbitMQ (federation-upstream, shovel, ...). Warren has
//! none, and answers as a RabbitMQ 3.10 without plugins, whose components are:
//!
//! - `vhost-limits`: parameter `limits`, the vhost's `max-connections` and `max-queues`
//!   (kept with the vhost);
//! - `operator_policy`: operator policies, each a parameter whose value is
//!   `{pattern, definition, priority, apply-to}` (listed among the parameters, exported
//!   and imported in a definitions file's `parameters`, settable this way too);
//! - `policy`: policies, listed this way when asked for by component, but set only
//!   through their own operation.
//!
//! Any other component is refused ("component foo not found").
//!
//! Global parameters take any JSON value under any name; `cluster_name` names the
//! cluster, and `internal_cluster_id` is seeded on the first start, as RabbitMQ does.

use super::erlang::term;
use super::validate::validation_failed;
use crate::broker::admin::VHOST_LIMITS;
use serde_json::Value;

/// A vhost's runtime parameter, as listed and exported (RabbitMQ's JSON names).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ParameterDef {
    pub vhost: String,
    pub component: String,
    pub name: String,
    pub value: Value,
}

/// The component of vhost limits, and the one name RabbitMQ acts on.
pub const VHOST_LIMITS_COMPONENT: &str = "vhost-limits";
pub const VHOST_LIMITS_NAME: &str = "limits";
/// The components of operator policies and of policies.
pub const OPERATOR_POLICY_COMPONENT: &str = "operator_policy";
pub const POLICY_COMPONENT: &str = "policy";

/// Why a parameter of `component` is refused before its value is looked at.
pub fn component_error(component: &str) -> Option<String> {
    match component {
        VHOST_LIMITS_COMPONENT | OPERATOR_POLICY_COMPONENT => None,
        POLICY_COMPONENT => Some("policies may not be set using this method".into()),
        other => Some(validation_failed(&[format!("component {other} not found")])),
    }
}

/// A policy as the runtime parameter RabbitMQ keeps it as (component `policy` or
/// `operator_policy`).
pub fn policy_parameter(component: &str, def: &super::PolicyDef) -> ParameterDef {
    ParameterDef {
        vhost: def.vhost.clone(),
        component: component.to_string(),
        name: def.name.clone(),
        value: serde_json::json!({
            "pattern": def.pattern,
            "definition": def.definition,
            "priority": def.priority,
            "apply-to": def.apply_to,
        }),
    }
}

/// A `vhost-limits` value as RabbitMQ validates it (`rabbit_vhost_limit`: an object of
/// integer `max-connections` and `max-queues`), as the vhost keeps it.
pub fn vhost_limits(name: &str, value: &Value) -> Result<Vec<(String, i64)>, String> {
    let Value::Object(m) = value else {
        return Err(validation_failed(&[format!(
            "{name} not a list {}",
            term(value)
        )]));
    };
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for key in VHOST_LIMITS {
        if let Some(v) = m.get(key) {
            match v.as_i64() {
                Some(n) => out.push((key.to_string(), n)),
                None => errors.push(format!(
                    "{key} should be a number, actually was {}",
                    term(v)
                )),
            }
        }
    }
    let unknown: Vec<(&String, &Value)> = m
        .iter()
        .filter(|(k, _)| !VHOST_LIMITS.contains(&k.as_str()))
        .collect();
    if !unknown.is_empty() {
        errors.insert(
            0,
            format!(
                "Unrecognised terms {} in {name}",
                super::erlang::pairs(unknown.into_iter())
            ),
        );
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(validation_failed(&errors))
    }
}

/// A vhost's limits as its `vhost-limits` parameter value.
pub fn vhost_limits_value(limits: &[(String, i64)]) -> Value {
    Value::Object(
        limits
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(*v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vhost_limits_are_checked_as_rabbitmq_checks_them() {
        assert_eq!(
            vhost_limits("limits", &json!({"max-queues": 5, "max-connections": -1})).unwrap(),
            vec![
                ("max-connections".to_string(), -1),
                ("max-queues".to_string(), 5)
            ]
        );
        assert_eq!(
            vhost_limits("limits", &json!({"max-queues": "x"})).unwrap_err(),
            "Validation failed\n\nmax-queues should be a number, actually was <<\"x\">>\n"
        );
        assert_eq!(
            vhost_limits("limits", &json!({"max-bananas": 1})).unwrap_err(),
            "Validation failed\n\nUnrecognised terms [{<<\"max-bananas\">>,1}] in limits\n"
        );
        assert_eq!(
            vhost_limits("limits", &json!(5)).unwrap_err(),
            "Validation failed\n\nlimits not a list 5\n"
        );
        assert_eq!(
            component_error("foo").unwrap(),
            "Validation failed\n\ncomponent foo not found\n"
        );
        assert!(component_error("vhost-limits").is_none());
    }
}
