//! Policies, queues, connections and definitions.

use super::{Ctl, io_error, vhost_path};
use crate::ctl::args::PolicyArgs;
use crate::ctl::client::{Method, seg};
use crate::ctl::error::{CtlError, OrMissing, Result};
use serde_json::{Value, json};
use std::io::Read;

/// Policies and operator policies: their API path and what messages call them.
pub(super) struct PolicyKind {
    pub path: &'static str,
    pub what: &'static str,
    /// rabbitmqctl's word in the `set_*` banner.
    pub setting: &'static str,
}

pub(super) const POLICY: PolicyKind = PolicyKind {
    path: "policies",
    what: "policy",
    setting: "policy",
};

pub(super) const OPERATOR_POLICY: PolicyKind = PolicyKind {
    path: "operator-policies",
    what: "operator policy",
    setting: "operator policy override",
};

impl Ctl<'_> {
    pub(super) fn set_policy(&mut self, kind: &PolicyKind, p: &PolicyArgs) -> Result<()> {
        let v = self.vhost();
        self.banner(format!(
            "Setting {} \"{}\" for pattern \"{}\" to \"{}\" with priority \"{}\" for vhost \"{v}\" ...",
            kind.setting, p.name, p.pattern, p.definition, p.priority
        ))?;
        let definition: Value = serde_json::from_str(&p.definition)
            .map_err(|e| CtlError::data(format!("the policy definition is not valid JSON: {e}")))?;
        if !definition.is_object() {
            return Err(CtlError::data(
                "the policy definition must be a JSON object, e.g. '{\"max-length\": 1000}'",
            ));
        }
        let body = json!({
            "pattern": p.pattern,
            "definition": definition,
            "priority": p.priority,
            "apply-to": p.apply_to.as_str(),
        });
        let path = format!("/{}/{}/{}", kind.path, seg(v), seg(&p.name));
        let r = self.client.put(&path, &body);
        r.map_err(|e| self.diagnose(e, Some(v), None))
    }

    pub(super) fn clear_policy(&mut self, kind: &PolicyKind, name: &str) -> Result<()> {
        let v = self.vhost();
        self.banner(format!(
            "Clearing {} \"{name}\" on vhost \"{v}\" ...",
            kind.what
        ))?;
        let path = format!("/{}/{}/{}", kind.path, seg(v), seg(name));
        match self.client.delete(&path) {
            Err(e) if e.not_found => match self.diagnose(e, Some(v), None) {
                e if e.not_found => Err(CtlError::data(format!(
                    "{} '{name}' in vhost '{v}' does not exist",
                    kind.what
                ))),
                other => Err(other),
            },
            other => other,
        }
    }

    pub(super) fn purge_queue(&mut self, queue: &str) -> Result<()> {
        let v = self.vhost();
        self.banner(format!("Purging queue '{queue}' in vhost '{v}' ..."))?;
        let path = format!("/queues/{}/{}/contents", seg(v), seg(queue));
        let r = self.client.delete(&path);
        r.or_missing(|| self.missing_queue(v, queue))
    }

    pub(super) fn delete_queue(
        &mut self,
        queue: &str,
        if_empty: bool,
        if_unused: bool,
    ) -> Result<()> {
        let v = self.vhost();
        let mut conditions = vec![];
        let mut query = vec![];
        if if_empty {
            conditions.push("if queue is empty");
            query.push("if-empty=true");
        }
        if if_unused {
            conditions.push("if queue is unused");
            query.push("if-unused=true");
        }
        let mut banner = format!("Deleting queue '{queue}' on vhost '{v}' ");
        if !conditions.is_empty() {
            banner.push_str(&conditions.join(" and "));
            banner.push(' ');
        }
        self.banner(format!("{banner}..."))?;
        let mut path = format!("/queues/{}/{}", seg(v), seg(queue));
        if !query.is_empty() {
            path.push('?');
            path.push_str(&query.join("&"));
        }
        let r = self.client.delete(&path);
        r.or_missing(|| self.missing_queue(v, queue))
    }

    /// The queue's 404: its vhost may be what is missing.
    fn missing_queue(&self, vhost: &str, queue: &str) -> CtlError {
        match self.client.exists(&vhost_path(vhost)) {
            Ok(false) => CtlError::no_vhost(vhost),
            Err(e) => e,
            Ok(true) => {
                CtlError::data(format!("queue '{queue}' in vhost '{vhost}' does not exist"))
            }
        }
    }

    pub(super) fn close_connection(&mut self, name: &str, reason: &str) -> Result<()> {
        self.banner(format!("Closing connection {name}, reason: {reason}..."))?;
        let path = format!("/connections/{}", seg(name));
        self.client
            .request(Method::Delete, &path, None, &[("x-reason", reason)])
            .map(drop)
            .or_missing(|| CtlError::data(format!("connection '{name}' does not exist")))
    }

    pub(super) fn export_definitions(&mut self, path: &str) -> Result<()> {
        if path != "-" {
            self.banner(format!(
                "Exporting definitions in JSON to a file at \"{path}\" ..."
            ))?;
        }
        let defs = self.client.get("/definitions")?;
        let text = serde_json::to_string_pretty(&defs).expect("JSON values serialise") + "\n";
        if path == "-" {
            return self.out.write_all(text.as_bytes()).map_err(io_error);
        }
        std::fs::write(path, text)
            .map_err(|e| CtlError::data(format!("could not write to file {path}: {e}")))
    }

    pub(super) fn import_definitions(&mut self, path: Option<&str>) -> Result<()> {
        let text = match path {
            None | Some("-") => {
                self.banner("Importing definitions in JSON from standard input ...")?;
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| CtlError::data(format!("could not read standard input: {e}")))?;
                text
            }
            Some(p) => {
                self.banner(format!(
                    "Importing definitions in JSON from a file at \"{p}\" ..."
                ))?;
                std::fs::read_to_string(p)
                    .map_err(|e| CtlError::data(format!("could not read from file {p}: {e}")))?
            }
        };
        let source = path.filter(|p| *p != "-").unwrap_or("standard input");
        // Checked here so that a typo gets a line and column, not the broker's 400.
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(_)) => {}
            Ok(_) => {
                return Err(CtlError::data(format!(
                    "{source}: definitions must be a JSON object"
                )));
            }
            Err(e) => {
                return Err(CtlError::data(format!("{source} is not valid JSON: {e}")));
            }
        }
        self.client.post_raw("/definitions", &text)
    }
}
