//! What a user's admin rights on a device were before the bot touched them,
//! and the JumpCloud association changes that elevate and restore.
//!
//! Invariant (DESIGN 2): the prior state is captured once, before elevating,
//! and restoration is computed from that record alone, so a retried grant can
//! never mistake its own elevation for a permanent admin. At revocation the
//! binding is read once more, only to see whether it is still what the bot
//! set: a binding somebody else changed meanwhile is left as they made it.

/// A direct user→device binding as JumpCloud reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DirectBinding {
    /// `attributes.sudo.enabled`.
    pub sudo: bool,
    /// `attributes.sudo.withoutPassword`.
    pub without_password: bool,
}

/// The user's admin state on one device, recorded before elevation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PriorState {
    /// The user's global `sudo` flag: admin on every device they are bound to.
    pub global_sudo: bool,
    /// The direct binding, if one existed.
    pub direct: Option<DirectBinding>,
    /// Admin through some other path (a user group's binding with sudo):
    /// JumpCloud's `compiledAttributes.sudo.enabled` for the device.
    pub compiled_sudo: bool,
}

/// What the elevator recorded about one elevation, kept in the request's
/// stage from before the first elevation call until the rights are back.
/// The engine stores it and hands it back to its [`Elevator`] port; it never
/// decides from what is inside (no engine decision knows the grant mode).
///
/// Serialised untagged: an association record is a [`PriorState`] as it is,
/// which is exactly what requests stored before grant modes existed hold,
/// so they still read back.
///
/// [`Elevator`]: crate::engine::ports::Elevator
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum ElevationRecord {
    /// `grant_mode = "access_request"`: JumpCloud's own temporary elevation.
    AccessRequest {
        /// The access request.
        access_request: AccessRequestRecord,
    },
    /// `grant_mode = "association"`: the prior binding, restored at the end.
    Association(PriorState),
}

/// A JumpCloud access request (temporary elevated device privileges).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccessRequestRecord {
    /// The admin state found before elevating: an admin already is not
    /// elevated (and then there is no access request).
    pub prior: PriorState,
    /// The access id JumpCloud answered, once it did.
    #[serde(default)]
    pub id: Option<String>,
    /// The expiry JumpCloud holds (it ends the rights itself then).
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub expiry: super::Timestamp,
}

impl From<PriorState> for ElevationRecord {
    fn from(prior: PriorState) -> Self {
        Self::Association(prior)
    }
}

impl ElevationRecord {
    /// The admin state recorded before elevating, in either mode.
    pub fn prior(&self) -> &PriorState {
        match self {
            Self::Association(prior) => prior,
            Self::AccessRequest { access_request } => &access_request.prior,
        }
    }
}

/// One change to the user→device association (`POST …/associations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AssociationOp {
    /// Create a direct binding with these sudo attributes.
    Add {
        /// `sudo.enabled`.
        sudo: bool,
    },
    /// Change the attributes of the existing direct binding.
    Update {
        /// `sudo.enabled`.
        sudo: bool,
        /// `sudo.withoutPassword`.
        without_password: bool,
    },
    /// Delete the direct binding.
    Remove,
}

/// What the bot's elevation leaves on the direct binding.
pub const ELEVATED: DirectBinding = DirectBinding {
    sudo: true,
    without_password: false,
};

/// What to do at revocation, given the direct binding JumpCloud shows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restoration {
    /// Nothing to do: nothing was changed, or it is already as recorded.
    Nothing,
    /// Apply this change to put back what was recorded.
    Apply(AssociationOp),
    /// The binding is neither what the bot set nor what was recorded:
    /// somebody changed it during the grant. Leave it as it is.
    LeaveAlone {
        /// What was found instead (`None`: no direct binding).
        found: Option<DirectBinding>,
    },
}

impl PriorState {
    /// Whether the user already had admin rights there, by any path.
    pub fn already_admin(&self) -> bool {
        self.global_sudo || self.compiled_sudo || self.direct.is_some_and(|d| d.sudo)
    }

    /// The change that makes the user admin, or `None` when they already are
    /// (then nothing is changed, and nothing will be restored).
    pub fn elevation(&self) -> Option<AssociationOp> {
        if self.already_admin() {
            return None;
        }
        Some(match self.direct {
            Some(_) => AssociationOp::Update {
                sudo: true,
                without_password: false,
            },
            None => AssociationOp::Add { sudo: true },
        })
    }

    /// The change that puts back exactly what was recorded: the binding's old
    /// attributes, or no binding at all. `None` when nothing was changed.
    pub fn restoration(&self) -> Option<AssociationOp> {
        if self.already_admin() {
            return None;
        }
        Some(match self.direct {
            Some(d) => AssociationOp::Update {
                sudo: d.sudo,
                without_password: d.without_password,
            },
            None => AssociationOp::Remove,
        })
    }

    /// The revocation decision for the binding found now: restore only what
    /// is still exactly the bot's elevation; count a binding that is already
    /// as recorded (an earlier attempt of ours got through) as restored.
    pub fn restoration_given(&self, found: Option<DirectBinding>) -> Restoration {
        let Some(op) = self.restoration() else {
            return Restoration::Nothing;
        };
        if found == Some(ELEVATED) {
            Restoration::Apply(op)
        } else if found == self.direct {
            Restoration::Nothing
        } else {
            Restoration::LeaveAlone { found }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prior(global: bool, direct: Option<bool>, compiled: bool) -> PriorState {
        PriorState {
            global_sudo: global,
            direct: direct.map(|sudo| DirectBinding {
                sudo,
                without_password: false,
            }),
            compiled_sudo: compiled,
        }
    }

    #[test]
    fn a_plain_direct_binding_is_updated_up_and_back_down() {
        let p = prior(false, Some(false), false);
        assert_eq!(
            p.elevation(),
            Some(AssociationOp::Update {
                sudo: true,
                without_password: false
            })
        );
        assert_eq!(
            p.restoration(),
            Some(AssociationOp::Update {
                sudo: false,
                without_password: false
            })
        );
    }

    #[test]
    fn a_binding_the_bot_adds_is_removed_afterwards() {
        let p = prior(false, None, false);
        assert_eq!(p.elevation(), Some(AssociationOp::Add { sudo: true }));
        assert_eq!(p.restoration(), Some(AssociationOp::Remove));
    }

    #[test]
    fn only_the_bots_own_elevation_is_restored() {
        let added = prior(false, None, false);
        assert_eq!(
            added.restoration_given(Some(ELEVATED)),
            Restoration::Apply(AssociationOp::Remove)
        );
        assert_eq!(added.restoration_given(None), Restoration::Nothing);
        let password_free = DirectBinding {
            sudo: true,
            without_password: true,
        };
        assert_eq!(
            added.restoration_given(Some(password_free)),
            Restoration::LeaveAlone {
                found: Some(password_free)
            }
        );
        let plain = prior(false, Some(false), false);
        assert_eq!(
            plain.restoration_given(None),
            Restoration::LeaveAlone { found: None },
            "a binding IT removed is not put back"
        );
        assert_eq!(plain.restoration_given(plain.direct), Restoration::Nothing);
        assert_eq!(
            prior(true, None, false).restoration_given(Some(ELEVATED)),
            Restoration::Nothing,
            "a permanent admin is never touched"
        );
    }

    #[test]
    fn permanent_admins_are_never_touched() {
        for p in [
            prior(true, None, false),
            prior(false, Some(true), true),
            prior(false, None, true),
            prior(true, Some(false), false),
        ] {
            assert!(p.already_admin());
            assert_eq!(p.elevation(), None);
            assert_eq!(p.restoration(), None);
        }
    }

    #[test]
    fn a_grant_stored_before_grant_modes_reads_as_an_association_record() {
        // The shape requests were stored in before the elevator port: the
        // prior state under `prior`.
        let old = serde_json::json!({
            "prior": {"global_sudo": false, "direct": {"sudo": false, "without_password": false}, "compiled_sudo": true},
            "expires_at": 1_000,
        });
        let grant: crate::domain::Grant = serde_json::from_value(old).unwrap();
        assert_eq!(
            grant.record,
            ElevationRecord::Association(prior(false, Some(false), true))
        );
        let written = serde_json::to_value(&grant).unwrap();
        assert_eq!(
            written["record"]["compiled_sudo"], true,
            "an association record is the prior state as it was"
        );
        assert_eq!(
            serde_json::from_value::<crate::domain::Grant>(written).unwrap(),
            grant
        );
    }

    #[test]
    fn an_access_request_record_reads_back_as_one() {
        let record = ElevationRecord::AccessRequest {
            access_request: AccessRequestRecord {
                prior: prior(false, None, false),
                id: Some("ar-1".into()),
                expiry: chrono::DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
            },
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["access_request"]["id"], "ar-1");
        assert_eq!(
            serde_json::from_value::<ElevationRecord>(json).unwrap(),
            record
        );
    }
}
