//! Finding the requester's JumpCloud account: by the email in their Slack
//! profile, whatever its case, and never by anything else.

use tempadmin::domain::RequestState;
use tempadmin::sim::jumpcloud::SimUser;

use crate::support::*;

fn jc_user(id: &str, email: &str) -> SimUser {
    SimUser {
        id: id.into(),
        email: email.into(),
        username: "ada".into(),
        sudo: false,
        suspended: false,
    }
}

#[tokio::test]
async fn a_mixed_case_slack_email_finds_the_lower_case_jumpcloud_account() {
    let app = spawn_app().await;
    app.slack.add_user(ADA, "ada", Some("Ada@Example.COM"));
    app.pending_request("20m install printer driver").await;
    let r = app.request_of(ADA).await;
    assert_eq!(r.jc_user().unwrap().as_str(), JC_ADA);
    assert_eq!(r.device().unwrap().hostname, "ada-mac");
}

#[tokio::test]
async fn an_exact_match_wins_over_the_lower_case_one() {
    let app = spawn_app().await;
    app.slack.add_user(ADA, "ada", Some("Ada@Example.com"));
    app.jc
        .add_user(jc_user("jcada0000000000000000002", "Ada@Example.com"));
    app.jc.bind_via_group(
        "jcada0000000000000000002",
        LAPTOP,
        "grp0000000000000000000001",
    );
    app.pending_request("20m").await;
    assert_eq!(
        app.request_of(ADA).await.jc_user().unwrap().as_str(),
        "jcada0000000000000000002"
    );
}

#[tokio::test]
async fn two_jumpcloud_accounts_with_the_email_are_refused_not_guessed() {
    let app = spawn_app().await;
    app.jc
        .add_user(jc_user("jcada0000000000000000002", "ada@example.com"));
    app.ask(ADA, "20m").await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Refused);
    assert!(app.cards().is_empty(), "nothing reaches the approvers");
    let answer = app.private_answers("cmd-U0ADA").pop().unwrap();
    assert!(
        answer.contains("2 JumpCloud accounts have the email ada@example.com")
            && answer.contains("will not guess"),
        "{answer}"
    );
    assert!(app.jc_ops().is_empty());
}

#[tokio::test]
async fn an_account_whose_email_merely_resembles_the_slack_email_is_not_used() {
    let app = spawn_app().await;
    // `.` and `+` are not wildcards, and the whole address must match.
    app.slack.add_user(ADA, "ada", Some("a.da+it@example.com"));
    app.jc.add_user(jc_user(JC_ADA, "axda+it@example.com"));
    app.jc
        .add_user(jc_user("jcada0000000000000000002", "a.daa+it@example.com"));
    app.jc.add_user(jc_user(
        "jcada0000000000000000003",
        "xa.da+it@example.com.evil",
    ));
    app.ask(ADA, "20m").await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Refused);
    let answer = app.private_answers("cmd-U0ADA").pop().unwrap();
    assert!(
        answer.contains("No JumpCloud account has the email a.da+it@example.com"),
        "{answer}"
    );
}
