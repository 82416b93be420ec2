//! `Policy`: the limits an organisation sets on requests (duration bounds,
//! whether a reason is required and how long it may be, how many requests
//! one person may have open and make in an hour, how long approvers have,
//! when to remind).

use super::{GrantDuration, Refusal};

/// The organisation's rules for requests; loaded from `[policy]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Shown in help as the example duration.
    pub default_duration: GrantDuration,
    /// Shortest grant allowed.
    pub min_duration: GrantDuration,
    /// Longest grant allowed.
    pub max_duration: GrantDuration,
    /// Whether a request must carry a reason.
    pub require_reason: bool,
    /// The longest reason accepted, in characters. Approvers read it in one
    /// chat message, which has its own limits.
    pub max_reason_length: usize,
    /// How many requests one person may have open at once (not yet ended,
    /// refused, denied, expired or withdrawn; an active grant counts).
    pub max_open_requests: usize,
    /// How many requests one person may make in any hour. Each accepted
    /// command costs JumpCloud and Slack look-ups and may post a card.
    pub max_requests_per_hour: usize,
    /// How long a request waits for a decision before it expires.
    pub approval_timeout: GrantDuration,
    /// Remaining-time marks at which countdown replies are sent, longest first.
    pub reminders: Vec<GrantDuration>,
    /// When to name the approvers in the thread of a request nobody has
    /// decided yet (`policy.approval_reminder`).
    pub approval_reminder: ApprovalReminder,
}

/// When the approvers are reminded of an undecided request, once, in its
/// thread (`policy.approval_reminder`: `true`, `false` or a duration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalReminder {
    /// No reminder (`false`).
    Off,
    /// Halfway to `approval_timeout` (`true`, the default).
    Halfway,
    /// After the request has waited this long (a duration shorter than
    /// `approval_timeout`).
    After(GrantDuration),
}

impl Default for Policy {
    fn default() -> Self {
        let d = |s| GrantDuration::from_secs(s);
        Self {
            default_duration: d(30 * 60),
            min_duration: d(5 * 60),
            max_duration: d(4 * 3600),
            require_reason: false,
            max_reason_length: 500,
            max_open_requests: 3,
            max_requests_per_hour: 10,
            approval_timeout: d(30 * 60),
            reminders: vec![d(15 * 60), d(5 * 60), d(60)],
            approval_reminder: ApprovalReminder::Halfway,
        }
    }
}

impl Policy {
    /// Checks a requested duration against the bounds.
    pub fn check_duration(&self, requested: GrantDuration) -> Result<(), Refusal> {
        if requested < self.min_duration || requested > self.max_duration {
            return Err(Refusal::DurationOutOfRange {
                requested,
                min: self.min_duration,
                max: self.max_duration,
            });
        }
        Ok(())
    }

    /// Checks the reason against `require_reason` and `max_reason_length`.
    pub fn check_reason(&self, reason: &str) -> Result<(), Refusal> {
        if self.require_reason && reason.trim().is_empty() {
            return Err(Refusal::ReasonRequired);
        }
        let length = reason.chars().count();
        if length > self.max_reason_length {
            return Err(Refusal::ReasonTooLong {
                length,
                max: self.max_reason_length,
            });
        }
        Ok(())
    }

    /// Checks one person's request counts against the per-person limits:
    /// `open` requests now, `last_hour` made in the past hour.
    pub fn check_volume(&self, open: usize, last_hour: usize) -> Result<(), Refusal> {
        if open >= self.max_open_requests {
            return Err(Refusal::TooManyOpenRequests {
                open,
                max: self.max_open_requests,
            });
        }
        if last_hour >= self.max_requests_per_hour {
            return Err(Refusal::TooManyRequestsPerHour {
                max: self.max_requests_per_hour,
            });
        }
        Ok(())
    }

    /// How much more an active grant of `granted` in total (from its first
    /// elevation) may get: `asked`, or without it the default duration
    /// capped by what is left under the maximum. Refused when nothing is
    /// left, or `asked` would take the total past `max_duration` (the
    /// refusal says the limit and what is left), or `asked` is shorter than
    /// `min_duration` (or than what is left, when that is shorter).
    pub fn extension_for(
        &self,
        granted: GrantDuration,
        asked: Option<GrantDuration>,
    ) -> Result<GrantDuration, Refusal> {
        let left_secs = self
            .max_duration
            .as_secs()
            .saturating_sub(granted.as_secs());
        // `GrantDuration` is never zero: nothing left is `None`.
        let left = (left_secs > 0).then(|| GrantDuration::from_secs(left_secs));
        let refusal = Refusal::ExtensionOverLimit {
            max: self.max_duration,
            left,
        };
        let Some(room) = left else {
            return Err(refusal);
        };
        let added = asked.unwrap_or_else(|| self.default_duration.min(room));
        if added > room {
            return Err(refusal);
        }
        let min = self.min_duration.min(room);
        if added < min {
            return Err(Refusal::ExtensionTooShort { asked: added, min });
        }
        Ok(added)
    }

    /// How long after reaching the approvers an undecided request gets its
    /// reminder, or `None` for no reminder. Always before the timeout.
    pub fn approval_reminder_after(&self) -> Option<GrantDuration> {
        let timeout = self.approval_timeout.as_secs();
        let after = match self.approval_reminder {
            ApprovalReminder::Off => return None,
            // `GrantDuration` is never zero: a timeout of 1 s gets none.
            ApprovalReminder::Halfway => timeout / 2,
            ApprovalReminder::After(after) => after.as_secs(),
        };
        (after > 0 && after < timeout).then(|| GrantDuration::from_secs(after))
    }

    /// The reminder marks that fit inside a grant of `duration`, longest first.
    pub fn reminders_for(&self, duration: GrantDuration) -> Vec<GrantDuration> {
        let mut marks: Vec<_> = self
            .reminders
            .iter()
            .copied()
            .filter(|m| *m < duration)
            .collect();
        marks.sort_by(|a, b| b.cmp(a));
        marks.dedup();
        marks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extension_keeps_the_total_within_the_maximum_and_says_what_is_left() {
        let p = Policy::default();
        let d = |t: &str| GrantDuration::parse(t).unwrap();
        let max = p.max_duration;
        let granted = GrantDuration::from_secs(max.as_secs() - 600);
        assert_eq!(p.extension_for(granted, Some(d("10m"))), Ok(d("10m")));
        assert_eq!(
            p.extension_for(granted, Some(d("11m"))),
            Err(Refusal::ExtensionOverLimit {
                max,
                left: Some(d("10m"))
            })
        );
        assert_eq!(
            p.extension_for(granted, None),
            Ok(p.default_duration.min(d("10m"))),
            "the default, capped by what is left"
        );
        assert_eq!(
            p.extension_for(max, None),
            Err(Refusal::ExtensionOverLimit { max, left: None })
        );
    }

    #[test]
    fn an_extension_is_at_least_the_minimum_or_all_that_is_left() {
        let p = Policy::default();
        let d = |t: &str| GrantDuration::parse(t).unwrap();
        assert_eq!(p.min_duration, d("5m"));
        assert_eq!(
            p.extension_for(d("30m"), Some(d("1m"))),
            Err(Refusal::ExtensionTooShort {
                asked: d("1m"),
                min: d("5m")
            })
        );
        assert_eq!(p.extension_for(d("30m"), Some(d("5m"))), Ok(d("5m")));
        let near_max = GrantDuration::from_secs(p.max_duration.as_secs() - 120);
        assert_eq!(
            p.extension_for(near_max, None),
            Ok(d("2m")),
            "the button's default: what is left, even below the minimum"
        );
        assert_eq!(
            p.extension_for(near_max, Some(d("1m"))),
            Err(Refusal::ExtensionTooShort {
                asked: d("1m"),
                min: d("2m")
            })
        );
    }

    fn d(s: &str) -> GrantDuration {
        GrantDuration::parse(s).unwrap()
    }

    #[test]
    fn durations_outside_the_bounds_are_refused_with_the_bounds_named() {
        let p = Policy::default();
        assert!(p.check_duration(d("20m")).is_ok());
        assert!(p.check_duration(d("5m")).is_ok());
        assert!(p.check_duration(d("4h")).is_ok());
        assert_eq!(
            p.check_duration(d("5h")),
            Err(Refusal::DurationOutOfRange {
                requested: d("5h"),
                min: d("5m"),
                max: d("4h")
            })
        );
        assert!(p.check_duration(d("4m59s")).is_err());
    }

    #[test]
    fn a_reason_is_needed_only_when_policy_says_so() {
        let mut p = Policy::default();
        assert!(p.check_reason("").is_ok());
        p.require_reason = true;
        assert_eq!(p.check_reason("  "), Err(Refusal::ReasonRequired));
        assert!(p.check_reason("printer").is_ok());
    }

    #[test]
    fn a_reason_longer_than_the_policy_allows_is_refused_with_the_limit_named() {
        let mut p = Policy::default();
        assert_eq!(p.max_reason_length, 500);
        assert!(p.check_reason(&"a".repeat(500)).is_ok());
        assert_eq!(
            p.check_reason(&"a".repeat(501)),
            Err(Refusal::ReasonTooLong {
                length: 501,
                max: 500
            })
        );
        // Characters, not bytes: 500 accented letters are 1000 bytes.
        assert!(p.check_reason(&"é".repeat(500)).is_ok());
        p.max_reason_length = 10_000;
        assert!(p.check_reason(&"a".repeat(2900)).is_ok());
    }

    #[test]
    fn a_person_at_either_limit_is_refused_with_that_limit_named() {
        let p = Policy::default();
        assert_eq!((p.max_open_requests, p.max_requests_per_hour), (3, 10));
        assert!(p.check_volume(2, 9).is_ok());
        assert_eq!(
            p.check_volume(3, 3),
            Err(Refusal::TooManyOpenRequests { open: 3, max: 3 })
        );
        assert_eq!(
            p.check_volume(0, 10),
            Err(Refusal::TooManyRequestsPerHour { max: 10 })
        );
    }

    #[test]
    fn reminders_shorter_than_the_grant_are_kept_longest_first() {
        let p = Policy {
            reminders: vec![d("1m"), d("15m"), d("5m")],
            ..Policy::default()
        };
        assert_eq!(p.reminders_for(d("10m")), vec![d("5m"), d("1m")]);
        assert_eq!(p.reminders_for(d("1m")), vec![]);
    }

    #[test]
    fn approvers_are_reminded_halfway_by_default_never_at_or_after_the_timeout() {
        let p = Policy::default();
        assert_eq!(p.approval_timeout, d("30m"));
        assert_eq!(p.approval_reminder_after(), Some(d("15m")));
        let after = |reminder| {
            Policy {
                approval_reminder: reminder,
                ..Policy::default()
            }
            .approval_reminder_after()
        };
        assert_eq!(after(ApprovalReminder::Off), None);
        assert_eq!(after(ApprovalReminder::After(d("10m"))), Some(d("10m")));
        assert_eq!(after(ApprovalReminder::After(d("30m"))), None);
    }
}
