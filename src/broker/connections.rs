//! Every open client connection, whatever its protocol, as the broker sees it: who it is,
//! where it is, and a way to close it (deleting its vhost or user, and later the
//! management API's DELETE).
//!
//! A connection registers after its handshake and is removed when its [`Registration`]
//! drops, so the registry never outlives the connection task.

use super::ack_timeout::Watch;
use super::consumer::ChannelLink;
use super::stats::{Activity, Counter, Counters, Mark, Sampled, SizeHistogram, Traffic};
use super::stream_clients::StreamClients;
use crate::protocol::FieldTable;
use dashmap::DashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;

/// [`ConnectionInfo::protocol`] of a stream-protocol connection.
pub const STREAM_PROTOCOL: &str = "stream";

/// What a connection settled at its handshake, for the management API.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// "AMQP 0-9-1", or "stream" (RabbitMQ's names).
    pub protocol: &'static str,
    pub auth_mechanism: String,
    pub client_properties: FieldTable,
    pub frame_max: u32,
    pub channel_max: u16,
    /// Heartbeat interval in seconds (0: none).
    pub timeout: u16,
    /// The TLS protocol version, on a TLS connection.
    pub tls: Option<String>,
    pub peer_cert_subject: Option<String>,
    pub connected_at: SystemTime,
}

impl ConnectionInfo {
    /// A connection of RabbitMQ's stream protocol.
    pub fn is_stream(&self) -> bool {
        self.protocol == STREAM_PROTOCOL
    }

    /// RabbitMQ's connection name: "peer -> local".
    pub fn name(&self) -> String {
        format!("{} -> {}", self.peer, self.local)
    }
}

#[derive(Debug)]
pub struct ConnectionEntry {
    pub id: u64,
    pub user: String,
    pub vhost: String,
    pub info: ConnectionInfo,
    /// Bytes and socket operations, counted per read and per write.
    pub traffic: Traffic,
    /// Not read from because a resource alarm stopped it while it published (the API
    /// shows it `blocked`, as RabbitMQ).
    pub blocked: std::sync::atomic::AtomicBool,
    /// Open channels (their shared part), in the order opened.
    channels: Mutex<Vec<Arc<ChannelLink>>>,
    /// A stream-protocol connection's publishers and subscriptions (empty otherwise).
    pub stream: StreamClients,
    kill: CancellationToken,
    reason: Mutex<Option<String>>,
    /// Wakes the connection's reader to look at its channels' flags (consumer timeouts).
    nudge: tokio::sync::Notify,
}

impl ConnectionEntry {
    /// Asks the connection to close with 320 CONNECTION_FORCED and `reason` as its text.
    pub fn close(&self, reason: String) {
        let mut r = self.reason.lock().unwrap();
        if r.is_none() {
            *r = Some(reason);
        }
        drop(r);
        self.kill.cancel();
    }

    pub fn add_channel(&self, link: Arc<ChannelLink>) {
        self.channels.lock().unwrap().push(link);
    }

    /// Forgets a closed channel; returns it so that its statistics can be kept.
    pub fn remove_channel(&self, id: u16) -> Option<Arc<ChannelLink>> {
        let mut v = self.channels.lock().unwrap();
        let i = v.iter().position(|l| l.id == id)?;
        Some(v.remove(i))
    }

    pub fn channels(&self) -> Vec<Arc<ChannelLink>> {
        self.channels.lock().unwrap().clone()
    }

    /// Wakes the reader: a channel of this connection has a flag to act on.
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// Resolves after [`nudge`](Self::nudge) (at once if a nudge came meanwhile).
    pub async fn nudged(&self) {
        self.nudge.notified().await
    }

    /// Resolves when [`close`](Self::close) was called; yields the reason.
    pub async fn closed(&self) -> String {
        self.kill.cancelled().await;
        self.reason.lock().unwrap().clone().unwrap_or_default()
    }
}

impl Sampled for ConnectionEntry {
    fn mark(&self) -> &Mark {
        &self.traffic.active
    }

    fn sample(&self, seconds: f64) -> bool {
        self.traffic.sample(seconds)
    }
}

impl Sampled for ChannelLink {
    fn mark(&self) -> &Mark {
        &self.stats.active
    }

    fn sample(&self, seconds: f64) -> bool {
        self.stats.sample(seconds)
    }
}

#[derive(Debug, Default)]
pub struct Registry {
    map: DashMap<u64, Arc<ConnectionEntry>>,
    /// The broker's objects whose statistics moved (the management sampler's list;
    /// vhosts share it for their queues and exchanges).
    pub activity: Arc<Activity>,
    /// Channels holding deliveries that can time out (the consumer-timeout sweeper's
    /// list).
    pub deadlines: Arc<Watch>,
    /// Statistics of channels that have closed, so that the broker's totals never go
    /// backwards.
    pub retired: Counters,
    /// Message sizes published on channels that have closed.
    pub retired_sizes: SizeHistogram,
    /// Connection and channel churn (the management API's `churn_rates`).
    pub churn: ConnectionChurn,
}

/// Connections and channels opened and closed.
#[derive(Debug, Default)]
pub struct ConnectionChurn {
    pub connection_created: Counter,
    pub connection_closed: Counter,
    pub channel_created: Counter,
    pub channel_closed: Counter,
}

impl ConnectionChurn {
    pub fn sample(&self, seconds: f64) {
        for c in [
            &self.connection_created,
            &self.connection_closed,
            &self.channel_created,
            &self.channel_closed,
        ] {
            c.sample(seconds);
        }
    }
}

/// Keeps a connection in the registry while it lives.
#[derive(Debug)]
pub struct Registration {
    pub entry: Arc<ConnectionEntry>,
    registry: Arc<Registry>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.churn.connection_closed.incr();
        self.registry.map.remove(&self.entry.id);
    }
}

impl Registry {
    pub fn register(
        self: &Arc<Self>,
        id: u64,
        user: &str,
        vhost: &str,
        info: ConnectionInfo,
    ) -> Registration {
        let entry = Arc::new(ConnectionEntry {
            id,
            user: user.to_string(),
            vhost: vhost.to_string(),
            info,
            traffic: Traffic::default(),
            blocked: Default::default(),
            channels: Mutex::new(Vec::new()),
            stream: StreamClients::default(),
            kill: CancellationToken::new(),
            reason: Mutex::new(None),
            nudge: tokio::sync::Notify::new(),
        });
        let me: std::sync::Weak<dyn Sampled> = Arc::downgrade(&entry) as _;
        entry.traffic.active.attach(&self.activity, me);
        self.churn.connection_created.incr();
        self.map.insert(id, entry.clone());
        Registration {
            entry,
            registry: self.clone(),
        }
    }

    /// Every open connection, in the order they opened.
    pub fn all(&self) -> Vec<Arc<ConnectionEntry>> {
        let mut v: Vec<_> = self.map.iter().map(|e| e.clone()).collect();
        v.sort_by_key(|e| e.id);
        v
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The open connection `id`.
    pub fn get(&self, id: u64) -> Option<Arc<ConnectionEntry>> {
        self.map.get(&id).map(|e| e.clone())
    }

    /// Ties a new channel to the broker's lists (statistics and consumer timeouts).
    pub fn new_channel(&self, link: ChannelLink) -> Arc<ChannelLink> {
        let link = Arc::new(link);
        let me: std::sync::Weak<dyn Sampled> = Arc::downgrade(&link) as _;
        link.stats.active.attach(&self.activity, me);
        link
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A channel closed: keep its statistics in the broker's totals.
    pub fn retire(&self, link: &ChannelLink) {
        self.churn.channel_closed.incr();
        self.retired.absorb(&link.stats);
        self.retired_sizes.absorb(&link.sizes);
    }

    /// Closes every connection `pick` selects, with `reason`.
    pub fn close_where(&self, pick: impl Fn(&ConnectionEntry) -> bool, reason: &str) {
        for e in self.all().into_iter().filter(|e| pick(e)) {
            e.close(reason.to_string());
        }
    }
}
