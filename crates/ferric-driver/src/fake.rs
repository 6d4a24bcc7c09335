//! `fake-hardware`: every interface succeeds without touching anything.
//!
//! Power state and boot device are kept on the node itself, so a fake node
//! behaves consistently across conductor restarts. Each interface can be
//! slowed down with `driver_info.fake_<interface>_delay` (seconds, or a
//! `min:max` range picked at random per call) to model real hardware.

use std::time::Duration;

use ferric_types::{
    BootDevice, InterfaceKind, Node, PowerState, PowerTarget, VirtualMedia, VirtualMediaSlot,
    VmediaDevice,
};
use rand::Rng;
use serde_json::Value;

use crate::error::DriverError;
use crate::interfaces::{
    BootInterface, DeployInterface, InspectInterface, Interface, ManagementInterface,
    NetworkInterface, PowerInterface, RescueInterface, StepOutcome,
};
use crate::steps::{Step, StepPhase};

const BOOT_DEVICE_KEY: &str = "fake_boot_device";
const BOOT_PERSISTENT_KEY: &str = "fake_boot_device_persistent";
/// The fake BMC's attached virtual media: `{device: {image_url, ...}}`.
const VMEDIA_KEY: &str = "fake_vmedia";
/// The fake BMC's BIOS settings: `[{name, value}]`.
const BIOS_KEY: &str = "fake_bios_settings";

/// The fake BMC's firmware: `{component: version}`; components it has
/// never flashed report [`FAKE_FIRMWARE_VERSION`].
const FIRMWARE_KEY: &str = "fake_firmware";
/// The components of a fake machine.
const FAKE_FIRMWARE_COMPONENTS: [&str; 2] = ["bios", "bmc"];
/// The version of fake firmware as shipped.
const FAKE_FIRMWARE_VERSION: &str = "1.0.0";

/// The version a fake flash installs: the version in the image's file name
/// (`bios-2.1.0.bin` → `2.1.0`), else the current version with its last
/// number bumped.
fn flashed_version(url: &str, current: &str) -> String {
    let file = url.split(['?', '#']).next().unwrap_or(url);
    let file = file.rsplit('/').next().unwrap_or(file);
    let mut best = "";
    let mut rest = file;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        let run = &rest[start..];
        let len = run.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(run.len());
        let token = run[..len].trim_end_matches('.');
        if token.contains('.') && token.len() > best.len() {
            best = token;
        }
        rest = &run[len..];
    }
    if !best.is_empty() {
        return best.to_owned();
    }
    let mut parts: Vec<String> = current.split('.').map(str::to_owned).collect();
    match parts.last().and_then(|last| last.parse::<u64>().ok()) {
        Some(number) => {
            if let Some(last) = parts.last_mut() {
                *last = (number + 1).to_string();
            }
            parts.join(".")
        }
        None => format!("{current}.1"),
    }
}

/// The fake firmware `update` step: "flashes" each `{component, url}` of
/// `settings` (Ironic's fake firmware interface takes the same arguments).
fn firmware_step(node: &mut Node, step: &Step) -> Result<(), DriverError> {
    let invalid = |reason: &str| DriverError::InvalidStepArgs {
        step: step.step.clone(),
        reason: reason.to_owned(),
    };
    match step.step.as_str() {
        "update" => {
            let settings = step
                .args
                .get("settings")
                .and_then(Value::as_array)
                .filter(|settings| !settings.is_empty())
                .ok_or_else(|| {
                    invalid("\"settings\" must be a non-empty list of {component, url}")
                })?;
            let mut installed = fake_firmware(node);
            for setting in settings {
                let component = setting.get("component").and_then(Value::as_str);
                let url = setting.get("url").and_then(Value::as_str);
                let (Some(component), Some(url)) = (component, url) else {
                    return Err(invalid("each setting needs a \"component\" and a \"url\""));
                };
                if component.is_empty() || url.is_empty() {
                    return Err(invalid("\"component\" and \"url\" must not be empty"));
                }
                let current = installed
                    .iter()
                    .find(|(name, _)| name == component)
                    .map(|(_, version)| version.clone())
                    .unwrap_or_else(|| FAKE_FIRMWARE_VERSION.to_owned());
                let version = flashed_version(url, &current);
                installed.retain(|(name, _)| name != component);
                installed.push((component.to_owned(), version));
            }
            let map = installed.into_iter().map(|(name, version)| (name, Value::String(version)));
            node.driver_internal_info.insert(FIRMWARE_KEY.into(), Value::Object(map.collect()));
            Ok(())
        }
        other => Err(DriverError::Unsupported {
            interface: InterfaceKind::Firmware,
            operation: format!("step {other}"),
        }),
    }
}

/// The fake machine's firmware components and versions: the shipped ones,
/// then any other component flashed.
fn fake_firmware(node: &Node) -> Vec<(String, String)> {
    let stored = node.driver_internal_info.get(FIRMWARE_KEY).and_then(Value::as_object);
    let version = |name: &str| {
        stored
            .and_then(|map| map.get(name))
            .and_then(Value::as_str)
            .unwrap_or(FAKE_FIRMWARE_VERSION)
            .to_owned()
    };
    let mut all: Vec<(String, String)> =
        FAKE_FIRMWARE_COMPONENTS.iter().map(|name| ((*name).to_owned(), version(name))).collect();
    for (name, value) in stored.into_iter().flatten() {
        if let (false, Some(text)) =
            (FAKE_FIRMWARE_COMPONENTS.contains(&name.as_str()), value.as_str())
        {
            all.push((name.clone(), text.to_owned()));
        }
    }
    all
}

/// The fake BIOS steps (all manual, as in Ironic's fake bios interface).
fn bios_step(node: &mut Node, step: &Step) -> Result<(), DriverError> {
    let invalid = |reason: &str| DriverError::InvalidStepArgs {
        step: step.step.clone(),
        reason: reason.to_owned(),
    };
    match step.step.as_str() {
        "apply_configuration" => {
            let settings = step
                .args
                .get("settings")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid("\"settings\" must be a list of {name, value}"))?;
            let mut applied: Vec<Value> = Vec::with_capacity(settings.len());
            for setting in settings {
                let name = setting.get("name").and_then(Value::as_str);
                let value = setting.get("value").and_then(|v| match v {
                    Value::String(text) => Some(text.clone()),
                    Value::Number(number) => Some(number.to_string()),
                    Value::Bool(flag) => Some(flag.to_string()),
                    _ => None,
                });
                let (Some(name), Some(value)) = (name, value) else {
                    return Err(invalid("each setting needs a \"name\" and a scalar \"value\""));
                };
                applied.retain(|known| known["name"] != name);
                applied.push(serde_json::json!({"name": name, "value": value}));
            }
            node.driver_internal_info.insert(BIOS_KEY.into(), Value::Array(applied));
            Ok(())
        }
        "factory_reset" => {
            node.driver_internal_info.insert(BIOS_KEY.into(), Value::Array(Vec::new()));
            Ok(())
        }
        "cache_bios_settings" => Ok(()),
        other => Err(DriverError::Unsupported {
            interface: InterfaceKind::Bios,
            operation: format!("step {other}"),
        }),
    }
}

/// The delay configured for `kind` on this node, if any.
pub fn configured_delay(node: &Node, kind: InterfaceKind) -> Result<Option<Duration>, DriverError> {
    let key = format!("fake_{kind}_delay");
    let invalid =
        |reason: &str| DriverError::InvalidInfo { key: key.clone(), reason: reason.into() };
    let seconds = match node.driver_info.get(&key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(number)) => number.as_f64().ok_or_else(|| invalid("not a number"))?,
        Some(Value::String(text)) => match text.split_once(':') {
            Some((low, high)) => {
                let low: f64 = low.trim().parse().map_err(|_| invalid("expected MIN:MAX"))?;
                let high: f64 = high.trim().parse().map_err(|_| invalid("expected MIN:MAX"))?;
                if !(0.0..=high).contains(&low) {
                    return Err(invalid("MIN must be between 0 and MAX"));
                }
                rand::thread_rng().gen_range(low..=high)
            }
            None => text.trim().parse().map_err(|_| invalid("expected seconds or MIN:MAX"))?,
        },
        Some(_) => return Err(invalid("expected seconds or MIN:MAX")),
    };
    if !(0.0..=3600.0).contains(&seconds) {
        return Err(invalid("must be between 0 and 3600 seconds"));
    }
    Ok(Some(Duration::from_secs_f64(seconds)))
}

async fn pause(node: &Node, kind: InterfaceKind) -> Result<(), DriverError> {
    if let Some(delay) = configured_delay(node, kind)? {
        tokio::time::sleep(delay).await;
    }
    Ok(())
}

/// A fake implementation of one interface.
#[derive(Debug, Clone, Copy)]
pub struct Fake(pub InterfaceKind);

#[async_trait::async_trait]
impl Interface for Fake {
    fn kind(&self) -> InterfaceKind {
        self.0
    }

    fn validate(&self, node: &Node) -> Result<(), DriverError> {
        configured_delay(node, self.0).map(|_| ())
    }

    fn properties(&self) -> Vec<(&'static str, &'static str)> {
        vec![]
    }

    fn steps(&self, phase: StepPhase) -> Vec<Step> {
        match (self.0, phase) {
            (InterfaceKind::Deploy, StepPhase::Deploy) => {
                vec![Step::new(InterfaceKind::Deploy, "deploy", 100)]
            }
            (InterfaceKind::Bios, StepPhase::Clean | StepPhase::Service) => {
                ["apply_configuration", "factory_reset", "cache_bios_settings"]
                    .into_iter()
                    .map(|name| Step::new(InterfaceKind::Bios, name, 0))
                    .collect()
            }
            (InterfaceKind::Firmware, StepPhase::Clean | StepPhase::Service) => {
                vec![Step::new(InterfaceKind::Firmware, "update", 0)]
            }
            _ => Vec::new(),
        }
    }

    /// Any step name is accepted: fake hardware does whatever it is asked.
    fn accepts_step(&self, _phase: StepPhase, _name: &str) -> bool {
        true
    }

    async fn execute_step(&self, node: &mut Node, step: &Step) -> Result<StepOutcome, DriverError> {
        pause(node, self.0).await?;
        match self.0 {
            InterfaceKind::Bios => bios_step(node, step)?,
            InterfaceKind::Firmware => firmware_step(node, step)?,
            _ => {}
        }
        Ok(StepOutcome::Done)
    }

    fn bios_settings(&self, node: &Node) -> Option<Vec<(String, String)>> {
        if self.0 != InterfaceKind::Bios {
            return None;
        }
        let stored = node.driver_internal_info.get(BIOS_KEY)?.as_array()?;
        Some(
            stored
                .iter()
                .filter_map(|setting| {
                    let name = setting.get("name")?.as_str()?;
                    let value = setting.get("value")?.as_str()?;
                    Some((name.to_owned(), value.to_owned()))
                })
                .collect(),
        )
    }

    fn firmware_components(&self, node: &Node) -> Option<Vec<(String, String)>> {
        (self.0 == InterfaceKind::Firmware).then(|| fake_firmware(node))
    }
}

/// `driver_info.fake_bmc_unreachable = true` makes the fake BMC stop
/// answering power calls, to exercise fleet behaviour (retries, maintenance
/// on repeated failures, recovery) without real hardware.
fn unreachable(node: &Node) -> Result<(), DriverError> {
    match node.driver_info.get("fake_bmc_unreachable") {
        Some(Value::Bool(true)) => {
            Err(DriverError::Timeout(format!("fake BMC of node {} does not answer", node.uuid)))
        }
        _ => Ok(()),
    }
}

#[async_trait::async_trait]
impl PowerInterface for Fake {
    async fn get_power_state(&self, node: &Node) -> Result<PowerState, DriverError> {
        unreachable(node)?;
        // A fake machine is on or off; "error" was only ever our view of it.
        Ok(match node.power_state {
            Some(PowerState::On) => PowerState::On,
            _ => PowerState::Off,
        })
    }

    async fn set_power_state(
        &self,
        node: &Node,
        _target: PowerTarget,
        _timeout: Option<Duration>,
    ) -> Result<(), DriverError> {
        unreachable(node)?;
        pause(node, InterfaceKind::Power).await
    }
}

#[async_trait::async_trait]
impl ManagementInterface for Fake {
    fn supported_boot_devices(&self, _node: &Node) -> Vec<BootDevice> {
        vec![BootDevice::Pxe, BootDevice::Disk, BootDevice::Cdrom, BootDevice::Bios]
    }

    async fn get_boot_device(
        &self,
        node: &Node,
    ) -> Result<(Option<BootDevice>, Option<bool>), DriverError> {
        pause(node, InterfaceKind::Management).await?;
        let device = node
            .driver_internal_info
            .get(BOOT_DEVICE_KEY)
            .and_then(Value::as_str)
            .and_then(BootDevice::parse)
            .unwrap_or(BootDevice::Pxe);
        let persistent =
            node.driver_internal_info.get(BOOT_PERSISTENT_KEY).and_then(Value::as_bool);
        Ok((Some(device), Some(persistent.unwrap_or(false))))
    }

    async fn set_boot_device(
        &self,
        node: &mut Node,
        device: BootDevice,
        persistent: bool,
    ) -> Result<(), DriverError> {
        if !self.supported_boot_devices(node).contains(&device) {
            return Err(DriverError::Unsupported {
                interface: InterfaceKind::Management,
                operation: format!("boot device {device}"),
            });
        }
        pause(node, InterfaceKind::Management).await?;
        node.driver_internal_info.insert(BOOT_DEVICE_KEY.into(), device.as_str().into());
        node.driver_internal_info.insert(BOOT_PERSISTENT_KEY.into(), persistent.into());
        Ok(())
    }

    /// The fake BMC takes any image and remembers it per device.
    async fn attach_virtual_media(
        &self,
        node: &mut Node,
        media: &VirtualMedia,
    ) -> Result<(), DriverError> {
        pause(node, InterfaceKind::Management).await?;
        let mut attached = match node.driver_internal_info.remove(VMEDIA_KEY) {
            Some(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        attached.insert(
            media.device_type.as_str().into(),
            serde_json::json!({
                "image_url": media.image_url,
                "image_download_source": media.image_download_source.as_str(),
            }),
        );
        node.driver_internal_info.insert(VMEDIA_KEY.into(), Value::Object(attached));
        Ok(())
    }

    /// One slot per device type, as a Redfish BMC lists them.
    async fn get_virtual_media(&self, node: &Node) -> Result<Vec<VirtualMediaSlot>, DriverError> {
        pause(node, InterfaceKind::Management).await?;
        let attached = node.driver_internal_info.get(VMEDIA_KEY).and_then(Value::as_object);
        Ok([VmediaDevice::Cdrom, VmediaDevice::Floppy, VmediaDevice::Disk]
            .into_iter()
            .map(|device| {
                let image = attached
                    .and_then(|map| map.get(device.as_str()))
                    .and_then(|media| media.get("image_url"))
                    .and_then(Value::as_str);
                VirtualMediaSlot {
                    media_types: device
                        .redfish_media_types()
                        .iter()
                        .map(|name| (*name).to_owned())
                        .collect(),
                    inserted: image.is_some(),
                    image: image.unwrap_or_default().to_owned(),
                }
            })
            .collect())
    }

    async fn detach_virtual_media(
        &self,
        node: &mut Node,
        devices: &[VmediaDevice],
    ) -> Result<(), DriverError> {
        pause(node, InterfaceKind::Management).await?;
        let mut attached = match node.driver_internal_info.remove(VMEDIA_KEY) {
            Some(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        if devices.is_empty() {
            attached.clear();
        }
        for device in devices {
            attached.remove(device.as_str());
        }
        if !attached.is_empty() {
            node.driver_internal_info.insert(VMEDIA_KEY.into(), Value::Object(attached));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl BootInterface for Fake {
    async fn prepare_ramdisk(&self, node: &mut Node) -> Result<(), DriverError> {
        pause(node, InterfaceKind::Boot).await
    }
    async fn clean_up_ramdisk(&self, _node: &mut Node) -> Result<(), DriverError> {
        Ok(())
    }
    async fn prepare_instance(&self, node: &mut Node) -> Result<(), DriverError> {
        pause(node, InterfaceKind::Boot).await
    }
    async fn clean_up_instance(&self, _node: &mut Node) -> Result<(), DriverError> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl DeployInterface for Fake {
    async fn tear_down(&self, node: &mut Node) -> Result<(), DriverError> {
        pause(node, InterfaceKind::Deploy).await
    }
}

#[async_trait::async_trait]
impl InspectInterface for Fake {
    async fn inspect_hardware(&self, node: &mut Node) -> Result<StepOutcome, DriverError> {
        pause(node, InterfaceKind::Inspect).await?;
        Ok(StepOutcome::Done)
    }
}

#[async_trait::async_trait]
impl RescueInterface for Fake {
    async fn rescue(&self, node: &mut Node) -> Result<StepOutcome, DriverError> {
        pause(node, InterfaceKind::Rescue).await?;
        Ok(StepOutcome::Done)
    }
    async fn unrescue(&self, node: &mut Node) -> Result<(), DriverError> {
        pause(node, InterfaceKind::Rescue).await
    }
}

/// The `noop` / `no-*` implementations: valid, no steps, nothing to do.
/// Operations an optional interface cannot do report `Unsupported`.
#[derive(Debug, Clone, Copy)]
pub struct Noop(pub InterfaceKind);

#[async_trait::async_trait]
impl Interface for Noop {
    fn kind(&self) -> InterfaceKind {
        self.0
    }
    fn validate(&self, _node: &Node) -> Result<(), DriverError> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl NetworkInterface for Noop {}

#[async_trait::async_trait]
impl InspectInterface for Noop {
    async fn inspect_hardware(&self, _node: &mut Node) -> Result<StepOutcome, DriverError> {
        Err(DriverError::Unsupported { interface: self.0, operation: "inspection".into() })
    }
}

#[async_trait::async_trait]
impl RescueInterface for Noop {
    async fn rescue(&self, _node: &mut Node) -> Result<StepOutcome, DriverError> {
        Err(DriverError::Unsupported { interface: self.0, operation: "rescue".into() })
    }
    async fn unrescue(&self, _node: &mut Node) -> Result<(), DriverError> {
        Err(DriverError::Unsupported { interface: self.0, operation: "unrescue".into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferric_types::{HardwareType, ProvisionState};
    use serde_json::json;

    fn node_with(info: Value) -> Node {
        let mut node =
            Node::new(uuid::Uuid::new_v4(), HardwareType::FakeHardware, ProvisionState::Enroll);
        node.driver_info = info.as_object().cloned().unwrap_or_default();
        node
    }

    #[test]
    fn delays_parse_and_reject_nonsense() {
        let kind = InterfaceKind::Deploy;
        assert_eq!(configured_delay(&node_with(json!({})), kind).expect("ok"), None);
        assert_eq!(
            configured_delay(&node_with(json!({"fake_deploy_delay": 0.5})), kind).expect("ok"),
            Some(Duration::from_millis(500))
        );
        let ranged = configured_delay(&node_with(json!({"fake_deploy_delay": "0.1:0.2"})), kind)
            .expect("ok")
            .expect("some");
        assert!(ranged >= Duration::from_millis(100) && ranged <= Duration::from_millis(200));
        for bad in [json!("x"), json!("2:1"), json!(-1), json!([1])] {
            assert!(configured_delay(&node_with(json!({"fake_deploy_delay": bad})), kind).is_err());
        }
    }

    #[tokio::test]
    async fn fake_management_remembers_the_boot_device() {
        let mut node = node_with(json!({}));
        let fake = Fake(InterfaceKind::Management);
        fake.set_boot_device(&mut node, BootDevice::Disk, true).await.expect("set");
        assert_eq!(
            fake.get_boot_device(&node).await.expect("get"),
            (Some(BootDevice::Disk), Some(true))
        );
        assert!(fake.set_boot_device(&mut node, BootDevice::Wanboot, false).await.is_err());
    }

    #[tokio::test]
    async fn fake_virtual_media_lists_every_slot() {
        let mut node = node_with(json!({}));
        let fake = Fake(InterfaceKind::Management);
        let empty = fake.get_virtual_media(&node).await.expect("get");
        assert_eq!(empty.len(), 3);
        assert!(empty.iter().all(|slot| !slot.inserted && slot.image.is_empty()));
        let media = VirtualMedia {
            device_type: VmediaDevice::Cdrom,
            image_url: "http://host/boot.iso".into(),
            image_download_source: ferric_types::ImageDownloadSource::Http,
        };
        fake.attach_virtual_media(&mut node, &media).await.expect("attach");
        let slots = fake.get_virtual_media(&node).await.expect("get");
        assert_eq!(slots[0].media_types, ["CD", "DVD"]);
        assert!(slots[0].inserted);
        assert_eq!(slots[0].image, "http://host/boot.iso");
        assert!(!slots[1].inserted && !slots[2].inserted);
    }

    #[test]
    fn flashed_versions_come_from_the_file_name_or_a_bump() {
        assert_eq!(flashed_version("http://h/fw/bios-2.1.0.bin", "1.0.0"), "2.1.0");
        assert_eq!(flashed_version("http://h/v9.9/bmc_3.4.img?x=1.2.3.4", "1.0.0"), "3.4");
        assert_eq!(flashed_version("http://h/bios.bin", "1.0.0"), "1.0.1");
        assert_eq!(flashed_version("http://h/bios.bin", "A"), "A.1");
    }

    #[tokio::test]
    async fn fake_firmware_update_flashes_components() {
        let mut node = node_with(json!({}));
        let fake = Fake(InterfaceKind::Firmware);
        let shipped = fake.firmware_components(&node).expect("components");
        assert_eq!(shipped, [("bios".into(), "1.0.0".into()), ("bmc".into(), "1.0.0".into())]);
        let mut step = Step::new(InterfaceKind::Firmware, "update", 0);
        step.args = json!({"settings": [{"component": "bios", "url": "http://h/bios.bin"},
            {"component": "nic:1", "url": "http://h/nic-7.2.bin"}]})
        .as_object()
        .cloned()
        .expect("object");
        fake.execute_step(&mut node, &step).await.expect("update");
        let flashed = fake.firmware_components(&node).expect("components");
        assert_eq!(
            flashed,
            [
                ("bios".into(), "1.0.1".into()),
                ("bmc".into(), "1.0.0".into()),
                ("nic:1".into(), "7.2".into())
            ]
        );
        step.args = json!({"settings": [{"component": "bios"}]}).as_object().cloned().expect("o");
        assert!(matches!(
            fake.execute_step(&mut node, &step).await,
            Err(DriverError::InvalidStepArgs { .. })
        ));
        assert!(Fake(InterfaceKind::Bios).firmware_components(&node).is_none());
    }
}
