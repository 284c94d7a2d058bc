//! Raw and encoded video frames.

use std::borrow::Cow;

use crate::source::yuv::{i420_to_packed, rgb_to_i420, PackedOrder, Planes, Subsampling};
use crate::MediaError;

pub use vidcast_h264::Codec;

/// How the pixel bytes of a [`RawFrame`] are laid out. Every layout is tightly packed
/// (no row padding), rows top to bottom.
///
/// Frames stay in the layout their source gives until the encoder (JPEG and H.264 both
/// take I420 as it is, and packed RGB8 or BGR8 without a copy); RGB exists where a source
/// draws or decodes RGB, or where something shows pixels; BGR where the pixels come from
/// OpenCV (the Python package's `Sender`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Packed RGB8: 3 bytes per pixel, `width * height * 3` bytes.
    Rgb8,
    /// Planar YUV 4:2:0, BT.601 limited range (what Y4M `C420`, OpenH264 and cameras give):
    /// the Y plane (`width * height`), then U, then V (each `ceil(width/2) * ceil(height/2)`;
    /// odd sizes round chroma up).
    I420,
    /// Packed BGR8, blue first (OpenCV's order): 3 bytes per pixel, `width * height * 3`
    /// bytes.
    Bgr8,
}

impl PixelFormat {
    /// Short name, for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Rgb8 => "RGB8",
            PixelFormat::I420 => "I420",
            PixelFormat::Bgr8 => "BGR8",
        }
    }

    /// Bytes a `width` x `height` frame of this layout holds (saturating: no real buffer
    /// has `usize::MAX` bytes).
    pub fn frame_len(self, width: u32, height: u32) -> usize {
        match self {
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => rgb_len(width, height),
            PixelFormat::I420 => i420_len(width, height),
        }
    }
}

/// An uncompressed frame: `data` holds the pixels in `format`'s layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// How `data` is laid out.
    pub format: PixelFormat,
    /// The pixels; `len == format.frame_len(width, height)` (see [`RawFrame::check`]).
    pub data: Vec<u8>,
    /// Frame number from the source (may jump when a paced source skips).
    pub seq: u64,
    /// Capture time, microseconds since the Unix epoch (from the source's [`crate::Clock`]).
    pub capture_us: u64,
}

impl RawFrame {
    /// A packed RGB8 frame.
    pub fn rgb(width: u32, height: u32, rgb: Vec<u8>, seq: u64, capture_us: u64) -> Self {
        Self {
            width,
            height,
            format: PixelFormat::Rgb8,
            data: rgb,
            seq,
            capture_us,
        }
    }

    /// A packed BGR8 frame (blue first, as OpenCV holds pictures).
    pub fn bgr(width: u32, height: u32, bgr: Vec<u8>, seq: u64, capture_us: u64) -> Self {
        Self {
            width,
            height,
            format: PixelFormat::Bgr8,
            data: bgr,
            seq,
            capture_us,
        }
    }

    /// An I420 frame (Y, U, V planes one after the other, no padding).
    pub fn i420(width: u32, height: u32, yuv: Vec<u8>, seq: u64, capture_us: u64) -> Self {
        Self {
            width,
            height,
            format: PixelFormat::I420,
            data: yuv,
            seq,
            capture_us,
        }
    }

    /// Check that `data` holds exactly the bytes `format` needs and the size is non-zero.
    pub fn check(&self) -> Result<(), MediaError> {
        check_len(self.format, self.data.len(), self.width, self.height)
    }

    /// The Y, U and V planes of an I420 frame with their strides; `None` for another layout.
    /// Errors if the buffer does not match the size.
    pub fn planes(&self) -> Result<Option<Planes<'_>>, MediaError> {
        if self.format != PixelFormat::I420 {
            return Ok(None);
        }
        self.check()?;
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = chroma_size(self.width, self.height);
        let (y, chroma) = self.data.split_at(w * h);
        let (u, v) = chroma.split_at(cw as usize * ch as usize);
        Ok(Some(Planes {
            y,
            u,
            v,
            y_stride: w,
            uv_stride: cw as usize,
        }))
    }

    /// The pixels as packed RGB8: borrowed when the frame already is RGB8, reordered from
    /// BGR8, converted (BT.601 limited range) from I420. For whatever shows pixels or reads
    /// them back.
    pub fn to_rgb(&self) -> Result<Cow<'_, [u8]>, MediaError> {
        self.to_packed(PackedOrder::Rgb)
    }

    /// The pixels as packed BGR8 (OpenCV's order), like [`RawFrame::to_rgb`]: I420 is
    /// converted straight to BGR, with no reordering pass after.
    pub fn to_bgr(&self) -> Result<Cow<'_, [u8]>, MediaError> {
        self.to_packed(PackedOrder::Bgr)
    }

    fn to_packed(&self, order: PackedOrder) -> Result<Cow<'_, [u8]>, MediaError> {
        self.check()?;
        match (self.planes()?, self.format, order) {
            (Some(planes), _, _) => Ok(Cow::Owned(i420_to_packed(
                &planes,
                self.width,
                self.height,
                order,
            )?)),
            (None, PixelFormat::Bgr8, PackedOrder::Bgr)
            | (None, PixelFormat::Rgb8, PackedOrder::Rgb) => Ok(Cow::Borrowed(&self.data)),
            (None, _, _) => Ok(Cow::Owned(swap_red_blue(&self.data))),
        }
    }

    /// The same frame as packed RGB8 (no conversion when it already is).
    pub fn into_rgb(self) -> Result<RawFrame, MediaError> {
        if self.format == PixelFormat::Rgb8 {
            self.check()?;
            return Ok(self);
        }
        let rgb = self.to_rgb()?.into_owned();
        Ok(RawFrame::rgb(
            self.width,
            self.height,
            rgb,
            self.seq,
            self.capture_us,
        ))
    }

    /// The same frame as I420 (no conversion when it already is; RGB8 and BGR8 are
    /// converted with BT.601 limited range, each chroma sample the mean of its 2x2 block).
    pub fn into_i420(self) -> Result<RawFrame, MediaError> {
        self.check()?;
        match self.format {
            PixelFormat::I420 => Ok(self),
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => {
                let yuv = rgb_to_i420(&self.to_rgb()?, self.width, self.height)?;
                Ok(RawFrame::i420(
                    self.width,
                    self.height,
                    yuv,
                    self.seq,
                    self.capture_us,
                ))
            }
        }
    }
}

/// Packed 3-byte pixels with the first and third byte swapped (RGB8 <-> BGR8).
pub(crate) fn swap_red_blue(pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pixels.len());
    for px in pixels.chunks_exact(3) {
        out.extend_from_slice(&[px[2], px[1], px[0]]);
    }
    out
}

/// Chroma plane size of a 4:2:0 picture: half each way, odd sizes rounded up.
pub fn chroma_size(width: u32, height: u32) -> (u32, u32) {
    Subsampling::Half.chroma_size(width, height)
}

/// `Ok` if a buffer of `len` bytes matches a non-empty `width` x `height` image in `format`.
pub(crate) fn check_len(
    format: PixelFormat,
    len: usize,
    width: u32,
    height: u32,
) -> Result<(), MediaError> {
    if width == 0 || height == 0 {
        return Err(MediaError::InvalidSize {
            width,
            height,
            reason: "width and height must be non-zero",
        });
    }
    let expected = format.frame_len(width, height);
    if len != expected {
        return Err(MediaError::BufferLength {
            format: format.name(),
            width,
            height,
            expected,
            actual: len,
        });
    }
    Ok(())
}

/// `Ok` if an RGB8 buffer of `len` bytes matches a non-empty `width` x `height` image.
pub(crate) fn check_rgb_len(len: usize, width: u32, height: u32) -> Result<(), MediaError> {
    check_len(PixelFormat::Rgb8, len, width, height)
}

/// `width * height * 3` without overflow on 64-bit targets (u32 * u32 * 3 < 2^66 is not
/// guaranteed to fit, so saturate: no real buffer has `usize::MAX` bytes).
pub(crate) fn rgb_len(width: u32, height: u32) -> usize {
    (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(3))
        .unwrap_or(usize::MAX)
}

/// `width * height + 2 * ceil(width/2) * ceil(height/2)`, saturating like [`rgb_len`].
pub(crate) fn i420_len(width: u32, height: u32) -> usize {
    let (cw, ch) = chroma_size(width, height);
    (width as usize)
        .checked_mul(height as usize)
        .and_then(|y| {
            (cw as usize)
                .checked_mul(ch as usize)
                .and_then(|c| c.checked_mul(2))
                .and_then(|c| c.checked_add(y))
        })
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
    fn i420_lengths_round_chroma_up_at_odd_sizes() {
        for ((w, h), len) in [
            ((1, 1), 3),
            ((2, 2), 6),
            ((3, 3), 9 + 2 * 4),
            ((33, 17), 33 * 17 + 2 * 17 * 9),
            ((640, 480), 640 * 480 * 3 / 2),
        ] {
            assert_eq!(PixelFormat::I420.frame_len(w, h), len, "{w}x{h}");
            let frame = RawFrame::i420(w, h, vec![0; len], 0, 0);
            let planes = frame.planes().expect("valid").expect("I420");
            let (cw, ch) = chroma_size(w, h);
            assert_eq!(planes.y.len(), (w * h) as usize);
            assert_eq!(
                (planes.u.len(), planes.v.len()),
                ((cw * ch) as usize, (cw * ch) as usize)
            );
            assert_eq!(
                (planes.y_stride, planes.uv_stride),
                (w as usize, cw as usize)
            );
        }
        // Sizes no buffer can have saturate instead of overflowing.
        assert_eq!(PixelFormat::I420.frame_len(u32::MAX, u32::MAX), usize::MAX);
        assert_eq!(PixelFormat::Rgb8.frame_len(u32::MAX, u32::MAX), usize::MAX);
    }

    #[test]
    fn a_short_or_long_i420_buffer_is_an_error_not_a_panic() {
        for len in [0, 16, 18] {
            let frame = RawFrame::i420(3, 3, vec![0; len], 0, 0);
            assert!(matches!(
                frame.check(),
                Err(MediaError::BufferLength {
                    format: "I420",
                    expected: 17,
                    ..
                })
            ));
            assert!(frame.planes().is_err());
            assert!(frame.to_rgb().is_err());
            assert!(frame.clone().into_rgb().is_err());
        }
        let rgb = RawFrame::rgb(3, 3, vec![0; 26], 0, 0);
        assert!(rgb.clone().into_i420().is_err());
        assert!(matches!(rgb.planes(), Err(_) | Ok(None)));
    }

    #[test]
    fn rgb_and_i420_convert_both_ways_within_rounding() {
        // Flat colours (chroma is exact for flat areas), odd size.
        for colour in [[0u8, 0, 0], [255, 255, 255], [200, 30, 60], [10, 200, 120]] {
            let rgb = RawFrame::rgb(5, 3, colour.repeat(15), 1, 2);
            let yuv = rgb.clone().into_i420().expect("valid");
            assert_eq!(
                (yuv.format, yuv.data.len(), yuv.seq, yuv.capture_us),
                (PixelFormat::I420, 15 + 2 * 6, 1, 2)
            );
            let back = yuv.into_rgb().expect("valid");
            assert_eq!(back.format, PixelFormat::Rgb8);
            for (got, want) in back.data.iter().zip(&rgb.data) {
                assert!(got.abs_diff(*want) <= 2, "{colour:?}: {got} vs {want}");
            }
        }
        // A frame already in the layout asked for is passed through untouched.
        let yuv = RawFrame::i420(2, 2, vec![1, 2, 3, 4, 5, 6], 0, 0);
        assert_eq!(yuv.clone().into_i420().expect("valid"), yuv);
        let rgb = RawFrame::rgb(1, 1, vec![7, 8, 9], 0, 0);
        assert_eq!(rgb.clone().into_rgb().expect("valid"), rgb);
        assert!(matches!(rgb.to_rgb(), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn codec_name_is_lowercase_jpeg() {
        assert_eq!(Codec::Jpeg.name(), "jpeg");
    }

    #[test]
    fn frame_check_rejects_wrong_length_and_empty_size() {
        let mut f = RawFrame {
            width: 2,
            height: 2,
            format: crate::PixelFormat::Rgb8,
            data: vec![0; 12],
            seq: 0,
            capture_us: 0,
        };
        assert!(f.check().is_ok());
        f.data.pop();
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
