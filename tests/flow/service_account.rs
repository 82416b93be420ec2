//! A JumpCloud service account instead of an API key: bearer tokens from the
//! simulated token endpoint, kept, renewed before they expire, renewed once
//! when the API refuses one. The client and the simulator share a manual
//! clock, so lifetimes pass without waiting.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;
use tempadmin::domain::{Email, RequestState};
use tempadmin::engine::clock::ManualClock;
use tempadmin::engine::ports::{Directory, DirectoryError};
use tempadmin::jumpcloud::{
    JumpCloudClient, JumpCloudCredentials, JumpCloudSettings, ServiceAccount,
};
use tempadmin::sim::jumpcloud::{Failure, FakeJumpCloud, SimUser, TOKEN_PATH};

use crate::support::*;

const CLIENT_ID: &str = "sa-client-id";
const CLIENT_SECRET: &str = "sa-client-secret";
const HOUR: Duration = Duration::from_secs(3600);

struct Rig {
    jc: FakeJumpCloud,
    clock: Arc<ManualClock>,
    client: Arc<JumpCloudClient>,
}

/// A simulator that knows Ada and issues one-hour tokens, and a client of
/// it with the service account's credentials (`secret` as its secret).
async fn rig_with_secret(secret: &str) -> Rig {
    let jc = FakeJumpCloud::start("jc-test-key").await;
    jc.add_user(SimUser {
        id: JC_ADA.into(),
        email: "ada@example.com".into(),
        username: "ada".into(),
        sudo: false,
        suspended: false,
    });
    let clock = Arc::new(ManualClock::new(Utc::now()));
    jc.use_clock(clock.clone());
    jc.enable_service_account(CLIENT_ID, CLIENT_SECRET, HOUR);
    let settings = JumpCloudSettings {
        api_url: jc.url(),
        credentials: service_account(&jc, secret),
        org_id: Some("org-test".into()),
        timeout: Duration::from_secs(5),
        max_requests_per_second: None,
    };
    let client = Arc::new(JumpCloudClient::with_clock(settings, clock.clone()).unwrap());
    Rig { jc, clock, client }
}

async fn rig() -> Rig {
    rig_with_secret(CLIENT_SECRET).await
}

fn service_account(jc: &FakeJumpCloud, secret: &str) -> JumpCloudCredentials {
    JumpCloudCredentials::ServiceAccount(ServiceAccount {
        client_id: SecretString::from(CLIENT_ID),
        client_secret: SecretString::from(secret),
        oauth_url: jc.oauth_url(),
    })
}

impl Rig {
    /// One API call (a look-up by email).
    async fn look_up(&self) -> Result<(), DirectoryError> {
        let ada = Email::parse("ada@example.com").unwrap();
        let found = self.client.find_user_by_email(&ada).await?;
        assert!(found.is_some());
        Ok(())
    }

    /// Token requests the simulator answered 200.
    fn tokens_granted(&self) -> usize {
        self.jc
            .token_requests()
            .iter()
            .filter(|r| r.status == 200)
            .count()
    }

    /// The distinct bearer tokens the API calls carried, in order.
    fn bearers(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for call in self.jc.calls() {
            let bearer = call.bearer.expect("every call carries a bearer token");
            if seen.last() != Some(&bearer) {
                seen.push(bearer);
            }
        }
        seen
    }
}

#[tokio::test]
async fn many_calls_including_concurrent_ones_share_one_token_sent_as_a_bearer() {
    let rig = rig().await;
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let client = rig.client.clone();
            tokio::spawn(async move {
                let ada = Email::parse("ada@example.com").unwrap();
                client.find_user_by_email(&ada).await
            })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().unwrap().is_some());
    }
    for _ in 0..5 {
        rig.look_up().await.unwrap();
    }
    assert_eq!(
        rig.jc.token_requests().len(),
        1,
        "{:?}",
        rig.jc.token_requests()
    );
    assert_eq!(
        rig.jc.token_requests()[0].client_id.as_deref(),
        Some(CLIENT_ID)
    );
    let calls = rig.jc.calls();
    assert_eq!(calls.len(), 13);
    assert!(calls.iter().all(|c| c.api_key.is_none()), "no x-api-key");
    assert!(calls
        .iter()
        .all(|c| c.org_id.as_deref() == Some("org-test")));
    assert_eq!(rig.bearers().len(), 1);
}

#[tokio::test]
async fn the_token_is_renewed_once_80_percent_of_its_lifetime_has_passed() {
    let rig = rig().await;
    rig.look_up().await.unwrap();
    // 80 % of an hour is 48 minutes.
    rig.clock.advance(Duration::from_secs(48 * 60 - 10));
    rig.look_up().await.unwrap();
    assert_eq!(rig.tokens_granted(), 1, "not renewed before 80 %");
    rig.clock.advance(Duration::from_secs(20));
    rig.look_up().await.unwrap();
    rig.look_up().await.unwrap();
    assert_eq!(rig.tokens_granted(), 2, "renewed once past 80 %");
    assert_eq!(rig.bearers().len(), 2);
    assert_eq!(
        rig.jc.token_requests().len(),
        2,
        "the old token was never refused: the renewal came before its expiry"
    );
    // Well past the first token's hour, the second one carries on.
    rig.clock.advance(Duration::from_secs(30 * 60));
    rig.look_up().await.unwrap();
    assert_eq!(rig.tokens_granted(), 2);
}

#[tokio::test]
async fn a_refused_token_is_renewed_once_and_the_call_retried_once() {
    let rig = rig().await;
    rig.look_up().await.unwrap();
    rig.jc.revoke_tokens();
    let before = rig.jc.calls().len();
    rig.look_up().await.unwrap();
    assert_eq!(rig.tokens_granted(), 2);
    assert_eq!(
        rig.jc.calls().len() - before,
        2,
        "the refused call and its retry"
    );

    // Several calls refused at once still renew the token once.
    rig.jc.revoke_tokens();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let client = rig.client.clone();
            tokio::spawn(async move {
                let ada = Email::parse("ada@example.com").unwrap();
                client.find_user_by_email(&ada).await
            })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().unwrap().is_some());
    }
    assert_eq!(rig.tokens_granted(), 3, "{:?}", rig.jc.token_requests());
}

#[tokio::test]
async fn a_call_refused_again_after_the_renewal_is_unauthorized_without_more_tries() {
    let rig = rig().await;
    rig.jc.fail_next(
        "GET",
        "/api/systemusers",
        10,
        Failure::Status {
            status: 401,
            retry_after: None,
        },
    );
    assert_eq!(rig.look_up().await, Err(DirectoryError::Unauthorized(401)));
    assert_eq!(rig.jc.calls().len(), 2, "one call and one retry");
    assert_eq!(
        rig.jc.token_requests().len(),
        2,
        "one token and one renewal"
    );
}

#[tokio::test]
async fn a_wrong_client_secret_is_a_clear_configuration_error_and_the_api_hears_nothing() {
    let rig = rig_with_secret("not-the-secret").await;
    let err = rig.look_up().await.unwrap_err();
    assert_eq!(err, DirectoryError::Unauthorized(401));
    assert!(!err.is_retryable());
    assert!(rig.jc.calls().is_empty());
    assert_eq!(
        rig.jc.token_requests().len(),
        1,
        "asked once, not in a loop"
    );
    assert_eq!(rig.jc.token_requests()[0].status, 401);
}

#[tokio::test]
async fn a_failing_token_endpoint_is_transient_and_a_still_valid_token_carries_on() {
    let rig = rig().await;
    let outage = Failure::Status {
        status: 503,
        retry_after: None,
    };
    rig.jc.fail_next("POST", TOKEN_PATH, 1, outage.clone());
    let err = rig.look_up().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(rig.jc.calls().is_empty());
    rig.look_up().await.unwrap();
    assert_eq!(rig.tokens_granted(), 1);

    // Due for renewal but still valid: an outage then does not stop calls.
    rig.clock.advance(Duration::from_secs(50 * 60));
    rig.jc.fail_next("POST", TOKEN_PATH, 1, outage);
    rig.look_up().await.unwrap();
    rig.look_up().await.unwrap();
    assert_eq!(
        rig.jc.token_requests().len(),
        3,
        "no second try at once after a failed renewal"
    );
    rig.clock.advance(Duration::from_secs(31));
    rig.look_up().await.unwrap();
    assert_eq!(rig.tokens_granted(), 2);
    assert_eq!(rig.bearers().len(), 2);
}

#[tokio::test]
async fn a_grant_runs_end_to_end_on_a_service_account() {
    let app = spawn_app_configured(|config| {
        config.jumpcloud.credentials = JumpCloudCredentials::ServiceAccount(ServiceAccount {
            client_id: SecretString::from(CLIENT_ID),
            client_secret: SecretString::from(CLIENT_SECRET),
            oauth_url: format!("{}{TOKEN_PATH}", config.jumpcloud.api_url),
        });
    })
    .await;
    app.jc.use_clock(app.clock.clone());
    app.jc
        .enable_service_account(CLIENT_ID, CLIENT_SECRET, 2 * HOUR);
    let id = app.pending_request("20m").await;
    app.click(GRACE, "tempadmin_approve", &id).await;
    app.settle().await;
    assert_eq!(app.state_of(ADA).await, RequestState::Active);
    app.advance(Duration::from_secs(20 * 60)).await;
    assert_eq!(app.state_of(ADA).await, RequestState::Ended);
    assert_eq!(app.jc_ops(), ["add", "remove"]);
    let writes = app.jc.writes();
    assert!(writes
        .iter()
        .all(|w| w.bearer.is_some() && w.api_key.is_none()));
    assert_eq!(
        app.jc.token_requests().len(),
        1,
        "one token for the whole grant"
    );
}
