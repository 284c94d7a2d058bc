//! The vidcast wire protocol, sans-IO.
//!
//! Pure state machines fed bytes and time: [`HubConnection`] is the hub's end of one TCP
//! connection, [`ClientConnection`] a publisher's or a viewer's. They never touch a socket or
//! read a clock — drivers pass `now` in — so tests run them in memory, faster than real time.
//! This crate must not depend on tokio, on any I/O, or on the other vidcast crates but
//! `vidcast-h264` (the shared `Codec` type; pure, no I/O either).
//!
//! The byte layout is documented in `PROTOCOL.md` at the repository root.

mod backoff;
mod client;
mod clock_sync;
mod connection;
mod error;
mod framing;
mod hub;
mod message;
mod outbox;
mod text;
mod time;
mod transmit;

pub mod cases;
pub mod fuzzing;

pub use backoff::Backoff;
pub use client::{ClientConnection, ClientEvent};
pub use clock_sync::{ClockSample, ClockSync};
pub use connection::{CloseReason, ConnectionStats, Timing, MAX_PINGS_PER_SECOND};
pub use error::ProtocolError;
pub use framing::Decoder;
pub use hub::{HubConfig, HubConnection, HubEvent};
pub use message::{
    codec_from_number, codec_number, encode_frame_head, encode_stream_frame_head, Codec,
    EncoderReport, Frame, FrameAck, Goodbye, GoodbyeCode, Hello, Kind, Message, Ping, Pong, Reject,
    RejectCode, Role, SenderReport, StreamAnnounce, StreamFrame, UnknownCodec, Welcome, WireCodec,
    FRAME_META_LEN, HEADER_LEN, MAGIC, MAX_CONTROL_PAYLOAD, MAX_FRAME_BYTES, MAX_NAME_LEN,
    MAX_TOKEN_LEN, STREAM_FRAME_META_LEN, VERSION,
};
pub use outbox::{MAX_CONTROL_QUEUED_BYTES, VIEWER_WINDOW};
pub use text::{
    is_format_char, is_unsafe_char, log_safe, name_problem, LogSafe, LOG_SAFE_MAX_CHARS,
};
pub use time::Timestamp;
pub use transmit::WriteQueue;

#[cfg(test)]
mod tests;
