//! The error type, and the meanings of IPMI completion codes and RMCP+
//! status codes.
//!
//! No variant ever carries a password, a key or anything derived from them:
//! errors end up in logs and in a node's `last_error`.

use std::time::Duration;

/// What can go wrong talking to a BMC.
#[derive(Debug, thiserror::Error)]
pub enum IpmiError {
    /// The BMC did not answer in time (all retries used).
    #[error("no reply from the BMC to {what} after {} retries within {after:?}", .retries)]
    Timeout { what: &'static str, after: Duration, retries: u32 },
    /// The BMC did not accept the credentials: unknown user, wrong password
    /// or a privilege level the user may not have.
    #[error("authentication failed: {reason}")]
    AuthFailed { reason: String },
    /// The BMC does not offer the cipher suite asked for (or none that this
    /// client speaks).
    #[error("cipher suite {}: {reason}", .suite.map_or_else(|| "negotiation".to_string(), |s| s.to_string()))]
    UnsupportedCipherSuite { suite: Option<u8>, reason: String },
    /// The BMC refused to set up a session for another reason (RMCP+ status).
    #[error("the BMC refused the session: {meaning} (RMCP+ status {status:#04x})")]
    SessionRefused { status: u8, meaning: &'static str },
    /// The BMC answered a command with a non-zero completion code.
    #[error("{cmd} failed with completion code {code:#04x}: {meaning}")]
    CompletionCode { cmd: &'static str, code: u8, meaning: &'static str },
    /// A reply could not be understood.
    #[error("malformed reply: {0}")]
    Malformed(String),
    /// The client was configured with values IPMI cannot carry.
    #[error("invalid IPMI configuration: {0}")]
    InvalidConfig(String),
    /// The socket failed.
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
}

impl IpmiError {
    pub(crate) fn malformed(what: impl Into<String>) -> Self {
        Self::Malformed(what.into())
    }

    /// Whether the session that produced this error is still usable: a
    /// completion code is an answer within a working session; anything else
    /// may mean the session is gone.
    pub fn session_still_valid(&self) -> bool {
        matches!(self, Self::CompletionCode { .. })
    }
}

/// The meaning of a completion code (IPMI 2.0 table 5-2), including the
/// command-specific codes of the commands this crate sends.
pub fn completion_code_meaning(netfn: u8, cmd: u8, code: u8) -> &'static str {
    use crate::commands::{cmd as c, netfn as nf};
    match (netfn, cmd, code) {
        (_, _, 0x00) => "command completed normally",
        (nf::CHASSIS, c::SET_SYSTEM_BOOT_OPTIONS | c::GET_SYSTEM_BOOT_OPTIONS, 0x80) => {
            "parameter not supported"
        }
        (nf::CHASSIS, c::SET_SYSTEM_BOOT_OPTIONS, 0x81) => {
            "attempt to set the 'set in progress' value when not in the 'set complete' state"
        }
        (nf::CHASSIS, c::SET_SYSTEM_BOOT_OPTIONS, 0x82) => "attempt to write a read-only parameter",
        (nf::APP, c::SET_SESSION_PRIVILEGE_LEVEL, 0x80) => {
            "requested privilege level is not available for this user"
        }
        (nf::APP, c::SET_SESSION_PRIVILEGE_LEVEL, 0x81) => {
            "requested privilege level exceeds the user's or channel's limit"
        }
        (nf::APP, c::SET_SESSION_PRIVILEGE_LEVEL, 0x82) => {
            "cannot disable user level authentication"
        }
        (nf::APP, c::CLOSE_SESSION, 0x87) => "invalid session ID in request",
        (nf::APP, c::CLOSE_SESSION, 0x88) => "invalid session handle in request",
        (_, _, 0xC0) => "node busy",
        (_, _, 0xC1) => "invalid command",
        (_, _, 0xC2) => "command invalid for given LUN",
        (_, _, 0xC3) => "timeout while processing command",
        (_, _, 0xC4) => "out of space",
        (_, _, 0xC5) => "reservation cancelled or invalid reservation ID",
        (_, _, 0xC6) => "request data truncated",
        (_, _, 0xC7) => "request data length invalid",
        (_, _, 0xC8) => "request data field length limit exceeded",
        (_, _, 0xC9) => "parameter out of range",
        (_, _, 0xCA) => "cannot return number of requested data bytes",
        (_, _, 0xCB) => "requested sensor, data, or record not present",
        (_, _, 0xCC) => "invalid data field in request",
        (_, _, 0xCD) => "command illegal for specified sensor or record type",
        (_, _, 0xCE) => "command response could not be provided",
        (_, _, 0xCF) => "cannot execute duplicated request",
        (_, _, 0xD0) => "SDR repository in update mode",
        (_, _, 0xD1) => "device in firmware update mode",
        (_, _, 0xD2) => "BMC initialization in progress",
        (_, _, 0xD3) => "destination unavailable",
        (_, _, 0xD4) => "insufficient privilege level",
        (_, _, 0xD5) => "command not supported in present state",
        (_, _, 0xD6) => "command sub-function disabled or unavailable",
        (_, _, 0xFF) => "unspecified error",
        (_, _, 0x01..=0x7E) => "device-specific (OEM) error",
        (_, _, 0x80..=0xBE) => "command-specific error",
        _ => "reserved completion code",
    }
}

/// The meaning of an RMCP+ status code (IPMI 2.0 table 13-15), as found in
/// Open Session Response and RAKP messages.
pub fn rmcp_status_meaning(status: u8) -> &'static str {
    match status {
        0x00 => "no errors",
        0x01 => "insufficient resources to create a session",
        0x02 => "invalid session ID",
        0x03 => "invalid payload type",
        0x04 => "invalid authentication algorithm",
        0x05 => "invalid integrity algorithm",
        0x06 => "no matching authentication payload",
        0x07 => "no matching integrity payload",
        0x08 => "inactive session ID",
        0x09 => "invalid role",
        0x0A => "unauthorized role or privilege level requested",
        0x0B => "insufficient resources to create a session at the requested role",
        0x0C => "invalid name length",
        0x0D => "unauthorized name",
        0x0E => "unauthorized GUID",
        0x0F => "invalid integrity check value",
        0x10 => "invalid confidentiality algorithm",
        0x11 => "no cipher suite match with proposed security algorithms",
        0x12 => "illegal or unrecognized parameter",
        _ => "reserved status code",
    }
}

/// RMCP+ statuses that mean "this cipher suite is not offered".
pub(crate) fn status_rejects_algorithms(status: u8) -> bool {
    matches!(status, 0x04 | 0x05 | 0x06 | 0x07 | 0x10 | 0x11)
}

/// RMCP+ statuses that mean "these credentials are not accepted".
pub(crate) fn status_rejects_credentials(status: u8) -> bool {
    matches!(status, 0x09 | 0x0A | 0x0C | 0x0D | 0x0E | 0x0F)
}

/// Turns an RMCP+ status into the error it stands for.
pub(crate) fn status_error(status: u8, suite: u8) -> IpmiError {
    let meaning = rmcp_status_meaning(status);
    if status_rejects_algorithms(status) {
        IpmiError::UnsupportedCipherSuite {
            suite: Some(suite),
            reason: format!("the BMC answered: {meaning} (RMCP+ status {status:#04x})"),
        }
    } else if status_rejects_credentials(status) {
        IpmiError::AuthFailed {
            reason: format!("the BMC answered: {meaning} (RMCP+ status {status:#04x})"),
        }
    } else {
        IpmiError::SessionRefused { status, meaning }
    }
}

/// Result alias.
pub type Result<T, E = IpmiError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_meanings() {
        assert_eq!(completion_code_meaning(0, 1, 0xC1), "invalid command");
        assert_eq!(completion_code_meaning(0, 8, 0x80), "parameter not supported");
        assert!(completion_code_meaning(6, 0x3B, 0x81).contains("exceeds"));
        assert_eq!(completion_code_meaning(0, 1, 0x85), "command-specific error");
        assert_eq!(rmcp_status_meaning(0x0D), "unauthorized name");
        assert!(matches!(status_error(0x04, 17), IpmiError::UnsupportedCipherSuite { .. }));
        assert!(matches!(status_error(0x0D, 3), IpmiError::AuthFailed { .. }));
        assert!(matches!(status_error(0x01, 3), IpmiError::SessionRefused { .. }));
    }

    #[test]
    fn messages_read_well() {
        let error = IpmiError::CompletionCode {
            cmd: "Chassis Control",
            code: 0xCC,
            meaning: completion_code_meaning(0, 2, 0xCC),
        };
        assert_eq!(
            error.to_string(),
            "Chassis Control failed with completion code 0xcc: invalid data field in request"
        );
    }
}
