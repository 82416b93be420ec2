//! Adaptive Cards and message Markdown for every notice and reply in Teams,
//! from the same wording as Slack ([`crate::wording`]).
//!
//! - The approval card is an Adaptive Card 1.4 (what Teams needs for
//!   Universal Actions) with `Action.Execute` buttons whose verbs are the
//!   stable names of DESIGN.md (`tempadmin_approve`, `tempadmin_deny`,
//!   `tempadmin_revoke`, `tempadmin_pick_device`) and whose `data` carries
//!   the request id (and for the picker the JumpCloud system id).
//! - Text from outside is shown as text. On cards the reason and the device
//!   go into `RichTextBlock` `TextRun`s, which Adaptive Cards never read as
//!   Markdown; in `TextBlock`s and in message text every Markdown character
//!   is backslash-escaped and `&`, `<`, `>` become entities (Teams also reads
//!   a subset of HTML in messages, `<at>` mentions included), newlines become
//!   spaces, and `{{` cannot start a `DATE()` function. Everything is capped
//!   after escaping, so no message approaches Teams' 40 KB limit.
//! - People are shown by the name or email the adapter knows ([`People`]),
//!   times in cards as `{{DATE(…)}} {{TIME(…)}}` (the reader's time zone) and
//!   in messages as UTC text, since only cards evaluate those functions.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::connector::{card_activity, text_activity};
use super::ADAPTIVE_CARD_CONTENT_TYPE;
use crate::domain::{ChatUserId, Event, PrivateBody, Request, Timestamp};
use crate::engine::Reply;
use crate::wording::{self, CardAction, Icon, Markup};

/// `Action.Execute` verbs and `data` keys (stable interface, DESIGN "Interfaces").
pub mod verbs {
    /// Approve.
    pub const APPROVE: &str = "tempadmin_approve";
    /// Deny.
    pub const DENY: &str = "tempadmin_deny";
    /// End now.
    pub const REVOKE: &str = "tempadmin_revoke";
    /// Pick a device.
    pub const PICK_DEVICE: &str = "tempadmin_pick_device";
    /// Extend, on the requester's grant message.
    pub const EXTEND: &str = "tempadmin_extend";
    /// `data` key of the request id.
    pub const REQUEST_ID: &str = "request_id";
    /// `data` key (and the `Input.ChoiceSet` id) of the JumpCloud system id.
    pub const SYSTEM_ID: &str = "system_id";
}

/// The Adaptive Card version Teams supports `Action.Execute` in.
pub const CARD_VERSION: &str = "1.4";

/// Characters of a reason on the card, after escaping.
const REASON_TEXT: usize = 3000;
/// Characters of one message's text.
const MESSAGE_TEXT: usize = 8000;
/// Characters of a picker choice's title.
const LABEL: usize = 75;
/// Up to this many computers get a button each; more get one choice menu.
const PICKER_BUTTONS: usize = 5;
/// The most computers one picker lists, which keeps the card far below
/// Teams' message size limit.
pub const PICKER_CHOICES: usize = 200;

/// What the adapter knows about the people a message names: their display
/// name, or their email.
#[derive(Debug, Clone, Default)]
pub struct People(BTreeMap<ChatUserId, String>);

impl People {
    /// Nobody known.
    pub fn new() -> Self {
        Self::default()
    }

    /// `user` is shown as `shown`.
    pub fn insert(&mut self, user: ChatUserId, shown: String) {
        self.0.insert(user, shown);
    }

    fn get(&self, user: &ChatUserId) -> Option<&str> {
        self.0.get(user).map(String::as_str)
    }
}

/// Where text goes: a card `TextBlock` or a message's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Card,
    Message,
}

/// Teams Markdown as the wording's [`Markup`].
pub struct TeamsMarkup<'a> {
    mode: Mode,
    people: &'a People,
}

impl<'a> TeamsMarkup<'a> {
    /// For text in a card `TextBlock`.
    pub fn card(people: &'a People) -> Self {
        Self {
            mode: Mode::Card,
            people,
        }
    }

    /// For a message's text (`textFormat: markdown`).
    pub fn message(people: &'a People) -> Self {
        Self {
            mode: Mode::Message,
            people,
        }
    }
}

/// One character of outside text, made inert for Teams Markdown.
fn escaped_char(c: char, out: &mut String) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '\r' | '\n' | '\t' => out.push(' '),
        '\\' | '*' | '_' | '`' | '[' | ']' | '(' | ')' | '~' | '#' | '{' | '}' | '|' | '!'
        | '+' | '-' | '.' | '=' => {
            out.push('\\');
            out.push(c);
        }
        c => out.push(c),
    }
}

/// `text` escaped for Teams Markdown in at most `max` characters; cut
/// before the first character that would not fit, never inside an escape,
/// and ending with `…` when cut.
pub fn escape_within(text: &str, max: usize) -> String {
    capped(text, max, escaped_char)
}

/// `text` as it is (for `TextRun`s) in at most `max` characters.
pub fn literal_within(text: &str, max: usize) -> String {
    capped(text, max, |c, out| out.push(c))
}

fn capped(text: &str, max: usize, piece: impl Fn(char, &mut String)) -> String {
    let mut whole = String::new();
    for c in text.chars() {
        piece(c, &mut whole);
    }
    if whole.chars().count() <= max {
        return whole;
    }
    let mut out = String::new();
    let mut used = 0;
    let mut one = String::new();
    for c in text.chars() {
        one.clear();
        piece(c, &mut one);
        let length = one.chars().count();
        if used + length + 1 > max {
            break;
        }
        out.push_str(&one);
        used += length;
    }
    if max > 0 {
        out.push('…');
    }
    out
}

impl Markup for TeamsMarkup<'_> {
    fn service(&self) -> &'static str {
        "Teams"
    }

    fn text(&self, text: &str, max: usize) -> String {
        escape_within(text, max)
    }

    fn hostname(&self, name: &str) -> String {
        match self.mode {
            // Card TextBlocks have no code spans.
            Mode::Card => escape_within(name, wording::HOSTNAME_TEXT),
            // Nothing inside a code span is formatted, backslashes included;
            // a backtick would end it, so it becomes the look-alike `ˋ`.
            Mode::Message => {
                let mut inner = String::new();
                for c in name.chars() {
                    match c {
                        '`' => inner.push('ˋ'),
                        '&' => inner.push_str("&amp;"),
                        '<' => inner.push_str("&lt;"),
                        '>' => inner.push_str("&gt;"),
                        '\r' | '\n' | '\t' => inner.push(' '),
                        c => inner.push(c),
                    }
                }
                format!("`{}`", literal_within(&inner, wording::HOSTNAME_TEXT))
            }
        }
    }

    fn code(&self, text: &str) -> String {
        match self.mode {
            Mode::Card => text.to_string(),
            Mode::Message => format!("`{text}`"),
        }
    }

    fn command(&self, args: &str) -> String {
        let typed = match args {
            "" => "tempadmin".to_string(),
            args => format!("tempadmin {args}"),
        };
        self.code(&typed)
    }

    fn bold(&self, text: &str) -> String {
        format!("**{text}**")
    }

    fn person(&self, user: &ChatUserId) -> String {
        match self.people.get(user) {
            Some(shown) => escape_within(shown, 120),
            None => "a Teams user".to_string(),
        }
    }

    fn time(&self, t: Timestamp) -> String {
        match self.mode {
            Mode::Card => {
                let at = t.format("%Y-%m-%dT%H:%M:%SZ");
                format!("{{{{DATE({at}, SHORT)}}}} {{{{TIME({at})}}}}")
            }
            Mode::Message => t.format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }

    fn icon(&self, icon: Icon) -> String {
        format!("{} ", icon.unicode())
    }

    /// An `Input.ChoiceSet` filters as the reader types only in its
    /// `filtered` style, which came with Adaptive Cards 1.5; we send
    /// [`CARD_VERSION`].
    fn menu_filters(&self) -> bool {
        FILTERED_CHOICES
    }
}

/// Whether our cards' version has the `filtered` `Input.ChoiceSet` (1.5).
const FILTERED_CHOICES: bool = false;

fn text_block(text: String) -> Value {
    json!({ "type": "TextBlock", "text": text, "wrap": true })
}

/// Text from outside, shown exactly: a `TextRun` is never read as Markdown.
fn literal_block(text: String) -> Value {
    json!({
        "type": "RichTextBlock",
        "inlines": [{ "type": "TextRun", "text": text }]
    })
}

fn execute(title: &str, verb: &str, data: Value, style: Option<&str>) -> Value {
    let mut action =
        json!({ "type": "Action.Execute", "title": title, "verb": verb, "data": data });
    if let Some(style) = style {
        action["style"] = json!(style);
    }
    action
}

fn card(body: Vec<Value>, actions: Vec<Value>) -> Value {
    json!({
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "body": body,
        "actions": actions
    })
}

/// The approval card, as it should look in the request's current state.
pub fn approval_card(r: &Request, people: &People) -> Value {
    let m = TeamsMarkup::card(people);
    let data = json!({ verbs::REQUEST_ID: r.id.as_str() });
    let actions = wording::request_actions(r)
        .iter()
        .map(|action| match action {
            CardAction::Approve => execute(
                action.label(),
                verbs::APPROVE,
                data.clone(),
                Some("positive"),
            ),
            CardAction::Deny => execute(
                action.label(),
                verbs::DENY,
                data.clone(),
                Some("destructive"),
            ),
            CardAction::EndNow => execute(
                action.label(),
                verbs::REVOKE,
                data.clone(),
                Some("destructive"),
            ),
        })
        .collect();
    let reason = if r.reason.trim().is_empty() {
        "none given".to_string()
    } else {
        literal_within(&r.reason, REASON_TEXT)
    };
    let device = match r.device() {
        Some(d) => format!(
            "Device: {} ({}, {})",
            literal_within(&d.hostname, wording::HOSTNAME_TEXT),
            literal_within(wording::os_name(&d.os_family), wording::OS_TEXT),
            if d.online { "online" } else { "offline" }
        ),
        None => "Device: unknown".to_string(),
    };
    let mut footer = text_block(wording::card_footer(&m, r));
    footer["isSubtle"] = json!(true);
    card(
        vec![
            text_block(wording::card_summary(&m, r)),
            literal_block(device),
            literal_block(format!("{}{reason}", wording::REASON_LABEL)),
            footer,
        ],
        actions,
    )
}

/// The approval card as a message activity, with a one-line summary for
/// notifications.
pub fn approval_activity(r: &Request, people: &People) -> Value {
    let mut activity = card_activity(approval_card(r, people));
    activity["summary"] = json!(literal_within(
        &wording::card_fallback(&TeamsMarkup::message(people), r),
        MESSAGE_TEXT
    ));
    activity
}

/// The answer to an `adaptiveCard/action` invoke that shows `card` in place
/// of the clicked one.
pub fn invoke_card_answer(card: Value) -> Value {
    json!({ "statusCode": 200, "type": ADAPTIVE_CARD_CONTENT_TYPE, "value": card })
}

/// The answer to an `adaptiveCard/action` invoke that shows a short message.
pub fn invoke_message_answer(text: &str) -> Value {
    json!({ "statusCode": 200, "type": "application/vnd.microsoft.activity.message", "value": text })
}

fn message(text: String) -> Value {
    text_activity(&literal_within(&text, MESSAGE_TEXT))
}

/// A reply in the approval card's thread.
pub fn thread_activity(r: &Request, event: &Event, people: &People) -> Value {
    message(wording::thread_text(
        &TeamsMarkup::message(people),
        r,
        event,
    ))
}

/// The approvers in words: those configured by email by their email; those
/// configured by object id, and the groups, counted (Teams shows no name
/// for an object id the bot has not met).
pub fn approver_names(approvers: &[String], groups: usize) -> String {
    let people = People::new();
    let m = TeamsMarkup::message(&people);
    let mut names: Vec<String> = approvers
        .iter()
        .filter(|a| a.contains('@'))
        .map(|a| m.text(a.trim(), wording::EMAIL_TEXT))
        .collect();
    let others = approvers.len() - names.len();
    // "more" only after names it adds to.
    let more = if names.is_empty() { "" } else { "more " };
    if others > 0 {
        names.push(match others {
            1 => format!("1 {more}approver"),
            n => format!("{n} {more}approvers"),
        });
    }
    if groups > 0 {
        names.push(match groups {
            1 => "the approver group".to_string(),
            n => format!("the {n} approver groups"),
        });
    }
    match names.as_slice() {
        [] => "Approvers".to_string(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The reminder in the card's thread of an undecided request, naming the
/// approvers ([`approver_names`]).
pub fn approval_reminder_activity(
    r: &Request,
    approvers: &str,
    expires_at: Timestamp,
    people: &People,
) -> Value {
    message(wording::approval_reminder_text(
        &TeamsMarkup::message(people),
        r,
        approvers,
        expires_at,
    ))
}

/// A direct message to the requester. The grant's own message, while the
/// grant is active, carries a small card with an **Extend** button below
/// its text (the text stays the message's, as every other direct message).
pub fn direct_activity(r: &Request, event: &Event, people: &People) -> Value {
    let text = wording::direct_text(&TeamsMarkup::message(people), r, event);
    if !wording::offers_extend(r, event) {
        return message(text);
    }
    let data = json!({ verbs::REQUEST_ID: r.id.as_str() });
    let extend = execute(wording::EXTEND_LABEL, verbs::EXTEND, data, None);
    let body = text_block(wording::EXTEND_OFFER.to_string());
    let mut activity = card_activity(card(vec![body], vec![extend]));
    activity["text"] = json!(literal_within(&text, MESSAGE_TEXT));
    activity["textFormat"] = json!("markdown");
    activity
}

/// A private answer: text, or the device picker card.
pub fn private_activity(r: &Request, body: &PrivateBody, people: &People) -> Value {
    match wording::private_text(&TeamsMarkup::message(people), r, body) {
        Some(text) => message(text),
        None => card_activity(device_picker(r, people)),
    }
}

/// The immediate answer to a command.
pub fn reply_activity(reply: &Reply, people: &People) -> Value {
    message(wording::reply_text(&TeamsMarkup::message(people), reply))
}

/// The device choice: one `Action.Execute` per computer (`data`: request
/// id and system id), or with many an `Input.ChoiceSet` named `system_id`
/// and one button, whose `data` Teams merges with the chosen value.
pub fn device_picker(r: &Request, people: &People) -> Value {
    let m = TeamsMarkup::card(people);
    let devices = r.candidates();
    let shown = devices.len().min(PICKER_CHOICES);
    let labels = wording::device_labels(&devices[..shown], LABEL);
    let question = text_block(wording::picker_text(
        &m,
        r,
        shown,
        devices.len() > PICKER_BUTTONS,
    ));
    if devices.len() <= PICKER_BUTTONS {
        let buttons = devices
            .iter()
            .zip(&labels)
            .map(|(d, label)| {
                let data =
                    json!({ verbs::REQUEST_ID: r.id.as_str(), verbs::SYSTEM_ID: d.id.as_str() });
                execute(label, verbs::PICK_DEVICE, data, None)
            })
            .collect();
        return card(vec![question], buttons);
    }
    let choices: Vec<Value> = devices[..shown]
        .iter()
        .zip(&labels)
        .map(|(d, label)| json!({ "title": label, "value": d.id.as_str() }))
        .collect();
    let menu = json!({
        "type": "Input.ChoiceSet",
        "id": verbs::SYSTEM_ID,
        "label": "Computer",
        "style": if FILTERED_CHOICES { "filtered" } else { "compact" },
        "isRequired": true,
        "errorMessage": "Choose a computer first.",
        "placeholder": "Choose a computer",
        "choices": choices
    });
    let data = json!({ verbs::REQUEST_ID: r.id.as_str() });
    card(
        vec![question, menu],
        vec![execute(
            "Use this computer",
            verbs::PICK_DEVICE,
            data,
            Some("positive"),
        )],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::stage::{AwaitingDevice, PendingApproval};
    use crate::domain::{
        Account, Decision, Device, Email, Grant, GrantDuration, JcUserId, Move, PriorState, Stage,
        SystemId,
    };

    fn request() -> Request {
        let mut r = Request::new(
            ChatUserId::teams("29:ada"),
            Some("conv:a:1ada".into()),
            GrantDuration::parse("20m").unwrap(),
            vec![
                "**bold**".into(),
                "<at>Everyone</at>".into(),
                "{{DATE(x)}}".into(),
            ],
            chrono::Utc::now(),
        );
        r.stage = Stage::PendingApproval(PendingApproval {
            account: account(),
            device: Device {
                id: SystemId::new("s1"),
                hostname: "ada-mac".into(),
                display_name: "ada-mac".into(),
                os_family: "darwin".into(),
                online: true,
                compiled_sudo: false,
            },
            reminded_at: None,
        });
        r
    }

    fn account() -> Account {
        Account {
            email: Email::parse("ada@example.com").unwrap(),
            jc_user: JcUserId::new("jc1"),
        }
    }

    fn awaiting(candidates: Vec<Device>) -> Stage {
        Stage::AwaitingDevice(AwaitingDevice {
            account: account(),
            candidates,
        })
    }

    fn people() -> People {
        let mut p = People::new();
        p.insert(ChatUserId::teams("29:ada"), "Ada Lovelace".into());
        p.insert(ChatUserId::teams("29:grace"), "Grace *Hopper*".into());
        p
    }

    #[test]
    fn approvers_without_a_name_are_counted_and_more_only_follows_names() {
        let ids = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            approver_names(&ids(&["00000000-0000-0000-0000-000000000001"]), 0),
            "1 approver"
        );
        assert_eq!(
            approver_names(&ids(&["oid-1", "oid-2"]), 1),
            "2 approvers and the approver group"
        );
        let named = approver_names(&ids(&["grace@example.com", "oid-1"]), 0);
        assert!(named.ends_with(" and 1 more approver"), "{named}");
    }

    #[test]
    fn a_pending_card_offers_approve_and_deny_with_the_request_id() {
        let r = request();
        let card = approval_card(&r, &people());
        assert_eq!(card["version"], CARD_VERSION);
        let actions = card["actions"].as_array().unwrap();
        let verbs: Vec<&str> = actions
            .iter()
            .map(|a| a["verb"].as_str().unwrap())
            .collect();
        assert_eq!(verbs, [verbs::APPROVE, verbs::DENY]);
        assert!(actions.iter().all(
            |a| a["type"] == "Action.Execute" && a["data"][verbs::REQUEST_ID] == r.id.as_str()
        ));
        assert!(card["body"][0]["text"]
            .as_str()
            .unwrap()
            .contains("by Ada Lovelace"));
    }

    #[test]
    fn the_reason_is_a_text_run_and_never_markdown() {
        let card = approval_card(&request(), &people());
        let reason = &card["body"][2];
        assert_eq!(reason["type"], "RichTextBlock");
        assert_eq!(
            reason["inlines"][0]["text"],
            "Reason: **bold** <at>Everyone</at> {{DATE(x)}}"
        );
    }

    #[test]
    fn a_decided_card_shows_who_decided_with_their_name_escaped_and_a_local_time() {
        let mut r = request();
        let now = chrono::Utc::now();
        r = r
            .apply(Move::Approve(Decision {
                by: ChatUserId::teams("29:grace"),
                at: now,
            }))
            .and_then(|r| {
                r.apply(Move::RecordGrant(Grant {
                    record: PriorState {
                        global_sudo: false,
                        direct: None,
                        compiled_sudo: false,
                    }
                    .into(),
                    expires_at: now,
                }))
            })
            .and_then(|r| {
                let record = r.stage.grant().unwrap().record.clone();
                r.apply(Move::Elevate { at: now, record })
            })
            .unwrap();
        let card = approval_card(&r, &people());
        let verbs: Vec<&str> = card["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["verb"].as_str().unwrap())
            .collect();
        assert_eq!(verbs, [verbs::REVOKE]);
        let footer = card["body"][3]["text"].as_str().unwrap();
        assert!(footer.contains("Grace \\*Hopper\\*"), "{footer}");
        assert!(
            footer.contains("{{DATE(") && footer.contains("{{TIME("),
            "{footer}"
        );
    }

    #[test]
    fn message_text_from_outside_cannot_mention_format_or_call_a_function() {
        let escaped = escape_within("<at>x</at> **y** {{DATE(z)}}", 500);
        assert!(!escaped.contains("<at>") && !escaped.contains("**") && !escaped.contains("{{"));
        for max in 1..40 {
            let capped = escape_within("<&>*_x".repeat(10).as_str(), max);
            assert!(capped.chars().count() <= max, "{max}: {capped}");
            let body = capped.trim_end_matches('…');
            assert!(
                !body.ends_with('\\') && !body.ends_with('&'),
                "{max}: {capped}"
            );
        }
    }

    #[test]
    fn many_computers_get_one_menu_and_few_get_buttons() {
        let mut r = request();
        let computer = |n: usize| Device {
            id: SystemId::new(format!("sys{n:04}")),
            hostname: format!("lab-{n}"),
            display_name: format!("lab-{n}"),
            os_family: "linux".into(),
            online: true,
            compiled_sudo: false,
        };
        r.stage = awaiting((0..2).map(computer).collect());
        let few = device_picker(&r, &people());
        let actions = few["actions"].as_array().unwrap();
        assert_eq!(actions.len(), 2);
        assert_eq!(actions[1]["data"][verbs::SYSTEM_ID], "sys0001");
        r.stage = awaiting((0..6).map(computer).collect());
        let menu = device_picker(&r, &people());
        assert_eq!(menu["body"][1]["type"], "Input.ChoiceSet");
        assert_eq!(menu["body"][1]["label"], "Computer", "an input has a label");
        let question = menu["body"][0]["text"].as_str().unwrap();
        assert_eq!(CARD_VERSION, "1.4");
        assert_eq!(menu["body"][1]["style"], "compact");
        assert!(
            question.contains("Pick it from the menu") && !question.contains("type to filter"),
            "a 1.4 menu does not filter: {question}"
        );
        r.stage = awaiting((0..300).map(computer).collect());
        let many = device_picker(&r, &people());
        assert_eq!(many["body"][1]["type"], "Input.ChoiceSet");
        assert_eq!(
            many["body"][1]["choices"].as_array().unwrap().len(),
            PICKER_CHOICES
        );
        assert!(many["body"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Teams can list only the first 200"));
    }

    #[test]
    fn the_longest_picker_and_card_stay_within_teams_recommended_80_kb_as_utf16() {
        let mut r = request();
        // Names that weigh the most: as long as shown, in characters that
        // JSON escapes or UTF-16 needs two units for.
        let long = "\u{1F5A5}\"<".repeat(wording::HOSTNAME_TEXT);
        r.stage = awaiting(
            (0..PICKER_CHOICES)
                .map(|n| Device {
                    id: SystemId::new(format!("{n:024}")),
                    hostname: long.clone(),
                    display_name: long.clone(),
                    os_family: "windows".into(),
                    online: true,
                    compiled_sudo: false,
                })
                .collect(),
        );
        let recommended = 80 * 1024;
        let picker = card_activity(device_picker(&r, &people())).to_string();
        let weight = crate::sim::teams::utf16_size(picker.as_bytes());
        assert!(weight <= recommended, "{weight} bytes as UTF-16");
        r.reason = "\u{1F5A5}\"".repeat(REASON_TEXT);
        r.stage = Stage::PendingApproval(PendingApproval {
            account: account(),
            device: r.candidates().first().cloned().unwrap(),
            reminded_at: None,
        });
        let card = approval_activity(&r, &people()).to_string();
        let weight = crate::sim::teams::utf16_size(card.as_bytes());
        assert!(weight <= recommended, "{weight} bytes as UTF-16");
    }
}
