//! `/healthz` (the process answers), `/readyz` (the database answers) and
//! `/metrics` (Prometheus text format).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

use super::{ApiError, AppState};

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

pub(super) async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let mut out = String::new();
    out.push_str("# HELP tempadmin_requests Requests by state.\n# TYPE tempadmin_requests gauge\n");
    for (s, n) in state.engine.store().count_by_state().await? {
        let _ = writeln!(out, "tempadmin_requests{{state=\"{}\"}} {n}", s.as_str());
    }
    let c = &state.counters;
    for (name, help, value) in [
        (
            "tempadmin_slack_commands_total",
            "Slash commands handled.",
            &c.commands,
        ),
        (
            "tempadmin_slack_interactions_total",
            "Button clicks handled.",
            &c.interactions,
        ),
        (
            "tempadmin_slack_rejected_signatures_total",
            "Slack requests refused for their signature.",
            &c.rejected_signatures,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            value.load(Ordering::Relaxed)
        );
    }
    for (name, help, value) in [
        (
            "tempadmin_http_connections_open",
            "Inbound connections open on listen.",
            c.open_connections.load(Ordering::Relaxed),
        ),
        (
            "tempadmin_http_connections_max",
            "The cap on inbound connections (http.max_connections).",
            c.max_connections,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
