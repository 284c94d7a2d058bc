//! RTMP publishing, sans-IO: what the hub needs to push H.264 to a media server (nginx-rtmp,
//! MediaMTX, SRS, a CDN's ingest) without re-encoding.
//!
//! - [`ClientSession`]: handshake, `connect` → `createStream` → `publish`, acknowledgements
//!   and pings, then video messages. Fed bytes, gives bytes and events.
//! - [`flv`]: Annex B access units → FLV video tag bodies (AVC sequence header from SPS/PPS,
//!   then length-prefixed NAL units).
//! - [`chunk`]: the chunk stream layer; [`amf0`]: the command encoding; [`url`]: addresses.
//!
//! Like `vidcast-proto`, this crate must not depend on tokio, on any I/O, on a clock (see
//! `clippy.toml`) or on the other vidcast crates; one drive loop in the hub owns the socket.

pub mod amf0;
pub mod chunk;
mod client;
mod error;
pub mod flv;
pub mod fuzzing;
pub mod url;

pub use client::{ClientEvent, ClientSession, HANDSHAKE_SIZE, OUT_CHUNK_SIZE};
pub use error::RtmpError;
pub use url::{RtmpUrl, UrlTemplate, DEFAULT_PORT, ID_PLACEHOLDER, NAME_PLACEHOLDER};

#[cfg(test)]
mod tests;
