//! tempadmin: temporary administrator rights on a person's own
//! JumpCloud-managed computer, approved by a colleague in Slack or Microsoft
//! Teams, taken back on time — always, even when the bot, the chat service or
//! JumpCloud fails in between.
//!
//! # Layout
//! - [`domain`]: durations, policy, the request state machine, what to
//!   restore, the platform-neutral notices; pure, no I/O.
//! - [`engine`]: the grant engine that decides every transition, its ports
//!   (`Store`, `Directory`, `Chat`, `Clock`) and the durable scheduler.
//! - [`store`]: the `Store` port through sqlx, on SQLite (one process, the
//!   default) or PostgreSQL (several replicas): requests, jobs, outbox, audit.
//! - [`jumpcloud`]: the `Directory` port over JumpCloud's REST API.
//! - [`slack`]: request signing, Slack payloads, Block Kit rendering, the
//!   `Chat` port over Slack's Web API (slack-morphism) and the Socket Mode
//!   client.
//! - [`teams`]: the Bot Framework protocol (inbound JWT verification, the
//!   Bot Connector and Microsoft Graph clients), Adaptive Card rendering, the
//!   `Chat` port for Teams and the app package.
//! - [`wording`]: every sentence said to people, written once for both chat
//!   services.
//! - [`http`]: the axum router: verify, parse, hand over, answer, for the
//!   Slack and Teams routes alike; Slack's Socket Mode envelopes go through
//!   the same hand-over (`http::slack_inbound`).
//! - [`metrics`]: what `/metrics` exposes, recorded where things happen.
//! - [`config`], [`cli`], [`app`]: configuration, command line, wiring.
//! - [`check`]: `tempadmin check`, the configuration proved against the
//!   services without changing anything.
//! - [`sim`]: loopback simulators of Slack, the Bot Framework and JumpCloud
//!   for the demo, the tests and the benchmarks.
//! - [`demo`]: `tempadmin demo`, the whole story against the simulators
//!   (`--teams` for Microsoft Teams).
#![forbid(unsafe_code)]

pub mod app;
pub mod check;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod http;
pub mod jumpcloud;
pub mod metrics;
pub mod outbound;
pub mod sim;
pub mod slack;
pub mod store;
pub mod teams;
pub mod wording;
