//! `tempadmin check`: proves a configuration against the real services
//! before going live, one line per check: `✓ what`, or `✗ what: the fix`.
//!
//! - Slack: the bot token (`auth.test`, `bots.info`), the approvals channel
//!   and the bot's membership (`conversations.info`), every approver
//!   (`users.info`) and approver group (`usergroups.users.list`); with
//!   `slack.mode = "socket"`, the app-level token (`apps.connections.open`,
//!   a connection URL nobody connects to).
//! - JumpCloud: the service account's token, listing users and devices, and
//!   when configured the device commands (`[device]`) and access requests
//!   (`grant_mode = "access_request"`).
//! - Teams: the Bot Framework token, and Microsoft Graph for approver groups.
//! - The database: reachable, and its migrations those of this build.
//!
//! Invariant: it changes nothing anywhere. Every call is a read (`GET`s,
//! Slack's read methods, token requests); the database is opened read-only
//! and never migrated. A check that cannot run because an earlier one
//! failed (everything after a refused token) is left out rather than
//! failed again, so the first `✗` of a service is the one to fix. No line
//! carries a secret: the errors it words never hold one, and a database
//! URL is shown without its password.

use std::fmt;
use std::sync::Arc;

use secrecy::SecretString;

use crate::config::{Config, SlackConfig, SlackMode};
use crate::engine::clock::SystemClock;
use crate::engine::device::DeviceSettings;
use crate::engine::ports::{ChatError, DirectoryError};
use crate::jumpcloud::commands::{self, Found};
use crate::jumpcloud::{GrantMode, JumpCloudClient};
use crate::slack::client::{IdentityError, SlackChat};
use crate::slack::socket_mode::{self, OpenError, SocketModeSettings};
use crate::store::migrations::{self, Readiness};
use crate::teams::connector::Connector;
use crate::teams::graph::Graph;
use crate::teams::TeamsSettings;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What was checked, or found.
    pub what: String,
    /// What to do about it; `None` when the check passed.
    pub fix: Option<String>,
}

impl Outcome {
    fn pass(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            fix: None,
        }
    }

    fn fail(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            fix: Some(fix.into()),
        }
    }

    /// Whether the check passed.
    pub fn passed(&self) -> bool {
        self.fix.is_none()
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.fix {
            None => write!(f, "✓ {}", self.what),
            Some(fix) => write!(f, "✗ {}: {fix}", self.what),
        }
    }
}

/// Every check's outcome, in the order they are printed: Slack, JumpCloud,
/// Teams, the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The outcomes.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// How many checks failed.
    pub fn failures(&self) -> usize {
        self.outcomes.iter().filter(|o| !o.passed()).count()
    }

    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.failures() == 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for outcome in &self.outcomes {
            writeln!(f, "{outcome}")?;
        }
        match self.failures() {
            0 => write!(f, "All {} checks passed.", self.outcomes.len()),
            n => write!(f, "{n} of {} checks failed.", self.outcomes.len()),
        }
    }
}

/// Runs every check that `config` calls for, the services side by side.
pub async fn run(config: &Config) -> Report {
    let (slack, jumpcloud, teams, database) = tokio::join!(
        async {
            match &config.slack {
                Some(slack_config) => slack(slack_config).await,
                None => Vec::new(),
            }
        },
        jumpcloud(config),
        async {
            match &config.teams {
                Some(settings) => teams(settings).await,
                None => Vec::new(),
            }
        },
        database(&config.database_url),
    );
    Report {
        outcomes: [slack, jumpcloud, teams, database].concat(),
    }
}

/// Slack: the token first; the rest only with a token Slack accepts.
async fn slack(config: &SlackConfig) -> Vec<Outcome> {
    let chat = match SlackChat::new(config.api.clone()) {
        Ok(chat) => chat,
        Err(e) => return vec![Outcome::fail("Slack", format!("{e:#}"))],
    };
    let mut outcomes = Vec::new();
    match chat.identity().await {
        Ok(identity) => outcomes.push(Outcome::pass(format!(
            "Slack: SLACK_BOT_TOKEN is the bot {} of app {} in workspace {}",
            identity.user_id, identity.app_id, identity.team_id
        ))),
        Err(IdentityError::Refused(why)) => {
            outcomes.push(Outcome::fail(
                "Slack: SLACK_BOT_TOKEN",
                format!(
                    "Slack refused it ({why}): set it to the Bot User OAuth Token (xoxb-…) \
                     shown under OAuth & Permissions for the app's current installation"
                ),
            ));
            return outcomes;
        }
        Err(IdentityError::Unavailable(e)) => {
            outcomes.push(Outcome::fail(
                "Slack: SLACK_BOT_TOKEN could not be checked",
                format!(
                    "Slack did not answer at {} ({e}): check the network, any proxy, and slack.api_url",
                    config.api.api_url
                ),
            ));
            return outcomes;
        }
    }
    if let SlackMode::Socket { app_token } = &config.mode {
        outcomes.push(socket_mode(config, app_token).await);
    }
    outcomes.push(approvals_channel(&chat, &config.api.approvals_channel).await);
    for approver in &config.api.approvers {
        outcomes.push(if approver.starts_with('S') {
            approver_group(&chat, approver).await
        } else {
            approver_person(&chat, approver).await
        });
    }
    outcomes
}

/// Socket Mode: Slack gives the app-level token a connection URL
/// (`apps.connections.open`; nobody connects to it, and it lapses).
async fn socket_mode(config: &SlackConfig, app_token: &SecretString) -> Outcome {
    let what = "Slack: SLACK_APP_TOKEN";
    let http = match reqwest::Client::builder()
        .timeout(config.api.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(http) => http,
        Err(e) => return Outcome::fail(what, format!("{e:#}")),
    };
    let settings = SocketModeSettings {
        api_url: config.api.api_url.clone(),
        app_token: app_token.clone(),
        timeout: config.api.timeout,
    };
    match socket_mode::connections_open(&http, &settings).await {
        Ok(_) => Outcome::pass(format!(
            "{what} opens Socket Mode connections (slack.mode = \"socket\")"
        )),
        Err(e @ OpenError::Refused(_)) => Outcome::fail(what, e.to_string()),
        Err(OpenError::Unavailable(why)) => Outcome::fail(
            format!("{what} could not be checked"),
            format!(
                "apps.connections.open failed ({why}): check the network, any proxy, and slack.api_url"
            ),
        ),
    }
}

async fn approvals_channel(chat: &SlackChat, id: &str) -> Outcome {
    let facts = match chat.approvals_channel().await {
        Ok(facts) => facts,
        Err(e) => {
            let fix = match slack_code(&e) {
                Some("channel_not_found") => format!(
                    "the bot sees no channel {id}: set slack.approvals_channel to the channel's ID \
                     (channel details → About, at the bottom: C…), not its name; a private channel \
                     shows only once the bot is invited (/invite @tempadmin in it)"
                ),
                Some("missing_scope") => "the app lacks the scope channels:read (public channel) \
                     or groups:read (private channel): add both under OAuth & Permissions → Bot \
                     Token Scopes (manifests/slack-app.yaml lists them) and reinstall the app"
                    .to_string(),
                _ => slack_failure(&e),
            };
            return Outcome::fail(format!("Slack: approvals channel {id}"), fix);
        }
    };
    let name = facts
        .name
        .map(|n| format!("#{n} ({id})"))
        .unwrap_or_else(|| id.to_string());
    if facts.archived {
        Outcome::fail(
            format!("Slack: approvals channel {name}"),
            "it is archived, so nothing can be posted there: unarchive it, or set \
             slack.approvals_channel to another channel",
        )
    } else if !facts.member {
        Outcome::fail(
            format!("Slack: approvals channel {name}"),
            "the bot is not a member, so it cannot post approval requests there: invite it \
             (/invite @tempadmin in the channel, or the name you gave the bot)",
        )
    } else {
        Outcome::pass(format!(
            "Slack: approvals channel {name} exists and the bot is a member"
        ))
    }
}

async fn approver_group(chat: &SlackChat, group: &str) -> Outcome {
    let what = format!("Slack: approver group {group}");
    match chat.usergroup_members(group).await {
        Ok(members) if members.is_empty() => Outcome::fail(
            what,
            "it has no members, so nobody approves through it: add people to it, or remove it \
             from slack.approvers",
        ),
        Ok(members) => Outcome::pass(format!("{what} resolves ({} members)", members.len())),
        Err(e) => Outcome::fail(
            what,
            match slack_code(&e) {
                Some("no_such_subteam") => "this workspace has no such user group: check \
                     slack.approvers (a group's ID starts with S)"
                    .to_string(),
                Some("missing_scope") => "the app lacks the scope usergroups:read: add it under \
                     OAuth & Permissions → Bot Token Scopes and reinstall the app"
                    .to_string(),
                _ => slack_failure(&e),
            },
        ),
    }
}

async fn approver_person(chat: &SlackChat, user: &str) -> Outcome {
    let what = format!("Slack: approver {user}");
    match chat.person(user).await {
        Ok(p) if p.deleted => Outcome::fail(
            what,
            "the account is deactivated: remove it from slack.approvers",
        ),
        Ok(p) if p.bot => Outcome::fail(
            what,
            "this is a bot, not a person: use people's member IDs in slack.approvers",
        ),
        Ok(p) if !p.email => Outcome::fail(
            what,
            "Slack shows the bot no email for this person, and an approver without one decides \
             nothing (four eyes are counted by JumpCloud account, found by email): add the scope \
             users:read.email and reinstall the app, or give the person an email",
        ),
        Ok(_) => Outcome::pass(format!("{what} is a person in the workspace")),
        Err(e) => Outcome::fail(
            what,
            match slack_code(&e) {
                Some("user_not_found") => "this workspace has no such user: check slack.approvers \
                     (a person's member ID starts with U or W: profile → ⋮ → Copy member ID)"
                    .to_string(),
                Some("missing_scope") => "the app lacks the scope users:read: add it under OAuth \
                     & Permissions → Bot Token Scopes and reinstall the app"
                    .to_string(),
                _ => slack_failure(&e),
            },
        ),
    }
}

/// Slack's error word, for a refusal.
fn slack_code(e: &ChatError) -> Option<&str> {
    match e {
        ChatError::Permanent(code) => Some(code.as_str()),
        _ => None,
    }
}

fn slack_failure(e: &ChatError) -> String {
    match e {
        ChatError::Permanent(code) => format!("Slack answered {code}"),
        ChatError::RateLimited { .. } => {
            "Slack is rate-limiting the bot: try again in a minute".into()
        }
        ChatError::Transient(why) => format!("Slack did not answer ({why}): try again"),
    }
}

/// JumpCloud: the credential first; the rest only once it is accepted.
async fn jumpcloud(config: &Config) -> Vec<Outcome> {
    let client = match JumpCloudClient::new(config.jumpcloud.clone()) {
        Ok(client) => client,
        Err(e) => return vec![Outcome::fail("JumpCloud", format!("{e:#}"))],
    };
    let api_url = config.jumpcloud.api_url.as_str();
    let service_account = client.uses_service_account();
    let who = if service_account {
        "the service account"
    } else {
        "JUMPCLOUD_API_KEY"
    };
    let mut outcomes = Vec::new();
    if service_account {
        match client.fetch_token().await {
            Ok(()) => outcomes.push(Outcome::pass(
                "JumpCloud: the service account got a token from jumpcloud.oauth_url",
            )),
            Err(e) => {
                let fix = match e {
                    DirectoryError::Unauthorized(status) => format!(
                        "the token endpoint refused it (HTTP {status}): check JUMPCLOUD_CLIENT_ID \
                         and JUMPCLOUD_CLIENT_SECRET (Settings → Service Accounts), and \
                         jumpcloud.oauth_url (EU organisations: \
                         https://admin-oauth.id.eu.jumpcloud.com/oauth2/token)"
                    ),
                    other => jumpcloud_failure(&other, "jumpcloud.oauth_url"),
                };
                outcomes.push(Outcome::fail("JumpCloud: service account token", fix));
                return outcomes;
            }
        }
    }
    let refused = |status: u16, what: &str| match (status, service_account) {
        (401, false) => "JumpCloud refused the key (HTTP 401): set JUMPCLOUD_API_KEY to a \
             current key (admin menu → My API Key); a multi-tenant administrator also sets \
             JUMPCLOUD_ORG_ID, and EU organisations jumpcloud.api_url = \
             \"https://console.eu.jumpcloud.com\""
            .to_string(),
        (401, true) => format!(
            "JumpCloud refused the service account's token (HTTP 401): check that the account \
             belongs to the organisation at {api_url} (JUMPCLOUD_ORG_ID for a multi-tenant one)"
        ),
        (status, _) => format!(
            "JumpCloud does not let {who} read {what} (HTTP {status}): give it a role that may"
        ),
    };
    match client.count_users().await {
        Ok(n) => outcomes.push(Outcome::pass(format!(
            "JumpCloud: {who} can list users ({n})"
        ))),
        Err(e) => {
            // Every later call would fail alike.
            let stop = matches!(
                e,
                DirectoryError::Unauthorized(401) | DirectoryError::Transient(_)
            );
            let fix = match e {
                DirectoryError::Unauthorized(status) => refused(status, "users"),
                other => jumpcloud_failure(&other, "jumpcloud.api_url"),
            };
            outcomes.push(Outcome::fail(
                format!("JumpCloud: {who} listing users"),
                fix,
            ));
            if stop {
                return outcomes;
            }
        }
    }
    outcomes.push(match client.count_systems().await {
        Ok(n) => Outcome::pass(format!("JumpCloud: {who} can list devices ({n})")),
        Err(e) => Outcome::fail(
            format!("JumpCloud: {who} listing devices"),
            match e {
                DirectoryError::Unauthorized(status) => refused(status, "devices"),
                other => jumpcloud_failure(&other, "jumpcloud.api_url"),
            },
        ),
    });
    if config.device.enabled() {
        outcomes.push(device_commands(&client, config.device, who).await);
    }
    if config.grant_mode == GrantMode::AccessRequest {
        outcomes.push(match client.can_read_access_requests().await {
            Ok(()) => Outcome::pass(format!(
                "JumpCloud: {who} can read access requests (grant_mode = \"access_request\")"
            )),
            Err(e) => Outcome::fail(
                format!("JumpCloud: {who} reading access requests"),
                match e {
                    DirectoryError::Unauthorized(status) => {
                        refused(status, "access requests (grant_mode = \"access_request\")")
                    }
                    other => jumpcloud_failure(&other, "jumpcloud.api_url"),
                },
            ),
        });
    }
    outcomes
}

async fn device_commands(client: &JumpCloudClient, device: DeviceSettings, who: &str) -> Outcome {
    let mut missing = Vec::new();
    let mut differ = Vec::new();
    let specs = commands::required_specs(device.end_elevated);
    for spec in &specs {
        match commands::found(client, spec).await {
            Ok(Found::Current) => {}
            Ok(Found::Missing) => missing.push(spec.name),
            Ok(Found::Differs) => differ.push(spec.name),
            Err(e) => {
                return Outcome::fail(
                    format!("JumpCloud: {who} reading the device commands"),
                    match e {
                        DirectoryError::Unauthorized(status) => format!(
                            "JumpCloud does not let {who} read commands (HTTP {status}), which \
                             [device] needs: give it a role that may manage commands"
                        ),
                        other => jumpcloud_failure(&other, "jumpcloud.api_url"),
                    },
                )
            }
        }
    }
    if missing.is_empty() && differ.is_empty() {
        return Outcome::pass(format!(
            "JumpCloud: the {} device commands that [device] uses are installed and current",
            specs.len()
        ));
    }
    let mut found = Vec::new();
    if !missing.is_empty() {
        found.push(format!("missing {}", missing.join(", ")));
    }
    if !differ.is_empty() {
        found.push(format!("out of date {}", differ.join(", ")));
    }
    Outcome::fail(
        format!("JumpCloud: device commands ({})", found.join("; ")),
        "run `tempadmin jumpcloud install-commands --config FILE`",
    )
}

fn jumpcloud_failure(e: &DirectoryError, setting: &str) -> String {
    match e {
        DirectoryError::Transient(why) => {
            format!("JumpCloud did not answer ({why}): check the network, any proxy, and {setting}")
        }
        DirectoryError::RateLimited { .. } => {
            "JumpCloud is rate-limiting these credentials: try again in a minute".into()
        }
        other => format!("{other}; check {setting}"),
    }
}

/// Teams: the Bot Framework token, then Graph for each approver group.
async fn teams(settings: &TeamsSettings) -> Vec<Outcome> {
    let clock = Arc::new(SystemClock);
    let mut outcomes = vec![
        match Connector::new(settings, clock.clone()).fetch_token().await {
            Ok(()) => Outcome::pass(format!(
                "Teams: the Bot Framework token for app {} was issued by tenant {}",
                settings.app_id, settings.tenant_id
            )),
            Err(e) => {
                let fix = match e {
                    ChatError::Permanent(why) => why,
                    ChatError::Transient(why) => {
                        format!("{why}: check the network, any proxy, and teams.token_url")
                    }
                    ChatError::RateLimited { .. } => {
                        "Entra ID is rate-limiting the app: try again in a minute".into()
                    }
                };
                return vec![Outcome::fail("Teams: TEAMS_APP_PASSWORD", fix)];
            }
        },
    ];
    if settings.approver_groups.is_empty() {
        return outcomes;
    }
    let graph = Graph::new(settings, clock);
    for group in &settings.approver_groups {
        let what = format!("Teams: approver group {group}");
        outcomes.push(match graph.first_page_users(group).await {
            Ok(0) => Outcome::fail(
                what,
                "Microsoft Graph lists no users in it, so nobody approves through it: add \
                 people to the group, or remove it from teams.approver_groups",
            ),
            Ok(n) => Outcome::pass(format!(
                "{what}: Microsoft Graph lists its members ({n} on the first page)"
            )),
            Err(ChatError::Permanent(why)) => Outcome::fail(what, why),
            Err(ChatError::Transient(why)) => Outcome::fail(
                what,
                format!("{why}: check the network, any proxy, and teams.graph_url"),
            ),
            Err(ChatError::RateLimited { .. }) => Outcome::fail(
                what,
                "Microsoft Graph is rate-limiting the app: try again in a minute",
            ),
        });
    }
    outcomes
}

/// The database, read-only: reachable, and migrated as this build expects.
async fn database(url: &str) -> Vec<Outcome> {
    let shown = crate::cli::redact_url(url);
    let outcome = match migrations::readiness(url).await {
        Ok(Readiness::NotCreated { directory }) => Outcome::pass(format!(
            "Database: {shown} does not exist yet; `tempadmin serve` creates it in {}",
            directory.display()
        )),
        Ok(Readiness::Empty { embedded }) => Outcome::pass(format!(
            "Database: {shown} is reachable and empty; `tempadmin serve` creates its tables \
             ({embedded} migrations) at start"
        )),
        Ok(Readiness::Current { applied }) => Outcome::pass(format!(
            "Database: {shown} is reachable and its migrations are current ({applied})"
        )),
        Ok(Readiness::Pending(pending)) => Outcome::fail(
            format!(
                "Database: {shown} has migrations pending ({})",
                pending
                    .iter()
                    .map(|p| format!("{:04} {}", p.version, p.description))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "an older tempadmin last served it: start this version's `tempadmin serve`, which \
             applies them at start (check changes nothing)",
        ),
        Ok(Readiness::Newer(versions)) => Outcome::fail(
            format!(
                "Database: {shown} was migrated by a newer tempadmin ({})",
                versions_list(&versions)
            ),
            "run that newer version, or restore a backup taken before it",
        ),
        Ok(Readiness::Changed(versions)) => Outcome::fail(
            format!(
                "Database: {shown} applied migrations that differ from this build's ({})",
                versions_list(&versions)
            ),
            "another build of tempadmin migrated it: run the version that did",
        ),
        Ok(Readiness::Dirty(version)) => Outcome::fail(
            format!("Database: {shown} has migration {version:04} failed half-way"),
            "see its row in the table _sqlx_migrations and the server's log, repair the \
             database, then start `tempadmin serve` again",
        ),
        Err(e) => Outcome::fail(
            format!("Database: {shown} is unreachable"),
            format!("{e:#}: check database_url (or DATABASE_URL), that the server runs and that it accepts this user"),
        ),
    };
    vec![outcome]
}

fn versions_list(versions: &[i64]) -> String {
    versions
        .iter()
        .map(|v| format!("{v:04}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_prints_one_line_per_check_and_counts_the_failures() {
        let report = Report {
            outcomes: vec![
                Outcome::pass("Slack: token"),
                Outcome::fail("JumpCloud: key", "set JUMPCLOUD_API_KEY"),
            ],
        };
        assert!(!report.passed());
        assert_eq!(
            report.to_string(),
            "✓ Slack: token\n✗ JumpCloud: key: set JUMPCLOUD_API_KEY\n1 of 2 checks failed."
        );
        let fine = Report {
            outcomes: vec![Outcome::pass("a")],
        };
        assert!(fine.passed());
        assert!(fine.to_string().ends_with("All 1 checks passed."));
    }
}
