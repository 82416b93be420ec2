//! Slack's routes. Each one: verify the signature on the raw body, parse,
//! hand over to the engine, answer within Slack's 3 seconds.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use slack_morphism::prelude::{SlackCommandEventResponse, SlackMessageResponseType};

use super::{ApiError, AppState, SlackEdge};
use crate::domain::Platform;
use crate::engine::Delivery;
use crate::slack::events::{self, Envelope};
use crate::slack::origin::Ours;
use crate::slack::payload::{self, Action, PayloadError};
use crate::slack::render;
use crate::slack::signature;

/// The Slack edge; the routes exist only when Slack is configured.
fn edge(state: &AppState) -> Result<&SlackEdge, ApiError> {
    state
        .slack
        .as_deref()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a Slack route without Slack")))
}

fn verify(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = state.engine.clock().now().timestamp();
    edge(state)?
        .secret
        .verify(
            header("x-slack-request-timestamp"),
            header("x-slack-signature"),
            body,
            now,
        )
        .map_err(|e| {
            state
                .engine
                .metrics()
                .inbound(Platform::Slack)
                .rejected
                .inc();
            tracing::warn!(reason = %e, "refused a Slack request");
            ApiError::Unauthorized
        })
}

/// A verified request's delivery: what its signature covers (the
/// timestamp and the whole body), so a copy has the same key however its
/// signature is spelled. It is kept until `verify` refuses the copy on its
/// own, compared at the same precision.
fn delivery(headers: &HeaderMap, body: &[u8]) -> Option<Delivery> {
    let sent: i64 = headers
        .get("x-slack-request-timestamp")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Delivery {
        key: signature::delivery_key(sent, body),
        keep_until: signature::stale_from(sent)?,
    })
}

fn bad_payload(e: PayloadError) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

/// Our workspace and app, or `None` while start-up has not learnt them.
fn ours(state: &AppState) -> Option<&Ours> {
    let ours = state.slack.as_ref()?.ours.get();
    if ours.is_none() {
        tracing::warn!("a Slack payload before auth.test answered; not acted on");
    }
    ours
}

fn ephemeral(content: slack_morphism::prelude::SlackMessageContent) -> Response {
    let answer = SlackCommandEventResponse::new(content)
        .with_response_type(SlackMessageResponseType::Ephemeral);
    Json(answer).into_response()
}

/// `POST /slack/commands`: `/tempadmin …`. A command from another
/// workspace or app is answered 200 with an ephemeral refusal (what Slack
/// expects of any command it delivers) and changes nothing.
pub(super) async fn command(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    verify(&state, &headers, &body)?;
    let command = payload::parse_command(&body, &edge(&state)?.hooks, delivery(&headers, &body))
        .map_err(bad_payload)?;
    let Some(ours) = ours(&state) else {
        return Ok(ephemeral(render::not_ready()));
    };
    if let Err(why) = ours.check(&command.origin) {
        tracing::warn!(%why, "refused a slash command that is not ours");
        return Ok(ephemeral(render::not_ours()));
    }
    state
        .engine
        .metrics()
        .inbound(Platform::Slack)
        .commands
        .inc();
    let reply = state.engine.handle_command(command.input).await?;
    Ok(ephemeral(render::reply_message(&reply)))
}

/// `POST /slack/interactions`: button clicks. The answer is an empty 200;
/// what the clicker should see arrives through the outbox. A click from
/// another workspace or app, or a decision from outside the approvals
/// channel, is acknowledged the same way and changes nothing.
pub(super) async fn interaction(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    verify(&state, &headers, &body)?;
    let interaction =
        payload::parse_interaction(&body, &edge(&state)?.hooks, delivery(&headers, &body))
            .map_err(bad_payload)?;
    let action = interaction.action;
    if let Some(origin) = &interaction.origin {
        let Some(ours) = ours(&state) else {
            return Ok(().into_response());
        };
        // Decisions count only from the approvals channel, where the card
        // and its audit thread are; the other buttons live elsewhere too
        // (the device picker in the requester's conversation).
        let checked = match action {
            Action::Approve(_) | Action::Deny(_) => ours.check_decision(origin),
            _ => ours.check(origin),
        };
        if let Err(why) = checked {
            tracing::warn!(%why, "refused a click that is not ours");
            return Ok(().into_response());
        }
    }
    state
        .engine
        .metrics()
        .inbound(Platform::Slack)
        .interactions
        .inc();
    let engine = &state.engine;
    let clicker = match &action {
        Action::Approve(c) | Action::Deny(c) | Action::Revoke(c) | Action::Extend(c) => {
            Some(c.user.clone())
        }
        Action::PickDevice(c, _) => Some(c.user.clone()),
        Action::Ignored => None,
    };
    match action {
        Action::Approve(click) => engine.decide(click, true).await?,
        Action::Deny(click) => engine.decide(click, false).await?,
        Action::Revoke(click) => engine.end_now(click).await?,
        Action::Extend(click) => engine.extend(click).await?,
        Action::PickDevice(click, system) => engine.pick_device(click, system).await?,
        Action::Ignored => {}
    }
    if let (true, Some(user)) = (interaction.from_view, clicker) {
        // The Home tab shows what the click changed, published after the
        // answer (a view has no response_url to answer through).
        let (engine, slack) = (engine.clone(), edge(&state)?.chat.clone());
        tokio::spawn(async move { events::publish_home(&engine, &slack, &user, None).await });
    }
    Ok(().into_response())
}

/// `POST /slack/events`: the Events API. Answers the URL verification
/// challenge; an event is acknowledged at once and handled afterwards
/// ([`events::handle_event`], which Socket Mode calls too), as Slack wants
/// its answer within 3 seconds and publishing a view takes Slack calls.
pub(super) async fn event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    verify(&state, &headers, &body)?;
    let callback = match events::parse(&body).map_err(bad_payload)? {
        Envelope::UrlVerification { challenge } => {
            return Ok(Json(serde_json::json!({ "challenge": challenge })).into_response())
        }
        Envelope::Callback(callback) => callback,
        Envelope::Other => return Ok(().into_response()),
    };
    let Some(ours) = ours(&state).cloned() else {
        return Ok(().into_response());
    };
    let slack = edge(&state)?.chat.clone();
    let engine = state.engine.clone();
    let now = engine.clock().now();
    tokio::spawn(async move { events::handle_event(&engine, &slack, &ours, callback, now).await });
    Ok(().into_response())
}
