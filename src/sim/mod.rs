//! Loopback simulators of the outside services (Slack, JumpCloud, the Bot
//! Framework), shared by `tempadmin demo`,
//! the integration tests and the benchmark. They follow the real APIs'
//! documented shapes and record every call.

pub mod block_kit;
pub mod jumpcloud;
pub mod replicas;
pub mod slack;
pub mod slack_sender;
pub mod slack_socket;
pub mod teams;
pub mod teams_sender;

use std::time::Duration;

use secrecy::SecretString;

use crate::config::{Config, SlackConfig, SlackMode};
use crate::domain::Policy;
use crate::jumpcloud::{JumpCloudCredentials, JumpCloudSettings};
use crate::slack::client::SlackSettings;

/// The signing secret the simulated Slack signs with.
pub const SIGNING_SECRET: &str = "simulated-signing-secret";

/// The channel approval requests go to in the simulations.
pub const APPROVALS_CHANNEL: &str = "C0APPROVALS";

/// A configuration that points the bot at the two simulators, listening on a
/// free loopback port.
pub fn config(
    slack: &slack::FakeSlack,
    jumpcloud: &jumpcloud::FakeJumpCloud,
    database_url: String,
    approvers: Vec<String>,
    policy: Policy,
    call_timeout: Duration,
) -> Config {
    let mut config = jumpcloud_config(jumpcloud, database_url, policy, call_timeout);
    config.slack = Some(SlackConfig {
        api: SlackSettings {
            api_url: slack.api_url(),
            bot_token: SecretString::from(slack.bot_token()),
            approvals_channel: APPROVALS_CHANNEL.into(),
            approvers,
            timeout: call_timeout,
        },
        mode: SlackMode::Http {
            signing_secret: SecretString::from(SIGNING_SECRET),
        },
        team_ids: Vec::new(),
    });
    config
}

/// A configuration that points the bot at the fake Bot Framework (Teams
/// alone, `approvers` as `teams.approvers`) and the fake JumpCloud.
pub fn teams_config(
    bot_framework: &teams::FakeBotFramework,
    jumpcloud: &jumpcloud::FakeJumpCloud,
    database_url: String,
    approvers: Vec<String>,
    policy: Policy,
    call_timeout: Duration,
) -> Config {
    let mut config = jumpcloud_config(jumpcloud, database_url, policy, call_timeout);
    let mut settings = bot_framework.settings();
    settings.approvers = approvers;
    config.teams = Some(settings);
    config
}

/// The fake JumpCloud and everything else, with no chat platform yet.
fn jumpcloud_config(
    jumpcloud: &jumpcloud::FakeJumpCloud,
    database_url: String,
    policy: Policy,
    call_timeout: Duration,
) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        database_url,
        slack: None,
        teams: None,
        jumpcloud: JumpCloudSettings {
            api_url: jumpcloud.url(),
            credentials: JumpCloudCredentials::ApiKey(SecretString::from(jumpcloud.api_key())),
            org_id: None,
            timeout: call_timeout,
            max_requests_per_second: None,
        },
        grant_mode: Default::default(),
        policy,
        workers: crate::engine::Workers::default(),
        http: Default::default(),
        metrics_listen: None,
        device: Default::default(),
    }
}
