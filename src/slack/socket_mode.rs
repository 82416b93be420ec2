//! Slack Socket Mode: the bot opens a WebSocket to Slack instead of
//! offering a public URL. `apps.connections.open`, called with the
//! app-level token (`xapp-…`, scope `connections:write`), gives a
//! single-use `wss://` URL; Slack greets the socket with `hello`, then
//! sends envelopes (`slash_commands`, `interactive`, `events_api`), each of
//! which must be acknowledged with its `envelope_id` within 3 seconds, and a
//! slash command's acknowledgement may carry the immediate answer.
//!
//! Invariant: no envelope in hand is dropped. Every envelope is acknowledged on the
//! socket it came on, after its handler has acted (or, if the handler
//! takes longer than [`ANSWER_BUDGET`], with a bare acknowledgement while
//! it carries on); one whose handling failed is left unacknowledged, so
//! Slack delivers it again if it is an event (Slack retries events only; a
//! command or click shows the person an error). On `disconnect` (Slack's refresh every few
//! hours, or a warning) the new connection is opened *before* the old one
//! is let go: the old one keeps reading and answering until its envelopes
//! in hand are acknowledged, then closes. A dropped socket is replaced
//! with exponential backoff and jitter ([`backoff_delay`]). A delivery that
//! Slack sends again (`retry_attempt` > 0, perhaps to another replica) is
//! recognised by its content ([`delivery_key`]) where the handler acts.
//!
//! Why not slack-morphism's Socket Mode client (2.31): its listener hands
//! commands over as `SlackCommandEvent`, which drops `api_app_id` (needed
//! to refuse other apps' payloads) and hides the envelope, so neither the
//! raw payload nor its retry count reaches the handler; it reads the next
//! envelope only after the previous one's handler has returned, so one slow
//! command holds up every other; on `disconnect` it shuts the old
//! connection down before opening the new one (a gap in which Slack has
//! nowhere to deliver), and reconnects after a fixed 30 s without jitter;
//! a refused token only loops, so start-up cannot say what is wrong. This
//! small client uses tokio-tungstenite, the WebSocket crate slack-morphism
//! already brings in (one version in the tree), and reqwest for
//! `apps.connections.open`, so it can be pointed at the loopback simulator
//! (`ws://127.0.0.1:…`) like every other Slack call.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::metrics::Metrics;

/// Slack's limit for acknowledging an envelope.
pub const ACK_WITHIN: Duration = Duration::from_secs(3);

/// How long a handler may take before its envelope is acknowledged
/// without an answer (the handler carries on): Slack's 3 seconds less a
/// margin for the way back.
pub const ANSWER_BUDGET: Duration = ACK_WITHIN.saturating_sub(Duration::from_millis(500));

/// A socket that has sent nothing (not even a pong to our ping) this long
/// is taken for dead and replaced.
const SILENCE_LIMIT: Duration = Duration::from_secs(30);

/// How often the client pings; Slack answers every ping with a pong.
const PING_EVERY: Duration = Duration::from_secs(10);

/// The first reconnection after a dropped socket waits up to this long.
const BACKOFF_BASE: Duration = Duration::from_millis(500);

/// No reconnection waits longer than this.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// After `link_disabled` (Socket Mode turned off in the app's settings),
/// the client asks again this rarely, so that turning it on again is
/// enough to recover.
const LINK_DISABLED_WAIT: Duration = Duration::from_secs(60);

/// A connection that lasted this long was a good one: the next drop starts
/// the backoff afresh. One that Slack accepts and soon drops keeps backing
/// off, so a flapping link is not hammered.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// At shutdown, envelopes in hand get this long to be acknowledged.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// What the client needs to reach Slack.
#[derive(Debug, Clone)]
pub struct SocketModeSettings {
    /// Web API base (`https://slack.com/api`), where
    /// `apps.connections.open` lives.
    pub api_url: String,
    /// `SLACK_APP_TOKEN` (`xapp-…`).
    pub app_token: SecretString,
    /// How long `apps.connections.open` and the WebSocket handshake may take.
    pub timeout: Duration,
}

/// Why `apps.connections.open` gave no URL.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Slack refused the app-level token: nothing will work until it is
    /// replaced. Start-up stops with this message.
    #[error(
        "Slack refused SLACK_APP_TOKEN ({0}): set it to the app's app-level token (xapp-…) with \
         the connections:write scope (Basic Information → App-Level Tokens), and turn Socket \
         Mode on in the app's settings"
    )]
    Refused(String),
    /// Slack could not be asked, or answered something it may not answer
    /// next time.
    #[error("apps.connections.open failed ({0})")]
    Unavailable(String),
}

/// The Web API errors that say the token itself is wrong (Slack's
/// documentation of `apps.connections.open` and its common errors).
const REFUSALS: [&str; 11] = [
    "invalid_auth",
    "not_authed",
    "missing_args",
    "not_allowed_token_type",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
    "missing_scope",
    "forbidden_team",
    "access_denied",
];

/// `apps.connections.open` with the app-level token: a fresh single-use
/// WebSocket URL. Asking changes nothing at Slack: a URL nobody connects
/// to lapses (`tempadmin check` asks once to prove the token).
pub async fn connections_open(
    http: &reqwest::Client,
    settings: &SocketModeSettings,
) -> Result<String, OpenError> {
    let endpoint = format!(
        "{}/apps.connections.open",
        settings.api_url.trim_end_matches('/')
    );
    let response = http
        .post(endpoint)
        .bearer_auth(settings.app_token.expose_secret())
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .map_err(|e| OpenError::Unavailable(e.without_url().to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(OpenError::Unavailable(format!("HTTP {status}")));
    }
    #[derive(Deserialize)]
    struct Answer {
        ok: bool,
        url: Option<String>,
        error: Option<String>,
    }
    let answer: Answer = response
        .json()
        .await
        .map_err(|e| OpenError::Unavailable(format!("unreadable answer: {e}")))?;
    match (answer.ok, answer.url, answer.error) {
        (true, Some(url), _) => {
            check_socket_url(&url).map_err(OpenError::Unavailable)?;
            Ok(url)
        }
        (_, _, Some(error)) if REFUSALS.contains(&error.as_str()) => Err(OpenError::Refused(error)),
        (_, _, error) => Err(OpenError::Unavailable(
            error.unwrap_or_else(|| "no url in the answer".into()),
        )),
    }
}

/// The kinds of envelope Slack sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeKind {
    /// A slash command; the payload holds the fields of the HTTP form.
    SlashCommands,
    /// A click (or another interaction); the payload is what HTTP sends
    /// as `payload=`.
    Interactive,
    /// An Events API callback (`event_callback`).
    EventsApi,
    /// Anything newer: acknowledged and not acted on.
    Other(String),
}

/// One delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// What the acknowledgement names.
    pub id: String,
    /// What it carries.
    pub kind: EnvelopeKind,
    /// The delivery itself.
    pub payload: Value,
    /// Whether the acknowledgement may carry an answer.
    pub accepts_response_payload: bool,
    /// 0 for the first delivery; more when Slack sends it again.
    pub retry_attempt: u32,
    /// Why Slack sends it again (`timeout`…), empty the first time.
    pub retry_reason: String,
}

/// One frame Slack sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// The socket is ready.
    Hello {
        /// How many connections the app holds, this one included.
        num_connections: Option<u64>,
    },
    /// Slack is about to close this socket: `refresh_requested`,
    /// `warning` or `link_disabled`.
    Disconnect {
        /// Slack's reason.
        reason: String,
    },
    /// A delivery to acknowledge.
    Envelope(Envelope),
}

#[derive(Deserialize)]
struct RawFrame {
    #[serde(rename = "type")]
    kind: String,
    envelope_id: Option<String>,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    accepts_response_payload: bool,
    #[serde(default)]
    retry_attempt: u32,
    #[serde(default)]
    retry_reason: String,
    reason: Option<String>,
    num_connections: Option<u64>,
}

/// Reads one text frame. A frame without `envelope_id` that is not
/// `hello` or `disconnect` is malformed.
pub fn parse_frame(text: &str) -> Result<Frame, String> {
    let raw: RawFrame = serde_json::from_str(text).map_err(|e| e.to_string())?;
    match raw.kind.as_str() {
        "hello" => Ok(Frame::Hello {
            num_connections: raw.num_connections,
        }),
        "disconnect" => Ok(Frame::Disconnect {
            reason: raw.reason.unwrap_or_default(),
        }),
        kind => {
            let id = raw
                .envelope_id
                .filter(|id| !id.is_empty())
                .ok_or_else(|| format!("a `{kind}` frame without envelope_id"))?;
            let kind = match kind {
                "slash_commands" => EnvelopeKind::SlashCommands,
                "interactive" => EnvelopeKind::Interactive,
                "events_api" => EnvelopeKind::EventsApi,
                other => EnvelopeKind::Other(other.to_owned()),
            };
            Ok(Frame::Envelope(Envelope {
                id,
                kind,
                payload: raw.payload,
                accepts_response_payload: raw.accepts_response_payload,
                retry_attempt: raw.retry_attempt,
                retry_reason: raw.retry_reason,
            }))
        }
    }
}

/// The acknowledgement of envelope `id`, with `payload` as the immediate
/// answer when there is one.
pub fn ack_frame(id: &str, payload: Option<&Value>) -> String {
    match payload {
        Some(payload) => serde_json::json!({ "envelope_id": id, "payload": payload }),
        None => serde_json::json!({ "envelope_id": id }),
    }
    .to_string()
}

/// What makes one delivery unique, however often and to whichever
/// connection (or replica) Slack sends it: a digest of its payload, which
/// carries Slack's own per-invocation ids (a command's `trigger_id`, a
/// click's `action_ts` and `trigger_id`, an event's `event_id`). The
/// `envelope_id` is not used: nothing promises it stays the same when
/// Slack sends the delivery again.
pub fn delivery_key(payload: &Value) -> String {
    use sha2::Digest;
    format!(
        "slack-socket:{}",
        hex::encode(sha2::Sha256::digest(payload.to_string().as_bytes()))
    )
}

/// How long to wait before reconnection attempt `attempt` (1 for the
/// first after a drop): up to [`BACKOFF_BASE`] doubled per attempt, at
/// most [`BACKOFF_CAP`], of which a random half (`jitter` in 0..1) is
/// left out, so that replicas cut off together do not all come back in
/// the same instant.
pub fn backoff_delay(attempt: u32, jitter: f64) -> Duration {
    let doubled = BACKOFF_BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let cap = doubled.min(BACKOFF_CAP);
    cap.mul_f64(1.0 - jitter.clamp(0.0, 1.0) / 2.0)
}

/// What the bot does with an envelope.
#[async_trait]
pub trait EnvelopeHandler: Send + Sync + 'static {
    /// Acts on `envelope` and returns the acknowledgement's payload (`None`
    /// for a bare acknowledgement). An error leaves the envelope
    /// unacknowledged, so Slack delivers it again.
    async fn handle(&self, envelope: Envelope) -> anyhow::Result<Option<Value>>;
}

/// The Socket Mode client of one process.
pub struct SocketModeClient {
    settings: SocketModeSettings,
    http: reqwest::Client,
    handler: Arc<dyn EnvelopeHandler>,
    /// Where the count of connections that are up goes.
    metrics: Metrics,
    /// The URL that start-up's token check obtained, for the first
    /// connection (a URL is single-use, and `apps.connections.open` is
    /// rate-limited).
    first_url: Mutex<Option<String>>,
}

impl std::fmt::Debug for SocketModeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketModeClient")
            .field("api_url", &self.settings.api_url)
            .finish_non_exhaustive()
    }
}

/// What a connection tells the supervisor.
#[derive(Debug)]
enum Event {
    Hello(u64),
    Disconnect(u64, String),
    Closed(u64),
}

/// What the supervisor tells a connection.
#[derive(Debug)]
enum Control {
    /// Acknowledge what is in hand, then close.
    Drain,
}

impl SocketModeClient {
    /// A client for `settings` that hands envelopes to `handler`.
    pub fn new(
        settings: SocketModeSettings,
        handler: Arc<dyn EnvelopeHandler>,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        if let Err(why) = super::client::check_api_url(&settings.api_url) {
            anyhow::bail!("the Slack API address {why}");
        }
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            settings,
            http,
            handler,
            metrics,
            first_url: Mutex::new(None),
        })
    }

    /// Asks Slack for a WebSocket URL with the app-level token, as
    /// start-up's check of the token; the URL serves the first connection.
    pub async fn check_token(&self) -> Result<(), OpenError> {
        let url = self.open().await?;
        *self
            .first_url
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(url);
        Ok(())
    }

    /// `apps.connections.open`: a fresh single-use WebSocket URL.
    pub async fn open(&self) -> Result<String, OpenError> {
        connections_open(&self.http, &self.settings).await
    }

    /// Keeps one connection open (two while one replaces the other) until
    /// `shutdown` resolves, handing every envelope to the handler; then
    /// lets the connections acknowledge what they hold and close them.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()> + Send) {
        let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
        let mut connections: HashMap<u64, mpsc::UnboundedSender<Control>> = HashMap::new();
        // Connections Slack has greeted and that have not closed.
        let mut up: std::collections::HashSet<u64> = Default::default();
        let mut newest: Option<u64> = None;
        // When the newest connection said hello.
        let mut greeted: Option<Instant> = None;
        let mut next_id = 0u64;
        let mut failures = 0u32;
        // When to try for a new connection: now at start.
        let mut reconnect_at: Option<Instant> = Some(Instant::now());
        let mut pending: Option<futures::future::BoxFuture<'static, anyhow::Result<Socket>>> = None;
        tokio::pin!(shutdown);
        loop {
            if pending.is_none() && reconnect_at.is_some_and(|at| at <= Instant::now()) {
                reconnect_at = None;
                let client = self.clone();
                pending = Some(Box::pin(async move { client.connect().await }));
            }
            let wake = reconnect_at.map(tokio::time::Instant::from_std);
            tokio::select! {
                () = &mut shutdown => break,
                () = async { tokio::time::sleep_until(wake.expect("a wake time")).await }, if wake.is_some() && pending.is_none() => {}
                connected = async { pending.as_mut().expect("a pending connection").await }, if pending.is_some() => {
                    pending = None;
                    match connected {
                        Ok(socket) => {
                            next_id += 1;
                            greeted = None;
                            let (control_tx, control_rx) = mpsc::unbounded_channel();
                            connections.insert(next_id, control_tx);
                            newest = Some(next_id);
                            tokio::spawn(connection(
                                next_id,
                                socket,
                                self.handler.clone(),
                                events_tx.clone(),
                                control_rx,
                            ));
                        }
                        Err(e) => {
                            failures += 1;
                            let wait = match e.downcast_ref::<OpenError>() {
                                Some(OpenError::Refused(_)) => BACKOFF_CAP,
                                _ => backoff_delay(failures, rand::random::<f64>()),
                            };
                            tracing::warn!(error = %format!("{e:#}"), retry_in_ms = wait.as_millis() as u64, "no Socket Mode connection");
                            reconnect_at = Some(Instant::now() + wait);
                        }
                    }
                }
                Some(event) = events.recv() => match event {
                    Event::Hello(id) => {
                        up.insert(id);
                        self.metrics.slack_socket_connections(up.len());
                        if newest == Some(id) {
                            greeted = Some(Instant::now());
                            tracing::info!(connection = id, "Socket Mode connected");
                            for (other, control) in &connections {
                                if *other != id {
                                    let _ = control.send(Control::Drain);
                                }
                            }
                        }
                    }
                    Event::Disconnect(id, reason) => {
                        // Only the newest connection's notice calls for a
                        // replacement; an older one is being let go already.
                        if newest == Some(id) && pending.is_none() && reconnect_at.is_none() {
                            if reason == "link_disabled" {
                                tracing::error!(
                                    "Slack disabled this Socket Mode link (link_disabled): Socket Mode \
                                     was turned off in the app's settings; no commands or clicks \
                                     arrive until it is on again"
                                );
                                reconnect_at = Some(Instant::now() + LINK_DISABLED_WAIT);
                            } else {
                                tracing::info!(connection = id, %reason, "Slack asks for a new Socket Mode connection; opening it before letting this one go");
                                reconnect_at = Some(Instant::now());
                            }
                        }
                    }
                    Event::Closed(id) => {
                        connections.remove(&id);
                        up.remove(&id);
                        self.metrics.slack_socket_connections(up.len());
                        if newest == Some(id) {
                            newest = None;
                            if greeted.take().is_some_and(|at| at.elapsed() >= STABLE_AFTER) {
                                failures = 0;
                            }
                            if pending.is_none() {
                                failures += 1;
                                let wait = backoff_delay(failures, rand::random::<f64>());
                                let at = Instant::now() + wait;
                                tracing::warn!(connection = id, retry_in_ms = wait.as_millis() as u64, "the Socket Mode connection closed; reconnecting");
                                // A wait already set (link_disabled's) stands.
                                reconnect_at = Some(reconnect_at.map_or(at, |t| t.max(at)));
                            }
                        }
                    }
                },
            }
        }
        for control in connections.values() {
            let _ = control.send(Control::Drain);
        }
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while !connections.is_empty() {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(Event::Closed(id))) => {
                    connections.remove(&id);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }

    /// A new socket: the URL from start-up's check, or a fresh one.
    async fn connect(&self) -> anyhow::Result<Socket> {
        let first = self
            .first_url
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let url = match first {
            Some(url) => url,
            None => self.open().await?,
        };
        let (socket, _) =
            tokio::time::timeout(self.settings.timeout, tokio_tungstenite::connect_async(url))
                .await
                .map_err(|_| anyhow::anyhow!("the WebSocket handshake timed out"))?
                // The error may name the URL, whose ticket admits one connection.
                .map_err(|e| anyhow::anyhow!("the WebSocket handshake failed: {}", redact(&e)))?;
        Ok(socket)
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A handshake error without any URL in it.
fn redact(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Http(response) => format!("HTTP {}", response.status()),
        Error::Url(_) => "a malformed URL".into(),
        other => other.to_string(),
    }
}

/// The URL Slack gave must be `wss://`, or `ws://` on loopback (the
/// simulator).
fn check_socket_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|_| "a malformed WebSocket URL".to_string())?;
    match parsed.scheme() {
        "wss" => Ok(()),
        "ws" if crate::outbound::is_loopback(&parsed) => Ok(()),
        other => Err(format!(
            "a WebSocket URL with scheme `{other}:` (only wss:// is accepted)"
        )),
    }
}

/// One connection: reads frames, hands envelopes to the handler
/// concurrently, writes their acknowledgements, pings, and reports hello,
/// disconnect and its end to the supervisor.
async fn connection(
    id: u64,
    socket: Socket,
    handler: Arc<dyn EnvelopeHandler>,
    events: mpsc::UnboundedSender<Event>,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut outgoing) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut handlers = tokio::task::JoinSet::new();
    let mut draining = false;
    let mut closing = false;
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            frame = stream.next() => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => match parse_frame(text.as_str()) {
                        Ok(Frame::Hello { num_connections }) => {
                            tracing::debug!(connection = id, ?num_connections, "Socket Mode hello");
                            let _ = events.send(Event::Hello(id));
                        }
                        Ok(Frame::Disconnect { reason }) => {
                            let _ = events.send(Event::Disconnect(id, reason));
                        }
                        Ok(Frame::Envelope(envelope)) if !closing => {
                            handlers.spawn(answer(handler.clone(), envelope, out.clone()));
                        }
                        Ok(Frame::Envelope(envelope)) => {
                            // Our close is on its way: Slack will deliver it again elsewhere.
                            tracing::debug!(connection = id, envelope_id = %envelope.id, "an envelope after our close; left to Slack's retry");
                        }
                        Err(why) => tracing::warn!(connection = id, %why, "an unreadable Socket Mode frame"),
                    },
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(connection = id, error = %redact(&e), "the Socket Mode connection failed");
                        break;
                    }
                }
            }
            Some(_) = handlers.join_next(), if !handlers.is_empty() => {}
            Some(Control::Drain) = control.recv(), if !draining => draining = true,
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    tracing::warn!(connection = id, "Slack has been silent on this Socket Mode connection; replacing it");
                    break;
                }
                let _ = out.send(Message::Ping(Vec::new().into()));
            }
        }
        if draining && !closing && handlers.is_empty() {
            closing = true;
            let _ = out.send(Message::Close(None));
        }
    }
    // Handlers still at work keep going; their acknowledgements have no
    // socket any more, so Slack delivers those envelopes again, and the
    // delivery key makes the copy act once.
    handlers.detach_all();
    drop(out);
    writer.abort();
    let _ = events.send(Event::Closed(id));
}

/// Hands one envelope to the handler and acknowledges it: with the
/// handler's answer within [`ANSWER_BUDGET`], bare after it.
async fn answer(
    handler: Arc<dyn EnvelopeHandler>,
    envelope: Envelope,
    out: mpsc::UnboundedSender<Message>,
) {
    let id = envelope.id.clone();
    let accepts = envelope.accepts_response_payload;
    let mut work = tokio::spawn(async move { handler.handle(envelope).await });
    let payload = match tokio::time::timeout(ANSWER_BUDGET, &mut work).await {
        Ok(Ok(Ok(payload))) => payload.filter(|_| accepts),
        Ok(Ok(Err(e))) => {
            tracing::error!(envelope_id = %id, error = %format!("{e:#}"), "a Socket Mode envelope failed; left for Slack to deliver again");
            return;
        }
        Ok(Err(panicked)) => {
            tracing::error!(envelope_id = %id, error = %panicked, "a Socket Mode handler panicked");
            return;
        }
        Err(_) => {
            tracing::warn!(envelope_id = %id, "a Socket Mode envelope took longer than its answer budget; acknowledged without an answer");
            None
        }
    };
    let _ = out.send(Message::Text(ack_frame(&id, payload.as_ref()).into()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_hello_and_disconnect_frames_are_read() {
        let text = r#"{"envelope_id":"e-1","type":"slash_commands","payload":{"text":"help"},
            "accepts_response_payload":true,"retry_attempt":2,"retry_reason":"timeout"}"#;
        let Frame::Envelope(envelope) = parse_frame(text).unwrap() else {
            panic!("an envelope")
        };
        assert_eq!(envelope.id, "e-1");
        assert_eq!(envelope.kind, EnvelopeKind::SlashCommands);
        assert_eq!(envelope.payload["text"], "help");
        assert!(envelope.accepts_response_payload);
        assert_eq!(
            (envelope.retry_attempt, envelope.retry_reason.as_str()),
            (2, "timeout")
        );
        assert_eq!(
            parse_frame(
                r#"{"type":"hello","num_connections":2,"connection_info":{"app_id":"A1"}}"#
            )
            .unwrap(),
            Frame::Hello {
                num_connections: Some(2)
            }
        );
        assert_eq!(
            parse_frame(r#"{"type":"disconnect","reason":"refresh_requested","debug_info":{}}"#)
                .unwrap(),
            Frame::Disconnect {
                reason: "refresh_requested".into()
            }
        );
        assert!(parse_frame(r#"{"type":"interactive","payload":{}}"#).is_err());
        assert!(parse_frame("not json").is_err());
    }

    #[test]
    fn an_acknowledgement_names_its_envelope_and_carries_the_answer_when_there_is_one() {
        let bare: Value = serde_json::from_str(&ack_frame("e-1", None)).unwrap();
        assert_eq!(bare, serde_json::json!({ "envelope_id": "e-1" }));
        let answer = serde_json::json!({ "text": "hi", "response_type": "ephemeral" });
        let full: Value = serde_json::from_str(&ack_frame("e-2", Some(&answer))).unwrap();
        assert_eq!(
            full,
            serde_json::json!({ "envelope_id": "e-2", "payload": answer })
        );
    }

    #[test]
    fn the_delivery_key_follows_the_payload_not_the_envelope() {
        let payload = serde_json::json!({ "trigger_id": "1.2.3", "text": "20m" });
        let again = serde_json::json!({ "text": "20m", "trigger_id": "1.2.3" });
        assert_eq!(delivery_key(&payload), delivery_key(&again));
        let other = serde_json::json!({ "trigger_id": "1.2.4", "text": "20m" });
        assert_ne!(delivery_key(&payload), delivery_key(&other));
        assert!(delivery_key(&payload).starts_with("slack-socket:"));
    }

    #[test]
    fn reconnections_back_off_exponentially_with_jitter_up_to_the_cap() {
        assert_eq!(backoff_delay(1, 0.0), BACKOFF_BASE);
        assert_eq!(backoff_delay(1, 1.0), BACKOFF_BASE / 2);
        assert_eq!(backoff_delay(2, 0.0), BACKOFF_BASE * 2);
        assert_eq!(backoff_delay(4, 0.0), BACKOFF_BASE * 8);
        assert_eq!(backoff_delay(30, 0.0), BACKOFF_CAP);
        assert_eq!(backoff_delay(u32::MAX, 0.5), BACKOFF_CAP.mul_f64(0.75));
        for attempt in 1..40 {
            let (low, high) = (backoff_delay(attempt, 1.0), backoff_delay(attempt, 0.0));
            assert!(low * 2 == high && high <= BACKOFF_CAP, "attempt {attempt}");
        }
    }

    #[test]
    fn only_secure_websocket_urls_are_followed_except_on_loopback() {
        assert!(check_socket_url("wss://wss-primary.slack.com/link/?ticket=t&app_id=A").is_ok());
        assert!(check_socket_url("ws://127.0.0.1:9/link/?ticket=t").is_ok());
        assert!(check_socket_url("ws://wss-primary.slack.com/link/?ticket=t").is_err());
        assert!(check_socket_url("https://slack.com/").is_err());
    }
}
