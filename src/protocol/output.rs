//! Outgoing bytes that share large bodies instead of copying them.
//!
//! Small frames are encoded into one growing buffer, as before. A content body of at least
//! [`SHARE_MIN`] octets is not copied: the buffer written so far (ending with the body
//! frame's 7-octet header) is frozen into a segment, the body's own `Bytes` becomes the next
//! segment, and the frame-end octet starts the buffer again. [`Output::write_to`] hands the
//! segments to the socket in one vectored write (`writev`), so a 16 KiB body goes from the
//! publisher's read buffer to the consumer's socket with no copy in user space.

use super::content::encode_content;
use super::frame::{FRAME_OVERHEAD, encode_header, encode_method};
use super::generated::{FRAME_BODY, FRAME_END, Method};
use super::properties::EncodedProperties;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::io::IoSlice;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Bodies at least this long are shared, not copied: below it, a copy costs less than the
/// extra segments.
pub const SHARE_MIN: usize = 4096;

/// Most segments handed to one `writev` (Linux allows 1024).
const IOV_BATCH: usize = 64;

/// Frames waiting to be written, in order: `segments`, then `buf`.
#[derive(Debug, Default)]
pub struct Output {
    segments: Vec<Bytes>,
    segment_bytes: usize,
    buf: BytesMut,
}

impl Output {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            segments: Vec::new(),
            segment_bytes: 0,
            buf: BytesMut::with_capacity(n),
        }
    }

    /// The buffer to encode small frames into (appended after everything else).
    pub fn buf(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Octets waiting.
    pub fn len(&self) -> usize {
        self.segment_bytes + self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer's capacity: how much memory an idle output keeps.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends a content method, its header and its body in frames of at most `frame_max`
    /// octets (0: no limit), sharing the body when it is large.
    pub fn push_content(
        &mut self,
        channel: u16,
        method: &Method,
        properties: &EncodedProperties,
        body: &Bytes,
        frame_max: u32,
    ) {
        if body.len() < SHARE_MIN {
            encode_content(&mut self.buf, channel, method, properties, body, frame_max);
            return;
        }
        encode_method(&mut self.buf, channel, method);
        encode_header(&mut self.buf, channel, body.len() as u64, properties);
        let chunk = if frame_max == 0 {
            body.len()
        } else {
            frame_max as usize - FRAME_OVERHEAD
        };
        let mut at = 0;
        while at < body.len() {
            let end = (at + chunk).min(body.len());
            self.buf.put_u8(FRAME_BODY);
            self.buf.put_u16(channel);
            self.buf.put_u32((end - at) as u32);
            self.share(body.slice(at..end));
            self.buf.put_u8(FRAME_END);
            at = end;
        }
    }

    /// Appends `b` after everything buffered, without copying it.
    pub fn share(&mut self, b: Bytes) {
        if !self.buf.is_empty() {
            let head = self.buf.split().freeze();
            self.push_segment(head);
        }
        self.push_segment(b);
    }

    fn push_segment(&mut self, b: Bytes) {
        self.segment_bytes += b.len();
        self.segments.push(b);
    }

    /// Writes everything with as few (vectored) writes as the socket takes, and leaves
    /// this empty, keeping the buffer's spare capacity for the next batch.
    pub async fn write_to<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> std::io::Result<()> {
        if self.segments.is_empty() {
            w.write_all(&self.buf).await?;
            self.buf.clear();
            return Ok(());
        }
        if !self.buf.is_empty() {
            let tail = self.buf.split().freeze();
            self.push_segment(tail);
        }
        let mut first = 0;
        while first < self.segments.len() {
            let mut iov = [IoSlice::new(&[]); IOV_BATCH];
            let mut n = 0;
            for s in self.segments[first..].iter().take(IOV_BATCH) {
                iov[n] = IoSlice::new(s);
                n += 1;
            }
            let mut written = w.write_vectored(&iov[..n]).await?;
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            while written > 0 {
                let s = &mut self.segments[first];
                if written >= s.len() {
                    written -= s.len();
                    first += 1;
                } else {
                    s.advance(written);
                    written = 0;
                }
            }
        }
        self.segments.clear();
        self.segment_bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        BasicAck, BasicDeliver, ContentAssembler, FrameCodec, content::Assembled,
    };
    use tokio_util::codec::Decoder;

    /// Shared and copied bodies give the same octets, split at frame_max, in order with the
    /// small frames around them; written through a writer that takes a few octets at a time.
    #[tokio::test]
    async fn shared_bodies_write_the_same_octets_as_copies() {
        let method: Method = BasicDeliver {
            delivery_tag: 7,
            ..Default::default()
        }
        .into();
        let ack: Method = BasicAck::default().into();
        let props = EncodedProperties::default();
        let bodies: Vec<Bytes> = [0usize, 10, SHARE_MIN, 40_000, 5]
            .iter()
            .map(|&n| Bytes::from((0..n).map(|i| i as u8).collect::<Vec<_>>()))
            .collect();
        for frame_max in [0u32, 4096, 131072] {
            let mut expected = BytesMut::new();
            let mut out = Output::default();
            for b in &bodies {
                encode_content(&mut expected, 3, &method, &props, b, frame_max);
                out.push_content(3, &method, &props, b, frame_max);
                encode_method(&mut expected, 3, &ack);
                encode_method(out.buf(), 3, &ack);
            }
            assert_eq!(out.len(), expected.len());
            let (mut client, mut server) = tokio::io::duplex(100);
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                tokio::io::AsyncReadExt::read_to_end(&mut client, &mut got)
                    .await
                    .unwrap();
                got
            });
            out.write_to(&mut server).await.unwrap();
            drop(server);
            assert!(out.is_empty());
            let got = reader.await.unwrap();
            assert_eq!(got, expected.to_vec());
            // And it decodes back to the bodies.
            let mut codec = FrameCodec::new(frame_max);
            let mut asm = ContentAssembler::default();
            let mut rbuf = BytesMut::from(&got[..]);
            let mut decoded = Vec::new();
            while let Some(f) = codec.decode(&mut rbuf).unwrap() {
                if let Some(Assembled::Content(c)) = asm.push(f).unwrap() {
                    decoded.push(c.body);
                }
            }
            assert_eq!(decoded, bodies);
        }
    }
}
