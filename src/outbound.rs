//! Where the bot may send its secrets. Every outside service is reached
//! over HTTPS; plain HTTP only to a loopback address, where the simulators
//! and test servers live and nothing crosses a network. Slack's, JumpCloud's
//! and the Bot Framework's adapters all check their configured addresses
//! here, so the rule is written once.

/// Whether `url` names this machine: 127.0.0.0/8, ::1 or `localhost`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Whether `address` may receive `carries` (the bot token, an API key, a
/// client secret): https, or plain http to loopback; no user name or
/// password, and no query or fragment (paths are appended to it). The
/// reason starts so that it reads after the setting's name; `example` is a
/// good address and `service` the service's name, for the message.
pub fn check_address(
    address: &str,
    example: &str,
    carries: &str,
    service: &str,
) -> Result<(), String> {
    let url = url::Url::parse(address)
        .map_err(|e| format!("`{address}` is not a URL ({e}); use e.g. {example}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".to_string());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{address}` must be an address without a query or fragment, e.g. {example}"
        ));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err(format!(
            "`{address}` uses plain http, which would send {carries} unencrypted; use https:// \
             (plain http is allowed only to a loopback test server: 127.0.0.0/8, ::1 or localhost)"
        )),
        other => Err(format!(
            "`{address}` uses `{other}:`; {service} is reached over https://, e.g. {example}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_and_plain_http_only_on_loopback() {
        let check = |a: &str| check_address(a, "https://x.example", "the token", "X");
        assert_eq!(check("https://api.example.com/v2"), Ok(()));
        for loopback in [
            "http://127.0.0.1:9/",
            "http://[::1]:9/",
            "http://LocalHost/",
        ] {
            assert_eq!(check(loopback), Ok(()), "{loopback}");
        }
        assert!(check("http://10.0.0.1/")
            .unwrap_err()
            .contains("plain http"));
        assert!(check("ftp://x.example/").unwrap_err().contains("`ftp:`"));
        assert!(check("https://u:p@x.example/")
            .unwrap_err()
            .contains("password"));
        assert!(check("https://x.example/?a=1")
            .unwrap_err()
            .contains("query"));
        assert!(check("not a url").unwrap_err().contains("not a URL"));
    }
}
