//! Test harness: a real broker on a free port, driven over real sockets.
//!
//! By default each test starts Warren in-process on 127.0.0.1:0. With `AMQP_TEST_URL`
//! set (e.g. `amqp://guest:guest@127.0.0.1:5673/%2f`), tests run against that broker
//! instead, which is how they are checked against RabbitMQ.
#![allow(dead_code)]

pub mod admin;
pub mod mgmt;
pub mod stream_raw;

use lapin::{Connection, ConnectionProperties};

pub struct TestBroker {
    url: String,
    _server: Option<warren::server::ServerHandle>,
}

impl TestBroker {
    /// The management API's base URL ("http://host:port", no trailing slash): the
    /// in-process broker's, or `AMQP_TEST_MGMT_URL` (RabbitMQ's on 15673 by default) when
    /// the tests run against another broker.
    #[allow(dead_code)]
    pub fn mgmt_url(&self) -> String {
        match &self._server {
            Some(s) => format!(
                "http://{}",
                s.mgmt_addr.expect("the management API listens")
            ),
            None => std::env::var("AMQP_TEST_MGMT_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:15673".to_string()),
        }
    }

    /// The Prometheus endpoint's base URL: the in-process broker's, or
    /// `AMQP_TEST_PROMETHEUS_URL` (RabbitMQ's on 15693 by default) when the tests run
    /// against another broker.
    #[allow(dead_code)]
    pub fn prometheus_url(&self) -> String {
        match &self._server {
            Some(s) => format!(
                "http://{}",
                s.prometheus_addr.expect("the Prometheus endpoint listens")
            ),
            None => std::env::var("AMQP_TEST_PROMETHEUS_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:15693".to_string()),
        }
    }

    /// Sets up users, vhosts and permissions on whichever broker the tests run against.
    pub fn admin(&self) -> admin::Admin {
        match &self._server {
            Some(s) => admin::Admin::Warren(s.broker.clone()),
            None => admin::Admin::http_from_env(),
        }
    }

    /// The in-process Warren's broker (None against another broker), for tests that look
    /// at its internals.
    #[allow(dead_code)]
    pub fn warren(&self) -> Option<std::sync::Arc<warren::broker::Broker>> {
        self._server.as_ref().map(|s| s.broker.clone())
    }

    /// The broker's `host:port`.
    pub fn host(&self) -> String {
        let rest = self.url.split('@').nth(1).unwrap_or("");
        rest.split('/').next().unwrap_or("").to_string()
    }

    /// An AMQP URL for `user`/`pass` on `vhost`.
    pub fn url_for(&self, user: &str, pass: &str, vhost: &str) -> String {
        let vhost: String = vhost
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        format!("amqp://{user}:{pass}@{}/{vhost}", self.host())
    }

    /// Connects as `user` to `vhost`.
    pub async fn connect_as(
        &self,
        user: &str,
        pass: &str,
        vhost: &str,
    ) -> Result<Connection, lapin::Error> {
        Connection::connect(
            &self.url_for(user, pass, vhost),
            ConnectionProperties::default(),
        )
        .await
    }
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(|_| {}).await
    }

    /// Starts Warren with the test defaults changed by `configure` (ignored when the
    /// tests run against another broker).
    pub async fn start_with(configure: impl FnOnce(&mut warren::config::Config)) -> TestBroker {
        if let Ok(url) = std::env::var("AMQP_TEST_URL") {
            return TestBroker { url, _server: None };
        }
        Self::start_warren_with(configure).await
    }

    /// Starts an in-process Warren whatever `AMQP_TEST_URL` says (tests that compare it
    /// with another broker).
    #[allow(dead_code)]
    pub async fn start_warren_with(
        configure: impl FnOnce(&mut warren::config::Config),
    ) -> TestBroker {
        let mut config = warren::config::Config::default();
        config.amqp.listen = "127.0.0.1:0".parse().unwrap();
        config.mgmt.listen = "127.0.0.1:0".into();
        config.prometheus.listen = "127.0.0.1:0".into();
        config.storage.dir = std::env::temp_dir().join(format!("warren-test-{}", unique()));
        configure(&mut config);
        let server = warren::server::start(config).await.expect("broker starts");
        TestBroker {
            url: format!("amqp://guest:guest@{}/%2f", server.local_addr),
            _server: Some(server),
        }
    }

    /// Another broker, already running at `url` (its management API at
    /// `AMQP_TEST_MGMT_URL`).
    #[allow(dead_code)]
    pub fn external(url: String) -> TestBroker {
        TestBroker { url, _server: None }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the tests run against an in-process Warren (not `AMQP_TEST_URL`'s broker).
    pub fn is_warren(&self) -> bool {
        self._server.is_some()
    }

    /// The in-process Warren, if the tests run against one.
    pub fn server(&self) -> Option<&warren::server::ServerHandle> {
        self._server.as_ref()
    }

    /// The management API as guest, the administrator.
    pub fn mgmt(&self) -> mgmt::Api {
        mgmt::Api::new(&self.mgmt_url(), "guest", "guest")
    }

    pub async fn connect(&self) -> Connection {
        Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("connects")
    }
}

/// A name no other test uses (tests share a broker when run against RabbitMQ).
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}-{}-{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------------------
// Helpers shared by the `client_*` tests (lapin against a real broker).
// ---------------------------------------------------------------------------

use lapin::message::{Delivery, DeliveryResult};
use lapin::{Consumer, Error, ErrorKind};
use std::future::Future;
use std::time::Duration;

/// Upper bound for anything the broker should answer promptly.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// How long to watch for something that must NOT happen (only used where a
/// negative can't be proven any other way).
pub const QUIET: Duration = Duration::from_millis(300);

/// Awaits `fut`, failing the test if it takes longer than [`TIMEOUT`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {TIMEOUT:?} waiting for {what}"),
    }
}

/// The AMQP reply code and text carried by a lapin error (a channel.close or
/// connection.close sent by the broker). Panics on any other kind of error.
pub fn amqp_error(err: &Error) -> (u16, String) {
    match err.kind() {
        ErrorKind::ProtocolError(e) => (e.get_id(), e.get_message().as_str().to_string()),
        other => panic!("expected an AMQP protocol error, got {other:?} ({err})"),
    }
}

/// The AMQP reply code carried by a lapin error. Panics if it is not an AMQP error.
pub fn reply_code(err: &Error) -> u16 {
    amqp_error(err).0
}

/// Asserts that `res` failed with the AMQP reply `code`, and returns the reply text.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(res: Result<T, Error>, code: u16) -> String {
    match res {
        Ok(v) => panic!("expected AMQP error {code}, got Ok({v:?})"),
        Err(e) => {
            let (got, text) = amqp_error(&e);
            assert_eq!(got, code, "unexpected reply code (text: {text})");
            text
        }
    }
}

/// Receives a consumer's deliveries in order through a tokio channel, so tests can
/// await them with a timeout (lapin's `Consumer` is a `futures` `Stream`, and no
/// `StreamExt` crate is available to the tests). Holding this keeps the consumer
/// alive: dropping a lapin `Consumer` cancels it.
pub struct Deliveries {
    consumer: Consumer,
    rx: tokio::sync::mpsc::UnboundedReceiver<DeliveryResult>,
}

impl Deliveries {
    pub fn new(consumer: Consumer) -> Deliveries {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // The send happens synchronously when lapin dispatches, which keeps the order.
        consumer.set_delegate(move |delivery: DeliveryResult| {
            let _ = tx.send(delivery);
            async {}
        });
        Deliveries { consumer, rx }
    }

    pub fn consumer(&self) -> &Consumer {
        &self.consumer
    }

    pub fn tag(&self) -> String {
        self.consumer.tag().as_str().to_string()
    }

    /// The next event: `Some(Ok(Some(d)))` delivery, `Some(Ok(None))` cancelled,
    /// `Some(Err(e))` error, `None` if nothing arrived within `wait`.
    pub async fn event_within(&mut self, wait: Duration) -> Option<DeliveryResult> {
        match tokio::time::timeout(wait, self.rx.recv()).await {
            Ok(Some(ev)) => Some(ev),
            Ok(None) => Some(Ok(None)),
            Err(_) => None,
        }
    }

    /// The next delivery; fails the test on timeout, cancellation or error.
    pub async fn next(&mut self) -> Delivery {
        match self.event_within(TIMEOUT).await {
            Some(Ok(Some(d))) => d,
            Some(Ok(None)) => panic!("consumer was cancelled while waiting for a delivery"),
            Some(Err(e)) => panic!("consumer error while waiting for a delivery: {e}"),
            None => panic!("no delivery within {TIMEOUT:?}"),
        }
    }

    /// The next `n` deliveries.
    pub async fn take(&mut self, n: usize) -> Vec<Delivery> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next().await);
        }
        out
    }

    /// Waits for the consumer to be cancelled (by the broker or by us).
    pub async fn expect_cancelled(&mut self) {
        loop {
            match self.event_within(TIMEOUT).await {
                Some(Ok(None)) => return,
                Some(Ok(Some(d))) => panic!("expected cancellation, got a delivery: {d:?}"),
                Some(Err(_)) => continue,
                None => panic!("consumer not cancelled within {TIMEOUT:?}"),
            }
        }
    }

    /// Asserts nothing arrives for [`QUIET`].
    pub async fn expect_quiet(&mut self) {
        if let Some(ev) = self.event_within(QUIET).await {
            panic!("expected no delivery, got {ev:?}");
        }
    }
}

/// An argument table from `(name, value)` pairs.
pub fn table(pairs: &[(&str, lapin::types::AMQPValue)]) -> lapin::types::FieldTable {
    let mut t = lapin::types::FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

/// Payload as a UTF-8 string (lossy), for readable assertions.
pub fn body(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.data).into_owned()
}

/// Options for a passive queue.declare.
pub fn passive() -> lapin::options::QueueDeclareOptions {
    lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

/// A channel in publisher-confirm mode.
pub async fn confirming_channel(conn: &Connection) -> lapin::Channel {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch
}

/// A server-named exclusive queue bound to `exchange` with `key`; returns its name.
pub async fn bound_exclusive_queue(ch: &lapin::Channel, exchange: &str, key: &str) -> String {
    bound_exclusive_queue_with(ch, exchange, key, lapin::types::FieldTable::default()).await
}

/// The same, with binding arguments (headers exchanges).
pub async fn bound_exclusive_queue_with(
    ch: &lapin::Channel,
    exchange: &str,
    key: &str,
    binding_args: lapin::types::FieldTable,
) -> String {
    let q = ch
        .queue_declare(
            "".into(),
            lapin::options::QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap()
        .name()
        .as_str()
        .to_string();
    ch.queue_bind(
        q.as_str().into(),
        exchange.into(),
        key.into(),
        lapin::options::QueueBindOptions::default(),
        binding_args,
    )
    .await
    .unwrap();
    q
}

/// A queue's ready message count (passive declare).
pub async fn ready_count(ch: &lapin::Channel, queue: &str) -> u32 {
    ch.queue_declare(queue.into(), passive(), lapin::types::FieldTable::default())
        .await
        .unwrap()
        .message_count()
}

/// The next delivery, allowing 30 s for a slow disk (durability tests).
pub async fn next_slow_delivery(deliveries: &mut Deliveries) -> lapin::message::Delivery {
    match deliveries.event_within(Duration::from_secs(30)).await {
        Some(Ok(Some(d))) => d,
        Some(Ok(None)) => panic!("the consumer was cancelled"),
        Some(Err(e)) => panic!("consumer error: {e}"),
        None => panic!("no delivery within 30 s"),
    }
}

/// Publishes one message and waits for the broker's answer: its confirm on a channel in
/// confirm mode. A refusal (channel.close) comes back as the error.
pub async fn publish_confirmed(
    ch: &lapin::Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: lapin::BasicProperties,
) -> Result<(), Error> {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        lapin::options::BasicPublishOptions::default(),
        body,
        props,
    )
    .await?
    .await
    .map(drop)
}
