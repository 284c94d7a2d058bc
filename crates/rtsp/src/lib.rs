//! RTSP for vidcast: pulling IP cameras' H.264 (retina, on a thread and runtime of its own)
//! as a `vidcast_media::VideoSource`, so `vidcast send --source rtsp://…` and the hub's
//! `serve --pull` publish a camera like any other source, without re-encoding.
//!
//! Also the sans-IO core of serving streams to players (`serve`: requests, SDP, RTP
//! packetization), which the hub drives; it needs only h264.
//!
//! With the `pull` feature (default) it depends on media (the source trait, the decoder), h264
//! (the keyframe chain rule, parameter sets) and proto (the reconnect backoff); the hub
//! depends on it without that feature.

pub mod clock;
#[cfg(feature = "pull")]
pub mod pull;
pub mod serve;

pub use clock::CaptureClock;
#[cfg(feature = "pull")]
pub use pull::{is_rtsp_url, redact, PullOptions, PullStats, RtspSource, RtspTransport};

/// Why an RTSP source could not start.
#[derive(Debug, thiserror::Error)]
pub enum RtspError {
    /// The URL is not one we can pull.
    #[error("{what}: {reason}")]
    Url {
        /// The URL, password hidden.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The camera gave no frame to start from.
    #[error("{what}: {reason}")]
    Open {
        /// The URL, password hidden.
        what: String,
        /// Why.
        reason: String,
    },
    /// The pulling thread could not start.
    #[cfg(feature = "pull")]
    #[error("{what}: {source}")]
    Io {
        /// The URL, password hidden.
        what: String,
        /// The system's error.
        source: std::io::Error,
    },
}
