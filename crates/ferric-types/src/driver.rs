//! Names of hardware types, driver interfaces and their implementations.
//!
//! These are data only: which implementations exist for which interface is
//! decided by `ferric-driver`, and conductors publish it in the store so the
//! API can answer without linking any driver.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A hardware type: a named composition of interface implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HardwareType {
    #[serde(rename = "fake-hardware")]
    FakeHardware,
    #[serde(rename = "ipmi")]
    Ipmi,
    #[serde(rename = "redfish")]
    Redfish,
    #[serde(rename = "manual-management")]
    ManualManagement,
}

impl HardwareType {
    pub const ALL: [HardwareType; 4] =
        [Self::FakeHardware, Self::Ipmi, Self::Redfish, Self::ManualManagement];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FakeHardware => "fake-hardware",
            Self::Ipmi => "ipmi",
            Self::Redfish => "redfish",
            Self::ManualManagement => "manual-management",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl fmt::Display for HardwareType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One of the driver interfaces a node is composed of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InterfaceKind {
    Bios,
    Boot,
    Console,
    Deploy,
    Firmware,
    Inspect,
    Management,
    Network,
    Power,
    Raid,
    Rescue,
    Storage,
    Vendor,
}

impl InterfaceKind {
    /// Every interface, alphabetically (the order Ironic lists them in).
    pub const ALL: [InterfaceKind; 13] = [
        Self::Bios,
        Self::Boot,
        Self::Console,
        Self::Deploy,
        Self::Firmware,
        Self::Inspect,
        Self::Management,
        Self::Network,
        Self::Power,
        Self::Raid,
        Self::Rescue,
        Self::Storage,
        Self::Vendor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bios => "bios",
            Self::Boot => "boot",
            Self::Console => "console",
            Self::Deploy => "deploy",
            Self::Firmware => "firmware",
            Self::Inspect => "inspect",
            Self::Management => "management",
            Self::Network => "network",
            Self::Power => "power",
            Self::Raid => "raid",
            Self::Rescue => "rescue",
            Self::Storage => "storage",
            Self::Vendor => "vendor",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// The node field that selects this interface (`boot_interface`, ...).
    pub fn node_field(self) -> &'static str {
        match self {
            Self::Bios => "bios_interface",
            Self::Boot => "boot_interface",
            Self::Console => "console_interface",
            Self::Deploy => "deploy_interface",
            Self::Firmware => "firmware_interface",
            Self::Inspect => "inspect_interface",
            Self::Management => "management_interface",
            Self::Network => "network_interface",
            Self::Power => "power_interface",
            Self::Raid => "raid_interface",
            Self::Rescue => "rescue_interface",
            Self::Storage => "storage_interface",
            Self::Vendor => "vendor_interface",
        }
    }

    /// The microversion at which the node field appeared.
    pub fn min_microversion(self) -> u16 {
        match self {
            Self::Network => 20,
            Self::Storage => 33,
            Self::Rescue => 38,
            Self::Bios => 40,
            Self::Firmware => 86,
            _ => 31,
        }
    }

    /// Core interfaces may not be a no-op: a node cannot work without them.
    pub fn is_core(self) -> bool {
        matches!(self, Self::Boot | Self::Deploy | Self::Management | Self::Network | Self::Power)
    }
}

impl fmt::Display for InterfaceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name of an interface implementation, as Ironic names it where ferric
/// has an equivalent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum InterfaceImpl {
    #[serde(rename = "fake")]
    Fake,
    #[serde(rename = "noop")]
    Noop,
    #[serde(rename = "no-bios")]
    NoBios,
    #[serde(rename = "no-console")]
    NoConsole,
    #[serde(rename = "no-firmware")]
    NoFirmware,
    #[serde(rename = "no-inspect")]
    NoInspect,
    #[serde(rename = "no-raid")]
    NoRaid,
    #[serde(rename = "no-rescue")]
    NoRescue,
    #[serde(rename = "no-vendor")]
    NoVendor,
    #[serde(rename = "flat")]
    Flat,
    #[serde(rename = "ipmitool")]
    Ipmitool,
    #[serde(rename = "redfish")]
    Redfish,
    #[serde(rename = "pxe")]
    Pxe,
    #[serde(rename = "ipxe")]
    Ipxe,
    #[serde(rename = "http")]
    Http,
    #[serde(rename = "direct")]
    Direct,
    #[serde(rename = "agent")]
    Agent,
}

impl InterfaceImpl {
    pub const ALL: [InterfaceImpl; 17] = [
        Self::Fake,
        Self::Noop,
        Self::NoBios,
        Self::NoConsole,
        Self::NoFirmware,
        Self::NoInspect,
        Self::NoRaid,
        Self::NoRescue,
        Self::NoVendor,
        Self::Flat,
        Self::Ipmitool,
        Self::Redfish,
        Self::Pxe,
        Self::Ipxe,
        Self::Http,
        Self::Direct,
        Self::Agent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fake => "fake",
            Self::Noop => "noop",
            Self::NoBios => "no-bios",
            Self::NoConsole => "no-console",
            Self::NoFirmware => "no-firmware",
            Self::NoInspect => "no-inspect",
            Self::NoRaid => "no-raid",
            Self::NoRescue => "no-rescue",
            Self::NoVendor => "no-vendor",
            Self::Flat => "flat",
            Self::Ipmitool => "ipmitool",
            Self::Redfish => "redfish",
            Self::Pxe => "pxe",
            Self::Ipxe => "ipxe",
            Self::Http => "http",
            Self::Direct => "direct",
            Self::Agent => "agent",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|imp| imp.as_str() == text)
    }
}

impl fmt::Display for InterfaceImpl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one hardware type supports for one interface, as a conductor
/// registers it: the enabled implementations, the first being the default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceSupport {
    pub hardware_type: HardwareType,
    pub interface: InterfaceKind,
    pub enabled: Vec<InterfaceImpl>,
    pub default: InterfaceImpl,
}
