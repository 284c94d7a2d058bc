//! Helpers shared by the binary's tests: run `vidcast`, start `vidcast serve` and read its log.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn vidcast() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vidcast"));
    cmd.env_remove("RUST_LOG");
    cmd
}

/// Runs to completion, killing it if it outlives `limit`.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vidcast");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("vidcast did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Runs `vidcast bench ... --json` (within a minute), which must succeed, and parses the one
/// JSON object it prints.
pub fn bench_json(cmd: &mut Command) -> serde_json::Value {
    let out = run(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

/// A `vidcast serve` child and the lines it logs.
pub struct Server {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
    }

    /// Starts `vidcast` with these arguments and follows its log.
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// Like [`Server::start_with`], with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = vidcast()
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stderr = child.stderr.take().expect("stderr");
        Self::follow(child, stderr)
    }

    /// Follows the lines `child` writes to `output` (one of its pipes); kills it on drop.
    pub fn follow(child: Child, output: impl std::io::Read + Send + 'static) -> Self {
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_line(&mut self, needle: &str, limit: Duration) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + limit;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
        panic!(
            "no log line with {needle:?} within {limit:?}; saw {:#?}",
            self.seen
        );
    }

    /// Waits until `count` log lines contain `needle` (for events that happen again, like a
    /// reconnection) and returns the last of them.
    pub fn wait_lines(&mut self, needle: &str, count: usize, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let seen: Vec<&String> = self.seen.iter().filter(|l| l.contains(needle)).collect();
            if seen.len() >= count {
                return seen[count - 1].clone();
            }
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "fewer than {count} log lines with {needle:?} within {limit:?}; saw {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Everything logged so far (after the child exited: everything it logged).
    #[allow(dead_code)] // not every test binary uses it
    pub fn log(&mut self) -> String {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    pub fn addr_after(&mut self, needle: &str) -> SocketAddr {
        let line = self.wait_line(needle, Duration::from_secs(10));
        let rest = &line[line.find(needle).expect("found") + needle.len()..];
        let addr: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/')
            .collect();
        addr.parse()
            .unwrap_or_else(|_| panic!("no address in {line:?}"))
    }
}

impl Server {
    /// Sends `signal` to the hub and waits (at most `limit`) for it to exit; returns its status.
    pub fn signal_and_wait(
        &mut self,
        signal: libc::c_int,
        limit: Duration,
    ) -> std::process::ExitStatus {
        // SAFETY: signalling a child we started, by its PID.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({signal}) failed");
        vidcast_testkit::wait_until(
            &format!("the process to stop after signal {signal}"),
            limit,
            || self.child.try_wait().expect("wait"),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn api(http: SocketAddr, path: &str) -> serde_json::Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(vidcast_testkit::http::get_json(
        http,
        path,
        Duration::from_secs(5),
    ))
    .expect("API answers")
}

/// A port free on 127.0.0.1 just now (for a hub that must come back on the same port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Pulls `count` frames of `url` with ffmpeg (`input_args` before its `-i`), decoded to RGB,
/// and reads the frame number the test pattern burns into each.
pub fn pull_frame_numbers(
    ffmpeg: &std::path::Path,
    input_args: &[&str],
    url: &str,
    width: u32,
    height: u32,
    count: usize,
) -> Vec<u32> {
    let mut child = std::process::Command::new(ffmpeg)
        .args(["-nostdin", "-v", "error"])
        .args(input_args)
        .args(["-i", url])
        // Each decoded picture once: no repeats to keep a constant output rate.
        .args(["-vsync", "passthrough"])
        .args([
            "-frames:v",
            &count.to_string(),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
        ])
        .arg("pipe:1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Megabytes of pictures: read them while ffmpeg writes, or it blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut bytes).map(|_| bytes)
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("ffmpeg did not pull {count} frames from {url} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = reader.join().unwrap().unwrap();
    let mut stderr = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
    let frame_len = (width * height * 3) as usize;
    assert!(
        status.success() && stdout.len() == count * frame_len,
        "ffmpeg pulled {} bytes from {url}, wanted {count} frames of {width}x{height}: {stderr}",
        stdout.len(),
    );
    stdout
        .chunks_exact(frame_len)
        .map(|rgb| {
            vidcast_media::read_frame_number(rgb, width, height)
                .expect("frame number strip readable")
        })
        .collect()
}

/// A scratch directory for one test of `kind`, emptied first.
pub fn scratch(kind: &str, test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vidcast-{kind}-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What ffprobe says about a file's video stream.
#[derive(Debug)]
pub struct Probe {
    pub codec: String,
    pub width: u64,
    pub height: u64,
    pub frames: u64,
    pub duration_s: Option<f64>,
}

pub fn ffprobe(path: &std::path::Path) -> Probe {
    let tool = vidcast_testkit::require_tool("ffprobe", "ffmpeg")
        .expect("ffprobe is needed to check recordings");
    let out = Command::new(tool)
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ])
        .args(["-show_entries", "format=duration", "-of", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &json["streams"][0];
    Probe {
        codec: s["codec_name"].as_str().unwrap_or_default().to_owned(),
        width: s["width"].as_u64().unwrap_or(0),
        height: s["height"].as_u64().unwrap_or(0),
        frames: s["nb_read_frames"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        duration_s: json["format"]["duration"]
            .as_str()
            .and_then(|d| d.parse().ok()),
    }
}
