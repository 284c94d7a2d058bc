//! The web wall's WebSocket: one per browser, carrying every visible stream's frames as binary
//! messages and the stream list, stats and events as JSON.
//!
//! Flow control is per viewer and per stream: a frame is sent only once the browser has acked
//! the previous one of that stream (it acks after drawing), and meanwhile only the newest frame
//! is kept. A slow or hidden browser therefore skips frames for itself and holds no one up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::StreamMap;
use tracing::debug;
use vidcast_proto::Codec;

use crate::gate::{KeyframeGate, Verdict};
use crate::registry::{LatestFrame, StreamId};
use crate::server::Shared;
use crate::transcode::JpegFeed;
use crate::viewers::ViewerKind;

/// Binary frame message: kind 1, codec, flags (bit 0: keyframe), 1 reserved byte, stream id u32, seq u64,
/// capture time u64 (µs since the Unix epoch, publisher clock), then the picture. Big-endian.
pub const FRAME_HEADER_LEN: usize = 24;
/// A browser that has not acked a frame for this long is sent the next one anyway.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the stream list and stats are pushed.
const STATS_EVERY: Duration = Duration::from_secs(1);

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
    gates: HashMap<StreamId, KeyframeGate>,
    /// H.264 streams this browser gets as JPEG: holding the feed keeps the transcoder running.
    transcoded: HashMap<StreamId, JpegFeed>,
    /// The browser asked for JPEG only.
    jpeg_only: bool,
    frames_sent: u64,
    frames_skipped: u64,
}

/// Runs one browser's socket until it closes.
pub(crate) async fn run(socket: WebSocket, shared: Arc<Shared>) {
    let _guard = shared.viewers.enter(ViewerKind::WebSocket);
    let mut events = shared.registry.subscribe_events();
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
    if send_json(&mut sink, &hello).await.is_err()
        || send_json(&mut sink, &viewer.streams_message())
            .await
            .is_err()
    {
        return;
    }
    let mut ticker = tokio::time::interval(STATS_EVERY);
    loop {
        let outcome = tokio::select! {
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
            event = events.recv() => match event {
                Ok(event) => {
                    let msg = json!({ "type": "event", "event": event });
                    match send_json(&mut sink, &msg).await {
                        Ok(()) => send_json(&mut sink, &viewer.streams_message()).await,
                        Err(e) => Err(e),
                    }
                }
                Err(RecvError::Lagged(_)) => send_json(&mut sink, &viewer.streams_message()).await,
                Err(RecvError::Closed) => break,
            },
            _ = ticker.tick() => {
                match viewer.resend_stale(&mut sink).await {
                    Ok(()) => send_json(&mut sink, &viewer.streams_message()).await,
                    Err(e) => Err(e),
                }
            }
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

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

async fn send_json(sink: &mut Sink, value: &serde_json::Value) -> Result<(), axum::Error> {
    sink.send(Message::Text(Utf8Bytes::from(value.to_string())))
        .await
}

impl Viewer {
    fn streams_message(&self) -> serde_json::Value {
        let mut streams = self.shared.registry.snapshot(self.shared.clock.now_us());
        if let Some(recordings) = &self.shared.recordings {
            recordings.annotate(&mut streams);
        }
        json!({
            "type": "streams",
            "now_us": self.shared.clock.now_us(),
            "live": streams.iter().filter(|s| s.live).count(),
            "streams": streams,
            "viewer": { "frames": self.frames_sent, "skipped": self.frames_skipped },
        })
    }

    async fn on_text(&mut self, sink: &mut Sink, text: &str) -> Result<(), axum::Error> {
        let Ok(msg) = serde_json::from_str::<FromBrowser>(text) else {
            debug!("web viewer sent an unknown message: {text:.80}");
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
            if let Some(feed) = self.shared.transcoders.subscribe(&self.shared.registry, id) {
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
        if let Verdict::Skip { ask_keyframe } =
            gate.offer(frame.codec, frame.seq, frame.is_keyframe, false)
        {
            if ask_keyframe {
                self.shared.registry.request_keyframe(id);
            }
            return Ok(());
        }
        let skipped = self
            .last_seq
            .get(&id)
            .map_or(0, |last| frame.seq.saturating_sub(last.saturating_add(1)));
        self.last_seq.insert(id, frame.seq);
        self.frames_sent += 1;
        self.frames_skipped += skipped;
        self.shared.viewers.sent(skipped);
        self.in_flight.insert(id, Instant::now());
        let message = frame
            .wall_message
            .get_or_init(|| encode_frame(id, &frame))
            .clone();
        sink.send(Message::Binary(message)).await
    }
}

/// The binary message for one frame.
pub fn encode_frame(id: StreamId, frame: &LatestFrame) -> Bytes {
    let mut buf = BytesMut::with_capacity(FRAME_HEADER_LEN + frame.data.len());
    buf.put_u8(1);
    buf.put_u8(frame.codec);
    buf.put_u8(u8::from(frame.is_keyframe));
    buf.put_u8(0);
    buf.put_u32(u32::try_from(id).unwrap_or(u32::MAX));
    buf.put_u64(frame.seq);
    buf.put_u64(frame.capture_us);
    buf.extend_from_slice(&frame.data);
    buf.freeze()
}
