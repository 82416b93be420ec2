//! The scheduler: a bounded pool of workers over the durable jobs and the
//! outbox. Each job or message is claimed and leased on its own and runs in
//! its own task; the loop claims new due work as soon as a slot frees, so
//! one slow call never holds up anything else. After a restart the first
//! pass finds every overdue row and runs it at once (DESIGN 4).
//!
//! Invariants:
//! - Revocations come first: they are claimed before any other work, and
//!   [`Workers::reserved_for_revocations`] slots are never given to
//!   anything else, so look-ups and chat messages cannot starve them.
//! - Per request, one job at a time and messages in order: the store's
//!   claims guarantee it, whatever the number of workers.
//! - Running work keeps its lease: the loop renews the leases of everything
//!   in flight every third of `[scheduler] lease`, and stops work whose row
//!   another attempt took over. A killed process renews nothing, so its
//!   work is claimed by another replica one lease after the last renewal.
//! - Work that outlives its time limit is abandoned and released for a
//!   retry, never left holding its row.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tokio::task::{AbortHandle, JoinError, JoinSet};
use tracing::Instrument;

use super::jobs::Outcome;
use super::ports::{CallPriority, ClaimScope, Job, JobKind, Lease, OutboxMessage};
use super::retry::{backoff, Patience};
use super::Engine;

/// The longest a job may run (its JumpCloud and chat calls, with their
/// retries inside the job) before it is abandoned and released for a retry.
const JOB_TIME_LIMIT: Duration = Duration::from_secs(270);
/// The same for delivering one outbox message.
const MESSAGE_TIME_LIMIT: Duration = Duration::from_secs(90);
/// How long shutdown waits for work in flight before abandoning it (its
/// rows are claimed again at the next start). Public so a deployment's own
/// grace period (Kubernetes' `terminationGracePeriodSeconds`) can be checked
/// against it.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long the loop waits for work that is due but not claimable (its
/// request has a job in flight elsewhere) before looking again.
const BLOCKED_POLL: TimeDelta = TimeDelta::seconds(1);
/// The longest pause after the store failed a scheduler pass.
const PASS_FAILURE_CEILING: Duration = Duration::from_secs(30);

/// The default lease (`[scheduler] lease`): how soon another replica takes
/// over the work of one that was killed.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// The worker pool: its size, and how long its claims on work last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workers {
    /// Jobs and messages in flight at once, at most.
    pub total: usize,
    /// Of those, slots that only revocations may use.
    pub reserved_for_revocations: usize,
    /// How long a claimed job or message stays this process's without a
    /// renewal. The scheduler renews the leases of running work every third
    /// of it, so work may run longer; a process that dies (or stalls) loses
    /// its work to another replica this long after its last renewal.
    pub lease: Duration,
}

impl Workers {
    /// A pool of `total` workers, a quarter of them (at least one) kept for
    /// revocations, with the default lease.
    pub fn new(total: usize) -> Self {
        let total = total.max(2);
        Self {
            total,
            reserved_for_revocations: (total / 4).max(1),
            lease: DEFAULT_LEASE,
        }
    }

    /// The same pool with leases of `lease`.
    pub fn with_lease(self, lease: Duration) -> Self {
        Self { lease, ..self }
    }

    fn lease_delta(self) -> TimeDelta {
        TimeDelta::from_std(self.lease).unwrap_or(TimeDelta::seconds(15))
    }

    /// How often running work's leases are renewed.
    fn renewal_interval(self) -> TimeDelta {
        self.lease_delta() / 3
    }

    /// Slots that any work may use.
    fn shared(self) -> usize {
        self.total - self.reserved_for_revocations
    }
}

impl Default for Workers {
    fn default() -> Self {
        Self::new(128)
    }
}

/// How the retry of a job of this kind may back off.
fn patience(kind: JobKind) -> Patience {
    match kind {
        JobKind::Revoke => Patience::Revocation,
        _ => Patience::Ordinary,
    }
}

/// Runs `work` for at most `limit`; work that outlives it is abandoned and
/// handed to `release`, which puts its row back for a retry.
async fn within_limit<W, R, F>(limit: Duration, work: W, release: R)
where
    W: Future<Output = anyhow::Result<()>>,
    R: FnOnce(&'static str) -> F,
    F: Future<Output = anyhow::Result<()>>,
{
    let recorded = match tokio::time::timeout(limit, work).await {
        Ok(recorded) => recorded,
        Err(_) => {
            tracing::error!(?limit, "outlived its time limit; released for a retry");
            release("gave up: took longer than its time limit").await
        }
    };
    if let Err(e) = recorded {
        tracing::error!(error = %e, "could not record the outcome; its lease will end");
    }
}

/// The work this process runs: its tasks, each ending with the lease it
/// held, and how to abort each one.
#[derive(Default)]
struct InFlight {
    tasks: JoinSet<Lease>,
    handles: HashMap<Lease, AbortHandle>,
}

impl InFlight {
    fn len(&self) -> usize {
        self.tasks.len()
    }

    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    fn spawn(&mut self, lease: Lease, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.tasks.spawn(async move {
            task.await;
            lease
        });
        self.handles.insert(lease, handle);
    }

    fn joined(&mut self, joined: Result<Lease, JoinError>) {
        match joined {
            Ok(lease) => {
                self.handles.remove(&lease);
            }
            Err(e) => {
                self.handles.retain(|_, h| h.id() != e.id());
                if e.is_panic() {
                    tracing::error!(error = %e, "scheduled work panicked");
                }
            }
        }
    }

    /// Takes every task that already ended.
    fn reap(&mut self) {
        while let Some(joined) = self.tasks.try_join_next() {
            self.joined(joined);
        }
    }

    fn held(&self) -> Vec<Lease> {
        self.handles.keys().copied().collect()
    }

    /// Stops work whose row another attempt now holds: finishing it could
    /// change nothing (completion is fenced), and its next calls would only
    /// repeat the newer attempt's.
    fn abort_lost(&mut self, lost: &[Lease]) {
        for lease in lost {
            if let Some(handle) = self.handles.get(lease) {
                tracing::warn!(
                    ?lease,
                    "lost a lease to another attempt; stopping that work"
                );
                handle.abort();
            }
        }
    }
}

impl Engine {
    /// Runs everything that is due now until nothing is, with the same pool
    /// as [`Engine::run`]; returns how many jobs and messages ran. Tests call
    /// this to drain the queue deterministically after moving the clock
    /// (which stands still meanwhile, so no lease needs renewing).
    pub async fn run_due(self: &Arc<Self>) -> anyhow::Result<usize> {
        let mut in_flight = InFlight::default();
        let mut total = 0;
        loop {
            total += self.fill(&mut in_flight, self.now()).await?;
            match in_flight.tasks.join_next().await {
                None => return Ok(total),
                Some(joined) => in_flight.joined(joined),
            }
            in_flight.reap();
        }
    }

    /// Runs the scheduler until `shutdown` resolves, then gives work in
    /// flight a bounded time to finish.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut in_flight = InFlight::default();
        let mut failed_passes = 0u32;
        let mut renew_at = self.now() + self.workers.renewal_interval();
        loop {
            // One instant for claiming and for judging what is due, so that
            // work falling due in between is never taken for blocked work.
            let now = self.now();
            if now >= renew_at {
                self.renew(&mut in_flight, now).await;
                renew_at = now + self.workers.renewal_interval();
            }
            let next = match self.fill(&mut in_flight, now).await {
                Ok(_) => {
                    failed_passes = 0;
                    self.next_wake(in_flight.len(), now).await
                }
                Err(e) => {
                    failed_passes += 1;
                    let wait = backoff(failed_passes, None, Patience::Revocation)
                        .min(PASS_FAILURE_CEILING);
                    tracing::error!(error = %e, retry_in = ?wait, "scheduler pass failed");
                    Some(self.now() + TimeDelta::from_std(wait).unwrap_or_default())
                }
            };
            // While work runs, wake in time to renew its leases.
            let next = match (next, in_flight.is_empty()) {
                (next, true) => next,
                (Some(at), false) => Some(at.min(renew_at)),
                (None, false) => Some(renew_at),
            };
            let sleep = async {
                match next {
                    Some(at) => self.clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(joined) = in_flight.tasks.join_next(), if !in_flight.is_empty() => {
                    in_flight.joined(joined);
                    in_flight.reap();
                }
                _ = sleep => {}
                _ = self.wake.notified() => {}
                _ = self.store.work_added() => {}
                _ = &mut shutdown => break,
            }
        }
        tracing::info!(in_flight = in_flight.len(), "scheduler stopping");
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while let Some(joined) = in_flight.tasks.join_next().await {
                in_flight.joined(joined);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                abandoned = in_flight.len(),
                "work still in flight at shutdown is claimed again at the next start"
            );
            in_flight.tasks.abort_all();
        }
        tracing::info!("scheduler stopped");
    }

    /// Renews the leases of the work in flight; stops work whose lease
    /// another attempt took over.
    async fn renew(&self, in_flight: &mut InFlight, now: crate::domain::Timestamp) {
        in_flight.reap();
        let held = in_flight.held();
        if held.is_empty() {
            return;
        }
        let until = now + self.workers.lease_delta();
        match self.store.renew_leases(&held, until).await {
            Ok(lost) => in_flight.abort_lost(&lost),
            Err(e) => tracing::error!(
                error = %e,
                held = held.len(),
                "could not renew leases; another replica may take this work over"
            ),
        }
    }

    /// When the loop should look again, after claiming at `now`: the next
    /// due time; but when work was due at `now` and not claimed (every
    /// worker busy, or its request has a job in flight), a task ending wakes
    /// the loop, and meanwhile it looks again at the next revocation's due
    /// time or after a short poll, never in a tight loop.
    async fn next_wake(
        &self,
        in_flight: usize,
        now: crate::domain::Timestamp,
    ) -> Option<crate::domain::Timestamp> {
        let due = async {
            let next = self.store.next_due().await?;
            match next {
                Some(at) if at <= now => {
                    let revocation = self.store.next_revocation_due().await?;
                    let poll = (in_flight == 0).then_some(now + BLOCKED_POLL);
                    let revocation = revocation.filter(|at| *at > now);
                    anyhow::Ok(match (revocation, poll) {
                        (Some(r), Some(p)) => Some(r.min(p)),
                        (r, p) => r.or(p),
                    })
                }
                next => Ok(next),
            }
        };
        match due.await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "could not read the next due time");
                Some(now + BLOCKED_POLL)
            }
        }
    }

    /// Claims due work into the free slots of `tasks`, revocations first;
    /// returns how many pieces of work it started.
    async fn fill(
        self: &Arc<Self>,
        in_flight: &mut InFlight,
        now: crate::domain::Timestamp,
    ) -> anyhow::Result<usize> {
        let workers = self.workers;
        let lease_until = now + workers.lease_delta();
        let mut started = 0;
        let mut revocations_left = true;
        while in_flight.len() < workers.total {
            if revocations_left {
                match self
                    .store
                    .claim_job(now, lease_until, ClaimScope::Revocations)
                    .await?
                {
                    Some(job) => {
                        self.spawn_job(in_flight, job);
                        started += 1;
                        continue;
                    }
                    None => revocations_left = false,
                }
            }
            if in_flight.len() >= workers.shared() {
                break;
            }
            if let Some(job) = self
                .store
                .claim_job(now, lease_until, ClaimScope::Any)
                .await?
            {
                self.spawn_job(in_flight, job);
                started += 1;
                continue;
            }
            let free = (workers.shared() - in_flight.len()) as u32;
            let messages = self.store.claim_messages(now, lease_until, free).await?;
            if messages.is_empty() {
                break;
            }
            for message in messages {
                self.spawn_message(in_flight, message);
                started += 1;
            }
        }
        Ok(started)
    }

    fn spawn_job(self: &Arc<Self>, in_flight: &mut InFlight, job: Job) {
        let span = tracing::info_span!("job", request_id = %job.request_id, kind = job.kind.name(), attempt = job.attempt);
        let job_lease = job.lease();
        let engine = self.clone();
        let work = {
            let (engine, job) = (engine.clone(), job.clone());
            let priority = match job.kind {
                JobKind::Revoke => CallPriority::Revocation,
                _ => CallPriority::Ordinary,
            };
            priority.scope(async move { engine.execute(&job).await })
        };
        let release = move |why: &'static str| async move {
            let wait = backoff(job.attempt, None, patience(job.kind));
            let due = engine.now() + TimeDelta::from_std(wait).unwrap_or_default();
            engine.store.retry_job(&job, due, why).await
        };
        in_flight.spawn(
            job_lease,
            within_limit(JOB_TIME_LIMIT, work, release).instrument(span),
        );
    }

    fn spawn_message(self: &Arc<Self>, in_flight: &mut InFlight, message: OutboxMessage) {
        let span = tracing::info_span!("deliver", request_id = %message.request_id, message_id = message.id);
        let message_lease = message.lease();
        let engine = self.clone();
        let work = {
            let (engine, message) = (engine.clone(), message.clone());
            async move { engine.deliver(&message).await }
        };
        let release = move |why: &'static str| async move {
            let wait = backoff(message.attempt, None, Patience::Ordinary);
            let due = engine.now() + TimeDelta::from_std(wait).unwrap_or_default();
            engine.store.retry_message(&message, due, why).await
        };
        in_flight.spawn(
            message_lease,
            within_limit(MESSAGE_TIME_LIMIT, work, release).instrument(span),
        );
    }

    /// Runs one job and records what became of it.
    async fn execute(&self, job: &Job) -> anyhow::Result<()> {
        match self.run_job(job).await {
            Ok(Outcome::Done) => self.store.complete_job(job, self.now()).await,
            Ok(Outcome::RetryAt(due, why)) => self.store.retry_job(job, due, &why).await,
            Err(e) => {
                let wait = backoff(job.attempt, None, patience(job.kind));
                tracing::error!(error = %e, retry_in = ?wait, "job failed; will retry");
                let due = self.now() + TimeDelta::from_std(wait).unwrap_or_default();
                self.store.retry_job(job, due, &e.to_string()).await
            }
        }
    }
}
