//! `Store` on PostgreSQL: several replicas share one database, and any
//! replica may run any job.
//!
//! Invariants, across processes:
//! - A job or message is held by one attempt at a time: claims lock rows
//!   with `FOR UPDATE SKIP LOCKED` and lease them (`locked_until`, with
//!   `locked_by` naming the process); an expired lease may be taken over,
//!   and completion is fenced by `attempts`, so an old attempt that
//!   outlived its lease changes nothing.
//! - One job per request at a time: a claim holds the request's advisory
//!   transaction lock while it re-checks, in a fresh snapshot, that no other
//!   job of the request is in flight. Two claimers racing for two jobs of one
//!   request cannot both see the other's job as idle.
//! - Messages of one request go in id order: every write that queues
//!   notices holds the request's row lock, so ids are handed out in commit
//!   order, and only the oldest undelivered message of a request is
//!   claimable.
//! - A transition is one transaction (conditional update on `version`,
//!   audit, outbox, jobs); the audit table refuses updates, deletes and
//!   truncation (a trigger).
//!
//! Connections are plain TCP (sqlx is built without TLS): loopback, a
//! sidecar, or a cluster network that is itself protected.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::Notify;

use super::codec::{ms, JobRow, MessageRow};
use crate::domain::{
    AuditEntry, ChatUserId, ConversationReference, JcUserId, Notice, Request, RequestId,
    RequestState, SystemId, Timestamp,
};
use crate::engine::ports::{
    Admission, ClaimScope, Insertion, Job, JobKind, Lease, NewRequest, OutboxMessage, QueueDepth,
    Store, Transition,
};

/// The channel replicas wake each other on when work is added or released.
const WORK_CHANNEL: &str = "tempadmin_work";
/// Connections per replica. The scheduler's workers spend most of their time
/// waiting on JumpCloud and Slack, not on the database.
const POOL_SIZE: u32 = 16;
/// How many due jobs one look of a claim considers.
const CLAIM_CANDIDATES: i64 = 8;
/// How many looks a claim takes when every candidate was being claimed by
/// somebody else at the same moment, before it says there is nothing.
const CLAIM_LOOKS: usize = 4;
/// The namespace of this program's advisory locks (the first key), so that
/// they never meet another application's on a shared server.
const LOCK_NAMESPACE: i32 = 0x7465_6d70; // "temp"
/// The namespace of the per-person locks that admit new requests.
const PERSON_LOCK_NAMESPACE: i32 = 0x7465_6d71;
/// The pause before listening again after the notification connection failed.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// Requests, jobs, outbox and audit in a PostgreSQL database that several
/// replicas share.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// This process's name in `locked_by`: host, pid and a random part.
    owner: Arc<str>,
    /// Woken by the listener when any process adds or releases work.
    woken: Arc<Notify>,
    /// The task that listens on [`WORK_CHANNEL`]; stopped by `close`.
    listener: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`), applies the migrations (sqlx
    /// serialises replicas starting at once with an advisory lock), and
    /// listens for work added by other replicas: once this returns, every
    /// later notification is heard (unless the connection drops). Leases
    /// found in the database are left alone: they may belong to live
    /// replicas, and end by themselves.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let store = Self::connect(url).await?;
        super::migrations::POSTGRES
            .run(&store.pool)
            .await
            .context("cannot apply database migrations")?;
        let first = subscribe(&store.pool).await;
        if let Err(e) = &first {
            tracing::warn!(error = %e, "cannot listen for work from other replicas; polling meanwhile");
        }
        let listening = tokio::spawn(listen(store.pool.clone(), first.ok(), store.woken.clone()));
        if let Ok(mut slot) = store.listener.lock() {
            *slot = Some(listening);
        }
        Ok(store)
    }

    /// Connects to read (the audit export): no migrations, no listener.
    pub async fn open_reader(url: &str) -> anyhow::Result<Self> {
        Self::connect(url).await
    }

    async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .with_context(|| "database_url is not a PostgreSQL URL".to_string())?
            .application_name("tempadmin");
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .context("cannot connect to the PostgreSQL database")?;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "?".into());
        let owner = format!(
            "{host}/{}/{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        Ok(Self {
            pool,
            owner: owner.into(),
            woken: Arc::new(Notify::new()),
            listener: Default::default(),
        })
    }

    /// Stops listening and closes the pool. Leases are released before, by
    /// `Store::release_leases`.
    pub async fn close(&self) {
        if let Some(listening) = self.listener.lock().ok().and_then(|mut l| l.take()) {
            listening.abort();
        }
        self.pool.close().await;
    }
}

/// A connection of its own (outside the pool) that listens on
/// [`WORK_CHANNEL`].
async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(WORK_CHANNEL).await?;
    Ok(listener)
}

/// Listens until the task is aborted, waking the scheduler on each
/// notification. After the connection dropped, notifications may have been
/// missed, so it wakes the scheduler then too.
async fn listen(pool: PgPool, mut first: Option<PgListener>, woken: Arc<Notify>) {
    loop {
        let mut listener = match first.take() {
            Some(listener) => listener,
            None => match subscribe(&pool).await {
                Ok(listener) => {
                    woken.notify_one();
                    listener
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for work from other replicas; polling meanwhile");
                    tokio::time::sleep(LISTEN_RETRY).await;
                    continue;
                }
            },
        };
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => woken.notify_one(),
                // The connection dropped; the next call reconnects.
                Ok(None) => woken.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the notification connection; polling meanwhile");
                    tokio::time::sleep(LISTEN_RETRY).await;
                    break;
                }
            }
        }
    }
}

super::shared::shared_sql!(
    db = sqlx::Postgres,
    data = "data::text AS data",
    json = "::jsonb",
    release = ", locked_by = NULL",
    notice_kind = "(notice::jsonb ->> 'to')"
);

/// Inserts the request's row; `false` when a request with the same
/// delivery key exists (the command is a copy), and nothing was
/// written.
async fn insert_request_row(
    tx: &mut Tx<'_>,
    r: &crate::domain::Request,
    delivery: Option<&str>,
) -> anyhow::Result<bool> {
    let e = super::codec::encode(r)?;
    let inserted = sqlx::query(
        "INSERT INTO requests (id, platform, requester, state, created_at, jc_user, system_id, data, version, delivery) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10) ON CONFLICT (delivery) DO NOTHING",
    )
    .bind(e.id)
    .bind(e.platform)
    .bind(e.requester)
    .bind(e.state)
    .bind(e.created_at)
    .bind(e.jc_user)
    .bind(e.system_id)
    .bind(&e.data)
    .bind(e.version)
    .bind(delivery)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// What `admit` says of one more request of `r`'s requester: counts
/// their open requests and those they made at or after `since`.
async fn admission<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Postgres>,
    r: &crate::domain::Request,
    since: crate::domain::Timestamp,
    admit: &crate::engine::ports::Admission,
) -> anyhow::Result<Result<(), crate::domain::Refusal>> {
    let terminal = super::codec::state_list(crate::domain::RequestState::is_terminal);
    let sql = format!(
        "SELECT COUNT(*) FILTER (WHERE state NOT IN ({terminal})), COUNT(*) FILTER (WHERE created_at >= $1) \
         FROM requests WHERE platform = $2 AND requester = $3"
    );
    let (open, recent): (i64, i64) = sqlx::query_as(&sql)
        .bind(super::codec::ms(since))
        .bind(r.requester.platform().as_str())
        .bind(r.requester.as_str())
        .fetch_one(db)
        .await?;
    Ok(admit(open as usize, recent as usize))
}

/// Tells every replica (on commit) that work was added or released.
async fn notify_work(tx: &mut Tx<'_>) -> anyhow::Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WORK_CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Holds the request's row lock until the transaction ends, so that
/// notices of one request get their ids in commit order. `false` when the
/// request does not exist.
async fn lock_request_row(tx: &mut Tx<'_>, id: &RequestId) -> anyhow::Result<bool> {
    let found = sqlx::query("SELECT 1 FROM requests WHERE id = $1 FOR UPDATE")
        .bind(id.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(found.is_some())
}

/// Due, idle jobs (of `kind`, when given) whose request has no job in
/// flight as far as this snapshot sees, earliest first. Nothing is locked
/// yet: another claimer may be taking any of them right now.
async fn claimable_jobs(
    tx: &mut Tx<'_>,
    now: Timestamp,
    kind: Option<&str>,
) -> anyhow::Result<Vec<(i64, String)>> {
    let rows = sqlx::query_as(
        "SELECT j.id, j.request_id FROM jobs j \
         WHERE j.done_at IS NULL AND j.due_at <= $1 AND ($2::text IS NULL OR j.kind = $2) \
           AND (j.locked_until IS NULL OR j.locked_until <= $1) \
           AND NOT EXISTS (SELECT 1 FROM jobs k WHERE k.request_id = j.request_id AND k.id <> j.id \
                           AND k.done_at IS NULL AND k.locked_until > $1) \
         ORDER BY j.due_at, j.id LIMIT $3",
    )
    .bind(ms(now))
    .bind(kind)
    .bind(CLAIM_CANDIDATES)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows)
}

/// Takes the request's advisory lock for the rest of the transaction, if
/// no other claimer holds it. Whoever held it before has committed, so the
/// next statement's snapshot sees its claim. Two requests may share a key
/// (a 32-bit hash): that only makes a claimer skip one, never run two.
async fn try_lock_request(tx: &mut Tx<'_>, request_id: &str) -> anyhow::Result<bool> {
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, hashtext($2))")
        .bind(LOCK_NAMESPACE)
        .bind(request_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(locked)
}

/// Leases one job if, in a fresh snapshot, it is still due and idle and no
/// other job of its request is in flight; a row another transaction has
/// locked is skipped, not waited for.
async fn lease_job(
    tx: &mut Tx<'_>,
    id: i64,
    now: Timestamp,
    lease_until: Timestamp,
    owner: &str,
) -> anyhow::Result<Option<Job>> {
    let row: Option<JobRow> = sqlx::query_as(
        "UPDATE jobs SET attempts = attempts + 1, locked_until = $3, locked_by = $4 \
         WHERE id = (SELECT j.id FROM jobs j \
                     WHERE j.id = $1 AND j.done_at IS NULL AND j.due_at <= $2 \
                       AND (j.locked_until IS NULL OR j.locked_until <= $2) \
                       AND NOT EXISTS (SELECT 1 FROM jobs k WHERE k.request_id = j.request_id AND k.id <> j.id \
                                       AND k.done_at IS NULL AND k.locked_until > $2) \
                     FOR UPDATE SKIP LOCKED) \
         RETURNING id, request_id, kind, arg, due_at, attempts",
    )
    .bind(id)
    .bind(ms(now))
    .bind(ms(lease_until))
    .bind(owner)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(JobRow::decode).transpose()
}

#[async_trait]
impl Store for PostgresStore {
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
        let r = &new.request;
        // A first look without the lock: a flood of commands past the
        // limits is refused without queueing for it. (A count can only be
        // too high by a request that ended a moment ago.)
        if let Err(refusal) = admission(&self.pool, r, since, &admit).await? {
            return Ok(Insertion::Refused(refusal));
        }
        let mut tx = self.pool.begin().await?;
        // Every replica's commands of this person queue here; the count
        // below then sees the requests committed before it.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(PERSON_LOCK_NAMESPACE)
            .bind(r.requester.as_str())
            .execute(&mut *tx)
            .await?;
        if let Err(refusal) = admission(&mut *tx, r, since, &admit).await? {
            return Ok(Insertion::Refused(refusal));
        }
        if !insert_request_row(&mut tx, r, new.delivery.as_deref()).await? {
            return Ok(Insertion::Replayed);
        }
        insert_audit(&mut tx, &new.audit).await?;
        insert_jobs(&mut tx, &r.id, &new.jobs).await?;
        if !new.jobs.is_empty() {
            notify_work(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(Insertion::Inserted)
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
        // One transaction, as on SQLite: the update (which also takes the
        // request's row lock, ordering its notices), the audit line, the
        // notices and the jobs, so that an elevation is never recorded
        // without its revocation job (DESIGN 1). Commits are synchronous:
        // once this returns, a power loss forgets nothing.
        let mut tx = self.pool.begin().await?;
        if !apply_transition(&mut tx, t).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        if !t.notices.is_empty() || !t.jobs.is_empty() || !t.reschedule.is_empty() {
            notify_work(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn set_approval_message(&self, id: &RequestId, reference: &str) -> anyhow::Result<()> {
        update_approval_message(&self.pool, id, reference).await
    }

    async fn enqueue(
        &self,
        id: &RequestId,
        notices: &[Notice],
        now: Timestamp,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        if !lock_request_row(&mut tx, id).await? {
            anyhow::bail!("cannot queue messages for request {id}: it does not exist");
        }
        insert_notices(&mut tx, id, notices, now).await?;
        notify_work(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn append_audit(&self, entry: &AuditEntry) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn first_sighting(
        &self,
        key: &str,
        now: Timestamp,
        keep_until: Timestamp,
    ) -> anyhow::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let first = record_sighting(&mut tx, key, now, keep_until).await?;
        tx.commit().await?;
        Ok(first)
    }

    async fn remember_conversation_reference(
        &self,
        reference: &ConversationReference,
    ) -> anyhow::Result<()> {
        upsert_reference(&self.pool, reference).await
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
        // A look runs in one snapshot and may be out of date by the time it
        // returns: another claimer may have just leased a sibling job of
        // the same request. The request's advisory lock and a second look
        // at the one job, in a new snapshot, close that gap. When other
        // claimers held every candidate's request, their claims are about
        // to commit; the next look no longer offers those, so revocations
        // further down are not mistaken for none.
        for _ in 0..CLAIM_LOOKS {
            let mut tx = self.pool.begin().await?;
            let mut contended = false;
            for (id, request_id) in claimable_jobs(&mut tx, now, kind).await? {
                if !try_lock_request(&mut tx, &request_id).await? {
                    contended = true;
                    continue;
                }
                if let Some(job) = lease_job(&mut tx, id, now, lease_until, &self.owner).await? {
                    tx.commit().await?;
                    return Ok(Some(job));
                }
            }
            tx.rollback().await?;
            if !contended {
                break;
            }
        }
        Ok(None)
    }

    async fn complete_job(&self, job: &Job, now: Timestamp) -> anyhow::Result<()> {
        finish_job(&self.pool, job, now).await
    }

    async fn retry_job(&self, job: &Job, due_at: Timestamp, error: &str) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        if release_job(&mut *tx, job, due_at, error).await? {
            notify_work(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn claim_messages(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> anyhow::Result<Vec<OutboxMessage>> {
        // Only the oldest undelivered message of a request is a candidate,
        // and a message once delivered or given up stays so: of two
        // claimers, one that sees an older snapshot is only more careful.
        // The row lock (and PostgreSQL's re-check of a row another claimer
        // just leased) keeps one message from being claimed twice.
        let rows: Vec<MessageRow> = sqlx::query_as(
            "WITH picked AS ( \
               SELECT o.id FROM outbox o \
               WHERE o.delivered_at IS NULL AND o.failed_at IS NULL AND o.due_at <= $1 \
                 AND (o.locked_until IS NULL OR o.locked_until <= $1) \
                 AND o.id = (SELECT MIN(p.id) FROM outbox p WHERE p.request_id = o.request_id \
                             AND p.delivered_at IS NULL AND p.failed_at IS NULL) \
               ORDER BY o.id LIMIT $3 \
               FOR UPDATE OF o SKIP LOCKED) \
             UPDATE outbox SET attempts = outbox.attempts + 1, locked_until = $2, locked_by = $4 \
             FROM picked WHERE outbox.id = picked.id \
             RETURNING outbox.id, outbox.request_id, outbox.notice, outbox.attempts",
        )
        .bind(ms(now))
        .bind(ms(lease_until))
        .bind(limit as i64)
        .bind(&*self.owner)
        .fetch_all(&self.pool)
        .await?;
        readable_messages(&mut *self.pool.acquire().await?, rows, now).await
    }

    async fn message_delivered(
        &self,
        message: &OutboxMessage,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        finish_message(&self.pool, message, now, None).await
    }

    async fn message_failed(
        &self,
        message: &OutboxMessage,
        now: Timestamp,
        error: &str,
    ) -> anyhow::Result<()> {
        finish_message(&self.pool, message, now, Some(error)).await
    }

    async fn retry_message(
        &self,
        message: &OutboxMessage,
        due_at: Timestamp,
        error: &str,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        if release_message(&mut *tx, message, due_at, error).await? {
            notify_work(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
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

    async fn work_added(&self) {
        self.woken.notified().await
    }

    async fn renew_leases(&self, held: &[Lease], until: Timestamp) -> anyhow::Result<Vec<Lease>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let (mut job_ids, mut job_attempts) = (Vec::new(), Vec::new());
        let (mut message_ids, mut message_attempts) = (Vec::new(), Vec::new());
        for lease in held {
            match *lease {
                Lease::Job { id, attempt } => {
                    job_ids.push(id);
                    job_attempts.push(attempt as i64);
                }
                Lease::Message { id, attempt } => {
                    message_ids.push(id);
                    message_attempts.push(attempt as i64);
                }
            }
        }
        // Fenced by the attempt as completion is: a newer claim (another
        // replica took the row over) bumped it.
        let mut tx = self.pool.begin().await?;
        let jobs: Vec<(i64, i64)> = sqlx::query_as(
            "UPDATE jobs SET locked_until = $1 \
             FROM UNNEST($2::BIGINT[], $3::BIGINT[]) AS held(id, attempts) \
             WHERE jobs.id = held.id AND jobs.attempts = held.attempts \
               AND jobs.done_at IS NULL AND jobs.locked_until IS NOT NULL AND jobs.locked_by = $4 \
             RETURNING jobs.id, jobs.attempts",
        )
        .bind(ms(until))
        .bind(&job_ids)
        .bind(&job_attempts)
        .bind(&*self.owner)
        .fetch_all(&mut *tx)
        .await?;
        let messages: Vec<(i64, i64)> = sqlx::query_as(
            "UPDATE outbox SET locked_until = $1 \
             FROM UNNEST($2::BIGINT[], $3::BIGINT[]) AS held(id, attempts) \
             WHERE outbox.id = held.id AND outbox.attempts = held.attempts \
               AND outbox.delivered_at IS NULL AND outbox.failed_at IS NULL \
               AND outbox.locked_until IS NOT NULL AND outbox.locked_by = $4 \
             RETURNING outbox.id, outbox.attempts",
        )
        .bind(ms(until))
        .bind(&message_ids)
        .bind(&message_attempts)
        .bind(&*self.owner)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let renewed: std::collections::HashSet<Lease> = jobs
            .into_iter()
            .map(|(id, attempt)| Lease::Job {
                id,
                attempt: attempt as u32,
            })
            .chain(messages.into_iter().map(|(id, attempt)| Lease::Message {
                id,
                attempt: attempt as u32,
            }))
            .collect();
        Ok(held
            .iter()
            .filter(|l| !renewed.contains(l))
            .copied()
            .collect())
    }

    async fn release_leases(&self) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE jobs SET locked_until = NULL, locked_by = NULL WHERE locked_by = $1 AND done_at IS NULL")
            .bind(&*self.owner)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE outbox SET locked_until = NULL, locked_by = NULL WHERE locked_by = $1 AND delivered_at IS NULL AND failed_at IS NULL")
            .bind(&*self.owner)
            .execute(&mut *tx)
            .await?;
        notify_work(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
