//! `grant_mode = "access_request"`: JumpCloud's own temporary elevation,
//! with two clocks, JumpCloud's expiry and the bot's revocation job.
//! Whichever fires first ends the grant, and the audit says which.

use std::time::Duration;

use serde_json::{json, Value};
use tempadmin::domain::{AuditAction, RequestState};
use tempadmin::jumpcloud::GrantMode;
use tempadmin::sim::jumpcloud::Failure;

use crate::support::*;

const MIN: Duration = Duration::from_secs(60);

/// The usual app in access-request mode; the fake JumpCloud's expiry clock
/// is the test's manual clock.
async fn spawn_access_app() -> TestApp {
    let app = spawn_app_configured(|c| c.grant_mode = GrantMode::AccessRequest).await;
    app.jc.use_clock(app.clock.clone());
    app
}

/// The detail of Ada's one `restored` audit line.
async fn restored_detail(app: &TestApp) -> Value {
    let entries = app.engine.store().audit_since(None).await.unwrap();
    let restored: Vec<_> = entries
        .into_iter()
        .filter(|e| e.action == AuditAction::Restored)
        .collect();
    assert_eq!(restored.len(), 1, "{restored:?}");
    restored[0].detail.clone()
}

fn access_calls(app: &TestApp) -> Vec<String> {
    app.jc
        .calls()
        .into_iter()
        .filter(|c| c.path.starts_with("/api/v2/accessrequests"))
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}

#[tokio::test]
async fn jumpclouds_expiry_is_the_grants_end_and_the_rights_end_there() {
    let app = spawn_access_app().await;
    let id = app.active_grant("20m").await;
    let r = app.request_of(ADA).await;
    let [access] = app.jc.access_requests().try_into().unwrap();
    assert_eq!(
        Some(access.expiry),
        r.expires_at(),
        "JumpCloud holds the grant's end"
    );
    assert_eq!(
        (access.requestor.as_str(), access.resource.as_str()),
        (JC_ADA, LAPTOP)
    );
    assert_eq!(access.remarks, id, "the request id, never the reason");
    assert!(app.jc.is_admin(JC_ADA, LAPTOP));
    assert!(app.jc_ops().is_empty(), "no binding is changed");

    app.advance(19 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
    assert!(app.jc.is_admin(JC_ADA, LAPTOP));
    app.advance(MIN).await;
    // Both clocks fire at the end; JumpCloud's expiry has passed when the
    // bot looks, so the bot records that JumpCloud ended it.
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
    assert_eq!(app.jc.access_requests()[0].state, "expired");
    let detail = restored_detail(&app).await;
    assert_eq!(detail["ended_by_jumpcloud"], true, "{detail}");
    assert!(
        app.thread().iter().any(|t| t.contains("JumpCloud ended")),
        "{:?}",
        app.thread()
    );
}

#[tokio::test]
async fn the_bots_clock_revokes_when_it_fires_first() {
    let app = spawn_access_app().await;
    app.active_grant("20m").await;
    // JumpCloud holds a later expiry than the bot (set from outside).
    let access = app.jc.access_requests().remove(0);
    let later = access.expiry + chrono::TimeDelta::hours(1);
    let answer = reqwest::Client::new()
        .put(format!(
            "{}/api/v2/accessrequests/{}",
            app.jc.url(),
            access.id
        ))
        .header("x-api-key", app.jc.api_key())
        .json(&json!({ "expiry": later.to_rfc3339_opts(chrono::SecondsFormat::Millis, true) }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);

    app.advance(20 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
    assert_eq!(app.jc.access_requests()[0].state, "revoked");
    let revoke = format!("POST /api/v2/accessrequests/{}/revoke", access.id);
    assert!(
        access_calls(&app).contains(&revoke),
        "{:?}",
        access_calls(&app)
    );
    let detail = restored_detail(&app).await;
    assert_eq!(detail["revoked"], true, "{detail}");
    assert_eq!(detail["cause"], "expired");
    assert!(app.thread().iter().any(|t| t.contains("Time is up")));
}

#[tokio::test]
async fn end_now_revokes_the_access_request() {
    let app = spawn_access_app().await;
    let id = app.active_grant("20m").await;
    assert_eq!(app.click(ADA, "tempadmin_revoke", &id).await, 200);
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert_eq!(app.jc.access_requests()[0].state, "revoked");
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
    assert_eq!(restored_detail(&app).await["cause"], "ended_early");
}

#[tokio::test]
async fn jumpclouds_clock_ends_a_grant_whose_bot_never_came_back() {
    let app = spawn_access_app().await;
    app.active_grant("20m").await;
    let calls = app.jc.calls().len();
    // The bot is gone for good: nothing runs its jobs any more.
    app.clock.advance(20 * MIN - Duration::from_secs(1));
    assert!(app.jc.is_admin(JC_ADA, LAPTOP));
    app.clock.advance(Duration::from_secs(1));
    assert!(
        !app.jc.is_admin(JC_ADA, LAPTOP),
        "JumpCloud restored the previous setting by itself"
    );
    assert_eq!(app.jc.access_requests()[0].state, "expired");
    assert_eq!(app.jc.calls().len(), calls, "with no call from the bot");
}

#[tokio::test]
async fn a_restart_after_jumpcloud_ended_it_reconciles_quietly() {
    let mut app = spawn_access_app().await;
    app.active_grant("20m").await;
    // Down for two hours; JumpCloud's clock ended the access meanwhile.
    app.clock.advance(Duration::from_secs(7200));
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
    app.restart().await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    let detail = restored_detail(&app).await;
    assert_eq!(detail["ended_by_jumpcloud"], true, "{detail}");
    assert_eq!(detail["access_state"], "expired");
    assert!(
        !app.audit_actions()
            .await
            .contains(&"restore_failing".to_string()),
        "no failing-revocation noise"
    );
    let thread = app.thread();
    assert!(
        thread.iter().any(|t| t.contains("JumpCloud ended")),
        "{thread:?}"
    );
    assert!(
        !thread.iter().any(|t| t.contains("Could not restore")),
        "{thread:?}"
    );
    assert!(
        !access_calls(&app).iter().any(|c| c.ends_with("/revoke")),
        "nothing left to revoke: {:?}",
        access_calls(&app)
    );
}

#[tokio::test]
async fn a_refusal_by_jumpcloud_elevates_nothing_and_is_said() {
    let app = spawn_access_app().await;
    let id = app.pending_request("20m").await;
    app.jc.fail_next(
        "POST",
        "/api/v2/accessrequests",
        1,
        Failure::Status {
            status: 400,
            retry_after: None,
        },
    );
    assert_eq!(app.click(GRACE, "tempadmin_approve", &id).await, 200);
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
    assert!(app.jc.access_requests().is_empty());
    assert!(
        app.thread()
            .iter()
            .any(|t| t.contains("JumpCloud did not apply")),
        "{:?}",
        app.thread()
    );
    assert!(
        app.direct_messages()
            .iter()
            .any(|t| t.contains("JumpCloud did not apply")),
        "{:?}",
        app.direct_messages()
    );
}

#[tokio::test]
async fn todays_facts_are_checked_before_any_access_request() {
    use tempadmin::sim::jumpcloud::SimUser;
    let ada = |sudo: bool, suspended: bool| SimUser {
        id: JC_ADA.into(),
        email: "ada@example.com".into(),
        username: "ada".into(),
        sudo,
        suspended,
    };
    // Suspended between asking and approval: not granted, nothing asked of JumpCloud.
    let app = spawn_access_app().await;
    let id = app.pending_request("20m").await;
    app.jc.add_user(ada(false, true));
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    assert!(app
        .audit_actions()
        .await
        .contains(&"not_granted".to_string()));
    assert!(app.jc.access_requests().is_empty());

    // Admin everywhere meanwhile: nothing to elevate, so no access request,
    // and nothing taken away at the end.
    let app = spawn_access_app().await;
    let id = app.pending_request("20m").await;
    app.jc.add_user(ada(true, false));
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
    assert!(app.jc.access_requests().is_empty());
    app.advance(20 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert!(
        app.jc.is_admin(JC_ADA, LAPTOP),
        "a permanent admin stays admin"
    );
    assert!(access_calls(&app).is_empty(), "{:?}", access_calls(&app));
}

#[tokio::test]
async fn an_approved_extension_moves_the_expiry_jumpcloud_holds() {
    let app = spawn_access_app().await;
    let id = app.active_grant("20m").await;
    app.ask(ADA, "extend 10m").await;
    app.settle().await;
    assert_eq!(app.click(GRACE, "tempadmin_approve", &id).await, 200);
    app.settle().await;
    let r = app.request_of(ADA).await;
    let [access] = app.jc.access_requests().try_into().unwrap();
    assert_eq!(
        Some(access.expiry),
        r.expires_at(),
        "JumpCloud holds the new end"
    );
    assert!(access_calls(&app)
        .iter()
        .any(|c| c.starts_with("PUT /api/v2/accessrequests/")));
    // Past the old end, JumpCloud's clock has not ended it.
    app.advance(25 * MIN).await;
    assert!(app.jc.is_admin(JC_ADA, LAPTOP));
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
    app.advance(5 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
}
