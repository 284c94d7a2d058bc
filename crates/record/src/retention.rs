//! Which old segments to delete: those older than a maximum age, then the oldest until the
//! total size is under a maximum. The plan is a pure function; [`sweep`] lists and deletes.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

use crate::error::RecordError;

/// File extensions a sweep considers: only recordings, never other files in the directory.
const RECORDING_EXTENSIONS: [&str; 2] = ["mp4", "mkv"];

/// How much to keep. Both limits may apply; none keeps everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keep {
    /// Delete segments last written longer ago than this.
    pub max_age: Option<Duration>,
    /// Delete the oldest segments while all of them take more than this.
    pub max_bytes: Option<u64>,
}

/// A `--keep` value that is not an age or a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid --keep value {text:?}: {reason} (examples: 7d, 12h, 50GB, 500MiB, 7d,50GB)")]
pub struct KeepParseError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Keep {
    /// Both limits: where each is set in `other`, it wins.
    pub fn merge(self, other: Keep) -> Keep {
        Keep {
            max_age: other.max_age.or(self.max_age),
            max_bytes: other.max_bytes.or(self.max_bytes),
        }
    }
}

impl FromStr for Keep {
    type Err = KeepParseError;

    /// Comma-separated terms, each an age (`s`, `m`, `h`, `d`, `w`) or a size (`B`, `KB`,
    /// `MB`, `GB`, `TB` in powers of 1000, `KiB` … `TiB` in powers of 1024).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason: &str| KeepParseError {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let mut keep = Keep::default();
        for term in text.split(',').map(str::trim) {
            let split = term
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| fail("a unit is needed"))?;
            let (number, unit) = term.split_at(split);
            let value: f64 = number
                .parse()
                .map_err(|_| fail("it does not start with a number"))?;
            if !(value.is_finite() && value > 0.0) {
                return Err(fail("it must be more than zero"));
            }
            let age_unit = match unit.trim() {
                "s" => Some(1.0),
                "m" | "min" => Some(60.0),
                "h" => Some(3600.0),
                "d" => Some(86_400.0),
                "w" => Some(7.0 * 86_400.0),
                _ => None,
            };
            if let Some(seconds) = age_unit {
                keep.max_age = Some(Duration::from_secs_f64(value * seconds));
                continue;
            }
            let bytes_per_unit = match unit.trim().to_ascii_lowercase().as_str() {
                "b" => 1.0,
                "kb" => 1e3,
                "mb" => 1e6,
                "gb" => 1e9,
                "tb" => 1e12,
                "kib" => 1024.0,
                "mib" => 1024.0 * 1024.0,
                "gib" => 1024.0 * 1024.0 * 1024.0,
                "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
                _ => return Err(fail(&format!("unknown unit {unit:?}"))),
            };
            keep.max_bytes = Some((value * bytes_per_unit) as u64);
        }
        Ok(keep)
    }
}

/// A recording on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// Its path.
    pub path: PathBuf,
    /// When it was last written, µs since the Unix epoch.
    pub modified_us: u64,
    /// Its size.
    pub len_bytes: u64,
}

/// The files to delete under `keep` at `now_us`; files for which `is_open` is true (being
/// written) are never deleted but count towards the size.
pub fn plan(
    files: &[SegmentFile],
    keep: &Keep,
    now_us: u64,
    is_open: impl Fn(&Path) -> bool,
) -> Vec<PathBuf> {
    let mut oldest_first: Vec<&SegmentFile> = files.iter().collect();
    oldest_first.sort_by(|a, b| (a.modified_us, &a.path).cmp(&(b.modified_us, &b.path)));
    let mut total: u64 = files.iter().map(|f| f.len_bytes).sum();
    let max_age_us = keep
        .max_age
        .map(|a| u64::try_from(a.as_micros()).unwrap_or(u64::MAX));
    let mut delete = Vec::new();
    for f in oldest_first {
        if is_open(&f.path) {
            continue;
        }
        let too_old = max_age_us.is_some_and(|max| now_us.saturating_sub(f.modified_us) > max);
        let too_big = keep.max_bytes.is_some_and(|max| total > max);
        if too_old || too_big {
            total -= f.len_bytes;
            delete.push(f.path.clone());
        }
    }
    delete
}

/// The recordings under `dir` (`dir/<stream>/<file>.{mp4,mkv}`).
pub fn list(dir: &Path) -> Result<Vec<SegmentFile>, RecordError> {
    let mut files = Vec::new();
    let streams = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(RecordError::io("list", dir, e)),
    };
    for stream in streams.flatten() {
        let Ok(entries) = std::fs::read_dir(stream.path()) else {
            continue; // a plain file, or gone meanwhile
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_recording = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| RECORDING_EXTENSIONS.contains(&e));
            let Ok(meta) = entry.metadata() else { continue };
            if !is_recording || !meta.is_file() {
                continue;
            }
            let modified_us = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
            files.push(SegmentFile {
                path,
                modified_us,
                len_bytes: meta.len(),
            });
        }
    }
    Ok(files)
}

/// Deletes what [`plan`] says under `dir`; returns the deleted paths. A file already gone
/// is not an error; the first other failure is returned after trying the rest.
pub fn sweep(
    dir: &Path,
    keep: &Keep,
    now_us: u64,
    is_open: impl Fn(&Path) -> bool,
) -> Result<Vec<PathBuf>, RecordError> {
    if keep.max_age.is_none() && keep.max_bytes.is_none() {
        return Ok(Vec::new());
    }
    let files = list(dir)?;
    let mut deleted = Vec::new();
    let mut first_error = None;
    for path in plan(&files, keep, now_us, is_open) {
        match std::fs::remove_file(&path) {
            Ok(()) => deleted.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                first_error.get_or_insert(RecordError::io("delete", path, e));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(deleted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keep_values_parse_and_bad_ones_say_why() {
        let week = Duration::from_secs(7 * 86_400);
        assert_eq!(
            "7d".parse(),
            Ok(Keep {
                max_age: Some(week),
                max_bytes: None
            })
        );
        assert_eq!(
            "50GB".parse::<Keep>().map(|k| k.max_bytes),
            Ok(Some(50_000_000_000))
        );
        assert_eq!(
            "1.5KiB".parse::<Keep>().map(|k| k.max_bytes),
            Ok(Some(1536))
        );
        assert_eq!(
            "7d, 50GB".parse(),
            Ok(Keep {
                max_age: Some(week),
                max_bytes: Some(50_000_000_000)
            })
        );
        for (bad, why) in [
            ("7", "unit"),
            ("seven days", "number"),
            ("5 parsecs", "unknown unit"),
            ("0d", "more than zero"),
        ] {
            let err = bad.parse::<Keep>().unwrap_err().to_string();
            assert!(err.contains(why) && err.contains("50GB"), "{bad}: {err}");
        }
    }

    fn file(name: &str, modified_us: u64, len_bytes: u64) -> SegmentFile {
        SegmentFile {
            path: name.into(),
            modified_us,
            len_bytes,
        }
    }

    #[test]
    fn deletes_by_age_then_oldest_first_by_size_but_never_an_open_file() {
        let files = [
            file("c", 30, 10),
            file("a", 10, 10),
            file("b", 20, 10),
            file("d", 40, 10),
        ];
        let age = Keep {
            max_age: Some(Duration::from_micros(25)),
            max_bytes: None,
        };
        assert_eq!(
            plan(&files, &age, 50, |_| false),
            [PathBuf::from("a"), "b".into()]
        );
        let size = Keep {
            max_age: None,
            max_bytes: Some(25),
        };
        assert_eq!(
            plan(&files, &size, 50, |_| false),
            [PathBuf::from("a"), "b".into()]
        );
        assert_eq!(
            plan(&files, &size, 50, |p| p == Path::new("a")),
            [PathBuf::from("b"), "c".into()]
        );
    }

    proptest! {
        /// Deleted files are never open, what stays fits (or is all open), and no kept
        /// closed file is older than a file deleted for size.
        #[test]
        fn the_plan_keeps_the_newest_that_fit(
            specs in proptest::collection::vec((0u64..1000, 1u64..100, any::<bool>()), 0..40),
            max in 0u64..2000,
        ) {
            let files: Vec<_> = specs.iter().enumerate()
                .map(|(i, (m, l, _))| file(&i.to_string(), *m, *l)).collect();
            let open = |p: &Path| specs[p.to_string_lossy().parse::<usize>().unwrap()].2;
            let keep = Keep { max_age: None, max_bytes: Some(max) };
            let deleted = plan(&files, &keep, 0, open);
            prop_assert!(deleted.iter().all(|p| !open(p)));
            let kept: Vec<_> = files.iter().filter(|f| !deleted.contains(&f.path)).collect();
            let kept_bytes: u64 = kept.iter().map(|f| f.len_bytes).sum();
            prop_assert!(kept_bytes <= max || kept.iter().all(|f| open(&f.path)));
            let newest_deleted = files.iter().filter(|f| deleted.contains(&f.path)).map(|f| f.modified_us).max();
            if let Some(newest) = newest_deleted {
                prop_assert!(kept.iter().all(|f| open(&f.path) || f.modified_us >= newest));
            }
        }
    }
}
