//! The IPMI 2.0 lanplus front end: one UDP server per machine, sessions
//! (cipher suites 3 and 17, integrity and AES confidentiality) from
//! [`ferric_ipmi::server`], and the commands a provisioning system and
//! `ipmitool` use, run against a [`Machine`]:
//!
//! - App: Get Device ID, and the session commands (Get Channel
//!   Authentication Capabilities, Get Channel Cipher Suites, Set Session
//!   Privilege Level, Close Session);
//! - Chassis: Get Chassis Status, Chassis Control (down, up, cycle, hard
//!   reset, soft off), Set/Get System Boot Options parameters 0
//!   (set in progress), 3 (valid bit clearing), 4 (boot info
//!   acknowledge) and 5 (boot flags).
//!
//! Anything else is answered with completion code 0xC1 (invalid command).
//! Commands run one at a time per machine. A Chassis Control request
//! retransmitted within [`RETRANSMIT_WINDOW`] (same session, sequence number
//! and body) gets the cached answer instead of running twice, so a client
//! retrying a slow power on or a cycle does not repeat it; reads are never
//! cached.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferric_ipmi::commands::{cmd, netfn, BootDevice as IpmiBootDevice, BootFlags, ChassisStatus};
use ferric_ipmi::server::{
    BmcSessions, Incoming, IncomingCommand, CC_INVALID_COMMAND, CC_INVALID_DATA, CC_INVALID_LENGTH,
};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::machine::{BootDevice, BootSetting, Machine, MachineError};

/// App: Get Device ID.
pub const GET_DEVICE_ID: u8 = 0x01;
/// Completion code: timeout while processing the command.
pub const CC_TIMEOUT: u8 = 0xC3;
/// Completion code: parameter not supported (boot options).
pub const CC_PARAMETER_NOT_SUPPORTED: u8 = 0x80;
/// Completion code: command not supported in present state.
pub const CC_NOT_IN_THIS_STATE: u8 = 0xD5;
/// Completion code: unspecified error.
pub const CC_UNSPECIFIED: u8 = 0xFF;

/// How long an answered Chassis Control is remembered for retransmissions.
pub const RETRANSMIT_WINDOW: Duration = Duration::from_secs(10);

/// One IPMI endpoint.
#[derive(Debug, Clone)]
pub struct IpmiSettings {
    pub address: SocketAddr,
    pub username: String,
    pub password: String,
    /// Cipher suites offered (any of 3 and 17).
    pub suites: Vec<u8>,
    /// How long a machine operation may take before the command is answered
    /// with 0xC3 (timeout).
    pub command_timeout: Duration,
}

impl IpmiSettings {
    /// 127.0.0.1:`port`, suites 3 and 17, 30 s per command.
    pub fn local(port: u16, username: &str, password: &str) -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            username: username.to_string(),
            password: password.to_string(),
            suites: vec![3, 17],
            command_timeout: Duration::from_secs(30),
        }
    }
}

/// A running IPMI server for one machine. Stops when dropped.
pub struct IpmiServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for IpmiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for IpmiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpmiServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl IpmiServer {
    /// Binds the UDP socket and starts serving `machine`.
    pub async fn start(
        settings: IpmiSettings,
        machine: Arc<dyn Machine>,
    ) -> std::io::Result<IpmiServer> {
        let socket = UdpSocket::bind(settings.address).await?;
        let addr = socket.local_addr()?;
        let mut guid = [0u8; 16];
        let name = machine.name().as_bytes();
        for (slot, byte) in guid.iter_mut().zip(name.iter().chain(b"-ferric-vbmc-guid".iter())) {
            *slot = *byte;
        }
        let core = BmcSessions::new(&settings.username, &settings.password, &settings.suites)
            .with_guid(guid);
        let front = Front {
            core,
            machine,
            timeout: settings.command_timeout,
            boot_options: BootOptions::default(),
            answered: HashMap::new(),
        };
        let task = tokio::spawn(front.serve(socket));
        Ok(IpmiServer { addr, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Boot option parameters kept by the BMC itself.
#[derive(Debug, Default)]
struct BootOptions {
    set_in_progress: u8,
    valid_bit_clearing: u8,
    /// Bytes 3–5 of the last boot flags written (verbosity, console
    /// redirection, ...), echoed back.
    extra: [u8; 3],
}

type RequestKey = (u8, u8, u8, Vec<u8>);

struct Front {
    core: BmcSessions,
    machine: Arc<dyn Machine>,
    timeout: Duration,
    boot_options: BootOptions,
    /// The last Chassis Control answer per session, for retransmissions.
    answered: HashMap<u32, (RequestKey, Instant, Vec<u8>)>,
}

impl Front {
    async fn serve(mut self, socket: UdpSocket) {
        let mut buffer = vec![0u8; 2048];
        loop {
            let (len, from) = match socket.recv_from(&mut buffer).await {
                Ok(received) => received,
                Err(error) => {
                    // ICMP errors from earlier sends surface here on Linux.
                    tracing::debug!(machine = self.machine.name(), %error, "ipmi recv");
                    continue;
                }
            };
            if let Some(reply) = self.handle(&buffer[..len]).await {
                if let Err(error) = socket.send_to(&reply, from).await {
                    tracing::debug!(machine = self.machine.name(), %error, "ipmi send");
                }
            }
        }
    }

    async fn handle(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        let command = match self.core.receive(datagram) {
            Incoming::Reply(reply) => return Some(reply),
            Incoming::Ignore => return None,
            Incoming::Command(command) => command,
        };
        let key: RequestKey = (command.rq_seq, command.netfn, command.cmd, command.data.clone());
        let control = (command.netfn, command.cmd) == (netfn::CHASSIS, cmd::CHASSIS_CONTROL)
            && command.session != 0;
        if control {
            if let Some((last, at, reply)) = self.answered.get(&command.session) {
                if *last == key && at.elapsed() < RETRANSMIT_WINDOW {
                    tracing::debug!(machine = self.machine.name(), "retransmitted chassis control");
                    return Some(reply.clone());
                }
            }
        }
        let (code, data) = match self.core.builtin(&command) {
            Some(answer) => answer,
            None => self.execute(&command).await,
        };
        tracing::debug!(
            machine = self.machine.name(),
            netfn = command.netfn,
            cmd = command.cmd,
            code,
            "ipmi command"
        );
        let reply = self.core.reply(&command, code, data)?;
        if control {
            self.answered.retain(|_, (_, at, _)| at.elapsed() < RETRANSMIT_WINDOW);
            self.answered.insert(command.session, (key, Instant::now(), reply.clone()));
        }
        Some(reply)
    }

    async fn execute(&mut self, command: &IncomingCommand) -> (u8, Vec<u8>) {
        let data = command.data.as_slice();
        match (command.netfn, command.cmd) {
            (netfn::APP, GET_DEVICE_ID) => (0, device_id()),
            (netfn::CHASSIS, cmd::GET_CHASSIS_STATUS) => {
                match self.run(self.machine.power_state()).await {
                    Ok(power) => {
                        let status = ChassisStatus {
                            power_on: power.is_on(),
                            power_overload: false,
                            interlock: false,
                            power_fault: false,
                            power_control_fault: false,
                            restore_policy: 0,
                            last_power_event: 0,
                            misc: 0,
                        };
                        let mut out = status.encode();
                        // Front panel button capabilities: none.
                        out.push(0);
                        (0, out)
                    }
                    Err(code) => (code, vec![]),
                }
            }
            (netfn::CHASSIS, cmd::CHASSIS_CONTROL) => {
                let Some(action) = data.first().copied() else {
                    return (CC_INVALID_LENGTH, vec![]);
                };
                let machine = self.machine.clone();
                let result = match action & 0x0F {
                    0x00 => self.run(machine.power_off()).await,
                    0x01 => self.run(machine.power_on()).await,
                    0x02 => self.run(machine.power_cycle()).await,
                    0x03 => self.run(machine.reset()).await,
                    0x05 => self.run(machine.soft_off()).await,
                    _ => Err(CC_INVALID_DATA),
                };
                tracing::info!(
                    machine = self.machine.name(),
                    action,
                    ok = result.is_ok(),
                    "chassis control"
                );
                match result {
                    Ok(()) => (0, vec![]),
                    Err(code) => (code, vec![]),
                }
            }
            (netfn::CHASSIS, cmd::SET_SYSTEM_BOOT_OPTIONS) => self.set_boot_option(data).await,
            (netfn::CHASSIS, cmd::GET_SYSTEM_BOOT_OPTIONS) => self.get_boot_option(data).await,
            _ => (CC_INVALID_COMMAND, vec![]),
        }
    }

    /// Runs a machine operation under the command deadline; errors become
    /// completion codes.
    async fn run<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, MachineError>>,
    ) -> Result<T, u8> {
        match tokio::time::timeout(self.timeout, operation).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(MachineError::PoweredOff(_))) => Err(CC_NOT_IN_THIS_STATE),
            Ok(Err(error)) => {
                tracing::warn!(machine = self.machine.name(), %error, "machine operation failed");
                Err(CC_UNSPECIFIED)
            }
            Err(_) => {
                tracing::warn!(machine = self.machine.name(), "machine operation timed out");
                Err(CC_TIMEOUT)
            }
        }
    }

    async fn set_boot_option(&mut self, data: &[u8]) -> (u8, Vec<u8>) {
        let Some((&parameter, value)) = data.split_first() else {
            return (CC_INVALID_LENGTH, vec![]);
        };
        match (parameter & 0x7F, value) {
            (0, [state, ..]) => {
                self.boot_options.set_in_progress = state & 0x03;
                (0, vec![])
            }
            (3, [clearing, ..]) => {
                self.boot_options.valid_bit_clearing = *clearing & 0x1F;
                (0, vec![])
            }
            // Boot info acknowledge: nothing to remember.
            (4, [_, _, ..]) => (0, vec![]),
            (5, flags) if flags.len() >= 5 => {
                let Ok(decoded) = BootFlags::decode(flags) else {
                    return (CC_INVALID_DATA, vec![]);
                };
                let Some(setting) = setting_from_flags(&decoded) else {
                    return (CC_INVALID_DATA, vec![]);
                };
                self.boot_options.extra = decoded.extra;
                let machine = self.machine.clone();
                match self.run(machine.set_boot_device(setting)).await {
                    Ok(()) => (0, vec![]),
                    Err(code) => (code, vec![]),
                }
            }
            (0 | 3 | 4 | 5, _) => (CC_INVALID_LENGTH, vec![]),
            _ => (CC_PARAMETER_NOT_SUPPORTED, vec![]),
        }
    }

    async fn get_boot_option(&mut self, data: &[u8]) -> (u8, Vec<u8>) {
        let Some(&parameter) = data.first() else { return (CC_INVALID_LENGTH, vec![]) };
        let parameter = parameter & 0x7F;
        let mut out = vec![0x01, parameter];
        match parameter {
            0 => out.push(self.boot_options.set_in_progress),
            3 => out.push(self.boot_options.valid_bit_clearing),
            4 => out.extend_from_slice(&[0, 0]),
            5 => {
                let machine = self.machine.clone();
                match self.run(machine.boot_device()).await {
                    Ok(setting) => {
                        let mut flags = flags_from_setting(setting);
                        flags.extra = self.boot_options.extra;
                        out.extend_from_slice(&flags.encode());
                    }
                    Err(code) => return (code, vec![]),
                }
            }
            _ => return (CC_PARAMETER_NOT_SUPPORTED, vec![]),
        }
        (0, out)
    }
}

/// Get Device ID: device 0x20, revision 1, firmware 1.00, IPMI 2.0, chassis
/// device; manufacturer and product 0 (unspecified).
fn device_id() -> Vec<u8> {
    vec![0x20, 0x01, 0x01, 0x00, 0x02, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00]
}

/// The machine's boot override from IPMI boot flags; `None` for devices a
/// virtual machine cannot boot from.
pub fn setting_from_flags(flags: &BootFlags) -> Option<BootSetting> {
    let device = if !flags.valid {
        BootDevice::None
    } else {
        match flags.device {
            IpmiBootDevice::NoOverride => BootDevice::None,
            IpmiBootDevice::Pxe => BootDevice::Pxe,
            IpmiBootDevice::Disk | IpmiBootDevice::DiskSafeMode | IpmiBootDevice::RemoteDisk => {
                BootDevice::Disk
            }
            IpmiBootDevice::Cdrom | IpmiBootDevice::RemoteCdrom => BootDevice::Cdrom,
            IpmiBootDevice::BiosSetup => BootDevice::Bios,
            _ => return None,
        }
    };
    Some(BootSetting { device, persistent: flags.persistent, uefi: flags.efi })
}

/// IPMI boot flags for a boot override.
pub fn flags_from_setting(setting: BootSetting) -> BootFlags {
    let device = match setting.device {
        BootDevice::None => IpmiBootDevice::NoOverride,
        BootDevice::Pxe => IpmiBootDevice::Pxe,
        BootDevice::Disk => IpmiBootDevice::Disk,
        BootDevice::Cdrom => IpmiBootDevice::Cdrom,
        BootDevice::Bios => IpmiBootDevice::BiosSetup,
    };
    BootFlags {
        valid: setting.device != BootDevice::None,
        persistent: setting.persistent,
        efi: setting.uefi,
        device,
        extra: [0; 3],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::simulated::SimulatedMachine;
    use crate::PowerState;
    use ferric_ipmi::{ChassisControl, Client, Config};

    #[test]
    fn boot_flags_round_trip() {
        for device in [
            BootDevice::None,
            BootDevice::Pxe,
            BootDevice::Disk,
            BootDevice::Cdrom,
            BootDevice::Bios,
        ] {
            for persistent in [false, true] {
                let setting = BootSetting { device, persistent, uefi: persistent };
                assert_eq!(setting_from_flags(&flags_from_setting(setting)), Some(setting));
            }
        }
    }

    #[tokio::test]
    async fn ferric_client_drives_a_simulated_machine() {
        let machine = SimulatedMachine::new("sim");
        let server =
            IpmiServer::start(IpmiSettings::local(0, "admin", "pw"), Arc::new(machine.clone()))
                .await
                .unwrap();
        for suite in [3, 17] {
            let mut config = Config::new("127.0.0.1", server.local_addr().port(), "admin", "pw");
            config.cipher_suite = Some(suite);
            let client = Client::new(config).unwrap();
            client.chassis_control(ChassisControl::PowerUp).await.unwrap();
            assert!(client.power_is_on().await.unwrap());
            assert_eq!(machine.state().power_state(), PowerState::On);
            client.set_boot_flags(BootFlags::new(IpmiBootDevice::Pxe, true, true)).await.unwrap();
            let flags = client.boot_flags().await.unwrap();
            assert_eq!(flags.device, IpmiBootDevice::Pxe);
            assert!(flags.persistent && flags.efi);
            client.chassis_control(ChassisControl::PowerDown).await.unwrap();
            assert!(!client.power_is_on().await.unwrap());
            assert!(client.chassis_control(ChassisControl::HardReset).await.is_err());
            client.close().await.unwrap();
        }
        assert_eq!(machine.state().boot.device, BootDevice::Pxe);
    }

    #[tokio::test]
    async fn hung_machine_times_out_with_c3() {
        let machine = SimulatedMachine::new("hung");
        let settings = IpmiSettings {
            command_timeout: Duration::from_millis(200),
            ..IpmiSettings::local(0, "admin", "pw")
        };
        let server = IpmiServer::start(settings, Arc::new(machine.clone())).await.unwrap();
        let mut config = Config::new("127.0.0.1", server.local_addr().port(), "admin", "pw");
        config.timeout = Duration::from_secs(3);
        config.retries = 0;
        let client = Client::new(config).unwrap();
        assert!(!client.power_is_on().await.unwrap());
        machine.set_faults(crate::Faults { unresponsive: true, ..Default::default() });
        let error = client.power_is_on().await.unwrap_err();
        assert!(error.to_string().to_lowercase().contains("c3"), "{error}");
        machine.set_faults(crate::Faults::default());
        assert!(!client.power_is_on().await.unwrap());
    }
}
