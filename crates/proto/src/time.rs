//! Time as the protocol sees it: a number the caller passes in.

use std::time::Duration;

/// A point in time, in microseconds, on the clock of whoever drives the connection.
///
/// The protocol never reads a clock: drivers pass `now` in, and tests pass whatever they like.
/// Drivers use microseconds since the Unix epoch (from a clock that never goes backwards), so a
/// publisher's capture timestamps can be compared with the hub's clock after offset correction.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The timestamp `us` microseconds after the clock's origin.
    pub const fn from_micros(us: u64) -> Self {
        Self(us)
    }

    /// Microseconds since the clock's origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the far future.
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_micros(d)))
    }

    /// How long after `earlier` this is; zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

/// A duration in whole microseconds, saturating at `u64::MAX`.
pub(crate) fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
