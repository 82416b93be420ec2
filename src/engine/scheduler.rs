//! The scheduler: one loop that sleeps until the next due job or message and
//! is woken early when new work is written. After a restart its first pass
//! finds every overdue row and runs it at once (DESIGN 4).

use std::future::Future;
use std::sync::Arc;

use chrono::TimeDelta;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::jobs::Outcome;
use super::Engine;

/// How long a claimed job belongs to this process before another may take it.
const JOB_LEASE: TimeDelta = TimeDelta::minutes(5);
/// The same for an outbox message.
const MESSAGE_LEASE: TimeDelta = TimeDelta::minutes(2);
/// Jobs run at once.
const JOB_PARALLELISM: usize = 8;
/// Messages claimed per pass (at most one per request).
const MESSAGE_BATCH: u32 = 16;

/// Gives up on a piece of work that outlives its lease. Adapters bound their
/// own calls; this is the backstop that keeps one stuck call from stalling
/// every later pass. The row stays leased, so it runs again once the lease
/// ends.
async fn within(
    lease: TimeDelta,
    work: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let limit = lease.to_std().unwrap_or(std::time::Duration::from_secs(60));
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("gave up after its lease of {limit:?}")))
}

impl Engine {
    /// Runs everything that is due now, repeatedly, until nothing is; returns
    /// how many jobs and messages ran. Tests call this to drain the queue
    /// deterministically after moving the clock.
    pub async fn run_due(self: &Arc<Self>) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let mut tasks = JoinSet::new();
            let now = self.now();
            while tasks.len() < JOB_PARALLELISM {
                let Some(job) = self.store.claim_job(now, now + JOB_LEASE).await? else {
                    break;
                };
                let engine = self.clone();
                let span = tracing::info_span!("job", request_id = %job.request_id, kind = job.kind.name(), attempt = job.attempt);
                tasks.spawn(within(JOB_LEASE, engine.execute(job)).instrument(span));
            }
            let messages = self
                .store
                .claim_messages(now, now + MESSAGE_LEASE, MESSAGE_BATCH)
                .await?;
            for message in messages {
                let engine = self.clone();
                let span = tracing::info_span!("deliver", request_id = %message.request_id, message_id = message.id);
                let delivery = async move { engine.deliver(&message).await };
                tasks.spawn(within(MESSAGE_LEASE, delivery).instrument(span));
            }
            if tasks.is_empty() {
                return Ok(total);
            }
            total += tasks.len();
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "scheduled work failed"),
                    Err(e) => tracing::error!(error = %e, "scheduled work panicked"),
                }
            }
        }
    }

    async fn execute(self: Arc<Self>, job: super::ports::Job) -> anyhow::Result<()> {
        match self.run_job(&job).await {
            Ok(Outcome::Done) => self.store.complete_job(&job, self.now()).await,
            Ok(Outcome::RetryAt(due, why)) => self.store.retry_job(&job, due, &why).await,
            Err(e) => {
                tracing::error!(request_id = %job.request_id, kind = job.kind.name(), error = %e, "job failed; will retry");
                let due = self.now() + TimeDelta::seconds(30);
                self.store.retry_job(&job, due, &e.to_string()).await
            }
        }
    }

    /// Runs the scheduler until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.run_due().await {
                tracing::error!(error = %e, "scheduler pass failed; retrying shortly");
            }
            let next = match self.store.next_due().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "could not read the next due time");
                    Some(self.now() + TimeDelta::seconds(1))
                }
            };
            let sleep = async {
                match next {
                    Some(at) => self.clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sleep => {}
                _ = self.wake.notified() => {}
                _ = &mut shutdown => {
                    tracing::info!("scheduler stopped");
                    return;
                }
            }
        }
    }
}
