//! What each durable job does. A job reads its request afresh, acts, and
//! writes one transition; when it loses a race with a person's click it is
//! simply run again, and when a remote service fails it is retried later.

use std::time::Duration;

use serde_json::json;

use super::ports::{DirectoryError, Job, JobKind, NewJob, OutboxMessage};
use super::retry::{backoff, Patience};
use super::Engine;
use crate::domain::request::{choose_device, DeviceChoice};
use crate::domain::{
    AssociationOp, AuditAction, EndCause, Event, Notice, PrivateBody, Refusal, Request,
    RequestState, Restoration, Timestamp,
};

/// What became of one run of a job.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Finished for good.
    Done,
    /// Run again at this time, for this reason.
    RetryAt(Timestamp, String),
}

/// After this many failed restorations the thread is told, and again every
/// `REVOKE_ALARM_EVERY` attempts after that.
const REVOKE_ALARM_AFTER: u32 = 3;
const REVOKE_ALARM_EVERY: u32 = 20;

/// How often a look-up at resolve time is retried before the person is told
/// that JumpCloud or Slack is unavailable (they are waiting for an answer).
const RESOLVE_ATTEMPTS: u32 = 2;

impl Engine {
    /// Runs one claimed job.
    pub(crate) async fn run_job(&self, job: &Job) -> anyhow::Result<Outcome> {
        let Some(request) = self.store.request(&job.request_id).await? else {
            return Ok(Outcome::Done);
        };
        match job.kind {
            JobKind::Resolve => self.resolve(job, request).await,
            JobKind::Grant => self.grant(job, request).await,
            JobKind::Revoke => self.revoke(job, request).await,
            JobKind::Remind(secs) => self.remind(request, secs).await,
            JobKind::ApprovalTimeout => self.approval_timeout(request).await,
        }
    }

    fn retry_soon(&self, why: &str) -> Outcome {
        Outcome::RetryAt(self.now(), why.to_string())
    }

    fn retry_after(
        &self,
        attempt: u32,
        hint: Option<Duration>,
        patience: Patience,
        why: String,
    ) -> Outcome {
        let wait = backoff(attempt, hint, patience);
        Outcome::RetryAt(
            self.now() + chrono::TimeDelta::from_std(wait).unwrap_or_default(),
            why,
        )
    }

    // ------------------------------------------------------------ resolve

    /// Chat user → email → JumpCloud user → devices → the approvers.
    async fn resolve(&self, job: &Job, request: Request) -> anyhow::Result<Outcome> {
        if request.state != RequestState::Resolving {
            return Ok(Outcome::Done);
        }
        let email = match self.user_email(&request).await {
            Ok(Some(email)) => email,
            Ok(None) => return self.refuse(&request, Refusal::NoEmail).await,
            Err(e) if job.attempt < RESOLVE_ATTEMPTS => {
                return Ok(self.retry_after(
                    job.attempt,
                    e.retry_hint(),
                    Patience::Ordinary,
                    e.to_string(),
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "chat profile look-up failed");
                return self.refuse(&request, Refusal::ChatUnavailable).await;
            }
        };
        let user = match self.directory.find_user_by_email(&email).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                return self
                    .refuse(&request, Refusal::NoDirectoryAccount { email })
                    .await
            }
            Err(DirectoryError::AmbiguousEmail { accounts }) => {
                let refusal = Refusal::AmbiguousDirectoryAccount { email, accounts };
                return self.refuse(&request, refusal).await;
            }
            Err(e) => return self.directory_failed_at_resolve(job, &request, e).await,
        };
        if user.suspended {
            return self.refuse(&request, Refusal::Suspended { email }).await;
        }
        let devices = match self.directory.user_devices(&user.id).await {
            Ok(devices) => devices,
            Err(e) => return self.directory_failed_at_resolve(job, &request, e).await,
        };
        let (device, reason) = match &request.device {
            // Picked from the offered list: use today's view of that device.
            Some(picked) => match devices
                .iter()
                .find(|d| d.id == picked.id && d.is_eligible())
            {
                Some(d) => (d.clone(), request.words.join(" ")),
                None => return self.refuse(&request, Refusal::DeviceNotOffered).await,
            },
            None => match choose_device(&devices, &request.words) {
                DeviceChoice::Chosen { device, reason } => (device, reason),
                DeviceChoice::NoneEligible => {
                    return self
                        .refuse(&request, Refusal::NoEligibleDevice { email })
                        .await
                }
                DeviceChoice::Ask(candidates) => {
                    let mut to = request.clone();
                    to.state = RequestState::AwaitingDevice;
                    to.email = Some(email);
                    to.jc_user = Some(user.id.clone());
                    to.candidates = candidates;
                    let detail = json!({ "candidates": to.candidates.len() });
                    let mut t =
                        self.bot_transition(&request, to, AuditAction::DeviceChoiceAsked, detail);
                    t.notices = vec![Notice::Private {
                        reply_to: None,
                        body: PrivateBody::PickDevice,
                    }];
                    t.reschedule = vec![self.approval_deadline()];
                    return self.commit(t).await;
                }
            },
        };
        if let Err(refusal) = self.policy.check_reason(&reason) {
            return self.refuse(&request, refusal).await;
        }
        if user.global_sudo || device.compiled_sudo {
            let refusal = Refusal::AlreadyAdmin {
                hostname: device.hostname.clone(),
                through: None,
            };
            return self.refuse(&request, refusal).await;
        }
        if let Some(other) = self
            .store
            .open_request_for_device(&user.id, &device.id, &request.id)
            .await?
        {
            let refusal = Refusal::AlreadyAdmin {
                hostname: device.hostname.clone(),
                through: Some(other.id),
            };
            return self.refuse(&request, refusal).await;
        }
        let mut to = request.clone();
        to.state = RequestState::PendingApproval;
        to.email = Some(email);
        to.jc_user = Some(user.id.clone());
        to.reason = reason;
        to.candidates.clear();
        let detail = json!({
            "jumpcloud_user": user.id,
            "system_id": device.id,
            "hostname": device.hostname,
            "online": device.online,
        });
        to.device = Some(device);
        let mut t = self.bot_transition(&request, to, AuditAction::SentToApprovers, detail);
        t.notices = vec![
            Notice::ApprovalCard,
            Notice::Private {
                reply_to: None,
                body: PrivateBody::Sent,
            },
        ];
        t.reschedule = vec![self.approval_deadline()];
        self.commit(t).await
    }

    fn approval_deadline(&self) -> NewJob {
        NewJob {
            kind: JobKind::ApprovalTimeout,
            due_at: self.now() + self.policy.approval_timeout.as_chrono(),
        }
    }

    async fn directory_failed_at_resolve(
        &self,
        job: &Job,
        request: &Request,
        e: DirectoryError,
    ) -> anyhow::Result<Outcome> {
        if e.is_retryable() && job.attempt < RESOLVE_ATTEMPTS {
            return Ok(self.retry_after(
                job.attempt,
                e.retry_after(),
                Patience::Ordinary,
                e.to_string(),
            ));
        }
        let refusal = match e {
            DirectoryError::Unauthorized(_) => {
                tracing::error!(error = %e, "JumpCloud refused the API key; check JUMPCLOUD_API_KEY and its role");
                Refusal::DirectoryMisconfigured
            }
            _ => {
                tracing::warn!(error = %e, "JumpCloud look-up failed");
                Refusal::DirectoryUnavailable
            }
        };
        self.refuse(request, refusal).await
    }

    /// Ends a request before it reached approvers, telling the requester why.
    async fn refuse(&self, request: &Request, refusal: Refusal) -> anyhow::Result<Outcome> {
        let mut to = request.clone();
        to.state = RequestState::Refused;
        to.ended_at = Some(self.now());
        let mut t = self.bot_transition(
            request,
            to,
            AuditAction::Refused,
            serde_json::to_value(&refusal)?,
        );
        t.notices = vec![Notice::Private {
            reply_to: None,
            body: PrivateBody::Refused(refusal),
        }];
        t.cancel = vec![JobKind::ApprovalTimeout];
        self.commit(t).await
    }

    async fn commit(&self, t: super::ports::Transition) -> anyhow::Result<Outcome> {
        if self.store.transition(&t).await? {
            self.wake.notify_one();
            Ok(Outcome::Done)
        } else {
            Ok(self.retry_soon("the request changed meanwhile"))
        }
    }

    // ------------------------------------------------------------ grant

    /// Checks today's facts, records the prior state and the grant's end
    /// once, then elevates. The clock starts at the first elevation attempt:
    /// a retry, or a restart after a crash, never extends it.
    async fn grant(&self, job: &Job, request: Request) -> anyhow::Result<Outcome> {
        if request.state != RequestState::Approved {
            return Ok(Outcome::Done);
        }
        let (Some(device), Some(jc_user)) = (request.device.clone(), request.jc_user.clone())
        else {
            anyhow::bail!(
                "approved request {} lacks its device or account",
                request.id
            );
        };
        let request = match &request.prior {
            Some(_) => request,
            None => match self.prepare_grant(job, &request).await? {
                Ok(prepared) => prepared,
                Err(outcome) => return Ok(outcome),
            },
        };
        let prior = request.prior.clone().expect("prior recorded above");
        let until = request
            .expires_at
            .or_else(|| request.decided_at.map(|d| d + request.duration.as_chrono()))
            .unwrap_or_else(|| self.now() + request.duration.as_chrono());
        if self.now() >= until {
            // Time ran out before JumpCloud confirmed (JumpCloud kept
            // failing, or the bot was down): no further elevation. The
            // revocation job, due at `until`, restores whatever was applied.
            tracing::warn!(request_id = %request.id, %until, "grant time ran out before the elevation was confirmed");
            return Ok(Outcome::Done);
        }
        let changed = match prior.elevation() {
            None => false,
            Some(op) => {
                let mut result = self.directory.apply(&device.id, &jc_user, op).await;
                if let (AssociationOp::Add { sudo }, Err(DirectoryError::Conflict)) = (op, &result)
                {
                    // The binding exists although none did before: an earlier
                    // attempt of ours added it and we never heard back.
                    let again = AssociationOp::Update {
                        sudo,
                        without_password: false,
                    };
                    result = self.directory.apply(&device.id, &jc_user, again).await;
                }
                if let Err(e) = result {
                    return self.grant_error(job, &request, e).await;
                }
                true
            }
        };
        let mut to = request.clone();
        to.state = RequestState::Active;
        to.elevated_at = Some(self.now());
        to.expires_at = Some(until);
        let detail =
            json!({ "changed": changed, "operation": prior.elevation(), "expires_at": until });
        let mut t = self.bot_transition(&request, to, AuditAction::Elevated, detail);
        t.notices = vec![
            Notice::RefreshCard,
            Notice::Thread {
                event: Event::Elevated { until, changed },
            },
            Notice::Direct {
                event: Event::Elevated { until, changed },
            },
        ];
        t.jobs = self
            .policy
            .reminders_for(request.duration)
            .into_iter()
            .map(|mark| NewJob {
                kind: JobKind::Remind(mark.as_secs()),
                due_at: until - mark.as_chrono(),
            })
            .filter(|reminder| reminder.due_at > self.now())
            .collect();
        tracing::info!(request_id = %request.id, %until, changed, "elevation confirmed");
        self.commit(t).await
    }

    /// Before the first elevation attempt: re-checks that the account may
    /// still be elevated on the device today, then records the prior state
    /// and the grant's end in one durable transition, with the revocation
    /// moved to that end. `Err` carries what the job should do instead.
    async fn prepare_grant(
        &self,
        job: &Job,
        request: &Request,
    ) -> anyhow::Result<Result<Request, Outcome>> {
        let (Some(device), Some(jc_user), Some(email)) = (
            request.device.clone(),
            request.jc_user.clone(),
            request.email.clone(),
        ) else {
            anyhow::bail!(
                "approved request {} lacks its device or account",
                request.id
            );
        };
        // Decide on today's facts: the request was resolved up to
        // `approval_timeout` ago.
        let user = match self.directory.find_user_by_email(&email).await {
            Ok(Some(user)) if user.id == jc_user => user,
            Ok(_) => {
                let refusal = Refusal::NoDirectoryAccount { email };
                return Ok(Err(self.not_granted(request, refusal).await?));
            }
            Err(e) => return Ok(Err(self.grant_error(job, request, e).await?)),
        };
        if user.suspended {
            let refusal = Refusal::Suspended { email };
            return Ok(Err(self.not_granted(request, refusal).await?));
        }
        match self.directory.user_devices(&user.id).await {
            Ok(devices) if devices.iter().any(|d| d.id == device.id && d.is_eligible()) => {}
            Ok(_) => {
                let refusal = Refusal::DeviceNoLongerBound {
                    hostname: device.hostname.clone(),
                };
                return Ok(Err(self.not_granted(request, refusal).await?));
            }
            Err(e) => return Ok(Err(self.grant_error(job, request, e).await?)),
        }
        // Captured once, never re-read (DESIGN 2): after a crash the device
        // may show our own elevation, which must not count.
        let prior = match self.directory.admin_state(&user, &device.id).await {
            Ok(prior) => prior,
            Err(e) => return Ok(Err(self.grant_error(job, request, e).await?)),
        };
        let until = self.now() + request.duration.as_chrono();
        let mut to = request.clone();
        to.prior = Some(prior.clone());
        to.expires_at = Some(until);
        let detail = json!({ "prior": prior, "expires_at": until });
        let mut t = self.bot_transition(request, to, AuditAction::PriorStateRecorded, detail);
        t.reschedule = vec![NewJob {
            kind: JobKind::Revoke,
            due_at: until,
        }];
        if !self.store.transition(&t).await? {
            return Ok(Err(self.retry_soon("the request changed meanwhile")));
        }
        Ok(Ok(t.to))
    }

    /// Approved, but today's facts forbid the grant: change nothing in
    /// JumpCloud, end the request, and say why in the thread and to the
    /// requester.
    async fn not_granted(&self, request: &Request, refusal: Refusal) -> anyhow::Result<Outcome> {
        tracing::warn!(request_id = %request.id, ?refusal, "approved request not granted");
        let mut to = request.clone();
        to.state = RequestState::Refused;
        to.ended_at = Some(self.now());
        let detail = serde_json::to_value(&refusal)?;
        let mut t = self.bot_transition(request, to, AuditAction::NotGranted, detail);
        let event = Event::NotGranted { refusal };
        t.notices = vec![
            Notice::RefreshCard,
            Notice::Thread {
                event: event.clone(),
            },
            Notice::Direct { event },
        ];
        t.cancel = vec![JobKind::Revoke];
        self.commit(t).await
    }

    /// A failed grant call: retry what may pass; give up on what will not.
    /// Retrying stops by itself when the revocation safety net fires.
    async fn grant_error(
        &self,
        job: &Job,
        request: &Request,
        e: DirectoryError,
    ) -> anyhow::Result<Outcome> {
        if e.is_retryable() {
            tracing::warn!(request_id = %request.id, attempt = job.attempt, error = %e, "elevation failed; will retry");
            return Ok(self.retry_after(
                job.attempt,
                e.retry_after(),
                Patience::Ordinary,
                e.to_string(),
            ));
        }
        tracing::error!(request_id = %request.id, error = %e, "elevation failed for good");
        self.grant_failed(request, e.to_string()).await
    }

    /// Gives up on an elevation and restores at once, in case part of it
    /// was applied.
    async fn grant_failed(&self, request: &Request, error: String) -> anyhow::Result<Outcome> {
        let mut to = request.clone();
        to.state = RequestState::Revoking;
        to.end_cause = Some(EndCause::GrantFailed);
        let mut t = self.bot_transition(
            request,
            to,
            AuditAction::GrantFailed,
            json!({ "error": error }),
        );
        t.notices = vec![
            Notice::Thread {
                event: Event::GrantFailed {
                    error: error.clone(),
                },
            },
            Notice::Direct {
                event: Event::GrantFailed { error },
            },
        ];
        t.reschedule = vec![NewJob {
            kind: JobKind::Revoke,
            due_at: self.now(),
        }];
        self.commit(t).await
    }

    // ------------------------------------------------------------ revoke

    /// Restores the recorded state; retried until JumpCloud confirms.
    async fn revoke(&self, job: &Job, request: Request) -> anyhow::Result<Outcome> {
        let request = match request.state {
            RequestState::Approved | RequestState::Active => {
                if let Some(expires) = request.expires_at {
                    if self.now() < expires {
                        // Moved by a later transition; not due yet.
                        return Ok(Outcome::RetryAt(expires, "not yet expired".into()));
                    }
                }
                let mut to = request.clone();
                to.state = RequestState::Revoking;
                // The safety net can fire before any elevation was confirmed.
                to.end_cause = Some(match request.elevated_at {
                    Some(_) => EndCause::Expired,
                    None => EndCause::GrantFailed,
                });
                let t = self.bot_transition(&request, to, AuditAction::Expired, json!({}));
                if !self.store.transition(&t).await? {
                    return Ok(self.retry_soon("the request changed meanwhile"));
                }
                t.to
            }
            RequestState::Revoking => request,
            // Listed one by one, not `_`: a new state must be placed on
            // one side or the other here, or an elevation in it would
            // finish this job without being restored (DESIGN 1).
            RequestState::Resolving
            | RequestState::AwaitingDevice
            | RequestState::PendingApproval
            | RequestState::Ended
            | RequestState::Refused
            | RequestState::Denied
            | RequestState::TimedOut
            | RequestState::Cancelled => return Ok(Outcome::Done),
        };
        let restoration = match (&request.prior, &request.device, &request.jc_user) {
            (Some(prior), Some(device), Some(jc_user)) if prior.restoration().is_some() => {
                // Read once, to restore only what is still the bot's own
                // elevation (DESIGN 8: IT's change during the grant stands).
                let found = match self.directory.direct_binding(&device.id, jc_user).await {
                    Ok(found) => found,
                    // The device is gone: nothing is left to restore.
                    Err(DirectoryError::NotFound) => prior.direct,
                    Err(e) => return self.revoke_error(job, &request, e).await,
                };
                prior.restoration_given(found)
            }
            _ => Restoration::Nothing,
        };
        if let (Restoration::Apply(op), Some(device), Some(jc_user)) =
            (restoration, &request.device, &request.jc_user)
        {
            match self.directory.apply(&device.id, jc_user, op).await {
                // Gone already counts as restored (DESIGN: 404 on revoke is success).
                Ok(()) | Err(DirectoryError::NotFound) => {}
                Err(e) => return self.revoke_error(job, &request, e).await,
            }
        }
        let mut to = request.clone();
        to.state = RequestState::Ended;
        to.ended_at = Some(self.now());
        let cause = request.end_cause.unwrap_or(EndCause::Expired);
        let event = match restoration {
            Restoration::LeaveAlone { found } => {
                to.left_alone = true;
                tracing::warn!(request_id = %request.id, ?found, "binding changed by somebody else during the grant; left as it is");
                Event::LeftAlone { found }
            }
            _ => Event::Ended {
                cause,
                by: request.ended_by.clone(),
            },
        };
        let (action, detail) = match restoration {
            Restoration::LeaveAlone { found } => (
                AuditAction::LeftAlone,
                json!({ "found": found, "cause": cause.as_str() }),
            ),
            Restoration::Apply(op) => (
                AuditAction::Restored,
                json!({ "operation": op, "cause": cause.as_str() }),
            ),
            Restoration::Nothing => (
                AuditAction::Restored,
                json!({ "operation": null, "cause": cause.as_str() }),
            ),
        };
        let mut t = self.bot_transition(&request, to, action, detail);
        t.notices = vec![
            Notice::RefreshCard,
            Notice::Thread {
                event: event.clone(),
            },
            Notice::Direct { event },
        ];
        tracing::info!(request_id = %request.id, cause = cause.as_str(), "prior state restored");
        self.commit(t).await
    }

    async fn revoke_error(
        &self,
        job: &Job,
        request: &Request,
        e: DirectoryError,
    ) -> anyhow::Result<Outcome> {
        tracing::error!(request_id = %request.id, attempt = job.attempt, error = %e, "restoration failed; will retry");
        let n = job.attempt;
        if n == REVOKE_ALARM_AFTER
            || (n > REVOKE_ALARM_AFTER && (n - REVOKE_ALARM_AFTER) % REVOKE_ALARM_EVERY == 0)
        {
            let event = Event::RevokeFailing {
                attempts: n,
                error: e.to_string(),
            };
            let entry = self.audit(
                request,
                Some(request.state),
                crate::domain::audit::BOT_ACTOR,
                AuditAction::RestoreFailing,
                json!({ "attempts": n, "error": e.to_string() }),
            );
            self.store.append_audit(&entry).await?;
            self.store
                .enqueue(&request.id, &[Notice::Thread { event }])
                .await?;
        }
        Ok(self.retry_after(n, e.retry_after(), Patience::Revocation, e.to_string()))
    }

    // ------------------------------------------------------------ timers

    async fn remind(&self, request: Request, mark_secs: u64) -> anyhow::Result<Outcome> {
        if request.state != RequestState::Active {
            return Ok(Outcome::Done);
        }
        let left = crate::domain::GrantDuration::from_secs(mark_secs);
        self.store
            .enqueue(
                &request.id,
                &[
                    Notice::Thread {
                        event: Event::Reminder { left },
                    },
                    Notice::Direct {
                        event: Event::Reminder { left },
                    },
                ],
            )
            .await?;
        Ok(Outcome::Done)
    }

    async fn approval_timeout(&self, request: Request) -> anyhow::Result<Outcome> {
        if !matches!(
            request.state,
            RequestState::PendingApproval | RequestState::AwaitingDevice
        ) {
            return Ok(Outcome::Done);
        }
        let mut to = request.clone();
        to.state = RequestState::TimedOut;
        to.ended_at = Some(self.now());
        let mut t = self.bot_transition(&request, to, AuditAction::TimedOut, json!({}));
        t.notices = vec![
            Notice::RefreshCard,
            Notice::Thread {
                event: Event::TimedOut,
            },
            Notice::Direct {
                event: Event::TimedOut,
            },
        ];
        self.commit(t).await
    }

    // ------------------------------------------------------------ outbox

    /// Delivers one outbox message.
    pub(crate) async fn deliver(&self, message: &OutboxMessage) -> anyhow::Result<()> {
        let Some(request) = self.store.request(&message.request_id).await? else {
            return self
                .store
                .message_failed(message, self.now(), "request is gone")
                .await;
        };
        let needs_card = matches!(message.notice, Notice::Thread { .. } | Notice::RefreshCard);
        if needs_card && request.approval_message.is_none() {
            // The card was never posted (refused before approvers, or Slack
            // refused it for good): there is no thread to reply in.
            return self.store.message_delivered(message, self.now()).await;
        }
        match self.deliver_notice(&request, &message.notice).await {
            Ok(reference) => {
                if let Some(reference) = reference {
                    self.store
                        .set_approval_message(&request.id, &reference)
                        .await?;
                }
                self.store.message_delivered(message, self.now()).await
            }
            Err(e) => {
                if let super::ports::ChatError::Permanent(reason) = &e {
                    tracing::error!(request_id = %request.id, error = %e, "chat refused a message; dropping it");
                    self.store
                        .message_failed(message, self.now(), &e.to_string())
                        .await?;
                    if message.notice == Notice::ApprovalCard {
                        // Nobody can approve a request that never reached
                        // the approvers: end it and say why.
                        let refusal = Refusal::ApprovalsUnreachable {
                            error: reason.clone(),
                        };
                        self.refuse(&request, refusal).await?;
                    }
                    return Ok(());
                }
                tracing::warn!(request_id = %request.id, attempt = message.attempt, error = %e, "chat delivery failed; will retry");
                let wait = backoff(message.attempt, e.retry_hint(), Patience::Ordinary);
                let due = self.now() + chrono::TimeDelta::from_std(wait).unwrap_or_default();
                self.store.retry_message(message, due, &e.to_string()).await
            }
        }
    }
}

impl super::ports::ChatError {
    /// How long the service asked us to wait, if it did.
    pub fn retry_hint(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}
