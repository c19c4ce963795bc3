//! The broker core, socket-free: vhosts, exchanges and their routing, queues, consumers and
//! messages, the user database and access control (`auth`), the administrative operations
//! every front end calls (`admin`, `policy::admin`), policies and runtime parameters
//! (`policy`), and the registry of open connections. The server feeds
//! it decoded methods; it writes deliveries into outboxes.

pub mod ack_timeout;
pub mod admin;
pub mod args;
pub mod auth;
pub mod connections;
pub mod consistent_hash;
pub mod consumer;
pub mod deadletter;
pub mod dedup;
pub mod definitions_json;
pub mod delayed;
pub mod discards;
pub mod effects;
pub mod exchange;
pub mod headers;
pub mod message;
pub mod names;
pub mod outbox;
pub mod policy;
pub mod publish;
pub mod queue;
pub mod quorum;
pub mod sac;
pub mod schedule;
pub mod stats;
pub mod stream;
pub mod super_stream;
pub mod topic;
pub mod vhost;

use crate::store::{Recovery, Store};
use auth::Auth;
use connections::Registry;
use dashmap::DashMap;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use vhost::VHost;

/// Every vhost of one broker, its users and its connections.
#[derive(Debug)]
pub struct Broker {
    vhosts: DashMap<String, Arc<VHost>>,
    pub auth: Arc<Auth>,
    pub connections: Arc<Registry>,
    store: Arc<Store>,
    /// Delayed messages of every vhost (x-delayed-message exchanges): one schedule, one
    /// timer task (started by the server with [`schedule::Scheduler::run`]).
    pub delayed: Arc<schedule::Scheduler>,
    /// Retries at-least-once discards of every vhost: one task (started by the server
    /// with [`discards::Retrier::run`]).
    pub dead_letters: Arc<discards::Retrier>,
    /// Serialises administrative operations, so that a vhost being deleted cannot be
    /// declared into meanwhile and the definitions log sees changes in the order applied.
    /// Taken before any other lock, never while holding one.
    admin: Mutex<()>,
    /// Global runtime parameters by name (`cluster_name`, `internal_cluster_id`, ...).
    globals: RwLock<BTreeMap<String, serde_json::Value>>,
    /// Message statistics of the queues of deleted vhosts, by queue type.
    pub retired_queues: stats::ByQueueType,
}

/// What the first start creates (`auth.default_*`), as RabbitMQ's `default_user`.
#[derive(Debug, Clone)]
pub struct Seed {
    pub user: String,
    pub password: String,
    pub vhost: String,
}

impl Broker {
    /// The broker as the store recovered it: vhosts with their durable exchanges, queues
    /// (and messages) and bindings; users, permissions and limits. On the very first start
    /// the default user and vhost are created (once: deleting them later is respected),
    /// unless `seed` is None: as RabbitMQ, a broker that imports definitions at start-up
    /// does not create them (see [`Broker::mark_seeded`]).
    pub fn new(seed: Option<&Seed>, store: Arc<Store>, recovery: &mut Recovery) -> Broker {
        let delayed = Arc::new(schedule::Scheduler::new(
            store.clone(),
            std::mem::take(&mut recovery.delayed),
            recovery.delayed_seq,
        ));
        let b = Broker {
            vhosts: DashMap::new(),
            auth: Arc::new(Auth::default()),
            connections: Arc::new(Registry::default()),
            store,
            delayed,
            dead_letters: Arc::default(),
            admin: Mutex::new(()),
            globals: RwLock::default(),
            retired_queues: Default::default(),
        };
        if let Some(seed) = seed
            && !recovery.definitions.seeded
        {
            for c in admin::seed_changes(seed, &recovery.definitions) {
                b.store.define(&c);
                recovery.definitions.apply(c);
            }
        }
        b.load(recovery);
        b.load_policies(recovery);
        b
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.get(name).map(|v| v.clone())
    }

    /// Every vhost, sorted by name.
    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        let mut v: Vec<_> = self.vhosts.iter().map(|v| v.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}
