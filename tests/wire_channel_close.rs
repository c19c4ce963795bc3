//! Crossed channel closes: the broker closes a channel for a soft error while the client
//! closes it too. As the spec's handshake (and RabbitMQ 3.10) has it, the broker answers
//! the client's channel.close with close-ok and keeps waiting for the close-ok to its own
//! close; only that channel ends, the connection and its other channels carry on.
//!
//! The same frames give the same answers from RabbitMQ 3.10.8.

mod raw;

use raw::{RawClient, broker};
use warren::protocol::*;

/// A passive declare of a missing queue: a soft error, 404.
fn missing_queue() -> Method {
    QueueDeclare {
        queue: "no-such-queue".into(),
        passive: true,
        ..Default::default()
    }
    .into()
}

fn client_close() -> Method {
    ChannelClose {
        reply_code: 200,
        reply_text: "bye".into(),
        class_id: 0,
        method_id: 0,
    }
    .into()
}

#[tokio::test]
async fn crossed_channel_closes_close_only_the_channel() {
    let server = broker(|_| {}).await;
    let mut c = RawClient::handshake(&server, &[]).await;
    c.send(2, ChannelOpen {}.into()).await;
    assert!(matches!(
        c.expect_method().await,
        (2, Method::ChannelOpenOk(_))
    ));

    // The soft error, then the client's own close and its close-ok to the broker's close,
    // back to back, before reading the broker's close: the two closes cross.
    c.send(1, missing_queue()).await;
    c.send(1, client_close()).await;
    c.send(1, ChannelCloseOk {}.into()).await;
    // Then another channel is used, and channel 1 opened again.
    c.send(2, ChannelFlow { active: true }.into()).await;
    c.send(1, ChannelOpen {}.into()).await;

    let (ch, m) = c.expect_method().await;
    assert_eq!(ch, 1);
    let Method::ChannelClose(close) = m else {
        panic!("expected channel.close, got {m:?}")
    };
    assert_eq!(close.reply_code, reply_code::NOT_FOUND);
    assert_eq!(
        close.reply_text,
        "NOT_FOUND - no queue 'no-such-queue' in vhost '/'"
    );
    let (ch, m) = c.expect_method().await;
    assert_eq!(ch, 1);
    assert!(matches!(m, Method::ChannelCloseOk(_)), "got {m:?}");
    let (ch, m) = c.expect_method().await;
    assert_eq!(ch, 2);
    assert!(matches!(m, Method::ChannelFlowOk(_)), "got {m:?}");
    let (ch, m) = c.expect_method().await;
    assert_eq!(ch, 1);
    assert!(matches!(m, Method::ChannelOpenOk(_)), "got {m:?}");

    // The reopened channel works.
    c.send(
        1,
        QueueDeclare {
            queue: "crossed".into(),
            ..Default::default()
        }
        .into(),
    )
    .await;
    let (ch, m) = c.expect_method().await;
    assert_eq!(ch, 1);
    assert!(matches!(m, Method::QueueDeclareOk(_)), "got {m:?}");
}

/// The client answers the broker's close first and then sends its own close: the channel
/// is already gone, so the close is on a closed channel, RabbitMQ's 504.
#[tokio::test]
async fn close_after_close_ok_is_a_channel_error() {
    let server = broker(|_| {}).await;
    let mut c = RawClient::handshake(&server, &[]).await;
    c.send(1, missing_queue()).await;
    c.send(1, ChannelCloseOk {}.into()).await;
    c.send(1, client_close()).await;
    assert!(matches!(
        c.expect_method().await,
        (1, Method::ChannelClose(_))
    ));
    let (ch, m) = c.expect_method().await;
    assert_eq!(ch, 0);
    let Method::ConnectionClose(close) = m else {
        panic!("expected connection.close, got {m:?}")
    };
    assert_eq!(close.reply_code, reply_code::CHANNEL_ERROR);
    assert_eq!(close.reply_text, "CHANNEL_ERROR - expected 'channel.open'");
    assert_eq!((close.class_id, close.method_id), (20, 40));
}
