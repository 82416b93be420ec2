//! In-memory fakes of the engine's ports, for unit tests of the engine's
//! rules: no HTTP, no database, milliseconds per test. Each fake keeps what
//! it was asked in the order asked, so a test can assert what the engine
//! did. The store fake keeps the port's promises that the engine relies on
//! (conditional updates on the version, one job per request at a time,
//! messages of a request in order, attempts fencing completion); the store
//! conformance suite holds the real backends to the same.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::ports::{
    Admission, Approver, Chat, ChatError, ClaimScope, Directory, DirectoryError, DirectoryUser,
    Elevated, ElevationTarget, Elevator, Insertion, Job, JobKind, Lease, NewJob, NewRequest,
    OutboxMessage, Queue, QueueDepth, Restored, Store, Transition,
};
use crate::domain::{
    AccessRequestRecord, AssociationOp, AuditEntry, ChatUserId, ConversationReference, Device,
    DirectBinding, ElevationRecord, Email, JcUserId, Notice, Presence, PriorState, Request,
    RequestId, RequestState, SystemId, Timestamp,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------- Store

#[derive(Debug, Clone)]
struct JobRow {
    id: i64,
    request_id: RequestId,
    kind: JobKind,
    due_at: Timestamp,
    attempts: u32,
    locked_until: Option<Timestamp>,
    done: bool,
}

#[derive(Debug, Clone)]
struct MessageRow {
    id: i64,
    request_id: RequestId,
    notice: Notice,
    due_at: Timestamp,
    attempts: u32,
    locked_until: Option<Timestamp>,
    finished: bool,
}

#[derive(Debug, Default)]
struct Tables {
    requests: Vec<Request>,
    deliveries: HashSet<String>,
    jobs: Vec<JobRow>,
    outbox: Vec<MessageRow>,
    audit: Vec<AuditEntry>,
    replays: HashMap<String, Timestamp>,
    references: HashMap<ChatUserId, ConversationReference>,
    next_id: i64,
}

impl Tables {
    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    fn add_jobs(&mut self, request_id: &RequestId, jobs: &[NewJob]) {
        for job in jobs {
            let id = self.id();
            self.jobs.push(JobRow {
                id,
                request_id: request_id.clone(),
                kind: job.kind,
                due_at: job.due_at,
                attempts: 0,
                locked_until: None,
                done: false,
            });
        }
    }

    fn add_notices(&mut self, request_id: &RequestId, notices: &[Notice], queued_at: Timestamp) {
        for notice in notices {
            let id = self.id();
            self.outbox.push(MessageRow {
                id,
                request_id: request_id.clone(),
                notice: notice.clone(),
                due_at: queued_at,
                attempts: 0,
                locked_until: None,
                finished: false,
            });
        }
    }

    fn request_mut(&mut self, id: &RequestId) -> Option<&mut Request> {
        self.requests.iter_mut().find(|r| &r.id == id)
    }
}

/// The `Store` port in memory.
#[derive(Debug, Default)]
pub(crate) struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    /// The audit actions written so far, in order.
    pub(crate) fn actions(&self) -> Vec<String> {
        lock(&self.tables)
            .audit
            .iter()
            .map(|e| e.action.to_string())
            .collect()
    }

    /// The audit trail.
    pub(crate) fn audit(&self) -> Vec<AuditEntry> {
        lock(&self.tables).audit.clone()
    }

    /// The only request of `requester`.
    pub(crate) fn request_of(&self, requester: &ChatUserId) -> Request {
        let tables = lock(&self.tables);
        let mine: Vec<_> = tables
            .requests
            .iter()
            .filter(|r| &r.requester == requester)
            .collect();
        assert_eq!(mine.len(), 1, "{requester} has one request");
        mine[0].clone()
    }

    /// Pending jobs of `kind`: their due times.
    pub(crate) fn pending(&self, kind: JobKind) -> Vec<Timestamp> {
        lock(&self.tables)
            .jobs
            .iter()
            .filter(|j| !j.done && j.kind == kind)
            .map(|j| j.due_at)
            .collect()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }

    async fn insert_request(
        &self,
        new: NewRequest,
        since: Timestamp,
        admit: Admission,
    ) -> anyhow::Result<Insertion> {
        let mut t = lock(&self.tables);
        let r = &new.request;
        let mine = t.requests.iter().filter(|o| o.requester == r.requester);
        let open = mine.clone().filter(|o| !o.state().is_terminal()).count();
        let recent = mine.filter(|o| o.created_at >= since).count();
        if let Err(refusal) = admit(open, recent) {
            return Ok(Insertion::Refused(refusal));
        }
        if let Some(key) = &new.delivery {
            if !t.deliveries.insert(key.clone()) {
                return Ok(Insertion::Replayed);
            }
        }
        t.requests.push(r.clone());
        t.audit.push(new.audit.clone());
        t.add_jobs(&r.id, &new.jobs);
        Ok(Insertion::Inserted)
    }

    async fn request(&self, id: &RequestId) -> anyhow::Result<Option<Request>> {
        Ok(lock(&self.tables)
            .requests
            .iter()
            .find(|r| &r.id == id)
            .cloned())
    }

    async fn open_requests_of(&self, requester: &ChatUserId) -> anyhow::Result<Vec<Request>> {
        Ok(lock(&self.tables)
            .requests
            .iter()
            .filter(|r| &r.requester == requester && !r.state().is_terminal())
            .cloned()
            .collect())
    }

    async fn requests_of(
        &self,
        requester: &ChatUserId,
        since: Timestamp,
        limit: u32,
    ) -> anyhow::Result<Vec<Request>> {
        let mut mine: Vec<Request> = lock(&self.tables)
            .requests
            .iter()
            .filter(|r| &r.requester == requester)
            .filter(|r| !r.state().is_terminal() || r.created_at >= since)
            .cloned()
            .collect();
        mine.sort_by(|a, b| {
            let open_first = a.state().is_terminal().cmp(&b.state().is_terminal());
            open_first.then((b.created_at, b.id.as_str()).cmp(&(a.created_at, a.id.as_str())))
        });
        mine.truncate(limit as usize);
        Ok(mine)
    }

    async fn pending_approval(
        &self,
        platform: crate::domain::Platform,
        limit: u32,
    ) -> anyhow::Result<Vec<Request>> {
        let mut pending: Vec<Request> = lock(&self.tables)
            .requests
            .iter()
            .filter(|r| r.platform() == platform && r.state() == RequestState::PendingApproval)
            .cloned()
            .collect();
        pending.sort_by(|a, b| (a.created_at, a.id.as_str()).cmp(&(b.created_at, b.id.as_str())));
        pending.truncate(limit as usize);
        Ok(pending)
    }

    async fn open_request_for_device(
        &self,
        user: &JcUserId,
        system: &SystemId,
        except: &RequestId,
    ) -> anyhow::Result<Option<Request>> {
        Ok(lock(&self.tables)
            .requests
            .iter()
            .find(|r| {
                &r.id != except
                    && r.stage.holds() == (Some(user), Some(system))
                    && r.state().holds_device()
            })
            .cloned())
    }

    async fn transition(&self, tr: &Transition) -> anyhow::Result<bool> {
        let mut t = lock(&self.tables);
        let Some(stored) = t.request_mut(&tr.request_id) else {
            return Ok(false);
        };
        if stored.version != tr.expected_version {
            return Ok(false);
        }
        let approval_message = stored.approval_message.clone();
        *stored = Request {
            approval_message,
            ..tr.to.clone()
        };
        t.audit.push(tr.audit.clone());
        t.add_notices(&tr.request_id, &tr.notices, tr.audit.at);
        t.add_jobs(&tr.request_id, &tr.jobs);
        for job in &tr.reschedule {
            let pending = t
                .jobs
                .iter_mut()
                .find(|j| j.request_id == tr.request_id && j.kind == job.kind && !j.done);
            match pending {
                Some(j) => j.due_at = job.due_at,
                None => t.add_jobs(&tr.request_id, std::slice::from_ref(job)),
            }
        }
        for kind in &tr.cancel {
            for j in t.jobs.iter_mut() {
                if j.request_id == tr.request_id
                    && j.kind == *kind
                    && !j.done
                    && j.locked_until.is_none()
                {
                    j.done = true;
                }
            }
        }
        Ok(true)
    }

    async fn set_approval_message(&self, id: &RequestId, reference: &str) -> anyhow::Result<()> {
        if let Some(r) = lock(&self.tables).request_mut(id) {
            r.approval_message = Some(reference.to_string());
        }
        Ok(())
    }

    async fn enqueue(
        &self,
        id: &RequestId,
        notices: &[Notice],
        now: Timestamp,
    ) -> anyhow::Result<()> {
        lock(&self.tables).add_notices(id, notices, now);
        Ok(())
    }

    async fn append_audit(&self, entry: &AuditEntry) -> anyhow::Result<()> {
        lock(&self.tables).audit.push(entry.clone());
        Ok(())
    }

    async fn first_sighting(
        &self,
        key: &str,
        now: Timestamp,
        keep_until: Timestamp,
    ) -> anyhow::Result<bool> {
        let mut t = lock(&self.tables);
        t.replays.retain(|_, until| *until >= now);
        Ok(t.replays.insert(key.to_string(), keep_until).is_none())
    }

    async fn remember_conversation_reference(
        &self,
        reference: &ConversationReference,
    ) -> anyhow::Result<()> {
        lock(&self.tables)
            .references
            .insert(reference.user.clone(), reference.clone());
        Ok(())
    }

    async fn conversation_reference(
        &self,
        user: &ChatUserId,
    ) -> anyhow::Result<Option<ConversationReference>> {
        Ok(lock(&self.tables).references.get(user).cloned())
    }

    async fn claim_job(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        scope: ClaimScope,
    ) -> anyhow::Result<Option<Job>> {
        let mut t = lock(&self.tables);
        let busy: HashSet<RequestId> = t
            .jobs
            .iter()
            .filter(|j| !j.done && j.locked_until.is_some_and(|l| l > now))
            .map(|j| j.request_id.clone())
            .collect();
        let next = t
            .jobs
            .iter_mut()
            .filter(|j| {
                !j.done
                    && j.due_at <= now
                    && (scope == ClaimScope::Any || j.kind == JobKind::Revoke)
                    && !busy.contains(&j.request_id)
            })
            .min_by_key(|j| (j.due_at, j.id));
        Ok(next.map(|j| {
            j.attempts += 1;
            j.locked_until = Some(lease_until);
            Job {
                id: j.id,
                request_id: j.request_id.clone(),
                kind: j.kind,
                due_at: j.due_at,
                attempt: j.attempts,
            }
        }))
    }

    async fn complete_job(&self, job: &Job, _now: Timestamp) -> anyhow::Result<()> {
        let mut t = lock(&self.tables);
        if let Some(j) = t
            .jobs
            .iter_mut()
            .find(|j| j.id == job.id && j.attempts == job.attempt && !j.done)
        {
            j.done = true;
            j.locked_until = None;
        }
        Ok(())
    }

    async fn retry_job(&self, job: &Job, due_at: Timestamp, _error: &str) -> anyhow::Result<()> {
        let mut t = lock(&self.tables);
        if let Some(j) = t
            .jobs
            .iter_mut()
            .find(|j| j.id == job.id && j.attempts == job.attempt && !j.done)
        {
            j.due_at = due_at;
            j.locked_until = None;
        }
        Ok(())
    }

    async fn claim_messages(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> anyhow::Result<Vec<OutboxMessage>> {
        let mut t = lock(&self.tables);
        let mut seen = HashSet::new();
        let mut claimed = Vec::new();
        for m in t.outbox.iter_mut().filter(|m| !m.finished) {
            // Only the oldest unfinished message of a request may go.
            if !seen.insert(m.request_id.clone()) {
                continue;
            }
            let idle = m.locked_until.is_none_or(|l| l <= now);
            if m.due_at <= now && idle && claimed.len() < limit as usize {
                m.attempts += 1;
                m.locked_until = Some(lease_until);
                claimed.push(OutboxMessage {
                    id: m.id,
                    request_id: m.request_id.clone(),
                    notice: m.notice.clone(),
                    attempt: m.attempts,
                });
            }
        }
        Ok(claimed)
    }

    async fn message_delivered(
        &self,
        message: &OutboxMessage,
        _now: Timestamp,
    ) -> anyhow::Result<()> {
        self.finish(message, None);
        Ok(())
    }

    async fn message_failed(
        &self,
        message: &OutboxMessage,
        _now: Timestamp,
        _error: &str,
    ) -> anyhow::Result<()> {
        self.finish(message, None);
        Ok(())
    }

    async fn retry_message(
        &self,
        message: &OutboxMessage,
        due_at: Timestamp,
        _error: &str,
    ) -> anyhow::Result<()> {
        self.finish(message, Some(due_at));
        Ok(())
    }

    async fn renew_leases(&self, _held: &[Lease], _until: Timestamp) -> anyhow::Result<Vec<Lease>> {
        Ok(Vec::new())
    }

    async fn next_due(&self) -> anyhow::Result<Option<Timestamp>> {
        let t = lock(&self.tables);
        let jobs = t.jobs.iter().filter(|j| !j.done).map(|j| j.due_at);
        let messages = t.outbox.iter().filter(|m| !m.finished).map(|m| m.due_at);
        Ok(jobs.chain(messages).min())
    }

    async fn next_revocation_due(&self) -> anyhow::Result<Option<Timestamp>> {
        Ok(self.pending(JobKind::Revoke).into_iter().min())
    }

    async fn audit_since(&self, since: Option<Timestamp>) -> anyhow::Result<Vec<AuditEntry>> {
        Ok(lock(&self.tables)
            .audit
            .iter()
            .filter(|e| since.is_none_or(|s| e.at >= s))
            .cloned()
            .collect())
    }

    async fn count_by_state(&self) -> anyhow::Result<Vec<(RequestState, i64)>> {
        let t = lock(&self.tables);
        Ok(RequestState::ALL
            .into_iter()
            .map(|s| {
                (
                    s,
                    t.requests.iter().filter(|r| r.state() == s).count() as i64,
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect())
    }

    async fn queue_depth(&self, now: Timestamp) -> anyhow::Result<Vec<QueueDepth>> {
        let t = lock(&self.tables);
        let jobs = t
            .jobs
            .iter()
            .filter(|j| !j.done)
            .map(|j| (Queue::Jobs, j.kind.name(), j.due_at));
        let messages = t.outbox.iter().filter(|m| !m.finished).map(|m| {
            let kind = serde_json::to_value(&m.notice).unwrap()["to"]
                .as_str()
                .and_then(|k| Notice::KINDS.iter().find(|known| **known == k).copied())
                .unwrap_or("unknown");
            (Queue::Outbox, kind, m.due_at)
        });
        let mut depths: Vec<QueueDepth> = Vec::new();
        for (queue, kind, due_at) in jobs.chain(messages) {
            let i = match depths
                .iter()
                .position(|d| d.queue == queue && d.kind == kind)
            {
                Some(i) => i,
                None => {
                    depths.push(QueueDepth {
                        queue,
                        kind: kind.to_string(),
                        due: 0,
                        scheduled: 0,
                        oldest_due_at: None,
                    });
                    depths.len() - 1
                }
            };
            let d = &mut depths[i];
            if due_at <= now {
                d.due += 1;
                if due_at.timestamp_millis() > 0 {
                    d.oldest_due_at = Some(d.oldest_due_at.map_or(due_at, |o| o.min(due_at)));
                }
            } else {
                d.scheduled += 1;
            }
        }
        Ok(depths)
    }

    async fn release_leases(&self) -> anyhow::Result<()> {
        let mut t = lock(&self.tables);
        t.jobs.iter_mut().for_each(|j| j.locked_until = None);
        t.outbox.iter_mut().for_each(|m| m.locked_until = None);
        Ok(())
    }
}

impl MemoryStore {
    /// Ends a message's attempt: finished for good, or due again at `again`.
    fn finish(&self, message: &OutboxMessage, again: Option<Timestamp>) {
        let mut t = lock(&self.tables);
        if let Some(m) = t
            .outbox
            .iter_mut()
            .find(|m| m.id == message.id && m.attempts == message.attempt && !m.finished)
        {
            m.locked_until = None;
            match again {
                Some(due) => m.due_at = due,
                None => m.finished = true,
            }
        }
    }
}

// ---------------------------------------------------------------- Directory

/// One JumpCloud account with its devices.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub user: DirectoryUser,
    pub devices: Vec<Device>,
}

#[derive(Debug, Default)]
struct DirectoryState {
    people: Vec<Person>,
    /// Direct bindings, `(device, user)` → attributes.
    bindings: HashMap<(SystemId, JcUserId), DirectBinding>,
    /// Every association change applied, in order.
    applied: Vec<(SystemId, JcUserId, AssociationOp)>,
    /// What `presence` answers per device (unset: online, never failing).
    presence: HashMap<SystemId, Result<Presence, DirectoryError>>,
}

/// The `Directory` port (JumpCloud) in memory.
#[derive(Debug, Default)]
pub(crate) struct MemoryDirectory {
    state: Mutex<DirectoryState>,
}

impl MemoryDirectory {
    /// Adds an account with its devices.
    pub(crate) fn add(&self, person: Person) {
        lock(&self.state).people.push(person);
    }

    /// Sets (or with `None` removes) a direct binding, as IT would.
    pub(crate) fn bind(&self, system: &SystemId, user: &JcUserId, binding: Option<DirectBinding>) {
        let mut s = lock(&self.state);
        let key = (system.clone(), user.clone());
        match binding {
            Some(b) => s.bindings.insert(key, b),
            None => s.bindings.remove(&key),
        };
    }

    /// Makes an account an admin everywhere (the global `sudo` flag).
    pub(crate) fn make_global_admin(&self, user: &JcUserId) {
        let mut s = lock(&self.state);
        for p in s.people.iter_mut().filter(|p| &p.user.id == user) {
            p.user.global_sudo = true;
        }
    }

    /// The direct binding now.
    pub(crate) fn binding(&self, system: &SystemId, user: &JcUserId) -> Option<DirectBinding> {
        lock(&self.state)
            .bindings
            .get(&(system.clone(), user.clone()))
            .copied()
    }

    /// What `presence` answers for `system` from now on.
    pub(crate) fn set_presence(&self, system: &SystemId, answer: Result<Presence, DirectoryError>) {
        lock(&self.state).presence.insert(system.clone(), answer);
    }

    /// Every association change applied, in order.
    pub(crate) fn applied(&self) -> Vec<AssociationOp> {
        lock(&self.state)
            .applied
            .iter()
            .map(|(_, _, op)| *op)
            .collect()
    }
}

#[async_trait]
impl Directory for MemoryDirectory {
    async fn find_user_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<DirectoryUser>, DirectoryError> {
        let s = lock(&self.state);
        let found: Vec<_> = s
            .people
            .iter()
            .filter(|p| p.user.email.as_str().eq_ignore_ascii_case(email.as_str()))
            .collect();
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.user.clone())),
            many => Err(DirectoryError::AmbiguousEmail {
                accounts: many.len(),
            }),
        }
    }

    async fn user_devices(&self, user: &JcUserId) -> Result<Vec<Device>, DirectoryError> {
        Ok(lock(&self.state)
            .people
            .iter()
            .filter(|p| &p.user.id == user)
            .flat_map(|p| p.devices.clone())
            .collect())
    }

    async fn direct_binding(
        &self,
        system: &SystemId,
        user: &JcUserId,
    ) -> Result<Option<DirectBinding>, DirectoryError> {
        Ok(self.binding(system, user))
    }

    async fn admin_state(
        &self,
        user: &DirectoryUser,
        system: &SystemId,
    ) -> Result<PriorState, DirectoryError> {
        let s = lock(&self.state);
        let person = s.people.iter().find(|p| p.user.id == user.id);
        Ok(PriorState {
            global_sudo: person.is_some_and(|p| p.user.global_sudo),
            direct: s.bindings.get(&(system.clone(), user.id.clone())).copied(),
            compiled_sudo: person
                .and_then(|p| p.devices.iter().find(|d| &d.id == system))
                .is_some_and(|d| d.compiled_sudo),
        })
    }

    async fn apply(
        &self,
        system: &SystemId,
        user: &JcUserId,
        op: AssociationOp,
    ) -> Result<(), DirectoryError> {
        let mut s = lock(&self.state);
        let key = (system.clone(), user.clone());
        match op {
            AssociationOp::Add { .. } if s.bindings.contains_key(&key) => {
                return Err(DirectoryError::Conflict)
            }
            AssociationOp::Add { sudo } => {
                s.bindings.insert(
                    key,
                    DirectBinding {
                        sudo,
                        without_password: false,
                    },
                );
            }
            AssociationOp::Update {
                sudo,
                without_password,
            } => {
                s.bindings.insert(
                    key,
                    DirectBinding {
                        sudo,
                        without_password,
                    },
                );
            }
            AssociationOp::Remove => {
                s.bindings.remove(&key);
            }
        }
        s.applied.push((system.clone(), user.clone(), op));
        Ok(())
    }

    async fn presence(&self, system: &SystemId) -> Result<Presence, DirectoryError> {
        lock(&self.state)
            .presence
            .get(system)
            .cloned()
            .unwrap_or(Ok(Presence {
                online: true,
                last_seen: None,
            }))
    }
}

// ---------------------------------------------------------------- Elevator

/// An `Elevator` whose records are its own (an access request, as a
/// second grant mode's would be), to show that the engine stores, passes on
/// and reports what the elevator says without knowing the mode.
#[derive(Debug, Default)]
pub(crate) struct ScriptedElevator {
    state: Mutex<ElevatorState>,
}

#[derive(Debug, Default)]
struct ElevatorState {
    /// What the next restore answers (`None`: restored).
    restore_answer: Option<Restored>,
    /// The records restore was given, in order.
    restored: Vec<ElevationRecord>,
    /// The ends the records were captured with.
    captured: Vec<Timestamp>,
}

impl ScriptedElevator {
    /// The next restores answer `restored`.
    pub(crate) fn answer_restore(&self, restored: Restored) {
        lock(&self.state).restore_answer = Some(restored);
    }

    /// The records restore was given.
    pub(crate) fn restored(&self) -> Vec<ElevationRecord> {
        lock(&self.state).restored.clone()
    }
}

#[async_trait]
impl Elevator for ScriptedElevator {
    async fn capture(
        &self,
        _user: &DirectoryUser,
        _target: &ElevationTarget,
        until: Timestamp,
    ) -> Result<ElevationRecord, DirectoryError> {
        lock(&self.state).captured.push(until);
        Ok(ElevationRecord::AccessRequest {
            access_request: AccessRequestRecord {
                prior: PriorState {
                    global_sudo: false,
                    direct: None,
                    compiled_sudo: false,
                },
                id: None,
                expiry: until,
            },
        })
    }

    async fn elevate(
        &self,
        record: &ElevationRecord,
        _target: &ElevationTarget,
    ) -> Result<Elevated, DirectoryError> {
        let ElevationRecord::AccessRequest { access_request } = record else {
            return Err(DirectoryError::Permanent("not my record".into()));
        };
        Ok(Elevated {
            record: ElevationRecord::AccessRequest {
                access_request: AccessRequestRecord {
                    id: Some("access-1".into()),
                    ..access_request.clone()
                },
            },
            changed: true,
            detail: serde_json::json!({ "access_request": "access-1" }),
        })
    }

    async fn extend(
        &self,
        record: &ElevationRecord,
        _target: &ElevationTarget,
        _until: Timestamp,
    ) -> Result<ElevationRecord, DirectoryError> {
        Ok(record.clone())
    }

    async fn restore(
        &self,
        record: &ElevationRecord,
        _target: &ElevationTarget,
    ) -> Result<Restored, DirectoryError> {
        let mut state = lock(&self.state);
        state.restored.push(record.clone());
        Ok(state.restore_answer.clone().unwrap_or(Restored::Restored {
            detail: serde_json::json!({}),
        }))
    }
}

// ---------------------------------------------------------------- Chat

#[derive(Debug, Default)]
struct ChatState {
    emails: HashMap<ChatUserId, Email>,
    approvers: HashMap<ChatUserId, Approver>,
    /// What the next approval cards meet (`None`: they are posted).
    card_error: Option<ChatError>,
    delivered: Vec<(RequestId, Notice)>,
}

/// The `Chat` port in memory: profiles, approvers, and every notice
/// delivered.
#[derive(Debug, Default)]
pub(crate) struct MemoryChat {
    state: Mutex<ChatState>,
}

impl MemoryChat {
    /// A person with this email in their profile.
    pub(crate) fn person(&self, user: &ChatUserId, email: &str) {
        let email = Email::parse(email).expect("an email");
        lock(&self.state).emails.insert(user.clone(), email);
    }

    /// An approver, with the email their profile shows (if any).
    pub(crate) fn approver(&self, user: &ChatUserId, email: Option<&str>) {
        let email = email.map(|e| Email::parse(e).expect("an email"));
        lock(&self.state)
            .approvers
            .insert(user.clone(), Approver { email });
    }

    /// Approval cards fail with `error` from now on (`None`: posted again).
    pub(crate) fn fail_cards(&self, error: Option<ChatError>) {
        lock(&self.state).card_error = error;
    }

    /// The notices delivered, in order.
    pub(crate) fn delivered(&self) -> Vec<Notice> {
        lock(&self.state)
            .delivered
            .iter()
            .map(|(_, n)| n.clone())
            .collect()
    }
}

#[async_trait]
impl Chat for MemoryChat {
    async fn user_email(&self, request: &Request) -> Result<Option<Email>, ChatError> {
        Ok(lock(&self.state).emails.get(&request.requester).cloned())
    }

    async fn approver(&self, user: &ChatUserId) -> Result<Option<Approver>, ChatError> {
        Ok(lock(&self.state).approvers.get(user).cloned())
    }

    async fn deliver(
        &self,
        request: &Request,
        notice: &Notice,
    ) -> Result<Option<String>, ChatError> {
        let mut s = lock(&self.state);
        if *notice == Notice::ApprovalCard {
            if let Some(error) = s.card_error.clone() {
                return Err(error);
            }
        }
        s.delivered.push((request.id.clone(), notice.clone()));
        Ok((*notice == Notice::ApprovalCard).then(|| format!("card-{}", request.id)))
    }
}

/// The three fakes, shared with the engine under test.
pub(crate) struct Fakes {
    pub store: Arc<MemoryStore>,
    pub directory: Arc<MemoryDirectory>,
    pub chat: Arc<MemoryChat>,
}
