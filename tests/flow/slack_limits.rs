//! What real Slack refuses or answers differently from a lenient fake: Block
//! Kit limits, `response_url` answers, direct messages by user id.

use std::time::Duration;

use serde_json::Value;
use tempadmin::domain::RequestState;

use crate::support::*;

const MIN: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_response_url_answering_ok_as_text_html_counts_as_delivered() {
    let app = spawn_app().await;
    app.pending_request("20m printer").await;
    let private: Vec<_> = app
        .outbox()
        .await
        .into_iter()
        .filter(|m| m.to == "private")
        .collect();
    assert_eq!(private.len(), 1, "{private:?}");
    assert!(
        private[0].delivered
            && !private[0].failed
            && private[0].attempts == 1
            && private[0].last_error.is_none(),
        "{private:?}"
    );
    app.advance(5 * MIN).await;
    let posts = app
        .slack
        .calls()
        .into_iter()
        .filter(|c| c.method == "response_url")
        .count();
    assert_eq!(posts, 1, "a delivered answer is never sent again");
}

#[tokio::test]
async fn direct_messages_are_posted_to_the_user_id_without_opening_a_conversation() {
    let app = spawn_app().await;
    app.active_grant("20m").await;
    let calls = app.slack.calls();
    assert!(
        !calls.iter().any(|c| c.method == "conversations.open"),
        "no conversations.open per message"
    );
    let to_ada = calls
        .iter()
        .filter(|c| c.method == "chat.postMessage" && c.params["channel"] == ADA)
        .count();
    assert!(to_ada >= 2, "approved and elevated DMs go to {ADA}");
    let dms = app.direct_messages();
    assert_eq!(dms.len(), to_ada, "{dms:?}");
    assert!(
        dms.iter().any(|m| m.contains("You are admin on")),
        "{dms:?}"
    );
}

/// Binds `count` more computers to Ada (she has her MacBook already); their
/// system ids are `sys…NN`, hostnames `host(NN)`.
fn bind_computers(app: &TestApp, count: usize, host: impl Fn(usize) -> String) -> Vec<String> {
    (1..=count)
        .map(|n| {
            let id = format!("sys0000000000000000{n:05}");
            app.jc.add_system(system(&id, &host(n), "windows"));
            app.jc.bind_direct(JC_ADA, &id, false);
            id
        })
        .collect()
}

/// The picker Ada got through her command's response_url.
fn picker(app: &TestApp) -> Value {
    app.slack
        .responses()
        .into_iter()
        .filter(|r| r.url_id == "cmd-U0ADA")
        .map(|r| r.body)
        .find(|b| b["blocks"].to_string().contains("tempadmin_pick_device"))
        .expect("a device picker")
}

/// Chooses `system` in the picker as Slack would report it: a click on the
/// button whose value it is, or the option of the select menu that offers it.
async fn pick(app: &TestApp, user: &str, picker: &Value, system: &str) {
    for block in picker["blocks"].as_array().unwrap() {
        let block_id = block["block_id"].as_str().unwrap_or_default();
        for element in block["elements"].as_array().into_iter().flatten() {
            let action_id = element["action_id"].as_str().unwrap();
            match element["type"].as_str().unwrap() {
                "button" if element["value"] == system => {
                    assert_eq!(
                        app.click_block(user, action_id, system, block_id).await,
                        200
                    );
                    return;
                }
                "static_select" => {
                    let options = element["options"].as_array().unwrap();
                    if let Some(option) = options.iter().find(|o| o["value"] == system) {
                        assert_eq!(app.select(user, action_id, block_id, option).await, 200);
                        return;
                    }
                }
                _ => {}
            }
        }
    }
    panic!("{system} is not offered in {picker}");
}

#[tokio::test]
async fn with_two_computers_the_picker_slack_accepts_has_a_button_for_each() {
    let app = spawn_app().await;
    let ids = bind_computers(&app, 1, |_| "ada-win".into());
    app.ask(ADA, "20m printer").await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::AwaitingDevice);
    let picker = picker(&app);
    let buttons: Vec<&Value> = picker["blocks"][1]["elements"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(buttons.len(), 2, "{picker}");
    assert_ne!(buttons[0]["action_id"], buttons[1]["action_id"]);

    pick(&app, ADA, &picker, &ids[0]).await;
    app.settle().await;
    let r = app.request_of(ADA).await;
    assert_eq!(r.state(), RequestState::PendingApproval);
    assert_eq!(r.device().unwrap().id.as_str(), ids[0]);
    assert!(app.card().blocks.to_string().contains("Device: ada-win ("));
}

#[tokio::test]
async fn with_thirty_computers_the_requester_picks_one_from_a_menu_and_it_reaches_the_approvers() {
    let app = spawn_app().await;
    let ids = bind_computers(&app, 30, |n| format!("lab-{n:02}"));
    app.ask(ADA, "20m printer").await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::AwaitingDevice);
    let picker = picker(&app);
    let offered = picker["blocks"].to_string();
    for id in &ids {
        assert!(offered.contains(id.as_str()), "{id} is offered");
    }
    assert!(offered.contains(LAPTOP), "the MacBook too");

    pick(&app, ADA, &picker, &ids[27]).await;
    app.settle().await;
    let r = app.request_of(ADA).await;
    assert_eq!(r.state(), RequestState::PendingApproval);
    assert_eq!(r.device().unwrap().id.as_str(), ids[27]);
    assert!(app.card().blocks.to_string().contains("Device: lab-28 ("));
    assert_eq!(r.reason, "printer");
}

/// Reasons that break the approval card unless they are capped: long text,
/// text that escaping makes five times longer, and a lot of it; and whether
/// they still fit the card's section (3,000 characters) once escaped.
fn long_reasons() -> [(&'static str, String, bool); 3] {
    let prose = "install the printer driver for the third floor ";
    [
        (
            "2,900 characters",
            prose.repeat(70)[..2900].trim_end().to_string(),
            true,
        ),
        ("900 × <&>", "<&>".repeat(900), false),
        ("20,000 characters", "a".repeat(20_000), false),
    ]
}

#[tokio::test]
async fn reasons_longer_than_the_policy_allows_are_refused_at_command_time_with_the_limit_named() {
    let app = spawn_app().await;
    for (name, reason, _) in long_reasons() {
        let answer = app.ask(ADA, &format!("20m {reason}")).await;
        assert!(
            answer.contains("the limit is 500 characters")
                && answer.contains(&format!("is {} characters long", reason.chars().count())),
            "{name}: {answer}"
        );
    }
    app.settle().await;
    assert!(
        app.requests_of(ADA).await.is_empty(),
        "nothing was recorded"
    );
    assert!(app.cards().is_empty(), "nothing reached the approvers");
    let fine = app.ask(ADA, &format!("20m {}", "a".repeat(500))).await;
    assert!(fine.contains("Checking your JumpCloud account"), "{fine}");
}

#[tokio::test]
async fn with_a_higher_reason_limit_long_reasons_still_reach_the_approvers_cut_safely() {
    let app = spawn_app_with(|p| p.max_reason_length = 30_000).await;
    for (name, reason, fits) in long_reasons() {
        let id = app.pending_request(&format!("20m {reason}")).await;
        let card = app
            .cards()
            .into_iter()
            .find(|c| c.blocks.to_string().contains(&id))
            .unwrap_or_else(|| panic!("{name}: Slack accepted the card"));
        let text = card.blocks[2]["text"]["text"].as_str().unwrap();
        assert!(
            text.chars().count() <= 3000,
            "{name}: {}",
            text.chars().count()
        );
        let shown = text.strip_prefix("Reason: ").unwrap();
        let unescape = |s: &str| {
            s.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        };
        if fits {
            assert_eq!(unescape(shown), reason, "{name}: shown whole");
        } else {
            let body = shown
                .strip_suffix('…')
                .unwrap_or_else(|| panic!("{name}: marked as cut"));
            let unescaped = unescape(body);
            assert!(
                reason.starts_with(&unescaped) && !unescaped.contains(';'),
                "{name}: no entity cut in half: …{}",
                &body[body.len().saturating_sub(12)..]
            );
            assert!(
                shown.chars().count() > 2800,
                "{name}: the rest of the section is used"
            );
        }
        // Withdraw it, so the next one is not "already open".
        app.ask(ADA, "revoke").await;
        app.settle().await;
    }
}
