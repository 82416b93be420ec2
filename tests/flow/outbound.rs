//! What tempadmin sends to JumpCloud, the API key above all, goes to
//! `jumpcloud.api_url` and nowhere else.

use tempadmin::domain::RequestState;
use tempadmin::sim::jumpcloud::{Failure, FakeJumpCloud, SimUser};

use crate::support::*;

/// A second JumpCloud that accepts the same key and knows Ada, so that a
/// followed redirect would not only leak the key but also succeed.
async fn elsewhere(app: &TestApp) -> FakeJumpCloud {
    let other = FakeJumpCloud::start(&app.jc.api_key()).await;
    other.add_user(SimUser {
        id: JC_ADA.into(),
        email: "ada@example.com".into(),
        username: "ada".into(),
        sudo: false,
        suspended: false,
    });
    other.add_system(system(LAPTOP, "ada-mac", "darwin"));
    other.bind_via_group(JC_ADA, LAPTOP, "grp0000000000000000000001");
    other
}

#[tokio::test]
async fn a_redirected_look_up_is_not_followed_and_the_other_server_hears_nothing() {
    let app = spawn_app().await;
    let other = elsewhere(&app).await;
    app.jc.fail_next(
        "*",
        "/api/",
        1,
        Failure::Redirect {
            status: 307,
            location: format!("{}/api/systemusers", other.url()),
        },
    );
    app.ask(ADA, "20m").await;
    app.settle().await;
    assert!(other.calls().is_empty(), "{:?}", other.calls());
    assert_eq!(app.state_of(ADA).await, RequestState::Refused);
    assert!(app.cards().is_empty(), "nothing reaches the approvers");
}

#[tokio::test]
async fn a_redirected_elevation_is_not_followed_and_the_thread_says_why() {
    let app = spawn_app().await;
    let other = elsewhere(&app).await;
    let id = app.pending_request("20m").await;
    app.fail_writes(
        1,
        Failure::Redirect {
            status: 302,
            location: format!("{}/api/v2/systems/{LAPTOP}/associations", other.url()),
        },
    );
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    assert!(other.calls().is_empty(), "{:?}", other.calls());
    assert_ne!(app.state_of(ADA).await, RequestState::Active);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
    let thread = app.thread().join("\n");
    assert!(
        thread.contains(&format!("redirected (HTTP 302 Found) to {}", other.url()))
            && thread.contains("does not follow redirects")
            && thread.contains("jumpcloud.api_url"),
        "{thread}"
    );
}
