//! The one part of recording that touches the disk: applies a [`Recorder`]'s outputs to
//! files with blocking `std::fs` calls. Run it on a thread of its own, never on an async
//! worker: a slow or full disk must not stall anything else.
//!
//! [`Recorder`]: crate::Recorder

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::RecordError;
use crate::segment::Output;

/// How many `-N` suffixes are tried when a file of the same name exists (a client that
/// reconnects within the second its last segment began).
const MAX_SUFFIX: u32 = 100;

/// Writes recording files under one directory.
#[derive(Debug)]
pub struct FileSink {
    dir: PathBuf,
    current: Option<(File, PathBuf)>,
}

impl FileSink {
    /// A sink writing under `dir` (created, with stream subdirectories, when needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            current: None,
        }
    }

    /// The file being written, if any.
    pub fn current(&self) -> Option<&Path> {
        self.current.as_ref().map(|(_, path)| path.as_path())
    }

    /// Carries out one output; returns the bytes it wrote. `NeedKeyframe` is not a file
    /// action and does nothing here.
    pub fn apply(&mut self, output: &Output) -> Result<u64, RecordError> {
        match output {
            Output::Open { path } => {
                self.close()?;
                let (file, path) = create_unique(&self.dir.join(path))?;
                self.current = Some((file, path));
                Ok(0)
            }
            Output::Write(bytes) => {
                let (file, path) = self.current.as_mut().ok_or(RecordError::NotOpen)?;
                file.write_all(bytes)
                    .map_err(|e| RecordError::io("write", path.as_path(), e))?;
                // A fragment is what a crash or power cut may lose at most: make it durable.
                file.sync_data()
                    .map_err(|e| RecordError::io("sync", path.as_path(), e))?;
                Ok(bytes.len() as u64)
            }
            Output::Patch { offset, bytes } => {
                let (file, path) = self.current.as_mut().ok_or(RecordError::NotOpen)?;
                let patched = file
                    .seek(SeekFrom::Start(*offset))
                    .and_then(|_| file.write_all(bytes))
                    .and_then(|()| file.seek(SeekFrom::End(0)).map(drop));
                patched.map_err(|e| RecordError::io("patch", path.as_path(), e))?;
                Ok(0)
            }
            Output::Close => {
                self.close()?;
                Ok(0)
            }
            Output::NeedKeyframe => Ok(0),
        }
    }

    /// Forgets the current file without writing more (after an error).
    pub fn abandon(&mut self) {
        self.current = None;
    }

    fn close(&mut self) -> Result<(), RecordError> {
        if let Some((file, path)) = self.current.take() {
            file.sync_all()
                .map_err(|e| RecordError::io("sync", path, e))?;
        }
        Ok(())
    }
}

/// Creates `path` (and its directory); if it exists, `name-1.ext`, `name-2.ext`, …
fn create_unique(path: &Path) -> Result<(File, PathBuf), RecordError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| RecordError::io("create directory", parent, e))?;
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut candidate = path.to_path_buf();
    for n in 1..=MAX_SUFFIX {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(file) => return Ok((file, candidate)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                candidate = path.with_file_name(format!("{stem}-{n}.{ext}"));
            }
            Err(e) => return Err(RecordError::io("create", candidate, e)),
        }
    }
    Err(RecordError::io(
        "create",
        path,
        std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "too many files of this name",
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_patches_and_never_overwrites_an_earlier_file() {
        let dir = std::env::temp_dir().join(format!("vidcast-sink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut sink = FileSink::new(&dir);
        for _ in 0..2 {
            sink.apply(&Output::Open {
                path: "cam/a.mkv".into(),
            })
            .unwrap();
            sink.apply(&Output::Write(b"hello world".to_vec())).unwrap();
            sink.apply(&Output::Patch {
                offset: 0,
                bytes: b"J".to_vec(),
            })
            .unwrap();
            sink.apply(&Output::Write(b"!".to_vec())).unwrap();
            sink.apply(&Output::Close).unwrap();
        }
        assert_eq!(
            std::fs::read(dir.join("cam/a.mkv")).unwrap(),
            b"Jello world!"
        );
        assert_eq!(
            std::fs::read(dir.join("cam/a-1.mkv")).unwrap(),
            b"Jello world!"
        );
        assert!(matches!(
            sink.apply(&Output::Write(vec![1])),
            Err(RecordError::NotOpen)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
