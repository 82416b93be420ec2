//! Microsoft Graph, for approvers named by Entra ID group
//! (`teams.approver_groups`).
//!
//! A group's members, direct or through nested groups, are its
//! `transitiveMembers`; the users among them are listed with
//! `GET {graph_url}/v1.0/groups/{id}/transitiveMembers/microsoft.graph.user
//! ?$count=true&$select=id,mail,userPrincipalName&$top=999` and the header
//! `ConsistencyLevel: eventual` (the OData cast keeps devices, contacts and
//! groups out; Microsoft's "List group transitive members" page says a cast
//! needs both advanced query parameters), page by page as
//! `@odata.nextLink` names them. Graph pages as it sees fit (100 by
//! default, at most 999), so every page is asked for until the person is
//! found or there is none left. An entry that says it is not a user is
//! passed over, should Graph ever ignore the cast.
//!
//! An advanced query is answered from an index that Microsoft says may lag
//! a change by a short while: a person just taken out of a group may still
//! count for that while.
//!
//! The calls carry a client-credentials token of their own (scope
//! `https://graph.microsoft.com/.default`, from `teams.token_url` with the
//! same app id and secret; a Bot Connector token is no good here, nor the
//! other way round). The app needs the application permission
//! `GroupMember.Read.All` with admin consent; without it Graph answers 403
//! `Authorization_RequestDenied`. As with the connector, nothing follows a
//! redirect, a next page is followed only on Graph's own origin (the token
//! must not travel), every call is bounded by `teams.timeout`, and failures
//! are the engine's [`ChatError`]: 429 → `RateLimited`, 5xx and network
//! failures → `Transient`, anything else → `Permanent`, with Graph's error
//! code (`Request_ResourceNotFound`…) but never its message.

use std::sync::Arc;

use percent_encoding::utf8_percent_encode;
use reqwest::{header, StatusCode};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;

use super::connector::SEGMENT;
use super::token::{retry_after, TokenSource};
use super::{describe, is_allowed_url, read_capped, TeamsSettings, GRAPH_SCOPE};
use crate::engine::ports::{ChatError, Clock};
use crate::metrics::{Metrics, Outcome, Service};

/// The page size asked for: Graph's largest, so a big group takes few calls.
pub const PAGE_SIZE: u32 = 999;

/// The most pages followed for one group (about 100,000 users at 999 a
/// page); a group larger than that, or a Graph that pages without end, is
/// an error rather than a click that never gets its answer.
pub const MAX_PAGES: usize = 100;

/// A user among a group's transitive members, as `$select` asks for them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupUser {
    /// The Entra ID object id.
    pub id: String,
    /// The mail address, when the account has one.
    #[serde(default)]
    pub mail: Option<String>,
    /// The sign-in name.
    #[serde(default)]
    pub user_principal_name: Option<String>,
    /// `@odata.type`, which Graph leaves out of a cast's entries.
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
}

impl GroupUser {
    /// Whether the entry is a user (a cast's entries carry no type).
    pub fn is_user(&self) -> bool {
        self.odata_type
            .as_deref()
            .is_none_or(|t| t == "#microsoft.graph.user")
    }
}

/// The header an advanced query needs, and its only value.
const CONSISTENCY_LEVEL: (&str, &str) = ("ConsistencyLevel", "eventual");

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    value: Vec<GroupUser>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

/// The Microsoft Graph client; one per process.
pub struct Graph {
    base: String,
    http: reqwest::Client,
    tokens: TokenSource,
    /// Where each call's outcome is counted.
    metrics: Metrics,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("base", &self.base)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl Graph {
    /// A client for `settings.graph_url`, with tokens from
    /// `settings.token_url` for the Graph scope; `clock` decides when the
    /// cached token is due for renewal.
    pub fn new(settings: &TeamsSettings, clock: Arc<dyn Clock>) -> Self {
        let http = super::http_client(settings.timeout);
        Self {
            base: settings.graph_url.trim_end_matches('/').to_owned(),
            tokens: TokenSource::new(
                &settings.app_id,
                &settings.app_password,
                settings.resolved_token_url(),
                GRAPH_SCOPE,
                "Microsoft Graph",
                http.clone(),
                clock,
            ),
            http,
            metrics: Metrics::default(),
        }
    }

    /// The same client, counting every call (and token request) into `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.tokens.metrics = metrics.clone();
        Self { metrics, ..self }
    }

    /// The first page's address for `group_id`.
    pub fn members_url(&self, group_id: &str) -> Result<url::Url, ChatError> {
        let group: String = utf8_percent_encode(group_id, SEGMENT).collect();
        let text = format!(
            "{}/v1.0/groups/{group}/transitiveMembers/microsoft.graph.user?$count=true&$select=id,mail,userPrincipalName&$top={PAGE_SIZE}",
            self.base
        );
        let url = url::Url::parse(&text)
            .map_err(|_| ChatError::Permanent("teams.graph_url is not a URL".into()))?;
        if !is_allowed_url(&url) {
            return Err(ChatError::Permanent(
                "teams.graph_url must be https (plain http only on loopback)".into(),
            ));
        }
        Ok(url)
    }

    /// Whether a user for whom `is_them` holds is among the members of
    /// `group_id`, directly or through nested groups. Pages are asked for
    /// until one holds or none is left.
    pub async fn group_has(
        &self,
        group_id: &str,
        is_them: impl Fn(&GroupUser) -> bool,
    ) -> Result<bool, ChatError> {
        let first = self.members_url(group_id)?;
        let mut next = Some(first.clone());
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(ChatError::Permanent(format!(
                    "Microsoft Graph: group {group_id} has more than {MAX_PAGES} pages of members"
                )));
            }
            let page = self.page(url, group_id).await?;
            if page.value.iter().any(|u| u.is_user() && is_them(u)) {
                return Ok(true);
            }
            next = match page.next_link {
                None => None,
                Some(link) => Some(same_origin(&first, &link)?),
            };
        }
        Ok(false)
    }

    /// How many users the first page of `group_id`'s members holds: the
    /// very call an approver's click makes, once (`tempadmin check`).
    pub async fn first_page_users(&self, group_id: &str) -> Result<usize, ChatError> {
        let page = self.page(self.members_url(group_id)?, group_id).await?;
        Ok(page.value.iter().filter(|u| u.is_user()).count())
    }

    /// One page, with one retry on 401 under a fresh token.
    async fn page(&self, url: url::Url, group_id: &str) -> Result<Page, ChatError> {
        for attempt in 0..2 {
            let token = self.tokens.token(attempt > 0).await?;
            let call = self.metrics.start(
                Service::Teams,
                "GET /v1.0/groups/{id}/transitiveMembers/microsoft.graph.user",
            );
            let response = self
                .http
                .get(url.clone())
                .bearer_auth(token.expose_secret())
                .header(header::ACCEPT, "application/json")
                .header(CONSISTENCY_LEVEL.0, CONSISTENCY_LEVEL.1)
                .send()
                .await;
            call.done(Outcome::of_reqwest(&response));
            let response = response
                .map_err(|e| ChatError::Transient(format!("Microsoft Graph: {}", describe(e))))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                continue;
            }
            let retry_after = retry_after(response.headers());
            let bytes = read_capped(response)
                .await
                .map_err(|e| ChatError::Transient(format!("Microsoft Graph: {e}")))?;
            if status.is_success() {
                // A 2xx that is not a page: retrying a read is harmless.
                return serde_json::from_slice(&bytes).map_err(|_| {
                    ChatError::Transient("Microsoft Graph: unexpected answer".into())
                });
            }
            return Err(classify(status, retry_after, &bytes, group_id));
        }
        unreachable!("the second attempt always returns")
    }
}

/// `link` as a URL, when it is on the same origin as `first` (Graph's).
fn same_origin(first: &url::Url, link: &str) -> Result<url::Url, ChatError> {
    let next = url::Url::parse(link)
        .ok()
        .filter(|next| next.origin() == first.origin() && is_allowed_url(next));
    next.ok_or_else(|| {
        ChatError::Permanent("Microsoft Graph named a next page outside teams.graph_url".into())
    })
}

/// A failed Graph answer as the engine's classification, with Graph's
/// error code (`{"error":{"code":…}}`) and what to do about it.
fn classify(
    status: StatusCode,
    retry_after: Option<std::time::Duration>,
    body: &[u8],
    group_id: &str,
) -> ChatError {
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
    let what = match &code {
        Some(code) => format!("Microsoft Graph: HTTP {status}, {code}"),
        None => format!("Microsoft Graph: HTTP {status}"),
    };
    match status.as_u16() {
        429 => ChatError::RateLimited { retry_after },
        500..=599 => ChatError::Transient(what),
        401 => ChatError::Permanent(format!(
            "{what}: Graph refused a fresh token; check teams.tenant_id (the tenant the groups are in)"
        )),
        403 => ChatError::Permanent(format!(
            "{what}: grant the app the application permission GroupMember.Read.All, with admin consent"
        )),
        404 => ChatError::Permanent(format!(
            "{what}: there is no group {group_id}; check teams.approver_groups"
        )),
        _ => ChatError::Permanent(what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified_with_what_to_do() {
        let c = |s: u16, body: &str| {
            classify(
                StatusCode::from_u16(s).unwrap(),
                None,
                body.as_bytes(),
                "g-1",
            )
        };
        assert!(matches!(c(429, ""), ChatError::RateLimited { .. }));
        assert!(matches!(c(503, ""), ChatError::Transient(_)));
        let denied = c(
            403,
            r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#,
        );
        let ChatError::Permanent(text) = denied else {
            panic!("{denied:?}")
        };
        assert!(
            text.contains("Authorization_RequestDenied") && text.contains("GroupMember.Read.All")
        );
        assert!(
            !text.contains("Insufficient"),
            "Graph's message is not kept"
        );
        let ChatError::Permanent(text) = c(404, r#"{"error":{"code":"Request_ResourceNotFound"}}"#)
        else {
            panic!()
        };
        assert!(text.contains("g-1") && text.contains("teams.approver_groups"));
    }

    #[test]
    fn a_next_page_is_followed_only_on_graphs_own_origin() {
        let first = url::Url::parse("https://graph.microsoft.com/v1.0/groups/g/x").unwrap();
        assert!(same_origin(
            &first,
            "https://graph.microsoft.com/v1.0/groups/g/x?$skiptoken=a"
        )
        .is_ok());
        for elsewhere in [
            "https://graph.example.net/v1.0/groups/g/x?$skiptoken=a",
            "http://graph.microsoft.com/v1.0/groups/g/x",
            "https://graph.microsoft.com:8443/v1.0/groups/g/x",
            "not a url",
        ] {
            assert!(same_origin(&first, elsewhere).is_err(), "{elsewhere}");
        }
    }

    #[test]
    fn the_members_address_casts_to_users_and_selects_what_is_compared() {
        let settings = TeamsSettings::new(
            "app",
            secrecy::SecretString::from("pw"),
            "72f988bf-0000-4000-8000-0000000000aa",
            "19:x",
            "https://s/",
        );
        let clock: Arc<dyn Clock> = Arc::new(crate::engine::clock::SystemClock);
        let graph = Graph::new(&settings, clock);
        assert_eq!(
            graph.members_url("0f1e2d3c-0000-4000-8000-000000000001").unwrap().as_str(),
            "https://graph.microsoft.com/v1.0/groups/0f1e2d3c-0000-4000-8000-000000000001/transitiveMembers/microsoft.graph.user?$count=true&$select=id,mail,userPrincipalName&$top=999"
        );
    }

    #[test]
    fn an_entry_that_says_it_is_not_a_user_is_passed_over() {
        let page: Page = serde_json::from_str(
            r##"{"value":[
                {"id":"u1","mail":"a@example.com"},
                {"@odata.type":"#microsoft.graph.user","id":"u2"},
                {"@odata.type":"#microsoft.graph.group","id":"g1","mail":"a@example.com"}
            ]}"##,
        )
        .unwrap();
        let users: Vec<bool> = page.value.iter().map(GroupUser::is_user).collect();
        assert_eq!(users, [true, true, false]);
    }
}
