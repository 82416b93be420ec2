//! `Store` on SQLite: the embedded default, one process, zero set-up.

use std::str::FromStr;

use anyhow::Context;
use async_trait::async_trait;
use chrono::DateTime;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use crate::domain::{
    AuditEntry, ChatUserId, Email, EndCause, GrantDuration, JcUserId, Notice, Request, RequestId,
    RequestState, SystemId, Timestamp,
};
use crate::engine::ports::{ClaimScope, Job, JobKind, NewJob, OutboxMessage, Store, Transition};

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
    pool: SqlitePool,
    /// Writers queue here, in order, instead of meeting SQLite's lock and
    /// its busy handler, which sleeps in steps of milliseconds. Readers do
    /// not take it (WAL lets them run beside the writer).
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

fn ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

fn ts(ms: i64) -> Timestamp {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn opt_ts(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(ts)
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
        let pool = SqlitePoolOptions::new()
            // An in-memory database exists once per connection.
            .max_connections(if in_memory { 1 } else { 4 })
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open the database {url}"))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .context("cannot apply database migrations")?;
        let store = Self {
            pool,
            writer: Default::default(),
        };
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

    async fn release_leases(&self) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE jobs SET locked_until = NULL WHERE done_at IS NULL AND locked_until IS NOT NULL")
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE outbox SET locked_until = NULL WHERE delivered_at IS NULL AND locked_until IS NOT NULL")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Checkpoints the log into the database file and closes the pool.
    pub async fn close(&self) {
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await;
        self.pool.close().await;
    }
}

fn request_from_row(row: &SqliteRow) -> anyhow::Result<Request> {
    let json_opt = |col: &str| -> anyhow::Result<Option<String>> {
        Ok(row.try_get::<Option<String>, _>(col)?)
    };
    let state: String = row.try_get("state")?;
    Ok(Request {
        id: RequestId::from_stored(row.try_get("id")?),
        requester: ChatUserId::new(row.try_get::<String, _>("requester")?),
        reply_to: row.try_get("reply_to")?,
        duration: GrantDuration::from_secs(row.try_get::<i64, _>("duration_secs")?.max(1) as u64),
        words: serde_json::from_str(&row.try_get::<String, _>("words")?)?,
        reason: row.try_get("reason")?,
        state: RequestState::parse(&state).with_context(|| format!("unknown state {state}"))?,
        created_at: ts(row.try_get("created_at")?),
        email: json_opt("email")?.and_then(|e| Email::parse(&e)),
        jc_user: json_opt("jc_user")?.map(JcUserId::new),
        device: json_opt("device")?
            .map(|d| serde_json::from_str(&d))
            .transpose()?,
        candidates: serde_json::from_str(&row.try_get::<String, _>("candidates")?)?,
        prior: json_opt("prior")?
            .map(|p| serde_json::from_str(&p))
            .transpose()?,
        decided_by: json_opt("decided_by")?.map(ChatUserId::new),
        decided_at: opt_ts(row.try_get("decided_at")?),
        elevated_at: opt_ts(row.try_get("elevated_at")?),
        expires_at: opt_ts(row.try_get("expires_at")?),
        ended_at: opt_ts(row.try_get("ended_at")?),
        ended_by: json_opt("ended_by")?.map(ChatUserId::new),
        end_cause: json_opt("end_cause")?.and_then(|c| EndCause::parse(&c)),
        left_alone: row.try_get("left_alone")?,
        approval_message: row.try_get("approval_message")?,
        version: row.try_get("version")?,
    })
}

fn audit_from_row(row: &SqliteRow) -> anyhow::Result<AuditEntry> {
    let state = |col: &str| -> anyhow::Result<Option<RequestState>> {
        Ok(row
            .try_get::<Option<String>, _>(col)?
            .and_then(|s| RequestState::parse(&s)))
    };
    Ok(AuditEntry {
        at: ts(row.try_get("at")?),
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        request_id: RequestId::from_stored(row.try_get("request_id")?),
        before: state("before_state")?,
        after: state("after_state")?,
        detail: serde_json::from_str(&row.try_get::<String, _>("detail")?)?,
    })
}

/// The columns every request query selects.
const REQUEST_COLUMNS: &str = "id, requester, reply_to, duration_secs, words, reason, state, created_at, email, jc_user, device, candidates, prior, decided_by, decided_at, elevated_at, expires_at, ended_at, ended_by, end_cause, left_alone, approval_message, version";

type Tx<'a> = sqlx::Transaction<'a, sqlx::Sqlite>;

async fn insert_audit(tx: &mut Tx<'_>, e: &AuditEntry) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO audit (at, actor, action, request_id, before_state, after_state, detail) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .bind(ms(e.at))
        .bind(&e.actor)
        .bind(&e.action)
        .bind(e.request_id.as_str())
        .bind(e.before.map(RequestState::as_str))
        .bind(e.after.map(RequestState::as_str))
        .bind(e.detail.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_notices(tx: &mut Tx<'_>, id: &RequestId, notices: &[Notice]) -> anyhow::Result<()> {
    for notice in notices {
        // Due at once: delivery order is the row order within a request.
        sqlx::query("INSERT INTO outbox (request_id, notice, due_at) VALUES (?, ?, 0)")
            .bind(id.as_str())
            .bind(serde_json::to_string(notice)?)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn insert_jobs(tx: &mut Tx<'_>, id: &RequestId, jobs: &[NewJob]) -> anyhow::Result<()> {
    for job in jobs {
        sqlx::query("INSERT INTO jobs (request_id, kind, arg, due_at) VALUES (?, ?, ?, ?)")
            .bind(id.as_str())
            .bind(job.kind.name())
            .bind(job.kind.arg())
            .bind(ms(job.due_at))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Moves the pending job of that kind to the new time, or creates it.
async fn reschedule_job(tx: &mut Tx<'_>, id: &RequestId, job: &NewJob) -> anyhow::Result<()> {
    let moved = sqlx::query("UPDATE jobs SET due_at = ? WHERE request_id = ? AND kind = ? AND arg = ? AND done_at IS NULL")
        .bind(ms(job.due_at))
        .bind(id.as_str())
        .bind(job.kind.name())
        .bind(job.kind.arg())
        .execute(&mut **tx)
        .await?;
    if moved.rows_affected() == 0 {
        insert_jobs(tx, id, std::slice::from_ref(job)).await?;
    }
    Ok(())
}

/// Marks pending jobs of that kind done without running them.
async fn cancel_jobs(
    tx: &mut Tx<'_>,
    id: &RequestId,
    kind: JobKind,
    now: Timestamp,
) -> anyhow::Result<()> {
    sqlx::query("UPDATE jobs SET done_at = ?, last_error = 'cancelled' WHERE request_id = ? AND kind = ? AND done_at IS NULL AND locked_until IS NULL")
        .bind(ms(now))
        .bind(id.as_str())
        .bind(kind.name())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The body of `Store::transition`, on one connection.
async fn transition_on(
    conn: &mut sqlx::SqliteConnection,
    t: &Transition,
    r: &Request,
) -> anyhow::Result<bool> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    // The version check makes this the conditional update of DESIGN 3: of
    // two writers that read the same version, the second changes nothing.
    let updated = sqlx::query(
        "UPDATE requests SET state = ?, reason = ?, email = ?, jc_user = ?, system_id = ?, device = ?, candidates = ?, prior = ?, \
         decided_by = ?, decided_at = ?, elevated_at = ?, expires_at = ?, ended_at = ?, ended_by = ?, end_cause = ?, left_alone = ?, version = ? \
         WHERE id = ? AND version = ?",
    )
    .bind(r.state.as_str())
    .bind(&r.reason)
    .bind(r.email.as_ref().map(Email::as_str))
    .bind(r.jc_user.as_ref().map(JcUserId::as_str))
    .bind(r.device.as_ref().map(|d| d.id.as_str()))
    .bind(json_or_null(&r.device)?)
    .bind(serde_json::to_string(&r.candidates)?)
    .bind(json_or_null(&r.prior)?)
    .bind(r.decided_by.as_ref().map(ChatUserId::as_str))
    .bind(r.decided_at.map(ms))
    .bind(r.elevated_at.map(ms))
    .bind(r.expires_at.map(ms))
    .bind(r.ended_at.map(ms))
    .bind(r.ended_by.as_ref().map(ChatUserId::as_str))
    .bind(r.end_cause.map(EndCause::as_str))
    .bind(r.left_alone)
    .bind(r.version)
    .bind(t.request_id.as_str())
    .bind(t.expected_version)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    insert_audit(&mut tx, &t.audit).await?;
    insert_notices(&mut tx, &t.request_id, &t.notices).await?;
    insert_jobs(&mut tx, &t.request_id, &t.jobs).await?;
    for job in &t.reschedule {
        reschedule_job(&mut tx, &t.request_id, job).await?;
    }
    for kind in &t.cancel {
        cancel_jobs(&mut tx, &t.request_id, *kind, t.audit.at).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Gives an outbox message up for good.
async fn mark_failed(
    pool: &SqlitePool,
    id: i64,
    now: Timestamp,
    error: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE outbox SET failed_at = ?, locked_until = NULL, last_error = ? WHERE id = ?",
    )
    .bind(ms(now))
    .bind(error)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The stored names of the states that satisfy `pick`, as an SQL list.
fn state_list(pick: fn(RequestState) -> bool) -> String {
    RequestState::ALL
        .into_iter()
        .filter(|s| pick(*s))
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn json_or_null<T: serde::Serialize>(value: &Option<T>) -> anyhow::Result<Option<String>> {
    value
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(Into::into)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_request(
        &self,
        r: &Request,
        audit: &AuditEntry,
        notices: &[Notice],
        jobs: &[NewJob],
    ) -> anyhow::Result<()> {
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO requests (id, requester, reply_to, duration_secs, words, reason, state, created_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(r.id.as_str())
            .bind(r.requester.as_str())
            .bind(&r.reply_to)
            .bind(r.duration.as_secs() as i64)
            .bind(serde_json::to_string(&r.words)?)
            .bind(&r.reason)
            .bind(r.state.as_str())
            .bind(ms(r.created_at))
            .bind(r.version)
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, audit).await?;
        insert_notices(&mut tx, &r.id, notices).await?;
        insert_jobs(&mut tx, &r.id, jobs).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn request(&self, id: &RequestId) -> anyhow::Result<Option<Request>> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(request_from_row).transpose()
    }

    async fn open_requests_of(&self, requester: &ChatUserId) -> anyhow::Result<Vec<Request>> {
        let terminal = state_list(RequestState::is_terminal);
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE requester = ? AND state NOT IN ({terminal}) ORDER BY created_at, id");
        let rows = sqlx::query(&sql)
            .bind(requester.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(request_from_row).collect()
    }

    async fn count_open_requests_of(&self, requester: &ChatUserId) -> anyhow::Result<usize> {
        let terminal = state_list(RequestState::is_terminal);
        let sql = format!(
            "SELECT COUNT(*) FROM requests WHERE requester = ? AND state NOT IN ({terminal})"
        );
        let (n,): (i64,) = sqlx::query_as(&sql)
            .bind(requester.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(n as usize)
    }

    async fn count_requests_since(
        &self,
        requester: &ChatUserId,
        since: Timestamp,
    ) -> anyhow::Result<usize> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM requests WHERE requester = ? AND created_at >= ?")
                .bind(requester.as_str())
                .bind(ms(since))
                .fetch_one(&self.pool)
                .await?;
        Ok(n as usize)
    }

    async fn open_request_for_device(
        &self,
        user: &JcUserId,
        system: &SystemId,
        except: &RequestId,
    ) -> anyhow::Result<Option<Request>> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE jc_user = ? AND system_id = ? AND id <> ? AND state IN ('pending_approval', 'approved', 'active', 'revoking') ORDER BY created_at LIMIT 1");
        let row = sqlx::query(&sql)
            .bind(user.as_str())
            .bind(system.as_str())
            .bind(except.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(request_from_row).transpose()
    }

    async fn transition(&self, t: &Transition) -> anyhow::Result<bool> {
        let _writing = self.writer.lock().await;
        let r = &t.to;
        // Commits default to `synchronous = NORMAL`: safe against a process
        // crash, and cheap enough to acknowledge Slack at once. A transition
        // into `approved` (the decision, and the prior state with the grant's
        // end, both written before JumpCloud is touched) is fsynced, so even
        // a power loss cannot forget an elevation or its revocation job; in
        // WAL mode that also makes every earlier commit durable. Later moves
        // (active, revoking, ended) need no fsync: losing one replays a job
        // that is idempotent, and keeping them cheap keeps a burst of
        // revocations from queueing behind a thousand fsyncs.
        let mut conn = self.pool.acquire().await?;
        let durable = r.state == RequestState::Approved;
        if durable {
            sqlx::query("PRAGMA synchronous = FULL")
                .execute(&mut *conn)
                .await?;
        }
        let applied = transition_on(&mut conn, t, r).await;
        if durable {
            sqlx::query("PRAGMA synchronous = NORMAL")
                .execute(&mut *conn)
                .await?;
        }
        applied
    }

    async fn set_approval_message(&self, id: &RequestId, reference: &str) -> anyhow::Result<()> {
        let _writing = self.writer.lock().await;
        sqlx::query("UPDATE requests SET approval_message = ? WHERE id = ?")
            .bind(reference)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn enqueue(&self, id: &RequestId, notices: &[Notice]) -> anyhow::Result<()> {
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        insert_notices(&mut tx, id, notices).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn append_audit(&self, entry: &AuditEntry) -> anyhow::Result<()> {
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        insert_audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_job(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        scope: ClaimScope,
    ) -> anyhow::Result<Option<Job>> {
        let _writing = self.writer.lock().await;
        let kind = match scope {
            ClaimScope::Revocations => Some(JobKind::Revoke.name()),
            ClaimScope::Any => None,
        };
        let row = sqlx::query(
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
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let kind: String = row.try_get("kind")?;
        Ok(Some(Job {
            id: row.try_get("id")?,
            request_id: RequestId::from_stored(row.try_get("request_id")?),
            kind: JobKind::from_stored(&kind, row.try_get("arg")?)
                .with_context(|| format!("unknown job kind {kind}"))?,
            due_at: ts(row.try_get("due_at")?),
            attempt: row.try_get::<i64, _>("attempts")? as u32,
        }))
    }

    async fn complete_job(&self, job: &Job, now: Timestamp) -> anyhow::Result<()> {
        let _writing = self.writer.lock().await;
        // Fenced by the attempt: a slow old attempt cannot finish a newer one.
        sqlx::query("UPDATE jobs SET done_at = ?, locked_until = NULL, last_error = NULL WHERE id = ? AND attempts = ? AND done_at IS NULL")
            .bind(ms(now))
            .bind(job.id)
            .bind(job.attempt as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn retry_job(&self, job: &Job, due_at: Timestamp, error: &str) -> anyhow::Result<()> {
        let _writing = self.writer.lock().await;
        sqlx::query("UPDATE jobs SET due_at = ?, locked_until = NULL, last_error = ? WHERE id = ? AND attempts = ? AND done_at IS NULL")
            .bind(ms(due_at))
            .bind(error)
            .bind(job.id)
            .bind(job.attempt as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn claim_messages(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> anyhow::Result<Vec<OutboxMessage>> {
        let _writing = self.writer.lock().await;
        let rows = sqlx::query(
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
        .fetch_all(&self.pool)
        .await?;
        let mut messages = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let text: String = row.try_get("notice")?;
            match serde_json::from_str(&text) {
                Ok(notice) => messages.push(OutboxMessage {
                    id,
                    request_id: RequestId::from_stored(row.try_get("request_id")?),
                    notice,
                    attempt: row.try_get::<i64, _>("attempts")? as u32,
                }),
                // A row this version cannot read must not block its request's
                // later messages (or the whole queue): set it aside.
                Err(e) => {
                    tracing::error!(message_id = id, error = %e, "unreadable outbox message set aside");
                    mark_failed(&self.pool, id, now, &format!("unreadable: {e}")).await?;
                }
            }
        }
        messages.sort_by_key(|m| m.id);
        Ok(messages)
    }

    async fn message_delivered(&self, id: i64, now: Timestamp) -> anyhow::Result<()> {
        let _writing = self.writer.lock().await;
        sqlx::query("UPDATE outbox SET delivered_at = ?, locked_until = NULL, last_error = NULL WHERE id = ?")
            .bind(ms(now))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn message_failed(&self, id: i64, now: Timestamp, error: &str) -> anyhow::Result<()> {
        let _writing = self.writer.lock().await;
        mark_failed(&self.pool, id, now, error).await
    }

    async fn retry_message(&self, id: i64, due_at: Timestamp, error: &str) -> anyhow::Result<()> {
        let _writing = self.writer.lock().await;
        sqlx::query(
            "UPDATE outbox SET due_at = ?, locked_until = NULL, last_error = ? WHERE id = ?",
        )
        .bind(ms(due_at))
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn next_due(&self) -> anyhow::Result<Option<Timestamp>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(t) FROM ( \
               SELECT MAX(due_at, COALESCE(locked_until, 0)) AS t FROM jobs WHERE done_at IS NULL \
               UNION ALL \
               SELECT MAX(due_at, COALESCE(locked_until, 0)) AS t FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(next.map(ts))
    }

    async fn next_revocation_due(&self) -> anyhow::Result<Option<Timestamp>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(MAX(due_at, COALESCE(locked_until, 0))) FROM jobs WHERE done_at IS NULL AND kind = ?",
        )
        .bind(JobKind::Revoke.name())
        .fetch_one(&self.pool)
        .await?;
        Ok(next.map(ts))
    }

    async fn audit_since(&self, since: Option<Timestamp>) -> anyhow::Result<Vec<AuditEntry>> {
        let rows = sqlx::query("SELECT at, actor, action, request_id, before_state, after_state, detail FROM audit WHERE at >= ? ORDER BY id")
            .bind(since.map(ms).unwrap_or(i64::MIN))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn count_by_state(&self) -> anyhow::Result<Vec<(RequestState, i64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM requests GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(s, n)| RequestState::parse(&s).map(|s| (s, n)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{GrantDuration, Notice};
    use chrono::TimeDelta;
    use serde_json::json;

    async fn store() -> SqliteStore {
        SqliteStore::open("sqlite::memory:").await.unwrap()
    }

    fn t0() -> Timestamp {
        ts(1_800_000_000_000)
    }

    fn audit(r: &Request, action: &str) -> AuditEntry {
        AuditEntry {
            at: t0(),
            actor: "U1".into(),
            action: action.into(),
            request_id: r.id.clone(),
            before: None,
            after: Some(r.state),
            detail: json!({}),
        }
    }

    async fn insert(store: &SqliteStore, jobs: &[NewJob], notices: &[Notice]) -> Request {
        let r = Request::new(
            ChatUserId::new("U1"),
            Some("https://r".into()),
            GrantDuration::from_secs(600),
            vec!["why".into()],
            t0(),
        );
        store
            .insert_request(&r, &audit(&r, "requested"), notices, jobs)
            .await
            .unwrap();
        r
    }

    fn job(kind: JobKind, after_secs: i64) -> NewJob {
        NewJob {
            kind,
            due_at: t0() + TimeDelta::seconds(after_secs),
        }
    }

    fn step(r: &Request, state: RequestState) -> Transition {
        let mut to = r.clone();
        to.state = state;
        to.version = r.version + 1;
        Transition {
            request_id: r.id.clone(),
            expected_version: r.version,
            audit: audit(&to, state.as_str()),
            to,
            notices: vec![],
            jobs: vec![],
            reschedule: vec![],
            cancel: vec![],
        }
    }

    #[tokio::test]
    async fn a_request_reads_back_as_written() {
        let s = store().await;
        let r = insert(&s, &[], &[]).await;
        assert_eq!(s.request(&r.id).await.unwrap(), Some(r.clone()));
        assert_eq!(s.open_requests_of(&r.requester).await.unwrap(), vec![r]);
    }

    #[tokio::test]
    async fn a_transition_from_a_stale_version_changes_nothing() {
        let s = store().await;
        let r = insert(&s, &[], &[]).await;
        let mut first = step(&r, RequestState::PendingApproval);
        first.notices = vec![Notice::ApprovalCard];
        let second = step(&r, RequestState::Refused);
        assert!(s.transition(&first).await.unwrap());
        assert!(!s.transition(&second).await.unwrap());
        let stored = s.request(&r.id).await.unwrap().unwrap();
        assert_eq!(
            (stored.state, stored.version),
            (RequestState::PendingApproval, 1)
        );
        let actions: Vec<_> = s
            .audit_since(None)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(
            actions,
            ["requested", "pending_approval"],
            "the loser wrote no audit line"
        );
        let queued = s.claim_messages(t0(), t0(), 10).await.unwrap();
        assert_eq!(queued.len(), 1, "nor any message");
    }

    #[tokio::test]
    async fn jobs_are_claimed_when_due_one_per_request_and_fenced_by_attempt() {
        let s = store().await;
        let r = insert(
            &s,
            &[
                job(JobKind::Grant, 0),
                job(JobKind::Revoke, 0),
                job(JobKind::Remind(60), 100),
            ],
            &[],
        )
        .await;
        let lease = t0() + TimeDelta::minutes(5);
        let grant = s
            .claim_job(t0(), lease, ClaimScope::Any)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((grant.kind, grant.attempt), (JobKind::Grant, 1));
        assert_eq!(
            s.claim_job(t0(), lease, ClaimScope::Any).await.unwrap(),
            None,
            "the revoke waits for the grant"
        );
        s.retry_job(&grant, t0() + TimeDelta::seconds(2), "503")
            .await
            .unwrap();
        let revoke = s
            .claim_job(t0(), lease, ClaimScope::Any)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(revoke.kind, JobKind::Revoke);
        s.complete_job(&revoke, t0()).await.unwrap();
        assert_eq!(
            s.next_due().await.unwrap(),
            Some(t0() + TimeDelta::seconds(2))
        );
        let later = t0() + TimeDelta::seconds(2);
        let again = s
            .claim_job(later, later + TimeDelta::minutes(5), ClaimScope::Any)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((again.kind, again.attempt), (JobKind::Grant, 2));
        // The first attempt finishing late cannot complete the second.
        s.complete_job(&grant, later).await.unwrap();
        s.retry_job(&again, later + TimeDelta::seconds(4), "503")
            .await
            .unwrap();
        let third = s
            .claim_job(
                later + TimeDelta::seconds(4),
                later + TimeDelta::minutes(5),
                ClaimScope::Any,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(third.attempt, 3);
        let _ = r;
    }

    #[tokio::test]
    async fn revocations_can_be_claimed_ahead_of_earlier_work() {
        let s = store().await;
        insert(&s, &[job(JobKind::Resolve, 0)], &[]).await;
        insert(&s, &[job(JobKind::Revoke, 5)], &[]).await;
        let at = t0() + TimeDelta::seconds(5);
        let lease = at + TimeDelta::minutes(5);
        assert_eq!(
            s.next_revocation_due().await.unwrap(),
            Some(at),
            "the revocation's own due time"
        );
        let first = s
            .claim_job(at, lease, ClaimScope::Revocations)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.kind, JobKind::Revoke, "although the resolve is older");
        assert_eq!(
            s.claim_job(at, lease, ClaimScope::Revocations)
                .await
                .unwrap(),
            None
        );
        let next = s
            .claim_job(at, lease, ClaimScope::Any)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.kind, JobKind::Resolve);
        assert_eq!(
            s.next_revocation_due().await.unwrap(),
            Some(lease),
            "a leased revocation counts from its lease's end"
        );
    }

    #[tokio::test]
    async fn a_lease_left_by_a_dead_process_is_released_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let s = SqliteStore::open(&url).await.unwrap();
        insert(&s, &[job(JobKind::Revoke, 0)], &[]).await;
        assert!(s
            .claim_job(t0(), t0() + TimeDelta::hours(1), ClaimScope::Any)
            .await
            .unwrap()
            .is_some());
        s.close().await;
        let reopened = SqliteStore::open(&url).await.unwrap();
        let job = reopened
            .claim_job(t0(), t0() + TimeDelta::hours(1), ClaimScope::Any)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((job.kind, job.attempt), (JobKind::Revoke, 2));
    }

    #[tokio::test]
    async fn reschedule_moves_a_pending_job_or_creates_it_and_cancel_drops_it() {
        let s = store().await;
        let r = insert(
            &s,
            &[job(JobKind::Revoke, 600), job(JobKind::ApprovalTimeout, 30)],
            &[],
        )
        .await;
        let mut t = step(&r, RequestState::Active);
        t.reschedule = vec![job(JobKind::Revoke, 60), job(JobKind::Grant, 5)];
        t.cancel = vec![JobKind::ApprovalTimeout];
        assert!(s.transition(&t).await.unwrap());
        assert_eq!(
            s.next_due().await.unwrap(),
            Some(t0() + TimeDelta::seconds(5))
        );
        let far = t0() + TimeDelta::hours(1);
        let first = s
            .claim_job(far, far, ClaimScope::Any)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.kind, JobKind::Grant);
        s.complete_job(&first, far).await.unwrap();
        let second = s
            .claim_job(far, far, ClaimScope::Any)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (second.kind, second.due_at),
            (JobKind::Revoke, t0() + TimeDelta::seconds(60))
        );
        s.complete_job(&second, far).await.unwrap();
        assert_eq!(
            s.claim_job(far, far, ClaimScope::Any).await.unwrap(),
            None,
            "the approval timeout was cancelled"
        );
    }

    #[tokio::test]
    async fn messages_go_one_at_a_time_per_request_in_order() {
        let s = store().await;
        let thread = |n| Notice::Thread {
            event: crate::domain::Event::Reminder {
                left: GrantDuration::from_secs(n),
            },
        };
        let a = insert(&s, &[], &[thread(1), thread(2)]).await;
        let b = insert(&s, &[], &[thread(3)]).await;
        let lease = t0() + TimeDelta::minutes(2);
        let batch = s.claim_messages(t0(), lease, 10).await.unwrap();
        assert_eq!(
            batch
                .iter()
                .map(|m| (&m.request_id, &m.notice))
                .collect::<Vec<_>>(),
            [(&a.id, &thread(1)), (&b.id, &thread(3))]
        );
        s.retry_message(batch[0].id, t0() + TimeDelta::seconds(9), "429")
            .await
            .unwrap();
        s.message_delivered(batch[1].id, t0()).await.unwrap();
        assert!(
            s.claim_messages(t0(), lease, 10).await.unwrap().is_empty(),
            "a's second message waits behind its first"
        );
        let later = t0() + TimeDelta::seconds(9);
        let retried = s.claim_messages(later, later, 10).await.unwrap();
        assert_eq!(
            (retried[0].notice.clone(), retried[0].attempt),
            (thread(1), 2)
        );
        s.message_failed(retried[0].id, later, "channel_not_found")
            .await
            .unwrap();
        let next = s.claim_messages(later, later, 10).await.unwrap();
        assert_eq!(
            next[0].notice,
            thread(2),
            "a message given up on does not block the rest"
        );
    }

    #[tokio::test]
    async fn two_open_requests_for_one_device_cannot_both_reach_approvers() {
        let s = store().await;
        let device = crate::domain::Device {
            id: SystemId::new("sys1"),
            hostname: "h".into(),
            display_name: "h".into(),
            os_family: "linux".into(),
            online: true,
            compiled_sudo: false,
        };
        let pending = |r: &Request| {
            let mut t = step(r, RequestState::PendingApproval);
            t.to.jc_user = Some(JcUserId::new("jc1"));
            t.to.device = Some(device.clone());
            t
        };
        let a = insert(&s, &[], &[]).await;
        let b = insert(&s, &[], &[]).await;
        assert!(s.transition(&pending(&a)).await.unwrap());
        assert!(s.transition(&pending(&b)).await.is_err());
        assert_eq!(
            s.request(&b.id).await.unwrap().unwrap().state,
            RequestState::Resolving
        );
        // Once the first has ended, the device is free again.
        let a1 = s.request(&a.id).await.unwrap().unwrap();
        assert!(s
            .transition(&step(&a1, RequestState::Denied))
            .await
            .unwrap());
        assert!(s.transition(&pending(&b)).await.unwrap());
    }

    async fn insert_for(store: &SqliteStore, user: &str, at: Timestamp) -> Request {
        let r = Request::new(
            ChatUserId::new(user),
            None,
            GrantDuration::from_secs(600),
            vec![],
            at,
        );
        store
            .insert_request(&r, &audit(&r, "requested"), &[], &[])
            .await
            .unwrap();
        r
    }

    #[tokio::test]
    async fn open_requests_are_counted_per_person_until_they_end() {
        let s = store().await;
        let ada = ChatUserId::new("U1");
        let first = insert_for(&s, "U1", t0()).await;
        let second = insert_for(&s, "U1", t0()).await;
        insert_for(&s, "U2", t0()).await;
        assert_eq!(s.count_open_requests_of(&ada).await.unwrap(), 2);
        let active = step(&first, RequestState::Active);
        assert!(s.transition(&active).await.unwrap());
        assert_eq!(
            s.count_open_requests_of(&ada).await.unwrap(),
            2,
            "an active grant is open"
        );
        assert!(s
            .transition(&step(&second, RequestState::Refused))
            .await
            .unwrap());
        assert_eq!(s.count_open_requests_of(&ada).await.unwrap(), 1);
        assert_eq!(
            s.count_open_requests_of(&ChatUserId::new("U3"))
                .await
                .unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn requests_are_counted_per_person_from_a_time_on_whatever_became_of_them() {
        let s = store().await;
        let ada = ChatUserId::new("U1");
        let old = insert_for(&s, "U1", t0()).await;
        insert_for(&s, "U1", t0() + TimeDelta::minutes(30)).await;
        insert_for(&s, "U1", t0() + TimeDelta::minutes(59)).await;
        insert_for(&s, "U2", t0() + TimeDelta::minutes(59)).await;
        assert!(s
            .transition(&step(&old, RequestState::Refused))
            .await
            .unwrap());
        assert_eq!(s.count_requests_since(&ada, t0()).await.unwrap(), 3);
        let since = t0() + TimeDelta::minutes(30);
        assert_eq!(
            s.count_requests_since(&ada, since).await.unwrap(),
            2,
            "from `since` on, inclusive"
        );
        let later = t0() + TimeDelta::minutes(60);
        assert_eq!(s.count_requests_since(&ada, later).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn the_write_ahead_log_is_cut_back_to_its_limit_after_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let s = SqliteStore::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let wal = || {
            std::fs::metadata(dir.path().join("wal.db-wal"))
                .unwrap()
                .len()
        };
        let r = insert(&s, &[], &[]).await;
        // A reader that started before the burst keeps every checkpoint
        // (ours in the background too) from completing until it ends.
        let mut reader = {
            use sqlx::Connection;
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap()
        };
        sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
        sqlx::query("SELECT COUNT(*) FROM audit")
            .execute(&mut reader)
            .await
            .unwrap();
        let mut entry = audit(&r, "bulk");
        entry.detail = json!({ "text": "x".repeat(64 * 1024) });
        for _ in 0..160 {
            s.append_audit(&entry).await.unwrap();
        }
        assert!(
            wal() > 2 * WAL_SIZE_LIMIT,
            "a burst grows the log: {}",
            wal()
        );
        sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
        drop(reader);
        s.checkpoint().await.unwrap();
        // The next write starts the log afresh.
        s.append_audit(&audit(&r, "after")).await.unwrap();
        assert!(wal() <= WAL_SIZE_LIMIT, "cut back: {}", wal());
        s.close().await;
    }

    #[tokio::test]
    async fn the_audit_trail_cannot_be_changed() {
        let s = store().await;
        insert(&s, &[], &[]).await;
        assert!(sqlx::query("UPDATE audit SET actor = 'someone else'")
            .execute(&s.pool)
            .await
            .is_err());
        assert!(sqlx::query("DELETE FROM audit")
            .execute(&s.pool)
            .await
            .is_err());
        assert_eq!(s.audit_since(None).await.unwrap().len(), 1);
        assert!(s
            .audit_since(Some(t0() + TimeDelta::seconds(1)))
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn an_open_request_for_the_same_device_is_found_and_counts_by_state() {
        let s = store().await;
        let r = insert(&s, &[], &[]).await;
        let mut t = step(&r, RequestState::PendingApproval);
        t.to.jc_user = Some(JcUserId::new("jc1"));
        t.to.device = Some(crate::domain::Device {
            id: SystemId::new("sys1"),
            hostname: "h".into(),
            display_name: "h".into(),
            os_family: "linux".into(),
            online: false,
            compiled_sudo: false,
        });
        assert!(s.transition(&t).await.unwrap());
        let other = RequestId::generate();
        let found = s
            .open_request_for_device(&JcUserId::new("jc1"), &SystemId::new("sys1"), &other)
            .await
            .unwrap();
        assert_eq!(found.map(|f| f.id), Some(r.id.clone()));
        assert_eq!(
            s.open_request_for_device(&JcUserId::new("jc1"), &SystemId::new("sys1"), &r.id)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            s.count_by_state().await.unwrap(),
            vec![(RequestState::PendingApproval, 1)]
        );
        s.set_approval_message(&r.id, "C1/1.2").await.unwrap();
        assert_eq!(
            s.request(&r.id)
                .await
                .unwrap()
                .unwrap()
                .approval_message
                .as_deref(),
            Some("C1/1.2")
        );
        s.ping().await.unwrap();
    }
}
