//! Parsing what Slack posts to us into engine inputs. Parsing happens after
//! the signature check and before anything else; what does not parse is a 400.

use serde::Deserialize;
use slack_morphism::prelude::{SlackInteractionActionContainer, SlackInteractionEvent};

use super::actions;
use super::origin::Origin;
use super::response_url::{HookHosts, ResponseUrlError};
use crate::domain::{ChatUserId, RequestId, SystemId};
use crate::engine::{Click, CommandInput, Delivery};

/// Why a body was not understood.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Not the form or JSON Slack sends.
    #[error("malformed Slack payload: {0}")]
    Malformed(String),
    /// The `response_url` is not one of Slack's, so it is never called.
    #[error(transparent)]
    ResponseUrl(#[from] ResponseUrlError),
}

/// A slash command: where it comes from, and what the engine needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlashCommand {
    /// Team, app and channel it was typed in.
    pub origin: Origin,
    /// For the engine.
    pub input: CommandInput,
}

/// The fields of a slash command we read. slack-morphism's
/// `SlackCommandEvent` drops `api_app_id`, which says whose app this is.
#[derive(Deserialize)]
struct CommandForm {
    #[serde(default)]
    team_id: String,
    #[serde(default)]
    api_app_id: String,
    channel_id: Option<String>,
    user_id: String,
    text: Option<String>,
    response_url: String,
}

/// A slash command as Slack posts it (form-encoded). `delivery` says which
/// delivery it was, so a copy is recognised.
pub fn parse_command(
    body: &[u8],
    hosts: &HookHosts,
    delivery: Option<Delivery>,
) -> Result<SlashCommand, PayloadError> {
    let form: CommandForm =
        serde_urlencoded::from_bytes(body).map_err(|e| PayloadError::Malformed(e.to_string()))?;
    command(form, hosts, delivery)
}

/// A slash command as a Socket Mode envelope carries it: the form's
/// fields as a JSON object.
pub fn parse_command_json(
    payload: &serde_json::Value,
    hosts: &HookHosts,
    delivery: Option<Delivery>,
) -> Result<SlashCommand, PayloadError> {
    let form =
        CommandForm::deserialize(payload).map_err(|e| PayloadError::Malformed(e.to_string()))?;
    command(form, hosts, delivery)
}

fn command(
    form: CommandForm,
    hosts: &HookHosts,
    delivery: Option<Delivery>,
) -> Result<SlashCommand, PayloadError> {
    let reply_to = hosts.parse(&form.response_url)?;
    Ok(SlashCommand {
        origin: Origin {
            team_id: form.team_id,
            app_id: form.api_app_id,
            channel_id: form.channel_id,
        },
        input: CommandInput {
            user: ChatUserId::slack(form.user_id),
            text: form.text.unwrap_or_default(),
            reply_to: Some(reply_to.to_string()),
            delivery,
        },
    })
}

/// A button click: where it comes from (`None` for payloads we ignore),
/// and what it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    /// Team, app and the conversation the button was in.
    pub origin: Option<Origin>,
    /// What to do.
    pub action: Action,
    /// Clicked in a view (the Home tab: `container.type` is `view`, with
    /// neither message nor channel nor `response_url`) rather than in a
    /// message; such a view is published again once the click is handled.
    pub from_view: bool,
}

/// A button click we act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Approve.
    Approve(Click),
    /// Deny.
    Deny(Click),
    /// End now.
    Revoke(Click),
    /// Extend: the requester asks for more time.
    Extend(Click),
    /// A device was picked.
    PickDevice(Click, SystemId),
    /// Something that is not ours (other interaction types or action ids):
    /// acknowledged and ignored.
    Ignored,
}

#[derive(Deserialize)]
struct InteractionForm {
    payload: String,
}

/// Parses an interaction as Slack posts it (the form field `payload`,
/// holding JSON) into the action we act on.
pub fn parse_interaction(
    body: &[u8],
    hosts: &HookHosts,
    delivery: Option<Delivery>,
) -> Result<Interaction, PayloadError> {
    let form: InteractionForm =
        serde_urlencoded::from_bytes(body).map_err(|e| PayloadError::Malformed(e.to_string()))?;
    let event: SlackInteractionEvent =
        serde_json::from_str(&form.payload).map_err(|e| PayloadError::Malformed(e.to_string()))?;
    interaction(event, hosts, delivery)
}

/// An interaction as a Socket Mode envelope carries it: the JSON that
/// HTTP sends as `payload=`.
pub fn parse_interaction_json(
    payload: &serde_json::Value,
    hosts: &HookHosts,
    delivery: Option<Delivery>,
) -> Result<Interaction, PayloadError> {
    let event = SlackInteractionEvent::deserialize(payload)
        .map_err(|e| PayloadError::Malformed(e.to_string()))?;
    interaction(event, hosts, delivery)
}

fn interaction(
    event: SlackInteractionEvent,
    hosts: &HookHosts,
    delivery: Option<Delivery>,
) -> Result<Interaction, PayloadError> {
    let ignored = Interaction {
        origin: None,
        action: Action::Ignored,
        from_view: false,
    };
    let SlackInteractionEvent::BlockActions(event) = event else {
        return Ok(ignored);
    };
    let user = event
        .user
        .ok_or_else(|| PayloadError::Malformed("block action without a user".into()))?;
    let Some(action) = event.actions.unwrap_or_default().into_iter().next() else {
        return Ok(ignored);
    };
    let reply_to = event
        .response_url
        .as_ref()
        .map(|u| hosts.parse(u.0.as_str()))
        .transpose()?
        .map(|u| u.to_string());
    let from_view = matches!(event.container, SlackInteractionActionContainer::View(_));
    let container_channel = match &event.container {
        SlackInteractionActionContainer::Message(m) => m.channel_id.clone(),
        SlackInteractionActionContainer::MessageAttachment(m) => m.channel_id.clone(),
        SlackInteractionActionContainer::View(_) => None,
    };
    let origin = Origin {
        team_id: event.team.id.to_string(),
        app_id: event.api_app_id.to_string(),
        channel_id: container_channel
            .or_else(|| event.channel.as_ref().map(|c| c.id.clone()))
            .map(|c| c.to_string()),
    };
    let click = |request_id: RequestId| Click {
        user: ChatUserId::slack(user.id.to_string()),
        request_id,
        reply_to: reply_to.clone(),
        delivery: delivery.clone(),
    };
    let request_id = |text: &str| {
        RequestId::parse(text)
            .ok_or_else(|| PayloadError::Malformed("button value is not a request id".into()))
    };
    let action_id = action.action_id.to_string();
    // A select menu reports its choice in `selected_option`, a button in `value`.
    let value = match action.selected_option {
        Some(option) => option.value,
        None => action.value.unwrap_or_default(),
    };
    let action = match action_id.as_str() {
        actions::APPROVE => Action::Approve(click(request_id(&value)?)),
        actions::DENY => Action::Deny(click(request_id(&value)?)),
        actions::REVOKE => Action::Revoke(click(request_id(&value)?)),
        actions::EXTEND => Action::Extend(click(request_id(&value)?)),
        // Each picker button has its own id (Slack wants them unique in a
        // block); they and the select menus all start with the prefix.
        id if id.starts_with(actions::PICK_DEVICE) => {
            let block = action.block_id.map(|b| b.to_string()).unwrap_or_default();
            let id = request_id(block.strip_prefix("pick:").unwrap_or_default())?;
            if value.is_empty() || value.len() > 64 {
                return Err(PayloadError::Malformed(
                    "device pick without a system id".into(),
                ));
            }
            Action::PickDevice(click(id), SystemId::new(value))
        }
        _ => return Ok(ignored),
    };
    Ok(Interaction {
        origin: Some(origin),
        action,
        from_view,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::slack_sender::{click_body, select_body};

    const REQUEST: &str = "ta-7kq2m9xw4d";

    fn request_id() -> RequestId {
        RequestId::parse(REQUEST).unwrap()
    }

    const RESPONSE_URL: &str = "https://hooks.slack.com/actions/T0SIM/1/abc";

    fn parse(body: &str) -> Result<Action, PayloadError> {
        let hosts = HookHosts::new("https://slack.com/api");
        parse_interaction(body.as_bytes(), &hosts, None).map(|i| i.action)
    }

    fn picked(action: Action) -> (RequestId, SystemId) {
        match action {
            Action::PickDevice(click, system) => (click.request_id, system),
            other => panic!("not a device pick: {other:?}"),
        }
    }

    #[test]
    fn every_picker_button_id_with_the_prefix_picks_its_value() {
        let block = format!("pick:{REQUEST}");
        for action_id in ["tempadmin_pick_device", "tempadmin_pick_device_2"] {
            let body = click_body("U1", action_id, "sys1", &block, RESPONSE_URL);
            let (request, system) = picked(parse(&body).unwrap());
            assert_eq!(request, request_id());
            assert_eq!(system, SystemId::new("sys1"));
        }
    }

    #[test]
    fn a_select_menu_choice_picks_the_selected_options_value() {
        let option = serde_json::json!({
            "text": { "type": "plain_text", "text": "ada-win (Windows, online)", "emoji": true },
            "value": "sys2"
        });
        let block = format!("pick:{REQUEST}");
        for action_id in ["tempadmin_pick_device", "tempadmin_pick_device_3"] {
            let body = select_body("U1", action_id, &block, &option, RESPONSE_URL);
            let (request, system) = picked(parse(&body).unwrap());
            assert_eq!(request, request_id());
            assert_eq!(system, SystemId::new("sys2"));
        }
    }

    #[test]
    fn other_action_ids_are_ignored_and_a_pick_without_a_system_is_malformed() {
        let body = click_body("U1", "someone_elses_button", "x", "b", RESPONSE_URL);
        assert_eq!(parse(&body).unwrap(), Action::Ignored);
        let body = click_body(
            "U1",
            "tempadmin_pick_device_1",
            "",
            &format!("pick:{REQUEST}"),
            RESPONSE_URL,
        );
        assert!(parse(&body).is_err());
    }
}
