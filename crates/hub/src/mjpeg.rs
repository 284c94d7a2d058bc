//! `/streams/{id}.mjpg` and `/streams/{id}.jpg`: plain HTTP that VLC, ffmpeg and `<img>` play.
//!
//! An H.264 stream is transcoded to JPEG for each `.mjpg` reader while it reads (decoding
//! needs every frame since a keyframe, so the reader follows the same keyframe gate as the
//! wall); nothing is decoded while nobody reads.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream;
use tokio::sync::watch;

use tracing::{debug, warn};
use vidcast_media::{Encoder, H264Decoder, JpegEncoder, MediaError};
use vidcast_proto::Codec;

use crate::gate::{KeyframeGate, Verdict};
use crate::registry::{LatestFrame, StreamId};
use crate::server::Shared;
use crate::viewers::{ViewerGuard, ViewerKind};

const BOUNDARY: &str = "vidcastframe";

/// Answers `/streams/{file}` where file is `{id}.mjpg` or `{id}.jpg`.
pub(crate) fn serve(shared: &Arc<Shared>, file: &str) -> Response {
    let (id, ext) = match file.rsplit_once('.') {
        Some((id, ext)) => (id.parse::<StreamId>().ok(), ext),
        None => (None, ""),
    };
    let Some(id) = id else {
        return not_found(file);
    };
    let Some(rx) = shared.registry.watch_frames(id) else {
        return not_found(file);
    };
    // A single picture of H.264 would need the chain since the last keyframe decoded.
    let codec = rx.borrow().as_ref().map(|f| f.codec);
    if matches!(ext, "jpg" | "jpeg") && codec.is_some_and(|c| c != Codec::Jpeg.to_u8()) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("stream {id} is H.264; use /streams/{id}.mjpg, the wall or `vidcast view`\n"),
        )
            .into_response();
    }
    match ext {
        "jpg" | "jpeg" => latest_jpeg(&rx),
        "mjpg" | "mjpeg" => mjpeg(shared, id, rx),
        _ => not_found(file),
    }
}

fn not_found(file: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("no stream {file:?}; see /api/streams\n"),
    )
        .into_response()
}

fn latest_jpeg(rx: &watch::Receiver<Option<LatestFrame>>) -> Response {
    match rx.borrow().as_ref() {
        Some(frame) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            frame.data.clone(),
        )
            .into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no frame yet\n").into_response(),
    }
}

struct MjpegState {
    rx: watch::Receiver<Option<LatestFrame>>,
    /// The picture whose part header was just sent.
    body_next: Option<Bytes>,
    last_seq: Option<u64>,
    sent_any: bool,
    id: StreamId,
    /// H.264 → JPEG, made at this reader's first H.264 keyframe, dropped with the reader.
    transcoder: Option<Transcoder>,
    gate: KeyframeGate,
    shared: Arc<Shared>,
    _guard: ViewerGuard,
}

/// One reader's H.264 → JPEG transcoder.
struct Transcoder {
    decoder: H264Decoder,
    encoder: JpegEncoder,
}

impl Transcoder {
    fn new() -> Result<Self, MediaError> {
        Ok(Self {
            decoder: H264Decoder::new()?,
            encoder: JpegEncoder::new(80)?,
        })
    }

    fn transcode(&mut self, access_unit: &[u8]) -> Result<Option<Bytes>, MediaError> {
        let Some(raw) = self.decoder.decode(access_unit)? else {
            return Ok(None);
        };
        Ok(Some(self.encoder.encode(&raw)?.data))
    }
}

impl MjpegState {
    /// The frame as JPEG, `Ok(None)` if it cannot be shown (the chain is broken for this
    /// reader: wait for a keyframe), `None` to end the response (the transcoder failed).
    async fn transcode(&mut self, frame: &LatestFrame) -> Option<Option<Bytes>> {
        if let Verdict::Skip { ask_keyframe } =
            self.gate
                .offer(frame.codec, frame.seq, frame.is_keyframe, false)
        {
            if ask_keyframe {
                self.shared.registry.request_keyframe(self.id);
            }
            return Some(None);
        }
        let transcoder = match self.transcoder.take() {
            Some(t) => t,
            None => match Transcoder::new() {
                Ok(t) => t,
                Err(e) => {
                    warn!(
                        "stream {}: cannot start H.264 → JPEG transcoding: {e}",
                        self.id
                    );
                    return None;
                }
            },
        };
        // Decoding and encoding take milliseconds of CPU: off the async workers.
        let data = frame.data.clone();
        let (transcoder, result) =
            crate::blocking::run_with(transcoder, move |t| t.transcode(&data)).await?;
        match result {
            Ok(jpeg) => {
                self.transcoder = Some(transcoder);
                Some(jpeg)
            }
            Err(e) => {
                // A fresh decoder and gate: the next keyframe starts over.
                debug!(
                    "stream {}: H.264 frame {} not transcoded: {e}",
                    self.id, frame.seq
                );
                self.gate = KeyframeGate::default();
                Some(None)
            }
        }
    }
}

/// A `multipart/x-mixed-replace` response. The body pulls the newest frame only when the
/// previous one was written, so a slow reader skips frames and never holds anyone up.
fn mjpeg(
    shared: &Arc<Shared>,
    id: StreamId,
    mut rx: watch::Receiver<Option<LatestFrame>>,
) -> Response {
    // The current frame (if any) goes out at once: a new viewer sees a picture immediately.
    rx.mark_changed();
    let state = MjpegState {
        rx,
        body_next: None,
        last_seq: None,
        sent_any: false,
        id,
        transcoder: None,
        gate: KeyframeGate::default(),
        shared: Arc::clone(shared),
        _guard: shared.viewers.enter(ViewerKind::Mjpeg),
    };
    let body = stream::unfold(state, |mut st| async move {
        if let Some(data) = st.body_next.take() {
            return Some((Ok::<_, Infallible>(data), st));
        }
        loop {
            // The sender lives as long as the registry entry; an error means the stream is gone.
            st.rx.changed().await.ok()?;
            let Some(frame) = st.rx.borrow_and_update().clone() else {
                continue;
            };
            let picture = if frame.codec == Codec::Jpeg.to_u8() {
                frame.data.clone()
            } else {
                match st.transcode(&frame).await? {
                    Some(jpeg) => jpeg,
                    None => continue,
                }
            };
            let skipped = st
                .last_seq
                .map_or(0, |last| frame.seq.saturating_sub(last + 1));
            st.last_seq = Some(frame.seq);
            st.shared.viewers.sent(skipped);
            // The CRLF that ends the previous part leads this part's header, so the picture
            // itself goes out as the shared buffer, uncopied.
            let head = format!(
                "{}--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                if st.sent_any { "\r\n" } else { "" },
                picture.len()
            );
            st.sent_any = true;
            st.body_next = Some(picture);
            return Some((Ok(Bytes::from(head)), st));
        }
    });
    Response::builder()
        .header(
            header::CONTENT_TYPE,
            format!("multipart/x-mixed-replace; boundary={BOUNDARY}"),
        )
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
