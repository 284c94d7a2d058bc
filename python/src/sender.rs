//! `vidcast.Sender`: numpy frames to a hub through the Rust publisher.
//!
//! `send` copies the caller's picture into a one-slot [`Mailbox`] (a newer picture replaces
//! one not yet taken, counted) and returns. A thread of its own (`vidcast-py-send`) runs the
//! same pipeline as `vidcast send`: the capture thread takes the mailbox's newest picture
//! as its source and encodes it (JPEG or H.264, following link adaptation), and
//! `publish_with_reconnect` drives the connection on a tokio runtime. The thread starts
//! with the first frame, whose size the stream keeps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use tokio::sync::watch;
use vidcast_client::adapt::LinkAdaptation;
use vidcast_client::{Capture, KeyframeFlag, LiveStats, PublishOptions};
use vidcast_media::{
    Captured, Clock, Codec, EncodedFrame, H264Config, H264Encoder, JpegEncoder, MediaError,
    RawFrame, SystemClock, VideoSource,
};
use vidcast_proto::{Hello, Role, Timing, VERSION};

use crate::pixels::Layout;
use crate::{lock, tls_setup, VidcastError};

/// The one-picture slot between `send` and the capture thread: latest frame wins.
#[derive(Debug, Default)]
struct Mailbox {
    slot: Mutex<Slot>,
    ready: Condvar,
    /// Pictures replaced before the capture thread took them.
    replaced: AtomicU64,
}

#[derive(Debug, Default)]
struct Slot {
    picture: Option<Captured>,
    closed: bool,
}

impl Mailbox {
    /// Puts a picture in, replacing one not yet taken (counted).
    fn put(&self, picture: Captured) {
        let mut slot = lock(&self.slot);
        if slot.picture.replace(picture).is_some() {
            self.replaced.fetch_add(1, Ordering::Relaxed);
        }
        drop(slot);
        self.ready.notify_one();
    }

    /// No more pictures: the capture thread ends after the one waiting, if any.
    fn close(&self) {
        lock(&self.slot).closed = true;
        self.ready.notify_all();
    }

    /// The next picture, blocking until there is one; `None` once closed and empty.
    fn take(&self) -> Option<Captured> {
        let mut slot: MutexGuard<'_, Slot> = lock(&self.slot);
        loop {
            if let Some(picture) = slot.picture.take() {
                return Some(picture);
            }
            if slot.closed {
                return None;
            }
            slot = self.ready.wait(slot).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The mailbox as the capture thread's source, like a camera that delivers what `send` gave.
struct MailboxSource {
    mailbox: Arc<Mailbox>,
    size: (u32, u32),
    fps: f64,
}

impl VideoSource for MailboxSource {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn fps(&self) -> f64 {
        self.fps
    }

    fn describe(&self) -> String {
        format!("Python frames, {}x{}", self.size.0, self.size.1)
    }

    fn next_frame(&mut self) -> Result<Option<RawFrame>, MediaError> {
        self.mailbox.take().map(Captured::into_raw).transpose()
    }

    fn next_captured(&mut self) -> Result<Option<Captured>, MediaError> {
        Ok(self.mailbox.take())
    }
}

/// What `Sender(...)` was given.
#[derive(Debug, Clone)]
struct Settings {
    hub: String,
    name: String,
    codec: Codec,
    quality: u8,
    bitrate_bps: u32,
    fps: f64,
    token: String,
    tls: Option<vidcast_client::ClientTls>,
    adapt: bool,
    reconnect: Option<Duration>,
}

/// Between the Python object and its thread.
#[derive(Default)]
struct Shared {
    live: Mutex<LiveTotals>,
    /// Why the thread ended early (a wrong token, an unknown host), with the CLI's words.
    error: Mutex<Option<String>>,
    adaptation: Mutex<Option<Arc<LinkAdaptation>>>,
}

/// Counters over every session (each session's own start at zero).
#[derive(Debug, Default, Clone, Copy)]
struct LiveTotals {
    earlier_sent: u64,
    earlier_dropped: u64,
    current: LiveStats,
}

impl LiveTotals {
    fn update(&mut self, now: LiveStats) {
        if now.connection.frames_sent < self.current.connection.frames_sent {
            self.earlier_sent += self.current.connection.frames_sent;
            self.earlier_dropped += self.current.connection.frames_dropped;
        }
        self.current = now;
    }
}

/// The running pipeline, from the first frame on.
struct Running {
    size: (u32, u32),
    mailbox: Arc<Mailbox>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

/// Publishes numpy frames to a vidcast hub.
#[pyclass(module = "vidcast._vidcast")]
pub struct Sender {
    settings: Settings,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    running: Option<Running>,
    next_seq: u64,
    closed: bool,
}

#[pymethods]
impl Sender {
    #[new]
    #[pyo3(signature = (hub, name=None, codec="h264", quality=80, bitrate=1_500_000, fps=30.0, token=None, tls_fingerprint=None, adapt=true, reconnect=true, max_backoff=5.0))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments, each with a default
    fn new(
        hub: &str,
        name: Option<String>,
        codec: &str,
        quality: u8,
        bitrate: u32,
        fps: f64,
        token: Option<String>,
        tls_fingerprint: Option<String>,
        adapt: bool,
        reconnect: bool,
        max_backoff: f64,
    ) -> PyResult<Self> {
        let hub = crate::check_hub(hub)?;
        let name = name.unwrap_or_else(vidcast_client::default_name);
        if let Some(problem) = vidcast_proto::name_problem(&name) {
            return Err(PyValueError::new_err(format!("{problem}: {name:?}")));
        }
        let codec = match codec.to_ascii_lowercase().as_str() {
            "h264" | "h.264" => Codec::H264,
            "jpeg" | "jpg" | "mjpeg" => Codec::Jpeg,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "codec must be \"h264\" or \"jpeg\", got {codec:?}"
                )))
            }
        };
        if !(1..=100).contains(&quality) {
            return Err(PyValueError::new_err(format!(
                "quality must be 1 to 100, got {quality}"
            )));
        }
        if !(10_000..=100_000_000).contains(&bitrate) {
            return Err(PyValueError::new_err(format!(
                "bitrate {bitrate} is outside 10k..100M bits per second"
            )));
        }
        if !(fps > 0.0 && fps <= 1000.0) {
            return Err(PyValueError::new_err(format!(
                "fps must be above 0 and at most 1000, got {fps}"
            )));
        }
        let token = token.unwrap_or_default();
        if token.len() > vidcast_proto::MAX_TOKEN_LEN {
            return Err(PyValueError::new_err(format!(
                "token is longer than {} bytes",
                vidcast_proto::MAX_TOKEN_LEN
            )));
        }
        if !(max_backoff > 0.0 && max_backoff <= 3600.0) {
            return Err(PyValueError::new_err(format!(
                "max_backoff must be above 0 and at most 3600 seconds, got {max_backoff}"
            )));
        }
        let tls = tls_setup(&hub, tls_fingerprint.as_deref())?;
        Ok(Sender {
            settings: Settings {
                hub,
                name,
                codec,
                quality,
                bitrate_bps: bitrate,
                fps,
                token,
                tls,
                adapt,
                reconnect: reconnect.then(|| Duration::from_secs_f64(max_backoff)),
            },
            shared: Arc::default(),
            clock: Arc::new(SystemClock::new()),
            running: None,
            next_seq: 0,
            closed: false,
        })
    }

    /// Sends `frame` (H×W×3 uint8, BGR unless `format` says "rgb"; H×W for "gray"). Returns
    /// once the picture is copied (as it is: the encoder reads BGR rows directly); a picture
    /// the pipeline has not taken yet is replaced.
    #[pyo3(signature = (frame, format="bgr"))]
    fn send(
        &mut self,
        py: Python<'_>,
        frame: PyReadonlyArrayDyn<'_, u8>,
        format: &str,
    ) -> PyResult<()> {
        let layout = Layout::parse(format).map_err(PyValueError::new_err)?;
        let size = layout
            .size_of(frame.shape())
            .map_err(PyValueError::new_err)?;
        self.check_open(size)?;
        let view = frame.as_array();
        let capture_us = self.clock.now_us();
        let seq = self.next_seq;
        let (format, data) = py.allow_threads(|| layout.to_packed(&view));
        let frame = RawFrame {
            width: size.0,
            height: size.1,
            format,
            data,
            seq,
            capture_us,
        };
        self.post(py, size, Captured::Raw(frame))
    }

    /// Sends an already encoded JPEG as it is (on a JPEG stream without adaptation; otherwise
    /// it is decoded and encoded again like any picture).
    fn send_jpeg(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let size = if let Some(running) = &self.running {
            running.size
        } else {
            let picture = py
                .allow_threads(|| vidcast_media::decode_jpeg(data))
                .map_err(|e| PyValueError::new_err(format!("not a JPEG vidcast can read: {e}")))?;
            (picture.width, picture.height)
        };
        self.check_open(size)?;
        let frame = EncodedFrame {
            codec: Codec::Jpeg,
            width: size.0,
            height: size.1,
            seq: self.next_seq,
            capture_us: self.clock.now_us(),
            is_keyframe: true,
            data: bytes::Bytes::copy_from_slice(data),
        };
        self.post(py, size, Captured::Jpeg(frame))
    }

    /// Counters: sent, dropped (replaced before they left, here or in the connection),
    /// rtt_ms (ping round trip, None before the first), adapting (the link made the sender
    /// lower quality, rate or size), connected.
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let totals = *lock(&self.shared.live);
        let replaced = self
            .running
            .as_ref()
            .map_or(0, |r| r.mailbox.replaced.load(Ordering::Relaxed));
        // The start-up ramp (climbing to the asked settings) is not adapting: only a link
        // that made the sender step down is, as the hub and the wall say.
        let adapting = lock(&self.shared.adaptation).as_ref().is_some_and(|a| {
            let now = a.control.get();
            a.with(|adapter| adapter.has_congested())
                && (!a.control.at_full() || now.fps + 0.01 < self.settings.fps)
        });
        let stats = pyo3::types::PyDict::new(py);
        stats.set_item(
            "sent",
            totals.earlier_sent + totals.current.connection.frames_sent,
        )?;
        stats.set_item(
            "dropped",
            replaced + totals.earlier_dropped + totals.current.connection.frames_dropped,
        )?;
        stats.set_item(
            "rtt_ms",
            totals.current.ping_rtt_us.map(|us| us as f64 / 1000.0),
        )?;
        stats.set_item("adapting", adapting)?;
        Ok(stats)
    }

    /// The stream's name on the hub.
    #[getter]
    fn name(&self) -> &str {
        &self.settings.name
    }

    /// Sends what is waiting, says goodbye and stops (waits up to `timeout` seconds for the
    /// last frame to leave). Raises the error that stopped the sender early, if one did.
    #[pyo3(signature = (timeout=2.0))]
    fn close(&mut self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        self.closed = true;
        if let Some(mut running) = self.running.take() {
            running.mailbox.close();
            let deadline = Instant::now() + Duration::from_secs_f64(timeout.clamp(0.0, 60.0));
            if let Some(thread) = running.thread.take() {
                py.allow_threads(|| {
                    while !thread.is_finished() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    // Not flushed in time (the hub is away): say goodbye now.
                    let _ = running.stop.send(true);
                    let _ = thread.join();
                });
            }
        }
        match lock(&self.shared.error).take() {
            Some(message) => Err(VidcastError::new_err(message)),
            None => Ok(()),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(
        &mut self,
        py: Python<'_>,
        _args: &Bound<'_, pyo3::types::PyTuple>,
    ) -> PyResult<bool> {
        self.close(py, 2.0)?;
        Ok(false)
    }
}

impl Drop for Sender {
    /// A sender dropped without `close`: the pipeline ends on its own (sends what is
    /// waiting, says goodbye) rather than reconnecting forever behind nobody's back.
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.mailbox.close();
            let _ = running.stop.send(true);
        }
    }
}

impl Sender {
    /// Refuses a frame after `close`, after the thread failed, or of another size.
    fn check_open(&self, size: (u32, u32)) -> PyResult<()> {
        if self.closed {
            return Err(VidcastError::new_err("this Sender is closed"));
        }
        if let Some(message) = lock(&self.shared.error).clone() {
            return Err(VidcastError::new_err(message));
        }
        match &self.running {
            Some(running) if running.size != size => Err(PyValueError::new_err(format!(
                "frame is {}x{}; this Sender sends {}x{} (the size of its first frame)",
                size.0, size.1, running.size.0, running.size.1
            ))),
            _ => Ok(()),
        }
    }

    /// Hands a picture to the pipeline, starting it with the first.
    fn post(&mut self, py: Python<'_>, size: (u32, u32), picture: Captured) -> PyResult<()> {
        self.next_seq += 1;
        if self.running.is_none() {
            self.running = Some(self.start(py, size)?);
        }
        if let Some(running) = &self.running {
            running.mailbox.put(picture);
        }
        Ok(())
    }

    /// Starts the publishing thread for `size` pictures.
    fn start(&self, py: Python<'_>, size: (u32, u32)) -> PyResult<Running> {
        let mailbox = Arc::new(Mailbox::default());
        let (stop, stop_rx) = watch::channel(false);
        let settings = self.settings.clone();
        let (shared, clock, source_box) = (
            Arc::clone(&self.shared),
            Arc::clone(&self.clock),
            Arc::clone(&mailbox),
        );
        let thread = py
            .allow_threads(|| {
                std::thread::Builder::new()
                    .name("vidcast-py-send".into())
                    .spawn(move || {
                        let result = publish(
                            settings,
                            Arc::clone(&source_box),
                            size,
                            &shared,
                            clock,
                            stop_rx,
                        );
                        if let Err(message) = result {
                            tracing::warn!("{message}");
                            *lock(&shared.error) = Some(message);
                        }
                        // Nobody takes pictures any more: later sends must not wait on it.
                        source_box.close();
                    })
            })
            .map_err(|e| VidcastError::new_err(format!("cannot start the sender thread: {e}")))?;
        Ok(Running {
            size,
            mailbox,
            stop,
            thread: Some(thread),
        })
    }
}

/// `vidcast send`'s pipeline over `source` until it ends or `stop` turns true; the error in
/// the CLI's words.
fn publish(
    settings: Settings,
    mailbox: Arc<Mailbox>,
    size: (u32, u32),
    shared: &Shared,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let h264_config = H264Config::live(settings.bitrate_bps, settings.fps, Duration::from_secs(2));
    let keyframes = (settings.codec == Codec::H264).then(Arc::<KeyframeFlag>::default);
    let adaptation = settings.adapt.then(|| {
        Arc::new(match settings.codec {
            Codec::Jpeg => LinkAdaptation::new(settings.quality, settings.fps, size),
            Codec::H264 => LinkAdaptation::for_h264(settings.fps, size),
        })
    });
    *lock(&shared.adaptation) = adaptation.clone();
    let (tx, mut frames) = watch::channel(None);
    let capture_keyframes = keyframes.clone().unwrap_or_default();
    let source = Box::new(MailboxSource {
        mailbox: Arc::clone(&mailbox),
        size,
        fps: settings.fps,
    });
    let capture = match (&adaptation, settings.codec) {
        (Some(a), Codec::H264) => Capture::start_adaptive_h264(
            source,
            Arc::clone(&a.control),
            h264_config,
            tx,
            capture_keyframes,
        ),
        (Some(a), Codec::Jpeg) => Capture::start_adaptive(source, Arc::clone(&a.control), tx),
        (None, Codec::H264) => {
            let encoder = H264Encoder::new(h264_config)
                .map_err(|e| format!("cannot start the H.264 encoder: {e}"))?;
            Capture::start_with_keyframes(source, Box::new(encoder), tx, capture_keyframes)
        }
        (None, Codec::Jpeg) => {
            let encoder = JpegEncoder::new(settings.quality)
                .map_err(|e| format!("cannot start the JPEG encoder: {e}"))?;
            Capture::start_with_keyframes(source, Box::new(encoder), tx, capture_keyframes)
        }
    }
    .map_err(|e| format!("cannot start the capture thread: {e}"))?;
    let hello = Hello {
        version: VERSION,
        role: Role::Publisher,
        codec: Ok(settings.codec),
        width: u16::try_from(size.0).unwrap_or(u16::MAX),
        height: u16::try_from(size.1).unwrap_or(u16::MAX),
        fps_milli: (settings.fps * 1000.0).round() as u32,
        name: settings.name.clone(),
        token: settings.token.clone(),
    };
    let result = runtime.block_on(async {
        let addrs = vidcast_client::resolve(&settings.hub)
            .await
            .map_err(|e| e.to_string())?;
        let (stats_tx, mut stats_rx) = watch::channel(LiveStats::default());
        let options = PublishOptions {
            timing: Timing::default(),
            stats: Some(stats_tx),
            tls: settings.tls.clone(),
            adaptation,
            keyframes,
            accepted: None,
        };
        let publishing = vidcast_client::publish_with_reconnect(
            &addrs,
            hello,
            options,
            &mut frames,
            clock,
            settings.reconnect,
            async move {
                let _ = stop.wait_for(|&s| s).await;
            },
        );
        tokio::pin!(publishing);
        loop {
            tokio::select! {
                summary = &mut publishing => return summary.map(|_| ()).map_err(|e| e.to_string()),
                changed = stats_rx.changed() => {
                    if changed.is_ok() {
                        lock(&shared.live).update(*stats_rx.borrow_and_update());
                    }
                }
            }
        }
    });
    // Ended early (an error): the capture thread may be waiting for a picture.
    mailbox.close();
    capture.stop();
    let captured = capture.join();
    result?;
    captured.map_err(|e| format!("the source failed: {e}"))
}
