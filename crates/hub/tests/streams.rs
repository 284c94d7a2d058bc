//! End to end on 127.0.0.1: real hub, real publishers, raw peers misbehaving.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use bytes::BytesMut;
use serde_json::Value;
use vidcast_hub::HubOptions;
use vidcast_proto::{GoodbyeCode, HubConfig, Message, RejectCode, Timing, MAGIC};
use vidcast_testkit::{api_events, api_streams, start_hub, wait_for, RawPeer, TestPublisher};

const PERIOD: Duration = Duration::from_millis(33);

fn stream_named<'a>(streams: &'a [Value], name: &str) -> Option<&'a Value> {
    streams.iter().find(|s| s["name"] == name)
}

fn frames_of(streams: &[Value], name: &str) -> u64 {
    stream_named(streams, name)
        .and_then(|s| s["frames"].as_u64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_publishers_stream_in_order_and_the_api_lists_them() {
    let hub = start_hub(HubOptions::default()).await;
    let mut publishers = Vec::new();
    for i in 0..8u16 {
        // Different sizes per publisher, so a mix-up would show.
        let (w, h) = (64 + 16 * i, 48 + 8 * i);
        publishers.push(
            TestPublisher::start(hub.ingest_addr, &format!("cam-{i}"), w, h, PERIOD, 10_000).await,
        );
    }
    let streams = wait_for(
        "8 streams with 30 frames each",
        Duration::from_secs(20),
        || async {
            let streams = api_streams(&hub).await;
            let ready = (0..8).all(|i| frames_of(&streams, &format!("cam-{i}")) >= 30);
            ready.then_some(streams)
        },
    )
    .await;
    assert_eq!(streams.len(), 8);
    for (i, publisher) in publishers.iter().enumerate() {
        let s = stream_named(&streams, &format!("cam-{i}")).expect("listed");
        assert_eq!(
            s["peer"],
            publisher.local_addr.to_string(),
            "peer address of cam-{i}"
        );
        assert_eq!(s["codec"], "jpeg");
        assert_eq!(s["width"], 64 + 16 * i as u64);
        assert_eq!(s["height"], 48 + 8 * i as u64);
        assert_eq!(s["live"], true);
        assert_eq!(s["out_of_order"], 0, "frames of cam-{i} arrived in order");
        assert_eq!(
            s["size_mismatches"], 0,
            "frames of cam-{i} have the announced size"
        );
        assert!(s["bytes"].as_u64().unwrap_or(0) > 0);
        for key in ["id", "fps", "dropped", "latency_ms"] {
            assert!(s.get(key).is_some(), "{key} missing in {s}");
        }
        let latency = &s["latency_ms"];
        assert!(
            latency["p50"].as_f64().is_some() && latency["p99"].as_f64().is_some(),
            "{latency}"
        );
    }
    assert_eq!(hub.registry.live_count(), 8);
    for p in &publishers {
        let _ = p.stop.send(true);
    }
    for p in publishers {
        let report = p.task.await.expect("task").expect("publish ends cleanly");
        assert!(report.stats.frames_sent >= 30);
    }
    wait_for("all offline", Duration::from_secs(5), || async {
        (hub.registry.live_count() == 0).then_some(())
    })
    .await;
    hub.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_killed_mid_frame_leaves_others_streaming() {
    let hub = start_hub(HubOptions::default()).await;
    let mut others = Vec::new();
    for i in 0..3 {
        others.push(
            TestPublisher::start(
                hub.ingest_addr,
                &format!("steady-{i}"),
                64,
                64,
                PERIOD,
                10_000,
            )
            .await,
        );
    }
    let mut victim = RawPeer::connect(hub.ingest_addr).await;
    victim.handshake("victim").await;
    wait_for("4 live", Duration::from_secs(10), || async {
        (hub.registry.live_count() == 4).then_some(())
    })
    .await;
    let before = api_streams(&hub).await;

    // Half a frame: header says 1000 picture bytes, 100 arrive, then the process "dies".
    let mut buf = BytesMut::new();
    vidcast_proto::encode_frame_head(
        &vidcast_proto::Frame {
            seq: 0,
            capture_us: 0,
            is_keyframe: true,
            data: vec![0u8; 1000].into(),
        },
        &mut buf,
    );
    buf.extend_from_slice(&[0u8; 100]);
    victim.send(&buf).await;
    let victim_addr = victim.local_addr;
    drop(victim);

    let event = wait_for("the disconnect event", Duration::from_secs(5), || async {
        api_events(&hub)
            .await
            .into_iter()
            .find(|e| e["kind"] == "disconnected" && e["name"] == "victim")
    })
    .await;
    assert_eq!(event["peer"], victim_addr.to_string());
    assert_eq!(event["live"], 3);
    assert_eq!(event["orderly"], false);
    let reason = event["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("mid-message"), "{reason}");
    assert_eq!(hub.registry.live_count(), 3);

    // The others keep streaming: each gains frames after the kill, and none went offline.
    let after_kill = api_streams(&hub).await;
    wait_for(
        "others to gain 15 frames each",
        Duration::from_secs(10),
        || async {
            let now = api_streams(&hub).await;
            (0..3)
                .all(|i| {
                    let name = format!("steady-{i}");
                    frames_of(&now, &name) >= frames_of(&after_kill, &name) + 15
                })
                .then_some(())
        },
    )
    .await;
    for i in 0..3 {
        let name = format!("steady-{i}");
        assert!(frames_of(&after_kill, &name) >= frames_of(&before, &name));
        assert_eq!(
            stream_named(&api_streams(&hub).await, &name).expect("listed")["live"],
            true
        );
    }
    hub.shutdown().await.expect("shutdown");
}

fn reject_of(messages: &[Message]) -> Option<(RejectCode, String)> {
    messages.iter().find_map(|m| match m {
        Message::Reject(r) => Some((r.code, r.reason.clone())),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_peers_get_a_clear_error_and_nobody_else_notices() {
    let options = HubOptions {
        connection: HubConfig {
            timing: Timing {
                handshake_timeout: Duration::from_millis(500),
                ..Timing::default()
            },
            max_frame_bytes: 1 << 20,
        },
        ..HubOptions::default()
    };
    let hub = start_hub(options).await;
    let steady = TestPublisher::start(hub.ingest_addr, "steady", 64, 64, PERIOD, 10_000).await;
    wait_for("steady streaming", Duration::from_secs(10), || async {
        (frames_of(&api_streams(&hub).await, "steady") >= 5).then_some(())
    })
    .await;
    let before = frames_of(&api_streams(&hub).await, "steady");

    // Garbage: an HTTP request on the ingest port.
    let mut garbage = RawPeer::connect(hub.ingest_addr).await;
    garbage.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (said, closed) = garbage.read_until_closed(Duration::from_secs(3)).await;
    assert!(closed, "hub closes on garbage");
    let (code, reason) = reject_of(&said).expect("a reject");
    assert_eq!(code, RejectCode::BadHello);
    assert!(reason.contains("not a vidcast peer"), "{reason}");

    // A magic that is one byte off.
    let mut wrong_magic = RawPeer::connect(hub.ingest_addr).await;
    wrong_magic.send(b"\x89VCASX\r\n").await;
    let (said, closed) = wrong_magic.read_until_closed(Duration::from_secs(3)).await;
    assert!(closed);
    assert!(reject_of(&said).is_some_and(|(_, r)| r.contains("magic")));

    // An oversize frame length after a good handshake: refused before any allocation.
    let mut oversize = RawPeer::connect(hub.ingest_addr).await;
    oversize.handshake("oversize").await;
    oversize.send(&[0x10, 0x7f, 0xff, 0xff, 0xff]).await;
    let (said, closed) = oversize.read_until_closed(Duration::from_secs(3)).await;
    assert!(closed);
    let goodbye = said.iter().find_map(|m| match m {
        Message::Goodbye(g) => Some(g.clone()),
        _ => None,
    });
    let goodbye = goodbye.expect("a goodbye");
    assert_eq!(goodbye.code, GoodbyeCode::ProtocolError);
    assert!(
        goodbye.reason.contains("frame of 2147483630 bytes"),
        "{}",
        goodbye.reason
    );

    // A stalled handshake: half the magic, then nothing.
    let mut stalled = RawPeer::connect(hub.ingest_addr).await;
    stalled.send(&MAGIC[..3]).await;
    let (said, closed) = stalled.read_until_closed(Duration::from_secs(3)).await;
    assert!(closed, "hub hangs up on a stalled handshake");
    let (code, _) = reject_of(&said).expect("a reject");
    assert_eq!(code, RejectCode::Timeout);

    // A wrong version gets a reject that says which versions exist.
    let mut old = RawPeer::connect(hub.ingest_addr).await;
    let mut buf = BytesMut::from(&MAGIC[..]);
    let mut hello = vidcast_testkit::hello("future", 64, 64);
    hello.version = 9;
    Message::Hello(hello).encode(&mut buf);
    old.send(&buf).await;
    let (said, _) = old.read_until_closed(Duration::from_secs(3)).await;
    let (code, reason) = reject_of(&said).expect("a reject");
    assert_eq!(code, RejectCode::Version);
    assert!(reason.contains("version 9"), "{reason}");

    // Meanwhile the steady publisher never noticed.
    let streams = api_streams(&hub).await;
    assert_eq!(
        streams.len(),
        2,
        "only steady and oversize ever became streams: {streams:?}"
    );
    let steady_now = stream_named(&streams, "steady").expect("listed");
    assert_eq!(steady_now["live"], true);
    assert!(frames_of(&streams, "steady") > before);
    let _ = steady.stop.send(true);
    steady
        .task
        .await
        .expect("task")
        .expect("steady publisher ends cleanly");
    hub.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_whose_video_ends_is_logged_as_left() {
    let hub = start_hub(HubOptions::default()).await;
    let publisher = TestPublisher::start(
        hub.ingest_addr,
        "clip",
        64,
        64,
        Duration::from_millis(5),
        20,
    )
    .await;
    let report = publisher.task.await.expect("task").expect("publish");
    // Frames the source made while the handshake was still going were replaced in its
    // one-frame mailbox (latest wins) before the connection saw them: neither sent nor
    // counted by it. On a loaded machine that is several of the 20.
    let accounted = report.stats.frames_sent + report.stats.frames_dropped;
    assert!(
        report.stats.frames_sent >= 1 && accounted <= 20,
        "sent {} dropped {} of 20",
        report.stats.frames_sent,
        report.stats.frames_dropped
    );
    let event = wait_for("the leave event", Duration::from_secs(5), || async {
        api_events(&hub)
            .await
            .into_iter()
            .find(|e| e["kind"] == "disconnected")
    })
    .await;
    assert_eq!(event["orderly"], true);
    assert!(
        event["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("video finished"),
        "{event}"
    );
    let streams = api_streams(&hub).await;
    assert_eq!(
        streams[0]["frames"].as_u64(),
        Some(report.stats.frames_sent)
    );
    assert_eq!(streams[0]["live"], false);
    hub.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_shutdown_says_goodbye_to_every_client() {
    let hub = start_hub(HubOptions::default()).await;
    let publisher = TestPublisher::start(hub.ingest_addr, "cam", 64, 64, PERIOD, 10_000).await;
    wait_for("streaming", Duration::from_secs(10), || async {
        (frames_of(&api_streams(&hub).await, "cam") >= 3).then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    hub.shutdown().await.expect("shutdown");
    assert!(started.elapsed() < Duration::from_secs(3));
    let report = tokio::time::timeout(Duration::from_secs(5), publisher.task)
        .await
        .expect("publisher notices within 5 s")
        .expect("task")
        .expect("an orderly end");
    assert!(
        matches!(
            report.reason,
            vidcast_proto::CloseReason::PeerGoodbye {
                code: GoodbyeCode::Shutdown,
                ..
            }
        ),
        "{:?}",
        report.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_client_name_gets_its_old_id_back() {
    let hub = start_hub(HubOptions::default()).await;
    let first = TestPublisher::start(hub.ingest_addr, "cam-door", 64, 64, PERIOD, 10_000).await;
    wait_for(
        "first session streaming",
        Duration::from_secs(10),
        || async { (frames_of(&api_streams(&hub).await, "cam-door") >= 3).then_some(()) },
    )
    .await;
    let id = stream_named(&api_streams(&hub).await, "cam-door").unwrap()["id"].clone();
    let _ = first.stop.send(true);
    first.task.await.unwrap().unwrap();
    wait_for("offline", Duration::from_secs(5), || async {
        (stream_named(&api_streams(&hub).await, "cam-door").unwrap()["live"] == false).then_some(())
    })
    .await;
    let frames_before = frames_of(&api_streams(&hub).await, "cam-door");
    let _second = TestPublisher::start(hub.ingest_addr, "cam-door", 64, 64, PERIOD, 10_000).await;
    wait_for(
        "back live with more frames",
        Duration::from_secs(10),
        || async {
            let streams = api_streams(&hub).await;
            let s = stream_named(&streams, "cam-door")?;
            (s["live"] == true && frames_of(&streams, "cam-door") > frames_before).then_some(())
        },
    )
    .await;
    let streams = api_streams(&hub).await;
    assert_eq!(streams.len(), 1, "one tile, not two: {streams:?}");
    assert_eq!(streams[0]["id"], id);
    assert_eq!(
        streams[0]["dropped"], 0,
        "the restarted sequence is not counted as drops"
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ends_tcp_statistics_reach_the_api() {
    let hub = start_hub(HubOptions::default()).await;
    let _cam = TestPublisher::start(hub.ingest_addr, "cam", 320, 240, PERIOD, 10_000).await;
    let s = wait_for(
        "TCP figures from both ends",
        Duration::from_secs(10),
        || async {
            let streams = api_streams(&hub).await;
            let s = stream_named(&streams, "cam")?.clone();
            let hub_side = s["tcp"]["hub"]["bytes_received"].as_u64()? > 10_000;
            let pub_side = s["tcp"]["publisher"]["cwnd"].as_u64()? > 0;
            (hub_side && pub_side).then_some(s)
        },
    )
    .await;
    let publisher = &s["tcp"]["publisher"];
    assert!(publisher["rtt_ms"].as_f64().unwrap() >= 0.0, "{s}");
    assert!(publisher["cwnd_bytes"].as_u64().unwrap() > 0, "{s}");
    let http = hub.http_addr.unwrap();
    let id = s["id"].as_u64().unwrap();
    let series = vidcast_testkit::http::get_json(
        http,
        &format!("/api/streams/{id}/net"),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let t = series["hub_t"].as_array().unwrap();
    let bytes = series["hub_bytes_received"].as_array().unwrap();
    assert!(t.len() >= 2 && t.len() == bytes.len(), "{series}");
    assert!(
        bytes.windows(2).all(|w| w[0].as_u64() <= w[1].as_u64()),
        "bytes only grow: {series}"
    );
    assert!(
        t.iter().all(|v| v.as_f64().unwrap() <= 0.0),
        "times are before now: {series}"
    );
    assert!(!series["pub_cwnd"].as_array().unwrap().is_empty());
    let (status, _) =
        vidcast_testkit::http::get(http, "/api/streams/99/net", Duration::from_secs(5))
            .await
            .unwrap();
    assert_eq!(status, 404);
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_silent_connections_never_stops_real_publishers() {
    let options = HubOptions {
        limits: vidcast_hub::Limits {
            max_pending_per_ip: 64,
            ..vidcast_hub::Limits::default()
        },
        ..HubOptions::default()
    };
    let hub = start_hub(options).await;
    // 500 connections that never speak, all from this address.
    let mut flood = Vec::new();
    for _ in 0..500 {
        flood.push(
            tokio::net::TcpStream::connect(hub.ingest_addr)
                .await
                .unwrap(),
        );
    }
    let mut real = Vec::new();
    for i in 0..4 {
        real.push(
            TestPublisher::start(
                hub.ingest_addr,
                &format!("real-{i}"),
                64,
                64,
                PERIOD,
                10_000,
            )
            .await,
        );
    }
    wait_for(
        "4 real publishers live",
        Duration::from_secs(10),
        || async { (hub.registry.live_count() == 4).then_some(()) },
    )
    .await;
    let before = api_streams(&hub).await;
    let started = std::time::Instant::now();
    // Keep flooding while measuring: open another 200 silent connections.
    for _ in 0..200 {
        flood.push(
            tokio::net::TcpStream::connect(hub.ingest_addr)
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = api_streams(&hub).await;
    let secs = started.elapsed().as_secs_f64();
    for i in 0..4 {
        let name = format!("real-{i}");
        let fps = (frames_of(&after, &name) - frames_of(&before, &name)) as f64 / secs;
        // 30 fps sent; the bench shows 30.00 under a 500-connection flood. Loose here for CI noise.
        assert!(fps >= 20.0, "{name}: {fps:.1} fps under the flood");
        assert_eq!(stream_named(&after, &name).unwrap()["live"], true);
    }
    let (_, metrics) =
        vidcast_testkit::http::get(hub.http_addr.unwrap(), "/metrics", Duration::from_secs(5))
            .await
            .unwrap();
    let metrics = String::from_utf8(metrics).unwrap();
    let pending: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vidcast_connections_pending "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        pending <= 64,
        "pending connections stay within the limit: {pending}"
    );
    drop(flood);
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_extra_clients_and_viewers_and_cap_the_frame_rate() {
    let options = HubOptions {
        limits: vidcast_hub::Limits {
            max_clients: 1,
            max_viewers: 1,
            max_fps: 10.0,
            ..vidcast_hub::Limits::default()
        },
        ..HubOptions::default()
    };
    let hub = start_hub(options).await;
    // 100 fps against a 10 fps limit: the excess is dropped and counted.
    let _fast = TestPublisher::start(
        hub.ingest_addr,
        "fast",
        64,
        64,
        Duration::from_millis(10),
        10_000,
    )
    .await;
    let s = wait_for("rate-limited frames", Duration::from_secs(10), || async {
        let streams = api_streams(&hub).await;
        let s = stream_named(&streams, "fast")?.clone();
        (s["rate_limited"].as_u64()? > 20).then_some(s)
    })
    .await;
    assert!(s["fps"].as_f64().unwrap() <= 15.0, "{s}");

    let mut second = RawPeer::connect(hub.ingest_addr).await;
    let mut buf = BytesMut::from(&MAGIC[..]);
    Message::Hello(vidcast_testkit::hello("second", 64, 64)).encode(&mut buf);
    second.send(&buf).await;
    let (said, _) = second.read_until_closed(Duration::from_secs(3)).await;
    let (code, reason) = reject_of(&said).expect("a reject");
    assert_eq!(code, RejectCode::Busy);
    assert!(reason.contains("hub full"), "{reason}");

    let http = hub.http_addr.unwrap();
    let id = s["id"].as_u64().unwrap();
    let _viewer = vidcast_client::mjpeg::MjpegReader::open(http, &format!("/streams/{id}.mjpg"))
        .await
        .unwrap();
    let refused =
        vidcast_client::mjpeg::MjpegReader::open(http, &format!("/streams/{id}.mjpg")).await;
    assert!(refused.is_err_and(|e| e.to_string().contains("503")));
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_sends_no_frames_is_closed_as_idle() {
    let options = HubOptions {
        limits: vidcast_hub::Limits {
            idle_timeout: Duration::from_millis(600),
            ..vidcast_hub::Limits::default()
        },
        ..HubOptions::default()
    };
    let hub = start_hub(options).await;
    let mut quiet = RawPeer::connect(hub.ingest_addr).await;
    quiet.handshake("quiet").await;
    let (said, closed) = quiet.read_until_closed(Duration::from_secs(3)).await;
    assert!(closed);
    let goodbye = said.iter().find_map(|m| match m {
        Message::Goodbye(g) => Some(g.clone()),
        _ => None,
    });
    let goodbye = goodbye.expect("a goodbye");
    assert_eq!(goodbye.code, GoodbyeCode::Limit);
    assert!(goodbye.reason.contains("idle"), "{}", goodbye.reason);
    hub.shutdown().await.unwrap();
}

async fn hello_with_token(hub: &vidcast_hub::RunningHub, name: &str, token: &str) -> Vec<Message> {
    let mut peer = RawPeer::connect(hub.ingest_addr).await;
    let mut buf = BytesMut::from(&MAGIC[..]);
    let mut hello = vidcast_testkit::hello(name, 64, 64);
    hello.token = token.to_owned();
    Message::Hello(hello).encode(&mut buf);
    peer.send(&buf).await;
    // A welcome means accepted; read until then or until the hub hangs up.
    let (said, _) = peer.read_until_closed(Duration::from_millis(500)).await;
    said
}

async fn http_status(http: std::net::SocketAddr, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(http).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_guard_ingest_and_web_and_can_be_revoked() {
    let dir = std::env::temp_dir().join(format!("vidcast-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tokens");
    std::fs::write(&file, "cam-1 one-secret publish,view\ncam-2 two-secret\n").unwrap();
    let auth = vidcast_hub::Auth::new(Some("shared-secret".into()), Some(file.clone())).unwrap();
    let options = HubOptions {
        auth: std::sync::Arc::new(auth),
        ..HubOptions::default()
    };
    let hub = start_hub(options).await;

    let accepted = |said: &[Message]| said.iter().any(|m| matches!(m, Message::Welcome(_)));
    assert!(accepted(
        &hello_with_token(&hub, "cam-1", "one-secret").await
    ));
    assert!(accepted(
        &hello_with_token(&hub, "anyone", "shared-secret").await
    ));
    for (name, token, why) in [
        ("cam-1", "two-secret", "wrong token for this client name"),
        ("cam-1", "", "a token is required"),
        ("anyone", "guess", "wrong token"),
    ] {
        let said = hello_with_token(&hub, name, token).await;
        let (code, reason) = reject_of(&said).unwrap_or_else(|| panic!("{name}/{token}: {said:?}"));
        assert_eq!(code, RejectCode::Unauthorized);
        assert!(reason.contains(why), "{reason}");
        assert!(
            token.is_empty() || !reason.contains(token),
            "the token is never echoed"
        );
    }
    // Revoke cam-2 by deleting its line.
    std::fs::write(&file, "cam-1 one-secret publish,view\n").unwrap();
    let f = std::fs::File::options().write(true).open(&file).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    let said = hello_with_token(&hub, "cam-2", "two-secret").await;
    assert_eq!(
        reject_of(&said).map(|(c, _)| c),
        Some(RejectCode::Unauthorized)
    );

    let http = hub.http_addr.unwrap();
    let get = |path: &str, extra: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n")
    };
    assert_eq!(http_status(http, &get("/api/streams", "")).await.0, 401);
    assert_eq!(http_status(http, &get("/metrics", "")).await.0, 401);
    assert_eq!(
        http_status(http, &get("/api/streams", "Authorization: Bearer nope\r\n"))
            .await
            .0,
        401
    );
    assert_eq!(
        http_status(
            http,
            &get("/api/streams", "Authorization: Bearer shared-secret\r\n")
        )
        .await
        .0,
        200
    );
    assert_eq!(
        http_status(http, &get("/api/streams?token=one-secret", ""))
            .await
            .0,
        200
    );
    assert_eq!(
        http_status(
            http,
            &get("/metrics", "Cookie: a=b; vidcast_token=shared-secret\r\n")
        )
        .await
        .0,
        200
    );
    assert_eq!(http_status(http, &get("/healthz", "")).await.0, 200);
    let (status, page) = http_status(http, &get("/", "")).await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"login\""), "the page asks for a token");
    hub.shutdown().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The original Python client's bytes for one picture whose pixel (x, y) is (x, y, 7) in BGR.
fn legacy_frame(width: u32, height: u32) -> Vec<u8> {
    let mut bgr = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            bgr.extend_from_slice(&[(x % 256) as u8, (y % 256) as u8, 7]);
        }
    }
    vidcast_legacy::encode_frame(width, height, &bgr).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_python_stream_is_accepted_on_the_same_port() {
    let hub = start_hub(HubOptions::default()).await;
    let _modern = TestPublisher::start(hub.ingest_addr, "modern", 64, 64, PERIOD, 10_000).await;
    let mut old = RawPeer::connect(hub.ingest_addr).await;
    for _ in 0..12 {
        old.send(&legacy_frame(380, 286)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let name = format!("legacy@{}", old.local_addr.ip());
    let s = wait_for(
        "the legacy stream with frames",
        Duration::from_secs(10),
        || async {
            let streams = api_streams(&hub).await;
            let s = stream_named(&streams, &name)?.clone();
            (s["frames"].as_u64()? + s["dropped"].as_u64()? >= 12).then_some(s)
        },
    )
    .await;
    assert_eq!(s["legacy"], true);
    assert_eq!(s["codec"], "jpeg");
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(380), Some(286))
    );
    assert_eq!(s["peer"], old.local_addr.to_string());
    assert!(
        s["latency_ms"].is_null(),
        "no timestamps, so no latency: {s}"
    );
    // The picture came through: the hub's JPEG decodes to the sent pixels (within JPEG error).
    let id = s["id"].as_u64().unwrap();
    let (status, jpeg) = vidcast_testkit::http::get(
        hub.http_addr.unwrap(),
        &format!("/streams/{id}.jpg"),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let img = vidcast_media::decode_jpeg(&jpeg).unwrap();
    let at = |x: u32, y: u32| &img.rgb[((y * img.width + x) * 3) as usize..][..3];
    // RGB now: (7, y, x).
    let px = at(200, 100);
    assert!(
        px[0].abs_diff(7) < 12 && px[1].abs_diff(100) < 12 && px[2].abs_diff(200) < 12,
        "{px:?}"
    );

    // A hostile pickle (a GLOBAL of os.system) is refused and closed; nothing else notices.
    let mut evil = RawPeer::connect(hub.ingest_addr).await;
    let pickle = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";
    let mut bytes = (pickle.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(pickle);
    evil.send(&bytes).await;
    let (_, closed) = evil.read_until_closed(Duration::from_secs(3)).await;
    assert!(closed, "the hub hangs up on a hostile pickle");
    let streams = api_streams(&hub).await;
    assert_eq!(stream_named(&streams, "modern").unwrap()["live"], true);
    assert_eq!(streams.len(), 2, "the hostile client never became a stream");

    drop(old);
    let event = wait_for("the legacy disconnect", Duration::from_secs(5), || async {
        api_events(&hub)
            .await
            .into_iter()
            .find(|e| e["kind"] == "disconnected" && e["name"] == name.as_str())
    })
    .await;
    assert!(
        event["reason"].as_str().unwrap().contains("closed"),
        "{event}"
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_legacy_refuses_the_original_stream() {
    let hub = start_hub(HubOptions {
        accept_legacy: false,
        ..HubOptions::default()
    })
    .await;
    let mut old = RawPeer::connect(hub.ingest_addr).await;
    old.send(&legacy_frame(16, 16)).await;
    let (said, closed) = old.read_until_closed(Duration::from_secs(3)).await;
    assert!(closed);
    assert!(reject_of(&said).is_some_and(|(_, r)| r.contains("not a vidcast peer")));
    assert!(api_streams(&hub).await.is_empty());
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_publishers_adaptation_shows_in_the_api_and_frames_of_its_new_size_are_not_mismatches() {
    let hub = start_hub(HubOptions::default()).await;
    let mut peer = RawPeer::connect(hub.ingest_addr).await;
    peer.handshake("adapting").await;
    let report = vidcast_proto::EncoderReport {
        level: 7,
        quality: 40,
        fps_milli: 10_000,
        width: 32,
        height: 32,
        link_bps: 4_800_000,
    };
    let mut buf = BytesMut::new();
    Message::EncoderReport(report).encode(&mut buf);
    // A frame at the reduced size the report announced (the hello said 64x64).
    Message::Frame(vidcast_proto::Frame {
        seq: 0,
        capture_us: 1,
        is_keyframe: true,
        data: vidcast_testkit::jpeg(32, 32),
    })
    .encode(&mut buf);
    peer.send(&buf).await;
    let stream = wait_for("the frame", Duration::from_secs(5), || async {
        let s = api_streams(&hub).await.remove(0);
        (s["frames"] == 1).then_some(s)
    })
    .await;
    let encoder = &stream["encoder"];
    assert_eq!(encoder["adapting"], true, "{stream}");
    assert_eq!(encoder["quality"], 40);
    assert_eq!(encoder["fps"], 10.0);
    assert_eq!(encoder["link_mbps"], 4.8);
    assert_eq!(
        (encoder["width"].clone(), encoder["height"].clone()),
        (32.into(), 32.into())
    );
    assert_eq!(stream["size_mismatches"], 0, "{stream}");
    // The tile keeps the announced size.
    assert_eq!(stream["width"], 64);
}
