//! The agent's side of the ramdisk API: `GET /v1/lookup` and
//! `POST /v1/heartbeat/{node}` (Ironic's, which ferric serves), with the
//! one-time agent token.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

/// The API microversion the agent speaks: agent tokens (1.62), agent
/// status in heartbeats (1.72).
const API_VERSION: &str = "1.72";

/// What went wrong talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the API at {url} could not be reached: {reason}")]
    Unreachable { url: String, reason: String },
    /// No node has these addresses, or it is not waiting for an agent.
    #[error("no node is waiting for an agent with these addresses")]
    NotFound,
    /// The node is busy; try again shortly.
    #[error("the node is locked by a conductor")]
    Locked,
    /// The API refused the request (bad token, node no longer expects us).
    #[error("the API refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
}

/// What a lookup told the agent.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub uuid: String,
    /// The node's `properties` (root device hints live there).
    pub properties: Value,
    /// The token for heartbeats and for checking the conductor's calls;
    /// `None` if another agent already took it.
    pub token: Option<String>,
    pub heartbeat_timeout: Duration,
}

/// A client for the ferric (or Ironic) API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
}

fn message_of(body: &[u8]) -> String {
    // Ironic's errors: {"error_message": "{\"faultstring\": …}"}.
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let inner = value.get("error_message").and_then(Value::as_str).unwrap_or_default();
    serde_json::from_str::<Value>(inner)
        .ok()
        .and_then(|v| v.get("faultstring").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect())
}

impl ApiClient {
    pub fn new(base: &str, insecure: bool) -> Result<ApiClient, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .danger_accept_invalid_certs(insecure)
            .build()
            .map_err(|error| ClientError::Unreachable {
                url: base.into(),
                reason: error.to_string(),
            })?;
        Ok(ApiClient { http, base: base.trim_end_matches('/').to_owned() })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, error: reqwest::Error) -> ClientError {
        ClientError::Unreachable { url: self.base.clone(), reason: error.without_url().to_string() }
    }

    /// Finds the node that owns one of `macs`.
    pub async fn lookup(&self, macs: &[String]) -> Result<NodeInfo, ClientError> {
        let response = self
            .http
            .get(format!("{}/v1/lookup", self.base))
            .query(&[("addresses", macs.join(","))])
            .header("X-OpenStack-Ironic-API-Version", API_VERSION)
            .send()
            .await
            .map_err(|error| self.unreachable(error))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|error| self.unreachable(error))?;
        match status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(ClientError::NotFound),
            StatusCode::CONFLICT => return Err(ClientError::Locked),
            other => {
                return Err(ClientError::Refused {
                    status: other.as_u16(),
                    message: message_of(&body),
                })
            }
        }
        let value: Value = serde_json::from_slice(&body).map_err(|error| ClientError::Refused {
            status: status.as_u16(),
            message: format!("lookup answer is not JSON: {error}"),
        })?;
        let uuid = value
            .pointer("/node/uuid")
            .and_then(Value::as_str)
            .ok_or_else(|| ClientError::Refused {
                status: status.as_u16(),
                message: "lookup answer has no node uuid".into(),
            })?
            .to_owned();
        let token = value
            .pointer("/config/agent_token")
            .and_then(Value::as_str)
            .filter(|token| *token != "******")
            .map(str::to_owned);
        let heartbeat_timeout =
            value.pointer("/config/heartbeat_timeout").and_then(Value::as_u64).unwrap_or(300);
        Ok(NodeInfo {
            uuid,
            properties: value.pointer("/node/properties").cloned().unwrap_or(Value::Null),
            token,
            heartbeat_timeout: Duration::from_secs(heartbeat_timeout.max(10)),
        })
    }

    /// Reports that the agent is alive at `callback_url`.
    pub async fn heartbeat(
        &self,
        node: &NodeInfo,
        callback_url: &str,
        status: Option<(&str, &str)>,
    ) -> Result<(), ClientError> {
        let mut body = json!({
            "callback_url": callback_url,
            "agent_version": concat!("ferric-agent ", env!("CARGO_PKG_VERSION")),
            "agent_token": node.token,
        });
        if let Some((state, message)) = status {
            body["agent_status"] = json!(state);
            body["agent_status_message"] = json!(message);
        }
        let response = self
            .http
            .post(format!("{}/v1/heartbeat/{}", self.base, node.uuid))
            .header("X-OpenStack-Ironic-API-Version", API_VERSION)
            .json(&body)
            .send()
            .await
            .map_err(|error| self.unreachable(error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.bytes().await.map_err(|error| self.unreachable(error))?;
        Err(match status {
            StatusCode::CONFLICT => ClientError::Locked,
            StatusCode::NOT_FOUND => ClientError::NotFound,
            other => ClientError::Refused { status: other.as_u16(), message: message_of(&body) },
        })
    }
}
