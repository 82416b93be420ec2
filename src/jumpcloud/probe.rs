//! Read-only calls that prove what the credentials may do, for `tempadmin
//! check`. Each is a `GET` (or, for a service account, the token request,
//! which changes nothing in the organisation) and reports JumpCloud's answer
//! as the usual [`DirectoryError`].

use reqwest::Method;
use serde::Deserialize;

use super::{Auth, JumpCloudClient};
use crate::engine::ports::DirectoryError;

/// A v1 list, as far as its size is read.
#[derive(Debug, Deserialize)]
struct Counted {
    #[serde(rename = "totalCount", default)]
    total_count: u64,
}

/// An id no object can have (JumpCloud's ids are 24 hex digits; this one is
/// the reserved all-zero id), for asking whether a kind of object may be
/// read at all.
const NO_SUCH_ID: &str = "000000000000000000000000";

impl JumpCloudClient {
    /// Whether the client authenticates with a service account (else an
    /// API key).
    pub fn uses_service_account(&self) -> bool {
        matches!(self.auth, Auth::Bearer(_))
    }

    /// For a service account, asks the token endpoint for a token now, so
    /// that a refusal there is told apart from one by the API. Nothing to
    /// do for an API key.
    pub async fn fetch_token(&self) -> Result<(), DirectoryError> {
        match &self.auth {
            Auth::ApiKey(_) => Ok(()),
            Auth::Bearer(tokens) => tokens.bearer().await.map(|_| ()),
        }
    }

    /// How many users the organisation has: `GET /api/systemusers` with one
    /// id on the page, and its `totalCount`.
    pub async fn count_users(&self) -> Result<u64, DirectoryError> {
        self.count("/api/systemusers").await
    }

    /// How many devices the organisation has (`GET /api/systems`).
    pub async fn count_systems(&self) -> Result<u64, DirectoryError> {
        self.count("/api/systems").await
    }

    async fn count(&self, path: &str) -> Result<u64, DirectoryError> {
        let builder = self
            .call(Method::GET, path)
            .query(&[("limit", "1"), ("fields", "_id")]);
        let (list, _): (Counted, _) = self.get_json(builder).await?;
        Ok(list.total_count)
    }

    /// Whether access requests may be read. JumpCloud documents no list of
    /// them (DEVICE.md), so this reads one that cannot exist: only 401 and
    /// 403 are refusals of the credentials. "Not found", and any other
    /// refusal of the made-up id (JumpCloud's answer to it is not
    /// documented: 400 would be as likely as 404), came from an API that
    /// let the credentials in.
    pub async fn can_read_access_requests(&self) -> Result<(), DirectoryError> {
        let path = format!("/api/v2/accessrequests/{NO_SUCH_ID}");
        match self.send(self.call(Method::GET, &path)).await {
            Ok(_) | Err(DirectoryError::NotFound | DirectoryError::Permanent(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
