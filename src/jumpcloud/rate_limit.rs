//! `jumpcloud.max_requests_per_second`: this process's share of the calls
//! JumpCloud accepts, with revocations served first.
//!
//! A generic cell rate algorithm over one timeline: each call takes the
//! next free slot, `1 / rate` apart, with one second's worth of calls
//! allowed at once. A revocation books the next slot whatever is waiting
//! and sleeps until it; any other call goes only when a slot is free right
//! now, and otherwise waits and looks again. So a revocation never queues
//! behind look-ups: at most one second's burst of them can be ahead of it.
//!
//! The limit is per process; with several replicas each takes the value as
//! configured, so set it to JumpCloud's limit divided by the replicas.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::engine::ports::CallPriority;

/// Calls per second, shared by every task of the process.
#[derive(Debug)]
pub struct RateLimit {
    /// Time between two slots.
    interval: Duration,
    /// How far ahead of now the timeline may run before a call waits: the
    /// burst of one second's worth of calls.
    tolerance: Duration,
    /// The theoretical arrival time: when the next slot after the booked
    /// ones begins.
    next_slot: Mutex<Instant>,
}

impl RateLimit {
    /// At most `per_second` calls in any second (after a first burst of
    /// as many).
    pub fn new(per_second: NonZeroU32) -> Self {
        let interval = Duration::from_secs(1) / per_second.get();
        Self {
            interval,
            tolerance: interval * (per_second.get() - 1),
            next_slot: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this call's turn, as urgent as the calling task is.
    pub async fn turn(&self) {
        self.turn_as(CallPriority::current()).await
    }

    /// Waits for a turn at `priority`.
    pub async fn turn_as(&self, priority: CallPriority) {
        loop {
            match self.try_book(priority, Instant::now()) {
                Booking::Go => return,
                Booking::At(slot) => return tokio::time::sleep_until(slot).await,
                // Look again when the earliest slot frees, unless a
                // revocation books it first.
                Booking::LookAgainAt(free_at) => tokio::time::sleep_until(free_at).await,
            }
        }
    }

    fn try_book(&self, priority: CallPriority, now: Instant) -> Booking {
        let mut next_slot = self.next_slot.lock().expect("rate limit lock");
        let free_at = next_slot.checked_sub(self.tolerance).unwrap_or(now);
        if free_at <= now {
            *next_slot = (*next_slot).max(now) + self.interval;
            return Booking::Go;
        }
        match priority {
            CallPriority::Revocation => {
                *next_slot += self.interval;
                Booking::At(free_at)
            }
            CallPriority::Ordinary => Booking::LookAgainAt(free_at),
        }
    }
}

/// What a call may do now.
enum Booking {
    /// Go at once.
    Go,
    /// Go at this booked time.
    At(Instant),
    /// Nothing is free before this time.
    LookAgainAt(Instant),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn limit(per_second: u32) -> Arc<RateLimit> {
        Arc::new(RateLimit::new(NonZeroU32::new(per_second).unwrap()))
    }

    #[tokio::test(start_paused = true)]
    async fn calls_beyond_the_first_seconds_burst_are_spaced_out() {
        let limit = limit(10);
        let start = Instant::now();
        for _ in 0..30 {
            limit.turn_as(CallPriority::Ordinary).await;
        }
        // 10 at once, then 20 more at 100 ms each.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1_900) && took < Duration::from_millis(2_100),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_revocation_goes_ahead_of_calls_already_waiting() {
        let limit = limit(10);
        for _ in 0..10 {
            limit.turn_as(CallPriority::Ordinary).await;
        }
        let start = Instant::now();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for n in 0..20 {
            let (limit, order) = (limit.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                limit.turn_as(CallPriority::Ordinary).await;
                order.lock().unwrap().push(format!("lookup {n}"));
            }));
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let revocation = {
            let (limit, order) = (limit.clone(), order.clone());
            tokio::spawn(async move {
                limit.turn_as(CallPriority::Revocation).await;
                order.lock().unwrap().push("revocation".to_string());
                start.elapsed()
            })
        };
        let waited = revocation.await.unwrap();
        for task in waiting {
            task.await.unwrap();
        }
        let order = order.lock().unwrap();
        let position = order.iter().position(|o| o == "revocation").unwrap();
        assert!(position <= 2, "the revocation went {position}th: {order:?}");
        assert!(waited <= Duration::from_millis(300), "{waited:?}");
        assert_eq!(order.len(), 21);
    }

    #[tokio::test(start_paused = true)]
    async fn revocations_alone_keep_to_the_rate_too() {
        let limit = limit(5);
        let start = Instant::now();
        for _ in 0..15 {
            limit.turn_as(CallPriority::Revocation).await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1_900) && took < Duration::from_millis(2_100),
            "{took:?}"
        );
    }
}
