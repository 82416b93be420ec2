//! The computer itself: notices at the grant, at each reminder mark and at
//! the end (`[device] notices`), and ending what ran elevated when the grant
//! ends (`[device] end_elevated`), through JumpCloud commands
//! ([`DeviceCommands`]).
//!
//! Invariants:
//! - A device step never delays a grant or a revocation. Each runs as its
//!   own durable job ([`JobKind::Device`]), created by the transition that
//!   confirmed the elevation or the restoration, bounded by
//!   [`DEVICE_STEP_BUDGET`], retried briefly, and, when it fails for good,
//!   logged and noted in the thread. Nothing waits for it.
//! - Nothing a person typed reaches a device (DESIGN 8). The notice's text
//!   is written here from the bot's own words, JumpCloud's hostname and the
//!   grant's times; the reason never appears. The account name for
//!   `end_elevated` comes from the user's JumpCloud record.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::jobs::Outcome;
use super::ports::{DirectoryError, Job, JobKind};
use super::retry::{backoff, Patience};
use super::Engine;
use crate::domain::stage::Stage;
use crate::domain::{Device, Event, JcUserId, Notice, Request, SystemId};

/// The most one device step may take, all its calls together. A device job
/// holds its request's job slot while it runs (one job per request at a
/// time), so this bounds how long it could stand in front of that request's
/// revocation.
pub const DEVICE_STEP_BUDGET: Duration = Duration::from_secs(15);

/// A device step is tried this many times before it is given up.
pub const DEVICE_STEP_ATTEMPTS: u32 = 3;

/// The operating systems JumpCloud commands exist for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceOs {
    /// `osFamily` windows.
    Windows,
    /// `osFamily` darwin; the command type is `mac`.
    Mac,
    /// `osFamily` linux.
    Linux,
}

impl DeviceOs {
    /// All of them, in install order.
    pub const ALL: [DeviceOs; 3] = [DeviceOs::Windows, DeviceOs::Mac, DeviceOs::Linux];

    /// The OS of a system's `osFamily`; `None` for phones, tablets and
    /// anything unknown (no command to run there).
    pub fn of(os_family: &str) -> Option<Self> {
        match os_family.to_ascii_lowercase().as_str() {
            "windows" => Some(Self::Windows),
            "darwin" | "mac" | "macos" => Some(Self::Mac),
            "linux" => Some(Self::Linux),
            _ => None,
        }
    }

    /// JumpCloud's `commandType`.
    pub fn command_type(self) -> &'static str {
        match self {
            Self::Windows => "windows",
            Self::Mac => "mac",
            Self::Linux => "linux",
        }
    }
}

/// `[device] end_elevated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndElevated {
    /// Nothing is ended on the device.
    #[default]
    Off,
    /// macOS and Linux forget the user's cached sudo credentials; Windows
    /// changes nothing; the person is told a sign-out completes the removal.
    Notify,
    /// Also end the sudo process trees (macOS, Linux) or the elevated
    /// processes (Windows) the user started.
    Terminate,
}

impl EndElevated {
    /// Parses the config value.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "off" => Some(Self::Off),
            "notify" => Some(Self::Notify),
            "terminate" => Some(Self::Terminate),
            _ => None,
        }
    }

    /// The config value, which is also the scripts' `endMode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Notify => "notify",
            Self::Terminate => "terminate",
        }
    }
}

/// `[device]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceSettings {
    /// Notices on the device at the grant, the reminders and the end.
    pub notices: bool,
    /// What is ended on the device at the end.
    pub end_elevated: EndElevated,
}

impl DeviceSettings {
    /// Whether anything runs on devices at all.
    pub fn enabled(&self) -> bool {
        self.notices || self.end_elevated != EndElevated::Off
    }
}

/// One notice as the device shows it: the bot's own words only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNotice {
    /// A short title.
    pub title: String,
    /// One or two sentences.
    pub message: String,
}

/// Running tempadmin's commands on one device (JumpCloud commands).
#[async_trait]
pub trait DeviceCommands: Send + Sync {
    /// Binds this OS's tempadmin commands to the system, for the life of the
    /// grant; binding one already bound is not an error.
    async fn bind(&self, os: DeviceOs, system: &SystemId) -> Result<(), DirectoryError>;
    /// Shows `notice` on the system.
    async fn notify(
        &self,
        os: DeviceOs,
        system: &SystemId,
        notice: &DeviceNotice,
    ) -> Result<(), DirectoryError>;
    /// The account name on the computers of a JumpCloud user (`username`).
    async fn username(&self, user: &JcUserId) -> Result<String, DirectoryError>;
    /// Ends what `username` runs elevated on the system, as `mode` says.
    async fn end_elevated(
        &self,
        os: DeviceOs,
        system: &SystemId,
        username: &str,
        mode: EndElevated,
    ) -> Result<(), DirectoryError>;
    /// Unbinds this OS's tempadmin commands from the system; unbinding one
    /// not bound is not an error.
    async fn unbind(&self, os: DeviceOs, system: &SystemId) -> Result<(), DirectoryError>;
}

/// The device side as the engine holds it.
#[derive(Clone)]
pub struct DeviceHook {
    /// What to do.
    pub settings: DeviceSettings,
    /// How.
    pub commands: Arc<dyn DeviceCommands>,
}

/// Which device step a [`JobKind::Device`] job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceStep {
    /// Bind the commands and tell the person the grant is in place.
    Granted,
    /// This many seconds are left.
    Reminder(u64),
    /// Tell the person it ended, end what ran elevated, unbind.
    Ended,
}

impl DeviceStep {
    /// Stored argument: 0 granted, -1 ended, the mark's seconds otherwise.
    pub fn arg(self) -> i64 {
        match self {
            Self::Granted => 0,
            Self::Reminder(secs) => secs.max(1) as i64,
            Self::Ended => -1,
        }
    }

    /// Rebuilds a step from its stored argument.
    pub fn from_arg(arg: i64) -> Self {
        match arg {
            0 => Self::Granted,
            n if n > 0 => Self::Reminder(n as u64),
            _ => Self::Ended,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "grant",
            Self::Reminder(_) => "reminder",
            Self::Ended => "end",
        }
    }
}

impl Engine {
    /// The device jobs a confirmed elevation until `until` creates: the
    /// grant's notice now, and one per reminder mark still ahead.
    pub(crate) fn device_jobs_at_grant(
        &self,
        request: &Request,
        until: crate::domain::Timestamp,
    ) -> Vec<super::ports::NewJob> {
        let Some(hook) = &self.device else {
            return Vec::new();
        };
        let mut jobs = vec![super::ports::NewJob {
            kind: JobKind::Device(DeviceStep::Granted),
            due_at: self.now(),
        }];
        if hook.settings.notices {
            jobs.extend(
                self.policy
                    .reminders_for(request.duration)
                    .into_iter()
                    .map(|mark| super::ports::NewJob {
                        kind: JobKind::Device(DeviceStep::Reminder(mark.as_secs())),
                        due_at: until - mark.as_chrono(),
                    })
                    .filter(|job| job.due_at > self.now()),
            );
        }
        jobs
    }

    /// The device job a restoration creates: only after an elevation that
    /// JumpCloud confirmed (otherwise nothing was bound or shown).
    pub(crate) fn device_jobs_at_end(&self, elevated: bool) -> Vec<super::ports::NewJob> {
        if self.device.is_none() || !elevated {
            return Vec::new();
        }
        vec![super::ports::NewJob {
            kind: JobKind::Device(DeviceStep::Ended),
            due_at: self.now(),
        }]
    }

    /// Runs one device step; see the module doc for why it may fail
    /// without consequence for the grant.
    pub(crate) async fn device_step(
        &self,
        job: &Job,
        request: Request,
        step: DeviceStep,
    ) -> anyhow::Result<Outcome> {
        let Some(hook) = self.device.clone() else {
            return Ok(Outcome::Done);
        };
        let target = match (&request.stage, step) {
            (Stage::Active(_), DeviceStep::Granted | DeviceStep::Reminder(_)) => request
                .device()
                .cloned()
                .zip(request.expires_at())
                .map(|(device, until)| (device, Some(until), None)),
            (Stage::Ended(ended), DeviceStep::Ended) => Some((
                ended.revoking.device.clone(),
                None,
                Some(ended.revoking.account.jc_user.clone()),
            )),
            // The grant ended before its notice ran, or the step is not for
            // this stage: nothing to show any more.
            _ => None,
        };
        let Some((device, until, jc_user)) = target else {
            return Ok(Outcome::Done);
        };
        let Some(os) = DeviceOs::of(&device.os_family) else {
            return Ok(Outcome::Done);
        };
        let work = self.device_work(&hook, os, &device, step, until, jc_user.as_ref());
        let result = match tokio::time::timeout(DEVICE_STEP_BUDGET, work).await {
            Ok(result) => result,
            Err(_) => Err(DirectoryError::Transient("timed out".into())),
        };
        let Err(e) = result else {
            tracing::info!(request_id = %request.id, step = step.as_str(), "device step done");
            return Ok(Outcome::Done);
        };
        if e.is_retryable() && job.attempt < DEVICE_STEP_ATTEMPTS {
            tracing::warn!(request_id = %request.id, step = step.as_str(), attempt = job.attempt, error = %e, "device step failed; will retry");
            let wait = backoff(job.attempt, e.retry_after(), Patience::Ordinary);
            return Ok(Outcome::RetryAt(
                self.now() + chrono::TimeDelta::from_std(wait).unwrap_or_default(),
                e.to_string(),
            ));
        }
        tracing::error!(request_id = %request.id, step = step.as_str(), error = %e, "device step failed for good");
        if step == DeviceStep::Ended {
            // Whatever failed, the commands must not stay bound to a device
            // without a grant: one more try, within the budget.
            let unbind = hook.commands.unbind(os, &device.id);
            if let Ok(Err(e)) | Err(e) = tokio::time::timeout(DEVICE_STEP_BUDGET, unbind)
                .await
                .map_err(|_| DirectoryError::Transient("timed out".into()))
            {
                tracing::error!(request_id = %request.id, error = %e, "could not unbind the device commands");
            }
        }
        let entry = self.audit(
            &request,
            Some(request.state()),
            crate::domain::audit::BOT_ACTOR,
            crate::domain::AuditAction::DeviceStepFailed,
            json!({ "step": step.as_str(), "error": e.to_string() }),
        );
        self.store.append_audit(&entry).await?;
        if let DeviceStep::Reminder(_) = step {
            // A missed countdown on the screen is not worth a line in the
            // thread each time (the chat countdown went out); the audit
            // keeps it.
            return Ok(Outcome::Done);
        }
        let event = Event::DeviceStepFailed {
            step: step.as_str().to_string(),
            error: e.to_string(),
        };
        self.store
            .enqueue(&request.id, &[Notice::Thread { event }], self.now())
            .await?;
        self.wake.notify_one();
        Ok(Outcome::Done)
    }

    async fn device_work(
        &self,
        hook: &DeviceHook,
        os: DeviceOs,
        device: &Device,
        step: DeviceStep,
        until: Option<crate::domain::Timestamp>,
        jc_user: Option<&JcUserId>,
    ) -> Result<(), DirectoryError> {
        let commands = &hook.commands;
        let notices = hook.settings.notices;
        match step {
            DeviceStep::Granted => {
                commands.bind(os, &device.id).await?;
                if let (true, Some(until)) = (notices, until) {
                    let notice = crate::wording::device_granted(&device.hostname, until);
                    commands.notify(os, &device.id, &notice).await?;
                }
            }
            DeviceStep::Reminder(secs) => {
                if notices {
                    let left = crate::domain::GrantDuration::from_secs(secs);
                    let notice = crate::wording::device_reminder(&device.hostname, left);
                    commands.notify(os, &device.id, &notice).await?;
                }
            }
            DeviceStep::Ended => {
                if notices {
                    let mode = hook.settings.end_elevated;
                    let notice = crate::wording::device_ended(&device.hostname, os, mode);
                    commands.notify(os, &device.id, &notice).await?;
                }
                if hook.settings.end_elevated != EndElevated::Off {
                    if let Some(jc_user) = jc_user {
                        let username = commands.username(jc_user).await?;
                        commands
                            .end_elevated(os, &device.id, &username, hook.settings.end_elevated)
                            .await?;
                    }
                }
                commands.unbind(os, &device.id).await?;
            }
        }
        Ok(())
    }
}
