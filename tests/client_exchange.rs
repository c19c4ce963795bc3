//! Exchanges: each type's routing, the default and predeclared exchanges,
//! declaration rules, exchange-to-exchange bindings and alternate exchanges.

mod common;

use common::{TestBroker, expect_code, unique, within};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeBindOptions,
    ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeUnbindOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};

/// A connection plus one channel in confirm mode, so `publish` returns only once
/// the broker has routed the message.
struct Fixture {
    conn: Connection,
    ch: Channel,
    exchanges: Vec<String>,
    queues: Vec<String>,
}

impl Fixture {
    async fn new(broker: &TestBroker) -> Fixture {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        Fixture {
            conn,
            ch,
            exchanges: Vec::new(),
            queues: Vec::new(),
        }
    }

    async fn exchange(&mut self, prefix: &str, kind: ExchangeKind) -> String {
        self.exchange_with(prefix, kind, FieldTable::default())
            .await
    }

    async fn exchange_with(
        &mut self,
        prefix: &str,
        kind: ExchangeKind,
        args: FieldTable,
    ) -> String {
        let name = format!("{prefix}-{}", unique());
        self.ch
            .exchange_declare(
                name.as_str().into(),
                kind,
                ExchangeDeclareOptions::default(),
                args,
            )
            .await
            .unwrap();
        self.exchanges.push(name.clone());
        name
    }

    async fn queue(&mut self, prefix: &str) -> String {
        let name = format!("{prefix}-{}", unique());
        self.ch
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        self.queues.push(name.clone());
        name
    }

    async fn bind(&self, queue: &str, exchange: &str, key: &str) {
        self.bind_with(queue, exchange, key, FieldTable::default())
            .await;
    }

    async fn bind_with(&self, queue: &str, exchange: &str, key: &str, args: FieldTable) {
        self.ch
            .queue_bind(
                queue.into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                args,
            )
            .await
            .unwrap();
    }

    async fn publish_with(&self, exchange: &str, key: &str, body: &str, props: BasicProperties) {
        let confirm = self
            .ch
            .basic_publish(
                exchange.into(),
                key.into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                props,
            )
            .await
            .unwrap();
        let confirmation = within("publisher confirm", confirm).await.unwrap();
        assert_eq!(confirmation, Confirmation::Ack(None));
    }

    async fn publish(&self, exchange: &str, key: &str, body: &str) {
        self.publish_with(exchange, key, body, BasicProperties::default())
            .await;
    }

    /// Every message currently in `queue`, in order, removed.
    async fn drain(&self, queue: &str) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(msg) = within(
            "basic.get",
            self.ch
                .basic_get(queue.into(), BasicGetOptions { no_ack: true }),
        )
        .await
        .unwrap()
        {
            out.push(String::from_utf8(msg.delivery.data.clone()).unwrap());
        }
        out
    }

    async fn cleanup(self) {
        let ch = self.conn.create_channel().await.unwrap();
        for q in &self.queues {
            ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await
                .unwrap();
        }
        for x in &self.exchanges {
            ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
                .await
                .unwrap();
        }
        self.conn.close(200, "OK".into()).await.unwrap();
    }
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

#[tokio::test]
async fn direct_exchange_routes_by_exact_key() {
    let broker = TestBroker::start().await;
    let mut f = Fixture::new(&broker).await;
    let x = f.exchange("direct", ExchangeKind::Direct).await;
    let red = f.queue("red").await;
    let green = f.queue("green").await;
    f.bind(&red, &x, "red").await;
    f.bind(&green, &x, "green").await;
    f.bind(&green, &x, "red").await; // a queue may have several bindings

    f.publish(&x, "red", "r1").await;
    f.publish(&x, "green", "g1").await;
    f.publish(&x, "blue", "lost").await;
    f.publish(&x, "RED", "case-sensitive").await;

    assert_eq!(f.drain(&red).await, ["r1"]);
    assert_eq!(f.drain(&green).await, ["r1", "g1"]);
    f.cleanup().await;
}

#[tokio::test]
async fn duplicate_binding_delivers_once() {
    let broker = TestBroker::start().await;
    let mut f = Fixture::new(&broker).await;
    let x = f.exchange("dup", ExchangeKind::Direct).await;
    let q = f.queue("dup").await;
    f.bind(&q, &x, "k").await;
    f.bind(&q, &x, "k").await;
    f.publish(&x, "k", "once").await;
    assert_eq!(f.drain(&q).await, ["once"]);
    f.cleanup().await;
}

#[tokio::test]
async fn fanout_exchange_ignores_the_key() {
    let broker = TestBroker::start().await;
    let mut f = Fixture::new(&broker).await;
    let x = f.exchange("fanout", ExchangeKind::Fanout).await;
    let a = f.queue("fan-a").await;
    let b = f.queue("fan-b").await;
    f.bind(&a, &x, "").await;
    f.bind(&b, &x, "whatever").await;

    f.publish(&x, "", "m1").await;
    f.publish(&x, "any.key", "m2").await;

    assert_eq!(f.drain(&a).await, ["m1", "m2"]);
    assert_eq!(f.drain(&b).await, ["m1", "m2"]);
    f.cleanup().await;
}

#[tokio::test]
async fn topic_exchange_wildcards() {
    let broker = TestBroker::start().await;
    let mut f = Fixture::new(&broker).await;
    let x = f.exchange("topic", ExchangeKind::Topic).await;

    let patterns = [
        "*.orange.*",
        "*.*.rabbit",
        "lazy.#",
        "#",
        "a.#.b",
        "a.*",
        "exact.key",
        "#.end",
    ];
    let mut queues = Vec::new();
    for p in patterns {
        let q = f.queue("topic").await;
        f.bind(&q, &x, p).await;
        queues.push(q);
    }

    let keys = [
        "quick.orange.rabbit",
        "lazy.orange.elephant",
        "quick.orange.fox",
        "lazy.brown.fox",
        "lazy",
        "quick.brown.fox",
        "orange",
        "quick.orange.male.rabbit",
        "a.b",
        "a.x.b",
        "a.x.y.b",
        "a.x.c",
        "a",
        "",
        "exact.key",
        "exact.keys",
        "end",
        "x.y.end",
        "a..b",
    ];
    for k in keys {
        f.publish(&x, k, k).await;
    }

    let expected: [&[&str]; 8] = [
        // *.orange.*  — exactly one word either side
        &[
            "quick.orange.rabbit",
            "lazy.orange.elephant",
            "quick.orange.fox",
        ],
        // *.*.rabbit
        &["quick.orange.rabbit"],
        // lazy.#  — `#` also matches zero words, so "lazy" itself matches
        &["lazy.orange.elephant", "lazy.brown.fox", "lazy"],
        // #  — everything, including the empty key
        &keys,
        // a.#.b  — zero or more words in the middle (an empty word is a word)
        &["a.b", "a.x.b", "a.x.y.b", "a..b"],
        // a.*  — exactly two words
        &["a.b"],
        // exact.key
        &["exact.key"],
        // #.end
        &["end", "x.y.end"],
    ];
    for ((pattern, q), want) in patterns.iter().zip(&queues).zip(expected) {
        assert_eq!(f.drain(q).await, want, "pattern {pattern:?}");
    }
    f.cleanup().await;
}

#[tokio::test]
async fn headers_exchange_all_and_any() {
    let broker = TestBroker::start().await;
    let mut f = Fixture::new(&broker).await;
    let x = f.exchange("headers", ExchangeKind::Headers).await;
    let all = f.queue("h-all").await;
    let any = f.queue("h-any").await;
    let default_all = f.queue("h-default").await;
    let empty = f.queue("h-empty").await;

    f.bind_with(
        &all,
        &x,
        "ignored",
        table(&[
            ("x-match", s("all")),
            ("format", s("pdf")),
            ("type", s("report")),
        ]),
    )
    .await;
    f.bind_with(
        &any,
        &x,
        "",
        table(&[
            ("x-match", s("any")),
            ("format", s("pdf")),
            ("type", s("log")),
        ]),
    )
    .await;
    // Without x-match the default is "all".
    f.bind_with(
        &default_all,
        &x,
        "",
        table(&[("format", s("pdf")), ("size", AMQPValue::LongInt(10))]),
    )
    .await;
    // No headers to match: every message matches (x-match all over an empty set).
    f.bind_with(&empty, &x, "", FieldTable::default()).await;

    let with = |h: &[(&str, AMQPValue)]| BasicProperties::default().with_headers(table(h));
    f.publish_with(
        &x,
        "",
        "pdf-report",
        with(&[("format", s("pdf")), ("type", s("report"))]),
    )
    .await;
    f.publish_with(&x, "", "pdf-only", with(&[("format", s("pdf"))]))
        .await;
    f.publish_with(&x, "", "log-only", with(&[("type", s("log"))]))
        .await;
    f.publish_with(
        &x,
        "",
        "zip-report",
        with(&[("format", s("zip")), ("type", s("report"))]),
    )
    .await;
    f.publish_with(
        &x,
        "",
        "pdf-size",
        with(&[
            ("format", s("pdf")),
            ("size", AMQPValue::LongInt(10)),
            ("extra", s("ignored")),
        ]),
    )
    .await;
    f.publish_with(&x, "", "no-headers", BasicProperties::default())
        .await;

    assert_eq!(f.drain(&all).await, ["pdf-report"]);
    assert_eq!(
        f.drain(&any).await,
        ["pdf-report", "pdf-only", "log-only", "pdf-size"]
    );
    assert_eq!(f.drain(&default_all).await, ["pdf-size"]);
    assert_eq!(
        f.drain(&empty).await,
        [
            "pdf-report",
            "pdf-only",
            "log-only",
            "zip-report",
            "pdf-size",
            "no-headers"
        ]
    );
    f.cleanup().await;
}

#[tokio::test]
async fn default_exchange_routes_to_queue_by_name_and_cannot_be_bound() {
    let broker = TestBroker::start().await;
    let mut f = Fixture::new(&broker).await;
    let q = f.queue("default-x").await;
    f.publish("", &q, "direct to queue").await;
    f.publish("", "no-such-queue-for-default-exchange", "dropped")
        .await;
    assert_eq!(f.drain(&q).await, ["direct to queue"]);

    // Any declare of "" (even passive) is refused with 403 and closes the channel.
    let ch = f.conn.create_channel().await.unwrap();
    let text = expect_code(
        ch.exchange_declare(
            "".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await,
        403,
    );
    assert_eq!(
        text,
        "ACCESS_REFUSED - operation not permitted on the default exchange"
    );

    // So is binding to it.
    let ch = f.conn.create_channel().await.unwrap();
    let text = expect_code(
        ch.queue_bind(
            q.as_str().into(),
            "".into(),
            "other-key".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await,
        403,
    );
    assert_eq!(
        text,
        "ACCESS_REFUSED - operation not permitted on the default exchange"
    );

    // And deleting it.
    let ch = f.conn.create_channel().await.unwrap();
    let text = expect_code(
        ch.exchange_delete("".into(), ExchangeDeleteOptions::default())
            .await,
        403,
    );
    assert_eq!(
        text,
        "ACCESS_REFUSED - operation not permitted on the default exchange"
    );
    assert!(f.conn.status().connected());
    f.cleanup().await;
}

#[tokio::test]
async fn predeclared_amq_exchanges_exist() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    for (name, kind) in [
        ("amq.direct", ExchangeKind::Direct),
        ("amq.fanout", ExchangeKind::Fanout),
        ("amq.topic", ExchangeKind::Topic),
        ("amq.headers", ExchangeKind::Headers),
        ("amq.match", ExchangeKind::Headers),
    ] {
        f.ch.exchange_declare(
            name.into(),
            kind.clone(),
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{name} should exist: {e}"));
        // Redeclaring with the same type and durable=true is also allowed.
        f.ch.exchange_declare(
            name.into(),
            kind,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{name} equivalent redeclare: {e}"));
    }
    f.cleanup().await;
}

#[tokio::test]
async fn amq_direct_routes_like_any_direct_exchange() {
    let broker = TestBroker::start().await;
    let mut f = Fixture::new(&broker).await;
    let q = f.queue("amq-direct").await;
    f.bind(&q, "amq.direct", &q).await;
    f.publish("amq.direct", &q, "via amq.direct").await;
    assert_eq!(f.drain(&q).await, ["via amq.direct"]);
    f.cleanup().await;
}

#[tokio::test]
async fn passive_declare_of_missing_exchange_is_404() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let name = format!("missing-x-{}", unique());
    let text = expect_code(
        ch.exchange_declare(
            name.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await,
        404,
    );
    assert_eq!(
        text,
        format!("NOT_FOUND - no exchange '{name}' in vhost '/'")
    );
    assert!(!ch.status().connected(), "404 closes the channel");
    assert!(conn.status().connected(), "but not the connection");
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn redeclare_with_different_type_is_406() {
    let broker = TestBroker::start().await;
    let mut f = Fixture::new(&broker).await;
    let x = f.exchange("retype", ExchangeKind::Direct).await;

    // Same type and flags: fine.
    f.ch.exchange_declare(
        x.as_str().into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    let ch = f.conn.create_channel().await.unwrap();
    let text = expect_code(
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await,
        406,
    );
    assert_eq!(
        text,
        format!(
            "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{x}' in vhost '/': received 'topic' but current is 'direct'"
        )
    );

    let ch = f.conn.create_channel().await.unwrap();
    let text = expect_code(
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await,
        406,
    );
    assert_eq!(
        text,
        format!(
            "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '{x}' in vhost '/': received 'true' but current is 'false'"
        )
    );
    f.cleanup().await;
}

#[tokio::test]
async fn amq_prefix_is_reserved_403() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let name = format!("amq.custom-{}", unique());
    let text = expect_code(
        ch.exchange_declare(
            name.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await,
        403,
    );
    assert_eq!(
        text,
        format!("ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'")
    );
    assert!(conn.status().connected());
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn delete_if_unused_refuses_bound_exchange_406() {
    let broker = TestBroker::start().await;
    let mut f = Fixture::new(&broker).await;
    let x = f.exchange("in-use", ExchangeKind::Fanout).await;
    let q = f.queue("in-use").await;
    f.bind(&q, &x, "").await;

    let ch = f.conn.create_channel().await.unwrap();
    let text = expect_code(
        ch.exchange_delete(
            x.as_str().into(),
            ExchangeDeleteOptions {
                if_unused: true,
                ..Default::default()
            },
        )
        .await,
        406,
    );
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - exchange '{x}' in vhost '/' in use")
    );

    // After unbinding, if-unused delete succeeds.
    f.ch.queue_unbind(
        q.as_str().into(),
        x.as_str().into(),
        "".into(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    f.ch.exchange_delete(
        x.as_str().into(),
        ExchangeDeleteOptions {
            if_unused: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    f.exchanges.clear();
    // Deleting a missing exchange is not an error (RabbitMQ 3.10: delete is idempotent).
    f.ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn deleting_an_exchange_removes_its_bindings() {
    let broker = TestBroker::start().await;
    let mut f = Fixture::new(&broker).await;
    let x = f.exchange("gone", ExchangeKind::Fanout).await;
    let q = f.queue("gone").await;
    f.bind(&q, &x, "").await;
    f.ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    // Recreate it: the old binding must not come back.
    f.ch.exchange_declare(
        x.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    f.publish(&x, "", "nobody").await;
    assert!(f.drain(&q).await.is_empty());
    f.cleanup().await;
}

/// A connection that keeps publishing to an exchange sees it deleted and redeclared: the
/// publish after the delete is refused (404), and after the redeclare the message follows
/// the new exchange's bindings, not the old one's (Warren caches the last exchange a
/// connection published to; a stale entry must never route).
#[tokio::test]
async fn publishing_after_delete_and_redeclare_uses_the_new_exchange() {
    let broker = TestBroker::start().await;
    let mut f = Fixture::new(&broker).await;
    let x = f.exchange("again", ExchangeKind::Fanout).await;
    let old = f.queue("again-old").await;
    f.bind(&old, &x, "").await;
    f.publish(&x, "", "first").await;
    f.ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    let confirm =
        f.ch.basic_publish(
            x.as_str().into(),
            "".into(),
            BasicPublishOptions::default(),
            b"into the void",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let text = expect_code(within("channel.close", confirm).await, 404);
    assert_eq!(text, format!("NOT_FOUND - no exchange '{x}' in vhost '/'"));

    f.ch = f.conn.create_channel().await.unwrap();
    f.ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    f.ch.exchange_declare(
        x.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let new = f.queue("again-new").await;
    f.bind(&new, &x, "").await;
    f.publish(&x, "", "second").await;
    assert_eq!(f.drain(&old).await, ["first"]);
    assert_eq!(f.drain(&new).await, ["second"]);
    f.cleanup().await;
}

#[tokio::test]
async fn exchange_to_exchange_bindings() {
    let broker = TestBroker::start().await;
    let mut f = Fixture::new(&broker).await;
    let source = f.exchange("e2e-src", ExchangeKind::Topic).await;
    let middle = f.exchange("e2e-mid", ExchangeKind::Fanout).await;
    let q = f.queue("e2e").await;
    let direct_q = f.queue("e2e-direct").await;
    f.bind(&q, &middle, "").await;
    f.bind(&direct_q, &source, "logs.error").await;

    f.ch.exchange_bind(
        middle.as_str().into(),
        source.as_str().into(),
        "logs.*".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    f.publish(&source, "logs.error", "e1").await;
    f.publish(&source, "logs.info", "i1").await;
    f.publish(&source, "metrics.cpu", "m1").await;
    assert_eq!(f.drain(&q).await, ["e1", "i1"]);
    assert_eq!(f.drain(&direct_q).await, ["e1"]);

    // A cycle does not loop forever nor duplicate deliveries.
    f.ch.exchange_bind(
        source.as_str().into(),
        middle.as_str().into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    f.publish(&source, "logs.warn", "w1").await;
    assert_eq!(f.drain(&q).await, ["w1"]);
    f.ch.exchange_unbind(
        source.as_str().into(),
        middle.as_str().into(),
        "".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    f.ch.exchange_unbind(
        middle.as_str().into(),
        source.as_str().into(),
        "logs.*".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    f.publish(&source, "logs.info", "i2").await;
    assert!(f.drain(&q).await.is_empty());
    f.cleanup().await;
}

#[tokio::test]
async fn exchange_bind_to_missing_exchange_is_404() {
    let broker = TestBroker::start().await;
    let mut f = Fixture::new(&broker).await;
    let x = f.exchange("e2e-missing", ExchangeKind::Fanout).await;
    let missing = format!("missing-{}", unique());
    let ch = f.conn.create_channel().await.unwrap();
    let text = expect_code(
        ch.exchange_bind(
            x.as_str().into(),
            missing.as_str().into(),
            "".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await,
        404,
    );
    assert_eq!(
        text,
        format!("NOT_FOUND - no exchange '{missing}' in vhost '/'")
    );
    f.cleanup().await;
}

#[tokio::test]
async fn alternate_exchange_receives_unroutable_messages() {
    let broker = TestBroker::start().await;
    let mut f = Fixture::new(&broker).await;
    let ae = f.exchange("ae", ExchangeKind::Fanout).await;
    let unrouted = f.queue("ae-unrouted").await;
    f.bind(&unrouted, &ae, "").await;

    let x = f
        .exchange_with(
            "with-ae",
            ExchangeKind::Direct,
            table(&[("alternate-exchange", s(&ae))]),
        )
        .await;
    let routed = f.queue("ae-routed").await;
    f.bind(&routed, &x, "known").await;

    f.publish(&x, "known", "routed").await;
    f.publish(&x, "unknown", "to-ae").await;

    // A mandatory publish that reaches the alternate exchange is not returned.
    let confirm =
        f.ch.basic_publish(
            x.as_str().into(),
            "unknown-too".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"mandatory-to-ae",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        within("confirm", confirm).await.unwrap(),
        Confirmation::Ack(None)
    );

    assert_eq!(f.drain(&routed).await, ["routed"]);
    assert_eq!(f.drain(&unrouted).await, ["to-ae", "mandatory-to-ae"]);
    f.cleanup().await;
}

#[tokio::test]
async fn publishing_to_a_missing_exchange_closes_the_channel_404() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let missing = format!("missing-{}", unique());
    // basic.publish has no reply; the broker answers with channel.close(404), which
    // lapin reports through the pending publisher confirm.
    let confirm =
        f.ch.basic_publish(
            missing.as_str().into(),
            "key".into(),
            BasicPublishOptions::default(),
            b"nowhere",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let text = expect_code(within("channel.close", confirm).await, 404);
    assert_eq!(
        text,
        format!("NOT_FOUND - no exchange '{missing}' in vhost '/'")
    );
    assert!(f.conn.status().connected());
    f.cleanup().await;
}

#[tokio::test]
async fn internal_exchange_refuses_direct_publish_but_routes_e2e() {
    let broker = TestBroker::start().await;
    let mut f = Fixture::new(&broker).await;
    let front = f.exchange("front", ExchangeKind::Fanout).await;
    let internal = format!("internal-{}", unique());
    f.ch.exchange_declare(
        internal.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            internal: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    f.exchanges.push(internal.clone());
    let q = f.queue("internal").await;
    f.bind(&q, &internal, "").await;
    f.ch.exchange_bind(
        internal.as_str().into(),
        front.as_str().into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    f.publish(&front, "", "via-front").await;
    assert_eq!(f.drain(&q).await, ["via-front"]);

    let ch = f.conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(
            internal.as_str().into(),
            "".into(),
            BasicPublishOptions::default(),
            b"direct",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let text = expect_code(within("channel.close", confirm).await, 403);
    assert_eq!(
        text,
        format!("ACCESS_REFUSED - cannot publish to internal exchange '{internal}' in vhost '/'")
    );
    f.cleanup().await;
}

#[tokio::test]
async fn system_exchanges_cannot_be_deleted_403() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let text = expect_code(
        ch.exchange_delete("amq.direct".into(), ExchangeDeleteOptions::default())
            .await,
        403,
    );
    assert_eq!(
        text,
        "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed"
    );

    // Redeclaring a predeclared (durable) exchange as non-durable is inequivalent.
    let ch = conn.create_channel().await.unwrap();
    let text = expect_code(
        ch.exchange_declare(
            "amq.fanout".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await,
        406,
    );
    assert_eq!(
        text,
        "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'amq.fanout' in vhost '/': received 'false' but current is 'true'"
    );
    assert!(conn.status().connected());
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn unknown_exchange_type_closes_the_connection_503() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .exchange_declare(
            format!("bogus-{}", unique()).into(),
            ExchangeKind::Custom("x-no-such-type".into()),
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("unknown exchange type");
    assert!(err.is_amqp_hard_error(), "{err:?}");
    assert_eq!(
        common::amqp_error(&err),
        (
            503,
            "COMMAND_INVALID - unknown exchange type 'x-no-such-type'".to_string()
        )
    );
    assert!(
        !conn.status().connected(),
        "a hard error closes the connection"
    );
}
