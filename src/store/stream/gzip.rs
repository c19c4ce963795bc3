//! Gzip (RFC 1952) decoding of a compressed sub-entry batch, for AMQP 0-9-1 consumers.
//!
//! Stream-protocol clients decompress sub-entry batches themselves: the server stores and
//! delivers them as published. An AMQP 0-9-1 consumer cannot, so its reader inflates the
//! batches it can (gzip, compression type 1, the codec every stream client offers) into
//! their records. RabbitMQ 3.10 closes such a consumer's connection instead (541
//! INTERNAL_ERROR); see docs/STREAM-BEHAVIOUR.md.
//!
//! Input is untrusted (whatever a publisher sent): every field is bounds-checked, the
//! output is capped, and the trailer's CRC-32 and size must match, so a bad batch yields
//! None, never a panic or an unbounded allocation.

/// The stream protocol's compression type for gzip.
pub const GZIP: u8 = 1;

/// Largest batch inflated for an AMQP consumer (the batch's stated uncompressed length
/// must also fit): a bound on the memory one corrupt or hostile batch can take.
pub const MAX_INFLATED: usize = 64 << 20;

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

/// Inflates one gzip member of exactly `expected` uncompressed bytes (the sub-batch
/// header's UncompressedLength). None when it is not gzip, is damaged, or does not
/// inflate to exactly `expected` bytes (or `expected` is over [`MAX_INFLATED`]).
pub fn inflate(data: &[u8], expected: usize) -> Option<Vec<u8>> {
    if expected > MAX_INFLATED {
        return None;
    }
    let flags = match data {
        [0x1f, 0x8b, 8, flags, ..] => *flags,
        _ => return None,
    };
    // ID1 ID2 CM FLG, MTIME (4), XFL, OS.
    let mut at = 10usize;
    if flags & FEXTRA != 0 {
        let xlen = u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?) as usize;
        at = at.checked_add(2 + xlen)?;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let nul = data.get(at..)?.iter().position(|b| *b == 0)?;
            at += nul + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    // The trailer: CRC-32 and ISIZE (the size mod 2^32), little-endian.
    let body_end = data.len().checked_sub(8)?;
    let deflate = data.get(at..body_end)?;
    let trailer = &data[body_end..];
    let out = miniz_oxide::inflate::decompress_to_vec_with_limit(deflate, expected).ok()?;
    let crc = u32::from_le_bytes(trailer[..4].try_into().ok()?);
    let size = u32::from_le_bytes(trailer[4..].try_into().ok()?);
    (out.len() == expected && size == expected as u32 && crc32fast::hash(&out) == crc)
        .then_some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A gzip member of `data` (what rstream's `gzip.compress` and Java's
    /// `GZIPOutputStream` write: no optional fields), for tests.
    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        out.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
        out.extend(crc32fast::hash(data).to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out
    }

    #[test]
    fn round_trip_and_refusals() {
        let data = b"hello hello hello hello".repeat(10);
        let z = gzip(&data);
        assert_eq!(inflate(&z, data.len()).as_deref(), Some(&data[..]));
        // Wrong stated length, corrupt CRC, truncated, not gzip, over the cap.
        assert_eq!(inflate(&z, data.len() - 1), None);
        assert_eq!(inflate(&z, data.len() + 1), None);
        let mut bad = z.clone();
        let n = bad.len();
        bad[n - 8] ^= 1;
        assert_eq!(inflate(&bad, data.len()), None);
        assert_eq!(inflate(&z[..z.len() - 3], data.len()), None);
        assert_eq!(inflate(b"plain text, not gzip", 4), None);
        assert_eq!(inflate(&z, MAX_INFLATED + 1), None);
        // Optional header fields (FEXTRA, FNAME, FCOMMENT, FHCRC) are skipped.
        let mut full = vec![
            0x1f,
            0x8b,
            8,
            FEXTRA | FNAME | FCOMMENT | FHCRC,
            0,
            0,
            0,
            0,
            0,
            3,
        ];
        full.extend([2, 0, b'x', b'y']);
        full.extend(b"name\0comment\0");
        full.extend([0, 0]);
        full.extend(&z[10..]);
        assert_eq!(inflate(&full, data.len()).as_deref(), Some(&data[..]));
    }
}
