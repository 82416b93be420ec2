//! A request's stage, with the data that exists in it, and the moves
//! between stages.
//!
//! Each variant of [`Stage`] holds what is known in that stage and nothing
//! that is not known yet: a pending request has its account and device, an
//! active one its decision, recorded prior state, elevation time and end.
//! So a reader matches on the stage instead of unwrapping fields that are
//! `None` "because it is not there yet" (as quinn-proto's
//! `State::Handshake(state::Handshake)`). [`RequestState`] stays the plain
//! name of a stage ([`Stage::state`]): what the store filters on and the
//! audit trail shows.
//!
//! Invariant: a stage changes only through [`Stage::apply`], which returns
//! the next stage for a [`Move`] or an [`IllegalMove`], and every move it
//! returns is listed in [`RequestState::MOVES`]. The check runs in every
//! build, so a release build refuses an illegal move exactly as a test does.
//!
//! The serialised form (serde, tagged by `state`, times in Unix
//! milliseconds) is what the store keeps in its `data` column; its field
//! names follow the columns it replaced (migrations 0008).

use serde::{Deserialize, Serialize};

use super::audit::AuditAction;
use super::{
    ChatUserId, Device, ElevationRecord, Email, EndCause, GrantDuration, JcUserId, RequestState,
    SystemId, Timestamp,
};

/// Times are kept as Unix milliseconds, the resolution the store keeps.
mod millis {
    pub use chrono::serde::ts_milliseconds as required;
    pub use chrono::serde::ts_milliseconds_option as optional;
}

/// Whose admin rights a request is about, found by the resolve job from
/// the requester's chat email (never from a name they typed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The requester's email, from the chat profile.
    pub email: Email,
    /// The JumpCloud user with that email.
    pub jc_user: JcUserId,
}

/// Who approved or denied, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The approver.
    pub by: ChatUserId,
    /// When they clicked.
    #[serde(with = "millis::required")]
    pub at: Timestamp,
}

/// What the grant job records once, before its first elevation call
/// (DESIGN 2), in one durable write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// What the elevator recorded before elevating (in association mode
    /// the admin state, never re-read afterwards), updated once by the
    /// elevation itself (in access-request mode with the access id). Kept
    /// under its old name `prior` too, so requests stored before grant
    /// modes read back.
    #[serde(alias = "prior")]
    pub record: ElevationRecord,
    /// When the rights are taken away: the first elevation attempt plus
    /// the duration, fixed before JumpCloud is first called, so that
    /// neither a retry nor a crash can extend it.
    #[serde(with = "millis::required")]
    pub expires_at: Timestamp,
}

// The data of each stage: one struct per [`Stage`] variant.

/// Looking up the requester's account and devices.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolving {
    /// What the requester picked from the offered devices, when resolving
    /// again after a pick (a first resolve has nothing yet).
    pub picked: Option<Picked>,
}

/// A device the requester picked, with the account it was offered for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Picked {
    /// The requester's account, as found when the devices were offered.
    pub account: Account,
    /// The picked device.
    pub device: Device,
}

/// Waiting for the requester to pick one of several devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwaitingDevice {
    /// The requester's account.
    pub account: Account,
    /// The devices offered.
    pub candidates: Vec<Device>,
}

/// Posted to approvers, waiting for a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingApproval {
    /// The requester's account.
    pub account: Account,
    /// The chosen device.
    pub device: Device,
    /// When the approvers were reminded in the thread
    /// (`policy.approval_reminder`); at most once, so a reminder job run
    /// again after a crash or by a second replica says nothing more.
    #[serde(with = "millis::optional", default)]
    pub reminded_at: Option<Timestamp>,
}

/// Approved; the elevation is being applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approved {
    /// The requester's account.
    pub account: Account,
    /// The chosen device.
    pub device: Device,
    /// Who approved.
    pub decision: Decision,
    /// Recorded by the grant job before its first elevation call;
    /// `None` until then (no JumpCloud call has been made).
    pub grant: Option<Grant>,
}

/// JumpCloud confirmed the elevation; the clock runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Active {
    /// The requester's account.
    pub account: Account,
    /// The chosen device.
    pub device: Device,
    /// Who approved.
    pub decision: Decision,
    /// The recorded prior state and the grant's end.
    pub grant: Grant,
    /// When JumpCloud confirmed the elevation.
    #[serde(with = "millis::required")]
    pub elevated_at: Timestamp,
    /// More time the requester asked for, waiting for an approver
    /// (DESIGN flow 9); at most one at a time.
    #[serde(default)]
    pub extension: Option<ExtensionAsked>,
    /// The extensions approved so far, oldest first; each moved
    /// `grant.expires_at` on by its `added`.
    #[serde(default)]
    pub extensions: Vec<Extension>,
}

/// An extension waiting for an approver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionAsked {
    /// How much more.
    pub added: GrantDuration,
    /// When the requester asked.
    #[serde(with = "millis::required")]
    pub at: Timestamp,
}

/// An approved extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    /// How much more.
    pub added: GrantDuration,
    /// Who approved, and when.
    pub decision: Decision,
}

impl Active {
    /// The time granted in all, from the first elevation attempt to the
    /// current end: the requested duration and every approved extension.
    pub fn granted(&self, requested: GrantDuration) -> GrantDuration {
        let added: u64 = self.extensions.iter().map(|e| e.added.as_secs()).sum();
        GrantDuration::from_secs(requested.as_secs() + added)
    }
}

/// The prior state is being restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoking {
    /// The requester's account.
    pub account: Account,
    /// The chosen device.
    pub device: Device,
    /// Who approved.
    pub decision: Decision,
    /// What was recorded before elevating; `None` when the elevation
    /// ended before the grant job recorded it (nothing to restore).
    pub grant: Option<Grant>,
    /// When JumpCloud confirmed the elevation; `None` when it never did.
    #[serde(with = "millis::optional", default)]
    pub elevated_at: Option<Timestamp>,
    /// Why it ends.
    pub end_cause: EndCause,
    /// Who ended it early (none for expiry and failures).
    pub ended_by: Option<ChatUserId>,
    /// When the restoration became due: the grant's end for an expiry,
    /// the moment End now, a revoke or a failed grant asked for it
    /// otherwise; `None` when nothing was recorded to restore (and for
    /// rows written before it was kept). The revocation lag counts from it.
    #[serde(with = "millis::optional", default)]
    pub due_at: Option<Timestamp>,
}

/// Restored. Terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    /// The restoration this ended.
    #[serde(flatten)]
    pub revoking: Revoking,
    /// When restoration was confirmed.
    #[serde(with = "millis::required")]
    pub ended_at: Timestamp,
    /// At revocation the binding had been changed by somebody else, so
    /// the bot left it as it was instead of restoring the recorded state.
    pub left_alone: bool,
}

/// An approver said no. Terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denied {
    /// The requester's account.
    pub account: Account,
    /// The chosen device.
    pub device: Device,
    /// Who denied.
    pub decision: Decision,
}

/// Ended before any elevation: refused, timed out or withdrawn.
/// Terminal. Keeps what was known when it ended, which depends on the
/// stage it ended from (a request refused while resolving has no
/// account; one not granted after approval has a decision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    /// When it ended.
    #[serde(with = "millis::required")]
    pub ended_at: Timestamp,
    /// Who ended it (the requester, for a withdrawal).
    pub ended_by: Option<ChatUserId>,
    /// The requester's account, when it was found.
    pub account: Option<Account>,
    /// The chosen (or picked) device, when there was one.
    pub device: Option<Device>,
    /// The devices that had been offered.
    #[serde(default)]
    pub candidates: Vec<Device>,
    /// The approval, for a request approved but not granted.
    pub decision: Option<Decision>,
}

/// Where a request is in its life, with what exists there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Stage {
    /// See [`Resolving`].
    Resolving(Resolving),
    /// See [`AwaitingDevice`].
    AwaitingDevice(AwaitingDevice),
    /// See [`PendingApproval`].
    PendingApproval(PendingApproval),
    /// See [`Approved`].
    Approved(Approved),
    /// See [`Active`].
    Active(Active),
    /// See [`Revoking`].
    Revoking(Revoking),
    /// See [`Ended`].
    Ended(Ended),
    /// Refused before reaching approvers, or approved but not granted.
    Refused(Closed),
    /// See [`Denied`].
    Denied(Denied),
    /// Nobody decided (or picked a device) in time.
    TimedOut(Closed),
    /// The requester withdrew it before a decision.
    Cancelled(Closed),
}

/// One move of a request, as a value: what happened, with the facts it
/// brings. [`Stage::apply`] turns it into the next stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    /// Several devices and none named: ask the requester.
    AskForDevice {
        /// The requester's account.
        account: Account,
        /// The devices offered.
        candidates: Vec<Device>,
    },
    /// Account and device found: post to the approvers.
    SendToApprovers {
        /// The requester's account.
        account: Account,
        /// The chosen device.
        device: Device,
        /// The reason that remains once a device name used up the first
        /// word (kept by the request, not the stage).
        reason: String,
    },
    /// The requester picked an offered device; resolve again with it.
    PickDevice {
        /// The picked device.
        device: Device,
    },
    /// The requester withdrew an undecided request.
    Withdraw {
        /// The requester.
        by: ChatUserId,
        /// When.
        at: Timestamp,
    },
    /// The approvers were reminded of the undecided request; once.
    RemindApprovers {
        /// When.
        at: Timestamp,
    },
    /// An approver approved.
    Approve(Decision),
    /// An approver denied.
    Deny(Decision),
    /// Nobody decided, or picked a device, in time.
    TimeOut {
        /// When.
        at: Timestamp,
    },
    /// Refused before a decision (no account, no device, approvers'
    /// channel unreachable, …).
    Refuse {
        /// When.
        at: Timestamp,
    },
    /// Approved, but today's facts forbid the grant; only before the grant
    /// job recorded anything (no JumpCloud call was made).
    NotGrant {
        /// When.
        at: Timestamp,
    },
    /// The prior state and the grant's end, recorded once before elevating.
    RecordGrant(Grant),
    /// JumpCloud confirmed the elevation.
    Elevate {
        /// When.
        at: Timestamp,
        /// The elevator's record after elevating (what it must know to
        /// extend and restore).
        record: ElevationRecord,
    },
    /// The requester asked for more time; the grant stays active.
    AskExtension(ExtensionAsked),
    /// An approver approved the waiting extension: the end moves on.
    ApproveExtension(Decision),
    /// An approver denied the waiting extension: the end stays.
    DenyExtension(Decision),
    /// End now, or `/tempadmin revoke`.
    EndEarly {
        /// Who asked.
        by: ChatUserId,
        /// When.
        at: Timestamp,
    },
    /// JumpCloud would not apply the elevation: restore at once.
    GiveUpGrant {
        /// When.
        at: Timestamp,
    },
    /// The grant's time is up (or its safety net fired before any
    /// elevation was confirmed).
    Expire,
    /// Restoration done (or deliberately skipped: `left_alone`).
    Restore {
        /// When.
        at: Timestamp,
        /// The binding had been changed by somebody else and was left so.
        left_alone: bool,
    },
}

impl Move {
    /// The audit action that records this move.
    pub fn action(&self) -> AuditAction {
        match self {
            Self::AskForDevice { .. } => AuditAction::DeviceChoiceAsked,
            Self::SendToApprovers { .. } => AuditAction::SentToApprovers,
            Self::PickDevice { .. } => AuditAction::DevicePicked,
            Self::Withdraw { .. } => AuditAction::Withdrawn,
            Self::RemindApprovers { .. } => AuditAction::ApproversReminded,
            Self::Approve(_) => AuditAction::Approved,
            Self::Deny(_) => AuditAction::Denied,
            Self::TimeOut { .. } => AuditAction::TimedOut,
            Self::Refuse { .. } => AuditAction::Refused,
            Self::NotGrant { .. } => AuditAction::NotGranted,
            Self::RecordGrant(_) => AuditAction::PriorStateRecorded,
            Self::Elevate { .. } => AuditAction::Elevated,
            Self::AskExtension(_) => AuditAction::ExtensionRequested,
            Self::ApproveExtension(_) => AuditAction::ExtensionApproved,
            Self::DenyExtension(_) => AuditAction::ExtensionDenied,
            Self::EndEarly { .. } => AuditAction::EndRequested,
            Self::GiveUpGrant { .. } => AuditAction::GrantFailed,
            Self::Expire => AuditAction::Expired,
            Self::Restore {
                left_alone: true, ..
            } => AuditAction::LeftAlone,
            Self::Restore {
                left_alone: false, ..
            } => AuditAction::Restored,
        }
    }
}

/// A move the state machine does not allow from the request's stage. The
/// request is left as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{event} is not a move from {}", from.as_str())]
pub struct IllegalMove {
    /// The stage the request is in.
    pub from: RequestState,
    /// The move that was tried, by its audit action.
    pub event: AuditAction,
}

impl Stage {
    /// The stage's plain name (stored in the `state` column).
    pub fn state(&self) -> RequestState {
        match self {
            Self::Resolving(_) => RequestState::Resolving,
            Self::AwaitingDevice(_) => RequestState::AwaitingDevice,
            Self::PendingApproval(_) => RequestState::PendingApproval,
            Self::Approved(_) => RequestState::Approved,
            Self::Active(_) => RequestState::Active,
            Self::Revoking(_) => RequestState::Revoking,
            Self::Ended(_) => RequestState::Ended,
            Self::Refused(_) => RequestState::Refused,
            Self::Denied(_) => RequestState::Denied,
            Self::TimedOut(_) => RequestState::TimedOut,
            Self::Cancelled(_) => RequestState::Cancelled,
        }
    }

    /// The next stage after `event`, or why there is none. The one place
    /// a stage changes; it checks every result against
    /// [`RequestState::MOVES`] too, in every build (no `debug_assert!`), so
    /// the table stays the one list of moves.
    pub fn apply(&self, event: Move) -> Result<Stage, IllegalMove> {
        let illegal = IllegalMove {
            from: self.state(),
            event: event.action(),
        };
        let next = match (self, event) {
            (
                Self::Resolving(_),
                Move::AskForDevice {
                    account,
                    candidates,
                },
            ) => Self::AwaitingDevice(AwaitingDevice {
                account,
                candidates,
            }),
            (
                Self::Resolving(_),
                Move::SendToApprovers {
                    account, device, ..
                },
            ) => Self::PendingApproval(PendingApproval {
                account,
                device,
                reminded_at: None,
            }),
            (Self::AwaitingDevice(a), Move::PickDevice { device }) => Self::Resolving(Resolving {
                picked: Some(Picked {
                    account: a.account.clone(),
                    device,
                }),
            }),
            (
                Self::Resolving(_) | Self::AwaitingDevice(_) | Self::PendingApproval(_),
                Move::Withdraw { by, at },
            ) => Self::Cancelled(self.closed(at, Some(by))),
            (Self::PendingApproval(p), Move::RemindApprovers { at }) if p.reminded_at.is_none() => {
                Self::PendingApproval(PendingApproval {
                    reminded_at: Some(at),
                    ..p.clone()
                })
            }
            (Self::PendingApproval(p), Move::Approve(decision)) => Self::Approved(Approved {
                account: p.account.clone(),
                device: p.device.clone(),
                decision,
                grant: None,
            }),
            (Self::PendingApproval(p), Move::Deny(decision)) => Self::Denied(Denied {
                account: p.account.clone(),
                device: p.device.clone(),
                decision,
            }),
            (Self::PendingApproval(_) | Self::AwaitingDevice(_), Move::TimeOut { at }) => {
                Self::TimedOut(self.closed(at, None))
            }
            (Self::Resolving(_) | Self::PendingApproval(_), Move::Refuse { at }) => {
                Self::Refused(self.closed(at, None))
            }
            (Self::Approved(a), Move::NotGrant { at }) if a.grant.is_none() => {
                Self::Refused(self.closed(at, None))
            }
            (Self::Approved(a), Move::RecordGrant(grant)) if a.grant.is_none() => {
                Self::Approved(Approved {
                    grant: Some(grant),
                    ..a.clone()
                })
            }
            (
                Self::Approved(Approved {
                    account,
                    device,
                    decision,
                    grant: Some(grant),
                }),
                Move::Elevate { at, record },
            ) => Self::Active(Active {
                account: account.clone(),
                device: device.clone(),
                decision: decision.clone(),
                grant: Grant {
                    record,
                    expires_at: grant.expires_at,
                },
                elevated_at: at,
                extension: None,
                extensions: Vec::new(),
            }),
            (Self::Active(a), Move::AskExtension(asked)) if a.extension.is_none() => {
                Self::Active(Active {
                    extension: Some(asked),
                    ..a.clone()
                })
            }
            (Self::Active(a), Move::ApproveExtension(decision)) => {
                let asked = a.extension.clone().ok_or(illegal)?;
                let mut extensions = a.extensions.clone();
                extensions.push(Extension {
                    added: asked.added,
                    decision,
                });
                Self::Active(Active {
                    grant: Grant {
                        expires_at: a.grant.expires_at + asked.added.as_chrono(),
                        ..a.grant.clone()
                    },
                    extension: None,
                    extensions,
                    ..a.clone()
                })
            }
            (Self::Active(a), Move::DenyExtension(_)) if a.extension.is_some() => {
                Self::Active(Active {
                    extension: None,
                    ..a.clone()
                })
            }
            (Self::Approved(_) | Self::Active(_), Move::EndEarly { by, at }) => self
                .restoring(EndCause::EndedEarly, Some(by), Some(at))
                .ok_or(illegal)?,
            (Self::Approved(_), Move::GiveUpGrant { at }) => self
                .restoring(EndCause::GrantFailed, None, Some(at))
                .ok_or(illegal)?,
            // The safety net can fire before any elevation was confirmed;
            // it was due at the grant's end, when one was recorded.
            (Self::Approved(_), Move::Expire) => {
                let due = self.grant().map(|g| g.expires_at);
                self.restoring(EndCause::GrantFailed, None, due)
                    .ok_or(illegal)?
            }
            (Self::Active(a), Move::Expire) => {
                let due = Some(a.grant.expires_at);
                self.restoring(EndCause::Expired, None, due)
                    .ok_or(illegal)?
            }
            (Self::Revoking(r), Move::Restore { at, left_alone }) => Self::Ended(Ended {
                revoking: r.clone(),
                ended_at: at,
                left_alone,
            }),
            _ => return Err(illegal),
        };
        if !illegal.from.can_become(next.state()) {
            return Err(illegal);
        }
        Ok(next)
    }

    /// The restoration of an elevation (from `approved` or `active`).
    fn restoring(
        &self,
        end_cause: EndCause,
        ended_by: Option<ChatUserId>,
        due_at: Option<Timestamp>,
    ) -> Option<Stage> {
        let (a, elevated_at) = match self {
            Self::Approved(a) => (a.clone(), None),
            Self::Active(a) => (
                Approved {
                    account: a.account.clone(),
                    device: a.device.clone(),
                    decision: a.decision.clone(),
                    grant: Some(a.grant.clone()),
                },
                Some(a.elevated_at),
            ),
            _ => return None,
        };
        // Nothing recorded, nothing to restore: no lag to count.
        let due_at = a.grant.as_ref().and(due_at);
        Some(Self::Revoking(Revoking {
            account: a.account,
            device: a.device,
            decision: a.decision,
            grant: a.grant,
            elevated_at,
            end_cause,
            ended_by,
            due_at,
        }))
    }

    /// The end of a request that was never elevated, keeping what it knew.
    fn closed(&self, ended_at: Timestamp, ended_by: Option<ChatUserId>) -> Closed {
        Closed {
            ended_at,
            ended_by,
            account: self.account().cloned(),
            device: self.device().cloned(),
            candidates: self.candidates().to_vec(),
            decision: self.decision().cloned(),
        }
    }

    // Readers that span stages (renderers, status lines, tests). Within one
    // stage, match instead.

    /// The requester's account, once found.
    pub fn account(&self) -> Option<&Account> {
        match self {
            Self::Resolving(s) => s.picked.as_ref().map(|p| &p.account),
            Self::AwaitingDevice(s) => Some(&s.account),
            Self::PendingApproval(s) => Some(&s.account),
            Self::Approved(s) => Some(&s.account),
            Self::Active(s) => Some(&s.account),
            Self::Revoking(s) => Some(&s.account),
            Self::Ended(s) => Some(&s.revoking.account),
            Self::Denied(s) => Some(&s.account),
            Self::Refused(s) | Self::TimedOut(s) | Self::Cancelled(s) => s.account.as_ref(),
        }
    }

    /// The chosen (or picked) device, once there is one.
    pub fn device(&self) -> Option<&Device> {
        match self {
            Self::Resolving(s) => s.picked.as_ref().map(|p| &p.device),
            Self::AwaitingDevice(_) => None,
            Self::PendingApproval(s) => Some(&s.device),
            Self::Approved(s) => Some(&s.device),
            Self::Active(s) => Some(&s.device),
            Self::Revoking(s) => Some(&s.device),
            Self::Ended(s) => Some(&s.revoking.device),
            Self::Denied(s) => Some(&s.device),
            Self::Refused(s) | Self::TimedOut(s) | Self::Cancelled(s) => s.device.as_ref(),
        }
    }

    /// The devices offered to pick from.
    pub fn candidates(&self) -> &[Device] {
        match self {
            Self::AwaitingDevice(s) => &s.candidates,
            Self::Refused(s) | Self::TimedOut(s) | Self::Cancelled(s) => &s.candidates,
            Self::Resolving(_)
            | Self::PendingApproval(_)
            | Self::Approved(_)
            | Self::Active(_)
            | Self::Revoking(_)
            | Self::Ended(_)
            | Self::Denied(_) => &[],
        }
    }

    /// Who approved or denied, and when.
    pub fn decision(&self) -> Option<&Decision> {
        match self {
            Self::Resolving(_) | Self::AwaitingDevice(_) | Self::PendingApproval(_) => None,
            Self::Approved(s) => Some(&s.decision),
            Self::Active(s) => Some(&s.decision),
            Self::Revoking(s) => Some(&s.decision),
            Self::Ended(s) => Some(&s.revoking.decision),
            Self::Denied(s) => Some(&s.decision),
            Self::Refused(s) | Self::TimedOut(s) | Self::Cancelled(s) => s.decision.as_ref(),
        }
    }

    /// The recorded prior state and the grant's end, once recorded.
    pub fn grant(&self) -> Option<&Grant> {
        match self {
            Self::Approved(s) => s.grant.as_ref(),
            Self::Active(s) => Some(&s.grant),
            Self::Revoking(s) => s.grant.as_ref(),
            Self::Ended(s) => s.revoking.grant.as_ref(),
            Self::Resolving(_)
            | Self::AwaitingDevice(_)
            | Self::PendingApproval(_)
            | Self::Refused(_)
            | Self::Denied(_)
            | Self::TimedOut(_)
            | Self::Cancelled(_) => None,
        }
    }

    /// The restoration under way or done, with why and by whom.
    pub fn revoking(&self) -> Option<&Revoking> {
        match self {
            Self::Revoking(s) => Some(s),
            Self::Ended(s) => Some(&s.revoking),
            Self::Resolving(_)
            | Self::AwaitingDevice(_)
            | Self::PendingApproval(_)
            | Self::Approved(_)
            | Self::Active(_)
            | Self::Refused(_)
            | Self::Denied(_)
            | Self::TimedOut(_)
            | Self::Cancelled(_) => None,
        }
    }

    /// When JumpCloud confirmed the elevation, if it did.
    pub fn elevated_at(&self) -> Option<Timestamp> {
        match self {
            Self::Active(s) => Some(s.elevated_at),
            Self::Revoking(s) => s.elevated_at,
            Self::Ended(s) => s.revoking.elevated_at,
            Self::Resolving(_)
            | Self::AwaitingDevice(_)
            | Self::PendingApproval(_)
            | Self::Approved(_)
            | Self::Refused(_)
            | Self::Denied(_)
            | Self::TimedOut(_)
            | Self::Cancelled(_) => None,
        }
    }

    /// When it ended, for a terminal stage that records it.
    pub fn ended_at(&self) -> Option<Timestamp> {
        match self {
            Self::Ended(s) => Some(s.ended_at),
            Self::Refused(s) | Self::TimedOut(s) | Self::Cancelled(s) => Some(s.ended_at),
            Self::Resolving(_)
            | Self::AwaitingDevice(_)
            | Self::PendingApproval(_)
            | Self::Approved(_)
            | Self::Active(_)
            | Self::Revoking(_)
            | Self::Denied(_) => None,
        }
    }

    /// Who ended it, when somebody did.
    pub fn ended_by(&self) -> Option<&ChatUserId> {
        match self {
            Self::Refused(s) | Self::TimedOut(s) | Self::Cancelled(s) => s.ended_by.as_ref(),
            Self::Revoking(s) => s.ended_by.as_ref(),
            Self::Ended(s) => s.revoking.ended_by.as_ref(),
            Self::Resolving(_)
            | Self::AwaitingDevice(_)
            | Self::PendingApproval(_)
            | Self::Approved(_)
            | Self::Active(_)
            | Self::Denied(_) => None,
        }
    }

    /// The JumpCloud user and device the request holds, for the store's
    /// look-ups (`jc_user`, `system_id`).
    pub fn holds(&self) -> (Option<&JcUserId>, Option<&SystemId>) {
        (
            self.account().map(|a| &a.jc_user),
            self.device().map(|d| &d.id),
        )
    }
}

/// Everything some stage can know, for building a stage of any state at
/// once (tests and benchmarks): each state takes what it has, as migration
/// 0008 does from the old columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// The requester's account.
    pub account: Account,
    /// The chosen device.
    pub device: Device,
    /// The devices offered.
    pub candidates: Vec<Device>,
    /// The decision.
    pub decision: Decision,
    /// The recorded prior state and end.
    pub grant: Grant,
    /// When the elevation was confirmed.
    pub elevated_at: Timestamp,
    /// Why it ends.
    pub end_cause: EndCause,
    /// Who ended it.
    pub ended_by: Option<ChatUserId>,
    /// When it ended.
    pub ended_at: Timestamp,
    /// Whether the restoration left the binding alone.
    pub left_alone: bool,
}

impl Stage {
    /// A stage of `state` holding what it can of `known`.
    pub fn from_known(state: RequestState, known: &Known) -> Stage {
        let k = known.clone();
        let revoking = Revoking {
            account: k.account.clone(),
            device: k.device.clone(),
            decision: k.decision.clone(),
            grant: Some(k.grant.clone()),
            elevated_at: Some(k.elevated_at),
            end_cause: k.end_cause,
            ended_by: k.ended_by.clone(),
            due_at: Some(k.grant.expires_at),
        };
        let closed = Closed {
            ended_at: k.ended_at,
            ended_by: k.ended_by.clone(),
            account: Some(k.account.clone()),
            device: Some(k.device.clone()),
            candidates: k.candidates.clone(),
            decision: Some(k.decision.clone()),
        };
        match state {
            RequestState::Resolving => Self::Resolving(Resolving {
                picked: Some(Picked {
                    account: k.account,
                    device: k.device,
                }),
            }),
            RequestState::AwaitingDevice => Self::AwaitingDevice(AwaitingDevice {
                account: k.account,
                candidates: k.candidates,
            }),
            RequestState::PendingApproval => Self::PendingApproval(PendingApproval {
                account: k.account,
                device: k.device,
                reminded_at: None,
            }),
            RequestState::Approved => Self::Approved(Approved {
                account: k.account,
                device: k.device,
                decision: k.decision,
                grant: Some(k.grant),
            }),
            RequestState::Active => Self::Active(Active {
                account: k.account,
                device: k.device,
                decision: k.decision,
                grant: k.grant,
                elevated_at: k.elevated_at,
                extension: None,
                extensions: Vec::new(),
            }),
            RequestState::Revoking => Self::Revoking(revoking),
            RequestState::Ended => Self::Ended(Ended {
                revoking,
                ended_at: k.ended_at,
                left_alone: k.left_alone,
            }),
            RequestState::Refused => Self::Refused(closed),
            RequestState::Denied => Self::Denied(Denied {
                account: k.account,
                device: k.device,
                decision: k.decision,
            }),
            RequestState::TimedOut => Self::TimedOut(closed),
            RequestState::Cancelled => Self::Cancelled(closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DirectBinding, PriorState};

    fn at(ms: i64) -> Timestamp {
        chrono::DateTime::from_timestamp_millis(ms).unwrap()
    }

    fn account() -> Account {
        Account {
            email: Email::parse("ada@example.com").unwrap(),
            jc_user: JcUserId::new("jc-ada"),
        }
    }

    fn device() -> Device {
        Device {
            id: SystemId::new("sys-1"),
            hostname: "ada-mac".into(),
            display_name: "ada-mac".into(),
            os_family: "darwin".into(),
            online: true,
            compiled_sudo: false,
        }
    }

    fn decision() -> Decision {
        Decision {
            by: ChatUserId::slack("U2"),
            at: at(1_000),
        }
    }

    fn grant() -> Grant {
        Grant {
            record: PriorState {
                global_sudo: false,
                direct: Some(DirectBinding {
                    sudo: false,
                    without_password: false,
                }),
                compiled_sudo: false,
            }
            .into(),
            expires_at: at(61_000),
        }
    }

    fn pending() -> Stage {
        Stage::Resolving(Resolving::default())
            .apply(Move::SendToApprovers {
                account: account(),
                device: device(),
                reason: "printer".into(),
            })
            .unwrap()
    }

    /// One stage of each kind, reached by legal moves.
    fn every_stage() -> Vec<Stage> {
        let resolving = Stage::Resolving(Resolving::default());
        let awaiting = resolving
            .apply(Move::AskForDevice {
                account: account(),
                candidates: vec![device(), device()],
            })
            .unwrap();
        let approved = pending().apply(Move::Approve(decision())).unwrap();
        let recorded = approved.apply(Move::RecordGrant(grant())).unwrap();
        let active = recorded
            .apply(Move::Elevate {
                at: at(2_000),
                record: grant().record,
            })
            .unwrap();
        let revoking = active
            .apply(Move::EndEarly {
                by: ChatUserId::slack("U1"),
                at: at(2_500),
            })
            .unwrap();
        let ended = revoking
            .apply(Move::Restore {
                at: at(3_000),
                left_alone: true,
            })
            .unwrap();
        vec![
            awaiting
                .apply(Move::PickDevice { device: device() })
                .unwrap(),
            awaiting.clone(),
            pending(),
            approved.clone(),
            recorded,
            active,
            revoking,
            ended,
            approved.apply(Move::NotGrant { at: at(4_000) }).unwrap(),
            pending().apply(Move::Deny(decision())).unwrap(),
            awaiting.apply(Move::TimeOut { at: at(5_000) }).unwrap(),
            pending()
                .apply(Move::Withdraw {
                    by: ChatUserId::teams("29:ada"),
                    at: at(6_000),
                })
                .unwrap(),
            resolving,
        ]
    }

    #[test]
    fn every_stage_round_trips_through_its_serialised_form() {
        for s in every_stage() {
            let text = serde_json::to_string(&s).unwrap();
            let back: Stage = serde_json::from_str(&text).unwrap();
            assert_eq!(back, s, "{text}");
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["state"], s.state().as_str(), "tagged by its state");
        }
    }

    /// This test runs the same code in every profile: `apply` checks moves
    /// with ordinary control flow (no `debug_assert!`, nothing under
    /// `cfg(debug_assertions)`), so a release build refuses an illegal move
    /// exactly as this test sees it refused.
    #[test]
    fn an_illegal_move_is_refused_in_every_build_and_changes_nothing() {
        let active = every_stage()
            .into_iter()
            .find(|s| s.state() == RequestState::Active)
            .unwrap();
        let before = active.clone();
        assert_eq!(
            active.apply(Move::Approve(decision())),
            Err(IllegalMove {
                from: RequestState::Active,
                event: AuditAction::Approved,
            })
        );
        assert_eq!(active, before, "the stage is left as it was");
        // Active ─► ended without restoring is not a move.
        assert!(active
            .apply(Move::Restore {
                at: at(9),
                left_alone: false
            })
            .is_err());
        // Not granted once the prior state is recorded: a JumpCloud call
        // may have been made, so only restoration may follow.
        let recorded = pending()
            .apply(Move::Approve(decision()))
            .unwrap()
            .apply(Move::RecordGrant(grant()))
            .unwrap();
        assert!(recorded.apply(Move::NotGrant { at: at(9) }).is_err());
        assert!(recorded.apply(Move::RecordGrant(grant())).is_err(), "once");
        // Elevating needs the recorded prior state.
        let approved = pending().apply(Move::Approve(decision())).unwrap();
        assert!(approved
            .apply(Move::Elevate {
                at: at(9),
                record: grant().record
            })
            .is_err());
        let illegal = approved
            .apply(Move::Elevate {
                at: at(9),
                record: grant().record,
            })
            .unwrap_err();
        assert_eq!(illegal.to_string(), "elevated is not a move from approved");
    }

    #[test]
    fn every_move_apply_makes_is_in_the_table_and_every_stage_is_reachable() {
        let stages = every_stage();
        for state in RequestState::ALL {
            assert!(
                stages.iter().any(|s| s.state() == state),
                "{state:?} has an example"
            );
        }
    }

    #[test]
    fn an_approved_extension_moves_the_end_and_a_denied_one_leaves_it() {
        let active = every_stage()
            .into_iter()
            .find(|s| s.state() == RequestState::Active)
            .unwrap();
        let end = active.grant().unwrap().expires_at;
        let ten = GrantDuration::from_secs(600);
        let ask = Move::AskExtension(ExtensionAsked {
            added: ten,
            at: at(3_000),
        });
        // Nothing to decide before an ask.
        assert!(active.apply(Move::ApproveExtension(decision())).is_err());
        assert!(active.apply(Move::DenyExtension(decision())).is_err());
        let asked = active.apply(ask.clone()).unwrap();
        assert!(asked.apply(ask.clone()).is_err(), "one ask at a time");
        let approved = asked.apply(Move::ApproveExtension(decision())).unwrap();
        assert_eq!(approved.state(), RequestState::Active);
        assert_eq!(approved.grant().unwrap().expires_at, end + ten.as_chrono());
        let Stage::Active(a) = &approved else {
            unreachable!()
        };
        assert_eq!(a.extension, None, "decided once");
        assert_eq!(a.granted(ten), GrantDuration::from_secs(1_200));
        assert!(approved.apply(Move::ApproveExtension(decision())).is_err());
        let denied = asked.apply(Move::DenyExtension(decision())).unwrap();
        assert_eq!(denied.grant().unwrap().expires_at, end);
        assert_eq!(denied, active, "a denial leaves the grant as it was");
        let text = serde_json::to_string(&approved).unwrap();
        assert_eq!(serde_json::from_str::<Stage>(&text).unwrap(), approved);
    }

    #[test]
    fn an_expiry_before_any_confirmed_elevation_counts_as_a_failed_grant() {
        let approved = pending().apply(Move::Approve(decision())).unwrap();
        let net = approved.apply(Move::Expire).unwrap();
        assert_eq!(
            net.revoking().map(|r| (r.end_cause, r.elevated_at)),
            Some((EndCause::GrantFailed, None))
        );
        let active = approved
            .apply(Move::RecordGrant(grant()))
            .unwrap()
            .apply(Move::Elevate {
                at: at(7),
                record: grant().record,
            })
            .unwrap();
        let expired = active.apply(Move::Expire).unwrap();
        assert_eq!(
            expired.revoking().map(|r| (r.end_cause, r.elevated_at)),
            Some((EndCause::Expired, Some(at(7))))
        );
        assert_eq!(expired.grant(), Some(&grant()), "the record goes along");
    }
}
