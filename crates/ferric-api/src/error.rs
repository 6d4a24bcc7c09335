//! The one place where errors become HTTP responses, in Ironic's envelope:
//! `{"error_message": "<JSON text with faultcode, faultstring, debuginfo>"}`.

use axum::response::{IntoResponse, Response};
use ferric_conductor_api::ConductorError;
use ferric_store::StoreError;
use http::StatusCode;

/// An API failure. Each variant fixes the status code; the message is what
/// the client sees as `faultstring`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is wrong (bad field, bad value, illegal verb).
    #[error("{0}")]
    BadRequest(String),
    /// 403: forbidden by the resource's own state (e.g. `protected`).
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 406: a microversion problem (unsupported version, field or verb
    /// newer than the requested version).
    #[error("{0}")]
    NotAcceptable(String),
    /// 409: conflicts (locked node, duplicates, resource in use).
    #[error("{0}")]
    Conflict(String),
    /// 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 503: try again later (no conductor, hardware not answering).
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected store failure. The details are logged;
    /// the client gets a generic message.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn bad(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::NotFound { .. } => Self::NotFound(error.to_string()),
            StoreError::Duplicate { .. } | StoreError::InUse { .. } | StoreError::Stale { .. } => {
                Self::Conflict(error.to_string())
            }
            StoreError::UnsupportedUrl(_)
            | StoreError::Corrupt { .. }
            | StoreError::Migrate(_)
            | StoreError::Database(_) => {
                tracing::error!(error = %error_chain(&error), "store failure");
                Self::Internal("the request failed because of a database error".into())
            }
        }
    }
}

impl From<ConductorError> for ApiError {
    fn from(error: ConductorError) -> Self {
        let message = error.to_string();
        match error {
            ConductorError::NodeNotFound { .. } => Self::NotFound(message),
            ConductorError::NodeLocked { .. } | ConductorError::Conflict(_) => {
                Self::Conflict(message)
            }
            ConductorError::Invalid(_) | ConductorError::Unsupported(_) => {
                Self::BadRequest(message)
            }
            ConductorError::HardwareUnavailable(_) | ConductorError::NoConductor(_) => {
                Self::Unavailable(message)
            }
            ConductorError::Internal(_) => {
                tracing::error!(%message, "conductor failure");
                Self::Internal(message)
            }
        }
    }
}

/// The error and its sources, joined by ": ".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Ironic's error body for `status` and `message`.
pub fn error_body(status: StatusCode, message: &str) -> String {
    let faultcode = if status.is_server_error() { "Server" } else { "Client" };
    let inner = serde_json::json!({
        "faultcode": faultcode,
        "faultstring": message,
        "debuginfo": null,
    });
    serde_json::json!({ "error_message": inner.to_string() }).to_string()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = error_body(status, &self.to_string());
        (status, [(http::header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
