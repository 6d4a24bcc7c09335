//! The [`Machine`] trait: what a virtual BMC can do to the machine behind
//! it, independent of the protocol in front (IPMI here, Redfish later).
//!
//! The vocabulary is deliberately the intersection of both: power on, hard
//! off, graceful (ACPI) off, reset, power cycle, and a boot device override
//! with once/persistent and UEFI/legacy, as IPMI's boot flags and Redfish's
//! `Boot.BootSourceOverride*` properties express it.

use async_trait::async_trait;
use thiserror::Error;

/// Power state as a BMC reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    On,
    Off,
}

impl PowerState {
    pub fn is_on(self) -> bool {
        self == PowerState::On
    }
}

/// A boot device override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BootDevice {
    /// No override: the firmware's own order.
    #[default]
    None,
    Pxe,
    Disk,
    Cdrom,
    /// Firmware setup.
    Bios,
}

impl BootDevice {
    pub fn as_str(self) -> &'static str {
        match self {
            BootDevice::None => "none",
            BootDevice::Pxe => "pxe",
            BootDevice::Disk => "disk",
            BootDevice::Cdrom => "cdrom",
            BootDevice::Bios => "bios",
        }
    }
}

/// The boot override: which device, for the next start only or for all,
/// in UEFI or legacy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BootSetting {
    pub device: BootDevice,
    /// Applies to every start, rather than the next one only.
    pub persistent: bool,
    pub uefi: bool,
}

impl BootSetting {
    pub fn new(device: BootDevice, persistent: bool, uefi: bool) -> Self {
        Self { device, persistent, uefi }
    }

    /// What remains after one start with this setting: a one-time override
    /// is used up.
    pub fn after_start(self) -> BootSetting {
        if self.persistent {
            self
        } else {
            BootSetting { device: BootDevice::None, ..self }
        }
    }
}

/// Why a machine operation failed. Front ends map these to their protocol
/// (IPMI completion codes, Redfish errors).
#[derive(Debug, Error)]
pub enum MachineError {
    /// The operation needs the machine on (reset; IPMI answers 0xD5).
    #[error("machine {0} is powered off")]
    PoweredOff(String),
    /// The machine (or the process behind it) does not answer.
    #[error("machine {name} is not responding: {reason}")]
    Unresponsive { name: String, reason: String },
    /// Starting or talking to the machine failed.
    #[error("machine {name}: {reason}")]
    Failed { name: String, reason: String },
    #[error("machine {name}: {source}")]
    Io {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = MachineError> = std::result::Result<T, E>;

/// A machine behind a virtual BMC. Implementations are shared between
/// front ends and tasks, so every method takes `&self`.
#[async_trait]
pub trait Machine: Send + Sync {
    /// The machine's name (for logs and front ends).
    fn name(&self) -> &str;

    async fn power_state(&self) -> Result<PowerState>;

    /// Powers on; a no-op when already on.
    async fn power_on(&self) -> Result<()>;

    /// Hard power off; a no-op when already off.
    async fn power_off(&self) -> Result<()>;

    /// Graceful shutdown: the ACPI power button (the guest decides).
    async fn soft_off(&self) -> Result<()>;

    /// Hard reset; [`MachineError::PoweredOff`] when off.
    async fn reset(&self) -> Result<()>;

    /// Off, then on (from off: just on). The boot override applies to the
    /// new start.
    async fn power_cycle(&self) -> Result<()> {
        self.power_off().await?;
        self.power_on().await
    }

    /// The boot override for the next start.
    async fn boot_device(&self) -> Result<BootSetting>;

    async fn set_boot_device(&self, setting: BootSetting) -> Result<()>;
}
