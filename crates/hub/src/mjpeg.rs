//! `/streams/{id}.mjpg` and `/streams/{id}.jpg`: plain HTTP that VLC, ffmpeg and `<img>` play.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream;
use tokio::sync::watch;

use vidcast_proto::Codec;

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
    // The hub forwards H.264 without decoding it; transcoding for these URLs is to come.
    let codec = rx.borrow().as_ref().map(|f| f.codec);
    if codec.is_some_and(|c| c != Codec::Jpeg.to_u8()) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("stream {id} is H.264; watch it on the wall or with `vidcast view`\n"),
        )
            .into_response();
    }
    match ext {
        "jpg" | "jpeg" => latest_jpeg(&rx),
        "mjpg" | "mjpeg" => mjpeg(shared, rx),
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
    shared: Arc<Shared>,
    _guard: ViewerGuard,
}

/// A `multipart/x-mixed-replace` response. The body pulls the newest frame only when the
/// previous one was written, so a slow reader skips frames and never holds anyone up.
fn mjpeg(shared: &Arc<Shared>, mut rx: watch::Receiver<Option<LatestFrame>>) -> Response {
    // The current frame (if any) goes out at once: a new viewer sees a picture immediately.
    rx.mark_changed();
    let state = MjpegState {
        rx,
        body_next: None,
        last_seq: None,
        sent_any: false,
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
            if frame.codec != Codec::Jpeg.to_u8() {
                continue;
            }
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
                frame.data.len()
            );
            st.sent_any = true;
            st.body_next = Some(frame.data);
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
