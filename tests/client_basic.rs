//! The basic class: publish, consume, get, acknowledgements, prefetch, returns.

mod common;

use common::{Deliveries, TestBroker, body, expect_code, unique, within};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};

/// One connection, a confirm-mode publishing channel and a queue of our own.
struct Fixture {
    conn: Connection,
    publisher: Channel,
    queue: String,
}

impl Fixture {
    async fn new(broker: &TestBroker) -> Fixture {
        Self::with_args(broker, FieldTable::default()).await
    }

    async fn with_args(broker: &TestBroker, args: FieldTable) -> Fixture {
        let conn = broker.connect().await;
        let publisher = conn.create_channel().await.unwrap();
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let queue = format!("basic-{}", unique());
        publisher
            .queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), args)
            .await
            .unwrap();
        Fixture {
            conn,
            publisher,
            queue,
        }
    }

    async fn channel(&self) -> Channel {
        self.conn.create_channel().await.unwrap()
    }

    /// Publishes to the queue via the default exchange and waits for the confirm.
    async fn publish_props(&self, payload: &[u8], props: BasicProperties) {
        let confirm = self
            .publisher
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                BasicPublishOptions::default(),
                payload,
                props,
            )
            .await
            .unwrap();
        assert_eq!(
            within("confirm", confirm).await.unwrap(),
            Confirmation::Ack(None)
        );
    }

    /// Publishes a mandatory message to a queue that does not exist; returns what came back.
    async fn publish_to_no_queue(&self, payload: &[u8]) -> lapin::message::BasicReturnMessage {
        let confirm = self
            .publisher
            .basic_publish(
                "".into(),
                format!("no-such-queue-{}", unique()).into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                payload,
                BasicProperties::default(),
            )
            .await
            .unwrap();
        within("confirm", confirm)
            .await
            .unwrap()
            .take_message()
            .expect("the returned message")
    }

    async fn publish(&self, payload: &str) {
        self.publish_props(payload.as_bytes(), BasicProperties::default())
            .await;
    }

    async fn publish_n(&self, n: usize) {
        for i in 0..n {
            self.publish(&format!("m{i}")).await;
        }
    }

    async fn consume(&self, ch: &Channel, tag: &str, options: BasicConsumeOptions) -> Deliveries {
        self.consume_args(ch, tag, options, FieldTable::default())
            .await
    }

    async fn consume_args(
        &self,
        ch: &Channel,
        tag: &str,
        options: BasicConsumeOptions,
        args: FieldTable,
    ) -> Deliveries {
        Deliveries::new(
            ch.basic_consume(self.queue.as_str().into(), tag.into(), options, args)
                .await
                .unwrap(),
        )
    }

    async fn get(&self, ch: &Channel, no_ack: bool) -> Option<lapin::message::BasicGetMessage> {
        within(
            "basic.get",
            ch.basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack }),
        )
        .await
        .unwrap()
    }

    /// (ready messages, consumers) as reported by a passive declare.
    async fn counts(&self) -> (u32, u32) {
        let ch = self.channel().await;
        let q = ch
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        ch.close(200, "OK".into()).await.unwrap();
        (q.message_count(), q.consumer_count())
    }

    async fn cleanup(self) {
        let ch = self.channel().await;
        ch.queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
        self.conn.close(200, "OK".into()).await.unwrap();
    }
}

fn manual_ack() -> BasicConsumeOptions {
    BasicConsumeOptions::default()
}

fn no_ack() -> BasicConsumeOptions {
    BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    }
}

fn longstr(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

#[tokio::test]
async fn publish_consume_round_trip_preserves_properties_and_headers() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;

    let mut nested = FieldTable::default();
    nested.insert("inner".into(), longstr("value"));
    nested.insert("depth".into(), AMQPValue::LongInt(2));
    let mut headers = FieldTable::default();
    headers.insert("bool".into(), AMQPValue::Boolean(true));
    headers.insert("i8".into(), AMQPValue::ShortShortInt(-8));
    headers.insert("u8".into(), AMQPValue::ShortShortUInt(200));
    headers.insert("i16".into(), AMQPValue::ShortInt(-1600));
    headers.insert("u16".into(), AMQPValue::ShortUInt(60000));
    headers.insert("i32".into(), AMQPValue::LongInt(-320_000));
    headers.insert("u32".into(), AMQPValue::LongUInt(4_000_000_000));
    headers.insert("i64".into(), AMQPValue::LongLongInt(-6_400_000_000_000));
    headers.insert("f32".into(), AMQPValue::Float(1.5));
    headers.insert("f64".into(), AMQPValue::Double(-2.25));
    headers.insert(
        "decimal".into(),
        AMQPValue::DecimalValue(DecimalValue {
            scale: 2,
            value: 12345,
        }),
    );
    headers.insert("string".into(), longstr("héllo wörld"));
    headers.insert(
        "array".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::LongInt(1),
            longstr("two"),
            AMQPValue::Boolean(false),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Double(3.0)])),
        ])),
    );
    headers.insert("timestamp".into(), AMQPValue::Timestamp(1_700_000_000));
    headers.insert("table".into(), AMQPValue::FieldTable(nested));
    headers.insert(
        "bytes".into(),
        AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 2, 255])),
    );
    headers.insert("void".into(), AMQPValue::Void);

    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-1".into())
        .with_reply_to("reply-queue".into())
        .with_expiration("60000".into())
        .with_message_id("msg-1".into())
        .with_timestamp(1_700_000_001)
        .with_type("order.created".into())
        .with_user_id("guest".into())
        .with_app_id("warren-tests".into())
        .with_cluster_id("cluster-a".into());

    let ch = f.channel().await;
    let mut consumer = f.consume(&ch, "round-trip", manual_ack()).await;
    f.publish_props(b"{\"hello\":\"world\"}", props.clone())
        .await;

    let d = consumer.next().await;
    assert_eq!(d.data, b"{\"hello\":\"world\"}");
    assert_eq!(d.exchange.as_str(), "");
    assert_eq!(d.routing_key.as_str(), f.queue);
    assert!(!d.redelivered);
    assert_eq!(
        d.delivery_tag, 1,
        "delivery tags start at 1 on each channel"
    );
    assert_eq!(
        d.properties, props,
        "every property and header type survives"
    );
    d.ack(BasicAckOptions::default()).await.unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn user_id_must_match_the_authenticated_user_406() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let confirm = f
        .publisher
        .basic_publish(
            "".into(),
            f.queue.as_str().into(),
            BasicPublishOptions::default(),
            b"impostor",
            BasicProperties::default().with_user_id("mallory".into()),
        )
        .await
        .unwrap();
    let text = expect_code(within("channel.close", confirm).await, 406);
    assert_eq!(
        text,
        "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'"
    );
    assert!(f.conn.status().connected());
    f.cleanup().await;
}

#[tokio::test]
async fn basic_get_and_get_empty() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let ch = f.channel().await;

    assert!(
        f.get(&ch, true).await.is_none(),
        "get-empty on an empty queue"
    );

    f.publish_n(3).await;
    let first = f.get(&ch, false).await.expect("m0");
    assert_eq!(body(&first.delivery), "m0");
    assert_eq!(first.message_count, 2, "messages left after this one");
    assert_eq!(first.delivery.delivery_tag, 1);
    assert!(!first.delivery.redelivered);
    assert_eq!(first.delivery.routing_key.as_str(), f.queue);

    let second = f.get(&ch, false).await.expect("m1");
    assert_eq!(body(&second.delivery), "m1");
    assert_eq!(second.message_count, 1);
    assert_eq!(second.delivery.delivery_tag, 2);

    let third = f.get(&ch, true).await.expect("m2");
    assert_eq!(third.message_count, 0);
    assert_eq!(
        third.delivery.delivery_tag, 3,
        "no-ack gets also take a tag"
    );
    assert!(f.get(&ch, true).await.is_none());

    first
        .delivery
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    second
        .delivery
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    // Acks are processed in order before the channel's close-ok.
    ch.close(200, "OK".into()).await.unwrap();
    assert_eq!(f.counts().await, (0, 0));

    let bad = f.channel().await;
    let missing = format!("missing-{}", unique());
    let text = expect_code(
        bad.basic_get(missing.as_str().into(), BasicGetOptions::default())
            .await,
        404,
    );
    assert_eq!(
        text,
        format!("NOT_FOUND - no queue '{missing}' in vhost '/'")
    );
    f.cleanup().await;
}

#[tokio::test]
async fn ack_removes_the_message_for_good() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let ch = f.channel().await;
    let mut c = f.consume(&ch, "acker", manual_ack()).await;
    f.publish("only").await;
    let d = c.next().await;
    assert!(d.ack(BasicAckOptions::default()).await.unwrap());
    ch.close(200, "OK".into()).await.unwrap();
    assert_eq!(f.counts().await, (0, 0));
    f.cleanup().await;
}

#[tokio::test]
async fn nack_with_requeue_redelivers_with_redelivered_flag() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let ch = f.channel().await;
    let mut c = f.consume(&ch, "nacker", manual_ack()).await;
    f.publish("again").await;

    let d = c.next().await;
    assert!(!d.redelivered);
    d.nack(BasicNackOptions {
        requeue: true,
        multiple: false,
    })
    .await
    .unwrap();

    let again = c.next().await;
    assert_eq!(body(&again), "again");
    assert!(
        again.redelivered,
        "a requeued message is flagged redelivered"
    );
    assert_ne!(again.delivery_tag, d.delivery_tag, "a new delivery tag");
    again.ack(BasicAckOptions::default()).await.unwrap();

    // reject(requeue=true) behaves the same.
    f.publish("rejected-once").await;
    let d = c.next().await;
    d.reject(BasicRejectOptions { requeue: true })
        .await
        .unwrap();
    let again = c.next().await;
    assert_eq!(body(&again), "rejected-once");
    assert!(again.redelivered);
    again.ack(BasicAckOptions::default()).await.unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn reject_and_nack_without_requeue_drop_the_message() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let ch = f.channel().await;
    f.publish_n(2).await;
    let a = f.get(&ch, false).await.unwrap();
    let b = f.get(&ch, false).await.unwrap();
    a.delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    b.delivery
        .nack(BasicNackOptions {
            requeue: false,
            multiple: false,
        })
        .await
        .unwrap();
    // Had they merely been left unacked, closing the channel would requeue them.
    ch.close(200, "OK".into()).await.unwrap();
    let other = f.channel().await;
    assert!(f.get(&other, true).await.is_none());
    assert_eq!(f.counts().await, (0, 0));
    f.cleanup().await;
}

#[tokio::test]
async fn multiple_ack_covers_all_earlier_tags() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let ch = f.channel().await;
    let mut c = f.consume(&ch, "multi", manual_ack()).await;
    f.publish_n(5).await;
    let ds = c.take(5).await;
    let tags: Vec<u64> = ds.iter().map(|d| d.delivery_tag).collect();
    assert_eq!(tags, [1, 2, 3, 4, 5]);

    // Ack 1..=3 in one go, then nack 4..=5 (multiple) with requeue.
    ch.basic_ack(3, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    ch.basic_nack(
        5,
        BasicNackOptions {
            multiple: true,
            requeue: true,
        },
    )
    .await
    .unwrap();
    let again = c.take(2).await;
    assert_eq!(
        again.iter().map(body).collect::<Vec<_>>(),
        ["m3", "m4"],
        "only the nacked ones come back, in order"
    );
    assert!(again.iter().all(|d| d.redelivered));
    // delivery-tag 0 with multiple=true acks everything outstanding.
    ch.basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    ch.close(200, "OK".into()).await.unwrap();
    assert_eq!(f.counts().await, (0, 0));
    f.cleanup().await;
}

#[tokio::test]
async fn ack_of_unknown_delivery_tag_closes_the_channel_406() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let ch = f.channel().await;
    // The consumer is how the client observes the asynchronous channel.close:
    // basic.ack has no reply, so lapin reports the close to the channel's consumers.
    let mut c = f.consume(&ch, "watcher", manual_ack()).await;
    ch.basic_ack(99, BasicAckOptions::default()).await.unwrap();

    let err = match c.event_within(common::TIMEOUT).await {
        Some(Err(e)) => e,
        other => panic!("expected the channel error, got {other:?}"),
    };
    let (code, text) = common::amqp_error(&err);
    assert_eq!(code, 406);
    assert_eq!(text, "PRECONDITION_FAILED - unknown delivery tag 99");
    c.expect_cancelled().await;
    assert!(!ch.status().connected());
    assert!(f.conn.status().connected(), "only the channel is closed");

    // Acking the same tag twice is also an unknown tag.
    let ch = f.channel().await;
    let mut c = f.consume(&ch, "twice", manual_ack()).await;
    f.publish("x").await;
    let d = c.next().await;
    ch.basic_ack(d.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    ch.basic_ack(d.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    let err = match c.event_within(common::TIMEOUT).await {
        Some(Err(e)) => e,
        other => panic!("expected the channel error, got {other:?}"),
    };
    assert_eq!(
        common::amqp_error(&err),
        (
            406,
            "PRECONDITION_FAILED - unknown delivery tag 1".to_string()
        )
    );
    f.cleanup().await;
}

#[tokio::test]
async fn prefetch_limits_unacked_deliveries() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let ch = f.channel().await;
    ch.basic_qos(2, BasicQosOptions::default()).await.unwrap();
    let mut c = f.consume(&ch, "prefetch", manual_ack()).await;
    f.publish_n(5).await; // every confirm means the queue has the message

    let first = c.take(2).await;
    assert_eq!(first.iter().map(body).collect::<Vec<_>>(), ["m0", "m1"]);
    // All five were enqueued before we looked, with a consumer attached, yet
    // three are still ready: the broker stopped at the prefetch limit.
    assert_eq!(f.counts().await, (3, 1));

    // One ack frees one slot: exactly the next message arrives.
    first[0].ack(BasicAckOptions::default()).await.unwrap();
    let third = c.next().await;
    assert_eq!(body(&third), "m2");
    assert_eq!(f.counts().await, (2, 1));

    // Acking two frees two slots.
    first[1].ack(BasicAckOptions::default()).await.unwrap();
    third.ack(BasicAckOptions::default()).await.unwrap();
    let rest = c.take(2).await;
    assert_eq!(rest.iter().map(body).collect::<Vec<_>>(), ["m3", "m4"]);
    for d in &rest {
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    f.cleanup().await;
}

#[tokio::test]
async fn prefetch_does_not_limit_no_ack_consumers_or_basic_get() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let ch = f.channel().await;
    ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    f.publish_n(3).await;
    // basic.get ignores prefetch.
    let a = f.get(&ch, false).await.unwrap();
    let b = f.get(&ch, false).await.unwrap();
    assert_eq!(
        (body(&a.delivery), body(&b.delivery)),
        ("m0".into(), "m1".into())
    );
    ch.basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .unwrap();

    f.publish_n(3).await;
    let mut c = f.consume(&ch, "noack", no_ack()).await;
    let ds = c.take(4).await;
    assert_eq!(
        ds.iter().map(body).collect::<Vec<_>>(),
        ["m2", "m0", "m1", "m2"]
    );
    f.cleanup().await;
}

#[tokio::test]
async fn unacked_messages_are_requeued_in_order_when_the_channel_closes() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let ch = f.channel().await;
    let mut c = f.consume(&ch, "first", manual_ack()).await;
    f.publish_n(4).await;
    let ds = c.take(4).await;
    // Settle one in the middle; the rest stay unacked.
    ds[1].ack(BasicAckOptions::default()).await.unwrap();
    ch.close(200, "OK".into()).await.unwrap();
    c.expect_cancelled().await;

    let ch2 = f.channel().await;
    let mut c2 = f.consume(&ch2, "second", manual_ack()).await;
    let again = c2.take(3).await;
    assert_eq!(
        again.iter().map(body).collect::<Vec<_>>(),
        ["m0", "m2", "m3"],
        "requeued at their original positions"
    );
    assert!(again.iter().all(|d| d.redelivered));
    assert_eq!(
        again.iter().map(|d| d.delivery_tag).collect::<Vec<_>>(),
        [1, 2, 3],
        "tags restart on the new channel"
    );

    // Fresh messages come after the requeued ones and are not redelivered.
    f.publish("fresh").await;
    let fresh = c2.next().await;
    assert_eq!(body(&fresh), "fresh");
    assert!(!fresh.redelivered);
    ch2.basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn cancel_stops_deliveries() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let ch = f.channel().await;
    let mut c = f.consume(&ch, "cancel-me", no_ack()).await;
    f.publish("before").await;
    assert_eq!(body(&c.next().await), "before");

    ch.basic_cancel("cancel-me".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    c.expect_cancelled().await;
    f.publish("after").await;
    assert_eq!(f.counts().await, (1, 0), "stays queued, nobody consumes");

    // The tag is free for reuse after cancel-ok.
    let mut again = f.consume(&ch, "cancel-me", no_ack()).await;
    assert_eq!(body(&again.next().await), "after");

    // Cancelling an unknown tag is not an error.
    ch.basic_cancel("never-existed".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    assert!(ch.status().connected());
    f.cleanup().await;
}

#[tokio::test]
async fn server_generates_consumer_tags() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let ch = f.channel().await;
    let a = f.consume(&ch, "", no_ack()).await;
    let b = f.consume(&ch, "", no_ack()).await;
    assert!(a.tag().starts_with("amq.ctag-"), "{}", a.tag());
    assert!(b.tag().starts_with("amq.ctag-"), "{}", b.tag());
    assert_ne!(a.tag(), b.tag());
    assert_eq!(f.counts().await, (0, 2));
    f.cleanup().await;
}

#[tokio::test]
async fn reusing_a_consumer_tag_on_a_channel_closes_the_connection_530() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let _c = Deliveries::new(
        ch.basic_consume(
            f.queue.as_str().into(),
            "dup".into(),
            no_ack(),
            FieldTable::default(),
        )
        .await
        .unwrap(),
    );
    let err = ch
        .basic_consume(
            f.queue.as_str().into(),
            "dup".into(),
            no_ack(),
            FieldTable::default(),
        )
        .await
        .expect_err("duplicate consumer tag");
    assert!(err.is_amqp_hard_error(), "{err:?}");
    assert_eq!(
        common::amqp_error(&err),
        (
            530,
            "NOT_ALLOWED - attempt to reuse consumer tag 'dup'".to_string()
        )
    );
    assert!(
        !conn.status().connected(),
        "a hard error closes the connection"
    );
    f.cleanup().await;
}

#[tokio::test]
async fn exclusive_consumer_locks_out_others_403() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let ch = f.channel().await;
    let _c = f
        .consume(
            &ch,
            "exclusive",
            BasicConsumeOptions {
                exclusive: true,
                ..Default::default()
            },
        )
        .await;
    let other = f.channel().await;
    let text = expect_code(
        other
            .basic_consume(
                f.queue.as_str().into(),
                "second".into(),
                manual_ack(),
                FieldTable::default(),
            )
            .await,
        403,
    );
    assert_eq!(
        text,
        format!(
            "ACCESS_REFUSED - queue '{}' in vhost '/' in exclusive use",
            f.queue
        )
    );

    // And an exclusive consume is refused while any consumer exists.
    let ch2 = f.channel().await;
    ch.basic_cancel("exclusive".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    let _plain = f.consume(&ch, "plain", manual_ack()).await;
    let text = expect_code(
        ch2.basic_consume(
            f.queue.as_str().into(),
            "wants-exclusive".into(),
            BasicConsumeOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await,
        403,
    );
    assert_eq!(
        text,
        format!(
            "ACCESS_REFUSED - queue '{}' in vhost '/' in exclusive use",
            f.queue
        )
    );
    f.cleanup().await;
}

#[tokio::test]
async fn consume_from_missing_queue_is_404() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let missing = format!("missing-{}", unique());
    let text = expect_code(
        ch.basic_consume(
            missing.as_str().into(),
            "".into(),
            manual_ack(),
            FieldTable::default(),
        )
        .await,
        404,
    );
    assert_eq!(
        text,
        format!("NOT_FOUND - no queue '{missing}' in vhost '/'")
    );
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn deleting_the_queue_cancels_its_consumers() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let ch = f.channel().await;
    let mut c = f.consume(&ch, "doomed", manual_ack()).await;
    f.publish("last").await;
    let d = c.next().await;
    assert_eq!(body(&d), "last");

    // The broker sends basic.cancel (consumer_cancel_notify); lapin ends the stream.
    f.publisher
        .queue_delete(f.queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    c.expect_cancelled().await;

    // The channel survives, and the now-stale delivery tag can still be acked.
    assert!(ch.status().connected());
    d.ack(BasicAckOptions::default()).await.unwrap();
    ch.basic_qos(5, BasicQosOptions::default()).await.unwrap();
    assert!(ch.status().connected());

    // Recreate so cleanup has something to delete.
    f.publisher
        .queue_declare(
            f.queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn mandatory_unroutable_message_is_returned() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let x = format!("mandatory-{}", unique());
    f.publisher
        .exchange_declare(
            x.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let props = BasicProperties::default()
        .with_message_id("lost-1".into())
        .with_priority(3);
    let confirm = f
        .publisher
        .basic_publish(
            x.as_str().into(),
            "nobody-bound".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"returned body",
            props.clone(),
        )
        .await
        .unwrap();
    // basic.return arrives before basic.ack; lapin attaches it to the confirmation.
    let confirmation = within("confirm", confirm).await.unwrap();
    assert!(confirmation.is_ack(), "unroutable messages are still acked");
    let returned = confirmation.take_message().expect("the returned message");
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(returned.delivery.exchange.as_str(), x);
    assert_eq!(returned.delivery.routing_key.as_str(), "nobody-bound");
    assert_eq!(returned.delivery.data, b"returned body");
    assert_eq!(returned.delivery.properties, props);

    // Same through the default exchange to a queue that does not exist.
    let returned = f.publish_to_no_queue(b"x").await;
    assert_eq!(returned.reply_code, 312);

    // Mandatory but routable: nothing returned. Not mandatory and unroutable: dropped.
    let confirm = f
        .publisher
        .basic_publish(
            "".into(),
            f.queue.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"routable",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        within("confirm", confirm).await.unwrap(),
        Confirmation::Ack(None)
    );
    let confirm = f
        .publisher
        .basic_publish(
            x.as_str().into(),
            "nobody-bound".into(),
            BasicPublishOptions::default(),
            b"silently dropped",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        within("confirm", confirm).await.unwrap(),
        Confirmation::Ack(None)
    );

    f.publisher
        .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn immediate_flag_is_refused_with_540() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(
            "".into(),
            f.queue.as_str().into(),
            BasicPublishOptions {
                immediate: true,
                ..Default::default()
            },
            b"now",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let err = within("connection.close", confirm)
        .await
        .expect_err("immediate is not implemented");
    assert_eq!(
        common::amqp_error(&err),
        (540, "NOT_IMPLEMENTED - immediate=true".to_string())
    );
    assert!(err.is_amqp_hard_error(), "540 closes the connection");
    f.cleanup().await;
}

#[tokio::test]
async fn one_mebibyte_message_arrives_intact() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let payload: Vec<u8> = (0..1024 * 1024)
        .map(|i: u32| (i * 31 % 251) as u8)
        .collect();
    f.publish_props(
        &payload,
        BasicProperties::default().with_message_id("big".into()),
    )
    .await;

    let ch = f.channel().await;
    let got = f.get(&ch, true).await.expect("the big message");
    assert_eq!(got.delivery.data.len(), payload.len());
    assert!(got.delivery.data == payload, "payload intact");

    let mut c = f.consume(&ch, "big", no_ack()).await;
    f.publish_props(&payload, BasicProperties::default()).await;
    let d = c.next().await;
    assert!(d.data == payload, "payload intact via basic.deliver");
    f.cleanup().await;
}

#[tokio::test]
async fn empty_body_round_trips() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let props = BasicProperties::default().with_content_type("text/plain".into());
    f.publish_props(b"", props.clone()).await;
    f.publish_props(b"", BasicProperties::default()).await;
    let ch = f.channel().await;
    let got = f.get(&ch, true).await.expect("an empty message");
    assert!(got.delivery.data.is_empty());
    assert_eq!(got.delivery.properties, props);

    let mut c = f.consume(&ch, "empty", no_ack()).await;
    let d = c.next().await;
    assert!(d.data.is_empty());
    assert_eq!(d.properties, BasicProperties::default());
    f.cleanup().await;
}

#[tokio::test]
async fn cc_and_bcc_headers_add_routing_keys_and_bcc_is_stripped() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let x = format!("cc-{}", unique());
    ch.exchange_declare(
        x.as_str().into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut queues = Vec::new();
    for key in ["to", "cc", "bcc", "other"] {
        let q = format!("cc-{key}-{}", unique());
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            q.as_str().into(),
            x.as_str().into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        queues.push(q);
    }
    // The "to" queue is also bound with the CC key: it still gets one copy.
    ch.queue_bind(
        queues[0].as_str().into(),
        x.as_str().into(),
        "cc".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    let mut headers = FieldTable::default();
    headers.insert(
        "CC".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![longstr("cc")])),
    );
    headers.insert(
        "BCC".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![longstr("bcc")])),
    );
    headers.insert("keep".into(), longstr("me"));
    let confirm = ch
        .basic_publish(
            x.as_str().into(),
            "to".into(),
            BasicPublishOptions::default(),
            b"memo",
            BasicProperties::default().with_headers(headers),
        )
        .await
        .unwrap();
    assert_eq!(
        within("confirm", confirm).await.unwrap(),
        Confirmation::Ack(None)
    );

    let mut expected_headers = FieldTable::default();
    expected_headers.insert(
        "CC".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![longstr("cc")])),
    );
    expected_headers.insert("keep".into(), longstr("me"));

    for (q, copies) in queues.iter().zip([1, 1, 1, 0]) {
        let mut got = Vec::new();
        while let Some(m) = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            got.push(m);
        }
        assert_eq!(got.len(), copies, "copies in {q}");
        for m in got {
            assert_eq!(m.delivery.data, b"memo");
            assert_eq!(
                m.delivery.routing_key.as_str(),
                "to",
                "original routing key"
            );
            assert_eq!(
                m.delivery.properties.headers().as_ref(),
                Some(&expected_headers),
                "CC kept, BCC stripped"
            );
        }
    }

    for q in &queues {
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
    ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn higher_priority_consumers_are_served_first() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let priority = |p: i32| {
        let mut t = FieldTable::default();
        t.insert("x-priority".into(), AMQPValue::LongInt(p));
        t
    };

    // The low-priority consumer registers first, so plain round-robin would favour it.
    let low_ch = f.channel().await;
    let mut low = f
        .consume_args(&low_ch, "low", manual_ack(), priority(1))
        .await;
    let high_ch = f.channel().await;
    high_ch
        .basic_qos(2, BasicQosOptions::default())
        .await
        .unwrap();
    let mut high = f
        .consume_args(&high_ch, "high", manual_ack(), priority(10))
        .await;

    // While the high-priority consumer can take messages it gets them all; once its
    // prefetch window is full the rest spill over to the low-priority one.
    f.publish_n(5).await;
    let h = high.take(2).await;
    assert_eq!(h.iter().map(body).collect::<Vec<_>>(), ["m0", "m1"]);
    let l = low.take(3).await;
    assert_eq!(l.iter().map(body).collect::<Vec<_>>(), ["m2", "m3", "m4"]);

    // With capacity again, the high-priority consumer gets the next message.
    high_ch
        .basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    f.publish("after-ack").await;
    assert_eq!(body(&high.next().await), "after-ack");
    low_ch
        .basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn round_robin_between_equal_consumers() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let ch = f.channel().await;
    let mut a = f.consume(&ch, "a", no_ack()).await;
    let mut b = f.consume(&ch, "b", no_ack()).await;
    f.publish_n(6).await;
    let got_a: Vec<String> = a.take(3).await.iter().map(body).collect();
    let got_b: Vec<String> = b.take(3).await.iter().map(body).collect();
    // Strict alternation. (RabbitMQ happens to start with the first registered
    // consumer; which one starts is not something clients can rely on.)
    let (evens, odds) = (["m0", "m2", "m4"], ["m1", "m3", "m5"]);
    assert!(
        (got_a == evens && got_b == odds) || (got_a == odds && got_b == evens),
        "a got {got_a:?}, b got {got_b:?}"
    );
    f.cleanup().await;
}

#[tokio::test]
async fn priority_queue_delivers_highest_priority_first() {
    let broker = TestBroker::start().await;
    let mut args = FieldTable::default();
    args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(10));
    let f = Fixture::with_args(&broker, args).await;
    for (text, p) in [
        ("low", 1u8),
        ("high", 9),
        ("mid", 5),
        ("none", 0),
        ("high2", 9),
    ] {
        f.publish_props(text.as_bytes(), BasicProperties::default().with_priority(p))
            .await;
    }
    let ch = f.channel().await;
    let mut order = Vec::new();
    while let Some(m) = f.get(&ch, true).await {
        order.push(body(&m.delivery));
    }
    assert_eq!(order, ["high", "high2", "mid", "low", "none"]);
    f.cleanup().await;
}

/// Bodies of every size around the point where the broker shares them instead of copying
/// (4 KiB) and past frame_max (many body frames) arrive whole and in order, interleaved
/// with small ones: through basic.deliver, basic.get-ok and basic.return.
#[tokio::test]
async fn large_bodies_arrive_whole_through_deliver_get_and_return() {
    let broker = TestBroker::start().await;
    let f = Fixture::new(&broker).await;
    let sizes = [
        4095usize,
        4096,
        16 << 10,
        10,
        131_064,
        131_065,
        400_000,
        0,
        5000,
    ];
    let bodies: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|j| (i * 31 + j * 7) as u8).collect())
        .collect();
    for b in &bodies {
        f.publish_props(b, BasicProperties::default()).await;
    }
    let ch = f.channel().await;
    let mut deliveries = f
        .consume(
            &ch,
            "large",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
        )
        .await;
    for (i, d) in deliveries.take(bodies.len()).await.iter().enumerate() {
        assert_eq!(d.data.len(), sizes[i], "delivery {i}");
        assert!(d.data == bodies[i], "delivery {i} differs");
    }
    ch.basic_cancel("large".into(), BasicCancelOptions::default())
        .await
        .unwrap();

    f.publish_props(&bodies[6], BasicProperties::default())
        .await;
    let got = ch
        .basic_get(f.queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("a message");
    assert!(got.delivery.data == bodies[6], "basic.get-ok body differs");

    let returned = f.publish_to_no_queue(&bodies[2]).await;
    assert!(
        returned.delivery.data == bodies[2],
        "basic.return body differs"
    );
    f.cleanup().await;
}
