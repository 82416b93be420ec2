//! The store adapter: requests, jobs, the outbox and the audit trail,
//! through sqlx, in SQLite (one process, the embedded default) or in
//! PostgreSQL (several replicas). All SQL of the program lives in this
//! folder; `database_url` chooses the backend.
//!
//! Layout: `codec.rs` turns requests, audit lines, jobs and messages into
//! columns and back (a request's stage is one JSON column), `shared.rs`
//! holds the statements both backends run alike, and `sqlite.rs` and
//! `postgres.rs` only what differs between them; `migrations.rs` tells,
//! without changing anything, whether a database is ready for this build.
//!
//! Invariant: each `Store` method is one transaction, so a transition, its
//! audit line, its outgoing messages and its timers are written together or
//! not at all.

mod codec;
pub mod migrations;
mod postgres;
mod shared;
mod sqlite;
mod writer;

use std::sync::Arc;

pub use postgres::PostgresStore;
pub use sqlite::{SqliteStore, WAL_SIZE_LIMIT};

use crate::engine::ports::Store;

/// The database the process runs on, whichever backend `database_url` names.
#[derive(Debug, Clone)]
pub enum Database {
    /// `sqlite://…`: one process (a second one is refused).
    Sqlite(SqliteStore),
    /// `postgres://…` or `postgresql://…`: any number of replicas.
    Postgres(PostgresStore),
}

/// Which backend a `database_url` names.
fn is_postgres(url: &str) -> anyhow::Result<bool> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(true)
    } else if url.starts_with("sqlite:") {
        Ok(false)
    } else {
        anyhow::bail!(
            "database_url must start with sqlite:// (one process) or postgres:// (several replicas)"
        )
    }
}

impl Database {
    /// Opens the database to serve from: migrations applied; on SQLite the
    /// file locked for this process and leases left by its last run released.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        Ok(if is_postgres(url)? {
            Self::Postgres(PostgresStore::open(url).await?)
        } else {
            Self::Sqlite(SqliteStore::open(url).await?)
        })
    }

    /// Opens the database to read it beside a running server (the audit
    /// export): nothing locked, migrated or released.
    pub async fn open_reader(url: &str) -> anyhow::Result<Self> {
        Ok(if is_postgres(url)? {
            Self::Postgres(PostgresStore::open_reader(url).await?)
        } else {
            Self::Sqlite(SqliteStore::open_reader(url).await?)
        })
    }

    /// The store, as the engine takes it.
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// Graceful shutdown, once the workers have stopped: gives this
    /// process's leases back, so another replica (or the next start) takes
    /// the work at once rather than after the lease, then closes.
    pub async fn shut_down(&self) {
        let released = match self {
            Self::Sqlite(s) => s.release_leases().await,
            Self::Postgres(s) => s.release_leases().await,
        };
        if let Err(e) = released {
            tracing::warn!(error = %e, "could not release leases; they end by themselves");
        }
        self.close().await;
    }

    /// Closes the connections (and on SQLite lets the next process have
    /// the file), leaving leases as they are.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}
