//! Only verified requests act (DESIGN 5): every bad request is refused
//! before the engine sees it, and nothing changes.

use tempadmin::sim::slack_sender;

use crate::support::*;

async fn post(
    app: &TestApp,
    path: &str,
    body: String,
    timestamp: Option<i64>,
    signature: Option<String>,
) -> u16 {
    let mut req = app
        .http
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(ts) = timestamp {
        req = req.header("x-slack-request-timestamp", ts.to_string());
    }
    if let Some(sig) = signature {
        req = req.header("x-slack-signature", sig);
    }
    req.body(body).send().await.unwrap().status().as_u16()
}

fn command(app: &TestApp, text: &str) -> String {
    slack_sender::command_body(ADA, text, &app.slack.response_url("x"))
}

async fn assert_nothing_happened(app: &TestApp) {
    app.settle().await;
    assert!(app.requests_of(ADA).await.is_empty());
    assert!(app.slack_calls().is_empty());
    assert!(app.jc.calls().is_empty());
}

#[tokio::test]
async fn missing_forged_and_stale_signatures_get_401() {
    let app = spawn_app().await;
    let body = command(&app, "20m");
    let now = app.now_unix();
    for path in ["/slack/commands", "/slack/interactions", "/slack/events"] {
        assert_eq!(
            post(&app, path, body.clone(), None, None).await,
            401,
            "{path} unsigned"
        );
        assert_eq!(post(&app, path, body.clone(), Some(now), None).await, 401);
        let forged = app.sign(now, "another body");
        assert_eq!(
            post(&app, path, body.clone(), Some(now), Some(forged)).await,
            401,
            "{path} forged"
        );
        let wrong_secret =
            tempadmin::slack::signature::SigningSecret::new("guess".to_string().into())
                .sign(now, body.as_bytes());
        assert_eq!(
            post(&app, path, body.clone(), Some(now), Some(wrong_secret)).await,
            401
        );
        for skew in [-301, 301] {
            let ts = now + skew;
            let sig = app.sign(ts, &body);
            assert_eq!(
                post(&app, path, body.clone(), Some(ts), Some(sig)).await,
                401,
                "{path} skew {skew}"
            );
        }
    }
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("tempadmin_rejected_requests_total{platform=\"slack\"} 18"),
        "{metrics}"
    );
    assert_nothing_happened(&app).await;
}

#[tokio::test]
async fn a_signature_within_five_minutes_is_accepted() {
    let app = spawn_app().await;
    let body = command(&app, "help");
    let ts = app.now_unix() - 299;
    let sig = app.sign(ts, &body);
    assert_eq!(
        post(&app, "/slack/commands", body, Some(ts), Some(sig)).await,
        200
    );
}

#[tokio::test]
async fn bodies_over_64_kib_get_413() {
    let app = spawn_app().await;
    let body = command(&app, &"x".repeat(65 * 1024));
    let now = app.now_unix();
    let sig = app.sign(now, &body);
    assert_eq!(
        post(&app, "/slack/commands", body, Some(now), Some(sig)).await,
        413
    );
    assert_nothing_happened(&app).await;
}

#[tokio::test]
async fn signed_but_malformed_bodies_get_400() {
    let app = spawn_app().await;
    let now = app.now_unix();
    let cases = [
        ("/slack/commands", "text=20m".to_string()),
        ("/slack/commands", "%%%".to_string()),
        ("/slack/interactions", "payload=not-json".to_string()),
        ("/slack/interactions", "nopayload=1".to_string()),
        (
            "/slack/interactions",
            slack_sender::click_body(
                GRACE,
                "tempadmin_approve",
                "'; DROP TABLE requests; --",
                "b",
                &app.slack.response_url("r"),
            ),
        ),
        ("/slack/events", "{".to_string()),
    ];
    for (path, body) in cases {
        let sig = app.sign(now, &body);
        assert_eq!(
            post(&app, path, body.clone(), Some(now), Some(sig)).await,
            400,
            "{path} {body}"
        );
    }
    assert_nothing_happened(&app).await;
}

#[tokio::test]
async fn the_events_url_verification_challenge_is_echoed() {
    let app = spawn_app().await;
    let body = r#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let now = app.now_unix();
    let response = app
        .http
        .post(app.url("/slack/events"))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", now.to_string())
        .header("x-slack-signature", app.sign(now, body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        json["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let get = |p: &str| app.http.get(app.url(p)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().text().await.unwrap(), "ready");
    app.pending_request("20m").await;
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("tempadmin_requests{state=\"pending_approval\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn slack_and_teams_traffic_are_counted_apart_by_platform() {
    let app = spawn_teams_app().await;
    let metrics = || async {
        let response = app.http.get(app.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    };
    assert_eq!(app.command(ADA, "help").await.0, 200);
    assert_eq!(app.teams_say("Lin", "20m").await, 200);
    app.settle().await;
    let id = app.teams_request_of("Lin").await.id.to_string();
    let (status, _) = app
        .teams_click(
            "Grace",
            "tempadmin_approve",
            serde_json::json!({ "request_id": id }),
        )
        .await;
    assert_eq!(status, 200);
    let unsigned = app
        .http
        .post(app.url("/teams/messages"))
        .json(&serde_json::json!({ "type": "message", "text": "20m" }))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);

    let text = metrics().await;
    for line in [
        "tempadmin_commands_total{platform=\"slack\"} 1",
        "tempadmin_commands_total{platform=\"teams\"} 1",
        "tempadmin_interactions_total{platform=\"slack\"} 0",
        "tempadmin_interactions_total{platform=\"teams\"} 1",
        "tempadmin_rejected_requests_total{platform=\"slack\"} 0",
        "tempadmin_rejected_requests_total{platform=\"teams\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }

    // A process that serves Slack alone has no Teams series.
    let slack_only = spawn_app().await;
    let response = slack_only
        .http
        .get(slack_only.url("/metrics"))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(text.contains("tempadmin_commands_total{platform=\"slack\"} 0"));
    assert!(!text.contains("platform=\"teams\""), "{text}");
}
