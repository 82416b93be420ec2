//! Plays the Bot Framework Service's side towards our `/teams/messages`:
//! builds activities exactly as Teams sends them (a message in a channel
//! with an `<at>` mention of the bot, a message in a personal chat, an
//! `invoke` of `adaptiveCard/action` from a card's `Action.Execute`, a
//! `conversationUpdate` when the bot is installed) and posts them with the
//! `Authorization` header the fake signs ([`FakeBotFramework::authorization`]).

use serde_json::{json, Value};

use super::teams::{FakeBotFramework, SimUser, APP_ID, CHANNEL_ID, TENANT_ID};
use crate::domain::Timestamp;

/// The bot's display name in the simulations (what `<at>…</at>` shows).
pub const BOT_NAME: &str = "tempadmin";

fn bot_account() -> Value {
    json!({ "id": format!("28:{APP_ID}"), "name": BOT_NAME })
}

fn user_account(user: &SimUser) -> Value {
    json!({ "id": user.id, "name": user.name, "aadObjectId": user.aad_object_id })
}

fn base(kind: &str, service_url: &str, id: &str, now: Timestamp) -> Value {
    json!({
        "type": kind,
        "id": id,
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "localTimestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "serviceUrl": service_url,
        "channelId": CHANNEL_ID,
        "recipient": bot_account(),
        "locale": "en-US"
    })
}

/// A message in a channel that @mentions the bot: `<at>tempadmin</at> {text}`.
/// The conversation id carries the thread root (`;messageid=`), as Teams
/// sends it for a new post in a channel.
pub fn channel_message(
    service_url: &str,
    channel_conversation_id: &str,
    from: &SimUser,
    text: &str,
    now: Timestamp,
) -> Value {
    let id = (now.timestamp_millis()).to_string();
    let mut activity = base("message", service_url, &id, now);
    let mention = format!("<at>{BOT_NAME}</at>");
    activity["from"] = user_account(from);
    activity["text"] = Value::String(format!("{mention} {text}"));
    activity["textFormat"] = json!("plain");
    activity["conversation"] = json!({
        "isGroup": true,
        "conversationType": "channel",
        "tenantId": TENANT_ID,
        "id": format!("{channel_conversation_id};messageid={id}")
    });
    activity["entities"] = json!([
        { "type": "mention", "text": mention, "mentioned": bot_account() },
        { "type": "clientInfo", "locale": "en-US", "country": "US", "platform": "Web" }
    ]);
    activity["channelData"] = json!({
        "teamsChannelId": channel_conversation_id,
        "teamsTeamId": "19:team0000@thread.tacv2",
        "channel": { "id": channel_conversation_id },
        "team": { "id": "19:team0000@thread.tacv2" },
        "tenant": { "id": TENANT_ID }
    });
    activity
}

/// Gives a built activity the id `id`. A new post in a channel is its
/// thread's root, so its conversation id (`{channel};messageid={id}`)
/// changes with it, as Teams would have sent it.
pub fn renumber(activity: &mut Value, id: &str) {
    let old = activity["id"].as_str().unwrap_or_default().to_owned();
    if let Some(conversation) = activity["conversation"]["id"].as_str() {
        if let Some(channel) = conversation.strip_suffix(&format!(";messageid={old}")) {
            activity["conversation"]["id"] = json!(format!("{channel};messageid={id}"));
        }
    }
    activity["id"] = json!(id);
}

/// A message in the person's 1:1 chat with the bot (no mention needed).
pub fn personal_message(
    service_url: &str,
    conversation_id: &str,
    from: &SimUser,
    text: &str,
    now: Timestamp,
) -> Value {
    let id = now.timestamp_millis().to_string();
    let mut activity = base("message", service_url, &id, now);
    activity["from"] = user_account(from);
    activity["text"] = Value::String(text.to_owned());
    activity["textFormat"] = json!("plain");
    activity["conversation"] = json!({
        "conversationType": "personal",
        "tenantId": TENANT_ID,
        "id": conversation_id
    });
    activity["channelData"] = json!({ "tenant": { "id": TENANT_ID } });
    activity
}

/// A click on an `Action.Execute` of the card `card_activity_id`: an
/// `invoke` named `adaptiveCard/action` with `value.action.verb` and `data`.
pub fn card_action(
    service_url: &str,
    conversation_id: &str,
    card_activity_id: &str,
    from: &SimUser,
    verb: &str,
    data: Value,
    now: Timestamp,
) -> Value {
    let id = format!("f:{}", now.timestamp_millis());
    let mut activity = base("invoke", service_url, &id, now);
    activity["name"] = json!("adaptiveCard/action");
    activity["from"] = user_account(from);
    activity["replyToId"] = json!(card_activity_id);
    activity["conversation"] = json!({
        "isGroup": conversation_id.starts_with("19:"),
        "conversationType": if conversation_id.starts_with("19:") { "channel" } else { "personal" },
        "tenantId": TENANT_ID,
        "id": conversation_id
    });
    activity["value"] = json!({
        "action": { "type": "Action.Execute", "verb": verb, "data": data },
        "trigger": "manual"
    });
    activity["channelData"] =
        json!({ "tenant": { "id": TENANT_ID }, "source": { "name": "message" } });
    activity
}

/// The bot was added to a conversation (installed in a team, or a person
/// opened a chat with it): a `conversationUpdate` with `membersAdded`.
pub fn conversation_update(
    service_url: &str,
    conversation_id: &str,
    members_added: &[Value],
    now: Timestamp,
) -> Value {
    let id = format!("f:{}", now.timestamp_millis());
    let mut activity = base("conversationUpdate", service_url, &id, now);
    activity["from"] =
        json!({ "id": "29:installer", "aadObjectId": "00000000-0000-0000-0000-0000000000ff" });
    activity["membersAdded"] = json!(members_added);
    activity["conversation"] = json!({
        "isGroup": conversation_id.starts_with("19:"),
        "conversationType": if conversation_id.starts_with("19:") { "channel" } else { "personal" },
        "tenantId": TENANT_ID,
        "id": conversation_id
    });
    activity["channelData"] =
        json!({ "tenant": { "id": TENANT_ID }, "eventType": "teamMemberAdded" });
    activity
}

/// `user` installed the bot for themselves: a `conversationUpdate` in
/// their new 1:1 chat with the bot, from them, adding the bot.
pub fn personal_install(service_url: &str, user: &SimUser, now: Timestamp) -> Value {
    let chat = FakeBotFramework::personal_conversation_id(&user.id);
    let mut activity = conversation_update(service_url, &chat, &[bot_account()], now);
    activity["from"] = user_account(user);
    activity["channelData"] = json!({ "tenant": { "id": TENANT_ID } });
    activity
}

/// `installer` added the bot to a team: a `conversationUpdate` in the
/// team's General channel (whose conversation id is the team's id), from
/// them, adding the bot, with `eventType: teamMemberAdded` and the team in
/// `channelData`, as Teams sends it.
pub fn team_install(
    service_url: &str,
    team_id: &str,
    installer: &SimUser,
    now: Timestamp,
) -> Value {
    let mut activity = conversation_update(service_url, team_id, &[bot_account()], now);
    activity["from"] = user_account(installer);
    activity["channelData"] = json!({
        "team": {
            "id": team_id,
            "name": "IT",
            "aadGroupId": "00000000-0000-4000-8000-0000000000ee"
        },
        "eventType": "teamMemberAdded",
        "tenant": { "id": TENANT_ID }
    });
    activity
}

/// The bot's own account, as `membersAdded` names it when it is installed.
pub fn bot_member() -> Value {
    bot_account()
}

/// Posts `activity` to `url` (our `/teams/messages`) signed by `fake` as
/// the Bot Framework Service would at `now`; the fake learns of it first,
/// as Teams knows every message before the bot hears of it.
pub async fn post_activity(
    http: &reqwest::Client,
    url: &str,
    fake: &FakeBotFramework,
    activity: &Value,
    now: Timestamp,
) -> reqwest::Result<reqwest::Response> {
    fake.note_inbound(activity);
    http.post(url)
        .header(
            reqwest::header::AUTHORIZATION,
            fake.authorization(activity, now),
        )
        .json(activity)
        .send()
        .await
}
