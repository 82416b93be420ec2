//! More time on an active grant (DESIGN flow 9, issue 14 item 7): asked
//! with the Extend button or `/tempadmin extend`, decided by approvers with
//! Approve and Deny on the approval card, within `policy.max_duration`
//! from the first elevation, and durable across a restart.

use std::time::Duration;

use chrono::TimeDelta;
use serde_json::{json, Value};
use tempadmin::domain::RequestState;
use tempadmin::engine::ports::Clock;
use tempadmin::sim::teams_sender;

use crate::support::*;

const MIN: Duration = Duration::from_secs(60);

fn action_ids(blocks: &Value) -> Vec<String> {
    blocks
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["action_id"].as_str().map(str::to_string))
        .collect()
}

/// How many of `texts` say `mark` ("5m left", not within "15m left").
fn count(texts: &[String], mark: &str) -> usize {
    let mark = format!(" {mark}");
    texts.iter().filter(|t| t.contains(&mark)).count()
}

#[tokio::test]
async fn an_approved_extension_moves_the_revocation_and_the_reminders_to_the_new_end() {
    let app = spawn_app().await;
    let id = app.active_grant("20m").await;
    let first_end = app.request_of(ADA).await.expires_at().unwrap();

    // The grant's direct message carries the Extend button.
    let grant_dm = app
        .slack
        .messages()
        .into_iter()
        .find(|m| m.text.contains("You are admin on"))
        .expect("the grant's direct message");
    assert_eq!(action_ids(&grant_dm.blocks), ["tempadmin_extend"]);
    assert_eq!(app.click(ADA, "tempadmin_extend", &id).await, 200);
    app.settle().await;
    // The default: 30m, well under what is left of the 4h.
    let card = app.card();
    assert_eq!(
        action_ids(&card.blocks),
        ["tempadmin_approve", "tempadmin_deny", "tempadmin_revoke"]
    );
    assert!(card.blocks.to_string().contains("asks for *30m* more"));
    assert!(app.thread().last().unwrap().contains("asks for *30m* more"));
    assert!(app
        .direct_messages()
        .last()
        .unwrap()
        .contains("Asked the approvers for 30m more"));

    assert_eq!(app.click(GRACE, "tempadmin_approve", &id).await, 200);
    app.settle().await;
    let r = app.request_of(ADA).await;
    assert_eq!(r.state(), RequestState::Active);
    assert_eq!(r.expires_at(), Some(first_end + TimeDelta::minutes(30)));
    assert_eq!(action_ids(&app.card().blocks), ["tempadmin_revoke"]);
    assert!(
        app.thread()
            .last()
            .unwrap()
            .contains("Extension of 30m approved by <@U0GRACE>"),
        "{:?}",
        app.thread()
    );

    // Past the old end: still admin, and no countdown toward the old end.
    app.advance(21 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
    assert!(app.jc.is_admin(JC_ADA, LAPTOP));
    assert_eq!(app.jc_ops(), ["add"]);
    let thread = app.thread();
    assert_eq!(count(&thread, "5m left"), 0, "{thread:?}");
    assert_eq!(count(&thread, "1m left"), 0, "{thread:?}");

    app.advance(14 * MIN).await; // 35m in: 15m left
    assert!(app.thread().last().unwrap().contains("15m left"));
    app.advance(14 * MIN).await; // 49m in: 1m left
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
    app.advance(MIN).await;
    let r = app.request_of(ADA).await;
    assert_eq!(r.state(), RequestState::Ended);
    assert_eq!(r.ended_at(), r.expires_at());
    assert_eq!(app.jc_ops(), ["add", "remove"]);
    let thread = app.thread();
    for mark in ["15m left", "5m left", "1m left"] {
        assert_eq!(count(&thread, mark), 1, "{mark}: {thread:?}");
    }
    let actions = app.audit_actions().await;
    assert!(actions.contains(&"extension_requested".to_string()));
    assert!(actions.contains(&"extension_approved".to_string()));
}

#[tokio::test]
async fn a_denied_extension_leaves_the_end_where_it_was() {
    let app = spawn_app().await;
    let id = app.active_grant("20m").await;
    let end = app.request_of(ADA).await.expires_at();
    let answer = app.ask(ADA, "extend 10m").await;
    assert!(
        answer.contains("Asked the approvers for 10m more"),
        "{answer}"
    );
    app.settle().await;
    assert_eq!(app.click(GRACE, "tempadmin_deny", &id).await, 200);
    app.settle().await;
    assert_eq!(app.request_of(ADA).await.expires_at(), end);
    assert!(app
        .thread()
        .last()
        .unwrap()
        .contains("Extension denied by <@U0GRACE>"));
    assert!(app
        .direct_messages()
        .last()
        .unwrap()
        .contains("denied more time"));
    app.advance(20 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert_eq!(app.jc_ops(), ["add", "remove"]);
    assert!(app
        .audit_actions()
        .await
        .contains(&"extension_denied".to_string()));
}

#[tokio::test]
async fn an_extension_past_the_maximum_is_refused_at_once_and_nothing_reaches_the_approvers() {
    let app = spawn_app().await;
    app.active_grant("20m").await;
    let before = (app.card().history.len(), app.thread().len());
    let answer = app.ask(ADA, "extend 4h").await;
    assert!(answer.contains("limit of 4h"), "{answer}");
    assert!(answer.contains("3h40m is left"), "{answer}");
    app.settle().await;
    assert_eq!(
        (app.card().history.len(), app.thread().len()),
        before,
        "the approvers saw nothing"
    );
    assert!(!app
        .audit_actions()
        .await
        .contains(&"extension_requested".to_string()));
}

#[tokio::test]
async fn an_extension_approved_just_before_a_restart_is_honoured_after_it() {
    let mut app = spawn_app().await;
    let id = app.active_grant("20m").await;
    let first_end = app.request_of(ADA).await.expires_at().unwrap();
    app.ask(ADA, "extend 15m").await;
    assert_eq!(app.click(GRACE, "tempadmin_approve", &id).await, 200);
    // The process goes down right after the approval was recorded; none
    // of the jobs or messages it queued ran.
    app.restart().await;
    app.advance(25 * MIN).await;
    let r = app.request_of(ADA).await;
    assert!(app.clock.now() > first_end);
    assert_eq!(
        r.state(),
        RequestState::Active,
        "honoured after the restart"
    );
    assert_eq!(r.expires_at(), Some(first_end + TimeDelta::minutes(15)));
    assert!(app.jc.is_admin(JC_ADA, LAPTOP));
    app.advance(10 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert_eq!(app.jc_ops(), ["add", "remove"]);
}

#[tokio::test]
async fn the_requester_cannot_approve_their_own_extension() {
    let app = spawn_app().await;
    let id = app.active_grant("20m").await;
    let end = app.request_of(ADA).await.expires_at();
    app.ask(ADA, "extend 10m").await;
    app.settle().await;
    assert_eq!(app.click(ADA, "tempadmin_approve", &id).await, 200);
    app.settle().await;
    assert!(
        app.private_answers("click-U0ADA")[0].contains("can't decide your own request"),
        "{:?}",
        app.private_answers("click-U0ADA")
    );
    let r = app.request_of(ADA).await;
    assert_eq!(r.expires_at(), end);
    assert!(matches!(
        r.stage,
        tempadmin::domain::Stage::Active(ref a) if a.extension.is_some()
    ));
}

#[tokio::test]
async fn concurrent_approvals_of_an_extension_make_one_decision() {
    let app = spawn_app().await;
    let id = app.active_grant("20m").await;
    let end = app.request_of(ADA).await.expires_at().unwrap();
    app.ask(ADA, "extend 10m").await;
    app.settle().await;
    let clicks = (0..10).map(|i| {
        let who = if i % 2 == 0 { GRACE } else { HOPPER };
        let action = if i % 3 == 0 {
            "tempadmin_deny"
        } else {
            "tempadmin_approve"
        };
        app.click(who, action, &id)
    });
    let statuses = futures::future::join_all(clicks).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    app.settle().await;
    let actions = app.audit_actions().await;
    let decisions = actions
        .iter()
        .filter(|a| *a == "extension_approved" || *a == "extension_denied")
        .count();
    assert_eq!(decisions, 1, "{actions:?}");
    let r = app.request_of(ADA).await;
    let moved = r.expires_at().unwrap() - end;
    assert!(
        moved == TimeDelta::zero() || moved == TimeDelta::minutes(10),
        "moved once at most: {moved}"
    );
}

#[tokio::test]
async fn a_teams_extension_is_asked_with_the_button_and_approved_on_the_card() {
    let app = spawn_teams_app().await;
    app.teams_say("Ada", "tempadmin 20m install printer driver")
        .await;
    app.settle().await;
    let id = app.teams_request_of("Ada").await.id.to_string();
    app.teams_click("Grace", "tempadmin_approve", json!({ "request_id": id }))
        .await;
    app.settle().await;
    let first_end = app.teams_request_of("Ada").await.expires_at().unwrap();

    // Typed, past the limit: refused at once, in Ada's chat.
    let thread_before = app.teams_thread().len();
    app.teams_say("Ada", "tempadmin extend 4h").await;
    app.settle().await;
    let refused = app.teams_dms("Ada").last().unwrap().clone();
    assert!(refused.contains("limit of 4h"), "{refused}");
    assert_eq!(
        app.teams_thread().len(),
        thread_before,
        "approvers saw nothing"
    );

    // The grant's direct message is a card with Extend.
    let chat = app.teams_chat_of("Ada");
    let grant = app
        .bf()
        .activities()
        .into_iter()
        .find(|a| {
            a.conversation_id == chat
                && a.activity["attachments"][0]["content"]["actions"][0]["verb"]
                    == "tempadmin_extend"
        })
        .expect("the grant's card with Extend");
    let content = &grant.activity["attachments"][0]["content"];
    assert_eq!(content["actions"][0]["data"]["request_id"], id.as_str());
    let mut click = teams_sender::card_action(
        &app.bf().service_url(),
        &chat,
        &grant.id,
        &teams_person("Ada"),
        "tempadmin_extend",
        json!({ "request_id": id }),
        app.clock.now(),
    );
    click["id"] = json!(format!("f:{}", next_activity_id()));
    let (status, answer) = app.teams_post(&click).await;
    assert_eq!(status, 200);
    assert_eq!(answer["statusCode"], 200, "{answer}");
    app.settle().await;
    assert!(app
        .teams_thread()
        .last()
        .unwrap()
        .contains("asks for **30m** more"));

    // Ada cannot approve it herself; Grace can.
    app.teams_click("Ada", "tempadmin_approve", json!({ "request_id": id }))
        .await;
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.expires_at(),
        Some(first_end)
    );
    app.teams_click("Grace", "tempadmin_approve", json!({ "request_id": id }))
        .await;
    app.settle().await;
    let r = app.teams_request_of("Ada").await;
    assert_eq!(r.expires_at(), Some(first_end + TimeDelta::minutes(30)));
    assert!(app
        .teams_thread()
        .last()
        .unwrap()
        .contains("Extension of 30m approved by Grace Hopper"));
    app.advance(21 * MIN).await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::Active
    );
    app.advance(30 * MIN).await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::Ended
    );
    assert_eq!(app.jc_ops(), ["add", "remove"]);
}
