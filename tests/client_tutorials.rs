//! RabbitMQ's six tutorials (https://www.rabbitmq.com/getstarted.html), written as
//! assertions. Names are made unique so runs against a shared broker don't collide.

mod common;

use common::{Deliveries, TestBroker, body, unique, within};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};

async fn confirmed_publish(
    ch: &Channel,
    exchange: &str,
    key: &str,
    payload: &str,
    props: BasicProperties,
) {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            payload.as_bytes(),
            props,
        )
        .await
        .unwrap();
    assert_eq!(
        within("confirm", confirm).await.unwrap(),
        Confirmation::Ack(None)
    );
}

async fn publisher(conn: &lapin::Connection) -> Channel {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch
}

/// An exclusive, server-named queue bound to `exchange` with each of `keys`.
async fn temp_queue(ch: &Channel, exchange: &str, keys: &[&str]) -> String {
    let q = ch
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
    for key in keys {
        ch.queue_bind(
            q.name().clone(),
            exchange.into(),
            (*key).into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    q.name().as_str().to_string()
}

async fn consume(ch: &Channel, queue: &str, no_ack: bool) -> Deliveries {
    Deliveries::new(
        ch.basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap(),
    )
}

async fn declare_exchange(ch: &Channel, name: &str, kind: ExchangeKind) {
    ch.exchange_declare(
        name.into(),
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn tutorial_1_hello_world() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let hello = format!("hello-{}", unique());
    ch.queue_declare(
        hello.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    let mut receiver = consume(&ch, &hello, true).await;
    ch.basic_publish(
        "".into(),
        hello.as_str().into(),
        BasicPublishOptions::default(),
        b"Hello World!",
        BasicProperties::default(),
    )
    .await
    .unwrap();

    let d = receiver.next().await;
    assert_eq!(body(&d), "Hello World!");
    assert_eq!(d.routing_key.as_str(), hello);

    ch.queue_delete(hello.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn tutorial_2_work_queues_fair_dispatch() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let producer = publisher(&conn).await;
    let task_queue = format!("task_queue-{}", unique());
    producer
        .queue_declare(
            task_queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();

    // Two workers, each on its own channel with prefetch_count = 1.
    let busy_ch = conn.create_channel().await.unwrap();
    busy_ch
        .basic_qos(1, BasicQosOptions::default())
        .await
        .unwrap();
    let mut busy = consume(&busy_ch, &task_queue, false).await;
    let idle_ch = conn.create_channel().await.unwrap();
    idle_ch
        .basic_qos(1, BasicQosOptions::default())
        .await
        .unwrap();
    let mut idle = consume(&idle_ch, &task_queue, false).await;

    // The first task is a long one: the busy worker takes it and holds it unacked.
    let persistent = BasicProperties::default().with_delivery_mode(2);
    confirmed_publish(
        &producer,
        "",
        &task_queue,
        "long task.....",
        persistent.clone(),
    )
    .await;
    let long = busy.next().await;
    assert_eq!(body(&long), "long task.....");
    assert_eq!(long.properties.delivery_mode(), &Some(2));

    // Quick tasks all go to the idle worker, one at a time: the busy worker is not
    // sent anything while it has an unacknowledged task (no blind round-robin).
    for i in 0..4 {
        confirmed_publish(
            &producer,
            "",
            &task_queue,
            &format!("quick {i}."),
            persistent.clone(),
        )
        .await;
    }
    for i in 0..4 {
        let d = idle.next().await;
        assert_eq!(body(&d), format!("quick {i}."));
        d.ack(BasicAckOptions::default()).await.unwrap();
    }

    // Once the busy worker acks, it is eligible again: two more tasks, one each.
    long.ack(BasicAckOptions::default()).await.unwrap();
    confirmed_publish(&producer, "", &task_queue, "task A", persistent.clone()).await;
    confirmed_publish(&producer, "", &task_queue, "task B", persistent).await;
    let from_busy = busy.next().await;
    let from_idle = idle.next().await;
    let mut got = [body(&from_busy), body(&from_idle)];
    got.sort();
    assert_eq!(got, ["task A", "task B"]);
    from_busy.ack(BasicAckOptions::default()).await.unwrap();
    from_idle.ack(BasicAckOptions::default()).await.unwrap();

    producer
        .queue_delete(task_queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn tutorial_3_publish_subscribe() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let emitter = publisher(&conn).await;
    let logs = format!("logs-{}", unique());
    declare_exchange(&emitter, &logs, ExchangeKind::Fanout).await;

    // Each subscriber gets a fresh, exclusive, server-named queue bound to the fanout.
    let sub_ch = conn.create_channel().await.unwrap();
    let q1 = temp_queue(&sub_ch, &logs, &[""]).await;
    let q2 = temp_queue(&sub_ch, &logs, &[""]).await;
    assert!(q1.starts_with("amq.gen-") && q2.starts_with("amq.gen-"));
    let mut s1 = consume(&sub_ch, &q1, true).await;
    let mut s2 = consume(&sub_ch, &q2, true).await;

    for line in ["info: Hello World!", "warning: disk"] {
        confirmed_publish(&emitter, &logs, "", line, BasicProperties::default()).await;
    }
    for s in [&mut s1, &mut s2] {
        assert_eq!(body(&s.next().await), "info: Hello World!");
        assert_eq!(body(&s.next().await), "warning: disk");
    }

    emitter
        .exchange_delete(logs.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn tutorial_4_routing() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let emitter = publisher(&conn).await;
    let direct_logs = format!("direct_logs-{}", unique());
    declare_exchange(&emitter, &direct_logs, ExchangeKind::Direct).await;

    let ch = conn.create_channel().await.unwrap();
    let errors_only = temp_queue(&ch, &direct_logs, &["error"]).await;
    let everything = temp_queue(&ch, &direct_logs, &["info", "warning", "error"]).await;
    let mut disk = consume(&ch, &errors_only, true).await;
    let mut screen = consume(&ch, &everything, true).await;

    for (severity, msg) in [
        ("info", "Run. Run. Or it will explode."),
        ("error", "Run. Run. Or it will explode."),
        ("warning", "Run. Run. Or it will explode."),
        ("debug", "not subscribed"),
        ("error", "second error"),
    ] {
        confirmed_publish(
            &emitter,
            &direct_logs,
            severity,
            &format!("{severity}:{msg}"),
            BasicProperties::default(),
        )
        .await;
    }

    let got: Vec<String> = disk.take(2).await.iter().map(body).collect();
    assert_eq!(
        got,
        ["error:Run. Run. Or it will explode.", "error:second error"]
    );
    let got: Vec<String> = screen
        .take(4)
        .await
        .iter()
        .map(|d| d.routing_key.as_str().to_string())
        .collect();
    assert_eq!(got, ["info", "error", "warning", "error"]);

    emitter
        .exchange_delete(
            direct_logs.as_str().into(),
            ExchangeDeleteOptions::default(),
        )
        .await
        .unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn tutorial_5_topics() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let emitter = publisher(&conn).await;
    let topic_logs = format!("topic_logs-{}", unique());
    declare_exchange(&emitter, &topic_logs, ExchangeKind::Topic).await;

    let ch = conn.create_channel().await.unwrap();
    let q1 = temp_queue(&ch, &topic_logs, &["*.orange.*"]).await;
    let q2 = temp_queue(&ch, &topic_logs, &["*.*.rabbit", "lazy.#"]).await;
    let all = temp_queue(&ch, &topic_logs, &["#"]).await;
    let kern = temp_queue(&ch, &topic_logs, &["kern.*", "*.critical"]).await;
    let mut c1 = consume(&ch, &q1, true).await;
    let mut c2 = consume(&ch, &q2, true).await;
    let mut call = consume(&ch, &all, true).await;
    let mut ckern = consume(&ch, &kern, true).await;

    let keys = [
        "quick.orange.rabbit",
        "lazy.orange.elephant",
        "quick.orange.fox",
        "lazy.brown.fox",
        "lazy.pink.rabbit", // matches both of Q2's bindings: delivered once
        "quick.brown.fox",
        "quick.orange.new.rabbit",
        "lazy.orange.new.rabbit",
        "kern.critical", // matches both of kern's bindings: delivered once
        "orange",
    ];
    for key in keys {
        confirmed_publish(&emitter, &topic_logs, key, key, BasicProperties::default()).await;
    }
    // A marker published last, matched by Q1, Q2 and the catch-all queue, bounds
    // what each of them received (per-queue order is publish order).
    confirmed_publish(
        &emitter,
        &topic_logs,
        "lazy.orange.rabbit",
        "END",
        BasicProperties::default(),
    )
    .await;
    // kern's bindings don't match that marker; give it one of its own (after the
    // first marker, so the catch-all queue stops before seeing it).
    confirmed_publish(
        &emitter,
        &topic_logs,
        "kern.info",
        "END",
        BasicProperties::default(),
    )
    .await;

    async fn until_end(c: &mut Deliveries) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let d = c.next().await;
            if body(&d) == "END" {
                return out;
            }
            out.push(body(&d));
        }
    }
    assert_eq!(
        until_end(&mut c1).await,
        [
            "quick.orange.rabbit",
            "lazy.orange.elephant",
            "quick.orange.fox"
        ]
    );
    assert_eq!(
        until_end(&mut c2).await,
        [
            "quick.orange.rabbit",
            "lazy.orange.elephant",
            "lazy.brown.fox",
            "lazy.pink.rabbit",
            "lazy.orange.new.rabbit"
        ]
    );
    assert_eq!(until_end(&mut call).await, keys);
    assert_eq!(until_end(&mut ckern).await, ["kern.critical"]);

    emitter
        .exchange_delete(topic_logs.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}

fn fib(n: u64) -> u64 {
    match n {
        0 => 0,
        1 => 1,
        n => fib(n - 1) + fib(n - 2),
    }
}

/// The RPC server from tutorial 6: consumes `rpc_queue`, answers on `reply_to`
/// with the request's `correlation_id`, then acks.
async fn rpc_server(ch: Channel, mut requests: Deliveries, count: usize) {
    for _ in 0..count {
        let req = requests.next().await;
        let n: u64 = body(&req).parse().unwrap();
        let reply_to = req.properties.reply_to().clone().expect("reply_to");
        let correlation_id = req
            .properties
            .correlation_id()
            .clone()
            .expect("correlation_id");
        ch.basic_publish(
            "".into(),
            reply_to,
            BasicPublishOptions::default(),
            fib(n).to_string().as_bytes(),
            BasicProperties::default().with_correlation_id(correlation_id),
        )
        .await
        .unwrap();
        req.ack(BasicAckOptions::default()).await.unwrap();
    }
}

#[tokio::test]
async fn tutorial_6_rpc() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;

    // Server side.
    let server_ch = conn.create_channel().await.unwrap();
    let rpc_queue = format!("rpc_queue-{}", unique());
    server_ch
        .queue_declare(
            rpc_queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    server_ch
        .basic_qos(1, BasicQosOptions::default())
        .await
        .unwrap();
    let requests = consume(&server_ch, &rpc_queue, false).await;
    let server = tokio::spawn(rpc_server(server_ch.clone(), requests, 3));

    // Client side: an exclusive callback queue, requests tagged with correlation ids.
    let client_conn = broker.connect().await;
    let client = client_conn.create_channel().await.unwrap();
    let callback = client
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
    let mut responses = consume(&client, callback.name().as_str(), true).await;

    let mut expected = std::collections::HashMap::new();
    for n in [10u64, 20, 30] {
        let corr = format!("corr-{n}-{}", unique());
        expected.insert(corr.clone(), fib(n).to_string());
        client
            .basic_publish(
                "".into(),
                rpc_queue.as_str().into(),
                BasicPublishOptions::default(),
                n.to_string().as_bytes(),
                BasicProperties::default()
                    .with_reply_to(callback.name().clone())
                    .with_correlation_id(corr.as_str().into()),
            )
            .await
            .unwrap();
    }
    for _ in 0..3 {
        let resp = responses.next().await;
        let corr = resp
            .properties
            .correlation_id()
            .clone()
            .expect("correlation id echoed")
            .as_str()
            .to_string();
        let want = expected.remove(&corr).expect("a correlation id we sent");
        assert_eq!(body(&resp), want);
    }
    assert!(expected.is_empty());
    within("rpc server", server).await.unwrap();
    assert_eq!(fib(30), 832040);

    server_ch
        .queue_delete(rpc_queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    client_conn.close(200, "OK".into()).await.unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn tutorial_6_rpc_with_direct_reply_to() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let server_ch = conn.create_channel().await.unwrap();
    let rpc_queue = format!("rpc_queue-{}", unique());
    server_ch
        .queue_declare(
            rpc_queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let requests = consume(&server_ch, &rpc_queue, false).await;
    let server = tokio::spawn(rpc_server(server_ch.clone(), requests, 1));

    // The client consumes the pseudo-queue amq.rabbitmq.reply-to in no-ack mode and
    // publishes with reply_to = amq.rabbitmq.reply-to on the same channel.
    let client_conn = broker.connect().await;
    let client = client_conn.create_channel().await.unwrap();
    let mut responses = consume(&client, "amq.rabbitmq.reply-to", true).await;
    client
        .basic_publish(
            "".into(),
            rpc_queue.as_str().into(),
            BasicPublishOptions::default(),
            b"15",
            BasicProperties::default()
                .with_reply_to("amq.rabbitmq.reply-to".into())
                .with_correlation_id("direct-1".into()),
        )
        .await
        .unwrap();
    let resp = responses.next().await;
    assert_eq!(body(&resp), "610");
    assert_eq!(
        resp.properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str()),
        Some("direct-1")
    );
    // The server saw a rewritten, routable reply_to.
    assert!(
        resp.routing_key
            .as_str()
            .starts_with("amq.rabbitmq.reply-to."),
        "{}",
        resp.routing_key
    );
    within("rpc server", server).await.unwrap();

    // Consuming the pseudo-queue with acks is refused.
    let other = client_conn.create_channel().await.unwrap();
    let text = common::expect_code(
        other
            .basic_consume(
                "amq.rabbitmq.reply-to".into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await,
        406,
    );
    assert_eq!(
        text,
        "PRECONDITION_FAILED - reply consumer cannot acknowledge"
    );

    server_ch
        .queue_delete(rpc_queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    client_conn.close(200, "OK".into()).await.unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}
