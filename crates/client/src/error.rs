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
    /// The hub's certificate failed verification against the CA. Not worth retrying.
    #[error("hub {addr} presented a certificate that does not verify: {reason}")]
    Certificate {
        /// The hub.
        addr: SocketAddr,
        /// What rustls said.
        reason: String,
    },
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
