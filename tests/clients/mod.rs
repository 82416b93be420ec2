//! Shared by the tests of slow, idle and too many clients: the real
//! application on loopback with fake Slack and JumpCloud, `/metrics` on its
//! own address, and clients that send part of a request and stop.

#[path = "../flow/support.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use secrecy::SecretString;
use tempadmin::app::App;
use tempadmin::config::HttpConfig;
use tempadmin::domain::{Policy, RequestState};
use tempadmin::engine::clock::ManualClock;
use tempadmin::engine::ports::Clock;
use tempadmin::engine::Engine;
use tempadmin::sim::jumpcloud::{FakeJumpCloud, SimUser};
use tempadmin::sim::slack::FakeSlack;
use tempadmin::sim::{self, slack_sender};
use tempadmin::slack::signature::SigningSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use support::{d, system, ADA, GRACE, JC_ADA, LAPTOP, SECRET};

/// Long enough for anything that should happen to happen on a loaded
/// machine; only reached when the behaviour under test is broken.
pub const GUARD: Duration = Duration::from_secs(20);

/// Short server-side timeouts, so that the tests see them fire.
pub fn short_timeouts(max_connections: usize) -> HttpConfig {
    HttpConfig {
        header_timeout: Duration::from_millis(400),
        request_timeout: Duration::from_millis(400),
        max_connections: Some(max_connections),
        shutdown_timeout: Duration::from_secs(5),
    }
}

/// Timeouts that never fire within a test: only the cap and shutdown act.
pub fn patient(max_connections: usize) -> HttpConfig {
    HttpConfig {
        header_timeout: Duration::from_secs(120),
        request_timeout: Duration::from_secs(120),
        max_connections: Some(max_connections),
        shutdown_timeout: Duration::from_millis(300),
    }
}

/// How the application runs.
#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    /// HTTP only; jobs run when the test says.
    ServeOnly,
    /// `App::run`: HTTP and the scheduler, on the manual clock.
    Run,
}

pub struct Server {
    pub addr: SocketAddr,
    pub metrics: SocketAddr,
    pub http: reqwest::Client,
    pub jc: FakeJumpCloud,
    pub _slack: FakeSlack,
    pub clock: Arc<ManualClock>,
    pub engine: Arc<Engine>,
    pub secret: SigningSecret,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub dir: tempfile::TempDir,
}

/// Ada with one MacBook, Grace approves; `/metrics` on its own port.
pub async fn start(http: HttpConfig, mode: Mode) -> Server {
    let slack = FakeSlack::start("xoxb-test").await;
    let jc = FakeJumpCloud::start("jc-test-key").await;
    slack.add_user(ADA, "ada", Some("ada@example.com"));
    slack.add_user(GRACE, "grace", Some("grace@example.com"));
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
        approval_timeout: d("30m"),
        reminders: vec![d("15m"), d("5m"), d("1m")],
        ..Policy::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("test.db").display());
    let mut config = sim::config(
        &slack,
        &jc,
        database_url,
        vec![GRACE.into()],
        policy,
        Duration::from_millis(1500),
    );
    config.http = http;
    config.metrics_listen = Some("127.0.0.1:0".into());
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = App::build(&config, clock.clone()).await.unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], app.port()).into();
    let metrics: SocketAddr = ([127, 0, 0, 1], app.metrics_port().unwrap()).into();
    let engine = app.engine.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stopped = async {
        let _ = stopped.await;
    };
    let task = match mode {
        Mode::ServeOnly => tokio::spawn(app.serve_only(stopped)),
        Mode::Run => tokio::spawn(app.run(stopped)),
    };
    Server {
        addr,
        metrics,
        http: reqwest::Client::new(),
        jc,
        _slack: slack,
        clock,
        engine,
        secret: SigningSecret::new(SecretString::from(SECRET)),
        stop: Some(stop),
        task: Some(task),
        dir,
    }
}

impl Server {
    /// A signed `/tempadmin TEXT` from `user` on a new connection: the
    /// status and the answer's `response_type`.
    pub async fn command(&self, user: &str, text: &str) -> (u16, String) {
        let body = slack_sender::command_body(user, text, &self._slack.response_url("unused"));
        let response = slack_sender::post_signed(
            &self.http,
            &format!("http://{}/slack/commands", self.addr),
            &self.secret,
            self.clock.now().timestamp(),
            body,
        )
        .await
        .unwrap();
        let status = response.status().as_u16();
        let json: serde_json::Value = response.json().await.unwrap_or_default();
        (status, json["response_type"].as_str().unwrap_or("").into())
    }

    pub async fn click(&self, user: &str, action_id: &str, value: &str) -> u16 {
        let body = slack_sender::click_body(
            user,
            action_id,
            value,
            "block",
            &self._slack.response_url("x"),
        );
        slack_sender::post_signed(
            &self.http,
            &format!("http://{}/slack/interactions", self.addr),
            &self.secret,
            self.clock.now().timestamp(),
            body,
        )
        .await
        .unwrap()
        .status()
        .as_u16()
    }

    /// `GET path` on the metrics address: status and body.
    pub async fn metrics_get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("http://{}{path}", self.metrics))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// `tempadmin_http_connections_open`, read from the metrics address.
    pub async fn open_connections(&self) -> u64 {
        let (_, text) = self.metrics_get("/metrics").await;
        gauge(&text, "tempadmin_http_connections_open")
    }

    pub async fn state_of_ada(&self) -> Option<RequestState> {
        let entries = self.engine.store().audit_since(None).await.unwrap();
        let id = entries.iter().rev().find(|e| e.action == "requested")?;
        let request = self.engine.store().request(&id.request_id).await.unwrap()?;
        Some(request.state())
    }

    /// Ada asks for 20 minutes and Grace approves; returns once JumpCloud
    /// has elevated her. Needs [`Mode::Run`].
    pub async fn active_grant(&self) {
        assert_eq!(self.command(ADA, "20m printer").await.0, 200);
        until("the request reaches the approvers", || async {
            self.state_of_ada().await == Some(RequestState::PendingApproval)
        })
        .await;
        let entries = self.engine.store().audit_since(None).await.unwrap();
        let id = entries.last().unwrap().request_id.to_string();
        assert_eq!(self.click(GRACE, "tempadmin_approve", &id).await, 200);
        until("the grant is active", || async {
            self.state_of_ada().await == Some(RequestState::Active)
        })
        .await;
        assert_eq!(self.jc_ops(), ["add"]);
    }

    pub fn jc_ops(&self) -> Vec<String> {
        self.jc
            .writes()
            .into_iter()
            .map(|c| c.body.unwrap()["op"].as_str().unwrap().to_string())
            .collect()
    }

    /// Sends the stop signal and waits for the server to finish.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(GUARD, task)
            .await
            .expect("the server stops")
            .unwrap()
    }
}

pub fn gauge(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in {metrics}"))
}

/// Waits until `condition` holds; fails after [`GUARD`].
pub async fn until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + GUARD;
    while !condition().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client that opens a connection and sends nothing.
pub async fn idle(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

/// A client that sends half of a request's headers and stops.
pub async fn slow_header(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /slack/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
        .await
        .unwrap();
    stream
}

/// A client that sends the headers and the start of a 1,000-byte body, and
/// stops.
pub async fn stalled_body(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST /slack/commands HTTP/1.1\r\nHost: 127.0.0.1\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              X-Slack-Request-Timestamp: 1\r\nX-Slack-Signature: v0=00\r\n\
              Content-Length: 1000\r\n\r\ntoken=abc&team_id=T0",
        )
        .await
        .unwrap();
    stream
}

/// Reads until the server closes the connection; what it sent before.
/// Fails if the server keeps it open past [`GUARD`].
pub async fn closed_by_server(mut stream: TcpStream) -> String {
    let mut got = Vec::new();
    match tokio::time::timeout(GUARD, stream.read_to_end(&mut got)).await {
        Ok(Ok(_)) => {}
        // A reset is a close too.
        Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Err(_) => panic!("the server kept a stalled connection open"),
    }
    String::from_utf8_lossy(&got).into_owned()
}
