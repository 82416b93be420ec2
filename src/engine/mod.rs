//! The grant engine: the only place that decides. It turns commands, clicks
//! and due jobs into transitions of a request, and every transition goes to
//! the store as one atomic write with its audit line, its notices (the
//! outbox) and its timers (jobs). Nothing the engine must remember lives only
//! in memory, so a restart loses nothing (DESIGN 4).
//!
//! Invariant (DESIGN 1): the revocation job is written in the same
//! transaction that approves the elevation, before JumpCloud is touched, and
//! it is retried until JumpCloud confirms the restoration.

pub mod clock;
pub mod device;
mod extend;
#[cfg(test)]
mod fakes;
pub mod home;
mod jobs;
pub mod ports;
pub mod retry;
mod scheduler;
#[cfg(test)]
mod tests;

pub use scheduler::{Workers, SHUTDOWN_GRACE};

use std::sync::Arc;

use serde_json::json;
use tokio::sync::Notify;

use crate::domain::audit::BOT_ACTOR;
use crate::domain::request::{bounds, clip};
use crate::domain::stage::{self, Stage};
use crate::domain::{
    AuditAction, AuditEntry, ChatUserId, Command, Decision, Email, Event, IllegalMove, Move,
    Notice, Platform, Policy, PrivateBody, Refusal, Request, RequestId, RequestState, SystemId,
    Timestamp,
};
use crate::metrics::Metrics;
use ports::{
    Admission, Approver, Chat, ChatError, Clock, Directory, DirectoryError, Elevator, Insertion,
    JobKind, NewJob, NewRequest, Store, Transition,
};

/// What the engine answers at once to a command (rendered by the chat adapter
/// into the immediate, private HTTP response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// How to use the bot.
    Help(Policy),
    /// Refused, with the reason.
    Refused(Refusal),
    /// Accepted; account and devices are being looked up.
    Checking(Box<Request>),
    /// The person's open requests.
    Status(Vec<Request>),
    /// `/tempadmin revoke`: these were ended or withdrawn.
    Revoking(Vec<Request>),
    /// `/tempadmin extend`: this grant's extension went to the approvers.
    Extending(Box<Request>),
    /// This very command was delivered before and was acted on then; a
    /// copy (a replay) changes nothing.
    AlreadyReceived,
}

/// What makes one delivery from the chat service unique (Slack: the signed
/// timestamp and a digest of the body, whatever the signature's spelling;
/// Teams: the activity's id), so that the same delivery sent again is
/// recognised and not acted on twice. A click's key is kept at least as long
/// as the chat service's own check would still accept the copy; a
/// command's key is kept with the request it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Unique to the delivery, with a prefix naming the chat service.
    pub key: String,
    /// After this, the chat adapter refuses the copy on its own.
    pub keep_until: Timestamp,
}

/// A command as it arrived from a verified chat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandInput {
    /// Who typed it.
    pub user: ChatUserId,
    /// What followed `/tempadmin`.
    pub text: String,
    /// Where later private answers go (Slack: the `response_url`).
    pub reply_to: Option<String>,
    /// Which delivery this was, when the chat service can be replayed.
    pub delivery: Option<Delivery>,
}

/// A button click as it arrived from a verified chat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Click {
    /// Who clicked.
    pub user: ChatUserId,
    /// Which request the button belongs to.
    pub request_id: RequestId,
    /// Where a private answer to the clicker goes.
    pub reply_to: Option<String>,
    /// Which delivery this was, when the chat service can be replayed.
    pub delivery: Option<Delivery>,
}

/// The engine and everything it talks to.
pub struct Engine {
    store: Arc<dyn Store>,
    directory: Arc<dyn Directory>,
    /// How rights are given and taken back (the grant mode).
    elevator: Arc<dyn Elevator>,
    chats: Chats,
    clock: Arc<dyn Clock>,
    policy: Policy,
    workers: Workers,
    /// The policy's per-person limits, as the store applies them.
    volume: Admission,
    /// Commands being handled right now; beyond its permits a command is
    /// refused at once as busy (see [`COMMANDS_IN_FLIGHT`]).
    admission: tokio::sync::Semaphore,
    wake: Notify,
    /// `[device]`: notices and ending what ran elevated, when configured.
    device: Option<device::DeviceHook>,
    /// Where the revocation lag is recorded.
    metrics: Metrics,
}

/// The chat adapters, one for each platform in use. Every request stays on
/// its requester's platform, so each notice goes to that platform's adapter.
#[derive(Clone, Default)]
pub struct Chats {
    slack: Option<Arc<dyn Chat>>,
    teams: Option<Arc<dyn Chat>>,
}

impl Chats {
    /// These adapters plus `chat` for `platform`.
    pub fn with(mut self, platform: Platform, chat: Arc<dyn Chat>) -> Self {
        match platform {
            Platform::Slack => self.slack = Some(chat),
            Platform::Teams => self.teams = Some(chat),
        }
        self
    }

    /// The adapter for `platform`; a platform that is not configured (a
    /// request left from an earlier configuration) is a permanent failure.
    fn get(&self, platform: Platform) -> Result<&Arc<dyn Chat>, ChatError> {
        match platform {
            Platform::Slack => self.slack.as_ref(),
            Platform::Teams => self.teams.as_ref(),
        }
        .ok_or_else(|| ChatError::Permanent(format!("{platform} is not configured")))
    }
}

/// How many commands may be handled at once. Past this the database is
/// not keeping up, and queueing more would only make every answer late
/// (Slack gives up after 3 s) and crowd the revocations' writes: refuse at
/// once instead, without touching the database.
pub const COMMANDS_IN_FLIGHT: usize = 64;

/// The most the approver's JumpCloud look-up may take: it runs while the
/// click waits for its answer (Slack gives up after 3 s, and the approver
/// check has had up to 2 s of it). Slower than this, the approver is asked
/// to try again.
const ACCOUNT_CHECK_BUDGET: std::time::Duration = std::time::Duration::from_millis(900);

/// The timers of a request waiting for a decision, dropped once it is
/// decided, withdrawn, refused or timed out.
const UNDECIDED_TIMERS: [JobKind; 2] = [JobKind::ApprovalTimeout, JobKind::ApprovalReminder];

/// How often a user action re-reads and retries after losing a race with
/// another writer of the same request.
const RACE_RETRIES: usize = 5;

impl Engine {
    /// Builds an engine over its ports, with a scheduler pool of `workers`.
    pub fn new(
        store: Arc<dyn Store>,
        directory: Arc<dyn Directory>,
        elevator: Arc<dyn Elevator>,
        chats: Chats,
        clock: Arc<dyn Clock>,
        policy: Policy,
        workers: Workers,
    ) -> Arc<Self> {
        Self::with_device(
            store,
            directory,
            elevator,
            chats,
            clock,
            policy,
            workers,
            None,
            Metrics::default(),
        )
    }

    /// Like [`Engine::new`], with the device side (`[device]`) when given,
    /// recording into the app's `metrics`.
    #[allow(clippy::too_many_arguments)]
    pub fn with_device(
        store: Arc<dyn Store>,
        directory: Arc<dyn Directory>,
        elevator: Arc<dyn Elevator>,
        chats: Chats,
        clock: Arc<dyn Clock>,
        policy: Policy,
        workers: Workers,
        device: Option<device::DeviceHook>,
        metrics: Metrics,
    ) -> Arc<Self> {
        let limits = policy.clone();
        Arc::new(Self {
            volume: Arc::new(move |open, last_hour| limits.check_volume(open, last_hour)),
            store,
            directory,
            elevator,
            chats,
            clock,
            policy,
            workers,
            admission: tokio::sync::Semaphore::new(COMMANDS_IN_FLIGHT),
            wake: Notify::new(),
            device,
            metrics,
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The store (for health checks and the audit export).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock in force.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// What this engine and its app record for `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The requester's email from their chat profile, on their platform.
    async fn user_email(&self, request: &Request) -> Result<Option<Email>, ChatError> {
        self.chats
            .get(request.platform())?
            .user_email(request)
            .await
    }

    /// The person, when they are an approver on their platform.
    async fn approver(&self, user: &ChatUserId) -> Result<Option<Approver>, ChatError> {
        self.chats.get(user.platform())?.approver(user).await
    }

    /// Delivers a notice through the request's platform.
    async fn deliver_notice(
        &self,
        request: &Request,
        notice: &Notice,
    ) -> Result<Option<String>, ChatError> {
        self.chats
            .get(request.platform())?
            .deliver(request, notice)
            .await
    }

    /// Handles `/tempadmin …`. Only cheap checks and one insert happen here,
    /// so the chat service gets its answer in milliseconds; account and
    /// device look-ups run afterwards as a job. `help`, `status` and every
    /// refusal write nothing; a new request is one insert that also keeps
    /// the command's delivery key, which is how a copy of it is recognised.
    #[tracing::instrument(skip_all, fields(user = %input.user))]
    pub async fn handle_command(&self, input: CommandInput) -> anyhow::Result<Reply> {
        let Ok(_admitted) = self.admission.try_acquire() else {
            tracing::warn!("too many commands at once; refused as busy");
            return Ok(Reply::Refused(Refusal::Busy));
        };
        let policy = &self.policy;
        let (duration, words) = match Command::parse(&input.text) {
            Err(e) => {
                return Ok(Reply::Refused(Refusal::BadDuration {
                    input: e.0,
                    min: policy.min_duration,
                    max: policy.max_duration,
                }))
            }
            Ok(Command::Help) => return Ok(Reply::Help(policy.clone())),
            Ok(Command::Status) => {
                return Ok(Reply::Status(
                    self.store.open_requests_of(&input.user).await?,
                ))
            }
            // A copy of a revoke ends nothing more than the original did:
            // every end is a conditional move, so it needs no remembering.
            Ok(Command::Revoke) => return self.revoke_all(&input.user).await,
            Ok(Command::Extend { duration }) => {
                return self.extend_by_command(&input.user, duration).await
            }
            Ok(Command::Request { duration, words }) => (duration, words),
        };
        if let Err(refusal) = policy.check_duration(duration) {
            return Ok(Reply::Refused(refusal));
        }
        // The reason is checked again once a device name may have used up the
        // first word; with no words at all it is missing for sure.
        if let Err(refusal) = policy.check_reason(&words.join(" ")) {
            return Ok(Reply::Refused(refusal));
        }
        let now = self.now();
        let request = Request::new(input.user.clone(), input.reply_to, duration, words, now);
        let audit = self.audit(
            &request,
            None,
            input.user.as_str(),
            AuditAction::Requested,
            json!({
                "duration": duration.to_string(),
                "text": clip(&input.text, bounds::AUDITED_TEXT),
            }),
        );
        let new = NewRequest {
            delivery: input.delivery.map(|d| d.key),
            audit,
            jobs: vec![NewJob {
                kind: JobKind::Resolve,
                due_at: now,
            }],
            request,
        };
        let hour_ago = now - chrono::TimeDelta::hours(1);
        // The person's open requests and those of the past hour, against
        // `policy.max_open_requests` and `policy.max_requests_per_hour`,
        // counted by the store together with the insert.
        match self
            .store
            .insert_request(new.clone(), hour_ago, self.volume.clone())
            .await?
        {
            Insertion::Inserted => {}
            Insertion::Refused(refusal) => {
                tracing::info!(?refusal, "per-person limit reached");
                return Ok(Reply::Refused(refusal));
            }
            Insertion::Replayed => {
                tracing::warn!("a command delivered again (a replay); not acted on");
                return Ok(Reply::AlreadyReceived);
            }
        }
        tracing::info!(request_id = %new.request.id, "request accepted; resolving");
        self.wake.notify_one();
        Ok(Reply::Checking(Box::new(new.request)))
    }

    /// `/tempadmin revoke`: ends every elevation of the person and withdraws
    /// their undecided requests.
    async fn revoke_all(&self, user: &ChatUserId) -> anyhow::Result<Reply> {
        let mut touched = Vec::new();
        for request in self.store.open_requests_of(user).await? {
            if let Some(done) = self.end_or_withdraw(&request.id, user).await? {
                touched.push(done);
            }
        }
        if touched.is_empty() {
            return Ok(Reply::Refused(Refusal::NothingToRevoke));
        }
        Ok(Reply::Revoking(touched))
    }

    async fn end_or_withdraw(
        &self,
        id: &RequestId,
        user: &ChatUserId,
    ) -> anyhow::Result<Option<Request>> {
        for _ in 0..RACE_RETRIES {
            let Some(request) = self.store.request(id).await? else {
                return Ok(None);
            };
            let t = match &request.stage {
                Stage::Approved(_) | Stage::Active(_) => self.end_early(&request, user),
                Stage::Resolving(_) | Stage::AwaitingDevice(_) | Stage::PendingApproval(_) => {
                    let withdraw = Move::Withdraw {
                        by: user.clone(),
                        at: self.now(),
                    };
                    self.transition(&request, withdraw, user.as_str(), json!({}))
                        .map(|mut t| {
                            t.notices = vec![
                                Notice::RefreshCard,
                                Notice::Thread {
                                    event: Event::Cancelled,
                                },
                            ];
                            t.cancel = vec![
                                JobKind::ApprovalTimeout,
                                JobKind::ApprovalReminder,
                                JobKind::Resolve,
                            ];
                            t
                        })
                }
                Stage::Revoking(_)
                | Stage::Ended(_)
                | Stage::Refused(_)
                | Stage::Denied(_)
                | Stage::TimedOut(_)
                | Stage::Cancelled(_) => return Ok(None),
            };
            let t = match t {
                Ok(t) => t,
                Err(illegal) => {
                    self.refused_move(&request, illegal);
                    return Ok(None);
                }
            };
            if self.store.transition(&t).await? {
                self.wake.notify_one();
                return Ok(Some(t.to));
            }
        }
        anyhow::bail!("request {id} kept changing under a revoke")
    }

    /// The transition that moves an elevation to restoration now.
    fn end_early(&self, request: &Request, by: &ChatUserId) -> Result<Transition, IllegalMove> {
        let end = Move::EndEarly {
            by: by.clone(),
            at: self.now(),
        };
        let mut t = self.transition(request, end, by.as_str(), json!({}))?;
        t.reschedule = vec![NewJob {
            kind: JobKind::Revoke,
            due_at: self.now(),
        }];
        t.notices = vec![Notice::RefreshCard];
        Ok(t)
    }

    /// An approver clicked Approve or Deny.
    #[tracing::instrument(skip_all, fields(request_id = %click.request_id, user = %click.user, approve))]
    pub async fn decide(&self, click: Click, approve: bool) -> anyhow::Result<()> {
        if !self.first_click(&click).await? {
            return Ok(());
        }
        let Some(request) = self.clicked_request(&click).await? else {
            return Ok(());
        };
        if click.user == request.requester {
            return self
                .refuse_click(&request, &click, Refusal::OwnRequest)
                .await;
        }
        let approver = match self.approver(&click.user).await {
            Ok(Some(approver)) => approver,
            Ok(None) => {
                return self
                    .refuse_click(&request, &click, Refusal::NotApprover)
                    .await
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not check approver membership");
                return self
                    .refuse_click(&request, &click, Refusal::ChatUnavailable)
                    .await;
            }
        };
        if let Stage::Active(active) = &request.stage {
            if active.extension.is_some() {
                if let Err(refusal) = self.other_account(&approver, &active.account).await {
                    return self.refuse_click(&request, &click, refusal).await;
                }
                return self.decide_extension(click, approve).await;
            }
        }
        let Stage::PendingApproval(pending) = &request.stage else {
            let refusal = Refusal::AlreadyDecided {
                state: request.state(),
            };
            return self.refuse_click(&request, &click, refusal).await;
        };
        if let Err(refusal) = self.other_account(&approver, &pending.account).await {
            return self.refuse_click(&request, &click, refusal).await;
        }
        for _ in 0..RACE_RETRIES {
            let Some(request) = self.store.request(&click.request_id).await? else {
                return Ok(());
            };
            if request.state() != RequestState::PendingApproval {
                let refusal = Refusal::AlreadyDecided {
                    state: request.state(),
                };
                return self.refuse_click(&request, &click, refusal).await;
            }
            let now = self.now();
            let decision = Decision {
                by: click.user.clone(),
                at: now,
            };
            let by = click.user.clone();
            let event = if approve {
                Move::Approve(decision)
            } else {
                Move::Deny(decision)
            };
            let mut t = match self.transition(&request, event, click.user.as_str(), json!({})) {
                Ok(t) => t,
                Err(illegal) => {
                    self.refused_move(&request, illegal);
                    return Ok(());
                }
            };
            if approve {
                t.notices = vec![
                    Notice::RefreshCard,
                    Notice::Thread {
                        event: Event::Approved { by: by.clone() },
                    },
                    Notice::Direct {
                        event: Event::Approved { by },
                    },
                ];
                // The revocation exists before JumpCloud is touched (DESIGN 1). Its
                // due time is a safety net; it moves to the real expiry once the
                // elevation is confirmed.
                t.jobs = vec![
                    NewJob {
                        kind: JobKind::Grant,
                        due_at: now,
                    },
                    NewJob {
                        kind: JobKind::Revoke,
                        due_at: now + request.duration.as_chrono(),
                    },
                ];
                t.cancel = UNDECIDED_TIMERS.to_vec();
            } else {
                t.notices = vec![
                    Notice::RefreshCard,
                    Notice::Thread {
                        event: Event::Denied { by: by.clone() },
                    },
                    Notice::Direct {
                        event: Event::Denied { by },
                    },
                ];
                t.cancel = UNDECIDED_TIMERS.to_vec();
            }
            if self.store.transition(&t).await? {
                tracing::info!(state = t.to.state().as_str(), "decision recorded");
                self.wake.notify_one();
                return Ok(());
            }
        }
        anyhow::bail!(
            "request {} kept changing under a decision",
            click.request_id
        )
    }

    /// End now: the requester or an approver ends an elevation early.
    #[tracing::instrument(skip_all, fields(request_id = %click.request_id, user = %click.user))]
    pub async fn end_now(&self, click: Click) -> anyhow::Result<()> {
        if !self.first_click(&click).await? {
            return Ok(());
        }
        let Some(request) = self.clicked_request(&click).await? else {
            return Ok(());
        };
        if click.user != request.requester {
            let approver = matches!(self.approver(&click.user).await, Ok(Some(_)));
            if !approver {
                return self
                    .refuse_click(&request, &click, Refusal::NotAllowedToEnd)
                    .await;
            }
        }
        for _ in 0..RACE_RETRIES {
            let Some(request) = self.store.request(&click.request_id).await? else {
                return Ok(());
            };
            if !matches!(
                request.state(),
                RequestState::Approved | RequestState::Active
            ) {
                let refusal = Refusal::AlreadyDecided {
                    state: request.state(),
                };
                return self.refuse_click(&request, &click, refusal).await;
            }
            let t = match self.end_early(&request, &click.user) {
                Ok(t) => t,
                Err(illegal) => {
                    self.refused_move(&request, illegal);
                    return Ok(());
                }
            };
            if self.store.transition(&t).await? {
                self.wake.notify_one();
                return Ok(());
            }
        }
        anyhow::bail!("request {} kept changing under End now", click.request_id)
    }

    /// The requester picked one of the offered devices.
    #[tracing::instrument(skip_all, fields(request_id = %click.request_id, system_id = %system))]
    pub async fn pick_device(&self, click: Click, system: SystemId) -> anyhow::Result<()> {
        if !self.first_click(&click).await? {
            return Ok(());
        }
        let Some(request) = self.clicked_request(&click).await? else {
            return Ok(());
        };
        let chosen = match &request.stage {
            Stage::AwaitingDevice(awaiting) if click.user == request.requester => {
                awaiting.candidates.iter().find(|d| d.id == system).cloned()
            }
            _ => None,
        };
        let Some(device) = chosen else {
            return self
                .refuse_click(&request, &click, Refusal::DeviceNotOffered)
                .await;
        };
        let detail = json!({ "system_id": system });
        let pick = Move::PickDevice { device };
        let mut t = match self.transition(&request, pick, click.user.as_str(), detail) {
            Ok(t) => t,
            Err(illegal) => {
                self.refused_move(&request, illegal);
                return Ok(());
            }
        };
        t.jobs = vec![NewJob {
            kind: JobKind::Resolve,
            due_at: self.now(),
        }];
        if self.store.transition(&t).await? {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// The request a click names, when it exists on the clicker's own
    /// platform. A click on an unknown request, or on a request of another
    /// platform, gets no answer from the engine: an answer would go through
    /// the request's platform, and it would tell the clicker that the id
    /// exists (DESIGN 5: nothing revealed).
    async fn clicked_request(&self, click: &Click) -> anyhow::Result<Option<Request>> {
        let request = self.store.request(&click.request_id).await?;
        match request {
            Some(request) if request.platform() == click.user.platform() => Ok(Some(request)),
            Some(_) => {
                tracing::warn!("a click on another platform's request; not acted on");
                Ok(None)
            }
            None => {
                tracing::warn!("a click on an unknown request; not acted on");
                Ok(None)
            }
        }
    }

    /// Four eyes by account (DESIGN 5): the approver's own JumpCloud
    /// account, found by their chat email as a requester's is, must not be
    /// the one the request would elevate. A second chat identity (another
    /// workspace, the other platform, a guest account) of the requester is
    /// the same person. An approver the bot cannot tell apart from the
    /// requester (no email, several accounts with it) decides nothing.
    async fn other_account(
        &self,
        approver: &Approver,
        account: &stage::Account,
    ) -> Result<(), Refusal> {
        let Some(email) = &approver.email else {
            tracing::warn!("an approver without an email in their chat profile");
            return Err(Refusal::ApproverUnverified);
        };
        let elevated = &account.jc_user;
        let found = tokio::time::timeout(
            ACCOUNT_CHECK_BUDGET,
            self.directory.find_user_by_email(email),
        )
        .await;
        match found {
            Ok(Ok(Some(account))) if &account.id == elevated => Err(Refusal::OwnAccount),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(DirectoryError::AmbiguousEmail { .. })) => Err(Refusal::ApproverUnverified),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not look up the approver's JumpCloud account");
                Err(Refusal::ApproverCheckUnavailable)
            }
            Err(_) => {
                tracing::warn!("JumpCloud did not answer the approver look-up in time");
                Err(Refusal::ApproverCheckUnavailable)
            }
        }
    }

    /// Tells the clicker privately why nothing happened, and audits the attempt.
    async fn refuse_click(
        &self,
        request: &Request,
        click: &Click,
        refusal: Refusal,
    ) -> anyhow::Result<()> {
        tracing::info!(?refusal, "click refused");
        let entry = self.audit(
            request,
            Some(request.state()),
            click.user.as_str(),
            AuditAction::ClickRefused,
            serde_json::to_value(&refusal)?,
        );
        self.store.append_audit(&entry).await?;
        let Some(reply_to) = click.reply_to.clone() else {
            return Ok(());
        };
        let notice = Notice::Private {
            reply_to: Some(reply_to),
            body: PrivateBody::Refused(refusal),
        };
        self.store
            .enqueue(&request.id, &[notice], self.now())
            .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Whether this click's delivery is new (or cannot be told apart); a
    /// copy of one already accepted must not act again. Clicks are few, so
    /// each is remembered on its own; commands keep their key in the
    /// request they create instead.
    async fn first_click(&self, click: &Click) -> anyhow::Result<bool> {
        let Some(delivery) = &click.delivery else {
            return Ok(true);
        };
        let first = self
            .store
            .first_sighting(&delivery.key, self.now(), delivery.keep_until)
            .await?;
        if !first {
            tracing::warn!("a click delivered again (a replay); not acted on");
        }
        Ok(first)
    }

    /// The transition that applies `event` to `before`, with its audit
    /// line (the move names its action); callers add notices and jobs.
    /// Every transition is built here, through [`Request::apply`], so a
    /// move the state machine does not allow is refused in every build.
    fn transition(
        &self,
        before: &Request,
        event: Move,
        actor: &str,
        detail: serde_json::Value,
    ) -> Result<Transition, IllegalMove> {
        let action = event.action();
        let after = before.apply(event)?;
        let audit = self.audit(&after, Some(before.state()), actor, action, detail);
        Ok(Transition {
            request_id: before.id.clone(),
            expected_version: before.version,
            to: after,
            audit,
            notices: Vec::new(),
            jobs: Vec::new(),
            reschedule: Vec::new(),
            cancel: Vec::new(),
        })
    }

    /// Logs a move the state machine refused; the request stays as it was.
    /// A refused move is a bug in the engine (it asked for a move its own
    /// checks should have ruled out), never something a person can cause
    /// on purpose, so it is logged as an error and otherwise ignored.
    fn refused_move(&self, request: &Request, illegal: IllegalMove) {
        tracing::error!(
            request_id = %request.id,
            from = illegal.from.as_str(),
            event = illegal.event.as_str(),
            "illegal move refused; the request is left as it was"
        );
    }

    fn audit(
        &self,
        request: &Request,
        before: Option<RequestState>,
        actor: &str,
        action: AuditAction,
        detail: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            at: self.now(),
            actor: actor.to_string(),
            action,
            request_id: request.id.clone(),
            before,
            after: Some(request.state()),
            detail,
        }
    }

    /// An audit line for what the bot does on its own.
    fn bot_transition(
        &self,
        before: &Request,
        event: Move,
        detail: serde_json::Value,
    ) -> Result<Transition, IllegalMove> {
        self.transition(before, event, BOT_ACTOR, detail)
    }
}
