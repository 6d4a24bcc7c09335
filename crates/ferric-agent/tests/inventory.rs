//! Disks and inventory against the fixture tree of a QEMU-like machine
//! (`tests/fixtures/qemu`: virtio vda 8 GiB, SATA sdb 2 GiB, NVMe 20 GiB,
//! a loop, a CD-ROM and an empty device to skip, virtio eth0, lo, dummy0).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use ferric_agent::disks::{list_block_devices, select_root_device, RootDeviceHints, GIB};
use ferric_agent::inventory::{collect, SystemRoots};
use serde_json::json;

fn roots() -> SystemRoots {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qemu");
    SystemRoots { sys: base.join("sys"), proc: base.join("proc"), dev: base.join("dev") }
}

#[test]
fn lists_real_disks_and_skips_the_rest() {
    let r = roots();
    let devs = list_block_devices(&r.sys, &r.dev).unwrap();
    let names: Vec<&str> = devs.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["nvme0n1", "sdb", "vda"]);

    let vda = &devs[2];
    assert_eq!(vda.path, r.dev.join("vda"));
    assert_eq!(vda.size, 8 * GIB);
    assert!(vda.rotational && !vda.removable);
    assert_eq!(vda.serial.as_deref(), Some("VDA-SERIAL-1"));
    assert_eq!(vda.vendor.as_deref(), Some("0x1af4"));
    assert_eq!(vda.model, None);
    assert_eq!(vda.wwn, None);
    assert_eq!(vda.hctl, None);
    assert_eq!(vda.tran.as_deref(), Some("virtio"));
    assert_eq!(vda.by_path, Some(r.dev.join("disk/by-path/pci-0000:00:04.0")));

    let sdb = &devs[1];
    assert_eq!(sdb.size, 2 * GIB);
    assert_eq!(sdb.model.as_deref(), Some("QEMU HARDDISK"));
    assert_eq!(sdb.vendor.as_deref(), Some("ATA"));
    assert_eq!(sdb.serial.as_deref(), Some("QM00003"), "serial from VPD page 0x80");
    assert_eq!(sdb.wwn, None, "a T10 id is not a WWN");
    assert_eq!(sdb.hctl.as_deref(), Some("0:0:0:0"));
    assert_eq!(sdb.tran.as_deref(), Some("sata"));
    assert_eq!(sdb.physical_sector_size, Some(4096));

    let nvme = &devs[0];
    assert_eq!(nvme.size, 20 * GIB);
    assert!(!nvme.rotational);
    assert_eq!(nvme.model.as_deref(), Some("QEMU NVMe Ctrl"));
    assert_eq!(nvme.serial.as_deref(), Some("nvme-serial-1"));
    assert!(nvme.wwn.as_deref().unwrap().starts_with("nvme.1b36-"));
    assert_eq!(nvme.tran.as_deref(), Some("nvme"));
    assert_eq!(nvme.logical_sector_size, Some(4096));
}

#[test]
fn root_device_selection_on_the_fixture() {
    let r = roots();
    let devs = list_block_devices(&r.sys, &r.dev).unwrap();
    // No hints: the smallest disk of at least 4 GiB (sdb is too small).
    assert_eq!(select_root_device(&devs, None).unwrap().name, "vda");
    let pick = |hints| {
        let hints = RootDeviceHints::parse(&hints).unwrap();
        select_root_device(&devs, Some(&hints)).map(|d| d.name.clone())
    };
    assert_eq!(pick(json!({"size": ">= 10"})).unwrap(), "nvme0n1");
    assert_eq!(pick(json!({"rotational": false})).unwrap(), "nvme0n1");
    assert_eq!(pick(json!({"model": "qemu harddisk"})).unwrap(), "sdb");
    assert_eq!(pick(json!({"serial": "vda-serial-1"})).unwrap(), "vda");
    assert_eq!(pick(json!({"name": "/dev/sdb"})).unwrap(), "sdb");
    assert_eq!(pick(json!({"hctl": "0:0:0:0"})).unwrap(), "sdb");
    assert_eq!(pick(json!({"by_path": "/dev/disk/by-path/pci-0000:00:04.0"})).unwrap(), "vda");
    assert_eq!(pick(json!({"tran": "nvme"})).unwrap(), "nvme0n1");
    let err = pick(json!({"size": 100})).unwrap_err().to_string();
    assert!(err.contains("/dev/vda (8.0 GiB)") && err.contains("/dev/sdb (2.0 GiB)"), "{err}");
}

#[test]
fn inventory_matches_ipa_shape() {
    let inv = collect(&roots());
    let j = serde_json::to_value(&inv).unwrap();

    // CPU
    assert_eq!(j["cpu"]["model_name"], "Intel Xeon Processor (Cascadelake)");
    assert_eq!(j["cpu"]["frequency"], "2394.374");
    assert_eq!(j["cpu"]["count"], 2);
    assert_eq!(j["cpu"]["socket_count"], 1);
    assert!(!j["cpu"]["architecture"].as_str().unwrap().is_empty());
    assert!(j["cpu"]["flags"].as_array().unwrap().contains(&json!("sse2")));

    // Memory: 16 online blocks of 128 MiB; MemTotal in bytes.
    assert_eq!(j["memory"]["total"], 2014208u64 * 1024);
    assert_eq!(j["memory"]["physical_mb"], 2048);

    // Disks in IPA's form.
    let disks = j["disks"].as_array().unwrap();
    assert_eq!(disks.len(), 3);
    let vda = disks.iter().find(|d| d["name"] == "/dev/vda").unwrap();
    assert_eq!(vda["size"], 8u64 << 30);
    assert_eq!(vda["rotational"], true);
    assert_eq!(vda["serial"], "VDA-SERIAL-1");
    assert_eq!(vda["by_path"], "/dev/disk/by-path/pci-0000:00:04.0");
    for key in
        ["model", "wwn", "vendor", "hctl", "wwn_with_extension", "wwn_vendor_extension", "tran"]
    {
        assert!(vda.get(key).is_some(), "disk field {key} present (maybe null)");
    }

    // Interfaces: eth0 only (lo skipped, dummy0 has no device link).
    let ifaces = j["interfaces"].as_array().unwrap();
    assert_eq!(ifaces.len(), 1, "{ifaces:?}");
    let eth0 = &ifaces[0];
    assert_eq!(eth0["name"], "eth0");
    assert_eq!(eth0["mac_address"], "52:54:00:12:34:56");
    assert_eq!(eth0["has_carrier"], true);
    assert_eq!(eth0["ipv4_address"], "192.0.2.15");
    assert_eq!(eth0["ipv6_address"], "2001:db8::15", "global before link-local");
    assert_eq!(eth0["vendor"], "0x1af4");
    assert_eq!(eth0["product"], "0x0001");
    assert_eq!(eth0["speed_mbps"], 1000);
    assert_eq!(eth0["driver"], "virtio_net");
    assert_eq!(eth0["pci_address"], "virtio0");
    for key in ["lldp", "client_id", "biosdevname"] {
        assert!(eth0[key].is_null() && eth0.get(key).is_some(), "{key}");
    }

    // DMI: product_serial is missing in the fixture → null.
    assert_eq!(j["system_vendor"]["manufacturer"], "QEMU");
    assert_eq!(j["system_vendor"]["product_name"], "Standard PC (Q35 + ICH9, 2009)");
    assert!(j["system_vendor"]["serial_number"].is_null());
    assert_eq!(j["system_vendor"]["firmware"]["vendor"], "EDK II");
    assert_eq!(j["system_vendor"]["firmware"]["version"], "edk2-stable202302");
    assert_eq!(j["system_vendor"]["firmware"]["build_date"], "02/06/2023");

    assert_eq!(j["boot"]["current_boot_mode"], "uefi");
    assert!(j["boot"]["pxe_interface"].is_null());
    assert_eq!(j["hostname"], "ferric-test");
    assert!(j.get("bmc_address").is_some());
}

#[test]
fn physical_memory_falls_back_to_memtotal() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("proc")).unwrap();
    std::fs::write(tmp.path().join("proc/meminfo"), "MemTotal:  16111000 kB\n").unwrap();
    let inv = collect(&SystemRoots {
        sys: tmp.path().join("sys"),
        proc: tmp.path().join("proc"),
        dev: tmp.path().join("dev"),
    });
    assert_eq!(inv.memory.total, Some(16111000 * 1024));
    assert_eq!(inv.memory.physical_mb, Some(16384));
}
