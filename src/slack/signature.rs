//! Slack request signing (`v0`): HMAC-SHA256 over `v0:{timestamp}:{raw body}`
//! with the app's signing secret, compared in constant time, and a timestamp
//! that must lie within five minutes of now either way (DESIGN 5).
//!
//! slack-morphism has a verifier too, but it reads the system clock and
//! offers no way to pass "now"; ours takes the time from the `Clock` so the
//! staleness rule is testable.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// The largest allowed distance between Slack's timestamp and our clock.
pub const MAX_SKEW_SECS: i64 = 300;

/// The first instant at which a request signed at `sent` (Unix seconds) is
/// refused as stale. [`SigningSecret::verify`] compares whole seconds of
/// "now", so the request is still accepted through the whole 300th second
/// after `sent`; whatever remembers a delivery must keep it until this
/// instant, not merely until `sent + 300 s`.
pub fn stale_from(sent: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(sent.checked_add(MAX_SKEW_SECS + 1)?, 0)
}

/// What makes one signed request unique, however its signature is spelled
/// (hex digits are accepted in either case): its signed timestamp and a
/// digest of its body. A copy of the request, replayed within the window,
/// has the same key.
pub fn delivery_key(sent: i64, body: &[u8]) -> String {
    use sha2::Digest;
    format!("slack:{sent}:{}", hex::encode(Sha256::digest(body)))
}

/// Why a request's signature was not accepted. The caller answers 401 to
/// all of them alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header is missing.
    #[error("signature headers missing")]
    Missing,
    /// The timestamp is not a number or the signature not `v0=` hex.
    #[error("signature headers malformed")]
    Malformed,
    /// The timestamp is more than five minutes away from now.
    #[error("request timestamp too old or in the future")]
    Stale,
    /// The signature does not match.
    #[error("signature mismatch")]
    Mismatch,
}

/// The app's signing secret.
#[derive(Clone)]
pub struct SigningSecret(SecretString);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

impl SigningSecret {
    /// Wraps the secret.
    pub fn new(secret: SecretString) -> Self {
        Self(secret)
    }

    fn mac(&self, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"v0:");
        mac.update(timestamp.as_bytes());
        mac.update(b":");
        mac.update(body);
        mac
    }

    /// Checks the `X-Slack-Request-Timestamp` and `X-Slack-Signature`
    /// headers against the raw body at time `now_unix`.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now_unix: i64,
    ) -> Result<(), SignatureError> {
        let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
            return Err(SignatureError::Missing);
        };
        let sent: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| SignatureError::Malformed)?;
        let hex_part = signature
            .strip_prefix("v0=")
            .ok_or(SignatureError::Malformed)?;
        let expected = hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?;
        // Checked before the timestamp so a forged request learns nothing
        // about our clock.
        self.mac(timestamp, body)
            .verify_slice(&expected)
            .map_err(|_| SignatureError::Mismatch)?;
        if (now_unix - sent).abs() > MAX_SKEW_SECS {
            return Err(SignatureError::Stale);
        }
        Ok(())
    }

    /// The `X-Slack-Signature` value Slack would send (for tests, the demo
    /// and the benchmark, which play Slack).
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        let digest = self
            .mac(&timestamp.to_string(), body)
            .finalize()
            .into_bytes();
        format!("v0={}", hex::encode(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's documented example ("Verifying requests from Slack").
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn secret() -> SigningSecret {
        SigningSecret::new(SECRET.to_string().into())
    }

    #[test]
    fn slacks_documented_example_verifies() {
        let now = TIMESTAMP.parse::<i64>().unwrap() + 10;
        assert_eq!(
            secret().verify(Some(TIMESTAMP), Some(SIGNATURE), BODY.as_bytes(), now),
            Ok(())
        );
        assert_eq!(
            secret().sign(TIMESTAMP.parse().unwrap(), BODY.as_bytes()),
            SIGNATURE
        );
    }

    #[test]
    fn a_changed_body_or_wrong_secret_is_a_mismatch() {
        let now = TIMESTAMP.parse::<i64>().unwrap();
        let tampered = BODY.replace("roadrunner", "wile_e");
        assert_eq!(
            secret().verify(Some(TIMESTAMP), Some(SIGNATURE), tampered.as_bytes(), now),
            Err(SignatureError::Mismatch)
        );
        let other = SigningSecret::new("another".to_string().into());
        assert_eq!(
            other.verify(Some(TIMESTAMP), Some(SIGNATURE), BODY.as_bytes(), now),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn timestamps_more_than_five_minutes_away_either_way_are_stale() {
        let sent: i64 = TIMESTAMP.parse().unwrap();
        let check = |now| secret().verify(Some(TIMESTAMP), Some(SIGNATURE), BODY.as_bytes(), now);
        assert_eq!(check(sent + 300), Ok(()));
        assert_eq!(check(sent - 300), Ok(()));
        assert_eq!(check(sent + 301), Err(SignatureError::Stale));
        assert_eq!(check(sent - 301), Err(SignatureError::Stale));
    }

    #[test]
    fn a_delivery_is_remembered_for_exactly_as_long_as_it_is_accepted() {
        let sent: i64 = TIMESTAMP.parse().unwrap();
        let until = stale_from(sent).unwrap();
        let check = |now: chrono::DateTime<chrono::Utc>| {
            secret().verify(
                Some(TIMESTAMP),
                Some(SIGNATURE),
                BODY.as_bytes(),
                now.timestamp(),
            )
        };
        let just_before = until - chrono::TimeDelta::milliseconds(1);
        assert_eq!(check(just_before), Ok(()), "accepted 300.999 s after");
        assert_eq!(check(until), Err(SignatureError::Stale));
    }

    #[test]
    fn the_delivery_key_ignores_how_the_signature_is_spelled() {
        let sent: i64 = TIMESTAMP.parse().unwrap();
        let upper = format!("v0={}", SIGNATURE["v0=".len()..].to_uppercase());
        assert_eq!(
            secret().verify(Some(TIMESTAMP), Some(&upper), BODY.as_bytes(), sent),
            Ok(()),
            "hex digits verify in either case"
        );
        // The key is made of what the signature covers, not the signature.
        assert_eq!(
            delivery_key(sent, BODY.as_bytes()),
            delivery_key(sent, BODY.as_bytes())
        );
        assert_ne!(
            delivery_key(sent, BODY.as_bytes()),
            delivery_key(sent + 1, BODY.as_bytes())
        );
        assert_ne!(
            delivery_key(sent, BODY.as_bytes()),
            delivery_key(sent, b"text=other")
        );
    }

    #[test]
    fn missing_or_malformed_headers_are_refused() {
        let now = TIMESTAMP.parse::<i64>().unwrap();
        let s = secret();
        assert_eq!(
            s.verify(None, Some(SIGNATURE), b"", now),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            s.verify(Some(TIMESTAMP), None, b"", now),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            s.verify(Some("soon"), Some(SIGNATURE), b"", now),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            s.verify(Some(TIMESTAMP), Some("v1=abc"), b"", now),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            s.verify(Some(TIMESTAMP), Some("v0=zz"), b"", now),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        assert!(!format!("{:?}", secret()).contains(SECRET));
    }
}
