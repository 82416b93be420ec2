//! Teams as the engine's [`Chat`]: notices become Bot Connector calls.
//!
//! - The approval card is posted to `teams.approvals_conversation`; its
//!   reference is `"{conversationId}|{activityId}"`. Refreshes replace that
//!   activity in place (`PUT`); thread replies and countdowns go under it,
//!   posted to the conversation `{channel};messageid={card id}`, which is
//!   how Teams threads a post (addressed to the bare channel, even as a
//!   reply to the card, a post shows up at the top of the channel).
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
//!   ids, or emails) are checked at every click, by looking the clicker up
//!   in the approvals channel, so a changed email or a person who left the
//!   channel counts at once. Either counts only for a member whom the
//!   members API places in our tenant (`tenantId`): guests and
//!   shared-channel members from other tenants sit in our channels, with
//!   whatever mail their own tenant gave them, and neither ask nor decide. Members of `teams.approver_groups` (Entra ID
//!   groups, nested ones included) approve too; the groups are asked of
//!   Microsoft Graph at every click, uncached, as Slack's user groups are
//!   (Graph's own index for the query may lag a change briefly; see
//!   [`graph`](super::graph)).
//!
//! Every call goes to the `serviceUrl` that Teams' activities named for
//! that conversation, as Microsoft asks bots to do, and to the configured
//! `teams.service_url` only while none is known: about the approvals
//! channel (card, thread, member look-ups), the one its own activities
//! named (clicks, commands, the bot being added to it), kept in the store
//! under the channel's id; about a person's own conversations (their 1:1
//! chat, the chat or thread a command came from, the answer to it), the
//! one their activities named. Every call is bounded
//! by `teams.timeout` (an approver check by at most 3 s: it runs inside the
//! invoke, which Teams abandons after about 5 s). Display names learnt from
//! member look-ups are kept in memory to show people by name; they are
//! not secrets, and a restart only means looking them up again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use super::connector::{thread_conversation_id, Connector, TeamsMember};
use super::graph::{Graph, GroupUser};
use super::render::{self, People};
use super::TeamsSettings;
use crate::domain::{ChatUserId, ConversationReference, Email, Event, Notice, Request};
use crate::engine::ports::{Approver, Chat, ChatError, Clock, Store};
use crate::engine::Reply;
use crate::metrics::Metrics;

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

/// Where answers to a command posted in a channel go: the thread it
/// belongs to (`{channel};messageid={root}`), which is the command itself
/// when it started one. Teams names the thread in the conversation id of
/// a channel message; one that names none is taken as its own root.
pub fn command_thread(conversation_id: &str, activity_id: &str) -> String {
    match conversation_id.split_once(";messageid=") {
        Some(_) => conversation_id.to_owned(),
        None => thread_conversation_id(conversation_id, activity_id),
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
    /// The approvals channel's `serviceUrl` this process last kept, so an
    /// activity in the channel writes only when it changed.
    approvals_seen: Mutex<Option<String>>,
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
            approvals_seen: Mutex::new(None),
        }
    }

    /// The same adapter, counting every Bot Connector and Graph call into
    /// `metrics`.
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        Self {
            connector: self.connector.with_metrics(metrics.clone()),
            graph: self.graph.map(|graph| graph.with_metrics(metrics)),
            ..self
        }
    }

    /// Under what the approvals channel's own conversation reference is
    /// kept: its conversation id (`19:…`), which no person's id (`29:…`)
    /// can be.
    fn approvals_key(&self) -> ChatUserId {
        ChatUserId::teams(&self.settings.approvals_conversation)
    }

    /// Keeps the `serviceUrl` that a verified activity in the approvals
    /// channel (a click, a command, the bot being added) named, so calls
    /// about the channel go where Teams serves it. Written only when it
    /// differs from what this process last kept; a failure only costs the
    /// shortcut.
    pub async fn note_approvals_service_url(&self, service_url: &str) {
        if service_url.is_empty() {
            return;
        }
        {
            let mut seen = self
                .approvals_seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if seen.as_deref() == Some(service_url) {
                return;
            }
            *seen = Some(service_url.to_owned());
        }
        self.note_reference(&ConversationReference {
            user: self.approvals_key(),
            service_url: service_url.to_owned(),
            conversation_id: Some(self.settings.approvals_conversation.clone()),
            tenant_id: Some(self.settings.tenant_id.clone()),
            seen_at: self.clock.now(),
        })
        .await;
    }

    /// The Bot Connector that serves the approvals channel: the
    /// `serviceUrl` its activities named (read from the store each time, so
    /// a replica learns what another kept), or `teams.service_url` while
    /// none did.
    async fn approvals_service_url(&self) -> String {
        self.service_url_of(&self.approvals_key()).await
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
    /// named them; in a channel, the command's thread, see
    /// [`command_thread`]).
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
                    &self.approvals_service_url().await,
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
        // Only our tenant's people are served, so the chat is in our tenant.
        let tenant = self.settings.tenant_id.clone();
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
                (self.approvals_service_url().await, id.clone())
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
        match notice {
            Notice::ApprovalCard => {
                let people = self.people(request, None).await;
                let conversation = &self.settings.approvals_conversation;
                let id = self
                    .connector
                    .send_to_conversation(
                        &self.approvals_service_url().await,
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
                        &self.approvals_service_url().await,
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
                // Teams threads a post by its conversation id alone; a reply
                // to the bare channel would become a post of its own.
                self.connector
                    .send_to_conversation(
                        &self.approvals_service_url().await,
                        &thread_conversation_id(&conversation, &root),
                        &match event {
                            Event::ApprovalReminder { expires_at } => {
                                let approvers = render::approver_names(
                                    &self.settings.approvers,
                                    self.settings.approver_groups.len(),
                                );
                                render::approval_reminder_activity(
                                    request,
                                    &approvers,
                                    *expires_at,
                                    &people,
                                )
                            }
                            _ => render::thread_activity(request, event, &people),
                        },
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
    /// The approver `user` is, as the members API describes them, or `None`
    /// when they may not decide. The clicker is looked up in the approvals
    /// channel (someone who is not in it decides nothing) and must be of
    /// our tenant (guests and shared-channel members from other tenants sit
    /// in our channels too); then the listed approvers; then every group at
    /// once, each on its own, as for Slack's user groups: a group that
    /// fails to resolve must not hide a member of another, and only when
    /// the person is in none of the groups that answered, and some group
    /// did not, is the answer unknown.
    ///
    /// The member handed back is of our tenant, so their own email
    /// ([`TeamsMember::own_email`]) is one our directory vouches for.
    pub async fn is_approver_unbounded(
        &self,
        user: &ChatUserId,
    ) -> Result<Option<TeamsMember>, ChatError> {
        let approvals = self.settings.approvals_conversation.clone();
        let service_url = self.approvals_service_url().await;
        let Some(member) = self.member_of(&service_url, &approvals, user).await? else {
            return Ok(None);
        };
        if !is_ours(&self.settings, &member) {
            tracing::warn!("a member of another tenant tried to decide; refused");
            return Ok(None);
        }
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
        for found in futures::future::join_all(groups).await {
            match found {
                Ok(true) => return Ok(Some(member)),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "an approvers' Entra ID group did not resolve");
                    failed = Some(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }
}

/// Whether the members API names our tenant as `member`'s own. A member
/// it names no tenant for is not ours.
fn is_ours(settings: &TeamsSettings, member: &TeamsMember) -> bool {
    member
        .tenant_id
        .as_deref()
        .is_some_and(|t| settings.is_our_tenant(t))
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

/// Whether `approvers` name `member` (any case): an entry with an `@` by
/// their mail or sign-in name, any other by their Entra ID object id. The
/// caller has made sure the member is of our tenant, where an email names
/// one person; elsewhere anyone may carry it.
fn is_listed(approvers: &[String], member: &TeamsMember) -> bool {
    let same = |a: Option<&str>, b: &str| a.is_some_and(|a| a.eq_ignore_ascii_case(b));
    approvers.iter().map(|a| a.trim()).any(|approver| {
        if approver.contains('@') {
            same(member.email.as_deref(), approver)
                || same(member.user_principal_name.as_deref(), approver)
        } else {
            same(member.aad_object_id.as_deref(), approver)
        }
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
                _ => (self.approvals_service_url().await, approvals.clone()),
            };
        let member = bounded(
            self.settings.timeout,
            self.member_of(&service_url, &conversation, &request.requester),
        )
        .await?;
        match member {
            Some(m) if is_ours(&self.settings, &m) => Ok(m.own_email()),
            Some(_) => {
                // Their mail is whatever their own tenant says it is.
                tracing::warn!("a member of another tenant asked for admin rights; refused");
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn approver(&self, user: &ChatUserId) -> Result<Option<Approver>, ChatError> {
        let limit = self.settings.timeout.min(CLICK_BUDGET);
        let member = bounded(limit, self.is_approver_unbounded(user)).await?;
        Ok(member.map(|m| Approver {
            email: m.own_email(),
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

    const OURS: &str = "72f988bf-0000-4000-8000-0000000000aa";

    fn member(aad: &str, email: Option<&str>, upn: &str) -> TeamsMember {
        TeamsMember {
            id: "29:x".into(),
            name: Some("X".into()),
            aad_object_id: Some(aad.into()),
            email: email.map(str::to_owned),
            user_principal_name: Some(upn.into()),
            tenant_id: Some(OURS.into()),
        }
    }

    #[test]
    fn only_a_member_the_members_api_places_in_our_tenant_is_ours() {
        let settings = TeamsSettings::new(
            "app",
            secrecy::SecretString::from("pw"),
            OURS,
            "19:a@thread.tacv2",
            "https://s/",
        );
        let mut m = member("aad-1", Some("grace@example.com"), "grace@example.com");
        assert!(is_ours(&settings, &m));
        m.tenant_id = Some(OURS.to_ascii_uppercase());
        assert!(is_ours(&settings, &m));
        m.tenant_id = Some("0badc0de-0000-4000-8000-0000000000ff".into());
        assert!(!is_ours(&settings, &m));
        m.tenant_id = None;
        assert!(!is_ours(&settings, &m));
    }

    #[test]
    fn an_object_id_entry_matches_only_the_object_id_and_an_email_entry_only_mail_or_upn() {
        let by_id = vec!["0000aaaa-0000-0000-0000-000000000001".to_string()];
        let by_mail = vec!["grace@example.com".to_string()];
        // An object id that happens to sit in a mail field does not count.
        let odd = member(
            "other",
            Some("0000aaaa-0000-0000-0000-000000000001"),
            "x@example.com",
        );
        assert!(!is_listed(&by_id, &odd));
        // Nor does an email that happens to be someone's object id.
        let odd = member("grace@example.com", None, "x@example.com");
        assert!(!is_listed(&by_mail, &odd));
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
    fn a_command_in_a_channel_is_answered_in_its_own_thread() {
        assert_eq!(
            command_thread("19:c@thread.tacv2;messageid=17", "18"),
            "19:c@thread.tacv2;messageid=17"
        );
        assert_eq!(
            command_thread("19:c@thread.tacv2", "18"),
            "19:c@thread.tacv2;messageid=18"
        );
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
