//! Every refusal of the command says why, privately, and posts nothing.

use tempadmin::domain::RequestState;
use tempadmin::sim::jumpcloud::SimUser;

use crate::support::*;

/// Runs `/tempadmin TEXT` as `user` and returns the private answer that
/// followed the look-ups.
async fn refused_later(app: &TestApp, user: &str, text: &str) -> String {
    app.ask(user, text).await;
    app.settle().await;
    assert!(app.cards().is_empty(), "nothing reaches the approvers");
    assert_eq!(app.request_of(user).await.state(), RequestState::Refused);
    app.private_answers(&format!("cmd-{user}"))
        .pop()
        .expect("a private answer")
}

#[tokio::test]
async fn bad_and_out_of_range_durations_are_refused_at_once_with_the_limits() {
    let app = spawn_app().await;
    let answer = app.ask(ADA, "20x install").await;
    assert!(
        answer.contains("`20x` is not a duration") && answer.contains("between 5m and 4h"),
        "{answer}"
    );
    let answer = app.ask(ADA, "5h install").await;
    assert!(
        answer.contains("5h is outside") && answer.contains("between 5m and 4h"),
        "{answer}"
    );
    let answer = app.ask(ADA, "1m").await;
    assert!(answer.contains("outside"), "{answer}");
    assert!(app.requests_of(ADA).await.is_empty());
}

#[tokio::test]
async fn near_miss_durations_are_named_with_examples_instead_of_help() {
    let app = spawn_app().await;
    for (text, typed) in [
        ("-5m fix", "-5m"),
        ("20 fix", "20"),
        ("20mins", "20mins"),
        ("+1h fix", "+1h"),
        (".5h", ".5h"),
    ] {
        let answer = app.ask(ADA, text).await;
        assert!(
            answer.contains(&format!("`{typed}` is not a duration"))
                && answer.contains("`20m`, `1h`")
                && !answer.contains("/tempadmin status"),
            "{text}: {answer}"
        );
    }
    assert!(app.requests_of(ADA).await.is_empty());
}

#[tokio::test]
async fn help_answers_anything_not_understood() {
    let app = spawn_app().await;
    for text in ["", "help", "please make me admin", "--help", "- 5m"] {
        let answer = app.ask(ADA, text).await;
        assert!(
            answer.contains("/tempadmin status") && answer.contains("between 5m and 4h"),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn a_reason_is_demanded_when_policy_requires_one() {
    let app = spawn_app_with(|p| p.require_reason = true).await;
    assert!(app.ask(ADA, "20m").await.contains("Please say why"));
    // A hostname alone is not a reason either.
    let answer = refused_later(&app, ADA, "20m ada-mac").await;
    assert!(answer.contains("Please say why"), "{answer}");
}

#[tokio::test]
async fn no_jumpcloud_account_for_the_slack_email_is_named() {
    let app = spawn_app().await;
    let answer = refused_later(&app, MALLORY, "20m").await;
    assert!(
        answer.contains("No JumpCloud account has the email mallory@example.com"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_slack_profile_without_email_is_explained() {
    let app = spawn_app().await;
    app.slack.add_user("U0NOMAIL", "nomail", None);
    let answer = refused_later(&app, "U0NOMAIL", "20m").await;
    assert!(answer.contains("no email address"), "{answer}");
}

#[tokio::test]
async fn a_suspended_account_is_refused() {
    let app = spawn_app().await;
    app.jc.add_user(SimUser {
        id: JC_ADA.into(),
        email: "ada@example.com".into(),
        username: "ada".into(),
        sudo: false,
        suspended: true,
    });
    let answer = refused_later(&app, ADA, "20m").await;
    assert!(answer.contains("suspended"), "{answer}");
}

#[tokio::test]
async fn phones_and_tablets_are_never_eligible() {
    let app = spawn_app().await;
    app.slack
        .add_user("U0PHONE", "phone", Some("phone@example.com"));
    app.jc.add_user(SimUser {
        id: "jcphone000000000000000001".into(),
        email: "phone@example.com".into(),
        username: "phone".into(),
        sudo: false,
        suspended: false,
    });
    app.jc
        .add_system(system("sys0000000000000000phone1", "phone-iphone", "ios"));
    app.jc.add_system(system(
        "sys0000000000000000phone2",
        "phone-pixel",
        "android",
    ));
    app.jc.bind_direct(
        "jcphone000000000000000001",
        "sys0000000000000000phone1",
        false,
    );
    app.jc.bind_direct(
        "jcphone000000000000000001",
        "sys0000000000000000phone2",
        false,
    );
    let answer = refused_later(&app, "U0PHONE", "20m").await;
    assert!(
        answer.contains("No computer is bound") && answer.contains("phone@example.com"),
        "{answer}"
    );
}

#[tokio::test]
async fn someone_already_admin_there_is_told_so() {
    let app = spawn_app().await;
    app.jc.bind_direct(JC_ADA, LAPTOP, true);
    let answer = refused_later(&app, ADA, "20m").await;
    assert!(
        answer.contains("already an administrator on `ada-mac`"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_second_request_for_the_same_device_points_to_the_first() {
    let app = spawn_app().await;
    let first = app.pending_request("20m").await;
    app.ask(ADA, "30m again").await;
    app.settle().await;
    let answer = app.private_answers("cmd-U0ADA").pop().unwrap();
    assert!(
        answer.contains(&first) && answer.contains("already open"),
        "{answer}"
    );
    assert_eq!(app.cards().len(), 1);
}

#[tokio::test]
async fn jumpcloud_unreachable_means_try_again_and_nothing_posted() {
    let app = spawn_app().await;
    app.jc.set_down(true);
    app.ask(ADA, "20m").await;
    app.settle().await;
    app.advance(std::time::Duration::from_secs(2)).await; // one quick retry
    assert_eq!(app.state_of(ADA).await, RequestState::Refused);
    let answer = app.private_answers("cmd-U0ADA").pop().unwrap();
    assert!(
        answer.contains("JumpCloud is not answering") && answer.contains("Nothing was sent"),
        "{answer}"
    );
    assert!(app.cards().is_empty());
}

#[tokio::test]
async fn several_computers_are_offered_as_buttons_and_the_pick_goes_to_approvers() {
    let app = spawn_app().await;
    app.jc
        .add_system(system("sys00000000000000000win1", "ada-win", "windows"));
    app.jc
        .bind_direct(JC_ADA, "sys00000000000000000win1", false);
    app.ask(ADA, "20m printer").await;
    app.settle().await;
    let r = app.request_of(ADA).await;
    assert_eq!(r.state(), RequestState::AwaitingDevice);
    let picker = app.slack.responses().pop().unwrap().body;
    let blocks = picker["blocks"].to_string();
    assert!(
        blocks.contains("tempadmin_pick_device")
            && blocks.contains("ada-win (Windows, online)")
            && blocks.contains("ada-mac (macOS, online)"),
        "{blocks}"
    );
    assert!(app.cards().is_empty());

    // Someone else's pick is refused; Ada's goes through.
    let block = format!("pick:{}", r.id);
    app.click_block(
        MALLORY,
        "tempadmin_pick_device",
        "sys00000000000000000win1",
        &block,
    )
    .await;
    app.click_block(
        ADA,
        "tempadmin_pick_device",
        "sys00000000000000000win1",
        &block,
    )
    .await;
    app.settle().await;
    let r = app.request_of(ADA).await;
    assert_eq!(r.state(), RequestState::PendingApproval);
    assert_eq!(r.device().unwrap().hostname, "ada-win");
    assert_eq!(r.reason, "printer");
    assert!(app.card().blocks.to_string().contains("ada-win"));
}

#[tokio::test]
async fn a_hostname_after_the_duration_selects_that_computer() {
    let app = spawn_app().await;
    app.jc
        .add_system(system("sys00000000000000000win1", "ada-win", "windows"));
    app.jc
        .bind_direct(JC_ADA, "sys00000000000000000win1", false);
    app.pending_request("20m ADA-WIN install driver").await;
    let r = app.request_of(ADA).await;
    assert_eq!(r.device().unwrap().hostname, "ada-win");
    assert_eq!(r.reason, "install driver");
}

#[tokio::test]
async fn a_reason_cannot_ping_the_channel() {
    let app = spawn_app().await;
    app.pending_request("20m <!channel> <@U0GRACE> & co").await;
    let card = app.card().blocks.to_string();
    assert!(
        card.contains("&lt;!channel&gt; &lt;@U0GRACE&gt; &amp; co"),
        "{card}"
    );
    assert!(!card.contains("<!channel>"));
}

#[tokio::test]
async fn an_approvals_channel_the_bot_cannot_post_to_ends_the_request_with_the_reason() {
    let app = spawn_app().await;
    app.slack.close_channel(APPROVALS, "not_in_channel");
    app.ask(ADA, "20m").await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Refused);
    let answer = app.private_answers("cmd-U0ADA").pop().unwrap();
    assert!(
        answer.contains("could not post your request to the approvers' channel")
            && answer.contains("not_in_channel"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_device_choice_nobody_makes_expires_with_a_direct_message() {
    let app = spawn_app().await;
    app.jc
        .add_system(system("sys00000000000000000win1", "ada-win", "windows"));
    app.jc
        .bind_direct(JC_ADA, "sys00000000000000000win1", false);
    app.ask(ADA, "20m printer").await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::AwaitingDevice);
    app.advance(std::time::Duration::from_secs(30 * 60)).await;
    assert_eq!(app.state_of(ADA).await, RequestState::TimedOut);
    assert!(app
        .direct_messages()
        .last()
        .unwrap()
        .contains("did not pick a computer in time"));
    assert!(app.cards().is_empty());
}
