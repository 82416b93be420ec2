//! Microsoft Teams through the Bot Framework: the protocol pieces that the
//! Teams `Chat` adapter and the `/teams/messages` route are built on.
//!
//! There is no maintained Rust Bot Framework SDK, so the two directions of
//! the protocol are ours:
//! - [`auth`]: inbound. Every activity the Bot Framework Service posts to us
//!   carries `Authorization: Bearer JWT`; [`auth::BotFrameworkAuth`] accepts
//!   it only when it is RS256-signed by a key from the Bot Framework's OpenID
//!   metadata that endorses the activity's channel, issued by
//!   `https://api.botframework.com` for our app id, current (5 minutes of
//!   skew) and minted for the activity's own `serviceUrl`. Nothing else acts.
//! - [`connector`]: outbound. A client-credentials token for the Bot
//!   Connector, cached until shortly before it expires, and the REST calls
//!   (post, reply, update, 1:1 conversation, member look-up), each bounded by
//!   a timeout, never following a redirect, failures classified as the
//!   engine's [`ChatError`](crate::engine::ports::ChatError).
//!
//! [`TeamsSettings`] holds the `[teams]` keys of the config (DESIGN.md) and
//! the `TEAMS_APP_PASSWORD` secret, as `config` reads them. [`chat`] is the
//! `Chat` adapter and [`render`] the Adaptive Cards, from the shared wording.

pub mod auth;
pub mod chat;
pub mod connector;
pub mod graph;
pub mod package;
pub mod render;
mod token;

use std::time::Duration;

use secrecy::SecretString;

/// The issuer of every token the Bot Framework Service sends to a bot.
pub const BOT_FRAMEWORK_ISSUER: &str = "https://api.botframework.com";

/// Where the Bot Framework publishes the keys it signs inbound tokens with.
pub const DEFAULT_OPENID_METADATA_URL: &str =
    "https://login.botframework.com/v1/.well-known/openidconfiguration";

/// The Entra ID token endpoint; `{tenant}` becomes `teams.tenant_id`.
pub const DEFAULT_TOKEN_URL: &str = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token";

/// The scope of the client-credentials token the Bot Connector accepts.
pub const CONNECTOR_SCOPE: &str = "https://api.botframework.com/.default";

/// The scope of the client-credentials token Microsoft Graph accepts.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// Microsoft Graph, where Entra ID group members are looked up.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com";

/// `contentType` of an Adaptive Card attachment.
pub const ADAPTIVE_CARD_CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";

/// The most any Bot Framework or Entra ID answer may weigh when we read it:
/// metadata, key sets, tokens and connector answers are a few kilobytes, and
/// a misbehaving server must not make us buffer without end.
pub(crate) const MAX_ANSWER_BYTES: usize = 512 * 1024;

/// The `[teams]` settings and the app secret.
#[derive(Debug, Clone)]
pub struct TeamsSettings {
    /// The bot's Microsoft App ID: the audience of inbound tokens and the
    /// `client_id` of outbound ones. Not secret.
    pub app_id: String,
    /// `TEAMS_APP_PASSWORD`: the app's client secret.
    pub app_password: SecretString,
    /// The bot's Entra ID tenant (a GUID). Azure has created only
    /// single-tenant bots since July 2025, so there is always one: tokens
    /// come from it, and only its activities and its people count.
    pub tenant_id: String,
    /// The channel conversation approval cards go to (`19:…@thread.tacv2`).
    pub approvals_conversation: String,
    /// The Bot Connector base for proactive messages
    /// (`https://smba.trafficmanager.net/emea/`).
    pub service_url: String,
    /// Approvers: Entra ID object ids or email addresses.
    pub approvers: Vec<String>,
    /// Entra ID groups (object ids) whose members, direct or nested, also
    /// approve; asked of Microsoft Graph at every click.
    pub approver_groups: Vec<String>,
    /// The Microsoft Graph base (`https://graph.microsoft.com`).
    pub graph_url: String,
    /// The OpenID metadata document that names the signing keys' `jwks_uri`.
    pub openid_metadata_url: String,
    /// The token endpoint; may contain `{tenant}` (see [`DEFAULT_TOKEN_URL`]).
    pub token_url: String,
    /// How long one outbound call (metadata, keys, token, connector, Graph)
    /// may take.
    pub timeout: Duration,
}

impl TeamsSettings {
    /// Settings with the documented defaults for everything but the app's
    /// identity, its tenant and where approvals go.
    pub fn new(
        app_id: impl Into<String>,
        app_password: SecretString,
        tenant_id: impl Into<String>,
        approvals_conversation: impl Into<String>,
        service_url: impl Into<String>,
    ) -> Self {
        Self {
            app_id: app_id.into(),
            app_password,
            tenant_id: tenant_id.into(),
            approvals_conversation: approvals_conversation.into(),
            service_url: service_url.into(),
            approvers: Vec::new(),
            approver_groups: Vec::new(),
            graph_url: DEFAULT_GRAPH_URL.into(),
            openid_metadata_url: DEFAULT_OPENID_METADATA_URL.into(),
            token_url: DEFAULT_TOKEN_URL.into(),
            timeout: Duration::from_secs(5),
        }
    }

    /// The token endpoint with `{tenant}` filled in: a single-tenant bot
    /// gets its tokens from its own tenant.
    pub fn resolved_token_url(&self) -> String {
        self.token_url.replace("{tenant}", &self.tenant_id)
    }

    /// Whether `tenant` (from an activity or the members API) is ours.
    /// Tenant ids are GUIDs, which name the same tenant in any case.
    pub fn is_our_tenant(&self, tenant: &str) -> bool {
        tenant.eq_ignore_ascii_case(&self.tenant_id)
    }
}

/// Whether tempadmin may send requests (and with them bearer tokens) to
/// `url`: HTTPS anywhere, plain HTTP only on loopback (the simulators).
pub(crate) fn is_allowed_url(url: &url::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => crate::outbound::is_loopback(url),
        _ => false,
    }
}

/// A reqwest client for Bot Framework calls: bounded by `timeout`, and it
/// never follows a redirect, so a bearer token or the client secret never
/// reaches an origin we did not choose.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()
        .expect("a reqwest client with rustls builds")
}

/// Reads at most [`MAX_ANSWER_BYTES`] of an answer's body.
pub(crate) async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!("answer larger than {MAX_ANSWER_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error in words that name no URL (a URL can carry a tenant or
/// conversation id; harmless, but errors should say what failed, not where).
pub(crate) fn describe(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "broken answer"
    } else {
        "request failed"
    };
    match std::error::Error::source(&error) {
        Some(source) => format!("{kind}: {source}"),
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_allowed_only_on_loopback() {
        let ok = |u: &str| is_allowed_url(&url::Url::parse(u).unwrap());
        assert!(ok("https://login.botframework.com/v1/keys"));
        assert!(ok("http://127.0.0.1:9/keys"));
        assert!(ok("http://[::1]:9/keys"));
        assert!(ok("http://localhost:9/keys"));
        assert!(!ok("http://login.botframework.com/v1/keys"));
        assert!(!ok("http://10.0.0.1/keys"));
        assert!(!ok("ftp://127.0.0.1/keys"));
    }

    #[test]
    fn the_token_url_names_our_tenant() {
        let s = TeamsSettings::new(
            "app",
            SecretString::from("pw"),
            "72f988bf-0000-4000-8000-0000000000aa",
            "19:x",
            "https://s/",
        );
        assert_eq!(
            s.resolved_token_url(),
            "https://login.microsoftonline.com/72f988bf-0000-4000-8000-0000000000aa/oauth2/v2.0/token"
        );
    }

    #[test]
    fn our_tenant_is_recognised_in_any_case_and_no_other_is() {
        let s = TeamsSettings::new(
            "app",
            SecretString::from("pw"),
            "72f988bf-0000-4000-8000-0000000000aa",
            "19:x",
            "https://s/",
        );
        assert!(s.is_our_tenant("72F988BF-0000-4000-8000-0000000000AA"));
        assert!(!s.is_our_tenant("72f988bf-0000-4000-8000-0000000000ab"));
        assert!(!s.is_our_tenant(""));
    }
}
