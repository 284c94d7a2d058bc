//! The web wall's WebSocket: one per browser, carrying every visible stream's frames as binary
//! messages and the stream list, stats and events as JSON.
//!
//! Flow control is per viewer and per stream: a frame is sent only once the browser has acked
//! the previous one of that stream (it acks after drawing), and meanwhile only the newest frame
//! is kept. A slow or hidden browser therefore skips frames for itself and holds no one up.
//!
//! The stream list costs the same however many sockets watch: one [`WallFeed`] task builds it
//! once per tick (and soon after events, coalesced), and sends every socket the same
//! serialized delta (streams added or changed, ids removed, new events). A socket gets the
//! whole list once on connect, and again only if it fell behind the deltas.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::StreamMap;
use tracing::debug;
use vidcast_h264::{ChainGate, Pass};
use vidcast_proto::Codec;

use crate::access::auth::Right;
use crate::serve::listing::{self, Include};
use crate::serve::transcode::JpegFeed;
use crate::serve::viewers::ViewerKind;
use crate::server::Shared;
use crate::stream::registry::{lock, LatestFrame, StreamEvent, StreamId};

/// Binary frame message: kind 1, codec, flags (bit 0: keyframe), 1 reserved byte, stream id u32, seq u64,
/// capture time u64 (µs since the Unix epoch, publisher clock), then the picture. Big-endian.
pub(crate) const FRAME_HEADER_LEN: usize = 24;
/// A browser that has not acked a frame for this long is sent the next one anyway.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the stream list and stats are pushed.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// How long after an event the next update goes out: events that come together (a burst of
/// connects) share one update.
const EVENT_DELAY: Duration = Duration::from_millis(100);
/// Events carried by one update at most; a burst beyond it is summarised by the list itself.
const MAX_EVENTS_PER_UPDATE: usize = 100;
/// Updates a socket may be behind before it is sent the whole list instead (bounds what the
/// feed keeps for slow sockets: this many shared messages).
const UPDATES_KEPT: usize = 16;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FromBrowser {
    /// The streams whose tiles are visible; everything else is not sent. `jpeg`: the
    /// browser cannot decode H.264 (no WebCodecs): send its H.264 streams transcoded.
    Subscribe {
        ids: Vec<StreamId>,
        #[serde(default)]
        jpeg: bool,
    },
    /// The browser drew the last frame of this stream.
    Ack { id: StreamId },
}

struct Viewer {
    shared: Arc<Shared>,
    subscriptions: StreamMap<StreamId, WatchStream<Option<LatestFrame>>>,
    in_flight: HashMap<StreamId, Instant>,
    waiting: HashMap<StreamId, LatestFrame>,
    last_seq: HashMap<StreamId, u64>,
    gates: HashMap<StreamId, ChainGate>,
    /// H.264 streams this browser gets as JPEG: holding the feed keeps the transcoder running.
    transcoded: HashMap<StreamId, JpegFeed>,
    /// The browser asked for JPEG only.
    jpeg_only: bool,
    frames_sent: u64,
    frames_skipped: u64,
}

/// Runs one browser's socket until it closes.
/// `token`: what the browser was let in with; the socket closes when it is revoked.
pub(crate) async fn run(socket: WebSocket, shared: Arc<Shared>, token: String) {
    let _guard = shared.viewing.counters.enter(ViewerKind::WebSocket);
    let (mut sink, mut source) = socket.split();
    let mut viewer = Viewer {
        shared: Arc::clone(&shared),
        subscriptions: StreamMap::new(),
        in_flight: HashMap::new(),
        waiting: HashMap::new(),
        last_seq: HashMap::new(),
        gates: HashMap::new(),
        transcoded: HashMap::new(),
        jpeg_only: false,
        frames_sent: 0,
        frames_skipped: 0,
    };
    let hello = json!({
        "type": "hello",
        "events": shared.registry.events().into_iter().rev().take(100).rev().collect::<Vec<_>>(),
    });
    if send_json(&mut sink, &hello).await.is_err() {
        return;
    }
    let (full, mut updates, mut seen_seq) = shared.wall.join(&shared);
    if sink.send(Message::Text(full)).await.is_err() {
        return;
    }
    let mut ticker = tokio::time::interval(STATS_EVERY);
    let revoked = shared.access.auth.until_revoked(&token, &Right::View);
    tokio::pin!(revoked);
    loop {
        let outcome = tokio::select! {
            () = &mut revoked => {
                tracing::warn!("a wall socket's token was revoked (token file changed); closing it");
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
            Some((id, frame)) = viewer.subscriptions.next(), if !viewer.subscriptions.is_empty() => {
                match frame {
                    Some(frame) => viewer.offer(&mut sink, id, frame).await,
                    None => Ok(()),
                }
            }
            incoming = source.next() => match incoming {
                Some(Ok(Message::Text(text))) => viewer.on_text(&mut sink, &text).await,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => Ok(()),
            },
            update = updates.recv() => match update {
                // Deltas the whole list it was given already holds are skipped.
                Ok(update) if update.seq <= seen_seq => Ok(()),
                Ok(update) => {
                    seen_seq = update.seq;
                    sink.send(Message::Text(update.text)).await
                }
                // Too far behind to apply deltas: the whole list again, then deltas from there.
                Err(RecvError::Lagged(_)) => {
                    let (full, rx, seq) = shared.wall.join(&shared);
                    updates = rx;
                    seen_seq = seq;
                    sink.send(Message::Text(full)).await
                }
                Err(RecvError::Closed) => break,
            },
            _ = ticker.tick() => viewer.resend_stale(&mut sink).await,
        };
        if outcome.is_err() {
            break;
        }
    }
    debug!(
        "web viewer left after {} frames ({} skipped for it)",
        viewer.frames_sent, viewer.frames_skipped
    );
}

/// One update of the wall's stream list, serialized once for every socket.
#[derive(Clone)]
pub(crate) struct WallUpdate {
    /// Its place in the sequence of updates (from 1).
    seq: u64,
    /// `{"type":"delta", ...}`.
    text: Utf8Bytes,
}

/// The list as the sockets know it: each stream's JSON as last sent.
#[derive(Default)]
struct WallState {
    /// The last update's number (0: none yet).
    seq: u64,
    /// The list may be out of date: no socket was listening when it last changed.
    stale: bool,
    now_us: u64,
    live: usize,
    streams: BTreeMap<StreamId, serde_json::Value>,
    /// The whole list as of `seq`, serialized for the next socket to connect.
    full: Option<Utf8Bytes>,
}

/// The wall's stream list for every socket: the full list on connect, then one shared delta
/// per tick. Its cost is one registry snapshot and one serialization per tick, not per socket.
///
/// Call order: [`WallFeed::run`] runs for the hub's life; each socket calls
/// [`WallFeed::join`] once (and again after lagging) and then receives the deltas.
pub(crate) struct WallFeed {
    updates: broadcast::Sender<WallUpdate>,
    state: Mutex<WallState>,
}

impl Default for WallFeed {
    fn default() -> Self {
        Self {
            updates: broadcast::channel(UPDATES_KEPT).0,
            state: Mutex::new(WallState {
                stale: true,
                ..WallState::default()
            }),
        }
    }
}

impl WallFeed {
    /// The whole list now (as a `streams` message), the deltas after it, and its sequence
    /// number (deltas up to it are already in the list).
    pub(crate) fn join(
        &self,
        shared: &Shared,
    ) -> (Utf8Bytes, broadcast::Receiver<WallUpdate>, u64) {
        let mut state = lock(&self.state);
        if state.stale {
            refresh(&mut state, shared);
            state.stale = false;
        }
        // Subscribed under the lock: no delta after `seq` can be missed.
        let updates = self.updates.subscribe();
        let state = &mut *state;
        let full = state.full.get_or_insert_with(|| {
            let msg = json!({
                "type": "streams",
                "seq": state.seq,
                "now_us": state.now_us,
                "live": state.live,
                "streams": state.streams.values().collect::<Vec<_>>(),
            });
            Utf8Bytes::from(msg.to_string())
        });
        (full.clone(), updates, state.seq)
    }

    /// Publishes an update every [`STATS_EVERY`], and [`EVENT_DELAY`] after events, until
    /// `stop` turns true.
    pub(crate) async fn run(self: Arc<Self>, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
        let mut events = shared.registry.subscribe_events();
        let mut pending: Vec<StreamEvent> = Vec::new();
        let mut next = tokio::time::Instant::now() + STATS_EVERY;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {
                    self.publish(&shared, std::mem::take(&mut pending));
                    next = tokio::time::Instant::now() + STATS_EVERY;
                }
                event = events.recv() => {
                    match event {
                        Ok(event) if pending.len() < MAX_EVENTS_PER_UPDATE => pending.push(event),
                        // Missed or too many: the list itself is still right.
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    }
                    next = next.min(tokio::time::Instant::now() + EVENT_DELAY);
                }
                _ = stop.wait_for(|&s| s) => return,
            }
        }
    }

    fn publish(&self, shared: &Shared, events: Vec<StreamEvent>) {
        let mut state = lock(&self.state);
        if self.updates.receiver_count() == 0 {
            // Nobody watches: no snapshot; the next socket to join refreshes the list.
            state.stale = true;
            return;
        }
        let (changed, removed) = refresh(&mut state, shared);
        if changed.is_empty() && removed.is_empty() && events.is_empty() {
            return;
        }
        state.seq = state.seq.saturating_add(1);
        let msg = json!({
            "type": "delta",
            "seq": state.seq,
            "now_us": state.now_us,
            "live": state.live,
            "changed": changed,
            "removed": removed,
            "events": events,
        });
        let update = WallUpdate {
            seq: state.seq,
            text: Utf8Bytes::from(msg.to_string()),
        };
        // Sent under the lock, so `join` sees every update either in its list or after it.
        let _ = self.updates.send(update);
    }
}

/// Brings `state` up to the registry: returns the streams that are new or changed and the
/// ids that are gone.
fn refresh(state: &mut WallState, shared: &Shared) -> (Vec<serde_json::Value>, Vec<StreamId>) {
    let now_us = shared.clock.now_us();
    let streams = listing::list(shared, Include::Recording);
    let mut changed = Vec::new();
    let mut next = BTreeMap::new();
    for listed in &streams {
        let value = serde_json::to_value(listed).unwrap_or(serde_json::Value::Null);
        if state.streams.get(&listed.stream.id) != Some(&value) {
            changed.push(value.clone());
        }
        next.insert(listed.stream.id, value);
    }
    let removed = state
        .streams
        .keys()
        .filter(|id| !next.contains_key(id))
        .copied()
        .collect();
    state.streams = next;
    state.now_us = now_us;
    state.live = streams.iter().filter(|s| s.stream.live).count();
    state.full = None;
    (changed, removed)
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

async fn send_json(sink: &mut Sink, value: &serde_json::Value) -> Result<(), axum::Error> {
    sink.send(Message::Text(Utf8Bytes::from(value.to_string())))
        .await
}

impl Viewer {
    async fn on_text(&mut self, sink: &mut Sink, text: &str) -> Result<(), axum::Error> {
        let Ok(msg) = serde_json::from_str::<FromBrowser>(text) else {
            debug!(
                "web viewer sent an unknown message: \"{}\"",
                vidcast_proto::log_safe(text)
            );
            return Ok(());
        };
        match msg {
            FromBrowser::Subscribe { ids, jpeg } => {
                let wanted: Vec<StreamId> = ids.into_iter().take(1024).collect();
                if jpeg != self.jpeg_only {
                    // Every stream starts over in the other form.
                    self.jpeg_only = jpeg;
                    let all: Vec<StreamId> = self.subscriptions.keys().copied().collect();
                    all.iter().for_each(|id| self.unsubscribe(*id));
                }
                let current: Vec<StreamId> = self.subscriptions.keys().copied().collect();
                for id in current.iter().filter(|id| !wanted.contains(id)) {
                    self.unsubscribe(*id);
                }
                for id in wanted.iter().filter(|id| !current.contains(id)) {
                    self.subscribe(sink, *id).await?;
                }
                Ok(())
            }
            FromBrowser::Ack { id } => {
                self.in_flight.remove(&id);
                match self.waiting.remove(&id) {
                    Some(frame) => self.send_frame(sink, id, frame).await,
                    None => Ok(()),
                }
            }
        }
    }

    fn unsubscribe(&mut self, id: StreamId) {
        self.subscriptions.remove(&id);
        self.waiting.remove(&id);
        self.in_flight.remove(&id);
        self.gates.remove(&id);
        self.last_seq.remove(&id);
        self.transcoded.remove(&id);
    }

    async fn subscribe(&mut self, sink: &mut Sink, id: StreamId) -> Result<(), axum::Error> {
        let Some(outlet) = self.shared.registry.frame_outlet(id) else {
            return Ok(());
        };
        let is_h264 = self
            .shared
            .registry
            .stream_info(id)
            .is_some_and(|info| info.codec == Codec::H264);
        if is_h264 && self.jpeg_only {
            if let Some(feed) = self
                .shared
                .viewing
                .transcoders
                .subscribe(&self.shared.registry, id)
            {
                self.subscriptions
                    .insert(id, WatchStream::new(feed.watch()));
                self.transcoded.insert(id, feed);
            }
            return Ok(());
        }
        self.subscriptions
            .insert(id, WatchStream::new(outlet.watch()));
        // An H.264 tile starts from the kept keyframe group, not the next keyframe: all of it
        // goes at once (the decoder needs every frame of it).
        if is_h264 {
            for frame in outlet.keyframe_group() {
                self.send_frame(sink, id, frame).await?;
            }
        }
        Ok(())
    }

    /// A new frame of a subscribed stream: send it, or keep it as the newest waiting one.
    async fn offer(
        &mut self,
        sink: &mut Sink,
        id: StreamId,
        frame: LatestFrame,
    ) -> Result<(), axum::Error> {
        if self.in_flight.contains_key(&id) {
            self.waiting.insert(id, frame);
            Ok(())
        } else {
            self.send_frame(sink, id, frame).await
        }
    }

    async fn resend_stale(&mut self, sink: &mut Sink) -> Result<(), axum::Error> {
        let stale: Vec<StreamId> = self
            .in_flight
            .iter()
            .filter(|(_, sent)| sent.elapsed() > ACK_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.in_flight.remove(&id);
            if let Some(frame) = self.waiting.remove(&id) {
                self.send_frame(sink, id, frame).await?;
            }
        }
        Ok(())
    }

    async fn send_frame(
        &mut self,
        sink: &mut Sink,
        id: StreamId,
        frame: LatestFrame,
    ) -> Result<(), axum::Error> {
        if self.last_seq.get(&id) == Some(&frame.seq) {
            return Ok(()); // already shown (a re-subscription replays the current frame)
        }
        // Frames replaced while one was in flight show here as a gap in `seq`.
        let gate = self.gates.entry(id).or_default();
        match gate.offer(frame.codec, frame.seq, frame.is_keyframe) {
            Pass::Use => {}
            Pass::Repeat => return Ok(()),
            Pass::Wait { .. } => {
                self.shared.registry.request_keyframe(id);
                return Ok(());
            }
        }
        let skipped = self
            .last_seq
            .get(&id)
            .map_or(0, |last| frame.seq.saturating_sub(last.saturating_add(1)));
        self.last_seq.insert(id, frame.seq);
        self.frames_sent += 1;
        self.frames_skipped += skipped;
        self.shared.viewing.counters.sent(skipped);
        self.in_flight.insert(id, Instant::now());
        let message = frame
            .wall_message
            .get_or_init(|| encode_frame(id, &frame))
            .clone();
        sink.send(Message::Binary(message)).await
    }
}

/// The binary message for one frame.
pub(crate) fn encode_frame(id: StreamId, frame: &LatestFrame) -> Bytes {
    let mut buf = BytesMut::with_capacity(FRAME_HEADER_LEN + frame.data.len());
    buf.put_u8(1);
    buf.put_u8(vidcast_proto::codec_number(frame.codec));
    buf.put_u8(u8::from(frame.is_keyframe));
    buf.put_u8(0);
    buf.put_u32(u32::try_from(id.get()).unwrap_or(u32::MAX));
    buf.put_u64(frame.seq);
    buf.put_u64(frame.capture_us);
    buf.extend_from_slice(&frame.data);
    buf.freeze()
}
