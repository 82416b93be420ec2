//! Parsing what Slack posts to us into engine inputs. Parsing happens after
//! the signature check and before anything else; what does not parse is a 400.

use serde::Deserialize;
use slack_morphism::prelude::{SlackCommandEvent, SlackInteractionEvent};

use super::actions;
use crate::domain::{ChatUserId, RequestId, SystemId};
use crate::engine::{Click, CommandInput};

/// Why a body was not understood.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Not the form or JSON Slack sends.
    #[error("malformed Slack payload: {0}")]
    Malformed(String),
}

/// A slash command as the engine needs it.
pub fn parse_command(body: &[u8]) -> Result<CommandInput, PayloadError> {
    let event: SlackCommandEvent =
        serde_urlencoded::from_bytes(body).map_err(|e| PayloadError::Malformed(e.to_string()))?;
    Ok(CommandInput {
        user: ChatUserId::slack(event.user_id.to_string()),
        text: event.text.unwrap_or_default(),
        reply_to: Some(event.response_url.0.to_string()),
    })
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

/// Parses the `payload` field of an interaction into the action we act on.
pub fn parse_interaction(body: &[u8]) -> Result<Action, PayloadError> {
    let form: InteractionForm =
        serde_urlencoded::from_bytes(body).map_err(|e| PayloadError::Malformed(e.to_string()))?;
    let event: SlackInteractionEvent =
        serde_json::from_str(&form.payload).map_err(|e| PayloadError::Malformed(e.to_string()))?;
    let SlackInteractionEvent::BlockActions(event) = event else {
        return Ok(Action::Ignored);
    };
    let user = event
        .user
        .ok_or_else(|| PayloadError::Malformed("block action without a user".into()))?;
    let Some(action) = event.actions.unwrap_or_default().into_iter().next() else {
        return Ok(Action::Ignored);
    };
    let click = |request_id: RequestId| Click {
        user: ChatUserId::slack(user.id.to_string()),
        request_id,
        reply_to: event.response_url.as_ref().map(|u| u.0.to_string()),
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
    Ok(match action_id.as_str() {
        actions::APPROVE => Action::Approve(click(request_id(&value)?)),
        actions::DENY => Action::Deny(click(request_id(&value)?)),
        actions::REVOKE => Action::Revoke(click(request_id(&value)?)),
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
        _ => Action::Ignored,
    })
}

/// Slack's Events API envelope, as far as we answer it.
#[derive(Debug, Deserialize)]
pub struct EventEnvelope {
    /// `url_verification` or `event_callback`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Present on `url_verification`: echo it back.
    pub challenge: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::slack_sender::{click_body, select_body};

    const REQUEST: &str = "ta-7kq2m9xw4d";

    fn request_id() -> RequestId {
        RequestId::parse(REQUEST).unwrap()
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
            let body = click_body("U1", action_id, "sys1", &block, "http://r");
            let (request, system) = picked(parse_interaction(body.as_bytes()).unwrap());
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
            let body = select_body("U1", action_id, &block, &option, "http://r");
            let (request, system) = picked(parse_interaction(body.as_bytes()).unwrap());
            assert_eq!(request, request_id());
            assert_eq!(system, SystemId::new("sys2"));
        }
    }

    #[test]
    fn other_action_ids_are_ignored_and_a_pick_without_a_system_is_malformed() {
        let body = click_body("U1", "someone_elses_button", "x", "b", "http://r");
        assert_eq!(parse_interaction(body.as_bytes()).unwrap(), Action::Ignored);
        let body = click_body(
            "U1",
            "tempadmin_pick_device_1",
            "",
            &format!("pick:{REQUEST}"),
            "http://r",
        );
        assert!(parse_interaction(body.as_bytes()).is_err());
    }
}
