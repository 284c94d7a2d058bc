//! RTSP cameras into the hub, against a real RTSP server (GStreamer's, driven by
//! `scripts/rtsp-test-server`) on 127.0.0.1: `vidcast send --source rtsp://…` and
//! `vidcast serve --pull NAME=rtsp://…` publish its H.264 as it is, and the pull resumes
//! within 3 s of the camera's return after it was killed.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{api, vidcast, Server};
use vidcast_testkit::{wait_until, RtspTestServer};

/// A child killed on drop.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The stream named `name` in the hub's API, once it is live with more than `frames`.
fn stream_with_frames(
    http: SocketAddr,
    name: &str,
    frames: u64,
    limit: Duration,
) -> serde_json::Value {
    wait_until(&format!("{name} past {frames} frames"), limit, || {
        api(http, "/api/streams")
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name && s["live"] == true)
            .filter(|s| s["frames"].as_u64().unwrap_or(0) > frames)
            .cloned()
    })
}

/// What a pulled 640x480 30 fps camera looks like on the hub: its own H.264, nothing lost,
/// nothing out of order.
fn check_camera_stream(s: &serde_json::Value) {
    assert_eq!(s["codec"], "h264", "{s}");
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(640), Some(480)),
        "{s}"
    );
    assert_eq!(s["fps_nominal"].as_f64(), Some(30.0), "{s}");
    assert_eq!(s["out_of_order"].as_u64(), Some(0), "{s}");
    assert_eq!(s["size_mismatches"].as_u64(), Some(0), "{s}");
}

#[test]
fn send_publishes_an_rtsp_cameras_own_h264() {
    let Some(camera) = RtspTestServer::start(&[]) else {
        return;
    };
    let mut server = Server::start();
    let ingest = server.addr_after("hub listening for clients on ");
    let http = server.addr_after("web wall on http://");
    let _sender = Kill(
        vidcast()
            .args(["send", "--source", &camera.url(), "--name", "door"])
            .arg(ingest.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let s = stream_with_frames(http, "door", 60, Duration::from_secs(20));
    check_camera_stream(&s);
    assert!(!server.log().contains("panicked"));
}

#[test]
fn serve_pull_publishes_a_camera_goes_offline_when_it_dies_and_resumes_within_3_s_of_its_return() {
    let Some(mut camera) = RtspTestServer::start(&[]) else {
        return;
    };
    let pull = format!("yard={}", camera.url());
    let mut server = Server::start_with(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--pull",
        &pull,
    ]);
    let http = server.addr_after("web wall on http://");
    let s = stream_with_frames(http, "yard", 30, Duration::from_secs(20));
    check_camera_stream(&s);
    let id = s["id"].as_u64().unwrap();
    let events = api(http, "/api/events");
    assert!(events.to_string().contains("yard"), "{events}");

    // The camera dies: the stream goes offline like a publisher that left, within the
    // hub's 3 s dead-peer deadline.
    camera.kill();
    let died = Instant::now();
    server.wait_line("\"yard\" left", Duration::from_secs(3));
    server.wait_line("the camera is down", Duration::from_secs(1));
    let offline = wait_until("yard offline in the API", Duration::from_secs(1), || {
        let streams = api(http, "/api/streams");
        let s = streams.as_array().unwrap().iter().find(|s| s["id"] == id)?;
        (s["live"] == false).then(|| s.clone())
    });
    assert!(
        died.elapsed() < Duration::from_secs(3),
        "{:?}",
        died.elapsed()
    );
    let before = offline["frames"].as_u64().unwrap();
    let last_event = |kind: &str| {
        api(http, "/api/events")
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|e| e["name"] == "yard")
            .filter(|e| e["kind"] == kind)
            .cloned()
    };
    assert!(last_event("disconnected").is_some(), "a disconnect event");

    // It comes back: same name, same stream, a "connected" event, frames again within 3 s.
    camera.restart();
    let back = Instant::now();
    let s = stream_with_frames(http, "yard", before + 5, Duration::from_secs(3));
    eprintln!(
        "frames again {:?} after the camera's return",
        back.elapsed()
    );
    check_camera_stream(&s);
    assert_eq!(s["id"].as_u64(), Some(id), "{s}");
    assert!(last_event("connected").is_some(), "a connect event");
    assert!(!server.log().contains("panicked"));
}

/// `vidcast serve --rtsp` on 127.0.0.1 with `--http` at `http` (`"off"` or an address) and
/// `extra` flags.
fn serve_rtsp(http_and_extra: &[&str]) -> Server {
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--rtsp",
        "127.0.0.1:0",
        "--http",
    ];
    args.extend_from_slice(http_and_extra);
    Server::start_with(&args)
}

/// The RTSP address `serve --rtsp` logged.
fn rtsp_addr(server: &mut Server) -> SocketAddr {
    server.addr_after("RTSP on rtsp://")
}

/// A `vidcast send` of the test pattern, killed on drop.
fn sender(ingest: SocketAddr, name: &str, extra: &[&str]) -> Kill {
    Kill(
        vidcast()
            .args(["send", "--name", name])
            .args(extra)
            .arg(ingest.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Frame numbers never going back and moving on (ffmpeg may repeat a picture to keep its
/// output rate constant; a player may skip some).
fn check_increasing(numbers: &[u32]) {
    assert!(
        numbers.windows(2).all(|w| w[1] >= w[0]),
        "frame numbers went back: {numbers:?}"
    );
    let distinct = numbers.windows(2).filter(|w| w[1] > w[0]).count();
    assert!(
        distinct * 10 >= (numbers.len() - 1) * 9,
        "too many repeated pictures: {numbers:?}"
    );
}

#[test]
fn serve_rtsp_gives_ffmpeg_h264_and_jpeg_publishers_by_name_and_id() {
    let Some(ffmpeg) = vidcast_testkit::require_tool("ffmpeg", "ffmpeg") else {
        return;
    };
    let Some(ffprobe) = vidcast_testkit::require_tool("ffprobe", "ffmpeg") else {
        return;
    };
    let mut server = serve_rtsp(&["127.0.0.1:0"]);
    let rtsp = rtsp_addr(&mut server);
    let ingest = server.addr_after("hub listening for clients on ");
    let http = server.addr_after("web wall on http://");
    let _h264 = sender(ingest, "cam-h264", &["--width", "320", "--height", "240"]);
    let _jpeg = sender(
        ingest,
        "cam-jpeg",
        &["--codec", "jpeg", "--width", "320", "--height", "240"],
    );
    let jpeg_id = stream_with_frames(http, "cam-jpeg", 10, Duration::from_secs(20))["id"]
        .as_u64()
        .unwrap();
    stream_with_frames(http, "cam-h264", 10, Duration::from_secs(20));
    for path in ["cam-h264".to_owned(), jpeg_id.to_string()] {
        let url = format!("rtsp://{rtsp}/{path}");
        let probe = common::run(
            std::process::Command::new(&ffprobe).args([
                "-v",
                "error",
                "-rtsp_transport",
                "tcp",
                "-show_entries",
                "stream=codec_name,width,height",
                "-of",
                "csv=p=0",
                &url,
            ]),
            Duration::from_secs(20),
        );
        assert_eq!(
            String::from_utf8_lossy(&probe.stdout).trim(),
            "h264,320,240",
            "{url}"
        );
        // Two players at once: counted per stream; a JPEG stream is encoded once for both.
        let players: Vec<_> = (0..2)
            .map(|_| {
                let (ffmpeg, url) = (ffmpeg.clone(), url.clone());
                std::thread::spawn(move || {
                    common::pull_frame_numbers(
                        &ffmpeg,
                        &["-rtsp_transport", "tcp", "-timeout", "10000000"],
                        &url,
                        320,
                        240,
                        60,
                    )
                })
            })
            .collect();
        let name = if path == "cam-h264" {
            "cam-h264"
        } else {
            "cam-jpeg"
        };
        let s = wait_until("2 RTSP readers in the API", Duration::from_secs(20), || {
            api(http, "/api/streams")
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == name && s["rtsp"]["readers"] == 2)
                .cloned()
        });
        assert_eq!(s["rtsp"]["transcoding"], name == "cam-jpeg", "{s}");
        for player in players {
            check_increasing(&player.join().unwrap());
        }
    }
    wait_until("the readers gone", Duration::from_secs(5), || {
        api(http, "/api/streams")
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["rtsp"]["readers"] == 0 && s["rtsp"]["transcoding"] == false)
            .then_some(())
    });
    // ffprobe, then two players: one encoder for all (started again after ffprobe left).
    let encoders = server
        .log()
        .matches("encoding JPEG to H.264 once for its RTSP readers")
        .count();
    assert!((1..=2).contains(&encoders), "{encoders} encoders started");
    let metrics = common::run(
        std::process::Command::new("curl").args(["-s", &format!("http://{http}/metrics")]),
        Duration::from_secs(5),
    );
    assert!(
        String::from_utf8_lossy(&metrics.stdout).contains("vidcast_viewers{kind=\"rtsp\"} 0"),
        "readers counted and gone"
    );
    assert!(
        String::from_utf8_lossy(&metrics.stdout).contains("vidcast_stream_rtsp_readers{"),
        "readers per stream in /metrics"
    );
    assert!(!server.log().contains("panicked"));
}

#[test]
fn serve_rtsp_takes_a_view_token_by_digest_as_ffmpeg_sends_it() {
    let Some(ffprobe) = vidcast_testkit::require_tool("ffprobe", "ffmpeg") else {
        return;
    };
    let mut server = serve_rtsp(&["off", "--token", "s3cret"]);
    let rtsp = rtsp_addr(&mut server);
    let ingest = server.addr_after("hub listening for clients on ");
    let _publisher = Kill(
        vidcast()
            .args([
                "send", "--name", "door", "--width", "320", "--height", "240",
            ])
            .arg(ingest.to_string())
            .env("VIDCAST_TOKEN", "s3cret")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    server.wait_line("\"door\" connected", Duration::from_secs(20));
    // At trace level ffprobe shows the requests it sends; read both pipes while it runs
    // (tens of KiB of trace could fill one), within 30 s.
    let probe = |password: &str| {
        let mut cmd = std::process::Command::new(&ffprobe);
        cmd.args([
            "-v",
            "trace",
            "-rtsp_transport",
            "tcp",
            "-timeout",
            "10000000",
        ])
        .args(["-show_entries", "stream=codec_name", "-of", "csv=p=0"])
        .arg(format!("rtsp://viewer:{password}@{rtsp}/door"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(cmd.output().unwrap()));
        rx.recv_timeout(Duration::from_secs(30))
            .expect("ffprobe within 30 s")
    };
    let good = probe("s3cret");
    let trace = String::from_utf8_lossy(&good.stderr);
    assert_eq!(
        String::from_utf8_lossy(&good.stdout).trim(),
        "h264",
        "{trace}"
    );
    assert!(
        trace.contains("Authorization: Digest username=\"viewer\""),
        "ffmpeg answered with Digest: {trace}"
    );
    assert!(!trace.contains("Authorization: Basic"), "{trace}");
    let bad = probe("wrong");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("401"));
    server.wait_line("(RTSP reader) refused: wrong token", Duration::from_secs(3));
}

/// Connects, asks DESCRIBE, SETUP and PLAY for `path` and returns the socket (never read
/// again by the caller: a stalled player).
fn stalled_player(rtsp: SocketAddr, path: &str) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(rtsp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let url = format!("rtsp://{rtsp}/{path}");
    for (cseq, req) in [
        format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
        format!("SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"),
        format!("PLAY {url} RTSP/1.0\r\nCSeq: 3\r\n\r\n"),
    ]
    .into_iter()
    .enumerate()
    {
        s.write_all(req.as_bytes()).unwrap();
        // Read until this answer's head is in (DESCRIBE's body comes with it).
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut byte).unwrap(), 1, "answer {cseq} cut");
            got.push(byte[0]);
        }
        assert!(got.starts_with(b"RTSP/1.0 200"), "{}", String::from_utf8_lossy(&got));
        if cseq == 0 {
            let head = String::from_utf8_lossy(&got).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).unwrap();
        }
    }
    s
}

#[test]
fn a_stalled_rtsp_player_is_dropped_and_never_slows_another() {
    let Some(ffmpeg) = vidcast_testkit::require_tool("ffmpeg", "ffmpeg") else {
        return;
    };
    let mut server = serve_rtsp(&["127.0.0.1:0", "--http-stall-timeout", "1s"]);
    let rtsp = rtsp_addr(&mut server);
    let ingest = server.addr_after("hub listening for clients on ");
    let http = server.addr_after("web wall on http://");
    // Big frames, so the stalled player's socket buffers fill within seconds.
    let _publisher = sender(
        ingest,
        "busy",
        &["--noise", "48", "--bitrate", "20M", "--no-adapt"],
    );
    stream_with_frames(http, "busy", 10, Duration::from_secs(20));
    let stalled = stalled_player(rtsp, "busy");
    // Meanwhile a real player gets its frames, in order.
    let numbers = common::pull_frame_numbers(
        &ffmpeg,
        &["-rtsp_transport", "tcp", "-timeout", "10000000"],
        &format!("rtsp://{rtsp}/busy"),
        640,
        480,
        60,
    );
    check_increasing(&numbers);
    let line = server.wait_line("stalled reader", Duration::from_secs(30));
    assert!(line.contains("RTSP reader"), "{line}");
    drop(stalled);
}

#[test]
fn a_slowloris_on_the_rtsp_port_is_cut_off_at_the_header_timeout() {
    use std::io::{Read, Write};
    let mut server = serve_rtsp(&["off", "--http-header-timeout", "1s"]);
    let rtsp = rtsp_addr(&mut server);
    let mut s = std::net::TcpStream::connect(rtsp).unwrap();
    let started = Instant::now();
    // One byte every 200 ms of a request that never ends: closed after about 1 s.
    wait_until(
        "the hub to close the slow request",
        Duration::from_secs(5),
        || {
            if s.write_all(b"O").is_err() {
                return Some(());
            }
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut b = [0u8; 16];
            match s.read(&mut b) {
                Ok(0) | Err(_) if started.elapsed() > Duration::from_millis(900) => {
                    // 0 = closed; a timeout error just means not yet.
                    (s.write_all(b"O").is_err() || matches!(s.read(&mut b), Ok(0))).then_some(())
                }
                _ => None,
            }
        },
    );
    server.wait_line("slowloris", Duration::from_secs(3));
}
