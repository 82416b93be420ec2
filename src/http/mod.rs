//! The HTTP edge: an axum router whose handlers verify, parse into domain
//! types, hand over to the engine and answer. No business rule lives here.
//!
//! Invariant (DESIGN 5): a Slack route reads the raw body (at most 64 KiB),
//! checks its signature before anything else, and answers 401 without
//! touching the engine when the check fails; `/teams/messages` does the
//! same with the Bot Framework JWT. A chat service that is not configured
//! has no routes, and neither has Slack in Socket Mode: its deliveries come
//! over the connection the app-level token opened, through the same
//! `slack_inbound` functions as the routes'. With Teams, `GET /privacy` and
//! `GET /terms` serve the pages the Teams app manifest links to.

mod error;
mod health;
pub mod serve;
mod slack;
pub mod slack_inbound;
mod teams;

use std::sync::{Arc, OnceLock};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::engine::Engine;
use crate::slack::client::SlackChat;
use crate::slack::origin::Ours;
use crate::slack::response_url::HookHosts;
use crate::slack::signature::SigningSecret;
use crate::teams::auth::BotFrameworkAuth;
use crate::teams::chat::TeamsChat;
use crate::teams::package;

pub use error::ApiError;

/// The largest body any route accepts; Slack's payloads are far smaller.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// The grant engine.
    pub engine: Arc<Engine>,
    /// What the Slack routes accept payloads from, when Slack is used.
    pub slack: Option<Arc<SlackEdge>>,
    /// What the Teams route needs, when Teams is used.
    pub teams: Option<Arc<TeamsEdge>>,
}

/// What a Slack payload must also be to count: signed (over HTTP), from our
/// app in our workspace, with a `response_url` on Slack's hosts.
#[derive(Debug)]
pub struct SlackEdge {
    /// Slack's signing secret; `None` in Socket Mode, where Slack sends
    /// nothing over HTTP and the Slack routes do not exist.
    pub secret: Option<SigningSecret>,
    /// Which `response_url`s are Slack's.
    pub hooks: HookHosts,
    /// Our workspace and app, once `auth.test` and `bots.info` have said;
    /// until then Slack payloads are answered "starting" and not acted on.
    pub ours: OnceLock<Ours>,
    /// The Slack adapter, for what is published outside a request's
    /// messages (the App Home).
    pub chat: Arc<SlackChat>,
}

/// What `/teams/messages` checks activities with and answers through.
#[derive(Debug)]
pub struct TeamsEdge {
    /// Verifies the Bot Framework JWT of every activity.
    pub auth: BotFrameworkAuth,
    /// The Teams adapter, for the immediate answers and refreshed cards.
    pub chat: Arc<TeamsChat>,
}

/// The router with every route of DESIGN.md.
pub fn router(state: AppState) -> Router {
    api_router(state.clone()).merge(metrics_router(state))
}

/// Every route but `/metrics`: what Slack and the probes reach.
pub fn api_router(state: AppState) -> Router {
    let mut router = Router::new();
    if state
        .slack
        .as_ref()
        .is_some_and(|edge| edge.secret.is_some())
    {
        router = router
            .route("/slack/commands", post(slack::command))
            .route("/slack/interactions", post(slack::interaction))
            .route("/slack/events", post(slack::event));
    }
    if state.teams.is_some() {
        router = router
            .route("/teams/messages", post(teams::messages))
            .route(package::PRIVACY_PATH, get(teams::privacy))
            .route(package::TERMS_PATH, get(teams::terms));
    }
    router
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// `/metrics` alone, for a listener of its own (`metrics_listen`).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
