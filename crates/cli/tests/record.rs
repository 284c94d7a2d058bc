//! `serve --record`: real hubs and `vidcast send` clients on 127.0.0.1, every file checked by
//! ffprobe (required: under CI=true a missing ffprobe fails these tests).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{api, ffprobe, vidcast, Server};

/// A scratch directory for one test, emptied first.
fn scratch(test: &str) -> PathBuf {
    common::scratch("record", test)
}

/// `vidcast send` in the background, killed on drop.
struct Sender(Child);

impl Sender {
    fn start(ingest: SocketAddr, name: &str, extra: &[&str]) -> Self {
        let child = vidcast()
            .args([
                "send", "--name", name, "--width", "160", "--height", "120", "--fps", "30",
            ])
            .args(extra)
            .arg(ingest.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }

    fn wait(&mut self, limit: Duration) -> bool {
        vidcast_testkit::wait_until("the sender to finish", limit, || self.0.try_wait().unwrap())
            .success()
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Matroska file closed cleanly has its segment size patched in (a cut one keeps the
/// "unknown size" it started with).
fn assert_finished_mkv(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let unknown_size = [
        0x18, 0x53, 0x80, 0x67, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    assert!(
        !bytes.windows(unknown_size.len()).any(|w| w == unknown_size),
        "{} was not finished",
        path.display()
    );
}

/// The recordings under `dir/<stream>`, oldest first (names are UTC start times).
fn files(dir: &Path, stream: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(stream))
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    // In time order: a second file started within the same second has a "-1" suffix.
    files.sort_by_key(|path| path.to_string_lossy().replace("Z.", "Z-0."));
    files
}

/// Polls `check` until it holds or `limit` passes.
fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    vidcast_testkit::wait_until(what, limit, || check().then_some(()));
}

/// Polls `/api/streams` until it lists `count` streams and `check` holds for each.
fn wait_streams(
    http: SocketAddr,
    count: usize,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) {
    wait_until(Duration::from_secs(20), what, || {
        let streams = api(http, "/api/streams");
        streams
            .as_array()
            .is_some_and(|s| s.len() == count && s.iter().all(&check))
    });
}

/// Sends one HTTP/1.1 request (`head` without Host and Connection) and returns the status
/// code and body.
fn request(http: SocketAddr, head: &str, body: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "{head}\r\nHost: {http}\r\nConnection: close\r\n\r\n{body}"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (code, body)
}

/// `GET path` as text (for `/metrics`).
fn get_text(http: SocketAddr, path: &str) -> String {
    let (code, body) = request(http, &format!("GET {path} HTTP/1.1"), "");
    assert_eq!(code, 200, "{path}: {body}");
    body
}

/// `POST path` with a JSON body; returns the status code and body.
fn post_json(http: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}",
        body.len()
    );
    request(http, &head, body)
}

fn serve_recording(dir: &Path, extra: &[&str]) -> (Server, SocketAddr, SocketAddr) {
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--record",
    ];
    args.push(dir.to_str().unwrap());
    args.extend_from_slice(extra);
    let mut server = Server::start_with(&args);
    let ingest = server.addr_after("hub listening for clients on ");
    let http = server.addr_after("web wall on http://");
    (server, ingest, http)
}

#[test]
fn three_clients_are_recorded_in_segments_that_ffprobe_plays() {
    let dir = scratch("segments");
    let (mut server, ingest, http) = serve_recording(&dir, &["--segment", "2s"]);
    let frames = "150"; // 5 s at 30 fps: two or three 2 s segments each
    let mut senders = [
        Sender::start(
            ingest,
            "jpeg-a",
            &["--frames", frames, "--codec", "jpeg", "--no-adapt"],
        ),
        Sender::start(
            ingest,
            "cam b/ü",
            &["--frames", frames, "--codec", "jpeg", "--no-adapt"],
        ),
        Sender::start(
            ingest,
            "h264-c",
            &["--frames", frames, "--codec", "h264", "--keyint", "1s"],
        ),
    ];
    wait_streams(http, 3, "recording shown in the API", |s| {
        s["recording"]["on"] == true && s["recording"]["file"].is_string()
    });
    for s in &mut senders {
        assert!(s.wait(Duration::from_secs(30)), "a sender failed");
    }
    for name in ["jpeg-a", "cam b/ü", "h264-c"] {
        server.wait_line(
            &format!("recording {name:?} closed"),
            Duration::from_secs(10),
        );
    }
    for (stream, codec, ext) in [
        ("jpeg-a", "mjpeg", "mkv"),
        ("cam_b__", "mjpeg", "mkv"),
        ("h264-c", "h264", "mp4"),
    ] {
        let segments = files(&dir, stream);
        assert!(segments.len() >= 2, "{stream}: {segments:?}");
        let mut total = 0;
        for (index, path) in segments.iter().enumerate() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // 2026-11-24T13-05-00Z.mkv
            assert!(
                name.ends_with(&format!("Z.{ext}")) && name.len() == 24,
                "{name}"
            );
            let probe = ffprobe(path);
            assert_eq!(
                (probe.codec.as_str(), probe.width, probe.height),
                (codec, 160, 120),
                "{name}: {probe:?}"
            );
            assert!(probe.frames > 0, "{name}: {probe:?}");
            let duration = probe.duration_s.unwrap_or(0.0);
            // The last one ends with the stream, possibly just after a keyframe rolled it
            // (an adapting H.264 publisher's keyframes follow its rate changes).
            let shortest = if index + 1 == segments.len() {
                0.0
            } else {
                1.5
            };
            assert!(
                duration > shortest && duration <= 3.5,
                "{name}: segment {index} of {duration} s"
            );
            total += probe.frames;
            if ext == "mkv" {
                assert_finished_mkv(path);
            }
        }
        // Capture-to-recording loses nothing on loopback but the frames before a keyframe.
        assert!(
            (120..=150).contains(&total),
            "{stream}: {total} frames of 150 recorded"
        );
    }
    let status = server.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
    assert!(status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_hub_killed_mid_segment_leaves_files_that_play_to_their_last_fragment() {
    let dir = scratch("kill9");
    let (mut server, ingest, http) = serve_recording(&dir, &["--segment", "10m"]);
    let _jpeg = Sender::start(ingest, "cut-jpeg", &["--codec", "jpeg", "--no-adapt"]);
    let _h264 = Sender::start(ingest, "cut-h264", &["--codec", "h264", "--keyint", "1s"]);
    // 90 frames handed to the muxers: all but the last fragment (at most 1 s) are on disk.
    wait_streams(http, 2, "90 frames recorded per stream", |s| {
        s["recording"]["frames"].as_u64().unwrap_or(0) >= 90
    });
    server.child.kill().unwrap(); // SIGKILL: no chance to finish the files
    server.child.wait().unwrap();
    for (stream, codec) in [("cut-jpeg", "mjpeg"), ("cut-h264", "h264")] {
        let segments = files(&dir, stream);
        assert_eq!(segments.len(), 1, "{segments:?}");
        if codec == "mjpeg" {
            let bytes = std::fs::read(&segments[0]).unwrap();
            assert!(
                bytes
                    .windows(5)
                    .any(|w| w == [0x18, 0x53, 0x80, 0x67, 0x01]),
                "cut: size unknown"
            );
        }
        let probe = ffprobe(&segments[0]);
        assert_eq!(probe.codec, codec);
        assert!(
            probe.frames >= 30,
            "{stream}: only {} frames play",
            probe.frames
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn retention_deletes_the_oldest_and_the_api_turns_recording_off_and_on() {
    let dir = scratch("retention");
    let (mut server, ingest, http) = serve_recording(&dir, &["--segment", "1s", "--keep", "150KB"]);
    let _sender = Sender::start(ingest, "kept", &["--codec", "jpeg", "--no-adapt"]);
    let first = {
        let mut first = None;
        wait_until(Duration::from_secs(10), "a first segment", || {
            first = files(&dir, "kept").first().cloned();
            first.is_some()
        });
        first.unwrap()
    };
    wait_until(
        Duration::from_secs(20),
        "the oldest segment deleted",
        || !first.exists(),
    );
    server.wait_line(
        "old recordings (keep 150.0 kB in all)",
        Duration::from_secs(1),
    );
    let total: u64 = files(&dir, "kept")
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    assert!(total < 400_000, "{total} bytes kept with --keep 150KB");

    let id = api(http, "/api/streams")[0]["id"].as_u64().unwrap();
    let (code, body) = post_json(
        http,
        &format!("/api/streams/{id}/record"),
        r#"{"on":false}"#,
    );
    assert_eq!(code, 200, "{body}");
    server.wait_line("recording \"kept\" closed", Duration::from_secs(5));
    let state = &api(http, "/api/streams")[0]["recording"];
    assert_eq!(
        (state["on"].as_bool(), state["file"].as_str()),
        (Some(false), None),
        "{state}"
    );
    let (code, _) = post_json(http, &format!("/api/streams/{id}/record"), r#"{"on":true}"#);
    assert_eq!(code, 200);
    wait_until(Duration::from_secs(5), "recording again", || {
        api(http, "/api/streams")[0]["recording"]["file"].is_string()
    });
    // The recording's counters are in /metrics too (frames and segments follow the file
    // name by a moment).
    let value = |family: &str| -> u64 {
        let metrics = get_text(http, "/metrics");
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("{family}{{")) && l.contains("name=\"kept\""))
            .unwrap_or_else(|| panic!("no {family} in /metrics:\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    wait_until(Duration::from_secs(5), "frames in /metrics", || {
        value("vidcast_recording_frames_total") > 0
    });
    assert!(value("vidcast_recording_segments_total") >= 1);
    assert!(value("vidcast_recording_bytes_total") > 0);
    assert_eq!(value("vidcast_recording_failing"), 0);
    assert_eq!(
        post_json(http, "/api/streams/999/record", r#"{"on":true}"#).0,
        404
    );

    // SIGTERM while recording: the open file is finished (its duration patched in).
    let status = server.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
    assert!(status.success());
    let last = files(&dir, "kept").pop().unwrap();
    assert_finished_mkv(&last);
    let probe = ffprobe(&last);
    assert!(
        probe.frames > 0 && probe.duration_s.is_some_and(|d| d > 0.0),
        "{probe:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unwritable_directory_is_logged_while_streaming_goes_on() {
    let dir = scratch("unwritable");
    // A file where a directory should be: fails even for root, unlike permissions.
    let blocker = dir.join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let record_dir = blocker.join("rec");
    let (mut server, ingest, http) = serve_recording(&record_dir, &[]);
    server.wait_line(
        "cannot create the recording directory",
        Duration::from_secs(5),
    );
    let mut sender = Sender::start(
        ingest,
        "no-disk",
        &["--frames", "60", "--codec", "jpeg", "--no-adapt"],
    );
    let line = server.wait_line("recording \"no-disk\" (stream", Duration::from_secs(10));
    assert!(
        line.contains("failed") && line.contains("not-a-dir/rec/no-disk"),
        "{line}"
    );
    assert!(line.contains("live streaming goes on"), "{line}");
    assert!(sender.wait(Duration::from_secs(20)));
    let streams = api(http, "/api/streams");
    assert!(streams[0]["frames"].as_u64().unwrap() >= 55, "{streams}");
    assert!(
        streams[0]["recording"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("not-a-dir")),
        "{streams}"
    );
    let events = api(http, "/api/events");
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "record_error" && e["name"] == "no-disk"),
        "{events}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_record_flags_say_what_is_wrong() {
    for (args, expected) in [
        (vec!["--record", "/tmp/x", "--segment", "10ms"], "too short"),
        (
            vec!["--record", "/tmp/x", "--keep", "7 parsecs"],
            "invalid --keep value",
        ),
        (vec!["--segment", "5s"], "--record"),
    ] {
        let out = common::run(vidcast().arg("serve").args(&args), Duration::from_secs(10));
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let help = common::run(vidcast().args(["serve", "--help"]), Duration::from_secs(10));
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--record <DIR>", "--segment", "--keep <AGE|SIZE>"] {
        assert!(help.contains(flag), "{help}");
    }
}

#[test]
fn a_client_that_reconnects_starts_a_new_file() {
    let dir = scratch("reconnect");
    let (_server, ingest, http) = serve_recording(&dir, &[]);
    for _ in 0..2 {
        let mut sender = Sender::start(
            ingest,
            "again",
            &["--frames", "20", "--codec", "jpeg", "--no-adapt"],
        );
        assert!(sender.wait(Duration::from_secs(20)));
    }
    // Both connections may start within one second: the second file gets a "-1" suffix.
    wait_until(Duration::from_secs(10), "two closed files", || {
        let closed = api(http, "/api/streams")[0]["recording"]["file"].is_null();
        closed && files(&dir, "again").len() == 2
    });
    for path in files(&dir, "again") {
        assert_finished_mkv(&path);
        let probe = ffprobe(&path);
        assert_eq!(
            (probe.codec.as_str(), probe.frames),
            ("mjpeg", 20),
            "{path:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `bench --codec h264 --record` (the figure of `CODEC=h264 scripts/bench-record`) records
/// what its publishers send, pre-encoded in a loop or encoded by `vidcast send` processes.
#[test]
fn bench_with_h264_publishers_records_files_that_ffprobe_plays() {
    for mode in ["pre-encoded", "encode"] {
        let dir = scratch(&format!("bench-{mode}"));
        let mut args = vec![
            "bench",
            "--clients",
            "2",
            "--codec",
            "h264",
            "--width",
            "320",
            "--height",
            "240",
            "--duration",
            "2s",
            "--warmup",
            "500ms",
            "--json",
        ];
        if mode == "encode" {
            args.push("--encode");
        }
        let json = common::bench_json(vidcast().args(&args).arg("--record").arg(&dir));
        // --encode runs `vidcast send` processes named enc-CODEC-N and reports per codec.
        let names = if mode == "encode" {
            let run = &json["codecs"][0];
            assert_eq!(run["codec"].as_str(), Some("h264"), "{json}");
            assert!(
                run["frames_delivered"].as_u64().unwrap_or(0) > 2 * 20,
                "{json}"
            );
            ["enc-h264-1", "enc-h264-2"]
        } else {
            assert_eq!(
                (json["codec"].as_str(), json["mode"].as_str()),
                (Some("h264"), Some(mode))
            );
            assert!(
                json["fps_per_client_min"].as_f64().unwrap_or(0.0) > 10.0,
                "{json}"
            );
            ["bench-1", "bench-2"]
        };
        for stream in names {
            let recorded = files(&dir, stream);
            assert_eq!(recorded.len(), 1, "{mode} {stream}: {recorded:?}");
            let probe = ffprobe(&recorded[0]);
            assert_eq!(
                (probe.codec.as_str(), probe.width, probe.height),
                ("h264", 320, 240),
                "{mode} {stream}: {probe:?}"
            );
            // 2.5 s at 30 fps, less the warm-up before the first keyframe reached the hub.
            assert!(probe.frames >= 40, "{mode} {stream}: {probe:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `--record-only` records the streams whose names match; the API turns another one on.
#[test]
fn record_only_records_matching_names_and_the_api_adds_others() {
    let dir = scratch("only");
    let (mut server, ingest, http) = serve_recording(&dir, &["--record-only", "cam-*"]);
    server.wait_line("recording streams named cam-*", Duration::from_secs(5));
    let _kitchen = Sender::start(ingest, "cam-kitchen", &["--codec", "jpeg", "--no-adapt"]);
    let _pi = Sender::start(ingest, "pi-door", &["--codec", "jpeg", "--no-adapt"]);
    wait_streams(http, 2, "both streams live", |s| s["live"] == true);
    wait_until(Duration::from_secs(10), "cam-kitchen recorded", || {
        !files(&dir, "cam-kitchen").is_empty()
    });
    let streams = api(http, "/api/streams");
    let pi = streams
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "pi-door")
        .unwrap();
    assert_eq!(pi["recording"]["on"], false, "{pi}");
    assert!(files(&dir, "pi-door").is_empty());
    let id = pi["id"].as_u64().unwrap();
    let (code, body) = post_json(http, &format!("/api/streams/{id}/record"), r#"{"on":true}"#);
    assert_eq!(code, 200, "{body}");
    wait_until(
        Duration::from_secs(10),
        "pi-door recorded once asked",
        || !files(&dir, "pi-door").is_empty(),
    );
    let state = request(http, &format!("GET /api/streams/{id}/record HTTP/1.1"), "").1;
    assert!(state.contains(r#""on":true"#), "{state}");
    let _ = std::fs::remove_dir_all(&dir);
}
