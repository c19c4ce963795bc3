//! Channels: many per connection, independent failure, and closing.

mod common;

use common::{TestBroker, expect_code, passive, unique, within};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, ExchangeKind};

async fn declare_queue(ch: &Channel, name: &str) {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            auto_delete: false,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn many_channels_on_one_connection_work_independently() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;

    let mut channels = Vec::new();
    for _ in 0..50 {
        channels.push(conn.create_channel().await.unwrap());
    }
    let mut ids: Vec<u16> = channels.iter().map(|c| c.id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 50, "every channel has its own number");

    let queue = format!("channels-{}", unique());
    declare_queue(&channels[0], &queue).await;

    // Each channel publishes one message; all land on the same queue.
    for (i, ch) in channels.iter().enumerate() {
        ch.basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            format!("from channel {i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    // A synchronous round trip on each channel orders it after that channel's publish.
    for ch in &channels {
        ch.queue_declare(queue.as_str().into(), passive(), FieldTable::default())
            .await
            .unwrap();
    }
    let q = channels[1]
        .queue_declare(queue.as_str().into(), passive(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(q.message_count(), 50);

    channels[2]
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn not_found_closes_only_that_channel() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let doomed = conn.create_channel().await.unwrap();
    let bystander = conn.create_channel().await.unwrap();

    let missing = format!("missing-{}", unique());
    let text = expect_code(
        within(
            "passive declare",
            doomed.queue_declare(missing.as_str().into(), passive(), FieldTable::default()),
        )
        .await,
        404,
    );
    assert_eq!(
        text,
        format!("NOT_FOUND - no queue '{missing}' in vhost '/'"),
        "reply text"
    );

    // The failing channel is gone: further use is refused locally.
    assert!(!doomed.status().connected());
    assert!(
        doomed
            .queue_declare(
                "".into(),
                QueueDeclareOptions::default(),
                FieldTable::default()
            )
            .await
            .is_err()
    );

    // The connection and the other channel are fine, and new channels open.
    assert!(conn.status().connected());
    assert!(bystander.status().connected());
    let q = bystander
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
    let fresh = conn.create_channel().await.unwrap();
    fresh
        .queue_declare(q.name().clone(), passive(), FieldTable::default())
        .await
        .unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn precondition_failed_closes_only_that_channel() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let other = conn.create_channel().await.unwrap();

    let exchange = format!("chan-x-{}", unique());
    ch.exchange_declare(
        exchange.as_str().into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let text = expect_code(
        other
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await,
        406,
    );
    assert!(text.starts_with("PRECONDITION_FAILED - "), "{text}");
    assert!(!other.status().connected());
    assert!(ch.status().connected());
    assert!(conn.status().connected());

    // The first channel carries on.
    ch.exchange_delete(exchange.as_str().into(), Default::default())
        .await
        .unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn a_channel_error_does_not_lose_messages_on_other_channels() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let queue = format!("chan-survive-{}", unique());
    declare_queue(&ch, &queue).await;
    ch.basic_publish(
        "".into(),
        queue.as_str().into(),
        BasicPublishOptions::default(),
        b"still here",
        BasicProperties::default(),
    )
    .await
    .unwrap();

    let bad = conn.create_channel().await.unwrap();
    expect_code(
        bad.queue_declare(
            format!("missing-{}", unique()).into(),
            passive(),
            FieldTable::default(),
        )
        .await,
        404,
    );

    let got = within(
        "basic.get",
        ch.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap()
    .expect("message is still queued");
    assert_eq!(got.delivery.data, b"still here");
    ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn client_channel_close_then_reopen() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    within("channel.close-ok", ch.close(200, "OK".into()))
        .await
        .unwrap();
    assert!(!ch.status().connected());
    assert!(
        ch.basic_qos(1, Default::default()).await.is_err(),
        "closed channel refuses work"
    );
    assert!(conn.status().connected());

    let again = conn.create_channel().await.unwrap();
    again.basic_qos(1, Default::default()).await.unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn closing_a_channel_cancels_its_consumers() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let queue = format!("chan-consumers-{}", unique());
    declare_queue(&ch, &queue).await;
    let consumer = ch
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let observer = conn.create_channel().await.unwrap();
    let q = observer
        .queue_declare(queue.as_str().into(), passive(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(q.consumer_count(), 1);

    ch.close(200, "OK".into()).await.unwrap();
    let q = observer
        .queue_declare(queue.as_str().into(), passive(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(q.consumer_count(), 0);
    drop(consumer);

    observer
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}
