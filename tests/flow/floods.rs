//! One person cannot flood the bot: `policy.max_open_requests` and
//! `policy.max_requests_per_hour` refuse at once, naming the limit, and
//! what a person types is stored within bounds.

use std::time::Duration;

use tempadmin::domain::RequestState;

use crate::support::*;

const CHECKING: &str = "Checking your JumpCloud account";

#[tokio::test]
async fn a_request_beyond_the_open_limit_is_refused_at_once_with_the_limit_named() {
    let app = spawn_app().await;
    for (id, host) in [
        ("sys000000000000000000lin", "ada-linux"),
        ("sys000000000000000000win", "ada-win"),
    ] {
        app.jc.add_system(system(id, host, "linux"));
        app.jc
            .bind_via_group(JC_ADA, id, "grp0000000000000000000001");
    }
    for host in ["ada-mac", "ada-linux", "ada-win"] {
        let answer = app.ask(ADA, &format!("20m {host} printer")).await;
        assert!(answer.contains(CHECKING), "{answer}");
    }
    app.settle().await;
    assert_eq!(app.cards().len(), 3);
    let calls = app.jc.calls().len();

    let answer = app.ask(ADA, "20m ada-mac printer").await;
    assert!(
        answer.contains("3 open requests") && answer.contains("the limit is 3 at once"),
        "{answer}"
    );
    assert_eq!(
        app.requests_of(ADA).await.len(),
        3,
        "the fourth was not stored"
    );
    app.settle().await;
    assert_eq!(app.jc.calls().len(), calls, "nor looked up");
    assert_eq!(app.cards().len(), 3, "nor posted");

    // A decided request no longer counts.
    let first = app.requests_of(ADA).await[0].id.to_string();
    assert_eq!(app.click(GRACE, "tempadmin_deny", &first).await, 200);
    app.settle().await;
    assert!(app.ask(ADA, "20m ada-mac printer").await.contains(CHECKING));
}

#[tokio::test]
async fn a_request_beyond_the_hourly_limit_is_refused_until_an_hour_has_passed() {
    let app = spawn_app().await;
    for _ in 0..10 {
        assert!(app.ask(ADA, "20m printer").await.contains(CHECKING));
        app.settle().await;
        app.ask(ADA, "revoke").await;
        app.settle().await;
        app.clock.advance(Duration::from_secs(60));
    }
    assert!(app
        .requests_of(ADA)
        .await
        .iter()
        .all(|r| r.state() == RequestState::Cancelled));
    let answer = app.ask(ADA, "20m printer").await;
    assert!(
        answer.contains("10 requests in the past hour"),
        "withdrawn requests count too: {answer}"
    );
    assert_eq!(app.requests_of(ADA).await.len(), 10);

    // The first of the ten was an hour ago, 50 minutes and a bit from now.
    app.advance(Duration::from_secs(50 * 60 + 1)).await;
    assert!(app.ask(ADA, "20m printer").await.contains(CHECKING));
}

#[tokio::test]
async fn a_burst_of_commands_from_one_person_opens_no_more_than_the_limit() {
    let app = spawn_app().await;
    let burst = (0..20).map(|_| app.ask(ADA, "20m printer"));
    let answers = futures::future::join_all(burst).await;
    let accepted = answers.iter().filter(|a| a.contains(CHECKING)).count();
    let limited = answers
        .iter()
        .filter(|a| a.contains("the limit is 3 at once"))
        .count();
    assert_eq!((accepted, limited), (3, 17), "{answers:#?}");
    assert_eq!(app.requests_of(ADA).await.len(), 3);
}

#[tokio::test]
async fn one_persons_limit_does_not_hold_up_anybody_else() {
    let app = spawn_app_with(|p| p.max_open_requests = 1).await;
    let (other, _, _) = app.add_person(1);
    app.ask(ADA, "20m printer").await;
    assert!(app.ask(ADA, "20m printer").await.contains("the limit is 1"));
    assert!(app.ask(&other, "20m printer").await.contains(CHECKING));
    app.settle().await;
    assert_eq!(app.cards().len(), 2);
}

#[tokio::test]
async fn a_command_padded_with_white_space_is_stored_clipped() {
    let app = spawn_app().await;
    let text = format!("20m printer{}driver", " ".repeat(60_000));
    assert!(app.ask(ADA, &text).await.contains(CHECKING));
    let entry = app
        .engine
        .store()
        .audit_since(None)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.action == "requested")
        .unwrap();
    let audited = entry.detail["text"].as_str().unwrap();
    assert!(audited.starts_with("20m printer "));
    assert!(audited.chars().count() <= 5_001, "{}", audited.len());
    assert_eq!(app.request_of(ADA).await.reason, "printer driver");
}
