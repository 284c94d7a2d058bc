//! The hub's HTTP side: the web wall, its WebSocket, MJPEG, the JSON API, events, metrics.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::http::header;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::{Json, Router};
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;

use super::listing::{self, Include, StreamListing};
use super::{metrics, mjpeg, wall};
use crate::server::Shared;
use crate::stream::registry::StreamEvent;

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");
const LOGIN_HTML: &str = include_str!("../../web/login.html");
const FAVICON_SVG: &str = include_str!("../../web/favicon.svg");

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
        .route(
            "/publish",
            get(|| async {
                asset(
                    "text/html; charset=utf-8",
                    crate::ingest::browser::PUBLISH_HTML,
                )
            }),
        )
        .route(
            "/publish.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    crate::ingest::browser::PUBLISH_JS,
                )
            }),
        )
        .route(
            crate::ingest::browser::SOCKET_PATH,
            get(crate::ingest::browser::socket),
        )
        .route(
            "/favicon.svg",
            get(|| async { asset("image/svg+xml", FAVICON_SVG) }),
        )
        .route(
            "/favicon.ico",
            get(|| async { asset("image/svg+xml", FAVICON_SVG) }),
        )
        .route("/ws", get(websocket))
        .route("/streams/{file}", get(stream_file))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/streams", get(streams).delete(forget_offline_streams))
        .route(
            "/api/streams/{id}",
            get(one_stream).delete(forget_offline_stream),
        )
        .route("/api/streams/{id}/net", get(stream_net))
        .route(
            "/api/streams/{id}/restream",
            get(crate::egress::restream::api_list)
                .post(crate::egress::restream::api_add)
                .delete(crate::egress::restream::api_remove),
        )
        .route(
            "/api/streams/{id}/record",
            get(recording_state).post(set_recording),
        )
        .route("/api/events", get(events))
        .route("/api/events/stream", get(events_stream))
        .route("/metrics", get(prometheus))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            require_token,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared.access),
            crate::access::web_guard::guard,
        ))
        .with_state(shared)
}

/// The token the request was let in with (empty when the hub needs none), for handlers whose
/// response lasts: they end it when the token file takes the right away.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestToken(pub(crate) String);

/// The token a request carries: `Authorization: Bearer`, the wall's cookie, or `?token=` (for
/// players that can only be given a URL).
fn request_token(request: &axum::extract::Request) -> String {
    let headers = request.headers();
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return bearer.trim().to_owned();
    }
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("vidcast_token="));
    if let Some(token) = cookie {
        return percent_decode(token);
    }
    request
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("token="))
        .map(percent_decode)
        .unwrap_or_default()
}

/// Decodes `%XX` and `+` (cookies, query strings, the sign-in form).
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// With tokens configured, everything but `/healthz` needs one; the page itself answers with a
/// sign-in form instead of an error.
///
/// Reading needs the view role; changing anything through the API (recording, restream
/// targets: POST, PUT, DELETE under `/api/`) needs the admin role. The token is handed on to
/// the handlers ([`RequestToken`]), so a socket or MJPEG response ends when it is revoked.
async fn require_token(
    State(shared): State<Arc<Shared>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let auth = &shared.access.auth;
    let token = request_token(&request);
    let path = request.uri().path().to_owned();
    let writes = !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    // The publisher's socket: its hello's token decides (slowed per address, as on the
    // ingest port), with the request's token standing in for an empty one.
    let public = matches!(path.as_str(), "/healthz" | "/favicon.ico" | "/favicon.svg");
    if !auth.is_enabled() || public || path == crate::ingest::browser::SOCKET_PATH {
        request.extensions_mut().insert(RequestToken(token));
        return next.run(request).await;
    }
    // Slowed per address like every token check (see `auth`).
    let peer = crate::access::web_guard::peer(&request);
    let checked = match crate::access::auth::check_web(&shared.access, peer, &token, "web") {
        // A publish-only token opens the publisher's page, nothing else.
        Err(_) if crate::ingest::browser::is_publish_path(&path) && auth.may_publish(&token) => {
            Ok(())
        }
        checked => checked,
    };
    let why = match checked {
        Ok(()) if writes && path.starts_with("/api/") && !auth.check_admin(&token) => {
            return (
                StatusCode::FORBIDDEN,
                "changing this needs a token with the admin role (--token, or `admin` in the token file)\n",
            )
                .into_response();
        }
        Ok(()) => {
            request.extensions_mut().insert(RequestToken(token));
            return next.run(request).await;
        }
        Err(why) => why,
    };
    if path == "/" || path == "/publish" {
        // A stale cookie (the token changed) is dropped, so reloads are not more guesses.
        let mut page = asset("text/html; charset=utf-8", LOGIN_HTML);
        page.headers_mut().insert(
            header::SET_COOKIE,
            header::HeaderValue::from_static(crate::access::web_guard::CLEAR_COOKIE),
        );
        return page;
    }
    (
        axum::http::StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"vidcast\"")],
        format!("{why}: Authorization: Bearer TOKEN (or ?token=TOKEN)\n"),
    )
        .into_response()
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
    let viewers = shared.viewing.counters.total();
    let max = shared.access.limits.max_viewers;
    (viewers >= max).then(|| {
        tracing::warn!("viewer refused: {viewers} viewers (--max-viewers {max})");
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("too many viewers ({viewers}, limit {max}); try again later\n"),
        )
            .into_response()
    })
}

async fn websocket(
    State(shared): State<Arc<Shared>>,
    Extension(RequestToken(token)): Extension<RequestToken>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Some(refusal) = viewer_limit_reached(&shared) {
        return refusal;
    }
    upgrade
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| wall::run(socket, shared, token))
}

async fn stream_file(
    State(shared): State<Arc<Shared>>,
    Extension(RequestToken(token)): Extension<RequestToken>,
    Path(file): Path<String>,
) -> Response {
    if file.ends_with(".mjpg") || file.ends_with(".mjpeg") {
        if let Some(refusal) = viewer_limit_reached(&shared) {
            return refusal;
        }
    }
    mjpeg::serve(&shared.viewing, &file, token).await
}

async fn streams(State(shared): State<Arc<Shared>>) -> Json<Vec<StreamListing>> {
    Json(listing::list(&shared, Include::RecordingAndRestream))
}

/// A stream named in a URL by its id or its name (`/api/streams/7`, `/streams/cam.mjpg`):
/// a key that is the id of a stream the hub knows means that stream, else the stream of that
/// name (names are unique among the hub's streams), so a stream named all in digits is
/// reached by name only while no stream has that number as its id.
pub(crate) struct StreamRef(pub(crate) crate::stream::registry::StreamId);

impl axum::extract::FromRequestParts<Arc<Shared>> for StreamRef {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        let Path(key) = Path::<String>::from_request_parts(parts, shared)
            .await
            .map_err(IntoResponse::into_response)?;
        shared
            .registry
            .resolve(&key)
            .map(StreamRef)
            .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no stream {key}\n")).into_response())
    }
}

/// `GET /api/streams/{id or name}`: one stream as `/api/streams` lists it.
async fn one_stream(State(shared): State<Arc<Shared>>, StreamRef(id): StreamRef) -> Response {
    let all = listing::list(&shared, Include::RecordingAndRestream);
    match all.into_iter().find(|s| s.stream.id == id) {
        Some(stream) => Json(stream).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no stream {id}\n")).into_response(),
    }
}

/// `DELETE /api/streams/{id or name}`: forgets an offline stream now (the wall's dismiss
/// button); 409 for a live one.
async fn forget_offline_stream(
    State(shared): State<Arc<Shared>>,
    StreamRef(id): StreamRef,
) -> Response {
    match shared.registry.forget_offline(id) {
        crate::stream::registry::Forget::Forgotten => {
            tracing::info!("offline stream {id} dismissed from the API");
            StatusCode::NO_CONTENT.into_response()
        }
        crate::stream::registry::Forget::NoSuchStream => {
            (StatusCode::NOT_FOUND, format!("no stream {id}\n")).into_response()
        }
        crate::stream::registry::Forget::Live => (
            StatusCode::CONFLICT,
            format!("stream {id} is live: only offline streams can be dismissed\n"),
        )
            .into_response(),
    }
}

/// `DELETE /api/streams`: forgets every offline stream now (the wall's "clear offline");
/// answers with how many, as `{"forgotten": n}`.
async fn forget_offline_streams(State(shared): State<Arc<Shared>>) -> Response {
    let forgotten = shared.registry.prune(u64::MAX);
    if forgotten > 0 {
        tracing::info!(
            "{} dismissed from the API",
            crate::human::plural(forgotten as u64, "offline stream")
        );
    }
    Json(serde_json::json!({ "forgotten": forgotten })).into_response()
}

/// The body of `POST /api/streams/{id}/record`.
#[derive(Debug, serde::Deserialize)]
struct RecordRequest {
    /// Record this stream (now, if live, and whenever it connects) or not.
    on: bool,
}

/// Recording needs `--record DIR`: without it there is nowhere to write.
fn not_recording() -> Response {
    (
        StatusCode::CONFLICT,
        "this hub does not record: start it with --record DIR\n",
    )
        .into_response()
}

async fn recording_state(State(shared): State<Arc<Shared>>, StreamRef(id): StreamRef) -> Response {
    let Some(recordings) = shared.recordings.as_deref() else {
        return not_recording();
    };
    let Some(info) = shared.registry.stream_info(id) else {
        return (StatusCode::NOT_FOUND, format!("no stream {id}\n")).into_response();
    };
    Json(recordings.snapshot(id, &info.name)).into_response()
}

/// Starts or stops recording a stream: `{"on": true}` or `{"on": false}`.
async fn set_recording(
    State(shared): State<Arc<Shared>>,
    StreamRef(id): StreamRef,
    Json(request): Json<RecordRequest>,
) -> Response {
    let Some(recordings) = shared.recordings.as_deref() else {
        return not_recording();
    };
    match recordings.set(id, request.on) {
        Some(state) => {
            tracing::info!(
                "recording of stream {id} turned {} from the API",
                if request.on { "on" } else { "off" }
            );
            Json(state).into_response()
        }
        None => (StatusCode::NOT_FOUND, format!("no stream {id}\n")).into_response(),
    }
}

/// One stream's network history: the hub's TCP_INFO samples and the publisher's reports, as
/// series for graphs (times in seconds before now, so the newest is near 0).
async fn stream_net(State(shared): State<Arc<Shared>>, StreamRef(id): StreamRef) -> Response {
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
                .event(event.kind.as_str())
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
        &listing::list(&shared, Include::RecordingAndRestream),
        &shared.viewing.counters,
        shared.registry.event_count(),
        shared.access.pending.len(),
        &shared.access.hits,
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
