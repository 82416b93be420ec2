//! The HTTP edge: an axum router whose handlers verify, parse into domain
//! types, hand over to the engine and answer. No business rule lives here.
//!
//! Invariant (DESIGN 5): a Slack route reads the raw body (at most 64 KiB),
//! checks its signature before anything else, and answers 401 without
//! touching the engine when the check fails.

mod error;
mod health;
pub mod serve;
mod slack;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::engine::Engine;
use crate::slack::origin::Ours;
use crate::slack::response_url::HookHosts;
use crate::slack::signature::SigningSecret;

pub use error::ApiError;

/// The largest body any route accepts; Slack's payloads are far smaller.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// The grant engine.
    pub engine: Arc<Engine>,
    /// Slack's signing secret.
    pub slack_secret: SigningSecret,
    /// What the Slack routes accept payloads from.
    pub slack: Arc<SlackEdge>,
    /// Counters for `/metrics`.
    pub counters: Arc<Counters>,
}

/// What a signed Slack payload must also be to count: from our app in our
/// workspace, with a `response_url` on Slack's hosts.
#[derive(Debug)]
pub struct SlackEdge {
    /// Which `response_url`s are Slack's.
    pub hooks: HookHosts,
    /// Our workspace and app, once `auth.test` and `bots.info` have said;
    /// until then Slack payloads are answered "starting" and not acted on.
    pub ours: OnceLock<Ours>,
}

/// Process counters exposed on `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Slack requests refused for their signature.
    pub rejected_signatures: AtomicU64,
    /// Slash commands handled.
    pub commands: AtomicU64,
    /// Button clicks handled.
    pub interactions: AtomicU64,
    /// Inbound connections open on `listen` now.
    pub open_connections: Arc<AtomicU64>,
    /// The cap on them.
    pub max_connections: u64,
}

/// The router with every route of DESIGN.md.
pub fn router(state: AppState) -> Router {
    api_router(state.clone()).merge(metrics_router(state))
}

/// Every route but `/metrics`: what Slack and the probes reach.
pub fn api_router(state: AppState) -> Router {
    Router::new()
        .route("/slack/commands", post(slack::command))
        .route("/slack/interactions", post(slack::interaction))
        .route("/slack/events", post(slack::event))
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
