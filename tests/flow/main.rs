//! Black-box tests: the real router and engine, a real SQLite file, fake
//! Slack and JumpCloud servers on loopback, and a manual clock.

mod access_request;
mod app_home;
mod approval;
mod approver_reminder;
mod binary;
mod check;
mod device;
mod device_words;
mod durability;
mod exposition;
mod extend;
mod failures;
mod floods;
mod identity;
mod ingress;
mod metrics;
mod on_time;
mod outbound;
#[path = "../common/postgres.rs"]
mod postgres_server;
mod provenance;
mod refusals;
mod service_account;
mod slack_limits;
mod socket_mode;
mod support;
mod teams;
