//! The fake's access requests ("Temporary Elevated Device Privileges",
//! `/api/v2/accessrequests`), with JumpCloud's own expiry clock: while an
//! access is `granted` the user is admin on the device; at its expiry, or on
//! revoke, the rights "automatically expire and return to the previous
//! setting" (JumpCloud). The fake models that as an overlay on the user's
//! bindings, which it never changes, so the previous setting is what stays.
//!
//! The state is computed from the fake's clock on every look, so moving a
//! manual clock past an expiry ends the access with no call from anybody.
//!
//! `accessState` is `granted` while it lasts (documented), then `expired`
//! or `revoked`: those two are the fake's choice, not confirmed by
//! JumpCloud's documentation. Refusals (JumpCloud documents none) are 400
//! for a bad body, 404 for an unknown id, user or device.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error;
use crate::domain::Timestamp;

/// The `operationId` of temporary elevated device privileges.
const OPERATION: &str = "ff487bda-e18f-42ed-9d6c-5c7cafd6adf9";

/// One access request, as a test reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimAccess {
    /// The id the fake answered.
    pub id: String,
    /// `requestorId`.
    pub requestor: String,
    /// `resourceId`.
    pub resource: String,
    /// The expiry the fake holds now.
    pub expiry: Timestamp,
    /// `remarks`.
    pub remarks: String,
    /// `accessState` now.
    pub state: &'static str,
    /// The `additionalAttributes` sent.
    pub attributes: Value,
}

#[derive(Debug)]
struct Access {
    id: String,
    requestor: String,
    resource: String,
    expiry: Timestamp,
    remarks: String,
    attributes: Value,
    revoked: bool,
}

impl Access {
    fn state(&self, now: Timestamp) -> &'static str {
        if self.revoked {
            "revoked"
        } else if now >= self.expiry {
            "expired"
        } else {
            "granted"
        }
    }

    fn json(&self, now: Timestamp) -> Value {
        json!({
            "id": self.id,
            "requestorId": self.requestor,
            "resourceId": self.resource,
            "resourceType": "device",
            "operationId": OPERATION,
            "remarks": self.remarks,
            "expiry": rfc3339(self.expiry),
            "additionalAttributes": self.attributes,
            "accessState": self.state(now),
        })
    }

    fn sim(&self, now: Timestamp) -> SimAccess {
        SimAccess {
            id: self.id.clone(),
            requestor: self.requestor.clone(),
            resource: self.resource.clone(),
            expiry: self.expiry,
            remarks: self.remarks.clone(),
            state: self.state(now),
            attributes: self.attributes.clone(),
        }
    }
}

/// Every access request the fake was asked for.
#[derive(Debug, Default)]
pub(super) struct AccessBook {
    entries: Vec<Access>,
}

fn rfc3339(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A refusal: its status and message (made a JSON error body at the end).
pub(super) type Refused = (StatusCode, String);

fn bad(message: &str) -> Refused {
    (StatusCode::BAD_REQUEST, message.to_owned())
}

fn answer(refused: Refused) -> Response {
    error(refused.0, &refused.1)
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Access request not found")
}

/// `expiry`: required, RFC 3339, in the future.
fn expiry(body: &serde_json::Map<String, Value>, now: Timestamp) -> Result<Timestamp, Refused> {
    let Some(text) = body.get("expiry").and_then(Value::as_str) else {
        return Err(bad("expiry is required (RFC 3339)"));
    };
    let expiry = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|_| bad("expiry must be an RFC 3339 date-time"))?
        .to_utc();
    if expiry <= now {
        return Err(bad("expiry must be in the future"));
    }
    Ok(expiry)
}

fn string<'a>(body: &'a serde_json::Map<String, Value>, name: &str) -> Result<&'a str, Refused> {
    match body.get(name).and_then(Value::as_str) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(bad(&format!("{name} is required"))),
    }
}

impl AccessBook {
    /// `POST /api/v2/accessrequests`. `known(user, system)` says whether
    /// both exist and the user is bound to the device.
    pub(super) fn create(
        &mut self,
        body: Option<&Value>,
        now: Timestamp,
        known: impl Fn(&str, &str) -> Result<(), Refused>,
    ) -> Response {
        let Some(Value::Object(body)) = body else {
            return answer(bad("the body must be a JSON object"));
        };
        let checked = (|| {
            let requestor = string(body, "requestorId")?;
            let resource = string(body, "resourceId")?;
            if string(body, "resourceType")? != "device" {
                return Err(bad("resourceType must be device"));
            }
            if string(body, "operationId")? != OPERATION {
                return Err(bad("unknown operationId"));
            }
            let attributes = body
                .get("additionalAttributes")
                .filter(|a| a["sudo"]["enabled"].is_boolean())
                .filter(|a| {
                    a["sudo"]
                        .get("withoutPassword")
                        .is_none_or(Value::is_boolean)
                })
                .ok_or_else(|| bad("additionalAttributes.sudo.enabled (a boolean) is required"))?;
            let remarks = match body.get("remarks") {
                None | Some(Value::Null) => "",
                Some(Value::String(remarks)) => remarks,
                Some(_) => return Err(bad("remarks must be a string")),
            };
            let expiry = expiry(body, now)?;
            known(requestor, resource)?;
            Ok((requestor, resource, attributes, remarks, expiry))
        })();
        let (requestor, resource, attributes, remarks, expiry) = match checked {
            Ok(checked) => checked,
            Err(refused) => return answer(refused),
        };
        let id = format!("{:024x}", 0xacc0_0000_u64 + self.entries.len() as u64 + 1);
        self.entries.push(Access {
            id: id.clone(),
            requestor: requestor.to_owned(),
            resource: resource.to_owned(),
            expiry,
            remarks: remarks.to_owned(),
            attributes: attributes.clone(),
            revoked: false,
        });
        Json(json!({ "id": id })).into_response()
    }

    /// `GET /api/v2/accessrequests/{id}`.
    pub(super) fn get(&self, id: &str, now: Timestamp) -> Response {
        match self.entries.iter().find(|a| a.id == id) {
            Some(access) => Json(access.json(now)).into_response(),
            None => not_found(),
        }
    }

    /// `PUT /api/v2/accessrequests/{id}`: a new expiry, while granted.
    pub(super) fn update(&mut self, id: &str, body: Option<&Value>, now: Timestamp) -> Response {
        let Some(Value::Object(body)) = body else {
            return answer(bad("the body must be a JSON object"));
        };
        let Some(access) = self.entries.iter_mut().find(|a| a.id == id) else {
            return not_found();
        };
        let expiry = match expiry(body, now) {
            Ok(expiry) => expiry,
            Err(refused) => return answer(refused),
        };
        if access.state(now) != "granted" {
            return answer(bad("the access request is no longer granted"));
        }
        if let Some(Value::String(remarks)) = body.get("remarks") {
            access.remarks = remarks.clone();
        }
        access.expiry = expiry;
        Json(json!({})).into_response()
    }

    /// `POST /api/v2/accessrequests/{id}/revoke`: ends it now, while granted.
    pub(super) fn revoke(&mut self, id: &str, now: Timestamp) -> Response {
        let Some(access) = self.entries.iter_mut().find(|a| a.id == id) else {
            return not_found();
        };
        if access.state(now) != "granted" {
            return answer(bad("the access request is no longer granted"));
        }
        access.revoked = true;
        Json(json!({})).into_response()
    }

    /// Whether an access makes `user` admin on `system` now.
    pub(super) fn granted(&self, user: &str, system: &str, now: Timestamp) -> bool {
        self.entries
            .iter()
            .any(|a| a.requestor == user && a.resource == system && a.state(now) == "granted")
    }

    /// Every access request, oldest first.
    pub(super) fn all(&self, now: Timestamp) -> Vec<SimAccess> {
        self.entries.iter().map(|a| a.sim(now)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::{FakeJumpCloud, SimSystem, SimUser};
    use super::*;
    use crate::engine::clock::ManualClock;
    use crate::engine::ports::Clock;

    async fn fake() -> (FakeJumpCloud, Arc<ManualClock>) {
        let fake = FakeJumpCloud::start("k").await;
        fake.add_user(SimUser {
            id: "u1".into(),
            email: "ada@example.com".into(),
            username: "ada".into(),
            sudo: false,
            suspended: false,
        });
        fake.add_system(SimSystem {
            id: "s1".into(),
            hostname: "h".into(),
            display_name: "h".into(),
            os_family: "linux".into(),
            active: true,
        });
        fake.add_system(SimSystem {
            id: "s2".into(),
            hostname: "h2".into(),
            display_name: "h2".into(),
            os_family: "linux".into(),
            active: true,
        });
        fake.bind_via_group("u1", "s1", "g1");
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        fake.use_clock(clock.clone());
        (fake, clock)
    }

    fn body(clock: &ManualClock) -> Value {
        json!({
            "requestorId": "u1", "resourceId": "s1", "resourceType": "device",
            "operationId": OPERATION, "remarks": "ta-x",
            "additionalAttributes": { "sudo": { "enabled": true, "withoutPassword": false } },
            "expiry": rfc3339(clock.now() + chrono::TimeDelta::minutes(10)),
        })
    }

    async fn send(
        fake: &FakeJumpCloud,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> (u16, Value) {
        let mut builder = reqwest::Client::new()
            .request(method.parse().unwrap(), format!("{}{path}", fake.url()))
            .header("x-api-key", "k")
            .header("content-type", "application/json");
        if let Some(body) = body {
            builder = builder.body(body);
        }
        let response = builder.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn an_access_is_granted_until_its_expiry_then_the_previous_setting_is_back() {
        let (fake, clock) = fake().await;
        let (status, created) = send(
            &fake,
            "POST",
            "/api/v2/accessrequests",
            Some(body(&clock).to_string()),
        )
        .await;
        assert_eq!(status, 200, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        assert!(fake.is_admin("u1", "s1"));
        let (_, got) = send(&fake, "GET", &format!("/api/v2/accessrequests/{id}"), None).await;
        assert_eq!(got["accessState"], "granted");
        clock.advance(Duration::from_secs(600));
        assert!(!fake.is_admin("u1", "s1"), "ended by the fake's own clock");
        let (_, got) = send(&fake, "GET", &format!("/api/v2/accessrequests/{id}"), None).await;
        assert_eq!(got["accessState"], "expired");
        let (status, _) = send(
            &fake,
            "POST",
            &format!("/api/v2/accessrequests/{id}/revoke"),
            None,
        )
        .await;
        assert_eq!(status, 400, "an ended access is not revoked again");
    }

    #[tokio::test]
    async fn revoke_and_update_act_on_a_granted_access_only() {
        let (fake, clock) = fake().await;
        let (_, created) = send(
            &fake,
            "POST",
            "/api/v2/accessrequests",
            Some(body(&clock).to_string()),
        )
        .await;
        let path = format!("/api/v2/accessrequests/{}", created["id"].as_str().unwrap());
        let later = rfc3339(clock.now() + chrono::TimeDelta::minutes(30));
        let (status, _) = send(
            &fake,
            "PUT",
            &path,
            Some(json!({ "expiry": later }).to_string()),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(rfc3339(fake.access_requests()[0].expiry), later);
        let past = rfc3339(clock.now() - chrono::TimeDelta::minutes(1));
        let (status, _) = send(
            &fake,
            "PUT",
            &path,
            Some(json!({ "expiry": past }).to_string()),
        )
        .await;
        assert_eq!(status, 400);
        let (status, _) = send(&fake, "POST", &format!("{path}/revoke"), None).await;
        assert_eq!(status, 200);
        assert!(!fake.is_admin("u1", "s1"));
        assert_eq!(fake.access_requests()[0].state, "revoked");
        for (method, path) in [
            ("GET", "/api/v2/accessrequests/nope"),
            ("PUT", "/api/v2/accessrequests/nope"),
            ("POST", "/api/v2/accessrequests/nope/revoke"),
        ] {
            let (status, answer) = send(
                &fake,
                method,
                path,
                Some(json!({ "expiry": later }).to_string()),
            )
            .await;
            assert_eq!(status, 404, "{method} {path}");
            assert_eq!(answer["code"], 404, "a JSON error body");
        }
    }

    #[tokio::test]
    async fn bodies_jumpcloud_would_refuse_are_refused() {
        let (fake, clock) = fake().await;
        let good = body(&clock);
        let with = |name: &str, value: Value| {
            let mut b = good.clone();
            b[name] = value;
            b.to_string()
        };
        let without = |name: &str| {
            let mut b = good.clone();
            b.as_object_mut().unwrap().remove(name);
            b.to_string()
        };
        let past = rfc3339(clock.now() - chrono::TimeDelta::seconds(1));
        for (case, text, status) in [
            ("not JSON", "requestorId=u1".to_string(), 400),
            ("no requestorId", without("requestorId"), 400),
            ("no resourceId", without("resourceId"), 400),
            ("no expiry", without("expiry"), 400),
            ("no operationId", without("operationId"), 400),
            ("no sudo", without("additionalAttributes"), 400),
            (
                "unknown operation",
                with("operationId", json!("00000000-0000-0000-0000-000000000000")),
                400,
            ),
            (
                "not a device",
                with("resourceType", json!("application")),
                400,
            ),
            ("past expiry", with("expiry", json!(past)), 400),
            ("bad expiry", with("expiry", json!("tomorrow")), 400),
            ("unknown user", with("requestorId", json!("nobody")), 404),
            ("unknown device", with("resourceId", json!("nothing")), 404),
            ("device not bound", with("resourceId", json!("s2")), 400),
        ] {
            let (got, answer) = send(&fake, "POST", "/api/v2/accessrequests", Some(text)).await;
            assert_eq!(got, status, "{case}: {answer}");
            assert!(answer["message"].is_string(), "{case}: a JSON error body");
        }
        assert!(fake.access_requests().is_empty());
        let response = reqwest::Client::new()
            .post(format!("{}/api/v2/accessrequests", fake.url()))
            .header("x-api-key", "wrong")
            .body(good.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert!(fake.access_requests().is_empty());
    }
}
