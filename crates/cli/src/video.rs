//! What every publishing subcommand shares (`send`, `demo`, `bench`, `serve --pull`):
//! picture flags, the hello a publisher sends, name checks, the test pattern's capture.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use tokio::sync::watch;
use vidcast_client::{Capture, KeyframeFlag};
use vidcast_media::{
    output_size, Clock, H264Config, H264Encoder, JpegEncoder, TestPattern, TestPatternConfig,
};
use vidcast_proto::{Codec, Hello, Role, VERSION};

/// Parses a bitrate: bits per second, with an optional k or M suffix (1.5M, 800k).
pub fn parse_bitrate(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let (number, scale) = match text.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1e3),
        None => match text.strip_suffix('M') {
            Some(n) => (n, 1e6),
            None => (text, 1.0),
        },
    };
    let bps = number
        .parse::<f64>()
        .map(|n| (n * scale).round())
        .map_err(|_| format!("invalid bitrate {text:?} (try 1.5M or 800k)"))?;
    if !(10_000.0..=100e6).contains(&bps) {
        return Err(format!("bitrate {text:?} is outside 10k..100M"));
    }
    Ok(bps as u32)
}

/// A whole number from `lo` to `hi` for clap, whose errors say the range and give `example`
/// (clap's own say "invalid digit found in string").
pub fn ranged<T>(
    lo: u64,
    hi: u64,
    example: &'static str,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
{
    move |text| {
        text.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (lo..=hi).contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| {
                format!("{text:?}: give a whole number from {lo} to {hi}, e.g. {example}")
            })
    }
}

/// Picture settings shared by `send`, `demo` and `bench`.
#[derive(Args, Debug, Clone)]
pub struct VideoArgs {
    /// Picture width in pixels; given alone, the height follows the aspect ratio (the
    /// original client used 380). Default: the source's own width (640 for the test pattern).
    #[arg(long, value_parser = ranged::<u32>(64, 7680, "640"))]
    pub width: Option<u32>,
    /// Picture height in pixels; given alone, the width follows the aspect ratio. Default:
    /// the source's own height (480 for the test pattern).
    #[arg(long, value_parser = ranged::<u32>(64, 4320, "480"))]
    pub height: Option<u32>,
    /// Frames per second: the test pattern's rate (default 30); for files and cameras a
    /// cap (frames are dropped, never added; default: the source's own rate).
    #[arg(long)]
    pub fps: Option<f64>,
    /// JPEG quality, 1 to 100 (with --codec jpeg).
    #[arg(long, default_value_t = 80, value_parser = ranged::<u8>(1, 100, "80"))]
    pub quality: u8,
    /// Sensor-like noise on the test pattern, ±N per colour value (0 to 64). The clean
    /// pattern compresses far better than a camera; 16 gives camera-sized JPEGs (640x480
    /// q80: about 43 kB instead of 18 kB).
    #[arg(long, default_value_t = 0, value_parser = ranged::<u8>(0, 64, "16"))]
    pub noise: u8,
}

impl VideoArgs {
    /// The test pattern's size: 640x480 unless given (one side alone keeps 4:3).
    pub fn pattern_size(&self) -> (u32, u32) {
        output_size(640, 480, self.width, self.height)
    }

    /// The test pattern's rate: 30 unless given.
    pub fn pattern_fps(&self) -> f64 {
        self.fps.unwrap_or(30.0)
    }
}

pub use vidcast_client::default_name;

/// The hello a test-pattern publisher of `video` named `name` sends.
pub fn hello(name: &str, video: &VideoArgs) -> Hello {
    hello_for(name, video.pattern_size(), video.pattern_fps())
}

/// The hello a publisher named `name` of `(width, height)` frames at `fps` sends.
pub fn hello_for(name: &str, (width, height): (u32, u32), fps: f64) -> Hello {
    Hello {
        version: VERSION,
        role: Role::Publisher,
        codec: Ok(Codec::Jpeg),
        width: u16::try_from(width).unwrap_or(u16::MAX),
        height: u16::try_from(height).unwrap_or(u16::MAX),
        fps_milli: (fps * 1000.0).round() as u32,
        name: name.to_owned(),
        token: String::new(),
    }
}

/// Checks a client name the way the hub will, so mistakes show before connecting.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > vidcast_proto::MAX_NAME_LEN {
        bail!(
            "client name must be 1 to {} bytes, got {:?}",
            vidcast_proto::MAX_NAME_LEN,
            name
        );
    }
    if let Some(problem) = vidcast_proto::name_problem(name) {
        bail!("{problem}: {name:?}");
    }
    Ok(())
}

/// A paced test pattern of `video`'s size and rate, labelled `name`.
pub fn test_pattern(name: &str, video: &VideoArgs, clock: Arc<dyn Clock>) -> Result<TestPattern> {
    let fps = video.pattern_fps();
    if !(fps > 0.0 && fps <= 1000.0) {
        bail!("--fps must be above 0 and at most 1000, got {fps}");
    }
    let (width, height) = video.pattern_size();
    let mut pattern = TestPattern::new(
        TestPatternConfig {
            width,
            height,
            fps,
            label: name.to_owned(),
            paced: true,
        },
        clock,
    )
    .context("cannot start the test pattern")?;
    pattern.set_noise(video.noise);
    Ok(pattern)
}

/// Starts a test-pattern capture thread feeding a new frame slot.
pub fn start_test_pattern(
    name: &str,
    video: &VideoArgs,
    clock: Arc<dyn Clock>,
) -> Result<(Capture, watch::Receiver<Option<vidcast_proto::Frame>>)> {
    let source = test_pattern(name, video, clock)?;
    let encoder = JpegEncoder::new(video.quality).context("cannot start the JPEG encoder")?;
    let (tx, rx) = watch::channel(None);
    let capture = Capture::start(Box::new(source), Box::new(encoder), tx)
        .context("cannot start the capture thread")?;
    Ok((capture, rx))
}

/// Like [`start_test_pattern`], encoding H.264 at `bitrate_bps` with a keyframe every 2 s and
/// whenever `keyframes` is set (the hub asks when a viewer joins).
pub fn start_h264_test_pattern(
    name: &str,
    video: &VideoArgs,
    bitrate_bps: u32,
    keyframes: Arc<KeyframeFlag>,
    clock: Arc<dyn Clock>,
) -> Result<(Capture, watch::Receiver<Option<vidcast_proto::Frame>>)> {
    let source = test_pattern(name, video, clock)?;
    let fps = video.pattern_fps();
    let encoder = H264Encoder::new(H264Config::live(bitrate_bps, fps, Duration::from_secs(2)))
        .context("cannot start the H.264 encoder")?;
    let (tx, rx) = watch::channel(None);
    let capture = Capture::start_with_keyframes(Box::new(source), Box::new(encoder), tx, keyframes)
        .context("cannot start the capture thread")?;
    Ok((capture, rx))
}
