//! Inbound authentication: the Bot Framework JWT on every activity.
//!
//! The Bot Framework Service signs a token for each activity it posts to a
//! bot. [`BotFrameworkAuth::verify`] accepts it only when all of these hold,
//! as Microsoft's SDKs check them (botbuilder-js `ChannelValidation`,
//! `JwtTokenExtractor`, `OpenIdMetadata`):
//! - the header is `Bearer <JWT>` and the JWT's `alg` is RS256 (nothing else,
//!   so neither `none` nor an HMAC keyed with the public key gets through);
//! - its `kid` names an RSA key of the `jwks_uri` in the OpenID metadata, and
//!   the signature verifies with that key;
//! - the key's `endorsements` include the activity's `channelId` (we are
//!   stricter than the SDKs, which skip the check for a key without
//!   endorsements: a key that endorses nothing endorses no channel);
//! - `iss` is `https://api.botframework.com` and `aud` is our app id, in
//!   any case (app ids are GUIDs; the SDKs compare them as typed, which
//!   only locks out a bot whose id was configured in upper case);
//! - `exp` and `nbf` hold at the [`Clock`]'s now, with 5 minutes of skew;
//! - the `serviceurl` claim equals the activity's `serviceUrl` but for one
//!   trailing slash, so a token minted for one activity cannot send our
//!   replies elsewhere (botbuilder-js compares exactly, botbuilder-dotnet
//!   ignoring case; both bases join to the same connector address).
//!
//! Keys are cached. They are fetched again when they are a day old, or when
//! a token names a `kid` we do not know (keys rotate); such a refetch
//! happens at most once a minute, and a burst of unknown kids shares one.
//! A failed refresh keeps the keys we had.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{is_allowed_url, read_capped, TeamsSettings, BOT_FRAMEWORK_ISSUER};
use crate::domain::Timestamp;
use crate::engine::ports::Clock;
use crate::metrics::{Metrics, Outcome, Service};

/// The clock skew allowed on `exp` and `nbf`, as the Bot Framework SDKs allow.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// The least time between two fetches of the keys on an unknown `kid`.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(60);

/// How long fetched keys are trusted before they are fetched again
/// (the SDKs' default refresh interval).
pub const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// Why a request was not authenticated. Every variant means 401 and that
/// nothing may act on the activity. The messages name no token content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("no Authorization header")]
    MissingHeader,
    /// The header is not `Bearer <three base64url parts>`, or the header or
    /// claims are not the JSON they should be.
    #[error("the Authorization header is not a Bearer JWT")]
    Malformed,
    /// The token's `alg` is not RS256.
    #[error("token algorithm {0:?} is not RS256")]
    Algorithm(String),
    /// The token names no `kid`.
    #[error("the token names no signing key")]
    MissingKeyId,
    /// The `kid` is not among the published keys, even after a refetch.
    #[error("the token's signing key is not published by the Bot Framework")]
    UnknownKey,
    /// The keys could not be fetched and none are cached.
    #[error("the Bot Framework signing keys are unavailable: {0}")]
    KeysUnavailable(String),
    /// The signature does not verify with the named key.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// `iss` is not the Bot Framework.
    #[error("the token was not issued by the Bot Framework")]
    Issuer,
    /// `aud` is not our app id.
    #[error("the token is for another app")]
    Audience,
    /// `exp` has passed (beyond the skew), or is missing.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is still ahead (beyond the skew).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The `serviceurl` claim is missing or differs from the activity's.
    #[error("the token was issued for another service URL")]
    ServiceUrl,
    /// The signing key does not endorse the activity's channel.
    #[error("the signing key does not endorse channel {0:?}")]
    Endorsement(String),
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `aud`: our app id.
    pub app_id: String,
    /// `serviceurl`: the Bot Connector base that sent the activity, where
    /// replies to it go.
    pub service_url: String,
    /// `exp`.
    pub expires_at: Timestamp,
    /// The `kid` that signed it.
    pub key_id: String,
}

/// Verifies inbound Bot Framework tokens; one per process, shared.
pub struct BotFrameworkAuth {
    app_id: String,
    metadata_url: String,
    timeout: Duration,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    keys: RwLock<KeySet>,
    /// Held while fetching, so concurrent unknown kids share one fetch;
    /// holds when the last fetch was attempted.
    refresh: tokio::sync::Mutex<Option<Timestamp>>,
    /// Where each fetch of the metadata and keys is counted.
    metrics: Metrics,
}

impl std::fmt::Debug for BotFrameworkAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotFrameworkAuth")
            .field("app_id", &self.app_id)
            .field("metadata_url", &self.metadata_url)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct KeySet {
    keys: HashMap<String, Arc<SigningKey>>,
    fetched_at: Option<Timestamp>,
}

struct SigningKey {
    key: DecodingKey,
    endorsements: Vec<String>,
}

#[derive(Deserialize)]
struct OpenIdMetadata {
    jwks_uri: String,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
    #[serde(default)]
    endorsements: Vec<String>,
}

#[derive(Deserialize)]
struct JwtHeader {
    alg: Option<String>,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct RawClaims {
    iss: Option<String>,
    aud: Audience,
    exp: Option<i64>,
    nbf: Option<i64>,
    serviceurl: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl BotFrameworkAuth {
    /// A verifier for tokens addressed to `settings.app_id`, with keys from
    /// `settings.openid_metadata_url`. `http` should not follow redirects
    /// ([`super::http_client`]); every fetch is bounded by `settings.timeout`.
    /// Nothing is fetched until the first token arrives.
    pub fn new(settings: &TeamsSettings, http: reqwest::Client, clock: Arc<dyn Clock>) -> Self {
        Self {
            app_id: settings.app_id.clone(),
            metadata_url: settings.openid_metadata_url.clone(),
            timeout: settings.timeout,
            http,
            clock,
            keys: RwLock::new(KeySet::default()),
            refresh: tokio::sync::Mutex::new(None),
            metrics: Metrics::default(),
        }
    }

    /// The same verifier, counting its fetches of the OpenID metadata and
    /// keys into `metrics`.
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        Self { metrics, ..self }
    }

    /// Checks the `Authorization` header of an activity whose `serviceUrl`
    /// and `channelId` are given; see the module documentation for what
    /// must hold. On `Err`, answer 401 and act on nothing.
    pub async fn verify(
        &self,
        authorization_header: Option<&str>,
        service_url: &str,
        channel_id: &str,
    ) -> Result<Claims, AuthError> {
        let header = authorization_header.ok_or(AuthError::MissingHeader)?;
        let token = bearer_token(header)?;
        let jwt_header = parse_header(token)?;
        let alg = jwt_header.alg.unwrap_or_default();
        if alg != "RS256" {
            return Err(AuthError::Algorithm(alg));
        }
        let kid = jwt_header.kid.ok_or(AuthError::MissingKeyId)?;
        let key = self.key(&kid).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[BOT_FRAMEWORK_ISSUER]);
        // The audience is compared below, in any case (an app id is a GUID).
        validation.validate_aud = false;
        // Time is checked below against our clock, not the system's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        let data =
            jsonwebtoken::decode::<RawClaims>(token, &key.key, &validation).map_err(|e| match e
                .kind()
            {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => AuthError::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidIssuer
                | jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(_) => AuthError::Issuer,
                jsonwebtoken::errors::ErrorKind::InvalidAudience => AuthError::Audience,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                    AuthError::Algorithm("mismatched".into())
                }
                _ => AuthError::Malformed,
            })?;
        let claims = data.claims;
        if claims.iss.as_deref() != Some(BOT_FRAMEWORK_ISSUER) {
            return Err(AuthError::Issuer);
        }
        // Issuer and audience are checked again here so the rules do not
        // hang on a library's defaults for absent claims.
        let audience_ok = match &claims.aud {
            Audience::One(a) => same_app_id(a, &self.app_id),
            Audience::Many(all) => all.iter().any(|a| same_app_id(a, &self.app_id)),
        };
        if !audience_ok {
            return Err(AuthError::Audience);
        }

        let now = self.clock.now().timestamp();
        let skew = CLOCK_SKEW.as_secs() as i64;
        let exp = claims.exp.ok_or(AuthError::Expired)?;
        if now > exp.saturating_add(skew) {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = claims.nbf {
            if now < nbf.saturating_sub(skew) {
                return Err(AuthError::NotYetValid);
            }
        }

        if channel_id.trim().is_empty() || !key.endorsements.iter().any(|e| e == channel_id) {
            return Err(AuthError::Endorsement(channel_id.to_owned()));
        }
        match claims.serviceurl {
            Some(claimed) if same_service_url(&claimed, service_url) => {}
            _ => return Err(AuthError::ServiceUrl),
        }
        Ok(Claims {
            app_id: self.app_id.clone(),
            service_url: service_url.to_owned(),
            expires_at: chrono::DateTime::from_timestamp(exp, 0).unwrap_or_default(),
            key_id: kid,
        })
    }

    /// The key named `kid`: from the cache while it is fresh, else after one
    /// (rate-limited) refetch.
    async fn key(&self, kid: &str) -> Result<Arc<SigningKey>, AuthError> {
        if let Some(key) = self.cached(kid, true) {
            return Ok(key);
        }
        let mut last_attempt = self.refresh.lock().await;
        // Whoever held the lock before us may have fetched what we need.
        if let Some(key) = self.cached(kid, true) {
            return Ok(key);
        }
        let now = self.clock.now();
        let may_fetch = last_attempt.is_none_or(|at| elapsed(at, now) >= MIN_REFETCH_INTERVAL);
        let mut fetch_error = None;
        if may_fetch {
            *last_attempt = Some(now);
            match self.fetch_keys().await {
                Ok(keys) => {
                    let mut set = self.keys.write().expect("key cache lock");
                    set.keys = keys;
                    set.fetched_at = Some(now);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot fetch the Bot Framework signing keys");
                    fetch_error = Some(e);
                }
            }
        }
        // A stale key beats none when the refresh failed or is not due.
        if let Some(key) = self.cached(kid, false) {
            return Ok(key);
        }
        let have_keys = !self.keys.read().expect("key cache lock").keys.is_empty();
        match fetch_error {
            Some(e) if !have_keys => Err(AuthError::KeysUnavailable(e)),
            _ => Err(AuthError::UnknownKey),
        }
    }

    fn cached(&self, kid: &str, fresh_only: bool) -> Option<Arc<SigningKey>> {
        let set = self.keys.read().expect("key cache lock");
        if fresh_only {
            let fetched_at = set.fetched_at?;
            if elapsed(fetched_at, self.clock.now()) >= KEY_REFRESH_INTERVAL {
                return None;
            }
        }
        set.keys.get(kid).cloned()
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, Arc<SigningKey>>, String> {
        let metadata: OpenIdMetadata = self
            .get_json("GET openid_metadata", &self.metadata_url)
            .await?;
        let jwks: Jwks = self.get_json("GET jwks", &metadata.jwks_uri).await?;
        let mut keys = HashMap::new();
        for jwk in jwks.keys {
            let (Some(kid), Some(n), Some(e)) = (jwk.kid, jwk.n, jwk.e) else {
                continue;
            };
            if jwk.kty.as_deref() != Some("RSA") || jwk.use_.as_deref().is_some_and(|u| u != "sig")
            {
                continue;
            }
            let Ok(key) = DecodingKey::from_rsa_components(&n, &e) else {
                continue;
            };
            keys.insert(
                kid,
                Arc::new(SigningKey {
                    key,
                    endorsements: jwk.endorsements,
                }),
            );
        }
        if keys.is_empty() {
            return Err("the key set holds no usable RSA signing key".into());
        }
        Ok(keys)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        url: &str,
    ) -> Result<T, String> {
        let parsed = url::Url::parse(url).map_err(|_| "not a URL".to_string())?;
        if !is_allowed_url(&parsed) {
            return Err(format!(
                "refusing to fetch keys from {}: only https (or http on loopback)",
                parsed.origin().ascii_serialization()
            ));
        }
        let call = self.metrics.start(Service::Teams, endpoint);
        let response = self
            .http
            .get(parsed)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.timeout)
            .send()
            .await;
        call.done(Outcome::of_reqwest(&response));
        let response = response.map_err(super::describe)?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let body = read_capped(response).await?;
        serde_json::from_slice(&body).map_err(|e| format!("unexpected document: {e}"))
    }
}

/// Whether the token's audience is our app id. App ids are GUIDs, which
/// name the same app in any case; Azure shows them in lower case, and a
/// configured id in upper case must not lock the bot out.
fn same_app_id(claimed: &str, ours: &str) -> bool {
    claimed.eq_ignore_ascii_case(ours)
}

/// Whether the token's `serviceurl` claim is the activity's `serviceUrl`,
/// allowing one trailing slash on either: `…/amer` and `…/amer/` are the
/// same base (the connector joins both alike), and nothing else differs.
fn same_service_url(claimed: &str, activity: &str) -> bool {
    let base = |url: &'_ str| url.strip_suffix('/').unwrap_or(url).to_owned();
    !activity.is_empty() && base(claimed) == base(activity)
}

fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    (to - from).to_std().unwrap_or(Duration::ZERO)
}

/// The token of a `Bearer` header (the scheme is case-insensitive, RFC 7235).
fn bearer_token(header: &str) -> Result<&str, AuthError> {
    let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.split('.').count() != 3 {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

/// The JOSE header, read by hand so an `alg` jsonwebtoken does not know
/// (`none`) is refused by name rather than as a parse error.
fn parse_header(token: &str) -> Result<JwtHeader, AuthError> {
    let encoded = token.split('.').next().ok_or(AuthError::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_header_with_three_parts_carries_a_token() {
        assert_eq!(bearer_token("Bearer a.b.c"), Ok("a.b.c"));
        assert_eq!(bearer_token("bearer  a.b.c "), Ok("a.b.c"));
        assert_eq!(bearer_token("Basic a.b.c"), Err(AuthError::Malformed));
        assert_eq!(bearer_token("Bearer a.b"), Err(AuthError::Malformed));
        assert_eq!(bearer_token("Bearer"), Err(AuthError::Malformed));
        assert_eq!(bearer_token(""), Err(AuthError::Malformed));
    }

    #[test]
    fn a_service_url_claim_may_differ_from_the_activity_by_a_trailing_slash_only() {
        let amer = "https://smba.trafficmanager.net/amer/";
        assert!(same_service_url(amer, amer));
        assert!(same_service_url(
            "https://smba.trafficmanager.net/amer",
            amer
        ));
        assert!(same_service_url(
            amer,
            "https://smba.trafficmanager.net/amer"
        ));
        for other in [
            "https://smba.trafficmanager.net/emea/",
            "https://smba.trafficmanager.net/amer//",
            "https://smba.trafficmanager.net/amer/x",
            "https://evil.example/amer/",
            "https://smba.trafficmanager.net/",
            "",
        ] {
            assert!(!same_service_url(amer, other), "{other}");
            assert!(!same_service_url(other, amer), "{other}");
        }
    }

    #[test]
    fn the_app_id_is_compared_in_any_case_and_nothing_else_is_forgiven() {
        let ours = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
        assert!(same_app_id("3F2504E0-4F89-11D3-9A0C-0305E82C3301", ours));
        assert!(same_app_id(ours, &ours.to_ascii_uppercase()));
        assert!(!same_app_id("3f2504e0-4f89-11d3-9a0c-0305e82c3302", ours));
        assert!(!same_app_id(" 3f2504e0-4f89-11d3-9a0c-0305e82c3301", ours));
        assert!(!same_app_id("", ours));
    }

    #[test]
    fn a_header_that_is_not_base64url_json_is_malformed() {
        assert!(matches!(parse_header("!!!.b.c"), Err(AuthError::Malformed)));
        let not_json = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("nope");
        assert!(matches!(
            parse_header(&format!("{not_json}.b.c")),
            Err(AuthError::Malformed)
        ));
    }
}
