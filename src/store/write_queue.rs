//! The queue of SQLite writers. SQLite has one writer at a time; writers
//! wait here in order instead of meeting SQLite's busy handler, which sleeps
//! in steps of milliseconds.
//!
//! Invariant: writes that take admin rights back (claiming a revocation,
//! moving a grant to revoking or ended, finishing a revocation job) wait
//! behind at most two other writes: one ordinary write and one batch of
//! new requests (there is one committer of those, see `group_commit`).
//! Ordinary writers pass a gate one at a time and join the lock's queue
//! only while no revocation write and no batch of new requests waits, so a
//! burst of look-ups or chat messages can make neither a revocation nor a
//! person's command wait for the database behind them.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{watch, Mutex, MutexGuard};

/// How soon a write must happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Urgency {
    /// Part of taking somebody's admin rights back.
    Revocation,
    /// New requests, which a person's chat client waits for.
    Command,
    /// Everything else.
    Normal,
}

/// Writers in order, revocations first.
#[derive(Debug)]
pub(crate) struct WriteQueue {
    lock: Mutex<()>,
    /// Other writers line up here, so that at most one of them waits on
    /// `lock` at a time.
    gate: Mutex<()>,
    /// How many revocation writes are waiting for the lock.
    urgent: watch::Sender<usize>,
    /// How many command writes are waiting for the lock.
    commands: watch::Sender<usize>,
    /// How many turns were given, for tests that check a path writes nothing.
    turns: AtomicU64,
}

impl Default for WriteQueue {
    fn default() -> Self {
        Self {
            lock: Mutex::new(()),
            gate: Mutex::new(()),
            urgent: watch::channel(0).0,
            commands: watch::channel(0).0,
            turns: AtomicU64::new(0),
        }
    }
}

/// Counts one waiting revocation write for as long as it lives, even when
/// the waiting future is dropped.
struct Waiting<'a>(&'a watch::Sender<usize>);

impl<'a> Waiting<'a> {
    fn new(urgent: &'a watch::Sender<usize>) -> Self {
        urgent.send_modify(|n| *n += 1);
        Self(urgent)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl WriteQueue {
    /// How many turns were asked for so far.
    pub(crate) fn turns(&self) -> u64 {
        self.turns.load(Ordering::Relaxed)
    }

    /// Waits for this writer's turn; the write holds the returned guard.
    pub(crate) async fn turn(&self, urgency: Urgency) -> MutexGuard<'_, ()> {
        self.turns.fetch_add(1, Ordering::Relaxed);
        match urgency {
            Urgency::Revocation => {
                let _waiting = Waiting::new(&self.urgent);
                self.lock.lock().await
            }
            Urgency::Command => {
                let _waiting = Waiting::new(&self.commands);
                // The sender lives as long as the queue, so this only ends
                // when no revocation write is waiting.
                let _ = self.urgent.subscribe().wait_for(|n| *n == 0).await;
                self.lock.lock().await
            }
            Urgency::Normal => {
                let _gate = self.gate.lock().await;
                let (mut urgent, mut commands) =
                    (self.urgent.subscribe(), self.commands.subscribe());
                // Both ways round until neither waits: a revocation or a
                // batch may arrive while the other is being waited for.
                loop {
                    let _ = urgent.wait_for(|n| *n == 0).await;
                    let _ = commands.wait_for(|n| *n == 0).await;
                    if *urgent.borrow() == 0 {
                        break;
                    }
                }
                self.lock.lock().await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_revocation_write_goes_ahead_of_writes_that_were_waiting_before_it() {
        let queue = Arc::new(WriteQueue::default());
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = queue.turn(Urgency::Normal).await;
        let mut tasks = Vec::new();
        for (name, urgency) in [
            ("message 1", Urgency::Normal),
            ("message 2", Urgency::Normal),
            ("revocation", Urgency::Revocation),
        ] {
            let (queue, order) = (queue.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = queue.turn(urgency).await;
                order.lock().unwrap().push(name);
            }));
            // Let it reach its wait before the next one arrives.
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            ["message 1", "revocation", "message 2"],
            "behind at most the one write already at the lock"
        );
    }

    #[tokio::test]
    async fn a_revocation_write_that_gives_up_waiting_blocks_nobody() {
        let queue = WriteQueue::default();
        let held = queue.turn(Urgency::Normal).await;
        let gave_up = tokio::time::timeout(
            std::time::Duration::from_millis(1),
            queue.turn(Urgency::Revocation),
        )
        .await;
        assert!(gave_up.is_err());
        drop(held);
        let _next = queue.turn(Urgency::Normal).await;
        assert_eq!(*queue.urgent.borrow(), 0);
    }

    #[tokio::test]
    async fn new_requests_go_ahead_of_ordinary_writes_and_behind_revocations() {
        let queue = Arc::new(WriteQueue::default());
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = queue.turn(Urgency::Normal).await;
        let mut tasks = Vec::new();
        for (name, urgency) in [
            ("message 1", Urgency::Normal),
            ("message 2", Urgency::Normal),
            ("commands", Urgency::Command),
            ("revocation", Urgency::Revocation),
        ] {
            let (queue, order) = (queue.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = queue.turn(urgency).await;
                order.lock().unwrap().push(name);
            }));
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            ["message 1", "commands", "revocation", "message 2"],
            "the revocation waits behind the two already at the lock, no more"
        );
    }
}
