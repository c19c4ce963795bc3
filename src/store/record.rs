//! On-disk record formats, each protected by a CRC-32 so that a torn or corrupt tail (a
//! crash mid-write) is detected and cut off rather than served.
//!
//! Message record (segment files, `*.seg`):
//!
//! ```text
//! u32 length of what follows the crc | u32 crc32 of it
//! u8 flags (bit 0: persistent, bit 1: a target follows) | u64 seq | u64 expires (unix ms,
//! 0: never; a delayed message's due time)
//! [with bit 1: shortstr vhost | shortstr exchange that routes it when due] | shortstr exchange | shortstr routing key | u32 + properties (wire octets)
//! u16 count + longstr BCC keys | body (the rest)
//! ```
//!
//! Mark record (acknowledgement files, `*.ack`), fixed size:
//!
//! ```text
//! u8 kind | u64 seq | u32 crc32 of the first 9 octets
//! kind: 1 acknowledged, 2 delivered, 3 returned, 4 + reason discarded (waiting for its
//!       dead-letter target), 8 discarded for good
//! ```
//!
//! A quorum queue's command log (`*.qlog`, see `store::qlog`) interleaves both, and
//! snapshots, in the order the queue issued them.

use crate::broker::message::Message;
use crate::protocol::{EncodedProperties, LongStr, ShortStr};
use bytes::{Buf, BufMut, Bytes};

pub const FLAG_PERSISTENT: u8 = 1;
/// The record names its vhost and the exchange that routes it (delayed messages: one
/// schedule serves every vhost, and the exchange published to may be another one).
pub const FLAG_TARGET: u8 = 2;
pub const MARK_ACK: u8 = 1;
pub const MARK_DELIVERED: u8 = 2;
/// Given back unsettled (a quorum queue's return: its delivery count goes up).
pub const MARK_RETURNED: u8 = 3;
/// Discarded by a quorum queue that dead-letters at least once, and not yet taken by its
/// dead-letter target (rabbit_fifo's discards): the kind is this plus the reason's code
/// (`DeathReason::code`, 0..=3). Recovery brings the message back among the discards, not
/// the ready messages; the [`MARK_DISCARD`] that follows once a target has it ends it. In
/// a quorum queue's command log this is the `DeadLettering` command.
pub const MARK_DISCARDED: u8 = 4;
/// The highest discarded kind (`MARK_DISCARDED` + the last reason code).
pub const MARK_DISCARDED_LAST: u8 = MARK_DISCARDED + 3;
/// Gone for good by dropping or dead-lettering (a quorum queue's `Discard`, which also
/// ends a [`MARK_DISCARDED`] once its target has the copy); a classic log reads it as
/// acknowledged. 8, not 4: the discarded kinds 4..=7 were on disk first.
pub const MARK_DISCARD: u8 = 8;
pub const MARK_LEN: usize = 13;
/// Octets before the body that a message record needs besides its strings and properties.
const FIXED: usize = 4 + 4 + 1 + 8 + 8 + 1 + 1 + 4 + 2;

/// Appends one message record to `buf`; returns its length.
pub fn put_message(
    buf: &mut Vec<u8>,
    seq: u64,
    persistent: bool,
    expires: u64,
    m: &Message,
) -> usize {
    put_message_in(buf, seq, persistent, expires, None, m)
}

/// [`put_message`] with the vhost and exchange that route the message (delayed messages).
pub fn put_message_in(
    buf: &mut Vec<u8>,
    seq: u64,
    persistent: bool,
    expires: u64,
    target: Option<(&ShortStr, &ShortStr)>,
    m: &Message,
) -> usize {
    let start = buf.len();
    let props = m.properties.as_bytes();
    let bcc_len: usize = m.bcc.iter().map(|k| 4 + k.0.len()).sum();
    let vhost_len = target.map_or(0, |(v, e)| 2 + v.len() + e.len());
    let len = FIXED
        + vhost_len
        + m.exchange.len()
        + m.routing_key.len()
        + props.len()
        + bcc_len
        + m.body.len();
    buf.reserve(len);
    buf.put_u64(0); // length and crc: sealed below
    let flags = if persistent { FLAG_PERSISTENT } else { 0 };
    buf.put_u8(flags | if target.is_some() { FLAG_TARGET } else { 0 });
    buf.put_u64(seq);
    buf.put_u64(expires);
    if let Some((v, e)) = target {
        put_short(buf, v);
        put_short(buf, e);
    }
    put_short(buf, &m.exchange);
    put_short(buf, &m.routing_key);
    buf.put_u32(props.len() as u32);
    buf.put_slice(props);
    buf.put_u16(m.bcc.len() as u16);
    for k in &m.bcc {
        buf.put_u32(k.0.len() as u32);
        buf.put_slice(&k.0);
    }
    buf.put_slice(&m.body);
    seal(buf, start);
    buf.len() - start
}

fn put_short(buf: &mut Vec<u8>, s: &ShortStr) {
    let b = &s.0[..s.0.len().min(255)];
    buf.put_u8(b.len() as u8);
    buf.put_slice(b);
}

/// A message record read back.
#[derive(Debug)]
pub struct StoredMessage {
    pub seq: u64,
    pub persistent: bool,
    pub expires: u64,
    /// The vhost and exchange, for records that name them (delayed messages).
    pub target: Option<(ShortStr, ShortStr)>,
    pub message: Message,
    /// Octets the record takes in its file.
    pub len: usize,
}

/// Reads the record at the start of `data` (a slice of `src`; strings and the body become
/// views of `src`). `None` when the record is incomplete or its checksum fails: the log
/// ends there.
pub fn read_message(src: &Bytes, offset: usize) -> Option<StoredMessage> {
    let mut b = checked(src, offset)?;
    let len = b.len();
    let short = |b: &mut Bytes| -> Option<ShortStr> {
        let n = *b.first()? as usize;
        if b.len() < 1 + n {
            return None;
        }
        b.advance(1);
        Some(ShortStr(b.split_to(n)))
    };
    if b.len() < 17 {
        return None;
    }
    let flags = b.get_u8();
    let seq = b.get_u64();
    let expires = b.get_u64();
    let target = if flags & FLAG_TARGET != 0 {
        Some((short(&mut b)?, short(&mut b)?))
    } else {
        None
    };
    let exchange = short(&mut b)?;
    let routing_key = short(&mut b)?;
    if b.len() < 4 {
        return None;
    }
    let plen = b.get_u32() as usize;
    if b.len() < plen + 2 {
        return None;
    }
    let properties = EncodedProperties::from_wire(b.split_to(plen)).ok()?;
    let n = b.get_u16();
    let mut bcc = Vec::with_capacity(n as usize);
    for _ in 0..n {
        if b.len() < 4 {
            return None;
        }
        let l = b.get_u32() as usize;
        if b.len() < l {
            return None;
        }
        bcc.push(LongStr(b.split_to(l)));
    }
    Some(StoredMessage {
        seq,
        persistent: flags & FLAG_PERSISTENT != 0,
        expires,
        target,
        message: Message {
            exchange,
            routing_key,
            properties,
            body: b,
            bcc,
        },
        len: 8 + len,
    })
}

/// The payload of the length-and-CRC framed record at `offset` (every record kind but the
/// fixed-size marks uses this frame), if it is whole and its checksum matches.
pub fn checked(src: &Bytes, offset: usize) -> Option<Bytes> {
    let data = src.get(offset..)?;
    if data.len() < 8 {
        return None;
    }
    let len = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
    let crc = u32::from_be_bytes(data[4..8].try_into().unwrap());
    let body = data.get(8..8 + len)?;
    (crc32fast::hash(body) == crc).then(|| src.slice(offset + 8..offset + 8 + len))
}

/// Fills in the length and CRC of the record that starts at `start` (8 octets reserved
/// there) and runs to the end of `buf`.
pub fn seal(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start - 8) as u32;
    let crc = crc32fast::hash(&buf[start + 8..]);
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

pub fn put_mark(buf: &mut Vec<u8>, kind: u8, seq: u64) {
    let start = buf.len();
    buf.put_u8(kind);
    buf.put_u64(seq);
    let crc = crc32fast::hash(&buf[start..]);
    buf.put_u32(crc);
}

/// Reads mark records until the first torn or corrupt one; returns them and the length of
/// the valid prefix.
pub fn read_marks(data: &[u8]) -> (Vec<(u8, u64)>, usize) {
    let mut out = Vec::with_capacity(data.len() / MARK_LEN);
    let mut at = 0;
    while let Some(r) = data.get(at..at + MARK_LEN) {
        let crc = u32::from_be_bytes(r[9..13].try_into().unwrap());
        if crc32fast::hash(&r[..9]) != crc {
            break;
        }
        out.push((r[0], u64::from_be_bytes(r[1..9].try_into().unwrap())));
        at += MARK_LEN;
    }
    (out, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{BasicProperties, EncodedProperties};

    #[test]
    fn message_round_trip_and_torn_tail() {
        let m = Message {
            exchange: ShortStr::from("ex"),
            routing_key: ShortStr::from("rk"),
            properties: EncodedProperties::encode(&BasicProperties {
                delivery_mode: Some(2),
                ..Default::default()
            }),
            body: Bytes::from_static(b"hello"),
            bcc: vec![LongStr(Bytes::from_static(b"k"))],
        };
        let mut buf = Vec::new();
        let n = put_message(&mut buf, 7, true, 0, &m);
        put_message(&mut buf, 8, false, 99, &m);
        let src = Bytes::from(buf.clone());
        let r = read_message(&src, 0).unwrap();
        assert_eq!((r.seq, r.persistent, r.len), (7, true, n));
        assert_eq!(r.message.body, m.body);
        assert_eq!(r.message.bcc, m.bcc);
        assert_eq!(r.message.properties.delivery_mode(), Some(2));
        let r2 = read_message(&src, n).unwrap();
        assert_eq!((r2.seq, r2.persistent, r2.expires), (8, false, 99));
        // A torn second record is not read; a flipped bit is caught by the checksum.
        let torn = Bytes::from(buf[..buf.len() - 1].to_vec());
        assert!(read_message(&torn, n).is_none());
        let mut bad = buf.clone();
        bad[n - 1] ^= 1;
        assert!(read_message(&Bytes::from(bad), 0).is_none());
    }

    #[test]
    fn a_record_may_name_its_target() {
        let m = Message {
            exchange: ShortStr::from("delayed"),
            routing_key: ShortStr::from("rk"),
            properties: EncodedProperties::default(),
            body: Bytes::from_static(b"later"),
            bcc: Vec::new(),
        };
        let mut buf = Vec::new();
        let vhost = ShortStr::from("/");
        let ex = ShortStr::from("later");
        let n = put_message_in(&mut buf, 3, true, 1234, Some((&vhost, &ex)), &m);
        let r = read_message(&Bytes::from(buf), 0).unwrap();
        assert_eq!((r.seq, r.expires, r.len), (3, 1234, n));
        assert_eq!(r.target, Some((vhost, ex)));
        assert_eq!(r.message.exchange, m.exchange);
        assert_eq!(r.message.body, m.body);
    }

    #[test]
    fn marks_stop_at_a_torn_record() {
        let mut buf = Vec::new();
        put_mark(&mut buf, MARK_ACK, 1);
        put_mark(&mut buf, MARK_DELIVERED, 2);
        buf.extend_from_slice(&[1, 2, 3]);
        let (marks, valid) = read_marks(&buf);
        assert_eq!(marks, vec![(MARK_ACK, 1), (MARK_DELIVERED, 2)]);
        assert_eq!(valid, 2 * MARK_LEN);
    }
}
