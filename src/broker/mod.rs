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

use crate::store::{Recovery, Store};
use dashmap::DashMap;
use std::sync::Arc;
use vhost::VHost;

/// Every vhost of one broker.
#[derive(Debug, Default)]
pub struct Broker {
    vhosts: DashMap<String, Arc<VHost>>,
}

impl Broker {
    /// The broker with its default vhost, and what the store recovered put back in place.
    pub fn new(default_vhost: &str, store: Arc<Store>, recovery: &mut Recovery) -> Broker {
        let b = Broker::default();
        let v = Arc::new(VHost::new(default_vhost, store));
        v.recover(recovery);
        b.vhosts.insert(default_vhost.to_string(), v);
        b
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.get(name).map(|v| v.clone())
    }
}
