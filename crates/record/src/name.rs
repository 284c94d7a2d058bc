//! File and directory names of recordings: a stream name made safe for any filesystem, and
//! a UTC start time that sorts in time order (`2026-11-24T13-05-00Z`: no colons, which
//! Windows and some tools refuse).

/// Longest directory name made from a stream name, in bytes.
const MAX_NAME_BYTES: usize = 100;

/// `name` as one safe path component: ASCII letters, digits, `-`, `_` and `.` kept, anything
/// else becomes `_`; no leading dot (no hidden files, no `..`); never empty.
pub fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME_BYTES)
        .collect();
    while out.starts_with('.') {
        out.replace_range(..1, "_");
    }
    if out.is_empty() {
        out.push_str("stream");
    }
    out
}

/// `unix_us` as `YYYY-MM-DDTHH-MM-SSZ` in UTC.
pub fn utc_stamp(unix_us: u64) -> String {
    let secs = unix_us / 1_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_one_safe_component() {
        assert_eq!(sanitize("cam-1_a.b"), "cam-1_a.b");
        assert_eq!(sanitize("../etc/passwd"), "_._etc_passwd");
        assert_eq!(sanitize(".hidden"), "_hidden");
        assert_eq!(sanitize("Küche 2"), "K_che_2");
        assert_eq!(sanitize(""), "stream");
        assert_eq!(sanitize(&"x".repeat(500)).len(), MAX_NAME_BYTES);
    }

    #[test]
    fn stamps_are_utc_and_sort_in_time_order() {
        assert_eq!(utc_stamp(0), "1970-01-01T00-00-00Z");
        // 2026-11-24T13:05:00Z, and a leap day.
        assert_eq!(utc_stamp(1_795_525_500_000_000), "2026-11-24T13-05-00Z");
        assert_eq!(utc_stamp(951_782_400_999_999), "2000-02-29T00-00-00Z");
        assert!(utc_stamp(1_000_000_000_000_000) < utc_stamp(1_900_000_000_000_000));
    }
}
