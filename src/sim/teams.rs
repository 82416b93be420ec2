//! Fake Bot Framework: a loopback HTTP server that plays every Microsoft
//! service a Teams bot talks to, as strict as the real ones.
//!
//! - **OpenID metadata and keys** (`/v1/.well-known/openidconfiguration`,
//!   `/v1/.well-known/keys`): the document names the key set's `jwks_uri`;
//!   the keys are RSA keys the fake generates at start, each with its
//!   `endorsements` (`msteams`). Keys can be rotated, added and retired, and
//!   the fake signs inbound tokens as the Bot Framework Service does
//!   ([`FakeBotFramework::authorization`]).
//! - **Entra ID token endpoint** (`/{tenant}/oauth2/v2.0/token`): checks the
//!   form (`grant_type=client_credentials`, client id, secret, scope
//!   `https://api.botframework.com/.default` or
//!   `https://graph.microsoft.com/.default`, the tenant) and answers with
//!   Entra ID's error shape (`invalid_client` under 401, `invalid_scope`…
//!   under 400) when something is wrong. A token is for the one API its
//!   scope names: the connector refuses a Graph token and Graph a
//!   connector token, with 401.
//! - **Microsoft Graph** (under [`FakeBotFramework::graph_url`], `/v1.0/…`):
//!   Entra ID groups ([`FakeBotFramework::set_group`], nested groups
//!   count) and `GET /v1.0/groups/{id}/transitiveMembers[/microsoft.graph.user]`
//!   with `$select`, `$top` (1–999), `$count` and `@odata.nextLink` paging
//!   (the cast only as an advanced query: `ConsistencyLevel: eventual` and
//!   `$count=true`, else 400 `Request_UnsupportedQuery`), at most
//!   [`FakeBotFramework::set_graph_page_size`] a page; Graph's error shape
//!   (`{"error":{"code","message","innerError"}}`) for 401
//!   `InvalidAuthenticationToken`, 403 `Authorization_RequestDenied` (the
//!   permission not granted), 404 `Request_ResourceNotFound`, 400
//!   `Request_BadRequest` / `BadRequest`, 503 while down.
//! - **Bot Connector** (under [`FakeBotFramework::service_url`], `/emea/v3/…`,
//!   and the other [`REGIONS`]; a conversation answers only under its own
//!   region's service URL, and a person's 1:1 chat is opened only under
//!   theirs, [`FakeBotFramework::set_region`]):
//!   post, reply, update, create a 1:1 conversation, get a member. A
//!   conversation can be deleted ([`FakeBotFramework::delete_conversation`],
//!   a person deleting their chat with the bot): calls about it get 404
//!   `ConversationNotFound`, and opening the 1:1 chat again gives a new id. Every
//!   call needs a bearer token the token endpoint issued; refusals use the
//!   Bot Framework's `{"error":{"code","message"}}` shape and the status
//!   codes of Teams' documentation (404 `ConversationNotFound`,
//!   `ActivityNotFoundInConversation`, 400 `BadArgument`, 413
//!   `MessageSizeTooBig` over 100 KB counted as UTF-16, 429 with
//!   `Retry-After`, 503). Activities need a `type`; a message needs text or attachments; an Adaptive Card
//!   attachment needs `contentType: application/vnd.microsoft.card.adaptive`
//!   and content of `type: AdaptiveCard` with a `version`. Conversations and
//!   threads are kept, every activity keeps its edit history, and every
//!   call is recorded. As in Teams, a post joins a channel thread only when
//!   its conversation id is `{channel};messageid={root}` (404
//!   `ConversationNotFound` when there is no such root); one addressed to
//!   the bare channel, even as a reply (`…/activities/{root}`), becomes a
//!   new top-level post.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use percent_encoding::percent_decode_str;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::{json, Value};

use crate::domain::Timestamp;
use crate::teams::{
    TeamsSettings, ADAPTIVE_CARD_CONTENT_TYPE, BOT_FRAMEWORK_ISSUER, CONNECTOR_SCOPE, GRAPH_SCOPE,
};

/// The app id the simulations register their bot under.
pub const APP_ID: &str = "00000000-0000-4000-8000-00000000b07f";
/// The simulated bot's client secret.
pub const APP_PASSWORD: &str = "simulated-teams-app-password";
/// The simulated Entra ID tenant.
pub const TENANT_ID: &str = "72f988bf-0000-4000-8000-0000000000aa";
/// The channel conversation approval cards go to in the simulations.
pub const APPROVALS_CONVERSATION: &str = "19:approvals0000@thread.tacv2";
/// The channel id the Bot Framework gives Teams activities.
pub const CHANNEL_ID: &str = "msteams";

/// Teams refuses a bot message over 100 KB with 413 `MessageSizeTooBig`,
/// the size counted on the payload encoded as UTF-16 ("Format your bot
/// messages", Teams platform docs; older versions of that page said 40 KB).
/// So an all-ASCII activity may have about 51,000 characters, not 102,400.
pub const MAX_ACTIVITY_UTF16_BYTES: usize = 100 * 1024;

/// What an activity weighs by Teams' measure: its JSON as UTF-16 bytes.
pub fn utf16_size(body: &[u8]) -> usize {
    String::from_utf8_lossy(body).encode_utf16().count() * 2
}

/// An activity the bot posted, as it currently stands.
#[derive(Clone, Debug, PartialEq)]
pub struct SimActivity {
    /// The id the fake assigned.
    pub id: String,
    /// The conversation it lives in (a channel's id without `;messageid=`).
    pub conversation_id: String,
    /// The root activity of its thread, for a reply.
    pub reply_to: Option<String>,
    /// The activity as last posted or updated.
    pub activity: Value,
    /// Every body that shaped it, oldest first: the post, then each update.
    pub history: Vec<Value>,
}

/// One request as the fake received it.
#[derive(Clone, Debug, PartialEq)]
pub struct TeamsCall {
    /// HTTP method.
    pub method: String,
    /// The path with each segment percent-decoded, e.g.
    /// `/emea/v3/conversations/19:x@thread.tacv2/activities`.
    pub path: String,
    /// The JSON body (form bodies as an object; the client secret replaced
    /// by `"***"`), `Null` when there is none.
    pub body: Value,
    /// The bearer token the call carried.
    pub bearer: Option<String>,
    /// The query string as sent (`$select=…&$top=…`), empty when none.
    pub query: String,
}

/// A person Teams knows: of the simulated tenant ([`TENANT_ID`]), or a
/// guest or shared-channel member from another one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimUser {
    /// Teams user id, `29:…`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Entra ID object id.
    pub aad_object_id: String,
    /// Mail address, if the account has one.
    pub email: Option<String>,
    /// Sign-in name.
    pub user_principal_name: String,
    /// Their own tenant, as the members API names it: [`TENANT_ID`] for
    /// our people, another for a member from elsewhere.
    pub tenant_id: String,
}

/// The claims of an inbound token, before signing; start from
/// [`FakeBotFramework::claims`] and change what a test needs wrong.
#[derive(Clone, Debug, Serialize)]
pub struct InboundClaims {
    /// `iss`.
    pub iss: String,
    /// `aud`.
    pub aud: String,
    /// `serviceurl`.
    pub serviceurl: String,
    /// `nbf`, seconds since the epoch.
    pub nbf: i64,
    /// `exp`, seconds since the epoch.
    pub exp: i64,
    /// Which published key signs it (`None`: the signing key). Goes into
    /// the JOSE header, not the claims.
    #[serde(skip)]
    pub kid: Option<String>,
}

struct SimKey {
    kid: String,
    encoding: EncodingKey,
    public_der: Vec<u8>,
    n: String,
    e: String,
    endorsements: Vec<String>,
}

#[derive(Debug)]
struct Conversation {
    is_group: bool,
    members: Vec<String>,
    /// The region whose service URL serves it (`emea`, `amer`, `apac`).
    region: String,
}

/// The regions the fake serves, each under `/{region}/`.
pub const REGIONS: [&str; 3] = ["emea", "amer", "apac"];

/// The region people and channels are in unless a test moves them.
const HOME_REGION: &str = "emea";

/// Which API an issued token is for: Entra ID issues one audience per
/// token, and each API refuses the other's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Audience {
    Connector,
    Graph,
}

struct IssuedToken {
    value: String,
    audience: Audience,
    /// The tenant whose token endpoint issued it.
    tenant: String,
}

/// Graph's default page size for directory collections; `$top` asks for
/// up to 999.
const GRAPH_DEFAULT_PAGE: usize = 100;

/// The user properties Graph returns when a request names no `$select`.
const GRAPH_DEFAULT_USER_PROPERTIES: [&str; 4] = ["id", "displayName", "mail", "userPrincipalName"];

/// The user properties the fake knows (asking for another is a 400).
const GRAPH_USER_PROPERTIES: [&str; 6] = [
    "id",
    "displayName",
    "mail",
    "userPrincipalName",
    "givenName",
    "surname",
];

#[derive(Default)]
struct Inner {
    keys: Vec<Arc<SimKey>>,
    signing_kid: String,
    tokens: Vec<IssuedToken>,
    token_lifetime: u64,
    users: BTreeMap<String, SimUser>,
    /// People served by another region than [`HOME_REGION`].
    regions: BTreeMap<String, String>,
    conversations: BTreeMap<String, Conversation>,
    /// The bot's current 1:1 chat with each person who has one.
    personal: BTreeMap<String, String>,
    /// How many 1:1 chats were opened again after being deleted.
    reopened: u64,
    /// Conversations deleted by [`FakeBotFramework::delete_conversation`].
    deleted: std::collections::BTreeSet<String>,
    /// Entra ID groups: object id → members' object ids (users, or other
    /// groups, whose members then count too).
    groups: BTreeMap<String, Vec<String>>,
    /// The most members Graph puts on one page here (Graph pages as it
    /// sees fit; a small value makes tests page).
    graph_page_cap: usize,
    /// Whether `GroupMember.Read.All` was granted (with admin consent).
    graph_permission: bool,
    graph_down: bool,
    activities: Vec<SimActivity>,
    /// Activities people sent (conversation, id): a bot may reply to them.
    inbound: Vec<(String, String)>,
    /// Channel threads people started (channel, root id): a bot may post
    /// into them.
    roots: std::collections::BTreeSet<(String, String)>,
    calls: Vec<TeamsCall>,
    down: bool,
    hanging: bool,
    rate_limited: usize,
    retry_after_secs: u64,
    last_id: u64,
}

impl Inner {
    fn next_id(&mut self) -> String {
        self.last_id += 1;
        (1_700_000_000_000 + self.last_id).to_string()
    }
}

/// A running fake Bot Framework; clones share the same state.
#[derive(Clone)]
pub struct FakeBotFramework {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for FakeBotFramework {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeBotFramework")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeBotFramework {
    /// Generates a signing key, binds `127.0.0.1:0` and serves the fake on
    /// a tokio task. The approvals channel exists, with no members yet.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> FakeBotFramework {
        let key = tokio::task::spawn_blocking(|| generate_key(&[CHANNEL_ID]))
            .await
            .expect("RSA key generation");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the fake Bot Framework");
        let addr = listener.local_addr().expect("local address of the fake");
        let mut inner = Inner {
            signing_kid: key.kid.clone(),
            keys: vec![Arc::new(key)],
            token_lifetime: 3599,
            graph_page_cap: GRAPH_DEFAULT_PAGE,
            graph_permission: true,
            ..Inner::default()
        };
        inner.conversations.insert(
            APPROVALS_CONVERSATION.into(),
            Conversation {
                is_group: true,
                members: Vec::new(),
                region: HOME_REGION.into(),
            },
        );
        let fake = FakeBotFramework {
            addr,
            inner: Arc::new(Mutex::new(inner)),
        };
        let app = Router::new().fallback(handle).with_state(fake.clone());
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "fake Bot Framework stopped");
            }
        });
        fake
    }

    /// The OpenID metadata document's URL (`teams.openid_metadata_url`).
    pub fn openid_metadata_url(&self) -> String {
        format!("http://{}/v1/.well-known/openidconfiguration", self.addr)
    }

    /// The token endpoint with a `{tenant}` placeholder (`teams.token_url`).
    pub fn token_url(&self) -> String {
        format!("http://{}/{{tenant}}/oauth2/v2.0/token", self.addr)
    }

    /// The Microsoft Graph base (`teams.graph_url`): Graph's API is under
    /// `/v1.0/` of it.
    pub fn graph_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Bot Connector base, `http://127.0.0.1:PORT/emea/`: activities
    /// name it as their `serviceUrl`.
    pub fn service_url(&self) -> String {
        format!("http://{}/emea/", self.addr)
    }

    /// The Bot Connector base of `region` (one of [`REGIONS`]).
    pub fn service_url_in(&self, region: &str) -> String {
        format!("http://{}/{region}/", self.addr)
    }

    /// The Bot Connector base that serves `user_id`: what their
    /// activities name as `serviceUrl`.
    pub fn service_url_of(&self, user_id: &str) -> String {
        let region = self.lock().regions.get(user_id).cloned();
        self.service_url_in(region.as_deref().unwrap_or(HOME_REGION))
    }

    /// Serves `user_id` from `region` from now on: their 1:1 chat with the
    /// bot is opened and reached only through that region's service URL,
    /// and the other regions answer as if it did not exist (Microsoft asks
    /// bots to use the `serviceUrl` of the person's activities).
    pub fn set_region(&self, user_id: &str, region: &str) {
        assert!(REGIONS.contains(&region), "no region {region}");
        self.lock()
            .regions
            .insert(user_id.to_owned(), region.to_owned());
    }

    /// Serves the conversation `conversation_id` (a channel, say) from
    /// `region` from now on: the other regions answer as if it did not
    /// exist, and its activities name that region's service URL.
    pub fn set_conversation_region(&self, conversation_id: &str, region: &str) {
        assert!(REGIONS.contains(&region), "no region {region}");
        let mut inner = self.lock();
        let conversation = inner
            .conversations
            .get_mut(conversation_id)
            .expect("a conversation the fake knows");
        conversation.region = region.to_owned();
    }

    /// Settings that point a bot at this fake, as a single-tenant bot.
    pub fn settings(&self) -> TeamsSettings {
        let mut settings = TeamsSettings::new(
            APP_ID,
            SecretString::from(APP_PASSWORD),
            TENANT_ID,
            APPROVALS_CONVERSATION,
            self.service_url(),
        );
        settings.openid_metadata_url = self.openid_metadata_url();
        settings.token_url = self.token_url();
        settings.graph_url = self.graph_url();
        settings.timeout = Duration::from_secs(2);
        settings
    }

    /// Adds (or replaces) a person, and makes them a member of the
    /// approvals channel.
    pub fn add_user(&self, user: SimUser) {
        let mut inner = self.lock();
        let channel = inner
            .conversations
            .get_mut(APPROVALS_CONVERSATION)
            .expect("the approvals channel exists");
        if !channel.members.contains(&user.id) {
            channel.members.push(user.id.clone());
        }
        inner.users.insert(user.id.clone(), user);
    }

    /// Adds a channel conversation with these members.
    pub fn add_channel(&self, conversation_id: &str, members: &[&str]) {
        self.lock().conversations.insert(
            conversation_id.to_owned(),
            Conversation {
                is_group: true,
                members: members.iter().map(|m| (*m).to_owned()).collect(),
                region: HOME_REGION.into(),
            },
        );
    }

    /// The 1:1 conversation id the bot has with `user_id`, once created
    /// (and while it is not deleted).
    pub fn personal_conversation_of(&self, user_id: &str) -> Option<String> {
        let inner = self.lock();
        let id = inner
            .personal
            .get(user_id)
            .cloned()
            .unwrap_or_else(|| personal_id(user_id));
        inner.conversations.contains_key(&id).then_some(id)
    }

    /// Deletes a conversation, as when a person deletes their chat with
    /// the bot: from now on the connector answers every call about it with
    /// 404 `ConversationNotFound`, and the bot must open the 1:1 chat again
    /// (`POST /v3/conversations`), which the fake then gives a new id.
    pub fn delete_conversation(&self, conversation_id: &str) {
        let mut inner = self.lock();
        inner.conversations.remove(conversation_id);
        inner.inbound.retain(|(c, _)| c != conversation_id);
        inner.roots.retain(|(c, _)| c != conversation_id);
        inner.deleted.insert(conversation_id.to_owned());
    }

    /// Makes `group_id` an Entra ID group with these members: people's
    /// Entra ID object ids, or other groups' object ids (whose members then
    /// belong to it too, as Graph's `transitiveMembers` counts them).
    pub fn set_group(&self, group_id: &str, members: &[&str]) {
        self.lock().groups.insert(
            group_id.to_owned(),
            members.iter().map(|m| (*m).to_owned()).collect(),
        );
    }

    /// Takes `member` (an object id) out of `group_id`.
    pub fn remove_from_group(&self, group_id: &str, member: &str) {
        if let Some(members) = self.lock().groups.get_mut(group_id) {
            members.retain(|m| m != member);
        }
    }

    /// Graph puts at most `members` members on one page from now on.
    pub fn set_graph_page_size(&self, members: usize) {
        assert!(members > 0, "a page holds at least one member");
        self.lock().graph_page_cap = members;
    }

    /// Whether the app was granted `GroupMember.Read.All`; without it Graph
    /// answers 403 `Authorization_RequestDenied`.
    pub fn set_graph_permission_granted(&self, granted: bool) {
        self.lock().graph_permission = granted;
    }

    /// While down, Graph (only) answers 503.
    pub fn set_graph_down(&self, down: bool) {
        self.lock().graph_down = down;
    }

    /// The Graph calls received so far, in arrival order.
    pub fn graph_calls(&self) -> Vec<TeamsCall> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.path.starts_with("/v1.0/"))
            .cloned()
            .collect()
    }

    /// Records that a person sent `activity` (as the Bot Framework Service
    /// delivers it to the bot), so the bot may reply to it: its
    /// conversation exists (a personal chat is opened with its sender) and
    /// its id may be a thread's root.
    pub fn note_inbound(&self, activity: &Value) {
        let (Some(conversation), Some(id)) = (
            activity["conversation"]["id"].as_str(),
            activity["id"].as_str(),
        ) else {
            return;
        };
        let (base, _) = split_thread(conversation);
        let mut inner = self.lock();
        if !inner.conversations.contains_key(base) {
            let sender = activity["from"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let region = activity["serviceUrl"]
                .as_str()
                .and_then(region_of)
                .unwrap_or(HOME_REGION)
                .to_owned();
            inner.conversations.insert(
                base.to_owned(),
                Conversation {
                    is_group: activity["conversation"]["isGroup"].as_bool() == Some(true),
                    members: vec![sender],
                    region,
                },
            );
        }
        inner.inbound.push((base.to_owned(), id.to_owned()));
        // A message in a channel thread names the thread's root.
        if let (_, Some(root)) = split_thread(conversation) {
            inner.roots.insert((base.to_owned(), root.to_owned()));
        }
    }

    /// The id of the bot's 1:1 chat with `user_id`, as Teams names it
    /// (whether or not it exists yet).
    pub fn personal_conversation_id(user_id: &str) -> String {
        personal_id(user_id)
    }

    /// Every activity the bot posted (replies included), in post order.
    pub fn activities(&self) -> Vec<SimActivity> {
        self.lock().activities.clone()
    }

    /// The replies under `root` in `conversation_id`, in post order.
    pub fn thread(&self, conversation_id: &str, root: &str) -> Vec<SimActivity> {
        self.lock()
            .activities
            .iter()
            .filter(|a| a.conversation_id == conversation_id && a.reply_to.as_deref() == Some(root))
            .cloned()
            .collect()
    }

    /// Every call received so far (refused ones included), in arrival order.
    pub fn calls(&self) -> Vec<TeamsCall> {
        self.lock().calls.clone()
    }

    /// The calls that could change something in Teams or Entra ID: all
    /// but `GET`s and token requests (which change nothing there).
    pub fn write_calls(&self) -> Vec<TeamsCall> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method != "GET" && !c.path.ends_with("/oauth2/v2.0/token"))
            .cloned()
            .collect()
    }

    /// How many times the key set (`jwks_uri`) was fetched.
    pub fn key_fetches(&self) -> usize {
        self.count_calls("/v1/.well-known/keys")
    }

    /// How many token requests arrived.
    pub fn token_requests(&self) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.path.ends_with("/oauth2/v2.0/token"))
            .count()
    }

    fn count_calls(&self, path: &str) -> usize {
        self.lock().calls.iter().filter(|c| c.path == path).count()
    }

    /// Publishes a new `msteams` key and signs with it from now on; the
    /// old keys stay published, as during a real rotation. Its `kid`.
    pub async fn rotate_key(&self) -> String {
        let kid = self.add_key(&[CHANNEL_ID]).await;
        self.lock().signing_kid = kid.clone();
        kid
    }

    /// Publishes another key with these endorsements without signing with
    /// it; sign with it through [`InboundClaims::kid`]. Its `kid`.
    pub async fn add_key(&self, endorsements: &[&str]) -> String {
        let endorsements: Vec<String> = endorsements.iter().map(|e| (*e).to_owned()).collect();
        let key = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = endorsements.iter().map(String::as_str).collect();
            generate_key(&refs)
        })
        .await
        .expect("RSA key generation");
        let kid = key.kid.clone();
        self.lock().keys.push(Arc::new(key));
        kid
    }

    /// Stops publishing a key.
    pub fn retire_key(&self, kid: &str) {
        self.lock().keys.retain(|k| k.kid != kid);
    }

    /// The `kid` the fake signs with.
    pub fn signing_kid(&self) -> String {
        self.lock().signing_kid.clone()
    }

    /// The DER (SubjectPublicKeyInfo) bytes of the signing key's public half:
    /// what an attacker who read the key set has.
    pub fn public_key_der(&self) -> Vec<u8> {
        let inner = self.lock();
        let kid = inner.signing_kid.clone();
        key_by_id(&inner, &kid)
            .expect("signing key")
            .public_der
            .clone()
    }

    /// Claims as the Bot Framework Service sends them for an activity from
    /// `service_url` at `now`: issuer, our app id, five minutes' validity.
    pub fn claims(&self, now: Timestamp, service_url: &str) -> InboundClaims {
        InboundClaims {
            iss: BOT_FRAMEWORK_ISSUER.into(),
            aud: APP_ID.into(),
            serviceurl: service_url.into(),
            nbf: now.timestamp() - 5,
            exp: now.timestamp() + 300,
            kid: None,
        }
    }

    /// A JWT over `claims`, RS256-signed with the key `claims.kid` names
    /// (the signing key by default).
    pub fn sign(&self, claims: &InboundClaims) -> String {
        let key = {
            let inner = self.lock();
            let kid = claims
                .kid
                .clone()
                .unwrap_or_else(|| inner.signing_kid.clone());
            key_by_id(&inner, &kid).expect("a published key").clone()
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        header.x5t = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).expect("RS256 signing")
    }

    /// The `Authorization` header the Bot Framework Service would send
    /// with `activity` at `now`: a token for the activity's `serviceUrl`.
    pub fn authorization(&self, activity: &Value, now: Timestamp) -> String {
        let service_url = activity["serviceUrl"].as_str().unwrap_or_default();
        format!("Bearer {}", self.sign(&self.claims(now, service_url)))
    }

    /// Sets how long issued tokens say they last (`expires_in`).
    pub fn set_token_lifetime(&self, seconds: u64) {
        self.lock().token_lifetime = seconds;
    }

    /// Forgets every issued token, as if they were revoked: the next
    /// connector or Graph call with one is refused 401.
    pub fn revoke_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// While down, every request is answered 503.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// While hanging, every request is accepted and never answered.
    pub fn set_hanging(&self, hanging: bool) {
        self.lock().hanging = hanging;
    }

    /// The next `times` connector calls are answered 429 with
    /// `Retry-After: retry_after_secs`.
    pub fn rate_limit_next(&self, times: usize, retry_after_secs: u64) {
        let mut inner = self.lock();
        inner.rate_limited = times;
        inner.retry_after_secs = retry_after_secs;
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn route(
        &self,
        method: &Method,
        segments: &[String],
        query: &str,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Response {
        let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (method.clone(), parts.as_slice()) {
            (_, ["v1.0", rest @ ..]) => self.graph(method, rest, query, headers),
            (Method::GET, ["v1", ".well-known", "openidconfiguration"]) => self.metadata(),
            (Method::GET, ["v1", ".well-known", "keys"]) => self.keys(),
            (Method::POST, [tenant, "oauth2", "v2.0", "token"]) => {
                self.token(tenant, headers, body)
            }
            (_, [region, "v3", "conversations", rest @ ..]) if REGIONS.contains(region) => {
                self.connector(region, method, rest, headers, body)
            }
            _ => bf_error(StatusCode::NOT_FOUND, "NotFound", "No such resource."),
        }
    }

    fn metadata(&self) -> Response {
        json_response(
            StatusCode::OK,
            json!({
                "issuer": BOT_FRAMEWORK_ISSUER,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": format!("http://{}/v1/.well-known/keys", self.addr),
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"]
            }),
        )
    }

    fn keys(&self) -> Response {
        let keys: Vec<Value> = self
            .lock()
            .keys
            .iter()
            .map(|k| {
                json!({
                    "kty": "RSA", "use": "sig", "kid": k.kid, "x5t": k.kid,
                    "n": k.n, "e": k.e, "endorsements": k.endorsements
                })
            })
            .collect();
        json_response(StatusCode::OK, json!({ "keys": keys }))
    }

    fn token(&self, tenant: &str, headers: &HeaderMap, body: &Bytes) -> Response {
        let form_ok = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let form: BTreeMap<String, String> = serde_urlencoded::from_bytes(body).unwrap_or_default();
        let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
        if tenant != TENANT_ID && tenant != "botframework.com" {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_tenant",
                90002,
                "Tenant not found.",
            );
        }
        if !form_ok || field("grant_type").is_empty() {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the parameter 'grant_type'.",
            );
        }
        if field("grant_type") != "client_credentials" {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.",
            );
        }
        if field("client_id") != APP_ID {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700016,
                "Application was not found in the directory.",
            );
        }
        if field("client_secret") != APP_PASSWORD {
            return entra_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                "Invalid client secret provided.",
            );
        }
        let audience = match field("scope") {
            CONNECTOR_SCOPE => Audience::Connector,
            GRAPH_SCOPE => Audience::Graph,
            _ => Audience::Connector,
        };
        if field("scope") != CONNECTOR_SCOPE && field("scope") != GRAPH_SCOPE {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                70011,
                "The provided value for the input parameter 'scope' is not valid.",
            );
        }
        let mut inner = self.lock();
        let token = format!(
            "sim-{}-token-{}",
            match audience {
                Audience::Connector => "bf",
                Audience::Graph => "graph",
            },
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>())
        );
        inner.tokens.push(IssuedToken {
            value: token.clone(),
            audience,
            tenant: tenant.to_owned(),
        });
        json_response(
            StatusCode::OK,
            json!({
                "token_type": "Bearer",
                "expires_in": inner.token_lifetime,
                "ext_expires_in": inner.token_lifetime,
                "access_token": token
            }),
        )
    }

    /// Microsoft Graph under `/v1.0/`: a group's transitive members, as
    /// `GET /v1.0/groups/{id}/transitiveMembers[/microsoft.graph.user]`
    /// answers them, with `$select`, `$top`, `$count` (`@odata.count`) and
    /// `@odata.nextLink` paging (`$skiptoken`), and Graph's refusals
    /// (`{"error":{"code","message","innerError"}}`): 400
    /// `Request_UnsupportedQuery` for the cast without the advanced query
    /// parameters (`ConsistencyLevel: eventual` and `$count=true`, as the
    /// "List group transitive members" page requires for an OData cast),
    /// 401 `InvalidAuthenticationToken` without a Graph
    /// token (a Bot Connector token included), 403
    /// `Authorization_RequestDenied` without `GroupMember.Read.All`, 400
    /// `Request_BadRequest` for an id that is not a GUID or a bad `$top` or
    /// page token, 400 `BadRequest` for an unknown segment, property or
    /// query option, 404 `Request_ResourceNotFound` for an unknown group.
    fn graph(&self, method: &Method, rest: &[&str], query: &str, headers: &HeaderMap) -> Response {
        let inner = self.lock();
        let Some(token) = bearer(headers) else {
            return graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token is empty.",
            );
        };
        let Some(issued) = inner.tokens.iter().find(|t| t.value == token) else {
            return graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "IDX14100: JWT is not well formed, there are no dots (.).",
            );
        };
        if issued.audience != Audience::Graph {
            return graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
            );
        }
        if inner.graph_down {
            let mut response = graph_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "serviceNotAvailable",
                "The service is temporarily unavailable.",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(10u32));
            return response;
        }
        let (group, cast) = match rest {
            ["groups", group, members] if members.eq_ignore_ascii_case("transitiveMembers") => {
                (*group, false)
            }
            ["groups", group, members, cast]
                if members.eq_ignore_ascii_case("transitiveMembers")
                    && cast.eq_ignore_ascii_case("microsoft.graph.user") =>
            {
                (*group, true)
            }
            _ => {
                let segment = rest.last().copied().unwrap_or("v1.0");
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("Resource not found for the segment '{segment}'."),
                );
            }
        };
        if *method != Method::GET {
            return graph_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request_BadRequest",
                "The requested method is not allowed on this resource.",
            );
        }
        let mut select = None;
        let mut top = None;
        let mut skip = None;
        let mut count = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "$select" => select = Some(value.into_owned()),
                "$top" => top = Some(value.into_owned()),
                "$skiptoken" => skip = Some(value.into_owned()),
                "$count" => count = Some(value.into_owned()),
                other if other.starts_with('$') => {
                    return graph_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &format!("Query option '{other}' is not supported by this fake."),
                    )
                }
                _ => {}
            }
        }
        let count = match count.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("Invalid value '{other}' for $count: use true or false."),
                )
            }
        };
        // An OData cast on directory objects is an advanced query: Graph's
        // documentation requires ConsistencyLevel: eventual and $count=true.
        let eventual = headers
            .get("consistencylevel")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("eventual"));
        if cast && !(eventual && count) {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                "An OData cast is an advanced query: send the ConsistencyLevel: eventual header and $count=true.",
            );
        }
        if !inner.graph_permission {
            return graph_error(
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            );
        }
        if !is_guid(group) {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                &format!("Invalid object identifier '{group}'."),
            );
        }
        let properties: Vec<String> = match &select {
            None => GRAPH_DEFAULT_USER_PROPERTIES.map(str::to_owned).to_vec(),
            Some(list) => list.split(',').map(|p| p.trim().to_owned()).collect(),
        };
        if let Some(unknown) = properties
            .iter()
            .find(|p| !GRAPH_USER_PROPERTIES.contains(&p.as_str()))
        {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Parsing OData Select and Expand failed: Could not find a property named '{unknown}' on type 'microsoft.graph.user'."),
            );
        }
        let page_size = match top.as_deref().map(str::parse::<usize>) {
            None => GRAPH_DEFAULT_PAGE,
            Some(Ok(n)) if (1..=999).contains(&n) => n,
            Some(_) => {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    &format!(
                        "Invalid page size specified: '{}'. Must be between 1 and 999 inclusive.",
                        top.unwrap_or_default()
                    ),
                )
            }
        }
        .min(inner.graph_page_cap);
        let offset = match skip.as_deref() {
            None => 0,
            Some(token) => match parse_skiptoken(token, group) {
                Some(offset) => offset,
                None => {
                    return graph_error(
                        StatusCode::BAD_REQUEST,
                        "Request_BadRequest",
                        "The specified page token value has expired and can no longer be included in your request.",
                    )
                }
            },
        };
        // A token from another tenant sees another directory, without our groups.
        let known = issued.tenant == TENANT_ID && inner.groups.contains_key(group);
        if !known {
            return graph_error(
                StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                &format!("Resource '{group}' does not exist or one of its queried reference-property objects are not present."),
            );
        }
        let members = transitive_members(&inner, group, cast);
        let page: Vec<Value> = members
            .iter()
            .skip(offset)
            .take(page_size)
            .map(|member| match member {
                Member::User(id) => {
                    let user = inner.users.values().find(|u| u.aad_object_id == *id);
                    let mut object = serde_json::Map::new();
                    if !cast {
                        object.insert("@odata.type".into(), json!("#microsoft.graph.user"));
                    }
                    for property in &properties {
                        let value = match (property.as_str(), user) {
                            ("id", _) => json!(id),
                            ("displayName", Some(u)) => json!(u.name),
                            ("mail", Some(u)) => json!(u.email),
                            ("userPrincipalName", Some(u)) => json!(u.user_principal_name),
                            _ => Value::Null,
                        };
                        object.insert(property.clone(), value);
                    }
                    Value::Object(object)
                }
                Member::Group(id) => json!({ "@odata.type": "#microsoft.graph.group", "id": id }),
            })
            .collect();
        let selected = select.map(|s| format!("({s})")).unwrap_or_default();
        let mut body = json!({
            "@odata.context": if cast {
                format!("https://graph.microsoft.com/v1.0/$metadata#users{selected}")
            } else {
                "https://graph.microsoft.com/v1.0/$metadata#directoryObjects".to_owned()
            },
            "value": page
        });
        if count {
            body["@odata.count"] = json!(members.len());
        }
        if offset + page_size < members.len() {
            // Graph repeats the query as it was sent, `$` and all.
            let mut next: Vec<String> = query
                .split('&')
                .filter(|part| {
                    !part.is_empty()
                        && !part.starts_with("$skiptoken=")
                        && !part.starts_with("%24skiptoken=")
                })
                .map(str::to_owned)
                .collect();
            next.push(format!(
                "$skiptoken={}",
                skiptoken(group, offset + page_size)
            ));
            let path = rest.join("/");
            body["@odata.nextLink"] = json!(format!(
                "http://{}/v1.0/{path}?{}",
                self.addr,
                next.join("&")
            ));
        }
        json_response(StatusCode::OK, body)
    }

    fn connector(
        &self,
        region: &str,
        method: &Method,
        rest: &[&str],
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Response {
        let mut inner = self.lock();
        if inner.rate_limited > 0 {
            inner.rate_limited -= 1;
            let mut response = bf_error(
                StatusCode::TOO_MANY_REQUESTS,
                "Throttled",
                "Too many requests.",
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(inner.retry_after_secs),
            );
            return response;
        }
        let authorized = bearer(headers).is_some_and(|t| {
            inner
                .tokens
                .iter()
                .any(|i| i.value == t && i.audience == Audience::Connector)
        });
        if !authorized {
            // The Bot Connector's answer to a missing or unknown token.
            return json_response(
                StatusCode::UNAUTHORIZED,
                json!({ "message": "Authorization has been denied for this request." }),
            );
        }
        let body_value = if body.is_empty() {
            None
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(v) => Some(v),
                Err(_) => {
                    return bf_error(
                        StatusCode::BAD_REQUEST,
                        "BadArgument",
                        "The request body is not valid JSON.",
                    )
                }
            }
        };
        // A conversation lives in one region; elsewhere it is unknown.
        if let [conversation, ..] = rest {
            let (base, _) = split_thread(conversation);
            if inner
                .conversations
                .get(base)
                .is_some_and(|c| c.region != region)
            {
                return conversation_not_found();
            }
        }
        match (method.clone(), rest) {
            (Method::POST, []) => create_conversation(&mut inner, region, body_value),
            (Method::POST, [conversation, "activities"]) => {
                post_activity(&mut inner, conversation, None, body_value, utf16_size(body))
            }
            (Method::POST, [conversation, "activities", activity_id]) => post_activity(
                &mut inner,
                conversation,
                Some(activity_id),
                body_value,
                utf16_size(body),
            ),
            (Method::PUT, [conversation, "activities", activity_id]) => update_activity(
                &mut inner,
                conversation,
                activity_id,
                body_value,
                utf16_size(body),
            ),
            (Method::GET, [conversation, "members", user]) => {
                get_member(&inner, conversation, user)
            }
            (_, [_, "activities", ..] | [_, "members", ..] | []) => bf_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "The method is not allowed on this resource.",
            ),
            _ => bf_error(StatusCode::NOT_FOUND, "NotFound", "No such resource."),
        }
    }
}

fn key_by_id(inner: &Inner, kid: &str) -> Option<Arc<SimKey>> {
    inner.keys.iter().find(|k| k.kid == kid).cloned()
}

/// The id of the bot's 1:1 conversation with a user (Teams' look like `a:1…`).
fn personal_id(user_id: &str) -> String {
    format!("a:1{}", user_id.trim_start_matches("29:"))
}

fn create_conversation(inner: &mut Inner, region: &str, body: Option<Value>) -> Response {
    let Some(body) = body else {
        return bf_error(
            StatusCode::BAD_REQUEST,
            "BadArgument",
            "Conversation parameters are required.",
        );
    };
    if body["bot"]["id"].as_str() != Some(&format!("28:{APP_ID}")) {
        return bf_error(
            StatusCode::BAD_REQUEST,
            "BadArgument",
            "The bot id is not this bot's.",
        );
    }
    let tenant = body["tenantId"]
        .as_str()
        .or_else(|| body["channelData"]["tenant"]["id"].as_str());
    if tenant != Some(TENANT_ID) {
        return bf_error(
            StatusCode::BAD_REQUEST,
            "BadArgument",
            "A valid tenant id is required.",
        );
    }
    if body["isGroup"].as_bool() == Some(true) {
        return bf_error(
            StatusCode::BAD_REQUEST,
            "BadArgument",
            "Group chats cannot be created by bots.",
        );
    }
    let members = body["members"].as_array().cloned().unwrap_or_default();
    let [member] = members.as_slice() else {
        return bf_error(
            StatusCode::BAD_REQUEST,
            "BadArgument",
            "A 1:1 conversation needs exactly one member.",
        );
    };
    // A member of another tenant has no chat with a bot of ours.
    let Some(user) = member["id"].as_str().filter(|id| {
        inner
            .users
            .get(*id)
            .is_some_and(|u| Some(u.tenant_id.as_str()) == tenant)
    }) else {
        return bf_error(
            StatusCode::NOT_FOUND,
            "MemberNotFoundInConversation",
            "The member is not in this tenant.",
        );
    };
    let home = inner.regions.get(user).map_or(HOME_REGION, String::as_str);
    if home != region {
        return bf_error(
            StatusCode::NOT_FOUND,
            "MemberNotFoundInConversation",
            "The member is not served by this service URL.",
        );
    }
    // Teams answers the existing chat; one the person deleted is opened
    // anew, here under a new id (the bot must use the id it is given).
    let current = inner
        .personal
        .get(user)
        .cloned()
        .unwrap_or_else(|| personal_id(user));
    let id = if !inner.deleted.contains(&current) {
        current
    } else {
        inner.reopened += 1;
        format!("{}.r{}", personal_id(user), inner.reopened)
    };
    let user = user.to_owned();
    let region = region.to_owned();
    inner.personal.insert(user.clone(), id.clone());
    inner
        .conversations
        .entry(id.clone())
        .or_insert(Conversation {
            is_group: false,
            members: vec![user],
            region,
        });
    json_response(StatusCode::CREATED, json!({ "id": id }))
}

/// The region a service URL names (`http://…/amer/` → `amer`).
fn region_of(service_url: &str) -> Option<&str> {
    let path = url::Url::parse(service_url).ok()?;
    let first = path.path_segments()?.next()?.to_owned();
    REGIONS.into_iter().find(|r| *r == first)
}

/// Splits `{channel};messageid={root}` into the channel and the root.
fn split_thread(conversation: &str) -> (&str, Option<&str>) {
    match conversation.split_once(";messageid=") {
        Some((channel, root)) => (channel, Some(root)),
        None => (conversation, None),
    }
}

fn post_activity(
    inner: &mut Inner,
    conversation: &str,
    reply_to: Option<&str>,
    body: Option<Value>,
    size: usize,
) -> Response {
    let (base, thread_root) = split_thread(conversation);
    let Some(found) = inner.conversations.get(base) else {
        return conversation_not_found();
    };
    let is_group = found.is_group;
    let posted = |id: &str| {
        inner
            .activities
            .iter()
            .any(|a| a.conversation_id == base && a.id == id && a.reply_to.is_none())
    };
    let root = if is_group {
        // In a channel only the conversation id threads a post: addressed
        // to the bare channel, even as `…/activities/{root}`, it becomes a
        // new top-level post, as in Teams. A thread whose root is not
        // there is a conversation Teams does not know.
        let started = |root: &str| inner.roots.contains(&(base.to_owned(), root.to_owned()));
        match thread_root {
            Some(root) if !posted(root) && !started(root) => return conversation_not_found(),
            root => root,
        }
    } else {
        let sent = |id: &str| inner.inbound.iter().any(|(c, i)| c == base && i == id);
        match reply_to {
            Some(id) if !posted(id) && !sent(id) => return activity_not_found(),
            id => id,
        }
    };
    let activity = match validate_activity(body, size) {
        Ok(a) => a,
        Err(refusal) => return refusal.into_response(),
    };
    let id = inner.next_id();
    inner.activities.push(SimActivity {
        id: id.clone(),
        conversation_id: base.to_owned(),
        // In a 1:1 chat a reply is just the next message.
        reply_to: root.filter(|_| is_group).map(str::to_owned),
        activity: activity.clone(),
        history: vec![activity],
    });
    json_response(StatusCode::CREATED, json!({ "id": id }))
}

fn update_activity(
    inner: &mut Inner,
    conversation: &str,
    activity_id: &str,
    body: Option<Value>,
    size: usize,
) -> Response {
    let (base, _) = split_thread(conversation);
    if !inner.conversations.contains_key(base) {
        return conversation_not_found();
    }
    let activity = match validate_activity(body, size) {
        Ok(a) => a,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(existing) = inner
        .activities
        .iter_mut()
        .find(|a| a.conversation_id == base && a.id == activity_id)
    else {
        return activity_not_found();
    };
    existing.activity = activity.clone();
    existing.history.push(activity);
    json_response(StatusCode::OK, json!({ "id": activity_id }))
}

fn get_member(inner: &Inner, conversation: &str, user: &str) -> Response {
    let (base, _) = split_thread(conversation);
    let Some(found) = inner.conversations.get(base) else {
        return conversation_not_found();
    };
    let person = inner
        .users
        .get(user)
        .filter(|_| found.members.iter().any(|m| m == user));
    let Some(person) = person else {
        return bf_error(
            StatusCode::NOT_FOUND,
            "MemberNotFoundInConversation",
            "The member was not found in the conversation.",
        );
    };
    let mut member = json!({
        "id": person.id,
        "name": person.name,
        "aadObjectId": person.aad_object_id,
        "userPrincipalName": person.user_principal_name,
        "tenantId": person.tenant_id,
        "userRole": "user"
    });
    if let Some(email) = &person.email {
        member["email"] = Value::String(email.clone());
    }
    json_response(StatusCode::OK, member)
}

/// What Teams refuses in an activity the bot sends.
fn validate_activity(body: Option<Value>, size: usize) -> Result<Value, Refusal> {
    let bad = |message: &'static str| Refusal(StatusCode::BAD_REQUEST, "BadArgument", message);
    if size > MAX_ACTIVITY_UTF16_BYTES {
        return Err(Refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "MessageSizeTooBig",
            "Message size too large.",
        ));
    }
    let Some(activity) = body.filter(Value::is_object) else {
        return Err(bad("An activity object is required."));
    };
    let Some(kind) = activity["type"].as_str().filter(|t| !t.is_empty()) else {
        return Err(bad("Activity type is required."));
    };
    if kind != "message" {
        return Ok(activity);
    }
    let attachments = match &activity["attachments"] {
        Value::Null => Vec::new(),
        Value::Array(items) => items.clone(),
        _ => return Err(bad("attachments must be an array.")),
    };
    let has_text = activity["text"]
        .as_str()
        .is_some_and(|t| !t.trim().is_empty());
    if !has_text && attachments.is_empty() {
        return Err(bad("A message needs text or attachments."));
    }
    for attachment in &attachments {
        let Some(content_type) = attachment["contentType"].as_str() else {
            return Err(bad("An attachment needs a contentType."));
        };
        if content_type == ADAPTIVE_CARD_CONTENT_TYPE {
            let card = &attachment["content"];
            if card["type"].as_str() != Some("AdaptiveCard") {
                return Err(bad(
                    "An Adaptive Card attachment's content must be of type AdaptiveCard.",
                ));
            }
            if card["version"].as_str().is_none_or(str::is_empty) {
                return Err(bad("An Adaptive Card needs a version."));
            }
            for list in ["body", "actions"] {
                if !matches!(card[list], Value::Null | Value::Array(_)) {
                    return Err(bad("An Adaptive Card's body and actions must be arrays."));
                }
            }
        } else if content_type.contains("vnd.microsoft.card") && !attachment["content"].is_object()
        {
            return Err(bad("A card attachment needs content."));
        }
    }
    Ok(activity)
}

/// A refusal in the Bot Framework's error shape.
struct Refusal(StatusCode, &'static str, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        bf_error(self.0, self.1, self.2)
    }
}

fn conversation_not_found() -> Response {
    bf_error(
        StatusCode::NOT_FOUND,
        "ConversationNotFound",
        "Conversation not found.",
    )
}

fn activity_not_found() -> Response {
    bf_error(
        StatusCode::NOT_FOUND,
        "ActivityNotFoundInConversation",
        "The activity was not found in the conversation.",
    )
}

/// A directory object among a group's transitive members.
enum Member {
    User(String),
    Group(String),
}

/// The members of `group` and of every group nested in it, each once, in
/// the order they were added; groups only when not cast to users.
fn transitive_members(inner: &Inner, group: &str, users_only: bool) -> Vec<Member> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let mut stack = vec![group.to_owned()];
    seen.insert(group.to_owned());
    while let Some(current) = stack.pop() {
        for member in inner.groups.get(&current).into_iter().flatten() {
            if !seen.insert(member.clone()) {
                continue;
            }
            if inner.groups.contains_key(member) {
                if !users_only {
                    out.push(Member::Group(member.clone()));
                }
                stack.push(member.clone());
            } else {
                out.push(Member::User(member.clone()));
            }
        }
    }
    out
}

/// An opaque page token for `group` from `offset` on.
fn skiptoken(group: &str, offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{group}|{offset}"))
}

fn parse_skiptoken(token: &str, group: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (for_group, offset) = text.split_once('|')?;
    (for_group == group).then(|| offset.parse().ok()).flatten()
}

/// Whether `text` is a GUID, as Entra ID object ids are.
fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A refusal in Microsoft Graph's error shape.
fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let request_id = uuid_like();
    json_response(
        status,
        json!({
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                    "request-id": request_id,
                    "client-request-id": request_id
                }
            }
        }),
    )
}

fn uuid_like() -> String {
    let b: [u8; 16] = rand::random();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn bf_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        json!({ "error": { "code": code, "message": message } }),
    )
}

fn entra_error(status: StatusCode, error: &str, code: u64, description: &str) -> Response {
    json_response(
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}"),
            "error_codes": [code]
        }),
    )
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn generate_key(endorsements: &[&str]) -> SimKey {
    use rsa::pkcs8::EncodePublicKey;
    let mut rng = rand::rng();
    let private = rsa::PrivateKey::new(&mut rng, 2048).expect("a 2048-bit RSA key");
    let der = private.to_pkcs1_der().expect("PKCS#1 DER of the key");
    let public = private.to_public_key();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let kid = b64(&rand::random::<[u8; 12]>());
    SimKey {
        encoding: EncodingKey::from_rsa_der(der.as_bytes()),
        public_der: public
            .to_public_key_der()
            .expect("SPKI DER of the public key")
            .into_vec(),
        n: b64(&public.n_bytes()),
        e: b64(&public.e_bytes()),
        endorsements: endorsements.iter().map(|e| (*e).to_owned()).collect(),
        kid,
    }
}

async fn handle(
    State(fake): State<FakeBotFramework>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let segments: Vec<String> = uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let path = format!("/{}", segments.join("/"));
    let (down, hanging) = {
        let mut inner = fake.lock();
        let mut recorded = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or_else(|_| {
                let form: BTreeMap<String, String> =
                    serde_urlencoded::from_bytes(&body).unwrap_or_default();
                json!(form)
            })
        };
        if recorded.get("client_secret").is_some() {
            recorded["client_secret"] = Value::String("***".into());
        }
        inner.calls.push(TeamsCall {
            method: method.to_string(),
            path,
            body: recorded,
            bearer: bearer(&headers),
            query: uri.query().unwrap_or_default().to_owned(),
        });
        (inner.down, inner.hanging)
    };
    if hanging {
        std::future::pending::<()>().await;
    }
    if down {
        return bf_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "Service unavailable.",
        );
    }
    fake.route(
        &method,
        &segments,
        uri.query().unwrap_or_default(),
        &headers,
        &body,
    )
}
