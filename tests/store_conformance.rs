//! The store conformance suite: every behaviour the engine relies on from
//! its `Store` port, run once against SQLite and once against PostgreSQL
//! (a fresh database per test on the local server, so tests run in
//! parallel). A `Db` is a factory: the store under test, a second handle
//! (on PostgreSQL another replica with its own pool; on SQLite the same
//! process, since a second one is refused), and raw SQL for what the port
//! does not offer.
//!
//! The PostgreSQL server is `postgres://postgres@127.0.0.1:5432/postgres`
//! unless `TEMPADMIN_TEST_POSTGRES` names another (an administrator URL:
//! the suite creates and drops databases). `.ci/run` starts it. Without
//! one, the PostgreSQL half is skipped with one line saying so, or fails
//! under `TEMPADMIN_REQUIRE_POSTGRES=1` (see `common/postgres.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta};
use serde_json::json;
use tempadmin::domain::stage::{self, PendingApproval};
use tempadmin::domain::{
    AccessRequestRecord, Account, AuditAction, AuditEntry, ChatUserId, ConversationReference,
    Decision, Device, DirectBinding, ElevationRecord, Email, EndCause, Event, Grant, GrantDuration,
    JcUserId, Known, Notice, Platform, Policy, PriorState, Refusal, Request, RequestId,
    RequestState, Stage, SystemId, Timestamp,
};
use tempadmin::engine::ports::{
    Admission, ClaimScope, Insertion, Job, JobKind, NewJob, NewRequest, OutboxMessage, Queue,
    QueueDepth, Store, Transition,
};
use tempadmin::store::{Database, PostgresStore, SqliteStore};

#[path = "common/postgres.rs"]
mod postgres_server;

// ---------------------------------------------------------------- backends

/// One backend with a fresh, empty database.
struct Db {
    store: Arc<dyn Store>,
    database: Database,
    url: String,
    /// The PostgreSQL database to drop afterwards.
    postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let database = Database::Sqlite(SqliteStore::open(&url).await.unwrap());
        Self {
            store: database.store(),
            database,
            url,
            postgres_name: None,
            _dir: Some(dir),
        }
    }

    /// `None` when there is no PostgreSQL to test on and none is required
    /// (`postgres_server` has said so); the test then returns at once.
    async fn postgres() -> Option<Self> {
        let (url, name) = empty_postgres_database().await?;
        let database = Database::Postgres(PostgresStore::open(&url).await.unwrap());
        Some(Self {
            store: database.store(),
            database,
            url,
            postgres_name: Some(name),
            _dir: None,
        })
    }

    fn is_postgres(&self) -> bool {
        self.postgres_name.is_some()
    }

    /// Another process on the same database, where the backend allows one;
    /// on SQLite the store itself (its one process).
    async fn replica(&self) -> Arc<dyn Store> {
        if self.is_postgres() {
            Arc::new(PostgresStore::open(&self.url).await.unwrap())
        } else {
            self.store.clone()
        }
    }

    /// Runs one statement outside the store, as someone with the
    /// application's credentials and another tool would.
    async fn execute(&self, sql: &str) -> Result<u64, sqlx::Error> {
        if self.is_postgres() {
            let pool = sqlx::PgPool::connect(&self.url).await?;
            let done = sqlx::query(sql).execute(&pool).await;
            pool.close().await;
            Ok(done?.rows_affected())
        } else {
            let pool = sqlx::SqlitePool::connect(&self.url).await?;
            let done = sqlx::query(sql).execute(&pool).await;
            pool.close().await;
            Ok(done?.rows_affected())
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // A PostgreSQL `Db` exists only when the server answered.
        let Some(admin_url) = postgres_server::server() else {
            return;
        };
        // Also after a failed assertion: a thread with its own runtime,
        // since Drop cannot await. FORCE ends the store's connections.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let admin = sqlx::PgPool::connect(&admin_url).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&admin)
                    .await?;
                admin.close().await;
                Ok::<_, sqlx::Error>(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop a test database: {e}");
        }
    }
}

/// Declares each test once and runs it on both backends:
/// `sqlite::NAME` and `postgres::NAME`.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Db::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let Some(db) = super::Db::postgres().await else {
                        return;
                    };
                    super::$test(db).await
                }
            )*
        }
    };
}

on_both_backends!(
    the_queue_depth_counts_unfinished_work_by_kind_due_and_scheduled,
    a_request_reads_back_as_written,
    every_stage_reads_back_whole_and_holds_its_device,
    a_request_stays_on_its_platform_and_only_its_requester_sees_it,
    a_transition_from_a_stale_version_changes_nothing,
    of_two_concurrent_transitions_from_one_version_exactly_one_applies,
    jobs_are_claimed_when_due_one_per_request_and_fenced_by_attempt,
    revocations_can_be_claimed_ahead_of_earlier_work,
    an_expired_lease_is_taken_over_and_the_old_attempt_changes_nothing,
    reschedule_moves_a_pending_job_or_creates_it_and_cancel_drops_it,
    messages_go_one_at_a_time_per_request_in_order,
    a_message_whose_lease_was_taken_over_cannot_be_finished_by_the_old_attempt,
    concurrent_claimers_never_share_a_job_nor_run_two_jobs_of_one_request,
    concurrent_message_claimers_never_share_a_message_nor_break_the_order,
    two_open_requests_for_one_device_cannot_both_reach_approvers,
    the_audit_trail_cannot_be_changed,
    an_open_request_for_the_same_device_is_found_and_counts_by_state,
    released_leases_can_be_claimed_again_at_once,
    running_work_keeps_its_lease_by_renewing_it_until_a_newer_attempt_takes_it,
    a_key_is_first_seen_once_until_it_is_kept_no_longer,
    a_command_delivered_twice_inserts_one_request_and_no_other_row,
    open_requests_are_counted_per_person_until_they_end,
    a_burst_of_new_requests_over_two_processes_is_admitted_only_up_to_the_limits,
    requests_are_counted_per_person_from_a_time_on_whatever_became_of_them,
    a_conversation_reference_is_kept_per_person_and_the_newest_sighting_wins,
    an_access_request_record_reads_back_whole,
    migrations_are_told_current_then_pending_and_never_applied_by_asking,
    a_persons_requests_are_the_open_and_recent_ones_newest_first_and_pending_ones_are_per_platform,
);

// ---------------------------------------------------------------- helpers

/// A new, empty PostgreSQL database of this test's own (its URL and
/// name), or `None` when there is no PostgreSQL to test on.
async fn empty_postgres_database() -> Option<(String, String)> {
    let admin_url = postgres_server::server()?;
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "tempadmin_test_{}_{}_{:08x}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&name);
    Some((url.to_string(), name))
}

fn t0() -> Timestamp {
    DateTime::from_timestamp_millis(1_800_000_000_000).unwrap()
}

fn audit(r: &Request, action: AuditAction) -> AuditEntry {
    AuditEntry {
        at: t0(),
        actor: "U1".into(),
        action,
        request_id: r.id.clone(),
        before: None,
        after: Some(r.state()),
        detail: json!({}),
    }
}

async fn insert(store: &dyn Store, jobs: &[NewJob], notices: &[Notice]) -> Request {
    let r = Request::new(
        ChatUserId::slack("U1"),
        Some("https://r".into()),
        GrantDuration::from_secs(600),
        vec!["why".into()],
        t0(),
    );
    assert_eq!(
        insert_new(store, &r, jobs, t0(), admit_all()).await,
        Insertion::Inserted
    );
    if !notices.is_empty() {
        store.enqueue(&r.id, notices, t0()).await.unwrap();
    }
    r
}

fn admit_all() -> Admission {
    Arc::new(|_open, _recent| Ok(()))
}

/// Inserts `r` as a new request with its first audit line and `jobs`.
async fn insert_new(
    store: &dyn Store,
    r: &Request,
    jobs: &[NewJob],
    since: Timestamp,
    admit: Admission,
) -> Insertion {
    let new = NewRequest {
        request: r.clone(),
        delivery: None,
        audit: audit(r, AuditAction::Requested),
        jobs: jobs.to_vec(),
    };
    store.insert_request(new, since, admit).await.unwrap()
}

/// `user`'s open requests and those made at or after `since`, as the store
/// counts them for its admission (a refused insert writes nothing).
async fn counts(store: &dyn Store, user: &ChatUserId, since: Timestamp) -> (usize, usize) {
    let probe = Request::new(
        user.clone(),
        None,
        GrantDuration::from_secs(600),
        vec![],
        t0(),
    );
    let seen = Arc::new(std::sync::Mutex::new(None));
    let asked = seen.clone();
    let admit: Admission = Arc::new(move |open, recent| {
        *asked.lock().unwrap() = Some((open, recent));
        Err(Refusal::TooManyRequestsPerHour { max: 0 })
    });
    let refused = insert_new(store, &probe, &[], since, admit).await;
    assert!(matches!(refused, Insertion::Refused(_)));
    let counted = *seen.lock().unwrap();
    counted.expect("the store asked")
}

/// [`counts`]' open requests.
async fn open_of(store: &dyn Store, user: &ChatUserId) -> usize {
    counts(store, user, t0()).await.0
}

fn job(kind: JobKind, after_secs: i64) -> NewJob {
    NewJob {
        kind,
        due_at: t0() + TimeDelta::seconds(after_secs),
    }
}

/// The audit action of the engine's move into `state` (one of them).
fn entered_by(state: RequestState) -> AuditAction {
    match state {
        RequestState::Resolving => AuditAction::DevicePicked,
        RequestState::AwaitingDevice => AuditAction::DeviceChoiceAsked,
        RequestState::PendingApproval => AuditAction::SentToApprovers,
        RequestState::Approved => AuditAction::Approved,
        RequestState::Active => AuditAction::Elevated,
        RequestState::Revoking => AuditAction::EndRequested,
        RequestState::Ended => AuditAction::Restored,
        RequestState::Refused => AuditAction::Refused,
        RequestState::Denied => AuditAction::Denied,
        RequestState::TimedOut => AuditAction::TimedOut,
        RequestState::Cancelled => AuditAction::Withdrawn,
    }
}

/// Every fact a stage of `r` can hold: its own account and device (so
/// that no two requests hold one device), a decision, a recorded prior
/// state, an end.
fn known(r: &Request) -> Known {
    Known {
        account: account(&format!("jc-{}", r.id)),
        device: device(&format!("sys-{}", r.id)),
        candidates: vec![device("cand-1"), device("cand-2")],
        decision: Decision {
            by: ChatUserId::new(r.platform(), "approver"),
            at: t0() + TimeDelta::seconds(1),
        },
        grant: Grant {
            record: PriorState {
                global_sudo: false,
                direct: Some(DirectBinding {
                    sudo: false,
                    without_password: false,
                }),
                compiled_sudo: true,
            }
            .into(),
            expires_at: t0() + TimeDelta::minutes(20),
        },
        elevated_at: t0() + TimeDelta::seconds(2),
        end_cause: EndCause::EndedEarly,
        ended_by: Some(r.requester.clone()),
        ended_at: t0() + TimeDelta::seconds(3),
        left_alone: true,
    }
}

fn account(jc_user: &str) -> Account {
    Account {
        email: Email::parse("ada@example.com").unwrap(),
        jc_user: JcUserId::new(jc_user),
    }
}

/// The elevator's record is the store's to keep, whatever the grant mode.
/// `tempadmin check`'s question: read-only, it tells a database this build
/// migrated from one an older build left behind, and asking twice finds
/// the same (nothing was applied in between).
async fn migrations_are_told_current_then_pending_and_never_applied_by_asking(db: Db) {
    use tempadmin::store::migrations::{readiness, Readiness};
    let Readiness::Current { applied } = readiness(&db.url).await.unwrap() else {
        panic!("a database the store opened is current")
    };
    assert!(applied > 0);
    db.execute(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .await
    .unwrap();
    for _ in 0..2 {
        let Readiness::Pending(pending) = readiness(&db.url).await.unwrap() else {
            panic!("one migration is pending")
        };
        assert_eq!(pending.len(), 1);
    }
}

async fn an_access_request_record_reads_back_whole(db: Db) {
    let s = &*db.store;
    let r = insert(s, &[], &[]).await;
    let mut t = step(&r, RequestState::Active);
    let mut k = known(&r);
    k.grant.record = ElevationRecord::AccessRequest {
        access_request: AccessRequestRecord {
            prior: k.grant.record.prior().clone(),
            id: Some("0123456789abcdef01234567".into()),
            expiry: k.grant.expires_at,
        },
    };
    t.to.stage = Stage::from_known(RequestState::Active, &k);
    assert!(s.transition(&t).await.unwrap());
    let back = s.request(&r.id).await.unwrap().unwrap();
    assert_eq!(back, t.to);
    assert_eq!(back.stage.grant().unwrap().record, k.grant.record);
}

fn step(r: &Request, state: RequestState) -> Transition {
    let mut to = r.clone();
    to.stage = Stage::from_known(state, &known(r));
    to.version = r.version + 1;
    Transition {
        request_id: r.id.clone(),
        expected_version: r.version,
        audit: audit(&to, entered_by(state)),
        to,
        notices: vec![],
        jobs: vec![],
        reschedule: vec![],
        cancel: vec![],
    }
}

fn device(id: &str) -> Device {
    Device {
        id: SystemId::new(id),
        hostname: "h".into(),
        display_name: "h".into(),
        os_family: "linux".into(),
        online: true,
        compiled_sudo: false,
    }
}

fn thread(n: u64) -> Notice {
    Notice::Thread {
        event: Event::Reminder {
            left: GrantDuration::from_secs(n),
        },
    }
}

// ---------------------------------------------------------------- requests

async fn a_request_reads_back_as_written(db: Db) {
    let s = &*db.store;
    let r = insert(s, &[], &[]).await;
    assert_eq!(s.request(&r.id).await.unwrap(), Some(r.clone()));
    assert_eq!(s.open_requests_of(&r.requester).await.unwrap(), vec![r]);
}

async fn every_stage_reads_back_whole_and_holds_its_device(db: Db) {
    let s = &*db.store;
    for state in RequestState::ALL {
        let r = insert(s, &[], &[]).await;
        let t = step(&r, state);
        assert!(s.transition(&t).await.unwrap(), "{state:?}");
        let back = s.request(&r.id).await.unwrap().unwrap();
        assert_eq!(back, t.to, "{state:?} reads back whole");
        let (user, system) = t.to.stage.holds();
        let holds = match (user, system) {
            (Some(user), Some(system)) => s
                .open_request_for_device(user, system, &RequestId::generate())
                .await
                .unwrap()
                .map(|o| o.id),
            _ => None,
        };
        let open_on_device = matches!(
            state,
            RequestState::PendingApproval
                | RequestState::Approved
                | RequestState::Active
                | RequestState::Revoking
        );
        assert_eq!(holds.is_some(), open_on_device, "{state:?}");
    }
}

async fn a_request_stays_on_its_platform_and_only_its_requester_sees_it(db: Db) {
    let s = &*db.store;
    let mut r = Request::new(
        ChatUserId::teams("29:1ada"),
        None,
        tempadmin::domain::GrantDuration::from_secs(600),
        vec![],
        t0(),
    );
    r.reason = "teams".into();
    assert_eq!(
        insert_new(s, &r, &[], t0(), admit_all()).await,
        Insertion::Inserted
    );
    let back = s.request(&r.id).await.unwrap().unwrap();
    assert_eq!(back.platform(), tempadmin::domain::Platform::Teams);
    assert_eq!(back, r);
    let same_id_on_slack = ChatUserId::slack("29:1ada");
    assert!(s
        .open_requests_of(&same_id_on_slack)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.open_requests_of(&r.requester).await.unwrap().len(), 1);
}

async fn a_transition_from_a_stale_version_changes_nothing(db: Db) {
    let s = &*db.store;
    let r = insert(s, &[], &[]).await;
    let mut first = step(&r, RequestState::PendingApproval);
    first.notices = vec![Notice::ApprovalCard];
    let second = step(&r, RequestState::Refused);
    assert!(s.transition(&first).await.unwrap());
    assert!(!s.transition(&second).await.unwrap());
    let stored = s.request(&r.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.state(), stored.version),
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
        ["requested", "sent_to_approvers"],
        "the loser wrote no audit line"
    );
    let queued = s.claim_messages(t0(), t0(), 10).await.unwrap();
    assert_eq!(queued.len(), 1, "nor any message");
}

async fn of_two_concurrent_transitions_from_one_version_exactly_one_applies(db: Db) {
    let replica = db.replica().await;
    let r = insert(&*db.store, &[], &[]).await;
    for round in 0..10 {
        let current = db.store.request(&r.id).await.unwrap().unwrap();
        let mut approve = step(&current, RequestState::PendingApproval);
        approve.jobs = vec![job(JobKind::ApprovalTimeout, round)];
        let mut deny = step(&current, RequestState::AwaitingDevice);
        deny.jobs = vec![job(JobKind::Resolve, round)];
        let (a, b) = tokio::join!(db.store.transition(&approve), replica.transition(&deny));
        assert!(
            a.unwrap() ^ b.unwrap(),
            "round {round}: exactly one writer wins"
        );
    }
    let stored = db.store.request(&r.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 10);
    assert_eq!(
        db.store.audit_since(None).await.unwrap().len(),
        11,
        "one audit line per applied transition"
    );
    let far = t0() + TimeDelta::hours(1);
    let mut jobs = 0;
    while let Some(j) = db.store.claim_job(far, far, ClaimScope::Any).await.unwrap() {
        db.store.complete_job(&j, far).await.unwrap();
        jobs += 1;
    }
    assert_eq!(jobs, 10, "and the losers' jobs were never written");
}

async fn two_open_requests_for_one_device_cannot_both_reach_approvers(db: Db) {
    let s = &*db.store;
    let pending = |r: &Request| {
        let mut t = step(r, RequestState::PendingApproval);
        t.to.stage = Stage::PendingApproval(PendingApproval {
            account: account("jc1"),
            device: device("sys1"),
            reminded_at: None,
        });
        t
    };
    let a = insert(s, &[], &[]).await;
    let b = insert(s, &[], &[]).await;
    assert!(s.transition(&pending(&a)).await.unwrap());
    assert!(s.transition(&pending(&b)).await.is_err());
    assert_eq!(
        s.request(&b.id).await.unwrap().unwrap().state(),
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

async fn an_open_request_for_the_same_device_is_found_and_counts_by_state(db: Db) {
    let s = &*db.store;
    let r = insert(s, &[], &[]).await;
    let mut t = step(&r, RequestState::PendingApproval);
    t.to.stage = Stage::PendingApproval(PendingApproval {
        account: account("jc1"),
        device: Device {
            online: false,
            ..device("sys1")
        },
        reminded_at: None,
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

async fn the_audit_trail_cannot_be_changed(db: Db) {
    let s = &*db.store;
    insert(s, &[], &[]).await;
    assert!(db
        .execute("UPDATE audit SET actor = 'someone else'")
        .await
        .is_err());
    assert!(db.execute("DELETE FROM audit").await.is_err());
    assert_eq!(s.audit_since(None).await.unwrap().len(), 1);
    assert_eq!(s.audit_since(None).await.unwrap()[0].actor, "U1");
    assert!(s
        .audit_since(Some(t0() + TimeDelta::seconds(1)))
        .await
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------- jobs

async fn jobs_are_claimed_when_due_one_per_request_and_fenced_by_attempt(db: Db) {
    let s = &*db.store;
    insert(
        s,
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
}

async fn revocations_can_be_claimed_ahead_of_earlier_work(db: Db) {
    let s = &*db.store;
    insert(s, &[job(JobKind::Resolve, 0)], &[]).await;
    insert(s, &[job(JobKind::Revoke, 5)], &[]).await;
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

async fn an_expired_lease_is_taken_over_and_the_old_attempt_changes_nothing(db: Db) {
    let (a, b) = (db.store.clone(), db.replica().await);
    insert(&*a, &[job(JobKind::Revoke, 0), job(JobKind::Grant, 0)], &[]).await;
    let lease = t0() + TimeDelta::minutes(5);
    let stalled = a
        .claim_job(t0(), lease, ClaimScope::Revocations)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        b.claim_job(lease - TimeDelta::milliseconds(1), lease, ClaimScope::Any)
            .await
            .unwrap(),
        None,
        "nothing of the request is claimable while the lease runs"
    );
    assert_eq!(a.next_due().await.unwrap(), Some(t0()), "the grant is due");
    let taken = b
        .claim_job(
            lease,
            lease + TimeDelta::minutes(5),
            ClaimScope::Revocations,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((taken.id, taken.attempt), (stalled.id, 2));
    // The stalled attempt wakes up: it can neither release nor finish the
    // job that now belongs to attempt 2.
    a.retry_job(&stalled, t0(), "late").await.unwrap();
    a.complete_job(&stalled, lease).await.unwrap();
    assert_eq!(
        b.claim_job(lease, lease, ClaimScope::Any).await.unwrap(),
        None,
        "attempt 2 still holds the request"
    );
    b.complete_job(&taken, lease).await.unwrap();
    let grant = b
        .claim_job(lease, lease, ClaimScope::Any)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.kind, JobKind::Grant);
    b.complete_job(&grant, lease).await.unwrap();
    assert_eq!(a.next_due().await.unwrap(), None, "both done, once");
}

async fn reschedule_moves_a_pending_job_or_creates_it_and_cancel_drops_it(db: Db) {
    let s = &*db.store;
    let r = insert(
        s,
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

/// Claims jobs until none is left, as a scheduler would (revocations
/// first), without finishing any.
async fn claim_all(store: Arc<dyn Store>, at: Timestamp) -> Vec<Job> {
    let lease = at + TimeDelta::minutes(5);
    let mut claimed = Vec::new();
    loop {
        let job = match store
            .claim_job(at, lease, ClaimScope::Revocations)
            .await
            .unwrap()
        {
            Some(job) => Some(job),
            None => store.claim_job(at, lease, ClaimScope::Any).await.unwrap(),
        };
        match job {
            Some(job) => claimed.push(job),
            None => return claimed,
        }
    }
}

async fn concurrent_claimers_never_share_a_job_nor_run_two_jobs_of_one_request(db: Db) {
    const REQUESTS: usize = 40;
    let replica = db.replica().await;
    // Rounds of fresh requests; what earlier rounds claimed stays leased.
    for round in 0..3 {
        for _ in 0..REQUESTS {
            insert(
                &*db.store,
                &[
                    job(JobKind::Grant, 0),
                    job(JobKind::Revoke, 0),
                    job(JobKind::Remind(60), 0),
                ],
                &[],
            )
            .await;
        }
        // Eight claimers, half on each process, all at once.
        let start = Arc::new(tokio::sync::Barrier::new(8));
        let mut claimers = tokio::task::JoinSet::new();
        for n in 0..8 {
            let store = if n % 2 == 0 {
                db.store.clone()
            } else {
                replica.clone()
            };
            let start = start.clone();
            claimers.spawn(async move {
                start.wait().await;
                claim_all(store, t0()).await
            });
        }
        let mut claimed: Vec<Job> = claimers.join_all().await.into_iter().flatten().collect();
        // A claimer may stop early when the rest were being claimed by the
        // others; one more pass afterwards takes whatever they left.
        claimed.extend(claim_all(db.store.clone(), t0()).await);
        let ids: HashSet<i64> = claimed.iter().map(|j| j.id).collect();
        assert_eq!(
            ids.len(),
            claimed.len(),
            "round {round}: no job was claimed twice"
        );
        let mut per_request: HashMap<&RequestId, usize> = HashMap::new();
        for job in &claimed {
            *per_request.entry(&job.request_id).or_default() += 1;
        }
        assert_eq!(
            per_request.values().filter(|n| **n > 1).count(),
            0,
            "round {round}: requests with two jobs in flight"
        );
        assert_eq!(
            per_request.len(),
            REQUESTS,
            "round {round}: every new request has one job running"
        );
    }
}

// ---------------------------------------------------------------- outbox

async fn messages_go_one_at_a_time_per_request_in_order(db: Db) {
    let s = &*db.store;
    let a = insert(s, &[], &[thread(1), thread(2)]).await;
    let b = insert(s, &[], &[thread(3)]).await;
    let lease = t0() + TimeDelta::minutes(2);
    let batch = s.claim_messages(t0(), lease, 10).await.unwrap();
    assert_eq!(
        batch
            .iter()
            .map(|m| (&m.request_id, &m.notice))
            .collect::<Vec<_>>(),
        [(&a.id, &thread(1)), (&b.id, &thread(3))]
    );
    s.retry_message(&batch[0], t0() + TimeDelta::seconds(9), "429")
        .await
        .unwrap();
    s.message_delivered(&batch[1], t0()).await.unwrap();
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
    s.message_failed(&retried[0], later, "channel_not_found")
        .await
        .unwrap();
    let next = s.claim_messages(later, later, 10).await.unwrap();
    assert_eq!(
        next[0].notice,
        thread(2),
        "a message given up on does not block the rest"
    );
}

async fn a_message_whose_lease_was_taken_over_cannot_be_finished_by_the_old_attempt(db: Db) {
    let (a, b) = (db.store.clone(), db.replica().await);
    insert(&*a, &[], &[thread(1), thread(2)]).await;
    let lease = t0() + TimeDelta::minutes(2);
    let stalled = a.claim_messages(t0(), lease, 10).await.unwrap();
    assert_eq!(stalled.len(), 1);
    assert!(b
        .claim_messages(lease - TimeDelta::milliseconds(1), lease, 10)
        .await
        .unwrap()
        .is_empty());
    let taken = b
        .claim_messages(lease, lease + TimeDelta::minutes(2), 10)
        .await
        .unwrap();
    assert_eq!((taken[0].id, taken[0].attempt), (stalled[0].id, 2));
    let old: &OutboxMessage = &stalled[0];
    a.message_delivered(old, lease).await.unwrap();
    a.message_failed(old, lease, "late").await.unwrap();
    a.retry_message(old, lease, "late").await.unwrap();
    assert!(
        b.claim_messages(lease, lease, 10).await.unwrap().is_empty(),
        "the second message still waits for the attempt that holds the first"
    );
    b.message_delivered(&taken[0], lease).await.unwrap();
    let next = b.claim_messages(lease, lease, 10).await.unwrap();
    assert_eq!(next[0].notice, thread(2));
}

async fn concurrent_message_claimers_never_share_a_message_nor_break_the_order(db: Db) {
    const REQUESTS: usize = 30;
    let replica = db.replica().await;
    for _ in 0..REQUESTS {
        insert(&*db.store, &[], &[thread(1), thread(2), thread(3)]).await;
    }
    // Rounds: claim concurrently from both processes, check, deliver all.
    let mut delivered: HashMap<RequestId, Vec<Notice>> = HashMap::new();
    for round in 0..3 {
        let lease = t0() + TimeDelta::minutes(2);
        let mut claimers = tokio::task::JoinSet::new();
        for n in 0..6 {
            let store = if n % 2 == 0 {
                db.store.clone()
            } else {
                replica.clone()
            };
            claimers.spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = store.claim_messages(t0(), lease, 4).await.unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch);
                }
            });
        }
        let claimed: Vec<OutboxMessage> = claimers.join_all().await.into_iter().flatten().collect();
        let mut per_request = HashSet::new();
        for m in &claimed {
            assert!(
                per_request.insert(m.request_id.clone()),
                "round {round}: two messages of one request in flight"
            );
        }
        assert_eq!(claimed.len(), REQUESTS, "round {round}: one per request");
        for m in &claimed {
            db.store.message_delivered(m, t0()).await.unwrap();
            delivered
                .entry(m.request_id.clone())
                .or_default()
                .push(m.notice.clone());
        }
    }
    assert!(delivered
        .values()
        .all(|notices| notices == &[thread(1), thread(2), thread(3)]));
}

async fn released_leases_can_be_claimed_again_at_once(db: Db) {
    let s = &*db.store;
    insert(s, &[job(JobKind::Revoke, 0)], &[thread(1)]).await;
    let lease = t0() + TimeDelta::minutes(5);
    let job = s
        .claim_job(t0(), lease, ClaimScope::Any)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.claim_messages(t0(), lease, 10).await.unwrap().len(), 1);
    s.release_leases().await.unwrap();
    let again = s
        .claim_job(t0(), lease, ClaimScope::Any)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id, again.attempt), (job.id, 2));
    assert_eq!(
        s.claim_messages(t0(), lease, 10).await.unwrap()[0].attempt,
        2
    );
}

async fn running_work_keeps_its_lease_by_renewing_it_until_a_newer_attempt_takes_it(db: Db) {
    let (a, b) = (db.store.clone(), db.replica().await);
    insert(&*a, &[job(JobKind::Revoke, 0)], &[thread(1)]).await;
    let lease = TimeDelta::seconds(15);
    let first_end = t0() + lease;
    let job = a
        .claim_job(t0(), first_end, ClaimScope::Revocations)
        .await
        .unwrap()
        .unwrap();
    let message = a.claim_messages(t0(), first_end, 10).await.unwrap()[0].clone();
    let held = [job.lease(), message.lease()];
    let renewed_end = first_end + lease;
    assert_eq!(
        a.renew_leases(&held, renewed_end).await.unwrap(),
        [],
        "both still held"
    );
    assert_eq!(a.next_due().await.unwrap(), Some(renewed_end));
    assert_eq!(
        b.claim_job(first_end, first_end + lease, ClaimScope::Any)
            .await
            .unwrap(),
        None,
        "the renewed lease still runs at the first one's end"
    );
    assert!(b
        .claim_messages(first_end, first_end + lease, 10)
        .await
        .unwrap()
        .is_empty());

    // The holder stalls past its renewed lease: the other claimer takes both.
    let later_end = renewed_end + lease;
    let job_2 = b
        .claim_job(renewed_end, later_end, ClaimScope::Revocations)
        .await
        .unwrap()
        .unwrap();
    let message_2 = b.claim_messages(renewed_end, later_end, 10).await.unwrap()[0].clone();
    assert_eq!((job_2.attempt, message_2.attempt), (2, 2));
    let lost: HashSet<_> = a
        .renew_leases(&held, later_end + lease)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        lost,
        HashSet::from(held),
        "the stalled attempt holds nothing"
    );
    assert_eq!(
        a.next_due().await.unwrap(),
        Some(later_end),
        "its renewal did not move the newer leases"
    );

    // Work released meanwhile is not held again by a late renewal.
    b.retry_job(&job_2, later_end, "retry").await.unwrap();
    assert_eq!(
        b.renew_leases(&[job_2.lease()], later_end + lease)
            .await
            .unwrap(),
        [job_2.lease()]
    );
    let job_3 = b
        .claim_job(later_end, later_end + lease, ClaimScope::Any)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job_3.attempt, 3);
}

// ---------------------------------------------------------------- per-person counts

async fn insert_for(store: &dyn Store, user: &ChatUserId, at: Timestamp) -> Request {
    let r = Request::new(
        user.clone(),
        None,
        GrantDuration::from_secs(600),
        vec![],
        at,
    );
    assert_eq!(
        insert_new(store, &r, &[], t0(), admit_all()).await,
        Insertion::Inserted
    );
    r
}

async fn a_persons_requests_are_the_open_and_recent_ones_newest_first_and_pending_ones_are_per_platform(
    db: Db,
) {
    let s = &*db.store;
    let ada = ChatUserId::slack("U1ADA");
    let at = |secs: i64| t0() + TimeDelta::seconds(secs);
    let old_done = insert_for(s, &ada, at(0)).await;
    assert!(s
        .transition(&step(&old_done, RequestState::Denied))
        .await
        .unwrap());
    let old_open = insert_for(s, &ada, at(1)).await;
    let recent_done = insert_for(s, &ada, at(86_400 * 2)).await;
    assert!(s
        .transition(&step(&recent_done, RequestState::TimedOut))
        .await
        .unwrap());
    let pending = insert_for(s, &ada, at(86_400 * 2 + 1)).await;
    assert!(s
        .transition(&step(&pending, RequestState::PendingApproval))
        .await
        .unwrap());
    let grace = insert_for(s, &ChatUserId::slack("U1GRACE"), at(5)).await;
    assert!(s
        .transition(&step(&grace, RequestState::PendingApproval))
        .await
        .unwrap());
    let lin = insert_for(s, &ChatUserId::teams("29:lin"), at(6)).await;
    assert!(s
        .transition(&step(&lin, RequestState::PendingApproval))
        .await
        .unwrap());

    let ids = |rs: Vec<Request>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let since = at(86_400);
    assert_eq!(
        ids(s.requests_of(&ada, since, 10).await.unwrap()),
        [
            pending.id.clone(),
            old_open.id.clone(),
            recent_done.id.clone()
        ],
        "open whenever made and first, finished only since `since`, each newest first"
    );
    assert_eq!(
        ids(s.requests_of(&ada, since, 2).await.unwrap()),
        [pending.id.clone(), old_open.id.clone()],
        "a limit cuts finished requests before an open one"
    );
    assert!(s
        .requests_of(&ChatUserId::teams("U1ADA"), t0(), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        ids(s.pending_approval(Platform::Slack, 10).await.unwrap()),
        [grace.id.clone(), pending.id.clone()],
        "oldest first, this platform's only"
    );
    assert_eq!(
        ids(s.pending_approval(Platform::Slack, 1).await.unwrap()),
        [grace.id]
    );
    assert_eq!(
        ids(s.pending_approval(Platform::Teams, 10).await.unwrap()),
        [lin.id]
    );
}

async fn open_requests_are_counted_per_person_until_they_end(db: Db) {
    let s = &*db.store;
    let ada = ChatUserId::slack("U1");
    let first = insert_for(s, &ada, t0()).await;
    let second = insert_for(s, &ada, t0()).await;
    insert_for(s, &ChatUserId::slack("U2"), t0()).await;
    insert_for(s, &ChatUserId::teams("U1"), t0()).await;
    assert_eq!(open_of(s, &ada).await, 2);
    assert!(s
        .transition(&step(&first, RequestState::Active))
        .await
        .unwrap());
    assert_eq!(open_of(s, &ada).await, 2, "an active grant is open");
    assert!(s
        .transition(&step(&second, RequestState::Refused))
        .await
        .unwrap());
    assert_eq!(open_of(s, &ada).await, 1);
    assert_eq!(open_of(s, &ChatUserId::slack("U3")).await, 0);
}

async fn a_burst_of_new_requests_over_two_processes_is_admitted_only_up_to_the_limits(db: Db) {
    let (a, b) = (db.store.clone(), db.replica().await);
    let policy = Policy {
        max_open_requests: 3,
        max_requests_per_hour: 5,
        ..Policy::default()
    };
    let ada = ChatUserId::slack("U1");
    let burst = |store: Arc<dyn Store>, user: ChatUserId, n: usize| {
        let policy = policy.clone();
        tokio::spawn(async move {
            let r = Request::new(user, None, GrantDuration::from_secs(600), vec![], t0());
            let admit: Admission = Arc::new(move |open, recent| policy.check_volume(open, recent));
            let jobs = [job(JobKind::Resolve, 0)];
            let since = t0() - TimeDelta::hours(1);
            let admitted = insert_new(&*store, &r, &jobs, since, admit).await;
            (n, admitted)
        })
    };
    let mut tasks = Vec::new();
    for n in 0..12 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(burst(store, ada.clone(), n));
    }
    tasks.push(burst(a.clone(), ChatUserId::slack("U2"), 99));
    let mut admitted = 0;
    for task in tasks {
        let (n, outcome) = task.await.unwrap();
        match outcome {
            Insertion::Inserted if n < 99 => admitted += 1,
            Insertion::Inserted => {}
            Insertion::Refused(refusal) => assert!(
                matches!(refusal, Refusal::TooManyOpenRequests { open: 3, max: 3 }),
                "{refusal:?}"
            ),
            Insertion::Replayed => panic!("no delivery key was given"),
        }
    }
    assert_eq!(admitted, 3, "exactly max_open_requests got in");
    assert_eq!(open_of(&*a, &ada).await, 3);
    assert_eq!(
        open_of(&*a, &ChatUserId::slack("U2")).await,
        1,
        "another person is not held up"
    );
    // A refused one wrote nothing: its job and audit line are not there.
    assert_eq!(a.audit_since(None).await.unwrap().len(), 4);

    // Once they end, the hourly limit counts them still.
    for r in a.open_requests_of(&ada).await.unwrap() {
        assert!(a
            .transition(&step(&r, RequestState::Refused))
            .await
            .unwrap());
    }
    let (_, fourth) = burst(b.clone(), ada.clone(), 0).await.unwrap();
    let (_, fifth) = burst(a.clone(), ada.clone(), 0).await.unwrap();
    let (_, sixth) = burst(b.clone(), ada.clone(), 0).await.unwrap();
    assert_eq!((fourth, fifth), (Insertion::Inserted, Insertion::Inserted));
    assert!(
        matches!(
            sixth,
            Insertion::Refused(Refusal::TooManyRequestsPerHour { max: 5 })
        ),
        "{sixth:?}"
    );
}

async fn requests_are_counted_per_person_from_a_time_on_whatever_became_of_them(db: Db) {
    let s = &*db.store;
    let ada = ChatUserId::slack("U1");
    let old = insert_for(s, &ada, t0()).await;
    insert_for(s, &ada, t0() + TimeDelta::minutes(30)).await;
    insert_for(s, &ada, t0() + TimeDelta::minutes(59)).await;
    insert_for(s, &ChatUserId::slack("U2"), t0() + TimeDelta::minutes(59)).await;
    insert_for(s, &ChatUserId::teams("U1"), t0() + TimeDelta::minutes(59)).await;
    assert!(s
        .transition(&step(&old, RequestState::Refused))
        .await
        .unwrap());
    assert_eq!(counts(s, &ada, t0()).await.1, 3);
    let since = t0() + TimeDelta::minutes(30);
    assert_eq!(
        counts(s, &ada, since).await.1,
        2,
        "from `since` on, inclusive"
    );
    let later = t0() + TimeDelta::minutes(60);
    assert_eq!(counts(s, &ada, later).await.1, 0);
}

// ---------------------------------------------------------------- SQLite only

#[tokio::test]
async fn a_lease_left_by_a_dead_process_is_released_when_sqlite_opens() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let s = SqliteStore::open(&url).await.unwrap();
    insert(&s, &[job(JobKind::Revoke, 0)], &[]).await;
    assert!(s
        .claim_job(t0(), t0() + TimeDelta::hours(1), ClaimScope::Any)
        .await
        .unwrap()
        .is_some());
    // Closed without releasing, as a killed process leaves it.
    s.close().await;
    let reopened = SqliteStore::open(&url).await.unwrap();
    let job = reopened
        .claim_job(t0(), t0() + TimeDelta::hours(1), ClaimScope::Any)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.kind, job.attempt), (JobKind::Revoke, 2));
    reopened.close().await;
}

#[tokio::test]
async fn a_second_process_on_the_same_sqlite_file_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let url = format!("sqlite://{}", path.display());
    let first = SqliteStore::open(&url).await.unwrap();
    insert(&first, &[job(JobKind::Revoke, 0)], &[]).await;
    let held = first
        .claim_job(t0(), t0() + TimeDelta::hours(1), ClaimScope::Any)
        .await
        .unwrap()
        .unwrap();

    let refused = SqliteStore::open(&url).await.unwrap_err();
    let message = format!("{refused:#}");
    assert!(
        message.contains("another tempadmin process") && message.contains("t.db.lock"),
        "{message}"
    );
    assert_eq!(
        first
            .claim_job(t0(), t0() + TimeDelta::hours(1), ClaimScope::Any)
            .await
            .unwrap(),
        None,
        "the first process's lease was not released by the second"
    );
    first.complete_job(&held, t0()).await.unwrap();
    first.close().await;
    let after = SqliteStore::open(&url).await.unwrap();
    after.close().await;
}

#[tokio::test]
async fn the_audit_export_reads_an_sqlite_file_that_a_server_holds() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let server = SqliteStore::open(&url).await.unwrap();
    insert(&server, &[job(JobKind::Revoke, 0)], &[]).await;
    assert!(server
        .claim_job(t0(), t0() + TimeDelta::hours(1), ClaimScope::Any)
        .await
        .unwrap()
        .is_some());
    let reader = Database::open_reader(&url).await.unwrap();
    assert_eq!(reader.store().audit_since(None).await.unwrap().len(), 1);
    reader.close().await;
    assert_eq!(
        server
            .claim_job(t0(), t0() + TimeDelta::hours(1), ClaimScope::Any)
            .await
            .unwrap(),
        None,
        "reading released no lease"
    );
    server.close().await;
}

#[tokio::test]
async fn the_sqlite_write_ahead_log_is_cut_back_to_its_limit_after_a_checkpoint() {
    use tempadmin::store::WAL_SIZE_LIMIT;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let url = format!("sqlite://{}", path.display());
    let s = SqliteStore::open(&url).await.unwrap();
    let wal = || {
        std::fs::metadata(dir.path().join("wal.db-wal"))
            .unwrap()
            .len()
    };
    let r = insert(&s, &[], &[]).await;
    // A reader that started before the burst keeps every checkpoint (the
    // store's own in the background too) from completing until it ends.
    let mut reader = {
        use sqlx::Connection;
        sqlx::SqliteConnection::connect(&url).await.unwrap()
    };
    sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
    sqlx::query("SELECT COUNT(*) FROM audit")
        .execute(&mut reader)
        .await
        .unwrap();
    let mut entry = audit(&r, AuditAction::ClickRefused);
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
    s.append_audit(&audit(&r, AuditAction::ClickRefused))
        .await
        .unwrap();
    assert!(wal() <= WAL_SIZE_LIMIT, "cut back: {}", wal());
    s.close().await;
}

// ---------------------------------------------------------------- PostgreSQL only

#[tokio::test]
async fn a_replica_shutting_down_releases_its_own_leases_and_nobody_elses() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    let other = db.replica().await;
    insert(&*db.store, &[job(JobKind::Revoke, 0)], &[]).await;
    insert(&*db.store, &[job(JobKind::Revoke, 0)], &[]).await;
    let lease = t0() + TimeDelta::minutes(5);
    let mine = db
        .store
        .claim_job(t0(), lease, ClaimScope::Any)
        .await
        .unwrap()
        .unwrap();
    let theirs = other
        .claim_job(t0(), lease, ClaimScope::Any)
        .await
        .unwrap()
        .unwrap();
    db.database.shut_down().await;
    let again = other
        .claim_job(t0(), lease, ClaimScope::Any)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id, again.attempt), (mine.id, 2));
    assert_eq!(
        other.claim_job(t0(), lease, ClaimScope::Any).await.unwrap(),
        None,
        "the other replica's job {} is still held",
        theirs.id
    );
}

#[tokio::test]
async fn a_replica_hears_when_another_adds_work() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    let other = db.replica().await;
    insert(&*db.store, &[job(JobKind::Revoke, 600)], &[]).await;
    // An upper bound on a wake-up that should take milliseconds: without the
    // notification this waits forever.
    let heard = tokio::time::timeout(Duration::from_secs(30), other.work_added()).await;
    assert!(heard.is_ok(), "the other replica was never woken");
}

/// SQLite has one process, so its scheduler finds work by due time alone.
/// A `work_added` that resolved while nothing was added, at once or on a
/// timer, would turn the scheduler's `select!` into a busy loop: an hour of
/// paused time must pass without it resolving.
#[tokio::test]
async fn an_idle_sqlite_store_never_wakes_the_scheduler() {
    let db = Db::sqlite().await;
    // Paused only now: opening the store waits on SQLite's own thread,
    // which paused time would not wait for.
    tokio::time::pause();
    let woken = tokio::time::timeout(Duration::from_secs(3600), db.store.work_added()).await;
    assert!(
        woken.is_err(),
        "an idle SQLite store woke the scheduler: it would spin"
    );
}

#[tokio::test]
async fn the_postgres_audit_trail_cannot_be_emptied() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    insert(&*db.store, &[], &[]).await;
    assert!(db.execute("TRUNCATE audit").await.is_err());
    assert_eq!(db.store.audit_since(None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_database_url_that_names_neither_backend_is_refused() {
    let refused = Database::open("mysql://localhost/x").await.unwrap_err();
    assert!(refused.to_string().contains("postgres://"), "{refused}");
}

// ---------------------------------------------------------------- replays

async fn a_key_is_first_seen_once_until_it_is_kept_no_longer(db: Db) {
    let s = &*db.store;
    let later = |secs| t0() + TimeDelta::seconds(secs);
    assert!(s.first_sighting("v0=a", t0(), later(300)).await.unwrap());
    assert!(!s
        .first_sighting("v0=a", later(299), later(600))
        .await
        .unwrap());
    assert!(s
        .first_sighting("v0=b", later(1), later(300))
        .await
        .unwrap());
    // Once its time has passed the key is pruned, and may be seen anew.
    assert!(s
        .first_sighting("v0=a", later(301), later(700))
        .await
        .unwrap());
    assert!(
        !s.first_sighting("v0=a", later(302), later(700))
            .await
            .unwrap(),
        "and is remembered again"
    );
}

async fn a_command_delivered_twice_inserts_one_request_and_no_other_row(db: Db) {
    let s = &*db.store;
    let new = |delivery: Option<&str>| {
        let r = Request::new(
            ChatUserId::slack("U1"),
            None,
            GrantDuration::from_secs(600),
            vec![],
            t0(),
        );
        NewRequest {
            audit: audit(&r, AuditAction::Requested),
            jobs: vec![job(JobKind::Resolve, 0)],
            request: r,
            delivery: delivery.map(str::to_owned),
        }
    };
    let first = new(Some("slack:1:abc"));
    assert_eq!(
        s.insert_request(first.clone(), t0(), admit_all())
            .await
            .unwrap(),
        Insertion::Inserted
    );
    let copy = new(Some("slack:1:abc"));
    assert_eq!(
        s.insert_request(copy.clone(), t0(), admit_all())
            .await
            .unwrap(),
        Insertion::Replayed
    );
    assert!(s.request(&copy.request.id).await.unwrap().is_none());
    let audited: Vec<_> = s.audit_since(None).await.unwrap();
    assert_eq!(audited.len(), 1, "no audit line for the copy");
    assert_eq!(open_of(s, &ChatUserId::slack("U1")).await, 1);
    // Requests without a key (another chat service, older rows) never clash.
    let mut expected = HashSet::from([first.request.id.clone()]);
    for _ in 0..2 {
        let keyless = new(None);
        expected.insert(keyless.request.id.clone());
        assert_eq!(
            s.insert_request(keyless, t0(), admit_all()).await.unwrap(),
            Insertion::Inserted
        );
    }
    let mut claimed = HashSet::new();
    while let Some(job) = s
        .claim_job(t0(), t0() + TimeDelta::seconds(60), ClaimScope::Any)
        .await
        .unwrap()
    {
        claimed.insert(job.request_id);
    }
    assert_eq!(claimed, expected, "the copy left no job");
}

// ---------------------------------------------------------------- references

async fn a_conversation_reference_is_kept_per_person_and_the_newest_sighting_wins(db: Db) {
    let s = &*db.store;
    let ada = ChatUserId::teams("29:ada");
    let at = |secs| t0() + TimeDelta::seconds(secs);
    assert_eq!(s.conversation_reference(&ada).await.unwrap(), None);
    let installed = ConversationReference {
        user: ada.clone(),
        service_url: "https://smba.trafficmanager.net/emea/".into(),
        conversation_id: Some("a:1ada".into()),
        tenant_id: Some("tenant-1".into()),
        seen_at: at(0),
    };
    s.remember_conversation_reference(&installed).await.unwrap();
    assert_eq!(
        s.conversation_reference(&ada).await.unwrap().as_ref(),
        Some(&installed)
    );

    // A channel message names her region anew, but no 1:1 chat or tenant.
    let in_channel = ConversationReference {
        service_url: "https://smba.trafficmanager.net/amer/".into(),
        conversation_id: None,
        tenant_id: None,
        seen_at: at(10),
        ..installed.clone()
    };
    s.remember_conversation_reference(&in_channel)
        .await
        .unwrap();
    let now = s.conversation_reference(&ada).await.unwrap().unwrap();
    assert_eq!(now.service_url, "https://smba.trafficmanager.net/amer/");
    assert_eq!(now.conversation_id.as_deref(), Some("a:1ada"));
    assert_eq!(now.tenant_id.as_deref(), Some("tenant-1"));
    assert_eq!(now.seen_at, at(10));

    // A late, older sighting changes nothing.
    let stale = ConversationReference {
        service_url: "https://smba.trafficmanager.net/apac/".into(),
        conversation_id: Some("a:1old".into()),
        seen_at: at(5),
        ..installed.clone()
    };
    s.remember_conversation_reference(&stale).await.unwrap();
    assert_eq!(s.conversation_reference(&ada).await.unwrap(), Some(now));

    // People are told apart by platform as well as id.
    assert_eq!(
        s.conversation_reference(&ChatUserId::slack("29:ada"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.conversation_reference(&ChatUserId::teams("29:grace"))
            .await
            .unwrap(),
        None
    );
}

// ---------------------------------------------------------------- old databases

/// Runs the migrations of `folder` up to 0007 on `pool`: the schema as
/// the version before request stages left it.
async fn migrate_to_0007<DB>(folder: &str, pool: &sqlx::Pool<DB>)
where
    DB: sqlx::Database,
    <DB as sqlx::Database>::Connection: sqlx::migrate::Migrate,
{
    let mut migrator = sqlx::migrate::Migrator::new(std::path::Path::new(folder))
        .await
        .unwrap();
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= 7)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    migrator.run(pool).await.unwrap();
}

const OLD_REQUESTS: &str = include_str!("fixtures/requests_0007.sql");

#[tokio::test]
async fn an_sqlite_database_of_0007_opens_with_every_request_and_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)
        .unwrap()
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    migrate_to_0007("migrations/sqlite", &pool).await;
    sqlx::raw_sql(OLD_REQUESTS).execute(&pool).await.unwrap();
    pool.close().await;
    let store = SqliteStore::open(&url).await.unwrap();
    every_old_request_reads_back(&store).await;
    store.close().await;
}

#[tokio::test]
async fn a_postgres_database_of_0007_opens_with_every_request_and_its_data() {
    let Some((url, name)) = empty_postgres_database().await else {
        return;
    };
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    migrate_to_0007("migrations/postgres", &pool).await;
    sqlx::raw_sql(OLD_REQUESTS).execute(&pool).await.unwrap();
    pool.close().await;
    let database = Database::Postgres(PostgresStore::open(&url).await.unwrap());
    // Dropped with the database afterwards, as every other test's.
    let db = Db {
        store: database.store(),
        database,
        url,
        postgres_name: Some(name),
        _dir: None,
    };
    every_old_request_reads_back(&*db.store).await;
}

/// The requests of `fixtures/requests_0007.sql`, as the current code must
/// read them: each in its stage, with everything the old columns held.
async fn every_old_request_reads_back(s: &dyn Store) {
    let at = |ms: i64| DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap();
    let dev = |id: &str, host: &str, display: &str, os: &str, online: bool| Device {
        id: SystemId::new(id),
        hostname: host.into(),
        display_name: display.into(),
        os_family: os.into(),
        online,
        compiled_sudo: false,
    };
    let person = |email: &str, jc: &str| Account {
        email: Email::parse(email).unwrap(),
        jc_user: JcUserId::new(jc),
    };
    let decided = |by: ChatUserId, ms: i64| Decision { by, at: at(ms) };
    let never_admin = PriorState {
        global_sudo: false,
        direct: None,
        compiled_sudo: false,
    };
    let mac = dev("sys-1", "ada-mac", "ada-mac", "darwin", true);
    let win = dev("sys-2", "ada-win", "ada-win", "windows", false);
    let ada = person("ada@example.com", "jc-ada");
    let u2 = ChatUserId::slack("U2");
    let expected: Vec<(&str, Stage)> = vec![
        (
            "r-resolving",
            Stage::Resolving(stage::Resolving { picked: None }),
        ),
        (
            "r-picked",
            Stage::Resolving(stage::Resolving {
                picked: Some(stage::Picked {
                    account: ada.clone(),
                    device: win.clone(),
                }),
            }),
        ),
        (
            "r-awaiting",
            Stage::AwaitingDevice(stage::AwaitingDevice {
                account: ada.clone(),
                candidates: vec![mac.clone(), win.clone()],
            }),
        ),
        (
            "r-pending",
            Stage::PendingApproval(PendingApproval {
                account: ada.clone(),
                device: dev("sys-3", "ada-3", "Ada 3", "darwin", true),
                reminded_at: None,
            }),
        ),
        (
            "r-approved",
            Stage::Approved(stage::Approved {
                account: ada.clone(),
                device: dev("sys-4", "ada-4", "ada-4", "windows", true),
                decision: decided(ChatUserId::teams("29:grace"), 4_500),
                grant: None,
            }),
        ),
        (
            "r-recorded",
            Stage::Approved(stage::Approved {
                account: person("bob@example.com", "jc-bob"),
                device: dev("sys-5", "bob-5", "bob-5", "linux", true),
                decision: decided(u2.clone(), 5_500),
                grant: Some(Grant {
                    record: never_admin.clone().into(),
                    expires_at: at(606_000),
                }),
            }),
        ),
        (
            "r-active",
            Stage::Active(stage::Active {
                account: person("cy@example.com", "jc-cy"),
                device: dev("sys-6", "cy-6", "cy-6", "darwin", true),
                decision: decided(u2.clone(), 6_500),
                grant: Grant {
                    record: PriorState {
                        direct: Some(DirectBinding {
                            sudo: false,
                            without_password: false,
                        }),
                        ..never_admin.clone()
                    }
                    .into(),
                    expires_at: at(606_600),
                },
                elevated_at: at(6_800),
                extension: None,
                extensions: Vec::new(),
            }),
        ),
        (
            "r-revoking",
            Stage::Revoking(stage::Revoking {
                account: person("di@example.com", "jc-di"),
                device: dev("sys-7", "di-7", "di-7", "darwin", true),
                decision: decided(u2.clone(), 7_500),
                grant: Some(Grant {
                    record: never_admin.clone().into(),
                    expires_at: at(607_600),
                }),
                elevated_at: Some(at(7_800)),
                end_cause: EndCause::EndedEarly,
                ended_by: Some(ChatUserId::slack("U7")),
                due_at: None,
            }),
        ),
        (
            "r-safety-net",
            Stage::Revoking(stage::Revoking {
                account: person("ed@example.com", "jc-ed"),
                device: dev("sys-8", "ed-8", "ed-8", "darwin", true),
                decision: decided(u2.clone(), 8_500),
                grant: None,
                elevated_at: None,
                end_cause: EndCause::GrantFailed,
                ended_by: None,
                due_at: None,
            }),
        ),
        (
            "r-ended",
            Stage::Ended(stage::Ended {
                revoking: stage::Revoking {
                    account: person("fay@example.com", "jc-fay"),
                    device: dev("sys-9", "fay-9", "fay-9", "windows", true),
                    decision: decided(u2.clone(), 9_500),
                    grant: Some(Grant {
                        record: never_admin.clone().into(),
                        expires_at: at(609_600),
                    }),
                    elevated_at: Some(at(9_800)),
                    end_cause: EndCause::Expired,
                    ended_by: None,
                    due_at: None,
                },
                ended_at: at(609_700),
                left_alone: true,
            }),
        ),
        (
            "r-not-granted",
            Stage::Refused(stage::Closed {
                ended_at: at(10_900),
                ended_by: None,
                account: Some(person("gus@example.com", "jc-gus")),
                device: Some(dev("sys-10", "gus-10", "gus-10", "darwin", true)),
                candidates: vec![],
                decision: Some(decided(u2.clone(), 10_500)),
            }),
        ),
        (
            "r-refused",
            Stage::Refused(stage::Closed {
                ended_at: at(11_100),
                ended_by: None,
                account: None,
                device: None,
                candidates: vec![],
                decision: None,
            }),
        ),
        (
            "r-denied",
            Stage::Denied(stage::Denied {
                account: person("hal@example.com", "jc-hal"),
                device: dev("sys-12", "hal-12", "hal-12", "darwin", true),
                decision: decided(u2.clone(), 12_500),
            }),
        ),
        (
            "r-timed-out",
            Stage::TimedOut(stage::Closed {
                ended_at: at(1_813_000),
                ended_by: None,
                account: Some(person("ivy@example.com", "jc-ivy")),
                device: None,
                candidates: vec![mac.clone()],
                decision: None,
            }),
        ),
        (
            "r-cancelled",
            Stage::Cancelled(stage::Closed {
                ended_at: at(14_500),
                ended_by: Some(ChatUserId::teams("29:jo")),
                account: Some(person("jo@example.com", "jc-jo")),
                device: Some(dev("sys-14", "jo-14", "jo-14", "darwin", true)),
                candidates: vec![],
                decision: None,
            }),
        ),
    ];
    let states: HashSet<RequestState> = expected.iter().map(|(_, s)| s.state()).collect();
    assert_eq!(
        states.len(),
        RequestState::ALL.len(),
        "every state is in the fixture"
    );
    for (id, stage) in expected {
        let r = s
            .request(&RequestId::from_stored(id.into()))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id} is gone"));
        assert_eq!(r.stage, stage, "{id}");
    }
    // What is not the stage's came along too.
    let first = s
        .request(&RequestId::from_stored("r-resolving".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            first.requester,
            first.reply_to.as_deref(),
            first.duration,
            first.words,
            first.reason,
            first.created_at,
            first.version,
        ),
        (
            ChatUserId::slack("U1"),
            Some("https://hooks.slack.com/commands/T0/1/x"),
            GrantDuration::from_secs(1200),
            vec!["ada-mac".to_string(), "install".into(), "printer".into()],
            "ada-mac install printer".to_string(),
            at(0),
            0,
        )
    );
    let approved = s
        .request(&RequestId::from_stored("r-approved".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(approved.requester, ChatUserId::teams("29:ada"));
    assert_eq!(
        approved.approval_message.as_deref(),
        Some("19:approvals@thread.tacv2;messageid=1")
    );
    assert_eq!(approved.reply_to.as_deref(), Some("conv:a:1ada"));
    // The queries that filter on real columns still find them.
    assert_eq!(
        s.open_request_for_device(
            &JcUserId::new("jc-cy"),
            &SystemId::new("sys-6"),
            &RequestId::generate()
        )
        .await
        .unwrap()
        .map(|r| r.id.to_string()),
        Some("r-active".to_string())
    );
    assert_eq!(
        s.open_requests_of(&ChatUserId::slack("U1"))
            .await
            .unwrap()
            .len(),
        4
    );
    assert_eq!(s.audit_since(None).await.unwrap()[0].action, "requested");
    // A command delivered before the upgrade is still recognised.
    let copy = Request::new(
        ChatUserId::slack("U1"),
        None,
        GrantDuration::from_secs(600),
        vec![],
        at(20_000),
    );
    let new = NewRequest {
        request: copy.clone(),
        delivery: Some("slack:1:abc".into()),
        audit: audit(&copy, AuditAction::Requested),
        jobs: vec![],
    };
    assert_eq!(
        s.insert_request(new, at(0), admit_all()).await.unwrap(),
        Insertion::Replayed
    );
}

async fn the_queue_depth_counts_unfinished_work_by_kind_due_and_scheduled(db: Db) {
    let s = &*db.store;
    let secs = TimeDelta::seconds;
    insert(
        s,
        &[job(JobKind::Resolve, 0), job(JobKind::Revoke, 600)],
        &[Notice::ApprovalCard, Notice::RefreshCard],
    )
    .await;
    insert(s, &[job(JobKind::Resolve, 20)], &[]).await;
    let now = t0() + secs(30);
    let depth = |queue, kind: &str, due, scheduled, oldest: Option<i64>| QueueDepth {
        queue,
        kind: kind.to_string(),
        due,
        scheduled,
        oldest_due_at: oldest.map(|s| t0() + secs(s)),
    };
    let read = || async {
        let mut all = s.queue_depth(now).await.unwrap();
        all.sort_by(|a, b| (a.queue.as_str(), &a.kind).cmp(&(b.queue.as_str(), &b.kind)));
        all
    };
    assert_eq!(
        read().await,
        vec![
            depth(Queue::Jobs, "resolve", 2, 0, Some(0)),
            depth(Queue::Jobs, "revoke", 0, 1, None),
            // Due from when they were queued.
            depth(Queue::Outbox, "approval_card", 1, 0, Some(0)),
            depth(Queue::Outbox, "refresh_card", 1, 0, Some(0)),
        ]
    );

    // Finished work leaves; a message waiting for its retry is due from
    // its retry's time.
    let first = s
        .claim_job(now, now, ClaimScope::Any)
        .await
        .unwrap()
        .unwrap();
    s.complete_job(&first, now).await.unwrap();
    let card = s.claim_messages(now, now, 10).await.unwrap().remove(0);
    s.message_delivered(&card, now).await.unwrap();
    let refresh = s.claim_messages(now, now, 10).await.unwrap().remove(0);
    s.retry_message(&refresh, t0() + secs(25), "down")
        .await
        .unwrap();
    assert_eq!(
        read().await,
        vec![
            depth(Queue::Jobs, "resolve", 1, 0, Some(20)),
            depth(Queue::Jobs, "revoke", 0, 1, None),
            depth(Queue::Outbox, "refresh_card", 1, 0, Some(25)),
        ]
    );
}
