//! `serve --rtsp` from an in-process hub to a real player (ffmpeg): the latency from the
//! hub receiving a frame, and from its capture, to the decoded picture (benchmark, run by
//! name; the behaviour tests are in `crates/cli/tests/rtsp.rs`).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vidcast_hub::{HubOptions, RunningHub};
use vidcast_media::SystemClock;
use vidcast_testkit::{h264_publisher, played_frame_numbers, require_tool, wait_for};

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;

/// RTSP latency. The test pattern burns each frame's number into the picture; an ffmpeg
/// player (RTP over TCP, no buffering, one decoding thread, pictures on a pipe) notes when
/// it has each picture, on the hub's own clock, and the hub's receipt time (and the frame's
/// capture time, the publisher being on the same clock) of that frame is subtracted.
/// `cargo test --release -p vidcast-hub --test rtsp -- --ignored --nocapture rtsp_latency`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by name"]
async fn rtsp_latency_to_an_ffmpeg_player() {
    let Some(ffmpeg) = require_tool("ffmpeg", "ffmpeg") else {
        return;
    };
    let clock = Arc::new(SystemClock::new());
    let rtsp = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let options = HubOptions {
        rtsp: Some(rtsp),
        ..HubOptions::default()
    };
    let ingest = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = RunningHub::start(ingest, None, options, clock.clone()).unwrap();
    let (capture, task) = h264_publisher(hub.ingest_addr, "bench", 60).await;
    let id = wait_for("stream registered", Duration::from_secs(10), || async {
        hub.registry
            .stream_infos()
            .into_iter()
            .find(|(_, info, live)| *live && info.name == "bench")
            .map(|(id, ..)| id)
    })
    .await;
    let times: Arc<Mutex<HashMap<u64, (u64, u64)>>> = Arc::default();
    let mut frames = hub.registry.frame_outlet(id).unwrap().subscribe_in_order();
    let noted = Arc::clone(&times);
    let recorder = tokio::spawn(async move {
        while let Ok(frame) = frames.recv().await {
            noted
                .lock()
                .unwrap()
                .insert(frame.seq, (frame.received_us, frame.capture_us));
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let count = 600;
    let url = format!("rtsp://{rtsp}/bench");
    let player_clock = Arc::clone(&clock);
    let played = tokio::task::spawn_blocking(move || {
        let input = ["-rtsp_transport", "tcp"];
        played_frame_numbers(
            &ffmpeg,
            &input,
            &url,
            (WIDTH, HEIGHT),
            count,
            &*player_clock,
        )
    });
    let played = tokio::time::timeout(Duration::from_secs(60), played)
        .await
        .expect("ffmpeg within 60 s")
        .unwrap();
    let times = times.lock().unwrap().clone();
    let since = |pick: fn(&(u64, u64)) -> u64| -> Vec<f64> {
        played
            .iter()
            .skip(30)
            .filter_map(|(seq, at)| {
                times
                    .get(seq)
                    .map(|t| at.saturating_sub(pick(t)) as f64 / 1000.0)
            })
            .collect()
    };
    let median = vidcast_testkit::latency_line_ms(
        "hub receipt → decoded picture out of an ffmpeg RTSP player",
        since(|t| t.0),
    );
    vidcast_testkit::latency_line_ms(
        "capture → decoded picture out of an ffmpeg RTSP player",
        since(|t| t.1),
    );
    assert!(median < 200.0, "median {median:.1} ms");
    recorder.abort();
    drop(capture);
    task.abort();
    hub.shutdown().await.unwrap();
}
