//! The conductor's client for a ramdisk agent's command API (ferric's own
//! agent, or ironic-python-agent: the same protocol, see
//! [`ferric_types::agent`]). The agent's address and token come from the
//! node: `driver_internal_info.agent_url` (its heartbeat's `callback_url`)
//! and `agent_secret_token` (issued at lookup).

use std::time::Duration;

use ferric_types::agent::{CommandRequest, CommandResult};
use ferric_types::Node;
use serde_json::{Map, Value};

use crate::error::DriverError;

/// How long one request to the agent may take (`wait=true` commands wait
/// for the command itself, up to this).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to one node's agent.
#[derive(Debug, Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl AgentClient {
    /// The agent of `node`, if it has called back (address and token known).
    pub fn for_node(node: &Node) -> Result<AgentClient, DriverError> {
        let info = &node.driver_internal_info;
        let base = info.get("agent_url").and_then(Value::as_str).ok_or_else(|| {
            DriverError::Hardware(format!(
                "Node {} has no agent: its ramdisk has not called back",
                node.uuid
            ))
        })?;
        let token = info.get("agent_secret_token").and_then(Value::as_str).ok_or_else(|| {
            DriverError::Hardware(format!("Node {} has no agent token", node.uuid))
        })?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|error| DriverError::Hardware(format!("HTTP client: {error}")))?;
        Ok(AgentClient { http, base: base.trim_end_matches('/').to_owned(), token: token.into() })
    }

    /// Starts `name` (e.g. `standby.write_image`); with `wait`, returns once
    /// it finished.
    pub async fn run(
        &self,
        name: &str,
        params: Map<String, Value>,
        wait: bool,
    ) -> Result<CommandResult, DriverError> {
        let request = CommandRequest { name: name.to_owned(), params };
        let response = self
            .http
            .post(format!("{}/v1/commands/", self.base))
            .query(&[
                ("agent_token", self.token.as_str()),
                ("wait", if wait { "true" } else { "false" }),
            ])
            .json(&request)
            .send()
            .await
            .map_err(|error| self.unreachable(name, error))?;
        self.decode(name, response).await
    }

    /// The state of an earlier command.
    pub async fn get(&self, id: &str) -> Result<CommandResult, DriverError> {
        let response = self
            .http
            .get(format!("{}/v1/commands/{id}", self.base))
            .query(&[("agent_token", self.token.as_str())])
            .send()
            .await
            .map_err(|error| self.unreachable("get_command", error))?;
        self.decode("get_command", response).await
    }

    fn unreachable(&self, what: &str, error: reqwest::Error) -> DriverError {
        let error = error.without_url();
        if error.is_timeout() {
            DriverError::Timeout(format!("agent at {} did not answer {what}", self.base))
        } else {
            DriverError::Hardware(format!("agent at {} unreachable for {what}: {error}", self.base))
        }
    }

    async fn decode(
        &self,
        what: &str,
        response: reqwest::Response,
    ) -> Result<CommandResult, DriverError> {
        let status = response.status();
        let body = response.bytes().await.map_err(|error| self.unreachable(what, error))?;
        if !status.is_success() {
            let text = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|value| {
                    value
                        .get("faultstring")
                        .or_else(|| value.get("message"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect());
            return Err(DriverError::Hardware(format!(
                "agent at {} refused {what} ({status}): {text}",
                self.base
            )));
        }
        serde_json::from_slice(&body).map_err(|error| {
            DriverError::Hardware(format!(
                "agent at {} answered {what} with bad JSON: {error}",
                self.base
            ))
        })
    }
}
