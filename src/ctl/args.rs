//! The command line: rabbitmqctl's subcommands, arguments and option names, plus the
//! options that say which broker's management API to talk to.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "warren-ctl",
    version,
    about = "Operates a Warren (or RabbitMQ) broker through its management HTTP API, \
             with rabbitmqctl's subcommands",
    after_help = "Exit codes: 0 ok, 64 usage, 65 data error (bad input, no such vhost or \
                  object), 67 no such user, 69 broker unreachable, 70 unexpected answer, \
                  75 timeout, 77 authentication failed or not allowed (docs/CTL.md)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes, before or after its name. (Their ids are taken:
/// subcommands name their own arguments differently, `user` rather than `username`.)
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Base URL of the management API (the part before /api)
    #[arg(
        long,
        env = "WARREN_CTL_URL",
        default_value = "http://127.0.0.1:15672",
        global = true
    )]
    pub url: String,
    /// User to authenticate as
    #[arg(
        short = 'u',
        long,
        env = "WARREN_CTL_USERNAME",
        default_value = "guest",
        global = true
    )]
    pub username: String,
    /// Password of that user
    #[arg(
        long,
        env = "WARREN_CTL_PASSWORD",
        default_value = "guest",
        hide_env_values = true,
        hide_default_value = true,
        global = true
    )]
    pub password: String,
    /// Virtual host the subcommand applies to
    #[arg(short = 'p', long, default_value = "/", global = true)]
    pub vhost: String,
    /// Output: aligned columns with a header, or the API's JSON
    #[arg(
        long,
        visible_alias = "formatter",
        value_enum,
        default_value = "table",
        global = true
    )]
    pub format: Format,
    /// No informational messages ("Listing queues ...")
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    /// No informational messages and no table headers
    #[arg(short = 's', long, global = true)]
    pub silent: bool,
    /// No table headers
    #[arg(long, global = true)]
    pub no_table_headers: bool,
    /// Seconds to wait for the broker's answer
    #[arg(
        short = 't',
        long,
        default_value = "60",
        value_name = "SECONDS",
        global = true
    )]
    pub timeout: u64,
    /// With an https URL: accept any server certificate
    #[arg(long, global = true)]
    pub insecure: bool,
    /// With an https URL: PEM file of the CA certificates to trust (instead of the
    /// built-in web roots)
    #[arg(long, value_name = "FILE", global = true)]
    pub cacert: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "lower")]
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

/// `set_policy` and `set_operator_policy`.
#[derive(Args, Debug, Clone)]
pub struct PolicyArgs {
    /// Policy priority; the highest matching policy applies
    #[arg(long, default_value = "0", allow_negative_numbers = true)]
    pub priority: i64,
    /// Which kind of entity the policy applies to
    #[arg(long, value_enum, default_value = "all")]
    pub apply_to: ApplyTo,
    /// Policy name
    pub name: String,
    /// Regular expression matching the names of the queues or exchanges it applies to
    #[arg(allow_hyphen_values = true)]
    pub pattern: String,
    /// Policy definition, a JSON object, e.g. '{"max-length": 1000}'
    pub definition: String,
}

/// Subcommands are named in snake_case as rabbitmqctl's; that renaming reaches the
/// options of struct variants too, so those name their long form themselves.
#[derive(Subcommand, Debug)]
#[command(rename_all = "snake_case")]
pub enum Command {
    /// Overview of the broker: version, totals, listeners
    Status,
    /// Queues in the vhost [default columns: name messages]
    ListQueues {
        /// Columns to show (space- or comma-separated), e.g. name messages consumers
        columns: Vec<String>,
    },
    /// Exchanges in the vhost [default columns: name type]
    ListExchanges { columns: Vec<String> },
    /// Bindings in the vhost
    ListBindings { columns: Vec<String> },
    /// Client connections, all vhosts [default columns: user peer_host peer_port state]
    ListConnections { columns: Vec<String> },
    /// Consumers in the vhost
    ListConsumers { columns: Vec<String> },
    /// Users and their tags
    ListUsers,
    /// Virtual hosts [default column: name]
    ListVhosts { columns: Vec<String> },
    /// Permissions of each user in the vhost
    ListPermissions,
    /// Permissions of one user in each vhost
    ListUserPermissions {
        #[arg(value_name = "USERNAME")]
        user: String,
    },
    /// Topic permissions of each user in the vhost
    ListTopicPermissions,
    /// Policies in the vhost
    ListPolicies,
    /// Operator policies in the vhost
    ListOperatorPolicies,
    /// Creates a user (the password is read from standard input when omitted)
    AddUser {
        #[arg(value_name = "USERNAME")]
        user: String,
        #[arg(value_name = "PASSWORD", allow_hyphen_values = true)]
        pass: Option<String>,
    },
    /// Deletes a user, closing its connections
    DeleteUser {
        #[arg(value_name = "USERNAME")]
        user: String,
    },
    /// Changes a user's password (read from standard input when omitted)
    ChangePassword {
        #[arg(value_name = "USERNAME")]
        user: String,
        #[arg(value_name = "PASSWORD", allow_hyphen_values = true)]
        pass: Option<String>,
    },
    /// Removes a user's password: it can then log in only by certificate
    ClearPassword {
        #[arg(value_name = "USERNAME")]
        user: String,
    },
    /// Replaces a user's tags (none: clears them)
    SetUserTags {
        #[arg(value_name = "USERNAME")]
        user: String,
        tags: Vec<String>,
    },
    /// Creates a virtual host
    AddVhost {
        #[arg(value_name = "VHOST")]
        name: String,
        /// Description
        #[arg(long)]
        description: Option<String>,
        /// Comma-separated tags
        #[arg(long)]
        tags: Option<String>,
        /// Queue type of queues declared without x-queue-type
        #[arg(long = "default-queue-type")]
        default_queue_type: Option<String>,
    },
    /// Deletes a virtual host with everything in it, closing its connections
    DeleteVhost {
        #[arg(value_name = "VHOST")]
        name: String,
    },
    /// Sets a user's configure, write and read patterns in the vhost
    SetPermissions {
        #[arg(value_name = "USERNAME")]
        user: String,
        #[arg(allow_hyphen_values = true)]
        conf: String,
        #[arg(allow_hyphen_values = true)]
        write: String,
        #[arg(allow_hyphen_values = true)]
        read: String,
    },
    /// Revokes a user's permissions in the vhost
    ClearPermissions {
        #[arg(value_name = "USERNAME")]
        user: String,
    },
    /// Sets a user's topic permissions on an exchange in the vhost
    SetTopicPermissions {
        #[arg(value_name = "USERNAME")]
        user: String,
        exchange: String,
        #[arg(allow_hyphen_values = true)]
        write: String,
        #[arg(allow_hyphen_values = true)]
        read: String,
    },
    /// Revokes a user's topic permissions in the vhost (on one exchange, if named)
    ClearTopicPermissions {
        #[arg(value_name = "USERNAME")]
        user: String,
        exchange: Option<String>,
    },
    /// Sets or updates a policy
    SetPolicy(PolicyArgs),
    /// Removes a policy
    ClearPolicy { name: String },
    /// Sets or updates an operator policy
    SetOperatorPolicy(PolicyArgs),
    /// Removes an operator policy
    ClearOperatorPolicy { name: String },
    /// Removes every ready message from a queue
    PurgeQueue { queue: String },
    /// Deletes a queue
    DeleteQueue {
        queue: String,
        /// Only if it has no messages
        #[arg(short = 'e', long = "if-empty")]
        if_empty: bool,
        /// Only if it has no consumers
        #[arg(long = "if-unused")]
        if_unused: bool,
    },
    /// Closes a client connection (its name as list_connections name shows it)
    CloseConnection {
        #[arg(value_name = "CONNECTION")]
        name: String,
        /// Reason given to the client in connection.close
        reason: String,
    },
    /// Writes every definition (users, vhosts, permissions, queues, exchanges,
    /// bindings, policies, parameters) as JSON to a file, or to standard output with -
    ExportDefinitions { path: String },
    /// Loads definitions from a JSON file, or from standard input with - or no file
    ImportDefinitions { path: Option<String> },
}
