//! The `Chat` port over Slack's Web API, through slack-morphism's client
//! pointed at `slack.api_url` (a loopback fake in tests and the demo).

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;

use super::origin::Identity;
use super::render;
use super::response_url::HookHosts;
use crate::domain::{ChatUserId, Email, Event, Notice, Request};
use crate::engine::home::Home;
use crate::engine::ports::{Approver, Chat, ChatError};
use crate::metrics::{Metrics, Outcome, Service};

/// The most an approver check may take: it runs inside a click's answer,
/// which Slack abandons after 3 seconds.
const CLICK_BUDGET: Duration = Duration::from_secs(2);

/// Settings for [`SlackChat`].
#[derive(Debug, Clone)]
pub struct SlackSettings {
    /// Web API base (`https://slack.com/api`).
    pub api_url: String,
    /// `SLACK_BOT_TOKEN` (`xoxb-…`).
    pub bot_token: SecretString,
    /// Channel id where approval messages go.
    pub approvals_channel: String,
    /// Approver user ids (`U…`/`W…`) and user-group ids (`S…`).
    pub approvers: Vec<String>,
    /// How long one Slack call may take. slack-morphism sets no limit, and
    /// a Slack that accepts connections but never answers must not hold up
    /// the outbox or a click's 3-second answer.
    pub timeout: Duration,
}

/// Slack, as the engine's `Chat`.
pub struct SlackChat {
    client: SlackClient<SlackClientHyperHttpsConnector>,
    token: SlackApiToken,
    settings: SlackSettings,
    hooks: HookHosts,
    /// Where each call's outcome is counted.
    metrics: Metrics,
}

/// The approvals channel as `conversations.info` describes it to the bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelFacts {
    /// Its name, without `#`.
    pub name: Option<String>,
    /// Archived: nothing can be posted there.
    pub archived: bool,
    /// Whether the bot is a member (it can post only then).
    pub member: bool,
}

/// A person as `users.info` describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonFacts {
    /// A deactivated account.
    pub deleted: bool,
    /// A bot, not a person.
    pub bot: bool,
    /// Whether the profile shows an email (`users:read.email`).
    pub email: bool,
}

/// Names where it talks to, never the token.
impl std::fmt::Debug for SlackChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackChat")
            .field("api_url", &self.settings.api_url)
            .field("approvals_channel", &self.settings.approvals_channel)
            .finish_non_exhaustive()
    }
}

/// Why the bot token could not be checked at start.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Slack refused the token (`invalid_auth`, `token_revoked`…): nothing
    /// will work until it is replaced.
    #[error("Slack refused SLACK_BOT_TOKEN ({0}); use the bot token (xoxb-…) of the app's current installation")]
    Refused(String),
    /// Slack could not be asked; it may answer later.
    #[error("could not ask Slack who the bot token belongs to ({0})")]
    Unavailable(ChatError),
}

/// Whether `api_url` may receive the bot token: `https`, or plain `http`
/// only to a loopback host (127.0.0.0/8, `::1`, `localhost`), where the
/// simulators and test servers live and nothing crosses a network. It must
/// be a base address (methods are appended to it) without credentials. The
/// reason starts so that it reads after the setting's name.
pub fn check_api_url(api_url: &str) -> Result<(), String> {
    crate::outbound::check_address(api_url, DEFAULT_API_URL, "the bot token", "Slack's Web API")
}

/// Slack's Web API, as the example in errors.
const DEFAULT_API_URL: &str = "https://slack.com/api";

impl SlackChat {
    /// A client for these settings. Plain HTTP is allowed besides HTTPS
    /// only to loopback, so the simulators work ([`check_api_url`]); real
    /// Slack is only reachable over HTTPS.
    pub fn new(settings: SlackSettings) -> anyhow::Result<Self> {
        if let Err(why) = check_api_url(&settings.api_url) {
            anyhow::bail!("the Slack API address {why}");
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .build();
        let connector = SlackClientHyperConnector::with_connector(https)
            .with_slack_api_url(settings.api_url.trim_end_matches('/'));
        let token = SlackApiToken::new(SlackApiTokenValue::new(
            settings.bot_token.expose_secret().to_string(),
        ));
        Ok(Self {
            client: SlackClient::new(connector),
            token,
            hooks: HookHosts::new(&settings.api_url),
            settings,
            metrics: Metrics::default(),
        })
    }

    /// The same client, counting every call into `metrics`.
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        Self { metrics, ..self }
    }

    /// Runs one Web API call (`method`, the `endpoint` label), counts its
    /// outcome, and classifies its failure for the engine.
    async fn observed<T>(
        &self,
        method: &'static str,
        call: impl std::future::Future<Output = Result<T, SlackClientError>>,
    ) -> Result<T, ChatError> {
        let watch = self.metrics.start(Service::Slack, method);
        let result = call.await;
        watch.done(outcome(&result));
        result.map_err(classify)
    }

    /// Which `response_url`s are Slack's under these settings.
    pub fn hook_hosts(&self) -> &HookHosts {
        &self.hooks
    }

    /// Who the bot token belongs to: `auth.test` for the workspace, the bot
    /// user and the bot, then `bots.info` for the app the bot belongs to.
    pub async fn identity(&self) -> Result<Identity, IdentityError> {
        let refused_or_not = |e: ChatError| match e {
            ChatError::Permanent(code) => IdentityError::Refused(code),
            other => IdentityError::Unavailable(other),
        };
        let session = self.client.open_session(&self.token);
        let auth = bounded(
            self.settings.timeout,
            self.observed("auth.test", session.auth_test()),
        )
        .await
        .map_err(refused_or_not)?;
        let bot_id = auth.bot_id.map(|b| b.to_string()).ok_or_else(|| {
            IdentityError::Refused("not a bot token: auth.test names no bot_id".into())
        })?;
        let req = SlackApiBotsInfoRequest::new().with_bot(bot_id.clone());
        let bot = bounded(
            self.settings.timeout,
            self.observed("bots.info", session.bots_info(&req)),
        )
        .await
        .map_err(refused_or_not)?
        .bot;
        Ok(Identity {
            team_id: auth.team_id.to_string(),
            user_id: auth.user_id.to_string(),
            bot_id,
            app_id: bot.app_id,
        })
    }

    fn channel_and_ts(reference: &str) -> Result<(SlackChannelId, SlackTs), ChatError> {
        let (channel, ts) = reference
            .split_once('/')
            .ok_or_else(|| ChatError::Permanent("bad message reference".into()))?;
        Ok((SlackChannelId::new(channel.into()), SlackTs::new(ts.into())))
    }

    async fn post(
        &self,
        channel: SlackChannelId,
        content: SlackMessageContent,
        thread: Option<SlackTs>,
    ) -> Result<SlackApiChatPostMessageResponse, ChatError> {
        let mut req = SlackApiChatPostMessageRequest::new(channel, content);
        req.thread_ts = thread;
        let session = self.client.open_session(&self.token);
        self.observed("chat.postMessage", session.chat_post_message(&req))
            .await
    }

    /// The approvals channel, as the bot sees it (`conversations.info`; read
    /// only, for `tempadmin check`).
    pub async fn approvals_channel(&self) -> Result<ChannelFacts, ChatError> {
        let req = SlackApiConversationsInfoRequest::new(SlackChannelId::new(
            self.settings.approvals_channel.clone(),
        ));
        let session = self.client.open_session(&self.token);
        let info = bounded(
            self.settings.timeout,
            self.observed("conversations.info", session.conversations_info(&req)),
        )
        .await?
        .channel;
        let flag = |f: Option<bool>| f.unwrap_or(false);
        Ok(ChannelFacts {
            name: info.name,
            archived: flag(info.flags.is_archived),
            member: flag(info.flags.is_member),
        })
    }

    /// A person, by user id (`users.info`; read only, for `tempadmin check`).
    pub async fn person(&self, user: &str) -> Result<PersonFacts, ChatError> {
        let req = SlackApiUsersInfoRequest::new(SlackUserId::new(user.into()));
        let session = self.client.open_session(&self.token);
        let user = bounded(
            self.settings.timeout,
            self.observed("users.info", session.users_info(&req)),
        )
        .await?
        .user;
        Ok(PersonFacts {
            deleted: user.deleted.unwrap_or(false),
            bot: user.flags.is_bot.unwrap_or(false),
            email: user.profile.and_then(|p| p.email).is_some(),
        })
    }

    /// A user group's members (`usergroups.users.list`), within the call
    /// timeout.
    pub async fn usergroup_members(&self, group: &str) -> Result<Vec<String>, ChatError> {
        bounded(self.settings.timeout, self.group_members(group)).await
    }

    /// Publishes `home` as its person's Home tab (`views.publish`, which
    /// replaces the whole tab, so publishing the same facts twice shows the
    /// same page). Each pending request links to its card through
    /// `chat.getPermalink`, asked for all at once; a card Slack gives no
    /// link for is pointed to by its channel instead.
    pub async fn publish_home(&self, home: &Home) -> Result<(), ChatError> {
        bounded(self.settings.timeout, async {
            let pending = home.to_decide.as_deref().unwrap_or_default();
            let links = futures::future::join_all(pending.iter().map(|r| self.card_link(r))).await;
            let links = pending
                .iter()
                .zip(links)
                .filter_map(|(r, link)| Some((r.id.clone(), link?)))
                .collect();
            let req = SlackApiViewsPublishRequest::new(
                SlackUserId::new(home.user.as_str().to_string()),
                render::home_view(home, &links),
            );
            let session = self.client.open_session(&self.token);
            self.observed("views.publish", session.views_publish(&req))
                .await?;
            Ok(())
        })
        .await
    }

    /// Where the card of `request` is: its permalink, or its channel.
    async fn card_link(&self, request: &Request) -> Option<render::CardLink> {
        let (channel, ts) = Self::channel_and_ts(request.approval_message.as_deref()?).ok()?;
        let req = SlackApiChatGetPermalinkRequest::new(channel.clone(), ts);
        let session = self.client.open_session(&self.token);
        match self
            .observed("chat.getPermalink", session.chat_get_permalink(&req))
            .await
        {
            Ok(found) => Some(render::CardLink::Permalink(found.permalink.to_string())),
            Err(e) => {
                tracing::debug!(error = %e, "no permalink for a card; linking its channel");
                Some(render::CardLink::Channel(channel.to_string()))
            }
        }
    }

    /// A user group's members, asked for now: a person removed from the
    /// group must lose the right to decide at once, not when a cache expires.
    async fn group_members(&self, group: &str) -> Result<Vec<String>, ChatError> {
        let req = SlackApiUserGroupsUsersListRequest::new(SlackUserGroupId::new(group.into()));
        let session = self.client.open_session(&self.token);
        Ok(self
            .observed("usergroups.users.list", session.usergroups_users_list(&req))
            .await?
            .users
            .into_iter()
            .map(|u| u.to_string())
            .collect())
    }
}

/// How a Web API call ended, for `/metrics`.
fn outcome<T>(result: &Result<T, SlackClientError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Success,
        Err(SlackClientError::RateLimitError(_)) => Outcome::RateLimited,
        Err(SlackClientError::ApiError(_)) => Outcome::ApiError,
        Err(SlackClientError::HttpError(e)) => Outcome::of_status(e.status_code.as_u16()),
        // hyper's: no HTTP answer came back (refused, reset, TLS).
        Err(SlackClientError::HttpProtocolError(_)) => Outcome::Connect,
        Err(_) => Outcome::Error,
    }
}

/// Maps slack-morphism's errors to what the engine can act on.
fn classify(e: SlackClientError) -> ChatError {
    match e {
        SlackClientError::RateLimitError(e) => ChatError::RateLimited {
            retry_after: e.retry_after,
        },
        SlackClientError::ApiError(e) => match e.code.as_str() {
            "ratelimited" => ChatError::RateLimited { retry_after: None },
            "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
                ChatError::Transient(e.code)
            }
            _ => ChatError::Permanent(e.code),
        },
        SlackClientError::HttpError(e) if e.status_code.is_server_error() => {
            ChatError::Transient(format!("HTTP {}", e.status_code))
        }
        SlackClientError::HttpError(e) if e.status_code.as_u16() == 429 => {
            ChatError::RateLimited { retry_after: None }
        }
        SlackClientError::HttpError(e) => ChatError::Permanent(http_failure(&e)),
        other => ChatError::Transient(other.to_string().chars().take(200).collect()),
    }
}

/// A `response_url` names what it refused as a bare word under a 4xx status
/// (`invalid_blocks`, `no_text`, `expired_url`…); that word says what to fix,
/// so it is kept. Anything else in a body (an HTML error page) is not.
fn http_failure(e: &slack_morphism::errors::SlackClientHttpError) -> String {
    let word = e.http_response_body.as_deref().map(str::trim).filter(|b| {
        !b.is_empty() && b.len() <= 64 && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
    });
    match word {
        Some(word) => format!("HTTP {} {word}", e.status_code.as_u16()),
        None => format!("HTTP {}", e.status_code),
    }
}

/// Bounds a Slack call by `limit`; running out counts as a transient failure.
async fn bounded<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, ChatError>>,
) -> Result<T, ChatError> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_| Err(ChatError::Transient("Slack did not answer in time".into())))
}

#[async_trait]
impl Chat for SlackChat {
    async fn user_email(&self, request: &Request) -> Result<Option<Email>, ChatError> {
        bounded(
            self.settings.timeout,
            self.user_email_unbounded(&request.requester),
        )
        .await
    }

    async fn approver(&self, user: &ChatUserId) -> Result<Option<Approver>, ChatError> {
        // Asked while Slack waits for the click's answer (3 s).
        let limit = self.settings.timeout.min(CLICK_BUDGET);
        bounded(limit, async {
            if !self.is_approver_unbounded(user).await? {
                return Ok(None);
            }
            let email = self.user_email_unbounded(user).await?;
            Ok(Some(Approver { email }))
        })
        .await
    }

    async fn deliver(
        &self,
        request: &Request,
        notice: &Notice,
    ) -> Result<Option<String>, ChatError> {
        bounded(
            self.settings.timeout,
            self.deliver_unbounded(request, notice),
        )
        .await
    }
}

impl SlackChat {
    async fn user_email_unbounded(&self, user: &ChatUserId) -> Result<Option<Email>, ChatError> {
        let req = SlackApiUsersInfoRequest::new(SlackUserId::new(user.to_string()));
        let session = self.client.open_session(&self.token);
        let info = self
            .observed("users.info", session.users_info(&req))
            .await?;
        Ok(info
            .user
            .profile
            .and_then(|p| p.email)
            .and_then(|e| Email::parse(e.as_ref())))
    }

    /// Direct approvers first; then every group at once (within the click's
    /// budget), and each on its own: a group that fails to resolve must
    /// not hide a member of another. Only when the person is in none of the
    /// groups that answered, and some group did not, is the answer unknown.
    async fn is_approver_unbounded(&self, user: &ChatUserId) -> Result<bool, ChatError> {
        if self.settings.approvers.iter().any(|a| a == user.as_str()) {
            return Ok(true);
        }
        let groups = self
            .settings
            .approvers
            .iter()
            .filter(|a| a.starts_with('S'))
            .map(|group| self.group_members(group));
        let mut failed = None;
        for members in futures::future::join_all(groups).await {
            match members {
                Ok(members) if members.iter().any(|m| m == user.as_str()) => return Ok(true),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "an approvers' user group did not resolve");
                    failed = Some(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(false),
        }
    }

    async fn deliver_unbounded(
        &self,
        request: &Request,
        notice: &Notice,
    ) -> Result<Option<String>, ChatError> {
        let thread = || {
            request
                .approval_message
                .as_deref()
                .ok_or_else(|| ChatError::Permanent("no approval message".into()))
                .and_then(Self::channel_and_ts)
        };
        match notice {
            Notice::ApprovalCard => {
                let channel = SlackChannelId::new(self.settings.approvals_channel.clone());
                let posted = self
                    .post(channel, render::approval_card(request), None)
                    .await?;
                Ok(Some(format!("{}/{}", posted.channel, posted.ts)))
            }
            Notice::RefreshCard => {
                let (channel, ts) = thread()?;
                let req =
                    SlackApiChatUpdateRequest::new(channel, render::approval_card(request), ts);
                let session = self.client.open_session(&self.token);
                self.observed("chat.update", session.chat_update(&req))
                    .await?;
                Ok(None)
            }
            Notice::Thread { event } => {
                let (channel, ts) = thread()?;
                let text = match event {
                    Event::ApprovalReminder { expires_at } => {
                        render::approval_reminder(request, &self.settings.approvers, *expires_at)
                    }
                    _ => render::thread_text(request, event),
                };
                let content = SlackMessageContent::new().with_text(text);
                self.post(channel, content, Some(ts)).await?;
                Ok(None)
            }
            Notice::Direct { event } => {
                let content = render::direct_message(request, event);
                self.direct(&request.requester, content).await?;
                Ok(None)
            }
            Notice::Private { reply_to, body } => {
                let content = render::private_message(request, body);
                match reply_to.as_ref().or(request.reply_to.as_ref()) {
                    Some(url) => {
                        // Checked again here: a stored address may predate
                        // the check where payloads arrive.
                        let url = self
                            .hooks
                            .parse(url)
                            .map_err(|e| ChatError::Permanent(e.to_string()))?
                            .url()
                            .clone();
                        let mut msg = SlackApiPostWebhookMessageRequest::new(content);
                        // Answers through a response_url are ephemeral unless
                        // they say otherwise.
                        msg.replace_original = Some(false);
                        let url = SlackResponseUrl::new(url);
                        self.observed("response_url", self.client.respond_to_event(&url, &msg))
                            .await?;
                    }
                    // No response_url (it is only valid for 30 minutes): say it directly.
                    None => self.direct(&request.requester, content).await?,
                }
                Ok(None)
            }
        }
    }

    /// A direct message: `chat.postMessage` with the person's user id as
    /// `channel` lands in the app's DM with them, so no `conversations.open`
    /// call (and no extra rate-limited round trip) is needed per message.
    async fn direct(
        &self,
        user: &ChatUserId,
        content: SlackMessageContent,
    ) -> Result<(), ChatError> {
        let channel = SlackChannelId::new(user.to_string());
        self.post(channel, content, None).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slack_morphism::errors::{SlackClientHttpError, SlackRateLimitError};

    fn http(status: u16, body: &str) -> SlackClientError {
        SlackClientError::HttpError(
            SlackClientHttpError::new(axum::http::StatusCode::from_u16(status).unwrap())
                .with_http_response_body(body.to_string()),
        )
    }

    #[test]
    fn a_client_for_a_plain_http_address_off_loopback_is_refused() {
        let settings = |api_url: &str| SlackSettings {
            api_url: api_url.into(),
            bot_token: SecretString::from("xoxb-1"),
            approvals_channel: "C1".into(),
            approvers: vec!["U1".into()],
            timeout: Duration::from_secs(1),
        };
        let err = SlackChat::new(settings("http://slack.com/api"))
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("plain http"), "{err:#}");
        assert!(!format!("{err:#}").contains("xoxb-1"), "{err:#}");
    }

    #[test]
    fn response_url_failures_are_retried_only_when_slack_may_take_them_later() {
        assert!(matches!(
            classify(SlackClientError::RateLimitError(
                SlackRateLimitError::new().with_retry_after(Duration::from_secs(3))
            )),
            ChatError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(3)
        ));
        assert!(matches!(classify(http(503, "")), ChatError::Transient(_)));
        assert!(matches!(
            classify(http(500, "rollup_error")),
            ChatError::Transient(_)
        ));
        assert_eq!(
            classify(http(400, "invalid_blocks")),
            ChatError::Permanent("HTTP 400 invalid_blocks".into())
        );
        assert_eq!(
            classify(http(404, "<html><body>Not found</body></html>")),
            ChatError::Permanent("HTTP 404 Not Found".into())
        );
    }
}
