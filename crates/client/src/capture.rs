//! The capture thread: source → encoder → the newest-frame slot the drive loop reads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use tokio::sync::watch;
use tracing::warn;
use vidcast_media::{
    Captured, Codec, Encoder, H264Config, H264Encoder, JpegEncoder, MediaError, ResizeScaler,
    Scaler, VideoSource,
};

use crate::adapt::{scaled_size, EncoderControl, RateLimiter};
use vidcast_proto::Frame;

/// Counters shared between the capture thread and whoever reports on it.
#[derive(Debug, Default)]
pub struct CaptureStats {
    /// Frames taken from the source.
    pub captured: AtomicU64,
    /// Frames encoded and handed on.
    pub encoded: AtomicU64,
}

/// "Make the next frame a keyframe": set by the publisher's drive loop (the hub asked, a
/// frame was dropped, a session began) and taken by the capture thread before it encodes.
#[derive(Debug, Default)]
pub struct KeyframeFlag(AtomicBool);

impl KeyframeFlag {
    /// Asks for a keyframe; several requests before the next frame make one keyframe.
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// True once per request.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// A running capture thread.
pub struct Capture {
    /// Counters.
    pub stats: Arc<CaptureStats>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<Result<(), MediaError>>>,
}

impl Capture {
    /// Starts capturing on a thread of its own (sources block like cameras; encoders are
    /// CPU-bound), publishing each encoded frame into `frames`. A JPEG the source already
    /// has (an MJPEG camera) is sent as it is, without re-encoding. The thread ends when the
    /// source ends, on a media error, when stopped, or when nobody reads `frames` any more;
    /// it then drops `frames`, which tells the drive loop the stream is over.
    pub fn start(
        source: Box<dyn VideoSource>,
        encoder: Box<dyn Encoder>,
        frames: watch::Sender<Option<Frame>>,
    ) -> std::io::Result<Self> {
        Self::start_with_keyframes(source, encoder, frames, Arc::default())
    }

    /// [`Capture::start`] whose encoder makes a keyframe whenever `keyframes` is set.
    ///
    /// For a codec with inter frames (H.264), frames are numbered as encoded, without the
    /// source's gaps: the hub takes a gap in `seq` for a lost frame, which breaks the
    /// reference chain, and a frame the source skipped was never a reference.
    pub fn start_with_keyframes(
        source: Box<dyn VideoSource>,
        mut encoder: Box<dyn Encoder>,
        frames: watch::Sender<Option<Frame>>,
        keyframes: Arc<KeyframeFlag>,
    ) -> std::io::Result<Self> {
        let is_intra_only = encoder.codec() == Codec::Jpeg;
        let mut next_seq = 0;
        let ask_source = Arc::new(AtomicBool::new(false));
        let source_asked = Arc::clone(&ask_source);
        Self::spawn_filtered(source, None, frames, Some(source_asked), move |captured| {
            let encoded = match captured {
                // A JPEG camera's own frames go out as they are on a JPEG stream.
                Captured::Jpeg(jpeg) if is_intra_only => jpeg,
                // So does a camera's or file's own H.264 on an H.264 stream; a keyframe
                // request goes to the source (a camera may honour it, a file cannot).
                Captured::H264(access_unit) if !is_intra_only => {
                    if keyframes.take() {
                        ask_source.store(true, Ordering::Relaxed);
                    }
                    access_unit
                }
                other => {
                    if keyframes.take() {
                        encoder.force_keyframe();
                    }
                    encoder.encode(&other.into_raw()?)?
                }
            };
            let seq = if is_intra_only { encoded.seq } else { next_seq };
            next_seq += 1;
            Ok(Some(Frame {
                seq,
                capture_us: encoded.capture_us,
                is_keyframe: encoded.is_keyframe,
                data: encoded.data,
            }))
        })
    }

    /// Like [`Capture::start`] with a JPEG encoder whose quality, frame rate and picture size
    /// follow `control` (set by the publisher's link adaptation) from frame to frame.
    pub fn start_adaptive(
        source: Box<dyn VideoSource>,
        control: Arc<EncoderControl>,
        frames: watch::Sender<Option<Frame>>,
    ) -> std::io::Result<Self> {
        let mut encoder = JpegEncoder::new(control.get().quality).map_err(std::io::Error::other)?;
        let mut limiter = RateLimiter::default();
        let mut scaler: Option<ResizeScaler> = None;
        // Frames left out to lower the rate are a choice, not a loss: number only the frames
        // sent, so the hub's drop count (gaps in `seq`) shows what the link lost.
        let mut next_seq = 0;
        Self::spawn_filtered(source, None, frames, None, move |captured| {
            let settings = control.get();
            if !limiter.keep(captured.capture_us(), settings.fps) {
                return Ok(None);
            }
            // A camera's own JPEG goes out as it is while nothing needs lowering.
            let raw = match captured {
                Captured::Jpeg(jpeg) if control.at_full() => {
                    next_seq += 1;
                    return Ok(Some(Frame {
                        seq: next_seq - 1,
                        capture_us: jpeg.capture_us,
                        is_keyframe: true,
                        data: jpeg.data,
                    }));
                }
                other => other.into_raw()?,
            };
            let (width, height) = scaled_size(raw.width, raw.height, settings.scale);
            let scaled;
            let picture = if (width, height) == (raw.width, raw.height) {
                &raw
            } else {
                if scaler.as_ref().map(ResizeScaler::output_size) != Some((width, height)) {
                    scaler = Some(ResizeScaler::new(width, height)?);
                }
                let Some(scaler) = scaler.as_mut() else {
                    return Ok(None);
                };
                scaled = scaler.scale(&raw)?;
                &scaled
            };
            if encoder.quality() != settings.quality {
                encoder.set_quality(settings.quality)?;
            }
            let encoded = encoder.encode(picture)?;
            next_seq += 1;
            Ok(Some(Frame {
                seq: next_seq - 1,
                capture_us: encoded.capture_us,
                is_keyframe: encoded.is_keyframe,
                data: encoded.data,
            }))
        })
    }

    /// Like [`Capture::start_with_keyframes`] for H.264 whose bit rate (and, far down the
    /// ladder, frame rate) follow `control`: a level's `quality` is the percent of
    /// `config.bitrate_bps`. A new bit rate starts a fresh encoder, whose first frame is a
    /// keyframe (a level change is rare; OpenH264 has no safe way to retarget in place).
    /// A source's own H.264 passes through untouched.
    pub fn start_adaptive_h264(
        source: Box<dyn VideoSource>,
        control: Arc<EncoderControl>,
        config: H264Config,
        frames: watch::Sender<Option<Frame>>,
        keyframes: Arc<KeyframeFlag>,
    ) -> std::io::Result<Self> {
        let mut limiter = RateLimiter::default();
        let mut encoder: Option<(u8, H264Encoder)> = None;
        let mut next_seq = 0;
        let ask_source = Arc::new(AtomicBool::new(false));
        let source_asked = Arc::clone(&ask_source);
        Self::spawn_filtered(source, None, frames, Some(source_asked), move |captured| {
            let settings = control.get();
            let encoded = match captured {
                Captured::H264(access_unit) => {
                    control.mark_passthrough();
                    if keyframes.take() {
                        ask_source.store(true, Ordering::Relaxed);
                    }
                    access_unit
                }
                other => {
                    if !limiter.keep(other.capture_us(), settings.fps) {
                        return Ok(None);
                    }
                    let percent = settings.quality;
                    let encoder = match &mut encoder {
                        Some((at, encoder)) if *at == percent => encoder,
                        slot => {
                            let bitrate_bps = (f64::from(config.bitrate_bps) * f64::from(percent)
                                / 100.0)
                                .max(10_000.0) as u32;
                            // Same SPS on every rung: a recording or restream goes on.
                            let fresh = H264Encoder::new(H264Config {
                                bitrate_bps,
                                level_bitrate_bps: Some(config.bitrate_bps),
                                ..config
                            })?;
                            &mut slot.insert((percent, fresh)).1
                        }
                    };
                    if keyframes.take() {
                        encoder.force_keyframe();
                    }
                    encoder.encode(&other.into_raw()?)?
                }
            };
            // Frames left out to lower the rate are not numbered: a gap means a loss.
            next_seq += 1;
            Ok(Some(Frame {
                seq: next_seq - 1,
                capture_us: encoded.capture_us,
                is_keyframe: encoded.is_keyframe,
                data: encoded.data,
            }))
        })
    }

    /// The capture thread for any kind of outgoing frame: takes at most `limit` frames from
    /// `source`, turns each into a `T` with `convert` and overwrites `frames` with it. Ends
    /// like [`Capture::start`]'s.
    pub(crate) fn spawn<T: Send + Sync + 'static>(
        source: Box<dyn VideoSource>,
        limit: Option<u64>,
        frames: watch::Sender<Option<T>>,
        mut convert: impl FnMut(Captured) -> Result<T, MediaError> + Send + 'static,
    ) -> std::io::Result<Self> {
        Self::spawn_filtered(source, limit, frames, None, move |raw| {
            convert(raw).map(Some)
        })
    }

    /// [`Capture::spawn`] where `convert` may skip a frame by returning `None`. When
    /// `convert` sets `ask_source`, the source is asked for a keyframe (its own H.264).
    fn spawn_filtered<T: Send + Sync + 'static>(
        mut source: Box<dyn VideoSource>,
        limit: Option<u64>,
        frames: watch::Sender<Option<T>>,
        ask_source: Option<Arc<AtomicBool>>,
        mut convert: impl FnMut(Captured) -> Result<Option<T>, MediaError> + Send + 'static,
    ) -> std::io::Result<Self> {
        let stats = Arc::new(CaptureStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_stats, thread_stop) = (Arc::clone(&stats), Arc::clone(&stop));
        let thread = thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                while !thread_stop.load(Ordering::Relaxed) && !frames.is_closed() {
                    let captured = thread_stats.captured.load(Ordering::Relaxed);
                    if limit.is_some_and(|limit| captured >= limit) {
                        return Ok(());
                    }
                    if ask_source
                        .as_ref()
                        .is_some_and(|ask| ask.swap(false, Ordering::Relaxed))
                        && !source.request_keyframe()
                    {
                        tracing::debug!(
                            "the source cannot make a keyframe now: viewers wait for its next"
                        );
                    }
                    let Some(raw) = source.next_captured()? else {
                        return Ok(());
                    };
                    thread_stats.captured.fetch_add(1, Ordering::Relaxed);
                    let Some(converted) = convert(raw)? else {
                        continue;
                    };
                    thread_stats.encoded.fetch_add(1, Ordering::Relaxed);
                    frames.send_replace(Some(converted));
                }
                Ok(())
            })?;
        Ok(Self {
            stats,
            stop,
            thread: Some(thread),
        })
    }

    /// Asks the thread to stop after the frame in hand.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops and waits for the thread; returns its media error, if it had one.
    pub fn join(mut self) -> Result<(), MediaError> {
        self.stop();
        match self.thread.take().map(thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => {
                warn!("capture thread panicked");
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapt::EncoderSettings;
    use vidcast_media::RawFrame;

    /// A 30 fps source of grey frames whose capture times step 33.3 ms, ending after `left`.
    struct Steady {
        seq: u64,
        left: u64,
    }

    impl VideoSource for Steady {
        fn size(&self) -> (u32, u32) {
            (64, 64)
        }
        fn fps(&self) -> f64 {
            30.0
        }
        fn describe(&self) -> String {
            "steady".into()
        }
        fn next_frame(&mut self) -> Result<Option<RawFrame>, MediaError> {
            if self.left == 0 {
                return Ok(None);
            }
            self.left -= 1;
            self.seq += 1;
            Ok(Some(RawFrame {
                width: 64,
                height: 64,
                format: vidcast_media::PixelFormat::Rgb8,
                data: vec![128; 64 * 64 * 3],
                seq: self.seq - 1,
                capture_us: (self.seq - 1) * 33_333,
            }))
        }
    }

    #[test]
    fn an_adapted_rate_and_size_keep_sequence_numbers_gapless() {
        let control = Arc::new(EncoderControl::new(EncoderSettings {
            quality: 40,
            fps: 10.0,
            scale: 0.5,
        }));
        let (tx, rx) = watch::channel(None);
        let capture =
            Capture::start_adaptive(Box::new(Steady { seq: 0, left: 90 }), control, tx).unwrap();
        // The thread drops the sender when the source ends.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while rx.has_changed().is_ok() {
            assert!(std::time::Instant::now() < deadline, "source never ended");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        capture.join().unwrap();
        // 3 s of a 30 fps source kept at 10 fps: 30 frames, numbered 0..=29, half size.
        let last = rx.borrow().clone().unwrap();
        assert_eq!(last.seq, 29);
        let picture = vidcast_media::decode_jpeg(&last.data).unwrap();
        assert_eq!((picture.width, picture.height), (32, 32));
    }

    /// A camera that delivers its own JPEG, `left` times.
    struct JpegCamera {
        jpeg: vidcast_media::EncodedFrame,
        left: u64,
    }

    impl VideoSource for JpegCamera {
        fn size(&self) -> (u32, u32) {
            (64, 64)
        }
        fn fps(&self) -> f64 {
            30.0
        }
        fn describe(&self) -> String {
            "jpeg camera".into()
        }
        fn next_frame(&mut self) -> Result<Option<RawFrame>, MediaError> {
            unreachable!("a JPEG camera is read with next_captured")
        }
        fn next_captured(&mut self) -> Result<Option<Captured>, MediaError> {
            if self.left == 0 {
                return Ok(None);
            }
            self.left -= 1;
            let mut jpeg = self.jpeg.clone();
            jpeg.capture_us = (3 - self.left) * 33_333;
            Ok(Some(Captured::Jpeg(jpeg)))
        }
    }

    fn last_sent(control: Arc<EncoderControl>, jpeg: &vidcast_media::EncodedFrame) -> Frame {
        let (tx, rx) = watch::channel(None);
        let capture = Capture::start_adaptive(
            Box::new(JpegCamera {
                jpeg: jpeg.clone(),
                left: 3,
            }),
            control,
            tx,
        )
        .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while rx.has_changed().is_ok() {
            assert!(std::time::Instant::now() < deadline, "source never ended");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        capture.join().unwrap();
        let frame = rx.borrow().clone().unwrap();
        frame
    }

    #[test]
    fn a_cameras_own_jpeg_passes_through_only_at_full_settings() {
        let raw = RawFrame {
            width: 64,
            height: 64,
            format: vidcast_media::PixelFormat::Rgb8,
            data: vec![90; 64 * 64 * 3],
            seq: 0,
            capture_us: 0,
        };
        let jpeg = vidcast_media::JpegEncoder::new(80)
            .unwrap()
            .encode(&raw)
            .unwrap();
        let full = EncoderSettings {
            quality: 80,
            fps: 30.0,
            scale: 1.0,
        };
        let lowered = EncoderSettings {
            quality: 40,
            ..full
        };
        // Started below full (as publishers start): re-encoded at the lower quality.
        let starting = Arc::new(EncoderControl::starting_at(80, lowered));
        assert_ne!(last_sent(Arc::clone(&starting), &jpeg).data, jpeg.data);
        // Climbed to full: the camera's bytes go out untouched.
        starting.set(full);
        assert_eq!(last_sent(starting, &jpeg).data, jpeg.data);
    }
}

#[cfg(test)]
mod h264_tests {
    use super::*;
    use vidcast_media::{H264Config, H264Encoder, TestPattern, TestPatternConfig};

    /// After frame 5 (no keyframe since the first), sets `flag`, then waits up to 20 s for a
    /// keyframe after the request.
    fn request_a_keyframe_and_wait_for_it(
        rx: &mut watch::Receiver<Option<Frame>>,
        flag: &KeyframeFlag,
    ) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut requested_at = None;
        loop {
            assert!(std::time::Instant::now() < deadline, "no keyframe came");
            let Some(frame) = rx.borrow_and_update().clone() else {
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            };
            match requested_at {
                None if frame.seq > 5 => {
                    assert!(
                        !frame.is_keyframe,
                        "frame {} is a keyframe unasked",
                        frame.seq
                    );
                    flag.request();
                    requested_at = Some(frame.seq);
                }
                Some(at) if frame.seq > at && frame.is_keyframe => return,
                _ => {}
            }
        }
    }

    #[test]
    fn a_keyframe_request_makes_the_next_frame_a_keyframe() {
        let config = TestPatternConfig {
            width: 160,
            height: 120,
            fps: 30.0,
            label: "kf".into(),
            paced: false,
        };
        let source =
            TestPattern::new(config, Arc::new(vidcast_media::ManualClock::new(0))).unwrap();
        let encoder = H264Encoder::new(H264Config {
            keyint_frames: 1000,
            ..H264Config::default()
        })
        .unwrap();
        let (tx, mut rx) = watch::channel(None);
        let flag = Arc::new(KeyframeFlag::default());
        let capture =
            Capture::start_with_keyframes(Box::new(source), Box::new(encoder), tx, flag.clone())
                .unwrap();
        request_a_keyframe_and_wait_for_it(&mut rx, &flag);
        capture.join().unwrap();
    }

    /// A camera with its own H.264 encoder: a keyframe every 1000 frames unless asked.
    struct H264Camera {
        source: TestPattern,
        encoder: H264Encoder,
        seq: u64,
        asked: Arc<std::sync::atomic::AtomicU64>,
    }

    impl VideoSource for H264Camera {
        fn size(&self) -> (u32, u32) {
            (160, 120)
        }
        fn fps(&self) -> f64 {
            30.0
        }
        fn describe(&self) -> String {
            "h264 camera".into()
        }
        fn next_frame(&mut self) -> Result<Option<vidcast_media::RawFrame>, MediaError> {
            unreachable!("an H.264 camera is read with next_captured")
        }
        fn next_captured(&mut self) -> Result<Option<Captured>, MediaError> {
            self.seq += 1;
            let picture = self.source.render(self.seq, self.seq * 33_333);
            Ok(Some(Captured::H264(self.encoder.encode(&picture)?)))
        }
        fn request_keyframe(&mut self) -> bool {
            self.asked.fetch_add(1, Ordering::Relaxed);
            self.encoder.force_keyframe();
            true
        }
    }

    #[test]
    fn a_keyframe_request_reaches_a_source_that_sends_its_own_h264() {
        let pattern = TestPatternConfig {
            width: 160,
            height: 120,
            fps: 30.0,
            label: "cam".into(),
            paced: false,
        };
        let asked = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let camera = H264Camera {
            source: TestPattern::new(pattern, Arc::new(vidcast_media::ManualClock::new(0)))
                .unwrap(),
            encoder: H264Encoder::new(H264Config {
                keyint_frames: 1000,
                ..H264Config::default()
            })
            .unwrap(),
            seq: 0,
            asked: Arc::clone(&asked),
        };
        // The publisher's own encoder must not be used: the camera's frames pass through.
        let unused = H264Encoder::new(H264Config::default()).unwrap();
        let (tx, mut rx) = watch::channel(None);
        let flag = Arc::new(KeyframeFlag::default());
        let capture =
            Capture::start_with_keyframes(Box::new(camera), Box::new(unused), tx, flag.clone())
                .unwrap();
        request_a_keyframe_and_wait_for_it(&mut rx, &flag);
        capture.join().unwrap();
        assert_eq!(asked.load(Ordering::Relaxed), 1, "asked once");
    }
}
