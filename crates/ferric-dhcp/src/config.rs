//! Server configuration: mode, networks with their address ranges and
//! options, and the boot files/URLs handed to PXE, UEFI HTTP and iPXE clients.

use std::net::Ipv4Addr;

/// What the server hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Addresses (from ranges or reservations) plus boot options.
    Authoritative,
    /// Boot options only, next to another DHCP server (PXE spec proxyDHCP):
    /// OFFERs without `yiaddr` on port 67, ACKs on port 4011.
    Proxy,
}

/// An inclusive range of addresses to lease from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    /// First address.
    pub first: Ipv4Addr,
    /// Last address (inclusive).
    pub last: Ipv4Addr,
}

impl AddressRange {
    /// Whether `address` is in the range.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        (u32::from(self.first)..=u32::from(self.last)).contains(&u32::from(address))
    }
}

/// One subnet the server serves (directly or through relays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Network address.
    pub subnet: Ipv4Addr,
    /// Prefix length (0..=32).
    pub prefix: u8,
    /// Dynamic ranges (empty: reservations with fixed addresses only).
    pub ranges: Vec<AddressRange>,
    /// Default gateways (option 3).
    pub routers: Vec<Ipv4Addr>,
    /// DNS servers (option 6).
    pub dns_servers: Vec<Ipv4Addr>,
    /// Domain name (option 15).
    pub domain_name: Option<String>,
    /// Lease time in seconds (option 51).
    pub lease_time: u32,
}

impl Network {
    /// A network with no ranges or options and a one-hour lease time.
    pub fn new(subnet: Ipv4Addr, prefix: u8) -> Network {
        Network {
            subnet,
            prefix: prefix.min(32),
            ranges: Vec::new(),
            routers: Vec::new(),
            dns_servers: Vec::new(),
            domain_name: None,
            lease_time: 3600,
        }
    }

    /// The subnet mask.
    pub fn mask(&self) -> Ipv4Addr {
        let prefix = u32::from(self.prefix.min(32));
        Ipv4Addr::from(u32::MAX.checked_shl(32 - prefix).unwrap_or(0))
    }

    /// Whether `address` is on this subnet.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        let mask = u32::from(self.mask());
        u32::from(address) & mask == u32::from(self.subnet) & mask
    }

    /// Whether `address` may be handed out here (inside the subnet, not its
    /// network or broadcast address).
    pub fn assignable(&self, address: Ipv4Addr) -> bool {
        let mask = u32::from(self.mask());
        let host = u32::from(address) & !mask;
        self.contains(address) && (self.prefix >= 31 || (host != 0 && host != !mask))
    }
}

/// Boot files and URLs. Templates may use `{server}` (the HTTP server
/// address), `{port}` (HTTP port), `{mac}` (`aa:bb:cc:dd:ee:ff`) and
/// `{mac_hyphen}` (`aa-bb-cc-dd-ee-ff`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootConfig {
    /// TFTP server (`siaddr`, option 66); defaults to the server address.
    pub tftp_server: Option<Ipv4Addr>,
    /// HTTP server for URLs; defaults to the server address.
    pub http_server: Option<Ipv4Addr>,
    /// HTTP port for URLs.
    pub http_port: u16,
    /// Legacy BIOS PXE (arch 0), over TFTP.
    pub bios_file: String,
    /// UEFI x86-64 PXE (arch 7, 9), over TFTP.
    pub uefi_file: String,
    /// UEFI HTTP boot (vendor class `HTTPClient`): URL template.
    pub http_boot_url: String,
    /// iPXE (user class `iPXE` or option 175): script URL template.
    pub ipxe_script_url: String,
}

impl Default for BootConfig {
    fn default() -> Self {
        BootConfig {
            tftp_server: None,
            http_server: None,
            http_port: 8080,
            bios_file: "undionly.kpxe".into(),
            uefi_file: "snponly.efi".into(),
            http_boot_url: "http://{server}:{port}/files/ipxe.efi".into(),
            ipxe_script_url: "http://{server}:{port}/boot/{mac}.ipxe".into(),
        }
    }
}

/// Everything the protocol core needs to know about this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Authoritative or proxyDHCP.
    pub mode: Mode,
    /// The interface to serve on (`SO_BINDTODEVICE`).
    pub interface: String,
    /// This server's address on that interface: server identifier
    /// (option 54) and how directly attached clients find their network.
    pub server_ip: Ipv4Addr,
    /// Served networks (authoritative mode).
    pub networks: Vec<Network>,
    /// Boot options.
    pub boot: BootConfig,
    /// How long an OFFERed address is held for the client, in seconds.
    pub offer_hold: u32,
    /// How long a DECLINEd address is kept out of use, in seconds.
    pub decline_hold: u32,
}

impl Config {
    /// A configuration with defaults for the holds and boot files.
    pub fn new(mode: Mode, interface: impl Into<String>, server_ip: Ipv4Addr) -> Config {
        Config {
            mode,
            interface: interface.into(),
            server_ip,
            networks: Vec::new(),
            boot: BootConfig::default(),
            offer_hold: 60,
            decline_hold: 600,
        }
    }

    /// The network serving a client: by `giaddr` for relayed requests,
    /// else the network of the server's own address.
    pub fn network_for(&self, giaddr: Ipv4Addr) -> Option<&Network> {
        let key = if giaddr.is_unspecified() { self.server_ip } else { giaddr };
        self.networks.iter().find(|n| n.contains(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_membership() {
        let n = Network::new(Ipv4Addr::new(198, 18, 0, 0), 24);
        assert_eq!(n.mask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(n.contains(Ipv4Addr::new(198, 18, 0, 77)));
        assert!(!n.contains(Ipv4Addr::new(198, 18, 1, 1)));
        assert!(!n.assignable(Ipv4Addr::new(198, 18, 0, 0)));
        assert!(!n.assignable(Ipv4Addr::new(198, 18, 0, 255)));
        assert_eq!(Network::new(Ipv4Addr::UNSPECIFIED, 0).mask(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(Network::new(Ipv4Addr::UNSPECIFIED, 40).mask(), Ipv4Addr::BROADCAST);
    }
}
