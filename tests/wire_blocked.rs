//! connection.blocked / unblocked: over the memory high watermark, a publishing connection
//! is told it is blocked (when it announced the capability) and is no longer read from.

mod raw;

use raw::{RawClient, broker};
use warren::protocol::*;

#[tokio::test]
async fn publisher_is_blocked_over_the_memory_watermark() {
    // 1 MiB is far below any process's resident memory: the alarm is raised at once.
    let server = broker(|c| c.memory.high_watermark = "1MiB".into()).await;
    let mut c = RawClient::handshake(&server, &["connection.blocked"]).await;
    c.publish(1, "", "nowhere", b"x").await;
    let (ch, m) = c.expect_method().await;
    assert_eq!(ch, 0);
    let Method::ConnectionBlocked(b) = m else {
        panic!("expected connection.blocked, got {m:?}")
    };
    assert_eq!(b.reason, "low on memory");
    // While blocked the broker does not read: a channel.flow request gets no answer.
    c.send(1, ChannelFlow { active: true }.into()).await;
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(700), c.next_frame()).await;
    assert!(quiet.is_err(), "a blocked connection is not read from");
}

#[tokio::test]
async fn publisher_is_not_blocked_under_the_watermark() {
    let server = broker(|_| {}).await;
    let mut c = RawClient::handshake(&server, &["connection.blocked"]).await;
    c.publish(1, "", "nowhere", b"x").await;
    c.send(1, ChannelFlow { active: true }.into()).await;
    let (_, m) = c.expect_method().await;
    assert!(matches!(m, Method::ChannelFlowOk(_)), "got {m:?}");
}
