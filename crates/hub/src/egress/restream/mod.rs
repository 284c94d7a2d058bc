//! Restreaming: every live stream pushed to RTMP servers (`serve --restream URL`), so
//! nginx-rtmp, MediaMTX or a CDN can fan it out to many more viewers than the hub serves.
//!
//! One supervisor follows the registry and keeps one pusher task per (live stream, target).
//! A pusher owns its socket and drives a sans-IO [`vidcast_rtmp::ClientSession`]: H.264 goes
//! out as it came (no re-encoding), JPEG is transcoded to H.264 on the blocking pool while
//! the target is publishing. Frames come from the stream's in-order outlet, whose backlog is
//! bounded: a slow server loses frames (counted, logged at a limited rate; H.264 then resumes
//! at a keyframe) and never slows the publisher or other viewers. A lost server is retried
//! with jittered backoff (0.5 s doubling to 10 s, each wait ±25 %).

mod api;
mod check;
mod push;
mod video;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tracing::{info, warn};
use vidcast_media::{Clock, MediaError};
use vidcast_rtmp::RtmpError;

use crate::stream::registry::{Registry, StreamId, StreamInfo};
use push::Pusher;

pub(crate) use api::{api_add, api_list, api_remove};
pub use check::{check_target_text, ip_problem};
pub(crate) use vidcast_rtmp::{RtmpUrl, UrlTemplate};
pub(crate) use video::Transcoder;

/// What the API says of a connection that never reached publishing, whatever the cause.
const CONNECTION_FAILED: &str = "connection failed (details in the hub's log)";

/// Why a push connection ended (the pusher logs it with the stream name and URL, then
/// retries).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RestreamError {
    /// TCP connect failed.
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    /// The host did not resolve, or to an address the hub does not push to.
    #[error("address refused: {0}")]
    Refused(String),
    /// Reading or writing the socket failed.
    #[error("connection lost: {0}")]
    Io(#[source] std::io::Error),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// A step took too long.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The server broke the protocol or refused.
    #[error(transparent)]
    Rtmp(#[from] RtmpError),
    /// JPEG → H.264 failed.
    #[error("cannot transcode to H.264: {0}")]
    Transcode(#[from] MediaError),
}

impl RestreamError {
    /// Whether the error concerns one frame only (the connection is fine).
    fn is_about_one_frame(&self) -> bool {
        matches!(
            self,
            Self::Transcode(_) | Self::Rtmp(RtmpError::BadVideo(_))
        )
    }
}

/// Where streams are pushed: addresses for every stream (`--restream`) and addresses for
/// one stream (`POST /api/streams/{id}/restream`). The supervisor follows changes.
#[derive(Debug, Default)]
pub(crate) struct Targets {
    list: std::sync::Mutex<TargetList>,
    changed: tokio::sync::Notify,
    /// How each push is doing, by (stream, target); kept after a push ends so the numbers
    /// stay readable until the target is removed.
    pushes: std::sync::Mutex<HashMap<(StreamId, u64), Arc<PushStatus>>>,
}

/// One push's state and counters, written by its task, read by the API and `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct PushStatus {
    state: std::sync::Mutex<PushState>,
    frames_sent: std::sync::atomic::AtomicU64,
    frames_lost: std::sync::atomic::AtomicU64,
    bytes_sent: std::sync::atomic::AtomicU64,
    connects: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default, Clone)]
struct PushState {
    publishing: bool,
    last_error: Option<String>,
}

impl PushStatus {
    fn add(counter: &std::sync::atomic::AtomicU64, n: u64) {
        counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    fn set_publishing(&self) {
        Self::add(&self.connects, 1);
        let mut state = crate::stream::registry::lock(&self.state);
        state.publishing = true;
        state.last_error = None;
    }

    /// The push ended, with `error` if it failed. The API shows a connection that never
    /// reached publishing only as "connection failed": whether the port was closed, open to
    /// something else or filtered would make the API a port scanner (the log has details).
    fn set_down(&self, error: Option<&RestreamError>) {
        let mut state = crate::stream::registry::lock(&self.state);
        if let Some(e) = error {
            state.last_error = Some(if state.publishing {
                e.to_string()
            } else {
                CONNECTION_FAILED.to_owned()
            });
        }
        state.publishing = false;
    }

    fn view(&self) -> PushView {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let state = crate::stream::registry::lock(&self.state).clone();
        PushView {
            publishing: state.publishing,
            frames_sent: load(&self.frames_sent),
            frames_lost: load(&self.frames_lost),
            bytes_sent: load(&self.bytes_sent),
            connects: load(&self.connects),
            last_error: state.last_error,
        }
    }
}

/// A push's state as the API and `/metrics` show it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub(crate) struct PushView {
    /// Whether the server is taking the stream now.
    pub publishing: bool,
    /// Frames handed to the server (H.264 access units, after any transcoding).
    pub frames_sent: u64,
    /// Frames left out because the server (or the JPEG transcoder) was slower than the
    /// stream, or lost with a connection.
    pub frames_lost: u64,
    /// RTMP bytes written to the socket.
    pub bytes_sent: u64,
    /// Times a connection reached publishing.
    pub connects: u64,
    /// Why the last connection failed or ended, until one works again.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct TargetList {
    next_id: u64,
    targets: Vec<Target>,
}

/// One restream address; `stream` set: for that stream only.
#[derive(Debug, Clone)]
struct Target {
    id: u64,
    template: UrlTemplate,
    stream: Option<StreamId>,
    /// Whether it may reach loopback and private addresses (see [`ip_problem`]).
    allow_private: bool,
}

/// A per-stream target as the API shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct TargetView {
    /// The target's number (for logs; unique while the hub runs).
    pub id: u64,
    /// The stream it is for.
    pub stream_id: StreamId,
    /// Where the stream goes, `{name}` filled in.
    pub url: String,
    /// How the push is doing (all zero before it first starts).
    #[serde(flatten)]
    pub status: PushView,
}

impl Targets {
    /// Targets for every stream (`--restream`: the operator's choice, so private and
    /// loopback addresses are allowed). One whose text or host is refused (see
    /// [`check_target_text`]) is left out, with a log line.
    pub(crate) fn new(every_stream: Vec<UrlTemplate>) -> Self {
        let targets = Self::default();
        for template in every_stream {
            let text = template.to_string();
            match check_target_text(&template.for_stream(0, "x"), &text) {
                Ok(_) => {
                    let mut list = crate::stream::registry::lock(&targets.list);
                    list.next_id += 1;
                    let id = list.next_id;
                    list.targets.push(Target {
                        id,
                        template,
                        stream: None,
                        allow_private: true,
                    });
                }
                Err(why) => warn!(
                    "restream target \"{}\" left out: {why}",
                    vidcast_proto::log_safe(&text)
                ),
            }
        }
        targets
    }

    /// Adds a target for one stream (from the API) unless that would pass the caps of
    /// `limits`; returns its id, or why not.
    pub(crate) fn add_for_stream(
        &self,
        template: UrlTemplate,
        stream: StreamId,
        allow_private: bool,
        limits: &crate::Limits,
    ) -> Result<u64, String> {
        let id = {
            let mut list = crate::stream::registry::lock(&self.list);
            let api = list.targets.iter().filter(|t| t.stream.is_some());
            let (total, this) = api.fold((0, 0), |(n, m), t| {
                (n + 1, m + usize::from(t.stream == Some(stream)))
            });
            if this >= limits.max_restream_per_stream {
                return Err(format!(
                    "stream {stream} has {this} restream targets already (--max-restream-per-stream {})",
                    limits.max_restream_per_stream
                ));
            }
            if total >= limits.max_restream_targets {
                return Err(format!(
                    "the hub has {total} restream targets added through the API already (--max-restream-targets {})",
                    limits.max_restream_targets
                ));
            }
            list.next_id += 1;
            let id = list.next_id;
            list.targets.push(Target {
                id,
                template,
                stream: Some(stream),
                allow_private,
            });
            id
        };
        self.changed.notify_one();
        Ok(id)
    }

    /// Removes stream `stream`'s own targets (not the ones for every stream); how many.
    pub(crate) fn remove_for_stream(&self, stream: StreamId) -> usize {
        let removed = {
            let mut list = crate::stream::registry::lock(&self.list);
            let before = list.targets.len();
            let gone: Vec<u64> = list
                .targets
                .iter()
                .filter(|t| t.stream == Some(stream))
                .map(|t| t.id)
                .collect();
            list.targets.retain(|t| t.stream != Some(stream));
            let mut pushes = crate::stream::registry::lock(&self.pushes);
            pushes.retain(|(s, target), _| !(*s == stream && gone.contains(target)));
            before - list.targets.len()
        };
        self.changed.notify_one();
        removed
    }

    /// Every target that applies to stream `stream` called `name`.
    pub(crate) fn for_stream(&self, stream: StreamId, name: &str) -> Vec<TargetView> {
        self.snapshot()
            .into_iter()
            .filter(|t| t.stream.is_none_or(|s| s == stream))
            .map(|t| TargetView {
                id: t.id,
                stream_id: stream,
                url: t.template.for_stream(stream.get(), name).to_string(),
                // Reading makes no entry: only a push's own task creates one.
                status: crate::stream::registry::lock(&self.pushes)
                    .get(&(stream, t.id))
                    .map(|p| p.view())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Drops the push counters of streams not in `known`, and the targets added for them
    /// through the API: a forgotten stream's id never returns in this run, so its targets
    /// would only hold places under `--max-restream-targets`. A stream `registry` knows
    /// by now (it connected after `known` was read) keeps its targets.
    fn forget_streams_except(&self, known: &[StreamId], registry: &Registry) -> usize {
        crate::stream::registry::lock(&self.pushes).retain(|(stream, _), _| known.contains(stream));
        let mut list = crate::stream::registry::lock(&self.list);
        let before = list.targets.len();
        list.targets.retain(|t| {
            t.stream
                .is_none_or(|s| known.contains(&s) || registry.stream_info(s).is_some())
        });
        before - list.targets.len()
    }

    /// The status of stream `stream`'s push to target `target` (made on first use).
    fn status(&self, stream: StreamId, target: u64) -> Arc<PushStatus> {
        Arc::clone(
            crate::stream::registry::lock(&self.pushes)
                .entry((stream, target))
                .or_default(),
        )
    }

    fn snapshot(&self) -> Vec<Target> {
        crate::stream::registry::lock(&self.list).targets.clone()
    }
}

/// Follows the registry and the targets until `stop`: one pusher per live stream and
/// target that applies to it.
pub(crate) async fn run(
    registry: Arc<Registry>,
    targets: Arc<Targets>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    for t in targets.snapshot() {
        if t.template.is_per_stream() {
            info!("restreaming every live stream to {}", t.template);
        } else {
            warn!("restreaming to {}, which has no {{name}}: with several streams they all publish to the same name and the server keeps one", t.template);
        }
    }
    let mut events = registry.subscribe_events();
    let mut pushers: HashMap<(StreamId, u64), Pusher> = HashMap::new();
    loop {
        let known = registry.stream_infos();
        // Counters and API targets of streams the registry has forgotten go too.
        let ids: Vec<StreamId> = known.iter().map(|(id, ..)| *id).collect();
        let dropped = targets.forget_streams_except(&ids, &registry);
        if dropped > 0 {
            info!("dropped {dropped} restream target(s) of streams the hub has forgotten");
        }
        let live: Vec<(StreamId, StreamInfo)> = known
            .into_iter()
            .filter(|(_, _, live)| *live)
            .map(|(id, info, _)| (id, info))
            .collect();
        let wanted: Vec<(StreamId, StreamInfo, Target)> = targets
            .snapshot()
            .into_iter()
            .flat_map(|t| {
                live.iter()
                    .filter(move |(id, _)| t.stream.is_none_or(|s| s == *id))
                    .map(move |(id, info)| (*id, info.clone(), t.clone()))
            })
            .collect();
        pushers.retain(|&(id, target), p| {
            let keep =
                wanted.iter().any(|(w, _, t)| (*w, t.id) == (id, target)) && !p.is_finished();
            if !keep {
                p.stop();
            }
            keep
        });
        for (id, info, target) in wanted {
            pushers.entry((id, target.id)).or_insert_with(|| {
                let status = targets.status(id, target.id);
                Pusher::start(
                    Arc::clone(&registry),
                    status,
                    &target,
                    id,
                    info,
                    Arc::clone(&clock),
                )
            });
        }
        tokio::select! {
            // Lagged: events were missed; the next pass rereads the registry anyway.
            r = events.recv() => if matches!(r, Err(broadcast::error::RecvError::Closed)) { break },
            () = targets.changed.notified() => {}
            _ = stop.wait_for(|&s| s) => break,
        }
    }
    for p in pushers.values() {
        p.stop();
    }
    for (_, p) in pushers {
        p.join(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::registry::Owner;

    #[test]
    fn a_forgotten_streams_api_targets_go_and_free_their_places() {
        let limits = crate::Limits {
            max_restream_targets: 1,
            ..Default::default()
        };
        let registry = Registry::with_limits(16, &limits);
        let info = StreamInfo {
            name: "cam".into(),
            peer: ([127, 0, 0, 1], 40_000).into(),
            codec: vidcast_proto::Codec::H264,
            width: 64,
            height: 48,
            fps_nominal: 30.0,
            legacy: false,
            browser: false,
        };
        let handle = registry
            .connect(info.clone(), Owner::of("", info.peer.ip()), 1)
            .unwrap();
        let targets = Targets::new(Vec::new());
        let template = UrlTemplate::parse("rtmp://127.0.0.1/live/{name}").unwrap();
        targets
            .add_for_stream(template.clone(), handle.id, true, &limits)
            .unwrap();
        let known = [handle.id];
        assert_eq!(targets.forget_streams_except(&known, &registry), 0);
        // Known to the registry though not in `known` (connected meanwhile): kept.
        assert_eq!(targets.forget_streams_except(&[], &registry), 0);

        registry.disconnect(handle.id, "gone".into(), true, 10);
        assert_eq!(registry.prune(20), 1);
        assert_eq!(targets.forget_streams_except(&[], &registry), 1);
        let other = registry
            .connect(info.clone(), Owner::of("", info.peer.ip()), 30)
            .unwrap();
        assert_ne!(
            other.id, handle.id,
            "a forgotten stream's id does not return"
        );
        targets
            .add_for_stream(template, other.id, true, &limits)
            .expect("the forgotten stream's place is free again");
    }
}
