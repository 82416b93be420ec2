//! Parsing what Slack posts (`slack::payload`): slash-command forms and
//! `block_actions` interactions. Any body is parsed or refused, never a
//! panic, and what parses is within the bounds the engine relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tempadmin::slack::payload::{parse_command, parse_interaction, Action};

fn check(action: Action) {
    if let Action::PickDevice(_, system) = action {
        let id = system.as_str();
        assert!(!id.is_empty() && id.len() <= 64, "{id:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    // As the form body itself (slash commands and interactions alike).
    let _ = parse_command(data);
    if let Ok(action) = parse_interaction(data) {
        check(action);
    }
    // As the JSON in an interaction's `payload` field, where most of the
    // parsing happens (the seeds are such payloads).
    if let Ok(json) = std::str::from_utf8(data) {
        let body = serde_urlencoded::to_string([("payload", json)]).unwrap();
        if let Ok(action) = parse_interaction(body.as_bytes()) {
            check(action);
        }
        // And as a command's text.
        let form = serde_urlencoded::to_string([
            ("user_id", "U0ADA"),
            ("command", "/tempadmin"),
            ("text", json),
            ("response_url", "https://hooks.slack.com/commands/T0/1/x"),
            ("channel_id", "C0"),
            ("team_id", "T0"),
        ])
        .unwrap();
        if let Ok(input) = parse_command(form.as_bytes()) {
            assert_eq!(input.text, json);
        }
    }
});
