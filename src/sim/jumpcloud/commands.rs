//! JumpCloud commands in the fake: the device side (DEVICE.md, "Commands").
//! Commands are created, found by name, read and updated (`/api/commands`),
//! bound to systems through v2 associations
//! (`/api/v2/commands/{id}/associations`), and run by a trigger
//! (`POST /api/command/trigger/{name}`) on every system bound to each
//! command with that trigger, the trigger's variables becoming the run's
//! environment. Each run is recorded with a result
//! (`GET /api/commandresults`).
//!
//! Strict where JumpCloud is: a `mac` or `linux` command without `user` is
//! refused, as is a trigger body that is not a flat object of strings, an
//! unknown command or system is 404, and `timeout` is a string of seconds.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::{error, graph_object, paging, param, with_total_count, FakeJumpCloud};

/// The fields of a command the fake keeps (what `POST /api/commands` may set).
const FIELDS: &[&str] = &[
    "name",
    "command",
    "commandType",
    "user",
    "shell",
    "launchType",
    "trigger",
    "timeout",
    "timeToLiveSeconds",
    "sudo",
    "schedule",
    "scheduleRepeatType",
    "description",
];

/// What the fake knows about commands.
#[derive(Debug, Default)]
pub(super) struct Commands {
    /// Commands by creation order, each its stored JSON with `_id`.
    commands: Vec<Map<String, Value>>,
    /// `(command id, system id)` associations.
    bindings: Vec<(String, String)>,
    /// Every run a trigger started.
    runs: Vec<CommandRun>,
    next_id: u64,
}

/// One run of a command on one system, as a trigger started it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRun {
    /// The command's `_id`.
    pub command_id: String,
    /// The command's `name`.
    pub command_name: String,
    /// Its `commandType`: `windows`, `mac` or `linux`.
    pub command_type: String,
    /// The system it ran on.
    pub system_id: String,
    /// The trigger's variables: the script's environment.
    pub env: BTreeMap<String, String>,
}

impl CommandRun {
    /// Whether a tempadmin script would act on this run: its
    /// `targetSystemId` is the system's own id (the script compares it with
    /// the agent's `systemKey` and exits otherwise).
    pub fn targets_its_system(&self) -> bool {
        self.env.get("targetSystemId") == Some(&self.system_id)
    }
}

impl FakeJumpCloud {
    /// Every command, as stored (with `_id`).
    pub fn commands(&self) -> Vec<Value> {
        self.lock()
            .commands
            .commands
            .iter()
            .cloned()
            .map(Value::Object)
            .collect()
    }

    /// Every command run so far, in order.
    pub fn command_runs(&self) -> Vec<CommandRun> {
        self.lock().commands.runs.clone()
    }

    /// The systems bound to the command with this id.
    pub fn command_systems(&self, command_id: &str) -> Vec<String> {
        self.lock()
            .commands
            .bindings
            .iter()
            .filter(|(c, _)| c == command_id)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Routes the command calls; `None` for any other path.
    pub(super) fn route_commands(
        &self,
        method: &str,
        segments: &[&str],
        params: &[(String, String)],
        body: Option<&Value>,
    ) -> Option<Response> {
        Some(match (method, segments) {
            ("GET", ["api", "systemusers", id]) => self.get_user(id),
            ("GET", ["api", "commands"]) => self.list_commands(params),
            ("POST", ["api", "commands"]) => self.create_command(body),
            ("GET", ["api", "commands", id]) => self.get_command(id),
            ("PUT", ["api", "commands", id]) => self.update_command(id, body),
            ("GET", ["api", "v2", "commands", id, "associations"]) => {
                self.command_associations(id, params)
            }
            ("POST", ["api", "v2", "commands", id, "associations"]) => {
                self.change_command_association(id, body)
            }
            ("POST", ["api", "command", "trigger", name]) => self.run_trigger(name, body),
            ("GET", ["api", "commandresults"]) => self.command_results(params),
            _ => return None,
        })
    }

    fn get_user(&self, id: &str) -> Response {
        let inner = self.lock();
        match inner.users.iter().find(|u| u.id == id) {
            Some(user) => Json(super::user_json(user)).into_response(),
            None => error(StatusCode::NOT_FOUND, "User not found"),
        }
    }

    fn list_commands(&self, params: &[(String, String)]) -> Response {
        let (limit, skip) = match paging(params) {
            Ok(paging) => paging,
            Err(message) => return error(StatusCode::BAD_REQUEST, &message),
        };
        let mut name = None;
        for (_, value) in params.iter().filter(|(k, _)| k == "filter") {
            match value.splitn(3, ':').collect::<Vec<_>>().as_slice() {
                ["name", "$eq", wanted] => name = Some(wanted.to_string()),
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("unsupported filter {value:?} (the simulator knows name:$eq:)"),
                    )
                }
            }
        }
        let inner = self.lock();
        let matching: Vec<&Map<String, Value>> = inner
            .commands
            .commands
            .iter()
            .filter(|c| name.as_deref().is_none_or(|n| c["name"] == n))
            .collect();
        let results: Vec<Value> = matching
            .iter()
            .skip(skip)
            .take(limit)
            .map(|c| Value::Object((*c).clone()))
            .collect();
        Json(json!({ "totalCount": matching.len(), "results": results })).into_response()
    }

    fn create_command(&self, body: Option<&Value>) -> Response {
        let Some(Value::Object(body)) = body else {
            return error(StatusCode::BAD_REQUEST, "the body must be a JSON object");
        };
        let mut command: Map<String, Value> = body
            .iter()
            .filter(|(k, _)| FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Err(message) = check_command(&command) {
            return error(StatusCode::BAD_REQUEST, &message);
        }
        let mut inner = self.lock();
        inner.commands.next_id += 1;
        let id = format!("{:024x}", 0x6c00_0000_u64 + inner.commands.next_id);
        command.insert("_id".into(), Value::String(id));
        inner.commands.commands.push(command.clone());
        Json(Value::Object(command)).into_response()
    }

    fn get_command(&self, id: &str) -> Response {
        let inner = self.lock();
        match inner.commands.commands.iter().find(|c| c["_id"] == id) {
            Some(command) => Json(Value::Object(command.clone())).into_response(),
            None => error(StatusCode::NOT_FOUND, "Command not found"),
        }
    }

    fn update_command(&self, id: &str, body: Option<&Value>) -> Response {
        let Some(Value::Object(body)) = body else {
            return error(StatusCode::BAD_REQUEST, "the body must be a JSON object");
        };
        let mut inner = self.lock();
        let Some(stored) = inner.commands.commands.iter_mut().find(|c| c["_id"] == id) else {
            return error(StatusCode::NOT_FOUND, "Command not found");
        };
        let mut updated = stored.clone();
        for (key, value) in body.iter().filter(|(k, _)| FIELDS.contains(&k.as_str())) {
            updated.insert(key.clone(), value.clone());
        }
        if let Err(message) = check_command(&updated) {
            return error(StatusCode::BAD_REQUEST, &message);
        }
        *stored = updated.clone();
        Json(Value::Object(updated)).into_response()
    }

    fn command_associations(&self, id: &str, params: &[(String, String)]) -> Response {
        let (limit, skip) = match paging(params) {
            Ok(paging) => paging,
            Err(message) => return error(StatusCode::BAD_REQUEST, &message),
        };
        match param(params, "targets") {
            Some("system") => {}
            Some("system_group") => return with_total_count(Vec::new(), 0),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "targets must be system or system_group",
                )
            }
        }
        let inner = self.lock();
        if !inner.commands.commands.iter().any(|c| c["_id"] == id) {
            return error(StatusCode::NOT_FOUND, "Command not found");
        }
        let systems: Vec<Value> = inner
            .commands
            .bindings
            .iter()
            .filter(|(c, _)| c == id)
            .map(|(_, s)| json!({ "attributes": null, "to": graph_object(s, "system") }))
            .collect();
        let total = systems.len();
        with_total_count(systems.into_iter().skip(skip).take(limit).collect(), total)
    }

    fn change_command_association(&self, id: &str, body: Option<&Value>) -> Response {
        let Some(Value::Object(body)) = body else {
            return error(StatusCode::BAD_REQUEST, "the body must be a JSON object");
        };
        let op = match body.get("op").and_then(Value::as_str) {
            Some(op @ ("add" | "remove")) => op,
            _ => return error(StatusCode::BAD_REQUEST, "op must be add or remove"),
        };
        if body.get("type").and_then(Value::as_str) != Some("system") {
            return error(
                StatusCode::BAD_REQUEST,
                "the simulator binds commands to systems only (type system)",
            );
        }
        let Some(system) = body
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        else {
            return error(StatusCode::BAD_REQUEST, "id is required");
        };
        let mut inner = self.lock();
        if !inner.commands.commands.iter().any(|c| c["_id"] == id) {
            return error(StatusCode::NOT_FOUND, "Command not found");
        }
        if !inner.systems.iter().any(|s| s.id == system) {
            return error(StatusCode::NOT_FOUND, "System not found");
        }
        let pair = (id.to_owned(), system.to_owned());
        let existing = inner.commands.bindings.iter().position(|b| *b == pair);
        match (op, existing) {
            ("add", Some(_)) => return error(StatusCode::CONFLICT, "Association already exists"),
            ("add", None) => inner.commands.bindings.push(pair),
            ("remove", Some(index)) => {
                inner.commands.bindings.remove(index);
            }
            _ => return error(StatusCode::NOT_FOUND, "Association not found"),
        }
        StatusCode::NO_CONTENT.into_response()
    }

    /// Runs every command whose trigger is `name` on every system bound to
    /// it, with the body's keys as the environment.
    fn run_trigger(&self, name: &str, body: Option<&Value>) -> Response {
        let env = match body {
            None => BTreeMap::new(),
            Some(Value::Object(variables)) => {
                let mut env = BTreeMap::new();
                for (key, value) in variables {
                    let Value::String(text) = value else {
                        // JumpCloud passes top-level values as environment
                        // variables; anything nested has no such form.
                        return error(
                            StatusCode::BAD_REQUEST,
                            &format!("variable {key:?} must be a string"),
                        );
                    };
                    env.insert(key.clone(), text.clone());
                }
                env
            }
            Some(_) => return error(StatusCode::BAD_REQUEST, "the body must be a JSON object"),
        };
        let mut inner = self.lock();
        let commands: Vec<(String, String, String)> = inner
            .commands
            .commands
            .iter()
            .filter(|c| c["launchType"] == "trigger" && c["trigger"] == name)
            .map(|c| {
                let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                (text("_id"), text("name"), text("commandType"))
            })
            .collect();
        let mut triggered = Vec::new();
        for (command_id, command_name, command_type) in commands {
            let systems: Vec<String> = inner
                .commands
                .bindings
                .iter()
                .filter(|(c, _)| *c == command_id)
                .map(|(_, s)| s.clone())
                .collect();
            for system_id in systems {
                inner.commands.runs.push(CommandRun {
                    command_id: command_id.clone(),
                    command_name: command_name.clone(),
                    command_type: command_type.clone(),
                    system_id,
                    env: env.clone(),
                });
            }
            triggered.push(Value::String(command_name));
        }
        Json(json!({ "triggered": triggered })).into_response()
    }

    fn command_results(&self, params: &[(String, String)]) -> Response {
        let (limit, skip) = match paging(params) {
            Ok(paging) => paging,
            Err(message) => return error(StatusCode::BAD_REQUEST, &message),
        };
        let inner = self.lock();
        let results: Vec<Value> = inner
            .commands
            .runs
            .iter()
            .enumerate()
            .map(|(n, run)| {
                let hostname = inner
                    .systems
                    .iter()
                    .find(|s| s.id == run.system_id)
                    .map_or("", |s| s.hostname.as_str());
                json!({
                    "_id": format!("{:024x}", 0x7e00_0000_u64 + n as u64),
                    "name": run.command_name,
                    "system": hostname,
                    "systemId": run.system_id,
                    "exitCode": 0,
                    "workflowId": format!("{:024x}", 0x7f00_0000_u64 + n as u64),
                })
            })
            .collect();
        let total = results.len();
        let page: Vec<Value> = results.into_iter().skip(skip).take(limit).collect();
        Json(json!({ "totalCount": total, "results": page })).into_response()
    }
}

/// What JumpCloud refuses in a command.
fn check_command(command: &Map<String, Value>) -> Result<(), String> {
    let text = |k: &str| command.get(k).and_then(Value::as_str);
    for required in ["name", "command", "commandType"] {
        if text(required).is_none_or(str::is_empty) {
            return Err(format!("{required} is required"));
        }
    }
    match text("commandType") {
        Some("mac" | "linux") => {
            if text("user").is_none_or(str::is_empty) {
                return Err("user is required for mac and linux commands".into());
            }
        }
        Some("windows") => {
            if let Some(shell) = command.get("shell") {
                if !matches!(shell.as_str(), Some("powershell" | "cmd")) {
                    return Err("shell must be powershell or cmd".into());
                }
            }
        }
        _ => return Err("commandType must be windows, mac or linux".into()),
    }
    match text("launchType") {
        None | Some("manual") => {}
        Some("trigger") => {
            if text("trigger").is_none_or(str::is_empty) {
                return Err("a trigger command needs a trigger name".into());
            }
        }
        Some(other) => return Err(format!("launchType {other:?} is not supported here")),
    }
    if let Some(timeout) = command.get("timeout") {
        let seconds = timeout.as_str().and_then(|t| t.parse::<u64>().ok());
        if seconds.is_none_or(|s| s > 86_400) {
            return Err("timeout must be a string of at most 86400 seconds".into());
        }
    }
    if let Some(ttl) = command.get("timeToLiveSeconds") {
        if !ttl.is_u64() {
            return Err("timeToLiveSeconds must be a non-negative integer".into());
        }
    }
    Ok(())
}
