//! What can stop a publisher.

use std::io;
use std::net::SocketAddr;

use thiserror::Error;
use vidcast_proto::{CloseReason, RejectCode};

/// Why publishing failed.
#[derive(Debug, Error)]
pub enum PublishError {
    /// The hub's name did not resolve.
    #[error("cannot resolve hub address {hub:?}: {source}")]
    Resolve {
        /// As given.
        hub: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No TCP connection.
    #[error("cannot connect to hub at {addr}: {source} (is `vidcast serve` running there?)")]
    Connect {
        /// The address tried last.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The hub said no.
    #[error("hub {addr} refused this client ({code:?}): {reason}")]
    Rejected {
        /// The hub.
        addr: SocketAddr,
        /// Its code.
        code: RejectCode,
        /// Its words.
        reason: String,
    },
    /// Something other than a vidcast hub answered: the web port, a TLS hub, another server.
    /// Not worth retrying: it will not turn into a hub.
    #[error("{}", not_a_hub_text(*addr, found))]
    NotAHub {
        /// The address.
        addr: SocketAddr,
        /// Its first bytes, up to the first that differs from the vidcast magic.
        found: Vec<u8>,
    },
    /// The connection ended before the hub accepted.
    #[error("hub {addr} did not complete the handshake: {reason}")]
    Handshake {
        /// The hub.
        addr: SocketAddr,
        /// What happened.
        reason: CloseReason,
    },
    /// A socket error after the connection was up.
    #[error("connection to hub {addr} failed: {source}")]
    Io {
        /// The hub.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed for a reason other than the certificate (a hub without TLS,
    /// a reset, a timeout).
    #[error("TLS handshake with hub {addr} failed: {source}")]
    Tls {
        /// The hub.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The hub presented a certificate other than the pinned one. Not worth retrying.
    #[error("hub {addr} is not the pinned hub: its certificate has fingerprint {got}, expected {expected} (--tls-fingerprint)")]
    FingerprintMismatch {
        /// The hub.
        addr: SocketAddr,
        /// The pinned fingerprint.
        expected: String,
        /// The hub certificate's fingerprint.
        got: String,
    },
    /// Frames come out larger than the hub accepts, even at the encoder's lowest level (or
    /// with adaptation off). Not worth retrying: the next session would be closed the same way.
    #[error(
        "frame of {bytes} bytes is over hub {addr}'s limit of {limit} (its --max-frame-bytes): \
         lower --quality, --bitrate or --width, or raise the hub's --max-frame-bytes"
    )]
    FrameTooLarge {
        /// The hub.
        addr: SocketAddr,
        /// The frame's size.
        bytes: usize,
        /// The hub's limit, from its welcome.
        limit: usize,
    },
    /// The hub's certificate failed verification against the CA. Not worth retrying.
    #[error("hub {addr} presented a certificate that does not verify: {reason}")]
    Certificate {
        /// The hub.
        addr: SocketAddr,
        /// What rustls said.
        reason: String,
    },
}

/// Says what answered instead of a hub, from its first byte, and what to do about it.
fn not_a_hub_text(addr: SocketAddr, found: &[u8]) -> String {
    match found.first() {
        Some(b'H') => format!(
            "{addr} speaks HTTP (the hub's web wall?); publishers use the hub's ingest port, \
             9999 by default"
        ),
        // A TLS record: an alert (0x15) or a handshake (0x16).
        Some(0x15 | 0x16) => format!(
            "hub {addr} speaks TLS: add --tls-fingerprint FINGERPRINT (the hub prints it at \
             start, and `vidcast cert` when it makes the certificate) or --tls-ca FILE"
        ),
        _ => format!("{addr} is not a vidcast hub (it answered {found:02x?}…): check HOST:PORT"),
    }
}

/// Why a connection to the original Python server failed (`vidcast send --legacy`). The
/// cause is part of the message rather than a `source`, so one line says it all.
#[derive(Debug, Error)]
pub enum LegacySendError {
    /// The server's name did not resolve.
    #[error("cannot resolve server address {hub:?}: {cause}")]
    Resolve {
        /// As given.
        hub: String,
        /// Why.
        cause: io::Error,
    },
    /// No TCP connection.
    #[error(
        "cannot connect to {addr}: {cause}; start the original server.py (or `vidcast serve`) \
         there first, or check HOST:PORT"
    )]
    Connect {
        /// The address tried last.
        addr: SocketAddr,
        /// Why.
        cause: io::Error,
    },
    /// The server closed the connection (the original one does when its window gets 'q').
    #[error("server {addr} closed the connection")]
    Closed {
        /// The server.
        addr: SocketAddr,
    },
    /// The server took no byte of a frame for `waited`.
    #[error("server {addr} took no data for {waited:?}; giving the connection up")]
    Stalled {
        /// The server.
        addr: SocketAddr,
        /// How long nothing moved.
        waited: std::time::Duration,
    },
    /// A socket error after the connection was up.
    #[error("connection to server {addr} failed: {cause}")]
    Io {
        /// The server.
        addr: SocketAddr,
        /// Why.
        cause: io::Error,
    },
}
