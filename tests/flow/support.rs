//! `TestApp`: the real router on a random port, a fresh SQLite file, fake
//! Slack and JumpCloud on loopback, and a manual clock. Jobs run only when a
//! test calls `settle`, so every step is deterministic.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;
use serde_json::Value;
use tempadmin::app::App;
use tempadmin::config::{Config, SlackMode};
use tempadmin::domain::{GrantDuration, Policy, Request, RequestState};
use tempadmin::engine::clock::ManualClock;
use tempadmin::engine::ports::Clock;
use tempadmin::engine::Engine;
use tempadmin::sim::jumpcloud::{FakeJumpCloud, SimSystem, SimUser};
use tempadmin::sim::slack::{FakeSlack, SimMessage};
use tempadmin::sim::slack_socket::{self, FakeSocketMode};
use tempadmin::sim::teams::{FakeBotFramework, SimActivity, APPROVALS_CONVERSATION};
use tempadmin::sim::{self, slack_sender, teams_sender};
use tempadmin::slack::signature::SigningSecret;
use tempadmin::store::Database;

pub const SECRET: &str = sim::SIGNING_SECRET;
pub const APPROVALS: &str = sim::APPROVALS_CHANNEL;
/// The requester.
pub const ADA: &str = "U0ADA";
/// A configured approver.
pub const GRACE: &str = "U0GRACE";
/// An approver through the user group S0ADMINS.
pub const HOPPER: &str = "U0HOPPER";
/// Nobody special.
pub const MALLORY: &str = "U0MALLORY";
pub const JC_ADA: &str = "jcada0000000000000000001";
pub const LAPTOP: &str = "sys00000000000000000lap1";

/// One outbox row as a test sees it.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// The notice's destination kind (`approval_card`, `private`, `direct`…).
    pub to: String,
    pub delivered: bool,
    pub failed: bool,
    pub attempts: i64,
    pub last_error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct OutboxDbRow {
    notice: String,
    delivered_at: Option<i64>,
    failed_at: Option<i64>,
    attempts: i64,
    last_error: Option<String>,
}

/// A Slack or JumpCloud call timeout for the tests of a service that
/// never answers: long enough for a loopback fake that does answer, short
/// enough that the test does not wait on real time (the default is 1.5 s).
pub const SHORT_CALL_TIMEOUT: Duration = Duration::from_millis(100);

pub fn d(text: &str) -> GrantDuration {
    GrantDuration::parse(text).unwrap()
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub slack: FakeSlack,
    /// Slack's Socket Mode side, when `slack.mode = "socket"`.
    pub socket: Option<FakeSocketMode>,
    /// The fake Bot Framework, when the app also serves Teams.
    pub teams: Option<FakeBotFramework>,
    pub jc: FakeJumpCloud,
    pub clock: Arc<ManualClock>,
    pub engine: Arc<Engine>,
    /// The database the application runs on.
    pub database: Database,
    pub config: Config,
    secret: SigningSecret,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// Ada with one MacBook bound through a group; Grace approves directly,
/// Hopper through the user group S0ADMINS.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Policy)) -> TestApp {
    spawn_app_configured(|config| adjust(&mut config.policy)).await
}

/// Like [`spawn_app`], with any setting changed first.
pub async fn spawn_app_configured(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let slack = FakeSlack::start("xoxb-test").await;
    let jc = FakeJumpCloud::start("jc-test-key").await;
    slack.add_user(ADA, "ada", Some("ada@example.com"));
    slack.add_user(GRACE, "grace", Some("grace@example.com"));
    slack.add_user(HOPPER, "hopper", Some("hopper@example.com"));
    slack.add_user(MALLORY, "mallory", Some("mallory@example.com"));
    slack.add_usergroup("S0ADMINS", &[HOPPER]);
    jc.add_user(SimUser {
        id: JC_ADA.into(),
        email: "ada@example.com".into(),
        username: "ada".into(),
        sudo: false,
        suspended: false,
    });
    jc.add_system(system(LAPTOP, "ada-mac", "darwin"));
    jc.bind_via_group(JC_ADA, LAPTOP, "grp0000000000000000000001");

    let policy = Policy {
        default_duration: d("30m"),
        min_duration: d("5m"),
        max_duration: d("4h"),
        require_reason: false,
        max_reason_length: 500,
        max_open_requests: 3,
        max_requests_per_hour: 10,
        approval_timeout: d("30m"),
        reminders: vec![d("15m"), d("5m"), d("1m")],
        approval_reminder: tempadmin::domain::ApprovalReminder::Halfway,
    };
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("test.db").display());
    let approvers = vec![GRACE.into(), "S0ADMINS".into()];
    let mut config = sim::config(
        &slack,
        &jc,
        database_url,
        approvers,
        policy,
        Duration::from_millis(1500),
    );
    config.jumpcloud.org_id = Some("org-test".into());
    adjust(&mut config);
    // Socket Mode is on in the app's settings when the config uses it; the
    // config may still carry a wrong token.
    let socket = match config.slack.as_ref().map(|s| &s.mode) {
        Some(SlackMode::Socket { .. }) => {
            Some(slack.enable_socket_mode(slack_socket::APP_TOKEN).await)
        }
        _ => None,
    };
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let (base, engine, database, stop, server) = launch(&config, &clock).await;
    TestApp {
        base,
        http: reqwest::Client::new(),
        slack,
        socket,
        teams: None,
        jc,
        clock,
        engine,
        database,
        config,
        secret: SigningSecret::new(SecretString::from(SECRET)),
        stop: Some(stop),
        server: Some(server),
        _dir: dir,
    }
}

type Launched = (
    String,
    Arc<Engine>,
    Database,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

/// Builds the real application and serves HTTP; jobs wait for `settle`.
async fn launch(config: &Config, clock: &Arc<ManualClock>) -> Launched {
    let app = App::build(config, clock.clone()).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let engine = app.engine.clone();
    let database = app.database().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve_only(async {
        let _ = stopped.await;
    }));
    (base, engine, database, stop, server)
}

pub fn system(id: &str, hostname: &str, os: &str) -> SimSystem {
    SimSystem {
        id: id.into(),
        hostname: hostname.into(),
        display_name: hostname.into(),
        os_family: os.into(),
        active: true,
    }
}

impl TestApp {
    /// Stops the server and builds a new one on the same database, as a
    /// restarted process would be.
    pub async fn restart(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        let (base, engine, database, stop, server) = launch(&self.config, &self.clock).await;
        self.base = base;
        self.engine = engine;
        self.database = database;
        self.stop = Some(stop);
        self.server = Some(server);
    }

    /// Runs every due job and message until nothing is due.
    pub async fn settle(&self) {
        while self.engine.run_due().await.unwrap() > 0 {}
    }

    /// Moves time on, then settles.
    pub async fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.settle().await;
    }

    pub fn now_unix(&self) -> i64 {
        self.clock.now().timestamp()
    }

    /// `/tempadmin TEXT` from `user`, signed; the HTTP status and JSON answer.
    pub async fn command(&self, user: &str, text: &str) -> (u16, Value) {
        let body = slack_sender::command_body(
            user,
            text,
            &self.slack.response_url(&format!("cmd-{user}")),
        );
        let response = slack_sender::post_signed(
            &self.http,
            &self.url("/slack/commands"),
            &self.secret,
            self.now_unix(),
            body,
        )
        .await
        .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `/tempadmin TEXT` that must be accepted; returns the private answer.
    pub async fn ask(&self, user: &str, text: &str) -> String {
        let (status, body) = self.command(user, text).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["response_type"], "ephemeral");
        body["text"].as_str().unwrap().to_string()
    }

    /// A signed button click; the HTTP status.
    pub async fn click(&self, user: &str, action_id: &str, value: &str) -> u16 {
        self.click_block(user, action_id, value, "block").await
    }

    pub async fn click_block(
        &self,
        user: &str,
        action_id: &str,
        value: &str,
        block_id: &str,
    ) -> u16 {
        let body = slack_sender::click_body(
            user,
            action_id,
            value,
            block_id,
            &self.slack.response_url(&format!("click-{user}")),
        );
        slack_sender::post_signed(
            &self.http,
            &self.url("/slack/interactions"),
            &self.secret,
            self.now_unix(),
            body,
        )
        .await
        .unwrap()
        .status()
        .as_u16()
    }

    /// A signed choice of `option` in a `static_select`; the HTTP status.
    pub async fn select(&self, user: &str, action_id: &str, block_id: &str, option: &Value) -> u16 {
        let body = slack_sender::select_body(
            user,
            action_id,
            block_id,
            option,
            &self.slack.response_url(&format!("click-{user}")),
        );
        slack_sender::post_signed(
            &self.http,
            &self.url("/slack/interactions"),
            &self.secret,
            self.now_unix(),
            body,
        )
        .await
        .unwrap()
        .status()
        .as_u16()
    }

    /// Every call the fake Slack received after start-up asked who the
    /// bot token belongs to (`auth.test`, `bots.info`).
    pub fn slack_calls(&self) -> Vec<tempadmin::sim::slack::SlackCall> {
        let calls = self.slack.calls();
        let start_up = calls
            .iter()
            .take_while(|c| {
                ["auth.test", "bots.info", "apps.connections.open"].contains(&c.method.as_str())
            })
            .count();
        calls.into_iter().skip(start_up).collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn sign(&self, timestamp: i64, body: &str) -> String {
        self.secret.sign(timestamp, body.as_bytes())
    }

    /// Another person like Ada: a Slack user, a JumpCloud account and one
    /// computer bound through a group. Returns (Slack id, JumpCloud id,
    /// system id).
    pub fn add_person(&self, n: usize) -> (String, String, String) {
        let slack_id = format!("U0P{n:04}");
        let jc_id = format!("jcp{n:021}");
        let system_id = format!("sysp{n:020}");
        let email = format!("person{n}@example.com");
        self.slack
            .add_user(&slack_id, &format!("person{n}"), Some(&email));
        self.jc.add_user(SimUser {
            id: jc_id.clone(),
            email,
            username: format!("person{n}"),
            sudo: false,
            suspended: false,
        });
        self.jc
            .add_system(system(&system_id, &format!("host-{n}"), "linux"));
        self.jc
            .bind_via_group(&jc_id, &system_id, "grp0000000000000000000001");
        (slack_id, jc_id, system_id)
    }

    /// The person's newest request.
    pub async fn request_of(&self, user: &str) -> Request {
        self.requests_of(user).await.pop().expect("a request")
    }

    pub async fn requests_of(&self, user: &str) -> Vec<Request> {
        // Open or not: read through the store's audit to find every id.
        let ids: Vec<String> = self
            .engine
            .store()
            .audit_since(None)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "requested" && e.actor == user)
            .map(|e| e.request_id.to_string())
            .collect();
        let mut out = Vec::new();
        for id in ids {
            let id = tempadmin::domain::RequestId::parse(&id).unwrap();
            out.push(self.engine.store().request(&id).await.unwrap().unwrap());
        }
        out
    }

    pub async fn state_of(&self, user: &str) -> RequestState {
        self.request_of(user).await.state()
    }

    /// Asks for admin as Ada and lets the request reach the approvers.
    pub async fn pending_request(&self, text: &str) -> String {
        self.ask(ADA, text).await;
        self.settle().await;
        let r = self.request_of(ADA).await;
        assert_eq!(r.state(), RequestState::PendingApproval);
        r.id.to_string()
    }

    /// Ada asks, Grace approves, JumpCloud confirms.
    pub async fn active_grant(&self, text: &str) -> String {
        let id = self.pending_request(text).await;
        assert_eq!(self.click(GRACE, "tempadmin_approve", &id).await, 200);
        self.settle().await;
        assert_eq!(self.state_of(ADA).await, RequestState::Active);
        id
    }

    /// The approval message (thread root) in the approvals channel.
    pub fn card(&self) -> SimMessage {
        self.slack
            .messages()
            .into_iter()
            .find(|m| m.channel == APPROVALS && m.thread_ts.is_none())
            .expect("an approval message")
    }

    pub fn cards(&self) -> Vec<SimMessage> {
        self.slack
            .messages()
            .into_iter()
            .filter(|m| m.channel == APPROVALS && m.thread_ts.is_none())
            .collect()
    }

    /// The thread replies under the approval message, in order.
    pub fn thread(&self) -> Vec<String> {
        self.slack
            .thread(APPROVALS, &self.card().ts)
            .into_iter()
            .map(|m| m.text)
            .collect()
    }

    /// Texts sent to Ada (the requester) by direct message.
    pub fn direct_messages(&self) -> Vec<String> {
        self.direct_messages_to(ADA)
    }

    /// Texts that landed in the app's direct-message conversation with `user`.
    pub fn direct_messages_to(&self, user: &str) -> Vec<String> {
        let dm = self.slack.dm_channel(user);
        self.slack
            .messages()
            .into_iter()
            .filter(|m| m.channel == dm)
            .map(|m| m.text)
            .collect()
    }

    /// Texts posted to a response_url whose id starts with `prefix`.
    pub fn private_answers(&self, prefix: &str) -> Vec<String> {
        self.slack
            .responses()
            .into_iter()
            .filter(|r| r.url_id.starts_with(prefix))
            .map(|r| r.body["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The next `times` association writes (elevations and restorations) fail.
    pub fn fail_writes(&self, times: usize, failure: tempadmin::sim::jumpcloud::Failure) {
        self.jc.fail_next("POST", "/api/v2/systems", times, failure);
    }

    /// The `op`s of JumpCloud association writes, in order.
    pub fn jc_ops(&self) -> Vec<String> {
        self.jc
            .writes()
            .into_iter()
            .map(|c| c.body.unwrap()["op"].as_str().unwrap().to_string())
            .collect()
    }

    /// Every outbox row, oldest first, read straight from the database.
    pub async fn outbox(&self) -> Vec<OutboxRow> {
        let pool = sqlx::SqlitePool::connect(&self.config.database_url)
            .await
            .unwrap();
        let rows: Vec<OutboxDbRow> = sqlx::query_as(
            "SELECT notice, delivered_at, failed_at, attempts, last_error FROM outbox ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows.into_iter()
            .map(|row| {
                let notice: Value = serde_json::from_str(&row.notice).unwrap();
                OutboxRow {
                    to: notice["to"].as_str().unwrap_or_default().to_string(),
                    delivered: row.delivered_at.is_some(),
                    failed: row.failed_at.is_some(),
                    attempts: row.attempts,
                    last_error: row.last_error,
                }
            })
            .collect()
    }

    pub async fn audit_actions(&self) -> Vec<String> {
        self.engine
            .store()
            .audit_since(None)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action.to_string())
            .collect()
    }
}

// ------------------------------------------------------------ Teams

/// Teams people: Ada (the same person and JumpCloud account as Slack's Ada),
/// Grace (an approver by email), Hopper (an approver by Entra ID object id),
/// Mallory (nobody special) and Lin (a Teams-only requester with her own
/// computer).
pub fn teams_person(name: &str) -> tempadmin::sim::teams::SimUser {
    let lower = name.to_ascii_lowercase();
    tempadmin::sim::teams::SimUser {
        id: format!("29:{lower}"),
        name: match name {
            "Ada" => "Ada Lovelace".into(),
            "Grace" => "Grace Hopper".into(),
            "Lin" => "Lin Chen".into(),
            other => other.into(),
        },
        aad_object_id: format!("aad-{lower}"),
        email: Some(format!("{lower}@example.com")),
        user_principal_name: format!("{lower}@example.com"),
        tenant_id: tempadmin::sim::teams::TENANT_ID.into(),
    }
}

/// A fresh activity id: the builders derive ids from the (manual, often
/// standing) clock, and two activities with one id are one delivery.
pub fn next_activity_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    format!(
        "17{:011}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

pub const JC_LIN: &str = "jclin0000000000000000001";
pub const LIN_PC: &str = "sys000000000000000linpc1";

/// Like [`spawn_app`], serving Teams beside Slack against a fake Bot
/// Framework; `adjust` may change any setting (drop Slack, say) first.
pub async fn spawn_teams_app_configured(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let fake = FakeBotFramework::start().await;
    for name in ["Ada", "Grace", "Hopper", "Mallory", "Lin"] {
        fake.add_user(teams_person(name));
    }
    let fake_for_config = fake.clone();
    let mut app = spawn_app_configured(move |config| {
        let mut settings = fake_for_config.settings();
        settings.approvers = vec!["Grace@Example.com".into(), "aad-hopper".into()];
        config.teams = Some(settings);
        adjust(config);
    })
    .await;
    app.jc.add_user(SimUser {
        id: JC_LIN.into(),
        email: "lin@example.com".into(),
        username: "lin".into(),
        sudo: false,
        suspended: false,
    });
    app.jc.add_system(system(LIN_PC, "lin-pc", "windows"));
    app.jc
        .bind_via_group(JC_LIN, LIN_PC, "grp0000000000000000000001");
    app.teams = Some(fake);
    app
}

pub async fn spawn_teams_app() -> TestApp {
    spawn_teams_app_configured(|_| {}).await
}

impl TestApp {
    /// What `/metrics` shows now.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// How many Home tabs were published to `user`.
    pub fn published_to(&self, user: &str) -> usize {
        self.slack
            .published_views()
            .iter()
            .filter(|(u, _)| u == user)
            .count()
    }

    pub fn bf(&self) -> &FakeBotFramework {
        self.teams.as_ref().expect("a Teams test app")
    }

    /// Posts a signed activity to `/teams/messages`; status and JSON answer.
    pub async fn teams_post(&self, activity: &Value) -> (u16, Value) {
        let response = teams_sender::post_activity(
            &self.http,
            &self.url("/teams/messages"),
            self.bf(),
            activity,
            self.clock.now(),
        )
        .await
        .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The 1:1 chat of `name` with the bot.
    pub fn teams_chat_of(&self, name: &str) -> String {
        FakeBotFramework::personal_conversation_id(&teams_person(name).id)
    }

    /// `name` writes `text` to the bot in their 1:1 chat; the HTTP status.
    pub async fn teams_say(&self, name: &str, text: &str) -> u16 {
        let mut activity = teams_sender::personal_message(
            &self.bf().service_url(),
            &self.teams_chat_of(name),
            &teams_person(name),
            text,
            self.clock.now(),
        );
        activity["id"] = Value::String(next_activity_id());
        self.teams_post(&activity).await.0
    }

    /// `name` writes `text` in their 1:1 chat, through the service URL
    /// that serves them; the HTTP status.
    pub async fn teams_say_in_region(&self, name: &str, text: &str) -> u16 {
        let person = teams_person(name);
        let mut activity = teams_sender::personal_message(
            &self.bf().service_url_of(&person.id),
            &self.teams_chat_of(name),
            &person,
            text,
            self.clock.now(),
        );
        activity["id"] = Value::String(next_activity_id());
        self.teams_post(&activity).await.0
    }

    /// Texts the bot posted in `name`'s 1:1 chat, in order.
    pub fn teams_dms(&self, name: &str) -> Vec<String> {
        let chat = self.teams_chat_of(name);
        self.bf()
            .activities()
            .into_iter()
            .filter(|a| a.conversation_id == chat)
            .map(|a| a.activity["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The approval cards in the Teams approvals channel.
    pub fn teams_cards(&self) -> Vec<SimActivity> {
        self.bf()
            .activities()
            .into_iter()
            .filter(|a| a.conversation_id == APPROVALS_CONVERSATION && a.reply_to.is_none())
            .collect()
    }

    pub fn teams_card(&self) -> SimActivity {
        self.teams_cards().pop().expect("a Teams approval card")
    }

    /// The thread under the newest Teams card, as texts.
    pub fn teams_thread(&self) -> Vec<String> {
        self.bf()
            .thread(APPROVALS_CONVERSATION, &self.teams_card().id)
            .into_iter()
            .map(|a| a.activity["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// `name` clicks the `verb` button of the newest card; status and answer.
    pub async fn teams_click(&self, name: &str, verb: &str, data: Value) -> (u16, Value) {
        let card = self.teams_card();
        let mut activity = teams_sender::card_action(
            &self.bf().service_url(),
            APPROVALS_CONVERSATION,
            &card.id,
            &teams_person(name),
            verb,
            data,
            self.clock.now(),
        );
        activity["id"] = Value::String(format!("f:{}", next_activity_id()));
        self.teams_post(&activity).await
    }

    /// The requests of a Teams person (by their `29:` id), oldest first.
    pub async fn teams_requests_of(&self, name: &str) -> Vec<Request> {
        self.requests_of(&teams_person(name).id).await
    }

    pub async fn teams_request_of(&self, name: &str) -> Request {
        self.teams_requests_of(name)
            .await
            .pop()
            .expect("a Teams request")
    }
}
