//! How to reach and log in to one BMC, and the timing of requests: a total
//! time budget per exchange split over geometrically growing waits.

use std::fmt;
use std::time::Duration;

use crate::commands::Privilege;
use crate::crypto::CipherSuite;
use crate::error::{IpmiError, Result};

/// The IPMI-over-LAN port.
pub const DEFAULT_PORT: u16 = 623;

/// A password. Its `Debug` shows `******`; it has no `Display`.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Password(String);

impl Password {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("******")
    }
}

/// Connection settings for one BMC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Config {
    /// Host name or IP address of the BMC.
    pub host: String,
    pub port: u16,
    /// User name, at most 16 bytes; empty for the null user.
    pub username: String,
    /// At most 20 bytes.
    pub password: Password,
    pub privilege: Privilege,
    /// `Some(3)` or `Some(17)` forces a cipher suite; `None` negotiates
    /// 17, then 3.
    pub cipher_suite: Option<u8>,
    /// The longest one exchange (a command and its retries) may take.
    pub timeout: Duration,
    /// How often a request is re-sent when no reply comes. Waits grow
    /// geometrically (×2) and add up to `timeout`.
    pub retries: u32,
    /// A session idle for longer is closed and a new one opened (BMCs drop
    /// idle sessions, typically after 60 s).
    pub idle_timeout: Duration,
}

impl Config {
    /// Settings with defaults: administrator, negotiated cipher suite,
    /// 5 s per exchange, 3 retries, sessions re-opened after 30 s idle.
    pub fn new(host: impl Into<String>, port: u16, username: &str, password: &str) -> Self {
        Self {
            host: host.into(),
            port,
            username: username.to_string(),
            password: Password::new(password),
            privilege: Privilege::Administrator,
            cipher_suite: None,
            timeout: Duration::from_secs(5),
            retries: 3,
            idle_timeout: Duration::from_secs(30),
        }
    }

    /// Checks what IPMI can carry. Errors never include the password.
    pub fn validate(&self) -> Result<()> {
        if self.host.trim().is_empty() {
            return Err(IpmiError::InvalidConfig("empty BMC address".into()));
        }
        if self.username.len() > 16 {
            return Err(IpmiError::InvalidConfig(format!(
                "user name is {} bytes, IPMI allows at most 16",
                self.username.len()
            )));
        }
        if self.password.bytes().len() > 20 {
            return Err(IpmiError::InvalidConfig(
                "password is longer than the 20 bytes IPMI 2.0 allows".into(),
            ));
        }
        if let Some(suite) = self.cipher_suite {
            if CipherSuite::from_id(suite).is_none() {
                return Err(IpmiError::UnsupportedCipherSuite {
                    suite: Some(suite),
                    reason: "this client speaks cipher suites 17 and 3".into(),
                });
            }
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(3600) {
            return Err(IpmiError::InvalidConfig(
                "timeout must be positive and at most an hour".into(),
            ));
        }
        if self.retries > 10 {
            return Err(IpmiError::InvalidConfig("at most 10 retries".into()));
        }
        Ok(())
    }

    pub(crate) fn timing(&self) -> Timing {
        Timing { total: self.timeout, retries: self.retries.min(10) }
    }
}

/// A time budget for one exchange and how many re-sends it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub total: Duration,
    pub retries: u32,
}

impl Timing {
    /// The wait after each send: `total` split in proportions 1, 2, 4, ...
    pub fn waits(&self) -> Vec<Duration> {
        let retries = self.retries.min(10);
        let shares = (1u32 << (retries + 1)) - 1;
        (0..=retries)
            .map(|attempt| {
                self.total.checked_mul(1u32 << attempt).map_or(self.total, |part| part / shares)
            })
            .collect()
    }

    /// A single attempt of `wait`.
    pub fn once(wait: Duration) -> Timing {
        Timing { total: wait, retries: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_and_add_up_to_the_budget() {
        let waits = Timing { total: Duration::from_millis(1500), retries: 3 }.waits();
        assert_eq!(waits, [100, 200, 400, 800].map(Duration::from_millis));
        assert_eq!(Timing::once(Duration::from_secs(1)).waits(), [Duration::from_secs(1)]);
    }

    #[test]
    fn validation_never_shows_the_password() {
        let mut config = Config::new("127.0.0.1", 623, "admin", "an-overly-long-password-xx");
        let error = config.validate().expect_err("too long").to_string();
        assert!(!error.contains("an-overly"), "{error}");
        assert!(!format!("{config:?}").contains("an-overly"));
        config.password = Password::new("ok");
        config.cipher_suite = Some(1);
        assert!(matches!(config.validate(), Err(IpmiError::UnsupportedCipherSuite { .. })));
    }
}
