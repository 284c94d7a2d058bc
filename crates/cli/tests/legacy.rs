//! The original Python project's scripts (`tests/legacy/`, copied from ../shared/seed with only
//! what a headless machine forces changed) against `vidcast send --legacy` and `vidcast serve`,
//! on 127.0.0.1 only.
//!
//! They need python3 with numpy, opencv-python-headless, imutils and (if it installs) pyshine;
//! `scripts/test` installs them. Under `CI=true` a missing one fails these tests; elsewhere
//! they print SKIPPED and pass.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{api, free_port, run, vidcast, Server};
use vidcast_media::{read_frame_number, ManualClock, TestPattern, TestPatternConfig};

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Fails under CI, else says loudly that the test did not run.
fn missing(what: &str) {
    assert!(
        !is_ci(),
        "CI needs {what} (scripts/test installs it); not skipping under CI=true"
    );
    eprintln!("SKIPPED: {what} is missing (scripts/test installs it)");
}

/// python3 able to run the original scripts: `None` (after [`missing`]) if it is not there.
struct OriginalPython {
    /// PYTHONPATH for the pyshine stand-in, when the real pyshine does not import.
    pythonpath: Option<PathBuf>,
}

impl OriginalPython {
    fn find() -> Option<Self> {
        let imports = |modules: &str| {
            Command::new("python3")
                .args(["-c", &format!("import {modules}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !imports("numpy, cv2, imutils") {
            missing("python3 with numpy, opencv-python-headless and imutils");
            return None;
        }
        let pythonpath = if imports("pyshine") {
            None
        } else {
            eprintln!(
                "NOTE: pyshine does not import; the scripts get tests/legacy/shim/pyshine.py"
            );
            Some(scripts_dir().join("shim"))
        };
        Some(Self { pythonpath })
    }

    /// `python3 -u tests/legacy/SCRIPT args...`, stderr merged into stdout.
    fn command(&self, script: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("exec python3 -u \"$@\" 2>&1")
            .arg("sh")
            .arg(scripts_dir().join(script))
            .args(args)
            .stdin(Stdio::null());
        if let Some(path) = &self.pythonpath {
            cmd.env("PYTHONPATH", path);
        }
        cmd
    }

    /// The headless original server on 127.0.0.1:`port` (0: any), saving frames into `dir`;
    /// returns it and its port.
    fn start_server(&self, port: u16, dir: &Path) -> (Server, u16) {
        let mut child = self
            .command(
                "original_server.py",
                &[&port.to_string(), dir.to_str().unwrap()],
            )
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn python3");
        let stdout = child.stdout.take().unwrap();
        let mut server = Server::follow(child, stdout);
        let line = server.wait_line("Listening at", Duration::from_secs(30));
        // Listening at ('127.0.0.1', 40123)
        let port = line
            .rsplit(", ")
            .next()
            .and_then(|p| p.trim_end_matches(')').parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        (server, port)
    }
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/legacy")
}

/// An empty folder of this test's own.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vidcast-legacy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Checks that `bgr`, as the original server unpickled it, is the test pattern vidcast renders
/// for the frame number it carries, and returns that number. The format is lossless, so every
/// pixel must match, except the burnt-in capture time (not known here): those may differ, but
/// only between the text's two colours.
fn assert_is_test_pattern(bgr: &[u8], width: u32, height: u32, label: &str) -> u32 {
    assert_eq!(bgr.len(), (width * height * 3) as usize, "frame size");
    let rgb: Vec<u8> = bgr
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    let seq = read_frame_number(&rgb, width, height).expect("frame number strip reads");
    let mut pattern = TestPattern::new(
        TestPatternConfig {
            width,
            height,
            fps: 5.0,
            label: label.to_owned(),
            paced: false,
        },
        Arc::new(ManualClock::new(0)),
    )
    .unwrap();
    let expected = pattern.render(u64::from(seq), 0).data;
    let text_colours: [&[u8]; 2] = [&[255, 255, 255], &[24, 24, 24]];
    let mut differing = 0;
    for (i, (got, want)) in rgb.chunks(3).zip(expected.chunks(3)).enumerate() {
        if got != want {
            differing += 1;
            assert!(
                text_colours.contains(&got) && text_colours.contains(&want),
                "frame {seq} pixel ({}, {}): got RGB {got:?}, vidcast rendered {want:?}",
                i as u32 % width,
                i as u32 / width
            );
        }
    }
    assert!(
        differing < (width * height / 50) as usize,
        "frame {seq}: {differing} pixels differ, more than the time line covers"
    );
    seq
}

#[test]
fn send_legacy_reaches_the_original_server_pixel_exact() {
    let Some(python) = OriginalPython::find() else {
        return;
    };
    let dir = scratch_dir("exact");
    let (mut server, port) = python.start_server(0, &dir);
    let out = run(
        vidcast()
            .args(["send", "--legacy", &format!("127.0.0.1:{port}")])
            .args(["--width", "160", "--height", "120", "--fps", "5"])
            .args(["--frames", "6", "--name", "old-friend", "--no-reconnect"]),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "send --legacy failed: {stderr}");
    assert!(
        stderr.contains("video finished; captured 6, sent 6, dropped 0"),
        "{stderr}"
    );

    // The server unpickled every frame as the original does, then saw the stream end between
    // frames (a cut frame would leave it spinning in its inner recv loop instead).
    server.wait_line("DISCONNECTED", Duration::from_secs(30));
    let mut last_seq = None;
    for n in 1..=6 {
        let line = server.wait_line(&format!("RECORD {n} "), Duration::from_secs(1));
        assert!(line.contains("shape=(120, 160, 3) dtype=uint8"), "{line}");
        let bgr = std::fs::read(dir.join(format!("frame-{n}.bgr"))).unwrap();
        let seq = assert_is_test_pattern(&bgr, 160, 120, "old-friend");
        assert!(
            last_seq < Some(seq),
            "frame numbers go forward: {last_seq:?} then {seq}"
        );
        last_seq = Some(seq);
    }
    assert!(
        !dir.join("frame-7.bgr").exists(),
        "the server got more frames than were sent"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn send_legacy_to_a_closed_port_says_what_to_do() {
    let port = free_port();
    let out = run(
        vidcast().args([
            "send",
            "--legacy",
            "--no-reconnect",
            &format!("127.0.0.1:{port}"),
        ]),
        Duration::from_secs(15),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(&format!("cannot connect to 127.0.0.1:{port}"))
            && stderr.contains("start the original server.py"),
        "{stderr}"
    );
}

#[test]
fn send_legacy_waits_for_the_server_and_stops_cleanly_on_sigterm() {
    let Some(python) = OriginalPython::find() else {
        return;
    };
    let dir = scratch_dir("sigterm");
    let port = free_port();
    let mut child = vidcast()
        .args(["send", "--legacy", &format!("127.0.0.1:{port}")])
        .args(["--width", "160", "--height", "120", "--fps", "20"])
        .args(["--name", "patient", "--max-backoff", "200ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut sender = Server::follow(child, stderr);
    sender.wait_line("reconnecting with backoff", Duration::from_secs(30));

    let (mut server, _) = python.start_server(port, &dir);
    server.wait_line("RECORD 3 ", Duration::from_secs(30));
    sender.wait_line(
        &format!("connected to 127.0.0.1:{port}"),
        Duration::from_secs(1),
    );

    // SAFETY: signalling a child we started, by its PID.
    let rc = unsafe { libc::kill(sender.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = sender.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "send did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "send exited with {status}");
    let summary = sender.wait_line("legacy stream to", Duration::from_secs(5));
    assert!(
        summary.contains("after 1 connection(s): stopped"),
        "{summary}"
    );
    // The frame in flight was finished before closing: the original server ends cleanly.
    server.wait_line("DISCONNECTED", Duration::from_secs(30));
    let bgr = std::fs::read(dir.join("frame-2.bgr")).unwrap();
    assert_is_test_pattern(&bgr, 160, 120, "patient");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs a tool that must be there under CI; `None` (after [`missing`]) if it is not.
fn tool_output(cmd: &mut Command) -> Option<String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    match cmd.output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{program} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Err(e) => {
            missing(&format!("{program} ({e})"));
            None
        }
    }
}

#[test]
fn the_original_client_streams_a_video_file_to_the_hub() {
    let Some(python) = OriginalPython::find() else {
        return;
    };
    let dir = scratch_dir("client");
    let video = dir.join("testsrc.mp4");
    let video = video.to_str().unwrap();
    let made = tool_output(
        Command::new("ffmpeg")
            .args("-v error -f lavfi -i testsrc=size=640x480:rate=30 -t 2".split(' '))
            .args(["-pix_fmt", "yuv420p", video]),
    );
    if made.is_none() {
        return;
    }
    let counted = tool_output(
        Command::new("ffprobe")
            .args("-v error -count_frames -select_streams v:0".split(' '))
            .args("-show_entries stream=nb_read_frames -of csv=p=0".split(' '))
            .arg(video),
    )
    .unwrap();
    let frames_in_file: u64 = counted.trim().parse().unwrap();

    let mut hub = Server::start();
    let ingest = hub.addr_after("hub listening for clients on ");
    let http = hub.addr_after("web wall on http://");
    let out = run(
        &mut python.command("original_client.py", &[video, &ingest.port().to_string()]),
        Duration::from_secs(120),
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "client.py failed: {said}");
    assert!(said.contains("VIDEO FINISHED!"), "{said}");

    // imutils.resize(frame, width=380) keeps the aspect: 480 * 380 / 640 = 285.
    assert_legacy_stream_ended(&mut hub, http, (380, 285), frames_in_file);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn send_legacy_to_a_hub_is_listed_as_legacy() {
    let mut hub = Server::start();
    let ingest = hub.addr_after("hub listening for clients on ");
    let http = hub.addr_after("web wall on http://");
    let out = run(
        vidcast()
            .args(["send", "--legacy", &ingest.to_string(), "--no-reconnect"])
            .args([
                "--width", "160", "--height", "120", "--fps", "10", "--frames", "10",
            ]),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "send --legacy failed: {stderr}");
    assert!(stderr.contains("captured 10, sent 10"), "{stderr}");
    assert_legacy_stream_ended(&mut hub, http, (160, 120), 10);
}

/// Waits for the hub to see the legacy client from 127.0.0.1 leave, then checks its stream in
/// `/api/streams`: marked legacy, transcoded to JPEG, `size`, and every one of the `sent`
/// frames arrived (the hub transcodes the newest picture and counts the ones a newer one
/// replaced meanwhile as dropped).
fn assert_legacy_stream_ended(hub: &mut Server, http: SocketAddr, size: (u64, u64), sent: u64) {
    hub.wait_line("legacy@127.0.0.1\" disconnected", Duration::from_secs(30));
    let streams = api(http, "/api/streams");
    let s = streams
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "legacy@127.0.0.1")
        .unwrap_or_else(|| panic!("no legacy stream in {streams}"));
    assert_eq!(
        (&s["legacy"], &s["codec"]),
        (&true.into(), &"jpeg".into()),
        "{s}"
    );
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(size.0), Some(size.1)),
        "{s}"
    );
    let (frames, dropped) = (
        s["frames"].as_u64().unwrap(),
        s["dropped"].as_u64().unwrap(),
    );
    assert!(frames >= 1 && frames + dropped == sent, "{sent} sent: {s}");
}
