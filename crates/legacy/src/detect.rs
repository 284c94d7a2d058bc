//! Telling a vidcast stream from the original client's by its first bytes.

use vidcast_proto::MAGIC;

use crate::opcode;

/// Bytes [`detect`] needs at most to decide.
pub const DETECT_MAX_BYTES: usize = 10;

/// What a connection's first bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detection {
    /// The bytes so far match vidcast's magic and can no longer be a legacy stream: hand the
    /// connection to `vidcast_proto`, whose decoder checks the rest of the magic.
    Vidcast,
    /// An 8-byte little-endian length below 4 GiB followed by `PROTO 2..=5`: the original
    /// Python client. Hand the connection to [`crate::LegacyDecoder`].
    Legacy,
    /// Both are still possible (or one is and needs more bytes to be sure); read more.
    NeedMore,
    /// Neither: the first bytes fit no stream this side reads (an HTTP request, TLS, ...).
    Neither,
}

/// Classifies a connection from its first bytes, deciding as early as possible.
///
/// The rule, byte by byte:
/// - vidcast is possible while the bytes equal a prefix of the magic `\x89VCAST\r\n`;
/// - legacy is possible while bytes 4–7 are zero (the length prefix is below 4 GiB, as every
///   frame under any limit is), byte 8 is `0x80` (PROTO) and byte 9 is 2, 3, 4 or 5;
/// - `Vidcast` as soon as only vidcast is possible (at byte 4 at the latest: the magic's `S`
///   is not zero); `Legacy` only once all 10 bytes fit, because a length is arbitrary binary;
///   `Neither` as soon as neither is possible.
///
/// Call it again with more bytes after `NeedMore`; it never needs more than
/// [`DETECT_MAX_BYTES`]. Only the bytes are inspected; nothing is consumed.
pub fn detect(first_bytes: &[u8]) -> Detection {
    let seen = &first_bytes[..first_bytes.len().min(DETECT_MAX_BYTES)];
    let n = seen.len().min(MAGIC.len());
    let vidcast = seen[..n] == MAGIC[..n];
    let legacy = seen.iter().enumerate().all(|(i, &b)| match i {
        4..=7 => b == 0,
        8 => b == opcode::PROTO,
        9 => (2..=5).contains(&b),
        _ => true,
    });
    match (vidcast, legacy) {
        (true, false) => Detection::Vidcast,
        (false, true) if seen.len() == DETECT_MAX_BYTES => Detection::Legacy,
        (false, false) => Detection::Neither,
        _ => Detection::NeedMore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vidcast_is_decided_by_the_fifth_byte() {
        assert_eq!(detect(b""), Detection::NeedMore);
        assert_eq!(detect(b"\x89VCA"), Detection::NeedMore);
        assert_eq!(detect(b"\x89VCAS"), Detection::Vidcast);
        assert_eq!(detect(&MAGIC), Detection::Vidcast);
        assert_eq!(detect(b"\x89VCAST\r\n\x01\x00\x00"), Detection::Vidcast);
    }

    #[test]
    fn legacy_needs_length_and_proto() {
        let mut b = vec![0x9f, 0x86, 0x01, 0, 0, 0, 0, 0, 0x80, 0x04];
        for n in 0..b.len() {
            assert_eq!(detect(&b[..n]), Detection::NeedMore, "{n} bytes");
        }
        assert_eq!(detect(&b), Detection::Legacy);
        // A length whose low byte happens to be the magic's first byte.
        b[0] = 0x89;
        assert_eq!(detect(&b), Detection::Legacy);
        b[9] = 6;
        assert_eq!(detect(&b), Detection::Neither);
        b[9] = 1;
        assert_eq!(detect(&b), Detection::Neither);
    }

    #[test]
    fn neither_is_decided_early() {
        assert_eq!(detect(b"GET /"), Detection::Neither);
        assert_eq!(detect(b"GET / HTTP/1.1\r\n"), Detection::Neither);
        assert_eq!(
            detect(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]),
            Detection::Neither
        );
        // A length of 4 GiB or more.
        assert_eq!(detect(&[0, 0, 0, 0, 1]), Detection::Neither);
        // Not a pickle after the length.
        assert_eq!(detect(&[10, 0, 0, 0, 0, 0, 0, 0, b'(']), Detection::Neither);
    }
}
