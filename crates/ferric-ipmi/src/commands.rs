//! The IPMI commands this crate sends: their numbers, request encodings and
//! response decodings (Get Channel Authentication Capabilities, Get Channel
//! Cipher Suites, Set Session Privilege Level, Close Session, Get Chassis
//! Status, Chassis Control, Set/Get System Boot Options). Plain functions.

use crate::error::{IpmiError, Result};

/// Network function codes (requests; responses are one higher).
pub mod netfn {
    pub const CHASSIS: u8 = 0x00;
    pub const APP: u8 = 0x06;
}

/// Command numbers.
pub mod cmd {
    pub const GET_CHASSIS_STATUS: u8 = 0x01;
    pub const CHASSIS_CONTROL: u8 = 0x02;
    pub const SET_SYSTEM_BOOT_OPTIONS: u8 = 0x08;
    pub const GET_SYSTEM_BOOT_OPTIONS: u8 = 0x09;
    pub const GET_CHANNEL_AUTH_CAPABILITIES: u8 = 0x38;
    pub const SET_SESSION_PRIVILEGE_LEVEL: u8 = 0x3B;
    pub const CLOSE_SESSION: u8 = 0x3C;
    pub const GET_CHANNEL_CIPHER_SUITES: u8 = 0x54;
}

/// A command's human name, for errors and logs.
pub fn command_name(netfn: u8, command: u8) -> &'static str {
    match (netfn & 0x3E, command) {
        (netfn::CHASSIS, cmd::GET_CHASSIS_STATUS) => "Get Chassis Status",
        (netfn::CHASSIS, cmd::CHASSIS_CONTROL) => "Chassis Control",
        (netfn::CHASSIS, cmd::SET_SYSTEM_BOOT_OPTIONS) => "Set System Boot Options",
        (netfn::CHASSIS, cmd::GET_SYSTEM_BOOT_OPTIONS) => "Get System Boot Options",
        (netfn::APP, cmd::GET_CHANNEL_AUTH_CAPABILITIES) => {
            "Get Channel Authentication Capabilities"
        }
        (netfn::APP, cmd::SET_SESSION_PRIVILEGE_LEVEL) => "Set Session Privilege Level",
        (netfn::APP, cmd::CLOSE_SESSION) => "Close Session",
        (netfn::APP, cmd::GET_CHANNEL_CIPHER_SUITES) => "Get Channel Cipher Suites",
        _ => "IPMI command",
    }
}

/// One command to send: what, and whether sending it twice is harmless
/// (a client may then re-send it on a fresh session after a timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub netfn: u8,
    pub cmd: u8,
    pub data: Vec<u8>,
    pub idempotent: bool,
}

impl Command {
    pub fn new(netfn: u8, cmd: u8, data: Vec<u8>) -> Self {
        Self { netfn, cmd, data, idempotent: true }
    }

    pub fn name(&self) -> &'static str {
        command_name(self.netfn, self.cmd)
    }
}

/// Session privilege levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Privilege {
    Callback,
    User,
    Operator,
    Administrator,
}

impl Privilege {
    pub fn number(self) -> u8 {
        match self {
            Self::Callback => 1,
            Self::User => 2,
            Self::Operator => 3,
            Self::Administrator => 4,
        }
    }

    /// Parses Ironic's names (`ADMINISTRATOR`, ...), case-insensitively.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_uppercase().as_str() {
            "CALLBACK" => Some(Self::Callback),
            "USER" => Some(Self::User),
            "OPERATOR" => Some(Self::Operator),
            "ADMINISTRATOR" | "ADMIN" => Some(Self::Administrator),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Callback => "CALLBACK",
            Self::User => "USER",
            Self::Operator => "OPERATOR",
            Self::Administrator => "ADMINISTRATOR",
        }
    }
}

// ---- Get Channel Authentication Capabilities ------------------------------

/// Request: the current channel, with IPMI 2.0 extended data.
pub fn get_channel_auth_capabilities(privilege: Privilege) -> Command {
    Command::new(netfn::APP, cmd::GET_CHANNEL_AUTH_CAPABILITIES, vec![0x8E, privilege.number()])
}

/// What a channel says about authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCapabilities {
    pub channel: u8,
    /// The BMC speaks IPMI 2.0 / RMCP+.
    pub ipmi20: bool,
    pub anonymous_login: bool,
    pub null_usernames: bool,
    pub non_null_usernames: bool,
    /// A BMC key (Kg) other than the default is configured.
    pub kg_set: bool,
}

impl AuthCapabilities {
    pub fn decode(data: &[u8]) -> Result<Self> {
        if data.len() < 4 {
            return Err(IpmiError::malformed(format!(
                "Get Channel Authentication Capabilities: {} data bytes",
                data.len()
            )));
        }
        let extended = data[1] & 0x80 != 0;
        Ok(Self {
            channel: data[0] & 0x0F,
            ipmi20: extended && data[3] & 0x02 != 0,
            anonymous_login: data[2] & 0x01 != 0,
            null_usernames: data[2] & 0x02 != 0,
            non_null_usernames: data[2] & 0x04 != 0,
            kg_set: data[2] & 0x20 != 0,
        })
    }
}

// ---- Get Channel Cipher Suites -------------------------------------------

/// Request one 16-byte block (`index` 0..=63) of the current channel's
/// cipher suite records for IPMI payloads.
pub fn get_channel_cipher_suites(index: u8) -> Command {
    Command::new(
        netfn::APP,
        cmd::GET_CHANNEL_CIPHER_SUITES,
        vec![0x0E, 0x00, 0x80 | (index & 0x3F)],
    )
}

/// One cipher suite record as the BMC lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CipherSuiteRecord {
    pub id: u8,
    /// Set for OEM suites.
    pub oem_iana: Option<u32>,
    pub auth: Vec<u8>,
    pub integrity: Vec<u8>,
    pub confidentiality: Vec<u8>,
}

/// Splits one response into the channel number and its record bytes.
pub fn cipher_suite_block(data: &[u8]) -> Result<&[u8]> {
    data.get(1..).ok_or_else(|| IpmiError::malformed("Get Channel Cipher Suites: no data"))
}

/// Parses the concatenated record data of all blocks.
pub fn decode_cipher_suite_records(bytes: &[u8]) -> Result<Vec<CipherSuiteRecord>> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = bytes[at];
        let (id, oem_iana, mut next) = match start {
            0xC0 => {
                let id = *bytes.get(at + 1).ok_or_else(|| truncated_record(at))?;
                (id, None, at + 2)
            }
            0xC1 => {
                let raw = bytes.get(at + 1..at + 5).ok_or_else(|| truncated_record(at))?;
                let iana = u32::from_le_bytes([raw[1], raw[2], raw[3], 0]);
                (raw[0], Some(iana), at + 5)
            }
            other => {
                return Err(IpmiError::malformed(format!(
                    "cipher suite record starts with {other:#04x}"
                )))
            }
        };
        let mut record = CipherSuiteRecord {
            id,
            oem_iana,
            auth: vec![],
            integrity: vec![],
            confidentiality: vec![],
        };
        while let Some(&tag) = bytes.get(next) {
            if tag & 0xC0 == 0xC0 {
                break;
            }
            match tag >> 6 {
                0 => record.auth.push(tag & 0x3F),
                1 => record.integrity.push(tag & 0x3F),
                _ => record.confidentiality.push(tag & 0x3F),
            }
            next += 1;
        }
        records.push(record);
        at = next;
    }
    Ok(records)
}

fn truncated_record(at: usize) -> IpmiError {
    IpmiError::malformed(format!("cipher suite record at {at} truncated"))
}

// ---- Session commands -------------------------------------------------------

pub fn set_session_privilege_level(privilege: Privilege) -> Command {
    Command::new(netfn::APP, cmd::SET_SESSION_PRIVILEGE_LEVEL, vec![privilege.number()])
}

pub fn close_session(bmc_sid: u32) -> Command {
    Command::new(netfn::APP, cmd::CLOSE_SESSION, bmc_sid.to_le_bytes().to_vec())
}

// ---- Chassis -----------------------------------------------------------------

pub fn get_chassis_status() -> Command {
    Command::new(netfn::CHASSIS, cmd::GET_CHASSIS_STATUS, vec![])
}

/// Get Chassis Status, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChassisStatus {
    pub power_on: bool,
    pub power_overload: bool,
    pub interlock: bool,
    pub power_fault: bool,
    pub power_control_fault: bool,
    /// 0 = stay off, 1 = restore previous state, 2 = power up, 3 = unknown.
    pub restore_policy: u8,
    pub last_power_event: u8,
    pub misc: u8,
}

impl ChassisStatus {
    pub fn decode(data: &[u8]) -> Result<Self> {
        if data.len() < 3 {
            return Err(IpmiError::malformed(format!(
                "Get Chassis Status: {} data bytes",
                data.len()
            )));
        }
        let power = data[0];
        Ok(Self {
            power_on: power & 0x01 != 0,
            power_overload: power & 0x02 != 0,
            interlock: power & 0x04 != 0,
            power_fault: power & 0x08 != 0,
            power_control_fault: power & 0x10 != 0,
            restore_policy: (power >> 5) & 0x03,
            last_power_event: data[1],
            misc: data[2],
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let power = u8::from(self.power_on)
            | u8::from(self.power_overload) << 1
            | u8::from(self.interlock) << 2
            | u8::from(self.power_fault) << 3
            | u8::from(self.power_control_fault) << 4
            | (self.restore_policy & 0x03) << 5;
        vec![power, self.last_power_event, self.misc]
    }
}

/// Chassis Control actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChassisControl {
    PowerDown,
    PowerUp,
    PowerCycle,
    HardReset,
    /// Initiate a soft shutdown via ACPI (emulated fatal over-temperature).
    SoftShutdown,
}

impl ChassisControl {
    pub fn number(self) -> u8 {
        match self {
            Self::PowerDown => 0x00,
            Self::PowerUp => 0x01,
            Self::PowerCycle => 0x02,
            Self::HardReset => 0x03,
            Self::SoftShutdown => 0x05,
        }
    }

    pub fn from_number(number: u8) -> Option<Self> {
        [Self::PowerDown, Self::PowerUp, Self::PowerCycle, Self::HardReset, Self::SoftShutdown]
            .into_iter()
            .find(|action| action.number() == number)
    }
}

pub fn chassis_control(action: ChassisControl) -> Command {
    Command {
        idempotent: !matches!(action, ChassisControl::PowerCycle | ChassisControl::HardReset),
        ..Command::new(netfn::CHASSIS, cmd::CHASSIS_CONTROL, vec![action.number()])
    }
}

// ---- System boot options -------------------------------------------------------

/// Boot parameter 3: BMC boot flag valid bit clearing.
pub const BOOT_PARAM_VALID_BIT_CLEARING: u8 = 3;
/// Boot parameter 5: boot flags.
pub const BOOT_PARAM_BOOT_FLAGS: u8 = 5;

/// The boot device selector of the boot flags (byte 2, bits 5:2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootDevice {
    NoOverride,
    Pxe,
    Disk,
    DiskSafeMode,
    Diagnostic,
    Cdrom,
    BiosSetup,
    RemoteFloppy,
    RemoteCdrom,
    RemoteMedia,
    RemoteDisk,
    Floppy,
    /// A reserved selector value.
    Other(u8),
}

impl BootDevice {
    pub fn selector(self) -> u8 {
        match self {
            Self::NoOverride => 0x0,
            Self::Pxe => 0x1,
            Self::Disk => 0x2,
            Self::DiskSafeMode => 0x3,
            Self::Diagnostic => 0x4,
            Self::Cdrom => 0x5,
            Self::BiosSetup => 0x6,
            Self::RemoteFloppy => 0x7,
            Self::RemoteMedia => 0x8,
            Self::RemoteCdrom => 0x9,
            Self::RemoteDisk => 0xB,
            Self::Floppy => 0xF,
            Self::Other(value) => value & 0x0F,
        }
    }

    pub fn from_selector(selector: u8) -> Self {
        match selector & 0x0F {
            0x0 => Self::NoOverride,
            0x1 => Self::Pxe,
            0x2 => Self::Disk,
            0x3 => Self::DiskSafeMode,
            0x4 => Self::Diagnostic,
            0x5 => Self::Cdrom,
            0x6 => Self::BiosSetup,
            0x7 => Self::RemoteFloppy,
            0x8 => Self::RemoteMedia,
            0x9 => Self::RemoteCdrom,
            0xB => Self::RemoteDisk,
            0xF => Self::Floppy,
            other => Self::Other(other),
        }
    }
}

/// Boot parameter 5, the boot flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootFlags {
    /// The flags are valid (the BMC clears this once the system booted with
    /// them, for a one-time setting).
    pub valid: bool,
    /// Apply to all future boots rather than the next one only.
    pub persistent: bool,
    /// Boot the device in EFI mode rather than legacy (PC compatible).
    pub efi: bool,
    pub device: BootDevice,
    /// Bytes 3–5, kept as read (BIOS verbosity, console redirection, ...).
    pub extra: [u8; 3],
}

impl BootFlags {
    /// Flags that set `device` for the next boot, or for all boots.
    pub fn new(device: BootDevice, persistent: bool, efi: bool) -> Self {
        Self { valid: true, persistent, efi, device, extra: [0; 3] }
    }

    pub fn encode(&self) -> [u8; 5] {
        let first =
            u8::from(self.valid) << 7 | u8::from(self.persistent) << 6 | u8::from(self.efi) << 5;
        [first, self.device.selector() << 2, self.extra[0], self.extra[1], self.extra[2]]
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 2 {
            return Err(IpmiError::malformed(format!("boot flags: {} bytes", bytes.len())));
        }
        let mut extra = [0u8; 3];
        for (slot, value) in extra.iter_mut().zip(bytes.iter().skip(2)) {
            *slot = *value;
        }
        Ok(Self {
            valid: bytes[0] & 0x80 != 0,
            persistent: bytes[0] & 0x40 != 0,
            efi: bytes[0] & 0x20 != 0,
            device: BootDevice::from_selector(bytes[1] >> 2),
            extra,
        })
    }
}

/// Set System Boot Options, parameter `parameter` with `data`.
pub fn set_system_boot_options(parameter: u8, data: &[u8]) -> Command {
    let mut body = vec![parameter & 0x7F];
    body.extend_from_slice(data);
    Command::new(netfn::CHASSIS, cmd::SET_SYSTEM_BOOT_OPTIONS, body)
}

/// Get System Boot Options, parameter `parameter` (set 0, block 0).
pub fn get_system_boot_options(parameter: u8) -> Command {
    Command::new(netfn::CHASSIS, cmd::GET_SYSTEM_BOOT_OPTIONS, vec![parameter & 0x7F, 0, 0])
}

/// A Get System Boot Options response: version, parameter, its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootOption {
    pub version: u8,
    pub parameter: u8,
    /// The parameter is marked invalid / locked.
    pub invalid: bool,
    pub data: Vec<u8>,
}

impl BootOption {
    pub fn decode(data: &[u8]) -> Result<Self> {
        if data.len() < 2 {
            return Err(IpmiError::malformed(format!(
                "Get System Boot Options: {} data bytes",
                data.len()
            )));
        }
        Ok(Self {
            version: data[0] & 0x0F,
            parameter: data[1] & 0x7F,
            invalid: data[1] & 0x80 != 0,
            data: data[2..].to_vec(),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.version, self.parameter | u8::from(self.invalid) << 7];
        out.extend_from_slice(&self.data);
        out
    }
}

/// Decodes a Get System Boot Options response for parameter 5.
pub fn decode_boot_flags_response(data: &[u8]) -> Result<BootFlags> {
    let option = BootOption::decode(data)?;
    if option.parameter != BOOT_PARAM_BOOT_FLAGS {
        return Err(IpmiError::malformed(format!(
            "asked for boot parameter 5, got {}",
            option.parameter
        )));
    }
    BootFlags::decode(&option.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_flags_encode_like_ipmitool() {
        // "chassis bootdev pxe" and "bootdev disk options=persistent,efiboot".
        assert_eq!(BootFlags::new(BootDevice::Pxe, false, false).encode(), [0x80, 0x04, 0, 0, 0]);
        assert_eq!(BootFlags::new(BootDevice::Disk, true, true).encode(), [0xE0, 0x08, 0, 0, 0]);
        assert_eq!(BootFlags::new(BootDevice::Cdrom, false, false).encode()[1], 0x14);
        assert_eq!(BootFlags::new(BootDevice::BiosSetup, false, false).encode()[1], 0x18);
        let read = BootFlags::decode(&[0x00, 0x04, 0, 0, 0]).expect("decode");
        assert_eq!((read.valid, read.device), (false, BootDevice::Pxe));
    }

    #[test]
    fn cipher_suite_records_parse() {
        // Suites 3 and 17, then an OEM suite 0x80 from IANA 0x0002A2.
        let bytes = [
            0xC0, 0x03, 0x01, 0x41, 0x81, 0xC0, 0x11, 0x03, 0x44, 0x81, 0xC1, 0x80, 0xA2, 0x02,
            0x00, 0x01, 0x41, 0x80,
        ];
        let records = decode_cipher_suite_records(&bytes).expect("decode");
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].id, 3);
        assert_eq!((records[0].auth.clone(), records[0].integrity.clone()), (vec![1], vec![1]));
        assert_eq!((records[1].id, records[1].auth.clone()), (17, vec![3]));
        assert_eq!(records[2].oem_iana, Some(0x0002A2));
        assert!(decode_cipher_suite_records(&[0xC1, 0x80]).is_err());
    }

    #[test]
    fn chassis_status_round_trips() {
        let status = ChassisStatus::decode(&[0x41, 0x10, 0x00, 0x00]).expect("decode");
        assert!(status.power_on);
        assert_eq!(status.restore_policy, 2);
        assert_eq!(ChassisStatus::decode(&status.encode()).expect("again"), status);
        assert!(ChassisStatus::decode(&[0x01]).is_err());
    }
}
