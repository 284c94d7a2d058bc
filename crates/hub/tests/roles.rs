//! Who may do what: roles in the token file, revocation that cuts live sessions, and names
//! that belong to their client. Real hub, real sockets, 127.0.0.1 (and 127.0.0.2 as a second
//! client address).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vidcast_hub::HubOptions;
use vidcast_proto::{GoodbyeCode, Message, MAGIC};
use vidcast_testkit::{api_streams, start_hub, wait_for, RawPeer, TestPublisher, TestViewer};

struct TokenFile {
    dir: PathBuf,
    path: PathBuf,
}

impl TokenFile {
    fn new(tag: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vidcast-roles-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens");
        std::fs::write(&path, text).unwrap();
        Self { dir, path }
    }

    /// Rewrites the file; its mtime moves forward so the change is seen whatever the clock's
    /// granularity.
    fn rewrite(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap();
        let f = std::fs::File::options()
            .write(true)
            .open(&self.path)
            .unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn hub_with_file(file: &TokenFile) -> vidcast_hub::RunningHub {
    let auth = vidcast_hub::Auth::new(None, Some(file.path.clone())).unwrap();
    start_hub(HubOptions {
        auth: std::sync::Arc::new(auth),
        ..HubOptions::default()
    })
    .await
}

async fn http(addr: SocketAddr, method: &str, path: &str, token: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = if method == "POST" {
        "{\"on\":true}"
    } else {
        ""
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut head))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&head[..n])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn is_live(hub: &vidcast_hub::RunningHub, name: &str) -> bool {
    hub.registry
        .stream_infos()
        .iter()
        .any(|(_, info, live)| *live && info.name == name)
}

fn live(streams: &[serde_json::Value], name: &str) -> bool {
    streams
        .iter()
        .any(|s| s["name"] == name && s["live"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_cuts_its_publisher_and_viewers_within_a_second() {
    let file = TokenFile::new(
        "revoke",
        "cam-1 tok-a publish,view\ncam-2 tok-b publish\nwall tok-w view\n",
    );
    let hub = start_with(&file).await;
    let http_addr = hub.http_addr.unwrap();
    let cam1 = publisher(hub.ingest_addr, "cam-1", "tok-a").await;
    let _cam2 = publisher(hub.ingest_addr, "cam-2", "tok-b").await;
    wait_for("both live", Duration::from_secs(5), || async {
        (is_live(&hub, "cam-1") && is_live(&hub, "cam-2")).then_some(())
    })
    .await;
    let cam1_id = hub
        .registry
        .stream_infos()
        .into_iter()
        .find(|(_, info, _)| info.name == "cam-1")
        .unwrap()
        .0;
    // Viewers with cam-1's token: native, MJPEG, wall; and one with the wall's own token.
    let native_a = TestViewer::start(hub.ingest_addr, "tok-a").await;
    let native_w = TestViewer::start(hub.ingest_addr, "tok-w").await;
    let mut mjpeg = tokio::net::TcpStream::connect(http_addr).await.unwrap();
    mjpeg
        .write_all(
            format!("GET /streams/{cam1_id}.mjpg?token=tok-a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let (mut wall, _) =
        tokio_tungstenite::connect_async(format!("ws://{http_addr}/ws?token=tok-a"))
            .await
            .unwrap();
    wait_for("viewers see frames", Duration::from_secs(5), || async {
        (native_a.snapshot().frames_of("cam-1") > 0 && native_w.snapshot().frames_of("cam-1") > 0)
            .then_some(())
    })
    .await;
    let mut buf = vec![0u8; 64 * 1024];
    assert!(
        mjpeg.read(&mut buf).await.unwrap() > 0,
        "the MJPEG reader gets its stream"
    );
    assert!(wall.next().await.is_some(), "the wall socket is open");

    // Delete cam-1's line.
    file.rewrite("cam-2 tok-b publish\nwall tok-w view\n");
    let revoked_at = Instant::now();
    wait_for("cam-1 cut", Duration::from_secs(3), || async {
        (!is_live(&hub, "cam-1")).then_some(())
    })
    .await;
    let publisher_cut = revoked_at.elapsed();
    wait_for("native viewer cut", Duration::from_secs(3), || async {
        native_a.snapshot().closed.clone().map(|r| r.to_string())
    })
    .await;
    // The response ends: the connection closes, or the chunked body's last chunk arrives.
    let mjpeg_cut = tokio::time::timeout(Duration::from_secs(3), async {
        let mut tail: Vec<u8> = Vec::new();
        loop {
            match mjpeg.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    tail.extend_from_slice(&buf[..n]);
                    if tail.ends_with(b"\r\n0\r\n\r\n") {
                        return;
                    }
                    let keep = tail.len().saturating_sub(16);
                    tail.drain(..keep);
                }
            }
        }
    })
    .await;
    assert!(mjpeg_cut.is_ok(), "the MJPEG response ends");
    let wall_cut = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(Ok(msg)) = wall.next().await {
            if msg.is_close() {
                return;
            }
        }
    })
    .await;
    assert!(wall_cut.is_ok(), "the wall socket closes");
    let all_cut = revoked_at.elapsed();
    eprintln!("publisher cut after {publisher_cut:?}, every viewer by {all_cut:?}");
    // The publisher's session ended (with the hub's "revoked" goodbye, or a broken pipe when
    // it was writing a frame as the hub closed).
    let report = tokio::time::timeout(Duration::from_secs(5), cam1.task)
        .await
        .expect("the revoked publisher's session ends")
        .unwrap();
    eprintln!("the revoked publisher saw: {report:?}");
    // Untouched: cam-2 and the viewer with its own token.
    assert!(is_live(&hub, "cam-2"));
    assert!(native_w.snapshot().closed.is_none());
    hub.shutdown().await.unwrap();
}

async fn publisher(ingest: SocketAddr, name: &str, token: &str) -> TestPublisher {
    let mut hello = vidcast_testkit::hello(name, 64, 64);
    hello.token = token.to_owned();
    let options = vidcast_client::PublishOptions::default();
    TestPublisher::start_as(ingest, hello, Duration::from_millis(50), 10_000, options).await
}

async fn start_with(file: &TokenFile) -> vidcast_hub::RunningHub {
    hub_with_file(file).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_opens_only_its_doors() {
    let file = TokenFile::new(
        "roles",
        "cam-1 tok-pub\nwall tok-view view\nops tok-admin view,admin\n",
    );
    let hub = start_with(&file).await;
    let web = hub.http_addr.unwrap();
    // A camera's token publishes as its own name only, and opens nothing on the web side.
    let said = hello(hub.ingest_addr, "cam-1", "tok-pub").await;
    assert!(said.iter().any(|m| matches!(m, Message::Welcome(_))));
    let said = hello(hub.ingest_addr, "other", "tok-pub").await;
    assert!(
        said.iter().any(|m| matches!(m, Message::Reject(_))),
        "{said:?}"
    );
    assert_eq!(http(web, "GET", "/api/streams", "tok-pub").await, 401);
    assert_eq!(http(web, "GET", "/metrics", "tok-pub").await, 401);
    assert_eq!(
        http(web, "POST", "/api/streams/1/record", "tok-pub").await,
        401
    );
    let viewer = TestViewer::start(hub.ingest_addr, "tok-pub").await;
    let closed = wait_for("refused", Duration::from_secs(5), || async {
        viewer.snapshot().closed.clone().map(|r| r.to_string())
    })
    .await;
    assert!(
        closed.contains("token") || closed.contains("Unauthorized"),
        "{closed}"
    );
    // A view token reads but may not change anything, nor publish.
    assert_eq!(http(web, "GET", "/api/streams", "tok-view").await, 200);
    assert_eq!(
        http(web, "POST", "/api/streams/1/record", "tok-view").await,
        403
    );
    assert_eq!(
        http(web, "DELETE", "/api/streams/1/restream", "tok-view").await,
        403
    );
    let said = hello(hub.ingest_addr, "wall", "tok-view").await;
    assert!(
        said.iter().any(|m| matches!(m, Message::Reject(_))),
        "{said:?}"
    );
    // An admin token gets past the door (this hub does not record: 409, not 401/403).
    assert_eq!(
        http(web, "POST", "/api/streams/1/record", "tok-admin").await,
        409
    );
    hub.shutdown().await.unwrap();
}

async fn hello(ingest: SocketAddr, name: &str, token: &str) -> Vec<Message> {
    let mut peer = RawPeer::connect(ingest).await;
    let mut buf = BytesMut::from(&MAGIC[..]);
    let mut hello = vidcast_testkit::hello(name, 64, 64);
    hello.token = token.to_owned();
    Message::Hello(hello).encode(&mut buf);
    peer.send(&buf).await;
    peer.read_until_closed(Duration::from_millis(500)).await.0
}

/// Handshakes as `name` from `source` and returns the welcome's (id, name) and the peer.
async fn publish_from(source: &str, ingest: SocketAddr, name: &str) -> ((u64, String), RawPeer) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    let mut peer = RawPeer::from_stream(socket.connect(ingest).await.unwrap());
    let said = peer.handshake(name).await;
    let welcome = said
        .iter()
        .find_map(|m| match m {
            Message::Welcome(w) => Some((w.stream_id, w.name.clone())),
            _ => None,
        })
        .unwrap();
    (welcome, peer)
}

async fn goodbye(mut peer: RawPeer) {
    let mut buf = BytesMut::new();
    Message::Goodbye(vidcast_proto::Goodbye {
        code: GoodbyeCode::Normal,
        reason: String::new(),
    })
    .encode(&mut buf);
    peer.send(&buf).await;
    let _ = peer.read_until_closed(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_name_gets_a_number_and_an_offline_name_waits_for_its_own_client() {
    let hub = start_hub(HubOptions::default()).await;
    let ((first_id, first_name), first) = publish_from("127.0.0.1", hub.ingest_addr, "pi").await;
    assert_eq!(first_name, "pi");
    // A second live "raspberrypi": its own tile, its own name, told in the welcome.
    let ((second_id, second_name), _second) =
        publish_from("127.0.0.2", hub.ingest_addr, "pi").await;
    assert_eq!(second_name, "pi-2");
    assert_ne!(second_id, first_id);
    // The first leaves; another address asking for "pi" does not inherit its id.
    goodbye(first).await;
    wait_for("pi offline", Duration::from_secs(5), || async {
        (!live(&api_streams(&hub).await, "pi")).then_some(())
    })
    .await;
    let ((third_id, third_name), third) = publish_from("127.0.0.3", hub.ingest_addr, "pi").await;
    assert_eq!(third_name, "pi-3");
    assert_ne!(third_id, first_id);
    goodbye(third).await;
    // The same address coming back gets its name and id back.
    let ((back_id, back_name), _back) = publish_from("127.0.0.1", hub.ingest_addr, "pi").await;
    assert_eq!((back_id, back_name.as_str()), (first_id, "pi"));
    hub.shutdown().await.unwrap();
}
