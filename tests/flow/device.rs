//! The computer itself (`[device]`): JumpCloud commands installed once,
//! bound to the granted device for the life of the grant, triggered with the
//! bot's own text only, and never in the way of a grant or a revocation.

use std::time::Duration;

use serde_json::Value;
use tempadmin::domain::RequestState;
use tempadmin::engine::device::{DeviceSettings, EndElevated};
use tempadmin::jumpcloud::commands::{install_commands, Installed};
use tempadmin::jumpcloud::JumpCloudClient;
use tempadmin::sim::jumpcloud::{Failure, RecordedCall};

use crate::support::*;

const MIN: Duration = Duration::from_secs(60);

async fn device_app() -> TestApp {
    let app = spawn_app_configured(|c| {
        c.device = DeviceSettings {
            notices: true,
            end_elevated: EndElevated::Terminate,
        }
    })
    .await;
    install(&app).await;
    app
}

async fn install(app: &TestApp) -> Vec<(&'static str, Installed)> {
    let client = JumpCloudClient::new(app.config.jumpcloud.clone()).unwrap();
    install_commands(&client).await.unwrap()
}

/// The calls about commands: creating, binding, triggering.
fn command_calls(app: &TestApp) -> Vec<RecordedCall> {
    app.jc
        .calls()
        .into_iter()
        .filter(|c| c.path.starts_with("/api/command") || c.path.starts_with("/api/v2/commands"))
        .collect()
}

fn command_id(app: &TestApp, name: &str) -> String {
    app.jc
        .commands()
        .into_iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["_id"].as_str().map(str::to_owned))
        .unwrap()
}

/// `bind NAME SYSTEM`, `trigger TRIGGER TARGET`, `unbind NAME SYSTEM` for
/// each command call after installation.
fn device_steps(app: &TestApp) -> Vec<String> {
    let names: Vec<(String, String)> = app
        .jc
        .commands()
        .into_iter()
        .map(|c| {
            (
                c["_id"].as_str().unwrap().to_owned(),
                c["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let name_of = |id: &str| {
        names
            .iter()
            .find(|(i, _)| i == id)
            .map_or(id.to_owned(), |(_, n)| n.clone())
    };
    command_calls(app)
        .into_iter()
        .filter(|c| c.method == "POST")
        .filter_map(|c| {
            let segments: Vec<&str> = c.path.trim_start_matches('/').split('/').collect();
            let body = c.body.clone().unwrap_or(Value::Null);
            match segments.as_slice() {
                ["api", "v2", "commands", id, "associations"] => {
                    let op = if body["op"] == "add" {
                        "bind"
                    } else {
                        "unbind"
                    };
                    Some(format!(
                        "{op} {} {}",
                        name_of(id),
                        body["id"].as_str().unwrap()
                    ))
                }
                ["api", "command", "trigger", name] => Some(format!(
                    "trigger {name} {}",
                    body["targetSystemId"].as_str().unwrap_or("?")
                )),
                _ => None,
            }
        })
        .collect()
}

#[tokio::test]
async fn install_commands_twice_creates_nothing_the_second_time() {
    let app = spawn_app().await;
    let first = install(&app).await;
    assert_eq!(first.len(), 6);
    assert!(
        first.iter().all(|(_, o)| *o == Installed::Created),
        "{first:?}"
    );
    let writes = |app: &TestApp| {
        app.jc
            .calls()
            .into_iter()
            .filter(|c| c.path.starts_with("/api/commands") && c.method != "GET")
            .count()
    };
    assert_eq!(writes(&app), 6);

    let second = install(&app).await;
    assert!(
        second.iter().all(|(_, o)| *o == Installed::Unchanged),
        "{second:?}"
    );
    assert_eq!(writes(&app), 6, "the second run wrote to JumpCloud");
    assert_eq!(app.jc.commands().len(), 6);

    // Somebody edited one in the console: only that one is put back.
    let edited = command_id(&app, "tempadmin-notice-linux");
    let changed = reqwest::Client::new()
        .put(app.jc.url() + "/api/commands/" + &edited)
        .header("x-api-key", app.jc.api_key())
        .json(&serde_json::json!({ "timeToLiveSeconds": 86400 }))
        .send()
        .await
        .unwrap();
    assert!(changed.status().is_success());
    let third = install(&app).await;
    let updated: Vec<_> = third
        .iter()
        .filter(|(_, o)| *o == Installed::Updated)
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(updated, ["tempadmin-notice-linux"]);
    assert_eq!(writes(&app), 8, "one edit by hand, one put back");
    for command in app.jc.commands() {
        let ttl = command["timeToLiveSeconds"].as_u64().unwrap();
        let timeout: u64 = command["timeout"].as_str().unwrap().parse().unwrap();
        assert!(ttl <= 3600 && timeout >= 60, "{command}");
        match command["commandType"].as_str().unwrap() {
            "windows" => assert_eq!(command["shell"], "powershell"),
            _ => assert_eq!(command["user"], "000000000000000000000000"),
        }
    }
}

#[tokio::test]
async fn notices_run_only_on_the_granted_device_with_its_os_command() {
    let app = device_app().await;
    // Somebody else holds a grant on a Linux computer at the same time, so
    // the Linux commands are bound to another system meanwhile.
    let (person, _, other_system) = app.add_person(1);
    app.ask(&person, "1h").await;
    app.settle().await;
    let other = app.request_of(&person).await.id.to_string();
    assert_eq!(app.click(GRACE, "tempadmin_approve", &other).await, 200);
    app.settle().await;

    app.active_grant("20m").await;
    let steps = device_steps(&app);
    assert_eq!(
        steps,
        vec![
            format!("bind tempadmin-notice-linux {other_system}"),
            format!("bind tempadmin-end-elevated-linux {other_system}"),
            format!("trigger tempadminNoticeLinux {other_system}"),
            format!("bind tempadmin-notice-mac {LAPTOP}"),
            format!("bind tempadmin-end-elevated-mac {LAPTOP}"),
            format!("trigger tempadminNoticeMac {LAPTOP}"),
        ]
    );
    let shown: Vec<_> = app
        .jc
        .command_runs()
        .into_iter()
        .filter(|r| r.targets_its_system())
        .collect();
    assert_eq!(shown.len(), 2);
    assert_eq!(
        (shown[1].system_id.as_str(), shown[1].command_type.as_str()),
        (LAPTOP, "mac")
    );
    assert!(
        shown[1].env["noticeMessage"].starts_with("You are admin on ada-mac until "),
        "{:?}",
        shown[1].env
    );

    // Reminders at 15, 5 and 1 minutes left, then the end.
    app.advance(5 * MIN).await;
    app.advance(10 * MIN).await;
    app.advance(4 * MIN).await;
    app.advance(MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    let after_grant: Vec<String> = device_steps(&app).split_off(steps.len());
    assert_eq!(
        after_grant,
        vec![
            format!("trigger tempadminNoticeMac {LAPTOP}"),
            format!("trigger tempadminNoticeMac {LAPTOP}"),
            format!("trigger tempadminNoticeMac {LAPTOP}"),
            format!("trigger tempadminNoticeMac {LAPTOP}"),
            format!("trigger tempadminEndElevatedMac {LAPTOP}"),
            format!("unbind tempadmin-notice-mac {LAPTOP}"),
            format!("unbind tempadmin-end-elevated-mac {LAPTOP}"),
        ]
    );
    // Every run that acted did so on the granted device only; the other
    // grant's device stays bound, and the laptop is bound to nothing.
    let runs = app.jc.command_runs();
    for run in runs.iter().filter(|r| r.env["targetSystemId"] == LAPTOP) {
        assert!(
            run.command_type == "mac" || !run.targets_its_system(),
            "{run:?}"
        );
    }
    let end = runs
        .iter()
        .find(|r| r.command_name == "tempadmin-end-elevated-mac")
        .unwrap();
    assert_eq!(end.env["userName"], "ada");
    assert_eq!(end.env["endMode"], "terminate");
    assert!(runs.last().unwrap().targets_its_system());
    let notice_mac = command_id(&app, "tempadmin-notice-mac");
    let notice_linux = command_id(&app, "tempadmin-notice-linux");
    assert!(app.jc.command_systems(&notice_mac).is_empty());
    assert_eq!(app.jc.command_systems(&notice_linux), vec![other_system]);
}

#[tokio::test]
async fn a_reason_full_of_metacharacters_never_reaches_a_device() {
    let app = device_app().await;
    let reason =
        "zqxreason $(rm -rf /) `id` \"; do shell script \"curl evil\" -- 'quoted'\nsecond line";
    app.active_grant(&format!("20m {reason}")).await;
    let stored = app.request_of(ADA).await;
    assert!(
        stored.reason.contains("zqxreason") && stored.reason.contains("do shell script"),
        "the reason was not recorded, so this test would prove nothing"
    );
    app.advance(20 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);

    let calls = command_calls(&app);
    assert!(calls
        .iter()
        .any(|c| c.path.starts_with("/api/command/trigger/")));
    for call in &calls {
        let body = call.body.as_ref().map(Value::to_string).unwrap_or_default();
        for part in [
            "zqxreason",
            "rm -rf",
            "`id`",
            "do shell script",
            "curl evil",
            "second line",
        ] {
            assert!(
                !body.contains(part),
                "{part:?} reached {}: {body}",
                call.path
            );
        }
    }
    for run in app.jc.command_runs() {
        for value in run.env.values() {
            assert!(
                !value.contains("zqxreason") && !value.contains('`'),
                "{run:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_device_that_does_not_answer_never_delays_the_revocation() {
    let app = device_app().await;
    // Every command call fails from now on; the rest of JumpCloud works.
    for prefix in ["/api/command", "/api/v2/commands"] {
        app.jc.fail_next(
            "*",
            prefix,
            1000,
            Failure::Status {
                status: 503,
                retry_after: None,
            },
        );
    }
    app.active_grant("20m").await;
    let ends_at = app.now_unix() + 20 * 60;
    // The grant's notice is retried briefly, then given up and said.
    for _ in 0..3 {
        app.advance(MIN).await;
    }
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
    let thread = app.thread();
    assert!(
        thread
            .last()
            .unwrap()
            .contains("The grant step on `ada-mac` itself"),
        "{thread:#?}"
    );
    assert_eq!(app.jc_ops(), vec!["add"]);
    // At the end, in the same run of due work: restored, on time.
    app.advance(17 * MIN).await;
    let request = app.request_of(ADA).await;
    assert_eq!(request.state(), RequestState::Ended);
    assert_eq!(app.jc_ops(), vec!["add", "remove"]);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
    let restored = app
        .engine
        .store()
        .audit_since(None)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.action == "restored")
        .unwrap();
    assert_eq!(restored.at.timestamp(), ends_at);
    // The device steps gave up after a few tries and said so in the thread.
    for _ in 0..10 {
        app.advance(MIN).await;
    }
    let thread = app.thread();
    assert!(
        thread
            .last()
            .unwrap()
            .contains("The end step on `ada-mac` itself"),
        "{thread:#?}"
    );
    assert!(app
        .audit_actions()
        .await
        .iter()
        .any(|a| a == "device_step_failed"));
}

#[tokio::test]
async fn an_approved_extension_shows_the_new_end_on_the_device() {
    let app = device_app().await;
    let id = app.active_grant("20m").await;
    let shown_before = app.jc.command_runs().len();
    app.ask(ADA, "extend 10m").await;
    app.settle().await;
    assert_eq!(app.click(GRACE, "tempadmin_approve", &id).await, 200);
    app.settle().await;
    let until = app.request_of(ADA).await.expires_at().unwrap();
    let new_notices: Vec<String> = app.jc.command_runs()[shown_before..]
        .iter()
        .filter(|run| run.targets_its_system() && run.system_id == LAPTOP)
        .filter_map(|run| run.env.get("noticeMessage").cloned())
        .collect();
    let said = until.format("%H:%M").to_string();
    assert!(
        new_notices
            .iter()
            .any(|m| m.starts_with("You are admin on ada-mac until ") && m.contains(&said)),
        "the device shows the new end {said}: {new_notices:?}"
    );
}
