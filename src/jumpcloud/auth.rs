//! How the client proves who it is to JumpCloud: an administrator's API key
//! (`x-api-key`), or a service account's bearer token (OAuth 2.0 client
//! credentials at `jumpcloud.oauth_url`).
//!
//! A token is kept and renewed at 80 % of its `expires_in`, by one request
//! at a time: callers that find it due wait for that one renewal and share
//! its token, so a burst of calls asks the token endpoint once. A token the
//! API refuses (401) is renewed once however many calls saw it refused,
//! because each refusal names the token's generation and only a refusal of
//! the current one renews. Neither the client secret nor a token ever goes
//! into a log line or an error.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{header, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::Timestamp;
use crate::engine::ports::{Clock, DirectoryError};
use crate::metrics::{Metrics, Outcome, Service};

/// JumpCloud's token endpoint (US region; the EU one is
/// `https://admin-oauth.id.eu.jumpcloud.com/oauth2/token`).
pub const DEFAULT_OAUTH_URL: &str = "https://admin-oauth.id.jumpcloud.com/oauth2/token";

/// The scope JumpCloud's admin API asks service accounts for.
const SCOPE: &str = "api";

/// A token is renewed once this share of its lifetime (in per mille) has
/// passed, so a call never sets out with one about to lapse, and a failed
/// renewal leaves a fifth of the lifetime to try again.
const RENEW_AT_PER_MILLE: u64 = 800;

/// A token is not sent at all in its last seconds, when it could lapse on
/// the way.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

/// After a renewal fails while the current token is still valid, the token
/// is used without asking again for this long, so an unreachable token
/// endpoint does not add its timeout to every call.
const RETRY_RENEWAL_AFTER: Duration = Duration::from_secs(30);

/// The lifetime assumed when the token endpoint names none (OAuth makes
/// `expires_in` only recommended): short, so a wrong guess costs renewals,
/// not refused calls.
const ASSUMED_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// Which credential the client sends (exactly one is configured).
#[derive(Debug, Clone)]
pub enum JumpCloudCredentials {
    /// `JUMPCLOUD_API_KEY`: an administrator's key, sent as `x-api-key`.
    ApiKey(SecretString),
    /// `JUMPCLOUD_CLIENT_ID` + `JUMPCLOUD_CLIENT_SECRET`: a service account.
    ServiceAccount(ServiceAccount),
}

/// A JumpCloud service account's client credentials.
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    /// `JUMPCLOUD_CLIENT_ID`.
    pub client_id: SecretString,
    /// `JUMPCLOUD_CLIENT_SECRET`.
    pub client_secret: SecretString,
    /// `jumpcloud.oauth_url`: where tokens are asked for.
    pub oauth_url: String,
}

/// A token to send, with the generation a 401 refers back to.
pub(crate) struct Bearer {
    /// The access token.
    pub(crate) token: SecretString,
    /// Which token this is: bumped with every token fetched.
    pub(crate) generation: u64,
}

/// Bearer tokens for one service account, cached.
pub(crate) struct TokenSource {
    account: ServiceAccount,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// Held across a renewal: that is what makes it one at a time.
    state: tokio::sync::Mutex<State>,
    /// Where each token request's outcome is counted.
    metrics: Metrics,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("oauth_url", &self.account.oauth_url)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    token: Option<CachedToken>,
    /// The generation of `token`.
    generation: u64,
    /// Set after a failed renewal: the current token is used without asking
    /// again until then.
    quiet_until: Option<Timestamp>,
}

struct CachedToken {
    value: SecretString,
    renew_at: Timestamp,
    /// Past this the token is not sent any more, renewal or not.
    usable_until: Timestamp,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The OAuth error body: only its `error` word is ever shown.
#[derive(Deserialize)]
struct OAuthError {
    #[serde(default)]
    error: String,
}

impl TokenSource {
    /// Tokens for `account`, fetched with `http` (which must not follow
    /// redirects: the Basic credentials would go along).
    pub(crate) fn new(
        account: ServiceAccount,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Self {
        Self {
            account,
            http,
            clock,
            state: tokio::sync::Mutex::new(State::default()),
            metrics,
        }
    }

    /// The cached token, or a new one when it is due for renewal.
    pub(crate) async fn bearer(&self) -> Result<Bearer, DirectoryError> {
        let mut state = self.state.lock().await;
        let now = self.clock.now();
        if let Some(token) = &state.token {
            let quiet = state.quiet_until.is_some_and(|until| now < until);
            if now < token.renew_at || (quiet && now < token.usable_until) {
                return Ok(current(&state, token));
            }
        }
        self.renew(&mut state, now).await
    }

    /// After the API answered 401 to the token of `generation`: a new token,
    /// unless another call has already replaced that one.
    pub(crate) async fn renew_refused(&self, generation: u64) -> Result<Bearer, DirectoryError> {
        let mut state = self.state.lock().await;
        if state.generation != generation {
            if let Some(token) = &state.token {
                return Ok(current(&state, token));
            }
        }
        // A refused token is no fallback if the renewal fails.
        state.token = None;
        let now = self.clock.now();
        self.renew(&mut state, now).await
    }

    async fn renew(&self, state: &mut State, now: Timestamp) -> Result<Bearer, DirectoryError> {
        match self.fetch(now).await {
            Ok(token) => {
                state.generation += 1;
                state.quiet_until = None;
                let bearer = current(state, &token);
                state.token = Some(token);
                Ok(bearer)
            }
            Err(e) => match &state.token {
                Some(token) if e.is_retryable() && now < token.usable_until => {
                    tracing::warn!(error = %e, "could not renew the JumpCloud service account's token; using the current one while it lasts");
                    state.quiet_until = Some(now + delta(RETRY_RENEWAL_AFTER));
                    Ok(current(state, token))
                }
                _ => Err(e),
            },
        }
    }

    /// One token request: `Authorization: Basic base64(id:secret)` and the
    /// form `grant_type=client_credentials&scope=api`.
    async fn fetch(&self, now: Timestamp) -> Result<CachedToken, DirectoryError> {
        let call = self.metrics.start(Service::JumpCloud, "POST /oauth2/token");
        let response = self
            .http
            .post(&self.account.oauth_url)
            .basic_auth(
                self.account.client_id.expose_secret(),
                Some(self.account.client_secret.expose_secret()),
            )
            .header(header::ACCEPT, "application/json")
            .form(&[("grant_type", "client_credentials"), ("scope", SCOPE)])
            .send()
            .await;
        call.done(Outcome::of_reqwest(&response));
        let response = response.map_err(|e| {
            DirectoryError::Transient(if e.is_timeout() {
                "token endpoint timed out".to_string()
            } else {
                "token endpoint unreachable".to_string()
            })
        })?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let error = response
                .json::<OAuthError>()
                .await
                .map(|b| b.error)
                .unwrap_or_default();
            return Err(refused(status, retry_after, &error));
        }
        let answer: TokenAnswer = response.json().await.map_err(|_| {
            DirectoryError::Transient("token endpoint: unexpected answer".to_string())
        })?;
        let lifetime = answer
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(ASSUMED_LIFETIME);
        let renew_after = lifetime * RENEW_AT_PER_MILLE as u32 / 1000;
        Ok(CachedToken {
            value: SecretString::from(answer.access_token),
            renew_at: now + delta(renew_after),
            usable_until: now + delta(lifetime.saturating_sub(EXPIRY_MARGIN)),
        })
    }
}

fn current(state: &State, token: &CachedToken) -> Bearer {
    Bearer {
        token: token.value.clone(),
        generation: state.generation,
    }
}

fn delta(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

/// A token endpoint's refusal, classified. 400 and 401 (`invalid_client`,
/// `invalid_scope`…) mean the credentials or `jumpcloud.oauth_url` are
/// wrong, which no retry mends: that is `Unauthorized`, and it is said here
/// in words that name what to check, because the engine's own message
/// speaks of the API key.
fn refused(status: StatusCode, retry_after: Option<Duration>, error: &str) -> DirectoryError {
    // Only a plain OAuth error word is repeated; anything else could quote
    // the request.
    let word: String = if !error.is_empty()
        && error.len() <= 40
        && error.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    {
        format!(", {error}")
    } else {
        String::new()
    };
    match status.as_u16() {
        code @ (400 | 401 | 403) => {
            tracing::error!(
                "JumpCloud's token endpoint refused the service account (HTTP {code}{word}): \
                 check JUMPCLOUD_CLIENT_ID, JUMPCLOUD_CLIENT_SECRET and jumpcloud.oauth_url \
                 (EU organisations: https://admin-oauth.id.eu.jumpcloud.com/oauth2/token)"
            );
            DirectoryError::Unauthorized(code)
        }
        429 => DirectoryError::RateLimited { retry_after },
        300..=399 => DirectoryError::Permanent(format!(
            "the token endpoint redirected (HTTP {status}); tempadmin does not follow redirects, \
             so that the client secret goes only to jumpcloud.oauth_url: set it to the token \
             endpoint itself"
        )),
        500..=599 => DirectoryError::Transient(format!("token endpoint: HTTP {status}")),
        _ => DirectoryError::Permanent(format!("token endpoint: HTTP {status}{word}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_endpoint_refusals_are_classified_without_quoting_the_answer() {
        let c = |s: u16, e: &str| refused(StatusCode::from_u16(s).unwrap(), None, e);
        assert_eq!(c(400, "invalid_client"), DirectoryError::Unauthorized(400));
        assert_eq!(c(401, "invalid_client"), DirectoryError::Unauthorized(401));
        assert!(c(503, "").is_retryable());
        assert!(!c(302, "").is_retryable());
        match c(418, "client_secret=hunter2") {
            DirectoryError::Permanent(text) => assert!(!text.contains("hunter2"), "{text}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            refused(
                StatusCode::TOO_MANY_REQUESTS,
                Some(Duration::from_secs(3)),
                ""
            )
            .retry_after(),
            Some(Duration::from_secs(3))
        );
    }
}
