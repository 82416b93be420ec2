//! Revocation lag across replicas: GRANTS active grants on one PostgreSQL
//! database, expiring evenly over SPREAD_SECS, taken back by REPLICAS real
//! `tempadmin serve` processes against the JumpCloud simulator (answering
//! after JUMPCLOUD_DELAY_MS). With `kill`, replica 0 is killed with SIGKILL
//! halfway through the expiries, and the others take its work over after
//! the lease (`[scheduler] lease`, LEASE_SECS).
//!
//! Prints, from each grant's expiry: the lag of the revocation's first
//! JumpCloud call and of its restoring write (p50, p99, max), how many
//! grants were revoked more than once (writes JumpCloud applied) and how
//! many writes were sent again, and each replica's peak resident memory
//! (VmHWM).
//!
//! `cargo bench --bench replica_lag -- [GRANTS] [REPLICAS] [SPREAD_SECS] [JUMPCLOUD_DELAY_MS] [LEASE_SECS] [kill]`
//! (defaults: 10000 3 60 50 15). Needs PostgreSQL at
//! `postgres://postgres@127.0.0.1:5432/postgres` or `TEMPADMIN_TEST_POSTGRES`.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use futures::StreamExt;
use tempadmin::sim::jumpcloud::FakeJumpCloud;
use tempadmin::sim::replicas::{self, PostgresDatabase, Replicas};
use tempadmin::sim::slack::FakeSlack;
use tempadmin::store::PostgresStore;

use support::{add_holder, arg, flag, seed_active_grant, summary, system_of};

/// Time to start the replicas before the first expiry.
const LEAD: Duration = Duration::from_secs(15);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let grants = arg(0, 10_000) as usize;
    let count = arg(1, 3) as usize;
    let spread = Duration::from_secs(arg(2, 60));
    let jc_delay = Duration::from_millis(arg(3, 50));
    let lease = arg(4, 15);
    let kill = flag("kill");
    let admin_url = std::env::var("TEMPADMIN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());

    let database = PostgresDatabase::create(&admin_url, "tempadmin_bench").await?;
    let slack = FakeSlack::start("xoxb-bench").await;
    let jc = FakeJumpCloud::start("bench-key").await;
    for i in 0..grants {
        add_holder(&slack, &jc, i);
    }

    // The grants, written before any replica runs; the first expires
    // LEAD after the writing ends.
    let setup = Instant::now();
    let store = PostgresStore::open(&database.url).await?;
    let placeholder = Utc::now() + TimeDelta::days(1);
    futures::stream::iter(0..grants)
        .map(|i| {
            let store = store.clone();
            async move { seed_active_grant(&store, i, placeholder).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    store.close().await;
    let first = Utc::now() + TimeDelta::from_std(LEAD)?;
    let step = TimeDelta::from_std(spread)? / grants.max(1) as i32;
    // Each holder's expiry, in the order the grants were written.
    let pool = sqlx::PgPool::connect(&database.url).await?;
    let ids: Vec<(String, String)> =
        sqlx::query_as("SELECT id, system_id FROM requests ORDER BY system_id")
            .fetch_all(&pool)
            .await?;
    let mut expiry_of = HashMap::new();
    let mut tx = pool.begin().await?;
    for (n, (id, system)) in ids.iter().enumerate() {
        let at = first + step * n as i32;
        sqlx::query("UPDATE requests SET data = jsonb_set(data, '{stage,grant,expires_at}', to_jsonb($1::bigint)) WHERE id = $2")
            .bind(at.timestamp_millis())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE jobs SET due_at = $1 WHERE request_id = $2 AND kind = 'revoke'")
            .bind(at.timestamp_millis())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        expiry_of.insert(system.clone(), at);
    }
    tx.commit().await?;
    println!(
        "{grants} grants written in {:.1}s, expiring over {spread:?} from {LEAD:?} on; \
         {count} replicas, lease {lease}s, JumpCloud answers after {jc_delay:?}{}",
        setup.elapsed().as_secs_f64(),
        if kill {
            "; replica 0 killed halfway"
        } else {
            ""
        }
    );

    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        replicas::config_file(
            &slack,
            &jc,
            &["U0APPROVER"],
            &format!("[policy]\nmin_duration = \"10s\"\nreminders = []\n\n[scheduler]\nlease = \"{lease}s\"\n"),
        ),
    )?;
    let env = replicas::environment(&database.url, &slack, &jc);
    let binary = env!("CARGO_BIN_EXE_tempadmin");
    let mut running = Replicas::start(binary.as_ref(), &config, &env, count, dir.path()).await?;
    jc.set_latency(jc_delay);
    let until_first = (first - Utc::now()).to_std().unwrap_or_default();
    if until_first.is_zero() {
        println!(
            "warning: the replicas started after the first expiry; its lag includes their start"
        );
    }

    let mut peak_kib = vec![0u64; count];
    let mut killed = false;
    let deadline = Instant::now() + until_first + spread + Duration::from_secs(120);
    let last_expiry = first + TimeDelta::from_std(spread)?;
    loop {
        for (n, peak) in peak_kib.iter_mut().enumerate() {
            if !(killed && n == 0) {
                *peak = (*peak).max(running.peak_memory_kib(n).unwrap_or(0));
            }
        }
        if kill && !killed && Utc::now() >= first + TimeDelta::from_std(spread / 2)? {
            running.kill(0)?;
            killed = true;
            println!("replica 0 killed at {}", Utc::now().format("%H:%M:%S%.3f"));
        }
        let restored = jc
            .applied_writes()
            .iter()
            .filter_map(|c| system_of(&c.path))
            .collect::<std::collections::HashSet<_>>()
            .len();
        if (restored >= grants && Utc::now() > last_expiry) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let lag_of = |call: &tempadmin::sim::jumpcloud::RecordedCall| {
        let system = system_of(&call.path)?;
        let expiry = expiry_of.get(system)?;
        let lag = (call.at - *expiry).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0;
        Some((system.to_string(), lag))
    };
    let mut first_call: HashMap<String, f64> = HashMap::new();
    let mut sent: HashMap<String, usize> = HashMap::new();
    for call in jc.calls() {
        if let Some((system, lag)) = lag_of(&call) {
            first_call.entry(system.clone()).or_insert(lag);
            if call.method == "POST" {
                *sent.entry(system).or_default() += 1;
            }
        }
    }
    // The write that took effect (one sent by a replica killed before
    // JumpCloud handled it does not count).
    let mut restore_call: HashMap<String, f64> = HashMap::new();
    let mut applied: HashMap<String, usize> = HashMap::new();
    for call in jc.applied_writes() {
        if let Some((system, lag)) = lag_of(&call) {
            restore_call.entry(system.clone()).or_insert(lag);
            *applied.entry(system).or_default() += 1;
        }
    }
    summary(
        "revocation's first JumpCloud call",
        first_call.into_values().collect(),
    );
    let late = restore_call.values().filter(|lag| **lag > 1000.0).count();
    summary(
        "restoring write that took effect (after reading the binding)",
        restore_call.into_values().collect(),
    );
    println!("restoring writes more than 1 s after their expiry: {late}");
    println!(
        "devices restored: {} of {grants}; restored more than once: {}; \
         restoring write sent again (its first sender killed before JumpCloud handled it): {}",
        applied.len(),
        applied.values().filter(|n| **n > 1).count(),
        sent.values().filter(|n| **n > 1).count()
    );
    for (n, peak) in peak_kib.iter().enumerate() {
        println!(
            "replica {n}: peak resident memory {:.1} MiB ({peak} KiB){}",
            *peak as f64 / 1024.0,
            if killed && n == 0 {
                " (until killed)"
            } else {
                ""
            }
        );
    }
    running.stop()?;
    drop(running);
    pool.close().await;
    database.drop_it().await?;
    Ok(())
}
