//! Where a chat platform reaches a person when the bot speaks first.
//!
//! Teams cannot message a person out of the blue: a bot needs the endpoint
//! that serves the person's region (`serviceUrl`) and, for a direct message,
//! the bot's 1:1 conversation with them. Both arrive in the activities the
//! person's client sends (a message, the bot being installed), so they are
//! kept per person, and the newest sighting wins.

use super::{ChatUserId, Timestamp};

/// How to reach one person, as last heard from their platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationReference {
    /// The person.
    pub user: ChatUserId,
    /// The platform endpoint that serves them (Teams: the `serviceUrl` of
    /// an activity whose token named it).
    pub service_url: String,
    /// The bot's 1:1 conversation with them, once known. A sighting
    /// without one keeps the one already known.
    pub conversation_id: Option<String>,
    /// Their directory tenant, once known; kept like `conversation_id`.
    pub tenant_id: Option<String>,
    /// When the platform last told us (an older sighting never replaces a
    /// newer one).
    pub seen_at: Timestamp,
}
