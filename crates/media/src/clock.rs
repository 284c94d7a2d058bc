//! Wall-clock time as an input, so tests can drive time by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, in microseconds since the Unix epoch.
///
/// Capture timestamps come from here; code that needs the time takes an `Arc<dyn Clock>`
/// instead of reading the system clock, so tests can use [`ManualClock`].
pub trait Clock: Send + Sync {
    /// Microseconds since 1970-01-01T00:00:00Z.
    fn now_us(&self) -> u64;

    /// Blocks until `now_us() >= deadline_us`. Sources that play files in real time wait
    /// here, so a test clock can make them run as fast as the test likes.
    fn sleep_until(&self, deadline_us: u64) {
        let now = self.now_us();
        if deadline_us > now {
            std::thread::sleep(std::time::Duration::from_micros(deadline_us - now));
        }
    }
}

/// The real clock: reads `SystemTime` once, then adds monotonic `Instant` time.
///
/// So it never goes backwards, even if NTP steps the system clock; it drifts from the
/// system clock only by whatever NTP corrects after creation.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    base_us: u64,
    base: Instant,
}

impl SystemClock {
    /// Anchor a new clock at the current system time.
    pub fn new() -> Self {
        let base = Instant::now();
        // A system clock set before 1970 is a broken machine; count from 0 rather than fail.
        let base_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Self { base_us, base }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_us(&self) -> u64 {
        let elapsed = u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.base_us.saturating_add(elapsed)
    }
}

/// A clock that moves only when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_us: AtomicU64,
}

impl ManualClock {
    /// A clock that reads `start_us` until moved.
    pub fn new(start_us: u64) -> Self {
        Self {
            now_us: AtomicU64::new(start_us),
        }
    }

    /// Jump to `us` (may go backwards: tests decide).
    pub fn set(&self, us: u64) {
        self.now_us.store(us, Ordering::SeqCst);
    }

    /// Move forward by `us`.
    pub fn advance(&self, us: u64) {
        self.now_us.fetch_add(us, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> u64 {
        self.now_us.load(Ordering::SeqCst)
    }

    /// Jumps to the deadline at once (never backwards): paced sources run at full speed.
    fn sleep_until(&self, deadline_us: u64) {
        self.now_us.fetch_max(deadline_us, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_near_system_time_and_never_goes_back() {
        let clock = SystemClock::new();
        let sys = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("test machine clock is after 1970")
            .as_micros() as u64;
        let mut last = clock.now_us();
        assert!(
            last.abs_diff(sys) < 1_000_000,
            "clock {last} vs system {sys}"
        );
        for _ in 0..1000 {
            let now = clock.now_us();
            assert!(now >= last);
            last = now;
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(5);
        assert_eq!(clock.now_us(), 5);
        clock.advance(10);
        assert_eq!(clock.now_us(), 15);
        clock.set(3);
        assert_eq!(clock.now_us(), 3);
    }
}
