//! Who a payload is from, and whether that is us. A valid signature proves
//! Slack sent it for an app with our signing secret; the team, the app and
//! (for decisions) the channel say whether it is our installation, so an
//! install in another workspace, or a button copied elsewhere, acts on
//! nothing. Our own ids come from `auth.test` and `bots.info` at start.

/// What the bot token says about itself (`auth.test`, then `bots.info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The workspace the token belongs to (`team_id`).
    pub team_id: String,
    /// The bot's own user (`user_id`).
    pub user_id: String,
    /// The bot (`bot_id`).
    pub bot_id: String,
    /// The app the bot belongs to (`bots.info` → `bot.app_id`).
    pub app_id: String,
}

/// Where a payload says it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `team_id` (commands) or `team.id` (interactions).
    pub team_id: String,
    /// `api_app_id`.
    pub app_id: String,
    /// The conversation it was typed or clicked in (`channel_id`,
    /// `container.channel_id` or `channel.id`).
    pub channel_id: Option<String>,
}

/// Why a payload is not ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Foreign {
    /// Another workspace.
    #[error("team {0} is not ours")]
    Team(String),
    /// Another app.
    #[error("app {0} is not ours")]
    App(String),
    /// A decision clicked outside the approvals channel.
    #[error("a decision from channel {0:?}, not the approvals channel")]
    Channel(Option<String>),
}

/// What the bot accepts payloads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ours {
    /// The token's workspace and any configured ones (`slack.team_ids`, for
    /// the workspaces of an Enterprise Grid).
    pub teams: Vec<String>,
    /// Our app.
    pub app_id: String,
    /// Where approval requests go, and the only place decisions count from.
    pub approvals_channel: String,
}

impl Ours {
    /// From the token's identity, the configured extra teams and the channel.
    pub fn new(identity: &Identity, extra_teams: &[String], approvals_channel: &str) -> Self {
        let mut teams = vec![identity.team_id.clone()];
        teams.extend(
            extra_teams
                .iter()
                .filter(|t| **t != identity.team_id)
                .cloned(),
        );
        Self {
            teams,
            app_id: identity.app_id.clone(),
            approvals_channel: approvals_channel.to_string(),
        }
    }

    /// Whether a payload is from our app in one of our workspaces.
    pub fn check(&self, origin: &Origin) -> Result<(), Foreign> {
        if !self.teams.contains(&origin.team_id) {
            return Err(Foreign::Team(origin.team_id.clone()));
        }
        if origin.app_id != self.app_id {
            return Err(Foreign::App(origin.app_id.clone()));
        }
        Ok(())
    }

    /// [`Self::check`], and that a decision was clicked in the approvals channel.
    pub fn check_decision(&self, origin: &Origin) -> Result<(), Foreign> {
        self.check(origin)?;
        if origin.channel_id.as_deref() != Some(self.approvals_channel.as_str()) {
            return Err(Foreign::Channel(origin.channel_id.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> Ours {
        let identity = Identity {
            team_id: "T1".into(),
            user_id: "U0BOT".into(),
            bot_id: "B1".into(),
            app_id: "A1".into(),
        };
        Ours::new(&identity, &["T2".into()], "C0APPROVALS")
    }

    fn origin(team: &str, app: &str, channel: Option<&str>) -> Origin {
        Origin {
            team_id: team.into(),
            app_id: app.into(),
            channel_id: channel.map(Into::into),
        }
    }

    #[test]
    fn only_our_app_in_our_teams_and_decisions_only_from_the_approvals_channel() {
        let ours = ours();
        assert_eq!(ours.check(&origin("T1", "A1", Some("C9"))), Ok(()));
        assert_eq!(ours.check(&origin("T2", "A1", None)), Ok(()));
        assert_eq!(
            ours.check(&origin("T3", "A1", None)),
            Err(Foreign::Team("T3".into()))
        );
        assert_eq!(
            ours.check(&origin("T1", "A2", None)),
            Err(Foreign::App("A2".into()))
        );
        assert_eq!(
            ours.check_decision(&origin("T1", "A1", Some("C0APPROVALS"))),
            Ok(())
        );
        assert_eq!(
            ours.check_decision(&origin("T1", "A1", Some("C9"))),
            Err(Foreign::Channel(Some("C9".into())))
        );
        assert_eq!(
            ours.check_decision(&origin("T1", "A1", None)),
            Err(Foreign::Channel(None))
        );
    }
}
