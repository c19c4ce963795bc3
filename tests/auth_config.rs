//! The `auth` settings: the default user and vhost are made on the first start only, as
//! RabbitMQ's `default_user`, and `auth.loopback_users` keeps users to loopback.
//! Warren-only (they configure the broker they start).

mod common;

use common::*;
use lapin::{Connection, ConnectionProperties};
use std::net::{IpAddr, SocketAddr};
use warren::broker::admin::Credential;

fn config(dir: &std::path::Path) -> warren::config::Config {
    let mut config = warren::config::Config::default();
    config.amqp.listen = "127.0.0.1:0".parse().unwrap();
    config.mgmt.listen = "127.0.0.1:0".into();
    config.prometheus.listen = "127.0.0.1:0".into();
    config.storage.dir = dir.to_path_buf();
    config
}

async fn login(addr: SocketAddr, user: &str, pass: &str) -> Result<Connection, lapin::Error> {
    let url = format!("amqp://{user}:{pass}@{addr}/%2f");
    Connection::connect(&url, ConnectionProperties::default()).await
}

#[tokio::test]
async fn the_default_user_is_created_on_the_first_start_only() {
    let dir = std::env::temp_dir().join(format!("warren-auth-seed-{}", unique()));
    let server = warren::server::start(config(&dir)).await.unwrap();
    login(server.local_addr, "guest", "guest")
        .await
        .expect("guest exists on the first start");
    let admin = server.broker.auth.user("guest").unwrap();
    assert_eq!(admin.tags, vec!["administrator".to_string()]);
    // The operator replaces guest by their own administrator.
    server
        .broker
        .put_user(
            "ops",
            Credential::Password("s3cret".into()),
            vec!["administrator".into()],
        )
        .unwrap();
    server.broker.delete_user("guest").unwrap();
    server.shutdown().await;

    // A restart, even with another default password, does not bring guest back.
    let mut again = config(&dir);
    again.auth.default_pass = "changed".into();
    let server = warren::server::start(again).await.unwrap();
    for pass in ["guest", "changed"] {
        let err = login(server.local_addr, "guest", pass).await.unwrap_err();
        assert_eq!(amqp_error(&err).0, 403);
    }
    assert!(server.broker.auth.user("ops").is_some());
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// This machine's address on a non-loopback interface, if it has one (no packet is sent:
/// connecting a UDP socket only picks the route).
fn non_loopback_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("10.255.255.255:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn loopback_users_may_connect_only_from_loopback() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let dir = std::env::temp_dir().join(format!("warren-auth-loopback-{}", unique()));
    let mut cfg = config(&dir);
    cfg.amqp.listen = "0.0.0.0:0".parse().unwrap();
    cfg.mgmt.listen = "127.0.0.1:0".into();
    cfg.prometheus.listen = "127.0.0.1:0".into();
    let server = warren::server::start(cfg).await.unwrap();
    let remote = SocketAddr::new(ip, server.local_addr.port());
    let local = SocketAddr::new("127.0.0.1".parse().unwrap(), server.local_addr.port());

    login(local, "guest", "guest")
        .await
        .expect("guest from loopback");
    let err = login(remote, "guest", "guest").await.unwrap_err();
    assert_eq!(
        amqp_error(&err),
        (
            403,
            "ACCESS_REFUSED - User 'guest' can only connect via localhost".to_string()
        )
    );
    // Another user is not in the list: it connects from anywhere.
    let b = &server.broker;
    b.put_user("app", Credential::Password("pw".into()), vec![])
        .unwrap();
    b.set_permissions(warren::store::definitions::PermissionDef {
        user: "app".into(),
        vhost: "/".into(),
        configure: ".*".into(),
        write: ".*".into(),
        read: ".*".into(),
    })
    .unwrap();
    login(remote, "app", "pw").await.expect("app from anywhere");
    server.shutdown().await;

    // An empty list lets guest in from anywhere.
    let mut open = config(&dir);
    open.amqp.listen = "0.0.0.0:0".parse().unwrap();
    open.mgmt.listen = "127.0.0.1:0".into();
    open.prometheus.listen = "127.0.0.1:0".into();
    open.auth.loopback_users = vec![];
    let server = warren::server::start(open).await.unwrap();
    let remote = SocketAddr::new(ip, server.local_addr.port());
    login(remote, "guest", "guest")
        .await
        .expect("guest from anywhere when loopback_users is empty");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
