//! The two clocks: the system's, and a manual one that tests and benchmarks
//! move by hand so that no test waits for real time to pass.

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::Utc;
use tokio::sync::watch;

use super::ports::Clock;
use crate::domain::Timestamp;

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Utc::now()
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        if let Ok(wait) = (deadline - Utc::now()).to_std() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Time that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
    moved: watch::Sender<Timestamp>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Mutex::new(start),
            moved: watch::channel(start).0,
        }
    }

    /// Moves time forward by `by`, waking every sleeper whose deadline passed.
    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.now.lock().expect("clock lock");
        *now += chrono::TimeDelta::from_std(by).expect("duration fits");
        self.moved.send_replace(*now);
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().expect("clock lock")
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        let mut rx = self.moved.subscribe();
        while *rx.borrow_and_update() < deadline {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_sleeper_wakes_when_the_manual_clock_passes_its_deadline() {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let deadline = clock.now() + chrono::TimeDelta::seconds(60);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(deadline).await }
        });
        clock.advance(Duration::from_secs(30));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(30));
        sleeper.await.unwrap();
        assert!(clock.now() >= deadline);
    }
}
