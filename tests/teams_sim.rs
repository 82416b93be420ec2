//! The fake Bot Framework is as strict as the real one: it refuses what
//! the real services refuse, and what it sends verifies like the real thing.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use tempadmin::engine::clock::ManualClock;
use tempadmin::sim::teams::{
    FakeBotFramework, SimUser, APPROVALS_CONVERSATION, APP_ID, APP_PASSWORD, CHANNEL_ID, TENANT_ID,
};
use tempadmin::sim::teams_sender;
use tempadmin::teams::auth::BotFrameworkAuth;

fn grace() -> SimUser {
    SimUser {
        id: "29:1grace".into(),
        name: "Grace Hopper".into(),
        aad_object_id: "aad-grace".into(),
        email: Some("grace@example.com".into()),
        user_principal_name: "grace@example.com".into(),
    }
}

async fn token_answer(fake: &FakeBotFramework, form: &[(&str, &str)]) -> (u16, Value) {
    let url = fake.token_url().replace("{tenant}", TENANT_ID);
    let response = reqwest::Client::new()
        .post(url)
        .form(form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn the_token_endpoint_checks_the_secret_and_the_scope_as_entra_id_does() {
    let fake = FakeBotFramework::start().await;
    let good = [
        ("grant_type", "client_credentials"),
        ("client_id", APP_ID),
        ("client_secret", APP_PASSWORD),
        ("scope", "https://api.botframework.com/.default"),
    ];
    let (status, body) = token_answer(&fake, &good).await;
    assert_eq!(status, 200);
    assert!(body["access_token"].is_string() && body["expires_in"].is_u64());

    let mut wrong_secret = good;
    wrong_secret[2].1 = "guess";
    let (status, body) = token_answer(&fake, &wrong_secret).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    let mut wrong_scope = good;
    wrong_scope[3].1 = "https://graph.microsoft.com/.default";
    let (status, body) = token_answer(&fake, &wrong_scope).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
}

#[tokio::test]
async fn the_connector_refuses_calls_without_an_issued_token() {
    let fake = FakeBotFramework::start().await;
    let url = format!(
        "{}v3/conversations/{}/activities",
        fake.service_url(),
        APPROVALS_CONVERSATION
    );
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth("made-up")
        .json(&json!({"type": "message", "text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["message"],
        "Authorization has been denied for this request."
    );
    assert!(fake.activities().is_empty());
}

#[tokio::test]
async fn activities_from_the_sender_carry_a_header_that_verifies() {
    let fake = FakeBotFramework::start().await;
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap(),
    ));
    let settings = fake.settings();
    let auth = BotFrameworkAuth::new(
        &settings,
        tempadmin::teams::http_client(settings.timeout),
        clock.clone(),
    );
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
    let service_url = fake.service_url();
    let activities = [
        teams_sender::channel_message(
            &service_url,
            APPROVALS_CONVERSATION,
            &grace(),
            "20m printer",
            now,
        ),
        teams_sender::personal_message(&service_url, "a:1grace", &grace(), "status", now),
        teams_sender::card_action(
            &service_url,
            APPROVALS_CONVERSATION,
            "1700000000001",
            &grace(),
            "tempadmin_approve",
            json!({ "request_id": "r-1" }),
            now,
        ),
        teams_sender::conversation_update(
            &service_url,
            APPROVALS_CONVERSATION,
            &[teams_sender::bot_member()],
            now,
        ),
    ];
    for activity in &activities {
        let header = fake.authorization(activity, now);
        let claims = auth
            .verify(
                Some(&header),
                activity["serviceUrl"].as_str().unwrap(),
                activity["channelId"].as_str().unwrap(),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", activity["type"]));
        assert_eq!(claims.service_url, service_url);
    }
    assert_eq!(activities[0]["channelId"], CHANNEL_ID);
    assert!(activities[0]["text"]
        .as_str()
        .unwrap()
        .starts_with("<at>tempadmin</at> "));
    assert_eq!(activities[2]["name"], "adaptiveCard/action");
    assert_eq!(
        activities[2]["value"]["action"]["verb"],
        "tempadmin_approve"
    );
    assert_eq!(
        activities[2]["value"]["action"]["data"]["request_id"],
        "r-1"
    );
}

#[tokio::test]
async fn the_connector_measures_a_message_as_utf16_and_refuses_it_over_100_kb() {
    let fake = FakeBotFramework::start().await;
    let (_, token) = token_answer(
        &fake,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", APP_ID),
            ("client_secret", APP_PASSWORD),
            ("scope", "https://api.botframework.com/.default"),
        ],
    )
    .await;
    let token = token["access_token"].as_str().unwrap().to_owned();
    let url = format!(
        "{}v3/conversations/{}/activities",
        fake.service_url(),
        APPROVALS_CONVERSATION
    );
    let post = |chars: usize| {
        let (url, token) = (url.clone(), token.clone());
        async move {
            let body = json!({ "type": "message", "text": "x".repeat(chars) });
            let response = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    // 60,000 ASCII characters are 60 KB as UTF-8 but 120 KB as UTF-16.
    let (status, body) = post(60_000).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "MessageSizeTooBig");
    assert_eq!(post(40_000).await.0, 201, "80 KB as UTF-16 goes through");
    assert_eq!(fake.activities().len(), 1);
}
