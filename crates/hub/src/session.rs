//! One connection: the drive loop that owns the socket and feeds the protocol. A viewer's
//! connection is handed to `viewer.rs` once its hello is accepted.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tracing::{debug, info, warn};
use vidcast_h264::{ChainGate, Pass};
use vidcast_proto::{
    Codec, GoodbyeCode, Hello, HubConnection, HubEvent, RejectCode, Role, Timestamp, WriteQueue,
};

use crate::auth::Right;
use crate::human;
use crate::jpeg;
use crate::limits::{
    bite, bite_frame, count_close, enforce_reading, FrameRateLimit, IncomingFrame, Limits,
    PendingTicket, WriteStall, FRAMELESS_LOG, PENDING_LOG,
};
use crate::registry::{lock, LatestFrame, Owner, StreamHandle, StreamInfo};
use crate::server::Shared;
use crate::tls::TlsIdentity;

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

/// Runs one connection to its end: the TLS handshake first when the hub has TLS on, then the
/// drive loop. Never panics on peer input; logs how it ended.
pub(crate) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    // TCP_INFO is read from the socket itself, whatever wraps it; the stream outlives every read.
    let fd = stream.as_raw_fd();
    let limits = shared.options.limits;
    let (pending_ticket, mut evicted, evicted_others) = shared.pending.admit(peer.ip(), &limits);
    if evicted_others > 0 {
        let _ = shared.hits.pending_evicted.fetch_update(
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
    let Some(acceptor) = shared.options.tls.as_ref().map(TlsIdentity::acceptor) else {
        drive(stream, fd, peer, &shared, shutdown, pending_ticket, evicted).await;
        return;
    };
    let timeout = shared.options.connection.timing.handshake_timeout;
    let handshake = tokio::select! {
        accepted = tokio::time::timeout(timeout, acceptor.accept(stream)) => match accepted {
            Ok(Ok(tls)) => Ok(tls),
            Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
            Err(_) => Err(format!("no TLS handshake within {timeout:?}")),
        },
        _ = &mut evicted => Err("evicted during the TLS handshake (too many waiting connections)".to_owned()),
    };
    match handshake {
        Ok(tls) => drive(tls, fd, peer, &shared, shutdown, pending_ticket, evicted).await,
        Err(why) => {
            // Plain-TCP clients and scanners on a TLS port: one debug line each, counted in
            // the accept loop's summary.
            shared
                .refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            debug!("connection from {peer} ended before a stream began: {why}");
        }
    }
}

/// The drive loop of one connection over any byte stream (plain TCP or TLS); `fd` is the
/// underlying TCP socket, for TCP_INFO.
async fn drive<S>(
    stream: S,
    fd: RawFd,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    mut pending_ticket: PendingTicket<'_>,
    mut evicted: oneshot::Receiver<()>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let now = || Timestamp::from_micros(shared.clock.now_us());
    let started = now();
    let connected_at = Instant::now();
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut inbuf = BytesMut::with_capacity(HANDSHAKE_READ);
    let limits = shared.options.limits;
    // Tell the original Python client's stream from ours by its first bytes (at most 10).
    let mut peer_closed_early = false;
    let mut was_evicted = false;
    // The original client cannot speak TLS, so with TLS on there is nothing to sniff for.
    if shared.options.accept_legacy && shared.options.tls.is_none() {
        let deadline =
            tokio::time::Instant::now() + shared.options.connection.timing.handshake_timeout;
        while vidcast_legacy::detect(&inbuf) == vidcast_legacy::Detection::NeedMore {
            tokio::select! {
                read = reader.read_buf(&mut inbuf) => match read {
                    Ok(0) | Err(_) => { peer_closed_early = true; break; }
                    Ok(_) => {}
                },
                _ = tokio::time::sleep_until(deadline) => break,
                _ = &mut evicted => { was_evicted = true; break; }
            }
        }
        if !was_evicted && vidcast_legacy::detect(&inbuf) == vidcast_legacy::Detection::Legacy {
            if shared.options.auth.is_enabled() {
                warn!("legacy client {peer} refused: this hub requires a token, which the original format cannot carry");
                return;
            }
            crate::legacy::run(
                reader,
                writer,
                inbuf,
                peer,
                shared,
                shutdown,
                pending_ticket,
                evicted,
                connected_at,
            )
            .await;
            return;
        }
    }
    let mut conn = HubConnection::new(shared.options.connection, started);
    if was_evicted {
        conn.reject(
            RejectCode::Busy,
            "too many connections waiting for their handshake from this address; try again",
        );
    }
    if !inbuf.is_empty() {
        conn.handle_data(now(), &mut inbuf);
    }
    if peer_closed_early {
        conn.handle_eof(&inbuf);
    }
    let mut out = WriteQueue::default();
    let mut registered: Option<Registered> = None;
    let mut end: Option<(String, bool)> = None;
    let mut reading = !peer_closed_early;
    let mut writing = true;
    let mut shutting_down = *shutdown.borrow();
    let mut closing_since: Option<Instant> = None;
    if shutting_down {
        conn.close(GoodbyeCode::Shutdown, "hub shutting down");
    }
    let mut stall = WriteStall::new(limits.not_reading_timeout, Instant::now());
    let mut incoming = IncomingFrame::new(Arc::clone(&shared.frame_budget), &limits);
    let mut tcp_ticker = tokio::time::interval(TCP_SAMPLE_EVERY);
    tcp_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut viewer = None;
    // Completes when the token file takes this publisher's right away (set once registered).
    let mut revoked: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>> =
        None;

    loop {
        while let Some(event) = conn.poll_event() {
            match event {
                HubEvent::Hello(hello) if hello.role == Role::Viewer => {
                    viewer = crate::viewer::admit(&mut conn, &hello, peer, shared, now());
                    if viewer.is_some() {
                        pending_ticket.done();
                    }
                }
                HubEvent::Hello(hello) => {
                    // Still pending until its first frame: see `Registered::has_frame`.
                    registered = on_hello(&mut conn, hello, peer, shared, now());
                    if let Some(reg) = &registered {
                        let right = Right::Publish(reg.asked_name.clone());
                        let token = reg.token.clone();
                        let auth = &shared.options.auth;
                        revoked = Some(Box::pin(async move {
                            auth.until_revoked(&token, &right).await;
                        }));
                    }
                }
                HubEvent::Frame { frame, received_at } => {
                    if let Some(reg) = registered.as_mut() {
                        reg.has_frame = true;
                        pending_ticket.done();
                        on_frame(&conn, reg, frame, received_at, peer, &limits);
                    }
                }
                HubEvent::SenderReport(report) => {
                    if let Some(reg) = registered.as_ref() {
                        lock(&reg.handle.stats)
                            .net
                            .record_publisher(now().as_micros(), report);
                    }
                }
                HubEvent::EncoderReport(report) => {
                    if let Some(reg) = registered.as_mut() {
                        on_encoder_report(reg, report, peer);
                    }
                }
                HubEvent::Closed(reason) => {
                    count_close(&shared.hits, peer, &reason);
                    end = Some((reason.to_string(), reason.is_orderly()));
                    closing_since = Some(Instant::now());
                }
            }
        }
        // Limits with deadlines of their own; the earliest is woken for below.
        let mut limit_at: Option<Instant> = None;
        if closing_since.is_none() {
            if let Err(why) = incoming.check(&inbuf, Instant::now()) {
                bite_frame(&shared.hits, peer, &why);
                conn.close(GoodbyeCode::Limit, &why.to_string());
            }
            limit_at = earliest(limit_at, incoming.deadline());
            if let Some(reg) = registered.as_ref().filter(|r| !r.has_frame) {
                if !limits.first_frame_timeout.is_zero() {
                    let due = reg.since + limits.first_frame_timeout;
                    if Instant::now() >= due {
                        let reason = format!(
                            "no frame within {} s of the welcome (--first-frame-timeout)",
                            limits.first_frame_timeout.as_secs_f64()
                        );
                        bite(
                            &shared.hits.frameless_publisher,
                            &FRAMELESS_LOG,
                            peer,
                            &reason,
                        );
                        conn.close(GoodbyeCode::Limit, &reason);
                    }
                    limit_at = earliest(limit_at, Some(due));
                }
            }
        }
        if let Some(admitted) = viewer.take() {
            crate::viewer::drive(
                conn, reader, writer, inbuf, out, fd, peer, admitted, shared, shutdown,
            )
            .await;
            return;
        }
        if writing {
            out.fill(|| conn.poll_transmit());
        } else {
            // The socket is gone: what is left has nowhere to go.
            while conn.poll_transmit().is_some() {}
            out.clear();
        }
        if out.is_empty() && conn.is_closed() {
            break;
        }
        if closing_since.is_some_and(|t| t.elapsed() >= LINGER) {
            debug!(%peer, "dropping connection that did not take its goodbye in time");
            break;
        }
        let waiting = !out.is_empty();
        let closing = closing_since.is_some();
        match enforce_reading(
            &mut stall,
            &mut conn,
            waiting,
            closing,
            fd,
            &shared.hits,
            peer,
        ) {
            Ok(at) => limit_at = earliest(limit_at, at),
            Err(()) => continue,
        }

        let deadline = conn.poll_timeout().map(|t| {
            let wait = t.saturating_since(now());
            tokio::time::Instant::now() + wait
        });
        let linger_deadline = closing_since.map(|t| tokio::time::Instant::from_std(t + LINGER));
        let wake_at = earliest(
            earliest(deadline, linger_deadline),
            limit_at.map(tokio::time::Instant::from_std),
        );
        let spare = inbuf.capacity() - inbuf.len();
        let grow = if registered.is_some() {
            STREAMING_READ
        } else {
            HANDSHAKE_READ
        };
        // A large frame's buffer was sized to it when it began (see `IncomingFrame`).
        if spare < grow / 4 && !incoming.sized(&inbuf) {
            inbuf.reserve(grow);
        }
        let has_output = !out.is_empty();
        let keyframe_wanted = registered
            .as_ref()
            .filter(|r| r.info.codec == Codec::H264)
            .map(|r| Arc::clone(&r.handle.keyframe_wanted));

        tokio::select! {
            () = async {
                match &keyframe_wanted {
                    Some(wanted) => wanted.notified().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(reg) = registered.as_mut() {
                    if reg.keyframe_asked_at.is_none_or(|at| at.elapsed() >= KEYFRAME_ASK_EVERY) {
                        reg.keyframe_asked_at = Some(Instant::now());
                        lock(&reg.handle.stats).keyframe_requests += 1;
                        debug!(stream_id = reg.handle.id, "asking client {peer} \"{}\" for a keyframe", reg.info.name);
                        conn.request_keyframe();
                    }
                }
            }
            read = reader.read_buf(&mut inbuf), if reading => match read {
                Ok(0) => {
                    reading = false;
                    conn.handle_eof(&inbuf);
                }
                Ok(_) => {
                    conn.handle_data(now(), &mut inbuf);
                    if let Err(why) = incoming.update(conn.receiving(&inbuf), &mut inbuf, Instant::now()) {
                        bite_frame(&shared.hits, peer, &why);
                        conn.close(GoodbyeCode::Limit, &why.to_string());
                    }
                }
                Err(e) => {
                    reading = false;
                    end.get_or_insert((format!("socket error: {e}"), false));
                    conn.handle_eof(&inbuf);
                }
            },
            written = async {
                let slices = out.slices();
                writer.write_vectored(&slices).await
            }, if has_output => match written {
                Ok(n) => {
                    if n > 0 {
                        stall.wrote(n);
                    }
                    out.advance(n);
                }
                Err(e) => {
                    writing = false;
                    out.clear();
                    end.get_or_insert((format!("socket error: {e}"), false));
                    conn.handle_eof(&inbuf);
                }
            },
            _ = sleep_until(wake_at) => conn.handle_timeout(now()),
            _ = tcp_ticker.tick(), if registered.is_some() => {
                let sample = vidcast_tcpinfo::read(fd);
                if let (Some(stats), Some(reg)) = (sample, registered.as_ref()) {
                    lock(&reg.handle.stats).net.record_hub(now().as_micros(), stats);
                }
                if let Some(reg) = registered.as_ref() {
                    let idle_us = now().as_micros().saturating_sub(reg.last_frame_us);
                    if !limits.idle_timeout.is_zero() && idle_us >= limits.idle_timeout.as_micros() as u64 && end.is_none() {
                        let reason = format!("idle: no frame for {} s", limits.idle_timeout.as_secs());
                        warn!(stream_id = reg.handle.id, "client {peer} \"{}\": {reason} (--idle-timeout); closing", reg.info.name);
                        conn.close(GoodbyeCode::Limit, &reason);
                    }
                }
            }
            _ = &mut evicted, if pending_ticket.is_pending() && !was_evicted => {
                was_evicted = true;
                if registered.is_some() {
                    // Welcomed but no frame yet: a squatter, or a client that will reconnect.
                    conn.close(
                        GoodbyeCode::Limit,
                        "evicted: no frame yet and too many connections pending (--max-pending-per-ip, --max-pending)",
                    );
                } else {
                    conn.reject(
                        RejectCode::Busy,
                        "too many connections waiting for their handshake from this address; try again",
                    );
                }
            }
            _ = shutdown.changed(), if !shutting_down => {
                shutting_down = true;
                conn.close(GoodbyeCode::Shutdown, "hub shutting down");
            }
            () = async {
                match revoked.as_mut() {
                    Some(fut) => fut.await,
                    None => std::future::pending().await,
                }
            }, if end.is_none() => {
                revoked = None;
                if let Some(reg) = registered.as_ref() {
                    warn!(stream_id = reg.handle.id, "client {peer} \"{}\": its token was revoked (token file changed); closing", reg.info.name);
                }
                conn.close(GoodbyeCode::Revoked, "token revoked");
            }
        }
    }
    let _ = writer.shutdown().await;

    let (reason, orderly) = end.unwrap_or_else(|| ("closed".to_owned(), false));
    match registered {
        Some(reg) => {
            shared.registry.disconnect(
                reg.handle.id,
                reason.clone(),
                orderly,
                shared.clock.now_us(),
            );
            let (frames, bytes) = {
                let s = lock(&reg.handle.stats);
                (s.frames, s.bytes)
            };
            info!(
                stream_id = reg.handle.id,
                "client {peer} \"{}\" {} ({reason}, after {}, {} frames, {}) — {} live",
                reg.info.name,
                if orderly { "left" } else { "disconnected" },
                human::elapsed(reg.since.elapsed()),
                human::count(frames),
                human::bytes(bytes),
                shared.registry.live_count(),
            );
        }
        None => {
            // Floods and scanners would drown the log: one line each at debug, and a summary
            // every few seconds from the accept loop.
            shared
                .refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            debug!("connection from {peer} ended before a stream began: {reason}");
        }
    }
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

pub(crate) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn on_hello(
    conn: &mut HubConnection,
    hello: Hello,
    peer: SocketAddr,
    shared: &Shared,
    now: Timestamp,
) -> Option<Registered> {
    let limits = &shared.options.limits;
    let live = shared.registry.live_count();
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
    if let Err(why) = crate::auth::check_client(shared, peer, &hello.name, &hello.token) {
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
    };
    let owner = Owner::of(&hello_token, peer.ip());
    let mut info = info;
    let asked_name = info.name.clone();
    let handle = match shared
        .registry
        .connect(info.clone(), owner, now.as_micros())
    {
        Ok(handle) => handle,
        Err(refused) => {
            // Counted and logged (once per period) by the registry.
            conn.reject(RejectCode::Busy, &refused.to_string());
            return None;
        }
    };
    if handle.name != info.name {
        info!(
            stream_id = handle.id,
            "client {peer} asked for the name \"{}\", which another client holds; it is shown as \"{}\"",
            info.name, handle.name
        );
        info.name = handle.name.clone();
    }
    conn.accept_as(handle.id, &handle.name, now);
    let live = shared.registry.live_count();
    match handle.gap_us {
        Some(gap) => info!(
            stream_id = handle.id,
            "client {peer} \"{}\" reconnected after {:.1} s ({} {}x{} @ {} fps) — {live} live",
            info.name,
            gap as f64 / 1e6,
            info.codec.name(),
            info.width,
            info.height,
            info.fps_nominal,
        ),
        None => info!(
            stream_id = handle.id,
            "client {peer} \"{}\" connected ({} {}x{} @ {} fps) — {live} live",
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

/// Notes what the publisher's link adaptation chose, and logs when it starts or stops
/// sending less than it announced.
fn on_encoder_report(reg: &mut Registered, report: vidcast_proto::EncoderReport, peer: SocketAddr) {
    reg.sending_size = (report.width, report.height);
    let before = lock(&reg.handle.stats).encoder.replace(report);
    let was_adapting = before.is_some_and(|b| b.level > 0);
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
    if report.level > 0 && before.map(|b| b.level) != Some(report.level) {
        info!(
            stream_id = reg.handle.id,
            "client {peer} \"{}\" adapting to its link ({link}): {quality}, {:.1} fps, {}x{} (level {})",
            reg.info.name,
            f64::from(report.fps_milli) / 1000.0,
            report.width,
            report.height,
            report.level
        );
    } else if report.level == 0 && was_adapting {
        info!(
            stream_id = reg.handle.id,
            "client {peer} \"{}\" back to full quality ({link})", reg.info.name
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
                stream_id = reg.handle.id,
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
            stream_id = reg.handle.id,
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
