//! Identifier newtypes. Each is parsed once where it enters the program, so
//! code past the edge never re-validates an id or confuses one kind for another.

use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an id that came from a trusted source (our database, a
            /// verified request, an API answer).
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// The chat service a person uses and a request lives on, from its first
/// command to its last message.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// Slack.
    Slack,
    /// Microsoft Teams (Bot Framework).
    Teams,
}

impl Platform {
    /// Every platform.
    pub const ALL: [Platform; 2] = [Self::Slack, Self::Teams];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Teams => "teams",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person on a chat platform: a Slack user id (`U…`/`W…`), or a Teams
/// user id (`29:…`). Two people are the same only on the same platform.
/// Stored in the outbox as `platform:id`; a bare id (written before Teams
/// existed) reads back as a Slack id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChatUserId {
    platform: Platform,
    id: String,
}

impl ChatUserId {
    /// A person on `platform`, from a trusted source (our database, a
    /// verified request, an API answer).
    pub fn new(platform: Platform, id: impl Into<String>) -> Self {
        Self {
            platform,
            id: id.into(),
        }
    }

    /// A Slack user.
    pub fn slack(id: impl Into<String>) -> Self {
        Self::new(Platform::Slack, id)
    }

    /// A Teams user.
    pub fn teams(id: impl Into<String>) -> Self {
        Self::new(Platform::Teams, id)
    }

    /// The platform the person is on.
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The platform's own id, as text.
    pub fn as_str(&self) -> &str {
        &self.id
    }
}

/// The platform's own id (what a mention needs).
impl fmt::Display for ChatUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl serde::Serialize for ChatUserId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}:{}", self.platform, self.id))
    }
}

impl<'de> serde::Deserialize<'de> for ChatUserId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(match text.split_once(':') {
            Some((platform, id)) => match Platform::parse(platform) {
                Some(platform) => Self::new(platform, id),
                None => Self::slack(text),
            },
            None => Self::slack(text),
        })
    }
}
string_id!(
    /// A JumpCloud user (`_id` of a system user).
    JcUserId
);
string_id!(
    /// A JumpCloud device (`_id` of a system).
    SystemId
);

/// The id of one access request, shown in buttons and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    const ALPHABET: &'static [u8] = b"abcdefghijkmnpqrstuvwxyz23456789";

    /// A fresh random id such as `ta-7kq2m9xw4d`: short enough to read aloud,
    /// random enough (50 bits) that nobody guesses another person's.
    pub fn generate() -> Self {
        let mut id = String::from("ta-");
        for _ in 0..10 {
            let i = rand::random::<u32>() as usize % Self::ALPHABET.len();
            id.push(Self::ALPHABET[i] as char);
        }
        Self(id)
    }

    /// Parses an id received from outside (a button value); `None` if it is
    /// not of our shape, so junk never reaches a query.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix("ta-")?;
        (rest.len() == 10 && rest.bytes().all(|b| Self::ALPHABET.contains(&b)))
            .then(|| Self(text.to_string()))
    }

    /// Wraps an id read back from our own database.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, as found in a chat profile and matched against JumpCloud.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain` with no spaces; keeps the case as given.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (local, domain) = text.split_once('@')?;
        let ok = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !text.chars().any(char::is_whitespace)
            && !domain.contains('@');
        ok.then(|| Self(text.to_string()))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_keeps_their_platform_through_the_outbox_and_old_rows_read_as_slack() {
        for person in [ChatUserId::slack("U0ADA"), ChatUserId::teams("29:1a-b_c")] {
            let json = serde_json::to_string(&person).unwrap();
            assert_eq!(serde_json::from_str::<ChatUserId>(&json).unwrap(), person);
        }
        let old: ChatUserId = serde_json::from_str("\"U0ADA\"").unwrap();
        assert_eq!(old, ChatUserId::slack("U0ADA"));
        assert_ne!(ChatUserId::slack("x"), ChatUserId::teams("x"));
        assert_eq!(ChatUserId::teams("29:x").to_string(), "29:x");
    }

    #[test]
    fn generated_request_ids_parse_back_and_differ() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        assert_eq!(RequestId::parse(a.as_str()), Some(a));
    }

    #[test]
    fn foreign_request_ids_are_refused() {
        for bad in [
            "",
            "ta-",
            "ta-123",
            "x-abcdefghij",
            "ta-ABCDEFGHIJ",
            "ta-abcdefghij'--",
        ] {
            assert_eq!(RequestId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert!(Email::parse("ada@example.com").is_some());
        for bad in [
            "ada",
            "@example.com",
            "ada@example",
            "ada@.com",
            "a b@example.com",
            "a@b@c.com",
        ] {
            assert!(Email::parse(bad).is_none(), "{bad}");
        }
    }
}
