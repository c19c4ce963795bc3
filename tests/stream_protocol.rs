//! The stream protocol through RabbitMQ's own Rust client (`rabbitmq-stream-client`),
//! unchanged: create a stream, publish with confirms, consume from first, offset tracking,
//! deduplication, delete.
//!
//! By default each test starts Warren with `stream.listen = 127.0.0.1:0` (the advertised
//! port is then the bound one, which the client connects to after metadata). With
//! `STREAM_TEST_ADDR=127.0.0.1:5553` the same tests run against that broker (RabbitMQ
//! with the stream plugin, guest/guest).

mod common;

use futures_lite::StreamExt;
use rabbitmq_stream_client::error::{ConsumerCreateError, StreamCreateError, StreamDeleteError};
use rabbitmq_stream_client::types::{ByteCapacity, Message, OffsetSpecification, ResponseCode};
use rabbitmq_stream_client::{Consumer, Environment};
use std::time::Duration;

struct Target {
    host: String,
    port: u16,
    _broker: Option<common::TestBroker>,
}

async fn target() -> Target {
    if let Ok(addr) = std::env::var("STREAM_TEST_ADDR") {
        let (host, port) = addr
            .rsplit_once(':')
            .expect("STREAM_TEST_ADDR is host:port");
        return Target {
            host: host.to_string(),
            port: port.parse().expect("a port"),
            _broker: None,
        };
    }
    let broker = common::TestBroker::start_warren_with(|c| {
        c.stream.listen = "127.0.0.1:0".into();
    })
    .await;
    let addr = broker
        .server()
        .and_then(|s| s.stream_addr)
        .expect("the stream listener is bound");
    Target {
        host: addr.ip().to_string(),
        port: addr.port(),
        _broker: Some(broker),
    }
}

impl Target {
    async fn env(&self) -> Environment {
        Environment::builder()
            .host(&self.host)
            .port(self.port)
            .username("guest")
            .password("guest")
            .build()
            .await
            .expect("the client connects")
    }
}

fn stream_name(what: &str) -> String {
    format!("stream-test-{what}-{}", common::unique())
}

/// The next delivery's (offset, body), failing the test after 10 s without one.
async fn next(consumer: &mut Consumer) -> (u64, String) {
    let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a delivery within 10 s")
        .expect("the consumer is open")
        .expect("a delivery, not an error");
    let body = String::from_utf8(d.message().data().expect("a body").to_vec()).unwrap();
    (d.offset(), body)
}

fn msg(body: String) -> Message {
    Message::builder().body(body).build()
}

#[tokio::test]
async fn create_publish_with_confirms_consume_from_first_and_delete() {
    let t = target().await;
    let env = t.env().await;
    let stream = stream_name("basic");
    env.stream_creator()
        .max_length(ByteCapacity::MB(100))
        .create(&stream)
        .await
        .expect("create");
    // Creating it again (same arguments) is refused with StreamAlreadyExists.
    match env
        .stream_creator()
        .max_length(ByteCapacity::MB(100))
        .create(&stream)
        .await
    {
        Err(StreamCreateError::Create { status, .. }) => {
            assert_eq!(status, ResponseCode::StreamAlreadyExists)
        }
        other => panic!("second create: {other:?}"),
    }
    let producer = env.producer().build(&stream).await.expect("producer");
    for i in 0..100 {
        let status = producer
            .send_with_confirm(msg(format!("m{i}")))
            .await
            .expect("sent");
        assert!(status.confirmed(), "message {i} confirmed");
    }
    producer.close().await.expect("producer closes");

    let mut consumer = env
        .consumer()
        .offset(OffsetSpecification::First)
        .build(&stream)
        .await
        .expect("consumer");
    for i in 0..100u64 {
        assert_eq!(next(&mut consumer).await, (i, format!("m{i}")));
    }
    consumer.handle().close().await.expect("consumer closes");

    env.delete_stream(&stream).await.expect("delete");
    match env.delete_stream(&stream).await {
        Err(StreamDeleteError::Delete { status, .. }) => {
            assert_eq!(status, ResponseCode::StreamDoesNotExist)
        }
        other => panic!("second delete: {other:?}"),
    }
    match env.consumer().build(&stream).await {
        Err(ConsumerCreateError::StreamDoesNotExist { .. }) => {}
        Err(ConsumerCreateError::Create { status, .. }) => {
            assert_eq!(status, ResponseCode::StreamDoesNotExist)
        }
        other => panic!("consumer of a deleted stream: {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn consume_from_an_offset_and_next() {
    let t = target().await;
    let env = t.env().await;
    let stream = stream_name("offsets");
    env.stream_creator().create(&stream).await.expect("create");
    let producer = env.producer().build(&stream).await.expect("producer");
    for i in 0..10 {
        producer
            .send_with_confirm(msg(format!("m{i}")))
            .await
            .expect("sent");
    }
    let mut from7 = env
        .consumer()
        .offset(OffsetSpecification::Offset(7))
        .build(&stream)
        .await
        .expect("consumer");
    for i in 7..10u64 {
        assert_eq!(next(&mut from7).await, (i, format!("m{i}")));
    }
    // `next` sees only what is published after it subscribed.
    let mut from_next = env
        .consumer()
        .offset(OffsetSpecification::Next)
        .build(&stream)
        .await
        .expect("consumer");
    producer
        .send_with_confirm(msg("later".into()))
        .await
        .expect("sent");
    assert_eq!(next(&mut from_next).await, (10, "later".into()));
    assert_eq!(next(&mut from7).await, (10, "later".into()));
    producer.close().await.unwrap();
    env.delete_stream(&stream).await.expect("delete");
}

#[tokio::test]
async fn offset_tracking_store_and_query() {
    let t = target().await;
    let env = t.env().await;
    let stream = stream_name("tracking");
    env.stream_creator().create(&stream).await.expect("create");
    let producer = env.producer().build(&stream).await.expect("producer");
    for i in 0..5 {
        producer
            .send_with_confirm(msg(format!("m{i}")))
            .await
            .expect("sent");
    }
    let mut consumer = env
        .consumer()
        .name("tracker")
        .offset(OffsetSpecification::First)
        .build(&stream)
        .await
        .expect("consumer");
    // Nothing stored yet: the query fails (NO_OFFSET).
    assert!(consumer.query_offset().await.is_err());
    for i in 0..3u64 {
        assert_eq!(next(&mut consumer).await.0, i);
    }
    consumer.store_offset(2).await.expect("store");
    // StoreOffset has no response: query until the broker has applied it (RabbitMQ
    // applies it asynchronously; bounded to 2 s).
    let mut stored = None;
    for _ in 0..100 {
        if let Ok(o) = consumer.query_offset().await {
            stored = Some(o);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stored, Some(2));
    consumer.handle().close().await.unwrap();

    // A new consumer with the same name resumes after the stored offset.
    let mut again = env
        .consumer()
        .name("tracker")
        .offset(OffsetSpecification::Offset(3))
        .build(&stream)
        .await
        .expect("consumer");
    assert_eq!(again.query_offset().await.expect("query"), 2);
    assert_eq!(next(&mut again).await, (3, "m3".into()));
    producer.close().await.unwrap();
    env.delete_stream(&stream).await.expect("delete");
}

#[tokio::test]
async fn deduplication_by_producer_name_and_publishing_id() {
    let t = target().await;
    let env = t.env().await;
    let stream = stream_name("dedup");
    env.stream_creator().create(&stream).await.expect("create");
    let mut producer = env
        .producer()
        .name("p1")
        .build(&stream)
        .await
        .expect("producer");
    for id in 0..5u64 {
        let m = Message::builder()
            .body(format!("m{id}"))
            .publishing_id(id)
            .build();
        producer.send_with_confirm(m).await.expect("sent");
    }
    // The same ids again: confirmed, but not stored.
    for id in 0..5u64 {
        let m = Message::builder()
            .body(format!("dup{id}"))
            .publishing_id(id)
            .build();
        assert!(
            producer
                .send_with_confirm(m)
                .await
                .expect("sent")
                .confirmed()
        );
    }
    producer.close().await.unwrap();
    // A new producer with the same name learns the last publishing id (4) and goes on.
    let mut producer = env
        .producer()
        .name("p1")
        .build(&stream)
        .await
        .expect("producer");
    producer
        .send_with_confirm(Message::builder().body("m5").publishing_id(5).build())
        .await
        .expect("sent");
    producer.close().await.unwrap();
    // A producer without a name is not deduplicated: its message follows at offset 6.
    let plain = env.producer().build(&stream).await.expect("producer");
    plain
        .send_with_confirm(msg("end".into()))
        .await
        .expect("sent");
    plain.close().await.unwrap();

    let mut consumer = env
        .consumer()
        .offset(OffsetSpecification::First)
        .build(&stream)
        .await
        .expect("consumer");
    for i in 0..6u64 {
        assert_eq!(next(&mut consumer).await, (i, format!("m{i}")));
    }
    // The duplicates were dropped: the next message is the plain producer's.
    assert_eq!(next(&mut consumer).await, (6, "end".into()));
    env.delete_stream(&stream).await.expect("delete");
}

#[tokio::test]
async fn unknown_stream_is_refused_to_producers_and_consumers() {
    let t = target().await;
    let env = t.env().await;
    let stream = stream_name("missing");
    assert!(env.producer().build(&stream).await.is_err());
    assert!(env.consumer().build(&stream).await.is_err());
}

/// The routing key of the super stream tests' messages: the body up to its first ':'.
fn routing_key_of(m: &Message) -> String {
    let body = m.data().map(String::from_utf8_lossy).unwrap_or_default();
    body.split(':').next().unwrap_or("").to_string()
}

/// The client's super stream producer with routing-key routing: it asks Route for each key
/// and publishes to the partition the super stream's exchange routes to; a consumer of that
/// partition reads it, and the other partitions hold nothing. Warren only: RabbitMQ 3.10
/// answers Route without the response bit (rabbitmq-server#5956), which this client
/// refuses.
#[tokio::test]
async fn super_stream_producer_routes_by_routing_key() {
    use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::{AMQPValue, FieldTable, LongString};
    use rabbitmq_stream_client::types::{RoutingKeyRoutingStrategy, RoutingStrategy};
    let t = target().await;
    let Some(broker) = &t._broker else {
        return;
    };
    let name = format!("invoices-{}", common::unique());
    let amqp = broker.connect().await;
    let ch = amqp.create_channel().await.unwrap();
    ch.exchange_declare(
        name.as_str().into(),
        lapin::ExchangeKind::Direct,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let stream_args = common::table(&[(
        "x-queue-type",
        AMQPValue::LongString(LongString::from("stream")),
    )]);
    for i in [2, 0, 1] {
        let q = format!("{name}-{i}");
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare(q.as_str().into(), durable, stream_args.clone())
            .await
            .unwrap();
        let order = common::table(&[("x-stream-partition-order", AMQPValue::LongInt(i))]);
        ch.queue_bind(
            q.as_str().into(),
            name.as_str().into(),
            i.to_string().as_str().into(),
            QueueBindOptions::default(),
            order,
        )
        .await
        .unwrap();
    }

    let env = t.env().await;
    let mut producer = env
        .super_stream_producer(RoutingStrategy::RoutingKeyStrategy(
            RoutingKeyRoutingStrategy {
                routing_extractor: &routing_key_of,
            },
        ))
        .build(&name)
        .await
        .expect("super stream producer");
    let (tx, mut confirmed) = tokio::sync::mpsc::unbounded_channel();
    for body in ["1:first", "1:second"] {
        let tx = tx.clone();
        producer
            .send(msg(body.to_string()), move |r| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(r.map(|s| s.confirmed()).unwrap_or(false));
                }
            })
            .await
            .expect("routed and sent");
    }
    for _ in 0..2 {
        let ok = tokio::time::timeout(Duration::from_secs(10), confirmed.recv())
            .await
            .expect("a confirm within 10 s");
        assert_eq!(ok, Some(true));
    }
    producer.close().await.expect("producer closes");

    let mut consumer = env
        .consumer()
        .offset(OffsetSpecification::First)
        .build(&format!("{name}-1"))
        .await
        .expect("consumer");
    assert_eq!(next(&mut consumer).await, (0, "1:first".to_string()));
    assert_eq!(next(&mut consumer).await, (1, "1:second".to_string()));
    consumer.handle().close().await.expect("consumer closes");
    // Partition 1 holds both messages, the others nothing.
    let count = |i: u32| {
        let ch = ch.clone();
        let q = format!("{name}-{i}");
        async move {
            ch.queue_declare(q.as_str().into(), common::passive(), FieldTable::default())
                .await
                .unwrap()
                .message_count()
        }
    };
    assert_eq!(count(1).await, 2, "partition 1 holds both");
    for i in [0, 2] {
        assert_eq!(count(i).await, 0, "partition {i} is empty");
    }
}

/// Single active consumer through the client's own API (`enable_single_active_consumer`,
/// `consumer_update`): of two consumers named alike only the first reads; when it
/// closes, the second takes over from the offset its listener answered (its subscription
/// said first, so a second consumer reading all along would start at 0). Warren only:
/// RabbitMQ 3.10 has no single active consumer and would feed both.
#[tokio::test]
async fn single_active_consumer_takes_over_from_the_offset_its_listener_answers() {
    let t = target().await;
    if t._broker.is_none() {
        return;
    }
    let env = t.env().await;
    let stream = stream_name("sac");
    env.stream_creator().create(&stream).await.expect("create");
    let producer = env.producer().build(&stream).await.expect("producer");
    for i in 0..5 {
        let status = producer
            .send_with_confirm(msg(format!("m{i}")))
            .await
            .expect("sent");
        assert!(status.confirmed());
    }
    producer.close().await.expect("producer closes");

    let (tx, mut updates) = tokio::sync::mpsc::unbounded_channel();
    let member = |who: &'static str, answer: u64| {
        let tx = tx.clone();
        env.consumer()
            .name("sac-app")
            .enable_single_active_consumer(true)
            .offset(OffsetSpecification::First)
            .consumer_update(move |active, _ctx| {
                let _ = tx.send((who, active));
                async move { OffsetSpecification::Offset(answer) }
            })
            .build(&stream)
    };
    let mut first = member("first", 0).await.expect("first consumer");
    let mut second = member("second", 3).await.expect("second consumer");
    for i in 0..5u64 {
        assert_eq!(next(&mut first).await, (i, format!("m{i}")));
    }
    assert_eq!(updates.recv().await, Some(("first", 1)));
    assert!(updates.try_recv().is_err(), "the second was not activated");

    first.handle().close().await.expect("first closes");
    let update = tokio::time::timeout(Duration::from_secs(10), updates.recv())
        .await
        .expect("the second is activated");
    assert_eq!(update, Some(("second", 1)));
    assert_eq!(next(&mut second).await, (3, "m3".to_string()));
    assert_eq!(next(&mut second).await, (4, "m4".to_string()));
    second.handle().close().await.expect("second closes");
    env.delete_stream(&stream).await.expect("delete");
}

/// CreateSuperStream through the client's `create_super_stream`, then two single active
/// super stream consumers of one group: partition 0 stays with the first (0 mod 2), the
/// first steps down on partition 1 for the second (1 mod 2); each then receives only its
/// partition's messages. DeleteSuperStream removes it all. Warren only (3.13 commands).
#[tokio::test]
async fn super_stream_consumers_of_one_group_split_the_partitions() {
    let t = target().await;
    if t._broker.is_none() {
        return;
    }
    let env = t.env().await;
    let name = stream_name("super");
    env.stream_creator()
        .create_super_stream(&name, 2, None)
        .await
        .expect("create super stream");
    match env
        .stream_creator()
        .create_super_stream(&name, 2, None)
        .await
    {
        Err(StreamCreateError::Create { status, .. }) => {
            assert_eq!(status, ResponseCode::StreamAlreadyExists)
        }
        other => panic!("second create: {other:?}"),
    }

    let (tx, mut updates) = tokio::sync::mpsc::unbounded_channel();
    let member = |who: &'static str| {
        let tx = tx.clone();
        let mut builder = env
            .super_stream_consumer()
            .name("billing")
            .enable_single_active_consumer(true)
            .offset(OffsetSpecification::First)
            .consumer_update(move |active, ctx| {
                let _ = tx.send((who, ctx.stream(), active));
                async move { OffsetSpecification::First }
            });
        let name = name.clone();
        async move { builder.build(&name).await }
    };
    let (p0, p1) = (format!("{name}-0"), format!("{name}-1"));
    let mut a = member("a").await.expect("first super stream consumer");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(updates.recv().await.unwrap());
    }
    seen.sort();
    assert_eq!(seen, [("a", p0.clone(), 1), ("a", p1.clone(), 1)]);
    let mut b = member("b").await.expect("second super stream consumer");
    // a steps down on partition 1, then b is activated there; nothing on partition 0.
    let step_down = tokio::time::timeout(Duration::from_secs(10), updates.recv())
        .await
        .unwrap();
    assert_eq!(step_down, Some(("a", p1.clone(), 0)));
    let activated = tokio::time::timeout(Duration::from_secs(10), updates.recv())
        .await
        .unwrap();
    assert_eq!(activated, Some(("b", p1.clone(), 1)));

    for p in [&p0, &p1] {
        let producer = env.producer().build(p).await.expect("producer");
        let status = producer.send_with_confirm(msg(p.clone())).await.unwrap();
        assert!(status.confirmed());
        producer.close().await.unwrap();
    }
    assert_eq!(first_body(&mut a).await, p0);
    assert_eq!(first_body(&mut b).await, p1);
    assert!(updates.try_recv().is_err(), "no other change");
    a.handle().close().await.unwrap();
    b.handle().close().await.unwrap();

    env.delete_super_stream(&name)
        .await
        .expect("delete super stream");
    match env.delete_super_stream(&name).await {
        Err(StreamDeleteError::Delete { status, .. }) => {
            assert_eq!(status, ResponseCode::StreamDoesNotExist)
        }
        other => panic!("second delete: {other:?}"),
    }
    match env.consumer().build(&p0).await {
        Err(ConsumerCreateError::StreamDoesNotExist { .. }) => {}
        Err(ConsumerCreateError::Create { status, .. }) => {
            assert_eq!(status, ResponseCode::StreamDoesNotExist)
        }
        other => panic!("consumer of a deleted partition: {:?}", other.map(|_| ())),
    }
}

/// The body of a super stream consumer's next delivery, failing after 10 s without one.
async fn first_body(c: &mut rabbitmq_stream_client::types::SuperStreamConsumer) -> String {
    let d = tokio::time::timeout(Duration::from_secs(10), c.next())
        .await
        .expect("a delivery within 10 s")
        .expect("open")
        .expect("a delivery");
    String::from_utf8(d.message().data().unwrap().to_vec()).unwrap()
}
