//! The Bot Connector client against the fake Bot Framework: what it sends,
//! how it keeps its token, and how it classifies what Teams answers.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use secrecy::SecretString;
use serde_json::json;
use tempadmin::engine::clock::ManualClock;
use tempadmin::engine::ports::ChatError;
use tempadmin::sim::teams::{
    FakeBotFramework, SimUser, APPROVALS_CONVERSATION, APP_PASSWORD, TENANT_ID,
};
use tempadmin::teams::connector::{
    card_activity, text_activity, thread_conversation_id, Connector,
};
use tempadmin::teams::TeamsSettings;

fn ada() -> SimUser {
    SimUser {
        id: "29:1ada".into(),
        name: "Ada Lovelace".into(),
        aad_object_id: "aad-ada".into(),
        email: Some("ada@example.com".into()),
        user_principal_name: "ada@example.com".into(),
        tenant_id: TENANT_ID.into(),
    }
}

fn card(text: &str) -> serde_json::Value {
    json!({
        "type": "AdaptiveCard", "version": "1.5",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "body": [{ "type": "TextBlock", "text": text, "wrap": true }]
    })
}

struct Setup {
    fake: FakeBotFramework,
    clock: Arc<ManualClock>,
    connector: Connector,
}

async fn setup_with(change: impl FnOnce(&mut TeamsSettings)) -> Setup {
    let fake = FakeBotFramework::start().await;
    fake.add_user(ada());
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap(),
    ));
    let mut settings = fake.settings();
    change(&mut settings);
    let connector = Connector::new(&settings, clock.clone());
    Setup {
        fake,
        clock,
        connector,
    }
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

#[tokio::test]
async fn a_card_is_posted_to_the_channel_and_updated_in_place() {
    let s = setup().await;
    let url = s.fake.service_url();
    let id = s
        .connector
        .send_to_conversation(
            &url,
            APPROVALS_CONVERSATION,
            &card_activity(card("Ada asks")),
        )
        .await
        .unwrap();
    s.connector
        .update_activity(
            &url,
            APPROVALS_CONVERSATION,
            &id,
            &card_activity(card("Approved")),
        )
        .await
        .unwrap();
    let posted = s.fake.activities();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].id, id);
    assert_eq!(posted[0].history.len(), 2);
    assert_eq!(
        posted[0].activity["attachments"][0]["content"]["body"][0]["text"],
        "Approved"
    );
}

#[tokio::test]
async fn a_post_joins_the_cards_thread_only_when_addressed_to_channel_and_root() {
    let s = setup().await;
    let url = s.fake.service_url();
    let root = s
        .connector
        .send_to_conversation(
            &url,
            APPROVALS_CONVERSATION,
            &card_activity(card("Ada asks")),
        )
        .await
        .unwrap();
    let thread = thread_conversation_id(APPROVALS_CONVERSATION, &root);
    s.connector
        .send_to_conversation(&url, &thread, &text_activity("15 minutes left"))
        .await
        .unwrap();
    // A reply to the bare channel is, in Teams, a post of its own.
    let stray = s
        .connector
        .reply_to_activity(
            &url,
            APPROVALS_CONVERSATION,
            &root,
            &text_activity("5 minutes left"),
        )
        .await
        .unwrap();
    let texts: Vec<_> = s
        .fake
        .thread(APPROVALS_CONVERSATION, &root)
        .iter()
        .map(|a| a.activity["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["15 minutes left"]);
    let top = s
        .fake
        .activities()
        .into_iter()
        .find(|a| a.id == stray)
        .unwrap();
    assert_eq!(top.reply_to, None, "the bare address starts a new thread");
    // The id went out percent-encoded and arrived whole.
    let paths: Vec<_> = s.fake.calls().into_iter().map(|c| c.path).collect();
    assert!(
        paths.contains(&format!("/emea/v3/conversations/{thread}/activities")),
        "{paths:?}"
    );
    // A thread whose root is not in the channel is no conversation.
    let unknown = thread_conversation_id(APPROVALS_CONVERSATION, "1699999999999");
    let err = s
        .connector
        .send_to_conversation(&url, &unknown, &text_activity("lost"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ChatError::Permanent("Teams: no such conversation or activity (404)".into())
    );
    let refused = s.fake.calls().pop().unwrap();
    assert!(refused.path.contains(";messageid=1699999999999"));
}

#[tokio::test]
async fn a_direct_message_goes_through_the_personal_conversation() {
    let s = setup().await;
    let url = s.fake.service_url();
    let conversation = s
        .connector
        .create_personal_conversation(&url, "29:1ada", TENANT_ID)
        .await
        .unwrap();
    assert_eq!(
        s.fake.personal_conversation_of("29:1ada"),
        Some(conversation.clone())
    );
    s.connector
        .send_to_conversation(
            &url,
            &conversation,
            &text_activity("You are admin until 09:20"),
        )
        .await
        .unwrap();
    let create = s
        .fake
        .calls()
        .into_iter()
        .find(|c| c.path == "/emea/v3/conversations")
        .unwrap();
    assert_eq!(
        create.body["bot"]["id"],
        format!("28:{}", tempadmin::sim::teams::APP_ID)
    );
    assert_eq!(create.body["isGroup"], false);
    assert_eq!(create.body["tenantId"], TENANT_ID);
}

#[tokio::test]
async fn a_member_lookup_gives_the_email_and_none_for_a_stranger() {
    let s = setup().await;
    let url = s.fake.service_url();
    let member = s
        .connector
        .member(&url, APPROVALS_CONVERSATION, "29:1ada")
        .await
        .unwrap()
        .expect("Ada is in the channel");
    assert_eq!(member.email.as_deref(), Some("ada@example.com"));
    assert_eq!(member.aad_object_id.as_deref(), Some("aad-ada"));
    assert_eq!(
        s.connector
            .member(&url, APPROVALS_CONVERSATION, "29:1nobody")
            .await,
        Ok(None)
    );
}

#[tokio::test]
async fn one_token_serves_many_calls_until_shortly_before_it_expires() {
    let s = setup().await;
    let url = s.fake.service_url();
    for _ in 0..3 {
        s.connector
            .member(&url, APPROVALS_CONVERSATION, "29:1ada")
            .await
            .unwrap();
    }
    assert_eq!(s.fake.token_requests(), 1);
    // 3599 s lifetime, renewed 5 minutes early.
    s.clock.advance(Duration::from_secs(3599 - 300 - 1));
    s.connector
        .member(&url, APPROVALS_CONVERSATION, "29:1ada")
        .await
        .unwrap();
    assert_eq!(s.fake.token_requests(), 1);
    s.clock.advance(Duration::from_secs(2));
    s.connector
        .member(&url, APPROVALS_CONVERSATION, "29:1ada")
        .await
        .unwrap();
    assert_eq!(s.fake.token_requests(), 2);
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once_and_the_call_succeeds() {
    let s = setup().await;
    let url = s.fake.service_url();
    s.connector
        .member(&url, APPROVALS_CONVERSATION, "29:1ada")
        .await
        .unwrap();
    s.fake.revoke_tokens();
    s.connector
        .member(&url, APPROVALS_CONVERSATION, "29:1ada")
        .await
        .unwrap();
    assert_eq!(s.fake.token_requests(), 2);
}

#[tokio::test]
async fn a_wrong_secret_is_a_permanent_error_that_does_not_quote_it() {
    let s = setup_with(|settings| {
        settings.app_password = SecretString::from("not-the-password".to_string());
    })
    .await;
    let error = s
        .connector
        .member(&s.fake.service_url(), APPROVALS_CONVERSATION, "29:1ada")
        .await
        .unwrap_err();
    let ChatError::Permanent(text) = &error else {
        panic!("{error:?}")
    };
    assert!(text.contains("invalid_client"), "{text}");
    assert!(!text.contains("not-the-password") && !text.contains(APP_PASSWORD));
    let recorded = &s.fake.calls()[0];
    assert_eq!(recorded.body["client_secret"], "***");
    assert_eq!(
        recorded.body["scope"],
        "https://api.botframework.com/.default"
    );
    assert_eq!(recorded.body["grant_type"], "client_credentials");
}

#[tokio::test]
async fn teams_throttling_and_outages_are_retryable() {
    let s = setup().await;
    let url = s.fake.service_url();
    s.connector
        .member(&url, APPROVALS_CONVERSATION, "29:1ada")
        .await
        .unwrap();
    s.fake.rate_limit_next(1, 7);
    assert_eq!(
        s.connector
            .member(&url, APPROVALS_CONVERSATION, "29:1ada")
            .await,
        Err(ChatError::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        })
    );
    s.fake.set_down(true);
    let down = s
        .connector
        .member(&url, APPROVALS_CONVERSATION, "29:1ada")
        .await;
    assert!(matches!(down, Err(ChatError::Transient(_))), "{down:?}");
}

#[tokio::test]
async fn a_connector_that_never_answers_is_abandoned_after_the_timeout() {
    let s = setup_with(|settings| settings.timeout = Duration::from_millis(300)).await;
    s.fake.set_hanging(true);
    let result = s
        .connector
        .send_to_conversation(
            &s.fake.service_url(),
            APPROVALS_CONVERSATION,
            &text_activity("hi"),
        )
        .await;
    assert!(
        matches!(result, Err(ChatError::Transient(ref e)) if e.contains("timed out")),
        "{result:?}"
    );
}

#[tokio::test]
async fn unknown_conversations_and_bad_cards_are_permanent_refusals() {
    let s = setup().await;
    let url = s.fake.service_url();
    let unknown = s
        .connector
        .send_to_conversation(&url, "19:nowhere@thread.tacv2", &text_activity("hi"))
        .await;
    assert!(
        matches!(unknown, Err(ChatError::Permanent(_))),
        "{unknown:?}"
    );

    let mut versionless = card("no version");
    versionless.as_object_mut().unwrap().remove("version");
    let refused = s
        .connector
        .send_to_conversation(&url, APPROVALS_CONVERSATION, &card_activity(versionless))
        .await;
    assert_eq!(
        refused,
        Err(ChatError::Permanent(
            "Teams connector: HTTP 400 Bad Request, BadArgument".into()
        ))
    );

    let missing = s
        .connector
        .update_activity(&url, APPROVALS_CONVERSATION, "999", &text_activity("x"))
        .await;
    assert!(
        matches!(missing, Err(ChatError::Permanent(_))),
        "{missing:?}"
    );
    assert!(s.fake.activities().is_empty());
}
