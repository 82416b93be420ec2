//! High availability, from outside: three real `tempadmin serve` processes
//! on one PostgreSQL database, the Slack and JumpCloud simulators, 200
//! short grants asked for and approved through the replicas in turn, and
//! the replica holding the most revocations in flight killed with SIGKILL. Every
//! grant must be taken back exactly once in JumpCloud, none later than the
//! lease (plus the time the work itself takes), and every approval thread
//! must tell the whole story.
//!
//! Needs PostgreSQL at `postgres://postgres@127.0.0.1:5432/postgres` (or
//! `TEMPADMIN_TEST_POSTGRES`); `.ci/run` starts it. Without one the test
//! is skipped with one line saying so, or fails under
//! `TEMPADMIN_REQUIRE_POSTGRES=1` (see `common/postgres.rs`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use tempadmin::sim::jumpcloud::{FakeJumpCloud, RecordedCall, SimSystem, SimUser};
use tempadmin::sim::replicas::{self, PostgresDatabase, Replicas};
use tempadmin::sim::slack::FakeSlack;
use tempadmin::sim::{slack_sender, APPROVALS_CHANNEL, SIGNING_SECRET};
use tempadmin::slack::signature::SigningSecret;

#[path = "common/postgres.rs"]
mod postgres_server;

const PEOPLE: usize = 200;
const REPLICAS: usize = 3;
const APPROVER: &str = "U0APPROVER";
/// `[scheduler] lease` of the replicas.
const LEASE: Duration = Duration::from_secs(3);
/// Beyond the lease, what a taken-over revocation may need on a loaded
/// two-core machine (claim, read the binding, write it back).
const WORK: Duration = Duration::from_secs(2);
/// Only reached when something is broken.
const GUARD: Duration = Duration::from_secs(120);

fn slack_id(n: usize) -> String {
    format!("U0P{n:04}")
}

fn jc_user(n: usize) -> String {
    format!("jcp{n:021}")
}

fn system_id(n: usize) -> String {
    format!("sys{n:021}")
}

/// The first half asks for 20 s, the second for 40 s: when the second
/// half's revocations begin, the first half's are long done.
fn duration_of(n: usize) -> &'static str {
    if n < PEOPLE / 2 {
        "20s"
    } else {
        "40s"
    }
}

fn config(slack: &FakeSlack, jc: &FakeJumpCloud) -> String {
    let more = format!(
        "[policy]\nmin_duration = \"10s\"\ndefault_duration = \"20s\"\nreminders = [\"10s\"]\n\n\
         [scheduler]\nlease = \"{}s\"\n",
        LEASE.as_secs()
    );
    replicas::config_file(slack, jc, &[APPROVER], &more)
}

/// The JumpCloud write that took `system`'s rights back or gave them.
fn binding_writes<'a>(calls: &'a [RecordedCall], op: &str) -> Vec<&'a RecordedCall> {
    calls
        .iter()
        .filter(|c| {
            c.method == "POST"
                && c.path.ends_with("/associations")
                && c.body
                    .as_ref()
                    .is_some_and(|b| b["op"].as_str() == Some(op))
        })
        .collect()
}

fn system_of(call: &RecordedCall) -> String {
    call.path
        .trim_start_matches("/api/v2/systems/")
        .trim_end_matches("/associations")
        .to_string()
}

struct Row {
    id: String,
    requester: String,
    state: String,
    expires_at: Option<i64>,
}

async fn requests(pool: &sqlx::PgPool) -> Vec<Row> {
    let rows: Vec<(String, String, String, Option<i64>)> =
        sqlx::query_as(
            "SELECT id, requester, state, (data->'stage'->'grant'->>'expires_at')::bigint FROM requests",
        )
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(id, requester, state, expires_at)| Row {
            id,
            requester,
            state,
            expires_at,
        })
        .collect()
}

/// Waits until `done` holds for the requests, or fails with `what`.
async fn wait_for_requests(pool: &sqlx::PgPool, what: &str, done: impl Fn(&[Row]) -> bool) {
    let started = Instant::now();
    loop {
        let rows = requests(pool).await;
        if done(&rows) {
            return;
        }
        if started.elapsed() > GUARD {
            let mut states: HashMap<&str, usize> = HashMap::new();
            for r in &rows {
                *states.entry(r.state.as_str()).or_default() += 1;
            }
            panic!("{what}: states now {states:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn all_in(state: &'static str) -> impl Fn(&[Row]) -> bool {
    move |rows| rows.len() == PEOPLE && rows.iter().all(|r| r.state == state)
}

async fn post(http: &reqwest::Client, url: String, secret: &SigningSecret, body: String) {
    let status = slack_sender::post_signed(http, &url, secret, Utc::now().timestamp(), body)
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "{url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_take_every_grant_back_once_and_on_time_when_one_is_killed() {
    let Some(admin_url) = postgres_server::server() else {
        return;
    };
    let database = PostgresDatabase::create(&admin_url, "tempadmin_replicas")
        .await
        .unwrap();
    let slack = FakeSlack::start("xoxb-replicas").await;
    let jc = FakeJumpCloud::start("jc-replicas-key").await;
    slack.add_user(APPROVER, "approver", Some("approver@example.com"));
    for n in 0..PEOPLE {
        let email = format!("p{n}@example.com");
        slack.add_user(&slack_id(n), &format!("p{n}"), Some(&email));
        jc.add_user(SimUser {
            id: jc_user(n),
            email,
            username: format!("p{n}"),
            sudo: false,
            suspended: false,
        });
        jc.add_system(SimSystem {
            id: system_id(n),
            hostname: format!("pc-{n}"),
            display_name: format!("pc-{n}"),
            os_family: "windows".into(),
            active: true,
        });
        jc.bind_via_group(&jc_user(n), &system_id(n), "grp0000000000000000000001");
    }
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, config(&slack, &jc)).unwrap();
    let env = replicas::environment(&database.url, &slack, &jc);
    let mut replicas = Replicas::start(
        env!("CARGO_BIN_EXE_tempadmin").as_ref(),
        &config_path,
        &env,
        REPLICAS,
        dir.path(),
    )
    .await
    .unwrap();
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let http = reqwest::Client::new();
    let secret = SigningSecret::new(SecretString::from(SIGNING_SECRET));

    // Everyone asks, through the replicas in turn.
    for n in 0..PEOPLE {
        let body = slack_sender::command_body(
            &slack_id(n),
            &format!("{} replica test", duration_of(n)),
            &slack.response_url(&format!("ask-{n}")),
        );
        let url = format!("{}/slack/commands", replicas.base(n % REPLICAS));
        post(&http, url, &secret, body).await;
    }
    wait_for_requests(
        &pool,
        "every request reached the approvers",
        all_in("pending_approval"),
    )
    .await;

    // The approver approves each one on another replica than it was asked on.
    let ids: HashMap<String, String> = requests(&pool)
        .await
        .into_iter()
        .map(|r| (r.requester, r.id))
        .collect();
    for n in 0..PEOPLE {
        let id = ids
            .iter()
            .find(|(requester, _)| requester.ends_with(&slack_id(n)))
            .map(|(_, id)| id.clone())
            .unwrap();
        let body = slack_sender::click_body(
            APPROVER,
            "tempadmin_approve",
            &id,
            "block",
            &slack.response_url(&format!("click-{n}")),
        );
        let url = format!("{}/slack/interactions", replicas.base((n + 1) % REPLICAS));
        post(&http, url, &secret, body).await;
    }
    wait_for_requests(&pool, "every grant became active", all_in("active")).await;

    // JumpCloud slows down, so each revocation is in flight for a while.
    // Once the second half's revocations are under way, the replica that
    // holds the most of them dies on the spot.
    jc.set_latency(Duration::from_millis(250));
    let started = Instant::now();
    let victim = loop {
        let held: Vec<(String, i64)> = sqlx::query_as(
            "SELECT locked_by, COUNT(*) FROM jobs \
             WHERE kind = 'revoke' AND done_at IS NULL AND locked_by IS NOT NULL \
             GROUP BY locked_by ORDER BY COUNT(*) DESC",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let busiest = held
            .first()
            .filter(|(_, n)| *n >= 5)
            .and_then(|(owner, _)| {
                // `host/pid/nonce`
                let pid: u32 = owner.split('/').nth(1)?.parse().ok()?;
                (0..REPLICAS).find(|n| replicas.pid(*n) == pid)
            });
        if let Some(n) = busiest {
            break n;
        }
        assert!(
            started.elapsed() < GUARD,
            "revocations never began: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    replicas.kill(victim).unwrap();

    wait_for_requests(&pool, "every grant ended", all_in("ended")).await;
    let started = Instant::now();
    loop {
        let (undelivered,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if undelivered == 0 {
            break;
        }
        assert!(
            started.elapsed() < GUARD,
            "{undelivered} messages never went out"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Exactly once in JumpCloud, and on time. A write sent again because
    // its first sender died during JumpCloud's answer took effect once.
    let calls = jc.applied_writes();
    let expiry: HashMap<String, DateTime<Utc>> = requests(&pool)
        .await
        .into_iter()
        .map(|r| {
            let n: usize = r.requester.rsplit("U0P").next().unwrap().parse().unwrap();
            let at = DateTime::from_timestamp_millis(r.expires_at.unwrap()).unwrap();
            (system_id(n), at)
        })
        .collect();
    let mut removed: HashMap<String, Vec<DateTime<Utc>>> = HashMap::new();
    for call in binding_writes(&calls, "remove") {
        removed.entry(system_of(call)).or_default().push(call.at);
    }
    let mut added: HashMap<String, usize> = HashMap::new();
    for call in binding_writes(&calls, "add") {
        *added.entry(system_of(call)).or_default() += 1;
    }
    let mut worst = chrono::TimeDelta::zero();
    for n in 0..PEOPLE {
        let system = system_id(n);
        assert!(
            !jc.is_admin(&jc_user(n), &system),
            "{system} is still admin"
        );
        assert_eq!(added.get(&system), Some(&1), "{system} elevated once");
        let at = removed.get(&system).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(at.len(), 1, "{system} revoked once: {at:?}");
        let late = at[0] - expiry[&system];
        worst = worst.max(late);
        assert!(
            late.to_std().unwrap_or_default() <= LEASE + WORK,
            "{system} revoked {late} after its expiry"
        );
    }
    println!("latest revocation: {worst} after its expiry");
    let (taken_over,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE kind = 'revoke' AND attempts > 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    println!("revocations taken over from the killed replica: {taken_over}");
    assert!(
        taken_over > 0,
        "the kill hit revocations in flight, which another replica finished"
    );

    // Every approval thread tells the story, in order.
    let messages = slack.messages();
    for (requester, id) in &ids {
        let card = messages
            .iter()
            .find(|m| {
                m.channel == APPROVALS_CHANNEL
                    && m.thread_ts.is_none()
                    && m.blocks.to_string().contains(id.as_str())
            })
            .unwrap_or_else(|| panic!("the card of {requester}"));
        let thread: Vec<String> = slack
            .thread(APPROVALS_CHANNEL, &card.ts)
            .into_iter()
            .map(|m| m.text)
            .collect();
        let mut expected = ["Approved by", "is admin on", "left", "Time is up"].into_iter();
        let mut next = expected.next();
        for text in &thread {
            if next.is_some_and(|e| text.contains(e)) {
                next = expected.next();
            }
        }
        assert_eq!(next, None, "{requester}'s thread: {thread:?}");
        assert!(
            card.blocks.to_string().contains("Ended at"),
            "{requester}'s card: {}",
            card.blocks
        );
    }

    let survivors = replicas.stop().unwrap();
    for (n, status) in survivors.iter().enumerate().filter(|(n, _)| *n != victim) {
        assert!(
            status.success(),
            "replica {n}: {status}\n{}",
            replicas.log(n)
        );
    }
    drop(replicas);
    pool.close().await;
    database.drop_it().await.unwrap();
}
