//! Frames coming in: one session per publisher connection on the ingest port (`session`),
//! the original Python clients' pickle protocol (`legacy`), and browsers publishing over the
//! web port's WebSocket (`browser`), all feeding the same registry.

pub(crate) mod browser;
pub(crate) mod legacy;
pub(crate) mod session;
