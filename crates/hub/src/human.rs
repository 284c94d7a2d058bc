//! Numbers as people read them in log lines.

use std::time::Duration;

/// `21690` → `"21 690"` (thin groups of three, as the log lines show counts).
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Bytes in decimal units: `1_600_000_000` → `"1.6 GB"`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `1 client`, `2 clients`, `0 clients`: a count with its noun, in the plural unless one.
/// `noun` is the singular; the plural adds "s" (every noun the hub counts does).
pub fn plural(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", count(n))
    }
}

/// `00:12:03`; days roll into hours.
pub fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_log_lines() {
        assert_eq!(count(21_690), "21 690");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000_000), "1 000 000");
        assert_eq!(bytes(1_600_000_000), "1.6 GB");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(elapsed(Duration::from_secs(12 * 60 + 3)), "00:12:03");
        assert_eq!(plural(1u64, "client"), "1 client");
        assert_eq!(plural(0u64, "segment"), "0 segments");
        assert_eq!(plural(21_690u64, "frame"), "21 690 frames");
    }
}
