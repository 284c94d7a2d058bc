//! Recording streams to disk (`serve --record DIR`): a supervisor task follows the
//! registry's connect/disconnect events and runs one recorder per live stream; each recorder
//! is an async forwarder (in-order frames → a bounded queue, never waiting) and a writer
//! thread that owns the sans-IO `vidcast_record::Recorder` and its files. A slow or full
//! disk loses frames (counted) but never stalls a session. The queue is bounded in frames and
//! in bytes (the stream's and the hub's [`FrameBudget`]), and the writer records only frames
//! that parse as their codec: a publisher's garbage is counted, not written.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};
use vidcast_media::Clock;
use vidcast_record::{
    retention, Codec, FileSink, Output, RecFrame, RecordConfig, Recorder, StreamMeta,
};

use crate::access::budget::{LimitHits, RateLog};
use crate::stream::frames::{Bound, FrameBudget, FrameOutlet, GroupRepeats};
use crate::stream::registry::{lock, EventKind, LatestFrame, Registry, StreamId};

/// Frames waiting for a writer thread; past this the newest are dropped (about 2 s at 30
/// fps: longer than a fragment's fsync on a healthy disk).
const WRITER_BACKLOG: usize = 64;
/// Frames that do not parse, logged once per period for every recorder of the process.
static UNPARSABLE_LOG: RateLog = RateLog::new(crate::access::budget::LOG_EVERY);
/// How long shutdown waits for recorders to write their last fragments and close.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// A stream's recording as `/api/streams` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct RecordingSnapshot {
    /// Whether this stream is recorded when live.
    pub on: bool,
    /// The file being written now.
    pub file: Option<String>,
    /// Frames written since the stream (re)connected.
    pub frames: u64,
    /// Frames lost because the recorder fell behind, waited for a keyframe or backed off
    /// after a write error.
    pub dropped: u64,
    /// Frames not recorded because they do not parse as the stream's codec (a JPEG without
    /// its markers or of another size, an H.264 access unit that is not Annex B syntax).
    pub unparsable: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Segments started.
    pub segments: u64,
    /// The last write error, until writing works again.
    pub error: Option<String>,
}

/// One recorder's numbers, shared between its forwarder, its writer thread and the API.
#[derive(Default)]
struct Status {
    snapshot: Mutex<RecordingSnapshot>,
    /// Frames the forwarder could not queue (lagged, queue full in frames or bytes).
    queue_dropped: AtomicU64,
    /// Bytes of frames queued for the writer now.
    queued_bytes: AtomicUsize,
    /// Frames the writer refused because they do not parse.
    unparsable: AtomicU64,
}

impl Status {
    fn snapshot(&self) -> RecordingSnapshot {
        let mut s = lock(&self.snapshot).clone();
        s.dropped = s
            .dropped
            .saturating_add(self.queue_dropped.load(Ordering::Relaxed));
        s.unparsable = self.unparsable.load(Ordering::Relaxed);
        s
    }
}

struct Active {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    status: Arc<Status>,
}

#[derive(Default)]
struct State {
    active: HashMap<StreamId, Active>,
    /// Streams turned off from the API.
    off: HashSet<StreamId>,
    /// Streams turned on from the API that `--record-only` leaves out.
    on: HashSet<StreamId>,
    /// The last recorder's numbers of streams not recorded now (the API shows its error).
    finished: HashMap<StreamId, Arc<Status>>,
    /// Recorders told to stop that may still be writing their last fragment: shutdown
    /// waits for them too.
    stopping: Vec<JoinHandle<()>>,
    closing: bool,
}

/// Every recorder of a hub.
pub(crate) struct Recordings {
    config: RecordConfig,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    closing: watch::Sender<bool>,
}

impl Recordings {
    /// Recordings under `config.dir`; an unusable directory is logged, not fatal: the hub
    /// serves live video anyway and each recorder reports its own errors.
    pub(crate) fn new(
        config: RecordConfig,
        registry: Arc<Registry>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        match std::fs::create_dir_all(&config.dir) {
            Ok(()) => info!(
                "recording {} to {} (segments of {:?}, keep {})",
                if config.only.is_empty() {
                    "every stream".to_owned()
                } else {
                    format!("streams named {}", config.only.join(" or "))
                },
                config.dir.display(),
                config.segment,
                describe_keep(&config.keep)
            ),
            Err(e) => error!(
                "cannot create the recording directory {}: {e}; live streaming goes on, recordings will fail",
                config.dir.display()
            ),
        }
        Self {
            config,
            registry,
            clock,
            state: Mutex::default(),
            closing: watch::channel(false).0,
        }
    }

    /// Follows the registry until [`Recordings::shutdown`]: starts a recorder when a stream
    /// connects, stops it when it disconnects, and deletes old segments now and then.
    pub(crate) async fn run(self: Arc<Self>) {
        let mut events = self.registry.subscribe_events();
        let mut closing = self.closing.subscribe();
        self.resync();
        let every =
            (self.config.segment / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut sweep = tokio::time::interval(every);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(e) if e.kind == EventKind::Connected => {
                        // A reconnect under the same id: the old file closes, a new one starts.
                        self.stop(e.stream_id);
                        self.start(e.stream_id, Some(e.at_us));
                    }
                    Ok(e) if e.kind == EventKind::Disconnected => {
                        self.stop(e.stream_id);
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => self.resync(),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = sweep.tick() => {
                    self.forget_gone();
                    self.sweep().await;
                }
                // Only ever set to true (or dropped with the hub).
                _ = closing.changed() => break,
            }
        }
    }

    /// Turns recording of stream `id` on or off (from the API); `None` if there is no such
    /// stream.
    pub(crate) fn set(&self, id: StreamId, on: bool) -> Option<RecordingSnapshot> {
        let (info, live) = self.registry.stream_info_and_live(id)?;
        let name = info.name;
        if on {
            let mut state = lock(&self.state);
            state.off.remove(&id);
            state.on.insert(id);
            drop(state);
            if live {
                self.start(id, None);
            }
        } else {
            let mut state = lock(&self.state);
            state.on.remove(&id);
            state.off.insert(id);
            drop(state);
            self.stop(id);
        }
        Some(self.snapshot(id, &name))
    }

    /// Whether stream `id` called `name` is to be recorded: as the API last said, else as
    /// `--record-only` says.
    fn wanted(&self, state: &State, id: StreamId, name: &str) -> bool {
        !state.off.contains(&id) && (state.on.contains(&id) || self.config.records_by_default(name))
    }

    /// Stream `id`'s recording state (`name`: the stream's name).
    pub(crate) fn snapshot(&self, id: StreamId, name: &str) -> RecordingSnapshot {
        let state = lock(&self.state);
        let mut s = match state.active.get(&id) {
            Some(active) => active.status.snapshot(),
            None => state
                .finished
                .get(&id)
                .map(|status| status.snapshot())
                .unwrap_or_default(),
        };
        s.on = self.wanted(&state, id, name);
        s
    }

    /// Stops every recorder and waits (at most [`CLOSE_GRACE`]) until their files are
    /// complete and closed.
    pub(crate) async fn shutdown(&self) {
        let _ = self.closing.send(true);
        let tasks: Vec<_> = {
            let mut state = lock(&self.state);
            state.closing = true;
            let mut tasks: Vec<_> = state
                .active
                .drain()
                .map(|(_, a)| {
                    let _ = a.stop.send(());
                    a.task
                })
                .collect();
            tasks.append(&mut state.stopping);
            tasks
        };
        let count = tasks.len();
        let closed = tokio::time::timeout(CLOSE_GRACE, async {
            for task in tasks {
                let _ = task.await;
            }
        })
        .await;
        match closed {
            Ok(()) if count > 0 => info!("recordings closed ({count} recorders)"),
            Ok(()) => {}
            Err(_) => warn!(
                "recordings did not close within {CLOSE_GRACE:?}; their last fragments may be lost"
            ),
        }
    }

    /// Starts recorders for live streams that have none (after missed events, or at start).
    fn resync(&self) {
        let infos = self.registry.stream_infos();
        for (id, _, live) in &infos {
            if *live {
                self.start(*id, None);
            } else {
                self.stop(*id);
            }
        }
    }

    /// Starts recording stream `id` unless it is off, already recorded or gone. Frames of the
    /// current keyframe group received since `since_us` are written first, so a recording
    /// starts at once rather than at the next keyframe.
    fn start(&self, id: StreamId, since_us: Option<u64>) {
        let mut state = lock(&self.state);
        if state.closing || state.active.contains_key(&id) {
            return;
        }
        let Some((info, true)) = self.registry.stream_info_and_live(id) else {
            return;
        };
        if !self.wanted(&state, id, &info.name) {
            return;
        }
        let codec = info.codec;
        let Some(outlet) = self.registry.frame_outlet(id) else {
            return;
        };
        let meta = StreamMeta {
            name: info.name,
            codec,
            width: info.width,
            height: info.height,
        };
        let status = Arc::new(Status::default());
        lock(&status.snapshot).on = true;
        let (stop, stopped) = oneshot::channel();
        let writer = Writer {
            id,
            recorder: Recorder::new(meta.clone(), self.config.segment),
            sink: FileSink::new(&self.config.dir),
            meta,
            status: Arc::clone(&status),
            registry: Arc::clone(&self.registry),
            clock: Arc::clone(&self.clock),
            failing: false,
        };
        let task = tokio::spawn(forward(outlet, since_us, stopped, writer));
        state.finished.remove(&id);
        state.active.insert(id, Active { stop, task, status });
    }

    /// Stops stream `id`'s recorder (it closes its file on its own).
    fn stop(&self, id: StreamId) {
        let mut state = lock(&self.state);
        if let Some(active) = state.active.remove(&id) {
            let _ = active.stop.send(());
            state.finished.insert(id, active.status);
            state.stopping.retain(|task| !task.is_finished());
            state.stopping.push(active.task);
        }
    }

    /// Forgets the API's choices and the last numbers of streams the registry forgot, so
    /// they do not grow with every stream ever seen.
    fn forget_gone(&self) {
        let known: HashSet<StreamId> = self
            .registry
            .stream_infos()
            .into_iter()
            .map(|(id, _, _)| id)
            .collect();
        let mut state = lock(&self.state);
        state.off.retain(|id| known.contains(id));
        state.on.retain(|id| known.contains(id));
        state.finished.retain(|id, status| {
            // A stopped recorder's file is spared by retention until it is closed.
            known.contains(id) || lock(&status.snapshot).file.is_some()
        });
    }

    /// Deletes segments beyond `--keep`, never a file being written.
    async fn sweep(&self) {
        let keep = self.config.keep;
        if keep.max_age.is_none() && keep.max_bytes.is_none() {
            return;
        }
        // A stopped recorder may still be writing its last fragment (its file is cleared
        // once closed): its file is open too.
        let open: HashSet<PathBuf> = {
            let state = lock(&self.state);
            state
                .active
                .values()
                .map(|a| &a.status)
                .chain(state.finished.values())
                .filter_map(|status| lock(&status.snapshot).file.clone().map(PathBuf::from))
                .collect()
        };
        let dir = self.config.dir.clone();
        let now_us = self.clock.now_us();
        let swept = tokio::task::spawn_blocking(move || {
            retention::sweep(&dir, &keep, now_us, |p| open.contains(p))
        })
        .await;
        match swept {
            Ok(Ok(deleted)) if !deleted.is_empty() => {
                info!(
                    "deleted {} old recordings (keep {})",
                    deleted.len(),
                    describe_keep(&keep)
                );
                for path in deleted {
                    debug!("deleted {}", path.display());
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!("deleting old recordings: {e}"),
            Err(e) => warn!("deleting old recordings failed: {e}"),
        }
    }
}

/// `--keep` in words, for log lines.
fn describe_keep(keep: &vidcast_record::Keep) -> String {
    let mut parts = Vec::new();
    if let Some(age) = keep.max_age {
        parts.push(format!("{} old at most", crate::human::elapsed(age)));
    }
    if let Some(bytes) = keep.max_bytes {
        parts.push(format!("{} in all", crate::human::bytes(bytes)));
    }
    if parts.is_empty() {
        "everything".to_owned()
    } else {
        parts.join(", ")
    }
}

/// One recorder's async half: hands every in-order frame to the writer thread without
/// waiting, counting what it cannot hand over, until stopped; then lets the writer finish.
async fn forward(
    outlet: FrameOutlet,
    since_us: Option<u64>,
    mut stopped: oneshot::Receiver<()>,
    writer: Writer,
) {
    // Subscribe before taking the group: a frame in both is skipped by its sequence number.
    let mut frames = outlet.subscribe_in_order();
    let group: Vec<LatestFrame> = outlet
        .keyframe_group()
        .into_iter()
        .filter(|f| since_us.is_none_or(|since| f.received_us >= since))
        .collect();
    let status = Arc::clone(&writer.status);
    let budget = Arc::clone(outlet.budget());
    let id = outlet.id();
    // Holding the outlet would keep `frames` open after the stream is forgotten.
    drop(outlet);
    let (tx, rx) = sync_channel(WRITER_BACKLOG);
    let name = writer.meta.name.clone();
    let thread = std::thread::Builder::new()
        // "vidcast-hub" prefix: `bench` counts these threads as the hub's CPU time.
        .name("vidcast-hub-rec".into())
        .spawn(move || writer.run(rx));
    let thread = match thread {
        Ok(thread) => thread,
        Err(e) => {
            error!("recording {name:?}: cannot start a writer thread: {e}");
            return;
        }
    };
    let mut repeats = GroupRepeats::of(&group);
    let queue = Queue {
        tx,
        status: Arc::clone(&status),
        budget,
        id,
    };
    let mut hand_over = |f: LatestFrame| repeats.is_repeat(f.seq) || queue.send(f);
    let mut open = group.into_iter().all(|f| queue.send(f));
    while open {
        tokio::select! {
            frame = frames.recv() => match frame {
                Ok(f) => open = hand_over(f),
                Err(broadcast::error::RecvError::Lagged(n)) => add(&status.queue_dropped, n),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = &mut stopped => {
                // Frames published before the stop (the session's last ones) still count.
                while let Ok(f) = frames.try_recv() {
                    if !hand_over(f) {
                        break;
                    }
                }
                break;
            }
        }
    }
    drop(queue);
    let joined = tokio::task::spawn_blocking(move || thread.join()).await;
    if !matches!(joined, Ok(Ok(()))) {
        error!("recording {name:?}: the writer thread failed; its last file may be incomplete");
    }
}

/// How far a frame's capture time may be from its receipt for the recording to use it.
const CAPTURE_TIME_TRUSTED_US: u64 = 10_000_000;

/// Adds `n` to a counter a peer drives (saturating).
fn add(counter: &AtomicU64, n: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
        Some(c.saturating_add(n))
    });
}

/// A frame on its way to the writer; its bytes count against the stream's queue and the
/// hub's budget until it is dropped (written, refused, or never taken).
struct Queued {
    frame: RecFrame,
    len: usize,
    status: Arc<Status>,
    budget: Arc<FrameBudget>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.status
            .queued_bytes
            .fetch_sub(self.len, Ordering::Relaxed);
        self.budget.give_back(self.len);
    }
}

/// The forwarder's end of a writer's queue: bounded in frames ([`WRITER_BACKLOG`]) and in
/// bytes (the stream's share of the [`FrameBudget`], and the hub's).
struct Queue {
    tx: SyncSender<Queued>,
    status: Arc<Status>,
    budget: Arc<FrameBudget>,
    id: StreamId,
}

impl Queue {
    /// Queues a frame for the writer, or drops it (counted) when the queue is full; false
    /// once the writer is gone.
    fn send(&self, f: LatestFrame) -> bool {
        let len = f.data.len();
        let queued = self.status.queued_bytes.load(Ordering::Relaxed);
        // Only this forwarder adds to `queued_bytes`: the check and the add do not race.
        let bound = if queued.saturating_add(len) > self.budget.per_stream_bytes() {
            Some(Bound::Stream)
        } else if !self.budget.try_take(len) {
            Some(Bound::Total)
        } else {
            None
        };
        if let Some(bound) = bound {
            add(&self.status.queue_dropped, 1);
            self.budget.lost(bound, 1, self.id, "recorder queue");
            return true;
        }
        self.status.queued_bytes.fetch_add(len, Ordering::Relaxed);
        let queued = Queued {
            frame: rec_frame(f),
            len,
            status: Arc::clone(&self.status),
            budget: Arc::clone(&self.budget),
        };
        match self.tx.try_send(queued) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                add(&self.status.queue_dropped, 1);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// What the recorder gets of a frame.
fn rec_frame(f: LatestFrame) -> RecFrame {
    RecFrame {
        seq: f.seq,
        // Capture time on the hub's clock lines up streams from different machines; one
        // far from the receipt (a publisher's clock gone wrong) would stretch or stall a
        // file, so the receipt time stands in.
        timestamp_us: f
            .capture_local_us
            .filter(|&capture| capture.abs_diff(f.received_us) <= CAPTURE_TIME_TRUSTED_US)
            .unwrap_or(f.received_us),
        is_keyframe: f.is_keyframe,
        data: f.data,
    }
}

/// Why `frame` of a stream described by `meta` is not recorded, if it is not: it must parse
/// as the stream's codec.
fn unparsable(meta: &StreamMeta, frame: &RecFrame) -> Option<&'static str> {
    match meta.codec {
        Codec::Jpeg => crate::stream::jpeg::check(&frame.data, meta.width, meta.height).err(),
        Codec::H264 => vidcast_h264::check_access_unit(&frame.data, frame.is_keyframe).err(),
    }
}

/// One recorder's blocking half, on its own thread: the sans-IO recorder and its files.
struct Writer {
    id: StreamId,
    meta: StreamMeta,
    recorder: Recorder,
    sink: FileSink,
    status: Arc<Status>,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    /// Between a write error and the next successful open: log once, not per frame.
    failing: bool,
}

impl Writer {
    fn run(mut self, frames: Receiver<Queued>) {
        while let Ok(queued) = frames.recv() {
            if let Some(why) = unparsable(&self.meta, &queued.frame) {
                self.refuse(&queued.frame, why);
                continue;
            }
            self.recorder.handle_frame(queued.frame.clone());
            drop(queued);
            self.apply();
        }
        self.recorder.finish();
        self.apply();
        let c = self.recorder.counters();
        info!(
            "recording {:?} closed: {} in {}",
            self.meta.name,
            crate::human::plural(c.frames, "frame"),
            crate::human::plural(c.segments, "segment")
        );
        lock(&self.status.snapshot).file = None;
    }

    fn apply(&mut self) {
        while let Some(output) = self.recorder.poll_output() {
            if output == Output::NeedKeyframe {
                self.registry.request_keyframe(self.id);
                continue;
            }
            match self.sink.apply(&output) {
                Ok(bytes) => {
                    let mut s = lock(&self.status.snapshot);
                    s.bytes += bytes;
                    if let Output::Open { .. } = output {
                        let path = self.sink.current().map(|p| p.display().to_string());
                        if self.failing || s.segments == 0 {
                            info!(
                                "recording {:?} to {}",
                                self.meta.name,
                                path.as_deref().unwrap_or("?")
                            );
                        } else {
                            debug!(
                                "recording {:?}: new segment {}",
                                self.meta.name,
                                path.as_deref().unwrap_or("?")
                            );
                        }
                        self.failing = false;
                        s.error = None;
                        s.file = path;
                    }
                }
                Err(e) => self.failed(&e),
            }
        }
        let c = self.recorder.counters();
        let mut s = lock(&self.status.snapshot);
        s.frames = c.frames;
        s.segments = c.segments;
        s.dropped = c.waiting_for_keyframe + c.lost_to_errors;
    }

    /// Counts a frame that does not parse and logs it at most once per period.
    fn refuse(&self, frame: &RecFrame, why: &str) {
        add(&self.status.unparsable, 1);
        LimitHits::hit(&self.registry.limit_hits().record_unparsable);
        if let Some(more) = UNPARSABLE_LOG.allow(Instant::now()) {
            warn!(
                stream_id = self.id.get(),
                "recording {:?} (stream {}): frame {} ({} bytes) not recorded: {why}; {more} more such frames since the last line (counted)",
                self.meta.name,
                self.id,
                frame.seq,
                frame.data.len()
            );
        }
    }

    fn failed(&mut self, e: &vidcast_record::RecordError) {
        let message = e.to_string();
        if !self.failing {
            error!(
                "recording {:?} (stream {}) failed: {message}; live streaming goes on, retrying every {} s",
                self.meta.name,
                self.id,
                vidcast_record::segment::RETRY_AFTER_ERROR_US / 1_000_000
            );
            self.registry.note(
                self.id,
                EventKind::RecordError,
                message.clone(),
                self.clock.now_us(),
            );
        }
        self.failing = true;
        self.sink.abandon();
        self.recorder.handle_write_error();
        let mut s = lock(&self.status.snapshot);
        s.error = Some(message);
        s.file = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, capture_local_us: Option<u64>) -> LatestFrame {
        LatestFrame {
            seq,
            capture_us: 5,
            received_us: 1_000 + seq,
            codec: Codec::Jpeg,
            data: bytes::Bytes::from_static(b"picture"),
            is_keyframe: seq == 0,
            capture_local_us,
            wall_message: Arc::default(),
        }
    }

    fn queue(frames: usize, limits: &crate::Limits) -> (Queue, Receiver<Queued>) {
        let (tx, rx) = sync_channel(frames);
        let queue = Queue {
            tx,
            status: Arc::default(),
            budget: Arc::new(FrameBudget::new(limits, Arc::default())),
            id: StreamId::new(1),
        };
        (queue, rx)
    }

    #[test]
    fn a_writer_behind_the_stream_loses_frames_counted_and_never_blocks_the_forwarder() {
        let (queue, rx) = queue(2, &crate::Limits::default());
        // The writer takes nothing: two frames wait, the rest are dropped and counted.
        for seq in 0..5 {
            assert!(queue.send(frame(seq, Some(77))));
        }
        let status = Arc::clone(&queue.status);
        assert_eq!(status.queue_dropped.load(Ordering::Relaxed), 3);
        assert_eq!(status.snapshot().dropped, 3, "shown in the API");
        let queued: Vec<Queued> = rx.try_iter().collect();
        assert_eq!(
            queued.iter().map(|q| q.frame.seq).collect::<Vec<_>>(),
            [0, 1]
        );
        // Capture time on the hub's clock when known, else the receive time.
        assert_eq!(queued[0].frame.timestamp_us, 77);
        assert!(queued[0].frame.is_keyframe && !queued[1].frame.is_keyframe);
        drop(queued);
        assert!(queue.send(frame(5, None)));
        assert_eq!(
            rx.try_recv().map(|q| q.frame.timestamp_us).ok(),
            Some(1_005)
        );
        // A capture time a day away from the receipt is not believed.
        assert!(queue.send(frame(6, Some(86_400_000_000))));
        assert_eq!(
            rx.try_recv().map(|q| q.frame.timestamp_us).ok(),
            Some(1_006)
        );
        // A writer that has ended stops the forwarder.
        drop(rx);
        assert!(!queue.send(frame(7, None)));
    }

    #[test]
    fn the_writer_queue_is_bounded_in_bytes_per_stream_and_for_the_hub() {
        let limits = crate::Limits {
            max_stream_buffer_bytes: 1000,
            max_buffer_bytes: 1500,
            ..crate::Limits::default()
        };
        let (queue, rx) = queue(64, &limits);
        let sized = |seq, len| LatestFrame {
            data: bytes::Bytes::from(vec![0u8; len]),
            ..frame(seq, None)
        };
        for seq in 0..5 {
            assert!(queue.send(sized(seq, 400)));
        }
        // Two fit the stream's 1000 bytes; the others are dropped, counted.
        assert_eq!(queue.status.queued_bytes.load(Ordering::Relaxed), 800);
        assert_eq!(queue.status.queue_dropped.load(Ordering::Relaxed), 3);
        let hits = Arc::clone(queue.budget.hits());
        assert_eq!(hits.stream_buffer_bytes.load(Ordering::Relaxed), 3);
        // The hub's share: another stream holds 1000 of its 1500.
        assert!(queue.budget.try_take(600));
        let first = rx.try_recv().ok();
        assert!(first.is_some());
        drop(first); // written: its bytes are given back
        assert_eq!(queue.budget.used_bytes(), 1000);
        assert!(queue.send(sized(5, 600)));
        assert_eq!(hits.buffer_bytes.load(Ordering::Relaxed), 1, "1600 > 1500");
        assert!(queue.send(sized(6, 400)));
        assert_eq!(queue.status.queued_bytes.load(Ordering::Relaxed), 800);
        drop(rx);
        queue.budget.give_back(600);
        drop(queue);
    }

    #[test]
    fn frames_that_do_not_parse_as_their_codec_are_told_apart() {
        let meta = |codec| StreamMeta {
            name: "cam".into(),
            codec,
            width: 64,
            height: 48,
        };
        let rec = |data: Vec<u8>, is_keyframe| RecFrame {
            seq: 0,
            timestamp_us: 0,
            is_keyframe,
            data: bytes::Bytes::from(data),
        };
        let jpeg = flat_jpeg(64, 48);
        assert_eq!(
            unparsable(&meta(Codec::Jpeg), &rec(jpeg.clone(), true)),
            None
        );
        assert!(unparsable(&meta(Codec::Jpeg), &rec(vec![0x5A; 1 << 16], true)).is_some());
        let bigger = flat_jpeg(128, 48);
        assert!(unparsable(&meta(Codec::Jpeg), &rec(bigger, true)).is_some());
        assert!(unparsable(&meta(Codec::H264), &rec(jpeg, true)).is_some());
        let p_slice = vec![0, 0, 0, 1, 0x41, 0b1100_0000];
        assert_eq!(unparsable(&meta(Codec::H264), &rec(p_slice, false)), None);
    }

    /// A JPEG of a flat picture, as bytes.
    fn flat_jpeg(width: u32, height: u32) -> Vec<u8> {
        vidcast_testkit::jpeg(width, height).to_vec()
    }

    #[tokio::test]
    async fn retention_spares_the_file_a_stopped_recorder_is_still_finishing() {
        let dir = std::env::temp_dir().join(format!("vidcast-sweep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("cam")).unwrap();
        let file = dir.join("cam").join("2026-01-01T00-00-00Z.mp4");
        std::fs::write(&file, b"the last fragment is coming").unwrap();
        let config = RecordConfig {
            dir: dir.clone(),
            segment: Duration::from_secs(60),
            keep: vidcast_record::Keep {
                max_age: None,
                max_bytes: Some(1),
            },
            only: Vec::new(),
        };
        let clock = Arc::new(vidcast_media::ManualClock::new(1_800_000_000_000_000));
        let recordings = Recordings::new(config, Arc::new(Registry::new(16)), clock);
        let status = Arc::new(Status::default());
        lock(&status.snapshot).file = Some(file.display().to_string());
        lock(&recordings.state)
            .finished
            .insert(StreamId::new(7), Arc::clone(&status));
        recordings.sweep().await;
        assert!(file.exists(), "still being written");
        // Closed: now it is an old recording like any other.
        lock(&status.snapshot).file = None;
        recordings.sweep().await;
        assert!(!file.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
