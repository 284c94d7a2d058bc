//! The web side on 127.0.0.1: the wall's WebSocket, MJPEG, events, metrics, and a real browser.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use vidcast_hub::HubOptions;
use vidcast_testkit::{api_streams, start_hub, wait_for, TestPublisher};

const PERIOD: Duration = Duration::from_millis(33);

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn open_wall_socket(http: SocketAddr) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws"))
        .await
        .expect("ws connect");
    ws
}

/// Reads messages until `pick` accepts one; other messages are skipped.
async fn next_matching<T>(
    ws: &mut Ws,
    limit: Duration,
    mut pick: impl FnMut(&Message) -> Option<T>,
) -> T {
    tokio::time::timeout(limit, async {
        loop {
            let msg = ws.next().await.expect("socket open").expect("message");
            if let Some(v) = pick(&msg) {
                return v;
            }
        }
    })
    .await
    .expect("message within limit")
}

fn binary_frame(msg: &Message) -> Option<(u32, u64, Vec<u8>)> {
    let Message::Binary(data) = msg else {
        return None;
    };
    assert!(data.len() > 24);
    assert_eq!(data[0], 1, "kind: frame");
    assert_eq!(data[1], 1, "codec: JPEG");
    let id = u32::from_be_bytes(data[4..8].try_into().unwrap());
    let seq = u64::from_be_bytes(data[8..16].try_into().unwrap());
    Some((id, seq, data[24..].to_vec()))
}

async fn first_stream_id(hub: &vidcast_hub::RunningHub, name: &str) -> u64 {
    wait_for(
        "the stream to have frames",
        Duration::from_secs(10),
        || async {
            api_streams(hub)
                .await
                .into_iter()
                .find(|s| s["name"] == name && s["frames"].as_u64() > Some(2))
                .and_then(|s| s["id"].as_u64())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_socket_sends_subscribed_frames_one_per_ack() {
    let hub = start_hub(HubOptions::default()).await;
    let _cam = TestPublisher::start(hub.ingest_addr, "cam", 96, 64, PERIOD, 10_000).await;
    let id = first_stream_id(&hub, "cam").await;
    let mut ws = open_wall_socket(hub.http_addr.unwrap()).await;
    let hello: Value = next_matching(&mut ws, Duration::from_secs(5), |m| match m {
        Message::Text(t) => serde_json::from_str::<Value>(t)
            .ok()
            .filter(|v| v["type"] == "hello"),
        _ => None,
    })
    .await;
    assert!(hello["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "connected" && e["name"] == "cam"));
    let streams: Value = next_matching(&mut ws, Duration::from_secs(5), |m| match m {
        Message::Text(t) => serde_json::from_str::<Value>(t)
            .ok()
            .filter(|v| v["type"] == "streams"),
        _ => None,
    })
    .await;
    assert_eq!(streams["live"], 1);
    assert_eq!(streams["streams"][0]["name"], "cam");

    // Nothing is subscribed yet: no frames.
    let early = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            if let Some(Ok(Message::Binary(_))) = ws.next().await {
                return;
            }
        }
    })
    .await;
    assert!(early.is_err(), "frames arrived before any subscription");

    ws.send(Message::Text(
        json!({"type": "subscribe", "ids": [id]}).to_string().into(),
    ))
    .await
    .unwrap();
    let mut last_seq = None;
    for _ in 0..5 {
        let (got_id, seq, jpeg) =
            next_matching(&mut ws, Duration::from_secs(5), binary_frame).await;
        assert_eq!(u64::from(got_id), id);
        assert_eq!(vidcast_hub::jpeg_dimensions(&jpeg), Some((96, 64)));
        if let Some(last) = last_seq {
            assert!(seq > last, "newer frames only: {seq} after {last}");
        }
        last_seq = Some(seq);
        // Until this ack, the hub sends no further frame of this stream.
        let extra = tokio::time::timeout(Duration::from_millis(150), async {
            loop {
                if let Some(Ok(Message::Binary(_))) = ws.next().await {
                    return;
                }
            }
        })
        .await;
        assert!(extra.is_err(), "a second frame came before the ack");
        ws.send(Message::Text(
            json!({"type": "ack", "id": id}).to_string().into(),
        ))
        .await
        .unwrap();
    }
    hub.shutdown().await.unwrap();
}

/// Opens `path` as an MJPEG viewer and reads `parts` pictures; returns the head and them.
async fn read_mjpeg(http: SocketAddr, path: &str, parts: usize) -> (String, Vec<Vec<u8>>) {
    let mut reader = vidcast_client::mjpeg::MjpegReader::open(http, path)
        .await
        .unwrap();
    let mut pictures = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while pictures.len() < parts {
            pictures.push(reader.next_picture().await.unwrap().to_vec());
        }
    })
    .await
    .expect("parts within 10 s");
    (reader.head.clone(), pictures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mjpeg_and_latest_jpeg_endpoints_serve_the_stream() {
    let hub = start_hub(HubOptions::default()).await;
    let _cam = TestPublisher::start(hub.ingest_addr, "cam", 128, 96, PERIOD, 10_000).await;
    let id = first_stream_id(&hub, "cam").await;
    let http = hub.http_addr.unwrap();
    let (head, pictures) = read_mjpeg(http, &format!("/streams/{id}.mjpg"), 4).await;
    assert!(
        head.contains("multipart/x-mixed-replace; boundary=vidcastframe"),
        "{head}"
    );
    for p in &pictures {
        assert_eq!(vidcast_hub::jpeg_dimensions(p), Some((128, 96)));
    }
    let (status, body) =
        vidcast_testkit::http::get(http, &format!("/streams/{id}.jpg"), Duration::from_secs(5))
            .await
            .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        vidcast_hub::jpeg_dimensions(&body),
        Some((128, 96)),
        "{:02x?}",
        &body[..body.len().min(64)]
    );
    let (status, _) = vidcast_testkit::http::get(http, "/streams/999.mjpg", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(status, 404);
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_the_mjpeg_stream_at_the_right_size() {
    let Some(ffprobe) = vidcast_testkit::require_tool("ffprobe", "ffmpeg") else {
        return;
    };
    let hub = start_hub(HubOptions::default()).await;
    let _cam = TestPublisher::start(hub.ingest_addr, "cam", 160, 120, PERIOD, 10_000).await;
    let id = first_stream_id(&hub, "cam").await;
    let url = format!("http://{}/streams/{id}.mjpg", hub.http_addr.unwrap());
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(ffprobe)
            .args([
                "-v",
                "error",
                "-f",
                "mpjpeg",
                "-read_intervals",
                "%+#5",
                "-count_frames",
            ])
            .args([
                "-show_entries",
                "stream=codec_name,width,height,nb_read_frames",
                "-of",
                "json",
                &url,
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ffprobe finishes")
    .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stream = &json["streams"][0];
    assert_eq!(stream["codec_name"], "mjpeg", "{json}");
    assert_eq!(
        (stream["width"].as_u64(), stream["height"].as_u64()),
        (Some(160), Some(120)),
        "{json}"
    );
    let frames: u64 = stream["nb_read_frames"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(frames >= 5, "{json}");
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_viewers_never_delay_the_others() {
    let hub = start_hub(HubOptions::default()).await;
    // Large frames fill a stalled reader's socket buffers quickly.
    let _cam = TestPublisher::start(hub.ingest_addr, "cam", 1920, 1080, PERIOD, 10_000).await;
    let id = first_stream_id(&hub, "cam").await;
    let http = hub.http_addr.unwrap();

    // A browser that subscribes then never reads, and an MJPEG client that never reads.
    let mut stalled_ws = open_wall_socket(http).await;
    stalled_ws
        .send(Message::Text(
            json!({"type": "subscribe", "ids": [id]}).to_string().into(),
        ))
        .await
        .unwrap();
    let mut stalled_mjpeg = TcpStream::connect(http).await.unwrap();
    stalled_mjpeg
        .write_all(format!("GET /streams/{id}.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A healthy MJPEG viewer still gets (nearly) every frame the hub receives.
    let frames_before = api_streams(&hub).await[0]["frames"].as_u64().unwrap();
    let (_, pictures) = read_mjpeg(http, &format!("/streams/{id}.mjpg"), 30).await;
    let frames_after = api_streams(&hub).await[0]["frames"].as_u64().unwrap();
    assert_eq!(pictures.len(), 30);
    let arrived = frames_after - frames_before;
    assert!(
        arrived <= 40,
        "30 pictures took {arrived} hub frames: the healthy viewer was held up"
    );
    drop((stalled_ws, stalled_mjpeg));
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_delivers_a_connect_event_and_metrics_parse() {
    let hub = start_hub(HubOptions::default()).await;
    let http = hub.http_addr.unwrap();
    let mut sse = TcpStream::connect(http).await.unwrap();
    sse.write_all(b"GET /api/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    // The subscription is live once the response head arrives.
    tokio::time::timeout(Duration::from_secs(5), async {
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sse.read(&mut chunk).await.unwrap();
            seen.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .unwrap();
    let head = String::from_utf8_lossy(&seen).to_string();
    assert!(head.contains("text/event-stream"), "{head}");
    let _cam = TestPublisher::start(hub.ingest_addr, "sse-cam", 64, 64, PERIOD, 10_000).await;
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let text = String::from_utf8_lossy(&seen).to_string();
            if text.contains("event: connected") && text.contains("\"name\":\"sse-cam\"") {
                return;
            }
            let n = sse.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            seen.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("a connect event within 5 s");

    first_stream_id(&hub, "sse-cam").await;
    let (status, body) = vidcast_testkit::http::get(http, "/metrics", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    check_prometheus_text(&text);
    assert!(text.contains("vidcast_streams_live 1"), "{text}");
    assert!(
        text.contains("vidcast_stream_frames_total{id=\"1\",name=\"sse-cam\""),
        "{text}"
    );
    // Latency as a histogram; the publisher's ephemeral port labels no series.
    assert!(
        text.contains("vidcast_stream_latency_seconds_bucket{id=\"1\",name=\"sse-cam\",codec=\"jpeg\",le=\"+Inf\"}"),
        "{text}"
    );
    assert!(!text.contains("peer="), "{text}");
    let (_, health) = vidcast_testkit::http::get(http, "/healthz", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(health, b"ok\n");
    hub.shutdown().await.unwrap();
}

/// Checks the Prometheus text exposition format line by line.
fn check_prometheus_text(text: &str) {
    let mut typed = std::collections::HashSet::new();
    let mut histograms = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            assert!(
                ["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(typed.insert(name.to_owned()), "TYPE twice for {name}");
            if kind == "histogram" {
                histograms.insert(name.to_owned());
            }
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        assert!(
            value == "NaN" || value.parse::<f64>().is_ok(),
            "bad value in {line}"
        );
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        // A histogram's series are its name with _bucket, _sum and _count.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| histograms.contains(*base))
            .unwrap_or(name);
        assert!(typed.contains(family), "{name} has no TYPE line");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                for pair in labels[1..labels.len() - 1].split("\",") {
                    let (key, value) = pair.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
                    assert!(
                        key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "{line}"
                    );
                    assert!(!value.trim_end_matches('"').contains('\n'), "{line}");
                }
            }
        }
    }
}
