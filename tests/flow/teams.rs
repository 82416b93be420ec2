//! The same story in Microsoft Teams: a message to the bot, an Adaptive
//! Card with Action.Execute buttons in the approvals channel, the thread as
//! the audit trail, and the rights taken back on time, beside Slack in one
//! process, against the fake Bot Framework.

use std::time::Duration;

use serde_json::{json, Value};
use tempadmin::domain::{Request, RequestState};
use tempadmin::engine::ports::Clock;
use tempadmin::sim::teams::APPROVALS_CONVERSATION;
use tempadmin::sim::teams_sender;

use crate::support::*;

const MIN: Duration = Duration::from_secs(60);

/// Ada asks in her 1:1 chat and the card reaches the approvals channel.
async fn pending(app: &TestApp, text: &str) -> String {
    assert_eq!(app.teams_say("Ada", text).await, 200);
    app.settle().await;
    let r = app.teams_request_of("Ada").await;
    assert_eq!(r.state(), RequestState::PendingApproval, "{r:?}");
    r.id.to_string()
}

fn verbs(card: &Value) -> Vec<String> {
    card["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["verb"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn card_of(activity: &Value) -> &Value {
    &activity["attachments"][0]["content"]
}

#[tokio::test]
async fn a_teams_request_is_approved_elevated_counted_down_and_restored_on_time() {
    let app = spawn_teams_app().await;
    assert_eq!(
        app.teams_say("Ada", "tempadmin 20m install printer driver")
            .await,
        200
    );
    let answer = app.teams_dms("Ada");
    assert!(
        answer[0].contains("Checking your JumpCloud account"),
        "{answer:?}"
    );
    assert!(
        app.teams_cards().is_empty(),
        "nothing is posted before the look-ups"
    );

    app.settle().await;
    let card = app.teams_card();
    let content = card_of(&card.activity);
    assert_eq!(content["version"], "1.4");
    assert_eq!(verbs(content), ["tempadmin_approve", "tempadmin_deny"]);
    let r = app.teams_request_of("Ada").await;
    assert_eq!(
        r.approval_message,
        Some(format!("{APPROVALS_CONVERSATION}|{}", card.id))
    );
    let shown = content.to_string();
    assert!(
        shown.contains("ada-mac") && shown.contains("install printer driver"),
        "{shown}"
    );
    assert!(
        shown.contains("Ada Lovelace"),
        "the requester is shown by name: {shown}"
    );
    assert!(app.teams_dms("Ada")[1].contains("went to the approvers"));
    assert!(
        app.slack.messages().is_empty(),
        "a Teams request stays in Teams"
    );

    let id = r.id.to_string();
    let (status, answer) = app
        .teams_click("Grace", "tempadmin_approve", json!({ "request_id": id }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["statusCode"], 200);
    assert_eq!(answer["type"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(
        verbs(&answer["value"]),
        ["tempadmin_revoke"],
        "the clicked card is refreshed"
    );
    app.settle().await;
    let r = app.teams_request_of("Ada").await;
    assert_eq!(r.state(), RequestState::Active);
    assert_eq!(app.jc_ops(), ["add"]);
    assert!(app.jc.is_admin(JC_ADA, LAPTOP));
    let live = card_of(&app.teams_card().activity).clone();
    assert_eq!(verbs(&live), ["tempadmin_revoke"], "End now is offered");
    assert!(live.to_string().contains("Grace Hopper"), "{live}");

    app.advance(5 * MIN).await;
    assert!(app.teams_thread().last().unwrap().contains("15m left"));
    app.advance(10 * MIN).await;
    assert!(app.teams_thread().last().unwrap().contains("5m left"));
    app.advance(4 * MIN).await;
    assert!(app.teams_thread().last().unwrap().contains("1m left"));
    assert!(app.jc.is_admin(JC_ADA, LAPTOP));
    app.advance(MIN).await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::Ended
    );
    assert_eq!(app.jc_ops(), ["add", "remove"]);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));

    let thread = app.teams_thread();
    assert!(thread[0].contains("Approved by Grace Hopper"), "{thread:?}");
    assert!(
        thread[1].contains("is admin on `ada-mac` until"),
        "{thread:?}"
    );
    assert!(thread.last().unwrap().contains("Time is up"), "{thread:?}");
    let ended = app.teams_card();
    assert!(card_of(&ended.activity).to_string().contains("Ended at"));
    assert!(verbs(card_of(&ended.activity)).is_empty());
    assert!(ended.history.len() >= 3, "the card was updated in place");
    let dms = app.teams_dms("Ada");
    assert!(
        dms.iter().any(|m| m.contains("You are admin on")),
        "{dms:?}"
    );
    assert!(dms.last().unwrap().contains("have ended"), "{dms:?}");
}

#[tokio::test]
async fn non_approvers_and_the_requester_cannot_decide_in_teams() {
    let app = spawn_teams_app().await;
    let id = pending(&app, "20m").await;
    let data = json!({ "request_id": id });
    assert_eq!(
        app.teams_click("Mallory", "tempadmin_approve", data.clone())
            .await
            .0,
        200
    );
    assert_eq!(
        app.teams_click("Ada", "tempadmin_approve", data.clone())
            .await
            .0,
        200
    );
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::PendingApproval
    );
    assert!(app.jc_ops().is_empty());
    assert!(app
        .teams_dms("Mallory")
        .iter()
        .any(|t| t.contains("Only approvers")));
    assert!(app
        .teams_dms("Ada")
        .iter()
        .any(|t| t.contains("can't decide your own request")));

    // Hopper is an approver by Entra ID object id.
    app.teams_click("Hopper", "tempadmin_approve", data).await;
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::Active
    );
}

#[tokio::test]
async fn a_denied_teams_request_changes_nothing_and_the_card_says_so() {
    let app = spawn_teams_app().await;
    let id = pending(&app, "20m").await;
    let (_, answer) = app
        .teams_click("Grace", "tempadmin_deny", json!({ "request_id": id }))
        .await;
    assert!(
        verbs(&answer["value"]).is_empty(),
        "no buttons on a decided card"
    );
    assert!(answer["value"].to_string().contains("Denied by"));
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::Denied
    );
    assert!(app.jc_ops().is_empty());
    assert!(card_of(&app.teams_card().activity)
        .to_string()
        .contains("Denied by Grace Hopper"));
    assert!(app
        .teams_dms("Ada")
        .last()
        .unwrap()
        .contains("denied your request"));
    // A second click on the stale card changes nothing.
    app.teams_click("Hopper", "tempadmin_approve", json!({ "request_id": id }))
        .await;
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::Denied
    );
}

#[tokio::test]
async fn an_active_teams_grant_is_revoked_on_time_after_a_restart() {
    let mut app = spawn_teams_app().await;
    let id = pending(&app, "20m").await;
    app.teams_click("Grace", "tempadmin_approve", json!({ "request_id": id }))
        .await;
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::Active
    );
    app.restart().await;
    app.advance(21 * MIN).await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::Ended
    );
    assert_eq!(app.jc_ops(), ["add", "remove"]);
    assert!(app.teams_thread().last().unwrap().contains("Time is up"));
}

#[tokio::test]
async fn teams_down_at_expiry_does_not_delay_revocation_and_messages_follow() {
    let app = spawn_teams_app().await;
    let id = pending(&app, "20m").await;
    app.teams_click("Grace", "tempadmin_approve", json!({ "request_id": id }))
        .await;
    app.settle().await;
    app.advance(19 * MIN).await;
    let before = app.teams_thread().len();
    app.bf().set_down(true);
    app.advance(MIN).await;
    assert_eq!(
        app.jc_ops(),
        ["add", "remove"],
        "JumpCloud is restored on time"
    );
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::Ended
    );
    assert_eq!(
        app.teams_thread().len(),
        before,
        "nothing reached Teams yet"
    );
    app.bf().set_down(false);
    app.advance(2 * MIN).await;
    let thread = app.teams_thread();
    assert!(thread.last().unwrap().contains("Time is up"), "{thread:?}");
    assert!(app.teams_dms("Ada").last().unwrap().contains("have ended"));
}

#[tokio::test]
async fn slack_and_teams_requests_run_side_by_side_each_on_its_own_platform() {
    let app = spawn_teams_app().await;
    app.ask(ADA, "20m slack side").await;
    assert_eq!(
        app.teams_say("Lin", "<at>ignored</at> 30m teams side")
            .await,
        200
    );
    app.settle().await;
    let slack_request = app.request_of(ADA).await;
    let teams_request = app.teams_request_of("Lin").await;
    assert_eq!(slack_request.state(), RequestState::PendingApproval);
    assert_eq!(teams_request.state(), RequestState::PendingApproval);
    assert_eq!(app.cards().len(), 1, "one Slack card");
    assert_eq!(app.teams_cards().len(), 1, "one Teams card");
    assert!(card_of(&app.teams_card().activity)
        .to_string()
        .contains("lin-pc"));

    // A Slack approver cannot decide a Teams request through Slack.
    app.click(GRACE, "tempadmin_approve", teams_request.id.as_str())
        .await;
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Lin").await.state(),
        RequestState::PendingApproval
    );

    app.click(GRACE, "tempadmin_approve", slack_request.id.as_str())
        .await;
    app.teams_click(
        "Grace",
        "tempadmin_approve",
        json!({ "request_id": teams_request.id.as_str() }),
    )
    .await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
    assert_eq!(
        app.teams_request_of("Lin").await.state(),
        RequestState::Active
    );
    assert!(app.jc.is_admin(JC_ADA, LAPTOP) && app.jc.is_admin(JC_LIN, LIN_PC));
    assert!(app.thread()[0].contains("Approved by <@U0GRACE>"));
    assert!(app.teams_thread()[0].contains("Approved by Grace Hopper"));

    // Status sees only the person's own requests.
    assert_eq!(app.teams_say("Lin", "status").await, 200);
    let status = app.teams_dms("Lin").last().unwrap().clone();
    assert!(status.contains(teams_request.id.as_str()), "{status}");
    assert!(!status.contains(slack_request.id.as_str()), "{status}");
}

#[tokio::test]
async fn a_command_in_a_channel_counts_only_when_it_mentions_the_bot() {
    let app = spawn_teams_app().await;
    let channel = "19:general0000@thread.tacv2";
    app.bf().add_channel(channel, &["29:lin"]);
    let mut unmentioned = teams_sender::channel_message(
        &app.bf().service_url(),
        channel,
        &teams_person("Lin"),
        "20m",
        app.clock.now(),
    );
    unmentioned["id"] = json!(next_activity_id());
    unmentioned["entities"] = json!([]);
    assert_eq!(app.teams_post(&unmentioned).await.0, 200);
    assert!(app.teams_requests_of("Lin").await.is_empty());

    let mut mentioned = teams_sender::channel_message(
        &app.bf().service_url(),
        channel,
        &teams_person("Lin"),
        "tempadmin 20m lin-pc driver",
        app.clock.now(),
    );
    mentioned["id"] = json!(next_activity_id());
    assert_eq!(app.teams_post(&mentioned).await.0, 200);
    let r = app.teams_request_of("Lin").await;
    assert_eq!(r.words, ["lin-pc", "driver"]);
    let answer = app.bf().thread(channel, mentioned["id"].as_str().unwrap());
    assert!(
        answer[0].activity["text"]
            .as_str()
            .unwrap()
            .contains("Checking"),
        "the answer is a reply to the command"
    );
    // The same activity delivered again acts once.
    app.teams_post(&mentioned).await;
    assert_eq!(app.teams_requests_of("Lin").await.len(), 1);
}

#[tokio::test]
async fn unsigned_and_forged_activities_get_401_and_change_nothing() {
    let app = spawn_teams_app().await;
    let activity = teams_sender::personal_message(
        &app.bf().service_url(),
        &app.teams_chat_of("Ada"),
        &teams_person("Ada"),
        "20m",
        app.clock.now(),
    );
    let unsigned = app
        .http
        .post(app.url("/teams/messages"))
        .json(&activity)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);

    let mut claims = app.bf().claims(app.clock.now(), &app.bf().service_url());
    claims.aud = "another-app".into();
    let forged = app
        .http
        .post(app.url("/teams/messages"))
        .header(
            "authorization",
            format!("Bearer {}", app.bf().sign(&claims)),
        )
        .json(&activity)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);

    // A token for another serviceUrl cannot send our answers elsewhere.
    let mut elsewhere = activity.clone();
    elsewhere["serviceUrl"] = json!("http://127.0.0.1:9/evil/");
    let claims = app.bf().claims(app.clock.now(), &app.bf().service_url());
    let moved = app
        .http
        .post(app.url("/teams/messages"))
        .header(
            "authorization",
            format!("Bearer {}", app.bf().sign(&claims)),
        )
        .json(&elsewhere)
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status().as_u16(), 401);

    assert!(app.teams_requests_of("Ada").await.is_empty());
    assert!(app.bf().activities().is_empty(), "nothing was answered");
}

#[tokio::test]
async fn with_two_computers_the_requester_picks_one_on_a_card() {
    let app = spawn_teams_app().await;
    app.jc
        .add_system(system("sys000000000000000linmac", "lin-mac", "darwin"));
    app.jc.bind_via_group(
        JC_LIN,
        "sys000000000000000linmac",
        "grp0000000000000000000001",
    );
    assert_eq!(app.teams_say("Lin", "20m driver").await, 200);
    app.settle().await;
    let r = app.teams_request_of("Lin").await;
    assert_eq!(r.state(), RequestState::AwaitingDevice);
    let picker = app
        .bf()
        .activities()
        .into_iter()
        .rfind(|a| a.conversation_id == app.teams_chat_of("Lin"))
        .unwrap();
    let card = card_of(&picker.activity);
    let buttons = card["actions"].as_array().unwrap();
    assert_eq!(buttons.len(), 2);
    assert!(buttons.iter().all(|b| b["verb"] == "tempadmin_pick_device"));
    let chosen = buttons
        .iter()
        .find(|b| b["title"].as_str().unwrap().starts_with("lin-mac"))
        .unwrap();
    let mut click = teams_sender::card_action(
        &app.bf().service_url(),
        &app.teams_chat_of("Lin"),
        &picker.id,
        &teams_person("Lin"),
        "tempadmin_pick_device",
        chosen["data"].clone(),
        app.clock.now(),
    );
    click["id"] = json!(format!("f:{}", next_activity_id()));
    let (status, answer) = app.teams_post(&click).await;
    assert_eq!(status, 200);
    assert_eq!(answer["type"], "application/vnd.microsoft.activity.message");
    app.settle().await;
    let r = app.teams_request_of("Lin").await;
    assert_eq!(r.state(), RequestState::PendingApproval);
    assert_eq!(r.device().unwrap().hostname, "lin-mac");
}

/// The connector calls that created a 1:1 chat (`POST …/v3/conversations`).
/// Ada asks in `channel`, Grace approves, and Ada hears of her grant by
/// direct message; her request and the id of the activity she asked with.
async fn ada_asks_in_a_channel_and_is_told_by_direct_message(
    app: &TestApp,
    channel: &str,
) -> (Request, String) {
    let mut asked = teams_sender::channel_message(
        &app.bf().service_url(),
        channel,
        &teams_person("Ada"),
        "tempadmin 20m",
        app.clock.now(),
    );
    asked["id"] = json!(next_activity_id());
    assert_eq!(app.teams_post(&asked).await.0, 200);
    app.settle().await;
    let r = app.teams_request_of("Ada").await;
    app.teams_click(
        "Grace",
        "tempadmin_approve",
        json!({ "request_id": r.id.as_str() }),
    )
    .await;
    app.settle().await;
    assert!(
        app.teams_dms("Ada")
            .iter()
            .any(|m| m.contains("You are admin on")),
        "{:?}",
        app.teams_dms("Ada")
    );
    (r, asked["id"].as_str().unwrap().to_string())
}

fn chats_created(app: &TestApp) -> Vec<String> {
    app.bf()
        .calls()
        .into_iter()
        .filter(|c| c.method == "POST" && c.path.ends_with("/v3/conversations"))
        .map(|c| c.path)
        .collect()
}

#[tokio::test]
async fn a_person_served_by_another_region_is_answered_and_messaged_through_their_own_service_url()
{
    let app = spawn_teams_app().await;
    app.bf().set_region("29:lin", "amer");
    assert_eq!(app.teams_say_in_region("Lin", "20m driver").await, 200);
    app.settle().await;
    let r = app.teams_request_of("Lin").await;
    assert_eq!(r.state(), RequestState::PendingApproval, "{r:?}");
    let dms = app.teams_dms("Lin");
    assert!(dms[0].contains("Checking"), "{dms:?}");
    assert!(dms[1].contains("went to the approvers"), "{dms:?}");

    let chat = app.teams_chat_of("Lin");
    let calls = app.bf().calls();
    let to_chat: Vec<_> = calls.iter().filter(|c| c.path.contains(&chat)).collect();
    assert!(!to_chat.is_empty());
    assert!(
        to_chat.iter().all(|c| c.path.starts_with("/amer/v3/")),
        "{to_chat:?}"
    );
    let to_channel: Vec<_> = calls
        .iter()
        .filter(|c| c.path.contains(APPROVALS_CONVERSATION))
        .collect();
    assert!(
        to_channel.iter().all(|c| c.path.starts_with("/emea/v3/")),
        "the approvals channel stays on teams.service_url: {to_channel:?}"
    );

    app.teams_click(
        "Grace",
        "tempadmin_approve",
        json!({ "request_id": r.id.as_str() }),
    )
    .await;
    app.settle().await;
    assert!(app
        .teams_dms("Lin")
        .iter()
        .any(|m| m.contains("You are admin on")));
    assert!(chats_created(&app).is_empty(), "her chat was known");
}

#[tokio::test]
async fn installing_the_bot_keeps_the_chat_so_direct_messages_open_no_new_conversation() {
    let app = spawn_teams_app().await;
    let install = teams_sender::personal_install(
        &app.bf().service_url(),
        &teams_person("Ada"),
        app.clock.now(),
    );
    assert_eq!(app.teams_post(&install).await.0, 200);
    assert!(
        app.bf().activities().is_empty(),
        "an install is not answered"
    );

    // Ada asks in a channel, so no activity of hers named her 1:1 chat since.
    let channel = "19:general0000@thread.tacv2";
    app.bf().add_channel(channel, &["29:ada"]);
    let (r, _) = ada_asks_in_a_channel_and_is_told_by_direct_message(&app, channel).await;
    assert!(chats_created(&app).is_empty(), "{:?}", chats_created(&app));

    // Mallory never wrote: her answer opens her chat, once.
    app.teams_click(
        "Mallory",
        "tempadmin_revoke",
        json!({ "request_id": r.id.as_str() }),
    )
    .await;
    app.teams_click(
        "Mallory",
        "tempadmin_revoke",
        json!({ "request_id": r.id.as_str() }),
    )
    .await;
    app.settle().await;
    assert_eq!(app.teams_dms("Mallory").len(), 2);
    assert_eq!(chats_created(&app), ["/emea/v3/conversations"]);
}

/// The Entra ID group of approvers in the group tests, and one nested in it.
const ADMINS: &str = "0f1e2d3c-0000-4000-8000-00000000a001";
const ON_CALL: &str = "0f1e2d3c-0000-4000-8000-00000000a002";

/// A Teams app whose approvers are, besides Grace and Hopper, the members
/// of [`ADMINS`]: three strangers, then [`ON_CALL`] with Mallory and Ada
/// in it. Graph pages two members at a time, so finding Mallory takes
/// paging.
async fn spawn_with_groups() -> TestApp {
    let app = spawn_teams_app_configured(|config| {
        config.teams.as_mut().unwrap().approver_groups = vec![ADMINS.into()];
    })
    .await;
    app.bf()
        .set_group(ADMINS, &["aad-x1", "aad-x2", "aad-x3", ON_CALL]);
    app.bf().set_group(ON_CALL, &["aad-mallory", "aad-ada"]);
    app.bf().set_graph_page_size(2);
    app
}

#[tokio::test]
async fn a_member_of_an_approvers_group_nested_and_on_a_later_page_approves() {
    let app = spawn_with_groups().await;
    let id = pending(&app, "20m").await;
    let (status, answer) = app
        .teams_click("Mallory", "tempadmin_approve", json!({ "request_id": id }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(verbs(&answer["value"]), ["tempadmin_revoke"]);
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::Active
    );
    assert_eq!(app.jc_ops(), ["add"]);

    let graph = app.bf().graph_calls();
    assert!(graph.len() >= 2, "the next pages were followed: {graph:?}");
    assert!(graph.iter().all(|c| c.path
        == format!("/v1.0/groups/{ADMINS}/transitiveMembers/microsoft.graph.user")
        && c.query.starts_with("$select=id,mail,userPrincipalName")));
    assert!(graph[1..].iter().all(|c| c.query.contains("$skiptoken=")));
    let tokens: Vec<_> = app
        .bf()
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("/oauth2/v2.0/token"))
        .map(|c| c.body["scope"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        tokens.contains(&"https://graph.microsoft.com/.default".to_owned())
            && tokens.contains(&"https://api.botframework.com/.default".to_owned()),
        "a token of its own for Graph: {tokens:?}"
    );
}

#[tokio::test]
async fn outside_the_groups_or_in_them_as_the_requester_nobody_decides() {
    let app = spawn_with_groups().await;
    let id = pending(&app, "20m").await;
    let data = json!({ "request_id": id });
    app.teams_click("Lin", "tempadmin_approve", data.clone())
        .await;
    app.teams_click("Ada", "tempadmin_approve", data.clone())
        .await;
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::PendingApproval
    );
    assert!(app.jc_ops().is_empty());
    assert!(app
        .teams_dms("Lin")
        .iter()
        .any(|t| t.contains("Only approvers")));
    assert!(app
        .teams_dms("Ada")
        .iter()
        .any(|t| t.contains("can't decide your own request")));

    // Exactly one decision: the first member's counts, the second is told.
    app.teams_click("Mallory", "tempadmin_deny", data.clone())
        .await;
    app.teams_click("Grace", "tempadmin_approve", data).await;
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::Denied
    );
    assert!(app.jc_ops().is_empty());
    assert!(
        app.teams_dms("Grace")
            .iter()
            .any(|t| t.contains("already denied")),
        "{:?}",
        app.teams_dms("Grace")
    );
}

#[tokio::test]
async fn a_person_taken_out_of_the_group_after_the_request_can_no_longer_decide() {
    let app = spawn_with_groups().await;
    let id = pending(&app, "20m").await;
    app.bf().remove_from_group(ON_CALL, "aad-mallory");
    app.teams_click("Mallory", "tempadmin_approve", json!({ "request_id": id }))
        .await;
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::PendingApproval
    );
    assert!(app
        .teams_dms("Mallory")
        .iter()
        .any(|t| t.contains("Only approvers")));

    // Put back, she counts again at her next click: nothing is cached.
    app.bf().set_group(ON_CALL, &["aad-mallory"]);
    app.teams_click("Mallory", "tempadmin_approve", json!({ "request_id": id }))
        .await;
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::Active
    );
}

#[tokio::test]
async fn graph_down_or_without_permission_decides_nothing_and_the_approver_is_told_to_try_again() {
    let app = spawn_with_groups().await;
    let id = pending(&app, "20m").await;
    let data = json!({ "request_id": id });
    app.bf().set_graph_down(true);
    let (status, answer) = app
        .teams_click("Mallory", "tempadmin_approve", data.clone())
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        verbs(&answer["value"]),
        ["tempadmin_approve", "tempadmin_deny"],
        "the card still offers the decision"
    );
    app.bf().set_graph_down(false);
    app.bf().set_graph_permission_granted(false);
    app.teams_click("Mallory", "tempadmin_approve", data.clone())
        .await;
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::PendingApproval
    );
    assert!(app.jc_ops().is_empty());
    let told: Vec<_> = app
        .teams_dms("Mallory")
        .into_iter()
        .filter(|t| t.contains("Please try again in a minute"))
        .collect();
    assert_eq!(told.len(), 2, "{:?}", app.teams_dms("Mallory"));

    // A listed approver does not need Graph.
    app.teams_click("Grace", "tempadmin_approve", data).await;
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::Active
    );
}

/// Texts the bot posted in conversation `chat`, in order.
fn texts_in(app: &TestApp, chat: &str) -> Vec<String> {
    app.bf()
        .activities()
        .into_iter()
        .filter(|a| a.conversation_id == chat)
        .map(|a| a.activity["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_chat_the_person_deleted_is_opened_again_once_and_kept() {
    let app = spawn_teams_app().await;
    let id = pending(&app, "20m").await;
    let old_chat = app.teams_chat_of("Ada");
    assert!(app.teams_dms("Ada").len() >= 2, "Ada's kept chat works");
    app.bf().delete_conversation(&old_chat);

    app.teams_click("Grace", "tempadmin_approve", json!({ "request_id": id }))
        .await;
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::Active
    );
    let new_chat = app
        .bf()
        .personal_conversation_of("29:ada")
        .expect("the chat was opened again");
    assert_ne!(new_chat, old_chat);
    assert!(
        texts_in(&app, &new_chat)
            .iter()
            .any(|m| m.contains("You are admin on")),
        "{:?}",
        texts_in(&app, &new_chat)
    );
    assert_eq!(chats_created(&app), ["/emea/v3/conversations"], "once");
    let kept = app
        .engine
        .store()
        .conversation_reference(&tempadmin::domain::ChatUserId::teams("29:ada"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.conversation_id.as_deref(), Some(new_chat.as_str()));

    // Later messages go straight to the new chat.
    app.advance(21 * MIN).await;
    assert!(texts_in(&app, &new_chat)
        .last()
        .unwrap()
        .contains("have ended"));
    assert_eq!(chats_created(&app).len(), 1, "{:?}", chats_created(&app));
}

#[tokio::test]
async fn a_click_keeps_where_the_person_is_served_but_not_the_channel_as_their_chat() {
    let app = spawn_teams_app().await;
    let id = pending(&app, "20m").await;
    let ada = tempadmin::domain::ChatUserId::teams("29:ada");
    let store = app.engine.store().clone();
    let before = store.conversation_reference(&ada).await.unwrap().unwrap();
    assert_eq!(before.conversation_id, Some(app.teams_chat_of("Ada")));

    // Mallory never wrote to the bot and is served from the Americas: only
    // her click can tell where to open her chat.
    app.bf().set_region("29:mallory", "amer");
    let mut click = teams_sender::card_action(
        &app.bf().service_url_of("29:mallory"),
        APPROVALS_CONVERSATION,
        &app.teams_card().id,
        &teams_person("Mallory"),
        "tempadmin_approve",
        json!({ "request_id": id }),
        app.clock.now(),
    );
    click["id"] = json!(format!("f:{}", next_activity_id()));
    assert_eq!(app.teams_post(&click).await.0, 200);
    app.settle().await;
    let mallory = store
        .conversation_reference(&tempadmin::domain::ChatUserId::teams("29:mallory"))
        .await
        .unwrap()
        .expect("the click kept her reference");
    assert_eq!(mallory.service_url, app.bf().service_url_in("amer"));
    assert_eq!(
        mallory.tenant_id.as_deref(),
        Some(tempadmin::sim::teams::TENANT_ID)
    );
    assert!(app
        .teams_dms("Mallory")
        .iter()
        .any(|t| t.contains("Only approvers")));
    assert_eq!(chats_created(&app), ["/amer/v3/conversations"]);

    // Ada's click in the channel refreshes her sighting, not her chat.
    app.advance(MIN).await;
    app.teams_click("Ada", "tempadmin_approve", json!({ "request_id": id }))
        .await;
    app.settle().await;
    let after = store.conversation_reference(&ada).await.unwrap().unwrap();
    assert!(after.seen_at > before.seen_at, "{after:?}");
    assert_eq!(after.conversation_id, Some(app.teams_chat_of("Ada")));
    assert!(app
        .teams_dms("Ada")
        .last()
        .unwrap()
        .contains("can't decide your own request"));
    assert_eq!(chats_created(&app).len(), 1, "{:?}", chats_created(&app));
}

#[tokio::test]
async fn the_bot_added_to_a_team_answers_nothing_and_keeps_only_the_installers_sighting() {
    let app = spawn_teams_app().await;
    let team = "19:team0000@thread.tacv2";
    app.bf().add_channel(team, &["29:ada"]);
    let install = teams_sender::team_install(
        &app.bf().service_url(),
        team,
        &teams_person("Ada"),
        app.clock.now(),
    );
    let (status, _) = app.teams_post(&install).await;
    assert_eq!(status, 200);
    app.settle().await;
    assert!(
        app.bf().activities().is_empty(),
        "no welcome: installs are not answered"
    );
    assert!(app.teams_requests_of("Ada").await.is_empty());

    let store = app.engine.store().clone();
    let ada = store
        .conversation_reference(&tempadmin::domain::ChatUserId::teams("29:ada"))
        .await
        .unwrap()
        .expect("the installer's sighting is kept");
    assert_eq!(ada.service_url, app.bf().service_url());
    assert_eq!(ada.conversation_id, None, "the team is not her 1:1 chat");
    let bot = format!("28:{}", tempadmin::sim::teams::APP_ID);
    assert_eq!(
        store
            .conversation_reference(&tempadmin::domain::ChatUserId::teams(&bot))
            .await
            .unwrap(),
        None,
        "the bot is not a person"
    );

    // Her direct messages then go to a 1:1 chat, never into the team.
    let (_, asked) = ada_asks_in_a_channel_and_is_told_by_direct_message(&app, team).await;
    assert_eq!(chats_created(&app), ["/emea/v3/conversations"]);
    let in_team: Vec<_> = app
        .bf()
        .activities()
        .into_iter()
        .filter(|a| a.conversation_id == team)
        .collect();
    assert!(
        in_team
            .iter()
            .all(|a| a.reply_to.as_deref() == Some(asked.as_str())),
        "only the answer to her command, in its thread: {in_team:?}"
    );
}
