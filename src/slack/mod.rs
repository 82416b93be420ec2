//! The Slack adapter: verifies and parses what Slack sends us (signed HTTP
//! requests, or Socket Mode envelopes over the connection `socket_mode`
//! keeps open), renders notices as Block Kit, and implements the `Chat` port
//! over Slack's Web API with slack-morphism. It translates; the engine
//! decides.

pub mod client;
pub mod events;
pub mod origin;
pub mod payload;
pub mod render;
pub mod response_url;
pub mod signature;
pub mod socket_mode;

/// Button and action ids (stable interface, DESIGN "Interfaces").
pub mod actions {
    /// Approve (value: the request id).
    pub const APPROVE: &str = "tempadmin_approve";
    /// Deny (value: the request id).
    pub const DENY: &str = "tempadmin_deny";
    /// End now (value: the request id).
    pub const REVOKE: &str = "tempadmin_revoke";
    /// Extend, on the requester's grant message (value: the request id).
    pub const EXTEND: &str = "tempadmin_extend";
    /// Pick a device: the prefix of every picker action id. Buttons are
    /// `tempadmin_pick_device_1`, `_2`… (Slack wants action ids unique within
    /// a block) with the JumpCloud system id as value; select menus are
    /// `tempadmin_pick_device` (then `_2`…) with the system id as each
    /// option's value. The block id is `pick:REQUEST_ID`.
    pub const PICK_DEVICE: &str = "tempadmin_pick_device";
}
