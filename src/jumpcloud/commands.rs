//! tempadmin's commands on JumpCloud: the scripts that show notices and end
//! what ran elevated on a device, installed once per organisation
//! ([`install_commands`]) and run per device ([`JumpCloudDevices`], the
//! engine's [`DeviceCommands`] port).
//!
//! How one device is reached (JumpCloud's own per-device pattern,
//! `Invoke-JCDeployment.ps1`; DEVICE.md "Commands"): bind the OS's command to
//! the system for the life of the grant, fire the command's trigger with
//! flat string variables, unbind at the end. A trigger runs on every system
//! bound to the command, so each script compares `targetSystemId` with the
//! agent's own `systemKey` and exits on any other system.
//!
//! The scripts are files under `scripts/device/`, embedded at build time.
//! The text they show arrives only as trigger variables (DESIGN 8).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{segment, JumpCloudClient};
use crate::domain::{JcUserId, SystemId};
use crate::engine::device::{DeviceCommands, DeviceNotice, DeviceOs, EndElevated};
use crate::engine::ports::DirectoryError;

/// The user a `mac` or `linux` command runs as: root (JumpCloud's
/// `New-JCCommand.ps1`).
pub const ROOT_USER: &str = "000000000000000000000000";

/// How long a notice may wait in JumpCloud's queue for an offline device:
/// short, so that it never pops up long after the moment it speaks of.
pub const NOTICE_TTL_SECONDS: u64 = 300;

/// The same for ending what ran elevated: longer, since it still helps
/// when the computer comes back later.
pub const END_TTL_SECONDS: u64 = 3600;

/// A run may take this long before JumpCloud stops it (exit 124): longer
/// than a notice stays up and than the HUP-then-KILL wait.
pub const COMMAND_TIMEOUT_SECONDS: u64 = 120;

/// What a command is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Show a notice.
    Notice,
    /// End what ran elevated.
    EndElevated,
}

/// One of tempadmin's commands as it should be in JumpCloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// Which OS.
    pub os: DeviceOs,
    /// What for.
    pub purpose: Purpose,
    /// `name`: how the command is found again.
    pub name: &'static str,
    /// `trigger`: letters only, so no trigger-name rules can bite.
    pub trigger: &'static str,
    /// The script.
    pub script: &'static str,
}

impl CommandSpec {
    /// The command's JSON for `POST /api/commands` and `PUT /api/commands/{id}`.
    pub fn body(&self) -> Map<String, Value> {
        let ttl = match self.purpose {
            Purpose::Notice => NOTICE_TTL_SECONDS,
            Purpose::EndElevated => END_TTL_SECONDS,
        };
        let mut body = json!({
            "name": self.name,
            "command": self.script,
            "commandType": self.os.command_type(),
            "launchType": "trigger",
            "trigger": self.trigger,
            "timeout": COMMAND_TIMEOUT_SECONDS.to_string(),
            "timeToLiveSeconds": ttl,
        });
        match self.os {
            // LocalSystem; PowerShell for the scripts.
            DeviceOs::Windows => body["shell"] = json!("powershell"),
            DeviceOs::Mac | DeviceOs::Linux => body["user"] = json!(ROOT_USER),
        }
        match body {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

/// Every command tempadmin installs, in install order.
pub fn command_specs() -> Vec<CommandSpec> {
    use DeviceOs::*;
    use Purpose::*;
    vec![
        CommandSpec {
            os: Windows,
            purpose: Notice,
            name: "tempadmin-notice-windows",
            trigger: "tempadminNoticeWindows",
            script: include_str!("../../scripts/device/notice-windows.ps1"),
        },
        CommandSpec {
            os: Mac,
            purpose: Notice,
            name: "tempadmin-notice-mac",
            trigger: "tempadminNoticeMac",
            script: include_str!("../../scripts/device/notice-mac.sh"),
        },
        CommandSpec {
            os: Linux,
            purpose: Notice,
            name: "tempadmin-notice-linux",
            trigger: "tempadminNoticeLinux",
            script: include_str!("../../scripts/device/notice-linux.sh"),
        },
        CommandSpec {
            os: Windows,
            purpose: EndElevated,
            name: "tempadmin-end-elevated-windows",
            trigger: "tempadminEndElevatedWindows",
            script: include_str!("../../scripts/device/end-elevated-windows.ps1"),
        },
        CommandSpec {
            os: Mac,
            purpose: EndElevated,
            name: "tempadmin-end-elevated-mac",
            trigger: "tempadminEndElevatedMac",
            script: include_str!("../../scripts/device/end-elevated-mac.sh"),
        },
        CommandSpec {
            os: Linux,
            purpose: EndElevated,
            name: "tempadmin-end-elevated-linux",
            trigger: "tempadminEndElevatedLinux",
            script: include_str!("../../scripts/device/end-elevated-linux.sh"),
        },
    ]
}

fn spec(os: DeviceOs, purpose: Purpose) -> CommandSpec {
    command_specs()
        .into_iter()
        .find(|s| s.os == os && s.purpose == purpose)
        .expect("a command for every OS and purpose")
}

/// What `install-commands` did to one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// It did not exist.
    Created,
    /// It existed and differed.
    Updated,
    /// It existed as it should.
    Unchanged,
}

#[derive(Debug, Deserialize)]
struct CommandList {
    #[serde(default)]
    results: Vec<Value>,
}

impl JumpCloudClient {
    /// The id of the command named `name`, if one exists.
    async fn command_id(&self, name: &str) -> Result<Option<String>, DirectoryError> {
        let filter = format!("name:$eq:{name}");
        let builder = self
            .call(Method::GET, "/api/commands")
            .query(&[("filter", filter.as_str()), ("limit", "10")]);
        let (list, _): (CommandList, _) = self.get_json(builder).await?;
        Ok(list
            .results
            .iter()
            .filter(|c| c["name"] == name)
            .find_map(|c| c["_id"].as_str().map(str::to_owned)))
    }
}

/// How one of tempadmin's commands stands in JumpCloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// No command has its name.
    Missing,
    /// It exists but differs from what `install-commands` would write.
    Differs,
    /// It exists as it should.
    Current,
}

/// The commands a grant uses under `end_elevated`: the notices always
/// (they carry the grant's start and end), the end-elevated ones unless it
/// is off.
pub fn required_specs(end_elevated: EndElevated) -> Vec<CommandSpec> {
    let purposes = purposes(end_elevated != EndElevated::Off);
    command_specs()
        .into_iter()
        .filter(|s| purposes.contains(&s.purpose))
        .collect()
}

fn purposes(end_elevated: bool) -> &'static [Purpose] {
    if end_elevated {
        &[Purpose::Notice, Purpose::EndElevated]
    } else {
        &[Purpose::Notice]
    }
}

/// How `spec` stands in JumpCloud, asked with `GET`s only (`tempadmin
/// check`): found by name, and compared as [`install_commands`] compares.
pub async fn found(client: &JumpCloudClient, spec: &CommandSpec) -> Result<Found, DirectoryError> {
    let Some(id) = client.command_id(spec.name).await? else {
        return Ok(Found::Missing);
    };
    let path = format!("/api/commands/{}", segment(&id));
    let (current, _): (Map<String, Value>, _) =
        client.get_json(client.call(Method::GET, &path)).await?;
    Ok(
        if spec.body().iter().all(|(k, v)| current.get(k) == Some(v)) {
            Found::Current
        } else {
            Found::Differs
        },
    )
}

/// Creates or updates every command in [`command_specs`], found again by
/// name: a command that is already as it should be is left alone, so a
/// second run changes nothing.
pub async fn install_commands(
    client: &JumpCloudClient,
) -> Result<Vec<(&'static str, Installed)>, DirectoryError> {
    let mut done = Vec::new();
    for spec in command_specs() {
        let body = spec.body();
        let outcome = match client.command_id(spec.name).await? {
            None => {
                client
                    .send(client.call(Method::POST, "/api/commands").json(&body))
                    .await?;
                Installed::Created
            }
            Some(id) => {
                let path = format!("/api/commands/{}", segment(&id));
                let (current, _): (Map<String, Value>, _) =
                    client.get_json(client.call(Method::GET, &path)).await?;
                let same = body.iter().all(|(k, v)| current.get(k) == Some(v));
                if same {
                    Installed::Unchanged
                } else {
                    client
                        .send(client.call(Method::PUT, &path).json(&body))
                        .await?;
                    Installed::Updated
                }
            }
        };
        tracing::info!(command = spec.name, ?outcome, "JumpCloud command installed");
        done.push((spec.name, outcome));
    }
    Ok(done)
}

/// The engine's [`DeviceCommands`] over JumpCloud commands.
#[derive(Debug)]
pub struct JumpCloudDevices {
    client: JumpCloudClient,
    /// Whether end-elevated commands are bound too.
    end_elevated: bool,
    /// Command ids by name, learnt once.
    ids: Mutex<HashMap<&'static str, String>>,
}

impl JumpCloudDevices {
    /// Runs tempadmin's commands through `client`; binds the end-elevated
    /// commands only when `end_elevated` is on.
    pub fn new(client: JumpCloudClient, end_elevated: EndElevated) -> Self {
        Self {
            client,
            end_elevated: end_elevated != EndElevated::Off,
            ids: Mutex::new(HashMap::new()),
        }
    }

    fn purposes(&self) -> &'static [Purpose] {
        purposes(self.end_elevated)
    }

    async fn id_of(&self, spec: &CommandSpec) -> Result<String, DirectoryError> {
        if let Some(id) = self
            .ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(spec.name)
        {
            return Ok(id.clone());
        }
        let Some(id) = self.client.command_id(spec.name).await? else {
            return Err(DirectoryError::Permanent(format!(
                "the JumpCloud command {} does not exist; run `tempadmin jumpcloud install-commands`",
                spec.name
            )));
        };
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(spec.name, id.clone());
        Ok(id)
    }

    async fn associate(
        &self,
        os: DeviceOs,
        system: &SystemId,
        op: &str,
    ) -> Result<(), DirectoryError> {
        for purpose in self.purposes() {
            let id = self.id_of(&spec(os, *purpose)).await?;
            let path = format!("/api/v2/commands/{}/associations", segment(&id));
            let body = json!({ "op": op, "type": "system", "id": system.as_str() });
            match self
                .client
                .send(self.client.call(Method::POST, &path).json(&body))
                .await
            {
                Ok(_) => {}
                // Bound already (a retried step), or gone already: the
                // state asked for is there.
                Err(DirectoryError::Conflict) if op == "add" => {}
                Err(DirectoryError::NotFound) if op == "remove" => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn trigger(&self, spec: &CommandSpec, variables: Value) -> Result<(), DirectoryError> {
        let path = format!("/api/command/trigger/{}", spec.trigger);
        self.client
            .send(self.client.call(Method::POST, &path).json(&variables))
            .await?;
        Ok(())
    }
}

#[async_trait]
impl DeviceCommands for JumpCloudDevices {
    async fn bind(&self, os: DeviceOs, system: &SystemId) -> Result<(), DirectoryError> {
        self.associate(os, system, "add").await
    }

    async fn notify(
        &self,
        os: DeviceOs,
        system: &SystemId,
        notice: &DeviceNotice,
    ) -> Result<(), DirectoryError> {
        // Flat strings only: each key becomes one environment variable.
        let variables = json!({
            "targetSystemId": system.as_str(),
            "noticeTitle": notice.title,
            "noticeMessage": notice.message,
        });
        self.trigger(&spec(os, Purpose::Notice), variables).await
    }

    async fn username(&self, user: &JcUserId) -> Result<String, DirectoryError> {
        #[derive(Deserialize)]
        struct User {
            #[serde(default)]
            username: String,
        }
        let path = format!("/api/systemusers/{}", segment(user.as_str()));
        let (found, _): (User, _) = self
            .client
            .get_json(self.client.call(Method::GET, &path))
            .await?;
        Ok(found.username)
    }

    async fn end_elevated(
        &self,
        os: DeviceOs,
        system: &SystemId,
        username: &str,
        mode: EndElevated,
    ) -> Result<(), DirectoryError> {
        let variables = json!({
            "targetSystemId": system.as_str(),
            "userName": username,
            "endMode": mode.as_str(),
        });
        self.trigger(&spec(os, Purpose::EndElevated), variables)
            .await
    }

    async fn unbind(&self, os: DeviceOs, system: &SystemId) -> Result<(), DirectoryError> {
        self.associate(os, system, "remove").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_os_has_a_notice_and_an_end_command_run_as_jumpcloud_requires() {
        let specs = command_specs();
        for os in DeviceOs::ALL {
            for purpose in [Purpose::Notice, Purpose::EndElevated] {
                let spec = spec(os, purpose);
                let body = spec.body();
                assert_eq!(body["commandType"], os.command_type());
                assert_eq!(body["launchType"], "trigger");
                assert!(body["trigger"]
                    .as_str()
                    .unwrap()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric()));
                match os {
                    DeviceOs::Windows => assert_eq!(body["shell"], "powershell"),
                    _ => assert_eq!(body["user"], ROOT_USER),
                }
                let ttl = body["timeToLiveSeconds"].as_u64().unwrap();
                assert!(ttl <= END_TTL_SECONDS, "{}", spec.name);
                assert!(spec.script.contains("targetSystemId"), "{}", spec.name);
            }
        }
        assert_eq!(specs.len(), 6);
        const { assert!(NOTICE_TTL_SECONDS <= 600) };
    }
}
