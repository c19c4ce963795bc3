//! A minimal client for RabbitMQ's binary stream protocol, for the load tool: the handshake
//! (peer properties, SASL PLAIN, tune, open), create and delete stream, declare publisher,
//! subscribe and credit, close; publishing is `stream_proto`'s (it writes publish frames
//! straight into [`StreamClient::wbuf`]). Frames are encoded and decoded with Warren's codec
//! (`protocol::stream`); like the AMQP client beside it, requests go out in batches, and
//! frames are cut from one large read buffer as `Bytes` (no copy).

use super::client::Uri;
use super::transport::Stream;
use crate::protocol::Output;
use crate::protocol::stream::{
    ClientCommand, FrameCodec, OffsetSpec, ServerCommand, Str, StreamError as CodecError, code,
};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest frame the client accepts (what it tells the server in tune).
const CLIENT_FRAME_MAX: u32 = 8 << 20;

/// `first`, `last`, `next` or an offset number (`--offset`).
pub fn parse_offset(s: &str) -> Result<OffsetSpec, String> {
    Ok(match s {
        "first" => OffsetSpec::First,
        "last" => OffsetSpec::Last,
        "next" => OffsetSpec::Next,
        n => OffsetSpec::Offset(
            n.parse()
                .map_err(|_| format!("--offset {n:?}: first, last, next or a number"))?,
        ),
    })
}

/// Errors of the stream client; the tool prints them.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("{what} failed: response code {code}")]
    Refused { what: &'static str, code: u16 },
    #[error("the server closed the connection (code {code}: {reason})")]
    Closed { code: u16, reason: String },
}

pub struct StreamClient {
    socket: Stream,
    rbuf: BytesMut,
    pub wbuf: Output,
    codec: FrameCodec,
    /// The frame size both sides agreed in tune.
    pub frame_max: u32,
    correlation: u32,
}

impl StreamClient {
    /// Connects and runs the handshake: peer properties, SASL PLAIN, tune (the server's
    /// frame size, no heartbeats) and open of the URI's vhost.
    pub async fn connect(uri: &Uri) -> Result<StreamClient, StreamError> {
        let socket = Stream::connect(&uri.addr, uri.tls).await?;
        let mut c = StreamClient {
            socket,
            rbuf: BytesMut::with_capacity(1 << 16),
            wbuf: Output::with_capacity(1 << 16),
            codec: FrameCodec::new(CLIENT_FRAME_MAX),
            frame_max: CLIENT_FRAME_MAX,
            correlation: 0,
        };
        let correlation_id = c.next_correlation();
        c.request(
            ClientCommand::PeerProperties {
                correlation_id,
                properties: vec![("product".into(), "warren-perf".into())],
            },
            "peer properties",
        )
        .await?;
        let correlation_id = c.next_correlation();
        c.request(
            ClientCommand::SaslHandshake { correlation_id },
            "sasl handshake",
        )
        .await?;
        let correlation_id = c.next_correlation();
        let response = format!("\0{}\0{}", uri.user, uri.pass);
        c.request(
            ClientCommand::SaslAuthenticate {
                correlation_id,
                mechanism: "PLAIN".into(),
                data: Bytes::from(response),
            },
            "authentication",
        )
        .await?;
        // The server proposes; the client answers with what it keeps.
        let server_max = loop {
            match c.next_command().await? {
                ServerCommand::Tune { frame_max, .. } => break frame_max,
                ServerCommand::Close { code, reason, .. } => return Err(closed(code, &reason)),
                _ => {}
            }
        };
        c.frame_max = match server_max {
            0 => CLIENT_FRAME_MAX,
            n => n.min(CLIENT_FRAME_MAX),
        };
        c.encode(ClientCommand::Tune {
            frame_max: c.frame_max,
            heartbeat: 0,
        });
        let correlation_id = c.next_correlation();
        c.request(
            ClientCommand::Open {
                correlation_id,
                vhost: uri.vhost.as_str().into(),
            },
            "open",
        )
        .await?;
        Ok(c)
    }

    /// Creates `stream` with `arguments`; one that exists already is fine.
    pub async fn create(
        &mut self,
        stream: &str,
        arguments: &[(String, String)],
    ) -> Result<(), StreamError> {
        let correlation_id = self.next_correlation();
        let arguments = arguments
            .iter()
            .map(|(k, v)| (Str::from(k.as_str()), Str::from(v.as_str())))
            .collect();
        let create = ClientCommand::Create {
            correlation_id,
            stream: stream.into(),
            arguments,
        };
        match self.request(create, "create stream").await {
            Err(StreamError::Refused {
                code: code::STREAM_ALREADY_EXISTS,
                ..
            }) => Ok(()),
            r => r,
        }
    }

    pub async fn delete(&mut self, stream: &str) -> Result<(), StreamError> {
        let correlation_id = self.next_correlation();
        let delete = ClientCommand::Delete {
            correlation_id,
            stream: stream.into(),
        };
        self.request(delete, "delete stream").await
    }

    /// Declares publisher `id` on `stream` (no reference: no deduplication).
    pub async fn declare_publisher(&mut self, id: u8, stream: &str) -> Result<(), StreamError> {
        let correlation_id = self.next_correlation();
        let declare = ClientCommand::DeclarePublisher {
            correlation_id,
            publisher_id: id,
            reference: Str::default(),
            stream: stream.into(),
        };
        self.request(declare, "declare publisher").await
    }

    /// Subscribes `id` to `stream` from `offset` with `credit` chunks.
    pub async fn subscribe(
        &mut self,
        id: u8,
        stream: &str,
        offset: OffsetSpec,
        credit: u16,
    ) -> Result<(), StreamError> {
        let correlation_id = self.next_correlation();
        let subscribe = ClientCommand::Subscribe {
            correlation_id,
            subscription_id: id,
            stream: stream.into(),
            offset,
            credit,
            properties: Vec::new(),
        };
        self.request(subscribe, "subscribe").await
    }

    /// Buffers a credit of `n` chunks for subscription `id`.
    pub fn credit(&mut self, id: u8, n: u16) {
        self.encode(ClientCommand::Credit {
            subscription_id: id,
            credit: n,
        });
    }

    /// Buffers an unsubscribe (its response is not waited for).
    pub fn unsubscribe(&mut self, id: u8) {
        let correlation_id = self.next_correlation();
        self.encode(ClientCommand::Unsubscribe {
            correlation_id,
            subscription_id: id,
        });
    }

    /// Closes the connection politely: close, then its response.
    pub async fn close(mut self) -> Result<(), StreamError> {
        let correlation_id = self.next_correlation();
        let close = ClientCommand::Close {
            correlation_id,
            code: code::OK,
            reason: "bye".into(),
        };
        self.request(close, "close").await
    }

    fn next_correlation(&mut self) -> u32 {
        self.correlation = self.correlation.wrapping_add(1);
        self.correlation
    }

    /// Buffers one command.
    fn encode(&mut self, c: ClientCommand) {
        c.encode(self.wbuf.buf());
    }

    /// Sends `request` with everything buffered before it and waits for its response
    /// (other frames are dropped); a response code other than OK is an error.
    async fn request(
        &mut self,
        request: ClientCommand,
        what: &'static str,
    ) -> Result<(), StreamError> {
        let want = correlation_of(&request);
        self.encode(request);
        self.flush().await?;
        loop {
            let (id, code) = match self.next_command().await? {
                ServerCommand::PeerPropertiesResponse {
                    correlation_id,
                    code,
                    ..
                }
                | ServerCommand::SaslHandshakeResponse {
                    correlation_id,
                    code,
                    ..
                }
                | ServerCommand::SaslAuthenticateResponse {
                    correlation_id,
                    code,
                    ..
                }
                | ServerCommand::OpenResponse {
                    correlation_id,
                    code,
                    ..
                }
                | ServerCommand::CloseResponse {
                    correlation_id,
                    code,
                }
                | ServerCommand::Response {
                    correlation_id,
                    code,
                    ..
                } => (correlation_id, code),
                ServerCommand::Close { code, reason, .. } => return Err(closed(code, &reason)),
                _ => continue,
            };
            if Some(id) != want {
                continue;
            }
            if code != code::OK {
                return Err(StreamError::Refused { what, code });
            }
            return Ok(());
        }
    }

    /// Writes everything buffered.
    pub async fn flush(&mut self) -> Result<(), StreamError> {
        if !self.wbuf.is_empty() {
            self.wbuf.write_to(&mut self.socket).await?;
            self.socket.flush().await?;
        }
        Ok(())
    }

    /// The next command, reading more when the buffer holds none.
    pub async fn next_command(&mut self) -> Result<ServerCommand, StreamError> {
        loop {
            if let Some(c) = self.try_command()? {
                return Ok(c);
            }
            if !self.read_more().await? {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
        }
    }

    /// The next complete command already read, without waiting. Commands this codec does
    /// not know (a newer server's) are skipped.
    pub fn try_command(&mut self) -> Result<Option<ServerCommand>, StreamError> {
        while let Some(frame) = self.codec.decode_frame(&mut self.rbuf)? {
            match ServerCommand::decode(frame) {
                Ok(c) => return Ok(Some(c)),
                Err(CodecError::UnknownCommand { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// Waits for more input; false at end of stream.
    pub async fn read_more(&mut self) -> Result<bool, StreamError> {
        if self.rbuf.capacity() - self.rbuf.len() < 64 << 10 {
            self.rbuf.reserve(256 << 10);
        }
        Ok(self.socket.read_buf(&mut self.rbuf).await? > 0)
    }
}

fn closed(code: u16, reason: &Str) -> StreamError {
    StreamError::Closed {
        code,
        reason: reason.to_string(),
    }
}

/// The correlation id a request's response carries.
fn correlation_of(c: &ClientCommand) -> Option<u32> {
    use ClientCommand as C;
    match c {
        C::PeerProperties { correlation_id, .. }
        | C::SaslHandshake { correlation_id }
        | C::SaslAuthenticate { correlation_id, .. }
        | C::Open { correlation_id, .. }
        | C::Close { correlation_id, .. }
        | C::DeclarePublisher { correlation_id, .. }
        | C::Subscribe { correlation_id, .. }
        | C::Unsubscribe { correlation_id, .. }
        | C::Create { correlation_id, .. }
        | C::Delete { correlation_id, .. } => Some(*correlation_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("first"), Ok(OffsetSpec::First));
        assert_eq!(parse_offset("last"), Ok(OffsetSpec::Last));
        assert_eq!(parse_offset("next"), Ok(OffsetSpec::Next));
        assert_eq!(parse_offset("123"), Ok(OffsetSpec::Offset(123)));
        assert!(parse_offset("10m").is_err());
    }
}
