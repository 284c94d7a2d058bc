//! The one error type of this crate.

/// Everything that can go wrong in `vidcast-media`.
///
/// Variants carry the offending values so a log line is enough to reproduce the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// A frame or image size is out of the supported range.
    #[error("invalid size {width}x{height}: {reason}")]
    InvalidSize {
        /// Requested width in pixels.
        width: u32,
        /// Requested height in pixels.
        height: u32,
        /// Which rule the size breaks.
        reason: &'static str,
    },
    /// A pixel buffer does not match its stated size.
    #[error("pixel buffer is {actual} bytes, expected {expected} for {width}x{height} RGB8")]
    BufferLength {
        /// Frame width in pixels.
        width: u32,
        /// Frame height in pixels.
        height: u32,
        /// `width * height * 3`.
        expected: usize,
        /// What the buffer holds.
        actual: usize,
    },
    /// A frame rate is not finite, not positive, or too high.
    #[error("invalid frame rate {fps} (must be > 0 and <= {max})")]
    InvalidFps {
        /// The rejected frame rate.
        fps: f64,
        /// The largest accepted frame rate.
        max: f64,
    },
    /// A JPEG quality outside 1..=100.
    #[error("invalid JPEG quality {quality} (must be 1..=100)")]
    InvalidQuality {
        /// The rejected quality.
        quality: u8,
    },
    /// The encoder failed.
    #[error("encode failed: {0}")]
    Encode(String),
    /// The input is not a decodable image.
    #[error("decode failed ({len} input bytes): {reason}")]
    Decode {
        /// Length of the input, to match it with a capture.
        len: usize,
        /// Why decoding stopped.
        reason: String,
    },
    /// `pad_jpeg` cannot reach the requested length.
    #[error("cannot pad a {jpeg_len}-byte JPEG to {target_len} bytes: {reason}")]
    Pad {
        /// Length of the input JPEG.
        jpeg_len: usize,
        /// Requested output length.
        target_len: usize,
        /// Why it is impossible.
        reason: &'static str,
    },
    /// The scaler failed.
    #[error("scale failed: {0}")]
    Scale(String),
}
