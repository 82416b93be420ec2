//! The real binary: `--help`, configuration errors, the audit export.

use std::process::Command;

use crate::support::*;

fn tempadmin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tempadmin"))
}

#[test]
fn help_explains_every_command() {
    let out = tempadmin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["serve", "demo", "audit", "teams"] {
        assert!(text.contains(word), "{text}");
    }
    let serve = tempadmin().args(["serve", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&serve.stdout).contains("SLACK_SIGNING_SECRET"));
}

#[test]
fn serve_with_a_missing_secret_fails_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "[slack]\napprovals_channel = \"C1\"\napprovers = [\"U12345\"]\n",
    )
    .unwrap();
    let out = tempadmin()
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("SLACK_SIGNING_SECRET")
        .env("SLACK_BOT_TOKEN", "xoxb-secret-value")
        .env("JUMPCLOUD_API_KEY", "jc-secret-value")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SLACK_SIGNING_SECRET"), "{err}");
    assert!(
        !err.contains("xoxb-secret-value") && !err.contains("jc-secret-value"),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_plain_http_jumpcloud_address_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "[slack]\napprovals_channel = \"C1\"\napprovers = [\"U12345\"]\n",
    )
    .unwrap();
    let out = tempadmin()
        .args(["serve", "--config"])
        .arg(&path)
        .env("SLACK_SIGNING_SECRET", "signing-secret-value")
        .env("SLACK_BOT_TOKEN", "xoxb-secret-value")
        .env("JUMPCLOUD_API_KEY", "jc-secret-value")
        .env("JUMPCLOUD_API_URL", "http://console.jumpcloud.com")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("t.db").display()),
        )
        // Unusable, so that a serve that accepted the address would stop
        // at once instead of running.
        .env("TEMPADMIN_LISTEN", "no-such-address")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("JUMPCLOUD_API_URL") && err.contains("https://"),
        "{err}"
    );
    assert!(!err.contains("jc-secret-value"), "{err}");
}

#[tokio::test]
async fn the_audit_export_prints_every_transition_as_jsonl_and_csv() {
    let app = spawn_app().await;
    app.active_grant("20m").await;
    let db = app.config.database_url.clone();
    let run = |format: &str| {
        tempadmin()
            .args(["audit", "export", "--format", format, "--database-url", &db])
            .output()
            .unwrap()
    };
    let jsonl = run("jsonl");
    assert!(
        jsonl.status.success(),
        "{}",
        String::from_utf8_lossy(&jsonl.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&jsonl.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<_> = lines
        .iter()
        .map(|l| l["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "requested",
            "sent_to_approvers",
            "approved",
            "prior_state_recorded",
            "elevated"
        ]
    );
    assert_eq!(lines[2]["actor"], GRACE);
    assert_eq!(lines[2]["before"], "pending_approval");
    assert_eq!(lines[2]["after"], "approved");
    let csv = run("csv");
    let text = String::from_utf8_lossy(&csv.stdout);
    assert!(
        text.starts_with("at,actor,action,request_id,before,after,detail\n"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 6);
    assert!(!text.contains("jc-test-key") && !text.contains("xoxb-test"));
}

#[test]
fn demo_teams_plays_the_whole_story_in_teams_terms_and_exits_0() {
    let out = tempadmin().args(["demo", "--teams"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let position = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("`{needle}` is missing from:\n{text}"))
    };
    let asked = position("Ada writes to tempadmin in her chat with it");
    let card = position("#approvals card: 🔑 Admin rights requested by Ada Lovelace");
    let approved = position("#approvals thread ↳: ✅ Approved by Grace Hopper");
    let countdown = position("#approvals thread ↳: ⌛ 5s left");
    let restored = position("#approvals thread ↳: 🔒 Time is up");
    let done = position("Demo complete.");
    assert!(asked < card && card < approved && approved < countdown);
    assert!(countdown < restored && restored < done, "{text}");
    assert!(text.contains("Ada's chat with tempadmin: 🔓 You are admin on `ada-macbook`"));
    assert!(text.contains("JumpCloud association changes made by tempadmin: add, remove"));
}

#[test]
fn demo_access_request_lets_jumpclouds_clock_end_the_rights_and_exits_0() {
    let out = tempadmin()
        .args(["demo", "--teams", "--access-request"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("grant_mode = \"access_request\""), "{text}");
    assert!(
        text.contains("#approvals thread ↳: 🔒 Time is up"),
        "{text}"
    );
    assert!(text.contains("JumpCloud access request "), "{text}");
    assert!(
        text.contains("JumpCloud association changes made by tempadmin: none"),
        "{text}"
    );
    assert!(text.contains("Demo complete."), "{text}");
}
