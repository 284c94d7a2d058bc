//! H.264 → JPEG for viewers that cannot decode H.264 (`.mjpg` readers, a browser without
//! WebCodecs): one transcoder per stream, shared by all such viewers, running only while at
//! least one of them holds a [`JpegFeed`].
//!
//! It decodes every frame in order (a P-frame needs the one before) but encodes only the
//! newest picture of what has arrived, so a slow encoder skips pictures, never references.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::{broadcast, watch};
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};
use vidcast_h264::{ChainGate, Pass};
use vidcast_media::{Encoder, H264Decoder, JpegEncoder, MediaError};
use vidcast_proto::Codec;

use crate::stream::frames::FrameOutlet;
use crate::stream::registry::{lock, LatestFrame, Registry, StreamId};

/// JPEG quality of transcoded pictures: the publishers' own default.
const JPEG_QUALITY: u8 = 80;

/// The running transcoders, by stream.
#[derive(Default)]
pub(crate) struct JpegTranscoders {
    running: Mutex<HashMap<StreamId, Weak<Running>>>,
}

/// A viewer's hold on a stream's transcoder: the transcoder stops when the last is dropped.
pub(crate) struct JpegFeed {
    running: Arc<Running>,
}

impl JpegFeed {
    /// The newest transcoded picture (codec JPEG; `seq` and times of the H.264 frame).
    pub(crate) fn watch(&self) -> watch::Receiver<Option<LatestFrame>> {
        self.running.pictures.subscribe()
    }
}

struct Running {
    id: StreamId,
    pictures: watch::Sender<Option<LatestFrame>>,
    task: AbortHandle,
    registry: Arc<Registry>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
        self.registry.set_jpeg_transcoding(self.id, false);
        info!(
            stream_id = self.id.get(),
            "stream {}: nobody needs it as JPEG any more; transcoding stopped", self.id
        );
    }
}

impl JpegTranscoders {
    /// Joins (or starts) stream `id`'s transcoder; `None` if the stream is unknown.
    pub(crate) fn subscribe(&self, registry: &Arc<Registry>, id: StreamId) -> Option<JpegFeed> {
        let mut running = lock(&self.running);
        running.retain(|_, r| r.strong_count() > 0);
        if let Some(existing) = running.get(&id).and_then(Weak::upgrade) {
            return Some(JpegFeed { running: existing });
        }
        let outlet = registry.frame_outlet(id)?;
        let (pictures, _) = watch::channel(None);
        let task = tokio::spawn(transcode(
            id,
            outlet,
            pictures.clone(),
            Arc::clone(registry),
        ));
        let started = Arc::new(Running {
            id,
            pictures,
            task: task.abort_handle(),
            registry: Arc::clone(registry),
        });
        registry.set_jpeg_transcoding(id, true);
        info!(
            stream_id = id.get(),
            "stream {id}: transcoding H.264 to JPEG q{JPEG_QUALITY} for viewers without an H.264 decoder"
        );
        running.insert(id, Arc::downgrade(&started));
        Some(JpegFeed { running: started })
    }
}

/// One stream's decoder and encoder.
pub(crate) struct Transcoder {
    decoder: H264Decoder,
    encoder: JpegEncoder,
}

impl Transcoder {
    /// A fresh decoder (it must start at a keyframe) and a JPEG encoder.
    pub(crate) fn new() -> Result<Self, MediaError> {
        Ok(Self {
            decoder: H264Decoder::new()?,
            encoder: JpegEncoder::new(JPEG_QUALITY)?,
        })
    }

    /// Decodes every access unit, in order, and encodes only the last picture: the current
    /// one. `None` if none held a picture.
    pub(crate) fn catch_up(&mut self, access_units: &[Bytes]) -> Result<Option<Bytes>, MediaError> {
        let mut last = None;
        for unit in access_units {
            if let Some(raw) = self.decoder.decode(unit)? {
                last = Some(raw);
            }
        }
        last.map(|raw| Ok(self.encoder.encode(&raw)?.data))
            .transpose()
    }
}

/// Runs until aborted (the last viewer left) or the stream is forgotten.
async fn transcode(
    id: StreamId,
    outlet: FrameOutlet,
    pictures: watch::Sender<Option<LatestFrame>>,
    registry: Arc<Registry>,
) {
    let mut frames = outlet.subscribe_in_order();
    // The kept keyframe group first: the first picture comes at once.
    let mut batch = outlet.keyframe_group();
    // Holding the outlet would keep `frames` open after the stream is forgotten.
    drop(outlet);
    let mut gate = ChainGate::new();
    let mut transcoder: Option<Transcoder> = None;
    loop {
        if batch.is_empty() {
            match frames.recv().await {
                Ok(frame) => batch.push(frame),
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    debug!(
                        "stream {id}: transcoder fell {lost} frames behind; waiting for a keyframe"
                    );
                    continue; // the gate sees the gap in seq
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
        // Everything already queued goes in this round: decode all, encode the newest.
        loop {
            match frames.try_recv() {
                Ok(frame) => batch.push(frame),
                Err(TryRecvError::Lagged(_)) => {}
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        let Some(newest) = batch.last().cloned() else {
            continue;
        };
        let mut units = Vec::with_capacity(batch.len());
        for frame in batch.drain(..) {
            if frame.codec != Codec::H264 {
                continue;
            }
            match gate.offer(frame.codec, frame.seq, frame.is_keyframe) {
                Pass::Use => units.push(frame.data),
                Pass::Repeat => {}
                Pass::Wait { .. } => registry.request_keyframe(id),
            }
        }
        if units.is_empty() {
            continue;
        }
        let current = match transcoder.take() {
            Some(t) => t,
            None => match Transcoder::new() {
                Ok(t) => t,
                Err(e) => {
                    warn!("stream {id}: cannot start H.264 → JPEG transcoding: {e}");
                    return;
                }
            },
        };
        // Decoding and encoding take milliseconds of CPU: off the async workers.
        let Some((back, result)) =
            crate::blocking::run_with(current, move |t| t.catch_up(&units)).await
        else {
            return;
        };
        match result {
            Ok(Some(jpeg)) => {
                transcoder = Some(back);
                pictures.send_replace(Some(LatestFrame {
                    codec: Codec::Jpeg,
                    data: jpeg,
                    is_keyframe: true,
                    wall_message: Default::default(),
                    ..newest
                }));
            }
            Ok(None) => transcoder = Some(back),
            Err(e) => {
                // A fresh decoder and gate: the next keyframe starts over.
                debug!(
                    "stream {id}: H.264 frame {} not transcoded: {e}",
                    newest.seq
                );
                gate = ChainGate::new();
                registry.request_keyframe(id);
            }
        }
    }
}
