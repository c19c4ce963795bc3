//! The stream protocol frame by frame, with Warren's own codec as the client
//! (`protocol::stream`): the handshake, create, metadata, publish and confirm,
//! publish errors, subscribe and a Deliver's chunk, credit errors, delete with its
//! MetadataUpdate, unknown frames and oversized frames.
//!
//! With `STREAM_TEST_ADDR=127.0.0.1:5553` the same exchanges run against RabbitMQ 3.10
//! (checks of what only Warren enforces are skipped there), which is how the codec's
//! layouts are checked against the real broker.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren::protocol::stream::{
    ClientCommand, Entry, FrameCodec, OffsetSpec, Publish, PublishedMessage, ServerCommand, Str,
    code, key,
};

struct Conn {
    sock: TcpStream,
    buf: BytesMut,
    codec: FrameCodec,
    next_id: u32,
}

impl Conn {
    async fn send(&mut self, cmd: ClientCommand) {
        let mut b = BytesMut::new();
        cmd.encode(&mut b);
        self.sock.write_all(&b).await.unwrap();
    }

    /// The next frame other than a heartbeat; None when the server closed the socket.
    async fn recv(&mut self) -> Option<ServerCommand> {
        loop {
            if let Some(f) = self.codec.decode_frame(&mut self.buf).unwrap() {
                match ServerCommand::decode(with_response_bit(f)).expect("a server frame") {
                    ServerCommand::Heartbeat => continue,
                    c => return Some(c),
                }
            }
            let n =
                tokio::time::timeout(Duration::from_secs(10), self.sock.read_buf(&mut self.buf))
                    .await
                    .expect("a frame within 10 s")
                    .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends a Route or Partitions request; returns its response's code and streams.
    async fn call_streams(
        &mut self,
        make: impl FnOnce(u32) -> ClientCommand,
    ) -> (u16, Vec<String>) {
        let id = self.id();
        self.send(make(id)).await;
        match self.recv().await.expect("a response") {
            ServerCommand::RouteResponse {
                correlation_id,
                code,
                streams,
            }
            | ServerCommand::PartitionsResponse {
                correlation_id,
                code,
                streams,
            } if correlation_id == id => (code, streams.iter().map(|s| s.to_string()).collect()),
            other => panic!("unexpected {other:?}"),
        }
    }

    async fn route(&mut self, routing_key: &str, super_stream: &str) -> (u16, Vec<String>) {
        self.call_streams(|correlation_id| ClientCommand::Route {
            correlation_id,
            routing_key: Str::from(routing_key),
            super_stream: Str::from(super_stream),
        })
        .await
    }

    async fn partitions(&mut self, super_stream: &str) -> (u16, Vec<String>) {
        self.call_streams(|correlation_id| ClientCommand::Partitions {
            correlation_id,
            super_stream: Str::from(super_stream),
        })
        .await
    }

    /// Sends a request and returns the response code of its (code-only) response.
    async fn call(&mut self, make: impl FnOnce(u32) -> ClientCommand) -> u16 {
        let id = self.id();
        self.send(make(id)).await;
        match self.recv().await.expect("a response") {
            ServerCommand::Response {
                correlation_id,
                code,
                ..
            } if correlation_id == id => code,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// RabbitMQ before 3.12 answered Route and Partitions with the request's key, without the
/// response bit (rabbitmq-server#5956); Warren, as the protocol and RabbitMQ since, sets it.
/// The bit is added here so the same tests read both.
fn with_response_bit(f: Bytes) -> Bytes {
    if f.len() >= 2 && matches!(u16::from_be_bytes([f[0], f[1]]), 0x0018 | 0x0019) {
        let mut m = BytesMut::from(&f[..]);
        m[0] |= 0x80;
        return m.freeze();
    }
    f
}

struct Target {
    addr: String,
    warren: bool,
    _broker: Option<common::TestBroker>,
}

async fn target() -> Target {
    if let Ok(addr) = std::env::var("STREAM_TEST_ADDR") {
        return Target {
            addr,
            warren: false,
            _broker: None,
        };
    }
    let broker = common::TestBroker::start_warren_with(|c| {
        c.stream.listen = "127.0.0.1:0".into();
    })
    .await;
    let addr = broker.server().and_then(|s| s.stream_addr).unwrap();
    Target {
        addr: addr.to_string(),
        warren: true,
        _broker: Some(broker),
    }
}

impl Target {
    /// The same broker's AMQP 0-9-1 URL (against another broker: `AMQP_TEST_URL`, by
    /// default RabbitMQ's on 5673).
    fn amqp_url(&self) -> String {
        match &self._broker {
            Some(b) => b.url().to_string(),
            None => std::env::var("AMQP_TEST_URL")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5673/%2f".into()),
        }
    }
}

async fn connect(t: &Target) -> Conn {
    Conn {
        sock: TcpStream::connect(&t.addr).await.expect("connects"),
        buf: BytesMut::new(),
        codec: FrameCodec::new(0),
        next_id: 0,
    }
}

/// Peer properties, SASL PLAIN as guest, tune, open "/": returns the open's properties.
async fn open(c: &mut Conn) -> Vec<(Str, Str)> {
    open_as(c, "guest", "guest").await
}

/// [`open`] as `user`.
async fn open_as(c: &mut Conn, user: &str, pass: &str) -> Vec<(Str, Str)> {
    c.send(ClientCommand::PeerProperties {
        correlation_id: 1,
        properties: vec![(Str::from("connection_name"), Str::from("wire-test"))],
    })
    .await;
    match c.recv().await.unwrap() {
        ServerCommand::PeerPropertiesResponse {
            code: 1,
            properties,
            ..
        } => {
            assert!(
                properties
                    .iter()
                    .any(|(k, v)| k == "product" && v == "RabbitMQ")
            );
        }
        other => panic!("{other:?}"),
    }
    c.send(ClientCommand::SaslHandshake { correlation_id: 2 })
        .await;
    match c.recv().await.unwrap() {
        ServerCommand::SaslHandshakeResponse { mechanisms, .. } => {
            assert!(mechanisms.iter().any(|m| m == "PLAIN"), "{mechanisms:?}")
        }
        other => panic!("{other:?}"),
    }
    c.send(ClientCommand::SaslAuthenticate {
        correlation_id: 3,
        mechanism: Str::from("PLAIN"),
        data: Bytes::from(format!("\0{user}\0{pass}")),
    })
    .await;
    match c.recv().await.unwrap() {
        ServerCommand::SaslAuthenticateResponse { code: 1, .. } => {}
        other => panic!("{other:?}"),
    }
    let ServerCommand::Tune { heartbeat, .. } = c.recv().await.unwrap() else {
        panic!("tune")
    };
    c.send(ClientCommand::Tune {
        frame_max: 1_048_576,
        heartbeat,
    })
    .await;
    c.send(ClientCommand::Open {
        correlation_id: 4,
        vhost: Str::from("/"),
    })
    .await;
    c.next_id = 10;
    match c.recv().await.unwrap() {
        ServerCommand::OpenResponse {
            code: 1,
            properties,
            ..
        } => properties,
        other => panic!("{other:?}"),
    }
}

/// An AMQP 1.0 message with one data section.
fn amqp_message(body: &[u8]) -> Bytes {
    let mut m = BytesMut::new();
    m.put_slice(&[0x00, 0x53, 0x75, 0xa0, body.len() as u8]);
    m.put_slice(body);
    m.freeze()
}

/// The simple entries of a Deliver's chunk: (first offset, bodies).
fn chunk_entries(chunk: &Bytes) -> (u64, Vec<Bytes>) {
    assert_eq!(chunk[0], 0x50, "osiris magic and version");
    assert_eq!(chunk[1], 0, "a user chunk");
    let records = u32::from_be_bytes(chunk[4..8].try_into().unwrap());
    let first = u64::from_be_bytes(chunk[24..32].try_into().unwrap());
    let mut at = 44 + 4; // header (its last 4 octets: bloom size and reserved)
    let mut out = Vec::new();
    for _ in 0..records {
        let n = u32::from_be_bytes(chunk[at..at + 4].try_into().unwrap()) as usize;
        out.push(chunk.slice(at + 4..at + 4 + n));
        at += 4 + n;
    }
    (first, out)
}

#[tokio::test]
async fn publish_confirm_subscribe_deliver_delete() {
    let t = target().await;
    let mut c = connect(&t).await;
    let props = open(&mut c).await;
    assert!(
        props.iter().any(|(k, _)| k == "advertised_host"),
        "{props:?}"
    );
    if t.warren {
        let port = t.addr.rsplit_once(':').unwrap().1;
        assert!(
            props
                .iter()
                .any(|(k, v)| k == "advertised_port" && v == port)
        );
    }
    let stream = format!("wire-{}", common::unique());
    let s = Str::from(stream.as_str());
    let created = c
        .call(|id| ClientCommand::Create {
            correlation_id: id,
            stream: s.clone(),
            arguments: vec![(Str::from("max-length-bytes"), Str::from("1000000"))],
        })
        .await;
    assert_eq!(created, code::OK);
    // Again with the same arguments: already exists; with others: precondition failed.
    let again = c
        .call(|id| ClientCommand::Create {
            correlation_id: id,
            stream: s.clone(),
            arguments: vec![(Str::from("max-length-bytes"), Str::from("1000000"))],
        })
        .await;
    assert_eq!(again, code::STREAM_ALREADY_EXISTS);
    let other = c
        .call(|id| ClientCommand::Create {
            correlation_id: id,
            stream: s.clone(),
            arguments: vec![],
        })
        .await;
    assert_eq!(other, code::PRECONDITION_FAILED);

    // Metadata: the stream on broker 0, an unknown one with leader -1.
    let id = c.id();
    c.send(ClientCommand::Metadata {
        correlation_id: id,
        streams: vec![s.clone(), Str::from("no-such-stream-here")],
    })
    .await;
    match c.recv().await.unwrap() {
        ServerCommand::MetadataResponse {
            brokers, streams, ..
        } => {
            assert_eq!(brokers.len(), 1);
            let known = streams.iter().find(|m| m.stream == s).unwrap();
            assert_eq!((known.code, known.leader), (code::OK, brokers[0].reference));
            let unknown = streams.iter().find(|m| m.stream != s).unwrap();
            assert_eq!(
                (unknown.code, unknown.leader),
                (code::STREAM_DOES_NOT_EXIST, 0xffff)
            );
        }
        other => panic!("{other:?}"),
    }

    let declared = c
        .call(|id| ClientCommand::DeclarePublisher {
            correlation_id: id,
            publisher_id: 1,
            reference: Str::default(),
            stream: s.clone(),
        })
        .await;
    assert_eq!(declared, code::OK);
    let messages: Vec<PublishedMessage> = (1..=3u64)
        .map(|i| PublishedMessage {
            publishing_id: i,
            filter_value: None,
            entry: Entry::Simple(amqp_message(format!("m{i}").as_bytes())),
        })
        .collect();
    c.send(ClientCommand::Publish(Publish::new(1, 1, &messages)))
        .await;
    let mut confirmed = Vec::new();
    while confirmed.len() < 3 {
        match c.recv().await.unwrap() {
            ServerCommand::PublishConfirm {
                publisher_id: 1,
                publishing_ids,
            } => confirmed.extend(publishing_ids),
            other => panic!("{other:?}"),
        }
    }
    confirmed.sort();
    assert_eq!(confirmed, [1, 2, 3]);

    // A publisher that was never declared.
    c.send(ClientCommand::Publish(Publish::new(9, 1, &messages[..1])))
        .await;
    match c.recv().await.unwrap() {
        ServerCommand::PublishError {
            publisher_id: 9,
            errors,
        } => assert_eq!(errors, [(1, code::PUBLISHER_DOES_NOT_EXIST)]),
        other => panic!("{other:?}"),
    }

    // Subscribe from first: the response, then one chunk with the three messages.
    let id = c.id();
    c.send(ClientCommand::Subscribe {
        correlation_id: id,
        subscription_id: 1,
        stream: s.clone(),
        offset: OffsetSpec::First,
        credit: 1,
        properties: vec![],
    })
    .await;
    match c.recv().await.unwrap() {
        ServerCommand::Response {
            key: k, code: 1, ..
        } => assert_eq!(k, key::SUBSCRIBE),
        other => panic!("{other:?}"),
    }
    let mut bodies = Vec::new();
    while bodies.len() < 3 {
        match c.recv().await.unwrap() {
            ServerCommand::Deliver {
                subscription_id: 1,
                chunk,
                ..
            } => {
                let (first, entries) = chunk_entries(&chunk);
                assert_eq!(first, bodies.len() as u64);
                bodies.extend(entries);
                c.send(ClientCommand::Credit {
                    subscription_id: 1,
                    credit: 1,
                })
                .await;
            }
            other => panic!("{other:?}"),
        }
    }
    for (i, b) in bodies.iter().enumerate() {
        assert_eq!(b, &amqp_message(format!("m{}", i + 1).as_bytes()));
    }

    // Credit for an unknown subscription: a CreditResponse, no correlation id.
    c.send(ClientCommand::Credit {
        subscription_id: 7,
        credit: 1,
    })
    .await;
    match c.recv().await.unwrap() {
        ServerCommand::CreditResponse {
            code,
            subscription_id: 7,
        } => assert_eq!(code, code::SUBSCRIPTION_ID_DOES_NOT_EXIST),
        other => panic!("{other:?}"),
    }

    // Delete: OK, and the subscriber hears that the stream is gone.
    let id = c.id();
    c.send(ClientCommand::Delete {
        correlation_id: id,
        stream: s.clone(),
    })
    .await;
    let (mut deleted, mut updated) = (false, false);
    while !(deleted && updated) {
        match c.recv().await.unwrap() {
            ServerCommand::Response {
                correlation_id,
                code: 1,
                ..
            } if correlation_id == id => deleted = true,
            ServerCommand::MetadataUpdate { code, stream } if stream == s => {
                assert_eq!(code, code::STREAM_NOT_AVAILABLE);
                updated = true;
            }
            other => panic!("{other:?}"),
        }
    }
    c.send(ClientCommand::Close {
        correlation_id: 99,
        code: 1,
        reason: Str::from("bye"),
    })
    .await;
    match c.recv().await.unwrap() {
        ServerCommand::CloseResponse {
            correlation_id: 99,
            code: 1,
        } => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unknown_frame_after_open_is_closed_with_unknown_frame() {
    let t = target().await;
    let mut c = connect(&t).await;
    open(&mut c).await;
    // Key 0x7ff0 is no command.
    c.sock
        .write_all(&[0, 0, 0, 8, 0x7f, 0xf0, 0, 1, 0, 0, 0, 1])
        .await
        .unwrap();
    match c.recv().await.unwrap() {
        ServerCommand::Close { code, .. } => assert_eq!(code, code::UNKNOWN_FRAME),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bad_login_is_refused() {
    let t = target().await;
    let mut c = connect(&t).await;
    c.send(ClientCommand::PeerProperties {
        correlation_id: 1,
        properties: vec![],
    })
    .await;
    c.recv().await.unwrap();
    c.send(ClientCommand::SaslHandshake { correlation_id: 2 })
        .await;
    c.recv().await.unwrap();
    c.send(ClientCommand::SaslAuthenticate {
        correlation_id: 2,
        mechanism: Str::from("PLAIN"),
        data: Bytes::from_static(b"\0guest\0wrong"),
    })
    .await;
    match c.recv().await.unwrap() {
        ServerCommand::SaslAuthenticateResponse { code, .. } => {
            assert_eq!(code, code::AUTHENTICATION_FAILURE)
        }
        other => panic!("{other:?}"),
    }
    assert!(
        c.recv().await.is_none(),
        "the socket is closed after a failed login"
    );
}

#[tokio::test]
async fn frame_over_the_pre_open_limit_closes_the_socket() {
    let t = target().await;
    if !t.warren {
        return; // RabbitMQ 3.10 has no pre-open limit.
    }
    let mut c = connect(&t).await;
    // A size prefix of 1 MiB before open: refused at once, nothing more is read.
    c.sock.write_all(&(1u32 << 20).to_be_bytes()).await.unwrap();
    c.sock.write_all(&[0, 0x11, 0, 1]).await.unwrap();
    assert!(c.recv().await.is_none());
}

/// A consumer catching up on 32 MiB: more than the socket buffers hold, so the server's
/// sendfile meets a full socket (EAGAIN) and must wait for writability; every chunk
/// arrives whole and in order.
#[tokio::test]
async fn catch_up_read_of_many_chunks_arrives_whole_and_in_order() {
    let t = target().await;
    let mut c = connect(&t).await;
    open(&mut c).await;
    let s = Str::from(format!("catch-up-{}", common::unique()).as_str());
    let created = c
        .call(|id| ClientCommand::Create {
            correlation_id: id,
            stream: s.clone(),
            arguments: vec![],
        })
        .await;
    assert_eq!(created, code::OK);
    let declared = c
        .call(|id| ClientCommand::DeclarePublisher {
            correlation_id: id,
            publisher_id: 0,
            reference: Str::default(),
            stream: s.clone(),
        })
        .await;
    assert_eq!(declared, code::OK);
    const TOTAL: u64 = 4096;
    const PER_FRAME: u64 = 64;
    let body = |i: u64| {
        let mut b = vec![(i % 251) as u8; 8192];
        b[..8].copy_from_slice(&i.to_be_bytes());
        b
    };
    for f in 0..TOTAL / PER_FRAME {
        let messages: Vec<PublishedMessage> = (f * PER_FRAME..(f + 1) * PER_FRAME)
            .map(|i| PublishedMessage {
                publishing_id: i,
                filter_value: None,
                entry: Entry::Simple(Bytes::from(body(i))),
            })
            .collect();
        c.send(ClientCommand::Publish(Publish::new(0, 1, &messages)))
            .await;
    }
    let mut confirmed = 0;
    while confirmed < TOTAL {
        match c.recv().await.unwrap() {
            ServerCommand::PublishConfirm { publishing_ids, .. } => {
                confirmed += publishing_ids.len() as u64
            }
            other => panic!("{other:?}"),
        }
    }
    let id = c.id();
    c.send(ClientCommand::Subscribe {
        correlation_id: id,
        subscription_id: 3,
        stream: s.clone(),
        offset: OffsetSpec::First,
        credit: u16::MAX,
        properties: vec![],
    })
    .await;
    match c.recv().await.unwrap() {
        ServerCommand::Response { code: 1, .. } => {}
        other => panic!("{other:?}"),
    }
    let mut next = 0u64;
    while next < TOTAL {
        match c.recv().await.unwrap() {
            ServerCommand::Deliver { chunk, .. } => {
                let (first, entries) = chunk_entries(&chunk);
                assert_eq!(first, next, "chunks in order, none missing");
                for e in entries {
                    assert_eq!(&e[..], &body(next)[..], "message {next}");
                    next += 1;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    let deleted = c
        .call(|id| ClientCommand::Delete {
            correlation_id: id,
            stream: s.clone(),
        })
        .await;
    assert_eq!(deleted, code::OK);
}

/// A super stream made over AMQP 0-9-1 as RabbitMQ's tools make one: a direct exchange
/// `{name}` and streams `{name}-0..2` bound with keys "0".."2" and
/// `x-stream-partition-order` 0..2, bound out of order; plus a classic queue bound with
/// key "1", which is no partition. Returns the AMQP connection (kept open while used).
async fn declare_super_stream(t: &Target, name: &str) -> lapin::Connection {
    use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::{AMQPValue, FieldTable, LongString};
    let conn = lapin::Connection::connect(&t.amqp_url(), Default::default())
        .await
        .expect("AMQP connects");
    let ch = conn.create_channel().await.unwrap();
    let durable = || QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(
        name.into(),
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
    for i in 0..3 {
        ch.queue_declare(
            format!("{name}-{i}").as_str().into(),
            durable(),
            stream_args.clone(),
        )
        .await
        .unwrap();
    }
    let classic = format!("{name}-classic");
    ch.queue_declare(classic.as_str().into(), durable(), FieldTable::default())
        .await
        .unwrap();
    for (queue, key, order) in [
        (format!("{name}-2"), "2", 2),
        (classic.clone(), "1", -1),
        (format!("{name}-0"), "0", 0),
        (format!("{name}-1"), "1", 1),
    ] {
        let args = common::table(&[("x-stream-partition-order", AMQPValue::LongInt(order))]);
        ch.queue_bind(
            queue.as_str().into(),
            name.into(),
            key.into(),
            QueueBindOptions::default(),
            args,
        )
        .await
        .unwrap();
    }
    conn
}

/// Deletes what [`declare_super_stream`] made (the tests may run against a shared broker).
async fn delete_super_stream(conn: &lapin::Connection, name: &str) {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let ch = conn.create_channel().await.unwrap();
    for q in ["0", "1", "2", "classic"] {
        let q = format!("{name}-{q}");
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
    ch.exchange_delete(name.into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn super_stream_partitions_and_route() {
    let t = target().await;
    let name = format!("invoices-{}", common::unique());
    let amqp = declare_super_stream(&t, &name).await;
    let mut c = connect(&t).await;
    open(&mut c).await;
    let p = |i: u32| format!("{name}-{i}");

    // Every stream bound, in partition order; the classic queue is no partition.
    assert_eq!(
        c.partitions(&name).await,
        (code::OK, vec![p(0), p(1), p(2)])
    );
    // Direct routing through the bindings, streams only.
    assert_eq!(c.route("1", &name).await, (code::OK, vec![p(1)]));
    assert_eq!(c.route("2", &name).await, (code::OK, vec![p(2)]));
    // No match: OK with no streams (RabbitMQ's `no_route`).
    assert_eq!(c.route("nope", &name).await, (code::OK, vec![]));
    // No such exchange.
    let unknown = format!("{name}-unknown");
    assert_eq!(
        c.partitions(&unknown).await,
        (code::STREAM_DOES_NOT_EXIST, vec![])
    );
    assert_eq!(
        c.route("1", &unknown).await,
        (code::STREAM_DOES_NOT_EXIST, vec![])
    );
    // A deleted partition leaves the super stream (its bindings go with it).
    {
        let ch = amqp.create_channel().await.unwrap();
        ch.queue_delete(p(1).as_str().into(), Default::default())
            .await
            .unwrap();
        ch.queue_declare(
            p(1).as_str().into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            common::table(&[(
                "x-queue-type",
                lapin::types::AMQPValue::LongString("stream".into()),
            )]),
        )
        .await
        .unwrap();
    }
    assert_eq!(c.partitions(&name).await, (code::OK, vec![p(0), p(2)]));
    assert_eq!(c.route("1", &name).await, (code::OK, vec![]));
    delete_super_stream(&amqp, &name).await;
}

/// Route needs write on the super stream's exchange and its streams; Partitions read or
/// write (RabbitMQ's stream reader on main, rabbitmq-server 53af22f; 3.10 checks nothing,
/// so Warren only).
#[tokio::test]
async fn super_stream_commands_check_permissions() {
    let t = target().await;
    if !t.warren {
        return;
    }
    let name = format!("invoices-{}", common::unique());
    let amqp = declare_super_stream(&t, &name).await;
    let admin = t._broker.as_ref().unwrap().admin();
    let user = format!("u-{}", common::unique());
    admin.add_user(&user, "pw", "").await;
    // Read on everything, write on nothing.
    admin.set_permissions(&user, "/", "", "", ".*").await;
    let mut c = connect(&t).await;
    open_as(&mut c, &user, "pw").await;
    assert_eq!(c.route("1", &name).await, (code::ACCESS_REFUSED, vec![]));
    assert_eq!(c.partitions(&name).await.0, code::OK);
    // Write on the exchange only: the partitions are refused.
    admin
        .set_permissions(&user, "/", "", &format!("^{name}$"), "")
        .await;
    assert_eq!(c.route("1", &name).await, (code::ACCESS_REFUSED, vec![]));
    assert_eq!(c.partitions(&name).await, (code::ACCESS_REFUSED, vec![]));
    // Neither on the exchange.
    admin.set_permissions(&user, "/", "", "", "^nothing$").await;
    assert_eq!(c.partitions(&name).await, (code::ACCESS_REFUSED, vec![]));
    // Write on everything.
    admin.set_permissions(&user, "/", "", ".*", "").await;
    assert_eq!(
        c.route("1", &name).await,
        (code::OK, vec![format!("{name}-1")])
    );
    assert_eq!(c.partitions(&name).await.0, code::OK);
    delete_super_stream(&amqp, &name).await;
}
