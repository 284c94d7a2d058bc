//! `vidcast serve --restream` against a real nginx-rtmp (Debian's `nginx` and
//! `libnginx-mod-rtmp`), on 127.0.0.1 only: an H.264 and a JPEG publisher are pushed, pulled
//! back over RTMP with ffmpeg and read from nginx's HLS output, and the push resumes by
//! itself after nginx is killed and started again on the same port.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{pull_frame_numbers, run, vidcast, Server};
use vidcast_testkit::{require_tool, Nginx};

/// A `vidcast send` child, killed on drop.
struct Sender(Child);

impl Sender {
    fn start(ingest: &str, name: &str, codec: &str, width: u32, height: u32) -> Self {
        let child = vidcast()
            .args(["send", "--name", name, "--codec", codec, "--fps", "30"])
            .args([
                "--width",
                &width.to_string(),
                "--height",
                &height.to_string(),
            ])
            .arg(ingest)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `codec_name,width,height` of the first video stream ffprobe finds at `input`.
fn probe(ffprobe: &Path, input: &str) -> String {
    let out = run(
        std::process::Command::new(ffprobe)
            .args([
                "-v",
                "error",
                "-rw_timeout",
                "10000000",
                "-select_streams",
                "v:0",
            ])
            .args([
                "-show_entries",
                "stream=codec_name,width,height",
                "-of",
                "csv=p=0",
            ])
            .arg(input),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "ffprobe {input}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // MPEG-TS lists the stream under its program too: the first line says it.
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// Checks that `input` (an RTMP URL or an HLS segment) is H.264 of this size and that `count`
/// decoded pictures carry increasing frame numbers.
fn check_decodes(
    ffmpeg: &Path,
    ffprobe: &Path,
    input: &str,
    (width, height): (u32, u32),
    count: usize,
) {
    assert_eq!(
        probe(ffprobe, input),
        format!("h264,{width},{height}"),
        "{input}"
    );
    let numbers = pull_frame_numbers(
        ffmpeg,
        &["-rw_timeout", "10000000"],
        input,
        width,
        height,
        count,
    );
    assert!(
        numbers.windows(2).all(|w| w[1] > w[0])
            && numbers[count - 1] - numbers[0] < 4 * count as u32,
        "frame numbers from {input} should increase steadily: {numbers:?}"
    );
}

/// Waits for nginx's HLS playlist of `name` to list a segment, and returns its path.
fn hls_segment(nginx: &Nginx, name: &str) -> String {
    let playlist = nginx.playlist(name);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&playlist).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.ends_with(".ts")) {
            return playlist.with_file_name(line).to_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no HLS segment in {} within 20 s: {text:?}\n{}",
            playlist.display(),
            nginx.error_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn restream_pushes_h264_and_jpeg_to_nginx_rtmp_and_resumes_after_nginx_restarts() {
    let Some(ffmpeg) = require_tool("ffmpeg", "ffmpeg") else {
        return;
    };
    let Some(ffprobe) = require_tool("ffprobe", "ffmpeg") else {
        return;
    };
    let Some(mut nginx) = Nginx::start("cli") else {
        return;
    };
    let template = format!("rtmp://127.0.0.1:{}/live/{{name}}", nginx.port);
    let mut server = Server::start_with(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http",
        "off",
        "--restream",
        &template,
    ]);
    let ingest = server
        .addr_after("hub listening for clients on ")
        .to_string();
    let streams = [
        ("cam-h264", "h264", 320, 240),
        ("cam-jpeg", "jpeg", 256, 144),
    ];
    let _senders: Vec<Sender> = streams
        .iter()
        .map(|&(name, codec, w, h)| Sender::start(&ingest, name, codec, w, h))
        .collect();
    for (name, ..) in streams {
        let line = server.wait_line(
            &format!("restream \"{name}\" → {}: publishing", nginx.url(name)),
            Duration::from_secs(20),
        );
        assert!(line.contains("INFO"), "{line}");
    }
    for (name, _, w, h) in streams {
        check_decodes(&ffmpeg, &ffprobe, &nginx.url(name), (w, h), 15);
        check_decodes(&ffmpeg, &ffprobe, &hls_segment(&nginx, name), (w, h), 5);
    }

    // The server goes away: the hub logs the loss and retries by itself.
    nginx.kill();
    for (name, ..) in streams {
        let line = server.wait_line(
            &format!("restream \"{name}\" → {}: ", nginx.url(name)),
            Duration::from_secs(1),
        );
        assert!(line.contains("publishing"), "{line}");
        let lost = server.wait_lines(&format!("\"{name}\" →"), 2, Duration::from_secs(15));
        assert!(
            lost.contains("retrying in") && lost.contains("WARN"),
            "{lost}"
        );
    }
    nginx.restart();
    for (name, ..) in streams {
        server.wait_lines(
            &format!("restream \"{name}\" → {}: publishing", nginx.url(name)),
            2,
            Duration::from_secs(30),
        );
    }
    for (name, _, w, h) in streams {
        check_decodes(&ffmpeg, &ffprobe, &nginx.url(name), (w, h), 15);
    }
    assert!(!server.log().contains("panicked"));
}

#[test]
fn a_bad_restream_address_is_refused_with_the_expected_form() {
    for (url, why) in [
        ("http://127.0.0.1/live/{name}", "must start with rtmp://"),
        ("rtmp://127.0.0.1/{name}", "/app/stream"),
    ] {
        let out = run(
            vidcast().args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http",
                "off",
                "--restream",
                url,
            ]),
            Duration::from_secs(10),
        );
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(why) && stderr.contains("rtmp://HOST[:PORT]/APP/{name}"),
            "{url}: {stderr}"
        );
    }
    let out = run(vidcast().args(["serve", "--help"]), Duration::from_secs(10));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--restream <URL>") && help.contains("{name}"),
        "{help}"
    );
}

#[test]
fn a_restream_address_without_name_warns_that_streams_collide() {
    let port = common::free_port();
    let mut server = Server::start_with(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http",
        "off",
        "--restream",
        &format!("rtmp://127.0.0.1:{port}/live/all"),
    ]);
    let line = server.wait_line("has no {name}", Duration::from_secs(10));
    assert!(line.contains("WARN"), "{line}");
}
