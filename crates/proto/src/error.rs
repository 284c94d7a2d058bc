//! Errors a peer's bytes can cause. Each names the byte offset in the stream (counted from the
//! first byte the peer sent) so the message can be found in a capture.

use thiserror::Error;

/// Why a peer's byte stream was refused. The connection closes; no other connection notices.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// The first bytes were not the vidcast magic (`\x89VCAST\r\n`).
    #[error("not a vidcast peer: first bytes {found:02x?} are not the vidcast magic")]
    BadMagic {
        /// The bytes received, up to and including the first one that differs.
        found: Vec<u8>,
    },
    /// The peer speaks a protocol version this side does not.
    #[error(
        "unsupported protocol version {version} at byte {offset} (this side speaks {supported})"
    )]
    UnsupportedVersion {
        /// Stream offset of the message.
        offset: u64,
        /// Version the peer asked for.
        version: u16,
        /// Version this side speaks.
        supported: u16,
    },
    /// A message kind this side does not know and may not skip.
    #[error("unknown message kind 0x{kind:02x} at byte {offset}")]
    UnknownKind {
        /// Stream offset of the message.
        offset: u64,
        /// The kind byte.
        kind: u8,
    },
    /// A length above the limit for its kind; refused before anything is allocated.
    #[error("{}", too_large_text(*kind, *offset, *len, *max))]
    TooLarge {
        /// Stream offset of the message.
        offset: u64,
        /// The kind byte.
        kind: u8,
        /// Declared payload length.
        len: u32,
        /// The limit for this kind.
        max: u32,
    },
    /// A payload that does not parse.
    #[error("malformed message kind 0x{kind:02x} at byte {offset}: {what}")]
    Malformed {
        /// Stream offset of the message.
        offset: u64,
        /// The kind byte.
        kind: u8,
        /// What is wrong with it.
        what: &'static str,
    },
    /// More pings in one second than any live peer sends (it pings once per heartbeat): a
    /// flood that would cost this side a pong each.
    #[error("ping flood: more than {max} pings within a second, at byte {offset}")]
    PingFlood {
        /// Stream offset of the ping that went over.
        offset: u64,
        /// Pings allowed per second.
        max: u32,
    },
    /// A well-formed message that may not come now (a frame before the handshake, say).
    #[error("unexpected message kind 0x{kind:02x} at byte {offset} {during}")]
    Unexpected {
        /// Stream offset of the message.
        offset: u64,
        /// The kind byte.
        kind: u8,
        /// The state the connection was in.
        during: &'static str,
    },
}

/// A frame over the limit is said in picture bytes, the unit of `--max-frame-bytes`; other
/// kinds in message bytes.
fn too_large_text(kind: u8, offset: u64, len: u32, max: u32) -> String {
    let meta = match crate::message::Kind::from_u8(kind) {
        Some(crate::message::Kind::Frame) => crate::message::FRAME_META_LEN as u32,
        Some(crate::message::Kind::StreamFrame) => crate::message::STREAM_FRAME_META_LEN as u32,
        _ => {
            return format!(
                "message kind 0x{kind:02x} at byte {offset} declares {len} bytes, limit is {max}"
            )
        }
    };
    format!(
        "frame of {} bytes at byte {offset} is over the limit of {} bytes (the hub's --max-frame-bytes)",
        len.saturating_sub(meta),
        max.saturating_sub(meta)
    )
}
