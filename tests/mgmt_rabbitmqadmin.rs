//! rabbitmqadmin-ng (the `rabbitmqadmin` crate, v2, RabbitMQ's own CLI for the HTTP API)
//! driven against Warren as a subprocess: show, list, declare, publish, get, delete and
//! definitions export / import, each checked through the API or AMQP.
//!
//! The binary is `$RABBITMQADMIN`, else `rabbitmqadmin` on PATH; `.ci/test` installs the
//! pinned version. Without it these tests fail (they never pass silently). Also run
//! against RabbitMQ 3.10 with `AMQP_TEST_URL` / `AMQP_TEST_MGMT_URL`.

mod common;

use common::mgmt::names;
use common::{TestBroker, unique};
use serde_json::{Value, json};
use std::path::PathBuf;

/// The rabbitmqadmin binary, or a failure saying how to get it.
fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("RABBITMQADMIN") {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("rabbitmqadmin"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "rabbitmqadmin not found: set RABBITMQADMIN or put it on PATH \
                 (cargo install rabbitmqadmin --version 2.35.0 --locked; .ci/test does)"
            )
        })
}

/// Runs `rabbitmqadmin` against the broker's API as guest; its standard output.
/// Fails the test when it exits non-zero.
async fn admin(b: &TestBroker, args: &[&str]) -> String {
    let url = b.mgmt_url();
    let hostport = url.trim_start_matches("http://");
    let (host, port) = hostport.rsplit_once(':').unwrap();
    let out = tokio::process::Command::new(binary())
        .args(["--host", host, "--port", port])
        .args(["--username", "guest", "--password", "guest"])
        .arg("--non-interactive")
        .args(args)
        .output()
        .await
        .expect("rabbitmqadmin runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "rabbitmqadmin {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn id(prefix: &str) -> String {
    format!("mt-{prefix}-{}", unique())
}

#[tokio::test]
async fn show_overview_and_list_everything() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let q = id("q");
    api.put(&format!("/queues/%2F/{q}"), json!({"durable": false}))
        .await
        .expect(201);
    let conn = b.connect().await;
    let overview = admin(&b, &["show", "overview"]).await;
    assert!(overview.contains("3.10"), "{overview}");
    if b.is_warren() {
        // rabbitmqadmin 2 requires node fields (being_drained) that RabbitMQ 3.10 lacks.
        let node = api.json("/overview").await["node"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(admin(&b, &["list", "nodes"]).await.contains(&node));
    }
    assert!(admin(&b, &["list", "queues"]).await.contains(&q));
    assert!(
        admin(&b, &["list", "exchanges"])
            .await
            .contains("amq.topic")
    );
    assert!(admin(&b, &["list", "bindings"]).await.contains(&q));
    assert!(admin(&b, &["list", "users"]).await.contains("guest"));
    assert!(admin(&b, &["list", "vhosts"]).await.contains('/'));
    assert!(admin(&b, &["list", "permissions"]).await.contains("guest"));
    let conns = api
        .wait_for("/connections", "the connection", |l| {
            !l.as_array().unwrap().is_empty()
        })
        .await;
    let listed = admin(&b, &["list", "connections"]).await;
    let any = names(&conns)
        .iter()
        .any(|n| listed.contains(n.split(" -> ").next().unwrap()));
    assert!(any, "{listed}");
    drop(conn);
    api.delete(&format!("/queues/%2F/{q}")).await.expect(204);
}

#[tokio::test]
async fn declare_objects_and_delete_a_queue() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let (q, x, u, v) = (id("q"), id("x"), id("u"), id("v"));
    admin(
        &b,
        &[
            "declare",
            "queue",
            "--name",
            &q,
            "--durable",
            "true",
            "--arguments",
            r#"{"x-max-length": 10}"#,
        ],
    )
    .await;
    let got = api.json(&format!("/queues/%2F/{q}")).await;
    assert_eq!(got["durable"], true);
    assert_eq!(got["arguments"]["x-max-length"], 10);
    admin(
        &b,
        &[
            "declare",
            "exchange",
            "--name",
            &x,
            "--type",
            "topic",
            "--durable",
            "true",
        ],
    )
    .await;
    assert_eq!(
        api.json(&format!("/exchanges/%2F/{x}")).await["type"],
        "topic"
    );
    admin(
        &b,
        &[
            "declare",
            "binding",
            "--source",
            &x,
            "--destination-type",
            "queue",
            "--destination",
            &q,
            "--routing-key",
            "a.#",
        ],
    )
    .await;
    let bindings = api.json(&format!("/bindings/%2F/e/{x}/q/{q}")).await;
    assert_eq!(bindings[0]["routing_key"], "a.#");

    admin(
        &b,
        &[
            "declare",
            "user",
            "--name",
            &u,
            "--password",
            "pw",
            "--tags",
            "management",
        ],
    )
    .await;
    assert_eq!(
        api.json(&format!("/users/{u}")).await["tags"],
        json!(["management"])
    );
    admin(
        &b,
        &[
            "declare",
            "vhost",
            "--name",
            &v,
            "--description",
            "by rabbitmqadmin",
        ],
    )
    .await;
    assert_eq!(
        api.json(&format!("/vhosts/{v}")).await["description"],
        "by rabbitmqadmin"
    );
    admin(
        &b,
        &[
            "--vhost",
            &v,
            "declare",
            "permissions",
            "--username",
            &u,
            "--configure",
            ".*",
            "--read",
            ".*",
            "--write",
            ".*",
        ],
    )
    .await;
    api.json(&format!("/permissions/{v}/{u}")).await;
    b.connect_as(&u, "pw", &v)
        .await
        .expect("the declared user logs in");

    admin(&b, &["delete", "queue", "--name", &q]).await;
    api.get(&format!("/queues/%2F/{q}"))
        .await
        .expect_not_found();
    api.delete(&format!("/exchanges/%2F/{x}")).await.expect(204);
    api.delete(&format!("/users/{u}")).await.expect(204);
    api.delete(&format!("/vhosts/{v}")).await.expect(204);
}

#[tokio::test]
async fn publish_and_get_messages() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let q = id("q");
    api.put(&format!("/queues/%2F/{q}"), json!({"durable": false}))
        .await
        .expect(201);
    admin(
        &b,
        &[
            "publish",
            "message",
            "--routing-key",
            &q,
            "--payload",
            "from-rabbitmqadmin",
        ],
    )
    .await;
    api.wait_for(&format!("/queues/%2F/{q}"), "the message", |v| {
        v["messages"] == 1
    })
    .await;
    let got = admin(
        &b,
        &[
            "get",
            "messages",
            "--queue",
            &q,
            "--ack-mode",
            "ack_requeue_false",
        ],
    )
    .await;
    assert!(got.contains("from-rabbitmqadmin"), "{got}");
    api.wait_for(&format!("/queues/%2F/{q}"), "an empty queue", |v| {
        v["messages"] == 0
    })
    .await;
    api.delete(&format!("/queues/%2F/{q}")).await.expect(204);
}

#[tokio::test]
async fn definitions_export_and_import() {
    let b = TestBroker::start().await;
    let api = b.mgmt();
    let v = id("v");
    api.put(&format!("/vhosts/{v}"), json!({}))
        .await
        .expect(201);
    api.put(&format!("/queues/{v}/dq"), json!({"durable": true}))
        .await
        .expect(201);
    let dir = std::env::temp_dir().join(id("defs"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("vhost.json");
    let file = file.to_str().unwrap();
    admin(
        &b,
        &[
            "--vhost",
            &v,
            "definitions",
            "export_from_vhost",
            "--file",
            file,
        ],
    )
    .await;
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert!(
        exported["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "dq"),
        "{exported}"
    );
    // The cluster-wide export, by both its names.
    for cmd in [
        &["export", "definitions", "--stdout"][..],
        &["definitions", "export", "--stdout"],
    ] {
        let all: Value = serde_json::from_str(&admin(&b, cmd).await).unwrap();
        assert!(names(&all["vhosts"]).contains(&v), "{cmd:?}");
    }

    // Into the vhost again, after the queue is gone.
    api.delete(&format!("/queues/{v}/dq")).await.expect(204);
    admin(
        &b,
        &[
            "--vhost",
            &v,
            "definitions",
            "import_into_vhost",
            "--file",
            file,
        ],
    )
    .await;
    api.json(&format!("/queues/{v}/dq")).await;

    // A cluster-wide file of our own (not the whole export: the broker may be shared).
    let v2 = id("v");
    let cluster = dir.join("cluster.json");
    std::fs::write(
        &cluster,
        json!({
            "vhosts": [{"name": v2}],
            "queues": [{"name": "cq", "vhost": v2, "durable": true, "auto_delete": false, "arguments": {}}],
            "exchanges": [], "bindings": [], "users": [], "permissions": [],
        })
        .to_string(),
    )
    .unwrap();
    admin(
        &b,
        &["definitions", "import", "--file", cluster.to_str().unwrap()],
    )
    .await;
    api.json(&format!("/queues/{v2}/cq")).await;
    api.delete(&format!("/vhosts/{v}")).await.expect(204);
    api.delete(&format!("/vhosts/{v2}")).await.expect(204);
    std::fs::remove_dir_all(&dir).unwrap();
}
