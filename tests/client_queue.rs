//! Queues: declaration rules, exclusivity, auto-delete, bindings, purge and delete.

mod common;

use common::{Deliveries, TestBroker, confirming_channel, expect_code, passive, unique, within};
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};

/// Publishes `n` messages to `queue` through the default exchange and waits for confirms.
async fn fill(ch: &Channel, queue: &str, n: usize) {
    for i in 0..n {
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    let returned = within("confirms", ch.wait_for_confirms()).await.unwrap();
    assert!(returned.is_empty());
}

async fn declare(ch: &Channel, name: &str) {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

async fn delete(ch: &Channel, name: &str) {
    ch.queue_delete(name.into(), QueueDeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn server_named_queue_has_amq_gen_prefix() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let a = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let b = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert!(a.name().as_str().starts_with("amq.gen-"), "{}", a.name());
    assert!(b.name().as_str().starts_with("amq.gen-"), "{}", b.name());
    assert_ne!(a.name(), b.name());
    assert_eq!((a.message_count(), a.consumer_count()), (0, 0));

    // It is a real queue reachable through the default exchange.
    ch.basic_publish(
        "".into(),
        a.name().clone(),
        BasicPublishOptions::default(),
        b"hi",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let got = within(
        "basic.get",
        ch.basic_get(a.name().clone(), BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap()
    .expect("message");
    assert_eq!(got.delivery.data, b"hi");
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn client_names_with_amq_prefix_are_refused_403() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let name = format!("amq.mine-{}", unique());
    let text = expect_code(
        ch.queue_declare(
            name.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await,
        403,
    );
    assert_eq!(
        text,
        format!("ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'")
    );
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn passive_declare_of_missing_queue_is_404() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let name = format!("missing-q-{}", unique());
    let text = expect_code(
        ch.queue_declare(name.as_str().into(), passive(), FieldTable::default())
            .await,
        404,
    );
    assert_eq!(text, format!("NOT_FOUND - no queue '{name}' in vhost '/'"));
    assert!(!ch.status().connected());
    assert!(conn.status().connected());
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn redeclare_with_different_durable_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let name = format!("redeclare-{}", unique());
    declare(&ch, &name).await;
    // Equivalent redeclare: fine. Passive ignores the other flags.
    declare(&ch, &name).await;
    ch.queue_declare(
        name.as_str().into(),
        QueueDeclareOptions {
            passive: true,
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();

    let bad = conn.create_channel().await.unwrap();
    let text = expect_code(
        bad.queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
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
            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{name}' in vhost '/': received 'true' but current is 'false'"
        )
    );

    let bad = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(10));
    let text = expect_code(
        bad.queue_declare(name.as_str().into(), QueueDeclareOptions::default(), args)
            .await,
        406,
    );
    assert_eq!(
        text,
        format!(
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{name}' in vhost '/': received the value '10' of type 'signedint' but current is none"
        )
    );

    let bad = conn.create_channel().await.unwrap();
    let text = expect_code(
        bad.queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                auto_delete: true,
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
            "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue '{name}' in vhost '/': received 'true' but current is 'false'"
        )
    );

    delete(&ch, &name).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn exclusive_queue_is_locked_to_its_connection_405() {
    let broker = TestBroker::start().await;
    let owner = broker.connect().await;
    let owner_ch = owner.create_channel().await.unwrap();
    let name = format!("exclusive-{}", unique());
    owner_ch
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    // Another channel on the same connection may use it.
    let sibling = owner.create_channel().await.unwrap();
    sibling
        .queue_declare(name.as_str().into(), passive(), FieldTable::default())
        .await
        .unwrap();

    let other = broker.connect().await;
    let expected = format!(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration."
    );

    // Declare (even passive), consume, get and delete are all locked out.
    let ch = other.create_channel().await.unwrap();
    let text = expect_code(
        ch.queue_declare(name.as_str().into(), passive(), FieldTable::default())
            .await,
        405,
    );
    assert_eq!(text, expected);

    let ch = other.create_channel().await.unwrap();
    let text = expect_code(
        ch.basic_consume(
            name.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await,
        405,
    );
    assert_eq!(text, expected);

    let ch = other.create_channel().await.unwrap();
    expect_code(
        ch.basic_get(name.as_str().into(), BasicGetOptions::default())
            .await,
        405,
    );

    let ch = other.create_channel().await.unwrap();
    expect_code(
        ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await,
        405,
    );

    // ...but publishing to it from elsewhere works.
    let publisher = confirming_channel(&other).await;
    fill(&publisher, &name, 1).await;
    let q = owner_ch
        .queue_declare(name.as_str().into(), passive(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(q.message_count(), 1);

    assert!(other.status().connected(), "405 is a channel error");
    other.close(200, "OK".into()).await.unwrap();
    owner.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn exclusive_queue_is_deleted_when_its_connection_closes() {
    let broker = TestBroker::start().await;
    let owner = broker.connect().await;
    let ch = owner.create_channel().await.unwrap();
    let name = format!("exclusive-gone-{}", unique());
    ch.queue_declare(
        name.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    owner.close(200, "OK".into()).await.unwrap();

    let other = broker.connect().await;
    let ch = other.create_channel().await.unwrap();
    expect_code(
        ch.queue_declare(name.as_str().into(), passive(), FieldTable::default())
            .await,
        404,
    );
    // The name is free again.
    let ch = other.create_channel().await.unwrap();
    ch.queue_declare(
        name.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    other.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn auto_delete_queue_goes_when_last_consumer_cancels() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let name = format!("auto-delete-{}", unique());
    ch.queue_declare(
        name.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();

    // Never consumed from: it stays.
    ch.queue_declare(name.as_str().into(), passive(), FieldTable::default())
        .await
        .unwrap();

    let c1 = ch
        .basic_consume(
            name.as_str().into(),
            "c1".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let c2 = ch
        .basic_consume(
            name.as_str().into(),
            "c2".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    ch.basic_cancel("c1".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    let q = ch
        .queue_declare(name.as_str().into(), passive(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(q.consumer_count(), 1, "one consumer left, queue stays");

    ch.basic_cancel("c2".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    let checker = conn.create_channel().await.unwrap();
    expect_code(
        checker
            .queue_declare(name.as_str().into(), passive(), FieldTable::default())
            .await,
        404,
    );
    drop((c1, c2));
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn bind_and_unbind() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let x = format!("qbind-{}", unique());
    ch.exchange_declare(
        x.as_str().into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let q = format!("qbind-{}", unique());
    declare(&ch, &q).await;
    ch.queue_bind(
        q.as_str().into(),
        x.as_str().into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    let publish = |body: &'static [u8]| {
        let ch = ch.clone();
        let x = x.clone();
        async move {
            let c = ch
                .basic_publish(
                    x.as_str().into(),
                    "k".into(),
                    BasicPublishOptions::default(),
                    body,
                    BasicProperties::default(),
                )
                .await
                .unwrap();
            assert_eq!(within("confirm", c).await.unwrap(), Confirmation::Ack(None));
        }
    };
    publish(b"bound").await;
    ch.queue_unbind(
        q.as_str().into(),
        x.as_str().into(),
        "k".into(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(b"unbound").await;

    let q_state = ch
        .queue_declare(q.as_str().into(), passive(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(q_state.message_count(), 1);
    let got = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.delivery.data, b"bound");

    // Unbinding a binding that does not exist is not an error in RabbitMQ 3.10.
    ch.queue_unbind(
        q.as_str().into(),
        x.as_str().into(),
        "never-bound".into(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    // Binding to a missing exchange or a missing queue is 404.
    let bad = conn.create_channel().await.unwrap();
    let missing = format!("missing-{}", unique());
    let text = expect_code(
        bad.queue_bind(
            q.as_str().into(),
            missing.as_str().into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await,
        404,
    );
    assert_eq!(
        text,
        format!("NOT_FOUND - no exchange '{missing}' in vhost '/'")
    );
    let bad = conn.create_channel().await.unwrap();
    let text = expect_code(
        bad.queue_bind(
            missing.as_str().into(),
            x.as_str().into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await,
        404,
    );
    assert_eq!(
        text,
        format!("NOT_FOUND - no queue '{missing}' in vhost '/'")
    );

    delete(&ch, &q).await;
    ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn purge_returns_the_number_of_messages_removed() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("purge-{}", unique());
    declare(&ch, &q).await;
    fill(&ch, &q, 7).await;

    // Unacked messages are not purged.
    let held = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .expect("a message");
    assert_eq!(held.message_count, 6, "get-ok reports the messages left");

    let purged = ch
        .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    assert_eq!(purged, 6);
    let purged = ch
        .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    assert_eq!(purged, 0);

    // The unacked one comes back when rejected. (Observed with basic.get rather than a
    // passive declare: RabbitMQ answers queue.declare ahead of queued requeues.)
    assert!(
        held.delivery
            .nack(lapin::options::BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .unwrap()
    );
    let again = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the requeued message");
    assert_eq!(again.delivery.data, b"m0");
    assert!(again.delivery.redelivered);
    assert_eq!(again.message_count, 0);

    let bad = conn.create_channel().await.unwrap();
    expect_code(
        bad.queue_purge(
            format!("missing-{}", unique()).into(),
            QueuePurgeOptions::default(),
        )
        .await,
        404,
    );
    delete(&ch, &q).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn delete_returns_the_message_count() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("delete-count-{}", unique());
    declare(&ch, &q).await;
    fill(&ch, &q, 4).await;
    let count = ch
        .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(count, 4);

    // Deleting a queue that does not exist succeeds with 0 (RabbitMQ 3.10).
    let count = ch
        .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(count, 0);
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn delete_if_empty_refuses_a_non_empty_queue_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("if-empty-{}", unique());
    declare(&ch, &q).await;
    fill(&ch, &q, 2).await;

    let bad = conn.create_channel().await.unwrap();
    let text = expect_code(
        bad.queue_delete(
            q.as_str().into(),
            QueueDeleteOptions {
                if_empty: true,
                ..Default::default()
            },
        )
        .await,
        406,
    );
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty")
    );

    ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    let count = ch
        .queue_delete(
            q.as_str().into(),
            QueueDeleteOptions {
                if_empty: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(count, 0);
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn delete_if_unused_refuses_a_consumed_queue_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = format!("if-unused-{}", unique());
    declare(&ch, &q).await;
    let consumer = ch
        .basic_consume(
            q.as_str().into(),
            "busy".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let bad = conn.create_channel().await.unwrap();
    let text = expect_code(
        bad.queue_delete(
            q.as_str().into(),
            QueueDeleteOptions {
                if_unused: true,
                ..Default::default()
            },
        )
        .await,
        406,
    );
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' in use")
    );

    ch.basic_cancel("busy".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    drop(consumer);
    ch.queue_delete(
        q.as_str().into(),
        QueueDeleteOptions {
            if_unused: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn declare_ok_reports_message_and_consumer_counts() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("counts-{}", unique());
    declare(&ch, &q).await;
    fill(&ch, &q, 3).await;

    let state = ch
        .queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(state.name().as_str(), q);
    assert_eq!((state.message_count(), state.consumer_count()), (3, 0));

    // Two consumers on another channel with prefetch 1: each holds one unacked
    // message, so only the third stays ready.
    let consumer_ch = conn.create_channel().await.unwrap();
    consumer_ch.basic_qos(1, Default::default()).await.unwrap();
    let mut a = Deliveries::new(
        consumer_ch
            .basic_consume(
                q.as_str().into(),
                "a".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap(),
    );
    let mut b = Deliveries::new(
        consumer_ch
            .basic_consume(
                q.as_str().into(),
                "b".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap(),
    );
    let _da = a.next().await;
    let _db = b.next().await;

    let state = ch
        .queue_declare(q.as_str().into(), passive(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(state.consumer_count(), 2);
    assert_eq!(
        state.message_count(),
        1,
        "message_count counts ready messages only"
    );

    consumer_ch.close(200, "OK".into()).await.unwrap();
    let state = ch
        .queue_declare(q.as_str().into(), passive(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!((state.message_count(), state.consumer_count()), (3, 0));
    delete(&ch, &q).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn queue_arguments_max_length_drops_oldest() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("max-length-{}", unique());
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(2));
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions::default(),
        args.clone(),
    )
    .await
    .unwrap();
    // Redeclaring with the same arguments is equivalent.
    ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    fill(&ch, &q, 5).await;
    let mut bodies = Vec::new();
    while let Some(m) = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        bodies.push(String::from_utf8(m.delivery.data.clone()).unwrap());
    }
    assert_eq!(bodies, ["m3", "m4"]);
    delete(&ch, &q).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn queue_message_ttl_zero_expires_unconsumed_messages() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let q = format!("ttl-{}", unique());
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), AMQPValue::LongInt(0));
    ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    fill(&ch, &q, 2).await;
    let got = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap();
    assert!(got.is_none(), "ttl 0 without a consumer: expired at once");
    delete(&ch, &q).await;
    conn.close(200, "OK".into()).await.unwrap();
}
