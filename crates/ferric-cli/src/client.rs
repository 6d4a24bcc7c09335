//! A small client for ferric's (Ironic-compatible) API: JSON in and out,
//! the microversion header on every request, and Ironic's error envelope
//! turned into a readable error.

use reqwest::Method;
use serde_json::Value;

/// The microversion the CLI speaks.
pub const API_VERSION: &str = "1.115";

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{message} (HTTP {status})")]
    Api { status: u16, message: String },
    /// The server could not be reached.
    #[error("cannot reach the ferric API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The answer was not what an API answers.
    #[error("unexpected response from {url}: {detail}")]
    Protocol { url: String, detail: String },
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The API endpoint and how to talk to it.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    version: String,
    token: Option<String>,
}

impl Client {
    pub fn new(base: &str, version: Option<&str>, token: Option<String>) -> Client {
        Client {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            version: version.unwrap_or(API_VERSION).to_owned(),
            token,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request; `path` starts with `/v1/`. Returns the JSON body
    /// (`Null` for empty bodies).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method, &url)
            .header("X-OpenStack-Ironic-API-Version", &self.version)
            .header("Accept", "application/json");
        if let Some(token) = &self.token {
            request = request.header("X-Auth-Token", token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|error| unreachable(&url, &error))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|error| unreachable(&url, &error))?;
        if !status.is_success() {
            return Err(ClientError::Api {
                status: status.as_u16(),
                message: error_message(&bytes),
            });
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|error| ClientError::Protocol { url, detail: error.to_string() })
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::DELETE, path, None).await
    }

    /// All items of a collection, following `next` links.
    pub async fn list_all(&self, path: &str, key: &str) -> Result<Vec<Value>, ClientError> {
        let mut items = Vec::new();
        let mut next = Some(path.to_owned());
        while let Some(path) = next.take() {
            let page = self.get(&path).await?;
            if let Some(list) = page[key].as_array() {
                items.extend(list.iter().cloned());
            }
            next = page["next"]
                .as_str()
                .and_then(|url| url.find("/v1/").map(|at| url[at..].to_owned()));
        }
        Ok(items)
    }
}

/// The root cause of a transport error ("Connection refused (os error 111)"),
/// without reqwest's repetition of the URL at every level.
fn unreachable(url: &str, error: &reqwest::Error) -> ClientError {
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    ClientError::Unreachable { url: url.to_owned(), reason: cause.to_string() }
}

/// The human message inside Ironic's error envelope.
fn error_message(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let Ok(body) = serde_json::from_str::<Value>(&text) else {
        return text.trim().to_owned();
    };
    let inner = &body["error_message"];
    let parsed = match inner {
        Value::String(encoded) => {
            serde_json::from_str::<Value>(encoded).unwrap_or(Value::String(encoded.clone()))
        }
        other => other.clone(),
    };
    for key in ["faultstring", "description", "message", "title"] {
        if let Some(message) = parsed[key].as_str() {
            return message.to_owned();
        }
    }
    match parsed {
        Value::String(message) => message,
        Value::Null => text.trim().to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_unwrapped() {
        let envelope = br#"{"error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Node x could not be found.\", \"debuginfo\": null}"}"#;
        assert_eq!(error_message(envelope), "Node x could not be found.");
        assert_eq!(error_message(b"plain text"), "plain text");
    }
}
