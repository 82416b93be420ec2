//! Block Kit and mrkdwn for every notice and reply. Text a person typed is
//! escaped (`&`, `<`, `>`) so nobody can ping `@channel` or forge a link
//! through a reason; ids from Slack itself are trusted.

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
        "`{}` ({}, {})",
        escape(&d.hostname),
        os_name(&d.os_family),
        if d.online { "online" } else { "offline" }
    )
}

fn host(request: &Request) -> String {
    request
        .device
        .as_ref()
        .map(|d| format!("`{}`", escape(&d.hostname)))
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
    let reason = if r.reason.trim().is_empty() {
        "_none given_".to_string()
    } else {
        escape(&r.reason)
    };
    let summary = format!(
        ":key: *Admin rights requested* by {}\n*Device:* {}\n*For:* {}\n*Reason:* {}",
        mention(&r.requester),
        device,
        r.duration,
        reason
    );
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
            escape(error)
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
            escape(error)
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
            escape(input)
        ),
        Refusal::DurationOutOfRange { requested, min, max } => format!(
            "{requested} is outside what the policy allows: between {min} and {max}. Try `/tempadmin {max} …` or less."
        ),
        Refusal::ReasonRequired => "Please say why you need admin rights: `/tempadmin 20m install printer driver`.".into(),
        Refusal::NoEmail => "Your Slack profile has no email address, so tempadmin cannot find your JumpCloud account. Ask IT to check your profile.".into(),
        Refusal::NoDirectoryAccount { email } => format!(
            "No JumpCloud account has the email {}. Ask IT to make your JumpCloud email match your Slack email.",
            escape(email.as_str())
        ),
        Refusal::AmbiguousDirectoryAccount { email, accounts } => format!(
            "{accounts} JumpCloud accounts have the email {}, so tempadmin will not guess which one is yours. Ask IT to remove or rename the duplicate.",
            escape(email.as_str())
        ),
        Refusal::Suspended { email } => format!("The JumpCloud account {} is suspended. Ask IT.", escape(email.as_str())),
        Refusal::NoEligibleDevice { email } => format!(
            "No computer is bound to the JumpCloud account {} (phones and tablets don't count). Ask IT to bind your computer to your account.",
            escape(email.as_str())
        ),
        Refusal::AlreadyAdmin { hostname, through: None } => {
            format!("You are already an administrator on `{}`; there is nothing to grant.", escape(hostname))
        }
        Refusal::AlreadyAdmin { hostname, through: Some(id) } => format!(
            "Request `{id}` for `{}` is already open. See it with `/tempadmin status`.",
            escape(hostname)
        ),
        Refusal::DirectoryUnavailable => "JumpCloud is not answering right now. Nothing was sent to the approvers; please try again in a few minutes.".into(),
        Refusal::DirectoryMisconfigured => "tempadmin cannot use JumpCloud: its API key was refused. Nothing was sent to the approvers; please tell IT.".into(),
        Refusal::ChatUnavailable => "Slack did not answer a look-up tempadmin needs. Please try again in a minute.".into(),
        Refusal::ApprovalsUnreachable { error } => format!(
            "tempadmin could not post your request to the approvers' channel (Slack said `{}`). Nothing was changed; please tell IT.",
            escape(error)
        ),
        Refusal::NotApprover => "Only approvers can approve or deny requests.".into(),
        Refusal::OwnRequest => "You can't decide your own request; another approver has to.".into(),
        Refusal::AlreadyDecided { state } => format!("Nothing changed: this request is already {}.", state_words(*state)),
        Refusal::NotAllowedToEnd => "Only the requester or an approver can end this elevation.".into(),
        Refusal::NothingToRevoke => "You have no active elevation and no pending request.".into(),
        Refusal::Busy => "tempadmin is very busy right now, so nothing was requested. Please try again in a minute.".into(),
        Refusal::DeviceNotOffered => "That device can't be chosen for this request any more. Start again with `/tempadmin`.".into(),
        Refusal::DeviceNoLongerBound { hostname } => format!(
            "`{}` is no longer one of the computers bound to your JumpCloud account. Ask IT.",
            escape(hostname)
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
        PrivateBody::PickDevice => {
            let text = "You have several computers. Which one do you need admin rights on?".to_string();
            let buttons: Vec<_> = r
                .candidates
                .iter()
                .take(25)
                .map(|d| {
                    let label = format!(
                        "{} ({}, {})",
                        d.hostname,
                        os_name(&d.os_family),
                        if d.online { "online" } else { "offline" }
                    );
                    button(actions::PICK_DEVICE, &label.chars().take(75).collect::<String>(), d.id.as_str(), None)
                })
                .collect();
            let picker = SlackActionsBlock::new(buttons).with_block_id(SlackBlockId::new(format!("pick:{}", r.id)));
            message(text.clone(), vec![section(text), picker.into()])
        }
    }
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
}
