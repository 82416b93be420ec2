//! Several real `tempadmin serve` processes on one PostgreSQL database, as
//! a deployment with replicas runs them: the high-availability test starts
//! three and kills one with SIGKILL; the replica benchmark measures their
//! revocation lag and peak memory. Each process gets its own loopback port
//! and log file; the simulators run in the caller's process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::jumpcloud::FakeJumpCloud;
use super::slack::FakeSlack;
use super::{APPROVALS_CHANNEL, SIGNING_SECRET};

/// How long a replica may take to answer `/readyz` after it started.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// A fresh, empty PostgreSQL database on the server that `admin_url` (an
/// administrator's URL) names; dropped with [`PostgresDatabase::drop_it`].
pub struct PostgresDatabase {
    admin_url: String,
    name: String,
    /// The URL of the new database, for `database_url`.
    pub url: String,
}

impl PostgresDatabase {
    /// Creates a database with a name of its own.
    pub async fn create(admin_url: &str, prefix: &str) -> anyhow::Result<Self> {
        let name = format!(
            "{prefix}_{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let admin = sqlx::PgPool::connect(admin_url)
            .await
            .with_context(|| format!("PostgreSQL at {admin_url} is needed (.ci/run starts it)"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        admin.close().await;
        let mut url = url::Url::parse(admin_url)?;
        url.set_path(&name);
        Ok(Self {
            admin_url: admin_url.into(),
            url: url.to_string(),
            name,
        })
    }

    /// Drops the database (every replica must have stopped).
    pub async fn drop_it(self) -> anyhow::Result<()> {
        let admin = sqlx::PgPool::connect(&self.admin_url).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&admin)
        .await?;
        admin.close().await;
        Ok(())
    }
}

/// A configuration file for replicas that reach the two simulators, with
/// `approvers` and further TOML (`[policy]`, `[scheduler]` …) after it.
pub fn config_file(
    slack: &FakeSlack,
    jc: &FakeJumpCloud,
    approvers: &[&str],
    more: &str,
) -> String {
    let approvers = approvers
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[slack]\napi_url = \"{}\"\napprovals_channel = \"{APPROVALS_CHANNEL}\"\napprovers = [{approvers}]\n\n\
         [jumpcloud]\napi_url = \"{}\"\ntimeout = \"10s\"\n\n{more}",
        slack.api_url(),
        jc.url(),
    )
}

/// The environment every replica gets: the database and the simulators'
/// secrets.
pub fn environment(
    database_url: &str,
    slack: &FakeSlack,
    jc: &FakeJumpCloud,
) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", database_url.to_string()),
        ("SLACK_SIGNING_SECRET", SIGNING_SECRET.to_string()),
        ("SLACK_BOT_TOKEN", slack.bot_token()),
        ("JUMPCLOUD_API_KEY", jc.api_key()),
    ]
}

/// One running `tempadmin serve`.
struct Replica {
    child: Child,
    base: String,
    log: PathBuf,
}

/// The replicas; any left running are killed when this is dropped.
pub struct Replicas {
    replicas: Vec<Replica>,
    http: reqwest::Client,
}

/// A loopback port that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Replicas {
    /// Starts `count` processes of `binary` serving `config` (a file),
    /// each with `env` and a port of its own, and waits until each answers
    /// `/readyz`. Their output goes to files in `log_dir`.
    pub async fn start(
        binary: &Path,
        config: &Path,
        env: &[(&str, String)],
        count: usize,
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        let mut replicas = Self {
            replicas: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        };
        for n in 0..count {
            let port = free_port()?;
            let log = log_dir.join(format!("replica-{n}.log"));
            let out = std::fs::File::create(&log)?;
            let child = Command::new(binary)
                .args(["serve", "--config"])
                .arg(config)
                .envs(env.iter().map(|(k, v)| (k, v)))
                .env("TEMPADMIN_LISTEN", format!("127.0.0.1:{port}"))
                .env("RUST_LOG", "tempadmin=warn")
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
                .with_context(|| format!("cannot start {}", binary.display()))?;
            replicas.replicas.push(Replica {
                child,
                base: format!("http://127.0.0.1:{port}"),
                log,
            });
        }
        for n in 0..count {
            replicas.wait_ready(n).await?;
        }
        Ok(replicas)
    }

    async fn wait_ready(&mut self, n: usize) -> anyhow::Result<()> {
        let started = Instant::now();
        let url = format!("{}/readyz", self.replicas[n].base);
        loop {
            if let Some(status) = self.replicas[n].child.try_wait()? {
                anyhow::bail!("replica {n} exited at start ({status}):\n{}", self.log(n));
            }
            if let Ok(r) = self.http.get(&url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if started.elapsed() > START_PATIENCE {
                anyhow::bail!("replica {n} not ready in time:\n{}", self.log(n));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:PORT` of replica `n`.
    pub fn base(&self, n: usize) -> &str {
        &self.replicas[n].base
    }

    /// The process id of replica `n`.
    pub fn pid(&self, n: usize) -> u32 {
        self.replicas[n].child.id()
    }

    /// What replica `n` logged so far.
    pub fn log(&self, n: usize) -> String {
        std::fs::read_to_string(&self.replicas[n].log).unwrap_or_default()
    }

    /// Kills replica `n` with SIGKILL, as a crashed machine or the OOM
    /// killer would: no shutdown, no lease released.
    pub fn kill(&mut self, n: usize) -> anyhow::Result<()> {
        let child = &mut self.replicas[n].child;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// The peak resident memory of replica `n` so far (`VmHWM`), in KiB,
    /// while it runs (Linux).
    pub fn peak_memory_kib(&self, n: usize) -> Option<u64> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.replicas[n].child.id()))
                .ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Asks every replica still running to stop (SIGTERM, as Kubernetes
    /// does) and waits for each; returns how each ended.
    pub fn stop(&mut self) -> anyhow::Result<Vec<std::process::ExitStatus>> {
        let mut ended = Vec::new();
        for replica in &mut self.replicas {
            if replica.child.try_wait()?.is_none() {
                Command::new("kill")
                    .args(["-TERM", &replica.child.id().to_string()])
                    .status()?;
            }
        }
        for replica in &mut self.replicas {
            ended.push(replica.child.wait()?);
        }
        Ok(ended)
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for replica in &mut self.replicas {
            if let Ok(None) = replica.child.try_wait() {
                let _ = replica.child.kill();
                let _ = replica.child.wait();
            }
        }
    }
}
