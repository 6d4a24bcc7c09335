//! Hardware types: which implementations each supports per interface, and
//! building a node's interface objects from its choices.

use std::sync::Arc;

use ferric_types::{HardwareType, InterfaceImpl, InterfaceKind, InterfaceSupport, Node};

use crate::error::DriverError;
use crate::fake::{Fake, Noop};
use crate::interfaces::{
    BootInterface, DeployInterface, InspectInterface, Interface, ManagementInterface,
    NetworkInterface, PowerInterface, RescueInterface,
};
use crate::steps::{Step, StepPhase};

/// The hardware types this build can drive.
pub const SUPPORTED_HARDWARE_TYPES: [HardwareType; 1] = [HardwareType::FakeHardware];

/// What `hardware_type` supports per interface; the first entry is the default.
pub fn hardware_type_support(hardware_type: HardwareType) -> Vec<InterfaceSupport> {
    use InterfaceImpl as I;
    use InterfaceKind as K;
    let table: Vec<(K, Vec<I>)> = match hardware_type {
        HardwareType::FakeHardware => vec![
            (K::Bios, vec![I::NoBios, I::Fake]),
            (K::Boot, vec![I::Fake]),
            (K::Console, vec![I::NoConsole, I::Fake]),
            (K::Deploy, vec![I::Fake]),
            (K::Firmware, vec![I::NoFirmware, I::Fake]),
            (K::Inspect, vec![I::NoInspect, I::Fake]),
            (K::Management, vec![I::Fake]),
            (K::Network, vec![I::Noop]),
            (K::Power, vec![I::Fake]),
            (K::Raid, vec![I::NoRaid, I::Fake]),
            (K::Rescue, vec![I::NoRescue, I::Fake]),
            (K::Storage, vec![I::Noop, I::Fake]),
            (K::Vendor, vec![I::NoVendor, I::Fake]),
        ],
        // Not drivable by this build yet: registered by no conductor.
        HardwareType::Ipmi | HardwareType::Redfish | HardwareType::ManualManagement => vec![],
    };
    table
        .into_iter()
        .filter_map(|(interface, enabled)| {
            let default = *enabled.first()?;
            Some(InterfaceSupport { hardware_type, interface, enabled, default })
        })
        .collect()
}

/// The interface objects for one node, built from its chosen implementations.
#[derive(Clone)]
pub struct DriverSet {
    pub power: Arc<dyn PowerInterface>,
    pub management: Arc<dyn ManagementInterface>,
    pub boot: Arc<dyn BootInterface>,
    pub deploy: Arc<dyn DeployInterface>,
    pub network: Arc<dyn NetworkInterface>,
    pub inspect: Arc<dyn InspectInterface>,
    pub rescue: Arc<dyn RescueInterface>,
    /// bios, console, firmware, raid, storage, vendor.
    pub others: Vec<Arc<dyn Interface>>,
}

impl DriverSet {
    /// Builds the interfaces for `node`; an interface the node doesn't name
    /// gets its hardware type's default.
    pub fn load(node: &Node) -> Result<DriverSet, DriverError> {
        let support = hardware_type_support(node.driver);
        let choose = |kind: InterfaceKind| -> Result<InterfaceImpl, DriverError> {
            let entry = support.iter().find(|entry| entry.interface == kind).ok_or(
                DriverError::Unsupported {
                    interface: kind,
                    operation: format!("hardware type {}", node.driver),
                },
            )?;
            let chosen = node.interfaces.get(kind).unwrap_or(entry.default);
            if entry.enabled.contains(&chosen) {
                Ok(chosen)
            } else {
                Err(DriverError::UnsupportedImplementation {
                    hardware_type: node.driver,
                    interface: kind,
                    implementation: chosen,
                })
            }
        };
        let is_fake = |kind| choose(kind).map(|chosen| chosen == InterfaceImpl::Fake);
        // Only fake and no-op implementations exist so far; the table above
        // guarantees every chosen implementation is one of them.
        macro_rules! pick {
            ($kind:expr) => {
                if is_fake($kind)? {
                    Arc::new(Fake($kind)) as _
                } else {
                    Arc::new(Noop($kind)) as _
                }
            };
        }
        let power: Arc<dyn PowerInterface> = {
            choose(InterfaceKind::Power)?;
            Arc::new(Fake(InterfaceKind::Power))
        };
        let management: Arc<dyn ManagementInterface> = {
            choose(InterfaceKind::Management)?;
            Arc::new(Fake(InterfaceKind::Management))
        };
        let boot: Arc<dyn BootInterface> = {
            choose(InterfaceKind::Boot)?;
            Arc::new(Fake(InterfaceKind::Boot))
        };
        let deploy: Arc<dyn DeployInterface> = {
            choose(InterfaceKind::Deploy)?;
            Arc::new(Fake(InterfaceKind::Deploy))
        };
        let network: Arc<dyn NetworkInterface> = {
            choose(InterfaceKind::Network)?;
            Arc::new(Noop(InterfaceKind::Network))
        };
        let inspect: Arc<dyn InspectInterface> = pick!(InterfaceKind::Inspect);
        let rescue: Arc<dyn RescueInterface> = pick!(InterfaceKind::Rescue);
        let mut others: Vec<Arc<dyn Interface>> = Vec::new();
        for kind in [
            InterfaceKind::Bios,
            InterfaceKind::Console,
            InterfaceKind::Firmware,
            InterfaceKind::Raid,
            InterfaceKind::Storage,
            InterfaceKind::Vendor,
        ] {
            others.push(pick!(kind));
        }
        Ok(DriverSet { power, management, boot, deploy, network, inspect, rescue, others })
    }

    /// Every interface of the node, as the common trait.
    pub fn all(&self) -> Vec<Arc<dyn Interface>> {
        let mut all: Vec<Arc<dyn Interface>> = vec![
            self.power.clone(),
            self.management.clone(),
            self.boot.clone(),
            self.deploy.clone(),
            self.network.clone(),
            self.inspect.clone(),
            self.rescue.clone(),
        ];
        all.extend(self.others.iter().cloned());
        all
    }

    /// The interface object for `kind`.
    pub fn interface(&self, kind: InterfaceKind) -> Option<Arc<dyn Interface>> {
        self.all().into_iter().find(|interface| interface.kind() == kind)
    }

    /// Every step any interface offers in `phase`.
    pub fn steps(&self, phase: StepPhase) -> Vec<Step> {
        self.all().iter().flat_map(|interface| interface.steps(phase)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferric_types::ProvisionState;

    #[test]
    fn fake_hardware_loads_with_defaults_and_rejects_unknown_choices() {
        let mut node =
            Node::new(uuid::Uuid::new_v4(), HardwareType::FakeHardware, ProvisionState::Enroll);
        let set = DriverSet::load(&node).expect("load");
        assert_eq!(set.all().len(), 13);
        assert_eq!(set.steps(StepPhase::Deploy).len(), 1);
        node.interfaces.set(InterfaceKind::Power, InterfaceImpl::Ipmitool);
        assert!(matches!(
            DriverSet::load(&node),
            Err(DriverError::UnsupportedImplementation { interface: InterfaceKind::Power, .. })
        ));
    }

    #[test]
    fn every_interface_has_a_default_for_fake_hardware() {
        let support = hardware_type_support(HardwareType::FakeHardware);
        assert_eq!(support.len(), InterfaceKind::ALL.len());
    }
}
