//! Slow links: a publisher on a 5 Mbit/s uplink (and one that also loses 2 % of its
//! packets) to a hub in another network namespace. `vidcast send` of a camera-sized 640x480
//! @30 stream (about 10 Mbit/s) must keep latency bounded by dropping and adapting, where a
//! sender that queues every frame falls ever further behind. Each test writes its latency
//! curve to `target/tmp/congestion-*.csv` and prints it per second.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use vidcast_hub::{HubOptions, RunningHub};
use vidcast_media::{Encoder, JpegEncoder, TestPattern, TestPatternConfig};
use vidcast_proto::{Frame, Message, MAGIC};
use vidcast_testkit::netns::LinkedHosts;

/// The uplink: 5 Mbit/s with a 100 ms queue (a modest Wi-Fi or DSL buffer).
const RATE: &str = "5mbit";
const QUEUE_MS: u32 = 100;
/// Frames captured in the first seconds, while the publisher finds the link's rate, are left
/// out of the p99 (they are reported apart).
const WARM_UP: Duration = Duration::from_secs(4);
const RUN: Duration = Duration::from_secs(20);

/// One shaped-link run at a time: they measure latency, and encoders of parallel runs
/// competing for the 2 cores would be measured with them.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Kills the child on drop (a failed assertion must not leave it running).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a hub whose ingest port is in the hub namespace (its API stays on this test's
/// own loopback).
async fn start_hub(hosts: &LinkedHosts) -> RunningHub {
    let listener = tokio::net::TcpListener::from_std(hosts.listen_in_hub()).unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    RunningHub::start(
        listener,
        Some(http),
        HubOptions::default(),
        vidcast_testkit::clock(),
    )
    .unwrap()
}

/// One point of a latency curve: seconds since the start, latency of the newest frame, ms.
type Point = (f64, f64);

/// Samples the newest frame of the only stream every time one arrives, until `run` ends.
async fn record_curve(hub: &RunningHub, run: Duration) -> Vec<Point> {
    let registry = Arc::clone(&hub.registry);
    let id = vidcast_testkit::wait_for("the stream to appear", Duration::from_secs(10), || {
        let registry = Arc::clone(&registry);
        async move { registry.snapshot(0).first().map(|s| s.id) }
    })
    .await;
    let mut frames = registry.watch_frames(id).unwrap();
    let start = Instant::now();
    let mut curve = Vec::new();
    while start.elapsed() < run {
        match tokio::time::timeout(Duration::from_millis(500), frames.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => continue,
        }
        let latest = frames.borrow_and_update().clone();
        if let Some(f) = latest {
            // Publisher and hub share this machine's clock.
            let latency_ms = f.received_us.saturating_sub(f.capture_us) as f64 / 1000.0;
            curve.push((start.elapsed().as_secs_f64(), latency_ms));
        }
    }
    curve
}

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    assert!(!values.is_empty());
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// Per-second medians, for the log and the CSV.
fn per_second(curve: &[Point]) -> Vec<(u64, f64)> {
    let last = curve.last().map_or(0, |p| p.0 as u64);
    (0..=last)
        .filter_map(|s| {
            let second: Vec<f64> = curve
                .iter()
                .filter(|p| p.0 as u64 == s)
                .map(|p| p.1)
                .collect();
            (!second.is_empty()).then(|| (s, percentile(second, 50.0)))
        })
        .collect()
}

fn write_curve(name: &str, curve: &[Point]) {
    let path =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("congestion-{name}.csv"));
    let mut csv = String::from("seconds,latency_ms\n");
    for (t, l) in curve {
        csv.push_str(&format!("{t:.3},{l:.1}\n"));
    }
    std::fs::write(&path, csv).unwrap();
    let medians: Vec<String> = per_second(curve)
        .iter()
        .map(|(s, l)| format!("{s}s:{l:.0}"))
        .collect();
    eprintln!(
        "{name}: median latency per second (ms) {}",
        medians.join(" ")
    );
    eprintln!("{name}: curve written to {}", path.display());
}

/// `vidcast send` (adapting, latest frame wins) over the shaped link; returns the hub's
/// view of the stream at the end and the p99 of frames after the warm-up.
/// With `then_recover`, the link then becomes fast and the publisher must climb back to its
/// full settings.
async fn adaptive_run(loss_per_mille: u32, then_recover: bool) -> (serde_json::Value, f64, f64) {
    let name = format!("adaptive-{loss_per_mille}");
    adaptive_run_with(
        &name,
        loss_per_mille,
        then_recover,
        &["--codec", "jpeg", "--quality", "80"],
        80,
    )
    .await
}

/// [`adaptive_run`] of a publisher called `name` with `codec_args`, whose full settings
/// report `full_quality`.
async fn adaptive_run_with(
    name: &str,
    loss_per_mille: u32,
    then_recover: bool,
    codec_args: &[&str],
    full_quality: u64,
) -> (serde_json::Value, f64, f64) {
    let hosts = LinkedHosts::create();
    hosts.limit_client_rate(RATE, QUEUE_MS);
    if loss_per_mille > 0 {
        hosts.drop_to_hub(loss_per_mille);
    }
    let hub = start_hub(&hosts).await;
    // Long enough for the recovery phase; the guard ends it early.
    let frames = (RUN.as_secs() * 30 * 4).to_string();
    let _publisher = Reaped(
        Command::new("ip")
            .args(["netns", "exec", &hosts.client])
            .arg(env!("CARGO_BIN_EXE_vidcast"))
            .args(["send", "--name", name, "--noise", "16"])
            .args(codec_args)
            .args(["--width", "640", "--height", "480", "--fps", "30"])
            .args(["--frames", &frames, &hub.ingest_addr.to_string()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let curve = record_curve(&hub, RUN).await;
    write_curve(name, &curve);
    let warm_up = WARM_UP.as_secs_f64();
    let after: Vec<f64> = curve
        .iter()
        .filter(|p| p.0 >= warm_up)
        .map(|p| p.1)
        .collect();
    let during: Vec<f64> = curve
        .iter()
        .filter(|p| p.0 < warm_up)
        .map(|p| p.1)
        .collect();
    let p99_after = percentile(after, 99.0);
    let p99_during = percentile(during, 99.0);
    let stream = vidcast_testkit::api_streams(&hub).await.remove(0);
    if then_recover {
        hosts.limit_client_rate("200mbit", QUEUE_MS);
        let start = Instant::now();
        let recovered = vidcast_testkit::wait_for(
            "the publisher to climb back to full quality",
            Duration::from_secs(50),
            || async {
                let s = vidcast_testkit::api_streams(&hub).await.remove(0);
                (s["encoder"]["level"] == 0).then_some(s)
            },
        )
        .await;
        eprintln!(
            "back to level 0 {:.1} s after the link became fast: {}",
            start.elapsed().as_secs_f64(),
            recovered["encoder"]
        );
        assert_eq!(recovered["encoder"]["quality"], full_quality);
    }
    (stream, p99_after, p99_during)
}

fn check_adaptive(stream: &serde_json::Value, p99_after: f64, p99_during: f64) {
    eprintln!(
        "p99 {p99_after:.0} ms after the first {WARM_UP:?} ({p99_during:.0} ms during), hub: frames {} dropped {} latency {} encoder {}",
        stream["frames"], stream["dropped"], stream["latency_ms"], stream["encoder"]
    );
    assert!(
        p99_after < 300.0,
        "latency p99 {p99_after} ms after warm-up"
    );
    // The stream no longer fits: frames are dropped (counted), or sent smaller, or both.
    let encoder = &stream["encoder"];
    assert_eq!(encoder["adapting"], true, "{stream}");
    let link = encoder["link_mbps"].as_f64().unwrap();
    assert!((2.0..=6.0).contains(&link), "link estimate {link} Mbit/s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mbit_link_keeps_latency_bounded_by_adapting_and_recovers_when_it_speeds_up() {
    if !vidcast_testkit::netns::available() {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let (stream, p99_after, p99_during) = adaptive_run(0, true).await;
    check_adaptive(&stream, p99_after, p99_during);
}

/// H.264 asked for 12 Mbit/s on the 5 Mbit/s link: the bit rate comes down to fit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_on_a_5_mbit_link_lowers_its_bit_rate_and_recovers() {
    if !vidcast_testkit::netns::available() {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let codec = ["--codec", "h264", "--bitrate", "12M", "--keyint", "2s"];
    let (stream, p99_after, p99_during) =
        adaptive_run_with("adaptive-h264", 0, true, &codec, 100).await;
    check_adaptive(&stream, p99_after, p99_during);
    let percent = stream["encoder"]["quality"].as_u64().unwrap();
    assert!(percent <= 50, "12 Mbit/s × {percent}% cannot fit 5 Mbit/s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mbit_link_losing_2_percent_keeps_latency_bounded() {
    if !vidcast_testkit::netns::available() {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let (stream, p99_after, p99_during) = adaptive_run(20, false).await;
    check_adaptive(&stream, p99_after, p99_during);
}

/// Camera-sized JPEGs (about 43 kB at 640x480 q80) to send without encoding on the clock.
fn camera_sized_frames() -> Vec<bytes::Bytes> {
    let config = TestPatternConfig {
        width: 640,
        height: 480,
        fps: 30.0,
        label: "no-drop".into(),
        paced: false,
    };
    let mut pattern = TestPattern::new(config, vidcast_testkit::clock()).unwrap();
    pattern.set_noise(16);
    let mut encoder = JpegEncoder::new(80).unwrap();
    (0..30)
        .map(|seq| encoder.encode(&pattern.render(seq, 0)).unwrap().data)
        .collect()
}

/// The comparison: a sender that captures at 30 fps and queues every frame for the socket
/// (no drops, no adaptation) falls behind by about a second every second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_that_never_drops_falls_ever_further_behind() {
    if !vidcast_testkit::netns::available() {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let hosts = LinkedHosts::create();
    hosts.limit_client_rate(RATE, QUEUE_MS);
    let hub = start_hub(&hosts).await;
    let hub_addr = hub.ingest_addr;
    let socket = LinkedHosts::run_in(&hosts.client, move || {
        let s = std::net::TcpStream::connect(hub_addr).unwrap();
        s.set_nonblocking(true).unwrap();
        s
    });
    let mut peer =
        vidcast_testkit::RawPeer::from_stream(tokio::net::TcpStream::from_std(socket).unwrap());
    let mut hello = BytesMut::from(&MAGIC[..]);
    Message::Hello(vidcast_testkit::hello("no-drop", 640, 480)).encode(&mut hello);
    peer.send(&hello).await;
    let pictures = camera_sized_frames();

    // Capture at 30 fps into an unbounded queue; a writer sends every frame in order.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<BytesMut>();
    let run = Duration::from_secs(12);
    let capture = tokio::spawn(async move {
        let clock = vidcast_testkit::clock();
        let mut ticker = tokio::time::interval(Duration::from_micros(33_333));
        let start = Instant::now();
        let mut seq = 0u64;
        while start.elapsed() < run {
            ticker.tick().await;
            let mut buf = BytesMut::new();
            Message::Frame(Frame {
                seq,
                capture_us: clock.now_us(),
                is_keyframe: true,
                data: pictures[seq as usize % pictures.len()].clone(),
            })
            .encode(&mut buf);
            if tx.send(buf).is_err() {
                return;
            }
            seq += 1;
        }
    });
    let writer = tokio::spawn(async move {
        while let Some(buf) = rx.recv().await {
            if peer.stream.write_all(&buf).await.is_err() {
                return;
            }
        }
    });
    let curve = record_curve(&hub, run).await;
    capture.abort();
    writer.abort();
    write_curve("no-drop", &curve);
    let first: Vec<f64> = curve.iter().filter(|p| p.0 < 3.0).map(|p| p.1).collect();
    let last: Vec<f64> = curve
        .iter()
        .filter(|p| p.0 >= run.as_secs_f64() - 2.0)
        .map(|p| p.1)
        .collect();
    let (early, late) = (percentile(first, 50.0), percentile(last, 50.0));
    // 10 Mbit/s into 5: the queue grows by about half a second per second of sending.
    assert!(
        late > early + 3000.0,
        "delay did not grow: {early:.0} ms early, {late:.0} ms late"
    );
    let stream = vidcast_testkit::api_streams(&hub).await.remove(0);
    assert_eq!(stream["dropped"], 0, "{stream}");
}
