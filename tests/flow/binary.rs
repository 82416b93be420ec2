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

/// Secret-looking values for every variable the binary reads from the
/// environment (and the service-account pair DESIGN.md names), each
/// findable in any output.
const ENVIRONMENT: [(&str, &str); 16] = [
    (
        "DATABASE_URL",
        "postgres://tempadmin:db-password-5ecret@db.example:5432/tempadmin",
    ),
    ("SLACK_SIGNING_SECRET", "slack-signing-5ecret"),
    ("SLACK_BOT_TOKEN", "xoxb-bot-token-5ecret"),
    ("SLACK_APP_TOKEN", "xapp-app-token-5ecret"),
    ("SLACK_API_URL", "https://slack-api-5ecret.example/api"),
    ("JUMPCLOUD_API_KEY", "jumpcloud-api-key-5ecret"),
    ("JUMPCLOUD_CLIENT_ID", "jumpcloud-client-id-5ecret"),
    ("JUMPCLOUD_CLIENT_SECRET", "jumpcloud-client-5ecret"),
    ("JUMPCLOUD_ORG_ID", "jumpcloud-org-5ecret"),
    ("JUMPCLOUD_API_URL", "https://jumpcloud-5ecret.example"),
    ("TEAMS_APP_ID", "teams-app-id-5ecret"),
    ("TEAMS_APP_PASSWORD", "teams-app-password-5ecret"),
    ("TEMPADMIN_CONFIG", "/etc/config-path-5ecret.toml"),
    ("TEMPADMIN_LISTEN", "127.0.0.1:45123"),
    ("TEMPADMIN_METRICS_LISTEN", "127.0.0.1:45124"),
    ("TEMPADMIN_LOG", "debug,listen-5ecret=trace"),
];

/// The subcommands listed under `Commands:` in a help text, without
/// clap's own `help`.
fn subcommands_in(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn no_help_of_any_command_prints_a_value_from_the_environment() {
    let run = |args: &[String]| {
        let out = tempadmin().args(args).envs(ENVIRONMENT).output().unwrap();
        assert!(out.status.success(), "tempadmin {args:?} failed");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    // Every command the binary offers, found the way a person finds them:
    // in the help of the command above.
    let mut commands: Vec<Vec<String>> = vec![vec![]];
    let mut texts = Vec::new();
    let mut i = 0;
    while i < commands.len() {
        let path = commands[i].clone();
        let long = run(&[path.clone(), vec!["--help".into()]].concat());
        for sub in subcommands_in(&long) {
            commands.push([path.clone(), vec![sub]].concat());
        }
        texts.push((format!("{path:?} --help"), long));
        texts.push((
            format!("{path:?} -h"),
            run(&[path.clone(), vec!["-h".into()]].concat()),
        ));
        texts.push((
            format!("help {path:?}"),
            run(&[vec!["help".into()], path].concat()),
        ));
        i += 1;
    }
    for nested in [["audit", "export"], ["teams", "package"]] {
        assert!(
            commands.iter().any(|c| c == &nested),
            "`{}` was not found: {commands:?}",
            nested.join(" ")
        );
    }
    for (what, text) in &texts {
        for (name, value) in ENVIRONMENT {
            assert!(
                !text.contains(value),
                "`tempadmin {what}` prints the value of {name}:\n{text}"
            );
        }
        assert!(!text.contains("5ecret"), "`tempadmin {what}`:\n{text}");
    }
    // The names stay: they tell a person where a value may come from.
    let help_of = |what: &str| &texts.iter().find(|(w, _)| w == what).unwrap().1;
    assert!(help_of(r#"["audit", "export"] --help"#).contains("[env: DATABASE_URL]"));
    assert!(help_of(r#"["serve"] --help"#).contains("[env: TEMPADMIN_CONFIG]"));
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
