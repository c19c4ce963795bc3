//! Protection before a connection is open, as in RabbitMQ 3.10:
//!
//! - `amqp.handshake_timeout` (RabbitMQ's handshake_timeout): a socket that does not reach
//!   connection.open in time, whether it never sends the protocol header or stops
//!   anywhere in the handshake, is closed without a reply.
//! - Until connection.tune-ok no frame may carry more than 4096 octets of payload
//!   (frame_max is not negotiated yet); a larger one gets no reply, and the socket is
//!   closed (after RabbitMQ's 3 s silent-close delay) without the broker waiting for, or
//!   buffering, the rest of the frame.
//!
//! The same exchanges give the same results against RabbitMQ 3.10.8.

mod raw;

use bytes::BytesMut;
use raw::{RawClient, broker};
use std::time::Duration;
use warren::protocol::*;

/// connection.start-ok (PLAIN guest/guest) whose frame payload is exactly `payload`
/// octets, padded with a client property.
fn start_ok_frame(payload: usize) -> BytesMut {
    let frame = |pad: usize| {
        let mut props = FieldTable::new();
        props.insert("pad", "x".repeat(pad).as_str());
        let mut out = BytesMut::new();
        encode_method(
            &mut out,
            0,
            &ConnectionStartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: "\0guest\0guest".into(),
                locale: "en_US".into(),
            }
            .into(),
        );
        out
    };
    let base = frame(0).len() - 8;
    let out = frame(payload - base);
    assert_eq!(out.len() - 8, payload);
    out
}

#[tokio::test]
async fn start_ok_of_4096_octets_is_accepted() {
    let server = broker(|_| {}).await;
    let mut c = RawClient::connect(&server).await;
    c.header_and_start().await;
    c.send_raw(&start_ok_frame(4096)).await;
    let (_, m) = c.expect_method().await;
    assert!(matches!(m, Method::ConnectionTune(_)), "got {m:?}");
}

#[tokio::test]
async fn start_ok_over_4096_octets_is_refused_before_tuning() {
    // The broker offers a far larger frame_max; it applies only after tune-ok.
    let server = broker(|c| c.amqp.frame_max = 1 << 20).await;
    let mut c = RawClient::connect(&server).await;
    c.header_and_start().await;
    c.send_raw(&start_ok_frame(4097)).await;
    c.expect_closed_without_reply(Duration::from_secs(8)).await;
}

#[tokio::test]
async fn large_frame_before_tuning_is_refused_without_waiting_for_it() {
    let server = broker(|_| {}).await;
    let mut c = RawClient::connect(&server).await;
    c.header_and_start().await;
    // A method frame announcing 128 KiB of payload (within the frame_max the broker will
    // offer, not within the pre-tune limit), of which only 32 KiB ever come: a broker that
    // waited for the whole frame would keep the socket open, buffering what arrives.
    let mut frame = vec![1u8, 0, 0];
    frame.extend_from_slice(&(128u32 << 10).to_be_bytes());
    frame.extend_from_slice(&[0u8; 32 << 10]);
    let _ = c.try_send_raw(&frame).await;
    c.expect_closed_without_reply(Duration::from_secs(8)).await;
}

/// A short handshake timeout; the tests give the broker far longer to close the socket,
/// and far less than the 10 s default.
const SHORT: u64 = 300;

async fn tuned_broker() -> warren::server::ServerHandle {
    broker(|c| c.amqp.handshake_timeout = SHORT).await
}

#[tokio::test]
async fn silent_socket_is_closed_after_the_handshake_timeout() {
    let server = tuned_broker().await;
    let mut c = RawClient::connect(&server).await;
    c.expect_closed_without_reply(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn partial_protocol_header_is_closed_after_the_handshake_timeout() {
    let server = tuned_broker().await;
    let mut c = RawClient::connect(&server).await;
    c.send_raw(&PROTOCOL_HEADER[..4]).await;
    c.expect_closed_without_reply(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn client_silent_after_start_is_closed_after_the_handshake_timeout() {
    let server = tuned_broker().await;
    let mut c = RawClient::connect(&server).await;
    c.header_and_start().await;
    c.expect_closed_without_reply(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn client_silent_after_tune_is_closed_after_the_handshake_timeout() {
    let server = tuned_broker().await;
    let mut c = RawClient::connect(&server).await;
    c.header_and_start().await;
    c.send_raw(&start_ok_frame(200)).await;
    let (_, m) = c.expect_method().await;
    assert!(matches!(m, Method::ConnectionTune(_)), "got {m:?}");
    c.expect_closed_without_reply(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn open_connection_outlives_the_handshake_timeout() {
    let server = tuned_broker().await;
    let mut c = RawClient::handshake(&server, &[]).await;
    // Not a synchronisation: the connection must still work after the deadline passed.
    tokio::time::sleep(Duration::from_millis(3 * SHORT)).await;
    c.send(1, ChannelFlow { active: true }.into()).await;
    let (_, m) = c.expect_method().await;
    assert!(matches!(m, Method::ChannelFlowOk(_)), "got {m:?}");
}
