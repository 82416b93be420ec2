//! Teams as the engine's [`Chat`]: notices become Bot Connector calls.
//!
//! - The approval card is posted to `teams.approvals_conversation`; its
//!   reference is `"{conversationId}|{activityId}"`. Refreshes replace that
//!   activity in place (`PUT`), thread replies and countdowns go under it.
//! - Direct messages go to the person's 1:1 chat with the bot: the one
//!   their conversation reference names (kept from the activities they
//!   send, see [`ConversationReference`]), or one opened with
//!   `POST /v3/conversations` and their tenant (Teams answers the existing
//!   chat when there is one), which is then kept. A kept chat the
//!   connector no longer knows (404: the person deleted it) is opened
//!   again, once, and the new one kept.
//! - Private answers go where the engine says (`reply_to`, see
//!   [`Destination`]): the conversation a command came from, or the 1:1
//!   chat of a person whose click was refused. Teams has no ephemeral
//!   messages, so the private answer to a command in a channel lands in the
//!   thread of that command.
//! - A person's email comes from the member look-up in the conversation
//!   the command came from; approvers (`teams.approvers`: Entra ID object
//!   ids or emails) are checked at every click, by looking the clicker up
//!   in the approvals channel, so a changed email or a person who left the
//!   channel counts at once. Members of `teams.approver_groups` (Entra ID
//!   groups, nested ones included) approve too; the groups are asked of
//!   Microsoft Graph at every click, uncached, as Slack's user groups are,
//!   so a person taken out of a group can no longer decide.
//!
//! Calls about the approvals channel go to the configured
//! `teams.service_url`; calls about a person's own conversations (their
//! 1:1 chat, the chat or thread a command came from, the answer to it) go
//! to the `serviceUrl` their activities named, as Microsoft asks bots to
//! do, and to `teams.service_url` while none is known. Every call is bounded
//! by `teams.timeout` (an approver check by at most 3 s: it runs inside the
//! invoke, which Teams abandons after about 5 s). Display names learnt from
//! member look-ups are kept in memory to show people by name; they are
//! not secrets, and a restart only means looking them up again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use super::connector::{Connector, TeamsMember};
use super::graph::{Graph, GroupUser};
use super::render::{self, People};
use super::TeamsSettings;
use crate::domain::{ChatUserId, ConversationReference, Email, Event, Notice, Request};
use crate::engine::ports::{Approver, Chat, ChatError, Clock, Store};
use crate::engine::Reply;

/// The most an approver check may take inside an invoke.
const CLICK_BUDGET: Duration = Duration::from_secs(3);

/// Where a private answer goes, as stored in `reply_to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Into this conversation (a 1:1 chat, or a channel thread
    /// `19:…;messageid=…`).
    Conversation(String),
    /// Into the bot's 1:1 chat with this person (`29:…`).
    Person(String),
}

impl Destination {
    /// The stored form: `conv:{id}` or `user:{id}`.
    pub fn encode(&self) -> String {
        match self {
            Self::Conversation(id) => format!("conv:{id}"),
            Self::Person(id) => format!("user:{id}"),
        }
    }

    /// Reads the stored form.
    pub fn decode(text: &str) -> Option<Self> {
        if let Some(id) = text.strip_prefix("conv:") {
            return Some(Self::Conversation(id.to_owned()));
        }
        text.strip_prefix("user:")
            .map(|id| Self::Person(id.to_owned()))
    }
}

/// The channel conversation without a thread's `;messageid=…`.
fn channel_of(conversation_id: &str) -> &str {
    conversation_id
        .split_once(";messageid=")
        .map_or(conversation_id, |(channel, _)| channel)
}

/// Teams, as the engine's `Chat`.
pub struct TeamsChat {
    connector: Connector,
    /// Microsoft Graph, when `teams.approver_groups` names groups.
    graph: Option<Graph>,
    settings: TeamsSettings,
    /// Where people's conversation references are kept.
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// User id → display name or email, from member look-ups.
    names: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for TeamsChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeamsChat")
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

async fn bounded<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, ChatError>>,
) -> Result<T, ChatError> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_| Err(ChatError::Transient("Teams did not answer in time".into())))
}

impl TeamsChat {
    /// An adapter for these settings; `clock` decides when the connector's
    /// token is due for renewal; `store` keeps people's conversation
    /// references.
    pub fn new(settings: TeamsSettings, clock: Arc<dyn Clock>, store: Arc<dyn Store>) -> Self {
        Self {
            connector: Connector::new(&settings, clock.clone()),
            graph: (!settings.approver_groups.is_empty())
                .then(|| Graph::new(&settings, clock.clone())),
            settings,
            store,
            clock,
            names: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps how to reach a person, from an activity of theirs whose token
    /// was verified. A failure only costs the shortcut: direct messages
    /// then open the 1:1 chat as before.
    pub async fn note_reference(&self, reference: &ConversationReference) {
        if let Err(e) = self.store.remember_conversation_reference(reference).await {
            tracing::warn!(error = %e, "could not keep a Teams conversation reference");
        }
    }

    /// The person's conversation reference, when one is kept.
    async fn reference_of(&self, user: &ChatUserId) -> Option<ConversationReference> {
        match self.store.conversation_reference(user).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "could not read a Teams conversation reference");
                None
            }
        }
    }

    /// The Bot Connector that serves `user`: the `serviceUrl` their own
    /// activities named, or `teams.service_url` when none did.
    async fn service_url_of(&self, user: &ChatUserId) -> String {
        self.reference_of(user)
            .await
            .map_or_else(|| self.service_url().to_owned(), |r| r.service_url)
    }

    /// The settings in force.
    pub fn settings(&self) -> &TeamsSettings {
        &self.settings
    }

    fn service_url(&self) -> &str {
        &self.settings.service_url
    }

    /// Sends the immediate answer to a command as a reply to the activity
    /// that carried it (`service_url` and `conversation_id` as the activity
    /// named them).
    pub async fn answer(
        &self,
        service_url: &str,
        conversation_id: &str,
        activity_id: &str,
        reply: &Reply,
    ) -> Result<(), ChatError> {
        let activity = render::reply_activity(reply, &People::new());
        bounded(
            self.settings.timeout,
            self.connector
                .reply_to_activity(service_url, conversation_id, activity_id, &activity),
        )
        .await
        .map(|_| ())
    }

    /// The approval card as it should look now, for an invoke's answer:
    /// people are shown by the names already known, without look-ups, so
    /// the answer stays inside Teams' 5 seconds.
    pub fn current_card(&self, request: &Request) -> serde_json::Value {
        render::approval_card(request, &self.known_people(request, None))
    }

    fn remember_name(&self, member: &TeamsMember) {
        let shown = member
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or_else(|| member.email.clone());
        if let Some(shown) = shown {
            self.names
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(member.id.clone(), shown);
        }
    }

    fn known_name(&self, id: &str) -> Option<String> {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Everyone the request (and `event`) names, as far as known.
    fn known_people(&self, request: &Request, event: Option<&Event>) -> People {
        let mut people = People::new();
        for user in named(request, event) {
            if let Some(name) = self.known_name(user.as_str()) {
                people.insert(user, name);
            } else if user == request.requester {
                if let Some(email) = request.email() {
                    people.insert(user, email.as_str().to_owned());
                }
            }
        }
        people
    }

    /// [`known_people`](Self::known_people), after looking up in the
    /// approvals channel whoever is not known yet. A failed look-up only
    /// costs the name.
    async fn people(&self, request: &Request, event: Option<&Event>) -> People {
        for user in named(request, event) {
            if self.known_name(user.as_str()).is_some() {
                continue;
            }
            match self
                .connector
                .member(
                    self.service_url(),
                    &self.settings.approvals_conversation,
                    user.as_str(),
                )
                .await
            {
                Ok(Some(member)) => self.remember_name(&member),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "a Teams name look-up failed"),
            }
        }
        self.known_people(request, event)
    }

    fn card_reference(request: &Request) -> Result<(String, String), ChatError> {
        let reference = request
            .approval_message
            .as_deref()
            .ok_or_else(|| ChatError::Permanent("no approval message".into()))?;
        let (conversation, activity) = reference
            .split_once('|')
            .ok_or_else(|| ChatError::Permanent("bad Teams message reference".into()))?;
        Ok((conversation.to_owned(), activity.to_owned()))
    }

    /// The bot's 1:1 chat with `user_id` and the Bot Connector it lives
    /// on: the stored reference's (`true`: it came from the store), or one
    /// opened on the person's service URL with their tenant, and kept.
    async fn personal_conversation(
        &self,
        user_id: &str,
    ) -> Result<(String, String, bool), ChatError> {
        let known = self.reference_of(&ChatUserId::teams(user_id)).await;
        if let Some(ConversationReference {
            service_url,
            conversation_id: Some(conversation),
            ..
        }) = &known
        {
            return Ok((service_url.clone(), conversation.clone(), true));
        }
        let (service_url, conversation) = self.open_personal_conversation(user_id, known).await?;
        Ok((service_url, conversation, false))
    }

    /// Opens the 1:1 chat with `user_id` (`POST /v3/conversations`; Teams
    /// answers the existing chat when there is one) on the service URL of
    /// their reference `known`, with their tenant, and keeps its id.
    async fn open_personal_conversation(
        &self,
        user_id: &str,
        known: Option<ConversationReference>,
    ) -> Result<(String, String), ChatError> {
        let user = ChatUserId::teams(user_id);
        let service_url = known
            .as_ref()
            .map_or_else(|| self.service_url().to_owned(), |r| r.service_url.clone());
        let tenant = known
            .as_ref()
            .and_then(|r| r.tenant_id.clone())
            .or_else(|| self.settings.tenant_id.clone())
            .ok_or_else(|| {
                ChatError::Permanent(
                    "teams.tenant_id is needed to message a person directly".into(),
                )
            })?;
        let conversation = self
            .connector
            .create_personal_conversation(&service_url, user_id, &tenant)
            .await?;
        self.note_reference(&ConversationReference {
            user,
            service_url: service_url.clone(),
            conversation_id: Some(conversation.clone()),
            tenant_id: Some(tenant),
            // Not a sighting of the person: any newer one still wins.
            seen_at: known.map_or_else(|| self.clock.now(), |r| r.seen_at),
        })
        .await;
        Ok((service_url, conversation))
    }

    /// Sends `activity` into the bot's 1:1 chat with `user_id`. When the
    /// kept chat is gone (404: the person deleted it), it is opened again,
    /// once, and the new one is kept and used.
    async fn send_to_person(
        &self,
        user_id: &str,
        activity: &serde_json::Value,
    ) -> Result<(), ChatError> {
        let (service_url, conversation, kept) = self.personal_conversation(user_id).await?;
        let sent = self
            .connector
            .send_if_found(&service_url, &conversation, activity)
            .await?;
        if sent.is_some() {
            return Ok(());
        }
        if !kept {
            return Err(ChatError::Permanent(
                "Teams: the 1:1 chat just opened was not found (404)".into(),
            ));
        }
        tracing::info!("a kept Teams 1:1 chat is gone; opening it again");
        let known = self.reference_of(&ChatUserId::teams(user_id)).await;
        let (service_url, conversation) = self.open_personal_conversation(user_id, known).await?;
        self.connector
            .send_to_conversation(&service_url, &conversation, activity)
            .await?;
        Ok(())
    }

    /// Sends `activity` to `destination`; a conversation the requester's
    /// command came from is on the requester's service URL.
    async fn send_to(
        &self,
        request: &Request,
        destination: &Destination,
        activity: &serde_json::Value,
    ) -> Result<(), ChatError> {
        let (service_url, conversation) = match destination {
            Destination::Conversation(id)
                if channel_of(id) == self.settings.approvals_conversation =>
            {
                (self.service_url().to_owned(), id.clone())
            }
            Destination::Conversation(id) => {
                (self.service_url_of(&request.requester).await, id.clone())
            }
            Destination::Person(user) => return self.send_to_person(user, activity).await,
        };
        self.connector
            .send_to_conversation(&service_url, &conversation, activity)
            .await?;
        Ok(())
    }

    async fn member_of(
        &self,
        service_url: &str,
        conversation_id: &str,
        user: &ChatUserId,
    ) -> Result<Option<TeamsMember>, ChatError> {
        let member = self
            .connector
            .member(service_url, channel_of(conversation_id), user.as_str())
            .await?;
        if let Some(member) = &member {
            self.remember_name(member);
        }
        Ok(member)
    }

    async fn deliver_unbounded(
        &self,
        request: &Request,
        notice: &Notice,
    ) -> Result<Option<String>, ChatError> {
        let service_url = self.service_url();
        match notice {
            Notice::ApprovalCard => {
                let people = self.people(request, None).await;
                let conversation = &self.settings.approvals_conversation;
                let id = self
                    .connector
                    .send_to_conversation(
                        service_url,
                        conversation,
                        &render::approval_activity(request, &people),
                    )
                    .await?;
                Ok(Some(format!("{conversation}|{id}")))
            }
            Notice::RefreshCard => {
                let (conversation, activity) = Self::card_reference(request)?;
                let people = self.people(request, None).await;
                self.connector
                    .update_activity(
                        service_url,
                        &conversation,
                        &activity,
                        &render::approval_activity(request, &people),
                    )
                    .await?;
                Ok(None)
            }
            Notice::Thread { event } => {
                let (conversation, root) = Self::card_reference(request)?;
                let people = self.people(request, Some(event)).await;
                self.connector
                    .reply_to_activity(
                        service_url,
                        &conversation,
                        &root,
                        &render::thread_activity(request, event, &people),
                    )
                    .await?;
                Ok(None)
            }
            Notice::Direct { event } => {
                let people = self.people(request, Some(event)).await;
                let destination = Destination::Person(request.requester.as_str().to_owned());
                self.send_to(
                    request,
                    &destination,
                    &render::direct_activity(request, event, &people),
                )
                .await?;
                Ok(None)
            }
            Notice::Private { reply_to, body } => {
                let people = self.people(request, None).await;
                let destination = match reply_to.as_ref().or(request.reply_to.as_ref()) {
                    Some(stored) => Destination::decode(stored)
                        .ok_or_else(|| ChatError::Permanent("not a Teams destination".into()))?,
                    None => Destination::Person(request.requester.as_str().to_owned()),
                };
                self.send_to(
                    request,
                    &destination,
                    &render::private_activity(request, body, &people),
                )
                .await?;
                Ok(None)
            }
        }
    }
}

impl TeamsChat {
    /// The clicker is looked up in the approvals channel (someone who is
    /// not in it decides nothing); then the listed approvers; then every
    /// group at once, each on its own, as for Slack's user groups: a group
    /// that fails to resolve must not hide a member of another, and only
    /// when the person is in none of the groups that answered, and some
    /// group did not, is the answer unknown.
    async fn is_approver_unbounded(
        &self,
        user: &ChatUserId,
    ) -> Result<Option<TeamsMember>, ChatError> {
        let approvals = self.settings.approvals_conversation.clone();
        let Some(member) = self.member_of(self.service_url(), &approvals, user).await? else {
            return Ok(None);
        };
        if is_listed(&self.settings.approvers, &member) {
            return Ok(Some(member));
        }
        let Some(graph) = &self.graph else {
            return Ok(None);
        };
        let groups = self
            .settings
            .approver_groups
            .iter()
            .map(|group| graph.group_has(group, |u| is_them(&member, u)));
        let mut failed = None;
        let mut listed = false;
        for found in futures::future::join_all(groups).await {
            match found {
                Ok(true) => listed = true,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "an approvers' Entra ID group did not resolve");
                    failed = Some(e);
                }
            }
        }
        match (listed, failed) {
            (true, _) => Ok(Some(member)),
            (false, Some(e)) => Err(e),
            (false, None) => Ok(None),
        }
    }
}

/// Whether the group member `user` is the channel member `member`: by
/// Entra ID object id, or, when Teams named none, by mail or sign-in name.
fn is_them(member: &TeamsMember, user: &GroupUser) -> bool {
    if let Some(id) = &member.aad_object_id {
        return id.eq_ignore_ascii_case(&user.id);
    }
    let theirs = [user.mail.as_deref(), user.user_principal_name.as_deref()];
    let ours = [
        member.email.as_deref(),
        member.user_principal_name.as_deref(),
    ];
    ours.iter()
        .flatten()
        .any(|a| theirs.iter().flatten().any(|b| a.eq_ignore_ascii_case(b)))
}

/// A member's email as the members API gives it, else their sign-in name.
fn member_email(member: &TeamsMember) -> Option<Email> {
    member
        .email
        .as_deref()
        .and_then(Email::parse)
        .or_else(|| member.user_principal_name.as_deref().and_then(Email::parse))
}

/// The people a message about `request` (and `event`) may name.
fn named(request: &Request, event: Option<&Event>) -> Vec<ChatUserId> {
    let mut people = vec![request.requester.clone()];
    people.extend(request.decided_by().cloned());
    people.extend(request.ended_by().cloned());
    match event {
        Some(Event::Approved { by } | Event::Denied { by }) => people.push(by.clone()),
        Some(Event::Ended { by: Some(by), .. }) => people.push(by.clone()),
        _ => {}
    }
    people.sort();
    people.dedup();
    people
}

/// Whether `approvers` (object ids or emails, any case) name `member`.
fn is_listed(approvers: &[String], member: &TeamsMember) -> bool {
    let names = [
        member.aad_object_id.as_deref(),
        member.email.as_deref(),
        member.user_principal_name.as_deref(),
    ];
    approvers.iter().any(|approver| {
        names
            .iter()
            .flatten()
            .any(|name| name.eq_ignore_ascii_case(approver.trim()))
    })
}

#[async_trait]
impl Chat for TeamsChat {
    async fn user_email(&self, request: &Request) -> Result<Option<Email>, ChatError> {
        let approvals = &self.settings.approvals_conversation;
        let (service_url, conversation) =
            match request.reply_to.as_deref().and_then(Destination::decode) {
                Some(Destination::Conversation(id)) if channel_of(&id) != approvals => {
                    (self.service_url_of(&request.requester).await, id)
                }
                _ => (self.service_url().to_owned(), approvals.clone()),
            };
        let member = bounded(
            self.settings.timeout,
            self.member_of(&service_url, &conversation, &request.requester),
        )
        .await?;
        Ok(member.as_ref().and_then(member_email))
    }

    async fn approver(&self, user: &ChatUserId) -> Result<Option<Approver>, ChatError> {
        let limit = self.settings.timeout.min(CLICK_BUDGET);
        let member = bounded(limit, self.is_approver_unbounded(user)).await?;
        Ok(member.map(|m| Approver {
            email: member_email(&m),
        }))
    }

    async fn deliver(
        &self,
        request: &Request,
        notice: &Notice,
    ) -> Result<Option<String>, ChatError> {
        bounded(
            self.settings.timeout * 3,
            self.deliver_unbounded(request, notice),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(aad: &str, email: Option<&str>, upn: &str) -> TeamsMember {
        TeamsMember {
            id: "29:x".into(),
            name: Some("X".into()),
            aad_object_id: Some(aad.into()),
            email: email.map(str::to_owned),
            user_principal_name: Some(upn.into()),
            tenant_id: None,
        }
    }

    #[test]
    fn approvers_are_named_by_object_id_or_email_in_any_case() {
        let approvers = vec![
            "0000aaaa-0000-0000-0000-000000000001".to_string(),
            "Grace@Example.com".to_string(),
        ];
        assert!(is_listed(
            &approvers,
            &member(
                "0000AAAA-0000-0000-0000-000000000001",
                None,
                "x@example.com"
            )
        ));
        assert!(is_listed(
            &approvers,
            &member("other", Some("grace@example.com"), "g@example.com")
        ));
        assert!(is_listed(
            &approvers,
            &member("other", None, "grace@example.com")
        ));
        assert!(!is_listed(
            &approvers,
            &member("other", Some("mallory@example.com"), "mallory@example.com")
        ));
    }

    #[test]
    fn destinations_survive_being_stored() {
        for d in [
            Destination::Conversation("19:a@thread.tacv2;messageid=1".into()),
            Destination::Person("29:ada".into()),
        ] {
            assert_eq!(Destination::decode(&d.encode()), Some(d));
        }
        assert_eq!(Destination::decode("https://hooks.slack.com/x"), None);
    }
}
