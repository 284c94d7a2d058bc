//! `vidcast.Receiver`: every stream of a hub as numpy frames, through the Rust viewer.
//!
//! A thread of its own (`vidcast-py-recv`) runs `vidcast_viewer::watch_hub` (the native
//! viewer's connection, with reconnection) into an [`Inbox`]: per stream the newest frame
//! only, so a consumer slower than the streams gets the newest picture, never a backlog.
//! H.264 is decoded as it arrives (each frame needs the one before), each live stream on a
//! thread of its own ([`DecodeLane`], ended when the stream leaves or the receiver closes),
//! so streams decode in parallel. The consumer converts the newest picture when it takes
//! it, with the GIL released: JPEG decoded straight into BGR, I420 converted straight to
//! BGR (SIMD).

use std::collections::btree_map::Entry as Slot;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use tokio::sync::watch;
use vidcast_media::{Clock, RawFrame, SystemClock};
use vidcast_proto::{Codec, Frame, StreamAnnounce, Timestamp, Welcome};
use vidcast_viewer::decode::{Arrival, StreamDecoder};
use vidcast_viewer::net::stream_meta;
use vidcast_viewer::{StreamMeta, ViewOptions, Watcher};

use crate::lane::{Arrived, DecodeLane};
use crate::{lock, VidcastError};

/// Connect and disconnect events kept for `events()`; older ones are dropped (counted).
const MAX_EVENTS: usize = 1024;

/// A stream's newest frame, still compressed (JPEG) or decoded (H.264, I420).
#[derive(Debug, Clone)]
enum Picture {
    Jpeg(Bytes),
    Decoded(Arc<RawFrame>),
}

/// The newest frame of a stream and when it was made and arrived.
#[derive(Debug, Clone)]
struct Newest {
    seq: u64,
    capture_us: u64,
    received_us: u64,
    latency_us: Option<u64>,
    picture: Picture,
}

#[derive(Debug)]
struct Entry {
    meta: StreamMeta,
    newest: Option<Newest>,
    /// Whether `newest` has not been handed out yet.
    is_fresh: bool,
    /// Arrival order of `newest`, so streams take turns.
    arrival: u64,
    frames: u64,
    skipped: u64,
}

/// What the network thread leaves for the Python side.
#[derive(Debug, Default)]
struct InboxState {
    streams: BTreeMap<u64, Entry>,
    events: VecDeque<(&'static str, StreamMeta)>,
    events_dropped: u64,
    arrivals: u64,
    status: String,
    /// Why the network thread stopped for good, in the CLI's words.
    error: Option<String>,
    finished: bool,
}

/// The [`Watcher`] behind a `Receiver`.
#[derive(Debug)]
struct Inbox {
    state: Mutex<InboxState>,
    ready: Condvar,
    /// Per-stream sequence checks of streams decoded on the network thread (JPEG, and H.264
    /// when no lane could start); touched by the network thread only, outside `state`'s lock.
    decoders: Mutex<BTreeMap<u64, StreamDecoder>>,
    /// Live H.264 streams' decoding threads. Removed (the thread ended) outside `state`'s
    /// lock: a lane delivers into `state`.
    lanes: Mutex<BTreeMap<u64, DecodeLane>>,
    /// This inbox, for the lanes: they deliver only while the network thread lives (it ends
    /// them all before it lets go of the inbox).
    me: Weak<Inbox>,
    /// Only streams of these names are delivered (all when `None`).
    names: Option<HashSet<String>>,
}

impl Inbox {
    fn wanted(&self, name: &str) -> bool {
        self.names.as_ref().is_none_or(|n| n.contains(name))
    }

    /// Ends the decoding threads of `stream_id` (all streams when `None`).
    fn end_lanes(&self, stream_id: Option<u64>) {
        let ended = match stream_id {
            Some(id) => lock(&self.lanes).remove(&id).into_iter().collect(),
            None => std::mem::take(&mut *lock(&self.lanes))
                .into_values()
                .collect(),
        };
        drop::<Vec<DecodeLane>>(ended); // joins, with no lock held
    }

    /// Hands H.264 frame `arrived` of `stream_id` to the stream's lane, started on its first
    /// frame; `Err` gives the frame back when no thread can start.
    fn post_to_lane(&self, stream_id: u64, arrived: Arrived) -> Result<(), Arrived> {
        let mut lanes = lock(&self.lanes);
        let lane = match lanes.entry(stream_id) {
            Slot::Occupied(slot) => slot.into_mut(),
            Slot::Vacant(slot) => {
                let me = self.me.clone();
                let deliver = move |arrived: Arrived, arrival: Arrival| {
                    if let Some(inbox) = me.upgrade() {
                        let picture = arrival.picture.map(|raw| Picture::Decoded(Arc::new(raw)));
                        inbox.deliver(stream_id, &arrived, arrival.skipped, picture);
                    }
                };
                match DecodeLane::spawn(stream_id, deliver) {
                    Ok(lane) => slot.insert(lane),
                    Err(e) => {
                        tracing::warn!("stream {stream_id}: no decoding thread ({e}); decoding on the network thread");
                        return Err(arrived);
                    }
                }
            }
        };
        let dropped = lane.post(arrived);
        if dropped > 0 {
            tracing::debug!(
                "stream {stream_id}: decoding fell {dropped} frames behind; waiting for a keyframe"
            );
        }
        Ok(())
    }

    /// Records what frame `arrived` of `stream_id` gave: `picture` becomes the stream's
    /// newest (latest frame wins), `skipped` frames before it are counted.
    fn deliver(&self, stream_id: u64, arrived: &Arrived, skipped: u64, picture: Option<Picture>) {
        let mut state = lock(&self.state);
        state.arrivals += 1;
        let order = state.arrivals;
        let Some(entry) = state.streams.get_mut(&stream_id) else {
            return;
        };
        entry.skipped += skipped;
        if let Some(picture) = picture {
            entry.frames += 1;
            if entry.is_fresh {
                entry.skipped += 1; // replaced before anyone took it: latest frame wins
            }
            entry.newest = Some(Newest {
                seq: arrived.frame.seq,
                capture_us: arrived.frame.capture_us,
                received_us: arrived.received_at.as_micros(),
                latency_us: arrived.latency_us,
                picture,
            });
            entry.is_fresh = true;
            entry.arrival = order;
            drop(state);
            self.ready.notify_all();
        }
    }

    fn event(state: &mut InboxState, kind: &'static str, meta: StreamMeta) {
        if state.events.len() >= MAX_EVENTS {
            state.events.pop_front();
            state.events_dropped += 1;
        }
        state.events.push_back((kind, meta));
    }

    /// Waits up to `timeout` for a frame not handed out yet (the stream waiting longest
    /// first) and takes it; `Err` with the thread's error once it stopped.
    fn take_fresh(
        &self,
        timeout: Duration,
    ) -> Result<Option<(StreamMeta, Newest, u64, u64)>, Stop> {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.state);
        loop {
            let oldest = state
                .streams
                .iter()
                .filter(|(_, e)| e.is_fresh)
                .min_by_key(|(_, e)| e.arrival)
                .map(|(&id, _)| id);
            if let Some(entry) = oldest.and_then(|id| state.streams.get_mut(&id)) {
                entry.is_fresh = false;
                if let Some(newest) = entry.newest.clone() {
                    return Ok(Some((
                        entry.meta.clone(),
                        newest,
                        entry.frames,
                        entry.skipped,
                    )));
                }
            }
            if state.finished {
                return Err(Stop(state.error.clone()));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            state = self
                .ready
                .wait_timeout(state, deadline - now)
                .map(|(s, _)| s)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

/// The network thread stopped, with its error if it had one.
struct Stop(Option<String>);

impl Watcher for Inbox {
    fn welcomed(&self, addr: SocketAddr, welcome: &Welcome) {
        tracing::info!("watching hub {addr} (viewer {})", welcome.stream_id);
        lock(&self.state).status = format!("hub {addr}: connected");
    }

    fn stream(&self, announce: StreamAnnounce) {
        let meta = stream_meta(&announce);
        let (id, is_live) = (meta.id, meta.live);
        let mut state = lock(&self.state);
        let was_live = state.streams.get(&meta.id).is_some_and(|e| e.meta.live);
        match (was_live, meta.live) {
            (false, true) => Self::event(&mut state, "connected", meta.clone()),
            (true, false) => Self::event(&mut state, "disconnected", meta.clone()),
            _ => {}
        }
        match state.streams.get_mut(&meta.id) {
            Some(entry) => entry.meta = meta,
            None => {
                state.streams.insert(
                    meta.id,
                    Entry {
                        meta,
                        newest: None,
                        is_fresh: false,
                        arrival: 0,
                        frames: 0,
                        skipped: 0,
                    },
                );
            }
        }
        drop(state);
        self.ready.notify_all();
        if !is_live {
            self.end_lanes(Some(id));
        }
    }

    fn removed(&self, stream_id: u64) {
        lock(&self.decoders).remove(&stream_id);
        self.end_lanes(Some(stream_id));
        let mut state = lock(&self.state);
        if let Some(entry) = state.streams.remove(&stream_id) {
            if entry.meta.live {
                Self::event(&mut state, "disconnected", entry.meta);
            }
        }
    }

    fn frame(&self, stream_id: u64, frame: Frame, received_at: Timestamp, latency_us: Option<u64>) {
        let (codec, wanted) = {
            let state = lock(&self.state);
            match state.streams.get(&stream_id) {
                // An offline stream's last picture (the hub shows it on the wall) is not
                // news: only live streams' frames are handed out.
                Some(e) => (e.meta.codec, e.meta.live && self.wanted(&e.meta.name)),
                None => return,
            }
        };
        if !wanted {
            return;
        }
        let mut arrived = Arrived {
            frame,
            received_at,
            latency_us,
        };
        if codec == Some(Codec::H264) {
            match self.post_to_lane(stream_id, arrived) {
                Ok(()) => return,
                Err(back) => arrived = back,
            }
        }
        let frame = &arrived.frame;
        let arrival = lock(&self.decoders).entry(stream_id).or_default().offer(
            stream_id,
            codec,
            frame.seq,
            frame.is_keyframe,
            &frame.data,
        );
        let picture = match (codec, arrival.picture) {
            (Some(Codec::H264), Some(raw)) => Some(Picture::Decoded(Arc::new(raw))),
            (Some(Codec::H264), None) | (None, _) => None,
            (Some(Codec::Jpeg), _) => Some(Picture::Jpeg(frame.data.clone())),
        };
        self.deliver(stream_id, &arrived, arrival.skipped, picture);
    }

    fn set_status(&self, status: String) {
        lock(&self.state).status = status;
    }

    fn clear(&self) {
        lock(&self.decoders).clear();
        self.end_lanes(None);
        let mut state = lock(&self.state);
        let streams = std::mem::take(&mut state.streams);
        for entry in streams.into_values().filter(|e| e.meta.live) {
            Self::event(&mut state, "disconnected", entry.meta);
        }
    }
}

/// A stream as the Python side sees it, with the frame it came with.
#[pyclass(module = "vidcast._vidcast", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct Stream {
    /// Stream id on the hub.
    id: u64,
    /// The publisher's name.
    name: String,
    /// The publisher's address, "ip:port".
    peer: String,
    /// "h264", "jpeg", or None for a codec this version does not know.
    codec: Option<&'static str>,
    /// Announced picture size.
    width: u16,
    /// Announced picture size.
    height: u16,
    /// Whether the publisher is connected.
    live: bool,
    /// The frame's number (0 with events).
    seq: u64,
    /// When the frame was captured, seconds since the epoch on this machine's clock (None
    /// when unknown).
    capture_time: Option<f64>,
    /// When the frame arrived here, seconds since the epoch.
    received_time: Option<f64>,
    /// Capture to arrival here, milliseconds (None until the clocks are compared).
    latency_ms: Option<f64>,
    /// Frames of this stream received so far (decodable ones).
    frames: u64,
    /// Frames of this stream never handed out: skipped by the hub for this receiver, or
    /// replaced here by a newer one before anyone took them (latest frame wins).
    skipped: u64,
}

#[pymethods]
impl Stream {
    fn __repr__(&self) -> String {
        let latency = self
            .latency_ms
            .map_or_else(|| "None".to_owned(), |ms| format!("{ms:.1}"));
        format!(
            "Stream(id={}, name={:?}, peer={:?}, seq={}, latency_ms={latency})",
            self.id, self.name, self.peer, self.seq
        )
    }
}

impl Stream {
    fn of(meta: &StreamMeta) -> Self {
        Stream {
            id: meta.id,
            name: meta.name.clone(),
            peer: meta.peer.clone(),
            codec: meta.codec.map(|c| match c {
                Codec::H264 => "h264",
                Codec::Jpeg => "jpeg",
            }),
            width: meta.width,
            height: meta.height,
            live: meta.live,
            seq: 0,
            capture_time: None,
            received_time: None,
            latency_ms: None,
            frames: 0,
            skipped: 0,
        }
    }

    fn with_frame(meta: &StreamMeta, newest: &Newest, frames: u64, skipped: u64) -> Self {
        let seconds = |us: u64| (us != 0).then(|| us as f64 / 1e6);
        // Capture time is on the hub's clock shifted to ours: arrival minus latency.
        let capture_us = newest
            .latency_us
            .map_or(newest.capture_us, |l| newest.received_us.saturating_sub(l));
        Stream {
            seq: newest.seq,
            capture_time: seconds(capture_us),
            received_time: seconds(newest.received_us),
            latency_ms: newest.latency_us.map(|us| us as f64 / 1000.0),
            frames,
            skipped,
            ..Self::of(meta)
        }
    }
}

/// Receives every stream of a vidcast hub as BGR numpy frames.
#[pyclass(module = "vidcast._vidcast")]
pub struct Receiver {
    inbox: Arc<Inbox>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

#[pymethods]
impl Receiver {
    #[new]
    #[pyo3(signature = (hub, names=None, token=None, tls_fingerprint=None, reconnect=true, max_backoff=5.0, name="python"))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments, each with a default
    fn new(
        py: Python<'_>,
        hub: &str,
        names: Option<Vec<String>>,
        token: Option<String>,
        tls_fingerprint: Option<String>,
        reconnect: bool,
        max_backoff: f64,
        name: &str,
    ) -> PyResult<Self> {
        let hub = crate::check_hub(hub)?;
        if let Some(problem) = vidcast_proto::name_problem(name) {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "{problem}: {name:?}"
            )));
        }
        if !(max_backoff > 0.0 && max_backoff <= 3600.0) {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "max_backoff must be above 0 and at most 3600 seconds, got {max_backoff}"
            )));
        }
        let options = ViewOptions {
            name: name.to_owned(),
            token: token.unwrap_or_default(),
            reconnect,
            max_backoff: Duration::from_secs_f64(max_backoff),
            tls: crate::tls_setup(&hub, tls_fingerprint.as_deref())?,
            ..ViewOptions::default()
        };
        let names = names.map(|n| n.into_iter().collect());
        let inbox = Arc::new_cyclic(|me| Inbox {
            state: Mutex::default(),
            ready: Condvar::new(),
            decoders: Mutex::default(),
            lanes: Mutex::default(),
            me: me.clone(),
            names,
        });
        let (stop, stop_rx) = watch::channel(false);
        let watcher = Arc::clone(&inbox);
        let thread = py
            .allow_threads(|| {
                std::thread::Builder::new()
                    .name("vidcast-py-recv".into())
                    .spawn(move || {
                        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
                        let result = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .map_err(|e| format!("cannot start the async runtime: {e}"))
                            .and_then(|rt| {
                                rt.block_on(vidcast_viewer::watch_hub(
                                    &hub,
                                    options,
                                    Arc::clone(&watcher),
                                    clock,
                                    stop_rx,
                                ))
                                .map_err(|e| e.to_string())
                            });
                        watcher.end_lanes(None);
                        let mut state = lock(&watcher.state);
                        state.error = result.err();
                        state.finished = true;
                        drop(state);
                        watcher.ready.notify_all();
                    })
            })
            .map_err(|e| VidcastError::new_err(format!("cannot start the receiver thread: {e}")))?;
        Ok(Receiver {
            inbox,
            stop,
            thread: Some(thread),
        })
    }

    /// The next frame not yet handed out, of any stream (the one waiting longest first):
    /// `(stream, frame)` with `frame` a BGR H×W×3 uint8 array. Waits up to `timeout`
    /// seconds (forever when None) and returns None if nothing came. Raises VidcastError
    /// when the connection failed for good (a wrong token, reconnect=False and a lost hub).
    #[pyo3(signature = (timeout=None))]
    fn recv<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<(Stream, Bound<'py, PyAny>)>> {
        let Some((stream, newest)) = self.wait_fresh(py, timeout)? else {
            return Ok(None);
        };
        Ok(Some((stream, to_bgr_array(py, &newest.picture)?)))
    }

    /// Like `recv` returning raw JPEG bytes instead of pixels: a JPEG stream's frame as it
    /// came, an H.264 picture encoded at `quality`.
    #[pyo3(signature = (timeout=None, quality=90))]
    fn recv_jpeg(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        quality: u8,
    ) -> PyResult<Option<(Stream, Py<pyo3::types::PyBytes>)>> {
        let Some((stream, newest)) = self.wait_fresh(py, timeout)? else {
            return Ok(None);
        };
        let jpeg = match &newest.picture {
            Picture::Jpeg(data) => data.clone(),
            Picture::Decoded(raw) => py
                .allow_threads(|| encode_jpeg(raw, quality))
                .map_err(VidcastError::new_err)?,
        };
        Ok(Some((
            stream,
            pyo3::types::PyBytes::new(py, &jpeg).unbind(),
        )))
    }

    /// The newest frame of the live stream called `name` (whether handed out before or
    /// not), or None when it has none; never waits.
    fn latest<'py>(
        &self,
        py: Python<'py>,
        name: &str,
    ) -> PyResult<Option<(Stream, Bound<'py, PyAny>)>> {
        let found = {
            let mut state = lock(&self.inbox.state);
            state
                .streams
                .values_mut()
                .filter(|e| e.meta.name == name && e.meta.live && e.newest.is_some())
                .max_by_key(|e| e.arrival)
                .and_then(|e| {
                    e.is_fresh = false;
                    e.newest
                        .clone()
                        .map(|n| (e.meta.clone(), n, e.frames, e.skipped))
                })
        };
        match found {
            Some((meta, newest, frames, skipped)) => {
                let frame = to_bgr_array(py, &newest.picture)?;
                Ok(Some((
                    Stream::with_frame(&meta, &newest, frames, skipped),
                    frame,
                )))
            }
            None => Ok(None),
        }
    }

    /// Live streams now (the hub's list, names filter applied).
    fn streams(&self) -> Vec<Stream> {
        let state = lock(&self.inbox.state);
        state
            .streams
            .values()
            .filter(|e| e.meta.live && self.inbox.wanted(&e.meta.name))
            .map(|e| Stream::of(&e.meta))
            .collect()
    }

    /// Connect and disconnect events since the last call, oldest first:
    /// `("connected" | "disconnected", stream)`. A lost hub disconnects every stream.
    fn events(&self) -> Vec<(&'static str, Stream)> {
        let mut state = lock(&self.inbox.state);
        let wanted: Vec<_> = state
            .events
            .drain(..)
            .filter(|(_, m)| self.inbox.wanted(&m.name))
            .map(|(kind, meta)| (kind, Stream::of(&meta)))
            .collect();
        wanted
    }

    /// The connection's state in words ("connecting to hub …", "hub …: connected").
    #[getter]
    fn status(&self) -> String {
        lock(&self.inbox.state).status.clone()
    }

    /// Says goodbye to the hub and stops the network thread.
    fn close(&mut self, py: Python<'_>) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            py.allow_threads(|| {
                let _ = thread.join();
            });
        }
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<(Stream, Bound<'py, PyAny>)>> {
        // None ends the iteration: the receiver was closed.
        self.recv(py, None)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }
}

impl Receiver {
    /// Waits (GIL released, in slices so Ctrl-C reaches Python) for a frame not handed out
    /// yet; None after `timeout` seconds or once the receiver is closed.
    fn wait_fresh(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
    ) -> PyResult<Option<(Stream, Newest)>> {
        let deadline = timeout.map(|t| Instant::now() + Duration::from_secs_f64(t.clamp(0.0, 1e6)));
        loop {
            let slice = deadline.map_or(Duration::from_millis(100), |d| {
                d.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100))
            });
            match py.allow_threads(|| self.inbox.take_fresh(slice)) {
                Ok(Some((meta, newest, frames, skipped))) => {
                    let stream = Stream::with_frame(&meta, &newest, frames, skipped);
                    return Ok(Some((stream, newest)));
                }
                Ok(None) => {}
                Err(Stop(Some(message))) => return Err(VidcastError::new_err(message)),
                Err(Stop(None)) => return Ok(None),
            }
            py.check_signals()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Pixels as a BGR H×W×3 numpy array: a JPEG decoded straight into BGR, an I420 picture
/// converted straight to BGR; the GIL released meanwhile. The array owns the decoded buffer (no copy).
fn to_bgr_array<'py>(py: Python<'py>, picture: &Picture) -> PyResult<Bound<'py, PyAny>> {
    let decoded = py.allow_threads(|| -> Result<(u32, u32, Vec<u8>), String> {
        match picture {
            Picture::Jpeg(data) => {
                let frame = vidcast_media::decode_jpeg_bgr(data).map_err(|e| e.to_string())?;
                Ok((frame.width, frame.height, frame.data))
            }
            Picture::Decoded(raw) => {
                let bgr = raw.to_bgr().map_err(|e| e.to_string())?.into_owned();
                Ok((raw.width, raw.height, bgr))
            }
        }
    });
    let (width, height, bgr) = decoded.map_err(VidcastError::new_err)?;
    let array = PyArray1::from_vec(py, bgr).reshape([height as usize, width as usize, 3])?;
    Ok(array.into_any())
}

/// A decoded picture as a JPEG at `quality`.
fn encode_jpeg(raw: &RawFrame, quality: u8) -> Result<Bytes, String> {
    use vidcast_media::Encoder;
    let mut encoder =
        vidcast_media::JpegEncoder::new(quality.clamp(1, 100)).map_err(|e| e.to_string())?;
    encoder
        .encode(raw)
        .map(|f| f.data)
        .map_err(|e| e.to_string())
}
