//! Plays Slack's side of the conversation: builds slash-command, button and
//! Events API (`app_home_opened`) payloads exactly as Slack posts them,
//! signs them with the signing secret, and sends them to our routes; or,
//! for Socket Mode, the same payloads as the JSON an envelope carries
//! (`*_payload`). Used by the demo, the tests and the benchmark.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;

use super::slack::{APP_ID, TEAM_ID};
use crate::slack::signature::SigningSecret;

/// Where a payload comes from: workspace, app and the conversation it was
/// typed or clicked in.
#[derive(Debug, Clone)]
pub struct Source {
    /// `team_id` / `team.id`.
    pub team: String,
    /// `api_app_id`.
    pub app: String,
    /// `channel_id` / `container.channel_id` and `channel.id`.
    pub channel: String,
}

impl Source {
    /// A command typed in #general of the simulated workspace.
    pub fn general() -> Self {
        Self {
            team: TEAM_ID.into(),
            app: APP_ID.into(),
            channel: "C0GENERAL".into(),
        }
    }

    /// A click in the approvals channel of the simulated workspace.
    pub fn approvals() -> Self {
        Self {
            channel: super::APPROVALS_CHANNEL.into(),
            ..Self::general()
        }
    }
}

/// Slack gives every invocation its own `trigger_id` (and every click its
/// own `action_ts`), so two commands typed alike are still two deliveries.
fn next_trigger() -> (String, String) {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (
        format!("13345224609.738474920.{n:031x}"),
        format!("1700000001.{:06}", n % 1_000_000),
    )
}

/// The form body of a `/tempadmin` slash command.
pub fn command_body(user_id: &str, text: &str, response_url: &str) -> String {
    command_body_from(&Source::general(), user_id, text, response_url)
}

/// [`command_body`] from elsewhere.
pub fn command_body_from(from: &Source, user_id: &str, text: &str, response_url: &str) -> String {
    serde_urlencoded::to_string(command_fields(from, user_id, text, response_url))
        .expect("form encoding of strings")
}

/// A `/tempadmin` slash command as a Socket Mode envelope's payload: the
/// form's fields as one JSON object.
pub fn command_payload(user_id: &str, text: &str, response_url: &str) -> serde_json::Value {
    let fields = command_fields(&Source::general(), user_id, text, response_url);
    fields
        .into_iter()
        .map(|(name, value)| (name.to_owned(), serde_json::Value::String(value)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn command_fields(
    from: &Source,
    user_id: &str,
    text: &str,
    response_url: &str,
) -> [(&'static str, String); 12] {
    let (trigger_id, _) = next_trigger();
    [
        ("token", "deprecated-verification-token".into()),
        ("team_id", from.team.clone()),
        ("team_domain", "sim".into()),
        ("channel_id", from.channel.clone()),
        ("channel_name", "general".into()),
        ("user_id", user_id.into()),
        ("user_name", "someone".into()),
        ("command", "/tempadmin".into()),
        ("text", text.into()),
        ("api_app_id", from.app.clone()),
        ("response_url", response_url.into()),
        ("trigger_id", trigger_id),
    ]
}

/// The form body of a `block_actions` click on one of our buttons.
pub fn click_body(
    user_id: &str,
    action_id: &str,
    value: &str,
    block_id: &str,
    response_url: &str,
) -> String {
    click_body_from(
        &Source::approvals(),
        user_id,
        action_id,
        value,
        block_id,
        response_url,
    )
}

/// [`click_body`] from elsewhere.
pub fn click_body_from(
    from: &Source,
    user_id: &str,
    action_id: &str,
    value: &str,
    block_id: &str,
    response_url: &str,
) -> String {
    form_of(click_payload_from(
        from,
        user_id,
        action_id,
        value,
        block_id,
        response_url,
    ))
}

/// A click on one of our buttons in the approvals channel, as a Socket
/// Mode envelope's payload (the JSON that HTTP sends as `payload=`).
pub fn click_payload(
    user_id: &str,
    action_id: &str,
    value: &str,
    block_id: &str,
    response_url: &str,
) -> serde_json::Value {
    click_payload_from(
        &Source::approvals(),
        user_id,
        action_id,
        value,
        block_id,
        response_url,
    )
}

/// [`click_payload`] from elsewhere.
pub fn click_payload_from(
    from: &Source,
    user_id: &str,
    action_id: &str,
    value: &str,
    block_id: &str,
    response_url: &str,
) -> serde_json::Value {
    let (_, action_ts) = next_trigger();
    let action = json!({
        "action_id": action_id,
        "block_id": block_id,
        "text": { "type": "plain_text", "text": "button", "emoji": true },
        "value": value,
        "type": "button",
        "action_ts": action_ts
    });
    block_actions(from, user_id, action, response_url)
}

/// The form body of a `block_actions` choice in one of our `static_select`
/// menus: Slack reports the chosen option, not a `value`.
pub fn select_body(
    user_id: &str,
    action_id: &str,
    block_id: &str,
    option: &serde_json::Value,
    response_url: &str,
) -> String {
    let (_, action_ts) = next_trigger();
    let action = json!({
        "type": "static_select",
        "action_id": action_id,
        "block_id": block_id,
        "selected_option": option,
        "placeholder": { "type": "plain_text", "text": "Choose", "emoji": true },
        "action_ts": action_ts
    });
    // The device picker is in the requester's conversation, not the approvals channel.
    form_of(block_actions(
        &Source::general(),
        user_id,
        action,
        response_url,
    ))
}

/// An interaction payload as HTTP posts it: one form field holding JSON.
fn form_of(payload: serde_json::Value) -> String {
    serde_urlencoded::to_string([("payload", payload.to_string())])
        .expect("form encoding of strings")
}

fn block_actions(
    from: &Source,
    user_id: &str,
    action: serde_json::Value,
    response_url: &str,
) -> serde_json::Value {
    let (trigger_id, _) = next_trigger();
    json!({
        "type": "block_actions",
        "team": { "id": from.team, "domain": "sim" },
        "user": { "id": user_id, "username": "someone", "name": "someone", "team_id": from.team },
        "api_app_id": from.app,
        "token": "deprecated-verification-token",
        "container": { "type": "message", "message_ts": "1700000000.000100", "channel_id": from.channel, "is_ephemeral": false },
        "trigger_id": trigger_id,
        "channel": { "id": from.channel, "name": "somewhere" },
        "response_url": response_url,
        "actions": [action]
    })
}

/// The JSON body of an Events API `event_callback` carrying `event`, as
/// Slack posts it to the request URL (and as Socket Mode's `events_api`
/// envelopes carry it in `payload`).
pub fn event_callback_body(from: &Source, event_id: &str, event: serde_json::Value) -> String {
    json!({
        "token": "deprecated-verification-token",
        "team_id": from.team,
        "api_app_id": from.app,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1_700_000_001,
        "authorizations": [{
            "enterprise_id": null,
            "team_id": from.team,
            "user_id": super::slack::BOT_USER_ID,
            "is_bot": true,
            "is_enterprise_install": false
        }],
        "is_ext_shared_channel": false
    })
    .to_string()
}

/// `user` opened the bot's Home tab (`app_home_opened`, tab `home`), with
/// the view Slack last stored for them when there is one.
pub fn app_home_opened(user: &str, view: Option<&serde_json::Value>) -> serde_json::Value {
    let mut event = json!({
        "type": "app_home_opened",
        "user": user,
        "channel": format!("D{}", user.trim_start_matches(['U', 'W'])),
        "tab": "home",
        "event_ts": "1700000001.000100"
    });
    if let Some(view) = view {
        event["view"] = view.clone();
    }
    event
}

/// The JSON body of Slack's `url_verification` handshake.
pub fn url_verification_body(challenge: &str) -> String {
    json!({
        "token": "deprecated-verification-token",
        "challenge": challenge,
        "type": "url_verification"
    })
    .to_string()
}

/// The form body of a click on one of our buttons in `user_id`'s Home tab:
/// the container is the view (no message, no channel, no `response_url`),
/// and the payload carries the view as published.
pub fn home_click_body(
    from: &Source,
    user_id: &str,
    action_id: &str,
    value: &str,
    view: &serde_json::Value,
) -> String {
    let (trigger_id, action_ts) = next_trigger();
    let view_id = view["id"].as_str().unwrap_or("V00000001");
    let mut view = view.clone();
    view["id"] = json!(view_id);
    view["team_id"] = json!(from.team);
    view["app_id"] = json!(from.app);
    view["hash"] = json!("1700000001.abcdef");
    view["state"] = json!({ "values": {} });
    let payload = json!({
        "type": "block_actions",
        "user": { "id": user_id, "username": "someone", "name": "someone", "team_id": from.team },
        "api_app_id": from.app,
        "token": "deprecated-verification-token",
        "container": { "type": "view", "view_id": view_id },
        "trigger_id": trigger_id,
        "team": { "id": from.team, "domain": "sim" },
        "enterprise": null,
        "is_enterprise_install": false,
        "view": view,
        "actions": [{
            "action_id": action_id,
            "block_id": "home",
            "text": { "type": "plain_text", "text": "button", "emoji": true },
            "value": value,
            "type": "button",
            "action_ts": action_ts
        }]
    });
    serde_urlencoded::to_string([("payload", payload.to_string())])
        .expect("form encoding of strings")
}

/// Sends the JSON `body` to `url` signed as Slack would at `now_unix`
/// (the Events API posts JSON), as retry `retry` when given
/// (`X-Slack-Retry-Num`, with `X-Slack-Retry-Reason`).
pub async fn post_signed_json(
    http: &reqwest::Client,
    url: &str,
    secret: &SigningSecret,
    now_unix: i64,
    body: String,
    retry: Option<u32>,
) -> reqwest::Result<reqwest::Response> {
    let signature = secret.sign(now_unix, body.as_bytes());
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", now_unix.to_string())
        .header("x-slack-signature", signature);
    if let Some(n) = retry {
        request = request
            .header("x-slack-retry-num", n.to_string())
            .header("x-slack-retry-reason", "http_timeout");
    }
    request.body(body).send().await
}

/// Sends `body` to `url` signed as Slack would at `now_unix`.
pub async fn post_signed(
    http: &reqwest::Client,
    url: &str,
    secret: &SigningSecret,
    now_unix: i64,
    body: String,
) -> reqwest::Result<reqwest::Response> {
    let signature = secret.sign(now_unix, body.as_bytes());
    http.post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", now_unix.to_string())
        .header("x-slack-signature", signature)
        .body(body)
        .send()
        .await
}
