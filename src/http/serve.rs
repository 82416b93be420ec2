//! Serving a router over HTTP/1.1 so that slow, idle or too many clients
//! cannot take the process down with them.
//!
//! Invariant: at most `max_connections` inbound connections hold a file
//! descriptor at once (the rest wait in the kernel's accept queue, which costs
//! the process none), none of them lives longer than the header or request
//! timeout without making progress, and shutdown ends within
//! `shutdown_timeout` however the clients behave. What is left of the
//! open-file limit stays free for the database and for the JumpCloud and
//! Slack calls that revoke on time.
//!
//! The pieces are hyper's and tower-http's, not ours: hyper's HTTP/1 builder
//! with `header_read_timeout` (which also runs while a kept-alive connection
//! waits for its next request), tower-http's `TimeoutLayer` around each whole
//! request (the handlers buffer the body, so a body that stops arriving is
//! inside it), hyper-util's `GracefulShutdown`, and axum's `Listener`, which
//! backs off on `EMFILE` instead of spinning. The connection cap is a
//! semaphore whose permit is taken before `accept`, as mini-redis does.
//! `axum::serve` has none of these knobs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::serve::Listener;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower_http::timeout::TimeoutLayer;

use crate::config::HttpConfig;

/// Descriptors kept free for everything that is not an inbound connection
/// beyond the scheduler's own calls: SQLite's files, the listeners, logs,
/// the calls made while answering a click. The scheduler's workers (one
/// outbound connection each at most) are added to it.
pub const FD_RESERVE: u64 = 256;

/// The default connection cap never goes above this, even when the
/// open-file limit is huge: a Slack bot sees a handful of requests at once,
/// and every open connection costs memory.
pub const MAX_CONNECTIONS_CEILING: usize = 1024;

/// Connections of its own for the `metrics_listen` address (taken from the
/// reserve), so that `/metrics` stays readable while `listen` is flooded.
pub const METRICS_CONNECTIONS: usize = 8;

/// Threads of the runtime that answers chat requests (see [`serve_apart`]).
const EDGE_THREADS: usize = 2;

/// [`serve`] on a runtime of its own, on threads of its own, and returns
/// when it has finished. The scheduler's jobs and outbox deliveries run
/// by the hundred on the main runtime; in one runtime an acknowledgement
/// queued behind them in tokio's run queue whenever the cores were busy
/// (Slack gives up after 3 s). On threads of their own, mostly idle, the
/// answers get the cores as soon as a request arrives: the kernel shares
/// CPU between threads, and tokio never had priorities.
pub async fn serve_apart(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The listener moves to the new runtime's reactor, so that accepting
    // does not wait for the busy one's.
    let listener = listener.into_std()?;
    run_apart("tempadmin-edge", async move {
        let listener = TcpListener::from_std(listener)?;
        serve(listener, router, limits, shutdown).await;
        anyhow::Ok(())
    })
    .await?
}

/// Runs `work` on a runtime of its own with [`EDGE_THREADS`] threads
/// named `name`, and returns its outcome when it has finished: the HTTP
/// server ([`serve_apart`]) and Slack's Socket Mode client, whose answers
/// are due within 3 s however busy the scheduler is.
pub async fn run_apart<T: Send + 'static>(
    name: &str,
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> anyhow::Result<T> {
    let (done, finished) = tokio::sync::oneshot::channel();
    let thread_name = name.to_owned();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let ran = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(EDGE_THREADS)
                .thread_name(thread_name)
                .enable_all()
                .build()
                .map(|runtime| runtime.block_on(work));
            let _ = done.send(ran);
        })?;
    Ok(finished
        .await
        .map_err(|_| anyhow::anyhow!("the {name} thread ended without a word"))??)
}

/// The connection cap and timeouts, resolved for this process.
#[derive(Debug, Clone)]
pub struct Limits {
    /// See [`HttpConfig::header_timeout`].
    pub header_timeout: Duration,
    /// See [`HttpConfig::request_timeout`].
    pub request_timeout: Duration,
    /// See [`HttpConfig::shutdown_timeout`].
    pub shutdown_timeout: Duration,
    /// One permit per open inbound connection.
    permits: Arc<Semaphore>,
    max_connections: usize,
    /// How many connections are open now (for `/metrics`).
    open: Arc<AtomicU64>,
}

impl Limits {
    /// Resolves `config` against the current open-file limit: a configured
    /// cap is taken as it is (with a warning when it leaves less than the
    /// reserve), a missing one is derived with [`default_max_connections`].
    /// `outbound` is how many outbound calls the scheduler may have open.
    pub fn resolve(config: &HttpConfig, outbound: usize) -> Self {
        let soft = open_file_limit().map(|(soft, _)| soft);
        let reserve = FD_RESERVE + outbound as u64;
        let max_connections = match (config.max_connections, soft) {
            (Some(n), Some(soft)) => {
                if n as u64 + reserve > soft {
                    tracing::warn!(
                        max_connections = n,
                        open_file_limit = soft,
                        reserve,
                        "http.max_connections leaves fewer descriptors than the reserve for the database and outbound calls"
                    );
                }
                n
            }
            (Some(n), None) => n,
            (None, Some(soft)) => default_max_connections(soft, outbound),
            (None, None) => MAX_CONNECTIONS_CEILING,
        };
        Self {
            header_timeout: config.header_timeout,
            request_timeout: config.request_timeout,
            shutdown_timeout: config.shutdown_timeout,
            permits: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            open: Arc::default(),
        }
    }

    /// The same timeouts with [`METRICS_CONNECTIONS`] connections of their
    /// own, for the metrics listener.
    pub fn for_metrics(&self) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(METRICS_CONNECTIONS)),
            max_connections: METRICS_CONNECTIONS,
            open: Arc::default(),
            ..self.clone()
        }
    }

    /// The cap on open inbound connections.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The number of connections open now, kept up to date by [`serve`].
    pub fn open_connections(&self) -> Arc<AtomicU64> {
        self.open.clone()
    }
}

/// One open connection's share of the limits; given back when the
/// connection's task ends, however it ends (aborted tasks included).
struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Arc<AtomicU64>,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, open: Arc<AtomicU64>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self {
            _permit: permit,
            open,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection cap for a soft open-file limit of `soft` and `outbound`
/// scheduler calls: the limit less [`FD_RESERVE`] plus `outbound` (or half
/// the limit when it is small), at most [`MAX_CONNECTIONS_CEILING`], at
/// least 1.
pub fn default_max_connections(soft: u64, outbound: usize) -> usize {
    let reserve = (FD_RESERVE + outbound as u64).min(soft / 2);
    let cap = soft.saturating_sub(reserve).max(1);
    usize::try_from(cap).map_or(MAX_CONNECTIONS_CEILING, |c| c.min(MAX_CONNECTIONS_CEILING))
}

/// The process's (soft, hard) open-file limit, when the platform has one.
pub fn open_file_limit() -> Option<(u64, u64)> {
    rlimit::getrlimit(rlimit::Resource::NOFILE).ok()
}

/// Raises the soft open-file limit to the hard limit, so that the cap and
/// reserve above have room (many systems start services at a soft limit of
/// 1,024 with a far higher hard limit). Returns the soft limit in force
/// afterwards; on failure the limit stays as it was.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves,
/// then stops accepting, lets open requests finish and cuts whatever is
/// still open after `limits.shutdown_timeout`.
pub async fn serve(
    mut listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let router = router.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // The permit comes first: at the cap, nothing is accepted, so a
        // flood waits in the kernel's queue instead of in our descriptors.
        let permit = tokio::select! {
            permit = limits.permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        let slot = Slot::new(permit, limits.open.clone());
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(e) = connection.await {
                // Timeouts and clients that hang up are routine here.
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
        while connections.try_join_next().is_some() {}
    }
    // New clients are refused from here on.
    drop(listener);
    let open = connections.len();
    if open > 0 {
        tracing::info!(open, "waiting for open connections to finish");
    }
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "closing connections that did not finish in time"
        );
    }
    connections.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_the_reserve_free() {
        assert_eq!(default_max_connections(1024, 0), 768);
        assert_eq!(
            default_max_connections(1024, 128),
            640,
            "the workers' calls are kept free too"
        );
        assert_eq!(
            default_max_connections(1 << 20, 256),
            MAX_CONNECTIONS_CEILING
        );
        // A tiny limit still leaves half of it for everything else.
        assert_eq!(default_max_connections(256, 64), 128);
        assert_eq!(default_max_connections(1, 64), 1);
    }

    #[test]
    fn raising_the_open_file_limit_reaches_the_hard_limit() {
        let Some((soft_before, hard)) = open_file_limit() else {
            return;
        };
        let soft_after = raise_open_file_limit().expect("raising to the hard limit is allowed");
        assert!(soft_after >= soft_before);
        let (soft_now, hard_now) = open_file_limit().unwrap();
        assert_eq!(soft_now, soft_after);
        assert_eq!(hard_now, hard);
        // macOS caps the soft limit at OPEN_MAX below an unlimited hard one.
        if cfg!(target_os = "linux") {
            assert_eq!(soft_now, hard);
        }
    }

    #[test]
    fn a_configured_cap_is_taken_as_it_is() {
        let limits = Limits::resolve(
            &HttpConfig {
                max_connections: Some(3),
                ..HttpConfig::default()
            },
            64,
        );
        assert_eq!(limits.max_connections(), 3);
        assert_eq!(limits.permits.available_permits(), 3);
    }
}
