//! Slack over Socket Mode, against the strict simulated Socket Mode side:
//! the bot connects with the app-level token, takes `hello`, acknowledges
//! every envelope within 3 seconds with the command's answer in the
//! acknowledgement, replaces its connection on `disconnect` or a drop
//! without losing an envelope, refuses to start with a wrong token, and a
//! delivery that reaches two replicas acts once.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;
use tempadmin::app::App;
use tempadmin::config::{Config, SlackMode};
use tempadmin::domain::RequestState;
use tempadmin::sim::replicas::PostgresDatabase;
use tempadmin::sim::slack_sender::{self, Source};
use tempadmin::sim::slack_socket::{self, Ack, ClosedBy, FakeSocketMode, ACK_TIMEOUT};

use crate::postgres_server;
use crate::support::*;

const MIN: Duration = Duration::from_secs(60);
/// Only reached when something is broken.
const PATIENCE: Duration = Duration::from_secs(10);

fn socket_mode(config: &mut Config) {
    let slack = config.slack.as_mut().expect("Slack is configured");
    slack.mode = SlackMode::Socket {
        app_token: SecretString::from(slack_socket::APP_TOKEN),
    };
}

async fn spawn_socket_app() -> TestApp {
    let app = spawn_app_configured(socket_mode).await;
    assert!(
        app.sock().wait_for_connections(1, PATIENCE).await,
        "the bot connects at start"
    );
    app
}

impl TestApp {
    fn sock(&self) -> &FakeSocketMode {
        self.socket.as_ref().expect("a Socket Mode test app")
    }

    /// `/tempadmin TEXT` from `user` in an envelope; its acknowledgement.
    async fn socket_command(&self, user: &str, text: &str) -> Ack {
        let payload = slack_sender::command_payload(
            user,
            text,
            &self.slack.response_url(&format!("cmd-{user}")),
        );
        let delivery = self.sock().send_slash_command(payload);
        self.sock()
            .ack(&delivery, PATIENCE)
            .await
            .expect("the command is acknowledged")
    }

    /// A click on `action_id` with `value` in an envelope; sent, not awaited.
    fn socket_click(&self, user: &str, action_id: &str, value: &str) -> String {
        let payload = slack_sender::click_payload(
            user,
            action_id,
            value,
            "block",
            &self.slack.response_url(&format!("click-{user}")),
        );
        self.sock().send_interactive(payload)
    }
}

/// Waits until `/metrics` says `n` Socket Mode connections are up.
async fn connections_up(app: &TestApp, n: usize) {
    let line = format!("tempadmin_slack_socket_connections {n}");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = app.metrics_text().await;
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `{line}` in /metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What every socket test ends with: the bot broke no rule of the protocol.
fn no_problems(socket: &FakeSocketMode) {
    assert_eq!(socket.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn a_grant_runs_end_to_end_over_socket_mode_with_answers_in_the_acknowledgements() {
    let app = spawn_socket_app().await;
    let socket = app.sock();

    let ack = app.socket_command(ADA, "20m install printer driver").await;
    assert!(ack.latency < ACK_TIMEOUT, "{:?}", ack.latency);
    assert_eq!(ack.retry_attempt, 0);
    let answer = ack
        .payload
        .expect("the answer rides in the acknowledgement");
    assert_eq!(answer["response_type"], "ephemeral");
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .contains("Checking your JumpCloud account"),
        "{answer}"
    );

    app.settle().await;
    let card = app.card();
    assert!(card.blocks.to_string().contains("tempadmin_approve"));
    let id = app.request_of(ADA).await.id.to_string();

    let click = app.socket_click(GRACE, "tempadmin_approve", &id);
    let ack = socket
        .ack(&click, PATIENCE)
        .await
        .expect("the click is acknowledged");
    assert_eq!(ack.payload, None, "a click's acknowledgement is bare");
    assert!(ack.latency < ACK_TIMEOUT);
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
    assert_eq!(app.jc_ops(), ["add"]);
    assert!(app.jc.is_admin(JC_ADA, LAPTOP));

    app.advance(20 * MIN).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert_eq!(app.jc_ops(), ["add", "remove"]);
    assert!(!app.jc.is_admin(JC_ADA, LAPTOP));
    assert!(app.thread()[0].contains("Approved by <@U0GRACE>"));

    // In Socket Mode Slack posts nothing to us: there are no Slack routes.
    let body = slack_sender::command_body(ADA, "help", &app.slack.response_url("x"));
    let status = slack_sender::post_signed(
        &app.http,
        &app.url("/slack/commands"),
        &tempadmin::slack::signature::SigningSecret::new(SecretString::from(SECRET)),
        app.now_unix(),
        body,
    )
    .await
    .unwrap()
    .status();
    assert_eq!(status, 404);
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "listen still serves the probes");

    assert_eq!(socket.connections_opened(), 1);
    assert!(
        socket.sent().iter().all(|s| s.retry_attempt == 0),
        "nothing needed sending twice"
    );
    no_problems(socket);
}

#[tokio::test]
async fn the_home_tab_opened_over_socket_mode_is_published_and_a_malformed_envelope_is_not_sent_again(
) {
    let app = spawn_socket_app().await;
    let socket = app.sock();
    let event = slack_sender::event_callback_body(
        &Source::general(),
        "Ev0SOCKETHOME1",
        slack_sender::app_home_opened(ADA, None),
    );
    let delivery = socket.send_event(serde_json::from_str(&event).unwrap());
    let ack = socket.ack(&delivery, PATIENCE).await.unwrap();
    assert_eq!(ack.payload, None, "an event's acknowledgement is bare");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !app
        .slack
        .published_views()
        .iter()
        .any(|(user, _)| user == ADA)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Home tab was never published"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let view = app.slack.home_view(ADA).expect("Ada's Home tab");
    assert_eq!(view["type"], "home");

    let broken = socket.send_slash_command(serde_json::json!({ "text": "no user" }));
    let ack = socket.ack(&broken, PATIENCE).await.unwrap();
    assert_eq!(ack.payload, None);
    assert!(app.requests_of(ADA).await.is_empty());
    no_problems(socket);
}

#[tokio::test]
async fn a_refresh_mid_flow_opens_the_new_connection_first_and_loses_nothing() {
    let app = spawn_socket_app().await;
    let socket = app.sock();
    let first = socket.connections()[0];
    connections_up(&app, 1).await;

    // A command in flight on the first socket as Slack asks for a refresh
    // (and would close it only ten seconds later); another command once
    // the bot has opened its new socket, which Slack sends there.
    let ada = app.slack.response_url("cmd-ada");
    let before = socket.send_slash_command(slack_sender::command_payload(
        ADA,
        "20m before the refresh",
        &ada,
    ));
    socket.disconnect(first, "refresh_requested", Duration::from_secs(10));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while socket.connections_opened() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no new socket");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (hopper, _, _) = app.add_person(1);
    let after = socket.send_slash_command(slack_sender::command_payload(
        &hopper,
        "20m after the refresh",
        &app.slack.response_url("cmd-hopper"),
    ));

    for delivery in [&before, &after] {
        let ack = socket.ack(delivery, PATIENCE).await.expect("acknowledged");
        assert!(ack.payload.unwrap()["text"]
            .as_str()
            .unwrap()
            .contains("Checking"));
        assert_eq!(ack.retry_attempt, 0, "acknowledged the first time");
    }
    assert!(socket.wait_for_connections(1, PATIENCE).await);
    let sent = socket.sent();
    let second = sent
        .iter()
        .find(|s| s.delivery == after)
        .unwrap()
        .connection;
    assert_ne!(second, first, "nothing goes to a socket that is leaving");

    // The old socket was let go by the bot once the new one was up, not
    // cut by Slack after its grace.
    let lives = socket.lives();
    let old = lives.iter().find(|l| l.connection == first).unwrap();
    let new = lives.iter().find(|l| l.connection == second).unwrap();
    let (closed_at, by) = wait_closed(socket, first).await;
    assert_eq!(by, ClosedBy::Bot);
    assert!(new.opened_at < closed_at, "the new socket opened first");
    assert!(old.opened_at < new.opened_at);
    connections_up(&app, 1).await;

    app.settle().await;
    assert_eq!(app.cards().len(), 2, "both requests reached the approvers");
    no_problems(socket);
}

/// When socket `connection` ended, and who ended it.
async fn wait_closed(socket: &FakeSocketMode, connection: u64) -> (std::time::Instant, ClosedBy) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let closed = socket
            .lives()
            .into_iter()
            .find(|l| l.connection == connection)
            .and_then(|l| l.closed);
        if let Some(closed) = closed {
            return closed;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "socket {connection} never closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `user` opening the Home tab, as an `events_api` envelope's payload.
fn home_opened(user: &str, event_id: &str) -> Value {
    let body = slack_sender::event_callback_body(
        &Source::general(),
        event_id,
        slack_sender::app_home_opened(user, None),
    );
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn a_dropped_socket_is_replaced_and_an_event_it_lost_is_delivered_again_and_acted_on_once() {
    let app = spawn_socket_app().await;
    let socket = app.sock();
    socket.set_ack_timeout(Duration::from_millis(300));
    let first = socket.connections()[0];

    // The event is handled, but its acknowledgement is lost, and the
    // socket with it: Slack sends the event again on the new socket, and
    // the copy is recognised.
    socket.lose_acks(1);
    let event = socket.send_event(home_opened(ADA, "Ev0DROPPED1"));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while app.published_to(ADA) < 1 {
        assert!(tokio::time::Instant::now() < deadline, "never handled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    socket.drop_connection(first);
    assert_eq!(wait_closed(socket, first).await.1, ClosedBy::Dropped);
    let ack = socket.ack(&event, PATIENCE).await.expect("acknowledged");
    assert_eq!(ack.retry_attempt, 1, "the first acknowledgement was lost");
    assert_ne!(ack.connection, first, "sent again on the new socket");
    assert_eq!(socket.connections_opened(), 2, "the bot reconnected");
    assert_eq!(app.published_to(ADA), 1, "acted on once");

    // Commands and clicks go on over the new socket.
    let ack = app.socket_command(ADA, "20m install printer driver").await;
    assert_eq!(ack.retry_attempt, 0);
    app.settle().await;
    let id = app.request_of(ADA).await.id.to_string();
    let click = app.socket_click(GRACE, "tempadmin_approve", &id);
    assert!(socket.ack(&click, PATIENCE).await.is_some());
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
    assert!(socket.dispatch_failed().is_empty());
    no_problems(socket);
}

#[tokio::test]
async fn a_wrong_app_token_stops_start_up_and_says_what_to_set() {
    let app = spawn_app().await;
    app.slack.enable_socket_mode(slack_socket::APP_TOKEN).await;
    let mut config = app.config.clone();
    let dir = tempfile::tempdir().unwrap();
    config.database_url = format!("sqlite://{}", dir.path().join("other.db").display());
    config.listen = "127.0.0.1:0".into();
    let wrong = "xapp-1-A0TEMPADMIN-1-not-the-right-one";
    config.slack.as_mut().unwrap().mode = SlackMode::Socket {
        app_token: SecretString::from(wrong),
    };
    let Err(error) = App::build(&config, app.clock.clone()).await else {
        panic!("started with a wrong app-level token");
    };
    let message = format!("{error:#}");
    for needed in [
        "SLACK_APP_TOKEN",
        "invalid_auth",
        "xapp-",
        "connections:write",
    ] {
        assert!(message.contains(needed), "{needed}: {message}");
    }
    assert!(
        !message.contains(wrong),
        "the token is never shown: {message}"
    );
}

#[tokio::test]
async fn the_simulator_refuses_what_slack_refuses() {
    let app = spawn_socket_app().await;
    // `apps.connections.open` with the token in the header; Slack's answer.
    let open = |token: Option<&'static str>| {
        let request = app
            .http
            .post(format!("{}apps.connections.open", app.slack.api_url()));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let error = |answer: Value| answer["error"].as_str().unwrap_or_default().to_string();
    assert_eq!(error(open(None).await), "not_authed");
    // As a POST parameter, like any Web API method's.
    let in_body: Value = app
        .http
        .post(format!("{}apps.connections.open", app.slack.api_url()))
        .form(&[("token", slack_socket::APP_TOKEN)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(in_body["ok"], true, "{in_body}");
    assert_eq!(
        error(open(Some("xoxb-test")).await),
        "not_allowed_token_type"
    );
    assert_eq!(error(open(Some("xapp-other")).await), "invalid_auth");

    let answer = open(Some(slack_socket::APP_TOKEN)).await;
    let url = answer["url"].as_str().unwrap().to_string();
    assert!(url.contains("/link/?ticket="), "{url}");
    let refused_before = app.sock().refused_handshakes();
    let (_socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    assert!(
        tokio_tungstenite::connect_async(url.as_str())
            .await
            .is_err(),
        "a ticket admits one connection"
    );
    assert_eq!(app.sock().refused_handshakes(), refused_before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_reaches_two_replicas_acts_once() {
    let Some(admin_url) = postgres_server::server() else {
        return;
    };
    let database = PostgresDatabase::create(&admin_url, "socket_replicas")
        .await
        .unwrap();
    let url = database.url.clone();
    let app = spawn_app_configured(|config| {
        socket_mode(config);
        config.database_url = url;
    })
    .await;
    let socket = app.sock().clone();
    // The second replica: the same configuration and database, its own
    // connection.
    let replica = App::build(&app.config, app.clock.clone()).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let second = tokio::spawn(replica.serve_only(async {
        let _ = stopped.await;
    }));
    assert!(socket.wait_for_connections(2, PATIENCE).await);
    socket.set_ack_timeout(Duration::from_millis(300));

    // An event handled by one replica whose acknowledgement is lost:
    // Slack sends it again, to the other replica's socket, which finds it
    // handled in the shared database.
    socket.lose_acks(1);
    let event = socket.send_event(home_opened(ADA, "Ev0REPLICAS1"));
    let ack = socket.ack(&event, PATIENCE).await.expect("acknowledged");
    assert_eq!(ack.retry_attempt, 1);
    let attempts: Vec<u64> = socket
        .sent()
        .iter()
        .filter(|s| s.delivery == event)
        .map(|s| s.connection)
        .collect();
    assert_eq!(attempts.len(), 2);
    assert_ne!(attempts[0], attempts[1], "one delivery, both replicas");
    assert_eq!(app.published_to(ADA), 1, "acted on once");

    // Commands and clicks are not sent again (Slack retries events only),
    // so each reaches one replica; both replicas share the work.
    let ack = app.socket_command(ADA, "20m install printer driver").await;
    assert!(ack.payload.unwrap()["text"]
        .as_str()
        .unwrap()
        .contains("Checking"));
    app.settle().await;
    let id = app.request_of(ADA).await.id.to_string();
    let click = app.socket_click(GRACE, "tempadmin_approve", &id);
    assert!(socket.ack(&click, PATIENCE).await.is_some());
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
    assert_eq!(app.jc_ops(), ["add"], "elevated once");
    no_problems(&socket);

    let _ = stop.send(());
    second.await.unwrap().unwrap();
    drop(app);
    database.drop_it().await.unwrap();
}
