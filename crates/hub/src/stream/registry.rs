//! Every stream the hub has seen: identity, live state, stats, latest frame, and the event log.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{broadcast, watch, Notify};
use tracing::warn;
use vidcast_proto::Codec;

use crate::access::budget::{LimitHits, RateLog};
use crate::access::limits::Limits;
use crate::stream::frames::{FrameBudget, FrameOutlet};
use crate::stream::net::{NetNow, NetSeries};
use crate::stream::stats::{LatencyMs, StreamStats};

/// A stream's id, stable across reconnects of the same client name. A type of its own so a
/// frame count or a viewer number cannot be passed where a stream is meant; the wire and the
/// JSON API carry the plain number.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct StreamId(u64);

impl StreamId {
    /// The id numbered `n` (ids start at 1).
    pub const fn new(n: u64) -> Self {
        Self(n)
    }

    /// Its number, as the wire and URLs carry it.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl std::str::FromStr for StreamId {
    type Err = std::num::ParseIntError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse().map(Self)
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// How many events `/api/events` remembers.
const EVENT_HISTORY: usize = 1024;

/// The newest frame of a stream, shared with whoever watches it.
#[derive(Debug, Clone)]
pub struct LatestFrame {
    /// Publisher's sequence number.
    pub seq: u64,
    /// Capture time on the publisher's clock, µs since the Unix epoch.
    pub capture_us: u64,
    /// Arrival time on the hub's clock, µs since the Unix epoch.
    pub received_us: u64,
    /// The stream's codec.
    pub codec: Codec,
    /// The encoded picture.
    pub data: Bytes,
    /// Whether it decodes on its own (every JPEG; an H.264 IDR access unit).
    pub is_keyframe: bool,
    /// Capture time moved onto the hub's clock (µs since the Unix epoch), once the publisher's
    /// clock offset is known; `None` before the first pong and for the original format.
    pub capture_local_us: Option<u64>,
    /// The wall's binary WebSocket message for this frame, built by the first viewer that
    /// needs it and shared by the rest, so the picture is copied once, not once per viewer.
    pub wall_message: Arc<OnceLock<Bytes>>,
}

/// What a publisher announced about its stream.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// Client name.
    pub name: String,
    /// Peer address of the current (or last) connection.
    pub peer: SocketAddr,
    /// Codec.
    pub codec: Codec,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Announced frame rate (0 when unknown).
    pub fps_nominal: f64,
    /// Whether this is the original Python client's format (transcoded; no timestamps).
    pub legacy: bool,
    /// Whether a browser publishes it (the `/publish` page over the web port's WebSocket).
    pub browser: bool,
}

struct StreamEntry {
    info: StreamInfo,
    /// Which client holds the name (see [`Owner`]).
    owner: Owner,
    live: bool,
    connected_at_us: u64,
    disconnected_at_us: Option<u64>,
    stats: Arc<Mutex<StreamStats>>,
    frames: FrameOutlet,
    keyframe_wanted: Arc<Notify>,
}

/// One line of the event log.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamEvent {
    /// Order of the event, from 1.
    pub seq: u64,
    /// Hub clock, µs since the Unix epoch.
    pub at_us: u64,
    /// What happened (`connected`, `disconnected`, `record_error` in JSON).
    pub kind: EventKind,
    /// Stream id.
    pub stream_id: StreamId,
    /// Client name.
    pub name: String,
    /// Peer address.
    pub peer: String,
    /// For disconnects and errors: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For disconnects: whether the client left on purpose (goodbye) or was lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orderly: Option<bool>,
    /// For a client coming back under the same name: how long it was away, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_ms: Option<u64>,
    /// Live streams after this event.
    pub live: usize,
}

/// A stream as `/api/streams` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamSnapshot {
    /// Stream id.
    pub id: StreamId,
    /// Client name.
    pub name: String,
    /// Peer "ip:port".
    pub peer: String,
    /// "jpeg" or "h264".
    pub codec: &'static str,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Frames per second received over the last second.
    pub fps: f64,
    /// Frame rate the publisher announced.
    pub fps_nominal: f64,
    /// The original Python client's format, transcoded to JPEG by the hub; latency unknown.
    pub legacy: bool,
    /// Published by a browser (the `/publish` page), shown with a "browser" mark.
    pub browser: bool,
    /// Frames received.
    pub frames: u64,
    /// Frames the publisher captured that never arrived.
    pub dropped: u64,
    /// Picture bytes received.
    pub bytes: u64,
    /// Capture-to-arrival latency, or null when unknown.
    pub latency_ms: Option<LatencyMs>,
    /// The same since the stream was first seen, as a histogram (for `/metrics`).
    #[serde(skip)]
    pub latency_histogram: crate::stream::stats::LatencyHistogram,
    /// Whether the client is connected.
    pub live: bool,
    /// Last round-trip time of the hub's own ping to the client, ms.
    pub rtt_ms: Option<f64>,
    /// The one round-trip time to show, with its source named: the app ping's, else the
    /// publisher kernel's smoothed RTT (see [`crate::stream::net::Rtt`]).
    pub rtt: Option<crate::stream::net::Rtt>,
    /// Client clock minus hub clock, ms.
    pub clock_offset_ms: Option<f64>,
    /// When the current (or last) connection began, µs since the Unix epoch.
    pub connected_at_us: u64,
    /// When it ended, if it has.
    pub disconnected_at_us: Option<u64>,
    /// Frames whose sequence number went backwards.
    pub out_of_order: u64,
    /// Frames whose picture size differs from the announced one.
    pub size_mismatches: u64,
    /// Keyframes the hub asked the publisher for (H.264 viewers joining or resyncing).
    pub keyframe_requests: u64,
    /// Frames dropped for exceeding the hub's frame-rate limit.
    pub rate_limited: u64,
    /// Whether the hub transcodes this H.264 stream to JPEG right now (`.mjpg` readers, a
    /// browser without WebCodecs).
    pub jpeg_transcoding: bool,
    /// RTSP players reading it now, and whether its JPEG is encoded to H.264 for them.
    pub rtsp: crate::stream::stats::RtspUse,
    /// Kernel TCP statistics of the connection, both ends.
    pub tcp: NetNow,
    /// The publisher's encoder settings, when it adapts them to its link.
    pub encoder: Option<EncoderSnapshot>,
}

/// What a publisher's link adaptation chose, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EncoderSnapshot {
    /// Whether it sends less than asked because its link was congested: a level above 0
    /// after the publisher measured its link (`link_mbps`) or stepped down during this
    /// connection. A publisher starting below full and climbing (the start-up ramp) is not
    /// adapting.
    pub adapting: bool,
    /// 0 = as asked; higher = further reduced.
    pub level: u8,
    /// JPEG quality in use; for an H.264 stream, the percent of its publisher's bit rate.
    pub quality: u8,
    /// Frame rate sent.
    pub fps: f64,
    /// Picture width sent.
    pub width: u16,
    /// Picture height sent.
    pub height: u16,
    /// The link rate the publisher measured, Mbit/s.
    pub link_mbps: Option<f64>,
}

impl EncoderSnapshot {
    /// The API's view of report `r`; `stepped_down`: whether the publisher lowered its level
    /// during this connection.
    pub fn new(r: vidcast_proto::EncoderReport, stepped_down: bool) -> Self {
        Self {
            adapting: r.level > 0 && (r.link_bps > 0 || stepped_down),
            level: r.level,
            quality: r.quality,
            fps: f64::from(r.fps_milli) / 1000.0,
            width: r.width,
            height: r.height,
            link_mbps: (r.link_bps > 0).then(|| r.link_bps as f64 / 1e6),
        }
    }
}

/// What an event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A client connected (or came back).
    Connected,
    /// A client left or was lost.
    Disconnected,
    /// A stream's recording could not be written.
    RecordError,
}

impl EventKind {
    /// Its name in JSON and as a server-sent event's type.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Connected => "connected",
            EventKind::Disconnected => "disconnected",
            EventKind::RecordError => "record_error",
        }
    }
}

/// An event before it gets its number and the live count.
struct EventDetail {
    kind: EventKind,
    stream_id: StreamId,
    name: String,
    peer: String,
    reason: Option<String>,
    orderly: Option<bool>,
    gap_ms: Option<u64>,
}

#[derive(Default)]
struct Inner {
    streams: BTreeMap<StreamId, StreamEntry>,
    /// The number the next new stream gets.
    next_id: u64,
    /// Ids by name from earlier runs (and this one), when the hub has a state directory.
    ids: crate::stream::ids::RememberedIds,
    events: VecDeque<StreamEvent>,
    next_event_seq: u64,
}

/// The hub's shared book of streams. Cheap to share (`Arc`); locks are held only to copy.
///
/// Bounded whatever peers do: live publishers per address ([`Limits::max_publishers_per_ip`];
/// the hub's own `max_clients` check caps them in all) and offline streams
/// ([`Limits::max_offline_streams`], the oldest forgotten first), so at most
/// `max_clients + max_offline_streams` entries.
pub struct Registry {
    inner: Mutex<Inner>,
    events_tx: broadcast::Sender<StreamEvent>,
    latency_capacity: usize,
    max_publishers_per_ip: usize,
    max_offline_streams: usize,
    budget: Arc<FrameBudget>,
    per_ip_log: RateLog,
    offline_log: RateLog,
}

/// Why a publisher was not registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// Its address already has as many live publishers as allowed.
    #[error("{live} publishers from {ip} are live already (--max-publishers-per-ip {max})")]
    TooManyFromAddress {
        /// The address.
        ip: IpAddr,
        /// Its live publishers.
        live: usize,
        /// The limit.
        max: usize,
    },
}

/// What [`Registry::forget_offline`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forget {
    /// The offline stream is gone: its tile goes from every wall.
    Forgotten,
    /// No stream has that id.
    NoSuchStream,
    /// The stream is live: it cannot be dismissed.
    Live,
}

/// Who a stream's name belongs to: the client's token when it has one, else its address. An
/// offline stream's id, tile, restream targets and recording pass only to the same owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner(u64);

impl Owner {
    /// The owner of a connection that presented `token` (empty: none) from `ip`. Keyed with
    /// this process's random hasher: the token itself is not kept.
    pub fn of(token: &str, ip: std::net::IpAddr) -> Self {
        use std::hash::{BuildHasher, Hash, Hasher};
        static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
        let mut hasher = KEYS.get_or_init(Default::default).build_hasher();
        if token.is_empty() {
            (0u8, ip).hash(&mut hasher);
        } else {
            (1u8, token).hash(&mut hasher);
        }
        Self(hasher.finish())
    }
}

/// Longest client name, in bytes (the protocol's limit).
const MAX_NAME_BYTES: usize = 64;

/// `base-n`, cut so it stays within the name limit.
fn numbered(base: &str, n: u32) -> String {
    let suffix = format!("-{n}");
    let mut end = base.len().min(MAX_NAME_BYTES - suffix.len());
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &base[..end])
}

/// A registered, live stream, held by its session.
pub struct StreamHandle {
    /// The id given.
    pub id: StreamId,
    /// The name it is shown under: the one asked for, or `name-2`… when another client holds
    /// that name.
    pub name: String,
    /// Stats to update per frame (lock is uncontended but for API reads).
    pub stats: Arc<Mutex<StreamStats>>,
    /// Where to publish each accepted frame.
    pub frames: FrameOutlet,
    /// Woken when a viewer waits for a keyframe; the session asks its publisher for one.
    pub keyframe_wanted: Arc<Notify>,
    /// When the name came back after a disconnect: how long it was away, µs.
    pub gap_us: Option<u64>,
}

/// Locks a mutex even if a panicking holder poisoned it: stats stay usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Registry {
    /// An empty registry whose streams keep `latency_capacity` latency samples each, with
    /// the default [`Limits`].
    pub fn new(latency_capacity: usize) -> Self {
        Self::with_limits(latency_capacity, &Limits::default())
    }

    /// An empty registry bounded by `limits` (publishers per address, offline streams, the
    /// bytes of frames streams hold), counting hits in its own [`LimitHits`].
    pub fn with_limits(latency_capacity: usize, limits: &Limits) -> Self {
        let (events_tx, _) = broadcast::channel(256);
        let hits = Arc::new(LimitHits::default());
        Self {
            inner: Mutex::new(Inner {
                next_id: 1,
                next_event_seq: 1,
                ..Inner::default()
            }),
            events_tx,
            latency_capacity,
            max_publishers_per_ip: limits.max_publishers_per_ip,
            max_offline_streams: limits.max_offline_streams,
            budget: Arc::new(FrameBudget::new(limits, hits)),
            per_ip_log: RateLog::default(),
            offline_log: RateLog::default(),
        }
    }

    /// This registry, giving a returning client's name the id it had before (in an earlier
    /// run too) when that id is free, and remembering new ones in `ids` (see [`crate::ids`]).
    pub fn remembering(self, ids: crate::stream::ids::RememberedIds) -> Self {
        {
            let mut inner = lock(&self.inner);
            inner.next_id = inner.next_id.max(ids.max_id().map_or(1, |id| id.get() + 1));
            inner.ids = ids;
        }
        self
    }

    /// How often each limit bit (the hub's counters, shown in `/metrics`).
    pub fn limit_hits(&self) -> Arc<LimitHits> {
        Arc::clone(self.budget.hits())
    }

    /// The bytes of frames streams may hold, and hold now.
    pub fn frame_budget(&self) -> Arc<FrameBudget> {
        Arc::clone(&self.budget)
    }

    /// Registers a connecting publisher owned by `owner`. The same owner coming back under an
    /// offline name takes its old id back, so its tile, stats, recording and restream targets
    /// continue; a name that another client holds (live, or offline and someone else's) is
    /// given a distinct one, `name-2`, `name-3`…, with a new id. Refused (counted, logged once
    /// per period) when its address has `max_publishers_per_ip` live already.
    pub fn connect(
        &self,
        mut info: StreamInfo,
        owner: Owner,
        now_us: u64,
    ) -> Result<StreamHandle, ConnectError> {
        let mut inner = lock(&self.inner);
        let ip = info.peer.ip();
        let live = inner
            .streams
            .values()
            .filter(|e| e.live && e.info.peer.ip() == ip)
            .count();
        if live >= self.max_publishers_per_ip {
            drop(inner);
            let refused = ConnectError::TooManyFromAddress {
                ip,
                live,
                max: self.max_publishers_per_ip,
            };
            LimitHits::hit(&self.budget.hits().publishers_per_ip);
            if let Some(more) = self.per_ip_log.allow(Instant::now()) {
                warn!(
                    "client {} \"{}\" refused: {refused} ({more} more refused since the last line)",
                    info.peer, info.name
                );
            }
            return Err(refused);
        }
        let taken = |inner: &Inner, name: &str| {
            inner
                .streams
                .values()
                .any(|e| e.info.name == name && (e.live || e.owner != owner))
        };
        if taken(&inner, &info.name) {
            // Bounded: the registry holds far fewer entries than this.
            if let Some(free) = (2..100_000)
                .map(|n| numbered(&info.name, n))
                .find(|candidate| !taken(&inner, candidate))
            {
                info.name = free;
            }
        }
        let reuse = inner
            .streams
            .iter()
            .find(|(_, e)| !e.live && e.info.name == info.name && e.owner == owner)
            .map(|(id, _)| *id);
        // A name seen before (in this run or, with a state directory, an earlier one) takes
        // its id back while no other stream has it.
        let remembered = inner
            .ids
            .get(&info.name)
            .filter(|id| !inner.streams.contains_key(id));
        let id = match reuse.or(remembered) {
            Some(id) => id,
            None => {
                let id = StreamId::new(inner.next_id);
                inner.next_id += 1;
                id
            }
        };
        inner.ids.note(id, &info.name);
        let entry = inner.streams.entry(id).or_insert_with(|| StreamEntry {
            owner,
            info: info.clone(),
            live: true,
            connected_at_us: now_us,
            disconnected_at_us: None,
            stats: Arc::new(Mutex::new(StreamStats::new(self.latency_capacity))),
            frames: FrameOutlet::new(id, Arc::clone(&self.budget)),
            keyframe_wanted: Arc::default(),
        });
        let gap_us = entry.disconnected_at_us.map(|t| now_us.saturating_sub(t));
        entry.info = info;
        entry.live = true;
        entry.connected_at_us = now_us;
        entry.disconnected_at_us = None;
        // A returning client's sequence numbers and TCP counters restart: no false drops.
        {
            let mut stats = lock(&entry.stats);
            stats.last_seq = None;
            stats.net.clear();
            stats.encoder = None;
            stats.encoder_stepped_down = false;
        }
        let handle = StreamHandle {
            id,
            name: entry.info.name.clone(),
            stats: Arc::clone(&entry.stats),
            frames: entry.frames.clone(),
            keyframe_wanted: Arc::clone(&entry.keyframe_wanted),
            gap_us,
        };
        let (name, peer) = (entry.info.name.clone(), entry.info.peer.to_string());
        let detail = EventDetail {
            kind: EventKind::Connected,
            stream_id: id,
            name,
            peer,
            reason: None,
            orderly: None,
            gap_ms: gap_us.map(|us| us / 1000),
        };
        Self::push_event(&mut inner, &self.events_tx, now_us, detail);
        Ok(handle)
    }

    /// Marks a stream offline and logs why.
    pub fn disconnect(&self, id: StreamId, reason: String, orderly: bool, now_us: u64) {
        let mut inner = lock(&self.inner);
        let Some(entry) = inner.streams.get_mut(&id) else {
            return;
        };
        entry.live = false;
        entry.disconnected_at_us = Some(now_us);
        let parking = entry.frames.clone();
        let (name, peer) = (entry.info.name.clone(), entry.info.peer.to_string());
        let detail = EventDetail {
            kind: EventKind::Disconnected,
            stream_id: id,
            name,
            peer,
            reason: Some(reason),
            orderly: Some(orderly),
            gap_ms: None,
        };
        Self::push_event(&mut inner, &self.events_tx, now_us, detail);
        let forgotten = self.forget_oldest_offline(&mut inner);
        drop(inner);
        // Copies up to a few frames: outside the lock.
        parking.park();
        if forgotten > 0 {
            for _ in 0..forgotten {
                LimitHits::hit(&self.budget.hits().offline_streams);
            }
            if let Some(more) = self.offline_log.allow(Instant::now()) {
                warn!(
                    "forgot {forgotten} offline stream(s) early: over {} offline (--max-offline-streams); {more} more since the last line",
                    self.max_offline_streams
                );
            }
        }
    }

    /// Forgets the streams offline the longest while more than `max_offline_streams` are;
    /// how many it forgot.
    fn forget_oldest_offline(&self, inner: &mut Inner) -> usize {
        let offline_count = inner.streams.values().filter(|e| !e.live).count();
        if offline_count <= self.max_offline_streams {
            return 0;
        }
        let mut offline: Vec<(u64, StreamId)> = inner
            .streams
            .iter()
            .filter(|(_, e)| !e.live)
            .map(|(&id, e)| (e.disconnected_at_us.unwrap_or(0), id))
            .collect();
        let excess = offline.len().saturating_sub(self.max_offline_streams);
        if excess == 0 {
            return 0;
        }
        offline.sort_unstable();
        for (_, id) in &offline[..excess] {
            inner.streams.remove(id);
        }
        excess
    }

    /// Logs an event about stream `id` other than a connect or disconnect (e.g. a recording
    /// error), `reason` saying what happened.
    pub fn note(&self, id: StreamId, kind: EventKind, reason: String, now_us: u64) {
        let mut inner = lock(&self.inner);
        let Some(entry) = inner.streams.get(&id) else {
            return;
        };
        let detail = EventDetail {
            kind,
            stream_id: id,
            name: entry.info.name.clone(),
            peer: entry.info.peer.to_string(),
            reason: Some(reason),
            orderly: None,
            gap_ms: None,
        };
        Self::push_event(&mut inner, &self.events_tx, now_us, detail);
    }

    fn push_event(
        inner: &mut Inner,
        tx: &broadcast::Sender<StreamEvent>,
        at_us: u64,
        detail: EventDetail,
    ) {
        let live = inner.streams.values().filter(|e| e.live).count();
        let event = StreamEvent {
            seq: inner.next_event_seq,
            at_us,
            kind: detail.kind,
            stream_id: detail.stream_id,
            name: detail.name,
            peer: detail.peer,
            reason: detail.reason,
            orderly: detail.orderly,
            gap_ms: detail.gap_ms,
            live,
        };
        inner.next_event_seq += 1;
        if inner.events.len() == EVENT_HISTORY {
            inner.events.pop_front();
        }
        inner.events.push_back(event.clone());
        // Nobody listening is fine.
        let _ = tx.send(event);
    }

    /// How many streams are live.
    pub fn live_count(&self) -> usize {
        lock(&self.inner)
            .streams
            .values()
            .filter(|e| e.live)
            .count()
    }

    /// Recent events, oldest first.
    pub fn events(&self) -> Vec<StreamEvent> {
        lock(&self.inner).events.iter().cloned().collect()
    }

    /// Events as they happen.
    pub fn subscribe_events(&self) -> broadcast::Receiver<StreamEvent> {
        self.events_tx.subscribe()
    }

    /// A viewer of stream `id` cannot decode until the next keyframe: tell its publisher's
    /// session (requests coalesce; the session rate-limits what it sends).
    pub fn request_keyframe(&self, id: StreamId) {
        if let Some(e) = lock(&self.inner).streams.get(&id) {
            e.keyframe_wanted.notify_one();
        }
    }

    /// Notes whether stream `id` is being transcoded to JPEG (shown by the API).
    pub(crate) fn set_jpeg_transcoding(&self, id: StreamId, on: bool) {
        if let Some(e) = lock(&self.inner).streams.get(&id) {
            lock(&e.stats).jpeg_transcoding = on;
        }
    }

    /// Changes how RTSP players use stream `id` (shown by the API and `/metrics`).
    pub(crate) fn update_rtsp_use(
        &self,
        id: StreamId,
        change: impl FnOnce(&mut crate::stream::stats::RtspUse),
    ) {
        if let Some(e) = lock(&self.inner).streams.get(&id) {
            change(&mut lock(&e.stats).rtsp);
        }
    }

    /// The newest frame of a stream, as a watch (latest wins; never queues).
    pub fn watch_frames(&self, id: StreamId) -> Option<watch::Receiver<Option<LatestFrame>>> {
        lock(&self.inner).streams.get(&id).map(|e| e.frames.watch())
    }

    /// Stream `id`'s frame outlet: for consumers that need every frame in order (recording,
    /// restreaming) or the current keyframe group.
    pub fn frame_outlet(&self, id: StreamId) -> Option<FrameOutlet> {
        lock(&self.inner).streams.get(&id).map(|e| e.frames.clone())
    }

    /// The stream a URL names by `key`: the stream whose id it is, else the stream of that
    /// name (names are unique among the registry's streams; see `http::StreamRef`).
    pub fn resolve(&self, key: &str) -> Option<StreamId> {
        let inner = lock(&self.inner);
        if let Some(id) = key
            .parse::<StreamId>()
            .ok()
            .filter(|id| inner.streams.contains_key(id))
        {
            return Some(id);
        }
        inner
            .streams
            .iter()
            .find(|(_, e)| e.info.name == key)
            .map(|(&id, _)| id)
    }

    /// What stream `id`'s publisher announced.
    pub fn stream_info(&self, id: StreamId) -> Option<StreamInfo> {
        lock(&self.inner).streams.get(&id).map(|e| e.info.clone())
    }

    /// What stream `id`'s publisher announced, and whether it is connected now.
    pub fn stream_info_and_live(&self, id: StreamId) -> Option<(StreamInfo, bool)> {
        let inner = lock(&self.inner);
        inner.streams.get(&id).map(|e| (e.info.clone(), e.live))
    }

    /// Every stream's identity and whether it is live, by id: what viewers list, without
    /// the stats (cheap enough to call on every event).
    pub fn stream_infos(&self) -> Vec<(StreamId, StreamInfo, bool)> {
        lock(&self.inner)
            .streams
            .iter()
            .map(|(&id, e)| (id, e.info.clone(), e.live))
            .collect()
    }

    /// Every stream, by id.
    pub fn snapshot(&self, now_us: u64) -> Vec<StreamSnapshot> {
        let inner = lock(&self.inner);
        inner
            .streams
            .iter()
            .map(|(&id, e)| {
                let s = lock(&e.stats);
                let net = s.net.now();
                StreamSnapshot {
                    id,
                    name: e.info.name.clone(),
                    peer: e.info.peer.to_string(),
                    codec: e.info.codec.name(),
                    width: e.info.width,
                    height: e.info.height,
                    fps: if e.live { s.fps.fps(now_us) } else { 0.0 },
                    fps_nominal: e.info.fps_nominal,
                    legacy: e.info.legacy,
                    browser: e.info.browser,
                    frames: s.frames,
                    dropped: s.dropped,
                    bytes: s.bytes,
                    latency_ms: s.latency.percentiles(),
                    latency_histogram: s.latency_histogram.clone(),
                    live: e.live,
                    rtt_ms: s.rtt_us.map(|us| us as f64 / 1000.0),
                    rtt: crate::stream::net::Rtt::choose(s.rtt_us, net.publisher.as_ref()),
                    clock_offset_ms: s.clock_offset_us.map(|us| us as f64 / 1000.0),
                    connected_at_us: e.connected_at_us,
                    disconnected_at_us: e.disconnected_at_us,
                    out_of_order: s.out_of_order,
                    size_mismatches: s.size_mismatches,
                    keyframe_requests: s.keyframe_requests,
                    rate_limited: s.rate_limited,
                    jpeg_transcoding: s.jpeg_transcoding,
                    rtsp: s.rtsp,
                    tcp: net,
                    encoder: s
                        .encoder
                        .filter(|_| e.live)
                        .map(|r| EncoderSnapshot::new(r, s.encoder_stepped_down)),
                }
            })
            .collect()
    }

    /// A stream's network history as graph series, times relative to `now_us`.
    pub fn net_series(&self, id: StreamId, now_us: u64) -> Option<NetSeries> {
        let inner = lock(&self.inner);
        let entry = inner.streams.get(&id)?;
        let series = lock(&entry.stats).net.series(now_us);
        Some(series)
    }

    /// Stream `id`'s capture-to-hub latency samples (µs, oldest first) taken after its first
    /// `seen`: with `seen` its snapshot's `latency_histogram.count` at some moment, those
    /// taken since then. Only the newest (the registry's latency capacity) are kept.
    pub fn latency_samples_since(&self, id: StreamId, seen: u64) -> Option<Vec<u64>> {
        let inner = lock(&self.inner);
        let stats = lock(&inner.streams.get(&id)?.stats);
        let new = stats.latency_histogram.count.saturating_sub(seen);
        let kept = stats.latency.samples().count();
        let skip = kept.saturating_sub(usize::try_from(new).unwrap_or(usize::MAX));
        Some(stats.latency.samples().skip(skip).collect())
    }

    /// Forgets streams that have been offline since before `offline_before_us`; their tiles
    /// go, and anyone still watching them sees the end of the stream.
    pub fn prune(&self, offline_before_us: u64) -> usize {
        let mut inner = lock(&self.inner);
        let before = inner.streams.len();
        inner
            .streams
            .retain(|_, e| e.live || e.disconnected_at_us.is_none_or(|t| t >= offline_before_us));
        before - inner.streams.len()
    }

    /// Forgets offline stream `id` now (the wall's dismiss button); a live stream stays.
    pub fn forget_offline(&self, id: StreamId) -> Forget {
        let mut inner = lock(&self.inner);
        match inner.streams.get(&id) {
            None => Forget::NoSuchStream,
            Some(e) if e.live => Forget::Live,
            Some(_) => {
                inner.streams.remove(&id);
                Forget::Forgotten
            }
        }
    }

    /// How many events have happened since the hub started.
    pub fn event_count(&self) -> u64 {
        lock(&self.inner).next_event_seq - 1
    }
}
