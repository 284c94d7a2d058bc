//! What a peer may cost the hub, counted: one counter per limit that bit (shown in `/metrics`
//! as `vidcast_limit_hits_total{limit="…"}`), and a log gate that lets a limit say so once per
//! period instead of once per refused connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::stream::registry::lock;

/// How often a limit that keeps biting may log (one line, with how many hits it summarises).
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);

/// Times each limit bit since the hub started. Add a field and a line in [`LimitHits::entries`]
/// for each new limit.
#[derive(Debug, Default)]
pub struct LimitHits {
    /// Connections closed because they did not read what the hub had to send them.
    pub not_reading: AtomicU64,
    /// Connections closed for sending more pings than `vidcast_proto::MAX_PINGS_PER_SECOND`.
    pub ping_flood: AtomicU64,
    /// HTTP connections closed at once: `max_http_connections` were open.
    pub http_connections: AtomicU64,
    /// HTTP connections closed at once: `max_http_connections_per_ip` were open from that address.
    pub http_connections_per_ip: AtomicU64,
    /// Web connections closed for not finishing a TLS handshake or a request head in time.
    pub http_header_timeout: AtomicU64,
    /// Wall sockets and MJPEG readers closed because their writes made no progress.
    pub http_stalled: AtomicU64,
    /// Wrong tokens (publishers, viewers, web), each.
    pub wrong_token: AtomicU64,
    /// Attempts refused unchecked because their address was locked out (`--max-token-failures`).
    pub token_lockout: AtomicU64,
    /// Addresses forgotten because the table of wrong tokens was full.
    pub token_guess_table_full: AtomicU64,
    /// Web requests refused for a `Host` the hub does not answer to (`--allowed-host`).
    pub bad_host: AtomicU64,
    /// Web requests refused for coming from another site's page (`Origin`).
    pub cross_origin: AtomicU64,
    /// Restream targets refused: over the caps, or an address the hub may not push to.
    pub restream_refused: AtomicU64,
    /// Publishers refused: too many live from their address (`--max-publishers-per-ip`).
    pub publishers_per_ip: AtomicU64,
    /// Offline streams forgotten early: too many kept (`--max-offline-streams`).
    pub offline_streams: AtomicU64,
    /// Frames not kept for a stream's consumers or joiners: over its bytes
    /// (`--max-stream-buffer`).
    pub stream_buffer_bytes: AtomicU64,
    /// Frames not kept for a stream's consumers or joiners: over the hub's bytes
    /// (`--max-buffer`).
    pub buffer_bytes: AtomicU64,
    /// Frames not recorded because they do not parse as their codec.
    pub record_unparsable: AtomicU64,
    /// Connections evicted while pending (handshake, or no first frame yet), over
    /// `--max-pending-per-ip` or `--max-pending`.
    pub pending_evicted: AtomicU64,
    /// Connections closed in the handshake for taking too long (`--handshake-timeout`; a
    /// legacy connection's first picture) or for going silent before it.
    pub handshake_timeout: AtomicU64,
    /// Publishers closed for sending no frame after their welcome (`--first-frame-timeout`).
    pub frameless_publisher: AtomicU64,
    /// Connections closed because unfinished frames already held `--frame-budget`.
    pub frame_budget: AtomicU64,
    /// Connections closed because a frame arrived slower than `--min-frame-rate`.
    pub slow_frame: AtomicU64,
}

impl LimitHits {
    /// Every counter with its label value and help text, for `/metrics`.
    pub fn entries(&self) -> Vec<(&'static str, &'static str, u64)> {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            (
                "not_reading",
                "a peer that did not read what the hub sent it was disconnected",
                read(&self.not_reading),
            ),
            (
                "ping_flood",
                "a peer sent more pings in a second than any live peer does",
                read(&self.ping_flood),
            ),
            (
                "http_connections",
                "an HTTP connection was closed at once: --max-http-connections were open",
                read(&self.http_connections),
            ),
            (
                "http_connections_per_ip",
                "an HTTP connection was closed at once: --max-http-connections-per-ip were open from its address",
                read(&self.http_connections_per_ip),
            ),
            (
                "http_header_timeout",
                "a web connection sent no TLS handshake or request head within --http-header-timeout",
                read(&self.http_header_timeout),
            ),
            (
                "http_stalled",
                "a wall socket or MJPEG reader took nothing for --http-stall-timeout and was closed",
                read(&self.http_stalled),
            ),
            (
                "wrong_token",
                "a publisher, viewer or web request presented a wrong token",
                read(&self.wrong_token),
            ),
            (
                "token_lockout",
                "an attempt was refused unchecked: its address had too many wrong tokens in a row",
                read(&self.token_lockout),
            ),
            (
                "token_guess_table_full",
                "an address with wrong tokens was forgotten to make room for another",
                read(&self.token_guess_table_full),
            ),
            (
                "bad_host",
                "a web request named a Host the hub does not answer to (DNS rebinding?)",
                read(&self.bad_host),
            ),
            (
                "cross_origin",
                "a web request from another site's page was refused (Origin)",
                read(&self.cross_origin),
            ),
            (
                "restream_refused",
                "a restream target was refused: over the caps or a forbidden address",
                read(&self.restream_refused),
            ),
            (
                "publishers_per_ip",
                "a publisher was refused: too many live from its address",
                read(&self.publishers_per_ip),
            ),
            (
                "offline_streams",
                "an offline stream was forgotten early: too many offline streams kept",
                read(&self.offline_streams),
            ),
            (
                "stream_buffer_bytes",
                "a frame was not kept for in-order consumers, joiners or the recorder: over the stream's bytes",
                read(&self.stream_buffer_bytes),
            ),
            (
                "buffer_bytes",
                "a frame was not kept for in-order consumers, joiners or the recorder: over the hub's bytes",
                read(&self.buffer_bytes),
            ),
            (
                "record_unparsable",
                "a frame was not recorded: it does not parse as its codec",
                read(&self.record_unparsable),
            ),
            (
                "pending_evicted",
                "a connection still pending was evicted by a newer one (--max-pending-per-ip, --max-pending)",
                read(&self.pending_evicted),
            ),
            (
                "handshake_timeout",
                "a connection did not complete its handshake (or legacy first picture) in time",
                read(&self.handshake_timeout),
            ),
            (
                "frameless_publisher",
                "a publisher sent no frame in time after its welcome (--first-frame-timeout)",
                read(&self.frameless_publisher),
            ),
            (
                "frame_budget",
                "a frame would have taken unfinished frames over --frame-budget",
                read(&self.frame_budget),
            ),
            (
                "slow_frame",
                "a frame arrived slower than --min-frame-rate",
                read(&self.slow_frame),
            ),
        ]
    }

    /// Adds one to `counter` (saturating, like every counter a peer can drive).
    pub fn hit(counter: &AtomicU64) {
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            Some(n.saturating_add(1))
        });
    }
}

/// Lets a repeated event log at most once per period; the line says how many it stands for.
#[derive(Debug)]
pub(crate) struct RateLog {
    period: Duration,
    state: Mutex<RateLogState>,
}

#[derive(Debug)]
struct RateLogState {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLog {
    /// A gate that opens at most once per `period`.
    pub(crate) const fn new(period: Duration) -> Self {
        Self {
            period,
            state: Mutex::new(RateLogState {
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// Whether to log this occurrence now. `Some(n)`: log, and say it stands for `n` more
    /// that were not logged since the last line; `None`: stay quiet (counted).
    pub(crate) fn allow(&self, now: Instant) -> Option<u64> {
        let mut state = lock(&self.state);
        match state.last {
            Some(last) if now.saturating_duration_since(last) < self.period => {
                state.suppressed = state.suppressed.saturating_add(1);
                None
            }
            _ => {
                state.last = Some(now);
                Some(std::mem::take(&mut state.suppressed))
            }
        }
    }
}

impl Default for RateLog {
    fn default() -> Self {
        Self::new(LOG_EVERY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_log_opens_once_per_period_and_counts_the_rest() {
        let log = RateLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(log.allow(t0), Some(0));
        assert_eq!(log.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(log.allow(t0 + Duration::from_secs(2)), None);
        assert_eq!(log.allow(t0 + Duration::from_secs(11)), Some(2));
    }

    #[test]
    fn hits_saturate() {
        let hits = LimitHits::default();
        hits.not_reading.store(u64::MAX, Ordering::Relaxed);
        LimitHits::hit(&hits.not_reading);
        assert_eq!(hits.not_reading.load(Ordering::Relaxed), u64::MAX);
    }
}
