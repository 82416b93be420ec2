//! Block Kit limits as Slack enforces them: a message whose blocks break one
//! is refused whole with `invalid_blocks` (Web API) or HTTP 400
//! `invalid_blocks` (`response_url`). The numbers are those of Slack's Block
//! Kit reference (blocks, block elements, composition objects); each
//! problem is reported the way Slack words its own, with a JSON pointer, e.g.
//! `must be less than 3001 characters [json-pointer:/blocks/0/text/text]`.
//!
//! Only the block and element types tempadmin sends are checked in depth;
//! others are checked for their `type`, `block_id` and `action_id`.
//! Lengths are counted in characters (Unicode scalar values).

use std::collections::HashSet;

use serde_json::Value;

/// Blocks in one message.
pub const MAX_BLOCKS: usize = 50;
/// Blocks in one view (a Home tab or a modal).
pub const MAX_VIEW_BLOCKS: usize = 100;
/// A view's `private_metadata`.
pub const MAX_PRIVATE_METADATA: usize = 3000;
/// `block_id` and `action_id`.
pub const MAX_ID: usize = 255;
/// A section's `text`, and any other text object.
pub const MAX_TEXT: usize = 3000;
/// A section's `fields`.
pub const MAX_FIELDS: usize = 10;
/// The text of one section field.
pub const MAX_FIELD_TEXT: usize = 2000;
/// A header's text.
pub const MAX_HEADER_TEXT: usize = 150;
/// A button's text, an option's text, an option group's label.
pub const MAX_LABEL: usize = 75;
/// A button's `value`.
pub const MAX_BUTTON_VALUE: usize = 2000;
/// An option's `value`.
pub const MAX_OPTION_VALUE: usize = 150;
/// A select menu's placeholder.
pub const MAX_PLACEHOLDER: usize = 150;
/// A button's `url`.
pub const MAX_URL: usize = 3000;
/// Elements in one actions block.
pub const MAX_ACTIONS_ELEMENTS: usize = 25;
/// Elements in one context block.
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
/// Options in one select menu (and option groups, and options per group).
pub const MAX_OPTIONS: usize = 100;

const BLOCK_TYPES: &[&str] = &[
    "actions",
    "context",
    "divider",
    "file",
    "header",
    "image",
    "input",
    "markdown",
    "rich_text",
    "section",
    "video",
];

/// Every way `blocks` (the message's `blocks` array) breaks Block Kit's
/// rules; empty when Slack would accept it.
pub fn problems(blocks: &Value) -> Vec<String> {
    let mut check = Check::default();
    check.blocks(blocks, "/blocks");
    check.problems
}

/// Every way a Home tab `view` (the `view` argument of `views.publish`)
/// breaks Block Kit's rules: it must be an object of type `home` with at
/// most 100 blocks, each checked as in a message. Pointers start at
/// `/view`, as Slack's answers to `views.publish` do.
pub fn home_view_problems(view: &Value) -> Vec<String> {
    let mut check = Check::default();
    if !view.is_object() {
        check.fail("must be an object", "/view");
        return check.problems;
    }
    if view.get("type").and_then(Value::as_str) != Some("home") {
        check.fail("must be home", "/view/type");
    }
    match view.get("blocks") {
        Some(blocks) => check.blocks_within(blocks, "/view/blocks", MAX_VIEW_BLOCKS),
        None => check.fail("is required", "/view/blocks"),
    }
    for (field, max) in [
        ("private_metadata", MAX_PRIVATE_METADATA),
        ("callback_id", MAX_ID),
        ("external_id", MAX_ID),
    ] {
        if let Some(value) = view.get(field) {
            check.string(value, &format!("/view/{field}"), 0, max);
        }
    }
    check.problems
}

#[derive(Default)]
struct Check {
    problems: Vec<String>,
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

impl Check {
    fn fail(&mut self, what: impl std::fmt::Display, at: &str) {
        self.problems.push(format!("{what} [json-pointer:{at}]"));
    }

    fn blocks(&mut self, blocks: &Value, at: &str) {
        self.blocks_within(blocks, at, MAX_BLOCKS)
    }

    fn blocks_within(&mut self, blocks: &Value, at: &str, max: usize) {
        let Some(list) = blocks.as_array() else {
            return self.fail("must be an array", at);
        };
        if list.len() > max {
            self.fail(format!("no more than {max} items allowed"), at);
        }
        let mut block_ids = HashSet::new();
        for (i, block) in list.iter().enumerate() {
            self.block(block, &format!("{at}/{i}"), &mut block_ids);
        }
    }

    fn block(&mut self, block: &Value, at: &str, block_ids: &mut HashSet<String>) {
        if !block.is_object() {
            return self.fail("must be an object", at);
        }
        if let Some(id) = block.get("block_id") {
            let at = format!("{at}/block_id");
            if self.string(id, &at, 1, MAX_ID) && !block_ids.insert(id.as_str().unwrap().into()) {
                self.fail("block_id must be unique in the message", &at);
            }
        }
        let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "section" => self.section(block, at),
            "header" => self.text_object(
                block.get("text"),
                &format!("{at}/text"),
                MAX_HEADER_TEXT,
                true,
            ),
            "context" => self.context(block, at),
            "actions" => self.actions(block, at),
            other if BLOCK_TYPES.contains(&other) => {}
            _ => self.fail("must be a known block type", &format!("{at}/type")),
        }
    }

    fn section(&mut self, block: &Value, at: &str) {
        let text = block.get("text");
        let fields = block.get("fields");
        if text.is_none() && fields.is_none() {
            self.fail("must provide text or fields", at);
        }
        if text.is_some() {
            self.text_object(text, &format!("{at}/text"), MAX_TEXT, false);
        }
        if let Some(fields) = fields {
            let at = format!("{at}/fields");
            match fields.as_array() {
                None => self.fail("must be an array", &at),
                Some(list) => {
                    if list.is_empty() || list.len() > MAX_FIELDS {
                        self.fail(format!("must have 1 to {MAX_FIELDS} items"), &at);
                    }
                    for (i, field) in list.iter().enumerate() {
                        self.text_object(Some(field), &format!("{at}/{i}"), MAX_FIELD_TEXT, false);
                    }
                }
            }
        }
        if let Some(accessory) = block.get("accessory") {
            self.element(accessory, &format!("{at}/accessory"), &mut HashSet::new());
        }
    }

    fn context(&mut self, block: &Value, at: &str) {
        let at = format!("{at}/elements");
        let Some(list) = block.get("elements").and_then(Value::as_array) else {
            return self.fail("must be an array", &at);
        };
        if list.is_empty() || list.len() > MAX_CONTEXT_ELEMENTS {
            self.fail(format!("must have 1 to {MAX_CONTEXT_ELEMENTS} items"), &at);
        }
        for (i, element) in list.iter().enumerate() {
            match element.get("type").and_then(Value::as_str) {
                Some("image") => {}
                _ => self.text_object(Some(element), &format!("{at}/{i}"), MAX_TEXT, false),
            }
        }
    }

    fn actions(&mut self, block: &Value, at: &str) {
        let at = format!("{at}/elements");
        let Some(list) = block.get("elements").and_then(Value::as_array) else {
            return self.fail("must be an array", &at);
        };
        if list.is_empty() || list.len() > MAX_ACTIONS_ELEMENTS {
            self.fail(format!("must have 1 to {MAX_ACTIONS_ELEMENTS} items"), &at);
        }
        let mut action_ids = HashSet::new();
        for (i, element) in list.iter().enumerate() {
            self.element(element, &format!("{at}/{i}"), &mut action_ids);
        }
    }

    /// An interactive element; `action_ids` are those seen in its block so far.
    fn element(&mut self, element: &Value, at: &str, action_ids: &mut HashSet<String>) {
        if let Some(id) = element.get("action_id") {
            let at = format!("{at}/action_id");
            if self.string(id, &at, 1, MAX_ID) && !action_ids.insert(id.as_str().unwrap().into()) {
                self.fail("action_id must be unique in its block", &at);
            }
        }
        match element.get("type").and_then(Value::as_str) {
            Some("button") => {
                self.text_object(element.get("text"), &format!("{at}/text"), MAX_LABEL, true);
                if let Some(value) = element.get("value") {
                    self.string(value, &format!("{at}/value"), 1, MAX_BUTTON_VALUE);
                }
                if let Some(url) = element.get("url") {
                    self.string(url, &format!("{at}/url"), 1, MAX_URL);
                }
                if let Some(style) = element.get("style") {
                    if !matches!(style.as_str(), Some("primary" | "danger")) {
                        self.fail("must be primary or danger", &format!("{at}/style"));
                    }
                }
            }
            Some("static_select" | "multi_static_select") => self.static_select(element, at),
            Some(_) => {}
            None => self.fail("must be a known element type", &format!("{at}/type")),
        }
    }

    fn static_select(&mut self, element: &Value, at: &str) {
        if let Some(placeholder) = element.get("placeholder") {
            self.text_object(
                Some(placeholder),
                &format!("{at}/placeholder"),
                MAX_PLACEHOLDER,
                true,
            );
        }
        match (element.get("options"), element.get("option_groups")) {
            (Some(options), None) => self.options(options, &format!("{at}/options")),
            (None, Some(groups)) => {
                let at = format!("{at}/option_groups");
                let Some(list) = groups.as_array() else {
                    return self.fail("must be an array", &at);
                };
                if list.is_empty() || list.len() > MAX_OPTIONS {
                    self.fail(format!("must have 1 to {MAX_OPTIONS} items"), &at);
                }
                for (i, group) in list.iter().enumerate() {
                    let at = format!("{at}/{i}");
                    self.text_object(group.get("label"), &format!("{at}/label"), MAX_LABEL, true);
                    match group.get("options") {
                        Some(options) => self.options(options, &format!("{at}/options")),
                        None => self.fail("must provide options", &at),
                    }
                }
            }
            _ => self.fail("must provide exactly one of options or option_groups", at),
        }
    }

    fn options(&mut self, options: &Value, at: &str) {
        let Some(list) = options.as_array() else {
            return self.fail("must be an array", at);
        };
        if list.is_empty() || list.len() > MAX_OPTIONS {
            self.fail(format!("must have 1 to {MAX_OPTIONS} items"), at);
        }
        for (i, option) in list.iter().enumerate() {
            let at = format!("{at}/{i}");
            self.text_object(option.get("text"), &format!("{at}/text"), MAX_LABEL, true);
            match option.get("value") {
                Some(value) => {
                    self.string(value, &format!("{at}/value"), 1, MAX_OPTION_VALUE);
                }
                None => self.fail("must provide value", &at),
            }
            if let Some(description) = option.get("description") {
                self.text_object(
                    Some(description),
                    &format!("{at}/description"),
                    MAX_LABEL,
                    true,
                );
            }
        }
    }

    /// A text object `{type, text}` whose text has at most `max` characters;
    /// `plain_only` where Slack allows only `plain_text`.
    fn text_object(&mut self, object: Option<&Value>, at: &str, max: usize, plain_only: bool) {
        let Some(object) = object.filter(|o| o.is_object()) else {
            return self.fail("must be a text object", at);
        };
        match object.get("type").and_then(Value::as_str) {
            Some("plain_text") => {}
            Some("mrkdwn") if !plain_only => {}
            _ => {
                let allowed = if plain_only {
                    "plain_text"
                } else {
                    "plain_text or mrkdwn"
                };
                self.fail(format!("must be {allowed}"), &format!("{at}/type"));
            }
        }
        match object.get("text") {
            Some(text) => {
                self.string(text, &format!("{at}/text"), 1, max);
            }
            None => self.fail("must provide text", at),
        }
    }

    /// A string of `min..=max` characters; whether it was a string at all.
    fn string(&mut self, value: &Value, at: &str, min: usize, max: usize) -> bool {
        let Some(text) = value.as_str() else {
            self.fail("must be a string", at);
            return false;
        };
        let length = chars(text);
        if length < min {
            self.fail(format!("must be more than {} characters", min - 1), at);
        }
        if length > max {
            self.fail(format!("must be less than {} characters", max + 1), at);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mrkdwn(text: &str) -> Value {
        json!({ "type": "mrkdwn", "text": text })
    }

    fn plain(text: &str) -> Value {
        json!({ "type": "plain_text", "text": text })
    }

    fn section(text: &str) -> Value {
        json!({ "type": "section", "text": mrkdwn(text) })
    }

    fn button(action_id: &str, label: &str, value: &str) -> Value {
        json!({ "type": "button", "action_id": action_id, "text": plain(label), "value": value })
    }

    fn actions(elements: Vec<Value>) -> Value {
        json!({ "type": "actions", "elements": elements })
    }

    fn option(label: &str, value: &str) -> Value {
        json!({ "text": plain(label), "value": value })
    }

    fn select(action_id: &str, options: Vec<Value>) -> Value {
        json!({ "type": "static_select", "action_id": action_id, "placeholder": plain("Choose"), "options": options })
    }

    /// The problems of `blocks`, which must all be about `pointer`.
    fn refused(blocks: Value, pointer: &str) -> Vec<String> {
        let found = problems(&blocks);
        assert!(!found.is_empty(), "accepted: {blocks}");
        let tag = format!("[json-pointer:{pointer}]");
        assert!(
            found.iter().all(|p| p.ends_with(&tag)),
            "{found:?} not all at {pointer}"
        );
        found
    }

    #[test]
    fn what_tempadmin_sends_at_the_limits_is_accepted() {
        let blocks = json!([
            section(&"a".repeat(MAX_TEXT)),
            { "type": "header", "text": plain(&"h".repeat(MAX_HEADER_TEXT)) },
            { "type": "context", "elements": vec![mrkdwn("c"); MAX_CONTEXT_ELEMENTS] },
            { "type": "section", "fields": vec![mrkdwn(&"f".repeat(MAX_FIELD_TEXT)); MAX_FIELDS] },
            { "type": "divider", "block_id": "b".repeat(MAX_ID) },
            actions(
                (0..MAX_ACTIONS_ELEMENTS - 1)
                    .map(|i| button(&format!("{i:0>255}"), &"l".repeat(MAX_LABEL), &"v".repeat(MAX_BUTTON_VALUE)))
                    .chain([select("s", (0..MAX_OPTIONS).map(|i| option(&"o".repeat(MAX_LABEL), &format!("{i:0>150}"))).collect())])
                    .collect()
            ),
        ]);
        assert_eq!(problems(&blocks), Vec::<String>::new());
        let many = Value::Array(vec![section("x"); MAX_BLOCKS]);
        assert_eq!(problems(&many), Vec::<String>::new());
        // Characters, not bytes.
        assert!(problems(&json!([section(&"é".repeat(MAX_TEXT))])).is_empty());
    }

    #[test]
    fn more_than_fifty_blocks_are_refused() {
        let blocks = Value::Array(vec![section("x"); MAX_BLOCKS + 1]);
        let found = refused(blocks, "/blocks");
        assert_eq!(
            found,
            ["no more than 50 items allowed [json-pointer:/blocks]"]
        );
    }

    #[test]
    fn section_text_over_3000_characters_is_refused_as_slack_words_it() {
        let found = refused(
            json!([section(&"a".repeat(MAX_TEXT + 1))]),
            "/blocks/0/text/text",
        );
        assert_eq!(
            found,
            ["must be less than 3001 characters [json-pointer:/blocks/0/text/text]"]
        );
    }

    #[test]
    fn too_many_or_too_long_section_fields_are_refused() {
        let eleven = json!([{ "type": "section", "fields": vec![mrkdwn("f"); MAX_FIELDS + 1] }]);
        refused(eleven, "/blocks/0/fields");
        let long = json!([{ "type": "section", "fields": [mrkdwn("ok"), mrkdwn(&"f".repeat(MAX_FIELD_TEXT + 1))] }]);
        refused(long, "/blocks/0/fields/1/text");
    }

    #[test]
    fn a_header_over_150_characters_or_in_mrkdwn_is_refused() {
        refused(
            json!([{ "type": "header", "text": plain(&"h".repeat(151)) }]),
            "/blocks/0/text/text",
        );
        refused(
            json!([{ "type": "header", "text": mrkdwn("h") }]),
            "/blocks/0/text/type",
        );
    }

    #[test]
    fn button_text_over_75_characters_or_not_plain_text_is_refused() {
        refused(
            json!([actions(vec![button("a", &"l".repeat(76), "v")])]),
            "/blocks/0/elements/0/text/text",
        );
        let mrkdwn_button = json!([actions(vec![
            json!({ "type": "button", "action_id": "a", "text": mrkdwn("*b*") })
        ])]);
        refused(mrkdwn_button, "/blocks/0/elements/0/text/type");
    }

    #[test]
    fn action_ids_over_255_characters_or_repeated_in_a_block_are_refused() {
        refused(
            json!([actions(vec![button(&"a".repeat(256), "l", "v")])]),
            "/blocks/0/elements/0/action_id",
        );
        let repeated = json!([actions(vec![
            button("pick", "one", "1"),
            button("pick", "two", "2")
        ])]);
        let found = refused(repeated, "/blocks/0/elements/1/action_id");
        assert_eq!(found, ["action_id must be unique in its block [json-pointer:/blocks/0/elements/1/action_id]"]);
        // The same action id in two different blocks is fine.
        let apart = json!([
            actions(vec![button("pick", "one", "1")]),
            actions(vec![button("pick", "two", "2")])
        ]);
        assert!(problems(&apart).is_empty());
    }

    #[test]
    fn block_ids_over_255_characters_or_repeated_in_a_message_are_refused() {
        refused(
            json!([{ "type": "divider", "block_id": "b".repeat(256) }]),
            "/blocks/0/block_id",
        );
        let repeated =
            json!([{ "type": "divider", "block_id": "b" }, { "type": "divider", "block_id": "b" }]);
        refused(repeated, "/blocks/1/block_id");
    }

    #[test]
    fn a_button_value_over_2000_characters_is_refused() {
        refused(
            json!([actions(vec![button("a", "l", &"v".repeat(2001))])]),
            "/blocks/0/elements/0/value",
        );
    }

    #[test]
    fn more_than_25_actions_or_10_context_elements_are_refused() {
        let buttons = (0..26)
            .map(|i| button(&format!("b{i}"), "l", "v"))
            .collect();
        refused(json!([actions(buttons)]), "/blocks/0/elements");
        refused(
            json!([{ "type": "context", "elements": vec![mrkdwn("c"); 11] }]),
            "/blocks/0/elements",
        );
    }

    #[test]
    fn select_menus_over_100_options_or_with_long_option_text_are_refused() {
        let options = (0..101).map(|i| option("o", &i.to_string())).collect();
        refused(
            json!([actions(vec![select("s", options)])]),
            "/blocks/0/elements/0/options",
        );
        let long = vec![option("ok", "1"), option(&"o".repeat(76), "2")];
        refused(
            json!([actions(vec![select("s", long)])]),
            "/blocks/0/elements/0/options/1/text/text",
        );
        let long_value = vec![option("o", &"v".repeat(151))];
        refused(
            json!([actions(vec![select("s", long_value)])]),
            "/blocks/0/elements/0/options/0/value",
        );
    }

    #[test]
    fn empty_texts_and_unknown_types_are_refused() {
        refused(json!([section("")]), "/blocks/0/text/text");
        refused(json!([{ "type": "carousel" }]), "/blocks/0/type");
        refused(json!({ "type": "section" }), "/blocks");
    }

    #[test]
    fn a_home_view_takes_a_hundred_blocks_and_must_be_a_home_view() {
        let blocks = |n: usize| json!((0..n).map(|i| section(&format!("{i}"))).collect::<Vec<_>>());
        assert!(home_view_problems(&json!({ "type": "home", "blocks": blocks(100) })).is_empty());
        assert_eq!(
            home_view_problems(&json!({ "type": "home", "blocks": blocks(101) })),
            ["no more than 100 items allowed [json-pointer:/view/blocks]"]
        );
        assert_eq!(
            home_view_problems(&json!({ "type": "modal", "blocks": blocks(1) })),
            ["must be home [json-pointer:/view/type]"]
        );
        let long = json!({ "type": "home", "blocks": [{ "type": "section", "text": mrkdwn(&"a".repeat(3001)) }] });
        assert_eq!(
            home_view_problems(&long),
            ["must be less than 3001 characters [json-pointer:/view/blocks/0/text/text]"]
        );
        assert_eq!(
            home_view_problems(&json!("x")),
            ["must be an object [json-pointer:/view]"]
        );
    }
}
