//! Slack's routes. Each one: verify the signature on the raw body, parse,
//! hand over to the engine, answer within Slack's 3 seconds.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use slack_morphism::prelude::{SlackCommandEventResponse, SlackMessageResponseType};

use super::{ApiError, AppState};
use crate::slack::payload::{self, Action, EventEnvelope};
use crate::slack::render;

fn verify(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = state.engine.clock().now().timestamp();
    state
        .slack_secret
        .verify(
            header("x-slack-request-timestamp"),
            header("x-slack-signature"),
            body,
            now,
        )
        .map_err(|e| {
            state
                .counters
                .rejected_signatures
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(reason = %e, "refused a Slack request");
            ApiError::Unauthorized
        })
}

/// `POST /slack/commands`: `/tempadmin …`.
pub(super) async fn command(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    verify(&state, &headers, &body)?;
    let input = payload::parse_command(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    state.counters.commands.fetch_add(1, Ordering::Relaxed);
    let reply = state.engine.handle_command(input).await?;
    let answer = SlackCommandEventResponse::new(render::reply_message(&reply))
        .with_response_type(SlackMessageResponseType::Ephemeral);
    Ok(Json(answer).into_response())
}

/// `POST /slack/interactions`: button clicks. The answer is an empty 200;
/// what the clicker should see arrives through the outbox.
pub(super) async fn interaction(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    verify(&state, &headers, &body)?;
    let action =
        payload::parse_interaction(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    state.counters.interactions.fetch_add(1, Ordering::Relaxed);
    let engine = &state.engine;
    match action {
        Action::Approve(click) => engine.decide(click, true).await?,
        Action::Deny(click) => engine.decide(click, false).await?,
        Action::Revoke(click) => engine.end_now(click).await?,
        Action::PickDevice(click, system) => engine.pick_device(click, system).await?,
        Action::Ignored => {}
    }
    Ok(().into_response())
}

/// `POST /slack/events`: answers the URL verification challenge; the bot
/// subscribes to no events yet, so anything else is acknowledged.
pub(super) async fn event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    verify(&state, &headers, &body)?;
    let envelope: EventEnvelope =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    match (envelope.kind.as_str(), envelope.challenge) {
        ("url_verification", Some(challenge)) => {
            Ok(Json(serde_json::json!({ "challenge": challenge })).into_response())
        }
        _ => Ok(().into_response()),
    }
}
