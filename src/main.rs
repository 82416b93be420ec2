//! The `tempadmin` binary: parse the command line, set up logging, run.
#![forbid(unsafe_code)]

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = tempadmin::cli::Cli::parse();
    let filter = EnvFilter::try_from_env("TEMPADMIN_LOG").unwrap_or_else(|_| {
        let default = match cli.command {
            // The demo prints its own story; only problems go to the log.
            tempadmin::cli::CliCommand::Demo { .. } => "warn",
            // Its lines say all it found; log lines would say it twice.
            tempadmin::cli::CliCommand::Check { .. } => "off",
            _ => "info,sqlx=warn",
        };
        EnvFilter::new(default)
    });
    let json = std::env::var("TEMPADMIN_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    match tempadmin::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tempadmin: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
