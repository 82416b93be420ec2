//! The store adapter: requests, jobs, the outbox and the audit trail in
//! SQLite through sqlx. All SQL of the program lives in this folder.
//!
//! Invariant: each `Store` method is one transaction, so a transition, its
//! audit line, its outgoing messages and its timers are written together or
//! not at all.

mod sqlite;
mod write_queue;

pub use sqlite::SqliteStore;
