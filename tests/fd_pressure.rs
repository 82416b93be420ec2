//! Issue 6 replayed: more stalled clients than the process has descriptors.
//!
//! This binary holds one real test, because it lowers its own soft
//! open-file limit, which every thread of the process shares. The flood
//! comes from a child process (this binary again, running the ignored
//! `flood_helper`), so that the flood's own sockets do not count against
//! the limit of the process under test. With the connection cap derived
//! from the limit, the server holds at most the limit less its reserve, the
//! process can still open files and sockets, and a grant that expires
//! meanwhile is revoked.

#[allow(dead_code)]
mod clients;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use clients::*;
use tempadmin::config::HttpConfig;
use tempadmin::domain::RequestState;
use tempadmin::http::serve::{default_max_connections, open_file_limit};

/// The soft limit the test runs under: a quarter of a common default.
const SOFT_LIMIT: u64 = 256;
/// Stalled clients to try: more than the process could hold at all. Past
/// the cap and the kernel's accept queue (128 for a std listener), the
/// kernel stops answering, and the helper stops at the first such client.
const FLOOD: usize = 400;
/// Descriptors the test opens at once, mid-flood, to show some are left.
const SPARE: usize = 32;

const TARGET: &str = "TEMPADMIN_FLOOD_TARGET";

// Several threads: the test's blocking reads of the helper must not stop
// the server from accepting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_larger_than_the_open_file_limit_leaves_descriptors_for_revocation() {
    let Some((_, hard)) = open_file_limit() else {
        return skipped("the open-file limit cannot be read on this system");
    };
    if hard < SOFT_LIMIT {
        return skipped(&format!(
            "the hard open-file limit is {hard}, below the {SOFT_LIMIT} this test sets as its soft limit \
             (raise it with `ulimit -Hn {SOFT_LIMIT}` as root)"
        ));
    }
    // Set, not only lowered: a soft limit below SOFT_LIMIT is raised to it,
    // which the hard limit allows.
    rlimit::setrlimit(rlimit::Resource::NOFILE, SOFT_LIMIT, hard).unwrap();
    let cap =
        default_max_connections(SOFT_LIMIT, tempadmin::engine::Workers::default().total) as u64;
    let http = HttpConfig {
        // Neither timeout fires within the test: only the cap protects.
        header_timeout: Duration::from_secs(120),
        request_timeout: Duration::from_secs(120),
        max_connections: None,
        shutdown_timeout: Duration::from_millis(300),
    };
    let mut server = start(http, Mode::Run).await;
    server.active_grant().await;

    let mut flooder = Command::new(std::env::current_exe().unwrap())
        .args(["flood_helper", "--exact", "--ignored", "--nocapture"])
        .env(TARGET, server.addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = flooder.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        let mut out = BufReader::new(out);
        let mut line = String::new();
        while !line.starts_with("flooding") {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "the flood helper died"
            );
        }
        // The helper's closing report must find a reader.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        line
    })
    .await
    .unwrap();
    let flood: u64 = ready.split_whitespace().nth(2).unwrap().parse().unwrap();
    eprintln!(
        "{} open descriptors, cap {cap}, {}",
        open_descriptors(),
        ready.trim()
    );
    assert!(flood > cap, "{ready}");
    until("the flood fills the cap", || async {
        server.open_connections().await >= cap
    })
    .await;
    assert_eq!(server.open_connections().await, cap);

    // Room for a new outbound connection (as a revocation whose pooled
    // connection has gone would need) and for files, all at once.
    let jumpcloud = url::Url::parse(&server.jc.url()).unwrap();
    let jumpcloud = jumpcloud.socket_addrs(|| None).unwrap()[0];
    let outbound = tokio::net::TcpStream::connect(jumpcloud).await.unwrap();
    let spare: Vec<_> = (0..SPARE)
        .map(|i| std::fs::File::open("/dev/null").unwrap_or_else(|e| panic!("file {i}: {e}")))
        .collect();
    eprintln!("{} open descriptors with {SPARE} spare", open_descriptors());
    drop((outbound, spare));
    server.clock.advance(Duration::from_secs(20 * 60 + 1));
    until("JumpCloud is told to take the rights back", || async {
        server.jc_ops().len() == 2
    })
    .await;
    assert_eq!(server.jc_ops(), ["add", "remove"]);
    until("the grant has ended", || async {
        server.state_of_ada().await == Some(RequestState::Ended)
    })
    .await;

    // Closing its stdin ends the helper, and with it the flood.
    drop(flooder.stdin.take());
    flooder.wait().unwrap();
    server.stop().await.unwrap();
}

/// Says why the test did not run, on the real stderr: libtest keeps
/// `eprintln!` of a passing test to itself, and a skip must be seen.
fn skipped(why: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "skipped: a_flood_larger_than_the_open_file_limit_leaves_descriptors_for_revocation: {why}"
    );
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// The flood, run in a child process by the test above: opens [`FLOOD`]
/// connections to `TEMPADMIN_FLOOD_TARGET`, sends half a request's headers
/// on each, says so on stdout and holds them until stdin closes.
#[test]
#[ignore = "run by a_flood_larger_than_the_open_file_limit_leaves_descriptors_for_revocation"]
fn flood_helper() {
    let Ok(target) = std::env::var(TARGET) else {
        return;
    };
    let target: std::net::SocketAddr = target.parse().unwrap();
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let mut held = Vec::new();
    for _ in 0..FLOOD {
        let mut stream = match std::net::TcpStream::connect_timeout(&target, Duration::from_secs(1))
        {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("flood helper: connection {} failed: {e}", held.len() + 1);
                break;
            }
        };
        if stream
            .write_all(b"POST /slack/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
            .is_err()
        {
            break;
        }
        held.push(stream);
    }
    println!("flooding with {} connections", held.len());
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
