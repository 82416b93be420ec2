//! The bot's Home tab in Slack: opening it publishes the person's open and
//! recent requests (End now on an active one) and, for an approver, the
//! requests waiting for a decision; End now clicked there goes through the
//! same engine path as on the card and the tab is published again. The
//! events route checks signatures like the other Slack routes.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;
use tempadmin::domain::RequestState;
use tempadmin::sim::slack_sender::{self, Source};
use tempadmin::slack::signature::SigningSecret;

use crate::support::*;

fn secret() -> SigningSecret {
    SigningSecret::new(SecretString::from(SECRET))
}

/// Posts an Events API body to `/slack/events`, signed; status and body.
async fn post_event(app: &TestApp, body: String, retry: Option<u32>) -> (u16, String) {
    let response = slack_sender::post_signed_json(
        &app.http,
        &app.url("/slack/events"),
        &secret(),
        app.now_unix(),
        body,
        retry,
    )
    .await
    .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn next_event_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("Ev0HOME{n:06}")
}

/// Waits (up to a generous deadline, polling) until `user` has had
/// `count` views published; the newest one.
async fn published_view(app: &TestApp, user: &str, count: usize) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.published_to(user) < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no view number {count} for {user}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    app.slack.home_view(user).unwrap()
}

/// `user` opens the Home tab; the view published for it.
async fn open_home(app: &TestApp, user: &str) -> Value {
    let before = app.published_to(user);
    let event = slack_sender::app_home_opened(user, app.slack.home_view(user).as_ref());
    let body = slack_sender::event_callback_body(&Source::general(), &next_event_id(), event);
    let (status, answer) = post_event(app, body, None).await;
    assert_eq!((status, answer.as_str()), (200, ""));
    published_view(app, user, before + 1).await
}

/// The view's blocks, and every section's text.
fn sections(view: &Value) -> Vec<String> {
    view["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "section")
        .map(|b| b["text"]["text"].as_str().unwrap().to_string())
        .collect()
}

/// The `(action_id, value)` of every button in the view.
fn buttons(view: &Value) -> Vec<(String, String)> {
    view["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b.get("accessory"))
        .map(|a| {
            (
                a["action_id"].as_str().unwrap().to_string(),
                a["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_home_tab_shows_the_persons_open_and_recent_requests_with_end_now_on_the_active_one() {
    let app = spawn_app().await;
    let denied = app.pending_request("20m printer").await;
    assert_eq!(app.click(GRACE, "tempadmin_deny", &denied).await, 200);
    app.advance(Duration::from_secs(60)).await;
    let active = app.active_grant("1h driver").await;

    let view = open_home(&app, ADA).await;
    assert_eq!(view["type"], "home");
    let lines = sections(&view);
    assert_eq!(lines.len(), 2, "{lines:?}");
    // Newest first: the active grant, with its device, duration and end.
    assert!(
        lines[0].contains("*Active*") && lines[0].contains("`ada-mac`"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("1h") && lines[0].contains("until <!date^"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains(&active));
    assert!(
        lines[1].contains("*Denied*") && lines[1].contains("20m"),
        "{}",
        lines[1]
    );
    assert_eq!(buttons(&view), [("tempadmin_revoke".into(), active)]);
    assert!(
        !view.to_string().contains("Waiting for a decision"),
        "Ada approves nothing"
    );

    // Somebody without requests is told how to ask.
    let empty = open_home(&app, MALLORY).await;
    assert!(sections(&empty)[0].contains("You have no open request"));
    assert!(buttons(&empty).is_empty());
}

#[tokio::test]
async fn an_approver_sees_the_requests_waiting_for_a_decision_with_a_link_to_each_card() {
    let app = spawn_app().await;
    app.pending_request("20m <!channel> printer").await;
    let card = app.card();
    for approver in [GRACE, HOPPER] {
        let view = open_home(&app, approver).await;
        let text = view.to_string();
        assert!(text.contains("Waiting for a decision"), "{text}");
        let pending = sections(&view)
            .into_iter()
            .find(|s| s.contains("<@U0ADA> asks for *20m*"))
            .expect("Ada's request");
        // A link to the card's thread, where Approve and Deny count.
        let link = format!(
            "https://sim.slack.com/archives/{APPROVALS}/p{}",
            card.ts.replace('.', "")
        );
        assert!(pending.contains(&link), "{pending}");
        // The reason as text: no channel ping.
        assert!(pending.contains("&lt;!channel&gt; printer"), "{pending}");
        assert!(buttons(&view).is_empty(), "decisions are taken on the card");
    }
    // The requester does not see her own request as one to decide.
    let own = open_home(&app, ADA).await;
    assert!(!own.to_string().contains("Waiting for a decision"));
    // Both Slack calls of the Home tab are counted like every other.
    let metrics = app.metrics_text().await;
    for method in ["views.publish", "chat.getPermalink"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("tempadmin_outbound_calls_total")
                    && l.contains(&format!("endpoint=\"{method}\""))
                    && l.contains("outcome=\"2xx\"")),
            "{method} not counted:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn end_now_from_the_home_tab_ends_the_grant_and_publishes_the_tab_again() {
    let app = spawn_app().await;
    let id = app.active_grant("20m").await;
    let view = open_home(&app, ADA).await;
    let published = app.published_to(ADA);
    let body =
        slack_sender::home_click_body(&Source::general(), ADA, "tempadmin_revoke", &id, &view);
    let status = slack_sender::post_signed(
        &app.http,
        &app.url("/slack/interactions"),
        &secret(),
        app.now_unix(),
        body,
    )
    .await
    .unwrap()
    .status();
    assert_eq!(status, 200);
    let refreshed = published_view(&app, ADA, published + 1).await;
    assert!(buttons(&refreshed).is_empty(), "{refreshed}");
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert_eq!(app.jc_ops(), ["add", "remove"]);
    assert!(app
        .thread()
        .iter()
        .any(|t| t.contains("Ended early by <@U0ADA>")));
    let later = open_home(&app, ADA).await;
    assert!(sections(&later)[0].contains("*Over*"), "{later}");
}

#[tokio::test]
async fn end_now_from_someone_elses_home_tab_is_refused_like_anywhere_else() {
    let app = spawn_app().await;
    let id = app.active_grant("20m").await;
    let view = open_home(&app, MALLORY).await;
    let body =
        slack_sender::home_click_body(&Source::general(), MALLORY, "tempadmin_revoke", &id, &view);
    slack_sender::post_signed(
        &app.http,
        &app.url("/slack/interactions"),
        &secret(),
        app.now_unix(),
        body,
    )
    .await
    .unwrap();
    published_view(&app, MALLORY, 2).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
    assert!(app
        .audit_actions()
        .await
        .contains(&"click_refused".to_string()));
}

#[tokio::test]
async fn the_events_route_answers_slacks_url_check_and_refuses_a_bad_signature() {
    let app = spawn_app().await;
    let (status, answer) =
        post_event(&app, slack_sender::url_verification_body("3eZbrw1aB"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap(),
        serde_json::json!({ "challenge": "3eZbrw1aB" })
    );

    let body = slack_sender::event_callback_body(
        &Source::general(),
        &next_event_id(),
        slack_sender::app_home_opened(ADA, None),
    );
    let forged = app
        .http
        .post(app.url("/slack/events"))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", app.now_unix().to_string())
        .header(
            "x-slack-signature",
            app.sign(app.now_unix(), "something else"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    // A challenge is only answered when signed, too.
    let unsigned = app
        .http
        .post(app.url("/slack/events"))
        .header("content-type", "application/json")
        .body(slack_sender::url_verification_body("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    // Nothing was published: a signed opening afterwards is the first view.
    open_home(&app, MALLORY).await;
    assert_eq!(app.published_to(ADA), 0);
}

#[tokio::test]
async fn a_retried_event_publishes_once_and_another_workspaces_event_publishes_nothing() {
    let app = spawn_app().await;
    let event_id = next_event_id();
    let body = slack_sender::event_callback_body(
        &Source::general(),
        &event_id,
        slack_sender::app_home_opened(ADA, None),
    );
    assert_eq!(post_event(&app, body.clone(), None).await.0, 200);
    published_view(&app, ADA, 1).await;
    // Slack's answer waits for the handling: once the copy is answered,
    // it has been recognised.
    assert_eq!(post_event(&app, body, Some(1)).await.0, 200);
    assert_eq!(app.published_to(ADA), 1, "the copy published nothing");
    let other = Source {
        team: "T0OTHER".into(),
        ..Source::general()
    };
    let foreign = slack_sender::event_callback_body(
        &other,
        &next_event_id(),
        slack_sender::app_home_opened(ADA, None),
    );
    assert_eq!(post_event(&app, foreign, None).await.0, 200);
    assert_eq!(
        app.published_to(ADA),
        1,
        "another workspace's event publishes nothing"
    );
}
