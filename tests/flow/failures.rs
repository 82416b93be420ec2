//! JumpCloud and Slack failing at the worst moments.

use std::time::Duration;

use tempadmin::domain::RequestState;
use tempadmin::sim::jumpcloud::Failure;

use crate::support::*;

const SEC: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);

#[tokio::test]
async fn jumpcloud_503s_at_grant_are_retried_and_the_clock_started_at_the_first_attempt() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    app.fail_writes(
        2,
        Failure::Status {
            status: 503,
            retry_after: None,
        },
    );
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Approved);
    app.advance(2 * SEC).await; // first backoff
    assert_eq!(app.state_of(ADA).await, RequestState::Approved);
    app.advance(4 * SEC).await; // second backoff
    let r = app.request_of(ADA).await;
    assert_eq!(r.state(), RequestState::Active);
    assert_eq!(
        r.elevated_at().unwrap() - r.decided_at().unwrap(),
        chrono::TimeDelta::seconds(6)
    );
    assert_eq!(
        r.expires_at().unwrap() - r.decided_at().unwrap(),
        chrono::TimeDelta::minutes(20),
        "retries do not extend the grant"
    );
    assert_eq!(app.jc_ops(), ["add", "add", "add"]);
}

#[tokio::test]
async fn a_jumpcloud_429_at_grant_is_honoured_to_the_second() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    app.fail_writes(
        1,
        Failure::Status {
            status: 429,
            retry_after: Some(7),
        },
    );
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    app.advance(6 * SEC).await;
    assert_eq!(
        app.state_of(ADA).await,
        RequestState::Approved,
        "not before Retry-After"
    );
    app.advance(SEC).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
}

#[tokio::test]
async fn a_jumpcloud_401_at_grant_gives_up_and_restores() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    app.fail_writes(
        1,
        Failure::Status {
            status: 401,
            retry_after: None,
        },
    );
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    let r = app.request_of(ADA).await;
    assert_eq!(r.state(), RequestState::Ended);
    assert!(app
        .thread()
        .iter()
        .any(|t| t.contains("did not apply the elevation")));
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
    assert!(app.thread().iter().all(|t| !t.contains("jc-test-key")));
}

#[tokio::test]
async fn a_failing_revocation_is_announced_and_retried_until_it_succeeds() {
    let app = spawn_app().await;
    app.active_grant("20m").await;
    app.fail_writes(
        4,
        Failure::Status {
            status: 503,
            retry_after: None,
        },
    );
    app.advance(20 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Revoking);
    app.advance(2 * SEC).await;
    app.advance(4 * SEC).await;
    assert!(
        app.thread().last().unwrap().contains("Could not restore"),
        "{:?}",
        app.thread()
    );
    assert!(app.jc.is_admin(JC_ADA, LAPTOP));
    app.advance(8 * SEC).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Revoking);
    app.advance(16 * SEC).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
    assert_eq!(
        app.jc_ops(),
        ["add", "remove", "remove", "remove", "remove", "remove"]
    );
}

#[tokio::test]
async fn jumpcloud_down_for_hours_at_expiry_still_ends_in_restoration() {
    let app = spawn_app().await;
    app.active_grant("20m").await;
    app.jc.set_down(true);
    app.advance(20 * MIN).await;
    for _ in 0..30 {
        app.advance(5 * MIN).await;
    }
    assert_eq!(app.state_of(ADA).await, RequestState::Revoking);
    assert!(app.jc.is_admin(JC_ADA, LAPTOP));
    app.jc.set_down(false);
    app.advance(5 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
}

#[tokio::test]
async fn slack_down_at_expiry_does_not_delay_revocation_and_messages_follow_in_order() {
    let app = spawn_app().await;
    app.active_grant("20m").await;
    let before = app.thread().len();
    app.slack.set_down(true);
    // Time passes through each countdown mark while Slack is down.
    for step in [5, 10, 4, 1] {
        app.advance(step * MIN).await;
    }
    assert_eq!(
        app.state_of(ADA).await,
        RequestState::Ended,
        "JumpCloud was not held up"
    );
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
    app.slack.set_down(false);
    for _ in 0..10 {
        app.advance(30 * SEC).await;
    }
    let thread = app.thread();
    let late: Vec<_> = thread[before..].to_vec();
    assert_eq!(late.len(), 4, "{late:?}");
    assert!(
        late[0].contains("15m left") && late[1].contains("5m left") && late[2].contains("1m left"),
        "{late:?}"
    );
    assert!(late[3].contains("Time is up"), "{late:?}");
    assert!(app.card().blocks.to_string().contains("Ended at"));
}

#[tokio::test]
async fn a_slack_429_delays_delivery_by_its_retry_after() {
    let app = spawn_app().await;
    app.ask(ADA, "20m").await;
    app.slack.rate_limit_next(1, 9);
    app.settle().await;
    assert!(app.cards().is_empty());
    app.advance(8 * SEC).await;
    assert!(app.cards().is_empty(), "not before Retry-After");
    app.advance(SEC).await;
    assert_eq!(app.cards().len(), 1);
}

#[tokio::test]
async fn a_jumpcloud_429_at_revoke_is_honoured_and_the_revocation_follows() {
    let app = spawn_app().await;
    app.active_grant("20m").await;
    app.fail_writes(
        1,
        Failure::Status {
            status: 429,
            retry_after: Some(30),
        },
    );
    app.advance(20 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Revoking);
    app.advance(29 * SEC).await;
    assert!(app.jc.is_admin(JC_ADA, LAPTOP), "not before Retry-After");
    app.advance(SEC).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
}

#[tokio::test]
async fn a_slack_that_never_answers_does_not_hold_up_revocation() {
    // A short timeout keeps the test from waiting on real time for the
    // timeout it exercises.
    let app = spawn_app_configured(|config| {
        config.slack.as_mut().unwrap().api.timeout = SHORT_CALL_TIMEOUT;
    })
    .await;
    app.active_grant("20m").await;
    app.slack.set_hanging(true);
    app.advance(20 * MIN).await; // each Slack call gives up after its timeout
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
    let outbox = app.outbox().await;
    assert!(
        outbox.iter().any(|m| m
            .last_error
            .as_deref()
            .is_some_and(|e| e.ends_with("did not answer in time"))),
        "no Slack call timed out: {outbox:?}"
    );
    app.slack.set_hanging(false);
    for _ in 0..10 {
        app.advance(30 * SEC).await;
    }
    assert!(app.thread().last().unwrap().contains("Time is up"));
}

#[tokio::test]
async fn jumpcloud_down_for_the_whole_grant_ends_it_as_a_failed_elevation() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    // The approval itself asks JumpCloud for the approver's account (four
    // eyes by account), so JumpCloud goes down right after it counted.
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.jc.set_down(true);
    for _ in 0..5 {
        app.advance(5 * MIN).await;
    }
    app.jc.set_down(false);
    app.advance(5 * MIN).await;
    let r = app.request_of(ADA).await;
    assert_eq!(r.state(), RequestState::Ended);
    assert_eq!(r.elevated_at(), None);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
    let thread = app.thread();
    assert!(
        thread
            .last()
            .unwrap()
            .contains("after the failed elevation"),
        "{thread:?}"
    );
    assert!(
        !thread.iter().any(|t| t.contains("is admin on")),
        "{thread:?}"
    );
}

#[tokio::test]
async fn an_approval_while_jumpcloud_is_down_does_not_count_and_says_try_again() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    app.jc.set_down(true);
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::PendingApproval);
    let answer = app.private_answers("click-U0GRACE").pop().unwrap();
    assert!(answer.contains("try again"), "{answer}");
    app.jc.set_down(false);
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
}
