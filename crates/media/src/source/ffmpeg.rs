//! Any file ffmpeg can read, decoded by an `ffmpeg` child process into Y4M on a pipe.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

use super::y4m::Y4mSource;
use super::VideoSource;
use crate::{Clock, MediaError, RawFrame};

/// The last lines ffmpeg printed on stderr, for the error message if it fails.
type Log = Arc<Mutex<Vec<String>>>;

/// Frames of a file decoded by `ffmpeg -i FILE -f yuv4mpegpipe -pix_fmt yuv420p -`.
///
/// ffmpeg decodes as fast as the pipe drains; the Y4M reader paces playback, so the pipe's
/// back-pressure holds ffmpeg to real time. The child is killed and reaped on drop.
pub struct FfmpegSource {
    child: Child,
    inner: Y4mSource<BufReader<ChildStdout>>,
    log: Log,
    what: String,
}

impl std::fmt::Debug for FfmpegSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfmpegSource")
            .field("what", &self.what)
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

impl FfmpegSource {
    /// Starts ffmpeg on `path` and reads the Y4M header it sends. `why` completes "FILE …"
    /// in the message when ffmpeg is not installed (why vidcast cannot read it itself).
    pub fn open(path: &Path, why: &str, clock: Arc<dyn Clock>) -> Result<Self, MediaError> {
        let what = path.display().to_string();
        let mut child = Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-i"])
            .arg(path)
            .args(["-f", "yuv4mpegpipe", "-pix_fmt", "yuv420p", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| MediaError::Tool {
                tool: "ffmpeg",
                reason: if e.kind() == std::io::ErrorKind::NotFound {
                    format!(
                        "not installed, and {what} {why}: install ffmpeg (Debian: apt-get \
                         install ffmpeg) or convert the file to .y4m"
                    )
                } else {
                    format!("cannot start it for {what}: {e}")
                },
            })?;
        let log = Log::default();
        if let Some(stderr) = child.stderr.take() {
            let log = Arc::clone(&log);
            // Drained on a thread so a chatty ffmpeg never blocks on a full stderr pipe.
            let _ = std::thread::Builder::new()
                .name("ffmpeg-stderr".into())
                .spawn(move || collect_log(stderr, &log));
        }
        let Some(stdout) = child.stdout.take() else {
            kill(&mut child);
            return Err(MediaError::Tool {
                tool: "ffmpeg",
                reason: "no output pipe".into(),
            });
        };
        let inner = match Y4mSource::new(BufReader::new(stdout), &what, clock) {
            Ok(inner) => inner,
            Err(e) => {
                // Most likely ffmpeg refused the file and wrote nothing: say why.
                let reason = failure(&mut child, &log).unwrap_or_else(|| e.to_string());
                kill(&mut child);
                return Err(MediaError::Tool {
                    tool: "ffmpeg",
                    reason: format!("cannot decode {what}: {reason}"),
                });
            }
        };
        tracing::debug!(pid = child.id(), "ffmpeg decoding {what}");
        Ok(Self {
            child,
            inner,
            log,
            what,
        })
    }
}

/// Keeps ffmpeg's last 20 stderr lines.
fn collect_log(stderr: impl Read, log: &Log) {
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if let Ok(mut log) = log.lock() {
            if log.len() == 20 {
                log.remove(0);
            }
            log.push(line);
        }
    }
}

/// Waits (up to a second) for an ffmpeg whose output ended; its complaint if it failed.
fn failure(child: &mut Child, log: &Log) -> Option<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            // Still running with its output closed, or unwaitable: nothing to report.
            _ => return None,
        }
    };
    if status.success() {
        return None;
    }
    // The stderr thread may still be reading the last line; it ends with the pipe.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    loop {
        let last = log.lock().ok().and_then(|l| l.last().cloned());
        if last.is_some() || std::time::Instant::now() > deadline {
            return Some(last.unwrap_or_else(|| format!("ffmpeg exited with {status}")));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

impl VideoSource for FfmpegSource {
    fn size(&self) -> (u32, u32) {
        self.inner.size()
    }

    fn fps(&self) -> f64 {
        self.inner.fps()
    }

    fn describe(&self) -> String {
        let (w, h) = self.inner.size();
        format!(
            "{} via ffmpeg ({w}x{h} @ {:.3} fps)",
            self.what,
            self.inner.fps()
        )
    }

    fn next_frame(&mut self) -> Result<Option<RawFrame>, MediaError> {
        match self.inner.next_frame() {
            Ok(Some(frame)) => Ok(Some(frame)),
            // A cut-short stream usually means ffmpeg hit an error: its words beat ours.
            result => match failure(&mut self.child, &self.log) {
                Some(reason) => Err(MediaError::Tool {
                    tool: "ffmpeg",
                    reason: format!("decoding {} failed: {reason}", self.what),
                }),
                None => result,
            },
        }
    }
}

impl Drop for FfmpegSource {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}
