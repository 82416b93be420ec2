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
        tenant_id: TENANT_ID.into(),
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
    wrong_scope[3].1 = "https://management.azure.com/.default";
    let (status, body) = token_answer(&fake, &wrong_scope).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
}

fn token_form(scope: &'static str) -> [(&'static str, &'static str); 4] {
    [
        ("grant_type", "client_credentials"),
        ("client_id", APP_ID),
        ("client_secret", APP_PASSWORD),
        ("scope", scope),
    ]
}

async fn token_for(fake: &FakeBotFramework, scope: &'static str) -> String {
    let (status, body) = token_answer(fake, &token_form(scope)).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

const GRAPH: &str = "https://graph.microsoft.com/.default";
const CONNECTOR: &str = "https://api.botframework.com/.default";
const ADMINS: &str = "0f1e2d3c-0000-4000-8000-00000000a001";
const NESTED: &str = "0f1e2d3c-0000-4000-8000-00000000a002";

/// `GET {graph}/v1.0/{path}` with `token` and `ConsistencyLevel:
/// eventual`, as tempadmin asks; status and body.
async fn graph_get(fake: &FakeBotFramework, path: &str, token: Option<&str>) -> (u16, Value) {
    graph_get_with(fake, path, token, Some("eventual")).await
}

/// [`graph_get`] with this `ConsistencyLevel`, or none.
async fn graph_get_with(
    fake: &FakeBotFramework,
    path: &str,
    token: Option<&str>,
    consistency: Option<&str>,
) -> (u16, Value) {
    let url = if path.starts_with("http") {
        path.to_owned()
    } else {
        format!("{}/v1.0/{path}", fake.graph_url())
    };
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(level) = consistency {
        request = request.header("ConsistencyLevel", level);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn the_graph_scope_gets_a_token_for_graph_that_the_connector_refuses_and_back() {
    let fake = FakeBotFramework::start().await;
    fake.add_user(grace());
    fake.set_group(ADMINS, &["aad-grace"]);
    let graph_token = token_for(&fake, GRAPH).await;
    let connector_token = token_for(&fake, CONNECTOR).await;
    let members = format!("groups/{ADMINS}/transitiveMembers/microsoft.graph.user?$count=true");

    let post = |token: String| {
        let url = format!(
            "{}v3/conversations/{}/activities",
            fake.service_url(),
            APPROVALS_CONVERSATION
        );
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&json!({"type": "message", "text": "hi"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        post(graph_token.clone()).await,
        401,
        "a Graph token is no good for the connector"
    );
    assert_eq!(post(connector_token.clone()).await, 201);

    let (status, body) = graph_get(&fake, &members, Some(&connector_token)).await;
    assert_eq!(status, 401, "a Bot Framework token is no good for Graph");
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert!(body["error"]["innerError"]["request-id"].is_string());
    let (status, body) = graph_get(&fake, &members, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("InvalidAuthenticationToken"))
    );

    let (status, body) = graph_get(&fake, &members, Some(&graph_token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"][0]["id"], "aad-grace");
    assert_eq!(body["value"][0]["mail"], "grace@example.com");
}

#[tokio::test]
async fn graph_lists_nested_members_page_by_page_with_next_links() {
    let fake = FakeBotFramework::start().await;
    fake.add_user(grace());
    fake.set_group(ADMINS, &["aad-1", "aad-2", NESTED, "aad-3"]);
    fake.set_group(NESTED, &["aad-grace", "aad-2", ADMINS]);
    fake.set_graph_page_size(2);
    let token = token_for(&fake, GRAPH).await;
    let mut next = Some(format!(
        "groups/{ADMINS}/transitiveMembers/microsoft.graph.user?$count=true&$select=id,mail,userPrincipalName&$top=999"
    ));
    let mut ids = Vec::new();
    let mut pages = 0;
    while let Some(path) = next.take() {
        let (status, body) = graph_get(&fake, &path, Some(&token)).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        for user in body["value"].as_array().unwrap() {
            assert_eq!(
                user.as_object().unwrap().keys().collect::<Vec<_>>(),
                ["id", "mail", "userPrincipalName"],
                "only what $select names"
            );
            ids.push(user["id"].as_str().unwrap().to_owned());
        }
        assert!(body["@odata.context"]
            .as_str()
            .unwrap()
            .contains("#users(id,mail,userPrincipalName)"));
        next = body["@odata.nextLink"].as_str().map(str::to_owned);
        if let Some(link) = &next {
            assert!(
                link.starts_with(&fake.graph_url()) && link.contains("$skiptoken="),
                "{link}"
            );
            assert!(
                link.contains("$count=true&$select=id,mail,userPrincipalName&$top=999&"),
                "{link}"
            );
        }
    }
    assert_eq!(pages, 2);
    ids.sort();
    assert_eq!(
        ids,
        ["aad-1", "aad-2", "aad-3", "aad-grace"],
        "each member once, groups left out"
    );

    // Without the cast, nested groups are members too.
    fake.set_graph_page_size(100);
    let (_, body) = graph_get(
        &fake,
        &format!("groups/{ADMINS}/transitiveMembers?$top=10"),
        Some(&token),
    )
    .await;
    assert!(body["value"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["@odata.type"] == "#microsoft.graph.group" && m["id"] == NESTED));
}

#[tokio::test]
async fn graph_refuses_unknown_groups_bad_ids_bad_queries_and_a_missing_permission() {
    let fake = FakeBotFramework::start().await;
    fake.set_group(ADMINS, &["aad-grace"]);
    let token = token_for(&fake, GRAPH).await;
    let cases = [
        (
            "groups/0f1e2d3c-0000-4000-8000-00000000ffff/transitiveMembers/microsoft.graph.user?$count=true"
                .to_owned(),
            404,
            "Request_ResourceNotFound",
        ),
        (
            "groups/admins/transitiveMembers/microsoft.graph.user?$count=true".to_owned(),
            400,
            "Request_BadRequest",
        ),
        (
            format!("groups/{ADMINS}/transitiveMembers/microsoft.graph.user?$count=true&$top=1000"),
            400,
            "Request_BadRequest",
        ),
        (
            format!("groups/{ADMINS}/transitiveMembers/microsoft.graph.user?$count=true&$select=id,shoeSize"),
            400,
            "BadRequest",
        ),
        (
            format!("groups/{ADMINS}/transitiveMembers/microsoft.graph.user?$count=true&$skiptoken=forged"),
            400,
            "Request_BadRequest",
        ),
        (format!("groups/{ADMINS}/owners"), 400, "BadRequest"),
    ];
    for (path, status, code) in &cases {
        let (got, body) = graph_get(&fake, path, Some(&token)).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (*status, Some(*code)),
            "{path}: {body}"
        );
        assert!(body["error"]["message"].is_string());
    }
    fake.set_graph_permission_granted(false);
    let (status, body) = graph_get(
        &fake,
        &format!("groups/{ADMINS}/transitiveMembers/microsoft.graph.user?$count=true"),
        Some(&token),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("Authorization_RequestDenied"))
    );
}

#[tokio::test]
async fn a_deleted_chat_answers_404_conversation_not_found_and_is_opened_again_under_a_new_id() {
    let fake = FakeBotFramework::start().await;
    fake.add_user(grace());
    let token = token_for(&fake, CONNECTOR).await;
    let http = &reqwest::Client::new();
    let (fake_ref, token) = (&fake, &token);
    let open = || async move {
        let response = http
            .post(format!("{}v3/conversations", fake_ref.service_url()))
            .bearer_auth(token)
            .json(&json!({
                "bot": { "id": format!("28:{APP_ID}") },
                "members": [{ "id": "29:1grace" }],
                "isGroup": false,
                "tenantId": TENANT_ID
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let post = move |chat: String| async move {
        let response = http
            .post(format!(
                "{}v3/conversations/{chat}/activities",
                fake_ref.service_url()
            ))
            .bearer_auth(token)
            .json(&json!({"type": "message", "text": "hi"}))
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    };
    let chat = open().await;
    assert_eq!(open().await, chat, "the existing chat is answered");
    assert_eq!(post(chat.clone()).await.0, 201);
    fake.delete_conversation(&chat);
    let (status, body) = post(chat.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("ConversationNotFound"))
    );
    let again = open().await;
    assert_ne!(again, chat);
    assert_eq!(
        fake.personal_conversation_of("29:1grace"),
        Some(again.clone())
    );
    assert_eq!(post(again).await.0, 201);
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

#[tokio::test]
async fn a_channel_post_threads_by_its_conversation_id_and_an_unknown_root_is_no_conversation() {
    let fake = FakeBotFramework::start().await;
    let token = token_for(&fake, CONNECTOR).await;
    let http = reqwest::Client::new();
    let post = |path: String, text: &'static str| {
        let request = http
            .post(format!("{}v3/conversations/{path}", fake.service_url()))
            .bearer_auth(&token)
            .json(&json!({ "type": "message", "text": text }));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let channel: String =
        url::form_urlencoded::byte_serialize(APPROVALS_CONVERSATION.as_bytes()).collect();
    let (status, root) = post(format!("{channel}/activities"), "root").await;
    assert_eq!(status, 201);
    let root = root["id"].as_str().unwrap().to_owned();
    let thread: String = url::form_urlencoded::byte_serialize(
        format!("{APPROVALS_CONVERSATION};messageid={root}").as_bytes(),
    )
    .collect();
    assert_eq!(post(format!("{thread}/activities"), "in").await.0, 201);
    // A reply to the bare channel is a post at the top.
    assert_eq!(
        post(format!("{channel}/activities/{root}"), "out").await.0,
        201
    );
    let under: Vec<_> = fake
        .thread(APPROVALS_CONVERSATION, &root)
        .into_iter()
        .map(|a| a.activity["text"].clone())
        .collect();
    assert_eq!(under, [json!("in")]);
    let tops = fake
        .activities()
        .into_iter()
        .filter(|a| a.reply_to.is_none())
        .count();
    assert_eq!(tops, 2);

    let unknown: String = url::form_urlencoded::byte_serialize(
        format!("{APPROVALS_CONVERSATION};messageid=1699999999999").as_bytes(),
    )
    .collect();
    let (status, body) = post(format!("{unknown}/activities"), "lost").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("ConversationNotFound"))
    );
}

#[tokio::test]
async fn graph_serves_the_user_cast_only_as_an_advanced_query_with_its_count() {
    let fake = FakeBotFramework::start().await;
    fake.add_user(grace());
    fake.set_group(ADMINS, &["aad-grace", "aad-2", NESTED]);
    fake.set_group(NESTED, &["aad-3"]);
    let token = token_for(&fake, GRAPH).await;
    let cast = format!("groups/{ADMINS}/transitiveMembers/microsoft.graph.user");
    for (path, consistency) in [
        (cast.clone(), Some("eventual")),
        (format!("{cast}?$count=true"), None),
        (format!("{cast}?$count=true"), Some("session")),
        (format!("{cast}?$count=false"), Some("eventual")),
    ] {
        let (status, body) = graph_get_with(&fake, &path, Some(&token), consistency).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("Request_UnsupportedQuery")),
            "{path} with {consistency:?}"
        );
    }
    let (status, body) = graph_get(&fake, &format!("{cast}?$count=true"), Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["@odata.count"], 3);
    // Without the cast, no advanced query is needed.
    let (status, _) = graph_get_with(
        &fake,
        &format!("groups/{ADMINS}/transitiveMembers"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
}
