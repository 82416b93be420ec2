//! Outbound: the Bot Connector REST API, as the bot.
//!
//! Every call carries a client-credentials token from `teams.token_url`
//! (form `grant_type=client_credentials`, our app id and secret, scope
//! `https://api.botframework.com/.default`), fetched once and reused until
//! shortly before its `expires_in` runs out; one fetch at a time, so a burst
//! of outbox messages asks Entra ID once. A call the connector refuses with
//! 401 is tried once more with a fresh token (a token can be revoked before
//! it expires); a second 401 is the configuration's fault.
//!
//! Failures are the engine's [`ChatError`], classified as the Teams
//! documentation's "status codes from bot conversational APIs" advise:
//! 429 → `RateLimited` (with `Retry-After`), 412/5xx/timeouts/connection
//! failures → `Transient`, other 4xx → `Permanent`. No call follows a
//! redirect (the bearer token must not travel), each is bounded by
//! `teams.timeout`, and conversation and activity ids (`19:…@thread.tacv2;
//! messageid=…`) are percent-encoded as one path segment each, as the SDKs
//! encode them. Errors never contain the secret or a token.

use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{header, Method, StatusCode};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};

use super::token::{retry_after, TokenSource};
use super::{
    describe, is_allowed_url, read_capped, TeamsSettings, ADAPTIVE_CARD_CONTENT_TYPE,
    CONNECTOR_SCOPE,
};
use crate::domain::Email;
use crate::engine::ports::{ChatError, Clock};
use crate::metrics::{Metrics, Outcome, Service};

pub use super::token::TOKEN_RENEWAL_MARGIN;

/// What `encodeURIComponent` leaves alone (the SDKs encode ids with it):
/// letters, digits and `-_.!~*'()`. Everything else, `:`, `@`, `;`, `=` and
/// `/` included, is percent-encoded, so an id is always one path segment.
pub(crate) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// A member of a conversation, as `GET …/members/{userId}` describes them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamsMember {
    /// The Teams user id (`29:…`).
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The Entra ID object id.
    #[serde(default)]
    pub aad_object_id: Option<String>,
    /// The mail address, when the account has one.
    #[serde(default)]
    pub email: Option<String>,
    /// The sign-in name (often, not always, the mail address).
    #[serde(default)]
    pub user_principal_name: Option<String>,
    /// The member's own tenant (`tenantId`, as botbuilder's
    /// `TeamsChannelAccount` names it): ours, or another for a guest or a
    /// shared-channel member from elsewhere.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

impl TeamsMember {
    /// Their own address, as their directory has it: the mail attribute,
    /// else the sign-in name when it is an address. Who vouches for it is
    /// their tenant, so it means something only for a member of ours.
    pub fn own_email(&self) -> Option<Email> {
        self.email
            .as_deref()
            .and_then(Email::parse)
            .or_else(|| self.user_principal_name.as_deref().and_then(Email::parse))
    }
}

/// A message activity with text (Teams renders it as Markdown).
pub fn text_activity(text: &str) -> Value {
    json!({ "type": "message", "textFormat": "markdown", "text": text })
}

/// A message activity carrying one Adaptive Card.
pub fn card_activity(card: Value) -> Value {
    json!({
        "type": "message",
        "attachments": [{ "contentType": ADAPTIVE_CARD_CONTENT_TYPE, "content": card }]
    })
}

/// The conversation id that addresses the thread under `root_activity_id`
/// in a channel: posting to it replies in that thread.
pub fn thread_conversation_id(channel_conversation_id: &str, root_activity_id: &str) -> String {
    let channel = channel_conversation_id
        .split_once(";messageid=")
        .map_or(channel_conversation_id, |(channel, _)| channel);
    format!("{channel};messageid={root_activity_id}")
}

/// The Bot Connector client. Cheap to share behind an `Arc`.
pub struct Connector {
    http: reqwest::Client,
    tokens: TokenSource,
    /// Where each call's outcome is counted.
    metrics: Metrics,
}

/// The connector calls the bot makes: the `endpoint` label.
const ENDPOINTS: [&str; 5] = [
    "POST /v3/conversations",
    "POST /v3/conversations/{id}/activities",
    "POST /v3/conversations/{id}/activities/{id}",
    "PUT /v3/conversations/{id}/activities/{id}",
    "GET /v3/conversations/{id}/members/{id}",
];

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ResourceResponse {
    id: String,
}

impl Connector {
    /// A client for these settings; `clock` decides when the cached token
    /// is due for renewal. Calls are bounded by `settings.timeout`.
    pub fn new(settings: &TeamsSettings, clock: Arc<dyn Clock>) -> Self {
        let http = super::http_client(settings.timeout);
        Self {
            tokens: TokenSource::new(
                &settings.app_id,
                &settings.app_password,
                settings.resolved_token_url(),
                CONNECTOR_SCOPE,
                "Teams",
                http.clone(),
                clock,
            ),
            http,
            metrics: Metrics::default(),
        }
    }

    /// Asks the token endpoint for a fresh Bot Connector token, sending
    /// nothing to Teams (`tempadmin check`).
    pub async fn fetch_token(&self) -> Result<(), ChatError> {
        self.tokens.token(true).await.map(|_| ())
    }

    /// The same client, counting every call (and token request) into `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.tokens.metrics = metrics.clone();
        Self { metrics, ..self }
    }

    /// Posts a new activity to a conversation
    /// (`POST {serviceUrl}/v3/conversations/{id}/activities`); its id.
    pub async fn send_to_conversation(
        &self,
        service_url: &str,
        conversation_id: &str,
        activity: &Value,
    ) -> Result<String, ChatError> {
        self.send_if_found(service_url, conversation_id, activity)
            .await?
            .ok_or_else(not_found)
    }

    /// [`send_to_conversation`](Self::send_to_conversation), but `None`
    /// when the connector answers 404: the conversation is gone (a person
    /// deleted their chat with the bot) or was never there.
    pub async fn send_if_found(
        &self,
        service_url: &str,
        conversation_id: &str,
        activity: &Value,
    ) -> Result<Option<String>, ChatError> {
        let url = endpoint(
            service_url,
            &["v3", "conversations", conversation_id, "activities"],
        )?;
        match self.send(Method::POST, url, Some(activity)).await? {
            Sent::NotFound => Ok(None),
            Sent::Ok(bytes) => parse::<ResourceResponse>(&bytes).map(|a| Some(a.id)),
        }
    }

    /// Replies to an activity: in a channel, into its thread
    /// (`POST …/activities/{activityId}`); the reply's id.
    pub async fn reply_to_activity(
        &self,
        service_url: &str,
        conversation_id: &str,
        activity_id: &str,
        activity: &Value,
    ) -> Result<String, ChatError> {
        let url = endpoint(
            service_url,
            &[
                "v3",
                "conversations",
                conversation_id,
                "activities",
                activity_id,
            ],
        )?;
        let answer: ResourceResponse = self.call(Method::POST, url, Some(activity)).await?;
        Ok(answer.id)
    }

    /// Replaces an activity the bot posted (`PUT …/activities/{activityId}`).
    pub async fn update_activity(
        &self,
        service_url: &str,
        conversation_id: &str,
        activity_id: &str,
        activity: &Value,
    ) -> Result<(), ChatError> {
        let url = endpoint(
            service_url,
            &[
                "v3",
                "conversations",
                conversation_id,
                "activities",
                activity_id,
            ],
        )?;
        let mut activity = activity.clone();
        if let Some(fields) = activity.as_object_mut() {
            fields.insert("id".into(), Value::String(activity_id.to_owned()));
        }
        let _: Value = self.call(Method::PUT, url, Some(&activity)).await?;
        Ok(())
    }

    /// The 1:1 conversation between the bot and `user_id` (`29:…`) in
    /// `tenant_id` (`POST {serviceUrl}/v3/conversations`); its id. Teams
    /// answers the existing conversation when there is one; it works once
    /// the app is installed for the person or in a team they belong to.
    pub async fn create_personal_conversation(
        &self,
        service_url: &str,
        user_id: &str,
        tenant_id: &str,
    ) -> Result<String, ChatError> {
        let url = endpoint(service_url, &["v3", "conversations"])?;
        let body = json!({
            "bot": { "id": format!("28:{}", self.tokens.app_id()) },
            "members": [{ "id": user_id }],
            "isGroup": false,
            "tenantId": tenant_id,
            "channelData": { "tenant": { "id": tenant_id } }
        });
        let answer: ResourceResponse = self.call(Method::POST, url, Some(&body)).await?;
        Ok(answer.id)
    }

    /// One member of a conversation
    /// (`GET …/conversations/{id}/members/{userId}`); `None` when the
    /// connector answers 404 (not a member, or no such conversation).
    pub async fn member(
        &self,
        service_url: &str,
        conversation_id: &str,
        user_id: &str,
    ) -> Result<Option<TeamsMember>, ChatError> {
        let url = endpoint(
            service_url,
            &["v3", "conversations", conversation_id, "members", user_id],
        )?;
        match self.send(Method::GET, url, None).await? {
            Sent::NotFound => Ok(None),
            Sent::Ok(body) => parse(&body).map(Some),
        }
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        url: url::Url,
        body: Option<&Value>,
    ) -> Result<T, ChatError> {
        match self.send(method, url, body).await? {
            Sent::Ok(bytes) => parse(&bytes),
            Sent::NotFound => Err(not_found()),
        }
    }

    /// One connector call, with one retry on 401 under a fresh token.
    async fn send(
        &self,
        method: Method,
        url: url::Url,
        body: Option<&Value>,
    ) -> Result<Sent, ChatError> {
        for attempt in 0..2 {
            let token = self.tokens.token(attempt > 0).await?;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose_secret())
                .header(header::ACCEPT, "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            let endpoint =
                crate::metrics::endpoint_family(method.as_str(), url.path(), "v3", &ENDPOINTS);
            let call = self.metrics.start(Service::Teams, endpoint);
            let response = request.send().await;
            call.done(Outcome::of_reqwest(&response));
            let response = response
                .map_err(|e| ChatError::Transient(format!("Teams connector: {}", describe(e))))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED {
                if attempt == 0 {
                    continue;
                }
                break;
            }
            let retry_after = retry_after(response.headers());
            let bytes = read_capped(response)
                .await
                .map_err(|e| ChatError::Transient(format!("Teams connector: {e}")))?;
            if status.is_success() {
                return Ok(Sent::Ok(bytes));
            }
            if status == StatusCode::NOT_FOUND {
                return Ok(Sent::NotFound);
            }
            return Err(classify(status, retry_after, &bytes));
        }
        Err(ChatError::Permanent(
            "Teams connector refused a fresh token (401): check teams.app_id, the tenant and the bot's registration".into(),
        ))
    }
}

fn not_found() -> ChatError {
    ChatError::Permanent("Teams: no such conversation or activity (404)".into())
}

enum Sent {
    Ok(Vec<u8>),
    NotFound,
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ChatError> {
    // A 2xx with a body we cannot read most likely did what we asked;
    // retrying could post twice, so this is not retried.
    serde_json::from_slice(bytes)
        .map_err(|_| ChatError::Permanent("Teams connector: unexpected answer".into()))
}

/// `{serviceUrl}/seg/seg/…`, each segment percent-encoded; the service URL
/// must be https (plain http only on loopback), since the bearer token
/// goes there.
pub fn endpoint(service_url: &str, segments: &[&str]) -> Result<url::Url, ChatError> {
    let base = url::Url::parse(service_url)
        .map_err(|_| ChatError::Permanent("the Teams service URL is not a URL".into()))?;
    if !is_allowed_url(&base) || base.query().is_some() || base.cannot_be_a_base() {
        return Err(ChatError::Permanent(
            "the Teams service URL must be an https base URL".into(),
        ));
    }
    let mut text = base.as_str().trim_end_matches('/').to_owned();
    for segment in segments {
        text.push('/');
        text.extend(utf8_percent_encode(segment, SEGMENT));
    }
    url::Url::parse(&text).map_err(|_| ChatError::Permanent("bad Teams connector address".into()))
}

/// A failed connector answer as the engine's classification, with the Bot
/// Framework error code (`{"error":{"code":…}}`) when there is one.
fn classify(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> ChatError {
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
    let what = match code {
        Some(code) => format!("Teams connector: HTTP {status}, {code}"),
        None => format!("Teams connector: HTTP {status}"),
    };
    match status.as_u16() {
        429 => ChatError::RateLimited { retry_after },
        // 412: a concurrent update of the same message; Teams advises retrying.
        412 | 500..=599 => ChatError::Transient(what),
        _ => ChatError::Permanent(what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_ids_stay_one_path_segment() {
        let url = endpoint(
            "https://smba.trafficmanager.net/emea/",
            &[
                "v3",
                "conversations",
                "19:abc@thread.tacv2;messageid=1700000000000",
                "activities",
                "1/2",
            ],
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://smba.trafficmanager.net/emea/v3/conversations/19%3Aabc%40thread.tacv2%3Bmessageid%3D1700000000000/activities/1%2F2"
        );
    }

    #[test]
    fn a_service_url_without_a_trailing_slash_joins_the_same() {
        let a = endpoint(
            "https://smba.trafficmanager.net/amer",
            &["v3", "conversations"],
        );
        let b = endpoint(
            "https://smba.trafficmanager.net/amer/",
            &["v3", "conversations"],
        );
        assert_eq!(a.unwrap(), b.unwrap());
    }

    #[test]
    fn the_token_never_goes_to_a_plain_http_service_url() {
        assert!(matches!(
            endpoint("http://smba.example.net/emea/", &["v3"]),
            Err(ChatError::Permanent(_))
        ));
    }

    #[test]
    fn failures_are_classified_as_teams_documents_them() {
        let c = |s: u16| classify(StatusCode::from_u16(s).unwrap(), None, b"");
        assert!(matches!(c(429), ChatError::RateLimited { .. }));
        for s in [412, 500, 502, 503, 504] {
            assert!(matches!(c(s), ChatError::Transient(_)), "{s}");
        }
        for s in [400, 403, 405, 413] {
            assert!(matches!(c(s), ChatError::Permanent(_)), "{s}");
        }
        let body = br#"{"error":{"code":"BotNotInConversationRoster","message":"x"}}"#;
        assert_eq!(
            classify(StatusCode::FORBIDDEN, None, body),
            ChatError::Permanent(
                "Teams connector: HTTP 403 Forbidden, BotNotInConversationRoster".into()
            )
        );
    }

    #[test]
    fn a_thread_is_addressed_under_its_channel_and_root() {
        assert_eq!(
            thread_conversation_id("19:abc@thread.tacv2", "17000"),
            "19:abc@thread.tacv2;messageid=17000"
        );
        assert_eq!(
            thread_conversation_id("19:abc@thread.tacv2;messageid=1", "2"),
            "19:abc@thread.tacv2;messageid=2"
        );
    }
}
