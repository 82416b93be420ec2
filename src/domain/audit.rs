//! Audit entries: one per transition, appended and never changed (DESIGN 7).

use super::{RequestId, RequestState, Timestamp};

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// When.
    pub at: Timestamp,
    /// Who caused it: a chat user id, or `tempadmin` for the bot's own jobs.
    pub actor: String,
    /// What happened.
    pub action: AuditAction,
    /// Which request.
    pub request_id: RequestId,
    /// State before.
    pub before: Option<RequestState>,
    /// State after.
    pub after: Option<RequestState>,
    /// Extra facts (device, duration, JumpCloud operation), as JSON.
    pub detail: serde_json::Value,
}

/// The actor name used for what the bot does by itself.
pub const BOT_ACTOR: &str = "tempadmin";

/// What an audit line records. Stored and exported as the snake_case name
/// ([`AuditAction::as_str`]); the names are part of the audit trail's
/// format, so a variant is never renamed, only added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// A person asked (`/tempadmin DURATION …`).
    Requested,
    /// The requester withdrew an undecided request.
    Withdrawn,
    /// End now, or `/tempadmin revoke` of an elevation.
    EndRequested,
    /// An approver approved.
    Approved,
    /// An approver denied.
    Denied,
    /// The requester picked one of the offered devices.
    DevicePicked,
    /// A click that changed nothing, and why.
    ClickRefused,
    /// Several devices and none named: the requester is asked.
    DeviceChoiceAsked,
    /// Posted to the approvers.
    SentToApprovers,
    /// Refused before a decision (no account, no device, …).
    Refused,
    /// The admin state before elevation, recorded once, and the grant's end.
    PriorStateRecorded,
    /// JumpCloud confirmed the elevation.
    Elevated,
    /// Approved, but today's facts forbid the grant.
    NotGranted,
    /// JumpCloud would not apply the elevation.
    GrantFailed,
    /// The grant's time ran out (or its safety net fired).
    Expired,
    /// The binding had been changed by somebody else; left as it was.
    LeftAlone,
    /// The recorded state was restored.
    Restored,
    /// Restoration keeps failing (said in the thread too).
    RestoreFailing,
    /// Nobody decided (or picked a device) in time.
    TimedOut,
    /// The requester asked for more time on an active grant.
    ExtensionRequested,
    /// An approver approved the extension: the end moved.
    ExtensionApproved,
    /// An approver denied the extension: the end stays.
    ExtensionDenied,
    /// A notice on the device, or ending what ran elevated, failed for good
    /// (the grant and its revocation went on regardless).
    DeviceStepFailed,
    /// The request waited `policy.approval_reminder` undecided; the
    /// approvers were named in its thread (once).
    ApproversReminded,
}

impl AuditAction {
    /// Every action, for parsing and tests.
    pub const ALL: [AuditAction; 24] = {
        use AuditAction::*;
        [
            Requested,
            Withdrawn,
            EndRequested,
            Approved,
            Denied,
            DevicePicked,
            ClickRefused,
            DeviceChoiceAsked,
            SentToApprovers,
            Refused,
            PriorStateRecorded,
            Elevated,
            NotGranted,
            GrantFailed,
            Expired,
            LeftAlone,
            Restored,
            RestoreFailing,
            TimedOut,
            ExtensionRequested,
            ExtensionApproved,
            ExtensionDenied,
            DeviceStepFailed,
            ApproversReminded,
        ]
    };

    /// The name stored in the audit table and shown in exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Withdrawn => "withdrawn",
            Self::EndRequested => "end_requested",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::DevicePicked => "device_picked",
            Self::ClickRefused => "click_refused",
            Self::DeviceChoiceAsked => "device_choice_asked",
            Self::SentToApprovers => "sent_to_approvers",
            Self::Refused => "refused",
            Self::PriorStateRecorded => "prior_state_recorded",
            Self::Elevated => "elevated",
            Self::NotGranted => "not_granted",
            Self::GrantFailed => "grant_failed",
            Self::Expired => "expired",
            Self::LeftAlone => "left_alone",
            Self::Restored => "restored",
            Self::RestoreFailing => "restore_failing",
            Self::TimedOut => "timed_out",
            Self::ExtensionRequested => "extension_requested",
            Self::ExtensionApproved => "extension_approved",
            Self::ExtensionDenied => "extension_denied",
            Self::DeviceStepFailed => "device_step_failed",
            Self::ApproversReminded => "approvers_reminded",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lets a reader compare with the stored name (`e.action == "approved"`).
impl PartialEq<str> for AuditAction {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for AuditAction {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_round_trip_and_match_their_serde_names() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
            assert_eq!(
                serde_json::to_value(a).unwrap(),
                serde_json::Value::from(a.as_str())
            );
        }
    }
}
