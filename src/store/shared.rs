//! The SQL both backends run alike, written once. Each backend module
//! expands [`shared_sql!`] for its own database type, so the statements
//! and their binds exist in one place; only what truly differs stays in
//! `sqlite.rs` and `postgres.rs` (claiming, leases, locks, notifications,
//! the writer queue). Placeholders are `$n`, which sqlx accepts on both.
//!
//! Invariant: a transition's conditional update and everything it writes
//! besides (audit line, notices, jobs moved or dropped) are one function,
//! [`apply_transition`](shared_sql), run inside the caller's transaction.

/// Expands to the shared statements for one backend:
/// `db`, the sqlx database; `data`, how `requests.data` is selected as
/// text; `json`, the cast that makes a bound text JSON; `release`, what
/// else ends a lease besides `locked_until`; `notice_kind`, the expression
/// that reads an outbox row's notice kind (its JSON tag `to`).
macro_rules! shared_sql {
    (db = $db:ty, data = $data:literal, json = $json:literal, release = $release:literal, notice_kind = $notice_kind:literal) => {
        type Tx<'a> = sqlx::Transaction<'a, $db>;

        /// Every request column, for `SELECT`.
        const REQUEST_SELECT: &str = concat!(
            "SELECT id, platform, requester, state, created_at, approval_message, version, ",
            $data,
            " FROM requests"
        );

        /// A transition: the conditional update of DESIGN 3 (of two writers
        /// that read the same version, the second changes nothing and gets
        /// `false`; the caller rolls back), then its audit line, notices and
        /// jobs.
        async fn apply_transition(
            tx: &mut Tx<'_>,
            t: &crate::engine::ports::Transition,
        ) -> anyhow::Result<bool> {
            let e = super::codec::encode(&t.to)?;
            let updated = sqlx::query(concat!(
                "UPDATE requests SET state = $1, jc_user = $2, system_id = $3, data = $4",
                $json,
                ", version = $5 WHERE id = $6 AND version = $7"
            ))
            .bind(e.state)
            .bind(e.jc_user)
            .bind(e.system_id)
            .bind(&e.data)
            .bind(e.version)
            .bind(t.request_id.as_str())
            .bind(t.expected_version)
            .execute(&mut **tx)
            .await?;
            if updated.rows_affected() == 0 {
                return Ok(false);
            }
            insert_audit(tx, &t.audit).await?;
            insert_notices(tx, &t.request_id, &t.notices, t.audit.at).await?;
            insert_jobs(tx, &t.request_id, &t.jobs).await?;
            for job in &t.reschedule {
                reschedule_job(tx, &t.request_id, job).await?;
            }
            for kind in &t.cancel {
                cancel_jobs(tx, &t.request_id, *kind, t.audit.at).await?;
            }
            Ok(true)
        }

        async fn insert_audit(
            tx: &mut Tx<'_>,
            e: &crate::domain::AuditEntry,
        ) -> anyhow::Result<()> {
            sqlx::query("INSERT INTO audit (at, actor, action, request_id, before_state, after_state, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(super::codec::ms(e.at))
                .bind(&e.actor)
                .bind(e.action.as_str())
                .bind(e.request_id.as_str())
                .bind(e.before.map(crate::domain::RequestState::as_str))
                .bind(e.after.map(crate::domain::RequestState::as_str))
                .bind(e.detail.to_string())
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// Queues `notices`, due from `queued_at` (so the oldest due
        /// message's age is how long it has waited): delivery order is the
        /// id order within a request. On PostgreSQL callers hold the
        /// request's row lock (or created the row in this transaction), so
        /// that ids are handed out in commit order.
        async fn insert_notices(
            tx: &mut Tx<'_>,
            id: &crate::domain::RequestId,
            notices: &[crate::domain::Notice],
            queued_at: crate::domain::Timestamp,
        ) -> anyhow::Result<()> {
            for notice in notices {
                sqlx::query("INSERT INTO outbox (request_id, notice, due_at) VALUES ($1, $2, $3)")
                    .bind(id.as_str())
                    .bind(serde_json::to_string(notice)?)
                    .bind(super::codec::ms(queued_at))
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }

        async fn insert_jobs(
            tx: &mut Tx<'_>,
            id: &crate::domain::RequestId,
            jobs: &[crate::engine::ports::NewJob],
        ) -> anyhow::Result<()> {
            for job in jobs {
                sqlx::query(
                    "INSERT INTO jobs (request_id, kind, arg, due_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(id.as_str())
                .bind(job.kind.name())
                .bind(job.kind.arg())
                .bind(super::codec::ms(job.due_at))
                .execute(&mut **tx)
                .await?;
            }
            Ok(())
        }

        /// Moves the pending job of that kind to the new time, or creates it.
        async fn reschedule_job(
            tx: &mut Tx<'_>,
            id: &crate::domain::RequestId,
            job: &crate::engine::ports::NewJob,
        ) -> anyhow::Result<()> {
            let moved = sqlx::query("UPDATE jobs SET due_at = $1 WHERE request_id = $2 AND kind = $3 AND arg = $4 AND done_at IS NULL")
                .bind(super::codec::ms(job.due_at))
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

        /// Marks pending jobs of that kind done without running them (not
        /// one that is in flight: its worker finishes it).
        async fn cancel_jobs(
            tx: &mut Tx<'_>,
            id: &crate::domain::RequestId,
            kind: crate::engine::ports::JobKind,
            now: crate::domain::Timestamp,
        ) -> anyhow::Result<()> {
            sqlx::query("UPDATE jobs SET done_at = $1, last_error = 'cancelled' WHERE request_id = $2 AND kind = $3 AND done_at IS NULL AND locked_until IS NULL")
                .bind(super::codec::ms(now))
                .bind(id.as_str())
                .bind(kind.name())
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        async fn select_request(
            pool: &sqlx::Pool<$db>,
            id: &crate::domain::RequestId,
        ) -> anyhow::Result<Option<crate::domain::Request>> {
            let sql = format!("{REQUEST_SELECT} WHERE id = $1");
            let row: Option<super::codec::RequestRow> = sqlx::query_as(&sql)
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?;
            row.map(super::codec::RequestRow::decode).transpose()
        }

        async fn select_open_requests_of(
            pool: &sqlx::Pool<$db>,
            requester: &crate::domain::ChatUserId,
        ) -> anyhow::Result<Vec<crate::domain::Request>> {
            let terminal = super::codec::state_list(crate::domain::RequestState::is_terminal);
            let sql = format!("{REQUEST_SELECT} WHERE platform = $1 AND requester = $2 AND state NOT IN ({terminal}) ORDER BY created_at, id");
            let rows: Vec<super::codec::RequestRow> = sqlx::query_as(&sql)
                .bind(requester.platform().as_str())
                .bind(requester.as_str())
                .fetch_all(pool)
                .await?;
            rows.into_iter().map(super::codec::RequestRow::decode).collect()
        }

        /// A person's requests that are open or were made at or after
        /// `since`, newest first, at most `limit` (the App Home).
        async fn select_requests_of(
            pool: &sqlx::Pool<$db>,
            requester: &crate::domain::ChatUserId,
            since: crate::domain::Timestamp,
            limit: u32,
        ) -> anyhow::Result<Vec<crate::domain::Request>> {
            let terminal = super::codec::state_list(crate::domain::RequestState::is_terminal);
            let sql = format!(
                "{REQUEST_SELECT} WHERE platform = $1 AND requester = $2 \
                 AND (state NOT IN ({terminal}) OR created_at >= $3) \
                 ORDER BY (state IN ({terminal})), created_at DESC, id DESC LIMIT $4"
            );
            let rows: Vec<super::codec::RequestRow> = sqlx::query_as(&sql)
                .bind(requester.platform().as_str())
                .bind(requester.as_str())
                .bind(super::codec::ms(since))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            rows.into_iter().map(super::codec::RequestRow::decode).collect()
        }

        /// Requests of `platform` waiting for a decision, oldest first, at
        /// most `limit`; through the partial index of migration 0009, which
        /// holds only such requests.
        async fn select_pending_approval(
            pool: &sqlx::Pool<$db>,
            platform: crate::domain::Platform,
            limit: u32,
        ) -> anyhow::Result<Vec<crate::domain::Request>> {
            let sql = format!(
                "{REQUEST_SELECT} WHERE state = 'pending_approval' AND platform = $1 \
                 ORDER BY created_at, id LIMIT $2"
            );
            let rows: Vec<super::codec::RequestRow> = sqlx::query_as(&sql)
                .bind(platform.as_str())
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            rows.into_iter().map(super::codec::RequestRow::decode).collect()
        }

        /// Another request holding the device (see
        /// [`RequestState::holds_device`](crate::domain::RequestState::holds_device)).
        async fn select_open_request_for_device(
            pool: &sqlx::Pool<$db>,
            user: &crate::domain::JcUserId,
            system: &crate::domain::SystemId,
            except: &crate::domain::RequestId,
        ) -> anyhow::Result<Option<crate::domain::Request>> {
            let holding = super::codec::state_list(crate::domain::RequestState::holds_device);
            let sql = format!(
                "{REQUEST_SELECT} WHERE jc_user = $1 AND system_id = $2 AND id <> $3 \
                 AND state IN ({holding}) ORDER BY created_at LIMIT 1"
            );
            let row: Option<super::codec::RequestRow> = sqlx::query_as(&sql)
            .bind(user.as_str())
            .bind(system.as_str())
            .bind(except.as_str())
            .fetch_optional(pool)
            .await?;
            row.map(super::codec::RequestRow::decode).transpose()
        }

        async fn update_approval_message<'e>(
            db: impl sqlx::Executor<'e, Database = $db>,
            id: &crate::domain::RequestId,
            reference: &str,
        ) -> anyhow::Result<()> {
            sqlx::query("UPDATE requests SET approval_message = $1 WHERE id = $2")
                .bind(reference)
                .bind(id.as_str())
                .execute(db)
                .await?;
            Ok(())
        }

        /// Records a delivery key; `true` the first time. Keys past their
        /// time are pruned here rather than by a timer: the table only
        /// grows when requests arrive, and each prune removes few rows
        /// through the index.
        async fn record_sighting(
            tx: &mut Tx<'_>,
            key: &str,
            now: crate::domain::Timestamp,
            keep_until: crate::domain::Timestamp,
        ) -> anyhow::Result<bool> {
            sqlx::query("DELETE FROM replays WHERE keep_until < $1")
                .bind(super::codec::ms(now))
                .execute(&mut **tx)
                .await?;
            let inserted = sqlx::query(
                "INSERT INTO replays (key, keep_until) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(super::codec::ms(keep_until))
            .execute(&mut **tx)
            .await?
            .rows_affected();
            Ok(inserted == 1)
        }

        async fn upsert_reference<'e>(
            db: impl sqlx::Executor<'e, Database = $db>,
            reference: &crate::domain::ConversationReference,
        ) -> anyhow::Result<()> {
            sqlx::query(
                "INSERT INTO conversation_references \
                   (platform, user_id, service_url, conversation_id, tenant_id, seen_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (platform, user_id) DO UPDATE SET \
                   service_url = excluded.service_url, \
                   conversation_id = COALESCE(excluded.conversation_id, conversation_references.conversation_id), \
                   tenant_id = COALESCE(excluded.tenant_id, conversation_references.tenant_id), \
                   seen_at = excluded.seen_at \
                 WHERE excluded.seen_at >= conversation_references.seen_at",
            )
            .bind(reference.user.platform().as_str())
            .bind(reference.user.as_str())
            .bind(&reference.service_url)
            .bind(&reference.conversation_id)
            .bind(&reference.tenant_id)
            .bind(super::codec::ms(reference.seen_at))
            .execute(db)
            .await?;
            Ok(())
        }

        async fn select_reference(
            pool: &sqlx::Pool<$db>,
            user: &crate::domain::ChatUserId,
        ) -> anyhow::Result<Option<crate::domain::ConversationReference>> {
            let row: Option<super::codec::ReferenceRow> = sqlx::query_as(
                "SELECT service_url, conversation_id, tenant_id, seen_at \
                 FROM conversation_references WHERE platform = $1 AND user_id = $2",
            )
            .bind(user.platform().as_str())
            .bind(user.as_str())
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|r| r.decode(user)))
        }

        /// Marks a job done, if this attempt still holds it (fenced by the
        /// attempt: a slow old attempt cannot finish a newer one).
        async fn finish_job<'e>(
            db: impl sqlx::Executor<'e, Database = $db>,
            job: &crate::engine::ports::Job,
            now: crate::domain::Timestamp,
        ) -> anyhow::Result<()> {
            sqlx::query(concat!(
                "UPDATE jobs SET done_at = $1, locked_until = NULL",
                $release,
                ", last_error = NULL WHERE id = $2 AND attempts = $3 AND done_at IS NULL"
            ))
            .bind(super::codec::ms(now))
            .bind(job.id)
            .bind(job.attempt as i64)
            .execute(db)
            .await?;
            Ok(())
        }

        /// Releases a job to run again at `due_at`, if this attempt still
        /// holds it; whether it did.
        async fn release_job<'e>(
            db: impl sqlx::Executor<'e, Database = $db>,
            job: &crate::engine::ports::Job,
            due_at: crate::domain::Timestamp,
            error: &str,
        ) -> anyhow::Result<bool> {
            let released = sqlx::query(concat!(
                "UPDATE jobs SET due_at = $1, locked_until = NULL",
                $release,
                ", last_error = $2 WHERE id = $3 AND attempts = $4 AND done_at IS NULL"
            ))
            .bind(super::codec::ms(due_at))
            .bind(error)
            .bind(job.id)
            .bind(job.attempt as i64)
            .execute(db)
            .await?;
            Ok(released.rows_affected() > 0)
        }

        /// Ends a message's attempt, if it still holds the message:
        /// `delivered` for good, or given up with `error`.
        async fn finish_message<'e>(
            db: impl sqlx::Executor<'e, Database = $db>,
            message: &crate::engine::ports::OutboxMessage,
            now: crate::domain::Timestamp,
            given_up: Option<&str>,
        ) -> anyhow::Result<()> {
            let sql = match given_up {
                None => concat!(
                    "UPDATE outbox SET delivered_at = $1, locked_until = NULL",
                    $release,
                    ", last_error = $2 WHERE id = $3 AND attempts = $4 AND delivered_at IS NULL AND failed_at IS NULL"
                ),
                Some(_) => concat!(
                    "UPDATE outbox SET failed_at = $1, locked_until = NULL",
                    $release,
                    ", last_error = $2 WHERE id = $3 AND attempts = $4 AND delivered_at IS NULL AND failed_at IS NULL"
                ),
            };
            sqlx::query(sql)
                .bind(super::codec::ms(now))
                .bind(given_up)
                .bind(message.id)
                .bind(message.attempt as i64)
                .execute(db)
                .await?;
            Ok(())
        }

        /// Releases a message to try again at `due_at`, if this attempt
        /// still holds it; whether it did.
        async fn release_message<'e>(
            db: impl sqlx::Executor<'e, Database = $db>,
            message: &crate::engine::ports::OutboxMessage,
            due_at: crate::domain::Timestamp,
            error: &str,
        ) -> anyhow::Result<bool> {
            let released = sqlx::query(concat!(
                "UPDATE outbox SET due_at = $1, locked_until = NULL",
                $release,
                ", last_error = $2 WHERE id = $3 AND attempts = $4 AND delivered_at IS NULL AND failed_at IS NULL"
            ))
            .bind(super::codec::ms(due_at))
            .bind(error)
            .bind(message.id)
            .bind(message.attempt as i64)
            .execute(db)
            .await?;
            Ok(released.rows_affected() > 0)
        }

        /// The claimed messages, in id order. A row this version cannot
        /// read (one a newer version wrote) must not block its request's
        /// later messages, or the whole queue: it is set aside, whoever
        /// holds it.
        async fn readable_messages(
            conn: &mut <$db as sqlx::Database>::Connection,
            rows: Vec<super::codec::MessageRow>,
            now: crate::domain::Timestamp,
        ) -> anyhow::Result<Vec<crate::engine::ports::OutboxMessage>> {
            let mut messages = Vec::with_capacity(rows.len());
            for row in rows {
                let id = row.id;
                match row.decode() {
                    Ok(message) => messages.push(message),
                    Err(e) => {
                        tracing::error!(message_id = id, error = %e, "unreadable outbox message set aside");
                        sqlx::query(concat!(
                            "UPDATE outbox SET failed_at = $1, locked_until = NULL",
                            $release,
                            ", last_error = $2 WHERE id = $3"
                        ))
                        .bind(super::codec::ms(now))
                        .bind(format!("unreadable: {e}"))
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                    }
                }
            }
            messages.sort_by_key(|m| m.id);
            Ok(messages)
        }

        /// The earliest time any job or message becomes due (or its lease
        /// ends). `CASE` rather than `MAX(a, b)` or `GREATEST`, which only
        /// one backend each knows.
        async fn select_next_due(
            pool: &sqlx::Pool<$db>,
        ) -> anyhow::Result<Option<crate::domain::Timestamp>> {
            let next: Option<i64> = sqlx::query_scalar(
                "SELECT MIN(t) FROM ( \
                   SELECT CASE WHEN locked_until > due_at THEN locked_until ELSE due_at END AS t \
                   FROM jobs WHERE done_at IS NULL \
                   UNION ALL \
                   SELECT CASE WHEN locked_until > due_at THEN locked_until ELSE due_at END AS t \
                   FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL) AS pending",
            )
            .fetch_one(pool)
            .await?;
            Ok(next.map(super::codec::ts))
        }

        /// The same for revocation jobs alone.
        async fn select_next_revocation_due(
            pool: &sqlx::Pool<$db>,
        ) -> anyhow::Result<Option<crate::domain::Timestamp>> {
            let next: Option<i64> = sqlx::query_scalar(
                "SELECT MIN(CASE WHEN locked_until > due_at THEN locked_until ELSE due_at END) \
                 FROM jobs WHERE done_at IS NULL AND kind = $1",
            )
            .bind(crate::engine::ports::JobKind::Revoke.name())
            .fetch_one(pool)
            .await?;
            Ok(next.map(super::codec::ts))
        }

        async fn select_audit_since(
            pool: &sqlx::Pool<$db>,
            since: Option<crate::domain::Timestamp>,
        ) -> anyhow::Result<Vec<crate::domain::AuditEntry>> {
            let rows: Vec<super::codec::AuditRow> = sqlx::query_as(
                "SELECT at, actor, action, request_id, before_state, after_state, detail \
                 FROM audit WHERE at >= $1 ORDER BY id",
            )
            .bind(since.map(super::codec::ms).unwrap_or(i64::MIN))
            .fetch_all(pool)
            .await?;
            rows.into_iter().map(super::codec::AuditRow::decode).collect()
        }

        async fn select_count_by_state(
            pool: &sqlx::Pool<$db>,
        ) -> anyhow::Result<Vec<(crate::domain::RequestState, i64)>> {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT state, COUNT(*) FROM requests GROUP BY state ORDER BY state")
                    .fetch_all(pool)
                    .await?;
            Ok(rows
                .into_iter()
                .filter_map(|(s, n)| crate::domain::RequestState::parse(&s).map(|s| (s, n)))
                .collect())
        }

        /// Unfinished jobs and messages by kind, due and scheduled at `now`,
        /// with the earliest due time: a job's due time, a message's queue
        /// time (or its retry's).
        async fn select_queue_depth(
            pool: &sqlx::Pool<$db>,
            now: crate::domain::Timestamp,
        ) -> anyhow::Result<Vec<crate::engine::ports::QueueDepth>> {
            use crate::engine::ports::{Queue, QueueDepth};
            type Row = (String, i64, i64, Option<i64>);
            let jobs: Vec<Row> = sqlx::query_as(
                "SELECT kind, COUNT(CASE WHEN due_at <= $1 THEN 1 END), \
                 COUNT(CASE WHEN due_at > $1 THEN 1 END), MIN(CASE WHEN due_at <= $1 THEN due_at END) \
                 FROM jobs WHERE done_at IS NULL GROUP BY kind",
            )
            .bind(super::codec::ms(now))
            .fetch_all(pool)
            .await?;
            // `due_at > 0`: messages that older versions queued were due
            // from 0 (the epoch) and would read as 56 years late; they
            // count once a retry gives them a time.
            let messages: Vec<Row> = sqlx::query_as(concat!(
                "SELECT ",
                $notice_kind,
                " AS kind, COUNT(CASE WHEN due_at <= $1 THEN 1 END), \
                 COUNT(CASE WHEN due_at > $1 THEN 1 END), MIN(CASE WHEN due_at <= $1 AND due_at > 0 THEN due_at END) \
                 FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL GROUP BY 1"
            ))
            .bind(super::codec::ms(now))
            .fetch_all(pool)
            .await?;
            let depth = |queue| {
                move |(kind, due, scheduled, oldest): Row| QueueDepth {
                    queue,
                    kind,
                    due,
                    scheduled,
                    oldest_due_at: oldest.map(super::codec::ts),
                }
            };
            Ok(jobs
                .into_iter()
                .map(depth(Queue::Jobs))
                .chain(messages.into_iter().map(depth(Queue::Outbox)))
                .collect())
        }
    };
}

pub(super) use shared_sql;
