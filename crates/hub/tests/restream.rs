//! Restreaming from an in-process hub to a real nginx-rtmp on 127.0.0.1: a frozen server
//! never slows the hub and the push comes back by itself; and the latency the restream adds
//! up to a player of the media server (benchmark, run by name).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vidcast_hub::UrlTemplate;
use vidcast_hub::{HubOptions, RunningHub, StreamId};
use vidcast_media::{read_frame_number, Clock, SystemClock};
use vidcast_testkit::{
    ffmpeg_player, h264_publisher, h264_publisher_with, played_frame_numbers, require_tool,
    wait_for, Nginx,
};

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;

async fn hub_restreaming_to(nginx: &Nginx, clock: Arc<SystemClock>) -> RunningHub {
    let template = format!("rtmp://127.0.0.1:{}/live/{{name}}", nginx.port);
    let options = HubOptions {
        restream: vec![UrlTemplate::parse(&template).unwrap()],
        ..HubOptions::default()
    };
    let ingest = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    RunningHub::start(ingest, Some(web), options, clock).unwrap()
}

/// Stream `id`'s pushes as `/api/streams` shows them.
async fn pushes(web: std::net::SocketAddr, id: StreamId) -> Vec<serde_json::Value> {
    let (status, body) = http(web, "GET", "/api/streams", "").await;
    assert_eq!(status, 200, "{body}");
    let streams: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    streams
        .into_iter()
        .find(|s| s["id"] == id.get())
        .and_then(|s| s["restream"].as_array().cloned())
        .unwrap_or_default()
}

async fn stream_id(hub: &RunningHub, name: &str) -> StreamId {
    wait_for(
        &format!("stream {name} registered"),
        Duration::from_secs(10),
        || async {
            hub.registry
                .stream_infos()
                .into_iter()
                .find(|(_, info, live)| *live && info.name == name)
                .map(|(id, ..)| id)
        },
    )
    .await
}

/// Frames the hub received from stream `id` so far.
fn hub_frames(hub: &RunningHub, id: StreamId) -> u64 {
    hub.registry
        .snapshot(0)
        .into_iter()
        .find(|s| s.id == id)
        .map_or(0, |s| s.frames)
}

/// ffmpeg's input options for nginx: give up on a silent server after 10 s.
const PLAYER_INPUT: [&str; 2] = ["-rw_timeout", "10000000"];

/// Whether nginx has a publisher on `name` that a player can decode: one frame pulled.
fn playable(ffmpeg: &std::path::Path, url: &str) -> bool {
    let mut child = ffmpeg_player(ffmpeg, &PLAYER_INPUT, url, 1);
    let mut out = Vec::new();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    reader.join().unwrap().len() == (WIDTH * HEIGHT * 3) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_rtmp_server_never_slows_the_hub_and_the_push_resumes() {
    // The pusher's log (losses, reconnects) shows with --nocapture.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let Some(ffmpeg) = require_tool("ffmpeg", "ffmpeg") else {
        return;
    };
    let Some(nginx) = Nginx::start("freeze") else {
        return;
    };
    let hub = hub_restreaming_to(&nginx, Arc::new(SystemClock::new())).await;
    // A camera-heavy stream (~1 MB/s) fills the socket buffers in a couple of seconds.
    let heavy = vidcast_media::H264Config {
        bitrate_bps: 8_000_000,
        fps: 30.0,
        keyint_frames: 60,
        level_bitrate_bps: None,
    };
    let (capture, task) = h264_publisher_with(hub.ingest_addr, "frozen", heavy, 16).await;
    let id = stream_id(&hub, "frozen").await;
    let url = format!("rtmp://127.0.0.1:{}/live/frozen", nginx.port);
    let f = ffmpeg.clone();
    let u = url.clone();
    assert!(tokio::task::spawn_blocking(move || playable(&f, &u))
        .await
        .unwrap());

    // nginx hangs for 10 s: the pusher drops frames, then gives the connection up and
    // retries, while the publisher's frames keep arriving at full rate.
    nginx.pause();
    let before = hub_frames(&hub, id);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = hub_frames(&hub, id) - before;
    nginx.resume();
    assert!(
        during >= 10 * 27,
        "the hub received {during} frames in 10 s while nginx was frozen (30 fps expected)"
    );
    // The frames it could not push are counted and shown.
    let web = hub.http_addr.unwrap();
    let lost = pushes(web, id).await[0]["frames_lost"].as_u64().unwrap();
    assert!(lost > 0, "{:?}", pushes(web, id).await);
    // Whether the push survived or reconnected, a player gets pictures again.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (f, u) = (ffmpeg.clone(), url.clone());
        if tokio::task::spawn_blocking(move || playable(&f, &u))
            .await
            .unwrap()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no pictures from {url} within 40 s of thawing nginx:\n{}",
            nginx.error_log()
        );
    }
    drop(capture);
    task.abort();
    hub.shutdown().await.unwrap();
}

/// A minimal RTMP player of `url` (the sans-IO session in play mode over one socket): the
/// frame number of every picture it decodes, and when its message arrived (hub clock).
async fn rtmp_player_owned(url: String, clock: Arc<SystemClock>, count: usize) -> Vec<(u64, u64)> {
    rtmp_player(&url, clock, count).await
}

async fn rtmp_player(url: &str, clock: Arc<SystemClock>, count: usize) -> Vec<(u64, u64)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use vidcast_rtmp::{flv, ClientEvent, ClientSession, RtmpUrl};
    let url = RtmpUrl::parse(url).unwrap();
    let mut socket = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
        .await
        .unwrap();
    socket.set_nodelay(true).unwrap();
    let mut session = ClientSession::play(url, 7);
    let mut decoder = vidcast_media::H264Decoder::new().unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let mut seen = Vec::new();
    while seen.len() < count {
        while let Some(bytes) = session.poll_transmit() {
            socket.write_all(&bytes).await.unwrap();
        }
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "nginx closed the player's connection");
        let at = clock.now_us();
        session.handle_bytes(&buf[..n]).unwrap();
        while let Some(event) = session.poll_event() {
            let ClientEvent::Media {
                type_id: 9,
                payload,
                ..
            } = event
            else {
                continue;
            };
            let Some(access_unit) = flv::body_to_annex_b(&payload) else {
                continue;
            };
            if let Ok(Some(picture)) = decoder.decode(&access_unit) {
                let rgb = picture.to_rgb().unwrap();
                if let Some(number) = read_frame_number(&rgb, picture.width, picture.height) {
                    seen.push((u64::from(number), at));
                }
            }
        }
    }
    seen
}

/// Latency percentiles (ms) of `played` (frame number, when a player had it) against when
/// the hub received each frame, leaving out the first second (the burst of the keyframe
/// group a player joins with).
fn latency_line(what: &str, played: &[(u64, u64)], arrivals: &HashMap<u64, u64>) -> f64 {
    let ms: Vec<f64> = played
        .iter()
        .skip(30)
        .filter_map(|(seq, at)| {
            arrivals
                .get(seq)
                .map(|hub| at.saturating_sub(*hub) as f64 / 1000.0)
        })
        .collect();
    vidcast_testkit::latency_line_ms(what, ms)
}

/// Restream latency. The test pattern burns each frame's number into the picture; two
/// players of nginx note when they have each picture, on the hub's own clock, and the hub's
/// receipt time of that frame is subtracted:
/// - a minimal RTMP player (socket read → OpenH264 decode, ~1 ms): restream push + nginx relay;
/// - ffmpeg (no buffering, one decoding thread, pictures on a pipe): what a real player adds.
/// `cargo test --release -p vidcast-hub --test restream -- --ignored --nocapture restream_latency`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by name"]
async fn restream_latency_through_nginx() {
    let Some(ffmpeg) = require_tool("ffmpeg", "ffmpeg") else {
        return;
    };
    let Some(nginx) = Nginx::start("bench") else {
        return;
    };
    let clock = Arc::new(SystemClock::new());
    let hub = hub_restreaming_to(&nginx, Arc::clone(&clock)).await;
    let (capture, task) = h264_publisher(hub.ingest_addr, "bench", 60).await;
    let id = stream_id(&hub, "bench").await;
    let arrivals: Arc<Mutex<HashMap<u64, u64>>> = Arc::default();
    let mut frames = hub.registry.frame_outlet(id).unwrap().subscribe_in_order();
    let noted = Arc::clone(&arrivals);
    let recorder = tokio::spawn(async move {
        while let Ok(frame) = frames.recv().await {
            noted.lock().unwrap().insert(frame.seq, frame.received_us);
        }
    });
    // Let the push start and the player's first keyframe come, then play 20 s.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let count = 600;
    let url = format!("rtmp://127.0.0.1:{}/live/bench", nginx.port);
    let tiny = tokio::spawn(rtmp_player_owned(url.clone(), Arc::clone(&clock), count));
    let player_clock = Arc::clone(&clock);
    let played = tokio::task::spawn_blocking(move || {
        let size = (WIDTH, HEIGHT);
        played_frame_numbers(&ffmpeg, &PLAYER_INPUT, &url, size, count, &*player_clock)
    });
    let limit = Duration::from_secs(60);
    let played = tokio::time::timeout(limit, played)
        .await
        .expect("ffmpeg within 60 s")
        .unwrap();
    let tiny = tokio::time::timeout(limit, tiny)
        .await
        .expect("player within 60 s")
        .unwrap();
    let arrivals = arrivals.lock().unwrap().clone();
    let relay = latency_line(
        "hub receipt → RTMP message at a minimal player of nginx-rtmp",
        &tiny,
        &arrivals,
    );
    latency_line(
        "hub receipt → decoded picture out of an ffmpeg player of nginx-rtmp",
        &played,
        &arrivals,
    );
    assert!(relay < 50.0, "median {relay:.1} ms");
    recorder.abort();
    drop(capture);
    task.abort();
    hub.shutdown().await.unwrap();
}

/// One HTTP/1.1 request by hand; the status and the body.
async fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_starts_and_stops_a_push_for_one_stream() {
    let Some(nginx) = Nginx::start("api") else {
        return;
    };
    let clock = Arc::new(SystemClock::new());
    let ingest = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // nginx listens on 127.0.0.1: API targets may reach it only with this.
    let options = HubOptions {
        restream_allow_private: true,
        ..HubOptions::default()
    };
    let hub = RunningHub::start(ingest, Some(web), options, clock.clone()).unwrap();
    let web = hub.http_addr.unwrap();
    let (capture, task) = h264_publisher(hub.ingest_addr, "api-cam", 60).await;
    let id = stream_id(&hub, "api-cam").await;
    let path = format!("/api/streams/{id}/restream");

    let (status, body) = http(web, "POST", &path, r#"{"url":"http://127.0.0.1/live/x"}"#).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("must start with rtmp://"), "{body}");
    let (status, _) = http(
        web,
        "POST",
        "/api/streams/999/restream",
        r#"{"url":"rtmp://127.0.0.1/live/x"}"#,
    )
    .await;
    assert_eq!(status, 404);

    let template = format!(
        r#"{{"url":"rtmp://127.0.0.1:{}/live/{{name}}"}}"#,
        nginx.port
    );
    let (status, body) = http(web, "POST", &path, &template).await;
    assert_eq!(status, 201, "{body}");
    let url = nginx.url("api-cam");
    assert!(body.contains(&url), "{body}");
    let played = tokio::time::timeout(
        Duration::from_secs(20),
        rtmp_player(&url, clock.clone(), 30),
    )
    .await
    .expect("30 pictures from nginx within 20 s of the POST");
    assert!(played.windows(2).all(|w| w[1].0 > w[0].0), "{played:?}");
    let (status, body) = http(web, "GET", &path, "").await;
    assert_eq!(status, 200);
    assert!(body.contains(&url), "{body}");
    // How the push is doing, in the API and in /metrics.
    let push = &pushes(web, id).await[0];
    assert_eq!(push["url"], url.as_str());
    assert_eq!(push["publishing"], true, "{push}");
    assert_eq!(push["connects"], 1, "{push}");
    assert!(push["frames_sent"].as_u64().unwrap() >= 30, "{push}");
    assert!(push["bytes_sent"].as_u64().unwrap() > 1000, "{push}");
    let (_, metrics) = http(web, "GET", "/metrics", "").await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("vidcast_restream_publishing{") && l.contains(&url))
        .unwrap_or_else(|| panic!("no restream metrics:\n{metrics}"));
    assert!(line.ends_with(" 1"), "{line}");
    assert!(metrics.contains("# TYPE vidcast_restream_frames_total counter"));

    let (status, body) = http(web, "DELETE", &path, "").await;
    assert_eq!((status, body.as_str()), (200, r#"{"removed":1}"#));
    let (_, body) = http(web, "GET", &path, "").await;
    assert_eq!(body, "[]");
    // The push is gone: a new player of nginx gets no picture.
    let silent = tokio::time::timeout(Duration::from_secs(3), rtmp_player(&url, clock, 1)).await;
    assert!(
        silent.is_err(),
        "nginx still has pictures of a deleted push"
    );
    drop(capture);
    task.abort();
    hub.shutdown().await.unwrap();
}

/// A JPEG the decoder refuses (cut before its end) costs that frame, counted, and never the
/// connection: the server's viewers keep their stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_jpeg_costs_one_frame_not_the_push() {
    let Some(nginx) = Nginx::start("bad-jpeg") else {
        return;
    };
    let clock = Arc::new(SystemClock::new());
    let hub = hub_restreaming_to(&nginx, clock.clone()).await;
    let web = hub.http_addr.unwrap();
    let stream = vidcast_client::connect(&[hub.ingest_addr], Duration::from_secs(5))
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::watch::channel(None);
    let pacer_clock = clock.clone();
    let pacer = tokio::spawn(async move {
        use vidcast_media::Encoder;
        let config = vidcast_media::TestPatternConfig {
            width: WIDTH,
            height: HEIGHT,
            fps: 30.0,
            label: "bad-jpeg".into(),
            paced: false,
        };
        let mut pattern = vidcast_media::TestPattern::new(config, pacer_clock.clone()).unwrap();
        let mut encoder = vidcast_media::JpegEncoder::new(80).unwrap();
        let mut ticker = tokio::time::interval(Duration::from_millis(33));
        for seq in 0..240u64 {
            ticker.tick().await;
            let mut data = encoder.encode(&pattern.render(seq, 0)).unwrap().data;
            if seq % 10 == 5 {
                data = data.slice(..data.len() / 2);
            }
            tx.send_replace(Some(vidcast_proto::Frame {
                seq,
                capture_us: pacer_clock.now_us(),
                is_keyframe: true,
                data,
            }));
        }
    });
    let hello = vidcast_testkit::hello("bad-jpeg", WIDTH as u16, HEIGHT as u16);
    let publish_clock: Arc<dyn Clock> = clock.clone();
    let publisher = tokio::spawn(async move {
        vidcast_client::publish(
            stream,
            hello,
            vidcast_client::PublishOptions::default(),
            &mut rx,
            publish_clock,
            std::future::pending::<()>(),
        )
        .await
    });
    let id = stream_id(&hub, "bad-jpeg").await;
    let played = tokio::time::timeout(
        Duration::from_secs(20),
        rtmp_player(&nginx.url("bad-jpeg"), clock, 60),
    )
    .await
    .expect("60 pictures from nginx within 20 s");
    assert_eq!(played.len(), 60);
    let push = pushes(web, id).await.remove(0);
    assert_eq!(push["connects"], 1, "one connection all along: {push}");
    assert_eq!(push["publishing"], true, "{push}");
    assert!(push["frames_lost"].as_u64().unwrap() >= 1, "{push}");
    pacer.abort();
    publisher.abort();
    hub.shutdown().await.unwrap();
}
