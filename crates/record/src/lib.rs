//! Recording of live streams to files that standard players open: H.264 in fragmented MP4
//! (`mp4`), JPEG in Matroska as `V_MJPEG` (`mkv`), cut into segments by time (`segment`),
//! old segments deleted by age or total size (`retention`).
//!
//! The muxers and the [`Recorder`] are sans-IO: frames in, bytes and file actions out, time
//! taken from the frames. [`FileSink`] is the only part that touches the disk (blocking
//! `std::fs`; run it on a thread of its own). Depends on `vidcast-media` (Annex B parsing)
//! only: never on the hub, tokio or a clock.

mod error;
pub mod h264;
pub mod mkv;
pub mod mp4;
pub mod name;
pub mod retention;
pub mod segment;
pub mod sink;

pub use error::RecordError;
pub use retention::{Keep, KeepParseError};
pub use segment::{Codec, Output, RecFrame, Recorder, RecorderCounters, StreamMeta};
pub use sink::FileSink;

use std::path::PathBuf;
use std::time::Duration;

/// Where and how a hub records.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordConfig {
    /// Root directory: each stream goes to `dir/<name>/<start>.<ext>`.
    pub dir: PathBuf,
    /// Length of a segment before the next one starts (at a keyframe for H.264).
    pub segment: Duration,
    /// Which old segments to delete.
    pub keep: Keep,
}
