//! Inbound Bot Framework tokens: what `BotFrameworkAuth::verify` accepts and
//! refuses, against the fake Bot Framework's OpenID metadata and keys, with
//! a manual clock so expiry is tested without waiting.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{TimeZone, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tempadmin::engine::clock::ManualClock;
use tempadmin::engine::ports::Clock;
use tempadmin::sim::teams::{FakeBotFramework, CHANNEL_ID};
use tempadmin::teams::auth::{AuthError, BotFrameworkAuth};
use tempadmin::teams::http_client;

struct Setup {
    fake: FakeBotFramework,
    clock: Arc<ManualClock>,
    auth: BotFrameworkAuth,
}

async fn setup() -> Setup {
    let fake = FakeBotFramework::start().await;
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap(),
    ));
    let settings = fake.settings();
    let auth = BotFrameworkAuth::new(&settings, http_client(settings.timeout), clock.clone());
    Setup { fake, clock, auth }
}

impl Setup {
    fn service_url(&self) -> String {
        self.fake.service_url()
    }

    fn valid_header(&self) -> String {
        format!(
            "Bearer {}",
            self.fake
                .sign(&self.fake.claims(self.clock.now(), &self.service_url()))
        )
    }

    async fn verify(&self, header: &str) -> Result<tempadmin::teams::auth::Claims, AuthError> {
        self.auth
            .verify(Some(header), &self.service_url(), CHANNEL_ID)
            .await
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn a_token_signed_by_the_bot_framework_for_this_activity_is_accepted() {
    let s = setup().await;
    let claims = s.verify(&s.valid_header()).await.expect("a valid token");
    assert_eq!(claims.app_id, tempadmin::sim::teams::APP_ID);
    assert_eq!(claims.service_url, s.service_url());
    assert_eq!(claims.key_id, s.fake.signing_kid());
}

#[tokio::test]
async fn keys_are_fetched_once_and_then_served_from_the_cache() {
    let s = setup().await;
    for _ in 0..3 {
        s.verify(&s.valid_header()).await.unwrap();
    }
    assert_eq!(s.fake.key_fetches(), 1);
}

#[tokio::test]
async fn a_token_for_another_app_is_refused() {
    let s = setup().await;
    let mut claims = s.fake.claims(s.clock.now(), &s.service_url());
    claims.aud = "11111111-1111-1111-1111-111111111111".into();
    let header = format!("Bearer {}", s.fake.sign(&claims));
    assert_eq!(s.verify(&header).await, Err(AuthError::Audience));
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    let s = setup().await;
    let mut claims = s.fake.claims(s.clock.now(), &s.service_url());
    claims.iss = "https://sts.windows.net/72f988bf-0000-4000-8000-0000000000aa/".into();
    let header = format!("Bearer {}", s.fake.sign(&claims));
    assert_eq!(s.verify(&header).await, Err(AuthError::Issuer));
}

#[tokio::test]
async fn a_token_is_refused_once_it_expired_more_than_five_minutes_ago() {
    let s = setup().await;
    let header = s.valid_header(); // exp = now + 300 s
    s.clock.advance(Duration::from_secs(300 + 299));
    assert!(s.verify(&header).await.is_ok(), "within the skew");
    s.clock.advance(Duration::from_secs(2));
    assert_eq!(s.verify(&header).await, Err(AuthError::Expired));
}

#[tokio::test]
async fn a_token_that_is_not_valid_yet_is_refused_beyond_the_skew() {
    let s = setup().await;
    let now = s.clock.now().timestamp();
    let mut claims = s.fake.claims(s.clock.now(), &s.service_url());
    claims.nbf = now + 301;
    claims.exp = now + 900;
    let header = format!("Bearer {}", s.fake.sign(&claims));
    assert_eq!(s.verify(&header).await, Err(AuthError::NotYetValid));
    claims.nbf = now + 299;
    let header = format!("Bearer {}", s.fake.sign(&claims));
    assert!(s.verify(&header).await.is_ok(), "within the skew");
}

#[tokio::test]
async fn an_unknown_kid_makes_the_keys_be_fetched_again_and_the_new_key_is_accepted() {
    let s = setup().await;
    s.verify(&s.valid_header()).await.unwrap();
    let new_kid = s.fake.rotate_key().await;
    s.clock.advance(Duration::from_secs(60));
    let claims = s.verify(&s.valid_header()).await.expect("the rotated key");
    assert_eq!(claims.key_id, new_kid);
    assert_eq!(s.fake.key_fetches(), 2);
}

#[tokio::test]
async fn unknown_kids_cause_at_most_one_fetch_a_minute_even_in_a_burst() {
    let s = setup().await;
    s.verify(&s.valid_header()).await.unwrap();
    let now = s.clock.now();
    let mut forged = s.fake.claims(now, &s.service_url());
    let unpublished = s.fake.add_key(&[CHANNEL_ID]).await;
    forged.kid = Some(unpublished.clone());
    let token = format!("Bearer {}", s.fake.sign(&forged));
    s.fake.retire_key(&unpublished);
    s.clock.advance(Duration::from_secs(60));

    let burst: Vec<_> = (0..8).map(|_| s.verify(&token)).collect();
    let results = futures::future::join_all(burst).await;
    assert!(results.iter().all(|r| *r == Err(AuthError::UnknownKey)));
    assert_eq!(
        s.fake.key_fetches(),
        2,
        "one initial fetch, one for the whole burst"
    );

    s.clock.advance(Duration::from_secs(59));
    assert_eq!(s.verify(&token).await, Err(AuthError::UnknownKey));
    assert_eq!(s.fake.key_fetches(), 2, "not again within the minute");
    s.clock.advance(Duration::from_secs(1));
    let _ = s.verify(&token).await;
    assert_eq!(s.fake.key_fetches(), 3, "again once the minute is over");
}

#[tokio::test]
async fn a_token_minted_for_another_service_url_is_refused() {
    let s = setup().await;
    let claims = s
        .fake
        .claims(s.clock.now(), "https://smba.trafficmanager.net/amer/");
    let header = format!("Bearer {}", s.fake.sign(&claims));
    assert_eq!(s.verify(&header).await, Err(AuthError::ServiceUrl));
}

#[tokio::test]
async fn a_token_whose_service_url_differs_only_by_a_trailing_slash_is_accepted() {
    let s = setup().await;
    let with_slash = s.service_url();
    let without = with_slash.trim_end_matches('/').to_owned();
    for (claimed, activity) in [(&without, &with_slash), (&with_slash, &without)] {
        let claims = s.fake.claims(s.clock.now(), claimed);
        let header = format!("Bearer {}", s.fake.sign(&claims));
        let verified = s
            .auth
            .verify(Some(&header), activity, CHANNEL_ID)
            .await
            .expect("the same service URL");
        assert_eq!(&verified.service_url, activity);
    }
    let claims = s.fake.claims(s.clock.now(), &format!("{without}/x/"));
    let header = format!("Bearer {}", s.fake.sign(&claims));
    assert_eq!(s.verify(&header).await, Err(AuthError::ServiceUrl));
}

#[tokio::test]
async fn a_token_for_our_app_id_in_upper_case_is_accepted() {
    let s = setup().await;
    let mut claims = s.fake.claims(s.clock.now(), &s.service_url());
    claims.aud = claims.aud.to_ascii_uppercase();
    let header = format!("Bearer {}", s.fake.sign(&claims));
    assert!(s.verify(&header).await.is_ok());
}

#[tokio::test]
async fn an_unsigned_token_with_alg_none_is_refused() {
    let s = setup().await;
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = serde_json::to_vec(&s.fake.claims(s.clock.now(), &s.service_url())).unwrap();
    let token = format!("Bearer {header}.{}.", b64(&claims));
    // An empty signature still has three parts.
    assert_eq!(
        s.verify(&token).await,
        Err(AuthError::Algorithm("none".into()))
    );
    assert_eq!(
        s.fake.key_fetches(),
        0,
        "refused before any key is looked up"
    );
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_public_key_is_refused() {
    let s = setup().await;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(s.fake.signing_kid());
    let claims = s.fake.claims(s.clock.now(), &s.service_url());
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(&s.fake.public_key_der()),
    )
    .unwrap();
    assert_eq!(
        s.verify(&format!("Bearer {token}")).await,
        Err(AuthError::Algorithm("HS256".into()))
    );
}

#[tokio::test]
async fn a_key_that_does_not_endorse_the_channel_is_refused() {
    let s = setup().await;
    let webchat_only = s.fake.add_key(&["webchat"]).await;
    let mut claims = s.fake.claims(s.clock.now(), &s.service_url());
    claims.kid = Some(webchat_only);
    let header = format!("Bearer {}", s.fake.sign(&claims));
    assert_eq!(
        s.verify(&header).await,
        Err(AuthError::Endorsement(CHANNEL_ID.into()))
    );
    // And a valid msteams token names its channel: another channel id fails.
    let ok = s.valid_header();
    assert_eq!(
        s.auth.verify(Some(&ok), &s.service_url(), "slack").await,
        Err(AuthError::Endorsement("slack".into()))
    );
}

#[tokio::test]
async fn a_token_with_a_tampered_payload_is_refused() {
    let s = setup().await;
    let header = s.valid_header();
    let parts: Vec<&str> = header.trim_start_matches("Bearer ").split('.').collect();
    let mut claims = s.fake.claims(s.clock.now(), &s.service_url());
    claims.exp += 3600;
    let forged = format!(
        "Bearer {}.{}.{}",
        parts[0],
        b64(&serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    assert_eq!(s.verify(&forged).await, Err(AuthError::BadSignature));
}

#[tokio::test]
async fn a_missing_or_garbled_header_is_refused() {
    let s = setup().await;
    assert_eq!(
        s.auth.verify(None, &s.service_url(), CHANNEL_ID).await,
        Err(AuthError::MissingHeader)
    );
    for garbled in [
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "Bearer ...",
    ] {
        assert_eq!(
            s.verify(garbled).await,
            Err(AuthError::Malformed),
            "{garbled:?}"
        );
    }
    let token = s.valid_header();
    assert!(s
        .verify(&token.replacen("Bearer ", "Token ", 1))
        .await
        .is_err());
}

#[tokio::test]
async fn refusals_never_quote_the_token() {
    let s = setup().await;
    let mut claims = s.fake.claims(s.clock.now(), "https://elsewhere.example/");
    claims.aud = "someone-else".into();
    let header = format!("Bearer {}", s.fake.sign(&claims));
    let error = s.verify(&header).await.unwrap_err().to_string();
    let token = header.trim_start_matches("Bearer ");
    for part in token.split('.') {
        assert!(!error.contains(part), "{error}");
    }
}
