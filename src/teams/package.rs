//! The Teams app package: the zip an administrator uploads to Teams, with
//! `manifest.json` (from `manifests/teams/`, schema v1.29) filled in for one
//! bot and one host, and the two icons Teams requires (`color.png` 192×192,
//! `outline.png` 32×32 white on transparent).
//!
//! The template is compiled in, so the binary can build the package
//! anywhere; the app id and host are checked before they are written, so a
//! typo is refused here rather than by Teams' upload dialog.
//!
//! The manifest's privacy and terms links point at `/privacy` and `/terms`
//! on the same host, which the bot itself serves ([`PRIVACY_PAGE`],
//! [`TERMS_PAGE`]) whenever Teams is configured: Teams needs that host to
//! reach the bot anyway, so the links work with no document to write and
//! host elsewhere, and what they say is true of this software.

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;

/// The manifest template; `{{APP_ID}}` and `{{HOST}}` are filled in.
pub const MANIFEST_TEMPLATE: &str = include_str!("../../manifests/teams/manifest.json");
/// The full-colour icon, 192×192.
pub const COLOR_ICON: &[u8] = include_bytes!("../../manifests/teams/color.png");
/// The outline icon, 32×32, white on transparent.
pub const OUTLINE_ICON: &[u8] = include_bytes!("../../manifests/teams/outline.png");

/// Where the manifest's `privacyUrl` points on the bot's host, and the page
/// served there: what tempadmin keeps and where it goes.
pub const PRIVACY_PATH: &str = "/privacy";
/// The privacy page (HTML, no outside resources).
pub const PRIVACY_PAGE: &str = include_str!("../../manifests/teams/privacy.html");
/// Where the manifest's `termsOfUseUrl` points on the bot's host.
pub const TERMS_PATH: &str = "/terms";
/// The terms of use page (HTML, no outside resources).
pub const TERMS_PAGE: &str = include_str!("../../manifests/teams/terms.html");

/// Why a package could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The app id is not a GUID.
    #[error("the app id `{0}` is not a GUID like 00000000-0000-0000-0000-000000000000 (the Azure Bot's Microsoft App ID)")]
    AppId(String),
    /// The host is not a bare DNS name.
    #[error(
        "the host `{0}` is not a DNS name like tempadmin.example.com (no scheme, port or path)"
    )]
    Host(String),
    /// Writing the zip failed.
    #[error("cannot write the package: {0}")]
    Zip(#[from] zip::result::ZipError),
    /// Writing the zip failed.
    #[error("cannot write the package: {0}")]
    Io(#[from] std::io::Error),
}

/// The manifest for `app_id` and `host`, as JSON text.
pub fn manifest(app_id: &str, host: &str) -> Result<String, PackageError> {
    if !is_guid(app_id) {
        return Err(PackageError::AppId(app_id.to_owned()));
    }
    if !is_host(host) {
        return Err(PackageError::Host(host.to_owned()));
    }
    Ok(MANIFEST_TEMPLATE
        .replace("{{APP_ID}}", &app_id.to_ascii_lowercase())
        .replace("{{HOST}}", &host.to_ascii_lowercase()))
}

/// The upload zip: `manifest.json`, `color.png`, `outline.png` at its root
/// (Teams refuses a package whose files sit in a folder).
pub fn build(app_id: &str, host: &str) -> Result<Vec<u8>, PackageError> {
    let manifest = manifest(app_id, host)?;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in [
        ("manifest.json", manifest.as_bytes()),
        ("color.png", COLOR_ICON),
        ("outline.png", OUTLINE_ICON),
    ] {
        zip.start_file(name, options)?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}

fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_host(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.contains('.')
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    const APP: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";

    #[test]
    fn the_package_holds_the_manifest_and_both_icons_filled_in_for_the_app_and_host() {
        let bytes = build(APP, "tempadmin.example.com").unwrap();
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut names: Vec<String> = zip.file_names().map(str::to_owned).collect();
        names.sort();
        assert_eq!(names, ["color.png", "manifest.json", "outline.png"]);

        let mut text = String::new();
        zip.by_name("manifest.json")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        let m: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(m["id"], APP);
        assert_eq!(m["bots"][0]["botId"], APP);
        assert_eq!(
            m["validDomains"],
            serde_json::json!(["tempadmin.example.com"])
        );
        assert_eq!(
            m["developer"]["websiteUrl"],
            "https://tempadmin.example.com/"
        );
        assert!(!text.contains("{{"), "every placeholder is filled");

        let mut icon = Vec::new();
        zip.by_name("color.png")
            .unwrap()
            .read_to_end(&mut icon)
            .unwrap();
        assert_eq!(icon, COLOR_ICON);
    }

    #[test]
    fn the_bot_serves_personal_chats_and_teams_with_the_four_commands() {
        let m: serde_json::Value =
            serde_json::from_str(&manifest(APP, "a.example").unwrap()).unwrap();
        assert_eq!(
            m["bots"][0]["scopes"],
            serde_json::json!(["personal", "team"])
        );
        let titles: Vec<&str> = m["bots"][0]["commandLists"][0]["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, ["tempadmin 20m", "status", "revoke", "help"]);
    }

    #[test]
    fn the_privacy_and_terms_links_are_the_pages_the_bot_serves() {
        let m: serde_json::Value =
            serde_json::from_str(&manifest(APP, "tempadmin.example.com").unwrap()).unwrap();
        assert_eq!(
            m["developer"]["privacyUrl"],
            format!("https://tempadmin.example.com{PRIVACY_PATH}")
        );
        assert_eq!(
            m["developer"]["termsOfUseUrl"],
            format!("https://tempadmin.example.com{TERMS_PATH}")
        );
        for page in [PRIVACY_PAGE, TERMS_PAGE] {
            assert!(page.starts_with("<!doctype html>"));
            assert!(
                !page.contains("src=") && !page.contains("href="),
                "no outside resources"
            );
        }
    }

    #[test]
    fn the_icons_have_the_sizes_teams_requires() {
        // PNG: 8-byte signature, then IHDR with width and height.
        let size = |png: &[u8]| {
            let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
            let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
            (w, h)
        };
        assert_eq!(size(COLOR_ICON), (192, 192));
        assert_eq!(size(OUTLINE_ICON), (32, 32));
    }

    #[test]
    fn a_bad_app_id_or_host_is_refused_before_anything_is_written() {
        assert!(matches!(
            build("not-a-guid", "a.example"),
            Err(PackageError::AppId(_))
        ));
        for host in [
            "https://a.example",
            "a.example/teams",
            "a.example:443",
            "localhost",
            "",
        ] {
            assert!(
                matches!(build(APP, host), Err(PackageError::Host(_))),
                "{host}"
            );
        }
    }
}
