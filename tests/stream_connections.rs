//! Stream-protocol connections as first-class connections: listed by the management API
//! where RabbitMQ 3.10 with rabbitmq_stream_management lists them (field by field), with
//! their publishers and consumers and RabbitMQ's counters; closed by DELETE and by
//! deleting their user or vhost (RabbitMQ closes the socket, no Close frame); counted in
//! connection limits; the outbound buffer of a client that does not read is bounded; the
//! disk alarm refuses new publishers; a malformed sub-entry batch is refused whole.
//!
//! With `STREAM_TEST_ADDR=127.0.0.1:5553` (and `AMQP_TEST_URL`, `AMQP_TEST_MGMT_URL`,
//! RabbitMQ's on 5673 / 15673 by default) the same tests run against RabbitMQ 3.10; what
//! only Warren does (3.10 enforces no connection limit on stream connections) is checked
//! on Warren only.

mod common;

use common::mgmt::seg;
use common::stream_raw::{StreamConn, amqp_message, chunk_entries};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use warren::protocol::stream::{
    ClientCommand, Entry, OffsetSpec, Publish, PublishedMessage, ServerCommand, Str, code,
};

struct Target {
    stream_addr: String,
    broker: common::TestBroker,
    /// Held for the test's length: see [`MEMORY`].
    _turn: Turn,
}

/// The tests of this binary share one process, so a test that reads the process's RSS
/// (the in-process broker's memory) must not run beside the others: it takes this lock
/// for writing, every other test for reading.
static MEMORY: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

enum Turn {
    Shared(#[allow(dead_code)] tokio::sync::RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] tokio::sync::RwLockWriteGuard<'static, ()>),
}

impl Target {
    fn warren(&self) -> bool {
        self.broker.is_warren()
    }
}

async fn target_with(configure: impl FnOnce(&mut warren::config::Config)) -> Target {
    target_turn(Turn::Shared(MEMORY.read().await), configure).await
}

async fn target_turn(turn: Turn, configure: impl FnOnce(&mut warren::config::Config)) -> Target {
    if let Ok(addr) = std::env::var("STREAM_TEST_ADDR") {
        let url = std::env::var("AMQP_TEST_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5673/%2f".into());
        return Target {
            stream_addr: addr,
            broker: common::TestBroker::external(url),
            _turn: turn,
        };
    }
    let broker = common::TestBroker::start_warren_with(|c| {
        c.stream.listen = "127.0.0.1:0".into();
        configure(c);
    })
    .await;
    let addr = broker.server().and_then(|s| s.stream_addr).unwrap();
    Target {
        stream_addr: addr.to_string(),
        broker,
        _turn: turn,
    }
}

async fn target() -> Target {
    target_with(|_| {}).await
}

async fn connect(t: &Target) -> StreamConn<TcpStream> {
    StreamConn::new(TcpStream::connect(&t.stream_addr).await.expect("connects"))
}

/// The fields of a stream connection in RabbitMQ 3.10's listings (GET
/// /api/stream/connections and /api/connections).
const CONNECTION_FIELDS: &[&str] = &[
    "auth_mechanism",
    "channel_max",
    "client_properties",
    "connected_at",
    "frame_max",
    "host",
    "name",
    "node",
    "peer_cert_issuer",
    "peer_cert_subject",
    "peer_cert_validity",
    "peer_host",
    "peer_port",
    "port",
    "protocol",
    "ssl",
    "ssl_cipher",
    "ssl_hash",
    "ssl_key_exchange",
    "ssl_protocol",
    "timeout",
    "user",
    "user_provided_name",
    "user_who_performed_action",
    "vhost",
];

const PUBLISHER_FIELDS: &[&str] = &[
    "confirmed",
    "connection_details",
    "errored",
    "published",
    "publisher_id",
    "queue",
    "reference",
];

const CONSUMER_FIELDS: &[&str] = &[
    "connection_details",
    "consumed",
    "credits",
    "offset",
    "offset_lag",
    "properties",
    "queue",
    "subscription_id",
];

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(fields: &[&str]) -> BTreeSet<String> {
    fields.iter().map(|s| s.to_string()).collect()
}

/// The listing's item whose `user_provided_name` is `name`.
fn by_client_name<'a>(listing: &'a Value, name: &str) -> Option<&'a Value> {
    listing
        .as_array()?
        .iter()
        .find(|c| c["user_provided_name"] == name)
}

async fn create(c: &mut StreamConn<TcpStream>, stream: &str) {
    let s = Str::from(stream);
    let r = c
        .call(|id| ClientCommand::Create {
            correlation_id: id,
            stream: s,
            arguments: vec![],
        })
        .await;
    assert_eq!(r, code::OK, "create {stream}");
}

async fn delete_stream(c: &mut StreamConn<TcpStream>, stream: &str) {
    let s = Str::from(stream);
    c.call(|id| ClientCommand::Delete {
        correlation_id: id,
        stream: s,
    })
    .await;
}

fn simple(id: u64, body: &str) -> PublishedMessage {
    PublishedMessage {
        publishing_id: id,
        filter_value: None,
        entry: Entry::Simple(amqp_message(body.as_bytes())),
    }
}

/// Receives publish confirms (and errors) until `n` ids were answered: (confirmed,
/// errored) ids, sorted.
async fn answers(c: &mut StreamConn<TcpStream>, n: usize) -> (Vec<u64>, Vec<(u64, u16)>) {
    let (mut ok, mut err) = (Vec::new(), Vec::new());
    while ok.len() + err.len() < n {
        match c.recv().await.expect("the connection is open") {
            ServerCommand::PublishConfirm { publishing_ids, .. } => ok.extend(publishing_ids),
            ServerCommand::PublishError { errors, .. } => err.extend(errors),
            other => panic!("unexpected {other:?}"),
        }
    }
    ok.sort();
    err.sort();
    (ok, err)
}

#[tokio::test]
async fn stream_connections_publishers_and_consumers_are_listed_as_rabbitmq_lists_them() {
    let t = target().await;
    let api = t.broker.mgmt();
    let u = common::unique();
    let (pname, cname) = (format!("sc-pub-{u}"), format!("sc-sub-{u}"));
    let stream = format!("sc-list-{u}");

    let mut p = connect(&t).await;
    p.open_guest(&pname).await;
    create(&mut p, &stream).await;
    let declared = p
        .call(|id| ClientCommand::DeclarePublisher {
            correlation_id: id,
            publisher_id: 7,
            reference: Str::from("ref-1"),
            stream: Str::from(stream.as_str()),
        })
        .await;
    assert_eq!(declared, code::OK);
    let batch: Vec<_> = (1..=3).map(|i| simple(i, &format!("m{i}"))).collect();
    p.send(ClientCommand::Publish(Publish::new(7, 1, &batch)))
        .await;
    assert_eq!(answers(&mut p, 3).await, (vec![1, 2, 3], vec![]));

    let mut c = connect(&t).await;
    c.open_guest(&cname).await;
    let id = c.id();
    c.send(ClientCommand::Subscribe {
        correlation_id: id,
        subscription_id: 3,
        stream: Str::from(stream.as_str()),
        offset: OffsetSpec::First,
        credit: 10,
        properties: vec![(Str::from("name"), Str::from("app-1"))],
    })
    .await;
    assert!(matches!(
        c.recv().await,
        Some(ServerCommand::Response { code: 1, .. })
    ));
    // The three messages, in one chunk or more (how the store batched them).
    let (mut got, mut chunks, mut last_first) = (0, 0u64, 0u64);
    while got < 3 {
        match c.recv().await {
            Some(ServerCommand::Deliver { chunk, .. }) => {
                let (first, entries) = chunk_entries(&chunk);
                got += entries.len();
                chunks += 1;
                last_first = first;
            }
            other => panic!("{other:?}"),
        }
    }

    // Listed (RabbitMQ fills its statistics within 5 s), with exactly RabbitMQ's fields.
    let list = api
        .wait_for("/stream/connections", "both connections", |l| {
            by_client_name(l, &pname).is_some() && by_client_name(l, &cname).is_some()
        })
        .await;
    let conn = by_client_name(&list, &pname).unwrap().clone();
    assert_eq!(keys(&conn), set(CONNECTION_FIELDS), "{conn}");
    assert_eq!(conn["protocol"], "stream");
    assert_eq!(conn["user"], "guest");
    assert_eq!(conn["vhost"], "/");
    assert_eq!(conn["auth_mechanism"], "PLAIN");
    assert_eq!(conn["channel_max"], 0);
    assert_eq!(conn["frame_max"], 1_048_576);
    assert_eq!(conn["ssl"], false);
    assert_eq!(conn["ssl_protocol"], Value::Null);
    assert_eq!(conn["client_properties"]["connection_name"], pname.as_str());
    let port: u64 = t.stream_addr.rsplit_once(':').unwrap().1.parse().unwrap();
    assert_eq!(conn["port"], port);
    let name = conn["name"].as_str().unwrap().to_string();
    assert_eq!(
        name,
        format!(
            "{}:{} -> {}",
            conn["peer_host"].as_str().unwrap(),
            conn["peer_port"],
            t.stream_addr
        )
    );

    // Also in /api/connections and the vhost's listing, the same object.
    let all = api.json("/connections").await;
    let same = by_client_name(&all, &pname).expect("in /api/connections");
    assert_eq!(keys(same), set(CONNECTION_FIELDS));
    let in_vhost = api.json("/stream/connections/%2F").await;
    assert!(by_client_name(&in_vhost, &cname).is_some());

    // One connection: the unset TLS fields are "" there, as RabbitMQ 3.10 answers.
    let one = api
        .json(&format!("/stream/connections/%2F/{}", seg(&name)))
        .await;
    assert_eq!(keys(&one), set(CONNECTION_FIELDS));
    assert_eq!(one["ssl_protocol"], "");
    assert_eq!(one["peer_cert_subject"], "");

    // Its publishers, with the counters of the three messages.
    let pubs = api
        .wait_for(
            &format!("/stream/connections/%2F/{}/publishers", seg(&name)),
            "the publisher's confirms",
            |l| l[0]["confirmed"] == 3,
        )
        .await;
    let pb = &pubs[0];
    assert_eq!(keys(pb), set(PUBLISHER_FIELDS), "{pb}");
    assert_eq!(pb["publisher_id"], 7);
    assert_eq!(pb["reference"], "ref-1");
    assert_eq!(
        (pb["published"].clone(), pb["errored"].clone()),
        (3.into(), 0.into())
    );
    assert_eq!(pb["queue"]["name"], stream.as_str());
    assert_eq!(pb["queue"]["vhost"], "/");
    assert_eq!(pb["connection_details"]["name"], name.as_str());
    assert_eq!(pb["connection_details"]["user"], "guest");
    assert_eq!(
        keys(&pb["connection_details"]),
        set(&["name", "node", "peer_host", "peer_port", "user"])
    );
    let no_consumers = api
        .json(&format!("/stream/connections/%2F/{}/consumers", seg(&name)))
        .await;
    assert_eq!(no_consumers, serde_json::json!([]));
    for path in [
        "/stream/publishers".to_string(),
        "/stream/publishers/%2F".to_string(),
        format!("/stream/publishers/%2F/{}", seg(&stream)),
    ] {
        let l = api.json(&path).await;
        assert!(
            l.as_array()
                .unwrap()
                .iter()
                .any(|x| x["queue"]["name"] == stream.as_str() && x["publisher_id"] == 7),
            "{path}: {l}"
        );
    }

    // The consumer: 3 messages delivered, a credit spent per chunk, the offset of the
    // last chunk (RabbitMQ shows its reader's next offset until its first periodic
    // statistics, then this).
    let consumers = api
        .wait_for("/stream/consumers", "the consumer", |l| {
            l.as_array().unwrap().iter().any(|k| {
                k["queue"]["name"] == stream.as_str()
                    && k["consumed"] == 3
                    && k["offset"] == last_first
            })
        })
        .await;
    let k = consumers
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["queue"]["name"] == stream.as_str())
        .unwrap();
    assert_eq!(keys(k), set(CONSUMER_FIELDS), "{k}");
    assert_eq!(k["subscription_id"], 3);
    assert_eq!(k["credits"], 10 - chunks);
    assert_eq!(k["offset"], last_first);
    assert_eq!(k["offset_lag"], 0, "{k} last chunk at {last_first}");
    assert_eq!(k["properties"]["name"], "app-1");
    let in_vhost = api.json("/stream/consumers/%2F").await;
    assert!(
        in_vhost
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["queue"]["name"] == stream.as_str())
    );

    // Not found: a vhost, a connection, a stream that do not exist.
    for path in [
        "/stream/connections/no-such-vhost-sc".to_string(),
        "/stream/connections/%2F/no-such-connection".to_string(),
        "/stream/publishers/%2F/no-such-stream-sc".to_string(),
    ] {
        api.get(&path).await.expect_not_found();
    }

    // Prometheus counts them (an in-process broker has no other connection).
    if t.warren() {
        let text = reqwest::get(format!("{}/metrics", t.broker.prometheus_url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            text.lines().any(|l| l == "rabbitmq_connections 2"),
            "rabbitmq_connections in {text}"
        );
    }
    delete_stream(&mut p, &stream).await;
}

/// The connection named `client_name` in the management API, once listed.
async fn listed_name(t: &Target, client_name: &str) -> String {
    let l = t
        .broker
        .mgmt()
        .wait_for("/stream/connections", client_name, |l| {
            by_client_name(l, client_name).is_some()
        })
        .await;
    by_client_name(&l, client_name).unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn delete_closes_a_stream_connection_by_either_path() {
    let t = target().await;
    let api = t.broker.mgmt();
    let u = common::unique();
    for (i, path) in [
        "/stream/connections/%2F/{}", // the stream plugin's
        "/connections/{}",            // the management plugin's
    ]
    .iter()
    .enumerate()
    {
        let client_name = format!("sc-del-{i}-{u}");
        let mut c = connect(&t).await;
        c.open_guest(&client_name).await;
        let name = listed_name(&t, &client_name).await;
        let r = api.delete(&path.replace("{}", &seg(&name))).await;
        assert_eq!(r.status, 204, "{path}: {}", r.text);
        // RabbitMQ 3.10 closes the socket without a Close frame.
        let frames = c.closed().await;
        assert!(frames.is_empty(), "{path}: {frames:?}");
        api.wait_for("/stream/connections", "the connection gone", |l| {
            by_client_name(l, &client_name).is_none()
        })
        .await;
    }
}

#[tokio::test]
async fn deleting_the_user_or_the_vhost_closes_its_stream_connections() {
    let t = target().await;
    let admin = t.broker.admin();
    let u = common::unique();
    // By vhost.
    let vhost = format!("sc-vhost-{u}");
    admin.add_vhost(&vhost).await;
    let mut c = connect(&t).await;
    assert_eq!(c.open("sc-v", "guest", "guest", &vhost).await.0, code::OK);
    admin.delete_vhost(&vhost).await;
    assert!(c.closed().await.is_empty());
    // By user.
    let user = format!("sc-user-{u}");
    admin.add_user(&user, "pw", "").await;
    admin.set_permissions(&user, "/", ".*", ".*", ".*").await;
    let mut c = connect(&t).await;
    assert_eq!(c.open("sc-u", &user, "pw", "/").await.0, code::OK);
    admin.delete_user(&user).await;
    assert!(c.closed().await.is_empty());
}

#[tokio::test]
async fn stream_connections_count_in_vhost_and_user_connection_limits() {
    let t = target().await;
    let admin = t.broker.admin();
    let u = common::unique();
    // A vhost limited to one connection: a stream connection takes the place, and an
    // AMQP connection is refused (both brokers).
    let vhost = format!("sc-limit-{u}");
    admin.add_vhost(&vhost).await;
    admin.set_vhost_limit(&vhost, "max-connections", 1).await;
    let mut first = connect(&t).await;
    assert_eq!(
        first.open("sc-l1", "guest", "guest", &vhost).await.0,
        code::OK
    );
    let amqp = t.broker.connect_as("guest", "guest", &vhost).await;
    assert_eq!(
        common::reply_code(&amqp.expect_err("over the vhost's limit")),
        530
    );
    // A second stream connection: Warren refuses it as RabbitMQ 3.11+ do
    // (VHOST_ACCESS_FAILURE); 3.10 has no check there (a FIXME in its reader).
    if t.warren() {
        let mut second = connect(&t).await;
        let (c, _) = second.open("sc-l2", "guest", "guest", &vhost).await;
        assert_eq!(c, code::VIRTUAL_HOST_ACCESS_FAILURE);
        // Closing the first frees the place (once the registry no longer lists it).
        drop(first);
        t.broker
            .mgmt()
            .wait_for("/stream/connections", "the first connection gone", |l| {
                by_client_name(l, "sc-l1").is_none()
            })
            .await;
        let mut third = connect(&t).await;
        let opened = third.open("sc-l3", "guest", "guest", &vhost).await.0;
        assert_eq!(opened, code::OK);
    }
    admin.delete_vhost(&vhost).await;

    // A user limited to one connection.
    let user = format!("sc-ulimit-{u}");
    admin.add_user(&user, "pw", "").await;
    admin.set_permissions(&user, "/", ".*", ".*", ".*").await;
    admin.set_user_limit(&user, "max-connections", 1).await;
    let mut first = connect(&t).await;
    assert_eq!(first.open("sc-u1", &user, "pw", "/").await.0, code::OK);
    let amqp = t.broker.connect_as(&user, "pw", "/").await;
    assert_eq!(
        common::reply_code(&amqp.expect_err("over the user's limit")),
        530
    );
    if t.warren() {
        let mut second = connect(&t).await;
        assert_eq!(
            second.open("sc-u2", &user, "pw", "/").await.0,
            code::VIRTUAL_HOST_ACCESS_FAILURE
        );
    }
    admin.delete_user(&user).await;
}

/// A malformed uncompressed sub-entry batch (its records do not fill it exactly) is
/// refused whole with a PublishError; the messages around it are stored and confirmed.
/// (RabbitMQ stores a sub-entry batch without looking inside, so Warren only.)
#[tokio::test]
async fn a_malformed_sub_entry_batch_is_refused_whole() {
    let t = target_with(|_| {}).await;
    if !t.warren() {
        return;
    }
    let mut c = connect(&t).await;
    c.open_guest("sc-batch").await;
    let stream = format!("sc-batch-{}", common::unique());
    create(&mut c, &stream).await;
    let declared = c
        .call(|id| ClientCommand::DeclarePublisher {
            correlation_id: id,
            publisher_id: 1,
            reference: Str::default(),
            stream: Str::from(stream.as_str()),
        })
        .await;
    assert_eq!(declared, code::OK);
    let record = |b: &[u8]| {
        let m = amqp_message(b);
        let mut v = (m.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(&m);
        v
    };
    let good = [record(b"b1"), record(b"b2")].concat();
    // The second record claims more octets than the batch holds.
    let mut bad = record(b"x1");
    bad.extend_from_slice(&[0, 0, 1, 0, 1, 2]);
    let batch = |id, data: Vec<u8>, count| PublishedMessage {
        publishing_id: id,
        filter_value: None,
        entry: Entry::SubBatch {
            compression: 0,
            count,
            uncompressed_size: data.len() as u32,
            data: data.into(),
        },
    };
    let messages = vec![
        simple(1, "s1"),
        batch(2, bad, 2),
        batch(3, good.clone(), 3), // the count does not match the records
        batch(4, good, 2),
        simple(5, "s5"),
    ];
    c.send(ClientCommand::Publish(Publish::new(1, 1, &messages)))
        .await;
    let (ok, err) = answers(&mut c, 5).await;
    assert_eq!(ok, [1, 4, 5]);
    assert_eq!(
        err,
        [
            (2, code::PRECONDITION_FAILED),
            (3, code::PRECONDITION_FAILED)
        ]
    );
    // Stored: s1, b1, b2, s5 and nothing of the refused batches.
    let id = c.id();
    c.send(ClientCommand::Subscribe {
        correlation_id: id,
        subscription_id: 1,
        stream: Str::from(stream.as_str()),
        offset: OffsetSpec::First,
        credit: 100,
        properties: vec![],
    })
    .await;
    let mut bodies = Vec::new();
    while bodies.len() < 4 {
        match c.recv().await.expect("open") {
            ServerCommand::Response { code: 1, .. } => {}
            ServerCommand::Deliver { chunk, .. } => bodies.extend(chunk_entries(&chunk).1),
            other => panic!("{other:?}"),
        }
    }
    let want: Vec<_> = ["s1", "b1", "b2", "s5"]
        .iter()
        .map(|b| amqp_message(b.as_bytes()))
        .collect();
    assert_eq!(bodies, want);
    // The management API counts them.
    let pubs = t.broker.mgmt().json("/stream/publishers").await;
    assert_eq!(pubs[0]["published"], 5);
    assert_eq!(pubs[0]["errored"], 2);
}

/// While the disk alarm is raised, DeclarePublisher is refused with PRECONDITION_FAILED
/// (RabbitMQ's reader), and a connection without publishers is served as usual.
#[tokio::test]
async fn the_disk_alarm_refuses_new_publishers() {
    let t = target_with(|c| {
        // More free space than any disk has: the disk alarm is on from the start.
        c.storage.disk_free_limit = "1000000TiB".into();
    })
    .await;
    if !t.warren() {
        return;
    }
    let mut c = connect(&t).await;
    c.open_guest("sc-alarm").await;
    let stream = format!("sc-alarm-{}", common::unique());
    create(&mut c, &stream).await;
    let declared = c
        .call(|id| ClientCommand::DeclarePublisher {
            correlation_id: id,
            publisher_id: 1,
            reference: Str::default(),
            stream: Str::from(stream.as_str()),
        })
        .await;
    assert_eq!(declared, code::PRECONDITION_FAILED);
    // Still read: a subscription works (the connection has no publishers).
    let id = c.id();
    c.send(ClientCommand::Subscribe {
        correlation_id: id,
        subscription_id: 1,
        stream: Str::from(stream.as_str()),
        offset: OffsetSpec::First,
        credit: 1,
        properties: vec![],
    })
    .await;
    assert!(matches!(
        c.recv().await,
        Some(ServerCommand::Response { code: 1, .. })
    ));
}

/// Resident memory of this process (the in-process broker's), in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// A client that subscribes with a large credit and then sends requests without ever
/// reading: the broker stops reading it once its responses pile up (the client's
/// writes stall well before it has sent 256 MiB), its memory stays flat, and it goes on
/// serving other connections.
#[tokio::test]
async fn a_client_that_does_not_read_cannot_grow_the_outbound_buffer() {
    let t = target_turn(Turn::Alone(MEMORY.write().await), |_| {}).await;
    let u = common::unique();
    let stream = format!("sc-flood-{u}");
    // Some data for the subscription to want: 8 MiB in 1 KiB messages.
    let mut p = connect(&t).await;
    p.open_guest("sc-flood-pub").await;
    create(&mut p, &stream).await;
    let declared = p
        .call(|id| ClientCommand::DeclarePublisher {
            correlation_id: id,
            publisher_id: 1,
            reference: Str::default(),
            stream: Str::from(stream.as_str()),
        })
        .await;
    assert_eq!(declared, code::OK);
    let body = vec![b'x'; 1000];
    let entry = {
        let mut m = vec![0x00, 0x53, 0x75, 0xb0];
        m.extend_from_slice(&(body.len() as u32).to_be_bytes());
        m.extend_from_slice(&body);
        bytes::Bytes::from(m)
    };
    for round in 0..8u64 {
        let batch: Vec<_> = (0..1000u64)
            .map(|i| PublishedMessage {
                publishing_id: round * 1000 + i + 1,
                filter_value: None,
                entry: Entry::Simple(entry.clone()),
            })
            .collect();
        p.send(ClientCommand::Publish(Publish::new(1, 1, &batch)))
            .await;
        answers(&mut p, 1000).await;
    }

    let before = rss();
    let mut c = connect(&t).await;
    c.open_guest("sc-flood").await;
    let id = c.id();
    c.send(ClientCommand::Subscribe {
        correlation_id: id,
        subscription_id: 1,
        stream: Str::from(stream.as_str()),
        offset: OffsetSpec::First,
        credit: u16::MAX,
        properties: vec![],
    })
    .await;
    // Metadata requests of ~1 MB (30 unknown names of 32 000 octets): each response
    // repeats the names, so every request sent asks the broker to buffer ~1 MB.
    let names: Vec<Str> = (0..30)
        .map(|i| Str::from(format!("{i:02}{}", "n".repeat(31_998))))
        .collect();
    let mut frame = bytes::BytesMut::new();
    ClientCommand::Metadata {
        correlation_id: 99,
        streams: names,
    }
    .encode(&mut frame);
    let frame = frame.freeze();
    let mut sent = 0usize;
    let stalled = loop {
        if sent >= 256 << 20 {
            break false;
        }
        match tokio::time::timeout(Duration::from_secs(3), c.sock.write_all(&frame)).await {
            Ok(r) => {
                r.unwrap();
                sent += frame.len();
            }
            Err(_) => break true,
        }
    };
    assert!(
        stalled,
        "the broker read {sent} bytes of requests from a client that reads nothing"
    );
    assert!(
        sent < 96 << 20,
        "{sent} bytes read before the broker stopped"
    );
    // Other connections are served meanwhile.
    let mut other = connect(&t).await;
    other.open_guest("sc-flood-other").await;
    let id = other.id();
    other
        .send(ClientCommand::Metadata {
            correlation_id: id,
            streams: vec![Str::from(stream.as_str())],
        })
        .await;
    assert!(matches!(
        other.recv().await,
        Some(ServerCommand::MetadataResponse { .. })
    ));
    if t.warren() {
        let grown = rss().saturating_sub(before);
        assert!(grown < 64 << 20, "memory grew by {grown} bytes");
    }
    drop(c);
    delete_stream(&mut p, &stream).await;
}

/// The `rabbitmq_http_client` crate (rabbitmqadmin-ng's library) reads the stream
/// plugin's endpoints into its strict types: every field it requires is there.
#[tokio::test]
async fn rabbitmq_http_client_reads_stream_connections_publishers_and_consumers() {
    use rabbitmq_http_client::api::ClientBuilder;
    let t = target().await;
    common::mgmt::install_crypto_provider();
    let http = ClientBuilder::new()
        .with_endpoint(format!("{}/api", t.broker.mgmt_url()))
        .with_basic_auth_credentials("guest", "guest")
        .build()
        .expect("a client");
    let u = common::unique();
    let (pname, cname) = (format!("sc-hc-pub-{u}"), format!("sc-hc-sub-{u}"));
    let stream = format!("sc-hc-{u}");
    let mut p = connect(&t).await;
    p.open_guest(&pname).await;
    create(&mut p, &stream).await;
    let declared = p
        .call(|id| ClientCommand::DeclarePublisher {
            correlation_id: id,
            publisher_id: 2,
            reference: Str::default(),
            stream: Str::from(stream.as_str()),
        })
        .await;
    assert_eq!(declared, code::OK);
    p.send(ClientCommand::Publish(Publish::new(
        2,
        1,
        &[simple(1, "h")],
    )))
    .await;
    answers(&mut p, 1).await;
    let mut c = connect(&t).await;
    c.open_guest(&cname).await;
    let id = c.id();
    c.send(ClientCommand::Subscribe {
        correlation_id: id,
        subscription_id: 0,
        stream: Str::from(stream.as_str()),
        offset: OffsetSpec::First,
        credit: 5,
        properties: vec![],
    })
    .await;
    assert!(matches!(
        c.recv().await,
        Some(ServerCommand::Response { code: 1, .. })
    ));

    // Statistics are sampled by RabbitMQ: poll until both are listed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    // (RabbitMQ 3.10 lists an object with `connection_details: []` until its first
    // sample, which the client cannot read: retried there, never on Warren.)
    let (conns, publishers, consumers) = loop {
        let read = async {
            Ok::<_, String>((
                http.list_stream_connections()
                    .await
                    .map_err(|e| format!("list_stream_connections: {e}"))?,
                http.list_stream_publishers_of("/", &stream)
                    .await
                    .map_err(|e| format!("list_stream_publishers_of: {e}"))?,
                http.list_stream_consumers_in("/")
                    .await
                    .map_err(|e| format!("list_stream_consumers_in: {e}"))?,
            ))
        };
        let (conns, publishers, consumers) = match read.await {
            Ok(r) => r,
            Err(e) if !t.warren() && tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        let ready = [&pname, &cname].iter().all(|n| {
            conns
                .iter()
                .any(|c| &&c.client_properties.connection_name == n)
        }) && publishers.iter().any(|p| p.confirmed == 1)
            && consumers.iter().any(|k| k.queue.name == stream);
        if ready {
            break (conns, publishers, consumers);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not listed: {conns:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let pc = conns
        .iter()
        .find(|c| c.client_properties.connection_name == pname)
        .unwrap();
    assert_eq!(pc.protocol, "stream");
    let info = http
        .get_stream_connection_info("/", &pc.name)
        .await
        .expect("get_stream_connection_info");
    assert_eq!(info.name, pc.name);
    let all = http.list_connections().await.expect("list_connections");
    assert!(all.iter().any(|c| c.name == pc.name));
    let on_conn = http
        .list_stream_publishers_on_connection("/", &pc.name)
        .await
        .expect("list_stream_publishers_on_connection");
    assert_eq!(on_conn.len(), 1);
    assert_eq!(on_conn[0].publisher_id, 2);
    assert_eq!(publishers[0].published, 1);
    let k = consumers.iter().find(|k| k.queue.name == stream).unwrap();
    assert_eq!(k.subscription_id, 0);
    delete_stream(&mut p, &stream).await;
}

/// Free bytes on the filesystem holding `dir` (statvfs, as the broker's alarm).
fn free_bytes(dir: &std::path::Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a statvfs to fill in.
    assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, 0);
    st.f_bavail as u64 * st.f_frsize as u64
}

/// Raising the disk alarm while a connection has a publisher stops reading it (its
/// publish is neither stored nor confirmed) until the alarm clears; a connection without
/// publishers is still served, and cannot declare one meanwhile. The storage lives on
/// /dev/shm (tmpfs, nothing else uses it here) with `disk_free_limit` 64 MiB under its
/// free space; a 128 MiB file there raises the alarm, removing it clears it.
#[tokio::test]
async fn the_disk_alarm_stops_reading_publishing_connections_until_it_clears() {
    let shm = std::path::Path::new("/dev/shm");
    if std::env::var("STREAM_TEST_ADDR").is_ok() || !shm.is_dir() {
        return;
    }
    let u = common::unique();
    let dir = shm.join(format!("warren-sc-alarm-{u}"));
    let filler = shm.join(format!("warren-sc-filler-{u}"));
    // Removes both from /dev/shm (memory) however the test ends.
    struct Cleanup(Vec<std::path::PathBuf>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for p in &self.0 {
                let _ = std::fs::remove_file(p);
                let _ = std::fs::remove_dir_all(p);
            }
        }
    }
    let _cleanup = Cleanup(vec![filler.clone(), dir.clone()]);
    let limit = free_bytes(shm) - (64 << 20);
    let data = dir.clone();
    let t = target_with(move |c| {
        c.storage.dir = data;
        c.storage.disk_free_limit = format!("{limit}B");
    })
    .await;
    let api = t.broker.mgmt();
    let alarm = |on: bool| move |nodes: &Value| nodes[0]["disk_free_alarm"] == on;
    api.wait_for("/nodes", "no disk alarm", alarm(false)).await;

    let stream = format!("sc-disk-{u}");
    let mut p = connect(&t).await;
    p.open_guest("sc-disk-pub").await;
    create(&mut p, &stream).await;
    let declared = p
        .call(|id| ClientCommand::DeclarePublisher {
            correlation_id: id,
            publisher_id: 1,
            reference: Str::default(),
            stream: Str::from(stream.as_str()),
        })
        .await;
    assert_eq!(declared, code::OK);
    p.send(ClientCommand::Publish(Publish::new(
        1,
        1,
        &[simple(1, "before")],
    )))
    .await;
    assert_eq!(answers(&mut p, 1).await.0, [1]);
    let mut other = connect(&t).await;
    other.open_guest("sc-disk-other").await;

    // Raise the alarm.
    std::fs::write(&filler, vec![1u8; 128 << 20]).unwrap();
    api.wait_for("/nodes", "the disk alarm", alarm(true)).await;
    p.send(ClientCommand::Publish(Publish::new(
        1,
        1,
        &[simple(2, "during")],
    )))
    .await;
    // The connection without publishers is served, and refused a publisher.
    let refused = other
        .call(|id| ClientCommand::DeclarePublisher {
            correlation_id: id,
            publisher_id: 1,
            reference: Str::default(),
            stream: Str::from(stream.as_str()),
        })
        .await;
    assert_eq!(refused, code::PRECONDITION_FAILED);
    // Nothing of the publish was read: no confirm comes (a negative, so a short wait).
    let quiet = tokio::time::timeout(common::QUIET, p.recv()).await;
    assert!(quiet.is_err(), "answered during the alarm: {quiet:?}");
    let published = api.json("/stream/publishers").await;
    let mine = published
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["queue"]["name"] == stream.as_str())
        .unwrap();
    assert_eq!(mine["published"], 1, "{mine}");

    // Clear it: the publish is read, stored and confirmed.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(answers(&mut p, 1).await.0, [2]);
    drop(t);
}
