//! One connection on the ingest port: the legacy sniff, then an `Ingest` session on the pump
//! (hello, admission, a publisher's frames and limits). A viewer's connection is handed to
//! `viewer.rs`'s session once its hello is accepted.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tracing::{debug, info, warn};
use vidcast_h264::{ChainGate, Pass};
use vidcast_proto::{
    Codec, GoodbyeCode, Hello, HubConnection, HubEvent, RejectCode, Role, Timestamp,
};
use vidcast_pump::{Ended, Flow, Pump, Session, Turn};

use crate::access::auth::Right;
use crate::access::limits::{
    bite, count_close, FrameRateLimit, Limits, PeerBudget, PendingTicket, FRAMELESS_LOG,
    PENDING_LOG,
};
use crate::access::tls::TlsIdentity;
use crate::human;
use crate::ingest::IngestContext;
use crate::serve::viewer::{Admitted, ViewerSession};
use crate::stream::jpeg;
use crate::stream::registry::{lock, LatestFrame, Owner, StreamHandle, StreamInfo};

/// How long a closing connection may take to flush its goodbye before the socket is dropped.
const LINGER: Duration = Duration::from_secs(1);
/// Receive buffer growth before and after the handshake: strangers get little.
const HANDSHAKE_READ: usize = 4 * 1024;
const STREAMING_READ: usize = 64 * 1024;
/// How often the connection's kernel TCP statistics are sampled.
const TCP_SAMPLE_EVERY: Duration = Duration::from_millis(250);

struct Registered {
    handle: StreamHandle,
    info: StreamInfo,
    since: Instant,
    warned_size_mismatch: bool,
    /// The picture size frames should have: announced, then as the publisher's adaptation says.
    sending_size: (u16, u16),
    rate: FrameRateLimit,
    warned_rate: bool,
    last_frame_us: u64,
    /// The publisher's reference chain as the hub receives it, to see a frame lost before
    /// the hub.
    chain: ChainGate,
    /// When a keyframe was last asked of the publisher (at most one per KEYFRAME_ASK_EVERY).
    keyframe_asked_at: Option<Instant>,
    /// The token it was admitted with and the name it asked for (the right checked): the
    /// session ends when the token file takes that right away.
    token: String,
    asked_name: String,
    /// Whether a frame arrived yet; until then the publisher counts as pending and must send
    /// one within `--first-frame-timeout` (a ping-only squatter must not hold a client slot).
    has_frame: bool,
}

/// Viewers waiting for a keyframe ask once per frame they hold back; one request to the
/// publisher per this interval is enough (an IDR is many times a P-frame's size).
const KEYFRAME_ASK_EVERY: Duration = Duration::from_millis(300);

/// A connection as accepted, handed to whichever protocol serves it: who it is, its place
/// among the pending connections, and what it may be told.
pub(crate) struct Arrival<'a> {
    pub(crate) peer: SocketAddr,
    pub(crate) ctx: &'a Arc<IngestContext>,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Pending until a stream (or viewer) is admitted; see [`PendingTicket`].
    pub(crate) ticket: PendingTicket<'a>,
    /// Fires when a newer pending connection evicts this one.
    pub(crate) evicted: oneshot::Receiver<()>,
    pub(crate) connected_at: Instant,
}

impl<'a> Arrival<'a> {
    /// A new connection from `peer`: it takes a place among the pending connections (evicting
    /// the oldest when its address or the hub has too many; counted and logged here).
    pub(crate) fn new(
        peer: SocketAddr,
        ctx: &'a Arc<IngestContext>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let limits = ctx.access.limits;
        let (ticket, evicted, evicted_others) = ctx.access.pending.admit(peer.ip(), &limits);
        if evicted_others > 0 {
            let _ = ctx.access.hits.pending_evicted.fetch_update(
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
                |n| Some(n.saturating_add(evicted_others as u64)),
            );
            if let Some(more) = PENDING_LOG.allow(Instant::now()) {
                warn!(
                    "{peer}: evicted {evicted_others} connection(s) still pending (in the handshake or without a first frame; limits: {} per address, {} in all; {more} more evictions not logged)",
                    limits.max_pending_per_ip, limits.max_pending
                );
            }
        }
        Self {
            peer,
            ctx,
            shutdown,
            ticket,
            evicted,
            connected_at: Instant::now(),
        }
    }
}

/// Where a vidcast byte stream came in.
#[derive(Debug, Clone)]
pub(crate) enum Via {
    /// The ingest port (plain TCP or TLS): the original Python format is sniffed for first.
    Ingest,
    /// A browser's WebSocket on the web port (`/publish/ws`, see `browser.rs`): publishers
    /// only, marked `browser`. `http_token` is the token the upgrade request carried (cookie,
    /// `Authorization` or `?token=`), used when the hello's own token is empty: the sign-in
    /// cookie is `HttpOnly`, so the page's script cannot put it in the hello.
    Browser {
        /// The upgrade request's token (empty when none).
        http_token: String,
    },
}

/// Runs one connection to its end: the TLS handshake first when the hub has TLS on, then the
/// session. Never panics on peer input; logs how it ended.
pub(crate) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<IngestContext>,
    shutdown: watch::Receiver<bool>,
) {
    // TCP_INFO is read from the socket itself, whatever wraps it; the stream outlives every read.
    let fd = stream.as_raw_fd();
    let mut arrival = Arrival::new(peer, &ctx, shutdown);
    let Some(acceptor) = ctx.tls.as_ref().map(TlsIdentity::acceptor) else {
        serve(stream, fd, arrival, Via::Ingest).await;
        return;
    };
    let timeout = ctx.connection.timing.handshake_timeout;
    let handshake = tokio::select! {
        accepted = tokio::time::timeout(timeout, acceptor.accept(stream)) => match accepted {
            Ok(Ok(tls)) => Ok(tls),
            Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
            Err(_) => Err(format!("no TLS handshake within {timeout:?}")),
        },
        _ = &mut arrival.evicted => Err("evicted during the TLS handshake (too many waiting connections)".to_owned()),
    };
    match handshake {
        Ok(tls) => {
            arrival.connected_at = Instant::now();
            serve(tls, fd, arrival, Via::Ingest).await;
        }
        Err(why) => {
            // Plain-TCP clients and scanners on a TLS port: one debug line each, counted in
            // the accept loop's summary.
            ctx.access
                .refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            debug!("connection from {peer} ended before a stream began: {why}");
        }
    }
}

/// One connection over any byte stream (plain TCP, TLS, or a browser's WebSocket as bytes);
/// `fd` is the underlying TCP socket, for TCP_INFO. On the ingest port, sniffs for the
/// original Python client's format; then pumps an [`Ingest`] session, and a viewer's session
/// after it when the hello was a viewer's.
pub(crate) async fn serve<S>(mut stream: S, fd: RawFd, mut arrival: Arrival<'_>, via: Via)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let ctx = arrival.ctx;
    let peer = arrival.peer;
    let started = Timestamp::from_micros(ctx.clock.now_us());
    let mut inbuf = BytesMut::with_capacity(HANDSHAKE_READ);
    // Tell the original Python client's stream from ours by its first bytes (at most 10).
    let mut peer_closed_early = false;
    let mut was_evicted = false;
    // The original client cannot speak TLS, so with TLS on there is nothing to sniff for.
    let sniff = matches!(via, Via::Ingest);
    if sniff && ctx.accept_legacy && ctx.tls.is_none() {
        let deadline = tokio::time::Instant::now() + ctx.connection.timing.handshake_timeout;
        while vidcast_legacy::detect(&inbuf) == vidcast_legacy::Detection::NeedMore {
            tokio::select! {
                read = stream.read_buf(&mut inbuf) => match read {
                    Ok(0) | Err(_) => { peer_closed_early = true; break; }
                    Ok(_) => {}
                },
                _ = tokio::time::sleep_until(deadline) => break,
                _ = &mut arrival.evicted => { was_evicted = true; break; }
            }
        }
        if !was_evicted && vidcast_legacy::detect(&inbuf) == vidcast_legacy::Detection::Legacy {
            if ctx.access.auth.is_enabled() {
                warn!("legacy client {peer} refused: this hub requires a token, which the original format cannot carry");
                return;
            }
            crate::ingest::legacy::run(stream, inbuf, arrival).await;
            return;
        }
    }
    let mut conn = HubConnection::new(ctx.connection, started);
    if was_evicted {
        conn.reject(
            RejectCode::Busy,
            "too many connections waiting for their handshake from this address; try again",
        );
    }
    if !inbuf.is_empty() {
        conn.handle_data(Timestamp::from_micros(ctx.clock.now_us()), &mut inbuf);
    }
    let mut pump = Pump::new(stream, inbuf).linger(LINGER);
    if peer_closed_early {
        conn.handle_eof(pump.inbuf_mut());
        pump.peer_closed();
    }
    let mut ingest = Ingest::new(conn, fd, arrival, was_evicted, via);
    match pump.run(&mut ingest).await {
        Ended::Yielded => {
            let Ingest {
                conn,
                viewer,
                shutdown,
                ..
            } = ingest;
            if let Some(admitted) = viewer {
                ViewerSession::new(conn, admitted, fd, peer, &ctx.viewing, shutdown)
                    .run(&mut pump)
                    .await;
            }
        }
        Ended::LingerExpired => {
            debug!(%peer, "dropping connection that did not take its goodbye in time");
            ingest.finish();
        }
        Ended::Closed => ingest.finish(),
    }
}

/// A connection until it says what it is, then a publisher's: hello, admission, frames into the
/// registry, link reports, keyframe requests, and the limits a publisher is held to. A viewer's
/// hello hands the connection over to a [`ViewerSession`] (the pump yields).
struct Ingest<'a> {
    conn: HubConnection,
    ctx: &'a Arc<IngestContext>,
    peer: SocketAddr,
    /// The TCP socket underneath, for TCP_INFO samples.
    fd: RawFd,
    /// Frames still arriving and output not taken.
    budget: PeerBudget,
    shutdown: watch::Receiver<bool>,
    ticket: PendingTicket<'a>,
    evicted: oneshot::Receiver<()>,
    /// Samples the connection's TCP statistics while a stream is registered.
    tcp_ticker: tokio::time::Interval,
    /// The publisher's stream, once admitted.
    registered: Option<Registered>,
    /// An admitted viewer, to hand over.
    viewer: Option<Admitted>,
    /// Completes when the token file takes this publisher's right away (set once registered).
    revoked: Option<Pin<Box<dyn Future<Output = ()> + Send + 'a>>>,
    /// Why the connection ended and whether that was orderly, once it did.
    end: Option<(String, bool)>,
    shutting_down: bool,
    was_evicted: bool,
    /// How the connection came in (a browser's publishers are marked as such).
    via: Via,
}

/// What an ingest session waits for besides its socket.
enum IngestWake {
    /// A viewer waits for a keyframe of this (H.264) stream.
    KeyframeWanted,
    /// Time to sample TCP_INFO and check for idleness.
    TcpSample,
    /// A newer pending connection evicted this one.
    Evicted,
    /// The hub is shutting down.
    Shutdown,
    /// The publisher's token was revoked.
    Revoked,
}

impl<'a> Ingest<'a> {
    fn new(
        conn: HubConnection,
        fd: RawFd,
        arrival: Arrival<'a>,
        was_evicted: bool,
        via: Via,
    ) -> Self {
        let Arrival {
            peer,
            ctx,
            shutdown,
            ticket,
            evicted,
            ..
        } = arrival;
        let mut tcp_ticker = tokio::time::interval(TCP_SAMPLE_EVERY);
        tcp_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let shutting_down = *shutdown.borrow();
        let mut ingest = Self {
            conn,
            ctx,
            peer,
            fd,
            budget: PeerBudget::new(&ctx.access.frame_budget, &ctx.access.limits, fd, peer),
            shutdown,
            ticket,
            evicted,
            tcp_ticker,
            registered: None,
            viewer: None,
            revoked: None,
            end: None,
            shutting_down,
            was_evicted,
            via,
        };
        if shutting_down {
            ingest
                .conn
                .close(GoodbyeCode::Shutdown, "hub shutting down");
        }
        ingest
    }

    fn on_hello(&mut self, mut hello: Hello) {
        let now = self.now();
        let browser = match &self.via {
            Via::Ingest => false,
            Via::Browser { http_token } => {
                if hello.token.is_empty() {
                    hello.token.clone_from(http_token);
                }
                if hello.role == Role::Viewer {
                    warn!("{} refused: a viewer's hello on the browser publisher socket (/publish/ws takes publishers; the wall is /ws)", self.peer);
                    self.conn.reject(
                        RejectCode::BadHello,
                        "this socket takes publishers only (the wall's socket is /ws)",
                    );
                    return;
                }
                true
            }
        };
        if hello.role == Role::Viewer {
            self.viewer = crate::serve::viewer::admit(
                &mut self.conn,
                &hello,
                self.peer,
                &self.ctx.viewing,
                now,
            );
            if self.viewer.is_some() {
                self.ticket.done();
            }
            return;
        }
        // Still pending until its first frame: see `Registered::has_frame`.
        self.registered = on_hello(&mut self.conn, hello, self.peer, self.ctx, now, browser);
        if let Some(reg) = &self.registered {
            let right = Right::Publish(reg.asked_name.clone());
            let token = reg.token.clone();
            let auth = &self.ctx.access.auth;
            self.revoked = Some(Box::pin(async move {
                auth.until_revoked(&token, &right).await;
            }));
        }
    }

    /// A publisher must send its first frame within `--first-frame-timeout` of its welcome.
    fn check_first_frame(&mut self, closing: bool) -> Flow {
        let limits = &self.ctx.access.limits;
        let Some(reg) = self.registered.as_ref().filter(|r| !r.has_frame) else {
            return Flow::Wait(None);
        };
        if closing || limits.first_frame_timeout.is_zero() {
            return Flow::Wait(None);
        }
        let due = reg.since + limits.first_frame_timeout;
        if Instant::now() < due {
            return Flow::Wait(Some(due));
        }
        let reason = format!(
            "no frame within {} s of the welcome (--first-frame-timeout)",
            limits.first_frame_timeout.as_secs_f64()
        );
        bite(
            &self.ctx.access.hits.frameless_publisher,
            &FRAMELESS_LOG,
            self.peer,
            &reason,
        );
        self.conn.close(GoodbyeCode::Limit, &reason);
        Flow::Again
    }

    /// Viewers waiting for a keyframe asked: ask the publisher, at most once per
    /// [`KEYFRAME_ASK_EVERY`].
    fn on_keyframe_wanted(&mut self) {
        let peer = self.peer;
        if let Some(reg) = self.registered.as_mut() {
            if reg
                .keyframe_asked_at
                .is_none_or(|at| at.elapsed() >= KEYFRAME_ASK_EVERY)
            {
                reg.keyframe_asked_at = Some(Instant::now());
                lock(&reg.handle.stats).keyframe_requests += 1;
                debug!(
                    stream_id = reg.handle.id.get(),
                    "asking client {peer} \"{}\" for a keyframe", reg.info.name
                );
                self.conn.request_keyframe();
            }
        }
    }

    /// Samples TCP_INFO into the stream's statistics; closes a publisher idle for
    /// `--idle-timeout`.
    fn on_tcp_sample(&mut self) {
        let now = self.now();
        let Some(reg) = self.registered.as_ref() else {
            return;
        };
        if let Some(stats) = vidcast_tcpinfo::read(self.fd) {
            let ping_rtt_us = self.conn.clock().last_rtt_us();
            lock(&reg.handle.stats)
                .net
                .record_hub(now.as_micros(), stats, ping_rtt_us);
        }
        let limits = &self.ctx.access.limits;
        let idle_us = now.as_micros().saturating_sub(reg.last_frame_us);
        if !limits.idle_timeout.is_zero()
            && idle_us >= limits.idle_timeout.as_micros() as u64
            && self.end.is_none()
        {
            let reason = format!("idle: no frame for {} s", limits.idle_timeout.as_secs());
            warn!(
                stream_id = reg.handle.id.get(),
                "client {} \"{}\": {reason} (--idle-timeout); closing", self.peer, reg.info.name
            );
            self.conn.close(GoodbyeCode::Limit, &reason);
        }
    }

    fn on_evicted(&mut self) {
        self.was_evicted = true;
        if self.registered.is_some() {
            // Welcomed but no frame yet: a squatter, or a client that will reconnect.
            self.conn.close(
                GoodbyeCode::Limit,
                "evicted: no frame yet and too many connections pending (--max-pending-per-ip, --max-pending)",
            );
        } else {
            self.conn.reject(
                RejectCode::Busy,
                "too many connections waiting for their handshake from this address; try again",
            );
        }
    }

    /// The connection is over: the stream goes offline (or the refusal is counted); logs how
    /// it ended.
    fn finish(self) {
        let peer = self.peer;
        let ctx = self.ctx;
        let (reason, orderly) = self.end.unwrap_or_else(|| ("closed".to_owned(), false));
        match self.registered {
            Some(reg) => {
                ctx.registry
                    .disconnect(reg.handle.id, reason.clone(), orderly, ctx.clock.now_us());
                let (frames, bytes) = {
                    let s = lock(&reg.handle.stats);
                    (s.frames, s.bytes)
                };
                info!(
                    stream_id = reg.handle.id.get(),
                    "client {peer} \"{}\" {} ({reason}, after {}, {} frames, {}) — {} live",
                    reg.info.name,
                    if orderly { "left" } else { "disconnected" },
                    human::elapsed(reg.since.elapsed()),
                    human::count(frames),
                    human::bytes(bytes),
                    ctx.registry.live_count(),
                );
            }
            None => {
                // Floods and scanners would drown the log: one line each at debug, and a
                // summary every few seconds from the accept loop.
                ctx.access
                    .refused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                debug!("connection from {peer} ended before a stream began: {reason}");
            }
        }
    }
}

impl Session for Ingest<'_> {
    type Conn = HubConnection;
    type Wake = IngestWake;

    fn conn(&mut self) -> &mut HubConnection {
        &mut self.conn
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.ctx.clock.now_us())
    }

    fn read_chunk(&self, inbuf: &BytesMut) -> usize {
        let grow = if self.registered.is_some() {
            STREAMING_READ
        } else {
            HANDSHAKE_READ
        };
        self.budget.read_chunk(inbuf, grow)
    }

    fn on_event(&mut self, event: HubEvent) {
        match event {
            HubEvent::Hello(hello) => self.on_hello(hello),
            HubEvent::Frame { frame, received_at } => {
                if let Some(reg) = self.registered.as_mut() {
                    reg.has_frame = true;
                    self.ticket.done();
                    let limits = &self.ctx.access.limits;
                    on_frame(&self.conn, reg, frame, received_at, self.peer, limits);
                }
            }
            HubEvent::SenderReport(report) => {
                let now = self.now();
                if let Some(reg) = self.registered.as_ref() {
                    lock(&reg.handle.stats)
                        .net
                        .record_publisher(now.as_micros(), report);
                }
            }
            HubEvent::EncoderReport(report) => {
                if let Some(reg) = self.registered.as_mut() {
                    on_encoder_report(reg, report, self.peer);
                }
            }
            HubEvent::Closed(reason) => {
                count_close(&self.ctx.access.hits, self.peer, &reason);
                self.end = Some((reason.to_string(), reason.is_orderly()));
            }
        }
    }

    fn on_turn(&mut self, turn: &Turn<'_>) -> Flow {
        if self.viewer.is_some() {
            return Flow::Yield;
        }
        let ctx = self.ctx;
        let hits = &ctx.access.hits;
        self.budget
            .check_incoming(&mut self.conn, turn, hits)
            .then(|| self.check_first_frame(turn.closing))
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
        self.end
            .get_or_insert((format!("socket error: {error}"), false));
    }

    async fn wake(&mut self) -> IngestWake {
        let keyframe_wanted = self
            .registered
            .as_ref()
            .filter(|r| r.info.codec == Codec::H264)
            .map(|r| &r.handle.keyframe_wanted);
        let pending = self.ticket.is_pending() && !self.was_evicted;
        let live = self.end.is_none();
        tokio::select! {
            () = async {
                match keyframe_wanted {
                    Some(wanted) => wanted.notified().await,
                    None => std::future::pending().await,
                }
            } => IngestWake::KeyframeWanted,
            _ = self.tcp_ticker.tick(), if self.registered.is_some() => IngestWake::TcpSample,
            _ = &mut self.evicted, if pending => IngestWake::Evicted,
            _ = self.shutdown.changed(), if !self.shutting_down => IngestWake::Shutdown,
            () = async {
                match self.revoked.as_mut() {
                    Some(fut) => fut.await,
                    None => std::future::pending().await,
                }
            }, if live => IngestWake::Revoked,
        }
    }

    fn on_wake(&mut self, wake: IngestWake) {
        match wake {
            IngestWake::KeyframeWanted => self.on_keyframe_wanted(),
            IngestWake::TcpSample => self.on_tcp_sample(),
            IngestWake::Evicted => self.on_evicted(),
            IngestWake::Shutdown => {
                self.shutting_down = true;
                self.conn.close(GoodbyeCode::Shutdown, "hub shutting down");
            }
            IngestWake::Revoked => {
                self.revoked = None;
                if let Some(reg) = self.registered.as_ref() {
                    warn!(
                        stream_id = reg.handle.id.get(),
                        "client {} \"{}\": its token was revoked (token file changed); closing",
                        self.peer,
                        reg.info.name
                    );
                }
                self.conn.close(GoodbyeCode::Revoked, "token revoked");
            }
        }
    }
}

fn on_hello(
    conn: &mut HubConnection,
    hello: Hello,
    peer: SocketAddr,
    ctx: &IngestContext,
    now: Timestamp,
    browser: bool,
) -> Option<Registered> {
    let limits = &ctx.access.limits;
    let live = ctx.registry.live_count();
    if live >= limits.max_clients {
        let reason = format!(
            "hub full: {live} clients (--max-clients {})",
            limits.max_clients
        );
        warn!("client {peer} \"{}\" refused: {reason}", hello.name);
        conn.reject(RejectCode::Busy, &reason);
        return None;
    }
    // Slowed per address, and logged there at a limited rate (never the token itself).
    if let Err(why) =
        crate::access::auth::check_client(&ctx.access, peer, &hello.name, &hello.token)
    {
        conn.reject(RejectCode::Unauthorized, &why);
        return None;
    }
    let checked = match hello.codec {
        Err(unknown) => Err((RejectCode::BadHello, unknown.to_string())),
        _ if hello.width == 0 || hello.height == 0 => Err((
            RejectCode::BadHello,
            format!("invalid picture size {}x{}", hello.width, hello.height),
        )),
        Ok(codec) => Ok(codec),
    };
    let codec = match checked {
        Ok(codec) => codec,
        Err((code, reason)) => {
            warn!("client {peer} \"{}\" refused: {reason}", hello.name);
            conn.reject(code, &reason);
            return None;
        }
    };
    let hello_token = hello.token;
    let info = StreamInfo {
        name: hello.name,
        peer,
        codec,
        width: hello.width,
        height: hello.height,
        fps_nominal: f64::from(hello.fps_milli) / 1000.0,
        legacy: false,
        browser,
    };
    let owner = Owner::of(&hello_token, peer.ip());
    let mut info = info;
    let asked_name = info.name.clone();
    let handle = match ctx.registry.connect(info.clone(), owner, now.as_micros()) {
        Ok(handle) => handle,
        Err(refused) => {
            // Counted and logged (once per period) by the registry.
            conn.reject(RejectCode::Busy, &refused.to_string());
            return None;
        }
    };
    if handle.name != info.name {
        info!(
            stream_id = handle.id.get(),
            "client {peer} asked for the name \"{}\", which another client holds; it is shown as \"{}\"",
            info.name, handle.name
        );
        info.name = handle.name.clone();
    }
    conn.accept_as(handle.id.get(), &handle.name, now);
    let live = ctx.registry.live_count();
    let from = if browser { "browser, " } else { "" };
    match handle.gap_us {
        Some(gap) => info!(
            stream_id = handle.id.get(),
            "client {peer} \"{}\" reconnected after {:.1} s ({from}{} {}x{} @ {} fps) — {live} live",
            info.name,
            gap as f64 / 1e6,
            info.codec.name(),
            info.width,
            info.height,
            info.fps_nominal,
        ),
        None => info!(
            stream_id = handle.id.get(),
            "client {peer} \"{}\" connected ({from}{} {}x{} @ {} fps) — {live} live",
            info.name,
            info.codec.name(),
            info.width,
            info.height,
            info.fps_nominal,
        ),
    }
    Some(Registered {
        handle,
        sending_size: (info.width, info.height),
        info,
        since: Instant::now(),
        warned_size_mismatch: false,
        rate: FrameRateLimit::new(limits.max_fps),
        warned_rate: false,
        last_frame_us: now.as_micros(),
        chain: ChainGate::trusting_first_frame(),
        keyframe_asked_at: None,
        token: hello_token,
        asked_name,
        has_frame: false,
    })
}

/// Notes what the publisher's link adaptation chose. Only congestion is news (INFO): a
/// level above the one before (the publisher stepped down), a first report that already
/// carries a measured link rate, and the return to full quality after either. Climbing
/// (the start-up ramp, which begins below full, or a recovery) is logged at DEBUG.
fn on_encoder_report(reg: &mut Registered, report: vidcast_proto::EncoderReport, peer: SocketAddr) {
    reg.sending_size = (report.width, report.height);
    let (before, was_adapting, adapting) = {
        let mut stats = lock(&reg.handle.stats);
        let before = stats.encoder.replace(report);
        let was_adapting = before.is_some_and(|b| {
            crate::stream::registry::EncoderSnapshot::new(b, stats.encoder_stepped_down).adapting
        });
        if before.is_some_and(|b| report.level > b.level) {
            stats.encoder_stepped_down = true;
        }
        let adapting =
            crate::stream::registry::EncoderSnapshot::new(report, stats.encoder_stepped_down)
                .adapting;
        if report.level == 0 {
            stats.encoder_stepped_down = false;
        }
        (before, was_adapting, adapting)
    };
    let link = if report.link_bps > 0 {
        format!("link {:.1} Mbit/s", report.link_bps as f64 / 1e6)
    } else {
        "link rate unknown".to_owned()
    };
    // An H.264 publisher's "quality" is the percent of its own bit rate.
    let quality = match reg.info.codec {
        Codec::H264 => format!("{}% of its bit rate", report.quality),
        _ => format!("quality {}", report.quality),
    };
    let fps = f64::from(report.fps_milli) / 1000.0;
    let changed = before.map(|b| b.level) != Some(report.level);
    let stepped_down = before.map_or(adapting, |b| report.level > b.level);
    if report.level > 0 && stepped_down && adapting {
        info!(
            stream_id = reg.handle.id.get(),
            "client {peer} \"{}\" adapting to its link ({link}): {quality}, {fps:.1} fps, {}x{} (level {})",
            reg.info.name,
            report.width,
            report.height,
            report.level
        );
    } else if report.level == 0 && was_adapting {
        info!(
            stream_id = reg.handle.id.get(),
            "client {peer} \"{}\" back to full quality ({link})", reg.info.name
        );
    } else if changed {
        debug!(
            stream_id = reg.handle.id.get(),
            "client {peer} \"{}\" at level {} (start-up ramp or climbing back): {quality}, {fps:.1} fps, {}x{}",
            reg.info.name,
            report.level,
            report.width,
            report.height
        );
    }
}

fn on_frame(
    conn: &HubConnection,
    reg: &mut Registered,
    frame: vidcast_proto::Frame,
    received_at: Timestamp,
    peer: SocketAddr,
    limits: &Limits,
) {
    reg.last_frame_us = received_at.as_micros();
    if !reg.rate.allow(received_at.as_micros()) {
        {
            let mut stats = lock(&reg.handle.stats);
            stats.rate_limited = stats.rate_limited.saturating_add(1);
        }
        if !reg.warned_rate {
            reg.warned_rate = true;
            warn!(
                stream_id = reg.handle.id.get(),
                "client {peer} \"{}\" sends faster than {} fps (--max-fps); dropping the excess (counted; logged once)",
                reg.info.name, limits.max_fps
            );
        }
        return;
    }
    let clock = conn.clock();
    // Capture time moved onto the hub's clock; unknown until the first pong.
    let captured = clock.to_local(frame.capture_us);
    let latency_us =
        captured.map(|captured| received_at.saturating_since(captured).as_micros() as u64);
    let size_ok =
        reg.info.codec != Codec::Jpeg || jpeg::dimensions(&frame.data) == Some(reg.sending_size);
    {
        let mut stats = lock(&reg.handle.stats);
        stats.record_frame(
            frame.seq,
            frame.data.len(),
            received_at.as_micros(),
            latency_us,
        );
        stats.rtt_us = clock.last_rtt_us();
        stats.clock_offset_us = clock.offset_us();
        if !size_ok {
            stats.size_mismatches = stats.size_mismatches.saturating_add(1);
        }
    }
    if !size_ok && !reg.warned_size_mismatch {
        reg.warned_size_mismatch = true;
        warn!(
            stream_id = reg.handle.id.get(),
            "client {peer} \"{}\": frame {} is not a {}x{} JPEG as announced (counted; logged once)",
            reg.info.name, frame.seq, reg.info.width, reg.info.height
        );
    }
    // A gap before the hub breaks every viewer's H.264 chain until the next keyframe.
    let chain = reg
        .chain
        .offer(reg.info.codec, frame.seq, frame.is_keyframe);
    if chain == (Pass::Wait { first: true }) {
        reg.handle.keyframe_wanted.notify_one();
    }
    reg.handle.frames.publish(LatestFrame {
        seq: frame.seq,
        capture_us: frame.capture_us,
        received_us: received_at.as_micros(),
        codec: reg.info.codec,
        capture_local_us: captured.map(Timestamp::as_micros),
        is_keyframe: frame.is_keyframe,
        data: frame.data,
        wall_message: Default::default(),
    });
}
