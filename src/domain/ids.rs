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

string_id!(
    /// A chat user: a Slack user id (`U…`/`W…`), later a Teams AAD object id.
    ChatUserId
);
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
