//! Parsing what Slack posts (`slack::payload`): slash-command forms and
//! `block_actions` interactions. Any body is parsed or refused, never a
//! panic, and what parses is within the bounds the engine relies on: a
//! picked system id of 1 to 64 bytes, and answers only ever going to
//! `https` on Slack's hook hosts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tempadmin::slack::payload::{parse_command, parse_interaction, Action};
use tempadmin::slack::response_url::HookHosts;

fn check_reply_to(reply_to: Option<&str>) {
    if let Some(text) = reply_to {
        let url = url::Url::parse(text).unwrap();
        assert_eq!(url.scheme(), "https", "{text}");
        assert!(
            matches!(url.host_str(), Some("hooks.slack.com" | "hooks.slack-gov.com")),
            "{text}"
        );
    }
}

fn check(action: Action) {
    match action {
        Action::PickDevice(click, system) => {
            let id = system.as_str();
            assert!(!id.is_empty() && id.len() <= 64, "{id:?}");
            check_reply_to(click.reply_to.as_deref());
        }
        Action::Approve(click)
        | Action::Deny(click)
        | Action::Revoke(click)
        | Action::Extend(click) => {
            check_reply_to(click.reply_to.as_deref());
        }
        Action::Ignored => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let hosts = HookHosts::new("https://slack.com/api");
    // As the form body itself (slash commands and interactions alike).
    if let Ok(command) = parse_command(data, &hosts, None) {
        check_reply_to(command.input.reply_to.as_deref());
    }
    if let Ok(interaction) = parse_interaction(data, &hosts, None) {
        check(interaction.action);
    }
    // As the JSON in an interaction's `payload` field, where most of the
    // parsing happens (the seeds are such payloads).
    if let Ok(json) = std::str::from_utf8(data) {
        let body = serde_urlencoded::to_string([("payload", json)]).unwrap();
        if let Ok(interaction) = parse_interaction(body.as_bytes(), &hosts, None) {
            check(interaction.action);
        }
        // And as a command's text.
        let form = serde_urlencoded::to_string([
            ("user_id", "U0ADA"),
            ("command", "/tempadmin"),
            ("text", json),
            ("response_url", "https://hooks.slack.com/commands/T0/1/x"),
            ("channel_id", "C0"),
            ("team_id", "T0"),
            ("api_app_id", "A0"),
        ])
        .unwrap();
        let command = parse_command(form.as_bytes(), &hosts, None).unwrap();
        assert_eq!(command.input.text, json);
    }
});
