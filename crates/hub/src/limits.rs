//! Limits that keep one hub serving its real clients whatever else connects: how many clients
//! and viewers, how many connections may wait in the handshake per address and in all, frame
//! rate per client, idle time. Each has a flag, a default, and a log line when it bites.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::registry::lock;

/// The limits of a hub.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Live publishers at most; more are refused as busy.
    pub max_clients: usize,
    /// Viewers (wall sockets, MJPEG readers, native viewers) at most; more get HTTP 503 or a
    /// busy reject.
    pub max_viewers: usize,
    /// Connections from one address still in the handshake; a newer one evicts the oldest.
    pub max_pending_per_ip: usize,
    /// Connections in the handshake in all; a newer one evicts the oldest.
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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_clients: 1000,
            max_viewers: 1000,
            max_pending_per_ip: 256,
            max_pending: 4096,
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
    fn frame_rate_above_the_limit_is_refused() {
        let mut limit = FrameRateLimit::new(10.0);
        // 100 frames in one second at 100 fps: the burst of 10, then about 10 more.
        let allowed = (0..100).filter(|i| limit.allow(i * 10_000)).count();
        assert!((18..=21).contains(&allowed), "{allowed}");
    }
}
