//! `tempadmin check`, the real binary against the simulators: all good
//! exits 0 with a ✓ per check; each wrong item exits non-zero with a ✗
//! line naming it; and no run writes anything, to any service or to the
//! database.

use std::path::PathBuf;
use std::process::{Command, Output};

use tempadmin::jumpcloud::commands::install_commands;
use tempadmin::jumpcloud::{JumpCloudClient, JumpCloudCredentials, JumpCloudSettings};
use tempadmin::sim::jumpcloud::{FakeJumpCloud, SimUser};
use tempadmin::sim::slack::{FakeSlack, SimChannel};
use tempadmin::sim::teams::{FakeBotFramework, APPROVALS_CONVERSATION, APP_ID, TENANT_ID};
use tempadmin::store::Database;

use crate::support::{system, APPROVALS, GRACE, HOPPER, JC_ADA, LAPTOP};

const BOT_TOKEN: &str = "xoxb-check-5ecret";
const JC_KEY: &str = "jc-check-key-5ecret";
const SIGNING_SECRET: &str = "signing-5ecret";
const APP_TOKEN: &str = "xapp-1-check-5ecret";
const TEAMS_GROUP: &str = "0f1e2d3c-0000-4000-8000-000000000001";

/// The services a config is checked against, and the config's folder.
struct Setup {
    slack: FakeSlack,
    jc: FakeJumpCloud,
    teams: Option<FakeBotFramework>,
    dir: tempfile::TempDir,
    /// The config file's extra sections and keys, below the generated ones.
    extra: String,
    /// `database_url`.
    database_url: String,
    /// `slack.mode`, when not the default.
    slack_mode: Option<&'static str>,
    /// The environment the binary gets (nothing else of the test's).
    env: Vec<(String, String)>,
}

impl Setup {
    /// Slack with the approvals channel and an approver group, JumpCloud
    /// with one person and their laptop, an empty folder for the database.
    async fn new() -> Setup {
        let slack = FakeSlack::start(BOT_TOKEN).await;
        slack.add_user(GRACE, "grace", Some("grace@example.com"));
        slack.add_user(HOPPER, "hopper", Some("hopper@example.com"));
        slack.add_usergroup("S0ADMINS", &[HOPPER]);
        let jc = FakeJumpCloud::start(JC_KEY).await;
        jc.add_user(SimUser {
            id: JC_ADA.into(),
            email: "ada@example.com".into(),
            username: "ada".into(),
            sudo: false,
            suspended: false,
        });
        jc.add_system(system(LAPTOP, "ada-mac", "darwin"));
        let dir = tempfile::tempdir().unwrap();
        let database_url = format!("sqlite://{}", dir.path().join("t.db").display());
        let env = [
            ("SLACK_BOT_TOKEN", BOT_TOKEN),
            ("SLACK_SIGNING_SECRET", SIGNING_SECRET),
            ("JUMPCLOUD_API_KEY", JC_KEY),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec();
        Setup {
            slack,
            jc,
            teams: None,
            dir,
            extra: String::new(),
            database_url,
            slack_mode: None,
            env,
        }
    }

    /// Everything a config can ask `check` to prove: device commands
    /// (installed), access requests, and Teams with an approver group.
    async fn everything() -> Setup {
        let mut setup = Setup::new().await;
        let client = JumpCloudClient::new(JumpCloudSettings {
            api_url: setup.jc.url(),
            credentials: JumpCloudCredentials::ApiKey(JC_KEY.to_string().into()),
            org_id: None,
            timeout: std::time::Duration::from_secs(5),
            max_requests_per_second: None,
        })
        .unwrap();
        install_commands(&client).await.unwrap();
        let teams = FakeBotFramework::start().await;
        teams.set_group(TEAMS_GROUP, &["aad-grace"]);
        setup.extra = format!(
            r#"
[device]
notices = true
end_elevated = "notify"

[teams]
app_id = "{APP_ID}"
tenant_id = "{TENANT_ID}"
approvals_conversation = "{APPROVALS_CONVERSATION}"
service_url = "{}"
approver_groups = ["{TEAMS_GROUP}"]
graph_url = "{}"
openid_metadata_url = "{}"
token_url = "{}"
"#,
            teams.service_url(),
            teams.graph_url(),
            teams.openid_metadata_url(),
            teams.token_url(),
        );
        setup.set_env("TEAMS_APP_PASSWORD", tempadmin::sim::teams::APP_PASSWORD);
        setup.teams = Some(teams);
        setup
    }

    fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_string(), value.to_string()));
    }

    fn remove_env(&mut self, name: &str) {
        self.env.retain(|(k, _)| k != name);
    }

    /// Creates the database and applies every migration, as `serve` would,
    /// then copies the log into the file, so that what the file holds is
    /// all there is.
    async fn migrate(&self) {
        use sqlx::Connection;
        Database::open(&self.database_url)
            .await
            .unwrap()
            .shut_down()
            .await;
        let mut connection = sqlx::SqliteConnection::connect(&self.database_url)
            .await
            .unwrap();
        // The store's connections close in the background: until the last
        // has, the checkpoint is refused as busy.
        for _ in 0..500 {
            let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut connection)
                .await
                .unwrap();
            if busy == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        connection.close().await.unwrap();
    }

    fn write_config(&self, grant_mode: &str) -> PathBuf {
        let text = format!(
            r#"database_url = "{}"

[slack]
api_url = "{}"
approvals_channel = "{APPROVALS}"
approvers = ["{GRACE}", "S0ADMINS"]
{}

[jumpcloud]
api_url = "{}"
grant_mode = "{grant_mode}"
{}"#,
            self.database_url,
            self.slack.api_url(),
            self.slack_mode
                .map(|mode| format!("mode = \"{mode}\""))
                .unwrap_or_default(),
            self.jc.url(),
            self.extra,
        );
        let path = self.dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs `tempadmin check --config FILE` and returns its exit status
    /// and output (stdout then stderr), checking that it changed nothing
    /// anywhere and showed no secret.
    async fn check_with(&self, grant_mode: &str) -> (Output, String) {
        let config = self.write_config(grant_mode);
        // The file and its write-ahead log: a write lands in one of them.
        // A reader of a database in WAL mode may create an empty log (and
        // the shared-memory index) beside it, which holds nothing.
        let database = || {
            ["t.db", "t.db-wal"].map(|name| {
                std::fs::read(self.dir.path().join(name))
                    .ok()
                    .filter(|bytes| !bytes.is_empty())
            })
        };
        let db_before = database();
        let jc_writes = self.jc.write_calls().len();
        let mut command = Command::new(env!("CARGO_BIN_EXE_tempadmin"));
        command
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(["check", "--config"])
            .arg(&config);
        let out = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            self.slack.write_calls().is_empty(),
            "check wrote to Slack: {:?}\n{text}",
            self.slack.write_calls()
        );
        assert_eq!(
            self.jc.write_calls().len(),
            jc_writes,
            "check wrote to JumpCloud: {:?}\n{text}",
            self.jc.write_calls()
        );
        if let Some(teams) = &self.teams {
            assert!(
                teams.write_calls().is_empty(),
                "check wrote to Teams: {:?}\n{text}",
                teams.write_calls()
            );
        }
        assert!(
            database() == db_before,
            "check changed the database\n{text}"
        );
        for (name, value) in &self.env {
            assert!(
                !text.contains(value.as_str()),
                "{name}'s value shown:\n{text}"
            );
        }
        assert!(!text.contains("5ecret"), "{text}");
        (out, text)
    }

    async fn check(&self) -> (Output, String) {
        self.check_with("association").await
    }
}

/// The output's ✓ and ✗ lines.
fn lines(text: &str, mark: char) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with(mark)).collect()
}

/// The one ✗ line of `text`, which must contain every word of `names`;
/// everything else passed and the exit status says so.
fn fails_naming(out: &Output, text: &str, names: &[&str]) {
    assert!(!out.status.success(), "{text}");
    let failed = lines(text, '✗');
    assert_eq!(failed.len(), 1, "{text}");
    for name in names {
        assert!(
            failed[0].contains(name),
            "`{name}` not in {}\n{text}",
            failed[0]
        );
    }
    assert!(text.contains("1 of "), "{text}");
}

#[tokio::test]
async fn a_good_config_passes_every_check_and_exits_0() {
    let setup = Setup::everything().await;
    setup.migrate().await;
    let (out, text) = setup.check_with("access_request").await;
    assert!(out.status.success(), "{text}");
    assert!(lines(&text, '✗').is_empty(), "{text}");
    let passed = lines(&text, '✓');
    for expected in [
        "Slack: SLACK_BOT_TOKEN is the bot U0BOT of app A0TEMPADMIN in workspace T0SIM",
        "Slack: approvals channel #tempadmin-approvals (C0APPROVALS) exists and the bot is a member",
        "Slack: approver U0GRACE is a person",
        "Slack: approver group S0ADMINS resolves (1 members)",
        "JumpCloud: JUMPCLOUD_API_KEY can list users (1)",
        "JumpCloud: JUMPCLOUD_API_KEY can list devices (1)",
        "JumpCloud: the 6 device commands that [device] uses are installed and current",
        "JumpCloud: JUMPCLOUD_API_KEY can read access requests",
        "Teams: the Bot Framework token for app",
        "Teams: approver group 0f1e2d3c-0000-4000-8000-000000000001: Microsoft Graph lists its members (1 on the first page)",
        "Database: sqlite://",
    ] {
        assert!(
            passed.iter().any(|l| l.contains(expected)),
            "no ✓ line with `{expected}`:\n{text}"
        );
    }
    assert!(text.contains("migrations are current"), "{text}");
    assert!(
        text.contains(&format!("All {} checks passed.", passed.len())),
        "{text}"
    );
}

#[tokio::test]
async fn a_database_not_yet_created_passes_and_is_not_created() {
    let setup = Setup::new().await;
    let (out, text) = setup.check().await;
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("does not exist yet; `tempadmin serve` creates it"),
        "{text}"
    );
    assert!(!setup.dir.path().join("t.db").exists());
}

#[tokio::test]
async fn a_wrong_bot_token_fails_naming_it() {
    let mut setup = Setup::new().await;
    setup.set_env("SLACK_BOT_TOKEN", "xoxb-wrong-5ecret");
    let (out, text) = setup.check().await;
    fails_naming(&out, &text, &["SLACK_BOT_TOKEN", "invalid_auth", "xoxb-"]);
    assert!(text.contains("✓ JumpCloud"), "{text}");
}

#[tokio::test]
async fn socket_mode_proves_the_app_level_token_and_a_wrong_one_fails_naming_it() {
    let mut setup = Setup::new().await;
    let socket = setup.slack.enable_socket_mode(APP_TOKEN).await;
    setup.slack_mode = Some("socket");
    setup.remove_env("SLACK_SIGNING_SECRET");
    setup.set_env("SLACK_APP_TOKEN", APP_TOKEN);
    let (out, text) = setup.check().await;
    assert!(out.status.success(), "{text}");
    assert!(
        lines(&text, '✓')
            .iter()
            .any(|l| l.contains("SLACK_APP_TOKEN opens Socket Mode connections")),
        "{text}"
    );
    assert_eq!(socket.connections_opened(), 0, "nobody connects");

    setup.set_env("SLACK_APP_TOKEN", "xapp-wrong-5ecret");
    let (out, text) = setup.check().await;
    fails_naming(
        &out,
        &text,
        &["SLACK_APP_TOKEN", "invalid_auth", "connections:write"],
    );
}

#[tokio::test]
async fn a_wrong_jumpcloud_key_fails_naming_it() {
    let mut setup = Setup::new().await;
    setup.set_env("JUMPCLOUD_API_KEY", "jc-wrong-5ecret");
    let (out, text) = setup.check().await;
    fails_naming(&out, &text, &["JUMPCLOUD_API_KEY", "HTTP 401"]);
    assert!(text.contains("✓ Slack"), "{text}");
}

#[tokio::test]
async fn a_service_account_is_checked_at_the_token_endpoint_first() {
    let mut setup = Setup::new().await;
    setup.jc.enable_service_account(
        "sa-id",
        "sa-secret-5ecret",
        std::time::Duration::from_secs(3600),
    );
    setup.remove_env("JUMPCLOUD_API_KEY");
    setup.set_env("JUMPCLOUD_CLIENT_ID", "sa-id");
    setup.set_env("JUMPCLOUD_CLIENT_SECRET", "sa-secret-5ecret");
    setup.extra = format!("oauth_url = \"{}\"\n", setup.jc.oauth_url());
    let (out, text) = setup.check().await;
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("✓ JumpCloud: the service account got a token"),
        "{text}"
    );
    assert!(
        text.contains("✓ JumpCloud: the service account can list users (1)"),
        "{text}"
    );
    setup.set_env("JUMPCLOUD_CLIENT_SECRET", "wrong-5ecret");
    let (out, text) = setup.check().await;
    fails_naming(
        &out,
        &text,
        &[
            "service account token",
            "JUMPCLOUD_CLIENT_SECRET",
            "HTTP 401",
        ],
    );
    assert!(
        !text.contains("list users"),
        "nothing after a refused token:\n{text}"
    );
}

#[tokio::test]
async fn an_approvals_channel_the_bot_is_not_in_fails_with_the_invite() {
    let setup = Setup::new().await;
    setup.slack.add_channel(
        APPROVALS,
        SimChannel {
            name: "it-approvals".into(),
            private: false,
            archived: false,
            bot_member: false,
        },
    );
    let (out, text) = setup.check().await;
    fails_naming(
        &out,
        &text,
        &[
            "approvals channel #it-approvals (C0APPROVALS)",
            "not a member",
            "/invite",
        ],
    );
}

#[tokio::test]
async fn an_approvals_channel_slack_does_not_know_fails_naming_the_setting() {
    let setup = Setup::new().await;
    setup.slack.remove_channel(APPROVALS);
    let (out, text) = setup.check().await;
    fails_naming(
        &out,
        &text,
        &["approvals channel C0APPROVALS", "slack.approvals_channel"],
    );
}

#[tokio::test]
async fn an_app_without_channels_read_fails_naming_the_scope() {
    let setup = Setup::new().await;
    setup.slack.remove_scope("channels:read");
    let (out, text) = setup.check().await;
    fails_naming(
        &out,
        &text,
        &["approvals channel", "channels:read", "reinstall"],
    );
}

#[tokio::test]
async fn an_app_without_users_read_email_fails_on_each_approver_naming_the_scope() {
    let setup = Setup::new().await;
    setup.slack.remove_scope("users:read.email");
    let (out, text) = setup.check().await;
    fails_naming(&out, &text, &["approver U0GRACE", "users:read.email"]);
}

#[tokio::test]
async fn an_approver_group_with_nobody_in_it_fails_naming_it() {
    let setup = Setup::new().await;
    setup.slack.add_usergroup("S0ADMINS", &[]);
    let (out, text) = setup.check().await;
    fails_naming(&out, &text, &["approver group S0ADMINS", "no members"]);
}

#[tokio::test]
async fn missing_device_commands_fail_with_install_commands() {
    let mut setup = Setup::new().await;
    setup.extra = "\n[device]\nnotices = true\n".into();
    let (out, text) = setup.check().await;
    fails_naming(
        &out,
        &text,
        &["missing tempadmin-notice-windows", "install-commands"],
    );
}

#[tokio::test]
async fn an_unreachable_database_fails_without_showing_its_password() {
    let mut setup = Setup::new().await;
    // Nothing listens on port 1 of loopback: refused at once.
    setup.database_url = "postgres://tempadmin:db-pass-5ecret@127.0.0.1:1/tempadmin".into();
    let (out, text) = setup.check().await;
    fails_naming(
        &out,
        &text,
        &[
            "Database: postgres://tempadmin:redacted@127.0.0.1:1/tempadmin is unreachable",
            "database_url",
        ],
    );
}

#[tokio::test]
async fn pending_migrations_fail_and_are_not_applied() {
    use sqlx::Connection;
    let setup = Setup::new().await;
    setup.migrate().await;
    let mut connection = sqlx::SqliteConnection::connect(&setup.database_url)
        .await
        .unwrap();
    let last: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = ?")
        .bind(last)
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    let (out, text) = setup.check().await;
    fails_naming(
        &out,
        &text,
        &[
            "migrations pending",
            &format!("{last:04}"),
            "tempadmin serve",
        ],
    );
}

#[tokio::test]
async fn teams_credentials_and_graph_rights_are_checked_before_going_live() {
    let mut setup = Setup::everything().await;
    setup.set_env("TEAMS_APP_PASSWORD", "wrong-teams-5ecret");
    let (out, text) = setup.check().await;
    fails_naming(
        &out,
        &text,
        &[
            "Teams: TEAMS_APP_PASSWORD",
            "invalid_client",
            "teams.app_id",
        ],
    );
    assert!(!text.contains("Microsoft Graph"), "{text}");
    setup.set_env("TEAMS_APP_PASSWORD", tempadmin::sim::teams::APP_PASSWORD);
    let teams = setup.teams.clone().unwrap();
    teams.set_graph_permission_granted(false);
    let (out, text) = setup.check().await;
    fails_naming(
        &out,
        &text,
        &[
            "Teams: approver group 0f1e2d3c",
            "Authorization_RequestDenied",
            "GroupMember.Read.All",
        ],
    );
}

#[tokio::test]
async fn credentials_that_may_not_read_access_requests_fail_naming_the_grant_mode() {
    use tempadmin::sim::jumpcloud::Failure;
    let setup = Setup::new().await;
    setup.jc.fail_next(
        "GET",
        "/api/v2/accessrequests",
        1,
        Failure::Status {
            status: 403,
            retry_after: None,
        },
    );
    let (out, text) = setup.check_with("access_request").await;
    fails_naming(
        &out,
        &text,
        &["reading access requests", "HTTP 403", "grant_mode"],
    );
}
