//! The capture thread: source → encoder → the newest-frame slot the drive loop reads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use tokio::sync::watch;
use tracing::warn;
use vidcast_media::{
    Encoder, JpegEncoder, MediaError, RawFrame, ResizeScaler, Scaler, VideoSource,
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

/// A running capture thread.
pub struct Capture {
    /// Counters.
    pub stats: Arc<CaptureStats>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<Result<(), MediaError>>>,
}

impl Capture {
    /// Starts capturing on a thread of its own (sources block like cameras; encoders are
    /// CPU-bound), publishing each encoded frame into `frames`. The thread ends when the
    /// source ends, on a media error, when stopped, or when nobody reads `frames` any more;
    /// it then drops `frames`, which tells the drive loop the stream is over.
    pub fn start(
        source: Box<dyn VideoSource>,
        mut encoder: Box<dyn Encoder>,
        frames: watch::Sender<Option<Frame>>,
    ) -> std::io::Result<Self> {
        Self::spawn(source, None, frames, move |raw| {
            let encoded = encoder.encode(&raw)?;
            Ok(Frame {
                seq: encoded.seq,
                capture_us: encoded.capture_us,
                is_keyframe: encoded.is_keyframe,
                data: encoded.data,
            })
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
        Self::spawn_filtered(source, None, frames, move |raw| {
            let settings = control.get();
            if !limiter.keep(raw.capture_us, settings.fps) {
                return Ok(None);
            }
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
            Ok(Some(Frame {
                seq: encoded.seq,
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
        mut convert: impl FnMut(RawFrame) -> Result<T, MediaError> + Send + 'static,
    ) -> std::io::Result<Self> {
        Self::spawn_filtered(source, limit, frames, move |raw| convert(raw).map(Some))
    }

    /// [`Capture::spawn`] where `convert` may skip a frame by returning `None`.
    fn spawn_filtered<T: Send + Sync + 'static>(
        mut source: Box<dyn VideoSource>,
        limit: Option<u64>,
        frames: watch::Sender<Option<T>>,
        mut convert: impl FnMut(RawFrame) -> Result<Option<T>, MediaError> + Send + 'static,
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
                    let Some(raw) = source.next_frame()? else {
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
