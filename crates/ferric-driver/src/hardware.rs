//! Hardware types: which implementations each supports per interface, and
//! building a node's interface objects from its choices.

use std::sync::Arc;

use ferric_types::{HardwareType, InterfaceImpl, InterfaceKind, InterfaceSupport, Node};

use crate::direct::DirectDeploy;
use crate::error::DriverError;
use crate::fake::{Fake, Noop};
use crate::interfaces::{
    BootInterface, DeployInterface, InspectInterface, Interface, ManagementInterface,
    NetworkInterface, PowerInterface, RescueInterface,
};
use crate::ipmi::{IpmiManagement, IpmiPower};
use crate::netboot::NetBoot;
use crate::redfish::{RedfishManagement, RedfishPower};
use crate::steps::{Step, StepPhase};

/// The hardware types this build can drive.
pub const SUPPORTED_HARDWARE_TYPES: [HardwareType; 3] =
    [HardwareType::FakeHardware, HardwareType::Ipmi, HardwareType::Redfish];

/// What `hardware_type` supports per interface; the first entry is the default.
pub fn hardware_type_support(hardware_type: HardwareType) -> Vec<InterfaceSupport> {
    use InterfaceImpl as I;
    use InterfaceKind as K;
    let table: Vec<(K, Vec<I>)> = match hardware_type {
        HardwareType::FakeHardware => vec![
            (K::Bios, vec![I::NoBios, I::Fake]),
            (K::Boot, vec![I::Fake]),
            (K::Console, vec![I::NoConsole, I::Fake]),
            (K::Deploy, vec![I::Fake, I::Direct]),
            (K::Firmware, vec![I::NoFirmware, I::Fake]),
            (K::Inspect, vec![I::NoInspect, I::Fake, I::Agent]),
            (K::Management, vec![I::Fake]),
            (K::Network, vec![I::Noop]),
            (K::Power, vec![I::Fake]),
            (K::Raid, vec![I::NoRaid, I::Fake]),
            (K::Rescue, vec![I::NoRescue, I::Fake]),
            (K::Storage, vec![I::Noop, I::Fake]),
            (K::Vendor, vec![I::NoVendor, I::Fake]),
        ],
        // Real power and management over IPMI, network boot through
        // ferric's boot services, the image written by the ramdisk agent
        // (`direct`); `fake` deploy stays available for trying things out.
        HardwareType::Ipmi => vec![
            (K::Bios, vec![I::NoBios]),
            (K::Boot, vec![I::Ipxe, I::Pxe]),
            (K::Console, vec![I::NoConsole]),
            (K::Deploy, vec![I::Direct, I::Fake]),
            (K::Firmware, vec![I::NoFirmware]),
            (K::Inspect, vec![I::Agent, I::NoInspect]),
            (K::Management, vec![I::Ipmitool]),
            (K::Network, vec![I::Noop]),
            (K::Power, vec![I::Ipmitool]),
            (K::Raid, vec![I::NoRaid]),
            (K::Rescue, vec![I::NoRescue]),
            (K::Storage, vec![I::Noop]),
            (K::Vendor, vec![I::NoVendor]),
        ],
        // Real power and management over Redfish; the rest as for ipmi,
        // plus UEFI HTTP boot.
        HardwareType::Redfish => vec![
            (K::Bios, vec![I::NoBios]),
            (K::Boot, vec![I::Ipxe, I::Pxe, I::Http]),
            (K::Console, vec![I::NoConsole]),
            (K::Deploy, vec![I::Direct, I::Fake]),
            (K::Firmware, vec![I::NoFirmware]),
            (K::Inspect, vec![I::Agent, I::NoInspect]),
            (K::Management, vec![I::Redfish]),
            (K::Network, vec![I::Noop]),
            (K::Power, vec![I::Redfish]),
            (K::Raid, vec![I::NoRaid]),
            (K::Rescue, vec![I::NoRescue]),
            (K::Storage, vec![I::Noop]),
            (K::Vendor, vec![I::NoVendor]),
        ],
        // Not drivable by this build yet: registered by no conductor.
        HardwareType::ManualManagement => vec![],
    };
    table
        .into_iter()
        .filter_map(|(interface, enabled)| {
            let default = *enabled.first()?;
            Some(InterfaceSupport { hardware_type, interface, enabled, default })
        })
        .collect()
}

/// Whether `implementation` is a do-nothing one (`noop`, `no-*`).
fn is_noop(implementation: InterfaceImpl) -> bool {
    use InterfaceImpl as I;
    matches!(
        implementation,
        I::Noop
            | I::NoBios
            | I::NoConsole
            | I::NoFirmware
            | I::NoInspect
            | I::NoRaid
            | I::NoRescue
            | I::NoVendor
    )
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
        // No implementation of that name for this hardware type (or, for a
        // name the support table lists, none in this build).
        let missing = |kind: InterfaceKind, implementation: InterfaceImpl| {
            DriverError::UnsupportedImplementation {
                hardware_type: node.driver,
                interface: kind,
                implementation,
            }
        };
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
                Err(missing(kind, chosen))
            }
        };
        // The implementation object for each chosen implementation name.
        let power: Arc<dyn PowerInterface> = match choose(InterfaceKind::Power)? {
            InterfaceImpl::Fake => Arc::new(Fake(InterfaceKind::Power)),
            InterfaceImpl::Ipmitool => Arc::new(IpmiPower),
            InterfaceImpl::Redfish => Arc::new(RedfishPower),
            other => return Err(missing(InterfaceKind::Power, other)),
        };
        let management: Arc<dyn ManagementInterface> = match choose(InterfaceKind::Management)? {
            InterfaceImpl::Fake => Arc::new(Fake(InterfaceKind::Management)),
            InterfaceImpl::Ipmitool => Arc::new(IpmiManagement),
            InterfaceImpl::Redfish => Arc::new(RedfishManagement),
            other => return Err(missing(InterfaceKind::Management, other)),
        };
        let boot: Arc<dyn BootInterface> = match choose(InterfaceKind::Boot)? {
            InterfaceImpl::Fake => Arc::new(Fake(InterfaceKind::Boot)),
            InterfaceImpl::Ipxe => Arc::new(NetBoot::Ipxe),
            InterfaceImpl::Pxe => Arc::new(NetBoot::Pxe),
            InterfaceImpl::Http => Arc::new(NetBoot::Http),
            other => return Err(missing(InterfaceKind::Boot, other)),
        };
        let network: Arc<dyn NetworkInterface> = match choose(InterfaceKind::Network)? {
            chosen if is_noop(chosen) => Arc::new(Noop(InterfaceKind::Network)),
            other => return Err(missing(InterfaceKind::Network, other)),
        };
        let deploy: Arc<dyn DeployInterface> = match choose(InterfaceKind::Deploy)? {
            InterfaceImpl::Fake => Arc::new(Fake(InterfaceKind::Deploy)),
            InterfaceImpl::Direct => Arc::new(DirectDeploy {
                power: power.clone(),
                management: management.clone(),
                boot: boot.clone(),
                network: network.clone(),
            }),
            other => return Err(missing(InterfaceKind::Deploy, other)),
        };
        let inspect: Arc<dyn InspectInterface> = match choose(InterfaceKind::Inspect)? {
            InterfaceImpl::Fake => Arc::new(Fake(InterfaceKind::Inspect)),
            InterfaceImpl::Agent => Arc::new(crate::direct::AgentInspect),
            chosen if is_noop(chosen) => Arc::new(Noop(InterfaceKind::Inspect)),
            other => return Err(missing(InterfaceKind::Inspect, other)),
        };
        let rescue: Arc<dyn RescueInterface> = match choose(InterfaceKind::Rescue)? {
            InterfaceImpl::Fake => Arc::new(Fake(InterfaceKind::Rescue)),
            chosen if is_noop(chosen) => Arc::new(Noop(InterfaceKind::Rescue)),
            other => return Err(missing(InterfaceKind::Rescue, other)),
        };
        let mut others: Vec<Arc<dyn Interface>> = Vec::new();
        for kind in [
            InterfaceKind::Bios,
            InterfaceKind::Console,
            InterfaceKind::Firmware,
            InterfaceKind::Raid,
            InterfaceKind::Storage,
            InterfaceKind::Vendor,
        ] {
            others.push(match choose(kind)? {
                InterfaceImpl::Fake => Arc::new(Fake(kind)),
                chosen if is_noop(chosen) => Arc::new(Noop(kind)),
                other => return Err(missing(kind, other)),
            });
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
    fn every_interface_has_a_default_for_supported_types() {
        for hardware_type in SUPPORTED_HARDWARE_TYPES {
            let support = hardware_type_support(hardware_type);
            assert_eq!(support.len(), InterfaceKind::ALL.len(), "{hardware_type}");
        }
    }

    #[test]
    fn every_supported_choice_loads() {
        for hardware_type in SUPPORTED_HARDWARE_TYPES {
            for entry in hardware_type_support(hardware_type) {
                for implementation in entry.enabled {
                    let mut node =
                        Node::new(uuid::Uuid::new_v4(), hardware_type, ProvisionState::Enroll);
                    node.interfaces.set(entry.interface, implementation);
                    let set = DriverSet::load(&node).unwrap_or_else(|error| {
                        panic!("{hardware_type} {} {implementation:?}: {error}", entry.interface)
                    });
                    assert_eq!(set.all().len(), 13);
                }
            }
        }
    }

    #[test]
    fn redfish_loads_redfish_power_and_management() {
        let mut node =
            Node::new(uuid::Uuid::new_v4(), HardwareType::Redfish, ProvisionState::Enroll);
        let set = DriverSet::load(&node).expect("load");
        assert!(set.power.properties().iter().any(|(key, _)| *key == "redfish_address"));
        assert!(set.management.properties().iter().any(|(key, _)| *key == "redfish_password"));
        assert!(matches!(
            set.power.validate(&node),
            Err(DriverError::MissingInfo { keys }) if keys == ["redfish_address"]
        ));
        node.interfaces.set(InterfaceKind::Management, InterfaceImpl::Ipmitool);
        assert!(matches!(
            DriverSet::load(&node),
            Err(DriverError::UnsupportedImplementation {
                interface: InterfaceKind::Management,
                ..
            })
        ));
    }

    #[test]
    fn ipmi_loads_ipmi_power_and_management() {
        let mut node = Node::new(uuid::Uuid::new_v4(), HardwareType::Ipmi, ProvisionState::Enroll);
        let set = DriverSet::load(&node).expect("load");
        assert!(set.power.properties().iter().any(|(key, _)| *key == "ipmi_address"));
        assert!(set.management.properties().iter().any(|(key, _)| *key == "ipmi_password"));
        assert!(matches!(
            set.power.validate(&node),
            Err(DriverError::MissingInfo { keys }) if keys == ["ipmi_address"]
        ));
        node.interfaces.set(InterfaceKind::Power, InterfaceImpl::Fake);
        assert!(matches!(
            DriverSet::load(&node),
            Err(DriverError::UnsupportedImplementation { interface: InterfaceKind::Power, .. })
        ));
    }
}
