//! The hub's HTTP side: the web wall, its WebSocket, MJPEG, the JSON API, events, metrics.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;

use crate::registry::{StreamEvent, StreamSnapshot};
use crate::server::Shared;
use crate::{metrics, mjpeg, wall};

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const APP_CSS: &str = include_str!("../web/app.css");

/// Every route the hub serves over HTTP.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/ws", get(websocket))
        .route("/streams/{file}", get(stream_file))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/streams", get(streams))
        .route("/api/streams/{id}/net", get(stream_net))
        .route("/api/events", get(events))
        .route("/api/events/stream", get(events_stream))
        .route("/metrics", get(prometheus))
        .with_state(shared)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Viewers over the limit get 503 and a reason.
fn viewer_limit_reached(shared: &Shared) -> Option<Response> {
    use std::sync::atomic::Ordering;
    let viewers = shared.viewers.websockets.load(Ordering::Relaxed)
        + shared.viewers.mjpeg.load(Ordering::Relaxed);
    let max = shared.options.limits.max_viewers;
    (viewers >= max).then(|| {
        tracing::warn!("viewer refused: {viewers} viewers (--max-viewers {max})");
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("too many viewers ({viewers}, limit {max}); try again later\n"),
        )
            .into_response()
    })
}

async fn websocket(State(shared): State<Arc<Shared>>, upgrade: WebSocketUpgrade) -> Response {
    if let Some(refusal) = viewer_limit_reached(&shared) {
        return refusal;
    }
    upgrade
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| wall::run(socket, shared))
}

async fn stream_file(State(shared): State<Arc<Shared>>, Path(file): Path<String>) -> Response {
    if file.ends_with(".mjpg") || file.ends_with(".mjpeg") {
        if let Some(refusal) = viewer_limit_reached(&shared) {
            return refusal;
        }
    }
    mjpeg::serve(&shared, &file)
}

async fn streams(State(shared): State<Arc<Shared>>) -> Json<Vec<StreamSnapshot>> {
    Json(shared.registry.snapshot(shared.clock.now_us()))
}

/// One stream's network history: the hub's TCP_INFO samples and the publisher's reports, as
/// series for graphs (times in seconds before now, so the newest is near 0).
async fn stream_net(State(shared): State<Arc<Shared>>, Path(id): Path<u64>) -> Response {
    match shared.registry.net_series(id, shared.clock.now_us()) {
        Some(series) => Json(series).into_response(),
        None => (
            axum::http::StatusCode::NOT_FOUND,
            format!("no stream {id}\n"),
        )
            .into_response(),
    }
}

async fn events(State(shared): State<Arc<Shared>>) -> Json<Vec<StreamEvent>> {
    Json(shared.registry.events())
}

/// Server-sent events: one `connected` / `disconnected` event per change, as JSON.
async fn events_stream(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(shared.registry.subscribe_events()).map(|item| {
        Ok(match item {
            Ok(event) => Event::default()
                .event(event.kind)
                .id(event.seq.to_string())
                .json_data(&event)
                .unwrap_or_else(|_| Event::default().comment("unencodable event")),
            // A reader that fell behind is told so, then continues with the newest events.
            Err(_) => Event::default().comment("lagged: some events were skipped"),
        })
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn prometheus(State(shared): State<Arc<Shared>>) -> Response {
    let body = metrics::render(
        &shared.registry.snapshot(shared.clock.now_us()),
        &shared.viewers,
        shared.registry.event_count(),
        shared.pending.len(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
