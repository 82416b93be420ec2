//! What a person typed after `/tempadmin`, parsed into a `Command`.
//! Grammar: `DURATION [HOSTNAME] [REASON…]`, `status`, `revoke`, `help`.

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
    /// Parses the text of a slash command. A first word that starts with a
    /// digit is meant as a duration, so a malformed one is an error rather
    /// than help.
    pub fn parse(text: &str) -> Result<Self, DurationParseError> {
        let mut words = text.split_whitespace();
        let Some(first) = words.next() else {
            return Ok(Self::Help);
        };
        match first.to_ascii_lowercase().as_str() {
            "help" => return Ok(Self::Help),
            "status" => return Ok(Self::Status),
            "revoke" | "end" => return Ok(Self::Revoke),
            _ => {}
        }
        if !first.starts_with(|c: char| c.is_ascii_digit()) {
            return Ok(Self::Help);
        }
        let duration = GrantDuration::parse(first)?;
        Ok(Self::Request {
            duration,
            words: words.map(str::to_string).collect(),
        })
    }
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
    fn a_malformed_duration_is_an_error_not_help() {
        assert!(Command::parse("20x printer").is_err());
        assert!(Command::parse("0m").is_err());
    }
}
