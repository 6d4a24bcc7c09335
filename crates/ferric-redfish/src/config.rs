//! What to connect to and how: the BMC's address, the system, credentials,
//! authentication, TLS verification and time limits.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::RedfishError;

/// A password that never shows in `Debug` output or errors.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }

    /// The secret itself; only for the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(******)")
    }
}

/// How the client authenticates (`redfish_auth_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthType {
    /// HTTP basic authentication on every request.
    Basic,
    /// A Redfish session (`X-Auth-Token`).
    Session,
    /// A session, falling back to basic when the BMC offers none.
    #[default]
    Auto,
}

impl AuthType {
    pub fn parse(text: &str) -> Option<AuthType> {
        match text.trim().to_ascii_lowercase().as_str() {
            "basic" => Some(Self::Basic),
            "session" => Some(Self::Session),
            "auto" => Some(Self::Auto),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::Session => "session",
            Self::Auto => "auto",
        }
    }
}

/// TLS certificate verification (`redfish_verify_ca`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TlsVerify {
    /// Against the built-in (Mozilla) roots.
    #[default]
    Enabled,
    /// Not at all: any certificate is accepted.
    Disabled,
    /// Against the certificates of this PEM bundle only.
    CaBundle(PathBuf),
}

/// Everything a [`crate::Client`] needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The BMC's base URL: scheme, host and port (`https://10.0.0.5`); a
    /// path is ignored.
    pub address: String,
    /// The system's path (`/redfish/v1/Systems/1`) or id (`1`); None: the
    /// only member of the Systems collection.
    pub system_id: Option<String>,
    /// None: no credentials are sent.
    pub username: Option<String>,
    pub password: Password,
    pub auth: AuthType,
    pub verify: TlsVerify,
    /// How long one HTTP request (connection included) may take.
    pub timeout: Duration,
    /// How long a task monitor is polled before giving up.
    pub task_timeout: Duration,
    /// The interval between two polls of a task monitor.
    pub task_poll_interval: Duration,
}

/// Default time limit of one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default bound of task monitor polling.
pub const DEFAULT_TASK_TIMEOUT: Duration = Duration::from_secs(300);

impl Config {
    /// A configuration with defaults: auto authentication, TLS verified,
    /// 60 s per request. `https://` is assumed when `address` has no scheme.
    pub fn new(address: &str) -> Config {
        Config {
            address: normalize_address(address),
            system_id: None,
            username: None,
            password: Password::default(),
            auth: AuthType::Auto,
            verify: TlsVerify::Enabled,
            timeout: DEFAULT_TIMEOUT,
            task_timeout: DEFAULT_TASK_TIMEOUT,
            task_poll_interval: Duration::from_secs(1),
        }
    }

    /// Sets the credentials.
    pub fn with_credentials(mut self, username: &str, password: &str) -> Config {
        self.username = Some(username.to_string());
        self.password = Password::new(password);
        self
    }

    /// The base URL (`scheme://host:port`), checked.
    pub fn base_url(&self) -> Result<reqwest::Url, RedfishError> {
        let invalid = |reason: &str| RedfishError::InvalidConfig(format!("address: {reason}"));
        let mut url = reqwest::Url::parse(&self.address)
            .map_err(|_| invalid(&format!("{:?} is not a URL", strip_userinfo(&self.address))))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Never echo them.
            return Err(invalid("credentials in the URL are not supported; give them separately"));
        }
        url.set_path("/");
        url.set_query(None);
        url.set_fragment(None);
        Ok(url)
    }

    /// The path of the configured system, if one is configured.
    pub fn system_path(&self) -> Option<String> {
        let id = self.system_id.as_deref()?.trim();
        if id.is_empty() {
            None
        } else if id.starts_with('/') {
            Some(id.trim_end_matches('/').to_string())
        } else {
            Some(format!("/redfish/v1/Systems/{id}"))
        }
    }
}

/// Adds `https://` when the address has no scheme.
pub fn normalize_address(address: &str) -> String {
    let address = address.trim();
    if address.contains("://") {
        address.to_string()
    } else {
        format!("https://{address}")
    }
}

/// The address without `user:password@`, for messages.
fn strip_userinfo(address: &str) -> String {
    match (address.find("://"), address.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &address[..scheme + 3], &address[at + 1..])
        }
        _ => address.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_is_assumed_and_paths_are_dropped() {
        let config = Config::new("10.0.0.5:8443");
        assert_eq!(config.address, "https://10.0.0.5:8443");
        assert_eq!(config.base_url().expect("url").as_str(), "https://10.0.0.5:8443/");
        let config = Config::new("http://127.0.0.1:8000/redfish/v1?x=1");
        assert_eq!(config.base_url().expect("url").as_str(), "http://127.0.0.1:8000/");
        assert!(Config::new("ftp://host").base_url().is_err());
        assert!(Config::new("https://").base_url().is_err());
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_echo() {
        let error = Config::new("https://root:s3cret@bmc").base_url().expect_err("refused");
        assert!(!error.to_string().contains("s3cret"), "{error}");
        let error = Config::new("https://root:s3cret@bmc:notaport").base_url().expect_err("bad");
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }

    #[test]
    fn system_ids_become_paths() {
        let mut config = Config::new("bmc");
        assert_eq!(config.system_path(), None);
        config.system_id = Some("1".into());
        assert_eq!(config.system_path().as_deref(), Some("/redfish/v1/Systems/1"));
        config.system_id = Some("/redfish/v1/Systems/abc/".into());
        assert_eq!(config.system_path().as_deref(), Some("/redfish/v1/Systems/abc"));
    }

    #[test]
    fn password_debug_is_masked() {
        let config = Config::new("bmc").with_credentials("root", "calvin");
        assert!(!format!("{config:?}").contains("calvin"));
        assert_eq!(AuthType::parse(" Session "), Some(AuthType::Session));
        assert_eq!(AuthType::parse("digest"), None);
    }
}
