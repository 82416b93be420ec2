//! Configuration: the TOML file of DESIGN.md, overridden by environment
//! variables, with secrets from the environment only. A `[slack]` or a
//! `[teams]` section is required, or both (one process serves the two);
//! `database_url` names SQLite (one process) or PostgreSQL (replicas).
//! Settings are checked here, at start-up, so a bad one stops the bot with
//! a clear message naming the key instead of failing at the first request.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use secrecy::SecretString;
use serde::Deserialize;

use crate::domain::{ApprovalReminder, GrantDuration, Policy};
use crate::engine::device::{DeviceSettings, EndElevated};
use crate::engine::Workers;
use crate::jumpcloud::{GrantMode, JumpCloudCredentials, JumpCloudSettings, ServiceAccount};
use crate::slack::client::SlackSettings;
use crate::teams::TeamsSettings;

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// `sqlite://…` (one process) or `postgres://…` (replicas).
    pub database_url: String,
    /// Slack, when `[slack]` is present.
    pub slack: Option<SlackConfig>,
    /// Microsoft Teams, when `[teams]` is present. At least one of the two is.
    pub teams: Option<TeamsSettings>,
    /// JumpCloud.
    pub jumpcloud: JumpCloudSettings,
    /// `jumpcloud.grant_mode`: how admin rights are given and taken back.
    pub grant_mode: GrantMode,
    /// Request policy.
    pub policy: Policy,
    /// The scheduler's worker pool (`[scheduler] workers`).
    pub workers: Workers,
    /// Limits on inbound HTTP connections.
    pub http: HttpConfig,
    /// A separate address for `GET /metrics`; when set, `/metrics` is served
    /// only there, so the port Slack reaches does not expose it.
    pub metrics_listen: Option<String>,
    /// `[device]`: notices and ending what ran elevated on the computer.
    pub device: DeviceSettings,
}

/// Limits that keep slow, idle or too many clients from starving the
/// process: every inbound connection holds a file descriptor, and the
/// JumpCloud and Slack calls that revoke on time need some too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// A connection that has not sent a request's complete headers this long
    /// after it opened (or after its previous answer) is closed.
    pub header_timeout: Duration,
    /// A request whose body has not arrived and been answered within this
    /// time gets 408 and its connection is closed.
    pub request_timeout: Duration,
    /// At most this many inbound connections on `listen` at once; further
    /// clients wait in the kernel's accept queue (`metrics_listen` has a few
    /// connections of its own).
    /// `None`: derived at start from the open-file limit, leaving a reserve
    /// for the database and outbound calls.
    pub max_connections: Option<usize>,
    /// After the shutdown signal, connections still open this long are cut.
    pub shutdown_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            // Slack sends a whole request at once; ten seconds is generous
            // for any real client and short for one that stalls.
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            max_connections: None,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Slack settings plus how Slack's deliveries reach the bot.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// Outbound Web API settings.
    pub api: SlackSettings,
    /// `slack.mode`: signed HTTP requests, or Socket Mode.
    pub mode: SlackMode,
    /// Workspaces besides the bot token's own whose commands and clicks
    /// count (`slack.team_ids`: the workspaces of an Enterprise Grid).
    pub team_ids: Vec<String>,
}

/// How Slack's commands and clicks reach the bot (`slack.mode`).
#[derive(Debug, Clone)]
pub enum SlackMode {
    /// `"http"` (the default): Slack posts them to our public routes,
    /// signed with `SLACK_SIGNING_SECRET`.
    Http {
        /// `SLACK_SIGNING_SECRET`.
        signing_secret: SecretString,
    },
    /// `"socket"`: the bot opens a WebSocket to Slack with the app-level
    /// token `SLACK_APP_TOKEN` (`xapp-…`, scope `connections:write`) and
    /// receives them there; no public URL and no signing secret.
    Socket {
        /// `SLACK_APP_TOKEN`.
        app_token: SecretString,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    slack: Option<FileSlack>,
    #[serde(default)]
    jumpcloud: FileJumpCloud,
    teams: Option<FileTeams>,
    #[serde(default)]
    policy: FilePolicy,
    #[serde(default)]
    scheduler: FileScheduler,
    metrics_listen: Option<String>,
    #[serde(default)]
    http: FileHttp,
    #[serde(default)]
    device: FileDevice,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDevice {
    notices: Option<bool>,
    end_elevated: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScheduler {
    workers: Option<usize>,
    lease: Option<GrantDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHttp {
    header_timeout: Option<GrantDuration>,
    request_timeout: Option<GrantDuration>,
    max_connections: Option<usize>,
    shutdown_timeout: Option<GrantDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSlack {
    mode: Option<String>,
    api_url: Option<String>,
    approvals_channel: Option<String>,
    #[serde(default)]
    approvers: Vec<String>,
    timeout: Option<GrantDuration>,
    #[serde(default)]
    team_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTeams {
    app_id: Option<String>,
    tenant_id: Option<String>,
    approvals_conversation: Option<String>,
    service_url: Option<String>,
    #[serde(default)]
    approvers: Vec<String>,
    #[serde(default)]
    approver_groups: Vec<String>,
    graph_url: Option<String>,
    openid_metadata_url: Option<String>,
    token_url: Option<String>,
    timeout: Option<GrantDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJumpCloud {
    api_url: Option<String>,
    oauth_url: Option<String>,
    max_requests_per_second: Option<u32>,
    grant_mode: Option<String>,
    timeout: Option<GrantDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePolicy {
    default_duration: Option<GrantDuration>,
    min_duration: Option<GrantDuration>,
    max_duration: Option<GrantDuration>,
    require_reason: Option<bool>,
    max_reason_length: Option<usize>,
    max_open_requests: Option<usize>,
    max_requests_per_hour: Option<usize>,
    approval_timeout: Option<GrantDuration>,
    reminders: Option<Vec<GrantDuration>>,
    /// `true`, `false`, or a duration such as `"10m"`; read as any value
    /// so that a wrong one gets an error that says what to write.
    approval_reminder: Option<toml::Value>,
}

/// Default Slack Web API base.
pub const SLACK_API_URL: &str = "https://slack.com/api";
/// Default Bot Connector base for messages the bot starts (the global one).
pub const TEAMS_SERVICE_URL: &str = "https://smba.trafficmanager.net/teams/";
/// Default JumpCloud API base.
pub const JUMPCLOUD_API_URL: &str = "https://console.jumpcloud.com";

impl Config {
    /// Reads `path` and the environment (through `env`, so tests can pass
    /// their own).
    pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        Self::parse(&text, env).with_context(|| format!("in the config file {}", path.display()))
    }

    /// Parses the TOML text and the environment.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let file: FileConfig = toml::from_str(text).context("the config file is not valid")?;
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let secret = |name: &str| -> anyhow::Result<SecretString> {
            env(name)
                .map(SecretString::from)
                .with_context(|| format!("the environment variable {name} is not set"))
        };
        if file.slack.is_none() && file.teams.is_none() {
            bail!(
                "a [slack] or a [teams] section is required (where approvals go and who approves)"
            );
        }
        let slack = match file.slack {
            None => None,
            Some(slack) => Some(slack_config(slack, &env, &secret)?),
        };
        let teams = match file.teams {
            None => None,
            Some(teams) => Some(teams_settings(teams, &env, &secret)?),
        };
        let grant_mode = file
            .jumpcloud
            .grant_mode
            .as_deref()
            .unwrap_or("association");
        let grant_mode = match grant_mode {
            "association" => GrantMode::Association,
            "access_request" => GrantMode::AccessRequest,
            other => bail!(
                "jumpcloud.grant_mode `{other}` is unknown; use \"association\" or \"access_request\""
            ),
        };
        let policy = policy(file.policy)?;
        let workers = match file.scheduler.workers {
            None => Workers::default(),
            Some(n @ 4..=1024) => Workers::new(n),
            Some(n) => bail!("scheduler.workers = {n} is out of range: use 4 to 1024"),
        };
        let workers = match file.scheduler.lease.map(|d| d.as_secs()) {
            None => workers,
            Some(secs @ 3..=600) => workers.with_lease(Duration::from_secs(secs)),
            Some(secs) => bail!(
                "scheduler.lease = {secs}s is out of range: use 3s to 10m (how soon another replica takes over a killed one's work)"
            ),
        };
        let (jumpcloud_url, jumpcloud_url_from) = match env("JUMPCLOUD_API_URL") {
            Some(url) => (url, "the environment variable JUMPCLOUD_API_URL"),
            None => (
                file.jumpcloud
                    .api_url
                    .unwrap_or_else(|| JUMPCLOUD_API_URL.into()),
                "jumpcloud.api_url",
            ),
        };
        // Checked here, not only when the client is built, so the message
        // names where the address came from.
        if let Err(why) = crate::jumpcloud::check_api_url(&jumpcloud_url) {
            bail!("{jumpcloud_url_from} {why}");
        }
        let credentials = jumpcloud_credentials(&env, file.jumpcloud.oauth_url)?;
        let http = http(file.http)?;
        let listen = env("TEMPADMIN_LISTEN")
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:3000".into());
        let metrics_listen = env("TEMPADMIN_METRICS_LISTEN").or(file.metrics_listen);
        if metrics_listen.as_deref() == Some(listen.as_str()) {
            bail!("metrics_listen must differ from listen ({listen}); leave it out to serve /metrics on listen");
        }
        let timeout = file
            .jumpcloud
            .timeout
            .map(GrantDuration::as_std)
            .unwrap_or(Duration::from_secs(15));
        let max_requests_per_second = match file.jumpcloud.max_requests_per_second {
            None => None,
            Some(n @ 1..=10_000) => std::num::NonZeroU32::new(n),
            Some(n) => bail!(
                "jumpcloud.max_requests_per_second = {n} is out of range: use 1 to 10000, or leave it out for no limit of the bot's own"
            ),
        };
        let end_elevated = match file.device.end_elevated.as_deref() {
            None => EndElevated::Off,
            Some(text) => EndElevated::parse(text).with_context(|| {
                format!("device.end_elevated `{text}` is unknown; use \"off\", \"notify\" or \"terminate\"")
            })?,
        };
        let device = DeviceSettings {
            notices: file.device.notices.unwrap_or(false),
            end_elevated,
        };
        Ok(Self {
            listen,
            database_url: env("DATABASE_URL")
                .or(file.database_url)
                .unwrap_or_else(|| "sqlite://tempadmin.db".into()),
            slack,
            teams,
            jumpcloud: JumpCloudSettings {
                api_url: jumpcloud_url,
                credentials,
                org_id: env("JUMPCLOUD_ORG_ID"),
                timeout,
                max_requests_per_second,
            },
            grant_mode,
            policy,
            workers,
            http,
            metrics_listen,
            device,
        })
    }
}

fn slack_config(
    slack: FileSlack,
    env: &impl Fn(&str) -> Option<String>,
    secret: &impl Fn(&str) -> anyhow::Result<SecretString>,
) -> anyhow::Result<SlackConfig> {
    let approvals_channel = slack
        .approvals_channel
        .filter(|c| !c.trim().is_empty())
        .context(
            "slack.approvals_channel is required: the channel id where approval requests go",
        )?;
    if slack.approvers.is_empty() {
        bail!("slack.approvers is empty: nobody could approve a request");
    }
    if let Some(bad) = slack
        .approvers
        .iter()
        .find(|a| !a.starts_with(['U', 'W', 'S']) || a.len() < 3)
    {
        bail!("slack.approvers entry `{bad}` is not a Slack user id (U…/W…) or user-group id (S…)");
    }
    if let Some(bad) = slack
        .team_ids
        .iter()
        .find(|t| !t.starts_with('T') || t.len() < 3)
    {
        bail!("slack.team_ids entry `{bad}` is not a Slack workspace id (T…)");
    }
    let (api_url, api_url_from) = match env("SLACK_API_URL") {
        Some(url) => (url, "the environment variable SLACK_API_URL"),
        None => (
            slack.api_url.unwrap_or_else(|| SLACK_API_URL.into()),
            "slack.api_url",
        ),
    };
    // As for JumpCloud's: the bot token goes there, so plain http only to
    // loopback; checked here so the message names where the address came from.
    if let Err(why) = crate::slack::client::check_api_url(&api_url) {
        bail!("{api_url_from} {why}");
    }
    Ok(SlackConfig {
        api: SlackSettings {
            api_url,
            bot_token: secret("SLACK_BOT_TOKEN")?,
            approvals_channel,
            approvers: slack.approvers,
            timeout: slack
                .timeout
                .map(GrantDuration::as_std)
                .unwrap_or(Duration::from_secs(10)),
        },
        mode: slack_mode(slack.mode.as_deref(), env, secret)?,
        team_ids: slack.team_ids,
    })
}

/// `slack.mode` and its secret. The app-level token is checked for its
/// kind only (by its prefix, never shown): whether Slack accepts it is
/// asked at start (`apps.connections.open`).
fn slack_mode(
    mode: Option<&str>,
    env: &impl Fn(&str) -> Option<String>,
    secret: &impl Fn(&str) -> anyhow::Result<SecretString>,
) -> anyhow::Result<SlackMode> {
    match mode.unwrap_or("http") {
        "http" => Ok(SlackMode::Http {
            signing_secret: secret("SLACK_SIGNING_SECRET")?,
        }),
        "socket" => {
            let Some(token) = env("SLACK_APP_TOKEN") else {
                bail!(
                    "slack.mode = \"socket\" needs the environment variable SLACK_APP_TOKEN: \
                     an app-level token (xapp-…) with the connections:write scope, made under \
                     Basic Information → App-Level Tokens in the app's settings"
                );
            };
            let token = token.trim();
            if !token.starts_with("xapp-") {
                let looks_like = match token.get(..5) {
                    Some("xoxb-") => {
                        " (it holds a bot token, xoxb-…, which belongs in SLACK_BOT_TOKEN)"
                    }
                    Some("xoxp-") => " (it holds a user token, xoxp-…)",
                    _ => "",
                };
                bail!(
                    "SLACK_APP_TOKEN is not an app-level token{looks_like}: Socket Mode needs one \
                     starting with xapp- with the connections:write scope, made under Basic \
                     Information → App-Level Tokens in the app's settings"
                );
            }
            Ok(SlackMode::Socket {
                app_token: SecretString::from(token.to_owned()),
            })
        }
        other => bail!("slack.mode `{other}` is unknown; use \"http\" or \"socket\""),
    }
}

fn teams_settings(
    teams: FileTeams,
    env: &impl Fn(&str) -> Option<String>,
    secret: &impl Fn(&str) -> anyhow::Result<SecretString>,
) -> anyhow::Result<TeamsSettings> {
    let app_id = env("TEAMS_APP_ID")
        .or(teams.app_id)
        .filter(|a| !a.trim().is_empty())
        .context("teams.app_id (or TEAMS_APP_ID) is required: the bot's Microsoft App ID")?;
    let approvals_conversation = teams
        .approvals_conversation
        .filter(|c| !c.trim().is_empty())
        .context("teams.approvals_conversation is required: the channel's conversation id (19:…@thread.tacv2) where approval cards go")?;
    if teams
        .approvers
        .iter()
        .chain(&teams.approver_groups)
        .all(|a| a.trim().is_empty())
    {
        bail!(
            "teams.approvers and teams.approver_groups are empty: nobody could approve a request"
        );
    }
    if let Some(bad) = teams.approver_groups.iter().find(|g| !is_object_id(g)) {
        bail!("teams.approver_groups entry `{bad}` is not an Entra ID group object id (a GUID)");
    }
    // Azure has created only single-tenant bots since July 2025, and a bot
    // that took any tenant's activities would let anyone in any Microsoft
    // 365 tenant ask for, and approve, admin rights here.
    let Some(tenant_id) = teams.tenant_id.filter(|t| !t.trim().is_empty()) else {
        bail!(
            "teams.tenant_id is required: set it to the bot's App Tenant ID (Azure Bot → Configuration), \
             your Entra ID tenant's GUID. Azure has created only single-tenant bots since July 2025, and \
             only activities and people of this tenant may ask for or approve admin rights"
        );
    };
    if !is_object_id(&tenant_id) {
        bail!(
            "teams.tenant_id `{tenant_id}` is not a tenant id: use the GUID shown as App Tenant ID \
             (Azure Bot → Configuration), not a domain name"
        );
    }
    let mut settings = TeamsSettings::new(
        app_id.trim(),
        secret("TEAMS_APP_PASSWORD")?,
        tenant_id.trim(),
        approvals_conversation.trim(),
        teams
            .service_url
            .unwrap_or_else(|| TEAMS_SERVICE_URL.into()),
    );
    settings.approvers = teams.approvers;
    settings.approver_groups = teams
        .approver_groups
        .iter()
        .map(|g| g.trim().to_owned())
        .collect();
    if let Some(url) = teams.graph_url {
        settings.graph_url = url;
    }
    if let Some(url) = teams.openid_metadata_url {
        settings.openid_metadata_url = url;
    }
    if let Some(url) = teams.token_url {
        settings.token_url = url;
    }
    if let Some(timeout) = teams.timeout {
        settings.timeout = timeout.as_std();
    }
    for (key, url) in [
        ("teams.service_url", settings.service_url.as_str()),
        (
            "teams.openid_metadata_url",
            settings.openid_metadata_url.as_str(),
        ),
        ("teams.token_url", settings.token_url.as_str()),
        ("teams.graph_url", settings.graph_url.as_str()),
    ] {
        let ok = url::Url::parse(&url.replace("{tenant}", "t"))
            .is_ok_and(|u| crate::teams::is_allowed_url(&u));
        if !ok {
            bail!("{key} `{url}` must be an https URL (plain http only to loopback)");
        }
    }
    Ok(settings)
}

/// `JUMPCLOUD_API_KEY`, or a service account's `JUMPCLOUD_CLIENT_ID` and
/// `JUMPCLOUD_CLIENT_SECRET`: exactly one of the two, since with both it
/// would be unclear which rights the bot acts with.
fn jumpcloud_credentials(
    env: &impl Fn(&str) -> Option<String>,
    oauth_url: Option<String>,
) -> anyhow::Result<JumpCloudCredentials> {
    // Checked whichever credential is used, so a wrong address does not
    // wait to be found until someone switches to a service account.
    let oauth_url = oauth_url.unwrap_or_else(|| crate::jumpcloud::DEFAULT_OAUTH_URL.into());
    if let Err(why) = crate::jumpcloud::check_oauth_url(&oauth_url) {
        bail!("jumpcloud.oauth_url {why}");
    }
    let key = env("JUMPCLOUD_API_KEY");
    let id = env("JUMPCLOUD_CLIENT_ID");
    let secret = env("JUMPCLOUD_CLIENT_SECRET");
    Ok(match (key, id, secret) {
        (Some(key), None, None) => JumpCloudCredentials::ApiKey(SecretString::from(key)),
        (None, Some(id), Some(secret)) => JumpCloudCredentials::ServiceAccount(ServiceAccount {
            client_id: SecretString::from(id),
            client_secret: SecretString::from(secret),
            oauth_url,
        }),
        (None, None, None) => bail!(
            "no JumpCloud credentials: set JUMPCLOUD_CLIENT_ID and JUMPCLOUD_CLIENT_SECRET (a \
             service account, recommended) or JUMPCLOUD_API_KEY"
        ),
        (Some(_), _, _) => bail!(
            "JUMPCLOUD_API_KEY and a service account (JUMPCLOUD_CLIENT_ID, \
             JUMPCLOUD_CLIENT_SECRET) are both set: set only one of the two"
        ),
        (None, Some(_), None) => bail!(
            "JUMPCLOUD_CLIENT_ID is set but JUMPCLOUD_CLIENT_SECRET is not: a service account \
             needs both"
        ),
        (None, None, Some(_)) => bail!(
            "JUMPCLOUD_CLIENT_SECRET is set but JUMPCLOUD_CLIENT_ID is not: a service account \
             needs both"
        ),
    })
}

/// An Entra ID object id: a GUID, `8-4-4-4-12` hexadecimal digits.
fn is_object_id(text: &str) -> bool {
    let groups: Vec<&str> = text.trim().split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn http(h: FileHttp) -> anyhow::Result<HttpConfig> {
    let defaults = HttpConfig::default();
    if h.max_connections == Some(0) {
        bail!("http.max_connections must be at least 1");
    }
    Ok(HttpConfig {
        header_timeout: h
            .header_timeout
            .map_or(defaults.header_timeout, GrantDuration::as_std),
        request_timeout: h
            .request_timeout
            .map_or(defaults.request_timeout, GrantDuration::as_std),
        max_connections: h.max_connections,
        shutdown_timeout: h
            .shutdown_timeout
            .map_or(defaults.shutdown_timeout, GrantDuration::as_std),
    })
}

/// `policy.approval_reminder`: `true` (halfway to the timeout), `false`
/// (none) or a duration string.
fn approval_reminder(value: &toml::Value) -> anyhow::Result<ApprovalReminder> {
    let after = match value {
        toml::Value::Boolean(true) => return Ok(ApprovalReminder::Halfway),
        toml::Value::Boolean(false) => return Ok(ApprovalReminder::Off),
        toml::Value::String(text) => GrantDuration::parse(text).ok(),
        _ => None,
    };
    after.map(ApprovalReminder::After).with_context(|| {
        format!(
            "policy.approval_reminder = {value} is not understood: use true (remind the approvers \
             halfway to approval_timeout), false (no reminder) or a duration such as \"10m\""
        )
    })
}

fn policy(p: FilePolicy) -> anyhow::Result<Policy> {
    let defaults = Policy::default();
    let policy = Policy {
        default_duration: p.default_duration.unwrap_or(defaults.default_duration),
        min_duration: p.min_duration.unwrap_or(defaults.min_duration),
        max_duration: p.max_duration.unwrap_or(defaults.max_duration),
        require_reason: p.require_reason.unwrap_or(defaults.require_reason),
        max_reason_length: p.max_reason_length.unwrap_or(defaults.max_reason_length),
        max_open_requests: p.max_open_requests.unwrap_or(defaults.max_open_requests),
        max_requests_per_hour: p
            .max_requests_per_hour
            .unwrap_or(defaults.max_requests_per_hour),
        approval_timeout: p.approval_timeout.unwrap_or(defaults.approval_timeout),
        reminders: p.reminders.unwrap_or(defaults.reminders),
        approval_reminder: match p.approval_reminder {
            None => defaults.approval_reminder,
            Some(value) => approval_reminder(&value)?,
        },
    };
    if policy.min_duration > policy.max_duration {
        bail!(
            "policy.min_duration ({}) is longer than policy.max_duration ({})",
            policy.min_duration,
            policy.max_duration
        );
    }
    let longest = crate::domain::request::bounds::MAX_REASON_LENGTH;
    if !(1..=longest).contains(&policy.max_reason_length) {
        bail!("policy.max_reason_length must be between 1 and {longest} (characters)");
    }
    if policy.max_open_requests == 0 {
        bail!("policy.max_open_requests must be at least 1");
    }
    if policy.max_requests_per_hour < policy.max_open_requests {
        bail!(
            "policy.max_requests_per_hour ({}) must be at least policy.max_open_requests ({})",
            policy.max_requests_per_hour,
            policy.max_open_requests
        );
    }
    if let ApprovalReminder::After(after) = policy.approval_reminder {
        if after >= policy.approval_timeout {
            bail!(
                "policy.approval_reminder ({after}) must be shorter than policy.approval_timeout ({}): \
                 the request expires first. Use a shorter duration, true (halfway) or false (no reminder)",
                policy.approval_timeout
            );
        }
    }
    if policy.min_duration.as_secs() < 10 {
        bail!("policy.min_duration must be at least 10s");
    }
    if !(policy.min_duration..=policy.max_duration).contains(&policy.default_duration) {
        bail!(
            "policy.default_duration ({}) must lie between min_duration ({}) and max_duration ({})",
            policy.default_duration,
            policy.min_duration,
            policy.max_duration
        );
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [slack]
        approvals_channel = "C0123456789"
        approvers = ["U0123ABCD", "S0456EFGH"]
    "#;

    fn env_with_secrets(name: &str) -> Option<String> {
        match name {
            "SLACK_SIGNING_SECRET" => Some("s3cr3t".into()),
            "SLACK_BOT_TOKEN" => Some("xoxb-1".into()),
            "JUMPCLOUD_API_KEY" => Some("jc-key".into()),
            _ => None,
        }
    }

    #[test]
    fn a_minimal_file_gets_the_documented_defaults() {
        let c = Config::parse(MINIMAL, env_with_secrets).unwrap();
        assert_eq!(c.listen, "127.0.0.1:3000");
        assert_eq!(c.database_url, "sqlite://tempadmin.db");
        assert_eq!(c.slack.as_ref().unwrap().api.api_url, SLACK_API_URL);
        assert_eq!(c.jumpcloud.api_url, JUMPCLOUD_API_URL);
        assert_eq!(c.jumpcloud.org_id, None);
        assert_eq!(c.policy, Policy::default());
        assert_eq!(c.workers, Workers::default());
        assert_eq!(c.workers.lease, Duration::from_secs(15));
        assert_eq!(c.http, HttpConfig::default());
        assert_eq!(c.http.max_connections, None);
        assert_eq!(c.metrics_listen, None);
        assert!(c.slack.as_ref().unwrap().team_ids.is_empty());
        assert_eq!(c.grant_mode, GrantMode::Association);
    }

    #[test]
    fn socket_mode_needs_an_app_level_token_and_no_signing_secret() {
        let text = MINIMAL.replace("[slack]", "[slack]\nmode = \"socket\"");
        let env = |token: Option<&'static str>| {
            move |name: &str| match name {
                "SLACK_APP_TOKEN" => token.map(str::to_owned),
                "SLACK_SIGNING_SECRET" => None,
                other => env_with_secrets(other),
            }
        };
        let c = Config::parse(&text, env(Some("xapp-1-A1-2-secretpart"))).unwrap();
        assert!(matches!(
            c.slack.unwrap().mode,
            SlackMode::Socket { app_token } if secrecy::ExposeSecret::expose_secret(&app_token) == "xapp-1-A1-2-secretpart"
        ));
        let err = format!("{:#}", Config::parse(&text, env(None)).unwrap_err());
        assert!(
            err.contains("SLACK_APP_TOKEN") && err.contains("connections:write"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            Config::parse(&text, env(Some("xoxb-1-secretpart"))).unwrap_err()
        );
        assert!(
            err.contains("SLACK_APP_TOKEN") && err.contains("SLACK_BOT_TOKEN"),
            "{err}"
        );
        assert!(!err.contains("secretpart"), "never the token: {err}");
        // HTTP stays the default, and needs the signing secret.
        let c = Config::parse(MINIMAL, env_with_secrets).unwrap();
        assert!(matches!(c.slack.unwrap().mode, SlackMode::Http { .. }));
        let text = MINIMAL.replace("[slack]", "[slack]\nmode = \"websocket\"");
        let err = format!("{:#}", Config::parse(&text, env_with_secrets).unwrap_err());
        assert!(
            err.contains("slack.mode") && err.contains("socket"),
            "{err}"
        );
    }

    #[test]
    fn both_grant_modes_are_accepted() {
        for (word, mode) in [
            ("association", GrantMode::Association),
            ("access_request", GrantMode::AccessRequest),
        ] {
            let text = format!("{MINIMAL}\n[jumpcloud]\ngrant_mode = \"{word}\"");
            let c = Config::parse(&text, env_with_secrets).unwrap();
            assert_eq!(c.grant_mode, mode);
        }
    }

    #[test]
    fn the_lease_may_be_set_within_bounds() {
        let text = format!("{MINIMAL}\n[scheduler]\nlease = \"5s\"");
        let c = Config::parse(&text, env_with_secrets).unwrap();
        assert_eq!(c.workers.lease, Duration::from_secs(5));
        for bad in ["1s", "11m"] {
            let text = format!("{MINIMAL}\n[scheduler]\nlease = \"{bad}\"");
            let err = format!("{:#}", Config::parse(&text, env_with_secrets).unwrap_err());
            assert!(err.contains("scheduler.lease"), "{err}");
        }
    }

    #[test]
    fn the_workspaces_of_an_enterprise_grid_may_be_listed() {
        let text = MINIMAL.replace("[slack]", "[slack]\nteam_ids = [\"T0AAA\", \"T0BBB\"]");
        let c = Config::parse(&text, env_with_secrets).unwrap();
        assert_eq!(c.slack.as_ref().unwrap().team_ids, ["T0AAA", "T0BBB"]);
        let text = MINIMAL.replace("[slack]", "[slack]\nteam_ids = [\"E0GRID\"]");
        let err = format!("{:#}", Config::parse(&text, env_with_secrets).unwrap_err());
        assert!(
            err.contains("slack.team_ids") && err.contains("E0GRID"),
            "{err}"
        );
    }

    #[test]
    fn the_documented_example_file_is_valid_and_matches_the_defaults() {
        let text = include_str!("../docker/config.example.toml");
        let c = Config::parse(text, env_with_secrets).unwrap();
        assert_eq!(c.http, HttpConfig::default());
        assert_eq!(c.metrics_listen, None);
        assert_eq!(c.policy, Policy::default());

        // Its commented-out [teams] section is valid once uncommented.
        let uncommented: String = text
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(rest) if !rest.starts_with(' ') && !rest.is_empty() => rest,
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let c = Config::parse(&uncommented, env_with_teams).unwrap();
        let t = c.teams.unwrap();
        assert_eq!(t.approver_groups, ["22222222-2222-2222-2222-222222222222"]);
        assert_eq!(t.graph_url, crate::teams::DEFAULT_GRAPH_URL);
        assert_eq!(c.metrics_listen.as_deref(), Some("127.0.0.1:9100"));
    }

    #[test]
    fn max_reason_length_is_read_from_the_policy_section() {
        let text = format!("{MINIMAL}\n[policy]\nmax_reason_length = 2000");
        let c = Config::parse(&text, env_with_secrets).unwrap();
        assert_eq!(c.policy.max_reason_length, 2000);
    }

    #[test]
    fn per_person_limits_are_read_from_the_policy_section() {
        let text = format!("{MINIMAL}\n[policy]\nmax_open_requests = 1\nmax_requests_per_hour = 4");
        let c = Config::parse(&text, env_with_secrets).unwrap();
        assert_eq!(
            (c.policy.max_open_requests, c.policy.max_requests_per_hour),
            (1, 4)
        );
    }

    #[test]
    fn http_limits_and_the_metrics_address_are_read_from_the_file() {
        let text = format!(
            "metrics_listen = \"127.0.0.1:9100\"\n{MINIMAL}\n[http]\nheader_timeout = \"5s\"\nrequest_timeout = \"20s\"\nmax_connections = 200\nshutdown_timeout = \"3s\""
        );
        let c = Config::parse(&text, env_with_secrets).unwrap();
        assert_eq!(
            c.http,
            HttpConfig {
                header_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(20),
                max_connections: Some(200),
                shutdown_timeout: Duration::from_secs(3),
            }
        );
        assert_eq!(c.metrics_listen.as_deref(), Some("127.0.0.1:9100"));
        let env = |name: &str| match name {
            "TEMPADMIN_METRICS_LISTEN" => Some("0.0.0.0:9200".into()),
            other => env_with_secrets(other),
        };
        let c = Config::parse(&text, env).unwrap();
        assert_eq!(c.metrics_listen.as_deref(), Some("0.0.0.0:9200"));
    }

    #[test]
    fn environment_variables_override_the_file() {
        let env = |name: &str| match name {
            "TEMPADMIN_LISTEN" => Some("0.0.0.0:8080".into()),
            "DATABASE_URL" => Some("sqlite:///var/lib/t.db".into()),
            "SLACK_API_URL" => Some("http://127.0.0.1:9/api".into()),
            "JUMPCLOUD_API_URL" => Some("https://console.eu.jumpcloud.com".into()),
            "JUMPCLOUD_ORG_ID" => Some("org1".into()),
            other => env_with_secrets(other),
        };
        let c = Config::parse(MINIMAL, env).unwrap();
        assert_eq!(c.listen, "0.0.0.0:8080");
        assert_eq!(c.database_url, "sqlite:///var/lib/t.db");
        assert_eq!(
            c.slack.as_ref().unwrap().api.api_url,
            "http://127.0.0.1:9/api"
        );
        assert_eq!(c.jumpcloud.api_url, "https://console.eu.jumpcloud.com");
        assert_eq!(c.jumpcloud.org_id.as_deref(), Some("org1"));
    }

    #[test]
    fn a_missing_secret_is_named_and_its_value_never_printed() {
        let env = |name: &str| match name {
            "JUMPCLOUD_API_KEY" => None,
            other => env_with_secrets(other),
        };
        let err = format!("{:#}", Config::parse(MINIMAL, env).unwrap_err());
        assert!(err.contains("JUMPCLOUD_API_KEY"), "{err}");
        let c = Config::parse(MINIMAL, env_with_secrets).unwrap();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("s3cr3t") && !debug.contains("xoxb-1") && !debug.contains("jc-key")
        );
    }

    /// `env_with_secrets` with a service account instead of the API key.
    fn env_with_service_account(name: &str) -> Option<String> {
        match name {
            "JUMPCLOUD_API_KEY" => None,
            "JUMPCLOUD_CLIENT_ID" => Some("sa-client-id".into()),
            "JUMPCLOUD_CLIENT_SECRET" => Some("sa-client-s3cret".into()),
            other => env_with_secrets(other),
        }
    }

    #[test]
    fn a_service_account_is_used_instead_of_the_api_key_at_the_default_token_endpoint() {
        let env = |name: &str| match name {
            "JUMPCLOUD_ORG_ID" => Some("org1".into()),
            other => env_with_service_account(other),
        };
        let c = Config::parse(MINIMAL, env).unwrap();
        let JumpCloudCredentials::ServiceAccount(account) = &c.jumpcloud.credentials else {
            panic!("{:?}", c.jumpcloud.credentials);
        };
        assert_eq!(
            account.oauth_url,
            "https://admin-oauth.id.jumpcloud.com/oauth2/token"
        );
        assert_eq!(c.jumpcloud.org_id.as_deref(), Some("org1"));
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("sa-client-s3cret") && !debug.contains("sa-client-id"),
            "{debug}"
        );

        let text = format!(
            "{MINIMAL}\n[jumpcloud]\noauth_url = \"https://admin-oauth.id.eu.jumpcloud.com/oauth2/token\""
        );
        let c = Config::parse(&text, env_with_service_account).unwrap();
        let JumpCloudCredentials::ServiceAccount(account) = c.jumpcloud.credentials else {
            panic!("not a service account");
        };
        assert_eq!(
            account.oauth_url,
            "https://admin-oauth.id.eu.jumpcloud.com/oauth2/token"
        );
        let c = Config::parse(MINIMAL, env_with_secrets).unwrap();
        assert!(matches!(
            c.jumpcloud.credentials,
            JumpCloudCredentials::ApiKey(_)
        ));
    }

    #[test]
    fn both_jumpcloud_credentials_or_neither_is_a_start_up_error_naming_the_variables() {
        let with = |key: bool, id: bool, secret: bool| {
            let env = move |name: &str| match name {
                "JUMPCLOUD_API_KEY" => key.then(|| "jc-key".into()),
                "JUMPCLOUD_CLIENT_ID" => id.then(|| "sa-client-id".into()),
                "JUMPCLOUD_CLIENT_SECRET" => secret.then(|| "sa-client-s3cret".into()),
                other => env_with_secrets(other),
            };
            Config::parse(MINIMAL, env).map(|_| ())
        };
        for (key, id, secret, names) in [
            (
                true,
                true,
                true,
                &["JUMPCLOUD_API_KEY", "JUMPCLOUD_CLIENT_ID", "only one"][..],
            ),
            (
                true,
                true,
                false,
                &["JUMPCLOUD_API_KEY", "JUMPCLOUD_CLIENT_ID", "only one"],
            ),
            (
                true,
                false,
                true,
                &["JUMPCLOUD_API_KEY", "JUMPCLOUD_CLIENT_SECRET", "only one"],
            ),
            (
                false,
                false,
                false,
                &[
                    "JUMPCLOUD_API_KEY",
                    "JUMPCLOUD_CLIENT_ID",
                    "JUMPCLOUD_CLIENT_SECRET",
                ],
            ),
            (false, true, false, &["JUMPCLOUD_CLIENT_SECRET is not"]),
            (false, false, true, &["JUMPCLOUD_CLIENT_ID is not"]),
        ] {
            let err = format!("{:#}", with(key, id, secret).unwrap_err());
            for name in names {
                assert!(
                    err.contains(name),
                    "{key} {id} {secret}: {name} not in {err}"
                );
            }
            assert!(
                !err.contains("jc-key") && !err.contains("sa-client-s3cret"),
                "{err}"
            );
        }
        assert!(with(true, false, false).is_ok());
        assert!(with(false, true, true).is_ok());
    }

    #[test]
    fn the_token_endpoint_must_be_https_unless_it_is_loopback() {
        let with_url = |url: &str| {
            Config::parse(
                &format!("{MINIMAL}\n[jumpcloud]\noauth_url = \"{url}\""),
                env_with_service_account,
            )
        };
        for fine in [
            "https://admin-oauth.id.jumpcloud.com/oauth2/token",
            "http://127.0.0.1:9/oauth2/token",
            "http://localhost:3000/oauth2/token",
        ] {
            with_url(fine).unwrap_or_else(|e| panic!("{fine}: {e:#}"));
        }
        for (bad, why) in [
            (
                "http://admin-oauth.id.jumpcloud.com/oauth2/token",
                "plain http",
            ),
            ("http://10.0.0.7/oauth2/token", "client secret"),
            (
                "https://id:pw@admin-oauth.id.jumpcloud.com/oauth2/token",
                "user name or password",
            ),
            (
                "https://admin-oauth.id.jumpcloud.com/oauth2/token?x=1",
                "query",
            ),
            ("admin-oauth.id.jumpcloud.com", "not a URL"),
        ] {
            let err = format!("{:#}", with_url(bad).unwrap_err());
            assert!(
                err.contains("jumpcloud.oauth_url") && err.contains(why),
                "{bad}: {err}"
            );
            assert!(!err.contains(":pw@"), "{err}");
        }
    }

    #[test]
    fn the_jumpcloud_address_must_be_https_unless_it_is_loopback() {
        let with_file = |url: &str| {
            Config::parse(
                &format!("{MINIMAL}\n[jumpcloud]\napi_url = \"{url}\""),
                env_with_secrets,
            )
        };
        for fine in [
            "https://console.jumpcloud.com",
            "https://console.eu.jumpcloud.com/",
            "http://127.0.0.1:9",
            "http://127.10.0.3:8080/jc",
            "http://[::1]:3000",
            "http://localhost:3000",
            "http://LOCALHOST",
        ] {
            let c = with_file(fine).unwrap_or_else(|e| panic!("{fine}: {e:#}"));
            assert_eq!(c.jumpcloud.api_url, fine);
        }
        for (bad, why) in [
            ("http://console.jumpcloud.com", "https://"),
            ("http://10.0.0.7:8080", "https://"),
            ("http://localhost.example.com", "https://"),
            ("http://127.0.0.1.nip.io", "https://"),
            ("http://[::ffff:10.0.0.1]", "https://"),
            ("ftp://console.jumpcloud.com", "https://"),
            ("console.jumpcloud.com", "not a URL"),
            (
                "https://admin:pw@console.jumpcloud.com",
                "user name or password",
            ),
            ("https://console.jumpcloud.com/?org=1", "query"),
        ] {
            let err = format!("{:#}", with_file(bad).unwrap_err());
            assert!(
                err.contains("jumpcloud.api_url") && err.contains(why),
                "{bad}: {err}"
            );
            assert!(!err.contains(":pw@"), "{err}");
        }
        let env = |name: &str| match name {
            "JUMPCLOUD_API_URL" => Some("http://console.jumpcloud.com".into()),
            other => env_with_secrets(other),
        };
        let err = format!("{:#}", Config::parse(MINIMAL, env).unwrap_err());
        assert!(
            err.contains("JUMPCLOUD_API_URL") && err.contains("plain http"),
            "{err}"
        );
    }

    #[test]
    fn the_slack_address_must_be_https_unless_it_is_loopback() {
        let with_url = |url: &str| {
            Config::parse(
                &MINIMAL.replace("[slack]", &format!("[slack]\napi_url = \"{url}\"")),
                env_with_secrets,
            )
        };
        for fine in [
            "https://slack.com/api",
            "https://slack.com/api/",
            "http://127.0.0.1:9/api",
            "http://[::1]:3000/api/",
            "http://localhost:3000/api",
        ] {
            let c = with_url(fine).unwrap_or_else(|e| panic!("{fine}: {e:#}"));
            assert_eq!(c.slack.unwrap().api.api_url, fine);
        }
        for (bad, why) in [
            ("http://slack.com/api", "plain http"),
            ("http://10.0.0.7:8080/api", "plain http"),
            ("http://localhost.example.com/api", "plain http"),
            ("ftp://slack.com/api", "https://"),
            ("slack.com/api", "not a URL"),
            ("https://bot:pw@slack.com/api", "user name or password"),
            ("https://slack.com/api?team=T1", "query"),
        ] {
            let err = format!("{:#}", with_url(bad).unwrap_err());
            assert!(
                err.contains("slack.api_url") && err.contains(why),
                "{bad}: {err}"
            );
            assert!(!err.contains(":pw@") && !err.contains("xoxb-1"), "{err}");
        }
        let env = |name: &str| match name {
            "SLACK_API_URL" => Some("http://slack.com/api".into()),
            other => env_with_secrets(other),
        };
        let err = format!("{:#}", Config::parse(MINIMAL, env).unwrap_err());
        assert!(
            err.contains("SLACK_API_URL") && err.contains("plain http"),
            "{err}"
        );
    }

    #[test]
    fn the_device_section_is_off_by_default_and_says_which_words_it_takes() {
        let c = Config::parse(MINIMAL, env_with_secrets).unwrap();
        assert_eq!(c.device, DeviceSettings::default());
        assert!(!c.device.enabled());
        let text = format!("{MINIMAL}\n[device]\nnotices = true\nend_elevated = \"terminate\"");
        let c = Config::parse(&text, env_with_secrets).unwrap();
        assert!(c.device.notices);
        assert_eq!(c.device.end_elevated, EndElevated::Terminate);
        let text = format!("{MINIMAL}\n[device]\nend_elevated = \"kill\"");
        let err = format!("{:#}", Config::parse(&text, env_with_secrets).unwrap_err());
        assert!(
            err.contains("device.end_elevated") && err.contains("terminate"),
            "{err}"
        );
    }

    #[test]
    fn bad_settings_are_refused_with_the_key_named() {
        let cases = [
            ("[slack]\napprovers = [\"U1234\"]", "approvals_channel"),
            ("[slack]\napprovals_channel = \"C1\"", "approvers"),
            (
                "[slack]\napprovals_channel = \"C1\"\napprovers = [\"bob\"]",
                "bob",
            ),
            (
                &format!("{MINIMAL}\n[policy]\nmin_duration = \"2h\"\nmax_duration = \"1h\""),
                "min_duration",
            ),
            (
                &format!("{MINIMAL}\n[policy]\nmax_duration = \"forever\""),
                "forever",
            ),
            (
                &format!("{MINIMAL}\n[jumpcloud]\ngrant_mode = \"magic\""),
                "magic",
            ),
            (&format!("{MINIMAL}\nlisten_port = 3"), "listen_port"),
            (
                &format!("{MINIMAL}\n[scheduler]\nworkers = 1"),
                "scheduler.workers",
            ),
            (
                &format!("{MINIMAL}\n[jumpcloud]\nmax_requests_per_second = 0"),
                "jumpcloud.max_requests_per_second",
            ),
            (
                &format!("{MINIMAL}\n[policy]\nmax_reason_length = 0"),
                "max_reason_length",
            ),
            (
                &format!("{MINIMAL}\n[policy]\nmax_reason_length = 3001"),
                "max_reason_length",
            ),
            (
                &format!("{MINIMAL}\n[policy]\nmax_open_requests = 0"),
                "max_open_requests",
            ),
            (
                &format!("{MINIMAL}\n[policy]\nmax_requests_per_hour = 2"),
                "max_requests_per_hour",
            ),
            (
                &format!("{MINIMAL}\n[policy]\nmax_reason_length = -5"),
                "max_reason_length",
            ),
            (
                &format!("{MINIMAL}\n[http]\nmax_connections = 0"),
                "max_connections",
            ),
            (&format!("{MINIMAL}\n[http]\nheader_timeout = \"0s\""), "0s"),
            (
                &format!("metrics_listen = \"127.0.0.1:3000\"\n{MINIMAL}"),
                "metrics_listen",
            ),
        ];
        for (text, expected) in cases {
            let err = format!("{:#}", Config::parse(text, env_with_secrets).unwrap_err());
            assert!(err.contains(expected), "{expected} not in: {err}");
        }
    }

    const TEAMS: &str = r#"
        [teams]
        app_id = "00000000-0000-4000-8000-00000000b07f"
        tenant_id = "72f988bf-0000-4000-8000-0000000000aa"
        approvals_conversation = "19:approvals@thread.tacv2"
        approvers = ["grace@example.com"]
    "#;

    fn env_with_teams(name: &str) -> Option<String> {
        match name {
            "TEAMS_APP_PASSWORD" => Some("teams-pw".into()),
            other => env_with_secrets(other),
        }
    }

    #[test]
    fn teams_alone_needs_no_slack_secrets_and_gets_the_documented_defaults() {
        let env = |name: &str| match name {
            "SLACK_SIGNING_SECRET" | "SLACK_BOT_TOKEN" => None,
            other => env_with_teams(other),
        };
        let c = Config::parse(TEAMS, env).unwrap();
        assert!(c.slack.is_none());
        let t = c.teams.unwrap();
        assert_eq!(t.app_id, "00000000-0000-4000-8000-00000000b07f");
        assert_eq!(t.tenant_id, "72f988bf-0000-4000-8000-0000000000aa");
        assert_eq!(t.service_url, TEAMS_SERVICE_URL);
        assert_eq!(
            t.openid_metadata_url,
            crate::teams::DEFAULT_OPENID_METADATA_URL
        );
        assert_eq!(t.approvers, ["grace@example.com"]);
        assert!(!format!("{t:?}").contains("teams-pw"));
    }

    #[test]
    fn teams_without_its_tenant_refuses_to_start_and_says_what_to_set() {
        let tenant = "tenant_id = \"72f988bf-0000-4000-8000-0000000000aa\"";
        assert!(TEAMS.contains(tenant));
        for text in [
            TEAMS.replace(tenant, ""),
            TEAMS.replace(tenant, "tenant_id = \" \""),
        ] {
            let err = format!("{:#}", Config::parse(&text, env_with_teams).unwrap_err());
            assert!(
                err.contains("teams.tenant_id is required") && err.contains("single-tenant"),
                "{err}"
            );
        }
        let text = TEAMS.replace(tenant, "tenant_id = \"contoso.onmicrosoft.com\"");
        let err = format!("{:#}", Config::parse(&text, env_with_teams).unwrap_err());
        assert!(
            err.contains("teams.tenant_id") && err.contains("GUID"),
            "{err}"
        );
    }

    #[test]
    fn slack_and_teams_can_be_configured_together_but_not_neither() {
        let c = Config::parse(&format!("{MINIMAL}\n{TEAMS}"), env_with_teams).unwrap();
        assert!(c.slack.is_some() && c.teams.is_some());
        let err = format!("{:#}", Config::parse("", env_with_teams).unwrap_err());
        assert!(err.contains("[slack] or a [teams]"), "{err}");
        let err = format!("{:#}", Config::parse(TEAMS, env_with_secrets).unwrap_err());
        assert!(err.contains("TEAMS_APP_PASSWORD"), "{err}");
        let env = |name: &str| match name {
            "TEAMS_APP_ID" => Some("from-env".into()),
            other => env_with_teams(other),
        };
        assert_eq!(
            Config::parse(TEAMS, env).unwrap().teams.unwrap().app_id,
            "from-env"
        );
        for (bad, key) in [
            ("approvers = [\"grace@example.com\"]", "teams.approvers"),
            (
                "approvals_conversation = \"19:approvals@thread.tacv2\"",
                "approvals_conversation",
            ),
        ] {
            let text = TEAMS.replace(bad, "");
            let err = format!("{:#}", Config::parse(&text, env_with_teams).unwrap_err());
            assert!(err.contains(key), "{key} not in {err}");
        }
        let text = TEAMS.replace(
            "approvers = [\"grace@example.com\"]",
            "approver_groups = [\"0F1E2D3C-0000-4000-8000-000000000001\"]",
        );
        let t = Config::parse(&text, env_with_teams).unwrap().teams.unwrap();
        assert!(t.approvers.is_empty());
        assert_eq!(t.approver_groups, ["0F1E2D3C-0000-4000-8000-000000000001"]);
        assert_eq!(t.graph_url, crate::teams::DEFAULT_GRAPH_URL);
        for (bad, key) in [
            (
                text.replace("0F1E2D3C-0000-4000-8000-000000000001", "admins"),
                "teams.approver_groups",
            ),
            (
                format!("{text}\ngraph_url = \"http://graph.example.net\""),
                "teams.graph_url",
            ),
        ] {
            let err = format!("{:#}", Config::parse(&bad, env_with_teams).unwrap_err());
            assert!(err.contains(key), "{key} not in {err}");
        }
        let text = format!("{TEAMS}\nservice_url = \"http://smba.example.net/\"");
        let err = format!("{:#}", Config::parse(&text, env_with_teams).unwrap_err());
        assert!(err.contains("teams.service_url"), "{err}");
    }

    #[test]
    fn the_approval_reminder_is_on_off_or_a_duration_before_the_timeout() {
        let with = |line: &str| {
            let text = format!("{MINIMAL}\n[policy]\napproval_timeout = \"30m\"\n{line}");
            Config::parse(&text, env_with_secrets).map(|c| c.policy.approval_reminder)
        };
        assert_eq!(
            with("").unwrap(),
            ApprovalReminder::Halfway,
            "on by default"
        );
        assert_eq!(
            with("approval_reminder = true").unwrap(),
            ApprovalReminder::Halfway
        );
        assert_eq!(
            with("approval_reminder = false").unwrap(),
            ApprovalReminder::Off
        );
        assert_eq!(
            with("approval_reminder = \"10m\"").unwrap(),
            ApprovalReminder::After(GrantDuration::from_secs(600))
        );
        for (line, says) in [
            (
                "approval_reminder = \"30m\"",
                "shorter than policy.approval_timeout",
            ),
            ("approval_reminder = \"soon\"", "use true"),
            ("approval_reminder = 0.5", "use true"),
        ] {
            let err = format!("{:#}", with(line).unwrap_err());
            assert!(
                err.contains("policy.approval_reminder") && err.contains(says),
                "{line}: {err}"
            );
        }
    }
}
