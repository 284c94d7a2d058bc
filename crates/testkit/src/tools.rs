//! External tools the tests use (Chromium, ffmpeg…): present, or a loud skip — and under
//! `CI=true` a failure, because CI must never pass by skipping.

use std::path::PathBuf;

/// Finds `tool` on PATH. Missing under `CI=true`: panics (the test fails). Missing otherwise:
/// prints why the test is skipped and returns `None`.
pub fn require_tool(tool: &str, debian_package: &str) -> Option<PathBuf> {
    if let Some(path) = find_on_path(tool) {
        return Some(path);
    }
    missing(&format!(
        "`{tool}` is not installed (Debian package `{debian_package}`; scripts/test installs it)"
    ))
}

fn find_on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

/// A missing prerequisite (`message` says which and how to get it): under `CI=true` the
/// test fails; otherwise it is skipped with a note. Returns `None` for the skip.
pub(crate) fn missing<T>(message: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}: CI=true, so this test fails rather than skipping");
    }
    eprintln!("SKIPPED: {message}");
    None
}

/// A server process a helper started (nginx, the RTSP test server): killed by its own PID,
/// frozen and thawed by signals, never anything else.
#[derive(Default)]
pub(crate) struct Daemon {
    child: Option<std::process::Child>,
}

impl Daemon {
    /// Holds `child` (the previous one, if any, is killed first).
    pub(crate) fn hold(&mut self, child: std::process::Child) {
        self.kill();
        self.child = Some(child);
    }

    /// The exit status if it has exited on its own.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL to its PID, then reaps it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (SIGSTOP freezes it like a hung server, SIGCONT thaws it); `false` if
    /// it is not running or the signal failed.
    pub(crate) fn signal(&self, signal: libc::c_int) -> bool {
        let Some(pid) = self
            .child
            .as_ref()
            .and_then(|c| libc::pid_t::try_from(c.id()).ok())
        else {
            return false;
        };
        // SAFETY: kill(2) on a child this helper started and has not reaped, by its PID.
        unsafe { libc::kill(pid, signal) == 0 }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A frozen process is thawed so it can die.
        self.signal(libc::SIGCONT);
        self.kill();
    }
}

/// An ffmpeg that plays `url` as a player would, with no buffering of its own and one
/// decoding thread (`input_args`, such as `-rtsp_transport tcp`, before `-i`), decoding
/// `frames` pictures to RGB on its stdout.
pub fn ffmpeg_player(
    ffmpeg: &std::path::Path,
    input_args: &[&str],
    url: &str,
    frames: usize,
) -> std::process::Child {
    std::process::Command::new(ffmpeg)
        .args(["-nostdin", "-v", "error"])
        .args(input_args)
        .args([
            "-fflags",
            "nobuffer",
            "-flags",
            "low_delay",
            "-threads",
            "1",
        ])
        .args(["-i", url, "-frames:v", &frames.to_string()])
        .args([
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "pipe:1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start ffmpeg")
}

/// Plays `count` pictures of `width`x`height` with [`ffmpeg_player`] and notes, on `clock`,
/// when each is out: (the frame number the test pattern drew in it, µs). Blocking; ffmpeg
/// is killed after the last picture or when it ends.
pub fn played_frame_numbers(
    ffmpeg: &std::path::Path,
    input_args: &[&str],
    url: &str,
    (width, height): (u32, u32),
    count: usize,
    clock: &dyn vidcast_media::Clock,
) -> Vec<(u64, u64)> {
    use std::io::Read as _;
    let mut child = ffmpeg_player(ffmpeg, input_args, url, count);
    let mut seen = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        let mut picture = vec![0u8; (width * height * 3) as usize];
        while seen.len() < count && stdout.read_exact(&mut picture).is_ok() {
            let at = clock.now_us();
            if let Some(n) = vidcast_media::read_frame_number(&picture, width, height) {
                seen.push((u64::from(n), at));
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    seen
}
