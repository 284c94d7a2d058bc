//! The vidcast hub: one TCP port for every publisher, one session task per connection, a
//! registry of streams with their stats and latest frame, and everything that shows them.
//!
//! The folders are the parts, in the order frames flow through them:
//! - `access`: who may connect and how much each may cost (tokens, TLS, budgets, limits);
//! - `ingest`: publisher sessions on the ingest port, the legacy protocol, browser publishers;
//! - `stream`: the [`Registry`] of streams, their newest frame, stats and the viewers' feed;
//! - `serve`: the web port (wall, MJPEG, API, metrics), native viewers, RTSP, transcoding;
//! - `egress`: recording and restreaming to RTMP servers.
//!
//! `server` ties them together: it binds the accept loops and hands each part what it needs.
//! Nothing queues frames: the newest replaces the last, per viewer, so a slow viewer skips
//! frames for itself only.
//! Depends on `vidcast-proto`, `vidcast-media`, `vidcast-legacy`, `vidcast-tcpinfo`,
//! `vidcast-h264`, `vidcast-rtmp`, `vidcast-rtsp` and `vidcast-record`, never on the client, the
//! viewer or the CLI (`crates/testkit/tests/crate_arrows.rs` checks).

#![warn(unreachable_pub)]

mod access;
mod blocking;
mod egress;
pub mod human;
mod ingest;
pub mod memory;
mod serve;
mod server;
mod stream;

pub use access::auth::{Auth, AuthError};
pub use access::limits::Limits;
pub use access::tls::{SelfSigned, TlsError, TlsIdentity, DEFAULT_CERT_DAYS};
pub use egress::restream::{check_target_text, ip_problem};
pub use server::{run, HubOptions, RunningHub};
pub use stream::feed::{FeedStream, FeedUpdate, StreamFeed};
pub use stream::ids::FILE_NAME as STREAM_IDS_FILE;
pub use stream::jpeg::dimensions as jpeg_dimensions;
pub use stream::registry::{
    EventKind, LatestFrame, Registry, StreamEvent, StreamId, StreamSnapshot,
};
pub use stream::stats::{percentiles, LatencyMs};
/// A `--restream` URL with `{name}`/`{id}` placeholders (from `vidcast-rtmp`).
pub use vidcast_rtmp::UrlTemplate;
