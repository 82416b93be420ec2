//! Wiring: builds the store, the adapters, the engine and the router from a
//! `Config`, binds the listeners, and runs until told to stop. Serving goes
//! through `http::serve`, whose limits keep slow clients from taking the
//! descriptors that revocations need.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use tokio::net::TcpListener;

use crate::config::{Config, SlackConfig, SlackMode};
use crate::domain::Platform;
use crate::engine::device::DeviceHook;
use crate::engine::ports::{Chat, Clock, Directory};
use crate::engine::{Chats, Engine};
use crate::http::serve::{self, Limits};
use crate::http::slack_inbound::SocketEnvelopes;
use crate::http::{self, AppState, SlackEdge, TeamsEdge};
use crate::jumpcloud::commands::JumpCloudDevices;
use crate::jumpcloud::{JumpCloudClient, JumpCloudElevator};
use crate::metrics::Metrics;
use crate::slack::client::{IdentityError, SlackChat};
use crate::slack::origin::Ours;
use crate::slack::signature::SigningSecret;
use crate::slack::socket_mode::{OpenError, SocketModeClient, SocketModeSettings};
use crate::store::Database;
use crate::teams::auth::BotFrameworkAuth;
use crate::teams::chat::TeamsChat;

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
    /// Slack's Socket Mode connection, when `slack.mode = "socket"`.
    socket: Option<Arc<SocketModeClient>>,
}

impl App {
    /// Opens the database, builds every part and binds `config.listen`
    /// (port 0 picks a free port).
    pub async fn build(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let store = Database::open(&config.database_url).await?;
        let limits = Limits::resolve(&config.http, config.workers.total);
        // This app's own registry: apps that share a process (the tests)
        // never mix their numbers.
        let platforms: Vec<Platform> = [
            (Platform::Slack, config.slack.is_some()),
            (Platform::Teams, config.teams.is_some()),
        ]
        .into_iter()
        .filter_map(|(platform, served)| served.then_some(platform))
        .collect();
        let metrics = Metrics::new(
            &platforms,
            Some((limits.open_connections(), limits.max_connections() as u64)),
        );
        let jumpcloud =
            JumpCloudClient::recording(config.jumpcloud.clone(), clock.clone(), metrics.clone())?;
        let elevator = Arc::new(JumpCloudElevator::new(
            jumpcloud.clone(),
            config.grant_mode,
            clock.clone(),
        ));
        // One client for both: they share the rate limit and the token.
        let device = config.device.enabled().then(|| DeviceHook {
            settings: config.device,
            commands: Arc::new(JumpCloudDevices::new(
                jumpcloud.clone(),
                config.device.end_elevated,
            )),
        });
        let directory: Arc<dyn Directory> = Arc::new(jumpcloud);
        let mut chats = Chats::default();
        let mut slack_edge = None;
        if let Some(slack_config) = &config.slack {
            let slack =
                Arc::new(SlackChat::new(slack_config.api.clone())?.with_metrics(metrics.clone()));
            let secret = match &slack_config.mode {
                SlackMode::Http { signing_secret } => {
                    Some(SigningSecret::new(signing_secret.clone()))
                }
                SlackMode::Socket { .. } => None,
            };
            let edge = Arc::new(SlackEdge {
                secret,
                hooks: slack.hook_hosts().clone(),
                ours: OnceLock::new(),
                chat: slack.clone(),
            });
            learn_who_we_are(slack.clone(), edge.clone(), slack_config).await?;
            let chat: Arc<dyn Chat> = slack;
            chats = chats.with(Platform::Slack, chat);
            slack_edge = Some(edge);
        }
        let mut teams_edge = None;
        if let Some(settings) = &config.teams {
            let teams = Arc::new(
                TeamsChat::new(settings.clone(), clock.clone(), store.store())
                    .with_metrics(metrics.clone()),
            );
            let auth = BotFrameworkAuth::new(
                settings,
                crate::teams::http_client(settings.timeout),
                clock.clone(),
            )
            .with_metrics(metrics.clone());
            let chat: Arc<dyn Chat> = teams.clone();
            chats = chats.with(Platform::Teams, chat);
            teams_edge = Some(Arc::new(TeamsEdge { auth, chat: teams }));
        }
        let engine = Engine::with_device(
            store.store(),
            directory,
            elevator,
            chats,
            clock,
            config.policy.clone(),
            config.workers,
            device,
            metrics,
        );
        let state = AppState {
            engine: engine.clone(),
            slack: slack_edge,
            teams: teams_edge,
        };
        let socket = match config.slack.as_ref().map(|s| (&s.mode, s)) {
            Some((SlackMode::Socket { app_token }, slack)) => Some(
                socket_mode(
                    SocketModeSettings {
                        api_url: slack.api.api_url.clone(),
                        app_token: app_token.clone(),
                        timeout: slack.api.timeout,
                    },
                    SocketEnvelopes::new(state.clone()),
                )
                .await?,
            ),
            _ => None,
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
            socket,
        })
    }

    /// The database the application runs on.
    pub fn database(&self) -> &Database {
        &self.store
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
    /// its connections (within `http.shutdown_timeout`). The chat routes
    /// answer from threads of their own ([`serve::serve_apart`]).
    async fn serve(
        listener: TcpListener,
        router: axum::Router,
        metrics: Option<(TcpListener, axum::Router)>,
        limits: Limits,
        socket: Option<Arc<SocketModeClient>>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shutdown = shutdown.shared();
        let socket = {
            let shutdown = shutdown.clone();
            async move {
                if let Some(client) = socket {
                    // Envelopes are answered from threads of their own, as
                    // the HTTP routes are.
                    let ran = serve::run_apart("tempadmin-socket", client.run(shutdown)).await;
                    if let Err(e) = ran {
                        tracing::error!(error = %format!("{e:#}"), "the Socket Mode client stopped");
                    }
                }
            }
        };
        let metrics = {
            let (limits, shutdown) = (limits.clone(), shutdown.clone());
            async move {
                if let Some((listener, router)) = metrics {
                    serve::serve(listener, router, limits.for_metrics(), shutdown).await;
                }
            }
        };
        let (served, (), ()) = tokio::join!(
            serve::serve_apart(listener, router, limits, shutdown),
            metrics,
            socket
        );
        served
    }

    /// Serves HTTP and runs the scheduler until `shutdown` resolves; then
    /// finishes in-flight requests and closes the database.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shutdown = shutdown.shared();
        let scheduler = tokio::spawn(self.engine.clone().run(shutdown.clone()));
        let served = Self::serve(
            self.listener,
            self.router,
            self.metrics,
            self.limits,
            self.socket,
            shutdown,
        )
        .await;
        let _ = scheduler.await;
        self.store.shut_down().await;
        served
    }

    /// Serves HTTP only; jobs run when the caller calls `engine.run_due()`.
    /// This is how tests make time and work deterministic. Closes the
    /// database when done, so that a new `App` may open the same SQLite file.
    pub async fn serve_only(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let served = Self::serve(
            self.listener,
            self.router,
            self.metrics,
            self.limits,
            self.socket,
            shutdown,
        )
        .await;
        self.store.shut_down().await;
        served
    }
}

/// Asks Slack which workspace, bot and app the token belongs to, so that
/// payloads from anywhere else are refused. A refused token stops start-up
/// with a clear message. A Slack that does not answer does not: revocations
/// due meanwhile must still run, so the bot starts, keeps asking, and
/// answers Slack payloads with "starting" until Slack has said.
async fn learn_who_we_are(
    slack: Arc<SlackChat>,
    edge: Arc<SlackEdge>,
    config: &SlackConfig,
) -> anyhow::Result<()> {
    let (teams, channel) = (
        config.team_ids.clone(),
        config.api.approvals_channel.clone(),
    );
    let learnt = move |identity: crate::slack::origin::Identity| {
        tracing::info!(
            team_id = %identity.team_id,
            app_id = %identity.app_id,
            bot_user_id = %identity.user_id,
            "Slack says the bot token is ours"
        );
        let _ = edge.ours.set(Ours::new(&identity, &teams, &channel));
    };
    match slack.identity().await {
        Ok(identity) => {
            learnt(identity);
            Ok(())
        }
        Err(e @ IdentityError::Refused(_)) => Err(anyhow::Error::new(e)),
        Err(e) => {
            tracing::warn!(error = %e, "starting without Slack; Slack payloads wait until it answers");
            tokio::spawn(async move {
                let mut wait = Duration::from_secs(2);
                loop {
                    tokio::time::sleep(wait).await;
                    match slack.identity().await {
                        Ok(identity) => return learnt(identity),
                        Err(e @ IdentityError::Refused(_)) => {
                            return tracing::error!(error = %e, "Slack payloads stay refused")
                        }
                        Err(e) => tracing::warn!(error = %e, "Slack still does not answer"),
                    }
                    wait = (wait * 2).min(Duration::from_secs(60));
                }
            });
            Ok(())
        }
    }
}

/// The Socket Mode client, once Slack has accepted the app-level token: a
/// refused token stops start-up with what to set. A Slack that does not
/// answer does not stop it (revocations due meanwhile must still run); the
/// client keeps trying.
async fn socket_mode(
    settings: SocketModeSettings,
    envelopes: SocketEnvelopes,
) -> anyhow::Result<Arc<SocketModeClient>> {
    let metrics = envelopes.metrics();
    let client = SocketModeClient::new(settings, Arc::new(envelopes), metrics)?;
    match client.check_token().await {
        Ok(()) => {}
        Err(e @ OpenError::Refused(_)) => return Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "starting without a Socket Mode connection; retrying")
        }
    }
    Ok(Arc::new(client))
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
