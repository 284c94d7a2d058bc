//! Frame scaling: the [`Scaler`] trait and a bilinear scaler via `fast_image_resize`, for
//! RGB8 frames and, plane by plane, I420 frames.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::{chroma_size, MediaError, RawFrame};

const U8: PixelType = PixelType::U8;

/// Resizes raw frames to a fixed output size. One scaler per stream (it keeps buffers).
pub trait Scaler: Send {
    /// A frame of the scaler's output size with `seq` and `capture_us` copied through.
    fn scale(&mut self, frame: &RawFrame) -> Result<RawFrame, MediaError>;
}

/// Bilinear scaler (SIMD where the CPU has it); the output keeps the input's layout.
/// Passes frames of the output size through as a clone.
pub struct ResizeScaler {
    dst_width: u32,
    dst_height: u32,
    resizer: Resizer,
    options: ResizeOptions,
}

impl std::fmt::Debug for ResizeScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResizeScaler")
            .field("dst_width", &self.dst_width)
            .field("dst_height", &self.dst_height)
            .finish_non_exhaustive()
    }
}

impl ResizeScaler {
    /// A scaler to `dst_width` x `dst_height` (each 1..=7680).
    pub fn new(dst_width: u32, dst_height: u32) -> Result<Self, MediaError> {
        let range = 1..=crate::source::MAX_DIMENSION;
        if !range.contains(&dst_width) || !range.contains(&dst_height) {
            return Err(MediaError::InvalidSize {
                width: dst_width,
                height: dst_height,
                reason: "scaler output width and height must be in 1..=7680",
            });
        }
        Ok(Self {
            dst_width,
            dst_height,
            resizer: Resizer::new(),
            options: ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        })
    }

    /// The output size, `(width, height)`.
    pub fn output_size(&self) -> (u32, u32) {
        (self.dst_width, self.dst_height)
    }
}

impl ResizeScaler {
    /// One tightly packed image (`src`: width, height, bytes) resized to `dst`.
    fn resize(
        &mut self,
        src: (u32, u32, &[u8]),
        dst: (u32, u32),
        pixel: PixelType,
    ) -> Result<Vec<u8>, MediaError> {
        let src = ImageRef::new(src.0, src.1, src.2, pixel)
            .map_err(|e| MediaError::Scale(e.to_string()))?;
        let mut out = Image::new(dst.0, dst.1, pixel);
        self.resizer
            .resize(&src, &mut out, &self.options)
            .map_err(|e| MediaError::Scale(e.to_string()))?;
        Ok(out.into_vec())
    }
}

impl Scaler for ResizeScaler {
    fn scale(&mut self, frame: &RawFrame) -> Result<RawFrame, MediaError> {
        frame.check()?;
        if (frame.width, frame.height) == (self.dst_width, self.dst_height) {
            return Ok(frame.clone());
        }
        let (dst_w, dst_h) = (self.dst_width, self.dst_height);
        let data = match frame.planes()? {
            None => self.resize(
                (frame.width, frame.height, &frame.data),
                (dst_w, dst_h),
                PixelType::U8x3,
            )?,
            // Each plane on its own: luma to the output size, chroma to its half size.
            Some(p) => {
                let (src_cw, src_ch) = chroma_size(frame.width, frame.height);
                let (dst_cw, dst_ch) = chroma_size(dst_w, dst_h);
                let mut out = self.resize((frame.width, frame.height, p.y), (dst_w, dst_h), U8)?;
                for plane in [p.u, p.v] {
                    let scaled = self.resize((src_cw, src_ch, plane), (dst_cw, dst_ch), U8)?;
                    out.extend_from_slice(&scaled);
                }
                out
            }
        };
        Ok(RawFrame {
            width: dst_w,
            height: dst_h,
            format: frame.format,
            data,
            seq: frame.seq,
            capture_us: frame.capture_us,
        })
    }
}

/// The size to scale `src_w` x `src_h` to so that it is about `dst_w` wide, keeping the
/// aspect ratio, with both dimensions even (4:2:0 chroma needs even sizes downstream).
///
/// Width: `dst_w` rounded down to even. Height: `src_h * width / src_w` rounded to the
/// nearest even number, ties up. Both at least 2. So `fit_width(640, 480, 380)` is
/// `(380, 286)` (exact height 285). A zero-sized source gives height 2.
pub fn fit_width(src_w: u32, src_h: u32, dst_w: u32) -> (u32, u32) {
    let width = (dst_w & !1).max(2);
    if src_w == 0 {
        return (width, 2);
    }
    // Nearest even h = 2 * round(src_h * width / (2 * src_w)), in integers, ties up.
    let num = u64::from(src_h) * u64::from(width);
    let den = 2 * u64::from(src_w);
    let half_height = (num + den / 2) / den;
    let height = u32::try_from(2 * half_height)
        .unwrap_or(u32::MAX - 1)
        .max(2);
    (width, height)
}

/// The output size for a `src_w` x `src_h` source when the user asked for `width` and/or
/// `height`: both give exactly that; one alone keeps the aspect ratio ([`fit_width`], or its
/// mirror for height); neither keeps the source's size.
pub fn output_size(src_w: u32, src_h: u32, width: Option<u32>, height: Option<u32>) -> (u32, u32) {
    match (width, height) {
        (Some(w), Some(h)) => (w, h),
        (Some(w), None) => fit_width(src_w, src_h, w),
        (None, Some(h)) => {
            let (h, w) = fit_width(src_h, src_w, h);
            (w, h)
        }
        (None, None) => (src_w, src_h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(width: u32, height: u32) -> RawFrame {
        RawFrame {
            width,
            height,
            format: crate::PixelFormat::Rgb8,
            data: (0..width * height * 3).map(|i| (i % 256) as u8).collect(),
            seq: 7,
            capture_us: 99,
        }
    }

    #[test]
    fn fit_width_keeps_aspect_with_even_dimensions() {
        assert_eq!(fit_width(640, 480, 380), (380, 286));
        assert_eq!(fit_width(1280, 720, 380), (380, 214)); // exact 213.75
        assert_eq!(fit_width(1920, 1080, 640), (640, 360));
        assert_eq!(fit_width(640, 480, 381), (380, 286));
        assert_eq!(fit_width(640, 480, 0), (2, 2));
        assert_eq!(fit_width(0, 480, 100), (100, 2));
        assert_eq!(fit_width(1, u32::MAX, u32::MAX).1 % 2, 0);
    }

    #[test]
    fn output_size_keeps_aspect_for_one_dimension() {
        assert_eq!(output_size(640, 480, None, None), (640, 480));
        assert_eq!(output_size(640, 480, Some(380), None), (380, 286));
        assert_eq!(output_size(1280, 720, None, Some(360)), (640, 360));
        assert_eq!(output_size(1280, 720, Some(100), Some(100)), (100, 100));
    }

    #[test]
    fn scaled_frame_has_output_size_and_keeps_metadata() {
        let (w, h) = fit_width(640, 480, 380);
        let mut scaler = ResizeScaler::new(w, h).expect("valid size");
        for src in [frame(640, 480), frame(161, 121)] {
            let out = scaler.scale(&src).expect("scales");
            assert_eq!((out.width, out.height), (380, 286));
            assert_eq!(out.data.len(), 380 * 286 * 3);
            assert_eq!((out.seq, out.capture_us), (7, 99));
        }
    }

    #[test]
    fn same_size_passes_through_unchanged() {
        let src = frame(320, 240);
        let out = ResizeScaler::new(320, 240)
            .expect("valid")
            .scale(&src)
            .expect("scales");
        assert_eq!(out, src);
    }

    #[test]
    fn flat_colour_stays_flat_when_scaled() {
        let src = RawFrame {
            width: 640,
            height: 480,
            format: crate::PixelFormat::Rgb8,
            data: [10u8, 200, 30].repeat(640 * 480),
            seq: 0,
            capture_us: 0,
        };
        let out = ResizeScaler::new(100, 50)
            .expect("valid")
            .scale(&src)
            .expect("scales");
        assert!(out.data.chunks_exact(3).all(|p| p == [10, 200, 30]));
    }

    #[test]
    fn i420_is_scaled_plane_by_plane_and_stays_i420() {
        // A flat colour stays flat in every plane, at even and odd sizes both ways.
        let flat = |w: u32, h: u32| {
            RawFrame::rgb(w, h, [10u8, 200, 30].repeat((w * h) as usize), 3, 4)
                .into_i420()
                .expect("valid")
        };
        for ((sw, sh), (dw, dh)) in [
            ((640, 480), (380, 286)),
            ((161, 121), (7, 5)),
            ((3, 3), (10, 9)),
        ] {
            let src = flat(sw, sh);
            let want = src.planes().expect("valid").expect("I420");
            let (y, u, v) = (want.y[0], want.u[0], want.v[0]);
            let out = ResizeScaler::new(dw, dh)
                .expect("valid")
                .scale(&src)
                .expect("scales");
            assert_eq!(
                (out.width, out.height, out.format),
                (dw, dh, crate::PixelFormat::I420)
            );
            assert_eq!((out.seq, out.capture_us), (3, 4));
            let p = out.planes().expect("valid length").expect("I420");
            assert!(p.y.iter().all(|&s| s == y), "{dw}x{dh}");
            assert!(
                p.u.iter().all(|&s| s == u) && p.v.iter().all(|&s| s == v),
                "{dw}x{dh}"
            );
        }
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(ResizeScaler::new(0, 10).is_err());
        assert!(ResizeScaler::new(10, 7681).is_err());
        let mut bad = frame(10, 10);
        bad.data.pop();
        let mut scaler = ResizeScaler::new(5, 5).expect("valid");
        assert!(matches!(
            scaler.scale(&bad),
            Err(MediaError::BufferLength { .. })
        ));
    }
}
