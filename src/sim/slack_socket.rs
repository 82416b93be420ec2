//! Slack's Socket Mode side, as strict as Slack: `apps.connections.open`
//! (served by the fake Web API, [`super::slack::FakeSlack`]) accepts only
//! the app-level token it knows, in the `Authorization` header or as the
//! `token` parameter (`not_authed` without one, `not_allowed_token_type`
//! for a bot or user token, `invalid_auth` for any other), and answers a single-use
//! `ws://…/link/?ticket=…&app_id=…` URL; a ticket used twice, or never
//! issued, is refused at the WebSocket handshake. Every socket is greeted
//! with `hello`, then gets envelopes in turn with the other open sockets
//! (none after its `disconnect` notice).
//!
//! Each envelope must be acknowledged within [`ACK_TIMEOUT`] with its
//! `envelope_id`, on any of the app's sockets; an answer (`payload`) only
//! where `accepts_response_payload` said so, and then a message Block Kit
//! accepts. Only Events API deliveries (`events_api`) are retried, as Slack
//! documents retries for events alone: what is not acknowledged in time
//! is delivered again with `retry_attempt` + 1 and `retry_reason`
//! `timeout`, to another socket where there is one, up to three times.
//! Each attempt has an `envelope_id` of its own (Slack does not promise to
//! keep it), so the bot must recognise a copy by its content. A slash
//! command or a click that is not acknowledged in time is not sent again:
//! the person saw an error. Without an open socket, an event waits for
//! one (Slack's later retries), while a command or a click fails at once
//! ([`dispatch_failed`]; the person sees `dispatch_failed`). A socket told
//! to leave still gets deliveries while it is the only one open.
//! Whatever breaks these rules (an unknown or repeated `envelope_id`, a
//! late or missing acknowledgement, an answer where none is accepted or
//! one Block Kit refuses, a frame that is not JSON) is recorded in
//! [`problems`], which tests assert to be empty.
//!
//! [`problems`]: FakeSocketMode::problems
//! [`dispatch_failed`]: FakeSocketMode::dispatch_failed

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;

use super::slack::APP_ID;

/// The app-level token the simulations use.
pub const APP_TOKEN: &str = "xapp-1-A0TEMPADMIN-1700000000000-simulated";

/// Slack's limit for acknowledging an envelope.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(3);

/// Slack gives up on a delivery after this many retries.
const MAX_RETRIES: u32 = 3;

/// A running Socket Mode side; clones share the same state.
#[derive(Clone, Debug)]
pub struct FakeSocketMode {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

/// One acknowledgement as the fake received it.
#[derive(Clone, Debug, PartialEq)]
pub struct Ack {
    /// The delivery's id (its first envelope's `envelope_id`).
    pub delivery: String,
    /// The `payload` the acknowledgement carried.
    pub payload: Option<Value>,
    /// From sending the acknowledged attempt to its acknowledgement.
    pub latency: Duration,
    /// When the acknowledgement arrived.
    pub received_at: Instant,
    /// Which socket carried it.
    pub connection: u64,
    /// The `retry_attempt` that was acknowledged (0: the first delivery).
    pub retry_attempt: u32,
}

/// One envelope as it was sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Sent {
    /// The delivery's id.
    pub delivery: String,
    /// This attempt's `envelope_id`.
    pub envelope_id: String,
    /// `slash_commands`, `interactive` or `events_api`.
    pub kind: String,
    /// The socket it went to.
    pub connection: u64,
    /// 0 for the first delivery.
    pub retry_attempt: u32,
}

/// Who ended a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClosedBy {
    /// The bot sent the close frame.
    Bot,
    /// The fake closed it (after a `disconnect` notice, or [`FakeSocketMode::close`]).
    Slack,
    /// Cut without a close frame ([`FakeSocketMode::drop_connection`]).
    Dropped,
}

/// One socket's life.
#[derive(Clone, Debug, PartialEq)]
pub struct SocketLife {
    /// The socket.
    pub connection: u64,
    /// When its handshake completed.
    pub opened_at: Instant,
    /// When it ended, and who ended it.
    pub closed: Option<(Instant, ClosedBy)>,
}

#[derive(Debug)]
struct Connection {
    out: mpsc::UnboundedSender<Message>,
    /// The fake sent a close frame.
    closing: bool,
    /// A `disconnect` notice went out: no more envelopes.
    leaving: bool,
    /// Cuts the TCP connection without a close frame.
    kill: Option<oneshot::Sender<()>>,
}

/// A delivery not yet acknowledged.
#[derive(Debug, Clone)]
struct Delivery {
    kind: String,
    payload: Value,
    accepts_response_payload: bool,
    retry_attempt: u32,
    /// The socket of the latest attempt, and when it went.
    connection: Option<u64>,
    sent_at: Instant,
}

#[derive(Debug)]
struct Inner {
    app_token: String,
    /// Issued tickets, `true` once used.
    tickets: HashMap<String, bool>,
    connections: BTreeMap<u64, Connection>,
    next_connection: u64,
    opened: usize,
    refused_handshakes: usize,
    /// Event deliveries waiting for a socket.
    queue: VecDeque<String>,
    /// Commands and clicks that found no socket.
    dispatch_failed: Vec<String>,
    /// By delivery id.
    deliveries: HashMap<String, Delivery>,
    /// The attempt each `envelope_id` belongs to: (delivery, retry_attempt).
    envelopes: HashMap<String, (String, u32)>,
    acks: HashMap<String, Ack>,
    waiters: HashMap<String, Vec<oneshot::Sender<Ack>>>,
    sent: Vec<Sent>,
    lives: Vec<SocketLife>,
    problems: Vec<String>,
    lose_acks: usize,
    ack_timeout: Duration,
    turn: usize,
}

impl FakeSocketMode {
    /// Binds `127.0.0.1:0` for the sockets and accepts `app_token` at
    /// `apps.connections.open`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(app_token: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the fake Socket Mode");
        let addr = listener.local_addr().expect("local address of the fake");
        let fake = Self {
            addr,
            inner: Arc::new(Mutex::new(Inner {
                app_token: app_token.to_owned(),
                tickets: HashMap::new(),
                connections: BTreeMap::new(),
                next_connection: 0,
                opened: 0,
                refused_handshakes: 0,
                queue: VecDeque::new(),
                dispatch_failed: Vec::new(),
                deliveries: HashMap::new(),
                envelopes: HashMap::new(),
                acks: HashMap::new(),
                waiters: HashMap::new(),
                sent: Vec::new(),
                lives: Vec::new(),
                problems: Vec::new(),
                lose_acks: 0,
                ack_timeout: ACK_TIMEOUT,
                turn: 0,
            })),
        };
        let accepting = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(accepting.clone().serve(stream));
            }
        });
        fake
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `apps.connections.open` as Slack answers it, for the request's
    /// token (from the `Authorization` header or the `token` parameter).
    pub fn open_connection(&self, token: Option<&str>) -> Value {
        let Some(token) = token else {
            return failed("not_authed");
        };
        let mut inner = self.lock();
        if token.starts_with("xoxb-") || token.starts_with("xoxp-") {
            return failed("not_allowed_token_type");
        }
        if token != inner.app_token {
            return failed("invalid_auth");
        }
        let ticket = format!("{:032x}", rand::random::<u128>());
        inner.tickets.insert(ticket.clone(), false);
        json!({
            "ok": true,
            "url": format!("ws://{}/link/?ticket={ticket}&app_id={APP_ID}", self.addr),
        })
    }

    /// The id of every open socket, oldest first.
    pub fn connections(&self) -> Vec<u64> {
        self.lock().connections.keys().copied().collect()
    }

    /// How many sockets were ever accepted.
    pub fn connections_opened(&self) -> usize {
        self.lock().opened
    }

    /// Handshakes refused for a missing, unknown or used ticket.
    pub fn refused_handshakes(&self) -> usize {
        self.lock().refused_handshakes
    }

    /// Waits (polling, at most `patience`) until `count` sockets are open
    /// that have not been told to leave; `false` if they never are.
    pub async fn wait_for_connections(&self, count: usize, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        loop {
            let ready = self
                .lock()
                .connections
                .values()
                .filter(|c| !c.leaving)
                .count();
            if ready >= count {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every socket's life so far, oldest first.
    pub fn lives(&self) -> Vec<SocketLife> {
        self.lock().lives.clone()
    }

    /// Every envelope sent, retries included, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    /// Every way the bot broke the protocol so far.
    pub fn problems(&self) -> Vec<String> {
        self.lock().problems.clone()
    }

    /// The next `count` acknowledgements are lost on their way, as on a
    /// network that fails: the fake delivers those envelopes again.
    pub fn lose_acks(&self, count: usize) {
        self.lock().lose_acks = count;
    }

    /// Changes how long an acknowledgement may take before the envelope is
    /// sent again (Slack's is [`ACK_TIMEOUT`]).
    pub fn set_ack_timeout(&self, timeout: Duration) {
        self.lock().ack_timeout = timeout;
    }

    /// Sends a `slash_commands` envelope with `payload` (the command's
    /// fields as JSON); returns the delivery's id.
    pub fn send_slash_command(&self, payload: Value) -> String {
        self.send("slash_commands", payload, true)
    }

    /// Sends an `interactive` envelope (a `block_actions` payload, which
    /// accepts no answer); returns the delivery's id.
    pub fn send_interactive(&self, payload: Value) -> String {
        self.send("interactive", payload, false)
    }

    /// Sends an `events_api` envelope (an `event_callback`); returns the
    /// delivery's id.
    pub fn send_event(&self, payload: Value) -> String {
        self.send("events_api", payload, false)
    }

    /// Sends a new delivery to the next socket in turn (see [`Self::dispatch`]).
    pub fn send(&self, kind: &str, payload: Value, accepts_response_payload: bool) -> String {
        let id = envelope_id();
        let mut inner = self.lock();
        inner.deliveries.insert(
            id.clone(),
            Delivery {
                kind: kind.to_owned(),
                payload,
                accepts_response_payload,
                retry_attempt: 0,
                connection: None,
                sent_at: Instant::now(),
            },
        );
        self.dispatch(&mut inner, &id, id.clone(), None);
        id
    }

    /// The commands and clicks that found no open socket, by delivery id.
    pub fn dispatch_failed(&self) -> Vec<String> {
        self.lock().dispatch_failed.clone()
    }

    /// The acknowledgement of `delivery`, once it arrives (at most
    /// `patience`); `None` at once when none will (a command or click
    /// that failed or expired).
    pub async fn ack(&self, delivery: &str, patience: Duration) -> Option<Ack> {
        let waiting = {
            let mut inner = self.lock();
            if let Some(ack) = inner.acks.get(delivery) {
                return Some(ack.clone());
            }
            if !inner.deliveries.contains_key(delivery) {
                return None;
            }
            let (tx, rx) = oneshot::channel();
            inner
                .waiters
                .entry(delivery.to_owned())
                .or_default()
                .push(tx);
            rx
        };
        tokio::time::timeout(patience, waiting).await.ok()?.ok()
    }

    /// Every acknowledgement so far, by delivery.
    pub fn acks(&self) -> HashMap<String, Ack> {
        self.lock().acks.clone()
    }

    /// Sends `{"type":"disconnect","reason":…}` on socket `connection`
    /// (no envelopes go to it afterwards) and closes it `grace` later, as
    /// Slack does before a refresh.
    pub fn disconnect(&self, connection: u64, reason: &str, grace: Duration) {
        let frame = json!({
            "type": "disconnect",
            "reason": reason,
            "debug_info": { "host": "applink-sim" }
        });
        {
            let mut inner = self.lock();
            let Some(socket) = inner.connections.get_mut(&connection) else {
                return;
            };
            socket.leaving = true;
            let _ = socket.out.send(Message::Text(frame.to_string().into()));
        }
        let fake = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            fake.close(connection);
        });
    }

    /// Closes socket `connection` with a close frame.
    pub fn close(&self, connection: u64) {
        if let Some(socket) = self.lock().connections.get_mut(&connection) {
            socket.closing = true;
            let _ = socket.out.send(Message::Close(None));
        }
    }

    /// Cuts socket `connection` without a close frame, as a network that
    /// drops it.
    pub fn drop_connection(&self, connection: u64) {
        let kill = self
            .lock()
            .connections
            .get_mut(&connection)
            .and_then(|c| c.kill.take());
        if let Some(kill) = kill {
            let _ = kill.send(());
        }
    }

    /// Sends attempt `retry_attempt` of `delivery` to a socket, one not
    /// told to leave first, avoiding `avoid` when another is open. With
    /// none open, an event waits; a command or a click fails.
    fn dispatch(&self, inner: &mut Inner, delivery: &str, envelope_id: String, avoid: Option<u64>) {
        let staying: Vec<u64> = inner
            .connections
            .iter()
            .filter(|(_, c)| !c.leaving)
            .map(|(id, _)| *id)
            .collect();
        let open: Vec<u64> = if staying.is_empty() {
            inner.connections.keys().copied().collect()
        } else {
            staying
        };
        let preferred: Vec<u64> = open.iter().copied().filter(|c| Some(*c) != avoid).collect();
        let choice = if preferred.is_empty() {
            &open
        } else {
            &preferred
        };
        let Some(&connection) = choice.get(inner.turn % choice.len().max(1)) else {
            let is_event = inner
                .deliveries
                .get(delivery)
                .is_some_and(|d| d.kind == "events_api");
            if is_event {
                inner.queue.push_back(delivery.to_owned());
            } else {
                // Its waiters learn that no acknowledgement will come.
                inner.deliveries.remove(delivery);
                inner.waiters.remove(delivery);
                inner.dispatch_failed.push(delivery.to_owned());
            }
            return;
        };
        inner.turn = inner.turn.wrapping_add(1);
        let Some(d) = inner.deliveries.get_mut(delivery) else {
            return;
        };
        d.connection = Some(connection);
        d.sent_at = Instant::now();
        let retry_attempt = d.retry_attempt;
        let frame = json!({
            "envelope_id": envelope_id,
            "type": d.kind,
            "payload": d.payload,
            "accepts_response_payload": d.accepts_response_payload,
            "retry_attempt": retry_attempt,
            "retry_reason": if retry_attempt > 0 { "timeout" } else { "" },
        });
        let kind = d.kind.clone();
        inner
            .envelopes
            .insert(envelope_id.clone(), (delivery.to_owned(), retry_attempt));
        inner.sent.push(Sent {
            delivery: delivery.to_owned(),
            envelope_id,
            kind,
            connection,
            retry_attempt,
        });
        if let Some(socket) = inner.connections.get(&connection) {
            let _ = socket.out.send(Message::Text(frame.to_string().into()));
        }
        let (fake, delivery, timeout) = (self.clone(), delivery.to_owned(), inner.ack_timeout);
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            fake.expire(&delivery, retry_attempt);
        });
    }

    /// Attempt `retry_attempt` of `delivery` was not acknowledged in time:
    /// the next attempt goes out, or the delivery is given up.
    fn expire(&self, delivery: &str, retry_attempt: u32) {
        let mut inner = self.lock();
        let Some(d) = inner.deliveries.get_mut(delivery) else {
            return;
        };
        if d.retry_attempt != retry_attempt {
            return;
        }
        if d.kind != "events_api" {
            let kind = d.kind.clone();
            inner.deliveries.remove(delivery);
            inner.waiters.remove(delivery);
            inner.problems.push(format!(
                "{kind} delivery {delivery} not acknowledged in time: the person saw an error, \
                 and Slack does not send it again"
            ));
            return;
        }
        if retry_attempt >= MAX_RETRIES {
            inner.deliveries.remove(delivery);
            inner.waiters.remove(delivery);
            inner
                .problems
                .push(format!("delivery {delivery} was never acknowledged"));
            return;
        }
        d.retry_attempt += 1;
        let avoid = d.connection;
        self.dispatch(&mut inner, delivery, envelope_id(), avoid);
    }

    /// One text frame from the bot: an acknowledgement.
    fn on_frame(&self, connection: u64, text: &str) {
        let received_at = Instant::now();
        let mut inner = self.lock();
        let Ok(Value::Object(frame)) = serde_json::from_str::<Value>(text) else {
            inner.problems.push(format!("not a JSON object: {text}"));
            return;
        };
        let Some(envelope_id) = frame.get("envelope_id").and_then(Value::as_str) else {
            inner
                .problems
                .push(format!("a frame without envelope_id: {text}"));
            return;
        };
        let Some((delivery, attempt)) = inner.envelopes.get(envelope_id).cloned() else {
            inner.problems.push(format!(
                "an acknowledgement of unknown envelope {envelope_id}"
            ));
            return;
        };
        if inner.lose_acks > 0 {
            inner.lose_acks -= 1;
            return;
        }
        let Some(d) = inner.deliveries.get(&delivery).cloned() else {
            inner.problems.push(format!(
                "an acknowledgement of envelope {envelope_id} after it was acknowledged or given up"
            ));
            return;
        };
        if d.retry_attempt != attempt {
            inner.problems.push(format!(
                "envelope {envelope_id} acknowledged after Slack sent it again"
            ));
            return;
        }
        let latency = received_at.saturating_duration_since(d.sent_at);
        if latency > inner.ack_timeout {
            inner.problems.push(format!(
                "envelope {envelope_id} acknowledged after {latency:?}"
            ));
        }
        let payload = frame.get("payload").cloned();
        if payload.is_some() && !d.accepts_response_payload {
            inner.problems.push(format!(
                "envelope {envelope_id} answered with a payload, which it does not accept"
            ));
        }
        if let Some(answer) = &payload {
            // The answer is a message, as a slash command's HTTP answer.
            let has_content = answer.get("text").is_some() || answer.get("blocks").is_some();
            if !answer.is_object() || !has_content {
                inner.problems.push(format!(
                    "envelope {envelope_id} answered with no message: {answer}"
                ));
            }
            if let Some(blocks) = answer.get("blocks") {
                for problem in super::block_kit::problems(blocks) {
                    inner.problems.push(format!(
                        "envelope {envelope_id}'s answer: invalid_blocks: {problem}"
                    ));
                }
            }
        }
        inner.deliveries.remove(&delivery);
        let ack = Ack {
            delivery: delivery.clone(),
            payload,
            latency,
            received_at,
            connection,
            retry_attempt: attempt,
        };
        inner.acks.insert(delivery.clone(), ack.clone());
        for waiter in inner.waiters.remove(&delivery).unwrap_or_default() {
            let _ = waiter.send(ack.clone());
        }
    }

    /// One socket, from its handshake to its end.
    // The handshake callback's result type is tungstenite's.
    #[allow(clippy::result_large_err)]
    async fn serve(self, stream: tokio::net::TcpStream) {
        let check = self.clone();
        let handshake = tokio_tungstenite::accept_hdr_async(
            stream,
            move |request: &Request, response: Response| check.admit(request, response),
        )
        .await;
        let Ok(socket) = handshake else {
            return;
        };
        let (out, mut outgoing) = mpsc::unbounded_channel::<Message>();
        let (kill, killed) = oneshot::channel::<()>();
        let id = {
            let mut inner = self.lock();
            inner.next_connection += 1;
            inner.opened += 1;
            let id = inner.next_connection;
            inner.connections.insert(
                id,
                Connection {
                    out: out.clone(),
                    closing: false,
                    leaving: false,
                    kill: Some(kill),
                },
            );
            let hello = json!({
                "type": "hello",
                "num_connections": inner.connections.len(),
                "debug_info": { "host": "applink-sim", "build_number": 1, "approximate_connection_time": 18060 },
                "connection_info": { "app_id": APP_ID }
            });
            let _ = out.send(Message::Text(hello.to_string().into()));
            inner.lives.push(SocketLife {
                connection: id,
                opened_at: Instant::now(),
                closed: None,
            });
            // What waited for a socket goes out now.
            let queued: Vec<String> = inner.queue.drain(..).collect();
            for delivery in queued {
                self.dispatch(&mut inner, &delivery, envelope_id(), None);
            }
            id
        };
        let (mut sink, mut stream) = socket.split();
        let writer = tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                let closing = matches!(message, Message::Close(_));
                if sink.send(message).await.is_err() || closing {
                    break;
                }
            }
            sink
        });
        let reader = async {
            while let Some(frame) = stream.next().await {
                match frame {
                    Ok(Message::Text(text)) => self.on_frame(id, text.as_str()),
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(Message::Binary(_)) => self
                        .lock()
                        .problems
                        .push("a binary frame, which Socket Mode does not use".into()),
                    Ok(_) => {}
                }
            }
        };
        tokio::select! {
            () = reader => {}
            _ = killed => {
                writer.abort();
                self.ended(id, ClosedBy::Dropped);
                return;
            }
        }
        let by_slack = self.lock().connections.get(&id).is_some_and(|c| c.closing);
        self.ended(
            id,
            if by_slack {
                ClosedBy::Slack
            } else {
                ClosedBy::Bot
            },
        );
        drop(out);
        if let Ok(mut sink) = writer.await {
            let _ = sink.close().await;
        }
    }

    fn ended(&self, connection: u64, by: ClosedBy) {
        let mut inner = self.lock();
        inner.connections.remove(&connection);
        if let Some(life) = inner.lives.iter_mut().find(|l| l.connection == connection) {
            life.closed = Some((Instant::now(), by));
        }
    }

    /// The handshake's check: the path Slack uses and a ticket it issued
    /// and nobody used.
    #[allow(clippy::result_large_err)] // tungstenite's callback type
    fn admit(&self, request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        let uri = request.uri();
        let ticket = uri.query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "ticket")
                .map(|(_, v)| v.into_owned())
        });
        let mut inner = self.lock();
        let fresh = uri.path() == "/link/"
            && ticket
                .as_ref()
                .and_then(|t| inner.tickets.get_mut(t))
                .is_some_and(|used| !std::mem::replace(used, true));
        if fresh {
            return Ok(response);
        }
        inner.refused_handshakes += 1;
        let mut refusal = ErrorResponse::new(Some("invalid or used ticket".into()));
        *refusal.status_mut() = StatusCode::UNAUTHORIZED;
        Err(refusal)
    }
}

/// An envelope id in Slack's form (a UUID).
fn envelope_id() -> String {
    let n = rand::random::<u128>();
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn failed(error: &str) -> Value {
    json!({ "ok": false, "error": error })
}
