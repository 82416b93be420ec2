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
    teams_sender::renumber(&mut unmentioned, &next_activity_id());
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
    teams_sender::renumber(&mut mentioned, &next_activity_id());
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
    teams_sender::renumber(&mut asked, &next_activity_id());
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
        && c.query
            .starts_with("$count=true&$select=id,mail,userPrincipalName")));
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

#[test]
fn serve_with_teams_but_no_tenant_id_refuses_to_start_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let with_tenant = "[teams]\n\
        app_id = \"00000000-0000-4000-8000-00000000b07f\"\n\
        tenant_id = \"72f988bf-0000-4000-8000-0000000000aa\"\n\
        approvals_conversation = \"19:approvals@thread.tacv2\"\n\
        approvers = [\"00000000-0000-4000-8000-0000000000a1\"]\n";
    let serve = |config: &str| {
        std::fs::write(&path, config).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_tempadmin"))
            .args(["serve", "--config"])
            .arg(&path)
            .env("TEAMS_APP_PASSWORD", "teams-secret-value")
            .env("JUMPCLOUD_API_KEY", "jc-secret-value")
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("t.db").display()),
            )
            .env("TEMPADMIN_LISTEN", "no-such-address")
            .output()
            .unwrap()
    };
    let without = with_tenant.replace("tenant_id = \"72f988bf-0000-4000-8000-0000000000aa\"\n", "");
    let out = serve(&without);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("teams.tenant_id is required") && err.contains("single-tenant"),
        "{err}"
    );
    assert!(!err.contains("teams-secret-value"), "{err}");
    // The same file with the tenant gets past the configuration.
    let out = serve(with_tenant);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("teams.tenant_id"), "{err}");
}

/// Ada's `20m` in her 1:1 chat, with its tenant fields set by `tenant`.
fn ada_asks_with(app: &TestApp, tenant: impl FnOnce(&mut Value)) -> Value {
    let mut activity = teams_sender::personal_message(
        &app.bf().service_url(),
        &app.teams_chat_of("Ada"),
        &teams_person("Ada"),
        "20m foreign",
        app.clock.now(),
    );
    activity["id"] = json!(next_activity_id());
    tenant(&mut activity);
    activity
}

/// Nothing happened for `name`: no request, no sighting kept, and the bot
/// called the connector not once.
async fn nothing_happened_for(app: &TestApp, name: &str) {
    app.settle().await;
    assert!(app.teams_requests_of(name).await.is_empty());
    let kept = app
        .engine
        .store()
        .conversation_reference(&tempadmin::domain::ChatUserId::teams(teams_person(name).id))
        .await
        .unwrap();
    assert_eq!(kept, None, "nothing of theirs is kept");
    assert!(app.bf().activities().is_empty(), "nothing was posted");
    let connector: Vec<_> = app
        .bf()
        .calls()
        .into_iter()
        .filter(|c| c.path.contains("/v3/"))
        .collect();
    assert!(connector.is_empty(), "{connector:?}");
}

#[tokio::test]
async fn a_command_from_another_tenant_or_of_none_is_acknowledged_and_changes_nothing() {
    let app = spawn_teams_app().await;
    type Case = (&'static str, fn(&mut Value));
    let cases: [Case; 3] = [
        ("both fields name another tenant", |a| {
            a["channelData"]["tenant"]["id"] = json!(FOREIGN);
            a["conversation"]["tenantId"] = json!(FOREIGN);
        }),
        ("the conversation names another tenant", |a| {
            a["conversation"]["tenantId"] = json!(FOREIGN);
        }),
        ("no tenant at all", |a| {
            a["channelData"] = json!({});
            a["conversation"]
                .as_object_mut()
                .unwrap()
                .remove("tenantId");
        }),
    ];
    for (why, tenant) in cases {
        let (status, _) = app.teams_post(&ada_asks_with(&app, tenant)).await;
        assert_eq!(status, 200, "{why}: acknowledged, so it is not resent");
    }
    nothing_happened_for(&app, "Ada").await;

    // Ours in both places, in any case, acts.
    let (status, _) = app
        .teams_post(&ada_asks_with(&app, |a| {
            let upper = json!(tempadmin::sim::teams::TENANT_ID.to_ascii_uppercase());
            a["channelData"]["tenant"]["id"] = upper.clone();
            a["conversation"]["tenantId"] = upper;
        }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.teams_requests_of("Ada").await.len(), 1);
}

#[tokio::test]
async fn an_emulator_activity_signed_by_a_key_that_endorses_it_has_no_effect() {
    let app = spawn_teams_app().await;
    let kid = app
        .bf()
        .add_key(&["emulator", "webchat", "directline"])
        .await;
    for channel in ["emulator", "webchat", "directline"] {
        let mut activity = ada_asks_with(&app, |_| {});
        activity["channelId"] = json!(channel);
        let mut claims = app.bf().claims(app.clock.now(), &app.bf().service_url());
        claims.kid = Some(kid.clone());
        let response = app
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
        assert_eq!(
            response.status().as_u16(),
            200,
            "{channel}: the token verifies and the activity is acknowledged"
        );
    }
    nothing_happened_for(&app, "Ada").await;
}

/// Another Microsoft 365 tenant (Fabrikam's).
const FOREIGN: &str = "0badc0de-0000-4000-8000-0000000000ff";

/// A member of another tenant who sits in our channels (a guest, or a
/// shared channel's member) with whatever mail their tenant gave them.
fn foreign_member(id: &str, mail: &str) -> tempadmin::sim::teams::SimUser {
    tempadmin::sim::teams::SimUser {
        id: id.into(),
        name: "Visitor".into(),
        aad_object_id: format!("aad-{id}"),
        email: Some(mail.into()),
        user_principal_name: mail.into(),
        tenant_id: FOREIGN.into(),
    }
}

/// `who` clicks `verb` on the newest card in the approvals channel.
async fn click_as(
    app: &TestApp,
    who: &tempadmin::sim::teams::SimUser,
    verb: &str,
    data: Value,
) -> (u16, Value) {
    let mut activity = teams_sender::card_action(
        &app.bf().service_url(),
        APPROVALS_CONVERSATION,
        &app.teams_card().id,
        who,
        verb,
        data,
        app.clock.now(),
    );
    activity["id"] = json!(format!("f:{}", next_activity_id()));
    app.teams_post(&activity).await
}

#[tokio::test]
async fn a_member_of_another_tenant_whose_mail_is_a_listed_approvers_cannot_approve() {
    let app = spawn_teams_app().await;
    // Grace is an approver by email (Grace@Example.com); the visitor's own
    // tenant says their mail and sign-in name are hers too.
    let visitor = foreign_member("29:visitor", "grace@example.com");
    app.bf().add_user(visitor.clone());
    let id = pending(&app, "20m").await;
    let data = json!({ "request_id": id });
    let (status, _) = click_as(&app, &visitor, "tempadmin_approve", data.clone()).await;
    assert_eq!(status, 200);
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::PendingApproval
    );
    assert!(app.jc_ops().is_empty());

    // The real Grace, of our tenant, still approves by the same entry.
    app.teams_click("Grace", "tempadmin_approve", data).await;
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::Active
    );
}

#[tokio::test]
async fn a_member_of_another_tenant_cannot_ask_even_with_a_colleagues_mail() {
    let app = spawn_teams_app().await;
    let visitor = foreign_member("29:visitor", "ada@example.com");
    app.bf().add_user(visitor.clone());
    let channel = "19:general0000@thread.tacv2";
    app.bf().add_channel(channel, &["29:visitor"]);
    let mut asked = teams_sender::channel_message(
        &app.bf().service_url(),
        channel,
        &visitor,
        "tempadmin 20m",
        app.clock.now(),
    );
    teams_sender::renumber(&mut asked, &next_activity_id());
    assert_eq!(app.teams_post(&asked).await.0, 200);
    app.settle().await;
    let r = app.requests_of("29:visitor").await.pop().expect("recorded");
    assert_eq!(r.state(), RequestState::Refused, "{r:?}");
    assert!(app.teams_cards().is_empty(), "no card for Ada's computer");
    assert!(app.jc_ops().is_empty());
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
}

/// Asserts that a Teams invoke answer is the short refusal and names
/// nothing of `secrets`.
fn reveals_nothing(answer: &Value, secrets: &[&str]) {
    assert_eq!(answer["type"], "application/vnd.microsoft.activity.message");
    assert_eq!(answer["value"], "You can't act on this request.");
    let text = answer.to_string();
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[tokio::test]
async fn a_teams_click_on_an_unknown_or_a_slack_request_reveals_nothing_of_it() {
    let app = spawn_teams_app().await;
    app.ask(ADA, "20m ada-mac slack-only-reason").await;
    app.settle().await;
    let slack = app.request_of(ADA).await;
    assert_eq!(slack.state(), RequestState::PendingApproval);
    // A Teams card exists to click on: Lin's.
    assert_eq!(app.teams_say("Lin", "20m teams-reason").await, 200);
    app.settle().await;
    let secrets = ["ada-mac", "slack-only-reason", "ada@example.com", "Ada"];
    for verb in ["tempadmin_approve", "tempadmin_deny", "tempadmin_revoke"] {
        for id in [slack.id.as_str(), "ta-zzzzzzzzzz"] {
            let (status, answer) = app
                .teams_click("Grace", verb, json!({ "request_id": id }))
                .await;
            assert_eq!(status, 200);
            reveals_nothing(&answer, &secrets);
        }
    }
    let (_, answer) = app
        .teams_click(
            "Grace",
            "tempadmin_pick_device",
            json!({ "request_id": slack.id.as_str(), "system_id": LAPTOP }),
        )
        .await;
    reveals_nothing(&answer, &secrets);
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::PendingApproval);
    assert!(app.jc_ops().is_empty());
}

#[tokio::test]
async fn end_now_by_someone_who_may_not_end_it_shows_them_nothing_of_the_request() {
    let app = spawn_teams_app().await;
    assert_eq!(app.teams_say("Lin", "20m lin-secret-reason").await, 200);
    app.settle().await;
    let id = app.teams_request_of("Lin").await.id.to_string();
    app.teams_click("Grace", "tempadmin_approve", json!({ "request_id": id }))
        .await;
    app.settle().await;
    let secrets = ["lin-pc", "lin-secret-reason", "lin@example.com", "Lin Chen"];

    // Mallory, in the channel, may not end it; Ada, from her own chat, neither.
    let (status, answer) = app
        .teams_click("Mallory", "tempadmin_revoke", json!({ "request_id": id }))
        .await;
    assert_eq!(status, 200);
    reveals_nothing(&answer, &secrets);
    let mut from_her_chat = teams_sender::card_action(
        &app.bf().service_url(),
        &app.teams_chat_of("Ada"),
        "1",
        &teams_person("Ada"),
        "tempadmin_revoke",
        json!({ "request_id": id }),
        app.clock.now(),
    );
    from_her_chat["id"] = json!(format!("f:{}", next_activity_id()));
    let (_, answer) = app.teams_post(&from_her_chat).await;
    reveals_nothing(&answer, &secrets);
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Lin").await.state(),
        RequestState::Active
    );

    // Hopper, an approver, ends it and sees the card.
    let (_, answer) = app
        .teams_click("Hopper", "tempadmin_revoke", json!({ "request_id": id }))
        .await;
    assert_eq!(answer["type"], "application/vnd.microsoft.card.adaptive");
    assert!(answer["value"].to_string().contains("lin-pc"));
}

#[tokio::test]
async fn every_thread_reply_lands_in_the_cards_thread_and_nothing_else_at_the_channels_top() {
    let app = spawn_teams_app().await;
    let id = pending(&app, "20m").await;
    app.teams_click("Grace", "tempadmin_approve", json!({ "request_id": id }))
        .await;
    app.settle().await;
    for minutes in [5, 10, 4, 2] {
        app.advance(minutes * MIN).await;
    }
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::Ended
    );

    let card = app.teams_card();
    let top: Vec<_> = app
        .bf()
        .activities()
        .into_iter()
        .filter(|a| a.conversation_id == APPROVALS_CONVERSATION && a.reply_to.is_none())
        .map(|a| a.id)
        .collect();
    assert_eq!(
        top,
        std::slice::from_ref(&card.id),
        "only the card is a top-level post"
    );
    let thread = app.teams_thread();
    for expected in [
        "Approved by Grace Hopper",
        "15m left",
        "5m left",
        "1m left",
        "Time is up",
    ] {
        assert!(
            thread.iter().any(|t| t.contains(expected)),
            "{expected} not in {thread:?}"
        );
    }
    // Addressed as Teams threads them: the channel and the card's id.
    let in_thread = format!(
        "/emea/v3/conversations/{APPROVALS_CONVERSATION};messageid={}/activities",
        card.id
    );
    let posts: Vec<_> = app
        .bf()
        .calls()
        .into_iter()
        .filter(|c| c.method == "POST" && c.path.contains(APPROVALS_CONVERSATION))
        .map(|c| c.path)
        .collect();
    assert_eq!(posts.len(), thread.len() + 1, "{posts:?}");
    assert!(posts[1..].iter().all(|p| *p == in_thread), "{posts:?}");
}

#[tokio::test]
async fn the_approvals_channel_is_served_where_its_own_activities_say_even_after_a_restart() {
    let mut app = spawn_teams_app().await;
    let amer = app.bf().service_url_in("amer");
    // teams.service_url says emea; Teams serves the channel from amer.
    app.bf()
        .set_conversation_region(APPROVALS_CONVERSATION, "amer");
    let added = teams_sender::conversation_update(
        &amer,
        APPROVALS_CONVERSATION,
        &[teams_sender::bot_member()],
        app.clock.now(),
    );
    assert_eq!(app.teams_post(&added).await.0, 200);

    app.restart().await;
    let id = pending(&app, "20m").await;
    let mut click = teams_sender::card_action(
        &amer,
        APPROVALS_CONVERSATION,
        &app.teams_card().id,
        &teams_person("Grace"),
        "tempadmin_approve",
        json!({ "request_id": id }),
        app.clock.now(),
    );
    click["id"] = json!(format!("f:{}", next_activity_id()));
    let (_, answer) = app.teams_post(&click).await;
    assert_eq!(answer["type"], "application/vnd.microsoft.card.adaptive");
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::Active
    );
    app.advance(21 * MIN).await;
    assert!(app.teams_thread().last().unwrap().contains("Time is up"));

    let to_channel: Vec<_> = app
        .bf()
        .calls()
        .into_iter()
        .filter(|c| c.path.contains(APPROVALS_CONVERSATION))
        .map(|c| c.path)
        .collect();
    assert!(!to_channel.is_empty());
    assert!(
        to_channel.iter().all(|p| p.starts_with("/amer/v3/")),
        "{to_channel:?}"
    );
}

#[tokio::test]
async fn the_privacy_and_terms_links_of_the_teams_app_are_served_and_only_with_teams() {
    let app = spawn_teams_app().await;
    let manifest: Value = serde_json::from_str(
        &tempadmin::teams::package::manifest(
            "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
            "tempadmin.example.com",
        )
        .unwrap(),
    )
    .unwrap();
    for (link, words) in [
        ("privacyUrl", "What it keeps"),
        ("termsOfUseUrl", "terms of use"),
    ] {
        let url = manifest["developer"][link].as_str().unwrap();
        let path = url.strip_prefix("https://tempadmin.example.com").unwrap();
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8"
        );
        assert!(response.text().await.unwrap().contains(words), "{path}");
    }
    let slack_only = spawn_app().await;
    for path in ["/privacy", "/terms"] {
        let response = slack_only
            .http
            .get(slack_only.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 404, "{path} without Teams");
    }
}

#[tokio::test]
async fn a_second_teams_identity_of_the_requester_cannot_approve_her_request() {
    let app = spawn_teams_app_configured(|config| {
        let teams = config.teams.as_mut().unwrap();
        teams.approvers.push("aad-ada2".into());
    })
    .await;
    // Ada's admin account in our tenant: another Teams identity whose mail
    // JumpCloud finds as Ada's own account.
    let mut second = teams_person("Ada2");
    second.email = Some("Ada@Example.com".into());
    second.user_principal_name = "ada.admin@example.com".into();
    app.bf().add_user(second);
    let id = pending(&app, "20m printer").await;
    let data = json!({ "request_id": id });
    let (status, _) = app
        .teams_click("Ada2", "tempadmin_approve", data.clone())
        .await;
    assert_eq!(status, 200);
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::PendingApproval
    );
    assert!(app.jc.writes().is_empty(), "nothing elevated");
    assert!(
        app.teams_dms("Ada2")
            .iter()
            .any(|t| t.contains("your own JumpCloud account")),
        "told why: {:?}",
        app.teams_dms("Ada2")
    );
    app.teams_click("Hopper", "tempadmin_approve", data).await;
    app.settle().await;
    assert_eq!(
        app.teams_request_of("Ada").await.state(),
        RequestState::Active
    );
}
