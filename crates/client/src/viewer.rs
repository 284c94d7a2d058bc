//! A viewer's session: the protocol's viewer role over one connection to a hub. It hands
//! what arrives to a [`ViewerSink`] and acks each frame once the sink took it, so the hub
//! sends each stream's next frame only then (latest frame wins; no backlog).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tracing::debug;
use vidcast_media::Clock;
use vidcast_proto::{
    ClientConnection, ClientEvent, CloseReason, Frame, GoodbyeCode, StreamAnnounce, Timestamp,
    Timing, Welcome,
};
use vidcast_pump::{Pump, Session};

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
    let now = Timestamp::from_micros(clock.now_us());
    let conn = ClientConnection::viewer(&hello.name, &hello.token, hello.timing, now);
    let stopping = *stop.borrow();
    let mut session = ViewerSession {
        stopping,
        conn,
        addr,
        sink,
        clock,
        stop,
        welcomed: false,
        end: None,
    };
    if session.stopping {
        session.conn.close(GoodbyeCode::Normal, "viewer closed");
    }
    Pump::new(stream, BytesMut::with_capacity(READ_CHUNK))
        .run(&mut session)
        .await;
    let reason = session.end.unwrap_or(CloseReason::PeerClosed {
        mid_message: false,
        offset: 0,
    });
    (session.welcomed, reason)
}

/// Receive buffer growth: the hub sends whole pictures.
const READ_CHUNK: usize = 64 * 1024;

/// A viewer's connection to a hub, driven by the [`Pump`].
struct ViewerSession<'a, K> {
    conn: ClientConnection,
    addr: SocketAddr,
    sink: &'a mut K,
    clock: &'a Arc<dyn Clock>,
    stop: &'a mut watch::Receiver<bool>,
    /// Whether `stop` turned true (the goodbye is on its way).
    stopping: bool,
    /// Whether the hub accepted this viewer.
    welcomed: bool,
    /// Why the connection ended, once it did.
    end: Option<CloseReason>,
}

impl<K: ViewerSink> Session for ViewerSession<'_, K> {
    type Conn = ClientConnection;
    type Wake = ();

    fn conn(&mut self) -> &mut ClientConnection {
        &mut self.conn
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.clock.now_us())
    }

    fn read_chunk(&self, _inbuf: &BytesMut) -> usize {
        READ_CHUNK
    }

    fn on_event(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::Accepted(welcome) => {
                self.welcomed = true;
                self.sink.welcomed(&welcome);
            }
            ClientEvent::Stream(a) => self.sink.stream(a),
            ClientEvent::StreamRemoved { stream_id } => self.sink.removed(stream_id),
            ClientEvent::StreamFrame {
                stream_id,
                frame,
                received_at,
            } => {
                // Capture time is on the hub's clock (0 unknown): move it onto ours.
                let latency_us = (frame.capture_us != 0)
                    .then(|| self.conn.clock().to_local(frame.capture_us))
                    .flatten()
                    .map(|c| received_at.saturating_since(c).as_micros() as u64);
                let seq = frame.seq;
                self.sink.frame(stream_id, frame, received_at, latency_us);
                self.conn.ack_frame(stream_id, seq);
            }
            ClientEvent::Closed(reason) => {
                debug!("connection to hub {} closing: {reason}", self.addr);
                self.end = Some(reason);
            }
            ClientEvent::KeyframeRequested | ClientEvent::Frame { .. } => {}
        }
    }

    fn on_io_error(&mut self, error: std::io::Error) {
        debug!("socket to hub {}: {error}", self.addr);
    }

    /// Resolves when `stop` turns true (never again once it did).
    async fn wake(&mut self) {
        if self.stopping {
            return std::future::pending().await;
        }
        let _ = self.stop.wait_for(|&s| s).await;
    }

    fn on_wake(&mut self, (): ()) {
        self.stopping = true;
        self.conn.close(GoodbyeCode::Normal, "viewer closed");
    }
}
