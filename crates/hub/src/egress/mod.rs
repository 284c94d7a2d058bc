//! Frames leaving the hub for somewhere else: recording to disk (`recording`) and pushing to
//! RTMP servers (`restream`).

pub(crate) mod recording;
pub(crate) mod restream;
