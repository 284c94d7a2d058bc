//! The camera's clock mapped to capture time (sans-IO: RTP timestamps, sender reports and
//! arrival times in, capture times out; no clock of its own).
//!
//! RFC 3550 §6.4.1: a sender report pairs an NTP wall time with an RTP timestamp, so every
//! frame's RTP timestamp maps to the camera's wall clock at capture. What devices do: many
//! cameras never set their clock (1970, 2000) or drift by seconds, and some send no sender
//! reports at all. Our choice: use the sender report when the time it gives lies within
//! [`PLAUSIBLE_US`] before the frame's arrival here (a synchronised camera), else place the
//! RTP timeline so the fastest frame of the last [`WINDOW_US`] arrived the moment it was
//! captured (the min-delay filter of `proto::clock_sync`, windowed so the camera's drift is
//! followed). Either way the frames keep the camera's own spacing, not the network's jitter,
//! and capture times never go backwards.

/// A sender-report time this far (µs) before arrival, or less, is believed.
pub const PLAUSIBLE_US: i64 = 2_000_000;
/// The min-delay window (µs): long enough to catch one frame that met no queue, short
/// enough that 100 ppm of camera drift moves the mapping by at most 1 ms per window.
pub const WINDOW_US: u64 = 10_000_000;

/// NTP seconds from 1900 to 1970 (RFC 868).
const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;

/// Maps one RTP timeline (one stream of one RTSP session) to capture times.
///
/// Call [`CaptureClock::handle_sender_report`] for each RTCP sender report and
/// [`CaptureClock::capture_us`] for each frame, in arrival order; [`CaptureClock::reset`]
/// when the session is replaced (a new RTP timeline).
#[derive(Debug, Clone, Default)]
pub struct CaptureClock {
    /// The last sender report: (camera wall time µs since 1970, RTP timestamp, extended).
    report: Option<(i64, i64)>,
    /// Smallest `arrival - media time` in the current window and the one before.
    min_current: Option<i64>,
    min_previous: Option<i64>,
    /// Arrival time that ends the current window.
    window_end_us: u64,
    /// The last capture time handed out (never handed out again or undercut).
    last_us: Option<u64>,
    /// Whether the last frame was timed by the camera's sender report.
    by_report: bool,
}

impl CaptureClock {
    /// A clock with nothing learnt.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the timeline (a new session starts a new one); capture times still never
    /// go backwards.
    pub fn reset(&mut self) {
        *self = Self {
            last_us: self.last_us,
            ..Self::default()
        };
    }

    /// An RTCP sender report: `ntp` (64-bit NTP, 32.32 seconds since 1900) taken at
    /// `rtp_timestamp` (extended to 64 bits on the frames' timeline).
    pub fn handle_sender_report(&mut self, ntp: u64, rtp_timestamp: i64) {
        let secs = (ntp >> 32).wrapping_sub(NTP_UNIX_OFFSET_S);
        let frac_us = ((ntp & 0xFFFF_FFFF) * 1_000_000) >> 32;
        let unix_us = i64::try_from(secs.saturating_mul(1_000_000).saturating_add(frac_us))
            .unwrap_or(i64::MIN);
        self.report = Some((unix_us, rtp_timestamp));
    }

    /// Whether the last frame's time came from the camera's sender report.
    pub fn is_by_report(&self) -> bool {
        self.by_report
    }

    /// The capture time (µs since 1970) of a frame with RTP timestamp `rtp_timestamp`
    /// (extended) at `clock_rate` Hz that arrived at `arrival_us`.
    pub fn capture_us(&mut self, rtp_timestamp: i64, clock_rate: u32, arrival_us: u64) -> u64 {
        let rate = i64::from(clock_rate.max(1));
        let to_us = |ticks: i64| ticks.saturating_mul(1_000_000) / rate;
        let arrival = i64::try_from(arrival_us).unwrap_or(i64::MAX);
        // The min-delay mapping is kept up to date even while reports are used, so it is
        // ready the moment they stop being plausible.
        let media_us = to_us(rtp_timestamp);
        let delay = arrival.saturating_sub(media_us);
        if arrival_us >= self.window_end_us {
            self.min_previous = self.min_current.take();
            self.window_end_us = arrival_us.saturating_add(WINDOW_US);
        }
        self.min_current = Some(self.min_current.map_or(delay, |m| m.min(delay)));
        let offset = match (self.min_current, self.min_previous) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(delay),
        };
        let by_offset = media_us.saturating_add(offset);
        let by_report = self.report.and_then(|(wall_us, rtp)| {
            let at = wall_us.saturating_add(to_us(rtp_timestamp.saturating_sub(rtp)));
            (at <= arrival && arrival - at <= PLAUSIBLE_US).then_some(at)
        });
        self.by_report = by_report.is_some();
        let capture = u64::try_from(by_report.unwrap_or(by_offset).min(arrival)).unwrap_or(0);
        let capture = match self.last_us {
            Some(last) if capture <= last => last + 1,
            _ => capture,
        };
        self.last_us = Some(capture);
        capture
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 90_000;
    const T0: u64 = 1_700_000_000_000_000;

    fn ntp_of(unix_us: u64) -> u64 {
        let secs = unix_us / 1_000_000 + NTP_UNIX_OFFSET_S;
        let frac = ((unix_us % 1_000_000) << 32) / 1_000_000;
        secs << 32 | frac
    }

    #[test]
    fn without_reports_the_fastest_frame_sets_the_offset_and_spacing_is_the_cameras() {
        let mut c = CaptureClock::new();
        // Frames 33.3 ms apart on the camera; the network adds 5 to 40 ms.
        let jitter = [40_000u64, 5_000, 30_000, 12_000, 25_000];
        let mut times = Vec::new();
        for (i, j) in jitter.iter().enumerate() {
            let rtp = i as i64 * 3000;
            times.push(c.capture_us(rtp, RATE, T0 + i as u64 * 33_333 + j));
        }
        assert!(!c.is_by_report());
        // Frame 1 is the fastest: from it on frames keep the camera's 33.3 ms spacing (its
        // own time, 38.3 ms, would undercut frame 0's, so it gets frame 0's + 1 µs).
        assert_eq!(times[1], times[0] + 1);
        for w in times[2..].windows(2) {
            assert!((w[1] - w[0]).abs_diff(33_333) <= 1, "{times:?}");
        }
        // Never after arrival, but for frame 1, where never going backwards wins.
        for (i, t) in times.iter().enumerate().filter(|(i, _)| *i != 1) {
            assert!(*t <= T0 + i as u64 * 33_333 + jitter[i]);
        }
    }

    #[test]
    fn a_plausible_sender_report_times_frames_by_the_camera_and_a_wrong_one_is_ignored() {
        let mut c = CaptureClock::new();
        // The camera captured at T0 and says so; the frame arrives 80 ms later.
        c.handle_sender_report(ntp_of(T0), 9000);
        let t = c.capture_us(9000 + 3000, RATE, T0 + 33_333 + 80_000);
        assert!(c.is_by_report());
        assert!(t.abs_diff(T0 + 33_333) <= 1, "{t}");
        // A camera whose clock says 2000-01-01: the min-delay mapping instead.
        let mut c = CaptureClock::new();
        c.handle_sender_report(ntp_of(946_684_800_000_000), 0);
        let t = c.capture_us(0, RATE, T0);
        assert!(!c.is_by_report());
        assert_eq!(t, T0);
    }

    #[test]
    fn capture_times_never_go_backwards_across_a_reset() {
        let mut c = CaptureClock::new();
        let a = c.capture_us(1_000_000, RATE, T0 + 50_000);
        c.reset();
        // The new session's timeline starts at 0 and its first frame came fast.
        let b = c.capture_us(0, RATE, T0 + 40_000);
        assert!(b > a, "{a} then {b}");
    }

    #[test]
    fn the_window_follows_a_camera_clock_that_runs_slow() {
        let mut c = CaptureClock::new();
        // The camera's clock runs 1 % slow: its timestamps advance 0.99 s per second.
        let mut lag = 0;
        for i in 0..3000u64 {
            let arrival = T0 + i * 10_000;
            let rtp = (i as f64 * 10_000.0 * 0.99 * 0.09) as i64;
            let t = c.capture_us(rtp, RATE, arrival);
            lag = arrival - t;
        }
        // 30 s at 1 %: a fixed offset would lag 300 ms; the window keeps it under 2 windows' worth.
        assert!(lag <= 2 * WINDOW_US / 100 + 1000, "lag {lag} µs");
    }
}
