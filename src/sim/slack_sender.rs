//! Plays Slack's side of the conversation: builds slash-command and button
//! payloads exactly as Slack posts them, signs them with the signing secret,
//! and sends them to our routes. Used by the demo, the tests and the benchmark.

use serde_json::json;

use crate::slack::signature::SigningSecret;

/// The form body of a `/tempadmin` slash command.
pub fn command_body(user_id: &str, text: &str, response_url: &str) -> String {
    serde_urlencoded::to_string([
        ("token", "deprecated-verification-token"),
        ("team_id", "T0SIM"),
        ("team_domain", "sim"),
        ("channel_id", "C0GENERAL"),
        ("channel_name", "general"),
        ("user_id", user_id),
        ("user_name", "someone"),
        ("command", "/tempadmin"),
        ("text", text),
        ("api_app_id", "A0TEMPADMIN"),
        ("response_url", response_url),
        ("trigger_id", "13345224609.738474920.8088930838d88f008e0"),
    ])
    .expect("form encoding of strings")
}

/// The form body of a `block_actions` click on one of our buttons.
pub fn click_body(
    user_id: &str,
    action_id: &str,
    value: &str,
    block_id: &str,
    response_url: &str,
) -> String {
    let action = json!({
        "action_id": action_id,
        "block_id": block_id,
        "text": { "type": "plain_text", "text": "button", "emoji": true },
        "value": value,
        "type": "button",
        "action_ts": "1700000001.000200"
    });
    block_actions_body(user_id, action, response_url)
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
    let action = json!({
        "type": "static_select",
        "action_id": action_id,
        "block_id": block_id,
        "selected_option": option,
        "placeholder": { "type": "plain_text", "text": "Choose", "emoji": true },
        "action_ts": "1700000001.000200"
    });
    block_actions_body(user_id, action, response_url)
}

fn block_actions_body(user_id: &str, action: serde_json::Value, response_url: &str) -> String {
    let payload = json!({
        "type": "block_actions",
        "team": { "id": "T0SIM", "domain": "sim" },
        "user": { "id": user_id, "username": "someone", "name": "someone", "team_id": "T0SIM" },
        "api_app_id": "A0TEMPADMIN",
        "token": "deprecated-verification-token",
        "container": { "type": "message", "message_ts": "1700000000.000100", "channel_id": "C0APPROVALS", "is_ephemeral": false },
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "channel": { "id": "C0APPROVALS", "name": "approvals" },
        "response_url": response_url,
        "actions": [action]
    });
    serde_urlencoded::to_string([("payload", payload.to_string())])
        .expect("form encoding of strings")
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
