//! The driver error type.

use ferric_types::{HardwareType, InterfaceImpl, InterfaceKind};

/// What can go wrong in a driver.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DriverError {
    /// Required `driver_info` keys are absent.
    #[error("some parameters were missing in node's driver_info. Missing are: {}", .keys.join(", "))]
    MissingInfo { keys: Vec<String> },
    /// A `driver_info` value is malformed.
    #[error("invalid driver_info {key}: {reason}")]
    InvalidInfo { key: String, reason: String },
    /// The implementation is not available for this hardware type.
    #[error("{interface} interface \"{implementation}\" is not supported by hardware type {hardware_type}")]
    UnsupportedImplementation {
        hardware_type: HardwareType,
        interface: InterfaceKind,
        implementation: InterfaceImpl,
    },
    /// The interface cannot do this.
    #[error("{interface} interface does not support {operation}")]
    Unsupported { interface: InterfaceKind, operation: String },
    /// The step's arguments are wrong.
    #[error("invalid arguments for step {step}: {reason}")]
    InvalidStepArgs { step: String, reason: String },
    /// The hardware refused or failed the operation.
    #[error("{0}")]
    Hardware(String),
    /// The hardware did not answer in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl DriverError {
    /// Whether retrying later may succeed (timeouts, unreachable BMCs).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::Hardware(_))
    }
}
