//! The restream API: `GET/POST/DELETE /api/streams/{id}/restream`, with the refusals' logging.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tracing::{info, warn};

use super::check::checked_addrs;
use super::{check_target_text, PushView, TargetView, UrlTemplate};
use crate::access::budget::{LimitHits, RateLog};
use crate::stream::registry::StreamId;

/// Body of `POST /api/streams/{id}/restream`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct AddTarget {
    /// `rtmp://HOST[:PORT]/APP/STREAM`; `{name}` is replaced by the stream's name.
    url: String,
}

/// The stream's name, if the hub knows the stream.
fn stream_name(shared: &crate::server::Shared, id: StreamId) -> Option<String> {
    shared.registry.stream_info(id).map(|info| info.name)
}

fn no_stream(id: StreamId) -> Response {
    (StatusCode::NOT_FOUND, format!("no stream {id}\n")).into_response()
}

/// `GET /api/streams/{id}/restream`: where the stream is pushed (targets for every stream
/// included).
pub(crate) async fn api_list(
    State(shared): State<Arc<crate::server::Shared>>,
    crate::serve::http::StreamRef(id): crate::serve::http::StreamRef,
) -> Response {
    match stream_name(&shared, id) {
        Some(name) => Json(shared.restream.for_stream(id, &name)).into_response(),
        None => no_stream(id),
    }
}

/// Refused API targets log at most this often.
static API_REFUSED_LOG: RateLog = RateLog::new(crate::access::budget::LOG_EVERY);

/// `POST /api/streams/{id}/restream {"url": …}`: push this stream there too (while it is
/// live, reconnecting like `--restream`). 201 with the target; 400 for a bad or forbidden
/// address (see [`ip_problem`]; host names are resolved now and again at each connect);
/// 429 over `--max-restream-per-stream` or `--max-restream-targets`.
pub(crate) async fn api_add(
    State(shared): State<Arc<crate::server::Shared>>,
    crate::serve::http::StreamRef(id): crate::serve::http::StreamRef,
    Json(body): Json<AddTarget>,
) -> Response {
    let Some(name) = stream_name(&shared, id) else {
        return no_stream(id);
    };
    let template = match UrlTemplate::parse(&body.url) {
        Ok(t) => t,
        Err(e) => {
            let text = format!("{e} (expected rtmp://HOST[:PORT]/APP/STREAM)\n");
            return (StatusCode::BAD_REQUEST, text).into_response();
        }
    };
    let allow_private = shared.restream_allow_private;
    let rtmp_url = template.for_stream(id.get(), &name);
    let checked = match check_target_text(&rtmp_url, &body.url) {
        Ok(_) => checked_addrs(&rtmp_url, allow_private).await.map(|_| ()),
        Err(why) => Err(why),
    };
    if let Err(why) = checked {
        LimitHits::hit(&shared.access.hits.restream_refused);
        if let Some(more) = API_REFUSED_LOG.allow(Instant::now()) {
            warn!(
                "restream target \"{}\" for \"{name}\" refused: {}; {more} more refusals since the last line",
                vidcast_proto::log_safe(&body.url),
                vidcast_proto::log_safe(&why)
            );
        }
        let text = format!("{why}\n");
        return (StatusCode::BAD_REQUEST, text).into_response();
    }
    let url = rtmp_url.to_string();
    let limits = &shared.access.limits;
    let target = match shared
        .restream
        .add_for_stream(template, id, allow_private, limits)
    {
        Ok(target) => target,
        Err(why) => {
            LimitHits::hit(&shared.access.hits.restream_refused);
            if let Some(more) = API_REFUSED_LOG.allow(Instant::now()) {
                warn!("restream target for \"{name}\" refused: {why}; {more} more refusals since the last line");
            }
            return (StatusCode::TOO_MANY_REQUESTS, format!("{why}\n")).into_response();
        }
    };
    info!("restream \"{name}\" → {url}: added through the API (target {target})");
    let view = TargetView {
        id: target,
        stream_id: id,
        url,
        status: PushView::default(),
    };
    (StatusCode::CREATED, Json(view)).into_response()
}

/// `DELETE /api/streams/{id}/restream`: stop the pushes added for this stream through the
/// API (`--restream` targets stay). Answers how many were removed.
pub(crate) async fn api_remove(
    State(shared): State<Arc<crate::server::Shared>>,
    crate::serve::http::StreamRef(id): crate::serve::http::StreamRef,
) -> Response {
    let Some(name) = stream_name(&shared, id) else {
        return no_stream(id);
    };
    let removed = shared.restream.remove_for_stream(id);
    info!("restream \"{name}\": {removed} API targets removed");
    Json(serde_json::json!({ "removed": removed })).into_response()
}
