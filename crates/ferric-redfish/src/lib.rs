//! A thin, typed async Redfish client over reqwest (rustls), for what a
//! bare-metal provisioner needs from a BMC:
//!
//! - the service root and the system to drive: `redfish_system_id`, or the
//!   only member of `/redfish/v1/Systems` ([`Client::system_path`]);
//! - power: the system's `PowerState` and `ComputerSystem.Reset` through the
//!   action target the system advertises, checked against
//!   `ResetType@Redfish.AllowableValues` when present;
//! - the boot override (`Boot`), read and `PATCH`ed with `If-Match` when the
//!   resource has an ETag (one retry on `412 Precondition Failed`);
//! - authentication by session (`X-Auth-Token`, re-login on 401, the session
//!   deleted on [`Client::close`] or drop) or HTTP basic, or `auto`: a
//!   session, falling back to basic when the BMC has no session service;
//! - TLS verification on by default, off, or against a CA bundle;
//! - task monitors: a `202 Accepted` with a `Location` is polled until the
//!   task ends, within a bound.
//!
//! Modules: [`config`] (what to connect to and how), [`error`] (one
//! [`RedfishError`] with the BMC's own `@Message.ExtendedInfo` text),
//! [`model`] (tolerant parsing of the few resources used), [`client`].
//! With the `testing` feature, [`testing`] has a mock BMC with fault knobs
//! and a harness for sushy-tools' emulator.
//!
//! Secrets: the password and session token never appear in an error, a log
//! line or a `Debug` output.

pub mod client;
pub mod config;
pub mod error;
pub mod model;
#[cfg(feature = "testing")]
pub mod testing;

pub use client::Client;
pub use config::{AuthType, Config, Password, TlsVerify};
pub use error::RedfishError;
pub use model::{BootEnabled, BootMode, BootOverride, BootSource, PowerState, ResetType};
