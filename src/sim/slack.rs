//! Fake Slack Web API: a loopback HTTP server that simulates the Slack methods
//! tempadmin calls (`auth.test`, `bots.info`, `users.info`, `usergroups.users.list`,
//! `conversations.info`, `chat.postMessage` (a user id as `channel` posts
//! into the app's DM with that person), `chat.update`, `chat.getPermalink`,
//! `views.publish` (a user's Home tab, kept per user); also
//! `conversations.open`, which tempadmin does not call, so a test can see
//! that it never does) and the
//! `response_url` that interactive payloads carry. It follows the shapes in
//! Slack's API documentation: methods live at `{api_url}/{method}`, the bot
//! token comes as `Authorization: Bearer xoxb-…`, GET methods take query
//! strings and POST methods JSON or form bodies, errors are HTTP 200 with
//! `{"ok":false,"error":"…"}`, rate limiting is HTTP 429 with `Retry-After`,
//! and every Web API answer is `application/json`; a `response_url` answers
//! like an incoming webhook, `200` with the body `ok` as `text/html`, and
//! errors as a bare word under a 4xx status. The read methods need their
//! scopes ([`SCOPES`]; a test can take one away, [`FakeSlack::remove_scope`])
//! and answer `missing_scope` with `needed` and `provided` without them.
//! Channels the bot knows of can be described ([`FakeSlack::add_channel`];
//! the approvals channel exists from the start, with the bot in it): a
//! private channel the bot is not in is `channel_not_found`, as for a bot
//! token it is. Every call is recorded ([`FakeSlack::write_calls`] picks
//! those that change something), posted messages keep their edit history,
//! a broadcast feed reports changes live, and outages and rate limiting can
//! be injected. With Socket Mode enabled
//! ([`FakeSlack::enable_socket_mode`]), `apps.connections.open` answers for
//! [`super::slack_socket`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use super::block_kit;
use super::slack_socket::FakeSocketMode;

/// The workspace the simulated bot token belongs to (`auth.test`).
pub const TEAM_ID: &str = "T0SIM";
/// The simulated app (`bots.info` → `app_id`; `api_app_id` in payloads).
pub const APP_ID: &str = "A0TEMPADMIN";
/// The simulated bot (`auth.test` → `bot_id`).
pub const BOT_ID: &str = "B0BOT";
/// The simulated bot's user (`auth.test` → `user_id`).
pub const BOT_USER_ID: &str = "U0BOT";

/// The bot scopes the simulated app was installed with (the manifest's).
pub const SCOPES: [&str; 7] = [
    "commands",
    "chat:write",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "channels:read",
    "groups:read",
];

/// The Web API methods that change nothing; any other call counts as a
/// write ([`FakeSlack::write_calls`]).
const READ_METHODS: [&str; 7] = [
    "auth.test",
    "bots.info",
    "users.info",
    "usergroups.users.list",
    "conversations.info",
    "chat.getPermalink",
    // A connection URL nobody connects to lapses.
    "apps.connections.open",
];

/// A channel as `conversations.info` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimChannel {
    /// Its name, without `#`.
    pub name: String,
    /// A private channel: invisible to a bot that is not a member.
    pub private: bool,
    /// Archived.
    pub archived: bool,
    /// Whether the bot is a member.
    pub bot_member: bool,
}

/// A message posted through `chat.postMessage`, as it currently stands.
#[derive(Clone, Debug, PartialEq)]
pub struct SimMessage {
    /// Channel id (a user id given as channel is stored as that user's DM id).
    pub channel: String,
    /// Message timestamp assigned by the fake, e.g. `1700000000.000100`.
    pub ts: String,
    /// Parent message `ts` for thread replies.
    pub thread_ts: Option<String>,
    /// Current text (empty when the message has only blocks).
    pub text: String,
    /// Current blocks (`Null` when the message has none).
    pub blocks: Value,
    /// Every request body that shaped the message, oldest first: the post, then each `chat.update`.
    pub history: Vec<Value>,
}

/// A message POSTed to a `response_url`.
#[derive(Clone, Debug, PartialEq)]
pub struct SimResponse {
    /// The `{id}` of `/respond/{id}`.
    pub url_id: String,
    /// The JSON body sent.
    pub body: Value,
}

/// One request as the fake received it.
#[derive(Clone, Debug, PartialEq)]
pub struct SlackCall {
    /// Web API method (e.g. `chat.postMessage`), or `response_url`.
    pub method: String,
    /// Query and body parameters merged into one JSON object (the `token` parameter excluded).
    pub params: Value,
    /// The bearer token (or `token` parameter) the call carried.
    pub token: Option<String>,
}

/// A change to the fake's messages, as published by [`FakeSlack::subscribe`].
#[derive(Clone, Debug, PartialEq)]
pub enum SimEvent {
    /// A message was posted.
    Posted(SimMessage),
    /// A message was changed by `chat.update`.
    Updated(SimMessage),
    /// A `response_url` received a message.
    Responded(SimResponse),
}

/// A running fake Slack server; clones share the same state.
#[derive(Clone, Debug)]
pub struct FakeSlack {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<SimEvent>,
}

#[derive(Debug)]
struct SimUser {
    name: String,
    email: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    bot_token: String,
    users: BTreeMap<String, SimUser>,
    usergroups: BTreeMap<String, Vec<String>>,
    messages: Vec<SimMessage>,
    responses: Vec<SimResponse>,
    calls: Vec<SlackCall>,
    down: bool,
    hanging: bool,
    rate_limited: usize,
    retry_after_secs: u64,
    redirects: Vec<(StatusCode, String)>,
    last_ts: u64,
    closed_channels: BTreeMap<String, String>,
    /// Channels `conversations.info` knows.
    channels: BTreeMap<String, SimChannel>,
    /// Scopes of [`SCOPES`] taken away.
    removed_scopes: Vec<String>,
    /// Each user's Home tab as last published, with the view id it got.
    home_views: BTreeMap<String, (String, Value)>,
    /// Every Home tab published, `(user, view)`, in order.
    published: Vec<(String, Value)>,
    socket: Option<FakeSocketMode>,
}

impl Inner {
    /// The conversation a `channel` argument names. A user id means the
    /// app's DM with that person, as in Slack's `chat.postMessage`; a user id
    /// or DM id of nobody in the workspace names nothing. Channels (`C…`,
    /// `G…`) are taken as given; those described with
    /// [`FakeSlack::add_channel`] refuse a post as Slack would.
    fn resolve_channel(&self, channel: &str) -> Option<String> {
        if channel.starts_with(['U', 'W']) {
            return self
                .users
                .contains_key(channel)
                .then(|| dm_channel(channel));
        }
        if channel.starts_with('D') {
            return self
                .users
                .keys()
                .any(|user| dm_channel(user) == channel)
                .then(|| channel.to_owned());
        }
        Some(channel.to_owned())
    }

    /// `missing_scope`, as Slack answers it, unless the app has `scope`.
    fn lacks(&self, scope: &str) -> Option<Value> {
        let removed = self.removed_scopes.iter().any(|s| s == scope);
        if SCOPES.contains(&scope) && !removed {
            return None;
        }
        let provided: Vec<&str> = SCOPES
            .iter()
            .copied()
            .filter(|s| !self.removed_scopes.iter().any(|r| r == s))
            .collect();
        Some(json!({
            "ok": false,
            "error": "missing_scope",
            "needed": scope,
            "provided": provided.join(","),
        }))
    }

    fn next_ts(&mut self) -> String {
        self.last_ts += 1;
        let micros = 1_700_000_000_000_000 + self.last_ts * 100;
        format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }
}

impl FakeSlack {
    /// Binds `127.0.0.1:0`, serves the fake on a tokio task and accepts `bot_token`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(bot_token: &str) -> FakeSlack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the fake Slack");
        let addr = listener.local_addr().expect("local address of the fake");
        let (events, _) = broadcast::channel(1024);
        let fake = FakeSlack {
            addr,
            inner: Arc::new(Mutex::new(Inner {
                bot_token: bot_token.to_owned(),
                channels: BTreeMap::from([(
                    super::APPROVALS_CHANNEL.to_owned(),
                    SimChannel {
                        name: "tempadmin-approvals".into(),
                        private: false,
                        archived: false,
                        bot_member: true,
                    },
                )]),
                ..Inner::default()
            })),
            events,
        };
        let app = Router::new().fallback(handle).with_state(fake.clone());
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "fake Slack server stopped");
            }
        });
        fake
    }

    /// Web API base URL, `http://127.0.0.1:PORT/api/` (with a trailing slash).
    pub fn api_url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    /// The bot token this fake accepts.
    pub fn bot_token(&self) -> String {
        self.lock().bot_token.clone()
    }

    /// Turns Socket Mode on for the app, with `app_token` as its
    /// app-level token: `apps.connections.open` then answers socket URLs.
    pub async fn enable_socket_mode(&self, app_token: &str) -> FakeSocketMode {
        let socket = FakeSocketMode::start(app_token).await;
        self.lock().socket = Some(socket.clone());
        socket
    }

    /// A `response_url` that records the JSON messages POSTed to it under `id`.
    pub fn response_url(&self, id: &str) -> String {
        format!("http://{}/respond/{id}", self.addr)
    }

    /// Adds (or replaces) a workspace user.
    pub fn add_user(&self, id: &str, name: &str, email: Option<&str>) {
        self.lock().users.insert(
            id.to_owned(),
            SimUser {
                name: name.to_owned(),
                email: email.map(str::to_owned),
            },
        );
    }

    /// The id of the app's direct-message conversation with `user`, where a
    /// `chat.postMessage` to that user id lands.
    pub fn dm_channel(&self, user: &str) -> String {
        dm_channel(user)
    }

    /// Adds (or replaces) a user group with its members.
    pub fn add_usergroup(&self, id: &str, members: &[&str]) {
        let members = members.iter().map(|m| (*m).to_owned()).collect();
        self.lock().usergroups.insert(id.to_owned(), members);
    }

    /// The current state of every posted message (thread replies included), in post order.
    pub fn messages(&self) -> Vec<SimMessage> {
        self.lock().messages.clone()
    }

    /// The replies in `channel` whose `thread_ts` is `ts`, in post order.
    pub fn thread(&self, channel: &str, ts: &str) -> Vec<SimMessage> {
        let inner = self.lock();
        let channel = inner
            .resolve_channel(channel)
            .unwrap_or_else(|| channel.to_owned());
        inner
            .messages
            .iter()
            .filter(|m| m.channel == channel && m.thread_ts.as_deref() == Some(ts))
            .cloned()
            .collect()
    }

    /// Every message POSTed to a `response_url`, in order.
    pub fn responses(&self) -> Vec<SimResponse> {
        self.lock().responses.clone()
    }

    /// Every call received so far (rejected ones included), in arrival order.
    pub fn calls(&self) -> Vec<SlackCall> {
        self.lock().calls.clone()
    }

    /// A live feed of posted, updated and responded messages.
    pub fn subscribe(&self) -> broadcast::Receiver<SimEvent> {
        self.events.subscribe()
    }

    /// While down, every request (the `response_url` too) is answered HTTP 503.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// While hanging, every request is accepted and never answered, like a
    /// service stuck behind a load balancer.
    pub fn set_hanging(&self, hanging: bool) {
        self.lock().hanging = hanging;
    }

    /// The next `times` Web API calls are answered 429 with `Retry-After: retry_after_secs`.
    pub fn rate_limit_next(&self, times: usize, retry_after_secs: u64) {
        let mut inner = self.lock();
        inner.rate_limited = times;
        inner.retry_after_secs = retry_after_secs;
    }

    /// The next Web API calls are answered with a redirect (`status`, e.g.
    /// 302) to `location`, one per call, as a misbehaving proxy might.
    pub fn redirect_next(&self, status: u16, location: &str) {
        let status = StatusCode::from_u16(status).expect("a status code");
        self.lock().redirects.push((status, location.to_owned()));
    }

    /// Adds (or replaces) a channel that `conversations.info` describes.
    pub fn add_channel(&self, id: &str, channel: SimChannel) {
        self.lock().channels.insert(id.to_owned(), channel);
    }

    /// Forgets a channel (a deleted one): `conversations.info` answers
    /// `channel_not_found`.
    pub fn remove_channel(&self, id: &str) {
        self.lock().channels.remove(id);
    }

    /// Installs the app without `scope`: the methods that need it answer
    /// `missing_scope`.
    pub fn remove_scope(&self, scope: &str) {
        self.lock().removed_scopes.push(scope.to_owned());
    }

    /// The calls that may have changed something: every call but those of
    /// the read methods (`auth.test`, `bots.info`, `users.info`,
    /// `usergroups.users.list`, `conversations.info`), so a posted message,
    /// an update, a `response_url` post or any unknown method counts.
    pub fn write_calls(&self) -> Vec<SlackCall> {
        self.lock()
            .calls
            .iter()
            .filter(|c| !READ_METHODS.contains(&c.method.as_str()))
            .cloned()
            .collect()
    }

    /// Posts to `channel` fail with `error` (e.g. `not_in_channel` when the
    /// bot was never invited), as Slack answers them.
    pub fn close_channel(&self, channel: &str, error: &str) {
        self.lock()
            .closed_channels
            .insert(channel.to_owned(), error.to_owned());
    }

    /// The Home tab `user` sees now: the view last published to them.
    pub fn home_view(&self, user: &str) -> Option<Value> {
        self.lock()
            .home_views
            .get(user)
            .map(|(_, view)| view.clone())
    }

    /// Every Home tab published, as `(user, view)`, in order.
    pub fn published_views(&self) -> Vec<(String, Value)> {
        self.lock().published.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, event: SimEvent) {
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }

    fn web_api(&self, method: &str, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Response {
        let (mut params, body_ok) = request_params(uri, headers, body);
        let token = bearer_token(headers).or_else(|| match params.remove("token") {
            Some(Value::String(token)) => Some(token),
            _ => None,
        });
        let params = Value::Object(params);
        let mut inner = self.lock();
        inner.calls.push(SlackCall {
            method: method.to_owned(),
            params: params.clone(),
            token: token.clone(),
        });
        if inner.down {
            return unavailable();
        }
        if !inner.redirects.is_empty() {
            let (status, location) = inner.redirects.remove(0);
            let mut response = status.into_response();
            if let Ok(location) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            return response;
        }
        if inner.rate_limited > 0 {
            inner.rate_limited -= 1;
            let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, failed("ratelimited"));
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(inner.retry_after_secs),
            );
            return response;
        }
        if method == "apps.connections.open" {
            // The app-level token, in the header or as a POST parameter,
            // like any Web API method's.
            return ok_json(match &inner.socket {
                Some(socket) => socket.open_connection(token.as_deref()),
                None => failed("invalid_auth"),
            });
        }
        if token.as_deref() != Some(inner.bot_token.as_str()) {
            return ok_json(failed("invalid_auth"));
        }
        if !body_ok {
            return ok_json(failed("invalid_json"));
        }
        let (answer, event) = match method {
            "auth.test" => (self.auth_test(), None),
            "bots.info" => (bots_info(&params), None),
            "users.info" => (users_info(&inner, &params), None),
            "usergroups.users.list" => (usergroup_members(&inner, &params), None),
            "conversations.info" => (conversation_info(&inner, &params), None),
            "conversations.open" => (open_conversation(&inner, &params), None),
            "chat.postMessage" => post_message(&mut inner, &params),
            "chat.update" => update_message(&mut inner, &params),
            "chat.getPermalink" => (permalink(&inner, &params), None),
            "views.publish" => publish_view(&mut inner, &params),
            _ => (failed("unknown_method"), None),
        };
        if let Some(event) = event {
            self.publish(event);
        }
        ok_json(answer)
    }

    fn respond(&self, url_id: &str, method: &Method, body: &Bytes) -> Response {
        let parsed = serde_json::from_slice::<Value>(body).ok();
        let mut inner = self.lock();
        inner.calls.push(SlackCall {
            method: "response_url".to_owned(),
            params: parsed.clone().unwrap_or(Value::Null),
            token: None,
        });
        if inner.down {
            return unavailable();
        }
        if method != Method::POST {
            return text_response(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        }
        let Some(body @ Value::Object(_)) = parsed else {
            return text_response(StatusCode::BAD_REQUEST, "invalid_payload");
        };
        if let Some(blocks) = body.get("blocks") {
            let problems = block_kit::problems(blocks);
            if !problems.is_empty() {
                tracing::debug!(?problems, "fake Slack: invalid_blocks at a response_url");
                return text_response(StatusCode::BAD_REQUEST, "invalid_blocks");
            }
        }
        let response = SimResponse {
            url_id: url_id.to_owned(),
            body,
        };
        inner.responses.push(response.clone());
        self.publish(SimEvent::Responded(response));
        text_response(StatusCode::OK, "ok")
    }

    fn auth_test(&self) -> Value {
        json!({
            "ok": true,
            "url": format!("http://{}/", self.addr),
            "team": "Sim",
            "user": "tempadmin",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": false,
        })
    }
}

async fn handle(
    State(fake): State<FakeSlack>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let hanging = fake.lock().hanging;
    if hanging {
        std::future::pending::<()>().await;
    }
    let path = uri.path();
    if let Some(id) = path.strip_prefix("/respond/") {
        return fake.respond(id, &method, &body);
    }
    match path.strip_prefix("/api/") {
        // A base URL ending in `/` joined with `/{method}` gives `/api//{method}`.
        Some(name) => fake.web_api(name.trim_start_matches('/'), &uri, &headers, &body),
        None => {
            fake.lock().calls.push(SlackCall {
                method: path.to_owned(),
                params: Value::Null,
                token: bearer_token(&headers),
            });
            json_response(StatusCode::NOT_FOUND, failed("not_found"))
        }
    }
}

/// `bots.info`: the bot named by `bot` (a bot id, `B…`), with the app it
/// belongs to, as Slack documents it; any other id is `bot_not_found`.
fn bots_info(params: &Value) -> Value {
    match str_param(params, "bot") {
        None => failed("missing_argument"),
        Some(BOT_ID) => json!({
            "ok": true,
            "bot": {
                "id": BOT_ID,
                "deleted": false,
                "name": "tempadmin",
                "updated": 1_700_000_000,
                "app_id": APP_ID,
                "user_id": BOT_USER_ID,
                "icons": {
                    "image_36": "https://a.slack-edge.com/80588/img/plugins/app/bot_36.png",
                    "image_48": "https://a.slack-edge.com/80588/img/plugins/app/bot_48.png",
                    "image_72": "https://a.slack-edge.com/80588/img/plugins/app/service_72.png"
                }
            }
        }),
        Some(_) => failed("bot_not_found"),
    }
}

fn users_info(inner: &Inner, params: &Value) -> Value {
    if let Some(refusal) = inner.lacks("users:read") {
        return refusal;
    }
    let Some((id, user)) = str_param(params, "user").and_then(|id| inner.users.get_key_value(id))
    else {
        return failed("user_not_found");
    };
    let mut profile = json!({ "real_name": user.name, "display_name": user.name });
    // Slack shows the email only to a token with users:read.email.
    if let (Some(email), None) = (&user.email, inner.lacks("users:read.email")) {
        profile["email"] = json!(email);
    }
    json!({
        "ok": true,
        "user": {
            "id": id,
            "team_id": TEAM_ID,
            "name": user.name,
            "real_name": user.name,
            "deleted": false,
            "is_bot": false,
            "profile": profile,
        },
    })
}

fn usergroup_members(inner: &Inner, params: &Value) -> Value {
    if let Some(refusal) = inner.lacks("usergroups:read") {
        return refusal;
    }
    match str_param(params, "usergroup").and_then(|id| inner.usergroups.get(id)) {
        Some(members) => json!({ "ok": true, "users": members }),
        None => failed("no_such_subteam"),
    }
}

/// `conversations.info` for a bot token: a channel the bot can see (a
/// public one, or a private one it is in) needs `channels:read` or
/// `groups:read`; a private one it is not in, or one that does not exist,
/// is `channel_not_found`. A DM id of someone in the workspace is their
/// direct conversation with the app.
fn conversation_info(inner: &Inner, params: &Value) -> Value {
    let Some(id) = str_param(params, "channel") else {
        return failed("channel_not_found");
    };
    if id.starts_with('D') {
        let Some(user) = inner.users.keys().find(|u| dm_channel(u) == id) else {
            return failed("channel_not_found");
        };
        if let Some(refusal) = inner.lacks("im:read") {
            return refusal;
        }
        return json!({
            "ok": true,
            "channel": { "id": id, "created": 1_700_000_000, "is_im": true, "user": user, "is_org_shared": false },
        });
    }
    let Some(channel) = inner
        .channels
        .get(id)
        .filter(|c| !c.private || c.bot_member)
    else {
        return failed("channel_not_found");
    };
    let scope = if channel.private {
        "groups:read"
    } else {
        "channels:read"
    };
    if let Some(refusal) = inner.lacks(scope) {
        return refusal;
    }
    json!({
        "ok": true,
        "channel": {
            "id": id,
            "name": channel.name,
            "name_normalized": channel.name,
            "is_channel": true,
            "is_group": false,
            "is_im": false,
            "is_mpim": false,
            "is_private": channel.private,
            "created": 1_700_000_000,
            "creator": "U0CREATOR",
            "is_archived": channel.archived,
            "is_general": false,
            "is_shared": false,
            "is_org_shared": false,
            "is_ext_shared": false,
            "is_pending_ext_shared": false,
            "is_member": channel.bot_member,
            "unlinked": 0,
            "topic": { "value": "", "creator": "", "last_set": 0 },
            "purpose": { "value": "Approvals for temporary admin rights", "creator": "U0CREATOR", "last_set": 1_700_000_000 },
            "previous_names": [],
        },
    })
}

fn open_conversation(inner: &Inner, params: &Value) -> Value {
    let users: Vec<&str> = match params.get("users") {
        Some(Value::String(list)) => list.split(',').map(str::trim).collect(),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let users: Vec<&str> = users.into_iter().filter(|u| !u.is_empty()).collect();
    if users.is_empty() {
        return match str_param(params, "channel") {
            Some(channel) => json!({ "ok": true, "channel": { "id": channel } }),
            None => failed("users_list_not_supplied"),
        };
    }
    if let Some(unknown) = users.iter().find(|u| !inner.users.contains_key(**u)) {
        tracing::debug!(
            user = unknown,
            "fake Slack: conversations.open with an unknown user"
        );
        return failed("user_not_found");
    }
    let id = match users.as_slice() {
        [user] => dm_channel(user),
        many => format!("G{}", many.join("").replace(['U', 'W'], "")),
    };
    json!({ "ok": true, "channel": { "id": id } })
}

fn post_message(inner: &mut Inner, params: &Value) -> (Value, Option<SimEvent>) {
    let Some(channel) = str_param(params, "channel") else {
        return (failed("channel_not_found"), None);
    };
    let Some(channel) = inner.resolve_channel(channel) else {
        return (failed("channel_not_found"), None);
    };
    if let Some(error) = inner.closed_channels.get(&channel) {
        return (failed(error), None);
    }
    // A described channel refuses the bot as Slack does: archived, or
    // without the bot in it (a private one it cannot even see).
    if let Some(described) = inner.channels.get(&channel) {
        let refusal = match described {
            SimChannel { archived: true, .. } => Some("is_archived"),
            SimChannel {
                bot_member: false,
                private: true,
                ..
            } => Some("channel_not_found"),
            SimChannel {
                bot_member: false, ..
            } => Some("not_in_channel"),
            _ => None,
        };
        if let Some(refusal) = refusal {
            return (failed(refusal), None);
        }
    }
    let (text, blocks) = match message_content(params) {
        Ok(content) => content,
        Err(answer) => return (answer, None),
    };
    if text.is_none() && blocks.is_none() {
        return (failed("no_text"), None);
    }
    let ts = inner.next_ts();
    let thread_ts = str_param(params, "thread_ts").map(str::to_owned);
    let message = SimMessage {
        channel: channel.clone(),
        ts: ts.clone(),
        thread_ts: thread_ts.clone(),
        text: text.unwrap_or_default(),
        blocks: blocks.unwrap_or(Value::Null),
        history: vec![normalized_body(params)],
    };
    inner.messages.push(message.clone());
    let answer = json!({
        "ok": true,
        "channel": channel,
        "ts": ts,
        "message": message_json(&message),
    });
    (answer, Some(SimEvent::Posted(message)))
}

fn update_message(inner: &mut Inner, params: &Value) -> (Value, Option<SimEvent>) {
    let Some(channel) = str_param(params, "channel") else {
        return (failed("channel_not_found"), None);
    };
    let Some(channel) = inner.resolve_channel(channel) else {
        return (failed("channel_not_found"), None);
    };
    let (text, blocks) = match message_content(params) {
        Ok(content) => content,
        Err(answer) => return (answer, None),
    };
    let ts = str_param(params, "ts").unwrap_or_default();
    let Some(message) = inner
        .messages
        .iter_mut()
        .find(|m| m.channel == channel && m.ts == ts)
    else {
        return (failed("message_not_found"), None);
    };
    if text.is_none() && blocks.is_none() && params.get("blocks").is_none() {
        return (failed("no_text"), None);
    }
    if let Some(text) = text {
        message.text = text;
    }
    if params.get("blocks").is_some() {
        message.blocks = blocks.unwrap_or(Value::Null);
    }
    message.history.push(normalized_body(params));
    let mut answer = json!({
        "ok": true,
        "channel": channel,
        "ts": message.ts,
        "text": message.text,
        "message": message_json(message),
    });
    if let Some(thread_ts) = &message.thread_ts {
        answer["thread_ts"] = json!(thread_ts);
    }
    (answer, Some(SimEvent::Updated(message.clone())))
}

/// `chat.getPermalink`: a link to an existing message, in Slack's forms
/// (`…/archives/{channel}/p{ts without the dot}`, and for a thread reply
/// with `thread_ts` and `cid`); `channel_not_found` or `message_not_found`
/// otherwise.
fn permalink(inner: &Inner, params: &Value) -> Value {
    let Some(channel) = str_param(params, "channel").and_then(|c| inner.resolve_channel(c)) else {
        return failed("channel_not_found");
    };
    let ts = str_param(params, "message_ts").unwrap_or_default();
    let Some(message) = inner
        .messages
        .iter()
        .find(|m| m.channel == channel && m.ts == ts)
    else {
        return failed("message_not_found");
    };
    let mut link = format!(
        "https://sim.slack.com/archives/{channel}/p{}",
        message.ts.replace('.', "")
    );
    if let Some(thread_ts) = &message.thread_ts {
        link = format!("{link}?thread_ts={thread_ts}&cid={channel}");
    }
    json!({ "ok": true, "channel": channel, "permalink": link })
}

/// `views.publish`: a Home tab for one user of the workspace. As Slack,
/// an unknown `user_id`, a missing or unparsable `view`, or a view that
/// breaks Block Kit's rules (not `home`, over 100 blocks, texts too long)
/// is `invalid_arguments` with the reasons in `response_metadata`, and
/// nothing is published. The answer carries the stored view with its id
/// and a new `hash`.
fn publish_view(inner: &mut Inner, params: &Value) -> (Value, Option<SimEvent>) {
    let invalid = |messages: Vec<String>| {
        json!({
            "ok": false,
            "error": "invalid_arguments",
            "response_metadata": { "messages": messages },
        })
    };
    let user = str_param(params, "user_id").unwrap_or_default().to_owned();
    if !inner.users.contains_key(&user) {
        return (invalid(vec!["invalid `user_id`".into()]), None);
    }
    let view = match params.get("view") {
        Some(Value::String(encoded)) => match serde_json::from_str::<Value>(encoded) {
            Ok(view) => view,
            Err(_) => return (invalid(vec!["invalid `view`".into()]), None),
        },
        Some(view @ Value::Object(_)) => view.clone(),
        _ => return (invalid(vec!["invalid `view`".into()]), None),
    };
    // Slack's limit on a view's size (views.publish: view_too_large).
    if view.to_string().len() > 250_000 {
        return (failed("view_too_large"), None);
    }
    let problems = block_kit::home_view_problems(&view);
    if !problems.is_empty() {
        tracing::debug!(?problems, "fake Slack: views.publish refused");
        let messages = problems.iter().map(|p| format!("[ERROR] {p}")).collect();
        return (invalid(messages), None);
    }
    let id = match inner.home_views.get(&user) {
        Some((id, _)) => id.clone(),
        None => format!("V{:08}", inner.home_views.len() + 1),
    };
    let hash = inner.next_ts();
    inner
        .home_views
        .insert(user.clone(), (id.clone(), view.clone()));
    inner.published.push((user, view.clone()));
    let mut stored = view;
    stored["id"] = json!(id);
    stored["team_id"] = json!(TEAM_ID);
    stored["hash"] = json!(hash);
    stored["state"] = json!({ "values": {} });
    stored["root_view_id"] = json!(id);
    stored["app_id"] = json!(APP_ID);
    stored["bot_id"] = json!(BOT_ID);
    for field in ["private_metadata", "callback_id", "external_id"] {
        if stored.get(field).is_none() {
            stored[field] = json!("");
        }
    }
    (json!({ "ok": true, "view": stored }), None)
}

/// The message `text` and non-empty `blocks`, with form-encoded blocks
/// parsed from their JSON string. Blocks that break Block Kit's limits are
/// refused whole, with Slack's answer: `invalid_blocks`, the problems in
/// `errors`, and the same as `[ERROR] …` lines in `response_metadata`.
fn message_content(params: &Value) -> Result<(Option<String>, Option<Value>), Value> {
    let text = str_param(params, "text").map(str::to_owned);
    let blocks = match params.get("blocks") {
        None | Some(Value::Null) => None,
        Some(Value::String(encoded)) => match serde_json::from_str::<Value>(encoded) {
            Ok(blocks) => Some(blocks),
            Err(_) => return Err(failed("invalid_blocks_format")),
        },
        Some(blocks) => Some(blocks.clone()),
    };
    if let Some(blocks) = &blocks {
        let problems = block_kit::problems(blocks);
        if !problems.is_empty() {
            tracing::debug!(?problems, "fake Slack: invalid_blocks");
            return Err(invalid_blocks(problems));
        }
    }
    let blocks = blocks.filter(|b| b.as_array().is_some_and(|list| !list.is_empty()));
    Ok((text, blocks))
}

fn invalid_blocks(problems: Vec<String>) -> Value {
    let messages: Vec<String> = problems.iter().map(|p| format!("[ERROR] {p}")).collect();
    json!({
        "ok": false,
        "error": "invalid_blocks",
        "errors": problems,
        "response_metadata": { "messages": messages },
    })
}

/// The request body with form-encoded `blocks` turned back into JSON.
fn normalized_body(params: &Value) -> Value {
    let mut body = params.clone();
    if let Some(Value::String(encoded)) = body.get("blocks") {
        if let Ok(blocks) = serde_json::from_str::<Value>(encoded) {
            body["blocks"] = blocks;
        }
    }
    body
}

fn message_json(message: &SimMessage) -> Value {
    let mut json = json!({
        "type": "message",
        "text": message.text,
        "ts": message.ts,
        "user": "U0BOT",
        "bot_id": "B0BOT",
    });
    if !message.blocks.is_null() {
        json["blocks"] = message.blocks.clone();
    }
    if let Some(thread_ts) = &message.thread_ts {
        json["thread_ts"] = json!(thread_ts);
    }
    json
}

/// The stable DM channel id the fake gives a user: `U123` → `D123`.
fn dm_channel(user: &str) -> String {
    let bare = user
        .strip_prefix('U')
        .or_else(|| user.strip_prefix('W'))
        .unwrap_or(user);
    format!("D{bare}")
}

fn str_param<'a>(params: &'a Value, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_owned())
}

/// Query parameters merged with a JSON or form body; `false` when the body could not be read.
fn request_params(uri: &Uri, headers: &HeaderMap, body: &Bytes) -> (Map<String, Value>, bool) {
    let mut params: Map<String, Value> = parse_form(uri.query().unwrap_or(""))
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    if body.is_empty() {
        return (params, true);
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if is_form {
        let text = String::from_utf8_lossy(body);
        params.extend(
            parse_form(&text)
                .into_iter()
                .map(|(k, v)| (k, Value::String(v))),
        );
        return (params, true);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => {
            params.extend(object);
            (params, true)
        }
        _ => (params, false),
    }
}

fn failed(error: &str) -> Value {
    json!({ "ok": false, "error": error })
}

fn ok_json(body: Value) -> Response {
    json_response(StatusCode::OK, body)
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// How a `response_url` (like an incoming webhook) answers: a bare word as
/// `text/html`, never JSON; errors carry their HTTP status.
fn text_response(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn unavailable() -> Response {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        failed("service_unavailable"),
    )
}

/// Splits `a=b&c=d` and percent-decodes names and values (`+` is a space).
fn parse_form(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "xoxb-sim-token";

    fn call(fake: &FakeSlack, method: &str, body: Value) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .post(format!("{}{method}", fake.api_url()))
            .bearer_auth(TOKEN)
            .json(&body)
    }

    async fn json_of(request: reqwest::RequestBuilder) -> Value {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        response.json().await.unwrap()
    }

    #[tokio::test]
    async fn conversations_info_shows_a_bot_only_what_its_token_may_see() {
        let fake = FakeSlack::start(TOKEN).await;
        let info = |channel: &str| call(&fake, "conversations.info", json!({ "channel": channel }));
        let approvals = json_of(info(super::super::APPROVALS_CHANNEL)).await;
        assert_eq!(approvals["channel"]["is_member"], true);
        assert_eq!(approvals["channel"]["is_private"], false);
        let channel = |private, bot_member| SimChannel {
            name: "it-private".into(),
            private,
            archived: false,
            bot_member,
        };
        fake.add_channel("C0PUBLIC", channel(false, false));
        fake.add_channel("G0PRIVATE", channel(true, false));
        fake.add_channel("G0JOINED", channel(true, true));
        let public = json_of(info("C0PUBLIC")).await;
        assert_eq!(public["ok"], true);
        assert_eq!(public["channel"]["is_member"], false);
        assert_eq!(
            json_of(info("G0PRIVATE")).await,
            json!({ "ok": false, "error": "channel_not_found" })
        );
        assert_eq!(
            json_of(info("G0JOINED")).await["channel"]["is_member"],
            true
        );
        assert_eq!(
            json_of(info("C0NOWHERE")).await["error"],
            "channel_not_found"
        );
        fake.remove_scope("groups:read");
        let refused = json_of(info("G0JOINED")).await;
        assert_eq!(refused["error"], "missing_scope");
        assert_eq!(refused["needed"], "groups:read");
        assert!(!refused["provided"]
            .as_str()
            .unwrap()
            .split(',')
            .any(|s| s == "groups:read"));
        assert_eq!(json_of(info("C0PUBLIC")).await["ok"], true);
        assert!(fake.write_calls().is_empty());
        json_of(call(
            &fake,
            "chat.postMessage",
            json!({ "channel": "C0PUBLIC", "text": "hi" }),
        ))
        .await;
        json_of(call(&fake, "no.such.method", json!({}))).await;
        let writes: Vec<String> = fake.write_calls().into_iter().map(|c| c.method).collect();
        assert_eq!(writes, ["chat.postMessage", "no.such.method"]);
    }

    #[tokio::test]
    async fn a_post_into_a_channel_the_bot_may_not_post_in_is_refused_as_slack_refuses_it() {
        let fake = FakeSlack::start(TOKEN).await;
        let channel = |private, archived, bot_member| SimChannel {
            name: "elsewhere".into(),
            private,
            archived,
            bot_member,
        };
        fake.add_channel("C0OUTSIDE", channel(false, false, false));
        fake.add_channel("G0HIDDEN", channel(true, false, false));
        fake.add_channel("C0OLD", channel(false, true, true));
        fake.add_channel("C0INSIDE", channel(false, false, true));
        let post = |channel: &str| {
            call(
                &fake,
                "chat.postMessage",
                json!({ "channel": channel, "text": "hi" }),
            )
        };
        assert_eq!(json_of(post("C0OUTSIDE")).await["error"], "not_in_channel");
        assert_eq!(
            json_of(post("G0HIDDEN")).await["error"],
            "channel_not_found"
        );
        assert_eq!(json_of(post("C0OLD")).await["error"], "is_archived");
        assert_eq!(json_of(post("C0INSIDE")).await["ok"], true);
        assert_eq!(fake.messages().len(), 1);
    }

    #[tokio::test]
    async fn users_info_shows_an_email_only_to_a_token_with_users_read_email() {
        let fake = FakeSlack::start(TOKEN).await;
        fake.add_user("U0ADA", "ada", Some("ada@example.com"));
        let info = || call(&fake, "users.info", json!({ "user": "U0ADA" }));
        assert_eq!(
            json_of(info()).await["user"]["profile"]["email"],
            "ada@example.com"
        );
        fake.remove_scope("users:read.email");
        let user = json_of(info()).await;
        assert_eq!(user["ok"], true);
        assert_eq!(user["user"]["profile"].get("email"), None);
    }

    #[tokio::test]
    async fn checks_the_token_and_answers_lookups() {
        let fake = FakeSlack::start(TOKEN).await;
        fake.add_user("U1", "ada", Some("ada@example.com"));
        fake.add_user("U2", "bob", None);
        fake.add_usergroup("S1", &["U1", "U2"]);

        let rejected = reqwest::Client::new()
            .post(format!("{}auth.test", fake.api_url()))
            .bearer_auth("xoxb-wrong");
        assert_eq!(
            json_of(rejected).await,
            json!({ "ok": false, "error": "invalid_auth" })
        );
        let auth = json_of(call(&fake, "auth.test", json!({}))).await;
        assert_eq!(auth["ok"], true);
        assert_eq!(auth["user_id"], "U0BOT");
        let bot = reqwest::Client::new()
            .get(format!(
                "{}bots.info?bot={}",
                fake.api_url(),
                auth["bot_id"].as_str().unwrap()
            ))
            .bearer_auth(TOKEN);
        let bot = json_of(bot).await;
        assert_eq!(bot["bot"]["app_id"], APP_ID);
        assert_eq!(bot["bot"]["user_id"], auth["user_id"]);
        let other = json_of(call(&fake, "bots.info", json!({ "bot": "B0OTHER" }))).await;
        assert_eq!(other, json!({ "ok": false, "error": "bot_not_found" }));

        let info = reqwest::Client::new()
            .get(format!("{}users.info?user=U1", fake.api_url()))
            .bearer_auth(TOKEN);
        let info = json_of(info).await;
        assert_eq!(info["user"]["id"], "U1");
        assert_eq!(info["user"]["profile"]["email"], "ada@example.com");
        let info = json_of(call(&fake, "users.info", json!({ "user": "U2" }))).await;
        assert!(info["user"]["profile"].get("email").is_none());
        let missing = json_of(call(&fake, "users.info", json!({ "user": "U9" }))).await;
        assert_eq!(missing["error"], "user_not_found");

        let members = json_of(call(
            &fake,
            "usergroups.users.list",
            json!({ "usergroup": "S1" }),
        ))
        .await;
        assert_eq!(members, json!({ "ok": true, "users": ["U1", "U2"] }));
        let missing = json_of(call(
            &fake,
            "usergroups.users.list",
            json!({ "usergroup": "S9" }),
        ))
        .await;
        assert_eq!(missing["error"], "no_such_subteam");

        let opened = json_of(call(
            &fake,
            "conversations.open",
            json!({ "users": ["U1"] }),
        ))
        .await;
        assert_eq!(opened["channel"]["id"], "D1");
        let form = reqwest::Client::new()
            .post(format!("{}conversations.open", fake.api_url()))
            .bearer_auth(TOKEN)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("users=U2");
        assert_eq!(json_of(form).await["channel"]["id"], "D2");

        let unknown = json_of(call(&fake, "chat.fly", json!({}))).await;
        assert_eq!(unknown["error"], "unknown_method");

        let calls = fake.calls();
        assert_eq!(calls[0].method, "auth.test");
        assert_eq!(calls[0].token.as_deref(), Some("xoxb-wrong"));
        assert_eq!(calls[4].params, json!({ "user": "U1" }));
        assert_eq!(calls.last().unwrap().method, "chat.fly");
    }

    #[tokio::test]
    async fn posts_threads_and_updates_messages() {
        let fake = FakeSlack::start(TOKEN).await;
        let mut events = fake.subscribe();
        let blocks =
            json!([{ "type": "section", "text": { "type": "mrkdwn", "text": "Approve?" } }]);

        let posted = json_of(call(
            &fake,
            "chat.postMessage",
            json!({ "channel": "C1", "text": "Approve?", "blocks": blocks }),
        ))
        .await;
        let ts = posted["ts"].as_str().unwrap().to_owned();
        assert_eq!(ts, "1700000000.000100");
        assert_eq!(posted["channel"], "C1");
        assert_eq!(posted["message"]["blocks"], blocks);

        let reply = json_of(call(
            &fake,
            "chat.postMessage",
            json!({ "channel": "C1", "text": "granted", "thread_ts": ts }),
        ))
        .await;
        assert!(reply["ts"].as_str().unwrap() > ts.as_str());

        let updated = json_of(call(
            &fake,
            "chat.update",
            json!({ "channel": "C1", "ts": ts, "text": "Approved", "blocks": [] }),
        ))
        .await;
        assert_eq!(updated["text"], "Approved");

        let messages = fake.messages();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].text, "Approved");
        assert_eq!(messages[0].blocks, Value::Null);
        assert_eq!(messages[0].history.len(), 2);
        assert_eq!(messages[0].history[0]["blocks"], blocks);
        let thread = fake.thread("C1", &ts);
        assert_eq!(thread.len(), 1);
        assert_eq!(thread[0].text, "granted");

        assert!(matches!(events.recv().await.unwrap(), SimEvent::Posted(m) if m.ts == ts));
        assert!(
            matches!(events.recv().await.unwrap(), SimEvent::Posted(m) if m.thread_ts.as_deref() == Some(ts.as_str()))
        );
        assert!(
            matches!(events.recv().await.unwrap(), SimEvent::Updated(m) if m.text == "Approved")
        );

        let missing = json_of(call(
            &fake,
            "chat.update",
            json!({ "channel": "C1", "ts": "1.2", "text": "x" }),
        ))
        .await;
        assert_eq!(missing["error"], "message_not_found");
        let empty = json_of(call(&fake, "chat.postMessage", json!({ "channel": "C1" }))).await;
        assert_eq!(empty["error"], "no_text");
        let nowhere = json_of(call(&fake, "chat.postMessage", json!({ "text": "hi" }))).await;
        assert_eq!(nowhere["error"], "channel_not_found");
    }

    #[tokio::test]
    async fn a_post_to_a_user_id_lands_in_that_persons_dm_and_unknown_ids_are_refused() {
        let fake = FakeSlack::start(TOKEN).await;
        fake.add_user("U1", "ada", None);
        fake.add_user("W2", "grace", None);

        let posted = json_of(call(
            &fake,
            "chat.postMessage",
            json!({ "channel": "U1", "text": "hello" }),
        ))
        .await;
        assert_eq!(posted["channel"], "D1");
        assert_eq!(fake.dm_channel("U1"), "D1");
        let enterprise = json_of(call(
            &fake,
            "chat.postMessage",
            json!({ "channel": "W2", "text": "hello" }),
        ))
        .await;
        assert_eq!(enterprise["channel"], fake.dm_channel("W2"));
        let again = json_of(call(
            &fake,
            "chat.postMessage",
            json!({ "channel": "D1", "text": "again" }),
        ))
        .await;
        assert_eq!(again["ok"], true);
        assert_eq!(fake.messages()[0].channel, "D1");

        for nobody in ["U9", "W9", "D9"] {
            let refused = json_of(call(
                &fake,
                "chat.postMessage",
                json!({ "channel": nobody, "text": "hello" }),
            ))
            .await;
            assert_eq!(refused["error"], "channel_not_found", "{nobody}");
        }
        let update = json_of(call(
            &fake,
            "chat.update",
            json!({ "channel": "U9", "ts": posted["ts"], "text": "x" }),
        ))
        .await;
        assert_eq!(update["error"], "channel_not_found");
        assert_eq!(fake.messages().len(), 3);
    }

    #[tokio::test]
    async fn rate_limits_goes_down_and_takes_responses() {
        let fake = FakeSlack::start(TOKEN).await;
        fake.rate_limit_next(1, 7);
        let limited = call(&fake, "auth.test", json!({})).send().await.unwrap();
        assert_eq!(limited.status(), 429);
        assert_eq!(limited.headers()[header::RETRY_AFTER], "7");
        assert_eq!(
            limited.json::<Value>().await.unwrap()["error"],
            "ratelimited"
        );

        // slack-morphism joins `{api_url}/{method}`, which doubles the slash.
        let doubled = reqwest::Client::new()
            .post(format!("{}/auth.test", fake.api_url()))
            .bearer_auth(TOKEN)
            .json(&json!({}));
        assert_eq!(json_of(doubled).await["ok"], true);

        let mut events = fake.subscribe();
        let body = json!({ "replace_original": true, "text": "Done" });
        let sent = reqwest::Client::new()
            .post(fake.response_url("r1"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 200);
        assert!(sent.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert_eq!(sent.text().await.unwrap(), "ok");
        let garbled = reqwest::Client::new()
            .post(fake.response_url("r1"))
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(garbled.status(), 400);
        assert_eq!(garbled.text().await.unwrap(), "invalid_payload");
        assert_eq!(
            fake.responses(),
            vec![SimResponse {
                url_id: "r1".into(),
                body: body.clone()
            }]
        );
        assert!(matches!(events.recv().await.unwrap(), SimEvent::Responded(r) if r.body == body));

        fake.set_down(true);
        let down = call(&fake, "auth.test", json!({})).send().await.unwrap();
        assert_eq!(down.status(), 503);
        let down = reqwest::Client::new()
            .post(fake.response_url("r2"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(down.status(), 503);
        fake.set_down(false);

        let methods: Vec<String> = fake.calls().into_iter().map(|c| c.method).collect();
        assert_eq!(
            methods,
            [
                "auth.test",
                "auth.test",
                "response_url",
                "response_url",
                "auth.test",
                "response_url"
            ]
        );
        assert_eq!(fake.responses().len(), 1);
    }

    #[tokio::test]
    async fn blocks_that_break_block_kit_limits_are_refused_on_every_way_in() {
        let fake = FakeSlack::start(TOKEN).await;
        let fine = json!([{ "type": "section", "text": { "type": "mrkdwn", "text": "ok" } }]);
        let too_long =
            json!([{ "type": "section", "text": { "type": "mrkdwn", "text": "a".repeat(3001) } }]);

        let refused = json_of(call(
            &fake,
            "chat.postMessage",
            json!({ "channel": "C1", "text": "x", "blocks": too_long }),
        ))
        .await;
        assert_eq!(refused["ok"], false);
        assert_eq!(refused["error"], "invalid_blocks");
        assert_eq!(
            refused["errors"],
            json!(["must be less than 3001 characters [json-pointer:/blocks/0/text/text]"])
        );
        assert_eq!(
            refused["response_metadata"]["messages"][0],
            "[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]"
        );
        assert!(fake.messages().is_empty(), "nothing is posted");

        // Form-encoded, as some clients send it.
        let form = reqwest::Client::new()
            .post(format!("{}chat.postMessage", fake.api_url()))
            .bearer_auth(TOKEN)
            .form(&[("channel", "C1"), ("blocks", &too_long.to_string())]);
        assert_eq!(json_of(form).await["error"], "invalid_blocks");
        let garbled = reqwest::Client::new()
            .post(format!("{}chat.postMessage", fake.api_url()))
            .bearer_auth(TOKEN)
            .form(&[("channel", "C1"), ("blocks", "[{")]);
        assert_eq!(json_of(garbled).await["error"], "invalid_blocks_format");

        let posted = json_of(call(
            &fake,
            "chat.postMessage",
            json!({ "channel": "C1", "text": "x", "blocks": fine }),
        ))
        .await;
        let update = json_of(call(
            &fake,
            "chat.update",
            json!({ "channel": "C1", "ts": posted["ts"], "text": "y", "blocks": too_long }),
        ))
        .await;
        assert_eq!(update["error"], "invalid_blocks");
        assert_eq!(fake.messages()[0].blocks, fine, "the message is unchanged");
        assert_eq!(fake.messages()[0].history.len(), 1);

        let response = reqwest::Client::new()
            .post(fake.response_url("r1"))
            .json(&json!({ "text": "x", "blocks": too_long }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        assert!(response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert_eq!(response.text().await.unwrap(), "invalid_blocks");
        assert!(fake.responses().is_empty(), "nothing is shown");
        let ok = reqwest::Client::new()
            .post(fake.response_url("r1"))
            .json(&json!({ "text": "x", "blocks": fine }))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.text().await.unwrap(), "ok");
        assert_eq!(fake.responses().len(), 1);
    }

    #[tokio::test]
    async fn a_home_view_is_published_only_to_a_known_user_and_only_within_block_kit() {
        let fake = FakeSlack::start(TOKEN).await;
        fake.add_user("U1", "ada", None);
        let view = |n: usize| {
            let blocks: Vec<Value> = (0..n)
                .map(|i| json!({ "type": "section", "text": { "type": "mrkdwn", "text": format!("{i}") } }))
                .collect();
            json!({ "type": "home", "blocks": blocks })
        };
        let published = json_of(call(
            &fake,
            "views.publish",
            json!({ "user_id": "U1", "view": view(100) }),
        ))
        .await;
        assert_eq!(published["ok"], true, "{published}");
        assert_eq!(published["view"]["type"], "home");
        assert!(published["view"]["id"].as_str().unwrap().starts_with('V'));
        assert!(published["view"]["hash"].is_string());
        assert_eq!(fake.home_view("U1"), Some(view(100)));

        for (body, message) in [
            (
                json!({ "user_id": "U9", "view": view(1) }),
                "invalid `user_id`",
            ),
            (json!({ "user_id": "U1" }), "invalid `view`"),
            (
                json!({ "user_id": "U1", "view": view(101) }),
                "[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]",
            ),
            (
                json!({ "user_id": "U1", "view": { "type": "modal", "blocks": [] } }),
                "[ERROR] must be home [json-pointer:/view/type]",
            ),
        ] {
            let refused = json_of(call(&fake, "views.publish", body)).await;
            assert_eq!(refused["error"], "invalid_arguments");
            assert_eq!(refused["response_metadata"]["messages"][0], message);
        }
        // Within Block Kit, but over Slack's 250 kB for a view.
        let long = "x".repeat(2_900);
        let blocks: Vec<Value> = (0..100)
            .map(|_| json!({ "type": "section", "text": { "type": "mrkdwn", "text": long } }))
            .collect();
        let big = json!({ "user_id": "U1", "view": { "type": "home", "blocks": blocks } });
        assert_eq!(
            json_of(call(&fake, "views.publish", big)).await["error"],
            "view_too_large"
        );
        assert_eq!(
            fake.published_views().len(),
            1,
            "nothing else was published"
        );
        assert_eq!(fake.home_view("U1"), Some(view(100)));
    }

    #[tokio::test]
    async fn a_permalink_names_an_existing_message_and_a_thread_reply_its_thread() {
        let fake = FakeSlack::start(TOKEN).await;
        let root = json_of(call(
            &fake,
            "chat.postMessage",
            json!({ "channel": "C1", "text": "root" }),
        ))
        .await;
        let ts = root["ts"].as_str().unwrap();
        let reply = json_of(call(
            &fake,
            "chat.postMessage",
            json!({ "channel": "C1", "text": "reply", "thread_ts": ts }),
        ))
        .await;
        let link = json_of(call(
            &fake,
            "chat.getPermalink",
            json!({ "channel": "C1", "message_ts": ts }),
        ))
        .await;
        assert_eq!(
            link["permalink"],
            format!("https://sim.slack.com/archives/C1/p{}", ts.replace('.', ""))
        );
        let reply_ts = reply["ts"].as_str().unwrap();
        let link = json_of(call(
            &fake,
            "chat.getPermalink",
            json!({ "channel": "C1", "message_ts": reply_ts }),
        ))
        .await;
        assert!(link["permalink"]
            .as_str()
            .unwrap()
            .ends_with(&format!("?thread_ts={ts}&cid=C1")));
        let missing = json_of(call(
            &fake,
            "chat.getPermalink",
            json!({ "channel": "C1", "message_ts": "1.2" }),
        ))
        .await;
        assert_eq!(missing["error"], "message_not_found");
        let nowhere = json_of(call(
            &fake,
            "chat.getPermalink",
            json!({ "channel": "U9", "message_ts": ts }),
        ))
        .await;
        assert_eq!(nowhere["error"], "channel_not_found");
    }
}
