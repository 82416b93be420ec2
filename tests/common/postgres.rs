//! Whether the PostgreSQL-backed tests can run here, decided once per test
//! binary. The server is `TEMPADMIN_TEST_POSTGRES` (an administrator URL:
//! the tests create and drop databases of their own), or else
//! [`DEFAULT_ADMIN_URL`]. Where it does not answer, each PostgreSQL test
//! returns at once and the binary says so in one `skipped:` line, so that
//! `cargo test` passes on a machine without PostgreSQL; with
//! `TEMPADMIN_REQUIRE_POSTGRES=1`, as `.ci/run` sets, they fail instead, so
//! CI never skips them in silence.
//!
//! Included by the test binaries that need it with
//! `#[path = "common/postgres.rs"] mod postgres_server;`.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

/// The machine's own server, user `postgres` with trust authentication.
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Enough for a server on this machine or the next; a closed port is
/// refused at once, an address that swallows packets is given up on.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Makes a missing server a failure.
const REQUIRE: &str = "TEMPADMIN_REQUIRE_POSTGRES";

/// The administrator URL, when PostgreSQL answers there. `None` when it
/// does not and [`REQUIRE`] is not set: the first caller in the binary
/// prints why, and the test should return at once. Panics, in every test
/// that asks, when it does not answer and [`REQUIRE`] is set.
pub fn server() -> Option<String> {
    static PROBE: OnceLock<Result<String, String>> = OnceLock::new();
    let probe = PROBE.get_or_init(|| {
        let url = std::env::var("TEMPADMIN_TEST_POSTGRES")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ADMIN_URL.into());
        let answered = connect(&url)
            .map(|()| url.clone())
            .map_err(|why| format!("no PostgreSQL at {} ({why})", where_(&url)));
        if let Err(why) = &answered {
            if !required() {
                // Straight to stderr: libtest keeps what a passing test
                // prints with eprintln! to itself.
                let _ = writeln!(
                    std::io::stderr(),
                    "\nskipped: the PostgreSQL tests of {}: {why}; set TEMPADMIN_TEST_POSTGRES \
                     to a server's administrator URL, or {REQUIRE}=1 to make this a failure",
                    binary()
                );
            }
        }
        answered
    });
    match probe {
        Ok(url) => Some(url.clone()),
        Err(why) if required() => panic!("{REQUIRE} is set, but there is {why}"),
        Err(_) => None,
    }
}

fn required() -> bool {
    std::env::var(REQUIRE).is_ok_and(|v| !v.trim().is_empty() && v.trim() != "0")
}

/// Connects once and hangs up, on a thread with a runtime of its own: the
/// caller may be inside any test's runtime, which cannot be blocked on.
fn connect(url: &str) -> Result<(), String> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            use sqlx::Connection;
            match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect(&url)).await {
                Ok(Ok(connection)) => {
                    let _ = connection.close().await;
                    Ok(())
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
            }
        })
    })
    .join()
    .unwrap_or_else(|_| Err("the connection attempt panicked".into()))
}

/// Host and port of `url`, without its user name or password.
fn where_(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}",
            u.host_str().unwrap_or("?"),
            u.port().unwrap_or(5432)
        ),
        Err(_) => "an unreadable TEMPADMIN_TEST_POSTGRES".into(),
    }
}

/// The test binary's name, without the hash cargo appends.
fn binary() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            Some((name, hash)) if hash.bytes().all(|b| b.is_ascii_hexdigit()) => name.to_owned(),
            _ => stem,
        })
        .unwrap_or_else(|| "this binary".into())
}
