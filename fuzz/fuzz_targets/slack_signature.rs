//! The Slack signature check (`slack::signature`): any headers and body get
//! an answer, never a panic; a body signed with the secret is accepted
//! exactly when its timestamp is within five minutes; and a signature never
//! carries over to another body or timestamp.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use tempadmin::slack::signature::{SignatureError, SigningSecret, MAX_SKEW_SECS};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    timestamp: Option<&'a str>,
    signature: Option<&'a str>,
    body: &'a [u8],
    now: u32,
    skew: i16,
}

fuzz_target!(|input: Input<'_>| {
    let secret = SigningSecret::new(SecretString::from("8f742231b10e8888abcd99yyyzzz85a5"));
    let now = 1_500_000_000 + i64::from(input.now);

    // Whatever an attacker sends.
    let answer = secret.verify(input.timestamp, input.signature, input.body, now);
    if answer.is_ok() {
        let sent: i64 = input.timestamp.unwrap().trim().parse().unwrap();
        assert!((now - sent).abs() <= MAX_SKEW_SECS);
        if input.timestamp == Some(sent.to_string().as_str()) {
            let ours = secret.sign(sent, input.body);
            assert!(input.signature.unwrap().eq_ignore_ascii_case(&ours));
        }
    }

    // What Slack sends, `skew` seconds away from our clock.
    let sent = now + i64::from(input.skew);
    let timestamp = sent.to_string();
    let signature = secret.sign(sent, input.body);
    let fresh = (now - sent).abs() <= MAX_SKEW_SECS;
    let answer = secret.verify(Some(&timestamp), Some(&signature), input.body, now);
    assert_eq!(answer.is_ok(), fresh, "{answer:?}");
    if !fresh {
        assert_eq!(answer, Err(SignatureError::Stale));
    }

    // The same signature over another body, or another timestamp.
    let mut other = input.body.to_vec();
    other.push(b'&');
    assert_eq!(
        secret.verify(Some(&timestamp), Some(&signature), &other, now),
        Err(SignatureError::Mismatch)
    );
    let later = (sent + 1).to_string();
    assert_eq!(
        secret.verify(Some(&later), Some(&signature), input.body, now),
        Err(SignatureError::Mismatch)
    );
});
