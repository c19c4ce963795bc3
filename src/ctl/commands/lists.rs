//! The `list_*` subcommands and `status`: read, then print as a table or as JSON.

use super::{Ctl, Scope, io_error};
use crate::ctl::client::seg;
use crate::ctl::columns::List;
use crate::ctl::error::{CtlError, OrMissing, Result};
use crate::ctl::table;
use serde_json::{Map, Value, json};

impl Ctl<'_> {
    /// A `list_*` subcommand: the columns are checked before anything is printed or
    /// asked.
    pub(super) fn list(
        &mut self,
        list: &List,
        banner: String,
        scope: Scope,
        asked: &[String],
    ) -> Result<()> {
        let columns = list.columns(asked)?;
        self.banner(banner)?;
        let v = self.vhost();
        let items = match scope {
            Scope::Broker(path) => self.client.get_list(&path)?,
            Scope::Vhost(path) => self
                .client
                .get_list(&path)
                .or_missing(|| CtlError::no_vhost(v))?,
            Scope::User(path, user) => self
                .client
                .get_list(&path)
                .or_missing(|| CtlError::no_user(user))?,
        };
        self.print_rows(list, items, columns, !asked.is_empty())
    }

    /// Table: the columns. JSON: the API's objects, or only the columns asked for.
    fn print_rows(
        &mut self,
        list: &List,
        items: Vec<Value>,
        columns: Vec<String>,
        chosen: bool,
    ) -> Result<()> {
        if self.json() {
            if !chosen {
                return self.print_json(&Value::Array(items));
            }
            let picked: Vec<Value> = items
                .iter()
                .map(|item| {
                    let o: Map<String, Value> = columns
                        .iter()
                        .map(|c| (c.clone(), list.value(item, c).unwrap_or(Value::Null)))
                        .collect();
                    Value::Object(o)
                })
                .collect();
            return self.print_json(&Value::Array(picked));
        }
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|item| {
                columns
                    .iter()
                    .map(|c| table::cell(list.value(item, c).as_ref()))
                    .collect()
            })
            .collect();
        self.print_table(&columns, &rows)
    }

    pub(super) fn status(&mut self) -> Result<()> {
        let o = self.client.get("/overview")?;
        if self.json() {
            return self.print_json(&o);
        }
        let node = o
            .get("node")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        self.banner(format!("Status of node {node} ..."))?;
        let mut rows: Vec<Vec<String>> = vec![];
        let mut row = |k: &str, v: Option<&Value>| {
            if let Some(v) = v.filter(|v| !v.is_null()) {
                rows.push(vec![k.to_string(), table::cell(Some(v))]);
            }
        };
        row("node", o.get("node"));
        row("cluster_name", o.get("cluster_name"));
        if let (Some(n), Some(ver)) = (o.get("product_name"), o.get("product_version")) {
            row(
                "product",
                Some(&json!(format!(
                    "{} {}",
                    table::cell(Some(n)),
                    table::cell(Some(ver))
                ))),
            );
        }
        row("rabbitmq_version", o.get("rabbitmq_version"));
        row("management_version", o.get("management_version"));
        row("erlang_version", o.get("erlang_version"));
        for k in [
            "connections",
            "channels",
            "exchanges",
            "queues",
            "consumers",
        ] {
            row(k, o.pointer(&format!("/object_totals/{k}")));
        }
        for k in ["messages", "messages_ready", "messages_unacknowledged"] {
            row(k, o.pointer(&format!("/queue_totals/{k}")));
        }
        if let Some(listeners) = o.get("listeners").and_then(Value::as_array) {
            for l in listeners {
                let field = |k| l.get(k).map(|v| table::cell(Some(v))).unwrap_or_default();
                let text = format!(
                    "{} on {}:{}",
                    field("protocol"),
                    field("ip_address"),
                    field("port")
                );
                row("listener", Some(&json!(text)));
            }
        }
        // Memory, disk and alarms come from the node's own record, when the API has it.
        if !node.is_empty() {
            // Best effort: without it (no such path, or not for this user) the overview
            // alone is the status.
            if let Ok(n) = self.client.get(&format!("/nodes/{}", seg(&node))) {
                for k in [
                    "uptime",
                    "mem_used",
                    "mem_limit",
                    "mem_alarm",
                    "disk_free",
                    "disk_free_limit",
                    "disk_free_alarm",
                    "fd_used",
                    "fd_total",
                    "sockets_used",
                    "sockets_total",
                    "proc_used",
                    "proc_total",
                ] {
                    row(k, n.get(k));
                }
            }
        }
        table::write(self.out, None, &rows).map_err(io_error)
    }
}
