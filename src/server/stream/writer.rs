//! A stream connection's writer task: the only one that writes the socket.
//!
//! What it writes comes from [`Out`]: the frames the reader task encoded (responses,
//! confirms, metadata updates, heartbeats) and, for each subscription with credit, the
//! next committed chunk of its stream. A chunk is a Deliver frame's head (written with
//! whatever frames are pending, in one write) followed by the chunk's bytes sent from
//! the segment file with sendfile(2): old data reaches the socket without passing
//! through user space. Subscriptions are served one chunk each per round, and pending
//! frames go out between rounds, so a consumer catching up never holds confirms back.
//!
//! Over TLS (`ChunkSink` for a TLS stream's write half) a chunk is read into memory
//! and written through the encryption; over plain TCP it is sendfile(2)'d.
//!
//! Invariant: frames and subscriptions are read under one lock, so a subscription's
//! first chunk never overtakes its subscribe response.

use crate::broker::connections::ConnectionEntry;
use crate::broker::stream_clients::StreamConsumer;
use crate::protocol::stream::{Str, encode_deliver_prefix};
use crate::store::stream::{ChunkRef, StreamReader};
use bytes::BytesMut;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// One subscription, shared by the reader task (credit, unsubscribe) and the writer
/// (reading chunks).
pub(crate) struct Sub {
    pub id: u8,
    pub stream: Str,
    /// Used by the writer only; a mutex so that `Sub` can be shared.
    pub reader: Mutex<StreamReader>,
    /// Its registry entry: the credit (chunks the client still accepts) and the
    /// counters the management API shows, bumped once per chunk.
    pub stats: Arc<StreamConsumer>,
    /// Cancelled on unsubscribe: ends the task that watches the stream's commits.
    pub stop: CancellationToken,
}

/// How a transport's write half sends a chunk's bytes after its Deliver head.
pub(crate) trait ChunkSink: AsyncWrite + Unpin + Send {
    fn send_chunk(&mut self, chunk: &ChunkRef) -> impl Future<Output = io::Result<()>> + Send;
}

/// Plain TCP: sendfile(2) from the segment file.
impl ChunkSink for OwnedWriteHalf {
    async fn send_chunk(&mut self, chunk: &ChunkRef) -> io::Result<()> {
        send_file(self.as_ref(), &chunk.file, chunk.pos, chunk.len as usize).await
    }
}

/// TLS: read (pread) and written through the encryption.
impl<S: AsyncRead + AsyncWrite + Send> ChunkSink for WriteHalf<S> {
    async fn send_chunk(&mut self, chunk: &ChunkRef) -> io::Result<()> {
        let bytes = chunk.read()?;
        if bytes.len() != chunk.len as usize {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        self.write_all(&bytes).await
    }
}

#[derive(Default)]
pub(crate) struct OutState {
    /// Encoded frames not yet written.
    pub buf: BytesMut,
    pub subs: Vec<Arc<Sub>>,
    /// Write what is pending, then end.
    pub closing: bool,
}

/// What the reader task hands the writer.
#[derive(Default)]
pub(crate) struct Out {
    pub state: Mutex<OutState>,
    pub wake: Notify,
    /// Rung by the writer after each write: the reader, stopped on a full buffer,
    /// looks again.
    pub drained: Notify,
}

impl Out {
    /// Encoded bytes the writer has not taken yet.
    pub fn backlog(&self) -> usize {
        self.state.lock().unwrap().buf.len()
    }

    /// Encodes frames into the pending buffer and wakes the writer.
    pub fn push(&self, encode: impl FnOnce(&mut BytesMut)) {
        encode(&mut self.state.lock().unwrap().buf);
        self.wake.notify_one();
    }

    pub fn close(&self) {
        self.state.lock().unwrap().closing = true;
        self.wake.notify_one();
    }
}

pub(crate) async fn run<W: ChunkSink + 'static>(
    mut wr: W,
    out: Arc<Out>,
    stop: CancellationToken,
    entry: Arc<ConnectionEntry>,
) {
    if let Err(e) = write_loop(&mut wr, &out, &stop, &entry).await {
        tracing::debug!(error = %e, "stream connection: write failed");
        stop.cancel();
    }
    let _ = wr.shutdown().await;
}

async fn write_loop<W: ChunkSink>(
    wr: &mut W,
    out: &Out,
    stop: &CancellationToken,
    entry: &ConnectionEntry,
) -> io::Result<()> {
    let mut pending = BytesMut::new();
    let mut subs: Vec<Arc<Sub>> = Vec::new();
    let mut start = 0usize;
    let mut read_failed = false;
    loop {
        let closing = {
            let mut s = out.state.lock().unwrap();
            // Taken whole (a swap, no copy): the reader's backlog is what is left.
            if pending.is_empty() {
                std::mem::swap(&mut pending, &mut s.buf);
            } else {
                pending.extend_from_slice(&s.buf);
                s.buf.clear();
            }
            subs.clear();
            subs.extend(s.subs.iter().cloned());
            s.closing
        };
        let mut delivered = false;
        if !closing && !subs.is_empty() {
            start = (start + 1) % subs.len();
            for i in 0..subs.len() {
                let sub = &subs[(start + i) % subs.len()];
                if sub.stats.credit.load(Ordering::Acquire) == 0 || sub.stop.is_cancelled() {
                    continue;
                }
                let chunk = match sub.reader.lock().unwrap().next_chunk() {
                    Ok(Some(c)) => c,
                    Ok(None) => continue,
                    Err(e) => {
                        if !read_failed {
                            warn!(stream = %sub.stream, error = %e, "cannot read a stream chunk");
                            read_failed = true;
                        }
                        continue;
                    }
                };
                sub.stats.credit.fetch_sub(1, Ordering::AcqRel);
                sub.stats
                    .delivered(chunk.first_offset, chunk.num_entries.into());
                encode_deliver_prefix(&mut pending, sub.id, None, chunk.len);
                wr.write_all(&pending).await?;
                entry.traffic.sent(pending.len() + chunk.len as usize);
                pending.clear();
                out.drained.notify_one();
                wr.send_chunk(&chunk).await?;
                delivered = true;
            }
        }
        if !pending.is_empty() {
            wr.write_all(&pending).await?;
            entry.traffic.sent(pending.len());
            pending.clear();
            out.drained.notify_one();
        }
        wr.flush().await?;
        if closing {
            return Ok(());
        }
        if !delivered {
            tokio::select! {
                _ = out.wake.notified() => {}
                _ = stop.cancelled() => return Ok(()),
            }
        }
    }
}

/// Sends `len` bytes of `file` from `pos` with sendfile(2), waiting for the socket to be
/// writable whenever the kernel's buffer is full (EAGAIN).
async fn send_file(sock: &TcpStream, file: &std::fs::File, pos: u64, len: usize) -> io::Result<()> {
    let mut offset = pos as libc::off_t;
    let mut left = len;
    while left > 0 {
        sock.writable().await?;
        let r = sock.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the duration of the call (the socket
            // and the file are borrowed), and `offset` is a valid off_t the kernel updates.
            let n =
                unsafe { libc::sendfile(sock.as_raw_fd(), file.as_raw_fd(), &mut offset, left) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match r {
            // The file ended before the chunk did: the frame cannot be completed.
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => left -= n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
