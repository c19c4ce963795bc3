//! How much a connection's reader asks the socket for: adaptive, so that a busy publisher
//! is read in large chunks and an idle connection keeps a small buffer.
//!
//! Why: the read buffer is handed out in pieces (`split_to(..).freeze()`: message bodies
//! keep a reference to it), so a fresh one is allocated whenever it runs out, at the size
//! it was first made (4 KiB). The frame codec reserves exactly what an incomplete frame
//! lacks. With 16 KiB bodies that made two reads per message (4 096 octets, then the
//! rest of the body frame) and never more than one message per read: every `recvfrom`
//! paying its fixed cost (socket lock, an ACK or window update, a task wake-up) for a
//! fraction of a message. Reading more when the last read filled all the room it had
//! takes the messages queued behind in the same call.
//!
//! Invariant: the hint stays within [`READ_MIN`, `READ_MAX`]; it only grows after a read
//! that filled the whole room it was given (the socket may hold more), and shrinks after
//! reads that used less than a quarter of it.

use bytes::BytesMut;

/// The smallest room a read is given (the buffer's first size).
pub const READ_MIN: usize = 4 << 10;

/// The largest: a message shares its read buffer, so this bounds the memory a single
/// queued message can keep alive beyond its own octets.
pub const READ_MAX: usize = 64 << 10;

#[derive(Debug)]
pub struct ReadSize {
    hint: usize,
    room: usize,
}

impl Default for ReadSize {
    fn default() -> Self {
        Self {
            hint: READ_MIN,
            room: 0,
        }
    }
}

impl ReadSize {
    /// Makes room in `buf` for the next read: at least the hint.
    pub fn prepare(&mut self, buf: &mut BytesMut) {
        if buf.capacity() - buf.len() < self.hint {
            buf.reserve(self.hint);
        }
        self.room = buf.capacity() - buf.len();
    }

    /// Adjusts the hint after a read of `n` octets into the room [`prepare`](Self::prepare) made.
    pub fn read(&mut self, n: usize) {
        if n >= self.room {
            self.hint = (self.hint * 2).min(READ_MAX);
        } else if n < self.hint / 4 {
            self.hint = (self.hint / 2).max(READ_MIN);
        }
    }

    #[cfg(test)]
    pub fn hint(&self) -> usize {
        self.hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Full reads grow the room up to READ_MAX, short ones shrink it back to READ_MIN.
    #[test]
    fn grows_on_full_reads_and_shrinks_on_short_ones() {
        let mut r = ReadSize::default();
        let mut buf = BytesMut::new();
        for _ in 0..10 {
            r.prepare(&mut buf);
            let room = buf.capacity() - buf.len();
            assert!(room >= r.hint());
            r.read(room);
            // What was read is handed out (as the codec does), leaving no room.
            buf.resize(buf.capacity(), 0);
            let _ = buf.split().freeze();
        }
        assert_eq!(r.hint(), READ_MAX);
        for _ in 0..10 {
            r.prepare(&mut buf);
            r.read(10);
        }
        assert_eq!(r.hint(), READ_MIN);
    }
}
