//! Staying connected: reconnect with capped exponential backoff and jitter, forever by default,
//! so a hub restart or a network outage needs nothing from the person at the publisher.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};
use vidcast_media::Clock;
use vidcast_proto::{Backoff, CloseReason, Frame, GoodbyeCode, Hello, RejectCode};

use crate::error::PublishError;
use crate::publisher::{publish, PublishOptions};

/// What a publisher with reconnection did.
#[derive(Debug, Clone, Default)]
pub struct SessionSummary {
    /// Connections that reached the hub's welcome.
    pub sessions: u64,
    /// Frames sent over all of them.
    pub frames_sent: u64,
    /// Frames dropped (latest frame wins) over all of them.
    pub frames_dropped: u64,
    /// Bytes sent over all of them.
    pub bytes_sent: u64,
    /// Why the last session ended.
    pub last_reason: Option<CloseReason>,
}

impl SessionSummary {
    /// Counts one finished session in.
    fn add(&mut self, report: &crate::PublishReport) {
        self.sessions += 1;
        self.frames_sent += report.stats.frames_sent;
        self.frames_dropped += report.stats.frames_dropped;
        self.bytes_sent += report.stats.bytes_sent;
        self.last_reason = Some(report.reason.clone());
    }
}

/// How long a session may take to say goodbye after Ctrl-C before it is cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Whether an error is worth another try: the hub may come back, a refusal for being busy may
/// pass; a wrong token or version will not.
pub fn is_retryable(error: &PublishError) -> bool {
    match error {
        PublishError::Rejected { code, .. } => {
            matches!(code, RejectCode::Busy | RejectCode::Timeout)
        }
        // Another certificate will not turn into the pinned one by waiting.
        PublishError::Resolve { .. }
        | PublishError::FingerprintMismatch { .. }
        | PublishError::Certificate { .. }
        | PublishError::FrameTooLarge { .. }
        | PublishError::NotAHub { .. } => false,
        PublishError::Connect { .. }
        | PublishError::Handshake { .. }
        | PublishError::Io { .. }
        | PublishError::Tls { .. } => true,
    }
}

/// Publishes `frames` to `addrs` until the source ends or `shutdown` completes, reconnecting
/// after every loss when `reconnect` gives the longest wait between tries (`None`: one session,
/// no retry). Logs each outage once, not each attempt.
pub async fn publish_with_reconnect(
    addrs: &[SocketAddr],
    hello: Hello,
    options: PublishOptions,
    frames: &mut watch::Receiver<Option<Frame>>,
    clock: Arc<dyn Clock>,
    reconnect: Option<Duration>,
    shutdown: impl Future<Output = ()>,
) -> Result<SessionSummary, PublishError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut summary = SessionSummary::default();
    let backoff_cap = reconnect.unwrap_or(Duration::ZERO);
    let reconnect = reconnect.is_some();
    let mut backoff = Backoff::new(backoff_cap, clock.now_us());
    let mut outage_logged = false;
    let mut stop_watch = stop_rx.clone();
    loop {
        if *stop_rx.borrow() {
            return Ok(summary);
        }
        // Scoped so the session future (which borrows `frames`) is gone after it.
        let result = {
            let attempt = async {
                let stream = crate::socket::connect(addrs, Duration::from_secs(5)).await?;
                let mut stop = stop_rx.clone();
                publish(
                    stream,
                    hello.clone(),
                    options.clone(),
                    frames,
                    Arc::clone(&clock),
                    async move {
                        let _ = stop.wait_for(|&s| s).await;
                    },
                )
                .await
            };
            let mut attempt = std::pin::pin!(attempt);
            tokio::select! {
                result = &mut attempt => result,
                () = &mut shutdown => {
                    // The session sees the stop, says goodbye and flushes: the hub logs "left".
                    let _ = stop_tx.send(true);
                    match tokio::time::timeout(SHUTDOWN_GRACE, attempt).await {
                        Ok(Ok(report)) => summary.add(&report),
                        Ok(Err(e)) => tracing::debug!("session ended while stopping: {e}"),
                        Err(_) => warn!("hub {} did not take the goodbye within {SHUTDOWN_GRACE:?}", addrs[0]),
                    }
                    return Ok(summary);
                }
            }
        };
        match result {
            Ok(report) => {
                summary.add(&report);
                let ended_here = matches!(
                    report.reason,
                    CloseReason::Local {
                        code: GoodbyeCode::EndOfStream | GoodbyeCode::Normal,
                        ..
                    }
                );
                if ended_here || !reconnect {
                    return Ok(summary);
                }
                warn!("lost hub {}: {}; reconnecting", addrs[0], report.reason);
                outage_logged = true;
                backoff.reset();
            }
            Err(e) if reconnect && is_retryable(&e) => {
                if !outage_logged {
                    warn!("{e}; retrying with backoff (up to {backoff_cap:?} between tries)");
                    outage_logged = true;
                } else {
                    tracing::debug!("still unreachable: {e}");
                }
            }
            Err(e) => return Err(e),
        }
        let delay = backoff.next_delay();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = &mut shutdown => {
                let _ = stop_tx.send(true);
                return Ok(summary);
            }
            _ = stop_watch.changed() => {}
        }
        if outage_logged && frames.has_changed().is_err() {
            info!("source ended while the hub was away");
            return Ok(summary);
        }
    }
}
