//! Fake JumpCloud API: a loopback HTTP server that simulates the parts of
//! JumpCloud's v1 (`/api`) and v2 (`/api/v2`) REST API that tempadmin uses —
//! looking a user up by e-mail (a case-sensitive list `filter`), listing
//! users and systems, listing the systems a user is bound to,
//! reading a system, listing and changing direct system↔user associations
//! (with their `sudo` attributes), access requests (temporary elevation with
//! their own expiry clock, in `jumpcloud_access.rs`) and launching command
//! triggers. Request and
//! response shapes follow JumpCloud's published OpenAPI descriptions
//! (`JumpCloud.SDK.V1.json`, `JumpCloud.SDK.V2.json`) and its public
//! documentation: `x-api-key` authentication, or a service account's bearer
//! token from the OAuth 2.0 token endpoint (`POST /oauth2/token`, served on the
//! same port; see [`FakeJumpCloud::enable_service_account`]),
//! `{"code","message","status"}`
//! error bodies, `totalCount` in v1 list bodies and an `x-total-count` header on
//! v2 lists, `limit` (default 10, at most 100) and `skip` paging. Every request
//! is recorded, and failures (error statuses, changes applied but answered
//! with an error, requests that never answer, redirects, outages, latency) can be
//! injected.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::engine::clock::SystemClock;
use crate::engine::ports::Clock;

#[path = "jumpcloud_access.rs"]
mod access;
pub use access::SimAccess;
mod commands;
pub use commands::CommandRun;

/// The token endpoint's path on the fake (JumpCloud's is
/// `https://admin-oauth.id.jumpcloud.com/oauth2/token`).
pub const TOKEN_PATH: &str = "/oauth2/token";

/// A JumpCloud user ("systemuser") known to the fake.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimUser {
    /// Object id (`_id`).
    pub id: String,
    /// E-mail address, kept in the case it was given. `filter=email:$eq:…`
    /// compares it case-sensitively, as JumpCloud does.
    pub email: String,
    /// Account name on the computers.
    pub username: String,
    /// Global administrator rights on every bound system.
    pub sudo: bool,
    /// Whether the account is suspended (`state` is then `SUSPENDED`).
    pub suspended: bool,
}

/// A JumpCloud device ("system") known to the fake.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimSystem {
    /// Object id (`_id`).
    pub id: String,
    /// Host name reported by the agent.
    pub hostname: String,
    /// Name shown in the console (`displayName`).
    pub display_name: String,
    /// `osFamily`: `windows`, `darwin`, `linux`, `ios` or `android`.
    pub os_family: String,
    /// Whether the agent is connected.
    pub active: bool,
}

/// One request as the fake received it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedCall {
    /// HTTP method in upper case, e.g. `GET`.
    pub method: String,
    /// Request path as sent (still percent-encoded), without the query string.
    pub path: String,
    /// Raw query string, if the request had one.
    pub query: Option<String>,
    /// Body parsed as JSON; a body that is not JSON is kept as a JSON string. `None` when empty.
    pub body: Option<Value>,
    /// The `x-api-key` header.
    pub api_key: Option<String>,
    /// The token of an `Authorization: Bearer` header.
    pub bearer: Option<String>,
    /// The `x-org-id` header.
    pub org_id: Option<String>,
    /// When it arrived (wall clock), for latency measurements.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// One request to the token endpoint, as the fake received and answered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The client id of the `Authorization: Basic` header, when it had one.
    pub client_id: Option<String>,
    /// The form fields, in the order sent.
    pub form: Vec<(String, String)>,
    /// The status the fake answered.
    pub status: u16,
}

/// How an injected failure (see [`FakeJumpCloud::fail_next`]) answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Answer `status` with a JSON error body, without applying anything.
    Status {
        /// HTTP status to answer.
        status: u16,
        /// Seconds to send in a `Retry-After` header.
        retry_after: Option<u64>,
    },
    /// Handle the request as usual (applying any change), then answer `status` instead.
    ApplyThenStatus {
        /// HTTP status to answer.
        status: u16,
    },
    /// Never answer; a write is not applied.
    Hang,
    /// Answer nothing until [`FakeJumpCloud::release_hung`] is called, then
    /// handle the request as usual: a call that hangs while JumpCloud is
    /// stuck and goes through once it recovers.
    HangUntilReleased,
    /// Answer `status` (301, 302, 307, 308…) with `Location: location`, as a
    /// misconfigured proxy or a moved console would, without applying anything.
    Redirect {
        /// HTTP status to answer.
        status: u16,
        /// The `Location` header, e.g. another server's URL.
        location: String,
    },
}

/// A running fake JumpCloud server; clones share the same state.
#[derive(Clone, Debug)]
pub struct FakeJumpCloud {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    /// Bumped on every recorded call, so tests can wait for calls to arrive.
    arrived: Arc<tokio::sync::watch::Sender<usize>>,
    /// Set once hung calls may go on.
    released: Arc<tokio::sync::watch::Sender<bool>>,
}

#[derive(Debug)]
struct DirectBinding {
    user_id: String,
    system_id: String,
    sudo: bool,
    without_password: bool,
}

#[derive(Debug)]
struct GroupBinding {
    user_id: String,
    system_id: String,
    group_id: String,
}

#[derive(Debug)]
struct InjectedFailure {
    method: String,
    path_prefix: String,
    remaining: usize,
    failure: Failure,
}

/// A service account the token endpoint knows.
#[derive(Debug)]
struct ServiceAccount {
    client_id: String,
    client_secret: String,
    /// `expires_in` of the tokens it issues.
    lifetime: Duration,
}

#[derive(Debug)]
struct IssuedToken {
    token: String,
    expires_at: crate::domain::Timestamp,
    revoked: bool,
}

/// The clock tokens expire by.
struct FakeClock(Arc<dyn Clock>);

impl fmt::Debug for FakeClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FakeClock")
    }
}

impl Default for FakeClock {
    fn default() -> Self {
        Self(Arc::new(SystemClock))
    }
}

#[derive(Debug, Default)]
struct Inner {
    api_key: String,
    service_account: Option<ServiceAccount>,
    tokens: Vec<IssuedToken>,
    token_requests: Vec<TokenRequest>,
    clock: FakeClock,
    users: Vec<SimUser>,
    systems: Vec<SimSystem>,
    direct: Vec<DirectBinding>,
    groups: Vec<GroupBinding>,
    calls: Vec<RecordedCall>,
    /// The association writes that took effect, in the order they did.
    applied: Vec<RecordedCall>,
    failures: Vec<InjectedFailure>,
    down: bool,
    latency: Duration,
    /// Access requests (temporary elevation), with their own expiry clock.
    access: access::AccessBook,
    /// Commands, their systems and their runs.
    commands: commands::Commands,
}

impl Inner {
    /// A known API key, or a bearer token issued here that is neither
    /// revoked nor expired.
    fn authenticated(&self, call: &RecordedCall) -> bool {
        if call.api_key.as_deref() == Some(self.api_key.as_str()) {
            return true;
        }
        let now = self.clock.0.now();
        call.bearer.as_deref().is_some_and(|bearer| {
            self.tokens
                .iter()
                .any(|t| t.token == bearer && !t.revoked && now < t.expires_at)
        })
    }

    fn direct(&self, user_id: &str, system_id: &str) -> Option<&DirectBinding> {
        self.direct
            .iter()
            .find(|b| b.user_id == user_id && b.system_id == system_id)
    }

    fn take_failure(&mut self, method: &str, path: &str) -> Option<Failure> {
        let index = self.failures.iter().position(|f| {
            (f.method == "*" || f.method.eq_ignore_ascii_case(method))
                && path.starts_with(&f.path_prefix)
        })?;
        let entry = &mut self.failures[index];
        entry.remaining -= 1;
        let failure = entry.failure.clone();
        if entry.remaining == 0 {
            self.failures.remove(index);
        }
        Some(failure)
    }
}

impl FakeJumpCloud {
    /// Binds `127.0.0.1:0`, serves the fake on a tokio task and accepts `api_key` in `x-api-key`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(api_key: &str) -> FakeJumpCloud {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the fake JumpCloud");
        let addr = listener.local_addr().expect("local address of the fake");
        let fake = FakeJumpCloud {
            addr,
            inner: Arc::new(Mutex::new(Inner {
                api_key: api_key.to_owned(),
                ..Inner::default()
            })),
            arrived: Arc::new(tokio::sync::watch::channel(0).0),
            released: Arc::new(tokio::sync::watch::channel(false).0),
        };
        let app = Router::new().fallback(handle).with_state(fake.clone());
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "fake JumpCloud server stopped");
            }
        });
        fake
    }

    /// Base URL, `http://127.0.0.1:PORT` without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The API key this fake accepts.
    pub fn api_key(&self) -> String {
        self.lock().api_key.clone()
    }

    /// The token endpoint's address, for `jumpcloud.oauth_url`.
    pub fn oauth_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.url())
    }

    /// Lets the token endpoint issue bearer tokens to this service account,
    /// each valid for `lifetime` (its `expires_in`). The API key stays
    /// accepted too, as in an organisation that has both.
    pub fn enable_service_account(&self, client_id: &str, client_secret: &str, lifetime: Duration) {
        self.lock().service_account = Some(ServiceAccount {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            lifetime,
        });
    }

    /// The clock tokens and access requests expire by (the system's unless
    /// told otherwise), so a test can move a manual clock past a token's
    /// lifetime or an access request's expiry.
    pub fn use_clock(&self, clock: Arc<dyn Clock>) {
        self.lock().clock = FakeClock(clock);
    }

    /// Revokes every token issued so far, as an administrator rotating the
    /// service account's secret would: the API answers 401 to them.
    pub fn revoke_tokens(&self) {
        for token in &mut self.lock().tokens {
            token.revoked = true;
        }
    }

    /// Every request to the token endpoint so far, in arrival order.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.lock().token_requests.clone()
    }

    /// How many tokens the token endpoint has issued.
    pub fn tokens_issued(&self) -> usize {
        self.lock().tokens.len()
    }

    /// Adds a user, replacing one with the same id.
    pub fn add_user(&self, user: SimUser) {
        let mut inner = self.lock();
        match inner.users.iter_mut().find(|u| u.id == user.id) {
            Some(existing) => *existing = user,
            None => inner.users.push(user),
        }
    }

    /// Adds a system, replacing one with the same id.
    pub fn add_system(&self, system: SimSystem) {
        let mut inner = self.lock();
        match inner.systems.iter_mut().find(|s| s.id == system.id) {
            Some(existing) => *existing = system,
            None => inner.systems.push(system),
        }
    }

    /// Creates (or changes) a direct user→system association with `attributes.sudo.enabled = sudo`.
    pub fn bind_direct(&self, user_id: &str, system_id: &str, sudo: bool) {
        let mut inner = self.lock();
        match inner
            .direct
            .iter_mut()
            .find(|b| b.user_id == user_id && b.system_id == system_id)
        {
            Some(binding) => {
                binding.sudo = sudo;
                binding.without_password = false;
            }
            None => inner.direct.push(DirectBinding {
                user_id: user_id.to_owned(),
                system_id: system_id.to_owned(),
                sudo,
                without_password: false,
            }),
        }
    }

    /// Sets the attributes of the direct user→system association as an
    /// administrator in the console would, creating it if needed.
    pub fn set_direct(&self, user_id: &str, system_id: &str, sudo: bool, without_password: bool) {
        self.bind_direct(user_id, system_id, sudo);
        let mut inner = self.lock();
        if let Some(binding) = inner
            .direct
            .iter_mut()
            .find(|b| b.user_id == user_id && b.system_id == system_id)
        {
            binding.without_password = without_password;
        }
    }

    /// Removes every binding (direct and through groups) between the user
    /// and the system, as an administrator would.
    pub fn unbind(&self, user_id: &str, system_id: &str) {
        let mut inner = self.lock();
        inner
            .direct
            .retain(|b| !(b.user_id == user_id && b.system_id == system_id));
        inner
            .groups
            .retain(|g| !(g.user_id == user_id && g.system_id == system_id));
    }

    /// The direct association's `(sudo.enabled, sudo.withoutPassword)`.
    pub fn direct_attributes(&self, user_id: &str, system_id: &str) -> Option<(bool, bool)> {
        self.lock()
            .direct(user_id, system_id)
            .map(|b| (b.sudo, b.without_password))
    }

    /// Lets every call held by [`Failure::HangUntilReleased`] go on, now
    /// and later.
    pub fn release_hung(&self) {
        self.released.send_replace(true);
    }

    /// Waits until the recorded calls satisfy `done`.
    pub async fn wait_for_calls(&self, done: impl Fn(&[RecordedCall]) -> bool) {
        let mut arrived = self.arrived.subscribe();
        loop {
            if done(&self.lock().calls) {
                return;
            }
            if arrived.changed().await.is_err() {
                return;
            }
        }
    }

    /// Binds the user to the system through user group `group_id` only (no sudo attributes).
    pub fn bind_via_group(&self, user_id: &str, system_id: &str, group_id: &str) {
        let mut inner = self.lock();
        let exists = inner
            .groups
            .iter()
            .any(|g| g.user_id == user_id && g.system_id == system_id && g.group_id == group_id);
        if !exists {
            inner.groups.push(GroupBinding {
                user_id: user_id.to_owned(),
                system_id: system_id.to_owned(),
                group_id: group_id.to_owned(),
            });
        }
    }

    /// `Some(sudo enabled)` when a direct user→system association exists.
    pub fn direct_binding(&self, user_id: &str, system_id: &str) -> Option<bool> {
        self.lock().direct(user_id, system_id).map(|b| b.sudo)
    }

    /// Effective admin rights: the user's global `sudo`, sudo on the
    /// direct association, or an access request granted now (by the
    /// fake's clock).
    pub fn is_admin(&self, user_id: &str, system_id: &str) -> bool {
        let inner = self.lock();
        let global = inner.users.iter().any(|u| u.id == user_id && u.sudo);
        let now = inner.clock.0.now();
        global
            || inner.direct(user_id, system_id).is_some_and(|b| b.sudo)
            || inner.access.granted(user_id, system_id, now)
    }

    /// Every access request, oldest first, as it stands by the fake's clock.
    pub fn access_requests(&self) -> Vec<SimAccess> {
        let inner = self.lock();
        inner.access.all(inner.clock.0.now())
    }

    /// Every request received so far, in arrival order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.lock().calls.clone()
    }

    /// Every request that could change something: all but `GET`s (the
    /// token endpoint's requests are not among the calls, see
    /// [`FakeJumpCloud::token_requests`]).
    pub fn write_calls(&self) -> Vec<RecordedCall> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method != "GET")
            .cloned()
            .collect()
    }

    /// Only the `POST /api/v2/systems/{id}/associations` requests, in arrival order.
    pub fn writes(&self) -> Vec<RecordedCall> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method == "POST" && is_association_path(&c.path))
            .cloned()
            .collect()
    }

    /// The association writes the fake applied, in order: like
    /// [`FakeJumpCloud::writes`], less those whose caller went away before
    /// they were handled (a client killed during the fake's latency) or
    /// that were failed without effect.
    pub fn applied_writes(&self) -> Vec<RecordedCall> {
        self.lock().applied.clone()
    }

    /// Makes the next `times` requests whose method matches (`"*"` for any) and whose
    /// path starts with `path_prefix` fail as `failure` describes. Requests answered 503
    /// (down) or 401 (wrong key) do not use it up; several injections apply in the order given.
    pub fn fail_next(&self, method: &str, path_prefix: &str, times: usize, failure: Failure) {
        if times == 0 {
            return;
        }
        self.lock().failures.push(InjectedFailure {
            method: method.to_owned(),
            path_prefix: path_prefix.to_owned(),
            remaining: times,
            failure,
        });
    }

    /// While down, every request is answered 503 with a JSON error body.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Latency added before every answer (zero by default).
    pub fn set_latency(&self, d: Duration) {
        self.lock().latency = d;
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn route(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let segments: Vec<String> = path
            .trim_start_matches('/')
            .split('/')
            .map(str::to_string)
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let params = parse_form(query.unwrap_or(""));
        if let Some(response) = self.route_commands(method, &segments, &params, body) {
            return response;
        }
        match (method, segments.as_slice()) {
            ("GET", ["api", "systemusers"]) => self.list_users(&params),
            ("GET", ["api", "systems"]) => self.list_systems(&params),
            ("GET", ["api", "systems", id]) => self.get_system(id, &params),
            ("GET", ["api", "v2", "users", id, "systems"]) => self.user_systems(id, &params),
            ("GET", ["api", "v2", "systems", id, "associations"]) => self.associations(id, &params),
            ("POST", ["api", "v2", "systems", id, "associations"]) => {
                self.change_association(id, body)
            }
            ("POST", ["api", "v2", "accessrequests"]) => self.create_access(body),
            ("GET", ["api", "v2", "accessrequests", id]) => {
                let inner = self.lock();
                inner.access.get(id, inner.clock.0.now())
            }
            ("PUT", ["api", "v2", "accessrequests", id]) => {
                let mut inner = self.lock();
                let now = inner.clock.0.now();
                inner.access.update(id, body, now)
            }
            ("POST", ["api", "v2", "accessrequests", id, "revoke"]) => {
                let mut inner = self.lock();
                let now = inner.clock.0.now();
                inner.access.revoke(id, now)
            }
            _ => error(StatusCode::NOT_FOUND, "Not Found"),
        }
    }

    fn list_users(&self, params: &[(String, String)]) -> Response {
        let (limit, skip) = match paging(params) {
            Ok(paging) => paging,
            Err(message) => return error(StatusCode::BAD_REQUEST, &message),
        };
        let filters: Result<Vec<(String, String)>, String> = params
            .iter()
            .filter(|(k, _)| k == "filter")
            .map(|(_, v)| parse_filter(v))
            .collect();
        let filters = match filters {
            Ok(filters) => filters,
            Err(message) => return error(StatusCode::BAD_REQUEST, &message),
        };
        let fields = param(params, "fields");
        let inner = self.lock();
        let matching: Vec<&SimUser> = inner
            .users
            .iter()
            .filter(|u| {
                filters
                    .iter()
                    .all(|(field, value)| user_matches(u, field, value))
            })
            .collect();
        let results: Vec<Value> = matching
            .iter()
            .skip(skip)
            .take(limit)
            .map(|u| select_fields(user_json(u), fields))
            .collect();
        Json(json!({ "totalCount": matching.len(), "results": results })).into_response()
    }

    /// `GET /api/systems`: v1 paging, `fields`, and `totalCount`.
    fn list_systems(&self, params: &[(String, String)]) -> Response {
        let (limit, skip) = match paging(params) {
            Ok(paging) => paging,
            Err(message) => return error(StatusCode::BAD_REQUEST, &message),
        };
        if params.iter().any(|(k, _)| k == "filter") {
            return error(
                StatusCode::BAD_REQUEST,
                "the simulator lists systems without filters",
            );
        }
        let fields = param(params, "fields");
        let inner = self.lock();
        let results: Vec<Value> = inner
            .systems
            .iter()
            .skip(skip)
            .take(limit)
            .map(|s| select_fields(system_json(s), fields))
            .collect();
        Json(json!({ "totalCount": inner.systems.len(), "results": results })).into_response()
    }

    fn get_system(&self, id: &str, params: &[(String, String)]) -> Response {
        let inner = self.lock();
        match inner.systems.iter().find(|s| s.id == id) {
            Some(system) => {
                Json(select_fields(system_json(system), param(params, "fields"))).into_response()
            }
            None => error(StatusCode::NOT_FOUND, "Not Found"),
        }
    }

    fn user_systems(&self, user_id: &str, params: &[(String, String)]) -> Response {
        let (limit, skip) = match paging(params) {
            Ok(paging) => paging,
            Err(message) => return error(StatusCode::BAD_REQUEST, &message),
        };
        let inner = self.lock();
        if !inner.users.iter().any(|u| u.id == user_id) {
            return error(StatusCode::NOT_FOUND, "User not found");
        }
        let mut system_ids: Vec<&str> = Vec::new();
        let bound = inner
            .direct
            .iter()
            .filter(|b| b.user_id == user_id)
            .map(|b| b.system_id.as_str())
            .chain(
                inner
                    .groups
                    .iter()
                    .filter(|g| g.user_id == user_id)
                    .map(|g| g.system_id.as_str()),
            );
        for id in bound {
            if !system_ids.contains(&id) {
                system_ids.push(id);
            }
        }
        let objects: Vec<Value> = system_ids
            .iter()
            .skip(skip)
            .take(limit)
            .map(|system_id| {
                let system = graph_object(system_id, "system");
                let direct = inner.direct(user_id, system_id);
                let mut paths: Vec<Value> = direct
                    .map(|b| json!([{ "attributes": sudo_attributes(b), "to": system }]))
                    .into_iter()
                    .collect();
                paths.extend(
                    inner
                        .groups
                        .iter()
                        .filter(|g| g.user_id == user_id && g.system_id == *system_id)
                        .map(|g| {
                            json!([
                                { "attributes": null, "to": graph_object(&g.group_id, "user_group") },
                                { "attributes": null, "to": system },
                            ])
                        }),
                );
                json!({
                    "id": system_id,
                    "type": "system",
                    "compiledAttributes": direct.map(sudo_attributes),
                    "paths": paths,
                })
            })
            .collect();
        with_total_count(objects, system_ids.len())
    }

    fn associations(&self, system_id: &str, params: &[(String, String)]) -> Response {
        let (limit, skip) = match paging(params) {
            Ok(paging) => paging,
            Err(message) => return error(StatusCode::BAD_REQUEST, &message),
        };
        let Some(targets) = param(params, "targets") else {
            return error(StatusCode::BAD_REQUEST, "targets is required");
        };
        let inner = self.lock();
        if !inner.systems.iter().any(|s| s.id == system_id) {
            return error(StatusCode::NOT_FOUND, "System not found");
        }
        let connections: Vec<Value> = match targets {
            "user" => inner
                .direct
                .iter()
                .filter(|b| b.system_id == system_id)
                .map(|b| json!({ "attributes": sudo_attributes(b), "to": graph_object(&b.user_id, "user") }))
                .collect(),
            "user_group" => {
                let mut groups: Vec<&str> = Vec::new();
                for g in inner.groups.iter().filter(|g| g.system_id == system_id) {
                    if !groups.contains(&g.group_id.as_str()) {
                        groups.push(&g.group_id);
                    }
                }
                groups
                    .into_iter()
                    .map(|id| json!({ "attributes": null, "to": graph_object(id, "user_group") }))
                    .collect()
            }
            "command" | "policy" | "policy_group" => Vec::new(),
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid targets value {other:?}"),
                )
            }
        };
        let total = connections.len();
        let page = connections.into_iter().skip(skip).take(limit).collect();
        with_total_count(page, total)
    }

    /// `POST /api/v2/accessrequests`: the user and device must exist and
    /// the user be bound to the device (directly or through a group).
    fn create_access(&self, body: Option<&Value>) -> Response {
        let mut inner = self.lock();
        let now = inner.clock.0.now();
        let Inner {
            access,
            users,
            systems,
            direct,
            groups,
            ..
        } = &mut *inner;
        access.create(body, now, |user, system| {
            if !users.iter().any(|u| u.id == user) {
                return Err((StatusCode::NOT_FOUND, "User not found".into()));
            }
            if !systems.iter().any(|s| s.id == system) {
                return Err((StatusCode::NOT_FOUND, "System not found".into()));
            }
            let bound = direct
                .iter()
                .any(|b| b.user_id == user && b.system_id == system)
                || groups
                    .iter()
                    .any(|g| g.user_id == user && g.system_id == system);
            if !bound {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "the user is not bound to the device".into(),
                ));
            }
            Ok(())
        })
    }

    fn change_association(&self, system_id: &str, body: Option<&Value>) -> Response {
        let operation = match parse_operation(body) {
            Ok(operation) => operation,
            Err(message) => return error(StatusCode::BAD_REQUEST, &message),
        };
        let mut inner = self.lock();
        if !inner.systems.iter().any(|s| s.id == system_id) {
            return error(StatusCode::NOT_FOUND, "System not found");
        }
        if !inner.users.iter().any(|u| u.id == operation.user_id) {
            return error(StatusCode::NOT_FOUND, "User not found");
        }
        let existing = inner
            .direct
            .iter()
            .position(|b| b.user_id == operation.user_id && b.system_id == system_id);
        match (operation.op.as_str(), existing) {
            ("add", Some(_)) => {
                return error(StatusCode::CONFLICT, "Association already exists");
            }
            ("add", None) => inner.direct.push(DirectBinding {
                user_id: operation.user_id,
                system_id: system_id.to_owned(),
                sudo: operation.sudo,
                without_password: operation.without_password,
            }),
            ("update", Some(index)) => {
                let binding = &mut inner.direct[index];
                binding.sudo = operation.sudo;
                binding.without_password = operation.without_password;
            }
            ("remove", Some(index)) => {
                inner.direct.remove(index);
            }
            _ => return error(StatusCode::NOT_FOUND, "Association not found"),
        }
        StatusCode::NO_CONTENT.into_response()
    }
}

/// A parsed `GraphOperation (System)` body with `type: user`.
struct Operation {
    op: String,
    user_id: String,
    sudo: bool,
    without_password: bool,
}

fn parse_operation(body: Option<&Value>) -> Result<Operation, String> {
    let Some(Value::Object(body)) = body else {
        return Err("the body must be a JSON object".to_owned());
    };
    let op = match body.get("op").and_then(Value::as_str) {
        Some(op @ ("add" | "update" | "remove")) => op.to_owned(),
        _ => return Err("op must be one of add, update, remove".to_owned()),
    };
    match body.get("type").and_then(Value::as_str) {
        Some("user") => {}
        Some("command" | "policy" | "policy_group" | "user_group") => {
            return Err("the simulator only manages associations of type user".to_owned())
        }
        _ => {
            return Err(
                "type must be one of command, policy, policy_group, user, user_group".to_owned(),
            )
        }
    }
    let user_id = match body.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => return Err("id is required".to_owned()),
    };
    let (sudo, without_password) = match body.get("attributes") {
        None | Some(Value::Null) => (false, false),
        Some(Value::Object(attributes)) => match attributes.get("sudo") {
            None | Some(Value::Null) => (false, false),
            Some(sudo) => {
                let flag = |name: &str| match sudo.get(name) {
                    None => Ok(false),
                    Some(Value::Bool(value)) => Ok(*value),
                    Some(_) => Err(format!("attributes.sudo.{name} must be a boolean")),
                };
                (flag("enabled")?, flag("withoutPassword")?)
            }
        },
        Some(_) => return Err("attributes must be an object".to_owned()),
    };
    Ok(Operation {
        op,
        user_id,
        sudo,
        without_password,
    })
}

async fn handle(
    State(fake): State<FakeJumpCloud>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let call = RecordedCall {
        method: method.as_str().to_owned(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        body: parse_body(&body),
        api_key: header("x-api-key"),
        bearer: header("authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned)),
        org_id: header("x-org-id"),
        at: chrono::Utc::now(),
    };
    if call.path == TOKEN_PATH {
        return fake.token_endpoint(&method, &headers, &body);
    }
    let latency = {
        let mut inner = fake.lock();
        inner.calls.push(call.clone());
        inner.latency
    };
    fake.arrived.send_modify(|n| *n += 1);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let failure = {
        let mut inner = fake.lock();
        if inner.down {
            return error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        }
        if !inner.authenticated(&call) {
            return error(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
        inner.take_failure(&call.method, &call.path)
    };
    let route = || {
        let response = fake.route(
            &call.method,
            &call.path,
            call.query.as_deref(),
            call.body.as_ref(),
        );
        if call.method == "POST"
            && is_association_path(&call.path)
            && response.status().is_success()
        {
            fake.lock().applied.push(call.clone());
        }
        response
    };
    match failure {
        None => route(),
        Some(Failure::Status {
            status,
            retry_after,
        }) => {
            let mut response = error(status_code(status), "Simulated failure");
            if let Some(seconds) = retry_after {
                response.headers_mut().insert(
                    HeaderName::from_static("retry-after"),
                    HeaderValue::from(seconds),
                );
            }
            response
        }
        Some(Failure::ApplyThenStatus { status }) => {
            let applied = route();
            tracing::debug!(status = %applied.status(), "fake JumpCloud applied a request before failing it");
            error(
                status_code(status),
                "Simulated failure after applying the request",
            )
        }
        Some(Failure::Hang) => std::future::pending().await,
        Some(Failure::HangUntilReleased) => {
            let mut released = fake.released.subscribe();
            let _ = released.wait_for(|go| *go).await;
            route()
        }
        Some(Failure::Redirect { status, location }) => {
            let mut response = status_code(status).into_response();
            match HeaderValue::from_str(&location) {
                Ok(value) => {
                    response
                        .headers_mut()
                        .insert(axum::http::header::LOCATION, value);
                    response
                }
                Err(_) => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "unusable redirect location",
                ),
            }
        }
    }
}

impl FakeJumpCloud {
    /// `POST /oauth2/token`: OAuth 2.0 client credentials, checked as
    /// strictly as a real authorisation server would (RFC 6749 §4.4 and
    /// §5.2): the client in `Authorization: Basic`, a form body with exactly
    /// `grant_type=client_credentials` and `scope=api`. Injected failures
    /// whose path prefix matches [`TOKEN_PATH`] and [`FakeJumpCloud::set_down`]
    /// apply here too.
    fn token_endpoint(&self, method: &Method, headers: &HeaderMap, body: &Bytes) -> Response {
        let form = parse_form(std::str::from_utf8(body).unwrap_or(""));
        let basic = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|pair| {
                pair.split_once(':')
                    .map(|(i, s)| (i.to_owned(), s.to_owned()))
            });
        let mut inner = self.lock();
        let response = self.token_answer(&mut inner, method, headers, basic.as_ref(), &form);
        inner.token_requests.push(TokenRequest {
            client_id: basic.map(|(id, _)| id),
            form,
            status: response.status().as_u16(),
        });
        drop(inner);
        self.arrived.send_modify(|n| *n += 1);
        response
    }

    fn token_answer(
        &self,
        inner: &mut Inner,
        method: &Method,
        headers: &HeaderMap,
        basic: Option<&(String, String)>,
        form: &[(String, String)],
    ) -> Response {
        if inner.down {
            return error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        }
        if *method != Method::POST {
            return oauth_error(StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
        }
        if let Some(failure) = inner.take_failure(method.as_str(), TOKEN_PATH) {
            match failure {
                Failure::Status { status, .. } | Failure::ApplyThenStatus { status } => {
                    return oauth_error(status_code(status), "server_error")
                }
                // A token request that never answers is a timeout for the
                // client; the fake answers 504 at once instead of holding
                // the lock.
                _ => return oauth_error(StatusCode::GATEWAY_TIMEOUT, "server_error"),
            }
        }
        let known = inner.service_account.as_ref().is_some_and(|account| {
            basic.is_some_and(|(id, secret)| {
                *id == account.client_id && *secret == account.client_secret
            })
        });
        if !known {
            let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"oauth2\""),
            );
            return response;
        }
        let form_type = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !form_type {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
        }
        let names: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        if sorted != ["grant_type", "scope"] {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
        }
        if param(form, "grant_type") != Some("client_credentials") {
            return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
        }
        if param(form, "scope") != Some("api") {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope");
        }
        let lifetime = inner
            .service_account
            .as_ref()
            .map_or(Duration::from_secs(3600), |a| a.lifetime);
        let token = format!(
            "jc-sim-token-{}-{}",
            inner.tokens.len() + 1,
            hex::encode(rand::random::<[u8; 12]>())
        );
        let expires_at = inner.clock.0.now()
            + chrono::TimeDelta::from_std(lifetime).unwrap_or(chrono::TimeDelta::MAX);
        inner.tokens.push(IssuedToken {
            token: token.clone(),
            expires_at,
            revoked: false,
        });
        Json(json!({
            "access_token": token,
            "expires_in": lifetime.as_secs(),
            "scope": "api",
            "token_type": "bearer",
        }))
        .into_response()
    }
}

/// An OAuth error answer: `{"error": "invalid_client"}` and its status.
fn oauth_error(status: StatusCode, word: &str) -> Response {
    (status, Json(json!({ "error": word }))).into_response()
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A JumpCloud error: `{"code": N, "message": "...", "status": "NOT_FOUND"}`.
fn error(status: StatusCode, message: &str) -> Response {
    let name = status
        .canonical_reason()
        .unwrap_or("Error")
        .to_ascii_uppercase()
        .replace([' ', '-'], "_");
    let body = json!({ "code": status.as_u16(), "message": message, "status": name });
    (status, Json(body)).into_response()
}

fn with_total_count(items: Vec<Value>, total: usize) -> Response {
    let mut response = Json(items).into_response();
    response.headers_mut().insert(
        HeaderName::from_static("x-total-count"),
        HeaderValue::from(total),
    );
    response
}

fn is_association_path(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(
        segments.as_slice(),
        ["api", "v2", "systems", _, "associations"]
    )
}

fn parse_body(body: &Bytes) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    Some(
        serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned())),
    )
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `limit` (default 10, at most 100) and `skip` (default 0).
fn paging(params: &[(String, String)]) -> Result<(usize, usize), String> {
    let number = |name: &str, default: usize| match param(params, name) {
        None | Some("") => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| format!("{name} must be a non-negative integer")),
    };
    let limit = number("limit", 10)?;
    if limit > 100 {
        return Err("limit must be at most 100".to_owned());
    }
    Ok((limit, number("skip", 0)?))
}

/// A v1 filter `field:$eq:value`, returned as `(field, value)`.
fn parse_filter(filter: &str) -> Result<(String, String), String> {
    let mut parts = filter.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(field @ ("email" | "username" | "_id")), Some("$eq"), Some(value)) => {
            Ok((field.to_owned(), value.to_owned()))
        }
        _ => Err(format!(
            "unsupported filter {filter:?} (the simulator knows email, username and _id with $eq)"
        )),
    }
}

/// `$eq` is exact, case included: JumpCloud documents list filter values as
/// case-sensitive, and a lenient simulator would hide a look-up that only
/// works when Slack and JumpCloud happen to agree on case.
fn user_matches(user: &SimUser, field: &str, value: &str) -> bool {
    match field {
        "email" => user.email == value,
        "username" => user.username == value,
        _ => user.id == value,
    }
}

/// Keeps only the space-separated `fields` (and `_id`) when the caller asked for some.
fn select_fields(object: Value, fields: Option<&str>) -> Value {
    let wanted: Vec<&str> = fields
        .unwrap_or("")
        .split([' ', ','])
        .filter(|f| !f.is_empty())
        .collect();
    match object {
        Value::Object(map) if !wanted.is_empty() => Value::Object(
            map.into_iter()
                .filter(|(k, _)| k == "_id" || wanted.contains(&k.as_str()))
                .collect::<Map<String, Value>>(),
        ),
        other => other,
    }
}

fn user_json(user: &SimUser) -> Value {
    json!({
        "_id": user.id,
        "email": user.email,
        "username": user.username,
        "sudo": user.sudo,
        "passwordless_sudo": false,
        "state": if user.suspended { "SUSPENDED" } else { "ACTIVATED" },
        "suspended": user.suspended,
        "activated": true,
        "account_locked": false,
    })
}

fn system_json(system: &SimSystem) -> Value {
    let os = match system.os_family.as_str() {
        "windows" => "Windows",
        "darwin" => "Mac OS X",
        "linux" => "Ubuntu",
        "ios" => "iOS",
        "android" => "Android",
        other => other,
    };
    let last_contact = if system.active {
        SystemTime::now()
    } else {
        SystemTime::now() - Duration::from_secs(30 * 86_400)
    };
    json!({
        "_id": system.id,
        "hostname": system.hostname,
        "displayName": system.display_name,
        "osFamily": system.os_family,
        "os": os,
        "active": system.active,
        "lastContact": rfc3339(last_contact),
    })
}

fn graph_object(id: &str, kind: &str) -> Value {
    json!({ "id": id, "type": kind, "attributes": null })
}

fn sudo_attributes(binding: &DirectBinding) -> Value {
    json!({ "sudo": { "enabled": binding.sudo, "withoutPassword": binding.without_password } })
}

/// `YYYY-MM-DDTHH:MM:SS.000Z` in UTC, as JumpCloud writes times.
fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
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

    const KEY: &str = "jc-test-key";

    async fn fake_with_data() -> FakeJumpCloud {
        let fake = FakeJumpCloud::start(KEY).await;
        fake.add_user(SimUser {
            id: "u1".into(),
            email: "Ada@Example.com".into(),
            username: "ada".into(),
            sudo: false,
            suspended: false,
        });
        fake.add_user(SimUser {
            id: "u2".into(),
            email: "bob@example.com".into(),
            username: "bob".into(),
            sudo: true,
            suspended: true,
        });
        for (id, os) in [("s1", "darwin"), ("s2", "windows")] {
            fake.add_system(SimSystem {
                id: id.into(),
                hostname: format!("{id}.local"),
                display_name: format!("Laptop {id}"),
                os_family: os.into(),
                active: true,
            });
        }
        fake
    }

    fn get(fake: &FakeJumpCloud, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .get(format!("{}{path}", fake.url()))
            .header("x-api-key", KEY)
    }

    fn post(fake: &FakeJumpCloud, path: &str, body: Value) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .post(format!("{}{path}", fake.url()))
            .header("x-api-key", KEY)
            .json(&body)
    }

    fn association(op: &str, user: &str, sudo: bool) -> Value {
        json!({
            "op": op,
            "type": "user",
            "id": user,
            "attributes": { "sudo": { "enabled": sudo, "withoutPassword": false } },
        })
    }

    #[tokio::test]
    async fn looks_up_users_by_email_and_checks_the_key() {
        let fake = fake_with_data().await;
        let response = get(
            &fake,
            "/api/systemusers?filter=email%3A%24eq%3AAda%40Example.com&limit=10&skip=0",
        )
        .header("x-org-id", "org-1")
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["totalCount"], 1);
        assert_eq!(body["results"][0]["_id"], "u1");
        assert_eq!(body["results"][0]["state"], "ACTIVATED");
        assert_eq!(body["results"][0]["sudo"], false);

        let body: Value = get(
            &fake,
            "/api/systemusers?filter=email:$eq:bob@example.com&fields=email",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(
            body["results"][0],
            json!({ "_id": "u2", "email": "bob@example.com" })
        );

        let response = reqwest::Client::new()
            .get(format!("{}/api/systemusers", fake.url()))
            .header("x-api-key", "wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], 401);
        assert_eq!(body["status"], "UNAUTHORIZED");

        let calls = fake.calls();
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[0].method, "GET");
        assert_eq!(calls[0].path, "/api/systemusers");
        assert_eq!(calls[0].org_id.as_deref(), Some("org-1"));
        assert_eq!(calls[0].api_key.as_deref(), Some(KEY));
        assert!(calls[0].query.as_deref().unwrap().contains("%24eq"));
        assert_eq!(calls[2].api_key.as_deref(), Some("wrong"));
    }

    #[tokio::test]
    async fn lists_systems_with_their_total_and_counts_only_non_gets_as_writes() {
        let fake = fake_with_data().await;
        let body: Value = get(&fake, "/api/systems?limit=1&fields=_id")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            body,
            json!({ "totalCount": 2, "results": [{ "_id": "s1" }] })
        );
        let refused = get(&fake, "/api/systems?limit=101").send().await.unwrap();
        assert_eq!(refused.status(), 400);
        assert!(fake.write_calls().is_empty());
        post(
            &fake,
            "/api/v2/systems/s1/associations",
            association("add", "u1", true),
        )
        .send()
        .await
        .unwrap();
        let writes = fake.write_calls();
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].path, "/api/v2/systems/s1/associations");
    }

    /// A token request as JumpCloud's public clients send it, with `form`
    /// as the body.
    fn token_request(
        fake: &FakeJumpCloud,
        id: &str,
        secret: &str,
        form: &str,
    ) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .post(fake.oauth_url())
            .basic_auth(id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned())
    }

    #[tokio::test]
    async fn the_token_endpoint_checks_the_client_and_the_form_exactly() {
        let fake = fake_with_data().await;
        fake.enable_service_account("sa-id", "sa-secret", Duration::from_secs(3600));
        let good = "grant_type=client_credentials&scope=api";
        let status = |response: reqwest::Response| response.status().as_u16();
        let error = |response: reqwest::Response| async move {
            let body: Value = response.json().await.unwrap();
            body["error"].as_str().unwrap().to_owned()
        };

        let wrong = token_request(&fake, "sa-id", "not-it", good)
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401);
        assert!(wrong.headers().contains_key("www-authenticate"));
        assert_eq!(error(wrong).await, "invalid_client");
        let unknown = token_request(&fake, "other", "sa-secret", good)
            .send()
            .await
            .unwrap();
        assert_eq!(status(unknown), 401);
        // The client in the body instead of the Basic header is refused.
        let in_body = reqwest::Client::new()
            .post(fake.oauth_url())
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "api"),
                ("client_id", "sa-id"),
                ("client_secret", "sa-secret"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(status(in_body), 401);
        for (form, word) in [
            ("grant_type=password&scope=api", "unsupported_grant_type"),
            ("grant_type=client_credentials&scope=admin", "invalid_scope"),
            ("grant_type=client_credentials", "invalid_request"),
            (
                "grant_type=client_credentials&scope=api&scope=api",
                "invalid_request",
            ),
            (
                "grant_type=client_credentials&scope=api&extra=1",
                "invalid_request",
            ),
        ] {
            let response = token_request(&fake, "sa-id", "sa-secret", form)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "{form}");
            assert_eq!(error(response).await, word, "{form}");
        }
        let as_json = reqwest::Client::new()
            .post(fake.oauth_url())
            .basic_auth("sa-id", Some("sa-secret"))
            .json(&json!({ "grant_type": "client_credentials", "scope": "api" }))
            .send()
            .await
            .unwrap();
        assert_eq!(status(as_json), 400);
        assert_eq!(fake.tokens_issued(), 0, "nothing issued to a bad request");

        let answer: Value = token_request(&fake, "sa-id", "sa-secret", good)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["expires_in"], 3600);
        assert_eq!(answer["token_type"], "bearer");
        let requests = fake.token_requests();
        assert_eq!(requests.len(), 10);
        assert_eq!(requests[9].client_id.as_deref(), Some("sa-id"));
        assert_eq!(requests[9].status, 200);
        assert!(fake.calls().is_empty(), "token requests are not API calls");
    }

    #[tokio::test]
    async fn the_api_takes_live_bearer_tokens_and_refuses_expired_revoked_or_unknown_ones() {
        let fake = fake_with_data().await;
        let clock = Arc::new(crate::engine::clock::ManualClock::new(chrono::Utc::now()));
        fake.use_clock(clock.clone());
        fake.enable_service_account("sa-id", "sa-secret", Duration::from_secs(600));
        let issue = || async {
            let answer: Value = token_request(
                &fake,
                "sa-id",
                "sa-secret",
                "grant_type=client_credentials&scope=api",
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
            answer["access_token"].as_str().unwrap().to_owned()
        };
        let with_token = |token: &str| {
            reqwest::Client::new()
                .get(format!("{}/api/systemusers", fake.url()))
                .bearer_auth(token)
                .send()
        };
        let token = issue().await;
        assert_eq!(with_token(&token).await.unwrap().status(), 200);
        assert_eq!(with_token("made-up").await.unwrap().status(), 401);
        clock.advance(Duration::from_secs(599));
        assert_eq!(with_token(&token).await.unwrap().status(), 200);
        clock.advance(Duration::from_secs(1));
        assert_eq!(with_token(&token).await.unwrap().status(), 401, "expired");

        let second = issue().await;
        assert_ne!(second, token);
        assert_eq!(with_token(&second).await.unwrap().status(), 200);
        fake.revoke_tokens();
        assert_eq!(with_token(&second).await.unwrap().status(), 401, "revoked");
        assert_eq!(with_token(&issue().await).await.unwrap().status(), 200);
        assert_eq!(
            get(&fake, "/api/systemusers")
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "the API key is still accepted beside the service account"
        );
        assert_eq!(fake.calls()[0].bearer.as_deref(), Some(token.as_str()));
    }

    #[tokio::test]
    async fn email_filters_match_the_case_exactly_as_jumpcloud_does() {
        let fake = fake_with_data().await;
        let count = |filter: &'static str| {
            let fake = fake.clone();
            async move {
                let body: Value = get(&fake, &format!("/api/systemusers?filter={filter}"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                body["totalCount"].as_u64().unwrap()
            }
        };
        assert_eq!(count("email:$eq:Ada@Example.com").await, 1);
        assert_eq!(count("email:$eq:ada@example.com").await, 0);
        assert_eq!(count("email:$eq:ADA@EXAMPLE.COM").await, 0);
    }

    #[tokio::test]
    async fn reports_bound_systems_and_system_details() {
        let fake = fake_with_data().await;
        fake.bind_direct("u1", "s1", false);
        fake.bind_via_group("u1", "s2", "g1");

        let response = get(&fake, "/api/v2/users/u1/systems").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-total-count"], "2");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body[0]["id"], "s1");
        assert_eq!(body[0]["type"], "system");
        assert_eq!(
            body[0]["compiledAttributes"],
            json!({ "sudo": { "enabled": false, "withoutPassword": false } })
        );
        assert_eq!(body[0]["paths"][0][0]["to"]["id"], "s1");
        assert_eq!(
            body[0]["paths"][0][0]["attributes"]["sudo"]["enabled"],
            false
        );
        assert_eq!(body[1]["id"], "s2");
        assert_eq!(body[1]["compiledAttributes"], Value::Null);
        assert_eq!(body[1]["paths"][0][0]["to"]["type"], "user_group");
        assert_eq!(body[1]["paths"][0][0]["to"]["id"], "g1");
        assert_eq!(body[1]["paths"][0][1]["to"]["id"], "s2");

        let missing = get(&fake, "/api/v2/users/nobody/systems")
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);

        let system: Value = get(&fake, "/api/systems/s1")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(system["_id"], "s1");
        assert_eq!(system["displayName"], "Laptop s1");
        assert_eq!(system["osFamily"], "darwin");
        assert_eq!(system["active"], true);
        assert!(system["lastContact"].as_str().unwrap().ends_with('Z'));
        let missing = get(&fake, "/api/systems/s9").send().await.unwrap();
        assert_eq!(missing.status(), 404);
        let body: Value = missing.json().await.unwrap();
        assert_eq!(body["status"], "NOT_FOUND");
    }

    #[tokio::test]
    async fn manages_direct_associations() {
        let fake = fake_with_data().await;
        let path = "/api/v2/systems/s1/associations";
        let send = |body: Value| post(&fake, path, body).send();

        assert_eq!(
            send(association("add", "u1", true)).await.unwrap().status(),
            204
        );
        assert_eq!(fake.direct_binding("u1", "s1"), Some(true));
        assert!(fake.is_admin("u1", "s1"));
        assert_eq!(
            send(association("add", "u1", true)).await.unwrap().status(),
            409
        );

        let listed = get(&fake, &format!("{path}?targets=user"))
            .send()
            .await
            .unwrap();
        assert_eq!(listed.headers()["x-total-count"], "1");
        let listed: Value = listed.json().await.unwrap();
        assert_eq!(
            listed,
            json!([{
                "attributes": { "sudo": { "enabled": true, "withoutPassword": false } },
                "to": { "id": "u1", "type": "user", "attributes": null },
            }])
        );
        assert_eq!(get(&fake, path).send().await.unwrap().status(), 400);

        assert_eq!(
            send(association("update", "u1", false))
                .await
                .unwrap()
                .status(),
            204
        );
        assert_eq!(fake.direct_binding("u1", "s1"), Some(false));
        assert!(!fake.is_admin("u1", "s1"));
        assert_eq!(
            send(association("remove", "u1", false))
                .await
                .unwrap()
                .status(),
            204
        );
        assert_eq!(fake.direct_binding("u1", "s1"), None);
        assert_eq!(
            send(association("update", "u1", true))
                .await
                .unwrap()
                .status(),
            404
        );
        assert_eq!(
            send(json!({ "op": "grant", "type": "user", "id": "u1" }))
                .await
                .unwrap()
                .status(),
            400
        );
        assert!(fake.is_admin("u2", "s1"), "global sudo counts");

        let ops: Vec<Value> = fake
            .writes()
            .iter()
            .map(|c| c.body.clone().unwrap()["op"].clone())
            .collect();
        assert_eq!(ops, ["add", "add", "update", "remove", "update", "grant"]);

        let triggered: Value = post(
            &fake,
            "/api/command/trigger/tempadmin-refresh",
            json!({ "user": "ada" }),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        // No command has that trigger: nothing runs.
        assert_eq!(triggered["triggered"], json!([]));
        assert_eq!(
            fake.calls().last().unwrap().body,
            Some(json!({ "user": "ada" }))
        );
    }

    #[tokio::test]
    async fn commands_are_refused_where_jumpcloud_refuses_them() {
        let fake = fake_with_data().await;
        let status = |response: reqwest::Response| response.status().as_u16();
        let command = |user: Option<&str>| {
            let mut body = json!({
                "name": "n", "command": "true", "commandType": "linux",
                "launchType": "trigger", "trigger": "t",
            });
            if let Some(user) = user {
                body["user"] = json!(user);
            }
            body
        };
        let refused = post(&fake, "/api/commands", command(None))
            .send()
            .await
            .unwrap();
        assert_eq!(status(refused), 400);
        let created: Value = post(
            &fake,
            "/api/commands",
            command(Some("000000000000000000000000")),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let id = created["_id"].as_str().unwrap().to_owned();
        let bind = |system: &str| json!({ "op": "add", "type": "system", "id": system });
        let path = format!("/api/v2/commands/{id}/associations");
        assert_eq!(
            status(post(&fake, &path, bind("nope")).send().await.unwrap()),
            404
        );
        let unknown = "/api/v2/commands/000000000000000000000bad/associations";
        assert_eq!(
            status(post(&fake, unknown, bind("s1")).send().await.unwrap()),
            404
        );
        assert_eq!(
            status(post(&fake, &path, bind("s1")).send().await.unwrap()),
            204
        );
        let nested = json!({ "targetSystemId": "s1", "text": { "a": "b" } });
        let trigger = post(&fake, "/api/command/trigger/t", nested)
            .send()
            .await
            .unwrap();
        assert_eq!(status(trigger), 400);
        assert!(fake.command_runs().is_empty());
        let flat = json!({ "targetSystemId": "s1", "noticeMessage": "hi" });
        let ran: Value = post(&fake, "/api/command/trigger/t", flat)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ran["triggered"], json!(["n"]));
        let runs = fake.command_runs();
        assert_eq!(runs.len(), 1);
        assert!(runs[0].targets_its_system());
        assert_eq!(runs[0].env["noticeMessage"], "hi");
        let wrong_key = reqwest::Client::new()
            .get(format!("{}/api/commands", fake.url()))
            .header("x-api-key", "wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(status(wrong_key), 401);
    }

    #[tokio::test]
    async fn injects_failures() {
        let fake = fake_with_data().await;
        let path = "/api/v2/systems/s1/associations";

        fake.fail_next(
            "POST",
            "/api/v2/systems/",
            1,
            Failure::Status {
                status: 429,
                retry_after: Some(3),
            },
        );
        let response = post(&fake, path, association("add", "u1", true))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "3");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], 429);
        assert_eq!(fake.direct_binding("u1", "s1"), None);

        fake.fail_next(
            "POST",
            "/api/v2/systems/",
            1,
            Failure::ApplyThenStatus { status: 502 },
        );
        let response = post(&fake, path, association("add", "u1", true))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 502);
        assert_eq!(fake.direct_binding("u1", "s1"), Some(true));

        fake.fail_next("POST", "/api/v2/systems/", 1, Failure::Hang);
        let hung = post(&fake, path, association("update", "u1", false))
            .timeout(Duration::from_millis(200))
            .send()
            .await;
        assert!(hung.unwrap_err().is_timeout());
        assert_eq!(fake.direct_binding("u1", "s1"), Some(true));
        assert_eq!(fake.writes().len(), 3);

        fake.fail_next(
            "POST",
            "/api/v2/systems/",
            1,
            Failure::Redirect {
                status: 307,
                location: "http://127.0.0.1:9/api/elsewhere".into(),
            },
        );
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}{path}", fake.url()))
            .header("x-api-key", KEY)
            .json(&association("update", "u1", false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 307);
        assert_eq!(
            response.headers()["location"],
            "http://127.0.0.1:9/api/elsewhere"
        );
        assert_eq!(fake.direct_binding("u1", "s1"), Some(true), "not applied");

        fake.set_down(true);
        let response = get(&fake, "/api/systems/s1").send().await.unwrap();
        assert_eq!(response.status(), 503);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "SERVICE_UNAVAILABLE");
        fake.set_down(false);

        fake.set_latency(Duration::from_millis(50));
        let started = std::time::Instant::now();
        let response = get(&fake, "/api/systems/s1").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(
            get(&fake, "/api/nothing").send().await.unwrap().status(),
            404
        );
    }
}
