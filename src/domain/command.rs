//! What a person typed after `/tempadmin`, parsed into a `Command`.
//! Grammar: `DURATION [HOSTNAME] [REASON…]`, `extend [DURATION]`, `status`,
//! `revoke`, `help`.

use super::duration::{DurationParseError, GrantDuration};

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Show how to use the bot (also the answer to anything not understood).
    Help,
    /// Show the person's open and active requests.
    Status,
    /// End the person's active elevation, or withdraw a pending request.
    Revoke,
    /// Ask for more time on the person's active grant (DESIGN flow 9);
    /// without a duration, the default extension ([`crate::domain::Policy::extension_for`]).
    Extend {
        /// How much more, when given.
        duration: Option<GrantDuration>,
    },
    /// Ask for admin rights. `words` follow the duration: the first may name a
    /// device; which one does is only known once the devices are looked up.
    Request {
        /// How long.
        duration: GrantDuration,
        /// Everything after the duration, split on white space.
        words: Vec<String>,
    },
}

impl Command {
    /// Parses the text of a slash command. A first word that is a number
    /// with or without a unit ([`meant_as_duration`]) is meant as a duration,
    /// so a malformed one is an error that names it rather than help.
    pub fn parse(text: &str) -> Result<Self, DurationParseError> {
        let mut words = text.split_whitespace();
        let Some(first) = words.next() else {
            return Ok(Self::Help);
        };
        match first.to_ascii_lowercase().as_str() {
            "help" => return Ok(Self::Help),
            "status" => return Ok(Self::Status),
            "revoke" | "end" => return Ok(Self::Revoke),
            "extend" => {
                let duration = words.next().map(GrantDuration::parse).transpose()?;
                return Ok(Self::Extend { duration });
            }
            _ => {}
        }
        if !meant_as_duration(first) {
            return Ok(Self::Help);
        }
        let duration = GrantDuration::parse(first)?;
        Ok(Self::Request {
            duration,
            words: words.map(str::to_string).collect(),
        })
    }
}

/// Whether a first word was meant as a duration: it starts with a numeral
/// (any script's, so full-width `２０m` counts), perhaps after one sign
/// (`-5m`, `+5m`, and the `−`/`–` that typing aids put in place of `-`) and
/// one decimal mark (`.5h`, `,5h`). Such a word is named back to the person
/// as "not a duration" with examples, since they were plainly trying; words
/// without a number (`fix`, `--help`, `-`) get the general help instead.
fn meant_as_duration(word: &str) -> bool {
    let rest = word
        .strip_prefix(['-', '+', '\u{2212}', '\u{2013}'])
        .unwrap_or(word);
    let rest = rest.strip_prefix(['.', ',']).unwrap_or(rest);
    rest.starts_with(char::is_numeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_keeps_the_words_after_the_duration() {
        assert_eq!(
            Command::parse("20m install printer driver").unwrap(),
            Command::Request {
                duration: GrantDuration::parse("20m").unwrap(),
                words: vec!["install".into(), "printer".into(), "driver".into()],
            }
        );
    }

    #[test]
    fn keywords_and_unknown_text_are_recognised() {
        assert_eq!(Command::parse("").unwrap(), Command::Help);
        assert_eq!(Command::parse("  HELP ").unwrap(), Command::Help);
        assert_eq!(Command::parse("status").unwrap(), Command::Status);
        assert_eq!(Command::parse("revoke").unwrap(), Command::Revoke);
        assert_eq!(
            Command::parse("please give me admin").unwrap(),
            Command::Help
        );
    }

    #[test]
    fn extend_takes_an_optional_duration() {
        assert_eq!(
            Command::parse("extend 15m").unwrap(),
            Command::Extend {
                duration: Some(GrantDuration::parse("15m").unwrap())
            }
        );
        assert_eq!(
            Command::parse("Extend").unwrap(),
            Command::Extend { duration: None }
        );
        assert!(Command::parse("extend soon").is_err());
    }

    #[test]
    fn a_malformed_duration_is_an_error_not_help() {
        assert!(Command::parse("20x printer").is_err());
        assert!(Command::parse("0m").is_err());
    }

    #[test]
    fn near_miss_durations_are_named_not_answered_with_help() {
        for (text, typed) in [
            ("-5m fix", "-5m"),
            ("+5m fix", "+5m"),
            ("−5m fix", "−5m"),
            ("20 fix", "20"),
            ("20mins", "20mins"),
            ("20 mins fix", "20"),
            ("1.5h", "1.5h"),
            (".5h fix", ".5h"),
            ("-.5h", "-.5h"),
            ("２０m fix", "２０m"),
        ] {
            assert_eq!(
                Command::parse(text),
                Err(DurationParseError(typed.into())),
                "{text}"
            );
        }
    }

    #[test]
    fn words_and_signs_without_a_number_still_get_help() {
        for text in [
            "fix the printer",
            "twenty minutes",
            "-",
            "- 5m",
            "--help",
            "-v",
            "+",
            "...",
            "m20",
            "h",
        ] {
            assert_eq!(Command::parse(text), Ok(Command::Help), "{text}");
        }
    }
}
