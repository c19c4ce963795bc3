//! The broker core, socket-free: vhosts, exchanges and their routing, queues, consumers and
//! messages. The server feeds it decoded methods; it writes deliveries into outboxes.

pub mod args;
pub mod consumer;
pub mod deadletter;
pub mod effects;
pub mod exchange;
pub mod headers;
pub mod message;
pub mod names;
pub mod outbox;
pub mod queue;
pub mod topic;
pub mod vhost;

use dashmap::DashMap;
use std::sync::Arc;
use vhost::VHost;

/// Every vhost of one broker.
#[derive(Debug, Default)]
pub struct Broker {
    vhosts: DashMap<String, Arc<VHost>>,
}

impl Broker {
    pub fn new(default_vhost: &str) -> Broker {
        let b = Broker::default();
        b.vhosts.insert(
            default_vhost.to_string(),
            Arc::new(VHost::new(default_vhost)),
        );
        b
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.get(name).map(|v| v.clone())
    }
}
