//! Revocation lag: how late admin rights are taken back when many grants
//! expire at once, one device's JumpCloud call hangs, and commands may keep
//! arriving.
//!
//! Starts the real application (router, engine, scheduler on the system
//! clock, SQLite in a temporary folder) against the loopback simulators.
//! Writes EXPIRIES active grants straight into the store, all expiring at
//! the same instant a few seconds later, each with its revocation job, and
//! makes the first device's JumpCloud read hang until the client gives up
//! (`jumpcloud.timeout` = HANG_SECS). Optionally fires signed
//! `/tempadmin 20m …` commands at INGRESS_RATE per second from other users
//! from two seconds before the expiry until ten seconds after it, so
//! look-ups, chat messages and acknowledgements compete with the
//! revocations. For every other device it records when JumpCloud received
//! the revocation's first call (reading the binding) and its restoring
//! write, and prints the lag from the expiry: p50, p99 and max.
//!
//! `cargo bench --bench revocation_lag -- [EXPIRIES] [HANG_SECS] [INGRESS_RATE] [JUMPCLOUD_DELAY_MS] [WORKERS]`
//! (defaults: 1000 40 0 50, and the default pool of `[scheduler] workers`)

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use secrecy::SecretString;
use tempadmin::app::App;
use tempadmin::domain::{GrantDuration, Policy};
use tempadmin::engine::clock::SystemClock;
use tempadmin::engine::Workers;
use tempadmin::sim::jumpcloud::{Failure, FakeJumpCloud};
use tempadmin::sim::slack::FakeSlack;
use tempadmin::sim::{self, slack_sender};
use tempadmin::slack::signature::SigningSecret;

use support::{
    add_holder, add_person, arg, holder, percentile, seed_active_grant, summary, system_of,
};

/// People who only send commands (they never hold a grant).
const ASKERS: usize = 100;
/// From the expiry: how long commands keep arriving after it.
const INGRESS_AFTER: Duration = Duration::from_secs(10);
/// Before the expiry: how long commands arrive before it.
const INGRESS_BEFORE: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let expiries = arg(0, 1000) as usize;
    let hang = Duration::from_secs(arg(1, 40));
    let ingress_rate = arg(2, 0);
    let jc_delay = Duration::from_millis(arg(3, 50));
    let workers = Workers::new(arg(4, Workers::default().total as u64) as usize);

    let slack = FakeSlack::start("xoxb-bench").await;
    let jc = FakeJumpCloud::start("bench-key").await;
    jc.set_latency(jc_delay);
    for i in 0..expiries {
        add_holder(&slack, &jc, i);
    }
    for i in 0..ASKERS {
        let ids = (
            format!("U2{i:08}"),
            format!("jcasker{i:017}"),
            format!("sysasker{i:016}"),
        );
        add_person(
            &slack,
            &jc,
            (&ids.0, &ids.1, &ids.2),
            &format!("asker{i}"),
            "darwin",
        );
    }

    let dir = tempfile::tempdir()?;
    let d = |t: &str| GrantDuration::parse(t).unwrap();
    let policy = Policy {
        min_duration: d("10s"),
        reminders: vec![],
        // Each asker asks many times: this measures revocations, not the
        // per-person limits.
        max_open_requests: usize::MAX,
        max_requests_per_hour: usize::MAX,
        ..Policy::default()
    };
    let database_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let mut config = sim::config(
        &slack,
        &jc,
        database_url,
        vec!["U0APPROVER".into()],
        policy,
        Duration::from_secs(10),
    );
    config.jumpcloud.timeout = hang;
    config.workers = workers;
    let app = App::build(&config, Arc::new(SystemClock)).await?;
    let url = format!("http://127.0.0.1:{}/slack/commands", app.port());
    let respond = slack.response_url("bench");

    // The grants, written as the engine would have left them once active.
    let setup = Instant::now();
    let expiry = Utc::now() + TimeDelta::seconds(5) + TimeDelta::milliseconds(expiries as i64);
    let store = app.engine.store().clone();
    for i in 0..expiries {
        seed_active_grant(&*store, i, expiry).await?;
    }
    let (_, _, stuck) = holder(0);
    jc.fail_next(
        "GET",
        &format!("/api/v2/systems/{stuck}/associations"),
        1,
        Failure::Hang,
    );
    let lead = (expiry - Utc::now()).to_std().unwrap_or_default();
    println!(
        "{expiries} grants written in {:.1}s, expiring together in {:.1}s; device {stuck}'s first call hangs {hang:?}; \
         JumpCloud answers after {jc_delay:?}; {} workers ({} kept for revocations); ingress {ingress_rate}/s",
        setup.elapsed().as_secs_f64(),
        lead.as_secs_f64(),
        workers.total,
        workers.reserved_for_revocations,
    );

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));

    // Commands from other people around the expiry.
    let ingress = tokio::spawn({
        let url = url.clone();
        async move {
            let mut outcomes = Vec::new();
            if ingress_rate == 0 {
                return outcomes;
            }
            let secret = Arc::new(SigningSecret::new(SecretString::from(sim::SIGNING_SECRET)));
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(512)
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client");
            tokio::time::sleep(lead.saturating_sub(INGRESS_BEFORE)).await;
            let total = ingress_rate * (INGRESS_BEFORE + INGRESS_AFTER).as_secs();
            let interval = Duration::from_secs_f64(1.0 / ingress_rate as f64);
            let start = Instant::now();
            let mut tasks = Vec::with_capacity(total as usize);
            for n in 0..total {
                let scheduled = start + interval * n as u32;
                tokio::time::sleep_until(scheduled.into()).await;
                let (http, url, secret) = (http.clone(), url.clone(), secret.clone());
                let respond = respond.clone();
                tasks.push(tokio::spawn(async move {
                    let user = format!("U2{:08}", n as usize % ASKERS);
                    let body =
                        slack_sender::command_body(&user, "20m install printer driver", &respond);
                    let response = slack_sender::post_signed(
                        &http,
                        &url,
                        &secret,
                        Utc::now().timestamp(),
                        body,
                    )
                    .await;
                    let ok = matches!(&response, Ok(r) if r.status().is_success());
                    (scheduled.elapsed(), ok)
                }));
            }
            for task in tasks {
                outcomes.push(task.await.expect("ingress task"));
            }
            outcomes
        }
    });

    // Wait until every device but the stuck one got its restoring write.
    let deadline = Instant::now() + lead + Duration::from_secs(120);
    let others = expiries.saturating_sub(1);
    loop {
        let restored = jc
            .writes()
            .iter()
            .filter(|c| c.at >= expiry && system_of(&c.path).is_some_and(|s| s != stuck))
            .count();
        if restored >= others || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let outcomes = ingress.await?;

    let mut first_call: HashMap<String, f64> = HashMap::new();
    let mut restore_call: HashMap<String, f64> = HashMap::new();
    for call in jc.calls() {
        let Some(system) = system_of(&call.path) else {
            continue;
        };
        if system == stuck || call.at < expiry || !system.starts_with("sysholder") {
            continue;
        }
        let lag = (call.at - expiry).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0;
        first_call.entry(system.to_string()).or_insert(lag);
        if call.method == "POST" {
            restore_call.entry(system.to_string()).or_insert(lag);
        }
    }
    summary(
        "revocation's first JumpCloud call",
        first_call.into_values().collect(),
    );
    summary(
        "restoring write (after reading the binding)",
        restore_call.into_values().collect(),
    );
    if !outcomes.is_empty() {
        let failed = outcomes.iter().filter(|(_, ok)| !ok).count();
        let mut acks: Vec<f64> = outcomes
            .iter()
            .map(|(l, _)| l.as_secs_f64() * 1000.0)
            .collect();
        acks.sort_by(f64::total_cmp);
        println!(
            "commands: {}  failed: {failed}  ack ms: p50 {:.1}  p99 {:.1}  max {:.1}",
            acks.len(),
            percentile(&acks, 0.50),
            percentile(&acks, 0.99),
            acks.last().unwrap()
        );
    }
    println!("JumpCloud calls in all: {}", jc.calls().len());
    let _ = stop.send(());
    server.await??;
    Ok(())
}
