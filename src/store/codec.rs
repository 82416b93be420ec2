//! The one row codec of both backends: how a request, an audit line, a job
//! and a conversation reference become columns and come back.
//!
//! A request keeps as real columns only what queries filter or order on
//! (`id`, `platform`, `requester`, `state`, `created_at`, `version`,
//! `delivery`, `jc_user`, `system_id`) and the approval message, which the
//! outbox writes outside transitions; everything else, the stage with its
//! data first, is one JSON document in `data` (`TEXT` on SQLite, `JSONB` on
//! PostgreSQL) with a format version `v`. Migrations 0008 built it from the
//! columns it replaced.
//!
//! Invariant: both backends read and write requests only through
//! [`encode`] and [`RequestRow::decode`], so they cannot drift apart, and a
//! stage's data is written whole with the stage (there is no column a
//! transition could forget).

use anyhow::Context;
use chrono::DateTime;
use serde::{Deserialize, Serialize};

use crate::domain::{
    AuditAction, AuditEntry, ChatUserId, ConversationReference, GrantDuration, Platform, Request,
    RequestId, RequestState, Stage, Timestamp,
};
use crate::engine::ports::{Job, JobKind, OutboxMessage};

/// The format of `requests.data` this version writes (and the only one it
/// reads).
pub(super) const DATA_VERSION: u32 = 1;

/// A time as the store keeps it: Unix milliseconds.
pub(super) fn ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

/// A stored time.
pub(super) fn ts(ms: i64) -> Timestamp {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The stored names of the states that satisfy `pick`, as an SQL list.
pub(super) fn state_list(pick: fn(RequestState) -> bool) -> String {
    RequestState::ALL
        .into_iter()
        .filter(|s| pick(*s))
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `requests.data`, as written.
#[derive(Serialize)]
struct DataOut<'a> {
    v: u32,
    reply_to: &'a Option<String>,
    duration_secs: u64,
    words: &'a [String],
    reason: &'a str,
    stage: &'a Stage,
}

/// `requests.data`, as read.
#[derive(Deserialize)]
struct DataIn {
    v: u32,
    reply_to: Option<String>,
    duration_secs: u64,
    words: Vec<String>,
    reason: String,
    stage: Stage,
}

/// A request as columns, ready to bind.
pub(super) struct EncodedRequest<'a> {
    /// `id`.
    pub id: &'a str,
    /// `platform`.
    pub platform: &'static str,
    /// `requester`.
    pub requester: &'a str,
    /// `state`: the stage's name.
    pub state: &'static str,
    /// `created_at`.
    pub created_at: i64,
    /// `jc_user`: the account the request holds (the one-open-request-
    /// per-device index and look-up).
    pub jc_user: Option<&'a str>,
    /// `system_id`: the device it holds.
    pub system_id: Option<&'a str>,
    /// `data`: everything else, as JSON.
    pub data: String,
    /// `version`.
    pub version: i64,
}

/// The columns of `r`.
pub(super) fn encode(r: &Request) -> anyhow::Result<EncodedRequest<'_>> {
    let (jc_user, system_id) = r.stage.holds();
    let data = serde_json::to_string(&DataOut {
        v: DATA_VERSION,
        reply_to: &r.reply_to,
        duration_secs: r.duration.as_secs(),
        words: &r.words,
        reason: &r.reason,
        stage: &r.stage,
    })?;
    Ok(EncodedRequest {
        id: r.id.as_str(),
        platform: r.platform().as_str(),
        requester: r.requester.as_str(),
        state: r.state().as_str(),
        created_at: ms(r.created_at),
        jc_user: jc_user.map(|u| u.as_str()),
        system_id: system_id.map(|s| s.as_str()),
        data,
        version: r.version,
    })
}

/// A row of `requests`, with `data` as text.
#[derive(sqlx::FromRow)]
pub(super) struct RequestRow {
    id: String,
    platform: String,
    requester: String,
    state: String,
    created_at: i64,
    approval_message: Option<String>,
    version: i64,
    data: String,
}

impl RequestRow {
    /// The request the row holds.
    pub(super) fn decode(self) -> anyhow::Result<Request> {
        let platform = Platform::parse(&self.platform)
            .with_context(|| format!("unknown platform {}", self.platform))?;
        let data: DataIn = serde_json::from_str(&self.data)
            .with_context(|| format!("unreadable data of request {}", self.id))?;
        anyhow::ensure!(
            data.v == DATA_VERSION,
            "request {} has data of format {}, this version reads {DATA_VERSION}",
            self.id,
            data.v
        );
        anyhow::ensure!(
            data.stage.state().as_str() == self.state,
            "request {} is {} but its data says {}",
            self.id,
            self.state,
            data.stage.state().as_str()
        );
        Ok(Request {
            id: RequestId::from_stored(self.id),
            requester: ChatUserId::new(platform, self.requester),
            reply_to: data.reply_to,
            duration: GrantDuration::from_secs(data.duration_secs.max(1)),
            words: data.words,
            reason: data.reason,
            created_at: ts(self.created_at),
            stage: data.stage,
            approval_message: self.approval_message,
            version: self.version,
        })
    }
}

/// A row of `audit`.
#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    at: i64,
    actor: String,
    action: String,
    request_id: String,
    before_state: Option<String>,
    after_state: Option<String>,
    detail: String,
}

impl AuditRow {
    /// The audit line the row holds.
    pub(super) fn decode(self) -> anyhow::Result<AuditEntry> {
        let state = |s: Option<String>| s.and_then(|s| RequestState::parse(&s));
        Ok(AuditEntry {
            at: ts(self.at),
            actor: self.actor,
            action: AuditAction::parse(&self.action)
                .with_context(|| format!("unknown audit action {}", self.action))?,
            request_id: RequestId::from_stored(self.request_id),
            before: state(self.before_state),
            after: state(self.after_state),
            detail: serde_json::from_str(&self.detail)?,
        })
    }
}

/// A claimed row of `jobs`.
#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    id: i64,
    request_id: String,
    kind: String,
    arg: i64,
    due_at: i64,
    attempts: i64,
}

impl JobRow {
    /// The job the row holds.
    pub(super) fn decode(self) -> anyhow::Result<Job> {
        Ok(Job {
            id: self.id,
            request_id: RequestId::from_stored(self.request_id),
            kind: JobKind::from_stored(&self.kind, self.arg)
                .with_context(|| format!("unknown job kind {}", self.kind))?,
            due_at: ts(self.due_at),
            attempt: self.attempts as u32,
        })
    }
}

/// A row of `conversation_references`.
#[derive(sqlx::FromRow)]
pub(super) struct ReferenceRow {
    service_url: String,
    conversation_id: Option<String>,
    tenant_id: Option<String>,
    seen_at: i64,
}

impl ReferenceRow {
    /// How to reach `user`.
    pub(super) fn decode(self, user: &ChatUserId) -> ConversationReference {
        ConversationReference {
            user: user.clone(),
            service_url: self.service_url,
            conversation_id: self.conversation_id,
            tenant_id: self.tenant_id,
            seen_at: ts(self.seen_at),
        }
    }
}

/// A claimed row of `outbox`.
#[derive(sqlx::FromRow)]
pub(super) struct MessageRow {
    pub id: i64,
    request_id: String,
    notice: String,
    attempts: i64,
}

impl MessageRow {
    /// The message the row holds; an error for a notice this version
    /// cannot read.
    pub(super) fn decode(self) -> serde_json::Result<OutboxMessage> {
        Ok(OutboxMessage {
            id: self.id,
            request_id: RequestId::from_stored(self.request_id),
            notice: serde_json::from_str(&self.notice)?,
            attempt: self.attempts as u32,
        })
    }
}
