//! A raw stream-protocol client over any transport (TCP or TLS), with Warren's own codec
//! (`protocol::stream`): for tests that need to see frames exactly, or to stop reading.

use bytes::{BufMut, Bytes, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use warren::protocol::stream::{ClientCommand, FrameCodec, ServerCommand, Str};

pub struct StreamConn<S> {
    pub sock: S,
    pub buf: BytesMut,
    codec: FrameCodec,
    next_id: u32,
}

/// What open settled: the open's properties, and the connection name the client gave.
pub struct Opened {
    pub properties: Vec<(Str, Str)>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> StreamConn<S> {
    pub fn new(sock: S) -> StreamConn<S> {
        StreamConn {
            sock,
            buf: BytesMut::new(),
            codec: FrameCodec::new(0),
            next_id: 10,
        }
    }

    pub async fn send(&mut self, cmd: ClientCommand) {
        let mut b = BytesMut::new();
        cmd.encode(&mut b);
        self.sock.write_all(&b).await.unwrap();
        self.sock.flush().await.unwrap();
    }

    /// The next frame other than a heartbeat; None when the server closed the socket
    /// (or reset it).
    pub async fn recv(&mut self) -> Option<ServerCommand> {
        loop {
            if let Some(f) = self.codec.decode_frame(&mut self.buf).unwrap() {
                match ServerCommand::decode(with_response_bit(f)).expect("a server frame") {
                    ServerCommand::Heartbeat => continue,
                    c => return Some(c),
                }
            }
            let n =
                tokio::time::timeout(Duration::from_secs(15), self.sock.read_buf(&mut self.buf))
                    .await
                    .expect("a frame within 15 s")
                    .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    pub fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends a request and returns the response code of its (code-only) response.
    pub async fn call(&mut self, make: impl FnOnce(u32) -> ClientCommand) -> u16 {
        let id = self.id();
        self.send(make(id)).await;
        loop {
            match self.recv().await.expect("a response") {
                ServerCommand::Response {
                    correlation_id,
                    code,
                    ..
                } if correlation_id == id => return code,
                // Metadata updates and the like may come first.
                ServerCommand::MetadataUpdate { .. } => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Peer properties (with `connection_name`), SASL PLAIN, tune, open `vhost`: the
    /// open's response code and properties.
    pub async fn open(
        &mut self,
        name: &str,
        user: &str,
        pass: &str,
        vhost: &str,
    ) -> (u16, Vec<(Str, Str)>) {
        self.send(ClientCommand::PeerProperties {
            correlation_id: 1,
            properties: vec![(Str::from("connection_name"), Str::from(name))],
        })
        .await;
        match self.recv().await.expect("peer properties") {
            ServerCommand::PeerPropertiesResponse { code: 1, .. } => {}
            other => panic!("{other:?}"),
        }
        self.send(ClientCommand::SaslHandshake { correlation_id: 2 })
            .await;
        self.recv().await.expect("sasl handshake");
        self.send(ClientCommand::SaslAuthenticate {
            correlation_id: 3,
            mechanism: Str::from("PLAIN"),
            data: Bytes::from(format!("\0{user}\0{pass}")),
        })
        .await;
        match self.recv().await.expect("sasl authenticate") {
            ServerCommand::SaslAuthenticateResponse { code: 1, .. } => {}
            other => panic!("{other:?}"),
        }
        let ServerCommand::Tune { heartbeat, .. } = self.recv().await.expect("tune") else {
            panic!("tune")
        };
        self.send(ClientCommand::Tune {
            frame_max: 1_048_576,
            heartbeat,
        })
        .await;
        self.send(ClientCommand::Open {
            correlation_id: 4,
            vhost: Str::from(vhost),
        })
        .await;
        match self.recv().await.expect("open") {
            ServerCommand::OpenResponse {
                code, properties, ..
            } => (code, properties),
            other => panic!("{other:?}"),
        }
    }

    /// [`open`](Self::open) as guest on "/", which must succeed.
    pub async fn open_guest(&mut self, name: &str) -> Opened {
        let (code, properties) = self.open(name, "guest", "guest", "/").await;
        assert_eq!(code, 1, "open");
        Opened { properties }
    }

    /// Waits for the server to close the socket, skipping any frame it sends first;
    /// the frames skipped.
    pub async fn closed(&mut self) -> Vec<ServerCommand> {
        let mut seen = Vec::new();
        while let Some(c) = self.recv().await {
            seen.push(c);
        }
        seen
    }
}

/// RabbitMQ before 3.12 answered Route and Partitions without the response bit.
fn with_response_bit(f: Bytes) -> Bytes {
    if f.len() >= 2 && matches!(u16::from_be_bytes([f[0], f[1]]), 0x0018 | 0x0019) {
        let mut m = BytesMut::from(&f[..]);
        m[0] |= 0x80;
        return m.freeze();
    }
    f
}

/// An AMQP 1.0 message with one data section (bodies under 256 bytes).
pub fn amqp_message(body: &[u8]) -> Bytes {
    let mut m = BytesMut::new();
    m.put_slice(&[0x00, 0x53, 0x75, 0xa0, body.len() as u8]);
    m.put_slice(body);
    m.freeze()
}

/// The records of a Deliver's chunk (simple entries, and the records of uncompressed
/// sub-entry batches): (first offset, bodies).
pub fn chunk_entries(chunk: &Bytes) -> (u64, Vec<Bytes>) {
    assert_eq!(chunk[0], 0x50, "osiris magic and version");
    let entries = u16::from_be_bytes([chunk[2], chunk[3]]);
    let first = u64::from_be_bytes(chunk[24..32].try_into().unwrap());
    let u32_at = |at: usize| u32::from_be_bytes(chunk[at..at + 4].try_into().unwrap()) as usize;
    let mut at = 48;
    let mut out = Vec::new();
    for _ in 0..entries {
        if chunk[at] & 0x80 == 0 {
            let n = u32_at(at);
            out.push(chunk.slice(at + 4..at + 4 + n));
            at += 4 + n;
        } else {
            assert_eq!(chunk[at] & 0x70, 0, "an uncompressed sub-entry batch");
            let count = u16::from_be_bytes([chunk[at + 1], chunk[at + 2]]);
            let end = at + 11 + u32_at(at + 7);
            at += 11;
            for _ in 0..count {
                let n = u32_at(at);
                out.push(chunk.slice(at + 4..at + 4 + n));
                at += 4 + n;
            }
            assert_eq!(at, end, "the batch is its records");
        }
    }
    (first, out)
}
