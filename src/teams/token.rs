//! Client-credentials tokens from Entra ID, one cache per audience.
//!
//! The Bot Connector and Microsoft Graph each take a token of their own
//! (scope `https://api.botframework.com/.default` and
//! `https://graph.microsoft.com/.default`): a token for one is refused by
//! the other. Both come from `teams.token_url` with the same app id and
//! secret. Each [`TokenSource`] asks for one scope, keeps the token until
//! shortly before its `expires_in` runs out, and fetches one at a time, so
//! a burst of calls asks Entra ID once. Errors never contain the secret or
//! a token.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::{describe, is_allowed_url, read_capped};
use crate::domain::Timestamp;
use crate::engine::ports::{ChatError, Clock};
use crate::metrics::{Metrics, Outcome, Service};

/// A token is renewed this long before Entra ID says it expires, so a call
/// never sets out with a token that lapses on the way.
pub const TOKEN_RENEWAL_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Tokens for one scope, cached.
pub(crate) struct TokenSource {
    app_id: String,
    app_password: SecretString,
    token_url: String,
    scope: &'static str,
    /// What the tokens are for, in error messages ("Teams", "Microsoft Graph").
    purpose: &'static str,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    /// Where each token request's outcome is counted.
    pub(crate) metrics: Metrics,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("app_id", &self.app_id)
            .field("token_url", &self.token_url)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

struct CachedToken {
    value: SecretString,
    renew_at: Timestamp,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

impl TokenSource {
    /// Tokens for `scope` from `token_url` (with `{tenant}` resolved).
    pub(crate) fn new(
        app_id: &str,
        app_password: &SecretString,
        token_url: String,
        scope: &'static str,
        purpose: &'static str,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            app_id: app_id.to_owned(),
            app_password: app_password.clone(),
            token_url,
            scope,
            purpose,
            http,
            clock,
            token: tokio::sync::Mutex::new(None),
            metrics: Metrics::default(),
        }
    }

    /// The app id the tokens are issued to.
    pub(crate) fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The cached token unless it is due for renewal or `renew` is set.
    pub(crate) async fn token(&self, renew: bool) -> Result<SecretString, ChatError> {
        let mut cached = self.token.lock().await;
        let now = self.clock.now();
        if let Some(token) = cached.as_ref() {
            if !renew && now < token.renew_at {
                return Ok(token.value.clone());
            }
        }
        *cached = None;
        let fresh = self.fetch(now).await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    async fn fetch(&self, now: Timestamp) -> Result<CachedToken, ChatError> {
        let purpose = self.purpose;
        let url = url::Url::parse(&self.token_url)
            .map_err(|_| ChatError::Permanent("teams.token_url is not a URL".into()))?;
        if !is_allowed_url(&url) {
            return Err(ChatError::Permanent(
                "teams.token_url must be https (plain http only on loopback)".into(),
            ));
        }
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.app_id.as_str()),
            ("client_secret", self.app_password.expose_secret()),
            ("scope", self.scope),
        ];
        let call = self
            .metrics
            .start(Service::Teams, "POST /oauth2/v2.0/token");
        let response = self
            .http
            .post(url)
            .header(header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await;
        call.done(Outcome::of_reqwest(&response));
        let response = response.map_err(|e| {
            ChatError::Transient(format!("{purpose} token endpoint: {}", describe(e)))
        })?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let bytes = read_capped(response)
            .await
            .map_err(|e| ChatError::Transient(format!("{purpose} token endpoint: {e}")))?;
        if !status.is_success() {
            return Err(match status.as_u16() {
                429 => ChatError::RateLimited { retry_after },
                500..=599 => {
                    ChatError::Transient(format!("{purpose} token endpoint: HTTP {status}"))
                }
                _ => ChatError::Permanent(format!(
                    "{purpose} token endpoint refused the app credentials (HTTP {status}{}): check teams.app_id, TEAMS_APP_PASSWORD and the tenant",
                    entra_error(&bytes).map(|c| format!(", {c}")).unwrap_or_default()
                )),
            });
        }
        let answer: TokenAnswer = serde_json::from_slice(&bytes).map_err(|_| {
            ChatError::Transient(format!("{purpose} token endpoint: unexpected answer"))
        })?;
        let lifetime = Duration::from_secs(answer.expires_in);
        // A short-lived token is renewed halfway through instead.
        let keep = lifetime
            .checked_sub(TOKEN_RENEWAL_MARGIN)
            .filter(|keep| *keep >= lifetime / 2)
            .unwrap_or(lifetime / 2);
        Ok(CachedToken {
            value: SecretString::from(answer.access_token),
            renew_at: now + chrono::TimeDelta::from_std(keep).unwrap_or_default(),
        })
    }
}

/// Entra ID's error word (`invalid_client`…) and code (`AADSTS7000215`),
/// never its description, which can quote the request.
fn entra_error(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let error = v["error"].as_str()?;
    let code = v["error_codes"][0].as_u64();
    Some(match code {
        Some(code) => format!("{error} AADSTS{code}"),
        None => error.to_owned(),
    })
}

/// `Retry-After` in seconds, when the answer names one.
pub(crate) fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}
