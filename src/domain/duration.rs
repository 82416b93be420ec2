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
    const MAX_SECS: u64 = 7 * 24 * 3600;

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
}
