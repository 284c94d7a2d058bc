//! `vidcast send --source …` with real files, stdin and (missing) cameras, to a real hub on
//! 127.0.0.1. Every video file is made by the test itself.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{api, run, vidcast, Server};

/// A fresh directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vidcast-sources-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_y4m(path: &Path, width: u32, height: u32, fps: usize, frames: u32) {
    let mut bytes = Vec::new();
    vidcast_media::source::write_test_y4m(&mut bytes, width, height, (fps, 1), frames).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// The stream called `name` in the hub's API, once it exists.
fn stream(http: std::net::SocketAddr, name: &str) -> Option<serde_json::Value> {
    api(http, "/api/streams")
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
}

/// Polls the hub until `check` accepts the stream called `name`.
fn wait_stream(
    http: std::net::SocketAddr,
    name: &str,
    limit: Duration,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let s = stream(http, name);
        if let Some(s) = s.as_ref().filter(|s| check(s)) {
            return s.clone();
        }
        assert!(
            Instant::now() < deadline,
            "stream {name} never got there: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn hub() -> (Server, String, std::net::SocketAddr) {
    let mut server = Server::start();
    let ingest = server.addr_after("hub listening for clients on ");
    let http = server.addr_after("web wall on http://");
    (server, ingest.to_string(), http)
}

/// Runs `vidcast send` to completion and checks it succeeded; returns its log.
fn send_ok(args: &[&str], limit: Duration) -> String {
    let out = run(vidcast().arg("send").args(args), limit);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "send failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// The stream ended with the source's goodbye: the hub logs "left (… video finished)", not
/// "lost", and has every frame.
fn assert_finished(server: &mut Server, http: std::net::SocketAddr, name: &str, frames: u64) {
    let line = server.wait_line(&format!("\"{name}\" left"), Duration::from_secs(5));
    assert!(line.contains("video finished"), "{line}");
    let s = stream(http, name).unwrap();
    assert_eq!(s["frames"].as_u64(), Some(frames), "{s}");
    assert_eq!(s["dropped"].as_u64(), Some(0), "{s}");
    assert_eq!(s["size_mismatches"], 0, "{s}");
}

/// Streams `file` to a fresh hub as `name` (with `extra` flags) and checks the hub got every
/// one of `frames` frames at `size`, ended by the source's goodbye; returns the sender's log.
fn play_file(name: &str, file: &Path, extra: &[&str], frames: u64, size: (u64, u64)) -> String {
    let (mut server, ingest, http) = hub();
    let path = file.display().to_string();
    let mut args = vec!["--name", name, "--no-reconnect", "--source", &path];
    args.extend_from_slice(extra);
    args.push(&ingest);
    let log = send_ok(&args, Duration::from_secs(30));
    assert_finished(&mut server, http, name, frames);
    let s = stream(http, name).unwrap();
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(size.0), Some(size.1)),
        "{s}"
    );
    log
}

/// Makes a video file of `frames` frames of ffmpeg's `testsrc2` pattern with `codec` flags.
fn ffmpeg_file(ffmpeg: &Path, file: &Path, pattern: &str, frames: u32, codec: &[&str]) {
    let made = Command::new(ffmpeg)
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            pattern,
        ])
        .args(["-frames:v", &frames.to_string()])
        .args(codec)
        .arg(file)
        .status()
        .unwrap();
    assert!(made.success(), "ffmpeg could not make {}", file.display());
}

#[test]
fn y4m_file_streams_every_frame_at_its_own_rate_then_says_goodbye() {
    let dir = scratch("y4m");
    let file = dir.join("clip.y4m");
    write_y4m(&file, 160, 120, 20, 40); // 2 s at 20 fps
    let (mut server, ingest, http) = hub();
    let args: Vec<String> = ["--name", "y4m-cam", "--no-reconnect", "--source"]
        .iter()
        .map(|s| s.to_string())
        .chain([file.display().to_string(), ingest])
        .collect();
    let sender = std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        send_ok(&args, Duration::from_secs(30))
    });
    // Mid-file the hub measures the file's own rate over its last second.
    let s = wait_stream(http, "y4m-cam", Duration::from_secs(10), |s| {
        s["frames"].as_u64() >= Some(30)
    });
    let fps = s["fps"].as_f64().unwrap();
    assert!((16.0..=24.0).contains(&fps), "hub measured {fps} fps: {s}");
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(160), Some(120))
    );
    let log = sender.join().unwrap();
    assert!(log.contains("video finished"), "{log}");
    assert_finished(&mut server, http, "y4m-cam", 40);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn loop_plays_the_file_again_and_width_alone_keeps_the_aspect_ratio() {
    let dir = scratch("loop");
    let file = dir.join("short.y4m");
    write_y4m(&file, 320, 240, 50, 10);
    let (mut server, ingest, http) = hub();
    let file = file.display().to_string();
    send_ok(
        &[
            "--name", "looper", "--loop", "--frames", "35", "--width", "160",
        ]
        .into_iter()
        .chain(["--no-reconnect", "--source", &file, &ingest])
        .collect::<Vec<_>>(),
        Duration::from_secs(30),
    );
    server.wait_line("\"looper\" left", Duration::from_secs(5));
    let s = stream(http, "looper").unwrap();
    let frames = s["frames"].as_u64().unwrap();
    assert!(frames > 10 && frames <= 35, "a 10-frame file looped: {s}");
    assert!(frames >= 30, "few frames lost on loopback: {s}");
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(160), Some(120))
    );
    assert_eq!(s["size_mismatches"], 0, "{s}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn h264_mp4_made_by_our_own_encoder_streams_every_frame() {
    let dir = scratch("mp4");
    let file = dir.join("clip.mp4");
    vidcast_media::source::write_test_mp4(&file, 176, 144, 25, 30).unwrap();
    let log = play_file("mp4-cam", &file, &[], 30, (176, 144));
    assert!(log.contains("H.264 MP4 176x144 @ 25.000 fps"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn y4m_on_stdin_from_ffmpeg_streams() {
    let Some(ffmpeg) = vidcast_testkit::require_tool("ffmpeg", "ffmpeg") else {
        return;
    };
    let (mut server, ingest, http) = hub();
    let mut producer = Command::new(ffmpeg)
        .args(["-nostdin", "-loglevel", "error", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=320x240:rate=30", "-frames:v", "60"])
        .args(["-f", "yuv4mpegpipe", "-"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = producer.stdout.take().unwrap();
    let out = run(
        vidcast()
            .args([
                "send",
                "--name",
                "piped",
                "--no-reconnect",
                "--source",
                "-",
                &ingest,
            ])
            .stdin(pipe),
        Duration::from_secs(30),
    );
    let _ = producer.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("stdin (Y4M 320x240 @ 30.000 fps)"),
        "{stderr}"
    );
    assert_finished(&mut server, http, "piped", 60);
    let s = stream(http, "piped").unwrap();
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(320), Some(240))
    );
}

#[test]
fn other_containers_play_through_ffmpeg() {
    let Some(ffmpeg) = vidcast_testkit::require_tool("ffmpeg", "ffmpeg") else {
        return;
    };
    let dir = scratch("avi");
    let file = dir.join("clip.avi");
    let pattern = "testsrc2=size=192x144:rate=15";
    ffmpeg_file(&ffmpeg, &file, pattern, 24, &["-c:v", "mjpeg", "-q:v", "5"]);
    let log = play_file("avi-cam", &file, &["--height", "96"], 24, (128, 96));
    assert!(log.contains("via ffmpeg (192x144 @ 15.000 fps)"), "{log}");
    // Looping starts a new ffmpeg per pass; every one is gone when send is.
    let (mut server, ingest, http) = hub();
    let path = file.display().to_string();
    let args = [
        "--name", "avi-loop", "--loop", "--frames", "40", "--source", &path, &ingest,
    ];
    send_ok(&args, Duration::from_secs(30));
    server.wait_line("\"avi-loop\" left", Duration::from_secs(5));
    let frames = stream(http, "avi-loop").unwrap()["frames"]
        .as_u64()
        .unwrap();
    assert!(frames > 24, "looped: {frames}");
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.starts_with("ffmpeg") && c.contains(&path))
        .collect();
    assert!(left.is_empty(), "ffmpeg children left running: {left:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn h264_with_b_frames_plays_through_ffmpeg() {
    let Some(ffmpeg) = vidcast_testkit::require_tool("ffmpeg", "ffmpeg") else {
        return;
    };
    let dir = scratch("x264");
    let file = dir.join("x264.mp4");
    // x264's defaults: High profile with B-frames, which OpenH264 cannot decode.
    let codec = ["-c:v", "libx264", "-bf", "2", "-pix_fmt", "yuv420p"];
    ffmpeg_file(&ffmpeg, &file, "testsrc2=size=160x120:rate=25", 30, &codec);
    let log = play_file("x264", &file, &[], 30, (160, 120));
    assert!(log.contains("B-frames"), "{log}");
    assert!(log.contains("via ffmpeg (160x120 @ 25.000 fps)"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_files_own_h264_is_sent_as_it_is() {
    let Some(ffmpeg) = vidcast_testkit::require_tool("ffmpeg", "ffmpeg") else {
        return;
    };
    let Some(ffprobe) = vidcast_testkit::require_tool("ffprobe", "ffmpeg") else {
        return;
    };
    let dir = scratch("passthrough");
    let file = dir.join("main.mp4");
    // Main profile (CABAC) without B-frames, a keyframe every 10 frames.
    let codec = [
        "-c:v",
        "libx264",
        "-profile:v",
        "main",
        "-bf",
        "0",
        "-g",
        "10",
        "-pix_fmt",
        "yuv420p",
    ];
    ffmpeg_file(&ffmpeg, &file, "testsrc2=size=160x120:rate=25", 60, &codec);
    let probe = Command::new(ffprobe)
        .args(["-v", "error", "-select_streams", "v"])
        .args(["-show_entries", "packet=size,flags", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    let packets = String::from_utf8(probe.stdout).unwrap();
    let (mut file_bytes, mut keyframes) = (0u64, 0u64);
    for line in packets.lines() {
        let (size, flags) = line.split_once(',').unwrap();
        file_bytes += size.parse::<u64>().unwrap();
        keyframes += u64::from(flags.starts_with('K'));
    }
    assert_eq!(keyframes, 6, "{packets}");

    let (mut server, ingest, http) = hub();
    let path = file.display().to_string();
    let args = [
        "--name",
        "pass",
        "--no-reconnect",
        "--codec",
        "h264",
        "--source",
        &path,
    ];
    let log = send_ok(
        &[&args[..], &[ingest.as_str()]].concat(),
        Duration::from_secs(30),
    );
    assert!(log.contains("sent as it is, without re-encoding"), "{log}");
    assert_finished(&mut server, http, "pass", 60);
    // Each NAL's 4-byte length became a 4-byte start code; each keyframe got the SPS and
    // PPS in front. A re-encoded stream would differ by far more.
    let hub_bytes = stream(http, "pass").unwrap()["bytes"].as_u64().unwrap();
    assert!(
        (file_bytes..=file_bytes + keyframes * 64).contains(&hub_bytes),
        "hub got {hub_bytes} bytes, the file's samples are {file_bytes}"
    );
    // The hub decodes it: its current picture, at the file's size.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, jpeg) = rt
        .block_on(vidcast_testkit::http::get(
            http,
            "/streams/1.jpg",
            Duration::from_secs(5),
        ))
        .unwrap();
    assert_eq!(status, 200);
    let picture = vidcast_media::decode_jpeg(&jpeg).unwrap();
    assert_eq!((picture.width, picture.height), (160, 120));
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs `vidcast send` expecting a failure; returns its one error line.
fn send_fails(args: &[&str]) -> String {
    let out = run(vidcast().arg("send").args(args), Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "should have failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    errors[0].to_owned()
}

#[test]
fn bad_files_are_one_line_errors_never_panics_or_hangs() {
    let dir = scratch("bad");
    let missing = dir.join("missing.y4m").display().to_string();
    let line = send_fails(&["--source", &missing, "127.0.0.1:1"]);
    assert!(
        line.contains("missing.y4m: No such file or directory"),
        "{line}"
    );

    let garbage = dir.join("garbage.y4m");
    std::fs::write(&garbage, vec![0x5a; 5000]).unwrap();
    let line = send_fails(&["--source", &garbage.display().to_string(), "127.0.0.1:1"]);
    assert!(line.contains("garbage.y4m: not Y4M"), "{line}");

    let line = send_fails(&["--source", "-", "--loop", "127.0.0.1:1"]);
    assert!(line.contains("--loop"), "{line}");

    // A file cut mid-frame plays what it has, then fails with the reason.
    let cut = dir.join("cut.y4m");
    write_y4m(&cut, 64, 64, 30, 3);
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let (_server, ingest, http) = hub();
    let line = send_fails(&[
        "--name",
        "cut",
        "--no-reconnect",
        "--source",
        &cut.display().to_string(),
        &ingest,
    ]);
    assert!(
        line.contains("cut.y4m: truncated: frame 2 is cut short"),
        "{line}"
    );
    let s = wait_stream(http, "cut", Duration::from_secs(5), |s| s["live"] == false);
    assert_eq!(s["frames"].as_u64(), Some(2), "{s}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_missing_camera_is_a_clear_error_and_devices_says_none() {
    let has_video = std::fs::read_dir("/dev")
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("video"));
    let line = send_fails(&["--source", "camera:57", "127.0.0.1:1"]);
    assert!(
        line.contains("camera /dev/video57: no such device"),
        "{line}"
    );
    assert!(line.contains("vidcast devices"), "{line}");
    let out = run(vidcast().arg("devices"), Duration::from_secs(20));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    if !has_video {
        // The machines this runs on have no camera: the honest answer is "none".
        assert_eq!(stdout.trim(), "no cameras found (/dev/video* absent)");
        let line = send_fails(&["--source", "camera", "127.0.0.1:1"]);
        assert!(line.contains("/dev/video* absent"), "{line}");
    }
}

#[test]
fn ctrl_c_says_goodbye_even_while_stdin_sends_nothing() {
    let (mut server, ingest, http) = hub();
    let mut child = vidcast()
        .args(["send", "--name", "quiet", "--source", "-", &ingest])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut y4m = Vec::new();
    vidcast_media::source::write_test_y4m(&mut y4m, 64, 64, (30, 1), 1).unwrap();
    std::io::Write::write_all(&mut stdin, &y4m).unwrap();
    // One frame arrived, so the capture thread now blocks reading a pipe that stays silent.
    wait_stream(http, "quiet", Duration::from_secs(10), |s| {
        s["frames"].as_u64() == Some(1)
    });
    let signalled = Instant::now();
    // SAFETY: signalling a child we started, by its PID.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let deadline = Instant::now() + Duration::from_secs(6);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "send hangs after Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let waited = signalled.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "the blocked read was not waited for: {waited:?}"
    );
    let line = server.wait_line("\"quiet\" left", Duration::from_secs(2));
    assert!(line.contains("publisher stopped"), "{line}");
    drop(stdin);
}
