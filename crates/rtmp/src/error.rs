//! Why an RTMP address, a server's bytes or a video frame was refused.

use thiserror::Error;

use crate::amf0::Amf0Error;

/// Errors of the RTMP client and the FLV packager. Offsets count bytes the server sent,
/// from the first handshake byte, so they can be found in a capture.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RtmpError {
    /// The address is not `rtmp://host[:port]/app/stream`.
    #[error("bad RTMP address {url:?}: {reason}")]
    BadUrl {
        /// What was given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The server's handshake is not RTMP version 3.
    #[error("not an RTMP server: handshake version byte is {version} (expected 3)")]
    Handshake {
        /// The version byte received.
        version: u8,
    },
    /// A chunk that does not parse.
    #[error("bad RTMP chunk at byte {offset}: {what}")]
    Chunk {
        /// Stream offset of the chunk.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// A message longer than the reader accepts; refused before allocating.
    #[error("RTMP message at byte {offset} declares {len} bytes, limit is {max}")]
    TooLarge {
        /// Stream offset of the chunk.
        offset: u64,
        /// Declared length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// A command whose AMF0 body does not decode.
    #[error("bad RTMP command (message type {type_id}): {source}")]
    Amf {
        /// Message type.
        type_id: u8,
        /// Where the body went wrong.
        source: Amf0Error,
    },
    /// The server said no (`_error`, or an `onStatus` with level "error").
    #[error("RTMP server refused {stage}: {code} {description}")]
    Refused {
        /// What was asked: "connect", "createStream" or "publish".
        stage: &'static str,
        /// The status code (e.g. NetStream.Publish.BadName).
        code: String,
        /// The server's description.
        description: String,
    },
    /// Video was offered before the server accepted the publish.
    #[error("not publishing yet")]
    NotPublishing,
    /// An access unit that cannot be packaged.
    #[error("cannot package H.264 for FLV: {0}")]
    BadVideo(&'static str),
}
