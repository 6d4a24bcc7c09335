//! Power states, power requests and boot devices.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A node's observed power state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PowerState {
    #[serde(rename = "power on")]
    On,
    #[serde(rename = "power off")]
    Off,
    #[serde(rename = "error")]
    Error,
}

impl PowerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::On => "power on",
            Self::Off => "power off",
            Self::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::On, Self::Off, Self::Error].into_iter().find(|state| state.as_str() == text)
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a user may ask for with `PUT /v1/nodes/{node}/states/power`; shown as
/// `target_power_state` while the conductor works on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PowerTarget {
    #[serde(rename = "power on")]
    On,
    #[serde(rename = "power off")]
    Off,
    #[serde(rename = "rebooting")]
    Reboot,
    #[serde(rename = "soft rebooting")]
    SoftReboot,
    #[serde(rename = "soft power off")]
    SoftOff,
}

impl PowerTarget {
    pub const ALL: [PowerTarget; 5] =
        [Self::On, Self::Off, Self::Reboot, Self::SoftReboot, Self::SoftOff];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::On => "power on",
            Self::Off => "power off",
            Self::Reboot => "rebooting",
            Self::SoftReboot => "soft rebooting",
            Self::SoftOff => "soft power off",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|target| target.as_str() == text)
    }

    /// Soft actions and the timeout arrived in 1.27.
    pub fn min_microversion(self) -> u16 {
        match self {
            Self::SoftReboot | Self::SoftOff => 27,
            _ => 1,
        }
    }

    /// The power state the node is in once the action completed.
    pub fn resulting_state(self) -> PowerState {
        match self {
            Self::On | Self::Reboot | Self::SoftReboot => PowerState::On,
            Self::Off | Self::SoftOff => PowerState::Off,
        }
    }

    /// Whether the action ends with the node off.
    pub fn powers_off(self) -> bool {
        self.resulting_state() == PowerState::Off
    }
}

impl fmt::Display for PowerTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A boot device as Ironic names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootDevice {
    Pxe,
    Disk,
    Cdrom,
    Bios,
    Safe,
    Wanboot,
    Iscsiboot,
    Floppy,
    Uefihttp,
}

impl BootDevice {
    pub const ALL: [BootDevice; 9] = [
        Self::Pxe,
        Self::Disk,
        Self::Cdrom,
        Self::Bios,
        Self::Safe,
        Self::Wanboot,
        Self::Iscsiboot,
        Self::Floppy,
        Self::Uefihttp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pxe => "pxe",
            Self::Disk => "disk",
            Self::Cdrom => "cdrom",
            Self::Bios => "bios",
            Self::Safe => "safe",
            Self::Wanboot => "wanboot",
            Self::Iscsiboot => "iscsiboot",
            Self::Floppy => "floppy",
            Self::Uefihttp => "uefihttp",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|device| device.as_str() == text)
    }
}

impl fmt::Display for BootDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a node was put into maintenance by ferric itself (Ironic's `fault`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Fault {
    #[serde(rename = "power failure")]
    PowerFailure,
    #[serde(rename = "clean failure")]
    CleanFailure,
    #[serde(rename = "rescue abort failure")]
    RescueAbortFailure,
    #[serde(rename = "service failure")]
    ServiceFailure,
}

impl Fault {
    pub const ALL: [Fault; 4] =
        [Self::PowerFailure, Self::CleanFailure, Self::RescueAbortFailure, Self::ServiceFailure];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PowerFailure => "power failure",
            Self::CleanFailure => "clean failure",
            Self::RescueAbortFailure => "rescue abort failure",
            Self::ServiceFailure => "service failure",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|fault| fault.as_str() == text)
    }
}
