//! Connecting to a hub and tuning the socket for live video.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::error::PublishError;

/// Default hub port when the address names none.
pub const DEFAULT_PORT: u16 = 9999;

/// Unsent bytes the kernel may hold before the socket stops being writable. Small, so a slow
/// link leaves frames in our one-frame slot (where a newer one replaces them) rather than in a
/// kernel queue that would add seconds of latency.
const NOTSENT_LOWAT_BYTES: libc::c_int = 16 * 1024;

/// Resolves `host[:port]` (default port 9999) to socket addresses.
pub async fn resolve(hub: &str) -> Result<Vec<SocketAddr>, PublishError> {
    let with_port = if hub.parse::<SocketAddr>().is_ok() || has_port(hub) {
        hub.to_owned()
    } else {
        format!("{hub}:{DEFAULT_PORT}")
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&with_port)
        .await
        .map_err(|source| PublishError::Resolve {
            hub: hub.to_owned(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(PublishError::Resolve {
            hub: hub.to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
        });
    }
    Ok(addrs)
}

/// The host part of `host[:port]`, `[v6]:port` or a bare address (the TLS server name).
pub fn host_of(hub: &str) -> &str {
    if let Ok(addr) = hub.parse::<SocketAddr>() {
        let host = hub.rsplit_once(':').map_or(hub, |(host, _)| host);
        return if addr.is_ipv6() {
            host.trim_start_matches('[').trim_end_matches(']')
        } else {
            host
        };
    }
    if has_port(hub) {
        return hub.rsplit_once(':').map_or(hub, |(host, _)| host);
    }
    hub.trim_start_matches('[').trim_end_matches(']')
}

fn has_port(hub: &str) -> bool {
    // "host:port" but not a bare IPv6 address like "::1".
    match hub.rsplit_once(':') {
        Some((host, port)) => !host.contains(':') && port.parse::<u16>().is_ok(),
        None => false,
    }
}

/// Connects to the first reachable address within `timeout` and tunes the socket.
pub async fn connect(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, PublishError> {
    let mut last_error = None;
    for &addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                tune(&stream);
                return Ok(stream);
            }
            Ok(Err(source)) => last_error = Some(PublishError::Connect { addr, source }),
            Err(_) => {
                last_error = Some(PublishError::Connect {
                    addr,
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer within {timeout:?}"),
                    ),
                })
            }
        }
    }
    Err(last_error.unwrap_or(PublishError::Resolve {
        hub: String::new(),
        source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
    }))
}

/// No Nagle (a frame's last segment must not wait for an ACK) and a small unsent-bytes mark.
pub fn tune(stream: &TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::warn!("cannot set TCP_NODELAY: {e}");
    }
    set_tcp_option(
        stream,
        libc::TCP_NOTSENT_LOWAT,
        NOTSENT_LOWAT_BYTES,
        "TCP_NOTSENT_LOWAT",
    );
    // A lost segment at the end of a frame is found by timeout; the kernel's 200 ms floor on
    // that timeout is most of a stalled frame's latency on a lossy link (Linux >= 6.15).
    set_tcp_option(stream, TCP_RTO_MIN_US, RTO_MIN_US, "TCP_RTO_MIN_US");
}

/// Linux's `TCP_RTO_MIN_US` (6.15+; not yet in the libc crate).
const TCP_RTO_MIN_US: libc::c_int = 45;
/// The retransmission timeout floor publishers ask for, µs.
const RTO_MIN_US: libc::c_int = 50_000;

#[cfg(target_os = "linux")]
fn set_tcp_option(stream: &TcpStream, option: libc::c_int, value: libc::c_int, name: &str) {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    // SAFETY: fd is an open TCP socket owned by `stream` for the duration of the call, and the
    // option value points at a live c_int of the length passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!("{name} not set: {}", io::Error::last_os_error());
    }
}

#[cfg(not(target_os = "linux"))]
fn set_tcp_option(_stream: &TcpStream, _option: libc::c_int, _value: libc::c_int, _name: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_detection() {
        assert!(has_port("hub.local:9000"));
        assert!(!has_port("hub.local"));
        assert!(!has_port("::1"));
    }

    #[test]
    fn host_part() {
        assert_eq!(host_of("hub.local:9000"), "hub.local");
        assert_eq!(host_of("hub.local"), "hub.local");
        assert_eq!(host_of("127.0.0.1:9"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9"), "::1");
        assert_eq!(host_of("::1"), "::1");
    }

    #[tokio::test]
    async fn resolve_adds_the_default_port() {
        let addrs = resolve("127.0.0.1").await.expect("resolves");
        assert_eq!(addrs[0].port(), DEFAULT_PORT);
        let addrs = resolve("127.0.0.1:1234").await.expect("resolves");
        assert_eq!(addrs[0].port(), 1234);
    }
}
