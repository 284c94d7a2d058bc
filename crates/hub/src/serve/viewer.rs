//! A native viewer (`vidcast view`) on the ingest port: admission (token, `--max-viewers`),
//! then a session on the pump that feeds it the stream list and every stream's newest frame.
//!
//! Latest frame wins per stream and per viewer: `HubConnection` keeps one waiting frame per
//! stream and at most `VIEWER_WINDOW` unacknowledged, and frames are only picked when the
//! socket can take more. A slow or stalled viewer therefore skips frames for itself alone;
//! publishers and other viewers never wait for it.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tracing::{debug, info, warn};
use vidcast_h264::{ChainGate, Pass};
use vidcast_proto::{
    ConnectionStats, Frame, GoodbyeCode, Hello, HubConnection, HubEvent, RejectCode,
    StreamAnnounce, Timestamp,
};
use vidcast_pump::{Ended, Flow, Pump, Session, Turn};

use crate::access::auth::Right;
use crate::access::limits::{bite, count_close, PeerBudget, NOT_READING_LOG};
use crate::serve::viewers::ViewContext;
use crate::serve::viewers::{ViewerGuard, ViewerKind};
use crate::stream::feed::{FeedStream, FeedUpdate, StreamFeed};
use crate::stream::registry::{LatestFrame, StreamId};

/// A viewer sends only acks, pings and pongs: its receive buffer stays small.
const READ_CHUNK: usize = 4 * 1024;

/// An admitted viewer, ready for its [`ViewerSession`].
pub(crate) struct Admitted {
    name: String,
    guard: ViewerGuard,
    /// The token it was admitted with: the viewer is closed when the token file takes it away.
    token: String,
}

/// Checks a viewer's hello against the token and the viewer limit; accepts it (welcome with
/// its viewer number) or rejects it with the reason.
pub(crate) fn admit(
    conn: &mut HubConnection,
    hello: &Hello,
    peer: SocketAddr,
    ctx: &ViewContext,
    now: Timestamp,
) -> Option<Admitted> {
    // Viewers present the same tokens as the web wall: the shared one or any client's.
    // Slowed per address, and logged there at a limited rate.
    let who = format!("viewer \"{}\"", hello.name);
    if let Err(why) = crate::access::auth::check_web(&ctx.access, peer, &hello.token, &who) {
        conn.reject(RejectCode::Unauthorized, &why);
        return None;
    }
    let viewers = ctx.counters.total();
    let max = ctx.access.limits.max_viewers;
    if viewers >= max {
        let reason = format!("too many viewers ({viewers}, --max-viewers {max}); try again later");
        warn!("viewer {peer} \"{}\" refused: {reason}", hello.name);
        conn.reject(RejectCode::Busy, &reason);
        return None;
    }
    let guard = ctx.counters.enter(ViewerKind::Native);
    let number = ctx
        .numbers
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    conn.accept(number, now);
    info!(
        "viewer {peer} \"{}\" connected — {}",
        hello.name,
        crate::human::plural(ctx.counters.total() as u64, "viewer")
    );
    Some(Admitted {
        name: hello.name.clone(),
        guard,
        token: hello.token.clone(),
    })
}

fn announcement(stream: &FeedStream) -> StreamAnnounce {
    StreamAnnounce {
        stream_id: stream.id.get(),
        codec: Ok(stream.codec),
        width: stream.width,
        height: stream.height,
        fps_milli: (stream.fps_nominal * 1000.0).round() as u32,
        is_live: stream.live,
        is_legacy: stream.legacy,
        name: stream.name.clone(),
        peer: stream.peer.clone(),
    }
}

fn apply(
    conn: &mut HubConnection,
    gates: &mut HashMap<StreamId, ChainGate>,
    ctx: &ViewContext,
    update: FeedUpdate,
) {
    match update {
        FeedUpdate::Stream(stream) => conn.announce_stream(announcement(&stream)),
        FeedUpdate::Removed(id) => {
            gates.remove(&id);
            conn.remove_stream(id.get());
        }
        FeedUpdate::CatchUp(id, group) => {
            let gate = gates.entry(id).or_default();
            let frames = group
                .into_iter()
                .filter(|f| gate.offer(f.codec, f.seq, f.is_keyframe) == Pass::Use)
                .map(to_wire_frame)
                .collect();
            conn.send_stream_catch_up(id.get(), frames);
        }
        FeedUpdate::Frame(id, latest) => {
            let gate = gates.entry(id).or_default();
            if conn.has_waiting_stream_frame(id.get()) {
                gate.break_chain(); // sending replaces a frame not yet delivered
            }
            match gate.offer(latest.codec, latest.seq, latest.is_keyframe) {
                Pass::Use => {}
                Pass::Repeat => return,
                // Every frame held back asks; the publisher's session asks at most once a second.
                Pass::Wait { .. } => {
                    ctx.registry.request_keyframe(id);
                    return;
                }
            }
            conn.send_stream_frame(id.get(), to_wire_frame(latest));
        }
    }
}

/// A frame as the viewer protocol carries it: capture time on the hub's clock (0: unknown).
fn to_wire_frame(latest: LatestFrame) -> Frame {
    Frame {
        seq: latest.seq,
        capture_us: latest.capture_local_us.unwrap_or(0),
        is_keyframe: latest.is_keyframe,
        data: latest.data,
    }
}

/// An admitted viewer's connection: the stream list and every stream's newest frame go out,
/// acks come in. Driven by the [`Pump`] the handshake ran on.
pub(crate) struct ViewerSession<'a> {
    conn: HubConnection,
    ctx: &'a Arc<ViewContext>,
    peer: SocketAddr,
    admitted: Admitted,
    /// Frames still arriving and output not taken (a viewer sends no frames, but a declared
    /// one is budgeted until it is refused; one that pings but never reads must not keep its
    /// slot nor grow the hub's queue).
    budget: PeerBudget,
    feed: StreamFeed,
    gates: HashMap<StreamId, ChainGate>,
    shutdown: watch::Receiver<bool>,
    /// Completes when the token file takes the viewer's token away.
    revoked: Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
    since: Instant,
    /// Why the connection ended, once it did.
    end: Option<String>,
    /// The connection's counters as last added to the hub's viewer counters.
    reported: ConnectionStats,
    /// When a frame last left for this viewer, and whether frames were replaced unsent since.
    last_sent: Instant,
    dropped_since_sent: bool,
    shutting_down: bool,
    was_revoked: bool,
}

/// What a viewer's session waits for besides its socket.
pub(crate) enum ViewerWake {
    /// The registry changed: a stream, or a stream's newest frame.
    Feed(FeedUpdate),
    /// The hub is shutting down.
    Shutdown,
    /// The viewer's token was revoked.
    Revoked,
}

impl<'a> ViewerSession<'a> {
    /// The session of an admitted viewer on `conn`; `fd` is the TCP socket underneath (for
    /// TCP_INFO).
    pub(crate) fn new(
        conn: HubConnection,
        admitted: Admitted,
        fd: RawFd,
        peer: SocketAddr,
        ctx: &'a Arc<ViewContext>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let token = admitted.token.clone();
        let auth = &ctx.access.auth;
        let shutting_down = *shutdown.borrow();
        let mut session = Self {
            conn,
            ctx,
            peer,
            admitted,
            budget: PeerBudget::new(&ctx.access.frame_budget, &ctx.access.limits, fd, peer),
            feed: StreamFeed::new(Arc::clone(&ctx.registry)),
            gates: HashMap::new(),
            shutdown,
            revoked: Box::pin(async move { auth.until_revoked(&token, &Right::View).await }),
            since: Instant::now(),
            end: None,
            reported: ConnectionStats::default(),
            last_sent: Instant::now(),
            dropped_since_sent: false,
            shutting_down,
            was_revoked: false,
        };
        if shutting_down {
            session
                .conn
                .close(GoodbyeCode::Shutdown, "hub shutting down");
        }
        session
    }

    /// Runs the connection to its end on `pump`.
    pub(crate) async fn run<S>(mut self, pump: &mut Pump<S>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if pump.run(&mut self).await == Ended::LingerExpired {
            debug!(peer = %self.peer, "dropping viewer that did not take its goodbye in time");
        }
        let stats = self.conn.stats();
        drop(self.admitted.guard);
        info!(
            "viewer {} \"{}\" left ({}, after {}, {} sent, {} skipped for it) — {}",
            self.peer,
            self.admitted.name,
            self.end.as_deref().unwrap_or("closed"),
            crate::human::elapsed(self.since.elapsed()),
            crate::human::plural(stats.frames_sent, "frame"),
            stats.frames_dropped,
            crate::human::plural(self.ctx.counters.total() as u64, "viewer"),
        );
    }

    /// Adds what was sent and skipped since the last turn to the hub's viewer counters. A
    /// viewer that acks nothing keeps its window full: every new frame replaces a waiting one
    /// and none is sent; one that still pings would hold its slot for ever, so it is closed
    /// after `--not-reading-timeout`.
    fn check_acks(&mut self, closing: bool) -> Flow {
        let stats = self.conn.stats();
        let reported = self.reported;
        self.ctx.counters.add(
            stats.frames_sent.saturating_sub(reported.frames_sent),
            stats.frames_dropped.saturating_sub(reported.frames_dropped),
        );
        let now = Instant::now();
        if stats.frames_sent > reported.frames_sent {
            self.last_sent = now;
            self.dropped_since_sent = false;
        } else if stats.frames_dropped > reported.frames_dropped {
            self.dropped_since_sent = true;
        }
        self.reported = stats;
        let acks_due = self.ctx.access.limits.not_reading_timeout;
        if !self.dropped_since_sent || acks_due.is_zero() || closing {
            return Flow::Wait(None);
        }
        if now.saturating_duration_since(self.last_sent) >= acks_due {
            let reason = format!(
                "not reading: no frame acknowledged for {} s while frames waited (--not-reading-timeout)",
                acks_due.as_secs()
            );
            bite(
                &self.ctx.access.hits.not_reading,
                &NOT_READING_LOG,
                self.peer,
                &reason,
            );
            self.conn.close(GoodbyeCode::Limit, &reason);
            return Flow::Again;
        }
        Flow::Wait(Some(self.last_sent + acks_due))
    }
}

impl Session for ViewerSession<'_> {
    type Conn = HubConnection;
    type Wake = ViewerWake;

    fn conn(&mut self) -> &mut HubConnection {
        &mut self.conn
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.ctx.clock.now_us())
    }

    fn read_chunk(&self, inbuf: &BytesMut) -> usize {
        self.budget.read_chunk(inbuf, READ_CHUNK)
    }

    fn on_event(&mut self, event: HubEvent) {
        if let HubEvent::Closed(reason) = event {
            count_close(&self.ctx.access.hits, self.peer, &reason);
            self.end = Some(reason.to_string());
        }
    }

    fn on_turn(&mut self, turn: &Turn<'_>) -> Flow {
        let ctx = self.ctx;
        let hits = &ctx.access.hits;
        self.budget
            .check_incoming(&mut self.conn, turn, hits)
            .then(|| self.check_acks(turn.closing))
            .then(|| self.budget.check_reading(&mut self.conn, turn, hits))
    }

    fn on_read(&mut self, inbuf: &mut BytesMut) {
        self.budget
            .on_read(&mut self.conn, inbuf, &self.ctx.access.hits);
    }

    fn on_wrote(&mut self, bytes: usize) {
        self.budget.on_wrote(bytes);
    }

    fn on_io_error(&mut self, error: std::io::Error) {
        self.end.get_or_insert(format!("socket error: {error}"));
    }

    async fn wake(&mut self) -> ViewerWake {
        tokio::select! {
            update = self.feed.next(), if self.end.is_none() => ViewerWake::Feed(update),
            _ = self.shutdown.changed(), if !self.shutting_down => ViewerWake::Shutdown,
            () = self.revoked.as_mut(), if !self.was_revoked => ViewerWake::Revoked,
            else => std::future::pending().await,
        }
    }

    fn on_wake(&mut self, wake: ViewerWake) {
        match wake {
            ViewerWake::Feed(update) => apply(&mut self.conn, &mut self.gates, self.ctx, update),
            ViewerWake::Shutdown => {
                self.shutting_down = true;
                self.conn.close(GoodbyeCode::Shutdown, "hub shutting down");
            }
            ViewerWake::Revoked => {
                self.was_revoked = true;
                warn!(
                    "viewer {} \"{}\": its token was revoked (token file changed); closing",
                    self.peer, self.admitted.name
                );
                self.conn.close(GoodbyeCode::Revoked, "token revoked");
            }
        }
    }
}
