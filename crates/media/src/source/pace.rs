//! Real-time playback of timestamped frames, and frame-rate caps.

use std::sync::Arc;

use crate::Clock;

/// Plays frames at their presentation times, in real time on a [`Clock`], like a camera.
///
/// Frame times are relative to the first frame, which plays at once. A frame already more
/// than `late_limit_us` past due (the machine stalled) is dropped rather than sent in a
/// burst with the ones after it; drops are counted.
pub struct Pacer {
    clock: Arc<dyn Clock>,
    anchor_us: Option<u64>,
    late_limit_us: u64,
    late_drops: u64,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("anchor_us", &self.anchor_us)
            .field("late_drops", &self.late_drops)
            .finish_non_exhaustive()
    }
}

impl Pacer {
    /// How late a frame may be and still be shown.
    pub const LATE_LIMIT_US: u64 = 100_000;

    /// A pacer that starts its timeline at its first frame.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            anchor_us: None,
            late_limit_us: Self::LATE_LIMIT_US,
            late_drops: 0,
        }
    }

    /// Waits until the frame at `pts_us` (µs after the first frame) is due and returns its
    /// capture time, or `None` if it is too late to show (drop it and go on).
    pub fn wait(&mut self, pts_us: u64) -> Option<u64> {
        let now = self.clock.now_us();
        let anchor = *self.anchor_us.get_or_insert(now);
        let due = anchor.saturating_add(pts_us);
        if now < due {
            self.clock.sleep_until(due);
            return Some(self.clock.now_us().max(due));
        }
        if now - due > self.late_limit_us {
            self.late_drops += 1;
            tracing::debug!(
                late_ms = (now - due) / 1000,
                dropped = self.late_drops,
                "frame too late to play, dropped"
            );
            return None;
        }
        Some(now)
    }

    /// Frames dropped for being too late.
    pub fn late_drops(&self) -> u64 {
        self.late_drops
    }
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
    fn pacer_plays_at_presentation_times_and_drops_late_frames() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let mut pacer = Pacer::new(clock.clone());
        assert_eq!(pacer.wait(0), Some(1_000_000));
        assert_eq!(pacer.wait(40_000), Some(1_040_000));
        assert_eq!(clock.now_us(), 1_040_000, "waited on the clock");
        // 50 ms late: still shown, stamped now.
        clock.set(1_130_000);
        assert_eq!(pacer.wait(80_000), Some(1_130_000));
        // 200 ms late: dropped.
        clock.set(1_320_000);
        assert_eq!(pacer.wait(120_000), None);
        assert_eq!(pacer.late_drops(), 1);
        assert_eq!(pacer.wait(320_000), Some(1_320_000));
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
