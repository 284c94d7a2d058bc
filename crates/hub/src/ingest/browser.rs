//! Browser publishers: the `/publish` page and its WebSocket (`/publish/ws`), over which a
//! browser speaks vidcast's own protocol (PROTOCOL.md, "Browser publishers").
//!
//! The socket's binary messages, concatenated, are exactly the byte stream a TCP publisher
//! sends (magic, Hello, Frame…); message boundaries mean nothing. A [`bridge`] task copies
//! between the WebSocket and one end of an in-memory pipe, and the other end goes to the
//! ingest port's own session (`session::serve` on the pump, `Ingest`), so a browser is a
//! publisher like any other: the same handshake, token check, registry entry, keyframe gate,
//! recording, restream, `/metrics` and `PeerBudget`. Its stream is marked `browser`.
//!
//! Bounds: a message from the browser is at most [`MAX_MESSAGE`] bytes (the page splits a
//! large frame), so the session's frame budget sees a frame as it arrives, as on TCP; the
//! pipe holds at most [`PIPE_BYTES`] each way; the write-stall budget reads the web
//! connection's own TCP socket ([`SocketFd`]). The web port's per-address connection caps
//! and stall cut-off apply to the socket as to any web connection.

use std::os::fd::RawFd;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tracing::debug;

use crate::access::web_guard::PeerAddr;
use crate::ingest::session::{Arrival, Via};
use crate::serve::http::RequestToken;
use crate::server::Shared;

/// The page (embedded; no build step, nothing from another site).
pub(crate) const PUBLISH_HTML: &str = include_str!("../../web/publish.html");
/// Its script: capture, encoding, the protocol.
pub(crate) const PUBLISH_JS: &str = include_str!("../../web/publish.js");
/// Where the page's socket connects.
pub(crate) const SOCKET_PATH: &str = "/publish/ws";

/// The largest WebSocket message a browser publisher may send: the page cuts frames into
/// pieces of at most this, so no frame is buffered whole before the session's frame budget
/// (`IncomingFrame`) has seen its header.
pub(crate) const MAX_MESSAGE: usize = 64 * 1024;
/// Bytes the pipe between the WebSocket and the session holds each way.
const PIPE_BYTES: usize = 64 * 1024;

/// The web connection's TCP socket, for TCP_INFO (set by the web port's accept loop).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SocketFd(pub(crate) RawFd);

/// Whether `path` is one of the publisher's pages (what a publish-only token opens).
pub(crate) fn is_publish_path(path: &str) -> bool {
    matches!(path, "/publish" | "/publish.js" | SOCKET_PATH)
}

/// `GET /publish/ws`: upgrades, then runs the ingest session over the socket.
pub(crate) async fn socket(
    State(shared): State<Arc<Shared>>,
    Extension(RequestToken(token)): Extension<RequestToken>,
    Extension(SocketFd(fd)): Extension<SocketFd>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let peer = peer.addr();
    upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
            let arrival = Arrival::new(peer, &shared.ingest, shared.stop.clone());
            let via = Via::Browser { http_token: token };
            let session = crate::ingest::session::serve(ours, fd, arrival, via);
            tokio::join!(session, bridge(socket, theirs, peer));
        })
}

/// Copies the browser's binary messages into the pipe and the session's output back out as
/// binary messages, until either side ends. A text message is not part of the protocol: it
/// ends the connection (the session sees the stream end without a goodbye).
async fn bridge(socket: WebSocket, pipe: DuplexStream, peer: std::net::SocketAddr) {
    let (mut to_browser, mut from_browser) = socket.split();
    let (mut from_hub, mut to_hub) = tokio::io::split(pipe);
    let up = async {
        while let Some(message) = from_browser.next().await {
            match message {
                Ok(Message::Binary(bytes)) => {
                    if to_hub.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                Ok(Message::Text(_)) => {
                    debug!("browser publisher {peer} sent a text message; closing");
                    break;
                }
                Ok(Message::Close(_)) => break,
                Ok(_) => {}
                Err(e) => {
                    debug!("browser publisher {peer}: {e}");
                    break;
                }
            }
        }
        let _ = to_hub.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; PIPE_BYTES];
        loop {
            match from_hub.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let message = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                    if to_browser.send(message).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = to_browser.send(Message::Close(None)).await;
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}
