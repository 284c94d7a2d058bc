//! What the hub knows about each stream: the registry of streams and their events, the newest
//! frame of each (`frames`), per-stream statistics and network figures, and the feed native
//! viewers subscribe to. Everything else reads from here; nothing here knows about sockets.

pub(crate) mod feed;
pub(crate) mod frames;
pub(crate) mod ids;
pub(crate) mod jpeg;
pub(crate) mod net;
pub(crate) mod registry;
pub(crate) mod stats;
