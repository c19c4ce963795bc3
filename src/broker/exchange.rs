//! Exchanges and their bindings. Each kind keeps an index suited to its routing: a hash
//! map for direct, the binding list for fanout and headers, a trie for topic, a weighted
//! ring for x-consistent-hash. An x-delayed-message exchange keeps the index of its
//! `x-delayed-type` (see `broker::delayed`).

use super::consistent_hash::{self, HashOn, Ring};
use super::dedup;
use super::delayed;
use super::headers::{self, XMatch};
use super::policy::{Applied, effective};
use super::queue::Queue;
use super::topic::TopicTrie;
use crate::protocol::{
    AmqpError, BasicProperties, EncodedProperties, FieldTable, FieldValue, ShortStr,
};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
    /// `x-consistent-hash` (the rabbitmq_consistent_hash_exchange plugin's type).
    ConsistentHash,
    /// `x-message-deduplication` (the rabbitmq-message-deduplication plugin's type):
    /// fanout, but a message whose deduplication header was seen recently goes nowhere.
    MessageDeduplication,
    /// `x-delayed-message` (the rabbitmq_delayed_message_exchange plugin's type): routes
    /// as its `x-delayed-type` once a message's `x-delay` has passed.
    Delayed,
}

impl ExchangeKind {
    pub fn parse(name: &[u8]) -> Option<ExchangeKind> {
        Some(match name {
            b"direct" => ExchangeKind::Direct,
            b"fanout" => ExchangeKind::Fanout,
            b"topic" => ExchangeKind::Topic,
            b"headers" => ExchangeKind::Headers,
            b"x-consistent-hash" => ExchangeKind::ConsistentHash,
            b"x-message-deduplication" => ExchangeKind::MessageDeduplication,
            b"x-delayed-message" => ExchangeKind::Delayed,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
            ExchangeKind::ConsistentHash => "x-consistent-hash",
            ExchangeKind::MessageDeduplication => "x-message-deduplication",
            ExchangeKind::Delayed => "x-delayed-message",
        }
    }

    /// Whether an exchange of this kind looks only at a message's first routing key (its
    /// CC and BCC keys aside), as the consistent-hash plugin does.
    pub fn first_key_only(self) -> bool {
        // (A deduplication exchange must also see each message once: a CC key would
        // otherwise make it a duplicate of itself.)
        matches!(
            self,
            ExchangeKind::ConsistentHash | ExchangeKind::MessageDeduplication
        )
    }

    /// Checks a new exchange's arguments as its type does (406).
    pub fn check_arguments(self, args: &FieldTable) -> Result<(), AmqpError> {
        match self {
            ExchangeKind::ConsistentHash => HashOn::from_args(args).map(|_| ()),
            ExchangeKind::MessageDeduplication => dedup::Settings::from_args(args).map(|_| ()),
            ExchangeKind::Delayed => delayed::underlying_kind(args)?.check_arguments(args),
            _ => Ok(()),
        }
    }
}

/// What routing may look at besides the routing key: the headers (headers exchanges,
/// `hash-header`) and the properties (`hash-property`, decoded only for such an exchange).
#[derive(Debug, Clone, Copy)]
pub struct RouteInfo<'a> {
    pub headers: Option<&'a FieldTable>,
    pub properties: Props<'a>,
}

#[derive(Debug, Clone, Copy)]
pub enum Props<'a> {
    Encoded(&'a EncodedProperties),
    Decoded(&'a BasicProperties),
}

impl<'a> RouteInfo<'a> {
    pub fn new(headers: Option<&'a FieldTable>, properties: Props<'a>) -> Self {
        RouteInfo {
            headers,
            properties,
        }
    }
}

/// Where a binding leads.
#[derive(Debug, Clone)]
pub enum Destination {
    Queue(Arc<Queue>),
    Exchange(Arc<Exchange>),
}

impl PartialEq for Destination {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Destination::Queue(a), Destination::Queue(b)) => Arc::ptr_eq(a, b),
            (Destination::Exchange(a), Destination::Exchange(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Binding {
    pub destination: Destination,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
    x_match: XMatch,
}

impl Binding {
    pub fn new(
        destination: Destination,
        routing_key: ShortStr,
        arguments: FieldTable,
        kind: ExchangeKind,
    ) -> Result<Binding, AmqpError> {
        let x_match = if kind == ExchangeKind::Headers {
            XMatch::from_args(&arguments)?
        } else {
            XMatch::All
        };
        if kind == ExchangeKind::ConsistentHash {
            consistent_hash::weight(&routing_key)?;
        }
        Ok(Binding {
            destination,
            routing_key,
            arguments,
            x_match,
        })
    }

    fn same(&self, other: &Binding) -> bool {
        self.destination == other.destination
            && self.routing_key == other.routing_key
            && self.arguments.same_entries(&other.arguments)
    }
}

#[derive(Debug, Default)]
struct Bindings {
    list: Vec<Binding>,
    direct: HashMap<ShortStr, Vec<Destination>>,
    topic: TopicTrie<Destination>,
    ring: Ring,
}

#[derive(Debug)]
pub struct Exchange {
    pub name: ShortStr,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    /// The kind whose routing this exchange uses: its own, or an x-delayed-message
    /// exchange's `x-delayed-type`.
    route_kind: ExchangeKind,
    /// Messages an x-delayed-message exchange holds scheduled (`messages_delayed`).
    pub delayed: std::sync::atomic::AtomicU64,
    /// What an x-consistent-hash exchange hashes on (from `hash-header` /
    /// `hash-property`).
    hash_on: HashOn,
    /// The recently seen header values of an x-message-deduplication exchange.
    dedup: Option<dedup::Cache>,
    bindings: RwLock<Bindings>,
    /// Message statistics (management API): publish_in, publish_out.
    pub stats: super::stats::Counters,
    /// The policies applied, and the alternate exchange they give. A leaf lock, read only
    /// when a message found no binding and the exchange has no `alternate-exchange`
    /// argument.
    policy: RwLock<ExchangePolicy>,
    /// Set once the exchange has left its vhost (deleted, or its vhost deleted): a
    /// connection's cached lookup ([`Exchange::is_removed`]) must then look the name up
    /// again. Never cleared: a redeclared exchange of the same name is a new `Exchange`.
    removed: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct ExchangePolicy {
    applied: Applied,
    alternate: Option<ShortStr>,
}

impl super::stats::Sampled for Exchange {
    fn mark(&self) -> &super::stats::Mark {
        &self.stats.active
    }

    fn sample(&self, seconds: f64) -> bool {
        self.stats.sample(seconds)
    }
}

impl Exchange {
    /// Marks the exchange as gone from its vhost's map (see `removed`).
    pub fn mark_removed(&self) {
        self.removed
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the exchange has left its vhost: a cached `Arc` of it is stale.
    #[inline]
    pub fn is_removed(&self) -> bool {
        self.removed.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn new(
        name: ShortStr,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Self {
        // Checked at declaration (and recovery skips what fails): direct if it ever fails.
        let route_kind = if kind == ExchangeKind::Delayed {
            delayed::underlying_kind(&arguments).unwrap_or(ExchangeKind::Direct)
        } else {
            kind
        };
        Self {
            name,
            kind,
            durable,
            auto_delete,
            internal,
            route_kind,
            delayed: Default::default(),
            hash_on: if route_kind == ExchangeKind::ConsistentHash {
                HashOn::from_args(&arguments).unwrap_or_default()
            } else {
                HashOn::RoutingKey
            },
            dedup: (kind == ExchangeKind::MessageDeduplication).then(|| {
                // Validated at declaration; a recovered exchange keeps what it had.
                let settings = dedup::Settings::from_args(&arguments).unwrap_or(dedup::Settings {
                    size: 1,
                    ttl_ms: None,
                    disk: false,
                });
                dedup::Cache::new(settings)
            }),
            arguments,
            removed: Default::default(),
            bindings: RwLock::default(),
            stats: Default::default(),
            policy: RwLock::default(),
        }
    }

    /// An x-message-deduplication exchange's cache.
    pub fn dedup_cache(&self) -> Option<&dedup::Cache> {
        self.dedup.as_ref()
    }

    /// The kind whose bindings and routing this exchange has (an x-delayed-message
    /// exchange's `x-delayed-type`, else its own kind).
    pub fn route_kind(&self) -> ExchangeKind {
        self.route_kind
    }

    /// The alternate exchange: the `alternate-exchange` argument when there is one, else
    /// the policy's (as RabbitMQ's `rabbit_policy:get_arg`).
    pub fn alternate(&self) -> Option<ShortStr> {
        if let Some(v) = self.arguments.get("alternate-exchange") {
            return match v {
                FieldValue::LongStr(s) => Some(ShortStr(s.0.clone())),
                _ => None,
            };
        }
        self.policy.read().unwrap().alternate.clone()
    }

    /// Applies the policies that match the exchange (at declaration, and when a policy
    /// changes).
    pub(crate) fn set_policies(&self, applied: Applied) {
        let alternate = effective::alternate_exchange(&applied);
        if let Some(cache) = &self.dedup {
            cache.apply_policy(&applied);
        }
        *self.policy.write().unwrap() = ExchangePolicy { applied, alternate };
    }

    /// The policy applied, by name (`policy` in `/api/exchanges`).
    pub fn policy(&self) -> Option<String> {
        let p = self.policy.read().unwrap();
        p.applied.policy.as_ref().map(|p| p.name().to_string())
    }

    /// The operator policy applied, by name (operator policies hold only queue settings,
    /// but may name exchanges).
    pub fn operator_policy(&self) -> Option<String> {
        let p = self.policy.read().unwrap();
        p.applied.operator.as_ref().map(|p| p.name().to_string())
    }

    /// Both policies' definitions merged (`{}` without policies).
    pub fn effective_policy_definition(&self) -> serde_json::Value {
        let p = self.policy.read().unwrap();
        serde_json::Value::Object(p.applied.effective_definition())
    }

    /// Adds a binding; false when an identical one exists.
    pub fn bind(&self, b: Binding) -> bool {
        let mut bs = self.bindings.write().unwrap();
        if bs.list.iter().any(|x| x.same(&b)) {
            return false;
        }
        match self.route_kind {
            ExchangeKind::Direct => bs
                .direct
                .entry(b.routing_key.clone())
                .or_default()
                .push(b.destination.clone()),
            ExchangeKind::Topic => bs
                .topic
                .insert(b.routing_key.as_bytes(), b.destination.clone()),
            ExchangeKind::ConsistentHash => {
                let weight = consistent_hash::weight(&b.routing_key).unwrap_or(1);
                bs.ring.add(&b.destination, weight)
            }
            ExchangeKind::Fanout
            | ExchangeKind::Headers
            | ExchangeKind::MessageDeduplication
            | ExchangeKind::Delayed => {}
        }
        bs.list.push(b);
        true
    }

    /// Whether an identical binding exists.
    pub fn has_binding(&self, b: &Binding) -> bool {
        self.bindings.read().unwrap().list.iter().any(|x| x.same(b))
    }

    /// Removes a binding; false when there was none.
    pub fn unbind(&self, b: &Binding) -> bool {
        let mut bs = self.bindings.write().unwrap();
        let Some(pos) = bs.list.iter().position(|x| x.same(b)) else {
            return false;
        };
        let removed = bs.list.remove(pos);
        Self::unindex(&mut bs, self.route_kind, &removed);
        true
    }

    fn unindex(bs: &mut Bindings, kind: ExchangeKind, b: &Binding) {
        match kind {
            ExchangeKind::Direct => {
                if let Some(v) = bs.direct.get_mut(&b.routing_key) {
                    if let Some(p) = v.iter().position(|d| *d == b.destination) {
                        v.remove(p);
                    }
                    if v.is_empty() {
                        bs.direct.remove(&b.routing_key);
                    }
                }
            }
            ExchangeKind::Topic => bs.topic.remove(b.routing_key.as_bytes(), &b.destination),
            ExchangeKind::ConsistentHash => bs.ring.remove(&b.destination),
            ExchangeKind::Fanout
            | ExchangeKind::Headers
            | ExchangeKind::MessageDeduplication
            | ExchangeKind::Delayed => {}
        }
    }

    /// Removes every binding to `dest`; returns whether any was removed.
    pub fn remove_destination(&self, dest: &Destination) -> bool {
        let mut bs = self.bindings.write().unwrap();
        let (gone, kept): (Vec<Binding>, Vec<Binding>) = std::mem::take(&mut bs.list)
            .into_iter()
            .partition(|b| b.destination == *dest);
        bs.list = kept;
        for b in &gone {
            Self::unindex(&mut bs, self.route_kind, b);
        }
        !gone.is_empty()
    }

    /// A copy of every binding from this exchange, in the order they were added (for
    /// export and the management API; the bindings lock is held only while copying).
    pub fn bindings(&self) -> Vec<Binding> {
        self.bindings.read().unwrap().list.clone()
    }

    pub fn has_bindings(&self) -> bool {
        !self.bindings.read().unwrap().list.is_empty()
    }

    /// Calls `f` with each destination the message matches (possibly repeated).
    pub fn route(&self, routing_key: &[u8], info: RouteInfo<'_>, f: &mut impl FnMut(&Destination)) {
        let headers = info.headers;
        // Decoded only for an exchange that hashes on a property.
        let decoded;
        let properties = match info.properties {
            Props::Decoded(p) => Some(p),
            Props::Encoded(e) if self.hash_on.needs_properties() => {
                decoded = e.decode().ok();
                decoded.as_ref()
            }
            Props::Encoded(_) => None,
        };
        let bs = self.bindings.read().unwrap();
        match self.route_kind {
            ExchangeKind::Direct => {
                if let Some(v) = bs.direct.get(routing_key) {
                    v.iter().for_each(&mut *f);
                }
            }
            ExchangeKind::Fanout => bs.list.iter().for_each(|b| f(&b.destination)),
            ExchangeKind::MessageDeduplication => {
                if self.dedup.as_ref().is_none_or(|c| c.admit(headers)) {
                    bs.list.iter().for_each(|b| f(&b.destination))
                }
            }
            ExchangeKind::Topic => bs.topic.matches(routing_key, f),
            ExchangeKind::Headers => {
                for b in &bs.list {
                    if headers::matches(b.x_match, &b.arguments, headers) {
                        f(&b.destination);
                    }
                }
            }
            ExchangeKind::ConsistentHash => {
                let key =
                    consistent_hash::message_key(&self.hash_on, routing_key, headers, properties);
                if let Some(d) = bs.ring.pick(key) {
                    f(d)
                }
            }
            // Never a route kind (`x-delayed-type` cannot name it).
            ExchangeKind::Delayed => {}
        }
    }
}
