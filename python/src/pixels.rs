//! Pixels from numpy's layouts (BGR as OpenCV gives, RGB, grey) into a vidcast frame's.

use numpy::ndarray::ArrayViewD;
use vidcast_media::PixelFormat;

/// How the caller's array holds its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// H×W×3, blue first (OpenCV).
    Bgr,
    /// H×W×3, red first.
    Rgb,
    /// H×W (or H×W×1), one grey value per pixel.
    Gray,
}

impl Layout {
    /// Parses the `format=` argument.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "bgr" => Ok(Layout::Bgr),
            "rgb" => Ok(Layout::Rgb),
            "gray" | "grey" => Ok(Layout::Gray),
            _ => Err(format!(
                "format must be \"bgr\", \"rgb\" or \"gray\", got {text:?}"
            )),
        }
    }

    /// The picture size, `(width, height)`, of an array of `shape`, or why it is not a picture.
    pub fn size_of(self, shape: &[usize]) -> Result<(u32, u32), String> {
        let (h, w) = match (self, shape) {
            (Layout::Bgr | Layout::Rgb, [h, w, 3]) => (*h, *w),
            (Layout::Gray, [h, w] | [h, w, 1]) => (*h, *w),
            (Layout::Gray, _) => {
                return Err(format!(
                    "a grey frame is an H×W uint8 array, got shape {shape:?}"
                ))
            }
            _ => {
                return Err(format!(
                "a {} frame is an H×W×3 uint8 array, got shape {shape:?} (format=\"gray\" for H×W)",
                if self == Layout::Bgr { "BGR" } else { "RGB" }
            ))
            }
        };
        let dimension = |n: usize| u32::try_from(n).ok().filter(|&n| (2..=8192).contains(&n));
        match (dimension(w), dimension(h)) {
            (Some(w), Some(h)) => Ok((w, h)),
            _ => Err(format!("a frame is 2 to 8192 pixels each way, got {w}x{h}")),
        }
    }

    /// The caller's pixels in the frame layout the encoders take as they are: BGR stays
    /// BGR8 and RGB stays RGB8 (one copy, a `memcpy` for a contiguous array), grey becomes
    /// RGB8.
    pub fn to_packed(self, pixels: &ArrayViewD<'_, u8>) -> (PixelFormat, Vec<u8>) {
        match (self, pixels.as_slice()) {
            (Layout::Bgr, Some(slice)) => (PixelFormat::Bgr8, slice.to_vec()),
            (Layout::Rgb, Some(slice)) => (PixelFormat::Rgb8, slice.to_vec()),
            // A strided view (a crop, a transposed array): element by element, in order.
            (Layout::Bgr, None) => (PixelFormat::Bgr8, pixels.iter().copied().collect()),
            (Layout::Rgb, None) => (PixelFormat::Rgb8, pixels.iter().copied().collect()),
            (Layout::Gray, _) => {
                let mut rgb = Vec::with_capacity(pixels.len() * 3);
                for &g in pixels.iter() {
                    rgb.extend_from_slice(&[g, g, g]);
                }
                (PixelFormat::Rgb8, rgb)
            }
        }
    }
}
