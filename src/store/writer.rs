//! SQLite's one writer. SQLite takes one write at a time; here every write
//! of the process runs on one connection, on a thread of its own, in the
//! order that matters:
//! 1. writes that take admin rights back (claiming a revocation, moving a
//!    grant to revoking or ended, finishing a revocation job, renewing
//!    leases), one by one as they come;
//! 2. new requests, which a person's chat client waits for: whatever queued
//!    meanwhile, up to [`MAX_BATCH`], in one transaction (group commit);
//! 3. everything else, one write at a time, taking turns with the batches
//!    so that neither waits for the other for long.
//!
//! Why a thread of its own: a write holds SQLite's lock from its first
//! statement to its commit. Run from the main runtime, each of its
//! statements waited for a core behind the scheduler's jobs, and held the
//! lock meanwhile; a person's command waited behind that. On a thread that
//! does nothing else, a write's statements follow each other at once.
//!
//! Invariants:
//! - a revocation write waits behind at most the write in progress;
//! - a new request waits behind at most the write in progress, the waiting
//!   revocation writes and one ordinary write;
//! - every caller gets its own outcome; a batch that fails as a whole fails
//!   every caller in it, and none of its writes is kept (the commit
//!   function's transaction);
//! - if the writer cannot start, or has stopped, every write fails at once:
//!   nothing hangs. The thread ends when the last handle is dropped.

use std::future::Future;
use std::ops::DerefMut;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

/// The most new requests one transaction takes. Bounded so one batch never
/// holds the writer long enough to delay a revocation's write by much.
pub(crate) const MAX_BATCH: usize = 64;

/// How many writes of each kind may wait before their callers wait to
/// queue (the scheduler's workers and the HTTP edge bound them anyway).
const QUEUED: usize = 1024;

/// How soon an ordinary write must happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Urgency {
    /// Part of taking somebody's admin rights back.
    Revocation,
    /// Everything else (new requests have [`Writer::insert`]).
    Normal,
}

/// Where the writer gets its connection for one write: a connection of its
/// own, or one of a pool's (an in-memory SQLite database exists once per
/// connection, so there the pool's only one is shared with the readers).
pub(crate) trait Connect: Send + 'static {
    /// What a write runs its statements on.
    type Conn: Send;
    /// The connection for the next write.
    fn connection(
        &mut self,
    ) -> impl Future<Output = anyhow::Result<impl DerefMut<Target = Self::Conn> + Send>> + Send;
    /// Closes the writer's own connection, if it has one.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// A write, with where its outcome goes inside it.
type Work<C> = Box<dyn for<'c> FnOnce(&'c mut C) -> BoxFuture<'c, ()> + Send>;

/// A new request on its way to a batch, and where its outcome goes.
type Queued<T, R> = (T, oneshot::Sender<anyhow::Result<R>>);

/// The handle of the writer thread: `C` the connection, `T` a new request,
/// `R` its outcome.
pub(crate) struct Writer<C, T, R> {
    revocations: mpsc::Sender<Work<C>>,
    ordinary: mpsc::Sender<Work<C>>,
    inserts: mpsc::Sender<Queued<T, R>>,
    closing: mpsc::Sender<oneshot::Sender<()>>,
    /// How many writes were asked for, for tests that check a path writes
    /// nothing.
    asked: Arc<AtomicU64>,
}

impl<C, T, R> std::fmt::Debug for Writer<C, T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("asked", &self.asked.load(Ordering::Relaxed))
            .finish()
    }
}

impl<C, T, R> Clone for Writer<C, T, R> {
    fn clone(&self) -> Self {
        Self {
            revocations: self.revocations.clone(),
            ordinary: self.ordinary.clone(),
            inserts: self.inserts.clone(),
            closing: self.closing.clone(),
            asked: self.asked.clone(),
        }
    }
}

/// What the writer thread receives.
struct Queues<C, T, R> {
    revocations: mpsc::Receiver<Work<C>>,
    ordinary: mpsc::Receiver<Work<C>>,
    inserts: mpsc::Receiver<Queued<T, R>>,
    closing: mpsc::Receiver<oneshot::Sender<()>>,
}

/// What the writer does next.
enum Next<C, T, R> {
    Work(Work<C>),
    Batch(Vec<Queued<T, R>>),
    /// Close the connection, say so, and end.
    Close(oneshot::Sender<()>),
    /// Every handle is gone.
    Stop,
}

impl<C: Send + 'static, T: Send + 'static, R: Send + 'static> Writer<C, T, R> {
    /// Starts the writer thread and waits until it has its connection.
    /// `open` makes the connection on that thread (so whatever the
    /// connection starts, a worker thread say, starts from the writer's);
    /// `commit` writes one batch of new requests in one transaction and
    /// returns one outcome per request, in order.
    pub(crate) async fn start<K, Open, Opened, Commit>(
        open: Open,
        mut commit: Commit,
    ) -> anyhow::Result<Self>
    where
        K: Connect<Conn = C>,
        Open: FnOnce() -> Opened + Send + 'static,
        Opened: Future<Output = anyhow::Result<K>>,
        Commit: for<'c> FnMut(&'c mut C, Vec<T>) -> BoxFuture<'c, anyhow::Result<Vec<R>>>
            + Send
            + 'static,
    {
        let (revocations, revocations_rx) = mpsc::channel::<Work<C>>(QUEUED);
        let (ordinary, ordinary_rx) = mpsc::channel::<Work<C>>(QUEUED);
        let (inserts, inserts_rx) = mpsc::channel(MAX_BATCH * 4);
        let (closing, closing_rx) = mpsc::channel(1);
        let mut queues = Queues {
            revocations: revocations_rx,
            ordinary: ordinary_rx,
            inserts: inserts_rx,
            closing: closing_rx,
        };
        let (ready, opened) = oneshot::channel();
        // Made on the thread: the connection's futures need not be Send.
        let writing = move || async move {
            let mut connect = match open().await {
                Ok(connect) => {
                    let _ = ready.send(Ok(()));
                    connect
                }
                Err(e) => {
                    // Dropping the queues fails every write, now and later.
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            let mut batch_last = false;
            loop {
                let next = queues.next(batch_last).await;
                batch_last = matches!(next, Next::Batch(_));
                match next {
                    Next::Stop => return,
                    Next::Close(done) => {
                        connect.close().await;
                        let _ = done.send(());
                        return;
                    }
                    Next::Work(work) => match connect.connection().await {
                        Ok(mut conn) => work(&mut conn).await,
                        // Dropping the work tells its caller.
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "no connection for a write")
                        }
                    },
                    Next::Batch(queued) => {
                        let (batch, callers): (Vec<T>, Vec<_>) = queued.into_iter().unzip();
                        let count = batch.len();
                        let outcomes = match connect.connection().await {
                            Ok(mut conn) => commit(&mut conn, batch).await,
                            Err(e) => Err(e),
                        };
                        answer(callers, count, outcomes);
                    }
                }
            }
        };
        let thread = std::thread::Builder::new()
            .name("tempadmin-writer".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(writing()),
                    // `ready` is dropped with `writing`: start() says so.
                    Err(e) => tracing::error!(error = %e, "cannot start the database's writer"),
                }
            });
        thread.map_err(|e| anyhow::anyhow!("cannot start the database's writer: {e}"))?;
        opened
            .await
            .map_err(|_| anyhow::anyhow!("the database's writer ended before it started"))??;
        Ok(Self {
            revocations,
            ordinary,
            inserts,
            closing,
            asked: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Lets the writes in progress finish, closes the connection and ends
    /// the thread; writes still queued, and any asked for later, fail.
    pub(crate) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.closing.send(done).await.is_ok() {
            let _ = closed.await;
        }
    }

    /// How many writes were asked for so far (batches count each request).
    pub(crate) fn asked(&self) -> u64 {
        self.asked.load(Ordering::Relaxed)
    }

    /// Runs `write` on the writer's connection, in its turn.
    pub(crate) async fn write<W, O>(&self, urgency: Urgency, write: W) -> anyhow::Result<O>
    where
        W: for<'c> FnOnce(&'c mut C) -> BoxFuture<'c, anyhow::Result<O>> + Send + 'static,
        O: Send + 'static,
    {
        self.asked.fetch_add(1, Ordering::Relaxed);
        let (done, outcome) = oneshot::channel();
        let work: Work<C> = Box::new(move |conn| {
            Box::pin(async move {
                let _ = done.send(write(conn).await);
            })
        });
        let queue = match urgency {
            Urgency::Revocation => &self.revocations,
            Urgency::Normal => &self.ordinary,
        };
        queue.send(work).await.map_err(|_| stopped())?;
        outcome
            .await
            .map_err(|_| anyhow::anyhow!("the database's writer dropped a write"))?
    }

    /// Queues one new request and waits for the outcome of the batch it
    /// joined.
    pub(crate) async fn insert(&self, new: T) -> anyhow::Result<R> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        let (done, outcome) = oneshot::channel();
        self.inserts
            .send((new, done))
            .await
            .map_err(|_| stopped())?;
        outcome
            .await
            .map_err(|_| anyhow::anyhow!("the database's writer stopped before committing"))?
    }
}

fn stopped() -> anyhow::Error {
    anyhow::anyhow!("the database's writer has stopped")
}

/// Gives every caller of a batch its outcome.
fn answer<R>(
    callers: Vec<oneshot::Sender<anyhow::Result<R>>>,
    count: usize,
    outcomes: anyhow::Result<Vec<R>>,
) {
    match outcomes {
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

impl<C, T, R> Queues<C, T, R> {
    /// The next thing to write: a waiting revocation write first; then a
    /// batch of new requests or an ordinary write, taking turns when both
    /// wait; otherwise whatever comes first. `Stop` once every handle is
    /// gone and nothing waits.
    async fn next(&mut self, batch_last: bool) -> Next<C, T, R> {
        if let Ok(done) = self.closing.try_recv() {
            return Next::Close(done);
        }
        if let Ok(work) = self.revocations.try_recv() {
            return Next::Work(work);
        }
        let batch_waits = !self.inserts.is_empty();
        let ordinary_waits = !self.ordinary.is_empty();
        if batch_waits && !(batch_last && ordinary_waits) {
            return self.batch_now();
        }
        if let Ok(work) = self.ordinary.try_recv() {
            return Next::Work(work);
        }
        let mut batch = Vec::new();
        tokio::select! {
            biased;
            Some(done) = self.closing.recv() => Next::Close(done),
            Some(work) = self.revocations.recv() => Next::Work(work),
            // Zero only once every handle is gone: nobody waits for a
            // write then.
            n = self.inserts.recv_many(&mut batch, MAX_BATCH) => {
                if n == 0 { Next::Stop } else { Next::Batch(batch) }
            }
            Some(work) = self.ordinary.recv() => Next::Work(work),
            else => Next::Stop,
        }
    }

    fn batch_now(&mut self) -> Next<C, T, R> {
        let mut batch = Vec::new();
        while batch.len() < MAX_BATCH {
            match self.inserts.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }
        Next::Batch(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A connection that records what was written on it, in order.
    #[derive(Default)]
    struct Log(Vec<String>);

    struct Shared(Arc<Mutex<Log>>);

    impl Connect for Shared {
        type Conn = Log;
        async fn connection(&mut self) -> anyhow::Result<impl DerefMut<Target = Log> + Send> {
            Ok(Held(self.0.clone(), Log::default()))
        }
        async fn close(self) {
            self.0.lock().unwrap().0.push("closed".to_owned());
        }
    }

    /// Writes into a fresh log and appends it to the shared one when done.
    struct Held(Arc<Mutex<Log>>, Log);

    impl std::ops::Deref for Held {
        type Target = Log;
        fn deref(&self) -> &Log {
            &self.1
        }
    }
    impl DerefMut for Held {
        fn deref_mut(&mut self) -> &mut Log {
            &mut self.1
        }
    }
    impl Drop for Held {
        fn drop(&mut self) {
            let written = std::mem::take(&mut self.1 .0);
            self.0.lock().unwrap().0.extend(written);
        }
    }

    type TestWriter = Writer<Log, u32, u32>;

    /// A writer whose first write waits for `release`, so that others
    /// queue behind it; batches are logged as `batch [..]`.
    async fn writer(log: Arc<Mutex<Log>>) -> TestWriter {
        Writer::start(
            move || async move { Ok(Shared(log)) },
            |conn: &mut Log, batch: Vec<u32>| {
                Box::pin(async move {
                    conn.0.push(format!("batch {batch:?}"));
                    Ok(batch.into_iter().map(|n| n * 10).collect())
                })
            },
        )
        .await
        .unwrap()
    }

    fn ordinary(
        writer: &TestWriter,
        urgency: Urgency,
        name: &'static str,
    ) -> tokio::task::JoinHandle<()> {
        let writer = writer.clone();
        tokio::spawn(async move {
            writer
                .write(urgency, move |conn: &mut Log| {
                    Box::pin(async move {
                        conn.0.push(name.to_owned());
                        Ok(())
                    })
                })
                .await
                .unwrap()
        })
    }

    /// Holds the writer in a first write until the returned sender says go.
    async fn hold(writer: &TestWriter) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let (go, wait) = oneshot::channel::<()>();
        let (started, running) = oneshot::channel::<()>();
        let writer = writer.clone();
        let held = tokio::spawn(async move {
            writer
                .write(Urgency::Normal, move |conn: &mut Log| {
                    Box::pin(async move {
                        let _ = started.send(());
                        let _ = wait.await;
                        conn.0.push("held".to_owned());
                        Ok(())
                    })
                })
                .await
                .unwrap()
        });
        running.await.unwrap();
        (go, held)
    }

    /// Waits until `n` writes were asked for (each caller has queued).
    async fn queued(writer: &TestWriter, n: u64) {
        while writer.asked() < n {
            tokio::task::yield_now().await;
        }
        // Asked is counted just before the send; let the sends land.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn revocations_go_first_and_batches_and_ordinary_writes_take_turns() {
        let log = Arc::new(Mutex::new(Log::default()));
        let writer = writer(log.clone()).await;
        let (go, held) = hold(&writer).await;
        let mut tasks = vec![
            ordinary(&writer, Urgency::Normal, "message 1"),
            ordinary(&writer, Urgency::Normal, "message 2"),
        ];
        let inserts: Vec<_> = (1..=3)
            .map(|n| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.insert(n).await.unwrap() })
            })
            .collect();
        tasks.push(ordinary(&writer, Urgency::Revocation, "revocation"));
        queued(&writer, 7).await;
        go.send(()).unwrap();
        held.await.unwrap();
        for task in tasks {
            task.await.unwrap();
        }
        let mut outcomes = Vec::new();
        for insert in inserts {
            outcomes.push(insert.await.unwrap());
        }
        assert_eq!(outcomes, [10, 20, 30], "each caller gets its own outcome");
        assert_eq!(
            log.lock().unwrap().0,
            [
                "held",
                "revocation",
                "batch [1, 2, 3]",
                "message 1",
                "message 2"
            ],
            "the revocation behind only the write in progress, the waiting requests in one batch"
        );
    }

    #[tokio::test]
    async fn a_flood_of_new_requests_lets_ordinary_writes_through() {
        let log = Arc::new(Mutex::new(Log::default()));
        let writer = writer(log.clone()).await;
        let (go, held) = hold(&writer).await;
        let total = MAX_BATCH as u32 + 3;
        let inserts: Vec<_> = (1..=total)
            .map(|n| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.insert(n).await.unwrap() })
            })
            .collect();
        queued(&writer, total as u64 + 1).await;
        let message = ordinary(&writer, Urgency::Normal, "message");
        queued(&writer, total as u64 + 2).await;
        go.send(()).unwrap();
        held.await.unwrap();
        for task in inserts {
            task.await.unwrap();
        }
        message.await.unwrap();
        let log = log.lock().unwrap();
        let batch =
            |range: std::ops::RangeInclusive<u32>| format!("batch {:?}", range.collect::<Vec<_>>());
        assert_eq!(
            log.0,
            [
                "held".to_owned(),
                batch(1..=MAX_BATCH as u32),
                "message".to_owned(),
                batch(MAX_BATCH as u32 + 1..=total),
            ],
            "a full batch, then the ordinary write, then the rest"
        );
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_caller_in_it() {
        let writer: TestWriter = Writer::start(
            || async { Ok(Shared(Default::default())) },
            |_: &mut Log, _: Vec<u32>| Box::pin(async { Err(anyhow::anyhow!("disk full")) }),
        )
        .await
        .unwrap();
        let error = writer.insert(1).await.unwrap_err();
        assert!(error.to_string().contains("disk full"));
    }

    #[tokio::test]
    async fn a_writer_that_cannot_open_says_why() {
        let started: anyhow::Result<TestWriter> = Writer::start(
            || async { Err::<Shared, _>(anyhow::anyhow!("no such file")) },
            |_: &mut Log, batch: Vec<u32>| Box::pin(async move { Ok(batch) }),
        )
        .await;
        assert!(started.unwrap_err().to_string().contains("no such file"));
    }

    #[tokio::test]
    async fn closing_waits_for_the_write_in_progress_and_fails_later_writes() {
        let log = Arc::new(Mutex::new(Log::default()));
        let writer = writer(log.clone()).await;
        let (go, held) = hold(&writer).await;
        let closer = writer.clone();
        let closed = tokio::spawn(async move { closer.close().await });
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        go.send(()).unwrap();
        held.await.unwrap();
        closed.await.unwrap();
        assert_eq!(log.lock().unwrap().0, ["held", "closed"]);
        assert!(
            writer.insert(1).await.is_err(),
            "nothing is written after closing"
        );
    }
}
