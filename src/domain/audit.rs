//! Audit entries: one per transition, appended and never changed (DESIGN 7).

use super::{RequestId, RequestState, Timestamp};

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// When.
    pub at: Timestamp,
    /// Who caused it: a chat user id, or `tempadmin` for the bot's own jobs.
    pub actor: String,
    /// What happened, as a short verb phrase (`approved`, `elevated`, …).
    pub action: String,
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
