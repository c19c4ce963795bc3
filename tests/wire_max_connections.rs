//! `amqp.max_connections` (RabbitMQ's connection_max): at the limit, a new socket is closed
//! as soon as it is accepted, without a reply; connections still in the handshake count;
//! a place comes back when a connection ends.

mod raw;

use raw::{RawClient, broker};
use std::time::Duration;
use warren::protocol::*;

#[tokio::test]
async fn connections_past_the_limit_are_closed_at_accept() {
    let server = broker(|c| c.amqp.max_connections = 2).await;
    let a = RawClient::handshake(&server, &[]).await;
    // The second place is taken by a connection that has not even sent its header.
    let mut pending = RawClient::connect(&server).await;
    pending.send_raw(&PROTOCOL_HEADER).await;
    let (_, m) = pending.expect_method().await;
    assert!(matches!(m, Method::ConnectionStart(_)), "got {m:?}");

    let mut refused = RawClient::connect(&server).await;
    // The broker may already have closed it: the header may not even be written.
    let _ = refused.try_send_raw(&PROTOCOL_HEADER).await;
    refused
        .expect_closed_without_reply(Duration::from_secs(5))
        .await;

    // A place comes back when a connection ends (close_and_wait returns once the broker
    // has closed its end, which it does after giving the place back).
    a.close_and_wait().await;
    let mut c = RawClient::handshake(&server, &[]).await;
    c.send(1, ChannelFlow { active: true }.into()).await;
    let (_, m) = c.expect_method().await;
    assert!(matches!(m, Method::ChannelFlowOk(_)), "got {m:?}");

    // Full again.
    let mut refused = RawClient::connect(&server).await;
    let _ = refused.try_send_raw(&PROTOCOL_HEADER).await;
    refused
        .expect_closed_without_reply(Duration::from_secs(5))
        .await;
}

#[tokio::test]
async fn no_limit_by_default() {
    let server = broker(|_| {}).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(RawClient::handshake(&server, &[]).await);
    }
}
