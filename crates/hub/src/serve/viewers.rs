//! Counters of the hub's viewers (web wall sockets, MJPEG readers, native viewers), for
//! `/metrics` and the `--max-viewers` limit.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use vidcast_media::Clock;

use crate::access::Access;
use crate::serve::rtsp::RtspTranscoders;
use crate::serve::transcode::JpegTranscoders;
use crate::stream::registry::Registry;

/// What every viewer — native, MJPEG, RTSP — needs of the hub, and nothing more.
pub(crate) struct ViewContext {
    /// The streams and their newest frames.
    pub(crate) registry: Arc<Registry>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Tokens and `--max-viewers`.
    pub(crate) access: Arc<Access>,
    /// Viewers connected now and what they were sent.
    pub(crate) counters: Arc<ViewerCounters>,
    /// The next native viewer's number (its welcome's id), from 1.
    pub(crate) numbers: AtomicU64,
    /// H.264 → JPEG for viewers that need JPEG, one per stream while needed.
    pub(crate) transcoders: JpegTranscoders,
    /// JPEG → H.264 for RTSP readers, one per stream while read (`serve --rtsp`).
    pub(crate) rtsp_transcoders: RtspTranscoders,
}

impl ViewContext {
    /// A context with no viewers yet.
    pub(crate) fn new(registry: Arc<Registry>, clock: Arc<dyn Clock>, access: Arc<Access>) -> Self {
        Self {
            registry,
            clock,
            access,
            counters: Arc::new(ViewerCounters::default()),
            numbers: AtomicU64::new(1),
            transcoders: JpegTranscoders::default(),
            rtsp_transcoders: RtspTranscoders::default(),
        }
    }
}

/// Live viewer counts and what they were sent, shared by every viewer task.
#[derive(Debug, Default)]
pub(crate) struct ViewerCounters {
    /// Web wall WebSockets open now.
    pub websockets: AtomicUsize,
    /// MJPEG responses streaming now.
    pub mjpeg: AtomicUsize,
    /// Native viewers (`vidcast view`) on the ingest port now.
    pub native: AtomicUsize,
    /// RTSP connections (`serve --rtsp`) now, playing or about to.
    pub rtsp: AtomicUsize,
    /// Frames sent to viewers, all kinds.
    pub frames_sent: AtomicU64,
    /// Frames a viewer missed because it was slower than the stream (latest frame wins).
    pub frames_dropped: AtomicU64,
}

/// Which gauge a [`ViewerGuard`] holds up.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ViewerKind {
    /// A web wall WebSocket.
    WebSocket,
    /// An MJPEG HTTP response.
    Mjpeg,
    /// A viewer speaking the vidcast protocol (`vidcast view`).
    Native,
    /// An RTSP player (`serve --rtsp`).
    Rtsp,
}

/// Counts one viewer while it lives.
pub(crate) struct ViewerGuard {
    counters: Arc<ViewerCounters>,
    kind: ViewerKind,
}

impl ViewerCounters {
    fn gauge(&self, kind: ViewerKind) -> &AtomicUsize {
        match kind {
            ViewerKind::WebSocket => &self.websockets,
            ViewerKind::Mjpeg => &self.mjpeg,
            ViewerKind::Native => &self.native,
            ViewerKind::Rtsp => &self.rtsp,
        }
    }

    /// Viewers of every kind connected now (what `--max-viewers` limits).
    pub(crate) fn total(&self) -> usize {
        [&self.websockets, &self.mjpeg, &self.native, &self.rtsp]
            .iter()
            .map(|g| g.load(Ordering::Relaxed))
            .sum()
    }

    /// Notes frames sent to a viewer and frames it missed, in bulk.
    pub(crate) fn add(&self, sent: u64, dropped: u64) {
        self.frames_sent.fetch_add(sent, Ordering::Relaxed);
        self.frames_dropped.fetch_add(dropped, Ordering::Relaxed);
    }

    /// Counts a viewer until the guard drops.
    pub(crate) fn enter(self: &Arc<Self>, kind: ViewerKind) -> ViewerGuard {
        self.gauge(kind).fetch_add(1, Ordering::Relaxed);
        ViewerGuard {
            counters: Arc::clone(self),
            kind,
        }
    }

    /// Notes one frame sent, and how many the viewer skipped before it.
    pub(crate) fn sent(&self, skipped: u64) {
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
        if skipped > 0 {
            self.frames_dropped.fetch_add(skipped, Ordering::Relaxed);
        }
    }
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.counters
            .gauge(self.kind)
            .fetch_sub(1, Ordering::Relaxed);
    }
}
