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
//! - Work that outlives its lease is abandoned and released for a retry,
//!   never left holding its row.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tokio::task::{JoinError, JoinSet};
use tracing::Instrument;

use super::jobs::Outcome;
use super::ports::{ClaimScope, Job, JobKind, OutboxMessage};
use super::retry::{backoff, Patience};
use super::Engine;

/// How long a claimed job belongs to this worker before it may be claimed
/// again.
const JOB_LEASE: TimeDelta = TimeDelta::minutes(5);
/// The same for an outbox message.
const MESSAGE_LEASE: TimeDelta = TimeDelta::minutes(2);
/// Work is abandoned this long before its lease ends, so that it is released
/// by its own worker rather than by the lease running out.
const LEASE_MARGIN: TimeDelta = TimeDelta::seconds(30);
/// How long shutdown waits for work in flight before abandoning it (its
/// rows are claimed again at the next start).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long the loop waits for work that is due but not claimable (its
/// request has a job in flight elsewhere) before looking again.
const BLOCKED_POLL: TimeDelta = TimeDelta::seconds(1);
/// The longest pause after the store failed a scheduler pass.
const PASS_FAILURE_CEILING: Duration = Duration::from_secs(30);

/// The size of the worker pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workers {
    /// Jobs and messages in flight at once, at most.
    pub total: usize,
    /// Of those, slots that only revocations may use.
    pub reserved_for_revocations: usize,
}

impl Workers {
    /// A pool of `total` workers, a quarter of them (at least one) kept for
    /// revocations.
    pub fn new(total: usize) -> Self {
        let total = total.max(2);
        Self {
            total,
            reserved_for_revocations: (total / 4).max(1),
        }
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

fn in_lease(lease: TimeDelta) -> Duration {
    (lease - LEASE_MARGIN)
        .to_std()
        .unwrap_or(Duration::from_secs(60))
}

fn log_joined(joined: Result<(), JoinError>) {
    if let Err(e) = joined {
        if e.is_panic() {
            tracing::error!(error = %e, "scheduled work panicked");
        }
    }
}

impl Engine {
    /// Runs everything that is due now until nothing is, with the same pool
    /// as [`Engine::run`]; returns how many jobs and messages ran. Tests call
    /// this to drain the queue deterministically after moving the clock.
    pub async fn run_due(self: &Arc<Self>) -> anyhow::Result<usize> {
        let mut tasks = JoinSet::new();
        let mut total = 0;
        loop {
            total += self.fill(&mut tasks, self.now()).await?;
            match tasks.join_next().await {
                None => return Ok(total),
                Some(joined) => log_joined(joined),
            }
            while let Some(joined) = tasks.try_join_next() {
                log_joined(joined);
            }
        }
    }

    /// Runs the scheduler until `shutdown` resolves, then gives work in
    /// flight a bounded time to finish.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tasks = JoinSet::new();
        let mut failed_passes = 0u32;
        loop {
            // One instant for claiming and for judging what is due, so that
            // work falling due in between is never taken for blocked work.
            let now = self.now();
            let next = match self.fill(&mut tasks, now).await {
                Ok(_) => {
                    failed_passes = 0;
                    self.next_wake(tasks.len(), now).await
                }
                Err(e) => {
                    failed_passes += 1;
                    let wait = backoff(failed_passes, None, Patience::Revocation)
                        .min(PASS_FAILURE_CEILING);
                    tracing::error!(error = %e, retry_in = ?wait, "scheduler pass failed");
                    Some(self.now() + TimeDelta::from_std(wait).unwrap_or_default())
                }
            };
            let sleep = async {
                match next {
                    Some(at) => self.clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    log_joined(joined);
                    while let Some(joined) = tasks.try_join_next() {
                        log_joined(joined);
                    }
                }
                _ = sleep => {}
                _ = self.wake.notified() => {}
                _ = self.store.work_added() => {}
                _ = &mut shutdown => break,
            }
        }
        tracing::info!(in_flight = tasks.len(), "scheduler stopping");
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while let Some(joined) = tasks.join_next().await {
                log_joined(joined);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                abandoned = tasks.len(),
                "work still in flight at shutdown is claimed again at the next start"
            );
            tasks.abort_all();
        }
        tracing::info!("scheduler stopped");
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
        tasks: &mut JoinSet<()>,
        now: crate::domain::Timestamp,
    ) -> anyhow::Result<usize> {
        let workers = self.workers;
        let mut started = 0;
        let mut revocations_left = true;
        while tasks.len() < workers.total {
            if revocations_left {
                match self
                    .store
                    .claim_job(now, now + JOB_LEASE, ClaimScope::Revocations)
                    .await?
                {
                    Some(job) => {
                        self.spawn_job(tasks, job);
                        started += 1;
                        continue;
                    }
                    None => revocations_left = false,
                }
            }
            if tasks.len() >= workers.shared() {
                break;
            }
            if let Some(job) = self
                .store
                .claim_job(now, now + JOB_LEASE, ClaimScope::Any)
                .await?
            {
                self.spawn_job(tasks, job);
                started += 1;
                continue;
            }
            let free = (workers.shared() - tasks.len()) as u32;
            let messages = self
                .store
                .claim_messages(now, now + MESSAGE_LEASE, free)
                .await?;
            if messages.is_empty() {
                break;
            }
            for message in messages {
                self.spawn_message(tasks, message);
                started += 1;
            }
        }
        Ok(started)
    }

    fn spawn_job(self: &Arc<Self>, tasks: &mut JoinSet<()>, job: Job) {
        let span = tracing::info_span!("job", request_id = %job.request_id, kind = job.kind.name(), attempt = job.attempt);
        let engine = self.clone();
        tasks.spawn(
            async move {
                let limit = in_lease(JOB_LEASE);
                let outcome = tokio::time::timeout(limit, engine.execute(&job)).await;
                let released = match outcome {
                    Ok(done) => done,
                    Err(_) => {
                        tracing::error!(?limit, "job outlived its time; released for a retry");
                        let wait = backoff(job.attempt, None, patience(job.kind));
                        let due = engine.now() + TimeDelta::from_std(wait).unwrap_or_default();
                        engine
                            .store
                            .retry_job(&job, due, "gave up: took longer than its lease")
                            .await
                    }
                };
                if let Err(e) = released {
                    tracing::error!(error = %e, "could not record the job's outcome; its lease will end");
                }
            }
            .instrument(span),
        );
    }

    fn spawn_message(self: &Arc<Self>, tasks: &mut JoinSet<()>, message: OutboxMessage) {
        let span = tracing::info_span!("deliver", request_id = %message.request_id, message_id = message.id);
        let engine = self.clone();
        tasks.spawn(
            async move {
                let limit = in_lease(MESSAGE_LEASE);
                let outcome = tokio::time::timeout(limit, engine.deliver(&message)).await;
                let released = match outcome {
                    Ok(done) => done,
                    Err(_) => {
                        tracing::error!(?limit, "delivery outlived its time; released for a retry");
                        let wait = backoff(message.attempt, None, Patience::Ordinary);
                        let due = engine.now() + TimeDelta::from_std(wait).unwrap_or_default();
                        engine
                            .store
                            .retry_message(&message, due, "gave up: took longer than its lease")
                            .await
                    }
                };
                if let Err(e) = released {
                    tracing::error!(error = %e, "could not record the delivery's outcome; its lease will end");
                }
            }
            .instrument(span),
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
