//! The agent command API's wire types, shared by the conductor (client) and
//! `ferric-agent` (server). The shape is ironic-python-agent's: a command is
//! `POST /v1/commands/?agent_token=…[&wait=true]` with
//! `{"name": "<extension>.<command>", "params": {…}}`, answered with a
//! [`CommandResult`] that `GET /v1/commands/{id}` returns again later.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The agent's default listening port.
pub const AGENT_PORT: u16 = 9999;

/// Where a command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommandStatus {
    Running,
    Succeeded,
    Failed,
}

/// A command as the agent reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    pub id: String,
    pub command_name: String,
    pub command_status: CommandStatus,
    /// Why it failed: `{"type": …, "message": …, "details": …}` (IPA's
    /// error serialisation) or a plain string.
    #[serde(default)]
    pub command_error: Option<Value>,
    /// What it produced; for a running `write_image`, ferric's agent puts
    /// its progress here (`{"progress": {"written": …, "total": …}}`).
    #[serde(default)]
    pub command_result: Option<Value>,
}

impl CommandResult {
    /// A readable message for a failed command.
    pub fn error_message(&self) -> String {
        match &self.command_error {
            Some(Value::Object(error)) => error
                .get("message")
                .or_else(|| error.get("details"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| Value::Object(error.clone()).to_string()),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => format!("command {} failed without saying why", self.command_name),
        }
    }
}

/// A request to run a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRequest {
    pub name: String,
    pub params: serde_json::Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_ipa_style_failure() {
        let text = r#"{"id":"x","command_name":"write_image","command_status":"FAILED",
            "command_error":{"type":"ImageChecksumError","message":"checksum mismatch","code":500},
            "command_result":null}"#;
        let result: CommandResult = serde_json::from_str(text).expect("parse");
        assert_eq!(result.command_status, CommandStatus::Failed);
        assert_eq!(result.error_message(), "checksum mismatch");
    }
}
