//! The `direct` deploy interface: the node boots the deploy ramdisk and its
//! agent writes the image to disk (Ironic's name for its agent-driven
//! deploy). The conductor boots the ramdisk before the first step that
//! [needs the agent](Interface::step_needs_agent); this interface then
//! drives the agent through its command API ([`AgentClient`]).
//!
//! Deploy steps (priority): `deploy` (100, the agent is up), `write_image`
//! (80, streamed to disk, checksum verified, config drive added),
//! `prepare_instance_boot` (60, boot from disk from now on),
//! `tear_down_agent` (40, sync and power off), `switch_to_tenant_network`
//! (30), `boot_instance` (20, power on). Clean steps:
//! `erase_devices_metadata` (99) and `erase_devices` (0: on request only —
//! a full erase takes hours on spinning disks).

use std::sync::Arc;
use std::time::Duration;

use ferric_types::agent::{CommandResult, CommandStatus};
use ferric_types::{BootDevice, InterfaceKind, JsonObject, Node, PowerTarget};
use serde_json::{json, Map, Value};

use crate::agent_client::AgentClient;
use crate::error::DriverError;
use crate::interfaces::{
    BootInterface, DeployInterface, Interface, ManagementInterface, NetworkInterface,
    PowerInterface, StepOutcome,
};
use crate::steps::{Step, StepPhase};

/// Where the running agent command's id is kept between call-backs.
const COMMAND_KEY: &str = "agent_command_id";
/// Where a running image write's progress is shown.
pub const PROGRESS_KEY: &str = "deploy_progress";

const POWER_TIMEOUT: Duration = Duration::from_secs(120);

/// The agent-driven deploy of one node, with the interfaces it steers.
pub struct DirectDeploy {
    pub power: Arc<dyn PowerInterface>,
    pub management: Arc<dyn ManagementInterface>,
    pub boot: Arc<dyn BootInterface>,
    pub network: Arc<dyn NetworkInterface>,
}

fn text<'a>(object: &'a JsonObject, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str).map(str::trim).filter(|text| !text.is_empty())
}

fn invalid(key: &str, reason: impl Into<String>) -> DriverError {
    DriverError::InvalidInfo { key: format!("instance_info.{key}"), reason: reason.into() }
}

/// The image checksum as `algorithm:hex`, from `image_os_hash_algo` +
/// `image_os_hash_value` or `image_checksum`.
fn image_checksum(node: &Node) -> Result<String, DriverError> {
    let info = &node.instance_info;
    let (algorithm, value) = match (
        text(info, "image_os_hash_algo"),
        text(info, "image_os_hash_value"),
    ) {
        (Some(algorithm), Some(value)) => (algorithm.to_ascii_lowercase(), value.to_owned()),
        (None, None) => {
            let Some(checksum) = text(info, "image_checksum") else {
                return Err(DriverError::MissingInfo {
                    keys: vec!["instance_info.image_checksum (or image_os_hash_algo and image_os_hash_value)".into()],
                });
            };
            if checksum.starts_with("http://") || checksum.starts_with("https://") {
                return Err(invalid(
                    "image_checksum",
                    "checksum files by URL are not supported; give the checksum itself",
                ));
            }
            match checksum.split_once(':') {
                Some((algorithm, value)) => (algorithm.to_ascii_lowercase(), value.to_owned()),
                None => {
                    let algorithm =
                        match checksum.len() {
                            64 => "sha256",
                            128 => "sha512",
                            32 => return Err(invalid(
                                "image_checksum",
                                "MD5 checksums are not accepted; give a sha256 or sha512 checksum",
                            )),
                            _ => return Err(invalid(
                                "image_checksum",
                                "not a sha256 (64 hex digits) or sha512 (128 hex digits) checksum",
                            )),
                        };
                    (algorithm.to_owned(), checksum.to_owned())
                }
            }
        }
        _ => {
            return Err(invalid(
                "image_os_hash_algo",
                "image_os_hash_algo and image_os_hash_value go together",
            ))
        }
    };
    let expected_len = match algorithm.as_str() {
        "sha256" => 64,
        "sha512" => 128,
        other => {
            return Err(invalid(
                "image_os_hash_algo",
                format!("\"{other}\" is not supported; use sha256 or sha512"),
            ))
        }
    };
    if value.len() != expected_len || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("image_checksum", format!("not a valid {algorithm} digest")));
    }
    Ok(format!("{algorithm}:{}", value.to_ascii_lowercase()))
}

/// The URL the agent downloads: `image_url` (resolved by the conductor
/// from ferric's image store) or `image_source` itself.
fn image_source(node: &Node) -> Result<&str, DriverError> {
    if let Some(url) = text(&node.instance_info, "image_url") {
        return Ok(url);
    }
    let source = text(&node.instance_info, "image_source").ok_or_else(|| {
        DriverError::MissingInfo { keys: vec!["instance_info.image_source".into()] }
    })?;
    if !(source.starts_with("http://")
        || source.starts_with("https://")
        || source.starts_with("file://"))
    {
        return Err(invalid(
            "image_source",
            format!(
                "\"{source}\" is not an http(s):// or file:// URL, nor an image in ferric's image store"
            ),
        ));
    }
    Ok(source)
}

/// What the agent needs to know of the node (as ironic-python-agent's
/// commands receive it).
fn node_for_agent(node: &Node) -> Value {
    json!({"uuid": node.uuid.to_string(), "properties": node.properties})
}

impl DirectDeploy {
    async fn power(&self, node: &mut Node, target: PowerTarget) -> Result<(), DriverError> {
        self.power.set_power_state(node, target, Some(POWER_TIMEOUT)).await?;
        node.power_state = Some(target.resulting_state());
        Ok(())
    }

    /// Starts an agent command in the background and remembers its id.
    async fn start(
        &self,
        node: &mut Node,
        name: &str,
        params: Map<String, Value>,
    ) -> Result<StepOutcome, DriverError> {
        let agent = AgentClient::for_node(node)?;
        let result = agent.run(name, params, false).await?;
        match result.command_status {
            CommandStatus::Failed => {
                Err(DriverError::Hardware(format!("{name}: {}", result.error_message())))
            }
            CommandStatus::Succeeded => Ok(StepOutcome::Done),
            CommandStatus::Running => {
                node.driver_internal_info.insert(COMMAND_KEY.into(), Value::String(result.id));
                Ok(StepOutcome::Wait)
            }
        }
    }

    /// Checks on the command started by the current step.
    async fn poll(&self, node: &mut Node) -> Result<CommandResult, DriverError> {
        let id = node
            .driver_internal_info
            .get(COMMAND_KEY)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                DriverError::Hardware("no agent command is recorded for this step".into())
            })?;
        let agent = AgentClient::for_node(node)?;
        let result = agent.get(&id).await?;
        if result.command_status != CommandStatus::Running {
            node.driver_internal_info.remove(COMMAND_KEY);
        }
        Ok(result)
    }

    fn write_image_params(&self, node: &Node) -> Result<Map<String, Value>, DriverError> {
        let source = image_source(node)?;
        let checksum = image_checksum(node)?;
        let (algorithm, value) = checksum.split_once(':').unwrap_or(("sha256", checksum.as_str()));
        let mut image_info = json!({
            "id": source,
            "urls": [source],
            "os_hash_algo": algorithm,
            "os_hash_value": value,
            "image_type": "whole-disk",
        });
        if let Some(format) = text(&node.instance_info, "image_disk_format") {
            image_info["disk_format"] = Value::String(format.to_owned());
        }
        if let Some(hints) = node.properties.get("root_device") {
            image_info["root_device"] = hints.clone();
        }
        let mut params = Map::new();
        params.insert("image_info".into(), image_info);
        params.insert(
            "configdrive".into(),
            node.instance_info.get("configdrive").cloned().unwrap_or(Value::Null),
        );
        params.insert("node".into(), node_for_agent(node));
        Ok(params)
    }
}

#[async_trait::async_trait]
impl Interface for DirectDeploy {
    fn kind(&self) -> InterfaceKind {
        InterfaceKind::Deploy
    }

    fn validate(&self, node: &Node) -> Result<(), DriverError> {
        self.boot.validate(node)?;
        if node.provision_state == ferric_types::ProvisionState::Deploying
            || node.instance_info.contains_key("image_source")
        {
            let stored_image = text(&node.instance_info, "image_source")
                .is_some_and(|source| !source.contains("://"))
                && !node.instance_info.contains_key("image_url");
            // A stored image's URL and checksum are filled in at deploy.
            if !stored_image {
                image_source(node)?;
                image_checksum(node)?;
            }
            if node.instance_info.contains_key("kernel")
                || node.instance_info.contains_key("ramdisk")
            {
                return Err(invalid(
                    "kernel",
                    "partition images (instance_info kernel/ramdisk) are not supported; deploy a whole-disk image",
                ));
            }
        }
        Ok(())
    }

    fn properties(&self) -> Vec<(&'static str, &'static str)> {
        vec![(
            "deploy_forces_oob_reboot",
            "Ignored: ferric always powers the node off through its BMC after deploying.",
        )]
    }

    fn steps(&self, phase: StepPhase) -> Vec<Step> {
        let step = |name: &str, priority| Step::new(InterfaceKind::Deploy, name, priority);
        match phase {
            StepPhase::Deploy => vec![
                step("deploy", 100),
                step("write_image", 80),
                step("prepare_instance_boot", 60),
                step("tear_down_agent", 40),
                step("switch_to_tenant_network", 30),
                step("boot_instance", 20),
            ],
            StepPhase::Clean | StepPhase::Service => vec![
                Step { abortable: true, ..step("erase_devices_metadata", 99) },
                Step { abortable: true, ..step("erase_devices", 0) },
            ],
            StepPhase::Verify => Vec::new(),
        }
    }

    fn step_needs_agent(&self, step: &Step) -> bool {
        matches!(
            step.step.as_str(),
            "deploy" | "write_image" | "erase_devices_metadata" | "erase_devices"
        )
    }

    async fn execute_step(&self, node: &mut Node, step: &Step) -> Result<StepOutcome, DriverError> {
        match step.step.as_str() {
            // The conductor booted the ramdisk for it and the agent called back.
            "deploy" => Ok(StepOutcome::Done),
            "write_image" => {
                let params = self.write_image_params(node)?;
                node.driver_internal_info.remove(PROGRESS_KEY);
                self.start(node, "standby.write_image", params).await
            }
            "prepare_instance_boot" => {
                self.boot.prepare_instance(node).await?;
                self.management.set_boot_device(node, BootDevice::Disk, true).await?;
                Ok(StepOutcome::Done)
            }
            "tear_down_agent" => {
                if let Ok(agent) = AgentClient::for_node(node) {
                    if let Err(error) = agent.run("standby.sync", Map::new(), true).await {
                        tracing::warn!(node = %node.uuid, %error, "agent did not sync before power off");
                    }
                }
                self.power(node, PowerTarget::Off).await?;
                self.boot.clean_up_ramdisk(node).await?;
                for key in ["agent_url", "ramdisk_booted"] {
                    node.driver_internal_info.remove(key);
                }
                Ok(StepOutcome::Done)
            }
            "switch_to_tenant_network" => {
                self.network.remove_provisioning_network(node).await?;
                self.network.configure_tenant_networks(node).await?;
                Ok(StepOutcome::Done)
            }
            "boot_instance" => {
                self.power(node, PowerTarget::On).await?;
                Ok(StepOutcome::Done)
            }
            "erase_devices_metadata" | "erase_devices" => {
                let params: Map<String, Value> = [
                    ("step".to_owned(), serde_json::to_value(step).unwrap_or(Value::Null)),
                    ("node".to_owned(), node_for_agent(node)),
                    ("ports".to_owned(), Value::Array(Vec::new())),
                    ("clean_version".to_owned(), json!({})),
                ]
                .into_iter()
                .collect();
                self.start(node, "clean.execute_clean_step", params).await
            }
            other => Err(DriverError::Unsupported {
                interface: InterfaceKind::Deploy,
                operation: format!("step {other}"),
            }),
        }
    }

    async fn continue_step(
        &self,
        node: &mut Node,
        step: &Step,
    ) -> Result<StepOutcome, DriverError> {
        if !matches!(step.step.as_str(), "write_image" | "erase_devices_metadata" | "erase_devices")
        {
            return Ok(StepOutcome::Done);
        }
        let result = self.poll(node).await?;
        match result.command_status {
            CommandStatus::Running => {
                if let Some(progress) =
                    result.command_result.as_ref().and_then(|r| r.get("progress"))
                {
                    let written = progress.get("written").and_then(Value::as_u64).unwrap_or(0);
                    let total = progress.get("total").and_then(Value::as_u64).filter(|t| *t > 0);
                    let mut shown = json!({"written": written, "total": total});
                    if let Some(total) = total {
                        let percent = (written as f64 * 100.0 / total as f64).min(100.0);
                        shown["percent"] = json!((percent * 10.0).round() / 10.0);
                    }
                    node.driver_internal_info.insert(PROGRESS_KEY.into(), shown);
                }
                Ok(StepOutcome::Wait)
            }
            CommandStatus::Succeeded => {
                if step.step == "write_image" {
                    let result = result.command_result.unwrap_or(Value::Null);
                    if let Some(device) = result.get("device").and_then(Value::as_str) {
                        node.driver_internal_info
                            .insert("root_device_used".into(), Value::String(device.to_owned()));
                    }
                    let written = result.get("bytes_written").and_then(Value::as_u64);
                    node.driver_internal_info.insert(
                        PROGRESS_KEY.into(),
                        json!({"written": written, "total": written, "percent": 100.0}),
                    );
                    node.driver_internal_info
                        .insert("is_whole_disk_image".into(), Value::Bool(true));
                }
                Ok(StepOutcome::Done)
            }
            CommandStatus::Failed => Err(DriverError::Hardware(format!(
                "the agent failed {}: {}",
                step.step,
                result.error_message()
            ))),
        }
    }
}

#[async_trait::async_trait]
impl DeployInterface for DirectDeploy {
    async fn tear_down(&self, node: &mut Node) -> Result<(), DriverError> {
        if !node.disable_power_off {
            self.power(node, PowerTarget::Off).await?;
        }
        self.boot.clean_up_instance(node).await?;
        node.driver_internal_info.remove(PROGRESS_KEY);
        node.driver_internal_info.remove("root_device_used");
        Ok(())
    }
}

/// The `agent` inspect interface: the node boots the deploy ramdisk and
/// the agent reports its inventory (`system.get_inventory`); the conductor
/// turns it into properties and ports ([`properties_from_inventory`]).
pub struct AgentInspect;

#[async_trait::async_trait]
impl Interface for AgentInspect {
    fn kind(&self) -> InterfaceKind {
        InterfaceKind::Inspect
    }

    fn validate(&self, node: &Node) -> Result<(), DriverError> {
        let _ = node;
        Ok(())
    }
}

#[async_trait::async_trait]
impl crate::interfaces::InspectInterface for AgentInspect {
    fn needs_agent(&self) -> bool {
        true
    }

    async fn inspect_hardware(&self, node: &mut Node) -> Result<StepOutcome, DriverError> {
        let _ = node;
        Ok(StepOutcome::Wait)
    }
}

/// What inspection learns from an inventory in ironic-python-agent's
/// format: `cpu_arch`, `cpus`, `memory_mb`, `local_gb` (the root disk
/// candidate's size in GiB, less one, as Ironic does), and the MAC
/// addresses of interfaces that have an IPv4 address (the ones that can
/// network-boot), for ports.
pub fn properties_from_inventory(inventory: &Value) -> (JsonObject, Vec<String>) {
    let mut properties = JsonObject::new();
    if let Some(arch) = inventory.pointer("/cpu/architecture").and_then(Value::as_str) {
        properties.insert("cpu_arch".into(), json!(arch));
    }
    if let Some(count) = inventory.pointer("/cpu/count").and_then(Value::as_u64) {
        properties.insert("cpus".into(), json!(count));
    }
    let memory = inventory.pointer("/memory/physical_mb").and_then(Value::as_u64).or_else(|| {
        inventory.pointer("/memory/total").and_then(Value::as_u64).map(|bytes| bytes >> 20)
    });
    if let Some(memory) = memory {
        properties.insert("memory_mb".into(), json!(memory));
    }
    let gib = 1u64 << 30;
    let root = inventory
        .get("disks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|disk| disk.get("size").and_then(Value::as_u64))
        .filter(|size| *size >= 4 * gib)
        .min();
    if let Some(size) = root {
        properties.insert("local_gb".into(), json!((size / gib).saturating_sub(1)));
    }
    let macs = inventory
        .get("interfaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|nic| {
            nic.get("ipv4_address").and_then(Value::as_str).is_some_and(|a| !a.is_empty())
        })
        .filter_map(|nic| nic.get("mac_address").and_then(Value::as_str).map(str::to_owned))
        .collect();
    (properties, macs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ferric_types::{HardwareType, ProvisionState};
    use uuid::Uuid;

    fn node_with(info: Value) -> Node {
        let mut node =
            Node::new(Uuid::new_v4(), HardwareType::FakeHardware, ProvisionState::Available);
        node.instance_info = info.as_object().cloned().unwrap_or_default();
        node
    }

    #[test]
    fn inventories_become_properties_and_ports() {
        let inventory = json!({
            "cpu": {"architecture": "x86_64", "count": 4},
            "memory": {"total": 8u64 << 30, "physical_mb": 8192},
            "disks": [{"name": "/dev/sdb", "size": 2u64 << 30}, {"name": "/dev/vda", "size": 20u64 << 30},
                      {"name": "/dev/nvme0n1", "size": 100u64 << 30}],
            "interfaces": [{"name": "eth0", "mac_address": "52:54:00:12:34:56", "ipv4_address": "198.18.0.100"},
                           {"name": "eth1", "mac_address": "52:54:00:12:34:57", "ipv4_address": null}],
        });
        let (properties, macs) = properties_from_inventory(&inventory);
        assert_eq!(
            Value::Object(properties),
            json!({"cpu_arch": "x86_64", "cpus": 4, "memory_mb": 8192, "local_gb": 19})
        );
        assert_eq!(macs, vec!["52:54:00:12:34:56".to_owned()]);
        let (properties, macs) = properties_from_inventory(&json!({"cpu": "garbage"}));
        assert!(properties.is_empty() && macs.is_empty());
    }

    #[test]
    fn checksums_are_read_from_either_form() {
        let hex = "ab".repeat(32);
        let node = node_with(json!({"image_checksum": hex.to_uppercase()}));
        assert_eq!(image_checksum(&node).unwrap(), format!("sha256:{hex}"));
        let node = node_with(
            json!({"image_os_hash_algo": "SHA512", "image_os_hash_value": "cd".repeat(64)}),
        );
        assert_eq!(image_checksum(&node).unwrap(), format!("sha512:{}", "cd".repeat(64)));
        let node = node_with(json!({"image_checksum": format!("sha256:{hex}")}));
        assert!(image_checksum(&node).is_ok());
    }

    #[test]
    fn bad_checksums_say_what_is_wrong() {
        for (info, needle) in [
            (json!({}), "image_checksum"),
            (json!({"image_checksum": "0123456789abcdef0123456789abcdef"}), "MD5"),
            (json!({"image_checksum": "xyz"}), "not a sha256"),
            (json!({"image_os_hash_algo": "md5", "image_os_hash_value": "00"}), "not supported"),
            (json!({"image_os_hash_algo": "sha256"}), "go together"),
            (
                json!({"image_checksum": format!("sha256:{}", "zz".repeat(32))}),
                "not a valid sha256",
            ),
            (json!({"image_checksum": "http://example.invalid/SHA256SUMS"}), "by URL"),
        ] {
            let error = image_checksum(&node_with(info.clone())).unwrap_err().to_string();
            assert!(error.contains(needle), "{info}: {error}");
        }
    }

    #[test]
    fn image_sources_must_be_urls_the_agent_can_fetch() {
        assert!(
            image_source(&node_with(json!({"image_source": "http://198.18.0.1/a.img"}))).is_ok()
        );
        assert!(image_source(&node_with(json!({"image_source": "file:///srv/a.img"}))).is_ok());
        let error =
            image_source(&node_with(json!({"image_source": "6d3b6c4e-glance-id"}))).unwrap_err();
        assert!(error.to_string().contains("not an http(s)"));
        let node = node_with(
            json!({"image_source": "demo", "image_url": "http://198.18.0.1:8080/images/ab"}),
        );
        assert_eq!(image_source(&node).unwrap(), "http://198.18.0.1:8080/images/ab");
    }
}
