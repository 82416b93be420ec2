//! `/healthz` (the process answers), `/readyz` (the database answers) and
//! `/metrics` (Prometheus text format): requests by state, inbound traffic
//! by chat platform (`platform="slack"` or `"teams"`), and connections.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

use super::{ApiError, AppState, PlatformCounters};

/// Picks one counter out of a platform's.
type Field = fn(&PlatformCounters) -> &AtomicU64;

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
    // Only the platforms this process serves get a series.
    let platforms: Vec<(&str, &PlatformCounters)> = [
        ("slack", state.slack.is_some(), &c.slack),
        ("teams", state.teams.is_some(), &c.teams),
    ]
    .into_iter()
    .filter(|(_, served, _)| *served)
    .map(|(platform, _, counters)| (platform, counters))
    .collect();
    let families: [(&str, &str, Field); 3] = [
        (
            "tempadmin_commands_total",
            "Commands handled (Slack slash commands, messages to the bot in Teams).",
            |p| &p.commands,
        ),
        (
            "tempadmin_interactions_total",
            "Button clicks handled.",
            |p| &p.interactions,
        ),
        (
            "tempadmin_rejected_requests_total",
            "Requests refused for their Slack signature or Teams token.",
            |p| &p.rejected,
        ),
    ];
    for (name, help, field) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (platform, counters) in &platforms {
            let _ = writeln!(
                out,
                "{name}{{platform=\"{platform}\"}} {}",
                field(counters).load(Ordering::Relaxed)
            );
        }
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
