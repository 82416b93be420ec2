//! The engine's rules against in-memory ports and a manual clock: the
//! decision, the grant and the revocation, each in milliseconds. The flow
//! tests (tests/flow) check the same end to end through HTTP, a database
//! and the simulators; these are where a change to a rule is tried first.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;

use super::clock::ManualClock;
use super::fakes::{Fakes, MemoryChat, MemoryDirectory, MemoryStore, Person, ScriptedElevator};
use super::ports::{ChatError, Clock, DirectoryUser, Elevator, JobKind, Restored};
use super::{Chats, Click, CommandInput, Engine, Reply, Workers};
use crate::domain::prior::ELEVATED;
use crate::domain::{
    AssociationOp, AuditAction, ChatUserId, Decision, Device, DirectBinding, Email, EndCause,
    Event, JcUserId, Move, Notice, Platform, Policy, Refusal, Request, RequestState, SystemId,
    Timestamp,
};
use crate::jumpcloud::association::AssociationElevator;

fn t0() -> Timestamp {
    chrono::DateTime::from_timestamp_millis(1_800_000_000_000).unwrap()
}

const MINUTE: Duration = Duration::from_secs(60);

fn ada() -> ChatUserId {
    ChatUserId::slack("U0ADA")
}

fn grace() -> ChatUserId {
    ChatUserId::slack("U0GRACE")
}

fn jc_ada() -> JcUserId {
    JcUserId::new("jc-ada")
}

fn mac() -> SystemId {
    SystemId::new("sys-mac")
}

struct World {
    engine: Arc<Engine>,
    clock: Arc<ManualClock>,
    store: Arc<MemoryStore>,
    directory: Arc<MemoryDirectory>,
    chat: Arc<MemoryChat>,
}

/// Ada (a requester with one Mac and her JumpCloud account) and Grace (an
/// approver with her own account), on Slack, at `t0`.
fn world() -> World {
    world_with(None)
}

/// The same, with `elevator` instead of the association elevator.
fn world_with(elevator: Option<Arc<dyn Elevator>>) -> World {
    let fakes = Fakes {
        store: Arc::new(MemoryStore::default()),
        directory: Arc::new(MemoryDirectory::default()),
        chat: Arc::new(MemoryChat::default()),
    };
    let account = |id: &str, email: &str| DirectoryUser {
        id: JcUserId::new(id),
        email: Email::parse(email).unwrap(),
        global_sudo: false,
        suspended: false,
    };
    fakes.directory.add(Person {
        user: account("jc-ada", "ada@example.com"),
        devices: vec![Device {
            id: mac(),
            hostname: "ada-mac".into(),
            display_name: "ada-mac".into(),
            os_family: "darwin".into(),
            online: true,
            compiled_sudo: false,
        }],
    });
    fakes.directory.add(Person {
        user: account("jc-grace", "grace@example.com"),
        devices: vec![],
    });
    fakes.chat.person(&ada(), "ada@example.com");
    fakes.chat.approver(&grace(), Some("grace@example.com"));
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = Engine::new(
        fakes.store.clone(),
        fakes.directory.clone(),
        elevator.unwrap_or_else(|| Arc::new(AssociationElevator::new(fakes.directory.clone()))),
        Chats::default().with(Platform::Slack, fakes.chat.clone()),
        clock.clone(),
        Policy::default(),
        Workers::new(4),
    );
    World {
        engine,
        clock,
        store: fakes.store,
        directory: fakes.directory,
        chat: fakes.chat,
    }
}

impl World {
    async fn ask(&self, user: &ChatUserId, text: &str) -> Reply {
        let input = CommandInput {
            user: user.clone(),
            text: text.into(),
            reply_to: None,
            delivery: None,
        };
        self.engine.handle_command(input).await.unwrap()
    }

    fn click(&self, user: &ChatUserId) -> Click {
        Click {
            user: user.clone(),
            request_id: self.store.request_of(&ada()).id,
            reply_to: None,
            delivery: None,
        }
    }

    async fn run_due(&self) {
        self.engine.run_due().await.unwrap();
    }

    fn ada(&self) -> Request {
        self.store.request_of(&ada())
    }

    /// Ada asks for 20 minutes and her request reaches the approvers.
    async fn pending(&self) {
        assert!(matches!(
            self.ask(&ada(), "20m install printer").await,
            Reply::Checking(_)
        ));
        self.run_due().await;
        assert_eq!(self.ada().state(), RequestState::PendingApproval);
    }

    /// Then Grace approves a minute later, and the jobs run half a minute
    /// after that.
    async fn approved_and_granted(&self) {
        self.pending().await;
        self.clock.advance(MINUTE);
        self.engine
            .decide(self.click(&grace()), true)
            .await
            .unwrap();
        self.clock.advance(MINUTE / 2);
        self.run_due().await;
    }

    /// The refusal a refused click was audited with.
    fn last_click_refusal(&self) -> serde_json::Value {
        let audit = self.store.audit();
        let refused = audit
            .iter()
            .rev()
            .find(|e| e.action == AuditAction::ClickRefused)
            .expect("a refused click");
        refused.detail.clone()
    }
}

fn refusal(r: Refusal) -> serde_json::Value {
    serde_json::to_value(r).unwrap()
}

#[tokio::test]
async fn an_approved_request_is_active_until_its_first_elevation_attempt_plus_its_duration() {
    let w = world();
    w.approved_and_granted().await;
    let r = w.ada();
    let granted_at = t0() + TimeDelta::seconds(90);
    assert_eq!(r.state(), RequestState::Active);
    assert_eq!(r.elevated_at(), Some(granted_at));
    assert_eq!(r.expires_at(), Some(granted_at + TimeDelta::minutes(20)));
    assert_eq!(r.decided_by(), Some(&grace()));
    assert_eq!(r.decided_at(), Some(t0() + TimeDelta::seconds(60)));
    assert_eq!(
        w.store.pending(JobKind::Revoke),
        vec![granted_at + TimeDelta::minutes(20)],
        "one revocation, due at the end"
    );
    assert_eq!(w.directory.applied(), [AssociationOp::Add { sudo: true }]);
    assert_eq!(w.directory.binding(&mac(), &jc_ada()), Some(ELEVATED));
    assert_eq!(
        w.store.actions(),
        [
            "requested",
            "sent_to_approvers",
            "approved",
            "prior_state_recorded",
            "elevated"
        ]
    );
}

#[tokio::test]
async fn a_denied_request_ends_and_jumpcloud_is_never_written() {
    let w = world();
    w.pending().await;
    w.engine.decide(w.click(&grace()), false).await.unwrap();
    w.clock.advance(40 * MINUTE);
    w.run_due().await;
    let r = w.ada();
    assert_eq!(r.state(), RequestState::Denied);
    assert_eq!(r.decided_by(), Some(&grace()));
    assert_eq!(w.directory.applied(), []);
    assert_eq!(
        w.store.actions(),
        ["requested", "sent_to_approvers", "denied"],
        "and the approval timer was cancelled"
    );
}

#[tokio::test]
async fn nobody_approves_their_own_request_by_chat_identity_or_by_account() {
    let w = world();
    w.pending().await;

    w.engine.decide(w.click(&ada()), true).await.unwrap();
    assert_eq!(w.last_click_refusal(), refusal(Refusal::OwnRequest));

    // Ada's second chat identity, an approver, finds her own account.
    let ada_elsewhere = ChatUserId::slack("U0ADA2");
    w.chat.approver(&ada_elsewhere, Some("ADA@example.com"));
    w.engine
        .decide(w.click(&ada_elsewhere), true)
        .await
        .unwrap();
    assert_eq!(w.last_click_refusal(), refusal(Refusal::OwnAccount));

    // An approver the bot cannot tell apart from Ada decides nothing.
    let nameless = ChatUserId::slack("U0NOEMAIL");
    w.chat.approver(&nameless, None);
    w.engine.decide(w.click(&nameless), true).await.unwrap();
    assert_eq!(w.last_click_refusal(), refusal(Refusal::ApproverUnverified));

    w.run_due().await;
    assert_eq!(w.ada().state(), RequestState::PendingApproval);
    assert_eq!(w.ada().decided_by(), None);
    assert_eq!(w.directory.applied(), []);
}

#[tokio::test]
async fn at_expiry_a_binding_the_bot_added_is_removed() {
    let w = world();
    w.approved_and_granted().await;
    w.clock.advance(20 * MINUTE);
    w.run_due().await;
    let r = w.ada();
    assert_eq!(r.state(), RequestState::Ended);
    assert_eq!(r.end_cause(), Some(EndCause::Expired));
    assert_eq!(r.ended_at(), r.expires_at(), "ended at its expiry");
    assert_eq!(
        w.directory.applied(),
        [AssociationOp::Add { sudo: true }, AssociationOp::Remove]
    );
    assert_eq!(w.directory.binding(&mac(), &jc_ada()), None);
}

#[tokio::test]
async fn at_expiry_a_binding_that_existed_is_set_back_as_it_was() {
    let w = world();
    let before = DirectBinding {
        sudo: false,
        without_password: false,
    };
    w.directory.bind(&mac(), &jc_ada(), Some(before));
    w.approved_and_granted().await;
    assert_eq!(w.ada().prior().and_then(|p| p.direct), Some(before));
    w.clock.advance(20 * MINUTE);
    w.run_due().await;
    assert_eq!(w.ada().state(), RequestState::Ended);
    assert_eq!(
        w.directory.applied(),
        [
            AssociationOp::Update {
                sudo: true,
                without_password: false
            },
            AssociationOp::Update {
                sudo: false,
                without_password: false
            }
        ]
    );
    assert_eq!(w.directory.binding(&mac(), &jc_ada()), Some(before));
}

#[tokio::test]
async fn a_permanent_admin_is_never_touched_at_grant_or_at_expiry() {
    let w = world();
    w.pending().await;
    // IT made Ada an admin everywhere after she asked, before the grant.
    w.directory.make_global_admin(&jc_ada());
    w.engine.decide(w.click(&grace()), true).await.unwrap();
    w.run_due().await;
    assert_eq!(w.ada().state(), RequestState::Active);
    assert!(w.ada().prior().unwrap().global_sudo, "recorded as admin");
    w.clock.advance(20 * MINUTE);
    w.run_due().await;
    assert_eq!(w.ada().state(), RequestState::Ended);
    assert_eq!(w.directory.applied(), [], "JumpCloud was never written");
}

#[tokio::test]
async fn end_now_restores_at_once_and_says_who_ended_it() {
    let w = world();
    w.approved_and_granted().await;
    w.clock.advance(3 * MINUTE);
    w.engine.end_now(w.click(&ada())).await.unwrap();
    assert_eq!(w.ada().state(), RequestState::Revoking);
    w.run_due().await;
    let r = w.ada();
    assert_eq!(r.state(), RequestState::Ended);
    assert_eq!(r.end_cause(), Some(EndCause::EndedEarly));
    assert_eq!(r.ended_by(), Some(&ada()));
    assert_eq!(r.ended_at(), Some(t0() + TimeDelta::seconds(90 + 180)));
    assert_eq!(
        w.directory.applied(),
        [AssociationOp::Add { sudo: true }, AssociationOp::Remove]
    );
    assert!(w
        .store
        .actions()
        .ends_with(&["end_requested".to_string(), "restored".to_string()]));
    assert!(
        w.store.pending(JobKind::Revoke).is_empty(),
        "nothing left due"
    );
}

#[tokio::test]
async fn end_now_from_somebody_else_changes_nothing() {
    let w = world();
    w.approved_and_granted().await;
    let mallory = ChatUserId::slack("U0MALLORY");
    w.engine.end_now(w.click(&mallory)).await.unwrap();
    assert_eq!(w.last_click_refusal(), refusal(Refusal::NotAllowedToEnd));
    assert_eq!(w.ada().state(), RequestState::Active);
}

/// Runs the same code in every build: the move check is ordinary control
/// flow in `Stage::apply`, with no `debug_assert!` or
/// `cfg(debug_assertions)` involved, so a release build refuses exactly
/// what this test sees refused.
#[tokio::test]
async fn an_illegal_move_is_refused_and_the_request_is_left_as_it_was() {
    let w = world();
    // The approval card cannot be posted yet; meanwhile Ada withdraws.
    w.chat.fail_cards(Some(ChatError::Transient("slow".into())));
    w.ask(&ada(), "20m install printer").await;
    w.run_due().await;
    assert_eq!(w.ada().state(), RequestState::PendingApproval);
    assert!(matches!(w.ask(&ada(), "revoke").await, Reply::Revoking(_)));
    let withdrawn = w.ada();
    assert_eq!(withdrawn.state(), RequestState::Cancelled);
    // Now the chat service refuses the card for good. The engine then
    // refuses the request as unreachable, a move from pending approval;
    // from cancelled it is no move, so nothing changes.
    w.chat
        .fail_cards(Some(ChatError::Permanent("channel_not_found".into())));
    w.clock.advance(10 * MINUTE);
    w.run_due().await;
    assert_eq!(w.ada(), withdrawn, "left as it was, version and all");
    assert_eq!(
        w.store.actions(),
        ["requested", "sent_to_approvers", "withdrawn"]
    );

    // The same through the engine's one builder of transitions.
    let illegal = w
        .engine
        .transition(
            &withdrawn,
            Move::Approve(Decision {
                by: grace(),
                at: w.clock.now(),
            }),
            grace().as_str(),
            serde_json::json!({}),
        )
        .unwrap_err();
    assert_eq!(
        (illegal.from, illegal.event),
        (RequestState::Cancelled, AuditAction::Approved)
    );
}

#[tokio::test]
async fn an_approval_timer_ends_an_undecided_request() {
    let w = world();
    w.pending().await;
    w.clock.advance(30 * MINUTE);
    w.run_due().await;
    let r = w.ada();
    assert_eq!(r.state(), RequestState::TimedOut);
    assert_eq!(r.ended_at(), Some(t0() + TimeDelta::minutes(30)));
    assert!(w.chat.delivered().len() >= 3, "card, sent, and the end");
}

// ------------------------------------------------------------ the elevator port

#[tokio::test]
async fn the_engine_keeps_the_record_the_elevation_returns_and_restores_with_it() {
    let elevator = Arc::new(ScriptedElevator::default());
    let w = world_with(Some(elevator.clone()));
    w.approved_and_granted().await;
    let r = w.ada();
    assert_eq!(r.state(), RequestState::Active);
    let record = r.stage.grant().unwrap().record.clone();
    assert!(
        serde_json::to_string(&record).unwrap().contains("access-1"),
        "the Active stage holds the record elevate returned: {record:?}"
    );
    let elevated = w
        .store
        .audit()
        .into_iter()
        .find(|e| e.action == AuditAction::Elevated)
        .unwrap();
    assert_eq!(elevated.detail["access_request"], "access-1");
    assert_eq!(elevated.detail["changed"], true);
    assert!(w.directory.applied().is_empty(), "no binding was touched");

    w.clock.advance(20 * MINUTE);
    w.run_due().await;
    assert_eq!(w.ada().state(), RequestState::Ended);
    assert_eq!(elevator.restored(), [record]);
    let restored = w.store.audit().into_iter().last().unwrap();
    assert_eq!(restored.action, AuditAction::Restored);
    assert_eq!(restored.detail["cause"], "expired");
    assert!(w.chat.delivered().iter().any(|n| matches!(
        n,
        Notice::Thread {
            event: Event::Ended {
                cause: EndCause::Expired,
                by: None,
                ..
            }
        }
    )));
}

#[tokio::test]
async fn an_elevation_the_directory_ended_by_its_own_clock_is_recorded_as_such() {
    let elevator = Arc::new(ScriptedElevator::default());
    elevator.answer_restore(Restored::EndedByDirectory {
        detail: serde_json::json!({ "access_state": "expired" }),
    });
    let w = world_with(Some(elevator.clone()));
    w.approved_and_granted().await;
    w.clock.advance(20 * MINUTE);
    w.run_due().await;
    assert_eq!(w.ada().state(), RequestState::Ended);
    let restored = w.store.audit().into_iter().last().unwrap();
    assert_eq!(restored.action, AuditAction::Restored);
    assert_eq!(restored.detail["ended_by_jumpcloud"], true);
    assert_eq!(restored.detail["access_state"], "expired");
    assert_eq!(restored.detail["cause"], "expired");
    let delivered = w.chat.delivered();
    for notice in [
        Notice::Thread {
            event: Event::EndedByDirectory,
        },
        Notice::Direct {
            event: Event::EndedByDirectory,
        },
    ] {
        assert!(delivered.contains(&notice), "{notice:?} in {delivered:?}");
    }
    assert!(!w.store.actions().contains(&"restore_failing".to_string()));
}

/// The `presence` of the thread's message about the end.
fn presence_at_end(w: &World) -> Option<crate::domain::Presence> {
    w.chat
        .delivered()
        .into_iter()
        .find_map(|n| match n {
            crate::domain::Notice::Thread {
                event: crate::domain::Event::Ended { presence, .. },
            } => Some(presence),
            _ => None,
        })
        .expect("the end in the thread")
}

#[tokio::test]
async fn a_failed_read_of_whether_the_device_is_online_never_holds_up_a_grant_or_a_revocation() {
    let w = world();
    w.directory.set_presence(
        &mac(),
        Err(crate::engine::ports::DirectoryError::Transient(
            "down".into(),
        )),
    );
    w.approved_and_granted().await;
    assert_eq!(w.ada().state(), RequestState::Active);
    w.clock.advance(20 * MINUTE);
    w.run_due().await;
    assert_eq!(w.ada().state(), RequestState::Ended);
    assert_eq!(
        w.directory.applied(),
        [AssociationOp::Add { sudo: true }, AssociationOp::Remove]
    );
    assert_eq!(presence_at_end(&w), None);
}

#[tokio::test]
async fn the_thread_is_told_whether_the_computer_was_online_at_the_end() {
    let w = world();
    w.approved_and_granted().await;
    let offline = crate::domain::Presence {
        online: false,
        last_seen: Some(w.clock.now()),
    };
    w.directory.set_presence(&mac(), Ok(offline));
    w.clock.advance(20 * MINUTE);
    w.run_due().await;
    assert_eq!(w.ada().state(), RequestState::Ended);
    assert_eq!(presence_at_end(&w), Some(offline));
}

// ------------------------------------------------------------ extend

/// When Ada's 20-minute grant of [`World::approved_and_granted`] ends.
fn first_end() -> Timestamp {
    t0() + TimeDelta::seconds(90) + TimeDelta::minutes(20)
}

fn hopper() -> ChatUserId {
    ChatUserId::slack("U0HOPPER")
}

impl World {
    /// Ada, five minutes into her grant, asks for `text` more.
    async fn ask_more(&self, text: &str) -> Reply {
        self.clock.advance(5 * MINUTE);
        self.ask(&ada(), &format!("extend {text}")).await
    }

    /// Moves the clock on to `at`.
    fn move_to(&self, at: Timestamp) {
        self.clock
            .advance((at - self.clock.now()).to_std().expect("later"));
    }

    fn extension_waiting(&self) -> Option<crate::domain::ExtensionAsked> {
        match self.ada().stage {
            crate::domain::Stage::Active(a) => a.extension,
            _ => None,
        }
    }
}

#[tokio::test]
async fn an_approved_extension_moves_the_revocation_and_the_reminders_to_the_new_end() {
    let w = world();
    w.approved_and_granted().await;
    assert!(matches!(w.ask_more("10m").await, Reply::Extending(_)));
    assert!(w.extension_waiting().is_some());
    assert_eq!(
        w.ada().expires_at(),
        Some(first_end()),
        "not before approval"
    );
    w.engine.decide(w.click(&grace()), true).await.unwrap();
    let new_end = first_end() + TimeDelta::minutes(10);
    assert_eq!(w.ada().state(), RequestState::Active);
    assert_eq!(w.ada().expires_at(), Some(new_end));
    assert_eq!(w.extension_waiting(), None);
    assert_eq!(w.store.pending(JobKind::Revoke), vec![new_end]);
    for mark in [15, 5, 1] {
        assert_eq!(
            w.store.pending(JobKind::Remind(mark * 60)),
            vec![new_end - TimeDelta::minutes(mark as i64)],
            "the {mark}m reminder"
        );
    }
    assert_eq!(w.store.pending(JobKind::Extend).len(), 1, "the hook runs");
    w.run_due().await;
    assert!(w.store.pending(JobKind::Extend).is_empty());

    // The old end passes: still admin.
    w.move_to(first_end() + TimeDelta::seconds(1));
    w.run_due().await;
    assert_eq!(w.ada().state(), RequestState::Active);
    assert_eq!(w.directory.binding(&mac(), &jc_ada()), Some(ELEVATED));
    w.move_to(new_end);
    w.run_due().await;
    let r = w.ada();
    assert_eq!(r.state(), RequestState::Ended);
    assert_eq!(r.ended_at(), Some(new_end));
    let actions = w.store.actions();
    assert!(actions.contains(&"extension_requested".to_string()));
    assert!(actions.contains(&"extension_approved".to_string()));
}

#[tokio::test]
async fn a_denied_extension_leaves_the_end_where_it_was() {
    let w = world();
    w.approved_and_granted().await;
    w.ask_more("10m").await;
    w.engine.decide(w.click(&grace()), false).await.unwrap();
    assert_eq!(w.extension_waiting(), None);
    assert_eq!(w.ada().expires_at(), Some(first_end()));
    assert_eq!(w.store.pending(JobKind::Revoke), vec![first_end()]);
    assert!(w.store.pending(JobKind::Extend).is_empty());
    w.move_to(first_end());
    w.run_due().await;
    assert_eq!(w.ada().state(), RequestState::Ended);
    assert_eq!(w.ada().ended_at(), Some(first_end()));
    assert!(w.store.actions().contains(&"extension_denied".to_string()));
}

#[tokio::test]
async fn an_extension_past_the_maximum_is_refused_at_once_and_reaches_nobody() {
    let w = world();
    w.approved_and_granted().await;
    w.run_due().await;
    // What reaches people, but for the countdown that runs on its own.
    let told = || {
        w.chat
            .delivered()
            .into_iter()
            .filter(|n| {
                !matches!(
                    n,
                    crate::domain::Notice::Thread {
                        event: crate::domain::Event::Reminder { .. }
                    } | crate::domain::Notice::Direct {
                        event: crate::domain::Event::Reminder { .. }
                    }
                )
            })
            .count()
    };
    let before = (w.ada(), w.store.actions(), told());
    // 20 minutes granted of the 4 hours the policy allows.
    let reply = w.ask_more("3h41m").await;
    let left = crate::domain::GrantDuration::parse("3h40m").unwrap();
    assert_eq!(
        reply,
        Reply::Refused(Refusal::ExtensionOverLimit {
            max: Policy::default().max_duration,
            left: Some(left)
        })
    );
    w.run_due().await;
    assert_eq!(
        (w.ada(), w.store.actions(), told()),
        before,
        "nothing written, nothing sent"
    );
    // Exactly what is left is fine.
    assert!(matches!(w.ask_more("3h40m").await, Reply::Extending(_)));
}

#[tokio::test]
async fn an_extension_shorter_than_the_minimum_is_refused_naming_it() {
    let w = world();
    w.approved_and_granted().await;
    w.run_due().await;
    let before = (w.ada(), w.store.actions());
    assert_eq!(
        w.ask_more("1m").await,
        Reply::Refused(Refusal::ExtensionTooShort {
            asked: crate::domain::GrantDuration::parse("1m").unwrap(),
            min: Policy::default().min_duration,
        })
    );
    assert_eq!((w.ada(), w.store.actions()), before, "nothing written");
    assert!(matches!(w.ask_more("5m").await, Reply::Extending(_)));
}

#[tokio::test]
async fn the_extend_button_asks_for_the_default_capped_by_what_is_left() {
    let w = world();
    w.approved_and_granted().await;
    w.engine.extend(w.click(&ada())).await.unwrap();
    assert_eq!(
        w.extension_waiting().map(|e| e.added),
        Some(Policy::default().default_duration)
    );
    // Somebody else's click on Ada's button asks nothing.
    w.engine.decide(w.click(&grace()), false).await.unwrap();
    w.engine.extend(w.click(&grace())).await.unwrap();
    assert_eq!(w.last_click_refusal(), refusal(Refusal::NothingToExtend));
    assert_eq!(w.extension_waiting(), None);
}

#[tokio::test]
async fn nobody_approves_their_own_extension_by_chat_identity_or_by_account() {
    let w = world();
    w.approved_and_granted().await;
    w.ask_more("10m").await;
    w.engine.decide(w.click(&ada()), true).await.unwrap();
    assert_eq!(w.last_click_refusal(), refusal(Refusal::OwnRequest));
    let ada_elsewhere = ChatUserId::slack("U0ADA2");
    w.chat.approver(&ada_elsewhere, Some("ada@example.com"));
    w.engine
        .decide(w.click(&ada_elsewhere), true)
        .await
        .unwrap();
    assert_eq!(w.last_click_refusal(), refusal(Refusal::OwnAccount));
    assert!(w.extension_waiting().is_some(), "still waiting");
    assert_eq!(w.ada().expires_at(), Some(first_end()));
}

/// A second approver's click, once the first decided, finds nothing
/// waiting. (Clicks that truly race, through the real store, are in
/// tests/flow/extend.rs: the fakes here run one click to its end first.)
#[tokio::test]
async fn a_second_approval_after_the_extension_was_decided_changes_nothing() {
    let w = world();
    w.chat.approver(&hopper(), Some("hopper@example.com"));
    w.approved_and_granted().await;
    w.ask_more("10m").await;
    let (a, b) = tokio::join!(
        w.engine.decide(w.click(&grace()), true),
        w.engine.decide(w.click(&hopper()), true)
    );
    a.unwrap();
    b.unwrap();
    let actions = w.store.actions();
    let count = |name: &str| actions.iter().filter(|a| *a == name).count();
    assert_eq!(count("extension_approved"), 1, "{actions:?}");
    assert_eq!(count("click_refused"), 1, "{actions:?}");
    assert_eq!(
        w.ada().expires_at(),
        Some(first_end() + TimeDelta::minutes(10)),
        "moved once"
    );
}

/// The reminders Ada's request got in its thread.
fn reminders(w: &World) -> Vec<Notice> {
    w.chat
        .delivered()
        .into_iter()
        .filter(|n| {
            matches!(
                n,
                Notice::Thread {
                    event: Event::ApprovalReminder { .. }
                }
            )
        })
        .collect()
}

#[tokio::test]
async fn approvers_are_reminded_once_halfway_and_a_second_run_of_the_job_says_nothing_more() {
    let w = world();
    w.pending().await;
    assert_eq!(
        w.store.pending(JobKind::ApprovalReminder),
        vec![t0() + TimeDelta::minutes(15)],
        "written with the move that reached the approvers"
    );
    w.clock.advance(14 * MINUTE);
    w.run_due().await;
    assert!(reminders(&w).is_empty(), "not before halfway");
    w.clock.advance(MINUTE);
    w.run_due().await;
    let expires_at = t0() + TimeDelta::minutes(30);
    assert_eq!(
        reminders(&w),
        [Notice::Thread {
            event: Event::ApprovalReminder { expires_at }
        }]
    );
    let r = w.ada();
    assert_eq!(r.state(), RequestState::PendingApproval);
    // The same job claimed again (its worker died before completing it,
    // or a second replica took its lease over) finds the reminder recorded.
    let again = super::ports::Job {
        id: 0,
        request_id: r.id.clone(),
        kind: JobKind::ApprovalReminder,
        due_at: t0() + TimeDelta::minutes(15),
        attempt: 2,
    };
    w.engine.run_job(&again).await.unwrap();
    w.run_due().await;
    assert_eq!(reminders(&w).len(), 1, "once");
    let reminded = w
        .store
        .actions()
        .iter()
        .filter(|a| *a == "approvers_reminded")
        .count();
    assert_eq!(reminded, 1);
    // The request still expires on time, and Grace can still decide until then.
    w.clock.advance(15 * MINUTE);
    w.run_due().await;
    assert_eq!(w.ada().state(), RequestState::TimedOut);
}

#[tokio::test]
async fn a_request_decided_before_halfway_reminds_nobody() {
    let w = world();
    w.pending().await;
    w.clock.advance(5 * MINUTE);
    w.engine.decide(w.click(&grace()), false).await.unwrap();
    assert!(
        w.store.pending(JobKind::ApprovalReminder).is_empty(),
        "dropped with the decision"
    );
    w.clock.advance(30 * MINUTE);
    w.run_due().await;
    assert!(reminders(&w).is_empty());
    assert!(!w.store.actions().iter().any(|a| a == "approvers_reminded"));
}

#[tokio::test]
async fn an_approver_sees_others_pending_requests_but_never_their_own_and_others_see_none() {
    let w = world();
    w.pending().await;
    let home = w.engine.home(&grace(), None).await.unwrap().unwrap();
    assert!(home.mine.is_empty());
    let pending: Vec<_> = home.to_decide.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(pending, [w.ada().id]);
    // Ada's own page: her request, and nothing to decide.
    let home = w.engine.home(&ada(), None).await.unwrap().unwrap();
    assert_eq!(home.mine.len(), 1);
    assert_eq!(home.to_decide, None);
    // Were Ada an approver, her own request would still not be hers to decide.
    w.chat.approver(&ada(), Some("ada@example.com"));
    let home = w.engine.home(&ada(), None).await.unwrap().unwrap();
    assert_eq!(home.to_decide, Some(vec![]));
    // Nor from a second chat identity with her email (any case): four
    // eyes count accounts, as for a decision.
    let second = ChatUserId::slack("U2ADA");
    w.chat.approver(&second, Some("ADA@example.com"));
    let home = w.engine.home(&second, None).await.unwrap().unwrap();
    assert_eq!(home.to_decide, Some(vec![]));
    // A delivery seen before publishes nothing more.
    let delivery = super::Delivery {
        key: "slack-event:T1:Ev1".into(),
        keep_until: t0() + TimeDelta::hours(1),
    };
    assert!(w
        .engine
        .home(&ada(), Some(delivery.clone()))
        .await
        .unwrap()
        .is_some());
    assert!(w
        .engine
        .home(&ada(), Some(delivery))
        .await
        .unwrap()
        .is_none());
}
