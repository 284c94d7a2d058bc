//! Who may connect and how much each may cost: tokens and roles (`auth`), TLS, the per-peer
//! and hub-wide budgets (`limits`, `budget`) and the web port's guard against hostile HTTP
//! clients. Every queue, buffer and registry entry a peer can cause is bounded here.

pub(crate) mod auth;
pub(crate) mod budget;
pub(crate) mod limits;
pub(crate) mod tls;
pub(crate) mod web_guard;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use self::auth::Auth;
use self::budget::LimitHits;
use self::limits::{FrameBudget, Limits, PendingConnections};

/// What admitting and bounding peers needs, and nothing more: the ingest sessions, the web
/// port's accept loop, its guard and every token check take this, not the whole hub.
pub(crate) struct Access {
    /// Client, viewer, handshake, frame-rate, idle and HTTP limits.
    pub(crate) limits: Limits,
    /// Tokens and roles (re-read from the token file while the hub runs).
    pub(crate) auth: Arc<Auth>,
    /// Whether both ports speak TLS (cookies are then `Secure`, origins `https`).
    pub(crate) tls: bool,
    /// Host names the web side answers to besides addresses and this machine's names.
    pub(crate) allowed_hosts: Vec<String>,
    /// How often each limit bit (`/metrics`), and the gates that keep their log lines few.
    pub(crate) hits: Arc<LimitHits>,
    /// Connections still in their handshake, per address and in all.
    pub(crate) pending: PendingConnections,
    /// Connections that ended before their handshake completed, since the last summary.
    pub(crate) refused: AtomicU64,
    /// Bytes held by frames still arriving, all connections (`Limits::frame_budget_bytes`).
    pub(crate) frame_budget: Arc<FrameBudget>,
}
