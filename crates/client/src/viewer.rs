//! A viewer's drive loop: the protocol's viewer role over one connection to a hub. It hands
//! what arrives to a [`ViewerSink`] and acks each frame once the sink took it, so the hub
//! sends each stream's next frame only then (latest frame wins; no backlog).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tracing::debug;
use vidcast_media::Clock;
use vidcast_proto::{
    ClientConnection, ClientEvent, CloseReason, Frame, GoodbyeCode, StreamAnnounce, Timestamp,
    Timing, Welcome, WriteQueue,
};

/// Who the viewer says it is.
#[derive(Debug, Clone)]
pub struct ViewerHello {
    /// Name in the hub's log (1 to 64 bytes).
    pub name: String,
    /// The hub's token, empty when it needs none.
    pub token: String,
    /// Heartbeat and timeouts.
    pub timing: Timing,
}

/// Where a viewer's news goes.
pub trait ViewerSink {
    /// The hub accepted this viewer; the stream list follows.
    fn welcomed(&mut self, welcome: &Welcome);
    /// A stream is new or changed.
    fn stream(&mut self, announce: StreamAnnounce);
    /// A stream is gone.
    fn removed(&mut self, stream_id: u64);
    /// A frame of a stream; `latency_us` is capture to arrival here, when the clocks are known.
    fn frame(
        &mut self,
        stream_id: u64,
        frame: Frame,
        received_at: Timestamp,
        latency_us: Option<u64>,
    );
}

/// Watches the hub at `addr` over `stream` (plain TCP or TLS) until the connection ends or
/// `stop` turns true (then says goodbye). Returns whether the hub welcomed this viewer, and
/// why the connection ended.
pub async fn view<S>(
    stream: S,
    addr: SocketAddr,
    hello: &ViewerHello,
    sink: &mut impl ViewerSink,
    clock: &Arc<dyn Clock>,
    stop: &mut watch::Receiver<bool>,
) -> (bool, CloseReason)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let now = || Timestamp::from_micros(clock.now_us());
    let mut conn = ClientConnection::viewer(&hello.name, &hello.token, hello.timing, now());
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut inbuf = BytesMut::with_capacity(64 * 1024);
    let mut out = WriteQueue::default();
    let mut welcomed = false;
    let mut end = None;
    let mut reading = true;
    let mut stopping = *stop.borrow();
    if stopping {
        conn.close(GoodbyeCode::Normal, "viewer closed");
    }
    loop {
        while let Some(event) = conn.poll_event() {
            match event {
                ClientEvent::Accepted(welcome) => {
                    welcomed = true;
                    sink.welcomed(&welcome);
                }
                ClientEvent::Stream(a) => sink.stream(a),
                ClientEvent::StreamRemoved { stream_id } => sink.removed(stream_id),
                ClientEvent::StreamFrame {
                    stream_id,
                    frame,
                    received_at,
                } => {
                    // Capture time is on the hub's clock (0 unknown): move it onto ours.
                    let latency_us = (frame.capture_us != 0)
                        .then(|| conn.clock().to_local(frame.capture_us))
                        .flatten()
                        .map(|c| received_at.saturating_since(c).as_micros() as u64);
                    let seq = frame.seq;
                    sink.frame(stream_id, frame, received_at, latency_us);
                    conn.ack_frame(stream_id, seq);
                }
                ClientEvent::Closed(reason) => {
                    debug!("connection to hub {addr} closing: {reason}");
                    end = Some(reason);
                }
                ClientEvent::KeyframeRequested | ClientEvent::Frame { .. } => {}
            }
        }
        out.fill(|| conn.poll_transmit());
        if out.is_empty() && conn.is_closed() {
            break;
        }
        let wake_at = conn
            .poll_timeout()
            .map(|t| tokio::time::Instant::now() + t.saturating_since(now()));
        if inbuf.capacity() - inbuf.len() < 16 * 1024 {
            inbuf.reserve(64 * 1024);
        }
        let has_output = !out.is_empty();
        tokio::select! {
            read = reader.read_buf(&mut inbuf), if reading => match read {
                Ok(0) => {
                    reading = false;
                    conn.handle_eof(&inbuf);
                }
                Ok(_) => conn.handle_data(now(), &mut inbuf),
                Err(e) => {
                    reading = false;
                    debug!("reading from hub {addr}: {e}");
                    conn.handle_eof(&inbuf);
                }
            },
            written = async { writer.write_vectored(&out.slices()).await }, if has_output => {
                match written {
                    Ok(n) => out.advance(n),
                    Err(e) => {
                        debug!("writing to hub {addr}: {e}");
                        out.clear();
                        reading = false;
                        conn.handle_eof(&inbuf);
                        while conn.poll_transmit().is_some() {}
                    }
                }
            }
            () = sleep_until(wake_at) => conn.handle_timeout(now()),
            _ = stop.wait_for(|&s| s), if !stopping => {
                stopping = true;
                conn.close(GoodbyeCode::Normal, "viewer closed");
            }
        }
    }
    let _ = writer.shutdown().await;
    let reason = end.unwrap_or(CloseReason::PeerClosed {
        mid_message: false,
        offset: 0,
    });
    (welcomed, reason)
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
