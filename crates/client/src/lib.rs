//! The vidcast publisher: a capture thread (source → encoder) hands the newest frame to one
//! drive loop that owns the socket and a `vidcast_proto::ClientConnection`.
//!
//! Latest frame wins at every step: the capture thread overwrites a one-frame watch, the
//! connection keeps one frame waiting, and the socket's unsent-bytes mark is kept small, so a
//! slow link drops frames (counted) instead of building a backlog.
//! [`legacy`] sends the same frames in the original Python project's format instead;
//! [`viewer`] is the other role, watching every stream of a hub.
//! Depends on `vidcast-proto`, `vidcast-media` and `vidcast-legacy`, never on the hub or the CLI.

pub mod adapt;
mod capture;
mod error;
pub mod legacy;
pub mod mjpeg;
mod publisher;
mod reconnect;
mod socket;
pub mod tls;
pub mod viewer;

pub use capture::{Capture, CaptureStats, KeyframeFlag};
pub use error::{LegacySendError, PublishError};
pub use publisher::{default_name, publish, LiveStats, PublishOptions, PublishReport};
pub use reconnect::{is_retryable, publish_with_reconnect, SessionSummary};
pub use socket::{connect, host_of, resolve, tune, DEFAULT_PORT};
pub use tls::{ClientTls, Fingerprint, FingerprintMismatch, TlsTrust};
pub use vidcast_proto::Backoff;
