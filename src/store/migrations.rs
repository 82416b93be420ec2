//! Whether a database is ready for this build, asked without changing it
//! (`tempadmin check`): the migrations the database records
//! (`_sqlx_migrations`, read through sqlx's own [`Migrate`]) against those
//! embedded in the binary.
//!
//! Invariant: nothing is applied, created, locked or released. SQLite is
//! opened read-only (a file that does not exist is not created; like any
//! reader of a database in WAL mode, SQLite may add its empty `-wal` and
//! `-shm` companions), and PostgreSQL sessions are read-only
//! (`default_transaction_read_only`).
//! Applying the migrations stays `serve`'s job, at start.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::Connection;

use super::is_postgres;

/// The migrations `SqliteStore::open` applies (embedded once, here).
pub(super) static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
/// The migrations `PostgresStore::open` applies.
pub(super) static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long connecting may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One embedded migration that the database has not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Its number (`0008`).
    pub version: i64,
    /// Its name, from the file name (`request data`).
    pub description: String,
}

/// How a database stands against this build's migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// A SQLite file that does not exist yet; `serve` creates it (and its
    /// tables) in `directory`, which exists.
    NotCreated {
        /// Where the file will be.
        directory: PathBuf,
    },
    /// Reachable, with no migration applied yet: `serve` creates the
    /// tables at its first start.
    Empty {
        /// How many migrations it will apply.
        embedded: usize,
    },
    /// Every embedded migration applied, and no other.
    Current {
        /// How many.
        applied: usize,
    },
    /// Some applied, these not yet: the database was last served by an
    /// older tempadmin.
    Pending(Vec<Pending>),
    /// Applied migrations this binary does not know: a newer tempadmin
    /// migrated the database.
    Newer(Vec<i64>),
    /// A migration that failed half-way.
    Dirty(i64),
    /// Applied migrations whose text differs from the embedded one.
    Changed(Vec<i64>),
}

/// How `url`'s database stands against the embedded migrations. An error
/// means it could not be reached or read (the message says which).
pub async fn readiness(url: &str) -> anyhow::Result<Readiness> {
    if is_postgres(url)? {
        postgres(url).await
    } else {
        sqlite(url).await
    }
}

async fn sqlite(url: &str) -> anyhow::Result<Readiness> {
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("database_url `{url}` is not a SQLite URL"))?;
    if url.contains(":memory:") {
        return Ok(Readiness::Empty {
            embedded: up_migrations(&SQLITE).count(),
        });
    }
    let file = options.get_filename().to_path_buf();
    if !file.exists() {
        let directory = match file.parent() {
            Some(p) if p.as_os_str().is_empty() => PathBuf::from("."),
            Some(p) => p.to_path_buf(),
            None => PathBuf::from("."),
        };
        anyhow::ensure!(
            directory.is_dir(),
            "the directory {} of the SQLite database does not exist",
            directory.display()
        );
        return Ok(Readiness::NotCreated { directory });
    }
    let options = options.read_only(true).busy_timeout(Duration::from_secs(5));
    let mut connection = tokio::time::timeout(
        CONNECT_TIMEOUT,
        sqlx::SqliteConnection::connect_with(&options),
    )
    .await
    .map_err(|_| anyhow::anyhow!("opening the SQLite database timed out"))?
    .context("cannot open the SQLite database")?;
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(&mut connection)
    .await
    .context("cannot read the SQLite database")?;
    let readiness = compare(&SQLITE, &mut connection, recorded > 0).await;
    let _ = connection.close().await;
    readiness
}

async fn postgres(url: &str) -> anyhow::Result<Readiness> {
    let options = PgConnectOptions::from_str(url)
        .context("database_url is not a PostgreSQL URL")?
        .application_name("tempadmin check")
        .options([("default_transaction_read_only", "on")]);
    let mut connection =
        tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect_with(&options))
            .await
            .map_err(|_| anyhow::anyhow!("connecting to PostgreSQL timed out"))?
            .context("cannot connect to the PostgreSQL database")?;
    let recorded: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut connection)
        .await
        .context("cannot read the PostgreSQL database")?;
    let readiness = compare(&POSTGRES, &mut connection, recorded).await;
    let _ = connection.close().await;
    readiness
}

fn up_migrations(migrator: &Migrator) -> impl Iterator<Item = &sqlx::migrate::Migration> {
    migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
}

/// The applied migrations against `migrator`'s, worst news first.
async fn compare(
    migrator: &Migrator,
    connection: &mut impl Migrate,
    recorded: bool,
) -> anyhow::Result<Readiness> {
    let embedded: Vec<_> = up_migrations(migrator).collect();
    if !recorded {
        return Ok(Readiness::Empty {
            embedded: embedded.len(),
        });
    }
    if let Some(version) = connection
        .dirty_version()
        .await
        .context("cannot read the applied migrations")?
    {
        return Ok(Readiness::Dirty(version));
    }
    let applied = connection
        .list_applied_migrations()
        .await
        .context("cannot read the applied migrations")?;
    if applied.is_empty() {
        return Ok(Readiness::Empty {
            embedded: embedded.len(),
        });
    }
    let changed: Vec<i64> = applied
        .iter()
        .filter(|a| {
            embedded
                .iter()
                .any(|m| m.version == a.version && m.checksum != a.checksum)
        })
        .map(|a| a.version)
        .collect();
    if !changed.is_empty() {
        return Ok(Readiness::Changed(changed));
    }
    let newer: Vec<i64> = applied
        .iter()
        .filter(|a| !embedded.iter().any(|m| m.version == a.version))
        .map(|a| a.version)
        .collect();
    if !newer.is_empty() {
        return Ok(Readiness::Newer(newer));
    }
    let pending: Vec<Pending> = embedded
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .map(|m| Pending {
            version: m.version,
            description: m.description.to_string(),
        })
        .collect();
    if !pending.is_empty() {
        return Ok(Readiness::Pending(pending));
    }
    Ok(Readiness::Current {
        applied: applied.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_that_does_not_exist_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.db");
        let url = format!("sqlite://{}", file.display());
        assert_eq!(
            readiness(&url).await.unwrap(),
            Readiness::NotCreated {
                directory: dir.path().to_path_buf()
            }
        );
        assert!(!file.exists());
        let nowhere = format!("sqlite://{}", dir.path().join("no/such/t.db").display());
        let err = format!("{:#}", readiness(&nowhere).await.unwrap_err());
        assert!(err.contains("does not exist"), "{err}");
    }

    #[tokio::test]
    async fn a_migrated_file_is_current_and_one_missing_its_last_migration_is_pending() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let database = super::super::Database::open(&url).await.unwrap();
        database.close().await;
        let all = up_migrations(&SQLITE).count();
        assert_eq!(
            readiness(&url).await.unwrap(),
            Readiness::Current { applied: all }
        );
        let last = up_migrations(&SQLITE).last().unwrap();
        let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = ?")
            .bind(last.version)
            .execute(&mut connection)
            .await
            .unwrap();
        sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9999, 'from the future', true, x'00', 0)")
            .execute(&mut connection)
            .await
            .unwrap();
        assert_eq!(readiness(&url).await.unwrap(), Readiness::Newer(vec![9999]));
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 9999")
            .execute(&mut connection)
            .await
            .unwrap();
        connection.close().await.unwrap();
        assert_eq!(
            readiness(&url).await.unwrap(),
            Readiness::Pending(vec![Pending {
                version: last.version,
                description: last.description.to_string()
            }])
        );
    }
}
