//! A native viewer (`vidcast view`) on the ingest port: admission (token, `--max-viewers`),
//! then a drive loop that feeds it the stream list and every stream's newest frame.
//!
//! Latest frame wins per stream and per viewer: `HubConnection` keeps one waiting frame per
//! stream and at most `VIEWER_WINDOW` unacknowledged, and frames are only picked when the
//! socket can take more. A slow or stalled viewer therefore skips frames for itself alone;
//! publishers and other viewers never wait for it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{debug, info, warn};
use vidcast_h264::{ChainGate, Pass};
use vidcast_proto::{
    ConnectionStats, Frame, GoodbyeCode, Hello, HubConnection, HubEvent, RejectCode,
    StreamAnnounce, Timestamp, WriteQueue,
};

use crate::auth::Right;
use crate::feed::{FeedStream, FeedUpdate, StreamFeed};
use crate::limits::{
    bite, bite_frame, count_close, enforce_reading, IncomingFrame, WriteStall, NOT_READING_LOG,
};
use crate::registry::{LatestFrame, StreamId};
use crate::server::Shared;
use crate::session::{earliest, sleep_until};
use crate::viewers::{ViewerGuard, ViewerKind};

/// How long a closing viewer may take to flush its goodbye before the socket is dropped.
const LINGER: Duration = Duration::from_secs(1);
/// A viewer sends only acks, pings and pongs: its receive buffer stays small.
const READ_CHUNK: usize = 4 * 1024;

/// An admitted viewer, ready for [`drive`].
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
    shared: &Shared,
    now: Timestamp,
) -> Option<Admitted> {
    // Viewers present the same tokens as the web wall: the shared one or any client's.
    // Slowed per address, and logged there at a limited rate.
    let who = format!("viewer \"{}\"", hello.name);
    if let Err(why) = crate::auth::check_web(shared, peer, &hello.token, &who) {
        conn.reject(RejectCode::Unauthorized, &why);
        return None;
    }
    let viewers = shared.viewers.total();
    let max = shared.options.limits.max_viewers;
    if viewers >= max {
        let reason = format!("too many viewers ({viewers}, --max-viewers {max}); try again later");
        warn!("viewer {peer} \"{}\" refused: {reason}", hello.name);
        conn.reject(RejectCode::Busy, &reason);
        return None;
    }
    let guard = shared.viewers.enter(ViewerKind::Native);
    let number = shared
        .viewer_numbers
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    conn.accept(number, now);
    info!(
        "viewer {peer} \"{}\" connected — {} viewers",
        hello.name,
        shared.viewers.total()
    );
    Some(Admitted {
        name: hello.name.clone(),
        guard,
        token: hello.token.clone(),
    })
}

fn announcement(stream: &FeedStream) -> StreamAnnounce {
    StreamAnnounce {
        stream_id: stream.id,
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
    shared: &Shared,
    update: FeedUpdate,
) {
    match update {
        FeedUpdate::Stream(stream) => conn.announce_stream(announcement(&stream)),
        FeedUpdate::Removed(id) => {
            gates.remove(&id);
            conn.remove_stream(id);
        }
        FeedUpdate::CatchUp(id, group) => {
            let gate = gates.entry(id).or_default();
            let frames = group
                .into_iter()
                .filter(|f| gate.offer(f.codec, f.seq, f.is_keyframe) == Pass::Use)
                .map(to_wire_frame)
                .collect();
            conn.send_stream_catch_up(id, frames);
        }
        FeedUpdate::Frame(id, latest) => {
            let gate = gates.entry(id).or_default();
            if conn.has_waiting_stream_frame(id) {
                gate.break_chain(); // sending replaces a frame not yet delivered
            }
            match gate.offer(latest.codec, latest.seq, latest.is_keyframe) {
                Pass::Use => {}
                Pass::Repeat => return,
                // Every frame held back asks; the publisher's session asks at most once a second.
                Pass::Wait { .. } => {
                    shared.registry.request_keyframe(id);
                    return;
                }
            }
            conn.send_stream_frame(id, to_wire_frame(latest));
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

/// Runs an admitted viewer's connection to its end. `inbuf` and `out` carry over whatever the
/// handshake left; `fd` is the TCP socket underneath (for TCP_INFO).
#[allow(clippy::too_many_arguments)] // the session's state handed over whole
pub(crate) async fn drive<R, W>(
    mut conn: HubConnection,
    mut reader: R,
    mut writer: W,
    mut inbuf: BytesMut,
    mut out: WriteQueue,
    fd: std::os::fd::RawFd,
    peer: SocketAddr,
    admitted: Admitted,
    shared: &Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let now = || Timestamp::from_micros(shared.clock.now_us());
    let since = Instant::now();
    let mut feed = StreamFeed::new(Arc::clone(&shared.registry));
    let mut gates = HashMap::new();
    let mut end: Option<String> = None;
    let mut closing_since: Option<Instant> = None;
    let mut reading = true;
    let mut writing = true;
    let mut reported = ConnectionStats::default();
    let mut shutting_down = *shutdown.borrow();
    if shutting_down {
        conn.close(GoodbyeCode::Shutdown, "hub shutting down");
    }
    let revoked = shared
        .options
        .auth
        .until_revoked(&admitted.token, &Right::View);
    tokio::pin!(revoked);
    let mut was_revoked = false;
    let limits = shared.options.limits;
    // A viewer that pings but never reads must not keep its slot (nor grow the hub's queue).
    let mut stall = WriteStall::new(limits.not_reading_timeout, Instant::now());
    // A viewer sends no frames, but a declared one is still budgeted until it is refused.
    let mut incoming = IncomingFrame::new(Arc::clone(&shared.frame_budget), &limits);
    // When a frame last left for this viewer, and whether frames were replaced unsent since.
    let mut last_sent = Instant::now();
    let mut dropped_since_sent = false;
    loop {
        while let Some(event) = conn.poll_event() {
            if let HubEvent::Closed(reason) = event {
                count_close(&shared.hits, peer, &reason);
                end = Some(reason.to_string());
                closing_since = Some(Instant::now());
            }
        }
        let mut limit_at = None;
        if closing_since.is_none() {
            if let Err(why) = incoming.check(&inbuf, Instant::now()) {
                bite_frame(&shared.hits, peer, &why);
                conn.close(GoodbyeCode::Limit, &why.to_string());
            }
            limit_at = incoming.deadline();
        }
        if writing {
            out.fill(|| conn.poll_transmit());
        } else {
            while conn.poll_transmit().is_some() {}
            out.clear();
        }
        let stats = conn.stats();
        shared.viewers.add(
            stats.frames_sent.saturating_sub(reported.frames_sent),
            stats.frames_dropped.saturating_sub(reported.frames_dropped),
        );
        // A viewer that acks nothing keeps its window full: every new frame replaces a
        // waiting one and none is sent. One that still pings would hold its slot for ever.
        let now_instant = Instant::now();
        if stats.frames_sent > reported.frames_sent {
            last_sent = now_instant;
            dropped_since_sent = false;
        } else if stats.frames_dropped > reported.frames_dropped {
            dropped_since_sent = true;
        }
        reported = stats;
        let acks_due = limits.not_reading_timeout;
        if dropped_since_sent && !acks_due.is_zero() && closing_since.is_none() {
            if now_instant.saturating_duration_since(last_sent) >= acks_due {
                let reason = format!(
                    "not reading: no frame acknowledged for {} s while frames waited (--not-reading-timeout)",
                    acks_due.as_secs()
                );
                bite(&shared.hits.not_reading, &NOT_READING_LOG, peer, &reason);
                conn.close(GoodbyeCode::Limit, &reason);
                continue;
            }
            limit_at = earliest(limit_at, Some(last_sent + acks_due));
        }
        if out.is_empty() && conn.is_closed() {
            break;
        }
        if closing_since.is_some_and(|t| t.elapsed() >= LINGER) {
            debug!(%peer, "dropping viewer that did not take its goodbye in time");
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
        let wake_at = conn
            .poll_timeout()
            .map(|t| tokio::time::Instant::now() + t.saturating_since(now()));
        let linger_at = closing_since.map(|t| tokio::time::Instant::from_std(t + LINGER));
        let wake_at = earliest(
            earliest(wake_at, linger_at),
            limit_at.map(tokio::time::Instant::from_std),
        );
        if inbuf.capacity() - inbuf.len() < READ_CHUNK / 4 && !incoming.sized(&inbuf) {
            inbuf.reserve(READ_CHUNK);
        }
        let has_output = !out.is_empty();
        tokio::select! {
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
                    end.get_or_insert(format!("socket error: {e}"));
                    conn.handle_eof(&inbuf);
                }
            },
            written = async { writer.write_vectored(&out.slices()).await }, if has_output => {
                match written {
                    Ok(n) => {
                        if n > 0 {
                            stall.wrote(n);
                        }
                        out.advance(n);
                    }
                    Err(e) => {
                        writing = false;
                        end.get_or_insert(format!("socket error: {e}"));
                        conn.handle_eof(&inbuf);
                    }
                }
            }
            update = feed.next(), if end.is_none() => apply(&mut conn, &mut gates, shared, update),
            _ = sleep_until(wake_at) => conn.handle_timeout(now()),
            _ = shutdown.changed(), if !shutting_down => {
                shutting_down = true;
                conn.close(GoodbyeCode::Shutdown, "hub shutting down");
            }
            () = &mut revoked, if !was_revoked => {
                was_revoked = true;
                warn!("viewer {peer} \"{}\": its token was revoked (token file changed); closing", admitted.name);
                conn.close(GoodbyeCode::Revoked, "token revoked");
            }
        }
    }
    let _ = writer.shutdown().await;
    let stats = conn.stats();
    drop(admitted.guard);
    info!(
        "viewer {peer} \"{}\" left ({}, after {}, {} frames sent, {} skipped for it) — {} viewers",
        admitted.name,
        end.as_deref().unwrap_or("closed"),
        crate::human::elapsed(since.elapsed()),
        stats.frames_sent,
        stats.frames_dropped,
        shared.viewers.total(),
    );
}
