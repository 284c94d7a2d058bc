//! The hub's HTTP side: the JSON API (the web wall comes in its own issue).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::registry::{StreamEvent, StreamSnapshot};
use crate::server::Shared;

/// Routes: `/healthz`, `/api/streams`, `/api/events`.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/streams", get(streams))
        .route("/api/events", get(events))
        .with_state(shared)
}

async fn streams(State(shared): State<Arc<Shared>>) -> Json<Vec<StreamSnapshot>> {
    Json(shared.registry.snapshot(shared.clock.now_us()))
}

async fn events(State(shared): State<Arc<Shared>>) -> Json<Vec<StreamEvent>> {
    Json(shared.registry.events())
}
