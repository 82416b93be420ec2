//! `tempadmin demo`: the real server, engine, scheduler and SQLite (in a
//! temporary folder) against the loopback simulators of Slack and JumpCloud.
//! It plays Ada asking for admin and Grace approving, prints the thread as it
//! happens, and checks at the end that JumpCloud holds Ada's previous rights.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::Utc;
use secrecy::SecretString;

use crate::app::App;
use crate::domain::{GrantDuration, Policy};
use crate::engine::clock::SystemClock;
use crate::sim::jumpcloud::{FakeJumpCloud, SimSystem, SimUser};
use crate::sim::slack::{FakeSlack, SimEvent};
use crate::sim::{self, slack_sender};
use crate::slack::actions;
use crate::slack::signature::SigningSecret;

const ADA: &str = "U0ADA";
const GRACE: &str = "U0GRACE";
const JC_ADA: &str = "5f1e0ada0000000000000001";
const LAPTOP: &str = "5f1e0sys0000000000000001";

fn d(text: &str) -> GrantDuration {
    GrantDuration::parse(text).expect("demo durations are valid")
}

/// Runs the demo story; `Ok` when it ends with the rights restored.
pub async fn run() -> anyhow::Result<()> {
    let slack = FakeSlack::start("xoxb-demo").await;
    let jumpcloud = FakeJumpCloud::start("demo-api-key").await;
    slack.add_user(ADA, "ada", Some("ada@example.com"));
    slack.add_user(GRACE, "grace", Some("grace@example.com"));
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
    let policy = Policy {
        default_duration: d("45s"),
        min_duration: d("10s"),
        max_duration: d("1h"),
        require_reason: false,
        max_reason_length: 500,
        max_open_requests: 3,
        max_requests_per_hour: 10,
        approval_timeout: d("5m"),
        reminders: vec![d("30s"), d("15s")],
    };
    let database_url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let config = sim::config(
        &slack,
        &jumpcloud,
        database_url,
        vec![GRACE.into()],
        policy,
        Duration::from_secs(5),
    );
    let app = App::build(&config, Arc::new(SystemClock)).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let engine = app.engine.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));

    let started = std::time::Instant::now();
    let stamp = move || format!("[{:>5.1}s]", started.elapsed().as_secs_f64());
    println!(
        "tempadmin demo: simulated Slack at {} and JumpCloud at {}",
        slack.api_url(),
        jumpcloud.url()
    );
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

    let http = reqwest::Client::new();
    let secret = SigningSecret::new(SecretString::from(sim::SIGNING_SECRET));
    let text = "45s install printer driver";
    println!("Ada types: /tempadmin {text}");
    let body = slack_sender::command_body(ADA, text, &slack.response_url("ada-command"));
    let answer: serde_json::Value = slack_sender::post_signed(
        &http,
        &format!("{base}/slack/commands"),
        &secret,
        Utc::now().timestamp(),
        body,
    )
    .await?
    .error_for_status()?
    .json()
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
    let request_id = engine
        .store()
        .open_requests_of(&crate::domain::ChatUserId::slack(ADA))
        .await?
        .first()
        .map(|r| r.id.to_string())
        .context("no open request for Ada")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("Grace clicks Approve on request {request_id}.");
    let click = slack_sender::click_body(
        GRACE,
        actions::APPROVE,
        &request_id,
        "decide",
        &slack.response_url("grace-click"),
    );
    slack_sender::post_signed(
        &http,
        &format!("{base}/slack/interactions"),
        &secret,
        Utc::now().timestamp(),
        click,
    )
    .await?
    .error_for_status()?;

    let ended = wait_for(Duration::from_secs(100), || {
        slack
            .thread(sim::APPROVALS_CHANNEL, &card.ts)
            .into_iter()
            .find(|m| m.text.contains("restored"))
    })
    .await;
    // Let the last direct message and card update go out before stopping.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = stop.send(());
    server.await.context("the server task failed")??;
    printer.abort();

    if ended.is_none() {
        bail!("the grant did not end within the demo's time limit");
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
        writes.join(", ")
    );
    if jumpcloud.is_admin(JC_ADA, LAPTOP) || jumpcloud.direct_binding(JC_ADA, LAPTOP).is_some() {
        bail!("Ada is still admin on the MacBook: the demo failed");
    }
    println!("Ada is no longer admin; her MacBook is bound only through her group, as before. Demo complete.");
    Ok(())
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
