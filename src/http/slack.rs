//! Slack's routes (`slack.mode = "http"`). Each one: verify the signature
//! on the raw body, parse, hand over to `slack_inbound` (what Socket Mode
//! envelopes go through too), answer within Slack's 3 seconds.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{slack_inbound, ApiError, AppState, SlackEdge};
use crate::domain::Platform;
use crate::engine::Delivery;
use crate::slack::events::{self, Envelope};
use crate::slack::payload::{self, PayloadError};
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
    let Some(secret) = &edge(state)?.secret else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "a Slack route without a signing secret"
        )));
    };
    secret
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

/// `POST /slack/commands`: `/tempadmin …`, answered with the private
/// answer as JSON.
pub(super) async fn command(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    verify(&state, &headers, &body)?;
    let command = payload::parse_command(&body, &edge(&state)?.hooks, delivery(&headers, &body))
        .map_err(bad_payload)?;
    let answer = slack_inbound::command(&state, command).await?;
    Ok(Json(answer).into_response())
}

/// `POST /slack/interactions`: button clicks, answered with an empty 200.
pub(super) async fn interaction(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    verify(&state, &headers, &body)?;
    let interaction =
        payload::parse_interaction(&body, &edge(&state)?.hooks, delivery(&headers, &body))
            .map_err(bad_payload)?;
    slack_inbound::interaction(&state, interaction).await?;
    Ok(().into_response())
}

/// `POST /slack/events`: the Events API. Answers the URL verification
/// challenge; an event is handled by [`slack_inbound::event`] (which
/// Socket Mode calls too), whose answer waits for the handling no longer
/// than Slack's 3 seconds allow.
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
    slack_inbound::event(&state, callback).await;
    Ok(().into_response())
}
