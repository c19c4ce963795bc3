//! Durability across restarts, as RabbitMQ 3.10 classic queues behave: declare, publish,
//! stop the broker (SIGTERM or SIGKILL), start it again on the same storage directory, and
//! look at what is left.
//!
//! - Durable exchanges (with their kind, flags and arguments), durable queues (with their
//!   arguments) and bindings between durable ends survive; transient ones do not, and
//!   neither do deleted ones nor removed bindings.
//! - Persistent messages in durable queues survive, in order and intact; transient ones do
//!   not; acknowledged ones do not come back; delivered but unacknowledged ones come back
//!   with redelivered=true. After SIGTERM the others come back with redelivered=false
//!   (after SIGKILL the broker cannot know, and RabbitMQ marks them redelivered).
//! - Priority queues keep their order.
//!
//! Every step that the broker must have taken before the stop is awaited: a confirm or a
//! declare-ok; for an ack, a round trip on the acking channel and then the confirm of a
//! persistent message published after it (nothing else tells when an ack is on disk: a
//! crash may undo an ack that no later confirm covers, as in RabbitMQ).

mod common;
mod durable;

use common::{Deliveries, amqp_error, body, within};
use durable::{Broker, Stop, TempDir, bounded, confirming_channel, durable_queue, message_count};
use lapin::message::BasicGetMessage;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicRejectOptions,
    ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeUnbindOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};

/// Bound on each test, restarts included.
const LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn long_str(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

fn transient() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(1)
}

async fn declare_exchange(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    options: ExchangeDeclareOptions,
    args: FieldTable,
) {
    ch.exchange_declare(name.into(), kind, options, args)
        .await
        .unwrap_or_else(|e| panic!("declare exchange {name}: {e}"));
}

async fn declare_queue(ch: &Channel, name: &str, options: QueueDeclareOptions, args: FieldTable) {
    ch.queue_declare(name.into(), options, args)
        .await
        .unwrap_or_else(|e| panic!("declare queue {name}: {e}"));
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        args,
    )
    .await
    .unwrap_or_else(|e| panic!("bind {queue} to {exchange} with {key:?}: {e}"));
}

/// Ok, or the reply code of the channel error a passive exchange.declare gets.
async fn exchange_exists(conn: &Connection, name: &str) -> Result<(), u16> {
    let ch = conn.create_channel().await.unwrap();
    let options = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match ch
        .exchange_declare(
            name.into(),
            ExchangeKind::Direct,
            options,
            FieldTable::default(),
        )
        .await
    {
        Ok(()) => {
            ch.close(200, "OK".into()).await.unwrap();
            Ok(())
        }
        Err(e) => Err(amqp_error(&e).0),
    }
}

/// The message count, or the reply code of the channel error a passive queue.declare gets.
async fn queue_exists(conn: &Connection, name: &str) -> Result<u32, u16> {
    let ch = conn.create_channel().await.unwrap();
    let options = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match ch
        .queue_declare(name.into(), options, FieldTable::default())
        .await
    {
        Ok(q) => {
            ch.close(200, "OK".into()).await.unwrap();
            Ok(q.message_count())
        }
        Err(e) => Err(amqp_error(&e).0),
    }
}

/// The (code, text) of the error an exchange.declare gets, on a channel of its own.
async fn exchange_declare_error(
    conn: &Connection,
    name: &str,
    kind: ExchangeKind,
    options: ExchangeDeclareOptions,
    args: FieldTable,
) -> (u16, String) {
    let ch = conn.create_channel().await.unwrap();
    match ch.exchange_declare(name.into(), kind, options, args).await {
        Ok(()) => panic!("redeclaring exchange {name} should fail"),
        Err(e) => amqp_error(&e),
    }
}

/// The (code, text) of the error a queue.declare gets, on a channel of its own.
async fn queue_declare_error(
    conn: &Connection,
    name: &str,
    options: QueueDeclareOptions,
    args: FieldTable,
) -> (u16, String) {
    let ch = conn.create_channel().await.unwrap();
    match ch.queue_declare(name.into(), options, args).await {
        Ok(_) => panic!("redeclaring queue {name} should fail"),
        Err(e) => amqp_error(&e),
    }
}

/// Publishes (mandatory) on a confirm channel and returns the confirmation.
async fn publish(
    ch: &Channel,
    exchange: &str,
    key: &str,
    payload: &[u8],
    props: BasicProperties,
) -> Confirmation {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            payload,
            props,
        )
        .await
        .unwrap();
    within("publisher confirm", confirm).await.unwrap()
}

/// Publishes and asserts the message was routed and confirmed.
async fn publish_routed(ch: &Channel, exchange: &str, key: &str, payload: &str) {
    publish_routed_props(ch, exchange, key, payload, persistent()).await
}

async fn publish_routed_props(
    ch: &Channel,
    exchange: &str,
    key: &str,
    payload: &str,
    props: BasicProperties,
) {
    match publish(ch, exchange, key, payload.as_bytes(), props).await {
        Confirmation::Ack(None) => {}
        other => panic!(
            "publish of {payload:?} to {exchange:?} with key {key:?}: expected routed and acked, got {other:?}"
        ),
    }
}

/// Publishes and asserts the message was returned as unroutable (then acked).
async fn publish_unroutable(ch: &Channel, exchange: &str, key: &str, props: BasicProperties) {
    match publish(ch, exchange, key, b"unroutable", props).await {
        Confirmation::Ack(Some(returned)) => {
            assert_eq!(returned.reply_code, 312, "returned with NO_ROUTE");
        }
        other => panic!(
            "publish to {exchange:?} with key {key:?}: expected a return (no route), got {other:?}"
        ),
    }
}

async fn get(ch: &Channel, queue: &str, no_ack: bool) -> Option<BasicGetMessage> {
    within(
        "basic.get",
        ch.basic_get(queue.into(), BasicGetOptions { no_ack }),
    )
    .await
    .unwrap()
}

/// Bodies of everything in `queue`, taken with basic.get no-ack.
async fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = get(ch, queue, true).await {
        out.push(body(&m.delivery));
    }
    out
}

/// Acks `tag` on `ch`, then makes a round trip on `ch` (once it returns, the broker has
/// processed the ack), then publishes a persistent message to a durable queue and waits for
/// its confirm on `confirms`: the broker has made durable everything it did before, so a
/// crash from now on must not undo the ack.
async fn ack_settled(ch: &Channel, tag: u64, queue: &str, confirms: &Channel) {
    ch.basic_ack(tag, BasicAckOptions::default()).await.unwrap();
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare_queue(
        confirms,
        "q.barrier",
        durable_queue(),
        FieldTable::default(),
    )
    .await;
    publish_routed(confirms, "", "q.barrier", "barrier").await;
}

/// Stops the broker with `conn` still open (a graceful stop closes it with 320; a crash
/// just drops it) and starts it again on the same directory.
async fn restart(broker: Broker, conn: Connection, how: Stop) -> Broker {
    let broker = broker.restart(how).await;
    drop(conn);
    broker
}

// ---------------------------------------------------------------------------
// Exchanges
// ---------------------------------------------------------------------------

/// Redeclares that conflict with the exchanges `exchanges_survive` declares. Each must fail
/// with 406 both before and after the restart, with the same text (which names the value
/// the broker holds, so the kind, flags and arguments must have been kept exactly).
async fn conflicting_exchange_redeclares(conn: &Connection) -> Vec<(u16, String)> {
    let d = durable_exchange;
    let mut out = Vec::new();
    for (name, other_kind) in [
        ("x.direct", ExchangeKind::Topic),
        ("x.fanout", ExchangeKind::Direct),
        ("x.topic", ExchangeKind::Headers),
        ("x.headers", ExchangeKind::Fanout),
    ] {
        out.push(exchange_declare_error(conn, name, other_kind, d(), FieldTable::default()).await);
    }
    out.push(
        exchange_declare_error(
            conn,
            "x.direct",
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await,
    );
    out.push(
        exchange_declare_error(
            conn,
            "x.with-ae",
            ExchangeKind::Direct,
            d(),
            table(&[("alternate-exchange", long_str("x.other"))]),
        )
        .await,
    );
    out.push(
        exchange_declare_error(
            conn,
            "x.with-ae",
            ExchangeKind::Direct,
            d(),
            FieldTable::default(),
        )
        .await,
    );
    out.push(
        exchange_declare_error(
            conn,
            "x.internal",
            ExchangeKind::Topic,
            d(),
            FieldTable::default(),
        )
        .await,
    );
    out.push(
        exchange_declare_error(
            conn,
            "x.auto-delete",
            ExchangeKind::Fanout,
            d(),
            FieldTable::default(),
        )
        .await,
    );
    for (code, text) in &out {
        assert_eq!(*code, 406, "conflicting redeclare: {text}");
        assert!(text.contains("inequivalent arg"), "{text}");
    }
    out
}

async fn exchanges_survive(how: Stop) {
    let dir = TempDir::new("exchanges");
    let broker = durable::start(dir.path()).await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;

    // One durable exchange of each kind.
    let kinds = [
        ("x.direct", ExchangeKind::Direct),
        ("x.fanout", ExchangeKind::Fanout),
        ("x.topic", ExchangeKind::Topic),
        ("x.headers", ExchangeKind::Headers),
    ];
    for (name, kind) in kinds.clone() {
        declare_exchange(&ch, name, kind, durable_exchange(), FieldTable::default()).await;
    }
    // With an alternate exchange, internal, auto-delete (kept while it has a binding).
    declare_exchange(
        &ch,
        "x.ae",
        ExchangeKind::Fanout,
        durable_exchange(),
        FieldTable::default(),
    )
    .await;
    let ae_args = table(&[("alternate-exchange", long_str("x.ae"))]);
    declare_exchange(
        &ch,
        "x.with-ae",
        ExchangeKind::Direct,
        durable_exchange(),
        ae_args.clone(),
    )
    .await;
    let internal = ExchangeDeclareOptions {
        durable: true,
        internal: true,
        ..Default::default()
    };
    declare_exchange(
        &ch,
        "x.internal",
        ExchangeKind::Topic,
        internal,
        FieldTable::default(),
    )
    .await;
    let auto_delete = ExchangeDeclareOptions {
        durable: true,
        auto_delete: true,
        ..Default::default()
    };
    declare_exchange(
        &ch,
        "x.auto-delete",
        ExchangeKind::Fanout,
        auto_delete,
        FieldTable::default(),
    )
    .await;
    declare_queue(&ch, "q.ae", durable_queue(), FieldTable::default()).await;
    bind(&ch, "q.ae", "x.ae", "", FieldTable::default()).await;
    bind(&ch, "q.ae", "x.auto-delete", "", FieldTable::default()).await;

    // A transient exchange, and a durable one deleted before the stop.
    declare_exchange(
        &ch,
        "x.transient",
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    declare_exchange(
        &ch,
        "x.deleted",
        ExchangeKind::Direct,
        durable_exchange(),
        FieldTable::default(),
    )
    .await;
    ch.exchange_delete("x.deleted".into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();

    let conflicts_before = conflicting_exchange_redeclares(&conn).await;

    let broker = restart(broker, conn, how).await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;

    // The durable exchanges are there, with the same kind, flags and arguments.
    for name in [
        "x.direct",
        "x.fanout",
        "x.topic",
        "x.headers",
        "x.ae",
        "x.with-ae",
        "x.internal",
        "x.auto-delete",
    ] {
        assert_eq!(
            exchange_exists(&conn, name).await,
            Ok(()),
            "durable exchange {name} after {how:?}"
        );
    }
    assert_eq!(
        conflicting_exchange_redeclares(&conn).await,
        conflicts_before,
        "redeclares with other kinds, flags or arguments fail as before the restart"
    );
    // Equivalent redeclares are fine.
    for (name, kind) in kinds {
        declare_exchange(&ch, name, kind, durable_exchange(), FieldTable::default()).await;
    }
    declare_exchange(
        &ch,
        "x.with-ae",
        ExchangeKind::Direct,
        durable_exchange(),
        ae_args,
    )
    .await;
    declare_exchange(
        &ch,
        "x.internal",
        ExchangeKind::Topic,
        internal,
        FieldTable::default(),
    )
    .await;

    // The alternate exchange still works: an unroutable message goes to x.ae.
    publish_routed(&ch, "x.with-ae", "no-binding", "via the alternate exchange").await;
    assert_eq!(drain(&ch, "q.ae").await, ["via the alternate exchange"]);
    // The internal exchange still refuses publishes (403 closes the channel).
    let internal_ch = confirming_channel(&conn).await;
    let confirm = internal_ch
        .basic_publish(
            "x.internal".into(),
            "k".into(),
            BasicPublishOptions::default(),
            b"refused",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let err = within("channel.close", confirm)
        .await
        .expect_err("publishing to an internal exchange closes the channel");
    assert_eq!(amqp_error(&err).0, 403, "internal exchange after {how:?}");

    // The auto-delete exchange is still auto-delete: removing its last binding deletes it.
    ch.queue_unbind(
        "q.ae".into(),
        "x.auto-delete".into(),
        "".into(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        exchange_exists(&conn, "x.auto-delete").await,
        Err(404),
        "an auto-delete exchange recovered from disk goes when its last binding does"
    );

    // Transient and deleted exchanges are gone.
    assert_eq!(exchange_exists(&conn, "x.transient").await, Err(404));
    assert_eq!(exchange_exists(&conn, "x.deleted").await, Err(404));

    conn.close(200, "OK".into()).await.unwrap();
    broker.terminate().await;
}

#[tokio::test]
async fn exchanges_survive_sigterm() {
    bounded(LIMIT, exchanges_survive(Stop::Term)).await;
}

#[tokio::test]
async fn exchanges_survive_sigkill() {
    bounded(LIMIT, exchanges_survive(Stop::Kill)).await;
}

// ---------------------------------------------------------------------------
// Queues and their arguments
// ---------------------------------------------------------------------------

fn reject_publish_args() -> FieldTable {
    table(&[
        ("x-max-length", AMQPValue::LongInt(2)),
        ("x-overflow", long_str("reject-publish")),
    ])
}

fn dlx_args() -> FieldTable {
    table(&[
        ("x-dead-letter-exchange", long_str("x.dlx")),
        ("x-dead-letter-routing-key", long_str("dead")),
        ("x-message-ttl", AMQPValue::LongInt(600_000)),
    ])
}

fn priority_args() -> FieldTable {
    table(&[("x-max-priority", AMQPValue::ShortShortUInt(10))])
}

fn drop_head_args() -> FieldTable {
    table(&[
        ("x-max-length", AMQPValue::LongInt(1)),
        ("x-overflow", long_str("drop-head")),
    ])
}

/// Redeclares that conflict with the queues `queues_survive` declares (see
/// `conflicting_exchange_redeclares`).
async fn conflicting_queue_redeclares(conn: &Connection) -> Vec<(u16, String)> {
    let d = durable_queue;
    let with = |base: FieldTable, key: &str, value: AMQPValue| {
        let mut t = base;
        t.insert(key.into(), value);
        t
    };
    let mut out = vec![
        queue_declare_error(
            conn,
            "q.bounded",
            d(),
            with(reject_publish_args(), "x-max-length", AMQPValue::LongInt(3)),
        )
        .await,
        queue_declare_error(
            conn,
            "q.bounded",
            d(),
            with(reject_publish_args(), "x-overflow", long_str("drop-head")),
        )
        .await,
        queue_declare_error(conn, "q.bounded", d(), FieldTable::default()).await,
        queue_declare_error(
            conn,
            "q.dlx",
            d(),
            with(dlx_args(), "x-dead-letter-exchange", long_str("x.other")),
        )
        .await,
        queue_declare_error(
            conn,
            "q.dlx",
            d(),
            with(dlx_args(), "x-dead-letter-routing-key", long_str("other")),
        )
        .await,
        queue_declare_error(
            conn,
            "q.dlx",
            d(),
            with(dlx_args(), "x-message-ttl", AMQPValue::LongInt(1)),
        )
        .await,
        queue_declare_error(
            conn,
            "q.prio",
            d(),
            table(&[("x-max-priority", AMQPValue::ShortShortUInt(5))]),
        )
        .await,
        queue_declare_error(conn, "q.prio", d(), FieldTable::default()).await,
        queue_declare_error(conn, "q.drop-head", d(), reject_publish_args()).await,
        queue_declare_error(
            conn,
            "q.plain",
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await,
        queue_declare_error(
            conn,
            "q.plain",
            d(),
            table(&[("x-max-length", AMQPValue::LongInt(10))]),
        )
        .await,
    ];
    out.push(queue_declare_error(conn, "q.auto-delete", d(), FieldTable::default()).await);
    for (code, text) in &out {
        assert_eq!(*code, 406, "conflicting redeclare: {text}");
        assert!(text.contains("inequivalent arg"), "{text}");
    }
    out
}

async fn queues_survive(how: Stop) {
    let dir = TempDir::new("queues");
    let broker = durable::start(dir.path()).await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;

    declare_exchange(
        &ch,
        "x.dlx",
        ExchangeKind::Fanout,
        durable_exchange(),
        FieldTable::default(),
    )
    .await;
    declare_queue(&ch, "q.dead", durable_queue(), FieldTable::default()).await;
    bind(&ch, "q.dead", "x.dlx", "", FieldTable::default()).await;

    declare_queue(&ch, "q.plain", durable_queue(), FieldTable::default()).await;
    declare_queue(&ch, "q.bounded", durable_queue(), reject_publish_args()).await;
    declare_queue(&ch, "q.drop-head", durable_queue(), drop_head_args()).await;
    declare_queue(&ch, "q.dlx", durable_queue(), dlx_args()).await;
    declare_queue(&ch, "q.prio", durable_queue(), priority_args()).await;
    let auto_delete = QueueDeclareOptions {
        durable: true,
        auto_delete: true,
        ..Default::default()
    };
    declare_queue(&ch, "q.auto-delete", auto_delete, FieldTable::default()).await;

    // Fill the reject-publish queue to its limit: after the restart it is still full.
    publish_routed(&ch, "", "q.bounded", "bounded 1").await;
    publish_routed(&ch, "", "q.bounded", "bounded 2").await;
    assert_eq!(
        publish(&ch, "", "q.bounded", b"bounded 3", persistent()).await,
        Confirmation::Nack(None),
        "a full reject-publish queue nacks (before the restart)"
    );

    // Transient, exclusive, and deleted queues do not come back.
    declare_queue(
        &ch,
        "q.transient",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    publish_routed(&ch, "", "q.transient", "persistent, in a transient queue").await;
    let exclusive = QueueDeclareOptions {
        durable: true,
        exclusive: true,
        ..Default::default()
    };
    declare_queue(&ch, "q.exclusive", exclusive, FieldTable::default()).await;
    declare_queue(&ch, "q.deleted", durable_queue(), FieldTable::default()).await;
    publish_routed(&ch, "", "q.deleted", "in a deleted queue").await;
    ch.queue_delete("q.deleted".into(), QueueDeleteOptions::default())
        .await
        .unwrap();

    let conflicts_before = conflicting_queue_redeclares(&conn).await;

    let broker = restart(broker, conn, how).await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;

    for name in [
        "q.dead",
        "q.plain",
        "q.bounded",
        "q.drop-head",
        "q.dlx",
        "q.prio",
        "q.auto-delete",
    ] {
        assert!(
            queue_exists(&conn, name).await.is_ok(),
            "durable queue {name} after {how:?}"
        );
    }
    assert_eq!(
        conflicting_queue_redeclares(&conn).await,
        conflicts_before,
        "redeclares with other arguments fail as before the restart"
    );
    // Equivalent redeclares are fine.
    declare_queue(&ch, "q.plain", durable_queue(), FieldTable::default()).await;
    declare_queue(&ch, "q.bounded", durable_queue(), reject_publish_args()).await;
    declare_queue(&ch, "q.drop-head", durable_queue(), drop_head_args()).await;
    declare_queue(&ch, "q.dlx", durable_queue(), dlx_args()).await;
    declare_queue(&ch, "q.prio", durable_queue(), priority_args()).await;
    declare_queue(&ch, "q.auto-delete", auto_delete, FieldTable::default()).await;

    // The arguments still act. x-max-length + reject-publish: still full, still nacks.
    assert_eq!(queue_exists(&conn, "q.bounded").await, Ok(2));
    assert_eq!(
        publish(&ch, "", "q.bounded", b"bounded 4", persistent()).await,
        Confirmation::Nack(None),
        "a recovered full reject-publish queue nacks"
    );
    assert_eq!(drain(&ch, "q.bounded").await, ["bounded 1", "bounded 2"]);

    // x-max-length + drop-head: a second message pushes the first out.
    publish_routed(&ch, "", "q.drop-head", "dropped").await;
    publish_routed(&ch, "", "q.drop-head", "kept").await;
    assert_eq!(drain(&ch, "q.drop-head").await, ["kept"]);

    // Dead-lettering: a rejected message goes to x.dlx with routing key "dead".
    let dead_ch = conn.create_channel().await.unwrap();
    let mut dead = Deliveries::new(
        dead_ch
            .basic_consume(
                "q.dead".into(),
                "dead".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap(),
    );
    publish_routed(&ch, "", "q.dlx", "to be dead-lettered").await;
    let m = get(&ch, "q.dlx", false)
        .await
        .expect("the message in q.dlx");
    ch.basic_reject(
        m.delivery.delivery_tag,
        BasicRejectOptions { requeue: false },
    )
    .await
    .unwrap();
    let d = dead.next().await;
    assert_eq!(body(&d), "to be dead-lettered");
    assert_eq!(d.routing_key.as_str(), "dead");

    // Priorities: a higher one overtakes.
    publish_routed_props(&ch, "", "q.prio", "low", persistent().with_priority(1)).await;
    publish_routed_props(&ch, "", "q.prio", "high", persistent().with_priority(8)).await;
    assert_eq!(drain(&ch, "q.prio").await, ["high", "low"]);

    // Transient, exclusive and deleted queues are gone (with their messages).
    assert_eq!(queue_exists(&conn, "q.transient").await, Err(404));
    assert_eq!(queue_exists(&conn, "q.exclusive").await, Err(404));
    assert_eq!(queue_exists(&conn, "q.deleted").await, Err(404));

    // The auto-delete queue is still auto-delete: its first consumer leaving deletes it.
    let ad_ch = conn.create_channel().await.unwrap();
    let consumer = ad_ch
        .basic_consume(
            "q.auto-delete".into(),
            "ad".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    ad_ch
        .basic_cancel("ad".into(), Default::default())
        .await
        .unwrap();
    drop(consumer);
    assert_eq!(
        queue_exists(&conn, "q.auto-delete").await,
        Err(404),
        "a recovered auto-delete queue goes with its last consumer"
    );

    conn.close(200, "OK".into()).await.unwrap();
    broker.terminate().await;
}

#[tokio::test]
async fn queues_and_their_arguments_survive_sigterm() {
    bounded(LIMIT, queues_survive(Stop::Term)).await;
}

#[tokio::test]
async fn queues_and_their_arguments_survive_sigkill() {
    bounded(LIMIT, queues_survive(Stop::Kill)).await;
}

// ---------------------------------------------------------------------------
// Bindings
// ---------------------------------------------------------------------------

async fn bindings_survive(how: Stop) {
    let dir = TempDir::new("bindings");
    let broker = durable::start(dir.path()).await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;

    for (name, kind) in [
        ("x.direct", ExchangeKind::Direct),
        ("x.fanout", ExchangeKind::Fanout),
        ("x.topic", ExchangeKind::Topic),
        ("x.headers", ExchangeKind::Headers),
        ("x.src", ExchangeKind::Topic),
        ("x.mid", ExchangeKind::Fanout),
    ] {
        declare_exchange(&ch, name, kind, durable_exchange(), FieldTable::default()).await;
    }
    declare_exchange(
        &ch,
        "x.transient",
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;

    // A durable queue bound to each kind of exchange.
    declare_queue(&ch, "q.bindings", durable_queue(), FieldTable::default()).await;
    bind(&ch, "q.bindings", "x.direct", "k1", FieldTable::default()).await;
    bind(&ch, "q.bindings", "x.fanout", "", FieldTable::default()).await;
    bind(&ch, "q.bindings", "x.topic", "a.*.c", FieldTable::default()).await;
    bind(
        &ch,
        "q.bindings",
        "x.headers",
        "",
        table(&[("x-match", long_str("all")), ("color", long_str("red"))]),
    )
    .await;

    // Exchange-to-exchange: x.src --logs.*--> x.mid --> q.e2e.
    declare_queue(&ch, "q.e2e", durable_queue(), FieldTable::default()).await;
    bind(&ch, "q.e2e", "x.mid", "", FieldTable::default()).await;
    ch.exchange_bind(
        "x.mid".into(),
        "x.src".into(),
        "logs.*".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    // ... and one removed before the stop.
    ch.exchange_bind(
        "x.fanout".into(),
        "x.src".into(),
        "old.*".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.exchange_unbind(
        "x.fanout".into(),
        "x.src".into(),
        "old.*".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    // A queue binding removed before the stop.
    declare_queue(&ch, "q.unbound", durable_queue(), FieldTable::default()).await;
    bind(
        &ch,
        "q.unbound",
        "x.direct",
        "was-bound",
        FieldTable::default(),
    )
    .await;
    ch.queue_unbind(
        "q.unbound".into(),
        "x.direct".into(),
        "was-bound".into(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    // Bindings with a transient end: a transient queue on a durable exchange, a durable
    // queue on a transient exchange.
    declare_queue(
        &ch,
        "q.transient",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    bind(
        &ch,
        "q.transient",
        "x.direct",
        "only-transient",
        FieldTable::default(),
    )
    .await;
    declare_queue(
        &ch,
        "q.on-transient",
        durable_queue(),
        FieldTable::default(),
    )
    .await;
    bind(
        &ch,
        "q.on-transient",
        "x.transient",
        "k",
        FieldTable::default(),
    )
    .await;

    // Everything routes before the stop (so the checks below test the restart only).
    publish_routed(&ch, "x.direct", "k1", "direct").await;
    publish_routed(&ch, "x.direct", "only-transient", "to the transient queue").await;
    publish_routed(&ch, "x.transient", "k", "via the transient exchange").await;
    publish_unroutable(&ch, "x.direct", "was-bound", persistent()).await;
    publish_unroutable(&ch, "x.src", "old.x", persistent()).await;
    assert_eq!(drain(&ch, "q.bindings").await, ["direct"]);
    assert_eq!(
        drain(&ch, "q.on-transient").await,
        ["via the transient exchange"]
    );
    // A confirmed persistent message after the drains: their no-ack gets are written by
    // then, so a crash cannot bring the drained messages back.
    declare_queue(&ch, "q.barrier", durable_queue(), FieldTable::default()).await;
    publish_routed(&ch, "", "q.barrier", "barrier").await;

    let broker = restart(broker, conn, how).await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;

    // Queue bindings on each kind of exchange route as before.
    publish_routed(&ch, "x.direct", "k1", "via direct").await;
    publish_unroutable(&ch, "x.direct", "k2", persistent()).await;
    publish_routed(&ch, "x.fanout", "anything", "via fanout").await;
    publish_routed(&ch, "x.topic", "a.b.c", "via topic").await;
    publish_unroutable(&ch, "x.topic", "a.b", persistent()).await;
    let headers = |color: &str| persistent().with_headers(table(&[("color", long_str(color))]));
    publish_routed_props(&ch, "x.headers", "", "via headers", headers("red")).await;
    publish_unroutable(&ch, "x.headers", "", headers("blue")).await;
    assert_eq!(
        drain(&ch, "q.bindings").await,
        ["via direct", "via fanout", "via topic", "via headers"]
    );

    // The exchange-to-exchange binding routes; the removed one stays removed.
    publish_routed(&ch, "x.src", "logs.error", "via e2e").await;
    publish_unroutable(&ch, "x.src", "metrics.cpu", persistent()).await;
    publish_unroutable(&ch, "x.src", "old.x", persistent()).await;
    assert_eq!(drain(&ch, "q.e2e").await, ["via e2e"]);

    // The removed queue binding stays removed.
    publish_unroutable(&ch, "x.direct", "was-bound", persistent()).await;
    assert_eq!(queue_exists(&conn, "q.unbound").await, Ok(0));

    // Bindings with a transient end are gone with it.
    assert_eq!(queue_exists(&conn, "q.transient").await, Err(404));
    publish_unroutable(&ch, "x.direct", "only-transient", persistent()).await;
    assert_eq!(exchange_exists(&conn, "x.transient").await, Err(404));
    assert_eq!(queue_exists(&conn, "q.on-transient").await, Ok(0));
    // Redeclaring the transient exchange does not bring its old bindings back.
    declare_exchange(
        &ch,
        "x.transient",
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    publish_unroutable(&ch, "x.transient", "k", persistent()).await;

    conn.close(200, "OK".into()).await.unwrap();
    broker.terminate().await;
}

#[tokio::test]
async fn bindings_survive_sigterm() {
    bounded(LIMIT, bindings_survive(Stop::Term)).await;
}

#[tokio::test]
async fn bindings_survive_sigkill() {
    bounded(LIMIT, bindings_survive(Stop::Kill)).await;
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// A message as published: its body and properties.
struct Sent {
    body: Vec<u8>,
    props: BasicProperties,
}

fn sent(name: &str, persistent: Option<bool>) -> Sent {
    let mut headers = FieldTable::default();
    headers.insert("name".into(), long_str(name));
    headers.insert("n".into(), AMQPValue::LongLongInt(name.len() as i64));
    let mut props = BasicProperties::default()
        .with_content_type(ShortString::from("text/plain"))
        .with_message_id(ShortString::from(name))
        .with_correlation_id(ShortString::from(format!("corr-{name}")))
        .with_timestamp(1_700_000_000)
        .with_app_id(ShortString::from("durability_restart"))
        .with_headers(headers);
    match persistent {
        Some(true) => props = props.with_delivery_mode(2),
        Some(false) => props = props.with_delivery_mode(1),
        None => {}
    }
    let body = if name == "p2" {
        // Larger than a frame (131072 by default): several body frames, kept intact.
        (0..300_000u32).map(|i| (i % 251) as u8).collect()
    } else {
        name.as_bytes().to_vec()
    };
    Sent { body, props }
}

/// Every ready message of `queue`, taken with basic.get (to be acked).
async fn take_all(ch: &Channel, queue: &str) -> Vec<BasicGetMessage> {
    let mut out = Vec::new();
    while let Some(m) = get(ch, queue, false).await {
        out.push(m);
    }
    out
}

/// The message ids (or, lacking one, the first bytes of the body) of `msgs`.
fn names(msgs: &[BasicGetMessage]) -> Vec<String> {
    msgs.iter()
        .map(|m| match m.delivery.properties.message_id() {
            Some(id) => id.to_string(),
            None => String::from_utf8_lossy(&m.delivery.data[..m.delivery.data.len().min(20)])
                .into_owned(),
        })
        .collect()
}

/// Asserts that `m` is message `expected`, delivered through the default exchange to
/// `queue`, and returns its delivery tag.
#[track_caller]
fn check_message(m: &BasicGetMessage, expected: &Sent, queue: &str) -> u64 {
    let name = expected.props.message_id().as_ref().unwrap().as_str();
    let d = &m.delivery;
    assert!(
        d.data == expected.body,
        "expected message {name}, got {:?} (message_id {:?})",
        String::from_utf8_lossy(&d.data[..d.data.len().min(40)]),
        d.properties.message_id()
    );
    assert_eq!(d.properties, expected.props, "properties of {name}");
    assert_eq!(d.exchange.as_str(), "", "exchange of {name}");
    assert_eq!(d.routing_key.as_str(), queue, "routing key of {name}");
    d.delivery_tag
}

async fn messages_survive(how: Stop) {
    let dir = TempDir::new("messages");
    let broker = durable::start(dir.path()).await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = "q.messages";
    declare_queue(&ch, q, durable_queue(), FieldTable::default()).await;
    declare_queue(
        &ch,
        "q.only-transient",
        durable_queue(),
        FieldTable::default(),
    )
    .await;

    // Persistent (p), transient with delivery_mode 1 (t1, t3) or unset (t2), interleaved.
    let order = [
        ("p1", Some(true)),
        ("t1", Some(false)),
        ("p2", Some(true)),
        ("p3", Some(true)),
        ("t2", None),
        ("p4", Some(true)),
        ("p5", Some(true)),
        ("t3", Some(false)),
    ];
    let msgs: std::collections::HashMap<&str, Sent> = order
        .iter()
        .map(|(name, persistent)| (*name, sent(name, *persistent)))
        .collect();
    for (name, _) in order {
        let m = &msgs[name];
        assert_eq!(
            publish(&ch, "", q, &m.body, m.props.clone()).await,
            Confirmation::Ack(None),
            "publish {name}"
        );
    }
    for name in ["only transient 1", "only transient 2"] {
        publish_routed_props(&ch, "", "q.only-transient", name, transient()).await;
    }

    // Take p1, t1, p2, p3 without acking, then ack p2 alone.
    let consumer = conn.create_channel().await.unwrap();
    let mut tags = Vec::new();
    for name in ["p1", "t1", "p2", "p3"] {
        let m = get(&consumer, q, false).await.expect(name);
        assert!(
            !m.delivery.redelivered,
            "{name} is delivered for the first time"
        );
        tags.push(check_message(&m, &msgs[name], q));
    }
    ack_settled(&consumer, tags[2], q, &ch).await;
    assert_eq!(message_count(&conn, q).await, 4, "t2, p4, p5, t3 are ready");

    let broker = restart(broker, conn, how).await;
    let conn = broker.connect().await;

    // Left: p1 and p3 (delivered, not acked), p4 and p5. Transient messages are gone; so
    // is p2 (acked).
    assert_eq!(
        message_count(&conn, "q.only-transient").await,
        0,
        "transient messages do not survive {how:?}"
    );
    let consumer = conn.create_channel().await.unwrap();
    let confirms = confirming_channel(&conn).await;
    let got = take_all(&consumer, q).await;
    assert_eq!(
        names(&got),
        ["p1", "p3", "p4", "p5"],
        "persistent messages, in order, without the acked one, after {how:?}"
    );
    let mut tags = Vec::new();
    for (m, name) in got.iter().zip(["p1", "p3", "p4", "p5"]) {
        tags.push(check_message(m, &msgs[name], q));
        match name {
            "p1" | "p3" => assert!(
                m.delivery.redelivered,
                "{name} was delivered before the {how:?}: redelivered=true"
            ),
            // After SIGKILL the broker may not know (RabbitMQ then says true).
            _ if how == Stop::Term => assert!(
                !m.delivery.redelivered,
                "{name} was never delivered before the SIGTERM: redelivered=false"
            ),
            _ => {}
        }
    }

    // A second restart: ack p1 and p4, leave p3 and p5 delivered but unacked.
    ack_settled(&consumer, tags[0], q, &confirms).await;
    ack_settled(&consumer, tags[2], q, &confirms).await;
    let broker = restart(broker, conn, how).await;
    let conn = broker.connect().await;
    let consumer = conn.create_channel().await.unwrap();
    let confirms = confirming_channel(&conn).await;
    let got = take_all(&consumer, q).await;
    assert_eq!(names(&got), ["p3", "p5"], "after a second {how:?}");
    for (m, name) in got.iter().zip(["p3", "p5"]) {
        check_message(m, &msgs[name], q);
        assert!(m.delivery.redelivered, "{name} was delivered before");
        ack_settled(&consumer, m.delivery.delivery_tag, q, &confirms).await;
    }

    // Everything acked: nothing comes back.
    let broker = restart(broker, conn, how).await;
    let conn = broker.connect().await;
    assert_eq!(
        message_count(&conn, q).await,
        0,
        "acked messages do not come back"
    );
    conn.close(200, "OK".into()).await.unwrap();
    broker.terminate().await;
}

#[tokio::test]
async fn messages_survive_sigterm() {
    bounded(LIMIT, messages_survive(Stop::Term)).await;
}

#[tokio::test]
async fn messages_survive_sigkill() {
    bounded(LIMIT, messages_survive(Stop::Kill)).await;
}

async fn priorities_survive(how: Stop) {
    let dir = TempDir::new("priorities");
    let broker = durable::start(dir.path()).await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = "q.priorities";
    declare_queue(&ch, q, durable_queue(), priority_args()).await;

    // (priority, body); None is no priority property (0).
    let published = [
        (Some(1), "a"),
        (Some(5), "b"),
        (Some(9), "c"),
        (Some(5), "d"),
        (Some(0), "e"),
        (Some(9), "f"),
        (Some(3), "g"),
        (None, "h"),
        (Some(200), "i"), // above x-max-priority: treated as 10
    ];
    for (priority, name) in published {
        let props = match priority {
            Some(p) => persistent().with_priority(p),
            None => persistent(),
        };
        publish_routed_props(&ch, "", q, name, props).await;
    }
    publish_routed_props(&ch, "", q, "transient", transient().with_priority(9)).await;

    let broker = restart(broker, conn, how).await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        drain(&ch, q).await,
        ["i", "c", "f", "b", "d", "g", "a", "e", "h"],
        "highest priority first, FIFO within a priority, after {how:?}"
    );
    conn.close(200, "OK".into()).await.unwrap();
    broker.terminate().await;
}

#[tokio::test]
async fn priority_order_survives_sigterm() {
    bounded(LIMIT, priorities_survive(Stop::Term)).await;
}

#[tokio::test]
async fn priority_order_survives_sigkill() {
    bounded(LIMIT, priorities_survive(Stop::Kill)).await;
}

/// Without publisher confirms nothing says when a message is on disk, but a graceful stop
/// writes out every persistent message the broker has accepted.
#[tokio::test]
async fn sigterm_keeps_unconfirmed_persistent_messages() {
    bounded(LIMIT, unconfirmed_persistent_messages_survive_sigterm()).await;
}

async fn unconfirmed_persistent_messages_survive_sigterm() {
    let dir = TempDir::new("unconfirmed");
    let broker = durable::start(dir.path()).await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "q.unconfirmed";
    declare_queue(&ch, q, durable_queue(), FieldTable::default()).await;
    for i in 0..500 {
        ch.basic_publish(
            "".into(),
            q.into(),
            BasicPublishOptions::default(),
            format!("m{i}").as_bytes(),
            persistent(),
        )
        .await
        .unwrap();
    }
    // A round trip on the publishing channel: the broker has taken every publish.
    let declared = ch
        .queue_declare(q.into(), durable_queue(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(declared.message_count(), 500);

    let broker = restart(broker, conn, Stop::Term).await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let got = drain(&ch, q).await;
    assert_eq!(got.len(), 500, "messages after the SIGTERM");
    let expected: Vec<String> = (0..500).map(|i| format!("m{i}")).collect();
    assert!(got == expected, "in order");
    conn.close(200, "OK".into()).await.unwrap();
    broker.terminate().await;
}

#[tokio::test]
async fn committed_transaction_survives_sigkill() {
    bounded(LIMIT, committed_transaction_survives()).await;
}

/// tx.commit-ok means the transaction's persistent messages are on disk: a SIGKILL right
/// after it keeps them; a rolled-back publish never appears.
async fn committed_transaction_survives() {
    let dir = TempDir::new("tx");
    let broker = durable::start(dir.path()).await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "q.tx";
    declare_queue(&ch, q, durable_queue(), FieldTable::default()).await;
    ch.tx_select().await.unwrap();
    let send = |payload: &'static str| {
        let ch = ch.clone();
        async move {
            ch.basic_publish(
                "".into(),
                q.into(),
                BasicPublishOptions::default(),
                payload.as_bytes(),
                persistent(),
            )
            .await
            .unwrap();
        }
    };
    send("rolled back").await;
    ch.tx_rollback().await.unwrap();
    send("t1").await;
    send("t2").await;
    within("tx.commit", ch.tx_commit()).await.unwrap();

    let broker = restart(broker, conn, Stop::Kill).await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(drain(&ch, q).await, ["t1", "t2"]);
    conn.close(200, "OK".into()).await.unwrap();
    broker.terminate().await;
}
