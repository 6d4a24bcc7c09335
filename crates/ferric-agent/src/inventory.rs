//! The hardware inventory, in the Ironic Python Agent's `inventory` format.
//!
//! [`collect`] reads everything from files under [`SystemRoots`] (`/sys`,
//! `/proc`, `/dev`, or fixture trees in tests): CPUs from `/proc/cpuinfo`
//! and `/sys/devices/system/cpu`, memory from `/proc/meminfo` and the memory
//! block devices, disks from [`crate::disks`], network interfaces from
//! `/sys/class/net` (IPv4 addresses from `/proc/net/fib_trie` and
//! `/proc/net/route`, IPv6 from `/proc/net/if_inet6`), DMI from
//! `/sys/class/dmi/id`. A missing or unreadable file gives `null`, never an
//! error: an inventory with holes is better than none.
//!
//! Fields the agent cannot know from files (`bmc_address`, `lldp`,
//! `biosdevname`, `client_id`, `boot.pxe_interface`) are `null`; the caller
//! fills `pxe_interface` from `BOOTIF`.

use std::collections::BTreeSet;
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::disks::{self, read_trimmed, BlockDevice};

/// Where the kernel's pseudo filesystems and device nodes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemRoots {
    pub sys: PathBuf,
    pub proc: PathBuf,
    pub dev: PathBuf,
}

impl Default for SystemRoots {
    fn default() -> Self {
        SystemRoots {
            sys: PathBuf::from("/sys"),
            proc: PathBuf::from("/proc"),
            dev: PathBuf::from("/dev"),
        }
    }
}

/// The whole inventory, as sent on lookup and inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub interfaces: Vec<Interface>,
    pub cpu: Cpu,
    pub disks: Vec<Disk>,
    pub memory: Memory,
    pub bmc_address: Option<String>,
    pub bmc_v6address: Option<String>,
    pub system_vendor: SystemVendor,
    pub boot: BootInfo,
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    pub model_name: Option<String>,
    /// MHz as a string, as IPA reports it (the maximum when known).
    pub frequency: Option<String>,
    pub count: u32,
    pub architecture: String,
    pub flags: Vec<String>,
    pub socket_count: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// Bytes usable by the kernel (`MemTotal`).
    pub total: Option<u64>,
    /// Installed memory in MiB.
    pub physical_mb: Option<u64>,
}

/// A disk in IPA's form: `name` is `/dev/sda`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    pub name: String,
    pub model: Option<String>,
    pub size: u64,
    pub rotational: bool,
    pub wwn: Option<String>,
    pub serial: Option<String>,
    pub vendor: Option<String>,
    pub wwn_with_extension: Option<String>,
    pub wwn_vendor_extension: Option<String>,
    pub hctl: Option<String>,
    pub by_path: Option<String>,
    pub logical_sectors: Option<u32>,
    pub physical_sectors: Option<u32>,
    pub tran: Option<String>,
}

impl From<&BlockDevice> for Disk {
    fn from(d: &BlockDevice) -> Self {
        Disk {
            name: d.dev_name(),
            model: d.model.clone(),
            size: d.size,
            rotational: d.rotational,
            wwn: d.wwn.clone(),
            serial: d.serial.clone(),
            vendor: d.vendor.clone(),
            wwn_with_extension: None,
            wwn_vendor_extension: None,
            hctl: d.hctl.clone(),
            by_path: d
                .by_path
                .as_ref()
                .and_then(|p| p.file_name())
                .map(|f| format!("/dev/disk/by-path/{}", f.to_string_lossy())),
            logical_sectors: d.logical_sector_size,
            physical_sectors: d.physical_sector_size,
            tran: d.tran.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    pub mac_address: String,
    pub ipv4_address: Option<String>,
    pub ipv6_address: Option<String>,
    pub has_carrier: bool,
    pub lldp: Option<Value>,
    /// PCI vendor id, e.g. `0x1af4`.
    pub vendor: Option<String>,
    /// PCI device id, e.g. `0x1000`.
    pub product: Option<String>,
    pub client_id: Option<String>,
    pub biosdevname: Option<String>,
    pub speed_mbps: Option<u64>,
    pub pci_address: Option<String>,
    pub driver: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemVendor {
    pub product_name: Option<String>,
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub firmware: Firmware,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firmware {
    pub vendor: Option<String>,
    pub version: Option<String>,
    pub build_date: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootInfo {
    /// `uefi` or `bios`.
    pub current_boot_mode: String,
    pub pxe_interface: Option<String>,
}

/// Collects the inventory. Never fails; unknown values are `null`.
pub fn collect(roots: &SystemRoots) -> Inventory {
    let disks = disks::list_block_devices(&roots.sys, &roots.dev)
        .map(|ds| ds.iter().map(Disk::from).collect())
        .unwrap_or_default();
    Inventory {
        interfaces: interfaces(roots),
        cpu: cpu(roots),
        disks,
        memory: memory(roots),
        bmc_address: None,
        bmc_v6address: None,
        system_vendor: system_vendor(&roots.sys),
        boot: BootInfo {
            current_boot_mode: if roots.sys.join("firmware/efi").is_dir() {
                "uefi".into()
            } else {
                "bios".into()
            },
            pxe_interface: None,
        },
        hostname: read_trimmed(&roots.proc.join("sys/kernel/hostname"))
            .or_else(|| Some(rustix::system::uname().nodename().to_string_lossy().into_owned()))
            .filter(|h| !h.is_empty()),
    }
}

// --- CPU -------------------------------------------------------------------

fn cpu(roots: &SystemRoots) -> Cpu {
    let text = fs::read_to_string(roots.proc.join("cpuinfo")).unwrap_or_default();
    let mut processors = 0u32;
    let mut model_name = None;
    let mut mhz = None;
    let mut flags: Option<Vec<String>> = None;
    let mut sockets = BTreeSet::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        match key.as_str() {
            "processor" => processors += 1,
            "model name" | "cpu model" if model_name.is_none() && !value.is_empty() => {
                model_name = Some(value.to_owned())
            }
            "cpu mhz" if mhz.is_none() && !value.is_empty() => mhz = Some(value.to_owned()),
            "flags" | "features" if flags.is_none() => {
                flags = Some(value.split_whitespace().map(str::to_owned).collect())
            }
            "physical id" => {
                sockets.insert(value.to_owned());
            }
            _ => {}
        }
    }
    let cpu_dir = roots.sys.join("devices/system/cpu");
    let present = read_trimmed(&cpu_dir.join("present")).and_then(|s| count_cpu_list(&s));
    let max_mhz = read_trimmed(&cpu_dir.join("cpu0/cpufreq/cpuinfo_max_freq"))
        .and_then(|khz| khz.parse::<u64>().ok())
        .filter(|khz| *khz > 0)
        .map(|khz| format!("{:.4}", khz as f64 / 1000.0));
    Cpu {
        model_name,
        frequency: max_mhz.or(mhz),
        count: present.unwrap_or(processors),
        architecture: rustix::system::uname().machine().to_string_lossy().into_owned(),
        flags: flags.unwrap_or_default(),
        socket_count: (!sockets.is_empty())
            .then(|| u32::try_from(sockets.len()).unwrap_or(u32::MAX)),
    }
}

/// Counts CPUs in a kernel CPU list such as `0-3,8,10-11`.
fn count_cpu_list(list: &str) -> Option<u32> {
    let mut count = 0u32;
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                count = count.checked_add(b.checked_sub(a)?.checked_add(1)?)?;
            }
            None => {
                part.parse::<u32>().ok()?;
                count = count.checked_add(1)?;
            }
        }
    }
    (count > 0).then_some(count)
}

// --- Memory ----------------------------------------------------------------

fn memory(roots: &SystemRoots) -> Memory {
    let total = fs::read_to_string(roots.proc.join("meminfo")).ok().and_then(|text| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix("MemTotal:")?;
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            kb.checked_mul(1024)
        })
    });
    let physical_mb = memory_blocks_mb(&roots.sys.join("devices/system/memory"))
        // Without memory blocks: MemTotal lacks what the firmware and the
        // kernel reserved, so round it up to whole GiB.
        .or_else(|| total.map(|t| t.div_ceil(1 << 30) * 1024));
    Memory { total, physical_mb }
}

/// Online memory blocks × block size, in MiB.
fn memory_blocks_mb(dir: &Path) -> Option<u64> {
    let block = u64::from_str_radix(
        read_trimmed(&dir.join("block_size_bytes"))?.trim_start_matches("0x"),
        16,
    )
    .ok()?;
    let mut online = 0u64;
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("memory")
            && name[6..].bytes().all(|b| b.is_ascii_digit())
            && read_trimmed(&entry.path().join("online")).as_deref() == Some("1")
        {
            online += 1;
        }
    }
    (online > 0).then(|| online.saturating_mul(block) >> 20)
}

// --- Network ---------------------------------------------------------------

fn interfaces(roots: &SystemRoots) -> Vec<Interface> {
    let net = roots.sys.join("class/net");
    let Ok(entries) = fs::read_dir(&net) else {
        return Vec::new();
    };
    let mut names: Vec<String> =
        entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    names.sort();
    let v4 = ipv4_addresses(&roots.proc);
    let v6 = ipv6_addresses(&roots.proc);
    names
        .into_iter()
        .filter(|name| name != "lo")
        .filter(|name| {
            let dir = net.join(name);
            dir.join("device").exists() || dir.join("bonding").is_dir() || is_vlan(name)
        })
        .filter_map(|name| {
            let dir = net.join(&name);
            let mac = read_trimmed(&dir.join("address"))?.to_ascii_lowercase();
            let link_name = |p: PathBuf| -> Option<String> {
                Some(fs::read_link(p).ok()?.file_name()?.to_string_lossy().into_owned())
            };
            Some(Interface {
                ipv4_address: v4.iter().find(|(n, _)| *n == name).map(|(_, a)| a.to_string()),
                ipv6_address: v6.iter().find(|(n, _)| *n == name).map(|(_, a)| a.to_string()),
                mac_address: mac,
                has_carrier: read_trimmed(&dir.join("carrier")).as_deref() == Some("1"),
                lldp: None,
                vendor: read_trimmed(&dir.join("device/vendor")),
                product: read_trimmed(&dir.join("device/device")),
                client_id: None,
                biosdevname: None,
                speed_mbps: read_trimmed(&dir.join("speed"))
                    .and_then(|s| s.parse::<i64>().ok())
                    .filter(|s| *s > 0)
                    .and_then(|s| u64::try_from(s).ok()),
                pci_address: link_name(dir.join("device")),
                driver: link_name(dir.join("device/driver")),
                name,
            })
        })
        .collect()
}

fn is_vlan(name: &str) -> bool {
    matches!(name.split_once('.'), Some((_, id)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// Local IPv4 addresses (`/32 host LOCAL` in `fib_trie`) mapped to the
/// interface whose prefix route covers them (`/proc/net/route`).
fn ipv4_addresses(proc_root: &Path) -> Vec<(String, Ipv4Addr)> {
    let Ok(trie) = fs::read_to_string(proc_root.join("net/fib_trie")) else {
        return Vec::new();
    };
    let mut locals = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in trie.lines() {
        let t = line.trim_start_matches([' ', '|', '+', '-']);
        if let Ok(addr) = t.trim().parse::<Ipv4Addr>() {
            last = Some(addr);
        } else if t.trim() == "/32 host LOCAL" {
            if let Some(addr) = last {
                if !addr.is_loopback() && !locals.contains(&addr) {
                    locals.push(addr);
                }
            }
        }
    }
    let routes: Vec<(String, u32, u32)> = fs::read_to_string(proc_root.join("net/route"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The kernel prints the network-order value in host order.
            let dest = u32::from_be_bytes(dest.to_ne_bytes());
            let mask = u32::from_be_bytes(mask.to_ne_bytes());
            (mask != 0).then(|| (f[0].to_owned(), dest, mask))
        })
        .collect();
    let mut out = Vec::new();
    for addr in locals {
        let a = u32::from(addr);
        if let Some((iface, _, _)) = routes
            .iter()
            .filter(|(_, dest, mask)| a & mask == *dest)
            .max_by_key(|(_, _, mask)| mask.count_ones())
        {
            out.push((iface.clone(), addr));
        }
    }
    out
}

/// IPv6 addresses per interface, global ones before link-local ones.
fn ipv6_addresses(proc_root: &Path) -> Vec<(String, Ipv6Addr)> {
    let mut out: Vec<(u8, String, Ipv6Addr)> = fs::read_to_string(proc_root.join("net/if_inet6"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 || f[0].len() != 32 {
                return None;
            }
            let bits = u128::from_str_radix(f[0], 16).ok()?;
            let scope = u8::from_str_radix(f[3], 16).ok()?;
            let addr = Ipv6Addr::from(bits);
            (!addr.is_loopback()).then(|| (scope, f[5].to_owned(), addr))
        })
        .collect();
    // Scope 0x00 (global) sorts before 0x20 (link); the sort is stable.
    out.sort_by_key(|(scope, _, _)| *scope);
    out.into_iter().map(|(_, n, a)| (n, a)).collect()
}

// --- DMI -------------------------------------------------------------------

fn system_vendor(sys: &Path) -> SystemVendor {
    let dmi = sys.join("class/dmi/id");
    let get = |f: &str| read_trimmed(&dmi.join(f));
    SystemVendor {
        product_name: get("product_name"),
        serial_number: get("product_serial"),
        manufacturer: get("sys_vendor"),
        firmware: Firmware {
            vendor: get("bios_vendor"),
            version: get("bios_version"),
            build_date: get("bios_date"),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(count_cpu_list("0-3"), Some(4));
        assert_eq!(count_cpu_list("0-3,8,10-11\n"), Some(7));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("3-1"), None);
        assert_eq!(count_cpu_list("x"), None);
        assert_eq!(count_cpu_list(""), None);
    }

    #[test]
    fn vlan_names() {
        assert!(is_vlan("eth0.100"));
        assert!(!is_vlan("eth0"));
        assert!(!is_vlan("eth0."));
        assert!(!is_vlan("br.x"));
    }

    #[test]
    fn missing_roots_give_nulls() {
        let roots = SystemRoots {
            sys: "/nonexistent/sys".into(),
            proc: "/nonexistent/proc".into(),
            dev: "/nonexistent/dev".into(),
        };
        let inv = collect(&roots);
        assert!(inv.disks.is_empty() && inv.interfaces.is_empty());
        assert_eq!(inv.memory, Memory { total: None, physical_mb: None });
        assert_eq!(inv.cpu.count, 0);
        assert_eq!(inv.boot.current_boot_mode, "bios");
        assert_eq!(inv.system_vendor.manufacturer, None);
        let json = serde_json::to_value(&inv).unwrap();
        assert!(json["system_vendor"]["firmware"]["vendor"].is_null());
    }
}
