//! A pure-Rust IPMI 2.0 over LAN client (RMCP+, what ipmitool calls
//! `lanplus`), on tokio UDP.
//!
//! Layers, bottom up:
//! - [`wire`], [`rakp`], [`commands`]: packet and message codecs as plain
//!   `encode`/`decode` functions that never panic on malformed input;
//! - [`crypto`]: cipher suites 17 (HMAC-SHA256, AES-CBC-128) and 3
//!   (HMAC-SHA1, AES-CBC-128): RAKP codes, key derivation, integrity,
//!   encryption;
//! - [`session`]: the socket loop (retries with growing waits) and an
//!   authenticated, encrypted [`Session`] that can run many commands;
//! - [`client`]: a [`Client`] that opens a session on demand, reuses it,
//!   and re-opens it after an error, a timeout or idleness.
//!
//! [`server`] is the BMC side of session setup and sessions, without I/O
//! (for test and virtual BMCs). [`testing`] holds an in-process BMC and an `ipmi_sim` harness for tests.
//!
//! Secrets: the password and session keys never appear in an error, a log
//! line or a `Debug` output.

pub mod client;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod error;
pub mod rakp;
pub mod server;
pub mod session;
pub mod testing;
pub mod wire;

pub use client::Client;
pub use commands::{BootDevice, BootFlags, ChassisControl, ChassisStatus, Privilege};
pub use config::{Config, Password, DEFAULT_PORT};
pub use crypto::CipherSuite;
pub use error::{IpmiError, Result};
pub use session::Session;
