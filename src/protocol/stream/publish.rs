//! Publish (v1 and v2): one frame carries many (publishing id, message) pairs. The frame is
//! checked whole when it is decoded, then its messages are handed out one by one as
//! slices of the frame: decoding a publish of a thousand messages allocates nothing.

use super::wire::{Reader, Res, Str, put_str};
use bytes::{BufMut, Bytes, BytesMut};

/// One osiris entry as a publisher sends it (and as a chunk stores it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `0b0` + 31-bit size + one AMQP 1.0 encoded message.
    Simple(Bytes),
    /// `0b1` + compression (3 bits) + 4 unused bits, record count, uncompressed size,
    /// data size, data: a sub-entry batch (the client's "sub-entry batching").
    SubBatch {
        compression: u8,
        count: u16,
        uncompressed_size: u32,
        data: Bytes,
    },
}

impl Entry {
    /// Reads an entry header and its data.
    pub(crate) fn read(r: &mut Reader) -> Res<Entry> {
        let head = r.u32()?;
        if head & 0x8000_0000 == 0 {
            return Ok(Entry::Simple(r.slice(head as usize)?));
        }
        let compression = ((head >> 28) & 0x7) as u8;
        let count = ((head >> 8) & 0xffff) as u16;
        // The header's fourth octet is the first of the uncompressed size.
        let uncompressed_size = ((head & 0xff) << 24) | (r.u16()? as u32) << 8 | r.u8()? as u32;
        let size = r.u32()?;
        Ok(Entry::SubBatch {
            compression,
            count,
            uncompressed_size,
            data: r.slice(size as usize)?,
        })
    }

    pub(crate) fn write(&self, buf: &mut BytesMut) {
        match self {
            Entry::Simple(m) => {
                buf.put_u32((m.len() as u32) & 0x7fff_ffff);
                buf.put_slice(m);
            }
            Entry::SubBatch {
                compression,
                count,
                uncompressed_size,
                data,
            } => {
                buf.put_u8(0x80 | (compression & 0x7) << 4);
                buf.put_u16(*count);
                buf.put_u32(*uncompressed_size);
                buf.put_u32(data.len() as u32);
                buf.put_slice(data);
            }
        }
    }
}

/// One message of a publish frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedMessage {
    pub publishing_id: u64,
    /// Version 2 only: the message's filter value (None when null).
    pub filter_value: Option<Str>,
    pub entry: Entry,
}

/// A decoded publish frame.
///
/// Invariant: `body` holds exactly `count` well-formed messages of `version`'s layout
/// (checked by [`Publish::decode`] or built by [`Publish::new`]), so [`Publish::messages`]
/// never meets a malformed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub publisher_id: u8,
    /// 1 (no filter values) or 2 (a filter value per message).
    pub version: u16,
    count: u32,
    body: Bytes,
}

impl Publish {
    /// Checks the messages (after PublisherId and the count) and keeps them as one slice.
    pub(crate) fn decode(mut r: Reader, version: u16) -> Res<Publish> {
        let publisher_id = r.u8()?;
        let count = r.u32()?;
        let body = r.rest();
        let mut check = Reader::new(body.clone(), 0, super::codes::key::PUBLISH);
        for _ in 0..count {
            read_message(&mut check, version)?;
        }
        let publish = Publish {
            publisher_id,
            version,
            count,
            body,
        };
        check.finish(publish)
    }

    /// Builds a publish frame's content from messages (a client's side; tests).
    pub fn new(publisher_id: u8, version: u16, messages: &[PublishedMessage]) -> Publish {
        let mut body = BytesMut::new();
        for m in messages {
            body.put_u64(m.publishing_id);
            if version >= 2 {
                match &m.filter_value {
                    Some(f) => put_str(&mut body, f.as_bytes()),
                    None => body.put_i16(-1),
                }
            }
            m.entry.write(&mut body);
        }
        Publish {
            publisher_id,
            version: version.clamp(1, 2),
            count: messages.len() as u32,
            body: body.freeze(),
        }
    }

    /// How many messages the frame carries.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The messages, in frame order, as slices of the frame.
    pub fn messages(&self) -> Messages {
        Messages {
            reader: Reader::new(self.body.clone(), 0, super::codes::key::PUBLISH),
            version: self.version,
            left: self.count,
        }
    }

    pub(crate) fn write(&self, buf: &mut BytesMut) {
        buf.put_u8(self.publisher_id);
        buf.put_u32(self.count);
        buf.put_slice(&self.body);
    }
}

fn read_message(r: &mut Reader, version: u16) -> Res<PublishedMessage> {
    let publishing_id = r.u64()?;
    let filter_value = if version >= 2 {
        // -1 is null (no filter value); the Erlang reader matches it before the string.
        match r.u16()? as i16 {
            -1 => None,
            n if n < 0 => return Err(r.malformed("negative filter value length")),
            n => Some(Str(r.slice(n as usize)?)),
        }
    } else {
        None
    };
    Ok(PublishedMessage {
        publishing_id,
        filter_value,
        entry: Entry::read(r)?,
    })
}

/// Iterator over a [`Publish`]'s messages.
pub struct Messages {
    reader: Reader,
    version: u16,
    left: u32,
}

impl Iterator for Messages {
    type Item = PublishedMessage;

    fn next(&mut self) -> Option<PublishedMessage> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Checked at decode; `ok()` keeps a broken invariant from panicking.
        read_message(&mut self.reader, self.version).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left as usize))
    }
}
