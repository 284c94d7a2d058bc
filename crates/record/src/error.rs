//! Errors of the file side of recording.

use std::path::PathBuf;

/// What went wrong writing or deleting a recording, with the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A file or directory operation failed (disk full, permissions, …).
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done ("create", "write", "sync", …).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A write or patch came while no file was open (a caller bug, reported not panicked).
    #[error("no recording file is open")]
    NotOpen,
}

impl RecordError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
