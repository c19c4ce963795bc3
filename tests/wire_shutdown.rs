//! Graceful shutdown: SIGTERM (or ServerHandle::shutdown) closes every connection with
//! connection.close 320 CONNECTION_FORCED, and the binary exits 0.

mod raw;

use raw::{RawClient, broker};
use std::process::{Command, Stdio};
use std::time::Duration;
use warren::protocol::*;

fn expect_forced(m: Method) {
    let Method::ConnectionClose(c) = m else {
        panic!("expected connection.close, got {m:?}")
    };
    assert_eq!(c.reply_code, reply_code::CONNECTION_FORCED);
    assert_eq!(
        c.reply_text,
        "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
    );
}

#[tokio::test]
async fn shutdown_closes_connections_with_320() {
    let server = broker(|_| {}).await;
    let mut client = RawClient::handshake(&server, &[]).await;
    let stopping = tokio::spawn(server.shutdown());
    let (ch, m) = client.expect_method().await;
    assert_eq!(ch, 0);
    expect_forced(m);
    client.send(0, ConnectionCloseOk {}.into()).await;
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("shutdown completes once clients are gone")
        .unwrap();
}

#[tokio::test]
async fn sigterm_stops_the_binary_gracefully() {
    // Find a free port, then start the real binary on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("warren-sigterm-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .env("WARREN_AMQP__LISTEN", format!("127.0.0.1:{port}"))
        .env("WARREN_MGMT__LISTEN", "127.0.0.1:0")
        .env("WARREN_PROMETHEUS__LISTEN", "127.0.0.1:0")
        .env("WARREN_STORAGE__DIR", &dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut client = None;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            client = Some(RawClient::handshake_at(addr, &[]).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client = client.expect("the binary listens");
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let (_, m) = client.expect_method().await;
    expect_forced(m);
    client.send(0, ConnectionCloseOk {}.into()).await;
    let code = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(code.code(), Some(0));
}
