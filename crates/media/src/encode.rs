//! Frame encoders: the [`Encoder`] trait and baseline JPEG via `jpeg-encoder` (H.264 is in
//! [`crate::h264`]).

use bytes::Bytes;
use jpeg_encoder::{ColorType, ImageBuffer, JpegColorType, SamplingFactor};

use crate::mozjpeg::RawDataEncoder;
use crate::source::yuv::Planes;
use crate::{Codec, EncodedFrame, MediaError, PixelFormat, RawFrame};

/// Turns raw frames into compressed frames. One encoder per stream.
pub trait Encoder: Send {
    /// The codec this encoder produces.
    fn codec(&self) -> Codec;
    /// Compress one frame; `seq` and `capture_us` are copied through.
    fn encode(&mut self, frame: &RawFrame) -> Result<EncodedFrame, MediaError>;
    /// Makes the next frame a keyframe (a viewer joined, or a frame was lost). A no-op for
    /// codecs whose every frame is one.
    fn force_keyframe(&mut self) {}
}

/// Which encoder a [`JpegEncoder`] gives frames to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JpegBackend {
    /// mozjpeg (bundled C, SIMD when built with it): I420 planes go in as they are (its
    /// raw-data API), packed RGB8 and BGR8 rows as they are (its scanline API, its SIMD
    /// colour conversion).
    Mozjpeg,
    /// jpeg-encoder (pure Rust, AVX2 DCT when the CPU has it), fed I420 planes row by row,
    /// packed RGB8 and BGR8 as they are.
    JpegEncoder,
}

impl JpegBackend {
    /// The faster one in this build: mozjpeg when its SIMD code is in (x86: `nasm` was
    /// found when it was built; aarch64: always), jpeg-encoder otherwise (mozjpeg's C paths
    /// are slower than jpeg-encoder).
    pub fn best() -> Self {
        if crate::mozjpeg::has_simd() {
            JpegBackend::Mozjpeg
        } else {
            JpegBackend::JpegEncoder
        }
    }

    /// One line for logs and `--version`.
    pub fn describe(self) -> &'static str {
        match (self, crate::mozjpeg::has_simd()) {
            (JpegBackend::Mozjpeg, true) => "mozjpeg with SIMD, from I420 planes or RGB/BGR rows",
            (JpegBackend::Mozjpeg, false) => {
                "mozjpeg without SIMD, from I420 planes or RGB/BGR rows"
            }
            (JpegBackend::JpegEncoder, true) => "jpeg-encoder (pure Rust)",
            (JpegBackend::JpegEncoder, false) => {
                "jpeg-encoder (pure Rust; mozjpeg was built without SIMD: install nasm and rebuild for about 3x faster JPEG)"
            }
        }
    }
}

/// Baseline JPEG encoder, 4:2:0 chroma: I420, RGB8 and BGR8 frames as they are, through
/// mozjpeg's SIMD paths when this build has them, else pure-Rust jpeg-encoder (AVX2 when the
/// CPU has it). See [`JpegBackend`].
#[derive(Debug)]
pub struct JpegEncoder {
    quality: u8,
    /// mozjpeg's raw-data encoder, for [`JpegBackend::Mozjpeg`] (packed frames go to
    /// mozjpeg too, when this is set).
    mozjpeg: Option<RawDataEncoder>,
    /// Output scratch buffer; keeps its capacity between frames so steady-state encoding
    /// does not regrow it. Each frame's bytes are copied out once, to an exact-size `Bytes`.
    buf: Vec<u8>,
}

impl JpegEncoder {
    /// An encoder at `quality` (1..=100, higher is better and bigger).
    pub fn new(quality: u8) -> Result<Self, MediaError> {
        let backend = JpegBackend::best();
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| tracing::info!("JPEG encoder: {}", backend.describe()));
        Self::with_backend(quality, backend)
    }

    /// An encoder at `quality` that gives I420 frames to `backend` (for comparisons and
    /// tests; [`JpegEncoder::new`] picks the faster).
    pub fn with_backend(quality: u8, backend: JpegBackend) -> Result<Self, MediaError> {
        if !(1..=100).contains(&quality) {
            return Err(MediaError::InvalidQuality { quality });
        }
        Ok(Self {
            quality,
            mozjpeg: (backend == JpegBackend::Mozjpeg).then(RawDataEncoder::default),
            buf: Vec::new(),
        })
    }

    /// The quality in use.
    pub fn quality(&self) -> u8 {
        self.quality
    }

    /// Changes the quality from the next frame on (1..=100).
    pub fn set_quality(&mut self, quality: u8) -> Result<(), MediaError> {
        if !(1..=100).contains(&quality) {
            return Err(MediaError::InvalidQuality { quality });
        }
        self.quality = quality;
        Ok(())
    }
}

impl Encoder for JpegEncoder {
    fn codec(&self) -> Codec {
        Codec::Jpeg
    }

    fn encode(&mut self, frame: &RawFrame) -> Result<EncodedFrame, MediaError> {
        frame.check()?;
        let too_big = || MediaError::InvalidSize {
            width: frame.width,
            height: frame.height,
            reason: "JPEG width and height must be <= 65535",
        };
        let width = u16::try_from(frame.width).map_err(|_| too_big())?;
        let height = u16::try_from(frame.height).map_err(|_| too_big())?;

        self.buf.clear();
        let planes = frame.planes()?;
        match (&planes, &mut self.mozjpeg) {
            (Some(planes), Some(mozjpeg)) => {
                mozjpeg.encode(planes, (width, height), self.quality, &mut self.buf)?;
            }
            (None, Some(_)) => crate::mozjpeg::encode_packed(
                &frame.data,
                frame.format,
                (width, height),
                self.quality,
                &mut self.buf,
            )?,
            (_, None) => {
                let mut encoder = jpeg_encoder::Encoder::new(&mut self.buf, self.quality);
                // jpeg-encoder switches to 4:4:4 at quality >= 90; keep 4:2:0 at every
                // quality so size and speed change smoothly with quality.
                encoder.set_sampling_factor(SamplingFactor::R_4_2_0);
                let done = match planes {
                    // The planes go in as they are: no colour conversion, and the encoder's
                    // 2x2 subsampling picks each chroma sample back exactly (see `I420Image`).
                    Some(planes) => encoder.encode_image(I420Image {
                        planes,
                        width,
                        height,
                    }),
                    None if frame.format == PixelFormat::Bgr8 => {
                        encoder.encode(&frame.data, width, height, ColorType::Bgr)
                    }
                    None => encoder.encode(&frame.data, width, height, ColorType::Rgb),
                };
                done.map_err(|e| MediaError::Encode(e.to_string()))?;
            }
        }

        Ok(EncodedFrame {
            codec: Codec::Jpeg,
            width: frame.width,
            height: frame.height,
            data: Bytes::copy_from_slice(&self.buf),
            seq: frame.seq,
            capture_us: frame.capture_us,
            is_keyframe: true,
        })
    }
}

/// Limited-range ("TV", BT.601) luma 16..=235 → JFIF's full range 0..=255, rounded and
/// clipped. JPEG (JFIF) defines YCbCr as full range and every decoder reads it so; I420
/// from files and cameras is limited range. Same matrix (BT.601), so only the range moves.
pub(crate) const Y_TO_FULL: [u8; 256] = range_table(16, 219);
/// Limited-range chroma 16..=240 (centre 128) → full range 0..=255.
pub(crate) const C_TO_FULL: [u8; 256] = range_table(128, 224);

/// `(x - offset) * 255 / span (+ 128 for chroma)`, rounded, clipped to 0..=255.
const fn range_table(offset: i32, span: i32) -> [u8; 256] {
    let centre = if offset == 128 { 128 } else { 0 };
    let mut table = [0u8; 256];
    let mut x = 0;
    while x < 256 {
        let scaled = (x as i32 - offset) * 255;
        // Round half away from zero.
        let q = if scaled >= 0 {
            (scaled + span / 2) / span
        } else {
            (scaled - span / 2) / span
        };
        let v = q + centre;
        table[x] = if v < 0 {
            0
        } else if v > 255 {
            255
        } else {
            v as u8
        };
        x += 1;
    }
    table
}

/// An I420 picture as jpeg-encoder's row source. The encoder asks for full-resolution
/// rows of each component and subsamples chroma 2x2 by picking one sample (its default,
/// `ChromaSubsamplingMethod::Nearest`), so each chroma sample is repeated twice per row
/// here and comes back out unchanged. The only conversion is a table lookup per sample from
/// limited to full range (see [`Y_TO_FULL`]): no RGB, no colour matrix.
struct I420Image<'a> {
    planes: Planes<'a>,
    width: u16,
    height: u16,
}

impl ImageBuffer for I420Image<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.width
    }

    fn height(&self) -> u16 {
        self.height
    }

    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        // `RawFrame::planes` checked the lengths against the size; the encoder asks only
        // for rows below `height`.
        let (w, row, p) = (usize::from(self.width), usize::from(y), &self.planes);
        let luma = &p.y[row * p.y_stride..][..w];
        buffers[0].extend(luma.iter().map(|&s| Y_TO_FULL[usize::from(s)]));
        let c = (row / 2) * p.uv_stride;
        let cw = w.div_ceil(2);
        for (buffer, plane) in [(1, p.u), (2, p.v)] {
            let samples = &plane[c..c + cw];
            let full = samples.iter().map(|&s| C_TO_FULL[usize::from(s)]);
            buffers[buffer].extend(full.flat_map(|s| [s, s]).take(w));
        }
    }
}

/// Peak signal-to-noise ratio between two pictures of the same size (e.g. RGB8 before
/// encoding and after decoding), dB; infinite when they are equal, 0 when their lengths
/// differ (nothing in common is as bad as it gets).
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    if a.len() != b.len() {
        return 0.0;
    }
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mse = sum / a.len().max(1) as f64;
    if mse == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// Bytes of one COM segment: marker (2) + length field (2) + payload (<= 65533).
const MAX_SEGMENT: usize = 2 + 65535;
const MIN_SEGMENT: usize = 4;

/// Grow a JPEG to exactly `target_len` bytes with COM (comment, 0xFFFE) segments, so it
/// still decodes to the same pixels. Used to make frames of a chosen size for transport
/// benchmarks.
///
/// The padding goes right after SOI, or after the JFIF APP0 segment if the file starts
/// with one (JFIF requires APP0 to come first; decoders accept either, this keeps the file
/// conformant). Returns the input unchanged if `target_len == jpeg.len()`; errors if
/// `target_len` is smaller, or larger by less than 4 bytes (the smallest COM segment), or
/// if the input does not start with SOI.
pub fn pad_jpeg(jpeg: &[u8], target_len: usize) -> Result<Vec<u8>, MediaError> {
    let err = |reason| MediaError::Pad {
        jpeg_len: jpeg.len(),
        target_len,
        reason,
    };
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return Err(err("input does not start with a JPEG SOI marker"));
    }
    if target_len == jpeg.len() {
        return Ok(jpeg.to_vec());
    }
    let extra = target_len
        .checked_sub(jpeg.len())
        .ok_or_else(|| err("target is shorter than the input"))?;
    if extra < MIN_SEGMENT {
        return Err(err(
            "padding needs at least 4 bytes (one empty COM segment)",
        ));
    }

    let mut insert_at = 2;
    if jpeg.get(2..4) == Some(&[0xFF, 0xE0]) {
        if let Some(len) = jpeg.get(4..6) {
            let app0_end = 4 + usize::from(u16::from_be_bytes([len[0], len[1]]));
            if app0_end <= jpeg.len() {
                insert_at = app0_end;
            }
        }
    }

    // Split `extra` into n near-equal segments, each within MIN_SEGMENT..=MAX_SEGMENT:
    // with n > 1, extra > MAX_SEGMENT so every part is > MAX_SEGMENT / 2.
    let n = extra.div_ceil(MAX_SEGMENT);
    let mut out = Vec::with_capacity(target_len);
    out.extend_from_slice(&jpeg[..insert_at]);
    for i in 0..n {
        let seg = extra / n + usize::from(i < extra % n);
        let len_field =
            u16::try_from(seg - 2).expect("segment <= MAX_SEGMENT, so seg - 2 fits u16");
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&len_field.to_be_bytes());
        out.resize(out.len() + seg - MIN_SEGMENT, 0);
    }
    out.extend_from_slice(&jpeg[insert_at..]);
    debug_assert_eq!(out.len(), target_len);
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::source::yuv::{planar_to_rgb, Subsampling};
    use crate::source::{TestPattern, TestPatternConfig};
    use crate::{decode_jpeg, psnr, ManualClock};
    use std::sync::Arc;

    fn pattern_frame(width: u32, height: u32, seq: u64) -> RawFrame {
        let config = TestPatternConfig {
            width,
            height,
            fps: 30.0,
            label: "encode test".into(),
            paced: false,
        };
        let mut p = TestPattern::new(config, Arc::new(ManualClock::new(0))).expect("valid config");
        p.render(seq, 1_700_000_000_000_000)
    }

    #[test]
    fn quality_outside_1_to_100_is_an_error() {
        assert!(matches!(
            JpegEncoder::new(0),
            Err(MediaError::InvalidQuality { quality: 0 })
        ));
        assert!(matches!(
            JpegEncoder::new(101),
            Err(MediaError::InvalidQuality { quality: 101 })
        ));
        assert!(JpegEncoder::new(1).is_ok());
        assert!(JpegEncoder::new(100).is_ok());
    }

    #[test]
    fn pattern_round_trip_at_q80_has_psnr_at_least_30_db() {
        let mut enc = JpegEncoder::new(80).expect("valid quality");
        for (w, h, seq) in [(160, 120), (320, 240), (640, 480), (1280, 720)]
            .into_iter()
            .flat_map(|(w, h)| [0, 77, 1001, 123_457].map(|seq| (w, h, seq)))
        {
            let frame = pattern_frame(w, h, seq);
            let jpeg = enc.encode(&frame).expect("encodes");
            assert_eq!((jpeg.width, jpeg.height, jpeg.seq), (w, h, seq));
            assert_eq!(jpeg.capture_us, frame.capture_us);
            assert!(jpeg.is_keyframe);
            assert_eq!(jpeg.codec, Codec::Jpeg);
            let img = decode_jpeg(&jpeg.data).expect("decodes");
            assert_eq!((img.width, img.height), (w, h));
            let db = psnr(&frame.data, &img.rgb);
            // Measured: 30.4..32.5 dB at 160x120 (1-px text strokes), 34..36 at 320x240,
            // ~38 at 640x480, ~40 at 1280x720.
            assert!(db >= 30.0, "{w}x{h} seq {seq}: {db:.1} dB");
        }
    }

    /// Camera-like frames (bars, gradient, box, noise ±12 per channel) as a Y4M file or a
    /// camera holds them: I420.
    pub(crate) fn camera_like_i420(
        width: u32,
        height: u32,
        seqs: std::ops::Range<u64>,
    ) -> Vec<RawFrame> {
        let mut p = TestPattern::camera_like(width, height).expect("valid size");
        seqs.map(|seq| p.render(seq, seq * 33_333).into_i420().expect("valid"))
            .collect()
    }

    /// The top-left `w` x `h` (at most 640x480) of a camera-like frame, as I420.
    pub(crate) fn camera_like_crop(w: u32, h: u32) -> RawFrame {
        let frame = camera_like_i420(640, 480, 0..1)
            .remove(0)
            .into_rgb()
            .expect("valid");
        let rgb: Vec<u8> = frame
            .data
            .chunks_exact(640 * 3)
            .take(h as usize)
            .flat_map(|row| &row[..w as usize * 3])
            .copied()
            .collect();
        RawFrame::rgb(w, h, rgb, 0, 0).into_i420().expect("valid")
    }

    #[test]
    fn i420_jpeg_matches_the_rgb_path_on_camera_like_frames() {
        // Before frames stayed I420 the encoder got them as RGB8: the planes now go in as
        // they are, and the picture must be as good. Measured (yuv_bench, 60 frames):
        // 35.16 dB both ways at 640x480 q90.
        let mut enc = JpegEncoder::new(90).expect("valid quality");
        for frame in camera_like_i420(640, 480, 0..3) {
            let reference = frame.to_rgb().expect("valid").into_owned();
            let direct = decode_jpeg(&enc.encode(&frame).expect("encodes").data).expect("decodes");
            let rgb_frame = frame.clone().into_rgb().expect("valid");
            let via_rgb =
                decode_jpeg(&enc.encode(&rgb_frame).expect("encodes").data).expect("decodes");
            let (db, db_rgb) = (
                psnr(&reference, &direct.rgb),
                psnr(&reference, &via_rgb.rgb),
            );
            assert!(db >= 34.5, "frame {}: {db:.2} dB", frame.seq);
            assert!(
                db >= db_rgb - 0.2,
                "frame {}: {db:.2} dB, via RGB {db_rgb:.2}",
                frame.seq
            );
        }
    }

    /// `frame`'s pixels as BGR8 (what OpenCV gives).
    pub(crate) fn as_bgr(frame: &RawFrame) -> RawFrame {
        let rgb = frame.to_rgb().expect("valid");
        let bgr = rgb
            .chunks_exact(3)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect();
        RawFrame::bgr(frame.width, frame.height, bgr, frame.seq, frame.capture_us)
    }

    #[test]
    fn bgr_frames_give_the_bytes_their_rgb_twins_give() {
        // BGR rows go to the encoder as they are (no reordering copy), and the JPEG is the
        // one the same picture as RGB gives, with either backend, at odd and even sizes.
        for (w, h) in [(640, 480), (67, 33), (1, 1)] {
            let rgb = camera_like_crop(w, h).into_rgb().expect("valid");
            let bgr = as_bgr(&rgb);
            assert_eq!(bgr.to_rgb().expect("valid"), rgb.data);
            for backend in [JpegBackend::Mozjpeg, JpegBackend::JpegEncoder] {
                let mut enc = JpegEncoder::with_backend(90, backend).expect("valid");
                let from_rgb = enc.encode(&rgb).expect("encodes");
                let from_bgr = enc.encode(&bgr).expect("encodes");
                assert_eq!(from_bgr.data, from_rgb.data, "{w}x{h} {backend:?}");
                let img = decode_jpeg(&from_bgr.data).expect("decodes");
                let db = psnr(&rgb.data, &img.rgb);
                assert!(db >= 30.0, "{w}x{h} {backend:?}: {db:.2} dB");
            }
        }
    }

    #[test]
    fn packed_frames_through_mozjpeg_are_as_good_as_through_jpeg_encoder() {
        // Both 4:2:0 from the same RGB: libjpeg's colour conversion and box downsampling
        // against jpeg-encoder's.
        let rgb = camera_like_i420(640, 480, 0..1)
            .remove(0)
            .into_rgb()
            .expect("valid");
        let mut db = [0.0; 2];
        for (i, backend) in [JpegBackend::Mozjpeg, JpegBackend::JpegEncoder]
            .into_iter()
            .enumerate()
        {
            let mut enc = JpegEncoder::with_backend(90, backend).expect("valid");
            let img = decode_jpeg(&enc.encode(&rgb).expect("encodes").data).expect("decodes");
            db[i] = psnr(&rgb.data, &img.rgb);
        }
        assert!(
            db[0] >= db[1] - 0.3,
            "mozjpeg {:.2} dB, jpeg-encoder {:.2}",
            db[0],
            db[1]
        );
    }

    #[test]
    fn odd_sized_i420_encodes_and_decodes() {
        for (w, h) in [(1, 1), (3, 5), (67, 33)] {
            let yuv = camera_like_crop(w, h);
            let jpeg = JpegEncoder::new(90)
                .expect("valid")
                .encode(&yuv)
                .expect("encodes");
            let img = decode_jpeg(&jpeg.data).expect("decodes");
            assert_eq!((img.width, img.height), (w, h));
            // The exact (scalar) conversion, the one the JPEG paths are measured against.
            let planes = yuv.planes().expect("valid").expect("I420");
            let reference = planar_to_rgb(&planes, w, h, Subsampling::Half).expect("valid");
            let rgb_frame = RawFrame::rgb(w, h, reference.clone(), 0, 0);
            let jpeg = JpegEncoder::new(90)
                .expect("valid")
                .encode(&rgb_frame)
                .expect("encodes");
            let via_rgb = decode_jpeg(&jpeg.data).expect("decodes");
            let (db, db_rgb) = (psnr(&reference, &img.rgb), psnr(&reference, &via_rgb.rgb));
            // Above 50 dB both are within a level or two of the reference (one 1x1 RGB
            // pixel can come back exact, infinite dB): no worse than that is enough.
            assert!(
                db >= db_rgb.min(50.0) - 0.2,
                "{w}x{h}: {db:.2} dB, via RGB {db_rgb:.2}"
            );
        }
    }

    #[test]
    fn limited_range_tables_hit_the_ends_and_the_centre() {
        assert_eq!(
            (Y_TO_FULL[16], Y_TO_FULL[235], Y_TO_FULL[0], Y_TO_FULL[255]),
            (0, 255, 0, 255)
        );
        assert_eq!(
            (C_TO_FULL[16], C_TO_FULL[128], C_TO_FULL[240]),
            (0, 128, 255)
        );
    }

    #[test]
    fn encoder_rejects_bad_frames() {
        let mut enc = JpegEncoder::new(80).expect("valid quality");
        let mut frame = pattern_frame(160, 120, 0);
        frame.data.truncate(100);
        assert!(matches!(
            enc.encode(&frame),
            Err(MediaError::BufferLength { .. })
        ));
        let huge = RawFrame {
            width: 70_000,
            height: 1,
            format: crate::PixelFormat::Rgb8,
            data: vec![0; 70_000 * 3],
            seq: 0,
            capture_us: 0,
        };
        assert!(matches!(
            enc.encode(&huge),
            Err(MediaError::InvalidSize { .. })
        ));
    }

    #[test]
    fn odd_sizes_encode_and_decode() {
        let frame = RawFrame {
            width: 67,
            height: 33,
            format: crate::PixelFormat::Rgb8,
            data: (0..67 * 33 * 3).map(|i| (i % 251) as u8).collect(),
            seq: 1,
            capture_us: 2,
        };
        let jpeg = JpegEncoder::new(90)
            .expect("valid")
            .encode(&frame)
            .expect("encodes");
        let img = decode_jpeg(&jpeg.data).expect("decodes");
        assert_eq!(
            (img.width, img.height, img.rgb.len()),
            (67, 33, 67 * 33 * 3)
        );
    }

    #[test]
    fn pad_jpeg_gives_exact_length_and_same_pixels() {
        let frame = pattern_frame(320, 240, 9);
        let jpeg = JpegEncoder::new(80)
            .expect("valid")
            .encode(&frame)
            .expect("encodes");
        let original = decode_jpeg(&jpeg.data).expect("decodes");
        let len = jpeg.data.len();
        for target in [
            len,
            len + 4,
            len + 5,
            len + 1000,
            75_000,
            len + 65_537,
            len + 65_538,
            len + 65_541,
            300_000,
        ] {
            let padded = pad_jpeg(&jpeg.data, target).expect("pads");
            assert_eq!(padded.len(), target);
            let img = decode_jpeg(&padded).expect("padded JPEG decodes");
            assert_eq!(img, original, "target {target}");
        }
    }

    #[test]
    fn pad_jpeg_rejects_impossible_targets() {
        let jpeg = JpegEncoder::new(80)
            .expect("valid")
            .encode(&pattern_frame(160, 120, 0))
            .expect("encodes");
        let len = jpeg.data.len();
        for target in [0, len - 1, len + 1, len + 3] {
            assert!(
                matches!(pad_jpeg(&jpeg.data, target), Err(MediaError::Pad { .. })),
                "{target}"
            );
        }
        assert!(matches!(
            pad_jpeg(b"not a jpeg", 100),
            Err(MediaError::Pad { .. })
        ));
    }
}
