//! Restarts, crashes and the prior-state rules (DESIGN 1, 2 and 4).

use std::time::Duration;

use tempadmin::domain::RequestState;
use tempadmin::sim::jumpcloud::{Failure, SimUser};

use crate::support::*;

const MIN: Duration = Duration::from_secs(60);

fn association_reads(app: &TestApp) -> usize {
    app.jc
        .calls()
        .iter()
        .filter(|c| c.method == "GET" && c.path.ends_with("/associations"))
        .count()
}

#[tokio::test]
async fn an_active_grant_is_revoked_on_time_after_a_restart() {
    let mut app = spawn_app().await;
    app.active_grant("20m").await;
    app.restart().await;
    app.advance(19 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
    assert!(
        app.thread().iter().any(|t| t.contains("1m left")),
        "timers survive the restart"
    );
    app.advance(MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert_eq!(app.jc_ops(), ["add", "remove"]);
}

#[tokio::test]
async fn overdue_revocations_run_at_once_after_a_long_outage() {
    let mut app = spawn_app().await;
    app.active_grant("20m").await;
    // The process is down for two hours; on start the overdue work runs.
    app.clock.advance(Duration::from_secs(7200));
    app.restart().await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
}

#[tokio::test]
async fn a_crash_between_elevating_and_recording_still_ends_in_the_right_demotion() {
    let mut app = spawn_app().await;
    let id = app.pending_request("20m").await;
    // JumpCloud applies the binding, but the bot never learns it did.
    app.fail_writes(1, Failure::ApplyThenStatus { status: 500 });
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Approved);
    assert!(
        app.jc.is_admin(JC_ADA, LAPTOP),
        "the elevation happened in JumpCloud"
    );

    app.restart().await;
    app.advance(Duration::from_secs(5)).await;
    let r = app.request_of(ADA).await;
    assert_eq!(r.state(), RequestState::Active);
    // The retry found the binding it had added (409) and made sure of sudo;
    // it did not read the device's state again and take itself for an admin.
    assert_eq!(app.jc_ops(), ["add", "add", "update"]);
    assert_eq!(
        association_reads(&app),
        1,
        "prior state is read exactly once"
    );
    assert_eq!(r.prior().unwrap().direct, None);

    app.advance(20 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert_eq!(app.jc_ops().last().unwrap(), "remove");
    assert_eq!(app.jc.direct_binding(JC_ADA, LAPTOP), None);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
}

#[tokio::test]
async fn a_grant_whose_call_hangs_is_retried_and_revoked_after_a_restart() {
    // A short timeout keeps the test from waiting on real time for the
    // timeout it exercises.
    let mut app = spawn_app_configured(|config| {
        config.jumpcloud.timeout = SHORT_CALL_TIMEOUT;
    })
    .await;
    let id = app.pending_request("20m").await;
    app.jc
        .fail_next("POST", "/api/v2/systems", 1, Failure::Hang);
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await; // the call times out (transient) and is rescheduled
    assert_eq!(app.state_of(ADA).await, RequestState::Approved);
    app.restart().await;
    app.advance(Duration::from_secs(5)).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
    app.advance(20 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
}

#[tokio::test]
async fn a_plain_direct_binding_is_set_back_to_no_sudo_not_removed() {
    let app = spawn_app().await;
    app.jc.bind_direct(JC_ADA, LAPTOP, false);
    app.active_grant("20m").await;
    assert_eq!(app.jc_ops(), ["update"]);
    assert_eq!(app.jc.direct_binding(JC_ADA, LAPTOP), Some(true));
    app.advance(20 * MIN).await;
    assert_eq!(app.jc_ops(), ["update", "update"]);
    let restore = app.jc.writes()[1].body.clone().unwrap();
    assert_eq!(restore["attributes"]["sudo"]["enabled"], false);
    assert_eq!(
        app.jc.direct_binding(JC_ADA, LAPTOP),
        Some(false),
        "the binding stays"
    );
}

#[tokio::test]
async fn a_user_who_became_a_global_admin_meanwhile_is_never_demoted() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    // IT makes Ada a permanent admin while the request waits.
    app.jc.add_user(SimUser {
        id: JC_ADA.into(),
        email: "ada@example.com".into(),
        username: "ada".into(),
        sudo: true,
        suspended: false,
    });
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
    assert!(app.jc_ops().is_empty(), "nothing to elevate");
    assert!(app.thread().iter().any(|t| t.contains("already admin")));
    app.advance(20 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert!(
        app.jc_ops().is_empty(),
        "a permanent admin is never demoted"
    );
    assert!(app.jc.is_admin(JC_ADA, LAPTOP));
}

#[tokio::test]
async fn a_sudo_binding_added_by_it_meanwhile_is_left_alone() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    app.jc.bind_direct(JC_ADA, LAPTOP, true);
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    app.advance(20 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert!(app.jc_ops().is_empty());
    assert_eq!(app.jc.direct_binding(JC_ADA, LAPTOP), Some(true));
}
