//! Drivers: how ferric talks to hardware.
//!
//! A node is driven through interfaces (power, management, boot, deploy, ...),
//! each a small trait in [`interfaces`]. A hardware type ([`hardware`]) says
//! which implementations of each interface it supports and which is the
//! default; [`DriverSet::load`] builds the interface objects for one node from
//! its chosen implementations. Work on a node is a list of [`Step`]s that
//! interfaces declare and execute; the conductor orders and runs them.
//!
//! `fake-hardware` ([`fake`]) is a product feature, as in Ironic: every step
//! succeeds, optionally after a delay (`fake_<interface>_delay` in
//! `driver_info`, seconds or `min:max`), which makes it the workload for
//! benchmarks and a safe way to try the API.
//!
//! The `ipmi` hardware type's power and management interfaces ([`ipmi`])
//! speak IPMI 2.0 over LAN natively through `ferric-ipmi`; the `redfish`
//! hardware type's ([`redfish`]) speak Redfish through `ferric-redfish`.

pub mod agent_client;
pub mod direct;
pub mod error;
pub mod fake;
pub mod hardware;
pub mod interfaces;
pub mod ipmi;
pub mod netboot;
pub mod poll;
pub mod redfish;
pub mod steps;

pub use error::DriverError;
pub use hardware::{hardware_type_support, DriverSet};
pub use interfaces::{
    BootInterface, DeployInterface, Interface, ManagementInterface, NetworkInterface,
    PowerInterface, StepOutcome,
};
pub use steps::{Step, StepPhase};
