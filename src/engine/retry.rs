//! How long to wait before trying again: capped exponential backoff that
//! gives way to a server's own `Retry-After`, within a ceiling that depends
//! on what is being retried.
//!
//! Invariant: a revocation is retried at least every
//! [`REVOCATION_CEILING`], whatever a server says, so that rate limiting
//! cannot stretch somebody's admin rights.

use std::time::Duration;

/// First wait.
const BASE: Duration = Duration::from_secs(2);
/// Longest wait between two attempts of ordinary work (look-ups, grants,
/// chat messages).
pub const ORDINARY_CEILING: Duration = Duration::from_secs(300);
/// Longest wait between two attempts to take admin rights back.
pub const REVOCATION_CEILING: Duration = Duration::from_secs(60);
/// Longest `Retry-After` honoured for ordinary work; beyond it a server is
/// misbehaving.
const HINT_CAP: Duration = Duration::from_secs(3600);

/// How patient a retry may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// Ordinary work: back off up to [`ORDINARY_CEILING`], honour a
    /// `Retry-After` of up to an hour.
    Ordinary,
    /// Restoring somebody's rights: never wait longer than
    /// [`REVOCATION_CEILING`], not even when the server asks to.
    Revocation,
}

/// The wait after failed attempt number `attempt` (1-based). A server's hint
/// wins over our own schedule, within the ceiling of `patience`.
pub fn backoff(attempt: u32, hint: Option<Duration>, patience: Patience) -> Duration {
    let (ceiling, hint_cap) = match patience {
        Patience::Ordinary => (ORDINARY_CEILING, HINT_CAP),
        Patience::Revocation => (REVOCATION_CEILING, REVOCATION_CEILING),
    };
    if let Some(hint) = hint {
        return hint.clamp(Duration::from_secs(1), hint_cap);
    }
    let doublings = attempt.saturating_sub(1).min(16);
    (BASE * 2u32.pow(doublings)).min(ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_until_the_cap() {
        let b = |n| backoff(n, None, Patience::Ordinary);
        assert_eq!(b(1), Duration::from_secs(2));
        assert_eq!(b(2), Duration::from_secs(4));
        assert_eq!(b(5), Duration::from_secs(32));
        assert_eq!(b(9), ORDINARY_CEILING);
        assert_eq!(b(1000), ORDINARY_CEILING);
    }

    #[test]
    fn a_retry_after_hint_is_honoured_within_reason() {
        let b = |n, hint| backoff(n, Some(hint), Patience::Ordinary);
        assert_eq!(b(7, Duration::from_secs(30)), Duration::from_secs(30));
        assert_eq!(b(1, Duration::ZERO), Duration::from_secs(1));
        assert_eq!(b(1, Duration::from_secs(86_400)), HINT_CAP);
    }

    #[test]
    fn a_revocation_is_retried_at_least_every_minute_whatever_the_server_says() {
        let b = |n, hint| backoff(n, hint, Patience::Revocation);
        assert_eq!(b(1, None), Duration::from_secs(2));
        assert_eq!(b(30, None), REVOCATION_CEILING);
        assert_eq!(b(1, Some(Duration::from_secs(3600))), REVOCATION_CEILING);
        assert_eq!(b(1, Some(Duration::from_secs(7))), Duration::from_secs(7));
    }
}
