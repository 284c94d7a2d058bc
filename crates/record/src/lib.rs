//! Recording of live streams to files that standard players open: H.264 in fragmented MP4
//! (`mp4`), JPEG in Matroska as `V_MJPEG` (`mkv`), cut into segments by time (`segment`),
//! old segments deleted by age or total size (`retention`).
//!
//! The muxers and the [`Recorder`] are sans-IO: frames in, bytes and file actions out, time
//! taken from the frames. [`FileSink`] is the only part that touches the disk (blocking
//! `std::fs`; run it on a thread of its own). Depends on `vidcast-h264` (bitstream syntax)
//! only: never on the hub, tokio or a clock (`crates/testkit/tests/crate_arrows.rs` checks).

mod error;
pub mod h264;
pub mod mkv;
pub mod mp4;
pub mod name;
pub mod retention;
pub mod segment;
pub mod sink;

pub use error::RecordError;
pub use retention::{Keep, KeepParseError};
pub use segment::{Codec, Output, RecFrame, Recorder, RecorderCounters, StreamMeta};
pub use sink::FileSink;

use std::path::PathBuf;
use std::time::Duration;

/// Where and how a hub records.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordConfig {
    /// Root directory: each stream goes to `dir/<name>/<start>.<ext>`.
    pub dir: PathBuf,
    /// Length of a segment before the next one starts (at a keyframe for H.264).
    pub segment: Duration,
    /// Which old segments to delete.
    pub keep: Keep,
    /// Names of the streams recorded from the start, as patterns (`*` any run of
    /// characters, `?` one); empty: every stream. Others can be turned on from the API.
    pub only: Vec<String>,
}

impl RecordConfig {
    /// Whether a stream called `name` is recorded unless the API says otherwise.
    pub fn records_by_default(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| name_matches(p, name))
    }
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters (none too)
/// and `?` for one character; every other character stands for itself.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let (pattern, name): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), name.chars().collect());
    // The classic two-pointer match: remember the last `*` and retry from one character on.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_patterns_with_star_and_question_mark() {
        for (pattern, name) in [
            ("cam-*", "cam-kitchen"),
            ("cam-*", "cam-"),
            ("*", ""),
            ("*door*", "front-door-2"),
            ("cam-?", "cam-1"),
            ("a*b*c", "axxbyyc"),
            ("exact", "exact"),
            ("kü*", "küche"),
        ] {
            assert!(name_matches(pattern, name), "{pattern} ~ {name}");
        }
        for (pattern, name) in [
            ("cam-*", "pi-cam-1"),
            ("cam-?", "cam-10"),
            ("a*b*c", "axxbyy"),
            ("exact", "exactly"),
            ("", "x"),
        ] {
            assert!(!name_matches(pattern, name), "{pattern} !~ {name}");
        }
        let config = |only: &[&str]| RecordConfig {
            dir: "rec".into(),
            segment: Duration::from_secs(600),
            keep: Keep::default(),
            only: only.iter().map(|s| s.to_string()).collect(),
        };
        assert!(config(&[]).records_by_default("anything"));
        assert!(config(&["cam-*", "door"]).records_by_default("door"));
        assert!(!config(&["cam-*", "door"]).records_by_default("pi-1"));
    }
}
