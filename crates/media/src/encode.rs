//! Frame encoders: the [`Encoder`] trait and baseline JPEG via `jpeg-encoder` (H.264 is in
//! [`crate::h264`]).

use bytes::Bytes;
use jpeg_encoder::{ColorType, SamplingFactor};

use crate::{Codec, EncodedFrame, MediaError, RawFrame};

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

/// Baseline JPEG encoder (pure Rust, AVX2 when the CPU has it), 4:2:0 chroma.
#[derive(Debug)]
pub struct JpegEncoder {
    quality: u8,
    /// Output scratch buffer; keeps its capacity between frames so steady-state encoding
    /// does not regrow it. Each frame's bytes are copied out once, to an exact-size `Bytes`.
    buf: Vec<u8>,
}

impl JpegEncoder {
    /// An encoder at `quality` (1..=100, higher is better and bigger).
    pub fn new(quality: u8) -> Result<Self, MediaError> {
        if !(1..=100).contains(&quality) {
            return Err(MediaError::InvalidQuality { quality });
        }
        Ok(Self {
            quality,
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
        let mut encoder = jpeg_encoder::Encoder::new(&mut self.buf, self.quality);
        // jpeg-encoder switches to 4:4:4 at quality >= 90; keep 4:2:0 at every quality so
        // size and speed change smoothly with quality.
        encoder.set_sampling_factor(SamplingFactor::R_4_2_0);
        encoder
            .encode(&frame.rgb, width, height, ColorType::Rgb)
            .map_err(|e| MediaError::Encode(e.to_string()))?;

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
mod tests {
    use super::*;
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
            let db = psnr(&frame.rgb, &img.rgb);
            // Measured: 30.4..32.5 dB at 160x120 (1-px text strokes), 34..36 at 320x240,
            // ~38 at 640x480, ~40 at 1280x720.
            assert!(db >= 30.0, "{w}x{h} seq {seq}: {db:.1} dB");
        }
    }

    #[test]
    fn encoder_rejects_bad_frames() {
        let mut enc = JpegEncoder::new(80).expect("valid quality");
        let mut frame = pattern_frame(160, 120, 0);
        frame.rgb.truncate(100);
        assert!(matches!(
            enc.encode(&frame),
            Err(MediaError::BufferLength { .. })
        ));
        let huge = RawFrame {
            width: 70_000,
            height: 1,
            rgb: vec![0; 70_000 * 3],
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
            rgb: (0..67 * 33 * 3).map(|i| (i % 251) as u8).collect(),
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
