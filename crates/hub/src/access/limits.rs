//! Limits that keep one hub serving its real clients whatever else connects: how many clients
//! and viewers, how many connections may wait in the handshake per address and in all, frame
//! rate per client, idle time, peers that do not read, publishers that send no frame, and the
//! memory unfinished frames may hold. Each has a flag, a default, and a log line when it bites.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tracing::warn;
use vidcast_proto::{CloseReason, GoodbyeCode, HubConnection, ProtocolError};

use vidcast_pump::{Flow, Turn};

use crate::access::budget::{LimitHits, RateLog, LOG_EVERY};

use tokio::sync::oneshot;

use crate::stream::registry::lock;

/// The limits of a hub.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Live publishers at most; more are refused as busy.
    pub max_clients: usize,
    /// Viewers (wall sockets, MJPEG readers, native viewers) at most; more get HTTP 503 or a
    /// busy reject.
    pub max_viewers: usize,
    /// Connections from one address still in the handshake (or publishers that have not sent
    /// their first frame yet); a newer one evicts the oldest.
    pub max_pending_per_ip: usize,
    /// Connections in the handshake (as above) in all; a newer one evicts the oldest. Each
    /// holds a descriptor: this keeps a flood from taking those real clients need.
    pub max_pending: usize,
    /// Frames per second a publisher may send; frames above it are dropped and counted.
    pub max_fps: f64,
    /// A publisher that sends no frame for this long is closed; zero turns it off.
    pub idle_timeout: Duration,
    /// HTTP connections (web wall, WebSockets, MJPEG, API; TLS handshakes included) open at
    /// once; a new one over it is closed at once. The default leaves most of a 1 024-descriptor
    /// hub to publishers.
    pub max_http_connections: usize,
    /// HTTP connections from one address at once (a browser uses about six).
    pub max_http_connections_per_ip: usize,
    /// A web connection must finish its TLS handshake, and then each request head, within this
    /// time; it is also how long an idle keep-alive connection stays open between requests.
    pub http_header_timeout: Duration,
    /// A web connection whose writes make no progress for this long is closed: a wall socket
    /// or MJPEG reader that takes nothing would hold its viewer slot for ever. Zero: never.
    pub http_stall_timeout: Duration,
    /// Wrong tokens in a row from one address (IPv6: one /64) before it is locked out.
    pub max_token_failures: u32,
    /// The first lockout; each further one doubles it, up to 64 times. While locked out, an
    /// address is refused without its token being checked.
    pub token_lockout: Duration,
    /// Restream targets one stream may be given through the API.
    pub max_restream_per_stream: usize,
    /// Restream targets added through the API, all streams together.
    pub max_restream_targets: usize,
    /// Live publishers from one address at most; more are refused as busy.
    pub max_publishers_per_ip: usize,
    /// Offline streams remembered at most (with their tiles and ids); past it the oldest
    /// offline stream is forgotten before `offline_keep` ends.
    pub max_offline_streams: usize,
    /// Bytes of frames one stream may hold for later, in each place it holds them: its
    /// in-order backlog (recording, restreaming), its kept keyframe group, its recorder's queue.
    pub max_stream_buffer_bytes: usize,
    /// The same places of every stream together, in bytes.
    pub max_buffer_bytes: usize,
    /// A publisher that sends no frame this long after its welcome is closed; zero turns it
    /// off. (Until its first frame it also counts as pending, so a full hub evicts it.)
    pub first_frame_timeout: Duration,
    /// A peer with output waiting that takes none of it for this long is closed ("not
    /// reading"); zero turns it off.
    pub not_reading_timeout: Duration,
    /// Bytes all connections together may hold in frames still arriving (both protocols); a
    /// frame that would go over it closes its connection.
    pub frame_budget_bytes: usize,
    /// Slowest a frame may arrive, bytes per second: a frame must be whole within
    /// `max(min_frame_time, its length / this)` of its first byte, so trickling cannot pin
    /// memory. Zero turns it off.
    pub min_frame_rate_bps: u64,
    /// The least time any frame gets to arrive, however small (see `min_frame_rate_bps`).
    pub min_frame_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_clients: 1000,
            max_viewers: 1000,
            // 256 of 1 024 descriptors at most for strangers: the rest stay for real publishers,
            // viewers and the web port (handshakes take one round trip; evicted clients retry).
            max_pending_per_ip: 64,
            max_pending: 256,
            max_fps: 240.0,
            idle_timeout: Duration::from_secs(300),
            max_http_connections: 256,
            max_http_connections_per_ip: 64,
            http_header_timeout: Duration::from_secs(5),
            http_stall_timeout: Duration::from_secs(5),
            max_token_failures: 5,
            token_lockout: Duration::from_secs(10),
            max_restream_per_stream: 4,
            max_restream_targets: 64,
            max_publishers_per_ip: 64,
            max_offline_streams: 256,
            max_stream_buffer_bytes: 32 << 20,
            max_buffer_bytes: 512 << 20,
            // A camera or encoder that starts after the welcome has seconds, not minutes.
            first_frame_timeout: Duration::from_secs(15),
            // Above any pause of a live reader (a TCP retransmission backoff is < 2 s at first).
            not_reading_timeout: Duration::from_secs(5),
            // 16 full-size (16 MiB) frames arriving at once, or 1 000 publishers' 256 KiB frames.
            frame_budget_bytes: 256 << 20,
            // 2 Mbit/s: a 16 MiB frame has a minute; anything under 2.5 MB has min_frame_time.
            min_frame_rate_bps: 256 * 1024,
            // Ten times the heartbeat gap a live publisher may leave, and then some.
            min_frame_time: Duration::from_secs(10),
        }
    }
}

#[derive(Default)]
struct PendingInner {
    next_id: u64,
    by_ip: HashMap<IpAddr, VecDeque<u64>>,
    all: VecDeque<(u64, IpAddr)>,
    evict: HashMap<u64, oneshot::Sender<()>>,
}

/// Connections that have not completed their handshake, oldest first.
///
/// A silent flood fills these queues and the oldest are evicted, so a real client, which
/// completes its handshake in one round trip, always gets in.
#[derive(Default)]
pub(crate) struct PendingConnections {
    inner: Mutex<PendingInner>,
}

/// A connection's place among the pending; leaves the queue when dropped.
pub(crate) struct PendingTicket<'a> {
    pending: &'a PendingConnections,
    id: u64,
    ip: IpAddr,
    active: bool,
}

impl PendingConnections {
    /// Admits a new connection from `ip`, evicting the oldest pending ones over the limits.
    /// The receiver fires if this connection is evicted in turn.
    pub(crate) fn admit(
        &self,
        ip: IpAddr,
        limits: &Limits,
    ) -> (PendingTicket<'_>, oneshot::Receiver<()>, usize) {
        let mut inner = lock(&self.inner);
        let id = inner.next_id;
        inner.next_id += 1;
        let (tx, rx) = oneshot::channel();
        inner.evict.insert(id, tx);
        inner.by_ip.entry(ip).or_default().push_back(id);
        inner.all.push_back((id, ip));
        let mut evicted = 0;
        while inner.by_ip.get(&ip).map_or(0, VecDeque::len) > limits.max_pending_per_ip.max(1) {
            let oldest = inner.by_ip.get_mut(&ip).and_then(VecDeque::pop_front);
            if let Some(old) = oldest {
                inner.all.retain(|(i, _)| *i != old);
                if let Some(tx) = inner.evict.remove(&old) {
                    let _ = tx.send(());
                    evicted += 1;
                }
            }
        }
        while inner.all.len() > limits.max_pending.max(1) {
            if let Some((old, old_ip)) = inner.all.pop_front() {
                if let Some(q) = inner.by_ip.get_mut(&old_ip) {
                    q.retain(|i| *i != old);
                }
                if let Some(tx) = inner.evict.remove(&old) {
                    let _ = tx.send(());
                    evicted += 1;
                }
            }
        }
        let ticket = PendingTicket {
            pending: self,
            id,
            ip,
            active: true,
        };
        (ticket, rx, evicted)
    }

    fn remove(&self, id: u64, ip: IpAddr) {
        let mut inner = lock(&self.inner);
        inner.evict.remove(&id);
        inner.all.retain(|(i, _)| *i != id);
        if let Some(q) = inner.by_ip.get_mut(&ip) {
            q.retain(|i| *i != id);
            if q.is_empty() {
                inner.by_ip.remove(&ip);
            }
        }
    }

    /// Connections pending now.
    pub(crate) fn len(&self) -> usize {
        lock(&self.inner).all.len()
    }
}

impl PendingTicket<'_> {
    /// Whether this connection still counts as pending (and may be evicted).
    pub(crate) fn is_pending(&self) -> bool {
        self.active
    }

    /// The handshake completed: this connection no longer counts as pending.
    pub(crate) fn done(&mut self) {
        if self.active {
            self.active = false;
            self.pending.remove(self.id, self.ip);
        }
    }
}

impl Drop for PendingTicket<'_> {
    fn drop(&mut self) {
        self.done();
    }
}

/// Log gates, one per limit, shared by every connection of the process.
/// Log gate for peers closed for flooding pings.
pub(crate) static PING_FLOOD_LOG: RateLog = RateLog::new(crate::access::budget::LOG_EVERY);
pub(crate) static NOT_READING_LOG: RateLog = RateLog::new(LOG_EVERY);
pub(crate) static PENDING_LOG: RateLog = RateLog::new(LOG_EVERY);
pub(crate) static HANDSHAKE_LOG: RateLog = RateLog::new(LOG_EVERY);
pub(crate) static FRAMELESS_LOG: RateLog = RateLog::new(LOG_EVERY);
pub(crate) static FRAME_BUDGET_LOG: RateLog = RateLog::new(LOG_EVERY);
pub(crate) static SLOW_FRAME_LOG: RateLog = RateLog::new(LOG_EVERY);

/// A limit bit for the connection from `peer`: counts it and logs `what`, at most one line
/// per [`LOG_EVERY`] for this limit (saying how many it stands for).
pub(crate) fn bite(counter: &AtomicU64, log: &RateLog, peer: std::net::SocketAddr, what: &str) {
    LimitHits::hit(counter);
    match log.allow(Instant::now()) {
        Some(0) => warn!("{peer}: {what}; closing"),
        Some(more) => {
            warn!("{peer}: {what}; closing (and {more} more like it since this limit last logged)")
        }
        None => {}
    }
}

/// Why a frame still arriving closes its connection, as a limit that bit.
pub(crate) fn bite_frame(hits: &LimitHits, peer: std::net::SocketAddr, why: &FrameRefusal) {
    let (counter, log) = match why {
        FrameRefusal::OverBudget { .. } => (&hits.frame_budget, &FRAME_BUDGET_LOG),
        FrameRefusal::TooSlow { .. } => (&hits.slow_frame, &SLOW_FRAME_LOG),
    };
    bite(counter, log, peer, &why.to_string());
}

/// Watches one connection's output: output waiting (in the hub's queue, or in the socket's
/// send buffer) and less than [`MIN_PROGRESS_BYTES`] of it acknowledged by the peer for the
/// timeout means the peer does not read (a ping flood that never reads would otherwise grow
/// the hub's queue). What the socket accepts is no measure: a socket whose peer does not read
/// still takes small writes for a long time while its send buffer grows.
#[derive(Debug)]
pub(crate) struct WriteStall {
    timeout: Duration,
    since: Instant,
    /// Bytes written since `since` (the measure when TCP_INFO is not available).
    written: usize,
    /// The peer's acknowledged byte count at `since`.
    acked_at_since: Option<u64>,
    /// Bytes were written since the socket was last seen empty.
    unconfirmed: bool,
    probed_at: Option<Instant>,
}

/// Bytes the peer must take per timeout to count as reading (a 26 bit/s link).
pub(crate) const MIN_PROGRESS_BYTES: usize = 16 * 1024;
/// How often the socket is looked at (TCP_INFO) while output waits.
const PROBE_EVERY: Duration = Duration::from_millis(250);

/// What the socket says of its delivery: bytes the peer acknowledged in all, and whether it
/// still holds bytes the peer has not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delivery {
    pub(crate) acked_bytes: u64,
    pub(crate) holds_bytes: bool,
}

impl WriteStall {
    pub(crate) fn new(timeout: Duration, now: Instant) -> Self {
        Self {
            timeout,
            since: now,
            written: 0,
            acked_at_since: None,
            unconfirmed: false,
            probed_at: None,
        }
    }

    /// The socket took `bytes` into its send buffer.
    pub(crate) fn wrote(&mut self, bytes: usize) {
        self.unconfirmed = true;
        self.written = self.written.saturating_add(bytes);
    }

    fn restart(&mut self, now: Instant, acked: Option<u64>) {
        self.since = now;
        self.written = 0;
        self.acked_at_since = acked;
    }

    /// Call once per loop turn with whether output waits in the hub's queue; `delivery` reads
    /// the socket (at most every [`PROBE_EVERY`]; `None` where TCP_INFO is not available, and
    /// then bytes written are the measure). `Ok(deadline)`: wake by then to check again (none
    /// when nothing waits anywhere); `Err(stalled_for)`: the peer is not reading.
    pub(crate) fn check(
        &mut self,
        waiting: bool,
        now: Instant,
        delivery: impl FnOnce() -> Option<Delivery>,
    ) -> Result<Option<Instant>, Duration> {
        if self.timeout.is_zero() || (!waiting && !self.unconfirmed) {
            self.restart(now, None);
            return Ok(None);
        }
        let due = self.since + self.timeout;
        let probe_due = self.probed_at.is_none_or(|t| now >= t + PROBE_EVERY) || now >= due;
        if probe_due {
            self.probed_at = Some(now);
            match delivery() {
                Some(d) if !waiting && !d.holds_bytes => {
                    self.unconfirmed = false;
                    self.restart(now, None);
                    return Ok(None);
                }
                Some(d) => match self.acked_at_since {
                    None => self.acked_at_since = Some(d.acked_bytes),
                    Some(mark)
                        if d.acked_bytes.saturating_sub(mark) >= MIN_PROGRESS_BYTES as u64 =>
                    {
                        self.restart(now, Some(d.acked_bytes));
                    }
                    Some(_) => {}
                },
                None if self.written >= MIN_PROGRESS_BYTES => self.restart(now, None),
                None => {}
            }
        }
        let due = self.since + self.timeout;
        if now >= due {
            return Err(now.saturating_duration_since(self.since));
        }
        Ok(Some(due.min(now + PROBE_EVERY)))
    }
}

/// Counts (and rate-logs) a connection's end when a limit caused it: a peer that did not
/// read, flooded pings, or did not finish its handshake in time. The same for every drive loop.
pub(crate) fn count_close(hits: &LimitHits, peer: std::net::SocketAddr, reason: &CloseReason) {
    match reason {
        CloseReason::NotReading { .. } => bite(
            &hits.not_reading,
            &NOT_READING_LOG,
            peer,
            &reason.to_string(),
        ),
        CloseReason::Protocol(ProtocolError::PingFlood { .. }) => {
            bite(&hits.ping_flood, &PING_FLOOD_LOG, peer, &reason.to_string())
        }
        // Logged in the accept loop's summary of refused connections.
        CloseReason::HandshakeTimeout { .. } => LimitHits::hit(&hits.handshake_timeout),
        _ => {}
    }
}

/// The budgets every hub connection is held to whatever its role, applied from its session's
/// pump hooks: a frame still arriving holds memory from the hub-wide budget and must arrive at
/// a minimum rate ([`IncomingFrame`]); output the peer takes none of for
/// `--not-reading-timeout` closes it as not reading ([`WriteStall`], measured by the bytes the
/// peer acknowledged in TCP_INFO).
pub(crate) struct PeerBudget {
    stall: WriteStall,
    incoming: IncomingFrame,
    /// The TCP socket underneath whatever wraps it, for TCP_INFO.
    fd: std::os::fd::RawFd,
    peer: std::net::SocketAddr,
}

impl PeerBudget {
    pub(crate) fn new(
        frame_budget: &Arc<FrameBudget>,
        limits: &Limits,
        fd: std::os::fd::RawFd,
        peer: std::net::SocketAddr,
    ) -> Self {
        Self {
            stall: WriteStall::new(limits.not_reading_timeout, Instant::now()),
            incoming: IncomingFrame::new(Arc::clone(frame_budget), limits),
            fd,
            peer,
        }
    }

    /// After `conn` took what it could of `inbuf`: sizes or refuses the frame still arriving.
    pub(crate) fn on_read(
        &mut self,
        conn: &mut HubConnection,
        inbuf: &mut BytesMut,
        hits: &LimitHits,
    ) {
        if let Err(why) = self
            .incoming
            .update(conn.receiving(inbuf), inbuf, Instant::now())
        {
            bite_frame(hits, self.peer, &why);
            conn.close(GoodbyeCode::Limit, &why.to_string());
        }
    }

    /// The socket took `bytes`.
    pub(crate) fn on_wrote(&mut self, bytes: usize) {
        self.stall.wrote(bytes);
    }

    /// How much to grow the receive buffer by (`grow`), or zero when a large frame's buffer was
    /// sized to it already.
    pub(crate) fn read_chunk(&self, inbuf: &BytesMut, grow: usize) -> usize {
        if self.incoming.sized(inbuf) {
            0
        } else {
            grow
        }
    }

    /// Once per turn, before the role's own limits: the frame still arriving is within its
    /// budget and rate (not checked once closing).
    pub(crate) fn check_incoming(
        &mut self,
        conn: &mut HubConnection,
        turn: &Turn<'_>,
        hits: &LimitHits,
    ) -> Flow {
        if turn.closing {
            return Flow::Wait(None);
        }
        if let Err(why) = self.incoming.check(turn.inbuf, Instant::now()) {
            bite_frame(hits, self.peer, &why);
            conn.close(GoodbyeCode::Limit, &why.to_string());
            return Flow::Again;
        }
        Flow::Wait(self.incoming.deadline())
    }

    /// Once per turn, after the role's own limits: a peer with output waiting that takes none
    /// of it for `--not-reading-timeout` is closed (a closing one is left to the linger time).
    pub(crate) fn check_reading(
        &mut self,
        conn: &mut HubConnection,
        turn: &Turn<'_>,
        hits: &LimitHits,
    ) -> Flow {
        let fd = self.fd;
        match self
            .stall
            .check(turn.output_waiting, Instant::now(), || socket_delivery(fd))
        {
            Ok(at) => Flow::Wait(at),
            Err(stalled) if !turn.closing => {
                let reason = format!(
                    "not reading: output waiting, none taken for {} s (--not-reading-timeout)",
                    stalled.as_secs()
                );
                bite(&hits.not_reading, &NOT_READING_LOG, self.peer, &reason);
                conn.close(GoodbyeCode::Limit, &reason);
                Flow::Again
            }
            Err(_) => Flow::Wait(None),
        }
    }
}

/// The socket `fd`'s delivery from TCP_INFO (`None` where that is not available).
pub(crate) fn socket_delivery(fd: std::os::fd::RawFd) -> Option<Delivery> {
    vidcast_tcpinfo::read(fd).map(|s| Delivery {
        acked_bytes: s.bytes_acked,
        holds_bytes: s.notsent_bytes > 0 || s.unacked_segments > 0,
    })
}

/// Frames up to this size are read into the connection's ordinary buffer and not reserved
/// from the budget (their cost is bounded by the connection count alone).
pub(crate) const RESERVE_ABOVE_BYTES: usize = 64 * 1024;
/// A receive buffer larger than this is given back once its frame is done.
const SHRINK_ABOVE_BYTES: usize = 256 * 1024;

/// Bytes held by frames still arriving, over all connections of both protocols.
#[derive(Debug)]
pub(crate) struct FrameBudget {
    limit: usize,
    held: AtomicUsize,
}

impl FrameBudget {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            held: AtomicUsize::new(0),
        }
    }

    /// Bytes held now.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Takes `bytes` from the budget, or `None` if that would go over it.
    fn reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|&after| after <= self.limit)
            })
            .ok()?;
        Some(Reservation {
            budget: Arc::clone(self),
            bytes,
        })
    }
}

/// Bytes taken from a [`FrameBudget`]; given back when dropped.
#[derive(Debug)]
struct Reservation {
    budget: Arc<FrameBudget>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Why a frame still arriving closes its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameRefusal {
    /// All connections together already hold the budget's worth of unfinished frames.
    OverBudget {
        len: usize,
        held: usize,
        limit: usize,
    },
    /// The frame did not complete in time (the peer trickles it).
    TooSlow {
        len: usize,
        received: usize,
        after: Duration,
    },
}

impl std::fmt::Display for FrameRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameRefusal::OverBudget { len, held, limit } => write!(
                f,
                "frame budget full: a {len}-byte frame with {held} of {limit} bytes held by unfinished frames (--frame-budget)"
            ),
            FrameRefusal::TooSlow {
                len,
                received,
                after,
            } => write!(
                f,
                "frame too slow: {received} of {len} bytes in {} s (--min-frame-rate)",
                after.as_secs()
            ),
        }
    }
}

/// The frame a connection is receiving, if it is large: its budget reservation, its deadline,
/// and the receive buffer sized to it (one allocation of exactly its length, given back when
/// it is done: the buffer's capacity, not its length, is what holds memory).
#[derive(Debug)]
pub(crate) struct IncomingFrame {
    budget: Arc<FrameBudget>,
    min_rate_bps: u64,
    min_time: Duration,
    current: Option<Current>,
}

#[derive(Debug)]
struct Current {
    offset: u64,
    len: usize,
    started: Instant,
    deadline: Option<Instant>,
    _reservation: Option<Reservation>,
}

impl IncomingFrame {
    pub(crate) fn new(budget: Arc<FrameBudget>, limits: &Limits) -> Self {
        Self {
            budget,
            min_rate_bps: limits.min_frame_rate_bps,
            min_time: limits.min_frame_time,
            current: None,
        }
    }

    /// Call after each decode. `receiving`: the message at the front of `buf` that is not
    /// whole yet, as (its stream offset, its whole length in bytes), if any.
    pub(crate) fn update(
        &mut self,
        receiving: Option<(u64, usize)>,
        buf: &mut BytesMut,
        now: Instant,
    ) -> Result<(), FrameRefusal> {
        if receiving
            .is_some_and(|(offset, _)| self.current.as_ref().is_some_and(|c| c.offset == offset))
        {
            return Ok(());
        }
        // A frame is done (or refused): give its reservation and, if it was large, its buffer
        // back. The frame went out with its own share of the old allocation.
        let was_large = self
            .current
            .take()
            .is_some_and(|c| c.len > RESERVE_ABOVE_BYTES);
        let next_len = receiving.map_or(0, |(_, len)| len);
        if was_large && buf.capacity() > SHRINK_ABOVE_BYTES.max(next_len) {
            *buf = BytesMut::from(&buf[..]);
        }
        let Some((offset, len)) = receiving else {
            return Ok(());
        };
        let reservation = if len > RESERVE_ABOVE_BYTES {
            let reservation = self.budget.reserve(len).ok_or(FrameRefusal::OverBudget {
                len,
                held: self.budget.held(),
                limit: self.budget.limit,
            })?;
            // Exactly the frame: no doubling while it arrives.
            buf.reserve(len.saturating_sub(buf.len()));
            Some(reservation)
        } else {
            None
        };
        let deadline = (self.min_rate_bps > 0).then(|| {
            let secs = len as f64 / self.min_rate_bps as f64;
            now + self.min_time.max(Duration::from_secs_f64(secs.min(1e6)))
        });
        self.current = Some(Current {
            offset,
            len,
            started: now,
            deadline,
            _reservation: reservation,
        });
        Ok(())
    }

    /// Whether a large frame is arriving into a buffer already sized for it (the driver then
    /// must not grow the buffer for its reads).
    pub(crate) fn sized(&self, buf: &BytesMut) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| c.len > RESERVE_ABOVE_BYTES)
            && buf.capacity() > buf.len()
    }

    /// When the frame arriving must be whole.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.current.as_ref().and_then(|c| c.deadline)
    }

    /// `Err` once the frame arriving is past its deadline; `buf` holds what came of it.
    pub(crate) fn check(&self, buf: &BytesMut, now: Instant) -> Result<(), FrameRefusal> {
        match &self.current {
            Some(c) if c.deadline.is_some_and(|d| now >= d) => Err(FrameRefusal::TooSlow {
                len: c.len,
                received: buf.len().min(c.len),
                after: now.saturating_duration_since(c.started),
            }),
            _ => Ok(()),
        }
    }
}

/// Token bucket for a publisher's frame rate: a second's worth of burst.
#[derive(Debug, Clone)]
pub(crate) struct FrameRateLimit {
    max_fps: f64,
    tokens: f64,
    last_us: Option<u64>,
}

impl FrameRateLimit {
    pub(crate) fn new(max_fps: f64) -> Self {
        Self {
            max_fps,
            tokens: max_fps,
            last_us: None,
        }
    }

    /// Whether a frame arriving at `now_us` is within the rate.
    pub(crate) fn allow(&mut self, now_us: u64) -> bool {
        if let Some(last) = self.last_us {
            let refill = now_us.saturating_sub(last) as f64 / 1e6 * self.max_fps;
            self.tokens = (self.tokens + refill).min(self.max_fps.max(1.0));
        }
        self.last_us = Some(now_us);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_from_one_address_evicts_its_own_oldest_first() {
        let pending = PendingConnections::default();
        let limits = Limits {
            max_pending_per_ip: 3,
            max_pending: 100,
            ..Limits::default()
        };
        let flooder: IpAddr = "127.0.0.2".parse().unwrap();
        let other: IpAddr = "127.0.0.3".parse().unwrap();
        let (_other_ticket, mut other_evicted, _) = pending.admit(other, &limits);
        let mut receivers = Vec::new();
        let mut tickets = Vec::new();
        for _ in 0..5 {
            let (t, rx, _) = pending.admit(flooder, &limits);
            tickets.push(t);
            receivers.push(rx);
        }
        assert!(receivers[0].try_recv().is_ok() && receivers[1].try_recv().is_ok());
        assert!(receivers[2].try_recv().is_err());
        assert!(
            other_evicted.try_recv().is_err(),
            "another address is not touched"
        );
        assert_eq!(pending.len(), 4);
        tickets[4].done();
        assert_eq!(pending.len(), 3);
    }

    #[test]
    fn the_total_limit_evicts_the_oldest_anywhere() {
        let pending = PendingConnections::default();
        let limits = Limits {
            max_pending_per_ip: 10,
            max_pending: 2,
            ..Limits::default()
        };
        let (_a, mut a_rx, _) = pending.admit("127.0.0.2".parse().unwrap(), &limits);
        let (_b, _b_rx, _) = pending.admit("127.0.0.3".parse().unwrap(), &limits);
        let (_c, _c_rx, evicted) = pending.admit("127.0.0.4".parse().unwrap(), &limits);
        assert_eq!(evicted, 1);
        assert!(a_rx.try_recv().is_ok());
    }

    #[test]
    fn a_write_stall_is_reported_after_the_timeout_and_progress_resets_it() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let at = |acked_bytes: u64, holds_bytes: bool| {
            move || {
                Some(Delivery {
                    acked_bytes,
                    holds_bytes,
                })
            }
        };
        let mut stall = WriteStall::new(ms(5000), t0);
        assert_eq!(
            stall.check(false, t0, at(0, true)),
            Ok(None),
            "nothing written"
        );
        stall.wrote(1_000_000);
        assert!(stall.check(true, t0, at(100, true)).is_ok());
        // Written is no progress; acknowledged is, from 16 KiB on.
        assert!(stall
            .check(true, t0 + ms(3000), at(100 + 16383, true))
            .is_ok());
        assert_eq!(
            stall.check(true, t0 + ms(5000), at(100 + 16383, true)),
            Err(ms(5000))
        );
        assert!(stall
            .check(true, t0 + ms(5300), at(100 + 16384, true))
            .is_ok());
        // An empty queue with bytes still in the socket is still waiting.
        assert!(stall.check(false, t0 + ms(9000), at(16484, true)).is_ok());
        assert!(stall.check(false, t0 + ms(10300), at(16484, true)).is_err());
        // Everything delivered: the clock stops.
        assert_eq!(
            stall.check(false, t0 + ms(20000), at(16484, false)),
            Ok(None)
        );
        assert_eq!(
            stall.check(false, t0 + ms(40000), at(16484, true)),
            Ok(None)
        );
        // Without TCP_INFO, bytes written are the measure.
        let mut stall = WriteStall::new(ms(5000), t0);
        stall.wrote(MIN_PROGRESS_BYTES);
        assert!(stall.check(true, t0 + ms(4000), || None).is_ok());
        assert!(stall.check(true, t0 + ms(8000), || None).is_ok());
        assert!(stall.check(true, t0 + ms(9000), || None).is_err());
    }

    #[test]
    fn the_frame_budget_is_shared_and_given_back() {
        let limits = Limits {
            frame_budget_bytes: 3 << 20,
            min_frame_rate_bps: 1 << 20,
            ..Limits::default()
        };
        let budget = Arc::new(FrameBudget::new(limits.frame_budget_bytes));
        let t0 = Instant::now();
        let mut a = IncomingFrame::new(Arc::clone(&budget), &limits);
        let mut b = IncomingFrame::new(Arc::clone(&budget), &limits);
        let mut buf_a = BytesMut::new();
        let mut buf_b = BytesMut::new();
        a.update(Some((0, 2 << 20)), &mut buf_a, t0).unwrap();
        assert!(buf_a.capacity() >= 2 << 20);
        assert_eq!(budget.held(), 2 << 20);
        assert!(matches!(
            b.update(Some((0, 2 << 20)), &mut buf_b, t0),
            Err(FrameRefusal::OverBudget { .. })
        ));
        // Small frames take nothing from the budget.
        b.update(Some((0, 1000)), &mut buf_b, t0).unwrap();
        assert_eq!(budget.held(), 2 << 20);
        // The same frame again changes nothing; its end gives the bytes and the buffer back.
        a.update(Some((0, 2 << 20)), &mut buf_a, t0).unwrap();
        assert_eq!(budget.held(), 2 << 20);
        a.update(None, &mut buf_a, t0).unwrap();
        assert_eq!(budget.held(), 0);
        assert!(buf_a.capacity() < 1 << 20);
        drop(b);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn a_frame_must_arrive_at_the_minimum_rate_with_a_floor() {
        let limits = Limits {
            min_frame_rate_bps: 1 << 20,
            ..Limits::default()
        };
        let budget = Arc::new(FrameBudget::new(limits.frame_budget_bytes));
        let t0 = Instant::now();
        let mut small = IncomingFrame::new(Arc::clone(&budget), &limits);
        let mut buf = BytesMut::new();
        small.update(Some((7, 1000)), &mut buf, t0).unwrap();
        assert_eq!(small.deadline(), Some(t0 + limits.min_frame_time));
        let mut big = IncomingFrame::new(Arc::clone(&budget), &limits);
        big.update(Some((0, 16 << 20)), &mut buf, t0).unwrap();
        assert_eq!(big.deadline(), Some(t0 + Duration::from_secs(16)));
        assert!(big.check(&buf, t0 + Duration::from_secs(15)).is_ok());
        assert!(matches!(
            big.check(&buf, t0 + Duration::from_secs(16)),
            Err(FrameRefusal::TooSlow { len, .. }) if len == 16 << 20
        ));
    }

    #[test]
    fn frame_rate_above_the_limit_is_refused() {
        let mut limit = FrameRateLimit::new(10.0);
        // 100 frames in one second at 100 fps: the burst of 10, then about 10 more.
        let allowed = (0..100).filter(|i| limit.allow(i * 10_000)).count();
        assert!((18..=21).contains(&allowed), "{allowed}");
    }
}
