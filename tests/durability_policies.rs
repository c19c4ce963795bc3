//! Policies, operator policies, vhost limits set as a runtime parameter and global
//! parameters survive `kill -9`, and apply again to the recovered queues.
//!
//! As `durability_tenancy`: the broker killed is this test binary re-run as a child with
//! `WARREN_POLICIES_CHILD` set, which makes its changes in-process, prints `READY` and
//! waits; the parent then opens the directory with a fresh broker.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use warren::broker::policy::admin::{
    global_parameter_from_json, parameter_from_json, policy_from_json,
};
use warren::broker::policy::{PolicyDef, PolicyKind};

const CHILD: &str = "WARREN_POLICIES_CHILD";

fn config(dir: &Path) -> warren::config::Config {
    let mut config = warren::config::Config::default();
    config.amqp.listen = "127.0.0.1:0".parse().unwrap();
    config.mgmt.listen = "127.0.0.1:0".into();
    config.prometheus.listen = "127.0.0.1:0".into();
    config.storage.dir = dir.to_path_buf();
    config
}

fn policy(kind: PolicyKind, name: &str, body: serde_json::Value) -> PolicyDef {
    policy_from_json(kind, "/", name, &body).unwrap()
}

fn kept() -> PolicyDef {
    policy(
        PolicyKind::Policy,
        "two",
        json!({"pattern": "^durable-q$", "definition": {"max-length": 2}, "priority": 1, "apply-to": "queues"}),
    )
}

fn operator() -> PolicyDef {
    policy(
        PolicyKind::Operator,
        "ttl",
        json!({"pattern": "^durable-q$", "definition": {"message-ttl": 3600000}}),
    )
}

/// The child: makes the changes, then waits for SIGKILL.
async fn child(dir: PathBuf) {
    let server = warren::server::start(config(&dir)).await.unwrap();
    let b = server.broker.clone();
    b.put_policy(kept()).unwrap();
    b.put_policy(policy(
        PolicyKind::Policy,
        "gone",
        json!({"pattern": "", "definition": {"max-length": 0}, "priority": 5}),
    ))
    .unwrap();
    b.delete_policy("/", "gone").unwrap();
    b.put_operator_policy(operator()).unwrap();
    b.put_parameter(
        parameter_from_json(
            "vhost-limits",
            "/",
            "limits",
            &json!({"value": {"max-queues": 10}}),
        )
        .unwrap(),
    )
    .unwrap();
    b.put_global_parameter(
        global_parameter_from_json("cluster_name", &json!({"value": "crash-test"})).unwrap(),
    )
    .unwrap();
    let url = format!("amqp://guest:guest@{}/%2f", server.local_addr);
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = confirming_channel(&conn).await;
    ch.queue_declare(
        "durable-q".into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    for body in [b"a", b"b", b"c"] {
        publish_confirmed(
            &ch,
            "",
            "durable-q",
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap();
    }
    println!("READY");
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn policies_and_parameters_survive_sigkill() {
    if let Ok(dir) = std::env::var(CHILD) {
        child(PathBuf::from(dir)).await;
        return;
    }
    let dir = std::env::temp_dir().join(format!("warren-policies-crash-{}", unique()));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "policies_and_parameters_survive_sigkill",
            "--nocapture",
        ])
        .env(CHILD, &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("READY"))
    });
    let ready = tokio::time::timeout(std::time::Duration::from_secs(60), ready)
        .await
        .expect("the child gets ready")
        .unwrap();
    assert!(ready, "the child ended before it was ready");
    child.kill().unwrap();
    child.wait().unwrap();

    let server = warren::server::start(config(&dir)).await.unwrap();
    let b = &server.broker;
    assert_eq!(b.policies(None), vec![kept()], "'gone' stays deleted");
    assert_eq!(b.operator_policies(None), vec![operator()]);
    assert_eq!(
        b.vhost("/").unwrap().def().limits,
        vec![("max-queues".to_string(), 10)]
    );
    assert_eq!(b.cluster_name().as_deref(), Some("crash-test"));
    let id = b.global_parameter("internal_cluster_id");
    assert!(id.is_some(), "the cluster id is kept");

    // The recovered queue has its policies again: max-length 2 holds.
    let q = b.vhost("/").unwrap().queue(b"durable-q").unwrap();
    assert_eq!(q.policy().as_deref(), Some("two"));
    assert_eq!(q.operator_policy().as_deref(), Some("ttl"));
    let url = format!("amqp://guest:guest@{}/%2f", server.local_addr);
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = confirming_channel(&conn).await;
    publish_confirmed(&ch, "", "durable-q", b"d", BasicProperties::default())
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(m) = ch
        .basic_get("durable-q".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        got.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    assert_eq!(got, vec!["c", "d"]);
    server.shutdown().await;

    // Compacted at that start, and read back again.
    let server = warren::server::start(config(&dir)).await.unwrap();
    assert_eq!(server.broker.policies(None), vec![kept()]);
    assert_eq!(server.broker.global_parameter("internal_cluster_id"), id);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
