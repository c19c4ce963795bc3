//! A virtual host: its exchanges, queues and bindings, and the operations AMQP performs on
//! them, with RabbitMQ's checks and reply texts.

use super::args::{QueueArgs, STREAM_ARGS, VALIDATION_ORDER};
use super::auth::{Access, Perm, ResourceKind};
use super::consumer::Consumer;
use super::discards::Retrier;
use super::exchange::{Binding, Destination, Exchange, ExchangeKind, RouteInfo};
use super::names;
use super::outbox::Bells;
use super::policy::{Target, VHostPolicies};
use super::queue::Queue;
use super::schedule::Scheduler;
use super::stats::{Activity, Sampled};
use crate::protocol::{
    AmqpError, BasicCancel, FieldTable, FieldValue, Method, ShortStr, encode_method, reply_code,
};
use crate::store::definitions::VHostDef;
use crate::store::definitions::{BindingDef, Change, ExchangeDef, QueueDef};
use crate::store::{Recovery, Store};
use dashmap::DashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock, Weak};

#[derive(Debug)]
pub struct VHost {
    pub name: String,
    exchanges: DashMap<ShortStr, Arc<Exchange>>,
    queues: DashMap<ShortStr, Arc<Queue>>,
    /// Direct reply-to consumers by their reply address (`amq.rabbitmq.reply-to.<token>`).
    pub direct_reply: DashMap<ShortStr, Arc<Consumer>>,
    /// Where durable definitions and queue logs go.
    pub store: Arc<Store>,
    /// Description, tags and limits, as stored.
    def: RwLock<VHostDef>,
    /// Client connections open to this vhost now (for `max-connections`).
    pub connections: AtomicU64,
    /// Queues declared, created and deleted (the management API's churn rates).
    pub churn: super::stats::QueueChurn,
    /// Message statistics of the vhost's deleted queues, by queue type (Prometheus'
    /// `rabbitmq_global_*` counters never go backwards).
    pub retired: super::stats::ByQueueType,
    /// Its policies and operator policies. Read (briefly) by declarations, under the map
    /// shard they insert into; written by the administrative operations, which hold no
    /// other lock then and re-apply after releasing it (see `policy::apply`).
    pub(crate) policies: RwLock<VHostPolicies>,
    /// The broker's schedule of delayed messages (x-delayed-message exchanges).
    pub delayed: Arc<Scheduler>,
    /// Single active consumer groups of the vhost's streams (stream protocol).
    pub sac: super::sac::Coordinator,
    /// The broker's retrier of at-least-once discards: told when this vhost's topology
    /// changes (`broker::discards`).
    pub dead_letters: Arc<Retrier>,
    /// The broker's list of objects whose statistics moved (`broker::stats`): the
    /// vhost's queues and exchanges join it at their first event of an interval.
    pub activity: Arc<Activity>,
}

/// The pseudo-queue of RabbitMQ's direct reply-to.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// What an exchange.declare asks for.
pub struct ExchangeSpec<'a> {
    pub name: &'a ShortStr,
    pub kind: &'a ShortStr,
    pub passive: bool,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: &'a FieldTable,
    /// The declaring user's permissions, checked at RabbitMQ's points (None: trusted).
    pub access: Option<&'a mut Access>,
}

/// What a queue.declare asks for.
pub struct QueueSpec<'a> {
    pub name: &'a ShortStr,
    pub passive: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: &'a FieldTable,
    pub connection: u64,
    /// The declaring user's permissions, checked at RabbitMQ's points (None: trusted).
    pub access: Option<&'a mut Access>,
}

fn default_exchange_refused() -> AmqpError {
    AmqpError::channel(
        reply_code::ACCESS_REFUSED,
        "operation not permitted on the default exchange",
    )
}

fn precondition(text: String) -> AmqpError {
    AmqpError::channel(reply_code::PRECONDITION_FAILED, text)
}

impl VHost {
    /// A vhost with the default exchange and the predeclared `amq.*` exchanges.
    pub fn new(
        name: &str,
        store: Arc<Store>,
        delayed: Arc<Scheduler>,
        dead_letters: Arc<Retrier>,
        activity: Arc<Activity>,
    ) -> VHost {
        let v = VHost {
            name: name.to_string(),
            exchanges: DashMap::new(),
            queues: DashMap::new(),
            direct_reply: DashMap::new(),
            store,
            def: RwLock::new(VHostDef {
                name: name.to_string(),
                description: String::new(),
                tags: Vec::new(),
                limits: Vec::new(),
            }),
            connections: AtomicU64::new(0),
            churn: Default::default(),
            retired: Default::default(),
            policies: RwLock::default(),
            delayed,
            sac: Default::default(),
            dead_letters,
            activity,
        };
        for (n, k) in [
            ("", ExchangeKind::Direct),
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
            // RabbitMQ's firehose tracer publishes here; clients may not.
            ("amq.rabbitmq.trace", ExchangeKind::Topic),
        ] {
            let name = ShortStr::from(n);
            let internal = n == "amq.rabbitmq.trace";
            let e = v.track_exchange(Exchange::new(
                name.clone(),
                k,
                true,
                false,
                internal,
                FieldTable::new(),
            ));
            v.exchanges.insert(name, e);
        }
        v
    }

    /// Shares a new exchange and ties its statistics to the broker's sampler.
    fn track_exchange(&self, e: Exchange) -> Arc<Exchange> {
        let e = Arc::new(e);
        let me: Weak<dyn Sampled> = Arc::downgrade(&e) as _;
        e.stats.active.attach(&self.activity, me);
        e
    }

    /// Shares a new queue and ties its statistics to the broker's sampler.
    fn track_queue(&self, q: Queue) -> Arc<Queue> {
        let q = Arc::new(q);
        let me: Weak<dyn Sampled> = Arc::downgrade(&q) as _;
        q.stats.active.attach(&self.activity, me);
        q
    }

    /// Description, tags and limits.
    pub fn def(&self) -> VHostDef {
        self.def.read().unwrap().clone()
    }

    pub fn set_def(&self, def: VHostDef) {
        *self.def.write().unwrap() = def;
    }

    /// A limit of this vhost (`max-connections`, `max-queues`).
    pub fn limit(&self, name: &str) -> super::auth::Limit {
        super::admin::limit(&self.def.read().unwrap().limits, name)
    }

    /// Every exchange (the default and `amq.*` ones included), sorted by name: a snapshot
    /// for export and the management API (one clone of each `Arc`, no lock held after).
    pub fn exchanges(&self) -> Vec<Arc<Exchange>> {
        let mut v: Vec<_> = self.exchanges.iter().map(|e| e.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Every queue, sorted by name: a snapshot, as [`VHost::exchanges`].
    pub fn queues(&self) -> Vec<Arc<Queue>> {
        let mut v: Vec<_> = self.queues.iter().map(|q| q.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Number of queues, for `max-queues` and the management API.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// The vhost was deleted: removes every queue with its messages and files (consumers
    /// are cancelled), and every exchange.
    pub fn destroy(&self) {
        let queues: Vec<_> = self.queues.iter().map(|q| q.clone()).collect();
        for q in queues {
            self.remove_queue(&q);
        }
        let delayed: Vec<_> = self
            .exchanges
            .iter()
            .filter(|e| e.kind == ExchangeKind::Delayed)
            .map(|e| e.clone())
            .collect();
        for e in delayed {
            self.delayed.forget(self, &e);
        }
        for e in self.exchanges.iter() {
            e.mark_removed();
        }
        self.exchanges.clear();
        self.direct_reply.clear();
    }

    fn no_exchange(&self, name: &ShortStr) -> AmqpError {
        AmqpError::channel(
            reply_code::NOT_FOUND,
            format!("no exchange '{name}' in vhost '{}'", self.name),
        )
    }

    fn no_queue(&self, name: &ShortStr) -> AmqpError {
        AmqpError::channel(
            reply_code::NOT_FOUND,
            format!("no queue '{name}' in vhost '{}'", self.name),
        )
    }

    fn locked(&self, name: &ShortStr) -> AmqpError {
        AmqpError::channel(
            reply_code::RESOURCE_LOCKED,
            format!(
                "cannot obtain exclusive access to locked queue '{name}' in vhost '{}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
                self.name
            ),
        )
    }

    fn inequivalent(
        &self,
        what: &str,
        name: &ShortStr,
        arg: &str,
        got: &str,
        have: &str,
    ) -> AmqpError {
        precondition(format!(
            "inequivalent arg '{arg}' for {what} '{name}' in vhost '{}': received '{got}' but current is '{have}'",
            self.name
        ))
    }

    pub fn exchange(&self, name: &[u8]) -> Option<Arc<Exchange>> {
        self.exchanges.get(name).map(|e| e.clone())
    }

    /// Looks up an exchange for publishing or binding: 404 when missing.
    pub fn existing_exchange(&self, name: &ShortStr) -> Result<Arc<Exchange>, AmqpError> {
        self.exchange(name.as_bytes())
            .ok_or_else(|| self.no_exchange(name))
    }

    pub fn declare_exchange(&self, spec: ExchangeSpec) -> Result<(), AmqpError> {
        let mut spec = spec;
        if spec.name.is_empty() {
            return Err(default_exchange_refused());
        }
        if spec.passive {
            return self.existing_exchange(spec.name).map(|_| ());
        }
        let Some(kind) = ExchangeKind::parse(spec.kind.as_bytes()) else {
            // RabbitMQ: '' names a type it knows of but has no module for.
            let problem = if spec.kind.is_empty() {
                "invalid"
            } else {
                "unknown"
            };
            return Err(AmqpError::connection(
                reply_code::COMMAND_INVALID,
                format!("{problem} exchange type '{}'", spec.kind),
            ));
        };
        // RabbitMQ's order: type, default exchange, configure, then a new exchange's
        // name, its alternate-exchange's type and the read/write checks it brings.
        let exists = self.exchange(spec.name.as_bytes()).is_some();
        if let Some(a) = spec.access.as_deref_mut() {
            a.check(
                Perm::Configure,
                ResourceKind::Exchange,
                spec.name.as_bytes(),
            )?;
        }
        if spec.name.as_bytes().starts_with(b"amq.") && !exists {
            return Err(AmqpError::channel(
                reply_code::ACCESS_REFUSED,
                format!(
                    "exchange name '{}' contains reserved prefix 'amq.*'",
                    spec.name
                ),
            ));
        }
        // A new exchange's alternate-exchange must be a string (an existing exchange is
        // only checked for equivalence).
        if let Some(ae) = spec.arguments.get("alternate-exchange")
            && !matches!(ae, FieldValue::LongStr(_))
            && self.exchange(spec.name.as_bytes()).is_none()
        {
            return Err(precondition(format!(
                "invalid type '{}' for arg 'alternate-exchange' in exchange '{}' in vhost '{}'",
                type_name(ae),
                spec.name,
                self.name
            )));
        }
        if !exists
            && let Some(ae) = spec
                .arguments
                .get("alternate-exchange")
                .and_then(|v| v.as_str())
            && let Some(a) = spec.access.as_deref_mut()
        {
            a.check(Perm::Read, ResourceKind::Exchange, spec.name.as_bytes())?;
            a.check(Perm::Write, ResourceKind::Exchange, ae.as_bytes())?;
        }
        if !exists {
            kind.check_arguments(spec.arguments)?;
        }
        let mut created = false;
        let existing = self
            .exchanges
            .entry(spec.name.clone())
            .or_insert_with(|| {
                created = true;
                let e = Exchange::new(
                    spec.name.clone(),
                    kind,
                    spec.durable,
                    spec.auto_delete,
                    spec.internal,
                    spec.arguments.clone(),
                );
                e.set_policies(self.policies_for(Target::Exchange, spec.name.as_bytes()));
                if spec.durable {
                    self.persist_dedup_cache(&e, Vec::new());
                }
                self.track_exchange(e)
            })
            .clone();
        if created {
            // A discard may route through it now.
            self.dead_letters.topology_changed();
        }
        if created && spec.durable {
            self.store.define(&Change::Exchange(ExchangeDef {
                vhost: ShortStr::from(self.name.as_str()),
                name: spec.name.clone(),
                kind: ShortStr::from(kind.name()),
                auto_delete: spec.auto_delete,
                internal: spec.internal,
                arguments: spec.arguments.clone(),
            }));
        }
        let eq = |arg, got: bool, have: bool| {
            if got != have {
                Err(self.inequivalent(
                    "exchange",
                    spec.name,
                    arg,
                    &got.to_string(),
                    &have.to_string(),
                ))
            } else {
                Ok(())
            }
        };
        if existing.kind != kind {
            return Err(self.inequivalent(
                "exchange",
                spec.name,
                "type",
                kind.name(),
                existing.kind.name(),
            ));
        }
        eq("durable", spec.durable, existing.durable)?;
        eq("auto_delete", spec.auto_delete, existing.auto_delete)?;
        eq("internal", spec.internal, existing.internal)?;
        check_args(
            "exchange",
            spec.name,
            &self.name,
            spec.arguments,
            &existing.arguments,
            &["alternate-exchange"],
        )
    }

    pub fn delete_exchange(&self, name: &ShortStr, if_unused: bool) -> Result<(), AmqpError> {
        if name.is_empty() {
            return Err(default_exchange_refused());
        }
        if name.as_bytes().starts_with(b"amq.") {
            return Err(AmqpError::channel(
                reply_code::ACCESS_REFUSED,
                format!(
                    "deletion of system exchange '{name}' in vhost '{}' not allowed",
                    self.name
                ),
            ));
        }
        let Some(ex) = self.exchange(name.as_bytes()) else {
            return Ok(());
        };
        if if_unused && ex.has_bindings() {
            return Err(precondition(format!(
                "exchange '{name}' in vhost '{}' in use",
                self.name
            )));
        }
        self.exchanges.remove(name.as_bytes());
        ex.mark_removed();
        self.forget_exchange(&ex);
        self.remove_destination(&Destination::Exchange(ex));
        Ok(())
    }

    /// Removes every binding to `dest`, then auto-deletes exchanges left without bindings.
    fn remove_destination(&self, dest: &Destination) {
        let emptied: Vec<Arc<Exchange>> = self
            .exchanges
            .iter()
            .filter(|e| e.remove_destination(dest) && e.auto_delete && !e.has_bindings())
            .map(|e| e.clone())
            .collect();
        for e in emptied {
            self.auto_delete_exchange(&e);
        }
    }

    fn auto_delete_exchange(&self, e: &Arc<Exchange>) {
        if self
            .exchanges
            .remove_if(&e.name, |_, v| Arc::ptr_eq(v, e) && !v.has_bindings())
            .is_some()
        {
            self.forget_exchange(e);
            self.remove_destination(&Destination::Exchange(e.clone()));
        }
    }

    fn forget_exchange(&self, e: &Exchange) {
        if e.kind == ExchangeKind::Delayed {
            self.delayed.forget(self, e);
        }
        if let Some(cache) = e.dedup_cache() {
            cache.delete();
        }
        if e.durable {
            self.store.define(&Change::DeleteExchange {
                vhost: ShortStr::from(self.name.as_str()),
                name: e.name.clone(),
            });
        }
    }

    /// Whether a binding between these ends is durable (kept across restarts).
    fn durable_binding(source: &Exchange, destination: &Destination) -> Option<BindingDef> {
        let (to_queue, name) = match destination {
            Destination::Queue(q) if q.is_durable_definition() => (true, q.name.clone()),
            Destination::Exchange(e) if e.durable => (false, e.name.clone()),
            _ => return None,
        };
        source.durable.then(|| BindingDef {
            vhost: ShortStr::from(""),
            source: source.name.clone(),
            to_queue,
            destination: name,
            routing_key: ShortStr::from(""),
            arguments: FieldTable::new(),
        })
    }

    pub fn queue(&self, name: &[u8]) -> Option<Arc<Queue>> {
        self.queues.get(name).map(|q| q.clone())
    }

    /// Looks up a queue that `connection` may use: 404 when missing, 405 when exclusive
    /// to another connection.
    pub fn existing_queue(
        &self,
        name: &ShortStr,
        connection: u64,
    ) -> Result<Arc<Queue>, AmqpError> {
        let q = self
            .queue(name.as_bytes())
            .ok_or_else(|| self.no_queue(name))?;
        if !q.accessible_by(connection) {
            return Err(self.locked(name));
        }
        Ok(q)
    }

    /// Declares a queue; returns it with its message and consumer counts.
    pub fn declare_queue(
        self: &Arc<Self>,
        spec: QueueSpec,
    ) -> Result<(Arc<Queue>, u32, u32), AmqpError> {
        let mut spec = spec;
        if spec.passive {
            let q = self.existing_queue(spec.name, spec.connection)?;
            q.touch();
            let (m, c) = q.counts();
            return Ok((q, m, c));
        }
        let name = if spec.name.is_empty() {
            // Quorum queues and streams need a name chosen by the client (RabbitMQ's
            // `is_server_named_allowed`).
            let kind = spec.arguments.get("x-queue-type").and_then(|v| v.as_str());
            let module = match kind.as_ref().map(|k| k.as_bytes()) {
                Some(b"quorum") => Some("rabbit_quorum_queue"),
                Some(b"stream") => Some("rabbit_stream_queue"),
                _ => None,
            };
            if let Some(module) = module {
                return Err(precondition(format!(
                    "Cannot declare a server-named queue for type {module}"
                )));
            }
            ShortStr::from(names::queue_name())
        } else {
            if spec.name.as_bytes().starts_with(b"amq.") {
                return Err(AmqpError::channel(
                    reply_code::ACCESS_REFUSED,
                    format!(
                        "queue name '{}' contains reserved prefix 'amq.*'",
                        spec.name
                    ),
                ));
            }
            spec.name.clone()
        };
        // RabbitMQ checks configure on the (generated) name, then, for a new queue with a
        // dead-letter exchange, read on the queue and write on that exchange.
        let exists = self.queue(name.as_bytes()).is_some();
        if let Some(a) = spec.access.as_deref_mut() {
            a.check(Perm::Configure, ResourceKind::Queue, name.as_bytes())?;
            if !exists
                && let Some(dlx) = spec
                    .arguments
                    .get("x-dead-letter-exchange")
                    .and_then(|v| v.as_str())
            {
                a.check(Perm::Read, ResourceKind::Queue, name.as_bytes())?;
                a.check(Perm::Write, ResourceKind::Exchange, dlx.as_bytes())?;
            }
        }
        let owner = spec.exclusive.then_some(spec.connection);
        // As RabbitMQ: an exclusive queue is never durable, whatever the flag says.
        let durable = spec.durable && !spec.exclusive;
        // An existing queue is checked for equivalence (below) before the arguments are
        // validated, as RabbitMQ does; a new one is validated first.
        let args = match self.queue(name.as_bytes()) {
            Some(_) => QueueArgs::default(),
            None => {
                let args = QueueArgs::parse(spec.arguments, &name, &self.name)?;
                args.queue_type.check_properties(
                    &name,
                    &self.name,
                    durable,
                    spec.exclusive,
                    spec.auto_delete,
                )?;
                args
            }
        };
        if self.queue(name.as_bytes()).is_none() {
            let max = self.limit("max-queues");
            if max.reached(self.queues.len() as u64) {
                return Err(precondition(format!(
                    "cannot declare queue '{name}': queue limit in vhost '{}' ({}) is reached",
                    self.name,
                    max.0.unwrap_or(0)
                )));
            }
        }
        let mut created = false;
        let q = self
            .queues
            .entry(name.clone())
            .or_insert_with(|| {
                created = true;
                let target = Target::Queue(args.queue_type);
                let quorum_log = args.queue_type.always_persistent();
                self.track_queue(
                    Queue::new(
                        name.clone(),
                        durable,
                        owner,
                        spec.auto_delete,
                        spec.arguments.clone(),
                        args,
                        Arc::downgrade(self),
                        self.store.new_log(quorum_log),
                        self.store.paging_threshold,
                    )
                    .with_stream(&self.store)
                    .with_policies(self.policies_for(target, name.as_bytes())),
                )
            })
            .clone();
        self.churn.declared.incr();
        if created {
            self.churn.created.incr();
            if q.is_durable_definition() {
                self.store.define(&Change::Queue(QueueDef {
                    vhost: ShortStr::from(self.name.as_str()),
                    name: name.clone(),
                    log_id: q.log.id,
                    auto_delete: q.auto_delete,
                    arguments: q.arguments.clone(),
                }));
            }
            q.start_timer_if_needed();
            // The default exchange routes to it now.
            self.dead_letters.topology_changed();
        } else {
            q.touch();
        }
        if !q.accessible_by(spec.connection) || q.exclusive_owner.is_some() != spec.exclusive {
            return Err(self.locked(&name));
        }
        if q.durable != durable {
            return Err(self.inequivalent(
                "queue",
                &name,
                "durable",
                &durable.to_string(),
                &q.durable.to_string(),
            ));
        }
        if q.auto_delete != spec.auto_delete {
            return Err(self.inequivalent(
                "queue",
                &name,
                "auto_delete",
                &spec.auto_delete.to_string(),
                &q.auto_delete.to_string(),
            ));
        }
        check_args(
            "queue",
            &name,
            &self.name,
            spec.arguments,
            &q.arguments,
            &[],
        )?;
        let (m, c) = q.counts();
        // The default exchange binds every queue by name.
        Ok((q, m, c))
    }

    /// Deletes a queue: unbinds it, cancels its consumers (notifying their channels), and
    /// returns how many ready messages it held.
    pub fn delete_queue(
        &self,
        name: &ShortStr,
        if_unused: bool,
        if_empty: bool,
        connection: u64,
    ) -> Result<u32, AmqpError> {
        let Some(q) = self.queue(name.as_bytes()) else {
            return Ok(0);
        };
        if !q.accessible_by(connection) {
            return Err(self.locked(name));
        }
        let (m, c) = q.delete_counts();
        if if_unused && c > 0 {
            return Err(precondition(format!(
                "queue '{name}' in vhost '{}' in use",
                self.name
            )));
        }
        if if_empty && m > 0 {
            return Err(precondition(format!(
                "queue '{name}' in vhost '{}' not empty",
                self.name
            )));
        }
        Ok(self.remove_queue(&q))
    }

    /// Removes a queue unconditionally (exclusive owner gone, auto-delete, queue.delete).
    pub fn remove_queue(&self, q: &Arc<Queue>) -> u32 {
        if self
            .queues
            .remove_if(&q.name, |_, v| Arc::ptr_eq(v, q))
            .is_none()
        {
            return 0;
        }
        if q.is_durable_definition() {
            self.store.define(&Change::DeleteQueue {
                vhost: ShortStr::from(self.name.as_str()),
                name: q.name.clone(),
            });
        }
        self.churn.deleted.incr();
        self.retired.0[q.args.queue_type as usize].absorb(&q.stats);
        let (count, consumers) = q.mark_deleted();
        self.remove_destination(&Destination::Queue(q.clone()));
        let mut bells = Bells::default();
        for c in consumers {
            notify_cancel(&c, &mut bells);
        }
        count
    }

    pub fn bind(
        &self,
        source: &ShortStr,
        destination: Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> Result<(), AmqpError> {
        if source.is_empty() {
            return Err(default_exchange_refused());
        }
        let ex = self.existing_exchange(source)?;
        let def = Self::durable_binding(&ex, &destination);
        let b = Binding::new(
            destination,
            routing_key.clone(),
            arguments.clone(),
            ex.route_kind(),
        )?;
        if ex.bind(b) {
            self.dead_letters.topology_changed();
            if let Some(mut def) = def {
                def.vhost = ShortStr::from(self.name.as_str());
                def.routing_key = routing_key.clone();
                def.arguments = arguments.clone();
                self.store.define(&Change::Bind(def));
            }
        }
        Ok(())
    }

    /// RabbitMQ's first check on every bind and unbind: neither end may be the default
    /// exchange (`destination` is None when it is a queue).
    pub fn check_binding_ends(
        &self,
        source: &ShortStr,
        destination: Option<&ShortStr>,
    ) -> Result<(), AmqpError> {
        if source.is_empty() || destination.is_some_and(|d| d.is_empty()) {
            return Err(default_exchange_refused());
        }
        Ok(())
    }

    /// Removes a binding. A missing source or binding is no error; `access` runs only
    /// when the binding exists (RabbitMQ checks exclusive access then).
    pub fn unbind(
        &self,
        source: &ShortStr,
        destination: Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
        access: impl FnOnce() -> Result<(), AmqpError>,
    ) -> Result<(), AmqpError> {
        if source.is_empty() {
            return Err(default_exchange_refused());
        }
        let Some(ex) = self.exchange(source.as_bytes()) else {
            return Ok(());
        };
        let def = Self::durable_binding(&ex, &destination);
        let Ok(b) = Binding::new(
            destination,
            routing_key.clone(),
            arguments.clone(),
            ex.route_kind(),
        ) else {
            return Ok(());
        };
        if !ex.has_binding(&b) {
            return Ok(());
        }
        access()?;
        if ex.unbind(&b) {
            if let Some(mut def) = def {
                def.vhost = ShortStr::from(self.name.as_str());
                def.routing_key = routing_key.clone();
                def.arguments = arguments.clone();
                self.store.define(&Change::Unbind(def));
            }
            if ex.auto_delete && !ex.has_bindings() {
                self.auto_delete_exchange(&ex);
            }
        }
        Ok(())
    }

    /// Finds the queues a message published to `exchange` reaches: through
    /// exchange-to-exchange bindings and alternate exchanges, each queue once.
    /// `keys` holds the routing key followed by any CC/BCC keys.
    pub fn route(
        &self,
        exchange: &Arc<Exchange>,
        keys: &[&[u8]],
        info: RouteInfo<'_>,
        out: &mut Vec<Arc<Queue>>,
    ) {
        let mut visited: Vec<*const Exchange> = Vec::new();
        self.route_into(exchange, keys, info, out, &mut visited, None);
    }

    /// [`VHost::route`] for a publish: an x-delayed-message exchange reached by a message
    /// with a positive `x-delay` routes nothing now, and is listed in `delayed` with the
    /// delay for the caller to schedule (the plugin's `route/2` returning no queues).
    /// Plain `route` (dead-lettering, a due message) routes such exchanges at once.
    pub fn route_delaying(
        &self,
        exchange: &Arc<Exchange>,
        keys: &[&[u8]],
        info: RouteInfo<'_>,
        out: &mut Vec<Arc<Queue>>,
        delayed: &mut Vec<(Arc<Exchange>, u64)>,
    ) {
        let mut visited: Vec<*const Exchange> = Vec::new();
        self.route_into(exchange, keys, info, out, &mut visited, Some(delayed));
    }

    fn route_into(
        &self,
        exchange: &Arc<Exchange>,
        keys: &[&[u8]],
        info: RouteInfo<'_>,
        out: &mut Vec<Arc<Queue>>,
        visited: &mut Vec<*const Exchange>,
        mut delayed: Option<&mut Vec<(Arc<Exchange>, u64)>>,
    ) {
        if visited.contains(&Arc::as_ptr(exchange)) {
            return;
        }
        visited.push(Arc::as_ptr(exchange));
        if exchange.kind == ExchangeKind::Delayed
            && let Some(d) = delayed.as_deref_mut()
            && let Some(ms) = super::delayed::delay_of(info.headers)
        {
            d.push((exchange.clone(), ms));
            return;
        }
        let before = out.len();
        if exchange.name.is_empty() {
            for k in keys {
                if let Some(q) = self.queue(k) {
                    push_unique(out, q);
                }
            }
        } else {
            let mut next: Vec<Arc<Exchange>> = Vec::new();
            let keys_here = if exchange.route_kind().first_key_only() {
                &keys[..keys.len().min(1)]
            } else {
                keys
            };
            for k in keys_here {
                exchange.route(k, info, &mut |d| match d {
                    Destination::Queue(q) => push_unique(out, q.clone()),
                    Destination::Exchange(e) => {
                        if !next.iter().any(|x| Arc::ptr_eq(x, e)) {
                            next.push(e.clone());
                        }
                    }
                });
            }
            for e in next {
                self.route_into(&e, keys, info, out, visited, delayed.as_deref_mut());
            }
        }
        if out.len() == before
            && let Some(ae) = exchange.alternate()
            && let Some(ae) = self.exchange(ae.as_bytes())
        {
            self.route_into(&ae, keys, info, out, visited, delayed);
        }
    }

    /// Recreates this vhost's durable exchanges, queues (with their messages) and bindings
    /// from what the store recovered.
    pub fn recover(self: &Arc<Self>, recovery: &mut Recovery) {
        let defs = &recovery.definitions;
        let mine = |v: &ShortStr| v.as_bytes() == self.name.as_bytes();
        for e in defs.exchanges.iter().filter(|e| mine(&e.vhost)) {
            let Some(kind) = ExchangeKind::parse(e.kind.as_bytes()) else {
                continue;
            };
            let ex = Exchange::new(
                e.name.clone(),
                kind,
                true,
                e.auto_delete,
                e.internal,
                e.arguments.clone(),
            );
            let key = (self.name.clone(), e.name.as_bytes().to_vec());
            let seen = recovery.dedup.remove(&key).unwrap_or_default();
            self.persist_dedup_cache(&ex, seen);
            self.exchanges
                .insert(e.name.clone(), self.track_exchange(ex));
        }
        for d in defs.queues.iter().filter(|q| mine(&q.vhost)) {
            let args = QueueArgs::parse(&d.arguments, &d.name, &self.name).unwrap_or_default();
            let quorum_log = args.queue_type.always_persistent();
            let q = self.track_queue(
                Queue::new(
                    d.name.clone(),
                    true,
                    None,
                    d.auto_delete,
                    d.arguments.clone(),
                    args,
                    Arc::downgrade(self),
                    self.store.log_with_id(d.log_id, quorum_log),
                    self.store.paging_threshold,
                )
                .with_stream(&self.store),
            );
            if let Some(rq) = recovery.queues.remove(&d.log_id) {
                q.recover(rq);
                if q.has_discards() {
                    // Retried on the retrier's first pass, after every vhost is up.
                    self.dead_letters.register(&q);
                }
            }
            q.start_timer_if_needed();
            self.queues.insert(d.name.clone(), q);
        }
        for b in defs.bindings.iter().filter(|b| mine(&b.vhost)) {
            let Some(ex) = self.exchange(b.source.as_bytes()) else {
                continue;
            };
            let dest = if b.to_queue {
                self.queue(b.destination.as_bytes()).map(Destination::Queue)
            } else {
                self.exchange(b.destination.as_bytes())
                    .map(Destination::Exchange)
            };
            if let Some(dest) = dest
                && let Ok(binding) = Binding::new(
                    dest,
                    b.routing_key.clone(),
                    b.arguments.clone(),
                    ex.route_kind(),
                )
            {
                ex.bind(binding);
            }
        }
    }

    /// Keeps a durable deduplication exchange's cache on disk when it asks for it
    /// (`x-cache-persistence: disk`), starting from `seen` (what recovery found).
    fn persist_dedup_cache(&self, e: &Exchange, seen: Vec<(u128, u64)>) {
        if let Some(cache) = e.dedup_cache()
            && cache.wants_disk()
        {
            let store = &self.store;
            cache.persist(seen, |entries| {
                store.dedup_log(&self.name, e.name.as_bytes(), entries)
            });
        }
    }

    /// Every queue owned by `connection` (exclusive), to delete when it closes.
    pub fn exclusive_queues_of(&self, connection: u64) -> Vec<Arc<Queue>> {
        self.queues
            .iter()
            .filter(|q| q.exclusive_owner == Some(connection))
            .map(|q| q.clone())
            .collect()
    }
}

fn push_unique(out: &mut Vec<Arc<Queue>>, q: Arc<Queue>) {
    if !out.iter().any(|x| Arc::ptr_eq(x, &q)) {
        out.push(q);
    }
}

/// Server-sent basic.cancel: the consumer's queue is gone (consumer_cancel_notify).
pub fn notify_cancel(c: &Arc<Consumer>, bells: &mut Bells) {
    let link = &c.channel;
    let mut d = link.deliveries.lock().unwrap();
    let before = d.consumers.len();
    d.consumers.retain(|e| !Arc::ptr_eq(&e.consumer, c));
    if d.consumers.len() != before && !d.closed && link.cancel_notify {
        let m = Method::BasicCancel(BasicCancel {
            consumer_tag: c.tag.clone(),
            nowait: true,
        });
        link.outbox.push(|buf, _| encode_method(buf, link.id, &m));
        bells.add(&link.outbox);
    }
}

/// Compares declared arguments with the existing ones, RabbitMQ-style. Only `checked`
/// keys (and, for queues, every `x-` key) take part, as RabbitMQ ignores others.
fn check_args(
    what: &str,
    name: &ShortStr,
    vhost: &str,
    got: &FieldTable,
    have: &FieldTable,
    checked: &[&str],
) -> Result<(), AmqpError> {
    // RabbitMQ compares in its own order of the arguments, whatever the tables' order, and
    // only the arguments it knows: others (unknown `x-` keys included) may differ freely.
    let keys: Vec<&str> = if what == "queue" {
        let last = ["x-delivery-limit", "x-queue-type", "x-queue-master-locator"];
        VALIDATION_ORDER
            .iter()
            .chain(STREAM_ARGS)
            .chain(&last)
            .copied()
            .collect()
    } else {
        checked.to_vec()
    };
    for key in keys {
        let a = got.get(key);
        let b = have.get(key);
        // Integers compare by value whatever their width, as RabbitMQ compares them.
        let same = match (a, b) {
            // A classic queue is one declared with x-queue-type 'classic' or without it.
            _ if key == "x-queue-type" && is_classic(a) && is_classic(b) => true,
            (Some(x), Some(y)) => match (x.as_i64(), y.as_i64()) {
                (Some(i), Some(j)) => i == j,
                _ => x == y,
            },
            (None, None) => true,
            _ => false,
        };
        if !same {
            let text = match (a, b) {
                (Some(x), Some(y)) => format!(
                    "received '{}' but current is '{}'",
                    value_text(x),
                    value_text(y)
                ),
                _ => {
                    let describe = |v: Option<&FieldValue>| match v {
                        None => "none".to_string(),
                        Some(v) => {
                            format!("the value '{}' of type '{}'", value_text(v), type_name(v))
                        }
                    };
                    format!("received {} but current is {}", describe(a), describe(b))
                }
            };
            return Err(precondition(format!(
                "inequivalent arg '{key}' for {what} '{name}' in vhost '{vhost}': {text}"
            )));
        }
    }
    Ok(())
}

fn is_classic(v: Option<&FieldValue>) -> bool {
    match v {
        None => true,
        Some(FieldValue::LongStr(s)) => s.as_bytes() == b"classic",
        Some(_) => false,
    }
}

fn value_text(v: &FieldValue) -> String {
    match v {
        FieldValue::LongStr(s) => s.to_string(),
        FieldValue::Bool(b) => b.to_string(),
        other => other
            .as_i64()
            .map(|i| i.to_string())
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

/// RabbitMQ's names of field types, as its error messages print them.
pub fn type_name(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::Bool(_) => "bool",
        FieldValue::I8(_) => "byte",
        FieldValue::U8(_) => "unsignedbyte",
        FieldValue::I16(_) => "short",
        FieldValue::U16(_) => "unsignedshort",
        FieldValue::I32(_) => "signedint",
        FieldValue::U32(_) => "unsignedint",
        FieldValue::I64(_) => "long",
        FieldValue::F32(_) => "float",
        FieldValue::F64(_) => "double",
        FieldValue::Decimal(_) => "decimal",
        FieldValue::LongStr(_) => "longstr",
        FieldValue::ByteArray(_) => "binary",
        FieldValue::Array(_) => "array",
        FieldValue::Timestamp(_) => "timestamp",
        FieldValue::Table(_) => "table",
        FieldValue::Void => "void",
    }
}
