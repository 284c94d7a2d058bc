//! The web port's accept loop: what one HTTP peer may hold. Every connection needs a place
//! under a total and a per-address cap (taken before any TLS handshake), must finish its TLS
//! handshake and each request head within `http_header_timeout` (hyper's header timer, which
//! also runs while a keep-alive connection waits for its next request), and is closed when its
//! writes make no progress for `http_stall_timeout` (a wall socket or MJPEG reader that takes
//! nothing would otherwise hold its viewer slot for ever).
//!
//! axum's own `serve` exposes none of hyper's timers, hence this loop; it serves the same
//! `Router`, with upgrades (the wall's WebSocket).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::access::budget::{LimitHits, RateLog};
use crate::access::limits::Limits;
use crate::access::Access;
use crate::stream::registry::lock;

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_http_connections` were open.
    Total,
    /// `max_http_connections_per_ip` were open from this address.
    PerIp,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// HTTP connections open now, in all and per address. Bounded by the caps it enforces: at
/// most `max_http_connections` entries.
#[derive(Debug, Default)]
pub(crate) struct WebConnections {
    open: Mutex<Open>,
}

/// One admitted connection's place; given back when dropped (with the connection's socket,
/// which it travels with, through a WebSocket upgrade too).
#[derive(Debug)]
pub(crate) struct WebPermit {
    connections: Arc<WebConnections>,
    ip: IpAddr,
}

impl WebConnections {
    /// A place for a new connection from `ip`, or which cap is full.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        limits: &Limits,
    ) -> Result<WebPermit, Refusal> {
        let mut open = lock(&self.open);
        if open.total >= limits.max_http_connections {
            return Err(Refusal::Total);
        }
        let from_ip = open.by_ip.entry(ip).or_default();
        if *from_ip >= limits.max_http_connections_per_ip {
            if *from_ip == 0 {
                open.by_ip.remove(&ip);
            }
            return Err(Refusal::PerIp);
        }
        *from_ip += 1;
        open.total += 1;
        Ok(WebPermit {
            connections: Arc::clone(self),
            ip,
        })
    }

    /// Connections open now.
    pub(crate) fn len(&self) -> usize {
        lock(&self.open).total
    }
}

impl Drop for WebPermit {
    fn drop(&mut self) {
        let mut open = lock(&self.connections.open);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_ip.remove(&self.ip);
            }
        }
    }
}

/// What the connection tasks share: the caps' state and the gates that keep their logs few.
struct WebPort {
    access: Arc<Access>,
    connections: Arc<WebConnections>,
    refused_log: RateLog,
    timeout_log: RateLog,
    stall_log: RateLog,
}

/// A refusal's answer for a plain-HTTP peer; written only if the socket takes it at once.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 34\r\nConnection: close\r\n\r\ntoo many connections; retry later\n";

/// Serves `app` on `listener` (over TLS when `tls` is set) until `stopped` completes; then
/// stops accepting, asks every connection to finish its current response, and waits for them.
pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    access: Arc<Access>,
    stopped: impl Future<Output = ()>,
) {
    let port = Arc::new(WebPort {
        access,
        connections: Arc::default(),
        refused_log: RateLog::default(),
        timeout_log: RateLog::default(),
        stall_log: RateLog::default(),
    });
    let (close_tx, close_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let limits = port.access.limits;
                    match port.connections.admit(peer.ip(), &limits) {
                        Ok(permit) => {
                            tasks.spawn(connection(
                                Arc::clone(&port),
                                tcp,
                                peer,
                                permit,
                                app.clone(),
                                tls.clone(),
                                close_rx.clone(),
                            ));
                        }
                        Err(refusal) => port.refuse(&tcp, peer, refusal, tls.is_none()),
                    }
                }
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    warn!("web accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connections so the set does not grow with every one ever made.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            () = &mut stopped => break,
        }
    }
    drop(listener);
    let _ = close_tx.send(true);
    while tasks.join_next().await.is_some() {}
}

impl WebPort {
    fn refuse(&self, tcp: &TcpStream, peer: SocketAddr, refusal: Refusal, is_plain: bool) {
        let hits = &self.access.hits;
        let limits = &self.access.limits;
        let (counter, what) = match refusal {
            Refusal::Total => (
                &hits.http_connections,
                format!(
                    "{} HTTP connections open (--max-http-connections {})",
                    self.connections.len(),
                    limits.max_http_connections
                ),
            ),
            Refusal::PerIp => (
                &hits.http_connections_per_ip,
                format!(
                    "{} HTTP connections open from {} (--max-http-connections-per-ip)",
                    limits.max_http_connections_per_ip,
                    peer.ip()
                ),
            ),
        };
        LimitHits::hit(counter);
        if let Some(more) = self.refused_log.allow(Instant::now()) {
            warn!("web connection from {peer} refused: {what} (and {more} more refused since the last line)");
        }
        if is_plain {
            // Best effort: a full socket buffer or a reset loses it, and nothing waits for it.
            let _ = tcp.try_write(BUSY);
        }
    }

    fn header_timed_out(&self, peer: SocketAddr, what: &str) {
        LimitHits::hit(&self.access.hits.http_header_timeout);
        let timeout = self.access.limits.http_header_timeout;
        if let Some(more) = self.timeout_log.allow(Instant::now()) {
            info!("web connection from {peer} closed: {what} within {timeout:?} (--http-header-timeout; and {more} more since the last line)");
        }
    }
}

/// One web connection: TLS handshake (if any), then HTTP/1.1 with upgrades, until it ends or
/// the hub stops.
async fn connection(
    port: Arc<WebPort>,
    tcp: TcpStream,
    peer: SocketAddr,
    permit: WebPermit,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    close: watch::Receiver<bool>,
) {
    if let Err(e) = tcp.set_nodelay(true) {
        debug!("web connection from {peer}: cannot set TCP_NODELAY: {e}");
    }
    let limits = port.access.limits;
    // For TCP_INFO (a browser publisher's budgets); the socket travels with the connection.
    let fd = tcp.as_raw_fd();
    let io = Guarded {
        io: tcp,
        stall_after: limits.http_stall_timeout,
        stalled_since: None,
        port: Arc::clone(&port),
        peer,
        _permit: permit,
    };
    match tls {
        None => serve_http(&port, io, peer, fd, app, close).await,
        Some(acceptor) => {
            match tokio::time::timeout(limits.http_header_timeout, acceptor.accept(io)).await {
                Ok(Ok(stream)) => serve_http(&port, stream, peer, fd, app, close).await,
                Ok(Err(e)) => {
                    port.access.refused.fetch_add(1, Ordering::Relaxed);
                    debug!("web connection from {peer}: TLS handshake failed: {e}");
                }
                Err(_) => {
                    port.access.refused.fetch_add(1, Ordering::Relaxed);
                    port.header_timed_out(peer, "no TLS handshake");
                }
            }
        }
    }
}

async fn serve_http<I>(
    port: &WebPort,
    io: I,
    peer: SocketAddr,
    fd: RawFd,
    app: axum::Router,
    mut close: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(port.access.limits.http_header_timeout);
    // The peer's address reaches handlers (wrong tokens are slowed per address).
    let app = app
        .layer(axum::Extension(
            crate::access::web_guard::PeerAddr::extension(peer),
        ))
        .layer(axum::Extension(crate::ingest::browser::SocketFd(fd)));
    let conn = builder
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = async { drop(close.wait_for(|&c| c).await) } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    match result {
        Ok(()) => {}
        Err(e) if e.is_timeout() => port.header_timed_out(peer, "no complete request head"),
        Err(e) => debug!("web connection from {peer} ended: {e}"),
    }
}

/// A web connection's socket: holds its [`WebPermit`], and fails a write that has made no
/// progress for `stall_after` (counted and rate-logged once per connection).
struct Guarded {
    io: TcpStream,
    stall_after: Duration,
    /// Armed when a write found the socket full; disarmed by any progress.
    stalled_since: Option<Pin<Box<tokio::time::Sleep>>>,
    port: Arc<WebPort>,
    peer: SocketAddr,
    _permit: WebPermit,
}

impl Guarded {
    /// After the socket said "not now": whether the stall deadline has passed (as an error).
    fn check_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.stall_after.is_zero() {
            return Poll::Pending;
        }
        let stall_after = self.stall_after;
        let sleep = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall_after)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        LimitHits::hit(&self.port.access.hits.http_stalled);
        if let Some(more) = self.port.stall_log.allow(Instant::now()) {
            info!(
                "web connection from {} closed: it took nothing for {stall_after:?} (--http-stall-timeout; and {more} more since the last line)",
                self.peer
            );
        }
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{}: took nothing for {stall_after:?}", self.peer),
        ))
    }

    fn on_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => self.check_stall(cx).map(Err),
            done => {
                self.stalled_since = None;
                done
            }
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.on_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.on_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.on_write(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_address_and_in_all_and_free_on_drop() {
        let connections = Arc::new(WebConnections::default());
        let limits = Limits {
            max_http_connections: 3,
            max_http_connections_per_ip: 2,
            ..Limits::default()
        };
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let a1 = connections.admit(a, &limits).unwrap();
        let _a2 = connections.admit(a, &limits).unwrap();
        assert_eq!(connections.admit(a, &limits).unwrap_err(), Refusal::PerIp);
        let _b1 = connections.admit(b, &limits).unwrap();
        assert_eq!(connections.admit(b, &limits).unwrap_err(), Refusal::Total);
        drop(a1);
        assert_eq!(connections.len(), 2);
        let _a3 = connections.admit(a, &limits).unwrap();
        assert_eq!(connections.len(), 3);
    }

    #[test]
    fn a_zero_per_address_cap_leaves_no_entry_behind() {
        let connections = Arc::new(WebConnections::default());
        let limits = Limits {
            max_http_connections_per_ip: 0,
            ..Limits::default()
        };
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(connections.admit(ip, &limits).unwrap_err(), Refusal::PerIp);
        assert!(lock(&connections.open).by_ip.is_empty());
    }
}
