//! Which boot file or URL a client gets, from what it says about itself:
//! user class (77) / option 175 for iPXE, vendor class (60) `HTTPClient` for
//! UEFI HTTP boot, `PXEClient` with architecture (93) for PXE ROMs.

use std::net::Ipv4Addr;

use crate::backend::Reservation;
use crate::config::Config;
use crate::packet::{code, MacAddr, Packet};

/// The kind of client asking, as far as booting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// iPXE (user class `iPXE` or option 175).
    Ipxe,
    /// UEFI HTTP boot (vendor class `HTTPClient...`).
    HttpClient,
    /// A PXE ROM or UEFI PXE (vendor class `PXEClient...` or option 93),
    /// with its architecture (0 if unsent).
    Pxe(u16),
    /// Anything else (an OS, the deploy ramdisk): no boot options.
    Plain,
}

/// The boot answer for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootChoice {
    /// Boot file name or URL (`file`, option 67).
    pub file: String,
    /// TFTP server (`siaddr`, option 66), for TFTP boots.
    pub tftp_server: Option<Ipv4Addr>,
    /// Vendor class to echo (option 60): `PXEClient` or `HTTPClient`.
    pub vendor_class: Option<&'static str>,
}

/// Classifies the client that sent `request`.
pub fn classify(request: &Packet) -> ClientKind {
    let user_class = request.option(code::USER_CLASS).unwrap_or_default();
    if request.option(code::IPXE_ENCAP).is_some() || is_ipxe_user_class(user_class) {
        return ClientKind::Ipxe;
    }
    let vendor = request.option(code::VENDOR_CLASS).unwrap_or_default();
    if vendor.starts_with(b"HTTPClient") {
        return ClientKind::HttpClient;
    }
    if vendor.starts_with(b"PXEClient") || request.option(code::CLIENT_ARCH).is_some() {
        return ClientKind::Pxe(request.client_arch().unwrap_or(0));
    }
    ClientKind::Plain
}

/// iPXE sends the plain string `iPXE`; RFC 3004 encoding is
/// length-prefixed (`\x04iPXE`). Both are accepted.
fn is_ipxe_user_class(value: &[u8]) -> bool {
    value == b"iPXE" || value.get(1..) == Some(b"iPXE".as_slice()) && value.first() == Some(&4)
}

/// Fills a URL template.
pub fn render(template: &str, server: Ipv4Addr, port: u16, mac: MacAddr) -> String {
    template
        .replace("{server}", &server.to_string())
        .replace("{port}", &port.to_string())
        .replace("{mac_hyphen}", &mac.to_string().replace(':', "-"))
        .replace("{mac}", &mac.to_string())
}

/// The boot answer for `request` from a known node, or `None` (no boot
/// options: not a network-boot client, unsupported architecture, or the
/// node should not network-boot now).
pub fn choose(
    request: &Packet,
    config: &Config,
    mac: MacAddr,
    reservation: &Reservation,
) -> Option<BootChoice> {
    if !reservation.pxe_enabled {
        return None;
    }
    let boot = &config.boot;
    let http = boot.http_server.unwrap_or(config.server_ip);
    let tftp = boot.tftp_server.unwrap_or(config.server_ip);
    match classify(request) {
        ClientKind::Ipxe => {
            let template = reservation.ipxe_script_url.as_deref().unwrap_or(&boot.ipxe_script_url);
            Some(BootChoice {
                file: render(template, http, boot.http_port, mac),
                tftp_server: None,
                vendor_class: None,
            })
        }
        ClientKind::HttpClient => Some(BootChoice {
            file: render(&boot.http_boot_url, http, boot.http_port, mac),
            tftp_server: None,
            vendor_class: Some("HTTPClient"),
        }),
        ClientKind::Pxe(arch) => {
            let file = match arch {
                0 => &boot.bios_file,
                7 | 9 => &boot.uefi_file,
                _ => return None,
            };
            Some(BootChoice {
                file: file.clone(),
                tftp_server: Some(tftp),
                vendor_class: Some("PXEClient"),
            })
        }
        ClientKind::Plain => None,
    }
}
