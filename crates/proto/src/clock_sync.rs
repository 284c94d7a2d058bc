//! Estimating the peer's clock offset from ping/pong exchanges, NTP style.

use crate::message::Pong;
use crate::time::Timestamp;

/// How many recent exchanges the min-RTT filter looks at.
const WINDOW: usize = 16;

/// One completed ping/pong exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSample {
    /// Round-trip time minus the time the peer held the ping, microseconds.
    pub rtt_us: u64,
    /// Peer clock minus local clock, microseconds.
    pub offset_us: i64,
}

/// Offset and RTT estimates from recent exchanges.
///
/// The offset comes from the exchange with the smallest RTT in the window: a pong that waited
/// behind a large frame has a long, lopsided path and a biased offset, a quick one does not. The
/// error of the estimate is at most half that exchange's RTT.
#[derive(Debug, Clone, Default)]
pub struct ClockSync {
    window: [Option<ClockSample>; WINDOW],
    next: usize,
    last: Option<ClockSample>,
}

impl ClockSync {
    /// Takes in a pong that arrived at `received_at` (local clock). Returns the sample, or
    /// `None` when the timestamps are inconsistent (a pong that claims to precede its ping).
    pub fn handle_pong(&mut self, pong: &Pong, received_at: Timestamp) -> Option<ClockSample> {
        let t0 = i128::from(pong.ping_sent_us);
        let t1 = i128::from(pong.ping_received_us);
        let t2 = i128::from(pong.sent_us);
        let t3 = i128::from(received_at.as_micros());
        let rtt = (t3 - t0) - (t2 - t1);
        if t3 < t0 || t2 < t1 || rtt < 0 {
            return None;
        }
        let offset = ((t1 - t0) + (t2 - t3)) / 2;
        let sample = ClockSample {
            rtt_us: u64::try_from(rtt).ok()?,
            offset_us: i64::try_from(offset).ok()?,
        };
        self.window[self.next] = Some(sample);
        self.next = (self.next + 1) % WINDOW;
        self.last = Some(sample);
        Some(sample)
    }

    /// The best sample in the window: the one with the smallest RTT.
    pub fn best(&self) -> Option<ClockSample> {
        self.window
            .iter()
            .flatten()
            .min_by_key(|s| s.rtt_us)
            .copied()
    }

    /// Peer clock minus local clock, microseconds, if any exchange completed.
    pub fn offset_us(&self) -> Option<i64> {
        self.best().map(|s| s.offset_us)
    }

    /// The most recent RTT measurement, microseconds.
    pub fn last_rtt_us(&self) -> Option<u64> {
        self.last.map(|s| s.rtt_us)
    }

    /// Converts a time on the peer's clock to the local clock, if the offset is known.
    pub fn to_local(&self, peer_us: u64) -> Option<Timestamp> {
        let offset = self.offset_us()?;
        let local = i128::from(peer_us) - i128::from(offset);
        u64::try_from(local).ok().map(Timestamp::from_micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pong(t0: u64, t1: u64, t2: u64) -> Pong {
        Pong {
            ping_sent_us: t0,
            ping_received_us: t1,
            sent_us: t2,
        }
    }

    #[test]
    fn symmetric_path_gives_exact_offset() {
        let mut sync = ClockSync::default();
        // Peer is 5 s ahead; 1 ms each way; peer holds the ping 100 us.
        let s = sync
            .handle_pong(
                &pong(1_000_000, 6_001_000, 6_001_100),
                Timestamp::from_micros(1_002_100),
            )
            .expect("consistent");
        assert_eq!(s.rtt_us, 2_000);
        assert_eq!(s.offset_us, 5_000_000);
        assert_eq!(
            sync.to_local(6_001_000),
            Some(Timestamp::from_micros(1_001_000))
        );
    }

    #[test]
    fn min_rtt_sample_wins_over_delayed_pongs() {
        let mut sync = ClockSync::default();
        // A pong stuck 40 ms behind a frame on the way back biases its offset by -20 ms.
        sync.handle_pong(&pong(0, 1_000, 1_000), Timestamp::from_micros(42_000));
        sync.handle_pong(
            &pong(100_000, 101_000, 101_000),
            Timestamp::from_micros(102_000),
        );
        assert_eq!(sync.offset_us(), Some(0));
        assert_eq!(sync.last_rtt_us(), Some(2_000));
    }

    #[test]
    fn inconsistent_pong_is_ignored() {
        let mut sync = ClockSync::default();
        assert!(sync
            .handle_pong(&pong(10, 5, 4), Timestamp::from_micros(20))
            .is_none());
        assert!(sync
            .handle_pong(&pong(10, 5, 6), Timestamp::from_micros(5))
            .is_none());
        assert_eq!(sync.offset_us(), None);
    }
}
