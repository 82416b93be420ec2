//! `GrantDuration`: how long an elevation lasts, parsed once from the
//! requester's text (`90s`, `20m`, `1h`, `1h30m`).

use std::fmt;
use std::time::Duration;

/// A positive length of time written with `h`, `m` and `s` units, largest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantDuration(u64);

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a duration; write it like 90s, 20m, 1h or 1h30m")]
pub struct DurationParseError(pub String);

impl GrantDuration {
    /// Longest duration the parser accepts (a week), so arithmetic never overflows.
    pub const MAX_SECS: u64 = 7 * 24 * 3600;

    /// Parses `90s`, `20m`, `1h`, `1h30m`, `1h30m15s` (case-insensitive).
    /// Units must appear at most once each, in the order h, m, s; zero is refused.
    pub fn parse(text: &str) -> Result<Self, DurationParseError> {
        let err = || DurationParseError(text.to_string());
        let lower = text.trim().to_ascii_lowercase();
        if lower.is_empty() {
            return Err(err());
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        let mut last_rank = 0;
        for c in lower.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let (rank, factor) = match c {
                'h' => (1, 3600),
                'm' => (2, 60),
                's' => (3, 1),
                _ => return Err(err()),
            };
            if digits.is_empty() || digits.len() > 6 || rank <= last_rank {
                return Err(err());
            }
            let n: u64 = digits.parse().map_err(|_| err())?;
            total += n * factor;
            digits.clear();
            last_rank = rank;
        }
        if !digits.is_empty() || total == 0 || total > Self::MAX_SECS {
            return Err(err());
        }
        Ok(Self(total))
    }

    /// The duration in whole seconds.
    pub fn from_secs(secs: u64) -> Self {
        Self(secs.clamp(1, Self::MAX_SECS))
    }

    /// Whole seconds.
    pub fn as_secs(self) -> u64 {
        self.0
    }

    /// As a std duration.
    pub fn as_std(self) -> Duration {
        Duration::from_secs(self.0)
    }

    /// As a chrono duration, for timestamp arithmetic.
    pub fn as_chrono(self) -> chrono::TimeDelta {
        chrono::TimeDelta::seconds(self.0 as i64)
    }
}

impl fmt::Display for GrantDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m, s) = (self.0 / 3600, self.0 % 3600 / 60, self.0 % 60);
        let mut out = String::new();
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if m > 0 {
            out.push_str(&format!("{m}m"));
        }
        if s > 0 || out.is_empty() {
            out.push_str(&format!("{s}s"));
        }
        f.write_str(&out)
    }
}

impl<'de> serde::Deserialize<'de> for GrantDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for GrantDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_documented_form() {
        assert_eq!(GrantDuration::parse("90s").unwrap().as_secs(), 90);
        assert_eq!(GrantDuration::parse("20m").unwrap().as_secs(), 1200);
        assert_eq!(GrantDuration::parse("1h").unwrap().as_secs(), 3600);
        assert_eq!(GrantDuration::parse("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(GrantDuration::parse("1H5m10S").unwrap().as_secs(), 3910);
    }

    #[test]
    fn refuses_zero_garbage_and_units_out_of_order() {
        for bad in [
            "",
            "0m",
            "20",
            "m",
            "20x",
            "1m1h",
            "1h1h",
            "-5m",
            "+5m",
            "20mins",
            "２０m",
            "1.5h",
            "20 m",
            "999999999h",
        ] {
            assert!(GrantDuration::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn displays_compactly_and_round_trips() {
        for text in ["90s", "20m", "1h", "1h30m", "2h0m5s"] {
            let d = GrantDuration::parse(text).unwrap();
            assert_eq!(GrantDuration::parse(&d.to_string()).unwrap(), d);
        }
        assert_eq!(GrantDuration::parse("90s").unwrap().to_string(), "1m30s");
        assert_eq!(GrantDuration::parse("1h30m").unwrap().to_string(), "1h30m");
    }

    use proptest::prelude::*;

    proptest! {
        /// Whatever a duration is, its display parses back to it.
        #[test]
        fn every_duration_displays_as_text_that_parses_back_to_it(
            secs in 1..=GrantDuration::MAX_SECS,
        ) {
            let d = GrantDuration::from_secs(secs);
            prop_assert_eq!(d.as_secs(), secs);
            prop_assert_eq!(GrantDuration::parse(&d.to_string()), Ok(d));
        }

        /// `XhYmZs` in any case, with any unit left out, means what it says
        /// whenever it is between a second and a week.
        #[test]
        fn hours_minutes_and_seconds_add_up(
            h in proptest::option::of(0u64..200),
            m in proptest::option::of(0u64..6000),
            s in proptest::option::of(0u64..100_000),
            upper in any::<bool>(),
        ) {
            let mut text = String::new();
            for (n, unit) in [(h, 'h'), (m, 'm'), (s, 's')] {
                if let Some(n) = n {
                    text.push_str(&format!("{n}{unit}"));
                }
            }
            if upper {
                text = text.to_uppercase();
            }
            let total = h.unwrap_or(0) * 3600 + m.unwrap_or(0) * 60 + s.unwrap_or(0);
            let valid = !text.is_empty() && (1..=GrantDuration::MAX_SECS).contains(&total);
            match GrantDuration::parse(&text) {
                Ok(d) => prop_assert!(valid && d.as_secs() == total, "{} gave {}", text, d),
                Err(_) => prop_assert!(!valid, "{} refused", text),
            }
        }

        /// Any text at all: either refused, or a duration within the
        /// bounds whose display is a fixed point.
        #[test]
        fn anything_that_parses_is_within_bounds_and_canonical(text in "\\PC{0,12}|[0-9hmsHMS]{1,12}") {
            if let Ok(d) = GrantDuration::parse(&text) {
                prop_assert!((1..=GrantDuration::MAX_SECS).contains(&d.as_secs()));
                let shown = d.to_string();
                prop_assert_eq!(GrantDuration::parse(&shown).unwrap().to_string(), shown);
            }
        }

        /// `from_secs` clamps, so no out-of-range duration can be made.
        #[test]
        fn from_secs_never_leaves_the_bounds(secs in any::<u64>()) {
            let d = GrantDuration::from_secs(secs);
            prop_assert!((1..=GrantDuration::MAX_SECS).contains(&d.as_secs()));
        }

        /// The policy accepts exactly the durations between its bounds.
        #[test]
        fn the_policy_accepts_exactly_what_lies_between_its_bounds(
            a in 1..=GrantDuration::MAX_SECS,
            b in 1..=GrantDuration::MAX_SECS,
            asked in 1..=GrantDuration::MAX_SECS,
        ) {
            let policy = crate::domain::Policy {
                min_duration: GrantDuration::from_secs(a.min(b)),
                max_duration: GrantDuration::from_secs(a.max(b)),
                ..Default::default()
            };
            let asked = GrantDuration::from_secs(asked);
            prop_assert_eq!(
                policy.check_duration(asked).is_ok(),
                policy.min_duration <= asked && asked <= policy.max_duration
            );
        }
    }
}
