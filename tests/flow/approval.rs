//! The approval flow from `/tempadmin` to restoration.

use std::time::Duration;

use tempadmin::domain::RequestState;

use crate::support::*;

const MIN: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_request_is_approved_elevated_counted_down_and_restored_on_time() {
    let app = spawn_app().await;
    let answer = app.ask(ADA, "20m install printer driver").await;
    assert!(
        answer.contains("Checking your JumpCloud account"),
        "{answer}"
    );
    assert!(
        app.slack.messages().is_empty(),
        "nothing is posted before the look-ups"
    );

    app.settle().await;
    let card = app.card();
    let blocks = card.blocks.to_string();
    assert!(blocks.contains("tempadmin_approve") && blocks.contains("tempadmin_deny"));
    assert!(
        blocks.contains("ada-mac")
            && blocks.contains("macOS, online")
            && blocks.contains("install printer driver")
    );
    assert!(app.private_answers("cmd-U0ADA")[0].contains("went to the approvers"));

    let id = app.request_of(ADA).await.id.to_string();
    assert_eq!(app.click(GRACE, "tempadmin_approve", &id).await, 200);
    app.settle().await;
    let r = app.request_of(ADA).await;
    assert_eq!(r.state(), RequestState::Active);
    assert_eq!(
        r.expires_at().unwrap() - r.elevated_at().unwrap(),
        chrono::TimeDelta::minutes(20)
    );
    assert_eq!(
        app.jc_ops(),
        ["add"],
        "the group-only binding gets a direct one"
    );
    assert!(app.jc.is_admin(JC_ADA, LAPTOP));
    let write = app.jc.writes()[0].clone();
    assert_eq!(write.body.unwrap()["attributes"]["sudo"]["enabled"], true);
    assert_eq!(write.api_key.as_deref(), Some("jc-test-key"));
    assert_eq!(write.org_id.as_deref(), Some("org-test"));
    let live = app.card();
    assert!(
        live.blocks.to_string().contains("tempadmin_revoke"),
        "End now is offered"
    );
    assert!(!live.blocks.to_string().contains("tempadmin_approve"));

    app.advance(4 * MIN).await;
    assert!(
        !app.thread().iter().any(|t| t.contains("left")),
        "no reminder before its mark"
    );
    app.advance(MIN).await;
    assert!(app.thread().last().unwrap().contains("15m left"));
    app.advance(10 * MIN).await;
    assert!(app.thread().last().unwrap().contains("5m left"));
    app.advance(4 * MIN).await;
    assert!(app.thread().last().unwrap().contains("1m left"));
    assert!(
        app.jc.is_admin(JC_ADA, LAPTOP),
        "still admin one minute before expiry"
    );

    app.advance(MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert_eq!(app.jc_ops(), ["add", "remove"]);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
    assert_eq!(app.jc.direct_binding(JC_ADA, LAPTOP), None);

    let thread = app.thread();
    assert!(thread[0].contains("Approved by <@U0GRACE>"), "{thread:?}");
    assert!(
        thread[1].contains("is admin on `ada-mac` until"),
        "{thread:?}"
    );
    assert!(thread.last().unwrap().contains("Time is up"), "{thread:?}");
    let ended = app.card();
    assert!(ended.blocks.to_string().contains("Ended at"));
    assert!(!ended.blocks.to_string().contains("tempadmin_revoke"));
    let dms = app.direct_messages();
    assert!(dms.iter().any(|m| m.contains("You are admin on")));
    assert!(dms.last().unwrap().contains("have ended"));
    assert_eq!(
        app.audit_actions().await,
        [
            "requested",
            "sent_to_approvers",
            "approved",
            "prior_state_recorded",
            "elevated",
            "expired",
            "restored"
        ]
    );
}

#[tokio::test]
async fn a_member_of_an_approver_group_can_approve() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    app.click(HOPPER, "tempadmin_approve", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
    assert!(app.thread()[0].contains("Approved by <@U0HOPPER>"));
}

#[tokio::test]
async fn non_approvers_and_the_requester_cannot_decide() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    assert_eq!(app.click(MALLORY, "tempadmin_approve", &id).await, 200);
    assert_eq!(app.click(ADA, "tempadmin_approve", &id).await, 200);
    assert_eq!(app.click(MALLORY, "tempadmin_deny", &id).await, 200);
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::PendingApproval);
    assert!(app.jc_ops().is_empty());
    let mallory = app.private_answers("click-U0MALLORY");
    assert_eq!(mallory.len(), 2);
    assert!(mallory.iter().all(|t| t.contains("Only approvers")));
    assert!(app.private_answers("click-U0ADA")[0].contains("can't decide your own request"));
    let refused = app
        .audit_actions()
        .await
        .iter()
        .filter(|a| *a == "click_refused")
        .count();
    assert_eq!(refused, 3, "refused clicks are audited");
}

#[tokio::test]
async fn a_denied_request_changes_nothing_and_tells_the_requester() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    app.click(GRACE, "tempadmin_deny", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Denied);
    assert!(app.jc_ops().is_empty());
    assert!(app.thread()[0].contains("Denied by <@U0GRACE>"));
    assert!(app.direct_messages()[0].contains("denied your request"));
    let card = app.card().blocks.to_string();
    assert!(!card.contains("tempadmin_approve") && card.contains("Denied by"));
    // A late approval changes nothing.
    app.click(HOPPER, "tempadmin_approve", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Denied);
    assert!(app.private_answers("click-U0HOPPER")[0].contains("already denied"));
}

#[tokio::test]
async fn a_request_nobody_decides_expires_after_the_approval_timeout() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    app.advance(Duration::from_secs(29 * 60)).await;
    assert_eq!(app.state_of(ADA).await, RequestState::PendingApproval);
    app.advance(MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::TimedOut);
    assert!(!app.card().blocks.to_string().contains("tempadmin_approve"));
    // After the approvers' reminder halfway (tests/flow/approver_reminder.rs).
    assert!(app.thread().last().unwrap().contains("Nobody decided"));
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::TimedOut);
    assert!(app.jc_ops().is_empty());
}

#[tokio::test]
async fn twenty_concurrent_approvals_lead_to_exactly_one_elevation() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    let clicks = (0..20).map(|i| {
        let who = if i % 2 == 0 { GRACE } else { HOPPER };
        app.click(who, "tempadmin_approve", &id)
    });
    let statuses = futures::future::join_all(clicks).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    app.settle().await;
    assert_eq!(app.jc_ops(), ["add"]);
    let approvals = app
        .audit_actions()
        .await
        .iter()
        .filter(|a| *a == "approved")
        .count();
    assert_eq!(approvals, 1);
    let approved_replies = app
        .thread()
        .iter()
        .filter(|t| t.contains("Approved by"))
        .count();
    assert_eq!(approved_replies, 1);
}

#[tokio::test]
async fn end_now_restores_at_once_for_the_requester_but_not_for_others() {
    let app = spawn_app().await;
    let id = app.active_grant("1h").await;
    app.click(MALLORY, "tempadmin_revoke", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
    assert!(app.private_answers("click-U0MALLORY")[0].contains("Only the requester or an approver"));

    app.click(ADA, "tempadmin_revoke", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert_eq!(app.jc_ops(), ["add", "remove"]);
    assert!(app
        .thread()
        .last()
        .unwrap()
        .contains("Ended early by <@U0ADA>"));
    assert!(app
        .card()
        .blocks
        .to_string()
        .contains("ended early by <@U0ADA>"));
    // Reminders of an ended grant never fire.
    app.advance(Duration::from_secs(3600)).await;
    assert!(!app.thread().iter().any(|t| t.contains("left for")));
}

#[tokio::test]
async fn an_approver_can_end_a_grant_early() {
    let app = spawn_app().await;
    let id = app.active_grant("1h").await;
    app.click(HOPPER, "tempadmin_revoke", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
}

#[tokio::test]
async fn slash_revoke_ends_the_grant_and_status_shows_it_first() {
    let app = spawn_app().await;
    app.active_grant("1h").await;
    let status = app.ask(ADA, "status").await;
    assert!(
        status.contains("active on `ada-mac`") && status.contains("until"),
        "{status}"
    );
    let answer = app.ask(ADA, "revoke").await;
    assert!(
        answer.contains("Ending your admin rights on `ada-mac`"),
        "{answer}"
    );
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
    assert!(app.ask(ADA, "revoke").await.contains("no active elevation"));
    assert!(app.ask(ADA, "status").await.contains("no open requests"));
}

#[tokio::test]
async fn slash_revoke_withdraws_a_pending_request() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    assert!(app.ask(ADA, "revoke").await.contains("Withdrew request"));
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Cancelled);
    assert!(app.card().blocks.to_string().contains("Withdrawn"));
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    assert!(app.jc_ops().is_empty());
}

/// Ada's second Slack identity (another workspace of the grid, say), listed
/// as an approver through the approvers' group: her profile email differs
/// from her first identity's only in case, and JumpCloud finds the same
/// account by it.
const ADA_AGAIN: &str = "U0ADA2";

#[tokio::test]
async fn an_approver_cannot_approve_a_request_for_their_own_jumpcloud_account() {
    let app = spawn_app().await;
    app.slack
        .add_user(ADA_AGAIN, "ada.lovelace", Some("Ada@Example.com"));
    app.slack.add_usergroup("S0ADMINS", &[HOPPER, ADA_AGAIN]);
    let id = app.pending_request("20m printer").await;
    assert_eq!(app.click(ADA_AGAIN, "tempadmin_approve", &id).await, 200);
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::PendingApproval);
    assert!(app.jc.writes().is_empty(), "nothing elevated");
    let refusal = app.private_answers("click-U0ADA2").pop().unwrap();
    assert!(
        refusal.contains("your own JumpCloud account"),
        "the approver is told why: {refusal}"
    );
    assert!(
        !refusal.contains("printer") && !refusal.contains("ada-mac"),
        "{refusal}"
    );
    // Somebody else still can.
    app.click(HOPPER, "tempadmin_approve", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
}

#[tokio::test]
async fn an_approver_without_an_email_decides_nothing() {
    let app = spawn_app().await;
    app.slack.add_user(HOPPER, "hopper", None);
    let id = app.pending_request("20m printer").await;
    app.click(HOPPER, "tempadmin_deny", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::PendingApproval);
    let refusal = app.private_answers("click-U0HOPPER").pop().unwrap();
    assert!(refusal.contains("no email"), "{refusal}");
}
