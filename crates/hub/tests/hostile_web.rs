//! Hostile peers on the web port (127.0.0.1 only): slowloris heads over plain HTTP, with a
//! token, and over TLS; idle keep-alive connections; floods past the connection caps; wall
//! sockets and MJPEG readers that take nothing. Each must cost the hub a bounded, counted
//! amount, and real viewers must keep getting in.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use vidcast_client::{ClientTls, Fingerprint, TlsTrust};
use vidcast_hub::{Auth, HubOptions, Limits, RunningHub, SelfSigned};
use vidcast_testkit::{api_streams, start_hub, wait_for, TestPublisher};

const PERIOD: Duration = Duration::from_millis(33);
const SHORT: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(120);
/// The stall timeout of the stalled-viewer tests: long enough that the test sees the stalled
/// readers hold every slot (a 503) on a loaded machine before they are cut.
const STALL: Duration = Duration::from_secs(3);

fn limits(header_timeout: Duration, stall_timeout: Duration) -> Limits {
    Limits {
        http_header_timeout: header_timeout,
        http_stall_timeout: stall_timeout,
        ..Limits::default()
    }
}

/// A TCP connection to `to` from the loopback address `from` (any 127.0.0.0/8 address works
/// on Linux without configuration).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// Reads until the hub closes the connection (EOF or reset) or `limit` passes; whether it
/// closed.
async fn closed_within<S: AsyncRead + Unpin>(stream: &mut S, limit: Duration) -> bool {
    tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        for _ in 0..100_000 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// `GET path` on a fresh connection with `Connection: close`; the status and the body.
async fn get(http: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(http).await.unwrap();
    request(&mut stream, path).await
}

async fn request<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, path: &str) -> (u16, String) {
    let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut text = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut text)).await;
    let text = String::from_utf8_lossy(&text).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// `vidcast_limit_hits_total{limit="…"}` from /metrics.
/// `vidcast_viewers{kind="KIND"}` now (/metrics takes no viewer slot).
async fn viewers_now(http: SocketAddr, kind: &str) -> u64 {
    let (_, text) = get(http, "/metrics").await;
    let key = format!("vidcast_viewers{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

async fn limit_hits(http: SocketAddr, limit: &str) -> u64 {
    let (_, text) = get(http, "/metrics").await;
    let key = format!("vidcast_limit_hits_total{{limit=\"{limit}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /metrics:\n{text}"))
}

/// Opens `count` connections that send part of a request head and then a byte now and then,
/// and checks the hub closes every one of them within a few header timeouts.
async fn slowloris_heads_are_cut<S, F, Fut>(count: usize, mut open: F)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = S>,
{
    let mut tasks = Vec::new();
    for i in 0..count {
        let mut stream = open().await;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .unwrap();
        tasks.push(tokio::spawn(async move {
            // Every other one trickles a header byte every 200 ms; the rest go silent.
            let trickle = i % 2 == 0;
            tokio::time::timeout(Duration::from_secs(10), async {
                let mut buf = [0u8; 1024];
                for _ in 0..1000 {
                    if trickle && stream.write_all(b"X").await.is_err() {
                        return;
                    }
                    let read =
                        tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf));
                    if let Ok(Ok(0) | Err(_)) = read.await {
                        return;
                    }
                }
            })
            .await
            .is_ok()
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        assert!(
            task.await.unwrap(),
            "slowloris connection {i} still open after 10 s"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_heads_are_closed_after_the_header_timeout() {
    let hub = start_hub(HubOptions {
        limits: limits(SHORT, LONG),
        ..HubOptions::default()
    })
    .await;
    let http = hub.http_addr.unwrap();
    slowloris_heads_are_cut(40, || async { TcpStream::connect(http).await.unwrap() }).await;
    assert!(limit_hits(http, "http_header_timeout").await >= 40);
    assert_eq!(get(http, "/healthz").await.0, 200);
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_heads_are_closed_with_a_token_required() {
    let hub = start_hub(HubOptions {
        limits: limits(SHORT, LONG),
        auth: Arc::new(Auth::new(Some("sesame".to_owned()), None).unwrap()),
        ..HubOptions::default()
    })
    .await;
    let http = hub.http_addr.unwrap();
    slowloris_heads_are_cut(20, || async { TcpStream::connect(http).await.unwrap() }).await;
    assert_eq!(get(http, "/healthz").await.0, 200);
    hub.shutdown().await.unwrap();
}

async fn tls_hub(limits: Limits) -> (RunningHub, ClientTls) {
    let made = SelfSigned::generate(&["127.0.0.1".to_owned()]).unwrap();
    let hub = start_hub(HubOptions {
        tls: Some(made.identity().unwrap()),
        limits,
        ..HubOptions::default()
    })
    .await;
    let client = ClientTls::new(
        TlsTrust::Pinned(Fingerprint::of(&made.cert_der)),
        "127.0.0.1",
    );
    (hub, client.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_over_tls_is_closed_after_the_handshake_and_header_timeouts() {
    let (hub, client) = tls_hub(limits(SHORT, LONG)).await;
    let http = hub.http_addr.unwrap();
    // Finished handshakes, then a head that never ends.
    slowloris_heads_are_cut(20, || async {
        client
            .connect(TcpStream::connect(http).await.unwrap())
            .await
            .unwrap()
    })
    .await;
    // No handshake at all.
    let mut silent = TcpStream::connect(http).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(10)).await);
    // A real request still works.
    let mut tls = client
        .connect(TcpStream::connect(http).await.unwrap())
        .await
        .unwrap();
    assert_eq!(request(&mut tls, "/healthz").await.0, 200);
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let hub = start_hub(HubOptions {
        limits: limits(SHORT, LONG),
        ..HubOptions::default()
    })
    .await;
    let http = hub.http_addr.unwrap();
    let mut stream = TcpStream::connect(http).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut stream, Duration::from_secs(10)).await,
        "an idle keep-alive connection stayed open"
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_caps_per_address_and_in_all_leave_room_for_others() {
    let hub = start_hub(HubOptions {
        limits: Limits {
            max_http_connections: 8,
            max_http_connections_per_ip: 5,
            ..limits(LONG, LONG)
        },
        ..HubOptions::default()
    })
    .await;
    let http = hub.http_addr.unwrap();
    // One address opens connections that never send a byte.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from("127.0.0.2", http).await);
    }
    let mut over = connect_from("127.0.0.2", http).await;
    assert!(
        closed_within(&mut over, Duration::from_secs(5)).await,
        "a sixth connection from one address was kept"
    );
    // Another address still gets answers.
    let mut other = connect_from("127.0.0.3", http).await;
    assert_eq!(request(&mut other, "/healthz").await.0, 200);
    // Fill the rest of the total from a third address; then everyone new is refused.
    for _ in 0..3 {
        held.push(connect_from("127.0.0.4", http).await);
    }
    let mut over_total = connect_from("127.0.0.5", http).await;
    let (status, _) = request(&mut over_total, "/healthz").await;
    assert_ne!(status, 200, "a connection over the total cap was served");
    drop(held);
    // Places come back when the holders leave.
    let served = wait_for(
        "a place after the holders left",
        Duration::from_secs(10),
        || async {
            let mut stream = connect_from("127.0.0.2", http).await;
            (request(&mut stream, "/healthz").await.0 == 200).then_some(())
        },
    )
    .await;
    let () = served;
    assert!(limit_hits(http, "http_connections_per_ip").await >= 1);
    assert!(limit_hits(http, "http_connections").await >= 1);
    hub.shutdown().await.unwrap();
}

/// An MJPEG reader asks for the stream and never reads.
async fn stalled_mjpeg(http: SocketAddr, id: u64) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(http).await.unwrap();
    stream
        .write_all(format!("GET /streams/{id}.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    stream
}

async fn first_stream_id(hub: &RunningHub) -> u64 {
    wait_for(
        "the stream to have frames",
        Duration::from_secs(10),
        || async {
            api_streams(hub)
                .await
                .into_iter()
                .find(|s| s["frames"].as_u64() > Some(2))
                .and_then(|s| s["id"].as_u64())
        },
    )
    .await
}

/// Waits until a real MJPEG viewer is let in (HTTP 200) and gets its first picture.
async fn real_viewer_gets_in(http: SocketAddr, id: u64) {
    wait_for(
        "a viewer slot for a real viewer",
        Duration::from_secs(30),
        || async {
            let mut stream = TcpStream::connect(http).await.unwrap();
            let head = format!("GET /streams/{id}.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
            stream.write_all(head.as_bytes()).await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 16384];
            let read = tokio::time::timeout(Duration::from_secs(2), async {
                while got.len() < 2048 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
            })
            .await;
            let text = String::from_utf8_lossy(&got);
            (read.is_ok() && text.starts_with("HTTP/1.1 200") && text.contains("image/jpeg"))
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mjpeg_readers_that_take_nothing_lose_their_viewer_slots() {
    let hub = start_hub(HubOptions {
        limits: Limits {
            max_viewers: 3,
            ..limits(LONG, STALL)
        },
        ..HubOptions::default()
    })
    .await;
    // Large frames fill a stalled reader's socket buffers quickly.
    let _cam = TestPublisher::start(hub.ingest_addr, "cam", 1920, 1080, PERIOD, 10_000).await;
    let id = first_stream_id(&hub).await;
    let http = hub.http_addr.unwrap();
    let mut stalled = Vec::new();
    for _ in 0..3 {
        stalled.push(stalled_mjpeg(http, id).await);
    }
    // The gauge first: a probing .mjpg request would itself take a slot (and keep it while
    // it reads) if it came before the last stalled reader.
    wait_for(
        "the stalled readers to hold every slot",
        Duration::from_secs(5),
        || async { (viewers_now(http, "mjpeg").await == 3).then_some(()) },
    )
    .await;
    assert_eq!(get(http, &format!("/streams/{id}.mjpg")).await.0, 503);
    real_viewer_gets_in(http, id).await;
    assert!(limit_hits(http, "http_stalled").await >= 1);
    drop(stalled);
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_socket_that_takes_nothing_loses_its_viewer_slot() {
    let hub = start_hub(HubOptions {
        limits: Limits {
            max_viewers: 1,
            ..limits(LONG, STALL)
        },
        ..HubOptions::default()
    })
    .await;
    let _cam = TestPublisher::start(hub.ingest_addr, "cam", 1920, 1080, PERIOD, 10_000).await;
    let id = first_stream_id(&hub).await;
    let http = hub.http_addr.unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(http).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{http}/ws"), tcp)
        .await
        .unwrap();
    // Subscribing again sends the current picture again: a peer that keeps asking and never
    // reads fills its socket fast. Its own writes may block once the hub stops reading it.
    let asker = tokio::spawn(async move {
        for _ in 0..100_000 {
            for ids in [json!([id]), json!([])] {
                let msg = json!({"type": "subscribe", "ids": ids}).to_string();
                if ws.send(Message::Text(msg.into())).await.is_err() {
                    return;
                }
            }
        }
    });
    wait_for(
        "the stalled wall to hold the slot",
        Duration::from_secs(5),
        || async { (viewers_now(http, "websocket").await == 1).then_some(()) },
    )
    .await;
    assert_eq!(get(http, &format!("/streams/{id}.mjpg")).await.0, 503);
    real_viewer_gets_in(http, id).await;
    assert!(limit_hits(http, "http_stalled").await >= 1);
    asker.abort();
    hub.shutdown().await.unwrap();
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// The JSON text messages of a wall socket, read for `span`.
async fn wall_texts(ws: &mut Ws, span: Duration) -> Vec<serde_json::Value> {
    use futures_util::StreamExt;
    let mut texts = Vec::new();
    let _ = tokio::time::timeout(span, async {
        for _ in 0..10_000 {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => texts.push(serde_json::from_str(&t).unwrap()),
                Some(Ok(_)) => {}
                _ => return,
            }
        }
    })
    .await;
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_list_is_whole_once_then_shared_deltas() {
    let hub = start_hub(HubOptions::default()).await;
    // Many names that came and went: offline entries that never change.
    for i in 0..60 {
        let mut peer = vidcast_testkit::RawPeer::connect(hub.ingest_addr).await;
        peer.handshake(&format!("ghost-{i}")).await;
    }
    wait_for("60 offline entries", Duration::from_secs(10), || async {
        let streams = api_streams(&hub).await;
        (streams.len() == 60 && streams.iter().all(|s| s["live"] == false)).then_some(())
    })
    .await;
    let _cam = TestPublisher::start(hub.ingest_addr, "cam", 96, 64, PERIOD, 10_000).await;
    let http = hub.http_addr.unwrap();
    let (mut a, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws"))
        .await
        .unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws"))
        .await
        .unwrap();
    let (texts_a, texts_b) = tokio::join!(
        wall_texts(&mut a, Duration::from_millis(3500)),
        wall_texts(&mut b, Duration::from_millis(3500))
    );
    for texts in [&texts_a, &texts_b] {
        let kinds: Vec<&str> = texts.iter().filter_map(|t| t["type"].as_str()).collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "streams").count(),
            1,
            "{kinds:?}"
        );
        let full = texts.iter().find(|t| t["type"] == "streams").unwrap();
        assert!(full["streams"].as_array().unwrap().len() >= 60);
        let deltas: Vec<_> = texts.iter().filter(|t| t["type"] == "delta").collect();
        assert!(deltas.len() >= 2, "{kinds:?}");
        for delta in &deltas {
            // Only what changed: the live stream's stats, never the 60 unchanged ghosts.
            let changed = delta["changed"].as_array().unwrap();
            assert!(changed.iter().all(|s| s["name"] == "cam"), "{delta}");
            assert!(delta["seq"].as_u64().unwrap() > full["seq"].as_u64().unwrap());
        }
    }
    // Both sockets got the same updates (one serialization for all).
    let same_seq = texts_a
        .iter()
        .filter(|t| t["type"] == "delta")
        .find_map(|da| {
            texts_b
                .iter()
                .find(|db| db["type"] == "delta" && db["seq"] == da["seq"])
                .map(|db| (da, db))
        });
    let (da, db) = same_seq.expect("a delta both sockets got");
    assert_eq!(da, db);
    hub.shutdown().await.unwrap();
}
