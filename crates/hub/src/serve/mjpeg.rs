//! `/streams/{id}.mjpg` and `/streams/{id}.jpg`: plain HTTP that VLC, ffmpeg and `<img>` play.
//!
//! An H.264 stream is transcoded to JPEG while anyone reads its `.mjpg` (one transcoder per
//! stream, shared with wall viewers without WebCodecs; see `transcode.rs`), starting from
//! the kept keyframe group so the first picture comes at once; `.jpg` decodes that group
//! once. Nothing is decoded while nobody reads.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use tokio::sync::watch;

use tracing::warn;
use vidcast_proto::Codec;

use crate::access::auth::Right;
use crate::serve::transcode::{JpegFeed, Transcoder};
use crate::serve::viewers::ViewContext;
use crate::serve::viewers::{ViewerGuard, ViewerKind};
use crate::stream::frames::FrameOutlet;
use crate::stream::registry::{LatestFrame, StreamId};

const BOUNDARY: &str = "vidcastframe";

/// Answers `/streams/{file}` where file is `{id}.mjpg` or `{id}.jpg`, or the same with the
/// stream's name for its id (`cam-kitchen.mjpg`; see `http::StreamRef` for digits).
/// `token`: what the reader was let in with; an `.mjpg` response ends when it is revoked.
pub(crate) async fn serve(ctx: &Arc<ViewContext>, file: &str, token: String) -> Response {
    let (id, ext) = match file.rsplit_once('.') {
        Some((key, ext)) => (ctx.registry.resolve(key), ext),
        None => (None, ""),
    };
    let Some(id) = id else {
        return not_found(file);
    };
    let Some(outlet) = ctx.registry.frame_outlet(id) else {
        return not_found(file);
    };
    let rx = outlet.watch();
    let is_h264 = rx.borrow().as_ref().is_some_and(|f| f.codec == Codec::H264);
    match ext {
        "jpg" | "jpeg" if is_h264 => h264_picture(ctx, id, &outlet).await,
        "jpg" | "jpeg" => latest_jpeg(&rx),
        "mjpg" | "mjpeg" if is_h264 => match ctx.transcoders.subscribe(&ctx.registry, id) {
            Some(feed) => mjpeg(ctx, feed.watch(), Some(feed), token),
            None => not_found(file),
        },
        "mjpg" | "mjpeg" => mjpeg(ctx, rx, None, token),
        _ => not_found(file),
    }
}

/// How long `.jpg` of an H.264 stream waits for the keyframe it asked for.
const KEYFRAME_WAIT: Duration = Duration::from_secs(3);

/// The current picture of an H.264 stream as one JPEG: the kept keyframe group decoded (or,
/// when none is kept, a keyframe asked for and awaited).
async fn h264_picture(ctx: &Arc<ViewContext>, id: StreamId, outlet: &FrameOutlet) -> Response {
    let mut group = outlet.keyframe_group();
    if group.is_empty() {
        ctx.registry.request_keyframe(id);
        let mut rx = outlet.watch();
        let keyframe = tokio::time::timeout(KEYFRAME_WAIT, async {
            loop {
                rx.changed().await.ok()?;
                let frame = rx.borrow_and_update().clone();
                if let Some(frame) = frame.filter(|f| f.is_keyframe) {
                    return Some(frame);
                }
            }
        })
        .await;
        match keyframe {
            Ok(Some(frame)) => group.push(frame),
            _ => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("stream {id}: no H.264 keyframe within {KEYFRAME_WAIT:?}\n"),
                )
                    .into_response()
            }
        }
    }
    let units: Vec<Bytes> = group.into_iter().map(|f| f.data).collect();
    let transcoded = tokio::task::spawn_blocking(move || {
        let mut transcoder = Transcoder::new()?;
        transcoder.catch_up(&units)
    })
    .await;
    match transcoded {
        Ok(Ok(Some(jpeg))) => jpeg_response(jpeg),
        Ok(Ok(None)) => {
            (StatusCode::SERVICE_UNAVAILABLE, "no picture decoded yet\n").into_response()
        }
        Ok(Err(e)) => {
            warn!("stream {id}: H.264 → JPEG for .jpg failed: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("transcoding failed: {e}\n"),
            )
                .into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn jpeg_response(jpeg: Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        jpeg,
    )
        .into_response()
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
        Some(frame) => jpeg_response(frame.data.clone()),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no frame yet\n").into_response(),
    }
}

struct MjpegState {
    rx: watch::Receiver<Option<LatestFrame>>,
    /// The picture whose part header was just sent.
    body_next: Option<Bytes>,
    last_seq: Option<u64>,
    sent_any: bool,
    ctx: Arc<ViewContext>,
    /// For an H.264 stream: keeps its JPEG transcoder running while this reader reads.
    _transcoding: Option<JpegFeed>,
    _guard: ViewerGuard,
}

/// A `multipart/x-mixed-replace` response. The body pulls the newest frame only when the
/// previous one was written, so a slow reader skips frames and never holds anyone up.
fn mjpeg(
    ctx: &Arc<ViewContext>,
    mut rx: watch::Receiver<Option<LatestFrame>>,
    transcoding: Option<JpegFeed>,
    token: String,
) -> Response {
    // The current frame (if any) goes out at once: a new viewer sees a picture immediately.
    rx.mark_changed();
    let state = MjpegState {
        rx,
        body_next: None,
        last_seq: None,
        sent_any: false,
        ctx: Arc::clone(ctx),
        _transcoding: transcoding,
        _guard: ctx.counters.enter(ViewerKind::Mjpeg),
    };
    let body = stream::unfold(state, |mut st| async move {
        if let Some(data) = st.body_next.take() {
            return Some((Ok::<_, Infallible>(data), st));
        }
        loop {
            // The sender lives as long as the registry entry (or the transcoder); an error
            // means the stream is gone.
            st.rx.changed().await.ok()?;
            let Some(frame) = st.rx.borrow_and_update().clone() else {
                continue;
            };
            let picture = frame.data.clone();
            let skipped = st
                .last_seq
                .map_or(0, |last| frame.seq.saturating_sub(last.saturating_add(1)));
            st.last_seq = Some(frame.seq);
            st.ctx.counters.sent(skipped);
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
    // The response ends when the token file takes the reader's right away.
    let auth_shared = Arc::clone(ctx);
    let body = body.take_until(async move {
        let auth = &auth_shared.access.auth;
        auth.until_revoked(&token, &Right::View).await;
        warn!("an MJPEG reader's token was revoked (token file changed); ending its response");
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
