//! Connection lifecycle, as a client sees it: open, negotiate, authenticate, close.

mod common;

use common::{TestBroker, amqp_error, within};
use lapin::protocol::{AMQPClass, AMQPErrorKind, AMQPHardError, connection::AMQPMethod};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties, ErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn uri(broker: &TestBroker) -> AMQPUri {
    broker.url().parse().expect("valid AMQP URL")
}

/// Reads `connection.start` straight off the socket: lapin does not expose the
/// server properties, so the test speaks the first step of the handshake itself.
async fn connection_start(broker: &TestBroker) -> lapin::protocol::connection::Start {
    let uri = uri(broker);
    let addr = format!("{}:{}", uri.authority.host, uri.authority.port);
    let mut socket = tokio::net::TcpStream::connect(addr)
        .await
        .expect("tcp connect");
    socket.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();

    let mut header = [0u8; 7];
    socket.read_exact(&mut header).await.unwrap();
    assert_eq!(header[0], 1, "first frame is a method frame");
    assert_eq!(
        u16::from_be_bytes([header[1], header[2]]),
        0,
        "on channel 0"
    );
    let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
    let mut payload = vec![0u8; size + 1];
    socket.read_exact(&mut payload).await.unwrap();
    assert_eq!(payload[size], 0xCE, "frame-end octet");
    payload.truncate(size);

    let (_, class) = lapin::protocol::parse_class(&payload[..]).expect("parses");
    match class {
        AMQPClass::Connection(AMQPMethod::Start(start)) => start,
        other => panic!("expected connection.start, got {other:?}"),
    }
}

#[tokio::test]
async fn connects_and_opens_a_channel() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    assert!(conn.status().connected());
    assert_eq!(conn.status().vhost().as_str(), "/");
    assert_eq!(conn.status().username(), "guest");
    assert!(conn.configuration().frame_max() >= 4096);
    assert!(conn.configuration().channel_max() > 0);

    let channel = conn.create_channel().await.unwrap();
    assert!(channel.status().connected());
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn connection_start_advertises_version_mechanisms_and_capabilities() {
    let broker = TestBroker::start().await;
    let start = within("connection.start", connection_start(&broker)).await;

    assert_eq!((start.version_major, start.version_minor), (0, 9));
    let mechanisms = start.mechanisms.to_string();
    assert!(
        mechanisms.split_whitespace().any(|m| m == "PLAIN"),
        "mechanisms: {mechanisms}"
    );
    let locales = start.locales.to_string();
    assert!(
        locales.split_whitespace().any(|l| l == "en_US"),
        "locales: {locales}"
    );

    let props: &FieldTable = &start.server_properties;
    for key in ["product", "version", "platform"] {
        assert!(
            matches!(props.inner().get(key), Some(AMQPValue::LongString(_))),
            "server property {key} is a longstr: {props:?}"
        );
    }
    // Clients (and amqplib's own suite) tell the broker by `product`; a RabbitMQ 3.x
    // version keeps version checks in clients working.
    let text = |key: &str| match props.inner().get(key) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("{key}: {other:?}"),
    };
    assert_eq!(text("product"), "RabbitMQ");
    assert!(
        text("version").starts_with("3."),
        "version {}",
        text("version")
    );
    let capabilities = match props.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(t)) => t,
        other => panic!("capabilities must be a table, got {other:?}"),
    };
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
        "consumer_priorities",
    ] {
        assert_eq!(
            capabilities.inner().get(cap),
            Some(&AMQPValue::Boolean(true)),
            "capability {cap} must be true: {capabilities:?}"
        );
    }
}

#[tokio::test]
async fn wrong_password_is_refused_with_403() {
    let broker = TestBroker::start().await;
    let mut uri = uri(&broker);
    uri.authority.userinfo.password = "definitely-not-the-password".into();

    let err = within(
        "refused connection",
        Connection::connect_uri(uri, ConnectionProperties::default()),
    )
    .await
    .expect_err("a wrong password must not connect");
    // The broker advertises authentication_failure_close, so it answers with
    // connection.close(403 ACCESS_REFUSED) before closing the socket. (lapin files
    // 403 under "soft" errors because the spec lists ACCESS_REFUSED as a channel
    // error, even though here it arrives in a connection.close.)
    let (code, text) = amqp_error(&err);
    assert_eq!(code, 403);
    assert!(text.starts_with("ACCESS_REFUSED"), "{text}");
}

#[tokio::test]
async fn unknown_user_is_refused_with_403() {
    let broker = TestBroker::start().await;
    let mut uri = uri(&broker);
    uri.authority.userinfo.username = format!("nobody-{}", common::unique());

    let err = within(
        "refused connection",
        Connection::connect_uri(uri, ConnectionProperties::default()),
    )
    .await
    .expect_err("an unknown user must not connect");
    let (code, text) = amqp_error(&err);
    assert_eq!(code, 403);
    assert!(text.starts_with("ACCESS_REFUSED"), "{text}");
}

#[tokio::test]
async fn unknown_vhost_is_refused_with_530() {
    let broker = TestBroker::start().await;
    let mut uri = uri(&broker);
    uri.vhost = format!("no-such-vhost-{}", common::unique());

    let err = within(
        "refused connection",
        Connection::connect_uri(uri, ConnectionProperties::default()),
    )
    .await
    .expect_err("an unknown vhost must not connect");
    match err.kind() {
        ErrorKind::ProtocolError(e) => {
            assert_eq!(e.kind(), &AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED));
            assert_eq!(e.get_id(), 530);
            assert!(
                e.get_message().as_str().starts_with("NOT_ALLOWED"),
                "{}",
                e.get_message()
            );
        }
        other => panic!("expected a 530 connection.close, got {other:?}"),
    }
}

#[tokio::test]
async fn clean_close_then_connection_is_unusable() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let channel = conn.create_channel().await.unwrap();
    let q = channel
        .queue_declare(
            "".into(),
            lapin::options::QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert!(q.name().as_str().starts_with("amq.gen-"));

    within("connection.close-ok", conn.close(200, "OK".into()))
        .await
        .unwrap();
    assert!(conn.status().closed());
    assert!(!channel.status().connected());
    assert!(conn.create_channel().await.is_err());

    // The exclusive queue went with the connection.
    let other = broker.connect().await;
    let ch = other.create_channel().await.unwrap();
    let err = ch
        .queue_declare(
            q.name().clone(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(common::reply_code(&err), 404);
    other.close(200, "OK".into()).await.unwrap();
}

#[tokio::test]
async fn many_connections_side_by_side() {
    let broker = TestBroker::start().await;
    let mut conns = Vec::new();
    for _ in 0..10 {
        conns.push(broker.connect().await);
    }
    for conn in &conns {
        let ch = conn.create_channel().await.unwrap();
        ch.basic_qos(1, Default::default()).await.unwrap();
    }
    for conn in &conns {
        conn.close(200, "OK".into()).await.unwrap();
    }
}

/// guest may log in only over loopback. On a dual-stack listener (`[::]:5672`, RabbitMQ's
/// default) a client on 127.0.0.1 arrives as the IPv4-mapped ::ffff:127.0.0.1, which is
/// loopback too: amqplib's connect tests log in as guest that way.
#[tokio::test]
async fn guest_over_ipv4_on_a_dual_stack_listener_is_loopback() {
    let mut _server = None;
    let url = match std::env::var("AMQP_TEST_URL") {
        Ok(url) => url,
        Err(_) => {
            let mut config = warren::config::Config::default();
            config.amqp.listen = "[::]:0".parse().unwrap();
            config.mgmt.listen = "127.0.0.1:0".into();
            config.prometheus.listen = "127.0.0.1:0".into();
            config.storage.dir =
                std::env::temp_dir().join(format!("warren-test-{}", common::unique()));
            let server = match warren::server::start(config).await {
                Ok(server) => server,
                Err(e) => {
                    eprintln!("skipped: cannot listen on [::] ({e})");
                    return;
                }
            };
            let url = format!(
                "amqp://guest:guest@127.0.0.1:{}/%2f",
                server.local_addr.port()
            );
            _server = Some(server);
            url
        }
    };
    let conn = within(
        "guest login over 127.0.0.1",
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await
    .expect("guest is accepted from 127.0.0.1");
    assert_eq!(conn.status().username(), "guest");
    let channel = conn.create_channel().await.unwrap();
    assert!(channel.status().connected());
    conn.close(200, "OK".into()).await.unwrap();
}
