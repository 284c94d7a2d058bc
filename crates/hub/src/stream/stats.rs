//! Per-stream statistics: counters, a latency window with percentiles, a frame-rate meter.

use std::collections::VecDeque;

use serde::Serialize;

use crate::stream::net::NetHistory;

/// Percentiles of a latency window, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// The most recent latency samples of a stream, microseconds.
#[derive(Debug, Clone)]
pub struct LatencyWindow {
    samples: VecDeque<u64>,
    capacity: usize,
}

impl LatencyWindow {
    /// A window keeping the newest `capacity` samples.
    pub fn new(capacity: usize) -> Self {
        Self {
            samples: VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
        }
    }

    /// Adds one sample.
    pub fn record(&mut self, latency_us: u64) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(latency_us);
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> impl Iterator<Item = u64> + '_ {
        self.samples.iter().copied()
    }

    /// Forgets every sample.
    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// p50/p95/p99, or `None` with no samples.
    pub fn percentiles(&self) -> Option<LatencyMs> {
        percentiles(self.samples.iter().copied().collect())
    }
}

/// p50/p95/p99 in milliseconds of samples in microseconds (nearest-rank), `None` if empty.
pub fn percentiles(mut samples_us: Vec<u64>) -> Option<LatencyMs> {
    if samples_us.is_empty() {
        return None;
    }
    samples_us.sort_unstable();
    let rank = |p: f64| {
        let idx = ((p / 100.0) * samples_us.len() as f64).ceil() as usize;
        samples_us[idx.clamp(1, samples_us.len()) - 1] as f64 / 1000.0
    };
    Some(LatencyMs {
        p50: rank(50.0),
        p95: rank(95.0),
        p99: rank(99.0),
    })
}

/// Upper bounds of the latency histogram's buckets, µs: 5 ms to 10 s (`+Inf` above).
pub(crate) const LATENCY_BUCKETS_US: [u64; 11] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

/// Capture-to-hub latency since the stream was first seen, as a Prometheus histogram wants it:
/// counts per bucket (not cumulative here), their sum and count. Fixed size whatever arrives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyHistogram {
    /// Samples at or below each bound of [`LATENCY_BUCKETS_US`] and above the one before;
    /// the last counts those above every bound.
    pub buckets: [u64; LATENCY_BUCKETS_US.len() + 1],
    /// Sum of all samples, µs.
    pub sum_us: u64,
    /// Samples.
    pub count: u64,
}

impl LatencyHistogram {
    /// Adds one sample.
    pub fn record(&mut self, latency_us: u64) {
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&bound| latency_us <= bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[bucket] = self.buckets[bucket].saturating_add(1);
        self.sum_us = self.sum_us.saturating_add(latency_us);
        self.count = self.count.saturating_add(1);
    }
}

/// Frames per second over the last second, from arrival times.
#[derive(Debug, Clone, Default)]
pub struct FpsMeter {
    arrivals_us: VecDeque<u64>,
}

/// The meter remembers this many arrivals; above 256 fps it extrapolates from their span.
const FPS_HISTORY: usize = 256;

impl FpsMeter {
    /// Notes a frame arriving at `now_us`.
    pub fn record(&mut self, now_us: u64) {
        if self.arrivals_us.len() == FPS_HISTORY {
            self.arrivals_us.pop_front();
        }
        self.arrivals_us.push_back(now_us);
    }

    /// Frames per second over the second before `now_us`.
    pub fn fps(&self, now_us: u64) -> f64 {
        let since = now_us.saturating_sub(1_000_000);
        let recent = self.arrivals_us.iter().filter(|&&t| t > since).count();
        if recent == FPS_HISTORY {
            let span = now_us.saturating_sub(self.arrivals_us[0]).max(1);
            return recent as f64 * 1e6 / span as f64;
        }
        recent as f64
    }
}

/// A sequence jump larger than this is a restart of the publisher's numbering, not lost frames:
/// over an hour of frames at `--max-fps` 240, far more than a live sender loses. A hostile jump
/// to `u64::MAX` must not read as 2^64 drops, nor make a Prometheus counter go down.
pub(crate) const RESTART_GAP: u64 = 1 << 20;

/// Counters and meters of one stream, updated by its session, read by the API.
#[derive(Debug, Clone)]
pub struct StreamStats {
    /// Frames received.
    pub frames: u64,
    /// Picture bytes received.
    pub bytes: u64,
    /// Frames the publisher captured but the hub never got (gaps in sequence numbers).
    pub dropped: u64,
    /// Frames whose sequence number went backwards.
    pub out_of_order: u64,
    /// Times the publisher's numbering jumped by more than [`RESTART_GAP`] either way (a
    /// restarted sender, or a hostile one): counted here, not as drops.
    pub restarts: u64,
    /// JPEG frames whose size differs from the announced one, or that do not parse.
    pub size_mismatches: u64,
    /// Keyframe requests sent to the publisher (H.264 viewers joining or resyncing).
    pub keyframe_requests: u64,
    /// Frames dropped by the hub because the publisher exceeded the frame-rate limit.
    pub rate_limited: u64,
    /// Whether the hub transcodes this H.264 stream to JPEG (for `.mjpg` readers or a
    /// browser without WebCodecs).
    pub jpeg_transcoding: bool,
    /// RTSP players reading this stream now (`serve --rtsp`), and whether the hub encodes
    /// this JPEG stream to H.264 for them.
    pub rtsp: RtspUse,
    /// Sequence number of the newest frame.
    pub last_seq: Option<u64>,
    /// Capture-to-arrival latency.
    pub latency: LatencyWindow,
    /// The same since the stream was first seen, for `/metrics`.
    pub latency_histogram: LatencyHistogram,
    /// Arrival rate.
    pub fps: FpsMeter,
    /// Latest round-trip time to the publisher, microseconds.
    pub rtt_us: Option<u64>,
    /// Publisher clock minus hub clock, microseconds.
    pub clock_offset_us: Option<i64>,
    /// TCP statistics of both ends, with history.
    pub net: NetHistory,
    /// What the publisher's link adaptation last reported.
    pub encoder: Option<vidcast_proto::EncoderReport>,
    /// Whether the publisher stepped its encoder down during this connection (a report's
    /// level above the one before): a congestion decision, not the start-up ramp.
    pub encoder_stepped_down: bool,
}

/// How RTSP players use one stream, as `/api/streams` shows it under `rtsp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RtspUse {
    /// Players reading it now (from PLAY until they leave or are dropped).
    pub readers: u64,
    /// Whether its JPEG is encoded to H.264 for them right now (once for all of them).
    pub transcoding: bool,
}

impl StreamStats {
    /// Empty stats with a latency window of `latency_capacity` samples.
    pub fn new(latency_capacity: usize) -> Self {
        Self {
            frames: 0,
            bytes: 0,
            dropped: 0,
            out_of_order: 0,
            restarts: 0,
            size_mismatches: 0,
            keyframe_requests: 0,
            rate_limited: 0,
            jpeg_transcoding: false,
            rtsp: RtspUse::default(),
            last_seq: None,
            latency: LatencyWindow::new(latency_capacity),
            latency_histogram: LatencyHistogram::default(),
            fps: FpsMeter::default(),
            rtt_us: None,
            clock_offset_us: None,
            net: NetHistory::default(),
            encoder: None,
            encoder_stepped_down: false,
        }
    }

    /// Accounts one arriving frame.
    pub fn record_frame(
        &mut self,
        seq: u64,
        bytes: usize,
        arrived_us: u64,
        latency_us: Option<u64>,
    ) {
        // The publisher picks the numbers: arithmetic on them saturates, and a jump too far
        // to be lost frames is a restart of its numbering, not billions of drops.
        self.last_seq = match self.last_seq {
            Some(last) if seq.abs_diff(last) > RESTART_GAP => {
                self.restarts = self.restarts.saturating_add(1);
                Some(seq)
            }
            Some(last) if seq > last => {
                self.dropped = self.dropped.saturating_add(seq - last - 1);
                Some(seq)
            }
            Some(last) => {
                self.out_of_order = self.out_of_order.saturating_add(1);
                Some(last)
            }
            None => Some(seq),
        };
        self.frames = self.frames.saturating_add(1);
        self.bytes = self.bytes.saturating_add(bytes as u64);
        self.fps.record(arrived_us);
        if let Some(l) = latency_us {
            self.latency.record(l);
            self.latency_histogram.record(l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let p = percentiles((1..=100).map(|ms| ms * 1000).collect()).expect("non-empty");
        assert_eq!((p.p50, p.p95, p.p99), (50.0, 95.0, 99.0));
        assert_eq!(percentiles(vec![]), None);
        let one = percentiles(vec![1500]).expect("non-empty");
        assert_eq!(one.p99, 1.5);
    }

    #[test]
    fn sequence_gaps_count_as_drops_and_regressions_as_out_of_order() {
        let mut s = StreamStats::new(16);
        for seq in [0, 1, 2, 5, 6, 4, 7] {
            s.record_frame(seq, 10, 0, Some(1000));
        }
        assert_eq!(s.dropped, 2);
        assert_eq!(s.out_of_order, 1);
        assert_eq!(s.frames, 7);
        assert_eq!(s.last_seq, Some(7));
    }

    #[test]
    fn a_jump_to_the_end_of_the_numbers_is_a_restart_not_drops() {
        let mut s = StreamStats::new(16);
        for seq in [0, 1, 2, u64::MAX, u64::MAX, 3, 0, 1, 2] {
            s.record_frame(seq, usize::MAX, 0, None);
        }
        assert_eq!(s.dropped, 0);
        assert_eq!(
            s.restarts, 2,
            "to MAX and back to 3; then 0..=2 are out of order"
        );
        assert_eq!(s.out_of_order, 4);
        assert_eq!(s.bytes, u64::MAX, "saturates");
        let mut before = 0;
        let mut s = StreamStats::new(16);
        for seq in [5, RESTART_GAP + 5, u64::MAX - 1, u64::MAX] {
            s.record_frame(seq, 1, 0, None);
            assert!(s.dropped >= before, "counters never go down");
            before = s.dropped;
        }
        assert_eq!(s.dropped, RESTART_GAP - 1);
    }

    #[test]
    fn the_histogram_puts_each_sample_in_its_bucket() {
        let mut h = LatencyHistogram::default();
        for us in [0, 5_000, 5_001, 10_000_000, 10_000_001, u64::MAX] {
            h.record(us);
        }
        assert_eq!(h.buckets[0], 2, "at or below 5 ms");
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[LATENCY_BUCKETS_US.len() - 1], 1, "10 s");
        assert_eq!(h.buckets[LATENCY_BUCKETS_US.len()], 2, "+Inf");
        assert_eq!(h.count, 6);
        assert_eq!(h.sum_us, u64::MAX, "saturates");
    }

    #[test]
    fn fps_counts_the_last_second() {
        let mut m = FpsMeter::default();
        for i in 0..90 {
            m.record(i * 33_333);
        }
        let now = 89 * 33_333;
        assert!((29.0..=31.0).contains(&m.fps(now)), "{}", m.fps(now));
        assert_eq!(m.fps(now + 2_000_000), 0.0);
    }
}
