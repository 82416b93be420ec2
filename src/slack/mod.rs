//! The Slack adapter: verifies and parses what Slack sends us, renders
//! notices as Block Kit, and implements the `Chat` port over Slack's Web API
//! with slack-morphism. It translates; the engine decides.

pub mod client;
pub mod payload;
pub mod render;
pub mod signature;

/// Button and action ids (stable interface, DESIGN "Interfaces").
pub mod actions {
    /// Approve (value: the request id).
    pub const APPROVE: &str = "tempadmin_approve";
    /// Deny (value: the request id).
    pub const DENY: &str = "tempadmin_deny";
    /// End now (value: the request id).
    pub const REVOKE: &str = "tempadmin_revoke";
    /// Pick a device (value: the JumpCloud system id; block id `pick:REQUEST_ID`).
    pub const PICK_DEVICE: &str = "tempadmin_pick_device";
}
