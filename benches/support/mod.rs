//! What the benchmarks share: arguments, percentiles, and grants written
//! straight into the store as the engine leaves them once active, with the
//! simulators set up to match.

#![allow(dead_code)] // each benchmark uses its own part

use chrono::Utc;
use tempadmin::domain::stage;
use tempadmin::domain::{
    Account, AuditAction, AuditEntry, ChatUserId, Decision, Device, Email, Grant, GrantDuration,
    JcUserId, PriorState, Request, Stage, SystemId, Timestamp,
};
use tempadmin::engine::ports::{Insertion, JobKind, NewJob, NewRequest, Store, Transition};
use tempadmin::sim::jumpcloud::{FakeJumpCloud, SimSystem, SimUser};
use tempadmin::sim::slack::FakeSlack;

/// The `n`th positional argument (flags such as `--bench` skipped).
pub fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// Whether a positional argument is `word`.
pub fn flag(word: &str) -> bool {
    std::env::args().skip(1).any(|a| a == word)
}

pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Prints p50, p99 and max of `lags` (milliseconds).
pub fn summary(name: &str, mut lags: Vec<f64>) {
    if lags.is_empty() {
        println!("{name}: none");
        return;
    }
    lags.sort_by(f64::total_cmp);
    println!(
        "{name} ({} devices), lag after expiry in ms: p50 {:.1}  p99 {:.1}  max {:.1}",
        lags.len(),
        percentile(&lags, 0.50),
        percentile(&lags, 0.99),
        lags.last().unwrap()
    );
}

/// The system id in a JumpCloud association path.
pub fn system_of(path: &str) -> Option<&str> {
    path.strip_prefix("/api/v2/systems/")?
        .strip_suffix("/associations")
}

/// Holder `i`: Slack user, JumpCloud user, device.
pub fn holder(i: usize) -> (String, String, String) {
    (
        format!("U1{i:08}"),
        format!("jcholder{i:016}"),
        format!("sysholder{i:015}"),
    )
}

/// A person in both simulators: Slack user, JumpCloud user of the same
/// email, and one device bound to them through a group.
pub fn add_person(
    slack: &FakeSlack,
    jc: &FakeJumpCloud,
    (slack_id, user, system): (&str, &str, &str),
    name: &str,
    os_family: &str,
) {
    let email = format!("{name}@example.com");
    slack.add_user(slack_id, name, Some(&email));
    jc.add_user(SimUser {
        id: user.into(),
        email,
        username: name.into(),
        sudo: false,
        suspended: false,
    });
    jc.add_system(SimSystem {
        id: system.into(),
        hostname: format!("{name}-pc"),
        display_name: format!("{name}-pc"),
        os_family: os_family.into(),
        active: true,
    });
    jc.bind_via_group(user, system, "grp");
}

/// Holder `i` in both simulators, with the bot's elevation in place.
pub fn add_holder(slack: &FakeSlack, jc: &FakeJumpCloud, i: usize) {
    let (slack_id, user, system) = holder(i);
    add_person(
        slack,
        jc,
        (&slack_id, &user, &system),
        &format!("holder{i}"),
        "windows",
    );
    // The bot's own elevation, to be removed at expiry.
    jc.bind_direct(&user, &system, true);
}

/// Holder `i`'s grant, active and expiring at `expiry`, with its
/// revocation job, written as the engine would have left it.
pub async fn seed_active_grant(
    store: &dyn Store,
    i: usize,
    expiry: Timestamp,
) -> anyhow::Result<()> {
    let (slack_id, user, system) = holder(i);
    let now = Utc::now();
    let r = Request::new(
        ChatUserId::slack(&slack_id),
        None,
        GrantDuration::parse("20m").expect("a duration"),
        vec!["bench".into()],
        now,
    );
    let audit = |r: &Request, action: AuditAction| AuditEntry {
        at: now,
        actor: slack_id.clone(),
        action,
        request_id: r.id.clone(),
        before: None,
        after: Some(r.state()),
        detail: serde_json::json!({}),
    };
    let new = NewRequest {
        request: r.clone(),
        delivery: None,
        audit: audit(&r, AuditAction::Requested),
        jobs: Vec::new(),
    };
    let inserted = store
        .insert_request(new, now, std::sync::Arc::new(|_, _| Ok(())))
        .await?;
    anyhow::ensure!(
        inserted == Insertion::Inserted,
        "setup refused: {inserted:?}"
    );
    let mut to = r.clone();
    to.version = r.version + 1;
    to.stage = Stage::Active(stage::Active {
        account: Account {
            email: Email::parse(&format!("holder{i}@example.com")).expect("an email"),
            jc_user: JcUserId::new(&user),
        },
        device: Device {
            id: SystemId::new(&system),
            hostname: format!("holder{i}-pc"),
            display_name: format!("holder{i}-pc"),
            os_family: "windows".into(),
            online: true,
            compiled_sudo: false,
        },
        decision: Decision {
            by: ChatUserId::slack("U0APPROVER"),
            at: now,
        },
        grant: Grant {
            record: PriorState {
                global_sudo: false,
                direct: None,
                compiled_sudo: false,
            }
            .into(),
            expires_at: expiry,
        },
        elevated_at: now,
        extension: None,
        extensions: Vec::new(),
    });
    let t = Transition {
        request_id: r.id.clone(),
        expected_version: r.version,
        audit: audit(&to, AuditAction::Elevated),
        to,
        notices: vec![],
        jobs: vec![NewJob {
            kind: JobKind::Revoke,
            due_at: expiry,
        }],
        reschedule: vec![],
        cancel: vec![],
    };
    anyhow::ensure!(store.transition(&t).await?, "setup transition refused");
    Ok(())
}
