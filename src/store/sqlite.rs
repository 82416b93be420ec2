//! `Store` on SQLite: the embedded default, one process, zero set-up.

use std::str::FromStr;

use anyhow::Context;
use async_trait::async_trait;
use futures::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

use super::codec::{ms, JobRow, MessageRow};
use super::writer::{Connect, Urgency, Writer};
use crate::domain::{
    AuditEntry, ChatUserId, ConversationReference, JcUserId, Notice, Request, RequestId,
    RequestState, SystemId, Timestamp,
};
use crate::engine::ports::{
    Admission, ClaimScope, Insertion, Job, JobKind, Lease, NewRequest, OutboxMessage, QueueDepth,
    Store, Transition,
};

/// How often the write-ahead log is folded into the database file.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// The size the write-ahead log is cut back to once a checkpoint has
/// copied it all (`journal_size_limit`). SQLite otherwise keeps the file at
/// its largest, so one burst of writes (a flood of commands) would hold
/// that much disk for good.
pub const WAL_SIZE_LIMIT: u64 = 4 * 1024 * 1024;

/// Requests, jobs, outbox and audit in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Readers' connections (WAL lets them run beside the writer).
    pool: SqlitePool,
    /// Every write, on one connection and thread of its own, revocations
    /// first and new requests in batches (see [`Writer`]).
    writer: Writer<SqliteConnection, AdmittedInsert, Insertion>,
    /// The exclusive lock on `<database>.lock`, held from `open` until
    /// `close` (or until the last clone is dropped, or the process ends): a
    /// second process on the same file is refused, because `open` releases
    /// every lease in the file, which is only safe when nobody else holds
    /// one. `None` for in-memory databases and for readers.
    lock: std::sync::Arc<std::sync::Mutex<Option<std::fs::File>>>,
}

/// The writer's connection: its own, or for an in-memory database (which
/// exists once per connection) the pool's only one, shared with readers.
enum WriterConnection {
    Own(SqliteConnection),
    Pool(SqlitePool),
}

/// The writer's connection for one write.
enum Held<'a> {
    Own(&'a mut SqliteConnection),
    Pooled(PoolConnection<Sqlite>),
}

impl std::ops::Deref for Held<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        match self {
            Held::Own(conn) => conn,
            Held::Pooled(conn) => conn,
        }
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            Held::Own(conn) => conn,
            Held::Pooled(conn) => conn,
        }
    }
}

impl Connect for WriterConnection {
    type Conn = SqliteConnection;

    async fn connection(
        &mut self,
    ) -> anyhow::Result<impl std::ops::DerefMut<Target = SqliteConnection> + Send> {
        Ok(match self {
            WriterConnection::Own(conn) => Held::Own(conn),
            WriterConnection::Pool(pool) => Held::Pooled(pool.acquire().await?),
        })
    }

    async fn close(self) {
        if let WriterConnection::Own(conn) = self {
            let _ = sqlx::Connection::close(conn).await;
        }
    }
}

/// A new request on its way to the group commit, with what decides
/// whether it is admitted.
struct AdmittedInsert {
    new: NewRequest,
    since: Timestamp,
    admit: Admission,
}

/// Revocation writes go first in the writer's queues.
fn revocation_if(part_of_a_revocation: bool) -> Urgency {
    if part_of_a_revocation {
        Urgency::Revocation
    } else {
        Urgency::Normal
    }
}

/// Takes the exclusive lock beside the database file, or says which file
/// another process holds. The kernel drops the lock when the process dies,
/// however it dies, so a crash never leaves it behind.
fn lock_database(database: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    let path = std::path::PathBuf::from(name);
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => Ok(file),
        Err(fs4::TryLockError::WouldBlock) => anyhow::bail!(
            "another tempadmin process is using the SQLite database {} (it holds {}). \
             SQLite serves one process only; stop the other one, or run several \
             replicas on PostgreSQL (database_url = \"postgres://…\")",
            database.display(),
            path.display()
        ),
        Err(fs4::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or
    /// `sqlite::memory:`), applies the migrations, and releases leases left by
    /// a previous run of this process: SQLite has one process, so any lease
    /// in the file belongs to a process that is gone.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("database_url `{url}` is not a SQLite URL"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10))
            // Checkpoints run in the background (see `checkpoint_every`), not
            // inside whichever request's commit crosses the threshold.
            .pragma("wal_autocheckpoint", "0")
            .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string());
        let in_memory = url.contains(":memory:");
        // Before anything is written: a second process must change nothing.
        let lock = if in_memory {
            None
        } else {
            Some(lock_database(options.get_filename())?)
        };
        #[cfg(unix)]
        if !in_memory {
            owner_only(options.get_filename())?;
        }
        /// Makes the database file readable and writable by its owner only
        /// (0600): it says who had admin rights where, and holds the audit
        /// trail. The file is created here, before SQLite opens it, because
        /// SQLite creates its -wal, -shm and -journal files with the main
        /// file's permissions (and sets them exactly, whatever the umask),
        /// so they follow. A file left with wider permissions by an older
        /// version is narrowed, with its companions.
        #[cfg(unix)]
        fn owner_only(path: &std::path::Path) -> anyhow::Result<()> {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path);
            match created {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot create the database {}", path.display()))
                }
            }
            let with_suffix = |suffix: &str| {
                let mut name = path.as_os_str().to_owned();
                name.push(suffix);
                std::path::PathBuf::from(name)
            };
            for file in [path.to_path_buf(), with_suffix("-wal"), with_suffix("-shm")] {
                let Ok(meta) = std::fs::metadata(&file) else {
                    continue;
                };
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 == 0 {
                    continue;
                }
                let file_name = file.display().to_string();
                let was = format!("{mode:o}");
                match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
                    Ok(()) => {
                        tracing::warn!(file = %file_name, %was, "narrowed the database file's permissions to 600")
                    }
                    Err(e) => {
                        tracing::warn!(file = %file_name, mode = %was, error = %e, "the database file is readable by others and cannot be narrowed")
                    }
                }
            }
            Ok(())
        }
        // Readers share the pool; the writer has a connection of its own
        // (see `with`), so a person's command never waits for a pooled
        // connection that a job holds.
        let pool = SqlitePoolOptions::new()
            // An in-memory database exists once per connection.
            .max_connections(if in_memory { 1 } else { 4 })
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot open the database {url}"))?;
        super::migrations::SQLITE
            .run(&pool)
            .await
            .context("cannot apply database migrations")?;
        let writer_options = (!in_memory).then(|| options.clone());
        let store = Self::with(
            pool,
            writer_options,
            std::sync::Arc::new(std::sync::Mutex::new(lock)),
        )
        .await
        .with_context(|| format!("cannot open the database {url}"))?;
        store.release_leases().await?;
        if !in_memory {
            tokio::spawn(store.clone().checkpoint_every(CHECKPOINT_INTERVAL));
        }
        Ok(store)
    }

    /// Copies the write-ahead log into the database file now and then. A
    /// passive checkpoint never blocks readers or writers; it ends when the
    /// pool is closed.
    async fn checkpoint_every(self, interval: std::time::Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.pool.is_closed() {
                return;
            }
            if let Err(e) = self.checkpoint().await {
                if self.pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        }
    }

    /// One passive checkpoint: copies what it can of the log into the
    /// database file without waiting for anybody. Once the whole log is
    /// copied, the next write starts it afresh and cuts the file back to
    /// [`WAL_SIZE_LIMIT`].
    pub async fn checkpoint(&self) -> anyhow::Result<()> {
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Opens an existing database to read it (the audit export) beside a
    /// running server: no lock, no migrations, no lease released, and
    /// SQLite refuses any write on this connection.
    pub async fn open_reader(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("database_url `{url}` is not a SQLite URL"))?
            .read_only(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open the database {url}"))?;
        Self::with(pool, None, Default::default()).await
    }

    /// The store over `pool`, with its writer on a connection of its own
    /// opened with `writer` (or, without, on the pool's).
    async fn with(
        pool: SqlitePool,
        writer: Option<SqliteConnectOptions>,
        lock: std::sync::Arc<std::sync::Mutex<Option<std::fs::File>>>,
    ) -> anyhow::Result<Self> {
        let shared = pool.clone();
        let writer = Writer::start(
            move || async move {
                Ok(match writer {
                    Some(options) => {
                        WriterConnection::Own(sqlx::Connection::connect_with(&options).await?)
                    }
                    None => WriterConnection::Pool(shared),
                })
            },
            |conn: &mut SqliteConnection, batch: Vec<AdmittedInsert>| {
                Box::pin(async move { insert_batch(conn, &batch).await })
            },
        )
        .await?;
        Ok(Self { pool, writer, lock })
    }

    /// Runs `write` on the writer's connection in its turn (see [`Writer`]).
    async fn write<O: Send + 'static>(
        &self,
        urgency: Urgency,
        write: impl for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, anyhow::Result<O>>
            + Send
            + 'static,
    ) -> anyhow::Result<O> {
        self.writer.write(urgency, write).await
    }

    /// How many writes were asked of the writer since the store was
    /// opened (tests check that read-only commands write nothing).
    pub fn writes(&self) -> u64 {
        self.writer.asked()
    }

    /// Checkpoints the log into the database file, closes the pool, and
    /// lets the next process have the file.
    pub async fn close(&self) {
        self.writer.close().await;
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await;
        self.pool.close().await;
        let held = self.lock.lock().map(|mut held| held.take());
        drop(held);
    }
}

super::shared::shared_sql!(
    db = sqlx::Sqlite,
    data = "data",
    json = "",
    release = "",
    notice_kind = "json_extract(notice, '$.to')"
);

/// The body of `Store::transition`, on one connection.
async fn transition_on(conn: &mut sqlx::SqliteConnection, t: &Transition) -> anyhow::Result<bool> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    if !apply_transition(&mut tx, t).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

/// One group commit in two round trips to SQLite's worker thread, however
/// many requests it holds: on a busy machine each round trip waits for a
/// core, and every command's answer waits for them. The first takes the
/// write lock and counts each requester's open and recent requests; the
/// admission is decided from those counts plus the requests admitted
/// earlier in the same batch (each new one is open and recent); the
/// second inserts every admitted request with its audit line and jobs and
/// commits. A request whose delivery key is taken inserts nothing (the
/// command is a copy), and its audit line and jobs follow it only if its
/// fresh id is then in the table.
async fn insert_batch(
    connection: &mut sqlx::SqliteConnection,
    batch: &[AdmittedInsert],
) -> anyhow::Result<Vec<Insertion>> {
    // IMMEDIATE: the write lock first, through the busy handler. A deferred
    // transaction that reads (the counts) and then writes cannot wait for
    // a writer of another connection: its upgrade fails at once.
    let counted = count_in_new_transaction(connection, batch).await;
    let written = match counted {
        Ok(counts) => insert_and_commit(connection, batch, &counts).await,
        Err(e) => Err(e),
    };
    if written.is_err() {
        // Whatever got through; nothing if the transaction never began.
        let _ = sqlx::query("ROLLBACK").execute(&mut *connection).await;
    }
    written
}

/// `BEGIN IMMEDIATE`, then each batch member's (open, recent) counts, in
/// batch order.
async fn count_in_new_transaction(
    connection: &mut sqlx::SqliteConnection,
    batch: &[AdmittedInsert],
) -> anyhow::Result<Vec<(usize, usize)>> {
    let terminal = super::codec::state_list(RequestState::is_terminal);
    let mut sql = String::from("BEGIN IMMEDIATE;");
    for n in 0..batch.len() {
        let k = 3 * n + 1;
        sql.push_str(if n == 0 { " " } else { " UNION ALL " });
        sql.push_str(&format!(
            "SELECT {n}, COUNT(*) FILTER (WHERE state NOT IN ({terminal})), \
             COUNT(*) FILTER (WHERE created_at >= ${k}) \
             FROM requests WHERE platform = ${} AND requester = ${}",
            k + 1,
            k + 2
        ));
    }
    let mut query = sqlx::query_as::<_, (i64, i64, i64)>(&sql);
    for one in batch {
        let requester = &one.new.request.requester;
        query = query
            .bind(super::codec::ms(one.since))
            .bind(requester.platform().as_str())
            .bind(requester.as_str());
    }
    let mut rows = query.fetch_all(&mut *connection).await?;
    rows.sort_by_key(|(n, _, _)| *n);
    anyhow::ensure!(rows.len() == batch.len(), "a count per new request");
    Ok(rows
        .into_iter()
        .map(|(_, open, recent)| (open as usize, recent as usize))
        .collect())
}

/// Decides each admission, inserts the admitted and commits, in one query.
async fn insert_and_commit(
    connection: &mut sqlx::SqliteConnection,
    batch: &[AdmittedInsert],
    counts: &[(usize, usize)],
) -> anyhow::Result<Vec<Insertion>> {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut admitted = Vec::new();
    for (one, &(open, recent)) in batch.iter().zip(counts) {
        let requester = &one.new.request.requester;
        let earlier = admitted
            .iter()
            .filter(|a: &&&AdmittedInsert| a.new.request.requester == *requester)
            .count();
        match (one.admit)(open + earlier, recent + earlier) {
            Err(refusal) => outcomes.push(Some(Insertion::Refused(refusal))),
            Ok(()) => {
                admitted.push(one);
                outcomes.push(None);
            }
        }
    }
    let mut sql = String::new();
    let mut next = 1;
    let mut arg = || {
        next += 1;
        format!("${}", next - 1)
    };
    for one in &admitted {
        let request = (0..10).map(|_| arg()).collect::<Vec<_>>();
        let id = &request[0];
        sql.push_str(&format!(
            "INSERT INTO requests (id, platform, requester, state, created_at, jc_user, system_id, data, version, delivery) \
             VALUES ({}) ON CONFLICT (delivery) DO NOTHING RETURNING id; ",
            request.join(", ")
        ));
        let audit = (0..7).map(|_| arg()).collect::<Vec<_>>();
        sql.push_str(&format!(
            "INSERT INTO audit (at, actor, action, request_id, before_state, after_state, detail) \
             SELECT {} WHERE EXISTS (SELECT 1 FROM requests WHERE id = {id}); ",
            audit.join(", ")
        ));
        for _ in &one.new.jobs {
            let job = (0..3).map(|_| arg()).collect::<Vec<_>>();
            sql.push_str(&format!(
                "INSERT INTO jobs (request_id, kind, arg, due_at) SELECT {id}, {} \
                 WHERE EXISTS (SELECT 1 FROM requests WHERE id = {id}); ",
                job.join(", ")
            ));
        }
    }
    sql.push_str("COMMIT;");
    let mut query = sqlx::query_scalar::<_, String>(&sql);
    for one in &admitted {
        let e = super::codec::encode(&one.new.request)?;
        let a = &one.new.audit;
        query = query
            .bind(e.id)
            .bind(e.platform)
            .bind(e.requester)
            .bind(e.state)
            .bind(e.created_at)
            .bind(e.jc_user)
            .bind(e.system_id)
            .bind(e.data)
            .bind(e.version)
            .bind(one.new.delivery.clone())
            .bind(super::codec::ms(a.at))
            .bind(a.actor.clone())
            .bind(a.action.as_str())
            .bind(a.request_id.as_str().to_owned())
            .bind(a.before.map(RequestState::as_str))
            .bind(a.after.map(RequestState::as_str))
            .bind(a.detail.to_string());
        for job in &one.new.jobs {
            query = query
                .bind(job.kind.name())
                .bind(job.kind.arg())
                .bind(super::codec::ms(job.due_at));
        }
    }
    let inserted: std::collections::HashSet<String> = query
        .fetch_all(&mut *connection)
        .await?
        .into_iter()
        .collect();
    Ok(batch
        .iter()
        .zip(outcomes)
        .map(|(one, outcome)| {
            outcome.unwrap_or_else(|| {
                if inserted.contains(one.new.request.id.as_str()) {
                    Insertion::Inserted
                } else {
                    Insertion::Replayed
                }
            })
        })
        .collect())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_request(
        &self,
        new: NewRequest,
        since: Timestamp,
        admit: Admission,
    ) -> anyhow::Result<Insertion> {
        // Counted and inserted in one transaction of the writer (one
        // process: the lock file), so nothing is written between count and
        // insert. A refused command costs one count in a batch; a look
        // before it, through the pool, waited for a connection that a job
        // held and made every answer later under load.
        self.writer
            .insert(AdmittedInsert { new, since, admit })
            .await
    }

    async fn request(&self, id: &RequestId) -> anyhow::Result<Option<Request>> {
        select_request(&self.pool, id).await
    }

    async fn open_requests_of(&self, requester: &ChatUserId) -> anyhow::Result<Vec<Request>> {
        select_open_requests_of(&self.pool, requester).await
    }

    async fn requests_of(
        &self,
        requester: &ChatUserId,
        since: Timestamp,
        limit: u32,
    ) -> anyhow::Result<Vec<Request>> {
        select_requests_of(&self.pool, requester, since, limit).await
    }

    async fn pending_approval(
        &self,
        platform: crate::domain::Platform,
        limit: u32,
    ) -> anyhow::Result<Vec<Request>> {
        select_pending_approval(&self.pool, platform, limit).await
    }

    async fn open_request_for_device(
        &self,
        user: &JcUserId,
        system: &SystemId,
        except: &RequestId,
    ) -> anyhow::Result<Option<Request>> {
        select_open_request_for_device(&self.pool, user, system, except).await
    }

    async fn transition(&self, t: &Transition) -> anyhow::Result<bool> {
        let urgency = revocation_if(matches!(
            t.to.state(),
            RequestState::Revoking | RequestState::Ended
        ));
        let t = t.clone();
        self.write(urgency, move |conn| {
            Box::pin(async move {
                // Commits default to `synchronous = NORMAL`: safe against a
                // process crash, and cheap enough to acknowledge Slack at
                // once. A transition into `approved` (the decision, and the
                // prior state with the grant's end, both written before
                // JumpCloud is touched) is fsynced, so even a power loss
                // cannot forget an elevation or its revocation job; in WAL
                // mode that also makes every earlier commit durable. Later
                // moves (active, revoking, ended) need no fsync: losing one
                // replays a job that is idempotent, and keeping them cheap
                // keeps a burst of revocations from queueing behind a
                // thousand fsyncs.
                let durable = t.to.state() == RequestState::Approved;
                if durable {
                    sqlx::query("PRAGMA synchronous = FULL")
                        .execute(&mut *conn)
                        .await?;
                }
                let applied = transition_on(conn, &t).await;
                if durable {
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                }
                applied
            })
        })
        .await
    }

    async fn set_approval_message(&self, id: &RequestId, reference: &str) -> anyhow::Result<()> {
        let (id, reference) = (id.clone(), reference.to_owned());
        self.write(Urgency::Normal, move |conn| {
            Box::pin(async move { update_approval_message(conn, &id, &reference).await })
        })
        .await
    }

    async fn enqueue(
        &self,
        id: &RequestId,
        notices: &[Notice],
        now: Timestamp,
    ) -> anyhow::Result<()> {
        let (id, notices) = (id.clone(), notices.to_vec());
        self.write(Urgency::Normal, move |conn| {
            Box::pin(async move {
                let mut tx = sqlx::Connection::begin(conn).await?;
                insert_notices(&mut tx, &id, &notices, now).await?;
                tx.commit().await?;
                Ok(())
            })
        })
        .await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> anyhow::Result<()> {
        let entry = entry.clone();
        self.write(Urgency::Normal, move |conn| {
            Box::pin(async move {
                let mut tx = sqlx::Connection::begin(conn).await?;
                insert_audit(&mut tx, &entry).await?;
                tx.commit().await?;
                Ok(())
            })
        })
        .await
    }

    async fn first_sighting(
        &self,
        key: &str,
        now: Timestamp,
        keep_until: Timestamp,
    ) -> anyhow::Result<bool> {
        let key = key.to_owned();
        self.write(Urgency::Normal, move |conn| {
            Box::pin(async move {
                let mut tx = sqlx::Connection::begin(conn).await?;
                let first = record_sighting(&mut tx, &key, now, keep_until).await?;
                tx.commit().await?;
                Ok(first)
            })
        })
        .await
    }

    async fn remember_conversation_reference(
        &self,
        reference: &ConversationReference,
    ) -> anyhow::Result<()> {
        let reference = reference.clone();
        self.write(Urgency::Normal, move |conn| {
            Box::pin(async move { upsert_reference(conn, &reference).await })
        })
        .await
    }

    async fn conversation_reference(
        &self,
        user: &ChatUserId,
    ) -> anyhow::Result<Option<ConversationReference>> {
        select_reference(&self.pool, user).await
    }

    async fn claim_job(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        scope: ClaimScope,
    ) -> anyhow::Result<Option<Job>> {
        let kind = match scope {
            ClaimScope::Revocations => Some(JobKind::Revoke.name()),
            ClaimScope::Any => None,
        };
        let urgency = revocation_if(scope == ClaimScope::Revocations);
        self.write(urgency, move |conn| {
            Box::pin(async move {
                let row: Option<JobRow> = sqlx::query_as(
                    "UPDATE jobs SET attempts = attempts + 1, locked_until = ?2 \
                     WHERE id = (SELECT j.id FROM jobs j \
                                 WHERE j.done_at IS NULL AND j.due_at <= ?1 AND (?3 IS NULL OR j.kind = ?3) \
                                   AND (j.locked_until IS NULL OR j.locked_until <= ?1) \
                                   AND NOT EXISTS (SELECT 1 FROM jobs k WHERE k.request_id = j.request_id AND k.id <> j.id \
                                                   AND k.done_at IS NULL AND k.locked_until > ?1) \
                                 ORDER BY j.due_at, j.id LIMIT 1) \
                     RETURNING id, request_id, kind, arg, due_at, attempts",
                )
                .bind(ms(now))
                .bind(ms(lease_until))
                .bind(kind)
                .fetch_optional(conn)
                .await?;
                row.map(JobRow::decode).transpose()
            })
        })
        .await
    }

    async fn complete_job(&self, job: &Job, now: Timestamp) -> anyhow::Result<()> {
        let job = job.clone();
        self.write(revocation_if(job.kind == JobKind::Revoke), move |conn| {
            Box::pin(async move { finish_job(conn, &job, now).await })
        })
        .await
    }

    async fn retry_job(&self, job: &Job, due_at: Timestamp, error: &str) -> anyhow::Result<()> {
        let (job, error) = (job.clone(), error.to_owned());
        self.write(revocation_if(job.kind == JobKind::Revoke), move |conn| {
            Box::pin(async move {
                release_job(conn, &job, due_at, &error).await?;
                Ok(())
            })
        })
        .await
    }

    async fn claim_messages(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> anyhow::Result<Vec<OutboxMessage>> {
        self.write(Urgency::Normal, move |conn| {
            Box::pin(async move {
                let rows: Vec<MessageRow> = sqlx::query_as(
                    "UPDATE outbox SET attempts = attempts + 1, locked_until = ?2 \
                     WHERE id IN (SELECT o.id FROM outbox o \
                                  WHERE o.delivered_at IS NULL AND o.failed_at IS NULL AND o.due_at <= ?1 \
                                    AND (o.locked_until IS NULL OR o.locked_until <= ?1) \
                                    AND o.id = (SELECT MIN(p.id) FROM outbox p WHERE p.request_id = o.request_id \
                                                AND p.delivered_at IS NULL AND p.failed_at IS NULL) \
                                  ORDER BY o.id LIMIT ?3) \
                     RETURNING id, request_id, notice, attempts",
                )
                .bind(ms(now))
                .bind(ms(lease_until))
                .bind(limit as i64)
                .fetch_all(&mut *conn)
                .await?;
                readable_messages(conn, rows, now).await
            })
        })
        .await
    }

    async fn message_delivered(
        &self,
        message: &OutboxMessage,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        let message = message.clone();
        self.write(Urgency::Normal, move |conn| {
            Box::pin(async move { finish_message(conn, &message, now, None).await })
        })
        .await
    }

    async fn message_failed(
        &self,
        message: &OutboxMessage,
        now: Timestamp,
        error: &str,
    ) -> anyhow::Result<()> {
        let (message, error) = (message.clone(), error.to_owned());
        self.write(Urgency::Normal, move |conn| {
            Box::pin(async move { finish_message(conn, &message, now, Some(&error)).await })
        })
        .await
    }

    async fn retry_message(
        &self,
        message: &OutboxMessage,
        due_at: Timestamp,
        error: &str,
    ) -> anyhow::Result<()> {
        let (message, error) = (message.clone(), error.to_owned());
        self.write(Urgency::Normal, move |conn| {
            Box::pin(async move {
                release_message(conn, &message, due_at, &error).await?;
                Ok(())
            })
        })
        .await
    }

    async fn next_due(&self) -> anyhow::Result<Option<Timestamp>> {
        select_next_due(&self.pool).await
    }

    async fn next_revocation_due(&self) -> anyhow::Result<Option<Timestamp>> {
        select_next_revocation_due(&self.pool).await
    }

    async fn audit_since(&self, since: Option<Timestamp>) -> anyhow::Result<Vec<AuditEntry>> {
        select_audit_since(&self.pool, since).await
    }

    async fn count_by_state(&self) -> anyhow::Result<Vec<(RequestState, i64)>> {
        select_count_by_state(&self.pool).await
    }

    async fn queue_depth(&self, now: Timestamp) -> anyhow::Result<Vec<QueueDepth>> {
        select_queue_depth(&self.pool, now).await
    }

    async fn renew_leases(&self, held: &[Lease], until: Timestamp) -> anyhow::Result<Vec<Lease>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        // Ahead of ordinary writes: in one process a lease that ran out
        // would let the scheduler claim its own running work a second time.
        let held = held.to_vec();
        self.write(Urgency::Revocation, move |conn| {
            Box::pin(async move {
                let mut tx = sqlx::Connection::begin(conn).await?;
                let mut lost = Vec::new();
                for lease in held {
                    let (sql, id, attempt) = match lease {
                        Lease::Job { id, attempt } => ("UPDATE jobs SET locked_until = ? WHERE id = ? AND attempts = ? AND done_at IS NULL AND locked_until IS NOT NULL", id, attempt),
                        Lease::Message { id, attempt } => ("UPDATE outbox SET locked_until = ? WHERE id = ? AND attempts = ? AND delivered_at IS NULL AND failed_at IS NULL AND locked_until IS NOT NULL", id, attempt),
                    };
                    let renewed = sqlx::query(sql)
                        .bind(ms(until))
                        .bind(id)
                        .bind(attempt as i64)
                        .execute(&mut *tx)
                        .await?;
                    if renewed.rows_affected() == 0 {
                        lost.push(lease);
                    }
                }
                tx.commit().await?;
                Ok(lost)
            })
        })
        .await
    }

    /// Every lease in the file is this process's: the lock file keeps any
    /// other process out.
    async fn release_leases(&self) -> anyhow::Result<()> {
        self.write(Urgency::Normal, |conn| {
            Box::pin(async move {
                let mut tx = sqlx::Connection::begin(conn).await?;
                sqlx::query("UPDATE jobs SET locked_until = NULL WHERE done_at IS NULL AND locked_until IS NOT NULL")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE outbox SET locked_until = NULL WHERE delivered_at IS NULL AND locked_until IS NOT NULL")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            })
        })
        .await
    }
}
