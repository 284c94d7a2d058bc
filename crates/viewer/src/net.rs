//! The viewer's connection to a hub: a drive loop around `vidcast_proto::ClientConnection` in
//! the viewer role that fills a [`Watcher`] (the window's [`Scene`], or the Python package's
//! inbox), and reconnection with backoff around it, so a hub restart needs nothing from the
//! person watching.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, info, warn};
use vidcast_client::viewer::{view, ViewerHello, ViewerSink};
use vidcast_client::{Backoff, ClientTls, PublishError};
use vidcast_media::Clock;
use vidcast_proto::{CloseReason, Frame, RejectCode, StreamAnnounce, Timestamp, Timing, Welcome};

use crate::error::ViewError;
use crate::scene::{Scene, StreamMeta};

/// Settings of [`watch_hub`].
#[derive(Debug, Clone)]
pub struct ViewOptions {
    /// This viewer's name in the hub's log (1 to 64 bytes).
    pub name: String,
    /// The hub's token, empty when it needs none.
    pub token: String,
    /// Heartbeat and timeouts.
    pub timing: Timing,
    /// Reconnect after a lost or refused (busy) connection, forever.
    pub reconnect: bool,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Speak TLS to the hub with this setup (the hub must have TLS on).
    pub tls: Option<ClientTls>,
}

impl Default for ViewOptions {
    fn default() -> Self {
        Self {
            name: "viewer".to_owned(),
            token: String::new(),
            timing: Timing::default(),
            reconnect: true,
            max_backoff: Duration::from_secs(5),
            tls: None,
        }
    }
}

/// What a hub watcher keeps up to date: what the hub says, as a [`ViewerSink`] gets it, plus
/// the connection's status. Called from the network thread only; `&self` because whoever
/// reads it (a window, a Python consumer) shares it.
pub trait Watcher {
    /// The hub at `addr` accepted this viewer; the stream list follows.
    fn welcomed(&self, addr: SocketAddr, welcome: &Welcome);
    /// A stream is new or changed.
    fn stream(&self, announce: StreamAnnounce);
    /// A stream is gone.
    fn removed(&self, stream_id: u64);
    /// A frame of a stream; `latency_us` is capture to arrival here, when the clocks are known.
    fn frame(&self, stream_id: u64, frame: Frame, received_at: Timestamp, latency_us: Option<u64>);
    /// A line about the connection ("connecting to …", "lost hub …; reconnecting").
    fn set_status(&self, status: String);
    /// The connection ended: forget every stream (a new one lists them anew).
    fn clear(&self);
}

/// One connection (TLS when set up), to its end: the hub's address, whether it welcomed this
/// viewer, and why the connection ended.
async fn attempt(
    addrs: &[SocketAddr],
    options: &ViewOptions,
    watcher: &impl Watcher,
    clock: &Arc<dyn Clock>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(SocketAddr, bool, CloseReason), PublishError> {
    let stream = vidcast_client::connect(addrs, Duration::from_secs(5)).await?;
    vidcast_client::tune(&stream);
    let addr = stream.peer_addr().unwrap_or(addrs[0]);
    let hello = ViewerHello {
        name: options.name.clone(),
        token: options.token.clone(),
        timing: options.timing,
    };
    let mut sink = WatcherSink { watcher, addr };
    let (welcomed, reason) = match &options.tls {
        Some(tls) => {
            let stream = tls
                .handshake(stream, addr, options.timing.handshake_timeout)
                .await?;
            view(stream, addr, &hello, &mut sink, clock, stop).await
        }
        None => view(stream, addr, &hello, &mut sink, clock, stop).await,
    };
    Ok((addr, welcomed, reason))
}

/// The scene's entry for an announced stream.
pub fn stream_meta(a: &StreamAnnounce) -> StreamMeta {
    StreamMeta {
        id: a.stream_id,
        name: a.name.clone(),
        peer: a.peer.clone(),
        codec: a.codec.ok(),
        width: a.width,
        height: a.height,
        live: a.is_live,
    }
}

/// Watches the hub at `hub` ("host:port") until `stop` turns true, keeping `watcher` up to date;
/// reconnects after every loss when `options.reconnect` is set. Errors that waiting will not
/// fix (unknown host, wrong token, another protocol version) end it.
pub async fn watch_hub<W: Watcher>(
    hub: &str,
    options: ViewOptions,
    watcher: Arc<W>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ViewError> {
    let addrs = vidcast_client::resolve(hub)
        .await
        .map_err(|source| ViewError::Connect {
            hub: hub.to_owned(),
            source,
        })?;
    let mut backoff = Backoff::new(options.max_backoff, clock.now_us());
    let mut outage_logged = false;
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        watcher.set_status(format!("connecting to hub {hub}..."));
        match attempt(&addrs, &options, watcher.as_ref(), &clock, &mut stop).await {
            Ok((addr, welcomed, reason)) => {
                watcher.clear();
                if *stop.borrow() {
                    return Ok(());
                }
                if let CloseReason::Rejected { code, reason } = &reason {
                    if !matches!(code, RejectCode::Busy | RejectCode::Timeout) {
                        return Err(ViewError::Rejected {
                            hub: addr,
                            code: *code,
                            reason: reason.clone(),
                        });
                    }
                }
                if !options.reconnect {
                    return Err(ViewError::Lost { hub: addr, reason });
                }
                if welcomed {
                    backoff.reset();
                }
                warn!("lost hub {addr}: {reason}; reconnecting");
                watcher.set_status(format!("lost hub {addr} ({reason}); reconnecting..."));
                outage_logged = true;
            }
            Err(source) if options.reconnect && vidcast_client::is_retryable(&source) => {
                if !outage_logged {
                    warn!(
                        "{source}; retrying with backoff (up to {:?} between tries)",
                        options.max_backoff
                    );
                    outage_logged = true;
                } else {
                    debug!("still unreachable: {source}");
                }
                watcher.set_status(format!("hub {hub} unreachable; retrying..."));
            }
            Err(source) => {
                return Err(ViewError::Connect {
                    hub: hub.to_owned(),
                    source,
                })
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            _ = stop.wait_for(|&s| s) => return Ok(()),
        }
    }
}

/// Hands what the hub says to a [`Watcher`].
struct WatcherSink<'a, W> {
    watcher: &'a W,
    addr: SocketAddr,
}

impl<W: Watcher> ViewerSink for WatcherSink<'_, W> {
    fn welcomed(&mut self, welcome: &Welcome) {
        self.watcher.welcomed(self.addr, welcome);
    }

    fn stream(&mut self, announce: StreamAnnounce) {
        self.watcher.stream(announce);
    }

    fn removed(&mut self, stream_id: u64) {
        self.watcher.removed(stream_id);
    }

    fn frame(
        &mut self,
        stream_id: u64,
        frame: Frame,
        received_at: Timestamp,
        latency_us: Option<u64>,
    ) {
        self.watcher
            .frame(stream_id, frame, received_at, latency_us);
    }
}

impl Watcher for Scene {
    fn welcomed(&self, addr: SocketAddr, welcome: &Welcome) {
        info!("watching hub {addr} (viewer {})", welcome.stream_id);
        self.clear();
        self.set_status(format!("hub {addr}: no live streams"));
    }

    fn stream(&self, announce: StreamAnnounce) {
        self.upsert(stream_meta(&announce));
    }

    fn removed(&self, stream_id: u64) {
        self.remove(stream_id);
    }

    fn frame(&self, stream_id: u64, frame: Frame, received_at: Timestamp, latency_us: Option<u64>) {
        Scene::frame(
            self,
            stream_id,
            frame.seq,
            frame.is_keyframe,
            frame.data,
            received_at.as_micros(),
            latency_us,
        );
    }

    fn set_status(&self, status: String) {
        Scene::set_status(self, status);
    }

    fn clear(&self) {
        Scene::clear(self);
    }
}
