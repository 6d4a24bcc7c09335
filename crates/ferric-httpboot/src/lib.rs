//! HTTP boot: what a network-booting machine fetches over HTTP.
//!
//! - [`script`] renders a node's iPXE script from its state, with no I/O:
//!   the deploy ramdisk while ferric works on the node (deploy, clean,
//!   inspect, rescue, service), its own disk once active, nothing otherwise.
//! - [`files`] serves the boot files (kernels, ramdisks, images) from a
//!   directory with `Range`, `ETag` and `If-None-Match`.
//! - [`server`] puts both behind an axum router; node lookups go through
//!   the narrow [`server::BootBackend`] trait, so the crate never touches
//!   the store itself.

pub mod files;
pub mod script;
pub mod server;

pub use script::{render, BootSettings};
pub use server::{router, BootBackend};
