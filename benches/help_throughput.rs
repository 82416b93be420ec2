//! Throughput of a signed `/tempadmin help`, against Bolt for Python
//! answering the same signed request, in the same run (issue 12).
//!
//! Starts the real application as `ack_latency` does (router, engine,
//! scheduler, SQLite in a temporary folder, loopback Slack and JumpCloud
//! simulators) and fires a signed `/tempadmin help` closed-loop: each of
//! CONNECTIONS keep-alive connections sends the next request as soon as the
//! answer to the previous one is in, for SECONDS after a one-second warm-up.
//! Then, if `python3 -c 'import slack_bolt'` works, it starts
//! `benches/bolt_help.py` (Bolt's built-in HTTP server, the same signing
//! secret) on a loopback port and fires the same request at it the same
//! way. It prints, for each, help answers per second and latency p50/p99,
//! and the ratio.
//!
//! `cargo bench --bench help_throughput -- [CONNECTIONS] [SECONDS] [fresh] [bolt-inline]`
//!
//! Bolt runs with its defaults: the handler on Bolt's thread pool, the
//! request's thread waiting for the ack. With `bolt-inline` the handler
//! runs inline (`process_before_response`), Bolt's fastest way to answer
//! (see benches/bolt_help.py).
//!
//! Which request: by default one body, signed once before the clock
//! starts, sent again and again. That is "the same signed request" for
//! both servers: each verifies the signature and the timestamp and parses
//! the body every time, and the load generator does no signing while it
//! measures. Bolt keeps no memory of deliveries; tempadmin needs none for
//! `help`, which changes nothing. Code that remembers every delivery (a
//! replay write for every command, as issue 12 found) answers the copies
//! "already received" instead of the help text: those answers are counted
//! apart and do not count as help. With `fresh`, every request is a new
//! delivery, as Slack sends them (its own `trigger_id`), signed by the load
//! generator as it is sent, for both servers alike: that measures such code
//! on what it does for real help requests, at the price of an HMAC and a
//! form encoding per request in the generator.
//!
//! What shares the cores: the load generator runs on one thread of its own
//! (a current-thread runtime, a minimal HTTP/1.1 client writing prebuilt
//! requests); tempadmin and its simulators run on a multi-threaded runtime
//! in the same process; Bolt runs as its own Python process. Bolt's server
//! answers in HTTP/1.0 and closes the connection after each answer, so
//! against it every request opens a connection. The CPU time each side
//! used is printed beside its rate.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use secrecy::SecretString;
use tempadmin::app::App;
use tempadmin::domain::{GrantDuration, Policy};
use tempadmin::engine::clock::SystemClock;
use tempadmin::sim::jumpcloud::FakeJumpCloud;
use tempadmin::sim::slack::FakeSlack;
use tempadmin::sim::{self, slack_sender};
use tempadmin::slack::signature::SigningSecret;

use support::{arg, flag, percentile};

/// A phrase of the help text, in tempadmin's answer and in Bolt's.
const HELP_MARK: &[u8] = b"gives you temporary administrator rights";
/// Who asks for help.
const USER: &str = "U0HELPER";
/// The bot token of the Slack simulator (Bolt's one `auth.test` goes there).
const BOT_TOKEN: &str = "xoxb-bench";
/// A signed body must stay within Slack's 5-minute window for the whole run.
const MAX_SECONDS: u64 = 240;
/// Linux's clock ticks per second in /proc's CPU times (`_SC_CLK_TCK`).
const TICKS_PER_SEC: f64 = 100.0;

fn main() -> anyhow::Result<()> {
    let connections = arg(0, 32).max(1) as usize;
    let seconds = arg(1, 10);
    let fresh = flag("fresh");
    anyhow::ensure!(
        (1..=MAX_SECONDS).contains(&seconds),
        "SECONDS must be 1 to {MAX_SECONDS}: a signed body is good for 5 minutes"
    );
    let load = Load {
        connections,
        warm_up: Duration::from_secs(1),
        measure: Duration::from_secs(seconds),
        fresh,
    };
    // tempadmin's runtime: as many workers as cores, as `serve` has.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let server = runtime.block_on(Server::start())?;
    let which = if fresh {
        "a new delivery per request, signed as it is sent"
    } else {
        "one body signed once, sent again and again"
    };
    println!(
        "signed /tempadmin help, closed loop: {connections} connections, {seconds} s after a 1 s warm-up; {which}"
    );

    let target = Target {
        name: "tempadmin".into(),
        url: server.commands_url.clone(),
        response_url: server.response_url.clone(),
        pid: None,
    };
    let ours = measure(&target, &load)?;
    ours.print();

    let bolt = match bolt_version() {
        None => {
            println!(
                "Bolt for Python: not compared, `python3 -c 'import slack_bolt'` fails; install it with `pip install slack_bolt`"
            );
            None
        }
        Some(version) => {
            let inline = flag("bolt-inline");
            let bolt = Bolt::start(&server.api_url, inline)?;
            let how = if inline {
                "handler inline"
            } else {
                "defaults: handler on its thread pool"
            };
            let target = Target {
                name: format!("Bolt for Python {version} ({how})"),
                url: format!("http://127.0.0.1:{}/slack/commands", bolt.port),
                response_url: server.response_url.clone(),
                pid: Some(bolt.child.id()),
            };
            let result = measure(&target, &load)?;
            result.print();
            Some(result)
        }
    };
    if let Some(bolt) = bolt {
        if bolt.help_per_sec() > 0.0 {
            println!(
                "ratio: tempadmin answers help {:.1}x as often as Bolt for Python ({:.0}/s against {:.0}/s)",
                ours.help_per_sec() / bolt.help_per_sec(),
                ours.help_per_sec(),
                bolt.help_per_sec()
            );
        }
    }
    runtime.block_on(server.stop())
}

/// tempadmin, running in this process.
struct Server {
    commands_url: String,
    response_url: String,
    /// The Slack simulator's Web API, for Bolt's `auth.test`.
    api_url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
    _slack: FakeSlack,
    _jumpcloud: FakeJumpCloud,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> anyhow::Result<Server> {
        let slack = FakeSlack::start(BOT_TOKEN).await;
        let jumpcloud = FakeJumpCloud::start("bench-key").await;
        let dir = tempfile::tempdir()?;
        let d = |t: &str| GrantDuration::parse(t).expect("a duration");
        // The shipped defaults, so the help text is the one Bolt's copy has.
        let policy = Policy {
            default_duration: d("30m"),
            min_duration: d("5m"),
            max_duration: d("4h"),
            require_reason: false,
            max_reason_length: 500,
            max_open_requests: 3,
            max_requests_per_hour: 10,
            approval_timeout: d("30m"),
            reminders: vec![],
            approval_reminder: tempadmin::domain::ApprovalReminder::Halfway,
        };
        let database_url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let config = sim::config(
            &slack,
            &jumpcloud,
            database_url,
            vec!["U0APPROVER".into()],
            policy,
            Duration::from_secs(10),
        );
        let app = App::build(&config, Arc::new(SystemClock)).await?;
        let commands_url = format!("http://127.0.0.1:{}/slack/commands", app.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(app.run(async {
            let _ = stopped.await;
        }));
        Ok(Server {
            commands_url,
            response_url: slack.response_url("help"),
            api_url: slack.api_url(),
            stop,
            running,
            _slack: slack,
            _jumpcloud: jumpcloud,
            _dir: dir,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.running.await?
    }
}

/// The installed Bolt for Python's version, if there is one.
fn bolt_version() -> Option<String> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import slack_bolt.version; print(slack_bolt.version.__version__)",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// benches/bolt_help.py, running; stopped when dropped.
struct Bolt {
    child: std::process::Child,
    port: u16,
}

impl Bolt {
    fn start(api_url: &str, inline: bool) -> anyhow::Result<Bolt> {
        // A free loopback port: the script binds it a moment later.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/bolt_help.py");
        let child = std::process::Command::new("python3")
            .arg(script)
            .env("PORT", port.to_string())
            .env("SLACK_SIGNING_SECRET", sim::SIGNING_SECRET)
            .env("BOT_TOKEN", BOT_TOKEN)
            .env("SLACK_API_URL", api_url)
            .env("BOLT_INLINE", if inline { "1" } else { "0" })
            .stdout(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start python3 {script}"))?;
        Ok(Bolt { child, port })
    }
}

impl Drop for Bolt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where to send the requests.
struct Target {
    name: String,
    url: String,
    /// The `response_url` in the command's body.
    response_url: String,
    /// The server's own process, when it is not this one.
    pid: Option<u32>,
}

/// How to load it.
#[derive(Clone)]
struct Load {
    connections: usize,
    warm_up: Duration,
    measure: Duration,
    fresh: bool,
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    help: u64,
    other: u64,
    failed: u64,
    /// The first answer that was not the help text, or the first failure.
    sample: Option<String>,
}

/// What a target did in the measured seconds.
struct Measured {
    name: String,
    elapsed: Duration,
    tally: Tally,
    /// CPU seconds used by the load generator's thread.
    generator_cpu: f64,
    /// CPU seconds used by the server (its process, or this process less
    /// the generator).
    server_cpu: f64,
    /// The first help answer's size.
    help_bytes: usize,
}

impl Measured {
    fn help_per_sec(&self) -> f64 {
        self.tally.help as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self) {
        let t = &self.tally;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let (p50, p99) = if t.latencies.is_empty() {
            (0.0, 0.0)
        } else {
            (
                ms(percentile(&t.latencies, 0.50)),
                ms(percentile(&t.latencies, 0.99)),
            )
        };
        println!(
            "{}: {:.0} help answers/s ({} help, {} other answers, {} failed in {:.2} s; help answer {} bytes); latency ms p50 {p50:.2} p99 {p99:.2}; CPU s: server {:.1}, load generator {:.1}",
            self.name,
            self.help_per_sec(),
            t.help,
            t.other,
            t.failed,
            self.elapsed.as_secs_f64(),
            self.help_bytes,
            self.server_cpu,
            self.generator_cpu,
        );
        if let Some(sample) = &t.sample {
            println!("  first answer that was not help: {sample}");
        }
    }
}

/// Fires the load at `target` from a thread of its own.
fn measure(target: &Target, load: &Load) -> anyhow::Result<Measured> {
    let (url, response_url, load) = (
        target.url.clone(),
        target.response_url.clone(),
        load.clone(),
    );
    let server_stat = match target.pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".into(),
    };
    let generator = std::thread::spawn(move || -> anyhow::Result<_> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(generate(&url, &response_url, &load, &server_stat))
    });
    let (elapsed, tally, generator_cpu, process_cpu, help_bytes) = generator
        .join()
        .map_err(|_| anyhow::anyhow!("the load generator panicked"))??;
    Ok(Measured {
        name: target.name.clone(),
        elapsed,
        tally,
        generator_cpu,
        server_cpu: if target.pid.is_some() {
            process_cpu
        } else {
            process_cpu - generator_cpu
        },
        help_bytes,
    })
}

/// Makes the requests, whole (request line, headers, body): the same
/// signed one every time, or a new delivery, signed now, each time.
struct Requests {
    secret: SigningSecret,
    response_url: String,
    /// `host:port`, for the `Host` header.
    host: String,
    path: String,
    /// `Some` unless every request is fresh.
    same: Option<Arc<[u8]>>,
}

impl Requests {
    fn new(url: &url::Url, response_url: &str, fresh: bool) -> anyhow::Result<Requests> {
        let host = format!(
            "{}:{}",
            url.host_str().context("a host")?,
            url.port_or_known_default().context("a port")?
        );
        let mut requests = Requests {
            secret: SigningSecret::new(SecretString::from(sim::SIGNING_SECRET)),
            response_url: response_url.into(),
            host,
            path: url.path().into(),
            same: None,
        };
        if !fresh {
            requests.same = Some(requests.fresh());
        }
        Ok(requests)
    }

    fn fresh(&self) -> Arc<[u8]> {
        let body = slack_sender::command_body(USER, "help", &self.response_url);
        let now = Utc::now().timestamp();
        let signature = self.secret.sign(now, body.as_bytes());
        format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             X-Slack-Request-Timestamp: {now}\r\nX-Slack-Signature: {signature}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.path,
            self.host,
            body.len()
        )
        .into_bytes()
        .into()
    }

    fn next(&self) -> Arc<[u8]> {
        match &self.same {
            Some(request) => request.clone(),
            None => self.fresh(),
        }
    }
}

/// One client connection, kept alive while the server allows it. A
/// minimal HTTP/1.1 client (prebuilt request bytes out, status line,
/// `Content-Length` and `Connection` in), so that the generator costs a
/// write and a read per request and leaves the cores to the servers; a
/// general client (reqwest) took about 52 µs of CPU per request here, this
/// one about 24 µs.
struct Connection {
    address: std::net::SocketAddr,
    stream: Option<tokio::net::TcpStream>,
    buffer: Vec<u8>,
}

/// How an exchange ended: the status and the body, or why not.
type Answer = Result<(u16, Vec<u8>), String>;

impl Connection {
    fn new(address: std::net::SocketAddr) -> Connection {
        Connection {
            address,
            stream: None,
            buffer: Vec::with_capacity(4096),
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> Answer {
        let answer = self.try_exchange(request).await;
        if answer.is_err() {
            self.stream = None;
        }
        answer
    }

    async fn try_exchange(&mut self, request: &[u8]) -> Answer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let describe = |e: std::io::Error| e.to_string();
        if self.stream.is_none() {
            let stream = tokio::net::TcpStream::connect(self.address)
                .await
                .map_err(describe)?;
            stream.set_nodelay(true).map_err(describe)?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected above");
        stream.write_all(request).await.map_err(describe)?;
        self.buffer.clear();
        let head_end = loop {
            if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                break at + 4;
            }
            if stream.read_buf(&mut self.buffer).await.map_err(describe)? == 0 {
                return Err("connection closed before an answer".into());
            }
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).to_ascii_lowercase();
        let mut lines = head.lines();
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an HTTP answer: {status_line:?}"))?;
        let header = |name: &str| {
            head.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(n, _)| n.trim() == name)
                .map(|(_, v)| v.trim().to_string())
        };
        let connection = header("connection").unwrap_or_default();
        let close = connection == "close"
            || (status_line.starts_with("http/1.0") && connection != "keep-alive");
        let body = match header("content-length").and_then(|n| n.parse::<usize>().ok()) {
            Some(length) => {
                while self.buffer.len() < head_end + length {
                    if stream.read_buf(&mut self.buffer).await.map_err(describe)? == 0 {
                        return Err("connection closed inside an answer".into());
                    }
                }
                self.buffer[head_end..head_end + length].to_vec()
            }
            None if close => {
                while stream.read_buf(&mut self.buffer).await.map_err(describe)? > 0 {}
                self.buffer[head_end..].to_vec()
            }
            None => return Err("an answer without Content-Length on a kept connection".into()),
        };
        if close {
            self.stream = None;
        }
        Ok((status, body))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One request; `Ok(Ok(bytes))` for a help answer of that size,
/// `Ok(Err(text))` for another answer, `Err` on failure.
async fn send(
    connection: &mut Connection,
    requests: &Requests,
) -> Result<Result<usize, String>, String> {
    let (status, answer) = connection.exchange(&requests.next()).await?;
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}"));
    }
    if find(&answer, HELP_MARK).is_some() {
        Ok(Ok(answer.len()))
    } else {
        let text = String::from_utf8_lossy(&answer);
        Ok(Err(text.chars().take(160).collect()))
    }
}

/// The whole load on the current thread: wait until the target answers
/// help, warm up, then measure.
async fn generate(
    url: &str,
    response_url: &str,
    load: &Load,
    server_stat: &str,
) -> anyhow::Result<(Duration, Tally, f64, f64, usize)> {
    let url = url::Url::parse(url)?;
    let address = *url.socket_addrs(|| None)?.first().context("an address")?;
    let requests = Arc::new(Requests::new(&url, response_url, load.fresh)?);

    // Ready when it answers help once (Bolt's port opens a moment after
    // the process starts).
    let ready_by = Instant::now() + Duration::from_secs(30);
    let mut probe = Connection::new(address);
    let help_bytes = loop {
        match send(&mut probe, &requests).await {
            Ok(Ok(bytes)) => break bytes,
            outcome if Instant::now() > ready_by => {
                anyhow::bail!("{url} did not answer help within 30 s: {outcome:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    drop(probe);
    let mut connections: Vec<Connection> = (0..load.connections)
        .map(|_| Connection::new(address))
        .collect();
    run_for(&mut connections, &requests, load.warm_up).await;

    let (generator_before, server_before) = (cpu("/proc/thread-self/stat"), cpu(server_stat));
    let start = Instant::now();
    let tally = run_for(&mut connections, &requests, load.measure).await;
    let elapsed = start.elapsed();
    let generator_cpu = cpu("/proc/thread-self/stat") - generator_before;
    let server_cpu = cpu(server_stat) - server_before;
    Ok((elapsed, tally, generator_cpu, server_cpu, help_bytes))
}

/// A closed loop on each connection for `how_long`, the tallies merged.
async fn run_for(
    connections: &mut [Connection],
    requests: &Arc<Requests>,
    how_long: Duration,
) -> Tally {
    let deadline = Instant::now() + how_long;
    let loops = connections.iter_mut().map(|connection| {
        let requests = requests.clone();
        async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let outcome = send(connection, &requests).await;
                tally.latencies.push(sent.elapsed());
                match outcome {
                    Ok(Ok(_)) => tally.help += 1,
                    Ok(Err(text)) => {
                        tally.other += 1;
                        tally.sample.get_or_insert(text);
                    }
                    Err(e) => {
                        tally.failed += 1;
                        tally.sample.get_or_insert(format!("failed: {e}"));
                    }
                }
            }
            tally
        }
    });
    let mut all = Tally::default();
    for tally in futures::future::join_all(loops).await {
        all.latencies.extend(tally.latencies);
        all.help += tally.help;
        all.other += tally.other;
        all.failed += tally.failed;
        if all.sample.is_none() {
            all.sample = tally.sample;
        }
    }
    all.latencies.sort();
    all
}

/// User plus system CPU seconds from a /proc `stat` file (0 if unreadable).
fn cpu(stat: &str) -> f64 {
    let Ok(text) = std::fs::read_to_string(stat) else {
        return 0.0;
    };
    // The fields after the command name, which is in parentheses and may
    // hold spaces: state is the first, utime the 12th, stime the 13th.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / TICKS_PER_SEC
}
