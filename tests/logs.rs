//! The broker's log, read from the real binary's stderr: each connection's open and close
//! is logged once, with its peer address, user, vhost and client name and, for a close,
//! why it closed (as RabbitMQ's "closing AMQP connection ..." lines); `log.format = "json"`
//! writes one JSON object a line; a listener that cannot bind says which key to change.

mod common;
mod raw;

use common::mgmt::{Api, seg};
use lapin::{Connection, ConnectionProperties};
use raw::RawClient;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use warren::protocol::*;

/// The warren binary, its stderr read line by line on a thread of its own.
struct Logged {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far, in order.
    seen: Vec<String>,
    amqp: SocketAddr,
    mgmt: String,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A storage directory removed when the test ends.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Logged {
    /// Starts the binary on free ports with `log.format = format`, and waits for the lines
    /// that say where it listens.
    fn start(format: &str) -> Logged {
        let dir = std::env::temp_dir().join(format!(
            "warren-logs-{}-{format}-{}",
            std::process::id(),
            common::unique()
        ));
        let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
            .env("WARREN_AMQP__LISTEN", "127.0.0.1:0")
            .env("WARREN_MGMT__LISTEN", "127.0.0.1:0")
            .env("WARREN_PROMETHEUS__LISTEN", "127.0.0.1:0")
            .env("WARREN_STORAGE__DIR", &dir)
            .env("WARREN_LOG__FORMAT", format)
            .env("WARREN_LOG__LEVEL", "info")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the warren binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut logged = Logged {
            child,
            lines,
            seen: Vec::new(),
            amqp: "0.0.0.0:0".parse().unwrap(),
            mgmt: String::new(),
            _dir: tempdir::Dir(dir),
        };
        let addr_of = |line: &str| -> String {
            let at = line.find("127.0.0.1:").expect("an address in the line");
            line[at..]
                .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                .next()
                .unwrap()
                .to_string()
        };
        let mgmt = logged.next_matching(|l| l.contains("management API listening (HTTP)"));
        logged.mgmt = format!("http://{}", addr_of(&mgmt));
        let amqp = logged.next_matching(|l| l.contains("listening for AMQP 0-9-1"));
        logged.amqp = addr_of(&amqp).parse().unwrap();
        logged
    }

    /// Reads lines until one matches (10 s at most), and returns it.
    fn next_matching(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no matching log line within 10 s; the log so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The next JSON line with this message and span peer.
    fn next_event(&mut self, message: &str, peer: &str) -> Value {
        let line = self.next_matching(|l| {
            serde_json::from_str::<Value>(l)
                .is_ok_and(|v| v["message"] == message && v["span"]["peer"] == peer)
        });
        serde_json::from_str(&line).unwrap()
    }

    /// Stops the broker with SIGTERM and returns every line it wrote (all of them: read
    /// to the end of its stderr).
    fn stop(mut self) -> Vec<String> {
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let deadline = Instant::now() + Duration::from_secs(15);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line);
        }
        assert_eq!(self.child.wait().unwrap().code(), Some(0));
        std::mem::take(&mut self.seen)
    }
}

/// Connects with lapin, naming the connection, and returns it with the peer address the
/// broker logs for it (read back from the management API).
async fn named(b: &Logged, name: &str) -> (Connection, String) {
    let conn = Connection::connect(
        &format!("amqp://guest:guest@{}/%2F", b.amqp),
        ConnectionProperties::default().with_connection_name(name.into()),
    )
    .await
    .expect("connects");
    let api = Api::new(&b.mgmt, "guest", "guest");
    let list = api
        .wait_for("/connections", "the connection", |l| {
            l.as_array()
                .unwrap()
                .iter()
                .any(|c| c["user_provided_name"] == name)
        })
        .await;
    let c = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["user_provided_name"] == name)
        .unwrap();
    let peer = format!("{}:{}", c["peer_host"].as_str().unwrap(), c["peer_port"]);
    (conn, peer)
}

#[tokio::test]
async fn json_log_has_one_open_and_one_close_line_per_connection() {
    let mut b = Logged::start("json");
    let (conn, peer) = named(&b, "orders-service").await;

    let open = b.next_event("connection open", &peer);
    assert_eq!(open["level"], "INFO");
    assert_eq!(open["user"], "guest");
    assert_eq!(open["vhost"], "/");
    assert_eq!(open["client_name"], "orders-service");
    assert!(open["timestamp"].is_string());
    let id = open["span"]["id"].clone();

    conn.close(200, "bye".into()).await.unwrap();
    let close = b.next_event("connection closed by the client", &peer);
    assert_eq!(close["level"], "INFO");
    assert_eq!(close["span"]["id"], id);
    assert_eq!(
        (&close["user"], &close["vhost"], &close["client_name"]),
        (&"guest".into(), &"/".into(), &"orders-service".into())
    );
    assert_eq!(
        (&close["code"], &close["text"]),
        (&200.into(), &"bye".into())
    );

    // Every line is one JSON object, and this connection has exactly one of each.
    let lines = b.stop();
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let of_conn = |msg: &str| {
        events
            .iter()
            .filter(|e| e["span"]["id"] == id && e["message"].as_str().unwrap().starts_with(msg))
            .count()
    };
    assert_eq!(of_conn("connection open"), 1);
    assert_eq!(of_conn("connection closed"), 1);
    assert_eq!(of_conn("client unexpectedly"), 0);
}

/// How a connection ends, and what its one close line says.
#[tokio::test]
async fn each_way_a_connection_ends_is_logged_with_its_cause() {
    let mut b = Logged::start("json");
    let api = Api::new(&b.mgmt, "guest", "guest");

    // The client goes away without connection.close.
    let c = RawClient::handshake_at(b.amqp, &[]).await;
    let peer = c.local_addr().to_string();
    drop(c);
    let e = b.next_event(
        "client unexpectedly closed the TCP connection (without connection.close): \
         check that the client closes its connections, or why it died",
        &peer,
    );
    assert_eq!(
        (&e["level"], &e["user"], &e["vhost"]),
        (&"WARN".into(), &"guest".into(), &"/".into())
    );

    // A protocol error: a second channel.open on channel 1 is a connection error (504).
    let mut c = RawClient::handshake_at(b.amqp, &[]).await;
    let peer = c.local_addr().to_string();
    c.send(1, ChannelOpen {}.into()).await;
    let (_, m) = c.expect_method().await;
    assert!(matches!(m, Method::ConnectionClose(_)), "{m:?}");
    c.send(0, ConnectionCloseOk {}.into()).await;
    let e = b.next_event(
        "connection closed on a protocol error: the client sent something it must not; \
         the text says what",
        &peer,
    );
    assert_eq!(e["level"], "WARN");
    assert_eq!(e["code"], reply_code::CHANNEL_ERROR);
    assert!(e["text"].as_str().unwrap().contains("channel.open"), "{e}");

    // An operator closes it through the management API.
    let (_conn, peer) = named(&b, "batch-job").await;
    let name = format!("{peer} -> {}", b.amqp);
    api.delete(&format!("/connections/{}", seg(&name)))
        .await
        .expect(204);
    let e = b.next_event(
        "connection closed by the broker (320 CONNECTION_FORCED)",
        &peer,
    );
    assert_eq!(e["level"], "INFO");
    assert_eq!(e["client_name"], "batch-job");
    assert_eq!(e["reason"], "Closed via management plugin");
    b.stop();
}

#[tokio::test]
async fn text_log_names_peer_user_vhost_and_client() {
    let mut b = Logged::start("text");
    let (conn, peer) = named(&b, "billing").await;
    let open = b.next_matching(|l| l.contains("connection open") && l.contains(&peer));
    for part in ["INFO", "user=guest", "vhost=/", "client_name=\"billing\""] {
        assert!(open.contains(part), "{part:?} missing in {open}");
    }
    conn.close(200, "done".into()).await.unwrap();
    let close = b.next_matching(|l| l.contains("connection closed") && l.contains(&peer));
    for part in [
        "closed by the client",
        "user=guest",
        "client_name=\"billing\"",
        "code=200",
    ] {
        assert!(close.contains(part), "{part:?} missing in {close}");
    }
    assert!(
        serde_json::from_str::<Value>(&close).is_err(),
        "plain text, not JSON"
    );
    b.stop();
}

#[test]
fn a_port_in_use_is_reported_with_the_key_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warren"))
        .env("WARREN_AMQP__LISTEN", addr.to_string())
        .env("WARREN_MGMT__LISTEN", "127.0.0.1:0")
        .env(
            "WARREN_STORAGE__DIR",
            std::env::temp_dir().join("warren-logs-unused"),
        )
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for part in [
        format!("amqp.listen {addr}: cannot bind"),
        "set amqp.listen (or WARREN_AMQP__LISTEN) to another address".to_string(),
    ] {
        assert!(err.contains(&part), "{part:?} missing in {err}");
    }
}
