//! What a viewer follows: the list of streams (as it changes) and each stream's newest frame.
//! Native viewers on the ingest port (`viewer.rs`) and a window inside the hub process
//! (`vidcast serve --window`) both read the registry through a [`StreamFeed`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::{StreamExt, StreamMap};
use vidcast_proto::Codec;

use crate::stream::registry::{LatestFrame, Registry, StreamEvent, StreamId};

/// How often the list is compared with the registry even without events: forgotten (pruned)
/// streams make no event.
const RESYNC_EVERY: Duration = Duration::from_secs(1);

/// A stream as a viewer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedStream {
    /// Stream id.
    pub id: StreamId,
    /// Client name.
    pub name: String,
    /// Peer "ip:port" of the current (or last) connection.
    pub peer: String,
    /// Codec.
    pub codec: Codec,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Announced frame rate (0 when unknown).
    pub fps_nominal: f64,
    /// Whether the client is connected.
    pub live: bool,
    /// Whether it is the original Python client's format.
    pub legacy: bool,
}

/// One change for a viewer.
#[derive(Debug, Clone)]
pub enum FeedUpdate {
    /// A stream is new or something about it changed (it went offline, came back…).
    Stream(FeedStream),
    /// A stream was forgotten.
    Removed(StreamId),
    /// An H.264 stream's frames from its newest keyframe to its newest frame, given once when
    /// the viewer starts watching it: decoding them all shows the current picture at once.
    /// Later [`FeedUpdate::Frame`]s may repeat the last of them.
    CatchUp(StreamId, Vec<LatestFrame>),
    /// A stream's newest frame. Frames published while the viewer was busy are skipped: only
    /// the newest is ever kept.
    Frame(StreamId, LatestFrame),
}

/// Follows the registry for one viewer.
///
/// Call [`next`](Self::next) in a loop; it is cancel-safe, so it can sit in a `select!`.
/// The first updates describe every stream the hub knows, then its current frame.
pub struct StreamFeed {
    registry: Arc<Registry>,
    events: Receiver<StreamEvent>,
    known: BTreeMap<StreamId, FeedStream>,
    frames: StreamMap<StreamId, WatchStream<Option<LatestFrame>>>,
    pending: VecDeque<FeedUpdate>,
    resync: tokio::time::Interval,
}

impl StreamFeed {
    /// Starts following `registry` (events first, then the list, so nothing falls between).
    pub fn new(registry: Arc<Registry>) -> Self {
        let events = registry.subscribe_events();
        let mut resync = tokio::time::interval(RESYNC_EVERY);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut feed = Self {
            registry,
            events,
            known: BTreeMap::new(),
            frames: StreamMap::new(),
            pending: VecDeque::new(),
            resync,
        };
        feed.sync();
        feed
    }

    /// The next update.
    pub async fn next(&mut self) -> FeedUpdate {
        loop {
            if let Some(update) = self.pending.pop_front() {
                return update;
            }
            tokio::select! {
                event = self.events.recv() => match event {
                    Ok(_) | Err(RecvError::Lagged(_)) => self.sync(),
                    // The hub is going away; the periodic resync still runs meanwhile.
                    Err(RecvError::Closed) => {}
                },
                _ = self.resync.tick() => self.sync(),
                Some((id, frame)) = self.frames.next(), if !self.frames.is_empty() => {
                    if let Some(frame) = frame {
                        return FeedUpdate::Frame(id, frame);
                    }
                }
            }
        }
    }

    /// Compares the registry with what this viewer was told and queues the differences.
    fn sync(&mut self) {
        let mut seen = Vec::new();
        for (id, info, live) in self.registry.stream_infos() {
            seen.push(id);
            let stream = FeedStream {
                id,
                name: info.name,
                peer: info.peer.to_string(),
                codec: info.codec,
                width: info.width,
                height: info.height,
                fps_nominal: info.fps_nominal,
                live,
                legacy: info.legacy,
            };
            if self.known.get(&id) == Some(&stream) {
                continue;
            }
            let mut catch_up = Vec::new();
            if !self.frames.contains_key(&id) {
                if let Some(outlet) = self.registry.frame_outlet(id) {
                    self.frames.insert(id, WatchStream::new(outlet.watch()));
                    if stream.codec == Codec::H264 {
                        catch_up = outlet.keyframe_group();
                    }
                }
            }
            self.known.insert(id, stream.clone());
            self.pending.push_back(FeedUpdate::Stream(stream));
            if !catch_up.is_empty() {
                self.pending.push_back(FeedUpdate::CatchUp(id, catch_up));
            }
        }
        let gone: Vec<StreamId> = self
            .known
            .keys()
            .filter(|id| !seen.contains(id))
            .copied()
            .collect();
        for id in gone {
            self.known.remove(&id);
            self.frames.remove(&id);
            self.pending.push_back(FeedUpdate::Removed(id));
        }
    }
}
