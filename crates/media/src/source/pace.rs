//! Real-time playback of timestamped frames, and frame-rate caps.

use std::sync::Arc;

use crate::Clock;

/// Plays frames at their presentation times, in real time on a [`Clock`], like a camera.
///
/// Frame times are relative to the first frame, which plays at once. A frame more than
/// `LATE_LIMIT_US` late (the machine stalled) moves the timeline: it plays at once and the
/// ones after it keep the file's rate from there, as after a pause. Nothing is dropped (a
/// file or pipe has no newer frame waiting to take its place) and nothing bursts.
pub struct Pacer {
    clock: Arc<dyn Clock>,
    anchor_us: Option<u64>,
    late_limit_us: u64,
    slips: u64,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("anchor_us", &self.anchor_us)
            .field("slips", &self.slips)
            .finish_non_exhaustive()
    }
}

impl Pacer {
    /// How late a frame may be before the timeline moves.
    pub const LATE_LIMIT_US: u64 = 100_000;

    /// A pacer that starts its timeline at its first frame.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            anchor_us: None,
            late_limit_us: Self::LATE_LIMIT_US,
            slips: 0,
        }
    }

    /// Waits until the frame at `pts_us` (µs after the first frame) is due; returns its
    /// capture time.
    pub fn wait(&mut self, pts_us: u64) -> u64 {
        let now = self.clock.now_us();
        let anchor = *self.anchor_us.get_or_insert(now);
        let due = anchor.saturating_add(pts_us);
        if now < due {
            self.clock.sleep_until(due);
            return self.clock.now_us().max(due);
        }
        let late = now - due;
        if late > self.late_limit_us {
            self.anchor_us = Some(anchor + late);
            self.slips += 1;
            tracing::debug!(
                late_ms = late / 1000,
                slips = self.slips,
                "playback fell behind; continuing from now"
            );
        }
        now
    }

    /// Times the timeline moved because playback fell behind.
    pub fn slips(&self) -> u64 {
        self.slips
    }
}

/// Presentation time of frame `index` of a constant-rate video, µs after frame 0.
pub fn pts_us(index: u64, fps: f64) -> u64 {
    (index as f64 * 1e6 / fps).round() as u64
}

/// Admits frames at most `fps` times a second, dropping the rest (never speeding up).
///
/// Over a 30 fps input, a cap of 20 keeps 2 frames of every 3, evenly; a cap above the
/// input rate keeps everything.
#[derive(Debug, Clone)]
pub struct RateCap {
    period_us: f64,
    next_us: Option<f64>,
}

impl RateCap {
    /// A cap of `fps` frames per second (`fps > 0`).
    pub fn new(fps: f64) -> Self {
        Self {
            period_us: 1e6 / fps,
            next_us: None,
        }
    }

    /// Whether a frame captured at `t_us` goes through.
    pub fn admit(&mut self, t_us: u64) -> bool {
        let t = t_us as f64;
        // 1 ms of slack: frame times rounded to whole µs must not miss their slot.
        let slack = 1000.0_f64.min(self.period_us / 4.0);
        match self.next_us {
            Some(next) if t + slack < next => false,
            Some(next) => {
                // After a gap (source stalled) start again from now rather than bursting.
                let base = if t - next > self.period_us { t } else { next };
                self.next_us = Some(base + self.period_us);
                true
            }
            None => {
                self.next_us = Some(t + self.period_us);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[test]
    fn pacer_plays_at_presentation_times_and_slips_after_a_stall() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let mut pacer = Pacer::new(clock.clone());
        assert_eq!(pacer.wait(0), 1_000_000);
        assert_eq!(pacer.wait(40_000), 1_040_000);
        assert_eq!(clock.now_us(), 1_040_000, "waited on the clock");
        // 50 ms late: played at once; the timeline stays, so the next one catches up.
        clock.set(1_130_000);
        assert_eq!(pacer.wait(80_000), 1_130_000);
        assert_eq!(pacer.wait(120_000), 1_130_000);
        assert_eq!(pacer.slips(), 0);
        // 200 ms late: played at once, and the timeline moves by those 200 ms.
        clock.set(1_360_000);
        assert_eq!(pacer.wait(160_000), 1_360_000);
        assert_eq!(pacer.slips(), 1);
        assert_eq!(pacer.wait(200_000), 1_400_000);
    }

    fn admitted(cap: f64, input_fps: f64, seconds: f64) -> usize {
        let mut c = RateCap::new(cap);
        let n = (input_fps * seconds) as u64;
        (0..n)
            .filter(|&i| c.admit((i as f64 * 1e6 / input_fps).round() as u64))
            .count()
    }

    #[test]
    fn rate_cap_drops_to_the_cap_and_never_adds() {
        assert_eq!(admitted(20.0, 30.0, 3.0), 60);
        assert_eq!(admitted(15.0, 30.0, 2.0), 30);
        assert_eq!(admitted(10.0, 25.0, 4.0), 40);
        assert_eq!(admitted(60.0, 30.0, 2.0), 60);
        assert_eq!(admitted(30.0, 30.0, 2.0), 60);
        // 29.97 over 30: one frame in about a thousand goes.
        assert!((298..300).contains(&admitted(29.97, 30.0, 10.0)));
    }

    #[test]
    fn rate_cap_restarts_after_a_gap_instead_of_bursting() {
        let mut c = RateCap::new(10.0);
        assert!(c.admit(0));
        assert!(!c.admit(50_000));
        assert!(c.admit(5_000_000));
        assert!(!c.admit(5_033_000));
        assert!(c.admit(5_100_000));
    }
}
