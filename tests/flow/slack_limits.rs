//! What real Slack refuses or answers differently from a lenient fake: Block
//! Kit limits, `response_url` answers, direct messages by user id.

use std::time::Duration;

use crate::support::*;

const MIN: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_response_url_answering_ok_as_text_html_counts_as_delivered() {
    let app = spawn_app().await;
    app.pending_request("20m printer").await;
    let private: Vec<_> = app
        .outbox()
        .await
        .into_iter()
        .filter(|m| m.to == "private")
        .collect();
    assert_eq!(private.len(), 1, "{private:?}");
    assert!(
        private[0].delivered
            && !private[0].failed
            && private[0].attempts == 1
            && private[0].last_error.is_none(),
        "{private:?}"
    );
    app.advance(5 * MIN).await;
    let posts = app
        .slack
        .calls()
        .into_iter()
        .filter(|c| c.method == "response_url")
        .count();
    assert_eq!(posts, 1, "a delivered answer is never sent again");
}

#[tokio::test]
async fn direct_messages_are_posted_to_the_user_id_without_opening_a_conversation() {
    let app = spawn_app().await;
    app.active_grant("20m").await;
    let calls = app.slack.calls();
    assert!(
        !calls.iter().any(|c| c.method == "conversations.open"),
        "no conversations.open per message"
    );
    let to_ada = calls
        .iter()
        .filter(|c| c.method == "chat.postMessage" && c.params["channel"] == ADA)
        .count();
    assert!(to_ada >= 2, "approved and elevated DMs go to {ADA}");
    let dms = app.direct_messages();
    assert_eq!(dms.len(), to_ada, "{dms:?}");
    assert!(
        dms.iter().any(|m| m.contains("You are admin on")),
        "{dms:?}"
    );
}
