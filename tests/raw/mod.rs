//! A raw AMQP client built on Warren's own codec, for wire-level tests: exact frames in,
//! exact frames out, over a real socket to an in-process broker.
#![allow(dead_code)]

use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use warren::protocol::*;

/// Starts Warren on a free port with `tweak` applied to the default config.
pub async fn broker(
    tweak: impl FnOnce(&mut warren::config::Config),
) -> warren::server::ServerHandle {
    let mut config = warren::config::Config::default();
    config.amqp.listen = "127.0.0.1:0".parse().unwrap();
    config.mgmt.listen = "127.0.0.1:0".into();
    config.prometheus.listen = "127.0.0.1:0".into();
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    config.storage.dir =
        std::env::temp_dir().join(format!("warren-raw-{}-{n}", std::process::id()));
    tweak(&mut config);
    warren::server::start(config).await.expect("broker starts")
}

pub struct RawClient {
    socket: TcpStream,
    buf: BytesMut,
    codec: FrameCodec,
}

impl RawClient {
    pub async fn connect(server: &warren::server::ServerHandle) -> RawClient {
        RawClient::connect_at(server.local_addr).await
    }

    pub async fn connect_at(addr: std::net::SocketAddr) -> RawClient {
        let socket = TcpStream::connect(addr).await.unwrap();
        RawClient {
            socket,
            buf: BytesMut::new(),
            codec: FrameCodec::new(0),
        }
    }

    /// This client's end of the socket (the peer address the broker sees).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// Header, start-ok (PLAIN guest/guest, with the given client capabilities), tune-ok
    /// echoing the server's values, open of vhost `/`, and channel 1 opened.
    pub async fn handshake(
        server: &warren::server::ServerHandle,
        capabilities: &[&str],
    ) -> RawClient {
        RawClient::handshake_at(server.local_addr, capabilities).await
    }

    pub async fn handshake_at(addr: std::net::SocketAddr, capabilities: &[&str]) -> RawClient {
        let mut c = RawClient::connect_at(addr).await;
        c.socket.write_all(&PROTOCOL_HEADER).await.unwrap();
        let Method::ConnectionStart(_) = c.expect_method().await.1 else {
            panic!("start")
        };
        let mut caps = FieldTable::new();
        for cap in capabilities {
            caps.insert(*cap, true);
        }
        let mut props = FieldTable::new();
        props.insert("capabilities", caps);
        c.send(
            0,
            ConnectionStartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: "\0guest\0guest".into(),
                locale: "en_US".into(),
            }
            .into(),
        )
        .await;
        let Method::ConnectionTune(tune) = c.expect_method().await.1 else {
            panic!("tune")
        };
        c.send(
            0,
            ConnectionTuneOk {
                channel_max: tune.channel_max,
                frame_max: tune.frame_max,
                heartbeat: 0,
            }
            .into(),
        )
        .await;
        c.send(
            0,
            ConnectionOpen {
                virtual_host: "/".into(),
            }
            .into(),
        )
        .await;
        let Method::ConnectionOpenOk(_) = c.expect_method().await.1 else {
            panic!("open-ok")
        };
        c.send(1, ChannelOpen {}.into()).await;
        let Method::ChannelOpenOk(_) = c.expect_method().await.1 else {
            panic!("channel open-ok")
        };
        c
    }

    /// Sends the protocol header and reads connection.start.
    pub async fn header_and_start(&mut self) {
        self.send_raw(&PROTOCOL_HEADER).await;
        let Method::ConnectionStart(_) = self.expect_method().await.1 else {
            panic!("start")
        };
    }

    /// Waits until the broker closes the socket (EOF or reset) without sending anything
    /// more; fails after `within`.
    pub async fn expect_closed_without_reply(&mut self, within: Duration) {
        let closed = tokio::time::timeout(within, async {
            loop {
                match self.socket.read_buf(&mut self.buf).await {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                    Err(e) => panic!("read failed: {e}"),
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "the broker did not close the socket within {within:?}"
        );
        assert!(self.buf.is_empty(), "the broker sent {:?}", &self.buf[..]);
    }

    /// connection.close, its close-ok, then our end of the socket shut, and the broker's
    /// end seen closed: once this returns the broker has finished with the connection.
    pub async fn close_and_wait(mut self) {
        self.send(
            0,
            ConnectionClose {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            }
            .into(),
        )
        .await;
        let (_, m) = self.expect_method().await;
        assert!(matches!(m, Method::ConnectionCloseOk(_)), "got {m:?}");
        self.socket.shutdown().await.unwrap();
        assert!(self.next_frame().await.is_none(), "EOF after close-ok");
    }

    /// The socket's write half may fail once the broker has closed it.
    pub async fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.socket.write_all(bytes).await
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.socket.write_all(bytes).await.unwrap();
    }

    pub async fn send(&mut self, channel: u16, method: Method) {
        let mut out = BytesMut::new();
        encode_method(&mut out, channel, &method);
        self.send_raw(&out).await;
    }

    pub async fn publish(&mut self, channel: u16, exchange: &str, routing_key: &str, body: &[u8]) {
        let mut out = BytesMut::new();
        let m: Method = BasicPublish {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            ..Default::default()
        }
        .into();
        encode_content(
            &mut out,
            channel,
            &m,
            &EncodedProperties::default(),
            body,
            131072,
        );
        self.send_raw(&out).await;
    }

    /// The next frame, failing the test after 5 s of silence.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.codec.decode(&mut self.buf).expect("valid frames") {
                return Some(f);
            }
            let n =
                tokio::time::timeout(Duration::from_secs(5), self.socket.read_buf(&mut self.buf))
                    .await
                    .expect("a frame within 5 s")
                    .unwrap();
            if n == 0 {
                return None;
            }
        }
    }

    /// The next method frame (skipping heartbeats).
    pub async fn expect_method(&mut self) -> (u16, Method) {
        loop {
            match self.next_frame().await.expect("connection open") {
                Frame::Method { channel, method } => return (channel, method),
                Frame::Heartbeat => continue,
                other => panic!("expected a method, got {other:?}"),
            }
        }
    }
}
