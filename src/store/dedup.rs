//! Deduplication caches on disk: the entries of an `x-message-deduplication` exchange
//! declared durable with `x-cache-persistence: disk` (the rabbitmq-message-deduplication
//! plugin keeps such a cache in a Mnesia `disc_copies` table, which survives a restart).
//!
//! One file per exchange, `dedup/{id:016x}.cache`, the id a hash of the vhost and the
//! exchange's name (the header names both, so a file is never taken for another's):
//!
//! ```text
//! header: u32 length | u32 crc32 | "WDC1" | shortstr vhost | shortstr exchange
//! entry:  u128 value's identity | u64 expiry (unix ms, 0: never) | u32 crc32 of the 24 octets
//! ```
//!
//! Entries are appended in insertion order, so replaying a file through the cache's own
//! insertion rule (the oldest entry makes room when it is full) gives back the cache as it
//! was. The file stays bounded as the cache is: once it holds `x-cache-size` + 1024
//! entries more than at its last rewrite, the cache hands the writer a snapshot of its
//! live entries, which replaces the file (written to a temporary file, synced, renamed).
//! An entry is written by the store's writer thread with the batch it arrived in (so it
//! reaches the OS within milliseconds and survives `kill -9`, as the plugin's Mnesia log
//! does); a confirm that waits for a later ticket (a persistent message routed to a
//! durable queue) waits for it too.

use super::record;
use bytes::{BufMut, Bytes};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use tracing::warn;

pub const DEDUP_DIR: &str = "dedup";
const MAGIC: &[u8; 4] = b"WDC1";
const ENTRY_LEN: usize = 28;

/// A cache's entries in insertion order: (value's identity, expiry in unix ms, 0: never).
pub type Entries = Vec<(u128, u64)>;

/// The id of an exchange's cache file: a 64-bit FNV-1a of its vhost and name.
pub fn file_id(vhost: &str, exchange: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in vhost.bytes().chain([0u8]).chain(exchange.iter().copied()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub fn path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.cache"))
}

fn put_header(buf: &mut Vec<u8>, vhost: &str, exchange: &[u8]) {
    let start = buf.len();
    buf.put_u64(0);
    buf.put_slice(MAGIC);
    for s in [vhost.as_bytes(), exchange] {
        let s = &s[..s.len().min(255)];
        buf.put_u8(s.len() as u8);
        buf.put_slice(s);
    }
    record::seal(buf, start);
}

pub fn put_entry(buf: &mut Vec<u8>, key: u128, expiry: u64) {
    let start = buf.len();
    buf.put_u128(key);
    buf.put_u64(expiry);
    let crc = crc32fast::hash(&buf[start..]);
    buf.put_u32(crc);
}

/// A cache file read back: whose it is and its entries in order, up to the first torn or
/// corrupt one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheFile {
    pub vhost: String,
    pub exchange: Vec<u8>,
    pub entries: Vec<(u128, u64)>,
}

/// Parses a cache file; None when its header is not whole (nothing in it can be trusted).
pub fn parse(data: Bytes) -> Option<CacheFile> {
    let header = record::checked(&data, 0)?;
    let rest = header.strip_prefix(MAGIC)?;
    let (vhost, rest) = short(rest)?;
    let (exchange, _) = short(rest)?;
    let mut out = CacheFile {
        vhost: String::from_utf8_lossy(vhost).into_owned(),
        exchange: exchange.to_vec(),
        entries: Vec::new(),
    };
    let mut at = 8 + header.len();
    while let Some(e) = data.get(at..at + ENTRY_LEN) {
        let crc = u32::from_be_bytes(e[24..28].try_into().unwrap());
        if crc32fast::hash(&e[..24]) != crc {
            break;
        }
        let key = u128::from_be_bytes(e[..16].try_into().unwrap());
        let expiry = u64::from_be_bytes(e[16..24].try_into().unwrap());
        out.entries.push((key, expiry));
        at += ENTRY_LEN;
    }
    Some(out)
}

fn short(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = *b.first()? as usize;
    let s = b.get(1..1 + n)?;
    Some((s, &b[1 + n..]))
}

/// Reads every cache file under `dir`: (file id, contents). Unreadable ones are removed.
pub fn recover(dir: &Path) -> Vec<(u64, CacheFile)> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(id) = name
            .strip_suffix(".cache")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        else {
            // A rewrite's temporary file that never got renamed.
            let _ = fs::remove_file(entry.path());
            continue;
        };
        match fs::read(entry.path()).ok().map(Bytes::from).and_then(parse) {
            Some(f) => out.push((id, f)),
            None => {
                warn!(path = %entry.path().display(), "unreadable deduplication cache; removed");
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    out
}

/// One cache file as the writer thread holds it.
#[derive(Debug)]
pub struct CacheWriter {
    path: PathBuf,
    file: Option<File>,
    /// Entries not yet written.
    buf: Vec<u8>,
}

impl CacheWriter {
    /// Replaces the file with a header and `entries` (a new exchange's empty cache, a
    /// recovered one, or a compaction): written beside it, synced, renamed over it.
    pub fn rewrite(
        dir: &Path,
        id: u64,
        vhost: &str,
        exchange: &[u8],
        entries: &[(u128, u64)],
        sync: bool,
    ) -> io::Result<CacheWriter> {
        fs::create_dir_all(dir)?;
        let path = path(dir, id);
        let tmp = dir.join(format!("{id:016x}.tmp"));
        let mut buf = Vec::with_capacity(64 + entries.len() * ENTRY_LEN);
        put_header(&mut buf, vhost, exchange);
        for &(k, e) in entries {
            put_entry(&mut buf, k, e);
        }
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        if sync {
            f.sync_data()?;
        }
        fs::rename(&tmp, &path)?;
        super::log::sync_dir(dir);
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(CacheWriter {
            path,
            file: Some(file),
            buf: Vec::new(),
        })
    }

    pub fn append(&mut self, key: u128, expiry: u64) {
        put_entry(&mut self.buf, key, expiry);
    }

    /// Writes what is buffered (synced with `sync`); whether there was anything.
    pub fn flush(&mut self, sync: bool) -> io::Result<bool> {
        if self.buf.is_empty() {
            return Ok(false);
        }
        if let Some(f) = &mut self.file {
            f.write_all(&self.buf)?;
            if sync {
                f.sync_data()?;
            }
        }
        self.buf.clear();
        Ok(sync)
    }

    pub fn delete(mut self) {
        self.file = None;
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_reads_back_to_its_last_whole_entry() {
        let mut buf = Vec::new();
        put_header(&mut buf, "/", b"ex");
        put_entry(&mut buf, 1, 0);
        put_entry(&mut buf, u128::MAX, 42);
        put_entry(&mut buf, 3, 7);
        buf.truncate(buf.len() - 5); // a torn last entry
        let f = parse(Bytes::from(buf.clone())).unwrap();
        assert_eq!(f.vhost, "/");
        assert_eq!(f.exchange, b"ex");
        assert_eq!(f.entries, vec![(1, 0), (u128::MAX, 42)]);
        buf[10] ^= 1; // a corrupt header: nothing is trusted
        assert!(parse(Bytes::from(buf)).is_none());
        assert!(parse(Bytes::from_static(b"short")).is_none());
    }

    #[test]
    fn ids_differ_by_vhost_and_name() {
        assert_ne!(file_id("/", b"a"), file_id("/a", b""));
        assert_eq!(file_id("v", b"x"), file_id("v", b"x"));
    }
}
