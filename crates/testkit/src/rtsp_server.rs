//! A real RTSP server for tests: `scripts/rtsp-test-server` (GStreamer's gst-rtsp-server,
//! driven from Debian's /usr/bin/python3 with gi) serving H.264 frames that carry vidcast's
//! frame-number strip, on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's Python, which has gi (a virtualenv's on PATH may not).
const PYTHON: &str = "/usr/bin/python3";
/// What the server needs, for the skip/fail message.
const PACKAGES: &str = "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp \
                        gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly";

/// The script in this repository.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/rtsp-test-server")
}

/// A running `scripts/rtsp-test-server`; killed on drop.
pub struct RtspTestServer {
    daemon: crate::tools::Daemon,
    /// Its port on 127.0.0.1 (kept across [`RtspTestServer::restart`]).
    pub port: u16,
    /// Its path, `/test` unless asked.
    pub path: String,
    extra: Vec<String>,
}

impl RtspTestServer {
    /// Starts the server on a free port with `extra` arguments (`--fps 15`, `--user u
    /// --password p`), or `None` (a SKIPPED note; a panic under CI=true) when GStreamer's
    /// RTSP server is not installed.
    pub fn start(extra: &[&str]) -> Option<Self> {
        let probe = Command::new(PYTHON)
            .args([
                "-c",
                "import gi; gi.require_version('GstRtspServer', '1.0'); \
                 from gi.repository import Gst, GstRtspServer; Gst.init(None); \
                 assert Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('rtph264pay')",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !probe.is_ok_and(|s| s.success()) {
            return crate::tools::missing(&format!(
                "GStreamer's RTSP server is not installed for {PYTHON} (Debian packages: {PACKAGES}; scripts/test installs them)"
            ));
        }
        let mut server = Self {
            daemon: crate::tools::Daemon::default(),
            port: 0,
            path: "/test".into(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        server.spawn();
        Some(server)
    }

    /// `rtsp://127.0.0.1:PORT/PATH`.
    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}{}", self.port, self.path)
    }

    /// The same URL with credentials in it.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!(
            "rtsp://{user}:{password}@127.0.0.1:{}{}",
            self.port, self.path
        )
    }

    /// Kills the server (the camera dies).
    pub fn kill(&mut self) {
        self.daemon.kill();
    }

    /// Stops the server without closing its connections (the camera hangs).
    pub fn pause(&self) {
        self.daemon.signal(libc::SIGSTOP);
    }

    /// Lets a paused server go on.
    pub fn resume(&self) {
        self.daemon.signal(libc::SIGCONT);
    }

    /// Starts it again on the same port (the camera comes back); returns when it listens.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Starts the script and waits (up to 10 s) for its READY line.
    fn spawn(&mut self) {
        let mut child = Command::new(PYTHON)
            .arg(script())
            .args(["--port", &self.port.to_string(), "--path", &self.path])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start scripts/rtsp-test-server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("READY ") {
                        let port = url
                            .rsplit_once(':')
                            .and_then(|(_, rest)| rest.split('/').next())
                            .and_then(|p| p.parse().ok())
                            .expect("READY line has a port");
                        self.port = port;
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("rtsp-test-server did not say READY within 10 s");
                }
            }
        }
        self.daemon.hold(child);
    }
}
