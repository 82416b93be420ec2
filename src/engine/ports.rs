//! The ports: what the engine needs from the outside world, as traits.
//! Adapters implement them: `store/` the `Store`, `jumpcloud/` the
//! `Directory`, `slack/` and `teams/` a `Chat` each; tests and the demo may
//! swap any of them. Nothing here names a database, an HTTP library
//! or a chat product.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{
    AssociationOp, AuditEntry, ChatUserId, ConversationReference, Device, DirectBinding,
    ElevationRecord, Email, JcUserId, Notice, Presence, PriorState, Refusal, Request, RequestId,
    RequestState, SystemId, Timestamp,
};

/// Decides from a person's open requests and those they made in the
/// window whether one more is admitted (see [`Store::insert_request`]).
/// Owned, so a store may hand the insert to the task that commits a batch.
pub type Admission = std::sync::Arc<dyn Fn(usize, usize) -> Result<(), Refusal> + Send + Sync>;

/// A new request as the store inserts it: the row, its first audit line,
/// its first jobs, and what makes the command that asked for it unique.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// The request.
    pub request: Request,
    /// The command's delivery key ([`crate::engine::Delivery`]), stored with
    /// the request under a unique constraint, so a copy of the same command
    /// inserts nothing ([`Insertion::Replayed`]) at the cost of no extra write.
    pub delivery: Option<String>,
    /// Its first audit line.
    pub audit: AuditEntry,
    /// Its first jobs.
    pub jobs: Vec<NewJob>,
}

/// What became of a [`NewRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insertion {
    /// Written.
    Inserted,
    /// The admission refused it; nothing was written.
    Refused(Refusal),
    /// A request with the same delivery key exists: the command is a copy
    /// of one acted on before. Nothing was written.
    Replayed,
}

// ---------------------------------------------------------------- Clock

/// Where time comes from. Tests use a manual clock and move it; nothing in
/// the engine reads the system time directly (STYLE 7).
#[async_trait]
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
    /// Resolves once `now() >= deadline`.
    async fn sleep_until(&self, deadline: Timestamp);
}

// ---------------------------------------------------------------- Directory

/// A JumpCloud user, as far as the engine cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// `_id`.
    pub id: JcUserId,
    /// `email`.
    pub email: Email,
    /// The global `sudo` flag.
    pub global_sudo: bool,
    /// `suspended`, or `state` = SUSPENDED.
    pub suspended: bool,
}

/// How a directory call failed; the engine decides from this what to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// 401/403: the API key is wrong or lacks rights. Retrying will not help.
    #[error("JumpCloud refused the API key ({0})")]
    Unauthorized(u16),
    /// 404.
    #[error("not found in JumpCloud")]
    NotFound,
    /// 409: the thing exists already.
    #[error("already exists in JumpCloud")]
    Conflict,
    /// 429: back off, for `retry_after` when JumpCloud said so.
    #[error("JumpCloud rate limit")]
    RateLimited {
        /// `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// 5xx, timeouts, connection failures: try again later.
    #[error("JumpCloud unavailable: {0}")]
    Transient(String),
    /// Anything else (400s, unexpected shapes): retrying will not help.
    #[error("JumpCloud error: {0}")]
    Permanent(String),
    /// JumpCloud answered more than one account for the email. Picking one
    /// would be a guess about whose computer to elevate; retrying will not
    /// help until IT removes the duplicate.
    #[error("{accounts} JumpCloud accounts have this email")]
    AmbiguousEmail {
        /// How many accounts matched.
        accounts: usize,
    },
}

impl DirectoryError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient(_))
    }

    /// How long the server asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// The identity directory that holds users, devices and admin rights (JumpCloud).
#[async_trait]
pub trait Directory: Send + Sync {
    /// The one user whose email is this one, ignoring case, if any;
    /// `AmbiguousEmail` when several are.
    async fn find_user_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<DirectoryUser>, DirectoryError>;
    /// The devices bound to the user (any path), with their details.
    async fn user_devices(&self, user: &JcUserId) -> Result<Vec<Device>, DirectoryError>;
    /// The user's direct binding to the device as it is now (`None`: none).
    async fn direct_binding(
        &self,
        system: &SystemId,
        user: &JcUserId,
    ) -> Result<Option<DirectBinding>, DirectoryError>;
    /// The user's admin state on one device right now: read once, before elevating.
    async fn admin_state(
        &self,
        user: &DirectoryUser,
        system: &SystemId,
    ) -> Result<PriorState, DirectoryError>;
    /// Applies one association change.
    async fn apply(
        &self,
        system: &SystemId,
        user: &JcUserId,
        op: AssociationOp,
    ) -> Result<(), DirectoryError>;
    /// Whether the device's agent is connected, and when it last was.
    async fn presence(&self, system: &SystemId) -> Result<Presence, DirectoryError>;
}

// ---------------------------------------------------------------- Elevator

/// Whose rights, where, for which request: what every [`Elevator`] call
/// is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElevationTarget {
    /// The JumpCloud user.
    pub user: JcUserId,
    /// The device.
    pub system: SystemId,
    /// The request (JumpCloud may keep it as a remark; never the reason).
    pub request: RequestId,
}

/// What an elevation did.
#[derive(Debug, Clone, PartialEq)]
pub struct Elevated {
    /// The record to keep from now on.
    pub record: ElevationRecord,
    /// Whether JumpCloud was changed (`false`: the person was admin already).
    pub changed: bool,
    /// What to add to the audit line (the operation, the access id…).
    pub detail: serde_json::Value,
}

/// What a restoration found and did.
#[derive(Debug, Clone, PartialEq)]
pub enum Restored {
    /// The rights are back as recorded (or nothing had been changed).
    Restored {
        /// What to add to the audit line.
        detail: serde_json::Value,
    },
    /// JumpCloud had already ended the elevation by its own clock, at its
    /// expiry: nothing was left to do.
    EndedByDirectory {
        /// What to add to the audit line.
        detail: serde_json::Value,
    },
    /// Somebody changed the binding during the grant; it was left as they
    /// made it.
    LeftAlone {
        /// The direct binding found (`None`: there was none).
        found: Option<DirectBinding>,
    },
}

/// How admin rights are given and taken back (`jumpcloud.grant_mode`):
/// the engine decides when, the elevator how. Its record
/// ([`ElevationRecord`]) is stored by the engine without being looked into.
#[async_trait]
pub trait Elevator: Send + Sync {
    /// Reads, once and before any change, what the elevation must know
    /// (DESIGN 2): the record to store durably before elevating. `until`
    /// is the grant's end.
    async fn capture(
        &self,
        user: &DirectoryUser,
        target: &ElevationTarget,
        until: Timestamp,
    ) -> Result<ElevationRecord, DirectoryError>;
    /// Makes the person admin as the record says; may be called again for
    /// the same record after a failure or a crash.
    async fn elevate(
        &self,
        record: &ElevationRecord,
        target: &ElevationTarget,
    ) -> Result<Elevated, DirectoryError>;
    /// Moves the end of an elevation to `until`; returns the record to keep.
    async fn extend(
        &self,
        record: &ElevationRecord,
        target: &ElevationTarget,
        until: Timestamp,
    ) -> Result<ElevationRecord, DirectoryError>;
    /// Takes the rights back as recorded; "already gone" counts as done.
    async fn restore(
        &self,
        record: &ElevationRecord,
        target: &ElevationTarget,
    ) -> Result<Restored, DirectoryError>;
}

// ---------------------------------------------------------------- Chat

/// How a chat call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// Over the rate limit; try again after this long.
    #[error("chat rate limit")]
    RateLimited {
        /// `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// The service is down or slow; try again later.
    #[error("chat service unavailable: {0}")]
    Transient(String),
    /// The call can never succeed as made (bad channel, revoked token…).
    #[error("chat service refused: {0}")]
    Permanent(String),
}

/// A configured approver, as their chat service knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    /// Their own email from the chat service (the profile's; on Teams only
    /// for a member of our tenant), from which the engine finds their
    /// JumpCloud account: four eyes count accounts, not chat identities.
    pub email: Option<Email>,
}

/// The chat service people talk to the bot through (Slack, Teams).
#[async_trait]
pub trait Chat: Send + Sync {
    /// The requester's email address from their profile, if it has one.
    /// The request is passed whole because some services can only say who
    /// a person is within a conversation (Teams asks the conversation the
    /// command came from, `reply_to`).
    async fn user_email(&self, request: &Request) -> Result<Option<Email>, ChatError>;
    /// The person, when they are one of the configured approvers (directly
    /// or through a group); `None` otherwise. Asked while the click waits
    /// for its answer, so adapters bound it.
    async fn approver(&self, user: &ChatUserId) -> Result<Option<Approver>, ChatError>;
    /// Delivers one notice about `request`. Posting the approval card
    /// returns the new message's reference, which later notices thread under.
    async fn deliver(
        &self,
        request: &Request,
        notice: &Notice,
    ) -> Result<Option<String>, ChatError>;
}

// ---------------------------------------------------------------- Store

/// The kinds of durable job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Look up account and devices after the command was acknowledged.
    Resolve,
    /// Capture the prior state and elevate.
    Grant,
    /// Restore the prior state (at expiry, or sooner when ended early).
    Revoke,
    /// A countdown reply at this many seconds left.
    Remind(u64),
    /// Expire a request nobody decided.
    ApprovalTimeout,
    /// Name the approvers in the thread of a request still undecided
    /// (`policy.approval_reminder`); once, recorded by its transition.
    ApprovalReminder,
    /// Carry an approved extension's new end to JumpCloud and the device
    /// ([`crate::engine::Engine`]'s `on_extended` hook): written in the
    /// transaction that approves the extension, so a crash cannot lose it.
    Extend,
    /// A step on the device itself: a notice, or ending what ran elevated.
    Device(super::device::DeviceStep),
}

impl JobKind {
    /// Stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Resolve => "resolve",
            Self::Grant => "grant",
            Self::Revoke => "revoke",
            Self::Remind(_) => "remind",
            Self::ApprovalTimeout => "approval_timeout",
            Self::ApprovalReminder => "approval_reminder",
            Self::Extend => "extend",
            Self::Device(_) => "device",
        }
    }

    /// Stored argument (the reminder mark), zero otherwise.
    pub fn arg(self) -> i64 {
        match self {
            Self::Remind(secs) => secs as i64,
            Self::Device(step) => step.arg(),
            _ => 0,
        }
    }

    /// Rebuilds a kind from its stored name and argument.
    pub fn from_stored(name: &str, arg: i64) -> Option<Self> {
        Some(match name {
            "resolve" => Self::Resolve,
            "grant" => Self::Grant,
            "revoke" => Self::Revoke,
            "remind" => Self::Remind(arg.max(0) as u64),
            "approval_timeout" => Self::ApprovalTimeout,
            "approval_reminder" => Self::ApprovalReminder,
            "extend" => Self::Extend,
            "device" => Self::Device(super::device::DeviceStep::from_arg(arg)),
            _ => return None,
        })
    }
}

impl JobKind {
    /// Every stored name, as [`JobKind::name`] gives them.
    pub const NAMES: [&'static str; 8] = [
        "resolve",
        "grant",
        "revoke",
        "remind",
        "approval_timeout",
        "approval_reminder",
        "extend",
        "device",
    ];
}

/// The two durable queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Timers and work: `jobs`, by [`JobKind::name`].
    Jobs,
    /// Chat messages: `outbox`, by where the notice goes (its serde tag).
    Outbox,
}

impl Queue {
    /// The `queue` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jobs => "jobs",
            Self::Outbox => "outbox",
        }
    }

    /// Every kind of item the queue holds.
    pub fn kinds(self) -> &'static [&'static str] {
        match self {
            Self::Jobs => &JobKind::NAMES,
            Self::Outbox => &Notice::KINDS,
        }
    }
}

/// What waits in one queue, of one kind ([`Store::queue_depth`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    /// Which queue.
    pub queue: Queue,
    /// The kind (a job's stored name, a notice's kind).
    pub kind: String,
    /// Unfinished and due now (including those running).
    pub due: i64,
    /// Unfinished and due later.
    pub scheduled: i64,
    /// The earliest due time among the due ones: a job's due time, a
    /// message's queue time (or its retry's).
    pub oldest_due_at: Option<Timestamp>,
}

/// Which jobs a claim may take: revocations are claimed on their own first,
/// so look-ups and reminders never stand in front of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimScope {
    /// Only `JobKind::Revoke`.
    Revocations,
    /// Any kind.
    Any,
}

/// A job to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// What to do.
    pub kind: JobKind,
    /// Not before.
    pub due_at: Timestamp,
}

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Row id.
    pub id: i64,
    /// The request it works on.
    pub request_id: RequestId,
    /// What to do.
    pub kind: JobKind,
    /// When it was due.
    pub due_at: Timestamp,
    /// This attempt's number (1 for the first); fences completion.
    pub attempt: u32,
}

/// A claimed outbox message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Row id; messages of one request are delivered in id order.
    pub id: i64,
    /// The request it is about.
    pub request_id: RequestId,
    /// What to say.
    pub notice: Notice,
    /// Delivery attempts so far, including this one.
    pub attempt: u32,
}

/// How urgent the outside calls of the current task are. Adapters that
/// share a rate limit between tasks (JumpCloud's) serve revocations first;
/// the scheduler runs revocation jobs as [`CallPriority::Revocation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPriority {
    /// Taking rights back: never queued behind anything else.
    Revocation,
    /// Everything else.
    Ordinary,
}

tokio::task_local! {
    static CALL_PRIORITY: CallPriority;
}

impl CallPriority {
    /// The priority the current task runs at ([`CallPriority::Ordinary`]
    /// unless it runs inside [`CallPriority::scope`]).
    pub fn current() -> Self {
        CALL_PRIORITY.try_with(|p| *p).unwrap_or(Self::Ordinary)
    }

    /// Runs `work` at this priority.
    pub async fn scope<F: std::future::Future>(self, work: F) -> F::Output {
        CALL_PRIORITY.scope(self, work).await
    }
}

/// A piece of claimed work as its claimer holds it: the row and the attempt
/// that claimed it. While the work runs, its claimer renews the lease
/// ([`Store::renew_leases`]), so leases can be short without cutting long
/// work off, and a killed process's work is taken over soon after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lease {
    /// A job.
    Job {
        /// Row id.
        id: i64,
        /// The claiming attempt.
        attempt: u32,
    },
    /// An outbox message.
    Message {
        /// Row id.
        id: i64,
        /// The claiming attempt.
        attempt: u32,
    },
}

impl Job {
    /// This attempt's hold on the job.
    pub fn lease(&self) -> Lease {
        Lease::Job {
            id: self.id,
            attempt: self.attempt,
        }
    }
}

impl OutboxMessage {
    /// This attempt's hold on the message.
    pub fn lease(&self) -> Lease {
        Lease::Message {
            id: self.id,
            attempt: self.attempt,
        }
    }
}

/// One atomic state change: the conditional update, its audit entry, the
/// notices and the jobs it creates or moves, all in one transaction.
#[derive(Debug, Clone)]
pub struct Transition {
    /// Which request.
    pub request_id: RequestId,
    /// It applies only if the stored request still has this version.
    pub expected_version: i64,
    /// The request afterwards (state and every field): written whole.
    pub to: Request,
    /// The audit line.
    pub audit: AuditEntry,
    /// Messages to queue, in order.
    pub notices: Vec<Notice>,
    /// Jobs to create.
    pub jobs: Vec<NewJob>,
    /// Pending jobs of these kinds are replaced by one due at the given time.
    pub reschedule: Vec<NewJob>,
    /// Pending jobs of these kinds are dropped.
    pub cancel: Vec<JobKind>,
}

/// Everything the engine keeps. Each method is one atomic operation.
#[async_trait]
pub trait Store: Send + Sync {
    /// Whether the database answers.
    async fn ping(&self) -> anyhow::Result<()>;
    /// Inserts a new request with its first audit line and jobs, if `admit`
    /// lets it, given how many of the requester's requests are open and how
    /// many they made at or after `since`. The counts and the insert are
    /// one transaction under a lock of the requester's that holds across
    /// processes, so a burst of commands, even spread over replicas, cannot
    /// slip several past the same count. On a refusal, and for a delivery
    /// key that a stored request already has, nothing is written.
    async fn insert_request(
        &self,
        new: NewRequest,
        since: Timestamp,
        admit: Admission,
    ) -> anyhow::Result<Insertion>;
    /// One request.
    async fn request(&self, id: &RequestId) -> anyhow::Result<Option<Request>>;
    /// A person's requests that have not reached a terminal state, oldest first.
    async fn open_requests_of(&self, requester: &ChatUserId) -> anyhow::Result<Vec<Request>>;
    /// A person's requests that are open or were made at or after `since`:
    /// the open ones first (so a limit never hides an active grant behind
    /// finished ones), each part newest first; at most `limit`.
    async fn requests_of(
        &self,
        requester: &ChatUserId,
        since: Timestamp,
        limit: u32,
    ) -> anyhow::Result<Vec<Request>>;
    /// Requests of `platform` waiting for an approver's decision, oldest
    /// first; at most `limit`.
    async fn pending_approval(
        &self,
        platform: crate::domain::Platform,
        limit: u32,
    ) -> anyhow::Result<Vec<Request>>;
    /// Another open request (pending or elevated) of this JumpCloud user on this device.
    async fn open_request_for_device(
        &self,
        user: &JcUserId,
        system: &SystemId,
        except: &RequestId,
    ) -> anyhow::Result<Option<Request>>;
    /// Applies a transition if the request still has `expected_version`;
    /// `false` (and nothing written) if somebody changed it first.
    async fn transition(&self, t: &Transition) -> anyhow::Result<bool>;
    /// Records where the approval message went.
    async fn set_approval_message(&self, id: &RequestId, reference: &str) -> anyhow::Result<()>;
    /// Queues notices outside any transition (answers to clicks), due
    /// from `now`.
    async fn enqueue(
        &self,
        id: &RequestId,
        notices: &[Notice],
        now: Timestamp,
    ) -> anyhow::Result<()>;
    /// Appends an audit line outside any transition (refused clicks).
    async fn append_audit(&self, entry: &AuditEntry) -> anyhow::Result<()>;
    /// Records `key` (something unique to one delivery from the chat
    /// service, such as its signature) until `keep_until`: `true` the first
    /// time, `false` for every later sighting while it is kept. Keys whose
    /// time has passed at `now` are pruned. Atomic, so two copies that
    /// arrive at once cannot both be first.
    async fn first_sighting(
        &self,
        key: &str,
        now: Timestamp,
        keep_until: Timestamp,
    ) -> anyhow::Result<bool>;
    /// Keeps how to reach a person (see [`ConversationReference`]): the
    /// newest sighting wins (an older `seen_at` changes nothing), and a
    /// sighting without a conversation or tenant keeps the known ones.
    async fn remember_conversation_reference(
        &self,
        reference: &ConversationReference,
    ) -> anyhow::Result<()>;
    /// How to reach `user`, when their platform ever told us.
    async fn conversation_reference(
        &self,
        user: &ChatUserId,
    ) -> anyhow::Result<Option<ConversationReference>>;

    /// Claims the next due job (of `scope`) whose request has no other job
    /// in flight, leasing it until `lease_until`; the earliest due first.
    async fn claim_job(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        scope: ClaimScope,
    ) -> anyhow::Result<Option<Job>>;
    /// Marks a job done, if this attempt still holds it.
    async fn complete_job(&self, job: &Job, now: Timestamp) -> anyhow::Result<()>;
    /// Releases a job to run again at `due_at`, recording why.
    async fn retry_job(&self, job: &Job, due_at: Timestamp, error: &str) -> anyhow::Result<()>;

    /// Claims the oldest undelivered due message of each request whose
    /// earlier messages are all delivered; at most `limit`.
    async fn claim_messages(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> anyhow::Result<Vec<OutboxMessage>>;
    /// Marks a message delivered, if this attempt still holds it.
    async fn message_delivered(
        &self,
        message: &OutboxMessage,
        now: Timestamp,
    ) -> anyhow::Result<()>;
    /// Gives a message up for good (the chat service refused it), so later
    /// messages of the same request can go; if this attempt still holds it.
    async fn message_failed(
        &self,
        message: &OutboxMessage,
        now: Timestamp,
        error: &str,
    ) -> anyhow::Result<()>;
    /// Releases a message to try again at `due_at`, if this attempt still
    /// holds it. Like jobs, messages are fenced by attempt: a slow attempt
    /// whose lease another process took over can neither release nor finish
    /// the newer one (which would let the request's next message overtake it).
    async fn retry_message(
        &self,
        message: &OutboxMessage,
        due_at: Timestamp,
        error: &str,
    ) -> anyhow::Result<()>;

    /// Extends the leases of `held` (work this process is running) to
    /// `until`, in one transaction; returns those it no longer holds: a
    /// newer attempt claimed them (this process stalled past its lease), or
    /// they were finished or released meanwhile. An attempt still holds its
    /// row while no other attempt claimed it, even past its lease end.
    async fn renew_leases(&self, held: &[Lease], until: Timestamp) -> anyhow::Result<Vec<Lease>>;

    /// The earliest time any job or message becomes due (or its lease ends).
    async fn next_due(&self) -> anyhow::Result<Option<Timestamp>>;
    /// The same for revocation jobs alone: the scheduler wakes for them even
    /// while other due work waits for a worker.
    async fn next_revocation_due(&self) -> anyhow::Result<Option<Timestamp>>;
    /// The audit trail since `since`, oldest first.
    async fn audit_since(&self, since: Option<Timestamp>) -> anyhow::Result<Vec<AuditEntry>>;
    /// Counts of requests by state, for `/metrics`.
    async fn count_by_state(&self) -> anyhow::Result<Vec<(RequestState, i64)>>;
    /// Unfinished jobs and outbox messages by queue and kind, split at
    /// `now` into due and scheduled, for `/metrics`; kinds with nothing
    /// unfinished are left out.
    async fn queue_depth(&self, now: Timestamp) -> anyhow::Result<Vec<QueueDepth>>;

    /// Resolves when work may have been added or released by any process
    /// sharing the database since the last time it resolved, so a sleeping
    /// scheduler can look again before its next due time. Meant for one
    /// waiter (the scheduler). Polling by due time stays the fallback: a
    /// store that cannot hear other processes (SQLite has only one) keeps
    /// this default, which never resolves.
    async fn work_added(&self) {
        std::future::pending::<()>().await
    }

    /// Gives up every lease this process holds, so other processes (or the
    /// next start) may claim that work at once instead of after the lease.
    /// Called on graceful shutdown, after the workers stopped; never
    /// touches another process's leases.
    async fn release_leases(&self) -> anyhow::Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_job_name_is_a_stored_kind_that_names_itself() {
        for name in JobKind::NAMES {
            let kind = JobKind::from_stored(name, 0).unwrap();
            assert_eq!(kind.name(), name);
        }
    }

    #[test]
    fn every_job_kind_is_listed() {
        // A new kind fails to compile here until it is given a row, and
        // the row fails the test until NAMES lists it (the metrics export
        // only the listed kinds).
        let every = |kind: JobKind| match kind {
            JobKind::Resolve
            | JobKind::Grant
            | JobKind::Revoke
            | JobKind::Remind(_)
            | JobKind::ApprovalTimeout
            | JobKind::ApprovalReminder
            | JobKind::Extend
            | JobKind::Device(_) => kind,
        };
        let kinds = [
            JobKind::Resolve,
            JobKind::Grant,
            JobKind::Revoke,
            JobKind::Remind(60),
            JobKind::ApprovalTimeout,
            JobKind::ApprovalReminder,
            JobKind::Extend,
            JobKind::Device(super::super::device::DeviceStep::from_arg(0)),
        ];
        for kind in kinds.map(every) {
            assert!(JobKind::NAMES.contains(&kind.name()), "{}", kind.name());
        }
    }
}
