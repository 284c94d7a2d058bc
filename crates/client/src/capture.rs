//! The capture thread: source → encoder → the newest-frame slot the drive loop reads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use tokio::sync::watch;
use tracing::warn;
use vidcast_media::{Captured, Encoder, MediaError, VideoSource};
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
    /// CPU-bound), publishing each encoded frame into `frames`. A JPEG the source already
    /// has (an MJPEG camera) is sent as it is, without re-encoding. The thread ends when the
    /// source ends, on a media error, when stopped, or when nobody reads `frames` any more;
    /// it then drops `frames`, which tells the drive loop the stream is over.
    pub fn start(
        source: Box<dyn VideoSource>,
        mut encoder: Box<dyn Encoder>,
        frames: watch::Sender<Option<Frame>>,
    ) -> std::io::Result<Self> {
        Self::spawn(source, None, frames, move |captured| {
            let encoded = match captured {
                Captured::Raw(raw) => encoder.encode(&raw)?,
                Captured::Jpeg(jpeg) => jpeg,
            };
            Ok(Frame {
                seq: encoded.seq,
                capture_us: encoded.capture_us,
                is_keyframe: encoded.is_keyframe,
                data: encoded.data,
            })
        })
    }

    /// The capture thread for any kind of outgoing frame: takes at most `limit` frames from
    /// `source`, turns each into a `T` with `convert` and overwrites `frames` with it. Ends
    /// like [`Capture::start`]'s.
    pub(crate) fn spawn<T: Send + Sync + 'static>(
        mut source: Box<dyn VideoSource>,
        limit: Option<u64>,
        frames: watch::Sender<Option<T>>,
        mut convert: impl FnMut(Captured) -> Result<T, MediaError> + Send + 'static,
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
                    let Some(raw) = source.next_captured()? else {
                        return Ok(());
                    };
                    thread_stats.captured.fetch_add(1, Ordering::Relaxed);
                    let converted = convert(raw)?;
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
