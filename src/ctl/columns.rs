//! The `list_*` subcommands: which API path each reads, rabbitmqctl's column names
//! ("info keys") and defaults, and where each column's value sits in the API's objects.

use super::error::{CtlError, Result};
use serde_json::Value;

/// Where a column's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// A JSON pointer into the API object (`/queue/name`).
    At(&'static str),
    /// The same for every row (`source_kind`: bindings always start at an exchange).
    Const(&'static str),
    /// The API field named as the column.
    Own,
}

pub struct List {
    /// What is listed, for messages ("queues").
    pub what: &'static str,
    /// rabbitmqctl's column names, in its order.
    pub keys: &'static [&'static str],
    pub defaults: &'static [&'static str],
    /// Columns whose value is not the API field of the same name.
    pub renamed: &'static [(&'static str, Field)],
}

impl List {
    pub fn field(&self, column: &str) -> Field {
        self.renamed
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, f)| *f)
            .unwrap_or(Field::Own)
    }

    /// The columns asked for (space- or comma-separated, as rabbitmqctl takes them),
    /// or the defaults; an unknown one is a usage error naming the valid ones.
    pub fn columns(&self, asked: &[String]) -> Result<Vec<String>> {
        let asked: Vec<String> = asked
            .iter()
            .flat_map(|a| a.split(','))
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        if asked.is_empty() {
            return Ok(self.defaults.iter().map(|c| c.to_string()).collect());
        }
        let unknown: Vec<&str> = asked
            .iter()
            .map(String::as_str)
            .filter(|a| !self.keys.contains(a))
            .collect();
        if !unknown.is_empty() {
            let mut valid = self.keys.to_vec();
            valid.sort_unstable();
            return Err(CtlError::usage(format!(
                "unknown column(s) for {}: {}; valid columns: {}",
                self.what,
                unknown.join(", "),
                valid.join(", ")
            )));
        }
        Ok(asked)
    }

    /// A column's value in one API object (`None` when the API does not give it).
    pub fn value(&self, item: &Value, column: &str) -> Option<Value> {
        match self.field(column) {
            Field::At(ptr) => item.pointer(ptr).cloned(),
            Field::Const(c) => Some(Value::String(c.to_string())),
            Field::Own => item.get(column).cloned(),
        }
    }
}

pub static QUEUES: List = List {
    what: "queues",
    keys: &[
        "name",
        "durable",
        "auto_delete",
        "arguments",
        "policy",
        "pid",
        "owner_pid",
        "exclusive",
        "exclusive_consumer_pid",
        "exclusive_consumer_tag",
        "messages_ready",
        "messages_unacknowledged",
        "messages",
        "messages_ready_ram",
        "messages_unacknowledged_ram",
        "messages_ram",
        "messages_persistent",
        "message_bytes",
        "message_bytes_ready",
        "message_bytes_unacknowledged",
        "message_bytes_ram",
        "message_bytes_persistent",
        "head_message_timestamp",
        "disk_reads",
        "disk_writes",
        "consumers",
        "consumer_utilisation",
        "consumer_capacity",
        "memory",
        "slave_pids",
        "synchronised_slave_pids",
        "state",
        "type",
        "leader",
        "members",
        "online",
    ],
    defaults: &["name", "messages"],
    renamed: &[
        ("pid", Field::At("/node")),
        ("owner_pid", Field::At("/owner_pid_details/name")),
        (
            "exclusive_consumer_pid",
            Field::At("/exclusive_consumer_details/channel_details/name"),
        ),
        (
            "exclusive_consumer_tag",
            Field::At("/exclusive_consumer_details/consumer_tag"),
        ),
        ("disk_reads", Field::At("/backing_queue_status/disk_reads")),
        (
            "disk_writes",
            Field::At("/backing_queue_status/disk_writes"),
        ),
        ("slave_pids", Field::At("/slave_nodes")),
        (
            "synchronised_slave_pids",
            Field::At("/synchronised_slave_nodes"),
        ),
    ],
};

pub static EXCHANGES: List = List {
    what: "exchanges",
    keys: &[
        "name",
        "type",
        "durable",
        "auto_delete",
        "internal",
        "arguments",
        "policy",
    ],
    defaults: &["name", "type"],
    renamed: &[],
};

pub static BINDINGS: List = List {
    what: "bindings",
    keys: &[
        "source_name",
        "source_kind",
        "destination_name",
        "destination_kind",
        "routing_key",
        "arguments",
    ],
    defaults: &[
        "source_name",
        "source_kind",
        "destination_name",
        "destination_kind",
        "routing_key",
        "arguments",
    ],
    renamed: &[
        ("source_name", Field::At("/source")),
        ("source_kind", Field::Const("exchange")),
        ("destination_name", Field::At("/destination")),
        ("destination_kind", Field::At("/destination_type")),
    ],
};

pub static CONNECTIONS: List = List {
    what: "connections",
    keys: &[
        "pid",
        "name",
        "port",
        "host",
        "peer_port",
        "peer_host",
        "ssl",
        "ssl_protocol",
        "ssl_key_exchange",
        "ssl_cipher",
        "ssl_hash",
        "peer_cert_subject",
        "peer_cert_issuer",
        "peer_cert_validity",
        "state",
        "channels",
        "protocol",
        "auth_mechanism",
        "user",
        "vhost",
        "timeout",
        "frame_max",
        "channel_max",
        "client_properties",
        "recv_oct",
        "recv_cnt",
        "send_oct",
        "send_cnt",
        "send_pend",
        "connected_at",
    ],
    defaults: &["user", "peer_host", "peer_port", "state"],
    renamed: &[("pid", Field::At("/node"))],
};

pub static CONSUMERS: List = List {
    what: "consumers",
    keys: &[
        "queue_name",
        "channel_pid",
        "consumer_tag",
        "ack_required",
        "prefetch_count",
        "active",
        "activity_status",
        "arguments",
    ],
    defaults: &[
        "queue_name",
        "channel_pid",
        "consumer_tag",
        "ack_required",
        "prefetch_count",
        "active",
        "arguments",
    ],
    renamed: &[
        ("queue_name", Field::At("/queue/name")),
        ("channel_pid", Field::At("/channel_details/name")),
    ],
};

pub static VHOSTS: List = List {
    what: "vhosts",
    keys: &[
        "name",
        "description",
        "tags",
        "default_queue_type",
        "tracing",
        "cluster_state",
    ],
    defaults: &["name"],
    renamed: &[],
};

/// Fixed-column lists (rabbitmqctl takes no columns for these).
pub static USERS: List = List {
    what: "users",
    keys: &["user", "tags"],
    defaults: &["user", "tags"],
    renamed: &[("user", Field::At("/name"))],
};

pub static PERMISSIONS: List = List {
    what: "permissions",
    keys: &["user", "configure", "write", "read"],
    defaults: &["user", "configure", "write", "read"],
    renamed: &[],
};

pub static USER_PERMISSIONS: List = List {
    what: "permissions",
    keys: &["vhost", "configure", "write", "read"],
    defaults: &["vhost", "configure", "write", "read"],
    renamed: &[],
};

pub static TOPIC_PERMISSIONS: List = List {
    what: "topic permissions",
    keys: &["user", "exchange", "write", "read"],
    defaults: &["user", "exchange", "write", "read"],
    renamed: &[],
};

pub static POLICIES: List = List {
    what: "policies",
    keys: &[
        "vhost",
        "name",
        "pattern",
        "apply-to",
        "definition",
        "priority",
    ],
    defaults: &[
        "vhost",
        "name",
        "pattern",
        "apply-to",
        "definition",
        "priority",
    ],
    renamed: &[],
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_default_split_and_validate() {
        assert_eq!(QUEUES.columns(&[]).unwrap(), ["name", "messages"]);
        let asked = ["name,messages".to_string(), "consumers".to_string()];
        assert_eq!(
            QUEUES.columns(&asked).unwrap(),
            ["name", "messages", "consumers"]
        );
        let err = QUEUES.columns(&["nmae".to_string()]).unwrap_err();
        assert_eq!(err.code, crate::ctl::error::USAGE);
        assert!(err.message.contains("nmae"), "{}", err.message);
        assert!(err.message.contains("messages_ready"), "{}", err.message);
    }

    #[test]
    fn values_follow_renames() {
        let b = json!({"source": "amq.direct", "destination": "q", "destination_type": "queue",
                       "routing_key": "k", "arguments": {}});
        assert_eq!(BINDINGS.value(&b, "source_name"), Some(json!("amq.direct")));
        assert_eq!(BINDINGS.value(&b, "source_kind"), Some(json!("exchange")));
        assert_eq!(BINDINGS.value(&b, "destination_kind"), Some(json!("queue")));
        assert_eq!(BINDINGS.value(&b, "routing_key"), Some(json!("k")));
        let c = json!({"queue": {"name": "q", "vhost": "/"}, "consumer_tag": "t"});
        assert_eq!(CONSUMERS.value(&c, "queue_name"), Some(json!("q")));
        assert_eq!(CONSUMERS.value(&c, "channel_pid"), None);
    }
}
