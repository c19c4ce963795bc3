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
//! Invariant: frames and subscriptions are read under one lock, so a subscription's
//! first chunk never overtakes its subscribe response.

use crate::protocol::stream::{Str, encode_deliver_prefix};
use crate::store::stream::StreamReader;
use bytes::BytesMut;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncWriteExt, Interest};
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
    /// Chunks the client still accepts.
    pub credit: AtomicU32,
    /// Cancelled on unsubscribe: ends the task that watches the stream's commits.
    pub stop: CancellationToken,
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
}

impl Out {
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

pub(crate) async fn run(mut wr: OwnedWriteHalf, out: Arc<Out>, stop: CancellationToken) {
    if let Err(e) = write_loop(&mut wr, &out, &stop).await {
        tracing::debug!(error = %e, "stream connection: write failed");
        stop.cancel();
    }
    let _ = wr.shutdown().await;
}

async fn write_loop(
    wr: &mut OwnedWriteHalf,
    out: &Out,
    stop: &CancellationToken,
) -> io::Result<()> {
    let mut pending = BytesMut::new();
    let mut subs: Vec<Arc<Sub>> = Vec::new();
    let mut start = 0usize;
    let mut read_failed = false;
    loop {
        let closing = {
            let mut s = out.state.lock().unwrap();
            pending.extend_from_slice(&s.buf);
            s.buf.clear();
            subs.clear();
            subs.extend(s.subs.iter().cloned());
            s.closing
        };
        let mut delivered = false;
        if !closing && !subs.is_empty() {
            start = (start + 1) % subs.len();
            for i in 0..subs.len() {
                let sub = &subs[(start + i) % subs.len()];
                if sub.credit.load(Ordering::Acquire) == 0 || sub.stop.is_cancelled() {
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
                sub.credit.fetch_sub(1, Ordering::AcqRel);
                encode_deliver_prefix(&mut pending, sub.id, None, chunk.len);
                wr.write_all(&pending).await?;
                pending.clear();
                send_file(wr.as_ref(), &chunk.file, chunk.pos, chunk.len as usize).await?;
                delivered = true;
            }
        }
        if !pending.is_empty() {
            wr.write_all(&pending).await?;
            pending.clear();
        }
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
