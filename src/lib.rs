//! tempadmin: temporary administrator rights on a person's own
//! JumpCloud-managed computer, approved by a colleague in Slack, taken back
//! on time — always, even when the bot, Slack or JumpCloud fails in between.
//!
//! # Layout
//! - [`domain`]: durations, policy, the request state machine, what to
//!   restore; pure, no I/O.
//! - [`engine`]: the grant engine that decides every transition, its ports
//!   (`Store`, `Directory`, `Chat`, `Clock`) and the durable scheduler.
//! - [`store`]: SQLite through sqlx (requests, jobs, outbox, audit).
//! - [`jumpcloud`]: the `Directory` port over JumpCloud's REST API.
//! - [`slack`]: request signing, Slack payloads, Block Kit rendering and the
//!   `Chat` port over Slack's Web API (slack-morphism).
//! - [`teams`]: the Bot Framework protocol pieces: inbound JWT
//!   verification, the Bot Connector client, the app package.
//! - [`http`]: the axum router: verify, parse, hand over, answer.
//! - [`config`], [`cli`], [`app`]: configuration, command line, wiring.
//! - [`sim`]: loopback simulators of Slack and JumpCloud for the demo and tests.
//! - [`demo`]: `tempadmin demo`, the whole story against the simulators.
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod http;
pub mod jumpcloud;
pub mod sim;
pub mod slack;
pub mod store;
pub mod teams;
pub mod wording;
