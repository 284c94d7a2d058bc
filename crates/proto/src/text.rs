//! Text a peer controls, made harmless: the client-name rule, and one escaper for every
//! peer string that reaches a log line.
//!
//! A name or reason with a newline or NUL forges whole log lines; a bidi override (U+202E)
//! or a zero-width character makes a name look like another, or reverses the address next
//! to it on the wall. Names refuse such characters outright; other peer strings (goodbye
//! reasons, pickle names, URLs) are escaped where they are logged, with [`log_safe`].

use std::fmt;

/// Longest peer string a log line shows, in characters; the rest is cut and counted.
pub const LOG_SAFE_MAX_CHARS: usize = 128;

/// Unicode general category Cf (format characters: bidi controls, zero-width joiners and
/// spaces, the BOM, tag characters…), as of Unicode 15. Sorted, inclusive ranges.
const FORMAT_CHARS: &[(u32, u32)] = &[
    (0xAD, 0xAD),
    (0x600, 0x605),
    (0x61C, 0x61C),
    (0x6DD, 0x6DD),
    (0x70F, 0x70F),
    (0x890, 0x891),
    (0x8E2, 0x8E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is a Unicode format character (category Cf).
pub fn is_format_char(c: char) -> bool {
    let c = u32::from(c);
    FORMAT_CHARS
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Whether `c` changes how the text around it reads or where a line ends: control
/// characters (Cc), format characters (Cf) and the line and paragraph separators.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control() || is_format_char(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Why `name` cannot be a client name, or `None` if it can: 1 to
/// [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes of UTF-8 without control characters, format
/// characters (bidi overrides, zero-width characters) or line separators.
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > crate::MAX_NAME_LEN {
        Some("client name must be 1 to 64 bytes")
    } else if name.chars().any(char::is_control) {
        Some("client name has control characters")
    } else if name.chars().any(is_unsafe_char) {
        Some("client name has invisible format characters (bidi controls, zero-width characters or line separators)")
    } else {
        None
    }
}

/// A peer string as a log line may show it: see [`log_safe`].
#[derive(Clone, Copy)]
pub struct LogSafe<'a>(&'a str);

/// Wraps a peer-controlled string so that its `Display` fits on one log line and means what
/// it shows: control, format and separator characters become `\n`, `\0`, `\u{202e}`…,
/// backslashes and double quotes are escaped (a string logged in quotes cannot close them),
/// and only the first [`LOG_SAFE_MAX_CHARS`] characters are shown, with how many bytes were
/// cut.
pub fn log_safe(text: &str) -> LogSafe<'_> {
    LogSafe(text)
}

impl fmt::Display for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        for (shown, (at, c)) in self.0.char_indices().enumerate() {
            if shown == LOG_SAFE_MAX_CHARS {
                return write!(f, "…(+{} bytes)", self.0.len() - at);
            }
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\0' => f.write_str("\\0")?,
                c if is_unsafe_char(c) => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_safe_keeps_a_forged_line_on_one_line() {
        let forged = "bye\n2026-12-02T16:00:00Z  INFO hub: client admin connected\0";
        let shown = log_safe(forged).to_string();
        assert!(!shown.contains('\n') && !shown.contains('\0'), "{shown}");
        assert_eq!(
            shown,
            "bye\\n2026-12-02T16:00:00Z  INFO hub: client admin connected\\0"
        );
        assert_eq!(
            log_safe("a\u{202e}b\u{200b}c\u{2028}\"\\").to_string(),
            "a\\u{202e}b\\u{200b}c\\u{2028}\\\"\\\\"
        );
        assert_eq!(log_safe("café ✓").to_string(), "café ✓");
    }

    #[test]
    fn log_safe_cuts_long_strings_and_says_how_much() {
        let long = "é".repeat(LOG_SAFE_MAX_CHARS + 10);
        let shown = log_safe(&long).to_string();
        assert!(shown.ends_with("…(+20 bytes)"), "{shown}");
        assert_eq!(
            shown.chars().filter(|&c| c == 'é').count(),
            LOG_SAFE_MAX_CHARS
        );
    }

    #[test]
    fn format_characters_are_found_at_their_range_edges_only() {
        for c in [
            '\u{ad}',
            '\u{200b}',
            '\u{200f}',
            '\u{202a}',
            '\u{202e}',
            '\u{2066}',
            '\u{feff}',
            '\u{e0001}',
            '\u{e007f}',
        ] {
            assert!(is_format_char(c), "{:x}", u32::from(c));
        }
        for c in [
            'a',
            'é',
            '\u{ac}',
            '\u{2010}',
            '\u{2029}',
            '\u{fffc}',
            '\u{e0080}',
        ] {
            assert!(!is_format_char(c), "{:x}", u32::from(c));
        }
    }

    #[test]
    fn names_refuse_controls_bidi_and_zero_width() {
        assert_eq!(name_problem("cam-1 (door) ✓"), None);
        assert_eq!(name_problem("Küche"), None);
        assert!(name_problem("").is_some());
        assert!(name_problem(&"x".repeat(65)).is_some());
        for bad in [
            "a\nb",
            "a\0",
            "\u{202e}1.0.0.721",
            "cam\u{200b}1",
            "x\u{2028}y",
        ] {
            assert!(name_problem(bad).is_some(), "{bad:?}");
        }
    }
}
