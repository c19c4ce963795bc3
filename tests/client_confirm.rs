//! Publisher confirms: confirm.select, per-message acks, nacks, and bulk confirms.

mod common;

use common::{TestBroker, expect_code, unique, within};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};

async fn setup(broker: &TestBroker, args: FieldTable) -> (Connection, Channel, String) {
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let queue = format!("confirm-{}", unique());
    ch.queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    (conn, ch, queue)
}

async fn teardown(conn: Connection, queue: &str) {
    let ch = conn.create_channel().await.unwrap();
    ch.queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8]) -> Confirmation {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .unwrap();
    within("publisher confirm", confirm).await.unwrap()
}

#[tokio::test]
async fn without_confirm_select_nothing_is_confirmed() {
    let broker = TestBroker::start().await;
    let (conn, ch, queue) = setup(&broker, FieldTable::default()).await;
    assert!(!ch.status().confirm());
    assert_eq!(
        publish(&ch, "", &queue, b"fire and forget").await,
        Confirmation::NotRequested
    );
    teardown(conn, &queue).await;
}

#[tokio::test]
async fn confirm_select_then_each_publish_is_acked() {
    let broker = TestBroker::start().await;
    let (conn, ch, queue) = setup(&broker, FieldTable::default()).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    assert!(ch.status().confirm());
    // Selecting again is harmless.
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();

    for i in 0..5 {
        let c = publish(&ch, "", &queue, format!("m{i}").as_bytes()).await;
        assert_eq!(c, Confirmation::Ack(None), "publish {i}");
    }
    // An ack means the queue has it.
    let q = ch
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(q.message_count(), 5);
    teardown(conn, &queue).await;
}

#[tokio::test]
async fn unroutable_messages_are_still_acked() {
    let broker = TestBroker::start().await;
    let (conn, ch, queue) = setup(&broker, FieldTable::default()).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let x = format!("confirm-x-{}", unique());
    ch.exchange_declare(
        x.as_str().into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    assert_eq!(
        publish(&ch, &x, "no.binding", b"lost").await,
        Confirmation::Ack(None)
    );
    assert_eq!(
        publish(&ch, "", &format!("no-queue-{}", unique()), b"lost").await,
        Confirmation::Ack(None)
    );

    // Mandatory + unroutable: basic.return then basic.ack.
    let confirm = ch
        .basic_publish(
            x.as_str().into(),
            "no.binding".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"returned",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    match within("confirm", confirm).await.unwrap() {
        Confirmation::Ack(Some(returned)) => {
            assert_eq!(returned.reply_code, 312);
            assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
            assert_eq!(returned.delivery.data, b"returned");
        }
        other => panic!("expected Ack(Some(returned)), got {other:?}"),
    }
    ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    teardown(conn, &queue).await;
}

#[tokio::test]
async fn many_publishes_are_all_confirmed() {
    let broker = TestBroker::start().await;
    let (conn, ch, queue) = setup(&broker, FieldTable::default()).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();

    const N: usize = 2000;
    let mut pending = Vec::with_capacity(N);
    for i in 0..N {
        pending.push(
            ch.basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap(),
        );
    }
    // The broker may confirm in batches (multiple=true); every one resolves to Ack.
    for (i, confirm) in pending.into_iter().enumerate() {
        assert_eq!(
            within("confirm", confirm).await.unwrap(),
            Confirmation::Ack(None),
            "publish {i}"
        );
    }

    // wait_for_confirms covers publishes whose futures were dropped.
    for i in 0..N {
        drop(
            ch.basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                format!("n{i}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap(),
        );
    }
    let returned = within("all confirms", ch.wait_for_confirms())
        .await
        .unwrap();
    assert!(returned.is_empty());

    let q = ch
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(q.message_count() as usize, 2 * N);
    // Order is preserved end to end.
    let first = ch
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.delivery.data, b"m0");
    teardown(conn, &queue).await;
}

#[tokio::test]
async fn reject_publish_overflow_is_nacked() {
    let broker = TestBroker::start().await;
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(1));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString(LongString::from("reject-publish")),
    );
    let (conn, ch, queue) = setup(&broker, args).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    assert_eq!(
        publish(&ch, "", &queue, b"fits").await,
        Confirmation::Ack(None)
    );
    assert_eq!(
        publish(&ch, "", &queue, b"overflows").await,
        Confirmation::Nack(None),
        "a full reject-publish queue nacks"
    );
    let got = ch
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.delivery.data, b"fits");
    assert_eq!(got.message_count, 0);
    teardown(conn, &queue).await;
}

#[tokio::test]
async fn confirm_select_on_a_transactional_channel_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.tx_select().await.unwrap();
    let text = expect_code(
        ch.confirm_select(ConfirmSelectOptions::default()).await,
        406,
    );
    assert_eq!(
        text,
        "PRECONDITION_FAILED - cannot switch from tx to confirm mode"
    );
    assert!(conn.status().connected());
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn confirms_are_per_channel() {
    let broker = TestBroker::start().await;
    let (conn, ch, queue) = setup(&broker, FieldTable::default()).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let plain = conn.create_channel().await.unwrap();
    assert_eq!(
        publish(&plain, "", &queue, b"plain").await,
        Confirmation::NotRequested
    );
    assert_eq!(
        publish(&ch, "", &queue, b"confirmed").await,
        Confirmation::Ack(None)
    );
    teardown(conn, &queue).await;
}
