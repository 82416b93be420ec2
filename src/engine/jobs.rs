//! What each durable job does. A job reads its request afresh, acts, and
//! writes one transition; when it loses a race with a person's click it is
//! simply run again, and when a remote service fails it is retried later.

use std::time::Duration;

use serde_json::json;

use super::ports::{
    DirectoryError, ElevationTarget, Job, JobKind, NewJob, OutboxMessage, Restored,
};
use super::retry::{backoff, Patience};
use super::Engine;
use crate::domain::request::{choose_device, DeviceChoice};
use crate::domain::stage::{self, Stage};
use crate::domain::{
    Account, AuditAction, Event, Grant, Move, Notice, Presence, PrivateBody, Refusal, Request,
    RequestState, Timestamp,
};

/// Adds the fields of `more` (an object from a port) to the audit detail.
fn merge(detail: &mut serde_json::Value, more: serde_json::Value) {
    if let (Some(detail), serde_json::Value::Object(more)) = (detail.as_object_mut(), more) {
        detail.extend(more);
    }
}

/// The transition, or, for a move the request's stage does not allow, the
/// end of the job: the move is logged and refused, and the request is left
/// as it was (a retry would only be refused again).
macro_rules! or_done {
    ($engine:expr, $request:expr, $transition:expr) => {
        match $transition {
            Ok(t) => t,
            Err(illegal) => {
                $engine.refused_move($request, illegal);
                return Ok(Outcome::Done);
            }
        }
    };
}

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

/// The most a read of whether a device is online may take at the grant
/// and after a restoration: it only words a message.
const PRESENCE_BUDGET: Duration = Duration::from_secs(2);

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
            JobKind::Extend => self.on_extended(job, request).await,
            JobKind::ApprovalTimeout => self.approval_timeout(request).await,
            JobKind::ApprovalReminder => self.approval_reminder(job, request).await,
            JobKind::Device(step) => self.device_step(job, request, step).await,
        }
    }

    fn retry_soon(&self, why: &str) -> Outcome {
        Outcome::RetryAt(self.now(), why.to_string())
    }

    pub(super) fn retry_after(
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
        let Stage::Resolving(resolving) = &request.stage else {
            return Ok(Outcome::Done);
        };
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
        let (device, reason) = match resolving.picked.as_ref().map(|p| &p.device) {
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
                    let detail = json!({ "candidates": candidates.len() });
                    let ask = Move::AskForDevice {
                        account: Account {
                            email,
                            jc_user: user.id.clone(),
                        },
                        candidates,
                    };
                    let mut t =
                        or_done!(self, &request, self.bot_transition(&request, ask, detail));
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
        let detail = json!({
            "jumpcloud_user": user.id,
            "system_id": device.id,
            "hostname": device.hostname,
            "online": device.online,
        });
        let send = Move::SendToApprovers {
            account: Account {
                email,
                jc_user: user.id.clone(),
            },
            device,
            reason,
        };
        let mut t = or_done!(self, &request, self.bot_transition(&request, send, detail));
        t.notices = vec![
            Notice::ApprovalCard,
            Notice::Private {
                reply_to: None,
                body: PrivateBody::Sent,
            },
        ];
        t.reschedule = vec![self.approval_deadline()];
        t.reschedule.extend(self.approval_reminder_job());
        self.commit(t).await
    }

    fn approval_deadline(&self) -> NewJob {
        NewJob {
            kind: JobKind::ApprovalTimeout,
            due_at: self.now() + self.policy.approval_timeout.as_chrono(),
        }
    }

    /// The reminder of the approvers, when the policy wants one: written
    /// with the move that reaches them, so it exists as surely as the
    /// card does.
    fn approval_reminder_job(&self) -> Option<NewJob> {
        let after = self.policy.approval_reminder_after()?;
        Some(NewJob {
            kind: JobKind::ApprovalReminder,
            due_at: self.now() + after.as_chrono(),
        })
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
                tracing::error!(error = %e, "JumpCloud refused our credentials; check the service account (JUMPCLOUD_CLIENT_ID and JUMPCLOUD_CLIENT_SECRET) or JUMPCLOUD_API_KEY, and its role; `tempadmin check` tells which");
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
        let refuse = Move::Refuse { at: self.now() };
        let detail = serde_json::to_value(&refusal)?;
        let mut t = or_done!(self, request, self.bot_transition(request, refuse, detail));
        t.notices = vec![Notice::Private {
            reply_to: None,
            body: PrivateBody::Refused(refusal),
        }];
        t.cancel = super::UNDECIDED_TIMERS.to_vec();
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
        let Stage::Approved(approved) = &request.stage else {
            return Ok(Outcome::Done);
        };
        let target = ElevationTarget {
            user: approved.account.jc_user.clone(),
            system: approved.device.id.clone(),
            request: request.id.clone(),
        };
        let (
            request,
            Grant {
                record,
                expires_at: until,
            },
        ) = match &approved.grant {
            Some(grant) => (request.clone(), grant.clone()),
            None => match self.prepare_grant(job, &request, approved).await? {
                Ok(prepared) => prepared,
                Err(outcome) => return Ok(outcome),
            },
        };
        if self.now() >= until {
            // Time ran out before JumpCloud confirmed (JumpCloud kept
            // failing, or the bot was down): no further elevation. The
            // revocation job, due at `until`, restores whatever was applied.
            tracing::warn!(request_id = %request.id, %until, "grant time ran out before the elevation was confirmed");
            return Ok(Outcome::Done);
        }
        let elevated = match self.elevator.elevate(&record, &target).await {
            Ok(elevated) => elevated,
            Err(e) => return self.grant_error(job, &request, e).await,
        };
        let changed = elevated.changed;
        let presence = self.presence_of(&target.system).await;
        let mut detail = json!({
            "changed": changed,
            "expires_at": until,
            "online": presence.map(|p| p.online),
        });
        merge(&mut detail, elevated.detail);
        let elevate = Move::Elevate {
            at: self.now(),
            record: elevated.record,
        };
        let mut t = or_done!(
            self,
            &request,
            self.bot_transition(&request, elevate, detail)
        );
        let elevated = Event::Elevated {
            until,
            changed,
            presence,
        };
        t.notices = vec![
            Notice::RefreshCard,
            Notice::Thread {
                event: elevated.clone(),
            },
            Notice::Direct { event: elevated },
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
        // After the elevation, as jobs of their own: a device that does not
        // answer never holds the grant up.
        t.jobs.extend(self.device_jobs_at_grant(&request, until));
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
        approved: &stage::Approved,
    ) -> anyhow::Result<Result<(Request, Grant), Outcome>> {
        let device = &approved.device;
        let Account { email, jc_user } = approved.account.clone();
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
        let until = self.now() + request.duration.as_chrono();
        let target = ElevationTarget {
            user: jc_user,
            system: device.id.clone(),
            request: request.id.clone(),
        };
        let record = match self.elevator.capture(&user, &target, until).await {
            Ok(record) => record,
            Err(e) => return Ok(Err(self.grant_error(job, request, e).await?)),
        };
        let detail = json!({ "prior": record, "expires_at": until });
        let grant = Grant {
            record,
            expires_at: until,
        };
        let record = Move::RecordGrant(grant.clone());
        let mut t = match self.bot_transition(request, record, detail) {
            Ok(t) => t,
            Err(illegal) => {
                self.refused_move(request, illegal);
                return Ok(Err(Outcome::Done));
            }
        };
        t.reschedule = vec![NewJob {
            kind: JobKind::Revoke,
            due_at: until,
        }];
        if !self.store.transition(&t).await? {
            return Ok(Err(self.retry_soon("the request changed meanwhile")));
        }
        Ok(Ok((t.to, grant)))
    }

    /// Approved, but today's facts forbid the grant: change nothing in
    /// JumpCloud, end the request, and say why in the thread and to the
    /// requester.
    async fn not_granted(&self, request: &Request, refusal: Refusal) -> anyhow::Result<Outcome> {
        tracing::warn!(request_id = %request.id, ?refusal, "approved request not granted");
        let detail = serde_json::to_value(&refusal)?;
        let not_granted = Move::NotGrant { at: self.now() };
        let mut t = or_done!(
            self,
            request,
            self.bot_transition(request, not_granted, detail)
        );
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
        let detail = json!({ "error": error });
        let mut t = or_done!(
            self,
            request,
            self.bot_transition(request, Move::GiveUpGrant { at: self.now() }, detail)
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
        // Every stage is named, not `_`: a new stage must be placed on one
        // side or the other here, or an elevation in it would finish this
        // job without being restored (DESIGN 1).
        let request = match &request.stage {
            Stage::Approved(_) | Stage::Active(_) => {
                if let Some(expires) = request.expires_at() {
                    if self.now() < expires {
                        // Moved by a later transition; not due yet.
                        return Ok(Outcome::RetryAt(expires, "not yet expired".into()));
                    }
                }
                // The move says why: expired, or (before any confirmed
                // elevation: the safety net) a failed grant.
                let t = or_done!(
                    self,
                    &request,
                    self.bot_transition(&request, Move::Expire, json!({}))
                );
                if !self.store.transition(&t).await? {
                    return Ok(self.retry_soon("the request changed meanwhile"));
                }
                t.to
            }
            Stage::Revoking(_) => request,
            Stage::Resolving(_)
            | Stage::AwaitingDevice(_)
            | Stage::PendingApproval(_)
            | Stage::Ended(_)
            | Stage::Refused(_)
            | Stage::Denied(_)
            | Stage::TimedOut(_)
            | Stage::Cancelled(_) => return Ok(Outcome::Done),
        };
        let Stage::Revoking(revoking) = &request.stage else {
            anyhow::bail!("request {} is not restoring after expiry", request.id);
        };
        let target = ElevationTarget {
            user: revoking.account.jc_user.clone(),
            system: revoking.device.id.clone(),
            request: request.id.clone(),
        };
        // Whether the computer was online at the end, for the thread; only
        // for a confirmed elevation (otherwise the device never changed).
        let presence_read = revoking
            .elevated_at
            .is_some()
            .then(|| self.start_presence_read(&target.system));
        let restored = match &revoking.grant {
            Some(Grant { record, .. }) => match self.elevator.restore(record, &target).await {
                Ok(restored) => restored,
                Err(e) => return self.revoke_error(job, &request, e).await,
            },
            None => Restored::Restored {
                detail: json!({ "operation": null }),
            },
        };
        // JumpCloud's confirmation: the end of the revocation lag.
        let confirmed_at = self.now();
        let cause = revoking.end_cause;
        let (event, detail) = match restored {
            Restored::LeftAlone { found } => {
                tracing::warn!(request_id = %request.id, ?found, "binding changed by somebody else during the grant; left as it is");
                (
                    Event::LeftAlone { found },
                    json!({ "found": found, "cause": cause.as_str() }),
                )
            }
            Restored::Restored { detail: restored } => {
                let mut detail = json!({ "cause": cause.as_str() });
                merge(&mut detail, restored);
                let by = revoking.ended_by.clone();
                // Bounded by the read's own budget; a failed read is `None`.
                let presence = match presence_read {
                    Some(read) => read.await.ok().flatten(),
                    None => None,
                };
                (
                    Event::Ended {
                        cause,
                        by,
                        presence,
                    },
                    detail,
                )
            }
            Restored::EndedByDirectory { detail: restored } => {
                tracing::info!(request_id = %request.id, "JumpCloud ended the elevation at its own expiry");
                let mut detail = json!({ "cause": cause.as_str(), "ended_by_jumpcloud": true });
                merge(&mut detail, restored);
                (Event::EndedByDirectory, detail)
            }
        };
        let left_alone = matches!(event, Event::LeftAlone { .. });
        let restore = Move::Restore {
            at: self.now(),
            left_alone,
        };
        let mut t = or_done!(
            self,
            &request,
            self.bot_transition(&request, restore, detail)
        );
        t.notices = vec![
            Notice::RefreshCard,
            Notice::Thread {
                event: event.clone(),
            },
            Notice::Direct { event },
        ];
        // After the restoration is recorded: the device's end notice and
        // the end of what ran elevated never hold the revocation up.
        t.jobs = self.device_jobs_at_end(revoking.elevated_at.is_some());
        tracing::info!(request_id = %request.id, cause = cause.as_str(), "prior state restored");
        let outcome = self.commit(t).await?;
        // Counted once, when the confirmation is recorded: a lost race
        // runs the job again, and JumpCloud is asked again.
        if let (Outcome::Done, Some(due)) = (&outcome, revoking.due_at) {
            self.metrics.revocation_confirmed(cause, confirmed_at - due);
        }
        Ok(outcome)
    }

    /// Whether the device is online now, read once and bounded by
    /// [`PRESENCE_BUDGET`]; `None` when JumpCloud does not say in time. It
    /// only words messages, so it never holds up what it accompanies.
    async fn presence_of(&self, system: &crate::domain::SystemId) -> Option<Presence> {
        self.start_presence_read(system).await.ok().flatten()
    }

    /// Starts reading whether the device is online, beside the
    /// restoration rather than before it, so the restoring call never
    /// waits for it; the read ends by itself after [`PRESENCE_BUDGET`].
    fn start_presence_read(
        &self,
        system: &crate::domain::SystemId,
    ) -> tokio::task::JoinHandle<Option<Presence>> {
        let directory = self.directory.clone();
        let system = system.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(PRESENCE_BUDGET, directory.presence(&system)).await {
                Ok(Ok(presence)) => Some(presence),
                Ok(Err(e)) => {
                    tracing::warn!(system_id = %system, error = %e, "could not read whether the device is online");
                    None
                }
                Err(_) => {
                    tracing::warn!(system_id = %system, "JumpCloud did not say in time whether the device is online");
                    None
                }
            }
        })
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
                Some(request.state()),
                crate::domain::audit::BOT_ACTOR,
                AuditAction::RestoreFailing,
                json!({ "attempts": n, "error": e.to_string() }),
            );
            self.store.append_audit(&entry).await?;
            self.store
                .enqueue(&request.id, &[Notice::Thread { event }], self.now())
                .await?;
        }
        Ok(self.retry_after(n, e.retry_after(), Patience::Revocation, e.to_string()))
    }

    // ------------------------------------------------------------ timers

    async fn remind(&self, request: Request, mark_secs: u64) -> anyhow::Result<Outcome> {
        if request.state() != RequestState::Active {
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
                self.now(),
            )
            .await?;
        Ok(Outcome::Done)
    }

    /// Names the approvers in the thread of a request still undecided.
    /// The reminder is a move of its own (audited, recorded in the stage),
    /// committed together with its thread notice: a job run twice (a crash
    /// before completing it, a replica taking over its lease) finds it
    /// recorded and says nothing more; a decision first makes it a no-op.
    async fn approval_reminder(&self, job: &Job, request: Request) -> anyhow::Result<Outcome> {
        let Stage::PendingApproval(pending) = &request.stage else {
            return Ok(Outcome::Done);
        };
        if pending.reminded_at.is_some() {
            return Ok(Outcome::Done);
        }
        // Due `after` from reaching the approvers, so the expiry is the
        // rest of the timeout from the due time, however late this runs.
        let left = match self.policy.approval_reminder_after() {
            Some(after) => self.policy.approval_timeout.as_chrono() - after.as_chrono(),
            // Turned off since the job was written.
            None => return Ok(Outcome::Done),
        };
        let remind = Move::RemindApprovers { at: self.now() };
        let mut t = or_done!(
            self,
            &request,
            self.bot_transition(&request, remind, json!({}))
        );
        t.notices = vec![Notice::Thread {
            event: Event::ApprovalReminder {
                expires_at: job.due_at + left,
            },
        }];
        self.commit(t).await
    }

    async fn approval_timeout(&self, request: Request) -> anyhow::Result<Outcome> {
        if !matches!(
            request.state(),
            RequestState::PendingApproval | RequestState::AwaitingDevice
        ) {
            return Ok(Outcome::Done);
        }
        let time_out = Move::TimeOut { at: self.now() };
        let mut t = or_done!(
            self,
            &request,
            self.bot_transition(&request, time_out, json!({}))
        );
        t.notices = vec![
            Notice::RefreshCard,
            Notice::Thread {
                event: Event::TimedOut,
            },
            Notice::Direct {
                event: Event::TimedOut,
            },
        ];
        t.cancel = vec![JobKind::ApprovalReminder];
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
