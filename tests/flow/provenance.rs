//! What a signed Slack payload must also be to act: delivered once, from
//! our app in our workspace, decisions from the approvals channel and from
//! today's approvers; and what the bot sends back goes only to Slack.

use serde_json::Value;
use tempadmin::app::App;
use tempadmin::domain::RequestState;
use tempadmin::engine::ports::Clock;
use tempadmin::sim::jumpcloud::FakeJumpCloud;
use tempadmin::sim::slack::FakeSlack;
use tempadmin::sim::slack_sender::{self, Source};
use tempadmin::store::Database;

use crate::support::*;

/// Posts `body` signed now to `path`; the status and the JSON answer.
async fn post_signed(app: &TestApp, path: &str, body: &str) -> (u16, Value) {
    let response = app
        .http
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", app.now_unix().to_string())
        .header("x-slack-signature", app.sign(app.now_unix(), body))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn elsewhere(team: &str, app: &str, channel: &str) -> Source {
    Source {
        team: team.into(),
        app: app.into(),
        channel: channel.into(),
    }
}

#[tokio::test]
async fn a_replayed_slash_command_creates_one_request_and_one_card() {
    let app = spawn_app().await;
    let body = slack_sender::command_body(ADA, "20m printer", &app.slack.response_url("cmd"));
    let (status, first) = post_signed(&app, "/slack/commands", &body).await;
    assert_eq!(status, 200);
    assert!(
        first["text"].as_str().unwrap().contains("Checking"),
        "{first}"
    );
    app.clock.advance(std::time::Duration::from_secs(120));
    // The very same bytes and headers, still inside the 5-minute window.
    let signed_then = app.now_unix() - 120;
    let replay = app
        .http
        .post(app.url("/slack/commands"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", signed_then.to_string())
        .header("x-slack-signature", app.sign(signed_then, &body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 200);
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["response_type"], "ephemeral");
    the_copy_made_nothing(&app, &replay).await;
}

#[tokio::test]
async fn two_commands_typed_alike_are_two_deliveries_and_both_answered() {
    let app = spawn_app().await;
    let first = app.ask(ADA, "status").await;
    let second = app.ask(ADA, "status").await;
    assert_eq!(first, second, "Slack gives each its own trigger_id");
    assert!(!second.contains("Already received"), "{second}");
}

#[tokio::test]
async fn a_replayed_click_is_not_acted_on_again() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    let body = slack_sender::click_body(
        GRACE,
        "tempadmin_deny",
        &id,
        "block",
        &app.slack.response_url("click-GRACE"),
    );
    assert_eq!(post_signed(&app, "/slack/interactions", &body).await.0, 200);
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Denied);
    let audit = app.audit_actions().await;
    assert_eq!(post_signed(&app, "/slack/interactions", &body).await.0, 200);
    app.settle().await;
    assert_eq!(app.audit_actions().await, audit, "not even a refusal");
    assert!(app.private_answers("click-GRACE").is_empty());
}

#[tokio::test]
async fn commands_from_another_workspace_or_app_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    for from in [
        elsewhere("T0OTHER", "A0TEMPADMIN", "C0GENERAL"),
        elsewhere("T0SIM", "A0IMPOSTOR", "C0GENERAL"),
    ] {
        let body =
            slack_sender::command_body_from(&from, ADA, "20m", &app.slack.response_url("cmd"));
        let (status, answer) = post_signed(&app, "/slack/commands", &body).await;
        assert_eq!(status, 200, "{from:?}");
        assert_eq!(answer["response_type"], "ephemeral");
        assert!(
            answer["text"]
                .as_str()
                .unwrap()
                .contains("not set up for this workspace"),
            "{answer}"
        );
    }
    app.settle().await;
    assert!(app.requests_of(ADA).await.is_empty());
    assert!(app.slack_calls().is_empty(), "{:?}", app.slack_calls());
    assert!(app.jc.calls().is_empty());
}

#[tokio::test]
async fn the_listed_workspaces_of_an_enterprise_grid_are_ours_too() {
    let app =
        spawn_app_configured(|c| c.slack.as_mut().unwrap().team_ids = vec!["T0GRID2".into()]).await;
    let from = elsewhere("T0GRID2", "A0TEMPADMIN", "C0GENERAL");
    let body = slack_sender::command_body_from(&from, ADA, "20m", &app.slack.response_url("cmd"));
    let (_, answer) = post_signed(&app, "/slack/commands", &body).await;
    assert!(
        answer["text"].as_str().unwrap().contains("Checking"),
        "{answer}"
    );
}

#[tokio::test]
async fn decisions_from_another_workspace_app_or_channel_change_nothing() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    let audit = app.audit_actions().await;
    for (from, action) in [
        (
            elsewhere("T0SIM", "A0TEMPADMIN", "C0ELSEWHERE"),
            "tempadmin_approve",
        ),
        (
            elsewhere("T0SIM", "A0TEMPADMIN", "D0GRACE"),
            "tempadmin_deny",
        ),
        (
            elsewhere("T0OTHER", "A0TEMPADMIN", APPROVALS),
            "tempadmin_approve",
        ),
        (
            elsewhere("T0SIM", "A0IMPOSTOR", APPROVALS),
            "tempadmin_approve",
        ),
    ] {
        let body = slack_sender::click_body_from(
            &from,
            GRACE,
            action,
            &id,
            "block",
            &app.slack.response_url("click-GRACE"),
        );
        assert_eq!(post_signed(&app, "/slack/interactions", &body).await.0, 200);
    }
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::PendingApproval);
    assert_eq!(app.audit_actions().await, audit);
    assert!(app.jc.writes().is_empty());
    // The same click from the approvals channel counts.
    assert_eq!(app.click(GRACE, "tempadmin_approve", &id).await, 200);
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
}

#[tokio::test]
async fn a_member_removed_from_the_approvers_group_is_refused_at_once() {
    let app = spawn_app().await;
    let (first, _, _) = app.add_person(1);
    app.ask(&first, "20m").await;
    app.settle().await;
    let id = app.request_of(&first).await.id.to_string();
    assert_eq!(app.click(HOPPER, "tempadmin_approve", &id).await, 200);
    app.settle().await;
    assert_eq!(app.state_of(&first).await, RequestState::Active);

    app.slack.add_usergroup("S0ADMINS", &[]);
    let id = app.pending_request("20m").await;
    assert_eq!(app.click(HOPPER, "tempadmin_approve", &id).await, 200);
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::PendingApproval);
    let answers = app.private_answers("click-U0HOPPER").join("\n");
    assert!(answers.contains("Only approvers"), "{answers}");
}

#[tokio::test]
async fn a_group_that_fails_to_resolve_does_not_hide_a_member_of_another() {
    let app = spawn_app_configured(|c| {
        c.slack.as_mut().unwrap().api.approvers =
            vec![GRACE.into(), "S0GONE".into(), "S0ADMINS".into()];
    })
    .await;
    let id = app.pending_request("20m").await;
    // Nobody in any group that answered, and one did not: unknown, not "no".
    assert_eq!(app.click(MALLORY, "tempadmin_approve", &id).await, 200);
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::PendingApproval);
    let answers = app.private_answers("click-U0MALLORY").join("\n");
    assert!(answers.contains("Slack did not answer"), "{answers}");

    assert_eq!(app.click(HOPPER, "tempadmin_approve", &id).await, 200);
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
}

#[tokio::test]
async fn a_response_url_on_another_host_is_never_called() {
    let app = spawn_app().await;
    let other = FakeSlack::start("xoxb-other").await;
    let body = slack_sender::command_body(ADA, "20m", &other.response_url("stolen"));
    assert_eq!(post_signed(&app, "/slack/commands", &body).await.0, 400);
    let id = app.pending_request("20m").await;
    let body = slack_sender::click_body(
        MALLORY,
        "tempadmin_approve",
        &id,
        "block",
        &other.response_url("stolen"),
    );
    assert_eq!(post_signed(&app, "/slack/interactions", &body).await.0, 400);
    app.settle().await;
    assert!(other.calls().is_empty(), "{:?}", other.calls());
    assert_eq!(app.requests_of(ADA).await.len(), 1);
    assert_eq!(app.state_of(ADA).await, RequestState::PendingApproval);
}

#[tokio::test]
async fn a_redirect_from_slack_is_not_followed_and_the_token_stays_home() {
    let app = spawn_app().await;
    let other = FakeSlack::start(&app.slack.bot_token()).await;
    app.slack
        .redirect_next(302, &format!("{}chat.postMessage", other.api_url()));
    app.ask(ADA, "20m").await;
    app.settle().await;
    assert!(other.calls().is_empty(), "{:?}", other.calls());
    assert!(app.cards().is_empty());
}

#[tokio::test]
async fn start_up_with_a_token_slack_refuses_fails_with_a_clear_message() {
    let slack = FakeSlack::start("xoxb-the-right-one").await;
    let jc = FakeJumpCloud::start("jc-key").await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = tempadmin::sim::config(
        &slack,
        &jc,
        format!("sqlite://{}", dir.path().join("t.db").display()),
        vec![GRACE.into()],
        Default::default(),
        std::time::Duration::from_secs(2),
    );
    config.slack.as_mut().unwrap().api.bot_token = "xoxb-revoked-secret".to_string().into();
    let clock = std::sync::Arc::new(tempadmin::engine::clock::ManualClock::new(
        chrono::Utc::now(),
    ));
    let err = match App::build(&config, clock).await {
        Ok(_) => panic!("start-up went ahead with a refused token"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("SLACK_BOT_TOKEN") && err.contains("invalid_auth"),
        "{err}"
    );
    assert!(!err.contains("xoxb-revoked-secret"), "{err}");
}

#[tokio::test]
async fn reasons_reach_the_card_as_literal_text() {
    let app = spawn_app().await;
    let reason = "<!channel> *bold* <http://x|y> :boom:";
    app.pending_request(&format!("20m {reason}")).await;
    let card = app.card();
    let blocks = card.blocks.as_array().unwrap();
    let shown = blocks
        .iter()
        .map(|b| &b["text"])
        .find(|t| {
            t["text"]
                .as_str()
                .is_some_and(|s| s.starts_with("Reason: "))
        })
        .expect("a reason block");
    assert_eq!(shown["type"], "plain_text", "no formatting: {shown}");
    assert_eq!(shown["emoji"], false, "no emoji codes: {shown}");
    assert_eq!(
        shown["text"],
        "Reason: &lt;!channel&gt; *bold* &lt;http://x|y&gt; :boom:"
    );
    // Nowhere else on the card can the reason be read as mrkdwn.
    let mut mrkdwn = Vec::new();
    collect_mrkdwn(&card.blocks, &mut mrkdwn);
    assert!(!mrkdwn.is_empty());
    for object in mrkdwn {
        assert_eq!(object["verbatim"], true, "{object}");
        let text = object["text"].as_str().unwrap();
        assert!(
            !text.contains("*bold*") && !text.contains("<!channel>"),
            "{text}"
        );
    }
}

fn collect_mrkdwn<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("mrkdwn") {
                out.push(value);
            }
            map.values().for_each(|v| collect_mrkdwn(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_mrkdwn(v, out)),
        _ => {}
    }
}

/// Posts `body` to `path` with a given timestamp and signature header.
async fn post_with(app: &TestApp, path: &str, body: &str, sent: i64, signature: &str) -> Value {
    let response = app
        .http
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", sent.to_string())
        .header("x-slack-signature", signature)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap_or(Value::Null)
}

/// A copy of Ada's one command was answered "Already received", and she
/// has one request and one card.
async fn the_copy_made_nothing(app: &TestApp, replay: &Value) {
    assert!(
        replay["text"]
            .as_str()
            .unwrap()
            .contains("Already received"),
        "{replay}"
    );
    app.settle().await;
    assert_eq!(app.requests_of(ADA).await.len(), 1);
    assert_eq!(app.cards().len(), 1);
}

#[tokio::test]
async fn a_replay_with_the_signature_in_upper_case_creates_no_second_request() {
    let app = spawn_app().await;
    let body = slack_sender::command_body(ADA, "20m printer", &app.slack.response_url("cmd"));
    let sent = app.now_unix();
    let signature = app.sign(sent, &body);
    post_with(&app, "/slack/commands", &body, sent, &signature).await;
    let upper = format!("v0={}", signature["v0=".len()..].to_uppercase());
    assert_ne!(upper, signature);
    let replay = post_with(&app, "/slack/commands", &body, sent, &upper).await;
    the_copy_made_nothing(&app, &replay).await;
}

#[tokio::test]
async fn a_replay_in_the_last_second_of_the_window_creates_no_second_request() {
    let app = spawn_app().await;
    let body = slack_sender::command_body(ADA, "20m printer", &app.slack.response_url("cmd"));
    let sent = app.now_unix();
    let signature = app.sign(sent, &body);
    post_with(&app, "/slack/commands", &body, sent, &signature).await;
    app.settle().await;
    // 300.9 s after the signed timestamp: still accepted by the signature
    // check, which counts whole seconds; the delivery must still be known.
    let since_signing = app.clock.now() - chrono::DateTime::from_timestamp(sent, 0).unwrap();
    let to_edge = chrono::TimeDelta::milliseconds(300_900) - since_signing;
    app.clock.advance(to_edge.to_std().unwrap());
    let replay = post_with(&app, "/slack/commands", &body, sent, &signature).await;
    the_copy_made_nothing(&app, &replay).await;
}

#[tokio::test]
async fn a_click_replayed_in_the_last_second_of_the_window_is_not_acted_on() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    let body = slack_sender::click_body(
        GRACE,
        "tempadmin_deny",
        &id,
        "block",
        &app.slack.response_url("click-GRACE"),
    );
    let sent = app.now_unix();
    let signature = app.sign(sent, &body);
    post_with(&app, "/slack/interactions", &body, sent, &signature).await;
    app.settle().await;
    let audit = app.audit_actions().await;
    let since_signing = app.clock.now() - chrono::DateTime::from_timestamp(sent, 0).unwrap();
    let to_edge = chrono::TimeDelta::milliseconds(300_900) - since_signing;
    // The store prunes what it remembers on every click; a click by
    // someone else at the edge triggers that prune before the replay.
    app.clock.advance(to_edge.to_std().unwrap());
    app.click(HOPPER, "tempadmin_approve", &id).await;
    app.settle().await;
    let audit = {
        let mut with_hopper = audit;
        with_hopper.push("click_refused".into());
        with_hopper
    };
    assert_eq!(app.audit_actions().await, audit);
    post_with(&app, "/slack/interactions", &body, sent, &signature).await;
    app.settle().await;
    assert_eq!(app.audit_actions().await, audit, "not even a refusal");
}

#[tokio::test]
async fn help_status_and_refusals_write_nothing_to_the_database() {
    let app = spawn_app().await;
    let Database::Sqlite(sqlite) = &app.database else {
        panic!("the flow tests run on SQLite");
    };
    let before = sqlite.writes();
    for text in ["help", "status", "", "soon printer", "20s too short"] {
        let (status, answer) = app.command(ADA, text).await;
        assert_eq!(status, 200, "{text}: {answer}");
        assert_eq!(answer["response_type"], "ephemeral", "{text}: {answer}");
    }
    assert_eq!(sqlite.writes(), before, "no write for read-only commands");
    app.ask(ADA, "20m printer").await;
    assert_eq!(sqlite.writes(), before + 1, "a new request is one write");
}

#[tokio::test]
async fn a_click_on_an_unknown_request_is_answered_with_nothing() {
    let app = spawn_app().await;
    app.pending_request("20m printer driver").await;
    let before = app.audit_actions().await;
    for action in ["tempadmin_approve", "tempadmin_revoke"] {
        assert_eq!(app.click(GRACE, action, "ta-abcdefghij").await, 200);
    }
    app.settle().await;
    assert!(app.private_answers("click-").is_empty());
    assert_eq!(app.audit_actions().await, before);
}
