//! `grant_mode = "association"`: admin rights through the user→device
//! binding's `sudo` attribute, restored by the bot at the end.
//!
//! Invariant (DESIGN 2): the prior state is captured once, before
//! elevating, and restoration is computed from that record alone
//! ([`PriorState`]), so a retried grant never mistakes its own elevation for
//! a permanent admin. At the end the binding is read once more, only to see
//! whether it is still what the bot set: a binding somebody else changed
//! meanwhile is left as they made it.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use crate::domain::{AssociationOp, ElevationRecord, PriorState, Restoration, Timestamp};
use crate::engine::ports::{
    Directory, DirectoryError, DirectoryUser, Elevated, ElevationTarget, Elevator, Restored,
};

/// The association elevator, over any [`Directory`].
#[derive(Clone)]
pub struct AssociationElevator {
    directory: Arc<dyn Directory>,
}

impl AssociationElevator {
    /// An elevator that changes bindings through `directory`.
    pub fn new(directory: Arc<dyn Directory>) -> Self {
        Self { directory }
    }

    /// Elevates as `prior` says.
    async fn elevate_prior(
        &self,
        prior: &PriorState,
        target: &ElevationTarget,
    ) -> Result<Elevated, DirectoryError> {
        let operation = prior.elevation();
        if let Some(op) = operation {
            let (system, user) = (&target.system, &target.user);
            let mut result = self.directory.apply(system, user, op).await;
            if let (AssociationOp::Add { sudo }, Err(DirectoryError::Conflict)) = (op, &result) {
                // The binding exists although none did before: an earlier
                // attempt of ours added it and we never heard back.
                let again = AssociationOp::Update {
                    sudo,
                    without_password: false,
                };
                result = self.directory.apply(system, user, again).await;
            }
            result?;
        }
        Ok(Elevated {
            record: ElevationRecord::Association(prior.clone()),
            changed: operation.is_some(),
            detail: json!({ "operation": operation }),
        })
    }

    /// Restores what `prior` recorded.
    async fn restore_prior(
        &self,
        prior: &PriorState,
        target: &ElevationTarget,
    ) -> Result<Restored, DirectoryError> {
        let (system, user) = (&target.system, &target.user);
        let restoration = if prior.restoration().is_some() {
            // Read once, to restore only what is still the bot's own
            // elevation (DESIGN, flow step 8: IT's change during the grant
            // stands). The prior state is not re-read (invariant 2).
            let found = match self.directory.direct_binding(system, user).await {
                Ok(found) => found,
                // The device is gone: nothing is left to restore.
                Err(DirectoryError::NotFound) => prior.direct,
                Err(e) => return Err(e),
            };
            prior.restoration_given(found)
        } else {
            Restoration::Nothing
        };
        match restoration {
            Restoration::Apply(op) => match self.directory.apply(system, user, op).await {
                // Gone already counts as restored (DESIGN: 404 on revoke is success).
                Ok(()) | Err(DirectoryError::NotFound) => Ok(Restored::Restored {
                    detail: json!({ "operation": op }),
                }),
                Err(e) => Err(e),
            },
            Restoration::Nothing => Ok(Restored::Restored {
                detail: json!({ "operation": null }),
            }),
            Restoration::LeaveAlone { found } => Ok(Restored::LeftAlone { found }),
        }
    }
}

#[async_trait]
impl Elevator for AssociationElevator {
    async fn capture(
        &self,
        user: &DirectoryUser,
        target: &ElevationTarget,
        _until: Timestamp,
    ) -> Result<ElevationRecord, DirectoryError> {
        Ok(ElevationRecord::Association(
            self.directory.admin_state(user, &target.system).await?,
        ))
    }

    async fn elevate(
        &self,
        record: &ElevationRecord,
        target: &ElevationTarget,
    ) -> Result<Elevated, DirectoryError> {
        self.elevate_prior(association(record)?, target).await
    }

    async fn extend(
        &self,
        record: &ElevationRecord,
        _target: &ElevationTarget,
        _until: Timestamp,
    ) -> Result<ElevationRecord, DirectoryError> {
        // The binding has no end of its own: the bot's revocation job is
        // the only clock, and the engine moves it.
        Ok(record.clone())
    }

    async fn restore(
        &self,
        record: &ElevationRecord,
        target: &ElevationTarget,
    ) -> Result<Restored, DirectoryError> {
        self.restore_prior(association(record)?, target).await
    }
}

/// The prior state of an association record; a record another grant mode
/// made is not this elevator's to act on.
fn association(record: &ElevationRecord) -> Result<&PriorState, DirectoryError> {
    match record {
        ElevationRecord::Association(prior) => Ok(prior),
        ElevationRecord::AccessRequest { .. } => Err(DirectoryError::Permanent(
            "this elevation was made in grant_mode access_request".into(),
        )),
    }
}
