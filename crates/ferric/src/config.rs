//! `ferric serve` settings: a TOML file, then `FERRIC_*` environment
//! variables, then flags — each overriding the one before.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

/// The TOML file's shape. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub api: ApiSection,
    #[serde(default)]
    pub database: DatabaseSection,
    #[serde(default)]
    pub conductor: ConductorSection,
    #[serde(default)]
    pub boot: BootSection,
    pub data_dir: Option<PathBuf>,
}

/// Boot services; all off unless an address is given.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootSection {
    pub tftp_listen: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    pub interface: Option<String>,
    pub root: Option<PathBuf>,
    pub api_url: Option<String>,
    pub kernel_append: Option<String>,
    /// Send lifetime-0 IPv6 router advertisements on the boot interface
    /// (default: true), so iPXE does not wait ~13 s for IPv6.
    pub router_advertisements: Option<bool>,
    pub dhcp: Option<DhcpSection>,
}

/// `[boot.dhcp]`: DHCP on the boot interface (needs `[boot] interface`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DhcpSection {
    /// `authoritative` (hand out addresses) or `proxy` (boot options only,
    /// beside another DHCP server).
    #[serde(default = "default_dhcp_mode")]
    pub mode: String,
    /// This server's address on the boot interface.
    pub server_ip: std::net::Ipv4Addr,
    /// The served network, `198.18.0.0/24` (authoritative mode).
    pub subnet: Option<String>,
    /// First and last address to lease.
    pub range: Option<[std::net::Ipv4Addr; 2]>,
    pub router: Option<std::net::Ipv4Addr>,
    #[serde(default)]
    pub dns_servers: Vec<std::net::Ipv4Addr>,
    pub lease_time_seconds: Option<u32>,
}

fn default_dhcp_mode() -> String {
    "authoritative".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    pub listen: Option<SocketAddr>,
    pub public_endpoint: Option<String>,
    pub max_body_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConductorSection {
    pub hostname: Option<String>,
    pub conductor_group: Option<String>,
    pub automated_clean: Option<bool>,
    pub power_sync_interval_seconds: Option<u64>,
    pub deploy_callback_timeout_seconds: Option<u64>,
    pub clean_callback_timeout_seconds: Option<u64>,
    pub workers: Option<usize>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }
}

/// The default data directory: `$XDG_DATA_HOME/ferric`, else `./ferric-data`.
pub fn default_data_dir() -> PathBuf {
    match std::env::var_os("XDG_DATA_HOME") {
        Some(base) if !base.is_empty() => PathBuf::from(base).join("ferric"),
        _ => PathBuf::from("ferric-data"),
    }
}

/// The SQLite URL for a data directory.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("ferric.db").display())
}

pub fn seconds(value: Option<u64>) -> Option<Duration> {
    value.map(Duration::from_secs)
}
