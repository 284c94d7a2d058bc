//! The recording flags of `serve` and `bench`: `--record DIR [--segment 10m] [--keep 7d]`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use vidcast_record::{Keep, RecordConfig};

use crate::duration;

/// Shortest segment accepted: shorter ones would be mostly headers and file churn.
const MIN_SEGMENT: Duration = Duration::from_secs(1);

/// Recording flags.
#[derive(Args, Debug, Clone, Default)]
pub struct RecordArgs {
    /// Record every stream to DIR/<name>/<UTC start>.mp4 (H.264, fragmented MP4) or .mkv
    /// (JPEG, Matroska); turn streams off and on with POST /api/streams/{id}/record.
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// Length of each recorded file (e.g. 10m, 1h, 30s); H.264 files roll at the next
    /// keyframe after it.
    #[arg(long, default_value = "10m", value_parser = parse_segment, requires = "record")]
    pub segment: Duration,
    /// Delete old recordings by age and/or total size: 7d, 12h, 50GB, 500MiB, or both
    /// (7d,50GB or the flag twice). Default: keep everything.
    #[arg(long, value_name = "AGE|SIZE", value_parser = parse_keep, requires = "record")]
    pub keep: Vec<Keep>,
    /// Record only streams whose name matches PATTERN (`*` any characters, `?` one); repeat
    /// for several. Others can still be turned on with POST /api/streams/{id}/record.
    #[arg(long, value_name = "PATTERN", requires = "record")]
    pub record_only: Vec<String>,
}

impl RecordArgs {
    /// The hub's recording settings, or `None` without `--record`.
    pub fn config(&self) -> Result<Option<RecordConfig>> {
        let Some(dir) = &self.record else {
            return Ok(None);
        };
        if dir.as_os_str().is_empty() {
            bail!("--record needs a directory");
        }
        Ok(Some(RecordConfig {
            dir: dir.clone(),
            segment: self.segment,
            keep: self
                .keep
                .iter()
                .fold(Keep::default(), |all, k| all.merge(*k)),
            only: self.record_only.clone(),
        }))
    }
}

fn parse_segment(text: &str) -> Result<Duration, String> {
    let segment = duration::parse(text)?;
    if segment < MIN_SEGMENT {
        return Err(format!(
            "a segment of {segment:?} is too short (at least {MIN_SEGMENT:?}; try 10m)"
        ));
    }
    Ok(segment)
}

fn parse_keep(text: &str) -> Result<Keep, String> {
    text.parse()
        .map_err(|e: vidcast_record::KeepParseError| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_flags_combine_and_bad_segments_are_refused() {
        let args = RecordArgs {
            record: Some("rec".into()),
            segment: Duration::from_secs(600),
            keep: vec![parse_keep("7d").unwrap(), parse_keep("1GB").unwrap()],
            record_only: Vec::new(),
        };
        let config = args.config().unwrap().unwrap();
        assert_eq!(config.keep.max_age, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(config.keep.max_bytes, Some(1_000_000_000));
        assert!(parse_segment("500ms").unwrap_err().contains("too short"));
        assert!(parse_segment("ten")
            .unwrap_err()
            .contains("invalid duration"));
        assert!(parse_keep("7 parsecs").unwrap_err().contains("--keep"));
    }
}
