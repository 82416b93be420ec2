//! Block Kit and mrkdwn for every notice and reply. Text a person typed or
//! JumpCloud reported is shown as text: on the approval card the reason and
//! the device go into `plain_text` objects (no formatting, no emoji codes),
//! our own mrkdwn is `verbatim` (nothing in it is auto-linked), hostnames in
//! mrkdwn messages sit in code spans they cannot close, and `&`, `<`, `>`
//! are always escaped, so nobody can ping `@channel`, forge a link or bold
//! a word through a reason; ids from Slack itself are trusted. Text from outside
//! (reasons, hostnames, error strings) is capped after escaping, so every
//! block stays inside Block Kit's limits and Slack never refuses a message
//! for what someone typed or JumpCloud reported.

use slack_morphism::prelude::*;

use super::actions;
use crate::domain::{ChatUserId, Event, PrivateBody, Refusal, Request, RequestState, Timestamp};
use crate::engine::home::Home;
use crate::engine::Reply;
use crate::wording::{self, CardAction, Icon, Markup};

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

/// Slack's mrkdwn as the wording's [`Markup`]: exactly the text Slack
/// messages have always had.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mrkdwn;

impl Markup for Mrkdwn {
    fn service(&self) -> &'static str {
        "Slack"
    }

    fn text(&self, text: &str, max: usize) -> String {
        escape_within(text, max)
    }

    /// A hostname as code, escaped and capped. Nothing inside a code span is
    /// formatted; a backtick in the name would end the span early, so it is
    /// shown as the look-alike `ˋ` instead.
    fn hostname(&self, name: &str) -> String {
        format!(
            "`{}`",
            escape_within(&name.replace('`', "ˋ"), wording::HOSTNAME_TEXT)
        )
    }

    fn code(&self, text: &str) -> String {
        format!("`{text}`")
    }

    fn command(&self, args: &str) -> String {
        match args {
            "" => "`/tempadmin`".to_string(),
            args => format!("`/tempadmin {args}`"),
        }
    }

    fn bold(&self, text: &str) -> String {
        format!("*{text}*")
    }

    fn person(&self, user: &ChatUserId) -> String {
        format!("<@{user}>")
    }

    /// A time every reader sees in their own time zone, with a UTC fallback.
    fn time(&self, t: Timestamp) -> String {
        format!(
            "<!date^{}^{{date_short_pretty}} {{time}}|{}>",
            t.timestamp(),
            t.format("%Y-%m-%d %H:%M UTC")
        )
    }

    fn icon(&self, icon: Icon) -> String {
        format!("{} ", icon.slack_code())
    }

    /// A `static_select` filters as the reader types.
    fn menu_filters(&self) -> bool {
        true
    }
}

/// Our own mrkdwn. `verbatim`: Slack still reads our formatting and the
/// mentions and dates we write as `<…>`, but links no bare URL, channel
/// name or `@word` on its own.
fn mrkdwn(text: String) -> SlackBlockMarkDownText {
    SlackBlockMarkDownText::new(text).with_verbatim(true)
}

fn section(text: String) -> SlackBlock {
    SlackSectionBlock::new()
        .with_text(SlackBlockText::MarkDown(mrkdwn(text)))
        .into()
}

/// A section of text from outside (a reason, a hostname), shown exactly as
/// written: `plain_text` has no formatting, and `emoji: false` keeps
/// `:codes:` as typed. Still escaped, as Slack reads `&`, `<`, `>` as
/// entities in any text.
fn literal(text: String) -> SlackBlock {
    SlackSectionBlock::new()
        .with_text(SlackBlockText::Plain(
            SlackBlockPlainText::new(text).with_emoji(false),
        ))
        .into()
}

fn context(text: String) -> SlackBlock {
    SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(mrkdwn(text))]).into()
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
    let m = Mrkdwn;
    // The reason gets whatever the section's limit leaves; the policy caps
    // it long before that, but a raised cap must not cost the approval.
    let reason = wording::card_reason(&m, r, limits::SECTION_TEXT);
    let buttons: Vec<SlackActionBlockElement> = wording::request_actions(r)
        .iter()
        .map(|action| match action {
            CardAction::Approve => button(
                actions::APPROVE,
                action.label(),
                r.id.as_str(),
                Some(SlackBlockButtonStyle::Primary),
            ),
            CardAction::Deny => button(
                actions::DENY,
                action.label(),
                r.id.as_str(),
                Some(SlackBlockButtonStyle::Danger),
            ),
            CardAction::EndNow => button(
                actions::REVOKE,
                action.label(),
                r.id.as_str(),
                Some(SlackBlockButtonStyle::Danger),
            ),
        })
        .collect();
    let mut blocks = vec![
        section(wording::card_summary(&m, r)),
        literal(wording::card_device(&m, r)),
        literal(format!("{}{reason}", wording::REASON_LABEL)),
        context(wording::card_footer(&m, r)),
    ];
    if !buttons.is_empty() {
        blocks.push(SlackActionsBlock::new(buttons).into());
    }
    message(wording::card_fallback(&m, r), blocks)
}

/// A reply in the approval thread.
pub fn thread_text(r: &Request, event: &Event) -> String {
    wording::thread_text(&Mrkdwn, r, event)
}

/// The configured approvers as Slack mentions: `<!subteam^S…>` pings a
/// user group, `<@U…>` a person. Only ids of letters and digits become
/// mentions; anything else is shown escaped, as text.
pub fn approver_mentions(approvers: &[String]) -> String {
    let mention = |id: &String| {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return escape_within(id, 40);
        }
        match id.starts_with('S') {
            true => format!("<!subteam^{id}>"),
            false => format!("<@{id}>"),
        }
    };
    match approvers.iter().map(mention).collect::<Vec<_>>().as_slice() {
        [] => "Approvers".to_string(),
        names => names.join(" "),
    }
}

/// The reminder in the thread of an undecided request, naming the
/// approvers so that Slack notifies them.
pub fn approval_reminder(r: &Request, approvers: &[String], expires_at: Timestamp) -> String {
    wording::approval_reminder_text(&Mrkdwn, r, &approver_mentions(approvers), expires_at)
}

/// A direct message to the requester.
pub fn direct_text(r: &Request, event: &Event) -> String {
    wording::direct_text(&Mrkdwn, r, event)
}

/// A direct message to the requester; the grant's own message carries an
/// **Extend** button while the grant is active.
pub fn direct_message(r: &Request, event: &Event) -> SlackMessageContent {
    let text = direct_text(r, event);
    if !wording::offers_extend(r, event) {
        return message(text, vec![]);
    }
    let extend = button(actions::EXTEND, wording::EXTEND_LABEL, r.id.as_str(), None);
    let blocks = vec![
        section(text.clone()),
        SlackActionsBlock::new(vec![extend]).into(),
    ];
    message(text, blocks)
}

/// Why something was refused, said to the person.
pub fn refusal_text(refusal: &Refusal) -> String {
    wording::refusal_text(&Mrkdwn, refusal)
}

/// A private answer (through the `response_url`).
pub fn private_message(r: &Request, body: &PrivateBody) -> SlackMessageContent {
    match wording::private_text(&Mrkdwn, r, body) {
        Some(text) => message(text, vec![]),
        None => device_picker(r),
    }
}

/// Where an approver goes to decide a pending request: the permalink of its
/// card (`chat.getPermalink`), or the approvals channel when Slack gave none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardLink {
    /// The card's permalink.
    Permalink(String),
    /// The approvals channel.
    Channel(String),
}

impl CardLink {
    /// The link in mrkdwn; a permalink that could close the link early is
    /// not used (Slack's own never contain `|` or `>`).
    fn mrkdwn(&self) -> String {
        match self {
            Self::Permalink(url)
                if url.starts_with("https://") && !url.contains(['|', '>', '<', ' ']) =>
            {
                format!("<{url}|{}>", wording::HOME_DECIDE_ON_CARD)
            }
            Self::Permalink(_) => wording::HOME_DECIDE_ON_CARD.to_string(),
            Self::Channel(channel) => format!("{} in <#{channel}>", wording::HOME_DECIDE_ON_CARD),
        }
    }
}

fn header(text: &str) -> SlackBlock {
    SlackHeaderBlock::new(SlackBlockPlainTextOnly::from(text.to_string())).into()
}

/// The person's Home tab: their own requests (open and recent, with End now
/// on one that holds rights), and for an approver the requests waiting for
/// a decision with a link to each card, where Approve and Deny are (they
/// count only in the approvals channel). At most [`limits::VIEW_BLOCKS`]
/// blocks: one section per request, whatever the counts the engine sends.
pub fn home_view(
    home: &Home,
    links: &std::collections::HashMap<crate::domain::RequestId, CardLink>,
) -> SlackView {
    let m = Mrkdwn;
    let mut blocks = vec![header(wording::HOME_MINE_TITLE)];
    if home.mine.is_empty() {
        blocks.push(section(wording::home_nothing_yet(
            &m,
            crate::engine::home::RECENT_DAYS,
        )));
    }
    // Leave room for the approvers' part: its heading, divider and note.
    let room = |blocks: &Vec<SlackBlock>, reserve: usize| {
        limits::VIEW_BLOCKS.saturating_sub(blocks.len() + reserve)
    };
    let reserve = if home.to_decide.is_some() { 4 } else { 0 };
    for r in home.mine.iter().take(room(&blocks, reserve)) {
        let mut line = SlackSectionBlock::new().with_text(SlackBlockText::MarkDown(mrkdwn(
            wording::home_request_line(&m, r),
        )));
        if matches!(r.state(), RequestState::Approved | RequestState::Active) {
            let end = SlackBlockButtonElement::new(SlackBlockPlainTextOnly::from(
                CardAction::EndNow.label().to_string(),
            ))
            .with_action_id(SlackActionId::new(actions::REVOKE.to_string()))
            .with_value(r.id.to_string())
            .with_style(SlackBlockButtonStyle::Danger);
            line = line.with_accessory(SlackSectionBlockElement::Button(end));
        }
        blocks.push(line.into());
    }
    if let Some(pending) = &home.to_decide {
        blocks.push(SlackDividerBlock::new().into());
        blocks.push(header(wording::HOME_PENDING_TITLE));
        if pending.is_empty() {
            blocks.push(section(wording::HOME_NOTHING_PENDING.to_string()));
        }
        for r in pending.iter().take(room(&blocks, 0)) {
            // The reason gets what the section leaves after the rest.
            let mut text = wording::home_pending_line(&m, r, 1_000);
            if let Some(link) = links.get(&r.id) {
                text = format!("{text}\n{}", link.mrkdwn());
            }
            blocks.push(section(text));
        }
    }
    SlackView::Home(SlackHomeView::new(blocks))
}

/// Block Kit limits that Slack enforces with `invalid_blocks` (the
/// simulator refuses the same).
mod limits {
    /// Blocks in a view (the Home tab).
    pub const VIEW_BLOCKS: usize = 100;
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
    let devices = r.candidates();
    let labels = wording::device_labels(devices, limits::LABEL);
    let shown = devices
        .len()
        .min(limits::SELECT_OPTIONS * limits::ACTIONS_ELEMENTS);
    let text = wording::picker_text(&Mrkdwn, r, shown, devices.len() > PICKER_BUTTONS);
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

/// The answer to a command from another workspace or app.
pub fn not_ours() -> SlackMessageContent {
    SlackMessageContent::new()
        .with_text("tempadmin is not set up for this workspace. Nothing was done.".into())
}

/// The answer to a command while tempadmin has not yet learnt from Slack
/// which workspace and app it serves.
pub fn not_ready() -> SlackMessageContent {
    SlackMessageContent::new().with_text(wording::NOT_READY.into())
}

/// The immediate answer to a slash command.
pub fn reply_message(reply: &Reply) -> SlackMessageContent {
    message(wording::reply_text(&Mrkdwn, reply), vec![])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::stage::{AwaitingDevice, PendingApproval};
    use crate::domain::{
        Account, ChatUserId, Decision, Device, DirectBinding, Email, EndCause, Grant,
        GrantDuration, JcUserId, Known, Move, PriorState, RequestState, Stage, SystemId,
    };

    fn account() -> Account {
        Account {
            email: Email::parse("ada@example.com").unwrap(),
            jc_user: JcUserId::new("jc1"),
        }
    }

    /// Every fact some stage can hold, as `hostile_request` had them all.
    fn known(device: Device, candidates: Vec<Device>, cause: EndCause) -> Known {
        let now = chrono::Utc::now();
        Known {
            account: account(),
            device,
            candidates,
            decision: Decision {
                by: ChatUserId::slack("U2"),
                at: now,
            },
            grant: Grant {
                record: PriorState {
                    global_sudo: false,
                    direct: Some(DirectBinding {
                        sudo: false,
                        without_password: false,
                    }),
                    compiled_sudo: false,
                }
                .into(),
                expires_at: now,
            },
            elevated_at: now,
            end_cause: cause,
            ended_by: Some(ChatUserId::slack("U2")),
            ended_at: now,
            left_alone: false,
        }
    }

    fn request() -> Request {
        let mut r = Request::new(
            ChatUserId::slack("U1"),
            None,
            GrantDuration::parse("20m").unwrap(),
            vec![
                "<!channel>".into(),
                "&".into(),
                "<http://evil|click>".into(),
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
        r = r
            .apply(Move::Deny(Decision {
                by: ChatUserId::slack("U2"),
                at: chrono::Utc::now(),
            }))
            .unwrap();
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
        r.stage = Stage::AwaitingDevice(AwaitingDevice {
            account: account(),
            candidates: devices,
        });
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
        r.stage = Stage::from_known(
            RequestState::PendingApproval,
            &hostile_known(EndCause::EndedEarly),
        );
        r
    }

    /// Every fact some stage can hold, each as long and hostile as it gets.
    fn hostile_known(cause: EndCause) -> Known {
        let device = Device {
            id: SystemId::new("5f3c00000000000000000001"),
            hostname: "<".repeat(1000),
            display_name: ">".repeat(1000),
            os_family: "&".repeat(500),
            online: false,
            compiled_sudo: false,
        };
        let candidates = (0..3)
            .map(|n| Device {
                id: SystemId::new(format!("5f3c0000000000000000000{n}")),
                ..device.clone()
            })
            .collect();
        known(device, candidates, cause)
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
        let text = json["blocks"][2]["text"]["text"].as_str().unwrap();
        assert!(
            text.chars().count() <= limits::SECTION_TEXT,
            "{}",
            text.chars().count()
        );
        let reason = text.strip_prefix("Reason: ").unwrap();
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
            for cause in [
                EndCause::Expired,
                EndCause::EndedEarly,
                EndCause::GrantFailed,
            ] {
                r.stage = Stage::from_known(state, &hostile_known(cause));
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
                by: ChatUserId::slack("U2"),
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

    #[test]
    fn the_fullest_home_tab_stays_within_block_kit_and_user_text_cannot_ping() {
        let hostile = |n: usize| {
            let mut r = request();
            r.reason = format!("<!channel> & {}", "é<".repeat(2_000));
            r.requester = ChatUserId::slack(format!("U{n}"));
            r
        };
        let many = |n: usize| (0..n).map(hostile).collect::<Vec<_>>();
        let mut active = request();
        active.stage = Stage::from_known(
            RequestState::Active,
            &known(active.device().unwrap().clone(), vec![], EndCause::Expired),
        );
        let mut mine = many(200);
        mine.insert(0, active.clone());
        let home = Home {
            user: ChatUserId::slack("U1"),
            mine,
            to_decide: Some(many(200)),
        };
        let links = home
            .to_decide
            .iter()
            .flatten()
            .map(|r| {
                let link = CardLink::Permalink("https://x.slack.com/archives/C1/p1".into());
                (r.id.clone(), link)
            })
            .collect();
        let view = serde_json::to_value(home_view(&home, &links)).unwrap();
        assert_eq!(view["type"], "home");
        let problems = crate::sim::block_kit::home_view_problems(&view);
        assert!(problems.is_empty(), "{problems:?}");
        let blocks = view["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), limits::VIEW_BLOCKS, "filled, not over");
        let text = view.to_string();
        assert!(!text.contains("<!channel>") && text.contains("&lt;!channel&gt; &amp;"));
        assert!(
            text.contains("Waiting for a decision"),
            "the approvers' part has room"
        );
        // End now on the active grant only, with its request id.
        let ends: Vec<&serde_json::Value> =
            blocks.iter().filter_map(|b| b.get("accessory")).collect();
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0]["action_id"], actions::REVOKE);
        assert_eq!(ends[0]["value"], active.id.as_str());
    }
}
