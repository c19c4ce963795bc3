//! warren-ctl, the built binary run as a subprocess against a broker's management API:
//! each test sets something up, runs the subcommand, and checks what changed on the
//! broker (over AMQP with lapin where it can) and what warren-ctl printed and exited with.
//!
//! Which broker: [`mgmt_target`], the one place to change. For now the management API at
//! `WARREN_CTL_TEST_MGMT_URL`, with the same broker's AMQP at `AMQP_TEST_URL`; against
//! RabbitMQ 3.10:
//!
//!     WARREN_CTL_TEST_MGMT_URL=http://127.0.0.1:15673 \
//!     AMQP_TEST_URL=amqp://guest:guest@127.0.0.1:5673/%2f cargo test --test ctl
//!
//! Without it the tests that need a broker return early (they say so on stderr); the
//! ones about the command line and an unreachable broker always run.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::Value;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

const CTL: &str = env!("CARGO_BIN_EXE_warren-ctl");

/// The broker under test: its management API (for warren-ctl) and its AMQP side (for
/// lapin, through [`TestBroker`]).
struct Target {
    mgmt_url: String,
    broker: TestBroker,
}

/// The broker the tests operate, or `None` when there is none to test against.
///
/// An in-process Warren with its management API; or, with `WARREN_CTL_TEST_MGMT_URL`
/// (and `AMQP_TEST_URL`), another broker such as RabbitMQ 3.10.
async fn mgmt_target() -> Option<Target> {
    if let Ok(mgmt_url) = std::env::var("WARREN_CTL_TEST_MGMT_URL") {
        assert!(
            std::env::var("AMQP_TEST_URL").is_ok(),
            "WARREN_CTL_TEST_MGMT_URL needs AMQP_TEST_URL too (the same broker's AMQP side)"
        );
        return Some(Target {
            mgmt_url,
            broker: TestBroker::start().await,
        });
    }
    // By default: an in-process Warren with its management API.
    let broker = TestBroker::start().await;
    Some(Target {
        mgmt_url: broker.mgmt_url(),
        broker,
    })
}

/// The target, or return from the test when there is none.
macro_rules! target {
    () => {
        match mgmt_target().await {
            Some(t) => t,
            None => {
                eprintln!("skipped: no management API to test against (WARREN_CTL_TEST_MGMT_URL)");
                return;
            }
        }
    };
}

/// What one run of warren-ctl did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Standard output, after checking the run succeeded.
    #[track_caller]
    fn ok(self) -> String {
        assert_eq!(self.code, 0, "warren-ctl failed: {self:?}");
        self.stdout
    }

    /// Standard output parsed as JSON, after checking the run succeeded.
    #[track_caller]
    fn json(self) -> Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// Checks the run failed with `code` and an error message containing `text`.
    #[track_caller]
    fn fails(&self, code: i32, text: &str) {
        assert_eq!(self.code, code, "unexpected exit code: {self:?}");
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}: {self:?}"
        );
    }
}

/// Runs warren-ctl with `args` (and `stdin` fed to it), nothing from the environment.
async fn run_ctl(args: Vec<String>, stdin: Option<String>) -> Run {
    tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(CTL);
        cmd.args(&args)
            .env_remove("WARREN_CTL_URL")
            .env_remove("WARREN_CTL_USERNAME")
            .env_remove("WARREN_CTL_PASSWORD")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("warren-ctl starts");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

impl Target {
    /// warren-ctl against this broker as guest.
    async fn ctl(&self, args: &[&str]) -> Run {
        self.ctl_as("guest", "guest", args).await
    }

    async fn ctl_as(&self, user: &str, pass: &str, args: &[&str]) -> Run {
        let mut all = strings(&["--url", &self.mgmt_url, "-u", user, "--password", pass]);
        all.extend(strings(args));
        run_ctl(all, None).await
    }

    async fn ctl_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let mut all = strings(&["--url", &self.mgmt_url]);
        all.extend(strings(args));
        run_ctl(all, Some(stdin.to_string())).await
    }

    /// A new vhost, made with warren-ctl, where guest may do anything.
    async fn fresh_vhost(&self) -> String {
        let v = format!("ctl-v-{}", unique());
        self.ctl(&["add_vhost", &v]).await.ok();
        self.ctl(&["set_permissions", "-p", &v, "guest", ".*", ".*", ".*"])
            .await
            .ok();
        v
    }

    /// A channel on `vhost` as guest.
    async fn channel(&self, vhost: &str) -> (Connection, lapin::Channel) {
        let conn = self
            .broker
            .connect_as("guest", "guest", vhost)
            .await
            .expect("guest connects");
        let ch = confirming_channel(&conn).await;
        (conn, ch)
    }
}

/// Declares `queue` and publishes `n` confirmed messages to it.
async fn queue_with_messages(ch: &lapin::Channel, queue: &str, n: usize) {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    for i in 0..n {
        publish_confirmed(
            ch,
            "",
            queue,
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
}

/// The queue's ready messages, from a passive declare (no stats delay).
async fn ready_count(ch: &lapin::Channel, queue: &str) -> u32 {
    ch.queue_declare(queue.into(), passive(), FieldTable::default())
        .await
        .unwrap()
        .message_count()
}

/// The objects of a JSON array.
fn items(v: &Value) -> &Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a JSON array: {v}"))
}

fn find<'a>(list: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    items(list).iter().find(|o| o[key] == value)
}

/// Runs `check` until it gives `Some`, for what the management API reports a little
/// later than it happens (RabbitMQ's statistics are refreshed every few seconds).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A free local port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------
// The command line and an unreachable broker: no broker needed.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn an_unreachable_broker_is_exit_69_with_the_url() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let run = run_ctl(strings(&["--url", &url, "list_queues"]), None).await;
    run.fails(69, &format!("cannot reach the broker at {url}"));
}

#[tokio::test]
async fn usage_errors_are_exit_64() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    // An unknown column is refused before any request (the port is closed anyway).
    let run = run_ctl(
        strings(&["--url", &url, "list_queues", "name", "mesages"]),
        None,
    )
    .await;
    run.fails(64, "unknown column(s) for queues: mesages");
    assert!(run.stderr.contains("messages_ready"), "{run:?}");
    assert_eq!(run.stdout, "");
    run_ctl(strings(&["no_such_command"]), None)
        .await
        .fails(64, "no_such_command");
    run_ctl(strings(&["add_user"]), None).await.fails(64, "");
    run_ctl(strings(&["--url", "ftp://x", "list_users"]), None)
        .await
        .fails(64, "expected an http:// or https:// URL");
    // --help is not an error.
    let help = run_ctl(strings(&["--help"]), None).await.ok();
    for sub in [
        "list_queues",
        "set_policy",
        "export_definitions",
        "close_connection",
    ] {
        assert!(help.contains(sub), "--help lacks {sub}: {help}");
    }
}

#[tokio::test]
async fn a_bad_policy_definition_is_refused_before_sending() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let run = run_ctl(
        strings(&["--url", &url, "set_policy", "p", "^q", "{max-length: 1"]),
        None,
    )
    .await;
    run.fails(65, "the policy definition is not valid JSON");
    let run = run_ctl(
        strings(&["--url", &url, "set_policy", "p", "^q", "[1]"]),
        None,
    )
    .await;
    run.fails(65, "must be a JSON object");
}

// ---------------------------------------------------------------------------------
// Against a stub HTTP(S) server: what goes on the wire, TLS, and HTTP failures.
// ---------------------------------------------------------------------------------

/// A one-answer HTTP server: every request gets `status` and `body`; the requests (head
/// and body) are kept for the test to look at.
struct Stub {
    addr: std::net::SocketAddr,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Stub {
    async fn start(
        tls: Option<std::sync::Arc<rustls::ServerConfig>>,
        status: &str,
        body: &str,
    ) -> Stub {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let seen = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (response, seen, tls) = (response.clone(), seen.clone(), tls.clone());
                tokio::spawn(async move {
                    let mut stream: Box<dyn Duplex> = match tls {
                        Some(config) => {
                            match tokio_rustls::TlsAcceptor::from(config).accept(tcp).await {
                                Ok(s) => Box::new(s),
                                Err(_) => return, // the client refused the certificate
                            }
                        }
                        None => Box::new(tcp),
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let request = loop {
                        let Ok(n) = stream.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).into_owned();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text[..end]
                                .lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.eq_ignore_ascii_case("content-length")
                                        .then(|| v.trim().parse().ok())?
                                })
                                .unwrap_or(0usize);
                            if buf.len() >= end + 4 + length {
                                break text;
                            }
                        }
                    };
                    seen.lock().unwrap().push(request);
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Stub { addr, requests }
    }

    fn url(&self, scheme: &str, host: &str) -> String {
        format!("{scheme}://{host}:{}", self.addr.port())
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

trait Duplex: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Duplex for T {}

#[tokio::test]
async fn names_are_percent_encoded_and_credentials_sent() {
    let stub = Stub::start(None, "204 No Content", "").await;
    let url = stub.url("http", "127.0.0.1");
    let run = |args: &[&str]| {
        let mut all = strings(&["--url", &url, "-u", "ad min", "--password", "pä:ss"]);
        all.extend(strings(args));
        run_ctl(all, None)
    };
    run(&["purge_queue", "-p", "/", "a b/c"]).await.ok();
    run(&[
        "close_connection",
        "127.0.0.1:1 -> 127.0.0.1:2",
        "maintenance",
    ])
    .await
    .ok();
    run(&["set_permissions", "-p", "v%1", "u", ".*", "^x", ""])
        .await
        .ok();
    let requests = stub.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(
        requests[0].starts_with("DELETE /api/queues/%2F/a%20b%2Fc/contents HTTP/1.1\r\n"),
        "{}",
        requests[0]
    );
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("ad min:pä:ss");
    assert!(
        requests[0].to_ascii_lowercase().contains(&format!(
            "authorization: basic {}",
            basic.to_ascii_lowercase()
        )),
        "{}",
        requests[0]
    );
    assert!(
        requests[1].starts_with(
            "DELETE /api/connections/127.0.0.1%3A1%20-%3E%20127.0.0.1%3A2 HTTP/1.1\r\n"
        ),
        "{}",
        requests[1]
    );
    assert!(
        requests[1]
            .to_ascii_lowercase()
            .contains("x-reason: maintenance"),
        "{}",
        requests[1]
    );
    let (head, body) = requests[2].split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("PUT /api/permissions/v%251/u HTTP/1.1\r\n"),
        "{head}"
    );
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"configure": ".*", "write": "^x", "read": ""})
    );
}

#[tokio::test]
async fn the_url_and_credentials_come_from_the_environment() {
    let stub = Stub::start(None, "200 OK", "[]").await;
    let out = tokio::task::spawn_blocking({
        let url = stub.url("http", "127.0.0.1");
        move || {
            std::process::Command::new(CTL)
                .args(["-q", "list_users"])
                .env("WARREN_CTL_URL", url)
                .env("WARREN_CTL_USERNAME", "envuser")
                .env("WARREN_CTL_PASSWORD", "envpass")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "user  tags\n");
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("envuser:envpass");
    let requests = stub.requests();
    assert!(
        requests[0].starts_with("GET /api/users HTTP/1.1"),
        "{requests:?}"
    );
    assert!(requests[0].contains(&basic), "{requests:?}");
}

#[tokio::test]
async fn http_failures_have_their_exit_codes() {
    for (status, body, code, text) in [
        (
            "403 Forbidden",
            r#"{"error":"not_authorised","reason":"Not administrator user"}"#,
            77,
            "access refused for user 'guest': Not administrator user",
        ),
        (
            "400 Bad Request",
            r#"{"error":"bad_request","reason":"Validation failed\n\nbad &lt;thing&gt;\n"}"#,
            65,
            "Error: Validation failed: bad <thing>",
        ),
        (
            "500 Internal Server Error",
            r#"{"error":"boom"}"#,
            70,
            "answered 500",
        ),
        ("503 Service Unavailable", "{}", 69, "unavailable"),
        ("200 OK", "<html>", 70, "did not answer JSON"),
    ] {
        let stub = Stub::start(None, status, body).await;
        let url = stub.url("http", "127.0.0.1");
        run_ctl(strings(&["--url", &url, "list_vhosts"]), None)
            .await
            .fails(code, text);
    }
}

#[tokio::test]
async fn a_broker_that_does_not_answer_times_out_with_75() {
    // Accepted by the kernel, never answered.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let started = Instant::now();
    run_ctl(strings(&["--url", &url, "-t", "1", "status"]), None)
        .await
        .fails(75, &format!("no answer from the broker at {url} in time"));
    assert!(started.elapsed() < Duration::from_secs(20));
    drop(listener);
}

/// A CA and a server certificate for localhost signed by it: (CA PEM, server config).
fn tls_server() -> (String, std::sync::Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from_pem_slice(cert.pem().as_bytes()).unwrap()],
        PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    (ca.pem(), std::sync::Arc::new(config))
}

#[tokio::test]
async fn https_verifies_the_certificate_against_cacert_or_not_with_insecure() {
    let (ca_pem, config) = tls_server();
    let stub = Stub::start(Some(config), "200 OK", r#"[{"name":"/"}]"#).await;
    let url = stub.url("https", "localhost");
    let ca = std::env::temp_dir().join(format!("warren-ctl-ca-{}.pem", unique()));
    std::fs::write(&ca, &ca_pem).unwrap();

    // Not signed by a web root: refused.
    run_ctl(strings(&["--url", &url, "list_vhosts"]), None)
        .await
        .fails(69, &format!("cannot reach the broker at {url}"));
    let out = run_ctl(
        strings(&[
            "--url",
            &url,
            "--cacert",
            ca.to_str().unwrap(),
            "-q",
            "list_vhosts",
        ]),
        None,
    )
    .await
    .ok();
    assert_eq!(out, "name\n/\n");
    let out = run_ctl(
        strings(&["--url", &url, "--insecure", "-s", "list_vhosts"]),
        None,
    )
    .await
    .ok();
    assert_eq!(out, "/\n");
    run_ctl(
        strings(&["--url", &url, "--cacert", "/nonexistent.pem", "list_vhosts"]),
        None,
    )
    .await
    .fails(65, "--cacert /nonexistent.pem");
    std::fs::remove_file(&ca).ok();
    assert_eq!(
        stub.requests().len(),
        2,
        "only the verified and the insecure one got through"
    );
}

// ---------------------------------------------------------------------------------
// Against the broker.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_wrong_password_is_exit_77_naming_the_user() {
    let t = target!();
    let run = t
        .ctl_as("guest", "not-the-password", &["list_queues"])
        .await;
    run.fails(77, "authentication failed for user 'guest'");
    let run = t.ctl_as("nobody-at-all", "x", &["status"]).await;
    run.fails(77, "authentication failed for user 'nobody-at-all'");
}

#[tokio::test]
async fn add_vhost_list_vhosts_delete_vhost() {
    let t = target!();
    let v = format!("ctl-v-{}", unique());
    t.ctl(&["add_vhost", &v, "--description", "made by ctl"])
        .await
        .ok();

    let vhosts = t
        .ctl(&["list_vhosts", "name", "description", "--format", "json"])
        .await
        .json();
    let mine = find(&vhosts, "name", &v).unwrap_or_else(|| panic!("{v} not in {vhosts}"));
    assert_eq!(mine["description"], "made by ctl");
    assert_eq!(
        mine.as_object().unwrap().len(),
        2,
        "only the columns asked for: {mine}"
    );

    // The table: a header, then one aligned line per vhost.
    let table = t.ctl(&["-q", "list_vhosts"]).await.ok();
    let mut lines = table.lines();
    assert_eq!(lines.next(), Some("name"));
    assert!(lines.any(|l| l == v), "{v} not in:\n{table}");

    // The vhost is usable over AMQP.
    t.ctl(&["set_permissions", "-p", &v, "guest", ".*", ".*", ".*"])
        .await
        .ok();
    let conn = t.broker.connect_as("guest", "guest", &v).await.unwrap();
    conn.close(200, "bye".into()).await.unwrap();

    t.ctl(&["delete_vhost", &v]).await.ok();
    let vhosts = t.ctl(&["list_vhosts", "--format", "json"]).await.json();
    assert!(find(&vhosts, "name", &v).is_none(), "{v} still in {vhosts}");
    assert!(
        t.broker.connect_as("guest", "guest", &v).await.is_err(),
        "connected to a deleted vhost"
    );
    t.ctl(&["delete_vhost", &v])
        .await
        .fails(65, &format!("vhost '{v}' does not exist"));
    t.ctl(&["list_queues", "-p", &v])
        .await
        .fails(65, &format!("vhost '{v}' does not exist"));
}

#[tokio::test]
async fn add_user_and_set_permissions_let_it_work_over_amqp() {
    let t = target!();
    let v = t.fresh_vhost().await;
    let u = format!("ctl-u-{}", unique());
    t.ctl(&["add_user", &u, "s3cret"]).await.ok();
    t.ctl(&["add_user", &u, "other"])
        .await
        .fails(65, &format!("user '{u}' already exists"));

    // No permissions yet: the vhost is refused.
    assert!(t.broker.connect_as(&u, "s3cret", &v).await.is_err());

    t.ctl(&[
        "set_permissions",
        "-p",
        &v,
        &u,
        "^mine-",
        "^mine-",
        "^mine-",
    ])
    .await
    .ok();
    let perms = t
        .ctl(&["list_permissions", "-p", &v, "--format", "json"])
        .await
        .json();
    let p = find(&perms, "user", &u).unwrap_or_else(|| panic!("{u} not in {perms}"));
    assert_eq!(
        (&p["configure"], &p["write"], &p["read"]),
        (
            &Value::from("^mine-"),
            &Value::from("^mine-"),
            &Value::from("^mine-")
        )
    );

    let conn = t
        .broker
        .connect_as(&u, "s3cret", &v)
        .await
        .expect("logs in");
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "mine-q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("allowed by the configure pattern");
    let refused = ch
        .queue_declare(
            "theirs".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    expect_code(refused, 403);
    conn.close(200, "bye".into()).await.ok();

    // A wrong password, then a changed one (through stdin).
    assert!(t.broker.connect_as(&u, "wrong", &v).await.is_err());
    t.ctl_with_stdin(&["change_password", &u], "n3w\n")
        .await
        .ok();
    assert!(t.broker.connect_as(&u, "s3cret", &v).await.is_err());
    let conn = t
        .broker
        .connect_as(&u, "n3w", &v)
        .await
        .expect("new password");
    conn.close(200, "bye".into()).await.ok();

    t.ctl(&["clear_permissions", "-p", &v, &u]).await.ok();
    assert!(t.broker.connect_as(&u, "n3w", &v).await.is_err());

    t.ctl(&["delete_user", &u]).await.ok();
    let users = t.ctl(&["list_users", "--format", "json"]).await.json();
    assert!(find(&users, "name", &u).is_none());
    t.ctl(&["delete_user", &u])
        .await
        .fails(67, &format!("user '{u}' does not exist"));
    t.ctl(&["set_permissions", "-p", &v, &u, ".*", ".*", ".*"])
        .await
        .fails(67, &format!("user '{u}' does not exist"));
    t.ctl(&[
        "set_permissions",
        "-p",
        "ctl-no-such-vhost",
        "guest",
        ".*",
        ".*",
        ".*",
    ])
    .await
    .fails(65, "vhost 'ctl-no-such-vhost' does not exist");
    t.ctl(&["delete_vhost", &v]).await.ok();
}

#[tokio::test]
async fn set_user_tags_keeps_the_password() {
    let t = target!();
    let u = format!("ctl-u-{}", unique());
    t.ctl(&["add_user", &u, "pw"]).await.ok();
    t.ctl(&["set_user_tags", &u, "monitoring", "policymaker"])
        .await
        .ok();
    let users = t.ctl(&["list_users", "--format", "json"]).await.json();
    let me = find(&users, "name", &u).unwrap();
    let mut tags: Vec<&str> = match &me["tags"] {
        Value::Array(a) => a.iter().map(|t| t.as_str().unwrap()).collect(),
        Value::String(s) => s.split(',').collect(),
        other => panic!("tags: {other}"),
    };
    tags.sort_unstable();
    assert_eq!(tags, ["monitoring", "policymaker"]);
    let table = t.ctl(&["-q", "list_users"]).await.ok();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&u) && l.ends_with("[monitoring, policymaker]")),
        "{table}"
    );

    // The password still works: the user logs in (over AMQP, with permissions).
    t.ctl(&["set_permissions", &u, ".*", ".*", ".*"]).await.ok();
    let conn = t
        .broker
        .connect_as(&u, "pw", "/")
        .await
        .expect("still logs in");
    conn.close(200, "bye".into()).await.ok();

    t.ctl(&["set_user_tags", "ctl-nobody", "x"])
        .await
        .fails(67, "user 'ctl-nobody' does not exist");
    t.ctl(&["delete_user", &u]).await.ok();
}

#[tokio::test]
async fn set_policy_list_policies_clear_policy() {
    let t = target!();
    let v = t.fresh_vhost().await;
    t.ctl(&[
        "set_policy",
        "-p",
        &v,
        "--priority",
        "7",
        "--apply-to",
        "queues",
        "cap",
        "^capped\\.",
        r#"{"max-length": 2}"#,
    ])
    .await
    .ok();
    let policies = t
        .ctl(&["list_policies", "-p", &v, "--format", "json"])
        .await
        .json();
    let p = find(&policies, "name", "cap").unwrap_or_else(|| panic!("{policies}"));
    assert_eq!(p["vhost"], v.as_str());
    assert_eq!(p["pattern"], "^capped\\.");
    assert_eq!(p["apply-to"], "queues");
    assert_eq!(p["priority"], 7);
    assert_eq!(p["definition"], serde_json::json!({"max-length": 2}));

    let table = t.ctl(&["-q", "list_policies", "-p", &v]).await.ok();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    let cols: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        cols,
        [
            "vhost",
            "name",
            "pattern",
            "apply-to",
            "definition",
            "priority"
        ]
    );
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        cells,
        [
            v.as_str(),
            "cap",
            "^capped\\.",
            "queues",
            r#"{"max-length":2}"#,
            "7"
        ]
    );
    // Aligned: each value starts under its header.
    for name in ["name", "pattern", "apply-to", "definition", "priority"] {
        let at = lines[0].find(name).unwrap();
        assert_ne!(
            &lines[1][at..at + 1],
            " ",
            "column {name} misaligned:\n{table}"
        );
        assert_eq!(
            &lines[1][at - 1..at],
            " ",
            "column {name} misaligned:\n{table}"
        );
    }

    // The broker refuses an unknown setting: its reason, exit 65.
    let run = t
        .ctl(&["set_policy", "-p", &v, "bad", ".*", r#"{"no-such-key": 1}"#])
        .await;
    assert_eq!(run.code, 65, "{run:?}");
    assert!(run.stderr.starts_with("Error: "), "{run:?}");

    t.ctl(&["clear_policy", "-p", &v, "cap"]).await.ok();
    let policies = t
        .ctl(&["list_policies", "-p", &v, "--format", "json"])
        .await
        .json();
    assert_eq!(items(&policies).len(), 0, "{policies}");
    t.ctl(&["clear_policy", "-p", &v, "cap"])
        .await
        .fails(65, &format!("policy 'cap' in vhost '{v}' does not exist"));
    t.ctl(&["delete_vhost", &v]).await.ok();
}

#[tokio::test]
async fn purge_queue_empties_the_queue() {
    let t = target!();
    let v = t.fresh_vhost().await;
    let (conn, ch) = t.channel(&v).await;
    queue_with_messages(&ch, "full", 3).await;
    assert_eq!(ready_count(&ch, "full").await, 3);

    let out = t.ctl(&["purge_queue", "-p", &v, "full"]).await.ok();
    assert_eq!(
        out.trim(),
        format!("Purging queue 'full' in vhost '{v}' ...")
    );
    assert_eq!(ready_count(&ch, "full").await, 0);

    t.ctl(&["purge_queue", "-p", &v, "nope"])
        .await
        .fails(65, &format!("queue 'nope' in vhost '{v}' does not exist"));
    conn.close(200, "bye".into()).await.ok();
    t.ctl(&["delete_vhost", &v]).await.ok();
}

#[tokio::test]
async fn delete_queue_if_empty_and_unconditionally() {
    let t = target!();
    let v = t.fresh_vhost().await;
    let (conn, ch) = t.channel(&v).await;
    queue_with_messages(&ch, "doomed", 1).await;

    let run = t
        .ctl(&["delete_queue", "-p", &v, "doomed", "--if-empty"])
        .await;
    assert_eq!(run.code, 65, "{run:?}");
    assert_eq!(ready_count(&ch, "doomed").await, 1, "still there");

    t.ctl(&["delete_queue", "-p", &v, "doomed"]).await.ok();
    let gone = ch
        .queue_declare("doomed".into(), passive(), FieldTable::default())
        .await;
    expect_code(gone, 404);
    conn.close(200, "bye".into()).await.ok();
    t.ctl(&["delete_vhost", &v]).await.ok();
}

#[tokio::test]
async fn list_queues_exchanges_bindings_consumers_with_columns() {
    let t = target!();
    let v = t.fresh_vhost().await;
    let (conn, ch) = t.channel(&v).await;
    queue_with_messages(&ch, "listed", 2).await;
    ch.exchange_declare(
        "ctl-x".into(),
        lapin::ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "listed".into(),
        "ctl-x".into(),
        "a.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    // Message counts come from statistics, which may lag.
    let queue = eventually("list_queues to show 2 messages", || async {
        let qs = t
            .ctl(&[
                "list_queues",
                "-p",
                &v,
                "name",
                "messages",
                "durable",
                "--format",
                "json",
            ])
            .await
            .json();
        find(&qs, "name", "listed")
            .filter(|q| q["messages"] == 2)
            .cloned()
    })
    .await;
    assert_eq!(
        queue,
        serde_json::json!({"name": "listed", "messages": 2, "durable": false})
    );
    let table = t.ctl(&["list_queues", "-p", &v]).await.ok();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], format!("Listing queues for vhost {v} ..."));
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["name", "messages"]
    );
    assert!(lines.contains(&"listed  2"), "{table}");
    let silent = t.ctl(&["-s", "list_queues", "-p", &v, "name"]).await.ok();
    assert_eq!(silent, "listed\n", "no banner, no header");

    let table = t.ctl(&["-q", "list_exchanges", "-p", &v]).await.ok();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["name", "type"]);
    assert!(rows.contains(&vec!["ctl-x", "topic"]), "{table}");
    assert!(rows.contains(&vec!["amq.fanout", "fanout"]), "{table}");

    let bindings = t
        .ctl(&[
            "list_bindings",
            "-p",
            &v,
            "source_name",
            "source_kind",
            "destination_name",
            "destination_kind",
            "routing_key",
            "--format",
            "json",
        ])
        .await
        .json();
    let b = find(&bindings, "source_name", "ctl-x").unwrap_or_else(|| panic!("{bindings}"));
    assert_eq!(
        *b,
        serde_json::json!({"source_name": "ctl-x", "source_kind": "exchange",
            "destination_name": "listed", "destination_kind": "queue", "routing_key": "a.#"})
    );

    let consumer = ch
        .basic_consume(
            "listed".into(),
            "ctl-tag".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let found = eventually("list_consumers to show the consumer", || async {
        let cs = t
            .ctl(&[
                "list_consumers",
                "-p",
                &v,
                "queue_name",
                "consumer_tag",
                "ack_required",
                "--format",
                "json",
            ])
            .await
            .json();
        find(&cs, "consumer_tag", "ctl-tag").cloned()
    })
    .await;
    assert_eq!(
        found,
        serde_json::json!({"queue_name": "listed", "consumer_tag": "ctl-tag", "ack_required": true})
    );
    drop(consumer);
    conn.close(200, "bye".into()).await.ok();
    t.ctl(&["delete_vhost", &v]).await.ok();
}

/// The connection.close that ended a connection.
async fn connection_close(
    events: &mut (impl futures_lite::Stream<Item = lapin::Event> + Unpin),
) -> lapin::Error {
    use futures_lite::StreamExt;
    within("connection.close", async {
        loop {
            match events.next().await {
                Some(lapin::Event::Error(e))
                    if matches!(e.kind(), lapin::ErrorKind::ProtocolError(_)) =>
                {
                    return e;
                }
                Some(_) => continue,
                None => panic!("the connection's events ended without an error"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn close_connection_closes_it_with_320_and_the_reason() {
    let t = target!();
    let name = format!("ctl-conn-{}", unique());
    let conn = Connection::connect(
        t.broker.url(),
        ConnectionProperties::default().with_connection_name(name.as_str().into()),
    )
    .await
    .unwrap();
    let mut events = Box::pin(conn.events_listener());

    let listed = eventually("list_connections to show the connection", || async {
        let cs = t
            .ctl(&[
                "list_connections",
                "name",
                "user",
                "client_properties",
                "--format",
                "json",
            ])
            .await
            .json();
        items(&cs)
            .iter()
            .find(|c| c["client_properties"]["connection_name"] == name.as_str())
            .cloned()
    })
    .await;
    assert_eq!(listed["user"], "guest");
    let conn_name = listed["name"].as_str().unwrap().to_string();

    let out = t
        .ctl(&["close_connection", &conn_name, "closed by warren-ctl test"])
        .await
        .ok();
    assert!(out.starts_with("Closing connection "), "{out}");
    let err = connection_close(&mut events).await;
    let (code, text) = amqp_error(&err);
    assert_eq!(code, 320, "{text}");
    assert!(text.contains("closed by warren-ctl test"), "{text}");

    // Gone from the list (eventually: statistics), then unknown to close_connection.
    eventually("list_connections to drop the connection", || async {
        let cs = t
            .ctl(&["list_connections", "name", "--format", "json"])
            .await
            .json();
        find(&cs, "name", &conn_name).is_none().then_some(())
    })
    .await;
    t.ctl(&["close_connection", &conn_name, "again"])
        .await
        .fails(65, &format!("connection '{conn_name}' does not exist"));
}

#[tokio::test]
async fn export_then_import_definitions_round_trips() {
    let t = target!();
    let v = t.fresh_vhost().await;
    let u = format!("ctl-u-{}", unique());
    t.ctl(&["add_user", &u, "round"]).await.ok();
    t.ctl(&["set_permissions", "-p", &v, &u, ".*", ".*", ".*"])
        .await
        .ok();
    {
        let (conn, ch) = t.channel(&v).await;
        ch.queue_declare(
            "kept".into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_declare(
            "kept-x".into(),
            lapin::ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            "kept".into(),
            "kept-x".into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        conn.close(200, "bye".into()).await.ok();
    }

    let file = std::env::temp_dir().join(format!("warren-ctl-defs-{}.json", unique()));
    let file_s = file.to_str().unwrap();
    t.ctl(&["export_definitions", file_s]).await.ok();
    let all: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    std::fs::remove_file(&file).ok();
    // The same to standard output.
    let stdout = t.ctl(&["export_definitions", "-"]).await.json();
    assert!(find(&stdout["vhosts"], "name", &v).is_some());

    // Only this test's entries (other tests share the broker), as a definitions file.
    let in_vhost = |key: &str| -> Value {
        Value::Array(
            items(&all[key])
                .iter()
                .filter(|o| o["vhost"] == v.as_str())
                .cloned()
                .collect(),
        )
    };
    let mine = serde_json::json!({
        "users": [find(&all["users"], "name", &u).expect("user exported")],
        "vhosts": [find(&all["vhosts"], "name", &v).expect("vhost exported")],
        "permissions": in_vhost("permissions"),
        "queues": in_vhost("queues"),
        "exchanges": in_vhost("exchanges"),
        "bindings": in_vhost("bindings"),
    });
    assert!(find(&mine["queues"], "name", "kept").is_some(), "{mine}");
    assert!(
        find(&mine["exchanges"], "name", "kept-x").is_some(),
        "{mine}"
    );
    assert!(
        find(&mine["bindings"], "destination", "kept").is_some(),
        "{mine}"
    );
    assert_eq!(
        items(&mine["permissions"]).len(),
        2,
        "guest's and the user's: {mine}"
    );

    t.ctl(&["delete_vhost", &v]).await.ok();
    t.ctl(&["delete_user", &u]).await.ok();
    assert!(t.broker.connect_as(&u, "round", &v).await.is_err());

    // Imported back from standard input.
    t.ctl_with_stdin(&["import_definitions", "-"], &mine.to_string())
        .await
        .ok();

    // The user logs in with its password, and the binding routes.
    let conn = t
        .broker
        .connect_as(&u, "round", &v)
        .await
        .expect("user back");
    let ch = confirming_channel(&conn).await;
    publish_confirmed(&ch, "kept-x", "k", b"routed", BasicProperties::default())
        .await
        .unwrap();
    assert_eq!(ready_count(&ch, "kept").await, 1);
    conn.close(200, "bye".into()).await.ok();

    // A file that is not JSON: exit 65, nothing sent.
    let bad = std::env::temp_dir().join(format!("warren-ctl-bad-{}.json", unique()));
    std::fs::write(&bad, "{\"users\": [").unwrap();
    t.ctl(&["import_definitions", bad.to_str().unwrap()])
        .await
        .fails(65, "is not valid JSON");
    std::fs::remove_file(&bad).ok();
    t.ctl(&["import_definitions", "/nonexistent/defs.json"])
        .await
        .fails(65, "could not read from file /nonexistent/defs.json");

    t.ctl(&["delete_vhost", &v]).await.ok();
    t.ctl(&["delete_user", &u]).await.ok();
}

#[tokio::test]
async fn json_format_parses_and_status_reports_the_broker() {
    let t = target!();
    let status = t.ctl(&["status", "--format", "json"]).await.json();
    assert!(status.is_object(), "{status}");
    assert!(status["object_totals"]["queues"].is_u64(), "{status}");
    let text = t.ctl(&["status"]).await.ok();
    assert!(text.starts_with("Status of node "), "{text}");
    assert!(text.lines().any(|l| l.starts_with("queues ")), "{text}");

    let vhosts = t.ctl(&["list_vhosts", "--format", "json"]).await.json();
    assert!(find(&vhosts, "name", "/").is_some(), "{vhosts}");
    let users = t.ctl(&["--formatter", "json", "list_users"]).await.json();
    assert!(find(&users, "name", "guest").is_some(), "{users}");
    // Mutations print nothing in JSON mode (no banner).
    let u = format!("ctl-u-{}", unique());
    let out = t.ctl(&["--format", "json", "add_user", &u, "x"]).await.ok();
    assert_eq!(out, "");
    t.ctl(&["delete_user", &u]).await.ok();
}

#[tokio::test]
async fn topic_permissions_are_set_listed_and_cleared() {
    let t = target!();
    let v = t.fresh_vhost().await;
    let u = format!("ctl-u-{}", unique());
    t.ctl(&["add_user", &u, "pw"]).await.ok();
    t.ctl(&[
        "set_topic_permissions",
        "-p",
        &v,
        &u,
        "amq.topic",
        "^w\\.",
        "^r\\.",
    ])
    .await
    .ok();
    let tp = t
        .ctl(&["list_topic_permissions", "-p", &v, "--format", "json"])
        .await
        .json();
    let mine = find(&tp, "user", &u).unwrap_or_else(|| panic!("{tp}"));
    assert_eq!(mine["exchange"], "amq.topic");
    assert_eq!(mine["write"], "^w\\.");
    assert_eq!(mine["read"], "^r\\.");
    t.ctl(&["clear_topic_permissions", "-p", &v, &u, "amq.topic"])
        .await
        .ok();
    let tp = t
        .ctl(&["list_topic_permissions", "-p", &v, "--format", "json"])
        .await
        .json();
    assert!(find(&tp, "user", &u).is_none(), "{tp}");
    t.ctl(&["delete_user", &u]).await.ok();
    t.ctl(&["delete_vhost", &v]).await.ok();
}
