//! The client's error type and the extraction of a BMC's error message
//! (`error.@Message.ExtendedInfo`) from a response body.

use serde_json::Value;

/// What can go wrong talking to a Redfish BMC. Messages name the method and
/// URL, never a password or token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedfishError {
    /// The configuration is unusable (bad address, unreadable CA bundle).
    #[error("invalid Redfish configuration: {0}")]
    InvalidConfig(String),
    /// No connection could be made (refused, unreachable, TLS failure).
    #[error("{method} {url}: cannot connect: {detail}")]
    Connect { method: String, url: String, detail: String },
    /// The request took longer than the configured timeout.
    #[error("{method} {url}: no answer within {seconds} s")]
    Timeout { method: String, url: String, seconds: f64 },
    /// 401 or 403: the credentials or the session were refused.
    #[error("{method} {url}: authentication failed (HTTP {status}){message}; check the username, password and auth type")]
    Auth { method: String, url: String, status: u16, message: String },
    /// 404.
    #[error("{method} {url}: not found (HTTP 404){message}")]
    NotFound { method: String, url: String, message: String },
    /// Any other 4xx or 5xx.
    #[error("{method} {url}: HTTP {status}: {message}")]
    Http { method: String, url: String, status: u16, message: String },
    /// A body that should be JSON is not, or lacks what is needed.
    #[error("{method} {url}: unexpected response: {detail}")]
    InvalidResponse { method: String, url: String, detail: String },
    /// No system could be chosen.
    #[error("{0}")]
    System(String),
    /// The BMC does not offer what was asked for.
    #[error("{0}")]
    Unsupported(String),
    /// A task ended in failure.
    #[error("task {url} ended {state}: {message}")]
    TaskFailed { url: String, state: String, message: String },
    /// A task did not end in time.
    #[error("task {url} did not finish within {seconds} s")]
    TaskTimeout { url: String, seconds: f64 },
}

impl RedfishError {
    /// Whether trying again later may succeed: connection problems,
    /// timeouts, and 5xx/429 answers.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::TaskTimeout { .. } => true,
            Self::Http { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// The HTTP status, for errors that come from one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Auth { status, .. } | Self::Http { status, .. } => Some(*status),
            Self::NotFound { .. } => Some(404),
            _ => None,
        }
    }
}

/// At most this many characters of a non-JSON body go into an error.
const EXCERPT_CHARS: usize = 200;

/// The most useful message in an error body: the `Message`s of
/// `error.@Message.ExtendedInfo` (joined with "; "), else `error.message`,
/// else `error.code`, else an excerpt of the body itself. None for an empty
/// body. Never panics, whatever the bytes.
pub fn error_message(body: &[u8]) -> Option<String> {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if let Some(message) = json_error_message(&value) {
            return Some(message);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return None;
    }
    Some(excerpt(&text, EXCERPT_CHARS))
}

/// The message of a Redfish error object, if it has one.
pub fn json_error_message(value: &Value) -> Option<String> {
    let error = value.get("error").unwrap_or(value);
    let extended = extended_info_messages(error);
    if !extended.is_empty() {
        return Some(extended.join("; "));
    }
    for key in ["message", "code"] {
        if let Some(text) = error.get(key).and_then(Value::as_str).filter(|t| !t.trim().is_empty())
        {
            return Some(text.trim().to_string());
        }
    }
    None
}

/// The `Message` of each entry of `@Message.ExtendedInfo` (or `Messages`,
/// as in tasks), with its `Resolution` when given.
pub fn extended_info_messages(object: &Value) -> Vec<String> {
    let entries = ["@Message.ExtendedInfo", "Messages"]
        .iter()
        .find_map(|key| object.get(key).and_then(Value::as_array));
    let Some(entries) = entries else { return Vec::new() };
    entries
        .iter()
        .filter_map(|entry| {
            let message = entry.get("Message").and_then(Value::as_str)?.trim();
            if message.is_empty() {
                return None;
            }
            match entry.get("Resolution").and_then(Value::as_str).map(str::trim) {
                Some(resolution) if !resolution.is_empty() && resolution != "None" => {
                    Some(format!("{message} (resolution: {resolution})"))
                }
                _ => Some(message.to_string()),
            }
        })
        .collect()
}

/// The first `max` characters of `text`, with "…" when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn extended_info_wins() {
        let body = json!({"error": {
        "code": "Base.1.8.GeneralError", "message": "A general error has occurred.",
        "@Message.ExtendedInfo": [
            {"MessageId": "Base.1.8.PropertyValueNotInList",
             "Message": "The value Floppy for BootSourceOverrideTarget is not in the list.",
             "Resolution": "Choose a value from the enumeration list."},
            {"Message": "  "}, {"NoMessage": 1}, "junk",
            {"Message": "Second.", "Resolution": "None"}
        ]}});
        assert_eq!(
            error_message(body.to_string().as_bytes()).as_deref(),
            Some(
                "The value Floppy for BootSourceOverrideTarget is not in the list. \
                 (resolution: Choose a value from the enumeration list.); Second."
            )
        );
    }

    #[test]
    fn falls_back_to_message_code_and_text() {
        let message = |body: &str| error_message(body.as_bytes());
        assert_eq!(
            message(r#"{"error": {"message": "boom", "code": "X"}}"#).as_deref(),
            Some("boom")
        );
        assert_eq!(message(r#"{"error": {"code": "Base.1.0.X"}}"#).as_deref(), Some("Base.1.0.X"));
        assert_eq!(
            message(
                r#"{"error": {"@Message.ExtendedInfo": {"Message": "not a list"}, "message": "m"}}"#
            )
            .as_deref(),
            Some("m")
        );
        assert_eq!(
            message("<html>\n<b>Bad   gateway</b></html>").as_deref(),
            Some("<html> <b>Bad gateway</b></html>")
        );
        assert_eq!(message("[1, 2]").as_deref(), Some("[1, 2]"));
        assert_eq!(message("   ").as_deref(), None);
        let long = "é".repeat(500);
        let cut = message(&long).expect("text");
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
    }

    #[test]
    fn retryable_errors() {
        let http = |status| RedfishError::Http {
            method: "GET".into(),
            url: "u".into(),
            status,
            message: String::new(),
        };
        assert!(http(503).is_retryable() && http(429).is_retryable());
        assert!(!http(400).is_retryable());
        assert!(RedfishError::Timeout { method: "GET".into(), url: "u".into(), seconds: 1.0 }
            .is_retryable());
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = error_message(&body);
        }

        #[test]
        fn any_text_gives_a_bounded_message(body in "\\PC{0,800}") {
            if let Some(message) = error_message(body.as_bytes()) {
                prop_assert!(message.chars().count() <= EXCERPT_CHARS + 1 || serde_json::from_str::<Value>(&body).is_ok());
            }
        }
    }
}
