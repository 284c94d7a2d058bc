//! The waits between reconnect attempts (sans-IO: durations out, no clock, no sleeping), shared
//! by publishers, native viewers, legacy senders and the hub's restream pushes.

use std::time::Duration;

/// Exponential backoff: a first wait doubling to a cap, each wait jittered by ±25 % so that
/// many peers cut off together do not all knock again at the same instant.
#[derive(Debug, Clone)]
pub struct Backoff {
    start: Duration,
    next: Duration,
    cap: Duration,
    rng: u64,
}

impl Backoff {
    /// Backoff starting at 100 ms, doubling up to `cap`; `seed` picks the jitter (any value,
    /// e.g. the time).
    pub fn new(cap: Duration, seed: u64) -> Self {
        Self::starting_at(Duration::from_millis(100), cap, seed)
    }

    /// Backoff starting at `start`, doubling up to `cap`.
    pub fn starting_at(start: Duration, cap: Duration, seed: u64) -> Self {
        let start = start.min(cap);
        Self {
            start,
            next: start,
            cap,
            rng: seed | 1,
        }
    }

    /// The next wait.
    pub fn next_delay(&mut self) -> Duration {
        // xorshift64: plenty for jitter.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let jitter = 0.75 + (self.rng % 1000) as f64 / 2000.0;
        let delay = self.next.mul_f64(jitter);
        self.next = self.next.saturating_mul(2).min(self.cap);
        delay
    }

    /// Back to the first wait (after a connection that worked).
    pub fn reset(&mut self) {
        self.next = self.start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(5), 42);
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(75) && delays[0] <= Duration::from_millis(125));
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(6250)));
        assert!(delays[9] >= Duration::from_millis(3750), "{delays:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(125));
    }

    #[test]
    fn peers_with_other_seeds_wait_differently() {
        let mut a = Backoff::starting_at(Duration::from_millis(500), Duration::from_secs(10), 1);
        let mut b = Backoff::starting_at(Duration::from_millis(500), Duration::from_secs(10), 2);
        let a: Vec<Duration> = (0..5).map(|_| a.next_delay()).collect();
        let b: Vec<Duration> = (0..5).map(|_| b.next_delay()).collect();
        assert_ne!(a, b);
    }

    proptest! {
        /// Every wait is within ±25 % of start·2ⁿ capped, whatever the seed.
        #[test]
        fn every_wait_is_the_doubled_wait_within_a_quarter(
            seed in any::<u64>(),
            start_ms in 1u64..2_000,
            cap_ms in 1u64..60_000,
        ) {
            let (start, cap) = (Duration::from_millis(start_ms), Duration::from_millis(cap_ms));
            let mut b = Backoff::starting_at(start, cap, seed);
            let mut nominal = start.min(cap);
            for _ in 0..20 {
                let d = b.next_delay();
                prop_assert!(d >= nominal.mul_f64(0.75) && d <= nominal.mul_f64(1.25), "{d:?} vs {nominal:?}");
                nominal = (nominal * 2).min(cap);
            }
        }
    }
}
