//! Frame size tolerance after tuning, as RabbitMQ: a frame payload may reach the negotiated
//! frame_max itself (rabbit_reader's FRAME_SIZE_FUDGE covers clients that forget the eight
//! octets of frame overhead); one octet more is 501 FRAME_ERROR naming frame_max - 8.
//!
//! The same frames give the same answers from RabbitMQ 3.10 with frame_max 4096.

mod raw;

use bytes::BytesMut;
use raw::{RawClient, broker};
use warren::protocol::frame::{encode_body, encode_header};
use warren::protocol::*;

const FRAME_MAX: u32 = 4096;

/// basic.publish to nowhere with a body of `size` octets in one body frame.
fn publish_one_frame(size: usize) -> BytesMut {
    let mut out = BytesMut::new();
    encode_method(
        &mut out,
        1,
        &BasicPublish {
            routing_key: "nowhere".into(),
            ..Default::default()
        }
        .into(),
    );
    encode_header(&mut out, 1, size as u64, &EncodedProperties::default());
    encode_body(&mut out, 1, &vec![b'x'; size]);
    out
}

#[tokio::test]
async fn body_frame_with_a_payload_of_frame_max_is_accepted() {
    let server = broker(|c| c.amqp.frame_max = FRAME_MAX).await;
    let mut c = RawClient::handshake(&server, &[]).await;
    c.send_raw(&publish_one_frame(FRAME_MAX as usize)).await;
    // The connection and channel are still fine: the next method is answered.
    c.send(1, ChannelFlow { active: true }.into()).await;
    let (ch, m) = c.expect_method().await;
    assert_eq!(ch, 1);
    assert!(matches!(m, Method::ChannelFlowOk(_)), "got {m:?}");
}

#[tokio::test]
async fn body_frame_one_octet_over_frame_max_is_a_frame_error() {
    let server = broker(|c| c.amqp.frame_max = FRAME_MAX).await;
    let mut c = RawClient::handshake(&server, &[]).await;
    c.send_raw(&publish_one_frame(FRAME_MAX as usize + 1)).await;
    let (ch, m) = c.expect_method().await;
    assert_eq!(ch, 0);
    let Method::ConnectionClose(close) = m else {
        panic!("expected connection.close, got {m:?}")
    };
    assert_eq!(close.reply_code, reply_code::FRAME_ERROR);
    assert_eq!(
        close.reply_text,
        "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,4097,4088}"
    );
    assert_eq!((close.class_id, close.method_id), (0, 0));
}
