//! `POST /teams/messages`, the Bot Framework messaging endpoint. Verify the
//! JWT before anything else (401 and nothing acted on otherwise), parse the
//! activity into the engine's commands and clicks, hand over, answer:
//!
//! - `message`: a command, in a personal chat or in a channel that
//!   @mentions the bot (the `<at>…</at>` mention is stripped); the grammar
//!   of the slash command, with or without a leading `tempadmin`. The Bot
//!   Framework takes no answer in the HTTP response of a message, so the
//!   immediate answer is sent as a reply through the connector (in a
//!   channel, into the command's thread) and the HTTP answer is an empty
//!   200.
//! - `invoke` `adaptiveCard/action`: an `Action.Execute` click; the HTTP
//!   answer is the refreshed card (Teams waits about 5 s for it), but only
//!   when the request is a Teams request that the clicker may see: an
//!   Approve or Deny in the approvals channel (where every Teams card is),
//!   End now by the requester, whoever ended it or an approver. Any other
//!   click, on an unknown request or a Slack one included, is answered with
//!   a short sentence that says nothing about any request.
//!   Decisions count only from the approvals channel. The clicker's
//!   conversation reference is kept as for a message (their `serviceUrl`
//!   and tenant; the conversation's id only when the card is in their 1:1
//!   chat).
//! - `conversationUpdate` (the bot installed for a person or added to a
//!   team, people added to a team): the conversation reference of whoever
//!   did it and of every person added is kept (their `serviceUrl`, tenant,
//!   and in a personal chat its id), as it is for whoever sends a command;
//!   nothing else happens. Anything else: acknowledged.
//!
//! Only Teams' own activities of our tenant act: `channelId` is
//! `msteams` (the keys also endorse the Emulator, Web Chat and Direct Line,
//! whose clients set the sender themselves), `channelData.tenant.id` is
//! `teams.tenant_id`, and so is `conversation.tenantId` where present.
//! Anything else is acknowledged with 200, logged, and changes nothing.
//! The same activity delivered twice acts once (its id is its delivery key).
//! An activity in the approvals channel also tells where Teams serves the
//! channel (its `serviceUrl`), which is kept for the calls about it.
//!
//! `GET /privacy` and `GET /terms` serve the pages the app manifest links
//! to.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::{ApiError, AppState, TeamsEdge};
use crate::domain::{ChatUserId, ConversationReference, Platform, Request, RequestId, SystemId};
use crate::engine::ports::Chat;
use crate::engine::{Click, CommandInput, Delivery};
use crate::teams::chat::{command_thread, Destination};
use crate::teams::package;
use crate::teams::render::{self, verbs};
use crate::teams::TeamsSettings;
use crate::wording;

/// How long an activity id is remembered: the Bot Framework may deliver
/// the same activity again with a fresh token, so the token's own life is
/// not enough.
const REMEMBER_DELIVERY: chrono::TimeDelta = chrono::TimeDelta::hours(24);

fn edge(state: &AppState) -> Result<&TeamsEdge, ApiError> {
    state
        .teams
        .as_deref()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a Teams route without Teams")))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// `POST /teams/messages`.
pub(super) async fn messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let teams = edge(&state)?;
    // The token is checked against the activity's serviceUrl and channelId,
    // so those two are read first; nothing else is looked at before the
    // check. A body that is not JSON has neither and fails it.
    let activity: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let service_url = str_at(&activity, "/serviceUrl").unwrap_or_default();
    let channel_id = str_at(&activity, "/channelId").unwrap_or_default();
    if let Err(e) = teams
        .auth
        .verify(authorization, service_url, channel_id)
        .await
    {
        state
            .engine
            .metrics()
            .inbound(Platform::Teams)
            .rejected
            .inc();
        tracing::warn!(reason = %e, "refused a Teams activity");
        return Err(ApiError::Unauthorized);
    }
    // The keys also endorse the Emulator, Web Chat and Direct Line, whose
    // clients name the sender themselves: only Teams says who someone is.
    if channel_id != TEAMS_CHANNEL {
        tracing::warn!(
            channel = channel_id,
            "ignored an activity from a Bot Framework channel other than Teams"
        );
        return Ok(().into_response());
    }
    if !of_our_tenant(&activity, teams.chat.settings()) {
        tracing::warn!("refused a Teams activity from another tenant, or of none");
        return Ok(().into_response());
    }
    if is_in(&activity, &teams.chat.settings().approvals_conversation) {
        teams.chat.note_approvals_service_url(service_url).await;
    }
    match str_at(&activity, "/type").unwrap_or_default() {
        "message" => message(&state, teams, &activity).await,
        "invoke" if str_at(&activity, "/name") == Some("adaptiveCard/action") => {
            invoke(&state, teams, &activity).await
        }
        "conversationUpdate" => {
            conversation_update(&state, teams, &activity).await;
            Ok(().into_response())
        }
        _ => Ok(().into_response()),
    }
}

/// `GET /privacy`: the page the Teams app manifest's `privacyUrl` names.
pub(super) async fn privacy() -> Response {
    page(package::PRIVACY_PAGE)
}

/// `GET /terms`: the page the Teams app manifest's `termsOfUseUrl` names.
pub(super) async fn terms() -> Response {
    page(package::TERMS_PAGE)
}

/// A static page of ours: HTML that loads nothing and runs nothing.
fn page(html: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        html,
    )
        .into_response()
}

/// The Bot Framework's id of the Teams channel.
const TEAMS_CHANNEL: &str = "msteams";

/// Whether the activity is of our tenant: `channelData.tenant.id` names it,
/// and so does `conversation.tenantId` where present. An activity that
/// names no tenant is of none.
fn of_our_tenant(activity: &Value, settings: &TeamsSettings) -> bool {
    let ours = |pointer: &str| str_at(activity, pointer).map(|t| settings.is_our_tenant(t));
    ours("/channelData/tenant/id") == Some(true) && ours("/conversation/tenantId") != Some(false)
}

/// Whether the activity happened in the channel `channel`: its
/// conversation (or a thread of it), or the channel its `channelData`
/// names.
fn is_in(activity: &Value, channel: &str) -> bool {
    let conversation = str_at(activity, "/conversation/id").unwrap_or_default();
    let base = conversation
        .split_once(";messageid=")
        .map_or(conversation, |(c, _)| c);
    base == channel
        || str_at(activity, "/channelData/channel/id") == Some(channel)
        || str_at(activity, "/channelData/teamsChannelId") == Some(channel)
}

/// Who sent the activity, its conversation and its id.
fn parts(activity: &Value) -> Result<(ChatUserId, &str, &str), ApiError> {
    let bad = |what: &str| ApiError::BadRequest(format!("a Teams activity without {what}"));
    let from = str_at(activity, "/from/id").ok_or_else(|| bad("from.id"))?;
    let conversation =
        str_at(activity, "/conversation/id").ok_or_else(|| bad("conversation.id"))?;
    let id = str_at(activity, "/id").ok_or_else(|| bad("id"))?;
    Ok((ChatUserId::teams(from), conversation, id))
}

fn delivery(state: &AppState, conversation: &str, id: &str) -> Delivery {
    Delivery {
        key: format!("teams:{conversation}:{id}"),
        keep_until: state.engine.clock().now() + REMEMBER_DELIVERY,
    }
}

/// The command in a message's text: without `<at>…</at>` mentions, HTML
/// spaces, and a leading `tempadmin` or `/tempadmin`.
pub fn command_text(text: &str) -> String {
    let mut rest = text.replace("&nbsp;", " ").replace('\u{a0}', " ");
    while let Some(start) = rest.find("<at>") {
        let end = rest[start..]
            .find("</at>")
            .map_or(rest.len(), |e| start + e + "</at>".len());
        rest.replace_range(start..end, " ");
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    let skip = match words.first() {
        Some(first)
            if first.eq_ignore_ascii_case("tempadmin")
                || first.eq_ignore_ascii_case("/tempadmin") =>
        {
            1
        }
        _ => 0,
    };
    words[skip..].join(" ")
}

/// Whether the bot is among the message's mentions.
fn mentions_bot(activity: &Value) -> bool {
    let bot = str_at(activity, "/recipient/id");
    activity["entities"].as_array().is_some_and(|entities| {
        entities.iter().any(|e| {
            e["type"] == "mention" && bot.is_some() && e["mentioned"]["id"].as_str() == bot
        })
    })
}

async fn message(
    state: &AppState,
    teams: &TeamsEdge,
    activity: &Value,
) -> Result<Response, ApiError> {
    let (user, conversation, id) = parts(activity)?;
    let personal = str_at(activity, "/conversation/conversationType") == Some("personal");
    if !personal && !mentions_bot(activity) {
        return Ok(().into_response());
    }
    let Some(text) = str_at(activity, "/text") else {
        // A card's Action.Submit or an attachment alone: nothing to do.
        return Ok(().into_response());
    };
    state
        .engine
        .metrics()
        .inbound(Platform::Teams)
        .commands
        .inc();
    // Kept before the command is handled: its look-ups and direct messages
    // go where this activity came from.
    if let Some(reference) = reference(state, activity, &user, personal) {
        teams.chat.note_reference(&reference).await;
    }
    let service_url = str_at(activity, "/serviceUrl").unwrap_or_default();
    // In a channel, answers go into the command's thread, addressed as
    // Teams threads posts.
    let answer_to = if personal {
        conversation.to_owned()
    } else {
        command_thread(conversation, id)
    };
    let input = CommandInput {
        user,
        text: command_text(text),
        reply_to: Some(Destination::Conversation(answer_to.clone()).encode()),
        delivery: Some(delivery(state, conversation, id)),
    };
    let reply = state.engine.handle_command(input).await?;
    // The command is recorded either way; a lost answer only costs the
    // person the first sentence (the outbox tells them the rest).
    if let Err(e) = teams.chat.answer(service_url, &answer_to, id, &reply).await {
        tracing::warn!(error = %e, "could not answer a Teams command");
    }
    Ok(().into_response())
}

/// The conversation reference of `user` that `activity` (already
/// verified, so its `serviceUrl` is the one its token names) tells of; the
/// conversation's id only when it is `user`'s personal chat with the bot.
fn reference(
    state: &AppState,
    activity: &Value,
    user: &ChatUserId,
    personal: bool,
) -> Option<ConversationReference> {
    let service_url = str_at(activity, "/serviceUrl").filter(|u| !u.is_empty())?;
    let tenant = str_at(activity, "/channelData/tenant/id")
        .or_else(|| str_at(activity, "/conversation/tenantId"));
    Some(ConversationReference {
        user: user.clone(),
        service_url: service_url.to_owned(),
        conversation_id: personal
            .then(|| str_at(activity, "/conversation/id"))
            .flatten()
            .map(str::to_owned),
        tenant_id: tenant.map(str::to_owned),
        seen_at: state.engine.clock().now(),
    })
}

/// Keeps the conversation references a `conversationUpdate` tells of: of
/// whoever installed the bot or added people (in a personal chat, with the
/// chat's id), and of every person added (the bot itself is not a person).
async fn conversation_update(state: &AppState, teams: &TeamsEdge, activity: &Value) {
    let bot = str_at(activity, "/recipient/id");
    let personal = str_at(activity, "/conversation/conversationType") == Some("personal");
    let mut people: Vec<&str> = str_at(activity, "/from/id").into_iter().collect();
    if let Some(added) = activity["membersAdded"].as_array() {
        people.extend(added.iter().filter_map(|m| m["id"].as_str()));
    }
    people.retain(|id| Some(*id) != bot && id.starts_with("29:"));
    people.sort_unstable();
    people.dedup();
    let installer = str_at(activity, "/from/id");
    for id in people {
        let user = ChatUserId::teams(id);
        let own_chat = personal && Some(id) == installer;
        if let Some(reference) = reference(state, activity, &user, own_chat) {
            teams.chat.note_reference(&reference).await;
        }
    }
}

async fn invoke(
    state: &AppState,
    teams: &TeamsEdge,
    activity: &Value,
) -> Result<Response, ApiError> {
    let (user, conversation, id) = parts(activity)?;
    let verb = str_at(activity, "/value/action/verb").unwrap_or_default();
    let data = &activity["value"]["action"]["data"];
    let Some(request_id) = data[verbs::REQUEST_ID].as_str().and_then(RequestId::parse) else {
        return Ok(Json(render::invoke_message_answer(wording::NOT_UNDERSTOOD)).into_response());
    };
    state
        .engine
        .metrics()
        .inbound(Platform::Teams)
        .interactions
        .inc();
    // A click tells where the person is served now, as a message does; its
    // conversation is their 1:1 chat only when the card is in it (a card in
    // a channel must not become where their direct messages go).
    let personal = str_at(activity, "/conversation/conversationType") == Some("personal");
    if let Some(reference) = reference(state, activity, &user, personal) {
        teams.chat.note_reference(&reference).await;
    }
    let in_approvals = conversation
        .split_once(";messageid=")
        .map_or(conversation, |c| c.0)
        == teams.chat.settings().approvals_conversation;
    if matches!(verb, verbs::APPROVE | verbs::DENY) && !in_approvals {
        tracing::warn!("refused a decision from outside the approvals channel");
        return Ok(Json(render::invoke_message_answer(wording::NOT_HERE)).into_response());
    }
    let click = Click {
        user: user.clone(),
        request_id: request_id.clone(),
        reply_to: Some(Destination::Person(user.as_str().to_owned()).encode()),
        delivery: Some(delivery(state, conversation, id)),
    };
    let engine = &state.engine;
    match verb {
        verbs::APPROVE => engine.decide(click, true).await?,
        verbs::DENY => engine.decide(click, false).await?,
        verbs::REVOKE => engine.end_now(click).await?,
        verbs::EXTEND => engine.extend(click).await?,
        verbs::PICK_DEVICE => {
            let Some(system) = data[verbs::SYSTEM_ID].as_str().filter(|s| !s.is_empty()) else {
                return Ok(
                    Json(render::invoke_message_answer(wording::NOT_UNDERSTOOD)).into_response()
                );
            };
            engine.pick_device(click, SystemId::new(system)).await?;
        }
        _ => {
            return Ok(Json(render::invoke_message_answer(wording::NOT_UNDERSTOOD)).into_response())
        }
    }
    // Whatever the engine made of the click (it tells a refused clicker
    // why, privately), the answer shows a request only to whom may see it.
    let request = engine
        .store()
        .request(&request_id)
        .await?
        .filter(|r| r.platform() == Platform::Teams);
    let Some(request) = request else {
        return Ok(Json(render::invoke_message_answer(wording::CANNOT_ACT)).into_response());
    };
    let answer = match verb {
        // Every Teams card is in the approvals channel, where this click was.
        verbs::APPROVE | verbs::DENY => {
            render::invoke_card_answer(teams.chat.current_card(&request))
        }
        verbs::REVOKE if may_end(teams, &request, &user).await => {
            render::invoke_card_answer(teams.chat.current_card(&request))
        }
        verbs::PICK_DEVICE if request.requester == user => {
            render::invoke_message_answer(wording::DEVICE_PICKED)
        }
        // What became of it arrives as a message (or a private refusal).
        verbs::EXTEND if request.requester == user => {
            render::invoke_message_answer(wording::EXTENSION_ASKED)
        }
        _ => render::invoke_message_answer(wording::CANNOT_ACT),
    };
    Ok(Json(answer).into_response())
}

/// Whether `user` may see the card of `request` after clicking End now:
/// its requester, whoever ended it, or an approver. The approver check
/// (a member look-up, maybe Graph) is asked only when the cheap answers
/// do not settle it.
async fn may_end(teams: &TeamsEdge, request: &Request, user: &ChatUserId) -> bool {
    if request.requester == *user || request.ended_by() == Some(user) {
        return true;
    }
    match teams.chat.approver(user).await {
        Ok(approver) => approver.is_some(),
        Err(e) => {
            tracing::warn!(error = %e, "could not tell whether an End now clicker approves");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_spaces_and_the_bots_name_are_not_part_of_the_command() {
        assert_eq!(
            command_text("<at>tempadmin</at> 20m install"),
            "20m install"
        );
        assert_eq!(command_text("<at>Temp Admin</at>&nbsp;status"), "status");
        assert_eq!(command_text("tempadmin 1h ada-mac why"), "1h ada-mac why");
        assert_eq!(command_text("/tempadmin help"), "help");
        assert_eq!(command_text("20m"), "20m");
        assert_eq!(command_text("<at>broken 20m"), "");
    }
}
