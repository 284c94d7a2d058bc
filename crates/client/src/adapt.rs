//! Link adaptation: when the link cannot carry the stream, lower JPEG quality, then the frame
//! rate, then the picture size; climb back when it recovers.
//!
//! Sans-IO like the protocol: [`Adapter`] is fed counters with their time and answers with new
//! encoder settings; the drive loop samples the counters and the capture thread applies the
//! settings through an [`EncoderControl`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};

/// How much of the measured link rate a chosen level may use; the rest absorbs variation.
const HEADROOM: f64 = 0.8;
/// Fraction of offered frames dropped (latest frame wins) above which the link is congested.
const CONGESTED_DROP_RATIO: f64 = 0.05;
/// Fraction of offered frames dropped above which a window measures the link: the link
/// carried clearly less than the encoder made. A frame or two dropped while a queue drains
/// says little about the link's rate.
const LINK_LIMITED_DROP_RATIO: f64 = 0.15;
/// Round-trip time above the lowest seen that means a queue is building on the path (a
/// bufferbloated Wi-Fi or modem queue). Above the 40 ms a delayed ACK can add on its own.
const QUEUE_DELAY_LIMIT_US: u32 = 60_000;
/// The window over which counters are compared.
const WINDOW_US: u64 = 1_000_000;
/// How long the link must stay clear before the first attempt to climb a level.
const FIRST_PROBE_WAIT_US: u64 = 2_000_000;
/// The longest wait between attempts to climb, after attempts failed in a row.
const MAX_PROBE_WAIT_US: u64 = 30_000_000;
/// A climb that causes congestion within this time failed.
const PROBE_GRACE_US: u64 = 2_500_000;
/// How much the RTT may rise over its value before a climb before the climb counts as
/// building a queue: a climb that overshoots is undone long before the 60 ms of a standing
/// queue, when a loss would cost the most.
const PROBE_RTT_RISE_US: u32 = 20_000;
/// Frames a climb may lose to the one-frame slot before it fails at once, without waiting
/// for a whole window: on a lossy link the RTT may not rise while frames already queue behind
/// retransmissions, and each extra 250 ms of an overshooting climb costs every frame latency.
const PROBE_DROP_LIMIT: u64 = 2;
/// For this long after the link rate was measured, a climb must fit in it (with a little
/// room); afterwards the link may have changed and only a climb can tell.
const LINK_ESTIMATE_FRESH_US: u64 = 15_000_000;
/// How far above the measured link rate a climb's predicted rate may be while the
/// measurement is fresh.
const CLIMB_ALLOWANCE: f64 = 0.95;
/// Where a publisher starts: half quality, full rate and size, climbing to level 0 in about
/// 5 s on a link that carries it. Starting at full quality floods a slow link in the first
/// second, before there is anything to measure (see README, "Slow links").
const START_LEVEL: usize = 2;
/// The lowest JPEG quality the ladder goes to.
const MIN_QUALITY: u8 = 10;

/// What a ladder's `quality` means, and so how the bit rate follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateModel {
    /// JPEG quality: the rate follows the JPEG size model, the frame rate and the size.
    JpegQuality,
    /// Percent of the user's H.264 bit rate: the encoder's rate control holds that rate
    /// whatever the frame rate (fewer frames only get more bits each).
    BitratePercent,
}

/// Encoder settings for one level of the ladder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderSettings {
    /// JPEG quality, 1–100; for H.264, the percent of the user's bit rate.
    pub quality: u8,
    /// Frames per second to send at most.
    pub fps: f64,
    /// Picture size as a fraction of the source's, per side (1.0 = full size).
    pub scale: f64,
}

impl EncoderSettings {
    /// The bit rate of these settings relative to `base`'s, by a rough JPEG size model
    /// (see [`jpeg_size_factor`]) times frame rate times pixel count.
    fn relative_rate(&self, base: &EncoderSettings) -> f64 {
        let quality = jpeg_size_factor(self.quality) / jpeg_size_factor(base.quality);
        quality * (self.fps / base.fps) * (self.scale * self.scale)
    }
}

/// Relative JPEG size at `quality` (only ratios matter).
fn jpeg_size_factor(quality: u8) -> f64 {
    // Fitted to the noisy test pattern at 640x480 (bytes relative to q80): q56 0.52,
    // q40 0.38, q28 0.30, q10 0.20.
    0.17 + 0.83 * (f64::from(quality.clamp(1, 100)) / 80.0).powf(2.2)
}

/// The levels from the user's settings (level 0) down to the least a link must carry.
#[derive(Debug, Clone)]
pub struct Ladder {
    levels: Vec<EncoderSettings>,
    model: RateModel,
}

impl Ladder {
    /// A ladder that starts at `quality` and `fps` at full size: quality first (to 70 % and
    /// 50 %), then the frame rate (2/3, 1/2, 1/3), then the size (3/4, 1/2), then both again.
    pub fn new(quality: u8, fps: f64) -> Self {
        let q = |fraction: f64| {
            ((f64::from(quality) * fraction).round() as u8).clamp(MIN_QUALITY.min(quality), 100)
        };
        let f = |fraction: f64| (fps * fraction).max(1.0_f64.min(fps));
        let candidates = [
            (q(1.0), f(1.0), 1.0),
            (q(0.7), f(1.0), 1.0),
            (q(0.5), f(1.0), 1.0),
            (q(0.5), f(2.0 / 3.0), 1.0),
            (q(0.5), f(0.5), 1.0),
            (q(0.5), f(1.0 / 3.0), 1.0),
            (q(0.5), f(1.0 / 3.0), 0.75),
            (q(0.5), f(1.0 / 3.0), 0.5),
            (q(0.35), f(1.0 / 6.0), 0.5),
        ];
        Self::from_candidates(&candidates, RateModel::JpegQuality)
    }

    /// A ladder for H.264 at `fps`: the bit rate first (70 %, 50 %, 35 %, 25 % of the
    /// user's), then the frame rate with it (18 % at 2/3, 12 % at 1/2, 8 % at 1/3). The
    /// size stays: a new size would need a new stream at the hub and every viewer.
    pub fn for_bitrate(fps: f64) -> Self {
        let f = |fraction: f64| (fps * fraction).max(1.0_f64.min(fps));
        let candidates = [
            (100, f(1.0), 1.0),
            (70, f(1.0), 1.0),
            (50, f(1.0), 1.0),
            (35, f(1.0), 1.0),
            (25, f(1.0), 1.0),
            (18, f(2.0 / 3.0), 1.0),
            (12, f(0.5), 1.0),
            (8, f(1.0 / 3.0), 1.0),
        ];
        Self::from_candidates(&candidates, RateModel::BitratePercent)
    }

    fn from_candidates(candidates: &[(u8, f64, f64)], model: RateModel) -> Self {
        let mut levels: Vec<EncoderSettings> = Vec::with_capacity(candidates.len());
        for &(quality, fps, scale) in candidates {
            let level = EncoderSettings {
                quality,
                fps,
                scale,
            };
            // A low starting quality or rate makes some steps no step at all.
            if levels.last() != Some(&level) {
                levels.push(level);
            }
        }
        Self { levels, model }
    }

    /// What `quality` means on this ladder.
    pub fn model(&self) -> RateModel {
        self.model
    }

    /// The bit rate at `level` relative to `from`'s.
    fn relative_rate(&self, level: usize, from: &EncoderSettings) -> f64 {
        let to = self.get(level);
        match self.model {
            RateModel::JpegQuality => to.relative_rate(from),
            RateModel::BitratePercent => f64::from(to.quality) / f64::from(from.quality.max(1)),
        }
    }

    /// The settings of `level` (the last one for any level past the end).
    pub fn get(&self, level: usize) -> EncoderSettings {
        self.levels[level.min(self.levels.len() - 1)]
    }

    /// How many levels there are.
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// Whether the ladder is empty (never: level 0 always exists).
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }
}

/// Counters the drive loop samples a few times a second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkSample {
    /// When sampled, µs on any monotonic scale.
    pub at_us: u64,
    /// Frames written to the connection so far.
    pub frames_sent: u64,
    /// Frames replaced in the one-frame slot before they could be sent, so far.
    pub frames_dropped: u64,
    /// Bytes the peer acknowledged so far (kernel TCP_INFO), or bytes written when unknown.
    pub bytes_delivered: u64,
    /// The kernel's smoothed round-trip time, µs, when known.
    pub rtt_us: Option<u32>,
}

/// A change of level, for the caller to apply, log and report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adaptation {
    /// The new level (0 = the user's settings).
    pub level: usize,
    /// Its settings.
    pub settings: EncoderSettings,
    /// The link rate measured while congested, bits per second.
    pub link_bps: Option<f64>,
    /// Why: congestion (going down), a probe (going up), or a failed probe (back down).
    pub cause: AdaptCause,
}

/// Why the level changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdaptCause {
    /// Frames were being dropped: the link carries less than the stream needs.
    Congested,
    /// The link was clear long enough to try one level better.
    Probe,
    /// The level tried last caused congestion again.
    ProbeFailed,
    /// A frame came out larger than the hub accepts: this level and every better one are off
    /// limits for the rest of the run.
    FrameTooLarge,
}

/// The adaptation state machine.
#[derive(Debug, Clone)]
pub struct Adapter {
    ladder: Ladder,
    level: usize,
    samples: VecDeque<LinkSample>,
    min_rtt_us: Option<u32>,
    link_bps: Option<f64>,
    /// When `link_bps` was last measured on a congested link.
    link_measured_us: Option<u64>,
    last_change_us: Option<u64>,
    clear_since_us: Option<u64>,
    probe_wait_us: u64,
    /// A climb until it proves itself: the level it started from, when, and the RTT then.
    probe: Option<Probe>,
    /// The best level allowed: levels below it made frames the hub refuses.
    best_allowed: usize,
    /// Whether a change was ever made for congestion (or a frame over the hub's limit), as
    /// opposed to the start-up ramp's climbs.
    has_congested: bool,
}

impl Adapter {
    /// A controller at level 0 of `ladder`.
    pub fn new(ladder: Ladder) -> Self {
        Self {
            ladder,
            level: 0,
            samples: VecDeque::new(),
            min_rtt_us: None,
            link_bps: None,
            link_measured_us: None,
            last_change_us: None,
            clear_since_us: None,
            probe_wait_us: FIRST_PROBE_WAIT_US,
            probe: None,
            best_allowed: 0,
            has_congested: false,
        }
    }

    /// Whether any change so far was for congestion or an oversized frame: until then every
    /// change is the start-up ramp climbing to the user's settings, which is no news.
    pub fn has_congested(&self) -> bool {
        self.has_congested
    }

    /// What the ladder's `quality` means.
    pub fn model(&self) -> RateModel {
        self.ladder.model()
    }

    /// The current level.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The current settings.
    pub fn settings(&self) -> EncoderSettings {
        self.ladder.get(self.level)
    }

    /// The link rate last measured while the link was the bottleneck, bits per second.
    pub fn link_bps(&self) -> Option<f64> {
        self.link_bps
    }

    /// A new connection: counters restart, the level and the link estimate stay (the link is
    /// probably the same one); the path's RTT may differ.
    pub fn reset_counters(&mut self) {
        self.samples.clear();
        self.min_rtt_us = None;
        self.clear_since_us = None;
    }

    /// A frame at the current level was over the hub's size limit: goes one level down and
    /// never climbs back above it. `None` when already at the lowest level.
    pub fn step_down_for_size(&mut self, now_us: u64) -> Option<Adaptation> {
        // A lower frame rate alone leaves each frame as large: skip to a level with smaller
        // frames.
        let current = self.ladder.get(self.level);
        let next = (self.level + 1..self.ladder.len()).find(|&level| {
            let to = self.ladder.get(level);
            let frame_ratio = self.ladder.relative_rate(level, &current) * current.fps / to.fps;
            frame_ratio < 0.95
        })?;
        self.best_allowed = next;
        self.probe = None;
        Some(self.change(next, now_us, AdaptCause::FrameTooLarge))
    }

    /// Feeds one sample; returns the new level when it changes.
    pub fn on_sample(&mut self, sample: LinkSample) -> Option<Adaptation> {
        if let Some(last) = self.samples.back() {
            // Counters restarted (a new connection the caller did not announce).
            if sample.frames_sent < last.frames_sent || sample.at_us <= last.at_us {
                self.samples.clear();
            }
        }
        self.samples.push_back(sample);
        if let Some(rtt) = sample.rtt_us.filter(|&r| r > 0) {
            self.min_rtt_us = Some(self.min_rtt_us.map_or(rtt, |m| m.min(rtt)));
        }
        while self
            .samples
            .front()
            .is_some_and(|s| sample.at_us - s.at_us > WINDOW_US)
        {
            self.samples.pop_front();
        }
        let queueing = match (sample.rtt_us, self.min_rtt_us) {
            (Some(rtt), Some(min)) => rtt.saturating_sub(min) > QUEUE_DELAY_LIMIT_US,
            _ => false,
        };
        // A climb that builds a queue is undone at once: waiting a whole window would let
        // the queue (and with it every frame's latency) grow.
        let probe_queueing = self.probe.is_some_and(|p| {
            matches!((sample.rtt_us, p.rtt_before_us),
                (Some(rtt), Some(before)) if rtt > before.saturating_add(PROBE_RTT_RISE_US))
        });
        // A climb whose frames are already being replaced in the slot did not fit.
        let probe_dropping = self.probe.is_some_and(|p| {
            sample.frames_dropped.saturating_sub(p.dropped_before) >= PROBE_DROP_LIMIT
        });
        if queueing || probe_queueing || probe_dropping {
            if let Some(probe) = self.probe.take() {
                self.probe_wait_us = (self.probe_wait_us * 2).min(MAX_PROBE_WAIT_US);
                // The link was full for a moment: what got through is at least its rate.
                if let Some(front) = self.samples.front() {
                    let span_us = sample.at_us.saturating_sub(front.at_us);
                    if span_us >= WINDOW_US / 4 {
                        let bits = sample.bytes_delivered.saturating_sub(front.bytes_delivered) * 8;
                        let dropped = sample.frames_dropped.saturating_sub(front.frames_dropped);
                        let offered =
                            sample.frames_sent.saturating_sub(front.frames_sent) + dropped;
                        let link_limited =
                            dropped as f64 > LINK_LIMITED_DROP_RATIO * offered.max(1) as f64;
                        self.note_link_rate(
                            bits as f64 * 1e6 / span_us as f64,
                            link_limited,
                            sample.at_us,
                        );
                    }
                }
                return Some(self.change(probe.from, sample.at_us, AdaptCause::ProbeFailed));
            }
        }
        let oldest = *self.samples.front()?;
        let span_us = sample.at_us.saturating_sub(oldest.at_us);
        // Judge only a window that began after the last change took effect.
        if span_us < WINDOW_US * 3 / 4 || self.last_change_us.is_some_and(|t| oldest.at_us < t) {
            return None;
        }
        let sent = sample.frames_sent - oldest.frames_sent;
        let dropped = sample.frames_dropped.saturating_sub(oldest.frames_dropped);
        let offered = sent + dropped;
        if offered < 3 {
            return None;
        }
        let seconds = span_us as f64 / 1e6;
        let delivered_bps = sample
            .bytes_delivered
            .saturating_sub(oldest.bytes_delivered) as f64
            * 8.0
            / seconds;
        let drop_ratio = dropped as f64 / offered as f64;
        let congested = queueing || drop_ratio > CONGESTED_DROP_RATIO;
        let now = sample.at_us;

        if congested {
            self.clear_since_us = None;
            self.note_link_rate(delivered_bps, drop_ratio > LINK_LIMITED_DROP_RATIO, now);
            // What the stream would need at this level if nothing were dropped.
            let offered_bps = delivered_bps * offered as f64 / sent.max(1) as f64;
            if let Some(probe) = self.probe.take() {
                self.probe_wait_us = (self.probe_wait_us * 2).min(MAX_PROBE_WAIT_US);
                if probe.from > self.level {
                    return Some(self.change(probe.from, now, AdaptCause::ProbeFailed));
                }
            }
            let current = self.ladder.get(self.level);
            let target = delivered_bps * HEADROOM;
            let mut next = self.level + 1;
            while next + 1 < self.ladder.len()
                && offered_bps * self.ladder.relative_rate(next, &current) > target
            {
                next += 1;
            }
            if next < self.ladder.len() {
                return Some(self.change(next, now, AdaptCause::Congested));
            }
            return None;
        }

        // Clear: a climb that held through its grace period succeeded.
        if let Some(probe) = self.probe {
            if now.saturating_sub(probe.at_us) >= PROBE_GRACE_US {
                self.probe = None;
                self.probe_wait_us = FIRST_PROBE_WAIT_US;
            }
        }
        if let Some(link) = self.link_bps {
            // Sending more than was measured before proves the link is at least this fast.
            self.link_bps = Some(link.max(delivered_bps));
        }
        let clear_since = *self.clear_since_us.get_or_insert(now);
        if self.level > self.best_allowed
            && self.probe.is_none()
            && now.saturating_sub(clear_since) >= self.probe_wait_us
            && self.climb_fits(now, delivered_bps)
        {
            let from = self.level;
            let adaptation = self.change(from - 1, now, AdaptCause::Probe);
            self.probe = Some(Probe {
                from,
                at_us: now,
                rtt_before_us: sample.rtt_us,
                dropped_before: sample.frames_dropped,
            });
            return Some(adaptation);
        }
        None
    }

    /// Notes `delivered_bps` measured over a congested window. Only a window that dropped
    /// many frames was limited by the link, so only it measures the link; one that sent (almost)
    /// every frame, its queue seen in the RTT or a draining queue costing a frame or two, sent
    /// at the encoder's rate, which proves the link at least that fast and no slower.
    fn note_link_rate(&mut self, delivered_bps: f64, link_limited: bool, now_us: u64) {
        self.link_bps = match self.link_bps {
            Some(known) if !link_limited => Some(known.max(delivered_bps)),
            _ => Some(delivered_bps),
        };
        self.link_measured_us = Some(now_us);
    }

    /// Whether one level up is predicted to fit the link, as far as a fresh measurement of
    /// the link says; with no fresh measurement, any climb may be tried.
    fn climb_fits(&self, now_us: u64, sending_bps: f64) -> bool {
        let (Some(link), Some(measured)) = (self.link_bps, self.link_measured_us) else {
            return true;
        };
        if now_us.saturating_sub(measured) > LINK_ESTIMATE_FRESH_US || self.level == 0 {
            return true;
        }
        let current = self.ladder.get(self.level);
        let predicted = sending_bps * self.ladder.relative_rate(self.level - 1, &current);
        predicted <= link * CLIMB_ALLOWANCE
    }

    fn change(&mut self, level: usize, now_us: u64, cause: AdaptCause) -> Adaptation {
        self.has_congested |= cause != AdaptCause::Probe;
        self.level = level;
        self.last_change_us = Some(now_us);
        self.clear_since_us = None;
        Adaptation {
            level,
            settings: self.ladder.get(level),
            link_bps: self.link_bps,
            cause,
        }
    }
}

/// One publisher's adaptation, shared by its successive connections (the link, and so the
/// level, usually outlives a reconnection).
#[derive(Debug)]
pub struct LinkAdaptation {
    adapter: std::sync::Mutex<Adapter>,
    /// The settings the capture thread applies.
    pub control: std::sync::Arc<EncoderControl>,
    /// The picture size at level 0, `(width, height)`.
    pub full_size: (u32, u32),
}

impl LinkAdaptation {
    /// Adaptation from `quality` and `fps` at `full_size` down.
    pub fn new(quality: u8, fps: f64, full_size: (u32, u32)) -> Self {
        Self::with_ladder(Ladder::new(quality, fps), full_size)
    }

    /// Adaptation of an H.264 stream's bit rate (and, far down, frame rate) from the user's
    /// at `fps` and `full_size`.
    pub fn for_h264(fps: f64, full_size: (u32, u32)) -> Self {
        Self::with_ladder(Ladder::for_bitrate(fps), full_size)
    }

    fn with_ladder(ladder: Ladder, full_size: (u32, u32)) -> Self {
        let mut adapter = Adapter::new(ladder);
        adapter.level = START_LEVEL.min(adapter.ladder.len() - 1);
        let control = std::sync::Arc::new(EncoderControl::starting_at(
            adapter.ladder.get(0).quality,
            adapter.settings(),
        ));
        Self {
            adapter: std::sync::Mutex::new(adapter),
            control,
            full_size,
        }
    }

    /// Runs `f` on the state machine.
    pub fn with<R>(&self, f: impl FnOnce(&mut Adapter) -> R) -> R {
        let mut adapter = match self.adapter.lock() {
            Ok(guard) => guard,
            // The adapter holds no invariant a panic elsewhere could break half-way.
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut adapter)
    }

    /// The source hands over its own H.264, which passes through untouched: no level can
    /// change its bit rate, so adaptation stops at level 0 (the source as it is). `true` the
    /// first time, when the hub should be told.
    pub fn pass_through(&self) -> bool {
        if self.control.passthrough.swap(true, Ordering::Relaxed) {
            return false;
        }
        let settings = self.with(|a| {
            a.level = 0;
            a.probe = None;
            a.settings()
        });
        self.control.set(settings);
        true
    }

    /// Whether the source's own H.264 passes through (see [`LinkAdaptation::pass_through`]).
    pub fn is_passthrough(&self) -> bool {
        self.control.passthrough.load(Ordering::Relaxed)
    }

    /// The picture size sent at `scale`.
    pub fn size_at(&self, scale: f64) -> (u32, u32) {
        scaled_size(self.full_size.0, self.full_size.1, scale)
    }
}

/// `width` x `height` scaled by `scale`, both even and at least 16 (4:2:0 JPEG wants even).
pub(crate) fn scaled_size(width: u32, height: u32, scale: f64) -> (u32, u32) {
    if scale >= 1.0 {
        return (width, height);
    }
    let side = |v: u32| (((f64::from(v) * scale) as u32) & !1).clamp(16.min(v), v);
    (side(width), side(height))
}

/// A climb being tried.
#[derive(Debug, Clone, Copy)]
struct Probe {
    from: usize,
    at_us: u64,
    rtt_before_us: Option<u32>,
    /// Frames dropped before the climb, to count the climb's own.
    dropped_before: u64,
}

/// Encoder settings shared between the drive loop (which chooses) and the capture thread
/// (which applies them to the next frame).
#[derive(Debug)]
pub struct EncoderControl {
    /// The user's own quality (level 0), so the capture thread knows when a camera's own
    /// JPEG may pass through untouched.
    full_quality: u8,
    quality: AtomicU8,
    fps_milli: AtomicU32,
    scale_permille: AtomicU32,
    /// Set by the capture thread when the source's own H.264 passes through.
    passthrough: AtomicBool,
    /// Set once the capture thread saw it, for the drive loop.
    saw_passthrough: AtomicBool,
}

impl EncoderControl {
    /// Starts at `settings`, whose quality is also the full one.
    pub fn new(settings: EncoderSettings) -> Self {
        Self::starting_at(settings.quality, settings)
    }

    /// Starts at `settings` below a full quality of `full_quality`.
    pub fn starting_at(full_quality: u8, settings: EncoderSettings) -> Self {
        let control = Self {
            full_quality,
            quality: AtomicU8::new(0),
            fps_milli: AtomicU32::new(0),
            scale_permille: AtomicU32::new(0),
            passthrough: AtomicBool::new(false),
            saw_passthrough: AtomicBool::new(false),
        };
        control.set(settings);
        control
    }

    /// Changes the settings from the next frame on.
    pub fn set(&self, settings: EncoderSettings) {
        self.quality
            .store(settings.quality.clamp(1, 100), Ordering::Relaxed);
        self.fps_milli
            .store((settings.fps * 1000.0).round() as u32, Ordering::Relaxed);
        self.scale_permille.store(
            (settings.scale.clamp(0.01, 1.0) * 1000.0).round() as u32,
            Ordering::Relaxed,
        );
    }

    /// Notes that the source's own H.264 passes through untouched (the capture thread).
    pub fn mark_passthrough(&self) {
        self.saw_passthrough.store(true, Ordering::Relaxed);
    }

    /// Whether the capture thread has passed a source's own H.264 through.
    pub fn saw_passthrough(&self) -> bool {
        self.saw_passthrough.load(Ordering::Relaxed)
    }

    /// Whether the settings now in force are the user's own (nothing lowered).
    pub fn at_full(&self) -> bool {
        let s = self.get();
        s.quality >= self.full_quality && s.scale >= 1.0
    }

    /// The settings now in force.
    pub fn get(&self) -> EncoderSettings {
        EncoderSettings {
            quality: self.quality.load(Ordering::Relaxed),
            fps: f64::from(self.fps_milli.load(Ordering::Relaxed)) / 1000.0,
            scale: f64::from(self.scale_permille.load(Ordering::Relaxed)) / 1000.0,
        }
    }
}

/// Decides which captured frames to send so the rate stays at most the target, spreading the
/// kept frames evenly (a 30 fps camera at 20 fps keeps two of every three).
#[derive(Debug, Clone, Default)]
pub struct RateLimiter {
    next_due_us: Option<u64>,
}

impl RateLimiter {
    /// Whether to keep a frame captured at `capture_us` when at most `fps` are wanted.
    pub fn keep(&mut self, capture_us: u64, fps: f64) -> bool {
        if fps <= 0.0 {
            return true;
        }
        let interval = (1e6 / fps) as u64;
        // A tolerance of a quarter interval keeps jittery sources from losing extra frames.
        let slack = interval / 4;
        match self.next_due_us {
            Some(due) if capture_us + slack < due => false,
            Some(due) => {
                // Catch up after a pause instead of sending a burst.
                self.next_due_us = Some((due + interval).max(capture_us + interval - slack));
                true
            }
            None => {
                self.next_due_us = Some(capture_us + interval);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passed_through_source_stops_adapting_at_level_0_and_says_so_once() {
        let adaptation = LinkAdaptation::for_h264(30.0, (640, 480));
        assert_eq!(adaptation.with(|a| a.level()), START_LEVEL);
        assert!(!adaptation.control.saw_passthrough());
        adaptation.control.mark_passthrough();
        assert!(adaptation.control.saw_passthrough());
        assert!(adaptation.pass_through(), "the first time: tell the hub");
        assert!(!adaptation.pass_through(), "once");
        assert!(adaptation.is_passthrough());
        assert_eq!(adaptation.with(|a| a.level()), 0);
        assert_eq!(adaptation.control.get().quality, 100);
    }

    #[test]
    fn the_start_up_ramp_is_not_congestion() {
        let mut adapter = Adapter::new(Ladder::new(80, 30.0));
        adapter.level = START_LEVEL;
        // A clear link: frames sent, none dropped, a steady RTT, for 10 s.
        let mut changes = Vec::new();
        for i in 0..40u64 {
            let sample = LinkSample {
                at_us: i * 250_000,
                frames_sent: i * 8,
                frames_dropped: 0,
                bytes_delivered: i * 100_000,
                rtt_us: Some(1_000),
            };
            changes.extend(adapter.on_sample(sample));
        }
        assert!(!changes.is_empty(), "it climbs");
        assert!(
            changes.iter().all(|c| c.cause == AdaptCause::Probe),
            "{changes:?}"
        );
        assert_eq!(adapter.level(), 0);
        assert!(!adapter.has_congested());
        assert!(adapter.step_down_for_size(10_000_000).is_some());
        assert!(adapter.has_congested(), "an oversized frame is news");
    }

    /// A simulated sender: offers `fps` frames a second of `bytes_at(settings)` bytes over a
    /// link of `link_bps`; a frame that does not fit is dropped (latest frame wins).
    struct Sim {
        adapter: Adapter,
        now_us: u64,
        sample: LinkSample,
        budget_bits: f64,
        /// Bits of one frame sent at these settings.
        frame_bits: Box<dyn Fn(&EncoderSettings) -> f64>,
    }

    impl Sim {
        /// JPEG frames of 40 kB at q80 full size, scaled by the size model.
        fn new(quality: u8, fps: f64) -> Self {
            let base = EncoderSettings {
                quality: 80,
                fps: 30.0,
                scale: 1.0,
            };
            Self {
                adapter: Adapter::new(Ladder::new(quality, fps)),
                now_us: 1_000_000,
                sample: LinkSample::default(),
                budget_bits: 0.0,
                frame_bits: Box::new(move |settings| {
                    40_000.0 * 8.0 * settings.relative_rate(&base) * base.fps / settings.fps
                }),
            }
        }

        /// H.264 whose rate control holds `full_bps` times the level's percent.
        fn h264(fps: f64, full_bps: f64) -> Self {
            Self {
                adapter: Adapter::new(Ladder::for_bitrate(fps)),
                frame_bits: Box::new(move |settings| {
                    full_bps * f64::from(settings.quality) / 100.0 / settings.fps
                }),
                ..Self::new(80, fps)
            }
        }

        /// Runs `seconds` of a link of `link_bps`.
        fn run(&mut self, seconds: f64, link_bps: f64) -> Vec<Adaptation> {
            let mut changes = Vec::new();
            let step_us = 1_000_000 / 30;
            let end = self.now_us + (seconds * 1e6) as u64;
            let mut limiter = RateLimiter::default();
            let mut next_sample = self.now_us;
            while self.now_us < end {
                let settings = self.adapter.settings();
                self.budget_bits =
                    (self.budget_bits + link_bps * step_us as f64 / 1e6).min(link_bps * 0.1);
                if limiter.keep(self.now_us, settings.fps) {
                    let bits = (self.frame_bits)(&settings);
                    if bits <= self.budget_bits.max(0.0) + link_bps * 0.02 {
                        self.budget_bits -= bits;
                        self.sample.frames_sent += 1;
                        self.sample.bytes_delivered += (bits / 8.0) as u64;
                    } else {
                        self.sample.frames_dropped += 1;
                    }
                }
                if self.now_us >= next_sample {
                    self.sample.at_us = self.now_us;
                    changes.extend(self.adapter.on_sample(self.sample));
                    next_sample += 250_000;
                }
                self.now_us += step_us;
            }
            changes
        }
    }

    #[test]
    fn ladder_lowers_quality_then_rate_then_size() {
        let ladder = Ladder::new(80, 30.0);
        let levels: Vec<_> = (0..ladder.len()).map(|l| ladder.get(l)).collect();
        assert_eq!(
            levels[0],
            EncoderSettings {
                quality: 80,
                fps: 30.0,
                scale: 1.0
            }
        );
        let first_rate_drop = levels.iter().position(|s| s.fps < 30.0).unwrap();
        let first_size_drop = levels.iter().position(|s| s.scale < 1.0).unwrap();
        assert!(levels[..first_rate_drop].iter().all(|s| s.scale == 1.0));
        assert!(levels[first_rate_drop - 1].quality < 80);
        assert!(first_rate_drop < first_size_drop);
        for pair in levels.windows(2) {
            assert!(pair[1].relative_rate(&levels[0]) < pair[0].relative_rate(&levels[0]));
        }
    }

    #[test]
    fn a_low_start_makes_no_empty_steps() {
        let ladder = Ladder::new(10, 1.0);
        let levels: Vec<_> = (0..ladder.len()).map(|l| ladder.get(l)).collect();
        for pair in levels.windows(2) {
            assert_ne!(pair[0], pair[1]);
        }
        assert!(levels.iter().all(|s| s.quality >= 1 && s.fps >= 1.0));
    }

    #[test]
    fn a_fast_link_never_adapts() {
        let mut sim = Sim::new(80, 30.0);
        let changes = sim.run(20.0, 50e6);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(sim.adapter.level(), 0);
    }

    #[test]
    fn a_slow_link_settles_below_its_rate_then_recovers() {
        let mut sim = Sim::new(80, 30.0);
        // 40 kB frames at 30 fps need 9.6 Mbit/s; give 5.
        let down = sim.run(6.0, 5e6);
        assert!(!down.is_empty());
        assert_eq!(down[0].cause, AdaptCause::Congested);
        let link = sim.adapter.link_bps().unwrap();
        assert!((4e6..=5.5e6).contains(&link), "link estimate {link}");
        // Steady on the slow link: settles where it fits, drops become rare.
        sim.run(20.0, 5e6);
        let settled = sim.adapter.level();
        assert!(settled > 0);
        let before = sim.sample;
        sim.run(10.0, 5e6);
        let dropped = sim.sample.frames_dropped - before.frames_dropped;
        let sent = sim.sample.frames_sent - before.frames_sent;
        assert!(
            (dropped as f64) < 0.1 * (sent + dropped) as f64,
            "dropped {dropped} of {}",
            sent + dropped
        );
        // The link recovers: back to level 0 by probing.
        sim.run(40.0, 100e6);
        assert_eq!(sim.adapter.level(), 0);
    }

    #[test]
    fn h264_lowers_its_bit_rate_to_fit_the_link_then_recovers() {
        let ladder = Ladder::for_bitrate(30.0);
        assert_eq!(ladder.get(0).quality, 100);
        assert!(
            (0..ladder.len()).all(|l| ladder.get(l).scale == 1.0),
            "size stays"
        );
        // 3 Mbit/s asked for, a 1 Mbit/s link.
        let mut sim = Sim::h264(30.0, 3e6);
        sim.run(20.0, 1e6);
        let settled = sim.adapter.settings();
        let sending_bps = 3e6 * f64::from(settled.quality) / 100.0;
        assert!(
            (0.3e6..=1e6).contains(&sending_bps),
            "settled at {settled:?}: {sending_bps} bit/s"
        );
        let before = sim.sample;
        sim.run(10.0, 1e6);
        let dropped = sim.sample.frames_dropped - before.frames_dropped;
        let sent = sim.sample.frames_sent - before.frames_sent;
        assert!(
            (dropped as f64) < 0.1 * (sent + dropped) as f64,
            "dropped {dropped} of {}",
            sent + dropped
        );
        sim.run(40.0, 100e6);
        assert_eq!(sim.adapter.level(), 0);
    }

    #[test]
    fn a_failed_probe_goes_back_and_waits_longer() {
        let mut sim = Sim::new(80, 30.0);
        let changes = sim.run(60.0, 3e6);
        let probes: Vec<_> = changes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.cause == AdaptCause::Probe)
            .collect();
        assert!(!probes.is_empty());
        // Probes get rarer: fewer than one every 2 s on a steady link.
        assert!(probes.len() < 12, "{} probes in 60 s", probes.len());
    }

    #[test]
    fn a_climb_that_drops_frames_is_undone_at_the_next_sample() {
        let mut adapter = Adapter::new(Ladder::new(80, 30.0));
        let mut sample = LinkSample {
            rtt_us: Some(5_000),
            ..LinkSample::default()
        };
        let mut probe_at = None;
        for i in 0..80 {
            // A second of congestion takes it down a level or more; then the link is clear.
            let congested = i < 4;
            sample.at_us += 250_000;
            sample.frames_sent += if congested { 3 } else { 7 };
            sample.frames_dropped += if congested { 4 } else { 0 };
            sample.bytes_delivered += 100_000;
            if let Some(change) = adapter.on_sample(sample) {
                if change.cause == AdaptCause::Probe {
                    probe_at = Some(sample.at_us);
                    break;
                }
            }
        }
        let probe_at = probe_at.expect("a clear link is probed");
        // The RTT stays flat (a lossy link's queue hides behind retransmissions), but the
        // climb's frames are replaced in the slot: undone at the next sample, not a window later.
        sample.at_us += 250_000;
        sample.frames_sent += 5;
        sample.frames_dropped += 2;
        sample.bytes_delivered += 100_000;
        let change = adapter.on_sample(sample).expect("the climb is undone");
        assert_eq!(change.cause, AdaptCause::ProbeFailed);
        assert_eq!(sample.at_us - probe_at, 250_000);
    }

    #[test]
    fn a_level_whose_frames_were_too_large_is_never_probed_again() {
        let mut adapter = Adapter::new(Ladder::new(80, 30.0));
        let change = adapter
            .step_down_for_size(0)
            .expect("level 0 has a level below");
        assert_eq!((change.level, change.cause), (1, AdaptCause::FrameTooLarge));
        // A long clear link would climb back to level 0 were the limit forgotten.
        let mut sample = LinkSample::default();
        for _ in 0..400 {
            sample.at_us += 250_000;
            sample.frames_sent += 7;
            sample.bytes_delivered += 100_000;
            if let Some(change) = adapter.on_sample(sample) {
                assert!(change.level >= 1, "climbed to {change:?}");
            }
        }
        assert_eq!(adapter.level(), 1);
        while adapter.step_down_for_size(sample.at_us).is_some() {}
        assert_eq!(adapter.level(), adapter.ladder.len() - 1);
    }

    #[test]
    fn a_growing_queue_counts_as_congestion_without_drops() {
        let mut adapter = Adapter::new(Ladder::new(80, 30.0));
        let mut changes = Vec::new();
        for i in 0..12u64 {
            changes.extend(adapter.on_sample(LinkSample {
                at_us: i * 250_000,
                frames_sent: i * 7,
                frames_dropped: 0,
                bytes_delivered: i * 150_000,
                // A bloated queue: 2 ms at first, then 100 ms.
                rtt_us: Some(if i < 2 { 2_000 } else { 100_000 }),
            }));
        }
        assert_eq!(
            changes.first().map(|c| c.cause),
            Some(AdaptCause::Congested)
        );
        // Delayed ACKs alone (up to 40 ms) are not a queue.
        let mut calm = Adapter::new(Ladder::new(80, 30.0));
        for i in 0..12u64 {
            let sample = LinkSample {
                at_us: i * 250_000,
                frames_sent: i * 7,
                frames_dropped: 0,
                bytes_delivered: i * 150_000,
                rtt_us: Some(if i % 2 == 0 { 100 } else { 40_000 }),
            };
            assert_eq!(calm.on_sample(sample), None);
        }
    }

    #[test]
    fn only_a_window_that_drops_many_frames_lowers_the_measured_link_rate() {
        let mut adapter = Adapter::new(Ladder::for_bitrate(30.0));
        let mut sample = LinkSample {
            rtt_us: Some(1_000),
            ..LinkSample::default()
        };
        let mut step = |adapter: &mut Adapter, sent, dropped, bytes, rtt_us| {
            sample.at_us += 250_000;
            sample.frames_sent += sent;
            sample.frames_dropped += dropped;
            sample.bytes_delivered += bytes;
            sample.rtt_us = Some(rtt_us);
            adapter.on_sample(sample)
        };
        // 12 Mbit/s offered to a 4.8 Mbit/s link: frames dropped, the link measured.
        for _ in 0..8 {
            step(&mut adapter, 3, 5, 150_000, 1_000);
        }
        let measured = adapter.link_bps().unwrap();
        assert!((4.7e6..=4.9e6).contains(&measured), "{measured}");
        let low = adapter.level();
        assert!(low > 0);
        // Lower down, a keyframe burst shows as a queue while every frame is sent at
        // 1 Mbit/s: the link is still known to carry 4.8 Mbit/s.
        for _ in 0..12 {
            step(&mut adapter, 2, 0, 31_250, 90_000);
        }
        assert_eq!(adapter.link_bps(), Some(measured));
        // A frame or two dropped as a queue drains is no measurement either.
        for _ in 0..4 {
            step(&mut adapter, 2, 0, 31_250, 1_000);
        }
        step(&mut adapter, 1, 1, 31_250, 1_000);
        for _ in 0..8 {
            step(&mut adapter, 2, 0, 31_250, 1_000);
        }
        assert_eq!(adapter.link_bps(), Some(measured));
        // Many drops at a lower rate do measure a slower link.
        for _ in 0..8 {
            step(&mut adapter, 1, 5, 25_000, 1_000);
        }
        let slower = adapter.link_bps().unwrap();
        assert!(slower < 1e6, "{slower}");
    }

    #[test]
    fn rate_limiter_keeps_two_of_three() {
        let mut limiter = RateLimiter::default();
        let kept = (0..300u64)
            .filter(|i| limiter.keep(i * 33_333, 20.0))
            .count();
        assert!((195..=205).contains(&kept), "kept {kept}");
        let mut all = RateLimiter::default();
        assert_eq!(
            (0..90u64).filter(|i| all.keep(i * 33_333, 30.0)).count(),
            90
        );
    }

    #[test]
    fn encoder_control_round_trips() {
        let settings = EncoderSettings {
            quality: 40,
            fps: 20.0,
            scale: 0.75,
        };
        let control = EncoderControl::new(settings);
        assert_eq!(control.get(), settings);
    }
}
