//! Simulated viewers for `vidcast bench`: MJPEG readers, web-wall WebSockets that ack every
//! frame, and stalled ones that connect and then never read.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tracing::warn;
use vidcast_client::mjpeg::MjpegReader;

/// What kind of viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewerKind {
    /// Reads `/streams/{id}.mjpg`.
    Mjpeg,
    /// The web wall's WebSocket, acking each frame at once.
    WebSocket,
    /// Requests MJPEG and subscribes a WebSocket, then never reads either.
    Stalled,
}

/// One simulated viewer's frame counter.
pub struct Viewer {
    /// Its kind.
    pub kind: ViewerKind,
    /// Pictures received so far.
    pub frames: Arc<AtomicU64>,
}

/// Starts a viewer of stream `id` on the hub's HTTP address; it runs until `stop` turns true.
pub fn spawn(kind: ViewerKind, http: SocketAddr, id: u64, stop: watch::Receiver<bool>) -> Viewer {
    let frames = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&frames);
    tokio::spawn(async move {
        let mut stop = stop;
        let run = async {
            match kind {
                ViewerKind::Mjpeg => mjpeg(http, id, &counter).await,
                ViewerKind::WebSocket => websocket(http, id, &counter).await,
                ViewerKind::Stalled => stalled(http, id).await,
            }
        };
        tokio::select! {
            result = run => if let Err(e) = result { warn!("{kind:?} viewer of stream {id}: {e}") },
            _ = stop.wait_for(|&s| s) => {}
        }
    });
    Viewer { kind, frames }
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;

async fn mjpeg(http: SocketAddr, id: u64, frames: &AtomicU64) -> Result<(), AnyError> {
    let mut reader = MjpegReader::open(http, &format!("/streams/{id}.mjpg")).await?;
    loop {
        reader.next_picture().await?;
        frames.fetch_add(1, Ordering::Relaxed);
    }
}

async fn websocket(http: SocketAddr, id: u64, frames: &AtomicU64) -> Result<(), AnyError> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws")).await?;
    let subscribe = format!(r#"{{"type":"subscribe","ids":[{id}]}}"#);
    ws.send(Message::Text(subscribe.into())).await?;
    let ack = format!(r#"{{"type":"ack","id":{id}}}"#);
    while let Some(msg) = ws.next().await {
        if let Message::Binary(_) = msg? {
            frames.fetch_add(1, Ordering::Relaxed);
            ws.send(Message::Text(ack.clone().into())).await?;
        }
    }
    Ok(())
}

async fn stalled(http: SocketAddr, id: u64) -> Result<(), AnyError> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws")).await?;
    ws.send(Message::Text(
        format!(r#"{{"type":"subscribe","ids":[{id}]}}"#).into(),
    ))
    .await?;
    let mut raw = tokio::net::TcpStream::connect(http).await?;
    raw.write_all(format!("GET /streams/{id}.mjpg HTTP/1.1\r\nHost: {http}\r\n\r\n").as_bytes())
        .await?;
    // Hold both open and read nothing, until stopped.
    std::future::pending::<()>().await;
    drop((ws, raw));
    Ok(())
}
