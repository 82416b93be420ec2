//! What the grant's messages say about the computer itself (issue 14,
//! items 5 and 6): advice for its own OS only, and, for a computer that
//! is offline, that the change waits for its next check-in.

use std::time::Duration;

use tempadmin::domain::RequestState;

use crate::support::*;

const MIN: Duration = Duration::from_secs(60);

/// The direct message that announced the grant.
fn grant_message(app: &TestApp) -> String {
    app.direct_messages()
        .into_iter()
        .find(|t| t.contains("You are admin on"))
        .expect("a grant message")
}

#[tokio::test]
async fn a_mac_grant_gives_mac_advice_and_nothing_about_windows() {
    let app = spawn_app().await;
    app.active_grant("20m").await;
    let text = grant_message(&app);
    assert!(
        text.contains("`sudo` and the administrator prompts work at once"),
        "{text}"
    );
    for windows in ["Windows", "UAC", "sign out", "sign in"] {
        assert!(!text.contains(windows), "{windows} in {text}");
    }
}

#[tokio::test]
async fn a_windows_grant_says_to_use_the_uac_prompt_and_never_to_sign_out_and_in() {
    let app = spawn_app().await;
    app.jc.add_system(system(LAPTOP, "ada-win", "windows"));
    app.active_grant("20m").await;
    let text = grant_message(&app);
    assert!(text.contains("(UAC) prompt with your own"), "{text}");
    assert!(!text.contains("sign out and in"), "{text}");
    assert!(!text.contains("sudo"), "{text}");

    app.advance(20 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    let end = app.direct_messages().last().unwrap().clone();
    assert!(end.contains("A sign-out completes the removal"), "{end}");
}

#[tokio::test]
async fn a_linux_grant_mentions_a_new_login_shell_and_its_end_no_sign_out() {
    let app = spawn_app().await;
    app.jc.add_system(system(LAPTOP, "ada-linux", "linux"));
    app.active_grant("20m").await;
    let text = grant_message(&app);
    assert!(text.contains("new login shell"), "{text}");
    assert!(!text.contains("Windows"), "{text}");
    app.advance(20 * MIN).await;
    let end = app.direct_messages().last().unwrap().clone();
    assert!(end.contains("have ended"), "{end}");
    assert!(!end.contains("sign-out"), "{end}");
}

#[tokio::test]
async fn an_offline_computer_is_told_to_apply_at_next_check_in_with_when_it_was_last_seen() {
    let app = spawn_app().await;
    let mut mac = system(LAPTOP, "ada-mac", "darwin");
    mac.active = false;
    app.jc.add_system(mac);
    app.active_grant("20m").await;
    for text in [grant_message(&app), app.thread().join("\n")] {
        assert!(text.contains("ada-mac` is offline (last seen"), "{text}");
        assert!(text.contains("applies when it next checks in"), "{text}");
    }
    app.advance(20 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    let last = app.thread().last().unwrap().clone();
    assert!(last.contains("Time is up"), "{last}");
    assert!(
        last.contains("The computer was offline (last seen"),
        "{last}"
    );
    assert!(last.contains("applies it when it next checks in"), "{last}");
}

#[tokio::test]
async fn an_online_computer_gets_no_check_in_note_and_the_end_says_it_was_online() {
    let app = spawn_app().await;
    app.active_grant("20m").await;
    assert!(!grant_message(&app).contains("offline"));
    assert!(!app.thread().join("\n").contains("checks in"));
    app.advance(20 * MIN).await;
    let last = app.thread().last().unwrap().clone();
    assert!(last.contains("Time is up"), "{last}");
    assert!(last.contains("The computer was online."), "{last}");
}
