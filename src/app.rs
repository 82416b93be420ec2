//! Wiring: builds the store, the adapters, the engine and the router from a
//! `Config`, binds the listeners, and runs until told to stop. Serving goes
//! through `http::serve`, whose limits keep slow clients from taking the
//! descriptors that revocations need.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use futures::FutureExt;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::domain::Platform;
use crate::engine::ports::{Chat, Clock, Directory};
use crate::engine::{Chats, Engine};
use crate::http::serve::{self, Limits};
use crate::http::{self, AppState, Counters};
use crate::jumpcloud::JumpCloudClient;
use crate::slack::client::SlackChat;
use crate::slack::signature::SigningSecret;
use crate::store::Database;

/// A built application, listening but not yet serving.
pub struct App {
    /// The engine (tests drive its queue with `run_due`).
    pub engine: Arc<Engine>,
    store: Database,
    listener: TcpListener,
    router: axum::Router,
    /// `/metrics` on its own address, when `metrics_listen` is set.
    metrics: Option<(TcpListener, axum::Router)>,
    limits: Limits,
}

impl App {
    /// Opens the database, builds every part and binds `config.listen`
    /// (port 0 picks a free port).
    pub async fn build(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let store = Database::open(&config.database_url).await?;
        let directory: Arc<dyn Directory> =
            Arc::new(JumpCloudClient::new(config.jumpcloud.clone())?);
        let chat: Arc<dyn Chat> = Arc::new(SlackChat::new(config.slack.api.clone())?);
        let engine = Engine::new(
            store.store(),
            directory,
            Chats::default().with(Platform::Slack, chat),
            clock,
            config.policy.clone(),
            config.workers,
        );
        let limits = Limits::resolve(&config.http, config.workers.total);
        let state = AppState {
            engine: engine.clone(),
            slack_secret: SigningSecret::new(config.slack.signing_secret.clone()),
            counters: Arc::new(Counters {
                open_connections: limits.open_connections(),
                max_connections: limits.max_connections() as u64,
                ..Counters::default()
            }),
        };
        let listener = TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let (router, metrics) = match &config.metrics_listen {
            None => (http::router(state), None),
            Some(address) => {
                let metrics = TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address} (metrics_listen)"))?;
                (
                    http::api_router(state.clone()),
                    Some((metrics, http::metrics_router(state))),
                )
            }
        };
        Ok(Self {
            engine,
            store,
            listener,
            router,
            metrics,
            limits,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The port `/metrics` is served on when `metrics_listen` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        let (listener, _) = self.metrics.as_ref()?;
        listener.local_addr().ok().map(|a| a.port())
    }

    /// The cap on open inbound connections in force.
    pub fn max_connections(&self) -> usize {
        self.limits.max_connections()
    }

    /// Serves every listener until `shutdown` resolves and each has closed
    /// its connections (within `http.shutdown_timeout`).
    async fn serve(
        listener: TcpListener,
        router: axum::Router,
        metrics: Option<(TcpListener, axum::Router)>,
        limits: Limits,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let shutdown = shutdown.shared();
        let metrics = {
            let (limits, shutdown) = (limits.clone(), shutdown.clone());
            async move {
                if let Some((listener, router)) = metrics {
                    serve::serve(listener, router, limits.for_metrics(), shutdown).await;
                }
            }
        };
        tokio::join!(serve::serve(listener, router, limits, shutdown), metrics);
    }

    /// Serves HTTP and runs the scheduler until `shutdown` resolves; then
    /// finishes in-flight requests and closes the database.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shutdown = shutdown.shared();
        let scheduler = tokio::spawn(self.engine.clone().run(shutdown.clone()));
        Self::serve(
            self.listener,
            self.router,
            self.metrics,
            self.limits,
            shutdown,
        )
        .await;
        let _ = scheduler.await;
        self.store.shut_down().await;
        Ok(())
    }

    /// Serves HTTP only; jobs run when the caller calls `engine.run_due()`.
    /// This is how tests make time and work deterministic. Closes the
    /// database when done, so that a new `App` may open the same SQLite file.
    pub async fn serve_only(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        Self::serve(
            self.listener,
            self.router,
            self.metrics,
            self.limits,
            shutdown,
        )
        .await;
        self.store.shut_down().await;
        Ok(())
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
