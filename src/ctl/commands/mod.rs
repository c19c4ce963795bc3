//! What each subcommand asks of the management API, and what it prints: the
//! dispatcher and output helpers here; [`lists`] the `list_*` subcommands and `status`,
//! [`access`] users, vhosts and permissions, [`resources`] policies, queues,
//! connections and definitions.

mod access;
mod lists;
mod resources;

use super::args::{Command, Format, Global};
use super::client::{Client, seg};
use super::columns;
use super::error::{self, CtlError, Result};
use super::table;
use serde_json::Value;
use std::io::Write;

/// Where a list comes from, which says what a 404 means.
enum Scope<'p> {
    /// The whole broker: never 404.
    Broker(String),
    /// A vhost's: 404 when the vhost does not exist.
    Vhost(String),
    /// A user's: 404 when the user does not exist.
    User(String, &'p str),
}

pub struct Ctl<'a> {
    client: &'a Client,
    g: &'a Global,
    out: &'a mut dyn Write,
}

/// A write to standard output that failed. A reader that went away (`| head`) is no
/// error: nothing more to print, exit 0.
fn io_error(e: std::io::Error) -> CtlError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return CtlError::new(0, "");
    }
    CtlError::new(error::SOFTWARE, format!("cannot write the output: {e}"))
}

fn user_path(user: &str) -> String {
    format!("/users/{}", seg(user))
}

fn vhost_path(vhost: &str) -> String {
    format!("/vhosts/{}", seg(vhost))
}

fn permission_path(vhost: &str, user: &str) -> String {
    format!("/permissions/{}/{}", seg(vhost), seg(user))
}

impl<'a> Ctl<'a> {
    pub fn new(client: &'a Client, g: &'a Global, out: &'a mut dyn Write) -> Ctl<'a> {
        Ctl { client, g, out }
    }

    fn json(&self) -> bool {
        self.g.format == Format::Json
    }

    /// rabbitmqctl's informational line ("Listing queues for vhost / ..."): table output
    /// only, not with `--quiet` or `--silent`.
    fn banner(&mut self, text: impl AsRef<str>) -> Result<()> {
        if self.json() || self.g.quiet || self.g.silent {
            return Ok(());
        }
        writeln!(self.out, "{}", text.as_ref()).map_err(io_error)
    }

    fn print_json(&mut self, v: &Value) -> Result<()> {
        let text = serde_json::to_string_pretty(v).expect("JSON values serialise");
        writeln!(self.out, "{text}").map_err(io_error)
    }

    fn print_table(&mut self, header: &[String], rows: &[Vec<String>]) -> Result<()> {
        let header = (!self.g.silent && !self.g.no_table_headers).then_some(header);
        table::write(self.out, header, rows).map_err(io_error)
    }

    /// The vhost of `-p`/`--vhost`.
    fn vhost(&self) -> &'a str {
        &self.g.vhost
    }

    pub fn run(&mut self, command: &Command) -> Result<()> {
        use Command::*;
        let v = self.vhost();
        match command {
            Status => self.status(),
            ListQueues { columns } => self.list(
                &columns::QUEUES,
                format!("Listing queues for vhost {v} ..."),
                Scope::Vhost(format!("/queues/{}", seg(v))),
                columns,
            ),
            ListExchanges { columns } => self.list(
                &columns::EXCHANGES,
                format!("Listing exchanges for vhost {v} ..."),
                Scope::Vhost(format!("/exchanges/{}", seg(v))),
                columns,
            ),
            ListBindings { columns } => self.list(
                &columns::BINDINGS,
                format!("Listing bindings for vhost {v}..."),
                Scope::Vhost(format!("/bindings/{}", seg(v))),
                columns,
            ),
            ListConnections { columns } => self.list(
                &columns::CONNECTIONS,
                "Listing connections ...".into(),
                Scope::Broker("/connections".into()),
                columns,
            ),
            ListConsumers { columns } => self.list(
                &columns::CONSUMERS,
                format!("Listing consumers in vhost {v} ..."),
                Scope::Vhost(format!("/consumers/{}", seg(v))),
                columns,
            ),
            ListUsers => self.list(
                &columns::USERS,
                "Listing users ...".into(),
                Scope::Broker("/users".into()),
                &[],
            ),
            ListVhosts { columns } => self.list(
                &columns::VHOSTS,
                "Listing vhosts ...".into(),
                Scope::Broker("/vhosts".into()),
                columns,
            ),
            ListPermissions => self.list(
                &columns::PERMISSIONS,
                format!("Listing permissions for vhost \"{v}\" ..."),
                Scope::Vhost(format!("/vhosts/{}/permissions", seg(v))),
                &[],
            ),
            ListUserPermissions { user } => self.list(
                &columns::USER_PERMISSIONS,
                format!("Listing permissions for user \"{user}\" ..."),
                Scope::User(format!("/users/{}/permissions", seg(user)), user),
                &[],
            ),
            ListTopicPermissions => self.list(
                &columns::TOPIC_PERMISSIONS,
                format!("Listing topic permissions for vhost \"{v}\" ..."),
                Scope::Vhost(format!("/vhosts/{}/topic-permissions", seg(v))),
                &[],
            ),
            ListPolicies => self.list(
                &columns::POLICIES,
                format!("Listing policies for vhost \"{v}\" ..."),
                Scope::Vhost(format!("/policies/{}", seg(v))),
                &[],
            ),
            ListOperatorPolicies => self.list(
                &columns::POLICIES,
                format!("Listing operator policy overrides for vhost \"{v}\" ..."),
                Scope::Vhost(format!("/operator-policies/{}", seg(v))),
                &[],
            ),
            AddUser { user, pass } => self.add_user(user, pass.as_deref()),
            DeleteUser { user } => self.delete_user(user),
            ChangePassword { user, pass } => self.change_password(user, pass.as_deref()),
            ClearPassword { user } => self.clear_password(user),
            SetUserTags { user, tags } => self.set_user_tags(user, tags),
            AddVhost {
                name,
                description,
                tags,
                default_queue_type,
            } => self.add_vhost(
                name,
                description.as_deref(),
                tags.as_deref(),
                default_queue_type.as_deref(),
            ),
            DeleteVhost { name } => self.delete_vhost(name),
            SetPermissions {
                user,
                conf,
                write,
                read,
            } => self.set_permissions(user, conf, write, read),
            ClearPermissions { user } => self.clear_permissions(user),
            SetTopicPermissions {
                user,
                exchange,
                write,
                read,
            } => self.set_topic_permissions(user, exchange, write, read),
            ClearTopicPermissions { user, exchange } => {
                self.clear_topic_permissions(user, exchange.as_deref())
            }
            SetPolicy(p) => self.set_policy(&resources::POLICY, p),
            ClearPolicy { name } => self.clear_policy(&resources::POLICY, name),
            SetOperatorPolicy(p) => self.set_policy(&resources::OPERATOR_POLICY, p),
            ClearOperatorPolicy { name } => self.clear_policy(&resources::OPERATOR_POLICY, name),
            PurgeQueue { queue } => self.purge_queue(queue),
            DeleteQueue {
                queue,
                if_empty,
                if_unused,
            } => self.delete_queue(queue, *if_empty, *if_unused),
            CloseConnection { name, reason } => self.close_connection(name, reason),
            ExportDefinitions { path } => self.export_definitions(path),
            ImportDefinitions { path } => self.import_definitions(path.as_deref()),
        }
    }
}
