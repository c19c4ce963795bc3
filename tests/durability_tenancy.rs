//! Users, vhosts, permissions and limits survive `kill -9`, and a deleted vhost's queue
//! files are gone after it.
//!
//! The broker whose process is killed is this test binary itself, re-run as a child with
//! `WARREN_TENANCY_CHILD` set: it starts Warren in-process on the given directory, makes
//! its administrative changes through the same operations the management API will call,
//! prints `READY`, and waits to be killed. The parent then opens the directory with a
//! fresh broker and checks what came back.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use warren::broker::admin::Credential;
use warren::store::definitions::{PermissionDef, TopicPermissionDef, VHostDef};

const CHILD: &str = "WARREN_TENANCY_CHILD";

fn config(dir: &Path) -> warren::config::Config {
    let mut config = warren::config::Config::default();
    config.amqp.listen = "127.0.0.1:0".parse().unwrap();
    config.mgmt.listen = "127.0.0.1:0".into();
    config.prometheus.listen = "127.0.0.1:0".into();
    config.storage.dir = dir.to_path_buf();
    config
}

fn vhost(name: &str) -> VHostDef {
    VHostDef {
        name: name.into(),
        description: format!("{name} for the crash test"),
        tags: vec![],
        limits: vec![],
    }
}

fn all(user: &str, vhost: &str) -> PermissionDef {
    PermissionDef {
        user: user.into(),
        vhost: vhost.into(),
        configure: ".*".into(),
        write: ".*".into(),
        read: ".*".into(),
    }
}

/// The child: makes the changes, then waits for SIGKILL.
async fn child(dir: PathBuf) {
    let server = warren::server::start(config(&dir)).await.unwrap();
    let b = server.broker.clone();
    b.put_vhost(vhost("kept")).unwrap();
    b.put_vhost(vhost("gone")).unwrap();
    b.put_user(
        "alice",
        Credential::Password("wonderland".into()),
        vec!["monitoring".into()],
    )
    .unwrap();
    b.set_permissions(PermissionDef {
        configure: "^alice-".into(),
        ..all("alice", "kept")
    })
    .unwrap();
    b.set_topic_permissions(TopicPermissionDef {
        user: "alice".into(),
        vhost: "kept".into(),
        exchange: "amq.topic".into(),
        write: "^{username}\\.".into(),
        read: ".*".into(),
    })
    .unwrap();
    b.set_vhost_limits("kept", vec![("max-queues".into(), 2)])
        .unwrap();
    b.set_user_limits("alice", vec![("max-channels".into(), 3)])
        .unwrap();
    b.set_permissions(all("guest", "gone")).unwrap();
    b.put_user("bob", Credential::Password("x".into()), vec![])
        .unwrap();
    b.delete_user("bob").unwrap();

    // A durable queue with a confirmed persistent message in each vhost.
    for (v, user, pass) in [("kept", "alice", "wonderland"), ("gone", "guest", "guest")] {
        let url = format!("amqp://{user}:{pass}@{}/{v}", server.local_addr);
        let conn = Connection::connect(&url, ConnectionProperties::default())
            .await
            .unwrap();
        let ch = confirming_channel(&conn).await;
        let q = format!("{user}-q");
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"persisted",
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        conn.close(200, "OK".into()).await.unwrap();
    }
    b.delete_vhost("gone").unwrap();
    println!("READY");
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn users_vhosts_permissions_and_limits_survive_sigkill() {
    if let Ok(dir) = std::env::var(CHILD) {
        child(PathBuf::from(dir)).await;
        return;
    }
    let dir = std::env::temp_dir().join(format!("warren-tenancy-crash-{}", unique()));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "users_vhosts_permissions_and_limits_survive_sigkill",
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
    // SIGKILL: no graceful stop, nothing flushed but what was synced.
    child.kill().unwrap();
    child.wait().unwrap();

    let server = warren::server::start(config(&dir)).await.unwrap();
    let url =
        |user: &str, pass: &str, v: &str| format!("amqp://{user}:{pass}@{}/{v}", server.local_addr);

    // alice: her password, her permissions (configure only '^alice-'), her limits.
    let conn = Connection::connect(
        &url("alice", "wonderland", "kept"),
        ConnectionProperties::default(),
    )
    .await
    .expect("alice logs in after the crash");
    let ch = conn.create_channel().await.unwrap();
    let got = ch
        .basic_get("alice-q".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the confirmed message survived");
    assert_eq!(&got.delivery.data[..], b"persisted");
    let r = ch
        .queue_declare(
            "not-hers".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    expect_code(r, 403);
    let ch = conn.create_channel().await.unwrap();
    // max-queues 2: alice-q and one more.
    ch.queue_declare(
        "alice-2".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let r = ch
        .queue_declare(
            "alice-3".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    expect_code(r, 406);
    // max-channels 3: on a fresh connection, three channels, then 530.
    conn.close(200, "OK".into()).await.unwrap();
    let conn = Connection::connect(
        &url("alice", "wonderland", "kept"),
        ConnectionProperties::default(),
    )
    .await
    .unwrap();
    let ch = confirming_channel(&conn).await;
    conn.create_channel().await.unwrap();
    conn.create_channel().await.unwrap();
    assert_eq!(amqp_error(&conn.create_channel().await.unwrap_err()).0, 530);
    let conn = Connection::connect(
        &url("alice", "wonderland", "kept"),
        ConnectionProperties::default(),
    )
    .await
    .unwrap();
    drop(ch);
    let ch = confirming_channel(&conn).await;
    let r = publish_confirmed(&ch, "amq.topic", "bob.k", b"m", BasicProperties::default()).await;
    expect_code(r, 403);
    let user = server.broker.auth.user("alice").unwrap();
    assert_eq!(user.tags, vec!["monitoring".to_string()]);
    assert_eq!(
        server.broker.vhost("kept").unwrap().def().description,
        "kept for the crash test"
    );

    // bob was deleted; so was vhost 'gone', with its queue's files.
    let r = Connection::connect(&url("bob", "x", "kept"), ConnectionProperties::default()).await;
    assert_eq!(amqp_error(&r.unwrap_err()).0, 403);
    let r = Connection::connect(
        &url("guest", "guest", "gone"),
        ConnectionProperties::default(),
    )
    .await;
    assert_eq!(
        amqp_error(&r.unwrap_err()),
        (530, "NOT_ALLOWED - vhost gone not found".to_string())
    );
    let queue_dirs = std::fs::read_dir(dir.join("queues")).unwrap().count();
    assert_eq!(queue_dirs, 1, "only alice-q's log is left on disk");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
