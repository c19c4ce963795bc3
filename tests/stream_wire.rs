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

// Single active consumer and the super stream commands (RabbitMQ 3.11 / 3.13: Warren
// only, the RabbitMQ 3.10 these tests can also run against has neither).

impl Conn {
    /// Declares publisher 1 on `stream` (once) and publishes `bodies` as one batch,
    /// waiting for every confirm: a later batch lands in a later chunk.
    async fn publish_batch(&mut self, stream: &str, first_id: u64, bodies: &[&str]) {
        if first_id == 1 {
            let s = Str::from(stream);
            let declared = self
                .call(|id| ClientCommand::DeclarePublisher {
                    correlation_id: id,
                    publisher_id: 1,
                    reference: Str::default(),
                    stream: s,
                })
                .await;
            assert_eq!(declared, code::OK);
        }
        let messages: Vec<PublishedMessage> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| PublishedMessage {
                publishing_id: first_id + i as u64,
                filter_value: None,
                entry: Entry::Simple(amqp_message(b.as_bytes())),
            })
            .collect();
        self.send(ClientCommand::Publish(Publish::new(1, 1, &messages)))
            .await;
        let mut confirmed = 0;
        while confirmed < bodies.len() {
            match self.recv().await.unwrap() {
                ServerCommand::PublishConfirm { publishing_ids, .. } => {
                    confirmed += publishing_ids.len()
                }
                other => panic!("{other:?}"),
            }
        }
    }

    /// Subscribes `sub` to `stream` from the first offset with credit 5 and `properties`;
    /// returns the response code.
    async fn subscribe_with(&mut self, sub: u8, stream: &str, properties: &[(&str, &str)]) -> u16 {
        let properties = properties
            .iter()
            .map(|(k, v)| (Str::from(*k), Str::from(*v)))
            .collect();
        let s = Str::from(stream);
        self.call(|id| ClientCommand::Subscribe {
            correlation_id: id,
            subscription_id: sub,
            stream: s,
            offset: OffsetSpec::First,
            credit: 5,
            properties,
        })
        .await
    }

    /// The next frame must be a ConsumerUpdate: (correlation id, subscription, active).
    async fn consumer_update(&mut self) -> (u32, u8, bool) {
        match self.recv().await.expect("a consumer update") {
            ServerCommand::ConsumerUpdate {
                correlation_id,
                subscription_id,
                active,
            } => (correlation_id, subscription_id, active),
            other => panic!("expected a consumer update, got {other:?}"),
        }
    }

    async fn answer_update(&mut self, correlation_id: u32, offset: Option<OffsetSpec>) {
        self.send(ClientCommand::ConsumerUpdateResponse {
            correlation_id,
            code: code::OK,
            offset,
        })
        .await;
    }

    /// The next frame must be a Deliver: (subscription, first offset, bodies).
    async fn deliver(&mut self) -> (u8, u64, Vec<Bytes>) {
        match self.recv().await.expect("a deliver") {
            ServerCommand::Deliver {
                subscription_id,
                chunk,
                ..
            } => {
                let (first, bodies) = chunk_entries(&chunk);
                (subscription_id, first, bodies)
            }
            other => panic!("expected a deliver, got {other:?}"),
        }
    }

    /// A round trip (QueryOffset): every frame the server sent before its response
    /// arrives first, so a test can tell that nothing else was sent.
    async fn sync(&mut self, stream: &str) {
        let id = self.id();
        self.send(ClientCommand::QueryOffset {
            correlation_id: id,
            reference: Str::from("nobody"),
            stream: Str::from(stream),
        })
        .await;
        match self.recv().await.unwrap() {
            ServerCommand::QueryOffsetResponse { correlation_id, .. } if correlation_id == id => {}
            other => panic!("expected nothing before the query's response, got {other:?}"),
        }
    }

    async fn create_super_stream(&mut self, name: &str, partitions: &[&str], keys: &[&str]) -> u16 {
        let strs = |v: &[&str]| v.iter().map(|s| Str::from(*s)).collect::<Vec<_>>();
        let (partitions, binding_keys) = (strs(partitions), strs(keys));
        self.call(|id| ClientCommand::CreateSuperStream {
            correlation_id: id,
            super_stream: Str::from(name),
            partitions,
            binding_keys,
            arguments: vec![],
        })
        .await
    }

    async fn delete_super_stream(&mut self, name: &str) -> u16 {
        self.call(|id| ClientCommand::DeleteSuperStream {
            correlation_id: id,
            super_stream: Str::from(name),
        })
        .await
    }
}

async fn create_stream(c: &mut Conn, name: &str) {
    let s = Str::from(name);
    let created = c
        .call(|id| ClientCommand::Create {
            correlation_id: id,
            stream: s,
            arguments: vec![],
        })
        .await;
    assert_eq!(created, code::OK);
}

const SAC: (&str, &str) = ("single-active-consumer", "true");

#[tokio::test]
async fn single_active_consumer_hands_over_in_subscription_order() {
    let t = target().await;
    if !t.warren {
        return;
    }
    let stream = format!("sac-{}", common::unique());
    let (mut a, mut b, mut c) = (connect(&t).await, connect(&t).await, connect(&t).await);
    for x in [&mut a, &mut b, &mut c] {
        open(x).await;
    }
    create_stream(&mut a, &stream).await;
    a.publish_batch(&stream, 1, &["m0", "m1"]).await;
    a.publish_batch(&stream, 3, &["m2", "m3"]).await;

    // A name is required.
    assert_eq!(
        a.subscribe_with(9, &stream, &[SAC]).await,
        code::PRECONDITION_FAILED
    );
    // The first member is active: its subscribe response, then a ConsumerUpdate, and
    // nothing is delivered before it answers.
    let group = [SAC, ("name", "app")];
    assert_eq!(a.subscribe_with(1, &stream, &group).await, code::OK);
    let (cid, sub, active) = a.consumer_update().await;
    assert_eq!((sub, active), (1, true));
    a.sync(&stream).await;
    // The answer's offset wins over the subscription's (first).
    a.answer_update(cid, Some(OffsetSpec::Offset(2))).await;
    let (sub, first, bodies) = a.deliver().await;
    assert_eq!((sub, first), (1, 2));
    assert_eq!(bodies[0], amqp_message(b"m2"));

    // The next two members wait: no update, no delivery; credit is refused while waiting.
    assert_eq!(b.subscribe_with(3, &stream, &group).await, code::OK);
    assert_eq!(c.subscribe_with(4, &stream, &group).await, code::OK);
    b.send(ClientCommand::Credit {
        subscription_id: 3,
        credit: 1,
    })
    .await;
    match b.recv().await.unwrap() {
        ServerCommand::CreditResponse {
            code: c,
            subscription_id: 3,
        } => assert_eq!(c, code::PRECONDITION_FAILED),
        other => panic!("{other:?}"),
    }
    b.sync(&stream).await;
    c.sync(&stream).await;
    // A non-SAC subscription on the same stream is not part of the group.
    assert_eq!(
        c.subscribe_with(5, &stream, &[("name", "app")]).await,
        code::OK
    );
    assert_eq!(c.deliver().await.0, 5);

    // The active member leaves: the next in subscription order (b) takes over, from
    // the offset it answers; c still waits.
    let id = a.id();
    a.send(ClientCommand::Unsubscribe {
        correlation_id: id,
        subscription_id: 1,
    })
    .await;
    loop {
        match a.recv().await.unwrap() {
            ServerCommand::Response { key: k, code, .. } if k == key::UNSUBSCRIBE => {
                assert_eq!(code, code::OK);
                break;
            }
            ServerCommand::Deliver { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    let (cid, sub, active) = b.consumer_update().await;
    assert_eq!((sub, active), (3, true));
    b.answer_update(cid, Some(OffsetSpec::Offset(0))).await;
    let (sub, first, _) = b.deliver().await;
    assert_eq!((sub, first), (3, 0));

    // b's connection closes: c takes over; no answer offset keeps its subscription's.
    drop(b);
    let (cid, sub, active) = loop {
        match c.recv().await.unwrap() {
            ServerCommand::Deliver {
                subscription_id: 5, ..
            } => continue,
            ServerCommand::ConsumerUpdate {
                correlation_id,
                subscription_id,
                active,
            } => break (correlation_id, subscription_id, active),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!((sub, active), (4, true));
    c.answer_update(cid, None).await;
    loop {
        match c.deliver().await {
            (5, ..) => continue,
            (sub, first, _) => {
                assert_eq!((sub, first), (4, 0));
                break;
            }
        }
    }
}

#[tokio::test]
async fn super_stream_groups_spread_and_step_down_before_handing_over() {
    let t = target().await;
    if !t.warren {
        return;
    }
    let name = format!("orders-{}", common::unique());
    let (p0, p1) = (format!("{name}-0"), format!("{name}-1"));
    let (mut a, mut b) = (connect(&t).await, connect(&t).await);
    open(&mut a).await;
    open(&mut b).await;
    assert_eq!(
        a.create_super_stream(&name, &[&p0, &p1], &["0", "1"]).await,
        code::OK
    );
    assert_eq!(
        a.partitions(&name).await,
        (code::OK, vec![p0.clone(), p1.clone()])
    );
    assert_eq!(a.route("1", &name).await, (code::OK, vec![p1.clone()]));
    a.publish_batch(&p1, 1, &["x"]).await;

    let group = [SAC, ("name", "billing"), ("super-stream", name.as_str())];
    // a joins both partitions first: active on both.
    for (sub, p) in [(0u8, &p0), (1, &p1)] {
        assert_eq!(a.subscribe_with(sub, p, &group).await, code::OK);
        let (cid, s, active) = a.consumer_update().await;
        assert_eq!((s, active), (sub, true));
        a.answer_update(cid, None).await;
    }
    assert_eq!(a.deliver().await.0, 1);

    // b joins partition 0: 0 mod 2 = 0, a stays active there.
    assert_eq!(b.subscribe_with(0, &p0, &group).await, code::OK);
    b.sync(&p0).await;
    // b joins partition 1: 1 mod 2 = 1, so b; a is told to step down first, and b
    // hears nothing until a has answered.
    assert_eq!(b.subscribe_with(1, &p1, &group).await, code::OK);
    let (cid, sub, active) = a.consumer_update().await;
    assert_eq!((sub, active), (1, false));
    b.sync(&p1).await;
    a.answer_update(cid, None).await;
    let (cid, sub, active) = b.consumer_update().await;
    assert_eq!((sub, active), (1, true));
    b.answer_update(cid, Some(OffsetSpec::First)).await;
    let (sub, first, bodies) = b.deliver().await;
    assert_eq!((sub, first), (1, 0));
    assert_eq!(bodies, [amqp_message(b"x")]);
    // a no longer reads partition 1.
    a.publish_batch(&p1, 2, &["y"]).await;
    assert_eq!(b.deliver().await.1, 1);
    a.sync(&p1).await;

    // DeleteSuperStream: the exchange and both partitions go; subscribers are told.
    assert_eq!(a.delete_super_stream(&name).await, code::OK);
    let mut gone = Vec::new();
    while gone.len() < 2 {
        match a.recv().await.unwrap() {
            ServerCommand::MetadataUpdate { code: c, stream } => {
                assert_eq!(c, code::STREAM_NOT_AVAILABLE);
                gone.push(stream.to_string());
            }
            other => panic!("{other:?}"),
        }
    }
    gone.sort();
    assert_eq!(gone, [p0, p1]);
    assert_eq!(a.partitions(&name).await.0, code::STREAM_DOES_NOT_EXIST);
}

#[tokio::test]
async fn create_and_delete_super_stream_refusals() {
    let t = target().await;
    if !t.warren {
        return;
    }
    let name = format!("refused-{}", common::unique());
    let p = format!("{name}-0");
    let mut c = connect(&t).await;
    open(&mut c).await;
    let cases: &[(&str, &[&str], &[&str], u16)] = &[
        ("amq.super", &["x-0"], &["0"], code::PRECONDITION_FAILED),
        (&name, &[&p], &["0", "1"], code::PRECONDITION_FAILED),
        (&name, &[&p, &p], &["0", "1"], code::PRECONDITION_FAILED),
        (&name, &["amq.p"], &["0"], code::PRECONDITION_FAILED),
        ("amq.direct", &[&p], &["0"], code::PRECONDITION_FAILED),
    ];
    for (x, partitions, keys, expected) in cases {
        assert_eq!(
            c.create_super_stream(x, partitions, keys).await,
            *expected,
            "{x} {partitions:?} {keys:?}"
        );
    }
    assert!(c.lookup_missing(&p).await, "nothing was created");
    assert_eq!(c.create_super_stream(&name, &[&p], &["0"]).await, code::OK);
    // Again: the exchange exists; another super stream over an existing stream too.
    assert_eq!(
        c.create_super_stream(&name, &[&p], &["0"]).await,
        code::STREAM_ALREADY_EXISTS
    );
    let other = format!("{name}-other");
    assert_eq!(
        c.create_super_stream(&other, &[&p], &["0"]).await,
        code::STREAM_ALREADY_EXISTS
    );

    // Permissions: configure on the exchange and partitions, read on the exchange,
    // write on the partitions.
    let admin = t._broker.as_ref().unwrap().admin();
    let user = format!("u-{}", common::unique());
    admin.add_user(&user, "pw", "").await;
    let mut u = connect(&t).await;
    let mine = format!("{user}-ss");
    let part = format!("{mine}-0");
    for (configure, write, read, expected) in [
        (".*", ".*", "^nothing$", code::ACCESS_REFUSED),
        (".*", "^nothing$", ".*", code::ACCESS_REFUSED),
        (
            &format!("^{mine}$") as &str,
            ".*",
            ".*",
            code::ACCESS_REFUSED,
        ),
        (".*", ".*", ".*", code::OK),
    ] {
        admin
            .set_permissions(&user, "/", configure, write, read)
            .await;
        if expected == code::ACCESS_REFUSED && u.next_id == 0 {
            open_as(&mut u, &user, "pw").await;
        }
        assert_eq!(
            u.create_super_stream(&mine, &[&part], &["0"]).await,
            expected,
            "configure {configure} write {write} read {read}"
        );
    }
    admin
        .set_permissions(&user, "/", "^nothing$", ".*", ".*")
        .await;
    assert_eq!(u.delete_super_stream(&mine).await, code::ACCESS_REFUSED);
    admin.set_permissions(&user, "/", ".*", ".*", ".*").await;
    assert_eq!(u.delete_super_stream(&mine).await, code::OK);
    assert_eq!(
        u.delete_super_stream(&mine).await,
        code::STREAM_DOES_NOT_EXIST
    );
    assert!(u.lookup_missing(&part).await, "the partition went with it");
    assert_eq!(c.delete_super_stream(&name).await, code::OK);
}

impl Conn {
    /// Whether Metadata says `stream` does not exist.
    async fn lookup_missing(&mut self, stream: &str) -> bool {
        let id = self.id();
        self.send(ClientCommand::Metadata {
            correlation_id: id,
            streams: vec![Str::from(stream)],
        })
        .await;
        match self.recv().await.unwrap() {
            ServerCommand::MetadataResponse { streams, .. } => {
                streams[0].code == code::STREAM_DOES_NOT_EXIST
            }
            other => panic!("{other:?}"),
        }
    }
}

/// A member told to step down that leaves without answering (here its connection goes)
/// does not hold its group up: the next member is activated at once.
#[tokio::test]
async fn member_leaving_while_stepping_down_lets_the_next_one_go_ahead() {
    let t = target().await;
    if !t.warren {
        return;
    }
    let name = format!("steps-{}", common::unique());
    let p1 = format!("{name}-1");
    let (mut a, mut b) = (connect(&t).await, connect(&t).await);
    open(&mut a).await;
    open(&mut b).await;
    assert_eq!(
        a.create_super_stream(&name, &[&format!("{name}-0"), &p1], &["0", "1"])
            .await,
        code::OK
    );
    let group = [SAC, ("name", "g"), ("super-stream", name.as_str())];
    assert_eq!(a.subscribe_with(1, &p1, &group).await, code::OK);
    let (cid, _, active) = a.consumer_update().await;
    assert!(active);
    a.answer_update(cid, None).await;
    assert_eq!(b.subscribe_with(1, &p1, &group).await, code::OK);
    let (_, sub, active) = a.consumer_update().await;
    assert_eq!((sub, active), (1, false));
    b.sync(&p1).await;
    drop(a);
    let (cid, sub, active) = b.consumer_update().await;
    assert_eq!((sub, active), (1, true));
    b.answer_update(cid, None).await;
    assert_eq!(b.delete_super_stream(&name).await, code::OK);
}

/// A gzip member of `data` (what the stream clients' gzip codecs write).
fn gzip(data: &[u8]) -> Bytes {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
    out.extend(crc32fast::hash(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    Bytes::from(out)
}

/// The entries of a Deliver's chunk, whole (header included): (records it holds, bytes).
fn raw_entries(chunk: &Bytes) -> Vec<(u64, Bytes)> {
    let entries = u16::from_be_bytes([chunk[2], chunk[3]]);
    let mut at = 48;
    let mut out = Vec::new();
    for _ in 0..entries {
        let head = u32::from_be_bytes(chunk[at..at + 4].try_into().unwrap());
        let (records, len) = if head & 0x8000_0000 == 0 {
            (1, 4 + head as usize)
        } else {
            let n = u16::from_be_bytes([chunk[at + 1], chunk[at + 2]]) as u64;
            let data = u32::from_be_bytes(chunk[at + 7..at + 11].try_into().unwrap());
            (n, 11 + data as usize)
        };
        out.push((records, chunk.slice(at..at + len)));
        at += len;
    }
    assert_eq!(at, chunk.len(), "the chunk is its entries");
    out
}

/// Sub-entry batches (a client's `subEntrySize` + `compression`): a gzip batch and an
/// uncompressed one are stored whole, one entry each, as published (the server never
/// inflates them), take an offset per record, are confirmed and deduplicated by their one
/// publishing id, and are delivered byte for byte. Over AMQP 0-9-1 Warren inflates the
/// gzip batch into its records; RabbitMQ 3.10 closes that consumer's connection (541), so
/// that part runs against Warren only.
#[tokio::test]
async fn sub_entry_batches_are_stored_and_delivered_whole() {
    let t = target().await;
    let mut c = connect(&t).await;
    open(&mut c).await;
    let name = format!("sub-batch-{}", common::unique());
    let s = Str::from(name.as_str());
    create_stream(&mut c, &name).await;
    let declared = c
        .call(|id| ClientCommand::DeclarePublisher {
            correlation_id: id,
            publisher_id: 1,
            reference: Str::from("sub-batch-writer"),
            stream: s.clone(),
        })
        .await;
    assert_eq!(declared, code::OK);
    let records = |bodies: &[&str]| {
        let mut d = BytesMut::new();
        for b in bodies {
            let m = amqp_message(b.as_bytes());
            d.put_u32(m.len() as u32);
            d.put_slice(&m);
        }
        d.freeze()
    };
    let plain = records(&["g0", "g1", "g2"]);
    let gzip_batch = Entry::SubBatch {
        compression: 1,
        count: 3,
        uncompressed_size: plain.len() as u32,
        data: gzip(&plain),
    };
    let raw = records(&["u0", "u1"]);
    let raw_batch = Entry::SubBatch {
        compression: 0,
        count: 2,
        uncompressed_size: raw.len() as u32,
        data: raw,
    };
    let message = |publishing_id: u64, entry: Entry| PublishedMessage {
        publishing_id,
        filter_value: None,
        entry,
    };
    let first = [
        message(1, Entry::Simple(amqp_message(b"before"))),
        message(2, gzip_batch.clone()),
        message(3, raw_batch.clone()),
        message(4, Entry::Simple(amqp_message(b"after"))),
    ];
    // The gzip batch again (its id is stored: confirmed, not stored), then one more.
    let second = [
        message(2, gzip_batch.clone()),
        message(5, Entry::Simple(amqp_message(b"last"))),
    ];
    let mut confirmed = Vec::new();
    for (frame, n) in [(&first[..], 4), (&second[..], 6)] {
        c.send(ClientCommand::Publish(Publish::new(1, 1, frame)))
            .await;
        while confirmed.len() < n {
            match c.recv().await.unwrap() {
                ServerCommand::PublishConfirm {
                    publisher_id: 1,
                    publishing_ids,
                } => confirmed.extend(publishing_ids),
                other => panic!("{other:?}"),
            }
        }
    }
    confirmed.sort();
    assert_eq!(confirmed, [1, 2, 2, 3, 4, 5]);
    let id = c.id();
    c.send(ClientCommand::Subscribe {
        correlation_id: id,
        subscription_id: 1,
        stream: s.clone(),
        offset: OffsetSpec::First,
        credit: 10,
        properties: vec![],
    })
    .await;
    match c.recv().await.unwrap() {
        ServerCommand::Response { code: 1, .. } => {}
        other => panic!("{other:?}"),
    }
    // Every entry as published, in order, at offsets advancing by its record count.
    let mut entries = Vec::new();
    let mut next = 0u64;
    while next < 8 {
        match c.recv().await.unwrap() {
            ServerCommand::Deliver { chunk, .. } => {
                let first = u64::from_be_bytes(chunk[24..32].try_into().unwrap());
                let num_records = u32::from_be_bytes(chunk[4..8].try_into().unwrap());
                assert_eq!(first, next, "chunks in order, offsets by records");
                let got = raw_entries(&chunk);
                assert_eq!(
                    got.iter().map(|e| e.0).sum::<u64>(),
                    num_records as u64,
                    "the chunk's record count counts the batches' records"
                );
                next += num_records as u64;
                entries.extend(got);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(next, 8);
    let whole = |e: &Entry| {
        let mut b = BytesMut::new();
        match e {
            Entry::Simple(m) => {
                b.put_u32(m.len() as u32);
                b.put_slice(m);
            }
            Entry::SubBatch {
                compression,
                count,
                uncompressed_size,
                data,
            } => {
                b.put_u8(0x80 | compression << 4);
                b.put_u16(*count);
                b.put_u32(*uncompressed_size);
                b.put_u32(data.len() as u32);
                b.put_slice(data);
            }
        }
        (e_records(e), b.freeze())
    };
    let want: Vec<(u64, Bytes)> = [
        Entry::Simple(amqp_message(b"before")),
        gzip_batch,
        raw_batch,
        Entry::Simple(amqp_message(b"after")),
        Entry::Simple(amqp_message(b"last")),
    ]
    .iter()
    .map(whole)
    .collect();
    assert_eq!(entries, want);

    if t.warren {
        // AMQP 0-9-1: every record, the gzip batch inflated, at its offset.
        use futures_lite::StreamExt;
        use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
        use lapin::types::{AMQPValue, FieldTable};
        let conn = lapin::Connection::connect(&t.amqp_url(), Default::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.basic_qos(20, BasicQosOptions::default()).await.unwrap();
        let mut args = FieldTable::default();
        args.insert(
            "x-stream-offset".into(),
            AMQPValue::LongString("first".into()),
        );
        let mut consumer = ch
            .basic_consume(
                name.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                args,
            )
            .await
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 8 {
            let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
                .await
                .expect("a delivery within 10 s")
                .unwrap()
                .unwrap();
            let offset = match d
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get("x-stream-offset"))
            {
                Some(AMQPValue::LongLongInt(n)) => *n,
                other => panic!("{other:?}"),
            };
            got.push((offset, String::from_utf8(d.data.clone()).unwrap()));
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
        let want: Vec<(i64, String)> = ["before", "g0", "g1", "g2", "u0", "u1", "after", "last"]
            .iter()
            .enumerate()
            .map(|(i, b)| (i as i64, b.to_string()))
            .collect();
        assert_eq!(got, want);
        conn.close(200, "bye".into()).await.unwrap();
    }
    let deleted = c
        .call(|id| ClientCommand::Delete {
            correlation_id: id,
            stream: s.clone(),
        })
        .await;
    assert_eq!(deleted, code::OK);
}

fn e_records(e: &Entry) -> u64 {
    match e {
        Entry::Simple(_) => 1,
        Entry::SubBatch { count, .. } => *count as u64,
    }
}
