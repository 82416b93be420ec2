//! What the engine wants people to be told, independent of the chat service.
//! The Slack adapter renders these as Block Kit and the Teams adapter as
//! Adaptive Cards and messages, both from the same values and the shared
//! wording (`crate::wording`). Notices are stored in the outbox as JSON, so
//! every variant is serialisable.

use super::{ChatUserId, DirectBinding, Email, GrantDuration, RequestId, RequestState, Timestamp};

/// Why something the person asked for was not done, said privately.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    /// The first word was meant as a duration but is not one.
    BadDuration {
        /// What was typed.
        input: String,
        /// Policy minimum.
        min: GrantDuration,
        /// Policy maximum.
        max: GrantDuration,
    },
    /// A duration outside the policy bounds.
    DurationOutOfRange {
        /// What was asked.
        requested: GrantDuration,
        /// Policy minimum.
        min: GrantDuration,
        /// Policy maximum.
        max: GrantDuration,
    },
    /// Policy requires a reason and none was given.
    ReasonRequired,
    /// The reason is longer than the policy allows (`max_reason_length`).
    ReasonTooLong {
        /// Characters given.
        length: usize,
        /// Policy maximum, in characters.
        max: usize,
    },
    /// The chat profile has no email address to find the JumpCloud account by.
    NoEmail,
    /// No JumpCloud user has this email.
    NoDirectoryAccount {
        /// The email looked up.
        email: Email,
    },
    /// Several JumpCloud accounts have the email.
    AmbiguousDirectoryAccount {
        /// The email looked up.
        email: Email,
        /// How many accounts have it.
        accounts: usize,
    },
    /// The JumpCloud account is suspended.
    Suspended {
        /// The account's email.
        email: Email,
    },
    /// The account has no computer bound to it (phones and tablets do not count).
    NoEligibleDevice {
        /// The account's email.
        email: Email,
    },
    /// The person is admin there already.
    AlreadyAdmin {
        /// The device.
        hostname: String,
        /// The open request that makes them admin, if that is why.
        through: Option<RequestId>,
    },
    /// JumpCloud could not be reached or answered with errors.
    DirectoryUnavailable,
    /// JumpCloud refused our API key (401/403): an administrator must fix it.
    DirectoryMisconfigured,
    /// The chat service could not tell us who the person is.
    ChatUnavailable,
    /// The approvers' channel refused the request (bot not invited, channel
    /// archived…): nobody could approve it.
    ApprovalsUnreachable {
        /// The chat service's reason, e.g. `not_in_channel`.
        error: String,
    },
    /// The clicker is not a configured approver.
    NotApprover,
    /// Four eyes: nobody decides their own request.
    OwnRequest,
    /// Four eyes by account: the request would elevate the clicker's own
    /// JumpCloud account (they clicked from a second chat identity).
    OwnAccount,
    /// The approver's own JumpCloud account could not be told apart from the
    /// requester's (no email in their chat profile, or several accounts with
    /// it), so their decision cannot count.
    ApproverUnverified,
    /// JumpCloud did not answer the look-up of the approver's own account,
    /// so their decision did not count yet.
    ApproverCheckUnavailable,
    /// Somebody decided already; the request is in this state.
    AlreadyDecided {
        /// Its current state.
        state: RequestState,
    },
    /// Only the requester or an approver may end an elevation early.
    NotAllowedToEnd,
    /// `/tempadmin revoke` with nothing active or pending.
    NothingToRevoke,
    /// Too many commands at once: nothing was recorded; try again shortly.
    Busy,
    /// The person has `policy.max_open_requests` open already.
    TooManyOpenRequests {
        /// Open now.
        open: usize,
        /// Policy maximum.
        max: usize,
    },
    /// The person made `policy.max_requests_per_hour` requests in the past hour.
    TooManyRequestsPerHour {
        /// Policy maximum.
        max: usize,
    },
    /// A device pick that was not one of the offered devices, or came too late.
    DeviceNotOffered,
    /// An extension would take the grant past `policy.max_duration` from
    /// its first elevation (or nothing is left under it).
    ExtensionOverLimit {
        /// Policy maximum.
        max: GrantDuration,
        /// What is left under it (`None`: nothing).
        left: Option<GrantDuration>,
    },
    /// An extension asked for less than `policy.min_duration` (or, when
    /// less than that is left under the maximum, less than what is left).
    ExtensionTooShort {
        /// What was asked for.
        asked: GrantDuration,
        /// The shortest extension that may be asked for.
        min: GrantDuration,
    },
    /// Only an active grant of the person's own can be extended.
    NothingToExtend,
    /// An extension of this grant is waiting for approvers already.
    ExtensionPending,
    /// The grant's end came before the extension was decided.
    ExtensionTooLate,
    /// At grant time the device is no longer bound to the person's JumpCloud
    /// account, or is no longer a computer.
    DeviceNoLongerBound {
        /// The device.
        hostname: String,
    },
}

/// Why an elevation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndCause {
    /// Its time ran out.
    Expired,
    /// Somebody ended it before its time (End now or `/tempadmin revoke`).
    EndedEarly,
    /// JumpCloud would not apply the elevation; whatever may have been applied was undone.
    GrantFailed,
}

impl EndCause {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::EndedEarly => "ended_early",
            Self::GrantFailed => "grant_failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Expired, Self::EndedEarly, Self::GrantFailed]
            .into_iter()
            .find(|c| c.as_str() == text)
    }
}

/// Something that happened to a request: a thread reply for everyone, or a
/// direct message to the requester.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The request was approved.
    Approved {
        /// By whom.
        by: ChatUserId,
    },
    /// The request was denied.
    Denied {
        /// By whom.
        by: ChatUserId,
    },
    /// Nobody decided in time.
    TimedOut,
    /// Still undecided after `policy.approval_reminder`: the approvers are
    /// named in the thread (each chat adapter names its own approvers).
    ApprovalReminder {
        /// When the request expires without a decision.
        expires_at: Timestamp,
    },
    /// The requester withdrew the request.
    Cancelled,
    /// Admin rights are in place until `until`. `changed` is false when the
    /// person turned out to be admin already, so nothing was changed.
    Elevated {
        /// Expiry.
        until: Timestamp,
        /// Whether JumpCloud was changed.
        changed: bool,
        /// Whether the computer was online when the grant was confirmed,
        /// read once then (`None`: not known; older messages have none).
        #[serde(default)]
        presence: Option<Presence>,
    },
    /// The requester asked for more time.
    ExtensionRequested {
        /// How much more.
        added: GrantDuration,
    },
    /// An approver approved an extension: the grant now ends at `until`.
    ExtensionApproved {
        /// By whom.
        by: ChatUserId,
        /// How much more.
        added: GrantDuration,
        /// The new end.
        until: Timestamp,
    },
    /// An approver denied an extension: the end stays.
    ExtensionDenied {
        /// By whom.
        by: ChatUserId,
    },
    /// JumpCloud refused or failed the elevation for good.
    GrantFailed {
        /// A classification of the failure (never a secret).
        error: String,
    },
    /// Time left.
    Reminder {
        /// Remaining time at this mark.
        left: GrantDuration,
    },
    /// The rights were taken back.
    Ended {
        /// Why.
        cause: EndCause,
        /// Who ended it early.
        by: Option<ChatUserId>,
        /// Whether the computer was online at the end: read once beside
        /// the restoration, best effort (`None`: not read, the read failed
        /// or took too long; older messages have none).
        #[serde(default)]
        presence: Option<Presence>,
    },
    /// JumpCloud's own clock ended the rights at the expiry it held
    /// (`grant_mode = "access_request"`), before the bot's revocation did.
    EndedByDirectory,
    /// Approved, but at grant time the facts no longer allowed it (account
    /// suspended, device unbound…): nothing was changed.
    NotGranted {
        /// Why.
        refusal: Refusal,
    },
    /// At revocation the binding was no longer what the bot had set
    /// (somebody changed it during the grant), so it was left as it was.
    LeftAlone {
        /// The direct binding found (`None`: there was none).
        found: Option<DirectBinding>,
    },
    /// Restoration keeps failing; the bot keeps trying. Humans should look.
    RevokeFailing {
        /// Attempts so far.
        attempts: u32,
        /// A classification of the failure (never a secret).
        error: String,
    },
    /// A step on the device itself (a notice, or ending what ran elevated)
    /// failed for good. The rights in JumpCloud are unaffected.
    DeviceStepFailed {
        /// Which: `grant`, `reminder` or `end`.
        step: String,
        /// A classification of the failure (never a secret).
        error: String,
    },
}

/// Whether a computer's agent is connected to JumpCloud, and when it
/// last was (`GET /api/systems/{id}`: `active`, `lastContact`). A change
/// to an offline computer's rights applies when it next checks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Presence {
    /// `active`: the agent is connected right now.
    pub online: bool,
    /// `lastContact`, when JumpCloud gave one.
    pub last_seen: Option<Timestamp>,
}

/// A private answer to one person.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "body", rename_all = "snake_case")]
pub enum PrivateBody {
    /// The request went to the approvers.
    Sent,
    /// Refused, with the reason.
    Refused(Refusal),
    /// Several devices: pick one (the request's `candidates`).
    PickDevice,
}

/// One message the engine wants delivered; a row of the outbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Notice {
    /// Post the approval message (the thread's root) to the approvers.
    ApprovalCard,
    /// Re-render the approval message from the request's current state.
    RefreshCard,
    /// Reply in the approval message's thread.
    Thread {
        /// What happened.
        event: Event,
    },
    /// Direct message to the requester.
    Direct {
        /// What happened.
        event: Event,
    },
    /// Private answer. `reply_to` is where (Slack: a `response_url`); `None`
    /// means the request's own `reply_to`.
    Private {
        /// Destination, when not the requester's.
        reply_to: Option<String>,
        /// What to say.
        body: PrivateBody,
    },
}

impl Notice {
    /// Every kind of notice, as its serde tag `to` names it in the outbox.
    pub const KINDS: [&'static str; 5] = [
        "approval_card",
        "refresh_card",
        "thread",
        "direct",
        "private",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_notice_shape_survives_the_outbox_round_trip() {
        let email = Email::parse("a@example.com").unwrap();
        let notices = [
            Notice::ApprovalCard,
            Notice::RefreshCard,
            Notice::Thread {
                event: Event::Reminder {
                    left: GrantDuration::from_secs(60),
                },
            },
            Notice::Direct {
                event: Event::Ended {
                    cause: EndCause::EndedEarly,
                    by: Some(ChatUserId::slack("U1")),
                    presence: Some(Presence {
                        online: false,
                        last_seen: Some(Timestamp::default()),
                    }),
                },
            },
            Notice::Private {
                reply_to: None,
                body: PrivateBody::PickDevice,
            },
            Notice::Private {
                reply_to: Some("https://hooks".into()),
                body: PrivateBody::Refused(Refusal::NoDirectoryAccount { email }),
            },
            Notice::Thread {
                event: Event::NotGranted {
                    refusal: Refusal::DeviceNoLongerBound {
                        hostname: "ada-mac".into(),
                    },
                },
            },
            Notice::Direct {
                event: Event::LeftAlone {
                    found: Some(DirectBinding {
                        sudo: true,
                        without_password: true,
                    }),
                },
            },
            Notice::Private {
                reply_to: None,
                body: PrivateBody::Refused(Refusal::ReasonTooLong {
                    length: 2900,
                    max: 500,
                }),
            },
            Notice::Private {
                reply_to: None,
                body: PrivateBody::Refused(Refusal::TooManyOpenRequests { open: 3, max: 3 }),
            },
            Notice::Private {
                reply_to: None,
                body: PrivateBody::Refused(Refusal::TooManyRequestsPerHour { max: 10 }),
            },
            Notice::Private {
                reply_to: None,
                body: PrivateBody::Refused(Refusal::AlreadyDecided {
                    state: RequestState::Denied,
                }),
            },
        ];
        let mut kinds = std::collections::BTreeSet::new();
        for notice in notices {
            let json = serde_json::to_string(&notice).unwrap();
            assert_eq!(
                serde_json::from_str::<Notice>(&json).unwrap(),
                notice,
                "{json}"
            );
            let value = serde_json::to_value(&notice).unwrap();
            kinds.insert(value["to"].as_str().unwrap().to_string());
        }
        // The outbox's kinds on /metrics are exactly these tags.
        let listed = Notice::KINDS.iter().map(|k| k.to_string()).collect();
        assert_eq!(kinds, listed);
    }
}
