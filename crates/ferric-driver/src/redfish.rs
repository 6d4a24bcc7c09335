//! The `redfish` hardware type's power and management interfaces, over
//! `ferric-redfish`'s async client.
//!
//! `driver_info` keys follow Ironic ([`PROPERTIES`]). Clients are reused
//! across calls to the same BMC and system: one [`Client`] per (address,
//! system, user) in a process-wide cache, so a session is opened once and
//! renewed only when the BMC refuses it; a client whose settings changed is
//! replaced (its session is deleted). Errors name the BMC, never the
//! password or session token.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ferric_redfish::{
    AuthType, BootEnabled, BootMode, BootSource, Client, Config, Password,
    PowerState as RedfishPowerState, RedfishError, ResetType, TlsVerify,
};
use ferric_types::{BootDevice, InterfaceKind, Node, PowerState, PowerTarget};
use serde_json::Value;

use crate::error::DriverError;
use crate::interfaces::{Interface, ManagementInterface, PowerInterface};
use crate::ipmi::boot_mode_is_uefi;
use crate::poll::{self, Backoff};

/// The `driver_info` keys both interfaces read, with descriptions.
pub const PROPERTIES: [(&str, &str); 7] = [
    (
        "redfish_address",
        "The BMC's Redfish URL, e.g. https://10.0.0.5 or http://bmc:8000 (https is assumed \
         without a scheme). Required.",
    ),
    (
        "redfish_system_id",
        "The system's Redfish path (/redfish/v1/Systems/1) or id. Optional when the BMC has \
         exactly one system.",
    ),
    ("redfish_username", "User name on the BMC. Optional."),
    ("redfish_password", "Password of the BMC user. Optional."),
    (
        "redfish_verify_ca",
        "Whether to verify the BMC's TLS certificate (true/false), or the path of a CA bundle \
         to verify it with. Optional, default true.",
    ),
    (
        "redfish_auth_type",
        "basic, session, or auto (a session, falling back to basic). Optional, default auto.",
    ),
    ("redfish_timeout", "Seconds one Redfish request may take. Optional, default 60."),
];

/// How long a power change may take when the caller gives no timeout.
const DEFAULT_POWER_TIMEOUT: Duration = Duration::from_secs(60);
/// The same for soft power off (the operating system shuts down first).
const DEFAULT_SOFT_POWER_TIMEOUT: Duration = Duration::from_secs(600);
/// Polling of the power state while waiting: first and longest interval.
const FIRST_POLL: Duration = Duration::from_millis(250);
const MAX_POLL: Duration = Duration::from_secs(2);

/// The BMC settings of one node, parsed from `driver_info`.
#[derive(Debug, Clone)]
pub struct RedfishInfo {
    pub config: Config,
}

fn invalid(key: &str, reason: &str) -> DriverError {
    DriverError::InvalidInfo { key: key.to_string(), reason: reason.to_string() }
}

fn text<'a>(node: &'a Node, key: &str) -> Result<Option<&'a str>, DriverError> {
    match node.driver_info.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) if value.trim().is_empty() => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.as_str())),
        Some(_) => Err(invalid(key, "must be a string")),
    }
}

/// `redfish_verify_ca`: a boolean (JSON or text, as Ironic accepts) or a
/// CA bundle path.
fn verify_ca(node: &Node) -> Result<TlsVerify, DriverError> {
    const KEY: &str = "redfish_verify_ca";
    let text = match node.driver_info.get(KEY) {
        None | Some(Value::Null) => return Ok(TlsVerify::Enabled),
        Some(Value::Bool(true)) => return Ok(TlsVerify::Enabled),
        Some(Value::Bool(false)) => return Ok(TlsVerify::Disabled),
        Some(Value::String(text)) => text.trim(),
        Some(_) => return Err(invalid(KEY, "must be a boolean or the path of a CA bundle")),
    };
    match text.to_ascii_lowercase().as_str() {
        "" | "true" | "yes" | "on" | "1" | "y" | "t" => Ok(TlsVerify::Enabled),
        "false" | "no" | "off" | "0" | "n" | "f" => Ok(TlsVerify::Disabled),
        _ if text.starts_with('/') => Ok(TlsVerify::CaBundle(PathBuf::from(text))),
        _ => Err(invalid(KEY, "must be a boolean or the absolute path of a CA bundle")),
    }
}

impl RedfishInfo {
    /// Parses and checks the node's `driver_info`; touches no hardware.
    pub fn from_node(node: &Node) -> Result<RedfishInfo, DriverError> {
        let Some(address) = text(node, "redfish_address")? else {
            return Err(DriverError::MissingInfo { keys: vec!["redfish_address".into()] });
        };
        let mut config = Config::new(address);
        config.base_url().map_err(|error| {
            invalid(
                "redfish_address",
                error.to_string().trim_start_matches("invalid Redfish configuration: address: "),
            )
        })?;
        config.system_id = text(node, "redfish_system_id")?.map(|id| id.trim().to_string());
        config.username = text(node, "redfish_username")?.map(str::to_string);
        // Never echo the value.
        config.password = Password::new(text(node, "redfish_password")?.unwrap_or_default());
        config.verify = verify_ca(node)?;
        if let Some(auth) = text(node, "redfish_auth_type")? {
            config.auth = AuthType::parse(auth)
                .ok_or_else(|| invalid("redfish_auth_type", "must be basic, session or auto"))?;
        }
        // Non-numbers become NaN, which the range check refuses.
        let timeout = match node.driver_info.get("redfish_timeout") {
            None | Some(Value::Null) => None,
            Some(Value::Number(value)) => Some(value.as_f64().unwrap_or(f64::NAN)),
            Some(Value::String(value)) => Some(value.trim().parse::<f64>().unwrap_or(f64::NAN)),
            Some(_) => Some(f64::NAN),
        };
        if let Some(seconds) = timeout {
            if !(seconds > 0.0 && seconds <= 600.0) {
                return Err(invalid(
                    "redfish_timeout",
                    "must be a number of seconds, more than 0 and at most 600",
                ));
            }
            config.timeout = Duration::from_secs_f64(seconds);
        }
        Ok(RedfishInfo { config })
    }

    /// The BMC's address, for messages.
    pub fn bmc(&self) -> &str {
        &self.config.address
    }

    /// The cached client of this BMC and system (a new one if the settings
    /// changed).
    fn client(&self) -> Result<Arc<Client>, DriverError> {
        type Cache = Mutex<HashMap<(String, Option<String>, Option<String>), Arc<Client>>>;
        static CLIENTS: OnceLock<Cache> = OnceLock::new();
        let key =
            (self.config.address.clone(), self.config.system_path(), self.config.username.clone());
        let mut clients = CLIENTS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(&key).filter(|client| *client.config() == self.config) {
            return Ok(client.clone());
        }
        let client = Arc::new(Client::new(self.config.clone()).map_err(|error| self.error(error))?);
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Maps a client error: timeouts stay timeouts, unreachable BMCs and
    /// refusals are hardware errors (retryable) naming the BMC.
    fn error(&self, error: RedfishError) -> DriverError {
        let bmc = self.bmc();
        match error {
            RedfishError::Timeout { .. } | RedfishError::TaskTimeout { .. } => {
                DriverError::Timeout(format!("Redfish BMC {bmc}: {error}"))
            }
            RedfishError::InvalidConfig(reason) if reason.starts_with("CA bundle") => {
                invalid("redfish_verify_ca", &reason)
            }
            RedfishError::InvalidConfig(reason) => invalid("redfish_address", &reason),
            RedfishError::Auth { .. } => DriverError::Hardware(format!(
                "Redfish BMC {bmc}: {error} (redfish_username, redfish_password, \
                 redfish_auth_type)"
            )),
            RedfishError::System(reason) => DriverError::Hardware(format!(
                "Redfish BMC {bmc}: {reason} (set redfish_system_id)"
            )),
            other => DriverError::Hardware(format!("Redfish BMC {bmc}: {other}")),
        }
    }

    async fn redfish_power(
        &self,
        client: &Client,
    ) -> Result<Option<RedfishPowerState>, DriverError> {
        client.power_state().await.map_err(|error| self.error(error))
    }

    async fn reset(&self, client: &Client, reset: ResetType) -> Result<(), DriverError> {
        client.reset(reset).await.map_err(|error| self.error(error))
    }

    /// Polls the power state until it is exactly `want` or `deadline`
    /// passes.
    async fn wait_for(
        &self,
        client: &Client,
        want: RedfishPowerState,
        deadline: tokio::time::Instant,
        after: &str,
    ) -> Result<(), DriverError> {
        let backoff = Backoff { first: FIRST_POLL, max: MAX_POLL };
        let reached = poll::until(
            deadline,
            backoff,
            || client.power_state(),
            |state| state.as_ref() == Some(&want),
        )
        .await;
        reached.map_err(|last| {
            let detail = match last {
                Err(error) => format!(" (last error: {error})"),
                Ok(Some(state)) => format!(" (it reports {state})"),
                Ok(None) => " (it reports no power state)".to_string(),
            };
            DriverError::Timeout(format!(
                "Redfish BMC {}: the system did not reach power state {want} after \
                 {after}{detail}",
                self.bmc()
            ))
        })
    }
}

/// Power through `ComputerSystem.Reset` and the system's `PowerState`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedfishPower;

/// Boot device through the system's `Boot` override.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedfishManagement;

fn properties() -> Vec<(&'static str, &'static str)> {
    PROPERTIES.to_vec()
}

/// Ironic's mapping: a transition counts as the state it leads away from
/// or to, as Ironic does; anything else is an error.
fn to_power_state(state: Option<RedfishPowerState>) -> PowerState {
    match state {
        Some(RedfishPowerState::On | RedfishPowerState::PoweringOn) => PowerState::On,
        Some(RedfishPowerState::Off | RedfishPowerState::PoweringOff) => PowerState::Off,
        _ => PowerState::Error,
    }
}

#[async_trait::async_trait]
impl Interface for RedfishPower {
    fn kind(&self) -> InterfaceKind {
        InterfaceKind::Power
    }

    fn validate(&self, node: &Node) -> Result<(), DriverError> {
        RedfishInfo::from_node(node).map(drop)
    }

    fn properties(&self) -> Vec<(&'static str, &'static str)> {
        properties()
    }
}

#[async_trait::async_trait]
impl PowerInterface for RedfishPower {
    async fn get_power_state(&self, node: &Node) -> Result<PowerState, DriverError> {
        let info = RedfishInfo::from_node(node)?;
        let client = info.client()?;
        Ok(to_power_state(info.redfish_power(&client).await?))
    }

    async fn set_power_state(
        &self,
        node: &Node,
        target: PowerTarget,
        timeout: Option<Duration>,
    ) -> Result<(), DriverError> {
        use RedfishPowerState as S;
        let info = RedfishInfo::from_node(node)?;
        let client = info.client()?;
        let soft = matches!(target, PowerTarget::SoftOff | PowerTarget::SoftReboot);
        let timeout = timeout.unwrap_or(if soft {
            DEFAULT_SOFT_POWER_TIMEOUT
        } else {
            DEFAULT_POWER_TIMEOUT
        });
        let now = tokio::time::Instant::now();
        let deadline = now.checked_add(timeout).unwrap_or(now + DEFAULT_SOFT_POWER_TIMEOUT);
        let current = info.redfish_power(&client).await?;
        let is_on = current == Some(S::On);
        // Some BMCs refuse a reset into the state the system is already in.
        let (reset, want, after) = match target {
            PowerTarget::On if is_on => return Ok(()),
            PowerTarget::On => (ResetType::On, S::On, "power on"),
            PowerTarget::Off if current == Some(S::Off) => return Ok(()),
            PowerTarget::Off => (ResetType::ForceOff, S::Off, "power off"),
            PowerTarget::SoftOff if current == Some(S::Off) => return Ok(()),
            PowerTarget::SoftOff => (ResetType::GracefulShutdown, S::Off, "soft power off"),
            // Rebooting a node that is off powers it on.
            PowerTarget::Reboot if is_on => (ResetType::ForceRestart, S::On, "reboot"),
            PowerTarget::SoftReboot if is_on => (ResetType::GracefulRestart, S::On, "soft reboot"),
            PowerTarget::Reboot | PowerTarget::SoftReboot => (ResetType::On, S::On, "reboot"),
        };
        info.reset(&client, reset).await?;
        info.wait_for(&client, want, deadline, after).await
    }
}

fn to_redfish(device: BootDevice) -> Option<BootSource> {
    match device {
        BootDevice::Pxe => Some(BootSource::Pxe),
        BootDevice::Disk => Some(BootSource::Hdd),
        BootDevice::Cdrom => Some(BootSource::Cd),
        BootDevice::Bios => Some(BootSource::BiosSetup),
        BootDevice::Uefihttp => Some(BootSource::UefiHttp),
        _ => None,
    }
}

fn from_redfish(source: &BootSource) -> Option<BootDevice> {
    match source {
        BootSource::Pxe => Some(BootDevice::Pxe),
        BootSource::Hdd => Some(BootDevice::Disk),
        BootSource::Cd => Some(BootDevice::Cdrom),
        BootSource::BiosSetup => Some(BootDevice::Bios),
        BootSource::UefiHttp => Some(BootDevice::Uefihttp),
        BootSource::Floppy => Some(BootDevice::Floppy),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Interface for RedfishManagement {
    fn kind(&self) -> InterfaceKind {
        InterfaceKind::Management
    }

    fn validate(&self, node: &Node) -> Result<(), DriverError> {
        RedfishInfo::from_node(node).map(drop)
    }

    fn properties(&self) -> Vec<(&'static str, &'static str)> {
        properties()
    }
}

#[async_trait::async_trait]
impl ManagementInterface for RedfishManagement {
    fn supported_boot_devices(&self, _node: &Node) -> Vec<BootDevice> {
        vec![
            BootDevice::Pxe,
            BootDevice::Disk,
            BootDevice::Cdrom,
            BootDevice::Bios,
            BootDevice::Uefihttp,
        ]
    }

    async fn get_boot_device(
        &self,
        node: &Node,
    ) -> Result<(Option<BootDevice>, Option<bool>), DriverError> {
        let info = RedfishInfo::from_node(node)?;
        let client = info.client()?;
        let boot = client.boot_override().await.map_err(|error| info.error(error))?;
        let persistent = match boot.enabled {
            Some(BootEnabled::Continuous) => Some(true),
            Some(BootEnabled::Once) => Some(false),
            // No override in force.
            Some(BootEnabled::Disabled) => return Ok((None, None)),
            _ => None,
        };
        Ok((boot.target.as_ref().and_then(from_redfish), persistent))
    }

    async fn set_boot_device(
        &self,
        node: &mut Node,
        device: BootDevice,
        persistent: bool,
    ) -> Result<(), DriverError> {
        let Some(target) = to_redfish(device) else {
            return Err(DriverError::Unsupported {
                interface: InterfaceKind::Management,
                operation: format!("boot device {device}"),
            });
        };
        let info = RedfishInfo::from_node(node)?;
        let client = info.client()?;
        let enabled = if persistent { BootEnabled::Continuous } else { BootEnabled::Once };
        let mode = if boot_mode_is_uefi(node) { BootMode::Uefi } else { BootMode::Legacy };
        client
            .set_boot_override(target, enabled, Some(mode))
            .await
            .map_err(|error| info.error(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferric_redfish::testing::{MockBmc, SushyEmulator};
    use ferric_types::{HardwareType, ProvisionState};
    use serde_json::json;

    fn node(info: Value) -> Node {
        let mut node =
            Node::new(uuid::Uuid::new_v4(), HardwareType::Redfish, ProvisionState::Enroll);
        node.driver_info = info.as_object().cloned().unwrap_or_default();
        node
    }

    fn invalid_key(info: Value) -> String {
        match RedfishInfo::from_node(&node(info)) {
            Err(DriverError::InvalidInfo { key, .. }) => key,
            other => panic!("expected InvalidInfo, got {other:?}"),
        }
    }

    #[test]
    fn driver_info_parses_with_ironic_defaults() {
        let info =
            RedfishInfo::from_node(&node(json!({"redfish_address": "10.0.0.5"}))).expect("parse");
        assert_eq!(info.config.address, "https://10.0.0.5");
        assert_eq!(info.config.verify, TlsVerify::Enabled);
        assert_eq!(info.config.auth, AuthType::Auto);
        assert_eq!((info.config.username.as_deref(), info.config.system_path()), (None, None));
        let info = RedfishInfo::from_node(&node(json!({
            "redfish_address": "http://127.0.0.1:8000", "redfish_system_id": "/redfish/v1/Systems/1",
            "redfish_username": "admin", "redfish_password": "pw", "redfish_verify_ca": "False",
            "redfish_auth_type": "basic", "redfish_timeout": "2.5",
        })))
        .expect("parse");
        assert_eq!(info.config.system_path().as_deref(), Some("/redfish/v1/Systems/1"));
        assert_eq!(info.config.verify, TlsVerify::Disabled);
        assert_eq!(info.config.auth, AuthType::Basic);
        assert_eq!(info.config.timeout, Duration::from_millis(2500));
        assert_eq!(info.config.password.expose(), "pw");
        let info = RedfishInfo::from_node(&node(json!({
            "redfish_address": "bmc", "redfish_verify_ca": "/etc/ssl/bmc-ca.pem",
        })))
        .expect("parse");
        assert_eq!(info.config.verify, TlsVerify::CaBundle("/etc/ssl/bmc-ca.pem".into()));
        let info = RedfishInfo::from_node(&node(json!({
            "redfish_address": "bmc", "redfish_verify_ca": false,
        })))
        .expect("parse");
        assert_eq!(info.config.verify, TlsVerify::Disabled);
    }

    #[test]
    fn driver_info_problems_name_the_key() {
        assert!(matches!(
            RedfishInfo::from_node(&node(json!({"redfish_username": "u"}))),
            Err(DriverError::MissingInfo { keys }) if keys == ["redfish_address"]
        ));
        let base = |extra: Value| {
            let mut info = json!({"redfish_address": "https://bmc"});
            info.as_object_mut()
                .expect("object")
                .extend(extra.as_object().cloned().unwrap_or_default());
            info
        };
        assert_eq!(invalid_key(base(json!({"redfish_address": 5}))), "redfish_address");
        assert_eq!(invalid_key(base(json!({"redfish_address": "ftp://bmc"}))), "redfish_address");
        assert_eq!(invalid_key(base(json!({"redfish_auth_type": "digest"}))), "redfish_auth_type");
        assert_eq!(invalid_key(base(json!({"redfish_verify_ca": "maybe"}))), "redfish_verify_ca");
        assert_eq!(invalid_key(base(json!({"redfish_verify_ca": 1}))), "redfish_verify_ca");
        assert_eq!(invalid_key(base(json!({"redfish_timeout": 0}))), "redfish_timeout");
        assert_eq!(invalid_key(base(json!({"redfish_timeout": "soon"}))), "redfish_timeout");
        assert_eq!(invalid_key(base(json!({"redfish_timeout": [1]}))), "redfish_timeout");
        let secret = "p4ssw0rd-in-url";
        let error = RedfishInfo::from_node(&node(base(
            json!({"redfish_address": format!("https://root:{secret}@bmc")}),
        )))
        .expect_err("credentials in the URL");
        assert!(!error.to_string().contains(secret), "{error}");
    }

    #[test]
    fn both_interfaces_list_the_keys_and_validate_offline() {
        for interface in [&RedfishPower as &dyn Interface, &RedfishManagement] {
            let keys: Vec<&str> = interface.properties().iter().map(|(key, _)| *key).collect();
            assert!(keys.contains(&"redfish_address") && keys.contains(&"redfish_verify_ca"));
            interface
                .validate(&node(json!({"redfish_address": "http://127.0.0.1:9"})))
                .expect("valid");
            assert!(interface.validate(&node(json!({}))).is_err());
        }
    }

    fn mock_node(bmc: &MockBmc, password: &str) -> Node {
        node(json!({
            "redfish_address": bmc.url(), "redfish_username": "admin",
            "redfish_password": password, "redfish_timeout": 5,
        }))
    }

    #[tokio::test]
    async fn power_and_boot_device_against_the_mock_bmc() {
        let bmc = MockBmc::start().await.expect("bmc");
        // Power changes show only after two more reads: the driver polls.
        bmc.state().power_lag = 2;
        let mut n = mock_node(&bmc, "password");
        let timeout = Some(Duration::from_secs(10));
        assert_eq!(RedfishPower.get_power_state(&n).await.expect("state"), PowerState::Off);
        // Rebooting an off node powers it on.
        RedfishPower.set_power_state(&n, PowerTarget::Reboot, timeout).await.expect("reboot");
        assert_eq!(RedfishPower.get_power_state(&n).await.expect("state"), PowerState::On);
        RedfishPower.set_power_state(&n, PowerTarget::On, timeout).await.expect("already on");
        RedfishPower.set_power_state(&n, PowerTarget::Reboot, timeout).await.expect("reboot");
        RedfishPower
            .set_power_state(&n, PowerTarget::SoftReboot, timeout)
            .await
            .expect("soft reboot");
        RedfishPower.set_power_state(&n, PowerTarget::SoftOff, timeout).await.expect("soft off");
        RedfishPower.set_power_state(&n, PowerTarget::Off, timeout).await.expect("already off");
        RedfishPower.set_power_state(&n, PowerTarget::On, timeout).await.expect("on");
        RedfishPower.set_power_state(&n, PowerTarget::Off, timeout).await.expect("off");
        assert_eq!(
            bmc.state().resets,
            ["On", "ForceRestart", "GracefulRestart", "GracefulShutdown", "On", "ForceOff"]
        );

        RedfishManagement.set_boot_device(&mut n, BootDevice::Pxe, true).await.expect("set");
        assert_eq!(
            RedfishManagement.get_boot_device(&n).await.expect("get"),
            (Some(BootDevice::Pxe), Some(true))
        );
        n.properties.insert("capabilities".into(), json!({"boot_mode": "bios"}));
        RedfishManagement.set_boot_device(&mut n, BootDevice::Bios, false).await.expect("set");
        assert_eq!(
            bmc.state().patches.last().cloned(),
            Some(json!({"Boot": {"BootSourceOverrideTarget": "BiosSetup",
                "BootSourceOverrideEnabled": "Once", "BootSourceOverrideMode": "Legacy"}}))
        );
        assert_eq!(
            RedfishManagement.get_boot_device(&n).await.expect("get"),
            (Some(BootDevice::Bios), Some(false))
        );
        RedfishManagement.set_boot_device(&mut n, BootDevice::Uefihttp, false).await.expect("set");
        assert!(matches!(
            RedfishManagement.set_boot_device(&mut n, BootDevice::Wanboot, false).await,
            Err(DriverError::Unsupported { .. })
        ));
        // One session served every call.
        assert_eq!(bmc.state().sessions_created, 1);
    }

    #[tokio::test]
    async fn bmc_errors_map_to_driver_errors() {
        let bmc = MockBmc::start().await.expect("bmc");
        let wrong = mock_node(&bmc, "hunter2");
        match RedfishPower.get_power_state(&wrong).await {
            Err(DriverError::Hardware(message)) => {
                assert!(message.contains(&bmc.url()), "{message}");
                assert!(
                    message.contains("authentication failed") && !message.contains("hunter2"),
                    "{message}"
                );
            }
            other => panic!("expected a hardware error, got {other:?}"),
        }
        let right = mock_node(&bmc, "password");
        RedfishPower.get_power_state(&right).await.expect("warm up");
        bmc.state().fail_next.push_back((
            400,
            json!({"error": {"@Message.ExtendedInfo": [{"Message": "Request refused."}]}})
                .to_string(),
        ));
        let error = RedfishPower.get_power_state(&right).await.expect_err("400");
        assert!(
            matches!(&error, DriverError::Hardware(m) if m.contains("Request refused.")),
            "{error:?}"
        );
        // The system never turns on: the wait times out.
        bmc.state().power_lag = u32::MAX;
        let error = RedfishPower
            .set_power_state(&right, PowerTarget::On, Some(Duration::from_millis(600)))
            .await
            .expect_err("never on");
        assert!(
            matches!(&error, DriverError::Timeout(m) if m.contains("did not reach power state On")),
            "{error:?}"
        );
        // Several systems and no redfish_system_id.
        let two = MockBmc::start_with(vec![
            ferric_redfish::testing::MockSystem::new("a"),
            ferric_redfish::testing::MockSystem::new("b"),
        ])
        .await
        .expect("bmc");
        let error =
            RedfishPower.get_power_state(&mock_node(&two, "password")).await.expect_err("2");
        assert!(
            matches!(&error, DriverError::Hardware(m) if m.contains("redfish_system_id")),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_bmc_is_retryable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("port")
            .port();
        let n = node(json!({"redfish_address": format!("http://127.0.0.1:{port}")}));
        let error = RedfishPower.get_power_state(&n).await.expect_err("refused");
        assert!(error.is_retryable(), "{error:?}");
        assert!(error.to_string().contains("cannot connect"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn power_and_boot_device_against_sushy_tools() {
        let Some(emulator) = SushyEmulator::start("ferric-driver redfish sushy-tools test", false)
        else {
            return;
        };
        let mut n = node(json!({"redfish_address": emulator.url()}));
        // The fake driver applies power changes after up to 11 s.
        let timeout = Some(Duration::from_secs(30));
        assert_eq!(RedfishPower.get_power_state(&n).await.expect("state"), PowerState::Off);
        RedfishPower.set_power_state(&n, PowerTarget::On, timeout).await.expect("on");
        RedfishPower.set_power_state(&n, PowerTarget::Reboot, timeout).await.expect("reboot");
        assert_eq!(RedfishPower.get_power_state(&n).await.expect("state"), PowerState::On);
        RedfishPower.set_power_state(&n, PowerTarget::Off, timeout).await.expect("off");
        assert_eq!(RedfishPower.get_power_state(&n).await.expect("state"), PowerState::Off);
        for device in [BootDevice::Pxe, BootDevice::Disk, BootDevice::Cdrom] {
            RedfishManagement.set_boot_device(&mut n, device, false).await.expect("set");
            // sushy-tools reports every override as Continuous.
            assert_eq!(
                RedfishManagement.get_boot_device(&n).await.expect("get"),
                (Some(device), Some(true))
            );
        }
    }
}
