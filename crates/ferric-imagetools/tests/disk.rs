//! Whole-disk images: layout checks (MBR, FAT contents via mtools, qcow2 via
//! qemu-img), then booting the image in QEMU with SeaBIOS and with OVMF
//! until the appliance's `/init` prints `INSTANCE-UP`. Without the tools,
//! a kernel or busybox-static the tests print why they skip, unless `CI=true`.
#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ferric_imagetools::disk::{build_whole_disk, DiskFormat, DiskSpec, Firmware, RootSource};

const INSTANCE_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "INSTANCE-UP uptime=$(/bin/busybox cut -d' ' -f1 /proc/uptime) cmdline=$(/bin/busybox cat /proc/cmdline)"
/bin/busybox poweroff -f
"#;

/// Tools every disk build needs.
fn build_tools() -> bool {
    ["mkfs.vfat", "mcopy", "mmd", "syslinux"]
        .iter()
        .all(|tool| common::require(common::which(tool).is_some(), tool))
        && common::require(
            ferric_imagetools::disk::SyslinuxFiles::locate().mbr.is_file(),
            "syslinux mbr.bin (syslinux-common)",
        )
        && common::require(
            ferric_imagetools::disk::SyslinuxFiles::locate().efi.is_file(),
            "syslinux.efi (syslinux-efi)",
        )
}

/// A root directory: busybox and an /init printing INSTANCE-UP.
fn appliance_root(dir: &Path, busybox: &Path) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::fs::write(root.join("init"), INSTANCE_INIT).unwrap();
    std::fs::set_permissions(root.join("init"), std::fs::Permissions::from_mode(0o755)).unwrap();
    root
}

fn mtools_listing(image: &Path, dir: &str) -> String {
    let output = Command::new("mdir")
        .args(["-a", "-b", "-i"])
        .arg(format!("{}@@1M", image.display()))
        .arg(dir)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "mdir: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn layout_of_a_small_disk() {
    if !build_tools() || !common::require(common::which("mdir").is_some(), "mdir") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("kernel");
    std::fs::write(&kernel, vec![0x4d; 300_000]).unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("init"), b"#!/bin/sh\n").unwrap();
    let output = dir.path().join("disk.raw");
    let mut spec = DiskSpec::new(output.clone(), kernel);
    spec.root = Some(RootSource::Dir(root.clone()));
    spec.size_mib = 32;
    spec.cmdline = "console=ttyS0 hello=world".into();
    let report = build_whole_disk(&spec).unwrap();
    assert_eq!(report.disk_bytes, 32 << 20);
    assert_eq!(report.filesystem, "FAT16");
    assert!(report.file_bytes < report.disk_bytes, "sparse output");

    let image = std::fs::read(&output).unwrap();
    assert_eq!(image.len(), 32 << 20);
    assert_eq!(&image[510..512], &[0x55, 0xAA]);
    assert_eq!(image[446], 0x80, "bootable");
    assert_eq!(image[450], 0x0e, "FAT16 LBA");
    assert_eq!(u32::from_le_bytes(image[454..458].try_into().unwrap()), 2048);
    assert_eq!(u32::from_le_bytes(image[458..462].try_into().unwrap()), (32 << 11) - 2048);
    let mbr_bin = std::fs::read(&spec.syslinux.mbr).unwrap();
    assert_eq!(&image[..64], &mbr_bin[..64], "syslinux boot code");
    // The FAT boot sector at 1 MiB carries syslinux's loader and the offset.
    let vbr = &image[1 << 20..(1 << 20) + 512];
    assert_eq!(&vbr[510..512], &[0x55, 0xAA]);
    assert_eq!(u32::from_le_bytes(vbr[28..32].try_into().unwrap()), 2048, "hidden sectors");

    let top = mtools_listing(&output, "::/");
    for name in ["VMLINUZ", "INITRD.IMG", "SYSLINUX.CFG", "LDLINUX.SYS", "LDLINUX.C32"] {
        assert!(top.to_uppercase().contains(&format!("::/{name}")), "{name} in {top}");
    }
    let efi = mtools_listing(&output, "::/EFI/BOOT");
    for name in ["BOOTX64.EFI", "LDLINUX.E64", "SYSLINUX.CFG"] {
        assert!(efi.to_uppercase().contains(name), "{name} in {efi}");
    }
    let config = Command::new("mtype")
        .arg("-i")
        .arg(format!("{}@@1M", output.display()))
        .arg("::/EFI/BOOT/syslinux.cfg")
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap();
    let config = String::from_utf8_lossy(&config.stdout);
    assert!(config.contains("APPEND console=ttyS0 hello=world"), "{config}");

    // Too small, or both an initrd and a root: refused.
    spec.size_mib = 2;
    assert!(build_whole_disk(&spec).is_err());
    spec.size_mib = 0;
    spec.initrd = Some(dir.path().join("kernel"));
    assert!(build_whole_disk(&spec).is_err());
    // A root without /init is refused.
    spec.initrd = None;
    std::fs::remove_file(root.join("init")).unwrap();
    assert!(build_whole_disk(&spec).unwrap_err().to_string().contains("/init"));
    // No temporary files were left next to the output.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with(".ferric"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

struct Built {
    _dir: tempfile::TempDir,
    image: PathBuf,
    vars: PathBuf,
}

/// A disk from the installed kernel and a busybox appliance root (a
/// tarball when `tar`), or None (skipped).
fn build_bootable(format: DiskFormat, firmware: Firmware, tar: bool) -> Option<Built> {
    if !build_tools() {
        return None;
    }
    let Some((kernel, _)) = common::installed_kernel() else {
        common::require(false, "an installed kernel (/boot/vmlinuz-*)");
        return None;
    };
    let busybox = common::static_busybox();
    if !common::require(busybox.is_some(), "busybox-static (/bin/busybox)") {
        return None;
    }
    let dir = tempfile::Builder::new().prefix("ferric-disk-test").tempdir_in("/var/tmp").unwrap();
    let root = appliance_root(dir.path(), &busybox.unwrap());
    let source = if tar {
        let tarball = dir.path().join("root.tar.gz");
        let status = Command::new("tar")
            .args(["--create", "--gzip", "--file"])
            .arg(&tarball)
            .arg("-C")
            .arg(&root)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success());
        RootSource::Tar(tarball)
    } else {
        RootSource::Dir(root)
    };
    let image = dir.path().join(match format {
        DiskFormat::Raw => "disk.raw",
        DiskFormat::Qcow2 => "disk.qcow2",
    });
    let mut spec = DiskSpec::new(image.clone(), kernel);
    spec.root = Some(source);
    spec.format = format;
    spec.firmware = firmware;
    spec.cmdline = "console=ttyS0 panic=-1".into();
    let report = build_whole_disk(&spec).unwrap();
    eprintln!("built {report:?}");
    let vars = dir.path().join("vars.fd");
    Some(Built { _dir: dir, image, vars })
}

fn qemu() -> bool {
    common::require(common::which("qemu-system-x86_64").is_some(), "qemu-system-x86_64")
}

fn boot_disk(built: &Built, format: &str, uefi: bool) -> common::Boot {
    let mut args: Vec<OsString> = Vec::new();
    if uefi {
        let code = Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd");
        let vars = Path::new("/usr/share/OVMF/OVMF_VARS_4M.fd");
        if code.is_file() && vars.is_file() {
            std::fs::copy(vars, &built.vars).unwrap();
            args.extend(["-machine".into(), "pc".into()]);
            args.extend([
                "-drive".into(),
                format!("if=pflash,format=raw,readonly=on,file={}", code.display()).into(),
            ]);
            args.extend([
                "-drive".into(),
                format!("if=pflash,format=raw,file={}", built.vars.display()).into(),
            ]);
        } else {
            args.extend(["-bios".into(), "/usr/share/ovmf/OVMF.fd".into()]);
        }
    }
    args.extend([
        "-drive".into(),
        format!("file={},if=virtio,format={format}", built.image.display()).into(),
    ]);
    common::boot(&args, "INSTANCE-UP", Duration::from_secs(120))
}

fn ovmf_present() -> bool {
    Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd").is_file()
        || Path::new("/usr/share/ovmf/OVMF.fd").is_file()
}

#[test]
fn bios_boot_of_a_raw_disk() {
    let Some(built) = build_bootable(DiskFormat::Raw, Firmware::Both, false) else { return };
    if !qemu() {
        return;
    }
    let boot = boot_disk(&built, "raw", false);
    eprintln!("{}", boot.summary("disk, SeaBIOS"));
    assert!(boot.marker.is_some(), "no INSTANCE-UP:\n{}", common::tail(&boot.console, 40));
    assert!(
        boot.console.contains("cmdline=BOOT_IMAGE=/vmlinuz console=ttyS0 panic=-1")
            || boot.console.contains("console=ttyS0 panic=-1")
    );
}

#[test]
fn uefi_boot_of_a_qcow2_disk_from_a_tarball() {
    let Some(built) = build_bootable(DiskFormat::Qcow2, Firmware::Both, true) else { return };
    if !common::require(common::which("qemu-img").is_some(), "qemu-img") {
        return;
    }
    let info = Command::new("qemu-img").arg("info").arg(&built.image).output().unwrap();
    assert!(String::from_utf8_lossy(&info.stdout).contains("file format: qcow2"));
    if !qemu() || !common::require(ovmf_present(), "OVMF (ovmf)") {
        return;
    }
    let boot = boot_disk(&built, "qcow2", true);
    eprintln!("{}", boot.summary("disk, OVMF"));
    assert!(boot.marker.is_some(), "no INSTANCE-UP:\n{}", common::tail(&boot.console, 60));
}

#[test]
fn single_firmware_layouts() {
    if !build_tools() || !common::require(common::which("mdir").is_some(), "mdir") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("kernel");
    std::fs::write(&kernel, vec![0x4d; 100_000]).unwrap();
    let initrd = dir.path().join("initrd");
    std::fs::write(&initrd, vec![0x1f; 1000]).unwrap();

    let uefi = dir.path().join("uefi.raw");
    let mut spec = DiskSpec::new(uefi.clone(), kernel.clone());
    spec.initrd = Some(initrd);
    spec.firmware = Firmware::Uefi;
    let report = build_whole_disk(&spec).unwrap();
    assert_eq!(report.disk_bytes, 64 << 20, "default size");
    let image = std::fs::read(&uefi).unwrap();
    assert!(image[..440].iter().all(|byte| *byte == 0), "no BIOS boot code");
    let top = mtools_listing(&uefi, "::/").to_lowercase();
    assert!(!top.contains("ldlinux.sys") && top.contains("::/efi"), "{top}");
    assert!(!top.contains("::/syslinux.cfg"), "{top}");

    let bios = dir.path().join("bios.raw");
    spec.output = bios.clone();
    spec.firmware = Firmware::Bios;
    build_whole_disk(&spec).unwrap();
    let top = mtools_listing(&bios, "::/").to_lowercase();
    assert!(top.contains("ldlinux.sys") && !top.contains("::/efi"), "{top}");
}
