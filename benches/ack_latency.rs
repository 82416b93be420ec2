//! Acknowledgement latency of `POST /slack/commands` under load, or of
//! the same commands over Slack's Socket Mode.
//!
//! Starts the real application (router, engine, scheduler, SQLite in a
//! temporary folder) against the loopback simulators, with JumpCloud
//! answering after a fixed delay, then fires signed `/tempadmin 20m …`
//! commands from many users at a fixed rate (open loop: latency is measured
//! from each request's scheduled send time, so a stall counts against us).
//! Prints p50/p90/p99/max latency and the throughput achieved.
//!
//! With `socket`, the bot runs in Socket Mode and the same commands go as
//! `slash_commands` envelopes from the simulated Socket Mode side over the
//! one WebSocket the bot holds; the latency is from each envelope's
//! scheduled send time to its acknowledgement (with the answer in it)
//! arriving back at the simulator.
//!
//! `cargo bench --bench ack_latency -- [RATE_PER_SEC] [SECONDS] [JUMPCLOUD_DELAY_MS] [socket]`

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use secrecy::SecretString;
use tempadmin::app::App;
use tempadmin::config::SlackMode;
use tempadmin::domain::{GrantDuration, Policy};
use tempadmin::engine::clock::SystemClock;
use tempadmin::sim::jumpcloud::FakeJumpCloud;
use tempadmin::sim::slack::FakeSlack;
use tempadmin::sim::slack_socket::{self, FakeSocketMode};
use tempadmin::sim::{self, slack_sender};
use tempadmin::slack::signature::SigningSecret;

use support::{add_person, arg, flag, percentile};

const USERS: usize = 100;

/// What the load generator saw: each request's latency, the failed and
/// the "very busy" count, and when it started.
type Fired = (Vec<Duration>, usize, usize, Instant);

/// Each sent command's (latency, answered, answered "very busy").
type Sent = tokio::task::JoinHandle<(Duration, bool, bool)>;

/// What the load generator saw, once every command is answered.
async fn tally(tasks: Vec<Sent>, start: Instant) -> anyhow::Result<Fired> {
    let mut latencies = Vec::with_capacity(tasks.len());
    let (mut failures, mut shed) = (0, 0);
    for task in tasks {
        let (latency, ok, busy) = task.await?;
        failures += usize::from(!ok);
        shed += usize::from(busy);
        latencies.push(latency);
    }
    Ok((latencies, failures, shed, start))
}

/// Fires `total` signed commands at `rate` per second (open loop).
async fn fire(
    url: String,
    respond: String,
    secret: Arc<SigningSecret>,
    rate: u64,
    total: u64,
) -> anyhow::Result<Fired> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let scheduled = start + interval * n as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let (http, url, secret) = (http.clone(), url.clone(), secret.clone());
        let respond = respond.clone();
        tasks.push(tokio::spawn(async move {
            let user = format!("U{:08}", n as usize % USERS);
            let body = slack_sender::command_body(&user, "20m install printer driver", &respond);
            let response =
                slack_sender::post_signed(&http, &url, &secret, Utc::now().timestamp(), body).await;
            let (ok, busy) = match response {
                Ok(r) if r.status().is_success() => {
                    let text = r.text().await.unwrap_or_default();
                    (true, text.contains("very busy"))
                }
                _ => (false, false),
            };
            (scheduled.elapsed(), ok, busy)
        }));
    }
    tally(tasks, start).await
}

/// Sends `total` `slash_commands` envelopes at `rate` per second (open
/// loop) and awaits each acknowledgement.
async fn fire_socket(
    socket: FakeSocketMode,
    respond: String,
    rate: u64,
    total: u64,
) -> anyhow::Result<Fired> {
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let scheduled = start + interval * n as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let user = format!("U{:08}", n as usize % USERS);
        let payload = slack_sender::command_payload(&user, "20m install printer driver", &respond);
        let delivery = socket.send_slash_command(payload);
        let socket = socket.clone();
        tasks.push(tokio::spawn(async move {
            match socket.ack(&delivery, Duration::from_secs(30)).await {
                Some(ack) => {
                    let text = ack
                        .payload
                        .as_ref()
                        .and_then(|p| p["text"].as_str())
                        .unwrap_or_default();
                    let ok = ack.payload.is_some();
                    (ack.received_at - scheduled, ok, text.contains("very busy"))
                }
                None => (scheduled.elapsed(), false, false),
            }
        }));
    }
    tally(tasks, start).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rate = arg(0, 200);
    let seconds = arg(1, 20);
    let jc_delay = Duration::from_millis(arg(2, 50));
    let socket_mode = flag("socket");
    // Slack sends from its own machines: the load generator (and, in
    // Socket Mode, the simulated Socket Mode side whose tasks read the
    // acknowledgements) runs on a runtime and thread of its own, so that a
    // send is not delayed behind the bot's background jobs and the other
    // simulators in this process's runtime (which would count against the
    // bot, since latency is measured from the scheduled send time).
    let generator = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;

    let slack = FakeSlack::start("xoxb-bench").await;
    let jc = FakeJumpCloud::start("bench-key").await;
    jc.set_latency(jc_delay);
    for i in 0..USERS {
        let ids = (
            format!("U{i:08}"),
            format!("jcuser{i:018}"),
            format!("jcsys{i:019}"),
        );
        add_person(
            &slack,
            &jc,
            (&ids.0, &ids.1, &ids.2),
            &format!("user{i}"),
            "windows",
        );
    }
    let dir = tempfile::tempdir()?;
    let d = |t: &str| GrantDuration::parse(t).unwrap();
    let policy = Policy {
        default_duration: d("30m"),
        min_duration: d("5m"),
        max_duration: d("4h"),
        require_reason: false,
        max_reason_length: 500,
        // Each simulated user asks many times: this measures the engine,
        // not the per-person limits.
        max_open_requests: usize::MAX,
        max_requests_per_hour: usize::MAX,
        approval_timeout: d("30m"),
        reminders: vec![],
        approval_reminder: tempadmin::domain::ApprovalReminder::Halfway,
    };
    let database_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let socket = if socket_mode {
        let slack = slack.clone();
        let started =
            generator.spawn(async move { slack.enable_socket_mode(slack_socket::APP_TOKEN).await });
        Some(started.await?)
    } else {
        None
    };
    let mut config = sim::config(
        &slack,
        &jc,
        database_url,
        vec!["U0APPROVER".into()],
        policy,
        Duration::from_secs(10),
    );
    if socket_mode {
        if let Some(slack) = config.slack.as_mut() {
            slack.mode = SlackMode::Socket {
                app_token: SecretString::from(slack_socket::APP_TOKEN),
            };
        }
    }
    let app = App::build(&config, Arc::new(SystemClock)).await?;
    let url = format!("http://127.0.0.1:{}/slack/commands", app.port());
    let respond = slack.response_url("bench");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));

    let total = rate * seconds;
    let fired = match &socket {
        Some(socket) => {
            if !socket
                .wait_for_connections(1, Duration::from_secs(10))
                .await
            {
                anyhow::bail!("the bot did not open its Socket Mode connection");
            }
            println!("sending {total} /tempadmin slash_commands envelopes over Socket Mode at {rate}/s for {seconds}s (JumpCloud answers after {jc_delay:?})");
            generator
                .spawn(fire_socket(socket.clone(), respond, rate, total))
                .await?
        }
        None => {
            let secret = Arc::new(SigningSecret::new(SecretString::from(sim::SIGNING_SECRET)));
            println!("firing {total} signed /tempadmin commands at {rate}/s for {seconds}s (JumpCloud answers after {jc_delay:?})");
            generator
                .spawn(fire(url, respond, secret, rate, total))
                .await?
        }
    };
    let (latencies, failures, shed, start) = fired?;
    let mut latencies = latencies;
    let elapsed = start.elapsed();
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "requests: {}  failed: {failures}  answered 'very busy': {shed}  wall time: {:.2}s  throughput: {:.1}/s",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "ack latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap())
    );
    println!(
        "JumpCloud calls made in the background meanwhile: {}",
        jc.calls().len()
    );
    if let Some(socket) = &socket {
        let retries = socket.sent().iter().filter(|s| s.retry_attempt > 0).count();
        println!(
            "Socket Mode: {} envelopes sent again after 3 s without an acknowledgement; {} protocol problems",
            retries,
            socket.problems().len()
        );
    }
    let _ = stop.send(());
    server.await??;
    generator.shutdown_background();
    Ok(())
}
