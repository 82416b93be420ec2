//! How long to wait before trying again: capped exponential backoff that
//! gives way to a server's own `Retry-After`.

use std::time::Duration;

/// First wait.
const BASE: Duration = Duration::from_secs(2);
/// Longest wait between two attempts of our own choosing.
const CAP: Duration = Duration::from_secs(300);
/// Longest `Retry-After` we honour; beyond it a server is misbehaving.
const HINT_CAP: Duration = Duration::from_secs(3600);

/// The wait after failed attempt number `attempt` (1-based). A server's hint
/// wins over our own schedule.
pub fn backoff(attempt: u32, hint: Option<Duration>) -> Duration {
    if let Some(hint) = hint {
        return hint.clamp(Duration::from_secs(1), HINT_CAP);
    }
    let doublings = attempt.saturating_sub(1).min(16);
    (BASE * 2u32.pow(doublings)).min(CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_until_the_cap() {
        assert_eq!(backoff(1, None), Duration::from_secs(2));
        assert_eq!(backoff(2, None), Duration::from_secs(4));
        assert_eq!(backoff(5, None), Duration::from_secs(32));
        assert_eq!(backoff(9, None), CAP);
        assert_eq!(backoff(1000, None), CAP);
    }

    #[test]
    fn a_retry_after_hint_is_honoured_within_reason() {
        assert_eq!(
            backoff(7, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(backoff(1, Some(Duration::ZERO)), Duration::from_secs(1));
        assert_eq!(backoff(1, Some(Duration::from_secs(86_400))), HINT_CAP);
    }
}
