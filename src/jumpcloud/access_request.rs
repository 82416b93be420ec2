//! `grant_mode = "access_request"`: JumpCloud's own temporary elevation
//! ("Temporary Elevated Device Privileges", `/api/v2/accessrequests`).
//! JumpCloud holds the expiry and ends the rights itself, "return\[ing\] to
//! the previous setting", so a grant ends on time even if tempadmin never
//! comes back. The bot's own revocation job stays: whichever clock fires
//! first ends the grant, and the restore reports which one it was.
//!
//! Not confirmed by JumpCloud's documentation, and how this copes:
//! - `accessState` values other than `granted`: only `expired` and
//!   `revoked` (and the few synonyms in [`ENDED_STATES`]) count as ended;
//!   any other value is revoked again, so an unknown state never leaves
//!   rights in place;
//! - the error codes: a 404 counts as gone; any other refusal of a revoke
//!   is checked against a fresh `GET` before it counts as a failure;
//! - whether a direct user↔device binding is required: not assumed either way.
//!
//! A known gap: there is no list endpoint, so an access request that
//! JumpCloud created while its answer was lost (a timeout, a crash right
//! after the call) is not known to the bot, and a retry creates another.
//! Both carry the same expiry, the grant's end, so JumpCloud's clock ends
//! the unknown one on time; only an early end (End now) misses it.
//!
//! The record keeps the prior state too, read once before elevating as in
//! association mode: a person who is admin already is not elevated, and no
//! access request is made.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::association::AssociationElevator;
use super::{segment, JumpCloudClient};
use crate::domain::{AccessRequestRecord, ElevationRecord, Timestamp};
use crate::engine::ports::{
    Clock, Directory, DirectoryError, DirectoryUser, Elevated, ElevationTarget, Elevator, Restored,
};

/// The `operationId` of temporary elevated device privileges: "a static
/// value specific to temporary elevated device privileges" (JumpCloud).
pub const TEMPORARY_ELEVATION_OPERATION: &str = "ff487bda-e18f-42ed-9d6c-5c7cafd6adf9";

/// `accessState` values that mean the access has ended. Only `granted` is
/// documented; these are assumptions (see the module doc).
pub const ENDED_STATES: &[&str] = &["expired", "revoked", "ended", "inactive"];

/// `jumpcloud.grant_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GrantMode {
    /// The user→device binding's `sudo`, restored by the bot.
    #[default]
    Association,
    /// JumpCloud's access requests, with JumpCloud's own expiry.
    AccessRequest,
}

/// The elevator over JumpCloud in either grant mode. New grants use the
/// configured mode; a record is always extended and restored by the mode
/// that made it, so grants made before a change of `grant_mode` still end.
pub struct JumpCloudElevator {
    client: JumpCloudClient,
    association: AssociationElevator,
    mode: GrantMode,
    clock: Arc<dyn Clock>,
}

/// `GET /api/v2/accessrequests/{id}`, as far as it is read.
#[derive(Debug, Deserialize)]
struct AccessRequest {
    #[serde(rename = "accessState", default)]
    access_state: String,
    #[serde(default)]
    expiry: Option<String>,
}

/// What JumpCloud says of an access now.
enum Found {
    /// Still granted (or in a state not known to be ended).
    Live,
    /// Ended, in this state, with the expiry JumpCloud held.
    Ended(String, Option<Timestamp>),
    /// JumpCloud does not know the id.
    Gone,
}

impl JumpCloudElevator {
    /// An elevator for `mode` over `client`; `clock` tells whether an
    /// ended access ended at its expiry.
    pub fn new(client: JumpCloudClient, mode: GrantMode, clock: Arc<dyn Clock>) -> Self {
        let directory: Arc<dyn Directory> = Arc::new(client.clone());
        Self {
            client,
            association: AssociationElevator::new(directory),
            mode,
            clock,
        }
    }

    fn path(id: &str) -> String {
        format!("/api/v2/accessrequests/{}", segment(id))
    }

    async fn create(
        &self,
        target: &ElevationTarget,
        expiry: Timestamp,
    ) -> Result<String, DirectoryError> {
        #[derive(Deserialize)]
        struct Created {
            id: String,
        }
        let body = json!({
            "requestorId": target.user.as_str(),
            "resourceId": target.system.as_str(),
            "resourceType": "device",
            "operationId": TEMPORARY_ELEVATION_OPERATION,
            "additionalAttributes": { "sudo": { "enabled": true, "withoutPassword": false } },
            // The request id only: the reason is the requester's text.
            "remarks": target.request.as_str(),
            "expiry": rfc3339(expiry),
        });
        tracing::info!(system_id = %target.system, jumpcloud_user = %target.user, %expiry, "creating a JumpCloud access request");
        let builder = self
            .client
            .call(Method::POST, "/api/v2/accessrequests")
            .json(&body);
        let (created, _) = self.client.get_json::<Created>(builder).await?;
        if created.id.is_empty() || segment(&created.id) != created.id {
            return Err(DirectoryError::Permanent(
                "JumpCloud answered an access request without a usable id".into(),
            ));
        }
        Ok(created.id)
    }

    async fn found(&self, id: &str) -> Result<Found, DirectoryError> {
        let builder = self.client.call(Method::GET, &Self::path(id));
        match self.client.get_json::<AccessRequest>(builder).await {
            Ok((access, _)) => {
                let state = access.access_state.to_ascii_lowercase();
                if ENDED_STATES.contains(&state.as_str()) {
                    let expiry = access
                        .expiry
                        .and_then(|e| chrono::DateTime::parse_from_rfc3339(&e).ok())
                        .map(|e| e.to_utc());
                    Ok(Found::Ended(state, expiry))
                } else {
                    Ok(Found::Live)
                }
            }
            Err(DirectoryError::NotFound) => Ok(Found::Gone),
            Err(e) => Err(e),
        }
    }

    /// What an access that ended without the bot became: JumpCloud's own
    /// clock when it ended at (or after) its expiry, otherwise somebody
    /// else (an administrator in the console).
    fn ended(&self, id: &str, state: String, expiry: Option<Timestamp>) -> Restored {
        let at_expiry = state == "expired" || expiry.is_some_and(|e| e <= self.clock.now());
        let detail = json!({ "access_request": id, "access_state": state });
        if at_expiry {
            Restored::EndedByDirectory { detail }
        } else {
            Restored::Restored { detail }
        }
    }

    async fn revoke(&self, id: &str) -> Result<Restored, DirectoryError> {
        match self.found(id).await? {
            Found::Gone => {
                return Ok(Restored::Restored {
                    detail: json!({ "access_request": id, "access_state": "not_found" }),
                })
            }
            Found::Ended(state, expiry) => return Ok(self.ended(id, state, expiry)),
            Found::Live => {}
        }
        tracing::info!(access_request = id, "revoking the JumpCloud access request");
        let builder = self
            .client
            .call(Method::POST, &format!("{}/revoke", Self::path(id)))
            .json(&json!({}));
        match self.client.send(builder).await {
            Ok(_) | Err(DirectoryError::NotFound) => Ok(Restored::Restored {
                detail: json!({ "access_request": id, "revoked": true }),
            }),
            Err(e) if e.is_retryable() || matches!(e, DirectoryError::Unauthorized(_)) => Err(e),
            Err(e) => {
                // Refused: perhaps JumpCloud's clock ended it between the
                // look and the revoke. Only a fresh look can tell.
                match self.found(id).await? {
                    Found::Gone => Ok(Restored::Restored {
                        detail: json!({ "access_request": id, "access_state": "not_found" }),
                    }),
                    Found::Ended(state, expiry) => Ok(self.ended(id, state, expiry)),
                    Found::Live => Err(e),
                }
            }
        }
    }
}

/// RFC 3339 in UTC with milliseconds and `Z`, as JumpCloud's examples.
pub fn rfc3339(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[async_trait]
impl Elevator for JumpCloudElevator {
    async fn capture(
        &self,
        user: &DirectoryUser,
        target: &ElevationTarget,
        until: Timestamp,
    ) -> Result<ElevationRecord, DirectoryError> {
        let record = self.association.capture(user, target, until).await?;
        Ok(match (self.mode, record) {
            (GrantMode::AccessRequest, ElevationRecord::Association(prior)) => {
                ElevationRecord::AccessRequest {
                    access_request: AccessRequestRecord {
                        prior,
                        id: None,
                        expiry: until,
                    },
                }
            }
            (_, record) => record,
        })
    }

    async fn elevate(
        &self,
        record: &ElevationRecord,
        target: &ElevationTarget,
    ) -> Result<Elevated, DirectoryError> {
        let ElevationRecord::AccessRequest { access_request } = record else {
            return self.association.elevate(record, target).await;
        };
        if access_request.prior.already_admin() {
            return Ok(Elevated {
                record: record.clone(),
                changed: false,
                detail: json!({ "access_request": null }),
            });
        }
        let id = match &access_request.id {
            Some(id) => id.clone(),
            None => self.create(target, access_request.expiry).await?,
        };
        Ok(Elevated {
            detail: json!({ "access_request": id, "expiry": rfc3339(access_request.expiry) }),
            record: ElevationRecord::AccessRequest {
                access_request: AccessRequestRecord {
                    id: Some(id),
                    ..access_request.clone()
                },
            },
            changed: true,
        })
    }

    async fn extend(
        &self,
        record: &ElevationRecord,
        target: &ElevationTarget,
        until: Timestamp,
    ) -> Result<ElevationRecord, DirectoryError> {
        let ElevationRecord::AccessRequest { access_request } = record else {
            return self.association.extend(record, target, until).await;
        };
        if let Some(id) = &access_request.id {
            tracing::info!(access_request = %id, %until, "moving the JumpCloud access request's expiry");
            let body = json!({ "expiry": rfc3339(until), "remarks": target.request.as_str() });
            let builder = self.client.call(Method::PUT, &Self::path(id)).json(&body);
            self.client.send(builder).await?;
        }
        Ok(ElevationRecord::AccessRequest {
            access_request: AccessRequestRecord {
                expiry: until,
                ..access_request.clone()
            },
        })
    }

    async fn restore(
        &self,
        record: &ElevationRecord,
        target: &ElevationTarget,
    ) -> Result<Restored, DirectoryError> {
        let ElevationRecord::AccessRequest { access_request } = record else {
            return self.association.restore(record, target).await;
        };
        match &access_request.id {
            Some(id) => self.revoke(id).await,
            None => Ok(Restored::Restored {
                detail: json!({ "access_request": null }),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::SecretString;

    use super::*;
    use crate::domain::{Email, JcUserId, RequestId, SystemId};
    use crate::engine::clock::ManualClock;
    use crate::jumpcloud::{JumpCloudCredentials, JumpCloudSettings};
    use crate::sim::jumpcloud::{FakeJumpCloud, SimSystem, SimUser};

    struct Setup {
        fake: FakeJumpCloud,
        clock: Arc<ManualClock>,
        elevator: JumpCloudElevator,
        user: DirectoryUser,
        target: ElevationTarget,
    }

    async fn setup(mode: GrantMode) -> Setup {
        let fake = FakeJumpCloud::start("jc-key").await;
        fake.add_user(SimUser {
            id: "u1".into(),
            email: "ada@example.com".into(),
            username: "ada".into(),
            sudo: false,
            suspended: false,
        });
        fake.add_system(SimSystem {
            id: "s1".into(),
            hostname: "ada-mac".into(),
            display_name: "ada-mac".into(),
            os_family: "darwin".into(),
            active: true,
        });
        fake.bind_direct("u1", "s1", false);
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        fake.use_clock(clock.clone());
        let client = JumpCloudClient::new(JumpCloudSettings {
            api_url: fake.url(),
            credentials: JumpCloudCredentials::ApiKey(SecretString::from("jc-key")),
            org_id: None,
            timeout: Duration::from_secs(5),
            max_requests_per_second: None,
        })
        .unwrap();
        let elevator = JumpCloudElevator::new(client, mode, clock.clone());
        let user = DirectoryUser {
            id: JcUserId::new("u1"),
            email: Email::parse("ada@example.com").unwrap(),
            global_sudo: false,
            suspended: false,
        };
        let target = ElevationTarget {
            user: JcUserId::new("u1"),
            system: SystemId::new("s1"),
            request: RequestId::from_stored("ta-req1req1a".into()),
        };
        Setup {
            fake,
            clock,
            elevator,
            user,
            target,
        }
    }

    fn millis(t: Timestamp) -> Timestamp {
        chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap()
    }

    /// Captured and elevated as the engine does: an access request whose
    /// expiry is the grant's end.
    async fn elevated(s: &Setup, until: Timestamp) -> ElevationRecord {
        let record = s.elevator.capture(&s.user, &s.target, until).await.unwrap();
        s.elevator.elevate(&record, &s.target).await.unwrap().record
    }

    #[tokio::test]
    async fn an_access_request_carries_the_grants_end_and_the_request_id_only() {
        let s = setup(GrantMode::AccessRequest).await;
        let until = s.clock.now() + chrono::TimeDelta::minutes(20);
        let record = elevated(&s, until).await;
        let [access] = s.fake.access_requests().try_into().unwrap();
        assert_eq!(
            access.expiry,
            millis(until),
            "JumpCloud's clock ends it at the grant's end"
        );
        assert_eq!(
            (access.requestor.as_str(), access.resource.as_str()),
            ("u1", "s1")
        );
        assert_eq!(access.remarks, "ta-req1req1a");
        assert_eq!(
            access.attributes,
            json!({ "sudo": { "enabled": true, "withoutPassword": false } })
        );
        assert!(s.fake.is_admin("u1", "s1"));
        assert_eq!(
            s.fake.direct_attributes("u1", "s1"),
            Some((false, false)),
            "the binding itself is not touched"
        );
        let ElevationRecord::AccessRequest { access_request } = &record else {
            panic!("{record:?}");
        };
        assert_eq!(access_request.id.as_deref(), Some(access.id.as_str()));
    }

    #[tokio::test]
    async fn extend_moves_the_expiry_jumpcloud_holds() {
        let s = setup(GrantMode::AccessRequest).await;
        let until = s.clock.now() + chrono::TimeDelta::minutes(20);
        let record = elevated(&s, until).await;
        let later = until + chrono::TimeDelta::minutes(10);
        let record = s.elevator.extend(&record, &s.target, later).await.unwrap();
        assert_eq!(s.fake.access_requests()[0].expiry, millis(later));
        // Past the old end, JumpCloud keeps the rights; past the new one, not.
        s.clock.advance(Duration::from_secs(25 * 60));
        assert!(s.fake.is_admin("u1", "s1"));
        s.clock.advance(Duration::from_secs(5 * 60));
        assert!(!s.fake.is_admin("u1", "s1"));
        assert!(matches!(
            s.elevator.restore(&record, &s.target).await.unwrap(),
            Restored::EndedByDirectory { .. }
        ));
    }

    #[tokio::test]
    async fn restore_revokes_a_live_access_and_reports_one_jumpcloud_ended() {
        let s = setup(GrantMode::AccessRequest).await;
        let until = s.clock.now() + chrono::TimeDelta::minutes(20);
        let record = elevated(&s, until).await;
        let revoked = s.elevator.restore(&record, &s.target).await.unwrap();
        assert!(
            matches!(&revoked, Restored::Restored { detail } if detail["revoked"] == true),
            "{revoked:?}"
        );
        assert_eq!(s.fake.access_requests()[0].state, "revoked");
        assert!(!s.fake.is_admin("u1", "s1"));
        // Again (a retried job): already ended, and not at its expiry.
        assert!(matches!(
            s.elevator.restore(&record, &s.target).await.unwrap(),
            Restored::Restored { .. }
        ));

        let second = elevated(&s, until).await;
        s.clock.advance(Duration::from_secs(20 * 60));
        let writes_before = s.fake.calls().len();
        assert!(matches!(
            s.elevator.restore(&second, &s.target).await.unwrap(),
            Restored::EndedByDirectory { .. }
        ));
        let calls = s.fake.calls();
        assert!(
            calls[writes_before..].iter().all(|c| c.method == "GET"),
            "an access JumpCloud ended is only looked at"
        );
    }

    #[tokio::test]
    async fn an_id_jumpcloud_does_not_know_counts_as_ended() {
        let s = setup(GrantMode::AccessRequest).await;
        let until = s.clock.now() + chrono::TimeDelta::minutes(20);
        let record = ElevationRecord::AccessRequest {
            access_request: AccessRequestRecord {
                prior: s
                    .elevator
                    .capture(&s.user, &s.target, until)
                    .await
                    .unwrap()
                    .prior()
                    .clone(),
                id: Some("000000000000000000000bad".into()),
                expiry: until,
            },
        };
        assert!(matches!(
            s.elevator.restore(&record, &s.target).await.unwrap(),
            Restored::Restored { .. }
        ));
    }

    #[tokio::test]
    async fn a_refusal_elevates_nothing_and_says_why() {
        let s = setup(GrantMode::AccessRequest).await;
        // An expiry JumpCloud refuses: already past.
        let past = s.clock.now() - chrono::TimeDelta::minutes(1);
        let record = s.elevator.capture(&s.user, &s.target, past).await.unwrap();
        let err = s.elevator.elevate(&record, &s.target).await.unwrap_err();
        assert!(
            matches!(&err, DirectoryError::Permanent(m) if m.contains("expiry")),
            "{err:?}"
        );
        assert!(s.fake.access_requests().is_empty());
        assert!(!s.fake.is_admin("u1", "s1"));
    }

    #[tokio::test]
    async fn association_mode_records_and_extends_without_calling_jumpcloud() {
        let s = setup(GrantMode::Association).await;
        let until = s.clock.now() + chrono::TimeDelta::minutes(20);
        let record = elevated(&s, until).await;
        assert!(matches!(record, ElevationRecord::Association(_)));
        assert_eq!(s.fake.direct_attributes("u1", "s1"), Some((true, false)));
        let calls = s.fake.calls().len();
        let extended = s
            .elevator
            .extend(&record, &s.target, until + chrono::TimeDelta::minutes(5))
            .await
            .unwrap();
        assert_eq!(extended, record);
        assert_eq!(
            s.fake.calls().len(),
            calls,
            "the bot's own job is the clock"
        );
        assert!(s.fake.access_requests().is_empty());
    }
}
