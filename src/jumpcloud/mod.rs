//! The `Directory` port over JumpCloud's REST API (v1 `/api`, v2 `/api/v2`).
//!
//! It translates and classifies; it decides nothing. Every failure becomes a
//! `DirectoryError` the engine can act on (401/403 → `Unauthorized`, 429 →
//! `RateLimited` with `Retry-After`, 5xx and timeouts → `Transient`). The
//! credential is an API key, sent as `x-api-key`, or a service account's
//! bearer token ([`auth`]: a 401 renews the token once and retries the call
//! once); neither is ever logged or put into an error.
//!
//! Every call waits its turn under `jumpcloud.max_requests_per_second`
//! when it is set, revocations first ([`RateLimit`]).
//!
//! A person is found by email only, ignoring case, and only when exactly one
//! account has that email; two that differ only in case are `AmbiguousEmail`.

pub mod access_request;
pub mod association;
mod auth;
pub mod commands;
mod probe;
mod rate_limit;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{header, redirect, Method, RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::{
    AssociationOp, Device, DirectBinding, Email, JcUserId, Presence, PriorState, SystemId,
};
pub use access_request::{GrantMode, JumpCloudElevator};
pub use auth::{JumpCloudCredentials, ServiceAccount, DEFAULT_OAUTH_URL};
pub use rate_limit::RateLimit;

use crate::engine::clock::SystemClock;
use crate::engine::ports::{Clock, Directory, DirectoryError, DirectoryUser};
use crate::metrics::{Metrics, Outcome, Service};
use auth::TokenSource;

/// Page size for list calls (JumpCloud allows at most 100).
const PAGE: usize = 100;

/// Settings for [`JumpCloudClient`].
#[derive(Debug, Clone)]
pub struct JumpCloudSettings {
    /// `https://console.jumpcloud.com` (or the EU console, or a fake).
    pub api_url: String,
    /// `JUMPCLOUD_API_KEY`, or a service account's client credentials.
    pub credentials: JumpCloudCredentials,
    /// `JUMPCLOUD_ORG_ID`, for multi-tenant administrators.
    pub org_id: Option<String>,
    /// Per-call timeout.
    pub timeout: Duration,
    /// `jumpcloud.max_requests_per_second`: this process's share of
    /// JumpCloud's rate limit; `None`, no limit of our own (429s still back
    /// off).
    pub max_requests_per_second: Option<NonZeroU32>,
}

/// A JumpCloud API client.
#[derive(Debug, Clone)]
pub struct JumpCloudClient {
    http: reqwest::Client,
    settings: JumpCloudSettings,
    rate_limit: Option<Arc<RateLimit>>,
    auth: Auth,
    /// Where each call's outcome is counted.
    metrics: Metrics,
}

/// What each call is authenticated with.
#[derive(Debug, Clone)]
enum Auth {
    ApiKey(SecretString),
    Bearer(Arc<TokenSource>),
}

#[derive(Debug, Deserialize)]
struct SystemUserList {
    #[serde(default)]
    results: Vec<SystemUser>,
}

#[derive(Debug, Deserialize)]
struct SystemUser {
    #[serde(rename = "_id")]
    id: String,
    email: String,
    #[serde(default)]
    sudo: bool,
    #[serde(default)]
    suspended: bool,
    #[serde(default)]
    state: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GraphObjectWithPaths {
    id: String,
    #[serde(rename = "compiledAttributes", default)]
    compiled_attributes: Option<Attributes>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct Attributes {
    #[serde(default)]
    sudo: Option<Sudo>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, Copy)]
struct Sudo {
    #[serde(default)]
    enabled: bool,
    #[serde(rename = "withoutPassword", default)]
    without_password: bool,
}

#[derive(Debug, Deserialize)]
struct GraphConnection {
    #[serde(default)]
    attributes: Option<Attributes>,
    to: GraphObject,
}

#[derive(Debug, Deserialize)]
struct GraphObject {
    id: String,
    #[serde(rename = "type", default)]
    kind: String,
}

#[derive(Debug, Deserialize)]
struct System {
    #[serde(default)]
    hostname: String,
    #[serde(rename = "displayName", default)]
    display_name: String,
    #[serde(rename = "osFamily", default)]
    os_family: String,
    #[serde(default)]
    active: bool,
    /// RFC 3339; absent for a device that never checked in.
    #[serde(rename = "lastContact", default)]
    last_contact: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
}

/// The calls the bot makes, as `METHOD path` with `{id}` for an id: the
/// `endpoint` label of `tempadmin_outbound_calls_total`.
const ENDPOINTS: [&str; 16] = [
    "GET /api/systemusers",
    "GET /api/systemusers/{id}",
    "GET /api/v2/users/{id}/systems",
    "GET /api/systems/{id}",
    "GET /api/v2/systems/{id}/associations",
    "POST /api/v2/systems/{id}/associations",
    "POST /api/v2/accessrequests",
    "GET /api/v2/accessrequests/{id}",
    "PUT /api/v2/accessrequests/{id}",
    "POST /api/v2/accessrequests/{id}/revoke",
    "GET /api/commands",
    "POST /api/commands",
    "GET /api/commands/{id}",
    "PUT /api/commands/{id}",
    "POST /api/v2/commands/{id}/associations",
    "POST /api/command/trigger/{id}",
];

/// Which of [`ENDPOINTS`] a request is (`"other"` for none), so ids never
/// become label values.
fn endpoint_family(method: &Method, path: &str) -> &'static str {
    crate::metrics::endpoint_family(method.as_str(), path, "api", &ENDPOINTS)
}

impl JumpCloudClient {
    /// A client for these settings on the system clock; refuses an
    /// `api_url` that [`check_api_url`] refuses.
    pub fn new(settings: JumpCloudSettings) -> anyhow::Result<Self> {
        Self::with_clock(settings, Arc::new(SystemClock))
    }

    /// A client whose service-account tokens age by `clock` (tests move it).
    pub fn with_clock(settings: JumpCloudSettings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        Self::recording(settings, clock, Metrics::default())
    }

    /// Like [`JumpCloudClient::with_clock`], counting every call (and every
    /// token request) into `metrics`.
    pub fn recording(
        settings: JumpCloudSettings,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        check_api_url(&settings.api_url)
            .map_err(|why| anyhow::anyhow!("jumpcloud.api_url {why}"))?;
        if let JumpCloudCredentials::ServiceAccount(account) = &settings.credentials {
            check_oauth_url(&account.oauth_url)
                .map_err(|why| anyhow::anyhow!("jumpcloud.oauth_url {why}"))?;
        }
        let http = reqwest::Client::builder()
            // A followed redirect would carry `x-api-key` (or the token) to wherever the
            // `Location` points (reqwest strips only standard credential
            // headers across origins), so none is followed.
            .redirect(redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("tempadmin/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let rate_limit = settings
            .max_requests_per_second
            .map(|n| Arc::new(RateLimit::new(n)));
        let auth = match &settings.credentials {
            JumpCloudCredentials::ApiKey(key) => Auth::ApiKey(key.clone()),
            JumpCloudCredentials::ServiceAccount(account) => Auth::Bearer(Arc::new(
                TokenSource::new(account.clone(), http.clone(), clock, metrics.clone()),
            )),
        };
        Ok(Self {
            http,
            settings,
            rate_limit,
            auth,
            metrics,
        })
    }

    fn call(&self, method: Method, path: &str) -> RequestBuilder {
        let url = format!("{}{}", self.settings.api_url.trim_end_matches('/'), path);
        let mut builder = self
            .http
            .request(method, url)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(org) = &self.settings.org_id {
            builder = builder.header("x-org-id", org);
        }
        builder
    }

    /// Sends with the credential, and turns anything but a 2xx into a
    /// classified error. A bearer token refused with 401 is renewed once
    /// and the call sent once more; a second 401 is the answer.
    async fn send(&self, builder: RequestBuilder) -> Result<Response, DirectoryError> {
        let again = builder.try_clone();
        let (mut response, generation) = self.attempt(builder, None).await?;
        if let (StatusCode::UNAUTHORIZED, Some(generation), Some(again)) =
            (response.status(), generation, again)
        {
            tracing::info!(
                "JumpCloud refused the service account's token; renewing it and trying once more"
            );
            response = self.attempt(again, Some(generation)).await?.0;
        }
        self.classify_answer(response).await
    }

    /// One request with the credential (after renewing the token of
    /// generation `refused`, when given); the token's generation comes back
    /// so that a 401 can name the token it refused.
    async fn attempt(
        &self,
        builder: RequestBuilder,
        refused: Option<u64>,
    ) -> Result<(Response, Option<u64>), DirectoryError> {
        let (builder, generation) = match &self.auth {
            Auth::ApiKey(key) => (builder.header("x-api-key", key.expose_secret()), None),
            Auth::Bearer(tokens) => {
                let bearer = match refused {
                    None => tokens.bearer().await?,
                    Some(generation) => tokens.renew_refused(generation).await?,
                };
                (
                    builder.bearer_auth(bearer.token.expose_secret()),
                    Some(bearer.generation),
                )
            }
        };
        if let Some(limit) = &self.rate_limit {
            limit.turn().await;
        }
        let request = builder
            .build()
            .map_err(|_| DirectoryError::Permanent("could not build the request".to_string()))?;
        let endpoint = endpoint_family(request.method(), request.url().path());
        let call = self.metrics.start(Service::JumpCloud, endpoint);
        let response = self.http.execute(request).await;
        call.done(Outcome::of_reqwest(&response));
        let response = response.map_err(|e| {
            // reqwest's message names the URL, never headers; drop the URL's
            // query all the same.
            DirectoryError::Transient(if e.is_timeout() {
                "timed out".to_string()
            } else if e.is_connect() {
                "connection failed".to_string()
            } else {
                "request failed".to_string()
            })
        })?;
        Ok((response, generation))
    }

    async fn classify_answer(&self, response: Response) -> Result<Response, DirectoryError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status.is_redirection() {
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok());
            return Err(redirected(status, response.url(), location));
        }
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let message = response
            .json::<ErrorBody>()
            .await
            .map(|b| b.message)
            .unwrap_or_default();
        Err(classify(status, retry_after, &message))
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        builder: RequestBuilder,
    ) -> Result<(T, Option<usize>), DirectoryError> {
        let response = self.send(builder).await?;
        let total = response
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = response
            .json::<T>()
            .await
            .map_err(|e| DirectoryError::Permanent(format!("unexpected answer shape: {e}")))?;
        Ok((body, total))
    }

    /// Fetches every page of a v2 list.
    async fn get_all<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, DirectoryError> {
        let mut all = Vec::new();
        loop {
            let skip = all.len().to_string();
            let limit = PAGE.to_string();
            let builder = self
                .call(Method::GET, path)
                .query(query)
                .query(&[("limit", limit.as_str()), ("skip", skip.as_str())]);
            let (page, total): (Vec<T>, _) = self.get_json(builder).await?;
            let got = page.len();
            all.extend(page);
            let more = total.map_or(got == PAGE, |t| all.len() < t);
            if got == 0 || !more {
                return Ok(all);
            }
        }
    }

    /// The accounts `filter=email:$eq:{email}` finds, kept only when their
    /// email equals `email` ignoring case.
    async fn users_with_email(&self, email: &str) -> Result<Vec<SystemUser>, DirectoryError> {
        let filter = format!("email:$eq:{email}");
        let builder = self
            .call(Method::GET, "/api/systemusers")
            .query(&[("filter", filter.as_str()), ("limit", "10")]);
        let (list, _): (SystemUserList, _) = self.get_json(builder).await?;
        Ok(list
            .results
            .into_iter()
            .filter(|u| u.email.eq_ignore_ascii_case(email))
            .collect())
    }

    async fn compiled_sudo(&self, user: &JcUserId) -> Result<Vec<(String, bool)>, DirectoryError> {
        let path = format!("/api/v2/users/{}/systems", segment(user.as_str()));
        let objects: Vec<GraphObjectWithPaths> = self.get_all(&path, &[]).await?;
        Ok(objects
            .into_iter()
            .map(|o| {
                let sudo = o
                    .compiled_attributes
                    .and_then(|a| a.sudo)
                    .is_some_and(|s| s.enabled);
                (o.id, sudo)
            })
            .collect())
    }
}

/// Whether `api_url` may receive the API key: `https`, or plain `http` only
/// to a loopback host (127.0.0.0/8, `::1`, `localhost`), where the simulators
/// and test servers live and nothing crosses a network. It must be a base
/// address: paths are appended to it, so a query or fragment would break
/// them, and credentials do not belong in it. The reason starts so that it
/// reads after the setting's name.
pub fn check_api_url(api_url: &str) -> Result<(), String> {
    check_url(api_url, DEFAULT_API_URL, "the API key or token")
}

fn check_url(api_url: &str, example: &str, carries: &str) -> Result<(), String> {
    crate::outbound::check_address(api_url, example, carries, "JumpCloud")
}

/// Whether `oauth_url` may receive the service account's client secret:
/// the same rules as [`check_api_url`] (https, or plain http to loopback; no
/// user name, password, query or fragment), but it is the token endpoint's
/// full address, not a base.
pub fn check_oauth_url(oauth_url: &str) -> Result<(), String> {
    check_url(oauth_url, DEFAULT_OAUTH_URL, "the client secret")
}

/// JumpCloud's API in the US region, as the examples in errors.
const DEFAULT_API_URL: &str = "https://console.jumpcloud.com";

/// Maps an HTTP failure to what the engine can do about it.
fn classify(status: StatusCode, retry_after: Option<Duration>, message: &str) -> DirectoryError {
    let message: String = message.chars().take(200).collect();
    match status.as_u16() {
        401 | 403 => DirectoryError::Unauthorized(status.as_u16()),
        404 => DirectoryError::NotFound,
        409 => DirectoryError::Conflict,
        429 => DirectoryError::RateLimited { retry_after },
        500..=599 => DirectoryError::Transient(format!("HTTP {status}")),
        _ => DirectoryError::Permanent(format!("HTTP {status}: {message}")),
    }
}

/// A 3xx: a configuration error, never followed. Names only the origin the
/// answer pointed to (its path and query may carry anything) and what to fix.
fn redirected(status: StatusCode, from: &url::Url, location: Option<&str>) -> DirectoryError {
    let target = location
        .and_then(|l| from.join(l).ok())
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|| "an unreadable address".to_string());
    DirectoryError::Permanent(format!(
        "redirected (HTTP {status}) to {target}; tempadmin does not follow redirects, so that \
         the credentials go only to jumpcloud.api_url. Set jumpcloud.api_url to JumpCloud's API \
         address itself (https://console.jumpcloud.com, or https://console.eu.jumpcloud.com in the EU)"
    ))
}

/// Refuses ids that would change the path they are put into.
fn segment(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[async_trait]
impl Directory for JumpCloudClient {
    /// JumpCloud compares `filter=email:$eq:` case-sensitively, while Slack
    /// keeps whatever capitals a person typed. So the look-up asks for the
    /// email exactly as given, then, when that finds nobody, for its
    /// lower-case form (how JumpCloud accounts are usually written). Only an
    /// answer equal to the email ignoring case counts, and two such answers
    /// are refused: choosing would be guessing whose computer to elevate.
    async fn find_user_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<DirectoryUser>, DirectoryError> {
        let mut matching = self.users_with_email(email.as_str()).await?;
        let lower = email.as_str().to_lowercase();
        if matching.is_empty() && lower != email.as_str() {
            matching = self.users_with_email(&lower).await?;
        }
        let user = match matching.len() {
            0 => return Ok(None),
            1 => matching.remove(0),
            accounts => return Err(DirectoryError::AmbiguousEmail { accounts }),
        };
        let suspended = user.suspended || user.state.as_deref() == Some("SUSPENDED");
        Ok(Some(DirectoryUser {
            id: JcUserId::new(user.id),
            email: Email::parse(&user.email).unwrap_or_else(|| email.clone()),
            global_sudo: user.sudo,
            suspended,
        }))
    }

    async fn user_devices(&self, user: &JcUserId) -> Result<Vec<Device>, DirectoryError> {
        let mut devices = Vec::new();
        for (id, compiled_sudo) in self.compiled_sudo(user).await? {
            let path = format!("/api/systems/{}", segment(&id));
            let system: System = match self.get_json(self.call(Method::GET, &path)).await {
                Ok((system, _)) => system,
                // Bound but deleted meanwhile: not a device to offer.
                Err(DirectoryError::NotFound) => continue,
                Err(e) => return Err(e),
            };
            devices.push(Device {
                id: SystemId::new(id),
                display_name: if system.display_name.is_empty() {
                    system.hostname.clone()
                } else {
                    system.display_name
                },
                hostname: system.hostname,
                os_family: system.os_family,
                online: system.active,
                compiled_sudo,
            });
        }
        Ok(devices)
    }

    async fn direct_binding(
        &self,
        system: &SystemId,
        user: &JcUserId,
    ) -> Result<Option<DirectBinding>, DirectoryError> {
        let path = format!("/api/v2/systems/{}/associations", segment(system.as_str()));
        let bindings: Vec<GraphConnection> = self.get_all(&path, &[("targets", "user")]).await?;
        Ok(bindings
            .into_iter()
            .find(|b| b.to.id == user.as_str() && (b.to.kind.is_empty() || b.to.kind == "user"))
            .map(|b| {
                let sudo = b.attributes.and_then(|a| a.sudo).unwrap_or_default();
                DirectBinding {
                    sudo: sudo.enabled,
                    without_password: sudo.without_password,
                }
            }))
    }

    async fn admin_state(
        &self,
        user: &DirectoryUser,
        system: &SystemId,
    ) -> Result<PriorState, DirectoryError> {
        let direct = self.direct_binding(system, &user.id).await?;
        let compiled_sudo = self
            .compiled_sudo(&user.id)
            .await?
            .into_iter()
            .any(|(id, sudo)| id == system.as_str() && sudo);
        Ok(PriorState {
            global_sudo: user.global_sudo,
            direct,
            compiled_sudo,
        })
    }

    async fn apply(
        &self,
        system: &SystemId,
        user: &JcUserId,
        op: AssociationOp,
    ) -> Result<(), DirectoryError> {
        let path = format!("/api/v2/systems/{}/associations", segment(system.as_str()));
        let body = match op {
            AssociationOp::Add { sudo } => json!({
                "op": "add", "type": "user", "id": user.as_str(),
                "attributes": { "sudo": { "enabled": sudo, "withoutPassword": false } },
            }),
            AssociationOp::Update {
                sudo,
                without_password,
            } => json!({
                "op": "update", "type": "user", "id": user.as_str(),
                "attributes": { "sudo": { "enabled": sudo, "withoutPassword": without_password } },
            }),
            AssociationOp::Remove => json!({ "op": "remove", "type": "user", "id": user.as_str() }),
        };
        tracing::info!(system_id = %system, jumpcloud_user = %user, ?op, "changing the user's binding");
        self.send(self.call(Method::POST, &path).json(&body))
            .await?;
        Ok(())
    }

    async fn presence(&self, system: &SystemId) -> Result<Presence, DirectoryError> {
        let path = format!("/api/systems/{}", segment(system.as_str()));
        let (system, _): (System, _) = self.get_json(self.call(Method::GET, &path)).await?;
        // A malformed time is as good as none: it only words a message.
        let last_seen = system
            .last_contact
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        Ok(Presence {
            online: system.active,
            last_seen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_family_names_the_call_without_its_ids() {
        let family = |m: Method, p: &str| endpoint_family(&m, p);
        assert_eq!(
            family(Method::POST, "/api/v2/systems/5f1a2b/associations"),
            "POST /api/v2/systems/{id}/associations"
        );
        assert_eq!(
            family(Method::GET, "/api/v2/systems/5f1a2b/associations"),
            "GET /api/v2/systems/{id}/associations"
        );
        assert_eq!(
            family(Method::GET, "/prefix/api/systems/5f1a2b"),
            "GET /api/systems/{id}"
        );
        assert_eq!(
            family(Method::GET, "/api/systemusers"),
            "GET /api/systemusers"
        );
        assert_eq!(
            family(Method::POST, "/api/command/trigger/tempadmin-notice"),
            "POST /api/command/trigger/{id}"
        );
        assert_eq!(family(Method::DELETE, "/api/systems/5f1a2b"), "other");
        assert_eq!(family(Method::GET, "/api/unknown/5f1a2b"), "other");
    }

    #[test]
    fn statuses_are_classified_for_the_engine() {
        let c = |s: u16| classify(StatusCode::from_u16(s).unwrap(), None, "x");
        assert_eq!(c(401), DirectoryError::Unauthorized(401));
        assert_eq!(c(403), DirectoryError::Unauthorized(403));
        assert_eq!(c(404), DirectoryError::NotFound);
        assert_eq!(c(409), DirectoryError::Conflict);
        assert!(c(503).is_retryable());
        assert!(!c(400).is_retryable());
        let limited = classify(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(7)),
            "",
        );
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn a_redirect_is_a_permanent_error_naming_only_the_other_origin() {
        let from = url::Url::parse("https://console.jumpcloud.com/api/systems/s1").unwrap();
        let message = |location: Option<&str>| match redirected(StatusCode::FOUND, &from, location)
        {
            DirectoryError::Permanent(message) => message,
            other => panic!("{other:?}"),
        };
        let text = message(Some(
            "https://console.eu.jumpcloud.com/api/systems/s1?token=abc",
        ));
        assert!(
            text.starts_with("redirected (HTTP 302 Found) to https://console.eu.jumpcloud.com;")
                && text.contains("jumpcloud.api_url")
                && !text.contains("token=abc"),
            "{text}"
        );
        assert!(message(Some("/login")).contains("to https://console.jumpcloud.com;"));
        assert!(message(None).contains("to an unreadable address;"));
        assert!(!redirected(StatusCode::MOVED_PERMANENTLY, &from, None).is_retryable());
    }

    #[test]
    fn a_client_for_a_plain_http_address_off_loopback_is_refused() {
        let settings = |api_url: &str| JumpCloudSettings {
            api_url: api_url.into(),
            credentials: JumpCloudCredentials::ApiKey(SecretString::from("jc-key")),
            org_id: None,
            timeout: Duration::from_secs(1),
            max_requests_per_second: None,
        };
        let err = JumpCloudClient::new(settings("http://console.jumpcloud.com")).unwrap_err();
        assert!(format!("{err:#}").contains("https://"), "{err:#}");
        assert!(JumpCloudClient::new(settings("http://127.0.0.1:9")).is_ok());
        assert!(JumpCloudClient::new(settings("https://console.jumpcloud.com")).is_ok());
    }

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        assert_eq!(segment("5f0c1e2d3b4a"), "5f0c1e2d3b4a");
        assert_eq!(segment("../../api/x?y"), "apixy");
    }
}
