//! The ferric deploy agent, as a library: everything the `ferric-agent`
//! binary does in the deploy ramdisk, in modules that can be tested against
//! files, fixture `/sys` trees and local servers.
//!
//! The agent finds its node through the API (`GET /v1/lookup` with its MAC
//! addresses), heartbeats with the one-time agent token, and serves an
//! IPA-compatible command API (`/v1/commands/` on port 9999) through which
//! the conductor drives it: write an image, erase disks, report inventory,
//! power off.
pub mod api;
pub mod client;
pub mod cmdline;
pub mod commands;
pub mod configdrive;
pub mod disks;
pub mod erase;
pub mod init;
pub mod inventory;
pub mod modules;
pub mod net;
