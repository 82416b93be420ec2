//! The command line: `serve`, `check`, `demo`, `jumpcloud install-commands`,
//! `teams package`, `audit export`.
//!
//! Every argument that can come from the environment hides the variable's
//! value in `--help` (`hide_env_values`) and shows only its name: the same
//! variables carry secrets (`DATABASE_URL` holds PostgreSQL's password), and
//! help text ends up in terminals, screenshots and CI logs. A test walks the
//! command tree so a new argument cannot forget it.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use crate::app::{shutdown_signal, App};
use crate::config::Config;
use crate::domain::{AuditEntry, GrantDuration, Platform, Timestamp};
use crate::engine::clock::SystemClock;
use crate::store::Database;

/// Temporary admin rights on JumpCloud-managed computers, approved in Slack
/// or Microsoft Teams.
///
/// A person types `/tempadmin 20m install printer driver`, an approver clicks
/// Approve, tempadmin elevates the person on their own computer through the
/// JumpCloud API and restores the previous rights on time.
#[derive(Debug, Parser)]
#[command(name = "tempadmin", version, about, long_about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: CliCommand,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run the bot: the HTTP endpoints for Slack and Teams (or Slack's
    /// Socket Mode connection), and the scheduler that grants and takes
    /// back rights on time.
    ///
    /// Secrets come from the environment only: SLACK_BOT_TOKEN and
    /// SLACK_SIGNING_SECRET (with [slack]; SLACK_APP_TOKEN instead of the
    /// signing secret with slack.mode = "socket"), TEAMS_APP_PASSWORD (with [teams]),
    /// JUMPCLOUD_API_KEY, and optionally JUMPCLOUD_ORG_ID. TEMPADMIN_LISTEN,
    /// TEMPADMIN_METRICS_LISTEN, DATABASE_URL, SLACK_API_URL, TEAMS_APP_ID and
    /// JUMPCLOUD_API_URL override the file. Stops gracefully on SIGTERM or
    /// Ctrl-C.
    Serve {
        /// The TOML config file (see docker/config.example.toml).
        #[arg(
            long,
            env = "TEMPADMIN_CONFIG",
            hide_env_values = true,
            value_name = "FILE"
        )]
        config: PathBuf,
    },
    /// Prove a config against the real services, changing nothing.
    ///
    /// Run it after writing the config and before going live. It reads the
    /// config and the secrets as `serve` does, then asks each service what
    /// `serve` will need: Slack (the bot token, the approvals channel and
    /// the bot's membership, every approver and approver group), JumpCloud
    /// (the credentials can list users and devices; the device commands
    /// with [device]; access requests with grant_mode = "access_request"),
    /// Teams with [teams] (the Bot Framework token; Microsoft Graph for
    /// approver groups), and the database (reachable, migrations current).
    /// One line per check: ✓, or ✗ with what to fix. It posts nothing,
    /// writes nothing and never migrates the database. Exits 0 only when
    /// every check passes.
    Check {
        /// The TOML config file (the same as for `serve`).
        #[arg(
            long,
            env = "TEMPADMIN_CONFIG",
            hide_env_values = true,
            value_name = "FILE"
        )]
        config: PathBuf,
    },
    /// Play a whole request against built-in simulators; needs no account.
    ///
    /// A request, its approval, the elevation, the countdown and the
    /// revocation, against simulated Slack (or Teams) and JumpCloud servers
    /// on loopback. Takes about a minute (Teams: about 25 seconds); exits 0
    /// when the story ends with the previous rights restored.
    Demo {
        /// Play it in Microsoft Teams (a personal chat with the bot, an
        /// Adaptive Card in the approvals channel) against a simulated Bot
        /// Framework.
        #[arg(long)]
        teams: bool,
        /// Play it in Slack over Socket Mode: the bot connects to the
        /// simulated Slack with an app-level token instead of receiving
        /// HTTP requests, and Slack asks it to reconnect halfway.
        #[arg(long, conflicts_with = "teams")]
        socket: bool,
        /// Play it in `grant_mode = "access_request"`: JumpCloud's own
        /// temporary elevation, whose expiry ends the rights.
        #[arg(long)]
        access_request: bool,
    },
    /// Microsoft Teams helpers: the app package to upload in Teams.
    Teams {
        /// What to do.
        #[command(subcommand)]
        command: TeamsCommand,
    },
    /// JumpCloud helpers: create or update the device commands
    /// (`[device]`) that notices and ending elevated work use.
    Jumpcloud {
        /// What to do.
        #[command(subcommand)]
        command: JumpcloudCommand,
    },
    /// The audit trail: every request's transitions, who made them and when.
    Audit {
        /// What to do with it.
        #[command(subcommand)]
        command: AuditCommand,
    },
}

/// `tempadmin audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the audit trail, oldest first, as JSON lines or CSV.
    ///
    /// Reads the database beside a running server without disturbing it.
    /// Secrets are never in the trail.
    Export {
        /// The database to read: sqlite://FILE, or postgres://… (the
        /// password is best left in DATABASE_URL, out of the shell history).
        #[arg(
            long,
            env = "DATABASE_URL",
            hide_env_values = true,
            value_name = "URL",
            default_value = "sqlite://tempadmin.db"
        )]
        database_url: String,
        /// Only entries at or after this time: RFC 3339 (2026-11-25T09:00:00Z)
        /// or a duration ago (24h, 90m).
        #[arg(long, value_name = "TIME", value_parser = parse_since)]
        since: Option<Timestamp>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
    },
}

/// `tempadmin jumpcloud …`.
#[derive(Debug, Subcommand)]
pub enum JumpcloudCommand {
    /// Create or update the device commands (`[device]` notices and
    /// end_elevated): one trigger command per OS and purpose, found again by
    /// name, changed only where it differs. Safe to run again.
    InstallCommands {
        /// The TOML config file (the same as for `serve`).
        #[arg(
            long,
            env = "TEMPADMIN_CONFIG",
            hide_env_values = true,
            value_name = "FILE"
        )]
        config: PathBuf,
    },
}

/// `tempadmin teams …`.
#[derive(Debug, Subcommand)]
pub enum TeamsCommand {
    /// Write the Teams app package (manifest.json, color.png, outline.png)
    /// to upload in Teams, filled in for your Azure Bot and host.
    Package {
        /// The Azure Bot's Microsoft App ID (a GUID).
        #[arg(long, value_name = "ID")]
        app_id: String,
        /// The public DNS name tempadmin is reached at; Teams posts to
        /// https://HOST/teams/messages.
        #[arg(long, value_name = "HOST")]
        host: String,
        /// Where to write the zip.
        #[arg(long, value_name = "FILE", default_value = "tempadmin-teams.zip")]
        out: PathBuf,
    },
}

/// Audit export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
}

fn parse_since(text: &str) -> Result<Timestamp, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    GrantDuration::parse(text)
        .map(|ago| Utc::now() - ago.as_chrono())
        .map_err(|_| format!("`{text}` is neither an RFC 3339 time nor a duration like 24h"))
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        CliCommand::Serve { config } => {
            let config = Config::load(&config, |name| std::env::var(name).ok())?;
            // Before anything opens a file: the connection cap is derived
            // from the limit in force when the app is built.
            match crate::http::serve::raise_open_file_limit() {
                Ok(limit) => tracing::debug!(open_file_limit = limit, "open-file limit"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot raise the open-file limit; keeping it")
                }
            }
            let app = App::build(&config, Arc::new(SystemClock)).await?;
            tracing::info!(
                listen = %config.listen,
                port = app.port(),
                metrics_port = app.metrics_port(),
                max_connections = app.max_connections(),
                database = %redact_url(&config.database_url),
                "tempadmin is listening"
            );
            app.run(shutdown_signal()).await
        }
        CliCommand::Check { config } => {
            let config = Config::load(&config, |name| std::env::var(name).ok())?;
            let report = crate::check::run(&config).await;
            println!("{report}");
            if report.passed() {
                Ok(())
            } else {
                anyhow::bail!(
                    "{} of {} checks failed",
                    report.failures(),
                    report.outcomes.len()
                )
            }
        }
        CliCommand::Demo {
            teams,
            socket,
            access_request,
        } => {
            let platform = if teams {
                Platform::Teams
            } else {
                Platform::Slack
            };
            let mode = if access_request {
                crate::jumpcloud::GrantMode::AccessRequest
            } else {
                crate::jumpcloud::GrantMode::Association
            };
            let way = if socket {
                crate::demo::SlackWay::Socket
            } else {
                crate::demo::SlackWay::Http
            };
            crate::demo::run(platform, mode, way).await
        }
        CliCommand::Jumpcloud {
            command: JumpcloudCommand::InstallCommands { config },
        } => {
            let config = Config::load(&config, |name| std::env::var(name).ok())?;
            let client = crate::jumpcloud::JumpCloudClient::new(config.jumpcloud.clone())?;
            let done = crate::jumpcloud::commands::install_commands(&client)
                .await
                .context("installing the JumpCloud commands failed")?;
            for (name, outcome) in done {
                println!("{name}: {}", format!("{outcome:?}").to_lowercase());
            }
            Ok(())
        }
        CliCommand::Teams {
            command: TeamsCommand::Package { app_id, host, out },
        } => {
            let zip = crate::teams::package::build(&app_id, &host)?;
            std::fs::write(&out, zip).with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "wrote {}: upload it in Teams (Apps → Manage your apps → Upload an app)",
                out.display()
            );
            Ok(())
        }
        CliCommand::Audit {
            command:
                AuditCommand::Export {
                    database_url,
                    since,
                    format,
                },
        } => {
            // Beside a running server: SQLite allows one serving process,
            // and reading the audit trail must neither wait for nor
            // disturb it.
            let database = Database::open_reader(&database_url).await?;
            let entries = database.store().audit_since(since).await?;
            let stdout = std::io::stdout();
            write_audit(&entries, format, stdout.lock())?;
            database.close().await;
            Ok(())
        }
    }
}

/// Writes audit entries in the chosen format.
pub fn write_audit(
    entries: &[AuditEntry],
    format: Format,
    mut out: impl Write,
) -> anyhow::Result<()> {
    match format {
        Format::Jsonl => {
            for e in entries {
                serde_json::to_writer(&mut out, e)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "at",
                "actor",
                "action",
                "request_id",
                "before",
                "after",
                "detail",
            ])?;
            for e in entries {
                w.write_record([
                    e.at.to_rfc3339(),
                    e.actor.clone(),
                    e.action.to_string(),
                    e.request_id.to_string(),
                    e.before.map(|s| s.as_str()).unwrap_or_default().to_string(),
                    e.after.map(|s| s.as_str()).unwrap_or_default().to_string(),
                    e.detail.to_string(),
                ])?;
            }
            w.flush().context("cannot write the export")?;
        }
    }
    Ok(())
}

/// A database URL without any password in it, for logs and `check`.
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Calls `visit` with every command of the tree, `tempadmin` first,
    /// and its path of names.
    fn walk(command: &clap::Command, path: &str, visit: &mut impl FnMut(&str, &clap::Command)) {
        visit(path, command);
        for sub in command.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), visit);
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_help_shows_the_value_of_an_environment_variable() {
        walk(&Cli::command(), "tempadmin", &mut |path, command| {
            for arg in command.get_arguments() {
                if let Some(name) = arg.get_env() {
                    assert!(
                        arg.is_hide_env_values_set(),
                        "`{path} --help` would print the value of {name:?}: set hide_env_values"
                    );
                }
            }
        });
    }

    #[test]
    fn every_command_and_flag_explains_itself() {
        walk(&Cli::command(), "tempadmin", &mut |path, command| {
            assert!(
                command
                    .get_about()
                    .is_some_and(|a| !a.to_string().trim().is_empty()),
                "`{path}` has no about text"
            );
            for arg in command.get_arguments() {
                assert!(
                    arg.get_help()
                        .is_some_and(|h| !h.to_string().trim().is_empty()),
                    "`{path}`: --{} has no help text",
                    arg.get_id()
                );
            }
        });
    }

    #[test]
    fn since_takes_a_time_or_a_duration_ago() {
        let t = parse_since("2026-11-25T09:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-25T09:00:00+00:00");
        let ago = parse_since("24h").unwrap();
        assert!((Utc::now() - ago).num_hours() == 24 || (Utc::now() - ago).num_minutes() >= 1439);
        assert!(parse_since("yesterday").is_err());
    }

    #[test]
    fn passwords_in_database_urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:hunter2@db/t"),
            "postgres://u:redacted@db/t"
        );
        assert_eq!(redact_url("sqlite://tempadmin.db"), "sqlite://tempadmin.db");
    }
}
