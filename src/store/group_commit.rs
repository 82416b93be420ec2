//! Group commit: many callers' writes in one transaction. SQLite has one
//! writer, and each commit costs a turn of it plus a write of the log; a
//! flood of commands, one transaction each, queues for the writer and makes
//! every answer late. Here callers hand their write to one task, which
//! commits whatever has queued since its last commit in a single
//! transaction; under load a batch grows by itself, and alone a write waits
//! for nobody.
//!
//! Invariant: every caller gets its own outcome; a batch that fails as a
//! whole fails every caller in it, and none of its writes is kept. The
//! committing task has a thread of its own and ends when the last handle
//! is dropped; if it cannot start, every submit fails (nothing hangs).

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

/// The most writes one transaction takes. Bounded so one transaction never
/// holds the writer long enough to delay a revocation's write by much.
pub(crate) const MAX_BATCH: usize = 64;

/// A caller's write and where its outcome goes.
type Queued<T, R> = (T, oneshot::Sender<anyhow::Result<R>>);

/// The queue of writes waiting for the committing task.
pub(crate) struct GroupCommit<T, R> {
    queue: mpsc::Sender<Queued<T, R>>,
}

impl<T, R> std::fmt::Debug for GroupCommit<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field(
                "queued",
                &(self.queue.max_capacity() - self.queue.capacity()),
            )
            .finish()
    }
}

impl<T, R> Clone for GroupCommit<T, R> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> GroupCommit<T, R> {
    /// Starts the committing task. `commit` writes one batch in one
    /// transaction and returns one outcome per write, in order. The task
    /// ends when the last handle is dropped.
    pub(crate) fn start<F, Fut>(mut commit: F) -> Self
    where
        F: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<Vec<R>>> + Send,
    {
        let (queue, mut queued) = mpsc::channel::<Queued<T, R>>(MAX_BATCH * 4);
        let committing = async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while queued.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (writes, callers): (Vec<T>, Vec<_>) = batch.drain(..).unzip();
                let count = writes.len();
                match commit(writes).await {
                    Ok(outcomes) if outcomes.len() == count => {
                        for (caller, outcome) in callers.into_iter().zip(outcomes) {
                            let _ = caller.send(Ok(outcome));
                        }
                    }
                    Ok(outcomes) => {
                        let e = format!("a batch of {count} gave {} outcomes", outcomes.len());
                        for caller in callers {
                            let _ = caller.send(Err(anyhow::anyhow!("{e}")));
                        }
                    }
                    Err(e) => {
                        let e = format!("{e:#}");
                        for caller in callers {
                            let _ = caller.send(Err(anyhow::anyhow!("{e}")));
                        }
                    }
                }
            }
        };
        // A thread of its own: the callers wait for it while answering a
        // chat service, so it must not wait in a run queue behind the
        // scheduler's jobs on the main runtime.
        let thread = std::thread::Builder::new()
            .name("tempadmin-commit".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(committing),
                    Err(e) => tracing::error!(error = %e, "cannot start the commit thread"),
                }
            });
        if let Err(e) = thread {
            tracing::error!(error = %e, "cannot start the commit thread");
        }
        Self { queue }
    }

    /// Queues one write and waits for the outcome of the batch it joined.
    pub(crate) async fn submit(&self, write: T) -> anyhow::Result<R> {
        let (done, outcome) = oneshot::channel();
        self.queue
            .send((write, done))
            .await
            .map_err(|_| anyhow::anyhow!("the database's writer has stopped"))?;
        outcome
            .await
            .map_err(|_| anyhow::anyhow!("the database's writer stopped before committing"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn writes_that_queue_while_a_batch_commits_go_together_in_the_next_one() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let (release, released) = tokio::sync::watch::channel(false);
        let (started, mut commits) = mpsc::unbounded_channel();
        let seen = batches.clone();
        let group = GroupCommit::start(move |writes: Vec<u32>| {
            let (seen, mut released) = (seen.clone(), released.clone());
            let _ = started.send(());
            async move {
                // Each batch waits until the test lets it go, so the next
                // writes queue meanwhile.
                let _ = released.wait_for(|go| *go).await;
                seen.lock().unwrap().push(writes.clone());
                Ok(writes.into_iter().map(|w| w * 10).collect())
            }
        });
        let submit = |w: u32| {
            let group = group.clone();
            tokio::spawn(async move { group.submit(w).await.unwrap() })
        };
        let first = submit(1);
        commits.recv().await.unwrap();
        let later: Vec<_> = (2..=5).map(submit).collect();
        while group.queue.max_capacity() - group.queue.capacity() < 4 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        assert_eq!(first.await.unwrap(), 10);
        let mut outcomes = Vec::new();
        for task in later {
            outcomes.push(task.await.unwrap());
        }
        assert_eq!(
            outcomes,
            [20, 30, 40, 50],
            "each caller gets its own outcome"
        );
        assert_eq!(*batches.lock().unwrap(), [vec![1], vec![2, 3, 4, 5]]);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_caller_in_it() {
        let group = GroupCommit::start(|_: Vec<u32>| async {
            Err::<Vec<u32>, _>(anyhow::anyhow!("disk full"))
        });
        let error = group.submit(1).await.unwrap_err();
        assert!(error.to_string().contains("disk full"));
    }
}
