//! `tempadmin demo`, `tempadmin demo --socket` (Slack in Socket Mode) and
//! `tempadmin demo --teams`: the real server, engine, scheduler and SQLite
//! (in a temporary folder) against the loopback simulators of JumpCloud and
//! of Slack or the Bot Framework. Ada asks for
//! admin, Grace approves, the conversation is printed as it happens, and at
//! the end the demo checks that JumpCloud holds Ada's previous rights.
//!
//! One story, two chat platforms: the set-up, the running server, the
//! waiting and the final check are shared; only how Ada asks, how Grace
//! clicks and how the chat is watched differ.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::Utc;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::app::App;
use crate::config::SlackMode;
use crate::domain::{ChatUserId, GrantDuration, Platform, Policy};
use crate::engine::clock::SystemClock;
use crate::engine::Engine;
use crate::jumpcloud::GrantMode;
use crate::sim::jumpcloud::{FakeJumpCloud, SimSystem, SimUser};
use crate::sim::slack::{FakeSlack, SimEvent};
use crate::sim::slack_socket::{self, FakeSocketMode};
use crate::sim::teams::{self as bf, FakeBotFramework, APPROVALS_CONVERSATION};
use crate::sim::{self, slack_sender, teams_sender};
use crate::slack::actions;
use crate::slack::signature::SigningSecret;
use crate::teams::render::verbs;

const ADA: &str = "U0ADA";
const GRACE: &str = "U0GRACE";
const JC_ADA: &str = "5f1e0ada0000000000000001";
const LAPTOP: &str = "5f1e0sys0000000000000001";

fn d(text: &str) -> GrantDuration {
    GrantDuration::parse(text).expect("demo durations are valid")
}

/// How Slack reaches the bot in the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlackWay {
    /// Signed HTTP requests to the bot's routes.
    Http,
    /// Socket Mode: envelopes over the connection the bot opens.
    Socket,
}

/// Runs the demo story on `platform` in grant `mode` (Slack reaching the
/// bot `way`); `Ok` when it ends with the rights restored.
pub async fn run(platform: Platform, mode: GrantMode, way: SlackWay) -> anyhow::Result<()> {
    let jumpcloud = FakeJumpCloud::start("demo-api-key").await;
    jumpcloud.add_user(SimUser {
        id: JC_ADA.into(),
        email: "ada@example.com".into(),
        username: "ada".into(),
        sudo: false,
        suspended: false,
    });
    jumpcloud.add_system(SimSystem {
        id: LAPTOP.into(),
        hostname: "ada-macbook".into(),
        display_name: "Ada's MacBook".into(),
        os_family: "darwin".into(),
        active: true,
    });
    jumpcloud.bind_via_group(JC_ADA, LAPTOP, "5f1e0grp0000000000000001");

    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    let database_url = format!("sqlite://{}", dir.path().join("demo.db").display());
    if mode == GrantMode::AccessRequest {
        println!(
            "grant_mode = \"access_request\": JumpCloud's own temporary elevation; its clock ends the rights at the grant's end.\n"
        );
    }
    match platform {
        Platform::Slack => slack_story(&jumpcloud, database_url, mode, way).await?,
        Platform::Teams => teams_story(&jumpcloud, database_url, mode).await?,
    }
    for access in jumpcloud.access_requests() {
        println!(
            "\nJumpCloud access request {}: expiry {}, accessState now {:?} (remark: request {}).",
            access.id,
            access
                .expiry
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            access.state,
            access.remarks
        );
    }

    let writes: Vec<String> = jumpcloud
        .writes()
        .into_iter()
        .filter_map(|c| {
            c.body
                .and_then(|b| b.get("op").and_then(|o| o.as_str()).map(str::to_string))
        })
        .collect();
    println!(
        "\nJumpCloud association changes made by tempadmin: {}",
        if writes.is_empty() {
            "none".to_string()
        } else {
            writes.join(", ")
        }
    );
    if jumpcloud.is_admin(JC_ADA, LAPTOP) || jumpcloud.direct_binding(JC_ADA, LAPTOP).is_some() {
        bail!("Ada is still admin on the MacBook: the demo failed");
    }
    let shown: Vec<_> = jumpcloud
        .command_runs()
        .into_iter()
        .filter(|run| run.targets_its_system() && run.command_name.contains("notice"))
        .collect();
    println!("\nWhat Ada's MacBook showed ({} notices, each a JumpCloud command run with the bot's own text as variables):", shown.len());
    for run in &shown {
        let text = |k: &str| run.env.get(k).map(String::as_str).unwrap_or("");
        println!(
            "  [{} on {}] {}: {}",
            run.command_name,
            run.system_id,
            text("noticeTitle"),
            text("noticeMessage")
        );
    }
    if shown.is_empty() {
        bail!("no notice reached the MacBook: the demo failed");
    }
    println!("Ada is no longer admin; her MacBook is bound only through her group, as before. Demo complete.");
    Ok(())
}

/// Turns on `[device] notices` and installs the device commands into the
/// simulated JumpCloud, as `tempadmin jumpcloud install-commands` would.
async fn with_device_notices(config: &mut crate::config::Config) -> anyhow::Result<()> {
    config.device.notices = true;
    let client = crate::jumpcloud::JumpCloudClient::new(config.jumpcloud.clone())?;
    crate::jumpcloud::commands::install_commands(&client).await?;
    Ok(())
}

/// A grant of `grant` with countdown replies at `reminders` left.
fn policy(grant: &str, reminders: &[&str]) -> Policy {
    Policy {
        default_duration: d(grant),
        min_duration: d("10s"),
        max_duration: d("1h"),
        require_reason: false,
        max_reason_length: 500,
        max_open_requests: 3,
        max_requests_per_hour: 10,
        approval_timeout: d("5m"),
        reminders: reminders.iter().map(|r| d(r)).collect(),
        approval_reminder: crate::domain::ApprovalReminder::Halfway,
    }
}

/// The server, engine and scheduler, running on the real clock.
struct Running {
    base: String,
    engine: Arc<Engine>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn start(config: &crate::config::Config) -> anyhow::Result<Self> {
        let app = App::build(config, Arc::new(SystemClock)).await?;
        let base = format!("http://127.0.0.1:{}", app.port());
        let engine = app.engine.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run(async {
            let _ = stopped.await;
        }));
        Ok(Self {
            base,
            engine,
            stop,
            server,
        })
    }

    /// The id of `user`'s open request, once it exists.
    async fn request_of(&self, user: &ChatUserId) -> anyhow::Result<String> {
        self.engine
            .store()
            .open_requests_of(user)
            .await?
            .first()
            .map(|r| r.id.to_string())
            .context("no open request for Ada")
    }

    /// Stops once the last messages had time to go out.
    async fn stop(self) -> anyhow::Result<()> {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let _ = self.stop.send(());
        self.server.await.context("the server task failed")?
    }
}

/// `[  1.2s]`, the time since the story began.
fn stamper() -> impl Fn() -> String + Send + 'static {
    let started = Instant::now();
    move || format!("[{:>5.1}s]", started.elapsed().as_secs_f64())
}

/// Ada types a slash command for 45 seconds, Grace clicks Approve; over
/// signed HTTP requests, or over Socket Mode (where Slack also asks for a
/// fresh connection halfway).
async fn slack_story(
    jumpcloud: &FakeJumpCloud,
    database_url: String,
    mode: GrantMode,
    way: SlackWay,
) -> anyhow::Result<()> {
    let slack = FakeSlack::start("xoxb-demo").await;
    let socket = match way {
        SlackWay::Http => None,
        SlackWay::Socket => Some(slack.enable_socket_mode(slack_socket::APP_TOKEN).await),
    };
    slack.add_user(ADA, "ada", Some("ada@example.com"));
    slack.add_user(GRACE, "grace", Some("grace@example.com"));
    let mut config = sim::config(
        &slack,
        jumpcloud,
        database_url,
        vec![GRACE.into()],
        policy("45s", &["30s", "15s"]),
        Duration::from_secs(5),
    );
    config.grant_mode = mode;
    if socket.is_some() {
        if let Some(slack) = config.slack.as_mut() {
            slack.mode = SlackMode::Socket {
                app_token: SecretString::from(slack_socket::APP_TOKEN),
            };
        }
    }
    with_device_notices(&mut config).await?;
    let running = Running::start(&config).await?;
    let base = running.base.clone();
    let stamp = stamper();
    println!(
        "tempadmin demo: simulated Slack at {} and JumpCloud at {}",
        slack.api_url(),
        jumpcloud.url()
    );
    if let Some(socket) = &socket {
        if !socket
            .wait_for_connections(1, Duration::from_secs(10))
            .await
        {
            bail!("tempadmin never opened its Socket Mode connection");
        }
        println!(
            "Socket Mode: tempadmin called apps.connections.open with its app-level token and holds a WebSocket to Slack; Slack posts nothing to it over HTTP."
        );
    }
    println!("Ada (U0ADA) has a MacBook bound through a user group, without admin rights.");
    println!(
        "Grace (U0GRACE) is the approver. The approvals channel is {}.\n",
        sim::APPROVALS_CHANNEL
    );

    let mut feed = slack.subscribe();
    let ada_dm = slack.dm_channel(ADA);
    let printer = tokio::spawn(async move {
        while let Ok(event) = feed.recv().await {
            match event {
                SimEvent::Posted(m) if m.thread_ts.is_some() => {
                    println!("{} #approvals thread ↳ {}", stamp(), plain(&m.text))
                }
                SimEvent::Posted(m) if m.channel == ada_dm => {
                    println!("{} DM to Ada: {}", stamp(), plain(&m.text))
                }
                SimEvent::Posted(m) => println!("{} #approvals: {}", stamp(), plain(&m.text)),
                SimEvent::Updated(m) => {
                    println!(
                        "{} #approvals (message updated): {}",
                        stamp(),
                        plain(&m.text)
                    )
                }
                SimEvent::Responded(r) => {
                    let text = r
                        .body
                        .get("text")
                        .and_then(|t| t.as_str())
                        .unwrap_or_default();
                    println!("{} only Ada sees: {}", stamp(), plain(text));
                }
            }
        }
    });

    let slack_side = SlackSide {
        http: reqwest::Client::new(),
        base: base.clone(),
        secret: SigningSecret::new(SecretString::from(sim::SIGNING_SECRET)),
        socket: socket.clone(),
    };
    let text = "45s install printer driver";
    println!("Ada types: /tempadmin {text}");
    let answer = slack_side
        .command(ADA, text, &slack.response_url("ada-command"))
        .await?;
    println!(
        "tempadmin answers Ada privately: {}",
        answer["text"].as_str().unwrap_or_default()
    );

    let card = wait_for(Duration::from_secs(20), || {
        slack
            .messages()
            .into_iter()
            .find(|m| m.channel == sim::APPROVALS_CHANNEL && m.thread_ts.is_none())
    })
    .await
    .context("the approval request never reached the approvals channel")?;
    let request_id = running.request_of(&ChatUserId::slack(ADA)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("Grace clicks Approve on request {request_id}.");
    slack_side
        .click(
            GRACE,
            actions::APPROVE,
            &request_id,
            &slack.response_url("grace-click"),
        )
        .await?;
    if let Some(socket) = &socket {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let old = socket.connections().first().copied().unwrap_or_default();
        println!(
            "Slack tells tempadmin's connection to go (disconnect: refresh_requested), as it does every few hours."
        );
        socket.disconnect(old, "refresh_requested", Duration::from_secs(10));
        if !socket
            .wait_for_connections(1, Duration::from_secs(10))
            .await
        {
            bail!("tempadmin did not reconnect after Slack's refresh");
        }
        let let_go = wait_for(Duration::from_secs(10), || {
            socket
                .lives()
                .into_iter()
                .find(|life| life.connection == old && life.closed.is_some())
        })
        .await;
        if let_go.is_none() {
            bail!("tempadmin kept the old connection after Slack's refresh");
        }
        println!(
            "tempadmin opened a new connection first, then let the old one go ({} connections so far).",
            socket.connections_opened()
        );
    }

    let ended = wait_for(Duration::from_secs(100), || {
        slack
            .thread(sim::APPROVALS_CHANNEL, &card.ts)
            .into_iter()
            .find(|m| m.text.contains("restored"))
    })
    .await;
    running.stop().await?;
    printer.abort();
    if ended.is_none() {
        bail!("the grant did not end within the demo's time limit");
    }
    Ok(())
}

/// How the demo's people reach the bot through Slack.
struct SlackSide {
    http: reqwest::Client,
    base: String,
    secret: SigningSecret,
    /// Socket Mode's side, when the demo runs over it.
    socket: Option<FakeSocketMode>,
}

impl SlackSide {
    /// A slash command; the private answer.
    async fn command(&self, user: &str, text: &str, response_url: &str) -> anyhow::Result<Value> {
        let Some(socket) = &self.socket else {
            let body = slack_sender::command_body(user, text, response_url);
            return Ok(slack_sender::post_signed(
                &self.http,
                &format!("{}/slack/commands", self.base),
                &self.secret,
                Utc::now().timestamp(),
                body,
            )
            .await?
            .error_for_status()?
            .json()
            .await?);
        };
        let delivery =
            socket.send_slash_command(slack_sender::command_payload(user, text, response_url));
        let ack = socket
            .ack(&delivery, slack_socket::ACK_TIMEOUT)
            .await
            .context("the command was not acknowledged within 3 seconds")?;
        println!(
            "(Socket Mode: the envelope was acknowledged in {:.1} ms, with the answer in the acknowledgement.)",
            ack.latency.as_secs_f64() * 1000.0
        );
        ack.payload
            .context("the command's acknowledgement carried no answer")
    }

    /// A click on a button in the approvals channel.
    async fn click(
        &self,
        user: &str,
        action_id: &str,
        request_id: &str,
        response_url: &str,
    ) -> anyhow::Result<()> {
        let Some(socket) = &self.socket else {
            let body =
                slack_sender::click_body(user, action_id, request_id, "decide", response_url);
            slack_sender::post_signed(
                &self.http,
                &format!("{}/slack/interactions", self.base),
                &self.secret,
                Utc::now().timestamp(),
                body,
            )
            .await?
            .error_for_status()?;
            return Ok(());
        };
        let delivery = socket.send_interactive(slack_sender::click_payload(
            user,
            action_id,
            request_id,
            "decide",
            response_url,
        ));
        socket
            .ack(&delivery, slack_socket::ACK_TIMEOUT)
            .await
            .context("the click was not acknowledged within 3 seconds")?;
        Ok(())
    }
}

/// Ada writes to the bot in her personal chat for 20 seconds, Grace clicks
/// Approve on the card in the approvals channel.
async fn teams_story(
    jumpcloud: &FakeJumpCloud,
    database_url: String,
    mode: GrantMode,
) -> anyhow::Result<()> {
    let teams = FakeBotFramework::start().await;
    let person = |id: &str, name: &str, email: &str| bf::SimUser {
        id: id.into(),
        name: name.into(),
        aad_object_id: format!("aad-{id}"),
        email: Some(email.into()),
        user_principal_name: email.into(),
        tenant_id: bf::TENANT_ID.into(),
    };
    let ada = person("29:ada", "Ada Lovelace", "ada@example.com");
    let grace = person("29:grace", "Grace Hopper", "grace@example.com");
    teams.add_user(ada.clone());
    teams.add_user(grace.clone());
    let mut config = sim::teams_config(
        &teams,
        jumpcloud,
        database_url,
        // By Entra ID object id, as INSTALL recommends.
        vec![grace.aad_object_id.clone()],
        policy("20s", &["10s", "5s"]),
        Duration::from_secs(5),
    );
    config.grant_mode = mode;
    with_device_notices(&mut config).await?;
    let running = Running::start(&config).await?;
    let messages = format!("{}/teams/messages", running.base);
    let service_url = teams.service_url();
    println!(
        "tempadmin demo --teams: simulated Bot Framework at {service_url} and JumpCloud at {}",
        jumpcloud.url()
    );
    println!("Ada Lovelace has a MacBook bound through a user group, without admin rights.");
    println!(
        "Grace Hopper (grace@example.com) is the approver. The approvals channel is {APPROVALS_CONVERSATION}.\n"
    );

    let ada_chat = FakeBotFramework::personal_conversation_id(&ada.id);
    let printer = tokio::spawn(watch_teams(teams.clone(), ada_chat.clone(), stamper()));
    let http = reqwest::Client::new();
    println!("Ada installs tempadmin for herself in Teams.");
    let install = teams_sender::personal_install(&service_url, &ada, Utc::now());
    teams_sender::post_activity(&http, &messages, &teams, &install, Utc::now())
        .await?
        .error_for_status()?;
    let text = "tempadmin 20s install printer driver";
    println!("Ada writes to tempadmin in her chat with it: {text}");
    let message = teams_sender::personal_message(&service_url, &ada_chat, &ada, text, Utc::now());
    teams_sender::post_activity(&http, &messages, &teams, &message, Utc::now())
        .await?
        .error_for_status()?;

    let card = wait_for(Duration::from_secs(20), || {
        teams
            .activities()
            .into_iter()
            .find(|a| a.conversation_id == APPROVALS_CONVERSATION && a.reply_to.is_none())
    })
    .await
    .context("the approval card never reached the approvals channel")?;
    let request_id = running.request_of(&ChatUserId::teams(&ada.id)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("Grace clicks Approve on the card for request {request_id}.");
    let click = teams_sender::card_action(
        &service_url,
        APPROVALS_CONVERSATION,
        &card.id,
        &grace,
        verbs::APPROVE,
        json!({ verbs::REQUEST_ID: request_id }),
        Utc::now(),
    );
    let answer: Value = teams_sender::post_activity(&http, &messages, &teams, &click, Utc::now())
        .await?
        .error_for_status()?
        .json()
        .await?;
    let buttons: Vec<&str> = answer["value"]["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["title"].as_str())
        .collect();
    println!(
        "Teams shows Grace the refreshed card at once, with the buttons: {}",
        buttons.join(", ")
    );

    let ended = wait_for(Duration::from_secs(60), || {
        teams
            .thread(APPROVALS_CONVERSATION, &card.id)
            .into_iter()
            .find(|a| shown(&a.activity).contains("restored"))
    })
    .await;
    running.stop().await?;
    printer.abort();
    if ended.is_none() {
        bail!("the grant did not end within the demo's time limit");
    }
    Ok(())
}

/// Prints every activity the bot posts, and every update of one, as the
/// fake Bot Framework records them.
async fn watch_teams(
    teams: FakeBotFramework,
    ada_chat: String,
    stamp: impl Fn() -> String + Send + 'static,
) {
    let mut versions: HashMap<String, usize> = HashMap::new();
    loop {
        for a in teams.activities() {
            let now = a.history.len();
            let before = versions.insert(a.id.clone(), now);
            if before == Some(now) {
                continue;
            }
            let place = if a.conversation_id == ada_chat {
                "Ada's chat with tempadmin"
            } else if a.reply_to.is_some() {
                "#approvals thread ↳"
            } else {
                "#approvals card"
            };
            let updated = if before.is_some() { " (updated)" } else { "" };
            println!("{} {place}{updated}: {}", stamp(), shown(&a.activity));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a person sees of an activity: its text, or its card's first and
/// last lines (what is asked, and where it stands).
fn shown(activity: &Value) -> String {
    let text = match activity["text"].as_str() {
        Some(text) => text.to_owned(),
        None => {
            let body = activity["attachments"][0]["content"]["body"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let lines: Vec<&str> = [body.first(), body.last()]
                .into_iter()
                .flatten()
                .filter_map(|b| b["text"].as_str())
                .collect();
            lines.join(" · ")
        }
    };
    card_dates(&text.replace("**", ""))
}

/// Adaptive Cards' `{{DATE(…)}}` and `{{TIME(…)}}` as a terminal shows
/// them: `2026-12-02` and `11:45 UTC`.
fn card_dates(text: &str) -> String {
    let mut out = text.to_owned();
    for (open, keep) in [("{{DATE(", 0..10), ("{{TIME(", 11..16)] {
        while let Some(start) = out.find(open) {
            let Some(len) = out[start..].find(")}}") else {
                break;
            };
            let inner = &out[start + open.len()..start + len];
            let stamp = inner.split(',').next().unwrap_or_default();
            let mut shown = stamp.get(keep.clone()).unwrap_or(stamp).to_owned();
            if open == "{{TIME(" {
                shown.push_str(" UTC");
            }
            out.replace_range(start..start + len + 3, &shown);
        }
    }
    out
}

/// Slack markup as a terminal should show it: mentions as names, dates as
/// their fallback text.
fn plain(text: &str) -> String {
    let mut out = text
        .replace(&format!("<@{ADA}>"), "@ada")
        .replace(&format!("<@{GRACE}>"), "@grace");
    while let Some(start) = out.find("<!date^") {
        let Some(len) = out[start..].find('>') else {
            break;
        };
        let token = &out[start..start + len];
        let fallback = token.rsplit('|').next().unwrap_or_default().to_string();
        out.replace_range(start..=start + len, &fallback);
    }
    out
}

/// Polls `probe` until it yields something or `limit` passes.
async fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(found) = probe() {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
