//! Slow, idle and too many clients (issue 6, item 1), and the database's
//! file modes (item 8): the real application on loopback, flooded by clients
//! that send part of a request and stop. Floods are bounded in count, and
//! every wait is "until this happens, or fail after a generous guard".

#[allow(dead_code)]
mod clients;

use std::time::Duration;

use clients::*;
use tempadmin::domain::RequestState;
use tempadmin::engine::ports::Clock;
use tempadmin::sim::slack_sender;
use tempadmin::store::SqliteStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn idle_and_half_sent_connections_are_closed_after_the_header_timeout() {
    let mut server = start(short_timeouts(16), Mode::ServeOnly).await;
    let silent = idle(server.addr).await;
    let half = slow_header(server.addr).await;
    // A kept-alive connection that got its answer and then goes quiet.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    for stream in [silent, half, kept] {
        closed_by_server(stream).await;
    }
    until("every connection is given back", || async {
        server.open_connections().await == 0
    })
    .await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_and_its_connection_closed() {
    let mut server = start(short_timeouts(16), Mode::ServeOnly).await;
    let answer = closed_by_server(stalled_body(server.addr).await).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_flood_of_stalled_clients_above_the_cap_does_not_keep_a_signed_command_from_its_answer() {
    const CAP: usize = 8;
    let mut server = start(short_timeouts(CAP), Mode::ServeOnly).await;
    let mut flood = Vec::new();
    for _ in 0..3 * CAP {
        flood.push(slow_header(server.addr).await);
        flood.push(stalled_body(server.addr).await);
    }
    let command = tokio::spawn({
        let (http, secret, addr, now, respond) = (
            server.http.clone(),
            server.secret.clone(),
            server.addr,
            server.clock.now().timestamp(),
            server._slack.response_url("x"),
        );
        async move {
            let body = slack_sender::command_body(ADA, "20m printer", &respond);
            let url = format!("http://{addr}/slack/commands");
            let response = slack_sender::post_signed(&http, &url, &secret, now, body)
                .await
                .unwrap();
            let status = response.status().as_u16();
            let json: serde_json::Value = response.json().await.unwrap();
            (status, json)
        }
    });
    // The flood fills the cap and never more; /metrics, on its own
    // address, stays readable throughout.
    let most = std::sync::atomic::AtomicU64::new(0);
    let watch = || async {
        let open = server.open_connections().await;
        most.fetch_max(open, std::sync::atomic::Ordering::Relaxed);
        open
    };
    until("the flood fills the cap", || async {
        watch().await == CAP as u64
    })
    .await;
    let (status, json) = tokio::time::timeout(GUARD, command)
        .await
        .expect("the command is answered")
        .unwrap();
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["response_type"], "ephemeral", "{json}");
    for stream in flood {
        closed_by_server(stream).await;
    }
    until("every connection is given back", || async {
        watch().await == 0
    })
    .await;
    let most = most.into_inner();
    assert!(most <= CAP as u64, "{most} connections open at once");
    assert_eq!(server.command(ADA, "status").await.0, 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_on_their_own_address_are_served_only_there() {
    let mut server = start(short_timeouts(8), Mode::ServeOnly).await;
    let main = |path: &str| format!("http://{}{path}", server.addr);
    let on_main = server.http.get(main("/metrics")).send().await.unwrap();
    assert_eq!(on_main.status().as_u16(), 404);
    let health = server.http.get(main("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let (status, text) = server.metrics_get("/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(gauge(&text, "tempadmin_http_connections_max"), 8);
    assert!(
        text.contains("tempadmin_commands_total{platform=\"slack\"}"),
        "{text}"
    );
    assert_eq!(server.metrics_get("/healthz").await.0, 404);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_finishes_with_stalled_clients_connected() {
    let mut server = start(patient(16), Mode::ServeOnly).await;
    let mut stalled = Vec::new();
    for _ in 0..3 {
        stalled.push(slow_header(server.addr).await);
        stalled.push(stalled_body(server.addr).await);
    }
    stalled.push(idle(server.addr).await);
    until("the server holds every stalled client", || async {
        server.open_connections().await == 7
    })
    .await;
    // Neither timeout fires within the test; only the shutdown bound ends
    // these connections.
    server.stop().await.unwrap();
    for stream in stalled {
        closed_by_server(stream).await;
    }
    assert!(TcpStream::connect(server.addr).await.is_err());
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_and_its_wal_and_shm_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mut server = start(short_timeouts(8), Mode::ServeOnly).await;
    // Something written, so the write-ahead log has content.
    assert_eq!(server.command(ADA, "20m printer").await.0, 200);
    let mode = |suffix: &str| {
        let path = server.dir.path().join(format!("test.db{suffix}"));
        let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        meta.permissions().mode() & 0o777
    };
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(format!("{:o}", mode(suffix)), "600", "test.db{suffix}");
    }
    server.stop().await.unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn a_database_left_readable_by_others_is_narrowed_when_opened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let store = SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let file = dir.path().join(format!("old.db{suffix}"));
        if file.exists() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let store = SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = dir.path().join(format!("old.db{suffix}"));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(format!("{mode:o}"), "600", "old.db{suffix}");
    }
    store.close().await;
}

#[tokio::test]
async fn a_grant_that_expires_while_stalled_clients_hold_every_connection_is_revoked() {
    const CAP: usize = 8;
    let mut server = start(patient(CAP), Mode::Run).await;
    server.active_grant().await;

    // Twice the cap of clients that never finish a request: the cap is
    // full for the rest of the test (the timeouts are two minutes).
    let mut flood = Vec::new();
    for _ in 0..CAP {
        flood.push(slow_header(server.addr).await);
        flood.push(stalled_body(server.addr).await);
    }
    until("the flood fills the cap", || async {
        server.open_connections().await == CAP as u64
    })
    .await;
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
    assert_eq!(server.open_connections().await, CAP as u64);
    server.stop().await.unwrap();
    drop(flood);
}
