//! JPEG through mozjpeg (libjpeg-turbo's SIMD DCT and Huffman coder), used when the bundled
//! mozjpeg was built with its SIMD code: I420 planes through its raw-data API (no colour
//! conversion, no downsampling), packed RGB8 or BGR8 rows through its scanline API (its SIMD
//! colour conversion and 2x2 downsampling, reading the caller's rows where they are: BGR
//! from OpenCV is never reordered or copied first).
//!
//! mozjpeg-sys builds from bundled C source with `cc`. On x86 its SIMD code is NASM
//! assembly: without `nasm` on the build machine it quietly builds the portable C paths,
//! which are slower than jpeg-encoder (deps.md §1: 3.0 against 1.57 ms at 640x480), so
//! [`has_simd`] asks the built library and [`crate::JpegEncoder`] uses jpeg-encoder then. On
//! aarch64 the NEON code needs only the C compiler.

use std::os::raw::c_int;
use std::sync::OnceLock;

use mozjpeg::{ColorSpace, CompInfoExt, Compress, Decompress};

use crate::encode::{C_TO_FULL, Y_TO_FULL};
use crate::source::yuv::Planes;
use crate::{MediaError, PixelFormat};

extern "C" {
    // libjpeg-turbo's SIMD dispatch (simd/*/jsimd.c with SIMD, jsimd_none.c without, where
    // both return 0). Both are plain `int f(void)` that read the CPU's features.
    fn jsimd_can_fdct_islow() -> c_int;
    fn jsimd_can_huff_encode_one_block() -> c_int;
}

/// True if the linked mozjpeg has SIMD DCT and Huffman coding on this CPU.
pub fn has_simd() -> bool {
    static SIMD: OnceLock<bool> = OnceLock::new();
    *SIMD.get_or_init(|| {
        // SAFETY: both functions take nothing and only read CPU features and the
        // JSIMD_* environment variables, once (libjpeg-turbo caches them).
        unsafe { jsimd_can_fdct_islow() != 0 && jsimd_can_huff_encode_one_block() != 0 }
    })
}

/// Planes padded to mozjpeg's MCU multiples, in JFIF's full range; kept between frames.
#[derive(Debug, Default)]
pub struct RawDataEncoder {
    planes: [Vec<u8>; 3],
}

impl RawDataEncoder {
    /// One baseline 4:2:0 JPEG of a `width` x `height` I420 picture at `quality`, appended
    /// to `out`. The caller has checked `planes` against the size (`RawFrame::planes`).
    pub fn encode(
        &mut self,
        planes: &Planes<'_>,
        (width, height): (u16, u16),
        quality: u8,
        out: &mut Vec<u8>,
    ) -> Result<(), MediaError> {
        let buffers = &mut self.planes;
        let output = std::mem::take(out);
        // mozjpeg reports libjpeg errors by panicking (its error_exit unwinds); nothing here
        // is left half-updated by one, so catching it is safe.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let mut c = Compress::new(ColorSpace::JCS_YCbCr);
            c.set_fastest_defaults();
            c.set_size(usize::from(width), usize::from(height));
            c.set_quality(f32::from(quality));
            c.set_raw_data_in(true);
            c.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
            let mut c = c.start_compress(output).map_err(|e| e.to_string())?;
            let (w, h) = (usize::from(width), usize::from(height));
            let sources = [
                (planes.y, planes.y_stride, w, h, &Y_TO_FULL),
                (
                    planes.u,
                    planes.uv_stride,
                    w.div_ceil(2),
                    h.div_ceil(2),
                    &C_TO_FULL,
                ),
                (
                    planes.v,
                    planes.uv_stride,
                    w.div_ceil(2),
                    h.div_ceil(2),
                    &C_TO_FULL,
                ),
            ];
            for ((comp, buffer), (src, stride, sw, sh, table)) in
                c.components().iter().zip(buffers.iter_mut()).zip(sources)
            {
                pad_plane(
                    buffer,
                    (comp.row_stride(), comp.col_stride()),
                    (src, stride, sw, sh),
                    table,
                );
            }
            let slices = [&buffers[0][..], &buffers[1][..], &buffers[2][..]];
            if !c.write_raw_data(&slices) {
                return Err("mozjpeg took fewer rows than the picture has".to_owned());
            }
            c.finish().map_err(|e| e.to_string())
        }));
        into_out(result, out, || format!("{width}x{height} I420"))
    }
}

/// A compression's outcome into `out`, or the error: libjpeg's message (or `picture` when
/// it unwound without one).
fn into_out(
    result: std::thread::Result<Result<Vec<u8>, String>>,
    out: &mut Vec<u8>,
    picture: impl FnOnce() -> String,
) -> Result<(), MediaError> {
    match result {
        Ok(Ok(jpeg)) => {
            *out = jpeg;
            Ok(())
        }
        Ok(Err(reason)) => Err(MediaError::Encode(format!("mozjpeg: {reason}"))),
        Err(_) => Err(MediaError::Encode(format!(
            "mozjpeg failed on a {} picture",
            picture()
        ))),
    }
}

/// One baseline 4:2:0 JPEG of a `width` x `height` picture of packed `format` pixels (RGB8
/// or BGR8, tightly packed: the caller checked the length) at `quality`, appended to `out`.
pub fn encode_packed(
    pixels: &[u8],
    format: PixelFormat,
    (width, height): (u16, u16),
    quality: u8,
    out: &mut Vec<u8>,
) -> Result<(), MediaError> {
    let color_space = match format {
        PixelFormat::Rgb8 => ColorSpace::JCS_EXT_RGB,
        PixelFormat::Bgr8 => ColorSpace::JCS_EXT_BGR,
        other => {
            return Err(MediaError::Encode(format!(
                "mozjpeg's scanline path takes RGB8 or BGR8, not {}",
                other.name()
            )))
        }
    };
    let output = std::mem::take(out);
    // As in `RawDataEncoder::encode`: libjpeg errors unwind, nothing is left half-updated.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let mut c = Compress::new(color_space);
        c.set_fastest_defaults();
        c.set_size(usize::from(width), usize::from(height));
        c.set_quality(f32::from(quality));
        c.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
        let mut c = c.start_compress(output).map_err(|e| e.to_string())?;
        c.write_scanlines(pixels).map_err(|e| e.to_string())?;
        c.finish().map_err(|e| e.to_string())
    }));
    into_out(result, out, || {
        format!("{width}x{height} {}", format.name())
    })
}

/// A whole JPEG decoded to packed BGR8 (libjpeg-turbo's SIMD IDCT, upsampling and colour
/// conversion straight into BGR, as simplejpeg does for OpenCV): `(width, height, pixels)`,
/// or why not. Refuses a picture over `max_dimension` either way before allocating.
pub fn decode_bgr(data: &[u8], max_dimension: u32) -> Result<(u32, u32, Vec<u8>), String> {
    // libjpeg errors unwind (see `RawDataEncoder::encode`); the decoder is dropped with them.
    let result = std::panic::catch_unwind(|| {
        let decompress = Decompress::new_mem(data).map_err(|e| e.to_string())?;
        let (width, height) = decompress.size();
        let dimension = |n: usize| {
            u32::try_from(n)
                .ok()
                .filter(|&n| (1..=max_dimension).contains(&n))
        };
        let (Some(w), Some(h)) = (dimension(width), dimension(height)) else {
            return Err(format!(
                "{width}x{height} is outside 1..={max_dimension} each way"
            ));
        };
        let mut started = decompress
            .to_colorspace(ColorSpace::JCS_EXT_BGR)
            .map_err(|e| e.to_string())?;
        let mut bgr = vec![0u8; width * height * 3];
        let rows = started
            .read_scanlines_into(&mut bgr)
            .map_err(|e| e.to_string())?
            .len();
        if rows != bgr.len() {
            return Err(format!("gave {rows} of {} bytes", bgr.len()));
        }
        started.finish().map_err(|e| e.to_string())?;
        Ok((w, h, bgr))
    });
    result.unwrap_or_else(|panic| {
        Err(panic
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "mozjpeg failed".to_owned()))
    })
}

/// Copies a `sw` x `sh` plane (rows `stride` apart) into `dst`, `row_stride` x `rows`,
/// through `table` (limited → full range), repeating the last column and row into the
/// padding as libjpeg does for its own edge blocks.
fn pad_plane(
    dst: &mut Vec<u8>,
    (row_stride, rows): (usize, usize),
    (src, stride, sw, sh): (&[u8], usize, usize, usize),
    table: &[u8; 256],
) {
    dst.clear();
    dst.resize(row_stride * rows, 0);
    for (r, row) in dst.chunks_exact_mut(row_stride).enumerate() {
        let line = &src[r.min(sh - 1) * stride..][..sw];
        for (d, &s) in row.iter_mut().zip(line) {
            *d = table[usize::from(s)];
        }
        let last = row[sw - 1];
        row[sw..].fill(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::tests::camera_like_crop;
    use crate::{decode_jpeg, psnr, Encoder, JpegBackend, JpegEncoder};

    #[test]
    fn mozjpeg_from_planes_matches_jpeg_encoder_at_odd_and_even_sizes() {
        // Runs with or without SIMD (the C paths give the same pictures, slower).
        for (w, h) in [(1, 1), (3, 5), (67, 33), (161, 121), (640, 480)] {
            let yuv = camera_like_crop(w, h);
            let reference = yuv.to_rgb().expect("valid");
            let mut db = [0.0; 2];
            for (i, backend) in [JpegBackend::Mozjpeg, JpegBackend::JpegEncoder]
                .into_iter()
                .enumerate()
            {
                let mut enc = JpegEncoder::with_backend(90, backend).expect("valid");
                let jpeg = enc.encode(&yuv).expect("encodes");
                let img = decode_jpeg(&jpeg.data).expect("decodes");
                assert_eq!((img.width, img.height), (w, h), "{backend:?}");
                db[i] = psnr(&reference, &img.rgb);
            }
            assert!(
                db[0] >= db[1] - 0.2,
                "{w}x{h}: mozjpeg {:.2} dB, jpeg-encoder {:.2}",
                db[0],
                db[1]
            );
        }
    }

    #[test]
    fn backend_is_described_for_the_log() {
        assert!(!JpegBackend::best().describe().is_empty());
        assert_eq!(has_simd(), JpegBackend::best() == JpegBackend::Mozjpeg);
    }
}
