//! The `ipmi` hardware type's power and management interfaces (named
//! `ipmitool`, as in Ironic), over `ferric-ipmi`'s native RMCP+ client: no
//! `ipmitool` process is run.
//!
//! `driver_info` keys follow Ironic ([`PROPERTIES`]). Sessions are reused
//! across calls to the same BMC: one [`Client`] per BMC (address, port,
//! user) in a process-wide cache; the client's lock serializes callers so a
//! session's sequence numbers never interleave. Errors name the BMC address,
//! never the password.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ferric_ipmi::{
    BootDevice as IpmiBootDevice, BootFlags, ChassisControl, Client, Config, IpmiError, Password,
    Privilege,
};
use ferric_types::{BootDevice, InterfaceKind, Node, PowerState, PowerTarget};
use serde_json::Value;

use crate::error::DriverError;
use crate::interfaces::{Interface, ManagementInterface, PowerInterface};
use crate::poll::{self, Backoff};

/// The `driver_info` keys both interfaces read, with descriptions.
pub const PROPERTIES: [(&str, &str); 8] = [
    ("ipmi_address", "IP address or host name of the node's BMC. Required."),
    ("ipmi_port", "UDP port of the BMC's IPMI-over-LAN interface. Optional, default 623."),
    (
        "ipmi_username",
        "User name on the BMC (at most 16 bytes). Optional; the null user when absent.",
    ),
    ("ipmi_password", "Password of the BMC user (at most 20 bytes). Optional."),
    (
        "ipmi_cipher_suite",
        "RMCP+ cipher suite, 17 (HMAC-SHA256, AES-128) or 3 (HMAC-SHA1, AES-128). \
         Optional; by default 17 is tried, then 3.",
    ),
    (
        "ipmi_priv_level",
        "Session privilege level: ADMINISTRATOR, OPERATOR, USER or CALLBACK. \
         Optional, default ADMINISTRATOR.",
    ),
    ("ipmi_timeout", "Seconds one IPMI request may take, re-sends included. Optional, default 5."),
    (
        "ipmi_retries",
        "How often a request without a reply is re-sent within ipmi_timeout (0-10). \
         Optional, default 3.",
    ),
];

/// How long a power change may take when the caller gives no timeout.
const DEFAULT_POWER_TIMEOUT: Duration = Duration::from_secs(60);
/// The same for soft power off (the operating system shuts down first).
const DEFAULT_SOFT_POWER_TIMEOUT: Duration = Duration::from_secs(600);
/// Polling of the power state while waiting: first and longest interval.
const FIRST_POLL: Duration = Duration::from_millis(200);
const MAX_POLL: Duration = Duration::from_secs(1);

/// The BMC settings of one node, parsed from `driver_info`.
#[derive(Debug, Clone)]
pub struct IpmiInfo {
    pub config: Config,
}

fn text<'a>(node: &'a Node, key: &str) -> Result<Option<&'a str>, DriverError> {
    match node.driver_info.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.as_str())),
        Some(_) => Err(invalid(key, "must be a string")),
    }
}

fn invalid(key: &str, reason: &str) -> DriverError {
    DriverError::InvalidInfo { key: key.to_string(), reason: reason.to_string() }
}

/// A number given as a JSON number or a numeric string.
fn number(node: &Node, key: &str) -> Result<Option<f64>, DriverError> {
    match node.driver_info.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(value)) => {
            value.as_f64().map(Some).ok_or_else(|| invalid(key, "not a number"))
        }
        Some(Value::String(value)) => {
            value.trim().parse::<f64>().map(Some).map_err(|_| invalid(key, "not a number"))
        }
        Some(_) => Err(invalid(key, "must be a number")),
    }
}

fn integer(
    node: &Node,
    key: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<Option<u32>, DriverError> {
    let Some(value) = number(node, key)? else { return Ok(None) };
    if value.fract() != 0.0
        || !(f64::from(*range.start())..=f64::from(*range.end())).contains(&value)
    {
        return Err(invalid(
            key,
            &format!("must be a whole number from {} to {}", range.start(), range.end()),
        ));
    }
    Ok(Some(value as u32))
}

impl IpmiInfo {
    /// Parses and checks the node's `driver_info`; touches no hardware.
    pub fn from_node(node: &Node) -> Result<IpmiInfo, DriverError> {
        let address = text(node, "ipmi_address")?.map(str::trim).unwrap_or_default();
        if address.is_empty() {
            return Err(DriverError::MissingInfo { keys: vec!["ipmi_address".into()] });
        }
        let port =
            integer(node, "ipmi_port", 1..=65535)?.map_or(ferric_ipmi::DEFAULT_PORT, |p| p as u16);
        let username = text(node, "ipmi_username")?.unwrap_or_default();
        if username.len() > 16 {
            return Err(invalid("ipmi_username", "longer than the 16 bytes IPMI allows"));
        }
        let password = text(node, "ipmi_password")?.unwrap_or_default();
        if password.len() > 20 {
            // Never echo the value.
            return Err(invalid("ipmi_password", "longer than the 20 bytes IPMI 2.0 allows"));
        }
        let cipher_suite = match integer(node, "ipmi_cipher_suite", 0..=255)? {
            None => None,
            Some(suite @ (3 | 17)) => Some(suite as u8),
            Some(_) => {
                return Err(invalid("ipmi_cipher_suite", "supported cipher suites are 3 and 17"))
            }
        };
        let privilege = match text(node, "ipmi_priv_level")? {
            None => Privilege::Administrator,
            Some(name) => Privilege::parse(name).ok_or_else(|| {
                invalid("ipmi_priv_level", "must be ADMINISTRATOR, OPERATOR, USER or CALLBACK")
            })?,
        };
        let mut config = Config::new(address, port, username, "");
        config.password = Password::new(password);
        config.privilege = privilege;
        config.cipher_suite = cipher_suite;
        if let Some(seconds) = number(node, "ipmi_timeout")? {
            if !(seconds > 0.0 && seconds <= 600.0) {
                return Err(invalid("ipmi_timeout", "must be more than 0 and at most 600 seconds"));
            }
            config.timeout = Duration::from_secs_f64(seconds);
        }
        if let Some(retries) = integer(node, "ipmi_retries", 0..=10)? {
            config.retries = retries;
        }
        Ok(IpmiInfo { config })
    }

    /// "host:port", for messages.
    pub fn bmc(&self) -> String {
        if self.config.host.contains(':') {
            format!("[{}]:{}", self.config.host, self.config.port)
        } else {
            format!("{}:{}", self.config.host, self.config.port)
        }
    }

    /// The cached client of this BMC (a new one if the settings changed).
    fn client(&self) -> Result<Arc<Client>, DriverError> {
        type Cache = Mutex<HashMap<(String, u16, String), Arc<Client>>>;
        static CLIENTS: OnceLock<Cache> = OnceLock::new();
        let key = (self.config.host.clone(), self.config.port, self.config.username.clone());
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

    /// Maps a client error: timeouts stay timeouts, the rest are hardware
    /// refusals naming the BMC.
    fn error(&self, error: IpmiError) -> DriverError {
        match error {
            IpmiError::Timeout { .. } => {
                DriverError::Timeout(format!("IPMI BMC {}: {error}", self.bmc()))
            }
            IpmiError::AuthFailed { .. } => DriverError::Hardware(format!(
                "IPMI BMC {}: {error} (check ipmi_username and ipmi_password)",
                self.bmc()
            )),
            other => DriverError::Hardware(format!("IPMI BMC {}: {other}", self.bmc())),
        }
    }

    async fn power_is_on(&self, client: &Client) -> Result<bool, DriverError> {
        client.power_is_on().await.map_err(|error| self.error(error))
    }

    async fn control(&self, client: &Client, action: ChassisControl) -> Result<(), DriverError> {
        client.chassis_control(action).await.map_err(|error| self.error(error))
    }

    /// Polls the power state until it is `want` or `deadline` passes.
    async fn wait_for(
        &self,
        client: &Client,
        want: PowerState,
        deadline: tokio::time::Instant,
        after: &str,
    ) -> Result<(), DriverError> {
        let backoff = Backoff { first: FIRST_POLL, max: MAX_POLL };
        let wanted_on = want == PowerState::On;
        let reached =
            poll::until(deadline, backoff, || client.power_is_on(), |on| *on == wanted_on).await;
        reached.map_err(|last| {
            let detail =
                last.err().map(|error| format!(" (last error: {error})")).unwrap_or_default();
            DriverError::Timeout(format!(
                "IPMI BMC {}: the node did not reach \"{want}\" after {after}{detail}",
                self.bmc()
            ))
        })
    }
}

/// Power through IPMI Chassis Control and Get Chassis Status.
#[derive(Debug, Clone, Copy, Default)]
pub struct IpmiPower;

/// Boot device through IPMI System Boot Options.
#[derive(Debug, Clone, Copy, Default)]
pub struct IpmiManagement;

fn properties() -> Vec<(&'static str, &'static str)> {
    PROPERTIES.to_vec()
}

#[async_trait::async_trait]
impl Interface for IpmiPower {
    fn kind(&self) -> InterfaceKind {
        InterfaceKind::Power
    }

    fn validate(&self, node: &Node) -> Result<(), DriverError> {
        IpmiInfo::from_node(node).map(drop)
    }

    fn properties(&self) -> Vec<(&'static str, &'static str)> {
        properties()
    }
}

#[async_trait::async_trait]
impl PowerInterface for IpmiPower {
    async fn get_power_state(&self, node: &Node) -> Result<PowerState, DriverError> {
        let info = IpmiInfo::from_node(node)?;
        let client = info.client()?;
        Ok(if info.power_is_on(&client).await? { PowerState::On } else { PowerState::Off })
    }

    async fn set_power_state(
        &self,
        node: &Node,
        target: PowerTarget,
        timeout: Option<Duration>,
    ) -> Result<(), DriverError> {
        let info = IpmiInfo::from_node(node)?;
        let client = info.client()?;
        let soft = matches!(target, PowerTarget::SoftOff | PowerTarget::SoftReboot);
        let timeout = timeout.unwrap_or(if soft {
            DEFAULT_SOFT_POWER_TIMEOUT
        } else {
            DEFAULT_POWER_TIMEOUT
        });
        let now = tokio::time::Instant::now();
        let deadline = now.checked_add(timeout).unwrap_or(now + DEFAULT_SOFT_POWER_TIMEOUT);
        match target {
            PowerTarget::On => {
                info.control(&client, ChassisControl::PowerUp).await?;
                info.wait_for(&client, PowerState::On, deadline, "power on").await
            }
            PowerTarget::Off => {
                info.control(&client, ChassisControl::PowerDown).await?;
                info.wait_for(&client, PowerState::Off, deadline, "power off").await
            }
            PowerTarget::Reboot => {
                // A power cycle is refused by many BMCs when the node is
                // off: then it is just powered on.
                if info.power_is_on(&client).await? {
                    info.control(&client, ChassisControl::PowerCycle).await?;
                } else {
                    info.control(&client, ChassisControl::PowerUp).await?;
                }
                info.wait_for(&client, PowerState::On, deadline, "reboot").await
            }
            PowerTarget::SoftOff => {
                info.control(&client, ChassisControl::SoftShutdown).await?;
                info.wait_for(&client, PowerState::Off, deadline, "soft power off").await
            }
            PowerTarget::SoftReboot => {
                if info.power_is_on(&client).await? {
                    info.control(&client, ChassisControl::SoftShutdown).await?;
                    info.wait_for(&client, PowerState::Off, deadline, "soft power off").await?;
                }
                info.control(&client, ChassisControl::PowerUp).await?;
                info.wait_for(&client, PowerState::On, deadline, "soft reboot").await
            }
        }
    }
}

/// Whether the node boots in UEFI mode: `instance_info.deploy_boot_mode`,
/// then the `boot_mode` capability, then the node's known boot mode; UEFI
/// when nothing says otherwise (Ironic's default).
pub fn boot_mode_is_uefi(node: &Node) -> bool {
    let from_instance = node.instance_info.get("deploy_boot_mode").and_then(Value::as_str);
    let from_capabilities = match node.properties.get("capabilities") {
        Some(Value::String(text)) => text.split(',').find_map(|pair| {
            let (key, value) = pair.split_once(':')?;
            (key.trim() == "boot_mode").then(|| value.trim())
        }),
        Some(Value::Object(map)) => map.get("boot_mode").and_then(Value::as_str),
        _ => None,
    };
    let mode = from_instance.or(from_capabilities).or(node.boot_mode.as_deref()).unwrap_or("uefi");
    !mode.eq_ignore_ascii_case("bios")
}

fn to_ipmi(device: BootDevice) -> Option<IpmiBootDevice> {
    match device {
        BootDevice::Pxe => Some(IpmiBootDevice::Pxe),
        BootDevice::Disk => Some(IpmiBootDevice::Disk),
        BootDevice::Cdrom => Some(IpmiBootDevice::Cdrom),
        BootDevice::Bios => Some(IpmiBootDevice::BiosSetup),
        _ => None,
    }
}

fn from_ipmi(device: IpmiBootDevice) -> Option<BootDevice> {
    match device {
        IpmiBootDevice::Pxe => Some(BootDevice::Pxe),
        IpmiBootDevice::Disk | IpmiBootDevice::RemoteDisk => Some(BootDevice::Disk),
        IpmiBootDevice::DiskSafeMode => Some(BootDevice::Safe),
        IpmiBootDevice::Cdrom | IpmiBootDevice::RemoteCdrom => Some(BootDevice::Cdrom),
        IpmiBootDevice::BiosSetup => Some(BootDevice::Bios),
        IpmiBootDevice::Floppy | IpmiBootDevice::RemoteFloppy => Some(BootDevice::Floppy),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Interface for IpmiManagement {
    fn kind(&self) -> InterfaceKind {
        InterfaceKind::Management
    }

    fn validate(&self, node: &Node) -> Result<(), DriverError> {
        IpmiInfo::from_node(node).map(drop)
    }

    fn properties(&self) -> Vec<(&'static str, &'static str)> {
        properties()
    }
}

#[async_trait::async_trait]
impl ManagementInterface for IpmiManagement {
    fn supported_boot_devices(&self, _node: &Node) -> Vec<BootDevice> {
        vec![BootDevice::Pxe, BootDevice::Disk, BootDevice::Cdrom, BootDevice::Bios]
    }

    async fn get_boot_device(
        &self,
        node: &Node,
    ) -> Result<(Option<BootDevice>, Option<bool>), DriverError> {
        let info = IpmiInfo::from_node(node)?;
        let client = info.client()?;
        let flags = client.boot_flags().await.map_err(|error| info.error(error))?;
        Ok((from_ipmi(flags.device), Some(flags.persistent)))
    }

    async fn set_boot_device(
        &self,
        node: &mut Node,
        device: BootDevice,
        persistent: bool,
    ) -> Result<(), DriverError> {
        let Some(ipmi_device) = to_ipmi(device) else {
            return Err(DriverError::Unsupported {
                interface: InterfaceKind::Management,
                operation: format!("boot device {device}"),
            });
        };
        let info = IpmiInfo::from_node(node)?;
        let client = info.client()?;
        // Keep the BMC from dropping the setting after 60 s without a power
        // action (as Ironic does); BMCs without the parameter refuse it,
        // which is fine.
        match client.disable_boot_flag_timeout().await {
            Ok(()) | Err(IpmiError::CompletionCode { .. }) => {}
            Err(error) => return Err(info.error(error)),
        }
        let flags = BootFlags::new(ipmi_device, persistent, boot_mode_is_uefi(node));
        client.set_boot_flags(flags).await.map_err(|error| info.error(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferric_ipmi::testing::{tools_present, MockBmc, SimBmc};
    use ferric_types::{HardwareType, ProvisionState};
    use serde_json::json;

    fn node(info: Value) -> Node {
        let mut node = Node::new(uuid::Uuid::new_v4(), HardwareType::Ipmi, ProvisionState::Enroll);
        node.driver_info = info.as_object().cloned().unwrap_or_default();
        node
    }

    fn invalid_key(info: Value) -> String {
        match IpmiInfo::from_node(&node(info)) {
            Err(DriverError::InvalidInfo { key, .. }) => key,
            other => panic!("expected InvalidInfo, got {other:?}"),
        }
    }

    #[test]
    fn driver_info_parses_with_ironic_defaults() {
        let info = IpmiInfo::from_node(&node(json!({"ipmi_address": "127.0.0.1"}))).expect("parse");
        assert_eq!(info.config.port, 623);
        assert_eq!(info.config.privilege, Privilege::Administrator);
        assert_eq!(info.config.cipher_suite, None);
        assert_eq!(info.config.username, "");
        let info = IpmiInfo::from_node(&node(json!({
            "ipmi_address": "127.0.0.1", "ipmi_port": "6230", "ipmi_username": "admin",
            "ipmi_password": "pw", "ipmi_cipher_suite": "3", "ipmi_priv_level": "operator",
            "ipmi_timeout": 1.5, "ipmi_retries": 0,
        })))
        .expect("parse");
        assert_eq!((info.config.port, info.config.cipher_suite), (6230, Some(3)));
        assert_eq!(info.config.privilege, Privilege::Operator);
        assert_eq!((info.config.timeout, info.config.retries), (Duration::from_millis(1500), 0));
        assert_eq!(info.bmc(), "127.0.0.1:6230");
    }

    #[test]
    fn driver_info_problems_name_the_key() {
        assert!(matches!(
            IpmiInfo::from_node(&node(json!({"ipmi_port": 623}))),
            Err(DriverError::MissingInfo { keys }) if keys == ["ipmi_address"]
        ));
        let base = |extra: Value| {
            let mut info = json!({"ipmi_address": "127.0.0.1"});
            info.as_object_mut()
                .expect("object")
                .extend(extra.as_object().cloned().unwrap_or_default());
            info
        };
        assert_eq!(invalid_key(base(json!({"ipmi_port": 0}))), "ipmi_port");
        assert_eq!(invalid_key(base(json!({"ipmi_port": "x"}))), "ipmi_port");
        assert_eq!(invalid_key(base(json!({"ipmi_cipher_suite": 1}))), "ipmi_cipher_suite");
        assert_eq!(invalid_key(base(json!({"ipmi_priv_level": "ROOT"}))), "ipmi_priv_level");
        assert_eq!(invalid_key(base(json!({"ipmi_timeout": 0}))), "ipmi_timeout");
        assert_eq!(invalid_key(base(json!({"ipmi_retries": 11}))), "ipmi_retries");
        assert_eq!(
            invalid_key(base(json!({"ipmi_username": "a-very-long-user-name"}))),
            "ipmi_username"
        );
        assert_eq!(invalid_key(base(json!({"ipmi_address": 5}))), "ipmi_address");
        let secret = "a-password-far-longer-than-twenty";
        let error =
            IpmiInfo::from_node(&node(base(json!({"ipmi_password": secret})))).expect_err("long");
        assert!(!error.to_string().contains(secret), "{error}");
    }

    #[test]
    fn both_interfaces_list_the_keys_and_validate_offline() {
        for interface in [&IpmiPower as &dyn Interface, &IpmiManagement] {
            let keys: Vec<&str> = interface.properties().iter().map(|(key, _)| *key).collect();
            assert!(keys.contains(&"ipmi_address") && keys.contains(&"ipmi_cipher_suite"));
            // Port 9 on loopback: nothing is sent by validate.
            interface
                .validate(&node(json!({"ipmi_address": "127.0.0.1", "ipmi_port": 9})))
                .expect("valid");
            assert!(interface.validate(&node(json!({}))).is_err());
        }
    }

    #[test]
    fn boot_mode_defaults_to_uefi() {
        let mut n = node(json!({}));
        assert!(boot_mode_is_uefi(&n));
        n.properties.insert("capabilities".into(), json!("secure_boot:false,boot_mode:bios"));
        assert!(!boot_mode_is_uefi(&n));
        n.instance_info.insert("deploy_boot_mode".into(), json!("uefi"));
        assert!(boot_mode_is_uefi(&n));
    }

    fn mock_node(bmc: &MockBmc, password: &str) -> Node {
        node(json!({
            "ipmi_address": "127.0.0.1", "ipmi_port": bmc.addr().port(),
            "ipmi_username": "admin", "ipmi_password": password, "ipmi_timeout": 0.6,
        }))
    }

    #[tokio::test]
    async fn power_and_boot_device_against_the_mock_bmc() {
        let bmc = MockBmc::start("admin", "pw", &[17, 3]).await.expect("bmc");
        let mut n = mock_node(&bmc, "pw");
        let timeout = Some(Duration::from_secs(5));
        assert_eq!(IpmiPower.get_power_state(&n).await.expect("state"), PowerState::Off);
        // Rebooting an off node powers it on.
        IpmiPower.set_power_state(&n, PowerTarget::Reboot, timeout).await.expect("reboot");
        assert_eq!(IpmiPower.get_power_state(&n).await.expect("state"), PowerState::On);
        IpmiPower.set_power_state(&n, PowerTarget::Reboot, timeout).await.expect("reboot");
        IpmiPower.set_power_state(&n, PowerTarget::SoftReboot, timeout).await.expect("soft reboot");
        IpmiPower.set_power_state(&n, PowerTarget::SoftOff, timeout).await.expect("soft off");
        IpmiPower.set_power_state(&n, PowerTarget::On, timeout).await.expect("on");
        IpmiPower.set_power_state(&n, PowerTarget::Off, timeout).await.expect("off");
        assert_eq!(bmc.state().controls, vec![0x01, 0x02, 0x05, 0x01, 0x05, 0x01, 0x00]);

        IpmiManagement.set_boot_device(&mut n, BootDevice::Pxe, true).await.expect("set");
        assert_eq!(bmc.state().boot_flags, [0xE0, 0x04, 0, 0, 0]);
        assert_eq!(
            IpmiManagement.get_boot_device(&n).await.expect("get"),
            (Some(BootDevice::Pxe), Some(true))
        );
        n.properties.insert("capabilities".into(), json!({"boot_mode": "bios"}));
        IpmiManagement.set_boot_device(&mut n, BootDevice::Bios, false).await.expect("set");
        assert_eq!(bmc.state().boot_flags, [0x80, 0x18, 0, 0, 0]);
        assert!(matches!(
            IpmiManagement.set_boot_device(&mut n, BootDevice::Wanboot, false).await,
            Err(DriverError::Unsupported { .. })
        ));
        // One session served every call.
        assert_eq!(bmc.state().sessions_opened, 1);
    }

    #[tokio::test]
    async fn bmc_errors_map_to_driver_errors() {
        let bmc = MockBmc::start("admin", "pw", &[17]).await.expect("bmc");
        let wrong = mock_node(&bmc, "hunter2");
        match IpmiPower.get_power_state(&wrong).await {
            Err(DriverError::Hardware(message)) => {
                assert!(message.contains(&format!("127.0.0.1:{}", bmc.addr().port())), "{message}");
                assert!(
                    message.contains("authentication failed") && !message.contains("hunter2"),
                    "{message}"
                );
            }
            other => panic!("expected a hardware error, got {other:?}"),
        }
        let right = mock_node(&bmc, "pw");
        bmc.state().fail = Some((0x00, 0x02, 0xD5));
        match IpmiPower.set_power_state(&right, PowerTarget::On, None).await {
            Err(DriverError::Hardware(message)) => assert!(message.contains("0xd5"), "{message}"),
            other => panic!("expected a hardware error, got {other:?}"),
        }
        bmc.state().fail = None;
        // The chassis never turns on: the wait times out.
        bmc.state().fail = Some((0x00, 0x02, 0x00));
        let error = IpmiPower
            .set_power_state(&right, PowerTarget::On, Some(Duration::from_millis(500)))
            .await
            .expect_err("never on");
        assert!(matches!(error, DriverError::Timeout(_)), "{error:?}");
        bmc.state().silent = true;
        let error = IpmiPower.get_power_state(&right).await.expect_err("silent");
        assert!(
            matches!(&error, DriverError::Timeout(message) if message.contains("127.0.0.1")),
            "{error:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn power_and_boot_device_against_ipmi_sim() {
        if !tools_present("ferric-driver ipmi_sim test", &["ipmi_sim", "ipmitool"]) {
            return;
        }
        let sim = SimBmc::start().expect("ipmi_sim");
        let mut n = node(json!({
            "ipmi_address": "127.0.0.1", "ipmi_port": sim.port(), "ipmi_username": SimBmc::USER,
            "ipmi_password": SimBmc::PASSWORD,
        }));
        let ipmitool_power = || {
            let output = sim.ipmitool(&["power", "status"]).expect("ipmitool");
            String::from_utf8_lossy(&output.stdout).trim().to_string()
        };
        let timeout = Some(Duration::from_secs(10));
        assert_eq!(IpmiPower.get_power_state(&n).await.expect("state"), PowerState::Off);
        IpmiPower.set_power_state(&n, PowerTarget::On, timeout).await.expect("on");
        assert_eq!(ipmitool_power(), "Chassis Power is on");
        IpmiPower.set_power_state(&n, PowerTarget::Reboot, timeout).await.expect("reboot");
        assert_eq!(IpmiPower.get_power_state(&n).await.expect("state"), PowerState::On);
        IpmiPower.set_power_state(&n, PowerTarget::SoftOff, timeout).await.expect("soft off");
        assert_eq!(ipmitool_power(), "Chassis Power is off");
        IpmiPower.set_power_state(&n, PowerTarget::SoftReboot, timeout).await.expect("soft reboot");
        IpmiPower.set_power_state(&n, PowerTarget::Off, timeout).await.expect("off");
        assert_eq!(ipmitool_power(), "Chassis Power is off");
        for device in [BootDevice::Pxe, BootDevice::Disk, BootDevice::Cdrom, BootDevice::Bios] {
            IpmiManagement.set_boot_device(&mut n, device, false).await.expect("set");
            assert_eq!(IpmiManagement.get_boot_device(&n).await.expect("get").0, Some(device));
        }
    }

    #[tokio::test]
    async fn an_unreachable_bmc_is_a_timeout() {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let n = node(
            json!({"ipmi_address": "127.0.0.1", "ipmi_port": port, "ipmi_timeout": 0.3, "ipmi_retries": 1}),
        );
        let started = std::time::Instant::now();
        assert!(matches!(IpmiPower.get_power_state(&n).await, Err(DriverError::Timeout(_))));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
