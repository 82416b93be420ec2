//! Approvers who did not answer: halfway to `policy.approval_timeout`, one
//! reply in the request's thread names them (Slack: mentions of the people
//! and user groups; Teams: their names), and nothing when somebody decided
//! first.

use std::time::Duration;

use serde_json::json;
use tempadmin::domain::{ApprovalReminder, RequestState};
use tempadmin::sim::teams::APPROVALS_CONVERSATION;

use crate::support::*;

const MIN: Duration = Duration::from_secs(60);

#[tokio::test]
async fn halfway_to_the_timeout_the_thread_names_the_approvers_once() {
    let app = spawn_app().await;
    app.pending_request("20m printer").await;
    app.advance(14 * MIN).await;
    assert!(app.thread().is_empty(), "not before halfway");
    app.advance(MIN).await;
    let thread = app.slack.thread(APPROVALS, &app.card().ts);
    assert_eq!(thread.len(), 1, "{thread:?}");
    let reminder = &thread[0].text;
    // Grace by her user id, Hopper's group S0ADMINS as a user-group mention.
    assert!(
        reminder.starts_with(":hourglass_flowing_sand: <@U0GRACE> <!subteam^S0ADMINS>:"),
        "{reminder}"
    );
    assert!(reminder.contains("<@U0ADA>'s request") && reminder.contains("`ada-mac`"));
    assert_eq!(thread[0].thread_ts.as_deref(), Some(app.card().ts.as_str()));
    // Nothing more until the request expires; then the timeout's own reply.
    app.advance(14 * MIN).await;
    assert_eq!(app.thread().len(), 1);
    app.advance(MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::TimedOut);
    let thread = app.thread();
    assert_eq!(thread.len(), 2);
    assert!(thread[1].contains("Nobody decided"));
    let reminded = app.audit_actions().await;
    assert_eq!(
        reminded
            .iter()
            .filter(|a| *a == "approvers_reminded")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_request_decided_before_halfway_gets_no_reminder() {
    let app = spawn_app().await;
    let id = app.pending_request("20m printer").await;
    app.advance(5 * MIN).await;
    assert_eq!(app.click(GRACE, "tempadmin_approve", &id).await, 200);
    app.settle().await;
    app.advance(20 * MIN).await;
    assert!(
        !app.thread().iter().any(|t| t.contains("still waiting")),
        "{:?}",
        app.thread()
    );
}

#[tokio::test]
async fn a_reminder_turned_off_or_set_to_a_duration_follows_the_policy() {
    let off = spawn_app_with(|p| p.approval_reminder = ApprovalReminder::Off).await;
    off.pending_request("20m").await;
    off.advance(29 * MIN).await;
    assert!(off.thread().is_empty());

    let early = spawn_app_with(|p| p.approval_reminder = ApprovalReminder::After(d("5m"))).await;
    early.pending_request("20m").await;
    early.advance(5 * MIN).await;
    assert_eq!(early.thread().len(), 1);
    assert!(early.thread()[0].contains("still waiting"));
}

#[tokio::test]
async fn a_teams_request_gets_its_reminder_in_the_cards_thread_naming_the_approvers() {
    let app = spawn_teams_app().await;
    assert_eq!(app.teams_say("Ada", "20m printer").await, 200);
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::PendingApproval
    );
    app.advance(15 * MIN).await;
    let card = app.teams_card();
    let thread = app.bf().thread(APPROVALS_CONVERSATION, &card.id);
    assert_eq!(thread.len(), 1, "{thread:?}");
    let text = thread[0].activity["text"].as_str().unwrap();
    // Grace is configured by email, Hopper by object id.
    assert!(
        text.contains("Grace@Example\\.com and 1 more approver:"),
        "{text}"
    );
    assert!(text.contains("still waiting for a decision"), "{text}");
    // Decided afterwards: the reminder was the only one.
    let id = app.teams_request_of("Ada").await.id.to_string();
    app.teams_click("Grace", "tempadmin_approve", json!({ "request_id": id }))
        .await;
    app.advance(20 * MIN).await;
    let reminders = app
        .teams_thread()
        .iter()
        .filter(|t| t.contains("still waiting"))
        .count();
    assert_eq!(reminders, 1);
}
