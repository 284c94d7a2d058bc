//! Browser publishers without a browser: a WebSocket client on `/publish/ws` speaking the
//! protocol's bytes, as the `/publish` page does (PROTOCOL.md, "Browser publishers"). Real hub,
//! real sockets on 127.0.0.1. The page itself runs in headless Chromium in
//! `crates/cli/tests/browser_publish.rs`.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use vidcast_hub::HubOptions;
use vidcast_proto::{Decoder, Frame, Message, MAGIC};
use vidcast_testkit::{api_streams, hello, jpeg, start_hub, wait_for};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct TokenFile(PathBuf);

impl TokenFile {
    fn new(tag: &str, text: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("vidcast-browser-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tokens"), text).unwrap();
        Self(dir)
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A hub whose token file has a publish-only token for "cam" and a view token.
async fn hub_with_tokens(tag: &str) -> (vidcast_hub::RunningHub, TokenFile) {
    let tokens = TokenFile::new(tag, "cam pub-only publish\nwall watcher view\n");
    let auth = vidcast_hub::Auth::new(None, Some(tokens.0.join("tokens"))).unwrap();
    let hub = start_hub(HubOptions {
        auth: std::sync::Arc::new(auth),
        ..HubOptions::default()
    })
    .await;
    (hub, tokens)
}

/// Opens `/publish/ws` from the hub's own page (its `Origin`), with `cookie` if any.
async fn open(http: SocketAddr, cookie: Option<&str>) -> Ws {
    let mut request = format!("ws://{http}/publish/ws")
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("Origin", format!("http://{http}").parse().unwrap());
    if let Some(token) = cookie {
        headers.insert("Cookie", format!("vidcast_token={token}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The hub's side of a publisher socket, decoded: the stream state lasts across reads.
struct HubReader {
    decoder: Decoder,
    inbuf: BytesMut,
}

impl HubReader {
    fn new() -> Self {
        Self {
            decoder: Decoder::new(1 << 20),
            inbuf: BytesMut::new(),
        }
    }

    /// Reads the hub's messages until `stop` accepts one (or the socket closes, or 5 s
    /// pass); all of them, and whether `stop` accepted one.
    async fn until(
        &mut self,
        ws: &mut Ws,
        stop: impl Fn(&Message) -> bool,
    ) -> (Vec<Message>, bool) {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(message)) = ws.next().await {
                let WsMessage::Binary(bytes) = message else {
                    continue;
                };
                self.inbuf.extend_from_slice(&bytes);
                while let Some(m) = self
                    .decoder
                    .decode(&mut self.inbuf)
                    .expect("the hub speaks the protocol")
                {
                    let done = stop(&m);
                    seen.push(m);
                    if done {
                        return true;
                    }
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        (seen, found)
    }
}

/// A publisher called `name` on `/publish/ws` without a token, past its welcome.
async fn welcomed(http: SocketAddr, name: &str) -> (Ws, HubReader) {
    let mut ws = open(http, None).await;
    let mut hub_reader = HubReader::new();
    ws.send(WsMessage::Binary(publisher_bytes(name, "").to_vec().into()))
        .await
        .unwrap();
    let (seen, welcomed) = hub_reader
        .until(&mut ws, |m| matches!(m, Message::Welcome(_)))
        .await;
    assert!(welcomed, "no welcome for {name}: {seen:?}");
    (ws, hub_reader)
}

/// The ingest port's bytes for the magic and a 64x64 JPEG publisher's hello.
fn publisher_bytes(name: &str, token: &str) -> BytesMut {
    let mut out = BytesMut::from(&MAGIC[..]);
    let mut hello = hello(name, 64, 64);
    hello.token = token.to_owned();
    Message::Hello(hello).encode(&mut out);
    out
}

fn frame_bytes(seq: u64) -> BytesMut {
    let mut out = BytesMut::new();
    Message::Frame(Frame {
        seq,
        capture_us: 1,
        is_keyframe: true,
        data: jpeg(64, 64),
    })
    .encode(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_publisher_is_a_browser_stream_and_message_boundaries_mean_nothing() {
    let (hub, _tokens) = hub_with_tokens("ws").await;
    let http = hub.http_addr.unwrap();
    // The sign-in cookie stands in for the hello's empty token.
    let mut ws = open(http, Some("pub-only")).await;
    let mut hub_reader = HubReader::new();
    let hello = publisher_bytes("cam", "");
    // Cut anywhere: the hub reads a byte stream.
    for piece in [&hello[..3], &hello[3..11], &hello[11..]] {
        ws.send(WsMessage::Binary(piece.to_vec().into()))
            .await
            .unwrap();
    }
    let (seen, welcomed) = hub_reader
        .until(&mut ws, |m| matches!(m, Message::Welcome(_)))
        .await;
    assert!(welcomed, "no welcome: {seen:?}");
    for seq in 1..=5 {
        // Two frames in one message, then one frame in two.
        let frame = frame_bytes(seq);
        let (a, b) = frame.split_at(frame.len() / 2);
        ws.send(WsMessage::Binary(a.to_vec().into())).await.unwrap();
        ws.send(WsMessage::Binary(b.to_vec().into())).await.unwrap();
    }
    let stream = wait_for("5 frames of cam", Duration::from_secs(5), || async {
        streams(http, "watcher")
            .await
            .into_iter()
            .find(|s| s["name"] == "cam" && s["frames"] == 5)
    })
    .await;
    assert_eq!(stream["browser"], true, "{stream}");
    assert_eq!(stream["live"], true);
    // A goodbye ends it in order.
    let mut bye = BytesMut::new();
    Message::Goodbye(vidcast_proto::Goodbye {
        code: vidcast_proto::GoodbyeCode::Normal,
        reason: "stopped".into(),
    })
    .encode(&mut bye);
    ws.send(WsMessage::Binary(bye.to_vec().into()))
        .await
        .unwrap();
    wait_for("cam offline", Duration::from_secs(5), || async {
        streams(http, "watcher")
            .await
            .into_iter()
            .find(|s| s["name"] == "cam" && s["live"] == false)
    })
    .await;
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_only_token_opens_the_publish_page_and_nothing_else() {
    let (hub, _tokens) = hub_with_tokens("roles").await;
    let http = hub.http_addr.unwrap();
    let (status, body) = get(http, "/publish", "pub-only").await;
    assert_eq!(status, 200);
    assert!(body.contains("/publish.js"), "{body}");
    assert_eq!(get(http, "/publish.js", "pub-only").await.0, 200);
    // The wall answers with the sign-in form, the API and MJPEG refuse.
    let (status, body) = get(http, "/", "pub-only").await;
    assert!(
        status == 200 && body.contains("action=\"/login\""),
        "{status} {body}"
    );
    assert_eq!(get(http, "/api/streams", "pub-only").await.0, 401);
    // A viewer's token opens the page too (it may watch what it publishes to); none does not.
    assert_eq!(get(http, "/publish", "watcher").await.0, 200);
    let (_, body) = get(http, "/publish", "").await;
    assert!(body.contains("action=\"/login\""), "{body}");
    // Signing in with a publish-only token leads to the page.
    let (status, head) = post_login(http, "pub-only").await;
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("location: /publish\r\n"), "{head}");
    // The hello's name must be the token's: another name is refused.
    let mut ws = open(http, Some("pub-only")).await;
    let mut hub_reader = HubReader::new();
    ws.send(WsMessage::Binary(
        publisher_bytes("other", "").to_vec().into(),
    ))
    .await
    .unwrap();
    let (seen, refused) = hub_reader
        .until(&mut ws, |m| matches!(m, Message::Reject(_)))
        .await;
    assert!(refused, "{seen:?}");
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_socket_refuses_other_sites_and_oversized_messages() {
    let hub = start_hub(HubOptions::default()).await;
    let http = hub.http_addr.unwrap();
    let mut request = format!("ws://{http}/publish/ws")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Origin", "http://evil.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_err());
    // Over 64 KiB in one message: the socket closes, no stream appears.
    let (mut ws, mut hub_reader) = welcomed(http, "big").await;
    let _ = ws
        .send(WsMessage::Binary(vec![0x10; 65 * 1024].into()))
        .await;
    let (_, _) = hub_reader.until(&mut ws, |_| false).await;
    wait_for("big offline", Duration::from_secs(5), || async {
        api_streams(&hub)
            .await
            .into_iter()
            .find(|s| s["name"] == "big" && s["live"] == false)
    })
    .await;
    hub.shutdown().await.unwrap();
}

async fn get(http: SocketAddr, path: &str, token: &str) -> (u16, String) {
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    exchange(
        http,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}\r\n"),
    )
    .await
}

async fn post_login(http: SocketAddr, token: &str) -> (u16, String) {
    let body = format!("token={token}");
    exchange(
        http,
        &format!(
            "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

async fn exchange(http: SocketAddr, request: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(http).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// `/api/streams` with `token`.
async fn streams(http: SocketAddr, token: &str) -> Vec<serde_json::Value> {
    let (status, text) = get(http, "/api/streams", token).await;
    assert_eq!(status, 200, "{text}");
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    // Chunked or not: the JSON array is between the first '[' and the last ']'.
    let json = body
        .find('[')
        .zip(body.rfind(']'))
        .map_or("[]", |(a, b)| &body[a..=b]);
    serde_json::from_str(json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_publisher_is_told_goodbye_when_the_hub_stops() {
    let hub = start_hub(HubOptions::default()).await;
    let http = hub.http_addr.unwrap();
    let (mut ws, mut hub_reader) = welcomed(http, "leaving").await;
    ws.send(WsMessage::Binary(frame_bytes(1).to_vec().into()))
        .await
        .unwrap();
    let stopping = tokio::spawn(hub.shutdown());
    let (seen, said) = hub_reader
        .until(
            &mut ws,
            |m| matches!(m, Message::Goodbye(g) if g.code == vidcast_proto::GoodbyeCode::Shutdown),
        )
        .await;
    assert!(said, "no shutdown goodbye: {seen:?}");
    stopping.await.unwrap().unwrap();
}
