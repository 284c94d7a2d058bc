//! Capture timestamps: nanoseconds since the Unix epoch, and RFC 3339 text for them.

use std::fmt;

/// A capture timestamp, nanoseconds since 1970-01-01T00:00:00Z. 128 bits: 64 bits of
/// nanoseconds end in April 2262, and a pcapng timestamp (64 bits of units) can lie centuries
/// later; times past it must not collapse into one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i128);

impl Timestamp {
    /// From whole seconds and nanoseconds.
    pub fn from_parts(secs: i64, nanos: i64) -> Self {
        Self(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
    }

    /// Nanoseconds from `earlier` to `self` (clamped to ±292 years).
    pub fn since_ns(self, earlier: Self) -> i64 {
        let d = self.0.saturating_sub(earlier.0);
        i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
    }

    /// This time `ns` nanoseconds later.
    pub fn plus_ns(self, ns: i64) -> Self {
        Self(self.0.saturating_add(i128::from(ns)))
    }

    /// Seconds from `earlier` to `self`.
    pub fn since_s(self, earlier: Self) -> f64 {
        self.since_ns(earlier) as f64 / 1e9
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// RFC 3339 in UTC with microseconds: `2024-05-01T12:34:56.123456Z`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000_000);
        let micros = self.0.rem_euclid(1_000_000_000) / 1000;
        // Days fit an i64 for any time a capture can hold (2^64 seconds is 5.8·10^11 years).
        let days = i64::try_from(secs.div_euclid(86_400)).unwrap_or(i64::MAX / 2);
        let (y, mo, d) = civil_from_days(days);
        let sod = secs.rem_euclid(86_400);
        write!(
            f,
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000000Z");
        // date -u -d @1709209845 → 2024-02-29T12:30:45Z (a leap day).
        assert_eq!(
            Timestamp::from_parts(1_709_209_845, 123_456_789).to_string(),
            "2024-02-29T12:30:45.123456Z"
        );
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31T23:59:59.999999Z");
        // Past 2262, where 64 bits of nanoseconds end: date -u -d @13569465600 → 2400-01-01.
        let later = Timestamp::from_parts(13_569_465_600, 1_000);
        assert_eq!(later.to_string(), "2400-01-01T00:00:00.000001Z");
        assert_eq!(later.plus_ns(1_500).since_ns(later), 1_500);
    }
}
