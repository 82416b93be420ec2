//! "Taken back on time, always": independent workers, revocations first,
//! a clock that starts once, and decisions on today's facts.

use std::time::Duration;

use tempadmin::domain::RequestState;
use tempadmin::engine::ports::Clock;
use tempadmin::engine::Workers;
use tempadmin::sim::jumpcloud::{Failure, RecordedCall, SimUser};

use crate::support::*;

const SEC: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);
/// How long a test waits for something that must happen while a call
/// hangs. JumpCloud's client timeout is set longer than this in those
/// tests, so only work that does not wait for the hung call gets there.
const PATIENCE: Duration = Duration::from_secs(20);

fn removes(calls: &[RecordedCall]) -> Vec<&RecordedCall> {
    calls
        .iter()
        .filter(|c| {
            c.method == "POST"
                && c.body
                    .as_ref()
                    .is_some_and(|b| b["op"].as_str() == Some("remove"))
        })
        .collect()
}

#[tokio::test]
async fn one_hung_jumpcloud_call_does_not_delay_anyone_elses_revocation() {
    let app = spawn_app_configured(|c| c.jumpcloud.timeout = Duration::from_secs(120)).await;
    let people: Vec<_> = (0..30).map(|n| app.add_person(n)).collect();
    for (person, _, _) in &people {
        app.ask(person, "20m").await;
    }
    app.settle().await;
    for (person, _, _) in &people {
        let id = app.request_of(person).await.id.to_string();
        assert_eq!(app.click(GRACE, "tempadmin_approve", &id).await, 200);
    }
    app.settle().await;
    for (person, _, _) in &people {
        assert_eq!(app.state_of(person).await, RequestState::Active);
    }
    // The first device's revocation hangs in JumpCloud; all 30 expire at once.
    let (stuck_person, _, stuck_system) = &people[0];
    app.jc.fail_next(
        "GET",
        &format!("/api/v2/systems/{stuck_system}/associations"),
        1,
        Failure::HangUntilReleased,
    );
    app.clock.advance(20 * MIN);
    let engine = app.engine.clone();
    let drain = tokio::spawn(async move { engine.run_due().await });

    tokio::time::timeout(
        PATIENCE,
        app.jc.wait_for_calls(|calls| removes(calls).len() == 29),
    )
    .await
    .expect("the other 29 revocations reached JumpCloud while one call hung");
    assert_eq!(
        app.state_of(stuck_person).await,
        RequestState::Revoking,
        "the hung one is still waiting for JumpCloud"
    );

    app.jc.release_hung();
    drain.await.unwrap().unwrap();
    app.settle().await;
    for (person, jc_id, system_id) in &people {
        let r = app.request_of(person).await;
        assert_eq!(r.state(), RequestState::Ended, "{person}");
        assert_eq!(r.ended_at(), r.expires_at(), "{person} ended at its expiry");
        assert!(!app.jc.is_admin(jc_id, system_id));
    }
    let calls = app.jc.calls();
    let last = removes(&calls).last().unwrap().path.clone();
    assert!(
        last.contains(stuck_system.as_str()),
        "the hung one went last, once JumpCloud recovered: {last}"
    );
}

#[tokio::test]
async fn revocations_keep_their_own_workers_when_lookups_hang() {
    let app = spawn_app_configured(|c| {
        c.workers = Workers::new(4);
        c.jumpcloud.timeout = Duration::from_secs(120);
    })
    .await;
    app.active_grant("20m").await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = tokio::spawn(app.engine.clone().run(async {
        let _ = stopped.await;
    }));
    // Ten people ask while JumpCloud's user look-ups hang: their look-ups
    // take every worker that is not kept for revocations.
    let lookups = |calls: &[RecordedCall]| {
        calls
            .iter()
            .filter(|c| c.path == "/api/systemusers")
            .count()
    };
    let before = lookups(&app.jc.calls());
    app.jc
        .fail_next("GET", "/api/systemusers", 10, Failure::HangUntilReleased);
    for n in 0..10 {
        let (person, _, _) = app.add_person(n);
        app.ask(&person, "20m").await;
    }
    let shared = Workers::new(4).total - Workers::new(4).reserved_for_revocations;
    tokio::time::timeout(
        PATIENCE,
        app.jc
            .wait_for_calls(|calls| lookups(calls) == before + shared),
    )
    .await
    .expect("the look-ups fill the shared workers");

    app.clock.advance(20 * MIN);
    tokio::time::timeout(
        PATIENCE,
        app.jc.wait_for_calls(|calls| removes(calls).len() == 1),
    )
    .await
    .expect("the revocation ran beside the hung look-ups");
    assert_eq!(
        lookups(&app.jc.calls()),
        before + shared,
        "no look-up took a revocation's worker"
    );

    app.jc.release_hung();
    let _ = stop.send(());
    scheduler.await.unwrap();
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
}

#[tokio::test]
async fn a_crash_after_jumpcloud_applied_the_elevation_never_extends_the_grant() {
    let mut app = spawn_app().await;
    let id = app.pending_request("5m").await;
    // JumpCloud applies the binding, but the bot never learns it did, and
    // then the bot is down for longer than the whole grant.
    app.fail_writes(1, Failure::ApplyThenStatus { status: 500 });
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    let r = app.request_of(ADA).await;
    assert_eq!(r.state(), RequestState::Approved);
    assert_eq!(
        r.expires_at().unwrap() - r.decided_at().unwrap(),
        chrono::TimeDelta::minutes(5),
        "the end is fixed at the first attempt"
    );
    assert!(app.jc.is_admin(JC_ADA, LAPTOP));

    app.clock.advance(10 * MIN);
    app.restart().await;
    app.settle().await;
    let r = app.request_of(ADA).await;
    assert_eq!(r.state(), RequestState::Ended);
    assert_eq!(
        app.jc_ops(),
        ["add", "remove"],
        "revoked at once, never re-applied"
    );
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
    assert!(
        !app.thread().iter().any(|t| t.contains("is admin on")),
        "no fresh grant was announced: {:?}",
        app.thread()
    );
}

#[tokio::test]
async fn a_grant_retried_after_a_crash_keeps_its_first_end() {
    let mut app = spawn_app().await;
    let id = app.pending_request("20m").await;
    app.fail_writes(1, Failure::ApplyThenStatus { status: 500 });
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    let first_end = app.request_of(ADA).await.expires_at().unwrap();
    app.clock.advance(3 * MIN);
    app.restart().await;
    app.settle().await;
    let r = app.request_of(ADA).await;
    assert_eq!(r.state(), RequestState::Active);
    assert_eq!(
        r.expires_at(),
        Some(first_end),
        "not 20 minutes from the retry"
    );
    app.advance(17 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
}

#[tokio::test]
async fn jumpcloud_retry_after_cannot_stretch_a_revocation_past_a_minute() {
    let app = spawn_app().await;
    app.active_grant("20m").await;
    app.fail_writes(
        1,
        Failure::Status {
            status: 429,
            retry_after: Some(3600),
        },
    );
    app.advance(20 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Revoking);
    app.advance(59 * SEC).await;
    assert!(app.jc.is_admin(JC_ADA, LAPTOP));
    app.advance(SEC).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
}

#[tokio::test]
async fn a_device_unbound_before_approval_is_not_elevated() {
    let app = spawn_app().await;
    let id = app.pending_request("20m install printer").await;
    app.jc.unbind(JC_ADA, LAPTOP);
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Refused);
    assert!(app.jc_ops().is_empty(), "nothing was changed in JumpCloud");
    let thread = app.thread();
    assert!(
        thread
            .last()
            .unwrap()
            .contains("Not granted: `ada-mac` is no longer"),
        "{thread:?}"
    );
    assert!(app
        .direct_messages()
        .last()
        .unwrap()
        .contains("approved but not granted"));
    assert!(app.card().blocks.to_string().contains("not granted"));
    app.advance(20 * MIN).await;
    assert!(app.jc_ops().is_empty(), "and nothing to restore later");
}

#[tokio::test]
async fn a_user_suspended_before_approval_is_not_elevated() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    app.jc.add_user(SimUser {
        id: JC_ADA.into(),
        email: "ada@example.com".into(),
        username: "ada".into(),
        sudo: false,
        suspended: true,
    });
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Refused);
    assert!(app.jc_ops().is_empty());
    assert!(app.thread().last().unwrap().contains("suspended"));
    assert!(app
        .audit_actions()
        .await
        .contains(&"not_granted".to_string()));
}

#[tokio::test]
async fn a_device_that_became_a_phone_is_not_elevated() {
    let app = spawn_app().await;
    let id = app.pending_request("20m").await;
    app.jc.add_system(system(LAPTOP, "ada-mac", "ios"));
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Refused);
    assert!(app.jc_ops().is_empty());
}

#[tokio::test]
async fn a_binding_it_changed_during_the_grant_is_left_as_it_made_it() {
    let app = spawn_app().await;
    app.active_grant("20m").await;
    // IT makes Ada a password-less admin on the device meanwhile.
    app.jc.set_direct(JC_ADA, LAPTOP, true, true);
    app.advance(20 * MIN).await;
    let r = app.request_of(ADA).await;
    assert_eq!(r.state(), RequestState::Ended);
    assert!(r.left_alone());
    assert_eq!(app.jc_ops(), ["add"], "no restoration was written");
    assert_eq!(app.jc.direct_attributes(JC_ADA, LAPTOP), Some((true, true)));
    let thread = app.thread();
    assert!(
        thread.last().unwrap().contains("left it as it is"),
        "{thread:?}"
    );
    assert!(app.card().blocks.to_string().contains("left it as it was"));
    assert!(app
        .audit_actions()
        .await
        .contains(&"left_alone".to_string()));
}

#[tokio::test]
async fn a_plain_binding_it_removed_during_the_grant_is_not_put_back() {
    let app = spawn_app().await;
    app.jc.bind_direct(JC_ADA, LAPTOP, false);
    app.active_grant("20m").await;
    app.jc.unbind(JC_ADA, LAPTOP);
    app.advance(20 * MIN).await;
    let r = app.request_of(ADA).await;
    assert_eq!((r.state(), r.left_alone()), (RequestState::Ended, true));
    assert_eq!(app.jc_ops(), ["update"], "the binding was not re-created");
    assert_eq!(app.jc.direct_binding(JC_ADA, LAPTOP), None);
}

#[tokio::test]
async fn a_restoration_that_got_through_before_a_crash_counts_as_done() {
    let mut app = spawn_app().await;
    app.active_grant("20m").await;
    // JumpCloud removes the binding, but the answer is lost.
    app.fail_writes(1, Failure::ApplyThenStatus { status: 500 });
    app.advance(20 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Revoking);
    app.restart().await;
    app.advance(5 * SEC).await;
    let r = app.request_of(ADA).await;
    assert_eq!(r.state(), RequestState::Ended);
    assert!(
        !r.left_alone(),
        "its own restoration is not somebody else's change"
    );
    assert_eq!(app.jc_ops(), ["add", "remove"]);
    assert!(app.thread().last().unwrap().contains("Time is up"));
}

#[tokio::test]
async fn commands_beyond_what_the_database_keeps_up_with_are_refused_at_once() {
    use sqlx::Connection;
    let app = spawn_app().await;
    // Another writer holds the database, so commands cannot be recorded
    // and stay in flight.
    let mut blocker = sqlx::SqliteConnection::connect(&app.config.database_url)
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let stuck: Vec<_> = (0..tempadmin::engine::COMMANDS_IN_FLIGHT)
        .map(|n| {
            let (person, _, _) = app.add_person(n);
            let http = app.http.clone();
            let url = app.url("/slack/commands");
            let body = tempadmin::sim::slack_sender::command_body(
                &person,
                "20m",
                &app.slack.response_url("r"),
            );
            let signature = app.sign(app.now_unix(), &body);
            let now = app.now_unix();
            tokio::spawn(async move {
                http.post(url)
                    .header("x-slack-request-timestamp", now.to_string())
                    .header("x-slack-signature", signature)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .json::<serde_json::Value>()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let handled = format!(
        "tempadmin_commands_total{{platform=\"slack\"}} {}",
        tempadmin::engine::COMMANDS_IN_FLIGHT
    );
    // Milliseconds when all is well; the guard turns a lost command into a
    // failure instead of a test that never ends.
    let mut seen = String::new();
    let counted = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let metrics = app.http.get(app.url("/metrics")).send().await.unwrap();
            seen = metrics.text().await.unwrap();
            if seen.contains(&handled) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        counted.is_ok(),
        "after 20 s /metrics still does not show `{handled}`: the stuck commands were not all taken in\n{seen}"
    );
    let answer = app.ask(ADA, "20m").await;
    assert!(answer.contains("very busy"), "{answer}");

    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    for answer in stuck {
        let answer = answer.await.unwrap();
        assert!(
            answer["text"].as_str().unwrap().contains("Checking"),
            "{answer}"
        );
    }
    assert!(
        app.requests_of(ADA).await.is_empty(),
        "the busy answer recorded nothing"
    );
}

#[tokio::test]
async fn a_revocation_that_outlasts_its_lease_keeps_it_and_runs_once() {
    let app = spawn_app_configured(|c| {
        c.jumpcloud.timeout = Duration::from_secs(600);
        c.workers = Workers::new(8).with_lease(15 * SEC);
    })
    .await;
    app.active_grant("20m").await;
    app.jc.fail_next(
        "GET",
        &format!("/api/v2/systems/{LAPTOP}/associations"),
        1,
        Failure::HangUntilReleased,
    );
    let reads = |calls: &[RecordedCall]| {
        calls
            .iter()
            .filter(|c| {
                c.method == "GET" && c.path.contains(&format!("systems/{LAPTOP}/associations"))
            })
            .count()
    };
    let before = reads(&app.jc.calls());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = tokio::spawn(app.engine.clone().run(async {
        let _ = stopped.await;
    }));
    app.clock.advance(20 * MIN);
    tokio::time::timeout(
        PATIENCE,
        app.jc.wait_for_calls(|calls| reads(calls) == before + 1),
    )
    .await
    .expect("the revocation reached JumpCloud, where it hangs");

    // Four leases go by on the clock while the call hangs (stored to the
    // millisecond, hence "more than 14 s ahead"). Each time the
    // scheduler renews the lease, so it never claims its own running
    // revocation a second time.
    for _ in 0..12 {
        app.clock.advance(5 * SEC);
        let now = app.clock.now();
        let renewed = tokio::time::timeout(PATIENCE, async {
            loop {
                let held_until = app.engine.store().next_revocation_due().await.unwrap();
                if held_until.is_some_and(|at| at > now + chrono::TimeDelta::seconds(14)) {
                    break;
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        if renewed.is_err() {
            let held_until = app.engine.store().next_revocation_due().await.unwrap();
            panic!(
                "the running revocation's lease was renewed at {now}: held until {held_until:?}"
            );
        }
    }
    assert_eq!(
        reads(&app.jc.calls()),
        before + 1,
        "no second attempt began"
    );

    app.jc.release_hung();
    tokio::time::timeout(PATIENCE, async {
        while app.state_of(ADA).await != RequestState::Ended {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the revocation finished once JumpCloud answered");
    assert_eq!(removes(&app.jc.calls()).len(), 1);
    let _ = stop.send(());
    scheduler.await.unwrap();
}
