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
    #[error("pixel buffer is {actual} bytes, expected {expected} for {width}x{height} {format}")]
    BufferLength {
        /// The pixel layout ("RGB8", "I420").
        format: &'static str,
        /// Frame width in pixels.
        width: u32,
        /// Frame height in pixels.
        height: u32,
        /// What the layout needs (`width * height * 3` for RGB8).
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
    /// A YUV plane or packed buffer is shorter than its stated size needs.
    #[error("{what} buffer is {actual} bytes, expected at least {expected} for {width}x{height}")]
    PlaneLength {
        /// Which buffer (e.g. "I420 Y plane", "YUYV").
        what: &'static str,
        /// Frame width in pixels.
        width: u32,
        /// Frame height in pixels.
        height: u32,
        /// The bytes the size needs.
        expected: usize,
        /// What the buffer holds.
        actual: usize,
    },
    /// A colour conversion refused its input (sizes are checked before, so this is a bug).
    #[error("colour conversion of {width}x{height} failed: {reason}")]
    Convert {
        /// Frame width in pixels.
        width: u32,
        /// Frame height in pixels.
        height: u32,
        /// The converter's words.
        reason: String,
    },
    /// A file or device could not be opened or read.
    #[error("cannot read {what}: {source}")]
    Io {
        /// The path, device or "stdin".
        what: String,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The input is not what it claims to be (a bad header, a truncated frame…).
    #[error("{what}: {reason}")]
    Input {
        /// The path, device or "stdin".
        what: String,
        /// What is wrong, with the offending value or frame number.
        reason: String,
    },
    /// A video camera (V4L2) cannot be used; the reason says what to do about it.
    #[error("camera {device}: {reason}")]
    Camera {
        /// The device path, e.g. `/dev/video0`.
        device: String,
        /// What went wrong and what to do.
        reason: String,
    },
    /// An external tool (ffmpeg) is missing or failed.
    #[error("{tool}: {reason}")]
    Tool {
        /// The tool's name.
        tool: &'static str,
        /// What went wrong and what to do.
        reason: String,
    },
}
