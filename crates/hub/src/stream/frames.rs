//! Where a stream's frames go once the session accepted them: the newest frame for viewers
//! that skip (latest wins), every frame in order for consumers that must not (recording,
//! restreaming), and the frames since the last keyframe so an H.264 viewer starts at once.
//!
//! What a stream holds for later is bounded in frames and in bytes, per stream and for the
//! whole hub ([`FrameBudget`]): a frame is up to 16 MiB, so a frame count alone would let one
//! publisher pin gigabytes. Frames an in-order consumer has read are let go at once (unlike a
//! tokio broadcast, whose slots keep their values until overwritten).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;
use tracing::warn;

use crate::access::budget::{LimitHits, RateLog};
use crate::access::limits::Limits;
use crate::stream::registry::{lock, LatestFrame, StreamId};

/// How many frames an in-order consumer may fall behind before it loses some (it is told
/// how many, and an H.264 consumer then waits for the next keyframe). About 4 s at 30 fps;
/// fewer when they are large ([`Limits::max_stream_buffer_bytes`]).
pub(crate) const IN_ORDER_BACKLOG: usize = 128;

/// Frames kept from the last keyframe on; past this the group is dropped (a publisher
/// with very long keyframe intervals makes joiners wait for a requested keyframe instead).
/// In bytes the group is bounded by [`Limits::max_stream_buffer_bytes`].
const KEYFRAME_GROUP_MAX_FRAMES: usize = 300;

/// Which byte bound a frame ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// One stream's ([`Limits::max_stream_buffer_bytes`]).
    Stream,
    /// The whole hub's ([`Limits::max_buffer_bytes`]).
    Total,
}

/// The bytes of frames streams hold for later (in-order backlogs, keyframe groups, recorder
/// queues): a bound per stream and one for the hub, the bytes in use, and the counters and
/// log gates of the two bounds. One per hub, shared by every stream.
#[derive(Debug)]
pub struct FrameBudget {
    per_stream: usize,
    max_total: usize,
    used: AtomicUsize,
    hits: Arc<LimitHits>,
    stream_log: RateLog,
    total_log: RateLog,
}

impl FrameBudget {
    /// The bounds of `limits`, counting hits in `hits`.
    pub fn new(limits: &Limits, hits: Arc<LimitHits>) -> Self {
        Self {
            per_stream: limits.max_stream_buffer_bytes,
            max_total: limits.max_buffer_bytes,
            used: AtomicUsize::new(0),
            hits,
            stream_log: RateLog::default(),
            total_log: RateLog::default(),
        }
    }

    /// Bytes one stream may hold in each place.
    pub fn per_stream_bytes(&self) -> usize {
        self.per_stream
    }

    /// Bytes held now by every stream together.
    pub fn used_bytes(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The hub's limit counters.
    pub fn hits(&self) -> &Arc<LimitHits> {
        &self.hits
    }

    /// Takes `n` bytes from the hub's share; false (nothing taken) if they do not fit.
    pub(crate) fn try_take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|&total| total <= self.max_total)
            })
            .is_ok()
    }

    /// Gives back `n` bytes taken with [`FrameBudget::try_take`].
    pub(crate) fn give_back(&self, n: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(n))
            });
    }

    /// Counts `frames` frames of stream `id` lost to `bound` in `place` ("in-order backlog",
    /// "keyframe group", "recorder queue"), and logs it at most once per period.
    pub(crate) fn lost(&self, bound: Bound, frames: u64, id: StreamId, place: &str) {
        if frames == 0 {
            return;
        }
        let (counter, log, limit, flag) = match bound {
            Bound::Stream => (
                &self.hits.stream_buffer_bytes,
                &self.stream_log,
                self.per_stream,
                "--max-stream-buffer",
            ),
            Bound::Total => (
                &self.hits.buffer_bytes,
                &self.total_log,
                self.max_total,
                "--max-buffer",
            ),
        };
        for _ in 0..frames {
            LimitHits::hit(counter);
        }
        if let Some(more) = log.allow(Instant::now()) {
            warn!(
                stream_id = id.get(),
                "stream {id}: {frames} frame(s) not kept in its {place}: over {} ({flag}); {more} more such losses since the last line (counted in /metrics)",
                crate::human::bytes(limit as u64)
            );
        }
    }
}

impl Default for FrameBudget {
    fn default() -> Self {
        Self::new(&Limits::default(), Arc::default())
    }
}

/// One stream's frame outputs. Cheap to clone; a session and a transcoder publish through
/// it. When the last clone goes (the registry forgot the stream and its session ended),
/// in-order consumers see the end of the stream.
#[derive(Clone)]
pub struct FrameOutlet(Arc<OutletInner>);

struct OutletInner {
    id: StreamId,
    latest: watch::Sender<Option<LatestFrame>>,
    /// The absolute number of the next frame in order: in-order consumers wait on it.
    tail: watch::Sender<u64>,
    ring: Arc<Mutex<Ring>>,
    group: Mutex<KeyframeGroup>,
    /// Bytes of the hub's budget the last picture of an offline stream holds
    /// ([`FrameOutlet::park`]); given back at the next frame.
    parked: AtomicUsize,
    budget: Arc<FrameBudget>,
}

impl Drop for OutletInner {
    fn drop(&mut self) {
        self.budget.give_back(*self.parked.get_mut());
    }
}

impl std::fmt::Debug for FrameOutlet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameOutlet")
            .field("id", &self.0.id)
            .field("in_order_receivers", &lock(&self.0.ring).receivers)
            .finish_non_exhaustive()
    }
}

/// The frames in-order consumers have yet to read, oldest first.
#[derive(Debug)]
struct Ring {
    /// Absolute number of `slots[0]` (of the next frame when empty).
    first: u64,
    slots: VecDeque<Slot>,
    bytes: usize,
    receivers: usize,
    budget: Arc<FrameBudget>,
}

#[derive(Debug)]
struct Slot {
    /// `None`: a frame that could not be kept (over a byte bound); readers are told of a loss.
    frame: Option<LatestFrame>,
    /// Receivers that have yet to read it; at 0 it is let go.
    unread: usize,
}

impl Ring {
    fn end(&self) -> u64 {
        self.first + self.slots.len() as u64
    }

    /// Drops the oldest slot; whether it held a frame some receiver had not read.
    fn pop(&mut self) -> bool {
        let Some(slot) = self.slots.pop_front() else {
            return false;
        };
        self.first += 1;
        let Some(frame) = slot.frame else {
            return false;
        };
        self.bytes -= frame.data.len();
        self.budget.give_back(frame.data.len());
        slot.unread > 0
    }

    /// Lets go of the slots at the front every receiver has read.
    fn release_read(&mut self) {
        while self.slots.front().is_some_and(|s| s.unread == 0) {
            self.pop();
        }
    }

    fn push_slot(&mut self, frame: Option<LatestFrame>) {
        self.slots.push_back(Slot {
            frame,
            unread: self.receivers,
        });
    }

    /// Queues `frame` for every receiver, dropping the oldest to stay within the bounds;
    /// how many frames receivers lost to this stream's bound and to the hub's.
    fn push(&mut self, frame: LatestFrame) -> (u64, u64) {
        let len = frame.data.len();
        let per_stream = self.budget.per_stream;
        // Past the frame count a receiver lags as it always has (told, not a limit hit).
        while self.slots.len() >= IN_ORDER_BACKLOG {
            self.pop();
        }
        if len > per_stream {
            // Alone over the bound: kept from no one.
            self.push_slot(None);
            return (1, 0);
        }
        let mut lost_stream = 0;
        while self.bytes + len > per_stream {
            lost_stream += u64::from(self.pop());
        }
        let mut lost_total = 0;
        while !self.budget.try_take(len) {
            if self.bytes == 0 {
                // Other streams hold the hub's share.
                self.push_slot(None);
                return (lost_stream, lost_total + 1);
            }
            lost_total += u64::from(self.pop());
        }
        self.bytes += len;
        self.push_slot(Some(frame));
        (lost_stream, lost_total)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

/// The frames since the newest keyframe, in order (empty until a keyframe came).
#[derive(Debug)]
struct KeyframeGroup {
    frames: Vec<LatestFrame>,
    bytes: usize,
    budget: Arc<FrameBudget>,
}

impl KeyframeGroup {
    fn clear(&mut self) {
        self.frames.clear();
        self.budget.give_back(std::mem::take(&mut self.bytes));
    }

    /// Adds `frame`; past a bound the group is dropped (`Some`: a byte bound).
    fn push(&mut self, frame: &LatestFrame) -> Option<Bound> {
        let len = frame.data.len();
        if self.frames.len() >= KEYFRAME_GROUP_MAX_FRAMES {
            self.clear();
            return None;
        }
        if self.bytes + len > self.budget.per_stream {
            self.clear();
            return Some(Bound::Stream);
        }
        if !self.budget.try_take(len) {
            self.clear();
            return Some(Bound::Total);
        }
        self.bytes += len;
        self.frames.push(frame.clone());
        None
    }
}

impl Drop for KeyframeGroup {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

impl Default for FrameOutlet {
    /// An outlet with the default bounds of its own (tests; the registry uses
    /// [`FrameOutlet::new`]).
    fn default() -> Self {
        Self::new(StreamId::new(0), Arc::default())
    }
}

impl FrameOutlet {
    /// Stream `id`'s outlet, holding frames within `budget`.
    pub fn new(id: StreamId, budget: Arc<FrameBudget>) -> Self {
        Self(Arc::new(OutletInner {
            id,
            latest: watch::channel(None).0,
            tail: watch::channel(0).0,
            ring: Arc::new(Mutex::new(Ring {
                first: 0,
                slots: VecDeque::new(),
                bytes: 0,
                receivers: 0,
                budget: Arc::clone(&budget),
            })),
            group: Mutex::new(KeyframeGroup {
                frames: Vec::new(),
                bytes: 0,
                budget: Arc::clone(&budget),
            }),
            parked: AtomicUsize::new(0),
            budget,
        }))
    }

    /// The publisher left: what the stream keeps while offline (its last picture and the
    /// keyframe group that decodes it) is copied out of the connection's receive buffers,
    /// which a frame's bytes otherwise keep whole (up to twice the frame). A last picture
    /// outside the group counts against the hub's budget; when it does not fit, it goes.
    pub fn park(&self) {
        let inner = &*self.0;
        let last = {
            let mut group = lock(&inner.group);
            for f in &mut group.frames {
                f.data = bytes::Bytes::copy_from_slice(&f.data);
            }
            group.frames.last().cloned()
        };
        let mut parked = 0;
        let mut lost = false;
        // Viewers are not woken: the picture is the same.
        inner.latest.send_if_modified(|latest| {
            let Some(frame) = latest else {
                return false;
            };
            match &last {
                Some(l) if l.seq == frame.seq => frame.data = l.data.clone(),
                _ if inner.budget.try_take(frame.data.len()) => {
                    parked = frame.data.len();
                    frame.data = bytes::Bytes::copy_from_slice(&frame.data);
                }
                _ => {
                    lost = true;
                    *latest = None;
                }
            }
            false
        });
        inner
            .budget
            .give_back(inner.parked.swap(parked, Ordering::Relaxed));
        if lost {
            inner
                .budget
                .lost(Bound::Total, 1, inner.id, "last picture while offline");
        }
    }

    /// Hands `frame` to every consumer. Never waits: the newest replaces the last, in-order
    /// consumers that fell behind lose their oldest frames.
    pub fn publish(&self, frame: LatestFrame) {
        let inner = &*self.0;
        let group_bound = {
            let mut group = lock(&inner.group);
            let follows = group
                .frames
                .last()
                .is_some_and(|last| last.seq.checked_add(1) == Some(frame.seq));
            if frame.is_keyframe {
                group.clear();
            }
            if frame.is_keyframe || follows {
                group.push(&frame)
            } else {
                // A gap: what follows cannot be decoded from the kept keyframe.
                group.clear();
                None
            }
        };
        if let Some(bound) = group_bound {
            inner.budget.lost(bound, 1, inner.id, "keyframe group");
        }
        let (lost_stream, lost_total, end) = {
            let mut ring = lock(&inner.ring);
            // No receivers is the normal case when nothing records or restreams.
            if ring.receivers == 0 {
                (0, 0, None)
            } else {
                let (s, t) = ring.push(frame.clone());
                (s, t, Some(ring.end()))
            }
        };
        inner
            .budget
            .lost(Bound::Stream, lost_stream, inner.id, "in-order backlog");
        inner
            .budget
            .lost(Bound::Total, lost_total, inner.id, "in-order backlog");
        if let Some(end) = end {
            inner.tail.send_replace(end);
        }
        inner.latest.send_replace(Some(frame));
        if inner.parked.load(Ordering::Relaxed) > 0 {
            inner
                .budget
                .give_back(inner.parked.swap(0, Ordering::Relaxed));
        }
    }

    /// The newest frame, as a watch (latest wins; never queues).
    pub fn watch(&self) -> watch::Receiver<Option<LatestFrame>> {
        self.0.latest.subscribe()
    }

    /// Every frame from now on, in order, with a backlog bounded in frames
    /// ([`IN_ORDER_BACKLOG`]) and bytes (the [`FrameBudget`]).
    pub fn subscribe_in_order(&self) -> InOrderReceiver {
        let mut ring = lock(&self.0.ring);
        ring.receivers += 1;
        InOrderReceiver {
            ring: Arc::clone(&self.0.ring),
            tail: self.0.tail.subscribe(),
            next: ring.end(),
        }
    }

    /// The newest keyframe and every frame after it, in order: decoding them all gives the
    /// current picture. Empty when no unbroken group is kept.
    pub fn keyframe_group(&self) -> Vec<LatestFrame> {
        lock(&self.0.group).frames.clone()
    }

    /// Bytes this stream holds for later: its in-order backlog and its keyframe group.
    pub fn held_bytes(&self) -> usize {
        lock(&self.0.ring).bytes + lock(&self.0.group).bytes
    }

    /// The budget this outlet holds frames within.
    pub fn budget(&self) -> &Arc<FrameBudget> {
        &self.0.budget
    }

    /// The stream's id.
    pub fn id(&self) -> StreamId {
        self.0.id
    }
}

/// One in-order consumer's place in a stream ([`FrameOutlet::subscribe_in_order`]). Like a
/// tokio broadcast receiver: frames in order, `Lagged(n)` when `n` were lost, `Closed` once
/// every [`FrameOutlet`] of the stream is gone and every frame read.
#[derive(Debug)]
pub struct InOrderReceiver {
    ring: Arc<Mutex<Ring>>,
    tail: watch::Receiver<u64>,
    /// Absolute number of the next frame to read.
    next: u64,
}

impl InOrderReceiver {
    /// The next frame: `Some(Ok)`, `Some(Err(lost))` after a loss, `None` when none is queued.
    fn take(&mut self) -> Option<Result<LatestFrame, u64>> {
        let mut ring = lock(&self.ring);
        if self.next < ring.first {
            let lost = ring.first - self.next;
            self.next = ring.first;
            return Some(Err(lost));
        }
        let index = usize::try_from(self.next - ring.first).ok()?;
        let slot = ring.slots.get_mut(index)?;
        slot.unread = slot.unread.saturating_sub(1);
        let frame = slot.frame.clone();
        self.next += 1;
        ring.release_read();
        Some(frame.ok_or(1))
    }

    /// Waits for the next frame. Cancel-safe: a frame is taken only when returned.
    pub async fn recv(&mut self) -> Result<LatestFrame, RecvError> {
        loop {
            // Seen before looking: a frame published after the look wakes `changed`.
            self.tail.borrow_and_update();
            if let Some(taken) = self.take() {
                return taken.map_err(RecvError::Lagged);
            }
            if self.tail.changed().await.is_err() {
                return match self.take() {
                    Some(taken) => taken.map_err(RecvError::Lagged),
                    None => Err(RecvError::Closed),
                };
            }
        }
    }

    /// The next frame if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Result<LatestFrame, TryRecvError> {
        match self.take() {
            Some(taken) => taken.map_err(TryRecvError::Lagged),
            None if self.tail.has_changed().is_err() => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }
}

impl Drop for InOrderReceiver {
    fn drop(&mut self) {
        let mut ring = lock(&self.ring);
        ring.receivers = ring.receivers.saturating_sub(1);
        let from = usize::try_from(self.next.saturating_sub(ring.first)).unwrap_or(usize::MAX);
        for slot in ring.slots.iter_mut().skip(from) {
            slot.unread = slot.unread.saturating_sub(1);
        }
        ring.release_read();
    }
}

/// Tells which frames of an in-order subscription repeat a keyframe group taken after
/// subscribing: those numbered within the group, until the first frame past it. Only until
/// then, because a publisher that came back numbers its frames from 0 again, and those are new.
#[derive(Debug, Clone)]
pub(crate) struct GroupRepeats(Option<std::ops::RangeInclusive<u64>>);

impl GroupRepeats {
    /// The repeats of `group` (a [`FrameOutlet::keyframe_group`]).
    pub(crate) fn of(group: &[LatestFrame]) -> Self {
        Self(group.first().zip(group.last()).map(|(a, b)| a.seq..=b.seq))
    }

    /// Whether the subscription's next frame, numbered `seq`, was in the group.
    pub(crate) fn is_repeat(&mut self, seq: u64) -> bool {
        if self.0.as_ref().is_some_and(|seqs| seqs.contains(&seq)) {
            return true;
        }
        self.0 = None;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, is_keyframe: bool) -> LatestFrame {
        LatestFrame {
            seq,
            capture_us: seq,
            received_us: seq,
            codec: vidcast_proto::Codec::H264,
            data: bytes::Bytes::from(vec![0u8; 10]),
            is_keyframe,
            capture_local_us: None,
            wall_message: Default::default(),
        }
    }

    fn seqs(outlet: &FrameOutlet) -> Vec<u64> {
        outlet.keyframe_group().iter().map(|f| f.seq).collect()
    }

    #[test]
    fn the_group_starts_at_the_newest_keyframe_and_breaks_at_a_gap() {
        let outlet = FrameOutlet::default();
        outlet.publish(frame(1, false));
        assert!(
            seqs(&outlet).is_empty(),
            "nothing before the first keyframe"
        );
        for (seq, key) in [(2, true), (3, false), (4, false)] {
            outlet.publish(frame(seq, key));
        }
        assert_eq!(seqs(&outlet), [2, 3, 4]);
        outlet.publish(frame(5, true));
        outlet.publish(frame(6, false));
        assert_eq!(seqs(&outlet), [5, 6]);
        outlet.publish(frame(8, false));
        assert!(
            seqs(&outlet).is_empty(),
            "7 is missing: 8 cannot be decoded"
        );
        outlet.publish(frame(9, false));
        assert!(seqs(&outlet).is_empty());
    }

    #[test]
    fn the_group_is_bounded() {
        let outlet = FrameOutlet::default();
        outlet.publish(frame(0, true));
        for seq in 1..=KEYFRAME_GROUP_MAX_FRAMES as u64 {
            outlet.publish(frame(seq, false));
        }
        assert!(seqs(&outlet).is_empty());
    }

    #[test]
    fn in_order_consumers_see_every_frame_and_are_told_of_losses() {
        let outlet = FrameOutlet::default();
        let mut rx = outlet.subscribe_in_order();
        for seq in 0..(IN_ORDER_BACKLOG as u64 + 5) {
            outlet.publish(frame(seq, seq == 0));
        }
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Lagged(5))));
        assert_eq!(rx.try_recv().map(|f| f.seq).ok(), Some(5));
    }

    fn sized(seq: u64, len: usize) -> LatestFrame {
        LatestFrame {
            data: bytes::Bytes::from(vec![0u8; len]),
            ..frame(seq, true)
        }
    }

    fn budget(per_stream: usize, total: usize) -> Arc<FrameBudget> {
        let limits = Limits {
            max_stream_buffer_bytes: per_stream,
            max_buffer_bytes: total,
            ..Limits::default()
        };
        Arc::new(FrameBudget::new(&limits, Arc::default()))
    }

    fn hits(budget: &FrameBudget) -> (u64, u64) {
        let h = budget.hits();
        (
            h.stream_buffer_bytes.load(Ordering::Relaxed),
            h.buffer_bytes.load(Ordering::Relaxed),
        )
    }

    #[test]
    fn frames_every_consumer_has_read_are_let_go() {
        let budget = budget(1 << 20, 1 << 20);
        let outlet = FrameOutlet::new(StreamId::new(1), Arc::clone(&budget));
        let (mut a, mut b) = (outlet.subscribe_in_order(), outlet.subscribe_in_order());
        for seq in 0..3 {
            outlet.publish(sized(seq, 1000));
        }
        // The group holds the newest keyframe; the backlog holds all three for `b`.
        assert_eq!(outlet.held_bytes(), 4000);
        for _ in 0..3 {
            assert!(a.try_recv().is_ok());
        }
        assert_eq!(outlet.held_bytes(), 4000, "b has not read them");
        assert!(b.try_recv().is_ok());
        assert_eq!(outlet.held_bytes(), 3000);
        drop(b);
        assert_eq!(outlet.held_bytes(), 1000, "only the keyframe group");
        assert_eq!(budget.used_bytes(), 1000);
        drop((a, outlet));
        assert_eq!(budget.used_bytes(), 0, "all given back");
    }

    #[test]
    fn a_stream_holds_at_most_its_bytes_for_a_consumer_that_does_not_read() {
        let budget = budget(1000, 1 << 20);
        let outlet = FrameOutlet::new(StreamId::new(1), Arc::clone(&budget));
        let mut rx = outlet.subscribe_in_order();
        for seq in 0..10 {
            outlet.publish(sized(seq, 300));
        }
        assert!(outlet.held_bytes() <= 1000 + 300, "{}", outlet.held_bytes());
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Lagged(7))));
        let seqs: Vec<u64> = std::iter::from_fn(|| rx.try_recv().ok().map(|f| f.seq)).collect();
        assert_eq!(seqs, [7, 8, 9]);
        assert_eq!(hits(&budget), (7, 0));
        // A frame over the bound by itself is kept from no one: the consumer is told.
        outlet.publish(sized(10, 2000));
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Lagged(1))));
        assert!(outlet.keyframe_group().is_empty(), "nor kept for joiners");
        assert_eq!(hits(&budget), (9, 0));
        outlet.publish(sized(11, 10));
        assert_eq!(rx.try_recv().map(|f| f.seq).ok(), Some(11));
    }

    #[test]
    fn streams_together_hold_at_most_the_hub_bytes() {
        let budget = budget(1000, 1500);
        let (a, b) = (
            FrameOutlet::new(StreamId::new(1), Arc::clone(&budget)),
            FrameOutlet::new(StreamId::new(2), Arc::clone(&budget)),
        );
        let (_ra, mut rb) = (a.subscribe_in_order(), b.subscribe_in_order());
        // `a` takes 600 for its backlog and 200 for its group.
        for seq in 0..3 {
            a.publish(sized(seq, 200));
        }
        assert_eq!(budget.used_bytes(), 800);
        // `b`'s 400-byte keyframe: the group gets it (1200), its backlog cannot (1600).
        b.publish(sized(0, 400));
        assert!(budget.used_bytes() <= 1500);
        assert!(matches!(rb.try_recv(), Err(TryRecvError::Lagged(1))));
        assert_eq!(hits(&budget), (0, 1));
        assert_eq!(b.keyframe_group().len(), 1);
        drop((a, _ra));
        b.publish(sized(1, 400));
        assert_eq!(rb.try_recv().map(|f| f.seq).ok(), Some(1));
    }

    #[tokio::test]
    async fn consumers_see_the_end_once_every_outlet_is_gone() {
        let outlet = FrameOutlet::default();
        let mut rx = outlet.subscribe_in_order();
        let waiting = tokio::spawn(async move {
            let first = rx.recv().await.map(|f| f.seq);
            (first, rx.recv().await.map(|f| f.seq))
        });
        outlet.publish(frame(0, true));
        drop(outlet);
        let (first, end) = waiting.await.unwrap();
        assert_eq!(first, Ok(0));
        assert_eq!(end, Err(RecvError::Closed));
    }

    #[test]
    fn group_repeats_end_at_the_first_new_frame() {
        let group: Vec<LatestFrame> = (100..=130).map(|seq| frame(seq, seq == 100)).collect();
        let mut repeats = GroupRepeats::of(&group);
        assert!(repeats.is_repeat(120) && repeats.is_repeat(130));
        assert!(!repeats.is_repeat(131));
        // The publisher came back and counts from 0: new frames, even inside the old range.
        assert!(!repeats.is_repeat(0) && !repeats.is_repeat(110));
        assert!(!GroupRepeats::of(&[]).is_repeat(0));
    }
}
