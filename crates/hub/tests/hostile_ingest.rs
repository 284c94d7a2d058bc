//! Hostile peers on the ingest port against a real hub on 127.0.0.1: peers that never read,
//! silent legacy connections, trickled and oversized unfinished frames, ping-only publishers
//! and sequence numbers at the end of their range. Each must cost the hub a bounded amount,
//! for a bounded time, and be counted in `/metrics`.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use vidcast_hub::{HubOptions, Limits, RunningHub};
use vidcast_proto::{encode_frame_head, Frame, Kind, Message, Ping, Role, MAGIC};
use vidcast_testkit::{api_streams, start_hub, wait_for, RawPeer};

/// `vidcast_limit_hits_total{limit="…"}` from `/metrics`.
async fn limit_hits(hub: &RunningHub, limit: &str) -> u64 {
    let http = hub.http_addr.unwrap();
    let (status, body) = vidcast_testkit::http::get(http, "/metrics", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let key = format!("vidcast_limit_hits_total{{limit=\"{limit}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {key} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// A socket with a tiny receive buffer, so a peer that does not read stops the hub's writes
/// at once instead of after megabytes of loopback buffering.
async fn connect_small(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

fn pings(n: u64) -> BytesMut {
    let mut buf = BytesMut::new();
    for i in 0..n {
        Message::Ping(Ping { sent_us: i }).encode(&mut buf);
    }
    buf
}

fn jpeg_frame(seq: u64) -> BytesMut {
    let mut buf = BytesMut::new();
    Message::Frame(Frame {
        seq,
        capture_us: 0,
        is_keyframe: true,
        data: vidcast_testkit::jpeg(64, 64),
    })
    .encode(&mut buf);
    buf
}

/// Writes `bytes` until the hub closes the connection (a write fails); panics after `limit`.
async fn flood_until_closed(stream: &mut TcpStream, bytes: &[u8], limit: Duration) {
    let flooding = async {
        for _ in 0..10_000_000u64 {
            if stream.write_all(bytes).await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(limit, flooding)
        .await
        .expect("the hub closes a peer that floods pings and never reads");
}

/// The header of a frame message that declares `picture_len` picture bytes (the body is up to
/// the caller): kind, length, then seq, capture time and flags.
fn frame_head(picture_len: usize) -> BytesMut {
    let mut buf = BytesMut::new();
    let frame = Frame {
        seq: 0,
        capture_us: 0,
        is_keyframe: true,
        data: vec![0u8; picture_len].into(),
    };
    encode_frame_head(&frame, &mut buf);
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_pings_and_never_reads_is_closed_and_counted() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let options = HubOptions {
        limits: Limits {
            not_reading_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
        ..HubOptions::default()
    };
    let hub = start_hub(options).await;
    let mut peer = RawPeer::from_stream(connect_small(hub.ingest_addr).await);
    peer.handshake("never-reads").await;
    // A frame so it is a real publisher, then pings (and a frame now and then), never reading.
    let mut flood = jpeg_frame(0);
    flood.extend_from_slice(&pings(4096));
    flood_until_closed(&mut peer.stream, &flood, Duration::from_secs(30)).await;
    // Closed for flooding pings (within a second) or, failing that, for not reading.
    assert!(limit_hits(&hub, "not_reading").await + limit_hits(&hub, "ping_flood").await >= 1);
    wait_for("the stream offline", Duration::from_secs(5), || async {
        (hub.registry.live_count() == 0).then_some(())
    })
    .await;
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_pings_and_never_reads_gives_its_slot_back() {
    let options = HubOptions {
        limits: Limits {
            max_viewers: 1,
            not_reading_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
        ..HubOptions::default()
    };
    let hub = start_hub(options).await;
    let mut stuck = RawPeer::from_stream(connect_small(hub.ingest_addr).await);
    let mut hello = vidcast_testkit::hello("stuck", 0, 0);
    hello.role = Role::Viewer;
    let mut buf = BytesMut::from(&MAGIC[..]);
    Message::Hello(hello.clone()).encode(&mut buf);
    stuck.send(&buf).await;
    let flood = pings(4096);
    flood_until_closed(&mut stuck.stream, &flood, Duration::from_secs(30)).await;
    // Closed for flooding pings (within a second) or, failing that, for not reading.
    assert!(limit_hits(&hub, "not_reading").await + limit_hits(&hub, "ping_flood").await >= 1);
    // The slot is free again: another viewer is welcomed, not refused as busy.
    hello.name = "next".into();
    let mut next = RawPeer::connect(hub.ingest_addr).await;
    let mut buf = BytesMut::from(&MAGIC[..]);
    Message::Hello(hello).encode(&mut buf);
    next.send(&buf).await;
    let (said, _) = next.read_until_closed(Duration::from_secs(2)).await;
    assert!(
        said.iter().any(|m| matches!(m, Message::Welcome(_))),
        "{said:?}"
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_pings_politely_but_acks_nothing_gives_its_slot_back() {
    let options = HubOptions {
        limits: Limits {
            max_viewers: 1,
            not_reading_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
        ..HubOptions::default()
    };
    let hub = start_hub(options).await;
    let _cam = vidcast_testkit::TestPublisher::start(
        hub.ingest_addr,
        "cam",
        64,
        64,
        Duration::from_millis(30),
        100_000,
    )
    .await;
    wait_for("the camera live", Duration::from_secs(5), || async {
        (hub.registry.live_count() == 1).then_some(())
    })
    .await;
    // A viewer that says hello, then only pings once a second: it never reads, never acks.
    let mut stuck = RawPeer::connect(hub.ingest_addr).await;
    let mut hello = vidcast_testkit::hello("polite-but-stuck", 0, 0);
    hello.role = Role::Viewer;
    let mut buf = BytesMut::from(&MAGIC[..]);
    Message::Hello(hello.clone()).encode(&mut buf);
    stuck.send(&buf).await;
    let pinger = tokio::spawn(async move {
        for n in 0..30u64 {
            let mut ping = BytesMut::new();
            Message::Ping(Ping { sent_us: n }).encode(&mut ping);
            if stuck.stream.write_all(&ping).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    // Its slot comes free: another viewer is welcomed, not refused as busy.
    hello.name = "next".into();
    let welcomed = wait_for("the stuck viewer's slot", Duration::from_secs(15), || {
        let hello = hello.clone();
        async move {
            let mut next = RawPeer::connect(hub.ingest_addr).await;
            let mut buf = BytesMut::from(&MAGIC[..]);
            Message::Hello(hello).encode(&mut buf);
            next.send(&buf).await;
            let (said, _) = next.read_until_closed(Duration::from_millis(500)).await;
            said.iter()
                .any(|m| matches!(m, Message::Welcome(_)))
                .then_some(())
        }
    })
    .await;
    let () = welcomed;
    assert!(limit_hits(&hub, "not_reading").await >= 1);
    pinger.abort();
    hub.shutdown().await.unwrap();
}

/// The original client's first bytes: a length (little-endian u64) and `PROTO 4`.
fn legacy_start(pickle_len: u64) -> Vec<u8> {
    let mut bytes = pickle_len.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[0x80, 0x04]);
    bytes
}

/// Waits until the hub closes `stream` (EOF or error), for at most `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 256];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_legacy_connections_are_evicted_and_time_out() {
    let mut options = HubOptions {
        limits: Limits {
            max_pending_per_ip: 4,
            ..Limits::default()
        },
        ..HubOptions::default()
    };
    options.connection.timing.handshake_timeout = Duration::from_secs(1);
    let hub = start_hub(options).await;
    let mut silent = Vec::new();
    for _ in 0..12 {
        let mut s = TcpStream::connect(hub.ingest_addr).await.unwrap();
        s.write_all(&legacy_start(1000)).await.unwrap();
        silent.push(s);
    }
    for (i, s) in silent.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(10)).await,
            "silent legacy connection {i} still open"
        );
    }
    assert!(limit_hits(&hub, "pending_evicted").await >= 8);
    assert!(limit_hits(&hub, "handshake_timeout").await >= 1);
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_frame_is_closed_at_the_minimum_rate() {
    let options = HubOptions {
        limits: Limits {
            min_frame_rate_bps: 1 << 20,
            min_frame_time: Duration::from_secs(1),
            ..Limits::default()
        },
        ..HubOptions::default()
    };
    let hub = start_hub(options).await;
    let mut peer = RawPeer::connect(hub.ingest_addr).await;
    peer.handshake("trickle").await;
    peer.send(&jpeg_frame(0)).await;
    // 2 MiB declared: due within 2 s. One byte every 200 ms keeps it alive otherwise.
    let head = frame_head(2 << 20);
    peer.send(&head).await;
    let started = std::time::Instant::now();
    let trickle = async {
        for _ in 0..500 {
            if peer.stream.write_all(&[0]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if limit_hits(&hub, "slow_frame").await >= 1 {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), trickle)
        .await
        .expect("a trickled frame is cut off");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(limit_hits(&hub, "slow_frame").await, 1);
    wait_for("the stream offline", Duration::from_secs(5), || async {
        (hub.registry.live_count() == 0).then_some(())
    })
    .await;
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_frames_of_both_protocols_share_one_budget() {
    let mut options = HubOptions {
        limits: Limits {
            frame_budget_bytes: 1 << 20,
            ..Limits::default()
        },
        ..HubOptions::default()
    };
    // Room for the steps below on a loaded machine; the legacy peer stays silent throughout.
    options.connection.timing.handshake_timeout = Duration::from_secs(30);
    options.connection.timing.peer_timeout = Duration::from_secs(30);
    let hub = start_hub(options).await;
    // A legacy picture of 700 000 bytes declared and none of it sent: its length prefix alone
    // reserves the picture from the budget.
    let mut legacy = TcpStream::connect(hub.ingest_addr).await.unwrap();
    legacy.write_all(&legacy_start(700_000)).await.unwrap();
    // A vidcast publisher's 700 000-byte frame does not fit in what is left.
    let mut peer = RawPeer::connect(hub.ingest_addr).await;
    peer.handshake("big").await;
    peer.send(&frame_head(700_000)).await;
    let (_, closed) = peer.read_until_closed(Duration::from_secs(5)).await;
    assert!(closed, "the frame over the budget closes its connection");
    assert_eq!(limit_hits(&hub, "frame_budget").await, 1);
    // The legacy connection ends: its reservation is given back, and the same frame fits.
    drop(legacy);
    let mut again = RawPeer::connect(hub.ingest_addr).await;
    again.handshake("big-again").await;
    let mut whole = frame_head(700_000);
    whole.extend_from_slice(&vec![0u8; 700_000]);
    again.send(&whole).await;
    wait_for(
        "the whole frame counted",
        Duration::from_secs(5),
        || async {
            let streams = api_streams(&hub).await;
            streams
                .iter()
                .any(|s| s["name"] == "big-again" && s["frames"] == 1)
                .then_some(())
        },
    )
    .await;
    assert_eq!(limit_hits(&hub, "frame_budget").await, 1);
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_only_publishers_cannot_fill_the_hub() {
    let options = HubOptions {
        limits: Limits {
            max_clients: 6,
            max_pending_per_ip: 4,
            max_pending: 4,
            first_frame_timeout: Duration::from_secs(2),
            ..Limits::default()
        },
        ..HubOptions::default()
    };
    let hub = start_hub(options).await;
    let mut squatters = Vec::new();
    for i in 0..8 {
        let mut peer = RawPeer::connect(hub.ingest_addr).await;
        peer.handshake(&format!("squatter-{i}")).await;
        squatters.push(peer);
    }
    wait_for("the oldest evicted", Duration::from_secs(5), || async {
        (hub.registry.live_count() <= 4).then_some(())
    })
    .await;
    // A real publisher gets in, and stays once it sends frames.
    let mut real = RawPeer::connect(hub.ingest_addr).await;
    real.handshake("real").await;
    real.send(&jpeg_frame(0)).await;
    // The squatters that are left go when their time without a frame is up (they keep
    // pinging, so only the first-frame rule can end them).
    let ping = pings(1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while hub.registry.live_count() > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "squatters still live: {}",
            hub.registry.live_count()
        );
        for s in squatters.iter_mut().chain([&mut real]) {
            let _ = s.stream.write_all(&ping).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    real.send(&jpeg_frame(1)).await;
    assert!(limit_hits(&hub, "frameless_publisher").await >= 1);
    assert!(limit_hits(&hub, "pending_evicted").await >= 4);
    let streams = api_streams(&hub).await;
    assert!(streams
        .iter()
        .any(|s| s["name"] == "real" && s["live"] == true));
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_jump_to_the_last_number_is_a_restart_not_drops() {
    let hub = start_hub(HubOptions::default()).await;
    let mut peer = RawPeer::connect(hub.ingest_addr).await;
    peer.handshake("jumpy").await;
    for seq in [0, 1, u64::MAX, u64::MAX, 0, 1] {
        peer.send(&jpeg_frame(seq)).await;
    }
    let stream = wait_for("six frames", Duration::from_secs(5), || async {
        api_streams(&hub)
            .await
            .into_iter()
            .find(|s| s["name"] == "jumpy" && s["frames"] == 6)
    })
    .await;
    assert_eq!(stream["live"], true, "the session survived: {stream}");
    assert!(stream["dropped"].as_u64().unwrap() < 10, "{stream}");
    hub.shutdown().await.unwrap();
}

/// Guards the message layout the byte-level helpers above assume.
#[test]
fn frame_head_is_a_frame_header() {
    let head = frame_head(1000);
    assert_eq!(head[0], Kind::Frame as u8);
}
