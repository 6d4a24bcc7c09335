//! The vbmc configuration file (TOML): a list of machines, each with its
//! IPMI endpoint, optionally a Redfish endpoint (`redfish_port`, plain
//! HTTP on the same address), the credentials both use, and either
//! `simulated = true` or a `[machines.qemu]` table.
//!
//! ```toml
//! [[machines]]
//! name = "node-0"
//! ipmi_port = 6230
//! redfish_port = 8000
//! username = "admin"
//! password = "password"
//! simulated = true
//!
//! [[machines]]
//! name = "vm-1"
//! ipmi_port = 6231
//! username = "admin"
//! password = "password"
//! [machines.qemu]
//! args = ["-accel", "kvm", "-m", "2048", "-nic", "none"]
//! qmp_socket = "/run/ferric-vbmc/vm-1.qmp"
//! log = "/var/log/ferric-vbmc/vm-1.log"
//! ```

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::qemu::QemuConfig;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

fn default_address() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

fn default_suites() -> Vec<u8> {
    vec![3, 17]
}

fn default_command_timeout() -> f64 {
    30.0
}

fn default_graceful_timeout() -> f64 {
    10.0
}

/// The whole file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub machines: Vec<MachineConfig>,
}

/// One machine and its virtual BMC.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    pub name: String,
    /// The address the IPMI server binds (127.0.0.1 unless set).
    #[serde(default = "default_address")]
    pub address: IpAddr,
    pub ipmi_port: u16,
    /// The TCP port of the machine's Redfish service (plain HTTP, same
    /// address); none unless set.
    #[serde(default)]
    pub redfish_port: Option<u16>,
    pub username: String,
    pub password: String,
    /// Cipher suites offered (3 and 17 unless set).
    #[serde(default = "default_suites")]
    pub cipher_suites: Vec<u8>,
    /// Seconds a machine operation may take before IPMI answers 0xC3.
    #[serde(default = "default_command_timeout")]
    pub command_timeout: f64,
    /// Seconds a Redfish `GracefulRestart` waits for the guest to power
    /// off before it resets the machine.
    #[serde(default = "default_graceful_timeout")]
    pub graceful_timeout: f64,
    /// An in-memory machine instead of QEMU.
    #[serde(default)]
    pub simulated: bool,
    pub qemu: Option<QemuConfig>,
}

impl MachineConfig {
    pub fn command_timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.command_timeout).unwrap_or(Duration::from_secs(30))
    }

    pub fn graceful_timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.graceful_timeout).unwrap_or(Duration::from_secs(10))
    }
}

impl Config {
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |text: String| Err(ConfigError::Invalid(text));
        let mut names = HashSet::new();
        let mut endpoints = HashSet::new();
        let mut tcp_endpoints = HashSet::new();
        for machine in &self.machines {
            let name = &machine.name;
            if name.is_empty() {
                return invalid("a machine has an empty name".into());
            }
            if !names.insert(name.as_str()) {
                return invalid(format!("machine {name} appears twice"));
            }
            if machine.ipmi_port != 0 && !endpoints.insert((machine.address, machine.ipmi_port)) {
                return invalid(format!("machine {name}: port {} is taken", machine.ipmi_port));
            }
            if let Some(port) = machine.redfish_port {
                if port != 0 && !tcp_endpoints.insert((machine.address, port)) {
                    return invalid(format!("machine {name}: Redfish port {port} is taken"));
                }
            }
            if !(machine.graceful_timeout >= 0.0 && machine.graceful_timeout.is_finite()) {
                return invalid(format!("machine {name}: graceful_timeout must not be negative"));
            }
            if machine.username.is_empty() || machine.username.len() > 16 {
                return invalid(format!("machine {name}: username must be 1-16 bytes"));
            }
            if machine.password.len() > 20 {
                return invalid(format!("machine {name}: password must be at most 20 bytes"));
            }
            if machine.cipher_suites.is_empty()
                || machine.cipher_suites.iter().any(|suite| ![3, 17].contains(suite))
            {
                return invalid(format!("machine {name}: cipher_suites must be among 3 and 17"));
            }
            if !(machine.command_timeout > 0.0 && machine.command_timeout.is_finite()) {
                return invalid(format!("machine {name}: command_timeout must be positive"));
            }
            match (machine.simulated, &machine.qemu) {
                (true, Some(_)) => {
                    return invalid(format!("machine {name}: both simulated and qemu"));
                }
                (false, None) => {
                    return invalid(format!("machine {name}: needs simulated = true or [qemu]"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let text = r#"
[[machines]]
name = "node-0"
ipmi_port = 6230
redfish_port = 8000
username = "admin"
password = "password"
simulated = true

[[machines]]
name = "vm-1"
ipmi_port = 6231
username = "admin"
password = "password"
[machines.qemu]
args = ["-m", "2048", "-nic", "none"]
qmp_socket = "/run/vm-1.qmp"
log = "/var/log/vm-1.log"
stop_timeout = 2.5
"#;
        let config = Config::parse(text).unwrap();
        assert_eq!(config.machines.len(), 2);
        assert_eq!(config.machines[0].address, default_address());
        assert_eq!(config.machines[0].redfish_port, Some(8000));
        assert_eq!(config.machines[1].redfish_port, None);
        assert_eq!(config.machines[1].graceful_timeout(), Duration::from_secs(10));
        let qemu = config.machines[1].qemu.as_ref().unwrap();
        assert_eq!(qemu.binary, "qemu-system-x86_64");
        assert_eq!(qemu.stop_timeout, Duration::from_millis(2500));
    }

    #[test]
    fn refuses_conflicts() {
        let machine = |name: &str, port: u16| {
            format!(
                "[[machines]]\nname = \"{name}\"\nipmi_port = {port}\nusername = \"u\"\npassword = \"p\"\nsimulated = true\n"
            )
        };
        assert!(Config::parse(&(machine("a", 1) + &machine("a", 2))).is_err());
        assert!(Config::parse(&(machine("a", 1) + &machine("b", 1))).is_err());
        assert!(Config::parse(&(machine("a", 1) + &machine("b", 2))).is_ok());
        let redfish = |name: &str, port: u16, redfish: u16| {
            machine(name, port) + &format!("redfish_port = {redfish}\n")
        };
        assert!(Config::parse(&(redfish("a", 1, 80) + &redfish("b", 2, 80))).is_err());
        // IPMI is UDP, Redfish TCP: the same number does not conflict.
        assert!(Config::parse(&(redfish("a", 1, 2) + &redfish("b", 2, 1))).is_ok());
        assert!(Config::parse(
            "[[machines]]\nname = \"x\"\nipmi_port = 1\nusername = \"u\"\npassword = \"p\"\n"
        )
        .is_err());
    }
}
