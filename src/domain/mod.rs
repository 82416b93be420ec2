//! The domain: durations, policy, the request state machine, what JumpCloud
//! state to restore, and the notices and audit entries a transition produces.
//!
//! Pure types and functions only: nothing here performs I/O, so every rule in
//! this folder is unit-tested without a database, a chat service or JumpCloud.

pub mod audit;
pub mod command;
pub mod duration;
pub mod ids;
pub mod notice;
pub mod policy;
pub mod prior;
pub mod reference;
pub mod request;
pub mod stage;

pub use audit::{AuditAction, AuditEntry};
pub use command::Command;
pub use duration::GrantDuration;
pub use ids::{ChatUserId, Email, JcUserId, Platform, RequestId, SystemId};
pub use notice::{EndCause, Event, Notice, Presence, PrivateBody, Refusal};
pub use policy::{ApprovalReminder, Policy};
pub use prior::{
    AccessRequestRecord, AssociationOp, DirectBinding, ElevationRecord, PriorState, Restoration,
};
pub use reference::ConversationReference;
pub use request::{Device, Request, RequestState};
pub use stage::{
    Account, Decision, Extension, ExtensionAsked, Grant, IllegalMove, Known, Move, Picked, Stage,
};

/// A point in time. Milliseconds are the resolution the store keeps.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
