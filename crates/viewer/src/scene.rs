//! What the window shows, shared between whoever feeds it (a hub connection, or the hub's own
//! registry in `serve --window`) and the window thread.
//!
//! Latest frame wins here too: each stream keeps only its newest JPEG; the window decodes
//! whichever is newest when it draws, so a slow screen skips frames instead of queueing them.
//! H.264 cannot skip: its frames are decoded here as they arrive ([`StreamDecoder`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tracing::debug;
use vidcast_media::{DecodedImage, RawFrame};
use vidcast_proto::Codec;

use crate::decode::StreamDecoder;
use crate::mosaic::{label_text, stats_text};

/// What is known of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMeta {
    /// Stream id on the hub.
    pub id: u64,
    /// Client name.
    pub name: String,
    /// Client address, "ip:port".
    pub peer: String,
    /// Codec of its frames; `None` for one this viewer does not know (a newer hub's): the
    /// stream is listed, its frames are not shown.
    pub codec: Option<Codec>,
    /// Announced width.
    pub width: u16,
    /// Announced height.
    pub height: u16,
    /// Whether its publisher is connected.
    pub live: bool,
}

/// A stream as the window draws it: identity, newest picture (still compressed) and stats.
#[derive(Debug, Clone)]
pub struct StreamView {
    /// Identity.
    pub meta: StreamMeta,
    /// `CLIENT: ip:port name`.
    pub label: String,
    /// fps and latency.
    pub stats: String,
    /// The newest JPEG, if any.
    pub jpeg: Option<Bytes>,
    /// The newest decoded H.264 picture, if any.
    pub picture: Option<Arc<DecodedImage>>,
    /// Increases with every frame, so the window decodes each picture once.
    pub generation: u64,
}

#[derive(Debug, Default)]
struct Stream {
    meta: Option<StreamMeta>,
    jpeg: Option<Bytes>,
    picture: Option<Arc<DecodedImage>>,
    generation: u64,
    arrivals_us: VecDeque<u64>,
    latency_ms: Option<f64>,
    /// Sequence gaps, and the H.264 chain decoded.
    decoder: StreamDecoder,
    skipped: u64,
}

#[derive(Debug, Default)]
struct Inner {
    streams: BTreeMap<u64, Stream>,
    status: String,
}

/// The shared picture of the hub. Locks are held only to copy.
#[derive(Debug, Default)]
pub struct Scene {
    inner: Mutex<Inner>,
}

impl Scene {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A stream is new or changed.
    pub fn upsert(&self, meta: StreamMeta) {
        let mut inner = self.lock();
        let stream = inner.streams.entry(meta.id).or_default();
        if !meta.live {
            stream.arrivals_us.clear();
        }
        stream.meta = Some(meta);
    }

    /// A stream is gone.
    pub fn remove(&self, id: u64) {
        self.lock().streams.remove(&id);
    }

    /// Forgets every stream (the connection to the hub was lost; a new one lists them anew).
    pub fn clear(&self) {
        self.lock().streams.clear();
    }

    /// A frame of stream `id` arrived at `now_us`; `latency_us` is capture to arrival, when
    /// known. Returns how many frames of that stream were skipped before it (sequence gap).
    /// H.264 frames are decoded here, under the lock (about 1 ms at 640x480).
    pub fn frame(
        &self,
        id: u64,
        seq: u64,
        is_keyframe: bool,
        data: Bytes,
        now_us: u64,
        latency_us: Option<u64>,
    ) -> u64 {
        let mut inner = self.lock();
        let stream = inner.streams.entry(id).or_default();
        let codec = stream.meta.as_ref().and_then(|m| m.codec);
        let arrival = stream.decoder.offer(id, codec, seq, is_keyframe, &data);
        stream.skipped += arrival.skipped;
        if codec == Some(Codec::H264) {
            // The window shows RGB: the decoder's I420 is converted here, once per frame.
            match arrival.picture.map(RawFrame::into_rgb) {
                Some(Ok(raw)) => {
                    stream.picture = Some(Arc::new(DecodedImage {
                        width: raw.width,
                        height: raw.height,
                        rgb: raw.data,
                    }));
                }
                Some(Err(e)) => debug!("stream {id}: H.264 frame {seq} not shown ({e})"),
                None => {}
            }
        } else {
            stream.jpeg = Some(data);
        }
        stream.generation += 1;
        stream.arrivals_us.push_back(now_us);
        while stream
            .arrivals_us
            .front()
            .is_some_and(|&t| now_us.saturating_sub(t) > 1_000_000)
        {
            stream.arrivals_us.pop_front();
        }
        stream.latency_ms = latency_us.map(|us| us as f64 / 1000.0);
        arrival.skipped
    }

    /// A line about the connection to show when there is nothing else ("connecting to …").
    pub fn set_status(&self, status: impl Into<String>) {
        self.lock().status = status.into();
    }

    /// The connection status line.
    pub fn status(&self) -> String {
        self.lock().status.clone()
    }

    /// Live streams in id order, as the window draws them, with stats as of `now_us`.
    pub fn live(&self, now_us: u64) -> Vec<StreamView> {
        let inner = self.lock();
        inner
            .streams
            .values()
            .filter_map(|s| {
                let meta = s.meta.as_ref().filter(|m| m.live)?;
                let recent = s
                    .arrivals_us
                    .iter()
                    .filter(|&&t| now_us.saturating_sub(t) <= 1_000_000)
                    .count();
                Some(StreamView {
                    meta: meta.clone(),
                    label: label_text(&meta.peer, &meta.name),
                    stats: stats_text(recent as f64, s.latency_ms),
                    jpeg: s.jpeg.clone(),
                    picture: s.picture.clone(),
                    generation: s.generation,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: u64, live: bool) -> StreamMeta {
        StreamMeta {
            id,
            name: format!("cam-{id}"),
            peer: "10.0.0.5:51234".into(),
            codec: Some(Codec::Jpeg),
            width: 64,
            height: 48,
            live,
        }
    }

    #[test]
    fn only_live_streams_are_shown_with_fps_and_latency() {
        let scene = Scene::default();
        scene.upsert(meta(1, true));
        scene.upsert(meta(2, false));
        for i in 0..30 {
            scene.frame(
                1,
                i,
                true,
                Bytes::from_static(b"jpeg"),
                i * 33_333,
                Some(12_000),
            );
        }
        let live = scene.live(29 * 33_333);
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].label, "CLIENT: 10.0.0.5:51234 cam-1");
        assert_eq!(live[0].stats, "30.0 fps  12 ms");
        assert_eq!(live[0].generation, 30);
        scene.upsert(meta(1, false));
        assert!(scene.live(0).is_empty());
    }

    #[test]
    fn sequence_gaps_are_counted_as_skipped() {
        let scene = Scene::default();
        scene.upsert(meta(1, true));
        assert_eq!(scene.frame(1, 5, true, Bytes::new(), 0, None), 0);
        assert_eq!(scene.frame(1, 9, true, Bytes::new(), 1, None), 3);
        // A publisher that reconnected starts again at 0: not a gap.
        assert_eq!(scene.frame(1, 0, true, Bytes::new(), 2, None), 0);
        scene.remove(1);
        assert!(scene.live(0).is_empty());
    }

    #[test]
    fn h264_is_decoded_in_order_and_a_gap_waits_for_a_keyframe() {
        use vidcast_media::{Encoder, H264Config, H264Encoder, ManualClock, TestPattern};
        let config = vidcast_media::TestPatternConfig {
            width: 96,
            height: 64,
            fps: 30.0,
            label: "h".into(),
            paced: false,
        };
        let mut pattern = TestPattern::new(config, Arc::new(ManualClock::new(0))).unwrap();
        let mut encoder = H264Encoder::new(H264Config::default()).unwrap();
        let scene = Scene::default();
        scene.upsert(StreamMeta {
            codec: Some(Codec::H264),
            ..meta(1, true)
        });
        let mut pictures = vec![];
        for seq in 0..8 {
            if seq == 6 {
                encoder.force_keyframe();
            }
            let f = encoder.encode(&pattern.render(seq, 0)).unwrap();
            // Frame 3 is lost on the way.
            if seq != 3 {
                scene.frame(1, seq, f.is_keyframe, f.data, seq, None);
            }
            let picture = scene.live(seq)[0].picture.clone();
            pictures.push(picture.map(|p| (p.width, Arc::as_ptr(&p) as usize)));
        }
        assert!(pictures[..3]
            .iter()
            .all(|p| p.is_some_and(|(w, _)| w == 96)));
        // 4 and 5 follow the lost 3: the picture stays that of 2 until the keyframe at 6.
        assert_eq!(pictures[3], pictures[2]);
        assert_eq!(pictures[4], pictures[2]);
        assert_eq!(pictures[5], pictures[2]);
        assert_ne!(pictures[6], pictures[2]);
        assert_ne!(pictures[7], pictures[6]);
    }
}
