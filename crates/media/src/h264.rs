//! H.264 via OpenH264 (bundled C++, no system package): a low-latency encoder for live
//! streams, a decoder for viewers, and the Annex B helpers both need.
//!
//! Every encoded frame is one access unit in Annex B (start codes before each NAL unit);
//! keyframes are IDR pictures that carry SPS and PPS in front, so a decoder can start at
//! any keyframe with no other setup.

use bytes::Bytes;
use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Complexity, EncoderConfig, FrameRate, IntraFramePeriod, Level, Profile,
    RateControlMode, UsageType,
};
use openh264::formats::{RgbSliceU8, YUVBuffer, YUVSlices, YUVSource};
use openh264::OpenH264API;

use crate::source::yuv::{i420_from_planes, Planes};
use crate::source::MAX_DIMENSION;
use crate::{Codec, EncodedFrame, Encoder, MediaError, PixelFormat, RawFrame};
use vidcast_h264::is_keyframe;

/// Settings of [`H264Encoder`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct H264Config {
    /// Target bitrate, bits per second.
    pub bitrate_bps: u32,
    /// Frames per second the source delivers (rate control spreads the bitrate over them).
    pub fps: f64,
    /// A keyframe every this many frames (a late viewer waits at most this long).
    pub keyint_frames: u32,
    /// The highest bit rate this stream may be asked for (an adaptive ladder's top), when
    /// higher than `bitrate_bps`: the SPS level is chosen for it, so encoders for every rung
    /// write the same parameter sets and a recording or restream need not start over.
    pub level_bitrate_bps: Option<u32>,
}

impl Default for H264Config {
    /// 1.5 Mbit/s at 30 fps, a keyframe every 2 s.
    fn default() -> Self {
        Self {
            bitrate_bps: 1_500_000,
            fps: 30.0,
            keyint_frames: 60,
            level_bitrate_bps: None,
        }
    }
}

impl H264Config {
    /// `bitrate_bps` at `fps`, a keyframe every `keyint` (at least every frame).
    pub fn live(bitrate_bps: u32, fps: f64, keyint: std::time::Duration) -> Self {
        Self {
            bitrate_bps,
            fps,
            keyint_frames: (keyint.as_secs_f64() * fps).round().max(1.0) as u32,
            level_bitrate_bps: None,
        }
    }
}

/// H.264 constrained baseline encoder for live video: no B-frames (each frame goes out as
/// soon as it is encoded), one thread, bitrate rate control, periodic and on-demand IDR.
pub struct H264Encoder {
    encoder: openh264::encoder::Encoder,
    config: H264Config,
    /// I420 scratch picture for RGB8 frames, reused while the size stays the same.
    yuv: Option<YUVBuffer>,
    /// Output scratch; each frame's bytes are copied out once to an exact-size `Bytes`.
    buf: Vec<u8>,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl H264Encoder {
    /// An encoder with `config`; errors if a setting is out of range or OpenH264 fails.
    pub fn new(config: H264Config) -> Result<Self, MediaError> {
        if config.bitrate_bps < 10_000 {
            return Err(MediaError::Encode(format!(
                "H.264 bitrate {} bit/s is too low (at least 10000)",
                config.bitrate_bps
            )));
        }
        if !(config.fps.is_finite() && config.fps > 0.0) {
            return Err(MediaError::InvalidFps {
                fps: config.fps,
                max: crate::source::MAX_FPS,
            });
        }
        let settings = EncoderConfig::new()
            .bitrate(BitRate::from_bps(config.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(config.fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .usage_type(UsageType::CameraVideoRealTime)
            // OpenH264's baseline is constrained baseline: no B-slices, CAVLC, no FMO/ASO.
            .profile(Profile::Baseline)
            // deps.md: Low is 20 % faster than Medium at VGA for a small size cost.
            .complexity(Complexity::Low)
            .num_threads(1)
            // A skipped frame would leave a hole the viewer cannot tell from a loss.
            .skip_frames(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(config.keyint_frames));
        // OpenH264 picks the lowest level that allows the bit rate (and raises it for the
        // picture size), so without this each rung of a ladder would write a different SPS.
        let settings = match config.level_bitrate_bps {
            Some(top) => settings.level(level_for_bitrate(top.max(config.bitrate_bps))),
            None => settings,
        };
        let mut encoder =
            openh264::encoder::Encoder::with_api_config(OpenH264API::from_source(), settings)
                .map_err(|e| MediaError::Encode(format!("cannot start OpenH264: {e}")))?;
        quiet_warnings(&mut encoder);
        Ok(Self {
            encoder,
            config,
            yuv: None,
            buf: Vec::new(),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> H264Config {
        self.config
    }
}

impl Encoder for H264Encoder {
    fn codec(&self) -> Codec {
        Codec::H264
    }

    fn force_keyframe(&mut self) {
        self.encoder.force_intra_frame();
    }

    fn encode(&mut self, frame: &RawFrame) -> Result<EncodedFrame, MediaError> {
        frame.check()?;
        // 4:2:0 needs whole chroma samples; OpenH264's I420 buffer asserts on odd sizes.
        if !frame.width.is_multiple_of(2) || !frame.height.is_multiple_of(2) {
            return Err(MediaError::InvalidSize {
                width: frame.width,
                height: frame.height,
                reason: "H.264 (4:2:0) needs an even width and height",
            });
        }
        let (w, h) = (frame.width as usize, frame.height as usize);
        let stream = match frame.planes()? {
            // I420 goes in as it is. `planes` checked the lengths against the even size,
            // which is what `YUVSlices::new` asserts.
            Some(p) => self.encoder.encode(&YUVSlices::new(
                (p.y, p.u, p.v),
                (w, h),
                (p.y_stride, p.uv_stride, p.uv_stride),
            )),
            None => {
                let yuv = match &mut self.yuv {
                    Some(yuv) if yuv.dimensions() == (w, h) => yuv,
                    slot => slot.insert(YUVBuffer::new(w, h)),
                };
                if frame.format == PixelFormat::Bgr8 {
                    // Reordered to RGB8 first: OpenH264's AVX2 conversion takes RGB24, not
                    // BGR24 (its scalar path would), and the extra pass costs less (bgr_bench:
                    // 1.29 against 1.52 ms per 640x480 frame, encode included).
                    let rgb = crate::frame::swap_red_blue(&frame.data);
                    yuv.read_rgb8(RgbSliceU8::new(&rgb, (w, h)));
                } else {
                    yuv.read_rgb8(RgbSliceU8::new(&frame.data, (w, h)));
                }
                self.encoder.encode(yuv)
            }
        }
        .map_err(|e| MediaError::Encode(format!("OpenH264: {}", h264_error(&e))))?;
        self.buf.clear();
        stream.write_vec(&mut self.buf);
        Ok(EncodedFrame {
            codec: Codec::H264,
            width: frame.width,
            height: frame.height,
            is_keyframe: is_keyframe(&self.buf),
            data: Bytes::copy_from_slice(&self.buf),
            seq: frame.seq,
            capture_us: frame.capture_us,
        })
    }
}

/// OpenH264's ENCODER_OPTION_TRACE_LEVEL (codec_app_def.h).
const ENCODER_OPTION_TRACE_LEVEL: std::os::raw::c_int = 25;
/// OpenH264's WELS_LOG_ERROR: errors only.
const WELS_LOG_ERROR: std::os::raw::c_int = 1;

/// Keeps OpenH264 from printing warnings on stderr. Its parameter check warns at every
/// encoder start that the bit rate is not held without frame skipping (skipping is off on
/// purpose: a skipped frame would look like a loss); the crate sets the level only after it.
fn quiet_warnings(encoder: &mut openh264::encoder::Encoder) {
    let mut level = WELS_LOG_ERROR;
    // SAFETY: the trace level is the one option OpenH264 takes before initialisation
    // (welsEncoderExt.cpp, SetOption); it reads one int through the pointer, during the call.
    let rc = unsafe {
        encoder
            .raw_api()
            .set_option(ENCODER_OPTION_TRACE_LEVEL, (&raw mut level).cast())
    };
    if rc != 0 {
        tracing::debug!("OpenH264 did not take the trace level ({rc})");
    }
}

/// Decodes an H.264 stream access unit by access unit to I420 frames (what OpenH264
/// gives; [`RawFrame::to_rgb`] for whatever shows them).
///
/// Error concealment is off: a picture whose reference is missing is an error, never a
/// smeared picture. After an error, feed from the next keyframe on.
pub struct H264Decoder {
    decoder: Decoder,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Decoder").finish_non_exhaustive()
    }
}

impl H264Decoder {
    /// A decoder waiting for its first keyframe.
    pub fn new() -> Result<Self, MediaError> {
        let decoder = Decoder::new().map_err(|e| MediaError::Decode {
            len: 0,
            reason: format!("cannot start OpenH264: {}", h264_error(&e)),
        })?;
        Ok(Self { decoder })
    }

    /// Decodes one Annex B access unit; `None` if it held no picture (parameter sets only).
    /// `seq` and `capture_us` of the result are 0: the caller knows them.
    pub fn decode(&mut self, access_unit: &[u8]) -> Result<Option<RawFrame>, MediaError> {
        let decoded = self
            .decoder
            .decode(access_unit)
            .map_err(|e| MediaError::Decode {
                len: access_unit.len(),
                reason: format!("H.264: {}", h264_error(&e)),
            })?;
        decoded.map(|yuv| to_frame(&yuv)).transpose()
    }
}

/// The lowest H.264 level whose baseline MaxBR (table A-1, kbit/s) allows `bps`.
fn level_for_bitrate(bps: u32) -> Level {
    const LEVELS: [(u32, Level); 12] = [
        (64, Level::Level_1_0),
        (192, Level::Level_1_1),
        (384, Level::Level_1_2),
        (768, Level::Level_1_3),
        (2_000, Level::Level_2_0),
        (4_000, Level::Level_2_1),
        (10_000, Level::Level_3_0),
        (14_000, Level::Level_3_1),
        (20_000, Level::Level_3_2),
        (50_000, Level::Level_4_1),
        (135_000, Level::Level_5_0),
        (240_000, Level::Level_5_1),
    ];
    let kbps = bps.div_ceil(1000);
    LEVELS
        .iter()
        .find(|(max_kbps, _)| kbps <= *max_kbps)
        .map_or(Level::Level_5_2, |&(_, level)| level)
}

/// OpenH264's error without the crate's trailing remarks ("Backtraces enabled.").
pub(crate) fn h264_error(e: &openh264::Error) -> String {
    let text = e.to_string();
    text.split(" Decoding State")
        .next()
        .unwrap_or(&text)
        .to_owned()
}

/// One decoded picture, copied out of the decoder's buffer as an I420 frame (seq and time
/// are filled in by the caller).
pub(crate) fn to_frame(yuv: &impl YUVSource) -> Result<RawFrame, MediaError> {
    let (w, h) = yuv.dimensions();
    let (width, height) = match (u32::try_from(w), u32::try_from(h)) {
        (Ok(w), Ok(h)) if (1..=MAX_DIMENSION).contains(&w) && (1..=MAX_DIMENSION).contains(&h) => {
            (w, h)
        }
        _ => {
            return Err(MediaError::InvalidSize {
                width: w as u32,
                height: h as u32,
                reason: "decoded H.264 picture size out of range",
            })
        }
    };
    let (y_stride, uv_stride, _) = yuv.strides();
    let planes = Planes {
        y: yuv.y(),
        u: yuv.u(),
        v: yuv.v(),
        y_stride,
        uv_stride,
    };
    Ok(RawFrame::i420(
        width,
        height,
        i420_from_planes(&planes, width, height)?,
        0,
        0,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::psnr;
    use crate::source::{read_frame_number, TestPattern, TestPatternConfig};
    use crate::ManualClock;
    use std::sync::Arc;
    use vidcast_h264::{codec_string, has_b_slices, nal_units, ParameterSets, NAL_PPS, NAL_SPS};

    fn pattern(width: u32, height: u32) -> TestPattern {
        let config = TestPatternConfig {
            width,
            height,
            fps: 30.0,
            label: "h264 test".into(),
            paced: false,
        };
        TestPattern::new(config, Arc::new(ManualClock::new(0))).expect("valid config")
    }

    #[test]
    fn openh264_makes_no_b_slices() {
        let mut source = pattern(160, 120);
        let mut enc = H264Encoder::new(H264Config::default()).expect("encoder");
        for seq in 0..40 {
            let frame = enc
                .encode(&source.render(seq, seq * 33_333))
                .expect("encodes");
            assert!(!has_b_slices(&frame.data), "frame {seq}");
        }
    }

    #[test]
    fn keyframes_without_parameter_sets_get_the_last_ones_seen() {
        let mut source = pattern(160, 120);
        let mut enc = H264Encoder::new(H264Config {
            keyint_frames: 10,
            ..H264Config::default()
        })
        .expect("encoder");
        let mut sets = ParameterSets::default();
        let mut dec = H264Decoder::new().expect("decoder");
        let mut stripped_keyframes = 0;
        for seq in 0..25 {
            let frame = enc
                .encode(&source.render(seq, seq * 33_333))
                .expect("encodes");
            // A camera that sends SPS and PPS with its first keyframe only.
            let sent: Vec<u8> = if seq == 0 {
                frame.data.to_vec()
            } else {
                let mut without = Vec::new();
                for nal in nal_units(&frame.data) {
                    if !matches!(nal[0] & 0x1f, NAL_SPS | NAL_PPS) {
                        without.extend_from_slice(&[0, 0, 0, 1]);
                        without.extend_from_slice(nal);
                    }
                }
                stripped_keyframes += usize::from(frame.is_keyframe);
                without
            };
            let completed = sets.complete(&sent);
            assert!(sets.known());
            if frame.is_keyframe {
                assert!(
                    codec_string(&completed).is_some(),
                    "frame {seq} has its SPS"
                );
                // Any keyframe is a fresh start for a new decoder.
                let mut fresh = H264Decoder::new().expect("decoder");
                assert!(fresh.decode(&completed).expect("decodes").is_some());
            } else {
                assert_eq!(completed, sent, "other frames are untouched");
            }
            assert!(dec.decode(&completed).expect("decodes").is_some());
        }
        assert_eq!(stripped_keyframes, 2);
    }

    #[test]
    fn every_rung_of_a_ladder_writes_the_same_parameter_sets() {
        let parameter_sets = |width, height, bitrate_bps, level_bitrate_bps| {
            let mut enc = H264Encoder::new(H264Config {
                bitrate_bps,
                level_bitrate_bps,
                ..H264Config::default()
            })
            .expect("encoder");
            let keyframe = enc
                .encode(&pattern(width, height).render(0, 0))
                .expect("encodes");
            nal_units(&keyframe.data)
                .into_iter()
                .filter(|nal| matches!(nal[0] & 0x1f, 7 | 8))
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        };
        for (width, height) in [(160, 120), (640, 480)] {
            let top = parameter_sets(width, height, 1_500_000, Some(1_500_000));
            assert_eq!(top.len(), 2, "SPS and PPS");
            for percent in [70, 50, 35, 25, 18, 12, 8] {
                let rung = parameter_sets(width, height, 15_000 * percent, Some(1_500_000));
                assert_eq!(rung, top, "{width}x{height} at {percent} %");
            }
        }
        // Unpinned, OpenH264 would have lowered the level with the rate: what this guards.
        let small_unpinned = parameter_sets(160, 120, 375_000, None);
        assert_ne!(small_unpinned, parameter_sets(160, 120, 1_500_000, None));
        // The size still raises the level when the rate alone would allow less.
        assert_eq!(parameter_sets(640, 480, 300_000, Some(400_000))[0][3], 30);
    }

    #[test]
    fn pattern_round_trip_stays_above_35_db_and_frame_numbers_read_back_in_order() {
        let mut source = pattern(640, 480);
        let mut enc = H264Encoder::new(H264Config {
            keyint_frames: 30,
            ..H264Config::default()
        })
        .expect("encoder");
        let mut dec = H264Decoder::new().expect("decoder");
        let (mut total_bytes, mut worst_db, mut keyframes) = (0, f64::INFINITY, Vec::new());
        for seq in 0..90 {
            let frame = source.render(seq, 1_700_000_000_000_000 + seq * 33_333);
            let encoded = enc.encode(&frame).expect("encodes");
            assert_eq!(encoded.codec, Codec::H264);
            assert_eq!((encoded.seq, encoded.capture_us), (seq, frame.capture_us));
            if encoded.is_keyframe {
                keyframes.push(seq);
                assert!(
                    codec_string(&encoded.data).is_some(),
                    "keyframe carries SPS"
                );
            }
            total_bytes += encoded.data.len();
            let picture = dec
                .decode(&encoded.data)
                .expect("decodes")
                .expect("one picture per access unit (no reordering)");
            assert_eq!((picture.width, picture.height), (640, 480));
            let rgb = picture.to_rgb().expect("valid I420");
            assert_eq!(
                read_frame_number(&rgb, 640, 480).map(u64::from),
                Some(seq),
                "frame {seq}"
            );
            worst_db = worst_db.min(psnr(&frame.data, &rgb));
        }
        eprintln!("640x480 H.264: worst {worst_db:.1} dB, {total_bytes} bytes for 90 frames");
        // Measured: worst frame 42.3 dB, 132 KB for the 90 frames (1.5 KB a frame; JPEG
        // q80 gives ~38 dB at 18.8 KB). A frame decoded against a wrong reference falls far
        // below 35 dB; the floor leaves room for encoder tuning.
        assert!(worst_db >= 35.0, "worst frame {worst_db:.1} dB");
        assert_eq!(keyframes, [0, 30, 60], "IDR every keyint frames");
        // 90 frames at 1.5 Mbit/s and 30 fps are 562 KB; rate control may overshoot a bit.
        assert!(total_bytes < 900_000, "{total_bytes} bytes");
    }

    #[test]
    fn forced_keyframe_comes_at_once() {
        let mut source = pattern(320, 240);
        let mut enc = H264Encoder::new(H264Config::default()).expect("encoder");
        let kinds: Vec<bool> = (0..6)
            .map(|seq| {
                if seq == 3 {
                    enc.force_keyframe();
                }
                enc.encode(&source.render(seq, seq * 33_333))
                    .expect("encodes")
                    .is_keyframe
            })
            .collect();
        assert_eq!(kinds, [true, false, false, true, false, false]);
    }

    #[test]
    fn decoding_without_the_reference_is_an_error_not_a_picture() {
        let mut source = pattern(320, 240);
        let mut enc = H264Encoder::new(H264Config::default()).expect("encoder");
        let frames: Vec<EncodedFrame> = (0..3)
            .map(|seq| enc.encode(&source.render(seq, 0)).expect("encodes"))
            .collect();
        let mut dec = H264Decoder::new().expect("decoder");
        // A P-frame first: nothing to predict from.
        assert!(!matches!(dec.decode(&frames[1].data), Ok(Some(_))));
    }

    #[test]
    fn bgr_frames_give_the_stream_their_rgb_twins_give() {
        let mut source = pattern(320, 240);
        let mut from_rgb = H264Encoder::new(H264Config::default()).expect("encoder");
        let mut from_bgr = H264Encoder::new(H264Config::default()).expect("encoder");
        for seq in 0..4 {
            let rgb = source.render(seq, 0).into_rgb().expect("valid");
            let bgr = crate::encode::tests::as_bgr(&rgb);
            assert_eq!(
                from_bgr.encode(&bgr).expect("encodes").data,
                from_rgb.encode(&rgb).expect("encodes").data,
                "frame {seq}"
            );
        }
    }

    #[test]
    fn odd_sizes_are_refused() {
        let mut enc = H264Encoder::new(H264Config::default()).expect("encoder");
        let frame = RawFrame {
            width: 67,
            height: 33,
            format: crate::PixelFormat::Rgb8,
            data: vec![0; 67 * 33 * 3],
            seq: 0,
            capture_us: 0,
        };
        assert!(matches!(
            enc.encode(&frame),
            Err(MediaError::InvalidSize { .. })
        ));
        // I420 too: refused before OpenH264's slice wrapper could assert.
        let yuv = frame.into_i420().expect("valid");
        assert!(matches!(
            enc.encode(&yuv),
            Err(MediaError::InvalidSize { .. })
        ));
        let short = RawFrame::i420(64, 32, vec![0; 100], 0, 0);
        assert!(matches!(
            enc.encode(&short),
            Err(MediaError::BufferLength { .. })
        ));
    }

    #[test]
    fn i420_encodes_as_well_as_rgb_did_on_camera_like_frames() {
        // The planes go to OpenH264 as they are (before: I420 -> RGB8 -> OpenH264's own
        // RGB -> I420). Measured (yuv_bench, 60 frames at 1.5 Mbit/s): 36.25 dB direct,
        // 36.04 via RGB.
        let frames = crate::encode::tests::camera_like_i420(640, 480, 0..20);
        let mut mean_db = [0.0; 2];
        for (i, via_rgb) in [false, true].into_iter().enumerate() {
            let mut enc = H264Encoder::new(H264Config::default()).expect("encoder");
            let mut dec = H264Decoder::new().expect("decoder");
            for frame in &frames {
                let input = if via_rgb {
                    frame.clone().into_rgb().expect("valid")
                } else {
                    frame.clone()
                };
                let encoded = enc.encode(&input).expect("encodes");
                let picture = dec
                    .decode(&encoded.data)
                    .expect("decodes")
                    .expect("a picture");
                assert_eq!(picture.format, crate::PixelFormat::I420);
                let reference = frame.to_rgb().expect("valid");
                mean_db[i] += psnr(&reference, &picture.to_rgb().expect("valid")) / 20.0;
            }
        }
        let [direct, via_rgb] = mean_db;
        assert!(direct >= 33.0, "{direct:.2} dB");
        assert!(
            direct >= via_rgb - 0.2,
            "{direct:.2} dB, via RGB {via_rgb:.2}"
        );
    }
}
