//! A consumer that does not read its socket does not make the broker buffer without
//! bound: once its outgoing buffer is full, messages wait in the queue, and they all
//! arrive once it reads again.

mod raw;

use raw::{RawClient, broker};
use warren::protocol::*;

const MESSAGES: usize = 4000;
const SIZE: usize = 16 * 1024; // 64 MiB in all, far beyond the 8 MiB outbox limit

async fn declare(c: &mut RawClient, queue: &str, passive: bool) -> QueueDeclareOk {
    c.send(
        1,
        QueueDeclare {
            queue: queue.into(),
            passive,
            ..Default::default()
        }
        .into(),
    )
    .await;
    match c.expect_method().await.1 {
        Method::QueueDeclareOk(ok) => ok,
        other => panic!("expected declare-ok, got {other:?}"),
    }
}

#[tokio::test]
async fn slow_no_ack_consumer_leaves_messages_in_the_queue() {
    let server = broker(|_| {}).await;
    let mut publisher = RawClient::handshake(&server, &[]).await;
    declare(&mut publisher, "slow", false).await;

    let mut slow = RawClient::handshake(&server, &[]).await;
    slow.send(
        1,
        BasicConsume {
            queue: "slow".into(),
            consumer_tag: "slow".into(),
            no_ack: true,
            ..Default::default()
        }
        .into(),
    )
    .await;
    assert!(matches!(
        slow.expect_method().await.1,
        Method::BasicConsumeOk(_)
    ));

    let body = vec![7u8; SIZE];
    for _ in 0..MESSAGES {
        publisher.publish(1, "", "slow", &body).await;
    }
    // Declare-ok comes after every publish before it has been routed.
    let held = declare(&mut publisher, "slow", true).await.message_count as usize;
    assert!(
        held > MESSAGES / 2,
        "only {held} of {MESSAGES} messages waited in the queue: the slow consumer's buffer grew instead"
    );

    // Reading again, the consumer gets every message.
    let mut delivered = 0;
    while delivered < MESSAGES {
        if let Frame::Method {
            method: Method::BasicDeliver(_),
            ..
        } = slow.next_frame().await.expect("connection open")
        {
            delivered += 1;
        }
    }
    assert_eq!(declare(&mut publisher, "slow", true).await.message_count, 0);
}
