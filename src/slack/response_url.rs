//! `response_url`s: where Slack lets the bot answer a command or a click
//! privately. The address comes inside the payload, so before anything is
//! posted to it, it must be one of Slack's: `https` on Slack's hook hosts,
//! or, when `slack.api_url` points elsewhere (the simulators, a test), that
//! very origin. Parsed once where the payload arrives, and again before a
//! stored one is used, so no address from outside is ever called as given.

use url::Url;

/// The hosts that serve Slack's `response_url`s (commercial and GovSlack).
pub const HOOK_HOSTS: [&str; 2] = ["hooks.slack.com", "hooks.slack-gov.com"];

/// A `response_url` that [`HookHosts::parse`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseUrl(Url);

impl ResponseUrl {
    /// The address.
    pub fn url(&self) -> &Url {
        &self.0
    }
}

impl std::fmt::Display for ResponseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why an address is not a `response_url` we call. It names no part of the
/// address: a `response_url` is a bearer credential for its conversation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseUrlError {
    /// Not a URL.
    #[error("the response_url is not a URL")]
    Malformed,
    /// A URL, but not on Slack's hook hosts over https (nor the overridden API's origin).
    #[error("the response_url is not on Slack's hook hosts")]
    ForeignHost,
}

/// Which `response_url`s are Slack's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookHosts {
    /// The origin of an overridden `slack.api_url`, also accepted.
    overridden: Option<url::Origin>,
}

impl HookHosts {
    /// Slack's hook hosts, plus the origin of `api_url` when it is not
    /// Slack's own (`https://slack.com/api`).
    pub fn new(api_url: &str) -> Self {
        let overridden = Url::parse(api_url)
            .ok()
            .filter(|u| !(u.scheme() == "https" && u.host_str() == Some("slack.com")))
            .map(|u| u.origin())
            .filter(url::Origin::is_tuple);
        Self { overridden }
    }

    /// Accepts `text` only as a Slack `response_url`.
    pub fn parse(&self, text: &str) -> Result<ResponseUrl, ResponseUrlError> {
        let url = Url::parse(text.trim()).map_err(|_| ResponseUrlError::Malformed)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ResponseUrlError::ForeignHost);
        }
        let slack = url.scheme() == "https"
            && url.port().is_none()
            && url.host_str().is_some_and(|h| HOOK_HOSTS.contains(&h));
        let overridden = self.overridden.as_ref() == Some(&url.origin());
        if slack || overridden {
            Ok(ResponseUrl(url))
        } else {
            Err(ResponseUrlError::ForeignHost)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_on_slacks_hook_hosts_is_a_response_url() {
        let hosts = HookHosts::new("https://slack.com/api");
        for fine in [
            "https://hooks.slack.com/commands/T0/1/abc",
            "https://HOOKS.slack.com/actions/T0/1/abc",
            "https://hooks.slack-gov.com/commands/T0/1/abc",
            "https://hooks.slack.com:443/commands/T0/1/abc",
        ] {
            assert!(hosts.parse(fine).is_ok(), "{fine}");
        }
        for (bad, why) in [
            (
                "http://hooks.slack.com/commands/T0/1/abc",
                ResponseUrlError::ForeignHost,
            ),
            (
                "https://hooks.slack.com.evil.example/x",
                ResponseUrlError::ForeignHost,
            ),
            (
                "https://evil.example/hooks.slack.com",
                ResponseUrlError::ForeignHost,
            ),
            (
                "https://hooks.slack.com:8443/commands/x",
                ResponseUrlError::ForeignHost,
            ),
            (
                "https://u:p@hooks.slack.com/commands/x",
                ResponseUrlError::ForeignHost,
            ),
            (
                "https://slack.com/api/chat.postMessage",
                ResponseUrlError::ForeignHost,
            ),
            (
                "http://127.0.0.1:9/respond/x",
                ResponseUrlError::ForeignHost,
            ),
            ("hooks.slack.com/commands", ResponseUrlError::Malformed),
        ] {
            assert_eq!(hosts.parse(bad), Err(why), "{bad}");
        }
    }

    #[test]
    fn an_overridden_api_url_adds_exactly_its_own_origin() {
        let hosts = HookHosts::new("http://127.0.0.1:4000/api/");
        assert!(hosts.parse("http://127.0.0.1:4000/respond/r1").is_ok());
        assert!(hosts.parse("https://hooks.slack.com/commands/x").is_ok());
        for bad in [
            "http://127.0.0.1:4001/respond/r1",
            "https://127.0.0.1:4000/respond/r1",
            "http://localhost:4000/respond/r1",
        ] {
            assert_eq!(
                hosts.parse(bad),
                Err(ResponseUrlError::ForeignHost),
                "{bad}"
            );
        }
    }
}
