//! The vidcast hub: one TCP port for every publisher, one session task per connection, a
//! registry of streams with their stats and latest frame, and the HTTP API.
//!
//! Data flow: accept loop (`server`) → one drive loop per connection (`session`) feeding a
//! `vidcast_proto::HubConnection` → per-frame stats and a latest-frame watch in the
//! [`Registry`] → viewers: the web wall's WebSocket (`wall`), MJPEG (`mjpeg`), and the JSON
//! API, events and metrics (`http`), and native viewers on the ingest port (`viewer`, fed by a
//! [`StreamFeed`]), and RTMP servers (`restream`). Nothing queues frames: the newest replaces the last, per
//! viewer, so a slow viewer skips frames for itself only.
//! Depends on `vidcast-proto`, `vidcast-media`, `vidcast-legacy`, `vidcast-tcpinfo`,
//! `vidcast-h264`, `vidcast-rtmp` and `vidcast-record`, never on the client, the viewer or the
//! CLI (`crates/testkit/tests/crate_arrows.rs` checks).

pub mod auth;
mod blocking;
mod browser;
pub mod budget;
pub mod feed;
pub mod frames;
mod http;
pub mod human;
pub mod ids;
pub mod jpeg;
mod legacy;
pub mod limits;
pub mod memory;
pub mod metrics;
mod mjpeg;
pub mod net;
pub mod recording;
pub mod registry;
pub mod restream;
mod rtsp;
mod server;
mod session;
pub mod stats;
pub mod tls;
mod transcode;
mod viewer;
pub mod viewers;
pub mod wall;
pub mod web_guard;
mod webport;

pub use auth::{Auth, AuthError};
pub use feed::{FeedStream, FeedUpdate, StreamFeed};
pub use limits::Limits;
pub use recording::RecordingSnapshot;
pub use registry::{LatestFrame, Registry, StreamEvent, StreamId, StreamSnapshot};
pub use server::{run, HubOptions, RunningHub};
pub use stats::{percentiles, LatencyMs};
pub use tls::{SelfSigned, TlsError, TlsIdentity};
