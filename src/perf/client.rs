//! A minimal pipelined AMQP client on Warren's own codec, for the load tool: frames are
//! encoded into one buffer and written in batches, so the tool is never the bottleneck.

use super::transport::Stream;
use crate::protocol::frame::CodecError;
use crate::protocol::*;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Decoder;

pub struct Client {
    socket: Stream,
    rbuf: BytesMut,
    pub wbuf: Output,
    codec: FrameCodec,
    pub frame_max: u32,
}

/// Parts of an `amqp://user:pass@host:port/vhost` (or `amqps://`) URI, or of a stream
/// protocol one, `rabbitmq-stream://` (or `rabbitmq-stream+tls://`), as RabbitMQ's stream
/// clients write them.
pub struct Uri {
    /// `amqps://` or `rabbitmq-stream+tls://`: TLS (default port 5671 or 5551).
    pub tls: bool,
    /// A stream protocol URI (default port 5552, or 5551 with TLS).
    pub stream: bool,
    pub user: String,
    pub pass: String,
    pub addr: String,
    pub vhost: String,
}

impl Uri {
    pub fn parse(uri: &str) -> Result<Uri, String> {
        let schemes = [
            ("amqp://", false, false, 5672),
            ("amqps://", true, false, 5671),
            ("rabbitmq-stream://", false, true, 5552),
            ("rabbitmq-stream+tls://", true, true, 5551),
        ];
        let Some((rest, tls, stream, port)) = schemes
            .iter()
            .find_map(|&(p, tls, stream, port)| Some((uri.strip_prefix(p)?, tls, stream, port)))
        else {
            return Err(
                "the URI must start with amqp://, amqps://, rabbitmq-stream:// or rabbitmq-stream+tls://"
                    .into(),
            );
        };
        let (auth, rest) = rest.split_once('@').unwrap_or(("guest:guest", rest));
        let (user, pass) = auth.split_once(':').unwrap_or((auth, ""));
        let (addr, vhost) = rest.split_once('/').unwrap_or((rest, ""));
        let vhost = match vhost {
            "" => "/".to_string(),
            v => v.replace("%2f", "/").replace("%2F", "/"),
        };
        let addr = if addr.contains(':') {
            addr.to_string()
        } else {
            format!("{addr}:{port}")
        };
        Ok(Uri {
            tls,
            stream,
            user: user.into(),
            pass: pass.into(),
            addr,
            vhost,
        })
    }
}

impl Client {
    /// Connects, authenticates (PLAIN), tunes (the server's frame_max, no heartbeats) and
    /// opens channel 1.
    pub async fn connect(uri: &Uri) -> Result<Client, CodecError> {
        Client::connect_with(uri, 1, 1 << 16).await
    }

    /// Like [`Client::connect`], with channels 1..=`channels` opened and read/write buffers
    /// of `buffer` bytes to start with. Pipelined: tune-ok goes out with connection.open,
    /// and every channel.open is written at once, so the handshake takes four round trips.
    pub async fn connect_with(
        uri: &Uri,
        channels: u16,
        buffer: usize,
    ) -> Result<Client, CodecError> {
        let socket = Stream::connect(&uri.addr, uri.tls).await?;
        let mut c = Client {
            socket,
            rbuf: BytesMut::with_capacity(buffer),
            wbuf: Output::with_capacity(buffer),
            codec: FrameCodec::new(0),
            frame_max: 131072,
        };
        c.socket.write_all(&PROTOCOL_HEADER).await?;
        c.expect(|m| matches!(m, Method::ConnectionStart(_)))
            .await?;
        c.send(
            0,
            ConnectionStartOk {
                client_properties: FieldTable::new(),
                mechanism: "PLAIN".into(),
                response: format!("\0{}\0{}", uri.user, uri.pass).into(),
                locale: "en_US".into(),
            }
            .into(),
        )
        .await?;
        let Method::ConnectionTune(t) =
            c.expect(|m| matches!(m, Method::ConnectionTune(_))).await?
        else {
            unreachable!()
        };
        c.frame_max = if t.frame_max == 0 {
            131072
        } else {
            t.frame_max
        };
        encode_method(
            c.wbuf.buf(),
            0,
            &ConnectionTuneOk {
                channel_max: t.channel_max,
                frame_max: c.frame_max,
                heartbeat: 0,
            }
            .into(),
        );
        c.send(
            0,
            ConnectionOpen {
                virtual_host: uri.vhost.as_str().into(),
            }
            .into(),
        )
        .await?;
        c.expect(|m| matches!(m, Method::ConnectionOpenOk(_)))
            .await?;
        for ch in 1..=channels {
            encode_method(c.wbuf.buf(), ch, &ChannelOpen {}.into());
        }
        c.flush().await?;
        for _ in 0..channels {
            c.expect(|m| matches!(m, Method::ChannelOpenOk(_))).await?;
        }
        Ok(c)
    }

    /// Closes the connection politely: connection.close, then close-ok.
    pub async fn close(mut self) -> Result<(), CodecError> {
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
        .await?;
        self.expect(|m| matches!(m, Method::ConnectionCloseOk(_)))
            .await?;
        Ok(())
    }

    /// Sends one method now.
    pub async fn send(&mut self, channel: u16, m: Method) -> Result<(), CodecError> {
        encode_method(self.wbuf.buf(), channel, &m);
        self.flush().await
    }

    /// Writes everything buffered.
    pub async fn flush(&mut self) -> Result<(), CodecError> {
        if !self.wbuf.is_empty() {
            self.wbuf.write_to(&mut self.socket).await?;
            // TLS keeps records it could not send yet; plain TCP: a no-op.
            self.socket.flush().await?;
        }
        Ok(())
    }

    /// Reads until a method matching `want` arrives (other frames are dropped); a
    /// connection.close or channel.close from the server is an error.
    pub async fn expect(&mut self, want: impl Fn(&Method) -> bool) -> Result<Method, CodecError> {
        loop {
            match self.next_frame().await? {
                Frame::Method { method, .. } if want(&method) => return Ok(method),
                Frame::Method {
                    method: Method::ConnectionClose(c),
                    ..
                } => {
                    return Err(AmqpError::new(c.reply_code, c.reply_text.to_string()).into());
                }
                Frame::Method {
                    method: Method::ChannelClose(c),
                    ..
                } => {
                    return Err(AmqpError::new(c.reply_code, c.reply_text.to_string()).into());
                }
                _ => {}
            }
        }
    }

    /// The next frame, reading more when the buffer holds none.
    pub async fn next_frame(&mut self) -> Result<Frame, CodecError> {
        loop {
            if let Some(f) = self.codec.decode(&mut self.rbuf)? {
                return Ok(f);
            }
            if !self.read_more().await? {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
        }
    }

    /// Decodes every complete frame already read, without waiting.
    pub fn try_frame(&mut self) -> Result<Option<Frame>, CodecError> {
        self.codec.decode(&mut self.rbuf)
    }

    /// Waits for more input; false at end of stream.
    pub async fn read_more(&mut self) -> Result<bool, CodecError> {
        // Large reads: few syscalls, and no new buffer per large frame.
        if self.rbuf.capacity() - self.rbuf.len() < 16 << 10 {
            self.rbuf.reserve(64 << 10);
        }
        Ok(self.socket.read_buf(&mut self.rbuf).await? > 0)
    }
}
