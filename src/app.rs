//! Wiring: builds the store, the adapters, the engine and the router from a
//! `Config`, binds the listener, and runs until told to stop.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use futures::FutureExt;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::engine::ports::{Chat, Clock, Directory, Store};
use crate::engine::Engine;
use crate::http::{self, AppState, Counters};
use crate::jumpcloud::JumpCloudClient;
use crate::slack::client::SlackChat;
use crate::slack::signature::SigningSecret;
use crate::store::SqliteStore;

/// A built application, listening but not yet serving.
pub struct App {
    /// The engine (tests drive its queue with `run_due`).
    pub engine: Arc<Engine>,
    store: SqliteStore,
    listener: TcpListener,
    router: axum::Router,
}

impl App {
    /// Opens the database, builds every part and binds `config.listen`
    /// (port 0 picks a free port).
    pub async fn build(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let store = SqliteStore::open(&config.database_url).await?;
        let directory: Arc<dyn Directory> =
            Arc::new(JumpCloudClient::new(config.jumpcloud.clone())?);
        let chat: Arc<dyn Chat> = Arc::new(SlackChat::new(config.slack.api.clone())?);
        let shared_store: Arc<dyn Store> = Arc::new(store.clone());
        let engine = Engine::new(
            shared_store,
            directory,
            chat,
            clock,
            config.policy.clone(),
            config.workers,
        );
        let state = AppState {
            engine: engine.clone(),
            slack_secret: SigningSecret::new(config.slack.signing_secret.clone()),
            counters: Arc::new(Counters::default()),
        };
        let listener = TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        Ok(Self {
            engine,
            store,
            listener,
            router: http::router(state),
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves HTTP and runs the scheduler until `shutdown` resolves; then
    /// finishes in-flight requests and closes the database.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shutdown = shutdown.shared();
        let scheduler = tokio::spawn(self.engine.clone().run(shutdown.clone()));
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        let _ = scheduler.await;
        self.store.close().await;
        served.context("the HTTP server failed")
    }

    /// Serves HTTP only; jobs run when the caller calls `engine.run_due()`.
    /// This is how tests make time and work deterministic.
    pub async fn serve_only(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("the HTTP server failed")
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
