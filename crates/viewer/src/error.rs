//! What can stop a viewer.

use std::net::SocketAddr;

use vidcast_client::PublishError;
use vidcast_proto::{CloseReason, RejectCode};

/// Why a viewer stopped.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// Neither `DISPLAY` nor `WAYLAND_DISPLAY` is set: there is nowhere to open a window.
    #[error("no display: neither DISPLAY nor WAYLAND_DISPLAY is set (run it in a desktop session, or under Xvfb)")]
    NoDisplay,
    /// The window system refused a window.
    #[error("cannot open a window: {0}")]
    Window(String),
    /// The hub could not be resolved or reached.
    #[error("cannot reach hub {hub}: {source}")]
    Connect {
        /// The hub as given.
        hub: String,
        /// What went wrong.
        source: PublishError,
    },
    /// The hub refused this viewer for a reason waiting will not fix.
    #[error("hub {hub} refused this viewer ({code:?}): {reason}")]
    Rejected {
        /// The hub's address.
        hub: SocketAddr,
        /// Its code.
        code: RejectCode,
        /// Its words.
        reason: String,
    },
    /// The connection ended and reconnecting is off.
    #[error("lost hub {hub}: {reason}")]
    Lost {
        /// The hub's address.
        hub: SocketAddr,
        /// Why.
        reason: CloseReason,
    },
    /// The thread that talks to the hub failed.
    #[error("viewer network thread: {0}")]
    Thread(String),
}
