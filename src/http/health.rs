//! `/healthz` (the process answers), `/readyz` (the database answers) and
//! `/metrics` (Prometheus text format; what it holds is [`crate::metrics`]'s).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

use super::AppState;
use crate::metrics::CONTENT_TYPE;

pub(super) async fn healthz() -> &'static str {
    "ok"
}

pub(super) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.engine.store().ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// Always answers: when the store does not, its series are left out and
/// the rest (the counters, the connections) is still there to graph.
pub(super) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let engine = &state.engine;
    let body = engine
        .metrics()
        .render(engine.store().as_ref(), engine.clock().now())
        .await;
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body)
}
