//! Raw and encoded video frames.

use crate::MediaError;

pub use vidcast_h264::Codec;

/// An uncompressed frame: packed RGB8, rows top to bottom, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Packed RGB8 pixels; `len == width * height * 3`.
    pub rgb: Vec<u8>,
    /// Frame number from the source (may jump when a paced source skips).
    pub seq: u64,
    /// Capture time, microseconds since the Unix epoch (from the source's [`crate::Clock`]).
    pub capture_us: u64,
}

impl RawFrame {
    /// Check that `rgb` holds exactly `width * height * 3` bytes and the size is non-zero.
    pub fn check(&self) -> Result<(), MediaError> {
        check_rgb_len(self.rgb.len(), self.width, self.height)
    }
}

/// `Ok` if an RGB8 buffer of `len` bytes matches a non-empty `width` x `height` image.
pub(crate) fn check_rgb_len(len: usize, width: u32, height: u32) -> Result<(), MediaError> {
    if width == 0 || height == 0 {
        return Err(MediaError::InvalidSize {
            width,
            height,
            reason: "width and height must be non-zero",
        });
    }
    let expected = rgb_len(width, height);
    if len != expected {
        return Err(MediaError::BufferLength {
            width,
            height,
            expected,
            actual: len,
        });
    }
    Ok(())
}

/// `width * height * 3` without overflow on 64-bit targets (u32 * u32 * 3 < 2^66 is not
/// guaranteed to fit, so saturate: no real buffer has `usize::MAX` bytes).
pub(crate) fn rgb_len(width: u32, height: u32) -> usize {
    (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(3))
        .unwrap_or(usize::MAX)
}

/// A compressed frame, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// How `data` is compressed.
    pub codec: Codec,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The compressed bitstream (a whole JPEG file for [`Codec::Jpeg`], an Annex B access
    /// unit for [`Codec::H264`]).
    pub data: bytes::Bytes,
    /// Frame number, copied from the [`RawFrame`].
    pub seq: u64,
    /// Capture time, copied from the [`RawFrame`].
    pub capture_us: u64,
    /// True if the frame decodes on its own (always true for JPEG).
    pub is_keyframe: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_name_is_lowercase_jpeg() {
        assert_eq!(Codec::Jpeg.name(), "jpeg");
    }

    #[test]
    fn frame_check_rejects_wrong_length_and_empty_size() {
        let mut f = RawFrame {
            width: 2,
            height: 2,
            rgb: vec![0; 12],
            seq: 0,
            capture_us: 0,
        };
        assert!(f.check().is_ok());
        f.rgb.pop();
        assert!(matches!(
            f.check(),
            Err(MediaError::BufferLength {
                expected: 12,
                actual: 11,
                ..
            })
        ));
        f.width = 0;
        assert!(matches!(f.check(), Err(MediaError::InvalidSize { .. })));
    }
}
