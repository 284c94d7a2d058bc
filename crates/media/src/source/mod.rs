//! Video sources: the [`VideoSource`] trait and the synthetic [`TestPattern`].

mod pattern;
mod strip;

pub use pattern::{TestPattern, TestPatternConfig, MAX_DIMENSION, MAX_FPS, MIN_DIMENSION};
pub use strip::{read_frame_number, write_frame_number};

use crate::{MediaError, RawFrame};

/// Something that produces raw frames, like a camera.
///
/// `next_frame` blocks, as a camera would, until the next frame is due; a caller on an
/// async runtime runs it on a blocking thread.
pub trait VideoSource: Send {
    /// Frame size in pixels, `(width, height)`; every frame has this size.
    fn size(&self) -> (u32, u32);
    /// Nominal frame rate.
    fn fps(&self) -> f64;
    /// A one-line human description, for logs and the UI.
    fn describe(&self) -> String;
    /// The next frame, `Ok(None)` at the end of the stream.
    fn next_frame(&mut self) -> Result<Option<RawFrame>, MediaError>;
}
