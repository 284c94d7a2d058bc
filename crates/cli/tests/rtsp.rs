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
fn serve_pull_publishes_a_camera_and_resumes_within_3_s_of_its_return() {
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
    let events = api(http, "/api/events");
    assert!(events.to_string().contains("yard"), "{events}");

    camera.kill();
    server.wait_line("the camera ended the session", Duration::from_secs(3));
    std::thread::sleep(Duration::from_secs(2));
    let before = api(http, "/api/streams")[0]["frames"].as_u64().unwrap();
    camera.restart();
    let back = Instant::now();
    let s = stream_with_frames(http, "yard", before + 5, Duration::from_secs(3));
    eprintln!(
        "frames again {:?} after the camera's return",
        back.elapsed()
    );
    check_camera_stream(&s);
    assert!(!server.log().contains("panicked"));
}
