//! The access request and its state machine.
//!
//! ```text
//! resolving ─► awaiting_device ─► resolving
//!     │                └──────────► timed_out
//!     ├─► refused
//!     └─► pending_approval ─► denied | timed_out | cancelled
//!               └─► approved ─► active ─► revoking ─► ended
//!                      └───────────────────┘
//! ```
//! `approved` means "elevation under way"; `revoking` means "restoration under
//! way". Each arrow is a conditional update in the store (on the request's
//! `version`), so of two racing transitions exactly one wins (DESIGN 3).

use super::{
    ChatUserId, Email, EndCause, GrantDuration, JcUserId, PriorState, RequestId, SystemId,
    Timestamp,
};

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Looking up the requester's account and devices.
    Resolving,
    /// Waiting for the requester to pick one of several devices.
    AwaitingDevice,
    /// Posted to approvers, waiting for a decision.
    PendingApproval,
    /// Approved; the elevation is being applied.
    Approved,
    /// JumpCloud confirmed the elevation; the clock runs.
    Active,
    /// The prior state is being restored.
    Revoking,
    /// Restored. Terminal.
    Ended,
    /// Refused before reaching approvers (no account, no device, …). Terminal.
    Refused,
    /// An approver said no. Terminal.
    Denied,
    /// Nobody decided (or picked a device) in time. Terminal.
    TimedOut,
    /// The requester withdrew it before a decision. Terminal.
    Cancelled,
}

impl RequestState {
    /// Every state, for parsing and tests.
    pub const ALL: [RequestState; 11] = [
        Self::Resolving,
        Self::AwaitingDevice,
        Self::PendingApproval,
        Self::Approved,
        Self::Active,
        Self::Revoking,
        Self::Ended,
        Self::Refused,
        Self::Denied,
        Self::TimedOut,
        Self::Cancelled,
    ];

    /// The name stored in the database and shown in audit exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Resolving => "resolving",
            Self::AwaitingDevice => "awaiting_device",
            Self::PendingApproval => "pending_approval",
            Self::Approved => "approved",
            Self::Active => "active",
            Self::Revoking => "revoking",
            Self::Ended => "ended",
            Self::Refused => "refused",
            Self::Denied => "denied",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// No transition leaves a terminal state.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Ended | Self::Refused | Self::Denied | Self::TimedOut | Self::Cancelled
        )
    }
}

/// A JumpCloud device as the requester and approvers see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Device {
    /// JumpCloud system id.
    pub id: SystemId,
    /// `hostname`.
    pub hostname: String,
    /// `displayName` (often equal to the hostname).
    pub display_name: String,
    /// `osFamily`: windows, darwin, linux, ios, android.
    pub os_family: String,
    /// `active`: the agent is connected right now.
    pub online: bool,
    /// Admin already, through any binding (`compiledAttributes.sudo.enabled`).
    pub compiled_sudo: bool,
}

impl Device {
    /// Phones and tablets have no local admin to grant.
    pub fn is_eligible(&self) -> bool {
        !matches!(
            self.os_family.to_ascii_lowercase().as_str(),
            "ios" | "ipados" | "android"
        )
    }

    /// Whether `word` names this device (hostname or display name, any case).
    pub fn is_named(&self, word: &str) -> bool {
        self.hostname.eq_ignore_ascii_case(word) || self.display_name.eq_ignore_ascii_case(word)
    }
}

/// One request for temporary admin rights, from command to restoration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Our id.
    pub id: RequestId,
    /// Who asked.
    pub requester: ChatUserId,
    /// Where private answers to the requester go (Slack: the `response_url`).
    pub reply_to: Option<String>,
    /// How long, as asked.
    pub duration: GrantDuration,
    /// The words after the duration, before a device was chosen.
    pub words: Vec<String>,
    /// Why, as typed (shown literally).
    pub reason: String,
    /// Where it is in its life.
    pub state: RequestState,
    /// When it was asked.
    pub created_at: Timestamp,
    /// The requester's email, from the chat profile.
    pub email: Option<Email>,
    /// The requester's JumpCloud user.
    pub jc_user: Option<JcUserId>,
    /// The chosen device.
    pub device: Option<Device>,
    /// Devices offered to pick from.
    pub candidates: Vec<Device>,
    /// Admin state before elevation (captured once).
    pub prior: Option<PriorState>,
    /// Who approved or denied.
    pub decided_by: Option<ChatUserId>,
    /// When.
    pub decided_at: Option<Timestamp>,
    /// When JumpCloud confirmed the elevation.
    pub elevated_at: Option<Timestamp>,
    /// When the rights are taken away: the first elevation attempt plus the
    /// duration, fixed before JumpCloud is first called, so that neither a
    /// retry nor a crash can extend it.
    pub expires_at: Option<Timestamp>,
    /// When restoration was confirmed.
    pub ended_at: Option<Timestamp>,
    /// Who ended it early (none for expiry).
    pub ended_by: Option<ChatUserId>,
    /// Why it ended.
    pub end_cause: Option<EndCause>,
    /// At revocation the binding had been changed by somebody else, so the
    /// bot left it as it was instead of restoring the recorded state.
    pub left_alone: bool,
    /// The approval message in the approvers' channel (chat-specific reference).
    pub approval_message: Option<String>,
    /// Revision for optimistic concurrency: every transition bumps it, and a
    /// transition built from an older revision changes nothing.
    pub version: i64,
}

impl Request {
    /// The platform the request lives on: its requester's, from start to end.
    pub fn platform(&self) -> super::Platform {
        self.requester.platform()
    }

    /// A new request that is about to be resolved.
    pub fn new(
        requester: ChatUserId,
        reply_to: Option<String>,
        duration: GrantDuration,
        words: Vec<String>,
        now: Timestamp,
    ) -> Self {
        let reason = words.join(" ");
        Self {
            id: RequestId::generate(),
            requester,
            reply_to,
            duration,
            words,
            reason,
            state: RequestState::Resolving,
            created_at: now,
            email: None,
            jc_user: None,
            device: None,
            candidates: Vec::new(),
            prior: None,
            decided_by: None,
            decided_at: None,
            elevated_at: None,
            expires_at: None,
            ended_at: None,
            ended_by: None,
            end_cause: None,
            left_alone: false,
            approval_message: None,
            version: 0,
        }
    }
}

/// Picks the device a request is about and the reason that remains: the
/// first word selects a device when it names one; otherwise a lone eligible
/// device is chosen; otherwise the requester must pick.
pub fn choose_device(devices: &[Device], words: &[String]) -> DeviceChoice {
    let eligible: Vec<Device> = devices
        .iter()
        .filter(|d| d.is_eligible())
        .cloned()
        .collect();
    if let Some(first) = words.first() {
        if let Some(device) = eligible.iter().find(|d| d.is_named(first)) {
            return DeviceChoice::Chosen {
                device: device.clone(),
                reason: words[1..].join(" "),
            };
        }
    }
    let reason = words.join(" ");
    match eligible.len() {
        0 => DeviceChoice::NoneEligible,
        1 => DeviceChoice::Chosen {
            device: eligible[0].clone(),
            reason,
        },
        _ => DeviceChoice::Ask(eligible),
    }
}

/// The outcome of [`choose_device`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceChoice {
    /// This device, with the words left over as the reason.
    Chosen {
        /// The device.
        device: Device,
        /// The reason.
        reason: String,
    },
    /// Several devices and none named: ask the requester.
    Ask(Vec<Device>),
    /// Nothing a person can be admin on.
    NoneEligible,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str, host: &str, os: &str) -> Device {
        Device {
            id: SystemId::new(id),
            hostname: host.into(),
            display_name: host.into(),
            os_family: os.into(),
            online: true,
            compiled_sudo: false,
        }
    }

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn state_names_round_trip() {
        for s in RequestState::ALL {
            assert_eq!(RequestState::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn a_first_word_naming_a_device_selects_it_and_leaves_the_reason() {
        let devices = [
            device("1", "ada-mac", "darwin"),
            device("2", "ada-win", "windows"),
        ];
        assert_eq!(
            choose_device(&devices, &words("ADA-WIN install printer")),
            DeviceChoice::Chosen {
                device: devices[1].clone(),
                reason: "install printer".into()
            }
        );
    }

    #[test]
    fn phones_never_count_and_a_lone_computer_is_chosen() {
        let devices = [
            device("1", "ada-phone", "ios"),
            device("2", "ada-win", "windows"),
        ];
        assert_eq!(
            choose_device(&devices, &words("ada-phone please")),
            DeviceChoice::Chosen {
                device: devices[1].clone(),
                reason: "ada-phone please".into()
            }
        );
        assert_eq!(
            choose_device(&[device("1", "p", "android")], &[]),
            DeviceChoice::NoneEligible
        );
    }

    #[test]
    fn several_computers_and_none_named_means_ask() {
        let devices = [device("1", "a", "darwin"), device("2", "b", "linux")];
        assert_eq!(
            choose_device(&devices, &words("printer")),
            DeviceChoice::Ask(devices.to_vec())
        );
    }
}
