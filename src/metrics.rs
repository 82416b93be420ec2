//! What `/metrics` exposes (Prometheus text format 0.0.4), recorded where
//! things happen: the routes count commands and clicks as they arrive, the
//! JumpCloud, Slack and Teams adapters count each outbound call by its
//! outcome, the engine observes the revocation lag when JumpCloud confirms
//! a restoration. Only what the store knows better (requests by state, the
//! queues) is read at scrape time, with a short budget.
//!
//! Every [`App`](crate::app::App) owns its own [`Metrics`] (one
//! `prometheus-client` registry each, no process-global recorder), so the
//! tests that run several apps in one process see only their own numbers.
//!
//! Invariant: labels take values from fixed sets (platforms, services,
//! endpoint families, outcomes, states, kinds, causes), never an id or
//! anything a person typed, so the number of series stays bounded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::domain::{EndCause, Platform, RequestState, Timestamp};
use crate::engine::ports::{Queue, QueueDepth, Store};

/// The `Content-Type` of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The most a scrape waits for the store's counts. Past it, the series read
/// from the store are left out of that scrape (they go stale rather than
/// show old numbers), and everything else is still served.
pub const STORE_READ_BUDGET: Duration = Duration::from_secs(2);

/// Bucket bounds of the revocation lag, in seconds: sub-second is the
/// normal case, a minute is where DESIGN's retry floor lands, an hour is
/// an outage.
const LAG_BUCKETS: [f64; 14] = [
    0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// A label set: fixed keys, values from fixed sets.
type Labels<const N: usize> = [(&'static str, &'static str); N];

/// An outside service the bot calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// JumpCloud's API (and its OAuth token endpoint).
    JumpCloud,
    /// Slack's Web API and `response_url`s.
    Slack,
    /// The Bot Connector, Microsoft Graph, Entra's token endpoint and the
    /// Bot Framework's OpenID metadata.
    Teams,
}

impl Service {
    /// The `service` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::JumpCloud => "jumpcloud",
            Self::Slack => "slack",
            Self::Teams => "teams",
        }
    }
}

/// How one outbound call ended: the answer's status class, or why there
/// was none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx (for Slack's Web API: and `"ok": true`).
    Success,
    /// 3xx: not followed (a redirect would carry the credential elsewhere).
    Redirect,
    /// 4xx other than 429.
    ClientError,
    /// 429.
    RateLimited,
    /// 5xx.
    ServerError,
    /// Slack answered 200 with `"ok": false` and an error code.
    ApiError,
    /// No answer in time (the client's own timeout, or a deadline of ours
    /// that gave up on the call).
    Timeout,
    /// No connection.
    Connect,
    /// Any other failure to get an answer (a broken body, a protocol error).
    Error,
}

impl Outcome {
    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "2xx",
            Self::Redirect => "3xx",
            Self::ClientError => "4xx",
            Self::RateLimited => "429",
            Self::ServerError => "5xx",
            Self::ApiError => "api_error",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Error => "error",
        }
    }

    /// The class of an HTTP status.
    pub fn of_status(status: u16) -> Self {
        match status {
            429 => Self::RateLimited,
            200..=299 => Self::Success,
            300..=399 => Self::Redirect,
            500..=599 => Self::ServerError,
            _ => Self::ClientError,
        }
    }

    /// What a reqwest call came to.
    pub fn of_reqwest(result: &Result<reqwest::Response, reqwest::Error>) -> Self {
        match result {
            Ok(response) => Self::of_status(response.status().as_u16()),
            Err(e) if e.is_timeout() => Self::Timeout,
            Err(e) if e.is_connect() => Self::Connect,
            Err(_) => Self::Error,
        }
    }
}

/// Which of `endpoints` (each `METHOD /path`, with `{id}` for any one
/// segment) a request is, matched from the first `anchor` segment of its
/// path on (so a base address with a path of its own does not matter);
/// `"other"` for none. Label values come only from `endpoints`, so an id
/// never becomes one.
pub fn endpoint_family(
    method: &str,
    path: &str,
    anchor: &str,
    endpoints: &[&'static str],
) -> &'static str {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let from_anchor = segments
        .iter()
        .position(|s| *s == anchor)
        .map_or(&segments[..], |i| &segments[i..]);
    endpoints
        .iter()
        .find(|endpoint| {
            let Some((m, template)) = endpoint.split_once(' ') else {
                return false;
            };
            let template: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
            m == method
                && template.len() == from_anchor.len()
                && template
                    .iter()
                    .zip(from_anchor)
                    .all(|(t, s)| *t == "{id}" || t == s)
        })
        .copied()
        .unwrap_or("other")
}

/// One platform's inbound traffic. Each is a plain atomic counter, made
/// once: counting a command costs one relaxed atomic add, as before.
#[derive(Debug, Clone, Default)]
pub struct Inbound {
    /// Commands handled: slash commands, or messages to the bot in Teams.
    pub commands: Counter,
    /// Button clicks handled: Block Kit actions, or Adaptive Card actions.
    pub interactions: Counter,
    /// Requests refused for their signature (Slack) or token (Teams).
    pub rejected: Counter,
}

/// This application's metrics; cheap to clone (all clones record into one
/// registry).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    slack: Inbound,
    teams: Inbound,
    revocation_lag: Family<Labels<1>, Histogram>,
    calls: Family<Labels<3>, Counter>,
    requests: Family<Labels<1>, Gauge>,
    queue_depth: Family<Labels<3>, Gauge>,
    queue_oldest_due: Family<Labels<2>, Gauge<f64, AtomicU64>>,
    socket_connections: Gauge,
    /// One scrape at a time refreshes and renders the store's series, so
    /// two scrapes cannot interleave their clear-and-set.
    scrape: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    /// Metrics that nobody serves (adapters built outside an app: the CLI,
    /// unit tests).
    fn default() -> Self {
        Self::new(&[], None)
    }
}

/// The inbound connection gauges, read from the listener's own counter at
/// each scrape.
#[derive(Debug)]
struct Connections {
    open: Arc<AtomicU64>,
    max: u64,
}

impl Collector for Connections {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in [
            (
                "tempadmin_http_connections_open",
                "Inbound connections open on listen.",
                self.open.load(Ordering::Relaxed),
            ),
            (
                "tempadmin_http_connections_max",
                "The cap on inbound connections (http.max_connections).",
                self.max,
            ),
        ] {
            let gauge = ConstGauge::new(value as i64);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// Metrics for an app that serves `platforms` (only those get command
    /// series) and, when given, counts its open connections in `open` up
    /// to `max`.
    pub fn new(platforms: &[Platform], connections: Option<(Arc<AtomicU64>, u64)>) -> Self {
        let mut registry = Registry::default();
        let commands: Family<Labels<1>, Counter> = Family::default();
        let interactions: Family<Labels<1>, Counter> = Family::default();
        let rejected: Family<Labels<1>, Counter> = Family::default();
        // Each served platform's counters are made here, in their family,
        // and kept: counting never looks the family up. A platform this app
        // does not serve gets counters nobody renders.
        let inbound = |platform: Platform| match platforms.contains(&platform) {
            true => {
                let label = [("platform", platform.as_str())];
                Inbound {
                    commands: commands.get_or_create_owned(&label),
                    interactions: interactions.get_or_create_owned(&label),
                    rejected: rejected.get_or_create_owned(&label),
                }
            }
            false => Inbound::default(),
        };
        let (slack, teams) = (inbound(Platform::Slack), inbound(Platform::Teams));
        // Counters get `_total` appended by the encoder.
        registry.register(
            "tempadmin_commands",
            "Commands handled (Slack slash commands, messages to the bot in Teams).",
            commands,
        );
        registry.register(
            "tempadmin_interactions",
            "Button clicks handled.",
            interactions,
        );
        registry.register(
            "tempadmin_rejected_requests",
            "Requests refused for their Slack signature or Teams token.",
            rejected,
        );
        let revocation_lag = Family::<Labels<1>, Histogram>::new_with_constructor(
            (|| Histogram::new(LAG_BUCKETS)) as fn() -> Histogram,
        );
        let calls = Family::default();
        let requests = Family::default();
        let queue_depth = Family::default();
        let queue_oldest_due = Family::default();
        registry.register(
            "tempadmin_revocation_lag_seconds",
            "From when a restoration was due (the grant's end, or when End now, a revoke or a failed grant asked for it) to JumpCloud's confirmation, by cause.",
            revocation_lag.clone(),
        );
        registry.register(
            "tempadmin_outbound_calls",
            "Calls to JumpCloud, Slack and Teams by service, endpoint family and outcome (status class or error kind).",
            calls.clone(),
        );
        registry.register(
            "tempadmin_requests",
            "Requests by state (read from the store at scrape time).",
            requests.clone(),
        );
        registry.register(
            "tempadmin_queue_depth",
            "Unfinished jobs and outbox messages by queue and kind; status=\"due\" is the backlog (due now, including those running), status=\"scheduled\" is waiting for its time.",
            queue_depth.clone(),
        );
        registry.register(
            "tempadmin_queue_oldest_due_age_seconds",
            "How long the oldest due, unfinished item of each queue and kind has been due (0 when none is).",
            queue_oldest_due.clone(),
        );
        let socket_connections = Gauge::default();
        registry.register(
            "tempadmin_slack_socket_connections",
            "Slack Socket Mode connections open and greeted by Slack (1 normally, 2 while one replaces the other; always 0 with slack.mode = \"http\").",
            socket_connections.clone(),
        );
        if let Some((open, max)) = connections {
            registry.register_collector(Box::new(Connections { open, max }));
        }
        Self {
            inner: Arc::new(Inner {
                registry,
                slack,
                teams,
                revocation_lag,
                calls,
                requests,
                queue_depth,
                queue_oldest_due,
                socket_connections,
                scrape: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// How many Slack Socket Mode connections are up (said hello, not
    /// closed).
    pub fn slack_socket_connections(&self, up: usize) {
        self.inner.socket_connections.set(up as i64);
    }

    /// A platform's inbound counters.
    pub fn inbound(&self, platform: Platform) -> &Inbound {
        match platform {
            Platform::Slack => &self.inner.slack,
            Platform::Teams => &self.inner.teams,
        }
    }

    /// JumpCloud confirmed a restoration `lag` after it was due.
    pub fn revocation_confirmed(&self, cause: EndCause, lag: chrono::TimeDelta) {
        let seconds = lag.num_milliseconds().max(0) as f64 / 1000.0;
        self.inner
            .revocation_lag
            .get_or_create(&[("cause", cause.as_str())])
            .observe(seconds);
    }

    /// Counts one outbound call.
    pub fn call(&self, service: Service, endpoint: &'static str, outcome: Outcome) {
        self.inner
            .calls
            .get_or_create(&[
                ("service", service.as_str()),
                ("endpoint", endpoint),
                ("outcome", outcome.as_str()),
            ])
            .inc();
    }

    /// Starts watching one outbound call: [`Call::done`] counts its outcome;
    /// a call dropped before it is done (a deadline of ours gave up on it)
    /// counts as [`Outcome::Timeout`].
    pub fn start(&self, service: Service, endpoint: &'static str) -> Call {
        Call {
            metrics: self.clone(),
            service,
            endpoint,
            done: false,
        }
    }

    /// The exposition: reads the store's series (within
    /// [`STORE_READ_BUDGET`]) and renders everything.
    pub async fn render(&self, store: &dyn Store, now: Timestamp) -> String {
        let _one_scrape = self.inner.scrape.lock().await;
        let read = async {
            let states = store.count_by_state().await?;
            let queues = store.queue_depth(now).await?;
            anyhow::Ok((states, queues))
        };
        match tokio::time::timeout(STORE_READ_BUDGET, read).await {
            Ok(Ok((states, queues))) => self.set_from_store(&states, &queues, now),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not read the store for /metrics; its series are left out");
                self.clear_store_series();
            }
            Err(_) => {
                tracing::warn!(budget = ?STORE_READ_BUDGET, "the store did not answer /metrics in time; its series are left out");
                self.clear_store_series();
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.inner.registry);
        out
    }

    fn clear_store_series(&self) {
        self.inner.requests.clear();
        self.inner.queue_depth.clear();
        self.inner.queue_oldest_due.clear();
    }

    /// Every state and every known kind gets a series, zero when the store
    /// has none, so a drained queue reads 0 rather than vanishing.
    fn set_from_store(
        &self,
        states: &[(RequestState, i64)],
        queues: &[QueueDepth],
        now: Timestamp,
    ) {
        let inner = &self.inner;
        for state in RequestState::ALL {
            let n = states
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            inner
                .requests
                .get_or_create(&[("state", state.as_str())])
                .set(n);
        }
        inner.queue_depth.clear();
        inner.queue_oldest_due.clear();
        for queue in [Queue::Jobs, Queue::Outbox] {
            for kind in queue.kinds() {
                let found = queues.iter().find(|d| d.queue == queue && d.kind == *kind);
                let (due, scheduled, oldest) =
                    found.map_or((0, 0, None), |d| (d.due, d.scheduled, d.oldest_due_at));
                let labels = |status| {
                    [
                        ("queue", queue.as_str()),
                        ("kind", *kind),
                        ("status", status),
                    ]
                };
                inner.queue_depth.get_or_create(&labels("due")).set(due);
                inner
                    .queue_depth
                    .get_or_create(&labels("scheduled"))
                    .set(scheduled);
                let age = oldest.map_or(0.0, |at| {
                    (now - at).num_milliseconds().max(0) as f64 / 1000.0
                });
                inner
                    .queue_oldest_due
                    .get_or_create(&[("queue", queue.as_str()), ("kind", *kind)])
                    .set(age);
            }
        }
    }
}

/// One outbound call being watched (see [`Metrics::start`]).
#[must_use = "a call that is never done counts as a timeout"]
pub struct Call {
    metrics: Metrics,
    service: Service,
    endpoint: &'static str,
    done: bool,
}

impl Call {
    /// Counts the call's outcome.
    pub fn done(mut self, outcome: Outcome) {
        self.done = true;
        self.metrics.call(self.service, self.endpoint, outcome);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.done {
            self.metrics
                .call(self.service, self.endpoint, Outcome::Timeout);
        }
    }
}
