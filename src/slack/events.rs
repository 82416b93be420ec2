//! Slack's Events API: the envelope, the one event the bot subscribes to
//! (`app_home_opened`), and what happens to it. How an event arrives is
//! not this module's business: the HTTP route (`POST /slack/events`)
//! verifies the signature, [`parse`]s the body and acknowledges at once;
//! Socket Mode hands over the `payload` of an `events_api` envelope
//! through [`parse_value`]. Both then call [`handle_event`] after the
//! acknowledgement, since publishing a view takes Slack calls of its own.
//!
//! Invariant: only events of our app in our workspaces act ([`Ours`]), and
//! a delivery Slack retries (`X-Slack-Retry-Num`, or an unacknowledged
//! envelope) publishes once: its `event_id` is remembered as a delivery.

use serde::Deserialize;

use super::client::SlackChat;
use super::origin::{Origin, Ours};
use super::payload::PayloadError;
use crate::domain::{ChatUserId, Timestamp};
use crate::engine::{Delivery, Engine};

/// How long an event's id is remembered: Slack retries an event three
/// times, the last about five minutes after the first.
const EVENT_KEPT: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// An Events API delivery, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// Slack checks the request URL: echo the challenge.
    UrlVerification {
        /// What to echo.
        challenge: String,
    },
    /// An event of a subscription.
    Callback(EventCallback),
    /// Any other envelope type: acknowledged, not acted on.
    Other,
}

/// An `event_callback`: who it is from, which delivery, what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCallback {
    /// Team and app (and the conversation, when the event names one).
    pub origin: Origin,
    /// `event_id`: the same on every retry of one event.
    pub event_id: String,
    /// What happened.
    pub event: Event,
}

/// The events the bot acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The person opened the bot's Home tab.
    HomeOpened {
        /// Who.
        user: ChatUserId,
    },
    /// Anything else (another tab of `app_home_opened`, events we never
    /// subscribed to): acknowledged, not acted on.
    Other,
}

#[derive(Deserialize)]
struct RawEnvelope {
    #[serde(rename = "type")]
    kind: String,
    challenge: Option<String>,
    #[serde(default)]
    team_id: String,
    #[serde(default)]
    api_app_id: String,
    event_id: Option<String>,
    event: Option<RawEvent>,
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    user: Option<String>,
    channel: Option<String>,
    tab: Option<String>,
}

/// Parses the JSON body Slack posts to the request URL.
pub fn parse(body: &[u8]) -> Result<Envelope, PayloadError> {
    let raw: RawEnvelope =
        serde_json::from_slice(body).map_err(|e| PayloadError::Malformed(e.to_string()))?;
    from_raw(raw)
}

/// Parses the `payload` of a Socket Mode `events_api` envelope (the same
/// JSON as the HTTP body).
pub fn parse_value(payload: serde_json::Value) -> Result<Envelope, PayloadError> {
    let raw: RawEnvelope =
        serde_json::from_value(payload).map_err(|e| PayloadError::Malformed(e.to_string()))?;
    from_raw(raw)
}

fn from_raw(raw: RawEnvelope) -> Result<Envelope, PayloadError> {
    match raw.kind.as_str() {
        "url_verification" => match raw.challenge {
            Some(challenge) => Ok(Envelope::UrlVerification { challenge }),
            None => Err(PayloadError::Malformed(
                "url_verification without a challenge".into(),
            )),
        },
        "event_callback" => {
            let event = raw
                .event
                .ok_or_else(|| PayloadError::Malformed("event_callback without an event".into()))?;
            let event_id = raw.event_id.filter(|id| !id.is_empty()).ok_or_else(|| {
                PayloadError::Malformed("event_callback without an event_id".into())
            })?;
            let channel_id = event.channel.clone();
            let event = match (event.kind.as_str(), event.tab.as_deref(), event.user) {
                ("app_home_opened", Some("home"), Some(user)) if !user.is_empty() => {
                    Event::HomeOpened {
                        user: ChatUserId::slack(user),
                    }
                }
                _ => Event::Other,
            };
            Ok(Envelope::Callback(EventCallback {
                origin: Origin {
                    team_id: raw.team_id,
                    app_id: raw.api_app_id,
                    channel_id,
                },
                event_id,
                event,
            }))
        }
        _ => Ok(Envelope::Other),
    }
}

/// Acts on one event that Slack has been acknowledged for: an
/// `app_home_opened` of ours publishes the person's Home tab, once per
/// event (`now` dates the remembered `event_id`). Events of another
/// workspace or app, and events we do not act on, change nothing.
pub async fn handle_event(
    engine: &Engine,
    slack: &SlackChat,
    ours: &Ours,
    callback: EventCallback,
    now: Timestamp,
) {
    if let Err(why) = ours.check(&callback.origin) {
        tracing::warn!(%why, "ignored an event that is not ours");
        return;
    }
    let Event::HomeOpened { user } = callback.event else {
        return;
    };
    let delivery = Delivery {
        key: format!(
            "slack-event:{}:{}",
            callback.origin.team_id, callback.event_id
        ),
        keep_until: now + EVENT_KEPT,
    };
    publish_home(engine, slack, &user, Some(delivery)).await;
}

/// Publishes `user`'s Home tab as the engine has it now: on opening the
/// tab, and after a click in it changed something (End now). A failure
/// is logged; the next opening publishes again.
pub async fn publish_home(
    engine: &Engine,
    slack: &SlackChat,
    user: &ChatUserId,
    delivery: Option<Delivery>,
) {
    let home = match engine.home(user, delivery).await {
        Ok(Some(home)) => home,
        Ok(None) => return,
        Err(e) => return tracing::error!(error = %e, "could not read the App Home"),
    };
    match slack.publish_home(&home).await {
        Ok(()) => tracing::info!(user = %user, mine = home.mine.len(), "App Home published"),
        Err(e) => tracing::warn!(user = %user, error = %e, "could not publish the App Home"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::slack_sender::{
        app_home_opened, event_callback_body, url_verification_body, Source,
    };

    #[test]
    fn a_home_opening_of_the_home_tab_is_the_one_event_acted_on() {
        let body = event_callback_body(&Source::general(), "Ev1", app_home_opened("U1", None));
        let Envelope::Callback(callback) = parse(body.as_bytes()).unwrap() else {
            panic!("a callback");
        };
        assert_eq!(
            callback.event,
            Event::HomeOpened {
                user: ChatUserId::slack("U1")
            }
        );
        assert_eq!(callback.event_id, "Ev1");
        assert_eq!(callback.origin.team_id, Source::general().team);
        assert_eq!(callback.origin.app_id, Source::general().app);

        let mut messages = app_home_opened("U1", None);
        messages["tab"] = "messages".into();
        let body = event_callback_body(&Source::general(), "Ev2", messages);
        let parsed = parse(body.as_bytes()).unwrap();
        assert!(matches!(
            parsed,
            Envelope::Callback(EventCallback {
                event: Event::Other,
                ..
            })
        ));
        // Socket Mode's payload is the same JSON.
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parse_value(value).unwrap(), parsed);
    }

    #[test]
    fn the_url_check_is_answered_and_broken_envelopes_are_malformed() {
        assert_eq!(
            parse(url_verification_body("abc").as_bytes()).unwrap(),
            Envelope::UrlVerification {
                challenge: "abc".into()
            }
        );
        assert_eq!(
            parse(br#"{"type":"app_rate_limited"}"#).unwrap(),
            Envelope::Other
        );
        for bad in [
            &br#"{"type":"url_verification"}"#[..],
            br#"{"type":"event_callback","event_id":"Ev1"}"#,
            br#"{"type":"event_callback","event":{"type":"app_home_opened"}}"#,
            b"not json",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
