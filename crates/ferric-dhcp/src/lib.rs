//! A DHCPv4 server for network boot, part of ferric's boot infrastructure.
//!
//! Layers, from the wire up:
//! - [`packet`]: decoding and encoding of DHCP messages; total (never
//!   panics), fuzzed in `fuzz/`.
//! - [`config`]: mode (authoritative or proxyDHCP), networks, boot files.
//! - [`backend`]: the narrow read interface to ferric's inventory
//!   ([`Backend`]) and lease bookkeeping ([`LeaseStore`]), with in-memory
//!   implementations.
//! - [`boot`]: which boot file or URL a BIOS/UEFI PXE, UEFI HTTP or iPXE
//!   client gets.
//! - [`handler`]: the protocol core — one request in, at most one reply
//!   out, no sockets, no clock.
//! - [`server`]: the tokio socket loop on one interface.
//!
//! Unknown MACs get no answer, and no address is ping-checked before it is
//! offered.

pub mod backend;
pub mod boot;
pub mod config;
pub mod handler;
pub mod packet;
pub mod ra;
pub mod server;

pub use backend::{
    Backend, Lease, LeaseError, LeaseState, LeaseStore, MemoryBackend, MemoryLeases, RelayInfo,
    Reservation,
};
pub use config::{AddressRange, BootConfig, Config, Mode, Network};
pub use handler::{
    handle, Context, Destination, Port, Reply, CLIENT_PORT, PROXY_PORT, SERVER_PORT,
};
pub use packet::{DecodeError, MacAddr, MessageType, Packet};
pub use server::{DhcpServer, ServerError};
