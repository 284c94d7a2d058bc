//! A moving synthetic test pattern with burnt-in label, frame number and capture time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::noise::NoiseTable;
use super::strip::{write_frame_number, StripLayout};
use super::VideoSource;
use crate::overlay::{text_size, Picture, TextStyle};
use crate::{Clock, MediaError, RawFrame};

/// Smallest accepted width and height.
pub const MIN_DIMENSION: u32 = 64;
/// Largest accepted width and height (8K UHD width).
pub const MAX_DIMENSION: u32 = 7680;
/// Largest accepted frame rate.
pub const MAX_FPS: f64 = 1000.0;

/// 100 % colour bars, left to right.
const BARS: [[u8; 3]; 8] = [
    [255, 255, 255],
    [255, 255, 0],
    [0, 255, 255],
    [0, 255, 0],
    [255, 0, 255],
    [255, 0, 0],
    [0, 0, 255],
    [0, 0, 0],
];
const BOX_COLOR: [u8; 3] = [255, 128, 0];
const TEXT_FG: [u8; 3] = [255, 255, 255];
const TEXT_BG: [u8; 3] = [24, 24, 24];

/// Settings for [`TestPattern`].
#[derive(Debug, Clone, PartialEq)]
pub struct TestPatternConfig {
    /// Width in pixels, `MIN_DIMENSION..=MAX_DIMENSION`; odd widths are allowed.
    pub width: u32,
    /// Height in pixels, `MIN_DIMENSION..=MAX_DIMENSION`; odd heights are allowed.
    pub height: u32,
    /// Frames per second, `> 0` and `<= MAX_FPS`.
    pub fps: f64,
    /// Text burnt into every frame (e.g. the client name); non-ASCII is drawn as '?'.
    pub label: String,
    /// If true, `next_frame` sleeps until each frame is due; if false it returns at once.
    pub paced: bool,
}

/// A synthetic camera: scrolling colour bars over a scrolling grey ramp, a bouncing box,
/// a text box with the label, the frame number (`#000123`) and the capture time as UTC
/// `HH:MM:SS.mmm`, and the frame number as a machine-readable strip along the bottom
/// (read it with [`super::read_frame_number`]; frames smaller than 160x90 carry no strip).
///
/// The burnt-in time equals the frame's `capture_us`, so latency can be checked by eye
/// against a clock and by code against the frame header.
///
/// Rendering copies precomputed rows and draws the box and text directly: measured
/// 0.026 ms at 640x480 and 0.07 ms at 1280x720 (release, one core, `examples/media_bench`),
/// plus up to ~0.4 ms / 1.3 ms of page faults when glibc hands out a fresh buffer.
pub struct TestPattern {
    config: TestPatternConfig,
    clock: Arc<dyn Clock>,
    /// Two periods of the bars row, so any scroll offset is one contiguous slice.
    bars_row: Vec<u8>,
    /// Two periods of the grey ramp row, scrolled the other way.
    ramp_row: Vec<u8>,
    /// Rows `0..bars_end` are bars, `bars_end..picture_end` ramp, then the strip band.
    bars_end: u32,
    picture_end: u32,
    text_scale: u32,
    next_seq: u64,
    /// Deadline of frame 0; set by the first paced `next_frame`.
    start: Option<Instant>,
    skipped_frames: u64,
    /// Sensor-like noise added to the background, made once by `set_noise`.
    noise: Option<NoiseTable>,
}

impl std::fmt::Debug for TestPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPattern")
            .field("config", &self.config)
            .field("next_seq", &self.next_seq)
            .field("skipped_frames", &self.skipped_frames)
            .finish_non_exhaustive()
    }
}

impl TestPattern {
    /// Camera-like content for encoder measurements and quality tests: an unpaced
    /// `width` x `height` pattern with uniform noise ±12 per channel (colour bars, moving
    /// gradient and box, as in issue 18's side-by-side runs), capture times from a manual
    /// clock. Noise is generated per frame: render the frames before timing anything.
    pub fn camera_like(width: u32, height: u32) -> Result<Self, MediaError> {
        let config = TestPatternConfig {
            width,
            height,
            fps: 30.0,
            label: "CLIENT: 127.0.0.1:51234".into(),
            paced: false,
        };
        let mut pattern = Self::new(config, Arc::new(crate::ManualClock::new(0)))?;
        pattern.set_noise(12);
        Ok(pattern)
    }

    /// Check `config` and precompute the rows. Capture times come from `clock`.
    pub fn new(config: TestPatternConfig, clock: Arc<dyn Clock>) -> Result<Self, MediaError> {
        let (width, height) = (config.width, config.height);
        let range = MIN_DIMENSION..=MAX_DIMENSION;
        if !range.contains(&width) || !range.contains(&height) {
            return Err(MediaError::InvalidSize {
                width,
                height,
                reason: "test pattern width and height must be in 64..=7680",
            });
        }
        if !(config.fps.is_finite() && config.fps > 0.0 && config.fps <= MAX_FPS) {
            return Err(MediaError::InvalidFps {
                fps: config.fps,
                max: MAX_FPS,
            });
        }
        let w = width as usize;
        let mut bars_row = Vec::with_capacity(2 * w * 3);
        let mut ramp_row = Vec::with_capacity(2 * w * 3);
        for p in 0..2 * w {
            let x = p % w;
            bars_row.extend_from_slice(&bar_color(x, w));
            let grey = (x * 255 / (w - 1)) as u8; // w >= 64, so no division by 0
            ramp_row.extend_from_slice(&[grey; 3]);
        }
        let picture_end = StripLayout::for_size(width, height).map_or(height, |l| l.top);
        // Region and box edges on the 16-pixel 4:2:0 MCU grid: a flat edge there costs JPEG
        // nothing, one inside a block rings.
        let bars_end = picture_end * 2 / 3 / 16 * 16;
        // Readable from 160x120 (scale 1) to 1920x1080 (scale 9), and the 12-character
        // time line (plus padding) always fits the width.
        let text_scale = (height / 120).min(width / (14 * 8)).max(1);
        Ok(Self {
            config,
            clock,
            bars_row,
            ramp_row,
            bars_end,
            picture_end,
            text_scale,
            next_seq: 0,
            start: None,
            skipped_frames: 0,
            noise: None,
        })
    }

    /// Adds noise of up to ±`amplitude` per colour byte to the bars and ramp, the way a
    /// camera sensor does: flat test colours compress far better than real pictures, so
    /// without noise a 640x480 JPEG is a fraction of a camera's. 0 turns it off.
    ///
    /// The noise is a [`NoiseTable`] made here (256 KiB, a few ms) and laid over each frame
    /// from a place drawn from its number: about 0.1 ms per 640x480 frame instead of 8 ms.
    pub fn set_noise(&mut self, amplitude: u8) {
        self.set_noise_seeded(amplitude, 0);
    }

    /// [`Self::set_noise`] with another draw of the noise: the same seed, the same pictures.
    pub fn set_noise_seeded(&mut self, amplitude: u8, seed: u64) {
        self.noise = (amplitude > 0).then(|| NoiseTable::new(amplitude, seed));
    }

    /// Frames skipped so far because a paced caller fell more than one frame behind.
    pub fn skipped_frames(&self) -> u64 {
        self.skipped_frames
    }

    /// Render frame `seq` stamped with `capture_us`, without pacing or clock reads.
    pub fn render(&mut self, seq: u64, capture_us: u64) -> RawFrame {
        let (width, height) = (self.config.width, self.config.height);
        let w = width as usize;
        let row_bytes = w * 3;
        let mut rgb = Vec::with_capacity(crate::frame::rgb_len(width, height));

        // Scroll by ~1/160 of the width per frame: 4 px at 640 wide.
        let speed = u64::from((width / 160).max(1));
        let offset = (seq.wrapping_mul(speed) % u64::from(width)) as usize;
        let bars = &self.bars_row[offset * 3..offset * 3 + row_bytes];
        let ramp_offset = (w - offset) % w;
        let ramp = &self.ramp_row[ramp_offset * 3..ramp_offset * 3 + row_bytes];
        for _ in 0..self.bars_end {
            rgb.extend_from_slice(bars);
        }
        for _ in self.bars_end..self.picture_end {
            rgb.extend_from_slice(ramp);
        }
        // The strip band (if any) starts black; write_frame_number paints the cells.
        rgb.resize(crate::frame::rgb_len(width, height), 0);
        if let Some(noise) = &self.noise {
            let picture_bytes = self.picture_end as usize * row_bytes;
            noise.apply(&mut rgb[..picture_bytes], seq);
        }

        self.draw_box(&mut rgb, seq);
        self.draw_text_box(&mut rgb, seq, capture_us);
        write_frame_number(&mut rgb, width, height, seq as u32);

        RawFrame::rgb(width, height, rgb, seq, capture_us)
    }

    /// A box with a dark centre bouncing around the picture area. Even positions and sizes
    /// keep its edges on 4:2:0 chroma-sample boundaries.
    fn draw_box(&self, rgb: &mut [u8], seq: u64) {
        let (width, height) = (self.config.width, self.config.height);
        let side = (height / 5).max(8) & !1;
        let step_x = u64::from((width / 100).max(1));
        let step_y = u64::from((height / 100).max(1));
        let x = bounce(seq.wrapping_mul(step_x), width.saturating_sub(side)) & !1;
        let y = bounce(
            seq.wrapping_mul(step_y),
            self.picture_end.saturating_sub(side),
        ) & !1;
        let mut picture = Picture::rgb(rgb, width, height);
        picture.fill_rect(x, y, side, side, BOX_COLOR);
        let inner = (side / 3) & !1;
        picture.fill_rect(x + inner, y + inner, inner, inner, [0, 0, 0]);
    }

    /// Label, frame number and capture time on a dark box, centred in the picture area.
    fn draw_text_box(&self, rgb: &mut [u8], seq: u64, capture_us: u64) {
        let (width, height) = (self.config.width, self.config.height);
        let scale = self.text_scale;
        let number = format!("#{seq:06}");
        let time = format_utc_time(capture_us);
        let lines = [self.config.label.as_str(), number.as_str(), time.as_str()];
        let gap = 2 * scale;
        let line_h = 8 * scale + gap;
        let text_w = lines
            .iter()
            .map(|l| text_size(l, scale).0)
            .max()
            .unwrap_or(0)
            .min(width);
        let text_h = 3 * line_h - gap;
        let box_w = (text_w + 2 * gap)
            .min(width)
            .next_multiple_of(16)
            .min(width);
        let box_h = (text_h + 2 * gap).next_multiple_of(16);
        let x = (width - box_w) / 2 / 16 * 16;
        let y = self.picture_end.saturating_sub(box_h) / 2 / 16 * 16;
        let mut picture = Picture::rgb(rgb, width, height);
        picture.fill_rect(x, y, box_w, box_h, TEXT_BG);
        let text_x = x + (box_w - text_w) / 2;
        let text_y = y + (box_h - text_h) / 2;
        let style = TextStyle::new(scale, TEXT_FG);
        for (i, line) in (0u32..).zip(lines) {
            picture.draw_text(text_x, text_y + i * line_h, line, &style);
        }
    }
}

/// Colour of column `x` of the bars in a row `w` wide. The second half of each bar fades
/// into the next (black fades back into white, so the row wraps seamlessly), as a camera
/// would see printed bars: hard saturated edges are JPEG's worst case (q80 PSNR at
/// 160x120 was 22 dB with hard edges).
fn bar_color(x: usize, w: usize) -> [u8; 3] {
    let n = BARS.len();
    // Position in units of 1/1024 bar.
    let pos = x * n * 1024 / w;
    let (bar, frac) = (pos / 1024, pos % 1024);
    let from = BARS[bar % n];
    let to = BARS[(bar + 1) % n];
    let t = frac.saturating_sub(512) * 2; // 0 for the first half, then up to 1022
    let mix = |a: u8, b: u8| ((usize::from(a) * (1024 - t) + usize::from(b) * t) / 1024) as u8;
    [
        mix(from[0], to[0]),
        mix(from[1], to[1]),
        mix(from[2], to[2]),
    ]
}

/// Position at time `t` of a point bouncing between 0 and `range` (a triangle wave).
fn bounce(t: u64, range: u32) -> u32 {
    if range == 0 {
        return 0;
    }
    let r = u64::from(range);
    let p = t % (2 * r);
    (if p <= r { p } else { 2 * r - p }) as u32
}

/// `capture_us` (since the Unix epoch) as UTC time of day `HH:MM:SS.mmm`.
pub(crate) fn format_utc_time(capture_us: u64) -> String {
    let ms = capture_us / 1000;
    let secs = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        ms % 1000
    )
}

impl VideoSource for TestPattern {
    fn size(&self) -> (u32, u32) {
        (self.config.width, self.config.height)
    }

    fn fps(&self) -> f64 {
        self.config.fps
    }

    fn describe(&self) -> String {
        format!(
            "test pattern {}x{} @ {} fps{} \"{}\"",
            self.config.width,
            self.config.height,
            self.config.fps,
            if self.config.paced { "" } else { " (unpaced)" },
            self.config.label
        )
    }

    /// Paced: sleeps until frame n is due at `start + n / fps`, where `start` is the first
    /// call. Pacing uses the monotonic `Instant` because the sleep is in real time; only
    /// `capture_us` comes from the injected clock. A caller more than one frame late gets
    /// the frame due now, not a burst of old ones, so `seq` jumps.
    fn next_frame(&mut self) -> Result<Option<RawFrame>, MediaError> {
        if self.config.paced {
            self.wait_for_deadline();
        }
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        let capture_us = self.clock.now_us();
        Ok(Some(self.render(seq, capture_us)))
    }
}

impl TestPattern {
    /// Sleep until frame `next_seq` is due, or skip `next_seq` ahead if it is long overdue.
    fn wait_for_deadline(&mut self) {
        let now = Instant::now();
        let start = *self.start.get_or_insert(now);
        let period = 1.0 / self.config.fps;
        let deadline = start + Duration::from_secs_f64(self.next_seq as f64 * period);
        if let Some(wait) = deadline.checked_duration_since(now) {
            std::thread::sleep(wait);
            return;
        }
        let late = now.duration_since(deadline).as_secs_f64();
        if late > period {
            // The frame due most recently: no bursts to catch up.
            let due = (now.duration_since(start).as_secs_f64() / period).floor() as u64;
            let skipped = due.saturating_sub(self.next_seq);
            self.skipped_frames += skipped;
            tracing::debug!(
                skipped,
                late_ms = late * 1e3,
                "test pattern fell behind, skipping frames"
            );
            self.next_seq = due;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn noise_makes_jpeg_camera_sized_and_keeps_the_frame_number() {
        use crate::{Encoder, JpegEncoder};
        let config = TestPatternConfig {
            width: 640,
            height: 480,
            fps: 30.0,
            label: "noisy".into(),
            paced: false,
        };
        let mut pattern = TestPattern::new(config, Arc::new(ManualClock::new(0))).unwrap();
        let mut encoder = JpegEncoder::new(80).unwrap();
        let clean = encoder.encode(&pattern.render(7, 0)).unwrap().data.len();
        pattern.set_noise(16);
        let frame = pattern.render(7, 0);
        assert_eq!(read_frame_number(&frame.data, 640, 480), Some(7));
        let noisy = encoder.encode(&frame).unwrap().data.len();
        // Measured: 18 kB clean, 43 kB with noise 16 (a webcam's 640x480 q80 is 40-60 kB).
        assert!(noisy > 2 * clean, "clean {clean}, noisy {noisy}");
        assert_eq!(
            pattern.render(7, 0).data,
            frame.data,
            "same seed, same noise"
        );
    }

    use super::*;
    use crate::source::read_frame_number;
    use crate::{decode_jpeg, Encoder, JpegEncoder, ManualClock, SystemClock};

    fn pattern(width: u32, height: u32, paced: bool, fps: f64) -> TestPattern {
        let config = TestPatternConfig {
            width,
            height,
            fps,
            label: "test".into(),
            paced,
        };
        TestPattern::new(config, Arc::new(ManualClock::new(0))).expect("valid config")
    }

    const SIZES: [(u32, u32); 4] = [(160, 120), (320, 240), (640, 480), (1280, 720)];
    const SEQS: [u64; 8] = [
        0,
        1,
        255,
        65535,
        123_456_789,
        0xDEAD_BEEF,
        u32::MAX as u64,
        1 << 32 | 7,
    ];

    #[test]
    fn frame_has_requested_size_and_rgb_length() {
        for (w, h) in SIZES
            .into_iter()
            .chain([(64, 64), (161, 121), (1920, 1080)])
        {
            let f = pattern(w, h, false, 30.0).render(3, 4);
            assert_eq!((f.width, f.height, f.seq, f.capture_us), (w, h, 3, 4));
            assert_eq!(f.data.len(), (w * h * 3) as usize);
        }
    }

    #[test]
    fn consecutive_frames_differ() {
        let mut p = pattern(320, 240, false, 30.0);
        let a = p.render(10, 1_000);
        let b = p.render(11, 1_000);
        let changed = a.data.iter().zip(&b.data).filter(|(x, y)| x != y).count();
        // Scrolling bars alone change far more than 10 % of the bytes.
        assert!(changed > a.data.len() / 10, "only {changed} bytes changed");
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
        let base = TestPatternConfig {
            width: 640,
            height: 480,
            fps: 30.0,
            label: String::new(),
            paced: false,
        };
        for (w, h) in [(63, 480), (640, 63), (7681, 480), (640, 7681), (0, 0)] {
            let c = TestPatternConfig {
                width: w,
                height: h,
                ..base.clone()
            };
            assert!(matches!(
                TestPattern::new(c, clock.clone()),
                Err(MediaError::InvalidSize { .. })
            ));
        }
        for fps in [0.0, -1.0, 1000.5, f64::NAN, f64::INFINITY] {
            let c = TestPatternConfig {
                fps,
                ..base.clone()
            };
            assert!(matches!(
                TestPattern::new(c, clock.clone()),
                Err(MediaError::InvalidFps { .. })
            ));
        }
        assert!(TestPattern::new(
            TestPatternConfig {
                fps: 1000.0,
                ..base
            },
            clock
        )
        .is_ok());
    }

    #[test]
    fn frame_number_reads_back_from_raw_pixels() {
        for (w, h) in SIZES {
            let mut p = pattern(w, h, false, 30.0);
            for seq in SEQS {
                let f = p.render(seq, 0);
                assert_eq!(
                    read_frame_number(&f.data, w, h),
                    Some(seq as u32),
                    "{w}x{h} seq {seq}"
                );
            }
        }
    }

    #[test]
    fn frame_number_survives_jpeg_q80_and_q50() {
        for quality in [80, 50] {
            let mut enc = JpegEncoder::new(quality).expect("valid quality");
            for (w, h) in SIZES {
                let mut p = pattern(w, h, false, 30.0);
                for seq in SEQS {
                    let jpeg = enc.encode(&p.render(seq, seq * 33_333)).expect("encodes");
                    let img = decode_jpeg(&jpeg.data).expect("decodes");
                    assert_eq!(
                        read_frame_number(&img.rgb, w, h),
                        Some(seq as u32),
                        "{w}x{h} q{quality} seq {seq}"
                    );
                }
            }
        }
    }

    #[test]
    fn unrelated_images_read_back_none() {
        for (w, h) in SIZES {
            let len = (w * h * 3) as usize;
            for grey in [0u8, 128, 255] {
                assert_eq!(read_frame_number(&vec![grey; len], w, h), None);
            }
            // xorshift noise: deterministic, no extra dependency.
            let mut s: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(w);
            let noise: Vec<u8> = (0..len)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 24) as u8
                })
                .collect();
            assert_eq!(read_frame_number(&noise, w, h), None);
            // Coarse noise: random black/white 8x8 blocks pass the per-cell checks, so
            // only the check bits stand between them and a wrong number.
            let mut blocks = vec![0u8; len];
            for by in (0..h).step_by(8) {
                for bx in (0..w).step_by(8) {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    let v = if s & 1 == 1 { 255 } else { 0 };
                    Picture::rgb(&mut blocks, w, h).fill_rect(bx, by, 8, 8, [v; 3]);
                }
            }
            assert_eq!(read_frame_number(&blocks, w, h), None);
        }
    }

    #[test]
    fn burnt_in_time_matches_capture_us() {
        assert_eq!(format_utc_time(0), "00:00:00.000");
        // 2026-11-26T01:45:07.891999Z: milliseconds are truncated, not rounded.
        assert_eq!(format_utc_time(1_795_657_507_891_999), "01:45:07.891");
        // The rendered text box differs when only the time differs.
        let mut p = pattern(320, 240, false, 30.0);
        assert_ne!(p.render(5, 1_000_000).data, p.render(5, 2_000_000).data);
    }

    #[test]
    fn next_frame_stamps_capture_us_from_the_clock() {
        let clock = Arc::new(ManualClock::new(42_000_000));
        let config = TestPatternConfig {
            width: 160,
            height: 120,
            fps: 30.0,
            label: "x".into(),
            paced: false,
        };
        let mut p = TestPattern::new(config, clock.clone()).expect("valid config");
        let a = p.next_frame().expect("ok").expect("endless");
        clock.advance(1_500);
        let b = p.next_frame().expect("ok").expect("endless");
        assert_eq!((a.seq, a.capture_us), (0, 42_000_000));
        assert_eq!((b.seq, b.capture_us), (1, 42_001_500));
        assert_eq!(a, p.render(0, 42_000_000));
    }

    #[test]
    fn paced_source_delivers_increasing_seq_at_about_the_frame_rate() {
        let config = TestPatternConfig {
            width: 160,
            height: 120,
            fps: 200.0,
            label: "paced".into(),
            paced: true,
        };
        let mut p = TestPattern::new(config, Arc::new(SystemClock::new())).expect("valid config");
        let started = Instant::now();
        let frames: Vec<RawFrame> = (0..5)
            .map(|_| p.next_frame().expect("ok").expect("endless"))
            .collect();
        let elapsed = started.elapsed();
        for pair in frames.windows(2) {
            assert!(pair[1].seq > pair[0].seq);
            assert!(pair[1].capture_us >= pair[0].capture_us);
        }
        // Frame n is due n * 5 ms after the first call, and seq only moves forward.
        assert!(frames[4].seq >= 4);
        assert!(elapsed >= Duration::from_millis(19), "{elapsed:?}");
    }

    #[test]
    fn unpaced_source_returns_immediately() {
        // 1 fps paced would take 4 s; unpaced must not sleep at all.
        let mut p = pattern(160, 120, false, 1.0);
        let started = Instant::now();
        for seq in 0..5 {
            assert_eq!(p.next_frame().expect("ok").expect("endless").seq, seq);
        }
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn late_paced_caller_skips_ahead_instead_of_bursting() {
        let mut p = pattern(160, 120, true, 100.0);
        p.next_frame().expect("ok");
        std::thread::sleep(Duration::from_millis(60));
        let f = p.next_frame().expect("ok").expect("endless");
        assert!(f.seq >= 5, "seq {}", f.seq);
        assert_eq!(p.skipped_frames(), f.seq - 1);
    }

    #[test]
    fn bounce_stays_in_range() {
        assert_eq!(bounce(5, 0), 0);
        let positions: Vec<u32> = (0..8).map(|t| bounce(t, 3)).collect();
        assert_eq!(positions, [0, 1, 2, 3, 2, 1, 0, 1]);
    }
}
