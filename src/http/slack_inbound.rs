//! What a verified Slack delivery does, whichever way it came: a signed
//! HTTP request (`slack.rs`, after its signature is checked) or a Socket
//! Mode envelope on the connection the app-level token opened
//! ([`SocketEnvelopes`]). Both parse into the same types, carry a delivery
//! key (HTTP: the signed timestamp and body; Socket Mode: the payload's
//! digest), and go through [`command`] and [`interaction`]: the same
//! checks of workspace, app and channel, the same counters, the same
//! engine calls and the same answers. A copy of a delivery, however it
//! arrives and at whichever replica, acts once: the command's key is
//! unique among requests, a click's is remembered in the store.

use async_trait::async_trait;
use serde_json::Value;
use slack_morphism::prelude::{SlackCommandEventResponse, SlackMessageResponseType};

use super::{ApiError, AppState};
use crate::domain::Platform;
use crate::engine::Delivery;
use crate::slack::events::{self, Envelope as EventEnvelope, EventCallback};
use crate::slack::origin::Ours;
use crate::slack::payload::{self, Action, Interaction, SlashCommand};
use crate::slack::render;
use crate::slack::socket_mode::{self, Envelope, EnvelopeHandler, EnvelopeKind};

/// How long a Socket Mode delivery's key is kept: Slack sends an
/// unacknowledged envelope again for a few minutes at most.
const REMEMBER_SOCKET_DELIVERY: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Our workspace and app, or `None` while start-up has not learnt them.
fn ours(state: &AppState) -> Option<&Ours> {
    let ours = state.slack.as_ref()?.ours.get();
    if ours.is_none() {
        tracing::warn!("a Slack payload before auth.test answered; not acted on");
    }
    ours
}

fn ephemeral(content: slack_morphism::prelude::SlackMessageContent) -> SlackCommandEventResponse {
    SlackCommandEventResponse::new(content).with_response_type(SlackMessageResponseType::Ephemeral)
}

/// `/tempadmin …`: the private answer. A command from another workspace
/// or app is answered with a refusal (what Slack expects of any command it
/// delivers) and changes nothing.
pub(super) async fn command(
    state: &AppState,
    command: SlashCommand,
) -> Result<SlackCommandEventResponse, ApiError> {
    let Some(ours) = ours(state) else {
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

/// A button click. Nothing is answered at once; what the clicker should
/// see arrives through the outbox. A click from another workspace or app,
/// or a decision from outside the approvals channel, changes nothing.
pub(super) async fn interaction(
    state: &AppState,
    interaction: Interaction,
) -> Result<(), ApiError> {
    let action = interaction.action;
    if let Some(origin) = &interaction.origin {
        let Some(ours) = ours(state) else {
            return Ok(());
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
            return Ok(());
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
    if let (true, Some(user), Some(edge)) = (interaction.from_view, clicker, state.slack.as_ref()) {
        // The Home tab shows what the click changed, published after the
        // answer (a view has no response_url to answer through).
        let (engine, slack) = (engine.clone(), edge.chat.clone());
        tokio::spawn(async move { events::publish_home(&engine, &slack, &user, None).await });
    }
    Ok(())
}

/// How long Slack's answer to an event waits for its handling; a slower
/// handling (publishing a view takes Slack calls) carries on after the
/// answer, well inside Slack's 3 seconds.
const EVENT_ANSWER_WAITS: std::time::Duration = std::time::Duration::from_secs(2);

/// An Events API callback (`app_home_opened`), from `POST /slack/events`
/// or a Socket Mode `events_api` envelope ([`events::handle_event`]). The
/// answer waits for the handling up to [`EVENT_ANSWER_WAITS`], so that a
/// copy Slack sends after the answer finds the first one handled. An event
/// of another workspace or app changes nothing.
pub async fn event(state: &AppState, callback: EventCallback) {
    let (Some(edge), Some(ours)) = (state.slack.as_ref(), ours(state).cloned()) else {
        return;
    };
    let (engine, slack) = (state.engine.clone(), edge.chat.clone());
    let now = engine.clock().now();
    let handling =
        tokio::spawn(
            async move { events::handle_event(&engine, &slack, &ours, callback, now).await },
        );
    let _ = tokio::time::timeout(EVENT_ANSWER_WAITS, handling).await;
}

/// Socket Mode envelopes, handed to the functions above.
pub struct SocketEnvelopes {
    state: AppState,
}

impl SocketEnvelopes {
    /// For the application whose `state` the HTTP routes share.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// The app's metrics, where the Socket Mode client counts its
    /// connections.
    pub fn metrics(&self) -> crate::metrics::Metrics {
        self.state.engine.metrics().clone()
    }

    fn delivery(&self, payload: &Value) -> Delivery {
        Delivery {
            key: socket_mode::delivery_key(payload),
            keep_until: self.state.engine.clock().now() + REMEMBER_SOCKET_DELIVERY,
        }
    }

    /// The envelope through the same functions as HTTP; the
    /// acknowledgement's payload.
    async fn dispatch(&self, envelope: Envelope) -> Result<Option<Value>, ApiError> {
        let state = &self.state;
        let edge = state.slack.as_deref().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("a Socket Mode envelope without Slack"))
        })?;
        let delivery = Some(self.delivery(&envelope.payload));
        let malformed = |e: payload::PayloadError| ApiError::BadRequest(e.to_string());
        match envelope.kind {
            EnvelopeKind::SlashCommands => {
                let parsed = payload::parse_command_json(&envelope.payload, &edge.hooks, delivery)
                    .map_err(malformed)?;
                let answer = command(state, parsed).await?;
                Ok(Some(
                    serde_json::to_value(answer).map_err(anyhow::Error::from)?,
                ))
            }
            EnvelopeKind::Interactive => {
                let parsed =
                    payload::parse_interaction_json(&envelope.payload, &edge.hooks, delivery)
                        .map_err(malformed)?;
                interaction(state, parsed).await?;
                Ok(None)
            }
            EnvelopeKind::EventsApi => {
                match events::parse_value(envelope.payload).map_err(malformed)? {
                    EventEnvelope::Callback(callback) => event(state, callback).await,
                    EventEnvelope::UrlVerification { .. } | EventEnvelope::Other => {}
                }
                Ok(None)
            }
            EnvelopeKind::Other(kind) => {
                tracing::debug!(%kind, "a Socket Mode envelope of a kind we do not act on");
                Ok(None)
            }
        }
    }
}

#[async_trait]
impl EnvelopeHandler for SocketEnvelopes {
    async fn handle(&self, envelope: Envelope) -> anyhow::Result<Option<Value>> {
        if envelope.retry_attempt > 0 {
            tracing::info!(
                envelope_id = %envelope.id,
                retry_attempt = envelope.retry_attempt,
                retry_reason = %envelope.retry_reason,
                "Slack delivers an envelope again"
            );
        }
        let id = envelope.id.clone();
        match self.dispatch(envelope).await {
            Ok(answer) => Ok(answer),
            // Slack would send it again unchanged: acknowledged once
            // logged, as HTTP answers it 400.
            Err(ApiError::BadRequest(why)) => {
                tracing::info!(%why, envelope_id = %id, "a malformed Socket Mode envelope; acknowledged");
                Ok(None)
            }
            Err(ApiError::Unauthorized) => Ok(None),
            // Ours failed: left unacknowledged, so Slack delivers it again.
            Err(ApiError::Internal(e)) => Err(e),
        }
    }
}
