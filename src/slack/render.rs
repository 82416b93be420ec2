//! Block Kit and mrkdwn for every notice and reply. Text a person typed is
//! escaped (`&`, `<`, `>`) so nobody can ping `@channel` or forge a link
//! through a reason; ids from Slack itself are trusted. Text from outside
//! (reasons, hostnames, error strings) is capped after escaping, so every
//! block stays inside Block Kit's limits and Slack never refuses a message
//! for what someone typed or JumpCloud reported.

use slack_morphism::prelude::*;

use super::actions;
use crate::domain::{
    Device, EndCause, Event, GrantDuration, Policy, PrivateBody, Refusal, Request, RequestState,
    Timestamp,
};
use crate::engine::Reply;

/// Escapes text for mrkdwn as Slack documents: `&`, `<` and `>` only.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// [`escape`]s `text` into at most `max` characters. Escaping makes text
/// longer (`&` becomes `&amp;`), so the cap applies to the escaped form;
/// when it does not fit, the text is cut before the first character that
/// would not, never inside an entity, and ends with `…`.
pub fn escape_within(text: &str, max: usize) -> String {
    let escaped = escape(text);
    if escaped.chars().count() <= max {
        return escaped;
    }
    let mut out = String::new();
    let mut used = 0;
    let mut one = [0u8; 4];
    for c in text.chars() {
        let piece = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            _ => c.encode_utf8(&mut one),
        };
        let length = piece.chars().count();
        if used + length + 1 > max {
            break;
        }
        out.push_str(piece);
        used += length;
    }
    if max > 0 {
        out.push('…');
    }
    out
}

// Caps, in characters after escaping, on text from outside that goes into a
// message: enough to recognise it, small enough that Slack's limits hold
// whatever JumpCloud reports or a person types.
/// A hostname.
const HOSTNAME_TEXT: usize = 100;
/// An OS name JumpCloud reported that we do not know.
const OS_TEXT: usize = 30;
/// An error string from JumpCloud or Slack.
const ERROR_TEXT: usize = 300;
/// A mistyped duration echoed back.
const TYPO_TEXT: usize = 40;
/// An email address (RFC 5321 allows 254).
const EMAIL_TEXT: usize = 254;

fn mention(user: &impl std::fmt::Display) -> String {
    format!("<@{user}>")
}

/// A direct binding in words, for the audit thread.
fn binding_words(found: Option<crate::domain::DirectBinding>) -> &'static str {
    match found {
        None => "there is no direct binding any more",
        Some(b) if b.sudo && b.without_password => "admin without password",
        Some(b) if b.sudo => "admin",
        Some(_) => "bound without admin rights",
    }
}

/// A time every reader sees in their own time zone, with a UTC fallback.
fn when(t: Timestamp) -> String {
    format!(
        "<!date^{}^{{date_short_pretty}} {{time}}|{}>",
        t.timestamp(),
        t.format("%Y-%m-%d %H:%M UTC")
    )
}

fn os_name(os_family: &str) -> &str {
    match os_family.to_ascii_lowercase().as_str() {
        "darwin" | "mac" | "macos" => "macOS",
        "windows" => "Windows",
        "linux" => "Linux",
        _ => os_family,
    }
}

fn device_line(d: &Device) -> String {
    format!(
        "{} ({}, {})",
        hostname(&d.hostname),
        escape_within(os_name(&d.os_family), OS_TEXT),
        if d.online { "online" } else { "offline" }
    )
}

/// A hostname as code, escaped and capped.
fn hostname(name: &str) -> String {
    format!("`{}`", escape_within(name, HOSTNAME_TEXT))
}

/// An error string from JumpCloud or Slack, escaped and capped.
fn error_text(error: &str) -> String {
    escape_within(error, ERROR_TEXT)
}

fn host(request: &Request) -> String {
    request
        .device
        .as_ref()
        .map(|d| hostname(&d.hostname))
        .unwrap_or_else(|| "the device".into())
}

fn section(text: String) -> SlackBlock {
    SlackSectionBlock::new()
        .with_text(SlackBlockText::MarkDown(SlackBlockMarkDownText::new(text)))
        .into()
}

fn context(text: String) -> SlackBlock {
    SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
        SlackBlockMarkDownText::new(text),
    )])
    .into()
}

fn button(
    action_id: &str,
    label: &str,
    value: &str,
    style: Option<SlackBlockButtonStyle>,
) -> SlackActionBlockElement {
    let mut b = SlackBlockButtonElement::new(SlackBlockPlainTextOnly::from(label.to_string()))
        .with_action_id(SlackActionId::new(action_id.to_string()))
        .with_value(value.to_string());
    b.style = style;
    SlackActionBlockElement::Button(b)
}

fn message(text: String, blocks: Vec<SlackBlock>) -> SlackMessageContent {
    let content = SlackMessageContent::new().with_text(text);
    if blocks.is_empty() {
        content
    } else {
        content.with_blocks(blocks)
    }
}

/// The approval message, as it should look in the request's current state.
pub fn approval_card(r: &Request) -> SlackMessageContent {
    let device = r
        .device
        .as_ref()
        .map(device_line)
        .unwrap_or_else(|| "unknown".into());
    let head = format!(
        ":key: *Admin rights requested* by {}\n*Device:* {}\n*For:* {}\n*Reason:* ",
        mention(&r.requester),
        device,
        r.duration,
    );
    // The reason gets whatever the section's limit leaves; the policy caps
    // it long before that, but a raised cap must not cost the approval.
    let reason = if r.reason.trim().is_empty() {
        "_none given_".to_string()
    } else {
        escape_within(
            &r.reason,
            limits::SECTION_TEXT.saturating_sub(head.chars().count()),
        )
    };
    let summary = format!("{head}{reason}");
    let decided = |verb: &str| match (&r.decided_by, r.decided_at) {
        (Some(by), Some(at)) => format!("{verb} by {} at {}", mention(by), when(at)),
        _ => verb.to_string(),
    };
    let (status, buttons) = match r.state {
        RequestState::PendingApproval => (
            ":hourglass_flowing_sand: Waiting for an approver.".to_string(),
            vec![
                button(
                    actions::APPROVE,
                    "Approve",
                    r.id.as_str(),
                    Some(SlackBlockButtonStyle::Primary),
                ),
                button(
                    actions::DENY,
                    "Deny",
                    r.id.as_str(),
                    Some(SlackBlockButtonStyle::Danger),
                ),
            ],
        ),
        RequestState::Approved => (
            format!(":gear: {}. Elevating on the device…", decided("Approved")),
            vec![button(
                actions::REVOKE,
                "End now",
                r.id.as_str(),
                Some(SlackBlockButtonStyle::Danger),
            )],
        ),
        RequestState::Active => (
            format!(
                ":unlock: *Active until {}*. {}.",
                r.expires_at.map(when).unwrap_or_default(),
                decided("Approved")
            ),
            vec![button(
                actions::REVOKE,
                "End now",
                r.id.as_str(),
                Some(SlackBlockButtonStyle::Danger),
            )],
        ),
        RequestState::Revoking => (":lock: Restoring the previous rights…".to_string(), vec![]),
        RequestState::Ended => {
            let how = match (r.end_cause, &r.ended_by) {
                (Some(EndCause::EndedEarly), Some(by)) => format!("ended early by {}", mention(by)),
                (Some(EndCause::GrantFailed), _) => "the elevation failed".to_string(),
                _ => "expired".to_string(),
            };
            let at = r.ended_at.map(when).unwrap_or_default();
            let after = if r.left_alone {
                "The binding had been changed in JumpCloud meanwhile, so tempadmin left it as it was."
            } else {
                "Previous rights restored."
            };
            (format!(":lock: *Ended at {at}*: {how}. {after}"), vec![])
        }
        RequestState::Denied => (format!(":no_entry: {}.", decided("Denied")), vec![]),
        RequestState::TimedOut => (
            ":zzz: Nobody decided in time; the request expired.".to_string(),
            vec![],
        ),
        RequestState::Cancelled => (
            ":wastebasket: Withdrawn by the requester.".to_string(),
            vec![],
        ),
        RequestState::Refused if r.decided_by.is_some() => (
            format!(
                ":no_entry_sign: {}, but not granted: JumpCloud no longer allowed it (see the thread). Nothing was changed.",
                decided("Approved")
            ),
            vec![],
        ),
        RequestState::Resolving | RequestState::AwaitingDevice | RequestState::Refused => {
            (format!("State: {}", r.state.as_str()), vec![])
        }
    };
    let mut blocks = vec![
        section(summary),
        context(format!("{status}  ·  request `{}`", r.id)),
    ];
    if !buttons.is_empty() {
        blocks.push(SlackActionsBlock::new(buttons).into());
    }
    let fallback = format!(
        "Admin rights requested by {} on {} for {}: {}",
        mention(&r.requester),
        host(r),
        r.duration,
        state_words(r.state)
    );
    message(fallback, blocks)
}

/// A reply in the approval thread.
pub fn thread_text(r: &Request, event: &Event) -> String {
    let who = mention(&r.requester);
    let on = host(r);
    match event {
        Event::Approved { by } => format!(":white_check_mark: Approved by {}. Elevating {who} on {on}…", mention(by)),
        Event::Denied { by } => format!(":no_entry: Denied by {}.", mention(by)),
        Event::TimedOut => ":zzz: Nobody decided in time; the request expired.".into(),
        Event::Cancelled => ":wastebasket: The requester withdrew the request.".into(),
        Event::Elevated { until, changed: true } => format!(":unlock: {who} is admin on {on} until {}.", when(*until)),
        Event::Elevated { changed: false, .. } => {
            format!(":information_source: {who} was already admin on {on}; JumpCloud was not changed.")
        }
        Event::GrantFailed { error } => format!(
            ":warning: JumpCloud did not apply the elevation ({}). Anything it may have applied is being undone.",
            error_text(error)
        ),
        Event::Reminder { left } => format!(":hourglass: {left} left for {who} on {on}."),
        Event::Ended { cause, by } => match (cause, by) {
            (EndCause::EndedEarly, Some(by)) => {
                format!(":lock: Ended early by {}: previous rights on {on} restored.", mention(by))
            }
            (EndCause::GrantFailed, _) => format!(":lock: Previous rights on {on} restored after the failed elevation."),
            _ => format!(":lock: Time is up: previous rights on {on} restored."),
        },
        Event::NotGranted { refusal } => format!(
            ":no_entry_sign: Not granted: {} Nothing was changed in JumpCloud.",
            refusal_text(refusal)
        ),
        Event::LeftAlone { found } => format!(
            ":warning: Time is up, but {who}'s binding on {on} is no longer what tempadmin set ({}): \
             somebody changed it during the grant, so tempadmin left it as it is. An IT admin may want to check it.",
            binding_words(*found)
        ),
        Event::RevokeFailing { attempts, error } => format!(
            ":rotating_light: Could not restore the previous rights on {on} yet ({attempts} attempts, last: {}). \
             tempadmin keeps retrying; an IT admin may want to check JumpCloud.",
            error_text(error)
        ),
    }
}

/// A direct message to the requester.
pub fn direct_text(r: &Request, event: &Event) -> String {
    let on = host(r);
    match event {
        Event::Approved { by } => format!("{} approved your request for admin on {on}. Applying it now…", mention(by)),
        Event::Denied { by } => format!("{} denied your request for admin on {on}.", mention(by)),
        Event::TimedOut if r.device.is_none() => {
            "You did not pick a computer in time, so the request expired. You can ask again.".into()
        }
        Event::TimedOut => format!("Nobody decided on your request for admin on {on} in time; it expired. You can ask again."),
        Event::Cancelled => "Your request was withdrawn.".into(),
        Event::Elevated { until, changed: true } => format!(
            ":unlock: You are admin on {on} until {}. On Windows, sign out and in again for it to take effect. \
             End early with `/tempadmin revoke`.",
            when(*until)
        ),
        Event::Elevated { changed: false, .. } => format!("You were already admin on {on}; nothing was changed."),
        Event::GrantFailed { .. } => format!("JumpCloud did not apply your admin rights on {on}. Please try again later or ask IT."),
        Event::Reminder { left } => format!(":hourglass: {left} of admin rights left on {on}."),
        Event::Ended { .. } => format!(":lock: Your admin rights on {on} have ended; your previous rights are back."),
        Event::RevokeFailing { .. } => format!("Restoring your previous rights on {on} is taking longer than expected; tempadmin keeps trying."),
        Event::NotGranted { refusal } => format!(
            "Your request for admin on {on} was approved but not granted: {} Nothing was changed.",
            refusal_text(refusal)
        ),
        Event::LeftAlone { .. } => format!(
            ":lock: Your temporary admin time on {on} is over. IT changed your rights there meanwhile, so tempadmin left them as IT set them."
        ),
    }
}

/// Why something was refused, said to the person.
pub fn refusal_text(refusal: &Refusal) -> String {
    match refusal {
        Refusal::BadDuration { input, min, max } => format!(
            "`{}` is not a duration. Write it like `90s`, `20m`, `1h` or `1h30m`, between {min} and {max}: `/tempadmin 20m install printer driver`.",
            escape_within(input, TYPO_TEXT)
        ),
        Refusal::DurationOutOfRange { requested, min, max } => format!(
            "{requested} is outside what the policy allows: between {min} and {max}. Try `/tempadmin {max} …` or less."
        ),
        Refusal::ReasonRequired => "Please say why you need admin rights: `/tempadmin 20m install printer driver`.".into(),
        Refusal::ReasonTooLong { length, max } => format!(
            "Your reason is {length} characters long; the limit is {max} characters. Please say it more briefly: `/tempadmin 20m install printer driver`."
        ),
        Refusal::NoEmail => "Your Slack profile has no email address, so tempadmin cannot find your JumpCloud account. Ask IT to check your profile.".into(),
        Refusal::NoDirectoryAccount { email } => format!(
            "No JumpCloud account has the email {}. Ask IT to make your JumpCloud email match your Slack email.",
            escape_within(email.as_str(), EMAIL_TEXT)
        ),
        Refusal::AmbiguousDirectoryAccount { email, accounts } => format!(
            "{accounts} JumpCloud accounts have the email {}, so tempadmin will not guess which one is yours. Ask IT to remove or rename the duplicate.",
            escape_within(email.as_str(), EMAIL_TEXT)
        ),
        Refusal::Suspended { email } => format!("The JumpCloud account {} is suspended. Ask IT.", escape_within(email.as_str(), EMAIL_TEXT)),
        Refusal::NoEligibleDevice { email } => format!(
            "No computer is bound to the JumpCloud account {} (phones and tablets don't count). Ask IT to bind your computer to your account.",
            escape_within(email.as_str(), EMAIL_TEXT)
        ),
        Refusal::AlreadyAdmin { hostname, through: None } => {
            format!("You are already an administrator on {}; there is nothing to grant.", self::hostname(hostname))
        }
        Refusal::AlreadyAdmin { hostname, through: Some(id) } => format!(
            "Request `{id}` for {} is already open. See it with `/tempadmin status`.",
            self::hostname(hostname)
        ),
        Refusal::DirectoryUnavailable => "JumpCloud is not answering right now. Nothing was sent to the approvers; please try again in a few minutes.".into(),
        Refusal::DirectoryMisconfigured => "tempadmin cannot use JumpCloud: its API key was refused. Nothing was sent to the approvers; please tell IT.".into(),
        Refusal::ChatUnavailable => "Slack did not answer a look-up tempadmin needs. Please try again in a minute.".into(),
        Refusal::ApprovalsUnreachable { error } => format!(
            "tempadmin could not post your request to the approvers' channel (Slack said `{}`). Nothing was changed; please tell IT.",
            error_text(error)
        ),
        Refusal::NotApprover => "Only approvers can approve or deny requests.".into(),
        Refusal::OwnRequest => "You can't decide your own request; another approver has to.".into(),
        Refusal::AlreadyDecided { state } => format!("Nothing changed: this request is already {}.", state_words(*state)),
        Refusal::NotAllowedToEnd => "Only the requester or an approver can end this elevation.".into(),
        Refusal::NothingToRevoke => "You have no active elevation and no pending request.".into(),
        Refusal::Busy => "tempadmin is very busy right now, so nothing was requested. Please try again in a minute.".into(),
        Refusal::TooManyOpenRequests { open, max } => format!(
            "You have {open} open requests; the limit is {max} at once. See them with `/tempadmin status`, or withdraw them with `/tempadmin revoke`."
        ),
        Refusal::TooManyRequestsPerHour { max } => format!(
            "You have made {max} requests in the past hour, the limit. Please try again later."
        ),
        Refusal::DeviceNotOffered => "That device can't be chosen for this request any more. Start again with `/tempadmin`.".into(),
        Refusal::DeviceNoLongerBound { hostname } => format!(
            "{} is no longer one of the computers bound to your JumpCloud account. Ask IT.",
            self::hostname(hostname)
        ),
    }
}

fn state_words(state: RequestState) -> &'static str {
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

/// A private answer (through the `response_url`).
pub fn private_message(r: &Request, body: &PrivateBody) -> SlackMessageContent {
    match body {
        PrivateBody::Sent => message(
            format!(
                "Your request for admin on {} for {} went to the approvers (request `{}`). You'll get a direct message when someone decides.",
                r.device.as_ref().map(device_line).unwrap_or_else(|| host(r)),
                r.duration,
                r.id
            ),
            vec![],
        ),
        PrivateBody::Refused(refusal) => message(refusal_text(refusal), vec![]),
        PrivateBody::PickDevice => device_picker(r),
    }
}

/// Block Kit limits that Slack enforces with `invalid_blocks` (the
/// simulator refuses the same).
mod limits {
    /// Characters in a section block's `text`.
    pub const SECTION_TEXT: usize = 3000;
    /// Characters in a button's or a select option's `plain_text`.
    pub const LABEL: usize = 75;
    /// Options in one `static_select`.
    pub const SELECT_OPTIONS: usize = 100;
    /// Elements in one `actions` block.
    pub const ACTIONS_ELEMENTS: usize = 25;
}

/// Up to this many computers get one button each; more get select menus,
/// which Slack lets a person type into to filter.
const PICKER_BUTTONS: usize = 5;

/// The device choice: one button per computer (action ids
/// `tempadmin_pick_device_1`, `_2`…, unique in their block as Slack
/// requires), or with many computers select menus of up to 100 each
/// (`tempadmin_pick_device`, then `tempadmin_pick_device_2`…). Every value
/// is the JumpCloud system id; the block id carries the request id. More
/// computers than Slack can show are not dropped silently: the text says how
/// many are listed and how to name the one missing.
fn device_picker(r: &Request) -> SlackMessageContent {
    let devices = &r.candidates;
    let labels = device_labels(devices);
    let shown = devices
        .len()
        .min(limits::SELECT_OPTIONS * limits::ACTIONS_ELEMENTS);
    let mut text = format!(
        "You have {} computers. Which one do you need admin rights on?",
        devices.len()
    );
    if shown < devices.len() {
        text.push_str(&format!(
            " Slack can list only the first {shown} here; if yours is not among them, name it: `/tempadmin {} HOSTNAME reason`.",
            r.duration
        ));
    } else if devices.len() > PICKER_BUTTONS {
        text.push_str(&format!(
            " Pick it from the menu (type to filter), or name it: `/tempadmin {} HOSTNAME reason`.",
            r.duration
        ));
    }
    let elements: Vec<SlackActionBlockElement> = if devices.len() <= PICKER_BUTTONS {
        devices
            .iter()
            .zip(&labels)
            .enumerate()
            .map(|(i, (d, label))| {
                let action_id = format!("{}_{}", actions::PICK_DEVICE, i + 1);
                button(&action_id, label, d.id.as_str(), None)
            })
            .collect()
    } else {
        let menus = shown.div_ceil(limits::SELECT_OPTIONS);
        devices[..shown]
            .chunks(limits::SELECT_OPTIONS)
            .zip(labels[..shown].chunks(limits::SELECT_OPTIONS))
            .enumerate()
            .map(|(k, (chunk, chunk_labels))| {
                let action_id = match k {
                    0 => actions::PICK_DEVICE.to_string(),
                    _ => format!("{}_{}", actions::PICK_DEVICE, k + 1),
                };
                let first = k * limits::SELECT_OPTIONS + 1;
                let placeholder = match menus {
                    1 => "Choose a computer".to_string(),
                    _ => format!("Computers {first}–{}", first + chunk.len() - 1),
                };
                let options = chunk
                    .iter()
                    .zip(chunk_labels)
                    .map(|(d, label)| {
                        SlackBlockChoiceItem::new(
                            SlackBlockPlainTextOnly::from(label.clone()),
                            d.id.to_string(),
                        )
                    })
                    .collect();
                SlackActionBlockElement::StaticSelect(
                    SlackBlockStaticSelectElement::new()
                        .with_action_id(SlackActionId::new(action_id))
                        .with_placeholder(SlackBlockPlainTextOnly::from(placeholder))
                        .with_options(options),
                )
            })
            .collect()
    };
    let picker =
        SlackActionsBlock::new(elements).with_block_id(SlackBlockId::new(format!("pick:{}", r.id)));
    message(text.clone(), vec![section(text), picker.into()])
}

/// One label per device, each inside Slack's 75-character limit. Devices
/// whose labels would read the same (equal hostnames, or long ones that
/// differ only where they were shortened) also show the end of their id.
fn device_labels(devices: &[Device]) -> Vec<String> {
    let plain: Vec<String> = devices.iter().map(|d| device_label(d, None)).collect();
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for label in &plain {
        *seen.entry(label.as_str()).or_default() += 1;
    }
    devices
        .iter()
        .zip(&plain)
        .map(|(d, label)| match seen[label.as_str()] {
            1 => label.clone(),
            _ => device_label(d, Some(d.id.as_str())),
        })
        .collect()
}

/// `hostname (OS, online)`, shortened in the middle of the hostname so its
/// end, which tells `…-desk-41` from `…-desk-42`, stays visible.
fn device_label(d: &Device, id: Option<&str>) -> String {
    let os = shorten_middle(os_name(&d.os_family), 20);
    let state = if d.online { "online" } else { "offline" };
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
    let budget = limits::LABEL - suffix.chars().count();
    format!("{}{suffix}", shorten_middle(&d.hostname, budget))
}

/// `text` in at most `max` characters: when longer, its start and its end
/// with `…` between (the end gets two thirds).
fn shorten_middle(text: &str, max: usize) -> String {
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

/// The immediate answer to a slash command.
pub fn reply_message(reply: &Reply) -> SlackMessageContent {
    let text = match reply {
        Reply::Help(policy) => help_text(policy),
        Reply::Refused(refusal) => refusal_text(refusal),
        Reply::Checking(r) => format!(
            "Checking your JumpCloud account and devices for {} of admin rights…",
            r.duration
        ),
        Reply::Status(requests) if requests.is_empty() => {
            "You have no open requests and no active elevation.".into()
        }
        Reply::Status(requests) => requests.iter().map(status_line).collect::<Vec<_>>().join("\n"),
        Reply::Revoking(requests) => requests
            .iter()
            .map(|r| match r.state {
                RequestState::Cancelled => format!("Withdrew request `{}`.", r.id),
                _ => format!("Ending your admin rights on {} now; you'll get a message when your previous rights are back.", host(r)),
            })
            .collect::<Vec<_>>()
            .join("\n"),
    };
    message(text, vec![])
}

fn status_line(r: &Request) -> String {
    let until = match (r.state, r.expires_at) {
        (RequestState::Active, Some(t)) => format!(", until {}", when(t)),
        _ => String::new(),
    };
    format!(
        "• `{}`: {} on {} for {}{}",
        r.id,
        state_words(r.state),
        host(r),
        r.duration,
        until
    )
}

fn help_text(policy: &Policy) -> String {
    let example: GrantDuration = policy.default_duration;
    format!(
        "*tempadmin* gives you temporary administrator rights on your own computer after an approver agrees.\n\
         • `/tempadmin {example} install printer driver`: ask for {example} of admin rights (between {} and {}{})\n\
         • `/tempadmin 1h30m MY-LAPTOP reason`: name the computer when you have several\n\
         • `/tempadmin status`: your open requests\n\
         • `/tempadmin revoke`: end your admin rights now, or withdraw a pending request\n\
         • `/tempadmin help`: this text",
        policy.min_duration,
        policy.max_duration,
        if policy.require_reason { "; a reason is required" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChatUserId, SystemId};

    fn request() -> Request {
        let mut r = Request::new(
            ChatUserId::new("U1"),
            None,
            GrantDuration::parse("20m").unwrap(),
            vec![
                "<!channel>".into(),
                "&".into(),
                "<http://evil|click>".into(),
            ],
            chrono::Utc::now(),
        );
        r.state = RequestState::PendingApproval;
        r.device = Some(Device {
            id: SystemId::new("s1"),
            hostname: "ada-mac".into(),
            display_name: "ada-mac".into(),
            os_family: "darwin".into(),
            online: true,
            compiled_sudo: false,
        });
        r
    }

    #[test]
    fn user_text_cannot_ping_or_link() {
        let card = serde_json::to_string(&approval_card(&request())).unwrap();
        assert!(!card.contains("<!channel>"));
        assert!(!card.contains("<http://evil"));
        assert!(card.contains("&lt;!channel&gt; &amp; &lt;http://evil|click&gt;"));
    }

    #[test]
    fn a_pending_card_has_approve_and_deny_and_a_decided_one_has_none() {
        let mut r = request();
        let pending = serde_json::to_value(approval_card(&r)).unwrap().to_string();
        assert!(pending.contains(actions::APPROVE) && pending.contains(actions::DENY));
        r.state = RequestState::Denied;
        r.decided_by = Some(ChatUserId::new("U2"));
        r.decided_at = Some(chrono::Utc::now());
        let denied = serde_json::to_value(approval_card(&r)).unwrap().to_string();
        assert!(!denied.contains(actions::APPROVE) && !denied.contains(actions::DENY));
        assert!(denied.contains("Denied by <@U2>"));
    }

    fn computer(n: usize, hostname: &str) -> Device {
        Device {
            id: SystemId::new(format!("5f3c0000000000000000{n:04}")),
            hostname: hostname.into(),
            display_name: hostname.into(),
            os_family: "windows".into(),
            online: n % 2 == 0,
            compiled_sudo: false,
        }
    }

    fn picker_for(devices: Vec<Device>) -> serde_json::Value {
        let mut r = request();
        r.state = RequestState::AwaitingDevice;
        r.candidates = devices;
        serde_json::to_value(private_message(&r, &PrivateBody::PickDevice)).unwrap()
    }

    /// Every interactive element of the picker.
    fn elements(picker: &serde_json::Value) -> Vec<serde_json::Value> {
        picker["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// (label, system id) of every choice the picker offers.
    fn choices(picker: &serde_json::Value) -> Vec<(String, String)> {
        elements(picker)
            .iter()
            .flat_map(|e| match e["type"].as_str().unwrap() {
                "button" => vec![(e["text"]["text"].clone(), e["value"].clone())],
                _ => e["options"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| (o["text"]["text"].clone(), o["value"].clone()))
                    .collect(),
            })
            .map(|(l, v)| (l.as_str().unwrap().into(), v.as_str().unwrap().into()))
            .collect()
    }

    fn ids(devices: &[Device]) -> Vec<String> {
        devices.iter().map(|d| d.id.to_string()).collect()
    }

    #[test]
    fn picker_buttons_have_distinct_action_ids_that_start_with_the_prefix() {
        let devices = vec![computer(1, "ada-mac"), computer(2, "ada-win")];
        let picker = picker_for(devices.clone());
        let elements = elements(&picker);
        assert_eq!(elements.len(), 2);
        assert!(elements.iter().all(|e| e["type"] == "button"));
        let action_ids: Vec<&str> = elements
            .iter()
            .map(|e| e["action_id"].as_str().unwrap())
            .collect();
        assert!(action_ids
            .iter()
            .all(|a| a.starts_with(actions::PICK_DEVICE)));
        assert_ne!(action_ids[0], action_ids[1]);
        let offered: Vec<String> = choices(&picker).into_iter().map(|c| c.1).collect();
        assert_eq!(offered, ids(&devices));
        assert_eq!(choices(&picker)[0].0, "ada-mac (Windows, offline)");
    }

    #[test]
    fn many_computers_get_select_menus_of_at_most_a_hundred_and_none_is_left_out() {
        let devices: Vec<Device> = (0..250).map(|n| computer(n, &format!("lab-{n}"))).collect();
        let picker = picker_for(devices.clone());
        let menus = elements(&picker);
        assert_eq!(menus.len(), 3);
        assert!(menus.iter().all(|m| m["type"] == "static_select"));
        assert_eq!(menus[0]["action_id"], actions::PICK_DEVICE);
        let sizes: Vec<usize> = menus
            .iter()
            .map(|m| m["options"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
        let mut action_ids: Vec<&str> = menus
            .iter()
            .map(|m| m["action_id"].as_str().unwrap())
            .collect();
        action_ids.dedup();
        assert_eq!(action_ids.len(), 3, "distinct within their block");
        let offered: Vec<String> = choices(&picker).into_iter().map(|c| c.1).collect();
        assert_eq!(offered, ids(&devices));

        let one_menu = picker_for(devices[..30].to_vec());
        assert_eq!(elements(&one_menu).len(), 1);
        assert_eq!(elements(&one_menu)[0]["action_id"], actions::PICK_DEVICE);
    }

    #[test]
    fn computers_beyond_what_slack_can_list_are_announced_not_dropped_silently() {
        let devices: Vec<Device> = (0..2600)
            .map(|n| computer(n, &format!("lab-{n}")))
            .collect();
        let picker = picker_for(devices);
        assert_eq!(elements(&picker).len(), 25);
        assert_eq!(choices(&picker).len(), 2500);
        let text = picker["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            text.contains("You have 2600 computers")
                && text.contains("only the first 2500")
                && text.contains("/tempadmin 20m HOSTNAME"),
            "{text}"
        );
    }

    #[test]
    fn long_or_equal_hostnames_get_distinct_labels_within_slacks_limit() {
        let long = "corp-engineering-department-building-seven-floor-three-desk";
        let devices = vec![
            computer(1, &format!("{long}-41")),
            computer(2, &format!("{long}-42")),
            computer(3, "ada-laptop"),
            computer(5, "ada-laptop"),
            computer(7, &"x".repeat(300)),
        ];
        let labels: Vec<String> = choices(&picker_for(devices))
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert!(labels.iter().all(|l| l.chars().count() <= 75), "{labels:?}");
        let mut distinct = labels.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), labels.len(), "{labels:?}");
        assert!(
            labels[0].contains("desk-41 (Windows, offline)"),
            "{labels:?}"
        );
        assert!(
            labels[1].contains("desk-42 (Windows, online)"),
            "{labels:?}"
        );
        assert!(
            labels[2].starts_with("ada-laptop (Windows, offline, id …"),
            "{labels:?}"
        );
    }

    /// What Slack would refuse in a rendered message (none: it is accepted).
    fn refused_by_slack(content: &SlackMessageContent) -> Vec<String> {
        let json = serde_json::to_value(content).unwrap();
        match json.get("blocks") {
            Some(blocks) => crate::sim::block_kit::problems(blocks),
            None => vec![],
        }
    }

    /// A request in which everything a person or a directory could make
    /// long or full of characters that escaping lengthens is.
    fn hostile_request() -> Request {
        let mut r = request();
        r.reason = "&".repeat(20_000);
        let device = Device {
            id: SystemId::new("5f3c00000000000000000001"),
            hostname: "<".repeat(1000),
            display_name: ">".repeat(1000),
            os_family: "&".repeat(500),
            online: false,
            compiled_sudo: false,
        };
        r.device = Some(device.clone());
        r.candidates = (0..3)
            .map(|n| Device {
                id: SystemId::new(format!("5f3c0000000000000000000{n}")),
                ..device.clone()
            })
            .collect();
        r.decided_by = Some(ChatUserId::new("U2"));
        r.decided_at = Some(chrono::Utc::now());
        r.expires_at = Some(chrono::Utc::now());
        r.ended_at = Some(chrono::Utc::now());
        r.ended_by = Some(ChatUserId::new("U2"));
        r.end_cause = Some(EndCause::EndedEarly);
        r
    }

    #[test]
    fn escaping_is_capped_after_it_and_never_cuts_an_entity() {
        assert_eq!(escape_within("a<b", 10), "a&lt;b");
        assert_eq!(escape_within("a<b", 6), "a&lt;b");
        assert_eq!(escape_within("a<b", 5), "a…");
        assert_eq!(escape_within("a<b", 2), "a…");
        assert_eq!(escape_within("abc", 0), "");
        let text = "<&>x".repeat(50);
        let escaped = escape(&text);
        for max in 1..120 {
            let capped = escape_within(&text, max);
            assert!(capped.chars().count() <= max, "{max}: {capped}");
            let body = capped.strip_suffix('…').expect("cut text ends with …");
            assert!(escaped.starts_with(body), "{max}: {capped}");
            // Whole entities only: what is left unescapes to a prefix of the text.
            let unescaped = body
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&");
            assert!(text.starts_with(&unescaped), "{max}: {capped}");
            assert!(!unescaped.contains(';'), "{max}: {capped}");
        }
    }

    #[test]
    fn a_reason_that_escapes_past_the_section_limit_is_cut_to_fit_the_card() {
        let mut r = request();
        r.words = vec!["<&>".repeat(900)];
        r.reason = r.words.join(" ");
        let card = approval_card(&r);
        assert_eq!(refused_by_slack(&card), Vec::<String>::new());
        let json = serde_json::to_value(&card).unwrap();
        let text = json["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            text.chars().count() <= limits::SECTION_TEXT,
            "{}",
            text.chars().count()
        );
        let reason = text.split("*Reason:* ").nth(1).unwrap();
        assert!(reason.starts_with("&lt;&amp;&gt;&lt;") && reason.ends_with('…'));
        assert!(
            reason.chars().count() > 2000,
            "the reason gets what is left"
        );
    }

    #[test]
    fn every_block_message_stays_inside_block_kit_limits_whatever_was_typed() {
        let mut r = hostile_request();
        for state in RequestState::ALL {
            r.state = state;
            for cause in [
                EndCause::Expired,
                EndCause::EndedEarly,
                EndCause::GrantFailed,
            ] {
                r.end_cause = Some(cause);
                let card = approval_card(&r);
                assert_eq!(refused_by_slack(&card), Vec::<String>::new(), "{state:?}");
            }
        }
        let email =
            crate::domain::Email::parse(&format!("{}@example.com", "a".repeat(200))).unwrap();
        let long = "&".repeat(10_000);
        let refusals = [
            Refusal::BadDuration {
                input: long.clone(),
                min: GrantDuration::parse("5m").unwrap(),
                max: GrantDuration::parse("4h").unwrap(),
            },
            Refusal::ReasonTooLong {
                length: 20_000,
                max: 500,
            },
            Refusal::NoDirectoryAccount {
                email: email.clone(),
            },
            Refusal::AlreadyAdmin {
                hostname: long.clone(),
                through: Some(r.id.clone()),
            },
            Refusal::ApprovalsUnreachable {
                error: long.clone(),
            },
        ];
        let mut bodies = vec![PrivateBody::Sent, PrivateBody::PickDevice];
        bodies.extend(refusals.into_iter().map(PrivateBody::Refused));
        for body in &bodies {
            let message = private_message(&r, body);
            assert_eq!(refused_by_slack(&message), Vec::<String>::new(), "{body:?}");
            // Text-only answers stay short enough to read (Slack advises 4,000).
            let text = serde_json::to_value(&message).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(
                text.chars().count() <= 4000,
                "{body:?}: {}",
                text.chars().count()
            );
        }
        let events = [
            Event::GrantFailed {
                error: long.clone(),
            },
            Event::RevokeFailing {
                attempts: 9,
                error: long.clone(),
            },
            Event::Approved {
                by: ChatUserId::new("U2"),
            },
        ];
        for event in &events {
            for text in [thread_text(&r, event), direct_text(&r, event)] {
                assert!(
                    text.chars().count() <= 4000,
                    "{event:?}: {}",
                    text.chars().count()
                );
                assert!(
                    !text.contains("&&") && !text.contains("<<"),
                    "escaped: {event:?}"
                );
            }
        }
    }
}
