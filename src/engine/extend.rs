//! More time on an active grant (DESIGN flow 9): the requester asks with
//! `/tempadmin extend [DURATION]` or the **Extend** button, approvers
//! decide with the same Approve and Deny as for a request, and an approved
//! extension moves the end.
//!
//! Invariants: the total from the first elevation never passes
//! `policy.max_duration` (an ask past it is refused before anything reaches
//! the approvers); an extension is decided once, by an approver who is not
//! the requester by chat identity or by JumpCloud account; and the new end,
//! the revocation job moved to it, the re-planned reminders and the
//! [`JobKind::Extend`] job are one transaction, so an extension approved
//! just before a crash is honoured after it.

use serde_json::json;

use super::jobs::Outcome;
use super::ports::{ElevationTarget, Job, JobKind, NewJob, Transition};
use super::retry::Patience;
use super::{Click, Engine, Reply, RACE_RETRIES};
use crate::domain::stage::Stage;
use crate::domain::{
    ChatUserId, Decision, Event, ExtensionAsked, GrantDuration, Move, Notice, Refusal, Request,
    RequestState,
};

impl Engine {
    /// `/tempadmin extend [DURATION]`: asks for more time on the person's
    /// active grant (the oldest, when they have several).
    pub(super) async fn extend_by_command(
        &self,
        user: &ChatUserId,
        asked: Option<GrantDuration>,
    ) -> anyhow::Result<Reply> {
        let active = self
            .store
            .open_requests_of(user)
            .await?
            .into_iter()
            .find(|r| r.state() == RequestState::Active);
        let Some(request) = active else {
            return Ok(Reply::Refused(Refusal::NothingToExtend));
        };
        match self.ask_extension(&request.id, user, asked, false).await? {
            Ok(asked) => Ok(Reply::Extending(Box::new(asked))),
            Err(refusal) => Ok(Reply::Refused(refusal)),
        }
    }

    /// The **Extend** button on the requester's grant message: asks for the
    /// default extension, `policy.default_duration` capped by what is left
    /// under the maximum.
    #[tracing::instrument(skip_all, fields(request_id = %click.request_id, user = %click.user))]
    pub async fn extend(&self, click: Click) -> anyhow::Result<()> {
        if !self.first_click(&click).await? {
            return Ok(());
        }
        let Some(request) = self.clicked_request(&click).await? else {
            return Ok(());
        };
        match self
            .ask_extension(&request.id, &click.user, None, true)
            .await?
        {
            Ok(_) => Ok(()),
            Err(refusal) => self.refuse_click(&request, &click, refusal).await,
        }
    }

    /// Records the requester's ask, after the policy check, and tells the
    /// approvers (the card offers Approve and Deny again) and the thread;
    /// with `confirm`, the requester too (a click has no answer of its
    /// own). `Err` says why nothing was asked.
    async fn ask_extension(
        &self,
        id: &crate::domain::RequestId,
        by: &ChatUserId,
        asked: Option<GrantDuration>,
        confirm: bool,
    ) -> anyhow::Result<Result<Request, Refusal>> {
        for _ in 0..RACE_RETRIES {
            let Some(request) = self.store.request(id).await? else {
                return Ok(Err(Refusal::NothingToExtend));
            };
            let Stage::Active(active) = &request.stage else {
                return Ok(Err(Refusal::NothingToExtend));
            };
            if &request.requester != by || self.now() >= active.grant.expires_at {
                return Ok(Err(Refusal::NothingToExtend));
            }
            if active.extension.is_some() {
                return Ok(Err(Refusal::ExtensionPending));
            }
            let granted = active.granted(request.duration);
            let added = match self.policy.extension_for(granted, asked) {
                Ok(added) => added,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let ask = Move::AskExtension(ExtensionAsked {
                added,
                at: self.now(),
            });
            let detail = json!({ "added": added.to_string(), "granted": granted.to_string() });
            let mut t = match self.transition(&request, ask, by.as_str(), detail) {
                Ok(t) => t,
                Err(illegal) => {
                    self.refused_move(&request, illegal);
                    return Ok(Err(Refusal::ExtensionPending));
                }
            };
            let event = Event::ExtensionRequested { added };
            t.notices = vec![
                Notice::RefreshCard,
                Notice::Thread {
                    event: event.clone(),
                },
            ];
            if confirm {
                t.notices.push(Notice::Direct { event });
            }
            if self.store.transition(&t).await? {
                tracing::info!(%added, "extension asked");
                self.wake.notify_one();
                return Ok(Ok(t.to));
            }
        }
        anyhow::bail!("request {id} kept changing under an extension")
    }

    /// An approver decided the waiting extension. The caller checked the
    /// clicker (an approver, not the requester, another JumpCloud
    /// account); here the decision is made once: the move is conditional
    /// on the version, and the loser of a race finds nothing waiting.
    pub(super) async fn decide_extension(&self, click: Click, approve: bool) -> anyhow::Result<()> {
        for _ in 0..RACE_RETRIES {
            let Some(request) = self.store.request(&click.request_id).await? else {
                return Ok(());
            };
            let waiting = match &request.stage {
                Stage::Active(a) => a.extension.clone().map(|e| (e, a.grant.expires_at)),
                _ => None,
            };
            let Some((asked, end)) = waiting else {
                let refusal = Refusal::AlreadyDecided {
                    state: request.state(),
                };
                return self.refuse_click(&request, &click, refusal).await;
            };
            let now = self.now();
            if now >= end {
                // The revocation is due; an extension now would keep
                // rights past the end everyone was told.
                return self
                    .refuse_click(&request, &click, Refusal::ExtensionTooLate)
                    .await;
            }
            let decision = Decision {
                by: click.user.clone(),
                at: now,
            };
            let t = if approve {
                self.approve_extension(&request, decision, asked.added)
            } else {
                self.deny_extension(&request, decision)
            };
            let t = match t {
                Ok(t) => t,
                Err(illegal) => {
                    self.refused_move(&request, illegal);
                    return Ok(());
                }
            };
            if self.store.transition(&t).await? {
                tracing::info!(approve, "extension decided");
                self.wake.notify_one();
                return Ok(());
            }
        }
        anyhow::bail!(
            "request {} kept changing under an extension decision",
            click.request_id
        )
    }

    /// The transition that moves the end: the revocation to the new end,
    /// the reminders re-planned before it, and the [`JobKind::Extend`] job
    /// that carries the new end to JumpCloud and the device.
    fn approve_extension(
        &self,
        request: &Request,
        decision: Decision,
        added: GrantDuration,
    ) -> Result<Transition, crate::domain::IllegalMove> {
        let by = decision.by.clone();
        let mut t = self.transition(
            request,
            Move::ApproveExtension(decision),
            by.as_str(),
            json!({ "added": added.to_string() }),
        )?;
        let Stage::Active(active) = &t.to.stage else {
            unreachable!("an approved extension keeps the grant active");
        };
        let until = active.grant.expires_at;
        let granted = active.granted(request.duration);
        t.detail_until(until);
        let event = Event::ExtensionApproved { by, added, until };
        t.notices = vec![
            Notice::RefreshCard,
            Notice::Thread {
                event: event.clone(),
            },
            Notice::Direct { event },
        ];
        let now = self.now();
        t.reschedule = std::iter::once(NewJob {
            kind: JobKind::Revoke,
            due_at: until,
        })
        .chain(
            self.policy
                .reminders_for(granted)
                .into_iter()
                .map(|mark| NewJob {
                    kind: JobKind::Remind(mark.as_secs()),
                    due_at: until - mark.as_chrono(),
                })
                .filter(|reminder| reminder.due_at > now),
        )
        .collect();
        // The device shows the new end (binding again is harmless), and its
        // own reminders move with the end too.
        if self.device.as_ref().is_some_and(|d| d.settings.notices) {
            t.reschedule.push(NewJob {
                kind: JobKind::Device(super::device::DeviceStep::Granted),
                due_at: now,
            });
            let device_reminders = self
                .policy
                .reminders_for(granted)
                .into_iter()
                .map(|mark| NewJob {
                    kind: JobKind::Device(super::device::DeviceStep::Reminder(mark.as_secs())),
                    due_at: until - mark.as_chrono(),
                })
                .filter(|reminder| reminder.due_at > now);
            t.reschedule.extend(device_reminders);
        }
        t.jobs = vec![NewJob {
            kind: JobKind::Extend,
            due_at: now,
        }];
        Ok(t)
    }

    fn deny_extension(
        &self,
        request: &Request,
        decision: Decision,
    ) -> Result<Transition, crate::domain::IllegalMove> {
        let by = decision.by.clone();
        let mut t = self.transition(
            request,
            Move::DenyExtension(decision),
            by.as_str(),
            json!({}),
        )?;
        let event = Event::ExtensionDenied { by };
        t.notices = vec![
            Notice::RefreshCard,
            Notice::Thread {
                event: event.clone(),
            },
            Notice::Direct { event },
        ];
        Ok(t)
    }

    /// The hook for an approved extension outside the bot's own timers,
    /// run as the durable [`JobKind::Extend`] job after the transition that
    /// moved the end. The engine's own clock (the revocation job and the
    /// reminders) moved in that transition already. In `association` mode
    /// nothing at JumpCloud has an end, so there is nothing to do here
    /// today; the grant-mode port (`Elevator::extend(record, new_end)`,
    /// issue 14 item 1) is called from here: JumpCloud's own expiry in
    /// `access_request` mode, and the device notice. A retryable failure
    /// there should return [`Outcome::RetryAt`]; the job is durable.
    pub(super) async fn on_extended(&self, job: &Job, request: Request) -> anyhow::Result<Outcome> {
        let Stage::Active(active) = &request.stage else {
            // Ended (or ending) meanwhile: the restoration ends it at
            // JumpCloud; nothing to extend.
            return Ok(Outcome::Done);
        };
        let until = active.grant.expires_at;
        let target = ElevationTarget {
            user: active.account.jc_user.clone(),
            system: active.device.id.clone(),
            request: request.id.clone(),
        };
        // The grant-mode port moves whatever clock JumpCloud keeps (the
        // access request's expiry; nothing in association mode, where the
        // bot's revocation job, already moved, is the clock). The record
        // it returns is not stored: restoring reads the access request's
        // state and expiry from JumpCloud, not from the record.
        match self
            .elevator
            .extend(&active.grant.record, &target, until)
            .await
        {
            Ok(_) => {
                tracing::info!(request_id = %request.id, %until, "extension carried to JumpCloud");
                Ok(Outcome::Done)
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(request_id = %request.id, attempt = job.attempt, error = %e, "moving JumpCloud's end failed; will retry");
                Ok(self.retry_after(
                    job.attempt,
                    e.retry_after(),
                    Patience::Ordinary,
                    e.to_string(),
                ))
            }
            Err(e) => {
                // JumpCloud keeps its old end and takes the rights back
                // then; the bot's revocation job follows at the new end.
                tracing::error!(request_id = %request.id, error = %e, "JumpCloud refused to move its end; it may end the rights at the old one");
                Ok(Outcome::Done)
            }
        }
    }
}

impl Transition {
    /// Adds the new end to the audit line's detail.
    fn detail_until(&mut self, until: crate::domain::Timestamp) {
        if let Some(detail) = self.audit.detail.as_object_mut() {
            detail.insert("expires_at".into(), json!(until));
        }
    }
}
