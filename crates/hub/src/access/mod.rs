//! Who may connect and how much each may cost: tokens and roles (`auth`), TLS, the per-peer
//! and hub-wide budgets (`limits`, `budget`) and the web port's guard against hostile HTTP
//! clients. Every queue, buffer and registry entry a peer can cause is bounded here.

pub(crate) mod auth;
pub(crate) mod budget;
pub(crate) mod limits;
pub(crate) mod tls;
pub(crate) mod web_guard;
