//! `/metrics`: what an operator graphs, recorded where it happens, read
//! through a strict reader of the exposition format, and the Grafana
//! dashboard in manifests/ asking only for series the binary exports.

use std::time::Duration;

use serde_json::Value;
use tempadmin::domain::RequestState;
use tempadmin::sim::jumpcloud::Failure;

use super::exposition::{self, Exposition};
use super::support::*;

const SEC: Duration = Duration::from_secs(1);
const ASSOCIATIONS: &str = "POST /api/v2/systems/{id}/associations";

async fn scrape(app: &TestApp) -> Exposition {
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    exposition::parse(&response.text().await.unwrap())
}

/// The count in the lag histogram's bucket `le` for `cause`.
fn lag_bucket(m: &Exposition, cause: &str, le: f64) -> f64 {
    let found: Vec<f64> = m
        .samples
        .iter()
        .filter(|s| s.name == "tempadmin_revocation_lag_seconds_bucket")
        .filter(|s| s.labels.get("cause").map(String::as_str) == Some(cause))
        .filter(|s| s.labels["le"].parse::<f64>().ok() == Some(le))
        .map(|s| s.value)
        .collect();
    assert_eq!(found.len(), 1, "one bucket le={le} for {cause}");
    found[0]
}

fn calls(m: &Exposition, service: &str, endpoint: &str, outcome: &str) -> f64 {
    m.value(
        "tempadmin_outbound_calls_total",
        &[
            ("endpoint", endpoint),
            ("outcome", outcome),
            ("service", service),
        ],
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn a_grant_that_expires_is_counted_in_the_lag_histogram_from_its_end() {
    let app = spawn_app().await;
    app.active_grant("20m").await;
    let before = scrape(&app).await;
    assert_eq!(
        before.value(
            "tempadmin_revocation_lag_seconds_count",
            &[("cause", "expired")]
        ),
        None,
        "nothing has ended yet"
    );

    // The revocation is due at the grant's end; the scheduler only gets to
    // run a minute later.
    app.advance(21 * 60 * SEC).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);

    let m = scrape(&app).await;
    let expired = [("cause", "expired")];
    assert_eq!(
        m.value("tempadmin_revocation_lag_seconds_count", &expired),
        Some(1.0)
    );
    assert_eq!(
        m.value("tempadmin_revocation_lag_seconds_sum", &expired),
        Some(60.0)
    );
    assert_eq!(lag_bucket(&m, "expired", 30.0), 0.0);
    assert_eq!(lag_bucket(&m, "expired", 60.0), 1.0);
    assert_eq!(
        m.value("tempadmin_requests", &[("state", "ended")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("tempadmin_requests", &[("state", "active")]),
        Some(0.0)
    );
}

#[tokio::test]
async fn end_now_counts_its_lag_from_the_click_through_a_jumpcloud_5xx() {
    let app = spawn_app().await;
    let id = app.active_grant("20m").await;
    app.advance(5 * 60 * SEC).await;
    app.fail_writes(
        1,
        Failure::Status {
            status: 503,
            retry_after: None,
        },
    );
    assert_eq!(app.click(ADA, "tempadmin_revoke", &id).await, 200);
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Revoking);
    let m = scrape(&app).await;
    assert_eq!(calls(&m, "jumpcloud", ASSOCIATIONS, "5xx"), 1.0);
    assert_eq!(
        m.value(
            "tempadmin_revocation_lag_seconds_count",
            &[("cause", "ended_early")]
        ),
        None,
        "not confirmed yet"
    );

    app.advance(2 * SEC).await; // the first retry
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    let m = scrape(&app).await;
    let early = [("cause", "ended_early")];
    assert_eq!(
        m.value("tempadmin_revocation_lag_seconds_count", &early),
        Some(1.0)
    );
    // From the click, not from the retry (0 s) nor the grant's end (ahead).
    assert_eq!(
        m.value("tempadmin_revocation_lag_seconds_sum", &early),
        Some(2.0)
    );
    // The elevation and the restoration that went through.
    assert_eq!(calls(&m, "jumpcloud", ASSOCIATIONS, "2xx"), 2.0);
    assert_eq!(calls(&m, "jumpcloud", ASSOCIATIONS, "5xx"), 1.0);
}

#[tokio::test]
async fn jumpcloud_answers_are_counted_by_outcome_on_their_endpoint_family() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    let m = scrape(&app).await;
    assert!(calls(&m, "jumpcloud", "GET /api/systemusers", "2xx") >= 1.0);
    assert!(calls(&m, "slack", "chat.postMessage", "2xx") >= 1.0);
    app.fail_writes(
        1,
        Failure::Status {
            status: 429,
            retry_after: Some(3),
        },
    );
    app.fail_writes(
        1,
        Failure::Status {
            status: 500,
            retry_after: None,
        },
    );
    assert_eq!(app.click(GRACE, "tempadmin_approve", &id).await, 200);
    app.settle().await;
    for _ in 0..4 {
        app.advance(10 * SEC).await;
    }
    assert_eq!(app.state_of(ADA).await, RequestState::Active);

    let m = scrape(&app).await;
    assert_eq!(calls(&m, "jumpcloud", ASSOCIATIONS, "429"), 1.0);
    assert_eq!(calls(&m, "jumpcloud", ASSOCIATIONS, "5xx"), 1.0);
    assert_eq!(calls(&m, "jumpcloud", ASSOCIATIONS, "2xx"), 1.0);
    // No id ever becomes a label value.
    for sample in &m.samples {
        for value in sample.labels.values() {
            assert!(
                !value.contains(LAPTOP) && !value.contains(JC_ADA) && !value.contains(&id),
                "an id in {sample:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_queues_show_what_is_due_and_how_long_the_oldest_has_waited() {
    let app = spawn_app().await;
    let (status, _) = app.command(ADA, "20m").await;
    assert_eq!(status, 200);
    // Nobody runs the queue for half a minute.
    app.clock.advance(30 * SEC);
    let m = scrape(&app).await;
    let depth = |m: &Exposition, queue, kind, status| {
        m.value(
            "tempadmin_queue_depth",
            &[("kind", kind), ("queue", queue), ("status", status)],
        )
    };
    let age = |m: &Exposition, queue, kind| {
        m.value(
            "tempadmin_queue_oldest_due_age_seconds",
            &[("kind", kind), ("queue", queue)],
        )
    };
    assert_eq!(depth(&m, "jobs", "resolve", "due"), Some(1.0));
    assert_eq!(age(&m, "jobs", "resolve"), Some(30.0));
    assert_eq!(
        depth(&m, "jobs", "revoke", "due"),
        Some(0.0),
        "zero, not absent"
    );
    assert_eq!(depth(&m, "outbox", "approval_card", "due"), Some(0.0));
    assert_eq!(
        m.value("tempadmin_requests", &[("state", "resolving")]),
        Some(1.0)
    );

    app.settle().await;
    let m = scrape(&app).await;
    assert_eq!(depth(&m, "jobs", "resolve", "due"), Some(0.0));
    assert_eq!(age(&m, "jobs", "resolve"), Some(0.0));
    assert_eq!(
        depth(&m, "jobs", "approval_timeout", "scheduled"),
        Some(1.0)
    );
    assert_eq!(depth(&m, "outbox", "approval_card", "due"), Some(0.0));
    assert_eq!(
        m.value("tempadmin_requests", &[("state", "pending_approval")]),
        Some(1.0)
    );
}

/// Every identifier in a PromQL expression that names one of ours.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            if word.starts_with("tempadmin_") {
                names.push(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
    names
}

fn exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (key, v) in fields {
                match (key.as_str(), v) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_dashboard_asks_only_for_series_the_binary_exports() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/grafana/tempadmin-dashboard.json"
    );
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables
            .iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "a Prometheus datasource variable"
    );
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 10, "{queries:?}");

    // A flow that makes every family record something.
    let app = spawn_app().await;
    let id = app.active_grant("20m").await;
    assert_eq!(app.click(ADA, "tempadmin_revoke", &id).await, 200);
    app.settle().await;
    let exported = scrape(&app).await.names();

    for expr in &queries {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "`{expr}` names no series of ours");
        for name in names {
            assert!(
                exported.contains(&name),
                "`{name}` (in `{expr}`) is not exported: {exported:?}"
            );
        }
    }
}
