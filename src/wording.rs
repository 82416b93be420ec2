//! Every sentence tempadmin says to people, written once for every chat
//! service. The wording is generic over [`Markup`]: how a chat service
//! shows text from outside (escaped and capped), a hostname, a person, a
//! time, bold, an icon and the command a person types. The Slack renderer
//! implements it as mrkdwn, the Teams renderer as Adaptive Card and message
//! Markdown; the layouts (Block Kit, Adaptive Cards) stay in the renderers.
//!
//! Invariant: text that came from outside (reasons, hostnames, JumpCloud or
//! chat error strings, mistyped words) only ever reaches a message through
//! [`Markup::text`] or [`Markup::hostname`], so each service's escaping and
//! caps apply to all of it.

use crate::domain::{
    ChatUserId, Device, DirectBinding, EndCause, Event, GrantDuration, Policy, Presence,
    PrivateBody, Refusal, Request, RequestState, Stage, Timestamp,
};
use crate::engine::Reply;

// Caps, in characters after escaping, on text from outside that goes into a
// message: enough to recognise it, small enough that every service's limits
// hold whatever JumpCloud reports or a person types.
/// A hostname.
pub const HOSTNAME_TEXT: usize = 100;
/// An OS name JumpCloud reported that we do not know.
pub const OS_TEXT: usize = 30;
/// An error string from JumpCloud or the chat service.
pub const ERROR_TEXT: usize = 300;
/// A mistyped duration echoed back.
pub const TYPO_TEXT: usize = 40;
/// An email address (RFC 5321 allows 254).
pub const EMAIL_TEXT: usize = 254;

/// The little pictures in front of some sentences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icon {
    /// A request for admin rights.
    Key,
    /// Waiting for a decision.
    Waiting,
    /// Work under way.
    Gear,
    /// Admin rights in place.
    Unlock,
    /// Admin rights taken back.
    Lock,
    /// Denied.
    NoEntry,
    /// Nobody decided.
    Sleep,
    /// Withdrawn.
    Bin,
    /// Approved but not granted.
    Forbidden,
    /// Approved.
    Check,
    /// For information.
    Info,
    /// Someone should look.
    Warning,
    /// Time is running.
    Hourglass,
    /// Something keeps failing.
    Alarm,
}

impl Icon {
    /// Slack's emoji code.
    pub fn slack_code(self) -> &'static str {
        match self {
            Self::Key => ":key:",
            Self::Waiting => ":hourglass_flowing_sand:",
            Self::Gear => ":gear:",
            Self::Unlock => ":unlock:",
            Self::Lock => ":lock:",
            Self::NoEntry => ":no_entry:",
            Self::Sleep => ":zzz:",
            Self::Bin => ":wastebasket:",
            Self::Forbidden => ":no_entry_sign:",
            Self::Check => ":white_check_mark:",
            Self::Info => ":information_source:",
            Self::Warning => ":warning:",
            Self::Hourglass => ":hourglass:",
            Self::Alarm => ":rotating_light:",
        }
    }

    /// The Unicode emoji (Teams has no emoji codes).
    pub fn unicode(self) -> &'static str {
        match self {
            Self::Key => "🔑",
            Self::Waiting => "⏳",
            Self::Gear => "⚙️",
            Self::Unlock => "🔓",
            Self::Lock => "🔒",
            Self::NoEntry => "⛔",
            Self::Sleep => "💤",
            Self::Bin => "🗑️",
            Self::Forbidden => "🚫",
            Self::Check => "✅",
            Self::Info => "ℹ️",
            Self::Warning => "⚠️",
            Self::Hourglass => "⌛",
            Self::Alarm => "🚨",
        }
    }
}

/// How one chat service marks text up.
pub trait Markup {
    /// The service's name as people know it (`Slack`, `Teams`).
    fn service(&self) -> &'static str;
    /// Text from outside, escaped for this service and capped at `max`
    /// characters after escaping.
    fn text(&self, text: &str, max: usize) -> String;
    /// A hostname from JumpCloud, shown so that nothing in it is formatted.
    fn hostname(&self, name: &str) -> String;
    /// Our own short literal (a request id, a duration example) as code.
    fn code(&self, text: &str) -> String;
    /// How a person types the command with `args` (may be empty), as code:
    /// `/tempadmin 20m` in Slack, `tempadmin 20m` to the bot in Teams.
    fn command(&self, args: &str) -> String;
    /// Our own text in bold.
    fn bold(&self, text: &str) -> String;
    /// A person.
    fn person(&self, user: &ChatUserId) -> String;
    /// A moment, in the reader's time zone where the service can.
    fn time(&self, t: Timestamp) -> String;
    /// An icon and the space after it.
    fn icon(&self, icon: Icon) -> String;
    /// Whether a menu of choices lets the reader type to filter it.
    fn menu_filters(&self) -> bool;
}

/// The buttons an approval card offers in a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardAction {
    /// Approve (primary).
    Approve,
    /// Deny (destructive).
    Deny,
    /// End now (destructive).
    EndNow,
}

impl CardAction {
    /// The button's label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Approve => "Approve",
            Self::Deny => "Deny",
            Self::EndNow => "End now",
        }
    }
}

/// Which buttons the approval card shows in the request's state.
pub fn card_actions(state: RequestState) -> &'static [CardAction] {
    match state {
        RequestState::PendingApproval => &[CardAction::Approve, CardAction::Deny],
        RequestState::Approved | RequestState::Active => &[CardAction::EndNow],
        _ => &[],
    }
}

/// Which buttons the approval card of `r` shows: those of its state, and
/// while an extension waits, Approve and Deny for it beside End now.
pub fn request_actions(r: &Request) -> &'static [CardAction] {
    match &r.stage {
        Stage::Active(a) if a.extension.is_some() => {
            &[CardAction::Approve, CardAction::Deny, CardAction::EndNow]
        }
        _ => card_actions(r.state()),
    }
}

/// The button on the requester's grant message that asks for more time.
pub const EXTEND_LABEL: &str = "Extend";

/// Beside the **Extend** button where a card needs a line of its own.
pub const EXTEND_OFFER: &str = "Need more time? Approvers decide on an extension.";

/// Whether the direct message about `event` carries the **Extend**
/// button: the grant's message (and an approved extension's), while the
/// grant is active. A click after the end is refused by the engine anyway.
pub fn offers_extend(r: &Request, event: &Event) -> bool {
    matches!(
        event,
        Event::Elevated { changed: true, .. } | Event::ExtensionApproved { .. }
    ) && r.state() == RequestState::Active
}

/// A known OS family by its usual name.
pub fn os_name(os_family: &str) -> &str {
    match os_family.to_ascii_lowercase().as_str() {
        "darwin" | "mac" | "macos" => "macOS",
        "windows" => "Windows",
        "linux" => "Linux",
        _ => os_family,
    }
}

fn online(d: &Device) -> &'static str {
    if d.online {
        "online"
    } else {
        "offline"
    }
}

/// `hostname (OS, online)` with the hostname as code.
pub fn device_line(m: &impl Markup, d: &Device) -> String {
    format!(
        "{} ({}, {})",
        m.hostname(&d.hostname),
        m.text(os_name(&d.os_family), OS_TEXT),
        online(d)
    )
}

/// [`device_line`] for literal text, where a code span would show its
/// backticks.
pub fn device_words(m: &impl Markup, d: &Device) -> String {
    format!(
        "{} ({}, {})",
        m.text(&d.hostname, HOSTNAME_TEXT),
        m.text(os_name(&d.os_family), OS_TEXT),
        online(d)
    )
}

/// The request's device, or "the device" before one is known.
pub fn host(m: &impl Markup, request: &Request) -> String {
    request
        .device()
        .map(|d| m.hostname(&d.hostname))
        .unwrap_or_else(|| "the device".into())
}

/// The request's device's OS family in lower case ("" before a device is
/// known).
fn os_family(r: &Request) -> String {
    r.device()
        .map(|d| d.os_family.to_ascii_lowercase())
        .unwrap_or_default()
}

/// How the new rights take effect, for the device's own OS only (issue
/// 14). On Windows a sign-in during the grant would mint an admin token
/// that outlives the grant until the next sign-out (DEVICE.md), so Windows
/// users elevate through the UAC prompt instead: a fresh token each time.
fn os_advice(m: &impl Markup, r: &Request) -> Option<String> {
    match os_family(r).as_str() {
        "windows" => Some(
            "When a program asks for admin rights, approve the Windows (UAC) prompt with your own \
             username and password: each prompt gets a fresh admin token. There is no need to sign \
             in again; a sign-in now would keep admin rights past the end of the grant."
                .into(),
        ),
        "darwin" | "mac" | "macos" => Some(format!(
            "{} and the administrator prompts work at once.",
            m.code("sudo")
        )),
        "linux" => Some(format!(
            "{} works at once; rights that come through a group may need a new login shell.",
            m.code("sudo")
        )),
        _ => None,
    }
}

/// For an offline device: the change waits for its next check-in.
fn offline_note(m: &impl Markup, r: &Request, presence: Option<Presence>) -> Option<String> {
    let presence = presence.filter(|p| !p.online)?;
    let seen = match presence.last_seen {
        Some(at) => format!("last seen {}", m.time(at)),
        None => "never seen".into(),
    };
    Some(format!(
        "{} is offline ({seen}): the change applies when it next checks in with JumpCloud.",
        host(m, r)
    ))
}

fn error_text(m: &impl Markup, error: &str) -> String {
    m.text(error, ERROR_TEXT)
}

/// A direct binding in words, for the audit thread.
fn binding_words(found: Option<DirectBinding>) -> &'static str {
    match found {
        None => "there is no direct binding any more",
        Some(b) if b.sudo && b.without_password => "admin without password",
        Some(b) if b.sudo => "admin",
        Some(_) => "bound without admin rights",
    }
}

/// A request state in words.
pub fn state_words(state: RequestState) -> &'static str {
    match state {
        RequestState::Resolving => "being checked",
        RequestState::AwaitingDevice => "waiting for a device choice",
        RequestState::PendingApproval => "waiting for approval",
        RequestState::Approved => "approved and being applied",
        RequestState::Active => "active",
        RequestState::Revoking => "being ended",
        RequestState::Ended => "over",
        RequestState::Refused => "refused",
        RequestState::Denied => "denied",
        RequestState::TimedOut => "expired without a decision",
        RequestState::Cancelled => "withdrawn",
    }
}

// ------------------------------------------------------------ the card

/// The card's first line: who asks, for how long.
pub fn card_summary(m: &impl Markup, r: &Request) -> String {
    format!(
        "{}{} by {} for {}",
        m.icon(Icon::Key),
        m.bold("Admin rights requested"),
        m.person(&r.requester),
        m.bold(&r.duration.to_string()),
    )
}

/// The label in front of the reason.
pub const REASON_LABEL: &str = "Reason: ";

/// The reason as shown on the card (escaped and capped at `max`), or
/// "none given".
pub fn card_reason(m: &impl Markup, r: &Request, max: usize) -> String {
    if r.reason.trim().is_empty() {
        "none given".to_string()
    } else {
        m.text(&r.reason, max.saturating_sub(REASON_LABEL.chars().count()))
    }
}

/// The device as shown on the card, in literal text.
pub fn card_device(m: &impl Markup, r: &Request) -> String {
    let device = r
        .device()
        .map(|d| device_words(m, d))
        .unwrap_or_else(|| "unknown".into());
    format!("Device: {device}")
}

/// Where the request stands, for the card's status line.
pub fn card_status(m: &impl Markup, r: &Request) -> String {
    let decided = |verb: &str| match r.stage.decision() {
        Some(d) => format!("{verb} by {} at {}", m.person(&d.by), m.time(d.at)),
        None => verb.to_string(),
    };
    match &r.stage {
        Stage::PendingApproval(_) => format!("{}Waiting for an approver.", m.icon(Icon::Waiting)),
        Stage::Approved(_) => format!(
            "{}{}. Elevating on the device…",
            m.icon(Icon::Gear),
            decided("Approved")
        ),
        Stage::Active(active) => {
            let status = format!(
                "{}{}. {}.",
                m.icon(Icon::Unlock),
                m.bold(&format!("Active until {}", m.time(active.grant.expires_at))),
                decided("Approved")
            );
            match &active.extension {
                Some(asked) => format!(
                    "{status} {}{} asks for {} more: approve or deny the extension.",
                    m.icon(Icon::Waiting),
                    m.person(&r.requester),
                    m.bold(&asked.added.to_string())
                ),
                None => status,
            }
        }
        Stage::Revoking(_) => format!("{}Restoring the previous rights…", m.icon(Icon::Lock)),
        Stage::Ended(ended) => {
            let how = match (ended.revoking.end_cause, &ended.revoking.ended_by) {
                (EndCause::EndedEarly, Some(by)) => format!("ended early by {}", m.person(by)),
                (EndCause::GrantFailed, _) => "the elevation failed".to_string(),
                (EndCause::Expired | EndCause::EndedEarly, _) => "expired".to_string(),
            };
            let at = m.time(ended.ended_at);
            let after = if ended.left_alone {
                "The binding had been changed in JumpCloud meanwhile, so tempadmin left it as it was."
            } else {
                "Previous rights restored."
            };
            format!(
                "{}{}: {how}. {after}",
                m.icon(Icon::Lock),
                m.bold(&format!("Ended at {at}"))
            )
        }
        Stage::Denied(_) => format!("{}{}.", m.icon(Icon::NoEntry), decided("Denied")),
        Stage::TimedOut(_) => format!(
            "{}Nobody decided in time; the request expired.",
            m.icon(Icon::Sleep)
        ),
        Stage::Cancelled(_) => format!("{}Withdrawn by the requester.", m.icon(Icon::Bin)),
        Stage::Refused(closed) if closed.decision.is_some() => format!(
            "{}{}, but not granted: JumpCloud no longer allowed it (see the thread). Nothing was changed.",
            m.icon(Icon::Forbidden),
            decided("Approved")
        ),
        Stage::Resolving(_) | Stage::AwaitingDevice(_) | Stage::Refused(_) => {
            format!("State: {}", r.state().as_str())
        }
    }
}

/// The card's status line with the request id after it.
pub fn card_footer(m: &impl Markup, r: &Request) -> String {
    format!(
        "{}  ·  request {}",
        card_status(m, r),
        m.code(r.id.as_str())
    )
}

/// The card in one sentence (notifications, clients that show no cards).
pub fn card_fallback(m: &impl Markup, r: &Request) -> String {
    format!(
        "Admin rights requested by {} on {} for {}: {}",
        m.person(&r.requester),
        host(m, r),
        r.duration,
        state_words(r.state())
    )
}

// ------------------------------------------------------------ messages

/// A reply in the approval thread.
pub fn thread_text(m: &impl Markup, r: &Request, event: &Event) -> String {
    let who = m.person(&r.requester);
    let on = host(m, r);
    match event {
        Event::Approved { by } => format!("{}Approved by {}. Elevating {who} on {on}…", m.icon(Icon::Check), m.person(by)),
        Event::Denied { by } => format!("{}Denied by {}.", m.icon(Icon::NoEntry), m.person(by)),
        Event::TimedOut => format!("{}Nobody decided in time; the request expired.", m.icon(Icon::Sleep)),
        Event::ApprovalReminder { expires_at } => approval_reminder_text(m, r, "Approvers", *expires_at),
        Event::Cancelled => format!("{}The requester withdrew the request.", m.icon(Icon::Bin)),
        Event::Elevated { until, changed: true, presence } => {
            let mut text = format!("{}{who} is admin on {on} until {}.", m.icon(Icon::Unlock), m.time(*until));
            if let Some(note) = offline_note(m, r, *presence) {
                text = format!("{text} {note}");
            }
            text
        }
        Event::Elevated { changed: false, .. } => {
            format!("{}{who} was already admin on {on}; JumpCloud was not changed.", m.icon(Icon::Info))
        }
        Event::ExtensionRequested { added } => format!(
            "{}{who} asks for {} more on {on}. Approve or deny it on the request above.",
            m.icon(Icon::Waiting),
            m.bold(&added.to_string())
        ),
        Event::ExtensionApproved { by, added, until } => format!(
            "{}Extension of {added} approved by {}: {who} is admin on {on} until {}.",
            m.icon(Icon::Check),
            m.person(by),
            m.time(*until)
        ),
        Event::ExtensionDenied { by } => format!(
            "{}Extension denied by {}; the grant ends as planned.",
            m.icon(Icon::NoEntry),
            m.person(by)
        ),
        Event::GrantFailed { error } => format!(
            "{}JumpCloud did not apply the elevation ({}). Anything it may have applied is being undone.",
            m.icon(Icon::Warning),
            error_text(m, error)
        ),
        Event::Reminder { left } => format!("{}{left} left for {who} on {on}.", m.icon(Icon::Hourglass)),
        Event::Ended { cause, by, presence } => {
            let text = match (cause, by) {
                (EndCause::EndedEarly, Some(by)) => {
                    format!("{}Ended early by {}: previous rights on {on} restored.", m.icon(Icon::Lock), m.person(by))
                }
                (EndCause::GrantFailed, _) => format!("{}Previous rights on {on} restored after the failed elevation.", m.icon(Icon::Lock)),
                _ => format!("{}Time is up: previous rights on {on} restored.", m.icon(Icon::Lock)),
            };
            match presence {
                None => text,
                Some(Presence { online: true, .. }) => format!("{text} The computer was online."),
                Some(Presence { online: false, last_seen }) => format!(
                    "{text} The computer was offline ({}): JumpCloud accepted the change, and the computer applies it when it next checks in.",
                    last_seen.map(|at| format!("last seen {}", m.time(at))).unwrap_or_else(|| "never seen".into())
                ),
            }
        }
        Event::EndedByDirectory => format!(
            "{}Time is up: JumpCloud ended {who}'s admin rights on {on} at their expiry by its own clock; previous rights restored.",
            m.icon(Icon::Lock)
        ),
        Event::NotGranted { refusal } => format!(
            "{}Not granted: {} Nothing was changed in JumpCloud.",
            m.icon(Icon::Forbidden),
            refusal_text(m, refusal)
        ),
        Event::LeftAlone { found } => format!(
            "{}Time is up, but {who}'s binding on {on} is no longer what tempadmin set ({}): \
             somebody changed it during the grant, so tempadmin left it as it is. An IT admin may want to check it.",
            m.icon(Icon::Warning),
            binding_words(*found)
        ),
        Event::RevokeFailing { attempts, error } => format!(
            "{}Could not restore the previous rights on {on} yet ({attempts} attempts, last: {}). \
             tempadmin keeps retrying; an IT admin may want to check JumpCloud.",
            m.icon(Icon::Alarm),
            error_text(m, error)
        ),
        Event::DeviceStepFailed { step, error } => format!(
            "{}The {} step on {on} itself (a notice, or ending what ran elevated) failed ({}). \
             The rights in JumpCloud are not affected.",
            m.icon(Icon::Warning),
            step,
            error_text(m, error)
        ),
    }
}

/// The reminder in the thread of a request nobody has decided yet,
/// addressed to `approvers` (the chat adapter's mentions of them, or a
/// word for them where it has none).
pub fn approval_reminder_text(
    m: &impl Markup,
    r: &Request,
    approvers: &str,
    expires_at: Timestamp,
) -> String {
    format!(
        "{}{approvers}: {}'s request for {} of admin rights on {} is still waiting for a decision. \
         It expires at {} unless someone approves or denies it above.",
        m.icon(Icon::Waiting),
        m.person(&r.requester),
        m.bold(&r.duration.to_string()),
        host(m, r),
        m.time(expires_at)
    )
}

/// A direct message to the requester.
pub fn direct_text(m: &impl Markup, r: &Request, event: &Event) -> String {
    let on = host(m, r);
    match event {
        Event::Approved { by } => format!("{} approved your request for admin on {on}. Applying it now…", m.person(by)),
        Event::Denied { by } => format!("{} denied your request for admin on {on}.", m.person(by)),
        Event::TimedOut if r.device().is_none() => {
            "You did not pick a computer in time, so the request expired. You can ask again.".into()
        }
        Event::TimedOut => format!("Nobody decided on your request for admin on {on} in time; it expired. You can ask again."),
        Event::Cancelled => "Your request was withdrawn.".into(),
        Event::ApprovalReminder { expires_at } => format!(
            "Your request for admin on {on} is still waiting for an approver; the approvers were reminded. \
             It expires at {} without a decision.",
            m.time(*expires_at)
        ),
        Event::Elevated { until, changed: true, presence } => {
            let mut text = format!("{}You are admin on {on} until {}.", m.icon(Icon::Unlock), m.time(*until));
            for note in [offline_note(m, r, *presence), os_advice(m, r)].into_iter().flatten() {
                text = format!("{text} {note}");
            }
            format!("{text} End early with {}.", m.command("revoke"))
        }
        Event::Elevated { changed: false, .. } => format!("You were already admin on {on}; nothing was changed."),
        Event::GrantFailed { .. } => format!("JumpCloud did not apply your admin rights on {on}. Please try again later or ask IT."),
        Event::ExtensionRequested { added } => format!("Asked the approvers for {added} more on {on}."),
        Event::ExtensionApproved { by, added, until } => format!(
            "{}{} approved {added} more: you are admin on {on} until {}.",
            m.icon(Icon::Unlock),
            m.person(by),
            m.time(*until)
        ),
        Event::ExtensionDenied { by } => format!(
            "{} denied more time on {on}; your admin rights end as planned.",
            m.person(by)
        ),
        Event::Reminder { left } => format!("{}{left} of admin rights left on {on}.", m.icon(Icon::Hourglass)),
        Event::Ended { .. } | Event::EndedByDirectory if os_family(r) == "windows" => format!(
            "{}Your admin rights on {on} have ended; your previous rights are back. \
             A sign-out completes the removal: what you started as admin keeps its rights until you sign out.",
            m.icon(Icon::Lock)
        ),
        Event::Ended { .. } | Event::EndedByDirectory => format!("{}Your admin rights on {on} have ended; your previous rights are back.", m.icon(Icon::Lock)),
        Event::RevokeFailing { .. } => format!("Restoring your previous rights on {on} is taking longer than expected; tempadmin keeps trying."),
        Event::NotGranted { refusal } => format!(
            "Your request for admin on {on} was approved but not granted: {} Nothing was changed.",
            refusal_text(m, refusal)
        ),
        Event::LeftAlone { .. } => format!(
            "{}Your temporary admin time on {on} is over. IT changed your rights there meanwhile, so tempadmin left them as IT set them.",
            m.icon(Icon::Lock)
        ),
        Event::DeviceStepFailed { .. } => format!("The notice on {on} itself could not be shown; your rights are as the other messages say."),
    }
}

/// Why something was refused, said to the person.
pub fn refusal_text(m: &impl Markup, refusal: &Refusal) -> String {
    let service = m.service();
    let example = m.command("20m install printer driver");
    match refusal {
        Refusal::BadDuration { input, min, max } => format!(
            "{} is not a duration. Write it like {}, {}, {} or {}, between {min} and {max}: {example}.",
            m.code(&m.text(input, TYPO_TEXT)),
            m.code("90s"),
            m.code("20m"),
            m.code("1h"),
            m.code("1h30m"),
        ),
        Refusal::DurationOutOfRange { requested, min, max } => format!(
            "{requested} is outside what the policy allows: between {min} and {max}. Try {} or less.",
            m.command(&format!("{max} …"))
        ),
        Refusal::ReasonRequired => format!("Please say why you need admin rights: {example}."),
        Refusal::ReasonTooLong { length, max } => format!(
            "Your reason is {length} characters long; the limit is {max} characters. Please say it more briefly: {example}."
        ),
        Refusal::NoEmail => format!("Your {service} profile has no email address, so tempadmin cannot find your JumpCloud account. Ask IT to check your profile."),
        Refusal::NoDirectoryAccount { email } => format!(
            "No JumpCloud account has the email {}. Ask IT to make your JumpCloud email match your {service} email.",
            m.text(email.as_str(), EMAIL_TEXT)
        ),
        Refusal::AmbiguousDirectoryAccount { email, accounts } => format!(
            "{accounts} JumpCloud accounts have the email {}, so tempadmin will not guess which one is yours. Ask IT to remove or rename the duplicate.",
            m.text(email.as_str(), EMAIL_TEXT)
        ),
        Refusal::Suspended { email } => format!("The JumpCloud account {} is suspended. Ask IT.", m.text(email.as_str(), EMAIL_TEXT)),
        Refusal::NoEligibleDevice { email } => format!(
            "No computer is bound to the JumpCloud account {} (phones and tablets don't count). Ask IT to bind your computer to your account.",
            m.text(email.as_str(), EMAIL_TEXT)
        ),
        Refusal::AlreadyAdmin { hostname, through: None } => {
            format!("You are already an administrator on {}; there is nothing to grant.", m.hostname(hostname))
        }
        Refusal::AlreadyAdmin { hostname, through: Some(id) } => format!(
            "Request {} for {} is already open. See it with {}.",
            m.code(id.as_str()),
            m.hostname(hostname),
            m.command("status")
        ),
        Refusal::DirectoryUnavailable => "JumpCloud is not answering right now. Nothing was sent to the approvers; please try again in a few minutes.".into(),
        Refusal::DirectoryMisconfigured => "tempadmin cannot use JumpCloud: its API key was refused. Nothing was sent to the approvers; please tell IT.".into(),
        Refusal::ChatUnavailable => format!("{service} did not answer a look-up tempadmin needs. Please try again in a minute."),
        Refusal::ApprovalsUnreachable { error } => format!(
            "tempadmin could not post your request to the approvers' channel ({service} said {}). Nothing was changed; please tell IT.",
            m.code(&error_text(m, error))
        ),
        Refusal::NotApprover => "Only approvers can approve or deny requests.".into(),
        Refusal::OwnRequest => "You can't decide your own request; another approver has to.".into(),
        Refusal::OwnAccount => "You can't decide this request: it is for your own JumpCloud account, asked from another chat identity of yours. Another approver has to.".into(),
        Refusal::ApproverCheckUnavailable => "JumpCloud did not answer while tempadmin checked that this request is not for your own account, so your decision did not count. Please try again in a minute.".into(),
        Refusal::ApproverUnverified => format!("Your decision can't count: tempadmin could not tell your JumpCloud account apart from the requester's (your {service} profile has no email, or several JumpCloud accounts share it). Another approver has to decide, or ask IT to fix the account."),
        Refusal::AlreadyDecided { state } => format!("Nothing changed: this request is already {}.", state_words(*state)),
        Refusal::NotAllowedToEnd => "Only the requester or an approver can end this elevation.".into(),
        Refusal::NothingToRevoke => "You have no active elevation and no pending request.".into(),
        Refusal::Busy => "tempadmin is very busy right now, so nothing was requested. Please try again in a minute.".into(),
        Refusal::TooManyOpenRequests { open, max } => format!(
            "You have {open} open requests; the limit is {max} at once. See them with {}, or withdraw them with {}.",
            m.command("status"),
            m.command("revoke")
        ),
        Refusal::TooManyRequestsPerHour { max } => format!(
            "You have made {max} requests in the past hour, the limit. Please try again later."
        ),
        Refusal::DeviceNotOffered => format!("That device can't be chosen for this request any more. Start again with {}.", m.command("")),
        Refusal::DeviceNoLongerBound { hostname } => format!(
            "{} is no longer one of the computers bound to your JumpCloud account. Ask IT.",
            m.hostname(hostname)
        ),
        Refusal::ExtensionOverLimit { max, left: Some(left) } => format!(
            "That would take your admin time past the limit of {max} from when it began; {left} is left. \
             Ask for {left} or less: {}.",
            m.command(&format!("extend {left}"))
        ),
        Refusal::ExtensionOverLimit { max, left: None } => format!(
            "Your admin time has reached the limit of {max} from when it began; it can't be extended. \
             Ask again with {} once it has ended.",
            m.command("")
        ),
        Refusal::ExtensionTooShort { asked, min } => format!(
            "An extension of {asked} is shorter than the policy allows; ask for at least {min}: {}.",
            m.command(&format!("extend {min}"))
        ),
        Refusal::NothingToExtend => "You have no active admin rights to extend.".into(),
        Refusal::ExtensionPending => "An extension of this grant is waiting for an approver already.".into(),
        Refusal::ExtensionTooLate => "Nothing changed: this grant's time ran out before the extension was decided.".into(),
    }
}

/// The private answer that the request went to the approvers.
pub fn sent_text(m: &impl Markup, r: &Request) -> String {
    format!(
        "Your request for admin on {} for {} went to the approvers (request {}). You'll get a direct message when someone decides.",
        r.device()
            .map(|d| device_line(m, d))
            .unwrap_or_else(|| host(m, r)),
        r.duration,
        m.code(r.id.as_str())
    )
}

/// The question above the device picker. `shown` of the request's
/// candidates can be listed; `menu` says whether they are in a menu.
pub fn picker_text(m: &impl Markup, r: &Request, shown: usize, menu: bool) -> String {
    let count = r.candidates().len();
    let mut text = format!("You have {count} computers. Which one do you need admin rights on?");
    let name_it = m.command(&format!("{} HOSTNAME reason", r.duration));
    if shown < count {
        text.push_str(&format!(
            " {} can list only the first {shown} here; if yours is not among them, name it: {name_it}.",
            m.service()
        ));
    } else if menu && m.menu_filters() {
        text.push_str(&format!(
            " Pick it from the menu (type to filter), or name it: {name_it}."
        ));
    } else if menu {
        text.push_str(&format!(" Pick it from the menu, or name it: {name_it}."));
    }
    text
}

/// The private answer to a notice's body, for the bodies that are text.
pub fn private_text(m: &impl Markup, r: &Request, body: &PrivateBody) -> Option<String> {
    match body {
        PrivateBody::Sent => Some(sent_text(m, r)),
        PrivateBody::Refused(refusal) => Some(refusal_text(m, refusal)),
        PrivateBody::PickDevice => None,
    }
}

/// The immediate answer to a command.
pub fn reply_text(m: &impl Markup, reply: &Reply) -> String {
    match reply {
        Reply::Help(policy) => help_text(m, policy),
        Reply::AlreadyReceived => {
            "Already received: tempadmin has this command and answered it. Nothing more was done.".into()
        }
        Reply::Refused(refusal) => refusal_text(m, refusal),
        Reply::Checking(r) => format!(
            "Checking your JumpCloud account and devices for {} of admin rights…",
            r.duration
        ),
        Reply::Status(requests) if requests.is_empty() => {
            "You have no open requests and no active elevation.".into()
        }
        Reply::Status(requests) => requests
            .iter()
            .map(|r| status_line(m, r))
            .collect::<Vec<_>>()
            .join("\n"),
        Reply::Extending(r) => {
            let added = match &r.stage {
                Stage::Active(a) => a.extension.as_ref().map(|e| e.added.to_string()),
                _ => None,
            };
            format!(
                "Asked the approvers for {} more on {}.",
                added.unwrap_or_else(|| "some".into()),
                host(m, r)
            )
        }
        Reply::Revoking(requests) => requests
            .iter()
            .map(|r| match r.state() {
                RequestState::Cancelled => format!("Withdrew request {}.", m.code(r.id.as_str())),
                _ => format!("Ending your admin rights on {} now; you'll get a message when your previous rights are back.", host(m, r)),
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn status_line(m: &impl Markup, r: &Request) -> String {
    let until = match (r.state(), r.expires_at()) {
        (RequestState::Active, Some(t)) => format!(", until {}", m.time(t)),
        _ => String::new(),
    };
    format!(
        "• {}: {} on {} for {}{}",
        m.code(r.id.as_str()),
        state_words(r.state()),
        host(m, r),
        r.duration,
        until
    )
}

// ------------------------------------------------------------ the person's page (App Home)

/// The heading over the person's own requests.
pub const HOME_MINE_TITLE: &str = "Your admin requests";
/// The heading over the requests an approver may decide.
pub const HOME_PENDING_TITLE: &str = "Waiting for a decision";

/// What the page says when the person has no recent request.
pub fn home_nothing_yet(m: &impl Markup, days: i64) -> String {
    format!(
        "You have no open request and none from the last {days} days. Ask with {}.",
        m.command("30m install printer driver")
    )
}

/// What the page says to an approver when nothing waits for them.
pub const HOME_NOTHING_PENDING: &str = "Nothing is waiting for your decision.";

/// The icon of a request's state on the person's page.
fn state_icon(state: RequestState) -> Icon {
    match state {
        RequestState::Resolving | RequestState::AwaitingDevice | RequestState::PendingApproval => {
            Icon::Waiting
        }
        RequestState::Approved => Icon::Gear,
        RequestState::Active => Icon::Unlock,
        RequestState::Revoking | RequestState::Ended => Icon::Lock,
        RequestState::Denied => Icon::NoEntry,
        RequestState::TimedOut => Icon::Sleep,
        RequestState::Cancelled => Icon::Bin,
        RequestState::Refused => Icon::Forbidden,
    }
}

/// One of the person's own requests on their page: its state, device,
/// duration and times.
pub fn home_request_line(m: &impl Markup, r: &Request) -> String {
    let words = state_words(r.state());
    let mut state = words.to_string();
    if let Some(first) = state.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    let mut times = vec![format!("asked {}", m.time(r.created_at))];
    match (&r.stage, r.ended_at()) {
        (Stage::Active(a), _) => times.push(format!("until {}", m.time(a.grant.expires_at))),
        (_, Some(ended)) => times.push(format!("ended {}", m.time(ended))),
        _ => {}
    }
    format!(
        "{}{} · {} · {}\n{} · request {}",
        m.icon(state_icon(r.state())),
        m.bold(&state),
        host(m, r),
        r.duration,
        times.join(" · "),
        m.code(r.id.as_str())
    )
}

/// A request waiting for a decision, on an approver's page: who, where,
/// how long, why (the reason capped at `reason_max` after escaping).
pub fn home_pending_line(m: &impl Markup, r: &Request, reason_max: usize) -> String {
    let device = r
        .device()
        .map(|d| device_line(m, d))
        .unwrap_or_else(|| "the device".into());
    format!(
        "{}{} asks for {} on {device}, asked {}\n{REASON_LABEL}{}",
        m.icon(Icon::Key),
        m.person(&r.requester),
        m.bold(&r.duration.to_string()),
        m.time(r.created_at),
        card_reason(m, r, reason_max)
    )
}

/// How to decide a request from the person's page: on its card.
pub const HOME_DECIDE_ON_CARD: &str = "Approve or deny it on the request";

/// How to use the bot.
pub fn help_text(m: &impl Markup, policy: &Policy) -> String {
    let example: GrantDuration = policy.default_duration;
    format!(
        "{} gives you temporary administrator rights on your own computer after an approver agrees.\n\
         • {}: ask for {example} of admin rights (between {} and {}{})\n\
         • {}: name the computer when you have several\n\
         • {}: your open requests\n\
         • {}: ask for more admin time (approvers decide)\n\
         • {}: end your admin rights now, or withdraw a pending request\n\
         • {}: this text",
        m.bold("tempadmin"),
        m.command(&format!("{example} install printer driver")),
        policy.min_duration,
        policy.max_duration,
        if policy.require_reason { "; a reason is required" } else { "" },
        m.command("1h30m MY-LAPTOP reason"),
        m.command("status"),
        m.command("extend 15m"),
        m.command("revoke"),
        m.command("help"),
    )
}

/// The answer while tempadmin cannot take commands yet.
pub const NOT_READY: &str =
    "tempadmin is starting up and cannot take commands yet. Nothing was done; please try again in a minute.";

/// One label per device for a picker, each at most `max` characters.
/// Devices whose labels would read the same (equal hostnames, or long ones
/// that differ only where they were shortened) also show the end of their
/// id. Labels are plain: the renderer escapes them if it must.
pub fn device_labels(devices: &[Device], max: usize) -> Vec<String> {
    let plain: Vec<String> = devices.iter().map(|d| device_label(d, None, max)).collect();
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for label in &plain {
        *seen.entry(label.as_str()).or_default() += 1;
    }
    devices
        .iter()
        .zip(&plain)
        .map(|(d, label)| match seen[label.as_str()] {
            1 => label.clone(),
            _ => device_label(d, Some(d.id.as_str()), max),
        })
        .collect()
}

/// `hostname (OS, online)`, shortened in the middle of the hostname so its
/// end, which tells `…-desk-41` from `…-desk-42`, stays visible.
fn device_label(d: &Device, id: Option<&str>, max: usize) -> String {
    let os = shorten_middle(os_name(&d.os_family), 20);
    let state = online(d);
    let suffix = match id {
        None => format!(" ({os}, {state})"),
        Some(id) => {
            let tail: String = {
                let chars: Vec<char> = id.chars().collect();
                chars[chars.len().saturating_sub(8)..].iter().collect()
            };
            format!(" ({os}, {state}, id …{tail})")
        }
    };
    let budget = max.saturating_sub(suffix.chars().count());
    format!("{}{suffix}", shorten_middle(&d.hostname, budget))
}

/// `text` in at most `max` characters: when longer, its start and its end
/// with `…` between (the end gets two thirds).
pub fn shorten_middle(text: &str, max: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= max {
        return text.to_string();
    }
    if max < 2 {
        return chars[..max].iter().collect();
    }
    let head = (max - 1) / 3;
    let tail = max - 1 - head;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// The answer to a click on a card whose action tempadmin cannot read.
pub const NOT_UNDERSTOOD: &str =
    "tempadmin could not read this button's request. Nothing was done.";

/// The answer to Approve or Deny clicked outside the approvers' channel.
pub const NOT_HERE: &str = "Requests are decided in the approvers' channel only. Nothing was done.";

/// The answer to a click that may not see the request it names (unknown,
/// another platform's, or not the clicker's to act on): nothing about it.
pub const CANNOT_ACT: &str = "You can't act on this request.";

/// The answer to an Extend click: what became of it follows as a message.
pub const EXTENSION_ASKED: &str =
    "Thanks. tempadmin will tell you whether the approvers give you more time.";

/// The answer to a device pick: the rest follows as messages.
pub const DEVICE_PICKED: &str =
    "Thanks. tempadmin is checking that computer and will tell you what happens next.";

// ---------------------------------------------------------------- device

/// The title of every notice on the device.
const DEVICE_TITLE: &str = "tempadmin";

/// The device notice at the grant. Only the bot's words, JumpCloud's
/// hostname and the time: never the reason or anything a person typed
/// (DESIGN 8). The device's own time zone is unknown, so the time is UTC.
pub fn device_granted(
    hostname: &str,
    until: crate::domain::Timestamp,
) -> crate::engine::device::DeviceNotice {
    crate::engine::device::DeviceNotice {
        title: DEVICE_TITLE.into(),
        message: format!(
            "You are admin on {} until {}.",
            device_hostname(hostname),
            until.format("%H:%M UTC")
        ),
    }
}

/// The device notice at a reminder mark.
pub fn device_reminder(
    hostname: &str,
    left: crate::domain::GrantDuration,
) -> crate::engine::device::DeviceNotice {
    crate::engine::device::DeviceNotice {
        title: DEVICE_TITLE.into(),
        message: format!(
            "{left} of admin rights left on {}.",
            device_hostname(hostname)
        ),
    }
}

/// The device notice at the end. A Windows sign-in keeps its admin token
/// until sign-out, so a Windows user is always told that a sign-out
/// completes the removal.
pub fn device_ended(
    hostname: &str,
    os: crate::engine::device::DeviceOs,
    end_elevated: crate::engine::device::EndElevated,
) -> crate::engine::device::DeviceNotice {
    use crate::engine::device::{DeviceOs, EndElevated};
    let mut message = format!(
        "Your admin rights on {} have ended.",
        device_hostname(hostname)
    );
    match (os, end_elevated) {
        (DeviceOs::Windows, EndElevated::Terminate) => {
            message.push_str(" Programs still running as administrator were closed. Sign out to complete the removal.")
        }
        (DeviceOs::Windows, _) => message.push_str(" Sign out to complete the removal."),
        (_, EndElevated::Terminate) => {
            message.push_str(" Commands still running with sudo were ended.")
        }
        (_, EndElevated::Notify) => {
            message.push_str(" sudo asks for your password again; commands still running with sudo keep running until they end.")
        }
        (_, EndElevated::Off) => {}
    }
    crate::engine::device::DeviceNotice {
        title: DEVICE_TITLE.into(),
        message,
    }
}

/// A hostname as JumpCloud reports it, kept to what a hostname may hold,
/// so that even a renamed device cannot put odd text on a screen.
fn device_hostname(hostname: &str) -> String {
    let clean: String = hostname
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(63)
        .collect();
    if clean.is_empty() {
        "this computer".into()
    } else {
        clean
    }
}
