//! Virtual BMCs for virtual machines: what VirtualBMC does for Ironic.
//!
//! - [`machine`]: the [`Machine`] trait, shared by every front end (IPMI
//!   and Redfish): power, soft off, reset, cycle, boot override;
//! - [`simulated`]: [`SimulatedMachine`], in memory, with counters and
//!   fault knobs, for tests and large simulated fleets;
//! - [`qemu`]: [`QemuMachine`], one QEMU process driven through QMP;
//! - [`ipmi`]: an IPMI 2.0 lanplus server per machine, on
//!   [`ferric_ipmi::server`] (cipher suites 3 and 17);
//! - [`redfish`]: a Redfish service per machine (optional: `redfish_port`),
//!   on axum, plain HTTP with basic authentication (TLS is a later change);
//! - [`config`]: the TOML file; [`start`] and [`run`] bring a fleet up.
//!
//! Servers bind 127.0.0.1 unless configured otherwise.

pub mod config;
pub mod ipmi;
pub mod machine;
pub mod qemu;
pub mod redfish;
pub mod simulated;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use thiserror::Error;

pub use config::{Config, ConfigError, MachineConfig};
pub use ipmi::{IpmiServer, IpmiSettings};
pub use machine::{BootDevice, BootSetting, Machine, MachineError, PowerState};
pub use qemu::{QemuConfig, QemuMachine};
pub use redfish::{RedfishServer, RedfishSettings};
pub use simulated::{Faults, SimulatedMachine};

#[derive(Debug, Error)]
pub enum VbmcError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("machine {name}: cannot listen on {address}: {source}")]
    Bind {
        name: String,
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// One machine with its running BMC.
pub struct Vbmc {
    pub name: String,
    pub machine: Arc<dyn Machine>,
    pub ipmi: IpmiServer,
    /// The Redfish service, when the machine has a `redfish_port`.
    pub redfish: Option<RedfishServer>,
}

/// A running fleet; every server stops when it is dropped (QEMU processes
/// keep running, as with VirtualBMC).
pub struct Fleet {
    pub vbmcs: Vec<Vbmc>,
}

impl Fleet {
    pub fn get(&self, name: &str) -> Option<&Vbmc> {
        self.vbmcs.iter().find(|vbmc| vbmc.name == name)
    }
}

/// The machine a configuration entry describes.
pub fn build_machine(config: &MachineConfig) -> Arc<dyn Machine> {
    match &config.qemu {
        Some(qemu) if !config.simulated => {
            Arc::new(QemuMachine::new(config.name.clone(), qemu.clone()))
        }
        _ => Arc::new(SimulatedMachine::new(config.name.clone())),
    }
}

/// Starts a BMC for every configured machine.
pub async fn start(config: &Config) -> Result<Fleet, VbmcError> {
    config.validate()?;
    let mut vbmcs = Vec::with_capacity(config.machines.len());
    for entry in &config.machines {
        let machine = build_machine(entry);
        let address = SocketAddr::new(entry.address, entry.ipmi_port);
        let settings = IpmiSettings {
            address,
            username: entry.username.clone(),
            password: entry.password.clone(),
            suites: entry.cipher_suites.clone(),
            command_timeout: entry.command_timeout(),
        };
        let ipmi = IpmiServer::start(settings, machine.clone())
            .await
            .map_err(|source| VbmcError::Bind { name: entry.name.clone(), address, source })?;
        tracing::info!(machine = %entry.name, address = %ipmi.local_addr(), "IPMI BMC listening");
        let redfish = match entry.redfish_port {
            Some(port) => {
                let address = SocketAddr::new(entry.address, port);
                let settings = RedfishSettings {
                    address,
                    username: entry.username.clone(),
                    password: entry.password.clone(),
                    command_timeout: entry.command_timeout(),
                    graceful_timeout: entry.graceful_timeout(),
                };
                let server =
                    RedfishServer::start(settings, machine.clone()).await.map_err(|source| {
                        VbmcError::Bind { name: entry.name.clone(), address, source }
                    })?;
                tracing::info!(machine = %entry.name, url = %server.url(), "Redfish BMC listening");
                Some(server)
            }
            None => None,
        };
        vbmcs.push(Vbmc { name: entry.name.clone(), machine, ipmi, redfish });
    }
    Ok(Fleet { vbmcs })
}

/// Serves `config` until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), VbmcError> {
    let fleet = start(&config).await?;
    shutdown.await;
    tracing::info!(machines = fleet.vbmcs.len(), "vbmc stopping");
    drop(fleet);
    Ok(())
}
