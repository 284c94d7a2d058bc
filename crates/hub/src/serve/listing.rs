//! A stream as the JSON API, the wall and `/metrics` list it: the registry's snapshot plus
//! what the egress parts know of it (recording, restream), joined here so the registry
//! knows nothing of them.

use serde::Serialize;

use crate::egress::recording::RecordingSnapshot;
use crate::egress::restream::TargetView;
use crate::server::Shared;
use crate::stream::registry::StreamSnapshot;

/// One stream's listing (same JSON as the snapshot, with `recording` and `restream` added
/// when they apply).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StreamListing {
    /// What the registry knows: identity, counters, latency, network.
    #[serde(flatten)]
    pub(crate) stream: StreamSnapshot,
    /// Recording state, when the hub records (`--record`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) recording: Option<RecordingSnapshot>,
    /// Where the stream is restreamed and how each push is doing (`--restream`, the API).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) restream: Vec<TargetView>,
}

/// What a listing includes beyond the registry's snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Include {
    /// Recording state only (the wall: restream counters would mark every tile changed
    /// on every tick).
    Recording,
    /// Recording and restream state (the API and `/metrics`).
    RecordingAndRestream,
}

/// Every stream the hub knows, now.
pub(crate) fn list(shared: &Shared, include: Include) -> Vec<StreamListing> {
    shared
        .registry
        .snapshot(shared.clock.now_us())
        .into_iter()
        .map(|stream| {
            let recording = shared
                .recordings
                .as_ref()
                .map(|r| r.snapshot(stream.id, &stream.name));
            let restream = match include {
                Include::Recording => Vec::new(),
                Include::RecordingAndRestream => {
                    shared.restream.for_stream(stream.id, &stream.name)
                }
            };
            StreamListing {
                stream,
                recording,
                restream,
            }
        })
        .collect()
}
